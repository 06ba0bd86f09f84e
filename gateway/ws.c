#include "ws.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "http.h"

#define WS_PROTO_DEFAULT "porthole"           /* clients naming no subprotocol */
#define WS_PROTO_BINARY "binary"              /* what noVNC asks for */
#define WS_PROTO_UPSTREAM "porthole-upstream" /* our own client connections */
#define WS_RX_BUFFER (64 * 1024)
#define WS_FLUSH_GRACE_S 30 /* a side flushing what the other sent before closing */

enum side_state {
    SIDE_IDLE,       /* upstream not asked for yet */
    SIDE_CONNECTING, /* upstream connection under way */
    SIDE_UP,         /* open: reads and writes flow */
    SIDE_GONE,       /* closed, or never to be */
};

struct ws_side {
    struct lws *wsi; /* weak; NULL unless CONNECTING or UP */
    enum side_state state;
    bool raw;                   /* a raw TCP socket, not a WebSocket */
    bool paused;                /* its reads are off: the other side's queue is full */
    bool close_now;             /* close at the next WRITEABLE, dropping the queue */
    bool close_when_empty;      /* close once the queue is written */
    bool discarding;            /* dropping the rest of a message, then closing */
    struct ws_msg *rx;          /* owned: message being assembled from this side */
    struct ws_msg *head, *tail; /* owned: queue of what to write to this side */
    size_t queued;              /* bytes in the queue */
};

struct ws_link {
    const struct ws_link_ops *ops;
    void *owner; /* weak key */
    void *data;  /* owned by ops->destroy */
    size_t max_message;
    struct ws_side client, upstream;
    bool closing; /* ws_link_close ran: nothing more is delivered */
    int close_status;
    char close_reason[100];
    int holds;
    /* A from_client decision under way (WS_DEFERRED), and the client
     * messages that arrived meanwhile, in order. */
    bool deferred;
    struct ws_msg *held_head, *held_tail; /* owned */
    size_t held;                          /* bytes in the held queue */
    size_t budget;                        /* bound on the owner's links' bytes; 0 = none */
    char budget_reason[100];
    struct ws_hub *hub;          /* weak */
    struct ws_link *prev, *next; /* the hub's list */
};

struct ws_hub {
    struct ws_endpoint endpoints[WS_MAX_ENDPOINTS];
    size_t n_endpoints;
    struct ws_link *links; /* owned list */
};

struct ws_hub *ws_hub_new(void)
{
    return calloc(1, sizeof(struct ws_hub));
}

void ws_hub_free(struct ws_hub *hub)
{
    free(hub);
}

static struct ws_hub *hub_of(struct lws *wsi)
{
    struct http_server *srv = http_server_from_wsi(wsi);
    return srv ? http_server_ws_data(srv) : NULL;
}

static void msgs_free(struct ws_msg *m)
{
    while (m) {
        struct ws_msg *next = m->next;
        ws_msg_free(m);
        m = next;
    }
}

static void queue_free(struct ws_side *s)
{
    msgs_free(s->head);
    s->head = NULL;
    s->tail = NULL;
    s->queued = 0;
    ws_msg_free(s->rx);
    s->rx = NULL;
}

/* ---- links ---------------------------------------------------------- */

static struct ws_side *peer_of(struct ws_link *l, struct ws_side *s)
{
    return s == &l->client ? &l->upstream : &l->client;
}

static void link_maybe_free(struct ws_link *l)
{
    if (l->client.state != SIDE_GONE || l->upstream.state != SIDE_GONE || l->holds > 0)
        return;
    if (l->prev)
        l->prev->next = l->next;
    else
        l->hub->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    queue_free(&l->client);
    queue_free(&l->upstream);
    msgs_free(l->held_head);
    if (l->ops->destroy)
        l->ops->destroy(l);
    free(l);
}

struct ws_link *ws_link_new(struct lws *client, const struct ws_link_ops *ops, void *owner,
                            void *data, size_t max_message)
{
    struct ws_hub *hub = hub_of(client);
    struct ws_link *l = hub ? calloc(1, sizeof(*l)) : NULL;
    if (!l)
        return NULL;
    l->hub = hub;
    l->ops = ops;
    l->owner = owner;
    l->data = data;
    l->max_message = max_message;
    l->client = (struct ws_side){.wsi = client, .state = SIDE_UP};
    l->upstream = (struct ws_side){.state = SIDE_IDLE};
    l->next = hub->links;
    if (hub->links)
        hub->links->prev = l;
    hub->links = l;
    lws_set_opaque_user_data(client, l);
    return l;
}

void *ws_link_data(struct ws_link *l)
{
    return l->data;
}

void *ws_link_owner(struct ws_link *l)
{
    return l->owner;
}

bool ws_link_closing(const struct ws_link *l)
{
    return l->closing || l->client.state == SIDE_GONE || l->client.close_now ||
           l->client.close_when_empty;
}

void ws_link_hold(struct ws_link *l)
{
    l->holds++;
}

void ws_link_release(struct ws_link *l)
{
    l->holds--;
    link_maybe_free(l);
}

void ws_link_set_close(struct ws_link *l, int status, const char *reason)
{
    if (l->close_status)
        return; /* the first reason stands */
    l->close_status = status;
    snprintf(l->close_reason, sizeof(l->close_reason), "%s", reason ? reason : "");
}

/* Starts closing side s: at once (drop its queue) or after its queue. */
static void side_close(struct ws_link *l, struct ws_side *s, bool flush)
{
    if (s->discarding)
        return; /* once the message being dropped has ended (over_budget) */
    switch (s->state) {
    case SIDE_IDLE:
        s->state = SIDE_GONE;
        break;
    case SIDE_CONNECTING:
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        break;
    case SIDE_UP:
        if (flush) {
            s->close_when_empty = true;
        } else {
            s->close_now = true;
            /* Should lws close it first (its vhost going away), its close
             * frame still carries this. */
            if (!s->raw)
                lws_close_reason(s->wsi, (enum lws_close_status)l->close_status,
                                 (unsigned char *)l->close_reason, strlen(l->close_reason));
        }
        if (s->paused) {
            /* A close frame from the peer must still be readable. */
            lws_rx_flow_control(s->wsi, 1);
            s->paused = false;
        }
        lws_callback_on_writable(s->wsi);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK,
                        flush && s->head ? WS_FLUSH_GRACE_S : WS_CLOSE_GRACE_S);
        break;
    case SIDE_GONE:
        break;
    }
}

void ws_link_close(struct ws_link *l, int status, const char *reason)
{
    ws_link_set_close(l, status, reason);
    l->closing = true;
    side_close(l, &l->client, false);
    side_close(l, &l->upstream, false);
    link_maybe_free(l);
}

/* A side's connection is over (or never came): the other side sends what
 * it still has and closes. */
static void side_gone(struct ws_link *l, struct ws_side *s)
{
    struct ws_side *o = peer_of(l, s);

    if (s->state == SIDE_GONE)
        return;
    bool was_up = s->state == SIDE_UP;
    if (s->wsi)
        lws_set_opaque_user_data(s->wsi, NULL);
    s->wsi = NULL;
    s->state = SIDE_GONE;
    queue_free(s);
    if (o->paused && o->wsi) {
        lws_rx_flow_control(o->wsi, 1);
        o->paused = false;
    }
    if (s == &l->upstream && l->ops->upstream_closed)
        l->ops->upstream_closed(l);
    if (s == &l->upstream)
        ws_link_set_close(l,
                          was_up ? LWS_CLOSE_STATUS_NORMAL : LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
                          was_up ? "upstream closed" : "cannot reach the upstream");
    else
        ws_link_set_close(l, LWS_CLOSE_STATUS_NORMAL, "client closed");
    side_close(l, o, true);
    link_maybe_free(l);
}

/* ---- the owner's budget --------------------------------------------- */

static size_t link_bytes(const struct ws_link *l)
{
    return l->client.queued + l->upstream.queued + l->held +
           (l->client.rx ? l->client.rx->cap : 0) + (l->upstream.rx ? l->upstream.rx->cap : 0);
}

void ws_link_set_budget(struct ws_link *l, size_t max_bytes, const char *reason)
{
    l->budget = max_bytes;
    snprintf(l->budget_reason, sizeof(l->budget_reason), "%s", reason ? reason : "");
}

/* Closes l when its owner's links hold more than l's budget; true then.
 * A walk of the hub's links (at most the gateway's connections) per
 * message or piece read: cheap beside the copy that brought the bytes.
 * reading: a side in the middle of a message, whose current frame is read
 * to its end and dropped before the close frame goes (discarding): a peer
 * blocked writing that frame would not read the close frame, and a socket
 * closed with bytes unread is reset, close frame and all. */
static bool over_budget(struct ws_link *l, struct ws_side *reading)
{
    size_t total = 0;

    if (!l->budget || l->closing)
        return false;
    for (const struct ws_link *o = l->hub->links; o; o = o->next)
        if (o->owner == l->owner && o->ops == l->ops)
            total += link_bytes(o);
    if (total <= l->budget)
        return false;
    lwsl_warn("ws %s: the owner's links hold %zu bytes, over %zu: closing one\n", l->ops->name,
              total, l->budget);
    if (reading && reading->state == SIDE_UP && !reading->raw) {
        ws_msg_free(reading->rx);
        reading->rx = NULL;
        reading->discarding = true;
        lws_set_timeout(reading->wsi, PENDING_TIMEOUT_USER_OK, 2 * WS_CLOSE_GRACE_S);
    }
    ws_link_close(l, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, l->budget_reason);
    return true;
}

/* ---- the pump ------------------------------------------------------- */

/* Appends m to one of l's queues (head, tail and its byte count) under the
 * queues' bounds: past the hard one, or the owner's budget, l is closed
 * (false); past WS_QUEUE_HIGH, sender (NULL: none) stops being read. lws
 * may deliver what it has already read after the pause; the hard bound
 * only trips on a peer that ignores it altogether. */
static bool queue_append(struct ws_link *l, struct ws_msg **head, struct ws_msg **tail,
                         size_t *bytes, struct ws_msg *m, struct ws_side *sender)
{
    m->next = NULL;
    if (*tail)
        (*tail)->next = m;
    else
        *head = m;
    *tail = m;
    *bytes += m->len;
    if (*bytes > WS_QUEUE_HIGH + 2 * l->max_message) {
        lwsl_notice("ws %s: %zu bytes queued, closing\n", l->ops->name, *bytes);
        ws_link_close(l, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "queue overflow");
        return false;
    }
    if (over_budget(l, NULL))
        return false;
    if (sender && *bytes > WS_QUEUE_HIGH && !sender->paused && sender->state == SIDE_UP) {
        lws_rx_flow_control(sender->wsi, 0);
        sender->paused = true;
    }
    return true;
}

static void enqueue(struct ws_link *l, struct ws_side *to, struct ws_side *from, struct ws_msg *m)
{
    if (to->state == SIDE_GONE || to->close_now || to->close_when_empty || l->closing) {
        ws_msg_free(m);
        return;
    }
    m->off = 0;
    if (queue_append(l, &to->head, &to->tail, &to->queued, m, from) && to->state == SIDE_UP)
        lws_callback_on_writable(to->wsi);
}

/* A client message that arrived while a decision on an earlier one is
 * under way waits behind it, under the same bounds as a queue. */
static void hold(struct ws_link *l, struct ws_msg *m)
{
    queue_append(l, &l->held_head, &l->held_tail, &l->held, m, &l->client);
}

static void deliver(struct ws_link *l, struct ws_side *from, struct ws_msg *m)
{
    if (from == &l->client && l->ops->from_client) {
        if (l->deferred) {
            hold(l, m);
            return;
        }
        int r = l->ops->from_client(l, &m);
        if (r < 0) {
            ws_msg_free(m);
            ws_link_close(l, LWS_CLOSE_STATUS_POLICY_VIOLATION, "refused by the gateway");
            return;
        }
        if (r == WS_DEFERRED)
            l->deferred = true;
        if (r > 0)
            return;
    }
    enqueue(l, peer_of(l, from), from, m);
}

void ws_link_resume(struct ws_link *l, struct ws_msg *m)
{
    struct ws_side *c = &l->client;

    l->deferred = false;
    if (ws_link_closing(l)) {
        ws_msg_free(m);
        return;
    }
    if (m)
        enqueue(l, &l->upstream, c, m);
    while (!l->deferred && l->held_head && !ws_link_closing(l)) {
        struct ws_msg *next = l->held_head;
        if (!(l->held_head = next->next))
            l->held_tail = NULL;
        l->held -= next->len;
        next->next = NULL;
        deliver(l, c, next);
    }
    if (c->paused && c->state == SIDE_UP && l->held <= WS_QUEUE_LOW &&
        l->upstream.queued <= WS_QUEUE_LOW) {
        lws_rx_flow_control(c->wsi, 1);
        c->paused = false;
    }
}

int ws_link_send_client(struct ws_link *l, const void *data, size_t len, bool binary)
{
    if (ws_link_closing(l))
        return -EPIPE;
    struct ws_msg *m = ws_msg_new(data, len, binary);
    if (!m)
        return -ENOMEM;
    enqueue(l, &l->client, NULL, m);
    return 0;
}

/* A piece of a WebSocket message, or a raw chunk, arrived from side s. */
static int on_receive(struct ws_link *l, struct ws_side *s, struct lws *wsi, const void *in,
                      size_t len)
{
    if (s->discarding) {
        /* The end of the frame: its sender is no longer held up writing. */
        if (!lws_remaining_packet_payload(wsi)) {
            s->discarding = false;
            side_close(l, s, false);
        }
        return 0;
    }
    if (s->state != SIDE_UP || s->close_now || l->closing)
        return 0;
    if (s->raw) {
        struct ws_msg *m = ws_msg_new(in, len, true);
        if (!m)
            return -1;
        deliver(l, s, m);
        return 0;
    }
    int r = ws_msg_append(&s->rx, in, len, lws_remaining_packet_payload(wsi),
                          lws_is_final_fragment(wsi), lws_frame_is_binary(wsi), l->max_message);
    if (r == -EMSGSIZE) {
        lwsl_notice("ws %s: message over %zu bytes, closing\n", l->ops->name, l->max_message);
        ws_link_close(l, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        return 0;
    }
    if (r < 0)
        return -1;
    if (over_budget(l, r == 0 ? s : NULL))
        return 0;
    if (r == 1) {
        struct ws_msg *m = s->rx;
        s->rx = NULL;
        deliver(l, s, m);
    }
    return 0;
}

/* Writes the next chunk queued for side s; returns what the WRITEABLE
 * callback returns. */
static int on_writeable(struct ws_link *l, struct ws_side *s)
{
    struct ws_side *o = peer_of(l, s);

    if (s->state != SIDE_UP)
        return 0;
    if (s->close_now || (s->close_when_empty && !s->head)) {
        if (!s->raw)
            lws_close_reason(s->wsi, (enum lws_close_status)l->close_status,
                             (unsigned char *)l->close_reason, strlen(l->close_reason));
        return -1;
    }
    struct ws_msg *m = s->head;
    if (!m)
        return 0;
    size_t n = m->len - m->off > WS_WRITE_CHUNK ? WS_WRITE_CHUNK : m->len - m->off;
    int flags;
    if (s->raw)
        flags = LWS_WRITE_RAW;
    else
        flags = lws_write_ws_flags(m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT, m->off == 0,
                                   m->off + n == m->len);
    /* lws writes the frame header into the LWS_PRE bytes before the
     * chunk: the headroom for the first, already-sent bytes after. */
    if (lws_write(s->wsi, m->data + m->off, n, (enum lws_write_protocol)flags) < 0)
        return -1;
    m->off += n;
    if (m->off == m->len) {
        s->head = m->next;
        if (!s->head)
            s->tail = NULL;
        s->queued -= m->len;
        ws_msg_free(m);
        if (o->paused && s->queued <= WS_QUEUE_LOW && o->state == SIDE_UP &&
            (o != &l->client || l->held <= WS_QUEUE_LOW)) {
            lws_rx_flow_control(o->wsi, 1);
            o->paused = false;
        }
    }
    if (s->head || s->close_when_empty)
        lws_callback_on_writable(s->wsi);
    return 0;
}

/* ---- upstream connections ------------------------------------------- */

/* To the Unix socket at unix_path: a WebSocket to path, or raw bytes. */
static int connect_upstream(struct ws_link *l, const char *unix_path, const char *path, bool raw)
{
    struct lws_client_connect_info i;
    struct http_server *srv = http_server_from_wsi(l->client.wsi);
    char address[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];

    if (ws_link_closing(l) || l->upstream.state != SIDE_IDLE)
        return -EPIPE;
    if (!srv || !unix_path ||
        (size_t)snprintf(address, sizeof(address), "+%s", unix_path) >= sizeof(address)) {
        side_gone(l, &l->upstream);
        return -EIO;
    }
    memset(&i, 0, sizeof(i));
    i.context = http_server_context(srv);
    i.vhost = http_server_vhost(srv);
    /* lws takes "+PATH" for a Unix socket. */
    i.address = address;
    i.port = 0;
    i.host = "127.0.0.1";
    i.path = raw ? "" : path;
    i.method = raw ? "RAW" : NULL;
    i.ietf_version_or_minus_one = -1;
    i.local_protocol_name = WS_PROTO_UPSTREAM;
    i.opaque_user_data = l;
    i.pwsi = &l->upstream.wsi;
    l->upstream.raw = raw;
    l->upstream.state = SIDE_CONNECTING;
    /* A failure may already have come through CLIENT_CONNECTION_ERROR. */
    if (!lws_client_connect_via_info(&i)) {
        side_gone(l, &l->upstream);
        return -EIO;
    }
    return 0;
}

int ws_link_connect_ws(struct ws_link *l, const char *socket_path, const char *path)
{
    return connect_upstream(l, socket_path, path, false);
}

int ws_link_connect_unix(struct ws_link *l, const char *socket_path)
{
    return connect_upstream(l, socket_path, NULL, true);
}

static void upstream_up(struct ws_link *l)
{
    struct ws_side *s = &l->upstream;

    if (s->state != SIDE_CONNECTING)
        return;
    s->state = SIDE_UP;
    if (l->closing) {
        side_close(l, s, false);
        return;
    }
    if (s->head)
        lws_callback_on_writable(s->wsi);
}

int ws_link_adopt_fd(struct ws_link *l, int fd)
{
    struct http_server *srv = http_server_from_wsi(l->client.wsi);

    if (ws_link_closing(l) || l->upstream.state != SIDE_IDLE || !srv) {
        close(fd);
        return -EIO;
    }
    lws_adopt_desc_t a = {
        .vh = http_server_vhost(srv),
        .type = LWS_ADOPT_SOCKET,
        .fd = {.sockfd = fd},
        .vh_prot_name = WS_PROTO_UPSTREAM,
        .opaque = l,
    };
    l->upstream.raw = true;
    l->upstream.state = SIDE_CONNECTING;
    /* A socket already connected: up as soon as lws has it. */
    struct lws *wsi = lws_adopt_descriptor_vhost_via_info(&a);
    if (!wsi) {
        side_gone(l, &l->upstream);
        return -EIO;
    }
    l->upstream.wsi = wsi;
    upstream_up(l);
    return 0;
}

/* ---- the lws side --------------------------------------------------- */

static const struct ws_endpoint *endpoint_for(struct ws_hub *hub, const char *path)
{
    for (size_t i = 0; hub && i < hub->n_endpoints; i++)
        if (strncmp(path, hub->endpoints[i].prefix, strlen(hub->endpoints[i].prefix)) == 0)
            return &hub->endpoints[i];
    return NULL;
}

static int ws_upgrade(void *data, struct lws *wsi, const char *path, struct ph_error *err)
{
    const struct ws_endpoint *ep = endpoint_for(data, path);

    if (!ep)
        return ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT, "no WebSocket endpoint here");
    return ep->check(ep->data, wsi, path, err);
}

static int on_established(struct lws *wsi)
{
    struct ph_error err = {0};
    char path[HTTP_MAX_PATH];
    const struct ws_endpoint *ep;
    int n = lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);

    if (n > 0 && (size_t)n == strlen(path) && (ep = endpoint_for(hub_of(wsi), path)) &&
        ep->start(ep->data, wsi, path, &err) == 0)
        return 0;
    const char *why = err.message[0] ? err.message : "no WebSocket endpoint here";
    lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)why, strlen(why));
    return -1;
}

static struct ws_side *side_of(struct ws_link *l, struct lws *wsi)
{
    /* The upstream's wsi is known before lws_client_connect_via_info
     * returns only through pwsi; anything not the client is upstream. */
    return wsi == l->client.wsi ? &l->client : &l->upstream;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct ws_link *l = lws_get_opaque_user_data(wsi);

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(wsi);

    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_CLIENT_RECEIVE:
    case LWS_CALLBACK_RAW_RX:
        return l ? on_receive(l, side_of(l, wsi), wsi, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLIENT_WRITEABLE:
    case LWS_CALLBACK_RAW_WRITEABLE:
        return l ? on_writeable(l, side_of(l, wsi)) : -1;

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
    case LWS_CALLBACK_RAW_CONNECTED:
        if (l)
            upstream_up(l);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (l) {
            lwsl_warn("ws %s: upstream connection failed: %s\n", l->ops->name,
                      in ? (const char *)in : "?");
            side_gone(l, &l->upstream);
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP: /* killed before its upgrade */
    case LWS_CALLBACK_RAW_CLOSE:
    case LWS_CALLBACK_WSI_DESTROY:
        if (l)
            side_gone(l, side_of(l, wsi));
        return 0;

    default:
        /* Connections sit on the default protocol until their first HTTP
         * request is routed; lws's defaults handle the rest. */
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols ws_protocols[] = {
    {.name = WS_PROTO_DEFAULT, .callback = ws_callback, .rx_buffer_size = WS_RX_BUFFER},
    {.name = WS_PROTO_BINARY, .callback = ws_callback, .rx_buffer_size = WS_RX_BUFFER},
    {.name = WS_PROTO_UPSTREAM, .callback = ws_callback, .rx_buffer_size = WS_RX_BUFFER},
    {.name = NULL},
};

void ws_server_opts(struct http_server_opts *o, struct ws_hub *hub)
{
    o->extra_protocols = ws_protocols;
    o->ws_default_protocol = WS_PROTO_DEFAULT;
    o->ws_upgrade = ws_upgrade;
    o->ws_data = hub;
}

int ws_endpoint_register(struct ws_hub *hub, const struct ws_endpoint *ep)
{
    for (size_t i = 0; i < hub->n_endpoints; i++)
        if (strcmp(hub->endpoints[i].prefix, ep->prefix) == 0) {
            hub->endpoints[i] = *ep;
            return 0;
        }
    if (hub->n_endpoints == WS_MAX_ENDPOINTS)
        return -ENOSPC;
    hub->endpoints[hub->n_endpoints++] = *ep;
    return 0;
}

size_t ws_links_count(struct ws_hub *hub, const void *owner, const struct ws_link_ops *ops)
{
    size_t n = 0;
    for (struct ws_link *l = hub->links; l; l = l->next)
        if (l->owner == owner && (!ops || l->ops == ops))
            n++; /* closing ones too: they hold sockets for a few seconds */
    return n;
}

void ws_links_close(struct ws_hub *hub, const void *owner, const struct ws_link_ops *ops,
                    int status, const char *reason)
{
    for (struct ws_link *l = hub->links, *next; l; l = next) {
        next = l->next;
        if (l->owner == owner && (!ops || l->ops == ops))
            ws_link_close(l, status, reason);
    }
}
