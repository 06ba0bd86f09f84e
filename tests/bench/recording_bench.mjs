#!/usr/bin/env node
// Recording benchmark: prints numbers, asserts nothing.
//
//  1. Host CPU per recorded minute: the CPU time of the gateway process and
//     of QEMU's threads other than vCPUs (its VNC server and display;
//     /proc/PID/stat utime+stime) over --seconds of recording
//     a 1280x720 live session at the gateway's frame rate (15 fps), minus the
//     same period without recording, scaled to a minute; for a still page and
//     for a page that changes every frame. The finalize (stop) is counted
//     apart.
//  2. What recording costs the guest: a page-heavy workload (a CPU-bound JS
//     loop plus DOM churn that paints every step), timed inside the page,
//     with no recording, with our recording (QEMU's VNC server on the host,
//     the gateway's VNC client and host-side encoder), and with an in-guest
//     `ffmpeg -f x11grab -framerate 15 -video_size 1280x720 -i :0
//     -c:v libx264 -preset veryfast` started over SSH (STATE/vms/VMID/
//     client_key, the ssh port from STATE/state.db). The gateway's screen
//     connection stays open once made but asks for updates only while
//     somebody wants pictures, so "off" and in-guest ffmpeg rounds run first
//     (interleaved), then ours interleaved with "off_vnc" (no recording,
//     connection open): that one shows what an idle open connection costs.
//     Prints both slowdowns and their ratio. --conditions picks a subset
//     (off always runs: it is the baseline).
//     The aim: ours costs the guest < 5%. On a shared, software-emulated
//     host the spread between runs is large: read the medians with all_ms.
//
// Runs its own gateway ("browser_pool": 0) on a temporary state dir and
// stops it (and its VM) at the end. Needs `npm install` in tests/e2e and
// the browser guest image; the in-guest part needs ffmpeg in that image
// (guest-image/packages/browser.list) and is skipped without it.
//
//   node tests/bench/recording_bench.mjs [--seconds 30] [--rounds 3] [--reps 3]
//        [--work-ms 3000] [--bin build/dev/cli/porthole] [--skip-cpu]
//        [--skip-guest] [--conditions off,ffmpeg,ours,off_vnc] [--pin] [--json]
//
// --pin keeps the host's side of capture off the guest's CPU: the VM's vCPU
// threads run on host CPU 0, everything else of QEMU and the whole gateway
// on the other CPUs (taskset). On a 2-core host, unpinned, the host's
// encoding competes with the software-emulated vCPUs for the same two
// cores, which slows the guest without the guest doing any of the work.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { findPortholeBin, withTempGateway } from '../e2e/lib/gateway.mjs';
import { CdpClient, getJson } from '../e2e/lib/cdp_raw.mjs';
import { sleep } from '../e2e/lib/util.mjs';

const run = promisify(execFile);
const VIEWPORT = { width: 1280, height: 720 };
const GUEST_VCPUS = 2;   // a browser VM's vCPUs (porthole's default)

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    rounds: { type: 'string', default: '3' },
    reps: { type: 'string', default: '3' },
    'work-ms': { type: 'string', default: '3000' },
    'anim-seconds': { type: 'string', default: '15' },
    bin: { type: 'string' },
    'skip-cpu': { type: 'boolean', default: false },
    'skip-guest': { type: 'boolean', default: false },
    pin: { type: 'boolean', default: false },
    conditions: { type: 'string', default: 'off,ffmpeg,ours,off_vnc' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log('usage: node tests/bench/recording_bench.mjs [--seconds N] [--rounds N] [--reps N] ' +
              '[--work-ms MS] [--bin PATH] [--skip-cpu] [--skip-guest] [--conditions LIST] [--json]');
  process.exit(0);
}
const SECONDS = Math.max(5, Number(opt.seconds));
const ROUNDS = Math.max(1, Number(opt.rounds));
const REPS = Math.max(1, Number(opt.reps));
const WORK_MS = Math.max(500, Number(opt['work-ms']));
const ANIM_S = Math.max(3, Number(opt['anim-seconds']));
const say = (...a) => console.error(...a);
const result = { viewport: VIEWPORT };

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

// ---- CPU time of a process -----------------------------------------------------

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime + stime in seconds from a /proc stat file's text. */
function statSeconds(stat) {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the comm: state is field 3, utime 14, stime 15 (1-based in proc(5)).
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** utime + stime of pid in seconds (all its threads). */
function cpuSeconds(pid) {
  return statSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** The QEMU process of session s (its pid file in the VM's run dir). */
function qemuPidOf(gw, s) {
  s.qemuPid ??= Number(readFileSync(path.join(gw.stateDir, 'vms', s.vm_id, 'qemu.pid'), 'utf8'));
  return s.qemuPid;
}

/**
 * QEMU's threads, each with whether it is a vCPU (QEMU runs with
 * debug-threads=on, so vCPU threads are named "CPU n/TCG" or "CPU n/KVM")
 * and, when asked for, its CPU seconds. A thread that ends between the
 * listing and the read is left out.
 */
function qemuThreads(pid, { cpu = false } = {}) {
  const out = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const vcpu = /^CPU \d+\//.test(readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8'));
      out.push({ tid, vcpu, cpu: cpu ? statSeconds(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')) : 0 });
    } catch {
      // gone already
    }
  }
  return out;
}

/**
 * The host CPU seconds capture can cost: the gateway plus QEMU's threads
 * other than vCPUs (its main loop, which serves the VNC server and the
 * virtio-gpu device, and the VNC worker).
 */
function hostCpuSeconds(gw, s) {
  return qemuThreads(qemuPidOf(gw, s), { cpu: true })
    .reduce((sum, t) => sum + (t.vcpu ? 0 : t.cpu), cpuSeconds(gw.pid));
}

/** Host CPU seconds (hostCpuSeconds) used while fn ran, and the wall seconds. */
async function measureCpu(gw, s, fn) {
  const c0 = hostCpuSeconds(gw, s), t0 = performance.now();
  const value = await fn();
  return { cpu: hostCpuSeconds(gw, s) - c0, wall: (performance.now() - t0) / 1000, value };
}

/** --pin: vCPU threads to CPU 0, the rest of QEMU and the gateway to the others. */
function pinThreads(gw, s) {
  const cpus = os.cpus().length;
  if (cpus < 2) {
    say('bench: --pin needs at least 2 host CPUs; running unpinned');
    return false;
  }
  const rest = `1-${cpus - 1}`;
  let vcpus = 0;
  for (const { tid, vcpu } of qemuThreads(qemuPidOf(gw, s))) {
    execFileSync('taskset', ['-p', '-c', vcpu ? '0' : rest, tid], { stdio: 'ignore' });
    vcpus += vcpu ? 1 : 0;
  }
  execFileSync('taskset', ['-a', '-p', '-c', rest, String(gw.pid)], { stdio: 'ignore' });
  say(`bench: pinned ${vcpus} vCPU threads to CPU 0, QEMU's other threads and the gateway to CPUs ${rest}`);
  return true;
}

// ---- the session's page ----------------------------------------------------------

const PAGE_JS = `
window.__bench = {
  still() {
    cancelAnimationFrame(this.raf || 0);
    document.body.innerHTML = '<h1 style="font:48px sans-serif;margin:80px">A still page</h1>';
    document.body.style.background = '#fff';
  },
  animate() {
    // A full-window change every frame: the encoder's busy case.
    document.body.innerHTML = '<div id="a" style="position:fixed;inset:0;font:64px monospace;padding:40px"></div>';
    const a = document.getElementById('a');
    this.frames = 0;
    const step = (t) => {
      this.frames++;
      a.style.background = 'hsl(' + Math.floor(t / 20) % 360 + ',70%,55%)';
      a.textContent = 'frame ' + Math.floor(t) + ' ' + Math.random().toString(36).slice(2);
      this.raf = requestAnimationFrame(step);
    };
    this.raf = requestAnimationFrame(step);
  },
  async work(n) {
    // CPU-bound JS plus DOM churn that paints every step.
    cancelAnimationFrame(this.raf || 0);
    document.body.innerHTML = '<div id="box" style="columns:4;font:13px sans-serif"></div>';
    const box = document.getElementById('box');
    const t0 = performance.now();
    let acc = 0;
    for (let k = 0; k < n; k++) {
      for (let i = 0; i < 40000; i++)
        acc += Math.sqrt(i * (k + 1)) % 7;
      const frag = document.createDocumentFragment();
      for (let j = 0; j < 120; j++) {
        const d = document.createElement('div');
        d.textContent = 'row ' + j + ' step ' + k + ' ' + (acc % 1000).toFixed(3);
        d.style.background = 'hsl(' + ((j * 7 + k * 29) % 360) + ',70%,70%)';
        frag.appendChild(d);
      }
      box.replaceChildren(frag);
      acc += box.offsetHeight;
      await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    }
    return { ms: performance.now() - t0, acc };
  },
};
'ok'`;

async function pageSession(cdpWsUrl) {
  const cdp = await CdpClient.connect(cdpWsUrl, { timeoutMs: 120_000 });
  const sessionId = await cdp.attachToPage();
  const ev = async (expression) => {
    const r = await cdp.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true },
                             sessionId);
    if (r.exceptionDetails)
      throw new Error(`evaluate ${expression.slice(0, 60)}: ${r.exceptionDetails.exception?.description || r.exceptionDetails.text}`);
    return r.result.value;
  };
  await cdp.send('Page.bringToFront', {}, sessionId).catch(() => {});
  await ev(PAGE_JS);
  return { cdp, ev };
}

// ---- the guest over SSH ---------------------------------------------------------------

function sshTarget(stateDir, session) {
  const script = 'import sqlite3, sys\n' +
                 'c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)\n' +
                 'r = c.execute("SELECT record FROM objects WHERE id = ?", (sys.argv[2],)).fetchone()\n' +
                 'print(r[0] if r else "")\n';
  const rec = execFileSync('python3', ['-c', script, path.join(stateDir, 'state.db'), session.session_id],
                           { encoding: 'utf8' }).trim();
  const port = rec ? JSON.parse(rec).ssh_port : null;
  const vmId = (rec && JSON.parse(rec).vm_id) || session.vm_id;
  const runDir = path.join(stateDir, 'vms', vmId);
  if (!Number.isInteger(port) || port <= 0 || !existsSync(path.join(runDir, 'client_key')))
    throw new Error(`no ssh port or key for ${session.session_id} (vm ${vmId})`);
  // The guest's host key is pinned, as the gateway does.
  const known = path.join(stateDir, 'bench_known_hosts');
  writeFileSync(known, `[127.0.0.1]:${port} ${readFileSync(path.join(runDir, 'host_key.pub'), 'utf8').trim()}\n`);
  return { port, key: path.join(runDir, 'client_key'), known };
}

async function ssh(t, command, timeoutMs = 60_000) {
  const { stdout } = await run('ssh', ['-p', String(t.port), '-i', t.key, '-o', 'BatchMode=yes',
                                       '-o', `UserKnownHostsFile=${t.known}`, '-o', 'StrictHostKeyChecking=yes',
                                       '-o', 'IdentitiesOnly=yes', '-o', 'ConnectTimeout=30',
                                       'root@127.0.0.1', command], { timeout: timeoutMs });
  return stdout.trim();
}

/**
 * Guest CPU over `seconds`, read inside the guest: the share of all vCPUs
 * busy, and the CPU seconds of the X server (Xorg on the VM's virtio-gpu
 * screen, which serves x11grab's XShm reads; older images ran Xvnc, which
 * also encoded what VNC clients asked for) and of ffmpeg.
 */
async function guestCpu(t, seconds) {
  const out = await ssh(t, 'X=$(pidof Xorg Xtigervnc Xvnc); F=$(pidof ffmpeg); ' +
                           'snap() { head -1 /proc/stat; for p in $X; do echo "X $(cut -d" " -f14,15 /proc/$p/stat)"; done; ' +
                           'for p in $F; do echo "F $(cut -d" " -f14,15 /proc/$p/stat)"; done; echo --; }; ' +
                           `snap; sleep ${seconds}; snap; getconf CLK_TCK`, (seconds + 60) * 1000);
  const [a, b, tck] = out.split('--\n').map((x) => x.trim());
  const parse = (block) => {
    const r = { busy: 0, total: 0, X: 0, F: 0 };
    for (const line of block.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[0] === 'cpu') {
        const v = f.slice(1).map(Number);
        r.total = v.reduce((x, y) => x + y, 0);
        r.busy = r.total - v[3] - v[4];   // minus idle and iowait
      } else if (f[0] === 'X' || f[0] === 'F') {
        r[f[0]] += Number(f[1]) + Number(f[2]);
      }
    }
    return r;
  };
  const p0 = parse(a), p1 = parse(b), hz = Number(tck) || 100;
  return {
    busy_pct: 100 * (p1.busy - p0.busy) / Math.max(1, p1.total - p0.total),
    xserver_cpu_s: (p1.X - p0.X) / hz,
    ffmpeg_cpu_s: (p1.F - p0.F) / hz,
  };
}

// ---- a gateway of our own ----------------------------------------------------------------

async function withGateway(bin, fn) {
  return withTempGateway({ bin, config: { browser_pool: 0 }, prefix: 'porthole-rec-bench-', log: say },
                         async (gw) => {
    result.accel = (await getJson(`${gw.url}/healthz`)).body?.accel ?? null;
    return fn(gw);
  });
}

const recPath = (s) => `/v1/browser/sessions/${s.session_id}/recordings`;

async function recStart(gw, s) {
  return (await gw.api('POST', recPath(s), {}, { expect: [201] })).body;
}

async function recStop(gw, s, rec) {
  return (await gw.api('POST', `${recPath(s)}/${rec.id}/stop`, {}, { timeoutMs: 300_000 })).body;
}

// ---- 1. host CPU per recorded minute --------------------------------------------------------

async function benchCpu(gw, s, page, base) {
  const out = {};
  // The gateway's screen connection exists before either measurement.
  await gw.api('GET', `/v1/browser/sessions/${s.session_id}/screenshot`);
  for (const content of ['still', 'animate']) {
    await page.ev(`window.__bench.${content}()`);
    await sleep(2000);
    const idle = await measureCpu(gw, s, () => sleep(SECONDS * 1000));
    let rec;
    const recording = await measureCpu(gw, s, async () => {
      rec = await recStart(gw, s);
      await sleep(SECONDS * 1000);
    });
    const stop = await measureCpu(gw, s, () => recStop(gw, s, rec));
    const meta = JSON.parse(readFileSync(path.join(gw.stateDir, 'recordings', s.session_id, `${rec.id}.json`), 'utf8'));
    const extra = recording.cpu - idle.cpu * (recording.wall / idle.wall);
    const overNothing = recording.cpu - base.cpu * (recording.wall / base.wall);
    out[content] = {
      no_client_idle_cpu_s_per_min: +(base.cpu / base.wall * 60).toFixed(2),
      connected_idle_cpu_s_per_min: +(idle.cpu / idle.wall * 60).toFixed(2),
      cpu_s_per_recorded_minute_over_no_client: +(overNothing / recording.wall * 60).toFixed(2),
      idle_cpu_s: +idle.cpu.toFixed(2),
      recording_cpu_s: +recording.cpu.toFixed(2),
      seconds: +recording.wall.toFixed(1),
      finalize_cpu_s: +stop.cpu.toFixed(2),
      finalize_wall_s: +stop.wall.toFixed(2),
      cpu_s_per_recorded_minute: +(extra / recording.wall * 60).toFixed(2),
      share_of_one_core_pct: +(extra / recording.wall * 100).toFixed(1),
      frames: meta.frames ?? null,
      late_slots: meta.late_slots ?? null,
      mib_per_minute: +(stop.value.bytes / 1048576 / recording.wall * 60).toFixed(2),
    };
    await gw.api('DELETE', `${recPath(s)}/${rec.id}`);
    say(`cpu ${content}: ${JSON.stringify(out[content])}`);
  }
  return out;
}

// ---- 2. the guest's slowdown ------------------------------------------------------------------
//
// The gateway's screen connection, once made (first screenshot, action or
// recording), stays for the session's life; it asks for updates only at a
// recording's frame rate, for a snapshot, or while an action waits for the
// screen to settle. The no-recording baseline ("off") and the in-guest ffmpeg
// run first, interleaved, before the gateway ever connects; then our
// recording interleaved with "off_vnc" (no recording, the connection made by
// the first recording still open).

async function startFfmpeg(t) {
  const pid = await ssh(t, 'rm -f /tmp/bench.mp4; DISPLAY=:0 nohup ffmpeg -nostdin -loglevel error ' +
                           `-f x11grab -framerate 15 -video_size ${VIEWPORT.width}x${VIEWPORT.height} -i :0 ` +
                           '-c:v libx264 -preset veryfast -y /tmp/bench.mp4 >/tmp/bench-ffmpeg.log 2>&1 & echo $!');
  return async () => {
    // ffmpeg finishing its file on a busy guest can outlast the wait; it
    // must be gone before the next condition is measured, or that one
    // would carry its load.
    const out = await ssh(t, `kill -INT ${pid}; for i in $(seq 150); do kill -0 ${pid} 2>/dev/null || break; sleep 0.2; done; ` +
                             `if kill -0 ${pid} 2>/dev/null; then echo "ffmpeg killed"; kill -KILL ${pid}; fi; ` +
                             'stat -c "%s bytes" /tmp/bench.mp4 2>&1; tail -3 /tmp/bench-ffmpeg.log', 120_000);
    if (!/\d+ bytes/.test(out) || /(^|\n)0 bytes/.test(out) || /ffmpeg killed/.test(out))
      say(`guest ffmpeg did not end cleanly: ${out}`);
    const left = await ssh(t, 'pidof ffmpeg || true');
    if (left)
      throw new Error(`guest ffmpeg still running (pid ${left}); the next measurement would carry it`);
  };
}

async function benchGuest(gw, s, page) {
  const t = sshTarget(gw.stateDir, s);
  const hasFfmpeg = (await ssh(t, 'command -v ffmpeg || true')) !== '';
  if (!hasFfmpeg)
    say('guest: no ffmpeg in the guest image (add it to guest-image/packages/browser.list); ' +
        'the in-guest comparison is skipped');

  // Calibrate the workload to about WORK_MS in the guest.
  await page.ev('window.__bench.work(1)');
  const probe = await page.ev('window.__bench.work(4)');
  const steps = Math.max(1, Math.round(4 * WORK_MS / probe.ms));
  say(`guest: ${steps} steps ≈ ${WORK_MS} ms (4 steps took ${probe.ms.toFixed(0)} ms)`);

  const work = async () => (await page.ev(`window.__bench.work(${steps})`)).ms;
  const times = { off: [], ffmpeg: [], ours: [], off_vnc: [] };
  const hostCpu = { off: 0, ffmpeg: 0, ours: 0, off_vnc: 0 };
  const anim = { off: [], ffmpeg: [], ours: [], off_vnc: [] };
  const runCondition = async (cond, round) => {
    let stop = async () => {};
    if (cond === 'ours') {
      const rec = await recStart(gw, s);
      stop = async () => {
        await recStop(gw, s, rec);
        await gw.api('DELETE', `${recPath(s)}/${rec.id}`);
      };
    } else if (cond === 'ffmpeg') {
      stop = await startFfmpeg(t);
    }
    await sleep(2000);   // the recorder settles in
    try {
      // A page that changes every frame: its frame rate, and guest CPU.
      await page.ev('window.__bench.animate()');
      await sleep(1000);
      const f0 = await page.ev('window.__bench.frames'), w0 = performance.now();
      const g = await guestCpu(t, ANIM_S);
      const fps = (await page.ev('window.__bench.frames') - f0) / ((performance.now() - w0) / 1000);
      anim[cond].push({ fps, ...g });
      const c0 = hostCpuSeconds(gw, s);
      for (let r = 0; r < REPS; r++)
        times[cond].push(await work());
      hostCpu[cond] += hostCpuSeconds(gw, s) - c0;
    } finally {
      await stop();
    }
    const last = anim[cond][anim[cond].length - 1];
    say(`guest round ${round + 1} ${cond}: workload ${times[cond].slice(-REPS).map((x) => x.toFixed(0)).join(' ')} ms; ` +
        `animation ${last.fps.toFixed(1)} fps, guest busy ${last.busy_pct.toFixed(1)}%, ` +
        `X server ${last.xserver_cpu_s.toFixed(2)} s, ffmpeg ${last.ffmpeg_cpu_s.toFixed(2)} s in ${ANIM_S} s`);
  };
  // Alternate the order each round so neither always follows the other.
  const phase = async (a, b) => {
    for (let round = 0; round < ROUNDS; round++)
      for (const cond of round % 2 ? [b, a] : [a, b])
        if (cond)
          await runCondition(cond, round);
  };
  const want = new Set(opt.conditions.split(',').map((x) => x.trim()));
  want.add('off');   // the baseline every slowdown is measured against
  const pick = (c) => (want.has(c) && (c !== 'ffmpeg' || hasFfmpeg) ? c : null);
  await phase('off', pick('ffmpeg'));
  await phase(pick('ours'), pick('off_vnc'));

  const med = Object.fromEntries(Object.entries(times).filter(([, v]) => v.length).map(([k, v]) => [k, median(v)]));
  const slow = (k) => (med[k] !== undefined ? +((med[k] / med.off - 1) * 100).toFixed(1) : null);
  const ours = slow('ours'), ff = slow('ffmpeg');
  const am = (cond, k) => (anim[cond].length ? median(anim[cond].map((x) => x[k])) : null);
  const animation = {};
  for (const cond of Object.keys(anim)) {
    if (!anim[cond].length)
      continue;
    // Recorder CPU in the guest: the X server beyond the no-recording baseline, plus ffmpeg.
    const rec = am(cond, 'xserver_cpu_s') - am('off', 'xserver_cpu_s') + am(cond, 'ffmpeg_cpu_s');
    animation[cond] = {
      fps: +am(cond, 'fps').toFixed(2),
      guest_busy_pct: +am(cond, 'busy_pct').toFixed(1),
      xserver_cpu_s: +am(cond, 'xserver_cpu_s').toFixed(2),
      ffmpeg_cpu_s: +am(cond, 'ffmpeg_cpu_s').toFixed(2),
      recorder_guest_cpu_pct_of_vcpus: +(100 * rec / (ANIM_S * GUEST_VCPUS)).toFixed(1),
      fps_loss_pct: +((1 - am(cond, 'fps') / am('off', 'fps')) * 100).toFixed(1),
    };
  }
  return {
    steps,
    animation_seconds: ANIM_S,
    animation,
    runs_per_condition: ROUNDS * REPS,
    median_ms: Object.fromEntries(Object.entries(med).map(([k, v]) => [k, +v.toFixed(1)])),
    all_ms: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, v.map((x) => +x.toFixed(0))])),
    host_side_cpu_s: Object.fromEntries(Object.entries(hostCpu).map(([k, v]) => [k, +v.toFixed(2)])),
    slowdown_ours_pct: ours,
    slowdown_off_vnc_pct: slow('off_vnc'),
    slowdown_ffmpeg_pct: ff,
    ratio_ffmpeg_over_ours: ff !== null && ours > 0 ? +(ff / ours).toFixed(2) : null,
  };
}

// ---- main -------------------------------------------------------------------------------------

const bin = findPortholeBin(opt.bin);
result.bin = bin;
result.host_cpus = os.cpus().length;
await withGateway(bin, async (gw) => {
  say(`bench: gateway ${gw.url} (pid ${gw.pid}); starting a live ${VIEWPORT.width}x${VIEWPORT.height} session`);
  const s = await gw.createSession({ mode: 'live', viewport: VIEWPORT });
  if (opt.pin)
    result.pinned = pinThreads(gw, s);
  const page = await pageSession(s.cdp_ws_url);
  await page.ev('window.__bench.still()');
  await sleep(10_000);   // first paint of a cold-booted browser
  try {
    // The gateway with a session and no screen connection yet.
    const base = await measureCpu(gw, s, () => sleep(Math.min(SECONDS, 20) * 1000));
    result.gateway_idle_cpu_s_per_min = +(base.cpu / base.wall * 60).toFixed(2);
    if (!opt['skip-guest'])
      result.guest = await benchGuest(gw, s, page);
    if (!opt['skip-cpu'])
      result.host_cpu = await benchCpu(gw, s, page, base);
  } finally {
    page.cdp.close();
  }
});

if (opt.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  console.log(`recording benchmark: ${VIEWPORT.width}x${VIEWPORT.height} @ 15 fps, accel ${result.accel}, ${result.host_cpus} host CPUs`);
  if (result.host_cpu) {
    console.log(`  gateway idle, no screen connection: ${result.gateway_idle_cpu_s_per_min} CPU-s per minute`);
    for (const [content, r] of Object.entries(result.host_cpu))
      console.log(`  host CPU, ${content === 'still' ? 'still page  ' : 'changing page'}: ` +
                  `${r.cpu_s_per_recorded_minute} CPU-s per recorded minute over a connected idle session ` +
                  `(${r.share_of_one_core_pct}% of a core; ${r.cpu_s_per_recorded_minute_over_no_client} over no connection; ` +
                  `the idle connection alone ${r.connected_idle_cpu_s_per_min}/min), ` +
                  `finalize ${r.finalize_cpu_s} CPU-s / ${r.finalize_wall_s} s, ${r.mib_per_minute} MiB/min, ` +
                  `${r.frames} frames, ${r.late_slots} late slots in ${r.seconds} s`);
  }
  if (result.guest) {
    const g = result.guest;
    console.log(`  guest workload (${g.steps} steps, median of ${g.runs_per_condition}): off ${g.median_ms.off} ms, ` +
                `ours ${g.median_ms.ours} ms, in-guest ffmpeg ${g.median_ms.ffmpeg ?? 'n/a'} ms, ` +
                `off with the gateway's screen connection open ${g.median_ms.off_vnc} ms`);
    console.log(`  slowdown: ours ${g.slowdown_ours_pct}% (aim < 5%), in-guest ffmpeg ` +
                `${g.slowdown_ffmpeg_pct ?? 'n/a'}%, ratio ffmpeg/ours ${g.ratio_ffmpeg_over_ours ?? 'n/a'}; ` +
                `idle screen connection ${g.slowdown_off_vnc_pct}%`);
    console.log(`  host CPU (gateway + QEMU outside its vCPUs) during the workload runs: ${JSON.stringify(g.host_side_cpu_s)} s`);
    for (const [cond, a] of Object.entries(g.animation))
      console.log(`  animated page, ${cond.padEnd(7)}: ${a.fps} fps (loss ${a.fps_loss_pct}%), guest busy ${a.guest_busy_pct}%, ` +
                  `X server ${a.xserver_cpu_s} CPU-s, ffmpeg ${a.ffmpeg_cpu_s} CPU-s per ${g.animation_seconds} s; ` +
                  `recorder's guest CPU ${a.recorder_guest_cpu_pct_of_vcpus}% of the vCPUs`);
  }
}
