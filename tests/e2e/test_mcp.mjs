// `porthole mcp` driven by the official MCP TypeScript SDK client over stdio,
// against the test gateway: tools/list against the schemas, a sandbox with
// exec (and a deny-listed command refused as a tool error), files, a long
// exec with progress and then a cancellation that stops it in the guest, a
// browser session with navigate, evaluate, a PNG screenshot and a
// computer-use click checked through CDP.
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { e2eTest } from './lib/e2e.mjs';
import { LONG, call, cancelAfterProgress, text, ticksWhenStopped } from './lib/mcp.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { E2E_DENIED_WORD } from './lib/gateway.mjs';
import { pngSize } from './lib/png.mjs';
import { waitFor } from './lib/util.mjs';

const TOOLS = ['sandbox_create', 'sandbox_exec', 'sandbox_read_file', 'sandbox_write_file',
               'sandbox_list', 'sandbox_delete', 'browser_start', 'browser_stop', 'browser_list',
               'browser_screenshot', 'browser_computer', 'browser_navigate', 'browser_evaluate'];



e2eTest('porthole mcp: tools over stdio with the MCP SDK client', async ({ gw, pages }) => {
  const transport = new StdioClientTransport({
    command: process.env.PORTHOLE_BIN,
    args: ['mcp'],
    env: { ...process.env, PORTHOLE_URL: gw.url, PORTHOLE_TOKEN: gw.token },
    stderr: 'inherit',
  });
  const client = new Client({ name: 'porthole-e2e', version: '1.0.0' });
  await client.connect(transport);
  let sandbox = null, session = null, browser = null;
  try {
    assert.equal(client.getServerVersion().name, 'porthole');
    assert.ok(client.getServerCapabilities().tools, 'the server offers tools');

    // ---- tools/list against the schemas ------------------------------------------
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), [...TOOLS].sort());
    for (const t of tools) {
      assert.ok(t.description.length > 40, `${t.name} has a description a model can act on`);
      assert.equal(t.inputSchema.type, 'object', `${t.name}: an object schema`);
      for (const [prop, s] of Object.entries(t.inputSchema.properties ?? {}))
        assert.ok(s.description?.length > 10, `${t.name}.${prop} is described`);
      for (const req of t.inputSchema.required ?? [])
        assert.ok(t.inputSchema.properties[req], `${t.name}: required ${req} is a property`);
    }
    const exec = tools.find((t) => t.name === 'sandbox_exec');
    assert.deepEqual(exec.inputSchema.required, ['sandbox_id', 'command']);

    // ---- sandbox: create, exec, deny list, files ----------------------------------
    const created = await call(client, 'sandbox_create', {});
    sandbox = created.structuredContent.id;
    assert.match(sandbox, /^sb-/);
    const hello = await call(client, 'sandbox_exec', { sandbox_id: sandbox, command: 'echo hello from mcp; exit 3' });
    assert.equal(hello.structuredContent.exit_code, 3);
    assert.equal(hello.structuredContent.stdout, 'hello from mcp\n');
    assert.match(text(hello), /exit code 3/);

    const denied = await client.callTool({ name: 'sandbox_exec',
      arguments: { sandbox_id: sandbox, command: `echo ${E2E_DENIED_WORD}` } }, undefined, LONG);
    assert.equal(denied.isError, true, 'a deny-listed command is a tool error');
    assert.match(text(denied), /deny rule/);

    await call(client, 'sandbox_write_file', { sandbox_id: sandbox, path: '/tmp/mcp.txt', content: 'ünïcode\n' });
    const read = await call(client, 'sandbox_read_file', { sandbox_id: sandbox, path: '/tmp/mcp.txt' });
    assert.equal(read.content[0].text, 'ünïcode\n');
    const listed = await call(client, 'sandbox_list', {});
    assert.ok(listed.structuredContent.sandboxes.some((s) => s.id === sandbox));
    const bad = await client.callTool({ name: 'sandbox_exec', arguments: { sandbox_id: sandbox } });
    assert.equal(bad.isError, true);
    assert.match(text(bad), /command must be/);

    // ---- a long exec: progress, then cancellation that stops it in the guest --------
    const progress = await cancelAfterProgress(client, sandbox);
    assert.ok(progress[1].progress > progress[0].progress, `progress grows: ${JSON.stringify(progress)}`);
    assert.equal(progress[0].total, 600);
    assert.match(progress[0].message, /running/);
    const stopped = await ticksWhenStopped(client, sandbox);
    assert.ok(stopped >= 2, `the command ran before it was cancelled (${stopped} ticks)`);
    console.error(`long exec: ${progress.length} progress notifications, stopped at ${stopped} ticks`);

    // ---- browser: start, navigate, evaluate, screenshot, a click -------------------
    const started = await call(client, 'browser_start', { live: true });
    session = started.structuredContent.session_id;
    const cdpUrl = started.structuredContent.cdp_url;
    assert.match(session, /^bs-/);
    assert.match(text(started), new RegExp(cdpUrl.replace(/[.?*+^$()[\]{}|\\/]/g, '\\$&')));

    const nav = await call(client, 'browser_navigate', { session_id: session, url: `${pages.guestUrl}/clicks` });
    assert.equal(nav.structuredContent.url, `${pages.guestUrl}/clicks`);
    assert.equal(nav.structuredContent.title, 'clicks');
    const ev = await call(client, 'browser_evaluate', { session_id: session, expression: 'document.title + ":" + (6 * 7)' });
    assert.equal(ev.structuredContent.value, 'clicks:42');
    const thrown = await client.callTool({ name: 'browser_evaluate',
      arguments: { session_id: session, expression: 'null.x' } });
    assert.equal(thrown.isError, true);
    assert.match(text(thrown), /TypeError/);

    const shot = await call(client, 'browser_screenshot', { session_id: session });
    assert.equal(shot.content[0].type, 'image');
    assert.equal(shot.content[0].mimeType, 'image/png');
    assert.deepEqual(pngSize(Buffer.from(shot.content[0].data, 'base64')), { width: 1280, height: 720 });

    ({ browser } = await connectPlaywright(cdpUrl));
    const page = browser.contexts()[0].pages().find((p) => p.url().endsWith('/clicks'));
    assert.ok(page, 'the navigated page, seen through CDP');
    assert.equal(await page.evaluate(() => window.clicks), 0);
    const clicked = await call(client, 'browser_computer',
      { session_id: session, action: 'left_click', coordinate: [640, 500], screenshot: true });
    assert.equal(clicked.structuredContent.action, 'left_click');
    assert.deepEqual(clicked.structuredContent.cursor, { x: 640, y: 500 });
    const img = clicked.content.find((c) => c.type === 'image');
    assert.deepEqual(pngSize(Buffer.from(img.data, 'base64')), { width: 1280, height: 720 });
    await waitFor(() => page.evaluate(() => window.clicks === 1), { timeoutMs: 30_000, message: 'the click, seen through CDP' });
    // OpenAI's action object through the same tool.
    await call(client, 'browser_computer',
      { session_id: session, action: { type: 'click', button: 'left', x: 600, y: 450 } });
    await waitFor(() => page.evaluate(() => window.clicks === 2), { timeoutMs: 30_000, message: 'the OpenAI click' });

    const sessions = await call(client, 'browser_list', {});
    assert.ok(sessions.structuredContent.sessions.some((s) => s.session_id === session));
    await disconnect(browser);
    browser = null;
    await call(client, 'browser_stop', { session_id: session });
    session = null;
    await call(client, 'sandbox_delete', { sandbox_id: sandbox });
    sandbox = null;
  } finally {
    await disconnect(browser);
    await client.close();
    if (session)
      await gw.deleteSession(session);
    if (sandbox)
      await gw.api('DELETE', `/v1/sandboxes/${sandbox}`, undefined, { expect: [200, 202, 204, 404], timeoutMs: 300_000 });
  }
});
