// The host's own headless Chromium (Debian's /usr/bin/chromium), launched
// through playwright-core: Playwright's browser downloads do not work here,
// and the tests must not depend on them.
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.PORTHOLE_E2E_CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--headless=new',
  '--disable-dev-shm-usage',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches host Chromium; close the result when done. */
export async function launchHostChromium(opts = {}) {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (bootstrap.sh does)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 120_000,
    ...opts,
  });
}

/** Collects console errors, page errors and failed requests of a page. */
export function watchPage(page) {
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error')
      problems.push(`console.error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) =>
    problems.push(`request failed: ${req.url()} (${req.failure()?.errorText})`));
  page.on('response', (resp) => {
    if (resp.status() >= 400)
      problems.push(`HTTP ${resp.status()}: ${resp.url()}`);
  });
  return problems;
}
