/* probe_status: GET /api/targets, the probe's targets as JSON for its status
 * page (web/probe.html): for each target its latest round trip, its loss
 * over the last PROBE_WINDOW probes, up or down and why it last failed; and
 * the state of the --targets file. Prometheus text is probe_metrics.c's.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "client/probe.h"

static json_t *target_json(struct probe_target *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "target", json_string(t->spec.name));
    json_t *labels = json_object();
    for (size_t i = 0; i < t->spec.nlabels; i++)
        json_object_set_new(labels, t->spec.labels[i].name, json_string(t->spec.labels[i].value));
    json_object_set_new(o, "labels", labels);
    json_object_set_new(o, "source", json_string(t->from_file ? "file" : "command line"));

    pthread_mutex_lock(&t->status_lock);
    struct probe_recent r = t->recent;
    pthread_mutex_unlock(&t->status_lock);
    /* Up: the latest probe succeeded; null before the first. */
    json_object_set_new(o, "up", r.n == 0 ? json_null() : json_boolean(atomic_load(&t->up)));
    json_object_set_new(o, "probes", json_integer((json_int_t)counter_get(&t->probes)));
    json_object_set_new(o, "lost", json_integer((json_int_t)probe_target_lost(t)));
    unsigned lost = (unsigned)__builtin_popcountll(
        r.n < 64 ? r.lost_bits & ((UINT64_C(1) << r.n) - 1) : r.lost_bits);
    json_t *w = json_object();
    json_object_set_new(w, "probes", json_integer(r.n));
    json_object_set_new(w, "lost", json_integer(lost));
    json_object_set_new(w, "loss_pct", r.n > 0 ? json_real(100.0 * lost / r.n) : json_null());
    json_object_set_new(o, "window", w);
    json_object_set_new(o, "last_rtt_us", r.last_rtt_s >= 0 ? json_real(r.last_rtt_s * 1e6)
                                                             : json_null());
    json_object_set_new(o, "last_probe_time", r.n > 0 ? json_real(r.last_time) : json_null());
    const struct hist *h = &t->rtt;
    json_t *rtt = json_object();
    json_object_set_new(rtt, "p50", json_real(hist_percentile(h, 50) / 1e3));
    json_object_set_new(rtt, "p99", json_real(hist_percentile(h, 99) / 1e3));
    json_object_set_new(rtt, "max", json_real(hist_max(h) / 1e3));
    json_object_set_new(o, "rtt_us", rtt);
    if (r.last_failure >= 0) {
        json_t *f = json_object();
        json_object_set_new(f, "reason", json_string(probe_failure_tag(r.last_failure)));
        json_object_set_new(f, "detail", json_string(r.last_detail));
        json_object_set_new(f, "time", json_real(r.last_failure_time));
        json_object_set_new(o, "last_failure", f);
    } else {
        json_object_set_new(o, "last_failure", json_null());
    }
    return o;
}

static json_t *file_json(const struct probe_reloads *r)
{
    if (r->file == NULL)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "path", json_string(r->file));
    json_object_set_new(o, "reloads_success", json_integer((json_int_t)r->success));
    json_object_set_new(o, "reloads_failure", json_integer((json_int_t)r->failure));
    json_object_set_new(o, "last_reload_successful", json_boolean(r->last_ok));
    json_object_set_new(o, "last_success_time", json_real(r->last_success_time));
    json_object_set_new(o, "last_error", r->last_error[0] != '\0' ? json_string(r->last_error)
                                                                  : json_null());
    return o;
}

char *probe_status_json(struct probe *p, size_t *len)
{
    json_t *root = json_object();
    json_t *list = json_array();
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->ntargets; i++)
        json_array_append_new(list, target_json(p->targets[i]));
    json_object_set_new(root, "targets_file", file_json(&p->reloads));
    pthread_mutex_unlock(&p->lock);
    json_object_set_new(root, "interval_s", json_real(p->cfg->interval));
    json_object_set_new(root, "window", json_integer(PROBE_WINDOW));
    json_object_set_new(root, "targets", list);
    /* 15 digits: Unix times to the millisecond. */
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(root);
    if (s != NULL)
        *len = strlen(s);
    return s;
}
