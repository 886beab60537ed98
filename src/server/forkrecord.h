/* forkrecord: the statistics records a fork-mode child sends its parent.
 * Every record has the same size, no more than PIPE_BUF, so each write(2)
 * to the shared pipe is atomic: records of different children never
 * interleave. A record carries counter deltas since the previous record,
 * histogram bucket deltas, and the connection's current state.
 */
#ifndef TCPMSG_SERVER_FORKRECORD_H
#define TCPMSG_SERVER_FORKRECORD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "server/stats.h"

#define FORK_RECORD_MAGIC 0x544d5347u /* "TMSG" */
/* 2: 64-bit bucket deltas, RTT report rejections; 3: a delta for every
 * counter of SERVER_STATS_COUNTERS, in its order; 4: TCP_INFO's counters and
 * the srtt histogram; 5: the stage histograms, recvmsg and sendmsg, dropped stage samples */
#define FORK_RECORD_VERSION 5
#define FORK_RECORD_SIZE 1024
#define FORK_RECORD_FINAL 1u /* flags: the child's last record */

/* Which histogram of server_stats an entry moves: one per SERVER_STATS_HISTS. */
enum fork_hist {
#define FORK_HIST_ENUM(field, ...) FORK_HIST_##field,
    SERVER_STATS_HISTS(FORK_HIST_ENUM)
#undef FORK_HIST_ENUM
    FORK_HIST_COUNT
};

/* Counter deltas since the previous record: the counters of server_stats,
 * made from the same list, so a new counter travels without a change here.
 * The parent counts accepts and rejections itself; a child's are zero. */
struct fork_deltas {
#define FORK_DELTA_FIELD(field, shape, ...) uint64_t field shape;
    SERVER_STATS_COUNTERS(FORK_DELTA_FIELD)
#undef FORK_DELTA_FIELD
};

struct fork_record_head {
    uint32_t magic;
    uint16_t version;
    uint16_t flags;
    int32_t pid;
    uint32_t slot;     /* the parent's table slot for this child */
    uint32_t nentries; /* histogram entries that follow */
    uint32_t reserved;
    uint64_t conn_id;
    /* The connection now (totals, not deltas). */
    uint64_t active_ns, msgs_in, msgs_out, bytes_in, bytes_out, pending;
    uint8_t mode, state, reason, pad[5];
    struct fork_deltas d;
};

/* A bucket's delta is as wide as the bucket itself: one RTT report can move
 * a bucket by 2^32-1 several times over (repeated entries), and a 32-bit
 * delta would lose the excess. Regression: it was uint32_t, and a report of
 * two 0xFFFFFFFF entries for one bucket reached the parent halved. */
struct fork_entry {
    uint64_t count;
    uint16_t bucket;
    uint8_t hist; /* enum fork_hist */
    uint8_t pad[5];
};

#define FORK_ENTRIES ((FORK_RECORD_SIZE - sizeof(struct fork_record_head)) / sizeof(struct fork_entry))

struct fork_record {
    struct fork_record_head h;
    struct fork_entry e[FORK_ENTRIES];
};

_Static_assert(sizeof(struct fork_record) <= PIPE_BUF, "a record must be written atomically");

/* Emit the records that bring `sent` up to `cur`: fills head fields from
 * tmpl (identity, connection state, flags), the deltas from cur - sent, then
 * calls emit for each full record (more than one when many buckets moved).
 * sent is updated to cur. Returns the number of records emitted (0 when
 * nothing changed and force is false), or a negative errno from emit. */
int forkrecord_emit(const struct fork_record_head *tmpl, const struct server_stats *cur,
                    struct server_stats *sent, bool force,
                    int (*emit)(const struct fork_record *r, void *ctx), void *ctx);

/* Check a received record; false when it is malformed. */
bool forkrecord_valid(const struct fork_record *r);

/* Add a record's deltas to dst (histogram samples at bucket midpoints). */
void forkrecord_apply(const struct fork_record *r, struct server_stats *dst);

#endif
