/* http: the embedded HTTP endpoint. The only file that includes
 * microhttpd.h. One thread of ours runs everything: it accepts connections
 * itself (caps in total and per address, a backoff when out of descriptors),
 * hands the admitted ones to libmicrohttpd (external polling, epoll, no
 * listen socket of its own) and watches libmicrohttpd's epoll descriptor,
 * all on an event loop (tcpmsg/loop.h, epoll), and ends requests that miss the header
 * deadline. Each request goes to the owner's route callback, then to the
 * static files of the web root. GET and HEAD only.
 *
 * Why not libmicrohttpd's own listener (0.9.75): at its connection limit it
 * stops accepting, so the kernel backlog fills with dead slow connections
 * that it then serves one by one; out of descriptors it retries accept in a
 * busy loop and logs each failure; its timeout is an idle timeout, which a
 * client sending a byte every few seconds never reaches.
 */
#include "tcpmsg/http.h"
#include "tcpmsg/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tcpmsg/basicauth.h"
#include "tcpmsg/iplimit.h"
#include "tcpmsg/log.h"
#include "tcpmsg/net.h"
#include "tcpmsg/webconfig.h"
#include "tcpmsg/webpath.h"

#define LISTEN_BACKLOG 128
#define ACCEPT_BATCH 64                     /* accepts per wakeup, then serve */
#define ACCEPT_BACKOFF_NS 100000000ull       /* out of descriptors: pause 100 ms */
#define MHD_LOG_KINDS 32                     /* distinct libmicrohttpd messages rate-limited apart */

/* One admitted connection, known from accept until libmicrohttpd reports it
 * closed. Only the endpoint's thread touches these. */
struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    uint64_t began_ns; /* when its current request began: connect, or the previous response's end */
    bool waiting;      /* that request's headers are not whole yet */
    bool cut;          /* the deadline shut it down; libmicrohttpd has yet to close it */
};

struct http_server {
    struct MHD_Daemon *daemon;
    http_route_fn route;
    void *ctx;
    int web_fd;    /* the web root directory, or -1 */
    const char *index; /* served for "/" */
    int listen_fd;
    int wake_fd;   /* eventfd: http_stop wakes the thread */
    int spare_fd;  /* held for refusing a client when out of descriptors: /dev/null, or the
                    * last socket refused that way until /dev/null can take its place; or -1 */
    int mhd_fd;    /* libmicrohttpd's epoll descriptor */
    pthread_t thread;
    /* The thread's event loop (epoll): the wake eventfd, libmicrohttpd's
     * descriptor, the listener (stopped during an accept pause), and a
     * timer for libmicrohttpd's timeouts, the header deadlines and the end
     * of a pause. */
    struct loop *loop;
    struct loop_watch wake_watch, mhd_watch, listen_watch;
    struct loop_timer timer;
    _Atomic bool stop;
    /* The endpoint's thread only: */
    struct http_conn *conns;  /* every admitted connection */
    struct http_conn *adding; /* in MHD_add_connection, not yet claimed by notify_connection */
    unsigned nconns;
    unsigned max_conns;
    struct iplimit *per_ip;   /* connections per client address */
    uint64_t header_timeout_ns;
    uint64_t paused_until_ns; /* accepting resumes then (0: not paused) */
    char bound[NET_ADDRSTRLEN];
    uint16_t port;
    /* Any thread reads these: */
    _Atomic uint64_t responses[6]; /* by status class: [2] = 2xx ... [5] = 5xx */
    const struct webconfig *web;   /* NULL: plain HTTP */
    struct basicauth *auth;        /* NULL: no credentials asked */
    const char *open_path;
    char tls_priorities[128];
    _Atomic uint64_t auth_failures[HTTP_AUTH_FAILURE_COUNT];
    _Atomic uint64_t rejected[HTTP_REJECT_REASON_COUNT];
    _Atomic uint64_t open;
    /* Deferred answers (http_defer), completed by any thread. */
    pthread_mutex_t defer_lock;
    struct http_deferred *deferred;
    unsigned ndeferred;
};

struct http_request {
    struct http_server *h;
    struct MHD_Connection *conn;
    const char *path; /* decoded */
};

/* An answer a route gives later from another thread (http_defer): its
 * connection is suspended meanwhile, and resumed by the endpoint's thread
 * once the answer is there. */
struct http_deferred {
    struct http_server *h;
    struct MHD_Connection *conn;
    struct http_response resp; /* set by http_deferred_complete */
    bool done;                 /* under h->defer_lock */
    bool resumed;              /* the endpoint's thread only */
    struct http_deferred *next;
};

#define TAG_OF(name, tag, text) tag,
static const char *const reject_tags[] = { HTTP_REJECT_REASONS(TAG_OF) };
#undef TAG_OF

void http_options_defaults(struct http_options *o)
{
    memset(o, 0, sizeof *o);
    o->bind = "127.0.0.1";
    o->port = 8081;
    o->max_conns = 64;
    o->max_conns_per_ip = 8;
    o->timeout_s = 10;
    o->header_timeout_s = 5;
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

uint64_t http_auth_failures(const struct http_server *h, enum http_auth_failure reason)
{
    return (unsigned)reason < HTTP_AUTH_FAILURE_COUNT
               ? atomic_load_explicit(&h->auth_failures[reason], memory_order_relaxed)
               : 0;
}

uint64_t http_rejected(const struct http_server *h, enum http_reject_reason r)
{
    return r < HTTP_REJECT_REASON_COUNT
               ? atomic_load_explicit(&h->rejected[r], memory_order_relaxed)
               : 0;
}

uint64_t http_connections_open(const struct http_server *h)
{
    return atomic_load_explicit(&h->open, memory_order_relaxed);
}

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
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
    const char *rel = strcmp(path, "/") == 0 ? h->index : path + 1;
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

/* Our record of a libmicrohttpd connection (set by notify_connection). */
static struct http_conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info != NULL ? info->socket_context : NULL;
}

/* The deferred answer of conn's request, taken off the list when done (or
 * whatever its state, with any_state): NULL when there is none. */
static struct http_deferred *take_deferred(struct http_server *h, struct MHD_Connection *conn,
                                           bool any_state)
{
    pthread_mutex_lock(&h->defer_lock);
    struct http_deferred **pp = &h->deferred, *d;
    while ((d = *pp) != NULL && d->conn != conn)
        pp = &d->next;
    if (d != NULL && (d->done || any_state)) {
        *pp = d->next;
        h->ndeferred--;
    } else {
        d = NULL;
    }
    pthread_mutex_unlock(&h->defer_lock);
    return d;
}

/* A request ended (answered, or abandoned): on a kept-alive connection the
 * next one begins now, and its headers are due within the deadline. A
 * deferred answer whose client left while it was being made goes here. */
static void request_done(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *h = cls;
    (void)toe;
    struct http_deferred *d = take_deferred(h, conn, false);
    if (d != NULL) {
        free(d->resp.body);
        free(d);
    }
    free(*req_cls);
    *req_cls = NULL;
    struct http_conn *c = conn_of(conn);
    if (c != NULL) {
        c->waiting = true;
        c->began_ns = net_now_ns();
    }
}

static void auth_failed(struct http_server *h, enum http_auth_failure reason)
{
    atomic_fetch_add_explicit(&h->auth_failures[reason], 1, memory_order_relaxed);
}

/* Basic auth, before any route: true when the request may go on. Else a
 * 401 (or a 429 when the bcrypt budget is spent) is queued in *rc. */
static bool authorized(struct http_server *h, struct MHD_Connection *conn, const char *path,
                       enum MHD_Result *rc)
{
    if (h->auth == NULL || (h->open_path != NULL && strcmp(path, h->open_path) == 0))
        return true;
    char *password = NULL;
    char *user = MHD_basic_auth_get_username_password(conn, &password);
    enum basicauth_result res = BASICAUTH_DENIED;
    if (user == NULL)
        auth_failed(h, HTTP_AUTH_MISSING);
    else
        res = basicauth_check(h->auth, user, password != NULL ? password : "",
                             (int64_t)net_now_ns());
    if (password != NULL) {
        explicit_bzero(password, strlen(password));
        MHD_free(password);
    }
    MHD_free(user);
    if (res == BASICAUTH_OK)
        return true;
    if (res == BASICAUTH_THROTTLED) {
        auth_failed(h, HTTP_AUTH_THROTTLED);
        *rc = send_text(h, conn, MHD_HTTP_TOO_MANY_REQUESTS,
                        "429 too many password checks: try again in a second\n");
        return false;
    }
    if (user != NULL)
        auth_failed(h, HTTP_AUTH_DENIED);
    const char *text = "401 credentials required\n";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    *rc = MHD_NO;
    if (r == NULL)
        return false;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    *rc = MHD_queue_basic_auth_fail_response(conn, "tcpmsg", r);
    MHD_destroy_response(r);
    atomic_fetch_add_explicit(&h->responses[4], 1, memory_order_relaxed);
    return false;
}

/* A route's answer (its body then belongs to libmicrohttpd). */
static enum MHD_Result answer(struct http_server *h, struct MHD_Connection *conn,
                              const struct http_response *resp)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(resp->len, resp->body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(resp->body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", resp->content_type);
    MHD_add_response_header(r, "Cache-Control",
                            resp->cache_control != NULL ? resp->cache_control : "no-store");
    return send_response(h, conn, resp->status, r);
}

struct http_deferred *http_defer(const struct http_request *req)
{
    struct http_server *h = req->h;
    struct http_deferred *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    pthread_mutex_lock(&h->defer_lock);
    bool room = h->ndeferred < HTTP_MAX_DEFERRED;
    if (room) {
        *d = (struct http_deferred){ .h = h, .conn = req->conn, .next = h->deferred };
        h->deferred = d;
        h->ndeferred++;
    }
    pthread_mutex_unlock(&h->defer_lock);
    if (!room) {
        free(d);
        return NULL;
    }
    MHD_suspend_connection(req->conn);
    return d;
}

void http_deferred_complete(struct http_deferred *d, const struct http_response *resp)
{
    struct http_server *h = d->h;
    pthread_mutex_lock(&h->defer_lock);
    d->resp = *resp;
    d->done = true;
    pthread_mutex_unlock(&h->defer_lock);
    uint64_t one = 1;
    if (write(h->wake_fd, &one, sizeof one) < 0) {
        /* Only a counter at its maximum fails: the thread is awake anyway. */
    }
}

/* On the endpoint's thread: resume the connections whose answers are
 * ready; libmicrohttpd then calls on_request again for them. */
static void resume_ready(struct http_server *h)
{
    pthread_mutex_lock(&h->defer_lock);
    for (struct http_deferred *d = h->deferred; d != NULL; d = d->next) {
        if (d->done && !d->resumed) {
            d->resumed = true;
            MHD_resume_connection(d->conn);
        }
    }
    pthread_mutex_unlock(&h->defer_lock);
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
    struct http_conn *c = conn_of(conn);
    if (c != NULL)
        c->waiting = false; /* its headers are whole: the deadline is met */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *upload_data_size = 0; /* whatever body came, we will not read it */
        return send_text(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "405 method not allowed\n");
    }
    struct http_deferred *d = take_deferred(h, conn, false);
    if (d != NULL) { /* resumed: the answer is ready */
        struct http_response done = d->resp;
        free(d);
        return answer(h, conn, &done);
    }
    const char *raw = *req_cls != NULL ? *req_cls : "";
    size_t n = strcspn(raw, "?#");
    char path[WEBPATH_MAX];
    if (webpath_decode(raw, n, path, sizeof path) < 0)
        return send_text(h, conn, MHD_HTTP_BAD_REQUEST, "400 bad path\n");
    enum MHD_Result denied;
    if (!authorized(h, conn, path, &denied))
        return denied;

    struct http_request req = { .h = h, .conn = conn, .path = path };
    struct http_response resp = { 0 };
    h->route(h->ctx, &req, &resp);
    if (resp.status == HTTP_DEFERRED)
        return MHD_YES; /* suspended: http_deferred_complete brings the answer */
    if (resp.status == 0)
        return serve_file(h, conn, path);
    return answer(h, conn, &resp);
}

/* libmicrohttpd's messages, each kind (its format string) rate-limited on
 * its own: a client can make the library repeat any of them. */
static struct log_ratelimit *mhd_log_limit(const char *fmt)
{
    static _Atomic(const char *) fmts[MHD_LOG_KINDS];
    static struct log_ratelimit limits[MHD_LOG_KINDS + 1]; /* the last: all the others */
    for (size_t i = 0; i < MHD_LOG_KINDS; i++) {
        const char *seen = atomic_load(&fmts[i]);
        if (seen == NULL && atomic_compare_exchange_strong(&fmts[i], &seen, fmt))
            return &limits[i];
        if (seen == fmt)
            return &limits[i];
    }
    return &limits[MHD_LOG_KINDS];
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct http_server *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    /* Requests libmicrohttpd refuses itself (malformed, a URI or headers
     * over its memory limit) never reach our handler; the library's log line
     * is the only sign of the status it sent. Count them with ours. */
    const char *code = strstr(msg, "HTTP response code is ");
    /* A failed TLS handshake (plain HTTP, a refused client certificate) is
     * only visible here too. */
    if (h != NULL && strstr(msg, "handshake message out of context") != NULL)
        auth_failed(h, HTTP_AUTH_TLS_HANDSHAKE);
    if (code != NULL && h != NULL) {
        unsigned status = (unsigned)atoi(code + strlen("HTTP response code is "));
        if (status / 100 < 6)
            count(&h->responses[status / 100]);
    }
    LOG_RL(mhd_log_limit(fmt), LOG_WARN, "http endpoint", LF_S("detail", msg));
}

/* ---- connections: admission, tracking, the header deadline ------------------ */

static void conn_release(struct http_server *h, struct http_conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    h->nconns--;
    atomic_store_explicit(&h->open, h->nconns, memory_order_relaxed);
    iplimit_release(h->per_ip, (const struct sockaddr *)&c->peer);
    free(c);
}

static void tls_on_connection(struct http_server *h, struct MHD_Connection *conn);

/* libmicrohttpd takes a connection (synchronously, inside
 * MHD_add_connection: we poll for it) and gives it back once it has closed
 * it, before it closes the descriptor. A TLS connection gets its client
 * certificate policy here, before its handshake. */
static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = h->adding;
        h->adding = NULL;
        if (h->web != NULL && h->web->tls)
            tls_on_connection(h, conn);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
        conn_release(h, *socket_context);
        *socket_context = NULL;
    }
}

/* The answer to a refused client, by reason. A connection past the header
 * deadline is cut, not answered: it has none. */
static const char *const refusal_text[HTTP_REJECT_REASON_COUNT] = {
    [HTTP_REJECT_PER_IP] = "503 too many connections from your address\n",
    [HTTP_REJECT_MAX_CONNS] = "503 too many connections\n",
    [HTTP_REJECT_NO_FDS] = "503 the server is out of file descriptors\n",
};

/* Refuse an accepted client: a short 503 if its socket takes it at once,
 * then close. What it already sent is read first, so that the close does not
 * turn into a reset that would discard the answer. */
static void answer_refusal(struct http_server *h, int fd, const struct sockaddr_storage *peer,
                           enum http_reject_reason r)
{
    char buf[1024];
    for (int i = 0; i < 4 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++)
        ;
    const char *body = refusal_text[r] != NULL ? refusal_text[r] : "503 refused\n";
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
                     strlen(body), body);
    if (send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
        count(&h->responses[5]);
    /* The answer, then our FIN, then what else arrived: a request that comes
     * after the close can still draw a reset, but the client has the answer
     * and the end of it by then. */
    shutdown(fd, SHUT_WR);
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
        ;
    count(&h->rejected[r]);
    char who[NET_ADDRSTRLEN];
    net_format_addr((const struct sockaddr *)peer, who, sizeof who);
    LOG_RATELIMITED(LOG_WARN, "http connection refused", LF_S("peer", who),
                    LF_S("reason", reject_tags[r]));
}

static void refuse(struct http_server *h, int fd, const struct sockaddr_storage *peer,
                   enum http_reject_reason r)
{
    answer_refusal(h, fd, peer, r);
    close(fd);
}

/* An accepted client: within the caps it goes to libmicrohttpd, which owns
 * (and closes) the descriptor from then on, whatever it answers. */
static void admit(struct http_server *h, int fd, const struct sockaddr_storage *peer,
                  socklen_t len, uint64_t now)
{
    if (h->nconns >= h->max_conns) {
        refuse(h, fd, peer, HTTP_REJECT_MAX_CONNS);
        return;
    }
    if (iplimit_acquire(h->per_ip, (const struct sockaddr *)peer) < 0) {
        refuse(h, fd, peer, HTTP_REJECT_PER_IP);
        return;
    }
    struct http_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        iplimit_release(h->per_ip, (const struct sockaddr *)peer);
        refuse(h, fd, peer, HTTP_REJECT_NO_FDS);
        return;
    }
    *c = (struct http_conn){ .next = h->conns, .fd = fd, .peer = *peer, .peer_len = len,
                             .began_ns = now, .waiting = true };
    if (h->conns != NULL)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    atomic_store_explicit(&h->open, h->nconns, memory_order_relaxed);
    h->adding = c;
    if (MHD_add_connection(h->daemon, fd, (const struct sockaddr *)peer, len) != MHD_YES)
        LOG_RATELIMITED(LOG_WARN, "http connection not taken by libmicrohttpd",
                        LF_S("error", strerror(errno)));
    if (h->adding != NULL) /* never started: no close will be notified */
        conn_release(h, c);
    h->adding = NULL;
}

/* Take /dev/null as the spare descriptor when one is free, giving up the
 * answered socket that was holding the slot. */
static void renew_spare(struct http_server *h)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (h->spare_fd >= 0)
        close(h->spare_fd);
    h->spare_fd = fd;
}

/* Out of descriptors (or memory): the listener stays readable, so retrying
 * at once would spin. Use the spare descriptor to take one waiting client
 * and tell it why (libuv's EMFILE trick), then pause accepting. The spare
 * is freed and taken again with the workers' accepts held off (epoll), and
 * the answered socket keeps the slot as the next spare: closing it and
 * reopening /dev/null would leave a moment in which a worker's accept takes
 * the descriptor, and the endpoint would have no spare left. */
static void out_of_descriptors(struct http_server *h, int e, uint64_t now)
{
    LOG_RATELIMITED(LOG_WARN, "http accept failed, pausing accepts", LF_S("error", strerror(e)),
                    LF_U("open_http_conns", h->nconns), LF_D("retry_in_s", ACCEPT_BACKOFF_NS / 1e9));
    int fd = -1;
    struct sockaddr_storage peer;
    if (h->spare_fd >= 0) {
        socklen_t len = sizeof peer;
        fd = net_accept_into_freed(&h->spare_fd, h->listen_fd, (struct sockaddr *)&peer, &len,
                                   SOCK_CLOEXEC);
    }
    if (fd >= 0) {
        answer_refusal(h, fd, &peer, HTTP_REJECT_NO_FDS); /* counts it */
        h->spare_fd = fd;
    } else {
        count(&h->rejected[HTTP_REJECT_NO_FDS]);
    }
    renew_spare(h);
    h->paused_until_ns = now + ACCEPT_BACKOFF_NS;
}

static void accept_some(struct http_server *h, uint64_t now)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(h->listen_fd, (struct sockaddr *)&peer, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(h, fd, &peer, len, now);
            continue;
        }
        switch (errno) {
        case EINTR:
        case ECONNABORTED: /* the client gave up while queued */
            continue;
        case EAGAIN:
            return;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            out_of_descriptors(h, errno, now);
            return;
        default:
            LOG_RATELIMITED(LOG_WARN, "http accept failed", LF_S("error", strerror(errno)));
            h->paused_until_ns = now + ACCEPT_BACKOFF_NS;
            return;
        }
    }
}

/* End every request whose headers are late. shutdown() rather than close():
 * libmicrohttpd owns the descriptor; it sees the end at once and closes it
 * (and tells notify_connection) on this same thread, so the descriptor
 * cannot have been closed and reused under us. Returns the next deadline
 * (UINT64_MAX: none). */
static uint64_t enforce_deadlines(struct http_server *h, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (struct http_conn *c = h->conns; c != NULL; c = c->next) {
        if (!c->waiting || c->cut)
            continue;
        uint64_t due = c->began_ns + h->header_timeout_ns;
        if (now < due) {
            next = due < next ? due : next;
            continue;
        }
        shutdown(c->fd, SHUT_RDWR);
        c->cut = true;
        count(&h->rejected[HTTP_REJECT_HEADER_TIMEOUT]);
        char who[NET_ADDRSTRLEN];
        net_format_addr((const struct sockaddr *)&c->peer, who, sizeof who);
        LOG_RATELIMITED(LOG_WARN, "http connection ended: no whole request in time",
                        LF_S("peer", who), LF_D("deadline_s", h->header_timeout_ns / 1e9));
    }
    return next;
}

/* When the thread must look again at the latest: libmicrohttpd's next
 * timeout, the next header deadline, or the end of an accept pause
 * (UINT64_MAX: none). */
static uint64_t next_wake(struct http_server *h, uint64_t now, uint64_t next_deadline)
{
    uint64_t wake = next_deadline;
    if (h->paused_until_ns != 0 && h->paused_until_ns < wake)
        wake = h->paused_until_ns;
    MHD_UNSIGNED_LONG_LONG mhd_ms;
    if (MHD_get_timeout(h->daemon, &mhd_ms) == MHD_YES && mhd_ms < 60000 &&
        now + mhd_ms * 1000000ull < wake)
        wake = now + mhd_ms * 1000000ull;
    return wake;
}

/* The eventfd: http_stop, or a deferred answer that is ready. */
static void on_wake(struct loop_watch *w, unsigned events, uint64_t now)
{
    (void)events;
    (void)now;
    struct http_server *h = w->data;
    uint64_t n;
    if (read(h->wake_fd, &n, sizeof n) < 0) {
        /* EAGAIN: another wakeup read it first */
    }
    if (atomic_load(&h->stop))
        loop_stop(h->loop);
    else
        resume_ready(h); /* after_wakeup's MHD_run answers them */
}

static void on_listen(struct loop_watch *w, unsigned events, uint64_t now)
{
    (void)events;
    struct http_server *h = w->data;
    accept_some(h, now);
    if (h->paused_until_ns != 0)
        loop_watch_stop(h->loop, &h->listen_watch); /* back when the pause ends */
}

/* libmicrohttpd's descriptor and the timer only wake the loop: the work is
 * done after every wakeup (after_wakeup). */
static void on_mhd(struct loop_watch *w, unsigned events, uint64_t now)
{
    (void)w;
    (void)events;
    (void)now;
}

static void on_timer(struct loop_timer *t, uint64_t now)
{
    (void)t;
    (void)now;
}

/* After each wakeup: end an accept pause that is over, let libmicrohttpd
 * run, cut late requests, and set the timer for the next look. */
static void after_wakeup(void *ctx, uint64_t now)
{
    struct http_server *h = ctx;
    if (atomic_load(&h->stop)) {
        loop_stop(h->loop);
        return;
    }
    if (h->paused_until_ns != 0 && now >= h->paused_until_ns) {
        h->paused_until_ns = 0;
        renew_spare(h);
        if (loop_watch_start(h->loop, &h->listen_watch, h->listen_fd, LOOP_READABLE) < 0)
            h->paused_until_ns = now + ACCEPT_BACKOFF_NS;
    }
    MHD_run(h->daemon);
    uint64_t t = net_now_ns();
    uint64_t wake = next_wake(h, t, enforce_deadlines(h, t));
    if (wake == UINT64_MAX)
        loop_timer_stop(h->loop, &h->timer);
    else
        loop_timer_start(h->loop, &h->timer, wake);
}

static void *http_thread(void *arg)
{
    struct http_server *h = arg;
    h->wake_watch = (struct loop_watch){ .cb = on_wake, .data = h };
    h->mhd_watch = (struct loop_watch){ .cb = on_mhd, .data = h };
    h->listen_watch = (struct loop_watch){ .cb = on_listen, .data = h, .fd = -1 };
    h->timer = (struct loop_timer){ .cb = on_timer, .data = h };
    loop_set_hook(h->loop, after_wakeup, h);
    int rc = loop_watch_start(h->loop, &h->wake_watch, h->wake_fd, LOOP_READABLE);
    if (rc == 0)
        rc = loop_watch_start(h->loop, &h->mhd_watch, h->mhd_fd, LOOP_READABLE);
    if (rc == 0)
        rc = loop_watch_start(h->loop, &h->listen_watch, h->listen_fd, LOOP_READABLE);
    if (rc == 0)
        rc = loop_run(h->loop);
    if (rc < 0)
        LOG(LOG_ERROR, "http endpoint: event loop failed", LF_S("error", strerror(-rc)));
    loop_watch_stop(h->loop, &h->listen_watch);
    loop_watch_stop(h->loop, &h->mhd_watch);
    loop_watch_stop(h->loop, &h->wake_watch);
    loop_timer_stop(h->loop, &h->timer);
    return NULL;
}

/* During the handshake, once the client's certificate message is in: a
 * certificate, if sent, must chain to client_ca_file (the trust list of the
 * credentials). Whether one must be sent at all is GNUTLS_CERT_REQUIRE's
 * business. Non-zero fails the handshake. */
static int verify_client_cert(gnutls_session_t session)
{
    unsigned n = 0;
    if (gnutls_certificate_get_peers(session, &n) == NULL || n == 0)
        return 0;
    unsigned status = 0;
    if (gnutls_certificate_verify_peers2(session, &status) < 0 || status != 0)
        return -1;
    return 0;
}

/* A new TLS connection, before its handshake: apply the client certificate
 * policy. libmicrohttpd itself only ever asks for a certificate (when a
 * trust list is set) and never checks it. (gnutls_session_set_verify_cert
 * would also refuse a client that sends none, which VerifyClientCertIfGiven
 * must let in.) */
static void tls_on_connection(struct http_server *h, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (info == NULL || info->tls_session == NULL)
        return;
    gnutls_session_t session = info->tls_session;
    gnutls_certificate_request_t req = GNUTLS_CERT_IGNORE;
    bool verify = false;
    switch (h->web->client_auth) {
    case WEBCONFIG_NO_CLIENT_CERT:
    case WEBCONFIG_CLIENT_AUTH_COUNT:
        break;
    case WEBCONFIG_REQUEST_CLIENT_CERT:
        req = GNUTLS_CERT_REQUEST;
        break;
    case WEBCONFIG_REQUIRE_ANY_CLIENT_CERT:
        req = GNUTLS_CERT_REQUIRE;
        break;
    case WEBCONFIG_VERIFY_CLIENT_CERT_IF_GIVEN:
        req = GNUTLS_CERT_REQUEST;
        verify = true;
        break;
    case WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT:
        req = GNUTLS_CERT_REQUIRE;
        verify = true;
        break;
    }
    gnutls_certificate_server_set_request(session, req);
    if (verify)
        gnutls_session_set_verify_function(session, verify_client_cert);
}

/* The GnuTLS priority string for the versions the web config allows. */
static void tls_priorities(const struct webconfig *w, char *out, size_t cap)
{
    static const char *const vers[] = { "TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3" };
    size_t n = (size_t)snprintf(out, cap, "NORMAL:-VERS-ALL");
    for (unsigned v = w->min_version; v <= w->max_version && n < cap; v++)
        n += (size_t)snprintf(out + n, cap - n, ":+VERS-%s", vers[v]);
    if (w->prefer_server_ciphers && n < cap)
        snprintf(out + n, cap - n, ":%%SERVER_PRECEDENCE");
}

/* The HTTPS options of MHD_start_daemon (an MHD_OPTION_ARRAY), or an empty
 * array for plain HTTP. */
static void tls_options(struct http_server *h, struct MHD_OptionItem *opts, unsigned *flags)
{
    const struct webconfig *w = h->web;
    size_t n = 0;
    if (w != NULL && w->tls) {
        *flags |= MHD_USE_TLS;
        tls_priorities(w, h->tls_priorities, sizeof h->tls_priorities);
        opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, w->cert_pem };
        opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, w->key_pem };
        opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0, h->tls_priorities };
        if (w->client_ca_pem != NULL)
            opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0, w->client_ca_pem };
    }
    opts[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
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
    h->index = o->index != NULL ? o->index : "index.html";
    h->web = o->web;
    h->auth = o->auth;
    h->open_path = o->open_path;
    h->wake_fd = -1;
    pthread_mutex_init(&h->defer_lock, NULL);
    h->max_conns = o->max_conns;
    h->per_ip = iplimit_new(o->max_conns, o->max_conns_per_ip);
    if (h->per_ip == NULL) {
        snprintf(err, err_cap, "out of memory");
        free(h);
        return NULL;
    }
    h->header_timeout_ns = (uint64_t)o->header_timeout_s * 1000000000ull;
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
        goto failed_resolve;
    h->listen_fd = net_listen((struct sockaddr *)&ss, len, LISTEN_BACKLOG, false);
    if (h->listen_fd < 0) {
        snprintf(err, err_cap, "cannot listen on %s port %u: %s", o->bind, (unsigned)o->port,
                 strerror(-h->listen_fd));
        goto failed_resolve;
    }
    len = sizeof ss;
    getsockname(h->listen_fd, (struct sockaddr *)&ss, &len);
    h->port = net_addr_port((struct sockaddr *)&ss);
    net_format_addr((struct sockaddr *)&ss, h->bound, sizeof h->bound);

    /* No thread and no listener of libmicrohttpd's own: ours does both. Its
     * connection limit is ours (a backstop); the per-address one is ours. */
    unsigned flags = MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    struct MHD_OptionItem tls_opts[8];
    tls_options(h, tls_opts, &flags);
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL,
        on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, /* first, so it sees every message */
        MHD_OPTION_CONNECTION_LIMIT, o->max_conns,
        MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->conn_memory,
        MHD_OPTION_URI_LOG_CALLBACK, keep_raw_uri, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, request_done, h,
        MHD_OPTION_NOTIFY_CONNECTION, notify_connection, h,
        MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        h->daemon != NULL ? MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (info == NULL) {
        if (flags & MHD_USE_TLS)
            snprintf(err, err_cap, "cannot start HTTPS on %s port %u (a certificate or key "
                     "GnuTLS refuses: see the log above)", o->bind, (unsigned)o->port);
        else
            snprintf(err, err_cap, "cannot start libmicrohttpd");
        goto failed_daemon;
    }
    h->mhd_fd = info->epoll_fd;
    h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    /* epoll: one HTTP thread with a few descriptors gains nothing from a ring. */
    struct loop_options lo = { .backend = LOOP_EPOLL };
    int rc = h->wake_fd < 0 ? errno : -loop_new(&h->loop, &lo, NULL);
    if (rc == 0)
        rc = pthread_create(&h->thread, NULL, http_thread, h);
    if (rc != 0) {
        snprintf(err, err_cap, "cannot start the HTTP thread: %s", strerror(rc));
        goto failed_thread;
    }
    return h;

failed_thread:
    loop_free(h->loop);
    if (h->spare_fd >= 0)
        close(h->spare_fd);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
failed_daemon:
    if (h->daemon != NULL)
        MHD_stop_daemon(h->daemon);
    close(h->listen_fd);
failed_resolve:
    if (h->web_fd >= 0)
        close(h->web_fd);
    iplimit_free(h->per_ip);
    free(h);
    return NULL;
}

void http_stop(struct http_server *h)
{
    if (h == NULL)
        return;
    atomic_store(&h->stop, true);
    uint64_t one = 1;
    if (write(h->wake_fd, &one, sizeof one) < 0) {
        /* The counter cannot overflow here: the thread will see stop anyway. */
    }
    pthread_join(h->thread, NULL);
    loop_free(h->loop);
    /* Answers completed after the thread's last look: resumed, so that
     * stopping the daemon closes their connections (request_done frees
     * them). The caller completed every deferred answer before this. */
    resume_ready(h);
    MHD_stop_daemon(h->daemon); /* closes its connections: each is released */
    while (h->deferred != NULL) {
        struct http_deferred *d = h->deferred;
        h->deferred = d->next;
        free(d->resp.body);
        free(d);
    }
    pthread_mutex_destroy(&h->defer_lock);
    while (h->conns != NULL)
        conn_release(h, h->conns);
    close(h->listen_fd);
    close(h->wake_fd);
    if (h->spare_fd >= 0)
        close(h->spare_fd);
    if (h->web_fd >= 0)
        close(h->web_fd);
    iplimit_free(h->per_ip);
    free(h);
}
