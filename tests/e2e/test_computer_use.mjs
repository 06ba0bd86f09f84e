// Computer-use actions end to end: a page with a button, two text inputs and
// a drag pad, each a colour of its own; the test finds them in the gateway's
// desktop screenshot (the way an agent does), acts on them through
// POST .../computer, and reads what the page saw over CDP. The page's own
// idea of where its viewport sits on the screen (window geometry) must agree
// with the screenshot, and with where a `move` lands in page coordinates.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { artifactsDir, e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { act, computer, findColour, png, screenshot, viewportOrigin } from './lib/media.mjs';
import { pngSize } from './lib/png.mjs';
import { waitFor } from './lib/util.mjs';

const VIEWPORT = { width: 1280, height: 720 };
const MAGENTA = [255, 0, 255];   // the button
const CYAN = [0, 255, 255];      // the first input
const ORANGE = [255, 128, 0];    // the second input
const YELLOW = [255, 255, 0];    // the drag pad

const PAGE = `<!doctype html><html><head><title>computer use</title><style>
html,body{margin:0;background:#fff;font:24px sans-serif}
body{height:4000px}
#btn{position:fixed;left:40px;top:40px;width:240px;height:120px;border:0;padding:0;background:rgb(255,0,255)}
#count{position:fixed;left:320px;top:40px;font-size:72px;line-height:120px}
input{position:fixed;left:40px;width:400px;height:50px;border:0;padding:0 8px;font:24px sans-serif;outline:none;color:#000}
#inp{top:220px;background:rgb(0,255,255)}
#inp2{top:300px;background:rgb(255,128,0)}
#pad{position:fixed;left:560px;top:40px;width:400px;height:240px;background:rgb(255,255,0)}
</style></head><body>
<button id="btn"></button><div id="count">0</div>
<input id="inp" autocomplete="off" spellcheck="false"><input id="inp2" autocomplete="off" spellcheck="false">
<div id="pad"></div>
<script>
const log = window.log = { clicks: 0, dbl: 0, ctx: 0, ctxButton: null, lastClick: null, lastMove: null,
                           keys: [], drag: { down: null, up: null, moves: 0 } };
const btn = document.getElementById('btn'), count = document.getElementById('count');
btn.addEventListener('click', (e) => {
  log.clicks++;
  count.textContent = String(log.clicks);
  log.lastClick = { x: e.clientX, y: e.clientY, trusted: e.isTrusted, detail: e.detail };
});
btn.addEventListener('dblclick', () => { log.dbl++; });
btn.addEventListener('contextmenu', (e) => { e.preventDefault(); log.ctx++; log.ctxButton = e.button; });
addEventListener('mousemove', (e) => { log.lastMove = [e.clientX, e.clientY]; });
addEventListener('keydown', (e) => {
  log.keys.push((e.ctrlKey ? 'C-' : '') + (e.shiftKey ? 'S-' : '') + e.key);
});
const pad = document.getElementById('pad');
pad.addEventListener('mousedown', (e) => { log.drag.down = [e.clientX, e.clientY]; e.preventDefault(); });
addEventListener('pointermove', (e) => {
  if (log.drag.down && !log.drag.up && (e.buttons & 1)) {
    log.drag.moves++;
    log.drag.raw = (log.drag.raw || 0) + (e.getCoalescedEvents ? e.getCoalescedEvents().length : 1);
  }
});
addEventListener('mouseup', (e) => { if (log.drag.down && !log.drag.up) log.drag.up = [e.clientX, e.clientY]; });
</script></body></html>`;

const near = (a, b, tol) => Math.abs(a - b) <= tol;

e2eTest('computer use: click, type, key combos, double/right click, drag, scroll; bad actions 400',
        async ({ gw, pages, sessions }) => {
  const s = await sessions.create({ mode: 'live', viewport: VIEWPORT });
  const id = s.session_id;
  const { browser, page } = await connectPlaywright(s.cdp_url);
  const js = (fn, arg) => page.evaluate(fn, arg);
  const until = (fn, message, arg, timeoutMs = 30_000) =>
    waitFor(() => page.evaluate(fn, arg), { timeoutMs, intervalMs: 200, message });
  // Waits for the first input to hold want; a failure says what it held.
  const inputIs = (want, message) =>
    until((w) => document.getElementById('inp').value === w, message, want).catch(async (e) => {
      e.message += `; value ${JSON.stringify(await js(() => document.getElementById('inp').value))}`;
      throw e;
    });
  try {
    await page.bringToFront();
    await page.goto(`${pages.guestUrl}/solid/white`, { timeout: 120_000 });
    await page.setContent(PAGE, { timeout: 120_000 });
    const origin = await viewportOrigin(page);
    console.error(`viewport on screen (from the page): ${JSON.stringify(origin)}`);

    // ---- find the controls in a desktop screenshot ------------------------------
    let shot;
    const boxes = await waitFor(async () => {
      const r = await screenshot(gw, id);
      assert.equal(r.status, 200);
      shot = r.png;
      const img = png(r.png);
      const b = { btn: findColour(img, MAGENTA), inp: findColour(img, CYAN),
                  inp2: findColour(img, ORANGE), pad: findColour(img, YELLOW) };
      return Object.values(b).every((x) => x && x.w > 20) && b;
    }, { timeoutMs: 60_000, intervalMs: 500, message: 'the test page in the screenshot' })
      .catch((e) => {
        if (shot)
          writeFileSync(path.join(artifactsDir(), 'computer-failed.png'), shot);
        throw e;
      });
    writeFileSync(path.join(artifactsDir(), 'computer-page.png'), shot);
    console.error(`found on screen: ${JSON.stringify(boxes)}`);
    const { btn, inp, inp2, pad } = boxes;
    assert.ok(near(btn.w, 240, 4) && near(btn.h, 120, 4), `button 240x120 on screen: ${btn.w}x${btn.h}`);
    // The page's window geometry and the screenshot agree on where it is.
    assert.ok(near(btn.x0, origin.x + 40, 3) && near(btn.y0, origin.y + 40, 3),
              `button at ${btn.x0},${btn.y0} on screen; the page says ${origin.x + 40},${origin.y + 40}`);
    const toPage = (x, y) => [x - origin.x, y - origin.y];

    // ---- move: the page sees the pointer where it was sent -----------------------
    const mx = pad.x0 + 37, my = pad.y0 + 23;
    const moved = await act(gw, id, { action: 'move', x: mx, y: my });
    assert.deepEqual(moved.cursor, { x: mx, y: my });
    assert.equal(moved.action, 'move');
    await until(() => window.log.lastMove !== null, 'a mousemove');
    const seenMove = await waitFor(async () => {
      const m = await js(() => window.log.lastMove);
      return m && m[0] === toPage(mx, my)[0] && m[1] === toPage(mx, my)[1] && m;
    }, { timeoutMs: 15_000, message: `the pointer at page ${toPage(mx, my)}` });
    console.error(`move to screen ${mx},${my} -> page ${seenMove}`);

    // ---- click: the counter goes to 1 --------------------------------------------
    const clicked = await act(gw, id, { action: 'click', x: btn.cx, y: btn.cy });
    assert.equal(clicked.action, 'click');
    assert.deepEqual(clicked.cursor, { x: btn.cx, y: btn.cy });
    await until(() => window.log.clicks >= 1, 'the click on the button');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await js(() => window.log.clicks), 1, 'one click, one increment');
    assert.equal(await js(() => document.getElementById('count').textContent), '1');
    const lc = await js(() => window.log.lastClick);
    assert.equal(lc.trusted, true, 'a real input event');
    assert.deepEqual([lc.x, lc.y], toPage(btn.cx, btn.cy), 'the click landed where it was sent');

    // ---- type into the input -------------------------------------------------------
    await act(gw, id, { action: 'click', x: inp.cx, y: inp.cy });
    await until(() => document.activeElement?.id === 'inp', 'focus in the input');
    await act(gw, id, { action: 'type', text: 'hello world' });
    await inputIs('hello world', 'the typed text');

    // ---- key combinations ------------------------------------------------------------
    await act(gw, id, { action: 'key', keys: 'ctrl+a' });
    await act(gw, id, { action: 'type', text: 'X' });
    await inputIs('X', 'ctrl+a then X replaces the text');
    assert.ok((await js(() => window.log.keys)).includes('C-a'), 'the page saw ctrl+a');
    await act(gw, id, { action: 'key', keys: 'Tab' });
    await until(() => document.activeElement?.id === 'inp2', 'Tab moves to the second input');
    await act(gw, id, { action: 'key', keys: 'shift+Tab' });
    await until(() => document.activeElement?.id === 'inp', 'shift+Tab moves back');
    // Focus by Tab selects the whole value; End puts the caret after it.
    await act(gw, id, { action: 'key', keys: 'End' });
    await act(gw, id, { action: 'type', text: 'Ünï €' });
    await inputIs('XÜnï €', 'non-ASCII text');
    // OpenAI's keypress form: an array of keys pressed together.
    await act(gw, id, { action: 'keypress', keys: ['CTRL', 'A'] });
    await act(gw, id, { action: 'key', keys: 'BackSpace' });
    await inputIs('', 'ctrl+a, BackSpace empties it');
    await act(gw, id, { action: 'key', keys: 'Return' });
    await until(() => window.log.keys.includes('Enter'), 'Return reaches the page as Enter');

    // ---- double and right clicks ----------------------------------------------------
    const before = await js(() => window.log.clicks);
    await act(gw, id, { action: 'double_click', x: btn.cx, y: btn.cy });
    await until(() => window.log.dbl === 1, 'a dblclick').catch(async (e) => {
      const seen = await js(() => ({ clicks: window.log.clicks, last: window.log.lastClick }));
      throw new Error(`${e.message}; clicks before: ${before}, the page then: ${JSON.stringify(seen)}`);
    });
    assert.equal(await js(() => window.log.clicks), before + 2, 'a double click is two clicks');
    assert.equal((await js(() => window.log.lastClick)).detail, 2);
    await act(gw, id, { action: 'right_click', x: btn.cx, y: btn.cy });
    await until(() => window.log.ctx === 1, 'a contextmenu');
    assert.equal(await js(() => window.log.ctxButton), 2, 'with the right button');
    assert.equal(await js(() => window.log.clicks), before + 2, 'a right click is no click');

    // ---- drag across the pad ----------------------------------------------------------
    const from = { x: pad.x0 + 20, y: pad.y0 + 20 }, to = { x: pad.x1 - 20, y: pad.y1 - 20 };
    const dragged = await act(gw, id, { action: 'drag', path: [from, to] });
    assert.deepEqual(dragged.cursor, to);
    await until(() => window.log.drag.up !== null, 'the end of the drag');
    const drag = await js(() => window.log.drag);
    console.error(`drag: ${JSON.stringify(drag)}`);
    assert.deepEqual(drag.down, toPage(from.x, from.y));
    assert.deepEqual(drag.up, toPage(to.x, to.y));
    // Chromium coalesces moves per frame; a slow guest may deliver one.
    assert.ok(drag.moves >= 1, `the page saw the pointer move with the button down (${drag.moves})`);

    // ---- scroll -------------------------------------------------------------------------
    const white = { x: Math.round(origin.x + 1100), y: Math.round(origin.y + 450) };
    await act(gw, id, { action: 'scroll', x: white.x, y: white.y, scroll_y: 5 });
    await until(() => window.scrollY > 0, 'the page scrolled down');
    const down = await js(() => window.scrollY);
    // Twice the steps back: the smooth scroll down may still be running when
    // it is read, so the way back must cover whatever it ends at.
    await act(gw, id, { action: 'scroll', x: white.x, y: white.y, scroll_y: -10 });
    await until(() => window.scrollY < 10, `the page scrolled back up (from ${down})`);

    // ---- screenshots from actions ----------------------------------------------------------
    const snap = await act(gw, id, { action: 'screenshot' });
    assert.equal(snap.screenshot_mime_type, 'image/png');
    assert.deepEqual(pngSize(Buffer.from(snap.screenshot_base64, 'base64')), VIEWPORT);
    const withShot = await act(gw, id, { action: 'click', x: btn.cx, y: btn.cy, screenshot: true, max_width: 640 });
    const small = png(Buffer.from(withShot.screenshot_base64, 'base64'));
    assert.deepEqual([small.width, small.height], [640, 360]);
    await until((n) => window.log.clicks === n, 'the click with a screenshot', before + 3);
    const waited = await act(gw, id, { action: 'wait', ms: 200 });
    assert.equal(waited.action, 'wait');
    assert.equal(withShot.screenshot_base64 && typeof withShot.screenshot_base64, 'string');

    // ---- bad actions: 400, and nothing reaches the page -------------------------------------
    const clicksBefore = await js(() => window.log.clicks);
    const bad = [
      { action: 'click', x: VIEWPORT.width, y: 10 },
      { action: 'click', x: 10, y: VIEWPORT.height },
      { action: 'click', x: -1, y: 10 },
      { action: 'click', x: btn.cx },
      { action: 'click', x: '10', y: '10' },
      { action: 'key', keys: 'ctrl+nosuchkey' },
      { action: 'key', keys: '' },
      { action: 'key' },
      { action: 'fly', x: 1, y: 1 },
      {},
      { action: 'type', text: '' },
      { action: 'type', text: 'x'.repeat(5000) },
      { action: 'wait', ms: 60_000 },
      { action: 'scroll', x: 10, y: 10 },
      { action: 'scroll', x: 10, y: 10, scroll_y: 1000 },
      { action: 'drag', path: [{ x: 1, y: 1 }] },
      { action: 'drag', path: [{ x: 1, y: 1 }, { x: 99999, y: 1 }] },
      { action: 'click', x: btn.cx, y: btn.cy, button: 'fourth' },
    ];
    for (const body of bad) {
      const r = await computer(gw, id, body);
      assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      assert.ok(r.body?.error?.message, `an error message for ${JSON.stringify(body).slice(0, 80)}`);
    }
    const notJson = await fetch(`${gw.url}/v1/browser/sessions/${id}/computer`, {
      method: 'POST', headers: { Authorization: `Bearer ${gw.token}`, 'Content-Type': 'application/json' },
      body: '{"action": "click", ',
    });
    assert.equal(notJson.status, 400, 'a malformed body');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await js(() => window.log.clicks), clicksBefore, 'no bad action reached the page');
    const gone = await computer(gw, 'no-such-session', { action: 'wait', ms: 1 });
    assert.equal(gone.status, 404);
  } finally {
    await disconnect(browser);
  }
});
