// A minimal RFB (VNC) client over a WebSocket, enough to check what the
// gateway's VNC proxy lets through: handshake with security "None", the
// desktop size, update requests, and pointer events.
import { onMessage, openWebSocket } from './cdp_raw.mjs';

/** ws(s)://HOST/vnc/ID/TOKEN for a /live/ID/TOKEN page URL. */
export function vncUrl(liveUrl) {
  const u = new URL(liveUrl);
  const m = /^\/live\/([^/]+)\/([^/]+)$/.exec(u.pathname);
  if (!m)
    throw new Error(`live URL ${liveUrl} is not /live/ID/TOKEN`);
  return `${u.protocol === 'https:' ? 'wss' : 'ws'}://${u.host}/vnc/${m[1]}/${m[2]}`;
}

export class RfbClient {
  constructor(ws) {
    this.ws = ws;
    this.buf = Buffer.alloc(0);
    this.wanted = null;
    this.closed = null;
    // The banner may have come with the WebSocket handshake's answer.
    onMessage(ws, (d) => {
      this.buf = Buffer.concat([this.buf, Buffer.isBuffer(d) ? d : Buffer.from(d)]);
      this.pump();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      if (this.wanted)
        this.wanted.reject(new Error(`VNC socket closed (${code} ${reason})`));
      this.wanted = null;
    });
  }

  pump() {
    if (this.wanted && this.buf.length >= this.wanted.n) {
      const out = this.buf.subarray(0, this.wanted.n);
      this.buf = this.buf.subarray(this.wanted.n);
      const { resolve } = this.wanted;
      this.wanted = null;
      resolve(out);
    }
  }

  read(n, timeoutMs = 30_000) {
    if (this.closed)
      return Promise.reject(new Error(`VNC socket closed (${this.closed.code} ${this.closed.reason})`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wanted = null;
        reject(new Error(`VNC: no ${n} bytes within ${timeoutMs} ms`));
      }, timeoutMs);
      this.wanted = {
        n,
        resolve: (b) => { clearTimeout(timer); resolve(b); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      this.pump();
    });
  }

  /**
   * The RFB handshake with security "None", as far as upTo: "security"
   * (our version sent), "init" (the security type chosen and accepted) or
   * "messages" (ClientInit sent, the desktop size and name read).
   */
  async handshake(upTo = 'messages', timeoutMs = 30_000) {
    const version = (await this.read(12, timeoutMs)).toString('latin1');
    if (!/^RFB 003\.00\d\n$/.test(version))
      throw new Error(`not an RFB server: ${JSON.stringify(version)}`);
    this.version = version.trim();
    this.ws.send(Buffer.from('RFB 003.008\n', 'latin1'));
    const [count] = await this.read(1, timeoutMs);
    if (count === 0) {
      const len = (await this.read(4, timeoutMs)).readUInt32BE(0);
      throw new Error(`VNC server refused: ${(await this.read(len, timeoutMs)).toString()}`);
    }
    const types = [...(await this.read(count, timeoutMs))];
    if (!types.includes(1))
      throw new Error(`VNC server wants authentication (security types ${types.join(',')}); ` +
                      'the gateway should present "None" to token holders');
    if (upTo === 'security')
      return;
    this.ws.send(Buffer.from([1]));
    const result = (await this.read(4, timeoutMs)).readUInt32BE(0);
    if (result !== 0)
      throw new Error(`VNC security result ${result}`);
    if (upTo === 'init')
      return;
    this.ws.send(Buffer.from([1])); // ClientInit: shared
    const init = await this.read(24, timeoutMs);
    this.width = init.readUInt16BE(0);
    this.height = init.readUInt16BE(2);
    const nameLen = init.readUInt32BE(20);
    this.name = (await this.read(nameLen, timeoutMs)).toString('utf8');
  }

  /** SetEncodings: the server's choice among these, in order. */
  setEncodings(encodings) {
    const m = Buffer.alloc(4 + 4 * encodings.length);
    m[0] = 2;
    m.writeUInt16BE(encodings.length, 2);
    encodings.forEach((e, i) => m.writeInt32BE(e, 4 + 4 * i));
    this.ws.send(m);
  }

  /** FramebufferUpdateRequest for a rectangle (the whole screen by default). */
  requestUpdate({ incremental = false, x = 0, y = 0, w = this.width, h = this.height } = {}) {
    const m = Buffer.alloc(10);
    m[0] = 3;
    m[1] = incremental ? 1 : 0;
    m.writeUInt16BE(x, 2);
    m.writeUInt16BE(y, 4);
    m.writeUInt16BE(w, 6);
    m.writeUInt16BE(h, 8);
    this.ws.send(m);
  }

  /** The close ({code, reason}) once the socket closed, or null after ms. */
  closedWithin(ms) {
    if (this.closed)
      return Promise.resolve(this.closed);
    return new Promise((resolve) => {
      const onClose = () => {
        clearTimeout(timer);
        resolve(this.closed);
      };
      const timer = setTimeout(() => {
        this.ws.off('close', onClose);
        resolve(null);
      }, ms);
      this.ws.once('close', onClose);
    });
  }

  /** Connects and completes the RFB handshake; resolves the client. */
  static async connect(url, { timeoutMs = 30_000 } = {}) {
    const ws = await openWebSocket(url, { protocols: ['binary'], timeoutMs });
    const c = new RfbClient(ws);
    try {
      await c.handshake('messages', timeoutMs);
      // SetEncodings (raw only), as every VNC client sends: QEMU's server
      // decides between absolute and relative pointer events only then, and
      // without it takes the positions as relative motion.
      c.setEncodings([0]);
      // Incoming framebuffer updates are not read from here on: drop them.
      ws.removeAllListeners('message');
      return c;
    } catch (e) {
      ws.terminate();
      throw e;
    }
  }

  pointer(x, y, mask) {
    const m = Buffer.alloc(6);
    m[0] = 5;
    m[1] = mask;
    m.writeUInt16BE(x, 2);
    m.writeUInt16BE(y, 4);
    this.ws.send(m);
  }

  /** A left click at (x, y): move, press, release. */
  click(x, y) {
    this.pointer(x, y, 0);
    this.pointer(x, y, 1);
    this.pointer(x, y, 0);
  }

  close() {
    this.ws.close();
  }
}
