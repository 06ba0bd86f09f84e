/* egress: the pure parsers with malformed input, then the proxy over
 * loopback (a Unix socket in a temp dir, an echo origin on 127.0.0.1 and a
 * fake DNS server on 127.0.0.1 UDP). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "egress.h"
#include "util.h"

/* ---- pure parsers ---- */

static int parse(const char *s, struct egress_request *req, char *fwd, size_t *fwd_len)
{
    return egress_parse_head(s, strlen(s), req, fwd, EGRESS_MAX_HEAD + 64, fwd_len);
}

static void test_parse_head(void)
{
    struct egress_request req;
    static char fwd[EGRESS_MAX_HEAD + 64];
    size_t fl = 0;
    const char *ok = "CONNECT Example.COM.:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nextra";

    CHECK(parse(ok, &req, fwd, &fl) == (int)strlen(ok) - 5);
    CHECK(req.connect && req.port == 443 && !req.host_is_ip);
    CHECK_STR(req.host, "example.com");
    for (size_t n = 0; n < strlen(ok) - 5; n++)
        CHECK(egress_parse_head(ok, n, &req, fwd, sizeof(fwd), &fl) == -EAGAIN);

    CHECK(parse("CONNECT [::1]:8443 HTTP/1.0\r\n\r\n", &req, fwd, &fl) > 0);
    CHECK_STR(req.host, "::1");
    CHECK(req.host_is_ip && req.port == 8443);
    CHECK(parse("CONNECT 10.1.2.3:80 HTTP/1.1\r\n\r\n", &req, fwd, &fl) > 0);
    CHECK(req.host_is_ip);

    const char *bad[] = {
        "CONNECT example.com HTTP/1.1\r\n\r\n",       /* no port */
        "CONNECT example.com:0 HTTP/1.1\r\n\r\n",     /* port 0 */
        "CONNECT example.com:65536 HTTP/1.1\r\n\r\n", /* port too big */
        "CONNECT example.com:44a HTTP/1.1\r\n\r\n",
        "CONNECT [::1:443 HTTP/1.1\r\n\r\n",
        "CONNECT [nothex]:443 HTTP/1.1\r\n\r\n",
        "CONNECT a..b:443 HTTP/1.1\r\n\r\n",
        "CONNECT a%b:443 HTTP/1.1\r\n\r\n",
        "CONNECT example.com:443 HTTP/2.0\r\n\r\n",
        "CONNECT  example.com:443 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n", /* origin-form: not for a proxy */
        "GET https://x/ HTTP/1.1\r\n\r\n",
        "GET http://user@x/ HTTP/1.1\r\n\r\n",
        "GET http://x/#frag HTTP/1.1\r\n\r\n",
        "GET http://x/ HTTP/1.1\nHost: x\r\n\r\n", /* bare LF */
        "GET http://x/ HTTP/1.1\r\nHost x\r\n\r\n",
        "GET http://x/ HTTP/1.1\r\n folded\r\n\r\n",
        "GET http://x/ HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n",
        "G(T http://x/ HTTP/1.1\r\n\r\n",
        "\r\n\r\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        int r = parse(bad[i], &req, fwd, &fl);
        if (r != -EINVAL)
            fprintf(stderr, "bad[%zu] gave %d\n", i, r);
        CHECK(r == -EINVAL);
    }
    char nul[] = "GET http://x/ HTTP/1.1\r\nA: \0\r\n\r\n";
    CHECK(egress_parse_head(nul, sizeof(nul) - 1, &req, fwd, sizeof(fwd), &fl) == -EINVAL);
    CHECK(parse("GET http://x:8080/ HTTP/1.1\r\nHost: y:8080\r\n\r\n", &req, fwd, &fl) == -EPERM);
    CHECK(parse("GET http://x:8080/ HTTP/1.1\r\nHost: x\r\n\r\n", &req, fwd, &fl) == -EPERM);

    static char big[EGRESS_MAX_HEAD + 10];
    memset(big, 'a', sizeof(big));
    CHECK(egress_parse_head(big, sizeof(big), &req, fwd, sizeof(fwd), &fl) == -E2BIG);
    CHECK(egress_parse_head(big, 100, &req, fwd, sizeof(fwd), &fl) == -EAGAIN);

    /* absolute-form to origin-form, Proxy-* and Connection dropped */
    const char *get = "POST http://WWW.x.org/a/b?c=d HTTP/1.1\r\nHost: www.x.org\r\n"
                      "Proxy-Authorization: Basic Zm9v\r\nProxy-Connection: keep-alive\r\n"
                      "Connection: keep-alive\r\nContent-Length: 2\r\n\r\nhi";
    CHECK(parse(get, &req, fwd, &fl) == (int)strlen(get) - 2);
    CHECK(!req.connect && req.port == 80);
    CHECK_STR(req.host, "www.x.org");
    fwd[fl] = '\0';
    CHECK_STR(fwd, "POST /a/b?c=d HTTP/1.1\r\nHost: www.x.org\r\nContent-Length: 2\r\n"
                   "Connection: close\r\n\r\n");
    CHECK(parse("GET http://[::1]:81?q HTTP/1.0\r\nUser-Agent: t\r\n\r\n", &req, fwd, &fl) > 0);
    fwd[fl] = '\0';
    CHECK_STR(fwd,
              "GET /?q HTTP/1.0\r\nUser-Agent: t\r\nHost: [::1]:81\r\nConnection: close\r\n\r\n");
}

/* A ClientHello in one or two records, with SNI name (NULL: none). */
static size_t client_hello(uint8_t *out, const char *name, bool split)
{
    uint8_t body[512];
    size_t b = 0, n = name ? strlen(name) : 0;

    body[b++] = 3;
    body[b++] = 3;
    memset(body + b, 0x42, 32);
    b += 32;
    body[b++] = 0; /* session id */
    body[b++] = 0;
    body[b++] = 2;
    body[b++] = 0x13;
    body[b++] = 0x01;
    body[b++] = 1;
    body[b++] = 0;
    size_t ext_at = b;
    b += 2;
    /* ec_point_formats, then server_name */
    memcpy(body + b, "\x00\x0b\x00\x02\x01\x00", 6);
    b += 6;
    if (name) {
        body[b++] = 0;
        body[b++] = 0;
        body[b++] = (uint8_t)((n + 5) >> 8);
        body[b++] = (uint8_t)(n + 5);
        body[b++] = (uint8_t)((n + 3) >> 8);
        body[b++] = (uint8_t)(n + 3);
        body[b++] = 0;
        body[b++] = (uint8_t)(n >> 8);
        body[b++] = (uint8_t)n;
        memcpy(body + b, name, n);
        b += n;
    }
    body[ext_at] = (uint8_t)((b - ext_at - 2) >> 8);
    body[ext_at + 1] = (uint8_t)(b - ext_at - 2);

    uint8_t hs[600];
    hs[0] = 1;
    hs[1] = 0;
    hs[2] = (uint8_t)(b >> 8);
    hs[3] = (uint8_t)b;
    memcpy(hs + 4, body, b);
    size_t hl = b + 4, o = 0, first = split ? 20 : hl;
    for (size_t off = 0; off < hl;) {
        size_t take = off == 0 ? first : hl - off;
        out[o++] = 0x16;
        out[o++] = 3;
        out[o++] = 1;
        out[o++] = (uint8_t)(take >> 8);
        out[o++] = (uint8_t)take;
        memcpy(out + o, hs + off, take);
        o += take;
        off += take;
    }
    return o;
}

static void test_sni(void)
{
    uint8_t buf[1024], mut[1024];
    char name[256];
    size_t n = client_hello(buf, "Allowed.Test", false);

    CHECK(egress_tls_sni(buf, n, name, sizeof(name)) == 1);
    CHECK_STR(name, "allowed.test");
    for (size_t i = 0; i < n; i++)
        CHECK(egress_tls_sni(buf, i, name, sizeof(name)) == -EAGAIN);
    CHECK(egress_tls_sni(buf, n, name, 5) == -EINVAL); /* does not fit out */
    n = client_hello(buf, "allowed.test", true);
    CHECK(egress_tls_sni(buf, n, name, sizeof(name)) == 1);
    CHECK_STR(name, "allowed.test");
    for (size_t i = 0; i < n; i++)
        CHECK(egress_tls_sni(buf, i, name, sizeof(name)) == -EAGAIN);
    n = client_hello(buf, NULL, false);
    CHECK(egress_tls_sni(buf, n, name, sizeof(name)) == 0);
    n = client_hello(buf, "bad name", false);
    CHECK(egress_tls_sni(buf, n, name, sizeof(name)) == -EINVAL);
    CHECK(egress_tls_sni((const uint8_t *)"GET / HTTP/1.1\r\n", 16, name, sizeof(name)) == -EINVAL);
    CHECK(egress_tls_sni((const uint8_t *)"\x16\x03\x01\x00\x00", 5, name, sizeof(name)) ==
          -EINVAL);

    /* every single-byte corruption: any answer, no crash (ASan watches) */
    n = client_hello(buf, "allowed.test", false);
    for (size_t i = 0; i < n; i++) {
        for (int v = 0; v < 256; v += 51) {
            memcpy(mut, buf, n);
            mut[i] = (uint8_t)v;
            int r = egress_tls_sni(mut, n, name, sizeof(name));
            CHECK(r >= -E2BIG || r == -EAGAIN || r == -EINVAL);
        }
    }
    /* a wrong inner length must not be trusted */
    n = client_hello(buf, "allowed.test", false);
    buf[n - 13] = 0xff;
    CHECK(egress_tls_sni(buf, n, name, sizeof(name)) == -EINVAL);
}

static size_t put_name(uint8_t *p, const char *name)
{
    size_t o = 0;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        p[o++] = (uint8_t)l;
        memcpy(p + o, name, l);
        o += l;
        name += l + (dot ? 1 : 0);
    }
    p[o++] = 0;
    return o;
}

/* An answer to query q (qlen bytes): rcode, then records appended by the caller. */
static size_t dns_reply(uint8_t *out, const uint8_t *q, size_t qlen, int rcode, int ancount)
{
    memcpy(out, q, qlen);
    out[2] = 0x81;
    out[3] = (uint8_t)(0x80 | rcode);
    out[6] = 0;
    out[7] = (uint8_t)ancount;
    return qlen;
}

static size_t dns_rr(uint8_t *p, const uint8_t *owner, size_t owner_len, int type,
                     const uint8_t *rd, size_t rdlen)
{
    size_t o = 0;
    memcpy(p, owner, owner_len);
    o += owner_len;
    p[o++] = 0;
    p[o++] = (uint8_t)type;
    memcpy(p + o, "\x00\x01\x00\x00\x00\x3c", 6);
    o += 6;
    p[o++] = (uint8_t)(rdlen >> 8);
    p[o++] = (uint8_t)rdlen;
    memcpy(p + o, rd, rdlen);
    return o + rdlen;
}

static void test_dns(void)
{
    uint8_t q[300], msg[600], addrs[4][16];
    static const uint8_t ptr_q[2] = {0xc0, 12};
    int ql = egress_dns_query(0x1234, "www.Example.test", 1, q, sizeof(q));
    size_t n;

    CHECK(ql == 12 + 18 + 4);
    CHECK(egress_dns_query(1, "a..b", 1, q, sizeof(q)) == -EINVAL);
    CHECK(egress_dns_query(1, "", 1, q, sizeof(q)) == -EINVAL);
    CHECK(egress_dns_query(1, "x.y", 1, q, 10) == -ENOSPC);

    /* a CNAME (target compressed against the question), then its A record */
    ql = egress_dns_query(0x1234, "www.example.test", 1, q, sizeof(q));
    n = dns_reply(msg, q, (size_t)ql, 0, 2);
    uint8_t target[64], tname[64];
    size_t tl = put_name(target, "cdn");
    target[tl - 1] = 0xc0; /* "cdn" + pointer to "example.test" in the question */
    target[tl] = 16;
    tl++;
    size_t owner2 = n + 12; /* the CNAME's rdata */
    n += dns_rr(msg + n, ptr_q, 2, 5, target, tl);
    tname[0] = (uint8_t)(0xc0 | (owner2 >> 8));
    tname[1] = (uint8_t)owner2;
    /* the A record's owner points at the CNAME target */
    n += dns_rr(msg + n, tname, 2, 1, (const uint8_t *)"\x5d\xb8\xd8\x22", 4);
    CHECK(egress_dns_parse(msg, n, 0x1234, "www.example.test", 1, addrs, 4) == 1);
    CHECK(memcmp(addrs[0], "\x5d\xb8\xd8\x22", 4) == 0);
    CHECK(egress_dns_parse(msg, n, 0x1235, "www.example.test", 1, addrs, 4) == -EINVAL);
    CHECK(egress_dns_parse(msg, n, 0x1234, "other.test", 1, addrs, 4) == -EINVAL);
    CHECK(egress_dns_parse(msg, n, 0x1234, "www.example.test", 28, addrs, 4) == -EINVAL);
    for (size_t i = 0; i < n; i++)
        CHECK(egress_dns_parse(msg, i, 0x1234, "www.example.test", 1, addrs, 4) == -EINVAL);

    /* an A record for a name outside the chain is ignored */
    n = dns_reply(msg, q, (size_t)ql, 0, 1);
    uint8_t other[32];
    size_t ol = put_name(other, "evil.test");
    n += dns_rr(msg + n, other, ol, 1, (const uint8_t *)"\x7f\0\0\1", 4);
    CHECK(egress_dns_parse(msg, n, 0x1234, "www.example.test", 1, addrs, 4) == 0);

    /* pointer loops and forward pointers */
    n = dns_reply(msg, q, (size_t)ql, 0, 1);
    uint8_t self[2] = {0xc0, (uint8_t)n};
    n += dns_rr(msg + n, self, 2, 1, (const uint8_t *)"\1\2\3\4", 4);
    CHECK(egress_dns_parse(msg, n, 0x1234, "www.example.test", 1, addrs, 4) == -EINVAL);
    n = dns_reply(msg, q, (size_t)ql, 0, 1);
    uint8_t fwdp[2] = {0xc0, 0xff};
    n += dns_rr(msg + n, fwdp, 2, 1, (const uint8_t *)"\1\2\3\4", 4);
    CHECK(egress_dns_parse(msg, n, 0x1234, "www.example.test", 1, addrs, 4) == -EINVAL);
    /* wrong rdlength for A */
    n = dns_reply(msg, q, (size_t)ql, 0, 1);
    n += dns_rr(msg + n, ptr_q, 2, 1, (const uint8_t *)"\1\2\3", 3);
    CHECK(egress_dns_parse(msg, n, 0x1234, "www.example.test", 1, addrs, 4) == -EINVAL);
    /* NXDOMAIN, SERVFAIL, a query instead of an answer */
    n = dns_reply(msg, q, (size_t)ql, 3, 0);
    CHECK(egress_dns_parse(msg, n, 0x1234, "www.example.test", 1, addrs, 4) == -ENOENT);
    n = dns_reply(msg, q, (size_t)ql, 2, 0);
    CHECK(egress_dns_parse(msg, n, 0x1234, "www.example.test", 1, addrs, 4) == -EIO);
    CHECK(egress_dns_parse(q, (size_t)ql, 0x1234, "www.example.test", 1, addrs, 4) == -EINVAL);
    /* corruption of each byte: no crash */
    n = dns_reply(msg, q, (size_t)ql, 0, 1);
    n += dns_rr(msg + n, ptr_q, 2, 1, (const uint8_t *)"\1\2\3\4", 4);
    for (size_t i = 0; i < n; i++) {
        uint8_t m[600];
        memcpy(m, msg, n);
        m[i] ^= 0xc1;
        egress_dns_parse(m, n, 0x1234, "www.example.test", 1, addrs, 4);
    }
}

static bool internal(const char *ip)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

    if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1)
        in4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1)
        in6->sin6_family = AF_INET6;
    return egress_addr_internal((struct sockaddr *)&ss);
}

static void test_addresses(void)
{
    const char *in[] = {"0.1.2.3",
                        "10.1.2.3",
                        "100.64.0.1",
                        "127.0.0.1",
                        "169.254.169.254",
                        "172.16.0.1",
                        "172.31.255.1",
                        "192.0.0.8",
                        "192.168.1.1",
                        "198.18.0.1",
                        "198.19.255.1",
                        "224.0.0.1",
                        "240.0.0.1",
                        "255.255.255.255",
                        "::",
                        "::1",
                        "fc00::1",
                        "fd12::1",
                        "fe80::1",
                        "ff02::1",
                        "::ffff:127.0.0.1",
                        "::ffff:10.0.0.1",
                        "64:ff9b::a9fe:a9fe",
                        "2002:7f00:1::1"};
    const char *out[] = {"1.1.1.1",     "93.184.216.34",   "172.32.0.1",
                         "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1"};
    struct egress_cidr c;

    for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
        if (!internal(in[i]))
            fprintf(stderr, "%s should be internal\n", in[i]);
        CHECK(internal(in[i]));
    }
    for (size_t i = 0; i < ARRAY_SIZE(out); i++)
        CHECK(!internal(out[i]));
    CHECK(egress_cidr_parse("127.0.0.0/8", &c) == 0 && c.prefix == 8);
    CHECK(egress_cidr_parse("fd00::/8", &c) == 0 && c.family == AF_INET6);
    CHECK(egress_cidr_parse("1.2.3.4", &c) == 0 && c.prefix == 32);
    CHECK(egress_cidr_parse("1.2.3.4/33", &c) == -EINVAL);
    CHECK(egress_cidr_parse("1.2.3.4/", &c) == -EINVAL);
    CHECK(egress_cidr_parse("/8", &c) == -EINVAL);
    CHECK(egress_cidr_parse("example.com/8", &c) == -EINVAL);

    json_t *bad = json_pack("[s,s]", "10.0.0.0/8", "nope");
    struct ph_error err = {0};
    CHECK(egress_cidrs_validate(bad, &err) == -EINVAL);
    CHECK(strstr(err.message, "allow_cidrs[1]") != NULL);
    json_decref(bad);
}

/* ---- loopback fixtures ---- */

struct origin {
    int fd, stop_fd, port;
    pthread_t thread;
    atomic_int accepted;
    atomic_size_t received;
};

/* Echoes every connection, one at a time, until stopped. */
static void *origin_thread(void *arg)
{
    struct origin *o = arg;
    char buf[4096];

    for (;;) {
        struct pollfd p[2] = {{.fd = o->fd, .events = POLLIN},
                              {.fd = o->stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 || p[1].revents)
            return NULL;
        int c = accept4(o->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        atomic_fetch_add(&o->accepted, 1);
        for (;;) {
            struct pollfd q[2] = {{.fd = c, .events = POLLIN},
                                  {.fd = o->stop_fd, .events = POLLIN}};
            if (poll(q, 2, -1) < 0 || q[1].revents)
                break;
            ssize_t n = recv(c, buf, sizeof(buf), 0);
            if (n <= 0)
                break;
            atomic_fetch_add(&o->received, (size_t)n);
            send(c, buf, (size_t)n, MSG_NOSIGNAL);
        }
        shutdown(c, SHUT_WR);
        close(c);
    }
}

static void origin_start(struct origin *o)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);

    memset(o, 0, sizeof(*o));
    o->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(bind(o->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    CHECK(listen(o->fd, 16) == 0);
    getsockname(o->fd, (struct sockaddr *)&sin, &sl);
    o->port = ntohs(sin.sin_port);
    o->stop_fd = eventfd(0, EFD_CLOEXEC);
    pthread_create(&o->thread, NULL, origin_thread, o);
}

static void origin_stop(struct origin *o)
{
    uint64_t one = 1;
    CHECK(write(o->stop_fd, &one, sizeof(one)) == sizeof(one));
    pthread_join(o->thread, NULL);
    close(o->fd);
    close(o->stop_fd);
}

struct fake_dns {
    int fd, stop_fd, port;
    pthread_t thread;
    atomic_int queries;
    atomic_int drop; /* queries still to ignore, to exercise the retry */
};

/* allowed.test A -> 127.0.0.1 (name compressed), AAAA -> none, else NXDOMAIN. */
static void *dns_thread(void *arg)
{
    struct fake_dns *d = arg;
    uint8_t q[512], r[600];
    static const uint8_t ptr[2] = {0xc0, 12};

    for (;;) {
        struct pollfd p[2] = {{.fd = d->fd, .events = POLLIN},
                              {.fd = d->stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 || p[1].revents)
            return NULL;
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(d->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
        if (n < 12 + 5)
            continue;
        atomic_fetch_add(&d->queries, 1);
        if (atomic_load(&d->drop) > 0) {
            atomic_fetch_sub(&d->drop, 1);
            continue;
        }
        uint8_t want[64];
        size_t wl = put_name(want, "allowed.test");
        bool known = (size_t)n >= 12 + wl + 4 && memcmp(q + 12, want, wl) == 0;
        int qtype = known ? q[12 + wl + 1] : 0;
        size_t len = dns_reply(r, q, (size_t)n, known ? 0 : 3, known && qtype == 1 ? 1 : 0);
        if (known && qtype == 1)
            len += dns_rr(r + len, ptr, 2, 1, (const uint8_t *)"\x7f\0\0\1", 4);
        sendto(d->fd, r, len, 0, (struct sockaddr *)&from, fl);
    }
}

static void dns_start(struct fake_dns *d)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);

    memset(d, 0, sizeof(*d));
    d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(bind(d->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    getsockname(d->fd, (struct sockaddr *)&sin, &sl);
    d->port = ntohs(sin.sin_port);
    d->stop_fd = eventfd(0, EFD_CLOEXEC);
    pthread_create(&d->thread, NULL, dns_thread, d);
}

static void dns_stop(struct fake_dns *d)
{
    uint64_t one = 1;
    CHECK(write(d->stop_fd, &one, sizeof(one)) == sizeof(one));
    pthread_join(d->thread, NULL);
    close(d->fd);
    close(d->stop_fd);
}

static char sock_path[256];
static atomic_int events;

static void on_event(void *data, const struct egress_event *ev)
{
    (void)data;
    CHECK(ev->vm_id && ev->host && ev->reason);
    atomic_fetch_add(&events, 1);
}

static int client_connect(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    strcpy(sun.sun_path, sock_path);
    CHECK(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Sends req, reads the response head; returns the status (0: none). */
static int client_request(int fd, const char *req, char *head, size_t cap)
{
    size_t n = 0;

    /* may fail: a 503 is answered, and the socket closed, before reading */
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
        fprintf(stderr, "note: request not fully sent\n");
    head[0] = '\0';
    /* byte by byte, so nothing after the head is consumed */
    while (n + 1 < cap && !strstr(head, "\r\n\r\n")) {
        if (recv(fd, head + n, 1, 0) != 1)
            break;
        head[++n] = '\0';
    }
    int status = 0;
    if (sscanf(head, "HTTP/1.1 %d", &status) != 1)
        return 0;
    return status;
}

/* Reads until EOF (or timeout) into buf; returns the count. */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap && (r = recv(fd, buf + n, cap - n, 0)) > 0)
        n += (size_t)r;
    return n;
}

struct bulk {
    int fd;
    const char *buf;
    size_t len, sent;
};

static void *bulk_writer(void *arg)
{
    struct bulk *b = arg;
    while (b->sent < b->len) {
        ssize_t w = send(b->fd, b->buf + b->sent, b->len - b->sent, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        b->sent += (size_t)w;
    }
    shutdown(b->fd, SHUT_WR);
    return NULL;
}

static struct egress *make_egress(const char *dns, json_t *cidrs, int per_vm)
{
    struct egress_config cfg = {.dns_server = dns,
                                .allow_cidrs = cidrs,
                                .max_conns_per_vm = per_vm,
                                .connect_timeout_ms = 2000,
                                .head_timeout_ms = 2000,
                                .on_event = on_event};
    struct egress *eg = NULL;
    struct ph_error err = {0};

    CHECK(egress_new(&cfg, &eg, &err) == 0);
    return eg;
}

static struct egress_vm *open_vm(struct egress *eg, enum egress_mode mode, json_t *domains)
{
    struct egress_vm *vm = NULL;
    struct ph_error err = {0};
    struct stat st;

    CHECK(egress_vm_open(eg, "vm-test", sock_path, mode, domains, &vm, &err) == 0);
    CHECK(stat(sock_path, &st) == 0 && (st.st_mode & 0777) == 0600);
    return vm;
}

/* The connection threads finish after the guest saw EOF: wait for it. */
static void settle(struct egress_vm *vm, uint64_t bytes_in)
{
    struct egress_stats st;
    for (int i = 0; i < 200; i++) {
        egress_vm_stats(vm, &st);
        if (st.bytes_in >= bytes_in)
            return;
        usleep(10000);
    }
}

static void test_connect_and_get(struct origin *o)
{
    json_t *cidrs = json_pack("[s]", "127.0.0.0/8");
    struct egress *eg = make_egress(NULL, cidrs, 0);
    struct egress_vm *vm = open_vm(eg, EGRESS_INTERNET, NULL);
    struct egress_stats st;
    char head[1024], req[512], body[1024];
    int fd;

    /* CONNECT: raw both ways, half-close, exact counts */
    fd = client_connect();
    snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", o->port);
    CHECK(client_request(fd, req, head, sizeof(head)) == 200);
    CHECK(send(fd, "hello egress", 12, 0) == 12);
    shutdown(fd, SHUT_WR);
    size_t n = read_all(fd, body, sizeof(body));
    CHECK(n == 12 && memcmp(body, "hello egress", 12) == 0);
    close(fd);
    settle(vm, 12);
    egress_vm_stats(vm, &st);
    CHECK(st.bytes_out == 12 && st.bytes_in == 12);
    CHECK(st.connections == 1 && st.refused == 0);

    /* absolute-form: the origin gets origin-form without Proxy-* headers */
    fd = client_connect();
    snprintf(req, sizeof(req),
             "GET http://127.0.0.1:%d/path?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "Proxy-Authorization: Basic eA==\r\nUser-Agent: t\r\n\r\n",
             o->port, o->port);
    CHECK(send(fd, req, strlen(req), 0) == (ssize_t)strlen(req));
    shutdown(fd, SHUT_WR);
    n = read_all(fd, body, sizeof(body) - 1);
    body[n] = '\0';
    snprintf(req, sizeof(req),
             "GET /path?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: t\r\n"
             "Connection: close\r\n\r\n",
             o->port);
    CHECK_STR(body, req);
    close(fd);
    settle(vm, 12 + strlen(req));
    egress_vm_stats(vm, &st);
    CHECK(st.bytes_out == 12 + strlen(req) && st.connections == 2);

    /* a bulk transfer through full buffers both ways */
    enum { BULK = 3 * 1024 * 1024 };
    static char out[BULK], back[BULK];
    for (size_t i = 0; i < BULK; i++)
        out[i] = (char)(i * 7 + i / 4096);
    fd = client_connect();
    snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", o->port);
    CHECK(client_request(fd, req, head, sizeof(head)) == 200);
    struct bulk b = {.fd = fd, .buf = out, .len = BULK};
    pthread_t writer;
    pthread_create(&writer, NULL, bulk_writer, &b);
    n = read_all(fd, back, BULK);
    pthread_join(writer, NULL);
    CHECK(b.sent == BULK && n == BULK && memcmp(out, back, BULK) == 0);
    close(fd);
    uint64_t before_in = st.bytes_in, before_out = st.bytes_out;
    settle(vm, before_in + BULK);
    egress_vm_stats(vm, &st);
    CHECK(st.bytes_in == before_in + BULK && st.bytes_out == before_out + BULK);
    CHECK(st.connections == 3);

    json_t *js = egress_stats_json(&st);
    CHECK(json_integer_value(json_object_get(js, "connections")) == 3);
    json_decref(js);

    /* not a proxy request */
    fd = client_connect();
    CHECK(client_request(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", head, sizeof(head)) == 400);
    close(fd);

    egress_vm_close(vm);
    CHECK(access(sock_path, F_OK) != 0);
    egress_free(eg);
    json_decref(cidrs);
}

static void test_default_refuses_internal(struct origin *o)
{
    struct egress *eg = make_egress(NULL, NULL, 0);
    struct egress_vm *vm = open_vm(eg, EGRESS_INTERNET, NULL);
    struct egress_stats st;
    char head[1024], req[256];
    int before = atomic_load(&o->accepted);
    atomic_store(&events, 0);
    const char *targets[] = {"127.0.0.1",          "[::1]",     "169.254.169.254", "10.1.2.3",
                             "[::ffff:127.0.0.1]", "localhost", "100.64.0.1"};

    for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
        int fd = client_connect();
        snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\n\r\n", targets[i], o->port);
        int status = client_request(fd, req, head, sizeof(head));
        if (status != 403)
            fprintf(stderr, "%s: status %d\n", targets[i], status);
        CHECK(status == 403);
        char body[512];
        size_t n = read_all(fd, body, sizeof(body) - 1);
        body[n] = '\0';
        CHECK(strstr(body, "porthole egress: ") && strstr(body, " refused: "));
        close(fd);
    }
    /* absolute-form too */
    int fd = client_connect();
    snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/ HTTP/1.1\r\n\r\n", o->port);
    CHECK(client_request(fd, req, head, sizeof(head)) == 403);
    close(fd);

    CHECK(atomic_load(&o->accepted) == before);
    egress_vm_stats(vm, &st);
    CHECK(st.refused == ARRAY_SIZE(targets) + 1 && st.connections == 0);
    CHECK(atomic_load(&events) == (int)ARRAY_SIZE(targets) + 1);
    egress_vm_close(vm);

    /* NONE: refused before any resolving */
    vm = open_vm(eg, EGRESS_NONE, NULL);
    fd = client_connect();
    CHECK(client_request(fd, "CONNECT example.com:443 HTTP/1.1\r\n\r\n", head, sizeof(head)) ==
          403);
    close(fd);
    egress_vm_stats(vm, &st);
    CHECK(st.refused == 1);
    egress_vm_close(vm);
    egress_free(eg);
}

static void test_allowlist(struct origin *o)
{
    struct fake_dns d;
    char dns[64], head[1024], req[256], body[2048];
    uint8_t hello[1024];
    json_t *cidrs = json_pack("[s]", "127.0.0.0/8");
    json_t *domains = json_pack("[s]", "allowed.test");
    struct egress_stats st;
    int fd;

    dns_start(&d);
    snprintf(dns, sizeof(dns), "127.0.0.1:%d", d.port);
    struct egress *eg = make_egress(dns, cidrs, 0);
    struct egress_vm *vm = open_vm(eg, EGRESS_ALLOWLIST, domains);
    int before = atomic_load(&o->accepted);

    /* not listed: refused before DNS and connect */
    fd = client_connect();
    snprintf(req, sizeof(req), "CONNECT other.test:%d HTTP/1.1\r\n\r\n", o->port);
    CHECK(client_request(fd, req, head, sizeof(head)) == 403);
    close(fd);
    /* a bare IP outside allow_cidrs */
    fd = client_connect();
    CHECK(client_request(fd, "CONNECT 203.0.113.77:443 HTTP/1.1\r\n\r\n", head, sizeof(head)) ==
          403);
    close(fd);
    /* Host header naming another host than the URL */
    fd = client_connect();
    snprintf(req, sizeof(req), "GET http://allowed.test:%d/ HTTP/1.1\r\nHost: other.test\r\n\r\n",
             o->port);
    CHECK(client_request(fd, req, head, sizeof(head)) == 403);
    close(fd);
    CHECK(atomic_load(&d.queries) == 0);
    CHECK(atomic_load(&o->accepted) == before);

    /* listed: resolved through the fake DNS, relayed */
    fd = client_connect();
    snprintf(req, sizeof(req), "CONNECT allowed.test:%d HTTP/1.1\r\n\r\n", o->port);
    CHECK(client_request(fd, req, head, sizeof(head)) == 200);
    size_t hl = client_hello(hello, "allowed.test", true);
    CHECK(send(fd, hello, hl, 0) == (ssize_t)hl);
    shutdown(fd, SHUT_WR);
    CHECK(read_all(fd, body, sizeof(body)) == hl);
    close(fd);
    CHECK(atomic_load(&d.queries) >= 1);

    /* SNI naming another host: closed, nothing reaches the origin */
    egress_vm_stats(vm, &st);
    uint64_t refused = st.refused;
    size_t received = atomic_load(&o->received);
    fd = client_connect();
    CHECK(client_request(fd, req, head, sizeof(head)) == 200);
    hl = client_hello(hello, "evil.test", false);
    CHECK(send(fd, hello, hl, 0) == (ssize_t)hl);
    CHECK(read_all(fd, body, sizeof(body)) == 0);
    close(fd);
    egress_vm_stats(vm, &st);
    CHECK(st.refused == refused + 1);
    CHECK(atomic_load(&o->received) == received);

    /* plain HTTP inside the tunnel is not TLS: the CONNECT host was the check */
    fd = client_connect();
    CHECK(client_request(fd, req, head, sizeof(head)) == 200);
    CHECK(send(fd, "ping", 4, 0) == 4);
    shutdown(fd, SHUT_WR);
    CHECK(read_all(fd, body, sizeof(body)) == 4);
    close(fd);

    egress_vm_close(vm);
    egress_free(eg);
    dns_stop(&d);
    json_decref(cidrs);
    json_decref(domains);
}

/* egress_hosts: fixed names, no resolver asked; the address check stays. */
static void test_fixed_hosts(struct origin *o)
{
    struct fake_dns d;
    char dns[64], head[1024], req[256];
    json_t *cidrs = json_pack("[s]", "127.0.0.0/8");
    json_t *hosts = json_pack("{s:s, s:s}", "fixed.test", "127.0.0.1", "lan.test", "10.1.2.3");
    struct egress_config cfg = {.allow_cidrs = cidrs, .hosts = hosts, .on_event = on_event};
    struct egress *eg = NULL;
    struct ph_error err = {0};
    int fd;

    dns_start(&d);
    snprintf(dns, sizeof(dns), "127.0.0.1:%d", d.port);
    cfg.dns_server = dns;
    CHECK(egress_new(&cfg, &eg, &err) == 0);
    struct egress_vm *vm = open_vm(eg, EGRESS_INTERNET, NULL);
    int before = atomic_load(&o->accepted);
    fd = client_connect();
    snprintf(req, sizeof(req), "CONNECT fixed.test:%d HTTP/1.1\r\n\r\n", o->port);
    CHECK(client_request(fd, req, head, sizeof(head)) == 200);
    close(fd);
    fd = client_connect();
    CHECK(client_request(fd, "CONNECT lan.test:80 HTTP/1.1\r\n\r\n", head, sizeof(head)) == 403);
    close(fd);
    CHECK(atomic_load(&d.queries) == 0);
    for (int i = 0; i < 200 && atomic_load(&o->accepted) == before; i++)
        usleep(10000);
    CHECK(atomic_load(&o->accepted) == before + 1);
    egress_vm_close(vm);
    egress_free(eg);
    dns_stop(&d);

    /* bad maps are refused at start */
    json_t *bad = json_pack("{s:s}", "Upper.test", "127.0.0.1");
    CHECK(egress_hosts_validate(bad, &err) < 0);
    json_decref(bad);
    bad = json_pack("{s:s}", "x.test", "not-an-ip");
    CHECK(egress_hosts_validate(bad, &err) < 0);
    json_decref(bad);
    json_decref(hosts);
    json_decref(cidrs);
}

static void test_cap_and_close(struct origin *o)
{
    json_t *cidrs = json_pack("[s]", "127.0.0.0/8");
    struct egress *eg = make_egress(NULL, cidrs, 2);
    struct egress_vm *vm = open_vm(eg, EGRESS_INTERNET, NULL);
    char head[1024], req[256], body[16];
    struct egress_stats st;

    int live = client_connect();
    snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", o->port);
    CHECK(client_request(live, req, head, sizeof(head)) == 200);
    CHECK(send(live, "x", 1, 0) == 1);
    CHECK(recv(live, body, 1, 0) == 1);

    /* a half-sent head holds the second slot */
    int partial = client_connect();
    CHECK(send(partial, "CONNECT 127.", 12, 0) == 12);

    int third = client_connect();
    CHECK(client_request(third, req, head, sizeof(head)) == 503);
    close(third);
    egress_vm_stats(vm, &st);
    CHECK(st.refused == 1);

    /* close ends the live tunnel and the half-read head */
    egress_vm_close(vm);
    CHECK(read_all(live, body, sizeof(body)) == 0);
    close(live);
    close(partial);
    egress_free(eg);
    json_decref(cidrs);
}

/* Head and idle timeouts, and a DNS answer lost once (the retry gets it). */
static void test_timeouts(struct origin *o)
{
    struct fake_dns d;
    char dns[64], head[1024], req[256], body[16];
    json_t *cidrs = json_pack("[s]", "127.0.0.0/8");
    json_t *domains = json_pack("[s]", "allowed.test");
    struct egress_vm *vm = NULL;
    struct ph_error err = {0};
    struct egress *eg = NULL;

    dns_start(&d);
    snprintf(dns, sizeof(dns), "127.0.0.1:%d", d.port);
    struct egress_config cfg = {.dns_server = dns,
                                .allow_cidrs = cidrs,
                                .connect_timeout_ms = 1000,
                                .head_timeout_ms = 300,
                                .idle_timeout_ms = 300};
    CHECK(egress_new(&cfg, &eg, &err) == 0);
    CHECK(egress_vm_open(eg, "vm-t", sock_path, EGRESS_ALLOWLIST, domains, &vm, &err) == 0);

    int fd = client_connect();
    int64_t t0 = now_ms();
    CHECK(client_request(fd, "CONNECT allowed.test:443", head, sizeof(head)) == 408);
    CHECK(now_ms() - t0 >= 250);
    close(fd);

    /* both first queries (A and AAAA) are lost */
    atomic_store(&d.drop, 2);
    fd = client_connect();
    snprintf(req, sizeof(req), "CONNECT allowed.test:%d HTTP/1.1\r\n\r\n", o->port);
    CHECK(client_request(fd, req, head, sizeof(head)) == 200);
    CHECK(atomic_load(&d.queries) == 4);
    t0 = now_ms();
    CHECK(read_all(fd, body, sizeof(body)) == 0); /* idle: closed */
    CHECK(now_ms() - t0 >= 250);
    close(fd);

    egress_vm_close(vm);
    egress_free(eg);
    dns_stop(&d);
    json_decref(cidrs);
    json_decref(domains);
}

int main(void)
{
    char dir[] = "/tmp/test_egress.XXXXXX";
    struct origin o;

    test_parse_head();
    test_sni();
    test_dns();
    test_addresses();

    CHECK(mkdtemp(dir) != NULL);
    snprintf(sock_path, sizeof(sock_path), "%s/egress.sock", dir);
    origin_start(&o);
    test_connect_and_get(&o);
    test_default_refuses_internal(&o);
    test_allowlist(&o);
    test_fixed_hosts(&o);
    test_cap_and_close(&o);
    test_timeouts(&o);
    origin_stop(&o);
    rm_rf(dir);
    CHECK_DONE();
}
