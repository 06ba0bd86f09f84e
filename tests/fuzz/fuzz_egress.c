/* Fuzz target for the egress proxy's pure parsers: the first byte picks
 * one (request head, TLS ClientHello, DNS answer, CIDR), the rest is its
 * input. Whatever the bytes: no crash, no read past the input, and what a
 * parser says it found is within its bounds. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress.h"
#include "fuzz.h"

static void head(const uint8_t *p, size_t n)
{
    char *buf = fuzz_memdup(p, n);
    static char fwd[EGRESS_MAX_HEAD + 64];
    struct egress_request req;
    size_t fwd_len = 0;

    int r = egress_parse_head(buf, n, &req, fwd, sizeof(fwd), &fwd_len);
    REQUIRE(r == -EAGAIN || r == -E2BIG || r == -EINVAL || r == -EPERM || r > 0);
    if (r > 0) {
        REQUIRE((size_t)r <= n);
        REQUIRE(strlen(req.host) <= EGRESS_MAX_HOST && req.host[0]);
        REQUIRE(req.port > 0 && req.port <= 65535);
        REQUIRE(req.connect || fwd_len <= sizeof(fwd));
    }
    free(buf);
}

static void sni(const uint8_t *p, size_t n)
{
    uint8_t *buf = fuzz_memdup(p, n);
    char out[256];

    int r = egress_tls_sni(buf, n, out, sizeof(out));
    REQUIRE(r == 1 || r == 0 || r == -EAGAIN || r == -EINVAL || r == -E2BIG);
    if (r == 1)
        REQUIRE(strlen(out) < sizeof(out));
    free(buf);
}

static void dns(const uint8_t *p, size_t n)
{
    uint8_t addrs[8][16];

    if (n < 3)
        return;
    uint8_t *buf = fuzz_memdup(p, n);
    /* The query this answer would belong to: id from the message itself,
     * a fixed name, A or AAAA by one bit. */
    uint16_t id = (uint16_t)(buf[0] << 8 | buf[1]);
    int r = egress_dns_parse(buf, n, id, "web.test", (buf[2] & 1) ? 28 : 1, addrs, 8);
    REQUIRE(r == -ENOENT || r == -EIO || r == -EINVAL || (r >= 0 && r <= 8));
    free(buf);
}

static void cidr(const uint8_t *p, size_t n)
{
    char text[128];
    struct egress_cidr c;

    if (n >= sizeof(text))
        n = sizeof(text) - 1;
    memcpy(text, p, n);
    text[n] = '\0';
    if (egress_cidr_parse(text, &c) == 0)
        REQUIRE((c.family == AF_INET && c.prefix >= 0 && c.prefix <= 32) ||
                (c.family == AF_INET6 && c.prefix >= 0 && c.prefix <= 128));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] % 4) {
    case 0:
        head(data + 1, size - 1);
        break;
    case 1:
        sni(data + 1, size - 1);
        break;
    case 2:
        dns(data + 1, size - 1);
        break;
    default:
        cidr(data + 1, size - 1);
        break;
    }
    return 0;
}
