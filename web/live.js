// Porthole live view: noVNC's RFB client on the session's VNC WebSocket.
//
// The page's URL is the capability: /live/{session_id}/{token}. The socket
// goes to /vnc/{session_id}/{token} on the same host; the gateway checks the
// token and, for a watch-only token, drops input whatever this page does.
// `?control=1` (part of the control URL) only turns this page's input on.
//
// State for people is in the status bar; for tests it is on <body
// data-state> and in window.porthole.
import RFB from './novnc/core/rfb.js';

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 15000;
// Consecutive attempts that never reached the VNC server before giving up:
// a wrong or expired link is refused at the handshake and looks like this.
const GIVE_UP_AFTER = 8;
// The close reason the gateway sends when the session is over for good.
const SESSION_ENDED = 'session ended';

const ui = {
  session: document.getElementById('session'),
  mode: document.getElementById('mode'),
  state: document.getElementById('state'),
  reason: document.getElementById('reason'),
  screen: document.getElementById('screen'),
};

const live = {
  session: null,
  control: false,
  state: 'loading',
  reason: '',
  connects: 0,     // successful RFB connections so far
  attempts: 0,     // WebSocket attempts so far
  rfb: null,
};
window.porthole = live;

export function parseLiveLocation(loc) {
  const m = /^\/live\/([A-Za-z0-9._-]{1,128})\/([A-Za-z0-9._-]{1,256})\/?$/.exec(loc.pathname);
  if (!m)
    return null;
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return {
    id: m[1],
    control: new URLSearchParams(loc.search).get('control') === '1',
    wsUrl: `${scheme}//${loc.host}/vnc/${m[1]}/${m[2]}`,
  };
}

function setState(state, reason = '') {
  live.state = state;
  live.reason = reason;
  document.body.dataset.state = state;
  ui.state.dataset.state = state;
  ui.state.textContent = state;
  ui.reason.textContent = reason;
}

function describeClose(info) {
  if (!info)
    return 'the VNC connection failed';
  if (info.reason)
    return info.reason;
  switch (info.code) {
  case 1000: return 'closed by the server';
  case 1001: return 'the server is going away';
  case 1006: return 'connection lost or refused';
  case 1008: return 'refused by the server';
  case 1011: return 'server error';
  default: return `closed (code ${info.code})`;
  }
}

function main() {
  const where = parseLiveLocation(window.location);
  if (!where) {
    setState('failed', 'this is not a live-view link (expected /live/SESSION/TOKEN)');
    return;
  }
  live.session = where.id;
  live.control = where.control;
  ui.session.textContent = where.id;
  ui.mode.textContent = where.control ? 'control' : 'view only';
  ui.mode.dataset.mode = where.control ? 'control' : 'view';
  document.title = `${where.id} · Porthole live view`;

  let failures = 0;
  let retryTimer = null;

  function scheduleRetry(why) {
    failures++;
    if (failures >= GIVE_UP_AFTER) {
      setState('failed', `${why}; gave up after ${failures} attempts (the link may be wrong or ` +
                         'the session over): reload to try again');
      return;
    }
    const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failures - 1));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    setState('retrying', `${why}; retrying in ${Math.ceil(delay / 1000)} s`);
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect();
    }, delay);
  }

  function connect() {
    live.attempts++;
    setState('connecting', live.attempts > 1 ? `attempt ${live.attempts}` : '');

    // The socket is ours, not noVNC's, so that its close code and reason
    // (noVNC 1.3 keeps them to itself) decide whether to reconnect. This
    // listener is added before noVNC sets onclose, so it runs first.
    let ws;
    try {
      ws = new WebSocket(where.wsUrl, ['binary']);
    } catch (e) {
      setState('failed', `cannot open a WebSocket: ${e.message}`);
      return;
    }
    let closeInfo = null;
    let connected = false;
    let final = null; // set when this connection must not be retried
    ws.addEventListener('close', (e) => {
      closeInfo = { code: e.code, reason: e.reason, clean: e.wasClean };
    });

    let rfb;
    try {
      rfb = new RFB(ui.screen, ws, { shared: true });
    } catch (e) {
      ws.close();
      setState('failed', `the VNC client did not start: ${e.message}`);
      return;
    }
    live.rfb = rfb;
    rfb.viewOnly = !where.control;
    rfb.focusOnClick = where.control;
    rfb.scaleViewport = true;
    rfb.resizeSession = false;
    rfb.clipViewport = false;
    rfb.background = '#000';

    rfb.addEventListener('connect', () => {
      connected = true;
      failures = 0;
      live.connects++;
      setState('connected');
      if (where.control)
        rfb.focus();
    });
    rfb.addEventListener('desktopname', (e) => {
      const name = e.detail && e.detail.name;
      if (name)
        document.title = `${name} · ${where.id} · Porthole live view`;
    });
    rfb.addEventListener('securityfailure', (e) => {
      final = `the VNC server refused us: ${(e.detail && e.detail.reason) || 'security failure'}`;
    });
    rfb.addEventListener('credentialsrequired', () => {
      final = 'the VNC server asked for a password (the gateway should have handled it)';
      rfb.disconnect();
    });
    rfb.addEventListener('disconnect', () => {
      if (live.rfb === rfb)
        live.rfb = null;
      if (closeInfo && closeInfo.reason === SESSION_ENDED) {
        setState('ended', 'the session ended');
        return;
      }
      if (final) {
        setState('failed', final);
        return;
      }
      const why = describeClose(closeInfo);
      // A connection that worked is worth retrying at once, from scratch.
      if (connected)
        failures = 0;
      setState('disconnected', why);
      scheduleRetry(why);
    });
  }

  window.addEventListener('beforeunload', () => {
    if (retryTimer)
      clearTimeout(retryTimer);
  });
  connect();
}

main();
