// Recordings are bounded, on a gateway of this test's own whose recordings
// may hold 1 MiB in all (recording_total_mib): a recording of a screen full
// of noise ends by itself at the budget, finished and playable, and says
// why; the next one is refused with 429 until a recording is deleted. Then
// the gateway is killed with SIGKILL during a recording: the gateway that
// follows lists that recording as failed ("cut short"), not as active
// forever, and its file still plays up to the cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { OwnGateway, pidAlive } from './lib/gateway.mjs';
import { NOISE, ffprobe, recordings, setPage, videoStream } from './lib/media.mjs';
import { sleep, waitFor } from './lib/util.mjs';

const CONFIG = { browser_pool: 0, max_sandboxes: 2, recording_total_mib: 1 };
const MIB = 1 << 20;



const recPath = (gw, sid, rid) => path.join(gw.stateDir, 'recordings', sid, `${rid}.mp4`);

test('recordings: the budget ends one and refuses the next; one cut by SIGKILL is marked failed',
     { timeout: 1_500_000 }, async () => {
  const own = await OwnGateway.fresh('state-reclimits', CONFIG);
  let gw = await own.start();
  let sessionId = null;
  let passed = false;
  try {
    const s = await gw.createSession({ mode: 'live' });
    sessionId = s.session_id;
    const base = `/v1/browser/sessions/${sessionId}/recordings`;
    await setPage(s.cdp_url, NOISE);

    // ---- the budget ends a recording ------------------------------------------
    const first = (await gw.api('POST', base, {}, { expect: [201] })).body;
    assert.equal(first.active, true, JSON.stringify(first));
    assert.equal(first.status, 'recording');
    const ended = await waitFor(async () => {
      const r = (await recordings(gw, sessionId)).find((x) => x.id === first.id);
      return r && !r.active ? r : null;
    }, { timeoutMs: 300_000, intervalMs: 1000, message: 'the recording to end at the budget' });
    console.error(`ended by itself: ${JSON.stringify(ended)}`);
    assert.equal(ended.status, 'finished');
    assert.match(ended.end_reason, /budget was full/);
    assert.ok(ended.ended_at, 'it has an end time');
    assert.ok(ended.bytes >= 0.9 * MIB && ended.bytes < 16 * MIB, `${ended.bytes} bytes, about the 1 MiB budget`);
    const probe = await ffprobe(recPath(gw, sessionId, first.id));
    assert.equal(videoStream(probe).codec_name, 'h264');
    assert.ok(Number(probe.format.duration) > 0, `it plays: ${probe.format.duration} s`);

    // ---- a full budget refuses the next one --------------------------------------
    const refused = await gw.api('POST', base, {}, { expect: [429] });
    console.error(`refused: ${JSON.stringify(refused.body)}`);
    assert.match(JSON.stringify(refused.body), /budget is full/);
    assert.equal((await recordings(gw, sessionId)).length, 1, 'the finished recording was not deleted to make room');
    await gw.api('DELETE', `${base}/${first.id}`);

    // ---- SIGKILL during a recording ------------------------------------------------
    await setPage(s.cdp_url, '<style>html,body{margin:0;height:100%;background:#00f;cursor:none}</style>');
    const second = (await gw.api('POST', base, {}, { expect: [201] })).body;
    await sleep(4000);
    process.kill(own.pid, 'SIGKILL');
    await waitFor(() => !pidAlive(own.pid), { timeoutMs: 30_000, intervalMs: 200, message: 'the gateway to die' });
    const mp4 = recPath(gw, sessionId, second.id);
    const cutBytes = statSync(mp4).size;

    gw = await own.start();
    const cut = (await recordings(gw, sessionId)).find((x) => x.id === second.id);
    console.error(`after SIGKILL and a restart: ${JSON.stringify(cut)}`);
    assert.ok(cut, 'the cut recording is listed');
    assert.equal(cut.active, false);
    assert.equal(cut.status, 'failed');
    assert.match(cut.error, /cut short/);
    assert.ok(cut.ended_at, 'it has an end time (so retention can expire it)');
    assert.equal(cut.bytes, cutBytes);
    const leftovers = readdirSync(path.dirname(mp4)).filter((f) => f.endsWith('.tmp'));
    assert.deepEqual(leftovers, [], 'no temporary files left');
    const cutProbe = await ffprobe(mp4);
    assert.equal(videoStream(cutProbe).codec_name, 'h264');
    assert.ok(Number(cutProbe.format.duration) > 1, `the cut file plays up to the cut: ${cutProbe.format.duration} s`);
    passed = true;
  } finally {
    const killed = await own.cleanup([sessionId]);
    if (passed)
      assert.deepEqual(killed, [], 'QEMU processes outlived the cleanup (killed now)');
  }
});
