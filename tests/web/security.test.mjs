// The pages' defences in headless Chromium against a real livecount: the
// ?server= parameter can't turn a link into script (issue 22 item 3), and
// every page served works under its Content-Security-Policy with no
// violation (item 6).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
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
  const other = await startServer(); // a second livecount: another origin (port)
  t.after(() => other.dispose());
  const url = uniqueUrl('server-ok');
  await likeHttp(other.base, url, 9);
  const page = await open(t, `/?${new URLSearchParams({ server: other.base + '/' })}`);
  await page.fill('#watch-url', url);
  await page.press('#watch-url', 'Enter');
  const row = page.locator(`#rows [data-url="${url}"]`);
  await waitFor(async () => num(await row.locator('.count').textContent()) === 9, { what: 'count from the other server' });
  await row.locator('.url a').click();
  await page.waitForURL(/u\.html/);
  await waitFor(async () => num(await page.locator('#count').textContent()) === 9, { what: 'URL page count from the other server' });
  assert.equal(await page.locator('#json').getAttribute('href'), `${other.base}/v1/history?url=${encodeURIComponent(url)}`);
  assert.deepEqual(page.problems, []);
});
