/* membudget: the server-wide budget for connection buffers
 * (--max-buffer-memory). Every connection charges what its input and output
 * buffers hold to an account (one per worker thread, or per fork-mode
 * child); the total decides when the server stops reading from the
 * connections that hold the most, and when, after --memory-grace, it closes
 * them. The accounts live in one shared anonymous mapping, so fork-mode
 * children charge the same budget the parent reports, and the charge of a
 * child that died can be written off. Lock-free: charging is two atomic adds,
 * made only when a buffer is taken or given back, never per message.
 */
#ifndef TCPMSG_SERVER_MEMBUDGET_H
#define TCPMSG_SERVER_MEMBUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct membudget;

/* A budget of limit bytes with nslots accounts. NULL on ENOMEM. Released
 * with membudget_free (NULL is a no-op). */
struct membudget *membudget_new(uint64_t limit, double grace_s, unsigned nslots);
void membudget_free(struct membudget *b);

/* Change slot's charge by delta bytes (negative gives back), and its count
 * of connections holding anything by holders (-1, 0 or +1). Any thread or
 * process; each slot has one writer at a time. */
void membudget_charge(struct membudget *b, unsigned slot, int64_t delta, int holders);

/* A dead child's charge (its slot) goes back to the budget. */
void membudget_write_off(struct membudget *b, unsigned slot);

uint64_t membudget_total(const struct membudget *b);
/* What one account holds now. */
uint64_t membudget_slot_used(const struct membudget *b, unsigned slot);
uint64_t membudget_limit(const struct membudget *b);

/* The limit shared evenly among the connections that hold anything: past
 * the grace period, those holding more are closed, largest first. */
uint64_t membudget_fair_share(const struct membudget *b);

/* What a connection may always hold, over the budget or not: enough for a
 * message of a few KiB in progress, so that clients that hold (almost)
 * nothing are served as before while the largest holders wait. */
#define MEMBUDGET_SMALL_HOLDING 4096u

/* Whether the budget has room for every account to add want bytes at once:
 * then membudget_take grants want and charges nothing. */
bool membudget_plenty(const struct membudget *b, size_t want);

/* How many more bytes (up to want) a connection holding held bytes may add
 * now: what is left of the budget, or, over it, only what brings it up to
 * MEMBUDGET_SMALL_HOLDING. 0: it must pause. While the budget has room for
 * every account to take want at once, that is all (nothing is charged: the
 * connection charges what it really keeps afterwards). Nearer the limit
 * the grant is charged to slot at once (*charged is set), so that accounts
 * reading at the same moment (threads, fork-mode children) cannot all take
 * the same room. The total then stays within the limit plus
 * MEMBUDGET_SMALL_HOLDING per connection (and an output chunk's rounding). */
size_t membudget_take(struct membudget *b, unsigned slot, uint64_t held, size_t want,
                      bool *charged);

/* A connection stopped (paused += 1) or started again (-1) waiting for
 * room in the budget. */
void membudget_paused(struct membudget *b, int delta);

/* Paused connections holding 4 KiB or more may read again: the total is
 * back under 7/8 of the limit (the margin keeps them from flapping). */
bool membudget_may_resume(const struct membudget *b);

/* The budget is spent: the total is over the limit, or connections wait
 * for room while it is above the resume mark (they hold what they have, so
 * the total would not move by itself). */
bool membudget_exhausted(const struct membudget *b);

/* Called a few times a second: true once the budget has stayed spent for
 * the grace period, and the largest holders must be closed (while
 * membudget_exhausted says so). */
bool membudget_must_evict(struct membudget *b, uint64_t now_ns);

#endif
