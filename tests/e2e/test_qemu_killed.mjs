// A guest that dies under a live session: a recording live session with a
// Playwright client on its CDP URL and an RFB viewer on its live view; its
// QEMU is killed with SIGKILL. The session turns `error` with a reason that
// names QEMU (the time it took is printed), the CDP client and the viewer
// are disconnected, the recording ends (finished or failed, never still
// `recording`) and its file plays up to the cut, the gateway goes on serving
// other sessions, and deleting the session leaves no QEMU and no run dir.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { qemuPids } from './lib/gateway.mjs';
import { ffprobe, recordings } from './lib/media.mjs';
import { RfbClient, vncUrl } from './lib/rfb_client.mjs';
import { sleep, waitFor } from './lib/util.mjs';

e2eTest('QEMU killed under a live session: error with a reason, clients closed, recording ended',
        async ({ gw, pages, sessions }) => {
  const s = await sessions.create({ mode: 'live', record_video: true });
  const id = s.session_id;
  const { browser, page } = await connectPlaywright(s.cdp_url);
  let cdpGone = false;
  browser.on('disconnected', () => { cdpGone = true; });
  const rfb = await RfbClient.connect(vncUrl(s.live_url));
  try {
    await page.goto(`${pages.guestUrl}/title`, { timeout: 120_000 });
    // A few seconds of video before the cut.
    await waitFor(async () => (await recordings(gw, id)).some((r) => r.status === 'recording'),
                  { timeoutMs: 60_000, message: 'the recording to start' });
    await sleep(4000);

    const pids = qemuPids(s.vm_id);
    assert.equal(pids.length, 1, `one QEMU for ${s.vm_id}: ${pids}`);
    const t0 = Date.now();
    process.kill(pids[0], 'SIGKILL');

    const dead = await waitFor(async () => {
      const info = await gw.getSession(id);
      return info.status === 'error' ? info : null;
    }, { timeoutMs: 30_000, intervalMs: 100, message: 'status error after QEMU was killed' });
    const tookMs = Date.now() - t0;
    console.log(`QEMU killed: session ${id} said error after ${tookMs} ms: ${dead.error}`);
    assert.match(dead.error || '', /QEMU/, `the reason names QEMU: ${JSON.stringify(dead)}`);

    await waitFor(() => cdpGone, { timeoutMs: 30_000, message: 'the CDP client to be disconnected' });
    await waitFor(() => rfb.closed, { timeoutMs: 30_000, message: 'the live viewer to be closed' });
    console.log(`QEMU killed: CDP client and viewer closed (viewer: ${JSON.stringify(rfb.closed)})`);

    const rec = await waitFor(async () => {
      const list = await recordings(gw, id);
      return list.length && list.every((r) => r.status !== 'recording') ? list[0] : null;
    }, { timeoutMs: 60_000, message: 'the recording to end' });
    console.log(`QEMU killed: recording ${rec.id} ${rec.status}: ${rec.end_reason} ${rec.error ?? ""}`);
    assert.ok(['finished', 'failed'].includes(rec.status), JSON.stringify(rec));
    if (gw.stateDir) {
      const file = path.join(gw.stateDir, 'recordings', id, `${rec.id}.mp4`);
      if (existsSync(file)) {
        const probe = await ffprobe(file);
        const secs = Number(probe.format?.duration || 0);
        assert.ok(secs > 1, `the file plays up to the cut: ${secs} s`);
      } else {
        assert.equal(rec.status, 'failed', `no file, so the recording says failed: ${JSON.stringify(rec)}`);
      }
    }

    // The gateway goes on: its API answers, and the other sessions' list
    // still names this one, as error.
    const listed = await gw.listSessions();
    assert.equal(listed.find((x) => x.session_id === id)?.status, 'error');
  } finally {
    rfb.ws?.terminate?.();
    await disconnect(browser);
  }

  await sessions.stop(id);
  assert.equal((await gw.api('GET', `/v1/browser/sessions/${id}`, undefined, { expect: [404] })).status, 404);
  assert.deepEqual(qemuPids(s.vm_id), [], 'no QEMU left for the VM');
  const runDir = gw.vmRunDir(s.vm_id);
  if (runDir)
    await waitFor(() => !existsSync(runDir), { timeoutMs: 30_000, message: `run dir ${runDir} removed` });
});
