/* admin: the server's HTTP routes. Maps /metrics, /healthz and
 * /api/connections to the modules that own the data (metrics.c,
 * connlist.c); every other path falls through to the status page files.
 */
#include "server/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

enum metrics_format { FMT_JSON, FMT_PROMETHEUS, FMT_OPENMETRICS, FMT_UNKNOWN };

/* ?format= wins; otherwise the Accept header: OpenMetrics if asked for
 * (Prometheus asks for it first), Prometheus text for text/plain, else JSON. */
static enum metrics_format negotiate(const struct http_request *req)
{
    const char *f = http_query(req, "format");
    if (f != NULL) {
        if (strcmp(f, "json") == 0)
            return FMT_JSON;
        if (strcmp(f, "prometheus") == 0)
            return FMT_PROMETHEUS;
        if (strcmp(f, "openmetrics") == 0)
            return FMT_OPENMETRICS;
        return FMT_UNKNOWN;
    }
    const char *accept = http_header(req, "Accept");
    if (accept == NULL)
        return FMT_JSON;
    if (strstr(accept, "application/openmetrics-text") != NULL)
        return FMT_OPENMETRICS;
    if (strstr(accept, "text/plain") != NULL)
        return FMT_PROMETHEUS;
    return FMT_JSON;
}

static void route_metrics(struct server *s, const struct http_request *req,
                          struct http_response *r)
{
    enum metrics_format fmt = negotiate(req);
    if (fmt == FMT_UNKNOWN) {
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
    if (fmt == FMT_JSON) {
        r->body = metrics_json(m);
        r->len = r->body != NULL ? strlen(r->body) : 0;
        r->content_type = CT_JSON;
    } else if (fmt == FMT_PROMETHEUS) {
        r->body = metrics_prometheus(m, &r->len);
        r->content_type = CT_PROMETHEUS;
    } else {
        r->body = metrics_openmetrics(m, &r->len);
        r->content_type = CT_OPENMETRICS;
    }
    r->status = r->body != NULL ? 200 : 500;
    free(m);
}

/* A non-negative integer query argument, or def when absent; -1 if bad. */
static long long query_count(const struct http_request *req, const char *key, long long def,
                             long long max)
{
    const char *v = http_query(req, key);
    if (v == NULL)
        return def;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*v < '0' || *v > '9' || *end != '\0' || n > max)
        return -1;
    return n;
}

static void route_connections(struct server *s, const struct http_request *req,
                              struct http_response *r)
{
    long long limit = query_count(req, "limit", 100, 100000);
    long long offset = query_count(req, "offset", 0, 1000000000);
    if (limit < 0 || offset < 0) {
        text(r, 400, "text/plain; charset=utf-8", "400 limit and offset must be whole numbers\n");
        return;
    }
    int bad = 0;
    r->body = connlist_json(s, http_query(req, "sort"), (size_t)limit, (size_t)offset, &bad);
    if (bad) {
        text(r, 400, "text/plain; charset=utf-8",
             "400 sort must be one of id, age, idle, bytes_in, bytes_out, msgs_in, msgs_out, "
             "pending, memory, optionally with a leading '-'\n");
        return;
    }
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
