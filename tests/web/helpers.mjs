// Shared helpers of the web tests: start and stop a real livecount on a free
// loopback port, a minimal EventSource for Node (Node 20 has none), polling,
// headless Chromium (launchBrowser) and pages that record every problem
// (openPage: page errors, console errors, failed requests, CSP violations).
//
// Environment (set by run.sh): LC_BINARY, the livecount binary; LC_WEB_ROOT,
// the web/ directory it serves (default: this repository's web/);
// LC_CHROMIUM, the browser (default /usr/bin/chromium).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const webRoot = process.env.LC_WEB_ROOT || join(repoRoot, 'web');

/** A TCP port that was free a moment ago (bind port 0, read it, close). */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a truthy value; throw after `timeoutMs`. */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 20, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(intervalMs);
  }
}

let unique = 0;
/** A URL no other test uses. */
export const uniqueUrl = (tag = 'u') => `https://example.test/${tag}/${process.pid}-${Date.now()}-${++unique}`;

const running = new Set();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/**
 * Start livecount on a free loopback port with a fresh database:
 * `<binary> --port N --db <tmp>/lc.db --tick-ms 100 --workers 2 --web-root web/`
 * plus `extraArgs`, and wait for GET /healthz to answer 200.
 * The returned handle restarts it on the same port and database, and stops it
 * with SIGTERM.
 */
export async function startServer({ extraArgs = [] } = {}) {
  const bin = process.env.LC_BINARY;
  if (!bin) throw new Error('LC_BINARY is not set (run the tests through tests/web/run.sh)');
  const dir = mkdtempSync(join(tmpdir(), 'lc-web-'));
  const port = await freePort();
  const log = join(dir, 'server.log');
  const srv = {
    port,
    dir,
    db: join(dir, 'lc.db'),
    base: `http://127.0.0.1:${port}`,
    proc: null,
    log: () => { try { return readFileSync(log, 'utf8'); } catch { return ''; } },
    async start() {
      const args = ['--bind', '127.0.0.1', '--port', String(port), '--db', srv.db, '--tick-ms', '100',
        '--workers', '2', '--web-root', webRoot, ...extraArgs];
      const fd = openSync(log, 'a');
      const proc = spawn(bin, args, { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      srv.proc = proc;
      running.add(proc);
      let exited = null;
      proc.on('exit', (code, sig) => {
        exited = { code, sig };
        running.delete(proc);
      });
      try {
        await waitFor(async () => {
          if (exited) throw new Error(`livecount exited (${exited.code ?? exited.sig})`);
          const r = await fetch(`${srv.base}/healthz`);
          return r.status === 200;
        }, { timeoutMs: 15000, intervalMs: 50, what: 'GET /healthz' });
      } catch (e) {
        proc.kill('SIGKILL');
        throw new Error(`${e.message}\n--- server log ---\n${srv.log().slice(-4000)}`);
      }
    },
    /** SIGTERM and wait for the exit (SIGKILL after 15 s); resolves to the exit code. */
    async stop() {
      const proc = srv.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return proc?.exitCode ?? null;
      const done = new Promise((r) => proc.once('exit', (code, sig) => r(code ?? sig)));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
      const code = await done;
      clearTimeout(t);
      return code;
    },
    async restart() {
      await srv.stop();
      await srv.start();
    },
    /** Stop and remove the temporary directory. */
    async dispose() {
      await srv.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await srv.start();
  return srv;
}

/** GET/POST JSON against the server; resolves to {status, body}. */
export async function http(base, method, path, body) {
  const init = { method };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: json, text, headers: res.headers };
}

/** Add n likes to url over HTTP (the JSON form, n may be negative); resolves to the new count. */
export async function likeHttp(base, url, n = 1) {
  const r = await http(base, 'POST', '/v1/likes', { url, n });
  if (r.status !== 200) throw new Error(`POST /v1/likes: ${r.status} ${r.text}`);
  return r.body.count;
}

/** The count of url as GET /v1/counts reports it. */
export async function countHttp(base, url) {
  const r = await http(base, 'GET', `/v1/counts?url=${encodeURIComponent(url)}`);
  if (r.status !== 200) throw new Error(`GET /v1/counts: ${r.status} ${r.text}`);
  return r.body.counts[url].count;
}

/**
 * The part of EventSource the SDK uses, on fetch streams: onopen, onerror,
 * addEventListener(name), close(). Unlike a browser's it does not reconnect
 * by itself (the SDK closes EventSources on error and reconnects itself).
 */
export class NodeEventSource {
  static instances = 0; // how many were created, for tests

  constructor(url) {
    NodeEventSource.instances++;
    this.url = url;
    this.readyState = 0;
    this.onopen = this.onerror = this.onmessage = null;
    this._listeners = new Map();
    this._abort = new AbortController();
    this._run();
  }

  addEventListener(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
  }

  removeEventListener(type, fn) {
    this._listeners.get(type)?.delete(fn);
  }

  close() {
    this.readyState = 2;
    this._abort.abort();
  }

  _emit(type, ev) {
    if (this.readyState === 2 && type !== 'error') return;
    ev.type = type;
    this['on' + type]?.(ev);
    for (const fn of this._listeners.get(type) || []) fn(ev);
  }

  async _run() {
    try {
      const res = await fetch(this.url, { headers: { accept: 'text/event-stream' }, signal: this._abort.signal });
      const type = res.headers.get('content-type') || '';
      if (res.status !== 200 || !type.startsWith('text/event-stream')) {
        res.body?.cancel().catch(() => {});
        throw new Error(`EventSource: HTTP ${res.status} ${type}`);
      }
      this.readyState = 1;
      this._emit('open', {});
      const decoder = new TextDecoder();
      let buf = '';
      let event = '', data = [], id;
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (data.length) this._emit(event || 'message', { data: data.join('\n'), lastEventId: id });
            event = '';
            data = [];
            continue;
          }
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = value;
          else if (field === 'data') data.push(value);
          else if (field === 'id') id = value;
        }
      }
      throw new Error('EventSource: stream ended');
    } catch (e) {
      if (this.readyState === 2) return;
      this.readyState = 2;
      this._emit('error', { error: e });
    }
  }
}

/** Run SQL on an SQLite file with the sqlite3 shell (a dependency of the build, see scripts/deps.sh); resolves to its stdout. */
export function sqlite(db, sql) {
  const r = spawnSync('sqlite3', ['-batch', '-bail', db], { input: sql, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`sqlite3: ${r.error.message} (apt-get install sqlite3)`);
  if (r.status !== 0) throw new Error(`sqlite3 exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Write history into a livecount database that no server has open (start a
 * server once to create it, stop it, seed, start again). `seeds` is
 * [{url, minutes: [[minuteUnixSeconds, likes, unlikes], ...]}]; each URL's
 * counters row is the sum of its minutes, updated at the end of its last one.
 */
export function seedHistory(db, seeds) {
  const q = (s) => `'${s.replace(/'/g, "''")}'`;
  const lines = ['BEGIN;'];
  for (const { url, minutes } of seeds) {
    let likes = 0, unlikes = 0, last = 0;
    lines.push(`INSERT INTO urls(id, url) VALUES ((SELECT coalesce(max(id), 0) + 1 FROM urls), ${q(url)});`);
    const id = `(SELECT id FROM urls WHERE url = ${q(url)})`;
    for (const [m, l, u] of minutes) {
      likes += l;
      unlikes += u;
      last = Math.max(last, m);
      lines.push(`INSERT INTO likes_minute(url_id, minute, likes, unlikes) VALUES (${id}, ${m}, ${l}, ${u});`);
    }
    lines.push(`INSERT INTO counters(url_id, likes, unlikes, updated_at) VALUES (${id}, ${likes}, ${unlikes}, ${(last + 59) * 1000 + 123});`);
  }
  lines.push('COMMIT;');
  sqlite(db, lines.join('\n'));
}

export const CHROMIUM = process.env.LC_CHROMIUM || '/usr/bin/chromium';

/**
 * Headless Debian Chromium through playwright-core, with the flags every web
 * test uses (no sandbox as root, no GPU, no background traffic).
 */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (apt-get install chromium; run.sh does it as root)`);
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', '--disable-quic', '--disable-sync'],
  });
}

/**
 * A page in its own browser context (closed after test `t`), going to `url`
 * when given. `page.problems` collects what a working page never shows:
 * uncaught errors, console errors, failed requests (the live streams
 * /v1/events and /v1/ws excepted: they end when a page closes or a server
 * stops; and requests the browser itself cancelled, net::ERR_ABORTED: a
 * reload or navigation cancels a fetch in flight, which no server can
 * cause) and Content-Security-Policy violations (also kept in `page.csp`).
 * `opts` go to browser.newContext (default viewport 1280 x 800).
 */
export async function openPage(browser, t, url, { viewport = { width: 1280, height: 800 }, ...opts } = {}) {
  const ctx = await browser.newContext({ viewport, ...opts });
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  page.setDefaultTimeout(5000);
  page.problems = [];
  page.csp = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') page.problems.push(`console: ${m.text()}`); });
  page.on('requestfailed', (r) => {
    const u = r.url();
    const why = r.failure()?.errorText;
    if (!u.includes('/v1/events') && !u.includes('/v1/ws') && why !== 'net::ERR_ABORTED') page.problems.push(`requestfailed: ${u} ${why}`);
  });
  // Chromium also logs a violation to the console; the event says which
  // directive and what was blocked, in every frame and shadow root.
  await page.exposeBinding('lcCspViolation', (_src, v) => {
    page.csp.push(v);
    page.problems.push(`csp: ${v}`);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      globalThis.lcCspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
    }, true);
  });
  if (url) await page.goto(url);
  return page;
}
