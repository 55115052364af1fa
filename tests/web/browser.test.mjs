// The dashboard (web/index.html) and <live-count> (web/sdk/live-count.js) in
// headless Debian Chromium, driven by playwright-core, against a real
// livecount that serves web/. Writes dashboard.png to $LC_SCREENSHOT_DIR.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { join, resolve } from 'node:path';
import { countHttp, http, launchBrowser, likeHttp, openPage, repoRoot, sleep, startServer, uniqueUrl, waitFor } from './helpers.mjs';

const shotDir = resolve(process.env.LC_SCREENSHOT_DIR || join(repoRoot, 'build'));
const ROWS = 1000;

let srv, browser;

before(async () => {
  // Default limits: 1000 rows need the SDK's pool of WebSockets (100 each).
  srv = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await srv?.dispose();
});

// A page of this server in its own context, every problem recorded (helpers.mjs).
const open = (t, path, viewport) => openPage(browser, t, srv.base + path, { viewport });

const row = (page, url) => page.locator(`#rows [data-url="${url}"]`);
const countText = (page, url) => row(page, url).locator('.count').textContent();
const num = (s) => Number(String(s).replace(/[^\d-]/g, ''));

async function expectCount(page, url, n, what, timeoutMs = 5000) {
  await waitFor(async () => num(await countText(page, url)) === n, { timeoutMs, what: `${what}: count ${n}` });
}

test('static files are served with the right content types', async () => {
  for (const [path, type] of [
    ['/', 'text/html'],
    ['/app.js', 'javascript'],
    ['/style.css', 'text/css'],
    ['/sdk/livecount.js', 'javascript'],
    ['/sdk/live-count.js', 'javascript'],
    ['/examples/live-count.html', 'text/html'],
    ['/u.html', 'text/html'],
    ['/url.js', 'javascript'],
    ['/chart.js', 'javascript'],
    ['/urlfmt.js', 'javascript'],
    ['/params.js', 'javascript'],
  ]) {
    const r = await http(srv.base, 'GET', path);
    assert.equal(r.status, 200, path);
    assert.match(r.headers.get('content-type') || '', new RegExp(type), `${path} content-type`);
  }
});

test('screenshot of the dashboard', async (t) => {
  const names = ['news/launch', 'blog/hello-world', 'docs/getting-started', 'posts/42', 'shop/item/7', 'video/intro'];
  for (const [i, n] of names.entries()) await likeHttp(srv.base, `https://example.com/${n}`, 98765 - i * 12345);
  const page = await open(t, '/?limit=25', { width: 1280, height: 900 });
  await page.fill('#watch-url', 'https://example.com/posts/42');
  await page.press('#watch-url', 'Enter');
  // Some seconds of uneven traffic so the rates and sparklines have a shape.
  for (let s = 0; s < 80; s++) {
    await http(srv.base, 'POST', '/v1/likes', names.map((n, i) => ({
      url: `https://example.com/${n}`, n: 1 + Math.round((6 - i) * 4 * (1 + Math.sin(s / 6 + i))),
    })));
    await sleep(100);
  }
  await sleep(1100);
  mkdirSync(shotDir, { recursive: true });
  const path = join(shotDir, 'dashboard.png');
  await page.screenshot({ path });
  assert.ok(statSync(path).size > 10000);
  t.diagnostic(`screenshot: ${path}`);
});

test('dashboard shows live counts and totals', async (t) => {
  const url = uniqueUrl('dash');
  await likeHttp(srv.base, url, 5);
  const page = await open(t, '/');
  await waitFor(async () => (await page.locator('#badge').getAttribute('data-state')) === 'connected', { what: 'badge connected' });
  assert.match(await page.locator('#badge').textContent(), /connected/);
  await expectCount(page, url, 5, 'initial');

  // Likes over HTTP arrive through the subscription, well before the next poll.
  const t0 = Date.now();
  await likeHttp(srv.base, url, 10);
  await expectCount(page, url, 15, 'live update', 1500);
  const ms = Date.now() - t0;
  await http(srv.base, 'DELETE', `/v1/likes?url=${encodeURIComponent(url)}&n=3`);
  await expectCount(page, url, 12, 'unlike');

  // A URL liked for the first time appears with the next /v1/top poll.
  const fresh = uniqueUrl('dash-new');
  await likeHttp(srv.base, fresh, 1e6);
  await expectCount(page, fresh, 1e6, 'new top URL', 6000);
  assert.equal(await row(page, fresh).locator('.rank').textContent(), '1', 'highest count ranks first');

  // Totals come from /v1/stats: this page's connection is one of the clients.
  await waitFor(async () => num(await page.locator('#t-clients').textContent()) >= 1, { what: 'clients total' });
  await waitFor(async () => num(await page.locator('#t-likes').textContent()) >= 1000, { what: 'likes total (all time)' });
  assert.deepEqual(page.problems, []);
  t.diagnostic(`update visible ${ms} ms after the POST`);
});

test('dashboard over SSE (?transport=sse) uses the browser EventSource', async (t) => {
  const url = uniqueUrl('dash-sse');
  await likeHttp(srv.base, url, 1e6);
  const page = await open(t, '/?transport=sse');
  await waitFor(async () => /connected · sse/.test(await page.locator('#badge').textContent()), { what: 'badge connected · sse' });
  await expectCount(page, url, 1e6, 'initial');
  await likeHttp(srv.base, url, 2);
  await expectCount(page, url, 1e6 + 2, 'live update over SSE', 2000);
  assert.deepEqual(page.problems, []);
});

test('a like clicked in one page shows in another', async (t) => {
  const url = uniqueUrl('click');
  const a = await open(t, '/');
  const b = await open(t, '/');
  for (const p of [a, b]) {
    await p.fill('#watch-url', url);
    await p.press('#watch-url', 'Enter');
    await expectCount(p, url, 0, 'watched URL starts at 0');
  }
  await row(a, url).locator('[data-act=like]').click();
  await row(a, url).locator('[data-act=like]').click();
  await expectCount(b, url, 2, 'other page sees the likes');
  await expectCount(a, url, 2, 'own page too');
  await row(b, url).locator('[data-act=unlike]').click();
  await expectCount(a, url, 1, 'unlike in the other direction');
  assert.equal(await countHttp(srv.base, url), 1);
  assert.ok(await row(a, url).evaluate((tr) => tr.classList.contains('watched')));
  assert.deepEqual([...a.problems, ...b.problems], []);
});

test('<live-count> on a plain page updates and likes', async (t) => {
  const page = await open(t, '/examples/live-count.html');
  const urlA = await page.getAttribute('#a', 'url');
  const urlB = await page.getAttribute('#b', 'url');
  const start = await countHttp(srv.base, urlA);
  const shown = (id) => page.locator(`#${id} [part=count]`).textContent(); // pierces the open shadow root
  await waitFor(async () => num(await shown('a')) === start, { what: '<live-count> initial count' });

  await likeHttp(srv.base, urlA, 3);
  await waitFor(async () => num(await shown('a')) === start + 3, { what: '<live-count> live update' });
  await page.locator('#a [part=button]').click();
  await waitFor(async () => num(await shown('a')) === start + 4, { what: 'count after clicking the button' });
  await waitFor(async () => (await countHttp(srv.base, urlA)) === start + 4, { what: 'server count' });

  assert.equal(await page.locator('#b [part=button]').isVisible(), false, 'no button without the attribute');
  const startB = await countHttp(srv.base, urlB);
  await likeHttp(srv.base, urlB, 2);
  await waitFor(async () => num(await shown('b')) === startB + 2, { what: 'second element' });
  assert.equal(await page.evaluate(() => document.querySelector('#a').count), start + 4);
  assert.deepEqual(page.problems, []);
});

test('another origin: <live-count server=...> and the SDK over SSE, likes and unlikes (CORS)', async (t) => {
  const other = await startServer(); // a second livecount: another origin (port)
  t.after(() => other.dispose());
  // The page's server lets its pages connect there (Content-Security-Policy).
  const host = await startServer({ extraArgs: ['--csp-connect-src', other.base] });
  t.after(() => host.dispose());
  const url = uniqueUrl('cors');
  await likeHttp(other.base, url, 7);
  const page = await openPage(browser, t, `${host.base}/examples/live-count.html`);
  await page.evaluate(([server, u]) => {
    const el = document.createElement('live-count');
    el.id = 'x';
    el.setAttribute('server', server);
    el.setAttribute('url', u);
    el.setAttribute('button', '');
    document.body.append(el);
  }, [other.base, url]);
  const shown = () => page.locator('#x [part=count]').textContent();
  await waitFor(async () => num(await shown()) === 7, { what: 'cross-origin count' });
  await page.locator('#x [part=button]').click(); // POST from another origin
  await waitFor(async () => num(await shown()) === 8, { what: 'count after the cross-origin like' });
  // SSE (EventSource) and DELETE (a preflighted request) across origins.
  const got = await page.evaluate(async ([server, u]) => {
    const { createClient } = await import('/sdk/livecount.js');
    const c = createClient(server, { transport: 'sse' });
    const seen = [];
    c.subscribe(u, (n) => seen.push(n));
    await new Promise((r) => c.on('state', (s) => s === 'connected' && r()));
    const r = await c.unlike(u, 3);
    for (let i = 0; i < 50 && seen.at(-1) !== 5; i++) await new Promise((ok) => setTimeout(ok, 50));
    c.close();
    return { reply: r.count, seen, transport: c.transport };
  }, [other.base, url]);
  assert.equal(got.reply, 5);
  assert.equal(got.transport, 'sse');
  assert.equal(got.seen.at(-1), 5, `SSE counts ${got.seen}`);
  assert.equal(await countHttp(other.base, url), 5);
  assert.deepEqual(page.problems, []);
});

test('a page on another origin embeds <live-count> from the server (module script over CORS)', async (t) => {
  // The README's embed: a plain page served by another HTTP server.
  const url = uniqueUrl('embed');
  await likeHttp(srv.base, url, 4);
  const page0 = `<!doctype html><meta charset=utf-8><title>embed</title>
<script type="module" src="${srv.base}/sdk/live-count.js"></script>
<p>Likes: <live-count id="e" url="${url}" button></live-count></p>`;
  const site = createHttpServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page0);
  });
  await new Promise((r) => site.listen(0, '127.0.0.1', r));
  t.after(() => site.close());
  const page = await openPage(browser, t, `http://127.0.0.1:${site.address().port}/`);
  const shown = () => page.locator('#e [part=count]').textContent();
  await waitFor(async () => num(await shown()) === 4, { what: 'count from the embedded element' });
  await page.locator('#e [part=button]').click(); // a like with Idempotency-Key: preflighted
  await waitFor(async () => num(await shown()) === 5, { what: 'count after the embedded like' });
  assert.equal(await countHttp(srv.base, url), 5);
  assert.deepEqual(page.problems, []);
});

test(`${ROWS} rows updating every tick stay smooth`, async (t) => {
  const urls = Array.from({ length: ROWS }, (_, i) => `https://example.test/load/${String(i).padStart(4, '0')}`);
  const batch = (n) => http(srv.base, 'POST', '/v1/likes', urls.map((url, i) => ({ url, n: n + (i % 7) })));
  // Above every other test's URL, so these are exactly the top 1000.
  for (let k = 0; k < 3; k++) assert.equal((await batch(999000)).status, 200);
  const page = await open(t, `/?limit=${ROWS}`);
  await waitFor(async () => (await page.locator('#rows .row').count()) >= ROWS, { timeoutMs: 10000, what: `${ROWS} rows` });
  await waitFor(() => page.evaluate((n) => [...globalThis.livecount.rows.values()].filter((r) => r.count !== null).length >= n, ROWS),
    { timeoutMs: 10000, what: 'all rows have counts' });

  // Frame intervals over `ms`, sending a batch every 100 ms when `load`.
  const measure = async (ms, load) => {
    await page.evaluate(() => {
      const m = (globalThis.frames_ = { gaps: [], last: performance.now(), run: true });
      const loop = (now) => { m.gaps.push(now - m.last); m.last = now; if (m.run) requestAnimationFrame(loop); };
      requestAnimationFrame(loop);
    });
    const end = Date.now() + ms;
    let sent = 0;
    while (Date.now() < end) {
      if (load) {
        assert.equal((await batch(1)).status, 200);
        sent++;
      }
      await sleep(100); // paces the batches: a tick's worth of time
    }
    const gaps = await page.evaluate(() => { globalThis.frames_.run = false; return globalThis.frames_.gaps.slice(1); });
    gaps.sort((x, y) => x - y);
    return { sent, gaps, fps: gaps.length / (ms / 1000), p50: gaps[Math.floor(gaps.length / 2)],
      p95: gaps[Math.floor(gaps.length * 0.95)], max: gaps.at(-1) };
  };
  // A baseline of the same page with nothing changing, measured just
  // before on the same machine: the bounds below are relative to it, so a
  // loaded machine (fewer frames for everyone) is slower, not red.
  const idle = await measure(2000, false);
  // Every URL changes on every tick.
  const busy = await measure(4000, true);
  const { sent, gaps, p50 } = busy;
  const show = (m) => `${m.gaps.length} frames (${m.fps.toFixed(1)}/s), interval p50 ${m.p50.toFixed(1)} ms, p95 ${m.p95.toFixed(1)} ms, max ${m.max.toFixed(1)} ms`;
  t.diagnostic(`idle: ${show(idle)}; ${sent} batches of ${ROWS}: ${show(busy)}`);

  // The last count on screen matches the server for every row.
  const want = await http(srv.base, 'GET', `/v1/counts?${urls.slice(0, 50).map((u) => 'url=' + encodeURIComponent(u)).join('&')}`);
  for (const u of urls.slice(0, 50)) await expectCount(page, u, want.body.counts[u].count, u);
  // Generous bounds relative to the idle page (a page doing per-update
  // layout would miss them by far): at least a third of its frame rate,
  // and a median interval within 3 x its own (or 50 ms, 20 frames/s).
  assert.ok(p50 < Math.max(50, 3 * idle.p50), `median frame interval ${p50} ms (idle ${idle.p50} ms)`);
  assert.ok(busy.fps >= idle.fps / 3, `${gaps.length} frames in 4 s (${busy.fps.toFixed(1)}/s, idle ${idle.fps.toFixed(1)}/s)`);
  assert.deepEqual(page.problems, []);
});

test('?limit=300: rows past the 200th get live updates (a third WebSocket)', async (t) => {
  // Above the 1000-row test's URLs, so these are exactly the top 300.
  const urls = Array.from({ length: 300 }, (_, i) => uniqueUrl(`top300-${String(i).padStart(3, '0')}`));
  const BASE = 6e6; // n is at most 1e6 per item
  for (let k = 0; k <= 6; k++) {
    const r = await http(srv.base, 'POST', '/v1/likes', urls.map((url, i) => ({ url, n: k < 6 ? 1e6 : (300 - i) * 10 })));
    assert.equal(r.status, 200, r.text);
  }
  await sleep(300);
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws));
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  await page.goto(`${srv.base}/?limit=300`);
  await waitFor(async () => (await page.locator('#rows .row').count()) >= 300, { timeoutMs: 10000, what: '300 rows' });
  const target = urls[249]; // rank 250
  await expectCount(page, target, BASE + 510, 'initial count of row 250');
  await waitFor(async () => (await page.locator('#badge').getAttribute('data-state')) === 'connected', { what: 'badge connected' });
  const t0 = Date.now();
  await likeHttp(srv.base, target, 3);
  // Faster than the 2 s /v1/top poll, which does not touch known rows anyway.
  await expectCount(page, target, BASE + 513, 'live update of row 250', 1500);
  await likeHttp(srv.base, urls[299], 1);
  await expectCount(page, urls[299], BASE + 11, 'live update of row 300', 1500);
  assert.equal(await row(page, target).locator('.rank').textContent(), '250');
  assert.ok(sockets.filter((ws) => !ws.isClosed()).length >= 3, `${sockets.length} WebSockets for 300 rows`);
  assert.equal(await page.locator('#msg').isHidden(), true, 'no error message (too_many_subscriptions)');
  assert.deepEqual(page.problems, []);
  t.diagnostic(`row 250 updated ${Date.now() - t0} ms after the POST; ${sockets.length} WebSockets`);
});

test('the badge shows reconnecting and greys stale data while the server is down', async (t) => {
  const url = uniqueUrl('down');
  await likeHttp(srv.base, url, 10);
  const page = await open(t, '/');
  await page.fill('#watch-url', url);
  await page.press('#watch-url', 'Enter');
  await expectCount(page, url, 10, 'before');
  await srv.stop();
  await waitFor(async () => /reconnecting in \d+ s/.test(await page.locator('#badge').textContent()), { what: 'reconnecting badge' });
  assert.ok(await page.locator('#table').evaluate((el) => el.classList.contains('stale')), 'table greyed');
  await srv.start();
  await waitFor(async () => (await page.locator('#badge').getAttribute('data-state')) === 'connected', { timeoutMs: 15000, what: 'connected again' });
  await likeHttp(srv.base, url, 1);
  await expectCount(page, url, 11, 'after restart');
  await waitFor(() => page.locator('#table').evaluate((el) => !el.classList.contains('stale')), { what: 'table live again' });
});
