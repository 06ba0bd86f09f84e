/* Unit tests for gateway/rfb_filter.c: the client half of an RFB stream,
 * with input dropped for watch-only viewers, whatever way the stream is
 * cut into WebSocket messages. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfb_filter.h"

#include "check.h"

struct buf {
    uint8_t d[4096];
    size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void put8(struct buf *b, uint8_t v)
{
    put(b, &v, 1);
}

static void put16(struct buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(b, x, 2);
}

static void put32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, x, 4);
}

static void zeros(struct buf *b, size_t n)
{
    memset(b->d + b->n, 0, n);
    b->n += n;
}

/* What noVNC sends, and what should come out of the filter, for one viewer
 * or the other. */
struct stream {
    struct buf in, out_view, out_control;
};

static void both(struct stream *s, const void *p, size_t n, bool input)
{
    put(&s->in, p, n);
    put(&s->out_control, p, n);
    if (!input)
        put(&s->out_view, p, n);
}

static void message(struct stream *s, const struct buf *m, bool input)
{
    both(s, m->d, m->n, input);
}

static void build_stream(struct stream *s)
{
    struct buf m;

    memset(s, 0, sizeof(*s));
    both(s, "RFB 003.008\n", 12, false);
    both(s, "\x01", 1, false); /* security None */
    /* ClientInit: an exclusive request comes out shared. */
    put8(&s->in, 0);
    put8(&s->out_view, 1);
    put8(&s->out_control, 1);

    m.n = 0; /* SetPixelFormat */
    put8(&m, 0);
    zeros(&m, 3);
    put8(&m, 32), put8(&m, 24), put8(&m, 0), put8(&m, 1);
    put16(&m, 255), put16(&m, 255), put16(&m, 255);
    put8(&m, 16), put8(&m, 8), put8(&m, 0);
    zeros(&m, 3);
    message(s, &m, false);

    m.n = 0; /* SetEncodings: 3 */
    put8(&m, 2), put8(&m, 0), put16(&m, 3);
    put32(&m, 0), put32(&m, (uint32_t)-223), put32(&m, (uint32_t)-258);
    message(s, &m, false);

    m.n = 0; /* FramebufferUpdateRequest */
    put8(&m, 3), put8(&m, 0), put16(&m, 0), put16(&m, 0), put16(&m, 1280), put16(&m, 720);
    message(s, &m, false);

    m.n = 0; /* PointerEvent */
    put8(&m, 5), put8(&m, 1), put16(&m, 100), put16(&m, 200);
    message(s, &m, true);

    m.n = 0; /* KeyEvent */
    put8(&m, 4), put8(&m, 1), put16(&m, 0), put32(&m, 0x61);
    message(s, &m, true);

    m.n = 0; /* ClientCutText */
    put8(&m, 6);
    zeros(&m, 3);
    put32(&m, 5);
    put(&m, "hello", 5);
    message(s, &m, true);

    m.n = 0; /* extended clipboard: negative length */
    put8(&m, 6);
    zeros(&m, 3);
    put32(&m, (uint32_t)-8);
    put32(&m, 0x01000001), put32(&m, 0x12345678);
    message(s, &m, true);

    m.n = 0; /* EnableContinuousUpdates */
    put8(&m, 150), put8(&m, 1), put16(&m, 0), put16(&m, 0), put16(&m, 1280), put16(&m, 720);
    message(s, &m, false);

    m.n = 0; /* ClientFence with 3 bytes of payload */
    put8(&m, 248);
    zeros(&m, 3);
    put32(&m, 0x80000001);
    put8(&m, 3);
    put(&m, "abc", 3);
    message(s, &m, false);

    m.n = 0; /* QEMU extended key event */
    put8(&m, 255), put8(&m, 0), put16(&m, 1), put32(&m, 0x61), put32(&m, 30);
    message(s, &m, true);

    m.n = 0; /* SetDesktopSize, one screen */
    put8(&m, 251), put8(&m, 0), put16(&m, 1024), put16(&m, 768), put8(&m, 1), put8(&m, 0);
    put32(&m, 0), put16(&m, 0), put16(&m, 0), put16(&m, 1024), put16(&m, 768), put32(&m, 0);
    message(s, &m, true);

    m.n = 0; /* xvp reboot */
    put8(&m, 250), put8(&m, 0), put8(&m, 1), put8(&m, 3);
    message(s, &m, true);

    m.n = 0; /* one more request after it all */
    put8(&m, 3), put8(&m, 1), put16(&m, 0), put16(&m, 0), put16(&m, 1280), put16(&m, 720);
    message(s, &m, false);
}

/* Feeds in, cut every `step` bytes (0: cut at each position of `cuts`),
 * into a copy that is filtered in place; returns the output length. */
static ssize_t run(bool view_only, const struct buf *in, size_t step, uint8_t *out)
{
    struct rfb_filter f;
    uint8_t work[4096];
    size_t o = 0;

    rfb_filter_init(&f, view_only);
    memcpy(work, in->d, in->n);
    for (size_t i = 0; i < in->n; i += step) {
        size_t n = in->n - i < step ? in->n - i : step;
        ssize_t r = rfb_filter_feed(&f, work + i, n, work + i);
        if (r < 0)
            return r;
        if ((size_t)r > n)
            return -1000; /* more out than in: in place would break */
        memcpy(out + o, work + i, (size_t)r);
        o += (size_t)r;
    }
    return (ssize_t)o;
}

static void test_streams(void)
{
    struct stream s;
    uint8_t out[4096];

    build_stream(&s);
    for (size_t step = 1; step <= s.in.n; step++) {
        ssize_t n = run(false, &s.in, step, out);
        if (n != (ssize_t)s.out_control.n || memcmp(out, s.out_control.d, s.out_control.n) != 0) {
            fprintf(stderr, "control, step %zu: %zd bytes, expected %zu\n", step, n,
                    s.out_control.n);
            check_failures++;
        }
        n = run(true, &s.in, step, out);
        if (n != (ssize_t)s.out_view.n || memcmp(out, s.out_view.d, s.out_view.n) != 0) {
            fprintf(stderr, "view-only, step %zu: %zd bytes, expected %zu\n", step, n,
                    s.out_view.n);
            check_failures++;
        }
    }
    /* Both cuts at every pair of positions, on the watch-only side. */
    for (size_t a = 1; a < s.in.n; a += 3)
        for (size_t b = a + 1; b < s.in.n; b += 5) {
            struct rfb_filter f;
            uint8_t work[4096];
            size_t o = 0;
            ssize_t r1, r2, r3;
            rfb_filter_init(&f, true);
            memcpy(work, s.in.d, s.in.n);
            r1 = rfb_filter_feed(&f, work, a, out);
            r2 = r1 < 0 ? r1 : rfb_filter_feed(&f, work + a, b - a, out + r1);
            r3 = r2 < 0 ? r2 : rfb_filter_feed(&f, work + b, s.in.n - b, out + r1 + r2);
            if (r3 < 0) {
                check_failures++;
                fprintf(stderr, "cuts %zu %zu: failed\n", a, b);
                continue;
            }
            o = (size_t)(r1 + r2 + r3);
            if (o != s.out_view.n || memcmp(out, s.out_view.d, o) != 0) {
                check_failures++;
                fprintf(stderr, "cuts %zu %zu: wrong output\n", a, b);
            }
        }
}

static ssize_t feed_all(struct rfb_filter *f, const void *p, size_t n)
{
    uint8_t out[4096];
    return rfb_filter_feed(f, p, n, out);
}

static void test_handshakes(void)
{
    struct rfb_filter f;
    uint8_t out[64];

    /* 3.3: the server picks the security type; the client goes straight to
     * ClientInit. */
    rfb_filter_init(&f, true);
    CHECK(rfb_filter_feed(&f, (const uint8_t *)"RFB 003.003\n\x00\x05\x00", 15, out) == 13);
    CHECK(out[12] == 1);
    CHECK(f.stage == RFB_STAGE_MESSAGES);

    /* VNC authentication: 16 bytes of response pass. */
    rfb_filter_init(&f, true);
    uint8_t auth[12 + 1 + 16 + 1];
    memcpy(auth, "RFB 003.008\n", 12);
    auth[12] = 2;
    memset(auth + 13, 0x5a, 16);
    auth[29] = 1;
    CHECK(feed_all(&f, auth, sizeof(auth)) == (ssize_t)sizeof(auth));
    CHECK(f.stage == RFB_STAGE_MESSAGES);

    /* A version that is not one. */
    rfb_filter_init(&f, false);
    CHECK(feed_all(&f, "GET / HTTP/1.1\r\n", 16) == -EPROTO);
    rfb_filter_init(&f, false);
    CHECK(feed_all(&f, "RFB 003.00x\n", 12) == -EPROTO);

    /* Security types this proxy cannot follow. */
    rfb_filter_init(&f, false);
    CHECK(feed_all(&f, "RFB 003.008\n\x10", 13) == -EPROTO);
    rfb_filter_init(&f, false);
    CHECK(feed_all(&f, "RFB 003.008\n\x00", 13) == -EPROTO);
}

static void init_session(struct rfb_filter *f, bool view_only)
{
    rfb_filter_init(f, view_only);
    feed_all(f, "RFB 003.008\n\x01\x01", 14);
}

static void test_violations(void)
{
    struct rfb_filter f;
    uint8_t m[16];

    /* Unknown message type; the failure sticks. */
    init_session(&f, false);
    CHECK(feed_all(&f, "\x07\x00\x00\x00", 4) == -EPROTO);
    CHECK(feed_all(&f, "\x03\x00\x00\x00\x00\x00\x00\x10\x00\x10", 10) == -EPROTO);

    /* An unknown type after good bytes in the same call still fails it
     * all: the connection closes. */
    init_session(&f, true);
    CHECK(feed_all(&f, "\x05\x00\x00\x01\x00\x01\x09", 7) == -EPROTO);

    /* Clipboard larger than the bound, either sign. */
    init_session(&f, false);
    memcpy(m, "\x06\x00\x00\x00", 4);
    m[4] = (uint8_t)((RFB_MAX_CUT_TEXT + 1) >> 24), m[5] = (uint8_t)((RFB_MAX_CUT_TEXT + 1) >> 16);
    m[6] = (uint8_t)((RFB_MAX_CUT_TEXT + 1) >> 8), m[7] = (uint8_t)(RFB_MAX_CUT_TEXT + 1);
    CHECK(feed_all(&f, m, 8) == -EPROTO);
    init_session(&f, false);
    CHECK(feed_all(&f, "\x06\x00\x00\x00\x80\x00\x00\x00", 8) == -EPROTO);
    init_session(&f, false);
    CHECK(feed_all(&f, "\x06\x00\x00\x00\x00\x00\x00\x00", 8) == 8); /* empty is fine */

    /* A fence payload is at most 64 bytes. */
    init_session(&f, false);
    CHECK(feed_all(&f, "\xf8\x00\x00\x00\x00\x00\x00\x00\x41", 9) == -EPROTO);

    /* QEMU messages other than the extended key event. */
    init_session(&f, false);
    CHECK(feed_all(&f, "\xff\x01\x00\x00", 4) == -EPROTO);

    /* A long SetEncodings arriving byte by byte passes whole. */
    init_session(&f, true);
    uint8_t enc[4 + 4 * 300];
    enc[0] = 2, enc[1] = 0, enc[2] = 300 >> 8, enc[3] = 300 & 0xff;
    for (size_t i = 4; i < sizeof(enc); i++)
        enc[i] = (uint8_t)i;
    size_t total = 0;
    for (size_t i = 0; i < sizeof(enc); i++) {
        uint8_t o;
        ssize_t r = rfb_filter_feed(&f, enc + i, 1, &o);
        CHECK(r == 1 && o == enc[i]);
        total += r > 0 ? (size_t)r : 0;
    }
    CHECK(total == sizeof(enc));
    CHECK(f.have == 0); /* back at a message boundary */
}

int main(void)
{
    test_streams();
    test_handshakes();
    test_violations();
    CHECK_DONE();
}
