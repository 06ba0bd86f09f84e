// Test pages on the host for browsers in guests. It listens on 127.0.0.1,
// which no guest reaches directly: a guest's one way out is the gateway's
// egress proxy, and the test gateway's config names this host "pages.test"
// there and lets 127.0.0.1 through (see e2eConfig), so pages are loaded
// from `pages.guestUrl` (http://pages.test:PORT) inside the guest.
// Every request is recorded, so a test can tell whether a navigation reached
// the server at all.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';

export const GUEST_HOST_ADDR = process.env.PORTHOLE_E2E_GUEST_HOST || 'pages.test';

const COLORS = {
  red: 'rgb(255, 0, 0)',
  green: 'rgb(0, 255, 0)',
  blue: 'rgb(0, 0, 255)',
  white: 'rgb(255, 255, 255)',
};

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body, head = '') {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>${head}</head>` +
         `<body>${body}</body></html>`;
}

export class TestPages {
  constructor() {
    this.requests = [];   // {method, path, query, cookie, time}
    // Content of the download, unique per run so a stale file cannot pass.
    this.downloadBody = `porthole e2e download ${randomBytes(8).toString('hex')}\n`;
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    this.hostUrl = `http://127.0.0.1:${this.port}`;
    this.guestUrl = `http://${GUEST_HOST_ADDR}:${this.port}`;
    return this;
  }

  async close() {
    this.server.closeAllConnections?.();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Requests whose path is p (or starts with p when p ends with '*'). */
  hits(p) {
    const prefix = p.endsWith('*') ? p.slice(0, -1) : null;
    return this.requests.filter((r) => (prefix ? r.path.startsWith(prefix) : r.path === p));
  }

  send(res, status, type, body, headers = {}) {
    res.writeHead(status, {
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      ...headers,
    });
    res.end(body);
  }

  handle(req, res) {
    const url = new URL(req.url, 'http://x');
    const q = url.searchParams;
    this.requests.push({ method: req.method, path: url.pathname, query: Object.fromEntries(q),
                         host: req.headers.host ?? '', cookie: req.headers.cookie ?? '', time: Date.now() });
    const html = (title, body, head, headers) =>
      this.send(res, 200, 'text/html; charset=utf-8', page(title, body, head), headers);

    const solid = /^\/solid\/(\w+)$/.exec(url.pathname);
    if (solid && COLORS[solid[1]]) {
      return html(`solid ${solid[1]}`, '',
                  `<style>html,body{margin:0;height:100%;background:${COLORS[solid[1]]};cursor:none;overflow:hidden}</style>`);
    }
    switch (url.pathname) {
    case '/title':
      return html('Porthole e2e',
                  '<h1 id="greeting">Hello from the host</h1><p id="marker">served by the e2e test server</p>');
    case '/cookie/set': {
      const name = q.get('name') || 'porthole';
      const value = q.get('value') || '1';
      const days = Number(q.get('days') || 0);
      const cookie = `${name}=${value}; Path=/; SameSite=Lax${days ? `; Max-Age=${days * 86400}` : ''}`;
      return html('cookie set', `<p id="done">set ${esc(name)}</p>`, '', { 'set-cookie': cookie });
    }
    case '/download': {
      const tag = encodeURIComponent(q.get('tag') || '');
      return html('download', `<a id="dl" href="/files/report.txt?tag=${tag}">report.txt</a>`);
    }
    case '/files/report.txt':
      return this.send(res, 200, 'text/plain; charset=utf-8', this.downloadBody,
                       { 'content-disposition': 'attachment; filename="report.txt"' });
    case '/redirect':
      return this.send(res, 302, 'text/plain', 'redirect\n', { location: q.get('to') || '/' });
    case '/links': {
      // A link and an image towards ?to= (the page's own origin otherwise).
      const to = q.get('to') || '/';
      return html('links', `<a id="link" href="${esc(to)}/clicked">away</a>` +
                  `<img id="img" src="${esc(to)}/img.png">`);
    }
    case '/clicks':
      // A full-window page counting mouse presses anywhere on it.
      return html('clicks', '<p id="count">0</p>',
                  '<style>html,body{margin:0;height:100%;background:#fff}</style>' +
                  '<script>window.clicks=0;addEventListener("mousedown",()=>{' +
                  'window.clicks++;document.getElementById("count").textContent=String(window.clicks)})</script>');
    default:
      return this.send(res, 404, 'text/plain', 'not found\n');
    }
  }
}

export async function startTestPages() {
  return new TestPages().start();
}
