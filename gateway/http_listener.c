/* Extra listeners of the HTTP server: more TCP sockets served by the same
 * routes, each tagged with its owner's data, and the same-user check on
 * what connects to them. See http.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_private.h"
#include "util.h"

/* What a listener accepts joins the server's connection table, whose
 * admission also makes the same-user check (http_conn.c). */
void http_listener_accept(struct http_server *s, struct http_listener *l)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or an aborted connection: nothing to do */
        if (!http_conn_admit(s, fd, l)) {
            close(fd);
            continue;
        }
        /* Not the main listener's accept: http_conn_track below takes it. */
        s->accepting = false;
        /* lws closes fd itself when adoption fails. */
        struct lws *c = lws_adopt_socket_vhost(s->vhost, fd);
        if (c)
            http_conn_track(s, c, l);
    }
}

/* ---- extra listeners ------------------------------------------------- */

void http_listener_free(struct http_listener *l)
{
    struct http_server *s = l->server;

    for (struct http_listener **pl = &s->listeners; *pl; pl = &(*pl)->next)
        if (*pl == l) {
            *pl = l->next;
            break;
        }
    free(l);
}

int http_listener_open(struct http_server *s, const char *addr, int port, unsigned flags,
                       void *data, struct http_listener **out, struct ph_error *err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct http_listener *l;
    socklen_t sl = sizeof(sa);
    int one = 1, r;

    *out = NULL;
    if (!addr || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 || port < 0 || port > 65535)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "listeners take an IPv4 address");
    l = calloc(1, sizeof(*l));
    if (!l)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    l->server = s;
    l->data = data;
    l->flags = flags;
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0 || setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l->fd, 64) < 0 ||
        getsockname(l->fd, (struct sockaddr *)&sa, &sl) < 0) {
        r = -errno;
        if (l->fd >= 0)
            close(l->fd);
        free(l);
        return ph_error_set(err, r == -EADDRINUSE ? PH_ERR_UNAVAILABLE : PH_ERR_INTERNAL, r,
                            "cannot listen on %s port %d: %s", addr, port, strerror(-r));
    }
    l->port = ntohs(sa.sin_port);
    /* lws owns the fd from here: it closes it with the wsi, or at once
     * when adoption fails. */
    l->accept_wsi = lws_adopt_descriptor_vhost(
        s->vhost, LWS_ADOPT_RAW_FILE_DESC, (lws_sock_file_fd_type){.filefd = l->fd}, "http", NULL);
    if (!l->accept_wsi) {
        free(l);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "cannot watch a listener");
    }
    lws_set_opaque_user_data(l->accept_wsi, l);
    l->next = s->listeners;
    s->listeners = l;
    *out = l;
    return 0;
}

int http_listener_port(const struct http_listener *l)
{
    return l ? l->port : -1;
}

void http_listener_close(struct http_listener *l)
{
    struct http_server *s;

    if (!l)
        return;
    s = l->server;
    if (l->accept_wsi) {
        /* Refused from now on, whenever lws gets to closing the fd. */
        shutdown(l->fd, SHUT_RDWR);
        lws_set_opaque_user_data(l->accept_wsi, NULL);
        lws_set_timeout(l->accept_wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    /* What still runs through it gets a short grace: WebSocket owners
     * have sent their close frames already; idle keep-alive connections
     * and requests in flight just end. */
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i].via == l) {
            s->conns[i].via = NULL;
            lws_set_timeout(s->conns[i].wsi, PENDING_TIMEOUT_USER_OK, HTTP_LISTENER_GRACE_S);
        }
    http_listener_free(l);
}

void *http_wsi_listener(struct lws *wsi)
{
    struct http_server *s = http_server_from_wsi(wsi);
    struct lws *nwsi = lws_get_network_wsi(wsi);

    for (size_t i = 0; s && i < s->n_conns; i++)
        if (s->conns[i].wsi == nwsi)
            return s->conns[i].via ? s->conns[i].via->data : NULL;
    return NULL;
}

void *http_req_listener(struct http_req *req)
{
    struct http_req_full *r = http_req_full(req);
    return r->wsi ? http_wsi_listener(r->wsi) : NULL;
}
