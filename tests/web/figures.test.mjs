// Honest live figures (issue 19 item 8) in headless Chromium against a real
// livecount: the dashboard's likes/s and "last minute" sparklines include a
// burst that happened before the page opened (from /v1/history), its
// all-time totals never contradict the "since start" ones during a like
// loop, and the URL page's "last change" is whole at 360 px and in 24-hour
// time like the chart's axis.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { http, launchBrowser, likeHttp, openPage, seedHistory, sleep, startServer, uniqueUrl, waitFor } from './helpers.mjs';

const OLD = 'https://example.com/old/post';
const nowMin = Math.floor(Date.now() / 60000) * 60;
const oldMin = nowMin - 2 * 86400 + 13 * 60; // two days ago

let srv, browser;

before(async () => {
  srv = await startServer(); // creates the database with its schema
  await srv.stop();
  seedHistory(srv.db, [{ url: OLD, minutes: [[oldMin, 4, 1]] }]);
  await srv.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await srv?.dispose();
});

const open = (t, path, opts) => openPage(browser, t, srv.base + path, opts);
const num = (s) => Number(String(s).replace(/[^\d.-]/g, ''));
const row = (page, url) => page.locator(`#rows [data-url="${url}"]`);

test('a burst before the page opened shows in likes/s and the sparkline, counted once', async (t) => {
  const url = uniqueUrl('burst');
  // 1000 likes and 400 unlikes in a few requests: net 600, the top row.
  for (let i = 0; i < 10; i++) await likeHttp(srv.base, url, 100);
  for (let i = 0; i < 4; i++) await likeHttp(srv.base, url, -100);
  const page = await open(t, '/?limit=10');
  const rate = () => row(page, url).locator('.rate').textContent();
  await waitFor(async () => /\d/.test(await rate()), { timeoutMs: 10000, what: 'likes/s of the row' });
  // 600 net likes in the last minute: 10/s, a little less when part of the
  // burst's minute has left the window by now (the minute's average is spread).
  const r0 = num(await rate());
  assert.ok(r0 >= 5 && r0 <= 10, `likes/s ${r0} after a burst of 600 net likes just before the page opened`);
  const spark = await page.evaluate((u) => {
    const r = globalThis.livecount.rows.get(u);
    return { values: [...r.spark.values], fromHistory: r.spark.fromHistory };
  }, url);
  assert.ok(spark.fromHistory > 0, 'part of the sparkline comes from history');
  assert.ok(Math.max(...spark.values) > 0, `sparkline is flat: ${spark.values}`);
  const painted = await row(page, url).locator('canvas').evaluate((cv) => {
    const d = cv.getContext('2d').getImageData(0, 0, cv.width, Math.floor(cv.height / 2)).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 128) n++;
    return n;
  });
  assert.ok(painted > 0, 'the sparkline line rises into the upper half of its box');

  // Live likes add to it once: the live seconds hold exactly the 60 new net
  // likes, the history seconds never more than the 600 before.
  await likeHttp(srv.base, url, 60);
  const sums = () => page.evaluate((u) => {
    const { values, fromHistory } = globalThis.livecount.rows.get(u).spark;
    let past = 0, live = 0;
    values.forEach((v, i) => { if (i < fromHistory) past += v; else live += v; });
    return { past, live };
  }, url);
  await waitFor(async () => Math.abs((await sums()).live - 60) < 1e-9, { what: 'the 60 live likes in the sparkline' });
  const { past } = await sums();
  assert.ok(past <= 600 + 1e-6, `${past} net likes before the page opened: counted twice?`);
  assert.deepEqual(page.problems, []);
});

test('all-time totals never fall below "since start" and count = likes − unlikes, during a like loop', async (t) => {
  const page = await open(t, '/');
  await waitFor(async () => /since start/.test(await page.locator('#t-likes-start').textContent()), { what: 'totals' });
  const url = uniqueUrl('loop');
  let run = true;
  const loop = async (k) => {
    while (run) {
      if (k === 3) await http(srv.base, 'DELETE', `/v1/likes?url=${encodeURIComponent(url)}`);
      else await likeHttp(srv.base, url, 1);
    }
  };
  const loops = [0, 1, 2, 3].map(loop);
  const samples = [];
  const end = Date.now() + 7000; // three or four /v1/stats polls
  while (Date.now() < end) {
    samples.push(await page.evaluate(() => {
      const n = (id) => Number(document.getElementById(id).textContent.replace(/[^\d-]/g, ''));
      return {
        count: n('t-count'), likes: n('t-likes'), unlikes: n('t-unlikes'),
        likesStart: n('t-likes-start'), unlikesStart: n('t-unlikes-start'),
      };
    }));
    await sleep(100);
  }
  run = false;
  await Promise.all(loops);
  const distinct = new Set(samples.map((s) => s.likesStart));
  assert.ok(distinct.size >= 3, `only ${distinct.size} different /v1/stats answers seen`);
  for (const s of samples) {
    assert.ok(s.likes >= s.likesStart, `likes, all time ${s.likes} < ${s.likesStart} since start`);
    assert.ok(s.unlikes >= s.unlikesStart, `unlikes, all time ${s.unlikes} < ${s.unlikesStart} since start`);
    assert.equal(s.count, s.likes - s.unlikes, `count ${s.count} ≠ ${s.likes} − ${s.unlikes}`);
  }
  assert.deepEqual(page.problems, []);
});

test('URL page at 360 px: "last change" is whole and in 24-hour time like the chart', async (t) => {
  for (const [url, prep] of [[OLD, null], [uniqueUrl('now'), (u) => likeHttp(srv.base, u, 2)]]) {
    if (prep) await prep(url);
    // en-US writes 12-hour times by habit; a time zone where the change was in the afternoon.
    const updated = url === OLD ? new Date((oldMin + 59) * 1000 + 123) : new Date();
    const offset = ((15 - updated.getUTCHours() + 36) % 24) - 12; // local hour 15 (or 3 → +12 = 15)
    const zone = `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
    const page = await open(t, `/u.html?${new URLSearchParams({ url })}`,
      { viewport: { width: 360, height: 740 }, isMobile: true, locale: 'en-US', timezoneId: zone });
    await waitFor(async () => /\d:\d\d:\d\d/.test(await page.locator('#updated').textContent()), { what: `last change of ${url}` });
    const text = await page.locator('#updated').textContent();
    assert.doesNotMatch(text, /AM|PM/i, `${text}: 12-hour time`);
    const hh = String((updated.getUTCHours() + offset + 24) % 24).padStart(2, '0');
    assert.match(text, new RegExp(`(^|\\s)${hh}:\\d\\d:\\d\\d$`), `${text} in ${zone}`);
    if (url === OLD) assert.match(text, /2026|20\d\d/, `${text}: the date of an old change`);
    const box = await page.locator('#updated').evaluate((el) => {
      const r = el.getBoundingClientRect();
      return { sw: el.scrollWidth, cw: el.clientWidth, right: r.right, ellipsis: getComputedStyle(el).textOverflow };
    });
    assert.ok(box.sw <= box.cw && box.right <= 360, `"${text}" cut off: ${JSON.stringify(box)}`);
    // The chart's axis labels are 24-hour too.
    await waitFor(async () => (await page.locator('#chart').getAttribute('data-state')) === 'ready', { what: 'chart' });
    for (const l of await page.locator('#chart .xlab').allTextContents()) assert.doesNotMatch(l, /AM|PM/i);
    assert.deepEqual(page.problems, []);
  }
});
