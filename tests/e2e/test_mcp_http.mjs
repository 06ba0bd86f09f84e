// The gateway's own MCP endpoint (/mcp, MCP's Streamable HTTP transport)
// driven by the official MCP TypeScript SDK's StreamableHTTPClientTransport:
// the session id handshake, tools/list, a sandbox with exec (a deny-listed
// command refused as a tool error), a long exec whose progress arrives on
// an event stream and whose cancellation stops it in the guest, the audit's
// actor, a browser session's screenshot as image content; then the
// transport's edges with plain fetch: no token, no session, an ended
// session, GET, a batch.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { e2eTest } from './lib/e2e.mjs';
import { LONG, call, cancelAfterProgress, text, ticksWhenStopped } from './lib/mcp.mjs';
import { E2E_DENIED_WORD } from './lib/gateway.mjs';
import { pngSize } from './lib/png.mjs';



function connect(gw) {
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', gw.url), {
    requestInit: { headers: { Authorization: `Bearer ${gw.token}` } },
  });
  const client = new Client({ name: 'porthole-e2e-http', version: '1.0.0' });
  return { client, transport };
}

async function post(gw, body, headers = {}) {
  const r = await fetch(new URL('/mcp', gw.url), {
    method: 'POST',
    headers: { Authorization: `Bearer ${gw.token}`, 'Content-Type': 'application/json',
               Accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

e2eTest('gateway /mcp: tools over Streamable HTTP with the MCP SDK client', async ({ gw }) => {
  const { client, transport } = connect(gw);
  await client.connect(transport);
  let sandbox = null, session = null;
  try {
    assert.equal(client.getServerVersion().name, 'porthole');
    assert.match(transport.sessionId, /^[0-9a-f]{32}$/, 'the session id from initialize');

    const { tools } = await client.listTools();
    for (const name of ['sandbox_create', 'sandbox_exec', 'browser_start', 'browser_computer'])
      assert.ok(tools.some((t) => t.name === name), `tools/list has ${name}`);

    const created = await call(client, 'sandbox_create', {});
    sandbox = created.structuredContent.id;
    assert.match(sandbox, /^sb-/);
    const hello = await call(client, 'sandbox_exec',
      { sandbox_id: sandbox, command: 'echo hello over http; exit 4' });
    assert.equal(hello.structuredContent.exit_code, 4);
    assert.equal(hello.structuredContent.stdout, 'hello over http\n');
    const denied = await client.callTool({ name: 'sandbox_exec',
      arguments: { sandbox_id: sandbox, command: `echo ${E2E_DENIED_WORD}` } }, undefined, LONG);
    assert.equal(denied.isError, true, 'a deny-listed command is a tool error');
    assert.match(text(denied), /deny rule/);

    // Progress comes on the request's own event stream; cancelling it
    // stops the command in the guest.
    const progress = await cancelAfterProgress(client, sandbox);
    assert.ok(progress[2].progress > progress[0].progress, `progress grows: ${JSON.stringify(progress)}`);
    const stopped = await ticksWhenStopped(client, sandbox);
    assert.ok(stopped >= 2, `the command ran before it was cancelled (${stopped} ticks)`);
    console.error(`long exec over http: ${progress.length} progress notifications, stopped at ${stopped} ticks`);

    // Audited like API calls, with the MCP client's name as the actor.
    const audit = readFileSync(path.join(gw.stateDir, 'audit.jsonl'), 'utf8').trim().split('\n')
      .map((l) => JSON.parse(l)).filter((a) => a.vm_id === sandbox);
    const ran = audit.find((a) => a.command === 'echo hello over http; exit 4');
    assert.equal(ran?.actor, 'admin/mcp:porthole-e2e-http', `the exec's audit line: ${JSON.stringify(ran)}`);
    assert.equal(ran.exit_code, 4);
    assert.ok(audit.some((a) => a.event === 'blocked' && a.actor === 'admin/mcp:porthole-e2e-http'),
              'the refused command is audited with the actor');

    await call(client, 'sandbox_delete', { sandbox_id: sandbox });
    sandbox = null;

    // A browser session's screenshot: a large image content in one answer.
    const started = await call(client, 'browser_start', { live: true });
    session = started.structuredContent.session_id;
    assert.match(started.structuredContent.cdp_url, /^http:\/\//);
    const shot = await call(client, 'browser_screenshot', { session_id: session });
    assert.equal(shot.content[0].type, 'image');
    assert.deepEqual(pngSize(Buffer.from(shot.content[0].data, 'base64')), { width: 1280, height: 720 });
    await call(client, 'browser_stop', { session_id: session });
    session = null;

    // ---- the transport's edges -------------------------------------------------
    const sid = transport.sessionId;
    const list = { jsonrpc: '2.0', id: 7, method: 'tools/list' };
    const ok = await post(gw, list, { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-06-18' });
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.text).id, 7);
    assert.equal((await post(gw, list)).status, 400, 'no session id');
    assert.equal((await post(gw, list, { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '1999-01-01' })).status,
                 400, 'an unsupported protocol version');
    assert.equal((await post(gw, '[' + JSON.stringify(list) + ']', { 'Mcp-Session-Id': sid })).status, 400, 'a batch');
    assert.equal((await post(gw, '{"jsonrpc": "2.0", "id": 1, ', { 'Mcp-Session-Id': sid })).status, 400, 'bad JSON');
    const note = await post(gw, { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'Mcp-Session-Id': sid });
    assert.equal(note.status, 202, 'a notification is accepted');
    const unauth = await fetch(new URL('/mcp', gw.url), { method: 'POST', body: JSON.stringify(list) });
    assert.equal(unauth.status, 401, 'no token');
    const get = await fetch(new URL('/mcp', gw.url), { headers: { Authorization: `Bearer ${gw.token}` } });
    assert.equal(get.status, 405, 'no server-opened stream');

    await transport.terminateSession();
    const gone = await post(gw, list, { 'Mcp-Session-Id': sid });
    assert.equal(gone.status, 404, 'an ended session');
  } finally {
    await client.close();
    if (session)
      await gw.deleteSession(session);
    if (sandbox)
      await gw.api('DELETE', `/v1/sandboxes/${sandbox}`, undefined, { expect: [200, 202, 204, 404], timeoutMs: 300_000 });
  }
});
