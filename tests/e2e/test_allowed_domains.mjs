// allowed_domains: a navigation to a host outside the list is refused with
// a reason Playwright shows, and never reaches that host; a host on the list
// is let through (here it then fails to resolve, which is a network error,
// not the refusal).
import assert from 'node:assert/strict';
import { e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { sleep } from './lib/util.mjs';

const REFUSAL = /blocked|refused|denied|forbidden|not allowed|allowed_domains|policy/i;

e2eTest('navigation outside allowed_domains is refused', async ({ pages, sessions }) => {
  const s = await sessions.create({ allowed_domains: ['example.test'] });
  const { browser, page } = await connectPlaywright(s.cdp_url);
  try {
    const before = pages.requests.length;
    let error = null;
    try {
      await page.goto(`${pages.guestUrl}/title?should=never-arrive`, { timeout: 60_000 });
    } catch (e) {
      error = e;
    }
    assert.ok(error, 'page.goto to a host outside allowed_domains must fail');
    assert.match(error.message, REFUSAL, `the error says why: ${error.message}`);
    await sleep(3000);
    assert.equal(pages.requests.length, before, 'the refused navigation never reached the server');

    let allowedError = null;
    try {
      await page.goto('http://example.test/', { timeout: 60_000 });
    } catch (e) {
      allowedError = e;
    }
    // No DNS for .test here: the allowed navigation fails in the network.
    if (allowedError)
      assert.doesNotMatch(allowedError.message, REFUSAL, `allowed host refused: ${allowedError.message}`);
  } finally {
    await disconnect(browser);
  }
});

e2eTest('without allowed_domains the same page loads', async ({ pages, sessions }) => {
  const s = await sessions.create({});
  const { browser, page } = await connectPlaywright(s.cdp_url);
  try {
    await page.goto(`${pages.guestUrl}/title?control=unrestricted`, { timeout: 120_000 });
    assert.equal(await page.title(), 'Porthole e2e');
  } finally {
    await disconnect(browser);
  }
});
