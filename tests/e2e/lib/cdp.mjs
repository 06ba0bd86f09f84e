// Clients of a session's browser: Playwright over CDP the way users connect
// (and, re-exported, the raw client of cdp_raw.mjs).
import { chromium } from 'playwright-core';

export { CdpClient, devtoolsUrl, getJson, openWebSocket } from './cdp_raw.mjs';

/**
 * chromium.connectOverCDP(cdp_url) and a page to work with: the first normal
 * page of the default context (in live mode, the tab on screen), else a new one.
 */
export async function connectPlaywright(cdpUrl, { newPage = false, timeoutMs = 120_000 } = {}) {
  const browser = await chromium.connectOverCDP(cdpUrl, { timeout: timeoutMs });
  const context = browser.contexts()[0] ?? (await browser.newContext());
  let page = newPage ? null : context.pages().find((p) => /^(about:blank|https?:|chrome:\/\/newtab)/.test(p.url()));
  if (!page)
    page = await context.newPage();
  return { browser, context, page };
}

/** Closes a Playwright CDP connection; never throws. */
export async function disconnect(browser) {
  try {
    await browser?.close();
  } catch {
    // already gone with its session
  }
}
