/* vnc_proxy: a browser session's screen over WebSocket, for noVNC.
 *
 * Usage (loop thread; the gateway wires ws.h first):
 *   vnc_proxy_new(gw, &gw->vnc);   // the endpoint, and an observer of the
 *                                  // instance lifecycle: a session's
 *                                  // connections close when it ends
 *   ...
 *   vnc_proxy_free(gw->vnc);       // after the HTTP server
 *
 * WS BASE/vnc/{session_id}/{token}, subprotocol "binary" (what noVNC asks
 * for) or none. token is the session's live_token (watch only) or
 * control_token (watch and drive), as browser_resolve(BROWSER_CAP_VIEW)
 * decides; anything else is a 404 and no upgrade. Each client gets its
 * own TCP connection to QEMU's VNC server for the VM's screen
 * (the Unix socket vm->vnc_socket);
 * binary frames carry the RFB stream both ways.
 *
 * Watch-only is enforced here, not only in the page: the client's half of
 * the RFB stream goes through rfb_filter, which drops every input message
 * (keys, pointer, clipboard, desktop resize, xvp) and refuses what it does
 * not know by closing the connection. Every client is made a shared one,
 * so that a viewer cannot push the others (or the recorder) out. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct gateway;

#define VNC_MAX_CONNECTIONS 8               /* live-view clients per session */
#define VNC_MAX_MESSAGE (2u * 1024 * 1024)  /* one WebSocket message from a client */
#define RFB_MAX_CUT_TEXT (1u * 1024 * 1024) /* ClientCutText payload */

struct vnc_proxy;

int vnc_proxy_new(struct gateway *gw, struct vnc_proxy **out);
void vnc_proxy_free(struct vnc_proxy *vp);

/* ---- the client-stream filter (pure, for tests) ---- */

enum rfb_stage {
    RFB_STAGE_VERSION,  /* "RFB 003.008\n" */
    RFB_STAGE_SECURITY, /* the chosen security type (3.7 and later) */
    RFB_STAGE_AUTH,     /* VNC authentication's 16-byte response */
    RFB_STAGE_INIT,     /* ClientInit: the shared flag */
    RFB_STAGE_MESSAGES, /* client-to-server messages */
};

struct rfb_filter {
    bool view_only;
    bool failed; /* a violation was seen: everything fails now */
    enum rfb_stage stage;
    int minor;         /* protocol version 3.minor */
    uint8_t hdr[24];   /* the current unit's fixed part, as far as seen */
    size_t have, need; /* bytes of hdr seen / needed */
    uint64_t body;     /* variable-length bytes of the current unit left */
    bool drop;         /* the current message is not forwarded */
};

void rfb_filter_init(struct rfb_filter *f, bool view_only);
/* Feeds the next len bytes of the client's stream (any split: a message
 * may span calls). Writes the bytes to forward to out, which may be in
 * itself: never more than len. Returns how many, or -EPROTO on a protocol
 * violation (unknown message type, bad version, unsupported security
 * type, oversized clipboard), after which the connection must close. */
ssize_t rfb_filter_feed(struct rfb_filter *f, const uint8_t *in, size_t len, uint8_t *out);
