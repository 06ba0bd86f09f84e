// timeout_minutes is enforced: a session of 1 minute is gone (404, not
// listed) within about 90 s after its expires_at, and so is its QEMU.
import assert from 'node:assert/strict';
import { e2eTest } from './lib/e2e.mjs';
import { qemuPids } from './lib/gateway.mjs';
import { waitFor } from './lib/util.mjs';

const GRACE_MS = 90_000;

e2eTest('a session expires and its VM stops', async ({ gw, sessions }) => {
  const s = await sessions.create({ timeout_minutes: 1 });
  const expires = Date.parse(s.expires_at);
  assert.ok(Number.isFinite(expires), `expires_at ${s.expires_at}`);
  // The minute counts from the moment the session is ready, however long
  // its boot took.
  const ready = Date.parse(s.ready_at);
  assert.ok(Number.isFinite(ready), `ready_at ${s.ready_at}`);
  assert.ok(expires - ready >= 59_000 && expires - ready <= 61_000,
            `expires_at ${s.expires_at} is a minute after ready_at ${s.ready_at}`);

  const runDir = gw.vmRunDir(s.vm_id);
  if (runDir)
    assert.ok(qemuPids(runDir).length > 0, `a QEMU runs for ${runDir}`);

  const deadline = expires + GRACE_MS;
  await waitFor(async () => (await gw.api('GET', `/v1/browser/sessions/${s.session_id}`, undefined,
                                          { expect: null })).status === 404,
                { timeoutMs: Math.max(deadline - Date.now(), 1000), intervalMs: 2000,
                  message: `session ${s.session_id} to expire (expires_at ${s.expires_at})` });
  assert.ok(!(await gw.listSessions()).some((x) => x.session_id === s.session_id), 'not listed');
  if (runDir)
    await waitFor(() => qemuPids(runDir).length === 0,
                  { timeoutMs: Math.max(deadline - Date.now(), 5000), intervalMs: 1000,
                    message: `the QEMU of ${s.vm_id} to exit` });
  else
    console.error('no state dir: QEMU check skipped');
});
