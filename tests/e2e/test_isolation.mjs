// Two sessions at once share nothing: a cookie and localStorage set in one
// are absent in the other, and one session's token does not open the other;
// and no TCP client or other local user reaches a session's DevTools.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, devtoolsUrl, disconnect, getJson } from './lib/cdp.mjs';
import { randomId } from './lib/util.mjs';

e2eTest('cookies and storage do not cross sessions', async ({ pages, sessions }) => {
  const [a, b] = await Promise.all([sessions.create({}), sessions.create({})]);
  assert.notEqual(a.session_id, b.session_id);
  assert.notEqual(a.vm_id, b.vm_id, 'each session has its own VM');

  const value = randomId('v');
  const ca = await connectPlaywright(a.cdp_url);
  const cb = await connectPlaywright(b.cdp_url);
  try {
    await ca.page.goto(`${pages.guestUrl}/cookie/set?name=iso&value=${value}&days=1`, { timeout: 120_000 });
    await ca.page.evaluate((v) => localStorage.setItem('iso', v), value);
    await ca.page.goto(`${pages.guestUrl}/title?who=a`, { timeout: 120_000 });
    assert.match(await ca.page.evaluate(() => document.cookie), new RegExp(`iso=${value}`));
    assert.equal(await ca.page.evaluate(() => localStorage.getItem('iso')), value);

    await cb.page.goto(`${pages.guestUrl}/title?who=b`, { timeout: 120_000 });
    assert.doesNotMatch(await cb.page.evaluate(() => document.cookie), /iso=/);
    assert.equal(await cb.page.evaluate(() => localStorage.getItem('iso')), null);
    const hitA = pages.hits('/title').find((r) => r.query.who === 'a');
    const hitB = pages.hits('/title').find((r) => r.query.who === 'b');
    assert.match(hitA.cookie, /iso=/, 'session A sent its cookie');
    assert.doesNotMatch(hitB.cookie, /iso=/, 'session B did not');
  } finally {
    await disconnect(ca.browser);
    await disconnect(cb.browser);
  }

  // A's token with B's id (and the other way round) opens nothing.
  const swap = (url, from, to) => url.replace(`/${from.session_id}/`, `/${to.session_id}/`);
  for (const [x, y] of [[a, b], [b, a]]) {
    const crossed = swap(x.cdp_url, x, y);
    if (crossed === x.cdp_url) {
      console.error(`cdp_url ${x.cdp_url} does not name the session; no crossed-token check`);
      continue;
    }
    const r = await getJson(devtoolsUrl(crossed));
    assert.ok([401, 403, 404].includes(r.status), `crossed token: HTTP ${r.status}`);
  }
});

// DevTools is reached only through the VM's run dir: the QEMU of a session
// listens on TCP for sshd alone (which wants the VM's key), and the DevTools
// and VNC sockets refuse another local user.
e2eTest('a browser VM offers DevTools to no TCP client and no other user', async ({ gw, sessions }) => {
  if (!gw.stateDir) {
    console.error('the gateway\'s state dir is not ours: no check of its sockets');
    return;
  }
  const s = await sessions.create({});
  const runDir = path.join(gw.stateDir, 'vms', s.vm_id);
  const pid = Number(readFileSync(path.join(runDir, 'qemu.pid'), 'utf8'));
  const ports = listeningPorts(pid);
  assert.ok(ports.length >= 1, `QEMU ${pid} listens on no TCP port at all`);
  for (const port of ports) {
    const banner = await firstBytes(port);
    assert.match(banner, /^SSH-2\.0-/, `QEMU's 127.0.0.1:${port} is not sshd: ${JSON.stringify(banner)}`);
  }
  assert.equal(statSync(runDir).mode & 0o777, 0o700, 'run dir mode');
  for (const name of ['devtools.sock', 'vnc.sock']) {
    const sock = path.join(runDir, name);
    assert.ok(statSync(sock).isSocket(), `${name} is a socket`);
    if (process.getuid() === 0) {
      // As nobody, the socket cannot be opened at all.
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/usr/bin/python3', '-c',
        'import socket, sys\ns = socket.socket(socket.AF_UNIX)\n' +
        'try:\n    s.connect(sys.argv[1]); print("connected")\nexcept OSError as e:\n    print(e.errno)',
        sock], { encoding: 'utf8' });
      assert.equal(r.status, 0, `setpriv: ${r.stderr}`);
      assert.equal(r.stdout.trim(), String(os.constants.errno.EACCES), `${name} as another user`);
    }
  }
  // And the session's DevTools does answer, through the gateway.
  const v = await getJson(devtoolsUrl(s.cdp_url));
  assert.equal(v.status, 200);
  assert.match(v.body.Browser, /Chrome/);
});

/** TCP ports a process listens on (its sockets' inodes in /proc/net/tcp{,6}). */
function listeningPorts(pid) {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m)
        inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9]))
        ports.push(parseInt(f[1].split(':')[1], 16));
    }
  }
  return ports;
}

function firstBytes(port) {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    let got = '';
    const t = setTimeout(() => { c.destroy(); resolve(got); }, 15_000);
    c.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\n')) {
        clearTimeout(t);
        c.destroy();
        resolve(got);
      }
    });
    c.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}
