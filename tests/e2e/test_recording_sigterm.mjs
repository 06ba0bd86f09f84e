// A recording survives its gateway's SIGTERM: a gateway of this test's own
// (own state dir under the build dir, no browser pool) records a live
// session; ~5 s in, the gateway gets SIGTERM and must exit by itself, leaving
// the MP4 under STATE/recordings/SESSION/ finalized and playable (H.264,
// more than 3 s, index first, sidecar marked ended). Then a gateway on the
// same state dir re-attaches, still lists the recording as finished, and the
// session is deleted so no QEMU is left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { OwnGateway, stopPid } from './lib/gateway.mjs';
import {
  colourName, ffprobe, png, recordings, runsOf, sampleColours, screenshot, setPage, topLevelBoxes,
  videoStream,
} from './lib/media.mjs';
import { sleep, waitFor } from './lib/util.mjs';

const CONFIG = { browser_pool: 0, max_sandboxes: 2 };

test('SIGTERM to the gateway finalizes a running recording', { timeout: 1_500_000 }, async () => {
  const own = await OwnGateway.fresh('state-sigterm', CONFIG);
  const { stateDir } = own;
  let gw = await own.start();
  console.error(`own gateway ${gw.url} (pid ${own.pid}, state ${stateDir})`);
  let sessionId = null;
  let passed = false;
  try {
    const s = await gw.createSession({ mode: 'live', record_video: true });
    sessionId = s.session_id;
    const recs = await recordings(gw, sessionId);
    assert.equal(recs.length, 1, JSON.stringify(recs));
    assert.equal(recs[0].active, true);
    const rid = recs[0].id;
    const mp4 = path.join(stateDir, 'recordings', sessionId, `${rid}.mp4`);
    const meta = path.join(stateDir, 'recordings', sessionId, `${rid}.json`);
    assert.ok(existsSync(mp4), `${mp4} exists while recording`);

    // Red on the screen for the last ~5 s before the signal: the end of the
    // recording, the part a careless shutdown loses, must hold it.
    await setPage(s.cdp_url, '<style>html,body{margin:0;height:100%;background:#f00;cursor:none}</style>');
    await waitFor(async () => {
      const img = png((await screenshot(gw, sessionId)).png);
      return colourName(img.pixel(img.width * 0.3, img.height * 0.7)) === 'red';
    }, { timeoutMs: 120_000, intervalMs: 300, message: 'red on the screen' });
    const redSeen = Date.now();
    await sleep(5000);
    const t0 = Date.now();
    const exited = await stopPid(own.pid, 120_000);
    assert.ok(exited, 'the gateway exited on SIGTERM within 120 s (it had to be killed)');
    console.error(`gateway exited ${Date.now() - t0} ms after SIGTERM`);

    // The file as the stopped gateway left it.
    const data = readFileSync(mp4);
    const types = topLevelBoxes(data).map((b) => b.type);
    const probe = await ffprobe(mp4);
    const v = videoStream(probe);
    console.error(`after SIGTERM: ${data.length} bytes, boxes ${types.join(' ')}; codec ${v.codec_name} ` +
                  `${v.width}x${v.height} r_frame_rate ${v.r_frame_rate} avg_frame_rate ${v.avg_frame_rate} ` +
                  `duration ${probe.format.duration} s`);
    assert.equal(v.codec_name, 'h264');
    assert.ok(Number(probe.format.duration) > 3, `duration ${probe.format.duration} s > 3 s`);
    assert.equal(v.avg_frame_rate, v.r_frame_rate, 'a constant frame rate');
    assert.ok(types.indexOf('moov') >= 0 && types.indexOf('moov') < types.indexOf('mdat'),
              `finalized with the index first: ${types.join(' ')}`);
    assert.ok(!existsSync(`${mp4}.faststart.tmp`), 'no temporary file left');
    const samples = (await sampleColours(mp4, { fps: 2, x: v.width * 0.3, y: v.height * 0.7 }))
      .map((x) => ({ ...x, name: colourName(x.rgb, 60, ['red', 'white']) }));
    const runs = runsOf(samples);
    console.error(`colour runs: ${runs.map((r) => `${r.name} ${r.from}-${r.to}s`).join(', ')}; ` +
                  `red held ${((t0 - redSeen) / 1000).toFixed(1)} s before SIGTERM`);
    const tail = runs[runs.length - 1];
    assert.equal(tail.name, 'red', 'the recording ends on what the screen showed at SIGTERM');
    // The last sample is red and nothing follows it, so red runs to the
    // file's end: up to one sample period (0.5 s) past the last sample.
    const redLasts = Number(probe.format.duration) - tail.from;
    assert.ok(redLasts >= (t0 - redSeen) / 1000 - 1.5,
              `red lasts ${redLasts.toFixed(2)} s in the file (from ${tail.from} s to the end); ` +
              `it was on screen ${(t0 - redSeen) / 1000} s`);
    const m = JSON.parse(readFileSync(meta, 'utf8'));
    assert.ok(m.ended_ms > m.started_ms, `the sidecar records the end: ${JSON.stringify(m)}`);

    // A new gateway on the same state dir re-attaches to the session's VM and
    // still lists the recording as finished.
    gw = await own.start();
    const after = await recordings(gw, sessionId);
    console.error(`after the restart: ${JSON.stringify(after)}`);
    const same = after.find((r) => r.id === rid);
    assert.ok(same, 'the recording is listed after the restart');
    assert.equal(same.active, false);
    assert.equal(same.bytes, readFileSync(mp4).length);
    passed = true;
  } finally {
    // Leave nothing running: delete the session through a live gateway (it
    // stops the VM), stop that gateway, and kill whatever QEMU remains.
    const killed = await own.cleanup([sessionId]);
    if (passed)
      assert.deepEqual(killed, [], 'QEMU processes outlived the cleanup (killed now)');
  }
});
