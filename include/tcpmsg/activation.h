/* activation: the listening sockets a service manager passed to the daemon
 * (systemd's socket activation, sd_listen_fds(3)). systemd binds the port
 * itself (a .socket unit), keeps the socket open across restarts of the
 * service, and hands it over as descriptor 3 (then 4, 5 ...), with
 * LISTEN_FDS saying how many and LISTEN_PID naming the process meant.
 * Connections that arrive while no daemon runs wait in its backlog.
 *
 * Only finds and checks the sockets: what to do with them is the caller's.
 */
#ifndef TCPMSG_ACTIVATION_H
#define TCPMSG_ACTIVATION_H

#include <stddef.h>

#define ACTIVATION_FIRST_FD 3 /* SD_LISTEN_FDS_START */

/* How many sockets this process was given: 0 when none (no LISTEN_FDS, or
 * LISTEN_PID names another process), else n > 0, and they are descriptors
 * ACTIVATION_FIRST_FD to ACTIVATION_FIRST_FD + n - 1, each a listening TCP
 * socket (IPv4 or IPv6), close-on-exec, owned by the caller from now on.
 * LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES are removed from the
 * environment either way, so that no program started later takes them for
 * its own.
 *
 * Errors, with the reason in err (cap bytes): -EINVAL, one descriptor is
 * not a listening TCP socket; -ENOTSUP, LISTEN_FDS names this process but
 * the build has no libsystemd (TCPMSG_HAVE_SYSTEMD); another -errno from
 * sd_listen_fds or the check of a descriptor. */
int activation_listeners(char *err, size_t cap);

#endif
