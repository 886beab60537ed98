/* iplimit: open connections per client address, for tcpmsgd's
 * --max-conns-per-ip and the HTTP endpoint's per-address cap. A fixed-size
 * open-addressing table under one mutex, touched only when a connection
 * opens or closes, never per message.
 */
#ifndef TCPMSG_IPLIMIT_H
#define TCPMSG_IPLIMIT_H

#include <stddef.h>
#include <sys/socket.h>

struct iplimit;

/* A table for at most max_addrs distinct addresses at once (the server passes
 * --max-conns: there can be no more addresses than connections). Released
 * with iplimit_free. NULL on ENOMEM. */
struct iplimit *iplimit_new(size_t max_addrs, unsigned per_addr);
void iplimit_free(struct iplimit *t); /* NULL is a no-op */

/* Count one more connection from sa's address: 0, or -EBUSY when that address
 * already has per_addr connections (nothing counted then). */
int iplimit_acquire(struct iplimit *t, const struct sockaddr *sa);

/* Undo one successful iplimit_acquire. */
void iplimit_release(struct iplimit *t, const struct sockaddr *sa);

#endif
