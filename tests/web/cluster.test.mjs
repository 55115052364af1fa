// The dashboard's cluster panel against a real cluster: a redis-server on a
// free loopback port and two livecount nodes; the panel of node 1 lists
// both nodes with their link state, and a like made on node 2 shows up in
// node 1's dashboard.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePort, launchBrowser, likeHttp, startServer, uniqueUrl, waitFor } from './helpers.mjs';

const REDIS = '/usr/bin/redis-server';

let redis, n1, n2, browser;

before(async () => {
  assert.ok(existsSync(REDIS), 'redis-server is missing (scripts/deps.sh test installs it)');
  const port = await freePort();
  redis = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  await waitFor(async () => {
    try {
      n1 = await startServer({ extraArgs: ['--redis-url', url, '--node-id', '1'] });
      return true;
    } catch { return false; } // redis still starting: the node refuses nothing, but retry start
  }, { timeoutMs: 15000, what: 'node 1' });
  n2 = await startServer({ extraArgs: ['--redis-url', url, '--node-id', '2'] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await n1?.dispose();
  await n2?.dispose();
  redis?.kill('SIGKILL');
});

test('cluster panel lists both nodes; a like on node 2 reaches node 1\'s dashboard', async () => {
  const page = await browser.newPage();
  await page.goto(`${n1.base}/`);
  await waitFor(() => page.locator('#cluster').isVisible(), { timeoutMs: 15000, what: 'cluster panel' });
  await waitFor(async () => {
    const rows = await page.$$eval('#cluster-rows tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    return rows.length === 2 && rows[0][0] === '1 (this node)' && rows[0][1] === 'up' &&
      rows[1][0] === '2' && rows[1][1] === 'up';
  }, { timeoutMs: 15000, what: 'nodes 1 and 2 up in the panel' });
  const url = uniqueUrl('cluster');
  await likeHttp(n2.base, url, 7);
  await waitFor(async () => {
    const cell = page.locator(`#rows [data-url="${url}"]`);
    return (await cell.count()) > 0 && /7/.test(await cell.textContent());
  }, { timeoutMs: 15000, what: 'the like from node 2 in node 1\'s top list' });
  await page.close();
});
