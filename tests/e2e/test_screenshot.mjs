// Desktop screenshots: the guest's browser (driven over CDP) shows four
// coloured quadrants (fixed-position, 50vw x 50vh each, so independent of
// the viewport); GET .../screenshot returns a PNG of the whole guest screen
// (the session's viewport size, browser chrome included) with each colour
// where the page put it; ?max_width scales it down keeping the aspect ratio.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { artifactsDir, e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { COLORS, colourName, png, screenshot, viewportOrigin } from './lib/media.mjs';
import { colorNear } from './lib/png.mjs';
import { waitFor } from './lib/util.mjs';

// Not the pool's default size: the screen must follow the session's viewport.
const VIEWPORT = { width: 1024, height: 768 };
const QUADRANTS = { tl: 'red', tr: 'green', bl: 'blue', br: 'yellow' };

const QUADRANT_PAGE = (() => {
  const css = (name) => `rgb(${COLORS[name].join(',')})`;
  const div = (left, top, name) =>
    `<div style="position:fixed;left:${left};top:${top};width:50vw;height:50vh;background:${css(name)}"></div>`;
  return `<!doctype html><html><head><title>quadrants</title>
<style>html,body{margin:0;overflow:hidden;cursor:none;background:#fff}</style></head><body>
${div('0', '0', QUADRANTS.tl)}${div('50vw', '0', QUADRANTS.tr)}${div('0', '50vh', QUADRANTS.bl)}${div('50vw', '50vh', QUADRANTS.br)}
</body></html>`;
})();

/** Screen points at the centre of each quadrant, given where the viewport is. */
function quadrantCentres(o, scale = 1) {
  const at = (fx, fy) => ({ x: (o.x + o.innerWidth * fx) * scale, y: (o.y + o.innerHeight * fy) * scale });
  return { tl: at(0.25, 0.25), tr: at(0.75, 0.25), bl: at(0.25, 0.75), br: at(0.75, 0.75) };
}

function check(img, points) {
  const seen = {};
  for (const [q, p] of Object.entries(points))
    seen[q] = { at: [Math.round(p.x), Math.round(p.y)], rgb: img.pixel(p.x, p.y).slice(0, 3) };
  const ok = Object.entries(QUADRANTS).every(([q, name]) => colorNear(seen[q].rgb, COLORS[name], 40));
  return { ok, seen };
}

e2eTest('screenshot: the whole desktop with the page where it is, max_width scales',
        async ({ gw, pages, sessions }) => {
  const s = await sessions.create({ mode: 'live', viewport: VIEWPORT });
  const id = s.session_id;
  const save = (name, buf) => {
    const f = path.join(artifactsDir(), `screenshot-${name}.png`);
    writeFileSync(f, buf);
    return f;
  };

  // A session is handed out once its browser has painted: the very first
  // picture is the browser (white page, grey chrome), not a black screen.
  const first = await screenshot(gw, id);
  assert.equal(first.status, 200);
  const fimg = png(first.png);
  let lit = 0, total = 0;
  for (let y = 0; y < fimg.height; y += 16)
    for (let x = 0; x < fimg.width; x += 16, total++)
      lit += fimg.pixel(x, y).slice(0, 3).some((v) => v > 40) ? 1 : 0;
  save('first', first.png);
  console.error(`first screenshot: ${lit} of ${total} sampled pixels not black`);
  assert.ok(lit > total / 2, `the first screenshot is mostly black (${lit} of ${total} lit)`);

  const { browser, page } = await connectPlaywright(s.cdp_url);
  let origin;
  try {
    await page.bringToFront();
    await page.goto(`${pages.guestUrl}/solid/white`, { timeout: 120_000 });
    await page.setContent(QUADRANT_PAGE, { timeout: 120_000 });
    origin = await viewportOrigin(page);
  } finally {
    await disconnect(browser);
  }
  console.error(`viewport on screen: ${JSON.stringify(origin)}`);
  assert.equal(origin.dpr, 1);
  assert.ok(origin.y >= 0 && origin.y < VIEWPORT.height / 3, `browser chrome height ${origin.y}`);
  assert.ok(origin.innerWidth <= VIEWPORT.width && origin.innerWidth >= VIEWPORT.width - 20,
            `the browser window fills the screen's width: ${origin.innerWidth}`);

  // The page is painted a moment after setContent returns.
  let last;
  const img = await waitFor(async () => {
    const r = await screenshot(gw, id);
    assert.equal(r.status, 200, `screenshot: ${r.png.toString('utf8', 0, 300)}`);
    assert.equal(r.type, 'image/png');
    last = r.png;
    const im = png(r.png);
    return check(im, quadrantCentres(origin)).ok && im;
  }, { timeoutMs: 60_000, intervalMs: 500, message: 'the quadrants in the screenshot' })
    .catch((e) => {
      e.message += `; last screenshot ${last ? save('failed', last) : '(none)'}`;
      throw e;
    });
  save('full', last);
  assert.equal(img.width, VIEWPORT.width, 'the screenshot is as wide as the session viewport');
  assert.equal(img.height, VIEWPORT.height, 'and as high');
  const full = check(img, quadrantCentres(origin));
  console.error(`full size ${img.width}x${img.height}: ${JSON.stringify(full.seen)}`);
  assert.ok(full.ok);

  // The same points without the browser's geometry: the chrome is above the
  // page, so points well inside each quadrant below it hold for any chrome up
  // to 1/4 of the screen high.
  const fixed = {
    tl: { x: VIEWPORT.width * 0.25, y: VIEWPORT.height * 0.45 },
    tr: { x: VIEWPORT.width * 0.75, y: VIEWPORT.height * 0.45 },
    bl: { x: VIEWPORT.width * 0.25, y: VIEWPORT.height * 0.9 },
    br: { x: VIEWPORT.width * 0.75, y: VIEWPORT.height * 0.9 },
  };
  assert.ok(check(img, fixed).ok, `fixed points: ${JSON.stringify(check(img, fixed).seen)}`);

  // The whole desktop: the browser chrome above the page is in the picture.
  if (origin.y >= 8) {
    const chrome = img.pixel(VIEWPORT.width * 0.25, origin.y / 2).slice(0, 3);
    assert.notEqual(colourName(chrome, 40), QUADRANTS.tl,
                    `the top strip is the browser chrome, not the page: ${chrome}`);
  }
  // The browser window covers the whole screen, up to the last column and
  // row (no black edge).
  const W = VIEWPORT.width, H = VIEWPORT.height;
  const edges = {
    br: img.pixel(W - 1, H - 1).slice(0, 3),
    right: img.pixel(W - 1, origin.y + origin.innerHeight * 0.25).slice(0, 3),
    bottom: img.pixel(W * 0.25, H - 1).slice(0, 3),
  };
  assert.ok(colorNear(edges.br, COLORS.yellow, 40) && colorNear(edges.right, COLORS.green, 40) &&
            colorNear(edges.bottom, COLORS.blue, 40), `the screen's edges: ${JSON.stringify(edges)}`);

  // Where the quadrants meet (one pixel either side of the split).
  const midX = origin.x + origin.innerWidth / 2, midY = origin.y + origin.innerHeight / 2;
  assert.ok(colorNear(img.pixel(midX - 3, midY - 3), COLORS.red) && colorNear(img.pixel(midX + 3, midY + 3), COLORS.yellow),
            `the split at ${midX},${midY}`);

  // ?max_width=640: the same picture, scaled, aspect kept.
  const small = await screenshot(gw, id, '?max_width=640');
  assert.equal(small.status, 200);
  save('640', small.png);
  const simg = png(small.png);
  assert.equal(simg.width, 640);
  assert.equal(simg.height, Math.round(VIEWPORT.height * 640 / VIEWPORT.width));
  const scaled = check(simg, quadrantCentres(origin, 640 / VIEWPORT.width));
  console.error(`640 wide ${simg.width}x${simg.height}: ${JSON.stringify(scaled.seen)}`);
  assert.ok(scaled.ok);

  // max_height bounds too; a bound above the screen never scales up.
  const short = png((await screenshot(gw, id, '?max_height=300')).png);
  assert.equal(short.height, 300);
  assert.equal(short.width, Math.round(VIEWPORT.width * 300 / VIEWPORT.height));
  const big = png((await screenshot(gw, id, '?max_width=4000')).png);
  assert.deepEqual([big.width, big.height], [VIEWPORT.width, VIEWPORT.height]);

  // Bad input.
  for (const q of ['?max_width=abc', '?max_width=-5', '?max_width=999999']) {
    const r = await screenshot(gw, id, q);
    assert.equal(r.status, 400, `${q}: HTTP ${r.status}`);
  }
  const none = await screenshot(gw, 'no-such-session');
  assert.equal(none.status, 404);
});
