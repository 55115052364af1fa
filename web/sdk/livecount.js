// livecount SDK: live like counts, views and "watching now" over WebSocket or
// SSE; likes and views over HTTP.
// Zero dependencies, wire contract v1 (docs/API.md), typings livecount.d.ts.
// Browsers and Node 20+ (WebSocket from the `ws` package when Node has none).
// One server subscription per URL however many callbacks watch it. Counts
// are absolute: after a reconnect the client resubscribes and the snapshot
// makes every count right; nothing is replayed.

const SUBPROTOCOL = 'livecount.v1';
// Under the server's max_ws_message_bytes and request header size:
const WS_FRAME_CHARS = 32000; // JSON text per subscribe frame
const SSE_QUERY_CHARS = 6000; // query length per EventSource
const STABLE_MS = 5000; // a connection up this long resets the backoff

const noop = () => {};

// Split `items` into groups of at most `max` items and about `chars` characters.
function split(items, chars, max, size) {
  const out = [];
  let cur = [], len = 0;
  for (const it of items) {
    const n = size(it).length + 1;
    if (cur.length && (len + n > chars || cur.length >= max)) { out.push(cur); cur = []; len = 0; }
    cur.push(it);
    len += n;
  }
  if (cur.length) out.push(cur);
  return out;
}
const report = (e) => (globalThis.reportError || console.error)(e);

// Node before 22 has no global WebSocket: the `ws` package, when installed,
// is loaded once. The names are variables so that bundlers leave them alone.
let nodeWs;
function loadNodeWs() {
  const g = globalThis;
  if (!g.process?.versions?.node) return Promise.resolve(null);
  const name = 'ws';
  nodeWs ??= import(name).then((m) => m.WebSocket || m.default, () => wsOfApp(name));
  return nodeWs;
}

// `npm install ./path/to/sdk ws` links the SDK's directory into the app's
// node_modules, and Node resolves the SDK's imports from its real directory,
// where there is no `ws`: look for it as the application would, from its
// main script and from the working directory.
async function wsOfApp(name) {
  const p = globalThis.process;
  try {
    const mod = 'node:module';
    const { createRequire } = await import(mod);
    for (const from of [p.argv?.[1], `${p.cwd()}/`]) {
      if (!from) continue;
      try {
        const m = createRequire(from)(name);
        return m.WebSocket || m;
      } catch { /* not found from there */ }
    }
  } catch { /* no node:module */ }
  return null;
}

// A random Idempotency-Key: one per like, reused on its retries.
function newKey() {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID();
  let k = '';
  for (let i = 0; i < 32; i++) k += Math.floor(Math.random() * 16).toString(16);
  return k;
}

/** A client for one server; baseUrl defaults to the page's origin. */
export function createClient(baseUrl, opts = {}) {
  const g = globalThis;
  const base = String(baseUrl || g.location?.origin || '').replace(/\/+$/, '');
  const wsBase = base.replace(/^http/, 'ws');
  const mode = opts.transport || 'auto';
  const minDelay = opts.minDelayMs ?? 500;
  const maxDelay = Math.max(minDelay, opts.maxDelayMs ?? 20000);
  const openTimeout = opts.openTimeoutMs ?? 10000;
  let WS = opts.WebSocket || g.WebSocket;
  const ES = opts.EventSource || g.EventSource;
  const token = opts.token ? String(opts.token) : '';
  const likeRetries = opts.likeRetries ?? 3;
  const doFetch = opts.fetch || ((...a) => g.fetch(...a));
  const wsMax = opts.maxUrlsPerConnection || 100; // the server's max_subs_per_conn
  const sseMax = opts.maxUrlsPerStream || 50; // and max_urls_per_request

  const subs = new Map(); // url -> Set of {cb}
  const counts = new Map(); // url -> last known count
  const stats = new Map(); // url -> {views, watching} last known
  const listeners = { state: new Set(), error: new Set() };
  let state = 'disconnected';
  let transport = null; // 'ws' | 'sse' while a connection is up or being made
  let conn = null; // {kind, close(), sync()}: a WebSocket pool or an SSE set
  let started = false; // a connection is wanted
  let closed = false;
  let attempt = 0; // failed attempts in a row, for the backoff
  let retryTimer = null;
  let retryAt = 0;
  let wsBroken = mode === 'sse' || !WS; // WS failed to open where SSE worked
  let wsLoading = !WS && mode !== 'sse' && !!g.process?.versions?.node;
  let seq = 0;

  const emit = (ev, ...a) => {
    for (const fn of [...listeners[ev]]) {
      try { fn(...a); } catch (e) { report(e); }
    }
  };

  function setState(s, retryInMs = 0) {
    retryAt = retryInMs ? Date.now() + retryInMs : 0;
    if (s === state && !retryInMs) return;
    state = s;
    emit('state', s, { transport, retryInMs, retryAt, attempt });
  }

  // The callback's second argument carries the URL's views and watching
  // figures (0 from a server older than issue 19, which sends neither).
  function deliver(url, count, info, st) {
    const set = subs.get(url);
    // Unsubscribed but not synced yet: keep the count fresh for a comeback.
    if (!set && !counts.has(url)) return;
    counts.set(url, count);
    const prev = stats.get(url);
    const views = st?.views === undefined ? prev?.views ?? 0 : Number(st.views);
    const watching = st?.watching === undefined ? prev?.watching ?? 0 : Number(st.watching);
    stats.set(url, { views, watching });
    info.views = views;
    info.watching = watching;
    info.viewsDelta = prev ? views - prev.views : 0;
    if (!set) return;
    for (const s of [...set]) {
      try { s.cb(count, info); } catch (e) { report(e); }
    }
  }

  // A snapshot: "counts" {U: C}, and since issue 19 "stats" {U: {count,
  // views, watching}}.
  function onSnapshot(map, st) {
    const ts = Date.now();
    for (const url in map) {
      const c = Number(map[url]);
      const prev = counts.get(url);
      deliver(url, c, { url, delta: prev === undefined ? 0 : c - prev, seq, ts, snapshot: true }, st?.[url]);
    }
  }

  // An update: {U: {count, delta, views, watching}}, sent when any changed.
  function onUpdate(msg) {
    if (msg.seq !== undefined) seq = msg.seq;
    for (const url in msg.counts) {
      const u = msg.counts[url];
      deliver(url, Number(u.count), { url, delta: Number(u.delta), seq: msg.seq, ts: msg.ts, snapshot: false }, u);
    }
  }

  function parse(data) {
    try { return JSON.parse(data); } catch (e) { emit('error', e); return null; }
  }

  // ---- connections ---------------------------------------------------------

  const backoff = (n) => {
    const cap = Math.min(maxDelay, minDelay * 2 ** (n + 1));
    return Math.round(minDelay + Math.random() * (cap - minDelay));
  };

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (closed) return;
    started = true;
    if (wsLoading) {
      // Node without a global WebSocket: try the `ws` package first.
      wsLoading = false;
      setState('connecting');
      loadNodeWs().then((W) => {
        if (W) {
          WS = W;
          wsBroken = false;
        }
        connect();
      });
      return;
    }
    const useWs0 = !wsBroken && mode !== 'sse';
    if (useWs0 ? !WS : !ES) {
      // Nothing to connect with: say so once instead of retrying forever.
      transport = null;
      emit('error', Object.assign(new Error(
        'livecount: no ' + (useWs0 ? 'WebSocket' : 'EventSource') + ' implementation; ' +
        'install the ws package next to your app (npm install ws) or pass the WebSocket ' +
        '(e.g. from ws) or EventSource option'), { code: 'unsupported' }));
      setState('disconnected');
      return;
    }
    if (conn) conn.close();
    for (const u of counts.keys()) if (!subs.has(u)) { counts.delete(u); stats.delete(u); }
    const useWs = !wsBroken && mode !== 'sse';
    transport = useWs ? 'ws' : 'sse';
    setState('connecting');
    conn = useWs ? openWs() : openSse();
    conn.sync();
  }

  // The SSE set, or a WebSocket pool that never opened, failed.
  // `opened`: a drop, not a refusal.
  function lost(c, opened, err) {
    if (c !== conn || closed) return;
    c.close();
    conn = null;
    if (err) emit('error', err);
    if (mode === 'auto' && !opened) {
      if (c.kind === 'ws') {
        // WebSocket refused or blocked: SSE at once.
        transport = 'sse';
        (conn = openSse(true)).sync();
        return;
      }
      // SSE did not open either (server down?): WebSocket first next time.
      if (WS) wsBroken = false;
    }
    // A server that accepts and drops us at once still gets the backoff.
    if (opened && Date.now() - c.since > STABLE_MS) attempt = 0;
    const delay = backoff(attempt++);
    retryTimer = setTimeout(connect, delay);
    setState('disconnected', delay);
  }

  // WebSocket: a pool of sockets ("shards") of at most wsMax URLs each, each
  // with its own backoff. A URL stays on its shard, new ones go to the first
  // with room; empty shards close, except a lone one. The pool's state is
  // its worst shard's.
  function openWs() {
    const c = { kind: 'ws', shards: [] };
    const where = new Map(); // url -> shard
    const refresh = () => {
      if (c !== conn) return;
      const w = c.shards.filter((s) => s.retry).sort((a, b) => a.retry - b.retry)[0];
      if (w) {
        attempt = w.n;
        setState('disconnected', Math.max(1, w.retry - Date.now()));
      } else {
        // Connected only with every socket open (an empty pool, while the
        // first shard is being made, is not).
        const open = c.shards.length && c.shards.every((s) => s.ws?.readyState === 1);
        setState(open ? 'connected' : 'connecting');
      }
    };
    const shard = () => {
      const s = { urls: new Set(), sent: new Set(), n: 0, retry: 0 };
      let timer;
      const drop = () => {
        clearTimeout(timer);
        const ws = s.ws;
        s.ws = null;
        if (ws) {
          ws.onopen = ws.onmessage = ws.onclose = null;
          ws.onerror = noop; // the ws package throws on an unhandled error
          try { ws.close(); } catch { /* already closing */ }
        }
      };
      const start = () => {
        drop();
        s.retry = 0;
        s.sent.clear();
        refresh();
        let ws, up;
        const fail = (err) => {
          if (s.ws !== ws || s.dead) return;
          drop();
          // Fall back to SSE only with URLs to watch: an SSE set without
          // any holds no stream and would look connected to a dead server.
          if (!c.up && mode === 'auto' && ES && subs.size) return lost(c, false, err);
          if (err) emit('error', err);
          if (up && Date.now() - up > STABLE_MS) s.n = 0;
          const delay = backoff(s.n++);
          s.retry = Date.now() + delay;
          timer = setTimeout(start, delay);
          refresh();
        };
        try {
          s.ws = ws = new WS(wsBase + '/v1/ws' + (token ? '?token=' + encodeURIComponent(token) : ''), SUBPROTOCOL);
        } catch (e) {
          s.ws = ws = {};
          queueMicrotask(() => fail(e));
          return;
        }
        timer = setTimeout(() => fail(new Error('WebSocket open timed out')), openTimeout);
        ws.onopen = () => {
          clearTimeout(timer);
          c.up = up = Date.now();
          s.sync();
          refresh();
        };
        ws.onmessage = (ev) => {
          const m = parse(ev.data);
          if (!m) return;
          if (m.type === 'snapshot') onSnapshot(m.counts, m.stats);
          else if (m.type === 'update') onUpdate(m);
          // e.g. too_many_subscriptions (a server limit below wsMax): reported,
          // not retried.
          else if (m.type === 'error') emit('error', Object.assign(new Error(m.message || m.error), { code: m.error }));
        };
        ws.onclose = () => fail();
        ws.onerror = () => fail(new Error('WebSocket error'));
      };
      s.sync = () => {
        if (s.ws?.readyState !== 1) return;
        const send = (op, urls) => {
          for (const part of split(urls, WS_FRAME_CHARS, 1e9, JSON.stringify)) {
            s.ws.send(JSON.stringify({ op, urls: part }));
          }
        };
        send('unsubscribe', [...s.sent].filter((u) => !s.urls.has(u)));
        send('subscribe', [...s.urls].filter((u) => !s.sent.has(u)));
        s.sent = new Set(s.urls);
      };
      s.close = () => {
        s.dead = true;
        drop();
      };
      start();
      return s;
    };
    c.close = () => {
      for (const s of c.shards) s.close();
    };
    c.sync = () => {
      for (const [u, s] of where) {
        if (!subs.has(u)) {
          where.delete(u);
          s.urls.delete(u);
          counts.delete(u);
          stats.delete(u);
        }
      }
      for (const u of subs.keys()) {
        if (where.has(u)) continue;
        let s = c.shards.find((x) => x.urls.size < wsMax);
        if (!s) c.shards.push((s = shard()));
        s.urls.add(u);
        where.set(u, s);
      }
      const any = c.shards.some((s) => s.urls.size);
      c.shards = c.shards.filter((s, i) => s.urls.size || (!i && !any) || s.close());
      if (!c.shards.length) c.shards.push(shard());
      for (const s of c.shards) s.sync();
      refresh();
    };
    return c;
  }

  // SSE: a change of the URL set reopens the streams (debounced), dropping
  // the old ones once the new ones are open. One failing stream fails all.
  function openSse(fallback) {
    const c = { kind: 'sse', streams: [] };
    let timer, key;
    const opened = () => {
      if (c.open) return;
      c.open = true;
      if (fallback) wsBroken = true; // stay on SSE while it works
      c.since = Date.now();
      setState('connected');
    };
    const shut = (list) => {
      for (const es of list) {
        es.onopen = es.onerror = null;
        es.close();
      }
    };
    c.close = () => {
      c.dead = true;
      clearTimeout(timer);
      shut(c.streams);
      if (c.next) shut(c.next);
    };
    const reopen = () => {
      timer = null;
      const urls = [...subs.keys()];
      const k = urls.join('\n');
      if (k === key) return;
      key = k;
      for (const u of counts.keys()) if (!subs.has(u)) { counts.delete(u); stats.delete(u); }
      if (c.next) shut(c.next);
      const enc = (u) => 'url=' + encodeURIComponent(u);
      const groups = split(urls, SSE_QUERY_CHARS, sseMax, enc).map((g) => g.map(enc).join('&'));
      if (!groups.length) {
        // Nothing to watch: hold no stream, and so not "connected" either.
        shut(c.streams);
        c.streams = [];
        c.next = null;
        c.open = false;
        setState('connecting');
        return;
      }
      const next = [];
      let pending = groups.length;
      c.next = next;
      for (const qs of groups) {
        let es;
        try {
          es = new ES(base + '/v1/events?' + qs);
        } catch (e) {
          queueMicrotask(() => lost(c, c.open, e));
          return;
        }
        next.push(es);
        let up = false;
        es.onopen = () => {
          if (up) return;
          up = true;
          if (--pending || c.next !== next) return;
          shut(c.streams);
          c.streams = next;
          c.next = null;
          opened();
        };
        // Retries are ours, not the EventSource's.
        es.onerror = () => lost(c, c.open, new Error('EventSource error'));
        es.addEventListener('snapshot', (ev) => {
          const m = parse(ev.data);
          if (m && !c.dead) onSnapshot(m.counts, m.stats);
        });
        es.addEventListener('update', (ev) => {
          const m = parse(ev.data);
          if (m && !c.dead) onUpdate(m);
        });
      }
    };
    c.sync = () => {
      if (!timer && !c.dead) timer = setTimeout(reopen, c.streams.length || c.next ? 50 : 0);
    };
    return c;
  }

  // One sync per burst of subscribe/unsubscribe calls.
  let syncQueued = false;
  function queueSync() {
    if (syncQueued) return;
    syncQueued = true;
    queueMicrotask(() => {
      syncQueued = false;
      if (closed) return;
      if (!started) connect();
      else if (conn) conn.sync();
    });
  }

  const onOnline = () => {
    if (started && !closed && state === 'disconnected') {
      attempt = 0;
      connect();
    }
  };
  g.addEventListener?.('online', onOnline);

  // ---- HTTP --------------------------------------------------------------

  // A like or view that got no answer (network failure) is sent again with
  // the same Idempotency-Key, so the server counts it once (docs/API.md).
  async function send(method, url, n, what = 'likes') {
    const headers = { 'Idempotency-Key': newKey() };
    if (token) headers.Authorization = 'Bearer ' + token;
    let res;
    for (let i = 0; ; i++) {
      try {
        // Empty body: Content-Length 0, no Content-Type.
        res = await doFetch(`${base}/v1/${what}?url=${encodeURIComponent(url)}&n=${n}`, {
          method, headers, body: new Uint8Array(0),
        });
        break;
      } catch (e) {
        if (i >= likeRetries || closed) {
          throw Object.assign(new Error(`livecount: ${e.message}`), { code: 'network', status: 0, cause: e });
        }
        await new Promise((r) => setTimeout(r, Math.min(minDelay * 2 ** i, maxDelay)));
      }
    }
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    if (!res.ok) {
      const code = body?.error || 'http_' + res.status;
      throw Object.assign(new Error(body?.message || code), { code, status: res.status });
    }
    return what === 'views' ? { url: body.url, views: Number(body.views) } : { url: body.url, count: Number(body.count) };
  }

  // ---- public API --------------------------------------------------------

  return {
    subscribe(url, cb) {
      url = String(url);
      // The server's rule: one bad URL would fail a whole SSE stream.
      if (!url || /[\x00-\x1f\x7f]/.test(url) || new TextEncoder().encode(url).length > 2048) {
        throw new TypeError('livecount: a URL is 1..2048 bytes without control characters');
      }
      const s = { cb };
      let set = subs.get(url);
      if (!set) {
        subs.set(url, (set = new Set()));
        queueSync();
      }
      if (counts.has(url)) {
        // Shared: no new snapshot from the server.
        queueMicrotask(() => {
          if (set.has(s) && counts.has(url)) {
            const st = stats.get(url) || { views: 0, watching: 0 };
            const info = { url, delta: 0, seq, ts: Date.now(), snapshot: true, views: st.views, watching: st.watching, viewsDelta: 0 };
            try { cb(counts.get(url), info); } catch (e) { report(e); }
          }
        });
      }
      set.add(s);
      return () => {
        if (!set.delete(s) || set.size || subs.get(url) !== set) return;
        subs.delete(url);
        queueSync();
      };
    },
    like: (url, n = 1) => send('POST', url, n),
    unlike: (url, n = 1) => send('DELETE', url, n),
    view: (url, n = 1) => send('POST', url, n, 'views'),
    on(ev, fn) {
      listeners[ev].add(fn);
      return () => listeners[ev].delete(fn);
    },
    connect() {
      if (!closed && (!started || state === 'disconnected')) connect();
    },
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(retryTimer);
      if (conn) conn.close();
      conn = null;
      g.removeEventListener?.('online', onOnline);
      setState('disconnected');
    },
    count: (url) => counts.get(url),
    stats(url) {
      if (!counts.has(url)) return undefined;
      const st = stats.get(url) || { views: 0, watching: 0 };
      return { count: counts.get(url), views: st.views, watching: st.watching };
    },
    get state() { return state; },
    get transport() { return transport; },
    get retryAt() { return retryAt; },
    get retryInMs() { return retryAt ? Math.max(0, retryAt - Date.now()) : 0; },
  };
}
