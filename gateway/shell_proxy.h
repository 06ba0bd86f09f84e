/* shell_proxy: an interactive terminal in a sandbox, over a WebSocket.
 *
 * Usage (loop thread; the gateway wires ws.h first):
 *   shell_proxy_new(gw, &gw->shell);  // the endpoint, and an observer of the
 *                                     // lifecycle: a sandbox's terminals
 *                                     // close when it ends
 *   ...
 *   shell_proxy_free(gw->shell);      // after the HTTP server
 *
 * WS BASE/v1/sandboxes/{id}/shell?cols=80&rows=24[&command=...][&term=...]
 * with the API's Authorization: Bearer header, on a ready sandbox. The
 * terminal is the guest user's login shell (or `bash -l -c command`) on a
 * pseudo-terminal; it goes through the run/callback core as one command
 * ("shell", or the command), so the deny list and hooks can refuse it (the
 * WebSocket then closes with 1008 and the reason) and observers see its
 * exit code when it ends.
 *
 * Frames: binary both ways carry the terminal's bytes (input from the
 * client, output to it). A text frame from the client is a control
 * message: {"type": "resize", "cols": C, "rows": R}. When the shell ends
 * the gateway closes with 1000 and the reason "exit N" (N -1: no status,
 * as for a shell killed by a signal); a failure to start it closes with
 * 1011 and its message, the sandbox ending with 1001. */
#pragma once

struct gateway;
struct shell_proxy;

#define SHELL_MAX_PER_SANDBOX 8
#define SHELL_MAX_COMMAND 2048 /* bytes of ?command= */

int shell_proxy_new(struct gateway *gw, struct shell_proxy **out);
/* The loop has stopped: terminals that end from now on (as the server
 * closes its connections) queue no more work. */
void shell_proxy_shutdown(struct shell_proxy *sp);
void shell_proxy_free(struct shell_proxy *sp);
