/* egress: the per-VM HTTP proxy that is a guest's only way out. Threads of
 * its own (one accept thread per VM, one per connection), so nothing here
 * runs on the libwebsockets loop. The parsers live in egress_parse.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "egress.h"
#include "params.h"
#include "util.h"

#define EGRESS_MAX_CIDRS 64
#define EGRESS_MAX_ADDRS 16
#define EGRESS_CONNECT_TRIES 4
#define EGRESS_IFADDR_TTL_MS 3000
#define EGRESS_O2C_BUF 32768
/* The forwarded head (at most the received head plus a few added bytes)
 * and the client bytes that came with it. */
#define EGRESS_C2O_BUF (2 * EGRESS_MAX_HEAD + 128)
#define EGRESS_THREAD_STACK (512 * 1024)
#define EGRESS_DNS_GRACE_MS 250
#define EGRESS_ACCEPT_BACKOFF_MS 100

struct egress {
    int max_per_vm, max_total, connect_ms, idle_ms, head_ms;
    egress_event_fn on_event;
    void *event_data; /* weak */
    struct egress_cidr cidrs[EGRESS_MAX_CIDRS];
    size_t ncidrs;
    json_t *hosts; /* owned copy of egress_config.hosts, or NULL */
    bool use_dns;
    struct sockaddr_storage dns_addr;
    socklen_t dns_len;
    atomic_int conns_total;
    atomic_int vms; /* open egress_vm, for egress_free's check */

    pthread_mutex_t if_lock; /* guards the fields below */
    int64_t if_at;           /* now_ms() of the last refresh, 0: never */
    struct sockaddr_storage ifs[64];
    size_t nifs;
};

struct egress_conn {
    struct egress_vm *vm; /* weak */
    int fd;               /* owned: the guest's connection */
    int ofd;              /* owned: the origin, -1 if unused */
    pthread_t thread;
    bool done;                /* under vm->lock: the thread is finishing */
    struct egress_conn *next; /* under vm->lock */
    struct egress_request req;
    char head[EGRESS_MAX_HEAD];
    char c2o[EGRESS_C2O_BUF];
    char o2c[EGRESS_O2C_BUF];
};

struct egress_vm {
    struct egress *eg; /* weak */
    char *id;          /* owned */
    char *path;        /* owned */
    enum egress_mode mode;
    json_t *domains; /* owned, or NULL */
    int listen_fd;
    int stop_fd; /* eventfd written once by close: every thread polls it */
    int reap_fd; /* eventfd: a connection thread finished */
    pthread_t accept_thread;
    pthread_mutex_t lock;
    struct egress_conn *conns; /* owned list, under lock */
    int nconns;                /* live, under lock */
    atomic_uint_fast64_t bytes_in, bytes_out, connections, refused;
};

/* ---- configuration ---- */

int egress_cidrs_validate(json_t *arr, struct ph_error *err)
{
    size_t i;
    json_t *v;
    struct egress_cidr c;

    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "allow_cidrs must be an array");
    if (json_array_size(arr) > EGRESS_MAX_CIDRS)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "allow_cidrs: at most %d entries",
                            EGRESS_MAX_CIDRS);
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || egress_cidr_parse(json_string_value(v), &c) < 0)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "allow_cidrs[%zu]: not a CIDR (\"10.0.0.0/8\", \"fd00::/8\")", i);
    }
    return 0;
}

static int parse_dns_server(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port = NULL;
    size_t hl;
    long p = 53;

    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            return -EINVAL;
        hl = (size_t)(end - s - 1);
        s++;
        if (end[1] == ':')
            port = end + 2;
    } else {
        const char *colon = strchr(s, ':');
        if (colon && !strchr(colon + 1, ':')) {
            hl = (size_t)(colon - s);
            port = colon + 1;
        } else {
            hl = strlen(s); /* an IPv6 address without port */
        }
    }
    if (hl == 0 || hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (port) {
        char *end;
        errno = 0;
        p = strtol(port, &end, 10);
        if (*port == '\0' || *end || errno || p < 1 || p > 65535)
            return -EINVAL;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)p);
        *len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        *len = sizeof(*in6);
    } else {
        return -EINVAL;
    }
    return 0;
}

static int or_default(int v, int def)
{
    return v > 0 ? v : def;
}

int egress_new(const struct egress_config *cfg, struct egress **out, struct ph_error *err)
{
    _cleanup_free_ struct egress *eg = calloc(1, sizeof(*eg));
    size_t i;
    json_t *v;
    int r;

    if (!eg)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    r = egress_cidrs_validate(cfg->allow_cidrs, err);
    if (r < 0)
        return r;
    json_array_foreach(cfg->allow_cidrs, i, v)
    {
        egress_cidr_parse(json_string_value(v), &eg->cidrs[eg->ncidrs++]);
    }
    if (cfg->hosts) {
        if ((r = egress_hosts_validate(cfg->hosts, err)) < 0)
            return r;
        eg->hosts = json_deep_copy(cfg->hosts);
        if (!eg->hosts)
            return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    if (cfg->dns_server) {
        if (parse_dns_server(cfg->dns_server, &eg->dns_addr, &eg->dns_len) < 0) {
            json_decref(eg->hosts);
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "dns_server: not \"IP\" or \"IP:port\": %.64s", cfg->dns_server);
        }
        eg->use_dns = true;
    }
    eg->max_per_vm = or_default(cfg->max_conns_per_vm, 256);
    eg->max_total = or_default(cfg->max_conns_total, 4096);
    eg->connect_ms = or_default(cfg->connect_timeout_ms, 10000);
    eg->idle_ms = or_default(cfg->idle_timeout_ms, 300000);
    eg->head_ms = or_default(cfg->head_timeout_ms, 10000);
    eg->on_event = cfg->on_event;
    eg->event_data = cfg->event_data;
    pthread_mutex_init(&eg->if_lock, NULL);
    *out = TAKE_PTR(eg);
    return 0;
}

int egress_hosts_validate(json_t *obj, struct ph_error *err)
{
    const char *name;
    json_t *v;
    uint8_t bytes[16];

    if (!json_is_object(obj) || json_object_size(obj) > EGRESS_MAX_HOSTS)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "egress_hosts must be an object of at most %d \"name\": \"IP\"",
                            EGRESS_MAX_HOSTS);
    json_object_foreach(obj, name, v)
    {
        const char *ip = json_string_value(v);
        bool lower = *name && strlen(name) <= EGRESS_MAX_HOST;
        for (const char *p = name; *p && lower; p++)
            lower = !(*p >= 'A' && *p <= 'Z');
        if (!lower || !ip ||
            (inet_pton(AF_INET, ip, bytes) != 1 && inet_pton(AF_INET6, ip, bytes) != 1))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "egress_hosts[\"%.64s\"] must be an IP address (names lowercase)",
                                name);
    }
    return 0;
}

void egress_free(struct egress *eg)
{
    if (!eg)
        return;
    /* A vm still open would keep pointing at eg: a caller bug, not a leak
     * to hide. */
    if (atomic_load(&eg->vms) != 0)
        abort();
    pthread_mutex_destroy(&eg->if_lock);
    json_decref(eg->hosts);
    free(eg);
}

/* ---- address policy ---- */

static bool same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    if (a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

static void refresh_ifaddrs(struct egress *eg)
{
    struct ifaddrs *list, *it;

    eg->nifs = 0;
    if (getifaddrs(&list) < 0)
        return;
    for (it = list; it && eg->nifs < ARRAY_SIZE(eg->ifs); it = it->ifa_next) {
        if (!it->ifa_addr)
            continue;
        if (it->ifa_addr->sa_family == AF_INET)
            memcpy(&eg->ifs[eg->nifs++], it->ifa_addr, sizeof(struct sockaddr_in));
        else if (it->ifa_addr->sa_family == AF_INET6)
            memcpy(&eg->ifs[eg->nifs++], it->ifa_addr, sizeof(struct sockaddr_in6));
    }
    freeifaddrs(list);
}

static bool host_own_addr(struct egress *eg, const struct sockaddr *sa)
{
    struct sockaddr_in v4;
    bool found = false;

    /* ::ffff:a.b.c.d reaches a.b.c.d */
    if (sa->sa_family == AF_INET6 &&
        IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
        memset(&v4, 0, sizeof(v4));
        v4.sin_family = AF_INET;
        memcpy(&v4.sin_addr, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr + 12, 4);
        sa = (const struct sockaddr *)&v4;
    }
    pthread_mutex_lock(&eg->if_lock);
    int64_t now = now_ms();
    if (eg->if_at == 0 || now - eg->if_at > EGRESS_IFADDR_TTL_MS) {
        refresh_ifaddrs(eg);
        eg->if_at = now;
    }
    for (size_t i = 0; i < eg->nifs && !found; i++)
        found = same_addr(sa, &eg->ifs[i]);
    pthread_mutex_unlock(&eg->if_lock);
    return found;
}

/* NULL when the guest may connect to sa, else why not. */
static const char *addr_refusal(struct egress *eg, const struct sockaddr *sa)
{
    if (egress_addr_in_cidrs(sa, eg->cidrs, eg->ncidrs))
        return NULL;
    if (egress_addr_internal(sa))
        return "internal address";
    if (host_own_addr(eg, sa))
        return "address of this host";
    return NULL;
}

/* ---- small I/O helpers ---- */

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left <= 0)
        return 0;
    return left > 60000 ? 60000 : (int)left;
}

/* Waits for events on fd (and the vm's stop). 1: ready, 0: timeout, -ECANCELED: stopping. */
static int wait_fd(struct egress_vm *vm, int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = vm->stop_fd, .events = POLLIN}};
        int r = poll(p, 2, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (p[1].revents)
            return -ECANCELED;
        if (r > 0)
            return 1;
        if (now_ms() >= deadline)
            return 0;
    }
}

static void send_all(struct egress_vm *vm, int fd, const char *s, size_t n)
{
    int64_t deadline = now_ms() + 2000;

    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w > 0) {
            s += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(vm, fd, POLLOUT, deadline) <= 0)
                return;
        } else {
            return;
        }
    }
}

static void respond(struct egress_vm *vm, int fd, int status, const char *text, const char *msg)
{
    char buf[768];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n",
                     status, text, strlen(msg) + 1, msg);
    if (n > 0)
        send_all(vm, fd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void count_refusal(struct egress_vm *vm, const char *host, int port, const char *reason)
{
    atomic_fetch_add(&vm->refused, 1);
    if (vm->eg->on_event) {
        struct egress_event ev = {
            .vm_id = vm->id, .host = host ? host : "", .port = port, .reason = reason};
        vm->eg->on_event(vm->eg->event_data, &ev);
    }
}

/* A 403 (or status) naming host:port and the reason, counted and reported. */
static void refuse(struct egress_conn *c, int status, const char *text, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void refuse(struct egress_conn *c, int status, const char *text, const char *fmt, ...)
{
    char reason[256], msg[600];
    va_list ap;
    bool v6 = strchr(c->req.host, ':') != NULL;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof(msg), "porthole egress: %s%s%s:%d refused: %s", v6 ? "[" : "", c->req.host,
             v6 ? "]" : "", c->req.port, reason);
    /* counted first: a guest that saw the answer sees the count too */
    count_refusal(c->vm, c->req.host, c->req.port, reason);
    respond(c->vm, c->fd, status, text, msg);
}

/* ---- resolving ---- */

struct addr_list {
    struct sockaddr_storage a[EGRESS_MAX_ADDRS];
    size_t n;
};

static void addr_add(struct addr_list *l, int family, const uint8_t *bytes, int port)
{
    struct sockaddr_storage *ss;

    if (l->n >= ARRAY_SIZE(l->a))
        return;
    ss = &l->a[l->n++];
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        memcpy(&in4->sin_addr, bytes, 4);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        memcpy(&in6->sin6_addr, bytes, 16);
    }
}

static int resolve_dns(struct egress_vm *vm, const char *host, int port, struct addr_list *out)
{
    struct egress *eg = vm->eg;
    static const uint16_t qtypes[2] = {1, 28};
    uint8_t query[2][300], answer[4096];
    uint8_t addrs[2][EGRESS_MAX_ADDRS][16];
    int qlen[2], found[2] = {-1, -1}; /* -1: no answer yet */
    uint16_t ids[2];
    _cleanup_close_ int fd = -1;
    int attempt_ms = eg->connect_ms / 2;

    if (attempt_ms < 500)
        attempt_ms = 500;
    if (attempt_ms > 5000)
        attempt_ms = 5000;
    if (random_bytes(ids, sizeof(ids)) < 0)
        return -EIO;
    for (int q = 0; q < 2; q++) {
        qlen[q] = egress_dns_query(ids[q], host, qtypes[q], query[q], sizeof(query[q]));
        if (qlen[q] < 0)
            return qlen[q];
    }
    fd = socket(eg->dns_addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&eg->dns_addr, eg->dns_len) < 0)
        return -errno;
    /* One try and one retry of whatever is unanswered; once one family has
     * addresses, the other gets a short grace and no retry. */
    for (int attempt = 0; attempt < 2 && (found[0] == -1 || found[1] == -1); attempt++) {
        if (found[0] > 0 || found[1] > 0)
            break;
        for (int q = 0; q < 2; q++)
            if (found[q] == -1)
                send(fd, query[q], (size_t)qlen[q], MSG_NOSIGNAL);
        int64_t deadline = now_ms() + attempt_ms;
        while (found[0] == -1 || found[1] == -1) {
            int r = wait_fd(vm, fd, POLLIN, deadline);
            if (r < 0)
                return r;
            if (r == 0)
                break;
            ssize_t n = recv(fd, answer, sizeof(answer), 0);
            if (n <= 0)
                continue; /* ICMP errors show up here; the retry may still work */
            for (int q = 0; q < 2; q++) {
                if (found[q] != -1)
                    continue;
                int p = egress_dns_parse(answer, (size_t)n, ids[q], host, qtypes[q], addrs[q],
                                         EGRESS_MAX_ADDRS);
                if (p == -EINVAL)
                    continue; /* not an answer to this query */
                found[q] = p < 0 ? 0 : p;
                if (p == -ENOENT)
                    found[0] = found[1] = 0; /* the name does not exist at all */
            }
            if ((found[0] > 0 || found[1] > 0) && deadline > now_ms() + EGRESS_DNS_GRACE_MS)
                deadline = now_ms() + EGRESS_DNS_GRACE_MS;
        }
    }
    for (int q = 0; q < 2; q++)
        for (int i = 0; i < found[q]; i++)
            addr_add(out, q == 0 ? AF_INET : AF_INET6, addrs[q][i], port);
    if (out->n > 0)
        return 0;
    return found[0] == -1 && found[1] == -1 ? -ETIMEDOUT : -ENOENT;
}

static int resolve(struct egress_vm *vm, const struct egress_request *req, struct addr_list *out)
{
    uint8_t bytes[16];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res, *it;
    char port[8];

    out->n = 0;
    if (inet_pton(AF_INET, req->host, bytes) == 1) {
        addr_add(out, AF_INET, bytes, req->port);
        return 0;
    }
    if (inet_pton(AF_INET6, req->host, bytes) == 1) {
        addr_add(out, AF_INET6, bytes, req->port);
        return 0;
    }
    const char *fixed = json_string_value(json_object_get(vm->eg->hosts, req->host));
    if (fixed) {
        if (inet_pton(AF_INET, fixed, bytes) == 1)
            addr_add(out, AF_INET, bytes, req->port);
        else if (inet_pton(AF_INET6, fixed, bytes) == 1)
            addr_add(out, AF_INET6, bytes, req->port);
        return out->n ? 0 : -ENOENT;
    }
    if (vm->eg->use_dns)
        return resolve_dns(vm, req->host, req->port, out);
    snprintf(port, sizeof(port), "%d", req->port);
    if (getaddrinfo(req->host, port, &hints, &res) != 0)
        return -ENOENT;
    for (it = res; it; it = it->ai_next) {
        if (it->ai_family == AF_INET)
            addr_add(out, AF_INET, (const uint8_t *)&((struct sockaddr_in *)it->ai_addr)->sin_addr,
                     req->port);
        else if (it->ai_family == AF_INET6)
            addr_add(out, AF_INET6, ((struct sockaddr_in6 *)it->ai_addr)->sin6_addr.s6_addr,
                     req->port);
    }
    freeaddrinfo(res);
    return out->n ? 0 : -ENOENT;
}

/* ---- one connection ---- */

static int connect_one(struct egress_vm *vm, const struct sockaddr_storage *ss)
{
    socklen_t len =
        ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    _cleanup_close_ int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int r, soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
        if (errno != EINPROGRESS)
            return -errno;
        r = wait_fd(vm, fd, POLLOUT, now_ms() + vm->eg->connect_ms);
        if (r < 0)
            return r;
        if (r == 0)
            return -ETIMEDOUT;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            return -errno;
        if (soerr)
            return -soerr;
    }
    return TAKE_FD(fd);
}

/* Reads the request head. Returns its length, or a negative errno after
 * answering the guest (or not, when it went away). */
static int read_head(struct egress_conn *c, size_t *have)
{
    int64_t deadline = now_ms() + c->vm->eg->head_ms;
    size_t fwd_len = 0;
    int r;

    *have = 0;
    for (;;) {
        r = wait_fd(c->vm, c->fd, POLLIN, deadline);
        if (r < 0)
            return r;
        if (r == 0) {
            respond(c->vm, c->fd, 408, "Request Timeout", "porthole egress: request head timeout");
            return -ETIMEDOUT;
        }
        ssize_t n = recv(c->fd, c->head + *have, sizeof(c->head) - *have, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return -ECONNRESET;
        *have += (size_t)n;
        r = egress_parse_head(c->head, *have, &c->req, c->c2o, sizeof(c->c2o), &fwd_len);
        if (r == -EAGAIN)
            continue;
        if (r == -EPERM) {
            refuse(c, 403, "Forbidden", "the Host header names another host");
            return r;
        }
        if (r == -E2BIG) {
            respond(c->vm, c->fd, 431, "Request Header Fields Too Large",
                    "porthole egress: request head too large");
            return r;
        }
        if (r < 0) {
            respond(c->vm, c->fd, 400, "Bad Request",
                    "porthole egress: expected CONNECT host:port or an absolute http:// URL");
            return r;
        }
        /* c2o holds the forwarded head; the guest's next bytes follow it. */
        size_t head_len = (size_t)r, start = c->req.connect ? 0 : fwd_len;
        memcpy(c->c2o + start, c->head + head_len, *have - head_len);
        *have = start + *have - head_len;
        return 0;
    }
}

/* The name policy, before any DNS or connection. NULL: go on. */
static const char *name_refusal(struct egress_conn *c)
{
    struct egress_vm *vm = c->vm;

    if (vm->mode == EGRESS_NONE)
        return "egress is disabled for this VM";
    if (vm->mode != EGRESS_ALLOWLIST)
        return NULL;
    if (c->req.host_is_ip) {
        struct addr_list l = {.n = 0};
        uint8_t bytes[16];
        bool v4 = inet_pton(AF_INET, c->req.host, bytes) == 1;
        if (!v4 && inet_pton(AF_INET6, c->req.host, bytes) != 1)
            return "not a host name";
        addr_add(&l, v4 ? AF_INET : AF_INET6, bytes, c->req.port);
        if (!egress_addr_in_cidrs((struct sockaddr *)&l.a[0], vm->eg->cidrs, vm->eg->ncidrs))
            return "IP addresses are not in the allowed domains";
        return NULL;
    }
    if (!domain_allowed(vm->domains, c->req.host))
        return "not in the allowed domains";
    return NULL;
}

struct pipe_dir {
    int from, to;
    char *buf;
    size_t cap, off, len;
    bool eof;  /* from reached EOF */
    bool shut; /* to was shut down for writing */
    atomic_uint_fast64_t *counter;
};

/* In ALLOWLIST CONNECT tunnels the guest's first bytes stay here until they
 * are known not to be a ClientHello for another name. 1: release, 0: keep
 * waiting, -1: refused (already counted). */
static int sni_decide(struct egress_conn *c, struct pipe_dir *up)
{
    char sni[EGRESS_MAX_HOST + 1];
    const uint8_t *p = (const uint8_t *)up->buf + up->off;
    size_t n = up->len - up->off;

    if (n == 0)
        return up->eof ? 1 : 0;
    if (p[0] != 0x16)
        return 1; /* not TLS: the CONNECT host was the check */
    int r = egress_tls_sni(p, n, sni, sizeof(sni));
    if (r == -EAGAIN && !up->eof && up->len < up->cap)
        return 0;
    if (r == 0)
        return 1;
    if (r == 1 && domain_allowed(c->vm->domains, sni))
        return 1;
    if (r == 1)
        count_refusal(c->vm, sni, c->req.port, "TLS server name not in the allowed domains");
    else
        count_refusal(c->vm, c->req.host, c->req.port, "malformed TLS ClientHello");
    return -1;
}

/* Moves bytes both ways until both directions ended, an error, the idle
 * timeout or the vm stopping. */
static void relay(struct egress_conn *c, size_t pending)
{
    struct egress_vm *vm = c->vm;
    struct pipe_dir up = {.from = c->fd,
                          .to = c->ofd,
                          .buf = c->c2o,
                          .cap = sizeof(c->c2o),
                          .len = pending,
                          .counter = &vm->bytes_out};
    struct pipe_dir down = {.from = c->ofd,
                            .to = c->fd,
                            .buf = c->o2c,
                            .cap = sizeof(c->o2c),
                            .counter = &vm->bytes_in};
    struct pipe_dir *dirs[2] = {&up, &down};
    bool hold = vm->mode == EGRESS_ALLOWLIST && c->req.connect;
    int64_t idle_deadline = now_ms() + vm->eg->idle_ms, hold_deadline = 0;

    while (!(up.shut && down.shut)) {
        if (hold) {
            int d = sni_decide(c, &up);
            if (d < 0)
                return;
            if (d > 0)
                hold = false;
            else if (up.len > 0 && hold_deadline == 0)
                hold_deadline = now_ms() + vm->eg->head_ms;
            else if (hold_deadline && now_ms() >= hold_deadline) {
                count_refusal(vm, c->req.host, c->req.port, "TLS ClientHello timeout");
                return;
            }
        }
        struct pollfd p[3] = {{.fd = c->fd}, {.fd = c->ofd}, {.fd = vm->stop_fd, .events = POLLIN}};
        for (int i = 0; i < 2; i++) {
            struct pipe_dir *d = dirs[i];
            struct pollfd *pf = d == &up ? &p[0] : &p[1];
            struct pollfd *pt = d == &up ? &p[1] : &p[0];
            if (!d->eof && d->len < d->cap)
                pf->events |= POLLIN;
            if (d->len > d->off && !(d == &up && hold))
                pt->events |= POLLOUT;
        }
        /* An fd with nothing to wait for would still report POLLHUP. */
        for (int i = 0; i < 2; i++)
            if (!p[i].events)
                p[i].fd = -1;
        int64_t deadline = idle_deadline;
        if (hold && hold_deadline && hold_deadline < deadline)
            deadline = hold_deadline;
        int r = poll(p, 3, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || p[2].revents)
            return;
        if (r == 0) {
            if (now_ms() >= idle_deadline)
                return;
            continue;
        }
        for (int i = 0; i < 2; i++) {
            struct pipe_dir *d = dirs[i];
            struct pollfd *pf = d == &up ? &p[0] : &p[1];
            struct pollfd *pt = d == &up ? &p[1] : &p[0];
            if (pf->revents & (POLLIN | POLLHUP | POLLERR) && pf->events & POLLIN) {
                ssize_t n = recv(d->from, d->buf + d->len, d->cap - d->len, 0);
                if (n > 0) {
                    d->len += (size_t)n;
                    idle_deadline = now_ms() + vm->eg->idle_ms;
                } else if (n == 0) {
                    d->eof = true;
                } else if (errno != EAGAIN && errno != EINTR) {
                    return;
                }
            }
            if (pt->revents & (POLLOUT | POLLHUP | POLLERR) && pt->events & POLLOUT) {
                ssize_t n = send(d->to, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL);
                if (n > 0) {
                    d->off += (size_t)n;
                    atomic_fetch_add(d->counter, (uint_fast64_t)n);
                    idle_deadline = now_ms() + vm->eg->idle_ms;
                    if (d->off == d->len)
                        d->off = d->len = 0;
                } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                    return;
                }
            }
            if (d->eof && d->off == d->len && !d->shut && !(d == &up && hold)) {
                shutdown(d->to, SHUT_WR);
                d->shut = true;
            }
        }
    }
}

static void conn_serve(struct egress_conn *c)
{
    struct egress_vm *vm = c->vm;
    struct addr_list addrs;
    const char *why, *last_refusal = NULL;
    size_t pending;
    int r, tries = 0, last_err = 0;

    if (read_head(c, &pending) < 0)
        return;
    why = name_refusal(c);
    if (why) {
        refuse(c, 403, "Forbidden", "%s", why);
        return;
    }
    r = resolve(vm, &c->req, &addrs);
    if (r == -ECANCELED)
        return;
    if (r < 0) {
        respond(vm, c->fd, 502, "Bad Gateway",
                r == -ETIMEDOUT ? "porthole egress: DNS timeout"
                                : "porthole egress: cannot resolve host");
        return;
    }
    /* The check is on each address we connect to, so a name resolving to
     * an internal address (rebinding included) never gets a connection. */
    for (size_t i = 0; i < addrs.n && tries < EGRESS_CONNECT_TRIES && c->ofd < 0; i++) {
        why = addr_refusal(vm->eg, (struct sockaddr *)&addrs.a[i]);
        if (why) {
            last_refusal = why;
            continue;
        }
        tries++;
        r = connect_one(vm, &addrs.a[i]);
        if (r == -ECANCELED)
            return;
        if (r >= 0)
            c->ofd = r;
        else
            last_err = r;
    }
    if (c->ofd < 0) {
        if (tries == 0)
            refuse(c, 403, "Forbidden", "%s", last_refusal ? last_refusal : "no address");
        else if (last_err == -ETIMEDOUT)
            respond(vm, c->fd, 504, "Gateway Timeout", "porthole egress: connect timeout");
        else
            respond(vm, c->fd, 502, "Bad Gateway", "porthole egress: connect failed");
        return;
    }
    atomic_fetch_add(&vm->connections, 1);
    if (c->req.connect) {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        send_all(vm, c->fd, ok, sizeof(ok) - 1);
    }
    relay(c, pending);
}

static void *conn_thread(void *arg)
{
    struct egress_conn *c = arg;
    struct egress_vm *vm = c->vm;
    uint64_t one = 1;

    conn_serve(c);
    close(c->fd);
    c->fd = -1;
    if (c->ofd >= 0)
        close(c->ofd);
    c->ofd = -1;
    pthread_mutex_lock(&vm->lock);
    c->done = true;
    vm->nconns--;
    pthread_mutex_unlock(&vm->lock);
    atomic_fetch_sub(&vm->eg->conns_total, 1);
    if (write(vm->reap_fd, &one, sizeof(one)) < 0) {
        /* the counter cannot overflow in practice; the reaper also runs at close */
    }
    return NULL;
}

/* ---- per-VM listener ---- */

static void reap_done(struct egress_vm *vm)
{
    struct egress_conn **pp, *done = NULL;

    pthread_mutex_lock(&vm->lock);
    for (pp = &vm->conns; *pp;) {
        struct egress_conn *c = *pp;
        if (c->done) {
            *pp = c->next;
            c->next = done;
            done = c;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&vm->lock);
    while (done) {
        struct egress_conn *c = done;
        done = c->next;
        pthread_join(c->thread, NULL);
        free(c);
    }
}

static void over_capacity(struct egress_vm *vm, int fd)
{
    count_refusal(vm, NULL, 0, "too many connections");
    respond(vm, fd, 503, "Service Unavailable", "porthole egress: too many connections");
    close(fd);
}

/* 0, or -errno when accept itself failed. */
static int accept_one(struct egress_vm *vm)
{
    struct egress *eg = vm->eg;
    pthread_attr_t attr;
    int fd = accept4(vm->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0)
        return -errno;
    pthread_mutex_lock(&vm->lock);
    bool vm_full = vm->nconns >= eg->max_per_vm;
    if (!vm_full)
        vm->nconns++;
    pthread_mutex_unlock(&vm->lock);
    if (vm_full) {
        over_capacity(vm, fd);
        return 0;
    }
    if (atomic_fetch_add(&eg->conns_total, 1) >= eg->max_total) {
        atomic_fetch_sub(&eg->conns_total, 1);
        pthread_mutex_lock(&vm->lock);
        vm->nconns--;
        pthread_mutex_unlock(&vm->lock);
        over_capacity(vm, fd);
        return 0;
    }
    struct egress_conn *c = malloc(sizeof(*c));
    if (c) {
        c->vm = vm;
        c->fd = fd;
        c->ofd = -1;
        c->done = false;
        memset(&c->req, 0, sizeof(c->req));
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, EGRESS_THREAD_STACK);
    pthread_mutex_lock(&vm->lock);
    if (c && pthread_create(&c->thread, &attr, conn_thread, c) == 0) {
        c->next = vm->conns;
        vm->conns = c;
        c = NULL;
        fd = -1;
    } else {
        vm->nconns--;
    }
    pthread_mutex_unlock(&vm->lock);
    pthread_attr_destroy(&attr);
    if (fd >= 0) {
        atomic_fetch_sub(&eg->conns_total, 1);
        free(c);
        over_capacity(vm, fd);
    }
    return 0;
}

static void *accept_thread(void *arg)
{
    struct egress_vm *vm = arg;
    uint64_t v;
    bool backoff = false;

    for (;;) {
        /* Out of fds (or memory), the listener stays readable: leave it out
         * of one poll instead of spinning on it. */
        struct pollfd p[3] = {{.fd = backoff ? -1 : vm->listen_fd, .events = POLLIN},
                              {.fd = vm->stop_fd, .events = POLLIN},
                              {.fd = vm->reap_fd, .events = POLLIN}};
        int r = poll(p, 3, backoff ? EGRESS_ACCEPT_BACKOFF_MS : -1);
        backoff = false;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        if (p[2].revents) {
            if (read(vm->reap_fd, &v, sizeof(v)) < 0) {
                /* EAGAIN: another wakeup consumed it */
            }
            reap_done(vm);
        }
        if (p[0].revents & POLLIN) {
            r = accept_one(vm);
            backoff = r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM;
        }
    }
    return NULL;
}

static void vm_release(struct egress_vm *vm)
{
    if (vm->listen_fd >= 0)
        close(vm->listen_fd);
    if (vm->stop_fd >= 0)
        close(vm->stop_fd);
    if (vm->reap_fd >= 0)
        close(vm->reap_fd);
    pthread_mutex_destroy(&vm->lock);
    json_decref(vm->domains);
    free(vm->id);
    free(vm->path);
    free(vm);
}

int egress_vm_open(struct egress *eg, const char *vm_id, const char *socket_path,
                   enum egress_mode mode, json_t *allowed_domains, struct egress_vm **out,
                   struct ph_error *err)
{
    struct egress_vm *vm;
    int r;

    if (!vm_id || !*vm_id || strlen(socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "egress socket path too long");
    if (allowed_domains && !json_is_array(allowed_domains))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "allowed_domains must be an array");
    vm = calloc(1, sizeof(*vm));
    if (!vm)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    vm->eg = eg;
    vm->mode = mode;
    vm->listen_fd = vm->stop_fd = vm->reap_fd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    vm->id = strdup(vm_id);
    vm->path = strdup(socket_path);
    vm->domains = allowed_domains ? json_deep_copy(allowed_domains) : json_array();
    if (!vm->id || !vm->path || !vm->domains) {
        vm_release(vm);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vm->reap_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->stop_fd < 0 || vm->reap_fd < 0) {
        r = -errno;
        vm_release(vm);
        return ph_error_set(err, PH_ERR_INTERNAL, r, "egress socket: %s", strerror(-r));
    }
    vm->listen_fd = unix_listen_private(socket_path, 64);
    if (vm->listen_fd < 0) {
        r = vm->listen_fd;
        vm_release(vm);
        return ph_error_set(err, PH_ERR_INTERNAL, r, "egress socket %s: %s", socket_path,
                            r == -EEXIST ? "exists and is not a socket" : strerror(-r));
    }
    r = -pthread_create(&vm->accept_thread, NULL, accept_thread, vm);
    if (r < 0) {
        unlink(socket_path);
        vm_release(vm);
        return ph_error_set(err, PH_ERR_INTERNAL, r, "egress thread: %s", strerror(-r));
    }
    atomic_fetch_add(&eg->vms, 1);
    *out = vm;
    return 0;
}

void egress_vm_close(struct egress_vm *vm)
{
    uint64_t one = 1;
    struct egress_conn *list;

    if (!vm)
        return;
    if (write(vm->stop_fd, &one, sizeof(one)) < 0) {
        /* an eventfd at 0 always takes 1 */
    }
    pthread_join(vm->accept_thread, NULL);
    pthread_mutex_lock(&vm->lock);
    list = TAKE_PTR(vm->conns);
    pthread_mutex_unlock(&vm->lock);
    while (list) {
        struct egress_conn *c = list;
        list = c->next;
        pthread_join(c->thread, NULL);
        free(c);
    }
    unlink(vm->path);
    atomic_fetch_sub(&vm->eg->vms, 1);
    vm_release(vm);
}

void egress_vm_stats(const struct egress_vm *vm, struct egress_stats *out)
{
    struct egress_vm *v = (struct egress_vm *)vm; /* atomic loads take non-const */

    out->bytes_in = atomic_load(&v->bytes_in);
    out->bytes_out = atomic_load(&v->bytes_out);
    out->connections = atomic_load(&v->connections);
    out->refused = atomic_load(&v->refused);
}

json_t *egress_stats_json(const struct egress_stats *st)
{
    return json_pack("{s:I,s:I,s:I,s:I}", "bytes_in", (json_int_t)st->bytes_in, "bytes_out",
                     (json_int_t)st->bytes_out, "connections", (json_int_t)st->connections,
                     "refused", (json_int_t)st->refused);
}
