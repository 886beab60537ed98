/* admission: the server-wide and per-address connection counts. */
#include "server/admission.h"

#include <errno.h>

#include "server/stats.h"
#include "tcpmsg/iplimit.h"

int admission_init(struct admission *a, unsigned max_conns, unsigned max_per_ip)
{
    a->max_conns = max_conns;
    atomic_init(&a->open, 0);
    atomic_init(&a->next_id, 0);
    a->per_ip = iplimit_new(max_conns, max_per_ip);
    return a->per_ip == NULL ? -ENOMEM : 0;
}

void admission_destroy(struct admission *a)
{
    iplimit_free(a->per_ip);
    a->per_ip = NULL;
}

int admission_admit(struct admission *a, const struct sockaddr *peer, enum reject_reason *why)
{
    /* Take a place first and give it back when over: two workers admitting
     * at once cannot both see the last free place. */
    unsigned open = atomic_fetch_add(&a->open, 1);
    if (open >= a->max_conns) {
        atomic_fetch_sub(&a->open, 1);
        *why = REJECT_MAX_CONNS;
        return -EBUSY;
    }
    if (iplimit_acquire(a->per_ip, peer) < 0) {
        atomic_fetch_sub(&a->open, 1);
        *why = REJECT_PER_IP;
        return -EBUSY;
    }
    return 0;
}

void admission_release(struct admission *a, const struct sockaddr *peer)
{
    iplimit_release(a->per_ip, peer);
    atomic_fetch_sub(&a->open, 1);
}

uint64_t admission_next_id(struct admission *a)
{
    return atomic_fetch_add(&a->next_id, 1) + 1;
}

unsigned admission_open(struct admission *a)
{
    return atomic_load(&a->open);
}
