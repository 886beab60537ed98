/* Integration: what the kernel's TCP knows of each connection, as tcpmsgd
 * reports it. /api/connections shows TCP_INFO for every open connection,
 * and an outside observer, ss(8) reading the same socket, agrees with it;
 * the server's TCP counters and srtt histogram count a connection that
 * closed before the once-a-second sample, at its close.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tcpmsg/frame.h"

#define T IT_IO_TIMEOUT_MS

static const char *ss_path(void)
{
    static const char *const paths[] = { "/usr/bin/ss", "/bin/ss", "/usr/sbin/ss", "/sbin/ss" };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

/* The text after "key:" in ss's line, up to the next space, in out. */
static bool ss_field(const char *line, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += kl) {
        if ((p == line || p[-1] == ' ' || p[-1] == '\t') && p[kl] == ':') {
            size_t n = strcspn(p + kl + 1, " \t\n");
            snprintf(out, cap, "%.*s", (int)n, p + kl + 1);
            return true;
        }
    }
    return false;
}

/* ss's spelling of a number of microseconds in milliseconds (iproute2
 * prints tcpi_rtt / 1000.0 with "%g"). */
static void ms_text(long long us, char *out, size_t cap)
{
    snprintf(out, cap, "%g", (double)us / 1000);
}

/* The server's side of the one established connection to port, as ss -ti
 * prints it: its detail line, malloc'd. */
static char *ss_server_side(int port)
{
    char sport[32];
    snprintf(sport, sizeof sport, ":%d", port);
    const char *argv[] = { "ss", "-tinH", "state", "established", "sport", "=", sport, NULL };
    struct it_run r;
    IT_CHECK(it_run(ss_path(), argv, T, &r) == 0);
    IT_CHECK(r.exit_code == 0);
    char *detail = strstr(r.out, "rtt:");
    if (detail == NULL)
        fail_msg("ss printed no TCP details for %s:\n%s", sport, r.out);
    char *line = strndup(detail, strcspn(detail, "\n"));
    it_run_free(&r);
    return line;
}

/* One connection, 40 messages each way, quiet: the tcp object of
 * /api/connections says what ss says of the same socket (window, MSS,
 * RTT, retransmissions, bytes), and the byte counts are what the client
 * sent and received. */
static void test_api_matches_ss(void **state)
{
    (void)state;
    if (ss_path() == NULL)
        skip();
    IT_START(s, NULL, 0);
    int fd = it_must_connect(s->port);
    size_t sent = 0;
    for (int i = 0; i < 40; i++) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "message %d of the ss comparison", i);
        IT_CHECK(it_roundtrip(fd, msg, (size_t)n, T) == 0);
        sent += FRAME_HEADER_SIZE + (size_t)n;
    }
    IT_CHECK(it_wait_acked(fd, T) == 0);
    it_sleep_ms(50); /* the client's ACK of the last reply reaches the server */

    json_t *doc = it_must_get_json(s->http_port, "/api/connections");
    json_t *tcp = it_json_path(doc, "connections.0.tcp");
    if (!json_is_object(tcp))
        fail_msg("no tcp object for the connection");
    char *ss = ss_server_side(s->port);
    fprintf(stderr, "ss: %s\n", ss);

    IT_CHECK(it_json_int(tcp, "bytes_received") == (long long)sent);
    IT_CHECK(it_json_int(tcp, "bytes_acked") == (long long)sent); /* the echo: as much back */
    char want[64], got[64];
    static const struct {
        const char *ss, *api;
    } same[] = {
        { "cwnd", "snd_cwnd" },           { "mss", "snd_mss" },
        { "bytes_sent", "bytes_sent" },   { "bytes_acked", "bytes_acked" },
        { "bytes_received", "bytes_received" },
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        IT_CHECK(ss_field(ss, same[i].ss, got, sizeof got));
        snprintf(want, sizeof want, "%lld", it_json_int(tcp, same[i].api));
        if (strcmp(got, want) != 0)
            fail_msg("%s: ss says %s, /api/connections says %s (%s)", same[i].ss, got, want,
                     same[i].api);
    }
    char rtt[64];
    IT_CHECK(ss_field(ss, "rtt", got, sizeof got));
    ms_text(it_json_int(tcp, "srtt_us"), want, sizeof want);
    ms_text(it_json_int(tcp, "rttvar_us"), rtt, sizeof rtt);
    strncat(want, "/", sizeof want - strlen(want) - 1);
    strncat(want, rtt, sizeof want - strlen(want) - 1);
    if (strcmp(got, want) != 0)
        fail_msg("rtt: ss says %s, /api/connections says %s", got, want);
    IT_CHECK(ss_field(ss, "minrtt", got, sizeof got));
    ms_text(it_json_int(tcp, "min_rtt_us"), want, sizeof want);
    IT_CHECK(strcmp(got, want) == 0);
    /* busy: in whole milliseconds, and only when there is one. */
    long long busy_ms = it_json_int(tcp, "busy_us") / 1000;
    snprintf(want, sizeof want, "%lldms", busy_ms);
    if (!ss_field(ss, "busy", got, sizeof got))
        snprintf(got, sizeof got, "0ms");
    if (strcmp(got, want) != 0)
        fail_msg("busy: ss says %s, /api/connections says %s", got, want);
    /* retrans: current/total, printed only when there were some (a busy
     * machine can make even loopback probe or retransmit). */
    if (!ss_field(ss, "retrans", got, sizeof got))
        snprintf(got, sizeof got, "0/0");
    snprintf(want, sizeof want, "%lld/%lld", it_json_int(tcp, "retransmits"),
             it_json_int(tcp, "total_retrans"));
    if (strcmp(got, want) != 0)
        fail_msg("retrans: ss says %s, /api/connections says %s", got, want);

    /* Sorted by a TCP field, as by any other key. */
    json_t *sorted = it_must_get_json(s->http_port, "/api/connections?sort=-srtt_us");
    IT_CHECK(strcmp(json_string_value(it_json_path(sorted, "sort")), "-srtt_us") == 0);
    json_decref(sorted);
    free(ss);
    json_decref(doc);
    close(fd);
    it_server_free(s);
}

/* A connection that lives less than the once-a-second sample still reaches
 * the TCP counters: conn_close reads TCP_INFO a last time, so the srtt
 * histogram holds an observation of it. (Its busy time may be 0: the kernel
 * measures it in jiffies, and this exchange can take less than one.) */
static void test_counted_at_close(void **state)
{
    (void)state;
    IT_START(s, NULL, 0);
    int fd = it_must_connect(s->port);
    static char big[256 * 1024];
    memset(big, 'b', sizeof big);
    IT_CHECK(it_roundtrip(fd, big, sizeof big, T) == 0);
    close(fd);
    json_t *doc = it_wait_metric(s, "counters.connections_closed_total.peer_closed", 1);
    IT_CHECK(doc != NULL);
    long long srtt_count = it_json_int(doc, "histograms.tcp_srtt_seconds.count");
    fprintf(stderr, "srtt observations %lld\n", srtt_count);
    IT_CHECK(srtt_count >= 1);
    json_decref(doc);
    it_server_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_matches_ss),
        cmocka_unit_test(test_counted_at_close),
    };
    return it_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
