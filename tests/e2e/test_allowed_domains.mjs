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

// The network enforces the list too, for what the CDP check never sees: a
// location change from script, a clicked link, a redirect, an image and a
// fetch() towards other.test (the same host server under another name) all
// fail, and none of them reaches the server (Chromium's URL policy stops
// the navigations first, the egress proxy whatever gets past it).
e2eTest('allowed_domains holds for script, links, redirects and subresources', async ({ pages, sessions }) => {
  const s = await sessions.create({ allowed_domains: ['pages.test'] });
  assert.equal(s.network?.mode, 'allowlist', JSON.stringify(s.network));
  const other = `http://other.test:${pages.port}`;
  const links = `${pages.guestUrl}/links?to=${encodeURIComponent(other)}`;
  const { browser, page } = await connectPlaywright(s.cdp_url);
  // Each probe on a page of its own, so that one refused navigation cannot
  // interrupt the next; the probes' own errors do not matter, only whether
  // anything reached the server.
  const probe = async (fn) => {
    const p = await page.context().newPage();
    try {
      await fn(p);
    } catch {
      // refused: what the test wants; checked at the server below
    }
    await sleep(3000);
    await p.close().catch(() => {});
  };
  try {
    await page.goto(links, { timeout: 120_000 });
    assert.equal(await page.title(), 'links');
    let fetched = '';
    await probe(async (p) => {
      await p.goto(links, { timeout: 120_000 });
      fetched = await p.evaluate(async (u) => {
        try {
          return `status ${(await fetch(`${u}/fetched`, { mode: 'no-cors' })).status}`;
        } catch (e) {
          return `error ${e.message}`;
        }
      }, other);
    });
    await probe(async (p) => {
      await p.goto(links, { timeout: 120_000 });
      await p.evaluate((u) => { location.href = `${u}/located`; }, other);
    });
    await probe(async (p) => {
      await p.goto(links, { timeout: 120_000 });
      await p.click('#link', { timeout: 30_000, noWaitAfter: true });
    });
    await probe((p) => p.goto(`${pages.guestUrl}/redirect?to=${encodeURIComponent(`${other}/redirected`)}`,
                               { timeout: 60_000 }));
    const arrived = pages.requests.filter((r) => r.host.startsWith('other.test') ||
      ['/fetched', '/located', '/clicked', '/img.png', '/redirected'].includes(r.path));
    assert.deepEqual(arrived, [], `requests that got past allowed_domains (fetch said: ${fetched})`);
    assert.ok(pages.hits('/redirect').length >= 1, 'the allowed redirecting page was asked for');
    const after = await sessions.gw.api('GET', `/v1/browser/sessions/${s.session_id}`);
    // What Chromium's policy does not stop (fetch(), at least) reaches the
    // proxy, which refuses and counts it.
    assert.ok(after.body.network.refused >= 1, `refusals counted: ${JSON.stringify(after.body.network)}`);
  } finally {
    await disconnect(browser);
  }
});
