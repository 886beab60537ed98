/* fuzz_webroot: opening files below the web root (webpath_open_beneath,
 * src/webpath.c) in a real temporary tree with links that point outside:
 *   <tmp>/root/index.html  root/sub/a.txt  root/fifo
 *   root/out -> ../outside   root/sub/up -> ..   root/abs -> <tmp>/outside
 *   root/sub/secret -> ../../outside/secret    <tmp>/outside/secret
 *   <tmp>/index.html (a decoy beside the root: "../index.html" must fail)
 * The input is a path, tried as given (relative to the root) and, when
 * webpath_decode accepts it, decoded as the HTTP endpoint does.
 *
 * Checked: whatever opens is one of the two regular files inside the root
 * (by device and inode, and by the path the kernel gives the descriptor),
 * it is close-on-exec, and no descriptor is left open.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "tcpmsg/webpath.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

static char top[64];
static char root[96];
static int root_fd = -1;
static struct stat inside[2]; /* root/index.html, root/sub/a.txt */

static const char *const dirs[] = { "root", "root/sub", "outside" };
static const char *const files[] = { "root/index.html", "root/sub/a.txt", "outside/secret",
                                     "index.html" };
static const struct { const char *at, *to; } links[] = {
    { "root/out", "../outside" },
    { "root/sub/up", ".." },
    { "root/abs", NULL }, /* <top>/outside */
    { "root/sub/secret", "../../outside/secret" },
};

static void path_of(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", top, rel);
}

static void remove_tree(void)
{
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        path_of(p, sizeof p, links[i].at);
        unlink(p);
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        path_of(p, sizeof p, files[i]);
        unlink(p);
    }
    path_of(p, sizeof p, "root/fifo");
    unlink(p);
    for (size_t i = sizeof dirs / sizeof dirs[0]; i-- > 0;) {
        path_of(p, sizeof p, dirs[i]);
        rmdir(p);
    }
    rmdir(top);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    snprintf(top, sizeof top, "%s/fuzz_webroot.XXXXXX", tmp);
    FUZZ_CHECK(mkdtemp(top) != NULL);
    atexit(remove_tree);
    char p[PATH_MAX], to[PATH_MAX];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        path_of(p, sizeof p, dirs[i]);
        FUZZ_CHECK(mkdir(p, 0700) == 0);
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        path_of(p, sizeof p, files[i]);
        FILE *f = fopen(p, "w");
        FUZZ_CHECK(f != NULL && fputs(files[i], f) >= 0 && fclose(f) == 0);
        if (i < 2)
            FUZZ_CHECK(stat(p, &inside[i]) == 0);
    }
    path_of(p, sizeof p, "root/fifo");
    FUZZ_CHECK(mkfifo(p, 0600) == 0);
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        path_of(p, sizeof p, links[i].at);
        path_of(to, sizeof to, "outside");
        FUZZ_CHECK(symlink(links[i].to != NULL ? links[i].to : to, p) == 0);
    }
    path_of(root, sizeof root, "root");
    root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    FUZZ_CHECK(root_fd >= 0);
    return 0;
}

/* What fd names is one of the files inside the root. */
static void check_inside(int fd, const struct stat *st)
{
    bool known = false;
    for (size_t i = 0; i < 2; i++)
        known |= st->st_dev == inside[i].st_dev && st->st_ino == inside[i].st_ino;
    FUZZ_CHECK(known && S_ISREG(st->st_mode));
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, target, sizeof target - 1);
    FUZZ_CHECK(len > 0);
    target[len] = '\0';
    size_t rlen = strlen(root);
    FUZZ_CHECK(strncmp(target, root, rlen) == 0 && target[rlen] == '/');
    FUZZ_CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

static void try_open(const char *rel)
{
    struct stat st;
    int fd = webpath_open_beneath(root_fd, rel, &st);
    if (fd < 0)
        return;
    check_inside(fd, &st);
    close(fd);
}

/* The lowest free descriptor: the same before and after means none leaked. */
static int lowest_free_fd(void)
{
    int fd = dup(root_fd);
    FUZZ_CHECK(fd >= 0);
    close(fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int before = lowest_free_fd();
    /* As given: a C string stops at the first NUL, as any caller's would. */
    char *rel = malloc(size + 1);
    if (rel == NULL)
        return 0;
    memcpy(rel, data, size);
    rel[size] = '\0';
    try_open(rel);

    /* As the HTTP endpoint does: decode, then open without the '/'. */
    char path[WEBPATH_MAX];
    if (webpath_decode((const char *)data, size, path, sizeof path) > 0)
        try_open(path + 1);
    free(rel);
    FUZZ_CHECK(lowest_free_fd() == before);
    return 0;
}
