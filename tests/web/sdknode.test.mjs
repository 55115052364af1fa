// The SDK's manners (issue 12): the connection state machine against a dead
// server, the write token, Idempotency-Key and retries of likes, and the
// npm package: `npm pack` of web/sdk installed into a fresh directory, and
// the documented `npm install ./web/sdk ws` (a linked directory, issue 17),
// used from plain Node 20 (no global WebSocket or EventSource) against a
// real livecount.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createClient } from '../../web/sdk/livecount.js';
import { NodeEventSource, countHttp, freePort, repoRoot, sleep, startServer, uniqueUrl, waitFor } from './helpers.mjs';

let srv;
before(async () => { srv = await startServer({ extraArgs: ['--write-token', 's3cret-s3cret-s3cret'] }); });
after(async () => { await srv?.dispose(); });

test('connected only once a socket is open; never against a dead server', async (t) => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  for (const transport of ['auto', 'ws', 'sse']) {
    for (const withUrl of [true, false]) {
      const c = createClient(dead, { transport, WebSocket, EventSource: NodeEventSource, minDelayMs: 50, maxDelayMs: 100 });
      const states = [];
      c.on('state', (s) => states.push(s));
      c.on('error', () => {});
      if (withUrl) c.subscribe(uniqueUrl('dead'), () => {});
      else c.connect();
      await sleep(800);
      c.close();
      assert.ok(!states.includes('connected'), `${transport} ${withUrl}: ${states}`);
      assert.equal(states[0], 'connecting', `${transport} ${withUrl}: ${states}`);
    }
  }
  // Against a live server: connecting, then connected.
  for (const transport of ['ws', 'sse']) {
    const c = createClient(srv.base, { transport, WebSocket, EventSource: NodeEventSource });
    t.after(() => c.close());
    const states = [];
    c.on('state', (s) => states.push(s));
    c.subscribe(uniqueUrl('live'), () => {});
    await waitFor(() => c.state === 'connected', { what: `${transport} connected` });
    assert.deepEqual(states, ['connecting', 'connected']);
  }
});

test('token: Bearer header on likes, ?token= on the WebSocket', async (t) => {
  const url = uniqueUrl('tok');
  const urls = [];
  class Spy extends WebSocket {
    constructor(u, p) { urls.push(u); super(u, p); }
  }
  const c = createClient(srv.base, { token: 's3cret-s3cret-s3cret', WebSocket: Spy, transport: 'ws' });
  t.after(() => c.close());
  assert.deepEqual(await c.like(url, 2), { url, count: 2 });
  c.subscribe(url, () => {});
  await waitFor(() => c.state === 'connected', { what: 'connected' });
  assert.match(urls[0], /\/v1\/ws\?token=s3cret-s3cret-s3cret$/);
  const anon = createClient(srv.base, { WebSocket });
  const err = await anon.like(url).then(() => null, (e) => e);
  assert.equal(err.status, 401);
  assert.equal(err.code, 'unauthorized');
  anon.close();
});

test('like() sends an Idempotency-Key and retries network failures with it', async (t) => {
  const url = uniqueUrl('idem');
  const seen = [];
  let failures = 2;
  const flaky = (u, init) => {
    seen.push(init.headers['Idempotency-Key']);
    if (failures-- > 0) return Promise.reject(new TypeError('fetch failed'));
    return fetch(u, init);
  };
  const c = createClient(srv.base, { token: 's3cret-s3cret-s3cret', fetch: flaky, minDelayMs: 20 });
  t.after(() => c.close());
  assert.deepEqual(await c.like(url), { url, count: 1 });
  assert.equal(seen.length, 3);
  assert.ok(/^[\w-]{16,128}$/.test(seen[0]), seen[0]);
  assert.ok(seen.every((k) => k === seen[0]), `one key per like: ${seen}`);
  await c.like(url);
  assert.notEqual(seen[3], seen[0], 'a new like has a new key');
  // Retries give up after likeRetries.
  const down = createClient(srv.base, { fetch: () => Promise.reject(new TypeError('down')), minDelayMs: 1, likeRetries: 2 });
  let calls = 0;
  const counting = createClient(srv.base, {
    fetch: () => { calls++; return Promise.reject(new TypeError('down')); }, minDelayMs: 1, likeRetries: 2,
  });
  const err = await counting.like(url).then(() => null, (e) => e);
  assert.equal(err.code, 'network');
  assert.equal(calls, 3);
  down.close();
  counting.close();
  // Counts read from another worker are up to one tick stale: wait for it.
  await waitFor(async () => (await countHttp(srv.base, url)) === 2, { what: 'count 2 (the retried like counted once)' });
  await sleep(300); // and no third like shows up later
  assert.equal(await countHttp(srv.base, url), 2);
});

test('view() sends the token and an Idempotency-Key, and retries network failures with it', async (t) => {
  const url = uniqueUrl('view-idem');
  const seen = [];
  let failures = 2;
  const flaky = (u, init) => {
    seen.push({ u, key: init.headers['Idempotency-Key'], auth: init.headers.Authorization, method: init.method });
    if (failures-- > 0) return Promise.reject(new TypeError('fetch failed'));
    return fetch(u, init);
  };
  const c = createClient(srv.base, { token: 's3cret-s3cret-s3cret', fetch: flaky, minDelayMs: 20 });
  t.after(() => c.close());
  assert.deepEqual(await c.view(url, 2), { url, views: 2 });
  assert.equal(seen.length, 3);
  assert.ok(seen.every((s) => s.key === seen[0].key && /^[\w-]{16,128}$/.test(s.key)), 'one key per view');
  assert.ok(seen.every((s) => s.method === 'POST' && s.auth === 'Bearer s3cret-s3cret-s3cret'));
  assert.match(seen[0].u, /\/v1\/views\?url=.*&n=2$/);
  await c.view(url);
  assert.notEqual(seen[3].key, seen[0].key, 'a new view has a new key');
  const anon = createClient(srv.base, { WebSocket });
  const err = await anon.view(url).then(() => null, (e) => e);
  assert.equal(err.status, 401);
  anon.close();
  const views = async () => (await (await fetch(`${srv.base}/v1/counts?url=${encodeURIComponent(url)}`)).json()).counts[url].views;
  await waitFor(async () => (await views()) === 3, { what: 'views 3 (the retried view counted once)' });
  await sleep(300);
  assert.equal(await views(), 3);
});

test('npm pack of web/sdk installs and works in plain Node', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lc-sdk-pack-'));
  try {
    execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: join(repoRoot, 'web/sdk') });
    const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    assert.ok(tgz, 'npm pack made a tarball');
    const app = join(dir, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--silent', join(dir, tgz)], { cwd: app });
    const url = uniqueUrl('pack');
    writeFileSync(join(app, 'main.mjs'), `
      import { createClient } from 'livecount';
      const [base, url, quietMs] = process.argv.slice(2);
      const c = createClient(base, { token: 's3cret-s3cret-s3cret' });
      const out = { states: [], errors: [] };
      let liked = false;
      const finish = () => {
        clearTimeout(timer);
        out.transport = c.transport; c.close(); console.log(JSON.stringify(out));
      };
      // Once connected: like, and end when the like is answered and its
      // update seen (waits for what it waits for, however slow the box).
      c.on('state', async (s) => {
        out.states.push(s);
        if (s !== 'connected' || liked) return;
        liked = true;
        out.like = await c.like(url, 3);
        if (out.count === 3) finish();
      });
      c.on('error', (e) => out.errors.push(e.code || e.message));
      c.subscribe(url, (n) => { out.count = n; if (n === 3 && out.like) finish(); });
      // Without a transport nothing comes: quietMs of quiet shows there is
      // no retry loop (time is the point there); otherwise a deadline.
      const timer = setTimeout(finish, Number(quietMs));
    `);
    const run = (quietMs) => {
      const r = spawnSync(process.execPath, ['main.mjs', srv.base, url, String(quietMs)],
        { cwd: app, encoding: 'utf8', timeout: quietMs + 15000 });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.trim().split('\n').at(-1));
    };
    // No WebSocket anywhere (Node 20 has none, ws not installed): one clear
    // error, no retry loop, never "connected".
    const none = run(1300);
    assert.deepEqual(none.errors, ['unsupported'], JSON.stringify(none));
    assert.ok(!none.states.includes('connected'), JSON.stringify(none));
    // With the ws package installed next to it, it works without options.
    symlinkSync(join(repoRoot, 'tests/web/node_modules/ws'), join(app, 'node_modules/ws'));
    const ok = run(30000);
    assert.equal(ok.transport, 'ws', JSON.stringify(ok));
    assert.deepEqual(ok.like, { url, count: 3 }, JSON.stringify(ok));
    assert.equal(ok.count, 3, JSON.stringify(ok));
    assert.deepEqual(ok.errors, []);
    // The typings ship and are what package.json points at.
    const pkg = JSON.parse(execFileSync('tar', ['-xOzf', join(dir, tgz), 'package/package.json'], { encoding: 'utf8' }));
    assert.equal(pkg.exports['.'].types, './livecount.d.ts');
    const files = execFileSync('tar', ['-tzf', join(dir, tgz)], { encoding: 'utf8' });
    assert.match(files, /package\/livecount\.d\.ts/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the documented `npm install ./web/sdk ws` works in plain Node (the SDK finds the app\'s ws)', async () => {
  // A fresh app directory where ./web is this repository's web/: npm links
  // node_modules/livecount to it, so Node resolves the SDK's own imports from
  // web/sdk, where there is no ws. Needs the npm registry (or its cache) for ws.
  const app = mkdtempSync(join(tmpdir(), 'lc-sdk-link-'));
  try {
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    symlinkSync(join(repoRoot, 'web'), join(app, 'web'));
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', './web/sdk', 'ws'],
      { cwd: app, stdio: ['ignore', 'ignore', 'pipe'], timeout: 120000 });
    assert.ok(lstatSync(join(app, 'node_modules/livecount')).isSymbolicLink(), 'npm linked the directory');
    const url = uniqueUrl('link');
    // README's Node example, without passing WebSocket.
    writeFileSync(join(app, 'main.mjs'), `
      import { createClient } from 'livecount';
      const lc = createClient(process.argv[2], { token: 's3cret-s3cret-s3cret' });
      const out = { errors: [] };
      lc.on('error', (e) => out.errors.push(e.code || e.message));
      lc.subscribe(process.argv[3], (n) => { out.count = n; });
      const done = () => { out.transport = lc.transport; lc.close(); console.log(JSON.stringify(out)); };
      lc.on('state', async (s) => {
        if (s !== 'connected' || out.like) return;
        out.like = await lc.like(process.argv[3], 3);
        const t0 = Date.now();
        const wait = () => (out.count === out.like.count || Date.now() - t0 > 5000 ? done() : setTimeout(wait, 20));
        wait();
      });
      setTimeout(() => { if (!out.like) done(); }, 10000);
    `);
    // From the app's directory and from elsewhere (the main script finds it).
    for (const cwd of [app, tmpdir()]) {
      const r = spawnSync(process.execPath, [join(app, 'main.mjs'), srv.base, url], { cwd, encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1));
      assert.deepEqual(out.errors, [], `${cwd}: ${JSON.stringify(out)}`);
      assert.equal(out.transport, 'ws', JSON.stringify(out));
      assert.ok(out.like?.count >= 3, JSON.stringify(out));
      assert.equal(out.count, out.like.count, JSON.stringify(out));
    }
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
});
