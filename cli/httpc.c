/* A blocking HTTP/1.1 client over one non-blocking socket driven by poll(),
 * so every wait has a deadline and a tick. */
#include "httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "config.h"
#include "util.h"

#define HTTPC_TICK_MS 100
#define HTTPC_MAX_LINE 8192

struct httpc_conn {
    int fd;                          /* owned */
    int64_t deadline;                /* now_ms() value */
    const struct httpc_request *req; /* weak */
    char buf[16384];
    size_t off, len;
    bool eof;
};

struct httpc_sink {
    int fd; /* -1: accumulate into data (unless cb) */
    int (*cb)(void *data, const char *buf, size_t len);
    void *cb_data;
    char *data; /* owned until handed to the response */
    size_t len, cap;
    size_t max;
};

static void detail(struct httpc_response *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void detail(struct httpc_response *resp, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(resp->detail, sizeof(resp->detail), fmt, ap);
    va_end(ap);
}

int httpc_url_parse(const char *url, struct httpc_url *out)
{
    const char *p, *host_end, *port = NULL, *path;
    size_t host_len, port_len = 0;

    memset(out, 0, sizeof(*out));
    if (!url || strlen(url) > 1024)
        return -EINVAL;
    if (strncasecmp(url, "https://", 8) == 0)
        return -EPROTONOSUPPORT;
    if (strncasecmp(url, "http://", 7) != 0)
        return strstr(url, "://") ? -EPROTONOSUPPORT : -EINVAL;
    p = url + 7;
    path = p + strcspn(p, "/?#");
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(path - p));
        if (!host_end)
            return -EINVAL;
        p++;
        host_len = (size_t)(host_end - p);
        if (host_end + 1 < path) {
            if (host_end[1] != ':')
                return -EINVAL;
            port = host_end + 2;
            port_len = (size_t)(path - port);
        }
    } else {
        host_end = memchr(p, ':', (size_t)(path - p));
        if (host_end) {
            port = host_end + 1;
            port_len = (size_t)(path - port);
        } else {
            host_end = path;
        }
        host_len = (size_t)(host_end - p);
    }
    if (host_len == 0 || host_len >= sizeof(out->host) || memchr(p, '@', host_len))
        return -EINVAL;
    memcpy(out->host, p, host_len);
    if (port) {
        if (port_len == 0 || port_len >= sizeof(out->port) || strspn(port, "0123456789") < port_len)
            return -EINVAL;
        memcpy(out->port, port, port_len);
        long n = strtol(out->port, NULL, 10);
        if (n < 1 || n > 65535)
            return -EINVAL;
    } else {
        strcpy(out->port, "80");
    }
    if (*path == '/') {
        size_t n = strcspn(path, "?#");
        while (n > 0 && path[n - 1] == '/')
            n--;
        if (n >= sizeof(out->base_path))
            return -EINVAL;
        memcpy(out->base_path, path, n);
    } else if (*path) {
        return -EINVAL;
    }
    return 0;
}

char *httpc_escape(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;

    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p) || (keep_slash && *p == '/')) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* Waits for events on the connection, ticking while it waits; -ETIMEDOUT at
 * the deadline. */
static int conn_wait(struct httpc_conn *c, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int r;

        if (left <= 0)
            return -ETIMEDOUT;
        r = poll(&pfd, 1, (int)(left < HTTPC_TICK_MS ? left : HTTPC_TICK_MS));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r > 0)
            return 0;
        if (c->req->tick && c->req->tick(c->req->tick_data))
            return -ECANCELED;
    }
}

static int conn_connect(struct httpc_conn *c, const struct httpc_url *url,
                        struct httpc_response *resp)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int64_t connect_deadline;
    int r, last = -ECONNREFUSED;

    r = getaddrinfo(url->host, url->port, &hints, &res);
    if (r != 0) {
        detail(resp, "cannot resolve %s: %s", url->host, gai_strerror(r));
        return r == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
    }
    connect_deadline = now_ms() + c->req->connect_timeout_ms;
    if (connect_deadline > c->deadline)
        connect_deadline = c->deadline;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        int soerr = 0;
        socklen_t slen = sizeof(soerr);

        if (fd < 0) {
            last = -errno;
            continue;
        }
        c->fd = fd;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            if (errno != EINPROGRESS) {
                last = -errno;
                goto next;
            }
            r = conn_wait(c, POLLOUT, connect_deadline);
            if (r < 0) {
                last = r;
                goto next;
            }
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0) {
                last = -errno;
                goto next;
            }
            if (soerr != 0) {
                last = -soerr;
                goto next;
            }
        }
        freeaddrinfo(res);
        return 0;
    next:
        close(fd);
        c->fd = -1;
    }
    freeaddrinfo(res);
    detail(resp, "cannot connect to %s:%s: %s", url->host, url->port, strerror(-last));
    return last;
}

static int conn_send(struct httpc_conn *c, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                int r = conn_wait(c, POLLOUT, c->deadline);
                if (r < 0)
                    return r;
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int conn_send_fd(struct httpc_conn *c, int fd, size_t len)
{
    char buf[65536];

    while (len > 0) {
        ssize_t n = read(fd, buf, len < sizeof(buf) ? len : sizeof(buf));
        int r;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO; /* the file shrank under us */
        r = conn_send(c, buf, (size_t)n);
        if (r < 0)
            return r;
        len -= (size_t)n;
    }
    return 0;
}

/* Refills the buffer when empty; 0 with c->eof set at end of stream. */
static int conn_fill(struct httpc_conn *c)
{
    if (c->off < c->len || c->eof)
        return 0;
    c->off = c->len = 0;
    for (;;) {
        ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);
        if (n > 0) {
            c->len = (size_t)n;
            return 0;
        }
        if (n == 0) {
            c->eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int r = conn_wait(c, POLLIN, c->deadline);
        if (r < 0)
            return r;
    }
}

/* One CRLF- (or LF-) terminated line without its terminator. */
static int conn_read_line(struct httpc_conn *c, char *line, size_t max, size_t *total)
{
    size_t n = 0;

    for (;;) {
        int r = conn_fill(c);
        if (r < 0)
            return r;
        if (c->eof)
            return -EPROTO;
        char ch = c->buf[c->off++];
        if (++*total > HTTPC_MAX_HEADER_BYTES)
            return -EPROTO;
        if (ch == '\n')
            break;
        if (n + 1 >= max)
            return -EPROTO;
        line[n++] = ch;
    }
    if (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    return 0;
}

static int sink_put(struct httpc_sink *s, const char *data, size_t len)
{
    if (s->cb) {
        s->len += len;
        return s->cb(s->cb_data, data, len);
    }
    if (len > s->max - s->len)
        return -EFBIG;
    if (s->fd >= 0) {
        while (len > 0) {
            ssize_t n = write(s->fd, data, len);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            data += n;
            len -= (size_t)n;
            s->len += (size_t)n;
        }
        return 0;
    }
    if (s->len + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len + 1)
            cap *= 2;
        char *p = realloc(s->data, cap);
        if (!p)
            return -ENOMEM;
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + s->len, data, len);
    s->len += len;
    s->data[s->len] = '\0';
    return 0;
}

/* Copies n body bytes, or everything up to EOF when n is SIZE_MAX. */
static int conn_copy(struct httpc_conn *c, struct httpc_sink *s, size_t n)
{
    while (n > 0) {
        int r = conn_fill(c);
        if (r < 0)
            return r;
        if (c->eof)
            return n == SIZE_MAX ? 0 : -EPROTO;
        size_t avail = c->len - c->off;
        size_t take = avail < n ? avail : n;
        r = sink_put(s, c->buf + c->off, take);
        if (r < 0)
            return r;
        c->off += take;
        if (n != SIZE_MAX)
            n -= take;
    }
    return 0;
}

static int conn_copy_chunked(struct httpc_conn *c, struct httpc_sink *s)
{
    char line[HTTPC_MAX_LINE];
    size_t total = 0; /* trailers together are bounded like headers */

    for (;;) {
        char *end;
        unsigned long long size;
        size_t line_total = 0; /* each chunk-size line on its own */
        int r = conn_read_line(c, line, sizeof(line), &line_total);
        if (r < 0)
            return r;
        errno = 0;
        size = strtoull(line, &end, 16);
        if (end == line || errno || (*end && *end != ';' && *end != ' ' && *end != '\t'))
            return -EPROTO;
        if (size > s->max)
            return -EFBIG;
        if (size == 0)
            break;
        r = conn_copy(c, s, (size_t)size);
        if (r < 0)
            return r;
        line_total = 0;
        r = conn_read_line(c, line, sizeof(line), &line_total);
        if (r < 0)
            return r;
        if (line[0])
            return -EPROTO;
    }
    for (;;) { /* trailers */
        int r = conn_read_line(c, line, sizeof(line), &total);
        if (r < 0)
            return r;
        if (!line[0])
            return 0;
    }
}

static int read_head(struct httpc_conn *c, struct httpc_response *resp, long long *content_length,
                     bool *chunked)
{
    char line[HTTPC_MAX_LINE];
    size_t total = 0;
    int r, status;

    do { /* 1xx interim responses carry no body */
        r = conn_read_line(c, line, sizeof(line), &total);
        if (r < 0)
            return r;
        if (strncmp(line, "HTTP/1.", 7) != 0 || strlen(line) < 12 || line[8] != ' ')
            return -EPROTO;
        status = atoi(line + 9);
        if (status < 100 || status > 599)
            return -EPROTO;
        *content_length = -1;
        *chunked = false;
        resp->content_type[0] = '\0';
        for (;;) {
            char *colon, *value;

            r = conn_read_line(c, line, sizeof(line), &total);
            if (r < 0)
                return r;
            if (!line[0])
                break;
            colon = strchr(line, ':');
            if (!colon)
                return -EPROTO;
            *colon = '\0';
            value = colon + 1 + strspn(colon + 1, " \t");
            if (strcasecmp(line, "Content-Length") == 0) {
                char *end;
                errno = 0;
                long long n = strtoll(value, &end, 10);
                if (errno || end == value || n < 0)
                    return -EPROTO;
                *content_length = n;
            } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
                *chunked = strcasestr(value, "chunked") != NULL;
            } else if (strcasecmp(line, "Content-Type") == 0) {
                snprintf(resp->content_type, sizeof(resp->content_type), "%s", value);
            } else if (strcasecmp(line, "Sec-WebSocket-Accept") == 0) {
                snprintf(resp->ws_accept, sizeof(resp->ws_accept), "%s", value);
            }
        }
    } while (status < 200 && status != 101);
    resp->status = status;
    return 0;
}

static bool actor_ok(const char *a)
{
    size_t n = strlen(a);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (a[i] < 0x20 || a[i] > 0x7e)
            return false;
    return true;
}

/* The request line and headers, extra (may be "") before the blank line.
 * Returns the length, or -EINVAL with resp->detail set. */
static int request_head(const struct httpc_url *url, const struct httpc_request *req,
                        const char *extra, char *head, size_t cap, struct httpc_response *resp)
{
    bool has_body;
    int n;

    if (strlen(req->path) > 4096 || (req->token && strlen(req->token) > 1024)) {
        detail(resp, "request too large");
        return -EINVAL;
    }
    /* A token with CR/LF would let a bad file inject headers. */
    if (strpbrk(req->path, "\r\n ") || (req->token && strpbrk(req->token, "\r\n")) ||
        (req->actor && !actor_ok(req->actor))) {
        detail(resp, "invalid characters in request path, token or actor");
        return -EINVAL;
    }
    has_body = req->body || req->body_fd >= 0 || strcmp(req->method, "POST") == 0 ||
               strcmp(req->method, "PUT") == 0;
    n = snprintf(head, cap,
                 "%s %s%s HTTP/1.1\r\n"
                 "Host: %s%s%s:%s\r\n"
                 "User-Agent: porthole/%s\r\n"
                 "Accept: */*\r\n"
                 "%s"
                 "%s%s%s"
                 "%s%s%s"
                 "%s%s%s",
                 req->method, url->base_path, req->path, strchr(url->host, ':') ? "[" : "",
                 url->host, strchr(url->host, ':') ? "]" : "", url->port, PORTHOLE_VERSION,
                 *extra ? "" : "Connection: close\r\n", req->token ? "Authorization: Bearer " : "",
                 req->token ? req->token : "", req->token ? "\r\n" : "",
                 req->content_type ? "Content-Type: " : "",
                 req->content_type ? req->content_type : "", req->content_type ? "\r\n" : "",
                 req->actor ? "X-Porthole-Actor: " : "", req->actor ? req->actor : "",
                 req->actor ? "\r\n" : "");
    if (n < 0 || (size_t)n + strlen(extra) >= cap - 64) {
        detail(resp, "request too large");
        return -EINVAL;
    }
    if (has_body)
        n += snprintf(head + n, cap - (size_t)n, "Content-Length: %zu\r\n", req->body_len);
    n += snprintf(head + n, cap - (size_t)n, "%s\r\n", extra);
    return n;
}

int httpc_do(const struct httpc_url *url, const struct httpc_request *req,
             struct httpc_response *resp)
{
    struct httpc_conn c = {.fd = -1, .req = req};
    struct httpc_sink sink = {.fd = -1};
    char head[4096 + 2048];
    long long content_length;
    bool chunked;
    int r, n;

    memset(resp, 0, sizeof(*resp));
    c.deadline = now_ms() + req->timeout_ms;
    sink.max = req->max_body ? req->max_body : HTTPC_MAX_BODY_DEFAULT;
    n = request_head(url, req, "", head, sizeof(head), resp);
    if (n < 0)
        return n;

    r = conn_connect(&c, url, resp);
    if (r < 0)
        return r;
    resp->connected = true;
    r = conn_send(&c, head, (size_t)n);
    if (r >= 0 && req->body_fd >= 0)
        r = conn_send_fd(&c, req->body_fd, req->body_len);
    else if (r >= 0 && req->body_len > 0)
        r = conn_send(&c, req->body, req->body_len);
    /* A server may answer (413, 401) and close before reading the whole body;
     * its response is still worth reading. */
    if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
        detail(resp, "sending request: %s", strerror(-r));
        goto out;
    }
    r = read_head(&c, resp, &content_length, &chunked);
    if (r < 0) {
        detail(resp, r == -EPROTO ? "malformed HTTP response" : "reading response: %s",
               strerror(-r));
        goto out;
    }
    if (req->out_fd >= 0 && resp->status >= 200 && resp->status < 300)
        sink.fd = req->out_fd;
    if (req->on_body && resp->status >= 200 && resp->status < 300) {
        sink.cb = req->on_body;
        sink.cb_data = req->body_data;
    }
    if (strcmp(req->method, "HEAD") == 0 || resp->status == 204 || resp->status == 304)
        r = 0;
    else if (chunked)
        r = conn_copy_chunked(&c, &sink);
    else if (content_length >= 0)
        r = (unsigned long long)content_length > sink.max
                ? -EFBIG
                : conn_copy(&c, &sink, (size_t)content_length);
    else
        r = conn_copy(&c, &sink, SIZE_MAX);
    if (r < 0) {
        if (r == -EFBIG)
            detail(resp, "response body larger than %zu bytes", sink.max);
        else
            detail(resp, r == -EPROTO ? "response ended early" : "reading response: %s",
                   strerror(-r));
        goto out;
    }
    if (!sink.data && sink.fd < 0 && !sink.cb) {
        sink.data = strdup("");
        if (!sink.data) {
            r = -ENOMEM;
            goto out;
        }
    }
    resp->body = sink.fd < 0 && !sink.cb ? TAKE_PTR(sink.data) : strdup("");
    resp->body_len = sink.len;
    if (!resp->body)
        r = -ENOMEM;
out:
    free(sink.data);
    if (c.fd >= 0)
        close(c.fd);
    if (r == -ETIMEDOUT && !resp->detail[0])
        detail(resp, "no answer within %d s", req->timeout_ms / 1000);
    return r < 0 ? r : 0;
}

void httpc_response_done(struct httpc_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

/* The WebSocket handshake's fixed GUID (RFC 6455, section 1.3). */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int httpc_websocket_open(const struct httpc_url *url, const struct httpc_request *req, int *fd,
                         char **pending, size_t *pending_len, struct httpc_response *resp)
{
    struct httpc_conn c = {.fd = -1, .req = req};
    unsigned char nonce[16], digest[20];
    char head[4096 + 2048], extra[256], accept_src[64];
    _cleanup_free_ char *key = NULL, *want = NULL;
    long long content_length;
    bool chunked;
    int r, n;

    memset(resp, 0, sizeof(*resp));
    *fd = -1;
    *pending = NULL;
    *pending_len = 0;
    c.deadline = now_ms() + req->timeout_ms;
    if ((r = random_bytes(nonce, sizeof(nonce))) < 0)
        return r;
    key = base64_encode(nonce, sizeof(nonce));
    if (!key)
        return -ENOMEM;
    snprintf(extra, sizeof(extra),
             "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Key: %s\r\n",
             key);
    n = request_head(url, req, extra, head, sizeof(head), resp);
    if (n < 0)
        return n;
    r = conn_connect(&c, url, resp);
    if (r < 0)
        return r;
    resp->connected = true;
    if ((r = conn_send(&c, head, (size_t)n)) < 0) {
        detail(resp, "sending request: %s", strerror(-r));
        goto fail;
    }
    if ((r = read_head(&c, resp, &content_length, &chunked)) < 0) {
        detail(resp, r == -EPROTO ? "malformed HTTP response" : "reading response: %s",
               strerror(-r));
        goto fail;
    }
    snprintf(accept_src, sizeof(accept_src), "%s%s", key, WS_GUID);
    lws_SHA1((const unsigned char *)accept_src, strlen(accept_src), digest);
    want = base64_encode(digest, sizeof(digest));
    if (resp->status != 101 || !want || strcmp(want, resp->ws_accept) != 0) {
        detail(resp,
               resp->status != 101 ? "HTTP %d instead of a WebSocket"
                                   : "wrong Sec-WebSocket-Accept (HTTP %d)",
               resp->status);
        r = -EPROTO;
        goto fail;
    }
    if (c.len > c.off) {
        *pending = malloc(c.len - c.off);
        if (!*pending) {
            r = -ENOMEM;
            goto fail;
        }
        memcpy(*pending, c.buf + c.off, c.len - c.off);
        *pending_len = c.len - c.off;
    }
    *fd = c.fd;
    return 0;
fail:
    close(c.fd);
    return r;
}
