/* The tcpmsgd status page: polls GET metrics and GET api/connections once a
 * second and draws them. Plain JavaScript, no framework, no build step, no
 * external resource. The server keeps no state for the page: rates are
 * computed here, from the difference between two polls.
 *
 * Reading order: settings, formatting, fetching, the poll loop, then one
 * render function per part of the page, then the two chart drawers. */
'use strict';

(function () {

// ---------------------------------------------------------------- settings

const POLL_MS = 1000;          // one refresh a second
const TIMEOUT_MS = 2000;       // a poll slower than this counts as "not answering"
const HISTORY_SECONDS = 300;   // the traffic charts keep the last 5 minutes
const MIN_WINDOW_SECONDS = 60; // ...and show at least 1 minute, so they do not zoom wildly at start
const CONN_LIMIT = 100;        // rows of the connection table
const HIST_BINS_PER_DECADE = 20;

// Relative URLs: the page works when served under a prefix (a reverse proxy
// mapping /tcpmsg/ to the endpoint) as well as at the root.
const METRICS_URL = 'metrics?format=json';
const CONNS_URL = 'api/connections';

// Close reasons and error kinds come from the server's JSON (every label is
// always present), so this page never holds a copy of the list that could
// drift. It only decides how alarming a non-zero count is; unknown names
// default to "bad" so a new failure mode is not hidden.
const CLOSE_SEVERITY = { peer_closed: 'ok', shutdown: 'ok', idle_timeout: 'warn', reset: 'warn' };

// ------------------------------------------------------------------- state

const state = {
  refreshes: 0,       // successful polls, exported as <body data-updated>
  failures: 0,        // polls failed in a row (0: the server answers)
  failedTotal: 0,     // all failed polls, exported as <body data-failed>
  lastOkAt: null,     // Date of the last successful poll
  prev: null,         // previous counter sample, for rates
  history: [],        // [{t, msgsIn, msgsOut, bytesIn, bytesOut, sysPerMsg, msgsPerWakeup}], t = server uptime
  sort: 'id',         // the API's sort argument; '-' prefix = descending
  timer: null,
  inFlight: false,
  pollAgain: false,   // a sort click arrived during a poll
  metrics: null,      // last documents, to redraw charts on resize
};

const $ = (id) => document.getElementById(id);

// -------------------------------------------------------------- formatting
// Numbers are shown with at most 3 significant digits and a unit prefix:
// "1.23k", "85 µs", "3.4 MB". The exact value goes in a title attribute.

/* 3 significant digits, trailing zeros dropped: 85.0 -> "85", 1.20 -> "1.2". */
function sig3(x) {
  const a = Math.abs(x);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : 2;
  return String(Number(x.toFixed(digits)));
}

/* Scale x by 1000s: returns [scaled value, prefix]. */
function scale1000(x, prefixes) {
  let i = 0;
  while (Math.abs(x) >= 999.5 && i < prefixes.length - 1) {
    x /= 1000;
    i++;
  }
  return [x, prefixes[i]];
}

/* A count or a rate: 12 -> "12", 0.5 -> "0.5", 12345 -> "12.3k". */
function fmtCount(x) {
  if (x == null || !isFinite(x)) return '—';
  const [v, p] = scale1000(x, ['', 'k', 'M', 'G', 'T']);
  return sig3(v) + p;
}

/* Bytes in decimal units, as network tools count: 3400000 -> "3.4 MB". */
function fmtBytes(x) {
  if (x == null || !isFinite(x)) return '—';
  const [v, p] = scale1000(x, ['B', 'kB', 'MB', 'GB', 'TB']);
  return sig3(v) + ' ' + p;
}

/* A latency in seconds: 8.5e-5 -> "85 µs". */
function fmtSeconds(s) {
  if (s == null || !isFinite(s)) return '—';
  if (s === 0) return '0';
  const a = Math.abs(s);
  if (a < 1e-6) return sig3(s * 1e9) + ' ns';
  if (a < 1e-3) return sig3(s * 1e6) + ' µs';
  if (a < 1) return sig3(s * 1e3) + ' ms';
  return sig3(s) + ' s';
}

/* An age or an uptime: "42 s", "4m 12s", "2h 03m", "3d 4h". */
function fmtAge(s) {
  if (s == null || !isFinite(s)) return '—';
  if (s < 1) return fmtSeconds(s);
  if (s < 60) return sig3(s) + ' s';
  const pad = (n) => String(n).padStart(2, '0');
  const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (m < 60) return `${m}m ${pad(Math.floor(s % 60))}s`;
  if (h < 24) return `${h}h ${pad(m % 60)}m`;
  return `${d}d ${h % 24}h`;
}

/* Set an element's text, and optionally its raw value for tooltips/tests. */
function setText(id, text, raw) {
  const el = $(id);
  if (!el) return;
  el.textContent = text;
  if (raw !== undefined) {
    el.dataset.value = String(raw);
    el.title = typeof raw === 'number' ? raw.toLocaleString('en-US') : String(raw);
  }
}

/* Shown for a value this server does not export ('—' is a value not known
 * yet). */
const NA = 'n/a';

/* Sum the values of a labelled counter: {framed: 3, text: 1} -> 4. */
function sum(obj) {
  if (typeof obj === 'number') return obj;
  return Object.values(obj || {}).reduce((a, b) => a + (Number(b) || 0), 0);
}

// ---------------------------------------------------------------- fetching

/* GET a JSON document within TIMEOUT_MS (fetch.js). */
const fetchJSON = (url) => tcpmsgFetchJSON(url, TIMEOUT_MS);

function connsURL() {
  return `${CONNS_URL}?limit=${CONN_LIMIT}&sort=${encodeURIComponent(state.sort)}`;
}

// --------------------------------------------------------------- poll loop

/* One refresh: both documents, then render. The next poll is scheduled only
 * when this one has finished (setTimeout, not setInterval), so a slow server
 * never has several polls from one page piling up on it. */
async function poll() {
  state.inFlight = true;
  try {
    const [metrics, conns] = await Promise.all([fetchJSON(METRICS_URL), fetchJSON(connsURL())]);
    onData(metrics, conns);
  } catch (err) {
    onFailure(err);
  } finally {
    state.inFlight = false;
    schedule(state.pollAgain ? 0 : POLL_MS);
    state.pollAgain = false;
  }
}

function schedule(delay) {
  clearTimeout(state.timer);
  state.timer = setTimeout(poll, delay);
}

/* Poll now (after a sort click) rather than up to a second later. */
function pollSoon() {
  if (state.inFlight) state.pollAgain = true;
  else schedule(0);
}

function onData(metrics, conns) {
  state.refreshes++;
  state.failures = 0;
  state.lastOkAt = new Date();
  state.metrics = metrics;
  state.conns = conns;

  const rates = updateRates(metrics);
  tcpmsgRenderLive(state);
  renderServer(metrics.server, rates);
  renderKpis(metrics, rates);
  renderLoop(metrics, rates);
  renderLatency('service', metrics.histograms.service_time_seconds, 'no messages yet');
  renderLatency('rtt', metrics.histograms.client_rtt_seconds, 'no reports yet');
  setText('rtt-reports', fmtCount(metrics.counters.client_rtt_reports_total));
  renderStages(metrics);
  renderCounts(metrics.counters);
  renderConnections(conns);
  renderClosed(conns.recently_closed || []);
  drawCharts();
}

function onFailure(err) {
  state.failures++;
  state.failedTotal++;
  const since = state.lastOkAt
    ? `Last successful update at ${state.lastOkAt.toLocaleTimeString()}; the values below are from then.`
    : 'No data has been received yet.';
  setText('banner-detail', `${since} (${err.message || err})`);
  tcpmsgRenderLive(state);
}

// ------------------------------------------------------------------- rates

/* Turn counters into rates. The time base is the server's own uptime, read
 * in the same document as the counters: the browser's clock would add the
 * network delay of each poll to the interval (and is not real time at all
 * in a headless test browser). A different start time means the server
 * restarted: its counters began again at zero, so the history is dropped. */
function updateRates(m) {
  const loop = loopCounters(m);
  const cur = {
    start: m.server.start_time_seconds,
    t: m.server.uptime_seconds,
    msgsIn: sum(m.counters.messages_received_total),
    msgsOut: sum(m.counters.messages_sent_total),
    bytesIn: sum(m.counters.received_bytes_total),
    bytesOut: sum(m.counters.sent_bytes_total),
    cpu: m.counters.process_cpu_seconds_total,
    syscalls: loop.syscalls,
    wakeups: loop.wakeups,
  };
  const prev = state.prev;
  if (prev && prev.start !== cur.start) state.history = [];
  state.prev = cur;
  if (!prev || prev.start !== cur.start || cur.t <= prev.t) return null;

  const dt = cur.t - prev.t;
  const rate = (k) => Math.max(0, (cur[k] - prev[k]) / dt);
  const r = {
    t: cur.t,
    msgsIn: rate('msgsIn'), msgsOut: rate('msgsOut'),
    bytesIn: rate('bytesIn'), bytesOut: rate('bytesOut'),
    cpu: cur.cpu != null && prev.cpu != null ? rate('cpu') : null,
    ...loopRates(cur, prev, dt),
  };
  state.history.push(r);
  while (state.history.length && state.history[0].t < cur.t - HISTORY_SECONDS) state.history.shift();
  return r;
}

/* The worker loops' counters in a metrics document: the system calls by
 * kind ({read: N, ...}, in the server's order), the wakeups and the
 * histogram of messages per wakeup, each null when this server does not
 * export it (an older tcpmsgd, or fork mode). The one place that knows where
 * they are in the document. */
function loopCounters(m) {
  const calls = m.syscalls && typeof m.syscalls === 'object' ? m.syscalls : null;
  const kinds = calls ? Object.keys(calls).filter((k) => k !== 'wakeups') : [];
  const loop = m.loop && typeof m.loop === 'object' ? m.loop : {};
  return {
    syscalls: calls ? Object.fromEntries(kinds.map((k) => [k, Number(calls[k]) || 0])) : null,
    wakeups: typeof loop.wakeups === 'number' ? loop.wakeups : null,
    perWakeup: loop.messages_per_wakeup || (m.histograms && m.histograms.messages_per_wakeup) || null,
  };
}

/* Between two polls: system calls per message answered, in all and by
 * kind, and messages answered per wakeup. null where a counter is missing
 * from either document, or nothing was answered (a ratio of idle time says
 * nothing about batching). */
function loopRates(cur, prev, dt) {
  const msgs = cur.msgsOut - prev.msgsOut;
  const r = { sysPerMsg: null, sysRate: null, msgsPerWakeup: null, wakeupRate: null, byKind: null };
  if (cur.syscalls && prev.syscalls) {
    r.byKind = Object.keys(cur.syscalls).map((k) => {
      const d = Math.max(0, cur.syscalls[k] - (prev.syscalls[k] || 0));
      return { kind: k, delta: d, total: cur.syscalls[k], perMsg: msgs > 0 ? d / msgs : null, perSec: d / dt };
    });
    const all = r.byKind.reduce((a, k) => a + k.delta, 0);
    r.sysRate = all / dt;
    r.sysPerMsg = msgs > 0 ? all / msgs : null;
  }
  if (cur.wakeups != null && prev.wakeups != null) {
    const w = Math.max(0, cur.wakeups - prev.wakeups);
    r.wakeupRate = w / dt;
    r.msgsPerWakeup = msgs > 0 && w > 0 ? msgs / w : null;
  }
  return r;
}

// ----------------------------------------------------------------- renders

function renderServer(s, rates) {
  setText('server-version', s.version);
  setText('server-mode', s.mode);
  setText('server-io', s.io || NA);
  setText('server-address', s.address);
  setText('server-workers', String(s.workers));
  const up = $('server-uptime');
  up.textContent = fmtAge(s.uptime_seconds);
  up.title = `started ${new Date(s.start_time_seconds * 1000).toLocaleString()}`;
  if (s.draining) {
    const b = document.createElement('span');
    b.className = 'badge';
    b.textContent = 'draining';
    up.append(b);
  }
  if (rates && rates.cpu != null) setText('server-cpu', `${sig3(rates.cpu * 100)}%`);
  const rss = state.metrics.gauges.process_resident_memory_bytes;
  if (rss != null) setText('server-rss', fmtBytes(rss));
  // Connection buffers against their budget: near it, the server pauses the
  // largest holders, and past --memory-grace closes them.
  const held = state.metrics.gauges.buffer_memory_bytes;
  const limit = state.metrics.gauges.buffer_memory_limit_bytes;
  if (held != null && limit) {
    setText('server-buffers', `${fmtBytes(held)} of ${fmtBytes(limit)}`, held);
    $('server-buffers').classList.toggle('text-warn', held > limit * 7 / 8);
  }
}

/* Rates need two polls; until then the rate figures keep their dash. */
function renderKpis(m, rates) {
  if (rates) {
    setText('msg-rate', fmtCount(rates.msgsIn), rates.msgsIn);
    setText('msg-rate-out', fmtCount(rates.msgsOut), rates.msgsOut);
    // The unit goes beside the big number, so it is split off the text.
    const [v, p] = scale1000(rates.bytesIn, ['B', 'kB', 'MB', 'GB', 'TB']);
    setText('byte-rate', sig3(v), rates.bytesIn);
    setText('byte-rate-unit', `${p}/s in`);
    setText('byte-rate-out', fmtBytes(rates.bytesOut) + '/s', rates.bytesOut);
  }
  const open = m.gauges.connections_open;
  setText('conns-open', fmtCount(open), open);
  setText('conns-accepted', fmtCount(m.counters.connections_accepted_total),
          m.counters.connections_accepted_total);
  const rejected = sum(m.counters.connections_rejected_total);
  setText('conns-rejected', fmtCount(rejected), rejected);
  $('conns-rejected').classList.toggle('text-warn', rejected > 0);

  const st = m.histograms.service_time_seconds;
  setText('service-p99-big', st.count ? fmtSeconds(st.p99) : '—', st.p99);
  setText('service-p50-small', st.count ? fmtSeconds(st.p50) : '—', st.p50);
  setText('service-count', fmtCount(st.count), st.count);
}

/* The event loop tiles, the table by kind and the messages-per-wakeup
 * histogram. "n/a" where this server does not export the counters; "—"
 * until two polls have been seen, or while nothing is answered. */
function renderLoop(m, rates) {
  const have = loopCounters(m);
  const perMsg = rates ? rates.sysPerMsg : null;
  setText('sys-per-msg', have.syscalls ? fmtRatio(perMsg) : NA, perMsg ?? '');
  setText('sys-rate', have.syscalls ? fmtCount(rates ? rates.sysRate : null) : NA,
          rates && rates.sysRate != null ? rates.sysRate : '');
  const perWakeup = rates ? rates.msgsPerWakeup : null;
  setText('msgs-per-wakeup', have.wakeups != null ? fmtRatio(perWakeup) : NA, perWakeup ?? '');
  setText('wakeup-rate', have.wakeups != null ? fmtCount(rates ? rates.wakeupRate : null) : NA,
          rates && rates.wakeupRate != null ? rates.wakeupRate : '');
  setText('sys-backend', m.server.io ? `${m.server.io} backend` : 'backend n/a');
  renderSyscallRows(have.syscalls, rates ? rates.byKind : null);

  const h = have.perWakeup;
  const empty = !h || !h.count;
  for (const key of ['p50', 'p90', 'p99', 'mean', 'max']) {
    setText(`mpw-${key}`, empty ? (h ? '—' : NA) : fmtCount(h[key]), empty ? '' : h[key]);
  }
  setText('mpw-p50-small', empty ? (h ? '—' : NA) : fmtCount(h.p50));
  $('mpw-empty').textContent = h ? 'no wakeup has answered a message yet' : 'n/a: this server does not export it';
  $('mpw-empty').hidden = !empty;
  $('mpw-hist').hidden = empty;
}

/* A ratio such as 1.75 system calls per message: two decimals when small. */
function fmtRatio(x) {
  if (x == null || !isFinite(x)) return '—';
  return x < 10 ? x.toFixed(2) : fmtCount(x);
}

/* One row per kind of system call, with a bar for its share of this
 * interval's calls; kinds never called since start are left out. */
function renderSyscallRows(totals, byKind) {
  const rows = [];
  if (totals) {
    const all = byKind ? byKind.reduce((a, k) => a + k.delta, 0) : 0;
    const kinds = byKind || Object.keys(totals).map((k) => ({ kind: k, total: totals[k], perMsg: null, perSec: null, delta: 0 }));
    for (const k of kinds) {
      if (!k.total) continue;
      const tr = document.createElement('tr');
      tr.dataset.kind = k.kind;
      const share = all > 0 ? k.delta / all : 0;
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${(share * 100).toFixed(1)}%`;
      const barCell = cell('', { cls: 'share' });
      barCell.title = `${(share * 100).toFixed(1)}% of this interval's calls`;
      barCell.append(bar);
      tr.append(
        cell(k.kind, { cls: 'peer' }),
        cell(fmtRatio(k.perMsg), { cls: 'num' }),
        cell(fmtCount(k.perSec), { cls: 'num' }),
        cell(fmtCount(k.total), { cls: 'num', raw: k.total }),
        barCell,
      );
      rows.push(tr);
    }
  }
  $('sys-rows').replaceChildren(...rows);
  $('sys-empty').textContent = totals ? 'no system calls counted yet' : 'n/a: this server does not export system call counts';
  $('sys-empty').hidden = rows.length > 0;
  $('sys-table').hidden = rows.length === 0;
}

/* The percentile strip of one histogram; its chart is drawn by drawCharts. */
function renderLatency(prefix, h, emptyText) {
  const empty = !h || !h.count;
  const cells = { p50: 'p50', p90: 'p90', p99: 'p99', p999: 'p99_9', max: 'max' };
  for (const [cell, key] of Object.entries(cells)) {
    setText(`${prefix}-${cell}`, empty ? '—' : fmtSeconds(h[key]), empty ? '' : h[key]);
  }
  $(`${prefix}-empty`).textContent = emptyText;
  $(`${prefix}-empty`).hidden = !empty;
  $(`${prefix}-hist`).hidden = empty;
}

// ---------------------------------------------------- where the time goes

/* What each stage of a sampled message spans, for the table and the
 * tooltips. The stages themselves, and their order, come from the server's
 * JSON: a stage missing here is still drawn, with its name alone. */
const STAGE_SPANS = {
  rx_queue: 'last byte reached the socket → read by the server',
  service: 'read → reply handed to the kernel',
  tx_sched: 'handed to the kernel → qdisc',
  tx_send: 'qdisc → device',
  tx_ack: 'device → acknowledged by the client',
};

/* The stage histograms of a metrics document ({rx_queue: {p50, ...}, ...})
 * and the sampling rate, each null when this server does not export them.
 * Sampling is off when the rate is 0 or absent. */
function stageData(m) {
  const h = m.histograms && m.histograms.stage_seconds;
  const every = m.server && typeof m.server.stage_sample === 'number' ? m.server.stage_sample : 0;
  return { stages: h && typeof h === 'object' ? h : null, every };
}

/* The "where the time goes" panel: one stacked bar for the stages' p50s and
 * one for their p99s, on a common scale (the longer bar fills the width),
 * so that every segment's width is proportional to its value in the JSON;
 * a table with the same values in words; and the kernel's srtt beside the
 * RTT the clients report. Three states, in data-stages: "off" (sampling
 * off, or a server without stages), "empty" (on, nothing sampled yet),
 * "on". */
function renderStages(m) {
  const { stages, every } = stageData(m);
  const names = stages ? Object.keys(stages) : [];
  const count = names.reduce((a, k) => Math.max(a, Number((stages[k] || {}).count) || 0), 0);
  const mode = !stages || every <= 0 ? 'off' : count === 0 ? 'empty' : 'on';
  $('stages').dataset.stages = mode;
  $('stages-off').hidden = mode !== 'off';
  $('stages-empty').hidden = mode !== 'empty';
  $('stages-view').hidden = mode !== 'on';
  setText('stages-sample', every > 0 ? `one in ${fmtCount(every)}` : 'sampling off', every);

  const h = m.histograms || {};
  const p50 = (x) => (x && x.count ? x.p50 : null);
  const srtt = p50(h.tcp_srtt_seconds), rtt = p50(h.client_rtt_seconds);
  setText('stages-srtt', srtt != null ? fmtSeconds(srtt) : h.tcp_srtt_seconds ? '—' : NA, srtt ?? '');
  setText('stages-rtt', rtt != null ? fmtSeconds(rtt) : '—', rtt ?? '');
  if (mode !== 'on') return;

  const value = (k, p) => Math.max(0, Number((stages[k] || {})[p]) || 0);
  const total = (p) => names.reduce((a, k) => a + value(k, p), 0);
  const scale = Math.max(total('p50'), total('p99'));
  for (const p of ['p50', 'p99']) {
    $(`stages-${p}`).replaceChildren(...names.map((k, i) => stageSegment(k, i, value(k, p), scale)));
    $(`stages-${p}`).setAttribute('aria-label',
      `${p} of each stage: ` + names.map((k) => `${k} ${fmtSeconds(value(k, p))}`).join(', '));
    setText(`stages-${p}-total`, fmtSeconds(total(p)), total(p));
  }
  $('stages-rows').replaceChildren(...names.map((k, i) => {
    const tr = document.createElement('tr');
    tr.dataset.stage = k;
    const name = cell('', { cls: 'peer' });
    const key = document.createElement('span');
    key.className = `stage-key stage-${i % 5}`;
    key.setAttribute('aria-hidden', 'true');
    name.append(key, document.createTextNode(k));
    tr.append(
      name,
      cell(STAGE_SPANS[k] || ''),
      cell(fmtSeconds(value(k, 'p50')), { cls: 'num' }),
      cell(fmtSeconds(value(k, 'p99')), { cls: 'num' }),
      cell(fmtCount(stages[k] && stages[k].count), { cls: 'num', raw: stages[k] && stages[k].count }),
    );
    return tr;
  }));
}

/* One segment of a stacked bar: its width the value's share of the scale,
 * its exact value in data-seconds, its name written on it when there is
 * room (and always in its tooltip and the table below: colour is never the
 * only label). */
function stageSegment(name, i, v, scale) {
  const seg = document.createElement('span');
  seg.className = `seg stage-${i % 5}`;
  seg.dataset.stage = name;
  seg.dataset.seconds = String(v);
  const pct = scale > 0 ? (v / scale) * 100 : 0;
  seg.style.width = `${pct.toFixed(3)}%`;
  seg.title = `${name}: ${fmtSeconds(v)}${STAGE_SPANS[name] ? ` (${STAGE_SPANS[name]})` : ''}`;
  if (pct >= 12) seg.textContent = name;
  return seg;
}

function renderCounts(c) {
  renderCountList('errors-list', c.errors_total, () => 'bad');
  renderCountList('closes-list', c.connections_closed_total, (k) => CLOSE_SEVERITY[k] || 'bad');
  renderCountList('rejects-list', c.connections_rejected_total, () => 'warn');
}

/* One <li> per label value, in the server's order; non-zero ones get the
 * class of their severity so problems stand out at a glance. */
function renderCountList(id, obj, severity) {
  const ul = $(id);
  const items = Object.entries(obj || {}).map(([name, n]) => {
    const li = document.createElement('li');
    li.dataset.name = name;
    li.dataset.value = String(n);
    if (n > 0) li.classList.add('nonzero', severity(name));
    const label = document.createElement('span');
    label.className = 'name';
    label.textContent = name;
    const val = document.createElement('span');
    val.textContent = fmtCount(n);
    val.title = n.toLocaleString('en-US');
    li.append(label, val);
    return li;
  });
  ul.replaceChildren(...items);
}

/* A table cell; numbers are right-aligned and carry their exact value. */
function cell(text, opts = {}) {
  const td = document.createElement('td');
  if (opts.cls) td.className = opts.cls;
  if (opts.pill) {
    const s = document.createElement('span');
    s.className = opts.pill;
    s.textContent = text;
    td.append(s);
  } else {
    td.textContent = text;
  }
  if (opts.raw !== undefined) td.title = Number(opts.raw).toLocaleString('en-US');
  return td;
}

function renderConnections(doc) {
  const rows = doc.connections.map((c) => {
    const tr = document.createElement('tr');
    tr.dataset.id = String(c.id);
    tr.append(
      cell(String(c.id), { cls: 'num' }),
      cell(c.peer, { cls: 'peer' }),
      cell(c.mode),
      cell(c.state, { pill: `state state-${c.state}` }),
      cell(fmtAge(c.age_seconds), { cls: 'num' }),
      cell(fmtAge(c.idle_seconds), { cls: 'num' }),
      ...trafficCells(c),
      cell(fmtBytes(c.pending_output_bytes), { cls: 'num', raw: c.pending_output_bytes }),
      ...tcpCells(c.tcp),
    );
    return tr;
  });
  $('conn-rows').replaceChildren(...rows);
  $('conn-empty').hidden = rows.length > 0;
  const shown = rows.length < doc.total ? `, showing ${rows.length}` : '';
  setText('conn-summary', `${doc.total} open${shown}`);
  renderSortHeaders();
}

/* What the kernel's TCP knows of the connection: "—" where the server
 * cannot tell (fork mode lists connections from the parent). Each cell keeps
 * its exact value in data-value. */
function tcpCells(t) {
  if (!t) return [cell('—', { cls: 'num' }), cell('—', { cls: 'num' }), cell('—', { cls: 'num' })];
  const exact = (td, v) => {
    td.dataset.value = String(v);
    return td;
  };
  return [
    exact(cell(fmtSeconds(t.srtt_us / 1e6), { cls: 'num tcp-srtt' }), t.srtt_us),
    exact(cell(String(t.snd_cwnd), { cls: 'num tcp-cwnd' }), t.snd_cwnd),
    exact(cell(fmtCount(t.total_retrans), { cls: t.total_retrans > 0 ? 'num tcp-retrans warn' : 'num tcp-retrans',
                                            raw: t.total_retrans }), t.total_retrans),
  ];
}

/* Messages and bytes each way: the same four columns in both tables. */
function trafficCells(c) {
  return [
    cell(fmtCount(c.messages_in), { cls: 'num', raw: c.messages_in }),
    cell(fmtCount(c.messages_out), { cls: 'num', raw: c.messages_out }),
    cell(fmtBytes(c.bytes_in), { cls: 'num', raw: c.bytes_in }),
    cell(fmtBytes(c.bytes_out), { cls: 'num', raw: c.bytes_out }),
  ];
}

function closeReasonClass(reason) {
  const sev = CLOSE_SEVERITY[reason] || 'bad';
  return sev === 'ok' ? 'reason' : `reason ${sev}`;
}

function renderClosed(list) {
  const rows = list.map((c) => {
    const tr = document.createElement('tr');
    tr.dataset.id = String(c.id);
    tr.append(
      cell(String(c.id), { cls: 'num' }),
      cell(c.peer, { cls: 'peer' }),
      cell(c.mode),
      cell(c.reason, { pill: closeReasonClass(c.reason) }),
      cell(`${fmtAge(c.closed_seconds_ago)} ago`, { cls: 'num' }),
      cell(fmtAge(c.age_seconds), { cls: 'num' }),
      ...trafficCells(c),
    );
    return tr;
  });
  $('closed-rows').replaceChildren(...rows);
  $('closed-empty').hidden = rows.length > 0;
}

// ----------------------------------------------------------------- sorting
// The server sorts (the page only sees the first CONN_LIMIT rows, so sorting
// them here would be sorting the wrong rows). A click picks a column; a
// second click on it flips the direction.

function renderSortHeaders() {
  const key = state.sort.replace(/^-/, '');
  const desc = state.sort.startsWith('-');
  for (const th of document.querySelectorAll('#conn-table th[data-sort]')) {
    if (th.dataset.sort === key) th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
    else th.removeAttribute('aria-sort');
  }
}

function onSortClick(th) {
  const key = th.dataset.sort;
  const cur = state.sort.replace(/^-/, '');
  if (cur === key) {
    state.sort = state.sort.startsWith('-') ? key : `-${key}`;
  } else {
    // Ids read best ascending; for the others, "biggest first" is what one looks for.
    state.sort = key === 'id' ? key : `-${key}`;
  }
  renderSortHeaders();
  pollSoon();
}

function initSorting() {
  for (const th of document.querySelectorAll('#conn-table th[data-sort]')) {
    th.tabIndex = 0;
    th.title = 'sort by this column';
    th.addEventListener('click', () => onSortClick(th));
    th.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        onSortClick(th);
      }
    });
  }
  renderSortHeaders();
}

// ------------------------------------------------------------------ charts
// Drawn on <canvas> by hand: a time series and a histogram are a few dozen
// lines each, less than a charting library's configuration.

/* The palette lives in style.css (light and dark); read it at draw time so
 * a change of colour scheme applies on the next frame. */
function palette() {
  const cs = getComputedStyle(document.documentElement);
  const v = (name) => cs.getPropertyValue(name).trim();
  return {
    text: v('--muted'), grid: v('--grid'), line: v('--line'),
    a: v('--accent'), b: v('--accent-2'), fill: v('--accent-fill'),
    font: `11px ${v('--font')}`,
  };
}

/* Size the canvas backing store to its CSS box times the pixel ratio, so
 * lines stay sharp on high-density screens. Returns null when not visible. */
function prepareCanvas(canvas) {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return null;
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

/* The smallest of 1, 2, 2.5, 5 x 10^k that is >= x: a readable axis maximum. */
function niceCeil(x) {
  if (!(x > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x * 0.999) return m * p;
  return 10 * p;
}

function drawCharts() {
  const hist = state.history;
  const now = state.prev ? state.prev.t : 0;
  const first = hist.length ? hist[0].t : now;
  const span = Math.min(HISTORY_SECONDS, Math.max(MIN_WINDOW_SECONDS, now - first));
  setText('history-span', `last ${Math.round(span / 60 * 10) / 10} min`);
  drawTimeChart($('msg-chart'), hist, now, span, ['msgsIn', 'msgsOut'], fmtCount);
  drawTimeChart($('byte-chart'), hist, now, span, ['bytesIn', 'bytesOut'], (v) => v ? fmtBytes(v) : '0');
  if (state.metrics) {
    const h = state.metrics.histograms;
    drawHistogram($('service-hist'), h.service_time_seconds, fmtSeconds);
    drawHistogram($('rtt-hist'), h.client_rtt_seconds, fmtSeconds);
    // The loop charts skip the intervals where nothing was answered.
    const have = loopCounters(state.metrics);
    drawTimeChart($('sys-chart'), hist.filter((p) => p.sysPerMsg != null), now, span, ['sysPerMsg'],
                  fmtCount, have.syscalls ? null : 'n/a: this server does not export system call counts');
    drawTimeChart($('mpw-chart'), hist.filter((p) => p.msgsPerWakeup != null), now, span, ['msgsPerWakeup'],
                  fmtCount, have.wakeups != null ? null : 'n/a: this server does not export its wakeups');
    drawHistogram($('mpw-hist'), have.perWakeup, fmtCount);
  }
}

/* A time chart of one or two series: keys[0] as a filled area, keys[1] (if
 * any) as a line on top (for an echo server messages in and out mostly
 * coincide: a gap between them is worth seeing). x is server uptime, the
 * last `span` seconds up to `now`. With no points it says emptyText, or
 * that a rate needs a second sample. */
function drawTimeChart(canvas, points, now, span, keys, fmtY, emptyText) {
  const c = prepareCanvas(canvas);
  if (!c) return;
  const { ctx, w, h } = c;
  const pal = palette();
  ctx.font = pal.font;

  const yMax = niceCeil(Math.max(0, ...points.map((p) => Math.max(...keys.map((k) => p[k])))));
  const ticks = [0, yMax / 2, yMax];
  const left = 6 + Math.max(...ticks.map((t) => ctx.measureText(fmtY(t)).width));
  const box = { x0: left + 6, x1: w - 4, y0: 8, y1: h - 18 };
  const X = (t) => box.x1 - ((now - t) / span) * (box.x1 - box.x0);
  const Y = (v) => box.y1 - (v / yMax) * (box.y1 - box.y0);

  // Grid and labels.
  ctx.strokeStyle = pal.grid;
  ctx.fillStyle = pal.text;
  ctx.lineWidth = 1;
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  for (const t of ticks) {
    const y = Math.round(Y(t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(box.x0, y); ctx.lineTo(box.x1, y); ctx.stroke();
    ctx.fillText(fmtY(t), left, y);
  }
  ctx.textBaseline = 'top';
  ctx.textAlign = 'center';
  const step = span > 120 ? 60 : span > 60 ? 30 : 15;
  for (let ago = 0; ago <= span; ago += step) {
    const label = ago === 0 ? 'now' : ago < 60 ? `-${ago}s` : `-${ago / 60}m`;
    ctx.textAlign = ago === 0 ? 'right' : 'center';
    ctx.fillText(label, X(now - ago), box.y1 + 5);
  }

  const visible = points.filter((p) => p.t >= now - span);
  if (!visible.length) {
    // A rate needs two samples: say so rather than show an empty frame.
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(emptyText || 'waiting for a second sample…', (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2);
    return;
  }
  tracePath(ctx, visible, X, Y, keys[0]);
  ctx.lineTo(X(visible[visible.length - 1].t), box.y1);
  ctx.lineTo(X(visible[0].t), box.y1);
  ctx.fillStyle = pal.fill;
  ctx.fill();
  strokeSeries(ctx, visible, X, Y, keys[0], pal.a, 2);
  if (keys[1]) strokeSeries(ctx, visible, X, Y, keys[1], pal.b, 1.25);
}

/* A path through the points; a gap of more than 5 s (the page or the
 * server was away) is left as a gap rather than bridged by a straight line. */
function tracePath(ctx, pts, X, Y, key) {
  ctx.beginPath();
  pts.forEach((p, i) => {
    const gap = i > 0 && p.t - pts[i - 1].t > 5;
    if (i === 0 || gap) ctx.moveTo(X(p.t), Y(p[key]));
    else ctx.lineTo(X(p.t), Y(p[key]));
  });
}

function strokeSeries(ctx, pts, X, Y, key, color, width) {
  tracePath(ctx, pts, X, Y, key);
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.lineJoin = 'round';
  ctx.stroke();
}

/* The server's buckets are fine (log-linear, within 0.4%): hundreds of them
 * would be hairlines. Regroup them into equal widths on a log axis,
 * HIST_BINS_PER_DECADE per power of ten, keyed by their bin number. */
function rebin(buckets) {
  const bins = new Map();
  for (const b of buckets) {
    const mid = Math.sqrt(Math.max(b.lo, 1e-12) * Math.max(b.hi, 1e-12));
    const k = Math.floor(Math.log10(mid) * HIST_BINS_PER_DECADE);
    bins.set(k, (bins.get(k) || 0) + b.count);
  }
  return bins;
}

/* A histogram on a log value axis (decade ticks labelled with fmtX), log
 * count axis (so the rare slow tail that matters is visible next to the
 * common case), and markers at p50, p99 and p99.9. */
function drawHistogram(canvas, h, fmtX) {
  if (!h || !h.count || !h.buckets || !h.buckets.length) return;
  const c = prepareCanvas(canvas);
  if (!c) return;
  const { ctx, w, h: ht } = c;
  const pal = palette();
  ctx.font = pal.font;

  const bins = rebin(h.buckets);
  const keys = [...bins.keys()];
  const d0 = Math.floor(Math.min(...keys) / HIST_BINS_PER_DECADE);
  const d1 = Math.max(d0 + 1, Math.ceil((Math.max(...keys) + 1) / HIST_BINS_PER_DECADE));
  const maxCount = Math.max(...bins.values());
  const box = { x0: 4, x1: w - 4, y0: 30, y1: ht - 18 };
  const X = (log10v) => box.x0 + ((log10v - d0) / (d1 - d0)) * (box.x1 - box.x0);
  const Y = (n) => box.y1 - (Math.log10(n + 1) / Math.log10(maxCount + 1)) * (box.y1 - box.y0);

  // Decade grid with labels; minor lines at 2x and 5x.
  ctx.lineWidth = 1;
  ctx.textBaseline = 'top';
  for (let d = d0; d <= d1; d++) {
    for (const m of [1, 2, 5]) {
      const lv = d + Math.log10(m);
      if (lv > d1) break;
      const x = Math.round(X(lv)) + 0.5;
      ctx.strokeStyle = m === 1 ? pal.line : pal.grid;
      ctx.beginPath(); ctx.moveTo(x, box.y0 - 4); ctx.lineTo(x, box.y1); ctx.stroke();
      if (m === 1) {
        ctx.fillStyle = pal.text;
        ctx.textAlign = d === d0 ? 'left' : d === d1 ? 'right' : 'center';
        ctx.fillText(fmtX(Math.pow(10, d)), x, box.y1 + 5);
      }
    }
  }

  // Bars, one per bin, a pixel apart when there is room for it.
  ctx.fillStyle = pal.a;
  const bw = (box.x1 - box.x0) / ((d1 - d0) * HIST_BINS_PER_DECADE);
  for (const [k, n] of bins) {
    const x = X(k / HIST_BINS_PER_DECADE);
    const y = Y(n);
    ctx.fillRect(x, y, Math.max(1, bw - (bw > 3 ? 1 : 0)), box.y1 - y);
  }
  ctx.strokeStyle = pal.line;
  ctx.beginPath(); ctx.moveTo(box.x0, box.y1 + 0.5); ctx.lineTo(box.x1, box.y1 + 0.5); ctx.stroke();

  // Percentile markers, labels on staggered rows so close ones do not overlap.
  const marks = [['p50', h.p50], ['p99', h.p99], ['p99.9', h.p99_9]];
  marks.forEach(([name, v], row) => {
    if (!(v > 0)) return;
    const x = Math.round(X(Math.log10(v))) + 0.5;
    ctx.strokeStyle = pal.b;
    ctx.setLineDash([3, 3]);
    ctx.beginPath(); ctx.moveTo(x, row * 9 + 6); ctx.lineTo(x, box.y1); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = pal.b;
    const right = x > box.x1 - 50;
    ctx.textAlign = right ? 'right' : 'left';
    ctx.textBaseline = 'top';
    ctx.fillText(name, x + (right ? -3 : 3), row * 9);
  });
}

/* Redraw on resize (canvas pixels do not stretch) and on a change of colour
 * scheme, at most once per frame. */
function initRedraw() {
  let pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; drawCharts(); });
  };
  window.addEventListener('resize', redraw);
  const mq = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)');
  if (mq && mq.addEventListener) mq.addEventListener('change', redraw);
}

// -------------------------------------------------------------------- start

initSorting();
initRedraw();
poll();

})();
