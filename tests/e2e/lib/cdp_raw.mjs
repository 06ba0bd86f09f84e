// A raw CDP client on the `ws` package: no framework overhead, for
// protocol-level checks and the benchmark (tests/bench imports it too).
import WebSocket from 'ws';

/**
 * Opens a WebSocket; resolves the socket once open, rejects with
 * {status} when the server refuses the upgrade.
 */
export function openWebSocket(url, { protocols, timeoutMs = 30_000, headers } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { handshakeTimeout: timeoutMs, headers, maxPayload: 256 << 20 });
    let settled = false;
    const settle = (fn, v) => {
      if (!settled) {
        settled = true;
        fn(v);
      }
    };
    // A server that speaks first (an RFB server sends its banner at once)
    // can have its first message arrive with the handshake's answer, which
    // 'ws' emits before a listener added after 'open' exists: keep such
    // messages for onMessage().
    const early = [];
    const keep = (data) => early.push(data);
    ws.on('message', keep);
    ws.takeEarlyMessages = () => {
      ws.off('message', keep);
      return early.splice(0);
    };
    ws.once('open', () => settle(resolve, ws));
    ws.once('unexpected-response', (req, res) => {
      const err = new Error(`WebSocket ${url} refused: HTTP ${res.statusCode}`);
      err.status = res.statusCode;
      res.resume();
      ws.terminate();
      settle(reject, err);
    });
    // Errors after the outcome (a late close during a refused handshake)
    // are nobody's business; an unhandled one would end the process.
    ws.on('error', (e) => settle(reject, e));
  });
}

/**
 * Calls fn(data) for every message of ws, those that came with the
 * handshake's answer (see openWebSocket) first.
 */
export function onMessage(ws, fn) {
  const early = ws.takeEarlyMessages ? ws.takeEarlyMessages() : [];
  ws.on('message', fn);
  for (const data of early)
    fn(data);
}

export class CdpClient {
  constructor(ws) {
    this.ws = ws;
    this.nextId = 1;
    this.waiting = new Map();
    this.events = [];
    onMessage(ws, (data) => {
      const msg = JSON.parse(data.toString('utf8'));
      if (msg.id !== undefined && this.waiting.has(msg.id)) {
        const { resolve, reject } = this.waiting.get(msg.id);
        this.waiting.delete(msg.id);
        if (msg.error)
          reject(Object.assign(new Error(`CDP ${msg.error.code}: ${msg.error.message}`), { cdp: msg.error }));
        else
          resolve(msg.result);
      } else if (msg.method) {
        this.events.push(msg);
      }
    });
    ws.on('close', (code, reason) => {
      for (const { reject } of this.waiting.values())
        reject(new Error(`CDP socket closed (${code} ${reason})`));
      this.waiting.clear();
    });
  }

  static async connect(url, opts) {
    return new CdpClient(await openWebSocket(url, opts));
  }

  send(method, params = {}, sessionId) {
    const id = this.nextId++;
    const msg = { id, method, params };
    if (sessionId)
      msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.ws.send(JSON.stringify(msg), (err) => {
        if (err) {
          this.waiting.delete(id);
          reject(err);
        }
      });
    });
  }

  /** On a browser endpoint: a flat session on some page (made if none). */
  async attachToPage() {
    const { targetInfos } = await this.send('Target.getTargets');
    let target = targetInfos.find((t) => t.type === 'page');
    if (!target) {
      const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' });
      target = { targetId };
    }
    const { sessionId } = await this.send('Target.attachToTarget', { targetId: target.targetId, flatten: true });
    return sessionId;
  }

  async evaluate(expression, sessionId) {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true }, sessionId);
    if (r.exceptionDetails)
      throw new Error(`evaluate ${expression}: ${r.exceptionDetails.text}`);
    return r.result.value;
  }

  close() {
    this.ws.close();
  }
}

/** GET a DevTools HTTP endpoint (…/json/version) with a timeout. */
export async function getJson(url, timeoutMs = 30_000) {
  const resp = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  return { status: resp.status, body };
}

/** cdp_url + "/json/version" the way Playwright builds it. */
export function devtoolsUrl(cdpUrl, what = 'version') {
  return `${cdpUrl.replace(/\/$/, '')}/json/${what}`;
}
