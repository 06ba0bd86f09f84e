// Playwright drives a session's browser through cdp_url, verbatim, the way
// users connect: connectOverCDP, a page, navigation to the host's test
// server, DOM reads and a screenshot of the session's viewport size.
import assert from 'node:assert/strict';
import { e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { pngSize } from './lib/png.mjs';

const VIEWPORT = { width: 1024, height: 768 };   // not the default: it must be applied

e2eTest('connectOverCDP: navigate, read the DOM, screenshot', async ({ gw, pages, sessions }) => {
  const s = await sessions.create({ mode: 'headless', viewport: VIEWPORT });
  assert.equal(s.status, 'ready');
  assert.match(s.cdp_url, /^http:\/\//);
  assert.equal(s.live_url ?? null, null, 'a headless session has no live view');

  const { browser, page } = await connectPlaywright(s.cdp_url);
  try {
    assert.match(browser.version(), /\d+\.\d+/);
    await page.goto(`${pages.guestUrl}/title`, { timeout: 120_000 });
    assert.equal(await page.title(), 'Porthole e2e');
    assert.equal(await page.locator('#greeting').innerText(), 'Hello from the host');
    assert.ok(pages.hits('/title').length >= 1, 'the guest loaded the page from the host server');

    const inner = await page.evaluate(() => ({ width: innerWidth, height: innerHeight }));
    assert.deepEqual(inner, VIEWPORT, 'the page viewport is the session viewport');
    const shot = await page.screenshot({ type: 'png', timeout: 120_000 });
    assert.deepEqual(pngSize(shot), VIEWPORT, 'the screenshot is a PNG of the viewport size');

    // The session is still listed as ready while a client is connected.
    const listed = (await gw.listSessions()).find((x) => x.session_id === s.session_id);
    assert.equal(listed?.status, 'ready');
  } finally {
    await disconnect(browser);
  }
});

e2eTest('a second client can connect after the first disconnected', async ({ pages, sessions }) => {
  const s = await sessions.create({ mode: 'headless' });
  for (let round = 1; round <= 2; round++) {
    const { browser, page } = await connectPlaywright(s.cdp_url, { newPage: true });
    try {
      await page.goto(`${pages.guestUrl}/title?round=${round}`, { timeout: 120_000 });
      assert.equal(await page.title(), 'Porthole e2e');
    } finally {
      await disconnect(browser);
    }
  }
});
