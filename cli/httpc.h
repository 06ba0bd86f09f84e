/* httpc: a small blocking HTTP/1.1 client for the gateway's API.
 *
 * Usage:
 *   struct httpc_url url;
 *   httpc_url_parse("http://127.0.0.1:8790", &url);        // -EINVAL, -EPROTONOSUPPORT
 *   struct httpc_request req = HTTPC_REQUEST_INIT("GET", "/v1/sandboxes");
 *   req.token = token;
 *   struct httpc_response resp;
 *   r = httpc_do(&url, &req, &resp);                       // 0 or -errno
 *   ... resp.status, resp.body ...
 *   httpc_response_done(&resp);
 *
 * One request per connection ("Connection: close"), plain http only: the
 * gateway listens on loopback by default. Bodies are read by Content-Length,
 * chunked encoding, or until close, and are bounded by max_body. All waits
 * are bounded by the request's deadline; tick (when set) runs about every
 * 100 ms while the client waits, which is how a spinner animates without a
 * thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTPC_MAX_BODY_DEFAULT (256u * 1024 * 1024)
#define HTTPC_MAX_HEADER_BYTES (64 * 1024)

struct httpc_url {
    char host[256]; /* without IPv6 brackets */
    char port[8];
    char base_path[512]; /* "" or "/prefix" without a trailing slash */
};

/* Accepts "http://host[:port][/prefix]"; -EPROTONOSUPPORT for other schemes. */
int httpc_url_parse(const char *url, struct httpc_url *out);

struct httpc_request {
    const char *method;       /* weak */
    const char *path;         /* weak: "/v1/...", already percent-encoded */
    const char *token;        /* weak, NULL: no Authorization header */
    const char *content_type; /* weak, NULL: none */
    const void *body;         /* weak, may be NULL */
    size_t body_len;
    int body_fd; /* -1 if unused: send body_len bytes read from it instead of body */
    int out_fd;  /* -1 if unused: a 2xx body is written here instead of resp->body */
    /* NULL if unused: a 2xx body is handed here as it arrives instead
     * (a streamed answer); returning < 0 abandons the exchange with it. */
    int (*on_body)(void *data, const char *buf, size_t len);
    void *body_data; /* weak */
    int connect_timeout_ms;
    int timeout_ms;  /* the whole exchange, connect included */
    size_t max_body; /* 0: HTTPC_MAX_BODY_DEFAULT */
    /* may be NULL; returning non-zero abandons the exchange (-ECANCELED) */
    int (*tick)(void *data);
    void *tick_data; /* weak */
    /* weak, NULL: none. Who the request is made for, sent as
     * X-Porthole-Actor (printable ASCII, at most 64 bytes). */
    const char *actor;
};
#define HTTPC_REQUEST_INIT(m, p)                                                                   \
    ((struct httpc_request){.method = (m),                                                         \
                            .path = (p),                                                           \
                            .body_fd = -1,                                                         \
                            .out_fd = -1,                                                          \
                            .connect_timeout_ms = 5000,                                            \
                            .timeout_ms = 60000})

struct httpc_response {
    int status;
    char content_type[128];
    char *body;         /* owned, NUL-terminated (empty when streamed to out_fd) */
    size_t body_len;    /* bytes received, also when streamed */
    bool connected;     /* the TCP connection was made (failures after it are not "unreachable") */
    char ws_accept[64]; /* Sec-WebSocket-Accept of a 101 answer */
    char detail[256];   /* on failure: what went wrong, for the user */
};

/* 0 once a complete response arrived (any status); -errno when the exchange
 * failed: -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH (name did not resolve),
 * -EPROTO (not HTTP), -EFBIG (body over max_body), -ECANCELED (the tick
 * said so), -EIO, -ENOMEM. */
int httpc_do(const struct httpc_url *url, const struct httpc_request *req,
             struct httpc_response *resp);
void httpc_response_done(struct httpc_response *resp);

/* Opens a WebSocket (RFC 6455) at req->path: a GET with the upgrade
 * headers, a 101 answer whose Sec-WebSocket-Accept matches the key sent.
 * On success *fd is the connected non-blocking socket (the caller owns it)
 * and *pending (malloc'd, *pending_len bytes, may be 0) what the server sent
 * after its head. A refusal is -EPROTO with resp->status set. */
int httpc_websocket_open(const struct httpc_url *url, const struct httpc_request *req, int *fd,
                         char **pending, size_t *pending_len, struct httpc_response *resp);

/* Percent-encodes s: a path segment (keep_slash false) or a query value
 * holding a path (keep_slash true, which keeps it readable in logs). */
char *httpc_escape(const char *s, bool keep_slash);
