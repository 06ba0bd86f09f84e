// Persistent profiles: a cookie set in session A on profile P survives A's
// stop and is there in session B on P; two sessions on one profile at once
// are refused with 409.
import assert from 'node:assert/strict';
import { e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { randomId, waitFor } from './lib/util.mjs';

e2eTest('a profile keeps cookies across sessions, one session at a time', async ({ gw, pages, sessions }) => {
  const profile = randomId('p-');
  const value = randomId('c');

  const a = await sessions.create({ profile_id: profile });
  assert.equal(a.profile_id, profile);
  const ca = await connectPlaywright(a.cdp_url);
  try {
    await ca.page.goto(`${pages.guestUrl}/cookie/set?name=kept&value=${value}&days=1`, { timeout: 120_000 });
    assert.match(await ca.page.evaluate(() => document.cookie), new RegExp(`kept=${value}`));

    const second = await gw.api('POST', '/v1/browser/sessions', { profile_id: profile },
                                { expect: null, timeoutMs: 300_000 });
    if (second.status === 201)
      await gw.deleteSession(second.body.session_id);
    assert.equal(second.status, 409, `a second session on ${profile}: ${JSON.stringify(second.body)}`);
    assert.ok(second.body?.error?.code, 'the 409 has an error code');

    // Stopped while the client is still connected: saving the profile is the
    // gateway's job, not the client's.
    await sessions.stop(a.session_id);
  } finally {
    await disconnect(ca.browser);
  }
  await waitFor(async () => (await gw.api('GET', `/v1/browser/sessions/${a.session_id}`, undefined,
                                          { expect: null })).status === 404,
                { timeoutMs: 120_000, intervalMs: 1000, message: 'session A to be gone' });

  const b = await sessions.create({ profile_id: profile });
  assert.equal(b.profile_id, profile);
  const cb = await connectPlaywright(b.cdp_url);
  try {
    await cb.page.goto(`${pages.guestUrl}/title?who=b`, { timeout: 120_000 });
    assert.match(await cb.page.evaluate(() => document.cookie), new RegExp(`kept=${value}`),
                 'session B sees the cookie session A set');
    const hit = pages.hits('/title').find((r) => r.query.who === 'b');
    assert.match(hit.cookie, new RegExp(`kept=${value}`));
  } finally {
    await disconnect(cb.browser);
  }
});
