#include "terminal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "util.h"
#include "wsc.h"

#define TERMINAL_SEND_MS 30000 /* one message to the gateway */
#define TERMINAL_RECV_MS 30000 /* the rest of a message begun */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_POLICY 1008

static int winch_pipe[2] = {-1, -1};

static void on_winch(int sig)
{
    int saved = errno;
    char b = 0;
    (void)sig;
    if (write(winch_pipe[1], &b, 1) < 0) {
        /* full: a resize is pending already */
    }
    errno = saved;
}

void terminal_size(int *cols, int *rows)
{
    struct winsize w;

    *cols = 80;
    *rows = 24;
    if ((ioctl(STDIN_FILENO, TIOCGWINSZ, &w) == 0 || ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0) &&
        w.ws_col > 0 && w.ws_row > 0) {
        *cols = w.ws_col;
        *rows = w.ws_row;
    }
}

static int send_resize(struct wsc *ws)
{
    char msg[80];
    int cols, rows;

    terminal_size(&cols, &rows);
    snprintf(msg, sizeof(msg), "{\"type\": \"resize\", \"cols\": %d, \"rows\": %d}", cols, rows);
    return wsc_send(ws, msg, strlen(msg), now_ms() + TERMINAL_SEND_MS);
}

/* How the gateway's close frame ends the session. */
static int closed(struct wsc *ws, int *exit_code, struct cli_error *err)
{
    char reason[124];
    int status = wsc_close_status(ws, reason, sizeof(reason));
    long code;

    if (status == WS_CLOSE_NORMAL && strncmp(reason, "exit ", 5) == 0 &&
        cli_parse_int(reason + 5, -1, 255, &code) == 0) {
        /* -1: no status (a signal); 255 is what ssh exits with then. */
        *exit_code = code < 0 ? 255 : (int)code;
        return 0;
    }
    if (status == WS_CLOSE_POLICY)
        return cli_error_set(err, 1, "blocked", NULL, -EPERM, "%s",
                             reason[0] ? reason : "refused by the gateway");
    if (status == 0)
        return cli_error_set(err, 1, "transport", NULL, -ECONNRESET,
                             "the connection to the gateway broke");
    return cli_error_set(err, 1, "shell_ended", NULL, -EIO, "the shell ended: %s (%d)",
                         reason[0] ? reason : "no reason given", status);
}

static int pump(struct wsc *ws, bool tty, int *exit_code, struct cli_error *err)
{
    char buf[16 * 1024];
    bool in_open = true;

    for (;;) {
        struct pollfd p[3] = {
            {.fd = wsc_fd(ws), .events = POLLIN},
            {.fd = winch_pipe[0], .events = POLLIN},
            {.fd = in_open ? STDIN_FILENO : -1, .events = POLLIN},
        };
        if (wsc_buffered(ws) == 0 && poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return cli_error_set(err, 1, "internal", NULL, -errno, "poll: %s", strerror(errno));
        }
        if (wsc_buffered(ws) > 0 || p[0].revents) {
            char *msg;
            size_t len;
            int r = wsc_recv(ws, &msg, &len, now_ms() + TERMINAL_RECV_MS, NULL, NULL);
            if (r == -ECONNRESET)
                return closed(ws, exit_code, err);
            if (r < 0)
                return cli_error_set(err, 1, "transport", NULL, r, "from the gateway: %s",
                                     strerror(-r));
            r = cli_write_all(STDOUT_FILENO, msg, len);
            free(msg);
            if (r < 0)
                return cli_error_set(err, 1, "internal", NULL, r, "writing the output: %s",
                                     strerror(-r));
            continue;
        }
        if (p[1].revents) {
            while (read(winch_pipe[0], buf, sizeof(buf)) > 0)
                ;
            if (tty && send_resize(ws) < 0)
                continue; /* the close frame will say why */
        }
        if (p[2].revents) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) {
                /* The end of a piped input: ^D at the guest's terminal. */
                in_open = false;
                buf[0] = 4;
                n = 1;
            }
            /* A failed send means the gateway closed: its frame says why. */
            wsc_send_binary(ws, buf, (size_t)n, now_ms() + TERMINAL_SEND_MS);
        }
    }
}

int terminal_run(struct wsc *ws, int *exit_code, struct cli_error *err)
{
    struct termios saved, raw;
    bool tty = isatty(STDIN_FILENO) == 1 && tcgetattr(STDIN_FILENO, &saved) == 0;
    struct sigaction sa = {.sa_handler = on_winch}, old_sa;
    int r;

    if (pipe2(winch_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return cli_error_set(err, 1, "internal", NULL, -errno, "pipe: %s", strerror(errno));
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGWINCH, &sa, &old_sa);
    if (tty) {
        raw = saved;
        cfmakeraw(&raw);
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    r = pump(ws, tty, exit_code, err);
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    sigaction(SIGWINCH, &old_sa, NULL);
    close(winch_pipe[0]);
    close(winch_pipe[1]);
    winch_pipe[0] = winch_pipe[1] = -1;
    return r;
}
