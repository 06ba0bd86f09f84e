/* A minimal CDP client over Chromium's loopback debugging port: HTTP GET
 * of /json/..., one command over a WebSocket, Browser.close and the
 * warm-up script. What it reads is parsed in cdp_wire.c. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include "cdp_wire.h"
#include "init.h"

#define CDP_REPLY_WAIT_MS 2000
/* /json/version is about 500 bytes, /json/list about 700 a target. */
#define CDP_REPLY_MAX (64 * 1024)

/* A blocking loopback connection to Chromium's debugging port, with every
 * send and recv bounded by timeout_ms. */
static int cdp_connect(int timeout_ms)
{
    if (timeout_ms < 1)
        timeout_ms = 1; /* 0 would mean no timeout at all */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(CDP_PORT)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Reads an HTTP reply into buf (NUL-terminated) until it is whole. Returns
 * 0 with reply filled in, -EMSGSIZE when it does not fit, or -errno (a
 * timeout is -EAGAIN). Bytes after a 101's head stay in buf: frames. */
static int http_read_reply(int fd, char *buf, size_t size, struct http_reply *reply, size_t *len)
{
    bool eof = false;
    *len = 0;
    buf[0] = '\0';
    for (;;) {
        int r = http_reply_parse(buf, *len, eof, reply);
        if (r != 0)
            return r < 0 ? r : 0;
        if (*len + 1 >= size)
            return -EMSGSIZE;
        ssize_t n = recv(fd, buf + *len, size - 1 - *len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            eof = true;
        *len += (size_t)n;
        buf[*len] = '\0';
    }
}

/* GETs a /json/... page and takes from it the first debugger path that
 * starts with prefix. Chromium answers only once its DevTools handler
 * runs, which under TCG can be well after the port listens. Returns 0, or
 * -EPROTO when the answer has no such path, or -errno. */
static int cdp_get(const char *what, const char *prefix, char *path, size_t path_size,
                   int timeout_ms)
{
    static char buf[CDP_REPLY_MAX];
    char req[160];
    struct http_reply reply;
    size_t len;
    int fd = cdp_connect(timeout_ms);
    if (fd < 0)
        return fd;
    int rl = snprintf(req, sizeof(req),
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", what);
    int r = write_all(fd, req, (size_t)rl);
    if (r == 0)
        r = http_read_reply(fd, buf, sizeof(buf), &reply, &len);
    close(fd);
    if (r < 0)
        return r;
    if (reply.status != 200)
        return -EPROTO;
    r = cdp_debugger_path(buf + reply.head_len, reply.body_len, prefix, path, path_size);
    return r == -ENOENT ? -EPROTO : r;
}

int cdp_get_version(char *path, size_t path_size, int timeout_ms)
{
    return cdp_get("/json/version", "/devtools/browser/", path, path_size, timeout_ms);
}

#define CDP_MSG_MAX 512 /* the longest command cdp_ws_call sends */

/* Reads frames into buf[*len..size) until the reply to command 1 came, the
 * peer closed or failed, or the socket's timeout ran out. Frames before it
 * (events) are dropped. */
static void ws_await_reply(int fd, char *buf, size_t size, size_t len)
{
    for (;;) {
        struct ws_frame f;
        int r = ws_frame_parse((const unsigned char *)buf, len, &f);
        if (r < 0)
            return;
        if (r > 0 && f.payload_len <= len - f.head_len) {
            const char *payload = buf + f.head_len;
            size_t n = (size_t)f.payload_len;
            if (f.opcode == WS_OP_CLOSE ||
                (f.opcode == WS_OP_TEXT && f.fin && cdp_reply_id(payload, n) == 1))
                return;
            len -= f.head_len + n;
            memmove(buf, payload + n, len);
            continue;
        }
        /* A frame larger than the buffer is nothing this client waits for. */
        if (len == size)
            return;
        ssize_t k = recv(fd, buf + len, size - len, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        len += (size_t)k;
    }
}

/* Sends one CDP command (msg, with "id":1) on the WebSocket at path and
 * waits until deadline at most for its reply. Returns 0 once the command is
 * sent (a reply that does not come in time is no failure), else -errno. */
static int cdp_ws_call(const char *path, const char *msg, double deadline)
{
    static char buf[CDP_REPLY_MAX];
    char frame[10 + 4 + CDP_MSG_MAX];
    struct http_reply reply;
    size_t len;

    int left = ms_until(deadline);
    if (left == 0)
        return -ETIMEDOUT;
    ssize_t fl = ws_text_frame(frame, sizeof(frame), msg, strlen(msg));
    if (fl < 0)
        return (int)fl;
    int fd = cdp_connect(left);
    if (fd < 0)
        return fd;
    /* The key only has to be well-formed: this client checks nothing
     * against it, and the peer is loopback. */
    int hn = snprintf(buf, sizeof(buf),
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n",
                      path);
    int r = write_all(fd, buf, (size_t)hn);
    if (r == 0)
        r = http_read_reply(fd, buf, sizeof(buf), &reply, &len);
    if (r == 0 && reply.status != 101)
        r = -EPROTO;
    if (r == 0)
        r = write_all(fd, frame, (size_t)fl);
    if (r < 0) {
        close(fd);
        return r;
    }
    /* A browser busy under TCG may answer late; once sent, the command is
     * read before our close, so a missing reply is no failure. */
    if ((left = ms_until(deadline)) > 0) {
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        memmove(buf, buf + reply.head_len, len - reply.head_len);
        ws_await_reply(fd, buf, sizeof(buf), len - reply.head_len);
    }
    close(fd);
    return 0;
}

/* Sends CDP Browser.close over Chromium's own WebSocket endpoint and waits
 * a little for the reply. This is the one shutdown that writes the cookie store:
 * SIGTERM makes Chromium exit cleanly too, but measured here (Chromium 156)
 * a persistent cookie set seconds before was lost on SIGTERM and kept after
 * Browser.close. Returns 0 once the command is sent, else -errno. */
int cdp_browser_close(double deadline)
{
    char path[CDP_PATH_MAX];
    /* Every step gets what is left; 0 would mean "no timeout" to
     * SO_RCVTIMEO. */
    int left = ms_until(deadline);
    if (left == 0)
        return -ETIMEDOUT;
    int r = cdp_get_version(path, sizeof(path), left);
    if (r < 0)
        return r;
    double reply_by = monotonic_s() + CDP_REPLY_WAIT_MS / 1000.0;
    return cdp_ws_call(path, "{\"id\":1,\"method\":\"Browser.close\"}",
                       reply_by < deadline ? reply_by : deadline);
}

/* The first script a fresh Chromium runs under TCG takes many seconds (V8
 * compiles its builtins, the renderer pages in): run one before the guest
 * says it is ready, so the session's first CDP command does not pay for it.
 * The script waits for two animation frames, so the page has been painted
 * (the screen is no longer black) by the time the session is handed out.
 * Best effort: a browser that does not answer is still handed out. */
void cdp_warm_up(void)
{
    char path[CDP_PATH_MAX];
    double deadline = monotonic_s() + 90.0;
    double t0 = monotonic_s();
    int r = -ETIMEDOUT, tries = 0;

    while (monotonic_s() < deadline) {
        tries++;
        r = cdp_get("/json/list", "/devtools/page/", path, sizeof(path), ms_until(deadline));
        if (r == 0)
            break;
        sleep_ms(200);
    }
    if (r == 0)
        r = cdp_ws_call(path,
                        "{\"id\":1,\"method\":\"Runtime.evaluate\",\"params\":{"
                        "\"expression\":\"new Promise(r => requestAnimationFrame("
                        "() => requestAnimationFrame(() => r(1))))\",\"awaitPromise\":true}}",
                        deadline);
    if (r < 0)
        logmsg("browser warm-up: %s", strerror(-r));
    else
        logmsg("browser warm-up took %.1f s (page target on try %d)", monotonic_s() - t0, tries);
}
