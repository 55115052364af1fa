// Live stats in the browser (issue 19 item 7): <live-count show="views|watching">
// and record-view, the dashboard's views and watching columns (sortable,
// GET /v1/top?by=), and the URL page's live views/watching figures and its
// history chart with views and the audience peak (watching_max). Headless
// Chromium against a real livecount with a short watching_interval_ms, many
// pages in their own browser contexts (each its own connection).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { http, launchBrowser, likeHttp, openPage, startServer, uniqueUrl, waitFor } from './helpers.mjs';

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
  await srv.restart();
  await waitFor(() => page.locator('#r').evaluate((el) => !el.hasAttribute('stale')), { timeoutMs: 15000, what: 'reconnected' });
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
