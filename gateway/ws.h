/* ws: the gateway's WebSocket endpoints, and the pump the CDP and VNC
 * proxies share to join a client's WebSocket to an upstream connection.
 *
 * Usage (gateway.c, before http_server_new; then each proxy registers):
 *   hub = ws_hub_new();           // the endpoints and the links
 *   ws_server_opts(&hopts, hub);  // protocols, default protocol, upgrade hook
 *   http_server_new(&hopts, &gw->http, &err);
 *   ws_endpoint_register(hub, &ep);  // the CDP proxy: "/cdp/", "/devtools/"
 *   ...
 *   http_server_free(srv);        // closes every link
 *   ws_hub_free(hub);
 *
 * An endpoint owns the request paths under a prefix. At the upgrade, ws
 * asks its check(): refusing answers the HTTP request with that error and
 * no upgrade happens. Once the WebSocket is open, start() runs the same
 * decision again (nothing is carried across, so nothing leaks when lws
 * drops a connection in between) and creates a link: the client's
 * WebSocket plus one upstream connection, a WebSocket (Chromium) or a raw
 * TCP socket (QEMU's VNC server), each direction with its own bounded queue.
 *
 * The pump moves whole messages (WebSocket sides; fragments are joined, up
 * to the link's max_message) or byte chunks (raw side). A side whose
 * destination queue passes WS_QUEUE_HIGH is paused (lws_rx_flow_control)
 * until the queue drains below WS_QUEUE_LOW. Client messages go through
 * ops->from_client first, which may forward, rewrite in place, drop or
 * answer them, or defer the decision to a worker (WS_DEFERRED): the
 * client's later messages then wait, in order and under the same bounds,
 * until ws_link_resume(). A link may also be given a memory budget shared
 * by every link of its owner (ws_link_set_budget): what they hold, being
 * assembled, queued or waiting, stays under it, or the link that would
 * pass it is closed with 1009. When one side closes, what is queued for the other is sent
 * and the other closes too; ws_link_close() and ws_links_close() close both
 * sides at once, the client with a WebSocket close frame.
 *
 * Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "ws_msg.h"

struct http_server_opts;
struct lws;
struct ws_hub;
struct ws_link;

#define WS_MAX_ENDPOINTS 8
#define WS_QUEUE_HIGH (4u * 1024 * 1024) /* pause the sender above this */
#define WS_QUEUE_LOW (1u * 1024 * 1024)  /* resume it below this */
#define WS_WRITE_CHUNK (64u * 1024)      /* bytes per lws_write */
#define WS_CLOSE_GRACE_S 5               /* a side that will not take its close */
#define WS_CLOSE_TRY_AGAIN 1013          /* RFC 6455's registry: "Try Again Later" */

struct ws_endpoint {
    const char *prefix; /* "/cdp/": matched against the decoded path */
    /* At the upgrade: 0 accepts, < 0 refuses with err (404 for a wrong
     * token, 429 over a limit, ...). wsi is the upgrading connection. */
    int (*check)(void *data, struct lws *wsi, const char *path, struct ph_error *err);
    /* Once the WebSocket is open: creates the link (ws_link_new) and
     * starts its upstream. < 0 closes the client with 1008 and err's
     * message (the session went away or a limit was reached meanwhile). */
    int (*start)(void *data, struct lws *wsi, const char *path, struct ph_error *err);
    void *data; /* weak: the endpoint owner's context */
};

#define WS_DEFERRED 2 /* from_client: the decision comes later (ws_link_resume) */

struct ws_link_ops {
    const char *name; /* "cdp", "vnc": for logs */
    /* A message from the client, before it is queued upstream. Return 0 to
     * forward *m as it is now: changed in place, or replaced by another
     * message (the hook frees the old one and stores the new one in *m);
     * 1 when the hook took *m (freed it or kept it), WS_DEFERRED when it
     * took *m and will hand it back through ws_link_resume() (the link
     * must be held meanwhile), < 0 to close the link (status 1008 "policy
     * violation"), *m then still the hook's to leave. May be NULL. */
    int (*from_client)(struct ws_link *l, struct ws_msg **m);
    /* The upstream connection is over, before the client is told: the
     * hook may pick the close status and reason (ws_link_set_close).
     * May be NULL. */
    void (*upstream_closed)(struct ws_link *l);
    /* The link is being freed: release data. May be NULL. */
    void (*destroy)(struct ws_link *l);
};

/* NULL on out-of-memory. Free it after the HTTP server (which ends the
 * links). NULL is a no-op. */
struct ws_hub *ws_hub_new(void);
void ws_hub_free(struct ws_hub *hub);
/* Fills the WebSocket fields of the HTTP server's options. */
void ws_server_opts(struct http_server_opts *o, struct ws_hub *hub);
/* Copies ep. Returns 0, -ENOSPC past WS_MAX_ENDPOINTS. */
int ws_endpoint_register(struct ws_hub *hub, const struct ws_endpoint *ep);

/* Creates the link for an open client WebSocket (from an endpoint's
 * start). owner is a weak key (the session) for ws_links_*. data belongs
 * to ops->destroy. max_message bounds one message each way. NULL on
 * out-of-memory (then data is not taken). */
struct ws_link *ws_link_new(struct lws *client, const struct ws_link_ops *ops, void *owner,
                            void *data, size_t max_message);
void *ws_link_data(struct ws_link *l);
void *ws_link_owner(struct ws_link *l);
/* Opens the upstream on a Unix socket: a WebSocket to path there (Host:
 * 127.0.0.1), or a raw byte stream. Client messages queue until it is up.
 * Returns 0 or -EIO (the client is then being closed with 1011). */
int ws_link_connect_ws(struct ws_link *l, const char *socket_path, const char *path);
int ws_link_connect_unix(struct ws_link *l, const char *socket_path);
/* The upstream is a connected socket of the caller's (stolen, closed on
 * failure too), carrying raw bytes. Returns 0 or -EIO. */
int ws_link_adopt_fd(struct ws_link *l, int fd);
/* Ends a WS_DEFERRED decision: m (NULL: nothing) goes upstream, then the
 * client messages that arrived meanwhile go through from_client in turn.
 * On a closing link m is freed and nothing more happens. */
void ws_link_resume(struct ws_link *l, struct ws_msg *m);
/* Bounds what the links of l's owner made with l's ops hold together
 * (messages being assembled, queued either way, waiting on a deferred
 * decision) to max_bytes; 0 = no bound. A link whose bytes would pass it
 * is closed with 1009 and reason, which names the bound. */
void ws_link_set_budget(struct ws_link *l, size_t max_bytes, const char *reason);
/* Queues a message to the client (an answer the proxy makes itself).
 * Returns 0, -ENOMEM, or -EPIPE when the client is gone or closing. */
int ws_link_send_client(struct ws_link *l, const void *data, size_t len, bool binary);
/* Closes both sides now: the client gets a close frame with status and
 * reason. Nothing more is delivered either way. */
void ws_link_close(struct ws_link *l, int status, const char *reason);
bool ws_link_closing(const struct ws_link *l);
/* The status and reason the client's close frame will carry, unless one
 * was set already (the first stands). */
void ws_link_set_close(struct ws_link *l, int status, const char *reason);
/* A pending asynchronous job keeps the link's memory alive (not its
 * connections) until released; the job checks ws_link_closing(). */
void ws_link_hold(struct ws_link *l);
void ws_link_release(struct ws_link *l);

/* Links of one owner made with ops (ops NULL: any). */
size_t ws_links_count(struct ws_hub *hub, const void *owner, const struct ws_link_ops *ops);
void ws_links_close(struct ws_hub *hub, const void *owner, const struct ws_link_ops *ops,
                    int status, const char *reason);
