// The live view end to end: the guest's browser (driven over CDP) shows a
// solid red page; the host's own headless Chromium opens live_url (the
// gateway's noVNC page and VNC proxy) and must show red at the centre of
// the canvas in a real screenshot; then the guest goes blue, and so must
// the live view.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { artifactsDir, e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { launchHostChromium, watchPage } from './lib/host_browser.mjs';
import { colorNear } from './lib/png.mjs';
import { canvasCentrePixel, waitFor } from './lib/util.mjs';

const RED = [255, 0, 0];
const BLUE = [0, 0, 255];

e2eTest('live_url shows what the guest browser shows', async ({ pages, sessions }) => {
  const s = await sessions.create({ mode: 'live', viewport: { width: 1280, height: 720 } });
  assert.match(s.live_url, /\/live\/[^/]+\/[^/?]+/);

  const guest = await connectPlaywright(s.cdp_url);
  const host = await launchHostChromium();
  try {
    await guest.page.bringToFront();
    await guest.page.goto(`${pages.guestUrl}/solid/red`, { timeout: 120_000 });

    const view = await host.newPage({ viewport: { width: 1280, height: 760 } });
    const problems = watchPage(view);
    await view.goto(s.live_url);
    await view.waitForSelector('body[data-state="connected"]', { state: 'attached', timeout: 90_000 });
    assert.match(await view.locator('#mode').innerText(), /view only/);

    const shoot = async (name) => {
      const file = path.join(artifactsDir(), `live-${name}.png`);
      writeFileSync(file, await view.screenshot({ type: 'png' }));
      return file;
    };
    await waitFor(async () => colorNear(await canvasCentrePixel(view), RED),
                  { timeoutMs: 120_000, intervalMs: 1000, message: 'red at the centre of the live view' })
      .catch(async (e) => { e.message += `; screenshot ${await shoot('red-failed')}`; throw e; });
    await shoot('red');

    await guest.page.goto(`${pages.guestUrl}/solid/blue`, { timeout: 120_000 });
    await waitFor(async () => colorNear(await canvasCentrePixel(view), BLUE),
                  { timeoutMs: 120_000, intervalMs: 1000, message: 'blue at the centre of the live view' })
      .catch(async (e) => { e.message += `; screenshot ${await shoot('blue-failed')}`; throw e; });
    await shoot('blue');

    assert.equal(await view.evaluate(() => window.porthole.state), 'connected');
    assert.deepEqual(problems, [], 'the live page loaded without errors');
  } finally {
    await host.close();
    await disconnect(guest.browser);
  }
});
