/* webroot: finding the status page's files from the running program's own
 * path. The build (cmake/install.cmake) tells where the build tree puts its
 * programs and the path from an installed program to its share/tcpmsg/web.
 */
#include "tcpmsg/webroot.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The directory of the running program, as the kernel resolved it: no
 * symbolic link and no ".." left in it. 0, or a negative errno (no /proc). */
static int program_dir(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap);
    if (n < 0)
        return -errno;
    if ((size_t)n >= cap)
        return -ENAMETOOLONG; /* readlink truncates without saying so */
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash == NULL)
        return -ENOENT;
    slash[slash == out] = '\0'; /* "/tcpmsg" lives in "/" */
    return 0;
}

/* The build tree is recognised by the program's directory alone, not by a
 * prefix of it: `cmake --install --prefix build/stage` is an installed copy.
 * Nothing absolute is compiled in for the installed case, so a prefix that
 * was moved, or a package unpacked into a scratch root, still finds its
 * files. */
enum webroot_source webroot_find(char *out, size_t cap)
{
    char dir[PATH_MAX], build_bin[PATH_MAX], path[PATH_MAX + sizeof TCPMSG_WEB_FROM_BIN];
    snprintf(out, cap, "%s", "");
    if (program_dir(dir, sizeof dir) < 0)
        return WEBROOT_NONE;
    /* realpath: the build directory may have been named through a link. */
    if (realpath(TCPMSG_BUILD_BIN_DIR, build_bin) != NULL && strcmp(dir, build_bin) == 0 &&
        is_dir(TCPMSG_SOURCE_WEB_ROOT) && strlen(TCPMSG_SOURCE_WEB_ROOT) < cap) {
        snprintf(out, cap, "%s", TCPMSG_SOURCE_WEB_ROOT);
        return WEBROOT_BUILD_TREE;
    }
    snprintf(path, sizeof path, "%s/%s", dir, TCPMSG_WEB_FROM_BIN);
    char real[PATH_MAX];
    if (realpath(path, real) != NULL && is_dir(real) && strlen(real) < cap) {
        snprintf(out, cap, "%s", real);
        return WEBROOT_INSTALLED;
    }
    snprintf(out, cap, "%s", path);
    return WEBROOT_NONE;
}
