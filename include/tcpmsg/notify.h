/* notify: tell the service manager how the daemon is doing, through
 * libsystemd's sd_notify: "READY=1" once it serves, "STOPPING=1" when it
 * begins to shut down, and a one-line "STATUS=" that `systemctl status`
 * shows. The messages go to the datagram socket named by NOTIFY_SOCKET,
 * which systemd sets for a Type=notify service.
 *
 * Not a log: nothing is kept or retried. Without NOTIFY_SOCKET (started by
 * hand, or by a unit of another Type), or in a build without libsystemd
 * (TCPMSG_HAVE_SYSTEMD undefined), every call does nothing and returns 0.
 * Call from one thread at a time.
 */
#ifndef TCPMSG_NOTIFY_H
#define TCPMSG_NOTIFY_H

#include <stdbool.h>

/* true when the messages go somewhere: built with libsystemd and
 * NOTIFY_SOCKET set. A caller may skip preparing a status when false. */
bool notify_enabled(void);

/* "READY=1": the daemon serves (its sockets accept, its endpoints answer).
 * systemd considers a Type=notify unit started only now. 0, or -errno when
 * the message could not be sent (the socket is gone, or not a socket). */
int notify_ready(void);

/* "STOPPING=1", with a STATUS= line saying why (status may be NULL): the
 * daemon has begun to shut down. 0 or -errno. */
int notify_stopping(const char *status);

/* "STATUS=<status>": one short line, replacing the previous one. 0 or
 * -errno. */
int notify_status(const char *status);

#endif
