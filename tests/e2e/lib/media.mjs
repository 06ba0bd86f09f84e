// Helpers for the media tests (screenshots, computer-use actions and
// recordings): the session media API, ffprobe/ffmpeg on the host, MP4 box
// walking, and finding colours in desktop screenshots.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { connectPlaywright, disconnect } from './cdp.mjs';
import { colorNear, decodePng, isPng } from './png.mjs';

const run = promisify(execFile);

export const COLORS = {
  red: [255, 0, 0],
  green: [0, 255, 0],
  blue: [0, 0, 255],
  yellow: [255, 255, 0],
  magenta: [255, 0, 255],
  cyan: [0, 255, 255],
  white: [255, 255, 255],
};

const sid = (id) => encodeURIComponent(id);

/** GET .../screenshot; resolves {status, png (Buffer), body (error JSON)}. */
export async function screenshot(gw, id, query = '') {
  const r = await gw.api('GET', `/v1/browser/sessions/${sid(id)}/screenshot${query}`, undefined,
                         { expect: null, timeoutMs: 120_000 });
  return { status: r.status, png: r.raw, body: r.body, type: r.headers.get('content-type') };
}

/** POST .../computer; resolves {status, body}. */
export async function computer(gw, id, action, { timeoutMs = 120_000 } = {}) {
  const r = await gw.api('POST', `/v1/browser/sessions/${sid(id)}/computer`, action,
                         { expect: null, timeoutMs });
  return { status: r.status, body: r.body };
}

/** The same, asserting 200 and {ok: true}; resolves the reply. */
export async function act(gw, id, action) {
  const r = await computer(gw, id, action);
  if (r.status !== 200 || r.body?.ok !== true)
    throw new Error(`computer ${JSON.stringify(action)}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function recordings(gw, id) {
  const r = await gw.api('GET', `/v1/browser/sessions/${sid(id)}/recordings`);
  if (!Array.isArray(r.body?.recordings))
    throw new Error(`recordings list: ${JSON.stringify(r.body)}`);
  return r.body.recordings;
}

/** GET a recording's bytes (optionally with extra headers such as Range). */
export async function fetchRecording(gw, id, rid, headers = {}) {
  const resp = await fetch(`${gw.url}/v1/browser/sessions/${sid(id)}/recordings/${sid(rid)}`, {
    headers: { Authorization: `Bearer ${gw.token}`, ...headers },
    signal: AbortSignal.timeout(120_000),
  });
  return { status: resp.status, headers: resp.headers, data: Buffer.from(await resp.arrayBuffer()) };
}

// ---- ffprobe / ffmpeg ---------------------------------------------------------

/** ffprobe -show_streams -show_format as JSON; throws with ffprobe's stderr. */
export async function ffprobe(file) {
  try {
    const { stdout } = await run('ffprobe', ['-v', 'error', '-show_streams', '-show_format',
                                             '-of', 'json', file], { maxBuffer: 16 << 20 });
    return JSON.parse(stdout);
  } catch (e) {
    throw new Error(`ffprobe ${file} failed: ${e.stderr || e.message}`);
  }
}

export function videoStream(probe) {
  const v = (probe.streams || []).find((s) => s.codec_type === 'video');
  if (!v)
    throw new Error(`no video stream: ${JSON.stringify(probe)}`);
  return v;
}

/** "15/1" -> 15 */
export function rate(r) {
  const [n, d] = String(r).split('/').map(Number);
  return d ? n / d : n;
}

/**
 * Decodes the whole file and samples it: `fps` frames per second of video
 * time, each reduced to the mean colour of a size x size square centred on
 * (x, y). Resolves [{t, rgb}] (t in seconds of video time).
 */
export async function sampleColours(file, { fps = 2, x, y, size = 8 }) {
  const half = size >> 1;
  const vf = `fps=${fps},crop=${size}:${size}:${Math.round(x) - half}:${Math.round(y) - half}`;
  let stdout;
  try {
    ({ stdout } = await run('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-vf', vf,
                                       '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
                            { encoding: 'buffer', maxBuffer: 64 << 20 }));
  } catch (e) {
    throw new Error(`ffmpeg decoding ${file} failed: ${e.stderr?.toString() || e.message}`);
  }
  const frame = size * size * 3;
  const out = [];
  for (let off = 0, k = 0; off + frame <= stdout.length; off += frame, k++) {
    const sum = [0, 0, 0];
    for (let i = 0; i < frame; i += 3)
      for (let c = 0; c < 3; c++)
        sum[c] += stdout[off + i + c];
    out.push({ t: k / fps, rgb: sum.map((s) => Math.round(s / (size * size))) });
  }
  return out;
}

/** The name of the COLORS entry within tol of rgb on every channel, or 'other'. */
export function colourName(rgb, tol = 60, names = Object.keys(COLORS)) {
  for (const n of names)
    if (colorNear(rgb, COLORS[n], tol))
      return n;
  return 'other';
}

/** Runs of equal names: [{name, from, to, count}] (from/to: sample times). */
export function runsOf(samples, name = (s) => s.name) {
  const runs = [];
  for (const s of samples) {
    const n = name(s);
    const last = runs[runs.length - 1];
    if (last && last.name === n) {
      last.to = s.t;
      last.count++;
    } else {
      runs.push({ name: n, from: s.t, to: s.t, count: 1 });
    }
  }
  return runs;
}

// ---- MP4 boxes ------------------------------------------------------------------

/** The top-level boxes of an ISO BMFF file: [{type, offset, size}]. */
export function topLevelBoxes(buf) {
  const boxes = [];
  let off = 0;
  while (off + 8 <= buf.length) {
    let size = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    let header = 8;
    if (size === 1) {
      if (off + 16 > buf.length)
        break;
      size = Number(buf.readBigUInt64BE(off + 8));
      header = 16;
    } else if (size === 0) {
      size = buf.length - off;
    }
    if (size < header)
      throw new Error(`bad MP4 box ${JSON.stringify(type)} of size ${size} at ${off}`);
    boxes.push({ type, offset: off, size });
    off += size;
  }
  if (off !== buf.length)
    boxes.push({ type: '(truncated)', offset: off, size: buf.length - off });
  return boxes;
}

// ---- screenshots ----------------------------------------------------------------

/** A decoded PNG (throws with the first bytes when it is not a PNG). */
export function png(buf) {
  if (!isPng(buf))
    throw new Error(`not a PNG: ${buf.subarray(0, 120).toString('latin1')}`);
  return decodePng(buf);
}

/**
 * The bounding box of the pixels within tol of rgb (every `step` pixels):
 * {x0, y0, x1, y1, cx, cy, w, h, count}, or null when none match.
 */
export function findColour(img, rgb, { tol = 30, step = 2 } = {}) {
  let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1, count = 0;
  for (let y = 0; y < img.height; y += step) {
    for (let x = 0; x < img.width; x += step) {
      const p = img.pixel(x, y);
      if (colorNear(p, rgb, tol)) {
        count++;
        if (x < x0) x0 = x;
        if (y < y0) y0 = y;
        if (x > x1) x1 = x;
        if (y > y1) y1 = y;
      }
    }
  }
  if (!count)
    return null;
  return { x0, y0, x1, y1, w: x1 - x0 + 1, h: y1 - y0 + 1, cx: Math.round((x0 + x1) / 2),
           cy: Math.round((y0 + y1) / 2), count };
}

/**
 * Where the page's viewport sits on the screen, from the page itself
 * (Chromium's window geometry: the browser chrome is above the viewport).
 */
export async function viewportOrigin(page) {
  return page.evaluate(() => ({
    x: window.screenX + (window.outerWidth - window.innerWidth) / 2,
    y: window.screenY + window.outerHeight - window.innerHeight,
    innerWidth: window.innerWidth,
    innerHeight: window.innerHeight,
    outerWidth: window.outerWidth,
    outerHeight: window.outerHeight,
    dpr: window.devicePixelRatio,
  }));
}

// ---- pages for recordings ---------------------------------------------------

// Every frame different, all over the screen: H.264 cannot make it small.
export const NOISE = `<style>html,body{margin:0;height:100%;overflow:hidden;cursor:none}</style>
<canvas id="c"></canvas><script>
const c = document.getElementById('c'), g = c.getContext('2d');
c.width = innerWidth; c.height = innerHeight;
const img = g.createImageData(c.width, c.height);
(function frame() {
  const d = new Uint32Array(img.data.buffer);
  for (let i = 0; i < d.length; i++) d[i] = (Math.random() * 0xffffffff) | 0xff000000;
  g.putImageData(img, 0, 0);
  requestAnimationFrame(frame);
})();
</script>`;

/** Puts html on the session's screen (its page brought to the front). */
export async function setPage(cdpUrl, html) {
  const { browser, page } = await connectPlaywright(cdpUrl);
  try {
    await page.bringToFront();
    await page.setContent(html, { timeout: 120_000 });
  } finally {
    await disconnect(browser);
  }
}
