/* counter: single-writer statistics counters. The owning thread adds with a
 * plain load and store (no lock prefix, no contention); other threads read a
 * recent value at any time. Relaxed atomics keep that race well defined.
 */
#ifndef TCPMSG_COUNTER_H
#define TCPMSG_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t counter_t;

/* Owner thread only. */
static inline void counter_add(counter_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Owner thread only. */
static inline void counter_set(counter_t *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

/* Saturating arithmetic for numbers a client can drive (histogram counts and
 * sums, its RTT reports): a total that stops at UINT64_MAX is an honest
 * "at least", one that wraps is a lie. */
static inline uint64_t u64_add_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static inline uint64_t u64_mul_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* Any thread. */
static inline uint64_t counter_get(const counter_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

#endif
