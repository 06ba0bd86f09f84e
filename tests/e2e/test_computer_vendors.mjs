// The vendors' computer-use formats verbatim: OpenAI's computer_call action
// objects and Anthropic's computer tool input (in the XGA space Anthropic's
// reference implementation scales a 1280x960 screen to), each replayed in
// exact wire shape through POST .../computer against a live test page,
// every effect read back over CDP: clicks of each button, double and triple
// clicks, held modifiers, a drag, typed text, key combinations, scrolling,
// a held key and the cursor position.
import assert from 'node:assert/strict';
import { e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { findColour, png, screenshot, viewportOrigin } from './lib/media.mjs';
import { pngSize } from './lib/png.mjs';
import { waitFor } from './lib/util.mjs';

const VIEWPORT = { width: 1280, height: 960 };
const XGA = { width: 1024, height: 768 };
const SCALE = VIEWPORT.width / XGA.width; // 1.25 both ways

const PAGE = `<!doctype html><html><head><title>vendors</title><style>
html,body{margin:0;background:#fff;font:24px sans-serif}
body{height:5000px}
#btn{position:fixed;left:40px;top:40px;width:240px;height:120px;border:0;padding:0;background:rgb(255,0,255)}
#inp{position:fixed;left:40px;top:220px;width:400px;height:50px;border:0;padding:0 8px;font:24px sans-serif;outline:none;background:rgb(0,255,255)}
#pad{position:fixed;left:560px;top:40px;width:400px;height:240px;background:rgb(255,255,0)}
</style></head><body>
<button id="btn"></button><input id="inp" autocomplete="off" spellcheck="false"><div id="pad"></div>
<script>
const log = window.log = { clicks: [], dbl: 0, ctx: 0, aux: 0, lastMove: null, keys: [], keyups: [], drags: [] };
const btn = document.getElementById('btn');
btn.addEventListener('click', (e) => log.clicks.push({ x: e.clientX, y: e.clientY, detail: e.detail,
  shift: e.shiftKey, ctrl: e.ctrlKey, trusted: e.isTrusted }));
btn.addEventListener('dblclick', () => { log.dbl++; });
btn.addEventListener('contextmenu', (e) => { e.preventDefault(); log.ctx++; });
btn.addEventListener('mousedown', (e) => { if (e.button === 1) e.preventDefault(); });
btn.addEventListener('auxclick', (e) => { if (e.button === 1) log.aux++; });
addEventListener('mousemove', (e) => { log.lastMove = [e.clientX, e.clientY]; });
addEventListener('keydown', (e) => log.keys.push({ key: e.key, ctrl: e.ctrlKey, shift: e.shiftKey, t: performance.now() }));
addEventListener('keyup', (e) => log.keyups.push({ key: e.key, t: performance.now() }));
const pad = document.getElementById('pad');
let cur = null;
pad.addEventListener('mousedown', (e) => { cur = { down: [e.clientX, e.clientY], moves: 0 }; e.preventDefault(); });
addEventListener('pointermove', (e) => { if (cur && (e.buttons & 1)) cur.moves++; });
addEventListener('mouseup', (e) => { if (cur) { cur.up = [e.clientX, e.clientY]; log.drags.push(cur); cur = null; } });
</script></body></html>`;

const near = (a, b, tol) => Math.abs(a - b) <= tol;

e2eTest('computer use: OpenAI and Anthropic actions verbatim, Anthropic\'s scaled to XGA',
        async ({ gw, pages, sessions }) => {
  const s = await sessions.create({ mode: 'live', viewport: VIEWPORT });
  const id = s.session_id;
  const { browser, page } = await connectPlaywright(s.cdp_url);
  const js = (fn, arg) => page.evaluate(fn, arg);
  const until = (fn, message, arg) =>
    waitFor(() => page.evaluate(fn, arg), { timeoutMs: 30_000, intervalMs: 200, message });
  // One action, as the vendor sends it; query says how the screen is scaled.
  const send = async (body, query = '') => {
    const r = await gw.api('POST', `/v1/browser/sessions/${id}/computer${query}`, body,
                           { expect: null, timeoutMs: 120_000 });
    if (r.status !== 200)
      throw new Error(`${JSON.stringify(body)}${query}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  try {
    await page.bringToFront();
    await page.goto(`${pages.guestUrl}/solid/white`, { timeout: 120_000 });
    await page.setContent(PAGE, { timeout: 120_000 });

    // Where the page sits on the screen, from a screenshot (as an agent sees it).
    const boxes = await waitFor(async () => {
      const img = png((await screenshot(gw, id)).png);
      const b = { btn: findColour(img, [255, 0, 255]), inp: findColour(img, [0, 255, 255]),
                  pad: findColour(img, [255, 255, 0]) };
      return Object.values(b).every((x) => x && x.w > 20) && b;
    }, { timeoutMs: 60_000, intervalMs: 500, message: 'the test page on the screen' });
    // The page's own idea of where its viewport is (the screenshot's boxes
    // are sampled every other pixel, so they agree within a pixel or two).
    const origin = await viewportOrigin(page);
    assert.ok(near(boxes.btn.x0, origin.x + 40, 3) && near(boxes.btn.y0, origin.y + 40, 3),
              `button at ${boxes.btn.x0},${boxes.btn.y0} on screen; the page says ${origin.x + 40},${origin.y + 40}`);
    const toPage = (x, y) => [x - origin.x, y - origin.y];
    const { btn, inp, pad } = boxes;
    console.error(`page at ${JSON.stringify(origin)} on the ${VIEWPORT.width}x${VIEWPORT.height} screen`);

    // ================= OpenAI: computer_call.action, screen pixels =================
    const shot = await send({ type: 'screenshot' });
    assert.deepEqual(pngSize(Buffer.from(shot.screenshot_base64, 'base64')), VIEWPORT);
    assert.deepEqual(shot.display, VIEWPORT);

    await send({ type: 'move', x: pad.x0 + 33, y: pad.y0 + 21 });
    await until((p) => JSON.stringify(window.log.lastMove) === JSON.stringify(p), 'OpenAI move',
                toPage(pad.x0 + 33, pad.y0 + 21)).catch(async (e) => {
      e.message += `; the page saw ${JSON.stringify(await js(() => window.log.lastMove))}`;
      throw e;
    });

    await send({ type: 'click', button: 'left', x: btn.cx, y: btn.cy });
    await until(() => window.log.clicks.length === 1, 'OpenAI click');
    const c1 = (await js(() => window.log.clicks))[0];
    assert.deepEqual([c1.x, c1.y], toPage(btn.cx, btn.cy));
    assert.equal(c1.trusted, true);
    await send({ type: 'double_click', x: btn.cx, y: btn.cy });
    await until(() => window.log.dbl === 1, 'OpenAI double_click');
    await send({ type: 'click', button: 'right', x: btn.cx, y: btn.cy });
    await until(() => window.log.ctx === 1, 'OpenAI right click');
    await send({ type: 'click', button: 'wheel', x: btn.cx, y: btn.cy });
    await until(() => window.log.aux === 1, 'OpenAI wheel (middle) click');
    // Held keys, and the whole computer_call item as the Responses API emits it.
    const n = await js(() => window.log.clicks.length);
    await send({ type: 'computer_call', id: 'cu_e2e', call_id: 'call_e2e', status: 'completed',
                 pending_safety_checks: [],
                 action: { type: 'click', button: 'left', x: btn.cx, y: btn.cy, keys: ['SHIFT'] } });
    await until((k) => window.log.clicks.length === k + 1, 'OpenAI click holding SHIFT', n);
    assert.equal((await js(() => window.log.clicks.at(-1))).shift, true);

    await send({ type: 'click', button: 'left', x: inp.cx, y: inp.cy });
    await until(() => document.activeElement?.id === 'inp', 'focus in the input');
    await send({ type: 'type', text: 'hello openai' });
    await until(() => document.getElementById('inp').value === 'hello openai', 'OpenAI type');
    await send({ type: 'keypress', keys: ['CTRL', 'A'] });
    await send({ type: 'keypress', keys: ['BACKSPACE'] });
    await until(() => document.getElementById('inp').value === '', 'OpenAI CTRL+A, BACKSPACE');
    assert.ok((await js(() => window.log.keys)).some((k) => k.key.toLowerCase() === 'a' && k.ctrl),
              `the page saw ctrl+a: ${JSON.stringify(await js(() => window.log.keys))}`);

    const p0 = { x: pad.x0 + 20, y: pad.y0 + 20 }, p1 = { x: pad.cx, y: pad.y1 - 30 },
      p2 = { x: pad.x1 - 20, y: pad.y0 + 40 };
    await send({ type: 'drag', path: [p0, p1, p2] });
    await until(() => window.log.drags.length === 1, 'OpenAI drag');
    const d1 = (await js(() => window.log.drags))[0];
    assert.deepEqual(d1.down, toPage(p0.x, p0.y));
    assert.deepEqual(d1.up, toPage(p2.x, p2.y));
    assert.ok(d1.moves >= 1, `moves with the button down (${d1.moves})`);

    const white = { x: Math.round(origin.x + 1100), y: Math.round(origin.y + 600) };
    await send({ type: 'scroll', x: white.x, y: white.y, scroll_x: 0, scroll_y: 400 });
    await until(() => window.scrollY > 0, 'OpenAI scroll down');
    const down = await js(() => window.scrollY);
    console.error(`OpenAI scroll_y 400 px scrolled the page ${down} px`);
    await send({ type: 'scroll', x: white.x, y: white.y, scroll_x: 0, scroll_y: -2000 });
    await until(() => window.scrollY < 5, 'OpenAI scroll back up');
    const waited = await send({ type: 'wait' });
    assert.equal(waited.action, 'wait');

    // ============ Anthropic: computer tool input, told the screen is XGA ============
    const q = '?display=auto';
    // Model coordinates of a screen point, and the screen point they land on.
    const model = (x, y) => [Math.round(x / SCALE), Math.round(y / SCALE)];
    const landed = ([x, y]) => toPage(Math.round(x * SCALE), Math.round(y * SCALE));
    const ashot = await send({ action: 'screenshot' }, q);
    assert.deepEqual(ashot.display, XGA, 'display=auto picks XGA for a 4:3 screen');
    assert.deepEqual(ashot.screen, VIEWPORT);
    assert.deepEqual(pngSize(Buffer.from(ashot.screenshot_base64, 'base64')), XGA);
    // The scaled screenshot shows the button where the scaled coordinates say.
    const small = png(Buffer.from(ashot.screenshot_base64, 'base64'));
    const sbtn = findColour(small, [255, 0, 255]);
    assert.ok(near(sbtn.cx, btn.cx / SCALE, 3) && near(sbtn.cy, btn.cy / SCALE, 3),
              `button at ${sbtn.cx},${sbtn.cy} in the XGA picture, ${btn.cx / SCALE},${btn.cy / SCALE} expected`);

    const m = model(pad.x0 + 50, pad.y0 + 60);
    const moved = await send({ action: 'mouse_move', coordinate: m }, q);
    assert.deepEqual(moved.cursor, { x: m[0], y: m[1] });
    await until((p) => window.log.lastMove && Math.abs(window.log.lastMove[0] - p[0]) <= 1 &&
                       Math.abs(window.log.lastMove[1] - p[1]) <= 1, 'Anthropic mouse_move', landed(m));
    const pos = await send({ action: 'cursor_position' }, q);
    assert.equal(pos.output, `X=${m[0]},Y=${m[1]}`, 'cursor_position in the model\'s space');

    const b = model(btn.cx, btn.cy);
    const before = await js(() => window.log.clicks.length);
    await send({ action: 'left_click', coordinate: b }, q);
    await until((k) => window.log.clicks.length === k + 1, 'Anthropic left_click', before);
    const ac = await js(() => window.log.clicks.at(-1));
    assert.ok(near(ac.x, landed(b)[0], 1) && near(ac.y, landed(b)[1], 1),
              `the click landed at page ${ac.x},${ac.y}; ${landed(b)} expected`);
    await send({ action: 'double_click', coordinate: b }, q);
    await until(() => window.log.dbl === 2, 'Anthropic double_click');
    await send({ action: 'triple_click', coordinate: b }, q);
    await until(() => window.log.clicks.some((c) => c.detail === 3), 'Anthropic triple_click (detail 3)');
    await send({ action: 'right_click', coordinate: b }, q);
    await until(() => window.log.ctx === 2, 'Anthropic right_click');
    await send({ action: 'middle_click', coordinate: b }, q);
    await until(() => window.log.aux === 2, 'Anthropic middle_click');
    const k0 = await js(() => window.log.clicks.length);
    await send({ action: 'left_click', coordinate: b, text: 'ctrl' }, q);
    await until((k) => window.log.clicks.length === k + 1, 'Anthropic left_click holding ctrl', k0);
    assert.equal((await js(() => window.log.clicks.at(-1))).ctrl, true);
    // Without a coordinate: where the pointer is.
    const k1 = await js(() => window.log.clicks.length);
    await send({ action: 'left_click' }, q);
    await until((k) => window.log.clicks.length === k + 1, 'Anthropic left_click where the pointer is', k1);

    await send({ action: 'left_click', coordinate: model(inp.cx, inp.cy) }, q);
    await until(() => document.activeElement?.id === 'inp', 'focus in the input (Anthropic)');
    await send({ action: 'type', text: 'Hello, Claude!' }, q);
    await until(() => document.getElementById('inp').value === 'Hello, Claude!', 'Anthropic type');
    await send({ action: 'key', text: 'ctrl+a BackSpace' }, q);
    await until(() => document.getElementById('inp').value === '', 'Anthropic key "ctrl+a BackSpace"');
    await send({ action: 'key', text: 'shift+a' }, q);
    await until(() => document.getElementById('inp').value === 'A', 'Anthropic key shift+a')
      .catch(async (e) => {
        e.message += `; value ${JSON.stringify(await js(() => document.getElementById('inp').value))}`;
        throw e;
      });
    await send({ action: 'key', text: 'Return' }, q);
    await until(() => window.log.keys.some((k) => k.key === 'Enter'), 'Anthropic key Return');
    await send({ action: 'hold_key', text: 'shift', duration: 1 }, q);
    const held = await until(() => {
      const d = window.log.keys.findLast((k) => k.key === 'Shift');
      const u = window.log.keyups.findLast((k) => k.key === 'Shift');
      return d && u && u.t > d.t && (u.t - d.t);
    }, 'Anthropic hold_key shift');
    assert.ok(held >= 800, `shift held for ${held} ms (1 s asked)`);

    const from = model(pad.x0 + 30, pad.y0 + 30), to = model(pad.x1 - 30, pad.y1 - 30);
    await send({ action: 'left_click_drag', start_coordinate: from, coordinate: to }, q);
    await until(() => window.log.drags.length === 2, 'Anthropic left_click_drag');
    const d2 = (await js(() => window.log.drags))[1];
    assert.ok(near(d2.down[0], landed(from)[0], 1) && near(d2.down[1], landed(from)[1], 1), `drag from ${d2.down}`);
    assert.ok(near(d2.up[0], landed(to)[0], 1) && near(d2.up[1], landed(to)[1], 1), `drag to ${d2.up}`);
    // A drag by hand: down, move, up.
    await send({ action: 'mouse_move', coordinate: from }, q);
    await send({ action: 'left_mouse_down' }, q);
    await send({ action: 'mouse_move', coordinate: model(pad.cx, pad.cy) }, q);
    await send({ action: 'mouse_move', coordinate: to }, q);
    await send({ action: 'left_mouse_up' }, q);
    await until(() => window.log.drags.length === 3, 'Anthropic left_mouse_down / up');
    const d3 = (await js(() => window.log.drags))[2];
    assert.ok(d3.moves >= 1 && near(d3.up[0], landed(to)[0], 1), `the held drag: ${JSON.stringify(d3)}`);

    const w = model(white.x, white.y);
    await send({ action: 'scroll', coordinate: w, scroll_direction: 'down', scroll_amount: 5 }, q);
    await until(() => window.scrollY > 0, 'Anthropic scroll down');
    await send({ action: 'scroll', coordinate: w, scroll_direction: 'up', scroll_amount: 15 }, q);
    await until(() => window.scrollY < 5, 'Anthropic scroll up');
    const aw = await send({ action: 'wait', duration: 0.5 }, q);
    assert.equal(aw.action, 'wait');

    // Bad input: 400 naming the field, in the model's space.
    const off = await gw.api('POST', `/v1/browser/sessions/${id}/computer${q}`,
                             { action: 'left_click', coordinate: [1100, 10] }, { expect: null });
    assert.equal(off.status, 400);
    assert.match(off.body.error.message, /coordinate = \(1100, 10\) is outside the 1024x768 display/);
    const badDir = await gw.api('POST', `/v1/browser/sessions/${id}/computer${q}`,
                                { action: 'scroll', coordinate: [1, 1], scroll_direction: 'sideways', scroll_amount: 1 },
                                { expect: null });
    assert.equal(badDir.status, 400);
    assert.match(badDir.body.error.message, /scroll_direction/);
    const badOpenAI = await gw.api('POST', `/v1/browser/sessions/${id}/computer`,
                                   { type: 'computer_call', action: { type: 'drag', path: [{ x: 1, y: 1 }, { x: 2 }] } },
                                   { expect: null });
    assert.equal(badOpenAI.status, 400);
    assert.match(badOpenAI.body.error.message, /action\.path\[1\]\.x and action\.path\[1\]\.y/);
  } finally {
    await disconnect(browser);
  }
});
