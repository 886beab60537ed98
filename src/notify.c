/* notify: the sd_notify messages of a Type=notify service (see notify.h).
 * With libsystemd each call is one datagram on NOTIFY_SOCKET; without it,
 * each does nothing.
 */
#include "tcpmsg/notify.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef TCPMSG_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

/* NOTIFY_SOCKET is left in the environment (unset_environment 0): the
 * status and the stopping message later need it too. A fork-mode child
 * inherits it but never calls here; systemd would drop its messages anyway
 * (NotifyAccess=main accepts the main process only). */
static int send_state(const char *state)
{
    int rc = sd_notify(0, state);
    return rc < 0 ? rc : 0; /* sd_notify: >0 sent, 0 no socket, -errno */
}

bool notify_enabled(void)
{
    const char *e = getenv("NOTIFY_SOCKET");
    return e != NULL && *e != '\0';
}
#else
static int send_state(const char *state)
{
    (void)state;
    return 0;
}

bool notify_enabled(void)
{
    return false;
}
#endif

int notify_ready(void)
{
    return send_state("READY=1");
}

int notify_stopping(const char *status)
{
    char msg[256];
    if (status == NULL)
        return send_state("STOPPING=1");
    /* Both in one datagram: systemd applies them together. */
    snprintf(msg, sizeof msg, "STOPPING=1\nSTATUS=%s", status);
    return send_state(msg);
}

int notify_status(const char *status)
{
    char msg[256];
    snprintf(msg, sizeof msg, "STATUS=%s", status);
    return send_state(msg);
}
