/* terminal: this process's terminal joined to a sandbox shell's WebSocket
 * (the gateway's /v1/sandboxes/{id}/shell; see shell_proxy.h there).
 *
 *   terminal_size(&cols, &rows);               // what to open the shell at
 *   ... wsc_open_http(..."/shell?cols=C&rows=R"...) ...
 *   r = terminal_run(ws, &code, &err);         // until the shell ends
 *
 * On a terminal, stdin is put in raw mode for the session (every key goes
 * to the guest, ^C included) and restored after; a window resize is sent
 * along. Without one (a pipe), input is sent as it is, and its end is
 * sent as ^D, the end of input for whatever reads the guest's terminal. */
#pragma once

#include "cli.h"

struct wsc;

/* The size of the terminal on stdin or stdout, else 80x24. */
void terminal_size(int *cols, int *rows);
/* Returns 0 with *exit_code the shell's (0..255; 255 when it had none),
 * or < 0 with err (the gateway refused or ended the shell, the
 * connection broke). */
int terminal_run(struct wsc *ws, int *exit_code, struct cli_error *err);
