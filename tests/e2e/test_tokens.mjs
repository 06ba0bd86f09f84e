// Capability URLs grant exactly their session and their kind of access:
// a wrong CDP token gets no /json/version and no WebSocket, a wrong live
// token no VNC socket, tokens do not work across kinds, and the watch-only
// link cannot click while the control link can.
import assert from 'node:assert/strict';
import { e2eTest } from './lib/e2e.mjs';
import { CdpClient, connectPlaywright, devtoolsUrl, disconnect, getJson, openWebSocket } from './lib/cdp.mjs';
import { RfbClient, vncUrl } from './lib/rfb_client.mjs';
import { sleep, waitFor } from './lib/util.mjs';

const REFUSED = [401, 403, 404];

/** The last path segment of a capability URL: its token. */
function tokenOf(url) {
  const segs = new URL(url).pathname.split('/').filter(Boolean);
  return segs[segs.length - 1];
}

/** Same length, one character different. */
function wrong(token) {
  const last = token[token.length - 1];
  return token.slice(0, -1) + (last === 'a' ? 'b' : 'a');
}

async function refused(promise, what) {
  try {
    const ws = await promise;
    ws.terminate();
  } catch (e) {
    assert.ok(e.status === undefined || REFUSED.includes(e.status), `${what}: ${e.message}`);
    return;
  }
  assert.fail(`${what}: the WebSocket was accepted`);
}

e2eTest('CDP and VNC tokens', async ({ pages, sessions }) => {
  const s = await sessions.create({ mode: 'live' });
  const cdpToken = tokenOf(s.cdp_url);
  const badCdpUrl = s.cdp_url.replace(cdpToken, wrong(cdpToken));

  // CDP over HTTP: the right token answers, a wrong one or none does not.
  const good = await getJson(devtoolsUrl(s.cdp_url));
  assert.equal(good.status, 200);
  const bad = await getJson(devtoolsUrl(badCdpUrl));
  assert.ok(REFUSED.includes(bad.status), `wrong CDP token: HTTP ${bad.status}`);
  assert.equal(bad.body?.webSocketDebuggerUrl, undefined);
  const none = await getJson(devtoolsUrl(s.cdp_url.replace(`/${cdpToken}`, '')));
  assert.ok(REFUSED.includes(none.status), `no CDP token: HTTP ${none.status}`);

  // CDP over WebSocket.
  const cdp = await CdpClient.connect(s.cdp_ws_url);
  try {
    assert.match((await cdp.send('Browser.getVersion')).product, /Chrom/);
  } finally {
    cdp.close();
  }
  await refused(openWebSocket(s.cdp_ws_url.replace(cdpToken, wrong(cdpToken))), 'wrong CDP token');

  // VNC: the live token opens the socket (the RFB banner comes through), a
  // wrong one does not, and tokens do not cross kinds.
  const liveToken = tokenOf(s.live_url);
  const rfb = await RfbClient.connect(vncUrl(s.live_url));
  assert.ok(rfb.width >= 640 && rfb.height >= 480, `desktop ${rfb.width}x${rfb.height}`);
  rfb.close();
  await refused(openWebSocket(vncUrl(s.live_url).replace(liveToken, wrong(liveToken)), { protocols: ['binary'] }),
                'wrong live token');
  await refused(openWebSocket(vncUrl(s.live_url).replace(liveToken, cdpToken), { protocols: ['binary'] }),
                'CDP token on the VNC socket');
  const crossed = await getJson(devtoolsUrl(s.cdp_url.replace(cdpToken, liveToken)));
  assert.ok(REFUSED.includes(crossed.status), `live token on CDP: HTTP ${crossed.status}`);

  // The live page itself is served for the session's URL.
  const html = await fetch(s.live_url);
  assert.equal(html.status, 200);
  assert.match(await html.text(), /live\.js/);

  // Watch-only cannot click; control can. The guest page counts presses.
  const guest = await connectPlaywright(s.cdp_url);
  try {
    await guest.page.bringToFront();
    await guest.page.goto(`${pages.guestUrl}/clicks`, { timeout: 120_000 });
    const clicks = () => guest.page.evaluate(() => window.clicks);
    assert.equal(await clicks(), 0);

    const viewer = await RfbClient.connect(vncUrl(s.live_url));
    viewer.click(Math.floor(viewer.width / 2), Math.floor(viewer.height / 2));
    await sleep(3000);
    viewer.close();
    assert.equal(await clicks(), 0, 'a click through the watch-only link reached the page');

    if (!s.control_url) {
      console.error('no control_url in the session: control check skipped');
      return;
    }
    assert.match(s.control_url, /control=1/);
    const controlToken = tokenOf(s.control_url.split('?')[0]);
    assert.notEqual(controlToken, liveToken);
    const driver = await RfbClient.connect(vncUrl(s.control_url.split('?')[0]));
    try {
      driver.click(Math.floor(driver.width / 2), Math.floor(driver.height / 2));
      await waitFor(async () => (await clicks()) >= 1,
                    { timeoutMs: 30_000, message: 'the control link\'s click on the page' });
    } finally {
      driver.close();
    }
  } finally {
    await disconnect(guest.browser);
  }
});
