// `porthole browser start` prints every URL of the session it started,
// control_url included, against a stand-in for POST /v1/browser/sessions
// (no guest needed): the text form line by line, the --json form as data.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const bin = process.env.PORTHOLE_BIN;

async function standIn(session) {
  const requests = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      requests.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
      const ok = req.method === 'POST' && req.url === '/v1/browser/sessions';
      const text = JSON.stringify(ok ? session(JSON.parse(body || '{}'))
                                     : { error: { code: 'not_found', message: req.url } });
      res.writeHead(ok ? 201 : 404, { 'content-type': 'application/json' });
      res.end(text);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, requests, url: `http://127.0.0.1:${server.address().port}` };
}

test('browser start prints session_id, cdp_url, live_url and control_url', async () => {
  assert.ok(bin, 'PORTHOLE_BIN names the porthole executable');
  const token = randomBytes(16).toString('hex');
  const tok = randomBytes(8).toString('hex');
  let base;
  const gw = await standIn((body) => ({
    session_id: 'bs-cli1', status: 'ready', mode: body.mode,
    cdp_url: `${base}/cdp/bs-cli1/c${tok}`,
    live_url: body.mode === 'live' ? `${base}/live/bs-cli1/v${tok}` : null,
    control_url: body.mode === 'live' ? `${base}/live/bs-cli1/k${tok}?control=1` : null,
  }));
  base = gw.url;
  const env = { ...process.env, PORTHOLE_URL: gw.url, PORTHOLE_TOKEN: token };
  try {
    const live = await run(bin, ['browser', 'start', '--live'], { env });
    assert.deepEqual(live.stdout.trim().split('\n'), [
      'session_id: bs-cli1',
      `cdp_url: ${base}/cdp/bs-cli1/c${tok}`,
      `live_url: ${base}/live/bs-cli1/v${tok}`,
      `control_url: ${base}/live/bs-cli1/k${tok}?control=1`,
    ]);
    assert.equal(gw.requests[0].auth, `Bearer ${token}`);
    assert.equal(JSON.parse(gw.requests[0].body).mode, 'live');

    const headless = await run(bin, ['browser', 'start'], { env });
    const lines = headless.stdout.trim().split('\n');
    assert.equal(lines[3], 'control_url: - (headless; start with --live)', headless.stdout);

    const json = JSON.parse((await run(bin, ['browser', 'start', '--live', '--json'], { env })).stdout);
    assert.equal(json.ok, true);
    assert.equal(json.data.control_url, `${base}/live/bs-cli1/k${tok}?control=1`);
  } finally {
    gw.server.close();
  }
});
