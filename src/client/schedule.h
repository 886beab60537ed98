/* schedule: the open-loop send schedule of one connection. Message k is due
 * at first + k * period, whatever happened to the messages before it: that
 * fixed timetable is what lets a latency be measured from when a message
 * should have left (coordinated-omission correction). Pure arithmetic.
 */
#ifndef TCPMSG_CLIENT_SCHEDULE_H
#define TCPMSG_CLIENT_SCHEDULE_H

#include <math.h>
#include <stdint.h>

struct schedule {
    uint64_t first_ns; /* when message 0 is due */
    double period_ns;  /* time between two messages */
};

/* When message k is due. */
static inline uint64_t schedule_time(const struct schedule *s, uint64_t k)
{
    return s->first_ns + (uint64_t)((double)k * s->period_ns);
}

/* How many messages are due strictly before t: the first k with
 * schedule_time(k) >= t. */
static inline uint64_t schedule_count_before(const struct schedule *s, uint64_t t)
{
    if (t <= s->first_ns)
        return 0;
    uint64_t k = (uint64_t)ceil((double)(t - s->first_ns) / s->period_ns);
    /* ceil of a rounded quotient can be one off either way: settle it exactly. */
    while (k > 0 && schedule_time(s, k - 1) >= t)
        k--;
    while (schedule_time(s, k) < t)
        k++;
    return k;
}

#endif
