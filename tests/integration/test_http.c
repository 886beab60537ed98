/* Integration: tcpmsgd's HTTP endpoint. Exact metric counts after known
 * traffic (JSON and Prometheus agree), format negotiation, /healthz while
 * draining, /api/connections, hostile requests against the static file
 * server, and client RTT reports. Each case runs alone: test_http CASE.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "tcpmsg/frame.h"
#include "tcpmsg/hist.h"
#include "tcpmsg/rttreport.h"

#define T IT_IO_TIMEOUT_MS

/* ---- helpers ------------------------------------------------------------------ */

/* One request, or fail; the caller frees r. */
static void request(const struct it_server *s, const char *method, const char *target,
                    const char *headers, struct it_http *r)
{
    int rc = it_http_request(s->http_port, method, target, headers, NULL, T, r);
    if (rc < 0)
        fail_msg("%s %s: %s", method, target, strerror(-rc));
}

/* The status of a request, after checking its reply is whole. */
static int status_of(const struct it_server *s, const char *method, const char *target,
                     const char *headers)
{
    struct it_http r;
    request(s, method, target, headers, &r);
    int status = r.status;
    it_http_free(&r);
    return status;
}

/* Sum of the values of a labelled counter's object. */
static long long label_sum(json_t *doc, const char *path)
{
    json_t *o = it_json_path(doc, path);
    if (!json_is_object(o))
        fail_msg("%s is not an object", path);
    long long sum = 0;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
        sum += json_integer_value(v);
    return sum;
}

/* A payload of len bytes, different per (conn, msg). */
static uint8_t *payload(size_t len, int conn, int msg)
{
    uint8_t *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(conn * 31 + msg * 7 + i);
    return p;
}

/* ---- (a) exact counts ------------------------------------------------------------ */

#define MAX_PAYLOAD 100000

/* Framed traffic: per connection, the payload sizes of its messages. */
static const size_t framed_sizes[][5] = {
    { 0, 1, 100 },
    { 5000, 70000 }, /* 70000 is more than one read of the server's initial buffer */
    { 17, 17, 17, 17 },
};
static const size_t framed_counts[] = { 3, 2, 4 };
#define NFRAMED (sizeof framed_counts / sizeof framed_counts[0])

/* Text traffic: three lines (one with CR LF, one empty), and their replies. */
static const char text_in[] = "hello\na\r\n\n";
static const char text_out[] = "hello\na\n\n";
#define TEXT_MSGS 3
#define TEXT_PAYLOAD 6 /* "hello" + "a" + "" */

struct expect {
    const char *json;  /* dotted path in the JSON document */
    const char *prom;  /* the Prometheus series */
    long long value;
};

static void check_expectations(const struct it_server *s, json_t *doc, const struct expect *e,
                               size_t n)
{
    struct it_http r;
    request(s, "GET", "/metrics?format=prometheus", NULL, &r);
    assert_int_equal(r.status, 200);
    for (size_t i = 0; i < n; i++) {
        /* Counts are JSON integers; gauges are numbers. */
        bool gauge = strncmp(e[i].json, "gauges.", 7) == 0;
        if (!gauge && !json_is_integer(it_json_path(doc, e[i].json)))
            fail_msg("JSON %s is not an integer", e[i].json);
        double got = it_json_num(doc, e[i].json);
        if (got != (double)e[i].value)
            fail_msg("JSON %s is %.17g, want %lld", e[i].json, got, e[i].value);
        double v;
        if (!it_prom_sample(r.body, e[i].prom, &v))
            fail_msg("Prometheus: no sample %s", e[i].prom);
        if (v != (double)e[i].value)
            fail_msg("Prometheus %s is %.17g, want %lld", e[i].prom, v, e[i].value);
    }
    it_http_free(&r);
}

static void test_metrics_exact_counts(void **state)
{
    (void)state;
    const char *args[] = { "--threads", "2", "--max-payload", "100000", NULL };
    IT_START(s, args, 0);

    /* Framed connections, all open at once, each message answered. */
    int fd[NFRAMED];
    long long framed_msgs = 0, framed_bytes = 0, payload_sum = 0;
    for (size_t c = 0; c < NFRAMED; c++)
        fd[c] = it_must_connect(s->port);
    for (size_t c = 0; c < NFRAMED; c++) {
        for (size_t m = 0; m < framed_counts[c]; m++) {
            size_t len = framed_sizes[c][m];
            uint8_t *p = payload(len, (int)c, (int)m);
            int rc = it_roundtrip(fd[c], p, len, T);
            if (rc != 0)
                fail_msg("conn %zu message %zu: %s", c, m, strerror(-rc));
            free(p);
            framed_msgs++;
            framed_bytes += FRAME_HEADER_SIZE + (long long)len;
            payload_sum += (long long)len;
        }
    }

    /* A text connection. */
    int tfd = it_must_connect(s->port);
    char reply[sizeof text_out];
    assert_int_equal(it_send_all(tfd, text_in, strlen(text_in), T), 0);
    assert_int_equal(it_recv_exact(tfd, reply, strlen(text_out), T), 0);
    assert_memory_equal(reply, text_out, strlen(text_out));

    /* An oversize frame: an error frame back, then the server closes. */
    int ofd = it_must_connect(s->port);
    uint8_t hdr[FRAME_HEADER_SIZE];
    frame_header_encode(hdr, FRAME_DATA, 2 * MAX_PAYLOAD);
    assert_int_equal(it_send_all(ofd, hdr, sizeof hdr, T), 0);
    uint8_t err[512], type = 0xff;
    ssize_t elen = it_recv_frame(ofd, &type, err, sizeof err, T);
    assert_true(elen > 0);
    assert_int_equal(type, FRAME_ERROR);
    assert_int_equal(err[0], FRAME_ERR_OVERSIZE);
    assert_int_equal(it_expect_eof(ofd, T), 0);

    /* Everyone leaves cleanly (nothing unread: a FIN, not a reset). */
    for (size_t c = 0; c < NFRAMED; c++)
        close(fd[c]);
    close(tfd);
    close(ofd);
    const long long accepted = NFRAMED + 2;
    json_decref(it_wait_metric(s, "gauges.connections_open", 0));
    json_t *doc = NULL;
    {
        /* Closed counts land just after the open gauge drops: wait for them too. */
        int64_t deadline = it_now_ms() + IT_SETTLE_MS;
        for (;;) {
            doc = it_must_get_json(s->http_port, "/metrics");
            if (label_sum(doc, "counters.connections_closed_total") == accepted ||
                it_now_ms() >= deadline)
                break;
            json_decref(doc);
            it_sleep_ms(20);
        }
    }
    assert_int_equal(label_sum(doc, "counters.connections_closed_total"), accepted);
    assert_int_equal(label_sum(doc, "counters.connections_rejected_total"), 0);
    assert_int_equal(label_sum(doc, "counters.errors_total"), 1); /* the oversize frame */

    const long long error_frame = FRAME_HEADER_SIZE + elen;
    const struct expect e[] = {
        { "counters.connections_accepted_total", "tcpmsg_connections_accepted_total", accepted },
        { "gauges.connections_open", "tcpmsg_connections_open", 0 },
        { "counters.connections_closed_total.peer_closed",
          "tcpmsg_connections_closed_total{reason=\"peer_closed\"}", NFRAMED + 1 },
        { "counters.connections_closed_total.oversize",
          "tcpmsg_connections_closed_total{reason=\"oversize\"}", 1 },
        { "counters.connections_closed_total.reset",
          "tcpmsg_connections_closed_total{reason=\"reset\"}", 0 },
        { "counters.errors_total.protocol", "tcpmsg_errors_total{kind=\"protocol\"}", 1 },
        { "counters.errors_total.http", "tcpmsg_errors_total{kind=\"http\"}", 0 },
        { "counters.messages_received_total.framed",
          "tcpmsg_messages_received_total{mode=\"framed\"}", framed_msgs },
        { "counters.messages_received_total.text",
          "tcpmsg_messages_received_total{mode=\"text\"}", TEXT_MSGS },
        { "counters.messages_sent_total.framed", "tcpmsg_messages_sent_total{mode=\"framed\"}",
          framed_msgs },
        { "counters.messages_sent_total.text", "tcpmsg_messages_sent_total{mode=\"text\"}",
          TEXT_MSGS },
        /* Bytes on the wire: headers and payloads, plus the oversize header
         * in and its error frame out; text lines with their line ends. */
        { "counters.received_bytes_total.framed", "tcpmsg_received_bytes_total{mode=\"framed\"}",
          framed_bytes + FRAME_HEADER_SIZE },
        { "counters.received_bytes_total.text", "tcpmsg_received_bytes_total{mode=\"text\"}",
          (long long)strlen(text_in) },
        { "counters.sent_bytes_total.framed", "tcpmsg_sent_bytes_total{mode=\"framed\"}",
          framed_bytes + error_frame },
        { "counters.sent_bytes_total.text", "tcpmsg_sent_bytes_total{mode=\"text\"}",
          (long long)strlen(text_out) },
        { "counters.client_rtt_reports_total", "tcpmsg_client_rtt_reports_total", 0 },
        { "histograms.message_size_bytes.count", "tcpmsg_message_size_bytes_count",
          framed_msgs + TEXT_MSGS },
        { "histograms.service_time_seconds.count", "tcpmsg_service_time_seconds_count",
          framed_msgs + TEXT_MSGS },
        { "histograms.client_rtt_seconds.count", "tcpmsg_client_rtt_seconds_count", 0 },
    };
    check_expectations(s, doc, e, sizeof e / sizeof e[0]);
    /* Payload sizes are recorded exactly below 256 and within 0.4% above. */
    double size_sum = it_json_num(doc, "histograms.message_size_bytes.sum");
    assert_true(size_sum == (double)(payload_sum + TEXT_PAYLOAD));
    assert_true(it_json_num(doc, "histograms.message_size_bytes.max") == 70000);
    json_decref(doc);
    it_server_free(s);
}

/* ---- (b) format negotiation ------------------------------------------------------ */

#define CT_PROMETHEUS "text/plain; version=0.0.4"
#define CT_OPENMETRICS "application/openmetrics-text; version=1.0.0"

/* GET /metrics with these headers: the status, and a check of the
 * Content-Type's start and of the body's shape. */
static void expect_format(const struct it_server *s, const char *target, const char *headers,
                          const char *want_ct)
{
    struct it_http r;
    request(s, "GET", target, headers, &r);
    if (r.status != 200)
        fail_msg("GET %s (%s): status %d", target, headers ? headers : "no headers", r.status);
    char ct[256];
    if (it_http_header(&r, "Content-Type", ct, sizeof ct) == NULL)
        fail_msg("GET %s: no Content-Type", target);
    if (strncmp(ct, want_ct, strlen(want_ct)) != 0)
        fail_msg("GET %s (%s): Content-Type '%s', want '%s...'", target,
                 headers ? headers : "no headers", ct, want_ct);
    if (strcmp(want_ct, "application/json") == 0) {
        json_error_t e;
        json_t *doc = json_loadb(r.body, r.body_len, 0, &e);
        if (doc == NULL)
            fail_msg("GET %s: JSON body does not parse: %s", target, e.text);
        json_decref(doc);
    } else {
        assert_true(strncmp(r.body, "# HELP ", 7) == 0);
        bool om = strcmp(want_ct, CT_OPENMETRICS) == 0;
        bool has_eof = r.body_len >= 6 && strcmp(r.body + r.body_len - 6, "# EOF\n") == 0;
        if (om != has_eof)
            fail_msg("GET %s: '# EOF' %s", target, om ? "missing" : "in Prometheus text");
    }
    it_http_free(&r);
}

static void test_format_negotiation(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    expect_format(s, "/metrics", NULL, "application/json");
    expect_format(s, "/metrics", "Accept: */*\r\n", "application/json");
    expect_format(s, "/metrics",
                  "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,"
                  "image/avif,image/webp,*/*;q=0.8\r\n",
                  "application/json");
    expect_format(s, "/metrics", "Accept: application/json\r\n", "application/json");
    expect_format(s, "/metrics", "Accept: text/plain\r\n", CT_PROMETHEUS);
    expect_format(s, "/metrics", "Accept: text/plain;version=0.0.4;q=0.9,*/*;q=0.1\r\n",
                  CT_PROMETHEUS);
    expect_format(s, "/metrics", "Accept: application/openmetrics-text\r\n", CT_OPENMETRICS);
    /* What Prometheus itself sends. */
    expect_format(s, "/metrics",
                  "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-"
                  "text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n",
                  CT_OPENMETRICS);
    /* ?format= wins over Accept. */
    expect_format(s, "/metrics?format=json", "Accept: text/plain\r\n", "application/json");
    expect_format(s, "/metrics?format=prometheus", "Accept: application/openmetrics-text\r\n",
                  CT_PROMETHEUS);
    expect_format(s, "/metrics?format=openmetrics", NULL, CT_OPENMETRICS);
    assert_int_equal(status_of(s, "GET", "/metrics?format=bogus", NULL), 400);
    assert_int_equal(status_of(s, "GET", "/metrics?format=", NULL), 400);

    /* HEAD: the headers of a GET, no body. */
    struct it_http r;
    request(s, "HEAD", "/metrics?format=prometheus", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    char ct[128];
    assert_non_null(it_http_header(&r, "Content-Type", ct, sizeof ct));
    assert_true(strncmp(ct, CT_PROMETHEUS, strlen(CT_PROMETHEUS)) == 0);
    it_http_free(&r);
    it_server_free(s);
}

/* ---- (c) healthz ------------------------------------------------------------------- */

static void test_healthz(void **state)
{
    (void)state;
    const char *args[] = { "--drain-timeout", "2", NULL };
    IT_START(s, args, 0);
    struct it_http r;
    request(s, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    it_http_free(&r);

    /* An idle client keeps the drain going until it leaves (or 2 s). */
    int fd = it_must_connect(s->port);
    assert_int_equal(it_roundtrip(fd, "x", 1, T), 0);
    int64_t term = it_now_ms();
    assert_int_equal(it_server_signal(s, SIGTERM), 0);
    int status = 0;
    while (it_now_ms() - term < 1500) {
        request(s, "GET", "/healthz", NULL, &r);
        status = r.status;
        if (status == 503)
            assert_string_equal(r.body, "draining\n");
        it_http_free(&r);
        if (status == 503)
            break;
        IT_CHECK(status == 200);
        it_sleep_ms(10);
    }
    assert_int_equal(status, 503);
    json_t *doc = it_must_get_json(s->http_port, "/metrics");
    assert_true(json_is_true(it_json_path(doc, "server.draining")));
    assert_true(it_json_num(doc, "gauges.draining") == 1);
    json_decref(doc);

    /* The client leaves; the server finishes its drain and exits cleanly. */
    close(fd);
    assert_int_equal(it_server_wait_exit(s, 2000 + 3000), 0);
    it_server_free(s);
}

/* ---- (d) /api/connections ---------------------------------------------------------- */

struct conn_plan {
    int fd;
    char peer[64];
    int msgs;
    size_t len;
    long long bytes; /* each way */
};

/* The connection entry whose peer is peer, in the array at path. */
static json_t *find_peer(json_t *doc, const char *path, const char *peer)
{
    json_t *list = it_json_path(doc, path);
    if (!json_is_array(list))
        fail_msg("%s is not an array", path);
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c) {
        if (strcmp(json_string_value(json_object_get(c, "peer")), peer) == 0)
            return c;
    }
    return NULL;
}

/* The peers of the listed connections, in order, must be these. */
static void expect_order(const struct it_server *s, const char *target, const char *const *peers,
                         size_t n)
{
    json_t *doc = it_must_get_json(s->http_port, target);
    json_t *list = it_json_path(doc, "connections");
    if (json_array_size(list) != n)
        fail_msg("%s: %zu connections, want %zu", target, json_array_size(list), n);
    for (size_t i = 0; i < n; i++) {
        const char *got = json_string_value(json_object_get(json_array_get(list, i), "peer"));
        if (got == NULL || strcmp(got, peers[i]) != 0)
            fail_msg("%s: connection %zu is %s, want %s", target, i, got ? got : "?", peers[i]);
    }
    assert_int_equal(it_json_int(doc, "total"), 3);
    json_decref(doc);
}

static void test_connections_api(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    struct conn_plan c[3] = {
        { .msgs = 1, .len = 10 }, { .msgs = 2, .len = 100 }, { .msgs = 3, .len = 1000 },
    };
    for (int i = 0; i < 3; i++) {
        c[i].fd = it_must_connect(s->port);
        snprintf(c[i].peer, sizeof c[i].peer, "127.0.0.1:%d", it_local_port(c[i].fd));
        uint8_t *p = payload(c[i].len, i, 0);
        for (int m = 0; m < c[i].msgs; m++)
            assert_int_equal(it_roundtrip(c[i].fd, p, c[i].len, T), 0);
        free(p);
        c[i].bytes = c[i].msgs * (long long)(FRAME_HEADER_SIZE + c[i].len);
    }

    /* The replies are counted just after they are written: poll until the
     * listing shows them all, then check every number. */
    json_t *doc = NULL;
    int64_t deadline = it_now_ms() + IT_SETTLE_MS;
    for (;;) {
        doc = it_must_get_json(s->http_port, "/api/connections");
        bool done = it_json_int(doc, "total") == 3;
        for (int i = 0; i < 3 && done; i++) {
            json_t *e = find_peer(doc, "connections", c[i].peer);
            done = e != NULL && it_json_int(e, "messages_out") == c[i].msgs &&
                   it_json_int(e, "bytes_out") == c[i].bytes;
        }
        if (done || it_now_ms() >= deadline)
            break;
        json_decref(doc);
        it_sleep_ms(20);
    }
    assert_int_equal(it_json_int(doc, "total"), 3);
    assert_int_equal(it_json_int(doc, "offset"), 0);
    assert_int_equal(it_json_int(doc, "limit"), 100);
    assert_string_equal(json_string_value(it_json_path(doc, "sort")), "id");
    assert_int_equal(json_array_size(it_json_path(doc, "recently_closed")), 0);
    long long prev_id = 0;
    for (int i = 0; i < 3; i++) {
        json_t *e = find_peer(doc, "connections", c[i].peer);
        if (e == NULL)
            fail_msg("connection from %s not listed", c[i].peer);
        assert_string_equal(json_string_value(json_object_get(e, "mode")), "framed");
        assert_string_equal(json_string_value(json_object_get(e, "state")), "reading");
        assert_int_equal(it_json_int(e, "messages_in"), c[i].msgs);
        assert_int_equal(it_json_int(e, "messages_out"), c[i].msgs);
        assert_int_equal(it_json_int(e, "bytes_in"), c[i].bytes);
        assert_int_equal(it_json_int(e, "bytes_out"), c[i].bytes);
        assert_int_equal(it_json_int(e, "pending_output_bytes"), 0);
        assert_true(it_json_num(e, "age_seconds") >= 0);
        /* Default order: by id, and these were accepted in order. */
        long long id = it_json_int(json_array_get(it_json_path(doc, "connections"), (size_t)i),
                                   "id");
        assert_true(id > prev_id);
        prev_id = id;
    }
    json_decref(doc);

    const char *by_bytes_desc[] = { c[2].peer, c[1].peer, c[0].peer };
    const char *by_bytes_asc[] = { c[0].peer, c[1].peer, c[2].peer };
    expect_order(s, "/api/connections?sort=-bytes_in", by_bytes_desc, 3);
    expect_order(s, "/api/connections?sort=bytes_in", by_bytes_asc, 3);
    expect_order(s, "/api/connections?sort=-msgs_out", by_bytes_desc, 3);
    expect_order(s, "/api/connections?sort=-bytes_in&limit=1&offset=1", by_bytes_desc + 1, 1);
    expect_order(s, "/api/connections?sort=-bytes_in&limit=2", by_bytes_desc, 2);
    expect_order(s, "/api/connections?offset=3", NULL, 0);
    expect_order(s, "/api/connections?limit=0", NULL, 0);
    doc = it_must_get_json(s->http_port, "/api/connections?sort=-bytes_in&limit=1&offset=1");
    assert_int_equal(it_json_int(doc, "limit"), 1);
    assert_int_equal(it_json_int(doc, "offset"), 1);
    assert_string_equal(json_string_value(it_json_path(doc, "sort")), "-bytes_in");
    json_decref(doc);

    static const char *const bad[] = {
        "/api/connections?sort=bogus", "/api/connections?sort=", "/api/connections?sort=--id",
        "/api/connections?limit=abc", "/api/connections?limit=-1", "/api/connections?limit=1x",
        "/api/connections?offset=abc", "/api/connections?offset=-5",
        "/api/connections?limit=99999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = status_of(s, "GET", bad[i], NULL);
        if (st != 400)
            fail_msg("GET %s: status %d, want 400", bad[i], st);
    }

    /* The first one leaves: listed among the recently closed. */
    close(c[0].fd);
    deadline = it_now_ms() + IT_SETTLE_MS;
    json_t *gone = NULL;
    for (;;) {
        doc = it_must_get_json(s->http_port, "/api/connections");
        gone = find_peer(doc, "recently_closed", c[0].peer);
        if ((gone != NULL && it_json_int(doc, "total") == 2) || it_now_ms() >= deadline)
            break;
        json_decref(doc);
        it_sleep_ms(20);
    }
    if (gone == NULL)
        fail_msg("closed connection %s not in recently_closed", c[0].peer);
    assert_int_equal(it_json_int(doc, "total"), 2);
    assert_null(find_peer(doc, "connections", c[0].peer));
    assert_int_equal(json_array_size(it_json_path(doc, "recently_closed")), 1);
    assert_string_equal(json_string_value(json_object_get(gone, "state")), "closed");
    assert_string_equal(json_string_value(json_object_get(gone, "reason")), "peer_closed");
    assert_int_equal(it_json_int(gone, "messages_in"), 1);
    assert_int_equal(it_json_int(gone, "bytes_in"), c[0].bytes);
    assert_int_equal(it_json_int(gone, "bytes_out"), c[0].bytes);
    assert_true(it_json_num(gone, "closed_seconds_ago") >= 0);
    json_decref(doc);
    close(c[1].fd);
    close(c[2].fd);
    it_server_free(s);
}

/* ---- (e) hostile HTTP ----------------------------------------------------------------- */

static const char index_html[] = "<!doctype html><title>t</title>hello from the web root\n";

struct webroot {
    char dir[256];
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fail_msg("cannot create %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* A web root with index.html, sub/ok.txt, and what must never be served: a
 * symbolic link to /etc/passwd, one to /etc, a directory and a FIFO. */
static int webroot_setup(void **state)
{
    struct webroot *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(w->dir, sizeof w->dir, "%s/tcpmsg-web.XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    if (mkdtemp(w->dir) == NULL) {
        free(w);
        return -1;
    }
    char p[512];
    snprintf(p, sizeof p, "%s/index.html", w->dir);
    write_file(p, index_html);
    snprintf(p, sizeof p, "%s/sub", w->dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/ok.txt", w->dir);
    write_file(p, "ok\n");
    snprintf(p, sizeof p, "%s/passwd", w->dir);
    if (symlink("/etc/passwd", p) < 0)
        return -1;
    snprintf(p, sizeof p, "%s/etc", w->dir);
    if (symlink("/etc", p) < 0)
        return -1;
    snprintf(p, sizeof p, "%s/fifo", w->dir);
    if (mkfifo(p, 0644) < 0)
        return -1;
    *state = w;
    return 0;
}

static int webroot_teardown(void **state)
{
    struct webroot *w = *state;
    if (w == NULL)
        return 0;
    /* Children before their directory; a directory is the one unlink refuses. */
    static const char *const names[] = { "index.html", "sub/ok.txt", "sub", "passwd", "etc",
                                         "fifo" };
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", w->dir, names[i]);
        if (unlink(p) < 0)
            rmdir(p);
    }
    rmdir(w->dir);
    free(w);
    return 0;
}

/* Tally of the answers, to check the server's own count of them. */
struct tally {
    long long by_class[6];
};

static int tallied(const struct it_server *s, struct tally *t, const char *method,
                   const char *target, const char *headers, struct it_http *out)
{
    struct it_http r;
    request(s, method, target, headers, &r);
    if (r.status / 100 < 6)
        t->by_class[r.status / 100]++;
    int status = r.status;
    if (out != NULL)
        *out = r;
    else
        it_http_free(&r);
    return status;
}

static void test_hostile_http(void **state)
{
    struct webroot *w = *state;
    const char *args[] = { "--web-root", w->dir, NULL };
    IT_START(s, args, 0);
    struct tally t = { { 0 } };
    struct it_http r;
    char h[256];

    /* Only GET and HEAD. */
    static const char *const methods[][2] = {
        { "POST", "/metrics" }, { "PUT", "/index.html" }, { "DELETE", "/api/connections" },
        { "OPTIONS", "/" }, { "PATCH", "/healthz" },
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        assert_int_equal(tallied(s, &t, methods[i][0], methods[i][1], NULL, &r), 405);
        if (it_http_header(&r, "Allow", h, sizeof h) == NULL)
            fail_msg("%s %s: 405 without an Allow header", methods[i][0], methods[i][1]);
        assert_string_equal(h, "GET, HEAD");
        it_http_free(&r);
    }
    /* With a body, too. */
    int rc = it_http_request(s->http_port, "POST", "/metrics", "Content-Type: text/plain\r\n",
                             "format=prometheus", T, &r);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 405);
    t.by_class[4]++;
    it_http_free(&r);

    /* Traversal and encoding tricks: refused, never a file's contents. */
    static const char *const hostile[] = {
        "/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%2fetc%2fpasswd",
        "/index.html%00.txt", "/..%2f..%2fetc/passwd", "/sub/../../etc/passwd",
        "/%2E%2E/%2E%2E/etc/passwd", "/..%5c..%5cetc/passwd", "//etc/passwd",
        "/./index.html", "/sub/%2e%2e/index.html", "/%c0%ae%c0%ae/etc/passwd",
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        int st = tallied(s, &t, "GET", hostile[i], NULL, &r);
        if (st != 400 && st != 404)
            fail_msg("GET %s: status %d, want 400 or 404", hostile[i], st);
        if (strstr(r.body, "root:") != NULL || strstr(r.body, "hello from") != NULL)
            fail_msg("GET %s served a file: %s", hostile[i], r.body);
        it_http_free(&r);
    }

    /* Inside the web root, what is not a regular file reached without a
     * symbolic link is not served; the FIFO must not hang the endpoint. */
    static const char *const not_files[] = {
        "/passwd", "/etc/passwd", "/etc/", "/sub", "/sub/", "/fifo", "/sub/ok.txt/x",
    };
    for (size_t i = 0; i < sizeof not_files / sizeof not_files[0]; i++) {
        int64_t t0 = it_now_ms();
        int st = tallied(s, &t, "GET", not_files[i], NULL, &r);
        if (st != 404)
            fail_msg("GET %s: status %d, want 404", not_files[i], st);
        if (strstr(r.body, "root:") != NULL)
            fail_msg("GET %s served /etc/passwd", not_files[i]);
        it_http_free(&r);
        assert_true(it_now_ms() - t0 < 2000);
    }
    assert_int_equal(tallied(s, &t, "GET", "/healthz", NULL, NULL), 200);

    /* The status page: index.html with its type and an ETag. */
    assert_int_equal(tallied(s, &t, "GET", "/", NULL, &r), 200);
    assert_string_equal(r.body, index_html);
    assert_non_null(it_http_header(&r, "Content-Type", h, sizeof h));
    assert_string_equal(h, "text/html; charset=utf-8");
    char etag[128];
    if (it_http_header(&r, "ETag", etag, sizeof etag) == NULL)
        fail_msg("GET /: no ETag");
    assert_true(strlen(etag) > 2 && etag[0] == '"' && etag[strlen(etag) - 1] == '"');
    it_http_free(&r);
    assert_int_equal(tallied(s, &t, "GET", "/index.html", NULL, &r), 200);
    assert_non_null(it_http_header(&r, "ETag", h, sizeof h));
    assert_string_equal(h, etag);
    it_http_free(&r);
    assert_int_equal(tallied(s, &t, "GET", "/sub/ok.txt", NULL, &r), 200);
    assert_string_equal(r.body, "ok\n");
    it_http_free(&r);

    char inm[192];
    snprintf(inm, sizeof inm, "If-None-Match: %s\r\n", etag);
    assert_int_equal(tallied(s, &t, "GET", "/", inm, &r), 304);
    assert_int_equal(r.body_len, 0);
    it_http_free(&r);
    assert_int_equal(tallied(s, &t, "GET", "/", "If-None-Match: \"other\"\r\n", NULL), 200);

    assert_int_equal(tallied(s, &t, "GET", "/nope.html", NULL, NULL), 404);
    assert_int_equal(tallied(s, &t, "GET", "/api/nope", NULL, NULL), 404);
    assert_int_equal(tallied(s, &t, "GET", "/api/", NULL, NULL), 404);

    /* Every 4xx and 5xx answer shows in errors_total{kind="http"}. */
    json_t *doc = it_must_get_json(s->http_port, "/metrics");
    long long errors = t.by_class[4] + t.by_class[5];
    assert_true(errors > 20);
    if (it_json_int(doc, "counters.errors_total.http") != errors)
        fail_msg("errors_total{kind=\"http\"} is %lld, want %lld",
                 it_json_int(doc, "counters.errors_total.http"), errors);
    assert_int_equal(it_json_int(doc, "counters.http_responses_total.2xx"), t.by_class[2]);
    assert_int_equal(it_json_int(doc, "counters.http_responses_total.3xx"), t.by_class[3]);
    assert_int_equal(it_json_int(doc, "counters.http_responses_total.4xx"), t.by_class[4]);
    assert_int_equal(it_json_int(doc, "counters.http_responses_total.5xx"), t.by_class[5]);
    json_decref(doc);
    assert_true(it_server_alive(s));
    it_server_free(s);
}

/* Requests over the endpoint's limits (64 KiB of memory per connection, a
 * 1 KiB path) are refused with a 4xx, and, like every 4xx, counted in
 * errors_total{kind="http"} and http_responses_total{class="4xx"}. */
static void test_http_limits(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    size_t big = 70000;
    char *target = malloc(big + 2);
    char *header = malloc(big + 16);
    assert_non_null(target);
    assert_non_null(header);
    target[0] = '/';
    memset(target + 1, 'a', big);
    target[big + 1] = '\0';
    snprintf(header, big + 16, "X-Big: %0*d\r\n", (int)big, 0);
    static const size_t path_lens[] = { 2000, 70000 };
    int statuses[3];
    for (size_t i = 0; i < 2; i++) {
        target[path_lens[i] + 1] = '\0';
        statuses[i] = status_of(s, "GET", target, NULL);
        target[path_lens[i] + 1] = 'a';
    }
    statuses[2] = status_of(s, "GET", "/healthz", header);
    free(target);
    free(header);
    for (size_t i = 0; i < 3; i++) {
        if (statuses[i] / 100 != 4)
            fail_msg("request %zu over the limits: status %d, want 4xx", i, statuses[i]);
    }
    json_t *doc = it_must_get_json(s->http_port, "/metrics");
    long long http_errors = it_json_int(doc, "counters.errors_total.http");
    long long class4 = it_json_int(doc, "counters.http_responses_total.4xx");
    json_decref(doc);
    if (http_errors != 3 || class4 != 3)
        fail_msg("answers %d, %d, %d counted as errors_total{http} = %lld, 4xx = %lld; want 3",
                 statuses[0], statuses[1], statuses[2], http_errors, class4);
    it_server_free(s);
}

/* ---- (f) client RTT reports --------------------------------------------------------- */

/* An RTT_REPORT frame for these RTTs (ns); returns its size. */
static size_t make_report(const uint64_t *rtts, size_t n, uint8_t *out)
{
    struct hist *h = hist_new();
    assert_non_null(h);
    for (size_t i = 0; i < n; i++)
        hist_record(h, rtts[i]);
    size_t len = rtt_report_encode(h, out, RTT_REPORT_MAX_FRAME);
    hist_free(h);
    assert_true(len > 0);
    return len;
}

/* The server side: hand-made reports on a raw socket. */
static void test_rtt_report_frames(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    uint8_t *frame = malloc(RTT_REPORT_MAX_FRAME);
    assert_non_null(frame);
    static const uint64_t rtts[] = { 100000, 100000, 300000 }; /* 100 us twice, 300 us */
    size_t len = make_report(rtts, 3, frame);

    /* Three round trips, then their report: no reply, then data as usual.
     * (A connection reports only replies it received: test_rtt.) The
     * largest value, 300 us, is well within the connection's age. */
    int fd = it_must_connect(s->port);
    for (int i = 0; i < 3; i++)
        assert_int_equal(it_roundtrip(fd, "ping", 4, T), 0);
    it_sleep_ms(5);
    assert_int_equal(it_send_all(fd, frame, len, T), 0);
    assert_int_equal(it_roundtrip(fd, "ping", 4, T), 0); /* answered after the report was read */
    json_t *doc = it_wait_metric(s, "counters.client_rtt_reports_total", 1);
    assert_int_equal(it_json_int(doc, "histograms.client_rtt_seconds.count"), 3);
    double sum = it_json_num(doc, "histograms.client_rtt_seconds.sum");
    double min = it_json_num(doc, "histograms.client_rtt_seconds.min");
    double max = it_json_num(doc, "histograms.client_rtt_seconds.max");
    assert_true(fabs(sum - 500e-6) <= 500e-6 * 0.004);
    assert_true(fabs(min - 100e-6) <= 100e-6 * 0.004);
    assert_true(fabs(max - 300e-6) <= 300e-6 * 0.004);
    /* A report is not a message; its bytes are counted. */
    assert_int_equal(it_json_int(doc, "counters.messages_received_total.framed"), 4);
    json_decref(doc);

    /* A malformed report (version 9): refused and counted, and the
     * connection carries on. */
    uint8_t bad[FRAME_HEADER_SIZE + RTT_REPORT_HEAD + RTT_REPORT_ENTRY] = { 0 };
    frame_header_encode(bad, FRAME_RTT_REPORT, RTT_REPORT_HEAD + RTT_REPORT_ENTRY);
    bad[4] = 9;
    bad[5] = HIST_SUB_BITS;
    bad[11] = 1;
    assert_int_equal(it_send_all(fd, bad, sizeof bad, T), 0);
    assert_int_equal(it_roundtrip(fd, "pong", 4, T), 0);
    /* The echo's bytes are counted just after they are written: wait for them. */
    doc = it_wait_metric(s, "counters.sent_bytes_total.framed", 5 * (FRAME_HEADER_SIZE + 4));
    assert_int_equal(it_json_int(doc, "counters.client_rtt_reports_rejected_total.malformed"), 1);
    assert_int_equal(it_json_int(doc, "counters.errors_total.protocol"), 0);
    assert_int_equal(it_json_int(doc, "counters.client_rtt_reports_total"), 1);
    assert_int_equal(it_json_int(doc, "histograms.client_rtt_seconds.count"), 3);
    assert_int_equal(it_json_int(doc, "counters.received_bytes_total.framed"),
                     (long long)(len + sizeof bad + 5 * (FRAME_HEADER_SIZE + 4)));
    json_decref(doc);

    /* A second good report adds to the first: five replies so far, three
     * reported, so one more round trip makes room for three more. */
    assert_int_equal(it_roundtrip(fd, "pong", 4, T), 0);
    assert_int_equal(it_send_all(fd, frame, len, T), 0);
    doc = it_wait_metric(s, "counters.client_rtt_reports_total", 2);
    assert_int_equal(it_json_int(doc, "histograms.client_rtt_seconds.count"), 6);
    json_decref(doc);

    struct it_http r;
    request(s, "GET", "/metrics?format=prometheus", NULL, &r);
    double v = -1;
    assert_true(it_prom_sample(r.body, "tcpmsg_client_rtt_reports_total", &v));
    assert_true(v == 2);
    assert_true(it_prom_sample(r.body, "tcpmsg_client_rtt_seconds_count", &v));
    assert_true(v == 6);
    assert_true(it_prom_sample(r.body, "tcpmsg_client_rtt_seconds_bucket{le=\"0.0002\"}", &v));
    assert_true(v == 4); /* the four 100 us samples */
    it_http_free(&r);
    close(fd);
    free(frame);
    it_server_free(s);
}

/* The client binary reports the RTTs it measured when it closes. */
/* Regression: bytes a client sent after an error reply were discarded (the
 * server lingers so the reply is not lost to a reset) but not counted, so
 * received_bytes_total fell short of the bytes on the wire. */
static void test_discarded_bytes_counted(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    int fd = it_must_connect(s->port);
    uint8_t bad = 0x05; /* an unknown frame type: bad_type, then linger */
    assert_int_equal(it_send_all(fd, &bad, 1, T), 0);
    assert_int_equal(it_expect_error_frame(fd, FRAME_ERR_BAD_TYPE, NULL, 0, T), 0);
    static uint8_t junk[5000];
    memset(junk, 'j', sizeof junk);
    assert_int_equal(it_send_all(fd, junk, sizeof junk, T), 0);
    it_sleep_ms(100);
    close(fd);
    json_t *doc = it_wait_metric(s, "gauges.connections_open", 0);
    assert_int_equal(it_json_int(doc, "counters.received_bytes_total.framed"), 1 + sizeof junk);
    assert_int_equal(it_json_int(doc, "counters.connections_closed_total.protocol_error"), 1);
    json_decref(doc);
    it_server_free(s);
}

static void test_client_rtt(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port);
    const char *argv[] = { "tcpmsg", addr, "a", "b", "c", NULL };
    struct it_run run;
    assert_int_equal(it_run(TCPMSG_PATH, argv, 10000, &run), 0);
    if (run.exit_code != 0)
        fail_msg("tcpmsg exited %d: %s", run.exit_code, run.err);
    it_run_free(&run);

    /* The client has exited: its connection closes and its report is in
     * (the server reads the report before the client's EOF). */
    json_decref(it_wait_metric(s, "gauges.connections_open", 0));
    json_t *doc = NULL;
    int64_t deadline = it_now_ms() + IT_SETTLE_MS;
    for (;;) {
        doc = it_must_get_json(s->http_port, "/metrics");
        if (it_json_int(doc, "counters.client_rtt_reports_total") >= 1 || it_now_ms() >= deadline)
            break;
        json_decref(doc);
        it_sleep_ms(20);
    }
    assert_int_equal(it_json_int(doc, "counters.messages_received_total.framed"), 3);
    long long reports = it_json_int(doc, "counters.client_rtt_reports_total");
    if (reports < 1)
        fail_msg("the client sent no RTT report (client_rtt_reports_total = %lld)", reports);
    assert_int_equal(reports, 1);
    assert_int_equal(it_json_int(doc, "histograms.client_rtt_seconds.count"), 3);
    assert_int_equal(it_json_int(doc, "counters.errors_total.protocol"), 0);
    assert_true(it_json_num(doc, "histograms.client_rtt_seconds.max") > 0);
    json_decref(doc);
    it_server_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_exact_counts),
        cmocka_unit_test(test_format_negotiation),
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_connections_api),
        cmocka_unit_test_setup_teardown(test_hostile_http, webroot_setup, webroot_teardown),
        cmocka_unit_test(test_http_limits),
        cmocka_unit_test(test_rtt_report_frames),
        cmocka_unit_test(test_client_rtt),
        cmocka_unit_test(test_discarded_bytes_counted),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
