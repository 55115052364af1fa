// History of one URL as an SVG bar chart, drawn here (no dependency).
//
// Data: a Map of minute start (Unix seconds) -> {likes, unlikes, views,
// watching_max}, as GET /v1/history gives it (one point per minute that had
// any change; views and watching_max since issue 19, 0 when absent).
// bucketize() sums it into the buckets of a zoom level; renderChart() turns
// buckets into SVG markup. Neither touches the DOM, so both run in Node too
// (tests/web/chart.test.mjs).
//
// Every bucket is a <g class="pt" data-t data-likes data-unlikes data-views
// data-watching-max> (t = the bucket's start in Unix seconds) so tests and
// tools can read the numbers the chart shows. Likes are bars above the zero
// line, unlikes bars below it in another colour: told apart by position, not
// colour alone. Views (summed per bucket) and the audience peak (the largest
// watching_max of its minutes) are two lines on their own scale, the right
// axis, drawn only when there are any: a solid line (views) and a dashed one
// (peak), told apart by the dash, not colour alone.

/** Zoom levels: how many buckets of how many seconds, the last one holding now. */
export const ZOOMS = {
  '1h': { step: 60, count: 60, label: 'last hour', unit: 'minute' },
  '24h': { step: 300, count: 288, label: 'last 24 hours', unit: '5 minutes' },
  '7d': { step: 3600, count: 168, label: 'last 7 days', unit: 'hour' },
};

/** GET /v1/history answers at most this many points; ask again from the last one when full. */
export const HISTORY_MAX_POINTS = 10080;

/**
 * The time range a zoom level covers at `nowSec` (Unix seconds):
 * `since` (start of the first bucket) and `until` (end of the current minute).
 */
export function rangeOf(zoom, nowSec) {
  const z = ZOOMS[zoom];
  const last = Math.floor(nowSec / z.step) * z.step;
  return { since: last - (z.count - 1) * z.step, until: Math.floor(nowSec / 60) * 60 + 60, step: z.step, count: z.count };
}

/**
 * Sum the minutes of `minutes` (Map minute -> {likes, unlikes, views,
 * watching_max}) into the buckets of `zoom` ending with the one that holds
 * `nowSec`: likes, unlikes and views summed, watching_max the largest.
 * @returns {{t:number, likes:number, unlikes:number, views:number, watching_max:number}[]}
 *   oldest first, exactly ZOOMS[zoom].count long
 */
export function bucketize(minutes, zoom, nowSec) {
  const { since, step, count } = rangeOf(zoom, nowSec);
  const out = Array.from({ length: count }, (_, i) => ({ t: since + i * step, likes: 0, unlikes: 0, views: 0, watching_max: 0 }));
  for (const [m, p] of minutes) {
    const i = Math.floor((m - since) / step);
    if (i < 0 || i >= count) continue;
    out[i].likes += p.likes;
    out[i].unlikes += p.unlikes;
    out[i].views += p.views || 0;
    out[i].watching_max = Math.max(out[i].watching_max, p.watching_max || 0);
  }
  return out;
}

/** 1, 2 or 5 times a power of ten, at least `x`. */
export function niceStep(x) {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return Math.max(1, m * p);
  return 10 * p;
}

const pad2 = (n) => String(n).padStart(2, '0');
const hhmm = (d) => `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

// Which bucket starts get an x-axis label (local time), and its text.
function xLabel(zoom, t) {
  const d = new Date(t * 1000);
  if (zoom === '1h') return d.getMinutes() % 10 === 0 ? hhmm(d) : null;
  if (zoom === '24h') return d.getMinutes() === 0 && d.getHours() % 3 === 0 ? hhmm(d) : null;
  return d.getHours() === 0 ? `${DAYS[d.getDay()]} ${d.getDate()}` : null;
}

function bucketTitle(zoom, b, step, current) {
  const a = new Date(b.t * 1000), e = new Date((b.t + step) * 1000);
  const when = zoom === '7d' ? `${DAYS[a.getDay()]} ${a.getDate()} ${hhmm(a)}–${hhmm(e)}` : `${hhmm(a)}–${hhmm(e)}`;
  const views = b.views || b.watching_max ? `, ${b.views} view${b.views === 1 ? '' : 's'}, audience peak ${b.watching_max}` : '';
  return `${when}: ${b.likes} like${b.likes === 1 ? '' : 's'}, ${b.unlikes} unlike${b.unlikes === 1 ? '' : 's'}${views}` +
    (current ? ' (so far)' : '');
}

const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

/**
 * SVG markup (the inside of an <svg>) for `buckets` at `width` x `height`.
 * The last bucket is drawn as in progress.
 */
export function renderChart(buckets, { zoom, width, height }) {
  const step = ZOOMS[zoom].step;
  let maxL = 0, maxU = 0, maxA = 0;
  for (const b of buckets) {
    if (b.likes > maxL) maxL = b.likes;
    if (b.unlikes > maxU) maxU = b.unlikes;
    maxA = Math.max(maxA, b.views || 0, b.watching_max || 0);
  }
  const left = 40, right = maxA ? 40 : 8, top = 10, bottom = 22;
  const w = Math.max(50, width - left - right), h = Math.max(40, height - top - bottom);
  // One linear scale from -low (unlikes) to high (likes); when there are
  // unlikes they get at least a thirteenth of the height, so they stay visible.
  const tick = niceStep(Math.max(maxL, maxU, 1) / 4);
  const high = Math.max(tick, Math.ceil(maxL / tick) * tick);
  const low = maxU > 0 ? Math.max(maxU * 1.15, high / 12) : 0;
  const y = (v) => top + ((high - v) / (high + low)) * h;
  const bw = w / buckets.length;
  const barW = bw >= 3 ? bw * 0.8 : bw;
  const parts = [];
  let lastLabelX = -Infinity;
  for (let v = -Math.floor(low / tick) * tick; v <= high; v += tick) {
    const yy = y(v).toFixed(1);
    parts.push(`<line class="${v === 0 ? 'zero' : 'grid'}" x1="${left}" x2="${left + w}" y1="${yy}" y2="${yy}"/>`,
      `<text class="ylab" x="${left - 6}" y="${yy}" dy="0.35em" text-anchor="end">${v < 0 ? '−' : ''}${compact.format(Math.abs(v))}</text>`);
  }
  const y0 = y(0);
  buckets.forEach((b, i) => {
    const x = left + i * bw;
    const current = i === buckets.length - 1;
    const hl = y0 - y(b.likes), hu = y(-b.unlikes) - y0;
    const bx = (x + (bw - barW) / 2).toFixed(2);
    parts.push(`<g class="pt${current ? ' now' : ''}" data-t="${b.t}" data-likes="${b.likes}" data-unlikes="${b.unlikes}" ` +
      `data-views="${b.views || 0}" data-watching-max="${b.watching_max || 0}">` +
      `<title>${bucketTitle(zoom, b, step, current)}</title>` +
      `<rect class="hit" x="${x.toFixed(2)}" y="${top}" width="${bw.toFixed(2)}" height="${h}"/>` +
      (b.likes ? `<rect class="likes" x="${bx}" y="${(y0 - hl).toFixed(2)}" width="${barW.toFixed(2)}" height="${Math.max(1, hl).toFixed(2)}"/>` : '') +
      (b.unlikes ? `<rect class="unlikes" x="${bx}" y="${y0.toFixed(2)}" width="${barW.toFixed(2)}" height="${Math.max(1, hu).toFixed(2)}"/>` : '') +
      '</g>');
    const label = xLabel(zoom, b.t);
    if (label && x - lastLabelX >= 48) { // no labels on top of each other on a phone
      lastLabelX = x;
      parts.push(`<line class="xtick" x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${top + h}" y2="${top + h + 4}"/>`,
        `<text class="xlab" x="${x.toFixed(1)}" y="${top + h + 16}" text-anchor="middle">${label}</text>`);
    }
  });
  if (maxA) {
    // Views and the audience peak: 0 at the bottom, the right axis's top at
    // a round number at or above the largest of both.
    const atick = niceStep(maxA / 4);
    const ahigh = Math.max(atick, Math.ceil(maxA / atick) * atick);
    const ay = (v) => top + h - (v / ahigh) * h;
    for (let v = 0; v <= ahigh; v += atick) {
      parts.push(`<text class="alab" x="${left + w + 6}" y="${ay(v).toFixed(1)}" dy="0.35em" text-anchor="start">${compact.format(v)}</text>`);
    }
    for (const [key, cls] of [['views', 'views'], ['watching_max', 'peak']]) {
      const pts = buckets.map((b, i) => `${(left + (i + 0.5) * bw).toFixed(1)},${ay(b[key] || 0).toFixed(1)}`);
      parts.push(`<polyline class="${cls}" points="${pts.join(' ')}"/>`);
    }
  }
  return parts.join('');
}
