// A full disk under a recording: a gateway of this test's own whose
// recordings live on a 4 MiB tmpfs (mounted on STATE/recordings before it
// starts) records a screen full of noise until the filesystem is full. The
// recording ends failed with an error that says the disk is full, the
// gateway goes on serving (API, CDP, screenshots), and a recording asked
// for while the disk is still full gets a clear refusal, not a server
// error. Needs root for the mount; skipped otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { OwnGateway } from './lib/gateway.mjs';
import { CdpClient } from './lib/cdp.mjs';
import { NOISE, ffprobe, recordings, screenshot, setPage } from './lib/media.mjs';
import { waitFor } from './lib/util.mjs';

const CONFIG = { browser_pool: 0, max_sandboxes: 2 };
const TMPFS_SIZE = '4m';


const isRoot = process.getuid?.() === 0;

test('a full disk ends a recording failed, and the gateway goes on', { timeout: 1_500_000, skip: !isRoot && 'needs root to mount a tmpfs' },
     async (t) => {
  const own = await OwnGateway.fresh('state-diskfull', CONFIG);
  const recDir = path.join(own.stateDir, 'recordings');
  mkdirSync(recDir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0700`, 'porthole-test-diskfull', recDir],
                 { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    // Root without the right to mount (some containers): nothing to test on.
    t.skip(`cannot mount a tmpfs here: ${String(e.stderr || e.message).trim()}`);
    return;
  }
  let sessionId = null;
  let passed = false;
  try {
    const gw = await own.start();
    const s = await gw.createSession({ mode: 'live' });
    sessionId = s.session_id;
    const base = `/v1/browser/sessions/${sessionId}/recordings`;
    await setPage(s.cdp_url, NOISE);

    const rec = (await gw.api('POST', base, {}, { expect: [201] })).body;
    const ended = await waitFor(async () => {
      const r = (await recordings(gw, sessionId)).find((x) => x.id === rec.id);
      return r && r.status !== 'recording' ? r : null;
    }, { timeoutMs: 300_000, intervalMs: 1000, message: 'the recording to end on the full disk' });
    console.log(`on a full disk: ${JSON.stringify(ended)}`);
    assert.equal(ended.status, 'failed');
    assert.match(ended.error || '', /space|disk/i, 'the error says the disk is full');
    assert.equal(ended.active, false);
    try {
      const probe = await ffprobe(path.join(recDir, sessionId, `${rec.id}.mp4`));
      console.log(`what the full disk kept plays for ${probe.format?.duration} s`);
    } catch (e) {
      console.log(`what the full disk kept does not play: ${e.message.split('\n')[0]}`);
    }

    // The gateway goes on: the API, the session's CDP and its screen.
    assert.equal((await gw.api('GET', '/v1/status')).status, 200);
    const pageWs = (await (await fetch(`${s.cdp_url}/json/list`)).json()).find((t) => t.type === 'page');
    const cdp = await CdpClient.connect(pageWs.webSocketDebuggerUrl);
    assert.equal(await cdp.evaluate('6 * 7'), 42);
    cdp.close();
    const shot = await screenshot(gw, sessionId);
    assert.equal(shot.status, 200);

    // A new recording while the disk is still full: refused, and said why.
    const again = await gw.api('POST', base, {}, { expect: null });
    console.log(`a recording on the full disk: HTTP ${again.status} ${JSON.stringify(again.body)}`);
    if (again.status === 201) {
      const next = await waitFor(async () => {
        const r = (await recordings(gw, sessionId)).find((x) => x.id === again.body.id);
        return r && r.status !== 'recording' ? r : null;
      }, { timeoutMs: 120_000, intervalMs: 1000, message: 'the second recording to end' });
      assert.equal(next.status, 'failed');
      assert.match(next.error || '', /space|disk/i);
    } else {
      assert.ok(again.status >= 400 && again.status < 500 || again.status === 503 || again.status === 507,
                `a refusal, not a server error: ${again.status}`);
      assert.match(JSON.stringify(again.body), /space|disk/i);
    }
    passed = true;
  } finally {
    const killed = await own.cleanup([sessionId]);
    try {
      execFileSync('umount', [recDir]);
    } catch (e) {
      console.error(`umount ${recDir}: ${e.message}`);
    }
    if (passed)
      assert.deepEqual(killed, [], 'QEMU processes outlived the cleanup (killed now)');
  }
});
