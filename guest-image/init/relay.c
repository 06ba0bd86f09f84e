/* CDP relay: Chromium binds its debugging port to loopback only, so a
 * small TCP relay makes it reachable on the guest's network. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "init.h"

#define RELAY_PORT 9223
#define RELAY_CONNS_MAX 64
#define RELAY_BUF (64 * 1024)

struct relay_dir {
    char *buf; /* owned, RELAY_BUF bytes */
    size_t off, len;
    bool eof;  /* source said EOF */
    bool shut; /* EOF passed on to the sink */
};

struct relay_conn {
    int fd[2]; /* [0] client, [1] upstream; -1 if the slot is free */
    bool connecting;
    struct relay_dir dir[2]; /* [0] client->upstream, [1] upstream->client */
};

static void relay_close(struct relay_conn *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->fd[i] >= 0)
            close(c->fd[i]);
        c->fd[i] = -1;
        free(c->dir[i].buf);
        c->dir[i].buf = NULL;
    }
}

static int relay_listen(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void relay_accept(int lfd, struct relay_conn *conns, uint16_t target_port)
{
    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    struct relay_conn *c = NULL;
    for (size_t i = 0; i < RELAY_CONNS_MAX && !c; i++)
        if (conns[i].fd[0] < 0)
            c = &conns[i];
    if (!c) {
        close(cfd);
        return;
    }
    int ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    char *b0 = malloc(RELAY_BUF), *b1 = malloc(RELAY_BUF);
    if (ufd < 0 || !b0 || !b1) {
        if (ufd >= 0)
            close(ufd);
        free(b0);
        free(b1);
        close(cfd);
        return;
    }
    /* CDP is small messages each way: relay each at once, never held back
     * for an acknowledgement (Nagle with delayed ACK costs 40 ms a turn). */
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(c, 0, sizeof(*c));
    c->fd[0] = cfd;
    c->fd[1] = ufd;
    c->dir[0].buf = b0;
    c->dir[1].buf = b1;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(target_port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(ufd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
        return;
    if (errno == EINPROGRESS) {
        c->connecting = true;
        return;
    }
    relay_close(c);
}

/* Moves bytes for one direction; returns false when the connection must
 * close (an error on either side). */
static bool relay_pump(struct relay_conn *c, int d, short src_ev, short dst_ev)
{
    struct relay_dir *dir = &c->dir[d];
    int src = c->fd[d], dst = c->fd[1 - d];
    if (!dir->eof && dir->len < RELAY_BUF && (src_ev & (POLLIN | POLLHUP | POLLERR))) {
        if (dir->off == dir->len)
            dir->off = dir->len = 0;
        ssize_t r = recv(src, dir->buf + dir->len, RELAY_BUF - dir->len, 0);
        if (r > 0)
            dir->len += (size_t)r;
        else if (r == 0)
            dir->eof = true;
        else if (errno != EAGAIN && errno != EINTR)
            return false;
    }
    if (!c->connecting && dir->len > dir->off && (dst_ev & (POLLOUT | POLLERR))) {
        ssize_t w = send(dst, dir->buf + dir->off, dir->len - dir->off, MSG_NOSIGNAL);
        if (w > 0)
            dir->off += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        if (dir->off == dir->len)
            dir->off = dir->len = 0;
    }
    if (!c->connecting && dir->eof && dir->len == dir->off && !dir->shut) {
        /* Half-close: HTTP clients may shut their write side and still
         * expect the reply. */
        shutdown(dst, SHUT_WR);
        dir->shut = true;
    }
    return true;
}

_Noreturn void relay_run(uint16_t listen_port, uint16_t target_port)
{
    int lfd = relay_listen(listen_port);
    if (lfd < 0) {
        logmsg("relay: listen on %u: %s", listen_port, strerror(-lfd));
        _exit(1);
    }
    static struct relay_conn conns[RELAY_CONNS_MAX];
    for (size_t i = 0; i < RELAY_CONNS_MAX; i++)
        conns[i].fd[0] = conns[i].fd[1] = -1;
    struct pollfd pfd[1 + 2 * RELAY_CONNS_MAX];
    for (;;) {
        size_t n = 0, active = 0;
        for (size_t i = 0; i < RELAY_CONNS_MAX; i++) {
            struct relay_conn *c = &conns[i];
            if (c->fd[0] < 0)
                continue;
            active++;
            short ev[2] = {0, 0};
            for (int d = 0; d < 2; d++) {
                struct relay_dir *dir = &c->dir[d];
                if (!dir->eof && dir->len < RELAY_BUF)
                    ev[d] |= POLLIN;
                if (dir->len > dir->off)
                    ev[1 - d] |= POLLOUT;
            }
            if (c->connecting)
                ev[1] = POLLOUT;
            pfd[n++] = (struct pollfd){.fd = c->fd[0], .events = ev[0]};
            pfd[n++] = (struct pollfd){.fd = c->fd[1], .events = ev[1]};
        }
        /* When full, leave new clients in the kernel's backlog. */
        bool listening = active < RELAY_CONNS_MAX;
        if (listening)
            pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            logmsg("relay: poll: %s", strerror(errno));
            _exit(1);
        }
        size_t k = 0;
        for (size_t i = 0; i < RELAY_CONNS_MAX; i++) {
            struct relay_conn *c = &conns[i];
            if (c->fd[0] < 0)
                continue;
            short ev0 = pfd[k].revents, ev1 = pfd[k + 1].revents;
            k += 2;
            if (c->connecting) {
                if (!(ev1 & (POLLOUT | POLLERR | POLLHUP)))
                    goto pump;
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) {
                    relay_close(c);
                    continue;
                }
                c->connecting = false;
                ev1 &= (short)~(POLLHUP | POLLERR);
            }
        pump:
            /* An error on either side ends the pair; without this a reset
             * peer that we poll for nothing would linger. */
            if (!c->connecting && ((ev0 | ev1) & POLLERR)) {
                relay_close(c);
                continue;
            }
            if (!relay_pump(c, 0, ev0, ev1) || !relay_pump(c, 1, ev1, ev0) ||
                (c->dir[0].shut && c->dir[1].shut))
                relay_close(c);
        }
        if (listening && (pfd[n - 1].revents & POLLIN))
            relay_accept(lfd, conns, target_port);
    }
}

struct child *relay_start(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        logmsg("fork for relay: %s", strerror(errno));
        return NULL;
    }
    if (pid == 0) {
        child_reset_signals();
        relay_run(RELAY_PORT, CDP_PORT);
    }
    return child_track(pid, "cdp-relay");
}

/* The relay PID 1 started survives Chromium restarts (it connects to 9222
 * per client); start one only if none listens. */
void relay_ensure(void)
{
    if (tcp_listening(RELAY_PORT))
        return;
    pid_t pid = fork();
    if (pid != 0)
        return;
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0)
        for (int i = 0; i < 3; i++)
            dup2(null, i);
    /* Exec'ed afresh so it keeps none of this ssh session's environment:
     * the host kills whatever carries a timed-out run's PORTHOLE_RUN_ID. */
    char port_listen[8], port_target[8];
    snprintf(port_listen, sizeof(port_listen), "%d", RELAY_PORT);
    snprintf(port_target, sizeof(port_target), "%d", CDP_PORT);
    char *argv[] = {(char *)"porthole-init", (char *)"relay", port_listen, port_target, NULL};
    execve("/proc/self/exe", argv, default_env);
    _exit(127);
}
