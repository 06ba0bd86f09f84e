/* wsc: a small blocking WebSocket client (RFC 6455) for the CLI's CDP
 * calls and terminals: text and binary messages out (masked, as a client
 * must), whole messages in (fragments joined, pings answered), every wait
 * bounded.
 *
 *   struct wsc *ws;
 *   r = wsc_open("ws://127.0.0.1:8790/cdp/ID/TOKEN/devtools/page/T", 10000, &ws, detail, n);
 *   r = wsc_send(ws, text, len, deadline);
 *   r = wsc_recv(ws, &msg, &len, deadline, tick, data);   // msg malloc'd
 *   wsc_free(ws);
 *
 * Deadlines are now_ms() values. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define WSC_MAX_MESSAGE (16u * 1024 * 1024)

struct wsc;

/* Connects to a ws:// URL. detail (may be NULL) says what went wrong. */
int wsc_open(const char *url, int timeout_ms, struct wsc **out, char *detail, size_t detail_len);
/* The same to path on the gateway at base_url ("http://host:port[/prefix]"),
 * with the API's bearer token and actor (each may be NULL). */
int wsc_open_http(const char *base_url, const char *path, const char *token, const char *actor,
                  int timeout_ms, struct wsc **out, char *detail, size_t detail_len);
/* Closes the connection (with a close frame when possible). NULL is a no-op. */
void wsc_free(struct wsc *ws);

/* One text message. 0, -ETIMEDOUT, -EPIPE, -ECONNRESET. */
int wsc_send(struct wsc *ws, const char *text, size_t len, int64_t deadline);
/* One binary message; as wsc_send. */
int wsc_send_binary(struct wsc *ws, const void *data, size_t len, int64_t deadline);
/* The socket, to poll for input, and the bytes already read from it that
 * wsc_recv has not taken (poll would not tell of those). */
int wsc_fd(const struct wsc *ws);
size_t wsc_buffered(const struct wsc *ws);
/* Once wsc_recv said -ECONNRESET: the status of the server's close frame
 * (0 without one) and its reason (into reason, len bytes). */
int wsc_close_status(const struct wsc *ws, char *reason, size_t len);
/* The next text or binary message (*msg malloc'd and NUL-terminated).
 * tick (may be NULL) runs about every 100 ms while waiting; non-zero from
 * it abandons the wait with -ECANCELED. -ECONNRESET once the server closed,
 * -EMSGSIZE past WSC_MAX_MESSAGE, -EPROTO on a malformed frame. */
int wsc_recv(struct wsc *ws, char **msg, size_t *len, int64_t deadline, int (*tick)(void *),
             void *tick_data);
