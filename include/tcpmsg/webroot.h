/* webroot: where a program of tcpmsg finds the status page's files when it
 * is not told (--web-root): the source tree's web/ for a program of the
 * build tree, else the share/tcpmsg/web installed beside the program. It
 * looks only at directories; serving their files is http.c's.
 */
#ifndef TCPMSG_WEBROOT_H
#define TCPMSG_WEBROOT_H

#include <stddef.h>

enum webroot_source {
    WEBROOT_BUILD_TREE, /* a binary in the build tree's bin/: the source tree's web/ */
    WEBROOT_INSTALLED,  /* <the binary's directory>/../share/tcpmsg/web */
    WEBROOT_NONE,       /* neither exists; out holds where an installed copy's would be */
};

/* Find the web root of the running program into out (cap bytes, PATH_MAX
 * is enough) and say where it came from. */
enum webroot_source webroot_find(char *out, size_t cap);

#endif
