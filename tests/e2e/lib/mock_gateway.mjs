// A stand-in for the gateway's web side, to test web/ alone: it serves the
// assembled static root the way the gateway does (/static/..., live.html for
// /live/{id}/{token}, dashboard.html for /dashboard), answers the two list
// endpoints and DELETE from an in-memory table, and accepts /vnc/{id}/{token}
// WebSockets with a FakeRfb desktop behind them.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { FakeRfb } from './fake_rfb.mjs';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
};

// Same rule as the gateway's http_static_path_ok: no empty or dot-led
// segments, a small character set.
function staticPathOk(rel) {
  return rel.length > 0 && rel.length < 512 &&
         rel.split('/').every((s) => /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(s));
}

export class MockGateway {
  constructor({ root, adminToken }) {
    this.root = root;
    this.adminToken = adminToken;
    this.sessions = new Map();   // id -> {json, viewToken, controlToken, desktops:Set}
    this.sandboxes = new Map();  // id -> json
    this.requests = [];          // {method, url, authorization}
    this.wsAttempts = [];        // {id, ok}
    this.color = [255, 0, 0];
    this.server = createServer((req, res) => this.handle(req, res));
    this.wss = new WebSocketServer({
      noServer: true,
      handleProtocols: (protocols) => (protocols.has('binary') ? 'binary' : false),
    });
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this.url;
  }

  async close() {
    for (const s of this.sessions.values())
      for (const d of s.desktops)
        d.ws.terminate();
    this.wss.close();
    this.server.closeAllConnections?.();
    await new Promise((resolve) => this.server.close(resolve));
  }

  addSession(id, fields = {}) {
    const viewToken = `view${id}tok`;
    const controlToken = `ctl${id}tok`;
    const json = {
      session_id: id,
      vm_id: `vm-${id}`,
      status: 'ready',
      mode: 'live',
      viewport: { width: 1280, height: 720 },
      profile_id: null,
      expires_at: new Date(Date.now() + 25 * 60_000).toISOString(),
      cdp_url: `${this.url}/cdp/${id}/cdptok`,
      cdp_ws_url: `${this.url.replace('http', 'ws')}/cdp/${id}/cdptok/devtools/browser`,
      live_url: `${this.url}/live/${id}/${viewToken}`,
      control_url: `${this.url}/live/${id}/${controlToken}?control=1`,
      ...fields,
    };
    const s = { json, viewToken, controlToken, desktops: new Set() };
    this.sessions.set(id, s);
    return s;
  }

  /** All desktops (FakeRfb) currently connected for a session. */
  desktops(id) {
    return [...(this.sessions.get(id)?.desktops ?? [])];
  }

  setColor(rgb) {
    this.color = rgb;
    for (const s of this.sessions.values())
      for (const d of s.desktops)
        d.setColor(rgb);
  }

  /** Closes a session's sockets the way the gateway does when it ends. */
  endSession(id) {
    const s = this.sessions.get(id);
    this.sessions.delete(id);
    for (const d of s?.desktops ?? [])
      d.ws.close(1000, 'session ended');
  }

  /** Drops a session's sockets without a close frame (a network failure). */
  dropConnections(id) {
    for (const d of this.sessions.get(id)?.desktops ?? [])
      d.ws.terminate();
  }

  upgrade(req, socket, head) {
    const m = /^\/vnc\/([^/]+)\/([^/?]+)$/.exec(new URL(req.url, 'http://x').pathname);
    const s = m && this.sessions.get(m[1]);
    const ok = Boolean(s && (m[2] === s.viewToken || m[2] === s.controlToken));
    this.wsAttempts.push({ id: m?.[1], ok });
    if (!ok) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const d = new FakeRfb(ws, { color: this.color });
      d.control = m[2] === s.controlToken;
      s.desktops.add(d);
      ws.on('close', () => s.desktops.delete(d));
    });
  }

  json(res, status, body) {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  async file(res, rel) {
    try {
      const data = await readFile(path.join(this.root, rel));
      res.writeHead(200, {
        'content-type': MIME[path.extname(rel)] ?? 'application/octet-stream',
        'content-length': data.length,
      });
      res.end(data);
    } catch {
      this.json(res, 404, { error: { code: 'not_found', message: 'no such file' } });
    }
  }

  async handle(req, res) {
    const url = new URL(req.url, 'http://x');
    this.requests.push({ method: req.method, url: req.url, authorization: req.headers.authorization ?? null });
    const p = url.pathname;
    if (req.method === 'GET' && p.startsWith('/static/')) {
      const rel = p.slice('/static/'.length);
      return staticPathOk(rel) ? this.file(res, rel)
                               : this.json(res, 404, { error: { code: 'not_found', message: 'no such file' } });
    }
    if (req.method === 'GET' && /^\/live\/[^/]+\/[^/]+$/.test(p))
      return this.file(res, 'live.html');
    if (req.method === 'GET' && p === '/dashboard')
      return this.file(res, 'dashboard.html');
    if (p.startsWith('/v1/')) {
      if (req.headers.authorization !== `Bearer ${this.adminToken}`)
        return this.json(res, 401, { error: { code: 'unauthorized', message: 'bad or missing token' } });
      if (req.method === 'GET' && p === '/v1/browser/sessions')
        return this.json(res, 200, { sessions: [...this.sessions.values()].map((s) => s.json) });
      if (req.method === 'GET' && p === '/v1/sandboxes')
        return this.json(res, 200, { sandboxes: [...this.sandboxes.values()] });
      let m = /^\/v1\/browser\/sessions\/([^/]+)$/.exec(p);
      if (req.method === 'DELETE' && m) {
        if (!this.sessions.has(m[1]))
          return this.json(res, 404, { error: { code: 'not_found', message: 'no such session' } });
        this.endSession(m[1]);
        return this.json(res, 200, { session_id: m[1], status: 'stopped' });
      }
      m = /^\/v1\/sandboxes\/([^/]+)$/.exec(p);
      if (req.method === 'DELETE' && m) {
        if (!this.sandboxes.delete(m[1]))
          return this.json(res, 404, { error: { code: 'not_found', message: 'no such sandbox' } });
        return this.json(res, 200, { id: m[1], status: 'deleted' });
      }
    }
    return this.json(res, 404, { error: { code: 'not_found', message: `no route for ${req.method} ${p}` } });
  }
}
