// A minimal RFB 3.8 server speaking over one WebSocket: security "None", a
// solid-colour framebuffer sent in Raw encoding, and counters for the input
// a client sends. It stands in for the guest's VNC server behind the
// gateway's proxy when the live page itself is under test.

const CLIENT_MSG_FIXED = { 0: 20, 3: 10, 4: 8, 5: 6 };

export class FakeRfb {
  /**
   * @param ws a server-side `ws` WebSocket (binary messages)
   * @param opts {width, height, color: [r, g, b], name}
   */
  constructor(ws, opts = {}) {
    this.ws = ws;
    this.width = opts.width ?? 640;
    this.height = opts.height ?? 480;
    this.color = opts.color ?? [255, 0, 0];
    this.name = opts.name ?? 'porthole test desktop';
    this.pointerEvents = 0;
    this.buttonPresses = 0;
    this.keyEvents = 0;
    this.updatesSent = 0;
    this.state = 'version';
    this.buf = Buffer.alloc(0);
    this.pending = false;     // an incremental update request waits for a change
    this.dirty = true;        // the client has not seen the current colour
    this.lastMask = 0;
    // The client's pixel format; noVNC sets its own right after init.
    this.pf = { bpp: 32, bigEndian: false, rShift: 16, gShift: 8, bShift: 0, rMax: 255, gMax: 255, bMax: 255 };
    ws.on('message', (data) => this.feed(Buffer.isBuffer(data) ? data : Buffer.from(data)));
    ws.send(Buffer.from('RFB 003.008\n', 'latin1'));
  }

  setColor(rgb) {
    this.color = rgb;
    this.dirty = true;
    if (this.pending) {
      this.pending = false;
      this.sendUpdate();
    }
  }

  feed(data) {
    this.buf = Buffer.concat([this.buf, data]);
    for (;;) {
      const used = this.step();
      if (used === 0)
        return;
      this.buf = this.buf.subarray(used);
    }
  }

  // Consumes one protocol unit from this.buf; 0 when more bytes are needed.
  step() {
    const b = this.buf;
    switch (this.state) {
    case 'version':
      if (b.length < 12)
        return 0;
      this.ws.send(Buffer.from([1, 1])); // one security type: None
      this.state = 'security';
      return 12;
    case 'security':
      if (b.length < 1)
        return 0;
      if (b[0] !== 1) {
        this.ws.close(1002, 'unsupported security type');
        return b.length;
      }
      this.ws.send(Buffer.from([0, 0, 0, 0])); // SecurityResult OK
      this.state = 'clientinit';
      return 1;
    case 'clientinit': {
      if (b.length < 1)
        return 0;
      const name = Buffer.from(this.name, 'utf8');
      const init = Buffer.alloc(24 + name.length);
      init.writeUInt16BE(this.width, 0);
      init.writeUInt16BE(this.height, 2);
      // 32 bpp, depth 24, little endian, true colour, 255 max, shifts 16/8/0
      Buffer.from([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]).copy(init, 4);
      init.writeUInt32BE(name.length, 20);
      name.copy(init, 24);
      this.ws.send(init);
      this.state = 'normal';
      return 1;
    }
    default:
      return this.message(b);
    }
  }

  message(b) {
    if (b.length < 1)
      return 0;
    const type = b[0];
    if (type === 2) { // SetEncodings
      if (b.length < 4)
        return 0;
      const n = b.readUInt16BE(2);
      return b.length < 4 + 4 * n ? 0 : 4 + 4 * n;
    }
    if (type === 6) { // ClientCutText
      if (b.length < 8)
        return 0;
      const n = b.readUInt32BE(4);
      return b.length < 8 + n ? 0 : 8 + n;
    }
    const len = CLIENT_MSG_FIXED[type];
    if (!len) {
      this.ws.close(1002, `unexpected client message ${type}`);
      return b.length;
    }
    if (b.length < len)
      return 0;
    if (type === 0) {
      this.pf = {
        bpp: b[4], bigEndian: b[6] !== 0,
        rMax: b.readUInt16BE(8), gMax: b.readUInt16BE(10), bMax: b.readUInt16BE(12),
        rShift: b[14], gShift: b[15], bShift: b[16],
      };
    } else if (type === 3) {
      const incremental = b[1] !== 0;
      if (!incremental || this.dirty)
        this.sendUpdate();
      else
        this.pending = true;
    } else if (type === 4) {
      this.keyEvents++;
    } else if (type === 5) {
      this.pointerEvents++;
      const mask = b[1];
      if ((mask & ~this.lastMask) !== 0)
        this.buttonPresses++;
      this.lastMask = mask;
    }
    return len;
  }

  sendUpdate() {
    if (this.ws.readyState !== 1)
      return;
    const { width: w, height: h, pf } = this;
    const bytes = pf.bpp / 8;
    if (bytes !== 4)
      throw new Error(`fake RFB server supports 32 bpp only, client asked ${pf.bpp}`);
    const [r, g, bl] = this.color;
    const value = ((((r * pf.rMax) / 255) << pf.rShift) | (((g * pf.gMax) / 255) << pf.gShift) |
                   (((bl * pf.bMax) / 255) << pf.bShift)) >>> 0;
    const px = Buffer.alloc(4);
    if (pf.bigEndian)
      px.writeUInt32BE(value);
    else
      px.writeUInt32LE(value);
    const msg = Buffer.alloc(16 + w * h * 4);
    msg[0] = 0;                     // FramebufferUpdate
    msg.writeUInt16BE(1, 2);        // one rectangle
    msg.writeUInt16BE(0, 4);
    msg.writeUInt16BE(0, 6);
    msg.writeUInt16BE(w, 8);
    msg.writeUInt16BE(h, 10);
    msg.writeInt32BE(0, 12);        // Raw
    for (let o = 16; o < msg.length; o += 4)
      px.copy(msg, o);
    this.ws.send(msg);
    this.dirty = false;
    this.updatesSent++;
  }
}
