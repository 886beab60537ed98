/* admission: who may connect. Counts the open connections of the whole
 * server against --max-conns and, per address, --max-conns-per-ip, and
 * hands out connection ids. Touched once per accept and once per close,
 * from any worker thread; never per message.
 */
#ifndef TCPMSG_SERVER_ADMISSION_H
#define TCPMSG_SERVER_ADMISSION_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/stats.h"

struct iplimit;

struct admission {
    unsigned max_conns;
    struct iplimit *per_ip;
    _Atomic unsigned open;    /* admitted and not yet released */
    _Atomic uint64_t next_id; /* the last connection id handed out */
};

/* 0 or -ENOMEM. Released with admission_destroy. */
int admission_init(struct admission *a, unsigned max_conns, unsigned max_per_ip);
void admission_destroy(struct admission *a);

/* Admit a client from peer: 0, or -EBUSY with *why the reason (enum
 * reject_reason, stats.h). Each admission is given back with
 * admission_release. */
int admission_admit(struct admission *a, const struct sockaddr *peer, enum reject_reason *why);
void admission_release(struct admission *a, const struct sockaddr *peer);

/* A new connection id: 1, 2, 3, ... */
uint64_t admission_next_id(struct admission *a);

/* How many are admitted now. */
unsigned admission_open(struct admission *a);

#endif
