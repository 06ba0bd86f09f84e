// Two sessions at once share nothing: a cookie and localStorage set in one
// are absent in the other, and one session's token does not open the other.
import assert from 'node:assert/strict';
import { e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, devtoolsUrl, disconnect, getJson } from './lib/cdp.mjs';
import { randomId } from './lib/util.mjs';

e2eTest('cookies and storage do not cross sessions', async ({ pages, sessions }) => {
  const [a, b] = await Promise.all([sessions.create({}), sessions.create({})]);
  assert.notEqual(a.session_id, b.session_id);
  assert.notEqual(a.vm_id, b.vm_id, 'each session has its own VM');

  const value = randomId('v');
  const ca = await connectPlaywright(a.cdp_url);
  const cb = await connectPlaywright(b.cdp_url);
  try {
    await ca.page.goto(`${pages.guestUrl}/cookie/set?name=iso&value=${value}&days=1`, { timeout: 120_000 });
    await ca.page.evaluate((v) => localStorage.setItem('iso', v), value);
    await ca.page.goto(`${pages.guestUrl}/title?who=a`, { timeout: 120_000 });
    assert.match(await ca.page.evaluate(() => document.cookie), new RegExp(`iso=${value}`));
    assert.equal(await ca.page.evaluate(() => localStorage.getItem('iso')), value);

    await cb.page.goto(`${pages.guestUrl}/title?who=b`, { timeout: 120_000 });
    assert.doesNotMatch(await cb.page.evaluate(() => document.cookie), /iso=/);
    assert.equal(await cb.page.evaluate(() => localStorage.getItem('iso')), null);
    const hitA = pages.hits('/title').find((r) => r.query.who === 'a');
    const hitB = pages.hits('/title').find((r) => r.query.who === 'b');
    assert.match(hitA.cookie, /iso=/, 'session A sent its cookie');
    assert.doesNotMatch(hitB.cookie, /iso=/, 'session B did not');
  } finally {
    await disconnect(ca.browser);
    await disconnect(cb.browser);
  }

  // A's token with B's id (and the other way round) opens nothing.
  const swap = (url, from, to) => url.replace(`/${from.session_id}/`, `/${to.session_id}/`);
  for (const [x, y] of [[a, b], [b, a]]) {
    const crossed = swap(x.cdp_url, x, y);
    if (crossed === x.cdp_url) {
      console.error(`cdp_url ${x.cdp_url} does not name the session; no crossed-token check`);
      continue;
    }
    const r = await getJson(devtoolsUrl(crossed));
    assert.ok([401, 403, 404].includes(r.status), `crossed token: HTTP ${r.status}`);
  }
});
