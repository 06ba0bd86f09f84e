#include "wsc.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpc.h"
#include "util.h"

#define WSC_TICK_MS 100

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

struct wsc {
    int fd;     /* owned */
    char *buf;  /* owned: bytes received, not yet taken */
    size_t len; /* bytes in buf */
    size_t cap;
    bool closed;            /* a close frame came, or the connection ended */
    int close_status;       /* the server's close frame's, 0 without one */
    char close_reason[124]; /* its reason, NUL-terminated */
};

int wsc_open_http(const char *base_url, const char *path, const char *token, const char *actor,
                  int timeout_ms, struct wsc **out, char *detail, size_t detail_len)
{
    struct httpc_url u;
    struct httpc_response resp;
    int fd, r;

    *out = NULL;
    if (detail_len)
        detail[0] = '\0';
    if ((r = httpc_url_parse(base_url, &u)) < 0) {
        if (detail_len)
            snprintf(detail, detail_len, "not an http:// URL: %.200s", base_url);
        return r;
    }
    struct httpc_request req = HTTPC_REQUEST_INIT("GET", path);
    req.timeout_ms = timeout_ms;
    req.token = token;
    req.actor = actor;
    struct wsc *ws = calloc(1, sizeof(*ws));
    if (!ws) {
        if (detail_len)
            snprintf(detail, detail_len, "out of memory");
        return -ENOMEM;
    }
    r = httpc_websocket_open(&u, &req, &fd, &ws->buf, &ws->len, &resp);
    if (r < 0) {
        if (detail_len)
            snprintf(detail, detail_len, "%s", resp.detail[0] ? resp.detail : strerror(-r));
        httpc_response_done(&resp);
        free(ws);
        return r;
    }
    httpc_response_done(&resp);
    ws->fd = fd;
    ws->cap = ws->len;
    *out = ws;
    return 0;
}

int wsc_open(const char *url, int timeout_ms, struct wsc **out, char *detail, size_t detail_len)
{
    char base[1100];
    const char *rest, *path;

    *out = NULL;
    if (detail_len)
        detail[0] = '\0';
    if (strncmp(url, "ws://", 5) != 0) {
        if (detail_len)
            snprintf(detail, detail_len, "not a ws:// URL: %.200s", url);
        return -EPROTONOSUPPORT;
    }
    rest = url + 5;
    path = rest + strcspn(rest, "/");
    if (*path != '/' || (size_t)(path - rest) + 8 > sizeof(base)) {
        if (detail_len)
            snprintf(detail, detail_len, "not a ws://HOST/PATH URL: %.200s", url);
        return -EINVAL;
    }
    snprintf(base, sizeof(base), "http://%.*s", (int)(path - rest), rest);
    return wsc_open_http(base, path, NULL, NULL, timeout_ms, out, detail, detail_len);
}

static int wait_fd(int fd, short events, int64_t deadline, int (*tick)(void *), void *data)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd pfd = {.fd = fd, .events = events};
        if (left <= 0)
            return -ETIMEDOUT;
        int r = poll(&pfd, 1, (int)(left < WSC_TICK_MS ? left : WSC_TICK_MS));
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r > 0)
            return 0;
        if (tick && tick(data))
            return -ECANCELED;
    }
}

static int send_all(struct wsc *ws, const unsigned char *p, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(ws->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                int r = wait_fd(ws->fd, POLLOUT, deadline, NULL, NULL);
                if (r < 0)
                    return r;
                continue;
            }
            return errno == EPIPE || errno == ECONNRESET ? -EPIPE : -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_frame(struct wsc *ws, int opcode, const void *data, size_t len, int64_t deadline)
{
    unsigned char head[14], mask[4];
    size_t h = 0;
    int r;

    if (random_bytes(mask, sizeof(mask)) < 0)
        return -EIO;
    head[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        head[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        head[h++] = 0x80 | 126;
        head[h++] = (unsigned char)(len >> 8);
        head[h++] = (unsigned char)len;
    } else {
        head[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            head[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(head + h, mask, 4);
    h += 4;
    unsigned char *frame = malloc(h + len);
    if (!frame)
        return -ENOMEM;
    memcpy(frame, head, h);
    for (size_t i = 0; i < len; i++)
        frame[h + i] = ((const unsigned char *)data)[i] ^ mask[i & 3];
    r = send_all(ws, frame, h + len, deadline);
    free(frame);
    return r;
}

int wsc_send(struct wsc *ws, const char *text, size_t len, int64_t deadline)
{
    if (ws->closed)
        return -ECONNRESET;
    return send_frame(ws, WS_OP_TEXT, text, len, deadline);
}

int wsc_send_binary(struct wsc *ws, const void *data, size_t len, int64_t deadline)
{
    if (ws->closed)
        return -ECONNRESET;
    return send_frame(ws, WS_OP_BINARY, data, len, deadline);
}

int wsc_fd(const struct wsc *ws)
{
    return ws->fd;
}

size_t wsc_buffered(const struct wsc *ws)
{
    return ws->len;
}

int wsc_close_status(const struct wsc *ws, char *reason, size_t len)
{
    if (len)
        snprintf(reason, len, "%s", ws->close_reason);
    return ws->close_status;
}

/* At least need bytes in ws->buf. */
static int fill(struct wsc *ws, size_t need, int64_t deadline, int (*tick)(void *), void *data)
{
    while (ws->len < need) {
        if (ws->cap - ws->len < 65536) {
            size_t ncap = ws->cap ? ws->cap * 2 : 65536;
            while (ncap - ws->len < 65536)
                ncap *= 2;
            char *nb = realloc(ws->buf, ncap);
            if (!nb)
                return -ENOMEM;
            ws->buf = nb;
            ws->cap = ncap;
        }
        ssize_t n = recv(ws->fd, ws->buf + ws->len, ws->cap - ws->len, 0);
        if (n > 0) {
            ws->len += (size_t)n;
            continue;
        }
        if (n == 0) {
            ws->closed = true;
            return -ECONNRESET;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int r = wait_fd(ws->fd, POLLIN, deadline, tick, data);
        if (r < 0)
            return r;
    }
    return 0;
}

int wsc_recv(struct wsc *ws, char **msg, size_t *msg_len, int64_t deadline, int (*tick)(void *),
             void *tick_data)
{
    char *out = NULL;
    size_t out_len = 0;
    int r;

    *msg = NULL;
    *msg_len = 0;
    for (;;) {
        if (ws->closed)
            r = -ECONNRESET;
        else
            r = fill(ws, 2, deadline, tick, tick_data);
        if (r < 0)
            goto fail;
        unsigned char *b = (unsigned char *)ws->buf;
        bool fin = b[0] & 0x80, masked = b[1] & 0x80;
        int opcode = b[0] & 0x0f;
        uint64_t plen = b[1] & 0x7f;
        size_t h = 2;
        if (plen == 126) {
            if ((r = fill(ws, 4, deadline, tick, tick_data)) < 0)
                goto fail;
            b = (unsigned char *)ws->buf;
            plen = (uint64_t)b[2] << 8 | b[3];
            h = 4;
        } else if (plen == 127) {
            if ((r = fill(ws, 10, deadline, tick, tick_data)) < 0)
                goto fail;
            b = (unsigned char *)ws->buf;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | b[2 + i];
            h = 10;
        }
        /* A server never masks; a frame past the bound is not waited for. */
        if (masked) {
            r = -EPROTO;
            goto fail;
        }
        if (plen > WSC_MAX_MESSAGE || out_len + plen > WSC_MAX_MESSAGE) {
            r = -EMSGSIZE;
            goto fail;
        }
        if ((r = fill(ws, h + (size_t)plen, deadline, tick, tick_data)) < 0)
            goto fail;
        const char *payload = ws->buf + h;
        size_t frame_len = h + (size_t)plen;

        if (opcode == WS_OP_PING) {
            r = send_frame(ws, WS_OP_PONG, payload, (size_t)plen, deadline);
        } else if (opcode == WS_OP_CLOSE) {
            if (plen >= 2) {
                size_t rl = (size_t)plen - 2 < sizeof(ws->close_reason) - 1
                                ? (size_t)plen - 2
                                : sizeof(ws->close_reason) - 1;
                ws->close_status = (unsigned char)payload[0] << 8 | (unsigned char)payload[1];
                memcpy(ws->close_reason, payload + 2, rl);
                ws->close_reason[rl] = '\0';
            }
            send_frame(ws, WS_OP_CLOSE, payload, plen >= 2 ? 2 : 0, deadline);
            ws->closed = true;
            r = -ECONNRESET;
        } else if (opcode == WS_OP_TEXT || opcode == WS_OP_BINARY || opcode == WS_OP_CONT) {
            char *grown = realloc(out, out_len + (size_t)plen + 1);
            if (!grown) {
                r = -ENOMEM;
            } else {
                out = grown;
                memcpy(out + out_len, payload, (size_t)plen);
                out_len += (size_t)plen;
                out[out_len] = '\0';
                r = fin ? 1 : 0;
            }
        } else if (opcode != WS_OP_PONG) {
            r = -EPROTO;
        }
        memmove(ws->buf, ws->buf + frame_len, ws->len - frame_len);
        ws->len -= frame_len;
        if (r < 0)
            goto fail;
        if (r == 1) {
            *msg = out;
            *msg_len = out_len;
            return 0;
        }
    }
fail:
    free(out);
    return r;
}

void wsc_free(struct wsc *ws)
{
    if (!ws)
        return;
    if (!ws->closed) {
        static const unsigned char normal[2] = {0x03, 0xe8}; /* 1000 */
        send_frame(ws, WS_OP_CLOSE, normal, sizeof(normal), now_ms() + 1000);
    }
    close(ws->fd);
    free(ws->buf);
    free(ws);
}
