/* Fuzz target for urlhost_parse: whatever the bytes, no crash, and a host
 * it returns is one the policy can compare safely: canonical (lowercase,
 * no trailing dot, no forbidden code point) and a fixed point (the URL
 * "http://HOST/" and a shouted variant of it give HOST back). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "urlhost.h"

static bool has_host(enum urlhost_kind kind)
{
    return kind == URLHOST_DOMAIN || kind == URLHOST_IPV4 || kind == URLHOST_IPV6;
}

static void check_host(const struct urlhost *u)
{
    size_t n = strlen(u->host);

    REQUIRE(n > 0 && n <= URLHOST_MAX);
    REQUIRE(u->host[n - 1] != '.' && u->host[0] != '.' && !strstr(u->host, ".."));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u->host[i];
        REQUIRE(c > 0x20 && c < 0x7f && !(c >= 'A' && c <= 'Z'));
        REQUIRE(!strchr("#%/<>?@\\^|", c));
        if (u->kind == URLHOST_IPV6)
            REQUIRE(strchr("[]:0123456789abcdef", c));
        else
            REQUIRE(!strchr(":[]", c));
    }
    if (u->kind == URLHOST_IPV4)
        REQUIRE(strspn(u->host, "0123456789.") == n);
    REQUIRE(u->port >= -1 && u->port <= 65535);
}

/* Parses prefix HOST suffix, expecting kind and HOST back. */
static void check_fixed_point(const struct urlhost *u, const char *prefix, const char *suffix,
                              bool shout)
{
    char url[URLHOST_MAX + 32];
    struct urlhost again;
    int n = snprintf(url, sizeof(url), "%s%s%s", prefix, u->host, suffix);

    REQUIRE(n > 0 && (size_t)n < sizeof(url));
    if (shout)
        for (char *c = url; *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char)(*c - 32);
    REQUIRE(urlhost_parse(url, (size_t)n, &again) == 0);
    REQUIRE(again.kind == u->kind);
    REQUIRE(strcmp(again.host, u->host) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct urlhost u;
    int r = urlhost_parse((const char *)data, size, &u);

    if (r < 0) {
        REQUIRE(r == -EINVAL || r == -EILSEQ || r == -ENAMETOOLONG || r == -ENOMEM);
        REQUIRE(u.why && u.host[0] == '\0');
        return 0;
    }
    REQUIRE(r == 0 && !u.why);
    for (const char *c = u.scheme; *c; c++)
        REQUIRE(!(*c >= 'A' && *c <= 'Z'));
    if (!has_host(u.kind)) {
        REQUIRE(u.host[0] == '\0' && u.port == -1);
        return 0;
    }
    check_host(&u);
    check_fixed_point(&u, "http://", "/", false);
    check_fixed_point(&u, "\t HTTPS:\\\\user:pw@", u.kind == URLHOST_DOMAIN ? ".:443?" : ":1#",
                      true);
    return 0;
}
