/* rfb_filter: the client's half of an RFB stream, checked and, for a
 * watch-only viewer, stripped of input, before it reaches the VM's VNC
 * server (vnc_proxy.h says where it sits).
 *
 *   struct rfb_filter f;
 *   rfb_filter_init(&f, view_only);
 *   n = rfb_filter_feed(&f, in, len, out);   // per WebSocket message
 *   if (n < 0) close the connection;         // -EPROTO, and from now on
 *   forward out[0..n);
 *
 * It follows the client through the handshake (version, security type,
 * VNC authentication's response, ClientInit) and the client-to-server
 * messages of RFC 6143 and the extensions noVNC speaks. Input (keys,
 * pointer, clipboard, desktop resize, xvp, QEMU's extended keys) is
 * dropped for a watch-only viewer; anything it does not know is refused.
 * ClientInit's shared flag is always set, so that no client can push the
 * others (or the recorder) out. Pure: no I/O, no allocation. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RFB_MAX_CUT_TEXT (1u * 1024 * 1024) /* ClientCutText payload */

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
