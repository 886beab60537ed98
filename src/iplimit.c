/* iplimit: per-address connection counts in a linear-probing hash table.
 * Deletion shifts later entries back (no tombstones), so the table never
 * degrades however many clients come and go.
 */
#include "tcpmsg/iplimit.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ip_entry {
    uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d so both families share a key */
    unsigned count;   /* 0: slot empty */
};

struct iplimit {
    pthread_mutex_t lock;
    unsigned per_addr;
    size_t mask; /* slots - 1; slots is a power of two >= 2 * max_addrs */
    struct ip_entry *slots;
};

struct iplimit *iplimit_new(size_t max_addrs, unsigned per_addr)
{
    struct iplimit *t = calloc(1, sizeof *t);
    if (t == NULL)
        goto failed_table;
    size_t n = 16;
    while (n < 2 * max_addrs) /* load factor <= 1/2 keeps probes short */
        n *= 2;
    t->slots = calloc(n, sizeof *t->slots);
    if (t->slots == NULL)
        goto failed_slots;
    t->mask = n - 1;
    t->per_addr = per_addr;
    pthread_mutex_init(&t->lock, NULL);
    return t;

failed_slots:
    free(t);
failed_table:
    return NULL;
}

void iplimit_free(struct iplimit *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t);
}

static void addr_key(const struct sockaddr *sa, uint8_t key[16])
{
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else {
        static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        memcpy(key, v4mapped, 12);
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    }
}

static size_t addr_hash(const uint8_t key[16])
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211u;
    return (size_t)(h ^ (h >> 29));
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find_slot(const struct iplimit *t, const uint8_t key[16])
{
    size_t i = addr_hash(key) & t->mask;
    while (t->slots[i].count != 0 && memcmp(t->slots[i].addr, key, 16) != 0)
        i = (i + 1) & t->mask;
    return i;
}

int iplimit_acquire(struct iplimit *t, const struct sockaddr *sa)
{
    uint8_t key[16];
    addr_key(sa, key);
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    struct ip_entry *e = &t->slots[find_slot(t, key)];
    if (e->count >= t->per_addr) {
        rc = -EBUSY;
    } else {
        memcpy(e->addr, key, 16);
        e->count++;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* Backward-shift deletion: move later members of the probe run into the hole
 * when the hole lies between their home slot and where they sit. */
static void remove_slot(struct iplimit *t, size_t hole)
{
    size_t i = hole;
    for (;;) {
        i = (i + 1) & t->mask;
        if (t->slots[i].count == 0)
            break;
        size_t home = addr_hash(t->slots[i].addr) & t->mask;
        bool movable = ((i - home) & t->mask) >= ((i - hole) & t->mask);
        if (movable) {
            t->slots[hole] = t->slots[i];
            hole = i;
        }
    }
    t->slots[hole].count = 0;
}

void iplimit_release(struct iplimit *t, const struct sockaddr *sa)
{
    uint8_t key[16];
    addr_key(sa, key);
    pthread_mutex_lock(&t->lock);
    size_t i = find_slot(t, key);
    if (t->slots[i].count > 0 && --t->slots[i].count == 0)
        remove_slot(t, i);
    pthread_mutex_unlock(&t->lock);
}
