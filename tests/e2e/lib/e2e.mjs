// What every test against a real gateway shares: the gateway, the host's
// test pages, sessions stopped after each test whatever happened, and the
// session logs printed when a test fails.
import { test, before, after } from 'node:test';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { useGateway, SessionTracker } from './gateway.mjs';
import { startTestPages } from './test_pages.mjs';

const ctx = { gw: null, pages: null };

before(async () => {
  ctx.gw = await useGateway();
  let r;
  try {
    r = await ctx.gw.api('GET', '/v1/browser/sessions', undefined, { expect: null });
  } catch (e) {
    throw new Error(`cannot reach the gateway at ${ctx.gw.url}: ${e.cause?.message || e.message}`);
  }
  if (r.status !== 200)
    throw new Error(`the gateway at ${ctx.gw.url} has no browser-session API ` +
                    `(GET /v1/browser/sessions: HTTP ${r.status})`);
  ctx.pages = await startTestPages();
});

after(async () => {
  await ctx.pages?.close();
});

/** Where tests leave screenshots for people to look at. */
export function artifactsDir() {
  const dir = process.env.PORTHOLE_E2E_ARTIFACTS ||
              path.join(ctx.gw?.stateDir || process.cwd(), 'artifacts');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * A node:test test that gets {gw, pages, sessions}; the sessions it created
 * through `sessions` are stopped when it ends, and their logs are printed
 * when it fails.
 */
export function e2eTest(name, opts, fn) {
  if (typeof opts === 'function')
    [fn, opts] = [opts, {}];
  test(name, { timeout: 900_000, ...opts }, async (t) => {
    const sessions = new SessionTracker(ctx.gw);
    const created = [];
    const create = sessions.create.bind(sessions);
    sessions.create = async (body) => {
      const s = await create(body);
      created.push(s.session_id);
      return s;
    };
    try {
      await fn({ gw: ctx.gw, pages: ctx.pages, sessions, t });
    } catch (e) {
      for (const id of created)
        console.error(`--- logs of session ${id} ---\n${await ctx.gw.sessionLogs(id)}`);
      throw e;
    } finally {
      await sessions.cleanup();
    }
  });
}
