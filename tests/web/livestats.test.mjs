// Live stats in the browser (issue 19 item 7): <live-count show="views|watching">
// and record-view, the dashboard's views and watching columns (sortable,
// GET /v1/top?by=), and the URL page's live views/watching figures and its
// history chart with views and the audience peak (watching_max). Headless
// Chromium against a real livecount with a short watching_interval_ms, many
// pages in their own browser contexts (each its own connection).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { http, launchBrowser, likeHttp, openPage, repoRoot, startServer, uniqueUrl, waitFor } from './helpers.mjs';

const shotDir = resolve(process.env.LC_SCREENSHOT_DIR || join(repoRoot, 'build'));
let srv, browser;

before(async () => {
  srv = await startServer({ extraArgs: ['--watching-interval-ms', '200', '--flush-interval-ms', '200'] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await srv?.dispose();
});

const open = (t, path, viewport) => openPage(browser, t, srv.base + path, { viewport });
const num = (s) => Number(String(s).replace(/[^\d-]/g, ''));
const q = encodeURIComponent;

async function views(url) {
  const r = await http(srv.base, 'GET', `/v1/counts?url=${q(url)}`);
  return r.body.counts[url].views;
}

async function viewHttp(url, n) {
  const r = await http(srv.base, 'POST', '/v1/views', { url, n });
  assert.equal(r.status, 200, r.text);
  return r.body.views;
}

// A <live-count> with these attributes appended to the example page.
async function addElement(page, id, attrs) {
  await page.evaluate(([i, a]) => {
    const el = document.createElement('live-count');
    el.id = i;
    for (const [k, v] of Object.entries(a)) el.setAttribute(k, v);
    document.body.append(el);
  }, [id, attrs]);
}

const shown = (page, id) => page.locator(`#${id} [part=count]`).textContent();

test('<live-count show="watching"> rises as pages open and falls as they close', async (t) => {
  const url = uniqueUrl('watching');
  const first = await open(t, '/examples/live-count.html');
  await addElement(first, 'lw', { url, show: 'watching' });
  await waitFor(async () => num(await shown(first, 'lw')) === 1, { timeoutMs: 10000, what: 'watching 1 (this page)' });
  assert.equal(await first.locator('#lw [part=count]').getAttribute('title'), 'watching now');

  // Each page its own browser context: its own connection, one watcher more.
  const others = [];
  for (let i = 2; i <= 4; i++) {
    const ctxT = { after: () => {} }; // closed below, not at the end of the test
    const p = await openPage(browser, ctxT, `${srv.base}/examples/live-count.html`);
    await addElement(p, 'lw', { url, show: 'watching' });
    others.push(p);
    await waitFor(async () => num(await shown(first, 'lw')) === i, { timeoutMs: 10000, what: `watching ${i} on the first page` });
    await waitFor(async () => num(await shown(p, 'lw')) === i, { timeoutMs: 10000, what: `watching ${i} on page ${i}` });
  }
  // Closing pages: counted down.
  for (let i = 3; i >= 1; i--) {
    const p = others.pop();
    assert.deepEqual(p.problems, []);
    await p.context().close();
    await waitFor(async () => num(await shown(first, 'lw')) === i, { timeoutMs: 10000, what: `watching back to ${i}` });
  }
  const r = await http(srv.base, 'GET', `/v1/counts?url=${q(url)}`);
  assert.equal(r.body.counts[url].watching, 1);
  assert.deepEqual(first.problems, []);
});

test('<live-count record-view> records one view per connection, not per reconnect; show switches the figure', async (t) => {
  const url = uniqueUrl('rv');
  await likeHttp(srv.base, url, 5);
  // The example page's video element, parsed with the page (upgraded after
  // its attributes are set), records one view of the visit.
  const video = 'https://example.com/videos/1';
  const before = await views(video);
  const page = await open(t, '/examples/live-count.html');
  assert.equal(await page.getAttribute('#v', 'url'), video);
  await waitFor(async () => (await views(video)) === before + 1, { what: 'the example page recorded a view' });
  await waitFor(async () => num(await shown(page, 'v')) === before + 1, { what: 'and shows it' });

  await addElement(page, 'r', { url, show: 'views', 'record-view': '' });
  await waitFor(async () => num(await shown(page, 'r')) === 1, { what: 'views 1 shown' });
  assert.equal(await views(url), 1);
  // show="count" then show="watching": the same element, another figure.
  await page.locator('#r').evaluate((el) => el.setAttribute('show', 'count'));
  await waitFor(async () => num(await shown(page, 'r')) === 5, { what: 'count 5 shown' });
  await page.locator('#r').evaluate((el) => el.setAttribute('show', 'watching'));
  await waitFor(async () => num(await shown(page, 'r')) >= 1, { timeoutMs: 10000, what: 'watching shown' });
  await page.locator('#r').evaluate((el) => el.setAttribute('show', 'views'));
  assert.deepEqual(await page.locator('#r').evaluate((el) => [el.count, el.views, el.show]), [5, 1, 'views']);

  // The server restarts: the element's client reconnects, no second view.
  const seen = page.problems.length;
  await srv.restart();
  await waitFor(() => page.locator('#r').evaluate((el) => !el.hasAttribute('stale')), { timeoutMs: 15000, what: 'reconnected' });
  // While the server was down, a reconnect attempt may have been refused;
  // Chromium logs that as a console error the page cannot prevent. Only
  // that message, only in this window, is expected.
  const refused = /^console: WebSocket connection to '.*\/v1\/ws' failed: .*ERR_CONNECTION_REFUSED$/;
  page.problems.splice(seen, Infinity, ...page.problems.slice(seen).filter((p) => !refused.test(p)));
  await viewHttp(url, 10); // an update after the reconnect
  await waitFor(async () => num(await shown(page, 'r')) === 11, { what: 'views 11 after the reconnect' });
  assert.equal(await views(url), 11, 'a reconnect records no view');

  // Taken out of the document and put back: a new connection, one more view.
  await page.locator('#r').evaluate((el) => { const p = el.parentNode; el.remove(); p.append(el); });
  await waitFor(async () => (await views(url)) === 12, { what: 'a view on reconnection to the document' });
  await waitFor(async () => num(await shown(page, 'r')) === 12, { what: 'views 12 shown' });
  // Changing a shown attribute other than url records nothing.
  await page.locator('#r').evaluate((el) => el.setAttribute('button', ''));
  await waitFor(async () => num(await shown(page, 'r')) === 12, { what: 'still 12' });
  assert.equal(await views(url), 12);
  assert.equal(await views(video), before + 1, 'one view per page visit');
  assert.deepEqual(page.problems, []);
});

// The dashboard's rows of these URLs, in page order: [url, count, views, watching].
async function dashRows(page, urls) {
  const all = await page.$$eval('#rows .row', (els) => els.map((el) => [el.dataset.url,
    ...['.count', '.views', '.watching'].map((c) => Number(el.querySelector(c).textContent.replace(/[^\d-]/g, '')))]));
  return all.filter((r) => urls.includes(r[0]));
}

test('dashboard: views and watching columns, live, sortable by each (GET /v1/top?by=)', async (t) => {
  const [a, b, c] = ['a', 'b', 'c'].map((x) => uniqueUrl(`cols-${x}`));
  await http(srv.base, 'POST', '/v1/likes', [{ url: a, n: 500 }, { url: b, n: 400 }, { url: c, n: 300 }]);
  await http(srv.base, 'POST', '/v1/views', [{ url: a, n: 1 }, { url: b, n: 5000 }, { url: c, n: 70 }]);
  await waitFor(async () => (await views(c)) === 70, { what: 'views merged' });
  const page = await open(t, '/');
  const tops = [];
  page.on('request', (r) => { if (r.url().includes('/v1/top')) tops.push(new URL(r.url()).searchParams.get('by')); });
  const urls = [a, b, c];
  // By count (the default); this page watches every row: 1 each.
  await waitFor(async () => JSON.stringify(await dashRows(page, urls)) ===
    JSON.stringify([[a, 500, 1, 1], [b, 400, 5000, 1], [c, 300, 70, 1]]), { timeoutMs: 10000, what: 'rows by count with views and watching' });
  const head = (by) => page.locator(`.row.head [role=columnheader][data-by=${by}]`);
  assert.equal(await head('count').getAttribute('aria-sort'), 'descending');
  assert.equal(await head('views').getAttribute('aria-sort'), 'none');

  // Sorted by views: the header button, the address, the request, the order.
  await head('views').locator('button').click();
  await waitFor(async () => JSON.stringify((await dashRows(page, urls)).map((r) => r[0])) === JSON.stringify([b, c, a]), { what: 'rows by views' });
  assert.equal(await head('views').getAttribute('aria-sort'), 'descending');
  assert.equal(await head('count').getAttribute('aria-sort'), 'none');
  assert.equal(await page.locator('#table').getAttribute('aria-label'), 'Most viewed URLs');
  assert.match(page.url(), /[?&]by=views/);
  await waitFor(() => tops.includes('views'), { what: 'GET /v1/top?by=views' });
  // Live: views of a overtake both.
  await viewHttp(a, 10000);
  await waitFor(async () => JSON.stringify(await dashRows(page, urls)) ===
    JSON.stringify([[a, 500, 10001, 1], [b, 400, 5000, 1], [c, 300, 70, 1]]), { what: 'a first by views, live' });
  assert.equal(num(await page.locator('#rows .row').first().locator('.rank').textContent()) <= 3, true);

  // Two more pages watch c: it leads by watching.
  for (let i = 0; i < 2; i++) {
    const p = await open(t, `/u.html?url=${q(c)}`);
    await waitFor(async () => num(await p.locator('#count').textContent()) === 300, { what: 'URL page up' });
  }
  await waitFor(async () => (await dashRows(page, urls)).find((r) => r[0] === c)[3] === 3, { timeoutMs: 10000, what: 'c watched by 3' });
  await head('watching').locator('button').click();
  await waitFor(async () => (await dashRows(page, urls))[0][0] === c, { what: 'c first by watching' });
  assert.equal(await page.locator('#table').getAttribute('aria-label'), 'Most watched URLs');
  assert.match(page.url(), /[?&]by=watching/);
  await waitFor(() => tops.includes('watching'), { what: 'GET /v1/top?by=watching' });
  // Keyboard: the sort buttons are buttons (Enter on a focused one sorts).
  await head('count').locator('button').focus();
  await page.keyboard.press('Enter');
  await waitFor(async () => JSON.stringify((await dashRows(page, urls)).map((r) => r[0])) === JSON.stringify([a, b, c]), { what: 'back to count' });
  assert.doesNotMatch(page.url(), /by=/);
  // Opened with ?by=views: sorted so from the start.
  const again = await open(t, '/?by=views');
  await waitFor(async () => JSON.stringify((await dashRows(again, urls)).map((r) => r[0])) === JSON.stringify([a, b, c]) &&
    (await again.locator('.row.head [data-by=views]').first().getAttribute('aria-sort')) === 'descending', { what: '?by=views' });
  assert.deepEqual(page.problems, []);
  assert.deepEqual(again.problems, []);
});

test('dashboard at 360 px: count, views and watching of a row visible and not cut', async (t) => {
  const url = uniqueUrl('narrow');
  // Wide figures (n is at most 1000000 per item).
  await http(srv.base, 'POST', '/v1/likes', [{ url, n: 1000000 }, { url, n: 234567 }]);
  await http(srv.base, 'POST', '/v1/views', [...Array(7)].map(() => ({ url, n: 1000000 })).concat([{ url, n: 654321 }]));
  const page = await open(t, '/?by=views', { width: 360, height: 740 });
  const row = page.locator(`#rows [data-url="${url}"]`);
  await waitFor(async () => num(await row.locator('.views').textContent()) === 7654321, { timeoutMs: 10000, what: 'views shown' });
  await waitFor(async () => num(await row.locator('.watching').textContent()) === 1, { timeoutMs: 10000, what: 'watching shown' });
  mkdirSync(shotDir, { recursive: true });
  await page.screenshot({ path: join(shotDir, 'dashboard-360-stats.png') });
  for (const sel of ['.count', '.views', '.watching', '[data-act=like]']) {
    const box = await row.locator(sel).boundingBox();
    assert.ok(box && box.width > 0 && box.x >= 0 && box.x + box.width <= 360, `${sel} inside the screen: ${JSON.stringify(box)}`);
    const cut = await row.locator(sel).evaluate((el) => el.scrollWidth > el.clientWidth + 1);
    assert.equal(cut, false, `${sel} not cut`);
  }
  for (const by of ['count', 'views', 'watching']) {
    const h = page.locator(`.row.head button[data-by=${by}]`);
    assert.ok(await h.isVisible(), `${by} header`);
    assert.equal(await h.evaluate((el) => el.parentElement.scrollWidth > el.parentElement.clientWidth + 1), false, `${by} header not cut`);
  }
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), true, 'no sideways scrolling');
  assert.deepEqual(page.problems, []);
});

test('URL page: live views and watching, views and the audience peak on the history chart', async (t) => {
  const url = uniqueUrl('upage');
  await likeHttp(srv.base, url, 2);
  await viewHttp(url, 40);
  const page = await open(t, `/u.html?url=${q(url)}`);
  const text = (sel) => page.locator(sel).textContent();
  await waitFor(async () => num(await text('#views')) === 40, { what: 'views 40' });
  await waitFor(async () => num(await text('#watching')) === 1, { timeoutMs: 10000, what: 'watching 1 (this page)' });
  await waitFor(async () => (await page.locator('#chart').getAttribute('data-state')) === 'ready', { what: 'chart drawn' });
  // Another page on the same URL: 2 watching, live.
  const other = await open(t, `/u.html?url=${q(url)}`);
  await waitFor(async () => num(await text('#watching')) === 2, { timeoutMs: 10000, what: 'watching 2' });
  await viewHttp(url, 5);
  await waitFor(async () => num(await text('#views')) === 45, { what: 'views 45, live' });
  await waitFor(async () => num(await other.locator('#views').textContent()) === 45, { what: 'views 45 on the other page' });
  // The chart: the minutes' views sum to 45 and the peak is at least 2 (the
  // current minute live, the database's once flushed).
  const chartSums = () => page.$$eval('#chart g.pt', (gs) => gs.reduce((a, g) => [a[0] + +g.dataset.views, Math.max(a[1], +g.dataset.watchingMax)], [0, 0]));
  await waitFor(async () => { const [v, p] = await chartSums(); return v === 45 && p >= 2; }, { timeoutMs: 10000, what: 'chart views 45, peak 2' });
  assert.equal(await page.locator('#chart polyline.views').count(), 1);
  assert.equal(await page.locator('#chart polyline.peak').count(), 1);
  await waitFor(async () => /45 views, audience peak [2-9]/.test(await text('#sum')), { what: 'summary with views and peak' });
  // What the server's history says, after the flush, agrees.
  await waitFor(async () => {
    const r = await http(srv.base, 'GET', `/v1/history?url=${q(url)}`);
    const pts = r.body.points;
    return pts.reduce((a, p) => a + p.views, 0) === 45 && Math.max(...pts.map((p) => p.watching_max)) >= 2;
  }, { timeoutMs: 10000, what: 'history views 45, watching_max >= 2' });
  // Reloaded: the chart from the database alone.
  await page.reload();
  await waitFor(async () => { const [v, p] = await chartSums(); return v === 45 && p >= 2; }, { timeoutMs: 10000, what: 'chart from the database' });
  // 360 px: the new figures fit.
  await page.setViewportSize({ width: 360, height: 740 });
  for (const sel of ['#views', '#watching']) {
    const box = await page.locator(sel).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 360, `${sel} inside the screen`);
  }
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), true, 'no sideways scrolling');
  assert.deepEqual(page.problems, []);
  assert.deepEqual(other.problems, []);
  assert.deepEqual(page.csp, []);
});
