/* A VNC client session (libvncclient) that keeps a copy of the remote screen
 * and sends pointer and key events. One session per guest display.
 *
 *   struct vnc_client *c;
 *   r = vnc_client_new("127.0.0.1", 5900, 10000, &c, &err);  // waits for a full frame
 *   vnc_client_snapshot(c, &rgba, &w, &h);                    // a copy, free() it
 *   vnc_client_pointer(c, x, y, VNC_BUTTON_LEFT, &err);       // press ...
 *   vnc_client_pointer(c, x, y, 0, &err);                     // ... and release
 *   vnc_client_key(c, XK_Return, true, &err);
 *   vnc_client_free(c);
 *
 * The session runs its own thread that reads server messages and follows
 * desktop size changes. It asks the server for updates only on demand, so
 * an open session costs the server nothing while nobody wants pictures:
 * periodically at the rate set with vnc_client_set_rate (a recording), while
 * a thread waits in vnc_client_wait_frame, and once per refresh (every
 * snapshot is one). Every function here may be called from any thread.
 * Frames are RGBA, 4 bytes a pixel in memory order R, G, B, A, rows packed
 * (stride = 4 * width), A always 0xff: the
 * client asks the server for 32-bit true colour with red at bits 0-7, green
 * 8-15, blue 16-23 (little-endian), which lays out as RGBX in memory.
 *
 * Security type None only: the gateway reaches guest displays over its own
 * forwarded ports and authenticates the people who view them.
 * Writes to a closed connection raise SIGPIPE: the process must ignore it
 * (the gateway does). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Pointer button bits (RFB PointerEvent). */
#define VNC_BUTTON_LEFT 0x01
#define VNC_BUTTON_MIDDLE 0x02
#define VNC_BUTTON_RIGHT 0x04
#define VNC_WHEEL_UP 0x08
#define VNC_WHEEL_DOWN 0x10
#define VNC_WHEEL_LEFT 0x20
#define VNC_WHEEL_RIGHT 0x40

/* Largest framebuffer accepted from a server, each side. */
#define VNC_MAX_SIDE 8192

struct vnc_client;

/* Connects to host:port (host an absolute path: that Unix socket, port
 * unused), starts the session thread and waits (up to
 * timeout_ms) for the first complete framebuffer. PH_ERR_TRANSPORT when the
 * server cannot be reached or refuses, PH_ERR_TIMEOUT when no full frame
 * came in time. */
int vnc_client_new(const char *host, int port, int timeout_ms, struct vnc_client **out,
                   struct ph_error *err);
/* Stops the thread, closes the connection. NULL is a no-op. */
void vnc_client_free(struct vnc_client *c);

/* 0 while connected; -ENOTCONN with the reason in err once the connection
 * ended. A session never reconnects: make a new one. */
int vnc_client_status(struct vnc_client *c, struct ph_error *err);

/* Brings the copy up to date: asks the server for everything that changed up
 * to now and waits up to timeout_ms for the answer. 0, -ETIMEDOUT, or
 * -ENOTCONN once the connection ended. */
int vnc_client_refresh(struct vnc_client *c, int timeout_ms);
/* A malloc'd copy of the screen as it is now (*w * *h * 4 bytes), after a
 * refresh. -ENOTCONN once the connection ended, -ETIMEDOUT when the server
 * did not answer the refresh, -ENOMEM. */
int vnc_client_snapshot(struct vnc_client *c, uint8_t **rgba, int *w, int *h);

/* Asks for incremental updates fps times a second at most (0: stop asking),
 * for a reader that samples the screen at that rate. */
void vnc_client_set_rate(struct vnc_client *c, int fps);
/* FramebufferUpdate messages received so far: what the server had to send. */
uint64_t vnc_client_updates(struct vnc_client *c);

/* A frame the caller owns and refreshes from the session again and again,
 * without copying when nothing changed (for recording). Zero-initialise it;
 * vnc_frame_done() frees it. */
struct vnc_frame {
    uint8_t *rgba; /* owned, width * height * 4 */
    size_t cap;    /* bytes allocated at rgba */
    int width, height;
    uint64_t seq; /* the session's update counter at the copy; 0 = never copied */
};
/* 1 when f now holds newer content, 0 when f was already current, -ENOTCONN
 * once the connection ended (f keeps the last frame), -ENOMEM. */
int vnc_client_frame_update(struct vnc_client *c, struct vnc_frame *f);
void vnc_frame_done(struct vnc_frame *f);
/* Waits up to timeout_ms for a frame newer than after_seq (a vnc_frame's
 * seq; 0 for any). 0 when there is one, -ETIMEDOUT, -ENOTCONN. A frame is
 * newer when a pixel changed. */
int vnc_client_wait_frame(struct vnc_client *c, uint64_t after_seq, int timeout_ms);
/* Waits until the screen has not changed for quiet_ms: 0, or -ETIMEDOUT when
 * it still changed after max_ms, -ENOTCONN. */
int vnc_client_settle(struct vnc_client *c, int quiet_ms, int max_ms);

/* Input. Coordinates must lie on the current screen (-EINVAL otherwise);
 * buttons is a mask of VNC_BUTTON_* / VNC_WHEEL_* bits held down. A wheel
 * step is a press and a release of a VNC_WHEEL_* bit. */
int vnc_client_pointer(struct vnc_client *c, int x, int y, int buttons, struct ph_error *err);
int vnc_client_key(struct vnc_client *c, uint32_t keysym, bool down, struct ph_error *err);
