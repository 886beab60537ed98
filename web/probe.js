/* The status page of tcpmsg probe: polls GET api/targets once a second and
 * draws every target twice, as a tile coloured by its state (up, down, not
 * probed yet) with its latest round trip and recent loss, and as a row of
 * the detail table. Plain JavaScript, no framework, no build step; the
 * probe computes everything (the loss window, the percentiles), the page
 * only formats it.
 *
 * Reading order: settings, formatting, the poll loop, rendering. */
'use strict';

(function () {

const POLL_MS = 1000;
const TIMEOUT_MS = 2000; // a poll slower than this counts as "not answering"
const TARGETS_URL = 'api/targets'; // relative: works behind a path prefix

const state = {
  refreshes: 0,   // successful polls, exported as <body data-updated>
  failures: 0,    // polls failed in a row
  failedTotal: 0, // exported as <body data-failed>
  lastOkAt: null,
};

const $ = (id) => document.getElementById(id);

// -------------------------------------------------------------- formatting

/* 3 significant digits, trailing zeros dropped. */
function sig3(x) {
  const a = Math.abs(x);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : 2;
  return String(Number(x.toFixed(digits)));
}

/* Microseconds as a time with its unit: 85 -> "85 µs", 1234 -> "1.23 ms". */
function fmtMicros(us) {
  if (us == null || !isFinite(us)) return '—';
  if (us < 1) return sig3(us * 1e3) + ' ns';
  if (us < 1e3) return sig3(us) + ' µs';
  if (us < 1e6) return sig3(us / 1e3) + ' ms';
  return sig3(us / 1e6) + ' s';
}

function fmtPct(p) {
  return p == null || !isFinite(p) ? '—' : sig3(p) + ' %';
}

/* A Unix time as the browser's local time of day. */
function fmtTime(t) {
  return t == null ? '' : new Date(t * 1000).toLocaleTimeString();
}

/* 'up', 'down' or 'pending' (not probed yet): the state a tile and a row show. */
function stateOf(t) {
  return t.up === true ? 'up' : t.up === false ? 'down' : 'pending';
}

function setText(id, text) {
  const el = $(id);
  if (el) el.textContent = text;
}

/* An element with a class and text: the page never builds HTML from
 * strings, so a target name or a label cannot inject markup. */
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function labelsText(labels) {
  return Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(', ');
}

// --------------------------------------------------------------- poll loop

/* GET a JSON document within TIMEOUT_MS (fetch.js). */
const fetchJSON = (url) => tcpmsgFetchJSON(url, TIMEOUT_MS);

/* The next poll is scheduled when this one has finished, so polls never
 * pile up on a slow probe. */
async function poll() {
  try {
    const doc = await fetchJSON(TARGETS_URL);
    state.refreshes++;
    state.failures = 0;
    state.lastOkAt = new Date();
    render(doc);
  } catch (err) {
    state.failures++;
    state.failedTotal++;
    setText('banner-detail', (state.lastOkAt
      ? `Last successful update at ${state.lastOkAt.toLocaleTimeString()}; the values below are from then.`
      : 'No data has been received yet.') + ` (${err.message || err})`);
  }
  tcpmsgRenderLive(state);
  setTimeout(poll, POLL_MS);
}

// ---------------------------------------------------------------- rendering

function render(doc) {
  const targets = doc.targets || [];
  const up = targets.filter((t) => t.up === true).length;
  const down = targets.filter((t) => t.up === false).length;
  setText('n-targets', String(targets.length));
  setText('n-up', String(up));
  setText('n-down', String(down));
  $('n-down').classList.toggle('text-bad', down > 0);
  setText('interval', fmtMicros(doc.interval_s * 1e6));
  setText('window', String(doc.window));
  renderFile(doc.targets_file);
  renderTiles(targets);
  renderRows(targets);
}

/* The target file: its path, its loads, and a banner while the last one
 * failed (the probe goes on with the targets it had). */
function renderFile(f) {
  $('banner-file').hidden = !f || f.last_reload_successful;
  if (!f) {
    setText('file-path', 'none');
    setText('file-reloads', '—');
    return;
  }
  setText('file-path', f.path);
  const r = $('file-reloads');
  r.textContent = `${f.reloads_success} ok / ${f.reloads_failure} failed`;
  r.dataset.success = String(f.reloads_success);
  r.dataset.failure = String(f.reloads_failure);
  setText('file-error', f.last_error || '');
}

/* One tile a target: the row of a mesh's matrix that this prober sees. */
function renderTiles(targets) {
  const box = $('tiles');
  box.replaceChildren(...targets.map((t) => {
    const s = stateOf(t);
    const tile = el('div', `tile tile-${s}`);
    tile.dataset.target = t.target;
    tile.dataset.up = s;
    tile.title = t.last_failure && s === 'down'
      ? `${t.last_failure.reason}: ${t.last_failure.detail}` : labelsText(t.labels);
    tile.append(el('span', 'tile-name', t.target),
                el('span', 'tile-rtt', s === 'up' ? fmtMicros(t.last_rtt_us)
                                     : s === 'down' ? t.last_failure.reason : 'not probed yet'),
                el('span', 'tile-loss', `loss ${fmtPct(t.window.loss_pct)}`));
    return tile;
  }));
  $('tiles-empty').hidden = targets.length > 0;
}

function cell(text, cls, value) {
  const td = el('td', cls, text);
  if (value !== undefined && value !== null) td.dataset.value = String(value);
  return td;
}

function renderRows(targets) {
  $('target-rows').replaceChildren(...targets.map((t) => {
    const s = stateOf(t);
    const tr = el('tr');
    tr.dataset.target = t.target;
    tr.dataset.up = s;
    const st = el('span', `state state-${s}`, s);
    const stateCell = el('td', 'target-state');
    stateCell.append(st);
    const f = t.last_failure;
    const failure = f ? `${f.reason}: ${f.detail} (${fmtTime(f.time)})` : '—';
    const lossPct = t.window.loss_pct;
    tr.append(cell(t.target, 'peer'),
              cell(labelsText(t.labels) || '—', 'labels'),
              stateCell,
              cell(fmtMicros(t.last_rtt_us), 'num last-rtt', t.last_rtt_us),
              cell(t.probes > t.lost ? fmtMicros(t.rtt_us.p50) : '—', 'num p50'),
              cell(t.probes > t.lost ? fmtMicros(t.rtt_us.p99) : '—', 'num p99'),
              cell(fmtPct(lossPct), 'num loss' + (lossPct > 0 ? ' text-bad' : ''), lossPct),
              cell(String(t.probes), 'num probes', t.probes),
              cell(String(t.lost), 'num lost', t.lost),
              cell(failure, 'failure' + (f ? ' reason-' + f.reason : '')));
    return tr;
  }));
}

tcpmsgRenderLive(state);
poll();

})();
