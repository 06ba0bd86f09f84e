// A minimal RFB (VNC) client over a WebSocket, enough to check what the
// gateway's VNC proxy lets through: handshake with security "None", the
// desktop size, and pointer events.
import { onMessage, openWebSocket } from './cdp_raw.mjs';

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

  /** Connects and completes the RFB handshake; resolves the client. */
  static async connect(url, { timeoutMs = 30_000 } = {}) {
    const ws = await openWebSocket(url, { protocols: ['binary'], timeoutMs });
    const c = new RfbClient(ws);
    try {
      const version = (await c.read(12, timeoutMs)).toString('latin1');
      if (!/^RFB 003\.00\d\n$/.test(version))
        throw new Error(`not an RFB server: ${JSON.stringify(version)}`);
      c.version = version.trim();
      ws.send(Buffer.from('RFB 003.008\n', 'latin1'));
      const [count] = await c.read(1, timeoutMs);
      if (count === 0) {
        const len = (await c.read(4, timeoutMs)).readUInt32BE(0);
        throw new Error(`VNC server refused: ${(await c.read(len, timeoutMs)).toString()}`);
      }
      const types = [...(await c.read(count, timeoutMs))];
      if (!types.includes(1))
        throw new Error(`VNC server wants authentication (security types ${types.join(',')}); ` +
                        'the gateway should present "None" to token holders');
      ws.send(Buffer.from([1]));
      const result = (await c.read(4, timeoutMs)).readUInt32BE(0);
      if (result !== 0)
        throw new Error(`VNC security result ${result}`);
      ws.send(Buffer.from([1])); // ClientInit: shared
      const init = await c.read(24, timeoutMs);
      c.width = init.readUInt16BE(0);
      c.height = init.readUInt16BE(2);
      const nameLen = init.readUInt32BE(20);
      c.name = (await c.read(nameLen, timeoutMs)).toString('utf8');
      // SetEncodings (raw only), as every VNC client sends: QEMU's server
      // decides between absolute and relative pointer events only then, and
      // without it takes the positions as relative motion.
      const enc = Buffer.alloc(8);
      enc[0] = 2;
      enc.writeUInt16BE(1, 2);
      enc.writeInt32BE(0, 4);
      ws.send(enc);
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
