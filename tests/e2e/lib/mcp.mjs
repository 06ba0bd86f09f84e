// What the MCP tests share: tool calls that must succeed, their text, and
// the check that a cancelled command really stopped in the guest.
import assert from 'node:assert/strict';
import { sleep, waitFor } from './util.mjs';

export const LONG = { timeout: 600_000 };

/** The text parts of a tool result, joined. */
export const text = (r) => r.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

/** A tools/call that must not be a tool error. */
export async function call(client, name, args, opts = LONG) {
  const r = await client.callTool({ name, arguments: args }, undefined, opts);
  if (r.isError)
    throw new Error(`${name} ${JSON.stringify(args).slice(0, 200)}: ${text(r)}`);
  return r;
}

/**
 * Starts a long sandbox_exec (a tick a second into /tmp/ticks), waits for
 * three progress notifications, cancels it (the call must then fail) and
 * returns the notifications.
 */
export async function cancelAfterProgress(client, sandbox) {
  const progress = [];
  const abort = new AbortController();
  const long = client.callTool({ name: 'sandbox_exec', arguments: {
    sandbox_id: sandbox, timeout_s: 600,
    command: 'rm -f /tmp/ticks; for i in $(seq 1 300); do echo $i >> /tmp/ticks; sleep 1; done' } },
  undefined, { ...LONG, signal: abort.signal, onprogress: (p) => progress.push(p) });
  await waitFor(() => progress.length >= 3, { timeoutMs: 60_000, message: 'three progress notifications' });
  abort.abort('enough');
  await assert.rejects(long, (e) => /abort|enough|cancel/i.test(String(e?.message ?? e)));
  return progress;
}

/**
 * After a cancellation: waits until /tmp/ticks stands still (the kill runs
 * after the cancellation) and returns how many ticks it got.
 */
export async function ticksWhenStopped(client, sandbox) {
  const count = async () => Number((await call(client, 'sandbox_exec',
    { sandbox_id: sandbox, command: 'wc -l < /tmp/ticks' })).structuredContent.stdout.trim());
  return waitFor(async () => {
    const a = await count();
    await sleep(3000);
    const b = await count();
    return a === b && a;
  }, { timeoutMs: 60_000, intervalMs: 500, message: 'the cancelled command to stop in the guest' });
}
