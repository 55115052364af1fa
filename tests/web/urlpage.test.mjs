// The URL page (web/u.html), the dashboard's all-time totals, small screens,
// screen-reader announcements and the cluster panel, in headless Chromium
// against a real livecount whose database was seeded with 8 days of
// per-minute history before it started. Writes url-page.png,
// url-page-phone.png and dashboard-phone.png to $LC_SCREENSHOT_DIR.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  countHttp, http, launchBrowser, likeHttp, openPage, repoRoot, seedHistory, sleep, sqlite, startServer, uniqueUrl, waitFor,
} from './helpers.mjs';

const shotDir = resolve(process.env.LC_SCREENSHOT_DIR || join(repoRoot, 'build'));

const LONG = 'https://news.example.com/2026/11/25/world/a-rather-long-article-slug-about-counting-likes-live';
const SHORT = 'https://example.com/blog/hello-world';
const ZOOM = { '1h': { step: 60, count: 60 }, '24h': { step: 300, count: 288 }, '7d': { step: 3600, count: 168 } };

// Deterministic per-minute history: a daily wave, noise, empty minutes, a
// spike half an hour ago and a busy afternoon three days ago; unlikes now and then.
function history(nowMin, seed) {
  const out = [];
  for (let m = nowMin - 8 * 86400; m < nowMin - 120; m += 60) {
    const h = Math.imul((m / 60) ^ seed, 2654435761) >>> 0;
    if (h % 5 === 0) continue; // minutes without likes have no row
    const day = 0.5 + 0.5 * Math.sin((2 * Math.PI * (m % 86400)) / 86400);
    let likes = Math.round(1 + 6 * day + 4 * Math.abs(Math.sin(m / 420)) + (h % 3));
    const ago = nowMin - m;
    if (ago >= 28 * 60 && ago < 31 * 60) likes += 40;
    if (ago >= 3 * 86400 && ago < 3 * 86400 + 4 * 3600) likes *= 3;
    const unlikes = h % 7 === 0 ? 1 + (h % 3) : 0;
    out.push([m, likes, unlikes]);
  }
  return out;
}

const nowMin = Math.floor(Date.now() / 60000) * 60;
const seeds = [
  { url: LONG, minutes: history(nowMin, 1) },
  { url: SHORT, minutes: history(nowMin, 2).filter(([m]) => m % 180 === 0) },
];
const sum = (ms, i) => ms.reduce((a, p) => a + p[i], 0);

let srv, browser;

before(async () => {
  srv = await startServer(); // creates the database with its schema
  await srv.stop();
  seedHistory(srv.db, seeds);
  await srv.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await srv?.dispose();
});

// A page of this server in its own context, every problem recorded (helpers.mjs).
const open = (t, path, opts) => openPage(browser, t, path && srv.base + path, opts);

const pageOf = (url, extra = '') => `/u.html?url=${encodeURIComponent(url)}${extra}`;
const num = (s) => Number(String(s).replace(/[^\d-]/g, ''));
const text = (page, sel) => page.locator(sel).textContent();

/**
 * Leave at least `s` seconds before the next minute starts (waits at most
 * s + 2 seconds): past a minute's start by 1.5 s, a page has moved on (it
 * checks the clock every second).
 */
async function awayFromMinuteEdge(s) {
  const left = 60 - (Date.now() / 1000) % 60;
  if (left < s) await sleep(left * 1000 + 1500);
}

/** What the chart shows: [t, likes, unlikes] per bucket, oldest first. */
const chartPoints = (page) => page.$$eval('#chart g.pt', (gs) => gs.map((g) => [+g.dataset.t, +g.dataset.likes, +g.dataset.unlikes]));

async function chartReady(page, zoom) {
  await waitFor(async () => (await page.locator('#chart').getAttribute('data-state')) === 'ready' &&
    (await page.locator('#chart').getAttribute('data-zoom')) === zoom, { what: `chart ready at ${zoom}` });
}

/** Sum [t, likes, unlikes] minutes into `count` buckets of `step` s, the last holding nowSec (as the page should). */
function buckets(minutes, step, count, nowSec) {
  const since = Math.floor(nowSec / step) * step - (count - 1) * step;
  const out = Array.from({ length: count }, (_, i) => [since + i * step, 0, 0]);
  for (const [m, l, u] of minutes) {
    const i = Math.floor((m - since) / step);
    if (i >= 0 && i < count) { out[i][1] += l; out[i][2] += u; }
  }
  return out;
}

/** GET /v1/history over [since, until), following full answers; [t, likes, unlikes]. */
async function historyHttp(url, since, until) {
  const all = [];
  for (let from = since; ;) {
    const r = await http(srv.base, 'GET', `/v1/history?url=${encodeURIComponent(url)}&since=${from}&until=${until}`);
    assert.equal(r.status, 200, r.text);
    const pts = r.body.points.map((p) => [Date.parse(p.t) / 1000, p.likes, p.unlikes]);
    all.push(...pts);
    if (pts.length < 10080) return all;
    from = pts.at(-1)[0] + 60;
  }
}

test('the URL page is served and linked from the dashboard rows and the watch box', async (t) => {
  const r = await http(srv.base, 'GET', pageOf(LONG));
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/html/);
  const page = await open(t, '/');
  const link = page.locator(`#rows [data-url="${LONG}"] .url a`);
  await waitFor(() => link.count(), { what: 'row of the seeded URL' });
  assert.equal(await link.getAttribute('href'), `u.html?url=${encodeURIComponent(LONG)}`);
  await link.click();
  await page.waitForURL(/\/u\.html\?url=/);
  assert.equal(await text(page, '#url'), LONG);

  await page.goto(`${srv.base}/`);
  await page.fill('#watch-url', SHORT);
  await page.click('#watch button[value=page]');
  await page.waitForURL(/\/u\.html\?url=/);
  assert.equal(new URL(page.url()).searchParams.get('url'), SHORT);
  assert.deepEqual(page.problems, []);
});

test('URL page: live count, totals and a chart matching /v1/history at each zoom', async (t) => {
  const [{ minutes }] = seeds;
  const page = await open(t, pageOf(LONG));
  const likes = sum(minutes, 1), unlikes = sum(minutes, 2);
  await waitFor(async () => num(await text(page, '#count')) === likes - unlikes, { what: 'live count' });
  await waitFor(async () => num(await text(page, '#likes')) === likes, { what: 'likes total' });
  assert.equal(num(await text(page, '#unlikes')), unlikes);
  assert.notEqual(await text(page, '#updated'), 'never');
  assert.equal(await page.locator('#updated').getAttribute('title'),
    new Date((minutes.at(-1)[0] + 59) * 1000 + 123).toISOString(), 'updated_at of the seeded counter');
  await waitFor(async () => (await page.locator('#badge').getAttribute('data-state')) === 'connected', { what: 'badge connected' });

  for (const zoom of ['1h', '24h', '7d']) {
    await awayFromMinuteEdge(8);
    if (zoom !== '1h') await page.click(`.zoom button[data-zoom="${zoom}"]`);
    await chartReady(page, zoom);
    assert.equal(await page.locator(`.zoom button[data-zoom="${zoom}"]`).getAttribute('aria-pressed'), 'true');
    const { step, count } = ZOOM[zoom];
    const nowSec = Date.now() / 1000;
    const shown = await chartPoints(page);
    const want = buckets(minutes, step, count, nowSec);
    const fromApi = buckets(await historyHttp(LONG, want[0][0], Math.floor(nowSec / 60) * 60 + 60), step, count, nowSec);
    assert.equal(shown.length, count, `${zoom}: ${count} buckets`);
    assert.deepEqual(fromApi, want, `${zoom}: /v1/history gives back the seeded minutes`);
    assert.deepEqual(shown, want, `${zoom}: the chart's buckets`);
    assert.ok(want.filter((b) => b[1] > 0).length > count / 2, `${zoom}: most buckets have likes`);
    assert.ok(want.some((b) => b[2] > 0), `${zoom}: some have unlikes`);
    // Likes above the zero line, unlikes below it, in their own elements.
    const bars = await page.$$eval('#chart g.pt', (gs) => gs.map((g) => [g.querySelector('.likes')?.getAttribute('height'), g.querySelector('.unlikes')?.getAttribute('height')]));
    assert.equal(bars.filter(([l]) => l).length, want.filter((b) => b[1] > 0).length, `${zoom}: a likes bar per bucket with likes`);
    assert.equal(bars.filter(([, u]) => u).length, want.filter((b) => b[2] > 0).length, `${zoom}: an unlikes bar per bucket with unlikes`);
    const s = await text(page, '#sum');
    assert.match(s, new RegExp(`${new Intl.NumberFormat('en').format(want.reduce((a, b) => a + b[1], 0))} likes`), `${zoom}: summary ${s}`);
  }
  assert.match(page.url(), /range=7d/, 'the zoom is kept in the address');
  assert.deepEqual(page.problems, []);
});

test('URL page: a like moves the count and the current minute, without counting twice', async (t) => {
  const url = SHORT;
  const seeded = seeds[1].minutes;
  const base = sum(seeded, 1) - sum(seeded, 2);
  await awayFromMinuteEdge(20);
  const page = await open(t, pageOf(url));
  await waitFor(async () => num(await text(page, '#count')) === base, { what: 'seeded count' });
  await chartReady(page, '1h');
  await waitFor(async () => (await page.locator('#badge').getAttribute('data-state')) === 'connected', { what: 'connected' });
  const minute = Math.floor(Date.now() / 60000) * 60;
  const last = async () => (await chartPoints(page)).at(-1);
  assert.deepEqual(await last(), [minute, 0, 0], 'the current minute starts empty');

  await page.click('#like');
  await page.click('#like');
  await likeHttp(srv.base, url, 5);
  await waitFor(async () => num(await text(page, '#count')) === base + 7, { what: 'count + 7' });
  await waitFor(async () => (await last())[1] === 7, { what: 'current minute: 7 likes' });
  await http(srv.base, 'DELETE', `/v1/likes?url=${encodeURIComponent(url)}&n=2`);
  await waitFor(async () => num(await text(page, '#count')) === base + 5, { what: 'count + 5' });
  await waitFor(async () => (await last())[2] === 2, { what: 'current minute: 2 unlikes' });
  await waitFor(async () => Number(await text(page, '#rate')) > 0, { what: 'likes/s now above 0' });
  // The database catches up (flush); the page reads it again and must not add it twice.
  await waitFor(async () => {
    const h = await historyHttp(url, minute, minute + 60);
    return h.length === 1 && h[0][1] === 7 && h[0][2] === 2;
  }, { what: 'history of the current minute' });
  await waitFor(async () => num(await text(page, '#likes')) === sum(seeded, 1) + 7, { what: 'likes total from /v1/counts' });
  await sleep(5500); // past the page's re-reads of the last minutes (1.5 s and 5 s after a change)
  assert.deepEqual(await last(), [minute, 7, 2], 'current minute after the re-read');
  assert.equal(await countHttp(srv.base, url), base + 5);
  assert.deepEqual(page.problems, []);
});

test('URL page: opened right after likes and unlikes, the current minute catches up without further updates', async (t) => {
  // A server that writes to its database every 2.5 s: the page reads the
  // history before the minute is there and must read it again by itself.
  const slow = await startServer({ extraArgs: ['--flush-interval-ms', '2500'] });
  t.after(() => slow.dispose());
  const url = uniqueUrl('fresh');
  await awayFromMinuteEdge(20);
  const minute = Math.floor(Date.now() / 60000) * 60;
  await likeHttp(slow.base, url, 5);
  await likeHttp(slow.base, url, -2);
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  await page.goto(slow.base + pageOf(url));
  await waitFor(async () => num(await text(page, '#count')) === 3, { what: 'count' });
  await waitFor(async () => JSON.stringify((await chartPoints(page)).at(-1)) === JSON.stringify([minute, 5, 2]),
    { timeoutMs: 9000, what: 'current minute 5 likes, 2 unlikes' });
  assert.equal(num(await text(page, '#unlikes')), 2);
  assert.deepEqual(page.problems, []);
});

test('URL page: a new minute adds a bar (the page clock moved a minute on)', async (t) => {
  const url = uniqueUrl('roll');
  await awayFromMinuteEdge(20);
  const minute = Math.floor(Date.now() / 60000) * 60;
  await likeHttp(srv.base, url, 3);
  await waitFor(async () => (await historyHttp(url, minute, minute + 60)).length === 1, { what: 'the like in the database' });
  const page = await open(t, null);
  await page.clock.install(); // the real time, but timers the test can run on
  await page.goto(srv.base + pageOf(url));
  await waitFor(async () => num(await text(page, '#count')) === 3, { what: 'count' });
  const lastPoint = async () => { await page.clock.runFor(50); return (await chartPoints(page)).at(-1); };
  await waitFor(async () => (await lastPoint())?.[1] === 3, { what: 'likes in the current minute' });
  assert.equal((await lastPoint())[0], minute);
  await page.clock.runFor(60000);
  await waitFor(async () => (await lastPoint())[0] === minute + 60, { what: 'a new last bucket' });
  const pts = await chartPoints(page);
  assert.deepEqual(pts.at(-1), [minute + 60, 0, 0]);
  assert.deepEqual(pts.at(-2), [minute, 3, 0], 'the minute that ended keeps its likes');
  assert.equal(pts.length, 60);
});

test('URL page: the embed snippet for this URL, ready to copy', async (t) => {
  const url = 'https://example.com/q?a=1&b="2"';
  const page = await open(t, pageOf(url), { permissions: ['clipboard-read', 'clipboard-write'] });
  const want = `<script type="module" src="${srv.base}/sdk/live-count.js"></script>\n` +
    '<live-count url="https://example.com/q?a=1&amp;b=&quot;2&quot;" button></live-count>';
  assert.equal(await text(page, '#snippet'), want);
  await page.click('#copy');
  await waitFor(async () => /Copied/.test(await text(page, '#copied')), { what: 'copied' });
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), want);
  // The snippet works: the element in a page shows this URL's count.
  await likeHttp(srv.base, url, 4);
  await page.evaluate((html) => { const d = document.createElement('div'); d.id = 'embed-test'; d.innerHTML = html; document.body.append(d); },
    want.split('\n')[1]);
  await page.addScriptTag({ type: 'module', url: `${srv.base}/sdk/live-count.js` });
  await waitFor(async () => num(await page.locator('#embed-test [part=count]').textContent()) === 4, { what: 'embedded count' });
  assert.deepEqual(page.problems, []);
});

test('screen readers: the count is announced politely, at most once per 5 s', async (t) => {
  const url = uniqueUrl('announce');
  await likeHttp(srv.base, url, 1);
  const page = await open(t, pageOf(url));
  assert.equal(await page.locator('#announce').getAttribute('aria-live'), 'polite');
  await waitFor(async () => /Count 1$/.test(await text(page, '#announce')), { what: 'first announcement' });
  await page.evaluate(() => {
    globalThis.said = [];
    new MutationObserver(() => globalThis.said.push([Date.now(), document.getElementById('announce').textContent]))
      .observe(document.getElementById('announce'), { childList: true, characterData: true, subtree: true });
  });
  const end = Date.now() + 6000;
  let n = 1;
  while (Date.now() < end) { n = await likeHttp(srv.base, url, 1); await sleep(150); }
  n = await countHttp(srv.base, url);
  await waitFor(async () => (await text(page, '#announce')) === `Count ${n}`, { timeoutMs: 7000, what: 'last count announced' });
  const said = await page.evaluate(() => globalThis.said);
  assert.ok(said.length >= 1 && said.length <= 3, `${said.length} announcements in about 6 s`);
  for (let i = 1; i < said.length; i++) assert.ok(said[i][0] - said[i - 1][0] >= 4900, `gap ${said[i][0] - said[i - 1][0]} ms`);
  // The visible count is not a live region itself (it changes every tick).
  assert.equal(await page.locator('#count').getAttribute('aria-live'), null);

  // The dashboard reads the first rows (watched first) the same way.
  const dash = await open(t, '/');
  assert.equal(await dash.locator('#announce').getAttribute('aria-live'), 'polite');
  await dash.fill('#watch-url', url);
  await dash.press('#watch-url', 'Enter');
  await dash.evaluate(() => {
    globalThis.said = [];
    new MutationObserver(() => globalThis.said.push([Date.now(), document.getElementById('announce').textContent]))
      .observe(document.getElementById('announce'), { childList: true, characterData: true, subtree: true });
  });
  const end2 = Date.now() + 6000;
  while (Date.now() < end2) { await likeHttp(srv.base, url, 1); await sleep(150); }
  n = await countHttp(srv.base, url);
  const name = url.replace(/^https:\/\//, '');
  await waitFor(async () => (await text(dash, '#announce')).startsWith(`${name}: ${new Intl.NumberFormat('en').format(n)}`),
    { timeoutMs: 7000, what: 'watched URL announced first with its last count' });
  const said2 = await dash.evaluate(() => globalThis.said);
  assert.ok(said2.length >= 1 && said2.length <= 3, `${said2.length} dashboard announcements in about 6 s`);
  for (let i = 1; i < said2.length; i++) assert.ok(said2[i][0] - said2[i - 1][0] >= 4900, `gap ${said2[i][0] - said2[i - 1][0]} ms`);
  assert.deepEqual([...page.problems, ...dash.problems], []);
});

test('dashboard totals are all-time sums from the database, also after a restart', async (t) => {
  await likeHttp(srv.base, uniqueUrl('restart'), 11);
  assert.equal((await http(srv.base, 'POST', '/v1/views', { url: uniqueUrl('restart'), n: 29 })).status, 200);
  await srv.stop();
  const [likes, unlikes, views] = sqlite(srv.db, 'SELECT (SELECT sum(likes) FROM counters), (SELECT sum(unlikes) FROM counters), (SELECT sum(views) FROM urls);').trim().split('|').map(Number);
  assert.ok(likes > sum(seeds[0].minutes, 1), 'the database holds the seeded likes');
  assert.ok(views >= 29, 'and the views');
  await srv.start();
  const s = (await http(srv.base, 'GET', '/v1/stats')).body;
  assert.deepEqual(s.totals, { likes, unlikes, count: likes - unlikes, views });
  const page = await open(t, '/');
  await waitFor(async () => num(await text(page, '#t-likes')) === likes, { what: `likes total ${likes}` });
  assert.equal(num(await text(page, '#t-unlikes')), unlikes);
  assert.equal(num(await text(page, '#t-count')), likes - unlikes);
  assert.equal(num(await text(page, '#t-views')), views, 'views, all time, from the database');
  assert.equal(await text(page, '#t-views-start'), '0 since start');
  // What this process accepted since it started: nothing yet, and labelled so.
  assert.equal(await text(page, '#t-likes-start'), '0 since start');
  await likeHttp(srv.base, uniqueUrl('restart'), 2);
  await waitFor(async () => (await text(page, '#t-likes-start')) === '2 since start', { what: 'since start' });
  await waitFor(async () => num(await text(page, '#t-likes')) === likes + 2, { what: 'all time' });
  assert.deepEqual(page.problems, []);
});

test('cluster panel: hidden in single-node mode, lists the nodes when /v1/stats has "cluster"', async (t) => {
  const page = await open(t, '/');
  await waitFor(async () => num(await text(page, '#t-urls')) > 0, { what: 'stats polled' });
  assert.equal((await http(srv.base, 'GET', '/v1/stats')).body.cluster, undefined, 'single-node server');
  assert.equal(await page.locator('#cluster').isHidden(), true);

  // What a cluster node will answer (shape agreed for the cluster issue).
  const cluster = { node_id: 1, link: 'up', nodes: [
    { id: 1, self: true, link: 'up', last_push_age_ms: 120 },
    { id: 2, self: false, link: 'down', last_push_age_ms: 42000 }] };
  await page.route('**/v1/stats', async (route) => {
    const res = await route.fetch();
    route.fulfill({ response: res, json: { ...(await res.json()), cluster } });
  });
  await waitFor(() => page.locator('#cluster').isVisible(), { what: 'cluster panel' });
  const rows = await page.$$eval('#cluster-rows tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.deepEqual(rows, [['1 (this node)', 'up', '120 ms ago'], ['2', 'down', '42 s ago']]);
  assert.match(await text(page, '#cluster-self'), /node 1, link up/);
  await page.unroute('**/v1/stats');
  await waitFor(() => page.locator('#cluster').isHidden(), { what: 'panel hidden again' });
  assert.deepEqual(page.problems, []);
});

test('360 px wide: no horizontal scroll, URLs shortened in the middle, full URL on hover and focus', async (t) => {
  const phone = { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true };
  const page = await open(t, '/', phone);
  const cell = page.locator(`#rows [data-url="${LONG}"] .url a`);
  await waitFor(() => cell.count(), { what: 'row' });
  const noScroll = () => page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  let [sw, cw] = await noScroll();
  assert.ok(sw <= cw && cw === 360, `dashboard scrollWidth ${sw} > ${cw}`);
  assert.equal(await cell.getAttribute('title'), LONG);
  assert.equal(await cell.getAttribute('aria-label'), LONG);
  const geo = await cell.evaluate((a) => {
    const [head, tail] = a.children;
    const box = a.parentElement.getBoundingClientRect(), tb = tail.getBoundingClientRect();
    return { cut: head.scrollWidth > head.clientWidth, tail: tail.textContent, tailIn: tb.right <= box.right + 0.5 && tail.scrollWidth <= tail.clientWidth, host: head.textContent.startsWith('news.example.com') && head.clientWidth > 40 };
  });
  assert.deepEqual(geo, { cut: true, tail: '-counting-likes-live', tailIn: true, host: true });
  // Buttons of a row fit on screen.
  const like = await page.locator(`#rows [data-url="${LONG}"] [data-act=like]`).boundingBox();
  assert.ok(like && like.x + like.width <= 360, `like button at ${JSON.stringify(like)}`);

  // Keyboard: Tab reaches the row links; the focused one shows its full URL.
  let onRow = false;
  for (let i = 0; i < 40 && !onRow; i++) {
    await page.keyboard.press('Tab');
    onRow = await page.evaluate(() => !!document.activeElement?.closest('#rows a.short'));
  }
  assert.ok(onRow, 'Tab reaches a row link');
  const focused = await page.evaluate(() => document.activeElement.title);
  assert.equal(await text(page, '#tip'), focused);
  assert.equal(await page.locator('#tip').isVisible(), true);
  await page.keyboard.press('Tab');
  assert.ok(await page.evaluate(() => document.activeElement?.dataset.act === 'like'), 'then its like button');

  await page.goto(srv.base + pageOf(LONG));
  await chartReady(page, '1h');
  [sw, cw] = await noScroll();
  assert.ok(sw <= cw, `URL page scrollWidth ${sw} > ${cw}`);
  const svg = await page.locator('#chart').boundingBox();
  assert.ok(svg.width > 250 && svg.x + svg.width <= 360, `chart ${JSON.stringify(svg)}`);
  assert.deepEqual(page.problems, []);
});

test('screenshots of the URL page at desktop and phone width', async (t) => {
  mkdirSync(shotDir, { recursive: true });
  for (const [name, opts] of [
    ['url-page.png', { viewport: { width: 1000, height: 600 } }], // full page: as tall as the content
    ['url-page-phone.png', { viewport: { width: 360, height: 740 }, isMobile: true, deviceScaleFactor: 2 }],
    ['dashboard-phone.png', { viewport: { width: 360, height: 740 }, isMobile: true, deviceScaleFactor: 2, path: '/' }],
  ]) {
    const { path = pageOf(LONG), ...o } = opts;
    const page = await open(t, path, o);
    if (path === '/') await waitFor(() => page.locator(`#rows [data-url="${LONG}"]`).count(), { what: 'rows' });
    else await chartReady(page, '1h');
    await waitFor(async () => (await page.locator('#badge').getAttribute('data-state')) === 'connected', { what: 'connected' });
    await likeHttp(srv.base, LONG, 3);
    await sleep(1500); // the totals are read again at most once a second
    const file = join(shotDir, name);
    await page.screenshot({ path: file, fullPage: true });
    assert.ok(statSync(file).size > 10000, `${file} has content`);
    t.diagnostic(`screenshot: ${file}`);
    if (name === 'url-page.png') { // the wider ranges, chart only
      for (const zoom of ['24h', '7d']) {
        await page.click(`.zoom button[data-zoom="${zoom}"]`);
        await chartReady(page, zoom);
        await sleep(100);
        await page.locator('.history').screenshot({ path: join(shotDir, `url-page-${zoom}.png`) });
      }
    }
    assert.deepEqual(page.problems, []);
  }
});
