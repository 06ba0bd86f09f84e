// Screen recordings end to end: a live session with record_video records
// from its first frame; the guest's browser (driven over CDP) shows solid
// red, green and blue for about 3 s each; the recording is stopped through
// the API and downloaded. ffprobe must see H.264 at a constant 15 fps whose
// duration matches the wall time recorded, the decoded frames must show the
// colours in order at the times they were on screen, the file must have its
// index (moov) before the media data, and Range requests must work. A second
// recording is finalized by stopping the session and stays listed and
// fetchable after the session is gone.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { artifactsDir, e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import {
  COLORS, colourName, fetchRecording, ffprobe, png, rate, recordings, runsOf, sampleColours,
  screenshot, topLevelBoxes, videoStream,
} from './lib/media.mjs';
import { sleep, waitFor } from './lib/util.mjs';

const VIEWPORT = { width: 1280, height: 720 };
const HOLD_MS = 3000;
const PHASES = ['red', 'green', 'blue'];

/** started_ms/ended_ms of a recording: the sidecar (ms) when we can read it, else the API (s). */
function recordingTimes(gw, sessionId, rec) {
  if (gw.stateDir) {
    try {
      const meta = JSON.parse(readFileSync(path.join(gw.stateDir, 'recordings', sessionId, `${rec.id}.json`), 'utf8'));
      if (meta.started_ms > 0 && meta.ended_ms > 0)
        return { started: meta.started_ms, ended: meta.ended_ms, fps: meta.fps, precision: 'ms' };
    } catch {
      // another gateway's state dir: fall back to the API
    }
  }
  return { started: Date.parse(rec.started_at), ended: Date.parse(rec.ended_at), fps: null, precision: 's' };
}

// Where colours are read, as fractions of the screen: inside the page below
// the browser chrome, and away from the top-left corner, where the pointer
// (drawn into the screen by the guest's X server) starts.
const PROBE = { fx: 0.3, fy: 0.7 };

/** The pixel at PROBE on the desktop, from the gateway's screenshot. */
async function screenProbe(gw, id) {
  const r = await screenshot(gw, id);
  assert.equal(r.status, 200, `screenshot: ${r.png.toString('utf8', 0, 200)}`);
  const img = png(r.png);
  return img.pixel(img.width * PROBE.fx, img.height * PROBE.fy);
}

e2eTest('record_video: H.264 at a constant rate, the colours in order, index first, Range',
        async ({ gw, pages, sessions }) => {
  const s = await sessions.create({ mode: 'live', record_video: true, viewport: VIEWPORT });
  const id = s.session_id;
  assert.equal(s.record_video, true);

  // The recording runs from the first frame, before the session was handed out.
  let list = await recordings(gw, id);
  assert.equal(list.length, 1, `one recording at start: ${JSON.stringify(list)}`);
  const first = list[0];
  assert.equal(first.active, true, JSON.stringify(first));
  assert.equal(first.ended_at, null);
  assert.match(first.url, new RegExp(`/v1/browser/sessions/${id}/recordings/${first.id}$`));

  // One at a time; a running one cannot be deleted.
  const again = await gw.api('POST', `/v1/browser/sessions/${id}/recordings`, {}, { expect: null });
  assert.equal(again.status, 409, `a second recording while one runs: ${JSON.stringify(again.body)}`);
  const delRunning = await gw.api('DELETE', `/v1/browser/sessions/${id}/recordings/${first.id}`,
                                  undefined, { expect: null });
  assert.equal(delRunning.status, 409, `deleting the running recording: ${JSON.stringify(delRunning.body)}`);

  // Red, green, blue, each held ~3 s once the screen shows it.
  const marks = [];
  const { browser, page } = await connectPlaywright(s.cdp_url);
  try {
    await page.bringToFront();
    await page.goto(`${pages.guestUrl}/solid/white`, { timeout: 120_000 });
    for (const name of PHASES) {
      const set = Date.now();
      await page.evaluate((css) => {
        document.documentElement.style.background = css;
        document.body.style.background = css;
      }, `rgb(${COLORS[name].join(',')})`);
      await waitFor(async () => colourName(await screenProbe(gw, id)) === name,
                    { timeoutMs: 60_000, intervalMs: 200, message: `${name} on the screen` });
      const seen = Date.now();
      marks.push({ name, set, seen });
      await sleep(HOLD_MS);
    }
  } finally {
    await disconnect(browser);
  }

  const stopSent = Date.now();
  const stopped = await gw.api('POST', `/v1/browser/sessions/${id}/recordings/${first.id}/stop`, {},
                               { timeoutMs: 300_000 });
  const stopDone = Date.now();
  assert.equal(stopped.body.id, first.id);
  assert.equal(stopped.body.active, false, JSON.stringify(stopped.body));
  assert.ok(stopped.body.ended_at, 'a stopped recording has ended_at');
  const stopAgain = await gw.api('POST', `/v1/browser/sessions/${id}/recordings/${first.id}/stop`, {},
                                 { expect: null });
  assert.equal(stopAgain.status, 409, 'stopping a stopped recording');

  // A second recording, finalized by stopping the session.
  const second = (await gw.api('POST', `/v1/browser/sessions/${id}/recordings`, {}, { expect: [201] })).body;
  assert.equal(second.active, true);
  assert.notEqual(second.id, first.id);
  await sleep(2500);
  await sessions.stop(id);

  // Both outlive the session.
  list = await recordings(gw, id);
  const byId = Object.fromEntries(list.map((r) => [r.id, r]));
  assert.deepEqual(Object.keys(byId).sort(), [first.id, second.id].sort(), JSON.stringify(list));
  for (const r of list) {
    assert.equal(r.active, false, `finalized: ${JSON.stringify(r)}`);
    assert.ok(r.ended_at && r.bytes > 0, JSON.stringify(r));
  }

  // ---- the first recording -------------------------------------------------
  const full = await fetchRecording(gw, id, first.id);
  assert.equal(full.status, 200);
  assert.match(full.headers.get('content-type') || '', /^video\/mp4/);
  assert.equal(full.data.length, byId[first.id].bytes, 'the listed size is the file size');
  const file = path.join(artifactsDir(), `recording-${first.id}.mp4`);
  writeFileSync(file, full.data);

  const boxes = topLevelBoxes(full.data);
  const types = boxes.map((b) => b.type);
  console.error(`boxes: ${types.join(' ')}`);
  assert.ok(types.includes('moov') && types.includes('mdat'), `moov and mdat: ${types}`);
  assert.ok(types.indexOf('moov') < types.indexOf('mdat'), `the index comes first: ${types}`);
  assert.ok(!types.includes('moof'), `a regular MP4, not fragments: ${types}`);

  const probe = await ffprobe(file);
  const v = videoStream(probe);
  const times = recordingTimes(gw, id, byId[first.id]);
  const fps = times.fps || 15;
  const wall = (times.ended - times.started) / 1000;
  const duration = Number(probe.format.duration);
  console.error(`ffprobe: codec ${v.codec_name} ${v.profile} ${v.width}x${v.height} ${v.pix_fmt} ` +
                `r_frame_rate ${v.r_frame_rate} avg_frame_rate ${v.avg_frame_rate} nb_frames ${v.nb_frames} ` +
                `duration ${duration} s, format ${probe.format.format_name}, ${probe.format.size} bytes; ` +
                `wall ${wall.toFixed(2)} s (${times.precision}); client saw ${((stopDone - marks[0].set) / 1000).toFixed(1)} s from red to stop`);
  assert.equal(v.codec_name, 'h264');
  assert.match(probe.format.format_name, /mp4/);
  assert.equal(v.width, VIEWPORT.width);
  assert.equal(v.height, VIEWPORT.height);
  assert.equal(v.r_frame_rate, `${fps}/1`, 'the nominal frame rate');
  assert.equal(v.avg_frame_rate, v.r_frame_rate, 'a constant frame rate');
  assert.ok(Math.abs(duration - wall) <= 0.2 * wall,
            `duration ${duration} s within 20% of the ${wall} s recorded`);
  // The stop came after all three colours were held.
  assert.ok(duration >= (marks[2].seen - times.started + HOLD_MS) / 1000 * 0.8,
            `duration ${duration} s covers the colours`);
  if (v.nb_frames)
    assert.ok(Math.abs(Number(v.nb_frames) - duration * fps) <= fps, `${v.nb_frames} frames for ${duration} s`);
  assert.ok(stopSent >= marks[2].seen);

  // The colours, in order, at the times they were on screen.
  const samples = (await sampleColours(file, { fps: 2, x: v.width * PROBE.fx, y: v.height * PROBE.fy }))
    .map((x) => ({ ...x, name: colourName(x.rgb, 60, ['red', 'green', 'blue', 'white']) }));
  const runs = runsOf(samples);
  console.error(`colour runs (2 samples/s): ${runs.map((r) => `${r.name} ${r.from}-${r.to}s`).join(', ')}`);
  const steady = runs.filter((r) => r.count >= 2 && PHASES.includes(r.name));
  assert.deepEqual(steady.map((r) => r.name), PHASES,
                   `red, then green, then blue: ${JSON.stringify(runs.map((r) => [r.name, r.count]))}`);
  for (const [i, r] of steady.entries()) {
    const m = marks[i];
    const expectFrom = (m.set - times.started) / 1000, expectTo = (m.seen - times.started) / 1000;
    // 1.5 s slack: sampling at 2/s, second-precision times, paint latency.
    const slack = times.precision === 'ms' ? 1.5 : 2.5;
    assert.ok(r.from >= expectFrom - slack && r.from <= expectTo + slack,
              `${r.name} starts at ${r.from} s of video; it was set at ${expectFrom.toFixed(2)} s ` +
              `and seen at ${expectTo.toFixed(2)} s of wall time`);
    assert.ok((r.to - r.from) >= (HOLD_MS / 1000) - 1.5,
              `${r.name} lasts ${r.to - r.from} s in the video (held ${HOLD_MS / 1000} s)`);
  }

  // Range requests.
  const head = await fetchRecording(gw, id, first.id, { Range: 'bytes=0-99' });
  assert.equal(head.status, 206);
  assert.equal(head.data.length, 100);
  assert.equal(head.headers.get('content-range'), `bytes 0-99/${full.data.length}`);
  assert.ok(head.data.equals(full.data.subarray(0, 100)));
  const mid = await fetchRecording(gw, id, first.id, { Range: `bytes=1000-${1000 + 4095}` });
  assert.equal(mid.status, 206);
  assert.ok(mid.data.equals(full.data.subarray(1000, 1000 + 4096)), 'a range from the middle');
  const past = await fetchRecording(gw, id, first.id, { Range: `bytes=${full.data.length}-` });
  assert.equal(past.status, 416, 'a range past the end');

  // ---- the second recording: finalized by the session's stop -----------------
  const full2 = await fetchRecording(gw, id, second.id);
  assert.equal(full2.status, 200);
  const file2 = path.join(artifactsDir(), `recording-${second.id}.mp4`);
  writeFileSync(file2, full2.data);
  const types2 = topLevelBoxes(full2.data).map((b) => b.type);
  assert.ok(types2.indexOf('moov') >= 0 && types2.indexOf('moov') < types2.indexOf('mdat'),
            `the session's stop finalized it, index first: ${types2}`);
  const probe2 = await ffprobe(file2);
  const v2 = videoStream(probe2);
  assert.equal(v2.codec_name, 'h264');
  assert.equal(v2.avg_frame_rate, v2.r_frame_rate);
  assert.ok(Number(probe2.format.duration) >= 2, `second recording: ${probe2.format.duration} s`);
  console.error(`second recording: ${probe2.format.duration} s, boxes ${types2.join(' ')}`);

  // Deleting: gone from the list and from GET; the other stays.
  await gw.api('DELETE', `/v1/browser/sessions/${id}/recordings/${first.id}`);
  assert.equal((await fetchRecording(gw, id, first.id)).status, 404);
  assert.deepEqual((await recordings(gw, id)).map((r) => r.id), [second.id]);
  const delAgain = await gw.api('DELETE', `/v1/browser/sessions/${id}/recordings/${first.id}`,
                                undefined, { expect: null });
  assert.equal(delAgain.status, 404);
  await gw.api('DELETE', `/v1/browser/sessions/${id}/recordings/${second.id}`);
  assert.deepEqual(await recordings(gw, id).catch(() => []), []);
});

e2eTest('recordings of a headless or unknown session', async ({ gw }) => {
  const bad = await gw.api('POST', '/v1/browser/sessions', { mode: 'headless', record_video: true },
                           { expect: null, timeoutMs: 60_000 });
  if (bad.status === 201)
    await gw.deleteSession(bad.body.session_id);
  assert.equal(bad.status, 400, `record_video needs live: ${JSON.stringify(bad.body)}`);
  const none = await gw.api('GET', '/v1/browser/sessions/no-such-session/recordings', undefined,
                            { expect: null });
  assert.equal(none.status, 404);
  const get = await gw.api('GET', '/v1/browser/sessions/no-such-session/recordings/rec-000000', undefined,
                           { expect: null });
  assert.equal(get.status, 404);
});
