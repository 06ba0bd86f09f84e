/* An interactive terminal in a guest: a login shell (or one command) on a
 * pseudo-terminal, over an SSH session of its own, whose bytes travel on
 * a local socket.
 *
 *   struct vm_shell_opts o = {.cols = 80, .rows = 24};
 *   vm_shell_open(vm->ssh, &o, &sh, &fd, &err);   // blocks: connects
 *   ... read the terminal's output from fd, write its input to fd ...
 *   vm_shell_resize(sh, 120, 40);                 // any thread, never waits
 *   ... fd reads EOF: the shell ended ...
 *   code = vm_shell_exit_status(sh);
 *   vm_shell_close(sh);                            // never waits either
 *
 * One thread per shell pumps the socket and the channel. Closing fd, or
 * vm_shell_close, hangs the terminal up: the guest's shell gets SIGHUP as
 * when an ssh client goes away. */
#pragma once

#include "error.h"

struct vm_ssh;
struct vm_shell;

#define VM_SHELL_MAX_COLS 1000
#define VM_SHELL_MAX_ROWS 1000

struct vm_shell_opts {
    const char *command; /* NULL: the user's login shell */
    const char *term;    /* TERM in the guest; NULL: "xterm-256color" */
    int cols, rows;      /* 1..VM_SHELL_MAX_* */
};

/* ssh is weak and used only during the call. *fd is the caller's end of
 * the socket (non-blocking, close-on-exec), which the caller closes. */
int vm_shell_open(struct vm_ssh *ssh, const struct vm_shell_opts *o, struct vm_shell **out, int *fd,
                  struct ph_error *err);
/* Sizes out of range are clamped. */
void vm_shell_resize(struct vm_shell *sh, int cols, int rows);
/* Once fd read EOF: the shell's exit status (0..255), or -1 when it had
 * none (killed by a signal, the connection lost, still running). */
int vm_shell_exit_status(struct vm_shell *sh);
/* Drops the caller's hold; the thread ends the terminal and frees the rest. */
void vm_shell_close(struct vm_shell *sh);
