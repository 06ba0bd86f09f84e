// Malformed RFB client streams on a live session's watch-only live view
// (gateway/rfb_filter.c in front of QEMU's VNC server): a seeded set of
// bad protocol versions, security types, ClientInits, unknown and cut
// messages, absurd sizes, input a viewer may not send, and random bytes.
// Each must be refused (the WebSocket closes cleanly: 1008 from the
// filter, 1009 for an oversized message, 1000 "upstream closed" when QEMU
// itself hangs up, or a bare close), or filtered (the connection stays up
// and a FramebufferUpdateRequest still gets an answer); a cut message may
// also just wait for its rest. Afterwards the session keeps working: a
// fresh viewer gets a framebuffer update, a viewer connected all along is
// still there (no ClientInit pushed it out), and a CDP round trip answers.
//
// PORTHOLE_MALFORMED_SEED picks another seed for the random parts.
import assert from 'node:assert/strict';
import { e2eTest } from './lib/e2e.mjs';
import { CdpClient, openWebSocket } from './lib/cdp_raw.mjs';
import { RfbClient, vncUrl } from './lib/rfb_client.mjs';
import { prng, sleep } from './lib/util.mjs';

const SEED = Number(process.env.PORTHOLE_MALFORMED_SEED || 20240611);
const CLOSE_WITHIN_MS = 5000;  // a refusal
const ANSWER_WITHIN_MS = 10_000; // an update after a filtered message
const WAIT_MS = 1500;          // a cut message: nothing breaks meanwhile
// Server-to-client message types (RFC 6143 7.6 and QEMU's extensions).
const SERVER_TYPES = new Set([0, 1, 2, 3, 150, 248, 250, 255]);

const u8 = (...b) => Buffer.from(b);
const u16 = (v) => { const b = Buffer.alloc(2); b.writeUInt16BE(v & 0xffff); return b; };
const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return b; };
const cat = (...parts) => Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));

function fbur(incremental, x, y, w, h) {
  return cat(u8(3, incremental), u16(x), u16(y), u16(w), u16(h));
}

function pixelFormat({ bpp = 32, depth = 24, bigEndian = 0, trueColour = 1, max = [255, 255, 255],
                       shift = [16, 8, 0] } = {}) {
  return cat(u8(0, 0, 0, 0, bpp, depth, bigEndian, trueColour), u16(max[0]), u16(max[1]),
             u16(max[2]), u8(shift[0], shift[1], shift[2], 0, 0, 0));
}

/**
 * The cases: stage is how far the handshake goes first ("version":
 * nothing; "security": our version sent; "init": security accepted;
 * "messages": all of it), msgs the WebSocket messages sent then, expect
 * "refuse", "filter", "any" (QEMU decides: refused or served) or "wait"
 * (a message cut short).
 */
function rfbCases(rand) {
  const cases = [];
  const add = (name, stage, msgs, expect) => cases.push({ name, stage, msgs, expect });
  const bytes = (n) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
  const pick = (xs) => xs[Math.floor(rand() * xs.length)];

  // Protocol versions.
  for (const v of ['RFB 004.000\n', 'RFX 003.008\n', 'rfb 003.008\n', 'RFB 003.0a8\n',
                   'RFB 003.008\r', 'RFB 003-008\n', 'RFB 03.0088\n', 'RFB 003.008 ',
                   ' RFB 003.008', 'GET / HTTP/1.1', '\0'.repeat(12), 'RFB 003.008\0',
                   'RFB 0x3.008\n', 'RFB 999.999\n', 'RFB 003.\n\n\n\n', '\xff'.repeat(12)])
    add(`version ${JSON.stringify(v)}`, 'version', [Buffer.from(v, 'latin1')], 'refuse');
  for (let i = 0; i < 4; i++)
    add(`version random ${i}`, 'version', [bytes(12)], 'refuse');
  add('version split, then bad', 'version', [Buffer.from('RFB 00'), Buffer.from('3.00x\n')], 'refuse');
  add('version short', 'version', [Buffer.from('RFB 003.00')], 'wait');
  add('version then a bad security type', 'version',
      [Buffer.from('RFB 003.008\n\x07', 'latin1')], 'refuse');

  // Security types: only None (1) is offered, VNC authentication (2) the
  // one other the filter knows the client's half of.
  for (const t of [0, 3, 4, 5, 16, 17, 18, 19, 20, 30, 113, 129, 254, 255])
    add(`security type ${t}`, 'security', [u8(t)], 'refuse');
  add('security type 2 (not offered)', 'security', [cat(u8(2), bytes(16))], 'any');
  add('security type 2, response cut', 'security', [cat(u8(2), bytes(5))], 'wait');

  // ClientInit: whatever the flag, the filter makes it shared; QEMU then
  // sends its ServerInit (read by the "filter" check below).
  for (const flag of [0, 2, 127, 255])
    add(`ClientInit ${flag}`, 'init', [u8(flag)], 'filter');

  // Message types nobody registered.
  for (const t of [1, 7, 8, 9, 10, 100, 127, 128, 149, 151, 200, 247, 249, 252, 253, 254])
    add(`message type ${t}`, 'messages', [cat(u8(t), bytes(16))], 'refuse');
  for (const sub of [1, 2, 3, 255])
    add(`QEMU message subtype ${sub}`, 'messages', [cat(u8(255, sub), bytes(10))], 'refuse');
  add('unknown type after a good message', 'messages', [cat(fbur(1, 0, 0, 8, 8), u8(42))],
      'refuse');
  add('unknown type in a later frame', 'messages', [fbur(1, 0, 0, 8, 8), u8(99, 0, 0)], 'refuse');

  // SetEncodings: counts that promise more than comes, whole odd lists.
  for (const count of [65535, 40000, 1000, 2])
    add(`SetEncodings count ${count}, cut`, 'messages', [cat(u8(2, 0), u16(count), bytes(8))],
        'wait');
  add('SetEncodings count 0', 'messages', [cat(u8(2, 0), u16(0))], 'filter');
  add('SetEncodings 65535 random', 'messages', [cat(u8(2, 0), u16(65535), bytes(4 * 65535))],
      'any');
  add('SetEncodings pseudo-encodings', 'messages',
      [cat(u8(2, 0), u16(8), ...[-223, -239, -257, -258, -259, -261, -308, -314].map((e) => {
        const b = Buffer.alloc(4); b.writeInt32BE(e); return b;
      }))], 'any');
  add('SetEncodings split over frames', 'messages', [u8(2, 0), u8(0, 1), u32(0)], 'filter');

  // FramebufferUpdateRequest with absurd geometry (QEMU clips it). A full
  // request for an empty rectangle or one wholly off the screen leaves
  // QEMU's updates for that connection stalled (later requests on it go
  // unanswered): only the sender's own view suffers, so it may wait.
  for (const [inc, x, y, w, h] of [[0, 65535, 65535, 65535, 65535], [0, 0, 0, 65535, 65535],
    [1, 65000, 0, 1000, 10], [0, 0, 0, 0, 0], [2, 0, 0, 16, 16], [255, 1, 1, 1, 1],
    [0, 5000, 5000, 1, 1], [1, 0, 65535, 1, 2]]) {
    const nowhere = inc === 0 && (w === 0 || h === 0 || x >= 4096 || y >= 4096);
    add(`FramebufferUpdateRequest ${inc} ${x},${y} ${w}x${h}`, 'messages', [fbur(inc, x, y, w, h)],
        nowhere ? 'wait' : 'any');
  }
  add('FramebufferUpdateRequest cut', 'messages', [fbur(0, 0, 0, 16, 16).subarray(0, 6)], 'wait');
  add('EnableContinuousUpdates absurd', 'messages',
      [cat(u8(150, 1), u16(65535), u16(65535), u16(65535), u16(65535))], 'any');

  // Input, which a watch-only viewer may not send: dropped.
  for (let i = 0; i < 4; i++)
    add(`KeyEvent x${1 + i * 20}`, 'messages', [cat(...Array.from({ length: 1 + i * 20 }, () =>
      cat(u8(4, Math.floor(rand() * 2), 0, 0), u32(pick([0xff0d, 0x61, 0xffe3, 0xffffffff])))))],
    'filter');
  for (let i = 0; i < 4; i++)
    add(`PointerEvent x${1 + i * 30}`, 'messages', [cat(...Array.from({ length: 1 + i * 30 }, () =>
      cat(u8(5, Math.floor(rand() * 256)), u16(Math.floor(rand() * 65536)),
          u16(Math.floor(rand() * 65536)))))], 'filter');
  add('QEMU extended key event', 'messages', [cat(u8(255, 0), u16(1), u32(0x61), u32(30))],
      'filter');
  add('xvp reboot', 'messages', [u8(250, 0, 1, 3)], 'filter');
  add('SetDesktopSize 255 screens', 'messages', [cat(u8(251, 0), u16(7680), u16(4320),
                                                     u8(255, 0), bytes(16 * 255))], 'filter');
  add('SetDesktopSize cut', 'messages', [cat(u8(251, 0), u16(100), u16(100), u8(4, 0), bytes(3))],
      'wait');

  // ClientCutText: over the bound refused, within it dropped (input).
  // (a length with the top bit set is extended clipboard's, negated)
  for (const n of [0x7fffffff, 0x80000000, 0x80000001, 0x40000000, 1024 * 1024 + 1, 0xffefffff])
    add(`ClientCutText length ${n}`, 'messages', [cat(u8(6, 0, 0, 0), u32(n), bytes(16))],
        'refuse');
  add('ClientCutText 64 KiB', 'messages', [cat(u8(6, 0, 0, 0), u32(65536), bytes(65536))],
      'filter');
  add('ClientCutText extended, small', 'messages', [cat(u8(6, 0, 0, 0), u32(-8), bytes(8))],
      'filter');
  add('ClientCutText length 1 MiB, cut', 'messages', [cat(u8(6, 0, 0, 0), u32(1 << 20),
                                                          bytes(100))], 'wait');

  // ClientFence: a payload over 64 bytes refused.
  for (const n of [65, 100, 255])
    add(`ClientFence payload ${n}`, 'messages', [cat(u8(248, 0, 0, 0), u32(0), u8(n), bytes(n))],
        'refuse');
  add('ClientFence payload 64', 'messages', [cat(u8(248, 0, 0, 0), u32(0), u8(64), bytes(64))],
      'any');

  // SetPixelFormat that makes no sense: QEMU hangs up or copes.
  for (const pf of [{ bpp: 0 }, { bpp: 3 }, { bpp: 7 }, { bpp: 64 }, { depth: 0 },
    { trueColour: 0 }, { max: [0, 0, 0] }, { shift: [255, 255, 255] }, { bigEndian: 255 }])
    add(`SetPixelFormat ${JSON.stringify(pf)}`, 'messages', [pixelFormat(pf)], 'any');

  // Bytes in other shapes: a text frame, a message over the proxy's 2 MiB,
  // and random streams.
  add('text frame', 'messages', [fbur(0, 0, 0, 8, 8).toString('latin1')], 'any');
  add('message over 2 MiB', 'messages', [cat(u8(6, 0, 0, 0), u32(1 << 20), bytes(3 << 20))],
      'refuse');
  for (let i = 0; i < 10; i++) {
    const junk = bytes(pick([1, 3, 17, 256, 4096]));
    add(`random ${i} (${junk.length} bytes, type ${junk[0]})`, 'messages', [junk],
        [0, 2, 3, 4, 5, 6, 150, 248, 250, 251, 255].includes(junk[0]) ? 'wait' : 'refuse');
  }
  return cases;
}

/** A refusal the test accepts: the filter's, lws's, QEMU's, or a bare close. */
function cleanClose(c) {
  if ([1002, 1003, 1007, 1008, 1009].includes(c.code))
    return true;
  if (c.code === 1000 && c.reason === 'upstream closed')
    return true;
  return c.code === 1005 || c.code === 1006; // no status, or no close frame at all
}

/** A live-view socket; waits while the session has no room for one. */
async function openView(url) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return new RfbClient(await openWebSocket(url, { protocols: ['binary'] }));
    } catch (e) {
      if (e.status !== 429 || Date.now() > deadline)
        throw e;
      await sleep(200);
    }
  }
}

/** Whether the server still answers an update request with RFB. */
async function answers(c) {
  const had = c.buf.length;
  c.requestUpdate({ x: 0, y: 0, w: 16, h: 16 });
  try {
    const first = had ? c.buf[0] : (await c.read(1, ANSWER_WITHIN_MS))[0];
    return SERVER_TYPES.has(first) ? null : `answered with message type ${first}`;
  } catch (e) {
    return e.message;
  }
}

const closeName = (c) => `closed ${c.code}${c.reason ? ` "${c.reason}"` : ''}`;

/**
 * Runs case k on a fresh connection: {result, problem}, result what
 * happened ("closed 1008 ...", "served", "waiting"), problem null when
 * that is what k may get.
 */
async function runCase(url, k) {
  const c = await openView(url);
  const ended = (problem) => ({ result: c.closed ? closeName(c.closed) : 'open', problem });
  try {
    if (k.stage !== 'version')
      await c.handshake(k.stage);
    else
      await c.read(12); // the server's version comes first
    if (k.stage === 'messages')
      c.setEncodings([0]);
    for (const m of k.msgs)
      c.ws.send(m);
    if (k.expect === 'wait') {
      const closed = await c.closedWithin(WAIT_MS);
      if (!closed)
        return { result: 'waiting', problem: null };
      return ended(cleanClose(closed) ? null : 'not a clean close');
    }
    const closed = await c.closedWithin(k.expect === 'refuse' ? CLOSE_WITHIN_MS : 300);
    if (k.expect === 'refuse')
      return ended(!closed ? `still open after ${CLOSE_WITHIN_MS} ms`
        : cleanClose(closed) ? null : 'not a clean close');
    if (closed)
      return ended(k.expect === 'any' && cleanClose(closed) ? null : 'want it served');
    if (k.stage === 'init') { // the ServerInit comes first
      const init = await c.read(24, ANSWER_WITHIN_MS);
      await c.read(init.readUInt32BE(20), ANSWER_WITHIN_MS);
    }
    const problem = await answers(c);
    if (!problem)
      return { result: 'served', problem: null };
    // QEMU may hang up on what the filter let through.
    return ended(k.expect === 'any' && c.closed && cleanClose(c.closed) ? null : problem);
  } catch (e) {
    return ended(e.message);
  } finally {
    c.ws.terminate();
  }
}

e2eTest('malformed RFB streams are refused or filtered, and the session lives on',
        async ({ gw, sessions }) => {
  const s = await sessions.create({ mode: 'live', viewport: { width: 1280, height: 720 } });
  const url = vncUrl(s.live_url);
  // A viewer that stays connected throughout: no exclusive ClientInit may
  // push it out.
  const witness = await RfbClient.connect(url);

  const cases = rfbCases(prng(SEED));
  assert.ok(cases.length >= 100, `${cases.length} cases`);
  const counts = new Map();
  const bad = [];
  for (const [i, k] of cases.entries()) {
    const { result, problem } = await runCase(url, k);
    const key = `${k.expect}: ${result}`;
    counts.set(key, (counts.get(key) || 0) + 1);
    if (problem)
      bad.push(`${k.name} [${k.expect}]: ${result}: ${problem}`);
    if ((i + 1) % 25 === 0)
      assert.equal((await gw.getSession(s.session_id)).status, 'ready', `after case ${k.name}`);
  }
  console.error(`rfb: ${cases.length} cases (seed ${SEED}):\n  ` +
                [...counts].sort().map(([e, n]) => `${e}: ${n}`).join('\n  '));
  assert.deepEqual(bad, [], `misbehaved:\n${bad.join('\n')}`);

  // The session is still whole: the witness is connected, a new viewer
  // gets a framebuffer update, and CDP answers.
  assert.equal(witness.closed, null, 'the viewer connected throughout was pushed out');
  witness.close();
  const fresh = await openView(url);
  try {
    await fresh.handshake();
    fresh.setEncodings([0]);
    fresh.requestUpdate();
    const head = await fresh.read(4, 30_000);
    assert.equal(head[0], 0, 'a FramebufferUpdate');
    assert.ok(head.readUInt16BE(2) >= 1, 'with a rectangle');
    const rect = await fresh.read(12, 30_000);
    assert.ok(rect.readUInt16BE(4) > 0 && rect.readUInt16BE(6) > 0,
              `a rectangle of ${rect.readUInt16BE(4)}x${rect.readUInt16BE(6)}`);
  } finally {
    fresh.ws.terminate();
  }
  const cdp = await CdpClient.connect(s.cdp_ws_url);
  try {
    assert.match((await cdp.send('Browser.getVersion')).product, /Chrom/);
  } finally {
    cdp.close();
  }
  assert.equal((await gw.getSession(s.session_id)).status, 'ready');
});
