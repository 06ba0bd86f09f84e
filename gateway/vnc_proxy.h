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
 * the RFB stream goes through rfb_filter (rfb_filter.h), which drops every
 * input message (keys, pointer, clipboard, desktop resize, xvp) and
 * refuses what it does not know by closing the connection. Every client is made a shared one,
 * so that a viewer cannot push the others (or the recorder) out. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct gateway;

#define VNC_MAX_CONNECTIONS 8              /* live-view clients per session */
#define VNC_MAX_MESSAGE (2u * 1024 * 1024) /* one WebSocket message from a client */

struct vnc_proxy;

int vnc_proxy_new(struct gateway *gw, struct vnc_proxy **out);
void vnc_proxy_free(struct vnc_proxy *vp);
