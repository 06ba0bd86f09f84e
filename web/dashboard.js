// Porthole dashboard: lists browser sessions and sandboxes, with links and a
// stop button, refreshed every few seconds.
//
// The admin token comes from the URL fragment (/dashboard#token=...), which
// browsers never send to a server; the page moves it to sessionStorage,
// clears it from the address bar, and sends it only as
// "Authorization: Bearer". Server data reaches the DOM as text, never HTML.

const REFRESH_MS = 3000;
const ARM_MS = 4000;          // a stop button waits this long for the second click
const STORAGE_KEY = 'porthole.token';

const el = {
  status: document.getElementById('status'),
  login: document.getElementById('login'),
  tokenInput: document.getElementById('token-input'),
  main: document.getElementById('main'),
  sessions: document.querySelector('#sessions tbody'),
  sandboxes: document.querySelector('#sandboxes tbody'),
};

const dash = {
  state: 'loading',
  refreshes: 0,
  lastError: null,
};
window.portholeDashboard = dash;

let token = null;
let timer = null;
let generation = 0;   // bumps on logout so stale refreshes are ignored
let notice = null;    // {text, level, until}: outcome of an action, shown a while

function tell(textMsg, level = 'info') {
  notice = { text: textMsg, level, until: Date.now() + 2 * REFRESH_MS };
  setState(dash.state === 'loading' ? 'ready' : dash.state, textMsg, level);
}

function setState(state, message, level = 'info') {
  dash.state = state;
  document.body.dataset.state = state;
  el.status.textContent = message;
  el.status.dataset.level = level;
}

function takeToken() {
  const hash = window.location.hash.replace(/^#/, '');
  const fromHash = new URLSearchParams(hash).get('token');
  if (fromHash) {
    try {
      sessionStorage.setItem(STORAGE_KEY, fromHash);
    } catch (e) {
      // Storage may be off; the token then lives in this page only.
    }
    history.replaceState(null, '', window.location.pathname + window.location.search);
    return fromHash;
  }
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch (e) {
    return null;
  }
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path) {
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `gateway unreachable (${e.message})`);
  }
  let body = null;
  const text = await resp.text();
  if (text) {
    try {
      body = JSON.parse(text);
    } catch (e) {
      body = null;
    }
  }
  if (!resp.ok) {
    const err = body && body.error ? body.error : {};
    throw new ApiError(resp.status, err.code || `http_${resp.status}`,
                       err.message || `${method} ${path}: HTTP ${resp.status}`);
  }
  return body;
}

// ---- formatting ---------------------------------------------------------

function safeHref(url) {
  if (typeof url !== 'string' || !url)
    return null;
  try {
    const u = new URL(url, window.location.href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch (e) {
    return null;
  }
}

function relativeTime(iso) {
  const t = typeof iso === 'number' ? iso : Date.parse(iso);
  if (!Number.isFinite(t))
    return { text: '—', title: '' };
  const s = Math.round((t - Date.now()) / 1000);
  const abs = Math.abs(s);
  const span = abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min`
                                                  : `${(abs / 3600).toFixed(1)} h`;
  return { text: s >= 0 ? `in ${span}` : `${span} ago`, title: new Date(t).toISOString() };
}

function text(tag, content, cls) {
  const n = document.createElement(tag);
  if (cls)
    n.className = cls;
  n.textContent = content == null ? '' : String(content);
  return n;
}

function link(label, url) {
  const href = safeHref(url);
  if (!href)
    return null;
  const a = document.createElement('a');
  a.textContent = label;
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  return a;
}

// ---- stop buttons ---------------------------------------------------------

// First click arms, second click within ARM_MS stops: no modal dialogs (they
// block automation and annoy people), and no stop by a stray click.
function stopButton(label, path, what) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'stop';
  b.textContent = label;
  let armTimer = null;
  b.addEventListener('click', async () => {
    if (b.dataset.armed !== '1') {
      b.dataset.armed = '1';
      b.textContent = `${label}?`;
      armTimer = setTimeout(() => {
        b.dataset.armed = '0';
        b.textContent = label;
      }, ARM_MS);
      return;
    }
    clearTimeout(armTimer);
    b.dataset.armed = '0';
    b.disabled = true;
    b.textContent = 'stopping…';
    try {
      await api('DELETE', path);
      tell(`${what} stopped`);
    } catch (e) {
      b.disabled = false;
      b.textContent = label;
      tell(`cannot stop ${what}: ${e.message}`, 'error');
    }
    refreshSoon();
  });
  return b;
}

// ---- tables -----------------------------------------------------------------

// Rows are keyed by id and updated in place, so a refresh does not reset a
// half-confirmed stop button or a selected CDP URL.
function syncRows(tbody, items, idOf, build, update, emptyText, columns) {
  const seen = new Set();
  const existing = new Map();
  for (const tr of tbody.querySelectorAll('tr[data-id]'))
    existing.set(tr.dataset.id, tr);
  let prev = null;
  for (const item of items) {
    const id = idOf(item);
    if (!id)
      continue;
    seen.add(id);
    let tr = existing.get(id);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.id = id;
      build(tr, item, id);
    }
    update(tr, item);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr)
      tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const [id, tr] of existing)
    if (!seen.has(id))
      tr.remove();
  const empty = tbody.querySelector('tr.empty');
  if (seen.size === 0 && !empty) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    const td = text('td', emptyText, 'empty');
    td.colSpan = columns;
    tr.appendChild(td);
    tbody.appendChild(tr);
  } else if (seen.size > 0 && empty) {
    empty.remove();
  }
}

function setCell(tr, name, value, title) {
  const td = tr.querySelector(`td[data-col="${name}"]`);
  if (td.textContent !== value)
    td.textContent = value;
  if (title !== undefined)
    td.title = title;
  return td;
}

function sessionId(s) {
  return s.session_id || s.id || null;
}

function buildSessionRow(tr, s, id) {
  for (const col of ['id', 'status', 'mode', 'profile', 'expires', 'open', 'cdp', 'actions']) {
    const td = document.createElement('td');
    td.dataset.col = col;
    tr.appendChild(td);
  }
  tr.querySelector('[data-col="id"]').className = 'id';

  const cdp = tr.querySelector('[data-col="cdp"]');
  const input = document.createElement('input');
  input.className = 'cdp';
  input.readOnly = true;
  input.setAttribute('aria-label', `CDP URL of ${id}`);
  input.addEventListener('focus', () => input.select());
  cdp.appendChild(input);
  const copy = document.createElement('button');
  copy.type = 'button';
  copy.className = 'copy';
  copy.textContent = 'copy';
  copy.addEventListener('click', async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      copy.textContent = 'copied';
    } catch (e) {
      // Plain-HTTP pages may not have the clipboard API: the text is selected.
      copy.textContent = 'press Ctrl+C';
    }
    setTimeout(() => { copy.textContent = 'copy'; }, 2000);
  });
  cdp.appendChild(copy);

  tr.querySelector('[data-col="actions"]').appendChild(
    stopButton('Stop', `/v1/browser/sessions/${encodeURIComponent(id)}`, `session ${id}`));
}

function updateSessionRow(tr, s) {
  setCell(tr, 'id', sessionId(s));
  const status = setCell(tr, 'status', s.status || '?', s.error || '');
  status.className = 'status';
  status.dataset.status = s.status || '';
  const live = s.mode ? s.mode === 'live' : Boolean(s.live_url);
  const vp = s.viewport && s.viewport.width ? ` ${s.viewport.width}×${s.viewport.height}` : '';
  setCell(tr, 'mode', `${live ? 'live' : 'headless'}${vp}${s.record_video ? ' ⏺' : ''}`);
  setCell(tr, 'profile', s.profile_id || '—');
  const exp = relativeTime(s.expires_at);
  setCell(tr, 'expires', exp.text, exp.title);

  const open = tr.querySelector('[data-col="open"]');
  const links = document.createElement('span');
  links.className = 'links';
  for (const [label, url] of [['watch', s.live_url], ['control', s.control_url]]) {
    const a = link(label, url);
    if (a)
      links.appendChild(a);
  }
  if (!links.childNodes.length)
    links.textContent = '—';
  open.replaceChildren(links);

  const input = tr.querySelector('input.cdp');
  const cdp = typeof s.cdp_url === 'string' ? s.cdp_url : '';
  if (input.value !== cdp)
    input.value = cdp;
}

function buildSandboxRow(tr, sb, id) {
  for (const col of ['id', 'status', 'vcpus', 'memory', 'expires', 'actions']) {
    const td = document.createElement('td');
    td.dataset.col = col;
    tr.appendChild(td);
  }
  tr.querySelector('[data-col="id"]').className = 'id';
  tr.querySelector('[data-col="actions"]').appendChild(
    stopButton('Delete', `/v1/sandboxes/${encodeURIComponent(id)}`, `sandbox ${id}`));
}

function updateSandboxRow(tr, sb) {
  setCell(tr, 'id', sb.id);
  const status = setCell(tr, 'status', sb.status || '?', sb.error || '');
  status.className = 'status';
  status.dataset.status = sb.status || '';
  setCell(tr, 'vcpus', sb.vcpus != null ? String(sb.vcpus) : '—');
  setCell(tr, 'memory', sb.mem_mib != null ? `${sb.mem_mib} MiB` : '—');
  const exp = relativeTime(sb.expires_at);
  setCell(tr, 'expires', exp.text, exp.title);
}

// ---- refresh loop ---------------------------------------------------------

async function refresh() {
  const gen = generation;
  try {
    const [sessions, sandboxes] = await Promise.all([
      api('GET', '/v1/browser/sessions'),
      api('GET', '/v1/sandboxes'),
    ]);
    if (gen !== generation)
      return;
    const ss = Array.isArray(sessions && sessions.sessions) ? sessions.sessions : [];
    const sbs = Array.isArray(sandboxes && sandboxes.sandboxes) ? sandboxes.sandboxes : [];
    syncRows(el.sessions, ss, sessionId, buildSessionRow, updateSessionRow,
             'no browser sessions', 8);
    syncRows(el.sandboxes, sbs, (sb) => sb.id, buildSandboxRow, updateSandboxRow,
             'no sandboxes', 6);
    dash.refreshes++;
    dash.lastError = null;
    el.main.hidden = false;
    if (notice && Date.now() < notice.until)
      setState('ready', notice.text, notice.level);
    else
      setState('ready', `${ss.length} session${ss.length === 1 ? '' : 's'}, ` +
                        `${sbs.length} sandbox${sbs.length === 1 ? '' : 'es'} · ` +
                        `updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    if (gen !== generation)
      return;
    dash.lastError = e.message;
    if (e.status === 401 || e.status === 403) {
      logout(`the gateway rejected the token (${e.message})`);
      return;
    }
    setState('error', e.message, 'error');
  }
  if (gen === generation)
    timer = setTimeout(refresh, REFRESH_MS);
}

function refreshSoon() {
  if (!token)
    return;
  clearTimeout(timer);
  generation++;
  refresh();
}

function logout(message) {
  generation++;
  clearTimeout(timer);
  token = null;
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch (e) {
    // nothing stored
  }
  el.main.hidden = true;
  el.login.hidden = false;
  setState('login', message, message ? 'error' : 'info');
  el.tokenInput.focus();
}

function start(t) {
  token = t;
  el.login.hidden = true;
  setState('loading', 'loading…');
  refreshSoon();
}

el.login.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = el.tokenInput.value.trim();
  el.tokenInput.value = '';
  if (!t)
    return;
  try {
    sessionStorage.setItem(STORAGE_KEY, t);
  } catch (e) {
    // kept in memory only
  }
  start(t);
});

window.addEventListener('hashchange', () => {
  const t = takeToken();
  if (t && t !== token)
    start(t);
});

const initial = takeToken();
if (initial)
  start(initial);
else
  logout('');
