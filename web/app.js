// livecount dashboard: the top-N URLs with live counts, views, watchers,
// rates and sparklines.
//
// Data paths: GET /v1/top (polled) decides which rows exist, the SDK's
// subscriptions keep their counts live, GET /v1/stats (polled) fills the
// totals. Rendering: updates only mark rows dirty; one requestAnimationFrame
// writes the DOM (text only, no layout reads), and rates and sparklines are
// recomputed once a second, sparklines only for rows on screen. That keeps
// 1000 rows updating every tick smooth.
//
// Each row links to the URL's page (u.html?url=...); URLs are shortened in
// the middle (urlfmt.js). Totals are all-time sums from /v1/stats "totals"
// (the database's after a restart); likes_total / unlikes_total, what this
// process accepted since it started, are shown as such (see "A note on
// consistent totals" at pollStats). In cluster mode
// /v1/stats has "cluster" and the nodes panel shows it. A polite live region
// tells screen readers the counts of the first rows, at most every 5 s.
//
// The list is sorted by count, views or watching (the column header buttons,
// ?by=): GET /v1/top?by= picks the rows, the live figures order them. Views
// and watching come with every update (issue 19); "watching" includes this
// page's own subscription to each row.
//
// Query parameters: ?limit=N (rows, default 100), ?by=count|views|watching,
// ?transport=ws|sse|auto,
// ?server=http://host:port (another livecount; its /v1/* allow any origin).

import { createClient } from './sdk/livecount.js';
import { serverParam } from './params.js';
import { fillUrl, pageHref, splitUrl } from './urlfmt.js';

const POLL_MS = 2000;
const WINDOW_S = 60; // likes/s and sparkline window
const HISTORY_DELAY_MS = 1500; // a row's history is read this long after it appears (the batcher's flush)
const HISTORY_FETCHES = 2; // history requests in flight at most
const MAX_FLASH = 60; // animate changed counts only when few change at once
const ANNOUNCE_MS = 5000; // screen readers hear counts at most this often
const ANNOUNCE_ROWS = 3; // ... of the first rows (watched ones first)

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const server = serverParam(params); // only ever an http(s) URL: it goes into links
const client = createClient(server, { transport: params.get('transport') || 'auto' });
const fmt = new Intl.NumberFormat();
const fmtRate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1, minimumFractionDigits: 1 });
const list = $('rows');
const badge = $('badge');
const css = getComputedStyle(document.documentElement);
const sparkColor = css.getPropertyValue('--accent').trim() || '#c2185b';
const flashFrames = [{ color: css.getPropertyValue('--up').trim() || '#0a7d32' }, {}];
const dpr = Math.min(2, devicePixelRatio || 1);

let limit = Math.min(1000, Math.max(1, parseInt(params.get('limit'), 10) || 100));
const SORTS = { count: 'Most liked URLs', views: 'Most viewed URLs', watching: 'Most watched URLs' };
let by = Object.hasOwn(SORTS, params.get('by')) ? params.get('by') : 'count';
const watched = new Set(loadWatched());
const rows = new Map(); // url -> row
let order = []; // rows in DOM order
const dirty = new Set(); // rows whose count changed since the last frame
let secondDue = false; // rates and sparklines to recompute in the next frame
let frame = 0;

// ---- rows ---------------------------------------------------------------

const template = document.createElement('template');
template.innerHTML = '<div class="row" role="row"><span class="rank" role="cell"></span>' +
  '<span class="url" role="cell"><a></a></span><span class="num count" role="cell"></span>' +
  '<span class="num views" role="cell"></span><span class="num watching" role="cell"></span>' +
  '<span class="num rate" role="cell"></span><span class="spark" role="cell"><canvas></canvas></span>' +
  '<span class="act" role="cell"><button type="button" data-act="like" title="Like">♥ +1</button>' +
  '<button type="button" data-act="unlike" title="Unlike">−1</button>' +
  '<button type="button" data-act="unwatch" title="Stop watching">✕</button></span></div>';

const visible = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const row = e.target.row;
    row.visible = e.isIntersecting;
    if (row.visible) { row.sparkDirty = true; schedule(); }
  }
});

function addRow(url, count, views = null, watching = null) {
  const el = template.content.firstChild.cloneNode(true);
  const [rank, u, c, v, wa, rate, spark] = el.children;
  fillUrl(u.firstChild, url);
  u.firstChild.href = pageHref(url, params);
  el.dataset.url = url;
  const row = {
    url, el, rankEl: rank, countEl: c, viewsEl: v, watchingEl: wa, rateEl: rate, canvas: spark.firstChild,
    count: count ?? null, shown: null, shownRate: null, rank: 0,
    views, watching, shownViews: null, shownWatching: null,
    buckets: new Float64Array(WINDOW_S), sec: Math.floor(Date.now() / 1000),
    since: Date.now(), visible: false, sparkDirty: true, unsub: null, watched: watched.has(url),
    before: null, liveInFirstMinute: 0, spark: null,
  };
  row.canvas.width = 120 * dpr;
  row.canvas.height = 24 * dpr;
  el.row = row;
  row.unsub = client.subscribe(url, (n, info) => {
    row.count = n;
    row.views = info.views;
    row.watching = info.watching;
    if (!info.snapshot) {
      skewMs = info.ts - Date.now();
      addDelta(row, info.delta, info.ts);
    }
    dirty.add(row);
    schedule();
  });
  rows.set(url, row);
  visible.observe(el);
  dirty.add(row);
  wantHistory(row);
  return row;
}

function removeRow(row) {
  row.unsub();
  visible.unobserve(row.el);
  row.el.remove();
  rows.delete(row.url);
}

// ---- rates and sparklines ----------------------------------------------
//
// A note on the last minute: a row's likes/s and sparkline cover the last
// WINDOW_S seconds. What happened since the row appeared comes from the live
// updates, per second. What happened before (a burst just before the page
// opened) comes from the server: GET /v1/history, per minute, read once
// HISTORY_DELAY_MS after the row appeared (the batcher has flushed by then).
// A minute's likes that arrived live are taken out of its history figure,
// so nothing counts twice, and the rest is spread evenly over the seconds of
// that minute before the row appeared: the sparkline draws that part dashed
// (a minute's average, not its shape). Until the history is read, a young
// row shows no rate ("…") rather than a false 0. Rows older than a minute
// need no history. Minutes are the server's (its clock from the updates'
// timestamps).

let skewMs = 0; // server clock - local clock
const minuteOf = (sec) => Math.floor(sec / 60) * 60;

// Per-second buckets of net likes received live, a ring of WINDOW_S seconds.
function advance(row, sec) {
  const gap = Math.min(WINDOW_S, sec - row.sec);
  for (let i = 1; i <= gap; i++) row.buckets[(row.sec + i) % WINDOW_S] = 0;
  if (sec > row.sec) row.sec = sec;
}

function addDelta(row, delta, ts) {
  const sec = Math.floor(Date.now() / 1000);
  advance(row, sec);
  row.buckets[sec % WINDOW_S] += delta;
  const firstSrv = Math.ceil(row.since / 1000) + Math.round(skewMs / 1000);
  if (minuteOf(Math.floor(ts / 1000)) === minuteOf(firstSrv - 1)) row.liveInFirstMinute += delta;
}

// The WINDOW_S per-second values ending at local second `sec`, oldest first,
// and how many of the first ones come from history ({values, fromHistory}),
// or null while a young row's history is unknown.
function windowOf(row, sec) {
  const first = Math.ceil(row.since / 1000); // the first whole second seen live
  const start = sec - WINDOW_S + 1;
  if (start < first && !row.before) return null;
  const values = new Float64Array(WINDOW_S);
  let fromHistory = 0;
  const skew = Math.round(skewMs / 1000);
  const firstSrv = first + skew; // the same second on the server's clock
  const lastMin = minuteOf(firstSrv - 1); // the minute the row appeared in
  for (let i = 0; i < WINDOW_S; i++) {
    const s = start + i;
    if (s >= first) {
      values[i] = sec - s < WINDOW_S ? row.buckets[s % WINDOW_S] : 0;
      continue;
    }
    fromHistory = i + 1;
    const m = minuteOf(s + skew);
    let net = row.before.get(m) || 0;
    let secs = 60;
    if (m === lastMin) { // only its seconds before the row appeared, without the likes seen live
      net -= row.liveInFirstMinute;
      secs = firstSrv - m;
    }
    values[i] = net / secs;
  }
  return { values, fromHistory };
}

function rateOf(row, sec) {
  const w = windowOf(row, sec);
  if (!w) return null;
  let sum = 0;
  for (const v of w.values) sum += v;
  row.spark = w;
  return sum / WINDOW_S;
}

function drawSpark(row, sec) {
  const cv = row.canvas;
  const ctx = row.ctx || (row.ctx = cv.getContext('2d'));
  const w = cv.width, h = cv.height, pad = 2 * dpr;
  ctx.clearRect(0, 0, w, h);
  const win = windowOf(row, sec);
  row.spark = win;
  if (!win) return;
  const b = win.values;
  let lo = 0, hi = 1;
  for (const v of b) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const y = (v) => h - pad - ((v - lo) / (hi - lo)) * (h - 2 * pad);
  const step = w / (WINDOW_S - 1);
  const split = Math.max(0, win.fromHistory - 1);
  ctx.lineWidth = 1.5 * dpr;
  ctx.strokeStyle = sparkColor;
  for (const [from, to, dash] of [[0, split, [3 * dpr, 2 * dpr]], [split, WINDOW_S - 1, []]]) {
    if (to <= from) continue;
    ctx.beginPath();
    ctx.setLineDash(dash);
    for (let i = from; i <= to; i++) ctx.lineTo(i * step, y(b[i]));
    ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.beginPath();
  for (let i = 0; i < WINDOW_S; i++) ctx.lineTo(i * step, y(b[i]));
  ctx.lineTo(w, y(0));
  ctx.lineTo(0, y(0));
  ctx.globalAlpha = 0.15;
  ctx.fillStyle = sparkColor;
  ctx.fill();
  ctx.globalAlpha = 1;
}

// Rows waiting for their history, read HISTORY_FETCHES at a time, rows on
// screen first.
const historyWanted = new Set();
let historyBusy = 0, historyTimer = 0;
function wantHistory(row) {
  historyWanted.add(row);
  pumpHistory();
}

function pumpHistory() {
  clearTimeout(historyTimer);
  historyTimer = 0;
  const now = Date.now();
  let wait = Infinity;
  while (historyBusy < HISTORY_FETCHES && historyWanted.size) {
    let pick = null;
    for (const r of historyWanted) {
      if (rows.get(r.url) !== r || now - r.since > WINDOW_S * 1000) { historyWanted.delete(r); continue; } // gone, or all live now
      const due = r.since + HISTORY_DELAY_MS - now;
      if (due > 0) { wait = Math.min(wait, due); continue; }
      if (!pick || (r.visible && !pick.visible)) pick = r;
      if (pick.visible) break;
    }
    if (!pick) break;
    historyWanted.delete(pick);
    historyBusy++;
    loadHistory(pick).finally(() => { historyBusy--; pumpHistory(); });
  }
  if (historyWanted.size && wait !== Infinity && historyBusy < HISTORY_FETCHES) historyTimer = setTimeout(pumpHistory, wait + 10);
}

async function loadHistory(row) {
  const since = minuteOf(Math.floor((row.since + skewMs) / 1000)) - 120;
  try {
    const { points } = await getJson(`/v1/history?url=${encodeURIComponent(row.url)}&since=${since}`);
    const before = new Map();
    for (const p of points || []) before.set(Math.floor(Date.parse(p.t) / 1000), (p.likes || 0) - (p.unlikes || 0));
    row.before = before;
  } catch {
    row.before = new Map(); // unknown past: the live part only, shown as such
  }
  row.sparkDirty = true;
  secondDue = true;
  schedule();
}

// ---- rendering ----------------------------------------------------------

function schedule() {
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  const flash = dirty.size <= MAX_FLASH;
  for (const row of dirty) {
    if (row.views !== row.shownViews && row.views !== null) row.viewsEl.textContent = fmt.format(row.shownViews = row.views);
    if (row.watching !== row.shownWatching && row.watching !== null) row.watchingEl.textContent = fmt.format(row.shownWatching = row.watching);
    if (row.count === row.shown || row.count === null) continue;
    const up = row.shown !== null && row.count > row.shown;
    row.shown = row.count;
    row.countEl.textContent = fmt.format(row.count);
    if (flash && up) row.countEl.animate(flashFrames, 700);
    if (row.rank <= ANNOUNCE_ROWS || row.watched) announceSoon();
  }
  dirty.clear();
  if (secondDue) {
    secondDue = false;
    const sec = Math.floor(Date.now() / 1000);
    for (const row of order) {
      advance(row, sec);
      const rate = rateOf(row, sec);
      const text = rate === null ? '…' : fmtRate.format(rate);
      if (text !== row.shownRate) row.rateEl.textContent = row.shownRate = text;
      row.sparkDirty = !row.visible;
      if (row.visible) drawSpark(row, sec);
    }
  } else {
    const sec = Math.floor(Date.now() / 1000);
    for (const row of order) {
      if (row.visible && row.sparkDirty) { row.sparkDirty = false; advance(row, sec); drawSpark(row, sec); }
    }
  }
}

setInterval(() => { secondDue = true; schedule(); }, 1000);

// Order: watched URLs first, then by the sort key (count, views or
// watching; ties by URL); the DOM is touched only when the order really
// changed. The rank is the place by that key among all rows.
function reorder() {
  const key = (r) => r[by] ?? -Infinity;
  const byKey = (a, b) => (key(b) - key(a)) || (a.url < b.url ? -1 : 1);
  const ranked = [...rows.values()].sort(byKey);
  ranked.forEach((r, i) => {
    if (r.rank !== i + 1) r.rankEl.textContent = r.rank = i + 1;
    r.el.classList.toggle('watched', r.watched);
  });
  const next = ranked.filter((r) => r.watched).concat(ranked.filter((r) => !r.watched));
  const same = next.length === order.length && next.every((r, i) => r === order[i]);
  order = next;
  if (!same) list.replaceChildren(...next.map((r) => r.el));
  $('empty').hidden = next.length > 0;
}

// ---- polling ------------------------------------------------------------

async function getJson(path) {
  const res = await fetch(server + path, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

async function pollTop() {
  try {
    const asked = by;
    const { top } = await getJson(`/v1/top?limit=${limit}${asked === 'count' ? '' : `&by=${asked}`}`);
    if (asked !== by) return; // the sort changed meanwhile: its own poll follows
    const want = new Map(top.map((t) => [t.url, t]));
    for (const url of watched) if (!want.has(url)) want.set(url, null);
    for (const row of [...rows.values()]) if (!want.has(row.url)) removeRow(row);
    for (const [url, t] of want) {
      const row = rows.get(url) || addRow(url, t?.count, t?.views ?? null, t?.watching ?? null);
      row.watched = watched.has(url);
      if (!t) continue;
      // Figures not yet known live come from the list.
      if (row.count === null && t.count !== undefined) { row.count = t.count; dirty.add(row); }
      if (row.views === null && t.views !== undefined) { row.views = t.views; dirty.add(row); }
      if (row.watching === null && t.watching !== undefined) { row.watching = t.watching; dirty.add(row); }
    }
    reorder();
    schedule();
    setStale('top', false);
  } catch (e) {
    setStale('top', true);
  }
}

// A note on consistent totals: in one /v1/stats answer, "totals" (all time)
// are as of the last tick while likes_total / unlikes_total (since start)
// count what was accepted up to now, so during a like loop "likes, all time
// 293" sat above "294 since start". The all-time figure shown is the
// freshest lower bound of the truth the answers give: what existed before
// the counting behind likes_total (`base`, the largest totals - since-start
// difference seen: the pending likes only ever make it smaller) plus
// likes_total, and never less than the reported total or than since-start.
// The count is then likes - unlikes as shown, so the three agree.
const base = { likes: -Infinity, unlikes: -Infinity, views: -Infinity };
function allTime(tot, sinceStart, key) {
  if (tot === undefined) return undefined;
  const started = sinceStart ?? 0;
  base[key] = Math.max(base[key], tot - started);
  return Math.max(tot, started, base[key] + started);
}

async function pollStats() {
  try {
    const s = await getJson('/v1/stats');
    const ws = s.connections?.ws ?? 0, sse = s.connections?.sse ?? 0;
    const tot = s.totals || {};
    const likes = allTime(tot.likes, s.likes_total, 'likes');
    const unlikes = allTime(tot.unlikes, s.unlikes_total, 'unlikes');
    const views = allTime(tot.views, s.views_total, 'views');
    const count = likes === undefined || unlikes === undefined ? tot.count : likes - unlikes;
    $('t-rate').textContent = fmtRate.format(s.likes_per_s ?? 0);
    $('t-count').textContent = count === undefined ? '–' : fmt.format(count);
    $('t-likes').textContent = likes === undefined ? '–' : fmt.format(likes);
    $('t-unlikes').textContent = unlikes === undefined ? '–' : fmt.format(unlikes);
    $('t-likes-start').textContent = `${fmt.format(s.likes_total ?? 0)} since start`;
    $('t-unlikes-start').textContent = `${fmt.format(s.unlikes_total ?? 0)} since start`;
    $('t-views').textContent = views === undefined ? '–' : fmt.format(views);
    $('t-views-start').textContent = s.views_total === undefined ? '' : `${fmt.format(s.views_total)} since start`;
    $('t-clients').textContent = fmt.format(ws + sse);
    $('t-split').textContent = `ws ${fmt.format(ws)} · sse ${fmt.format(sse)}`;
    $('t-urls').textContent = fmt.format(s.urls ?? 0);
    $('t-subs').textContent = fmt.format(s.subscriptions ?? 0);
    renderCluster(s.cluster);
    setStale('stats', false);
  } catch (e) {
    setStale('stats', true);
  }
}

// Cluster mode only: {node_id, link, nodes: [{id, self, link, last_push_age_ms}]}.
function renderCluster(c) {
  const panel = $('cluster');
  panel.hidden = !c;
  if (!c) return;
  $('cluster-self').textContent = `this is node ${c.node_id}, link ${c.link}`;
  const tb = $('cluster-rows');
  const trs = (c.nodes || []).map((n) => {
    const tr = document.createElement('tr');
    const age = n.last_push_age_ms;
    const ageText = age === undefined || age === null ? '–' : age < 10000 ? `${fmt.format(age)} ms ago` : `${fmt.format(Math.round(age / 1000))} s ago`;
    for (const [text, cls] of [[`${n.id}${n.self ? ' (this node)' : ''}`, ''], [n.link, `link-${n.link}`], [ageText, '']]) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    tr.dataset.node = n.id;
    return tr;
  });
  tb.replaceChildren(...trs);
}

// ---- screen readers -----------------------------------------------------

let announced = '', announceAt = 0, announceTimer = 0;
function announceSoon() {
  if (announceTimer) return;
  announceTimer = setTimeout(() => {
    announceTimer = 0;
    const text = order.slice(0, ANNOUNCE_ROWS).filter((r) => r.count !== null)
      .map((r) => { const { head, tail } = splitUrl(r.url); return `${head}${tail}: ${fmt.format(r.count)}`; }).join('; ');
    if (!text || text === announced) return;
    announced = text;
    announceAt = Date.now();
    $('announce').textContent = text;
  }, Math.max(0, announceAt + ANNOUNCE_MS - Date.now()));
}

// The full URL of a focused row link (hover has the title).
const tip = $('tip');
list.addEventListener('focusin', (ev) => {
  const a = ev.target.closest?.('a.short');
  if (!a) return;
  const r = a.getBoundingClientRect();
  tip.textContent = a.title;
  tip.style.left = `${Math.max(4, r.left)}px`;
  tip.style.top = `${r.bottom + 4}px`;
  tip.hidden = false;
});
list.addEventListener('focusout', () => { tip.hidden = true; });
addEventListener('scroll', () => { tip.hidden = true; }, { passive: true });

function poll() {
  pollTop();
  pollStats();
}
setInterval(poll, POLL_MS);

// ---- connection badge ---------------------------------------------------

const stale = new Set();
function setStale(what, on) {
  if (on) stale.add(what); else stale.delete(what);
  $('totals').classList.toggle('stale', stale.has('stats') || stale.has('live'));
  $('table').classList.toggle('stale', stale.has('top') || stale.has('live'));
}

let badgeTimer = 0;
function updateBadge() {
  const s = client.state;
  let text, state = s;
  if (!navigator.onLine) { state = 'offline'; text = 'offline'; }
  else if (s === 'connected') text = `connected · ${client.transport}`;
  else if (s === 'connecting') text = 'connecting…';
  else if (client.retryAt) text = `reconnecting in ${Math.ceil(client.retryInMs / 1000)} s`;
  else { state = 'offline'; text = 'offline'; }
  if (badge.textContent !== text) badge.textContent = text;
  badge.dataset.state = state;
  badge.title = s === 'disconnected' && client.retryAt ? 'Click to reconnect now' : 'Connection to the server';
  setStale('live', s !== 'connected');
  clearInterval(badgeTimer);
  if (s === 'disconnected') badgeTimer = setInterval(updateBadge, 250);
}
client.on('state', (s) => {
  updateBadge();
  if (s === 'connected' && stale.size) poll(); // back: refresh what went stale at once
});
// Server error frames. The SDK spreads the rows over WebSockets of 100 URLs
// (the server's default max_subs_per_conn); a server configured lower answers
// too_many_subscriptions, shown here.
client.on('error', (e) => { if (e.code) say(`server: ${e.code} (${e.message})`); });
addEventListener('online', updateBadge);
addEventListener('offline', updateBadge);
badge.addEventListener('click', () => { client.connect(); poll(); });

// ---- user actions -------------------------------------------------------

let msgTimer = 0;
function say(text) {
  const m = $('msg');
  m.textContent = text;
  m.hidden = false;
  clearTimeout(msgTimer);
  msgTimer = setTimeout(() => { m.hidden = true; }, 5000);
}

list.addEventListener('click', async (ev) => {
  const btn = ev.target.closest('button');
  const el = btn?.closest('.row');
  if (!el) return;
  const row = el.row;
  const act = btn.dataset.act;
  if (act === 'unwatch') {
    watched.delete(row.url);
    saveWatched();
    row.watched = false;
    pollTop();
    return;
  }
  try {
    const r = await (act === 'like' ? client.like(row.url) : client.unlike(row.url));
    // The reply is at least as new as the last update: show it at once.
    if (rows.get(row.url) === row && client.state !== 'connected') { row.count = r.count; dirty.add(row); schedule(); }
  } catch (e) {
    say(`${act} failed: ${e.code}${e.message && e.message !== e.code ? ` (${e.message})` : ''}`);
  }
});

$('watch').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('watch-url');
  const url = input.value.trim();
  if (!url) return;
  if (ev.submitter?.value === 'page') {
    location.href = pageHref(url, params);
    return;
  }
  const row = rows.get(url);
  try {
    if (!row) addRow(url, null).watched = true;
    else row.watched = true;
  } catch (e) {
    say(e.message);
    return;
  }
  watched.add(url);
  saveWatched();
  input.value = '';
  reorder();
  schedule();
});

// Sorting: the count, views and watching column headers.
function setSort(key) {
  by = key;
  for (const h of document.querySelectorAll('.row.head [role=columnheader][data-by]')) {
    h.setAttribute('aria-sort', h.dataset.by === by ? 'descending' : 'none');
  }
  $('table').setAttribute('aria-label', SORTS[by]);
  $('table').dataset.by = by;
}
document.querySelector('.row.head').addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-by]');
  if (!b || b.dataset.by === by) return;
  setSort(b.dataset.by);
  if (by === 'count') params.delete('by'); else params.set('by', by);
  history.replaceState(null, '', '?' + params);
  reorder();
  pollTop();
});
setSort(by);

const limitSel = $('limit');
if (![...limitSel.options].some((o) => +o.value === limit)) limitSel.add(new Option(String(limit)));
limitSel.value = String(limit);
limitSel.addEventListener('change', () => {
  limit = +limitSel.value;
  params.set('limit', String(limit));
  history.replaceState(null, '', '?' + params);
  pollTop();
});

function loadWatched() {
  try { return JSON.parse(localStorage.getItem('livecount.watched')) || []; } catch { return []; }
}
function saveWatched() {
  try { localStorage.setItem('livecount.watched', JSON.stringify([...watched])); } catch { /* private mode */ }
}

$('origin').textContent = server;
client.connect();
updateBadge();
poll();

// For tests and the console.
globalThis.livecount = { client, rows };
