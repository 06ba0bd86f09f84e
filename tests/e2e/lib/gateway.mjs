// The gateway the end-to-end tests talk to: one per test run, shared by all
// test files, the same approach as tests/integration/fixture.py.
//
// - State lives in PORTHOLE_E2E_STATE (meson: BUILD/tests/e2e/state;
//   without it /tmp/porthole-e2e-UID). The
//   first test to need a gateway starts `porthole gateway --listen
//   127.0.0.1:0 --state-dir STATE --config STATE/e2e-config.json
//   --ready-fd 3` detached (its own session, log in STATE/gateway.log) and
//   waits for the "ready URL" line: readiness is a message, never a sleep.
// - The admin token is STATE/token, written here before the first start
//   and loaded by the gateway itself (PORTHOLE_TOKEN is removed from its
//   environment). STATE/gateway.json is the gateway's own {url, pid}, so the
//   CLI (`porthole --state-dir STATE ...`) and the Python fixture find the
//   same gateway. STATE/e2e-gateway.json records which binary and config it
//   runs; a rebuilt binary or a changed config means a restart.
// - STATE/e2e.lock, taken with flock(1) (flock(2) underneath, the same lock
//   Python's fcntl.flock takes), serializes check-then-start so tests running
//   in parallel share one gateway.
// - The e2e_teardown test (test_zz_teardown.mjs) stops it at the end.
//
// PORTHOLE_E2E_URL + PORTHOLE_E2E_TOKEN use a gateway started elsewhere
// instead (checks that read the state dir then need PORTHOLE_E2E_STATE too).
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync,
  statSync, writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sleep } from './util.mjs';

export const GATEWAY_START_TIMEOUT_MS = 120_000;
/** A command containing this is refused by the test gateway's deny list. */
export const E2E_DENIED_WORD = 'porthole-e2e-denied-command';
// Creating a session waits until it is ready: a cold boot of a browser VM
// under software emulation on a busy 2-core machine can take minutes.
export const SESSION_START_TIMEOUT_MS = 420_000;

export class ApiError extends Error {
  constructor(method, urlPath, status, body) {
    const e = body && body.error ? body.error : null;
    super(`${method} ${urlPath}: HTTP ${status}${e ? ` ${e.code}: ${e.message}` : ''}`);
    this.status = status;
    this.code = e ? e.code : null;
    this.body = body;
  }
}

/** Calls the gateway's API; resolves {status, body, headers}. */
export async function apiCall(url, token, method, urlPath, body, { timeoutMs = 60_000 } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined)
    headers['Content-Type'] = 'application/json';
  const resp = await fetch(url + urlPath, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const buf = Buffer.from(await resp.arrayBuffer());
  let parsed = null;
  const type = resp.headers.get('content-type') || '';
  if (type.includes('json') && buf.length) {
    try {
      parsed = JSON.parse(buf.toString('utf8'));
    } catch {
      parsed = null;
    }
  }
  return { status: resp.status, body: parsed, raw: buf, headers: resp.headers };
}

export class Gateway {
  constructor({ url, token, stateDir = null, pid = null }) {
    this.url = url;
    this.token = token;
    this.stateDir = stateDir;
    this.pid = pid;
  }

  /** Like apiCall; throws ApiError unless the status is in expect. */
  async api(method, urlPath, body, { expect = [200, 201, 202, 204], timeoutMs } = {}) {
    const r = await apiCall(this.url, this.token, method, urlPath, body, { timeoutMs });
    if (expect && !expect.includes(r.status))
      throw new ApiError(method, urlPath, r.status, r.body);
    return r;
  }

  async createSession(body = {}) {
    const r = await this.api('POST', '/v1/browser/sessions', body,
                             { expect: [201], timeoutMs: SESSION_START_TIMEOUT_MS });
    return r.body;
  }

  async getSession(id) {
    return (await this.api('GET', `/v1/browser/sessions/${encodeURIComponent(id)}`)).body;
  }

  async listSessions() {
    return (await this.api('GET', '/v1/browser/sessions')).body.sessions;
  }

  /** Stops a session; ignores one that is already gone. */
  async deleteSession(id) {
    await this.api('DELETE', `/v1/browser/sessions/${encodeURIComponent(id)}`, undefined,
                   { expect: [200, 202, 204, 404], timeoutMs: 300_000 });
  }

  /** Tail of a session's logs (for failure messages); never throws. */
  async sessionLogs(id, maxChars = 4000) {
    try {
      const r = await apiCall(this.url, this.token, 'GET',
                              `/v1/browser/sessions/${encodeURIComponent(id)}/logs`);
      const text = r.body ? JSON.stringify(r.body) : r.raw.toString('utf8');
      return text.slice(-maxChars);
    } catch (e) {
      return `(no logs: ${e.message})`;
    }
  }

  /** Where a VM's run dir is (its QEMU command line names it). */
  vmRunDir(vmId) {
    return this.stateDir ? path.join(this.stateDir, 'vms', vmId) : null;
  }
}

/** Sessions a test created, stopped by cleanup() even when the test failed. */
export class SessionTracker {
  constructor(gw) {
    this.gw = gw;
    this.ids = new Set();
  }

  async create(body = {}) {
    const s = await this.gw.createSession(body);
    this.ids.add(s.session_id);
    return s;
  }

  async stop(id) {
    await this.gw.deleteSession(id);
    this.ids.delete(id);
  }

  async cleanup() {
    const ids = [...this.ids];
    this.ids.clear();
    const results = await Promise.allSettled(ids.map((id) => this.gw.deleteSession(id)));
    for (const [i, r] of results.entries())
      if (r.status === 'rejected')
        console.error(`cleanup: cannot stop session ${ids[i]}: ${r.reason?.message}`);
  }
}

// ---- processes ------------------------------------------------------------

export function pidAlive(pid) {
  if (!pid)
    return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return null;
  }
}

/** Pids of QEMU processes whose command line mentions needle (a run dir). */
export function qemuPids(needle) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name))
      continue;
    const args = cmdline(Number(name));
    if (args && args[0] && /qemu/.test(path.basename(args[0])) && args.some((a) => a.includes(needle)))
      out.push(Number(name));
  }
  return out;
}

// ---- locking --------------------------------------------------------------

/** Runs fn while holding an exclusive flock on lockPath. */
export async function withLock(lockPath, fn, timeoutMs = 15 * 60_000) {
  // flock(1) holds the lock while its child (cat) lives; cat lives until we
  // close its stdin, or until this process dies and the pipe closes with it.
  const holder = spawn('flock', ['-x', '-w', String(Math.ceil(timeoutMs / 1000)), lockPath,
                                 'sh', '-c', 'echo locked; exec cat >/dev/null'],
                       { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => holder.on('exit', resolve));
  await new Promise((resolve, reject) => {
    let out = '';
    holder.stdout.on('data', (d) => {
      out += d;
      if (out.includes('locked\n'))
        resolve();
    });
    holder.on('error', (e) => reject(new Error(`flock: ${e.message} (util-linux is needed)`)));
    holder.on('exit', (code) => reject(new Error(`flock ${lockPath} failed (exit ${code})`)));
  });
  try {
    return await fn();
  } finally {
    holder.stdin.end();
    await exited;
  }
}

// ---- starting and stopping --------------------------------------------------

function readJson(p) {
  try {
    return JSON.parse(readFileSync(p, 'utf8'));
  } catch {
    return null;
  }
}

async function healthy(url) {
  try {
    const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(3000) });
    return r.status === 200 && (await r.json()).status === 'ok';
  } catch {
    return false;
  }
}

function logTail(logPath, n = 30) {
  try {
    return readFileSync(logPath, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The admin token of stateDir, created (0600) when missing. */
export function ensureToken(stateDir) {
  const p = path.join(stateDir, 'token');
  const have = existsSync(p) ? readFileSync(p, 'utf8').trim() : '';
  if (have.length >= 32)
    return have;
  const fresh = randomBytes(32).toString('hex');
  writeFileSync(p, `${fresh}\n`, { mode: 0o600 });
  return fresh;
}

/**
 * Starts `porthole gateway` detached on a free loopback port and resolves
 * {url, pid} once it wrote its ready line. Never waits by sleeping.
 */
export async function startGateway({ bin, stateDir, config, extraArgs = [] }) {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  ensureToken(stateDir);
  const configPath = path.join(stateDir, 'e2e-config.json');
  writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);
  const logPath = path.join(stateDir, 'gateway.log');
  const log = openSync(logPath, 'a');
  const logOffset = statSync(logPath).size;
  const env = { ...process.env };
  delete env.PORTHOLE_TOKEN;   // the token is the state dir's
  delete env.PORTHOLE_URL;
  let child;
  try {
    child = spawn(bin, ['gateway', '--listen', '127.0.0.1:0', '--state-dir', stateDir,
                        '--config', configPath, '--ready-fd', '3', ...extraArgs],
                  { detached: true, stdio: ['ignore', log, log, 'pipe'], env });
  } finally {
    closeSync(log);
  }
  const ready = child.stdio[3];
  try {
    const url = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(
        `porthole gateway sent no ready line in ${GATEWAY_START_TIMEOUT_MS / 1000} s; ` +
        `log ${logPath}:\n${logTail(logPath)}`)), GATEWAY_START_TIMEOUT_MS);
      ready.on('data', (d) => {
        out += d;
        const m = /^ready (\S+)\n/m.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${bin}: ${e.message}`));
      });
      child.on('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`porthole gateway exited (${sig || code}) before it was ready; ` +
                         `log ${logPath}:\n${logTail(logPath)}`));
      });
    });
    return { url, pid: child.pid, logPath, logOffset };
  } finally {
    ready.destroy();
    child.removeAllListeners('exit');
    child.unref();
  }
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the pid is gone. */
export async function stopPid(pid, graceMs = 120_000) {
  if (!pidAlive(pid))
    return true;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid) || /^Z/.test(procState(pid)))
      return true;
    await sleep(200);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
  return false;
}

function procState(pid) {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '');
  } catch {
    return 'Z';
  }
}

// ---- the shared test gateway -------------------------------------------------

export function e2eStateDir() {
  return path.resolve(process.env.PORTHOLE_E2E_STATE || path.join(os.tmpdir(), `porthole-e2e-${process.getuid()}`));
}

/** Kills the QEMU processes of a state dir's VMs (after its gateway has gone); returns their pids. */
export async function killLeftovers(stateDir) {
  const vms = path.join(stateDir, 'vms');
  const pids = new Set(qemuPids(vms));
  // The run dirs' pid files as well, in case a command line does not name the dir.
  if (existsSync(vms)) {
    for (const vm of readdirSync(vms)) {
      try {
        const pid = Number(readFileSync(path.join(vms, vm, 'qemu.pid'), 'utf8').trim());
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (pid > 0 && cmd.includes('qemu') && cmd.includes(stateDir))
          pids.add(pid);
      } catch {
        // no pid file or no such process
      }
    }
  }
  for (const pid of pids)
    await stopPid(pid, 10_000);
  return [...pids];
}

/**
 * A gateway of a test's own on stateDir, for tests that stop, kill and
 * restart it: start() (again) gives a Gateway for it; cleanup() deletes
 * the given sessions through a live one, stops it and kills any QEMU of
 * the state dir that is left, returning those pids.
 */
export class OwnGateway {
  constructor({ bin, stateDir, config }) {
    Object.assign(this, { bin, stateDir, config, pid: null, gw: null });
  }

  /**
   * One on the state dir dirName beside the shared test gateway's, fresh:
   * QEMUs a run that died half-way left are killed, its files removed.
   * The binary is $PORTHOLE_BIN (meson test sets it).
   */
  static async fresh(dirName, config) {
    const bin = process.env.PORTHOLE_BIN;
    if (!bin || !existsSync(bin))
      throw new Error('PORTHOLE_BIN must name the porthole executable (meson test sets it)');
    const stateDir = path.join(path.dirname(e2eStateDir()), dirName);
    await killLeftovers(stateDir);
    rmSync(stateDir, { recursive: true, force: true });
    return new OwnGateway({ bin, stateDir, config });
  }

  async start() {
    const p = await startGateway({ bin: this.bin, stateDir: this.stateDir, config: this.config });
    this.pid = p.pid;
    this.gw = new Gateway({ url: p.url, token: ensureToken(this.stateDir), stateDir: this.stateDir, pid: p.pid });
    return this.gw;
  }

  async cleanup(sessionIds) {
    try {
      if (!this.pid || !pidAlive(this.pid))
        await this.start();
      for (const id of sessionIds.filter(Boolean))
        await this.gw.deleteSession(id);
      const vms = path.join(this.stateDir, 'vms');
      for (const t0 = Date.now(); qemuPids(vms).length && Date.now() - t0 < 60_000;)
        await sleep(500);
    } catch (e) {
      console.error(`cleanup through the gateway failed: ${e.message}`);
    }
    await stopPid(this.pid, 60_000);
    const killed = await killLeftovers(this.stateDir);
    if (killed.length)
      console.error(`QEMU processes outlived the cleanup (killed now): ${killed}`);
    return killed;
  }
}

/** The gateway configuration the tests run with. */
export function e2eConfig() {
  const pool = Number(process.env.PORTHOLE_E2E_POOL ?? 1);
  const extra = process.env.PORTHOLE_E2E_CONFIG ? JSON.parse(process.env.PORTHOLE_E2E_CONFIG) : {};
  // The deny rule lets tests see a command refused by the policy chain.
  // The guests' pages come from the host's loopback (lib/test_pages.mjs),
  // which the egress proxy refuses unless told otherwise: this gateway
  // names it pages.test and lets 127.0.0.1 through. tests/integration's
  // network test runs a gateway without these and shows the block.
  return {
    browser_pool: pool, max_sandboxes: 8, deny: [E2E_DENIED_WORD],
    // Under software emulation on a busy 2-core machine a cold browser boot
    // has taken over 150 s (the default); the SDK fixture allows as much.
    boot_timeout_s: 420,
    egress_hosts: { 'pages.test': '127.0.0.1', 'other.test': '127.0.0.1' },
    egress_allow_cidrs: ['127.0.0.1/32'],
    // Nothing else resolves (the resolver is loopback's discard port): no
    // test traffic leaves the machine.
    egress_dns: '127.0.0.1:9', ...extra,
  };
}

function binIdentity(bin) {
  const st = statSync(bin);
  return { exe: path.resolve(bin), exe_mtime_ms: Math.round(st.mtimeMs), exe_size: st.size };
}

let shared = null;

/**
 * The gateway for this test run: started under the lock when none runs (or
 * the running one is from another binary or config), reused otherwise.
 */
export async function useGateway() {
  if (shared)
    return shared;
  if (process.env.PORTHOLE_E2E_URL) {
    if (!process.env.PORTHOLE_E2E_TOKEN)
      throw new Error('PORTHOLE_E2E_URL needs PORTHOLE_E2E_TOKEN');
    shared = new Gateway({
      url: process.env.PORTHOLE_E2E_URL.replace(/\/$/, ''),
      token: process.env.PORTHOLE_E2E_TOKEN,
      stateDir: process.env.PORTHOLE_E2E_STATE || null,
    });
    return shared;
  }
  const bin = process.env.PORTHOLE_BIN;
  if (!bin || !existsSync(bin))
    throw new Error(`PORTHOLE_BIN must name the porthole executable (got ${bin || 'nothing'}); ` +
                    'meson test sets it');
  const stateDir = e2eStateDir();
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const config = e2eConfig();
  const want = { ...binIdentity(bin), config_sha: createHash('sha256').update(JSON.stringify(config)).digest('hex') };
  const recordPath = path.join(stateDir, 'e2e-gateway.json');

  shared = await withLock(path.join(stateDir, 'e2e.lock'), async () => {
    const rec = readJson(recordPath);
    const running = rec && pidAlive(rec.pid) && (cmdline(rec.pid) || []).some((a) => a.includes('porthole'));
    if (running) {
      const same = rec.exe === want.exe && rec.exe_mtime_ms === want.exe_mtime_ms &&
                   rec.exe_size === want.exe_size && rec.config_sha === want.config_sha;
      if (same && (await healthy(rec.url)))
        return new Gateway({ url: rec.url, token: ensureToken(stateDir), stateDir, pid: rec.pid });
      // Another build or config: its VMs stay (a gateway re-attaches to
      // them), the process goes.
      console.error(`e2e: restarting the test gateway (pid ${rec.pid}): ${same ? 'not healthy' : 'binary or config changed'}`);
      await stopPid(rec.pid);
    }
    const { url, pid, logOffset } = await startGateway({ bin, stateDir, config });
    writeFileSync(recordPath, `${JSON.stringify({ pid, url, log_offset: logOffset, ...want, config }, null, 2)}\n`);
    console.error(`e2e: started the test gateway: ${url} (pid ${pid}, state ${stateDir})`);
    return new Gateway({ url, token: ensureToken(stateDir), stateDir, pid });
  });
  return shared;
}

/** ASan/UBSan/LSan reports in a gateway log from offset on. */
export function sanitizerReports(logPath, offset = 0) {
  let text;
  try {
    text = readFileSync(logPath).subarray(offset).toString('utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => /ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:/.test(l));
}

/** Stops the shared gateway (teardown): sessions and sandboxes first. */
export async function stopSharedGateway() {
  const stateDir = e2eStateDir();
  const recordPath = path.join(stateDir, 'e2e-gateway.json');
  if (!existsSync(stateDir))
    return { stopped: false, leftovers: [], sanitizerReports: [] };
  return withLock(path.join(stateDir, 'e2e.lock'), async () => {
    const rec = readJson(recordPath);
    let stopped = false;
    if (rec && pidAlive(rec.pid)) {
      const gw = new Gateway({ url: rec.url, token: ensureToken(stateDir), stateDir, pid: rec.pid });
      if (await healthy(rec.url)) {
        // Deleting is what stops VMs; a stopped gateway leaves them running
        // for the next one to re-attach.
        const sessions = (await gw.api('GET', '/v1/browser/sessions', undefined, { expect: null })).body?.sessions ?? [];
        const sandboxes = (await gw.api('GET', '/v1/sandboxes', undefined, { expect: null })).body?.sandboxes ?? [];
        await Promise.allSettled([
          ...sessions.map((s) => gw.deleteSession(s.session_id || s.id)),
          ...sandboxes.map((s) => gw.api('DELETE', `/v1/sandboxes/${s.id}`, undefined,
                                         { expect: [200, 202, 204, 404], timeoutMs: 300_000 })),
        ]);
      }
      stopped = await stopPid(rec.pid);
    }
    writeFileSync(recordPath, '{}\n');
    return {
      stopped,
      leftovers: qemuPids(path.join(stateDir, 'vms')),
      sanitizerReports: rec ? sanitizerReports(path.join(stateDir, 'gateway.log'), rec.log_offset ?? 0) : [],
    };
  });
}

/**
 * Runs fn(gw) against a gateway of its own in a temporary state dir (for
 * benchmarks): its sessions are deleted, the gateway stopped, any QEMU that
 * outlived it killed and the state dir removed afterwards, whatever fn did.
 */
export async function withTempGateway({ bin, config, prefix = 'porthole-bench-', log = console.error },
                                      fn) {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const { url, pid } = await startGateway({ bin, stateDir, config });
  const gw = new Gateway({ url, token: ensureToken(stateDir), stateDir, pid });
  try {
    return await fn(gw);
  } finally {
    try {
      for (const s of await gw.listSessions())
        await gw.deleteSession(s.session_id);
    } catch (e) {
      log(`bench: cleanup: ${e.message}`);
    }
    await stopPid(pid);
    // A pool VM still booting when the gateway stopped may outlive it.
    for (const q of qemuPids(path.join(stateDir, 'vms'))) {
      log(`bench: QEMU ${q} outlived its gateway; killing it`);
      await stopPid(q, 10_000);
    }
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/**
 * The porthole binary a benchmark runs: explicit (its --bin), else
 * $PORTHOLE_BIN, the repository's release or dev build, or the one on PATH.
 */
export function findPortholeBin(explicit) {
  const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', '..');
  for (const c of [explicit, process.env.PORTHOLE_BIN, path.join(repo, 'build/release/cli/porthole'),
                   path.join(repo, 'build/dev/cli/porthole')].filter(Boolean))
    if (existsSync(c))
      return path.resolve(c);
  try {
    return execFileSync('sh', ['-c', 'command -v porthole'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('no porthole binary: pass --bin or set PORTHOLE_BIN');
  }
}
