// The CDP proxy never makes the gateway wait on a client's message, and
// what one session's CDP clients hold is bounded. On a gateway of this
// test's own, whose policy hook program sleeps 20 s for a navigation to a
// URL naming "slow-hook-...":
// - while the hook runs for a Page.navigate, /healthz, the API and another
//   CDP connection of the same session are answered (the hook's log shows
//   it still running afterwards), and the navigating connection's next
//   message is answered after the navigation, in order;
// - the same for /json/new;
// - the hook's refusal reaches the client as a CDP error and as a 403;
// - with cdp_session_max_mib 64, connections that each hold a 20 MiB
//   message half-sent are closed with 1009 once the session's total would
//   pass 64 MiB, and the session keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { OwnGateway, apiCall, e2eConfig } from './lib/gateway.mjs';
import { CdpClient, devtoolsUrl, getJson, openWebSocket } from './lib/cdp_raw.mjs';
import { sleep, waitFor } from './lib/util.mjs';

const MIB = 1 << 20;
const HOOK_SLEEP_S = 20;

function hookScript(logPath) {
  return `#!/bin/sh
input=$(cat)
tag=$(printf '%s' "$input" | grep -o 'slow-hook-[a-z]*' | head -n 1)
if [ -n "$tag" ]; then
  echo "start $tag" >> '${logPath}'
  sleep ${HOOK_SLEEP_S}
  echo "end $tag" >> '${logPath}'
fi
case "$input" in *hook-refuses*) echo "the test hook refuses this"; exit 1 ;; esac
exit 0
`;
}

const hookLog = (p) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

/** While the hook sleeps for tag: the gateway answers others at once. */
async function othersAnsweredDuring(gw, logPath, tag, others) {
  await waitFor(() => hookLog(logPath).includes(`start ${tag}`),
                { timeoutMs: 60_000, message: `the hook to start for ${tag}` });
  const health = await apiCall(gw.url, gw.token, 'GET', '/healthz');
  assert.equal(health.status, 200);
  const list = await gw.api('GET', '/v1/browser/sessions');
  assert.ok(Array.isArray(list.body.sessions));
  await others();
  assert.ok(!hookLog(logPath).includes(`end ${tag}`),
            `the gateway answered only after the hook for ${tag} ended:\n${hookLog(logPath)}`);
}

async function pageSocketUrl(cdpUrl) {
  const list = await getJson(devtoolsUrl(cdpUrl, 'list'));
  const page = (list.body || []).find((t) => t.type === 'page' && t.webSocketDebuggerUrl);
  assert.ok(page, `a page target: ${JSON.stringify(list.body)}`);
  return page.webSocketDebuggerUrl;
}

/** Opens a page connection and sends the start of a message of `bytes`. */
/** A process's resident memory in MiB (0 when it is gone). */
function rssMiB(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

async function halfSent(url, bytes) {
  const ws = await openWebSocket(url);
  const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const head = '{"id":1,"method":"Runtime.evaluate","params":{"expression":"\'';
  const chunk = Buffer.alloc(bytes, 'a');
  chunk.write(head, 0);
  // The gateway may close this one while it is being sent: its close
  // event says why, the write's EPIPE does not.
  await new Promise((resolve) => ws.send(chunk, { binary: false, fin: false }, () => resolve()));
  return { ws, closed, state: () => ws.readyState };
}

test('cdp: a slow policy hook holds up only its own connection; a session\'s CDP memory is bounded',
     { timeout: 1_200_000 }, async () => {
  const own = await OwnGateway.fresh('state-cdploop', {});
  mkdirSync(own.stateDir, { recursive: true });
  const logPath = path.join(own.stateDir, 'hook.log');
  const hookPath = path.join(own.stateDir, 'hook.sh');
  writeFileSync(hookPath, hookScript(logPath));
  chmodSync(hookPath, 0o755);
  own.config = {
    ...e2eConfig(), browser_pool: 0, templates: false, max_sandboxes: 2,
    hook: hookPath, hook_timeout_s: 120, cdp_session_max_mib: 64,
  };
  const gw = await own.start();
  let sessionId = null;
  const sockets = [];
  try {
    const s = await gw.createSession({ mode: 'headless' });
    sessionId = s.session_id;
    const pageUrl = await pageSocketUrl(s.cdp_url);

    // ---- Page.navigate behind a slow hook ------------------------------------
    const nav = await CdpClient.connect(pageUrl);
    sockets.push(nav);
    const order = [];
    const navP = nav.send('Page.navigate', { url: 'about:blank#slow-hook-nav' }).then((r) => { order.push('navigate'); return r; });
    const nextP = nav.send('Runtime.evaluate', { expression: '40 + 2', returnByValue: true }).then((r) => { order.push('evaluate'); return r; });
    await othersAnsweredDuring(gw, logPath, 'slow-hook-nav', async () => {
      const other = await CdpClient.connect(pageUrl);
      sockets.push(other);
      assert.equal(await other.evaluate('6 * 7'), 42);
      other.close();
    });
    await navP;
    assert.equal((await nextP).result.value, 42);
    assert.deepEqual(order, ['navigate', 'evaluate'], 'a connection\'s messages keep their order');
    assert.ok(hookLog(logPath).includes('end slow-hook-nav'));

    // ---- /json/new behind the same hook --------------------------------------
    const newP = fetch(`${s.cdp_url}/json/new?about:blank%23slow-hook-new`, { method: 'PUT', signal: AbortSignal.timeout(300_000) });
    await othersAnsweredDuring(gw, logPath, 'slow-hook-new', async () => {});
    const created = await newP;
    assert.equal(created.status, 200, await created.clone().text());
    assert.ok((await created.json()).id, 'a new target');

    // ---- the hook's refusals reach the client --------------------------------
    await assert.rejects(nav.send('Page.navigate', { url: 'about:blank#hook-refuses' }),
                         /the test hook refuses this/);
    const refused = await fetch(`${s.cdp_url}/json/new?about:blank%23hook-refuses`, { method: 'PUT' });
    assert.equal(refused.status, 403);
    assert.match(await refused.text(), /the test hook refuses this/);
    // The connection that was refused still works.
    assert.equal((await nav.send('Runtime.evaluate', { expression: '1 + 1', returnByValue: true })).result.value, 2);
    nav.close();

    // ---- the session's CDP memory budget -------------------------------------
    // The gateway's resident memory while a client floods it, printed.
    const rssBefore = rssMiB(own.pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, rssMiB(own.pid)); }, 100);
    const held = [];
    for (let i = 0; i < 5; i++) {
      const h = await halfSent(pageUrl, 20 * MIB);
      held.push(h);
      sockets.push({ close: () => h.ws.terminate() });
      await sleep(1500); // let the gateway read it all
    }
    const results = await Promise.all(held.map((h) => Promise.race([h.closed, sleep(5000).then(() => null)])));
    clearInterval(sampler);
    console.log(`gateway RSS while 5 x 20 MiB were sent (budget 64 MiB): before ${rssBefore} MiB, ` +
                `peak ${rssPeak} MiB (+${rssPeak - rssBefore}), after ${rssMiB(own.pid)} MiB`);
    const closedOver = results.filter((r) => r && r.code === 1009);
    const open = held.filter((h) => h.state() === 1);
    console.log(`5 connections of 20 MiB each: ${open.length} open, ${closedOver.length} closed with 1009 (${closedOver[0]?.reason})`);
    assert.ok(closedOver.length >= 1, `some connection was closed over the budget: ${JSON.stringify(results)}`);
    // Each one closed was told why (its close frame was not lost to a reset).
    assert.equal(closedOver.length, held.length - open.length, JSON.stringify(results));
    assert.match(closedOver[0].reason, /cdp_session_max_mib/);
    assert.ok(open.length * 20 <= 64, `${open.length} connections of 20 MiB stay open under a 64 MiB budget`);
    for (const h of held)
      h.ws.terminate();
    await sleep(1000);
    const after = await CdpClient.connect(pageUrl);
    sockets.push(after);
    assert.equal(await after.evaluate('2 * 21'), 42, 'the session works after the budget closed some');
    after.close();
    assert.equal((await apiCall(gw.url, gw.token, 'GET', '/healthz')).status, 200);
  } finally {
    for (const c of sockets) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    await own.cleanup([sessionId]);
  }
});
