/* probe_reload: tcpmsg probe --targets FILE. Reads the file (bounded),
 * parses it (probe_targets.c), and changes the running set of targets to
 * match: new targets get a thread, removed ones are stopped, the others go
 * on untouched so that their counters continue. And it watches the file,
 * so that a change is loaded without a signal. Main thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/probe.h"
#include "tcpmsg/net.h"

/* The whole file, NUL-terminated, into *text (malloc'd): 0 or a negative
 * errno with the reason in err. Bounded by PROBE_FILE_MAX_BYTES whatever
 * stat says, since a file may grow while it is read. */
static int read_file(const char *path, char **text, size_t *len, char *err, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        snprintf(err, cap, "cannot open: %s", strerror(e));
        return -e;
    }
    char *buf = malloc(PROBE_FILE_MAX_BYTES + 1);
    size_t n = 0;
    ssize_t r = 0;
    while (buf != NULL && n <= PROBE_FILE_MAX_BYTES &&
           (r = read(fd, buf + n, PROBE_FILE_MAX_BYTES + 1 - n)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        n += (size_t)r;
    }
    int e = buf == NULL ? ENOMEM : r < 0 ? errno : 0;
    close(fd);
    if (e == 0 && n > PROBE_FILE_MAX_BYTES) {
        snprintf(err, cap, "larger than %d bytes", PROBE_FILE_MAX_BYTES);
        e = EFBIG;
    } else if (e != 0) {
        snprintf(err, cap, "cannot read: %s", strerror(e));
    }
    if (e != 0) {
        free(buf);
        return -e;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

/* The specs of the file, checked against the command line's targets. */
static int load_specs(struct probe *p, struct probe_spec **specs, size_t *n, char *err, size_t cap)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(p->reloads.file, &text, &len, err, cap);
    if (rc < 0)
        return rc;
    rc = probe_targets_parse(text, len, PROBE_MAX_TARGETS - p->ncommand_line, specs, n, err, cap);
    free(text);
    if (rc == -E2BIG)
        snprintf(err + strlen(err), cap - strlen(err), " (at most %d in all, %zu of them on the "
                 "command line)", PROBE_MAX_TARGETS, p->ncommand_line);
    for (size_t i = 0; rc == 0 && i < *n; i++)
        for (size_t k = 0; k < p->ncommand_line; k++)
            if (strcmp((*specs)[i].name, p->targets[k]->spec.name) == 0) {
                snprintf(err, cap, "'%s' is also given on the command line", (*specs)[i].name);
                rc = -EINVAL;
            }
    if (rc < 0) {
        free(*specs);
        *specs = NULL;
    }
    return rc;
}

static bool listed(const struct probe_spec *specs, size_t n, const struct probe_spec *s)
{
    for (size_t i = 0; i < n; i++)
        if (probe_spec_equal(&specs[i], s))
            return true;
    return false;
}

/* Make the file's part of p->targets what specs lists; counts in *added,
 * *removed. The new targets are made and started before anything changes,
 * so that a failure (memory, threads) leaves the set as it was. */
static int apply(struct probe *p, const struct probe_spec *specs, size_t n, size_t *added,
                 size_t *removed, char *err, size_t cap)
{
    size_t going = 0;
    for (size_t k = p->ncommand_line; k < p->ntargets; k++)
        going += !listed(specs, n, &p->targets[k]->spec);
    /* Targets removed by an earlier reload may still be ending: a connect
     * or a reply is bounded by --timeout, but a name resolution
     * (getaddrinfo) only by the resolver's own timeouts. Joining them here
     * could hold the main thread that long, away from the signals; without
     * room for these, the reload is refused and tried again a second later
     * (supervise). */
    if (p->nretiring + going > PROBE_MAX_TARGETS)
        probe_reap_retired(p);
    if (p->nretiring + going > PROBE_MAX_TARGETS) {
        snprintf(err, cap, "%zu targets removed before are still ending (resolving their "
                 "names); tried again in a second", p->nretiring);
        p->reload_retry = true;
        return -EBUSY;
    }
    struct probe_target *fresh[PROBE_MAX_TARGETS];
    size_t nfresh = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool running = false;
        for (size_t k = p->ncommand_line; k < p->ntargets && !running; k++)
            running = probe_spec_equal(&p->targets[k]->spec, &specs[i]);
        if (running)
            continue;
        struct probe_target *t = probe_target_new(p->cfg, &specs[i], p->next_seed++, p->wake_fd);
        int e = t == NULL ? ENOMEM : probe_target_start(t);
        if (e != 0) {
            snprintf(err, cap, "cannot start probing '%s': %s", specs[i].name, strerror(e));
            probe_target_free(t);
            rc = -e;
            break;
        }
        t->from_file = true;
        fresh[nfresh++] = t;
    }
    if (rc < 0) { /* undo: stop and join what was started (still in its first sleep) */
        for (size_t i = 0; i < nfresh; i++) {
            atomic_store(&fresh[i]->stop, true);
            pthread_join(fresh[i]->thread, NULL);
            probe_target_free(fresh[i]);
        }
        return rc;
    }
    pthread_mutex_lock(&p->lock);
    size_t kept = p->ncommand_line;
    for (size_t k = p->ncommand_line; k < p->ntargets; k++) {
        struct probe_target *t = p->targets[k];
        if (listed(specs, n, &t->spec)) {
            p->targets[kept++] = t;
        } else { /* its series disappear with it from this scrape on */
            atomic_store(&t->stop, true);
            p->retiring[p->nretiring++] = t;
        }
    }
    *removed = p->ntargets - kept;
    p->ntargets = kept;
    for (size_t i = 0; i < nfresh; i++)
        p->targets[p->ntargets++] = fresh[i];
    *added = nfresh;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int probe_reload(struct probe *p, const char *why)
{
    char err[sizeof p->reloads.last_error];
    struct probe_spec *specs = NULL;
    size_t n = 0, added = 0, removed = 0;
    err[0] = '\0';
    p->reload_retry = false; /* set again by apply while there is no room */
    int rc = load_specs(p, &specs, &n, err, sizeof err);
    if (rc == 0)
        rc = apply(p, specs, n, &added, &removed, err, sizeof err);
    free(specs);
    pthread_mutex_lock(&p->lock);
    struct probe_reloads *r = &p->reloads;
    r->last_ok = rc == 0;
    if (rc == 0) {
        r->success++;
        r->last_success_time = net_wall_s();
        r->last_error[0] = '\0';
    } else {
        r->failure++;
        snprintf(r->last_error, sizeof r->last_error, "%s", err);
    }
    size_t total = p->ntargets;
    pthread_mutex_unlock(&p->lock);
    if (rc == 0)
        fprintf(stderr, "tcpmsg probe: %s (%s): targets %zu, added %zu, removed %zu\n",
                r->file, why, total, added, removed);
    else if (strcmp(why, "start") == 0)
        fprintf(stderr, "tcpmsg: --targets %s: %s\n", r->file, err);
    else
        fprintf(stderr, "tcpmsg probe: %s (%s): %s; kept the targets probed before (%zu)\n",
                r->file, why, err, total);
    return rc < 0 ? -EINVAL : 0;
}

/* --- watching the file ----------------------------------------------------- */

static bool file_sig(const char *path, uint64_t sig[5])
{
    struct stat st;
    if (stat(path, &st) < 0)
        return false;
    sig[0] = (uint64_t)st.st_dev;
    sig[1] = (uint64_t)st.st_ino;
    sig[2] = (uint64_t)st.st_size;
    sig[3] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
    sig[4] = (uint64_t)st.st_ctim.tv_sec * 1000000000u + (uint64_t)st.st_ctim.tv_nsec;
    return true;
}

void probe_watch_open(struct probe_watch *w, const char *path)
{
    memset(w, 0, sizeof *w);
    w->path = path;
    const char *slash = strrchr(path, '/');
    w->base = slash != NULL ? slash + 1 : path;
    if (!file_sig(path, w->sig))
        memset(w->sig, 0, sizeof w->sig);
    char dir[PATH_MAX];
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    /* The directory, not the file: a rename onto the file's name (how most
     * editors save) replaces the inode a watch of the file would hold. Not
     * IN_CREATE or IN_MODIFY: a file just created or half written would
     * load as a short list; IN_CLOSE_WRITE comes when the writer is done. */
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0 || inotify_add_watch(w->fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
        /* EMFILE (fs.inotify.max_user_instances), ENOSPC (max_user_watches). */
        fprintf(stderr, "tcpmsg probe: cannot watch %s (%s): looking at %s once a second\n", dir,
                strerror(errno), path);
        if (w->fd >= 0)
            close(w->fd);
        w->fd = -1;
    }
}

void probe_watch_close(struct probe_watch *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

/* Read the pending inotify events: true if one is about the file. At most
 * WATCH_READS_PER_WAKEUP reads: a process that changes files in the
 * directory without pause must not keep the main thread here, away from
 * the signals and the ended threads; what is left keeps the descriptor
 * readable, so poll wakes again at once. */
#define WATCH_READS_PER_WAKEUP 4
static bool drain_events(struct probe_watch *w)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool mine = false;
    ssize_t n;
    for (int reads = 0; reads < WATCH_READS_PER_WAKEUP &&
                        (n = read(w->fd, buf, sizeof buf)) > 0; reads++) {
        for (char *q = buf; q < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)q;
            if (ev->len > 0 && strcmp(ev->name, w->base) == 0)
                mine = true;
            if (ev->mask & IN_Q_OVERFLOW)
                mine = true; /* events were lost: read the file to be sure */
            q += sizeof *ev + ev->len;
        }
    }
    return mine;
}

bool probe_watch_changed(struct probe_watch *w, bool events, uint64_t now_ns)
{
    bool mine = events && w->fd >= 0 && drain_events(w);
    uint64_t now[5];
    if (!file_sig(w->path, now))
        return false; /* gone: its return is a change; a reload now would only fail */
    if (!mine && memcmp(now, w->sig, sizeof now) == 0) {
        w->seen_since_ns = 0; /* as loaded: nothing is pending */
        return false;
    }
    bool changed = mine;
    /* Without an event about the file, a change is believed once it has
     * held for a whole second: a file seen between its truncation and its
     * last write would load as a short list of targets, or none. The second
     * is counted from when this state was first seen, not from the previous
     * wakeup: every event in the directory is a wakeup, and they may come
     * milliseconds apart. */
    if (!mine) {
        if (w->seen_since_ns == 0 || memcmp(now, w->seen, sizeof now) != 0) {
            memcpy(w->seen, now, sizeof now);
            w->seen_since_ns = now_ns;
        }
        changed = now_ns - w->seen_since_ns >= PROBE_WATCH_HOLD_NS;
    }
    if (changed) {
        memcpy(w->sig, now, sizeof now);
        w->seen_since_ns = 0;
    }
    return changed;
}
