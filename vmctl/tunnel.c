#include "tunnel.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "ssh.h"
#include "util.h"

#define TUNNEL_BUF (64 * 1024)
#define TUNNEL_CONNECT_MS 10000
/* How long poll sleeps with nothing to do: the session's liveness is
 * looked at this often. */
#define TUNNEL_IDLE_MS 1000

struct tconn {
    int fd; /* owned, -1 when the slot is free */
    ssh_channel ch;
    /* Guest-to-client bytes the client socket has not taken yet: while any
     * remain, nothing more is read from the channel, so the guest's window
     * closes and a slow client holds back only its own connection. */
    char *out; /* owned, TUNNEL_BUF while the connection lasts */
    size_t out_off, out_len;
};

struct vm_tunnel {
    struct vm_ssh *ssh; /* weak */
    char *path;         /* owned: what the host end is, for logs */
    char *unlink_path;  /* owned: the Unix socket to remove, NULL for TCP */
    int guest_port;
    int port; /* the TCP port listened on, 0 for a Unix socket */
    int listen_fd, stop_fd;
    pthread_t thread;
    ssh_session session; /* owned by the thread, NULL when disconnected */
    /* The session's packets are read through this while no channel read
     * does it: a close or window message for no open channel would
     * otherwise leave the socket readable and poll spinning. */
    ssh_event event;
    struct tconn conns[VM_TUNNEL_CONNS_MAX];
    char buf[TUNNEL_BUF]; /* client-to-guest scratch, the thread's */
};

static void conn_close(struct tconn *c)
{
    if (c->ch) {
        /* The channel dies with its session if that went first. */
        ssh_channel_close(c->ch);
        ssh_channel_free(c->ch);
        c->ch = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->out);
    c->out = NULL;
    c->out_off = c->out_len = 0;
}

static void session_drop(struct vm_tunnel *t)
{
    for (size_t i = 0; i < VM_TUNNEL_CONNS_MAX; i++)
        if (t->conns[i].fd >= 0)
            conn_close(&t->conns[i]);
    if (t->event) {
        ssh_event_remove_session(t->event, t->session);
        ssh_event_free(t->event);
        t->event = NULL;
    }
    if (t->session) {
        ssh_disconnect(t->session);
        ssh_free(t->session);
        t->session = NULL;
    }
}

static bool session_alive(struct vm_tunnel *t)
{
    return t->session && ssh_is_connected(t->session) &&
           !(ssh_get_status(t->session) & (SSH_CLOSED | SSH_CLOSED_ERROR));
}

/* A channel to the guest port, on the session, connecting it (again) when
 * needed: a guest whose sshd restarted gets a fresh session here. */
static ssh_channel open_channel(struct vm_tunnel *t)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!session_alive(t)) {
            session_drop(t);
            struct ph_error err = {0};
            if (vm_ssh_open_session(t->ssh, TUNNEL_CONNECT_MS, &t->session, &err) < 0) {
                fprintf(stderr, "tunnel %s: %s\n", t->path, err.message);
                return NULL;
            }
            if (!(t->event = ssh_event_new()) ||
                ssh_event_add_session(t->event, t->session) != SSH_OK) {
                fprintf(stderr, "tunnel %s: out of memory\n", t->path);
                session_drop(t);
                return NULL;
            }
        }
        ssh_channel ch = ssh_channel_new(t->session);
        if (ch &&
            ssh_channel_open_forward(ch, "127.0.0.1", t->guest_port, "127.0.0.1", 0) == SSH_OK)
            return ch;
        fprintf(stderr, "tunnel %s: channel to guest port %d: %s\n", t->path, t->guest_port,
                ssh_get_error(t->session));
        if (ch)
            ssh_channel_free(ch);
        /* A refused forward on a live session is the guest's answer (no
         * listener yet): retrying on a new session would not change it. */
        if (session_alive(t))
            return NULL;
    }
    return NULL;
}

static void accept_all(struct vm_tunnel *t)
{
    for (;;) {
        int fd = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct tconn *c = NULL;
        for (size_t i = 0; i < VM_TUNNEL_CONNS_MAX && !c; i++)
            if (t->conns[i].fd < 0)
                c = &t->conns[i];
        if (!c || !(c->out = malloc(TUNNEL_BUF))) {
            close(fd);
            continue;
        }
        /* The slot is filled only afterwards: a reconnect drops every
         * connection of the old session. */
        ssh_channel ch = open_channel(t);
        c->fd = fd;
        c->ch = ch;
        if (!ch)
            conn_close(c);
    }
}

/* Writes what is pending to the client. False once the client is gone. */
static bool flush_out(struct tconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return true;
}

/* Moves what can move on one connection without waiting. Returns bytes
 * moved, or -1 when the connection is over. */
static ssize_t pump(struct vm_tunnel *t, struct tconn *c)
{
    ssize_t moved = 0;

    /* Guest to client, as long as the client keeps up. */
    for (;;) {
        if (!flush_out(c))
            return -1;
        if (c->out_len)
            break;
        int n = ssh_channel_read_nonblocking(c->ch, c->out, TUNNEL_BUF, 0);
        if (n == SSH_ERROR)
            return -1;
        if (n <= 0) {
            if (ssh_channel_is_eof(c->ch) || ssh_channel_is_closed(c->ch))
                return -1;
            break;
        }
        c->out_len = (size_t)n;
        moved += n;
    }
    /* Client to guest, within the guest's window, so the write never waits
     * for the guest to read. */
    uint32_t window = ssh_channel_window_size(c->ch);
    if (window == 0) {
        /* Nothing is read while the guest's window is shut, but a client
         * that left is noticed (poll reports its hang-up regardless). */
        char b;
        ssize_t peek = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        return peek == 0 || (peek < 0 && errno != EAGAIN && errno != EINTR) ? -1 : moved;
    }
    size_t want = window < sizeof(t->buf) ? window : sizeof(t->buf);
    ssize_t n = recv(c->fd, t->buf, want, 0);
    if (n == 0)
        return -1;
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? moved : -1;
    if (ssh_channel_write(c->ch, t->buf, (uint32_t)n) == SSH_ERROR)
        return -1;
    return moved + n;
}

static void *tunnel_thread(void *data)
{
    struct vm_tunnel *t = data;
    struct pollfd p[3 + VM_TUNNEL_CONNS_MAX];

    for (;;) {
        /* Drain everything that can move: reading one channel may bring
         * in another's data. */
        for (bool any = true; any;) {
            any = false;
            for (size_t i = 0; i < VM_TUNNEL_CONNS_MAX; i++) {
                struct tconn *c = &t->conns[i];
                if (c->fd < 0)
                    continue;
                ssize_t m = pump(t, c);
                if (m < 0)
                    conn_close(c);
                else if (m > 0)
                    any = true;
            }
        }
        if (t->session && !session_alive(t))
            session_drop(t);

        nfds_t n = 0;
        p[n++] = (struct pollfd){.fd = t->stop_fd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = t->listen_fd, .events = POLLIN};
        if (t->session)
            p[n++] = (struct pollfd){.fd = ssh_get_fd(t->session), .events = POLLIN};
        for (size_t i = 0; i < VM_TUNNEL_CONNS_MAX; i++) {
            struct tconn *c = &t->conns[i];
            if (c->fd < 0)
                continue;
            short ev = c->out_len ? POLLOUT : 0;
            if (ssh_channel_window_size(c->ch) > 0)
                ev |= POLLIN;
            p[n++] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        if (poll(p, n, TUNNEL_IDLE_MS) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (t->session && (p[2].revents & (POLLIN | POLLHUP | POLLERR)))
            ssh_event_dopoll(t->event, 0);
        if (p[1].revents & POLLIN)
            accept_all(t);
    }
    session_drop(t);
    return NULL;
}

/* What start made, once no thread runs on it. */
static void tunnel_free(struct vm_tunnel *t)
{
    if (t->listen_fd >= 0)
        close(t->listen_fd);
    if (t->stop_fd >= 0)
        close(t->stop_fd);
    free(t->path);
    free(t->unlink_path);
    free(t);
}

/* Starts the thread on a listening socket (stolen, closed on failure too).
 * socket_path: the Unix socket to remove at stop, else NULL; name: logs. */
static int tunnel_start(struct vm_ssh *ssh, int listen_fd, const char *name,
                        const char *socket_path, int guest_port, struct vm_tunnel **out,
                        struct ph_error *err)
{
    struct vm_tunnel *t = calloc(1, sizeof(*t));
    int r;

    if (!t) {
        close(listen_fd);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    t->ssh = ssh;
    t->guest_port = guest_port;
    t->listen_fd = listen_fd;
    t->stop_fd = -1;
    for (size_t i = 0; i < VM_TUNNEL_CONNS_MAX; i++)
        t->conns[i].fd = -1;
    if (!(t->path = strdup(name)) || (socket_path && !(t->unlink_path = strdup(socket_path)))) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto fail;
    }
    if ((t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -errno, "eventfd: %s", strerror(errno));
        goto fail;
    }
    if ((r = -pthread_create(&t->thread, NULL, tunnel_thread, t)) < 0) {
        ph_error_set(err, PH_ERR_INTERNAL, r, "tunnel thread: %s", strerror(-r));
        goto fail;
    }
    *out = t;
    return 0;
fail:
    if (socket_path)
        unlink(socket_path);
    tunnel_free(t);
    return r;
}

int vm_tunnel_start(struct vm_ssh *ssh, const char *socket_path, int guest_port,
                    struct vm_tunnel **out, struct ph_error *err)
{
    int fd = unix_listen_private(socket_path, 64);

    if (fd < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, fd, "tunnel socket %s: %s", socket_path,
                            strerror(-fd));
    return tunnel_start(ssh, fd, socket_path, socket_path, guest_port, out, err);
}

int vm_tunnel_start_tcp(struct vm_ssh *ssh, const char *addr, int port, int guest_port,
                        struct vm_tunnel **out, struct ph_error *err)
{
    char name[80];
    int bound = 0, fd = tcp_listen(addr, port, 64, &bound);

    if (fd == -EADDRINUSE)
        return ph_error_set(err, PH_ERR_CONFLICT, fd, "host port %d is in use", port);
    if (fd < 0)
        return ph_error_set(
            err, fd == -EINVAL || fd == -EADDRNOTAVAIL ? PH_ERR_INVALID : PH_ERR_INTERNAL, fd,
            "cannot listen on %s port %d: %s", addr, port, strerror(-fd));
    snprintf(name, sizeof(name), strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, bound);
    int r = tunnel_start(ssh, fd, name, NULL, guest_port, out, err);
    if (r == 0)
        (*out)->port = bound;
    return r;
}

int vm_tunnel_port(const struct vm_tunnel *t)
{
    return t->port;
}

void vm_tunnel_stop(struct vm_tunnel *t)
{
    uint64_t one = 1;

    if (!t)
        return;
    if (write(t->stop_fd, &one, sizeof(one)) < 0)
        fprintf(stderr, "tunnel %s: cannot wake its thread: %s\n", t->path, strerror(errno));
    pthread_join(t->thread, NULL);
    if (t->unlink_path)
        unlink(t->unlink_path);
    tunnel_free(t);
}
