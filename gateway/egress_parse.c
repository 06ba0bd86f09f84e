/* egress_parse: the pure parsers of the egress proxy (request heads, TLS
 * ClientHello SNI, DNS messages, CIDRs and the internal address ranges).
 * No I/O and no state, so each is unit-tested and fuzzable on its own. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "egress.h"

/* ---- addresses ---- */

int egress_cidr_parse(const char *text, struct egress_cidr *out)
{
    char buf[64];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    int max;

    if (n == 0 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, text, n);
    buf[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -EINVAL;
    }
    out->prefix = max;
    if (slash) {
        const char *p = slash + 1;
        int v = 0;
        if (*p == '\0' || strlen(p) > 3)
            return -EINVAL;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -EINVAL;
            v = v * 10 + (*p - '0');
        }
        if (v > max)
            return -EINVAL;
        out->prefix = v;
    }
    return 0;
}

static bool prefix_match(const uint8_t *a, const uint8_t *net, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;

    if (memcmp(a, net, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static bool v4_internal(const uint8_t *a)
{
    static const struct {
        uint8_t net[4];
        int prefix;
    } ranges[] = {
        {{0, 0, 0, 0}, 8},    {{10, 0, 0, 0}, 8},     {{100, 64, 0, 0}, 10},
        {{127, 0, 0, 0}, 8},  {{169, 254, 0, 0}, 16}, {{172, 16, 0, 0}, 12},
        {{192, 0, 0, 0}, 24}, {{192, 168, 0, 0}, 16}, {{198, 18, 0, 0}, 15},
        {{224, 0, 0, 0}, 4},  {{240, 0, 0, 0}, 4}, /* includes 255.255.255.255 */
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if (prefix_match(a, ranges[i].net, ranges[i].prefix))
            return true;
    return false;
}

/* The IPv4 address an IPv6 one carries and would reach: mapped (::ffff:0:0/96),
 * NAT64 (64:ff9b::/96) and 6to4 (2002::/16). NULL when none. */
static const uint8_t *v6_embedded_v4(const uint8_t *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};

    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
        return a + 12;
    if (a[0] == 0x20 && a[1] == 0x02)
        return a + 2;
    return NULL;
}

static bool v6_internal(const uint8_t *a)
{
    static const struct {
        uint8_t net[16];
        int prefix;
    } ranges[] = {
        {{0}, 96},          /* ::, ::1 and the deprecated IPv4-compatible form */
        {{0x01, 0x00}, 64}, /* discard-only */
        {{0xfc}, 7},        /* unique local */
        {{0xfe, 0x80}, 10}, /* link-local */
        {{0xfe, 0xc0}, 10}, /* site-local (deprecated) */
        {{0xff}, 8},        /* multicast */
    };
    const uint8_t *v4 = v6_embedded_v4(a);

    if (v4)
        return v4_internal(v4);
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if (prefix_match(a, ranges[i].net, ranges[i].prefix))
            return true;
    return false;
}

bool egress_addr_internal(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_internal((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return v6_internal(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return true;
}

bool egress_addr_in_cidrs(const struct sockaddr *sa, const struct egress_cidr *c, size_t n)
{
    const uint8_t *v4 = NULL, *v6 = NULL;

    if (sa->sa_family == AF_INET) {
        v4 = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        v6 = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        v4 = v6_embedded_v4(v6);
    }
    for (size_t i = 0; i < n; i++) {
        if (c[i].family == AF_INET && v4 && prefix_match(v4, c[i].addr, c[i].prefix))
            return true;
        if (c[i].family == AF_INET6 && v6 && prefix_match(v6, c[i].addr, c[i].prefix))
            return true;
    }
    return false;
}

/* ---- request heads ---- */

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* host[:port] of an authority (no userinfo). Fills host (lowercase, IPv6
 * without brackets) and *port (def when absent; -1 for "required"). */
static int parse_authority(const char *s, size_t n, int def_port, struct egress_request *req)
{
    const char *host = s, *colon = NULL;
    size_t hl;
    char tmp[INET6_ADDRSTRLEN + 1];

    if (n == 0)
        return -EINVAL;
    req->host_is_ip = false;
    if (s[0] == '[') {
        const char *end = memchr(s, ']', n);
        if (!end)
            return -EINVAL;
        host = s + 1;
        hl = (size_t)(end - host);
        if (end + 1 < s + n) {
            if (end[1] != ':')
                return -EINVAL;
            colon = end + 1;
        }
        if (hl == 0 || hl >= sizeof(tmp))
            return -EINVAL;
        memcpy(tmp, host, hl);
        tmp[hl] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return -EINVAL;
        req->host_is_ip = true;
    } else {
        colon = memchr(s, ':', n);
        hl = colon ? (size_t)(colon - s) : n;
        if (hl == 0 || hl > EGRESS_MAX_HOST)
            return -EINVAL;
        for (size_t i = 0; i < hl; i++) {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_'))
                return -EINVAL;
        }
        /* "example.com." names example.com */
        if (hl > 1 && s[hl - 1] == '.')
            hl--;
        if (s[0] == '.' || memmem(s, hl, "..", 2))
            return -EINVAL;
    }
    for (size_t i = 0; i < hl; i++) {
        char c = host[i];
        req->host[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    req->host[hl] = '\0';
    if (!req->host_is_ip) {
        struct in_addr a4;
        req->host_is_ip = inet_pton(AF_INET, req->host, &a4) == 1;
    }
    if (colon) {
        const char *p = colon + 1, *end = s + n;
        int v = 0;
        if (p == end || end - p > 5)
            return -EINVAL;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return -EINVAL;
            v = v * 10 + (*p - '0');
        }
        if (v < 1 || v > 65535)
            return -EINVAL;
        req->port = v;
    } else {
        if (def_port < 0)
            return -EINVAL;
        req->port = def_port;
    }
    return 0;
}

struct out_buf {
    char *p;
    size_t cap, len;
    bool overflow;
};

static void out_put(struct out_buf *o, const char *s, size_t n)
{
    if (o->overflow || o->cap - o->len < n) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void out_str(struct out_buf *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static bool header_is(const char *name, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp(name, want, n) == 0;
}

int egress_parse_head(const char *buf, size_t len, struct egress_request *req, char *fwd,
                      size_t fwd_cap, size_t *fwd_len)
{
    size_t scan = len < EGRESS_MAX_HEAD ? len : EGRESS_MAX_HEAD;
    const char *end = memmem(buf, scan, "\r\n\r\n", 4);
    struct out_buf o = {.p = fwd, .cap = fwd_cap};
    int r;

    memset(req, 0, sizeof(*req));
    if (!end)
        return len >= EGRESS_MAX_HEAD ? -E2BIG : -EAGAIN;
    size_t head_len = (size_t)(end - buf) + 4;
    for (size_t i = 0; i < head_len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f)
            return -EINVAL;
        /* CR only before LF, LF only after CR */
        if (c == '\r' && buf[i + 1] != '\n')
            return -EINVAL;
        if (c == '\n' && (i == 0 || buf[i - 1] != '\r'))
            return -EINVAL;
    }

    /* request line: METHOD SP TARGET SP HTTP/1.x */
    const char *line_end = memmem(buf, head_len, "\r\n", 2);
    const char *sp1 = memchr(buf, ' ', (size_t)(line_end - buf));
    if (!sp1 || sp1 == buf || sp1 - buf > 32)
        return -EINVAL;
    for (const char *p = buf; p < sp1; p++)
        if (!is_tchar(*p))
            return -EINVAL;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(line_end - target));
    if (!sp2 || sp2 == target)
        return -EINVAL;
    const char *version = sp2 + 1;
    if (line_end - version != 8 || memcmp(version, "HTTP/1.", 7) != 0 ||
        (version[7] != '0' && version[7] != '1'))
        return -EINVAL;
    size_t method_len = (size_t)(sp1 - buf), target_len = (size_t)(sp2 - target);
    const char *path = NULL;
    size_t path_len = 0;

    if (method_len == 7 && memcmp(buf, "CONNECT", 7) == 0) {
        req->connect = true;
        r = parse_authority(target, target_len, -1, req);
        if (r < 0)
            return r;
    } else {
        if (target_len < 8 || strncasecmp(target, "http://", 7) != 0)
            return -EINVAL;
        const char *auth = target + 7, *tend = target + target_len;
        const char *a_end = auth;
        while (a_end < tend && *a_end != '/' && *a_end != '?' && *a_end != '#')
            a_end++;
        if (memchr(auth, '@', (size_t)(a_end - auth)))
            return -EINVAL;
        r = parse_authority(auth, (size_t)(a_end - auth), 80, req);
        if (r < 0)
            return r;
        if (memchr(a_end, '#', (size_t)(tend - a_end)))
            return -EINVAL;
        path = a_end;
        path_len = (size_t)(tend - a_end);
        out_put(&o, buf, method_len + 1);
        if (path_len == 0 || path[0] != '/')
            out_str(&o, "/");
        out_put(&o, path, path_len);
        out_put(&o, sp2, (size_t)(line_end - sp2) + 2);
    }

    /* header lines */
    bool host_seen = false;
    for (const char *line = line_end + 2; line < end + 2;) {
        const char *le = memmem(line, (size_t)(end + 4 - line), "\r\n", 2);
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (!colon || colon == line)
            return -EINVAL; /* also rejects obs-fold continuation lines */
        for (const char *p = line; p < colon; p++)
            if (!is_tchar(*p))
                return -EINVAL;
        size_t name_len = (size_t)(colon - line);
        if (!req->connect) {
            const char *v = colon + 1, *ve = le;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (header_is(line, name_len, "host")) {
                struct egress_request h;
                if (host_seen)
                    return -EINVAL;
                host_seen = true;
                if (parse_authority(v, (size_t)(ve - v), 80, &h) < 0)
                    return -EPERM;
                if (strcmp(h.host, req->host) != 0 || h.port != req->port)
                    return -EPERM;
                out_put(&o, line, (size_t)(le - line) + 2);
            } else if (!(name_len > 6 && strncasecmp(line, "proxy-", 6) == 0) &&
                       !header_is(line, name_len, "connection") &&
                       !header_is(line, name_len, "keep-alive")) {
                out_put(&o, line, (size_t)(le - line) + 2);
            }
        }
        line = le + 2;
    }
    if (!req->connect) {
        if (!host_seen) {
            char port[16];
            out_str(&o, "Host: ");
            if (strchr(req->host, ':')) {
                out_str(&o, "[");
                out_str(&o, req->host);
                out_str(&o, "]");
            } else {
                out_str(&o, req->host);
            }
            if (req->port != 80) {
                snprintf(port, sizeof(port), ":%d", req->port);
                out_str(&o, port);
            }
            out_str(&o, "\r\n");
        }
        out_str(&o, "Connection: close\r\n\r\n");
        if (o.overflow)
            return -ENOSPC;
        *fwd_len = o.len;
    }
    return (int)head_len;
}

/* ---- TLS ClientHello ---- */

#define SNI_MAX_HELLO 16384

struct reader {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

static size_t rd_uint(struct reader *r, size_t n)
{
    size_t v = 0;
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | r->p[r->off++];
    return v;
}

static const uint8_t *rd_bytes(struct reader *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    r->off += n;
    return r->p + r->off - n;
}

static int hostname_copy(const uint8_t *s, size_t n, char *out, size_t cap)
{
    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n == 0 || n > EGRESS_MAX_HOST || n >= cap)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
            return -EINVAL;
        out[i] = (char)c;
    }
    out[n] = '\0';
    return 0;
}

static int client_hello_sni(const uint8_t *hs, size_t len, char *out, size_t cap)
{
    struct reader r = {.p = hs, .len = len};
    int found = 0;

    rd_uint(&r, 2);               /* legacy_version */
    rd_bytes(&r, 32);             /* random */
    rd_bytes(&r, rd_uint(&r, 1)); /* session id */
    size_t suites = rd_uint(&r, 2);
    if (suites < 2 || suites % 2)
        return -EINVAL;
    rd_bytes(&r, suites);
    size_t comp = rd_uint(&r, 1);
    if (comp < 1)
        return -EINVAL;
    rd_bytes(&r, comp);
    if (r.bad)
        return -EINVAL;
    if (r.off == r.len)
        return 0; /* no extensions */
    size_t ext_len = rd_uint(&r, 2);
    if (r.bad || ext_len != r.len - r.off)
        return -EINVAL;
    while (r.off < r.len) {
        size_t type = rd_uint(&r, 2), elen = rd_uint(&r, 2);
        const uint8_t *ext = rd_bytes(&r, elen);
        if (r.bad)
            return -EINVAL;
        if (type != 0)
            continue;
        if (found)
            return -EINVAL; /* a second server_name extension */
        struct reader e = {.p = ext, .len = elen};
        size_t list = rd_uint(&e, 2);
        if (e.bad || list != elen - 2 || list == 0)
            return -EINVAL;
        while (e.off < e.len) {
            size_t name_type = rd_uint(&e, 1), nlen = rd_uint(&e, 2);
            const uint8_t *name = rd_bytes(&e, nlen);
            if (e.bad)
                return -EINVAL;
            if (name_type != 0)
                continue;
            if (found || hostname_copy(name, nlen, out, cap) < 0)
                return -EINVAL;
            found = 1;
        }
        if (!found)
            return -EINVAL;
    }
    return found;
}

int egress_tls_sni(const uint8_t *buf, size_t len, char *out, size_t out_cap)
{
    uint8_t hs[SNI_MAX_HELLO + 4];
    size_t have = 0, need = 0, off = 0;

    /* The handshake message may span records: gather the payloads. */
    for (;;) {
        if (len - off < 5)
            return len - off > 0 && buf[off] != 0x16 ? -EINVAL : -EAGAIN;
        if (buf[off] != 0x16 || buf[off + 1] != 3)
            return -EINVAL;
        size_t rlen = ((size_t)buf[off + 3] << 8) | buf[off + 4];
        if (rlen == 0 || rlen > 16384)
            return -EINVAL;
        if (len - off - 5 < rlen)
            return -EAGAIN;
        size_t take = rlen;
        if (need && take > need - have)
            take = need - have;
        if (have + take > sizeof(hs))
            return -E2BIG;
        memcpy(hs + have, buf + off + 5, take);
        have += take;
        off += 5 + rlen;
        if (!need && have >= 4) {
            if (hs[0] != 1)
                return -EINVAL;
            need = 4 + (((size_t)hs[1] << 16) | ((size_t)hs[2] << 8) | hs[3]);
            if (need > sizeof(hs))
                return -E2BIG;
            if (have > need)
                have = need; /* the rest of the record is another message */
        }
        if (need && have >= need)
            break;
    }
    return client_hello_sni(hs + 4, need - 4, out, out_cap);
}

/* ---- DNS ---- */

int egress_dns_query(uint16_t id, const char *name, uint16_t qtype, uint8_t *out, size_t cap)
{
    size_t n = strlen(name), off = 12;

    if (n > 0 && name[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return -EINVAL;
    if (cap < 12 + n + 2 + 4)
        return -ENOSPC;
    memset(out, 0, 12);
    out[0] = (uint8_t)(id >> 8);
    out[1] = (uint8_t)id;
    out[2] = 0x01; /* RD */
    out[5] = 1;    /* QDCOUNT */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && name[j] != '.')
            j++;
        if (j == i || j - i > 63)
            return -EINVAL;
        out[off++] = (uint8_t)(j - i);
        memcpy(out + off, name + i, j - i);
        off += j - i;
        i = j + 1;
        if (j + 1 == n)
            return -EINVAL; /* "a..": empty last label */
    }
    out[off++] = 0;
    out[off++] = (uint8_t)(qtype >> 8);
    out[off++] = (uint8_t)qtype;
    out[off++] = 0;
    out[off++] = 1; /* IN */
    return (int)off;
}

/* A (possibly compressed) name at *off as lowercase dotted text; *off moves
 * past it. Pointers must point backwards, which also ends loops. */
static int dns_name(const uint8_t *msg, size_t len, size_t *off, char *out)
{
    size_t pos = *off, olen = 0;
    bool jumped = false;

    for (int steps = 0; steps < 128; steps++) {
        if (pos >= len)
            return -EINVAL;
        uint8_t b = msg[pos];
        if (b == 0) {
            if (!jumped)
                *off = pos + 1;
            out[olen] = '\0';
            return 0;
        }
        if ((b & 0xc0) == 0xc0) {
            if (pos + 1 >= len)
                return -EINVAL;
            size_t target = ((size_t)(b & 0x3f) << 8) | msg[pos + 1];
            if (target >= pos)
                return -EINVAL;
            if (!jumped)
                *off = pos + 2;
            jumped = true;
            pos = target;
            continue;
        }
        if (b & 0xc0)
            return -EINVAL;
        if (pos + 1 + b > len || olen + b + 1 > EGRESS_MAX_HOST)
            return -EINVAL;
        if (olen)
            out[olen++] = '.';
        for (size_t i = 0; i < b; i++) {
            uint8_t c = msg[pos + 1 + i];
            if (c <= 0x20 || c >= 0x7f || c == '.')
                return -EINVAL;
            out[olen++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (char)c;
        }
        pos += 1 + b;
    }
    return -EINVAL;
}

#define DNS_MAX_CHAIN 8

static bool name_in(char (*names)[EGRESS_MAX_HOST + 1], size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return true;
    return false;
}

int egress_dns_parse(const uint8_t *msg, size_t len, uint16_t id, const char *name, uint16_t qtype,
                     uint8_t (*addrs)[16], size_t max_addrs)
{
    char names[DNS_MAX_CHAIN][EGRESS_MAX_HOST + 1], owner[EGRESS_MAX_HOST + 1];
    size_t nnames = 1, off = 12, answers_off, found = 0;
    size_t nl = strlen(name);

    if (len < 12 || ((size_t)msg[0] << 8 | msg[1]) != id || !(msg[2] & 0x80) ||
        (msg[2] & 0x78) != 0)
        return -EINVAL;
    if (((size_t)msg[4] << 8 | msg[5]) != 1)
        return -EINVAL;
    unsigned rcode = msg[3] & 0x0f;
    size_t ancount = (size_t)msg[6] << 8 | msg[7];

    if (dns_name(msg, len, &off, names[0]) < 0 || len - off < 4)
        return -EINVAL;
    if (nl > 0 && name[nl - 1] == '.')
        nl--;
    if (strlen(names[0]) != nl || strncasecmp(names[0], name, nl) != 0)
        return -EINVAL;
    if (((size_t)msg[off] << 8 | msg[off + 1]) != qtype || msg[off + 2] != 0 || msg[off + 3] != 1)
        return -EINVAL;
    off += 4;
    if (rcode == 3)
        return -ENOENT;
    if (rcode != 0)
        return -EIO;
    answers_off = off;

    /* Pass one follows CNAMEs (in any order, so repeat while the chain
     * grows); pass two takes the addresses of names in the chain. */
    for (int pass = 0; pass < DNS_MAX_CHAIN + 1; pass++) {
        size_t before = nnames;
        bool addresses = pass == DNS_MAX_CHAIN;
        off = answers_off;
        for (size_t i = 0; i < ancount; i++) {
            if (dns_name(msg, len, &off, owner) < 0 || len - off < 10)
                return -EINVAL;
            size_t type = (size_t)msg[off] << 8 | msg[off + 1];
            size_t klass = (size_t)msg[off + 2] << 8 | msg[off + 3];
            size_t rdlen = (size_t)msg[off + 8] << 8 | msg[off + 9];
            off += 10;
            if (len - off < rdlen)
                return -EINVAL;
            size_t rd = off;
            off += rdlen;
            if (klass != 1 || !name_in(names, nnames, owner))
                continue;
            if (!addresses && type == 5 && nnames < DNS_MAX_CHAIN) {
                char target[EGRESS_MAX_HOST + 1];
                size_t t = rd;
                if (dns_name(msg, rd + rdlen, &t, target) < 0 || t != rd + rdlen)
                    return -EINVAL;
                if (!name_in(names, nnames, target))
                    memcpy(names[nnames++], target, sizeof(target));
            } else if (addresses && type == qtype) {
                size_t want = qtype == 1 ? 4 : 16;
                if (rdlen != want)
                    return -EINVAL;
                if (found < max_addrs) {
                    memset(addrs[found], 0, 16);
                    memcpy(addrs[found], msg + rd, want);
                    found++;
                }
            }
        }
        if (!addresses && nnames == before)
            pass = DNS_MAX_CHAIN - 1; /* chain complete: go to addresses */
    }
    return (int)found;
}
