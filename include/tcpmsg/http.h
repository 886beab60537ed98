/* http: a small embedded HTTP endpoint on libmicrohttpd, shared by the
 * server and the probe. It serves GET and HEAD only, routes requests to one
 * callback, and serves static files from a web root that no path can escape.
 * It knows nothing of tcpmsg's connections or metrics: the callback does.
 */
#ifndef TCPMSG_HTTP_H
#define TCPMSG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_server;
struct http_request;

/* What a route returns. body is malloc'd and owned by the http module after
 * the callback returns (freed once sent). */
struct http_response {
    unsigned status;          /* 0: not mine, try the web root */
    const char *content_type; /* static string */
    char *body;
    size_t len;
    const char *cache_control; /* static string or NULL for "no-store" */
};

/* Route callback: fill *resp for request path (already percent-decoded and
 * checked, always starting with '/'). Runs on the HTTP thread. */
typedef void (*http_route_fn)(void *ctx, const struct http_request *req,
                              struct http_response *resp);

/* A query argument ("format" in "?format=prometheus"), or NULL. */
const char *http_query(const struct http_request *req, const char *key);
/* A request header, or NULL. */
const char *http_header(const struct http_request *req, const char *name);
const char *http_path(const struct http_request *req);

struct http_options {
    const char *bind;     /* address to listen on, e.g. "127.0.0.1" */
    uint16_t port;        /* 0: the kernel picks */
    const char *web_root; /* directory of static files; NULL: none */
    unsigned max_conns;   /* concurrent HTTP connections */
    unsigned max_conns_per_ip;
    unsigned timeout_s;   /* idle connection timeout */
    size_t conn_memory;   /* per-connection memory limit in bytes */
};

void http_options_defaults(struct http_options *o);

/* Start the endpoint on its own thread. Returns NULL after writing a reason
 * into err. Stopped and released with http_stop. */
struct http_server *http_start(const struct http_options *o, http_route_fn route, void *ctx,
                               char *err, size_t err_cap);
void http_stop(struct http_server *h); /* NULL is a no-op */

/* The address and port actually bound ("127.0.0.1:8081"). */
const char *http_bound(const struct http_server *h);
uint16_t http_port(const struct http_server *h);

/* Requests answered, by class: 2xx, 3xx, 4xx, 5xx (any thread may read). */
uint64_t http_responses(const struct http_server *h, unsigned cls);

#endif
