// The live-view page alone (web/live.html, live.js and Debian's noVNC), in
// the host's headless Chromium against a stand-in gateway whose /vnc socket
// leads to a fake VNC desktop. No guest needed: this runs wherever the web
// root is built.
//   node test_web_live_page.mjs [WEB_ROOT]   (or PORTHOLE_WEB_ROOT)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { MockGateway } from './lib/mock_gateway.mjs';
import { launchHostChromium, watchPage } from './lib/host_browser.mjs';
import { colorNear } from './lib/png.mjs';
import { canvasCentrePixel, sleep, waitFor } from './lib/util.mjs';

const root = process.argv[2] || process.env.PORTHOLE_WEB_ROOT;
const RED = [255, 0, 0];
const BLUE = [0, 0, 255];

let gw, browser;

before(async () => {
  assert.ok(root, 'pass the web root (build/web/root) as argument or PORTHOLE_WEB_ROOT');
  assert.ok(existsSync(path.join(root, 'novnc/core/rfb.js')), `${root} has no novnc/core/rfb.js`);
  gw = new MockGateway({ root, adminToken: 'not-used-here' });
  await gw.listen();
  browser = await launchHostChromium();
});

after(async () => {
  await browser?.close();
  await gw?.close();
});

async function openLive(pathAndQuery) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  const problems = watchPage(page);
  await page.goto(`${gw.url}${pathAndQuery}`);
  return { context, page, problems };
}

// body has no box of its own (its children are fixed), so wait for
// attachment, not visibility.
const pageState = (page, state, timeout = 20_000) =>
  page.waitForSelector(`body[data-state="${state}"]`, { state: 'attached', timeout });
const connected = (page) => pageState(page, 'connected');

test('view link: loads noVNC, paints the desktop, follows changes, sends no input', async () => {
  gw.setColor(RED);
  const s = gw.addSession('s1');
  const { context, page, problems } = await openLive(`/live/s1/${s.viewToken}`);
  try {
    await connected(page);
    assert.deepEqual(problems, [], 'no console errors, page errors or failed requests');

    const bar = await page.locator('#bar').innerText();
    assert.match(bar, /s1/);
    assert.match(bar, /view only/);
    assert.equal(await page.evaluate(() => window.porthole.rfb.viewOnly), true);

    await waitFor(async () => colorNear(await canvasCentrePixel(page), RED),
                  { timeoutMs: 10_000, message: 'a red canvas' });
    // Full window: the scaled canvas fills #screen in one dimension.
    const [canvas, screen] = await Promise.all([
      page.locator('#screen canvas').boundingBox(),
      page.locator('#screen').boundingBox(),
    ]);
    assert.ok(Math.abs(canvas.width - screen.width) <= 2 || Math.abs(canvas.height - screen.height) <= 2,
              `canvas ${canvas.width}x${canvas.height} fills screen ${screen.width}x${screen.height}`);

    gw.setColor(BLUE);
    await waitFor(async () => colorNear(await canvasCentrePixel(page), BLUE),
                  { timeoutMs: 10_000, message: 'a blue canvas' });

    await page.mouse.click(canvas.x + canvas.width / 2, canvas.y + canvas.height / 2);
    await page.keyboard.type('x');
    await sleep(500);
    const [desk] = gw.desktops('s1');
    assert.equal(desk.buttonPresses, 0, 'a view-only page sends no clicks');
    assert.equal(desk.keyEvents, 0, 'a view-only page sends no keys');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
    gw.endSession('s1');
  }
});

test('control link: input reaches the desktop', async () => {
  const s = gw.addSession('s2');
  const { context, page, problems } = await openLive(`/live/s2/${s.controlToken}?control=1`);
  try {
    await connected(page);
    assert.match(await page.locator('#mode').innerText(), /control/);
    assert.equal(await page.evaluate(() => window.porthole.rfb.viewOnly), false);
    const box = await page.locator('#screen canvas').boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await page.keyboard.press('a');
    const [desk] = gw.desktops('s2');
    await waitFor(() => desk.buttonPresses >= 1 && desk.keyEvents >= 1,
                  { timeoutMs: 5000, message: 'a click and a key at the fake desktop' });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
    gw.endSession('s2');
  }
});

test('a dropped connection is retried; "session ended" is final', async () => {
  const s = gw.addSession('s3');
  const { context, page } = await openLive(`/live/s3/${s.viewToken}`);
  try {
    await connected(page);
    gw.dropConnections('s3');
    await waitFor(() => page.evaluate(() => window.porthole.connects === 2 &&
                                            window.porthole.state === 'connected'),
                  { timeoutMs: 15_000, message: 'a reconnection' });

    gw.endSession('s3');
    await pageState(page, 'ended', 10_000);
    assert.match(await page.locator('#reason').innerText(), /session ended/);
    const attempts = gw.wsAttempts.filter((a) => a.id === 's3').length;
    await sleep(3000);
    assert.equal(gw.wsAttempts.filter((a) => a.id === 's3').length, attempts,
                 'no reconnection after the session ended');
    assert.equal(await page.evaluate(() => window.porthole.state), 'ended');
  } finally {
    await context.close();
  }
});

test('a wrong token is refused and the page says so', async () => {
  gw.addSession('s4');
  const { context, page } = await openLive('/live/s4/not-the-token');
  try {
    await waitFor(() => page.evaluate(() => ['retrying', 'failed'].includes(window.porthole.state)),
                  { timeoutMs: 10_000, message: 'the page to notice the refusal' });
    assert.ok(gw.wsAttempts.some((a) => a.id === 's4' && !a.ok));
    assert.ok(!gw.wsAttempts.some((a) => a.id === 's4' && a.ok));
    assert.match(await page.locator('#reason').innerText(), /refused|lost|retrying/);
  } finally {
    await context.close();
    gw.endSession('s4');
  }
});

test('a URL that is not /live/ID/TOKEN fails without connecting', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    // Served under another path, the page must not guess a socket URL.
    await page.goto(`${gw.url}/static/live.html`);
    await pageState(page, 'failed', 10_000);
    assert.match(await page.locator('#reason').innerText(), /not a live-view link/);
  } finally {
    await context.close();
  }
});
