// Small helpers shared by the end-to-end tests.
import { randomBytes } from 'node:crypto';
import { decodePng } from './png.mjs';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The nearest-rank p-th percentile of values (NaN for none). */
export function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length)
    return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function randomId(prefix = '', bytes = 6) {
  return prefix + randomBytes(bytes).toString('hex');
}

/**
 * Polls fn until it returns a truthy value (which is returned) or throws
 * after timeoutMs with message and the last value or error seen.
 */
export async function waitFor(fn, { timeoutMs = 30_000, intervalMs = 250, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v)
        return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message} (last: ${detail})`);
    }
    await sleep(intervalMs);
  }
}

/**
 * The colour of the live view's canvas, read from a real screenshot of the
 * page (what a person sees), as [r, g, b, a]: horizontally centred, 70% of
 * the way down, which is inside the guest page below the browser's toolbars
 * and clear of the guest's pointer (the VNC server draws it at the centre).
 */
export async function canvasCentrePixel(page) {
  const box = await page.locator('#screen canvas').boundingBox();
  if (!box || box.width < 2 || box.height < 2)
    throw new Error('no visible canvas');
  const shot = decodePng(await page.screenshot({ type: 'png' }));
  const scale = shot.width / page.viewportSize().width; // device pixel ratio
  return shot.pixel((box.x + box.width / 2) * scale, (box.y + box.height * 0.7) * scale);
}

/** mulberry32: a small seeded generator, the same on every node, so that runs compare. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
