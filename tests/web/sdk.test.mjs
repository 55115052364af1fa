// The SDK (web/sdk/livecount.js) in Node against a real livecount with its
// default limits: both transports, likes, errors, shared subscriptions,
// unsubscribe, the WebSocket pool (max_subs_per_conn), SSE splitting,
// reconnect after a restart, the `online` event, 'auto' falling back to SSE.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from '../../web/sdk/livecount.js';
import { NodeEventSource, countHttp, freePort, http, likeHttp, sleep, startServer, uniqueUrl, waitFor } from './helpers.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.dispose(); });

// A WebSocket that records the frames it sends.
function spyWebSocket() {
  const frames = [];
  class Spy extends WebSocket {
    send(data, ...rest) {
      frames.push(JSON.parse(data));
      return super.send(data, ...rest);
    }
  }
  return { Spy, frames };
}

function client(t, opts = {}) {
  const c = createClient(srv.base, {
    WebSocket, EventSource: NodeEventSource, minDelayMs: 100, maxDelayMs: 1000, ...opts,
  });
  t.after(() => c.close());
  return c;
}

// Collects what one subscription's callback receives.
function watch(c, url) {
  const seen = [];
  const off = c.subscribe(url, (count, info) => seen.push({ count, ...info }));
  return { seen, off, last: () => seen.at(-1) };
}

const TICKS = 350; // a few dispatch ticks (100 ms each) plus delivery

for (const transport of ['ws', 'sse']) {
  describe(`transport ${transport}`, () => {
    test('snapshot on subscribe, then absolute updates with delta, seq and ts', async (t) => {
      const url = uniqueUrl('snap');
      await likeHttp(srv.base, url, 5);
      await sleep(TICKS); // so the next update carries only the next like
      const c = client(t, { transport });
      const states = [];
      c.on('state', (s) => states.push(s));
      const w = watch(c, url);
      await waitFor(() => w.seen.length, { what: 'snapshot' });
      assert.deepEqual(
        { count: w.seen[0].count, snapshot: w.seen[0].snapshot, url: w.seen[0].url },
        { count: 5, snapshot: true, url },
      );
      assert.equal(c.state, 'connected');
      assert.equal(c.transport, transport);
      assert.deepEqual(states.slice(0, 2), ['connecting', 'connected']);

      assert.deepEqual(await c.like(url, 3), { url, count: 8 });
      await waitFor(() => w.last().count === 8, { what: 'update to 8' });
      const u = w.last();
      assert.equal(u.snapshot, false);
      assert.equal(u.delta, 3);
      assert.equal(typeof u.seq, 'number');
      assert.ok(Math.abs(u.ts - Date.now()) < 10000, `ts ${u.ts} is server wall clock in ms`);

      await c.unlike(url, 10);
      await waitFor(() => w.last().count === -2, { what: 'update to -2' });
      assert.equal(w.last().delta, -10);
      assert.equal(c.count(url), -2);
    });

    test('views and watching reach the callback (issue 19): snapshot, updates, shared subscribers', async (t) => {
      const url = uniqueUrl('stats');
      const v = await http(srv.base, 'POST', `/v1/views?url=${encodeURIComponent(url)}&n=4`);
      assert.deepEqual(v.body, { url, views: 4 });
      await likeHttp(srv.base, url, 2);
      await sleep(TICKS); // merged, so the snapshot has them
      const c = client(t, { transport });
      const w = watch(c, url);
      await waitFor(() => w.seen.length, { what: 'snapshot' });
      assert.equal(w.seen[0].snapshot, true);
      assert.equal(w.seen[0].count, 2, 'the first argument is still the count');
      await waitFor(() => w.last().views === 4, { what: 'views 4 (snapshot or first update)' });
      // This client's own subscription is counted once the server publishes it.
      await waitFor(() => w.last().watching === 1, { timeoutMs: 8000, what: 'watching 1' });
      assert.deepEqual(c.stats(url), { count: 2, views: 4, watching: 1 });
      // A second client on the same URL: both see 2 watching.
      const c2 = client(t, { transport });
      const w2 = watch(c2, url);
      await waitFor(() => w.last().watching === 2, { timeoutMs: 8000, what: 'watching 2' });
      await waitFor(() => w2.last()?.watching === 2, { timeoutMs: 8000, what: 'watching 2 (second client)' });
      // view() over HTTP: the reply and the live update carry the new figure.
      assert.deepEqual(await c.view(url, 3), { url, views: 7 });
      await waitFor(() => w.last().views === 7, { what: 'update with views 7' });
      assert.equal(w.last().count, 2, 'a view is not a like');
      assert.equal(w.last().delta, 0);
      assert.equal(w.last().viewsDelta, 3);
      // A second callback on the shared subscription gets the figures at once.
      const shared = watch(c, url);
      await waitFor(() => shared.seen.length, { what: 'shared snapshot' });
      assert.deepEqual([shared.seen[0].count, shared.seen[0].views, shared.seen[0].watching], [2, 7, 2]);
      // The second client leaves: watching falls back to 1.
      c2.close();
      await waitFor(() => w.last().watching === 1, { timeoutMs: 8000, what: 'watching back to 1' });
    });

    test('unsubscribe stops callbacks', async (t) => {
      const c = client(t, { transport });
      const a = uniqueUrl('unsub-a'), b = uniqueUrl('unsub-b');
      const wa = watch(c, a), wb = watch(c, b);
      await waitFor(() => wa.seen.length && wb.seen.length, { what: 'both snapshots' });
      wa.off();
      wa.off(); // idempotent
      const before = wa.seen.length;
      await sleep(150); // let the unsubscribe reach the server (SSE reopens its stream)
      await likeHttp(srv.base, a, 1);
      await likeHttp(srv.base, b, 1);
      await waitFor(() => wb.last().count === 1, { what: 'update of b' });
      await sleep(TICKS);
      assert.equal(wa.seen.length, before, 'no callback after unsubscribe');
      assert.equal(c.count(a), undefined);
    });

    test('several subscribers to one URL share one server subscription', async (t) => {
      const url = uniqueUrl('shared');
      await likeHttp(srv.base, url, 2);
      await sleep(TICKS); // a snapshot may be one tick stale
      const { Spy, frames } = spyWebSocket();
      const esBefore = NodeEventSource.instances;
      const c = client(t, { transport, WebSocket: Spy });
      const w1 = watch(c, url);
      await waitFor(() => w1.seen.length, { what: 'first snapshot' });
      const w2 = watch(c, url);
      await waitFor(() => w2.seen.length, { what: 'second subscriber gets the known count' });
      assert.equal(w2.seen[0].count, 2);
      assert.equal(w2.seen[0].snapshot, true);

      await likeHttp(srv.base, url, 1);
      await waitFor(() => w1.last().count === 3 && w2.last().count === 3, { what: 'both see 3' });
      if (transport === 'ws') {
        const subs = frames.filter((f) => f.op === 'subscribe' && f.urls.includes(url));
        assert.equal(subs.length, 1, 'one subscribe frame for two subscribers');
      } else {
        assert.equal(NodeEventSource.instances - esBefore, 1, 'one EventSource for two subscribers');
      }

      w1.off();
      await likeHttp(srv.base, url, 1);
      await waitFor(() => w2.last().count === 4, { what: 'remaining subscriber still updated' });
      if (transport === 'ws') assert.equal(frames.filter((f) => f.op === 'unsubscribe').length, 0);
      w2.off();
      if (transport === 'ws') {
        await waitFor(() => frames.some((f) => f.op === 'unsubscribe' && f.urls.includes(url)), { what: 'unsubscribe frame' });
      }
    });

    test('many URLs on one client (split into frames or streams as the server limits require)', async (t) => {
      const urls = Array.from({ length: 80 }, () => uniqueUrl('many'));
      const r = await http(srv.base, 'POST', '/v1/likes', urls.map((url, i) => ({ url, n: i + 1 })));
      assert.equal(r.status, 200, r.text);
      const c = client(t, { transport });
      const got = new Map();
      for (const u of urls) c.subscribe(u, (n) => got.set(u, n));
      await waitFor(() => urls.every((u, i) => got.get(u) === i + 1), { what: 'all 80 snapshots' });
      await likeHttp(srv.base, urls[79], 1);
      await waitFor(() => got.get(urls[79]) === 81, { what: 'update of the last URL' });
    });
  });
}

// A WebSocket class that keeps every instance (to count and drop sockets) and
// records the frames each one sends.
function poolSpy() {
  const sockets = [];
  class Pool extends WebSocket {
    constructor(...a) {
      super(...a);
      this.frames = [];
      sockets.push(this);
    }
    send(data, ...rest) {
      this.frames.push(JSON.parse(data));
      return super.send(data, ...rest);
    }
  }
  const open = () => sockets.filter((s) => s.readyState === WebSocket.OPEN);
  return { Pool, sockets, open };
}

// Distinct URLs with counts 1..n (one batch).
async function seeded(tag, n) {
  const urls = Array.from({ length: n }, () => uniqueUrl(tag));
  const r = await http(srv.base, 'POST', '/v1/likes', urls.map((url, i) => ({ url, n: i + 1 })));
  assert.equal(r.status, 200, r.text);
  await sleep(TICKS); // snapshots may be a tick stale
  return urls;
}

describe('WebSocket pool (server default max_subs_per_conn 100)', () => {
  test('250 URLs: three sockets, every snapshot, updates in the last shard', async (t) => {
    const urls = await seeded('pool', 250);
    const { Pool, sockets, open } = poolSpy();
    const c = client(t, { transport: 'ws', WebSocket: Pool });
    const errors = [];
    c.on('error', (e) => errors.push(e.code || e.message));
    const got = new Map(), snap = new Set();
    for (const u of urls) {
      c.subscribe(u, (n, info) => {
        got.set(u, n);
        if (info.snapshot) snap.add(u);
      });
    }
    await waitFor(() => snap.size === 250 && urls.every((u, i) => got.get(u) === i + 1),
      { what: `all 250 snapshots (have ${snap.size})` });
    assert.equal(c.state, 'connected');
    assert.equal(sockets.length, 3, 'ceil(250 / 100) sockets');
    const per = sockets.map((s) => new Set(s.frames.filter((f) => f.op === 'subscribe').flatMap((f) => f.urls)).size);
    assert.deepEqual(per, [100, 100, 50]);

    const last = sockets[2].frames.find((f) => f.op === 'subscribe').urls.at(-1);
    assert.equal(last, urls[249]);
    await likeHttp(srv.base, last, 1000);
    await waitFor(() => got.get(last) === 1250, { what: 'update of a URL in the last shard' });
    await likeHttp(srv.base, urls[0], 1); // and in the first
    await waitFor(() => got.get(urls[0]) === 2, { what: 'update of a URL in the first shard' });
    assert.deepEqual(errors, [], 'no error frames (too_many_subscriptions) from the server');
    assert.equal(open().length, 3);
  });

  test('a shard that empties closes; new URLs fill free room first', async (t) => {
    const urls = await seeded('pool-close', 150);
    const { Pool, sockets, open } = poolSpy();
    const c = client(t, { transport: 'ws', WebSocket: Pool });
    const offs = urls.map((u) => c.subscribe(u, () => {}));
    await waitFor(() => urls.every((u) => c.count(u) !== undefined), { what: '150 snapshots' });
    assert.equal(open().length, 2);
    for (const off of offs.slice(100)) off(); // the second shard's 50
    await waitFor(() => open().length === 1, { what: 'the empty socket closes' });
    for (const off of offs.slice(0, 10)) off(); // room on the first shard
    const more = await seeded('pool-more', 10);
    for (const u of more) c.subscribe(u, () => {});
    await waitFor(() => more.every((u) => c.count(u) !== undefined), { what: 'snapshots of the new URLs' });
    assert.equal(sockets.length, 2, 'no new socket while the first has room');
    assert.equal(open().length, 1);
    assert.ok(sockets[0].frames.some((f) => f.op === 'unsubscribe' && f.urls.includes(urls[0])));
    assert.ok(sockets[0].frames.some((f) => f.op === 'subscribe' && f.urls.includes(more[0])));
    assert.equal(c.state, 'connected');
  });

  test('a dropped shard reconnects and resubscribes on its own', async (t) => {
    const urls = await seeded('pool-drop', 120);
    const { Pool, sockets, open } = poolSpy();
    const c = client(t, { transport: 'ws', WebSocket: Pool });
    const states = [];
    const retries = []; // the retry delay each 'disconnected' announced
    c.on('state', (s, info) => {
      states.push(s);
      if (s === 'disconnected') retries.push(info.retryInMs);
    });
    const got = new Map();
    for (const u of urls) c.subscribe(u, (n) => got.set(u, n));
    await waitFor(() => got.size === 120 && open().length === 2, { what: '120 snapshots on two sockets' });
    const [first, second] = sockets;
    second.terminate(); // the network drops the second socket only
    // From the event, not by polling c.state/c.retryInMs: on a loaded
    // machine the poll came after the retry was due (retryInMs 0) or after
    // the reconnect.
    await waitFor(() => retries.length > 0, { what: 'disconnected while one shard is down' });
    assert.ok(retries[0] > 0 && retries[0] <= 1000, `retry in ${retries[0]} ms`);
    await likeHttp(srv.base, urls[119], 5); // counted while its shard is down
    await waitFor(() => c.state === 'connected' && sockets.length === 3, { what: 'the shard reconnected' });
    await waitFor(() => got.get(urls[119]) === 125, { what: 'resubscribed snapshot or update' });
    assert.equal(first.readyState, WebSocket.OPEN, 'the other shard stayed up');
    assert.equal(sockets[2].frames.filter((f) => f.op === 'subscribe').flatMap((f) => f.urls).length, 20);
    assert.deepEqual(states.slice(-2), ['connecting', 'connected']);
  });

  test('too_many_subscriptions from a stricter server is reported, not retried', async (t) => {
    const strict = await startServer({ extraArgs: ['--max-subs-per-conn', '10'] });
    t.after(() => strict.dispose());
    const urls = Array.from({ length: 25 }, () => uniqueUrl('strict'));
    const { Pool, sockets } = poolSpy();
    const lc = createClient(strict.base, { transport: 'ws', WebSocket: Pool, minDelayMs: 100, maxDelayMs: 1000 });
    t.after(() => lc.close());
    const errors = [];
    lc.on('error', (e) => errors.push(e.code));
    for (const u of urls) lc.subscribe(u, () => {});
    await waitFor(() => errors.includes('too_many_subscriptions'), { what: 'error event' });
    await sleep(1000);
    assert.equal(lc.state, 'connected', 'the socket stays up');
    assert.equal(sockets.length, 1);
    assert.equal(sockets[0].frames.length, 1, 'the rejected subscribe is not sent again');
    assert.deepEqual(errors, ['too_many_subscriptions']);

    // With the limit configured to match, the same URLs spread over 3 sockets.
    const spy = poolSpy();
    const ok = createClient(strict.base, { transport: 'ws', WebSocket: spy.Pool, maxUrlsPerConnection: 10 });
    t.after(() => ok.close());
    ok.on('error', (e) => errors.push(e.code));
    for (const u of urls) ok.subscribe(u, () => {});
    await waitFor(() => urls.every((u) => ok.count(u) === 0), { what: '25 snapshots' });
    assert.equal(spy.open().length, 3);
    await likeHttp(strict.base, urls[24], 2);
    await waitFor(() => ok.count(urls[24]) === 2, { what: 'update in the third shard' });
    assert.deepEqual(errors, ['too_many_subscriptions']);
  });
});

test('SSE: one EventSource per maxUrlsPerStream URLs', async (t) => {
  const urls = await seeded('sse-split', 25);
  const before = NodeEventSource.instances;
  const c = client(t, { transport: 'sse', maxUrlsPerStream: 10 });
  for (const u of urls) c.subscribe(u, () => {});
  await waitFor(() => urls.every((u, i) => c.count(u) === i + 1), { what: '25 snapshots' });
  assert.equal(NodeEventSource.instances - before, 3);
});

test('like/unlike resolve to {url, count} over HTTP', async (t) => {
  const c = client(t);
  const url = uniqueUrl('like');
  // A reply counts this request plus what the last tick merged (API.md):
  // likes sent through another worker show after a tick, so wait one.
  const step = async (p) => { const r = await p; await sleep(TICKS); return r; };
  assert.deepEqual(await step(c.like(url)), { url, count: 1 });
  assert.deepEqual(await step(c.like(url, 4)), { url, count: 5 });
  assert.deepEqual(await step(c.unlike(url, 2)), { url, count: 3 });
  assert.deepEqual(await step(c.unlike(url)), { url, count: 2 });
  const odd = 'https://example.test/ü?q=a&b=c d#frag';
  const r = await c.like(odd, 1);
  assert.equal(r.url, odd);
  assert.equal(await countHttp(srv.base, url), 2);
  assert.equal(c.state, 'disconnected', 'likes alone open no live connection');
});

test('view() resolves to {url, views}; a bad n rejects with bad_n and counts nothing', async (t) => {
  const c = client(t);
  const url = uniqueUrl('view');
  assert.deepEqual(await c.view(url), { url, views: 1 });
  await sleep(TICKS);
  assert.deepEqual(await c.view(url, 9), { url, views: 10 });
  for (const n of [0, -1, 1000001]) {
    const err = await c.view(url, n).then(() => null, (e) => e);
    assert.equal(err?.code, 'bad_n', `n=${n}`);
    assert.equal(err.status, 400);
  }
  await waitFor(async () => (await http(srv.base, 'GET', `/v1/counts?url=${encodeURIComponent(url)}`)).body.counts[url].views === 10,
    { what: 'views 10' });
  assert.equal(await countHttp(srv.base, url), 0, 'views are not likes');
});

test('errors reject with the server error code and HTTP status', async (t) => {
  const c = client(t);
  const url = uniqueUrl('err');
  for (const [what, call] of [
    ['n=0', () => c.like(url, 0)],
    ['n too large', () => c.like(url, 1000001)],
    ['n negative', () => c.unlike(url, -1)],
    ['empty url', () => c.like('')],
    ['url too long', () => c.unlike('x'.repeat(2049))],
    ['control character', () => c.like('a\u0001b')],
  ]) {
    const err = await call().then(() => null, (e) => e);
    assert.ok(err instanceof Error, `${what}: rejected`);
    assert.equal(err.status, 400, `${what}: status`);
    assert.equal(typeof err.code, 'string', `${what}: code`);
    assert.ok(err.code.length > 0 && !err.code.startsWith('http_'), `${what}: code ${err.code} comes from the body`);
  }
  assert.equal(await countHttp(srv.base, url), 0, 'rejected requests count nothing');

  const gone = createClient(`http://127.0.0.1:${await freePort()}`);
  const err = await gone.like(url).then(() => null, (e) => e);
  assert.equal(err.code, 'network');
  assert.equal(err.status, 0);
  gone.close();
});

test('subscribe rejects URLs the server would refuse', (t) => {
  const c = client(t);
  assert.throws(() => c.subscribe('', () => {}), TypeError);
  assert.throws(() => c.subscribe('a\nb', () => {}), TypeError);
  assert.throws(() => c.subscribe('é'.repeat(1025), () => {}), TypeError); // 2050 bytes
});

test("'auto' uses WebSocket when it works", async (t) => {
  const c = client(t, { transport: 'auto' });
  const w = watch(c, uniqueUrl('auto-ws'));
  await waitFor(() => w.seen.length, { what: 'snapshot' });
  assert.equal(c.transport, 'ws');
});

test("'auto' falls back to SSE when WebSocket is refused", async (t) => {
  const closed = await freePort(); // nothing listens there: connection refused
  let tried = 0;
  class Refused extends WebSocket {
    constructor(url, proto) {
      tried++;
      super(url.replace(/:\d+\//, `:${closed}/`), proto);
    }
  }
  const c = client(t, { transport: 'auto', WebSocket: Refused });
  const url = uniqueUrl('fallback');
  const w = watch(c, url);
  await waitFor(() => w.seen.length, { what: 'snapshot over SSE' });
  assert.equal(tried, 1);
  assert.equal(c.transport, 'sse');
  assert.equal(c.state, 'connected');
  await c.like(url, 7);
  await waitFor(() => w.last().count === 7, { what: 'update over SSE' });

  // A WebSocket class that throws in its constructor counts as refused too.
  class Throws { constructor() { throw new Error('blocked'); } }
  const c2 = client(t, { transport: 'auto', WebSocket: Throws });
  const w2 = watch(c2, url);
  await waitFor(() => w2.seen.length, { what: 'snapshot over SSE' });
  assert.equal(c2.transport, 'sse');
});

test('reconnects after the server restarts and resubscribes everything', async (t) => {
  const url = uniqueUrl('restart');
  await likeHttp(srv.base, url, 2);
  const clients = ['ws', 'sse'].map((transport) => {
    const c = client(t, { transport });
    const states = [];
    c.on('state', (s, info) => states.push({ s, ...info }));
    return { c, w: watch(c, url), states };
  });
  await waitFor(() => clients.every(({ w }) => w.seen.length), { what: 'snapshots' });

  await srv.stop();
  for (const { c, states } of clients) {
    await waitFor(() => c.state === 'disconnected', { what: `${c.transport} disconnected` });
    const d = states.find((x) => x.s === 'disconnected');
    assert.ok(d.retryInMs >= 100 && d.retryInMs <= 1000, `retry delay ${d.retryInMs} within min/max`);
    assert.ok(c.retryAt > 0 || c.state !== 'disconnected');
  }
  await sleep(300); // let a few attempts fail
  await srv.start(); // same port, same database
  await likeHttp(srv.base, url, 1); // 3 now; the clients learn it from the snapshot or an update
  for (const { c, w } of clients) {
    await waitFor(() => c.state === 'connected', { timeoutMs: 8000, what: `${c.transport} reconnected` });
    await waitFor(() => w.last().count === 3, { what: `${c.transport} count after restart` });
  }
  await likeHttp(srv.base, url, 1);
  for (const { c, w } of clients) {
    await waitFor(() => w.last().count === 4 && !w.last().snapshot, { what: `${c.transport} live again` });
  }
});

test("the browser's online event reconnects at once", async (t) => {
  // Node has no window: give the SDK a global event target for this client.
  const handlers = {};
  globalThis.addEventListener = (type, fn) => { handlers[type] = fn; };
  globalThis.removeEventListener = (type) => { delete handlers[type]; };
  t.after(() => { delete globalThis.addEventListener; delete globalThis.removeEventListener; });

  const c = client(t, { transport: 'ws', minDelayMs: 60000, maxDelayMs: 60000 });
  const url = uniqueUrl('online');
  const w = watch(c, url);
  await waitFor(() => w.seen.length, { what: 'snapshot' });
  assert.equal(typeof handlers.online, 'function');

  await srv.restart();
  await waitFor(() => c.state === 'disconnected', { what: 'disconnected' });
  assert.ok(c.retryInMs > 30000, 'next attempt is far away');
  await likeHttp(srv.base, url, 5);
  handlers.online();
  await waitFor(() => c.state === 'connected', { timeoutMs: 3000, what: 'reconnected at once' });
  await waitFor(() => w.last().count === 5, { what: 'snapshot after online' });
  c.close();
  assert.equal(handlers.online, undefined, 'close() removes the listener');
});

test('close() ends the connection and all callbacks', async (t) => {
  const c = client(t);
  const url = uniqueUrl('close');
  const w = watch(c, url);
  await waitFor(() => w.seen.length, { what: 'snapshot' });
  const states = [];
  c.on('state', (s) => states.push(s));
  c.close();
  assert.equal(c.state, 'disconnected');
  assert.equal(c.retryAt, 0);
  const n = w.seen.length;
  await likeHttp(srv.base, url, 1);
  await sleep(TICKS);
  assert.equal(w.seen.length, n);
  assert.deepEqual(states, ['disconnected']);
});
