#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_private.h"
#include "util.h"
#include "work.h"

/* Request headers handlers can ask for; everything is copied out of lws's
 * header table when the request starts, because a deferred reply outlives
 * it. */
static const struct {
    const char *name;
    int token;          /* lws token, or -1 for a header lws does not know */
    const char *custom; /* lws's name for an unknown header: lowercase + ':' */
} kept_headers[] = {
    {"host", WSI_TOKEN_HOST, NULL},
    {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE, NULL},
    {"content-length", WSI_TOKEN_HTTP_CONTENT_LENGTH, NULL},
    {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION, NULL},
    {"range", WSI_TOKEN_HTTP_RANGE, NULL},
    {"if-range", WSI_TOKEN_HTTP_IF_RANGE, NULL},
    {"if-none-match", WSI_TOKEN_HTTP_IF_NONE_MATCH, NULL},
    {"accept", WSI_TOKEN_HTTP_ACCEPT, NULL},
    {"origin", WSI_TOKEN_ORIGIN, NULL},
    {"referer", WSI_TOKEN_HTTP_REFERER, NULL},
    {"user-agent", WSI_TOKEN_HTTP_USER_AGENT, NULL},
    {"x-forwarded-for", WSI_TOKEN_X_FORWARDED_FOR, NULL},
    {"transfer-encoding", WSI_TOKEN_HTTP_TRANSFER_ENCODING, NULL},
    {"expect", WSI_TOKEN_HTTP_EXPECT, NULL},
    {"x-request-id", -1, "x-request-id:"},
    {"x-porthole-actor", -1, "x-porthole-actor:"},
    {"mcp-session-id", -1, "mcp-session-id:"},
    {"mcp-protocol-version", -1, "mcp-protocol-version:"},
};
_Static_assert(ARRAY_SIZE(kept_headers) == N_KEPT_HEADERS, "N_KEPT_HEADERS");
struct http_req_full *http_req_full(struct http_req *req)
{
    return (struct http_req_full *)((char *)req - offsetof(struct http_req_full, pub));
}

static const char *const method_names[HTTP_N_METHODS] = {
    [HTTP_GET] = "GET",       [HTTP_POST] = "POST",   [HTTP_PUT] = "PUT",
    [HTTP_DELETE] = "DELETE", [HTTP_PATCH] = "PATCH",
};

const char *http_method_name(enum http_method m)
{
    return (unsigned)m < HTTP_N_METHODS ? method_names[m] : "?";
}

/* ---- requests ------------------------------------------------------- */

static void resp_reset(struct http_resp *r)
{
    free(r->extra);
    free(r->data);
    if (r->fd >= 0)
        close(r->fd);
    for (struct http_chunk *c = r->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    *r = (struct http_resp){.fd = -1};
}

static void req_free(struct http_req_full *r)
{
    if (!r)
        return;
    resp_reset(&r->resp);
    free(r->pub.body);
    free(r->query);
    for (size_t i = 0; i < N_KEPT_HEADERS; i++)
        free(r->headers[i]);
    free(r);
}

static bool on_loop_thread(const struct http_server *s)
{
    return s->loop_started && pthread_equal(pthread_self(), s->loop_thread);
}

/* The handler is done with r (its reply is attached, or its stream ended)
 * and no kick for it is pending: nothing but the loop refers to r any more,
 * and the server may free it. */
static bool req_released(struct http_req_full *r)
{
    pthread_mutex_lock(&r->server->handoff_lock);
    bool released = (!r->resp.streaming || r->resp.stream_end) && !r->in_handoff;
    pthread_mutex_unlock(&r->server->handoff_lock);
    return released;
}

/* Loop thread: the reply is attached (or a streamed one has more), send it,
 * or drop it with req when the client is gone. */
static void req_kick(struct http_req_full *r)
{
    if (!r->wsi) {
        if (r->resp.streaming) {
            /* The client left before the stream began: writes stop here. */
            pthread_mutex_lock(&r->server->handoff_lock);
            r->resp.gone = true;
            pthread_mutex_unlock(&r->server->handoff_lock);
        }
        /* A kick still pending frees it instead. */
        if (req_released(r))
            req_free(r);
        return;
    }
    r->state = r->resp.streaming ? REQ_STREAMING : REQ_SENDING;
    lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, HTTP_SEND_TIMEOUT_S);
    lws_callback_on_writable(r->wsi);
}

/* Hands r to the loop; stream_end marks the handler's last touch of r. */
static void req_reply_ready(struct http_req_full *r, bool stream_end)
{
    struct http_server *s = r->server;
    bool on_loop = on_loop_thread(s);

    pthread_mutex_lock(&s->handoff_lock);
    /* The end and its kick are one step: the loop frees a stream that has
     * ended with no kick pending, so a kick pushed after the end was marked
     * could land on a freed request, or between the loop's check and its
     * free. Past this unlock the handler does not touch r. */
    if (stream_end)
        r->resp.stream_end = true;
    /* A streamed reply is kicked once however many writes came meanwhile. */
    bool queue = !on_loop && !r->in_handoff;
    if (queue) {
        r->in_handoff = true;
        r->next_handoff = s->handoff;
        s->handoff = r;
    }
    pthread_mutex_unlock(&s->handoff_lock);
    if (on_loop)
        req_kick(r);
    else if (queue)
        lws_cancel_service(s->ctx);
}

static void handoff_dispatch(struct http_server *s)
{
    pthread_mutex_lock(&s->handoff_lock);
    struct http_req_full *list = s->handoff;
    s->handoff = NULL;
    pthread_mutex_unlock(&s->handoff_lock);

    while (list) {
        struct http_req_full *next = list->next_handoff;
        pthread_mutex_lock(&s->handoff_lock);
        list->next_handoff = NULL;
        list->in_handoff = false;
        pthread_mutex_unlock(&s->handoff_lock);
        req_kick(list);
        list = next;
    }
}

/* ---- streamed replies ---------------------------------------------- */

void http_stream_begin(struct http_req *req, int status, const char *content_type)
{
    struct http_req_full *r = http_req_full(req);

    if (r->replied) {
        lwsl_err("http: second reply to %s %s ignored\n", http_method_name(r->pub.method),
                 r->pub.path);
        return;
    }
    r->replied = true;
    resp_reset(&r->resp);
    r->resp.status = status;
    snprintf(r->resp.content_type, sizeof(r->resp.content_type), "%s",
             content_type ? content_type : "application/octet-stream");
    r->resp.streaming = true;
    r->resp.chunks_tail = &r->resp.chunks;
    /* No Content-Length: the connection ends with the stream. */
    r->resp.close_after = true;
    req_reply_ready(r, false);
}

/* Queues one framed chunk ("0" with no data is the last); false when the
 * client is gone or memory is out. */
static bool stream_queue(struct http_req_full *r, const void *data, size_t len, bool last)
{
    struct http_server *s = r->server;
    struct http_chunk *c = NULL;

    if (len > 0 || last) {
        if (!(c = malloc(sizeof(*c) + len + 16)))
            return false;
        c->next = NULL;
        int h = snprintf(c->data, 16, "%zx\r\n", len);
        if (len)
            memcpy(c->data + h, data, len);
        memcpy(c->data + h + len, "\r\n", 2);
        c->len = (size_t)h + len + 2;
    }
    pthread_mutex_lock(&s->handoff_lock);
    bool ok = !r->resp.gone;
    if (ok && c) {
        *r->resp.chunks_tail = c;
        r->resp.chunks_tail = &c->next;
        r->resp.queued += c->len;
        c = NULL;
    }
    pthread_mutex_unlock(&s->handoff_lock);
    free(c);
    return ok;
}

bool http_stream_write(struct http_req *req, const void *data, size_t len)
{
    struct http_req_full *r = http_req_full(req);
    const char *p = data;
    bool ok = true;

    if (!r->resp.streaming)
        return false;
    /* Chunks fit the server's write buffer with their framing. */
    while (ok && len > 0) {
        size_t n = len > HTTP_CHUNK - 32 ? HTTP_CHUNK - 32 : len;
        ok = stream_queue(r, p, n, false);
        p += n;
        len -= n;
    }
    req_reply_ready(r, false);
    return ok;
}

bool http_stream_gone(struct http_req *req)
{
    struct http_req_full *r = http_req_full(req);
    if (!r->resp.streaming)
        return false;
    pthread_mutex_lock(&r->server->handoff_lock);
    bool gone = r->resp.gone;
    pthread_mutex_unlock(&r->server->handoff_lock);
    return gone;
}

void http_stream_end(struct http_req *req)
{
    struct http_req_full *r = http_req_full(req);

    if (!r->resp.streaming)
        return;
    stream_queue(r, NULL, 0, true);
    req_reply_ready(r, true);
}

/* The connection of r is gone: free r unless its handler still holds it
 * (its reply, or its stream's end, frees it then). */
static void req_orphan(struct http_req_full *r)
{
    if (r->state == REQ_STREAMING) {
        pthread_mutex_lock(&r->server->handoff_lock);
        r->resp.gone = true;
        pthread_mutex_unlock(&r->server->handoff_lock);
        r->wsi = NULL;
        if (req_released(r))
            req_free(r);
        return;
    }
    if (r->state == REQ_HANDLING)
        r->wsi = NULL;
    else
        req_free(r);
}

/* Attaches a response; takes ownership of data and fd in every case. */
static void req_set_reply(struct http_req_full *r, int status, const char *content_type, char *data,
                          size_t len, const char *extra, int fd, uint64_t file_off,
                          uint64_t file_len)
{
    if (r->replied) {
        /* A second reply is a handler bug; the first one stands. */
        lwsl_err("http: second reply to %s %s ignored\n", http_method_name(r->pub.method),
                 r->pub.path);
        free(data);
        if (fd >= 0)
            close(fd);
        return;
    }
    r->replied = true;
    bool close_after = r->resp.close_after;
    resp_reset(&r->resp);
    r->resp.close_after = close_after;
    r->resp.status = status;
    snprintf(r->resp.content_type, sizeof(r->resp.content_type), "%s",
             content_type ? content_type : "");
    r->resp.data = data;
    r->resp.len = data ? len : 0;
    r->resp.fd = fd;
    r->resp.file_off = file_off;
    r->resp.file_len = fd >= 0 ? file_len : 0;
    if (extra && *extra) {
        r->resp.extra = strndup(extra, HTTP_MAX_EXTRA_HEADERS);
        /* Without its extra headers (Content-Range, ...) the reply would
         * lie; without memory there is nothing better to send. */
        if (!r->resp.extra) {
            resp_reset(&r->resp);
            r->resp.status = 500;
            r->resp.close_after = true;
        }
    }
    req_reply_ready(r, false);
}

char *http_error_body(const char *code, const char *message, size_t *len)
{
    /* Every error reply says something, even for an error nobody filled. */
    if (!message || !message[0])
        message = "internal error";
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s)
        return NULL;
    *len = strlen(s);
    return s;
}

char *http_error_response(int status, const char *reason, const char *code, const char *message,
                          const char *extra, size_t *len)
{
    size_t body_len = 0;
    _cleanup_free_ char *body = http_error_body(code, message, &body_len);
    char *out = NULL;

    if (!body)
        return NULL;
    int n = asprintf(&out,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n%s",
                     status, reason, body_len, extra ? extra : "", body);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return out;
}

static void reply_error_code(struct http_req_full *r, int status, const char *code,
                             const char *message, const char *extra)
{
    size_t len = 0;
    char *body = http_error_body(code, message, &len);
    req_set_reply(r, status, "application/json", body, len, extra, -1, 0, 0);
}

void http_reply_json(struct http_req *req, int status, json_t *body)
{
    char *s = json_dumps(body ? body : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!s) {
        reply_error_code(http_req_full(req), 500, ph_error_code(PH_ERR_INTERNAL), "out of memory",
                         NULL);
        return;
    }
    req_set_reply(http_req_full(req), status, "application/json", s, strlen(s), NULL, -1, 0, 0);
}

void http_reply_error(struct http_req *req, const struct ph_error *err)
{
    enum ph_error_kind kind = err ? err->kind : PH_ERR_INTERNAL;
    const char *extra = kind == PH_ERR_UNAUTHORIZED ? "WWW-Authenticate: Bearer\r\n" : NULL;
    reply_error_code(http_req_full(req), ph_error_http_status(kind), ph_error_code(kind),
                     err ? err->message : NULL, extra);
}

void http_reply_errorf(struct http_req *req, enum ph_error_kind kind, const char *fmt, ...)
{
    struct ph_error err = {.kind = kind};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err.message, sizeof(err.message), fmt, ap);
    va_end(ap);
    http_reply_error(req, &err);
}

void http_reply_data(struct http_req *req, int status, const char *content_type, char *data,
                     size_t len, const char *extra_headers)
{
    req_set_reply(http_req_full(req), status, content_type, data, len, extra_headers, -1, 0, 0);
}

void http_reply_file(struct http_req *req, const char *path, const char *content_type)
{
    struct http_req_full *r = http_req_full(req);
    char extra[256];
    uint64_t start = 0, len;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            http_reply_errorf(req, PH_ERR_NOT_FOUND, "file not found");
        else
            http_reply_errorf(req, PH_ERR_INTERNAL, "cannot open file: %s", strerror(errno));
        return;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        http_reply_errorf(req, PH_ERR_NOT_FOUND, "not a regular file");
        return;
    }
    len = (uint64_t)st.st_size;

    int rr = http_parse_range(http_header(req, "range"), (uint64_t)st.st_size, &start, &len);
    /* If-Range with a validator we never issue cannot match: serve it all. */
    if (rr != 0 && http_header(req, "if-range"))
        rr = 0, start = 0, len = (uint64_t)st.st_size;
    if (rr < 0) {
        close(fd);
        snprintf(extra, sizeof(extra), "Content-Range: bytes */%llu\r\n",
                 (unsigned long long)st.st_size);
        reply_error_code(r, 416, "range_not_satisfiable", "requested range not satisfiable", extra);
        return;
    }
    if (rr > 0)
        snprintf(extra, sizeof(extra),
                 "Accept-Ranges: bytes\r\nContent-Range: bytes %llu-%llu/%llu\r\n",
                 (unsigned long long)start, (unsigned long long)(start + len - 1),
                 (unsigned long long)st.st_size);
    else
        snprintf(extra, sizeof(extra), "Accept-Ranges: bytes\r\n");
    req_set_reply(r, rr > 0 ? 206 : 200, content_type ? content_type : "application/octet-stream",
                  NULL, 0, extra, fd, start, len);
}

const char *http_query(struct http_req *req, const char *name)
{
    struct http_req_full *r = http_req_full(req);
    return r->query ? http_query_find(r->query, r->query_len, name) : NULL;
}

const char *http_header(struct http_req *req, const char *name)
{
    struct http_req_full *r = http_req_full(req);
    for (size_t i = 0; i < N_KEPT_HEADERS; i++)
        if (strcasecmp(kept_headers[i].name, name) == 0)
            return r->headers[i];
    return NULL;
}

int http_query_string(struct http_req *req, char *out, size_t len)
{
    struct http_req_full *r = http_req_full(req);
    size_t used = 0;

    if (len == 0)
        return -ENOSPC;
    out[0] = '\0';
    for (size_t off = 0; r->query && off < r->query_len;) {
        const char *item = r->query + off;
        size_t il = strnlen(item, r->query_len - off);
        if (used + (used ? 1 : 0) + il + 1 > len)
            return -ENOSPC;
        if (used)
            out[used++] = '&';
        memcpy(out + used, item, il);
        used += il;
        out[used] = '\0';
        off += il + 1;
    }
    return (int)used;
}

bool http_req_disconnected(const struct http_req *req)
{
    const struct http_req_full *r =
        (const struct http_req_full *)((const char *)req - offsetof(struct http_req_full, pub));
    return r->wsi == NULL;
}

json_t *http_json_body(struct http_req *req, struct ph_error *err)
{
    json_error_t jerr;
    size_t i = 0;

    while (i < req->body_len && isspace((unsigned char)req->body[i]))
        i++;
    if (i == req->body_len) {
        json_t *empty = json_object();
        if (!empty)
            ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        return empty;
    }
    json_t *v = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        ph_error_set(err, PH_ERR_INVALID, -EINVAL, "invalid JSON: line %d: %s", jerr.line,
                     jerr.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        ph_error_set(err, PH_ERR_INVALID, -EINVAL, "body must be a JSON object");
        return NULL;
    }
    return v;
}

/* ---- the lws side --------------------------------------------------- */

static const struct {
    enum http_method method;
    enum lws_token_indexes token;
} method_tokens[] = {
    {HTTP_GET, WSI_TOKEN_GET_URI},     {HTTP_POST, WSI_TOKEN_POST_URI},
    {HTTP_PUT, WSI_TOKEN_PUT_URI},     {HTTP_DELETE, WSI_TOKEN_DELETE_URI},
    {HTTP_PATCH, WSI_TOKEN_PATCH_URI},
};

static int req_method(struct lws *wsi, enum http_method *m, int *uri_token_len)
{
    for (size_t i = 0; i < ARRAY_SIZE(method_tokens); i++) {
        int n = lws_hdr_total_length(wsi, method_tokens[i].token);
        if (n > 0) {
            *m = method_tokens[i].method;
            *uri_token_len = n;
            return 0;
        }
    }
    return -1; /* OPTIONS; CONNECT never gets here, lws makes it raw */
}

/* Whether the request has header t: lws gives one that is there but
 * empty the length of an absent one, and only its first fragment tells
 * them apart. */
static bool hdr_present(struct lws *wsi, enum lws_token_indexes t)
{
    char c;
    return lws_hdr_total_length(wsi, t) > 0 || lws_hdr_copy_fragment(wsi, &c, 1, t, 0) == 0;
}

static int req_copy_headers(struct http_req_full *r, struct lws *wsi)
{
    for (size_t i = 0; i < N_KEPT_HEADERS; i++) {
        bool known = kept_headers[i].token >= 0;
        enum lws_token_indexes t = (enum lws_token_indexes)kept_headers[i].token;
        int n = known ? lws_hdr_total_length(wsi, t)
                      : lws_hdr_custom_length(wsi, kept_headers[i].custom,
                                              (int)strlen(kept_headers[i].custom));
        /* "Content-Length:" is no length, rather than no header. */
        if (n < 0 || (n == 0 && known && !hdr_present(wsi, t)))
            continue;
        if (n > HTTP_MAX_HEADER_VALUE)
            return -E2BIG;
        char *v = malloc((size_t)n + 1);
        if (!v)
            return -ENOMEM;
        int c = kept_headers[i].token >= 0
                    ? lws_hdr_copy(wsi, v, n + 1, (enum lws_token_indexes)kept_headers[i].token)
                    : lws_hdr_custom_copy(wsi, v, n + 1, kept_headers[i].custom,
                                          (int)strlen(kept_headers[i].custom));
        if (c < 0) {
            free(v);
            continue;
        }
        v[c] = '\0';
        r->headers[i] = v;
        /* lws keeps a NUL byte inside a value, where whatever reads it
         * would stop ("Content-Length: 2\0junk" read as 2). */
        if (strlen(v) != (size_t)c)
            return -EINVAL;
    }
    return 0;
}

/* "Content-Length : 5" (a space before the colon) is an unknown header
 * to lws, so a body so framed would be read as the next request; RFC 9112
 * (5.1) asks for a 400 for any field name followed by whitespace. lws
 * keeps unknown names as sent: the framing headers are looked up with
 * the usual gaps. */
static bool framing_header_spaced(struct lws *wsi)
{
    static const char *const names[] = {"content-length", "transfer-encoding"};
    static const char *const gaps[] = {" :", "\t:", "  :", " \t:", "\t\t:"};
    char name[32];

    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        for (size_t g = 0; g < ARRAY_SIZE(gaps); g++) {
            int n = snprintf(name, sizeof(name), "%s%s", names[i], gaps[g]);
            if (lws_hdr_custom_length(wsi, name, n) >= 0)
                return true;
        }
    return false;
}

/* Whether the request line ended in a version this server speaks. lws
 * serves any other line (no version, "HTTP/2.0", "FOO/1.1", one cut at
 * an encoded CR or LF in its target) as HTTP/1.0. */
static bool req_version_ok(struct lws *wsi)
{
    char version[16];

    /* h2 streams have no request line. */
    if (lws_get_network_wsi(wsi) != wsi)
        return true;
    return lws_hdr_copy(wsi, version, sizeof(version), WSI_TOKEN_HTTP) > 0 &&
           http_version_ok(version);
}

/* The query items lws decoded, NUL-separated, into buf (HTTP_MAX_QUERY
 * bytes): *used bytes. -E2BIG past the bound, -EINVAL on a decoded NUL. */
static int query_copy(struct lws *wsi, char *buf, size_t *used)
{
    char item[HTTP_MAX_QUERY];

    *used = 0;
    for (int idx = 0; idx < HTTP_MAX_QUERY_ITEMS; idx++) {
        int n = lws_hdr_copy_fragment(wsi, item, sizeof(item), WSI_TOKEN_HTTP_URI_ARGS, idx);
        if (n < 0) {
            if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, idx) >= (int)sizeof(item))
                return -E2BIG;
            return 0;
        }
        if (n == 0)
            continue;
        if ((size_t)n != strlen(item))
            return -EINVAL; /* a decoded NUL */
        if (*used + (size_t)n + 1 > HTTP_MAX_QUERY)
            return -E2BIG;
        memcpy(buf + *used, item, (size_t)n + 1);
        *used += (size_t)n + 1;
    }
    return lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, HTTP_MAX_QUERY_ITEMS) > 0 ? -E2BIG
                                                                                           : 0;
}

int http_wsi_query(struct lws *wsi, const char *name, char *out, size_t len)
{
    char buf[HTTP_MAX_QUERY];
    size_t used;
    int r = query_copy(wsi, buf, &used);
    const char *v = r < 0 ? NULL : http_query_find(buf, used, name);

    if (r < 0)
        return r;
    if (!v)
        return -ENOENT;
    size_t n = strlen(v);
    if (n + 1 > len)
        return -E2BIG;
    memcpy(out, v, n + 1);
    return (int)n;
}

static int req_copy_query(struct http_req_full *r, struct lws *wsi)
{
    char buf[HTTP_MAX_QUERY];
    size_t used;
    int rc = query_copy(wsi, buf, &used);

    if (rc < 0 || used == 0)
        return rc;
    if (!(r->query = malloc(used)))
        return -ENOMEM;
    memcpy(r->query, buf, used);
    r->query_len = used;
    return 0;
}

static const char *static_mime(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".wasm", "application/wasm"},
        {".txt", "text/plain; charset=utf-8"},
        {".mp4", "video/mp4"},
    };
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < ARRAY_SIZE(types); i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

static void serve_static(struct http_server *s, struct http_req_full *r)
{
    const char *rel = r->pub.path + strlen("/static/");
    char full_path[4096];

    if (!http_static_path_ok(rel) || snprintf(full_path, sizeof(full_path), "%s/%s", s->static_dir,
                                              rel) >= (int)sizeof(full_path)) {
        http_reply_errorf(&r->pub, PH_ERR_NOT_FOUND, "no such file");
        return;
    }
    http_reply_file(&r->pub, full_path, static_mime(rel));
}

/* A bearer token: the admin token, or one the auth hook knows. Fills the
 * actor ("admin/NAME" with on_behalf, the hook's name, or "token"). */
static bool token_authorize(struct http_server *s, const char *token, const char *on_behalf,
                            char *actor, size_t actor_len)
{
    if (!token)
        return false;
    if (s->admin_token && secret_equal(s->admin_token, token)) {
        http_admin_actor(on_behalf, actor, actor_len);
        return true;
    }
    if (s->auth) {
        char name[sizeof(((struct http_req *)0)->actor)] = "";
        if (s->auth(s->auth_data, token, name, sizeof(name)) == 0) {
            snprintf(actor, actor_len, "%s", name[0] ? name : "token");
            return true;
        }
    }
    return false;
}

bool http_token_valid(struct http_server *s, const char *token)
{
    char unused[sizeof(((struct http_req *)0)->actor)];
    return token_authorize(s, token, NULL, unused, sizeof(unused));
}

/* Whether the request carries a valid bearer token. The actor is filled
 * for routes that need one; a public route's handler sees "". */
static bool req_authorize(struct http_server *s, struct http_req_full *r, bool fill_actor)
{
    char unused[sizeof(r->pub.actor)];
    const char *authz = http_header(&r->pub, "authorization");

    return authz &&
           token_authorize(s, http_bearer_token(authz), http_header(&r->pub, "x-porthole-actor"),
                           fill_actor ? r->pub.actor : unused, sizeof(unused));
}

int http_wsi_authorize(struct lws *wsi, char *actor, size_t actor_len)
{
    struct http_server *s = http_server_from_wsi(wsi);
    char auth[512], on_behalf[128];
    static const char actor_hdr[] = "x-porthole-actor:";

    if (!s || lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) >= (int)sizeof(auth) ||
        lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION) <= 0)
        return -EACCES;
    if (lws_hdr_custom_length(wsi, actor_hdr, (int)strlen(actor_hdr)) >= (int)sizeof(on_behalf) ||
        lws_hdr_custom_copy(wsi, on_behalf, sizeof(on_behalf), actor_hdr, (int)strlen(actor_hdr)) <=
            0)
        on_behalf[0] = '\0';
    return token_authorize(s, http_bearer_token(auth), on_behalf[0] ? on_behalf : NULL, actor,
                           actor_len)
               ? 0
               : -EACCES;
}

/* Rejects a request before its handler: the body (if any) is never read,
 * so the connection closes after the reply. */
static void req_reject(struct http_req_full *r, enum ph_error_kind kind, const char *extra,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void req_reject(struct http_req_full *r, enum ph_error_kind kind, const char *extra,
                       const char *fmt, ...)
{
    char msg[sizeof(((struct ph_error *)0)->message)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r->body_expected > 0)
        r->resp.close_after = true;
    r->state = REQ_SENDING;
    if (kind == PH_ERR_UNAUTHORIZED)
        extra = "WWW-Authenticate: Bearer\r\n";
    reply_error_code(r, ph_error_http_status(kind), ph_error_code(kind), msg, extra);
}

static void req_dispatch(struct http_req_full *r)
{
    r->state = REQ_HANDLING;
    /* lws's own timeout would cut a request whose reply waits for long
     * work (a command may run an hour); the handler's work is bounded by
     * its own timeouts, this is the safety net. */
    lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, r->server->reply_timeout_s);
    r->route->fn(&r->pub, r->route->data);
}

/* Lets a client that sent "Expect: 100-continue" send its body now rather
 * than after its own timeout (curl waits a second). */
static void send_continue(struct lws *wsi, struct http_server *s)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";

    /* h2 streams have no interim responses through this path. */
    if (lws_get_network_wsi(wsi) != wsi)
        return;
    memcpy(s->scratch + LWS_PRE, msg, sizeof(msg) - 1);
    lws_write(wsi, s->scratch + LWS_PRE, sizeof(msg) - 1, LWS_WRITE_HTTP);
}

/* Finds the route for the request; on failure replies 404 or 405. */
static const struct http_route_entry *req_route(struct http_server *s, struct http_req_full *r,
                                                bool method_known)
{
    char store[HTTP_MAX_PATH];
    const char *params[HTTP_MAX_PARAMS];
    size_t n_params;
    bool methods[HTTP_N_METHODS] = {false};
    bool path_known = false;

    for (size_t i = 0; i < s->n_routes; i++) {
        const struct http_route_entry *e = &s->routes[i];
        if (!http_route_match(e->pattern, r->pub.path, store, sizeof(store), params, &n_params))
            continue;
        path_known = true;
        methods[e->method] = true;
        if (!method_known || e->method != r->pub.method)
            continue;
        memcpy(r->capture, store, sizeof(store));
        for (size_t k = 0; k < n_params; k++)
            r->pub.params[k] = r->capture + (params[k] - store);
        r->pub.n_params = n_params;
        return e;
    }
    if (!path_known) {
        req_reject(r, PH_ERR_NOT_FOUND, NULL, "no such endpoint: %.200s", r->pub.path);
        return NULL;
    }

    char allow[128] = "Allow: ";
    for (int m = 0; m < HTTP_N_METHODS; m++) {
        if (!methods[m])
            continue;
        if (allow[7] != '\0')
            strcat(allow, ", ");
        strcat(allow, method_names[m]);
    }
    strcat(allow, "\r\n");
    if (r->body_expected > 0)
        r->resp.close_after = true;
    reply_error_code(r, 405, "method_not_allowed", "method not allowed for this endpoint", allow);
    return NULL;
}

/* LWS_CALLBACK_HTTP: headers are in; route, authorize, bound the body. */
static int on_request(struct http_server *s, struct lws *wsi, struct http_conn *conn,
                      const char *uri, size_t uri_len)
{
    struct http_req_full *r;
    int uri_token_len = 0;

    if (conn->req) {
        /* lws starts the next transaction only after the previous one
         * completed; this is defensive. */
        req_orphan(conn->req);
        conn->req = NULL;
    }
    r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    r->server = s;
    r->wsi = wsi;
    r->resp.fd = -1;
    r->state = REQ_RECEIVING;
    r->started_ms = now_ms();
    conn->req = r;

    bool method_known = req_method(wsi, &r->pub.method, &uri_token_len) == 0;
    if (!method_known && (uri_token_len = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI)) > 0) {
        method_known = true;
        r->pub.method = HTTP_GET;
        r->head_only = true;
    }
    if (lws_get_peer_simple(lws_get_network_wsi(wsi), r->pub.remote, sizeof(r->pub.remote)) ==
            NULL ||
        !r->pub.remote[0])
        snprintf(r->pub.remote, sizeof(r->pub.remote), "unix");

    int hr = req_copy_headers(r, wsi);
    if (hr == -ENOMEM)
        return -1;
    /* A valid token counts for the connection on any route: it keeps its
     * slot from then on (http_conn.c). */
    struct ph_error cerr = {0};
    if (http_conn_request_begin(s, wsi, hr == 0 && req_authorize(s, r, false), &cerr) < 0) {
        r->resp.close_after = true;
        req_reject(r, cerr.kind, NULL, "%s", cerr.message);
        return 0;
    }

    /* Each of these leaves the framing of what follows unknown: the
     * connection closes after the reply. */
    const char *why = NULL;
    if (hr == -EINVAL)
        why = "a request header holds a NUL byte";
    else if (hr < 0)
        why = "request header too large";
    else if (!req_version_ok(wsi))
        why = "malformed request line: it must end in HTTP/1.1";
    else if (framing_header_spaced(wsi))
        why = "whitespace between a header's name and its colon";
    if (why) {
        r->resp.close_after = true;
        req_reject(r, hr < 0 && hr != -EINVAL ? PH_ERR_TOO_LARGE : PH_ERR_INVALID, NULL, "%s", why);
        return 0;
    }

    /* Whether a body follows decides whether the connection survives an
     * early error reply, so work it out first. */
    const char *cl = http_header(&r->pub, "content-length");
    uint64_t content_length = 0;
    bool cl_bad = false;
    if (cl) {
        const char *p = cl;
        cl_bad = !http_parse_u64(&p, &content_length) || *p != '\0';
    }
    r->body_expected = (size_t)(content_length > SIZE_MAX / 2 ? SIZE_MAX / 2 : content_length);
    if (cl_bad || http_header(&r->pub, "transfer-encoding")) {
        r->body_expected = 1; /* unknown amount of body follows */
        req_reject(r, PH_ERR_INVALID, NULL, "%s",
                   cl_bad ? "invalid Content-Length"
                          : "chunked request bodies are not supported; send Content-Length");
        return 0;
    }
    /* RFC 9112 (6.3) gives a request without Content-Length or
     * Transfer-Encoding no body, but lws 4.1 reads whatever follows a
     * POST, PUT or PATCH without one as its body: a next request on the
     * connection would be lost in it. */
    if (!cl && method_known &&
        (r->pub.method == HTTP_POST || r->pub.method == HTTP_PUT || r->pub.method == HTTP_PATCH))
        r->resp.close_after = true;

    /* uri is decoded by lws; a shorter string than lws's token means a
     * decoded NUL cut it. */
    if (uri_len >= HTTP_MAX_PATH) {
        req_reject(r, PH_ERR_TOO_LARGE, NULL, "request path longer than %d bytes",
                   HTTP_MAX_PATH - 1);
        return 0;
    }
    memcpy(r->pub.path, uri, uri_len);
    r->pub.path[uri_len] = '\0';
    bool path_ok = strlen(r->pub.path) == uri_len && r->pub.path[0] == '/' &&
                   (!method_known || (size_t)uri_token_len == uri_len);
    /* Control bytes (%01, %0A, ...) name nothing here and would end up in
     * logs. */
    for (size_t i = 0; path_ok && i < uri_len; i++)
        path_ok = (unsigned char)r->pub.path[i] >= 0x20 && r->pub.path[i] != 0x7f;
    if (!path_ok) {
        snprintf(r->pub.path, sizeof(r->pub.path), "(invalid)");
        req_reject(r, PH_ERR_INVALID, NULL, "invalid request path");
        return 0;
    }
    int qr = req_copy_query(r, wsi);
    if (qr < 0) {
        req_reject(r, qr == -E2BIG ? PH_ERR_TOO_LARGE : PH_ERR_INVALID, NULL,
                   qr == -E2BIG ? "query string too large" : "invalid query string");
        return 0;
    }

    if (s->static_dir && method_known && r->pub.method == HTTP_GET &&
        strncmp(r->pub.path, "/static/", 8) == 0) {
        if (r->body_expected > 0)
            r->resp.close_after = true;
        r->state = REQ_HANDLING;
        serve_static(s, r);
        return 0;
    }

    r->route = req_route(s, r, method_known);
    if (!r->route)
        return 0;

    if (!(r->route->flags & HTTP_ROUTE_PUBLIC) && !req_authorize(s, r, true)) {
        req_reject(r, PH_ERR_UNAUTHORIZED, NULL, "missing or invalid bearer token");
        return 0;
    }

    size_t limit = r->route->max_body                        ? r->route->max_body
                   : (r->route->flags & HTTP_ROUTE_BIG_BODY) ? s->max_big_body
                                                             : s->max_body;
    if (content_length > limit) {
        req_reject(r, PH_ERR_TOO_LARGE, NULL, "request body larger than %zu bytes", limit);
        return 0;
    }
    r->pub.body = malloc(r->body_expected + 1);
    if (!r->pub.body)
        return -1;
    r->pub.body[0] = '\0';
    if (r->body_expected == 0) {
        req_dispatch(r);
        return 0;
    }
    const char *expect = http_header(&r->pub, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0)
        send_continue(wsi, s);
    return 0;
}

static int on_body(struct http_conn *conn, const void *in, size_t len)
{
    struct http_req_full *r = conn->req;

    /* After an early reject the body is ignored; the connection closes. */
    if (!r || r->state != REQ_RECEIVING || !r->pub.body)
        return 0;
    if (len > r->body_expected - r->pub.body_len) {
        req_reject(r, PH_ERR_TOO_LARGE, NULL, "request body longer than its Content-Length");
        return 0;
    }
    memcpy(r->pub.body + r->pub.body_len, in, len);
    r->pub.body_len += len;
    r->pub.body[r->pub.body_len] = '\0';
    return 0;
}

static int on_body_done(struct http_conn *conn)
{
    struct http_req_full *r = conn->req;

    if (!r || r->state != REQ_RECEIVING || !r->pub.body)
        return 0;
    if (r->pub.body_len != r->body_expected) {
        r->resp.close_after = true;
        req_reject(r, PH_ERR_INVALID, NULL, "request body shorter than its Content-Length");
        return 0;
    }
    req_dispatch(r);
    return 0;
}

/* Appends "Name: value\r\n" lines through lws so h1 and h2 both work. */
static int add_extra_headers(struct lws *wsi, const char *extra, unsigned char **p,
                             unsigned char *end)
{
    while (extra && *extra) {
        const char *eol = strstr(extra, "\r\n");
        const char *colon = memchr(extra, ':', eol ? (size_t)(eol - extra) : strlen(extra));
        if (!eol || !colon)
            return -1;
        char name[64];
        size_t nl = (size_t)(colon - extra);
        if (nl == 0 || nl + 2 > sizeof(name))
            return -1;
        for (size_t i = 0; i < nl; i++)
            name[i] = (char)tolower((unsigned char)extra[i]);
        name[nl] = ':';
        name[nl + 1] = '\0';
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v,
                                        (int)(eol - v), p, end))
            return -1;
        extra = eol + 2;
    }
    return 0;
}

/* Completes the transaction: returns what the WRITEABLE callback returns. */
static int req_finish(struct lws *wsi, struct http_conn *conn)
{
    struct http_req_full *r = conn->req;
    bool close_after = r->resp.close_after;

    lwsl_info("http: %s %s %d %lldms %s %s\n", http_method_name(r->pub.method), r->pub.path,
              r->resp.status, (long long)(now_ms() - r->started_ms), r->pub.remote,
              r->pub.actor[0] ? r->pub.actor : "-");
    conn->req = NULL;
    http_conn_request_end(r->server, wsi);
    req_free(r);
    if (close_after)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* One queued chunk per WRITEABLE; the stream's end once all are out. */
static int stream_writeable(struct http_server *s, struct lws *wsi, struct http_conn *conn)
{
    struct http_req_full *r = conn->req;
    struct http_resp *o = &r->resp;

    if (!o->headers_sent) {
        unsigned char *start = s->scratch + LWS_PRE, *p = start;
        unsigned char *end = s->scratch + LWS_PRE + HTTP_HEADER_BUF - 1;
        if (lws_add_http_header_status(wsi, (unsigned int)o->status, &p, end) ||
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                         (const unsigned char *)o->content_type,
                                         (int)strlen(o->content_type), &p, end) ||
            add_extra_headers(wsi,
                              "Transfer-Encoding: chunked\r\nCache-Control: no-store\r\n"
                              "Connection: close\r\nX-Content-Type-Options: nosniff\r\n",
                              &p, end) < 0 ||
            lws_finalize_http_header(wsi, &p, end) ||
            lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) != (int)(p - start))
            return -1;
        o->headers_sent = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    pthread_mutex_lock(&s->handoff_lock);
    struct http_chunk *c = o->chunks;
    if (c) {
        o->chunks = c->next;
        if (!o->chunks)
            o->chunks_tail = &o->chunks;
        o->queued -= c->len;
    }
    bool more = o->chunks != NULL, ended = o->stream_end && !r->in_handoff;
    pthread_mutex_unlock(&s->handoff_lock);
    if (!c) {
        if (o->final_sent && ended)
            return req_finish(wsi, conn);
        /* Nothing yet: wait for the handler's next kick, however long a
         * quiet command takes (its own timeout bounds it). */
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        return 0;
    }
    bool last = c->len == 5 && memcmp(c->data, "0\r\n\r\n", 5) == 0;
    memcpy(s->scratch + LWS_PRE, c->data, c->len);
    int n =
        lws_write(wsi, s->scratch + LWS_PRE, c->len, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    size_t len = c->len;
    free(c);
    if (n != (int)len)
        return -1;
    if (last) {
        o->final_sent = true;
        if (ended)
            return req_finish(wsi, conn);
        /* A kick still pending would find req freed: it finishes instead. */
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, HTTP_SEND_TIMEOUT_S);
        return 0;
    }
    /* A client that stops reading is cut after the send timeout; a quiet
     * command with everything sent holds the connection without one. */
    if (more || lws_partial_buffered(wsi))
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, HTTP_SEND_TIMEOUT_S);
    else
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    if (more)
        lws_callback_on_writable(wsi);
    return 0;
}

static int on_writeable(struct http_server *s, struct lws *wsi, struct http_conn *conn)
{
    struct http_req_full *r = conn->req;
    struct http_resp *o;

    if (r && r->state == REQ_STREAMING)
        return stream_writeable(s, wsi, conn);
    if (!r || r->state != REQ_SENDING)
        return 0;
    o = &r->resp;

    if (!o->headers_sent) {
        unsigned char *start = s->scratch + LWS_PRE, *p = start;
        unsigned char *end = s->scratch + LWS_PRE + HTTP_HEADER_BUF - 1;
        bool no_body = o->status == 204 || o->status == 304;
        uint64_t clen = o->fd >= 0 ? o->file_len : o->len;

        if (lws_add_http_header_status(wsi, (unsigned int)o->status, &p, end))
            return -1;
        if (!no_body && o->content_type[0] &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                         (const unsigned char *)o->content_type,
                                         (int)strlen(o->content_type), &p, end))
            return -1;
        if (!no_body && lws_add_http_header_content_length(wsi, clen, &p, end))
            return -1;
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                         (const unsigned char *)"no-store", 8, &p, end))
            return -1;
        if (add_extra_headers(wsi, o->extra, &p, end) < 0)
            return -1;
        if (o->close_after &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close",
                                         5, &p, end))
            return -1;
        if (lws_finalize_http_header(wsi, &p, end))
            return -1;
        bool last = no_body || clen == 0 || r->head_only;
        int flags = LWS_WRITE_HTTP_HEADERS | (last ? LWS_WRITE_H2_STREAM_END : 0);
        if (lws_write(wsi, start, (size_t)(p - start), (enum lws_write_protocol)flags) !=
            (int)(p - start))
            return -1;
        o->headers_sent = true;
        if (last)
            return req_finish(wsi, conn);
        /* One lws_write per WRITEABLE: lws may have buffered part of it. */
        lws_callback_on_writable(wsi);
        return 0;
    }

    unsigned char *buf = s->scratch + LWS_PRE;
    size_t n;
    bool last;
    if (o->fd >= 0) {
        uint64_t left = o->file_len - o->file_sent;
        size_t want = left > HTTP_CHUNK ? HTTP_CHUNK : (size_t)left;
        ssize_t got;
        do
            got = pread(o->fd, buf, want, (off_t)(o->file_off + o->file_sent));
        while (got < 0 && errno == EINTR);
        /* A file that shrank under us cannot honour the Content-Length we
         * sent: cut the connection rather than send a short body. */
        if (got <= 0)
            return -1;
        n = (size_t)got;
        o->file_sent += n;
        last = o->file_sent == o->file_len;
    } else {
        n = o->len - o->off > HTTP_CHUNK ? HTTP_CHUNK : o->len - o->off;
        memcpy(buf, o->data + o->off, n);
        o->off += n;
        last = o->off == o->len;
    }
    if (lws_write(wsi, buf, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    if (last)
        return req_finish(wsi, conn);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, HTTP_SEND_TIMEOUT_S);
    lws_callback_on_writable(wsi);
    return 0;
}

static void on_closed(struct http_conn *conn)
{
    struct http_req_full *r = conn->req;

    if (!r)
        return;
    conn->req = NULL;
    req_orphan(r);
}

/* Writes a complete small response from inside a callback (no WRITEABLE
 * round trip), as lws's own lws_return_http_status does. */
static int write_now(struct http_server *s, struct lws *wsi, int status, const char *code,
                     const char *message, const char *extra)
{
    size_t len = 0;
    char *body = http_error_body(code, message, &len);
    unsigned char *start = s->scratch + LWS_PRE, *p = start;
    unsigned char *end = s->scratch + LWS_PRE + HTTP_CHUNK - 1;
    int r = -1;

    if (!body || len > HTTP_CHUNK - HTTP_HEADER_BUF)
        goto out;
    if (lws_add_http_header_status(wsi, (unsigned int)status, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)"application/json", 16, &p, end) ||
        lws_add_http_header_content_length(wsi, len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        add_extra_headers(wsi, extra, &p, end) < 0 || lws_finalize_http_header(wsi, &p, end))
        goto out;
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) != (int)(p - start))
        goto out;
    memcpy(start, body, len);
    if (lws_write(wsi, start, len, LWS_WRITE_HTTP_FINAL) != (int)len)
        goto out;
    r = 0;
out:
    free(body);
    return r;
}

/* A header of an upgrade request into buf (len bytes), or NULL when it is
 * absent or longer. */
static const char *hdr_or_null(struct lws *wsi, enum lws_token_indexes t, char *buf, size_t len)
{
    if (!hdr_present(wsi, t) || lws_hdr_copy(wsi, buf, (int)len, t) < 0)
        return NULL;
    return buf;
}

/* A CONNECT request: lws has made the connection a raw tunnel on this
 * protocol (the vhost's first); the gateway is no proxy. The refusal goes
 * out as raw bytes, and the connection closes. */
static int refuse_connect(struct http_server *s, struct lws *wsi)
{
    size_t len = 0;
    _cleanup_free_ char *resp = http_error_response(
        405, "Method Not Allowed", "method_not_allowed", "CONNECT is not served: this is no proxy",
        "Allow: GET, HEAD, POST, PUT, DELETE, PATCH\r\n", &len);

    if (resp && len <= HTTP_CHUNK) {
        memcpy(s->scratch + LWS_PRE, resp, len);
        lws_write(wsi, s->scratch + LWS_PRE, len, LWS_WRITE_RAW);
    }
    return -1;
}

/* Answers an upgrade that goes no further; what the CONFIRM_UPGRADE
 * callback returns then (> 0: the response is written, the transaction
 * over). */
static int upgrade_refuse(struct http_server *s, struct lws *wsi, int status, const char *code,
                          const char *message, const char *extra)
{
    http_conn_request_end(s, wsi);
    return write_now(s, wsi, status, code, message, extra) < 0 ? -1 : 1;
}

/* lws asks whichever protocol the connection is bound to at the time: ours
 * after an HTTP transaction on it, else the vhost's default protocol, whose
 * callback is wrapped for this. */
static int on_confirm_upgrade(struct http_server *s, struct lws *wsi, const char *upgrade)
{
    const char *invalid = ph_error_code(PH_ERR_INVALID);
    struct ph_error err = {0};
    char path[HTTP_MAX_PATH];
    int n;

    /* h2c: lws's HTTP/2 needs flow-control-aware writes this server does
     * not do (large bodies stall), and no real client needs cleartext h2. */
    if (!upgrade || strcasecmp(upgrade, "websocket") != 0)
        return upgrade_refuse(
            s, wsi, 400, invalid,
            "protocol upgrades other than WebSocket are not supported; use HTTP/1.1", NULL);
    n = lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
    if (n <= 0 || (size_t)n != strlen(path))
        return upgrade_refuse(s, wsi, 400, invalid, "invalid request path", NULL);
    /* lws itself upgrades any Sec-WebSocket-Version (as 13), and closes
     * without a word on a missing key: the handshake is checked first. */
    char hv[16], host[256], conn[256], key[64], wv[16];
    int hr = http_ws_handshake_check(hdr_or_null(wsi, WSI_TOKEN_HTTP, hv, sizeof(hv)),
                                     hdr_or_null(wsi, WSI_TOKEN_HOST, host, sizeof(host)),
                                     hdr_or_null(wsi, WSI_TOKEN_CONNECTION, conn, sizeof(conn)),
                                     hdr_or_null(wsi, WSI_TOKEN_KEY, key, sizeof(key)),
                                     hdr_or_null(wsi, WSI_TOKEN_VERSION, wv, sizeof(wv)), &err);
    if (hr == -EPROTONOSUPPORT)
        return upgrade_refuse(s, wsi, 426, "upgrade_required", err.message,
                              "Sec-WebSocket-Version: 13\r\n");
    if (hr < 0)
        return upgrade_refuse(s, wsi, 400, invalid, err.message, NULL);
    /* Without a default protocol, lws would bind a subprotocol-less
     * upgrade to the HTTP protocol. */
    if (!s->ws_upgrade ||
        (!s->ws_default_protocol && lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) <= 0)) {
        ph_error_set(&err, PH_ERR_NOT_FOUND, -ENOENT, "no WebSocket endpoint here");
    } else if (s->ws_upgrade(s->ws_data, wsi, path, &err) == 0 &&
               /* Each endpoint checks its token or capability. */
               http_conn_authenticated(s, wsi, &err) == 0) {
        return 0;
    } else if (err.kind == PH_ERR_NONE) {
        ph_error_set(&err, PH_ERR_NOT_FOUND, -ENOENT, "no WebSocket endpoint here");
    }
    return upgrade_refuse(s, wsi, ph_error_http_status(err.kind), ph_error_code(err.kind),
                          err.message, NULL);
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    struct http_server *s = http_server_from_wsi(wsi);
    struct http_conn *conn = user;

    if (!s)
        return lws_callback_http_dummy(wsi, reason, user, in, len);

    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        /* in is the accepted socket; lws closes it when we refuse. */
        if (!http_conn_admit(s, (int)(intptr_t)in, NULL))
            return 1;
        s->accepting = true;
        return 0;
    case LWS_CALLBACK_WSI_CREATE:
        if (s->accepting) {
            s->accepting = false;
            http_conn_track(s, wsi, NULL);
        }
        return 0;
    case LWS_CALLBACK_WSI_DESTROY: {
        http_conn_untrack(s, wsi);
        /* lws 4.1 tells only the vhost's first protocol (this one) that a
         * wsi is freed; the protocol it is bound to may hold a pointer to
         * it (a proxy's upstream), so it hears it too. */
        const struct lws_protocols *p = lws_get_protocol(wsi);
        if (p && p->callback && p->callback != http_callback)
            p->callback(wsi, reason, NULL, NULL, 0);
        return 0;
    }

    case LWS_CALLBACK_RAW_RX_FILE: {
        struct http_listener *l = lws_get_opaque_user_data(wsi);
        if (l)
            http_listener_accept(s, l);
        return 0;
    }
    case LWS_CALLBACK_RAW_CLOSE_FILE: {
        struct http_listener *l = lws_get_opaque_user_data(wsi);
        if (l) {
            l->accept_wsi = NULL;
            l->fd = -1;
        }
        return 0;
    }

    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        handoff_dispatch(s);
        for (int i = 0; i < WORK_LANES; i++)
            work_pool_dispatch(s->pools[i]);
        return 0;

    case LWS_CALLBACK_HTTP:
        if (!conn)
            return -1;
        return on_request(s, wsi, conn, in ? in : "", in ? len : 0);
    case LWS_CALLBACK_HTTP_BODY:
        return conn ? on_body(conn, in, len) : -1;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return conn ? on_body_done(conn) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return conn ? on_writeable(s, wsi, conn) : -1;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (conn)
            on_closed(conn);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return on_confirm_upgrade(s, wsi, in);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return 1; /* a client naming "http" as its subprotocol */

    /* Only a CONNECT request turns a connection raw on this protocol. */
    case LWS_CALLBACK_RAW_ADOPT:
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_RAW_RX:
        return 0; /* what a tunnel would have carried */
    case LWS_CALLBACK_RAW_WRITEABLE:
        return refuse_connect(s, wsi);

    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static int ws_default_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                               void *in, size_t len)
{
    struct http_server *s = http_server_from_wsi(wsi);

    if (!s || !s->ws_default_cb)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return on_confirm_upgrade(s, wsi, in);
    /* lws binds every new connection to the default protocol until its
     * first HTTP request is routed; these belong to the HTTP side. */
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        return 0;
    default:
        return s->ws_default_cb(wsi, reason, user, in, len);
    }
}

/* ---- server lifecycle ----------------------------------------------- */

struct http_server *http_server_from_wsi(struct lws *wsi)
{
    struct lws_context *ctx = wsi ? lws_get_context(wsi) : NULL;
    return ctx ? lws_context_user(ctx) : NULL;
}

int http_server_new(const struct http_server_opts *o, struct http_server **out,
                    struct ph_error *err)
{
    struct lws_context_creation_info info;
    struct http_server *s;
    size_t n_extra = 0;
    int r;

    *out = NULL;
    if ((o->tls_cert == NULL) != (o->tls_key == NULL))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "TLS needs both a certificate and a key");
    s = calloc(1, sizeof(*s));
    if (!s)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    pthread_mutex_init(&s->handoff_lock, NULL);
    /* First: http_server_free expects what it sets up. */
    if (http_conns_init(s, o) < 0)
        goto oom;
    s->tls = o->tls_cert != NULL;
    s->max_body = o->max_body ? o->max_body : HTTP_DEFAULT_MAX_BODY;
    s->max_big_body = o->max_big_body ? o->max_big_body : HTTP_DEFAULT_MAX_BIG_BODY;
    if (s->max_big_body < s->max_body)
        s->max_big_body = s->max_body;
    s->auth = o->auth;
    s->auth_data = o->auth_data;
    s->reply_timeout_s = o->reply_timeout_s > 0 ? o->reply_timeout_s : HTTP_DEFAULT_REPLY_TIMEOUT_S;
    s->ws_upgrade = o->ws_upgrade;
    s->ws_data = o->ws_data;
    s->scratch = malloc(LWS_PRE + HTTP_CHUNK);
    if (!s->scratch)
        goto oom;
    if (o->admin_token && *o->admin_token && !(s->admin_token = strdup(o->admin_token)))
        goto oom;
    if (o->static_dir && !(s->static_dir = strdup(o->static_dir)))
        goto oom;

    for (const struct lws_protocols *p = o->extra_protocols; p && p->name; p++)
        n_extra++;
    s->protocols = calloc(n_extra + 2, sizeof(*s->protocols));
    if (!s->protocols)
        goto oom;
    s->protocols[0] = (struct lws_protocols){
        .name = "http",
        .callback = http_callback,
        .per_session_data_size = sizeof(struct http_conn),
        .rx_buffer_size = HTTP_RX_BUF,
    };
    for (size_t i = 0; i < n_extra; i++) {
        s->protocols[1 + i] = o->extra_protocols[i];
        if (o->ws_default_protocol &&
            strcmp(o->extra_protocols[i].name, o->ws_default_protocol) == 0) {
            s->ws_default_cb = o->extra_protocols[i].callback;
            s->protocols[1 + i].callback = ws_default_callback;
        }
    }
    if (o->ws_default_protocol && !s->ws_default_cb) {
        http_server_free(s);
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "ws_default_protocol \"%s\" is not among extra_protocols",
                            o->ws_default_protocol);
    }

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6;
    if (o->tls_cert)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.user = s;
    info.max_http_header_data = HTTP_LWS_HEADER_DATA;
    /* A request waiting for its (possibly slow) reply keeps its header
     * table; one per allowed connection means nobody queues behind it,
     * closing ones included. */
    info.max_http_header_pool = (unsigned short)(s->limits.room > 65535 ? 65535 : s->limits.room);
    info.pt_serv_buf_size = HTTP_RX_BUF;
    info.timeout_secs = 30;
    info.keepalive_timeout = 60;
    s->ctx = lws_create_context(&info);
    if (!s->ctx) {
        http_server_free(s);
        return ph_error_set(err, PH_ERR_INTERNAL, -EIO, "cannot create the libwebsockets context");
    }

    memset(&info, 0, sizeof(info));
    info.vhost_name = "porthole";
    info.protocols = s->protocols;
    info.port = o->port;
    const char *addr = o->listen_addr && *o->listen_addr ? o->listen_addr : "127.0.0.1";
    info.iface = addr;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    if (addr[0] == '/') {
        info.options |= LWS_SERVER_OPTION_UNIX_SOCK;
    } else if (strchr(addr, ':')) {
        http_server_free(s);
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "IPv6 listen addresses are not supported");
    }
    if (o->tls_cert) {
        info.ssl_cert_filepath = o->tls_cert;
        info.ssl_private_key_filepath = o->tls_key;
        info.alpn = "http/1.1"; /* no h2 over TLS either, see on_confirm_upgrade */
        /* lws enables TLS per vhost only with this option on the vhost too. */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    }
    info.max_http_header_data = HTTP_LWS_HEADER_DATA;
    info.keepalive_timeout = 60;
    info.timeout_secs = 30;
    info.timeout_secs_ah_idle = HTTP_HEAD_TIMEOUT_S;
    if (o->ws_default_protocol) {
        if (!(s->ws_default_protocol = strdup(o->ws_default_protocol)))
            goto oom;
        s->pvo_default = (struct lws_protocol_vhost_options){.name = "default", .value = "1"};
        s->pvo = (struct lws_protocol_vhost_options){
            .options = &s->pvo_default, .name = s->ws_default_protocol, .value = ""};
        info.pvo = &s->pvo;
    }
    s->vhost = lws_create_vhost(s->ctx, &info);
    if (!s->vhost) {
        r = ph_error_set(err, PH_ERR_UNAVAILABLE, -EADDRINUSE, "cannot listen on %s port %d", addr,
                         o->port);
        http_server_free(s);
        return r;
    }

    /* The API is for the local user only; lws creates the socket 0755. */
    if (addr[0] == '/' && chmod(addr, 0600) < 0) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -errno, "cannot restrict %s: %s", addr,
                         strerror(errno));
        http_server_free(s);
        return r;
    }

    s->pools[WORK_LANE_CONTROL] = work_pool_new(s->ctx, o->n_threads, o->max_queued);
    s->pools[WORK_LANE_EXEC] = work_pool_new(s->ctx, WORK_EXEC_THREADS, o->max_queued);
    s->pools[WORK_LANE_FAST] = work_pool_new(s->ctx, WORK_FAST_THREADS, o->max_queued);
    s->pool = s->pools[WORK_LANE_CONTROL];
    for (int i = 0; i < WORK_LANES; i++)
        if (!s->pools[i])
            goto oom;
    *out = s;
    return 0;

oom:
    http_server_free(s);
    return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
}

int http_route(struct http_server *s, enum http_method m, const char *pattern, unsigned flags,
               size_t max_body, http_handler_fn fn, void *data)
{
    if ((unsigned)m >= HTTP_N_METHODS || !fn || http_pattern_check(pattern) < 0)
        return -EINVAL;
    for (size_t i = 0; i < s->n_routes; i++)
        if (s->routes[i].method == m && strcmp(s->routes[i].pattern, pattern) == 0)
            return -EEXIST;
    if (s->n_routes == s->cap_routes) {
        size_t ncap = s->cap_routes ? 2 * s->cap_routes : 32;
        struct http_route_entry *n = realloc(s->routes, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        s->routes = n;
        s->cap_routes = ncap;
    }
    char *copy = strdup(pattern);
    if (!copy)
        return -ENOMEM;
    s->routes[s->n_routes++] = (struct http_route_entry){
        .method = m, .pattern = copy, .flags = flags, .max_body = max_body, .fn = fn, .data = data};
    return 0;
}

int http_server_run(struct http_server *s)
{
    s->loop_thread = pthread_self();
    s->loop_started = true;
    http_conns_sweep(s, true);
    int r = 0;
    while (!s->stop && r == 0)
        if (lws_service(s->ctx, 0) < 0)
            r = -EIO;
    http_conns_sweep(s, false);
    return r;
}

void http_server_stop(struct http_server *s)
{
    s->stop = 1;
    if (s->ctx)
        lws_cancel_service(s->ctx);
}

void http_server_free(struct http_server *s)
{
    if (!s)
        return;
    if (!s->loop_started) {
        s->loop_thread = pthread_self();
        s->loop_started = true;
    }
    /* Finish the queued jobs first: their done() callbacks reply to
     * requests whose connections lws is about to close. */
    /* Commands first, then control work, then the fast lane: a finishing
     * job may still hand work to a lane that comes after its own. */
    static const enum work_lane order[] = {WORK_LANE_EXEC, WORK_LANE_CONTROL, WORK_LANE_FAST};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        work_pool_free(s->pools[order[i]]);
        s->pools[order[i]] = NULL;
    }
    s->pool = NULL;
    if (s->ctx)
        handoff_dispatch(s);
    /* Closing every connection frees the requests the server owns. */
    lws_context_destroy(s->ctx);
    /* The context closed their sockets. */
    while (s->listeners)
        http_listener_free(s->listeners);

    for (size_t i = 0; i < s->n_routes; i++)
        free(s->routes[i].pattern);
    free(s->routes);
    if (s->admin_token) {
        explicit_bzero(s->admin_token, strlen(s->admin_token));
        free(s->admin_token);
    }
    free(s->static_dir);
    free(s->ws_default_protocol);
    free(s->protocols);
    http_conns_done(s);
    free(s->scratch);
    pthread_mutex_destroy(&s->handoff_lock);
    free(s);
}

int http_server_port(const struct http_server *s)
{
    return s->vhost ? lws_get_vhost_listen_port(s->vhost) : -1;
}

struct lws_context *http_server_context(struct http_server *s)
{
    return s->ctx;
}

struct work_pool *http_server_work(struct http_server *s)
{
    return s->pool;
}

struct work_pool *http_server_work_lane(struct http_server *s, enum work_lane lane)
{
    return (unsigned)lane < WORK_LANES ? s->pools[lane] : NULL;
}

void *http_server_ws_data(struct http_server *s)
{
    return s->ws_data;
}

struct lws_vhost *http_server_vhost(struct http_server *s)
{
    return s->vhost;
}
