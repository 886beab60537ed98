/* admin: the server's HTTP routes. Maps /metrics, /healthz and
 * /api/connections to the modules that own the data (metrics.c,
 * connlist.c); every other path falls through to the status page files.
 */
#include "server/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/adminquery.h"
#include "server/connlist.h"
#include "server/metrics.h"
#include "server/server.h"

#define CT_JSON "application/json"
#define CT_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"
#define CT_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

static void text(struct http_response *r, unsigned status, const char *ct, const char *body)
{
    r->status = status;
    r->content_type = ct;
    r->body = strdup(body);
    r->len = r->body != NULL ? strlen(r->body) : 0;
    if (r->body == NULL)
        r->status = 500;
}

static void route_metrics(struct server *s, const struct http_request *req,
                          struct http_response *r)
{
    enum admin_format fmt =
        admin_format_choose(http_query(req, "format"), http_header(req, "Accept"));
    if (fmt == ADMIN_FORMAT_UNKNOWN) {
        text(r, 400, "text/plain; charset=utf-8",
             "400 format must be json, prometheus or openmetrics\n");
        return;
    }
    struct metrics_snapshot *m = malloc(sizeof *m);
    if (m == NULL) {
        r->status = 500;
        return;
    }
    server_snapshot(s, m);
    if (fmt == ADMIN_FORMAT_JSON) {
        r->body = metrics_json(m);
        r->len = r->body != NULL ? strlen(r->body) : 0;
        r->content_type = CT_JSON;
    } else if (fmt == ADMIN_FORMAT_PROMETHEUS) {
        r->body = metrics_prometheus(m, &r->len);
        r->content_type = CT_PROMETHEUS;
    } else {
        r->body = metrics_openmetrics(m, &r->len);
        r->content_type = CT_OPENMETRICS;
    }
    r->status = r->body != NULL ? 200 : 500;
    free(m);
}

static void route_connections(struct server *s, const struct http_request *req,
                              struct http_response *r)
{
    size_t limit, offset;
    if (admin_count_parse(http_query(req, "limit"), ADMIN_LIMIT_DEFAULT, ADMIN_LIMIT_MAX,
                          &limit) < 0 ||
        admin_count_parse(http_query(req, "offset"), 0, ADMIN_OFFSET_MAX, &offset) < 0) {
        text(r, 400, "text/plain; charset=utf-8", "400 limit and offset must be whole numbers\n");
        return;
    }
    struct conn_sort sort;
    if (admin_sort_parse(http_query(req, "sort"), &sort) < 0) {
        text(r, 400, "text/plain; charset=utf-8",
             "400 sort must be one of " CONN_SORT_NAMES "optionally with a leading '-'\n");
        return;
    }
    size_t n;
    struct conn_info *v = server_connections(s, &n);
    r->body = v != NULL ? connlist_json(v, n, &s->closed, sort, limit, offset) : NULL;
    free(v);
    r->status = r->body != NULL ? 200 : 500;
    r->len = r->body != NULL ? strlen(r->body) : 0;
    r->content_type = CT_JSON;
}

void admin_route(void *ctx, const struct http_request *req, struct http_response *r)
{
    struct server *s = ctx;
    const char *path = http_path(req);
    if (strcmp(path, "/metrics") == 0)
        route_metrics(s, req, r);
    else if (strcmp(path, "/healthz") == 0)
        atomic_load(&s->draining) ? text(r, 503, "text/plain; charset=utf-8", "draining\n")
                                  : text(r, 200, "text/plain; charset=utf-8", "ok\n");
    else if (strcmp(path, "/api/connections") == 0)
        route_connections(s, req, r);
    else if (strncmp(path, "/api/", 5) == 0)
        text(r, 404, "text/plain; charset=utf-8", "404 no such API\n");
    /* anything else: r->status stays 0 and the web root answers */
}
