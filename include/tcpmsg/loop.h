/* loop: a single-threaded event loop with two backends, epoll (readiness:
 * the loop makes the read, write and accept calls) and io_uring (completion:
 * the kernel does the I/O and the loop dispatches what completed). Timers, a
 * per-wakeup hook and exact per-kind system call counters are common to both.
 * It knows nothing of frames, connections or HTTP: it moves bytes and time.
 *
 * Everything except loop_syscalls() and loop_enobufs() is called from one
 * thread at a time: the loop's, or before it runs, the one setting it up
 * (pthread_create orders the two). Once the loop's thread has run it
 * (loop_run, loop_run_once), no other thread may run it or start, stop or
 * write anything on it, even after that thread ended: io_uring's ring then
 * takes submissions from that thread only (elsewhere loop_run_once fails
 * with -EEXIST). loop_free may come from another thread once the loop's
 * thread is done with it (pthread_join orders the two).
 * The caller owns every struct passed in (watch, timer, acceptor, stream):
 * it stays valid while started; see each kind for when it may be freed.
 * Descriptors given to the loop should not be closed behind its back.
 * Writes to a closed peer return EPIPE: the program must ignore SIGPIPE.
 */
#ifndef TCPMSG_LOOP_H
#define TCPMSG_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "tcpmsg/counter.h"

struct loop;
struct tstamp_report;

enum loop_backend {
    LOOP_AUTO,  /* io_uring when the kernel offers all it needs, else epoll */
    LOOP_EPOLL, /* readiness: epoll_wait, then read/writev/accept4 */
    LOOP_URING, /* completion: multishot accept and recv, provided buffers, send */
};

struct loop_options {
    enum loop_backend backend;
    bool sqpoll;      /* io_uring: a kernel thread polls the submission queue */
    unsigned entries; /* io_uring submission queue size; 0: 256 */
};

/* The system calls the loop makes, by kind, and its wakeups (iterations that
 * dispatched at least one event or timer). Those liburing makes for the loop
 * count too: the loop calls io_uring_enter itself to know each one. */
#define LOOP_SYSCALLS(X)                 \
    X(READ, "read")                      \
    X(WRITE, "write")                    \
    X(WRITEV, "writev")                  \
    X(ACCEPT4, "accept4")                \
    X(EPOLL_WAIT, "epoll_wait")          \
    X(EPOLL_CTL, "epoll_ctl")            \
    X(IO_URING_ENTER, "io_uring_enter")  \
    X(RECVMSG, "recvmsg")                \
    X(RECVMMSG, "recvmmsg")              \
    X(SENDMSG, "sendmsg")                \
    X(TIMERFD_SETTIME, "timerfd_settime") \
    X(WAKEUPS, "wakeups")

enum loop_syscall {
#define LOOP_SYS_ENUM(name, text) LOOP_SYS_##name,
    LOOP_SYSCALLS(LOOP_SYS_ENUM)
#undef LOOP_SYS_ENUM
    LOOP_SYS_COUNT
};

const char *loop_syscall_name(enum loop_syscall k); /* "read", ... */
/* Any thread: a recent value of the counter (single writer, relaxed). */
uint64_t loop_syscalls(const struct loop *l, enum loop_syscall k);
/* The loop's thread: all the counters at once, indexed by enum
 * loop_syscall, for a caller that reads every kind after each wakeup. */
const counter_t *loop_syscall_counters(const struct loop *l);
/* io_uring: times a multishot recv ended because no provided buffer was free
 * (it is re-armed). Any thread. */
uint64_t loop_enobufs(const struct loop *l);

/* Bytes in front of every delivered read that the caller may write into:
 * room to copy a partial message in front of new input and parse in place. */
#define LOOP_HEADROOM 4096
/* The most one delivery holds (epoll: its read buffer; io_uring: the size of
 * each provided buffer). */
#define LOOP_READ_SIZE 65536
/* io_uring: provided buffers per loop. After reading is stopped, at most this
 * many deliveries can still arrive (each holds a buffer until delivered).
 * Each buffer commits a page of memory at its first delivery, so this many
 * pages per loop show in the process's memory even when every connection is
 * idle, and all of them (2 MiB per loop) under a flood of large messages:
 * 32 keep that small; a wakeup with more deliveries waits for the next. */
#define LOOP_URING_BUFS 32
/* Most buffers one write can take. */
#define LOOP_IOV_MAX 64

/* Create a loop. Returns 0 and *out (released with loop_free), or -errno:
 * -ENOSYS (io_uring asked for but not built in, or the kernel lacks a needed
 * feature), -EPERM (io_uring disabled by the system), -EINVAL, -ENOMEM, or
 * what io_uring_setup refused (sqpoll). LOOP_AUTO never fails for a missing
 * io_uring: it falls back to epoll and sets *why (may be NULL) to a static
 * string saying why, NULL when nothing fell back. */
int loop_new(struct loop **out, const struct loop_options *opt, const char **why);
/* Release the loop (NULL is a no-op). No callback is called: the
 * descriptors of streams still open, or closed with on_close still due, are
 * closed (the loop owns them) without on_close, and the caller may then free
 * those structs. Watched and listening descriptors are the caller's: left
 * open. */
void loop_free(struct loop *l);
const char *loop_backend_name(const struct loop *l); /* "epoll" | "uring" */
/* The backend a command line names: "epoll", "uring" or "auto". 0, or
 * -EINVAL for another name. */
int loop_backend_parse(const char *name, enum loop_backend *out);
/* true when loop_stream_write completes later (io_uring): the bytes must
 * stay where they are until on_write, so a buffer valid only during a
 * callback (a delivery) cannot be written from directly. */
bool loop_writes_later(const struct loop *l);

/* Run wakeups until loop_stop (also one made before the call); the stop is
 * then cleared. 0, or -errno when waiting failed. */
int loop_run(struct loop *l);
/* One wakeup: submit what is queued and wait for events at most timeout_ms
 * (-1: until the next timer or event), dispatch them (bounded: at most 256
 * events), fire due timers, call pending on_close, then the hook. 0 or -errno. */
int loop_run_once(struct loop *l, int timeout_ms);
/* Make loop_run return after the current wakeup. From the loop's thread. */
void loop_stop(struct loop *l);
/* Called after each wakeup's dispatch, with ctx and the wakeup's time. */
void loop_set_hook(struct loop *l, void (*hook)(void *ctx, uint64_t now_ns), void *ctx);
/* Monotonic time (net_now_ns) taken when this wakeup's wait returned. */
uint64_t loop_now(const struct loop *l);

/* --- readiness watches -------------------------------------------------- */

#define LOOP_READABLE 0x1u
#define LOOP_WRITABLE 0x2u
#define LOOP_HUP 0x4u /* reported whether asked or not */
#define LOOP_ERR 0x8u /* reported whether asked or not */

/* Level-triggered: cb runs at each wakeup while the descriptor is ready.
 * epoll: one registration per descriptor (a descriptor cannot be both a
 * watch and a stream). io_uring: a one-shot poll, armed again after each
 * callback, so that readiness is checked again (multishot poll only reports
 * new wakeups: edge-triggered). The struct may be freed once stopped. */
struct loop_watch {
    int fd;               /* private */
    unsigned events;      /* private */
    void *op;             /* private: the io_uring request */
    void (*cb)(struct loop_watch *w, unsigned events, uint64_t now);
    void *data;
};

/* 0, -EINVAL (no events) or -errno (epoll_ctl); on failure the watch is
 * stopped. */
int loop_watch_start(struct loop *l, struct loop_watch *w, int fd, unsigned events);
/* Wait for other events (epoll: one EPOLL_CTL_MOD). 0, -EINVAL (no events,
 * or not started) or -errno; on failure the watch waits as before. */
int loop_watch_modify(struct loop *l, struct loop_watch *w, unsigned events);
void loop_watch_stop(struct loop *l, struct loop_watch *w); /* stopped twice: no-op */

/* --- timers ----------------------------------------------------------------- */

/* A binary min-heap by deadline: start and stop are O(log n); due timers fire
 * in deadline order (equal deadlines: in the order started). Any timer may be
 * stopped or restarted from any callback; one started during a wakeup's timer
 * run fires at the next wakeup at the earliest. The struct may be freed once
 * stopped or fired. */
struct loop_timer {
    uint64_t deadline;    /* private */
    uint64_t seq;         /* private: start order, breaks deadline ties */
    unsigned index;       /* private: position in the heap + 1, 0 when inactive */
    void (*cb)(struct loop_timer *t, uint64_t now);
    void *data;
};

/* Start (or move) t to fire at deadline_ns (net_now_ns clock). Returns 0 or
 * -ENOMEM (the heap could not grow; t is not started). */
int loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t deadline_ns);
void loop_timer_stop(struct loop *l, struct loop_timer *t); /* inactive: no-op */
bool loop_timer_active(const struct loop_timer *t);

/* --- accepting -------------------------------------------------------------- */

/* cb gets each new connection (non-blocking, close-on-exec; the caller owns
 * it) or -errno (EMFILE, ENFILE, ENOMEM...: the caller decides, e.g. calls
 * loop_accept_stop and starts again later). peer is set when the backend has
 * it (epoll), else NULL and 0: use getpeername. At most 64 accepts per
 * wakeup (io_uring: bounded by the wakeup's 256 events). io_uring reads
 * RLIMIT_NOFILE when the accept is queued: a limit changed later applies
 * from the next loop_accept_start. The struct may be freed once stopped;
 * io_uring: a connection the kernel accepts after the stop is closed. */
struct loop_acceptor {
    int fd;               /* private */
    void *op;             /* private */
    void (*cb)(struct loop_acceptor *a, int fd, const struct sockaddr *peer, socklen_t len,
               uint64_t now);
    void *data;
};

/* Accept on listen_fd, which is made non-blocking (O_NONBLOCK is set on its
 * open file description and stays set). 0, -EINVAL (listen_fd < 0) or
 * -errno (fcntl, epoll_ctl, or out of memory). */
int loop_accept_start(struct loop *l, struct loop_acceptor *a, int listen_fd);
void loop_accept_stop(struct loop *l, struct loop_acceptor *a);

/* --- streams ------------------------------------------------------------------ */

/* A connected socket in completion style (libuv's uv_read_start/uv_write).
 * It holds no write state: io_uring keeps a write's iovec array in a slot of
 * the loop's only while that write is in flight, so an idle stream costs a
 * few dozen bytes, not the 1 KiB of LOOP_IOV_MAX iovecs.
 *
 * on_read(s, data, n, now): n > 0 bytes at data, valid during the call only,
 * with LOOP_HEADROOM writable bytes in front of data (and the n bytes
 * themselves writable). n == 0: the peer shut down its side; n < 0: -errno.
 * After n <= 0 reading is stopped. None follow loop_stream_close. Some can
 * follow loop_stream_read(s, 0) on io_uring: data the kernel received before
 * it saw the stop, which goes in with the next wakeup's submission. Each such
 * delivery holds one provided buffer, so there are at most LOOP_URING_BUFS of
 * them (the ring is single-issuer with deferred task work there: the kernel
 * completes nothing between two of the loop's waits). On a kernel without
 * deferred task work, or with sqpoll, completions can also be posted while
 * the loop dispatches: at most LOOP_URING_BUFS plus one wakeup's 256. A max
 * below LOOP_READ_SIZE bounds that: each delivery is then at most the max in
 * force, and at most one follows a stop (one recv at a time, not a multishot).
 *
 * on_write(s, n, now): epoll: n == 0, the socket has room again after a
 * partial write: write the rest. io_uring: the write finished, n bytes taken
 * (possibly fewer than asked: write the rest) or -errno.
 *
 * on_hangup(s, events, now): asked for with loop_stream_watch_hangup: the
 * peer shut down its side (LOOP_HUP) or the connection failed (LOOP_ERR),
 * whether reading or not (a server that stopped reading a client is still
 * told it left). Reported once, then the watch is off.
 *
 * on_close(s): the last callback. The loop has closed the descriptor and
 * holds no reference: s may be freed.
 *
 * on_errqueue(s, r, now): stage timestamps (loop_stream_stamp): one
 * transmit timestamp the loop read from the socket's error queue. Only for
 * a stream with stamping on; may be NULL otherwise. */
struct loop_stream {
    int fd;                        /* private */
    unsigned flags;                /* private */
    struct loop_stream *prev_open, *next_open; /* private: the loop's until on_close */
    size_t read_max;               /* private */
    void *recv_op, *send_op, *hup_op; /* private: io_uring requests in flight */
    struct loop_stream *next_closed; /* private */
    uint64_t rx_ns;                /* private: the delivery's receive timestamp, 0: none */
    void *errq_op;                 /* private: io_uring's poll for the error queue */
    void (*on_read)(struct loop_stream *s, void *data, ssize_t n, uint64_t now);
    void (*on_write)(struct loop_stream *s, ssize_t n, uint64_t now);
    void (*on_hangup)(struct loop_stream *s, unsigned events, uint64_t now);
    void (*on_close)(struct loop_stream *s);
    void (*on_errqueue)(struct loop_stream *s, const struct tstamp_report *r, uint64_t now);
    void *data;
};

/* Adopt a connected non-blocking socket (set the callbacks first); reading
 * is off until loop_stream_read. 0 or -errno. The loop now owns fd. */
int loop_stream_start(struct loop *l, struct loop_stream *s, int fd);
/* Deliver input in pieces of at most max bytes (max 0: stop reading), from
 * the next delivery on, also when called from on_read.
 * 0 or -errno (-EPIPE: closing). */
int loop_stream_read(struct loop *l, struct loop_stream *s, size_t max);
/* At most one write at a time. epoll: writes now, returns the bytes taken
 * (>= 0); when fewer than asked, on_write(s, 0) follows when there is room.
 * io_uring: queues the write and returns -EINPROGRESS; the iov array is
 * copied, the memory it points to must stay valid until on_write. Errors:
 * -EBUSY (a write in flight), -EINVAL (iovcnt outside 1..LOOP_IOV_MAX),
 * -EPIPE (closing), -errno of the write (epoll: or of waiting for room; when
 * that fails after the write took bytes, those are returned and the error
 * comes with the next call). */
ssize_t loop_stream_write(struct loop *l, struct loop_stream *s, const struct iovec *iov,
                          int iovcnt);
/* on: call on_hangup once when the peer shuts down its side or the
 * connection fails; off: not. 0 or -errno (-EPIPE: closing). */
int loop_stream_watch_hangup(struct loop *l, struct loop_stream *s, bool on);
/* --- stage timestamps (SO_TIMESTAMPING, tcpmsg/tstamp.h) ----------------------
 *
 * A stream with stamping on reads with recvmsg (epoll) or IORING_OP_RECVMSG
 * (io_uring) so that each delivery carries the kernel's receive timestamp,
 * and watches its error queue, where the kernel leaves the transmit
 * timestamps that loop_stream_write_stamped asked for. The loop drains that
 * queue itself (recvmmsg with MSG_ERRQUEUE: one call reads what a sample
 * left there, usually) and hands each timestamp to on_errqueue:
 * - epoll: the queue makes epoll report EPOLLERR (level-triggered), so it
 *   is drained whenever that is reported, in the same dispatch as the
 *   stream's input, and at the end of a dispatch of the stream that wrote a
 *   stamped reply (on loopback the qdisc and device stamps are there as the
 *   write returns: no wakeup of their own);
 * - io_uring: a one-shot poll for POLLERR, armed again after each drain.
 * Entries in the queue and a failed connection both raise POLLERR: when a
 * drain finds no timestamp the error is the connection's, and it reaches
 * on_read, on_write or on_hangup as it does without stamping. A stream with
 * stamping off pays nothing for any of this. */

/* on: turn SO_TIMESTAMPING reporting on for the socket (tstamp_enable:
 * before anything is written, so the byte numbers count from its first
 * byte) and read and watch as said above; off: turn it off again. 0, -EPIPE
 * (closing), -ENOSYS (io_uring without IORING_OP_RECVMSG) or setsockopt's
 * -errno. */
int loop_stream_stamp(struct loop *l, struct loop_stream *s, bool on);
/* Whether s has stamping on. */
bool loop_stream_stamped(const struct loop_stream *s);
/* With stamping on, whether reads ask for the receive timestamp (on when
 * stamping is turned on). A caller that needs it only now and then (one
 * message in N) turns it off in between: epoll then reads with read, and
 * io_uring arms a plain recv, which holds no msghdr while it waits. From the
 * next read on; io_uring: from the next recv armed (a multishot recv keeps
 * its kind until it ends, a single one is armed again after each delivery).
 * No system call. */
void loop_stream_stamp_reads(struct loop_stream *s, bool on);
/* During on_read: the kernel's receive timestamp (CLOCK_REALTIME ns, see
 * tstamp.h) of the delivery, which is that of the last segment it took bytes
 * from. 0 when there is none (stamping off, the kernel had not stamped the
 * segment, or outside on_read). */
uint64_t loop_stream_rx_ns(const struct loop_stream *s);
/* loop_stream_write, asking the kernel for the transmit timestamps (SCHED,
 * SND, ACK) of the last byte this write hands over: epoll makes it one
 * sendmsg, io_uring one IORING_OP_SENDMSG. Errors as loop_stream_write,
 * and -EINVAL when stamping is off. */
ssize_t loop_stream_write_stamped(struct loop *l, struct loop_stream *s, const struct iovec *iov,
                                  int iovcnt);

/* Stop everything and close: no callback follows but on_close, which comes
 * at the end of this wakeup (io_uring: once the kernel has let go of every
 * request of the stream, so the write's memory stays in use until then).
 * Closing twice is a no-op. */
void loop_stream_close(struct loop *l, struct loop_stream *s);

#endif
