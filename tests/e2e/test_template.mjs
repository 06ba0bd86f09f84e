// Browser templates: once the gateway has built the browser template,
// sessions are clones of it. Each clone gets the viewport it asked for, a
// clock within 2 s of the host's, its own cookies (none of another clone's),
// and a Chromium that answers CDP at once.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { randomId } from './lib/util.mjs';

const BUILD_TIMEOUT_MS = 15 * 60_000;

async function browserTemplate(gw) {
  const r = await gw.api('GET', '/v1/status');
  return r.body.templates.find((t) => t.kind === 'browser');
}

async function waitTemplate(gw) {
  const t0 = Date.now();
  for (;;) {
    const t = await browserTemplate(gw);
    assert.ok(t, '/v1/status lists no browser template');
    assert.notEqual(t.state, 'failed', `browser template build failed: ${t.error}`);
    assert.notEqual(t.state, 'disabled', 'templates are disabled on the e2e gateway');
    if (t.state === 'ready') {
      console.error(`browser template ${t.name} ready after ${Date.now() - t0} ms`);
      return t;
    }
    assert.ok(Date.now() - t0 < BUILD_TIMEOUT_MS, `browser template still ${t.state}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

e2eTest('sessions are clones of the browser template, each with its own settings and cookies',
  async ({ gw, pages, sessions }) => {
    const tpl = await waitTemplate(gw);
    // Three at once: the pool holds at most one, so two at least are clones.
    const asks = [{}, { viewport: { width: 1024, height: 640 } }, {}];
    const t0 = Date.now();
    const got = await Promise.all(asks.map(async (body) => {
      const s = await sessions.create(body);
      console.error(`session ${s.session_id}: ${s.served_from}, ready in ${Date.now() - t0} ms`);
      return s;
    }));
    const clones = got.filter((s) => s.served_from === 'template');
    assert.ok(clones.length >= 2, `served from: ${got.map((s) => s.served_from).join(', ')}`);
    for (const s of clones) {
      const runDir = gw.vmRunDir(s.vm_id);
      if (runDir) {
        const ref = path.join(runDir, 'template');
        assert.ok(existsSync(ref), `clone ${s.vm_id} names no template`);
        assert.equal(path.basename(readFileSync(ref, 'utf8')), tpl.name, 'the template it names');
      }
    }

    const conns = [];
    try {
      for (const [i, s] of got.entries()) {
        const c = await connectPlaywright(s.cdp_url);
        conns.push(c);
        const want = asks[i].viewport || { width: 1280, height: 720 };
        const seen = await c.page.evaluate(() => ({ w: window.innerWidth, h: window.innerHeight,
                                                     now: Date.now() }));
        assert.equal(seen.w, want.width, `${s.session_id}: viewport width`);
        assert.equal(seen.h, want.height, `${s.session_id}: viewport height`);
        assert.ok(Math.abs(seen.now - Date.now()) < 2000,
                  `${s.session_id}: guest clock ${seen.now}, host ${Date.now()}`);
      }
      // A cookie set in one clone is in no other.
      const value = randomId('tpl');
      const [a, b] = clones.map((s) => conns[got.indexOf(s)]);
      await a.page.goto(`${pages.guestUrl}/cookie/set?name=tpl&value=${value}&days=1`, { timeout: 120_000 });
      assert.match(await a.page.evaluate(() => document.cookie), new RegExp(`tpl=${value}`));
      await b.page.goto(`${pages.guestUrl}/title?who=other-clone`, { timeout: 120_000 });
      assert.doesNotMatch(await b.page.evaluate(() => document.cookie), /tpl=/,
                          'a cookie of one clone showed up in another');
    } finally {
      for (const c of conns)
        await disconnect(c.browser);
    }
  });
