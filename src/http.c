/* http: the embedded HTTP endpoint. The only file that includes
 * microhttpd.h: libmicrohttpd runs one internal thread with epoll; each
 * request goes to the owner's route callback, then to the static files of
 * the web root. GET and HEAD only.
 */
#include "tcpmsg/http.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tcpmsg/log.h"
#include "tcpmsg/net.h"
#include "tcpmsg/webpath.h"

#define PATH_MAX_LEN 1024

struct http_server {
    struct MHD_Daemon *daemon;
    http_route_fn route;
    void *ctx;
    int web_fd; /* the web root directory, or -1 */
    char bound[NET_ADDRSTRLEN];
    uint16_t port;
    _Atomic uint64_t responses[6]; /* by status class: [2] = 2xx ... [5] = 5xx */
};

struct http_request {
    struct MHD_Connection *conn;
    const char *path; /* decoded */
};

void http_options_defaults(struct http_options *o)
{
    memset(o, 0, sizeof *o);
    o->bind = "127.0.0.1";
    o->port = 8081;
    o->max_conns = 64;
    o->max_conns_per_ip = 16;
    o->timeout_s = 10;
    o->conn_memory = 64 * 1024;
}

const char *http_query(const struct http_request *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_path(const struct http_request *req)
{
    return req->path;
}

const char *http_bound(const struct http_server *h)
{
    return h->bound;
}

uint16_t http_port(const struct http_server *h)
{
    return h->port;
}

uint64_t http_responses(const struct http_server *h, unsigned cls)
{
    return cls < 6 ? atomic_load_explicit(&h->responses[cls], memory_order_relaxed) : 0;
}

/* Queue a response and count it. Takes ownership of resp. */
static enum MHD_Result send_response(struct http_server *h, struct MHD_Connection *conn,
                                     unsigned status, struct MHD_Response *resp)
{
    if (resp == NULL)
        return MHD_NO;
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    if (status / 100 < 6)
        atomic_fetch_add_explicit(&h->responses[status / 100], 1, memory_order_relaxed);
    return rc;
}

static enum MHD_Result send_text(struct http_server *h, struct MHD_Connection *conn,
                                 unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    return send_response(h, conn, status, r);
}

static enum MHD_Result serve_file(struct http_server *h, struct MHD_Connection *conn,
                                  const char *path)
{
    if (h->web_fd < 0)
        return send_text(h, conn, MHD_HTTP_NOT_FOUND, "404 not found\n");
    const char *rel = strcmp(path, "/") == 0 ? "index.html" : path + 1;
    if (rel[strlen(rel) - 1] == '/') /* names a directory: not served */
        return send_text(h, conn, MHD_HTTP_NOT_FOUND, "404 not found\n");
    struct stat st;
    int fd = webpath_open_beneath(h->web_fd, rel, &st);
    if (fd < 0)
        return send_text(h, conn, MHD_HTTP_NOT_FOUND, "404 not found\n");

    char etag[64];
    snprintf(etag, sizeof etag, "\"%" PRIx64 "-%" PRIx64 "\"",
             (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec,
             (uint64_t)st.st_size);
    const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
    struct MHD_Response *r;
    unsigned status = MHD_HTTP_OK;
    if (inm != NULL && strcmp(inm, etag) == 0) {
        close(fd);
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_MODIFIED;
    } else {
        r = MHD_create_response_from_fd((uint64_t)st.st_size, fd); /* owns fd */
        if (r == NULL)
            close(fd);
    }
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", webpath_content_type(rel));
    MHD_add_response_header(r, "ETag", etag);
    /* The page changes with the server: revalidate each time (cheap: 304). */
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    return send_response(h, conn, status, r);
}

/* libmicrohttpd hands us the raw request target before it unescapes it; we
 * keep it as the request's context and decode it our own, stricter way. */
static void *keep_raw_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    return strdup(uri);
}

static void request_done(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*req_cls);
    *req_cls = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    struct http_server *h = cls;
    (void)url;
    (void)version;
    (void)upload_data;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *upload_data_size = 0; /* whatever body came, we will not read it */
        return send_text(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "405 method not allowed\n");
    }
    const char *raw = *req_cls != NULL ? *req_cls : "";
    size_t n = strcspn(raw, "?#");
    char path[PATH_MAX_LEN];
    if (webpath_decode(raw, n, path, sizeof path) < 0)
        return send_text(h, conn, MHD_HTTP_BAD_REQUEST, "400 bad path\n");

    struct http_request req = { .conn = conn, .path = path };
    struct http_response resp = { 0 };
    h->route(h->ctx, &req, &resp);
    if (resp.status == 0)
        return serve_file(h, conn, path);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(resp.len, resp.body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(resp.body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", resp.content_type);
    MHD_add_response_header(r, "Cache-Control",
                            resp.cache_control != NULL ? resp.cache_control : "no-store");
    return send_response(h, conn, resp.status, r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct http_server *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    /* Requests libmicrohttpd refuses itself (malformed, a URI or headers
     * over its memory limit) never reach our handler; the library's log line
     * is the only sign of the status it sent. Count them with ours. */
    const char *code = strstr(msg, "HTTP response code is ");
    if (code != NULL && h != NULL) {
        unsigned status = (unsigned)atoi(code + strlen("HTTP response code is "));
        if (status / 100 < 6)
            atomic_fetch_add_explicit(&h->responses[status / 100], 1, memory_order_relaxed);
    }
    LOG(LOG_WARN, "http endpoint", LF_S("detail", msg));
}

struct http_server *http_start(const struct http_options *o, http_route_fn route, void *ctx,
                               char *err, size_t err_cap)
{
    struct http_server *h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    h->route = route;
    h->ctx = ctx;
    h->web_fd = -1;
    if (o->web_root != NULL) {
        /* Without its files the endpoint still serves its API: say so, go on. */
        h->web_fd = open(o->web_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (h->web_fd < 0)
            LOG(LOG_WARN, "no status page: cannot open the web root", LF_S("web_root", o->web_root),
                LF_S("error", strerror(errno)));
    }
    struct sockaddr_storage ss;
    socklen_t len;
    if (net_resolve(o->bind, o->port, true, &ss, &len, err, err_cap) < 0)
        goto failed;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(
        flags, o->port, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, /* first, so it sees every message */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, o->max_conns,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_conns_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->conn_memory,
        MHD_OPTION_URI_LOG_CALLBACK, keep_raw_uri, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
        MHD_OPTION_END);
    if (h->daemon == NULL) {
        snprintf(err, err_cap, "cannot listen on %s port %u (in use, or a bad address)", o->bind,
                 (unsigned)o->port);
        goto failed;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info != NULL ? info->port : o->port;
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(h->port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons(h->port);
    net_format_addr((struct sockaddr *)&ss, h->bound, sizeof h->bound);
    return h;

failed:
    if (h->web_fd >= 0)
        close(h->web_fd);
    free(h);
    return NULL;
}

void http_stop(struct http_server *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    if (h->web_fd >= 0)
        close(h->web_fd);
    free(h);
}
