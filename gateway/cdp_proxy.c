#include "cdp_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "browser.h"
#include "http.h"
#include "gateway.h"
#include "util.h"
#include "work.h"
#include "ws.h"

#define CDP_FETCH_HEAD_MAX 8192 /* Chromium's response head */
#define CDP_ERROR_CODE (-32000) /* what Chromium uses for a refused command */

/* A session the proxy serves. */
struct cdp_session {
    struct instance *sb; /* weak: valid until cdp_proxy_session_close */
    char id[40];
    struct http_listener *listener; /* closed with the session; NULL when none */
    char addr[INET_ADDRSTRLEN];     /* the listener's address, "" when none */
    int port;
    int fetches;             /* /json fetches on workers right now */
    struct cdp_job *waiting; /* owned queue: fetches past CDP_MAX_FETCHES */
    struct cdp_job **waiting_tail;
    int n_waiting;
    struct cdp_session *next;
};

enum cdp_json_kind {
    CDP_JSON_VERSION,
    CDP_JSON_LIST,
    CDP_JSON_NEW,
    CDP_JSON_PROTOCOL,
    CDP_JSON_ACTIVATE,
    CDP_JSON_CLOSE,
};

struct cdp_route {
    struct cdp_proxy *cp; /* weak */
    enum cdp_json_kind kind;
    bool root_form;
};

#define CDP_N_ROUTES 8

struct cdp_proxy {
    struct instance_observer observer;
    struct gateway *gw;                        /* weak */
    struct cdp_session *sessions;              /* owned list */
    struct cdp_route routes[2 * CDP_N_ROUTES]; /* the handlers' data: token and root forms */
};

static struct cdp_session *session_find(struct cdp_proxy *cp, const struct instance *sb)
{
    for (struct cdp_session *cs = cp->sessions; cs; cs = cs->next)
        if (cs->sb == sb)
            return cs;
    return NULL;
}

/* Where the proxy's short work runs. */
static struct work_pool *fast_pool(struct gateway *gw)
{
    return gw->fast_work ? gw->fast_work : http_server_work(gw->http);
}

/* ---- a small blocking HTTP client for the guest's /json ------------- */

static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* One request to the browser's DevTools socket, Connection: close. Returns
 * the HTTP status with *body (malloc'd, NUL-terminated) or -errno with why. */
static int cdp_fetch(const char *socket_path, const char *method, const char *path, char **body,
                     size_t *body_len, char *why, size_t why_len)
{
    int64_t deadline = now_ms() + CDP_FETCH_TIMEOUT_MS;
    _cleanup_close_ int fd = unix_connect(socket_path);
    _cleanup_free_ char *req = NULL, *buf = NULL;
    size_t have = 0, cap = 0, limit = CDP_FETCH_MAX + CDP_FETCH_HEAD_MAX;
    int r;

    *body = NULL;
    *body_len = 0;
    if (fd < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
        r = fd < 0 ? fd : -errno;
        snprintf(why, why_len, "cannot connect to the browser: %s", strerror(-r));
        return r;
    }
    int rl = asprintf(&req,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
                      "Connection: close\r\nContent-Length: 0\r\n\r\n",
                      method, path);
    if (rl < 0) {
        snprintf(why, why_len, "out of memory");
        return -ENOMEM;
    }
    for (size_t off = 0; off < (size_t)rl;) {
        ssize_t n = send(fd, req + off, (size_t)rl - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            r = -errno;
            snprintf(why, why_len, "cannot talk to the browser: %s", strerror(errno));
            return r;
        }
        if ((r = wait_fd(fd, POLLOUT, deadline)) < 0) {
            snprintf(why, why_len, "the browser did not answer in time");
            return r;
        }
    }

    size_t head_len = 0, content_length = SIZE_MAX;
    int status = 0;
    for (;;) {
        if (head_len && content_length != SIZE_MAX && have >= head_len + content_length)
            break;
        if (have == cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            if (ncap > limit + 1)
                ncap = limit + 1;
            if (ncap <= have) {
                snprintf(why, why_len, "the browser's answer is larger than %u bytes",
                         CDP_FETCH_MAX);
                return -EFBIG;
            }
            char *n = realloc(buf, ncap + 1);
            if (!n) {
                snprintf(why, why_len, "out of memory");
                return -ENOMEM;
            }
            buf = n;
            cap = ncap;
        }
        ssize_t n = recv(fd, buf + have, cap - have, 0);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                r = -errno;
                snprintf(why, why_len, "cannot read from the browser: %s", strerror(errno));
                return r;
            }
            if ((r = wait_fd(fd, POLLIN, deadline)) < 0) {
                snprintf(why, why_len, "the browser did not answer in time");
                return r;
            }
            continue;
        }
        have += (size_t)n;
        buf[have] = '\0';
        if (!head_len) {
            char *end = memmem(buf, have, "\r\n\r\n", 4);
            if (!end) {
                if (have > CDP_FETCH_HEAD_MAX)
                    goto bad;
                continue;
            }
            head_len = (size_t)(end - buf) + 4;
            if (sscanf(buf, "HTTP/1.%*[01] %3d", &status) != 1 || status < 100)
                goto bad;
            for (char *line = strstr(buf, "\r\n") + 2; line < end;) {
                char *eol = strstr(line, "\r\n");
                if (strncasecmp(line, "Content-Length:", 15) == 0) {
                    char *e;
                    unsigned long long v = strtoull(line + 15, &e, 10);
                    if (v > CDP_FETCH_MAX) {
                        snprintf(why, why_len, "the browser's answer is larger than %u bytes",
                                 CDP_FETCH_MAX);
                        return -EFBIG;
                    }
                    content_length = (size_t)v;
                } else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
                    goto bad; /* Chromium's DevTools server never chunks */
                }
                line = eol + 2;
            }
        }
    }
    if (!head_len)
        goto bad;
    if (content_length == SIZE_MAX)
        content_length = have - head_len;
    if (have < head_len + content_length) {
        snprintf(why, why_len, "the browser's answer was cut short");
        return -EPIPE;
    }
    memmove(buf, buf + head_len, content_length);
    buf[content_length] = '\0';
    *body = TAKE_PTR(buf);
    *body_len = content_length;
    return status;
bad:
    snprintf(why, why_len, "the browser's answer is not HTTP the proxy understands");
    return -EPROTO;
}

/* ---- session resolution --------------------------------------------- */

static bool host_header_ok(const char *h)
{
    size_t n = h ? strlen(h) : 0;
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
            return false;
    }
    return true;
}

/* The gateway's own URL host ("127.0.0.1:8790"), from gw->url. */
static const char *gateway_hostport(const struct gateway *gw, bool *tls)
{
    const char *p = strstr(gw->url, "://");
    *tls = strncmp(gw->url, "https:", 6) == 0;
    return p ? p + 3 : gw->url;
}

static bool gateway_on_loopback(const struct gateway *gw)
{
    bool tls;
    const char *h = gateway_hostport(gw, &tls);
    return strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost", 9) == 0 || h[0] == '/';
}

/* ws(s)://HOST/cdp/ID/TOKEN for answers to a request that came with Host
 * host through the listener of cs (NULL: the main one). */
static void ws_base_for(struct gateway *gw, struct instance *sb, struct cdp_session *via,
                        const char *host, char *out, size_t len)
{
    bool tls = false;
    char fallback[96];
    const char *gw_host = gateway_hostport(gw, &tls);

    if (via) {
        tls = false; /* listeners are plain HTTP */
        snprintf(fallback, sizeof(fallback), "%s:%d", via->addr, via->port);
    } else {
        snprintf(fallback, sizeof(fallback), "%s", gw_host);
    }
    snprintf(out, len, "%s://%s/cdp/%s/%s", tls ? "wss" : "ws",
             host_header_ok(host) ? host : fallback, sb->id, browser_of(sb)->cdp_token);
}

/* The ready session a CDP request names, by its id and token, or by the
 * listener it came through (cs). */
static struct instance *cdp_resolve(struct gateway *gw, const char *id, const char *token,
                                    struct cdp_session *cs, struct ph_error *err)
{
    struct instance *sb = NULL;

    if (cs)
        sb = cs->sb && browser_of(cs->sb)
                 ? browser_resolve(gw->browsers, cs->id, browser_of(cs->sb)->cdp_token,
                                   BROWSER_CAP_CDP, NULL)
                 : NULL;
    else if (id && token)
        sb = browser_resolve(gw->browsers, id, token, BROWSER_CAP_CDP, NULL);
    if (!sb) {
        ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT, "unknown browser session or token");
        return NULL;
    }
    if (!sb->vm || !sb->vm->devtools_socket) {
        ph_error_set(err, PH_ERR_UNAVAILABLE, -EAGAIN, "the session's browser is not reachable");
        return NULL;
    }
    return sb;
}

/* ---- /json/... over HTTP --------------------------------------------- */

struct cdp_job {
    struct gateway *gw;   /* weak */
    struct instance *sb;  /* held (sandbox_hold) until done */
    struct http_req *req; /* the request to answer, or NULL */
    struct ws_link *link; /* held (ws_link_hold): a browser WebSocket waiting for its guid */
    char *socket;         /* owned: the VM's DevTools socket */
    char method[8];
    char *path;      /* owned: upstream path and query */
    char *check_url; /* owned: /json/new's URL for browser_check_cdp first, or NULL */
    bool rewrite;    /* rewrite the answer's URLs */
    char ws_base[512];
    /* results */
    int status; /* HTTP status, or -errno */
    char *body; /* owned */
    size_t body_len;
    char why[256];
    char guid[CDP_SEGMENT_MAX + 1];
    struct cdp_job *next; /* in cdp_session.waiting */
};

static void job_free(struct cdp_job *j)
{
    free(j->socket);
    free(j->path);
    free(j->check_url);
    free(j->body);
    free(j);
}

static void cdp_job_run(void *data)
{
    struct cdp_job *j = data;

    /* Here, not on the loop: the checks may run the policy's hook program. */
    if (j->check_url && browser_check_cdp(j->gw->browsers, j->sb, "Target.createTarget",
                                          j->check_url, j->why, sizeof(j->why)) < 0) {
        j->status = -EPERM;
        return;
    }
    j->status =
        cdp_fetch(j->socket, j->method, j->path, &j->body, &j->body_len, j->why, sizeof(j->why));
    if (j->status != 200)
        return;
    if (j->link) {
        if (cdp_browser_guid(j->body, j->body_len, j->guid, sizeof(j->guid)) < 0) {
            j->status = -EPROTO;
            snprintf(j->why, sizeof(j->why), "the browser did not say its WebSocket URL");
        }
    } else if (j->rewrite) {
        char *out = NULL;
        int r = cdp_rewrite_json(j->body, j->body_len, j->ws_base, &out);
        if (r < 0) {
            j->status = r;
            snprintf(j->why, sizeof(j->why), "%s",
                     r == -ENOMEM ? "out of memory" : "the browser's answer is not JSON");
            return;
        }
        free(j->body);
        j->body = out;
        j->body_len = strlen(out);
    }
}

static void job_start_waiting(struct cdp_session *cs);

/* Answers a job that will not run, and lets go of what it holds. */
static void cdp_job_fail(struct cdp_job *j, const struct ph_error *err)
{
    if (j->req)
        http_reply_error(j->req, err);
    if (j->link) {
        if (!ws_link_closing(j->link))
            ws_link_close(j->link, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, err->message);
        ws_link_release(j->link);
    }
    instance_release(j->sb);
    job_free(j);
}

static void cdp_job_done(void *data)
{
    struct cdp_job *j = data;

    if (j->req) {
        if (j->status == -EPERM)
            http_reply_errorf(j->req, PH_ERR_BLOCKED, "%s",
                              j->why[0] ? j->why : "blocked by policy");
        else if (j->status < 0)
            http_reply_errorf(j->req, j->status == -ETIMEDOUT ? PH_ERR_TIMEOUT : PH_ERR_TRANSPORT,
                              "%s", j->why);
        else
            /* Chromium's own errors (unknown target, ...) are plain text. */
            http_reply_data(j->req, j->status,
                            j->status == 200 ? "application/json; charset=UTF-8"
                                             : "text/plain; charset=UTF-8",
                            TAKE_PTR(j->body), j->body_len, NULL);
    }
    if (j->link) {
        if (ws_link_closing(j->link)) {
            /* the client left meanwhile */
        } else if (j->status != 200) {
            lwsl_notice("cdp %s: %s\n", j->sb->id, j->why);
            ws_link_close(j->link, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, j->why);
        } else {
            char path[CDP_SEGMENT_MAX + 32];
            snprintf(path, sizeof(path), "/devtools/browser/%s", j->guid);
            ws_link_connect_ws(j->link, j->socket, path);
        }
        ws_link_release(j->link);
    }
    struct cdp_session *cs = session_find(j->gw->cdp, j->sb);
    if (cs) {
        if (cs->fetches > 0)
            cs->fetches--;
        job_start_waiting(cs);
    }
    instance_release(j->sb);
    job_free(j);
}

static int job_start(struct cdp_job *j, struct cdp_session *cs, struct ph_error *err)
{
    int r = work_submit(fast_pool(j->gw), cdp_job_run, cdp_job_done, j);
    if (r < 0)
        return ph_error_set(err, r == -EAGAIN ? PH_ERR_LIMIT : PH_ERR_UNAVAILABLE, r,
                            "the gateway is too busy; try again");
    if (cs)
        cs->fetches++;
    return 0;
}

/* Takes the first waiting job off the session's queue, or NULL. */
static struct cdp_job *job_dequeue(struct cdp_session *cs)
{
    struct cdp_job *j = cs->waiting;
    if (!j)
        return NULL;
    if (!(cs->waiting = j->next))
        cs->waiting_tail = &cs->waiting;
    cs->n_waiting--;
    j->next = NULL;
    return j;
}

static void job_start_waiting(struct cdp_session *cs)
{
    struct ph_error err = {0};
    struct cdp_job *j;

    while (cs->fetches < CDP_MAX_FETCHES && (j = job_dequeue(cs)))
        if (job_start(j, cs, &err) < 0)
            cdp_job_fail(j, &err);
}

/* Runs the fetch on a worker, or queues it behind the session's others.
 * On success the job is taken; on failure the caller still owns it. */
static int cdp_job_submit(struct cdp_job *j, struct ph_error *err)
{
    struct cdp_session *cs = session_find(j->gw->cdp, j->sb);

    if (cs && cs->fetches >= CDP_MAX_FETCHES && cs->n_waiting >= CDP_MAX_WAITING)
        return ph_error_set(err, PH_ERR_LIMIT, -EAGAIN,
                            "too many requests to the session's browser at once");
    instance_hold(j->sb);
    if (j->link)
        ws_link_hold(j->link);
    if (cs && cs->fetches >= CDP_MAX_FETCHES) {
        *cs->waiting_tail = j;
        cs->waiting_tail = &j->next;
        cs->n_waiting++;
        return 0;
    }
    int r = job_start(j, cs, err);
    if (r < 0) {
        if (j->link)
            ws_link_release(j->link);
        instance_release(j->sb);
    }
    return r;
}

/* /json/new's query is a URL; Chromium decodes it once, lws already did. */
static char *encode_query_url(const char *url)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(url);
    char *out = malloc(3 * n + 1), *o = out;

    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '%' || *p == '#' || *p == '"' || *p == '<' ||
            *p == '>' || *p == '\\' || *p == '^' || *p == '`' || *p == '{' || *p == '|' ||
            *p == '}') {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
}

static void cdp_http_json(struct http_req *req, void *data)
{
    const struct cdp_route *rt = data;
    struct gateway *gw = rt->cp->gw;
    struct ph_error err = {0};
    struct cdp_session *via = http_req_listener(req);
    struct instance *sb;
    struct cdp_job *j;
    char query[4096];
    const char *target = NULL;

    if (rt->root_form && !via) {
        http_reply_errorf(req, PH_ERR_NOT_FOUND, "no such endpoint: %.200s", req->path);
        return;
    }
    sb = rt->root_form ? cdp_resolve(gw, NULL, NULL, via, &err)
                       : cdp_resolve(gw, req->params[0], req->params[1], NULL, &err);
    if (!sb) {
        http_reply_error(req, &err);
        return;
    }
    if (rt->kind == CDP_JSON_ACTIVATE || rt->kind == CDP_JSON_CLOSE)
        target = req->params[req->n_params - 1];

    if (!(j = calloc(1, sizeof(*j)))) {
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    j->gw = gw;
    j->sb = sb;
    j->req = req;
    j->socket = strdup(sb->vm->devtools_socket);
    snprintf(j->method, sizeof(j->method), "GET");
    j->rewrite =
        rt->kind == CDP_JSON_VERSION || rt->kind == CDP_JSON_LIST || rt->kind == CDP_JSON_NEW;
    ws_base_for(gw, sb, via, http_header(req, "host"), j->ws_base, sizeof(j->ws_base));

    int r = 0;
    switch (rt->kind) {
    case CDP_JSON_VERSION:
        j->path = strdup("/json/version");
        break;
    case CDP_JSON_LIST:
        j->path = strdup("/json/list");
        break;
    case CDP_JSON_PROTOCOL:
        j->path = strdup("/json/protocol");
        break;
    case CDP_JSON_ACTIVATE:
        r = asprintf(&j->path, "/json/activate/%s", target);
        break;
    case CDP_JSON_CLOSE:
        r = asprintf(&j->path, "/json/close/%s", target);
        break;
    case CDP_JSON_NEW: {
        if (http_query_string(req, query, sizeof(query)) < 0) {
            job_free(j);
            http_reply_errorf(req, PH_ERR_TOO_LARGE, "URL too long");
            return;
        }
        /* Chromium opens about:blank for an empty /json/new. */
        j->check_url = strdup(query[0] ? query : "about:blank");
        _cleanup_free_ char *enc = encode_query_url(query);
        /* Current Chromium refuses GET here; clients may still use it. */
        snprintf(j->method, sizeof(j->method), "PUT");
        r = enc && j->check_url ? asprintf(&j->path, "/json/new%s%s", enc[0] ? "?" : "", enc) : -1;
        break;
    }
    }
    if (r < 0 || !j->path || !j->socket) {
        if (r < 0)
            j->path = NULL;
        job_free(j);
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    if (cdp_job_submit(j, &err) < 0) {
        job_free(j);
        http_reply_error(req, &err);
    }
}

/* ---- WebSockets ------------------------------------------------------ */

static int cdp_from_client(struct ws_link *l, struct ws_msg **pm);

static const struct ws_link_ops cdp_link_ops = {
    .name = "cdp",
    .from_client = cdp_from_client,
};

/* Playwright's connectOverCDP points downloads at a folder on the client's
 * machine, which does not exist in the guest. Downloads go to the session's
 * download folder (listed by the API) instead, or are denied outright when
 * the session does not allow them. Rewrites m in place; -1 when the message
 * cannot be rewritten. */
/* May replace *pm with a longer message. */
static int cdp_rewrite_downloads(struct instance *sb, struct ws_msg **pm)
{
    struct ws_msg *m = *pm;
    json_error_t je;
    json_t *msg = json_loadb((const char *)m->data, m->len, JSON_REJECT_DUPLICATES, &je);
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");
    int r = 0;

    if (!method || !json_is_object(params) ||
        (strcmp(method, "Browser.setDownloadBehavior") != 0 &&
         strcmp(method, "Page.setDownloadBehavior") != 0)) {
        json_decref(msg);
        return 0;
    }
    const char *behavior = json_string_value(json_object_get(params, "behavior"));
    if (!browser_of(sb)->allow_downloads) {
        json_object_set_new(params, "behavior", json_string("deny"));
        json_object_del(params, "downloadPath");
    } else if (behavior && strcmp(behavior, "default") != 0 && strcmp(behavior, "deny") != 0) {
        json_object_set_new(params, "downloadPath", json_string(BROWSER_GUEST_DOWNLOAD_DIR));
    }
    char *text = json_dumps(msg, JSON_COMPACT);
    size_t n = text ? strlen(text) : 0;
    if (!text) {
        r = -1;
    } else if (n <= m->cap) {
        memcpy(m->data, text, n);
        m->len = n;
    } else {
        /* The folder named may be longer than what the client sent. */
        struct ws_msg *grown = ws_msg_new(text, n, false);
        if (grown) {
            ws_msg_free(m);
            *pm = grown;
        } else {
            r = -1;
        }
    }
    free(text);
    json_decref(msg);
    return r;
}

/* Whether m may set where downloads go (cdp_rewrite_downloads). */
static bool asks_downloads(const struct ws_msg *m)
{
    return memmem(m->data, m->len, "setDownloadBehavior", 19) != NULL;
}

/* Decides on one client message: 0 to forward *pm (perhaps rewritten or
 * replaced), 1 to answer with *reply instead, -1 to close the link. On a
 * worker: a navigation's checks may run the policy's hook program, and a
 * message with a \u escape is parsed whole (up to CDP_MAX_MESSAGE, once
 * per nesting level). What it reads of the session is fixed for the
 * session's life; the hooks run on workers for exec as well. */
static int cdp_screen(struct gateway *gw, struct instance *sb, struct ws_msg **pm, char **reply)
{
    struct cdp_call call;
    char reason[256] = "";

    if (asks_downloads(*pm) && cdp_rewrite_downloads(sb, pm) < 0)
        return -1;
    struct ws_msg *m = *pm;
    int r = cdp_inspect((const char *)m->data, m->len, &call);
    if (r == CDP_PASS ||
        (r == CDP_NAVIGATES &&
         browser_check_cdp(gw->browsers, sb, call.method, call.url, reason, sizeof(reason)) == 0)) {
        cdp_call_done(&call);
        return 0;
    }
    if (r < 0)
        snprintf(reason, sizeof(reason),
                 "refused by the gateway: a navigation in a message that is not valid, "
                 "unambiguous JSON");
    *reply = cdp_error_reply(call.id, call.session_id, CDP_ERROR_CODE,
                             reason[0] ? reason : "blocked by policy");
    cdp_call_done(&call);
    return *reply ? 1 : -1;
}

struct cdp_screen_job {
    struct gateway *gw;   /* weak */
    struct instance *sb;  /* held */
    struct ws_link *link; /* held; deferred (WS_DEFERRED) until the job is done */
    struct ws_msg *m;     /* owned */
    char *reply;          /* owned: the answer, when the message is refused */
    int verdict;          /* cdp_screen's */
};

static void screen_run(void *data)
{
    struct cdp_screen_job *j = data;
    j->verdict = cdp_screen(j->gw, j->sb, &j->m, &j->reply);
}

static void screen_done(void *data)
{
    struct cdp_screen_job *j = data;
    struct ws_link *l = j->link;

    if (ws_link_closing(l)) {
        /* the client or the session went away meanwhile */
    } else if (j->verdict < 0) {
        ws_link_close(l, LWS_CLOSE_STATUS_POLICY_VIOLATION, "refused by the gateway");
    } else if (j->verdict > 0) {
        ws_link_send_client(l, j->reply, strlen(j->reply), false);
        ws_link_resume(l, NULL);
    } else {
        ws_link_resume(l, TAKE_PTR(j->m));
    }
    ws_msg_free(j->m);
    free(j->reply);
    ws_link_release(l);
    instance_release(j->sb);
    free(j);
}

/* Most messages pass on the loop after a plain scan; the few that need a
 * decision get it on a worker, and the client's next messages wait for
 * it (ws.h), so their order holds. */
static int cdp_from_client(struct ws_link *l, struct ws_msg **pm)
{
    struct instance *sb = ws_link_owner(l);
    struct cdp_proxy *cp = ws_link_data(l);
    struct ws_msg *m = *pm;
    struct cdp_screen_job *j;

    /* Chromium would take a binary message as CBOR, which this policy
     * does not read. */
    if (m->binary)
        return -1;
    if (!asks_downloads(m) && !cdp_may_navigate((const char *)m->data, m->len))
        return 0;
    if (!(j = calloc(1, sizeof(*j))))
        return -1;
    *j = (struct cdp_screen_job){.gw = cp->gw, .sb = sb, .link = l, .m = m};
    instance_hold(sb);
    ws_link_hold(l);
    if (work_submit(fast_pool(cp->gw), screen_run, screen_done, j) < 0) {
        ws_link_close(l, WS_CLOSE_TRY_AGAIN, "the gateway is busy; try again");
        ws_link_release(l);
        instance_release(sb);
        free(j);
        return -1;
    }
    return WS_DEFERRED;
}

/* Parses and resolves a CDP WebSocket path; the same for check and start. */
static struct instance *cdp_ws_resolve(struct gateway *gw, struct lws *wsi, const char *path,
                                       char *upstream, size_t upstream_len, struct ph_error *err)
{
    char id[CDP_SEGMENT_MAX + 1], token[CDP_SEGMENT_MAX + 1];
    bool root_form = strncmp(path, "/devtools/", 10) == 0;
    struct cdp_session *via = root_form ? http_wsi_listener(wsi) : NULL;
    struct instance *sb;

    if (cdp_ws_path_parse(path, root_form, id, sizeof(id), token, sizeof(token), upstream,
                          upstream_len) < 0 ||
        (root_form && !via)) {
        ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT, "no WebSocket endpoint here");
        return NULL;
    }
    if (!(sb = cdp_resolve(gw, id, token, via, err)))
        return NULL;
    if (ws_links_count(gw->ws, sb, &cdp_link_ops) >= CDP_MAX_CONNECTIONS) {
        ph_error_set(err, PH_ERR_LIMIT, -EMFILE, "at most %d CDP connections per session",
                     CDP_MAX_CONNECTIONS);
        return NULL;
    }
    return sb;
}

static int cdp_ws_check(void *data, struct lws *wsi, const char *path, struct ph_error *err)
{
    struct gateway *gw = ((struct cdp_proxy *)data)->gw;
    char upstream[CDP_SEGMENT_MAX + 32];
    return cdp_ws_resolve(gw, wsi, path, upstream, sizeof(upstream), err) ? 0 : -ENOENT;
}

static int cdp_ws_start(void *data, struct lws *wsi, const char *path, struct ph_error *err)
{
    struct cdp_proxy *cp = data;
    struct gateway *gw = cp->gw;
    char upstream[CDP_SEGMENT_MAX + 32];
    struct instance *sb = cdp_ws_resolve(gw, wsi, path, upstream, sizeof(upstream), err);
    struct ws_link *l;

    if (!sb)
        return -ENOENT;
    if (!(l = ws_link_new(wsi, &cdp_link_ops, sb, cp, CDP_MAX_MESSAGE)))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    ws_link_set_budget(l, (size_t)gw->cdp_session_max_mib << 20,
                       "the session's CDP connections hold too much (cdp_session_max_mib)");
    if (upstream[0]) {
        ws_link_connect_ws(l, sb->vm->devtools_socket, upstream);
        return 0;
    }
    /* /devtools/browser without its guid: Chromium insists on it, so ask
     * it first (not cached: a restarted browser has a new one). */
    struct cdp_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->path = strdup("/json/version"))) {
        free(j);
        ws_link_close(l, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return 0;
    }
    j->gw = gw;
    j->sb = sb;
    j->link = l;
    j->socket = strdup(sb->vm->devtools_socket);
    snprintf(j->method, sizeof(j->method), "GET");
    if (!j->socket)
        ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if (!j->socket || cdp_job_submit(j, err) < 0) {
        job_free(j);
        ws_link_close(l, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, err->message);
    }
    return 0;
}

/* ---- sessions -------------------------------------------------------- */

/* The listener port in the cdp_base of an earlier gateway run, so that a
 * re-attached session keeps its cdp_url when the port is still free. */
static bool previous_listener(const char *cdp_base, int *port)
{
    unsigned p;
    int n = 0;

    if (sscanf(cdp_base, "http://127.0.0.1:%5u/cdp/%n", &p, &n) != 1 || !n || p < 1024 || p > 65535)
        return false;
    *port = (int)p;
    return true;
}

/* Observer: a session begins (new or restored): its listener and cdp_base. */
static int cdp_session_open(struct instance_observer *o, struct instance *sb, struct ph_error *err)
{
    struct cdp_proxy *cp = container_of(o, struct cdp_proxy, observer);
    struct gateway *gw = cp->gw;
    struct browser_session *b = browser_of(sb);
    struct cdp_session *cs;
    int r;

    if (!b || session_find(cp, sb))
        return 0;
    if (!(cs = calloc(1, sizeof(*cs))))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    cs->sb = sb;
    cs->waiting_tail = &cs->waiting;
    snprintf(cs->id, sizeof(cs->id), "%s", sb->id);

    if (gateway_on_loopback(gw)) {
        /* 127.0.0.1 and a port of the session's own, so that tools given
         * only a port (SmolVM's cdp_url, agent-browser --cdp PORT) reach
         * it. No guest can (restricted networks); of local users, only
         * the gateway's own (HTTP_LISTENER_SAME_UID). */
        snprintf(cs->addr, sizeof(cs->addr), "127.0.0.1");
        cs->port = 0;
        r = -EADDRINUSE;
        if (previous_listener(b->cdp_base, &cs->port))
            r = http_listener_open(gw->http, cs->addr, cs->port, HTTP_LISTENER_SAME_UID, cs,
                                   &cs->listener, err);
        if (r < 0) /* whatever went wrong with the old port, a fresh one will do */
            r = http_listener_open(gw->http, cs->addr, 0, HTTP_LISTENER_SAME_UID, cs, &cs->listener,
                                   err);
        if (r < 0) {
            free(cs);
            return r;
        }
        cs->port = http_listener_port(cs->listener);
        snprintf(b->cdp_base, sizeof(b->cdp_base), "http://%s:%d/cdp/%s/%s", cs->addr, cs->port,
                 sb->id, b->cdp_token);
    } else {
        snprintf(b->cdp_base, sizeof(b->cdp_base), "%s/cdp/%s/%s", gw->url, sb->id, b->cdp_token);
    }
    cs->next = cp->sessions;
    cp->sessions = cs;
    ph_error_clear(err);
    return 0;
}

/* Observer: the session ends: every CDP WebSocket of it closes (clients
 * get 1001 "session ended"), and so does its listener. */
static void cdp_session_close(struct instance_observer *o, struct instance *sb)
{
    struct cdp_proxy *cp = container_of(o, struct cdp_proxy, observer);

    /* Close frames first: the listener's close gives what is still on it
     * only a short grace. */
    ws_links_close(cp->gw->ws, sb, &cdp_link_ops, LWS_CLOSE_STATUS_GOINGAWAY, "session ended");
    for (struct cdp_session **p = &cp->sessions; *p; p = &(*p)->next)
        if ((*p)->sb == sb) {
            struct cdp_session *cs = *p;
            struct ph_error err = {0};
            *p = cs->next;
            http_listener_close(cs->listener);
            ph_error_set(&err, PH_ERR_NOT_FOUND, -ENOENT, "the session ended");
            for (struct cdp_job *j; (j = job_dequeue(cs));)
                cdp_job_fail(j, &err);
            free(cs);
            return;
        }
}

/* ---- registration ---------------------------------------------------- */

static const struct {
    enum http_method method;
    const char *suffix;
    enum cdp_json_kind kind;
} cdp_routes[CDP_N_ROUTES] = {
    {HTTP_GET, "/json/version", CDP_JSON_VERSION},
    {HTTP_GET, "/json/list", CDP_JSON_LIST},
    {HTTP_GET, "/json", CDP_JSON_LIST},
    {HTTP_GET, "/json/new", CDP_JSON_NEW},
    {HTTP_PUT, "/json/new", CDP_JSON_NEW},
    {HTTP_GET, "/json/protocol", CDP_JSON_PROTOCOL},
    {HTTP_GET, "/json/activate/{target}", CDP_JSON_ACTIVATE},
    {HTTP_GET, "/json/close/{target}", CDP_JSON_CLOSE},
};

int cdp_proxy_new(struct gateway *gw, struct cdp_proxy **out)
{
    struct cdp_proxy *cp = calloc(1, sizeof(*cp));
    char pattern[128];

    if (!cp)
        return -ENOMEM;
    cp->gw = gw;
    for (size_t i = 0; i < CDP_N_ROUTES; i++) {
        struct cdp_route *token_form = &cp->routes[2 * i], *root_form = &cp->routes[2 * i + 1];
        *token_form = (struct cdp_route){.cp = cp, .kind = cdp_routes[i].kind};
        *root_form = (struct cdp_route){.cp = cp, .kind = cdp_routes[i].kind, .root_form = true};
        snprintf(pattern, sizeof(pattern), "/cdp/{id}/{token}%s", cdp_routes[i].suffix);
        http_route(gw->http, cdp_routes[i].method, pattern, HTTP_ROUTE_PUBLIC, 0, cdp_http_json,
                   token_form);
        http_route(gw->http, cdp_routes[i].method, cdp_routes[i].suffix, HTTP_ROUTE_PUBLIC, 0,
                   cdp_http_json, root_form);
    }
    ws_endpoint_register(
        gw->ws, &(struct ws_endpoint){
                    .prefix = "/cdp/", .check = cdp_ws_check, .start = cdp_ws_start, .data = cp});
    ws_endpoint_register(gw->ws, &(struct ws_endpoint){.prefix = "/devtools/",
                                                       .check = cdp_ws_check,
                                                       .start = cdp_ws_start,
                                                       .data = cp});
    cp->observer =
        (struct instance_observer){.setup = cdp_session_open, .ending = cdp_session_close};
    instances_observe(gw->instances, &cp->observer);
    *out = cp;
    return 0;
}

void cdp_proxy_free(struct cdp_proxy *cp)
{
    if (!cp)
        return;
    /* The server is gone: its listeners went with it. */
    while (cp->sessions) {
        struct cdp_session *cs = cp->sessions;
        cp->sessions = cs->next;
        free(cs);
    }
    free(cp);
}
