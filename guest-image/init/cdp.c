/* A minimal CDP client over Chromium's loopback debugging port: HTTP GET
 * of /json/..., one command over a WebSocket, Browser.close and the
 * warm-up script. */

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

#include "init.h"

#define CDP_REPLY_WAIT_MS 2000

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

/* Reads until needle shows up in what came so far, EOF, a timeout or a full
 * buffer. Returns the length read, or -errno. */
static ssize_t recv_until(int fd, char *buf, size_t size, const char *needle)
{
    size_t len = 0;
    buf[0] = '\0';
    while (len + 1 < size && !memmem(buf, len, needle, strlen(needle))) {
        ssize_t r = recv(fd, buf + len, size - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
    }
    return (ssize_t)len;
}

/* GET /json/version: Chromium answers it only once its DevTools handler
 * runs, which under TCG can be well after the port listens. Returns 0 when
 * the answer names the browser's WebSocket URL, else -errno. */
static int cdp_get(const char *what, const char *needle, char *buf, size_t size, int timeout_ms)
{
    char req[160];
    int fd = cdp_connect(timeout_ms);
    if (fd < 0)
        return fd;
    int rl = snprintf(req, sizeof(req),
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", what);
    int r = write_all(fd, req, (size_t)rl);
    ssize_t n = r < 0 ? r : recv_until(fd, buf, size, "\n}");
    close(fd);
    if (n < 0)
        return (int)n;
    return strstr(buf, needle) ? 0 : -EPROTO;
}

int cdp_get_version(char *buf, size_t size, int timeout_ms)
{
    return cdp_get("/json/version", "/devtools/browser/", buf, size, timeout_ms);
}

#define CDP_MSG_MAX 512 /* the longest command cdp_ws_call sends */

/* Sends one CDP command (msg, with "id":1) on the WebSocket at the
 * /devtools/... path named in buf's JSON after prefix, and waits until
 * deadline at most for its reply. Returns 0 once the command is sent (a
 * reply that does not come in time is no failure), else -errno. */
static int cdp_ws_call(char *buf, size_t size, const char *prefix, const char *msg, double deadline)
{
    char path[128];
    const char *p = strstr(buf, prefix);
    size_t plen = p ? strcspn(p, "\"") : 0;
    if (!p || plen == 0 || plen >= sizeof(path))
        return -EPROTO;
    memcpy(path, p, plen);
    path[plen] = '\0';

    int left = ms_until(deadline);
    if (left == 0)
        return -ETIMEDOUT;
    int fd = cdp_connect(left);
    if (fd < 0)
        return fd;
    /* The key only has to be well-formed: this client checks nothing
     * against it, and the peer is loopback. */
    int hn = snprintf(buf, size,
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n",
                      path);
    int r = write_all(fd, buf, (size_t)hn);
    ssize_t n = r < 0 ? r : recv_until(fd, buf, size, "\r\n\r\n");
    if (n < 0 || strncmp(buf, "HTTP/1.1 101", 12) != 0) {
        close(fd);
        return n < 0 ? (int)n : -EPROTO;
    }
    /* One masked text frame (7- or 16-bit length); a zero mask key is legal
     * and leaves the payload as is. */
    size_t ml = strlen(msg), hl = 2;
    char frame[4 + 4 + CDP_MSG_MAX];
    if (ml > CDP_MSG_MAX) {
        close(fd);
        return -EMSGSIZE;
    }
    frame[0] = (char)0x81;
    if (ml < 126) {
        frame[1] = (char)(0x80 | ml);
    } else {
        frame[1] = (char)(0x80 | 126);
        frame[2] = (char)(ml >> 8);
        frame[3] = (char)(ml & 0xff);
        hl = 4;
    }
    memset(frame + hl, 0, 4);
    memcpy(frame + hl + 4, msg, ml);
    r = write_all(fd, frame, hl + 4 + ml);
    if (r < 0) {
        close(fd);
        return r;
    }
    /* A browser busy under TCG may answer late; once sent, the command is
     * read before our close, so a missing reply is no failure. */
    if ((left = ms_until(deadline)) > 0) {
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        recv_until(fd, buf, size, "\"id\":1");
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
    static char buf[16 * 1024];
    /* Every step gets what is left; 0 would mean "no timeout" to
     * SO_RCVTIMEO. */
    int left = ms_until(deadline);
    if (left == 0)
        return -ETIMEDOUT;
    int r = cdp_get_version(buf, sizeof(buf), left);
    if (r < 0)
        return r;
    double reply_by = monotonic_s() + CDP_REPLY_WAIT_MS / 1000.0;
    return cdp_ws_call(buf, sizeof(buf), "/devtools/browser/",
                       "{\"id\":1,\"method\":\"Browser.close\"}",
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
    static char buf[16 * 1024];
    double deadline = monotonic_s() + 90.0;
    double t0 = monotonic_s();
    int r = -ETIMEDOUT;

    while (monotonic_s() < deadline) {
        r = cdp_get("/json/list", "/devtools/page/", buf, sizeof(buf), ms_until(deadline));
        if (r == 0)
            break;
        sleep_ms(200);
    }
    if (r == 0)
        r = cdp_ws_call(buf, sizeof(buf), "/devtools/page/",
                        "{\"id\":1,\"method\":\"Runtime.evaluate\",\"params\":{"
                        "\"expression\":\"new Promise(r => requestAnimationFrame("
                        "() => requestAnimationFrame(() => r(1))))\",\"awaitPromise\":true}}",
                        deadline);
    if (r < 0)
        logmsg("browser warm-up: %s", strerror(-r));
    else
        logmsg("browser warm-up took %.1f s", monotonic_s() - t0);
}
