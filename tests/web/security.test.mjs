// The pages' defences in headless Chromium against a real livecount: the
// ?server= parameter can't turn a link into script (issue 22 item 3), and
// the HTML pages carry a strict Content-Security-Policy that the dashboard,
// the URL page and the <live-count> example work under with no violation
// (item 6; openPage records violations in page.csp and page.problems).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { http, launchBrowser, likeHttp, openPage, startServer, uniqueUrl, waitFor } from './helpers.mjs';

let srv, browser;

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await srv?.dispose();
});

const open = (t, path, opts) => openPage(browser, t, srv.base + path, opts);
const num = (s) => Number(String(s).replace(/[^\d-]/g, ''));
const EVIL = ['javascript:alert(document.domain)//', 'JavaScript:alert(1)//', 'data:text/html,<script>alert(1)</script>',
  '//evil.example/', 'ftp://evil.example/'];

test('URL page: ?server=javascript:… never becomes a link; the page uses its own server', async (t) => {
  const url = uniqueUrl('xss');
  await likeHttp(srv.base, url, 3);
  for (const evil of EVIL) {
    const page = await open(t, `/u.html?${new URLSearchParams({ url, server: evil })}`);
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
    await waitFor(() => page.locator('#json-item').isVisible(), { what: 'JSON link shown' });
    const hrefs = await page.$$eval('a[href]', (as) => as.map((a) => a.href));
    for (const h of hrefs) assert.match(h, /^https?:\/\//, `${evil}: link ${h}`);
    assert.equal(await page.locator('#json').getAttribute('href'), `${srv.base}/v1/history?url=${encodeURIComponent(url)}`, evil);
    assert.doesNotMatch(await page.locator('#snippet').textContent(), /javascript:|data:|evil/i, `${evil}: embed snippet`);
    for (const id of ['#back', '#home']) assert.doesNotMatch(decodeURIComponent(await page.locator(id).getAttribute('href')), /server=/, `${evil}: ${id}`);
    // It works against the page's own server.
    await waitFor(async () => num(await page.locator('#count').textContent()) === 3, { what: `${evil}: count from this server` });
    await page.locator('#json').click();
    await page.waitForURL(/\/v1\/history/);
    assert.deepEqual(dialogs, [], `${evil}: script ran from the JSON link`);
    assert.equal(new URL(page.url()).origin, srv.base, evil);
  }
});

test('dashboard: ?server=javascript:… is ignored and never passed on to the row links', async (t) => {
  const url = uniqueUrl('xss-dash');
  await likeHttp(srv.base, url, 5);
  const evil = EVIL[0];
  const page = await open(t, `/?${new URLSearchParams({ server: evil })}`);
  page.on('dialog', (d) => { page.problems.push(`dialog: ${d.message()}`); d.dismiss().catch(() => {}); });
  await page.fill('#watch-url', url);
  await page.press('#watch-url', 'Enter');
  const row = page.locator(`#rows [data-url="${url}"]`);
  await waitFor(async () => num(await row.locator('.count').textContent()) === 5, { what: 'count from this server' });
  const href = await row.locator('.url a').getAttribute('href');
  assert.equal(new URLSearchParams(href.split('?')[1]).get('server'), null, `row link ${href}`);
  assert.equal(await page.locator('#origin').textContent(), srv.base);
  await row.locator('.url a').click();
  await page.waitForURL(/u\.html/);
  await waitFor(() => page.locator('#json-item').isVisible(), { what: 'JSON link shown' });
  assert.match(await page.locator('#json').getAttribute('href'), new RegExp(`^${srv.base}/v1/history`));
  assert.deepEqual(page.problems, []);
});

test('a valid ?server=http://… is still used and carried from the dashboard to the URL page', async (t) => {
  // Another livecount (another origin): the page's server lists it in csp_connect_src.
  const other = await startServer();
  t.after(() => other.dispose());
  const host = await startServer({ extraArgs: ['--csp-connect-src', other.base] });
  t.after(() => host.dispose());
  const url = uniqueUrl('server-ok');
  await likeHttp(other.base, url, 9);
  const page = await openPage(browser, t, `${host.base}/?${new URLSearchParams({ server: other.base + '/' })}`);
  await page.fill('#watch-url', url);
  await page.press('#watch-url', 'Enter');
  const row = page.locator(`#rows [data-url="${url}"]`);
  await waitFor(async () => num(await row.locator('.count').textContent()) === 9, { what: 'count from the other server' });
  await row.locator('.url a').click();
  await page.waitForURL(/u\.html/);
  await waitFor(async () => num(await page.locator('#count').textContent()) === 9, { what: 'URL page count from the other server' });
  assert.equal(await page.locator('#json').getAttribute('href'), `${other.base}/v1/history?url=${encodeURIComponent(url)}`);
  await page.locator('#like').click();
  await waitFor(async () => num(await page.locator('#count').textContent()) === 10, { what: 'like sent to the other server' });
  assert.deepEqual(page.problems, []);
});

// ---- Content-Security-Policy (issue 22 item 6) -----------------------------

const directives = (h) => Object.fromEntries(h.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));

test('HTML pages carry a strict Content-Security-Policy; scripts and styles need none', async () => {
  const other = 'https://count.example.com';
  const s2 = await startServer({ extraArgs: ['--csp-connect-src', `${other}, http://b.example:81 ws://bad;x 'unsafe-eval'`] });
  try {
    for (const path of ['/', '/u.html', '/examples/live-count.html', '/index.html']) {
      const r = await http(s2.base, 'GET', path);
      assert.equal(r.status, 200, path);
      const csp = r.headers.get('content-security-policy');
      assert.ok(csp, `${path}: no content-security-policy`);
      const d = directives(csp);
      assert.deepEqual(d['default-src'], ["'self'"], path);
      assert.deepEqual(d['script-src'], ["'self'"], path);
      assert.deepEqual(d['style-src'], ["'self'"], path);
      assert.deepEqual(d['object-src'], ["'none'"], path);
      assert.deepEqual(d['base-uri'], ["'none'"], path);
      const host = new URL(s2.base).host;
      assert.deepEqual(d['connect-src'], ["'self'", `ws://${host}`, `wss://${host}`,
        other, 'wss://count.example.com', 'http://b.example:81', 'ws://b.example:81'], `${path}: ${csp}`);
      assert.doesNotMatch(csp, /unsafe|bad/, `${path}: a source that is not one was kept`);
    }
    for (const path of ['/app.js', '/style.css', '/sdk/livecount.js', '/v1/top']) {
      const r = await http(s2.base, 'GET', path);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get('content-security-policy'), null, path);
    }
    // A hostile Host header can't add a directive (a raw request: fetch sets Host itself).
    const head = await new Promise((ok, fail) => {
      const sock = connect(s2.port, '127.0.0.1', () => sock.end('GET / HTTP/1.1\r\nHost: x;script-src * \'unsafe-inline\'\r\nConnection: close\r\n\r\n'));
      let got = '';
      sock.on('data', (b) => { got += b; });
      sock.on('end', () => ok(got.split('\r\n\r\n')[0]));
      sock.on('error', fail);
    });
    assert.match(head, /^HTTP\/1\.1 200/);
    const csp = head.match(/^content-security-policy: (.*)$/im)?.[1];
    assert.ok(csp, head);
    assert.doesNotMatch(csp, /x;|script-src \*|unsafe/, csp);
    assert.deepEqual(directives(csp)['connect-src'].slice(0, 1), ["'self'"]);
  } finally {
    await s2.dispose();
  }
});

test('the policy is enforced: an injected inline script is blocked and reported', async (t) => {
  const page = await open(t, '/');
  await page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'globalThis.injected = true';
    document.head.append(s);
  });
  await waitFor(() => page.csp.length > 0, { what: 'a CSP violation report' });
  assert.equal(await page.evaluate(() => globalThis.injected ?? false), false);
  assert.match(page.csp[0], /script-src/);
});

test('dashboard, URL page and <live-count> work under the policy with no violation', async (t) => {
  const url = uniqueUrl('csp');
  await likeHttp(srv.base, url, 2);

  const dash = await open(t, '/');
  await dash.fill('#watch-url', url);
  await dash.press('#watch-url', 'Enter');
  const row = dash.locator(`#rows [data-url="${url}"]`);
  await waitFor(async () => num(await row.locator('.count').textContent()) === 2, { what: 'dashboard count' });
  await row.locator('[data-act=like]').click();
  await waitFor(async () => num(await row.locator('.count').textContent()) === 3, { what: 'dashboard like' });
  await waitFor(async () => num(await dash.locator('#t-likes').textContent()) >= 3, { what: 'dashboard totals' });
  await row.locator('.url a').focus(); // the tooltip (positioned through the CSSOM)
  await waitFor(() => dash.locator('#tip').isVisible(), { what: 'tooltip' });

  const up = await open(t, `/u.html?${new URLSearchParams({ url })}`);
  await waitFor(async () => num(await up.locator('#count').textContent()) === 3, { what: 'URL page count' });
  await waitFor(async () => (await up.locator('#chart').getAttribute('data-state')) === 'ready', { what: 'chart drawn' });
  await up.locator('#like').click();
  await waitFor(async () => num(await up.locator('#count').textContent()) === 4, { what: 'URL page like' });

  const demo = await open(t, '/examples/live-count.html');
  const a = await demo.getAttribute('#a', 'url');
  const shown = () => demo.locator('#a [part=count]').textContent();
  const start = Number(await http(srv.base, 'GET', `/v1/counts?url=${encodeURIComponent(a)}`).then((r) => r.body.counts[a].count));
  await waitFor(async () => num(await shown()) === start, { what: '<live-count> count' });
  await demo.locator('#a [part=button]').click();
  await waitFor(async () => num(await shown()) === start + 1, { what: '<live-count> like' });
  // Its shadow style applies (a constructed stylesheet, not an inline <style>).
  assert.equal(await demo.locator('#a [part=button]').evaluate((b) => getComputedStyle(b).cursor), 'pointer');
  assert.equal(await demo.locator('body').evaluate((b) => getComputedStyle(b).maxWidth), '640px', 'the example page style');

  for (const p of [dash, up, demo]) {
    assert.deepEqual(p.csp, [], p.url());
    assert.deepEqual(p.problems, [], p.url());
  }
});
