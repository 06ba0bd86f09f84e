/* egress-relay: stdin/stdout <-> a Unix socket, with half-close. Kept
 * small: it runs once per guest TCP connection, before any of the CLI's
 * setup. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "relay.h"

#define RELAY_BUF 65536

struct relay_dir {
    int from, to;
    char buf[RELAY_BUF];
    size_t off, len;
    bool eof, shut;
};

/* stdout may be a socket (QEMU's guestfwd) or a pipe: end writing either way. */
static void end_writes(int fd)
{
    struct stat st;

    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
        shutdown(fd, SHUT_WR);
    else
        close(fd);
}

/* Under guestfwd stderr is the guest's connection too: say nothing there. */
static void complain(const char *path, const char *what)
{
    struct stat e, o;

    if (fstat(STDERR_FILENO, &e) == 0 && fstat(STDOUT_FILENO, &o) == 0 && e.st_dev == o.st_dev &&
        e.st_ino == o.st_ino)
        return;
    fprintf(stderr, "egress-relay: %s: %s\n", path, what);
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int egress_relay_main(const char *socket_path)
{
    static struct relay_dir dirs[2];
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int sock;

    signal(SIGPIPE, SIG_IGN);
    if (strlen(socket_path) >= sizeof(sun.sun_path)) {
        complain(socket_path, "path too long");
        return 1;
    }
    memcpy(sun.sun_path, socket_path, strlen(socket_path) + 1);
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        complain(socket_path, strerror(errno));
        return 1;
    }
    set_nonblock(sock);
    set_nonblock(STDIN_FILENO);
    set_nonblock(STDOUT_FILENO);
    dirs[0].from = STDIN_FILENO;
    dirs[0].to = sock;
    dirs[1].from = sock;
    dirs[1].to = STDOUT_FILENO;

    while (!(dirs[0].shut && dirs[1].shut)) {
        struct pollfd p[4];
        for (int i = 0; i < 2; i++) {
            struct relay_dir *d = &dirs[i];
            p[2 * i] = (struct pollfd){.fd = -1};
            p[2 * i + 1] = (struct pollfd){.fd = -1};
            if (!d->eof && d->len < sizeof(d->buf))
                p[2 * i] = (struct pollfd){.fd = d->from, .events = POLLIN};
            if (d->len > d->off)
                p[2 * i + 1] = (struct pollfd){.fd = d->to, .events = POLLOUT};
        }
        if (poll(p, 4, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        for (int i = 0; i < 2; i++) {
            struct relay_dir *d = &dirs[i];
            if (p[2 * i].revents) {
                ssize_t n = read(d->from, d->buf + d->len, sizeof(d->buf) - d->len);
                if (n > 0)
                    d->len += (size_t)n;
                else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                    d->eof = true; /* a read error ends this direction like EOF */
            }
            if (p[2 * i + 1].revents) {
                ssize_t n = write(d->to, d->buf + d->off, d->len - d->off);
                if (n > 0) {
                    d->off += (size_t)n;
                    if (d->off == d->len)
                        d->off = d->len = 0;
                } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                    return 1; /* the reader is gone: nothing more to deliver */
                }
            }
            if (d->eof && d->off == d->len && !d->shut) {
                end_writes(d->to);
                d->shut = true;
            }
        }
    }
    return 0;
}
