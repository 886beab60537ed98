/* activation: find and check the listening sockets of systemd's socket
 * activation (see activation.h), with libsystemd when the build has it.
 */
#include "tcpmsg/activation.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef TCPMSG_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

_Static_assert(ACTIVATION_FIRST_FD == SD_LISTEN_FDS_START, "systemd passes sockets from fd 3");

int activation_listeners(char *err, size_t cap)
{
    /* unset_environment 1: the variables describe this process only. A
     * LISTEN_PID of another process (inherited through a program that did
     * not unset them) makes this 0. */
    int n = sd_listen_fds(1);
    if (n < 0) {
        snprintf(err, cap, "LISTEN_FDS: %s", strerror(-n));
        return n;
    }
    for (int i = 0; i < n; i++) {
        int fd = ACTIVATION_FIRST_FD + i;
        /* Any family of the inet kind, a stream, listening, any port. */
        int rc = sd_is_socket_inet(fd, 0, SOCK_STREAM, 1, 0);
        if (rc < 0) {
            snprintf(err, cap, "descriptor %d: %s", fd, strerror(-rc));
            return rc;
        }
        if (rc == 0) {
            snprintf(err, cap,
                     "descriptor %d is not a listening TCP socket (the .socket unit needs "
                     "ListenStream= with an address or a port)",
                     fd);
            return -EINVAL;
        }
    }
    return n;
}
#else
/* Without libsystemd the sockets could be found by hand, but the build was
 * chosen without systemd support: say so rather than bind a port of our
 * own next to the one systemd holds. */
int activation_listeners(char *err, size_t cap)
{
    const char *fds = getenv("LISTEN_FDS");
    const char *pid = getenv("LISTEN_PID");
    bool ours = fds != NULL && pid != NULL && strtol(pid, NULL, 10) == (long)getpid();
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
    if (!ours)
        return 0;
    snprintf(err, cap, "LISTEN_FDS is set (socket activation), but this tcpmsgd was built "
                       "without libsystemd");
    return -ENOTSUP;
}
#endif
