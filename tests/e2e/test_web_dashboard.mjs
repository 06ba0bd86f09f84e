// The dashboard page alone (web/dashboard.html, dashboard.js) in the host's
// headless Chromium, against a stand-in gateway with an in-memory table.
//   node test_web_dashboard.mjs [WEB_ROOT]   (or PORTHOLE_WEB_ROOT)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MockGateway } from './lib/mock_gateway.mjs';
import { launchHostChromium, watchPage } from './lib/host_browser.mjs';
import { sleep, waitFor } from './lib/util.mjs';

const root = process.argv[2] || process.env.PORTHOLE_WEB_ROOT;
const TOKEN = 'admin-token-for-the-dashboard-test-0123456789';

let gw, browser;

before(async () => {
  assert.ok(root, 'pass the web root (build/web/root) as argument or PORTHOLE_WEB_ROOT');
  gw = new MockGateway({ root, adminToken: TOKEN });
  await gw.listen();
  browser = await launchHostChromium();
});

after(async () => {
  await browser?.close();
  await gw?.close();
});

const state = (page, s, timeout = 10_000) =>
  page.waitForSelector(`body[data-state="${s}"]`, { state: 'attached', timeout });
const rows = (page, table) => page.locator(`#${table} tbody tr[data-id]`);

test('lists sessions and sandboxes with the token from the fragment only', async () => {
  gw.addSession('bs-one');
  gw.addSession('bs-two', { mode: 'headless', live_url: null, control_url: null, profile_id: 'p-x' });
  gw.sandboxes.set('sb-one', { id: 'sb-one', status: 'ready', vcpus: 2, mem_mib: 1024,
                               expires_at: new Date(Date.now() + 600_000).toISOString() });
  const page = await browser.newPage();
  const problems = watchPage(page);
  const before = gw.requests.length;
  try {
    await page.goto(`${gw.url}/dashboard#token=${TOKEN}`);
    await state(page, 'ready');
    assert.equal(await rows(page, 'sessions').count(), 2);
    assert.equal(await rows(page, 'sandboxes').count(), 1);
    assert.ok(!page.url().includes(TOKEN), 'the token is cleared from the address bar');

    const one = gw.sessions.get('bs-one').json;
    const row = page.locator('#sessions tr[data-id="bs-one"]');
    assert.equal(await row.locator('a', { hasText: 'watch' }).getAttribute('href'), one.live_url);
    assert.equal(await row.locator('a', { hasText: 'control' }).getAttribute('href'), one.control_url);
    assert.equal(await row.locator('input.cdp').inputValue(), one.cdp_url);
    assert.match(await row.locator('[data-col="expires"]').innerText(), /^in \d+ min$/);
    const two = page.locator('#sessions tr[data-id="bs-two"]');
    assert.equal(await two.locator('a').count(), 0, 'a headless session has no live links');
    assert.match(await two.innerText(), /p-x/);

    const seen = gw.requests.slice(before);
    assert.ok(seen.every((r) => !r.url.includes(TOKEN)), 'the token never appears in a URL');
    const apiCalls = seen.filter((r) => r.url.startsWith('/v1/'));
    assert.ok(apiCalls.length >= 2);
    assert.ok(apiCalls.every((r) => r.authorization === `Bearer ${TOKEN}`));

    // A new session shows up on the next refresh (every 3 s).
    gw.addSession('bs-three');
    await waitFor(async () => (await rows(page, 'sessions').count()) === 3,
                  { timeoutMs: 8000, message: 'the new session in the table' });
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
    for (const id of [...gw.sessions.keys()])
      gw.endSession(id);
    gw.sandboxes.clear();
  }
});

test('stop needs two clicks and sends DELETE', async () => {
  gw.addSession('bs-stop');
  gw.sandboxes.set('sb-del', { id: 'sb-del', status: 'ready', vcpus: 1, mem_mib: 512 });
  const page = await browser.newPage();
  try {
    await page.goto(`${gw.url}/dashboard#token=${TOKEN}`);
    await state(page, 'ready');
    const deletes = () => gw.requests.filter((r) => r.method === 'DELETE').map((r) => r.url);

    const stop = page.locator('#sessions tr[data-id="bs-stop"] button.stop');
    await stop.click();
    await sleep(300);
    assert.deepEqual(deletes(), [], 'one click only arms the button');
    assert.equal(await stop.getAttribute('data-armed'), '1');
    await stop.click();
    await waitFor(() => deletes().includes('/v1/browser/sessions/bs-stop'),
                  { timeoutMs: 5000, message: 'DELETE of the session' });
    await waitFor(async () => (await rows(page, 'sessions').count()) === 0,
                  { timeoutMs: 8000, message: 'the stopped session to leave the table' });
    assert.match(await page.locator('#sessions tbody').innerText(), /no browser sessions/);

    const del = page.locator('#sandboxes tr[data-id="sb-del"] button.stop');
    await del.click();
    await del.click();
    await waitFor(() => deletes().includes('/v1/sandboxes/sb-del'),
                  { timeoutMs: 5000, message: 'DELETE of the sandbox' });
    await waitFor(async () => (await rows(page, 'sandboxes').count()) === 0,
                  { timeoutMs: 8000, message: 'the deleted sandbox to leave the table' });
  } finally {
    await page.close();
  }
});

test('a rejected token stops polling and asks for one', async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${gw.url}/dashboard#token=wrong-token`);
    await state(page, 'login');
    assert.match(await page.locator('#status').innerText(), /rejected/);
    assert.equal(await page.locator('#login').isVisible(), true);
    const n = gw.requests.filter((r) => r.url.startsWith('/v1/')).length;
    await sleep(4000);
    assert.equal(gw.requests.filter((r) => r.url.startsWith('/v1/')).length, n, 'no more polling');

    // The form takes a good token.
    await page.fill('#token-input', TOKEN);
    await page.click('#login button[type="submit"]');
    await state(page, 'ready');
  } finally {
    await page.close();
  }
});

test('server data is shown as text, and only http(s) links are made', async () => {
  gw.addSession('bs-evil', {
    status: '<img src=x onerror="window.pwned=1">',
    profile_id: '<b>bold</b>',
    live_url: 'javascript:window.pwned=2',
    control_url: 'data:text/html,hi',
  });
  const page = await browser.newPage();
  try {
    await page.goto(`${gw.url}/dashboard#token=${TOKEN}`);
    await state(page, 'ready');
    const row = page.locator('#sessions tr[data-id="bs-evil"]');
    assert.match(await row.innerText(), /<img src=x/);
    assert.equal(await row.locator('img, b').count(), 0);
    assert.equal(await row.locator('a').count(), 0);
    assert.equal(await page.evaluate(() => window.pwned), undefined);
  } finally {
    await page.close();
    gw.endSession('bs-evil');
  }
});
