// The page modules that need no browser, in Node: chart buckets and scale
// (web/chart.js), URL shortening (web/urlfmt.js).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ZOOMS, bucketize, niceStep, rangeOf, renderChart } from '../../web/chart.js';
import { attr, splitUrl } from '../../web/urlfmt.js';

const T = 1_800_000_000; // a Unix time on a whole hour (and day: 1800000000 % 86400 = 57600 s, 16:00 UTC)

test('rangeOf: the last bucket holds now, until is the end of the current minute', () => {
  const now = T + 2 * 3600 + 17 * 60 + 42; // 18:17:42
  assert.deepEqual(rangeOf('1h', now), { since: T + 2 * 3600 + 17 * 60 - 59 * 60, until: T + 2 * 3600 + 18 * 60, step: 60, count: 60 });
  assert.equal(rangeOf('24h', now).since, T + 2 * 3600 + 15 * 60 - 287 * 300);
  assert.equal(rangeOf('7d', now).since, T + 2 * 3600 - 167 * 3600);
  // 7 days of minutes fit one /v1/history answer (10080 points).
  const r = rangeOf('7d', now);
  assert.ok((r.until - r.since) / 60 <= 10080);
});

test('bucketize sums minutes into the zoom buckets and drops what is outside', () => {
  const now = T + 3600 + 30;
  const minutes = new Map([
    [T + 3600, { likes: 1, unlikes: 0 }], // current minute, current 5-min and hour bucket
    [T + 3540, { likes: 2, unlikes: 1 }], // previous minute, previous 5-min and hour bucket
    [T + 3300, { likes: 4, unlikes: 0 }], // 5 min before the hour
    [T + 3600 - 60 * 60, { likes: 100, unlikes: 0 }], // 60 min ago: outside 1h, inside 24h
    [T + 3600 - 8 * 86400, { likes: 1000, unlikes: 0 }], // outside everything
  ]);
  const h = bucketize(minutes, '1h', now);
  assert.equal(h.length, 60);
  assert.deepEqual(h.at(-1), { t: T + 3600, likes: 1, unlikes: 0, views: 0, watching_max: 0 });
  assert.deepEqual(h.at(-2), { t: T + 3540, likes: 2, unlikes: 1, views: 0, watching_max: 0 });
  assert.deepEqual(h.at(-6), { t: T + 3300, likes: 4, unlikes: 0, views: 0, watching_max: 0 });
  assert.equal(h.reduce((a, b) => a + b.likes, 0), 7);
  const d = bucketize(minutes, '24h', now);
  assert.equal(d.length, 288);
  assert.deepEqual(d.at(-2), { t: T + 3300, likes: 6, unlikes: 1, views: 0, watching_max: 0 });
  assert.equal(d.reduce((a, b) => a + b.likes, 0), 107);
  const w = bucketize(minutes, '7d', now);
  assert.equal(w.length, 168);
  assert.deepEqual(w.at(-1), { t: T + 3600, likes: 1, unlikes: 0, views: 0, watching_max: 0 });
  assert.deepEqual(w.at(-2), { t: T, likes: 106, unlikes: 1, views: 0, watching_max: 0 });
});

test('niceStep and the rendered chart: one group per bucket with its numbers, unlikes below zero', () => {
  assert.deepEqual([0, 0.3, 1, 3, 7, 12, 45, 180].map(niceStep), [1, 1, 1, 5, 10, 20, 50, 200]);
  const b = [{ t: T, likes: 10, unlikes: 0 }, { t: T + 60, likes: 0, unlikes: 3 }, { t: T + 120, likes: 2, unlikes: 1 }];
  const svg = renderChart(b, { zoom: '1h', width: 400, height: 200 });
  const groups = [...svg.matchAll(/<g class="pt( now)?" data-t="(\d+)" data-likes="(\d+)" data-unlikes="(\d+)" data-views="0" data-watching-max="0">/g)];
  assert.deepEqual(groups.map((g) => [+g[2], +g[3], +g[4], !!g[1]]), [[T, 10, 0, false], [T + 60, 0, 3, false], [T + 120, 2, 1, true]]);
  const zero = +svg.match(/<line class="zero"[^>]* y1="([\d.]+)"/)[1];
  for (const m of svg.matchAll(/<rect class="likes"[^>]* y="([\d.]+)"[^>]* height="([\d.]+)"/g)) assert.ok(Math.abs(+m[1] + +m[2] - zero) < 0.05, 'likes end on the zero line');
  for (const m of svg.matchAll(/<rect class="unlikes"[^>]* y="([\d.]+)"/g)) assert.ok(Math.abs(+m[1] - zero) < 0.05, 'unlikes start on it');
  assert.equal([...svg.matchAll(/class="likes"/g)].length, 2);
  assert.equal([...svg.matchAll(/class="unlikes"/g)].length, 2);
  assert.ok(Object.keys(ZOOMS).every((z) => renderChart(bucketize(new Map(), z, T), { zoom: z, width: 300, height: 150 }).includes('class="zero"')));
});

test('views and the audience peak: summed and maxed per bucket, two lines on the right axis only when any', () => {
  const now = T + 3600 + 30;
  const minutes = new Map([
    [T + 3600, { likes: 1, unlikes: 0, views: 5, watching_max: 2 }],
    [T + 3540, { likes: 0, unlikes: 0, views: 7, watching_max: 9 }],
    [T + 3480, { likes: 0, unlikes: 0, views: 1, watching_max: 4 }],
    [T + 3420, { likes: 2, unlikes: 0 }], // a point from a server before issue 19
  ]);
  const h = bucketize(minutes, '1h', now);
  assert.deepEqual(h.at(-1), { t: T + 3600, likes: 1, unlikes: 0, views: 5, watching_max: 2 });
  assert.deepEqual(h.at(-4), { t: T + 3420, likes: 2, unlikes: 0, views: 0, watching_max: 0 });
  const d = bucketize(minutes, '24h', now);
  assert.deepEqual(d.at(-2), { t: T + 3300, likes: 2, unlikes: 0, views: 8, watching_max: 9 }, 'views summed, the peak is the largest');
  const svg = renderChart(h, { zoom: '1h', width: 400, height: 200 });
  const pts = [...svg.matchAll(/data-views="(\d+)" data-watching-max="(\d+)"/g)].map((m) => [+m[1], +m[2]]);
  assert.deepEqual(pts.slice(-3), [[1, 4], [7, 9], [5, 2]]);
  assert.equal([...svg.matchAll(/<polyline class="views"/g)].length, 1);
  assert.equal([...svg.matchAll(/<polyline class="peak"/g)].length, 1);
  assert.ok(svg.includes('class="alab"'), 'a right axis');
  assert.match(svg, /7 views, audience peak 9/);
  const plain = renderChart(bucketize(new Map([[T + 3600, { likes: 1, unlikes: 0 }]]), '1h', now), { zoom: '1h', width: 400, height: 200 });
  assert.ok(!plain.includes('polyline') && !plain.includes('alab'), 'no lines without views or watchers');
});

test('splitUrl keeps the host and the end of the path; attr escapes for HTML', () => {
  const cases = {
    'https://example.com/blog/hello-world': ['example.com/blog', '/hello-world'],
    'https://example.com/': ['example.com/', ''],
    'http://example.com': ['example.com', ''],
    'urn:isbn:0451450523': ['urn:isbn:0451450523', ''],
    'https://example.com/a/very-long-slug-that-goes-on-and-on-forever': ['example.com/a/very-long-slug-that', '-goes-on-and-on-forever'],
    'https://example.com/posts/42/': ['example.com/posts', '/42/'],
  };
  for (const [url, [head, tail]] of Object.entries(cases)) {
    assert.deepEqual(splitUrl(url), { head, tail }, url);
    assert.ok(tail.length <= 24);
  }
  assert.equal(attr('a&b"<c>'), 'a&amp;b&quot;&lt;c&gt;');
});
