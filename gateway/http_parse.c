/* The pure parsers behind the HTTP server: route patterns and matching,
 * Range headers, stored query strings, static file paths, the bearer
 * token of an Authorization header and the actor named beside it, the
 * request line's version and a WebSocket upgrade's headers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_private.h"
#include "util.h"

static bool capture_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int http_pattern_check(const char *pattern)
{
    size_t n_caps = 0;

    if (!pattern || pattern[0] != '/' || strlen(pattern) >= HTTP_MAX_PATH)
        return -EINVAL;
    if (pattern[1] == '\0')
        return 0;
    for (const char *seg = pattern + 1;;) {
        const char *end = strchrnul(seg, '/');
        size_t len = (size_t)(end - seg);
        if (len == 0)
            return -EINVAL; /* "//" or a trailing '/' */
        if (seg[0] == '{') {
            if (len < 3 || seg[len - 1] != '}' || ++n_caps > HTTP_MAX_PARAMS)
                return -EINVAL;
            for (size_t i = 1; i < len - 1; i++)
                if (!capture_char_ok(seg[i]))
                    return -EINVAL;
        } else {
            for (size_t i = 0; i < len; i++)
                if (seg[i] == '{' || seg[i] == '}')
                    return -EINVAL;
        }
        if (*end == '\0')
            return 0;
        seg = end + 1;
    }
}

bool http_route_match(const char *pattern, const char *path, char *store, size_t store_len,
                      const char **params, size_t *n_params)
{
    size_t plen = strlen(path), used = 0, n = 0;

    *n_params = 0;
    if (path[0] != '/' || pattern[0] != '/')
        return false;
    if (plen > 1 && path[plen - 1] == '/')
        plen--; /* "/a/b/" is "/a/b" */
    if (pattern[1] == '\0')
        return plen == 1;
    if (plen == 1)
        return false;

    const char *ps = pattern + 1, *qs = path + 1, *qend = path + plen;
    for (;;) {
        const char *pe = strchrnul(ps, '/');
        const char *qe = memchr(qs, '/', (size_t)(qend - qs));
        if (!qe)
            qe = qend;
        size_t pl = (size_t)(pe - ps), ql = (size_t)(qe - qs);

        if (ps[0] == '{') {
            if (ql == 0 || ql > HTTP_MAX_CAPTURE || n >= HTTP_MAX_PARAMS)
                return false;
            for (size_t i = 0; i < ql; i++)
                if (!capture_char_ok(qs[i]))
                    return false;
            if (used + ql + 1 > store_len)
                return false;
            memcpy(store + used, qs, ql);
            store[used + ql] = '\0';
            params[n++] = store + used;
            used += ql + 1;
        } else if (pl != ql || memcmp(ps, qs, pl) != 0) {
            return false;
        }

        bool pattern_done = *pe == '\0', path_done = qe == qend;
        if (pattern_done || path_done) {
            if (pattern_done != path_done)
                return false;
            *n_params = n;
            return true;
        }
        ps = pe + 1;
        qs = qe + 1;
    }
}

/* Parses a decimal without sign; false on no digits or overflow. */
bool http_parse_u64(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;

    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
            return false;
        v = v * 10 + d;
    }
    *s = p;
    *out = v;
    return true;
}

int http_parse_range(const char *h, uint64_t size, uint64_t *start, uint64_t *len)
{
    uint64_t a = 0, b = 0;

    if (!h)
        return 0;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "bytes", 5) != 0)
        return 0;
    h += 5;
    while (*h == ' ' || *h == '\t')
        h++;
    if (*h++ != '=')
        return 0;
    while (*h == ' ' || *h == '\t')
        h++;

    if (*h == '-') {
        h++;
        if (!http_parse_u64(&h, &b))
            return 0;
        while (*h == ' ' || *h == '\t')
            h++;
        if (*h != '\0')
            return 0; /* trailing junk or a second range */
        if (b == 0 || size == 0)
            return -ERANGE;
        *start = b >= size ? 0 : size - b;
        *len = size - *start;
        return 1;
    }

    if (!http_parse_u64(&h, &a) || *h++ != '-')
        return 0;
    bool open_end = !(*h >= '0' && *h <= '9');
    if (!open_end && !http_parse_u64(&h, &b))
        return 0;
    while (*h == ' ' || *h == '\t')
        h++;
    if (*h != '\0')
        return 0;
    if (!open_end && b < a)
        return 0; /* invalid range-spec: RFC 9110 says ignore the header */
    if (a >= size)
        return -ERANGE;
    *start = a;
    *len = (open_end || b >= size - 1 ? size - 1 : b) - a + 1;
    return 1;
}

const char *http_query_find(const char *args, size_t len, const char *name)
{
    size_t nl = strlen(name);

    for (size_t off = 0; off < len;) {
        const char *item = args + off;
        size_t il = strnlen(item, len - off);
        if (il >= nl && memcmp(item, name, nl) == 0) {
            if (item[nl] == '=')
                return item + nl + 1;
            if (item[nl] == '\0')
                return item + nl;
        }
        off += il + 1;
    }
    return NULL;
}

bool http_static_path_ok(const char *rel)
{
    size_t seglen = 0;

    if (!rel || !*rel || strlen(rel) >= 512)
        return false;
    for (const char *p = rel;; p++) {
        if (*p == '/' || *p == '\0') {
            if (seglen == 0)
                return false;
            if (*p == '\0')
                return true;
            seglen = 0;
            continue;
        }
        if (seglen == 0 && *p == '.')
            return false; /* hidden files, "." and ".." */
        if (!capture_char_ok(*p))
            return false;
        seglen++;
    }
}

bool http_version_ok(const char *v)
{
    return v && strncmp(v, "HTTP/1.", 7) == 0 && v[7] >= '0' && v[7] <= '9' && v[8] == '\0';
}

/* Whether list, a comma-separated header value, holds token (any case). */
static bool list_has_token(const char *list, const char *token)
{
    size_t tl = strlen(token);

    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = strchrnul(p, ',');
        size_t n = (size_t)(end - p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == tl && strncasecmp(p, token, tl) == 0)
            return true;
        p = end;
    }
    return false;
}

/* 16 bytes in base64: 22 characters of the alphabet and "==". */
static bool ws_key_ok(const char *key)
{
    if (!key || strlen(key) != 24 || strcmp(key + 22, "==") != 0)
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!((key[i] >= 'A' && key[i] <= 'Z') || (key[i] >= 'a' && key[i] <= 'z') ||
              (key[i] >= '0' && key[i] <= '9') || key[i] == '+' || key[i] == '/'))
            return false;
    return true;
}

int http_ws_handshake_check(const char *http_version, const char *host, const char *connection,
                            const char *key, const char *ws_version, struct ph_error *err)
{
    if (!http_version_ok(http_version) || strcmp(http_version, "HTTP/1.0") == 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "a WebSocket upgrade needs HTTP/1.1");
    if (!host || !*host)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "a WebSocket upgrade needs a Host");
    if (!list_has_token(connection, "upgrade"))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "a WebSocket upgrade needs Connection: Upgrade");
    if (!ws_key_ok(key))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "Sec-WebSocket-Key must be 16 bytes in base64");
    if (!ws_version || strcmp(ws_version, "13") != 0)
        return ph_error_set(err, PH_ERR_INVALID, -EPROTONOSUPPORT,
                            "only WebSocket version 13 is served (Sec-WebSocket-Version: 13)");
    return 0;
}

const char *http_bearer_token(const char *authz)
{
    if (!authz || strncasecmp(authz, "Bearer", 6) != 0 || (authz[6] != ' ' && authz[6] != '\t'))
        return NULL;
    authz += 6;
    while (*authz == ' ' || *authz == '\t')
        authz++;
    return *authz ? authz : NULL;
}

const char *http_peek_bearer(char *buf)
{
    /* The first request's header block only: after its end come a body
     * or the next request. */
    char *end = strstr(buf, "\r\n\r\n");
    if (end)
        end[2] = '\0';
    /* A line of its own: not X-Authorization, not inside another value. */
    char *p = strcasestr(buf, "\r\nauthorization:");
    if (!p)
        return NULL;
    char *v = p + strlen("\r\nauthorization:"), *eol = strstr(v, "\r\n");
    if (!eol)
        return NULL; /* not all there yet */
    while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t'))
        eol--;
    *eol = '\0';
    while (*v == ' ' || *v == '\t')
        v++;
    return http_bearer_token(v);
}

void http_admin_actor(const char *on_behalf, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "admin");

    /* Who an admin client acts for ("mcp:Claude Desktop"): audit text
     * only, never a permission; kept to printable ASCII and the buffer. */
    if (!on_behalf || !*on_behalf || n + 2 >= len)
        return;
    out[n++] = '/';
    for (const char *p = on_behalf; *p && n + 1 < len; p++)
        out[n++] = (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') ? *p : '_';
    out[n] = '\0';
}
