// SmolVM's documented agent flow, `agent-browser --cdp <port>`, given only
// the port of a session's cdp_url: it opens a page in the session's browser
// and snapshots it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { e2eTest } from './lib/e2e.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const AGENT_BROWSER = path.join(here, 'node_modules', '.bin', 'agent-browser');
const run = promisify(execFile);

e2eTest('agent-browser --cdp PORT opens a page and snapshots it', async ({ pages, sessions }) => {
  const s = await sessions.create({});
  const port = new URL(s.cdp_url).port;
  assert.match(port, /^\d+$/, `cdp_url ${s.cdp_url} has a port of its own`);
  // Its own home and daemon socket dir, so that nothing of the user's is
  // touched and the daemon ends with the directory.
  const home = mkdtempSync(path.join(os.tmpdir(), 'porthole-agent-browser-'));
  // Page loads under software emulation take far longer than its 25 s
  // default action timeout; the daemon leaves a minute after the test.
  const env = {
    ...process.env, HOME: home, XDG_RUNTIME_DIR: home, AGENT_BROWSER_SESSION: 'porthole-e2e',
    AGENT_BROWSER_DEFAULT_TIMEOUT: '150000', AGENT_BROWSER_IDLE_TIMEOUT_MS: '60000',
  };
  const ab = async (...args) => {
    try {
      const r = await run(AGENT_BROWSER, ['--cdp', port, ...args], { env, timeout: 240_000 });
      return r.stdout;
    } catch (e) {
      throw new Error(`agent-browser ${args.join(' ')}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
    }
  };
  try {
    const before = pages.hits('/title').length;
    await ab('open', `${pages.guestUrl}/title?who=agent-browser`);
    const snap = await ab('snapshot');
    assert.match(snap, /Hello from the host/, `the snapshot shows the page: ${snap.slice(0, 2000)}`);
    assert.ok(pages.hits('/title').length > before, 'the page was fetched through the session');
  } finally {
    await run(AGENT_BROWSER, ['close'], { env, timeout: 60_000 }).catch(() => {});
    rmSync(home, { recursive: true, force: true });
  }
});
