// The page of one URL: u.html?url=U[&range=1h|24h|7d][&server=...][&transport=...]
//
// Live count, views and watching through the SDK; likes and unlikes totals
// and updated_at from GET /v1/counts (refreshed after changes, at most once
// a second); the history chart from GET /v1/history, per minute (likes,
// unlikes, views and the audience peak watching_max), summed client-side
// into 5-minute and hourly buckets for the wider ranges (chart.js).
//
// The current minute: the database holds a minute once the batcher flushed
// it (about a second later), so the last bar is kept live from the updates:
// each update's delta goes into the minute of its server timestamp (likes if
// positive, unlikes if negative; a tick nets both, the next read of the
// database corrects that), its views' growth too, and the watching figure
// raises that minute's audience peak. When a minute is over (by the server's clock,
// estimated from the updates) the page re-reads the last minutes, and every
// 30 s anyway. A minute re-read well after it ended replaces what the page
// had; a younger one only raises it (both are lower bounds of the truth).

import { createClient } from './sdk/livecount.js';
import { HISTORY_MAX_POINTS, ZOOMS, bucketize, rangeOf, renderChart } from './chart.js';
import { carriedParams, serverParam } from './params.js';
import { attr } from './urlfmt.js';

const RATE_WINDOW_MS = 10000;
const ANNOUNCE_MS = 5000; // screen readers hear the count at most this often
const SETTLED_S = 5; // a minute read this long after its end is final

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const url = params.get('url');
const server = serverParam(params); // only ever an http(s) URL: it goes into links
const fmt = new Intl.NumberFormat();
const fmtRate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1, minimumFractionDigits: 1 });
// 24-hour like the chart's axis (chart.js), whatever the locale's habit.
const fmtTime = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
const fmtDay = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', year: 'numeric' });

let zoom = ZOOMS[params.get('range')] ? params.get('range') : '1h';
let skewMs = 0; // server clock - local clock, from the updates' timestamps
const nowSec = () => (Date.now() + skewMs) / 1000;
const minuteOf = (sec) => Math.floor(sec / 60) * 60;

const minutes = new Map(); // minute start (Unix s) -> {likes, unlikes, views, watching_max}
let loadedSince = Infinity; // history is loaded from here to now
let readAt = 0; // minute of the last successful read up to now (catch-up after a disconnection)
let curMinute = minuteOf(nowSec());
let count = null;
let views = null;
let watching = null;
let updatedAt = null;
const recent = []; // [local ms, delta] of the last RATE_WINDOW_MS

async function getJson(path) {
  const res = await fetch(server + path, { cache: 'no-store' });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(body?.message || `${path}: HTTP ${res.status}`);
  return body;
}

// ---- history ------------------------------------------------------------

// Read [since, until) into `minutes`, asking again when an answer is full.
async function fetchRange(since, until) {
  const asked = nowSec();
  const got = new Map();
  for (let from = since; from < until;) {
    const q = new URLSearchParams({ url, since: String(from), until: String(until) });
    const { points } = await getJson(`/v1/history?${q}`);
    for (const p of points) got.set(Date.parse(p.t) / 1000, p);
    if (points.length < HISTORY_MAX_POINTS) break;
    from = Date.parse(points.at(-1).t) / 1000 + 60;
  }
  for (let m = since; m < until; m += 60) {
    const db = got.get(m);
    if (m + 60 + SETTLED_S <= asked) { // final in the database
      if (db) minutes.set(m, { likes: db.likes, unlikes: db.unlikes, views: db.views ?? 0, watching_max: db.watching_max ?? 0 });
      else minutes.delete(m);
    } else if (db) {
      const p = minutes.get(m);
      const most = (k) => Math.max(db[k] ?? 0, p?.[k] ?? 0);
      minutes.set(m, { likes: most('likes'), unlikes: most('unlikes'), views: most('views'), watching_max: most('watching_max') });
    }
  }
}

let loading = null;
async function ensureLoaded() {
  const { since, until } = rangeOf(zoom, nowSec());
  if (since >= loadedSince) return;
  const to = loadedSince === Infinity ? until : loadedSince;
  chart.dataset.state = 'loading';
  try {
    const m = minuteOf(nowSec());
    await fetchRange(since, to);
    if (to === until) readAt = m;
    loadedSince = Math.min(loadedSince, since);
  } catch (e) {
    say(`history: ${e.message}`);
    chart.dataset.state = 'error';
    return;
  }
}

function load() {
  const z = zoom;
  loading = (loading || Promise.resolve()).then(ensureLoaded).then(() => {
    if (z === zoom && chart.dataset.state !== 'error') chart.dataset.state = 'ready';
    draw();
    settle(); // the current minute again, once the batcher flushed what came before the page
  });
  return loading;
}

// The last minutes again: after a minute ended, after changes, every 30 s.
let tailTimer = 0, tailBusy = false;
function refreshTail(delayMs) {
  if (tailTimer) return;
  tailTimer = setTimeout(async () => {
    tailTimer = 0;
    if (loadedSince === Infinity) return;
    if (tailBusy) { refreshTail(500); return; }
    tailBusy = true;
    const m = minuteOf(nowSec());
    try {
      // The last minutes, or everything since the last read after a long disconnection.
      await fetchRange(Math.max(loadedSince, Math.min(m - 180, readAt - 120)), m + 60);
      readAt = m;
      draw();
    } catch { /* the next one */ }
    tailBusy = false;
  }, delayMs);
}

// After changes: read the last minutes once the batcher has probably flushed
// them (default every second), and again later for slower flush settings.
let lateTimer = 0;
function settle() {
  refreshTail(1500);
  if (!lateTimer) lateTimer = setTimeout(() => { lateTimer = 0; refreshTail(0); }, 5000);
}

// ---- chart --------------------------------------------------------------

const chart = $('chart');
const chartBox = $('chart-box');
let width = 0;
let drawFrame = 0;

function draw() {
  if (!drawFrame) drawFrame = requestAnimationFrame(drawNow);
}

function drawNow() {
  drawFrame = 0;
  if (!width) return;
  const height = width < 520 ? 190 : 240;
  const b = bucketize(minutes, zoom, nowSec());
  chart.setAttribute('viewBox', `0 0 ${width} ${height}`);
  chart.setAttribute('width', width);
  chart.setAttribute('height', height);
  chart.innerHTML = renderChart(b, { zoom, width, height });
  chart.dataset.zoom = zoom;
  let likes = 0, unlikes = 0, vs = 0, peak = 0;
  for (const p of b) { likes += p.likes; unlikes += p.unlikes; vs += p.views; peak = Math.max(peak, p.watching_max); }
  const z = ZOOMS[zoom];
  $('sum').textContent = `${z.label[0].toUpperCase()}${z.label.slice(1)}: ${fmt.format(likes)} like${likes === 1 ? '' : 's'}, ` +
    `${fmt.format(unlikes)} unlike${unlikes === 1 ? '' : 's'}, ${fmt.format(vs)} view${vs === 1 ? '' : 's'}, ` +
    `audience peak ${fmt.format(peak)}; bars per ${z.unit}.`;
  $('per').textContent = `one bar per ${z.unit}`;
  $('sum').dataset.views = vs;
  $('sum').dataset.peak = peak;
}

new ResizeObserver((entries) => {
  const w = Math.floor(entries[0].contentRect.width);
  if (w !== width) { width = w; draw(); }
}).observe(chartBox);

function setZoom(z, focus) {
  if (!ZOOMS[z]) return;
  zoom = z;
  for (const b of document.querySelectorAll('.zoom button')) b.setAttribute('aria-pressed', String(b.dataset.zoom === z));
  params.set('range', z);
  history.replaceState(null, '', '?' + params);
  load();
  if (focus) focus.focus();
}

// ---- live count, rate, totals ---------------------------------------------

function addLive(ts, delta, viewsDelta = 0, watchingNow = 0) {
  const m = minuteOf(ts / 1000);
  const p = minutes.get(m) || { likes: 0, unlikes: 0, views: 0, watching_max: 0 };
  if (delta > 0) p.likes += delta; else p.unlikes -= delta;
  if (viewsDelta > 0) p.views = (p.views || 0) + viewsDelta;
  p.watching_max = Math.max(p.watching_max || 0, watchingNow);
  minutes.set(m, p);
  recent.push([Date.now(), delta]);
  showRate();
  if (m > curMinute) rollover(m);
  draw();
}

function rollover(m) {
  curMinute = m;
  draw();
  settle(); // the minute that ended, once the batcher flushed it
}

function showRate() {
  const cut = Date.now() - RATE_WINDOW_MS;
  while (recent.length && recent[0][0] < cut) recent.shift();
  let sum = 0;
  for (const [, d] of recent) sum += d;
  $('rate').textContent = fmtRate.format(sum / (RATE_WINDOW_MS / 1000));
}

function showUpdated() {
  if (!updatedAt) { $('updated').textContent = 'never'; $('updated-ago').textContent = ''; return; }
  const d = new Date(updatedAt);
  const el = $('updated');
  if (el.dataset.iso !== updatedAt) {
    el.dataset.iso = updatedAt;
    const today = new Date().toDateString() === d.toDateString();
    el.textContent = today ? fmtTime.format(d) : `${fmtDay.format(d)} ${fmtTime.format(d)}`;
    el.title = updatedAt;
  }
  const s = Math.max(0, Math.round((Date.now() + skewMs - d) / 1000));
  $('updated-ago').textContent = s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` :
    s < 86400 ? `${Math.floor(s / 3600)} h ago` : `${Math.floor(s / 86400)} d ago`;
}

let countsTimer = 0, countsAt = 0;
function refreshCounts() {
  if (countsTimer) return;
  countsTimer = setTimeout(async () => {
    countsTimer = 0;
    countsAt = Date.now();
    try {
      const { counts } = await getJson(`/v1/counts?url=${encodeURIComponent(url)}`);
      const c = counts[url];
      $('likes').textContent = fmt.format(c.likes);
      $('unlikes').textContent = fmt.format(c.unlikes);
      // Live figures win; these fill in before the first one (or from a server without them).
      if (views === null && c.views !== undefined) showStats(c.views, watching ?? c.watching);
      updatedAt = c.updated_at;
      showUpdated();
      if (count === null) showCount(c.count);
    } catch (e) {
      say(`counts: ${e.message}`);
    }
  }, Math.max(0, countsAt + 1000 - Date.now()));
}

// Views and watching now, from the updates (the latter as the server last
// published it, at most watching_interval_ms old; this page is one of them).
function showStats(v, w) {
  if (v !== null && v !== undefined && v !== views) $('views').textContent = fmt.format(views = v);
  if (w !== null && w !== undefined && w !== watching) $('watching').textContent = fmt.format(watching = w);
}

let announced = null, announceAt = 0, announceTimer = 0;
function showCount(n) {
  count = n;
  $('count').textContent = fmt.format(n);
  document.title = `${fmt.format(n)} · ${url} · livecount`;
  // Polite and rare: the latest count, at most once per ANNOUNCE_MS.
  if (!announceTimer && n !== announced) {
    announceTimer = setTimeout(() => {
      announceTimer = 0;
      if (count === announced) return;
      announced = count;
      announceAt = Date.now();
      $('announce').textContent = `Count ${fmt.format(count)}`;
    }, Math.max(0, announceAt + ANNOUNCE_MS - Date.now()));
  }
}

// ---- page ---------------------------------------------------------------

let client;
let msgTimer = 0;
function say(text) {
  const m = $('msg');
  m.textContent = text;
  m.hidden = false;
  clearTimeout(msgTimer);
  msgTimer = setTimeout(() => { m.hidden = true; }, 6000);
}

function updateBadge() {
  const badge = $('badge');
  const s = client.state;
  let text, state = s;
  if (s === 'connected') text = `connected · ${client.transport}`;
  else if (s === 'connecting') text = 'connecting…';
  else if (client.retryAt) text = `reconnecting in ${Math.ceil(client.retryInMs / 1000)} s`;
  else { state = 'offline'; text = 'offline'; }
  if (badge.textContent !== text) badge.textContent = text;
  badge.dataset.state = state;
  $('page').classList.toggle('stale-live', s !== 'connected');
}

function start() {
  $('page').hidden = false;
  $('url').textContent = url;
  const back = carriedParams(params);
  const home = String(back) ? `./?${back}` : './';
  $('back').href = home;
  $('home').href = home;
  document.title = `${url} · livecount`;
  $('json').href = `${server}/v1/history?url=${encodeURIComponent(url)}`;
  $('json-item').hidden = false;
  $('snippet').textContent = `<script type="module" src="${server}/sdk/live-count.js"></script>\n` +
    `<live-count url="${attr(url)}" button></live-count>`;

  client = createClient(server, { transport: params.get('transport') || 'auto' });
  try {
    client.subscribe(url, (n, info) => {
      if (!info.snapshot) {
        skewMs = info.ts - Date.now();
        addLive(info.ts, info.delta, info.viewsDelta, info.watching);
        if (info.delta || info.viewsDelta) settle();
      }
      showCount(n);
      showStats(info.views, info.watching);
      if (info.snapshot || info.delta || info.viewsDelta) refreshCounts(); // not for a watching change alone
    });
  } catch (e) {
    say(e.message); // not a URL livecount accepts
    return;
  }
  client.on('state', (s) => {
    updateBadge();
    if (s === 'connected') { // (back) online: catch up at once
      refreshCounts();
      if (loadedSince === Infinity) load(); else refreshTail(0);
    }
  });
  client.on('error', (e) => { if (e.code) say(`server: ${e.code} (${e.message})`); });
  $('badge').addEventListener('click', () => client.connect());
  client.connect();
  updateBadge();

  for (const [id, fn] of [['like', 'like'], ['unlike', 'unlike']]) {
    $(id).addEventListener('click', async () => {
      try {
        const r = await client[fn](url);
        if (client.state !== 'connected') showCount(r.count);
      } catch (e) {
        say(`${fn} failed: ${e.code}${e.message && e.message !== e.code ? ` (${e.message})` : ''}`);
      }
    });
  }
  for (const b of document.querySelectorAll('.zoom button')) b.addEventListener('click', () => setZoom(b.dataset.zoom));
  // Arrow keys move between the range buttons.
  $('history-h').parentElement.addEventListener('keydown', (ev) => {
    const bs = [...document.querySelectorAll('.zoom button')];
    const i = bs.indexOf(document.activeElement);
    if (i < 0 || (ev.key !== 'ArrowLeft' && ev.key !== 'ArrowRight')) return;
    const j = (i + (ev.key === 'ArrowRight' ? 1 : bs.length - 1)) % bs.length;
    setZoom(bs[j].dataset.zoom, bs[j]);
  });
  $('copy').addEventListener('click', copySnippet);

  setZoom(zoom);
  refreshCounts();
  setInterval(() => {
    const m = minuteOf(nowSec());
    if (m > curMinute) rollover(m);
    showRate();
    showUpdated();
  }, 1000);
  setInterval(() => refreshTail(0), 30000);
  setInterval(refreshCounts, 10000);
  showRate();
}

async function copySnippet() {
  const text = $('snippet').textContent;
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    // No clipboard API (plain http from another host): select it for Ctrl+C.
    const r = document.createRange();
    r.selectNodeContents($('snippet'));
    getSelection().removeAllRanges();
    getSelection().addRange(r);
    ok = document.execCommand?.('copy') ?? false;
  }
  $('copied').textContent = ok ? 'Copied.' : 'Selected: press Ctrl+C.';
  setTimeout(() => { $('copied').textContent = ''; }, 3000);
}

// ---- no URL: ask for one -------------------------------------------------

if (!url) {
  $('pick').hidden = false;
  $('pick').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const u = $('pick-url').value.trim();
    if (u) { params.set('url', u); location.search = '?' + params; }
  });
  $('badge').hidden = true;
  $('pick-url').focus();
} else {
  start();
}

// For tests and the console.
globalThis.livecountPage = { get client() { return client; }, minutes, url };
