// Puppeteer connects to a session both ways it offers: browserURL (the
// cdp_url, which makes Puppeteer fetch /json/version) and browserWSEndpoint
// (the cdp_ws_url). DevTools HTTP answers point back at the gateway.
import assert from 'node:assert/strict';
import puppeteer from 'puppeteer-core';
import { e2eTest } from './lib/e2e.mjs';
import { devtoolsUrl, getJson } from './lib/cdp.mjs';

e2eTest('connect({browserURL}) and connect({browserWSEndpoint})', async ({ gw, pages, sessions }) => {
  const s = await sessions.create({ mode: 'headless' });
  assert.match(s.cdp_ws_url, /^ws:\/\//);

  // /json/version and /json/list name the gateway, never the guest.
  const gwHost = new URL(s.cdp_url).host;
  const version = await getJson(devtoolsUrl(s.cdp_url, 'version'));
  assert.equal(version.status, 200);
  assert.match(version.body.Browser, /Chrom/);
  assert.equal(new URL(version.body.webSocketDebuggerUrl).host, gwHost);
  const list = await getJson(devtoolsUrl(s.cdp_url, 'list'));
  assert.equal(list.status, 200);
  for (const t of list.body)
    if (t.webSocketDebuggerUrl)
      assert.equal(new URL(t.webSocketDebuggerUrl).host, gwHost, `target ${t.id} points at the gateway`);

  const viaUrl = await puppeteer.connect({ browserURL: s.cdp_url, defaultViewport: null,
                                           protocolTimeout: 120_000 });
  try {
    const page = await viaUrl.newPage();
    await page.goto(`${pages.guestUrl}/title?via=browserURL`, { timeout: 120_000 });
    assert.equal(await page.title(), 'Porthole e2e');
    assert.equal(await page.$eval('#greeting', (e) => e.textContent), 'Hello from the host');
    await page.close();
  } finally {
    await viaUrl.disconnect();
  }

  const viaWs = await puppeteer.connect({ browserWSEndpoint: s.cdp_ws_url, defaultViewport: null,
                                          protocolTimeout: 120_000 });
  try {
    assert.match(await viaWs.version(), /Chrom/);
    const page = await viaWs.newPage();
    await page.goto(`${pages.guestUrl}/title?via=browserWSEndpoint`, { timeout: 120_000 });
    assert.equal(await page.title(), 'Porthole e2e');
    await page.close();
  } finally {
    await viaWs.disconnect();
  }
  assert.equal(pages.hits('/title').length, 2);
});
