/* Unit tests for probe_targets (src/client/probe_targets.c): tcpmsg probe's
 * target file in both formats, table-driven over valid and refused inputs,
 * the message naming the line, labels, the limit on targets, and a text
 * that is not NUL-terminated.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "client/probe_targets.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* An input and what it gives: the targets' names joined by spaces, or NULL
 * when refused with a message containing err. */
struct parse_case {
    const char *text;
    const char *names;
    const char *err;
};

static const struct parse_case cases[] = {
    /* One target a line. */
    { "", "", NULL },
    { "# nothing yet\n\n   \n", "", NULL },
    { "a:1\nb:2\n", "a:1 b:2", NULL },
    { "a:1", "a:1", NULL }, /* no final newline */
    { "  a:1  # the first\r\n\tb\n", "a:1 b", NULL }, /* CRLF, tabs, default port */
    { "[::1]:9000\n[::1]\n", "[::1]:9000 [::1]", NULL }, /* '[' but not JSON */
    { "a:1\nb:2 c:3\n", NULL, "line 2: one HOST[:PORT] a line" },
    { "a:1\n\n\na:99999\n", NULL, "line 4: 'a:99999' is not HOST[:PORT]" },
    { "a:1\nb:2\na:1\n", NULL, "line 3: 'a:1' is listed twice" },
    { "a:0x10\n", NULL, "line 1: 'a:0x10' is not HOST[:PORT]" },
    /* file_sd JSON. */
    { "[]", "", NULL },
    { " \n[ ]\n", "", NULL },
    { "[{\"targets\": [\"a:1\", \"b:2\"]}, {\"targets\": [\"c:3\"], \"labels\": {\"zone\": \"x\"}}]",
      "a:1 b:2 c:3", NULL },
    { "[{\"targets\": []}]", "", NULL },
    { "[\n{\"targets\": [\"a:1\",]}\n]", NULL, "line 2, column" },
    { "[{\"targets\": \"a:1\"}]", NULL, "group 1: \"targets\" is missing or not an array" },
    { "[{\"labels\": {}}]", NULL, "group 1: \"targets\" is missing" },
    { "[{\"targets\": [\"a:1\"]}, {\"targets\": [\"b:2\", 7]}]", NULL, "group 2, target 2: not a string" },
    { "[{\"targets\": [\"a:1\"]}, {\"targets\": [\"a:1\"]}]", NULL, "group 2, target 1: 'a:1' is listed twice" },
    { "[{\"targets\": [\"a:1\"], \"source\": \"x\"}]", NULL, "unknown key \"source\"" },
    { "[{\"targets\": [\"a:1\"], \"labels\": {\"9x\": \"v\"}}]", NULL, "'9x' is not a label name" },
    { "[{\"targets\": [\"a:1\"], \"labels\": {\"a-b\": \"v\"}}]", NULL, "not a label name" },
    { "[{\"targets\": [\"a:1\"], \"labels\": {\"target\": \"v\"}}]", NULL, "label target is the probe's own" },
    { "[{\"targets\": [\"a:1\"], \"labels\": {\"le\": \"v\"}}]", NULL, "the probe's own" },
    { "[{\"targets\": [\"a:1\"], \"labels\": {\"zone\": 1}}]", NULL, "label zone: the value is not a string" },
    { "[{\"targets\": [\"a:1\"], \"labels\": {\"z\": \"1\", \"z\": \"2\"}}]", NULL, "duplicate" },
    { "[{\"targets\": [\"\"]}]", NULL, "group 1, target 1: '' is not HOST[:PORT]" },
    { "[\"a:1\"]", NULL, "line 1: '[\"a:1\"]' is not HOST[:PORT]" }, /* '[' not then '{' */
    { "http://a:1/\n", NULL, "line 1: 'http://a:1/' is not HOST[:PORT]" },
    { "[{\"targets\": [\"a:1\"]}] x", NULL, "line 1, column" },
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        const struct parse_case *c = &cases[i];
        struct probe_spec *specs = NULL;
        size_t n = 99;
        char err[256] = "";
        int rc = probe_targets_parse(c->text, strlen(c->text), 16, &specs, &n, err, sizeof err);
        if (c->names == NULL) {
            if (rc != -EINVAL || strstr(err, c->err) == NULL || n != 0 || specs != NULL)
                fail_msg("case %zu: %s: rc %d, err '%s', want '%s'", i, c->text, rc, err, c->err);
            continue;
        }
        if (rc != 0)
            fail_msg("case %zu: %s: rc %d: %s", i, c->text, rc, err);
        char names[1024] = "";
        for (size_t k = 0; k < n; k++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? " " : "",
                     specs[k].name);
        if (strcmp(names, c->names) != 0)
            fail_msg("case %zu: %s: got '%s', want '%s'", i, c->text, names, c->names);
        assert_true(n > 0 || specs == NULL);
        free(specs);
    }
}

/* Host and port are split, the default port applied, the name kept as
 * written (it is the metrics' label). */
static void test_host_port(void **state)
{
    (void)state;
    const char *text = "db1\n[::1]:9000\n10.0.0.1:70\n";
    struct probe_spec *s;
    size_t n;
    char err[128];
    assert_int_equal(probe_targets_parse(text, strlen(text), 8, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(s[0].host, "db1");
    assert_int_equal(s[0].port, 8080);
    assert_string_equal(s[1].name, "[::1]:9000");
    assert_string_equal(s[1].host, "::1");
    assert_int_equal(s[1].port, 9000);
    assert_int_equal(s[2].port, 70);
    free(s);
}

/* Labels are kept sorted, "__" ones dropped; the same labels in another
 * order are the same target, another value is another one. */
static void test_labels(void **state)
{
    (void)state;
    const char *a = "[{\"targets\": [\"h:1\"], \"labels\": {\"zone\": \"x\", \"__meta_y\": \"z\", "
                    "\"dc\": \"d1\"}}]";
    const char *b = "[{\"labels\": {\"dc\": \"d1\", \"zone\": \"x\"}, \"targets\": [\"h:1\"]}]";
    const char *c = "[{\"targets\": [\"h:1\"], \"labels\": {\"dc\": \"d2\", \"zone\": \"x\"}}]";
    struct probe_spec *sa, *sb, *sc;
    size_t n;
    char err[128];
    assert_int_equal(probe_targets_parse(a, strlen(a), 4, &sa, &n, err, sizeof err), 0);
    assert_int_equal(sa[0].nlabels, 2);
    assert_string_equal(sa[0].labels[0].name, "dc");
    assert_string_equal(sa[0].labels[1].name, "zone");
    assert_string_equal(sa[0].labels[1].value, "x");
    assert_int_equal(probe_targets_parse(b, strlen(b), 4, &sb, &n, err, sizeof err), 0);
    assert_int_equal(probe_targets_parse(c, strlen(c), 4, &sc, &n, err, sizeof err), 0);
    assert_true(probe_spec_equal(&sa[0], &sb[0]));
    assert_false(probe_spec_equal(&sa[0], &sc[0]));
    free(sa);
    free(sb);
    free(sc);
}

/* max targets are taken, max + 1 refused with -E2BIG, in both formats. */
static void test_limit(void **state)
{
    (void)state;
    char lines[4096] = "", json[4096] = "[{\"targets\": [";
    for (int i = 1; i <= 9; i++) {
        snprintf(lines + strlen(lines), sizeof lines - strlen(lines), "h:%d\n", i);
        snprintf(json + strlen(json), sizeof json - strlen(json), "%s\"h:%d\"", i > 1 ? "," : "",
                 i);
    }
    strcat(json, "]}]");
    struct probe_spec *s;
    size_t n;
    char err[128];
    assert_int_equal(probe_targets_parse(lines, strlen(lines), 9, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, 9);
    free(s);
    assert_int_equal(probe_targets_parse(lines, strlen(lines), 8, &s, &n, err, sizeof err), -E2BIG);
    assert_non_null(strstr(err, "line 9: more than 8 targets"));
    assert_int_equal(probe_targets_parse(json, strlen(json), 9, &s, &n, err, sizeof err), 0);
    free(s);
    assert_int_equal(probe_targets_parse(json, strlen(json), 8, &s, &n, err, sizeof err), -E2BIG);
    assert_non_null(strstr(err, "group 1, target 9: more than 8 targets"));
}

/* Only len bytes are read: what follows in memory is not part of the file. */
static void test_not_terminated(void **state)
{
    (void)state;
    const char text[] = { 'a', ':', '1', '\n', 'b', ':', '2' }; /* no NUL */
    struct probe_spec *s;
    size_t n;
    char err[128];
    assert_int_equal(probe_targets_parse(text, 4, 4, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    free(s);
    assert_int_equal(probe_targets_parse(text, sizeof text, 4, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(s[1].name, "b:2");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),        cmocka_unit_test(test_host_port),
        cmocka_unit_test(test_labels),       cmocka_unit_test(test_limit),
        cmocka_unit_test(test_not_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
