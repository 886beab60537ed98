/* connlist: snapshots of connections for the HTTP endpoint, as JSON. */
#include "server/connlist.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/conn.h"

void conn_info_fill(struct conn_info *i, const struct conn *c, unsigned worker)
{
    memset(i, 0, sizeof *i);
    i->id = c->id;
    memcpy(i->peer, c->peer_str, sizeof i->peer);
    i->mode = frame_mode_name((enum frame_mode)counter_get(&c->pub.mode));
    i->state = conn_state_name((enum conn_state)counter_get(&c->pub.state));
    i->worker = worker;
    i->opened_ns = c->opened_ns;
    i->active_ns = counter_get(&c->pub.active_ns);
    i->msgs_in = counter_get(&c->pub.msgs_in);
    i->msgs_out = counter_get(&c->pub.msgs_out);
    i->bytes_in = counter_get(&c->pub.bytes_in);
    i->bytes_out = counter_get(&c->pub.bytes_out);
    i->pending = counter_get(&c->pub.pending);
    i->mem = counter_get(&c->pub.mem);
    /* The worker closes the socket only after taking c off its list, under
     * the lock the caller holds: c->fd is still this connection's. */
    i->has_tcp = c->fd >= 0 && tcpinfo_read(c->fd, &i->tcp) == 0;
}

void closed_ring_init(struct closed_ring *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
}

void closed_ring_destroy(struct closed_ring *r)
{
    pthread_mutex_destroy(&r->lock);
}

void closed_ring_push(struct closed_ring *r, const struct conn *c, unsigned worker,
                      enum close_reason reason, uint64_t now)
{
    struct conn_info i;
    conn_info_fill(&i, c, worker);
    i.state = "closed";
    i.closed_ns = now;
    i.reason = close_reason_tag(reason);
    pthread_mutex_lock(&r->lock);
    r->items[r->pushed++ % CLOSED_RING_SIZE] = i;
    pthread_mutex_unlock(&r->lock);
}

void closed_ring_push_info(struct closed_ring *r, const struct conn_info *info, uint64_t now)
{
    pthread_mutex_lock(&r->lock);
    struct conn_info *i = &r->items[r->pushed++ % CLOSED_RING_SIZE];
    *i = *info;
    i->closed_ns = now;
    pthread_mutex_unlock(&r->lock);
}

/* TCP_INFO's fields, under the names of tcpinfo.h's list. */
static json_t *tcp_json(const struct tcpinfo *t)
{
    json_t *o = json_object();
#define TCP_FIELD_JSON(name, ...) \
    json_object_set_new(o, #name, json_integer(t->name > INT64_MAX ? INT64_MAX : (json_int_t)t->name));
    TCPINFO_FIELDS(TCP_FIELD_JSON, )
#undef TCP_FIELD_JSON
    return o;
}

static json_t *info_json(const struct conn_info *i, uint64_t now)
{
    uint64_t end = i->closed_ns != 0 ? i->closed_ns : now;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)i->id));
    json_object_set_new(o, "peer", json_string(i->peer));
    json_object_set_new(o, "mode", json_string(i->mode));
    json_object_set_new(o, "state", json_string(i->state));
    if (i->pid != 0)
        json_object_set_new(o, "pid", json_integer(i->pid));
    else
        json_object_set_new(o, "worker", json_integer(i->worker));
    json_object_set_new(o, "age_seconds", json_real((double)(end - i->opened_ns) / 1e9));
    json_object_set_new(o, "idle_seconds",
                        json_real(end > i->active_ns ? (double)(end - i->active_ns) / 1e9 : 0));
    json_object_set_new(o, "messages_in", json_integer((json_int_t)i->msgs_in));
    json_object_set_new(o, "messages_out", json_integer((json_int_t)i->msgs_out));
    json_object_set_new(o, "bytes_in", json_integer((json_int_t)i->bytes_in));
    json_object_set_new(o, "bytes_out", json_integer((json_int_t)i->bytes_out));
    json_object_set_new(o, "pending_output_bytes", json_integer((json_int_t)i->pending));
    json_object_set_new(o, "buffer_bytes", json_integer((json_int_t)i->mem));
    json_object_set_new(o, "tcp", i->has_tcp ? tcp_json(&i->tcp) : json_null());
    if (i->reason != NULL) {
        json_object_set_new(o, "reason", json_string(i->reason));
        json_object_set_new(o, "closed_seconds_ago", json_real((double)(now - i->closed_ns) / 1e9));
    }
    return o;
}

/* Sorting: the value of key k, from the key list (adminquery.h). */
static uint64_t key_of(const struct conn_info *i, enum conn_sort_key k)
{
    switch (k) {
#define SORT_KEY_CASE(name, spelling, value) \
    case name:                               \
        return value;
        CONN_SORT_KEYS(SORT_KEY_CASE)
#undef SORT_KEY_CASE
    case CONN_SORT_KEY_COUNT:
        break;
    }
    return 0;
}

static enum conn_sort_key g_key; /* qsort has no context argument; HTTP is one thread */
static int g_dir;

static int compare(const void *a, const void *b)
{
    uint64_t x = key_of(a, g_key), y = key_of(b, g_key);
    if (x != y)
        return (x < y ? -1 : 1) * g_dir;
    const struct conn_info *ia = a, *ib = b;
    return ia->id < ib->id ? -1 : ia->id > ib->id;
}

static json_t *closed_json(struct closed_ring *r, uint64_t now)
{
    json_t *a = json_array();
    pthread_mutex_lock(&r->lock);
    uint64_t first = r->pushed > CLOSED_RING_SIZE ? r->pushed - CLOSED_RING_SIZE : 0;
    for (uint64_t k = r->pushed; k > first; k--) /* newest first */
        json_array_append_new(a, info_json(&r->items[(k - 1) % CLOSED_RING_SIZE], now));
    pthread_mutex_unlock(&r->lock);
    return a;
}

char *connlist_json(struct conn_info *v, size_t n, struct closed_ring *closed,
                    struct conn_sort sort, size_t limit, size_t offset)
{
    g_key = sort.key;
    g_dir = sort.descending ? -1 : 1;
    qsort(v, n, sizeof *v, compare);

    uint64_t now = net_now_ns();
    json_t *root = json_object();
    json_object_set_new(root, "total", json_integer((json_int_t)n));
    json_object_set_new(root, "offset", json_integer((json_int_t)offset));
    json_object_set_new(root, "limit", json_integer((json_int_t)limit));
    char sort_text[32]; /* as asked: "-bytes_in" */
    snprintf(sort_text, sizeof sort_text, "%s%s", sort.descending ? "-" : "",
             conn_sort_name(sort.key));
    json_object_set_new(root, "sort", json_string(sort_text));
    json_t *list = json_array();
    for (size_t i = offset; i < n && i - offset < limit; i++)
        json_array_append_new(list, info_json(&v[i], now));
    json_object_set_new(root, "connections", list);
    json_object_set_new(root, "recently_closed", closed_json(closed, now));
    char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(root);
    return text;
}
