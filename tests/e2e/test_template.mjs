// Browser templates, forks and pause: once the gateway has built the
// headless browser template, sessions are clones of it. Each clone gets the
// viewport it asked for, a clock within 2 s of the host's and its own
// cookies. A fork carries on from its parent's pages (a cookie and a JS
// global set before it), and forks are independent of each other from then
// on. A paused session stands still and answers again once resumed.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { randomId } from './lib/util.mjs';

const BUILD_TIMEOUT_MS = 15 * 60_000;

async function waitTemplate(gw, mode) {
  const t0 = Date.now();
  for (;;) {
    const r = await gw.api('GET', '/v1/status');
    const t = r.body.templates.find((x) => x.kind === 'browser' && x.mode === mode);
    assert.ok(t, `/v1/status lists no ${mode} browser template`);
    assert.notEqual(t.state, 'failed', `${mode} browser template build failed: ${t.error}`);
    assert.notEqual(t.state, 'disabled', 'templates are disabled on the e2e gateway');
    if (t.state === 'ready') {
      console.error(`${mode} browser template ${t.name} ready after ${Date.now() - t0} ms`);
      return t;
    }
    assert.ok(Date.now() - t0 < BUILD_TIMEOUT_MS, `${mode} browser template still ${t.state}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

const pageOf = (c) => c.page;

e2eTest('sessions are clones of the browser template, each with its own settings and cookies',
  async ({ gw, pages, sessions }) => {
    const tpl = await waitTemplate(gw, 'headless');
    const asks = [{}, { viewport: { width: 1024, height: 640 } }];
    const t0 = Date.now();
    const got = await Promise.all(asks.map(async (body) => {
      const s = await sessions.create(body);
      console.error(`session ${s.session_id}: ${s.served_from}, ready in ${Date.now() - t0} ms`);
      return s;
    }));
    for (const s of got) {
      assert.equal(s.served_from, 'template', `${s.session_id} served from`);
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
        const seen = await pageOf(c).evaluate(() => ({ w: window.innerWidth, h: window.innerHeight,
                                                        now: Date.now() }));
        assert.equal(seen.w, want.width, `${s.session_id}: viewport width`);
        assert.equal(seen.h, want.height, `${s.session_id}: viewport height`);
        assert.ok(Math.abs(seen.now - Date.now()) < 2000,
                  `${s.session_id}: guest clock ${seen.now}, host ${Date.now()}`);
      }
      // A cookie set in one clone is in no other.
      const value = randomId('tpl');
      const [a, b] = conns.map(pageOf);
      await a.goto(`${pages.guestUrl}/cookie/set?name=tpl&value=${value}&days=1`, { timeout: 120_000 });
      assert.match(await a.evaluate(() => document.cookie), new RegExp(`tpl=${value}`));
      await b.goto(`${pages.guestUrl}/title?who=other-clone`, { timeout: 120_000 });
      assert.doesNotMatch(await b.evaluate(() => document.cookie), /tpl=/,
                          'a cookie of one clone showed up in another');
    } finally {
      for (const c of conns)
        await disconnect(c.browser);
    }
  });

e2eTest('a fork carries on from its parent, and forks do not see each other', async ({ gw, pages, sessions }) => {
  const parent = await sessions.create({});
  const value = randomId('fork');
  const pc = await connectPlaywright(parent.cdp_url);
  try {
    await pc.page.goto(`${pages.guestUrl}/cookie/set?name=forked&value=${value}&days=1`, { timeout: 120_000 });
    await pc.page.evaluate(() => { window.beforeFork = 'set in the parent'; });
  } finally {
    await disconnect(pc.browser);
  }
  const t0 = Date.now();
  const r = await gw.api('POST', `/v1/browser/sessions/${parent.session_id}/fork`, { count: 2 },
                         { expect: [201], timeoutMs: 900_000 });
  console.error(`fork into 2: ${Date.now() - t0} ms (gateway ${r.body.fork_ms} ms)`);
  const kids = r.body.sessions;
  assert.equal(kids.length, 2, JSON.stringify(r.body).slice(0, 500));
  for (const k of kids) {
    assert.equal(k.status, 'ready', `fork ${k.session_id}: ${k.error}`);
    assert.equal(k.served_from, 'fork');
    sessions.ids.add(k.session_id);
    assert.notEqual(k.cdp_url, parent.cdp_url, 'a fork has URLs of its own');
  }
  const conns = [];
  try {
    for (const k of kids) {
      const c = await connectPlaywright(k.cdp_url);
      conns.push(c);
      const seen = await c.page.evaluate(() => ({ g: window.beforeFork, cookie: document.cookie }));
      assert.equal(seen.g, 'set in the parent', `${k.session_id}: the JS global`);
      assert.match(seen.cookie, new RegExp(`forked=${value}`), `${k.session_id}: the cookie`);
    }
    // One fork's change is not seen in the other.
    await conns[0].page.evaluate(() => { window.beforeFork = 'changed in fork 0'; document.cookie = 'onlyzero=1'; });
    const other = await conns[1].page.evaluate(() => ({ g: window.beforeFork, cookie: document.cookie }));
    assert.equal(other.g, 'set in the parent', 'fork 1 saw fork 0\'s global');
    assert.doesNotMatch(other.cookie, /onlyzero/, 'fork 1 saw fork 0\'s cookie');
  } finally {
    for (const c of conns)
      await disconnect(c.browser);
  }
  // The fork's snapshot stays while a fork's disk is on it, and goes with
  // the last of them: no overlay, memory file or process is left.
  const forkSnaps = async () => (await gw.api('GET', '/v1/snapshots')).body.snapshots
    .filter((x) => x.internal && x.source === parent.session_id);
  const snaps = await forkSnaps();
  assert.equal(snaps.length, 1, `fork snapshots of the parent: ${JSON.stringify(snaps)}`);
  for (const k of kids)
    await sessions.stop(k.session_id);
  // Its record goes first, its files on a worker after: wait for both.
  const snapDir = gw.stateDir && path.join(gw.stateDir, 'snapshots', snaps[0].snapshot_id);
  const t1 = Date.now();
  while (((await forkSnaps()).length || (snapDir && existsSync(snapDir))) && Date.now() - t1 < 120_000)
    await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(await forkSnaps(), [], 'the fork snapshot outlived its forks');
  if (gw.stateDir) {
    assert.ok(!existsSync(snapDir), 'the fork snapshot\'s files are left');
    for (const k of kids)
      assert.ok(!existsSync(gw.vmRunDir(k.vm_id)), `run dir of fork ${k.session_id} is left`);
  }
});

e2eTest('a paused session stands still and answers after resume', async ({ gw, sessions }) => {
  const s = await sessions.create({});
  const c = await connectPlaywright(s.cdp_url);
  // The page's monotonic clock runs with the guest's vCPUs: across a pause
  // it misses the time the guest stood still, which the host's clock saw.
  const clocks = async () => ({ guest: await c.page.evaluate(() => performance.now()), host: Date.now() });
  try {
    const a = await clocks();
    const p = await gw.api('POST', `/v1/browser/sessions/${s.session_id}/pause`, {}, { timeoutMs: 120_000 });
    assert.equal(p.body.status, 'paused');
    assert.equal((await gw.getSession(s.session_id)).status, 'paused');
    await new Promise((r) => setTimeout(r, 3000));
    const q = await gw.api('POST', `/v1/browser/sessions/${s.session_id}/resume`, {}, { timeoutMs: 300_000 });
    assert.equal(q.body.status, 'ready');
    const b = await clocks();
    const stood = (b.host - a.host) - (b.guest - a.guest);
    const now = await c.page.evaluate(() => Date.now());
    console.error(`host ${b.host - a.host} ms, page ${(b.guest - a.guest).toFixed(0)} ms: stood still ${stood.toFixed(0)} ms`);
    assert.ok(stood >= 2000, `the guest stood still ${stood.toFixed(0)} ms across a 3 s pause`);
    assert.ok(Math.abs(now - Date.now()) < 2000, `guest clock after resume: ${now}, host ${Date.now()}`);
  } finally {
    await disconnect(c.browser);
  }
});
