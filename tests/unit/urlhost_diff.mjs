// urlhost_parse against the WHATWG URL Standard as node implements it (the
// global URL): a seeded corpus of URLs, hand-written tricks plus random
// combinations of hosts, userinfo, ports and noise, goes through both, and
// every URL must agree:
//  - where urlhost accepts, node accepts too, with the same scheme, kind,
//    host (one trailing dot aside, which urlhost removes) and port;
//  - where node refuses, urlhost refuses;
//  - where urlhost refuses and node accepts, the refusal is one urlhost.h
//    documents (IDNA beyond Latin-1 letters, an empty label, a domain
//    longer than 253), and node's result shows that reason: those are
//    counted by reason, anything else is a disagreement;
//  - one leniency, also documented: urlhost keeps an xn-- label that
//    decodes beyond Latin-1 without checking it. Where node refuses such a
//    URL, it must be for those labels: node takes the URL with them
//    replaced. Counted too.
// Usage: node urlhost_diff.mjs URLHOST_LINES_EXE. Deterministic; for
// exploring, the environment's URLHOST_DIFF_SEED and URLHOST_DIFF_CASES
// pick another corpus and URLHOST_DIFF_SHOW how many disagreements are
// printed (20). Exits 1 on any disagreement.
import { spawnSync } from 'node:child_process';
import { prng } from '../e2e/lib/util.mjs';

const SPECIAL_PORTS = { http: '80', https: '443', ws: '80', wss: '443', ftp: '21' };

// ---- the corpus --------------------------------------------------------

// Bytes that are not UTF-8 travel as Buffers; everything else as strings.
const raw = (...bytes) => Buffer.from(bytes);
const toBytes = (parts) =>
  Buffer.concat(parts.flat(Infinity).map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p, 'utf8'))));

function generator(random) {
  const int = (n) => Math.floor(random() * n);
  const pick = (list) => list[int(list.length)];
  const chance = (p) => random() < p;
  const some = (n, f) => Array.from({ length: n }, f);

  const ldh = 'abcdefghijklmnopqrstuvwxyz0123456789-';
  const plainLabel = () =>
    some(1 + int(10), () => {
      const c = pick(ldh);
      return chance(0.2) ? c.toUpperCase() : c;
    }).join('');

  const fragments = [
    'example', 'EXAMPLE', 'Allowed', 'www', 'localhost', 'a', 'z', '-', '_', 'a_b', 'a-',
    // punycode, valid and not
    'xn--bcher-kva', 'XN--BCHER-KVA', 'xn--ll-zda', 'xn--zca', 'xn--9ca', 'xn--80a',
    'xn--wgv71a119e', 'xn--ls8h', 'xn--', 'xn--a', 'xn--zz', 'xn--abc', 'xn--abc-', 'xn---abc',
    'xn--a-ecp', 'xn--xn--a-', 'xn--fca', 'xn--0ca', 'xn--ab-4ca', 'xn--a\u00e9',
    // Latin-1 and beyond
    'bücher', 'BÜCHER', 'München', 'café', 'é', 'É', 'àÿ', 'Þ', 'þ', 'straße', 'ß', '\u00d7',
    '\u00f7', '\u00a1', '\u00aa', '\u00ad', '\u00a0', '\u00b2', '\u00b5', '\u0080', '日本', 'ａ', 'Ａ',
    '\u200d', '\u200c', 'a\u0301', '\u0301a', 'ﬀ', 'İ', 'Ω', 'ω', '\ufeff', 'ℂ', 'א', 'ب',
    '\u{1f600}', '\ufffd', '\u2024', '\u3002', '\uff0e', '\uff61',
    // percent-encoding
    '%41', '%61', '%2e', '%2E', '%00', '%zz', '%', '%4', '%C3%BC', '%c3%bc', '%C3%9C', '%ff', '%25',
    '%20', '%7f', '%5c', '%2f', '%3a', '%40', '%5b', '%5d', '%3f', '%23', '%09', '%0a', '%E2%80%8D',
    '%EF%BC%A1', '%c3', '%30', '%78', '%3A',
    // code points the standard forbids in a domain, and some it allows
    ' ', '<', '>', '^', '|', '[', ']', '\x7f', '\x01', '\x00', '\x1f', '\x1b', '"', '`', '{', '}',
    "'", '!', '$', '&', '*', '+', ',', ';', '=', '~', '(', ')', '%', '\\',
    // labels that look like numbers
    '0', '00', '09', '0x', '0X', '0x1g', '0X7F', '127', '255', '256', '4294967295', '08', '1e3',
    '0x100000000', '99999999999999999999',
    // long labels
    'a'.repeat(63), 'a'.repeat(64), 'b'.repeat(120),
    // bytes that are not UTF-8
    raw(0xc3), raw(0xff), raw(0xc1, 0x81), raw(0xe3, 0x80), raw(0xed, 0xa0, 0x80), raw(0x80),
  ];
  const label = () => {
    if (chance(0.7)) return plainLabel();
    const n = 1 + (chance(0.3) ? int(3) : 0);
    return some(n, () => (chance(0.3) ? plainLabel() : pick(fragments)));
  };
  const dots = ['.', '.', '.', '.', '.', '..', '%2e', '%2E', '\u3002', '\uff0e', '\uff61'];
  const domain = () => {
    const parts = [];
    if (chance(0.03)) parts.push('.');
    const n = 1 + int(4);
    for (let i = 0; i < n; i++) {
      if (i > 0) parts.push(chance(0.9) ? '.' : pick(dots));
      parts.push(label());
    }
    if (chance(0.1)) parts.push(chance(0.8) ? '.' : pick(dots));
    return parts;
  };

  const ipv4Number = () => {
    const v = chance(0.8) ? int(256) : chance(0.5) ? int(1 << 24) : Math.floor(random() * 2 ** 33);
    switch (int(7)) {
      case 0: return '0x' + v.toString(16);
      case 1: return '0X' + v.toString(16).toUpperCase();
      case 2: return '0' + v.toString(8);
      case 3: return '00' + v.toString(8);
      case 4: return pick(['', '0', '0x', '09', '0x1g', '08', 'a', '1a', '%31', '4294967296']);
      default: return String(v);
    }
  };
  const ipv4 = () => {
    const n = chance(0.1) ? 5 : 1 + int(4);
    const parts = some(n, ipv4Number).join('.');
    return chance(0.1) ? parts + '.' : chance(0.03) ? parts + '..' : parts;
  };

  const hex16 = () => {
    const v = chance(0.3) ? 0 : int(0x10000);
    const s = v.toString(16);
    return chance(0.1) ? s.toUpperCase() : chance(0.1) ? s.padStart(4, '0') : s;
  };
  const ipv6Inside = () => {
    const v4 = chance(0.25);
    const n = v4 ? 6 : 8;
    let groups = some(n, hex16);
    if (chance(0.6)) {
      const at = int(n + 1);
      const len = int(n - at + 1);
      groups = [...groups.slice(0, at), '', ...groups.slice(at + len)];
      if (at === 0) groups.unshift('');
      if (at + len === n) groups.push('');
    }
    if (chance(0.05)) groups.push(hex16());
    if (chance(0.05)) groups.splice(int(groups.length), 1);
    let s = groups.join(':');
    if (v4) {
      const dotted = some(chance(0.9) ? 4 : pick([1, 3, 5]), () =>
        pick([String(int(256)), String(int(256)), '0', '00', '04', '256', '0x1', ''])
      );
      s += (s.endsWith(':') || s === '' ? '' : ':') + dotted.join('.');
    }
    if (chance(0.05)) s = s.replace(/:/, ':::');
    if (chance(0.05)) s += pick(['%25eth0', '%eth0', '%251', ' ', 'g', '12345']);
    if (chance(0.03)) s = pick(['', ':', '::', ':::', '1', '::1::', ':1', '1:', '::ffff:1.2.3.4']);
    return s;
  };
  const ipv6 = () => {
    const inside = ipv6Inside();
    const r = random();
    if (r < 0.9) return '[' + inside + ']';
    if (r < 0.94) return '[' + inside;
    if (r < 0.97) return '[' + inside + ']' + pick(['x', '.a', ':', '[', '%5d']);
    return pick(['[' + inside.toUpperCase() + ']', inside, 'a[' + inside + ']']);
  };

  // Around URLHOST_MAX, in letters, percent-encoded letters or Latin-1.
  const longDomain = () => {
    const target = 240 + int(30);
    const parts = [];
    let len = 0;
    while (len < target) {
      const n = Math.min(1 + int(63), target - len);
      const kind = int(4);
      const unit = kind === 0 ? '%61' : kind === 1 && chance(0.5) ? 'é' : 'a';
      parts.push(unit.repeat(n));
      len += n + 1;
      if (len < target) parts.push('.');
    }
    if (chance(0.3)) parts.push('.');
    return parts;
  };

  const host = () => {
    const r = random();
    if (r < 0.45) return domain();
    if (r < 0.65) return ipv4();
    if (r < 0.82) return ipv6();
    if (r < 0.9) return longDomain();
    if (r < 0.95) return '';
    return [domain(), pick(['\\', '%5c', '/', '?', '#', '@', ':', ' ', '\t', '\n']), domain()];
  };

  // Each piece mostly from its first list, which the standard accepts,
  // now and then from the second, which it does not always.
  const either = (good, bad, p = 0.1) => (chance(p) ? pick(bad) : pick(good));
  const scheme = () =>
    either(
      ['http', 'http', 'http', 'https', 'https', 'HTTP', 'hTtPs', 'ws', 'wss', 'WSS', 'ftp',
        'file', 'FILE', 'data', 'javascript', 'about', 'chrome', 'foo', 'blob', 'view-source',
        'sc+1.x', 'h\ttp', 'ht\ntps', 'a'.repeat(40)],
      ['1http', '', 'ht tp', 'http\u00e9', '+http', 'ht%74p'],
      0.05
    );
  const separator = () =>
    pick(['//', '//', '//', '//', '/', '', '\\\\', '/\\', '\\/', '///', '////', '\\']);
  const userinfo = () =>
    either(
      ['', '', '', '', '', 'user@', 'user:pass@', 'a@b@', ':@', 'u%40x@', 'user:p@ss@', 'a:b:c@',
        'évil@', 'a b@', 'a%zz@', '[::1]@', 'allowed.example:80@', 'x:@', 'a\\b@'],
      ['@', 'evil.example\\@', 'a/b@', 'a?@', 'a#@']
    );
  const port = () =>
    either(
      ['', '', '', '', '', '', ':', ':80', ':443', ':8080', ':65535', ':0', ':00080', ':21'],
      [':65536', ':-1', ':8a', ':80:90', ': 80', ':99999999999999999999', ':1%30', ':0x50', ':+1']
    );
  const tail = () =>
    pick(['', '', '', '/', '/', '/', '/', '/path', '?q', '#f', '\\x', '/a?b#c', '?@evil.example',
      '#@evil.example', '/@evil.example', '/é', '/%zz', '/a b', '?\u00e9']);
  const lead = () =>
    either(['', '', '', '', '', '', ' ', '\t', '\n', '\r', '\x00', '\x01', '\x1f', ' \x1f\x0b'],
      ['\x7f', '\u00a0', '\ufeff']);
  const trail = () =>
    pick(['', '', '', '', '', '', ' ', '\t', '\n', '\x00', '\x1f', '\x7f', '\u00a0']);

  // Tabs and newlines dropped in anywhere (the standard removes them
  // first), but not inside a UTF-8 sequence: the browser is given text.
  const sprinkle = (bytes) => {
    if (!chance(0.1)) return bytes;
    let at = int(bytes.length + 1);
    while (at < bytes.length && (bytes[at] & 0xc0) === 0x80) at++;
    const ws = Buffer.from(pick(['\t', '\n', '\r']));
    return Buffer.concat([bytes.subarray(0, at), ws, bytes.subarray(at)]);
  };

  const url = () => {
    const name = scheme();
    const special = /^(https?|wss?|ftp|file)$/i.test(name);
    const body =
      special || chance(0.5)
        ? [separator(), userinfo(), host(), port(), tail()]
        : [pick(['', '//', '/']),
          pick(['alert(1)', 'text/html,<b>', 'blank', 'srcdoc', 'blank?x', 'srcdoc#y', 'BLANK',
            'blankx', 'x', '']),
          tail()];
    return sprinkle(toBytes([lead(), name, ':', body, trail()]));
  };
  return url;
}

// Tricks written by hand: the unit test's and more.
const HANDWRITTEN = [
  'http://evil.example\\@allowed.example/', 'http://a@b@allowed.example/',
  'http://allowed.example:80@evil.example/', 'http://allowed.example?@evil.example/',
  'http://allowed.example#@evil.example/', 'http://evil.example/@allowed.example/',
  'HTTP://ALLOWED.example./', 'http://allowed.example%2eevil.example/', 'http://%41llowed.example/',
  'http://allo\twed.exa\nmple\r/', 'h\ttt\np://allowed.example/',
  '\x01 \x1f http://allowed.example/ \x1f', 'http://allowed.example\x7f/', 'http:allowed.example',
  'https:////allowed.example', 'http:\\\\allowed.example\\x', 'https:/\\/\\allowed.example',
  'ws://a/', 'wss://a/', 'ftp://a/', '//allowed.example/', 'allowed.example', '/path', '', ' \t ',
  '1http://a/', ':a', 'about:blank', 'about:srcdoc', 'ABOUT:blank#x', 'about:blank?x=1',
  ' about:bl\tank ', 'about:blankx', 'about://blank', 'about:', 'about:version', 'about:BLANK',
  'about:/blank', 'about:blank ', 'about:blank\x00', 'javascript:alert(1)', 'data:text/html,<h1>x',
  'blob:https://a.example/1', 'view-source:http://a/', 'chrome://settings',
  'foo://allowed.example/', 'file:///etc/passwd', 'FILE://allowed.example/etc/passwd',
  'file://c:/x', 'file://c|/x', 'file://localhost/x', 'file://LOCALHOST./x', 'file://a b/',
  'file://xn--a/', 'file://[::1]/', 'file://[::1/', 'file://1.2.3.09/', 'file://a:80/',
  'file:\\\\a b', 'file:a b', 'file://%zz/', 'file://a%2fb/', 'file:///a b', 'file://0x7f.1/',
  'file://bücher/', 'file://日本/', 'foo://a b/', 'foo://user@/', 'foo://@/', 'foo://:80/',
  'foo://[bad/', 'foo://[::1]x/', 'foo://a:99999/', 'foo://a:8a/', 'foo://a%/', 'foo://a\x7f/',
  'foo://a\x00b/', 'foo://a^b/', 'foo://a|b/', 'foo://a[b]/', 'foo://a\\b/', 'foo:///x', 'foo://',
  'foo://a:/', 'foo://a:65535/', 'foo://[::1]:80/', 'foo:a b', 'sc://\x1f/', 'sc://é/', 'sc://%zz/',
  'javascript://a b', 'data://[x', 'http://127.0.0.1/', 'http://0x7f.1/', 'http://0X7F.1/',
  'http://2130706433/', 'http://0x7f000001/', 'http://0177.0.0.1/', 'http://017700000001/',
  'http://127.1/', 'http://127.0.1/', 'http://127.0.0.1./', 'http://%30x7f.1/', 'http://1.256/',
  'http://4294967295/', 'http://0/', 'http://0x/', 'http://1.0x/', 'http://0300.0250.0.1/',
  'http://4294967296/', 'http://0x100000000/', 'http://99999999999999999999999/',
  'http://1.2.16777216/', 'http://09/', 'http://foo.09/', 'http://1..2/', 'http://1.2.3.4.5/',
  'http://256.0.0.1/', 'http://1.2.3.a/', 'http://0x1g/', 'http://foo.0x1g/', 'http://1.2.3.4../',
  'http://.1.2.3.4/', 'http://1.2.3.4.5./', 'http://0x.0x.0x.0x/', 'http://00x7f/', 'http://0xx7f/',
  'http://1.2.3.0x/', 'http://1.2.3.08/', 'http://1.2.3.0b1/', 'http://1e3/', 'http://a.1/',
  'http://a.0x/', 'http://[::1]:9222/', 'http://[0:0:0:0:0:0:0:1]/', 'http://[::]/',
  'http://[1::]/', 'http://[2001:DB8:0:0:1:0:0:1]/', 'http://[1:0:3:4:5:6:7:8]/',
  'http://[::ffff:127.0.0.1]/', 'http://[::127.0.0.1]/', 'http://user@[fe80::1]:80/',
  'http://[::1/', 'http://[::1]x/', 'http://[]/', 'http://[1:2:3:4:5:6:7:8:9]/',
  'http://[1:2:3:4:5:6:7]/', 'http://[1::2::3]/', 'http://[:1]/', 'http://[1:]/',
  'http://[12345::]/', 'http://[::1.2.3.04]/', 'http://[::1.2.3]/', 'http://[::1.2.3.4.5]/',
  'http://[::1.2.3.256]/', 'http://[1:2:3:4:5:6:7:1.2.3.4]/', 'http://[::1%25eth0]/',
  'http://[::1]evil/', 'http://[1:2:3:4:5:6:1.2.3.4]/', 'http://[0:0:1:0:0:0:1:0]/',
  'http://[1:0:0:2:0:0:0:3]/', 'http://[::0.0.0.0]/', 'http://[ffff::]/', 'http://[::1:]/',
  'http://[::1.2.3.4:5]/', 'http://[a::b]:/', 'http://[::1]:65536/', 'http://[::1]]/',
  'http://[[::1]/', 'http://[::%31]/', 'http://%5B::1%5D/', 'http://a:8080/', 'http://a:65535/',
  'http://a:/', 'http://a:00000000000000080/', 'http://a:65536/', 'http://a:8a/', 'http://a:80:90/',
  'http://a:-1/', 'https://a:443/', 'http://a:80/', 'ws://a:443/', 'http://', 'http:///',
  'http://user@/', 'http://@/', 'http://:80/', 'http://?x', 'https:', 'http:#',
  'http://allowed .example/', 'http://a<b/', 'http://a^b/', 'http://a|b/', 'http://a%/',
  'http://a%zz/', 'http://a%25b/', 'http://a%00b/', 'http://a%2fb/', 'http://a%5cb/',
  'http://a%40b/', 'http://a%3ab/', 'http://a%20b/', 'http://a%7fb/', 'http://a]b/',
  'http://allowed.example\x00.evil/', 'http://a\x01b/', 'http://a_b~c!$&\'()*+,;=.example/',
  'http://a"b/', 'http://a`b/', 'http://a{b}/', 'http://a%09b/', 'http://a..b/', 'http://.a/',
  'http://a../', 'http://./', 'http://%2e/', 'http://../', 'http://a.%2e/',
  'http://allöwed.example/', 'http://ALLÖWED.example/', 'http://%C3%A9.example/',
  'http://bücher.de/', 'http://München.de./', 'http://café.fr/', 'http://àÿ.test/',
  'http://straße.de/', 'http://a×b.test/', 'http://a\u00a0b.test/', 'http://xn--aé.test/',
  'http://\xef\xbd\x81llowed.example/', 'http://allowed\u3002example/', 'http://%ff/',
  'http://XN--ll-zda.example/', 'http://日本.example/', 'http://a\u00adb/', 'http://a%EF%BB%BFb/',
  'http://xn--a.com/', 'http://xn--/', 'http://xn--zz/', 'http://xn--abc-/', 'http://xn---abc/',
  'http://xn--a-ecp.ru/', 'http://xn--80a/', 'http://xn--zca/', 'http://xn--9ca.com/',
  'http://xn--0ca/', 'http://xn--fca/', 'http://xn--xn--a-/', 'http://xn--a-/',
  'http://xn--bcher-kva-/', 'http://xn--BCHER-KVA.de/', 'http://xn--bcher-KVA.de/',
  'http://xn--ab-4ca/', 'http://xn--wgv71a119e.jp/', 'http://a.xn--ls8h/', 'http://xn--ls8h/',
  'http://xn--1ca/', 'http://xn--a-/', 'http://xn--a-0a/', 'http://xn--99999999/',
  'http://xn--zzzzzzzzzzzzzz/', 'http://-/', 'http://a-/', 'http://-a-.example/', 'http://ab--c/',
  'http://a\u2024b/', 'http://\u0301a/', 'http://a\u200db/', 'http://\u{1f600}/', 'http://\ufffd/',
  'http://Ω/', 'http://İ/',
];
for (const n of [252, 253, 254]) {
  const a = 'a'.repeat(n);
  HANDWRITTEN.push(`http://${a}/`, `http://${a}./`, `http://${'%61'.repeat(n)}/`);
  HANDWRITTEN.push(`http://${'a.'.repeat(Math.floor(n / 2))}${n % 2 ? 'a' : ''}/`);
  HANDWRITTEN.push(`http://${'é'.repeat(Math.floor(n / 4))}.example/`);
}
HANDWRITTEN.push(`http://${'a'.repeat(10000)}@evil.example/`, `http://${'a'.repeat(70000)}/`);

function corpus(seed, count) {
  const url = generator(prng(seed));
  const cases = HANDWRITTEN.map((s) => Buffer.from(s, 'utf8'));
  for (let i = 0; i < count; i++) cases.push(url());
  // Non-UTF-8 bytes as the bytes themselves, not as UTF-8 of U+FFFD.
  cases.push(raw(...Buffer.from('http://a'), 0xc3, ...Buffer.from('.test/')));
  cases.push(raw(...Buffer.from('http://'), 0xc1, 0x81, ...Buffer.from('.test/')));
  cases.push(raw(...Buffer.from('http://a.test/'), 0xff));
  return cases;
}

// ---- the two parsers ---------------------------------------------------

function runUrlhost(exe, cases) {
  const input = cases.map((b) => b.toString('hex')).join('\n') + '\n';
  const r = spawnSync(exe, [], { input, maxBuffer: 1 << 28, encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const how = r.error ?? `exit ${r.status} ${r.signal ?? ''}`;
    console.error(`urlhost_lines failed: ${how} ${r.stderr}`);
    process.exit(1);
  }
  const lines = r.stdout.split('\n');
  lines.pop();
  if (lines.length !== cases.length) {
    console.error(`urlhost_lines gave ${lines.length} lines for ${cases.length} URLs`);
    process.exit(1);
  }
  return lines.map((line) => {
    const f = line.split('\t');
    if (f[0] === 'ok')
      return { ok: true, kind: f[1], scheme: f[2], port: Number(f[3]), host: f[4] };
    if (f[0] === 'refused') return { ok: false, errno: f[1], why: f[2] };
    console.error(`urlhost_lines: unexpected line ${JSON.stringify(line)}`);
    process.exit(1);
  });
}

// A leading U+FEFF is part of the URL, not a byte order mark to drop.
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });
const asText = (bytes) => utf8.decode(bytes);

// What urlhost should say of a URL by node's reading of it; null if node
// refuses it. A URL is handed to node as text, the way a CDP client's
// JSON gives it to the browser: bytes that are not UTF-8 become U+FFFD.
function whatwg(bytes) {
  let u;
  try {
    u = new URL(asText(bytes));
  } catch {
    return null;
  }
  const scheme = u.protocol.slice(0, -1);
  if (scheme in SPECIAL_PORTS) {
    const h = u.hostname;
    const kind = h.startsWith('[') ? 'ipv6' : /^\d+\.\d+\.\d+\.\d+$/.test(h) ? 'ipv4' : 'domain';
    return { kind, scheme, host: kind === 'domain' ? h.replace(/\.$/, '') : h, port: u.port };
  }
  // file: has a host, which urlhost checks but does not return.
  if (scheme === 'file') return { kind: 'file', scheme, host: u.hostname };
  if (scheme === 'about' && (u.pathname === 'blank' || u.pathname === 'srcdoc'))
    return { kind: 'blank', scheme };
  return { kind: 'opaque', scheme };
}

// ---- comparing ---------------------------------------------------------

const hasHost = (kind) => kind === 'domain' || kind === 'ipv4' || kind === 'ipv6';

// Why urlhost accepting differs from node, or null when it does not.
function acceptedDiffers(ours, theirs) {
  if (!theirs) return 'urlhost accepts, node refuses';
  if (ours.kind !== theirs.kind) return `kind ${ours.kind}, node ${theirs.kind}`;
  if (ours.scheme !== (theirs.scheme.length < 32 ? theirs.scheme : ''))
    return `scheme "${ours.scheme}", node "${theirs.scheme}"`;
  if (!hasHost(ours.kind))
    return ours.host === '' && ours.port === -1 ? null : 'a host or port where none is';
  if (ours.host !== theirs.host) return `host "${ours.host}", node "${theirs.host}"`;
  const port =
    ours.port === -1 || String(ours.port) === SPECIAL_PORTS[ours.scheme] ? '' : String(ours.port);
  if (port !== theirs.port) return `port ${ours.port}, node "${theirs.port}"`;
  return null;
}

// The documented refusal a URL node accepts falls under, if node's result
// bears it out; null otherwise.
function refusalByDesign(ours, theirs, bytes) {
  if (!hasHost(theirs.kind) && theirs.kind !== 'file') return null;
  const labels = theirs.host.split('.');
  switch (ours.errno) {
    case 'EILSEQ':
      // Non-ASCII in the URL, written or percent-encoded: IDNA that node
      // did and urlhost does not.
      return bytes.some((b) => b >= 0x80) || /%[89a-f][0-9a-f]/i.test(bytes.toString('latin1'))
        ? 'idna'
        : null;
    case 'ENAMETOOLONG':
      return theirs.host.length > 253 ? 'too-long' : null;
    case 'EINVAL':
      return ours.why === 'a host with an empty label' && labels.includes('')
        ? 'empty-label'
        : null;
  }
  return null;
}

// RFC 3492's decoder: the code points of a label's part after "xn--", or
// null when it is not punycode or needs more than 32 bits, as urlhost's.
function punycodeDecode(s) {
  const base = 36, tmin = 1, tmax = 26;
  const delimiter = s.lastIndexOf('-');
  const out = delimiter > 0 ? [...s.slice(0, delimiter)].map((c) => c.codePointAt(0)) : [];
  let n = 0x80, i = 0, bias = 72;
  for (let p = delimiter > 0 ? delimiter + 1 : 0; p < s.length; ) {
    const old = i;
    for (let w = 1, k = base; ; k += base) {
      if (p >= s.length) return null;
      const c = s.charCodeAt(p++);
      const digit = c >= 0x61 && c <= 0x7a ? c - 0x61 : c >= 0x30 && c <= 0x39 ? c - 22 : -1;
      if (digit < 0) return null;
      i += digit * w;
      if (i >= 2 ** 32) return null;
      const t = k <= bias ? tmin : k >= bias + tmax ? tmax : k - bias;
      if (digit < t) break;
      w *= base - t;
    }
    let delta = old === 0 ? Math.floor((i - old) / 700) : Math.floor((i - old) / 2);
    delta += Math.floor(delta / (out.length + 1));
    let k = 0;
    for (; delta > ((base - tmin) * tmax) >> 1; k += base)
      delta = Math.floor(delta / (base - tmin));
    bias = k + Math.floor(((base - tmin + 1) * delta) / (delta + 38));
    n += Math.floor(i / (out.length + 1));
    i %= out.length + 1;
    if (n > 0x10ffff) return null;
    out.splice(i++, 0, n);
  }
  return out;
}

const beyondLatin1 = (label) =>
  (punycodeDecode(label.slice(4).toLowerCase()) ?? []).some((c) => c > 0xff);

function accepts(url) {
  try {
    new URL(url);
    return true;
  } catch {
    return false;
  }
}

// Whether node refusing a URL urlhost accepts is the documented leniency:
// node takes the URL once its xn-- labels that decode beyond Latin-1 are
// replaced by a plain one. Tabs and newlines go first, as the standard
// has them go, and percent-encoded letters, digits and '-' are decoded,
// as a host's are: neither changes whether node takes the URL, and
// then neither splits a label.
function uncheckedPunycode(bytes) {
  const text = asText(bytes)
    .replace(/[\t\n\r]/g, '')
    .replace(/%(2d|3[0-9]|[46][1-9a-f]|[57][0-9a])/gi, (e) =>
      String.fromCharCode(parseInt(e.slice(1), 16))
    );
  const label = /(?<=[.\/\\@:]|%2e)xn--[^.\/\\?#:@%\x00-\x20]*/gi;
  const replaced = text.replace(label, (l) => (beyondLatin1(l) ? 'x' : l));
  return replaced !== text && accepts(replaced);
}

// Bytes as a JS string literal would write them: printable ASCII as it is.
function escape(bytes) {
  let s = '';
  for (const b of bytes)
    s += b === 0x5c ? '\\\\'
      : b === 0x22 ? '\\"'
      : b >= 0x20 && b < 0x7f ? String.fromCharCode(b)
      : '\\x' + b.toString(16).padStart(2, '0');
  return `"${s.length > 300 ? s.slice(0, 300) + `..." (${bytes.length} bytes)` : s + '"'}`;
}

function main() {
  const exe = process.argv[2];
  if (!exe) {
    console.error('usage: node urlhost_diff.mjs URLHOST_LINES_EXE');
    process.exit(2);
  }
  const seed = Number(process.env.URLHOST_DIFF_SEED ?? 20240611);
  const count = Number(process.env.URLHOST_DIFF_CASES ?? 4000);
  const shown = Number(process.env.URLHOST_DIFF_SHOW ?? 20);
  const cases = corpus(seed, count);
  const results = runUrlhost(exe, cases);

  const byDesign = {};
  const disagreements = [];
  const agreedBy = {};
  let agreed = 0;
  let unchecked = 0;
  cases.forEach((bytes, i) => {
    const ours = results[i];
    const theirs = whatwg(bytes);
    let problem = null;
    if (ours.ok && !theirs && uncheckedPunycode(bytes)) {
      unchecked++;
      return;
    }
    if (ours.ok) {
      problem = acceptedDiffers(ours, theirs);
    } else if (theirs) {
      const reason = refusalByDesign(ours, theirs, bytes);
      if (reason) {
        byDesign[reason] = (byDesign[reason] ?? 0) + 1;
        return;
      }
      problem =
        `urlhost refuses (${ours.errno}: ${ours.why}), ` +
        `node accepts: ${theirs.kind} "${theirs.host ?? ''}"`;
    }
    if (problem) {
      disagreements.push(`${escape(bytes)}: ${problem}`);
    } else {
      agreed++;
      const what = ours.ok ? ours.kind : 'both refuse';
      agreedBy[what] = (agreedBy[what] ?? 0) + 1;
    }
  });

  const reasons = Object.keys(byDesign).sort().map((k) => `${k} ${byDesign[k]}`).join(', ');
  const refused = Object.values(byDesign).reduce((a, b) => a + b, 0);
  console.log(
    `urlhost_whatwg: seed ${seed}, ${cases.length} cases: ${agreed} agreed, ` +
      `${refused} refused by design (${reasons || 'none'}), ` +
      `${unchecked} accepted with unchecked punycode, ${disagreements.length} disagreements`
  );
  console.log(`  agreed: ${Object.entries(agreedBy).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const d of disagreements.slice(0, shown)) console.log(`  ${d}`);
  if (disagreements.length > shown) console.log(`  ... and ${disagreements.length - shown} more`);
  process.exit(disagreements.length ? 1 : 0);
}

main();
