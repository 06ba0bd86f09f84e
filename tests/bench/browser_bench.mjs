#!/usr/bin/env node
// Browser-session benchmark: prints numbers, asserts nothing.
//
//  1. Session start, from POST /v1/browser/sessions to the first CDP answer
//     (GET cdp_url/json/version, then Runtime.evaluate("1+1") on a page over
//     a raw WebSocket): cold (a gateway with "browser_pool": 0) and warm (a
//     gateway whose pool has a VM ready), p50 over --runs runs each, and the
//     ratio. Both send the same request ({"mode": "live"}, pool-sized).
//  2. Round trip of Runtime.evaluate("1+1"), --rtt times in a row, through
//     the gateway (cdp_ws_url: the gateway's proxy, then the VM's SSH tunnel
//     to Chromium) against a direct connection to the same Chromium (a TCP
//     forward to the guest's CDP relay that only "cdp_host_forward": true
//     gives, its port from STATE/state.db), p50/p95 and the ratio.
//
// Each part runs its own gateway in a temporary state dir, stopped (and its
// VMs with it) at the end. Needs `npm install` in tests/e2e (the `ws`
// package) and the guest images (porthole image build browser).
//
//   node tests/bench/browser_bench.mjs [--runs 5] [--rtt 200] [--pool 1]
//        [--bin build/release/cli/porthole] [--skip-cold] [--skip-warm]
//        [--skip-rtt] [--json]
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { findPortholeBin, withTempGateway } from '../e2e/lib/gateway.mjs';
import { CdpClient, devtoolsUrl, getJson } from '../e2e/lib/cdp_raw.mjs';
import { percentile, sleep } from '../e2e/lib/util.mjs';

const SESSION_BODY = { mode: 'live' };   // what the pool holds: live, 1280x720, 2 GiB
const POOL_WAIT_MS = 15 * 60_000;

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    rtt: { type: 'string', default: '200' },
    pool: { type: 'string', default: '1' },
    bin: { type: 'string' },
    'skip-cold': { type: 'boolean', default: false },
    'skip-warm': { type: 'boolean', default: false },
    'skip-rtt': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log('usage: node tests/bench/browser_bench.mjs [--runs N] [--rtt N] [--pool N] [--bin PATH] ' +
              '[--skip-cold] [--skip-warm] [--skip-rtt] [--json]');
  process.exit(0);
}
const RUNS = Math.max(1, Number(opt.runs));
const RTT_CALLS = Math.max(10, Number(opt.rtt));
const POOL = Math.max(1, Number(opt.pool));

const say = (...a) => console.error(...a);

// ---- statistics -------------------------------------------------------------

const fmtS = (ms) => `${(ms / 1000).toFixed(2)} s`;
const fmtMs = (ms) => `${ms.toFixed(3)} ms`;

// ---- a gateway of our own ----------------------------------------------------

async function withGateway(bin, config, fn) {
  return withTempGateway({ bin, config, prefix: 'porthole-browser-bench-', log: say }, async (gw) => {
    result.accel ??= (await getJson(`${gw.url}/healthz`)).body?.accel;
    return fn(gw);
  });
}

async function poolReady(gw) {
  const r = await gw.api('GET', '/v1/browser/sessions');
  return Number(r.body.pool_ready ?? 0);
}

async function waitPoolReady(gw) {
  const t0 = Date.now();
  while (Date.now() - t0 < POOL_WAIT_MS) {
    if ((await poolReady(gw)) >= 1)
      return Date.now() - t0;
    await sleep(500);
  }
  throw new Error(`the pool had no VM ready after ${POOL_WAIT_MS / 1000} s`);
}

// ---- measurements --------------------------------------------------------------

/** POST → first CDP answer; the session is deleted afterwards (not timed). */
async function measureStart(gw) {
  const t0 = performance.now();
  const s = await gw.createSession(SESSION_BODY);
  const tCreated = performance.now();
  try {
    const v = await getJson(devtoolsUrl(s.cdp_url));
    if (v.status !== 200 || !v.body?.webSocketDebuggerUrl)
      throw new Error(`${devtoolsUrl(s.cdp_url)}: HTTP ${v.status}`);
    const cdp = await CdpClient.connect(v.body.webSocketDebuggerUrl);
    try {
      const sessionId = await cdp.attachToPage();
      const two = await cdp.evaluate('1+1', sessionId);
      if (two !== 2)
        throw new Error(`1+1 = ${two}`);
    } finally {
      cdp.close();
    }
    const t1 = performance.now();
    return {
      total_ms: t1 - t0,
      post_ms: tCreated - t0,
      server_startup_ms: s.startup_ms ?? null,
      served_from: s.served_from ?? null,
    };
  } finally {
    await gw.deleteSession(s.session_id);
  }
}

async function benchStart(bin, label, config, beforeRun) {
  const runs = [];
  await withGateway(bin, config, async (gw) => {
    for (let i = 1; i <= RUNS; i++) {
      const waited = beforeRun ? await beforeRun(gw) : 0;
      const r = await measureStart(gw);
      runs.push(r);
      say(`  ${label} run ${i}/${RUNS}: ${fmtS(r.total_ms)} (POST ${fmtS(r.post_ms)}, ` +
          `${r.served_from ?? '?'}${beforeRun ? `, waited ${fmtS(waited)} for the pool` : ''})`);
    }
  });
  return {
    config,
    runs,
    p50_ms: percentile(runs.map((r) => r.total_ms), 50),
    p50_post_ms: percentile(runs.map((r) => r.post_ms), 50),
  };
}

/** The guest relay's host port of a session's VM, from STATE/state.db. */
function directCdpPort(stateDir, ids) {
  const db = path.join(stateDir, 'state.db');
  const script = 'import sqlite3, sys\n' +
                 'c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)\n' +
                 'for i in sys.argv[2:]:\n' +
                 '    r = c.execute("SELECT record FROM objects WHERE id = ?", (i,)).fetchone()\n' +
                 '    if r: print(r[0])\n';
  const out = execFileSync('python3', ['-c', script, db, ...ids], { encoding: 'utf8' });
  for (const line of out.split('\n').filter(Boolean)) {
    const port = JSON.parse(line).cdp_port;
    if (Number.isInteger(port) && port > 0)
      return port;
  }
  throw new Error(`no cdp_port for ${ids.join(' / ')} in ${db}`);
}

async function timeEvaluates(wsUrl, n) {
  const cdp = await CdpClient.connect(wsUrl);
  try {
    const sessionId = await cdp.attachToPage();
    for (let i = 0; i < 20; i++)   // warm-up: JIT, connection, caches
      await cdp.evaluate('1+1', sessionId);
    const times = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const v = await cdp.evaluate('1+1', sessionId);
      times.push(performance.now() - t0);
      if (v !== 2)
        throw new Error(`1+1 = ${v}`);
    }
    return times;
  } finally {
    cdp.close();
  }
}

async function benchRtt(bin) {
  return withGateway(bin, { browser_pool: 0, cdp_host_forward: true }, async (gw) => {
    const s = await gw.createSession(SESSION_BODY);
    const port = directCdpPort(gw.stateDir, [s.session_id, s.vm_id]);
    const direct = await getJson(`http://127.0.0.1:${port}/json/version`);
    if (direct.status !== 200 || !direct.body?.webSocketDebuggerUrl)
      throw new Error(`direct /json/version on port ${port}: HTTP ${direct.status}`);
    // The guest names its own address; the host reaches it through the forward.
    const directWs = new URL(direct.body.webSocketDebuggerUrl);
    directWs.host = `127.0.0.1:${port}`;
    // Alternate the two so load on this machine hits both alike.
    const via = [], straight = [];
    const half = Math.ceil(RTT_CALLS / 2);
    for (let round = 0; round < 2; round++) {
      via.push(await timeEvaluates(s.cdp_ws_url, half));
      straight.push(await timeEvaluates(directWs.href, half));
    }
    const stats = (parts) => {
      const all = parts.flat();
      return { p50_ms: percentile(all, 50), p95_ms: percentile(all, 95), calls: all.length };
    };
    return { gateway: stats(via), direct: stats(straight), cdp_port: port };
  });
}

// ---- main ------------------------------------------------------------------------

const bin = findPortholeBin(opt.bin);
const result = { bin, runs: RUNS, accel: null };
say(`porthole browser bench: ${bin}`);
try {
  if (!opt['skip-cold']) {
    say('cold starts (browser_pool 0):');
    result.cold = await benchStart(bin, 'cold', { browser_pool: 0 }, null);
  }
  if (!opt['skip-warm']) {
    say(`warm starts (browser_pool ${POOL}, a pooled VM ready before each run):`);
    result.warm = await benchStart(bin, 'warm', { browser_pool: POOL }, waitPoolReady);
  }
  if (!opt['skip-rtt']) {
    say(`Runtime.evaluate round trips (${RTT_CALLS} calls each way):`);
    result.rtt = await benchRtt(bin);
  }
} catch (e) {
  say(`bench failed: ${e.stack || e.message}`);
  process.exitCode = 1;
}

if (opt.json) {
  console.log(JSON.stringify(result));
} else {
  console.log(`\nporthole browser bench (accelerator ${result.accel ?? '?'}, ${os.cpus().length} host CPUs)`);
  if (result.cold || result.warm)
    console.log(`session start, POST to the first Runtime.evaluate answer (p50 of ${RUNS}):`);
  if (result.cold)
    console.log(`  cold (browser_pool 0)    ${fmtS(result.cold.p50_ms).padStart(10)}   (POST alone ${fmtS(result.cold.p50_post_ms)})`);
  if (result.warm)
    console.log(`  warm (pool VM ready)     ${fmtS(result.warm.p50_ms).padStart(10)}   (POST alone ${fmtS(result.warm.p50_post_ms)})`);
  if (result.cold && result.warm)
    console.log(`  cold / warm              ${(result.cold.p50_ms / result.warm.p50_ms).toFixed(1).padStart(8)} x`);
  if (result.rtt) {
    const { gateway: g, direct: d } = result.rtt;
    console.log(`\nRuntime.evaluate("1+1") round trip (${g.calls} calls each):`);
    console.log(`  through the gateway      p50 ${fmtMs(g.p50_ms)}   p95 ${fmtMs(g.p95_ms)}`);
    console.log(`  direct to the guest      p50 ${fmtMs(d.p50_ms)}   p95 ${fmtMs(d.p95_ms)}`);
    console.log(`  gateway / direct         p50 ${(g.p50_ms / d.p50_ms).toFixed(2)} x   p95 ${(g.p95_ms / d.p95_ms).toFixed(2)} x`);
  }
}
