#!/usr/bin/env node
// Templates benchmark: prints numbers, asserts nothing.
//
//  1. Session start, POST /v1/browser/sessions to the first answer of
//     Runtime.evaluate("1+1") over a raw WebSocket, one at a time (--runs):
//     clones of the headless template.
//  2. A burst of --burst concurrent starts (the same measure, each), p50 and
//     p95: with templates, then cold (no templates, no pool) and with the
//     pool (no templates, one pre-booted VM) in the same run.
//  3. Sandbox create to its first command result (--runs): clones, and cold.
//  4. Fork of a session into --fork: POST .../fork until every child has
//     answered Runtime.evaluate.
//  5. Idle memory: the PSS (smaps_rollup) of a clone's QEMU (the mean of
//     three idle at once, which share their template's pages) against a
//     cold-booted VM's, a minute after they are ready, and how many idle
//     sessions of each fit in 20 GiB.
//
// Every part runs a gateway of its own on a temporary state dir; the
// templates are the machine's (CACHE/templates), built first if need be.
//
//   node tests/bench/template_bench.mjs [--runs 5] [--burst 4] [--fork 4]
//        [--bin PATH] [--skip-cold] [--skip-pool] [--json]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { findPortholeBin, withTempGateway } from '../e2e/lib/gateway.mjs';
import { CdpClient, devtoolsUrl, getJson } from '../e2e/lib/cdp_raw.mjs';
import { percentile, sleep } from '../e2e/lib/util.mjs';

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    burst: { type: 'string', default: '4' },
    fork: { type: 'string', default: '4' },
    bin: { type: 'string' },
    'skip-cold': { type: 'boolean', default: false },
    'skip-pool': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log('usage: node tests/bench/template_bench.mjs [--runs N] [--burst N] [--fork N] ' +
              '[--bin PATH] [--skip-cold] [--skip-pool] [--json]');
  process.exit(0);
}
const RUNS = Math.max(1, Number(opt.runs));
const BURST = Math.max(1, Number(opt.burst));
const FORK = Math.min(8, Math.max(1, Number(opt.fork)));
const TEMPLATE_WAIT_MS = 20 * 60_000;
const IDLE_MS = 60_000;
const say = (...a) => console.error(...a);

const fmtS = (ms) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '-');
const stats = (xs) => ({ p50_ms: percentile(xs, 50), p95_ms: percentile(xs, 95), n: xs.length });

const CONFIGS = {
  templates: { browser_pool: 0 },
  cold: { browser_pool: 0, templates: false },
  pool: { browser_pool: 1, templates: false },
};

async function withGateway(bin, config, fn) {
  return withTempGateway({ bin, config, prefix: 'porthole-template-bench-', log: say }, fn);
}

async function waitTemplates(gw, wanted) {
  const t0 = Date.now();
  for (;;) {
    const t = (await gw.api('GET', '/v1/status')).body.templates;
    const need = t.filter((x) => wanted(x));
    if (need.length && need.every((x) => x.state === 'ready'))
      return Date.now() - t0;
    const failed = need.find((x) => x.state === 'failed');
    if (failed)
      throw new Error(`template ${failed.name} failed: ${failed.error}`);
    if (Date.now() - t0 > TEMPLATE_WAIT_MS)
      throw new Error(`templates not ready: ${JSON.stringify(t)}`);
    await sleep(1000);
  }
}

async function firstEvaluate(cdpUrl) {
  const v = await getJson(devtoolsUrl(cdpUrl));
  if (v.status !== 200 || !v.body?.webSocketDebuggerUrl)
    throw new Error(`${devtoolsUrl(cdpUrl)}: HTTP ${v.status}`);
  const cdp = await CdpClient.connect(v.body.webSocketDebuggerUrl);
  try {
    const sessionId = await cdp.attachToPage();
    const two = await cdp.evaluate('1+1', sessionId);
    if (two !== 2)
      throw new Error(`1+1 = ${two}`);
  } finally {
    cdp.close();
  }
}

/** POST → first Runtime.evaluate answer; the session is kept (ids). */
async function startOne(gw, ids) {
  const t0 = performance.now();
  const s = await gw.createSession({});
  ids.push(s.session_id);
  await firstEvaluate(s.cdp_url);
  return { ms: performance.now() - t0, served_from: s.served_from };
}

async function stopAll(gw, ids) {
  await Promise.all(ids.splice(0).map((id) => gw.deleteSession(id)));
}

async function benchSingle(gw) {
  const ids = [], times = [];
  for (let i = 1; i <= RUNS; i++) {
    const r = await startOne(gw, ids);
    times.push(r.ms);
    say(`  single ${i}/${RUNS}: ${fmtS(r.ms)} (${r.served_from})`);
    await stopAll(gw, ids);
  }
  return stats(times);
}

async function benchBurst(gw, label) {
  const ids = [];
  const t0 = performance.now();
  const got = await Promise.all(Array.from({ length: BURST }, () => startOne(gw, ids)));
  say(`  burst of ${BURST} (${label}): ${got.map((r) => `${fmtS(r.ms)} ${r.served_from}`).join(', ')}; ` +
      `all in ${fmtS(performance.now() - t0)}`);
  await stopAll(gw, ids);
  return { ...stats(got.map((r) => r.ms)), served_from: got.map((r) => r.served_from) };
}

async function sandboxFirstResult(gw) {
  const t0 = performance.now();
  const s = await gw.api('POST', '/v1/sandboxes', {}, { expect: [201], timeoutMs: 600_000 });
  const r = await gw.api('POST', `/v1/sandboxes/${s.body.id}/exec`, { command: 'echo ok', shell: 'raw' });
  const ms = performance.now() - t0;
  if (r.body.stdout.trim() !== 'ok')
    throw new Error(`exec: ${JSON.stringify(r.body)}`);
  await gw.api('DELETE', `/v1/sandboxes/${s.body.id}`);
  return { ms, served_from: s.body.served_from };
}

async function benchSandbox(gw, label) {
  const times = [];
  for (let i = 1; i <= RUNS; i++) {
    const r = await sandboxFirstResult(gw);
    times.push(r.ms);
    say(`  sandbox ${label} ${i}/${RUNS}: ${fmtS(r.ms)} (${r.served_from})`);
  }
  return stats(times);
}

async function benchFork(gw) {
  const ids = [];
  await startOne(gw, ids);
  const t0 = performance.now();
  const r = await gw.api('POST', `/v1/browser/sessions/${ids[0]}/fork`, { count: FORK },
                         { expect: [201], timeoutMs: 900_000 });
  const kids = r.body.sessions;
  ids.push(...kids.map((k) => k.session_id).filter(Boolean));
  await Promise.all(kids.map((k) => firstEvaluate(k.cdp_url)));
  const ms = performance.now() - t0;
  say(`  fork into ${FORK}: all answering in ${fmtS(ms)} (gateway ${fmtS(r.body.fork_ms)})`);
  await stopAll(gw, ids);
  return { all_answering_ms: ms, gateway_ms: r.body.fork_ms, count: FORK };
}

function pssKiB(pid) {
  const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Mean PSS of n idle sessions' QEMUs (clones share their template's
 * pages, so PSS splits those among them). */
async function idlePss(gw, n) {
  const ids = [];
  try {
    const got = await Promise.all(Array.from({ length: n }, async () => {
      const s = await gw.createSession({});
      ids.push(s.session_id);
      await firstEvaluate(s.cdp_url);
      return s;
    }));
    await sleep(IDLE_MS);
    const pss = got.map((s) => pssKiB(Number(readFileSync(`${gw.vmRunDir(s.vm_id)}/qemu.pid`, 'utf8'))));
    return { pss_mib: pss.reduce((a, b) => a + b, 0) / n / 1024, sessions: n,
             served_from: got.map((s) => s.served_from) };
  } finally {
    await stopAll(gw, ids);
  }
}

const bin = findPortholeBin(opt.bin);
const result = { bin, runs: RUNS, burst: BURST };
say(`porthole template bench: ${bin}`);
await withGateway(bin, CONFIGS.templates, async (gw) => {
  result.accel = (await getJson(`${gw.url}/healthz`)).body?.accel;
  const waited = await waitTemplates(gw, (t) => t.kind === 'sandbox' || t.mode === 'headless');
  say(`templates ready (waited ${fmtS(waited)})`);
  say('with templates:');
  result.single = await benchSingle(gw);
  result.burst_templates = await benchBurst(gw, 'templates');
  result.sandbox_templates = await benchSandbox(gw, 'clone');
  result.fork = await benchFork(gw);
  result.idle_clone = await idlePss(gw, 3);
  say(`  idle clone PSS (mean of 3 at once): ${result.idle_clone.pss_mib.toFixed(0)} MiB`);
});
if (!opt['skip-cold']) {
  await withGateway(bin, CONFIGS.cold, async (gw) => {
    say('cold (no templates, no pool):');
    result.burst_cold = await benchBurst(gw, 'cold');
    result.sandbox_cold = await benchSandbox(gw, 'cold');
    result.idle_cold = await idlePss(gw, 1);
    say(`  idle cold VM PSS: ${result.idle_cold.pss_mib.toFixed(0)} MiB`);
  });
}
if (!opt['skip-pool']) {
  await withGateway(bin, CONFIGS.pool, async (gw) => {
    say('pool (no templates, one pre-booted VM):');
    const t0 = Date.now();
    while (Number((await gw.api('GET', '/v1/browser/sessions')).body.pool_ready ?? 0) < 1) {
      if (Date.now() - t0 > TEMPLATE_WAIT_MS)
        throw new Error('the pool had no VM ready');
      await sleep(1000);
    }
    result.burst_pool = await benchBurst(gw, 'pool');
  });
}

const fit = (mib) => (Number.isFinite(mib) && mib > 0 ? Math.floor((20 * 1024) / mib) : null);
if (opt.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const row = (name, v, aim) => console.log(`  ${name.padEnd(44)} ${v.padStart(12)}   ${aim}`);
  console.log(`\ntemplates bench (${result.accel}), ${bin}`);
  row('session start, single, p50', fmtS(result.single.p50_ms), 'aim <= 1.50 s');
  row(`burst of ${BURST}, templates, p95`, fmtS(result.burst_templates.p95_ms), 'aim <= 4.00 s');
  if (result.burst_cold)
    row(`burst of ${BURST}, cold, p95`, fmtS(result.burst_cold.p95_ms), '(today, no templates)');
  if (result.burst_pool)
    row(`burst of ${BURST}, pool of 1, p95`, fmtS(result.burst_pool.p95_ms), '(today, no templates)');
  row('sandbox create to first result, clone, p50', fmtS(result.sandbox_templates.p50_ms), 'aim <= 1.00 s');
  if (result.sandbox_cold)
    row('sandbox create to first result, cold, p50', fmtS(result.sandbox_cold.p50_ms), '');
  row(`fork into ${FORK}, all answering CDP`, fmtS(result.fork.all_answering_ms), 'aim <= 5.00 s');
  const clone = result.idle_clone.pss_mib, cold = result.idle_cold?.pss_mib;
  row('idle clone PSS (3 clones at once, mean)', `${clone.toFixed(0)} MiB`, `${fit(clone)} fit in 20 GiB`);
  if (cold) {
    row('idle cold-booted VM PSS', `${cold.toFixed(0)} MiB`, `${fit(cold)} fit in 20 GiB`);
    row('clone / cold', `${((100 * clone) / cold).toFixed(0)} %`, 'aim <= 50 %');
  }
}
