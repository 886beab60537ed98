/* http: a small embedded HTTP endpoint on libmicrohttpd, shared by the
 * server and the probe. It serves GET and HEAD only, routes requests to one
 * callback, and serves static files from a web root that no path can escape.
 * It knows nothing of tcpmsg's connections or metrics: the callback does.
 *
 * It defends itself: connections are accepted by its own thread, which caps
 * them in total and per client address before libmicrohttpd sees them, backs
 * off when out of descriptors, and ends a request whose headers are not
 * complete within a deadline (slowloris). docs/ARCHITECTURE.md tells why.
 */
#ifndef TCPMSG_HTTP_H
#define TCPMSG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_server;
struct http_request;
struct webconfig;
struct basicauth;

/* Requests and connections refused by the web configuration (--web-config):
 * enum value, tag (metrics), meaning. */
#define HTTP_AUTH_FAILURES(X)                                                                \
    X(HTTP_AUTH_MISSING, "missing", "a request without basic auth credentials (401)")       \
    X(HTTP_AUTH_DENIED, "denied", "an unknown user or a wrong password (401)")              \
    X(HTTP_AUTH_THROTTLED, "throttled",                                                      \
      "credentials not checked: the bcrypt time budget was spent (429)")                     \
    X(HTTP_AUTH_TLS_HANDSHAKE, "tls_handshake",                                              \
      "a TLS handshake failed: not TLS, or a client certificate missing or not signed by "   \
      "client_ca_file")

enum http_auth_failure {
#define HTTP_AUTH_ENUM(name, tag, text) name,
    HTTP_AUTH_FAILURES(HTTP_AUTH_ENUM)
#undef HTTP_AUTH_ENUM
    HTTP_AUTH_FAILURE_COUNT
};

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

/* An answer that takes time (a probe of another host) is given later, from
 * another thread, without holding up the endpoint's other requests: the
 * route calls http_defer, sets resp->status to HTTP_DEFERRED and returns;
 * the request's connection waits, suspended, until
 * http_deferred_complete. At most HTTP_MAX_DEFERRED wait at once: beyond
 * that http_defer returns NULL and the route answers at once (a 503). */
#define HTTP_DEFERRED 1
#define HTTP_MAX_DEFERRED 64
struct http_deferred;

/* In a route, on the endpoint's thread: the handle to answer req later, or
 * NULL (out of memory, or HTTP_MAX_DEFERRED already waiting). */
struct http_deferred *http_defer(const struct http_request *req);

/* Give a deferred answer, exactly once, from any thread: resp as a route
 * fills it (its body then belongs to the module). Every deferred answer
 * must be given before http_stop. */
void http_deferred_complete(struct http_deferred *d, const struct http_response *resp);

/* A query argument ("format" in "?format=prometheus"), or NULL. */
const char *http_query(const struct http_request *req, const char *key);
/* A request header, or NULL. */
const char *http_header(const struct http_request *req, const char *name);
const char *http_path(const struct http_request *req);

struct http_options {
    const char *bind;     /* address to listen on, e.g. "127.0.0.1" */
    uint16_t port;        /* 0: the kernel picks */
    const char *web_root; /* directory of static files; NULL: none */
    const char *index;    /* the web root's file served for "/" (a static string);
                             NULL: index.html */
    unsigned max_conns;   /* concurrent HTTP connections (default 64) */
    unsigned max_conns_per_ip; /* of them from one client address (default 8) */
    unsigned timeout_s;   /* idle timeout while a response is sent (default 10) */
    unsigned header_timeout_s; /* a request's headers must be whole this long after
                                  the connection opened or its previous response
                                  ended (default 5) */
    size_t conn_memory;   /* per-connection memory limit in bytes */
    /* --web-config: HTTPS when web->tls, with web's client certificate
     * policy; NULL serves plain HTTP. Both must outlive the endpoint. */
    const struct webconfig *web;
    /* With auth, every path but open_path needs basic auth credentials it
     * accepts: 401 with WWW-Authenticate: Basic realm="tcpmsg" otherwise. */
    struct basicauth *auth;
    const char *open_path; /* e.g. "/healthz"; NULL: none */
};

/* Why the endpoint refused or ended a connection: enum name, tag (metrics,
 * logs), meaning. */
#define HTTP_REJECT_REASONS(X)                                                         \
    X(HTTP_REJECT_PER_IP, "per_ip", "max_conns_per_ip (8) HTTP connections from that address were open: answered 503 and closed") \
    X(HTTP_REJECT_MAX_CONNS, "max_conns", "max_conns (64) HTTP connections were open: answered 503 and closed") \
    X(HTTP_REJECT_NO_FDS, "no_fds", "accept ran out of descriptors or memory: one waiting client answered 503 through a spare descriptor, accepting paused 100 ms") \
    X(HTTP_REJECT_HEADER_TIMEOUT, "header_timeout", "no whole request within 5 s of the connection opening or of its previous response (slow or idle client): connection ended")

enum http_reject_reason {
#define HTTP_REJECT_ENUM(name, tag, text) name,
    HTTP_REJECT_REASONS(HTTP_REJECT_ENUM)
#undef HTTP_REJECT_ENUM
    HTTP_REJECT_REASON_COUNT
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

/* Refusals by the web configuration, by reason (any thread may read). */
uint64_t http_auth_failures(const struct http_server *h, enum http_auth_failure reason);
/* Connections refused or ended, by reason; connections open now (any thread
 * may read). */
uint64_t http_rejected(const struct http_server *h, enum http_reject_reason r);
uint64_t http_connections_open(const struct http_server *h);

#endif
