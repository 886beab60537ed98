/* loop_uring: the completion backend of the loop. The kernel does the I/O
 * and the loop dispatches what completed: multishot accept, multishot recv
 * into a ring of buffers the loop provides, send/sendmsg, one-shot polls for
 * watches. Everything queued during a wakeup reaches the kernel in the one
 * io_uring_enter that also waits for the next completions.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loop_backend.h"
#include "tcpmsg/net.h"
#include "tcpmsg/tstamp.h"

#define URING_ENTRIES 256
#define URING_BUF_GROUP 0
#define URING_BUF_STRIDE (LOOP_HEADROOM + LOOP_READ_SIZE)
#define URING_SQ_IDLE_MS 100 /* SQPOLL: the kernel thread sleeps after this long idle */
#define URING_OPS_PER_CHUNK 64
#define URING_WRITES_KEPT 64 /* free write slots kept: 70 KiB */

_Static_assert((LOOP_URING_BUFS & (LOOP_URING_BUFS - 1)) == 0, "a buffer ring is a power of two");

/* A request in the kernel. Its address is the request's user_data. The
 * loop owns it, not the watch or acceptor it serves: a watch stopped while
 * its poll is still in the kernel is "orphaned" (owner NULL) and the request
 * is freed when its last completion arrives, so the caller may free the
 * watch at once. Streams keep theirs until on_close. */
enum op_kind { OP_POLL, OP_ACCEPT, OP_RECV, OP_SEND, OP_HUP, OP_ERRQ };

/* A write's iovec array (and msghdr, for sendmsg, with the control message
 * of a stamped write), held only while the write is in flight: the kernel
 * reads it until the send completes. */
struct uring_write {
    struct msghdr msg;
    struct iovec iov[LOOP_IOV_MAX];
    union {
        char buf[TSTAMP_TX_CMSG_SPACE];
        struct cmsghdr align;
    } ctl;
    struct uring_write *next; /* free list */
};

/* A stamped recv's msghdr: a single recvmsg writes the receive timestamp
 * into ctl; a multishot one reads only the lengths, and puts the control
 * data in front of the payload in the provided buffer. */
struct uring_rmsg {
    struct msghdr msg;
    struct iovec iov;
    union {
        char buf[TSTAMP_RX_CMSG_SPACE];
        struct cmsghdr align;
    } ctl;
    struct uring_rmsg *next; /* free list */
};

struct uring_op {
    void *owner;            /* the watch, acceptor or stream; NULL: orphaned */
    struct uring_write *write; /* OP_SEND: its buffers */
    struct uring_rmsg *rmsg;   /* OP_RECV of a stream with stamping on: a recvmsg */
    enum op_kind kind;
    bool armed;             /* the kernel still holds it: completions will come */
    bool multishot;
    bool cancelling;        /* a cancel for it is queued, or waits in cancels */
    bool cancel_later;      /* on cancels: no entry could be had for it */
    size_t len;             /* a single recv: the most it takes */
    struct uring_op *next;  /* free list, or cancels */
};

struct op_chunk {
    struct op_chunk *next;
    struct uring_op ops[URING_OPS_PER_CHUNK];
};

struct uring_be {
    struct io_uring ring;
    bool sqpoll;
    bool disabled;                /* created disabled: enabled by the first wait */
    /* Entries prepared that the submission queue could not hold (a set-up
     * starting many streams, a wakeup closing many): queued, in order, by
     * the next enter, which also submits them. */
    struct io_uring_sqe *backlog;
    unsigned nbacklog, backlog_cap;
    struct uring_op *cancels;     /* cancels not queued for want of memory: retried by enter */
    struct io_uring_buf_ring *br; /* the provided buffer ring */
    uint8_t *slab;                /* LOOP_URING_BUFS buffers, each after its headroom */
    struct uring_op *free_ops;
    struct op_chunk *chunks;
    struct uring_write *free_writes; /* write slots kept for reuse, at most URING_WRITES_KEPT */
    unsigned nfree_writes;
    struct uring_rmsg *free_rmsgs;   /* recvmsg headers kept for reuse, at most URING_WRITES_KEPT */
    unsigned nfree_rmsgs;
    bool has_recvmsg;                /* IORING_OP_RECVMSG: stamping is possible */
    const void *current;          /* the watch or acceptor being dispatched; NULL once stopped */
};

static struct uring_be *be_of(struct loop *l)
{
    return l->be;
}

/* --- requests ----------------------------------------------------------------- */

static struct uring_op *op_new(struct uring_be *be, enum op_kind kind, void *owner)
{
    if (be->free_ops == NULL) {
        struct op_chunk *c = calloc(1, sizeof *c);
        if (c == NULL)
            return NULL;
        c->next = be->chunks;
        be->chunks = c;
        for (unsigned i = 0; i < URING_OPS_PER_CHUNK; i++) {
            c->ops[i].next = be->free_ops;
            be->free_ops = &c->ops[i];
        }
    }
    struct uring_op *op = be->free_ops;
    be->free_ops = op->next;
    *op = (struct uring_op){ .owner = owner, .kind = kind };
    return op;
}

static struct uring_write *write_new(struct uring_be *be)
{
    struct uring_write *wr = be->free_writes;
    if (wr == NULL)
        return malloc(sizeof *wr);
    be->free_writes = wr->next;
    be->nfree_writes--;
    return wr;
}

static void write_free(struct uring_be *be, struct uring_write *wr)
{
    if (be->nfree_writes >= URING_WRITES_KEPT) {
        free(wr);
        return;
    }
    wr->next = be->free_writes;
    be->free_writes = wr;
    be->nfree_writes++;
}

static struct uring_rmsg *rmsg_new(struct uring_be *be)
{
    struct uring_rmsg *rm = be->free_rmsgs;
    if (rm == NULL)
        return malloc(sizeof *rm);
    be->free_rmsgs = rm->next;
    be->nfree_rmsgs--;
    return rm;
}

static void rmsg_free(struct uring_be *be, struct uring_rmsg *rm)
{
    if (be->nfree_rmsgs >= URING_WRITES_KEPT) {
        free(rm);
        return;
    }
    rm->next = be->free_rmsgs;
    be->free_rmsgs = rm;
    be->nfree_rmsgs++;
}

static void op_free(struct uring_be *be, struct uring_op *op)
{
    if (op->write != NULL)
        write_free(be, op->write);
    op->write = NULL;
    if (op->rmsg != NULL)
        rmsg_free(be, op->rmsg);
    op->rmsg = NULL;
    if (op->cancel_later) {
        struct uring_op **pp = &be->cancels;
        while (*pp != op)
            pp = &(*pp)->next;
        *pp = op->next;
    }
    op->next = be->free_ops;
    be->free_ops = op;
}

/* Make the queued entries visible to the kernel (liburing's
 * __io_uring_flush_sq, which is not exported): the loop calls io_uring_enter
 * itself so that it knows, and counts, every call. Returns how many wait. */
static unsigned flush_sq(struct io_uring *ring)
{
    struct io_uring_sq *sq = &ring->sq;
    if (sq->sqe_head != sq->sqe_tail) {
        sq->sqe_head = sq->sqe_tail;
        io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
    }
    return sq->sqe_tail - io_uring_smp_load_acquire(sq->khead);
}

/* A slot in the backlog (see struct uring_be), or NULL without memory. */
static struct io_uring_sqe *backlog_sqe(struct uring_be *be)
{
    if (be->nbacklog == be->backlog_cap) {
        unsigned cap = be->backlog_cap ? 2 * be->backlog_cap : 64;
        struct io_uring_sqe *b = realloc(be->backlog, cap * sizeof *b);
        if (b == NULL)
            return NULL;
        be->backlog = b;
        be->backlog_cap = cap;
    }
    struct io_uring_sqe *sqe = &be->backlog[be->nbacklog++];
    memset(sqe, 0, sizeof *sqe);
    return sqe;
}

/* A free submission entry, or one in the backlog when the queue is full or
 * the backlog not empty (entries keep their order: a cancel never passes
 * the request it cancels). NULL only without memory. It enters nothing:
 * from a callback, or before the loop's thread has entered (which would
 * make this thread the ring's issuer), that is enter's job. */
static struct io_uring_sqe *get_sqe(struct loop *l, void *user_data)
{
    struct uring_be *be = be_of(l);
    struct io_uring_sqe *sqe = be->nbacklog == 0 ? io_uring_get_sqe(&be->ring) : NULL;
    if (sqe == NULL)
        sqe = backlog_sqe(be);
    if (sqe != NULL)
        io_uring_sqe_set_data(sqe, user_data);
    return sqe;
}

/* A new op of kind for owner and the submission entry that will carry it:
 * 0, or -ENOMEM (no op) or -EIO (no entry; the op is given back). */
static int op_and_sqe(struct loop *l, enum op_kind kind, void *owner, struct uring_op **op,
                      struct io_uring_sqe **sqe)
{
    if ((*op = op_new(be_of(l), kind, owner)) == NULL)
        return -ENOMEM;
    if ((*sqe = get_sqe(l, *op)) == NULL) {
        op_free(be_of(l), *op);
        return -EIO;
    }
    return 0;
}

static bool prep_cancel(struct loop *l, struct uring_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(l, NULL);
    if (sqe == NULL)
        return false;
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data(sqe, NULL);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS; /* only a failed cancel says anything */
    return true;
}

/* Ask the kernel to end op. Its final completion (-ECANCELED, or a last
 * result if it finished first) still arrives and frees it. Without memory
 * for the entry the cancel waits on cancels: lost, a multishot request
 * would never end (no on_close, the descriptor kept). */
static void op_cancel(struct loop *l, struct uring_op *op)
{
    if (!op->armed || op->cancelling)
        return;
    op->cancelling = true;
    if (prep_cancel(l, op))
        return;
    struct uring_be *be = be_of(l);
    op->cancel_later = true;
    op->next = be->cancels;
    be->cancels = op;
}

/* Queue the cancels that waited, then as much of the backlog as the
 * submission queue holds. */
static void queue_waiting(struct loop *l)
{
    struct uring_be *be = be_of(l);
    while (be->cancels != NULL && prep_cancel(l, be->cancels)) {
        struct uring_op *op = be->cancels;
        be->cancels = op->next;
        op->cancel_later = false;
    }
    unsigned i = 0;
    for (struct io_uring_sqe *sqe; i < be->nbacklog && (sqe = io_uring_get_sqe(&be->ring)) != NULL; i++)
        *sqe = be->backlog[i];
    if (i == 0)
        return;
    be->nbacklog -= i;
    memmove(be->backlog, be->backlog + i, be->nbacklog * sizeof *be->backlog);
}

/* One io_uring_enter: submit what is queued and, with wait, wait for one
 * completion at most timeout_ns (UINT64_MAX: no limit). SQPOLL: the kernel
 * thread submits; the call is made only to wake it, to wait, or to flush
 * completions that overflowed the ring. */
static int enter_once(struct loop *l, bool wait, uint64_t timeout_ns)
{
    struct uring_be *be = be_of(l);
    struct io_uring *ring = &be->ring;
    unsigned to_submit = flush_sq(ring);
    unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
    if (be->sqpoll) {
        unsigned kflags = IO_URING_READ_ONCE(*ring->sq.kflags);
        if (kflags & IORING_SQ_NEED_WAKEUP)
            flags |= IORING_ENTER_SQ_WAKEUP;
        else if (!wait && !(kflags & IORING_SQ_CQ_OVERFLOW))
            return 0;
    }
    struct __kernel_timespec ts = { .tv_sec = (long long)(timeout_ns / 1000000000u),
                                    .tv_nsec = (long long)(timeout_ns % 1000000000u) };
    struct io_uring_getevents_arg arg = {
        .ts = wait && timeout_ns != UINT64_MAX ? (uint64_t)(uintptr_t)&ts : 0,
    };
    loop_count(l, LOOP_SYS_IO_URING_ENTER);
    int rc = io_uring_enter2((unsigned)ring->ring_fd, to_submit, wait ? 1 : 0, flags,
                             (sigset_t *)&arg, sizeof arg);
    /* Timed out, interrupted, or the completion ring is full (EBUSY: what
     * is queued waits for the next call): none is a failure of the loop. */
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
        return rc;
    return 0;
}

/* The first call on the loop's thread enables the ring, which makes this
 * thread its only issuer (io_uring_enable_rings is declared but not
 * exported by liburing 2.3). Then submit, queueing what waited as room
 * frees, and wait only once nothing waits any more. An enter that freed no
 * room (the kernel refused: EBUSY, EAGAIN; sqpoll: its thread is behind)
 * ends the attempt without waiting: the caller dispatches the completions,
 * which lets the kernel go on, and the next wakeup tries again. */
static int enter(struct loop *l, bool wait, uint64_t timeout_ns)
{
    struct uring_be *be = be_of(l);
    struct io_uring *ring = &be->ring;
    if (be->disabled) {
        int rc = io_uring_register((unsigned)ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
        if (rc < 0)
            return rc;
        be->disabled = false;
    }
    for (;;) {
        queue_waiting(l);
        bool more = be->nbacklog > 0 || be->cancels != NULL;
        int rc = enter_once(l, wait && !more, timeout_ns);
        if (rc < 0 || !more || io_uring_sq_space_left(ring) == 0)
            return rc;
    }
}

/* --- set-up ------------------------------------------------------------------- */

static bool probe_ok(struct io_uring *ring, bool *has_recvmsg)
{
    static const int needed[] = { IORING_OP_RECV, IORING_OP_SEND, IORING_OP_SENDMSG,
                                  IORING_OP_ACCEPT, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL };
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (p == NULL)
        return false;
    bool ok = true;
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        ok = ok && io_uring_opcode_supported(p, needed[i]);
    *has_recvmsg = io_uring_opcode_supported(p, IORING_OP_RECVMSG);
    io_uring_free_probe(p);
    return ok;
}

/* Give buffer bid back to the kernel. Its address skips the headroom, so
 * the bytes in front of each delivery are the caller's to write. */
static void buf_return(struct uring_be *be, unsigned bid)
{
    io_uring_buf_ring_add(be->br, be->slab + (size_t)bid * URING_BUF_STRIDE + LOOP_HEADROOM,
                          LOOP_READ_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(LOOP_URING_BUFS), 0);
    io_uring_buf_ring_advance(be->br, 1);
}

/* The provided buffer ring (what liburing 2.4's io_uring_setup_buf_ring
 * does): the ring and the buffers are anonymous mappings, so pages are only
 * committed once the kernel writes into them. */
static int setup_buffers(struct uring_be *be)
{
    size_t ring_size = LOOP_URING_BUFS * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, ring_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED)
        return -ENOMEM;
    be->br = br;
    void *slab = mmap(NULL, (size_t)LOOP_URING_BUFS * URING_BUF_STRIDE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (slab == MAP_FAILED)
        return -ENOMEM;
    /* Only the pages the kernel writes into should count: a huge page would
     * commit 2 MiB at the first delivery into it. */
    madvise(slab, (size_t)LOOP_URING_BUFS * URING_BUF_STRIDE, MADV_NOHUGEPAGE);
    be->slab = slab;
    struct io_uring_buf_reg reg = { .ring_addr = (uint64_t)(uintptr_t)br,
                                    .ring_entries = LOOP_URING_BUFS,
                                    .bgid = URING_BUF_GROUP };
    int rc = io_uring_register_buf_ring(&be->ring, &reg, 0);
    if (rc < 0)
        return rc == -EINVAL ? -ENOSYS : rc; /* before 5.19: no buffer rings */
    io_uring_buf_ring_init(be->br);
    for (unsigned i = 0; i < LOOP_URING_BUFS; i++)
        buf_return(be, i);
    return 0;
}

/* Without SQPOLL the ring is single-issuer with deferred task work: the
 * kernel posts completions only inside our io_uring_enter, never between
 * two of our calls (so a stream stopped in a callback sees no new data until
 * its cancel went in). It starts disabled because the thread that runs the
 * loop, which becomes its only issuer, may not be the one creating it.
 * Older kernels get a plain ring. */
static int ring_init(struct uring_be *be, const struct loop_options *opt)
{
    unsigned entries = opt->entries ? opt->entries : URING_ENTRIES;
    struct io_uring_params p;
    if (opt->sqpoll) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_SQPOLL;
        p.sq_thread_idle = URING_SQ_IDLE_MS;
        be->sqpoll = true;
        return io_uring_queue_init_params(entries, &be->ring, &p);
    }
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
    int rc = io_uring_queue_init_params(entries, &be->ring, &p);
    if (rc == 0) {
        be->disabled = true;
        return 0;
    }
    if (rc != -EINVAL)
        return rc;
    memset(&p, 0, sizeof p);
    return io_uring_queue_init_params(entries, &be->ring, &p);
}

static void uring_destroy(struct loop *l);

static int uring_init(struct loop *l, const struct loop_options *opt)
{
    struct uring_be *be = calloc(1, sizeof *be);
    if (be == NULL)
        return -ENOMEM;
    be->ring.ring_fd = -1;
    l->be = be;
    int rc = ring_init(be, opt);
    if (rc < 0) {
        be->ring.ring_fd = -1; /* nothing to tear down but be */
        goto failed;
    }
    /* Timed waits in the same call as the submission need EXT_ARG (5.11). */
    rc = -ENOSYS;
    if (!(be->ring.features & IORING_FEAT_EXT_ARG) || !probe_ok(&be->ring, &be->has_recvmsg))
        goto failed;
    rc = setup_buffers(be);
    if (rc < 0)
        goto failed;
    return 0;

failed:
    uring_destroy(l);
    l->be = NULL;
    return rc;
}

static void uring_destroy(struct loop *l)
{
    struct uring_be *be = be_of(l);
    /* Closing the ring cancels whatever is still in the kernel. */
    if (be->ring.ring_fd >= 0)
        io_uring_queue_exit(&be->ring);
    if (be->br != NULL)
        munmap(be->br, LOOP_URING_BUFS * sizeof(struct io_uring_buf));
    if (be->slab != NULL)
        munmap(be->slab, (size_t)LOOP_URING_BUFS * URING_BUF_STRIDE);
    /* Writes still in flight go with their requests: the ring is gone. */
    for (struct op_chunk *c = be->chunks; c != NULL; c = c->next)
        for (unsigned i = 0; i < URING_OPS_PER_CHUNK; i++) {
            free(c->ops[i].write);
            free(c->ops[i].rmsg);
        }
    while (be->free_rmsgs != NULL) {
        struct uring_rmsg *rm = be->free_rmsgs;
        be->free_rmsgs = rm->next;
        free(rm);
    }
    while (be->chunks != NULL) {
        struct op_chunk *c = be->chunks;
        be->chunks = c->next;
        free(c);
    }
    while (be->free_writes != NULL) {
        struct uring_write *wr = be->free_writes;
        be->free_writes = wr->next;
        free(wr);
    }
    free(be->backlog);
    free(be);
}

/* --- watches: one-shot polls, armed again after each callback ----------------- */

static unsigned to_poll(unsigned events)
{
    return (events & LOOP_READABLE ? POLLIN : 0) | (events & LOOP_WRITABLE ? POLLOUT : 0);
}

static unsigned from_poll(int revents)
{
    return (revents & POLLIN ? LOOP_READABLE : 0) | (revents & POLLOUT ? LOOP_WRITABLE : 0) |
           (revents & (POLLHUP | POLLRDHUP) ? LOOP_HUP : 0) | (revents & POLLERR ? LOOP_ERR : 0);
}

static int arm_poll(struct loop *l, struct loop_watch *w, struct uring_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(l, op);
    if (sqe == NULL)
        return -EIO;
    io_uring_prep_poll_add(sqe, w->fd, to_poll(w->events));
    op->armed = true;
    return 0;
}

static int uring_watch_start(struct loop *l, struct loop_watch *w)
{
    struct uring_op *op = op_new(be_of(l), OP_POLL, w);
    if (op == NULL)
        return -ENOMEM;
    w->op = op;
    int rc = arm_poll(l, w, op);
    if (rc < 0) {
        op_free(be_of(l), op);
        w->op = NULL;
    }
    return rc;
}

/* Orphan the request: cancelled if in the kernel, freed now if not. */
static void op_release(struct loop *l, struct uring_op *op)
{
    op->owner = NULL;
    if (op->armed)
        op_cancel(l, op);
    else
        op_free(be_of(l), op);
}

static void uring_watch_stop(struct loop *l, struct loop_watch *w)
{
    struct uring_be *be = be_of(l);
    if (be->current == w)
        be->current = NULL;
    if (w->op != NULL)
        op_release(l, w->op);
    w->op = NULL;
}

/* A new poll for the new events, then the old one is let go (its
 * completion, if already posted, is dropped). Without memory for the new
 * one, the old stays. */
static int uring_watch_modify(struct loop *l, struct loop_watch *w)
{
    struct uring_op *op = op_new(be_of(l), OP_POLL, w);
    if (op == NULL)
        return -ENOMEM;
    int rc = arm_poll(l, w, op);
    if (rc < 0) {
        op_free(be_of(l), op);
        return rc;
    }
    if (w->op != NULL)
        op_release(l, w->op);
    w->op = op;
    return 0;
}

static void on_poll(struct loop *l, struct uring_op *op, int res)
{
    struct uring_be *be = be_of(l);
    struct loop_watch *w = op->owner;
    be->current = w;
    w->cb(w, res < 0 ? LOOP_ERR : from_poll(res), l->now);
    /* Level-triggered: poll again, which reports at once if still ready. */
    if (be->current == w && w->op == op && arm_poll(l, w, op) < 0)
        w->cb(w, LOOP_ERR, l->now);
}

/* --- accepting: one multishot accept, armed again when it ends ------------------ */

static int arm_accept(struct loop *l, struct loop_acceptor *a, struct uring_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(l, op);
    if (sqe == NULL)
        return -EIO;
    io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    op->armed = op->multishot = true;
    return 0;
}

static int uring_accept_start(struct loop *l, struct loop_acceptor *a)
{
    struct uring_op *op = op_new(be_of(l), OP_ACCEPT, a);
    if (op == NULL)
        return -ENOMEM;
    a->op = op;
    int rc = arm_accept(l, a, op);
    if (rc < 0) {
        op_free(be_of(l), op);
        a->op = NULL;
    }
    return rc;
}

static void uring_accept_stop(struct loop *l, struct loop_acceptor *a)
{
    struct uring_be *be = be_of(l);
    if (be->current == a)
        be->current = NULL;
    if (a->op != NULL)
        op_release(l, a->op);
    a->op = NULL;
}

static void on_accept(struct loop *l, struct uring_op *op, int res)
{
    struct uring_be *be = be_of(l);
    struct loop_acceptor *a = op->owner;
    be->current = a;
    if (res != -ECANCELED)
        a->cb(a, res, NULL, 0, l->now);
    /* The multishot ended (an error, or the kernel's choice): start another
     * unless the callback stopped accepting. */
    if (be->current == a && a->op == op && !op->armed && arm_accept(l, a, op) < 0)
        a->cb(a, -EIO, NULL, 0, l->now);
}

/* --- streams ---------------------------------------------------------------------- */

/* Ask for input: a multishot recv when each delivery may fill a whole
 * buffer, else one recv of read_max bytes at a time. Either way the kernel
 * picks a buffer from the ring when data arrives. */
/* A stream with stamping on: a recvmsg instead, whose control data carries
 * the receive timestamp (multishot: io_uring_recvmsg_out and the control
 * data come first in the provided buffer, then the payload). */
static void prep_recvmsg(struct loop_stream *s, struct uring_op *op, struct io_uring_sqe *sqe)
{
    struct uring_rmsg *rm = op->rmsg;
    memset(&rm->ctl, 0, sizeof rm->ctl); /* a control area left empty parses as none */
    rm->iov = (struct iovec){ .iov_base = NULL, .iov_len = op->len };
    rm->msg = (struct msghdr){ .msg_controllen = sizeof rm->ctl.buf };
    if (op->multishot) {
        io_uring_prep_recvmsg_multishot(sqe, s->fd, &rm->msg, 0);
    } else {
        rm->msg.msg_iov = &rm->iov;
        rm->msg.msg_iovlen = 1;
        rm->msg.msg_control = rm->ctl.buf;
        io_uring_prep_recvmsg(sqe, s->fd, &rm->msg, 0);
    }
}

static int arm_recv(struct loop *l, struct loop_stream *s)
{
    struct io_uring_sqe *sqe;
    struct uring_op *op;
    int rc = op_and_sqe(l, OP_RECV, s, &op, &sqe);
    if (rc < 0)
        return rc;
    op->multishot = s->read_max >= LOOP_READ_SIZE;
    op->len = s->read_max;
    if ((s->flags & LOOP_STREAM_STAMP_RX) && (op->rmsg = rmsg_new(be_of(l))) != NULL)
        prep_recvmsg(s, op, sqe);
    else if (op->multishot)
        io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
    else
        io_uring_prep_recv(sqe, s->fd, NULL, (unsigned)s->read_max, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = URING_BUF_GROUP;
    op->armed = true;
    s->recv_op = op;
    return 0;
}

static int uring_stream_start(struct loop *l, struct loop_stream *s)
{
    (void)l;
    (void)s;
    return 0;
}

static int uring_stream_read(struct loop *l, struct loop_stream *s)
{
    struct uring_op *op = s->recv_op;
    if (op == NULL)
        return s->read_max > 0 ? arm_recv(l, s) : 0;
    /* A recv is in the kernel: stopping, a change between multishot and
     * single recvs, or a single recv of another length cancels it; its final
     * completion arms the right one. */
    bool multishot = s->read_max >= LOOP_READ_SIZE;
    if (s->read_max == 0 || op->multishot != multishot || (!multishot && op->len != s->read_max))
        op_cancel(l, op);
    return 0;
}

static ssize_t uring_stream_write(struct loop *l, struct loop_stream *s, const struct iovec *iov,
                                  int iovcnt, bool stamped)
{
    if (s->send_op != NULL)
        return -EBUSY;
    struct uring_op *op = op_new(be_of(l), OP_SEND, s);
    if (op == NULL)
        return -ENOMEM;
    /* One buffer needs no copy of the iovec: send takes address and length. */
    if ((iovcnt > 1 || stamped) && (op->write = write_new(be_of(l))) == NULL) {
        op_free(be_of(l), op);
        return -ENOMEM;
    }
    struct io_uring_sqe *sqe = get_sqe(l, op);
    if (sqe == NULL) {
        op_free(be_of(l), op);
        return -EIO;
    }
    if (op->write == NULL) {
        io_uring_prep_send(sqe, s->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        struct uring_write *wr = op->write;
        memcpy(wr->iov, iov, (size_t)iovcnt * sizeof *iov);
        wr->msg = (struct msghdr){ .msg_iov = wr->iov, .msg_iovlen = (size_t)iovcnt };
        if (stamped) {
            wr->msg.msg_control = wr->ctl.buf;
            wr->msg.msg_controllen = tstamp_tx_cmsg(wr->ctl.buf);
        }
        io_uring_prep_sendmsg(sqe, s->fd, &wr->msg, MSG_NOSIGNAL);
    }
    op->armed = true;
    s->send_op = op;
    return -EINPROGRESS;
}

static void stream_check_closed(struct loop *l, struct loop_stream *s)
{
    if ((s->flags & LOOP_STREAM_CLOSING) && s->recv_op == NULL && s->send_op == NULL &&
        s->hup_op == NULL && s->errq_op == NULL)
        loop_closed(l, s);
}

/* Watch the error queue: a one-shot poll, which completes at once when the
 * queue holds entries already, and is armed again after each drain. */
static int arm_errq(struct loop *l, struct loop_stream *s)
{
    struct io_uring_sqe *sqe;
    struct uring_op *op;
    int rc = op_and_sqe(l, OP_ERRQ, s, &op, &sqe);
    if (rc < 0)
        return rc;
    io_uring_prep_poll_add(sqe, s->fd, POLLERR);
    op->armed = true;
    s->errq_op = op;
    return 0;
}

/* Stamping turned on or off: watch the error queue or stop, and have the
 * recv in flight (if any) cancelled, so that the next one is armed as a
 * recvmsg or a recv again. */
static int uring_stream_stamp(struct loop *l, struct loop_stream *s)
{
    bool on = s->flags & LOOP_STREAM_STAMP;
    if (on && !be_of(l)->has_recvmsg)
        return -ENOSYS;
    struct uring_op *rop = s->recv_op;
    if (rop != NULL && (rop->rmsg != NULL) != on)
        op_cancel(l, rop);
    if (!on) {
        if (s->errq_op != NULL)
            op_cancel(l, s->errq_op);
        return 0;
    }
    return s->errq_op != NULL ? 0 : arm_errq(l, s);
}

/* Watch a stamped stream's error queue again (after a drain, or after a
 * failed arm: a later drain that finds timestamps tries once more, as epoll
 * does). A stream whose poll cannot be armed is marked ERRQ_FAILED. */
static void errq_rewatch(struct loop *l, struct loop_stream *s)
{
    if ((s->flags & (LOOP_STREAM_CLOSING | LOOP_STREAM_STAMP)) != LOOP_STREAM_STAMP ||
        s->errq_op != NULL)
        return;
    if (arm_errq(l, s) < 0)
        s->flags |= LOOP_STREAM_ERRQ_FAILED;
    else
        s->flags &= ~LOOP_STREAM_ERRQ_FAILED;
}

/* Whether the socket still reports POLLERR now that its error queue is
 * empty: then it has failed (sk_err is set), and its recv, send or hang-up
 * poll reports that. */
static bool socket_failed(int fd)
{
    struct pollfd p = { .fd = fd, .events = 0 };
    return poll(&p, 1, 0) > 0 && (p.revents & POLLERR);
}

/* The error queue has entries, or the socket failed (POLLERR, POLLHUP). A
 * drain that finds nothing is not yet a failure: the hang-up poll, woken by
 * the same timestamps and handled first in this batch of completions, may
 * have drained the queue already. Only a socket that still shows POLLERR
 * with an empty queue has failed: the failure is left to the stream's recv,
 * send or hang-up poll, and the queue is no longer watched (a poll armed
 * again would complete at once, forever). */
static void on_errq(struct loop *l, struct uring_op *op, int res)
{
    struct loop_stream *s = op->owner;
    s->errq_op = NULL;
    op_free(be_of(l), op);
    if (s->flags & LOOP_STREAM_CLOSING) {
        stream_check_closed(l, s);
        return;
    }
    if (!(s->flags & LOOP_STREAM_STAMP))
        return;
    if (res == -ECANCELED || loop_drain_errqueue(l, s) > 0 || !socket_failed(s->fd)) {
        errq_rewatch(l, s);
        return;
    }
    s->flags |= LOOP_STREAM_ERRQ_FAILED;
}

/* A one-shot poll for the peer's shutdown (POLLRDHUP); POLLHUP and
 * POLLERR are reported whether asked or not. */
static int uring_stream_hangup(struct loop *l, struct loop_stream *s)
{
    bool want = s->flags & LOOP_STREAM_WANT_HUP;
    if (!want) {
        if (s->hup_op != NULL)
            op_cancel(l, s->hup_op);
        return 0;
    }
    if (s->hup_op != NULL)
        return 0; /* already asked; a cancel in flight is followed by a new poll */
    struct io_uring_sqe *sqe;
    struct uring_op *op;
    int rc = op_and_sqe(l, OP_HUP, s, &op, &sqe);
    if (rc < 0)
        return rc;
    io_uring_prep_poll_add(sqe, s->fd, POLLRDHUP);
    op->armed = true;
    s->hup_op = op;
    return 0;
}

static void uring_stream_close(struct loop *l, struct loop_stream *s)
{
    if (s->errq_op != NULL)
        op_cancel(l, s->errq_op);
    if (s->recv_op != NULL)
        op_cancel(l, s->recv_op);
    if (s->send_op != NULL)
        op_cancel(l, s->send_op);
    if (s->hup_op != NULL)
        op_cancel(l, s->hup_op);
    stream_check_closed(l, s);
}

static void on_hup(struct loop *l, struct uring_op *op, int res)
{
    struct loop_stream *s = op->owner;
    s->hup_op = NULL;
    op_free(be_of(l), op);
    if (s->flags & LOOP_STREAM_CLOSING) {
        stream_check_closed(l, s);
    } else if (res == -ECANCELED) {
        if (s->flags & LOOP_STREAM_WANT_HUP)
            uring_stream_hangup(l, s); /* turned off and on again meanwhile */
    } else if (res > 0 && (s->flags & LOOP_STREAM_STAMP) &&
               (res & (POLLERR | POLLHUP | POLLRDHUP)) == POLLERR &&
               (loop_drain_errqueue(l, s) > 0 || !socket_failed(s->fd))) {
        /* Timestamps in the error queue, not a hang-up (the error-queue
         * poll, woken by the same ones, may have drained them first): watch
         * on. A queue
         * taken for failed (or whose poll could not be armed) is watched
         * again: it works. */
        if (!(s->flags & LOOP_STREAM_CLOSING) && (s->flags & LOOP_STREAM_WANT_HUP))
            uring_stream_hangup(l, s);
        errq_rewatch(l, s);
    } else if (s->flags & LOOP_STREAM_WANT_HUP) {
        s->flags &= ~LOOP_STREAM_WANT_HUP;
        s->on_hangup(s, res < 0 ? LOOP_ERR : from_poll(res) & (LOOP_HUP | LOOP_ERR), l->now);
    }
}

/* Hand n bytes at data to on_read in pieces of at most read_max. A recv
 * completes with what it was armed for: more than the caller now takes when
 * read_max was lowered after that (its cancel came too late, or a multishot's
 * next completion was already posted). The bytes in front of each piece were
 * delivered before it and are no longer the caller's: they serve as its
 * headroom. Reading stopped meanwhile: the rest comes in one piece (see
 * loop.h on what may follow loop_stream_read(s, 0)). */
static void deliver(struct loop *l, struct loop_stream *s, uint8_t *data, size_t n)
{
    size_t piece = s->read_max > 0 ? s->read_max : n;
    while (n > 0 && !(s->flags & LOOP_STREAM_CLOSING)) {
        if (s->read_max > 0)
            piece = s->read_max;
        size_t k = n < piece ? n : piece;
        s->on_read(s, data, (ssize_t)k, l->now);
        data += k;
        n -= k;
    }
}

/* A recvmsg's delivery: res bytes in buf. A single recvmsg put the payload
 * at buf and the control data in op->rmsg; a multishot one put its header
 * and the control data at buf, the payload after them (liburing's
 * io_uring_recvmsg_* helpers find each part). The receive timestamp is
 * s->rx_ns while on_read runs. An empty payload is the peer's EOF. */
static void deliver_stamped(struct loop *l, struct loop_stream *s, struct uring_op *op,
                            uint8_t *buf, int res)
{
    struct uring_rmsg *rm = op->rmsg;
    struct msghdr ctl = { .msg_control = rm->ctl.buf, .msg_controllen = sizeof rm->ctl.buf };
    uint8_t *data = buf;
    size_t n = (size_t)res;
    if (op->multishot) {
        struct io_uring_recvmsg_out *out = io_uring_recvmsg_validate(buf, res, &rm->msg);
        if (out == NULL) {
            n = 0; /* a truncated header: cannot happen with a whole buffer */
        } else {
            data = io_uring_recvmsg_payload(out, &rm->msg);
            n = io_uring_recvmsg_payload_length(out, res, &rm->msg);
            ctl.msg_control = (uint8_t *)(out + 1) + rm->msg.msg_namelen;
            ctl.msg_controllen = out->controllen;
        }
        if (n == 0) {
            s->read_max = 0; /* end of input: reading stops */
            s->on_read(s, NULL, 0, l->now);
            return;
        }
    }
    s->rx_ns = tstamp_rx_ns(&ctl);
    deliver(l, s, data, n);
    s->rx_ns = 0; /* s stays valid until on_close */
}

static void on_recv(struct loop *l, struct uring_op *op, int res, unsigned cflags)
{
    struct uring_be *be = be_of(l);
    struct loop_stream *s = op->owner;
    bool open = !(s->flags & LOOP_STREAM_CLOSING);
    if (res == -ENOBUFS) {
        counter_add(&l->enobufs, 1); /* every buffer is waiting for dispatch */
    } else if (res == -ECANCELED) {
        /* stopped or switched by us: nothing to tell */
    } else if (res > 0 && (cflags & IORING_CQE_F_BUFFER) && op->rmsg != NULL) {
        unsigned bid = cflags >> IORING_CQE_BUFFER_SHIFT;
        if (open)
            deliver_stamped(l, s, op, be->slab + (size_t)bid * URING_BUF_STRIDE + LOOP_HEADROOM, res);
        buf_return(be, bid);
    } else if (res > 0 && (cflags & IORING_CQE_F_BUFFER)) {
        unsigned bid = cflags >> IORING_CQE_BUFFER_SHIFT;
        if (open)
            deliver(l, s, be->slab + (size_t)bid * URING_BUF_STRIDE + LOOP_HEADROOM, (size_t)res);
        buf_return(be, bid);
    } else if (open) {
        s->read_max = 0; /* end of input, or an error: reading stops */
        s->on_read(s, NULL, res > 0 ? -EIO : res, l->now);
    }
    if (op->armed)
        return; /* the multishot goes on */
    s->recv_op = NULL;
    op_free(be, op);
    if ((s->flags & LOOP_STREAM_CLOSING) || s->read_max == 0 || arm_recv(l, s) == 0) {
        stream_check_closed(l, s);
        return;
    }
    s->read_max = 0;
    s->on_read(s, NULL, -ENOMEM, l->now);
}

static void on_send(struct loop *l, struct uring_op *op, int res)
{
    struct loop_stream *s = op->owner;
    s->send_op = NULL;
    op_free(be_of(l), op);
    if (s->flags & LOOP_STREAM_CLOSING)
        stream_check_closed(l, s);
    else
        s->on_write(s, res, l->now);
}

/* --- waiting and dispatching ------------------------------------------------------- */

/* One completion. The request stays armed while the kernel says more will
 * come (IORING_CQE_F_MORE). */
static int dispatch(struct loop *l, struct uring_op *op, int res, unsigned cflags)
{
    if (!(cflags & IORING_CQE_F_MORE))
        op->armed = false;
    if (op->owner == NULL) {
        /* Orphaned: a connection accepted after the acceptor stopped has
         * nobody to go to. */
        if (op->kind == OP_ACCEPT && res >= 0)
            close(res);
        if (!op->armed)
            op_free(be_of(l), op);
        return 0;
    }
    switch (op->kind) {
    case OP_POLL:
        on_poll(l, op, res);
        break;
    case OP_ACCEPT:
        on_accept(l, op, res);
        break;
    case OP_RECV:
        on_recv(l, op, res, cflags);
        break;
    case OP_SEND:
        on_send(l, op, res);
        break;
    case OP_HUP:
        on_hup(l, op, res);
        break;
    case OP_ERRQ:
        on_errq(l, op, res);
        break;
    }
    return 1;
}

/* The oldest unseen completion, or NULL. Unlike io_uring_peek_cqe, which
 * may enter the kernel when the ring is empty, this only reads memory. */
static struct io_uring_cqe *next_cqe(struct io_uring *ring)
{
    unsigned head = *ring->cq.khead;
    if (head == io_uring_smp_load_acquire(ring->cq.ktail))
        return NULL;
    return &ring->cq.cqes[head & ring->cq.ring_mask];
}

static int uring_poll(struct loop *l, uint64_t timeout_ns)
{
    struct uring_be *be = be_of(l);
    bool wait = io_uring_cq_ready(&be->ring) == 0 && timeout_ns > 0;
    int rc = enter(l, wait, timeout_ns);
    l->now = net_now_ns();
    if (rc < 0)
        return rc;
    int dispatched = 0;
    for (int i = 0; i < LOOP_EVENTS_PER_WAKEUP; i++) {
        struct io_uring_cqe *cqe = next_cqe(&be->ring);
        if (cqe == NULL)
            break;
        void *user_data = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        unsigned cflags = cqe->flags;
        /* Seen before dispatch: a callback may queue and submit more. */
        io_uring_cqe_seen(&be->ring, cqe);
        if (user_data != NULL) /* NULL: a cancel that found nothing */
            dispatched += dispatch(l, user_data, res, cflags);
    }
    be->current = NULL;
    return dispatched;
}

const struct loop_ops loop_uring_ops = {
    .name = "uring",
    .writes_later = true,
    .init = uring_init,
    .destroy = uring_destroy,
    .poll = uring_poll,
    .watch_start = uring_watch_start,
    .watch_stop = uring_watch_stop,
    .watch_modify = uring_watch_modify,
    .accept_start = uring_accept_start,
    .accept_stop = uring_accept_stop,
    .stream_start = uring_stream_start,
    .stream_read = uring_stream_read,
    .stream_write = uring_stream_write,
    .stream_stamp = uring_stream_stamp,
    .stream_hangup = uring_stream_hangup,
    .stream_close = uring_stream_close,
};
