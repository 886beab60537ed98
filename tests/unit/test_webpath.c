/* Unit tests for webpath (src/webpath.c): the strict decoding of request
 * paths for the static file server, table-driven over hostile and benign
 * paths, its output bounds, a generated-input property check, the
 * Content-Type table, and opening below a web root in a temporary tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tcpmsg/webpath.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* One input (length n, or strlen when n is 0) and its decoding, or NULL
 * when it must be refused. */
struct path_case {
    const char *raw;
    size_t n;
    const char *want;
};

static const struct path_case cases[] = {
    /* Traversal, plain and encoded. */
    { "..", 0, NULL },
    { "/..", 0, NULL },
    { "/../x", 0, NULL },
    { "/a/../b", 0, NULL },
    { "/a/..", 0, NULL },
    { "/%2e%2e/x", 0, NULL },
    { "/%2E%2e/", 0, NULL },
    { "/.%2e/", 0, NULL },
    { "/%2e./x", 0, NULL },
    { "/%2e", 0, NULL },
    { "/./x", 0, NULL },
    { "/.", 0, NULL },
    { "/a/.", 0, NULL },
    { "/a/./b", 0, NULL },
    /* Encoded separators and NUL. */
    { "/%2f/etc", 0, NULL },
    { "/a%2Fb", 0, NULL },
    { "/..%2f..%2fetc/passwd", 0, NULL },
    { "/x%00.html", 0, NULL },
    { "/x\0.html", 8, NULL }, /* a raw NUL inside the n bytes */
    /* Bad or truncated escapes. */
    { "%", 0, NULL },
    { "/%", 0, NULL },
    { "/%g1", 0, NULL },
    { "/%1g", 0, NULL },
    { "/%4", 0, NULL },
    { "/a%", 0, NULL },
    { "/a%4", 0, NULL },
    { "/%%41", 0, NULL },
    { "/% 41", 0, NULL },
    /* Backslashes, raw and encoded. */
    { "\\", 0, NULL },
    { "/a\\b", 0, NULL },
    { "/..\\x", 0, NULL },
    { "/%5c", 0, NULL },
    { "/%5C..%5Cx", 0, NULL },
    /* Control bytes, raw and encoded. */
    { "/a\x01" "b", 0, NULL },
    { "/\x1f", 0, NULL },
    { "/\t", 0, NULL },
    { "/a\r\nb", 0, NULL },
    { "/\x7f", 0, NULL },
    { "/%0a", 0, NULL },
    { "/%0D%0A", 0, NULL },
    { "/%7F", 0, NULL },
    { "/%1b[31m", 0, NULL },
    /* Not a path. */
    { "", 0, NULL },
    { "x", 0, NULL },
    { "index.html", 0, NULL },
    { "http://h/x", 0, NULL },
    { "*", 0, NULL },
    /* Benign. */
    { "/", 0, "/" },
    { "//", 0, "/" },
    { "///", 0, "/" },
    { "/a//b", 0, "/a/b" },
    { "//a///b//", 0, "/a/b/" },
    { "/index.html", 0, "/index.html" },
    { "/css/site.css", 0, "/css/site.css" },
    { "/a%20b", 0, "/a b" },
    { "/%41%62c", 0, "/Abc" },
    { "/caf%C3%A9", 0, "/caf\xc3\xa9" }, /* UTF-8 is fine */
    { "/...", 0, "/..." },                /* three dots is a name */
    { "/..a/a..", 0, "/..a/a.." },
    { "/.well-known/x", 0, "/.well-known/x" },
    { "/a.b.c", 0, "/a.b.c" },
    { "/~user+x=y", 0, "/~user+x=y" },
    { "/dir/", 0, "/dir/" },
    /* Only the n bytes count: "/ok" of "/ok/../x". */
    { "/ok/../x", 3, "/ok" },
};

static void test_decode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        const struct path_case *c = &cases[i];
        size_t n = c->n != 0 ? c->n : strlen(c->raw);
        char out[256];
        memset(out, 'Z', sizeof out);
        int rc = webpath_decode(c->raw, n, out, sizeof out);
        if (c->want == NULL) {
            if (rc != -EINVAL)
                fail_msg("case %zu: accepted a path that must be refused (as \"%s\")", i, out);
            continue;
        }
        if (rc < 0)
            fail_msg("case %zu (\"%s\"): refused, want \"%s\"", i, c->raw, c->want);
        if ((size_t)rc != strlen(c->want) || strcmp(out, c->want) != 0)
            fail_msg("case %zu (\"%s\"): \"%s\" (%d), want \"%s\"", i, c->raw, out, rc, c->want);
    }
}

/* The input need not be NUL-terminated: nothing past n is read. */
static void test_decode_reads_only_n(void **state)
{
    (void)state;
    const char raw[4] = { '/', 'a', 'b', 'c' }; /* no NUL */
    char out[8];
    assert_int_equal(webpath_decode(raw, sizeof raw, out, sizeof out), 4);
    assert_string_equal(out, "/abc");
    assert_int_equal(webpath_decode("/a%41", 3, out, sizeof out), -EINVAL); /* "/a%" */
}

/* out holds the decoded path and its NUL: cap = length + 1 fits, one less
 * does not, and nothing is written past cap. */
static void test_decode_output_bounds(void **state)
{
    (void)state;
    char out[64];
    static const struct { const char *raw; const char *want; } fits[] = {
        { "/abc", "/abc" }, { "/a%20b", "/a b" }, { "//a//", "/a/" }, { "/", "/" },
    };
    for (size_t i = 0; i < COUNT_OF(fits); i++) {
        size_t need = strlen(fits[i].want) + 1;
        memset(out, 'Z', sizeof out);
        assert_int_equal(webpath_decode(fits[i].raw, strlen(fits[i].raw), out, need),
                         (int)need - 1);
        assert_string_equal(out, fits[i].want);
        assert_int_equal(out[need], 'Z');
        memset(out, 'Z', sizeof out);
        assert_int_equal(webpath_decode(fits[i].raw, strlen(fits[i].raw), out, need - 1),
                         -ENAMETOOLONG);
        assert_int_equal(out[need - 1], 'Z');
    }
    assert_int_equal(webpath_decode("/", 1, out, 0), -ENAMETOOLONG);
    assert_int_equal(webpath_decode("/", 1, out, 1), -ENAMETOOLONG);

    /* An overlong path: 2000 bytes into a 1024-byte buffer. */
    char raw[2001];
    raw[0] = '/';
    memset(raw + 1, 'a', sizeof raw - 2);
    raw[sizeof raw - 1] = '\0';
    char big[1025];
    memset(big, 'Z', sizeof big);
    assert_int_equal(webpath_decode(raw, strlen(raw), big, 1024), -ENAMETOOLONG);
    assert_int_equal(big[1024], 'Z');
    /* 1023 bytes fit exactly. */
    assert_int_equal(webpath_decode(raw, 1023, big, 1024), 1023);
    assert_int_equal(big[1023], '\0');
}

/* Property over generated paths from a hostile alphabet: a decoding either
 * fails or is a clean absolute path: no "." or ".." segment, no empty
 * segment, no control byte, backslash or NUL inside, NUL-terminated within
 * cap, and its return value is its length. */
static void test_decode_property(void **state)
{
    (void)state;
    static const char alphabet[] = "/./.%2e%2E%2f%2F%00%5c\\a%41%g%4%20\x01\x7f";
    uint32_t seed = 12345;
    size_t accepted = 0;
    for (int iter = 0; iter < 200000; iter++) {
        char raw[24];
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % (sizeof raw - 1);
        raw[0] = '/';
        for (size_t i = 1; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            raw[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        char out[16];
        memset(out, 'Z', sizeof out);
        int rc = webpath_decode(raw, n, out, 12);
        assert_int_equal(out[12], 'Z');
        if (rc < 0)
            continue;
        accepted++;
        if (rc >= 12 || out[rc] != '\0' || strlen(out) != (size_t)rc || out[0] != '/')
            fail_msg("\"%.*s\": bad result \"%s\" (%d)", (int)n, raw, out, rc);
        for (int i = 0; i < rc; i++) {
            unsigned char c = (unsigned char)out[i];
            if (c < 0x20 || c == 0x7f || c == '\\')
                fail_msg("\"%.*s\" decoded to a control byte or backslash", (int)n, raw);
            if (c == '/' && out[i + 1] == '/')
                fail_msg("\"%.*s\" decoded with an empty segment: \"%s\"", (int)n, raw, out);
        }
        /* Every segment: not "." nor "..". */
        for (const char *seg = out + 1; *seg != '\0' || seg == out + 1;) {
            size_t len = strcspn(seg, "/");
            if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
                fail_msg("\"%.*s\" decoded with a dot segment: \"%s\"", (int)n, raw, out);
            if (seg[len] == '\0')
                break;
            seg += len + 1;
        }
    }
    assert_true(accepted > 100); /* the generator does reach the accepting paths */
}

static void test_content_type(void **state)
{
    (void)state;
    static const struct { const char *name, *type; } types[] = {
        { "index.html", "text/html; charset=utf-8" },
        { "/x/INDEX.HTML", "text/html; charset=utf-8" },
        { "css/site.css", "text/css; charset=utf-8" },
        { "app.js", "text/javascript; charset=utf-8" },
        { "data.json", "application/json" },
        { "Data.JSON", "application/json" },
        { "logo.svg", "image/svg+xml" },
        { "a.png", "image/png" },
        { "favicon.ico", "image/x-icon" },
        { "notes.txt", "text/plain; charset=utf-8" },
        { "f.woff2", "font/woff2" },
        { "noext", "application/octet-stream" },
        { "a.", "application/octet-stream" },
        { "a.html.gz", "application/octet-stream" },
        { "a.htm", "application/octet-stream" },
        { "dir.html/file", "application/octet-stream" }, /* a dot in a directory */
        { "", "application/octet-stream" },
    };
    for (size_t i = 0; i < COUNT_OF(types); i++)
        assert_string_equal(webpath_content_type(types[i].name), types[i].type);
}

/* A web root with a file, a subdirectory, a FIFO and symbolic links to a
 * secret beside it:
 *   <tmp>/root/index.html  <tmp>/root/sub/a.txt  <tmp>/root/fifo
 *   <tmp>/root/out -> ../outside   <tmp>/root/sub/secret -> ../../outside/secret
 *   <tmp>/outside/secret */
struct tree {
    char top[64];
    int root_fd;
};

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int tree_setup(void **state)
{
    struct tree *t = calloc(1, sizeof *t);
    assert_non_null(t);
    snprintf(t->top, sizeof t->top, "/tmp/test_webpath.XXXXXX");
    assert_non_null(mkdtemp(t->top));
    char p[160];
    static const char *const dirs[] = { "root", "root/sub", "outside" };
    for (size_t i = 0; i < COUNT_OF(dirs); i++) {
        snprintf(p, sizeof p, "%s/%s", t->top, dirs[i]);
        assert_int_equal(mkdir(p, 0700), 0);
    }
    snprintf(p, sizeof p, "%s/root/index.html", t->top);
    put_file(p, "<p>hello</p>\n");
    snprintf(p, sizeof p, "%s/root/sub/a.txt", t->top);
    put_file(p, "a\n");
    snprintf(p, sizeof p, "%s/outside/secret", t->top);
    put_file(p, "secret\n");
    snprintf(p, sizeof p, "%s/root/fifo", t->top);
    assert_int_equal(mkfifo(p, 0600), 0);
    snprintf(p, sizeof p, "%s/root/out", t->top);
    assert_int_equal(symlink("../outside", p), 0);
    snprintf(p, sizeof p, "%s/root/sub/secret", t->top);
    assert_int_equal(symlink("../../outside/secret", p), 0);
    snprintf(p, sizeof p, "%s/root", t->top);
    t->root_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(t->root_fd >= 0);
    *state = t;
    return 0;
}

static int tree_teardown(void **state)
{
    struct tree *t = *state;
    close(t->root_fd);
    static const char *const files[] = { "root/index.html", "root/sub/a.txt", "root/fifo",
                                         "root/out", "root/sub/secret", "outside/secret",
                                         "root/sub", "root", "outside", "" };
    char p[160];
    for (size_t i = 0; i < COUNT_OF(files); i++) {
        snprintf(p, sizeof p, "%s/%s", t->top, files[i]);
        remove(p);
    }
    free(t);
    return 0;
}

/* The lowest free descriptor: unchanged across calls means none leaked. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

static void test_open_beneath_regular_files(void **state)
{
    struct tree *t = *state;
    int before = lowest_free_fd();
    static const char *const ok[] = { "index.html", "sub/a.txt", "sub//a.txt", "/sub/a.txt" };
    for (size_t i = 0; i < COUNT_OF(ok); i++) {
        struct stat st;
        int fd = webpath_open_beneath(t->root_fd, ok[i], &st);
        if (fd < 0)
            fail_msg("\"%s\": %s", ok[i], strerror(-fd));
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_size, strcmp(ok[i], "index.html") == 0 ? 13 : 2);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
    }
    assert_int_equal(lowest_free_fd(), before);
}

/* Everything that could leave the root, or is not a regular file, is
 * refused with its own errno, promptly (the FIFO has no writer), and leaks
 * no descriptor. */
static void test_open_beneath_refusals(void **state)
{
    struct tree *t = *state;
    static const struct { const char *rel; int err; } refused[] = {
        { "out/secret", ENOTDIR },       /* a directory link on the way */
        { "out", ELOOP },
        { "sub/secret", ELOOP },         /* a file link at the end */
        { "../outside/secret", EACCES }, /* dot segments, even though */
        { "sub/../index.html", EACCES }, /* webpath_decode never passes them */
        { "./index.html", EACCES },
        { "sub/..", EACCES },
        { "", EISDIR },
        { "sub", EISDIR },
        { "sub/", EISDIR },
        { "fifo", EISDIR },
        { "missing", ENOENT },
        { "index.html/x", ENOTDIR },
    };
    int before = lowest_free_fd();
    for (size_t i = 0; i < COUNT_OF(refused); i++) {
        struct stat st;
        int rc = webpath_open_beneath(t->root_fd, refused[i].rel, &st);
        if (rc != -refused[i].err)
            fail_msg("\"%s\": got %d (%s), want -%s", refused[i].rel, rc,
                     rc < 0 ? strerror(-rc) : "opened", strerror(refused[i].err));
    }
    assert_int_equal(lowest_free_fd(), before);
}

/* A name that does not fit is refused whole, never truncated into another
 * name: "index.html" followed by slashes up to WEBPATH_MAX bytes. */
static void test_open_beneath_name_too_long(void **state)
{
    struct tree *t = *state;
    char rel[WEBPATH_MAX + 1];
    memset(rel, '/', sizeof rel);
    memcpy(rel + sizeof rel - 1 - strlen("index.html"), "index.html", strlen("index.html"));
    rel[sizeof rel - 1] = '\0';
    struct stat st;
    assert_int_equal(webpath_open_beneath(t->root_fd, rel, &st), -ENAMETOOLONG);
    /* One byte shorter fits, and names the same file. */
    int fd = webpath_open_beneath(t->root_fd, rel + 1, &st);
    assert_true(fd >= 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_table),
        cmocka_unit_test(test_decode_reads_only_n),
        cmocka_unit_test(test_decode_output_bounds),
        cmocka_unit_test(test_decode_property),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test_setup_teardown(test_open_beneath_regular_files, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_open_beneath_refusals, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_open_beneath_name_too_long, tree_setup,
                                        tree_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
