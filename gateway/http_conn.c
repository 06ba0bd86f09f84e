/* The HTTP server's connection table: who may hold one of its slots, and
 * for how long. http.h ("Connections") says what clients see.
 *
 * Why it works this way:
 *
 * - A client is what the kernel can say about the other end. Off the host
 *   that is its address. On loopback the address says nothing: every local
 *   process is 127.0.0.1, and with the default bind that is every client
 *   the gateway has, so one bound per address would be a second global
 *   bound that one local process could use up, locking out the CLI, the
 *   SDKs and everybody else. What tells local clients apart is the user
 *   owning the socket, which the kernel's socket diagnostics give for the
 *   exact connection (the per-session listeners' same-user check asks the
 *   same question). The gateway's own user is not bounded per client: it
 *   can read the token in the state dir and signal the gateway, so a bound
 *   on it protects nobody from it, and the CLI, the SDKs, the browsers
 *   driving sessions and the test suite all run as that user. Every other
 *   local user is one client. The Unix socket is 0600: its owner.
 *
 * - Slots are for those who show a credential. Nothing tells an admin's
 *   new connection from an attacker's until its first request is read, so
 *   the table does not refuse the unknown, it sheds them: an
 *   unauthenticated connection may idle unauthenticated_timeout_s (a header
 *   timeout for its first request, and a short keep-alive after public
 *   ones), and when the table is full the one idle longest is closed to
 *   admit the newcomer. Authenticated connections keep lws's keep-alive
 *   and are never shed, so a token holder finds a slot as long as
 *   unauthenticated connections hold any.
 *
 * - Shedding spares connections younger than HTTP_EVICT_GRACE_MS: lws
 *   accepts a whole backlog in one go, and newcomers shedding each other
 *   would close an admin's connection before its request was even read.
 *   A newcomer that finds only young ones is refused (503) if its request
 *   has arrived without a token; if it has sent nothing yet, it is let in
 *   on probation, holding no slot, until its first request: one with a
 *   token gets a slot then, anything else (or silence past the grace
 *   period) a 503. Probation entries count against a cap of twice
 *   max_connections, so a burst costs a bounded number of fds.
 *
 * - An admin need not wait, though: a newcomer's first bytes are peeked
 *   at, and one whose request shows a valid token (on loopback it has
 *   usually arrived by the time of the accept; over TLS it cannot be read,
 *   and probation decides) may shed any unauthenticated connection, young
 *   or busy, and has a little room past the cap.
 *
 * - An unauthenticated request in progress for longer than the timeout (a
 *   slow reader of a large static file) is shed when nothing idle is left,
 *   so a client without a token cannot keep every slot busy either.
 *
 * - A refusal is written straight into the socket just accepted, before
 *   lws sees it: the client reads a status instead of a bare reset, and a
 *   refusal costs no lws state. Refusals and evictions are logged once per
 *   burst (the first, then a count), not once per connection. */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_private.h"
#include "util.h"

#define HTTP_EVICT_GRACE_MS 1000
/* Entries past the cap for newcomers with a token: each sheds a slot
 * holder, so they are only needed while the shed ones close. */
#define HTTP_TOKEN_ROOM 32
#define HTTP_BURST_QUIET_MS 5000 /* a burst ends after this long without an event */
#define HTTP_SWEEP_US LWS_US_PER_SEC

/* ---- who is on the other end ----------------------------------------- */

/* The uid owning the other end (peer) of a loopback connection to me, by
 * an exact lookup in the kernel's socket diagnostics (as `ss` asks it).
 * Returns the uid, -ENOENT when there is no such socket, -errno when the
 * kernel cannot be asked. */
static long diag_peer_uid(struct http_server *s, const struct sockaddr_in *me,
                          const struct sockaddr_in *peer)
{
    struct {
        struct nlmsghdr nh;
        struct inet_diag_req_v2 req;
    } q = {
        .nh = {.nlmsg_len = sizeof(q),
               .nlmsg_type = SOCK_DIAG_BY_FAMILY,
               .nlmsg_flags = NLM_F_REQUEST},
        /* The peer's socket: its local end is our remote one. */
        .req = {.sdiag_family = AF_INET,
                .sdiag_protocol = IPPROTO_TCP,
                .idiag_states = ~0u,
                .id = {.idiag_sport = peer->sin_port,
                       .idiag_dport = me->sin_port,
                       .idiag_src = {peer->sin_addr.s_addr},
                       .idiag_dst = {me->sin_addr.s_addr},
                       .idiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}}},
    };
    union {
        struct nlmsghdr nh;
        char buf[2048];
    } a;

    if (s->diag_fd < 0) {
        int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (fd < 0)
            return -errno;
        s->diag_fd = fd;
    }
    if (send(s->diag_fd, &q, sizeof(q), MSG_DONTWAIT) < 0)
        return -errno;
    /* The kernel answers while handling the send, so the reply is queued
     * already; an older reply left behind by an earlier failure names
     * another socket and is skipped. */
    for (;;) {
        ssize_t n = recv(s->diag_fd, &a, sizeof(a), MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN ? -ENOENT : -errno;
        for (size_t off = 0; off + sizeof(struct nlmsghdr) <= (size_t)n;) {
            const struct nlmsghdr *h = (const struct nlmsghdr *)(a.buf + off);
            if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > (size_t)n - off)
                break;
            const void *data = (const char *)h + NLMSG_HDRLEN;
            if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
                const struct nlmsgerr *e = data;
                return e->error < 0 ? e->error : -ENOENT;
            }
            if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
                h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
                const struct inet_diag_msg *m = data;
                if (m->id.idiag_sport == peer->sin_port && m->id.idiag_dport == me->sin_port &&
                    m->id.idiag_src[0] == peer->sin_addr.s_addr &&
                    m->id.idiag_dst[0] == me->sin_addr.s_addr)
                    return (long)m->idiag_uid;
            }
            off += NLMSG_ALIGN(h->nlmsg_len);
        }
    }
}

/* The same from /proc/net/tcp, where netlink is not allowed: the peer's
 * socket is there with local and remote swapped. A scan of every socket,
 * so only the fallback. */
static long proc_peer_uid(const struct sockaddr_in *me, const struct sockaddr_in *peer)
{
    char want_local[16], want_remote[16], line[512];
    long uid = -ENOENT;
    FILE *f;

    /* The kernel prints the address as the raw 32-bit word, the port in
     * host order. */
    snprintf(want_local, sizeof(want_local), "%08X:%04X", (unsigned)peer->sin_addr.s_addr,
             (unsigned)ntohs(peer->sin_port));
    snprintf(want_remote, sizeof(want_remote), "%08X:%04X", (unsigned)me->sin_addr.s_addr,
             (unsigned)ntohs(me->sin_port));
    if (!(f = fopen("/proc/net/tcp", "re")))
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        char local[32], remote[32];
        unsigned long u;
        if (sscanf(line, " %*d: %31s %31s %*x %*x:%*x %*x:%*x %*x %lu", local, remote, &u) == 3 &&
            strcmp(local, want_local) == 0 && strcmp(remote, want_remote) == 0) {
            uid = (long)u;
            break;
        }
    }
    fclose(f);
    return uid;
}

/* The client behind an accepted socket (HTTP_CLIENT_*). */
static uint64_t conn_client(struct http_server *s, int fd)
{
    struct sockaddr_storage me_ss, peer_ss;
    socklen_t ml = sizeof(me_ss), pl = sizeof(peer_ss);
    const struct sockaddr_in *me = (const struct sockaddr_in *)&me_ss;
    const struct sockaddr_in *peer = (const struct sockaddr_in *)&peer_ss;

    if (getpeername(fd, (struct sockaddr *)&peer_ss, &pl) < 0 ||
        getsockname(fd, (struct sockaddr *)&me_ss, &ml) < 0)
        return HTTP_CLIENT_UNKNOWN;
    if (peer_ss.ss_family == AF_UNIX)
        return HTTP_CLIENT_OWNER; /* the socket file is 0600 */
    if (peer_ss.ss_family != AF_INET || me_ss.ss_family != AF_INET)
        return HTTP_CLIENT_UNKNOWN;
    if ((ntohl(peer->sin_addr.s_addr) >> 24) != 127)
        return HTTP_CLIENT_ADDR(peer->sin_addr.s_addr);
    long uid = diag_peer_uid(s, me, peer);
    if (uid == -EPERM || uid == -EACCES || uid == -EAFNOSUPPORT || uid == -EPROTONOSUPPORT)
        uid = proc_peer_uid(me, peer);
    if (uid < 0) {
        /* Unknown local users share one bound; a session's listener
         * refuses them (the check fails closed). */
        if (uid != -ENOENT && !s->diag_warned) {
            lwsl_warn("http: cannot tell which local user connects (%s); such connections "
                      "count as one client\n",
                      strerror((int)-uid));
            s->diag_warned = true;
        }
        return HTTP_CLIENT_UNKNOWN;
    }
    return (uid_t)uid == geteuid() ? HTTP_CLIENT_OWNER : HTTP_CLIENT_UID((uint64_t)uid);
}

static void client_name(uint64_t client, char *out, size_t len)
{
    uint32_t v = (uint32_t)client;

    if (client == HTTP_CLIENT_OWNER)
        snprintf(out, len, "the gateway's own user");
    else if (client == HTTP_CLIENT_UNKNOWN)
        snprintf(out, len, "loopback (user unknown)");
    else if (client >> 32 == HTTP_CLIENT_UID(0) >> 32)
        snprintf(out, len, "loopback uid %u", (unsigned)v);
    else if (!inet_ntop(AF_INET, &v, out, (socklen_t)len))
        snprintf(out, len, "?");
}

/* ---- the policy (pure) ------------------------------------------------- */

size_t http_conn_victim(const struct http_conn_entry *conns, size_t n,
                        const struct http_conn_limits *lim, bool credential, int64_t now)
{
    size_t idle = SIZE_MAX, slow = SIZE_MAX;

    for (size_t i = 0; i < n; i++) {
        const struct http_conn_entry *e = &conns[i];
        if (e->closing || e->probation || e->authenticated)
            continue;
        /* A newcomer that showed a token may shed any of them. */
        int64_t age = now - e->active_ms;
        if (!e->in_request && (credential || age >= HTTP_EVICT_GRACE_MS) &&
            (idle == SIZE_MAX || e->active_ms < conns[idle].active_ms))
            idle = i;
        if (e->in_request && (credential || age >= lim->unauth_timeout_ms) &&
            (slow == SIZE_MAX || e->active_ms < conns[slow].active_ms))
            slow = i;
    }
    return idle != SIZE_MAX ? idle : slow;
}

/* Connections holding a slot. */
static size_t conns_open(const struct http_conn_entry *conns, size_t n)
{
    size_t open = 0;
    for (size_t i = 0; i < n; i++)
        open += !conns[i].closing && !conns[i].probation;
    return open;
}

enum http_admit http_conn_decide(const struct http_conn_entry *conns, size_t n,
                                 const struct http_conn_limits *lim, uint64_t client,
                                 enum http_shown shown, int64_t now, size_t *victim)
{
    size_t mine = 0;

    for (size_t i = 0; i < n; i++)
        mine += !conns[i].closing && conns[i].client == client;
    if (client != HTTP_CLIENT_OWNER && mine >= lim->per_client)
        return HTTP_REFUSE_CLIENT;
    /* Closing entries free themselves within a loop turn or two, and
     * probation ones within the grace; until then they hold memory and an
     * fd, so they are bounded too. A burst of silent newcomers fills the
     * cap: an admin still gets in, into the room kept for it. */
    if (n >= (shown == HTTP_SHOWN_TOKEN ? lim->room : lim->cap))
        return HTTP_REFUSE_FULL;
    if (conns_open(conns, n) < lim->max_conns)
        return HTTP_ADMIT;
    *victim = http_conn_victim(conns, n, lim, shown == HTTP_SHOWN_TOKEN, now);
    if (*victim != SIZE_MAX)
        return HTTP_ADMIT_EVICTING;
    /* Nothing to tell it by yet: its first request will say. */
    return shown == HTTP_SHOWN_NOTHING ? HTTP_ADMIT_PROBATION : HTTP_REFUSE_FULL;
}

bool http_conn_expired(const struct http_conn_entry *e, const struct http_conn_limits *lim,
                       int64_t now)
{
    return !e->closing && !e->authenticated && !e->in_request &&
           now - e->active_ms >= (e->probation ? HTTP_EVICT_GRACE_MS : lim->unauth_timeout_ms);
}

/* ---- acting on it ------------------------------------------------------ */

/* True for the first event of a burst, which is logged; the rest are
 * counted. */
static bool burst_note(struct http_conn_burst *b, int64_t now)
{
    b->last_ms = now;
    return b->count++ == 0;
}

static void burst_end(struct http_conn_burst *b, int64_t now, const char *what)
{
    if (!b->count || now - b->last_ms < HTTP_BURST_QUIET_MS)
        return;
    if (b->count > 1)
        lwsl_warn("http: %lu %s in that burst\n", b->count, what);
    b->count = 0;
}

/* lws closes a connection gracefully: it shuts its side down and waits up
 * to timeout_secs for the peer's FIN, which a shed connection's peer may
 * never send. Shutting both ways makes the socket read EOF at once, so lws
 * frees it on its next turn. */
static void conn_close(struct http_conn_entry *e)
{
    int fd = lws_get_socket_fd(e->wsi);

    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    e->closing = true;
    lws_set_timeout(e->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* What has arrived of the first request on a socket lws has not seen
 * yet (the bytes stay for lws). Over TLS they are ciphertext. */
static enum http_shown conn_peek(struct http_server *s, int fd)
{
    char *buf = (char *)s->scratch;

    if (s->tls)
        return HTTP_SHOWN_NOTHING;
    ssize_t n = recv(fd, buf, HTTP_LWS_HEADER_DATA, MSG_PEEK | MSG_DONTWAIT);
    if (n <= 0)
        return HTTP_SHOWN_NOTHING;
    buf[n] = '\0';
    const char *token = http_peek_bearer(buf);
    return token && http_token_valid(s, token) ? HTTP_SHOWN_TOKEN : HTTP_SHOWN_REQUEST;
}

/* A connection refused for a full table: logged once a burst, err set. */
static int refuse_full(struct http_server *s, int64_t now, struct ph_error *err)
{
    if (burst_note(&s->refused_full, now))
        lwsl_warn("http: refusing connections: all %zu slots are taken by authenticated, busy "
                  "or new connections (max_connections)\n",
                  s->limits.max_conns);
    return ph_error_set(err, PH_ERR_UNAVAILABLE, -EBUSY,
                        "the gateway has %zu connections open (max_connections); try again "
                        "shortly",
                        s->limits.max_conns);
}

/* Sheds conns[victim] for a newcomer, logged once a burst. */
static void shed(struct http_server *s, size_t victim, int64_t now)
{
    if (burst_note(&s->evicted, now))
        lwsl_warn("http: connection table full (max_connections %zu): closing the longest-idle "
                  "unauthenticated connections to admit new ones\n",
                  s->limits.max_conns);
    conn_close(&s->conns[victim]);
}

/* Writes a refusal into a socket lws has not seen yet. */
static void conn_refuse(struct http_server *s, int fd, int status, const char *reason,
                        const struct ph_error *err)
{
    size_t len = 0;

    if (s->tls)
        return; /* the client expects a TLS handshake: only a close is clean */
    _cleanup_free_ char *resp = http_error_response(status, reason, ph_error_code(err->kind),
                                                    err->message, "Retry-After: 1\r\n", &len);
    if (!resp)
        return;
    /* What the client sent already is read first: closing with unread
     * data sends a reset, which might overtake the reply. */
    for (int i = 0; i < 4 && recv(fd, s->scratch, HTTP_CHUNK, MSG_DONTWAIT) > 0; i++)
        ;
    /* A fresh socket's send buffer takes these few hundred bytes whole. */
    (void)send(fd, resp, len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

bool http_conn_admit(struct http_server *s, int fd, struct http_listener *via)
{
    const struct http_conn_limits *lim = &s->limits;
    int64_t now = now_ms();
    uint64_t client = conn_client(s, fd);
    size_t victim = 0, mine = 0;
    struct ph_error err = {0};
    char who[64];

    /* A session's listener: its address is the capability, and only the
     * gateway's own user may use it (see HTTP_LISTENER_SAME_UID). */
    if (via && (via->flags & HTTP_LISTENER_SAME_UID) && client != HTTP_CLIENT_OWNER)
        return false;
    /* Through an extra listener, the address was the credential. */
    enum http_shown shown = via ? HTTP_SHOWN_TOKEN : conn_peek(s, fd);
    enum http_admit a = http_conn_decide(s->conns, s->n_conns, lim, client, shown, now, &victim);
    switch (a) {
    case HTTP_ADMIT_EVICTING:
        shed(s, victim, now);
        /* fallthrough */
    case HTTP_ADMIT:
    case HTTP_ADMIT_PROBATION:
        s->pending = (struct http_conn_entry){
            .client = client,
            .active_ms = now,
            .authenticated = shown == HTTP_SHOWN_TOKEN,
            .probation = a == HTTP_ADMIT_PROBATION,
        };
        return true;
    case HTTP_REFUSE_CLIENT:
        for (size_t i = 0; i < s->n_conns; i++)
            mine += !s->conns[i].closing && s->conns[i].client == client;
        client_name(client, who, sizeof(who));
        if (burst_note(&s->refused_client, now))
            lwsl_warn("http: refusing connections from %s: %zu open from it "
                      "(max_connections_per_client %zu)\n",
                      who, mine, lim->per_client);
        ph_error_set(&err, PH_ERR_LIMIT, -EBUSY,
                     "too many connections from this client: %zu open, "
                     "max_connections_per_client is %zu",
                     mine, lim->per_client);
        conn_refuse(s, fd, 429, "Too Many Requests", &err);
        return false;
    case HTTP_REFUSE_FULL:
        refuse_full(s, now, &err);
        conn_refuse(s, fd, 503, "Service Unavailable", &err);
        return false;
    }
    return false;
}

static struct http_conn_entry *conn_find(struct http_server *s, struct lws *wsi)
{
    struct lws *nwsi = wsi ? lws_get_network_wsi(wsi) : NULL;

    for (size_t i = 0; nwsi && i < s->n_conns; i++)
        if (s->conns[i].wsi == nwsi)
            return &s->conns[i];
    return NULL;
}

void http_conn_track(struct http_server *s, struct lws *wsi, struct http_listener *via)
{
    struct http_conn_entry *e = conn_find(s, wsi);

    if (!e) {
        /* http_conn_admit made sure there is room. */
        if (s->n_conns == s->limits.room)
            return;
        e = &s->conns[s->n_conns++];
        *e = s->pending;
        e->wsi = wsi;
    }
    if (via) {
        e->via = via;
        e->authenticated = true;
    }
    s->pending = (struct http_conn_entry){0};
}

void http_conn_untrack(struct http_server *s, struct lws *wsi)
{
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i].wsi == wsi) {
            s->conns[i] = s->conns[--s->n_conns];
            return;
        }
}

/* e showed a token or capability. Let in on probation, it gets a slot
 * now, shedding an unauthenticated connection when the table is full, or
 * is refused. */
static int conn_authenticate(struct http_server *s, struct http_conn_entry *e, struct ph_error *err)
{
    int64_t now = now_ms();

    if (e->probation && conns_open(s->conns, s->n_conns) >= s->limits.max_conns) {
        size_t victim = http_conn_victim(s->conns, s->n_conns, &s->limits, true, now);
        if (victim == SIZE_MAX)
            return refuse_full(s, now, err);
        shed(s, victim, now);
    }
    e->probation = false;
    e->authenticated = true;
    return 0;
}

int http_conn_request_begin(struct http_server *s, struct lws *wsi, bool token,
                            struct ph_error *err)
{
    struct http_conn_entry *e = conn_find(s, wsi);

    if (!e)
        return 0;
    e->in_request = true;
    e->active_ms = now_ms();
    if (token || e->authenticated)
        return conn_authenticate(s, e, err);
    return e->probation ? refuse_full(s, e->active_ms, err) : 0;
}

void http_conn_request_end(struct http_server *s, struct lws *wsi)
{
    struct http_conn_entry *e = conn_find(s, wsi);
    if (e) {
        e->in_request = false;
        e->active_ms = now_ms();
    }
}

int http_conn_authenticated(struct http_server *s, struct lws *wsi, struct ph_error *err)
{
    struct http_conn_entry *e = conn_find(s, wsi);
    return e ? conn_authenticate(s, e, err) : 0;
}

static void conns_sweep(lws_sorted_usec_list_t *sul)
{
    struct http_server *s = lws_container_of(sul, struct http_server, conn_sweep);
    int64_t now = now_ms();
    size_t closed = 0;

    for (size_t i = 0; i < s->n_conns; i++) {
        struct http_conn_entry *e = &s->conns[i];
        if (!http_conn_expired(e, &s->limits, now))
            continue;
        if (e->probation) {
            /* It waited for a slot and never asked for anything: it reads
             * why it goes, as if refused at the accept (lws has written
             * nothing on it). */
            struct ph_error err = {0};
            int fd = lws_get_socket_fd(e->wsi);
            refuse_full(s, now, &err);
            if (fd >= 0)
                conn_refuse(s, fd, 503, "Service Unavailable", &err);
        } else {
            closed++;
        }
        conn_close(e);
    }
    /* Browsers' idle keep-alive connections end this way all the time. */
    if (closed)
        lwsl_info("http: closed %zu unauthenticated connections idle for %llds\n", closed,
                  (long long)(s->limits.unauth_timeout_ms / 1000));
    burst_end(&s->refused_client, now, "connections refused over max_connections_per_client");
    burst_end(&s->refused_full, now, "connections refused with the table full");
    burst_end(&s->evicted, now, "unauthenticated connections closed to admit new ones");
    lws_sul_schedule(s->ctx, 0, sul, conns_sweep, HTTP_SWEEP_US);
}

void http_conns_sweep(struct http_server *s, bool on)
{
    lws_sul_schedule(s->ctx, 0, &s->conn_sweep, on ? conns_sweep : NULL,
                     on ? HTTP_SWEEP_US : LWS_SET_TIMER_USEC_CANCEL);
}

int http_conns_init(struct http_server *s, const struct http_server_opts *o)
{
    struct http_conn_limits *lim = &s->limits;

    s->diag_fd = -1;
    lim->max_conns =
        (size_t)(o->max_connections > 0 ? o->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS);
    lim->per_client =
        (size_t)(o->max_connections_per_client > 0 ? o->max_connections_per_client
                                                   : HTTP_DEFAULT_MAX_CONNECTIONS_PER_CLIENT);
    lim->unauth_timeout_ms =
        1000LL * (o->unauthenticated_timeout_s > 0 ? o->unauthenticated_timeout_s
                                                   : HTTP_DEFAULT_UNAUTHENTICATED_TIMEOUT_S);
    /* As many again may be closing or on probation at once. */
    lim->cap = 2 * lim->max_conns;
    lim->room = lim->cap + HTTP_TOKEN_ROOM;
    s->conns = calloc(lim->room, sizeof(*s->conns));
    return s->conns ? 0 : -ENOMEM;
}

void http_conns_done(struct http_server *s)
{
    if (s->diag_fd >= 0)
        close(s->diag_fd);
    s->diag_fd = -1;
    free(s->conns);
    s->conns = NULL;
}
