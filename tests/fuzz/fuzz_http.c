/* Fuzz target for the HTTP server's pure parsers (gateway/http_parse.c).
 * The first byte picks one, the rest is its input:
 *   'p' PATTERN '\n' PATH    route pattern check and matching
 *   'r' SIZE ' ' HEADER      a Range header against a resource of SIZE bytes
 *   'q' NAME '\n' ITEMS      a stored query string (NUL-separated items)
 *   's' PATH                 a /static/ sub-path
 *   'a' TEXT                 an Authorization header and an actor name
 *   'b' BYTES                what a client sent first, peeked for its token
 *   'w' FIELDS               a WebSocket upgrade's HTTP version, Host,
 *                            Connection, key and version, '\n'-separated
 *                            ("\x01" for an absent one)
 * Whatever the bytes: no crash, no read or write past a buffer, and what a
 * parser accepts is what its contract in http.h says. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "http_private.h"

static bool capture_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* pattern with each "{x}" segment replaced by the next of params, into
 * out; false when it does not fit. */
static bool pattern_fill(const char *pattern, const char *const *params, size_t n_params, char *out,
                         size_t len)
{
    size_t o = 0, k = 0;

    for (const char *p = pattern; *p;) {
        const char *s;
        size_t sl;
        if (*p == '{') {
            const char *close = strchrnul(p, '/');
            REQUIRE(k < n_params);
            s = params[k++];
            sl = strlen(s);
            p = close;
        } else {
            s = p;
            sl = 1;
            p++;
        }
        if (o + sl >= len)
            return false;
        memcpy(out + o, s, sl);
        o += sl;
    }
    out[o] = '\0';
    REQUIRE(k == n_params);
    return true;
}

/* Matches with a store of exactly the documented size. */
static bool match(const char *pattern, const char *path, const char **params, size_t *n,
                  char **store)
{
    size_t len = strlen(path) + 1;
    *store = malloc(len);
    REQUIRE(*store);
    return http_route_match(pattern, path, *store, len, params, n);
}

static void route(const char *in)
{
    const char *nl = strchr(in, '\n');
    char pattern[HTTP_MAX_PATH + 1], path[HTTP_MAX_PATH], again[2 * HTTP_MAX_PATH];
    const char *params[HTTP_MAX_PARAMS], *params2[HTTP_MAX_PARAMS];
    size_t n = 0, n2 = 0;
    char *store, *store2;

    if (!nl || (size_t)(nl - in) >= sizeof(pattern) || strlen(nl + 1) >= sizeof(path))
        return;
    memcpy(pattern, in, (size_t)(nl - in));
    pattern[nl - in] = '\0';
    strcpy(path, nl + 1);
    bool valid = http_pattern_check(pattern) == 0;
    /* The server only matches patterns it accepted, against paths lws
     * decoded; an invalid pattern still must not crash the matcher. */
    if (!valid) {
        if (match(pattern, path, params, &n, &store))
            REQUIRE(n <= HTTP_MAX_PARAMS);
        free(store);
        return;
    }

    /* The pattern with every capture made "x" is a path it matches. */
    const char *xs[HTTP_MAX_PARAMS] = {"x", "x", "x", "x"};
    size_t caps = 0;
    for (const char *p = pattern; (p = strstr(p, "/{")); p++)
        caps++;
    REQUIRE(caps <= HTTP_MAX_PARAMS);
    REQUIRE(pattern_fill(pattern, xs, caps, again, sizeof(again)));
    REQUIRE(match(pattern, again, params2, &n2, &store2) && n2 == caps);
    free(store2);

    if (path[0] != '/')
        return;
    bool matched = match(pattern, path, params, &n, &store);
    if (matched) {
        /* Each capture is one valid segment, and putting them back into
         * the pattern gives the path (without a trailing '/'). */
        REQUIRE(n == caps);
        for (size_t i = 0; i < n; i++) {
            size_t l = strlen(params[i]);
            REQUIRE(l >= 1 && l <= HTTP_MAX_CAPTURE);
            for (size_t j = 0; j < l; j++)
                REQUIRE(capture_char(params[i][j]));
        }
        REQUIRE(pattern_fill(pattern, params, n, again, sizeof(again)));
        size_t pl = strlen(path);
        if (pl > 1 && path[pl - 1] == '/')
            pl--;
        REQUIRE(strlen(again) == pl && memcmp(again, path, pl) == 0);
    }
    /* A trailing '/' changes nothing. */
    size_t pl = strlen(path);
    if (pl > 1 && path[pl - 1] != '/' && pl + 1 < sizeof(path)) {
        strcpy(again, path);
        strcat(again, "/");
        bool m2 = match(pattern, again, params2, &n2, &store2);
        REQUIRE(m2 == matched && (!m2 || n2 == n));
        for (size_t i = 0; m2 && i < n; i++)
            REQUIRE(strcmp(params[i], params2[i]) == 0);
        free(store2);
    }
    free(store);
}

static void range(const char *in)
{
    char *end;
    uint64_t size = strtoull(in, &end, 10), start = 0, len = 0;
    if (*end != ' ')
        return;
    const char *header = end + 1;
    int r = http_parse_range(header, size, &start, &len);

    REQUIRE(r == 1 || r == 0 || r == -ERANGE);
    if (r != 1)
        return;
    REQUIRE(start < size && len >= 1 && len <= size - start);
    /* The range it found, written out, is found again. */
    char canon[64];
    uint64_t s2, l2;
    snprintf(canon, sizeof(canon), "bytes=%" PRIu64 "-%" PRIu64, start, start + len - 1);
    REQUIRE(http_parse_range(canon, size, &s2, &l2) == 1 && s2 == start && l2 == len);
}

static void query(const uint8_t *p, size_t n)
{
    const uint8_t *nl = memchr(p, '\n', n);
    if (!nl)
        return;
    char *name = fuzz_strndup(p, (size_t)(nl - p));
    /* The server stores every item NUL-terminated, the last one too. */
    size_t len = n - (size_t)(nl + 1 - p);
    char *items = malloc(len + 1);
    REQUIRE(items);
    memcpy(items, nl + 1, len);
    items[len++] = '\0';

    /* Names are the handlers' own literals: never empty, never with '='. */
    size_t nlen = strlen(name);
    const char *v = nlen && !strchr(name, '=') ? http_query_find(items, len, name) : NULL;
    if (v) {
        size_t off = (size_t)(v - items);
        REQUIRE(v >= items && off < len && off >= nlen);
        /* v is the value of an item named name, or the end of a bare one. */
        size_t at = v[-1] == '=' ? off - 1 - nlen : off - nlen;
        REQUIRE(at == 0 || items[at - 1] == '\0');
        REQUIRE(memcmp(items + at, name, nlen) == 0);
        REQUIRE(items[at + nlen] == '=' || items[at + nlen] == '\0');
    }
    free(items);
    free(name);
}

static void static_path(const char *rel)
{
    if (!http_static_path_ok(rel))
        return;
    /* Relative, below the folder, no hidden file, nothing to interpret. */
    REQUIRE(rel[0] && rel[0] != '/' && strlen(rel) < 512);
    for (const char *seg = rel;;) {
        const char *e = strchrnul(seg, '/');
        REQUIRE(e > seg && seg[0] != '.');
        for (const char *c = seg; c < e; c++)
            REQUIRE(capture_char(*c));
        if (!*e)
            break;
        seg = e + 1;
    }
}

static void authorization(const char *text, size_t cut)
{
    const char *token = http_bearer_token(text);
    if (token) {
        REQUIRE(strncasecmp(text, "bearer", 6) == 0 && token > text + 6);
        REQUIRE(token < text + strlen(text) && *token != ' ' && *token != '\t');
        for (const char *c = text + 6; c < token; c++)
            REQUIRE(*c == ' ' || *c == '\t');
    }

    /* Any buffer size, the actor's 64 included: an exact allocation. */
    char *out = malloc(cut ? cut : 1);
    REQUIRE(out);
    http_admin_actor(text, out, cut);
    if (cut > 0) {
        size_t l = strnlen(out, cut);
        REQUIRE(l < cut);
        REQUIRE(strncmp(out, "admin", l < 5 ? l : 5) == 0);
        for (size_t i = 0; i < l; i++)
            REQUIRE(out[i] >= 0x20 && out[i] < 0x7f && out[i] != '"' && out[i] != '\\');
    }
    free(out);
}

static void peek_bearer(char *s)
{
    size_t len = strlen(s);
    const char *token = http_peek_bearer(s);
    if (token) {
        /* Inside the buffer, a whole non-empty value without blanks around. */
        REQUIRE(token > s && token < s + len && *token);
        REQUIRE(*token != ' ' && *token != '\t');
        REQUIRE(token[strlen(token) - 1] != ' ' && token[strlen(token) - 1] != '\t');
        REQUIRE(!strstr(token, "\r\n"));
    }
}

/* Whether list, a comma-separated header value, names token (any case). */
static bool lists(const char *list, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = list; (p = strcasestr(p, token)); p++) {
        const char *before = p, *after = p + tl;
        while (before > list && (before[-1] == ' ' || before[-1] == '\t'))
            before--;
        while (*after == ' ' || *after == '\t')
            after++;
        if ((before == list || before[-1] == ',') && (*after == '\0' || *after == ','))
            return true;
    }
    return false;
}

static void handshake(char *s)
{
    char *f[5] = {NULL};
    struct ph_error err = {0};

    for (int i = 0; i < 5; i++) {
        f[i] = s;
        s = strchrnul(s, '\n');
        if (*s)
            *s++ = '\0';
        if (strcmp(f[i], "\x01") == 0)
            f[i] = NULL;
    }
    int r = http_ws_handshake_check(f[0], f[1], f[2], f[3], f[4], &err);
    REQUIRE(r == 0 || r == -EINVAL || r == -EPROTONOSUPPORT);
    if (r < 0) {
        REQUIRE(err.kind == PH_ERR_INVALID && err.message[0]);
        return;
    }
    /* What it lets through is what RFC 6455 (4.2.1) describes. */
    REQUIRE(http_version_ok(f[0]) && strcmp(f[0], "HTTP/1.0") != 0);
    REQUIRE(f[1] && f[1][0]);
    REQUIRE(f[2] && lists(f[2], "upgrade"));
    REQUIRE(f[3] && strlen(f[3]) == 24 && strcmp(f[3] + 22, "==") == 0);
    for (int i = 0; i < 22; i++)
        REQUIRE(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", f[3][i]));
    REQUIRE(f[4] && strcmp(f[4], "13") == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    char *s = fuzz_strndup(data + 1, size - 1);
    switch (data[0]) {
    case 'p':
        route(s);
        break;
    case 'r':
        range(s);
        break;
    case 'q':
        query(data + 1, size - 1);
        break;
    case 's':
        static_path(s);
        break;
    case 'a':
        authorization(s, size % 80);
        break;
    case 'b':
        peek_bearer(s);
        break;
    case 'w':
        handshake(s);
        break;
    default:
        break;
    }
    free(s);
    return 0;
}
