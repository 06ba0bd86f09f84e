/* The CDP client's wire formats (see cdp_wire.h): HTTP replies, the
 * debugger URL in /json replies, WebSocket frames and CDP message ids. */

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "cdp_wire.h"

#define HTTP_LENGTH_MAX (1LL << 40)

/* RFC 9110's token characters, which a header name is made of. */
static bool is_tchar(char c)
{
    return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* A Content-Length value, its surrounding whitespace included. */
static int parse_length(const char *v, const char *end, long long *out)
{
    while (v < end && is_ows(*v))
        v++;
    while (end > v && is_ows(end[-1]))
        end--;
    if (v == end)
        return -EPROTO;
    long long n = 0;
    for (; v < end; v++) {
        if (!isdigit((unsigned char)*v))
            return -EPROTO;
        n = n * 10 + (*v - '0');
        if (n > HTTP_LENGTH_MAX)
            return -EPROTO;
    }
    *out = n;
    return 0;
}

int http_reply_parse(const char *buf, size_t len, bool eof, struct http_reply *reply)
{
    static const char version[] = "HTTP/1.";
    const size_t vlen = sizeof(version) - 1;

    memset(reply, 0, sizeof(*reply));
    reply->length = -1;
    /* Refuse what cannot become a reply as soon as it shows, not at the
     * end of a timeout. */
    if (memcmp(buf, version, len < vlen ? len : vlen) != 0)
        return -EPROTO;
    const char *blank = memmem(buf, len, "\r\n\r\n", 4);
    if (!blank)
        return eof ? -EPROTO : 0;
    const char *head_end = blank + 4;
    reply->head_len = (size_t)(head_end - buf);

    /* "HTTP/1.x NNN reason\r\n"; the reason may be empty or missing. */
    const char *p = buf + vlen;
    if (reply->head_len < vlen + 7 || !isdigit((unsigned char)p[0]) || p[1] != ' ' ||
        !isdigit((unsigned char)p[2]) || !isdigit((unsigned char)p[3]) ||
        !isdigit((unsigned char)p[4]) || (p[5] != ' ' && p[5] != '\r'))
        return -EPROTO;
    reply->status = (p[2] - '0') * 100 + (p[3] - '0') * 10 + (p[4] - '0');
    if (reply->status < 100)
        return -EPROTO;

    const char *line = (const char *)memmem(buf, reply->head_len, "\r\n", 2) + 2;
    while (line < blank + 2) {
        const char *eol = memmem(line, (size_t)(head_end - line), "\r\n", 2);
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon || colon == line)
            return -EPROTO;
        for (const char *q = line; q < colon; q++)
            if (!is_tchar(*q))
                return -EPROTO;
        if (colon - line == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
            long long n;
            if (parse_length(colon + 1, eol, &n) < 0 || (reply->length >= 0 && reply->length != n))
                return -EPROTO;
            reply->length = n;
        }
        line = eol + 2;
    }

    size_t have = len - reply->head_len;
    if (reply->status < 200 || reply->status == 204 || reply->status == 304)
        return 1;
    if (reply->length >= 0) {
        if (have < (unsigned long long)reply->length)
            return eof ? -EPROTO : 0;
        reply->body_len = (size_t)reply->length;
        return 1;
    }
    if (!eof)
        return 0;
    reply->body_len = have;
    return 1;
}

static const char *skip_json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

int cdp_debugger_path(const char *body, size_t len, const char *prefix, char *path,
                      size_t path_size)
{
    static const char key[] = "\"webSocketDebuggerUrl\"";
    const char *p = body, *end = body + len;
    const size_t prefix_len = strlen(prefix);

    while ((p = memmem(p, (size_t)(end - p), key, sizeof(key) - 1))) {
        p = skip_json_ws(p + sizeof(key) - 1, end);
        if (p == end || *p != ':')
            continue;
        p = skip_json_ws(p + 1, end);
        if (p == end || *p != '"')
            continue;
        const char *value = ++p;
        while (p < end && *p != '"')
            p++;
        if (p == end)
            break;
        /* ws://AUTHORITY/PATH: the authority is Chromium's own address. */
        if (p - value < 5 || memcmp(value, "ws://", 5) != 0)
            continue;
        const char *slash = memchr(value + 5, '/', (size_t)(p - value - 5));
        if (!slash)
            continue;
        size_t n = (size_t)(p - slash);
        bool clean = true;
        for (const char *q = slash; q < p && clean; q++)
            clean = *q > ' ' && *q < 0x7f && *q != '\\';
        if (!clean || n <= prefix_len || memcmp(slash, prefix, prefix_len) != 0)
            continue;
        if (n >= path_size)
            return -ENAMETOOLONG;
        memcpy(path, slash, n);
        path[n] = '\0';
        return 0;
    }
    return -ENOENT;
}

ssize_t ws_text_frame(char *out, size_t cap, const char *msg, size_t len)
{
    size_t hl = len < 126 ? 2 : len <= 0xffff ? 4 : 10;
    if (cap < hl + 4 || len > cap - hl - 4)
        return -EMSGSIZE;
    out[0] = (char)(0x80 | WS_OP_TEXT);
    if (hl == 2) {
        out[1] = (char)(0x80 | len);
    } else if (hl == 4) {
        out[1] = (char)(0x80 | 126);
        out[2] = (char)(len >> 8);
        out[3] = (char)(len & 0xff);
    } else {
        out[1] = (char)(0x80 | 127);
        for (int i = 0; i < 8; i++)
            out[2 + i] = (char)((uint64_t)len >> (56 - 8 * i));
    }
    memset(out + hl, 0, 4);
    memcpy(out + hl + 4, msg, len);
    return (ssize_t)(hl + 4 + len);
}

int ws_frame_parse(const unsigned char *buf, size_t len, struct ws_frame *frame)
{
    memset(frame, 0, sizeof(*frame));
    if (len < 2)
        return 0;
    unsigned op = buf[0] & 0x0f;
    if ((buf[0] & 0x70) || (op > WS_OP_BINARY && op < WS_OP_CLOSE) || op > WS_OP_PONG)
        return -EPROTO;
    if (buf[1] & 0x80)
        return -EPROTO;
    uint64_t n = buf[1] & 0x7f;
    size_t hl = 2;
    if (n == 126) {
        if (len < 4)
            return 0;
        n = (uint64_t)buf[2] << 8 | buf[3];
        if (n < 126)
            return -EPROTO;
        hl = 4;
    } else if (n == 127) {
        if (len < 10)
            return 0;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | buf[2 + i];
        if (n >> 63 || n <= 0xffff)
            return -EPROTO;
        hl = 10;
    }
    frame->fin = buf[0] & 0x80;
    if (op >= WS_OP_CLOSE && (!frame->fin || n > 125))
        return -EPROTO;
    frame->opcode = op;
    frame->head_len = hl;
    frame->payload_len = n;
    return 1;
}

long long cdp_reply_id(const char *msg, size_t len)
{
    const char *p = skip_json_ws(msg, msg + len), *end = msg + len;
    if (p == end || *p != '{')
        return -1;
    p++;
    int depth = 1;
    bool at_key = true; /* the next string at depth 1 is a member's name */
    while (p < end && depth > 0) {
        char c = *p;
        if (c != '"') {
            if (c == '{' || c == '[')
                depth++;
            else if (c == '}' || c == ']')
                depth--;
            else if (c == ',' && depth == 1)
                at_key = true;
            p++;
            continue;
        }
        const char *s = ++p;
        while (p < end && *p != '"')
            p += *p == '\\' ? 2 : 1;
        if (p >= end)
            return -1;
        bool is_id = depth == 1 && at_key && p - s == 2 && memcmp(s, "id", 2) == 0;
        if (depth == 1)
            at_key = false;
        p++;
        if (!is_id)
            continue;
        p = skip_json_ws(p, end);
        if (p == end || *p != ':')
            return -1;
        p = skip_json_ws(p + 1, end);
        long long id = 0;
        const char *digits = p;
        while (p < end && isdigit((unsigned char)*p) && p - digits < 18)
            id = id * 10 + (*p++ - '0');
        p = skip_json_ws(p, end);
        if (p == digits || p == end || (*p != ',' && *p != '}'))
            return -1;
        return id;
    }
    return -1;
}
