/* Shared by both status pages (app.js for tcpmsgd, probe.js for tcpmsg
 * probe), loaded before either: GET a JSON document with a deadline, and
 * show whether the page is live. It defines two globals, tcpmsgFetchJSON and
 * tcpmsgRenderLive; the pages keep everything else in their own scope. */
'use strict';

/* GET url as JSON, failing after timeoutMs: a server that accepts the
 * connection but never answers (stopped with SIGSTOP, overloaded) must show
 * as "not answering", not leave the page waiting forever. The messages of
 * the errors are what the pages show in their banner. */
async function tcpmsgFetchJSON(url, timeoutMs) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const r = await fetch(url, {
      signal: ctl.signal,
      cache: 'no-store',
      headers: { Accept: 'application/json' },
    });
    if (!r.ok) throw new Error(`HTTP ${r.status} from ${url}`);
    return await r.json();
  } catch (err) {
    if (err.name === 'AbortError') throw new Error(`no answer within ${timeoutMs / 1000} s`);
    // fetch reports a refused or reset connection as a bare TypeError.
    if (err instanceof TypeError) throw new Error('cannot connect');
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/* The page-wide status from a page's polling state ({failures, refreshes,
 * failedTotal, lastOkAt}): the offline banner, the live dot and the counters
 * of refreshes that tests read to tell live values from placeholders. */
function tcpmsgRenderLive(state) {
  const offline = state.failures > 0;
  document.body.dataset.state = offline ? 'offline' : 'live';
  document.body.dataset.updated = String(state.refreshes);
  document.body.dataset.failed = String(state.failedTotal);
  document.getElementById('banner-offline').hidden = !offline;
  document.getElementById('live-text').textContent = offline ? 'not answering'
    : state.lastOkAt ? `live · ${state.lastOkAt.toLocaleTimeString()}` : 'connecting…';
}
