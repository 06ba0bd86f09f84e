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

#include "chanpump.h"
#include "ssh.h"
#include "util.h"

/* The tunnel's own SSH session to the guest, made at its first client.
 * A guest under software emulation on a loaded host has taken over 10 s
 * to answer it (e2e_template, load average about 10); clients such as
 * Playwright's connectOverCDP wait 30 s by default. */
#define TUNNEL_CONNECT_MS 30000
/* How long poll sleeps with nothing to do: the session's liveness is
 * looked at this often. */
#define TUNNEL_IDLE_MS 1000

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
    struct chan_pump conns[VM_TUNNEL_CONNS_MAX];
    char buf[CHAN_PUMP_BUF]; /* client-to-guest scratch, the thread's */
};

static void session_drop(struct vm_tunnel *t)
{
    for (size_t i = 0; i < VM_TUNNEL_CONNS_MAX; i++)
        if (t->conns[i].fd >= 0)
            chan_pump_close(&t->conns[i]);
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
        struct chan_pump *c = NULL;
        for (size_t i = 0; i < VM_TUNNEL_CONNS_MAX && !c; i++)
            if (t->conns[i].fd < 0)
                c = &t->conns[i];
        if (!c) {
            close(fd);
            continue;
        }
        /* The slot is filled only afterwards: a reconnect drops every
         * connection of the old session. */
        ssh_channel ch = open_channel(t);
        if (!ch || chan_pump_init(c, fd, ch) < 0) {
            if (ch) {
                ssh_channel_close(ch);
                ssh_channel_free(ch);
            }
            close(fd);
        }
    }
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
                struct chan_pump *c = &t->conns[i];
                if (c->fd < 0)
                    continue;
                ssize_t m = chan_pump_step(c, t->buf, sizeof(t->buf));
                if (m < 0)
                    chan_pump_close(c);
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
            struct chan_pump *c = &t->conns[i];
            if (c->fd < 0)
                continue;
            p[n++] = (struct pollfd){.fd = c->fd, .events = chan_pump_events(c)};
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
        chan_pump_reset(&t->conns[i]);
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
