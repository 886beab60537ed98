/* membudget: accounts in a shared mapping, their total, and the decisions
 * taken from it. */
#include "server/membudget.h"

#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>

#include "tcpmsg/hot.h"

/* One cache line per account: the writers of different slots (worker
 * threads) do not share lines. */
struct membudget_slot {
    _Atomic int64_t used;
    _Atomic int64_t holders;
    char pad[64 - 2 * sizeof(int64_t)];
};

struct membudget {
    uint64_t limit;
    uint64_t grace_ns;
    size_t map_size;
    unsigned nslots;
    _Atomic int64_t total;   /* the sum of the slots' used */
    _Atomic int64_t holders; /* the sum of the slots' holders */
    _Atomic int64_t paused;  /* connections waiting for room */
    _Atomic uint64_t over_since_ns; /* when the total went over; 0: under */
    struct membudget_slot slot[];
};

struct membudget *membudget_new(uint64_t limit, double grace_s, unsigned nslots)
{
    size_t size = sizeof(struct membudget) + (size_t)nslots * sizeof(struct membudget_slot);
    /* Shared, so that fork-mode children charge the parent's budget. Zeroed
     * by the kernel. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    struct membudget *b = p;
    b->limit = limit;
    b->grace_ns = (uint64_t)(grace_s * 1e9);
    b->map_size = size;
    b->nslots = nslots;
    return b;
}

void membudget_free(struct membudget *b)
{
    if (b != NULL)
        munmap(b, b->map_size);
}

/* A fork-mode child killed between the two adds below (or the two of
 * membudget_take) would leave the total off by that one change: the parent
 * kills children only at the end of a drain, when it no longer matters. */
void membudget_charge(struct membudget *b, unsigned slot, int64_t delta, int holders)
{
    if (delta != 0) {
        atomic_fetch_add_explicit(&b->slot[slot].used, delta, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->total, delta, memory_order_relaxed);
    }
    if (holders != 0) {
        atomic_fetch_add_explicit(&b->slot[slot].holders, holders, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->holders, holders, memory_order_relaxed);
    }
}

void membudget_write_off(struct membudget *b, unsigned slot)
{
    int64_t used = atomic_exchange_explicit(&b->slot[slot].used, 0, memory_order_relaxed);
    int64_t holders = atomic_exchange_explicit(&b->slot[slot].holders, 0, memory_order_relaxed);
    atomic_fetch_sub_explicit(&b->total, used, memory_order_relaxed);
    atomic_fetch_sub_explicit(&b->holders, holders, memory_order_relaxed);
}

uint64_t membudget_total(const struct membudget *b)
{
    int64_t t = atomic_load_explicit(&b->total, memory_order_relaxed);
    return t > 0 ? (uint64_t)t : 0; /* a give-back may land before its charge is seen */
}

uint64_t membudget_slot_used(const struct membudget *b, unsigned slot)
{
    int64_t u = atomic_load_explicit(&b->slot[slot].used, memory_order_relaxed);
    return u > 0 ? (uint64_t)u : 0;
}

uint64_t membudget_limit(const struct membudget *b)
{
    return b->limit;
}

uint64_t membudget_fair_share(const struct membudget *b)
{
    int64_t h = atomic_load_explicit(&b->holders, memory_order_relaxed);
    return b->limit / (uint64_t)(h > 1 ? h : 1);
}

/* With t charged in all, whether every account could take want at once. */
static bool room_for_all(const struct membudget *b, int64_t t, size_t want)
{
    uint64_t total = t > 0 ? (uint64_t)t : 0;
    return total + (uint64_t)b->nslots * want <= b->limit;
}

TCPMSG_HOT bool membudget_plenty(const struct membudget *b, size_t want)
{
    return room_for_all(b, atomic_load_explicit(&b->total, memory_order_relaxed), want);
}

size_t membudget_take(struct membudget *b, unsigned slot, uint64_t held, size_t want,
                      bool *charged)
{
    *charged = false;
    int64_t t = atomic_load_explicit(&b->total, memory_order_relaxed);
    for (;;) {
        if (room_for_all(b, t, want))
            return want; /* room for everyone: no need to hold it */
        uint64_t total = t > 0 ? (uint64_t)t : 0;
        uint64_t room = total < b->limit ? b->limit - total : 0;
        if (held < MEMBUDGET_SMALL_HOLDING && MEMBUDGET_SMALL_HOLDING - held > room)
            room = MEMBUDGET_SMALL_HOLDING - held;
        size_t grant = room < want ? (size_t)room : want;
        if (grant == 0)
            return 0;
        if (atomic_compare_exchange_weak_explicit(&b->total, &t, t + (int64_t)grant,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            atomic_fetch_add_explicit(&b->slot[slot].used, (int64_t)grant, memory_order_relaxed);
            *charged = true;
            return grant;
        }
    }
}

void membudget_paused(struct membudget *b, int delta)
{
    atomic_fetch_add_explicit(&b->paused, delta, memory_order_relaxed);
}

static uint64_t resume_mark(const struct membudget *b)
{
    return b->limit - b->limit / 8;
}

bool membudget_may_resume(const struct membudget *b)
{
    return membudget_total(b) <= resume_mark(b);
}

bool membudget_exhausted(const struct membudget *b)
{
    uint64_t total = membudget_total(b);
    return total > b->limit ||
           (total > resume_mark(b) && atomic_load_explicit(&b->paused, memory_order_relaxed) > 0);
}

bool membudget_must_evict(struct membudget *b, uint64_t now_ns)
{
    if (!membudget_exhausted(b)) {
        atomic_store_explicit(&b->over_since_ns, 0, memory_order_relaxed);
        return false;
    }
    uint64_t since = 0;
    if (atomic_compare_exchange_strong(&b->over_since_ns, &since, now_ns))
        since = now_ns;
    return now_ns - since >= b->grace_ns;
}
