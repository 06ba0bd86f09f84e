/* Unit tests for gateway/http.c: route patterns and captures, Range and
 * query parsing, static paths, JSON bodies; then one real server on an
 * ephemeral port driven over a socket, for what only lws can show
 * (percent-decoding, auth, status codes, bounded bodies, keep-alive,
 * replies from worker threads, streamed replies and a client that leaves
 * one). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "http.h"
#include "http_private.h"
#include "work.h"

#include "alloc_fail.h"
#include "check.h"

/* CHECK with the failing case spelled out, for table-driven checks. */
#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static void test_patterns(void)
{
    static const struct {
        const char *pattern;
        int ok;
    } cases[] = {
        {"/", 1},
        {"/healthz", 1},
        {"/v1/sandboxes/{id}/exec", 1},
        {"/a/{w}/{x}/{y}/{z}", 1},
        {"/a/{v}/{w}/{x}/{y}/{z}", 0}, /* five captures */
        {"", 0},
        {"healthz", 0},
        {"//a", 0},
        {"/a/", 0},
        {"/a//b", 0},
        {"/a/{}", 0},
        {"/a/{id", 0},
        {"/a/x{id}", 0},
        {"/a/{i d}", 0},
        {"/a/{id}x", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = http_pattern_check(cases[i].pattern);
        CHECKF((r == 0) == cases[i].ok, "pattern \"%s\" gave %d", cases[i].pattern, r);
    }
    CHECKF(http_pattern_check(NULL) == -EINVAL, "NULL pattern");
}

static void test_match(void)
{
    static const struct {
        const char *pattern, *path;
        int match;
        const char *p0, *p1;
    } cases[] = {
        {"/", "/", 1, NULL, NULL},
        {"/", "/a", 0, NULL, NULL},
        {"/healthz", "/healthz", 1, NULL, NULL},
        {"/healthz", "/healthz/", 1, NULL, NULL},
        {"/healthz", "/healthz//", 0, NULL, NULL},
        {"/healthz", "/Healthz", 0, NULL, NULL},
        {"/healthz", "/healthzz", 0, NULL, NULL},
        {"/healthz", "/health", 0, NULL, NULL},
        {"/v1/sandboxes", "/v1/sandboxes/x", 0, NULL, NULL},
        {"/v1/sandboxes/{id}", "/v1/sandboxes", 0, NULL, NULL},
        {"/v1/sandboxes/{id}", "/v1/sandboxes/", 0, NULL, NULL},
        {"/v1/sandboxes/{id}", "/v1/sandboxes/sb-1a2b", 1, "sb-1a2b", NULL},
        {"/v1/sandboxes/{id}/exec", "/v1/sandboxes/sb_1.x/exec", 1, "sb_1.x", NULL},
        {"/v1/sandboxes/{id}/exec", "/v1/sandboxes/sb1/exec/", 1, "sb1", NULL},
        {"/v1/sandboxes/{id}/exec", "/v1/sandboxes/sb1/exec/x", 0, NULL, NULL},
        {"/v1/sandboxes/{id}/exec", "/v1/sandboxes//exec", 0, NULL, NULL},
        {"/v1/sandboxes/{id}/exec", "/v1/sandboxes/a/b/exec", 0, NULL, NULL},
        {"/v1/sandboxes/{id}/exec", "/v1/sandboxes/a b/exec", 0, NULL, NULL},
        {"/v1/sandboxes/{id}/exec", "/v1/sandboxes/a%2Fb/exec", 0, NULL, NULL},
        {"/v1/sandboxes/{id}/exec", "/v1/sandboxes/a:b/exec", 0, NULL, NULL},
        {"/v1/sandboxes/{id}/exec", "/v1/sandboxes/\xc3\xa9/exec", 0, NULL, NULL},
        {"/v1/s/{a}/f/{b}", "/v1/s/one/f/two", 1, "one", "two"},
        {"/v1/s/{a}/f/{b}", "/v1/s/one/g/two", 0, NULL, NULL},
        {"/cdp/{token}/json/version", "/cdp/0123abcd/json/version/", 1, "0123abcd", NULL},
        {"/a", "a", 0, NULL, NULL},
        {"/a", "", 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char store[HTTP_MAX_PATH];
        const char *params[HTTP_MAX_PARAMS] = {NULL};
        size_t n = 99;
        bool m =
            http_route_match(cases[i].pattern, cases[i].path, store, sizeof(store), params, &n);
        CHECKF(m == (bool)cases[i].match, "\"%s\" vs \"%s\" gave %d", cases[i].pattern,
               cases[i].path, m);
        if (!m || !cases[i].match)
            continue;
        size_t want = cases[i].p1 ? 2 : cases[i].p0 ? 1 : 0;
        CHECKF(n == want, "\"%s\": %zu params, want %zu", cases[i].path, n, want);
        if (cases[i].p0 && n >= 1)
            CHECKF(strcmp(params[0], cases[i].p0) == 0, "param 0 \"%s\"", params[0]);
        if (cases[i].p1 && n >= 2)
            CHECKF(strcmp(params[1], cases[i].p1) == 0, "param 1 \"%s\"", params[1]);
    }

    /* Capture length: 64 characters pass, 65 do not. */
    char path[128], store[HTTP_MAX_PATH];
    const char *params[HTTP_MAX_PARAMS];
    size_t n;
    snprintf(path, sizeof(path), "/x/%064d", 7);
    CHECKF(http_route_match("/x/{id}", path, store, sizeof(store), params, &n) && n == 1 &&
               strlen(params[0]) == 64,
           "64-character capture");
    snprintf(path, sizeof(path), "/x/%065d", 7);
    CHECKF(!http_route_match("/x/{id}", path, store, sizeof(store), params, &n),
           "65-character capture must not match");
    /* A store too small for the captures is a non-match, not an overflow. */
    CHECKF(!http_route_match("/x/{id}", "/x/abcdef", store, 4, params, &n), "small store");
}

static void test_range(void)
{
    static const struct {
        const char *h;
        uint64_t size;
        int r;
        uint64_t start, len;
    } cases[] = {
        {NULL, 100, 0, 0, 0},
        {"", 100, 0, 0, 0},
        {"bytes=0-9", 100, 1, 0, 10},
        {"bytes=10-19", 100, 1, 10, 10},
        {"bytes=90-200", 100, 1, 90, 10},
        {"bytes=99-99", 100, 1, 99, 1},
        {"bytes=50-", 100, 1, 50, 50},
        {"bytes=0-", 100, 1, 0, 100},
        {"bytes=-10", 100, 1, 90, 10},
        {"bytes=-100", 100, 1, 0, 100},
        {"bytes=-1000", 100, 1, 0, 100},
        {"Bytes = 5-6 ", 100, 1, 5, 2},
        {"bytes=100-", 100, -ERANGE, 0, 0},
        {"bytes=100-200", 100, -ERANGE, 0, 0},
        {"bytes=-0", 100, -ERANGE, 0, 0},
        {"bytes=0-", 0, -ERANGE, 0, 0},
        {"bytes=-5", 0, -ERANGE, 0, 0},
        {"bytes=9-5", 100, 0, 0, 0},     /* invalid spec: ignored */
        {"bytes=0-1,5-6", 100, 0, 0, 0}, /* several ranges: whole file */
        {"items=0-1", 100, 0, 0, 0},
        {"bytes 0-1", 100, 0, 0, 0},
        {"bytes=a-b", 100, 0, 0, 0},
        {"bytes=-", 100, 0, 0, 0},
        {"bytes=1-2x", 100, 0, 0, 0},
        {"bytes=99999999999999999999-", 100, 0, 0, 0}, /* overflow: ignored */
        {"bytes=18446744073709551614-", UINT64_MAX, 1, UINT64_MAX - 1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t start = 12345, len = 12345;
        int r = http_parse_range(cases[i].h, cases[i].size, &start, &len);
        CHECKF(r == cases[i].r, "Range \"%s\" size %llu gave %d",
               cases[i].h ? cases[i].h : "(null)", (unsigned long long)cases[i].size, r);
        if (r == 1 && cases[i].r == 1)
            CHECKF(start == cases[i].start && len == cases[i].len,
                   "Range \"%s\": start %llu len %llu", cases[i].h, (unsigned long long)start,
                   (unsigned long long)len);
    }
}

static void test_versions(void)
{
    static const struct {
        const char *v;
        bool ok;
    } cases[] = {
        {"HTTP/1.1", true}, {"HTTP/1.0", true}, {"HTTP/1.2", true},    {"HTTP/2.0", false},
        {"HTTP/1", false},  {"HTTP/11", false}, {"http/1.1", false},   {"HTTP/1.1 ", false},
        {"", false},        {"FOO/1.1", false}, {"HTTP/1.x", false},   {"HTTP/0.9", false},
        {NULL, false},      {"HTTP/", false},   {"HTTP/1.1.1", false}, {"HTTPS/1.1", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECKF(http_version_ok(cases[i].v) == cases[i].ok, "version \"%s\"",
               cases[i].v ? cases[i].v : "(null)");
}

static void test_ws_handshake(void)
{
    static const char *const key = "dGhlIHNhbXBsZSBub25jZQ==";
    static const struct {
        const char *http, *host, *conn, *key, *version;
        int r;
    } cases[] = {
        {"HTTP/1.1", "h", "Upgrade", key, "13", 0},
        {"HTTP/1.1", "h", "keep-alive, Upgrade", key, "13", 0},
        {"HTTP/1.1", "h", "upgrade ,close", key, "13", 0},
        {"HTTP/1.2", "h", "UPGRADE", key, "13", 0},
        {"HTTP/1.0", "h", "Upgrade", key, "13", -EINVAL},
        {NULL, "h", "Upgrade", key, "13", -EINVAL},
        {"HTTP/1.1", NULL, "Upgrade", key, "13", -EINVAL},
        {"HTTP/1.1", "", "Upgrade", key, "13", -EINVAL},
        {"HTTP/1.1", "h", NULL, key, "13", -EINVAL},
        {"HTTP/1.1", "h", "close", key, "13", -EINVAL},
        {"HTTP/1.1", "h", "upgraded", key, "13", -EINVAL},
        {"HTTP/1.1", "h", "no-upgrade", key, "13", -EINVAL},
        {"HTTP/1.1", "h", "Upgrade", NULL, "13", -EINVAL},
        {"HTTP/1.1", "h", "Upgrade", "", "13", -EINVAL},
        {"HTTP/1.1", "h", "Upgrade", "AAAAAAAAAAA=", "13", -EINVAL},
        {"HTTP/1.1", "h", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ=", "13", -EINVAL},
        {"HTTP/1.1", "h", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==x", "13", -EINVAL},
        {"HTTP/1.1", "h", "Upgrade", "dGhlIHNhbXBsZSBub25j!Q==", "13", -EINVAL},
        {"HTTP/1.1", "h", "Upgrade", key, NULL, -EPROTONOSUPPORT},
        {"HTTP/1.1", "h", "Upgrade", key, "8", -EPROTONOSUPPORT},
        {"HTTP/1.1", "h", "Upgrade", key, "13, 8", -EPROTONOSUPPORT},
        {"HTTP/1.1", "h", "Upgrade", key, "013", -EPROTONOSUPPORT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ph_error err = {0};
        int r = http_ws_handshake_check(cases[i].http, cases[i].host, cases[i].conn, cases[i].key,
                                        cases[i].version, &err);
        CHECKF(r == cases[i].r, "handshake %zu gave %d, want %d", i, r, cases[i].r);
        CHECKF(r == 0 || (err.kind == PH_ERR_INVALID && err.message[0]), "handshake %zu: error", i);
    }
}

static void test_query(void)
{
    static const char args[] = "id=1\0idx=2\0flag\0empty=\0id=3\0eq=a=b\0sp=a b";
    size_t len = sizeof(args); /* includes the final NUL */
    const char *v;

    CHECKF((v = http_query_find(args, len, "id")) && strcmp(v, "1") == 0, "first id wins");
    CHECKF((v = http_query_find(args, len, "idx")) && strcmp(v, "2") == 0, "idx is not id");
    CHECKF((v = http_query_find(args, len, "flag")) && strcmp(v, "") == 0, "bare flag");
    CHECKF((v = http_query_find(args, len, "empty")) && strcmp(v, "") == 0, "empty value");
    CHECKF((v = http_query_find(args, len, "eq")) && strcmp(v, "a=b") == 0, "'=' in value");
    CHECKF((v = http_query_find(args, len, "sp")) && strcmp(v, "a b") == 0, "space in value");
    CHECKF(http_query_find(args, len, "i") == NULL, "prefix of a name");
    CHECKF(http_query_find(args, len, "missing") == NULL, "missing name");
    CHECKF(http_query_find(args, 0, "id") == NULL, "empty list");
}

static void test_static_paths(void)
{
    CHECKF(http_static_path_ok("index.html"), "index.html");
    CHECKF(http_static_path_ok("novnc/core/rfb.js"), "nested");
    CHECKF(!http_static_path_ok(""), "empty");
    CHECKF(!http_static_path_ok("../etc/passwd"), "dotdot");
    CHECKF(!http_static_path_ok("a/../b"), "inner dotdot");
    CHECKF(!http_static_path_ok(".hidden"), "hidden");
    CHECKF(!http_static_path_ok("a//b"), "empty segment");
    CHECKF(!http_static_path_ok("a/"), "trailing slash");
    CHECKF(!http_static_path_ok("/etc/passwd"), "absolute");
    CHECKF(!http_static_path_ok("a b.js"), "space");
}

/* What an error reply is made of when the error was never filled in. */
static void test_error_fallback(void)
{
    size_t len = 0;
    char *body;

    CHECK(ph_error_http_status(PH_ERR_NONE) == 500);
    CHECK_STR(ph_error_code(PH_ERR_NONE), "internal");
    CHECK(ph_error_http_status(PH_ERR_CONFLICT) == 409);
    body = http_error_body("conflict", "", &len);
    CHECK_STR(body, "{\"error\":{\"code\":\"conflict\",\"message\":\"internal error\"}}");
    CHECK(body && len == strlen(body));
    free(body);
    body = http_error_body("internal", NULL, &len);
    CHECK_STR(body, "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}");
    free(body);
}

static void test_json_body(void)
{
    struct ph_error err;
    struct http_req req;
    json_t *v;
    char body[64];

#define BODY(s)                                                                                    \
    (snprintf(body, sizeof(body), "%s", s), req.body = body, req.body_len = strlen(body))
    memset(&req, 0, sizeof(req));
    BODY("");
    v = http_json_body(&req, &err);
    CHECKF(v && json_is_object(v) && json_object_size(v) == 0, "empty body is {}");
    json_decref(v);
    BODY(" \n ");
    v = http_json_body(&req, &err);
    CHECKF(v && json_is_object(v), "blank body is {}");
    json_decref(v);
    BODY("{\"a\": 1}");
    v = http_json_body(&req, &err);
    CHECKF(v && json_integer_value(json_object_get(v, "a")) == 1, "object");
    json_decref(v);
    BODY("{\"a\":\n");
    memset(&err, 0, sizeof(err));
    CHECKF(!http_json_body(&req, &err) && err.kind == PH_ERR_INVALID &&
               strncmp(err.message, "invalid JSON: line ", 19) == 0,
           "invalid JSON: %s", err.message);
    BODY("[1,2]");
    memset(&err, 0, sizeof(err));
    CHECKF(!http_json_body(&req, &err) && err.kind == PH_ERR_INVALID &&
               strcmp(err.message, "body must be a JSON object") == 0,
           "array body: %s", err.message);
    BODY("{\"a\":1,\"a\":2}");
    memset(&err, 0, sizeof(err));
    CHECKF(!http_json_body(&req, &err) && err.kind == PH_ERR_INVALID, "duplicate keys refused");
    /* No memory for the {} of an empty body. */
    alloc_fail_hook_jansson();
    for (long n = 1; n <= 2; n++) {
        BODY("");
        memset(&err, 0, sizeof(err));
        alloc_fail_after(n);
        v = http_json_body(&req, &err);
        alloc_fail_after(0);
        CHECKF(!v && err.kind == PH_ERR_INTERNAL && strcmp(err.message, "out of memory") == 0,
               "empty body, allocation %ld failing: \"%s\"", n, err.message);
        json_decref(v);
    }
#undef BODY
}

/* ---- a live server -------------------------------------------------- */

#define TOKEN "test-admin-token"

static struct http_server *srv;

static void h_echo(struct http_req *req, void *data)
{
    struct ph_error err;
    json_t *body = http_json_body(req, &err);
    if (!body) {
        http_reply_error(req, &err);
        return;
    }
    json_t *params = json_array();
    for (size_t i = 0; i < req->n_params; i++)
        json_array_append_new(params, json_string(req->params[i]));
    http_reply_json(req, 200,
                    json_pack("{s:o,s:o,s:s,s:s,s:s?,s:s?,s:s?}", "body", body, "params", params,
                              "path", req->path, "actor", req->actor, "q", http_query(req, "q"),
                              "ct", http_header(req, "Content-Type"), "range",
                              http_header(req, "range")));
}

static void worker_reply(void *data)
{
    http_reply_json(data, 200, json_pack("{s:s}", "from", "worker"));
}

static void done_reply(void *data)
{
    http_reply_json(data, 200, json_pack("{s:s}", "from", "loop"));
}

static void noop(void *data)
{
    (void)data;
}

/* Replies with an error nobody filled in, as a handler whose callee forgot
 * to would: none at all, a kind alone. */
static void h_unset(struct http_req *req, void *data)
{
    struct ph_error err = {0};
    if (strcmp(req->params[0], "null") == 0) {
        http_reply_error(req, NULL);
        return;
    }
    if (strcmp(req->params[0], "kind") == 0)
        err.kind = PH_ERR_CONFLICT;
    http_reply_error(req, &err);
}

/* A WebSocket endpoint that refuses with a kind and no message. */
static int ws_refuse_unset(void *data, struct lws *wsi, const char *path, struct ph_error *err)
{
    err->kind = PH_ERR_LIMIT;
    return -EIO;
}

static void h_deferred(struct http_req *req, void *data)
{
    int r = strcmp(req->params[0], "worker") == 0
                ? work_submit(http_server_work(srv), worker_reply, NULL, req)
                : work_submit(http_server_work(srv), noop, done_reply, req);
    if (r < 0)
        http_reply_errorf(req, PH_ERR_LIMIT, "busy");
}

/* A streamed reply from a worker: n pieces, with pauses between them. */
static atomic_int stream_refused; /* writes that found the client gone */
static atomic_int streams_ended;

static void worker_stream(void *data)
{
    struct http_req *req = data;
    int n = atoi(req->params[0]);

    http_stream_begin(req, 200, "application/x-ndjson");
    for (int i = 0; i < n; i++) {
        char line[32];
        int len = snprintf(line, sizeof(line), "{\"i\":%d}\n", i);
        if (!http_stream_write(req, line, (size_t)len)) {
            atomic_fetch_add(&stream_refused, 1);
            break;
        }
        usleep(20 * 1000);
    }
    http_stream_end(req);
    atomic_fetch_add(&streams_ended, 1);
}

static void h_stream(struct http_req *req, void *data)
{
    if (work_submit(http_server_work(srv), worker_stream, NULL, req) < 0)
        http_reply_errorf(req, PH_ERR_LIMIT, "busy");
}

/* A streamed reply written as fast as the worker can, ending as soon as a
 * write finds the client gone: its last kick and its end race the loop
 * handling that kick. The work a handler does before it ends (an exit
 * status, a cleanup) varies per request, which moves the end across the
 * loop's handling. */
static atomic_int floods_started, floods_ended;
static atomic_uint flood_seq;

static void worker_flood(void *data)
{
    struct http_req *req = data;
    int n = atoi(req->params[0]);

    http_stream_begin(req, 200, "text/plain");
    for (int i = 0; i < n; i++) {
        char line[32];
        int len = snprintf(line, sizeof(line), "%d\n", i);
        if (!http_stream_write(req, line, (size_t)len))
            break;
    }
    unsigned work = (atomic_fetch_add(&flood_seq, 1) * 2654435761u) >> 20;
    for (volatile unsigned k = 0; k < work; k++)
        ;
    http_stream_end(req);
    atomic_fetch_add(&floods_ended, 1);
}

static void h_flood(struct http_req *req, void *data)
{
    if (work_submit(http_server_work(srv), worker_flood, NULL, req) < 0)
        http_reply_errorf(req, PH_ERR_LIMIT, "busy");
    else
        atomic_fetch_add(&floods_started, 1);
}

static void *serve(void *arg)
{
    (void)arg;
    http_server_run(srv);
    return NULL;
}

static int port;

/* Sends raw bytes, reads until the connection closes or the timeout. */
static char *roundtrip_on(int fd, const char *request, size_t want_responses)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = calloc(1, cap);

    if (write(fd, request, strlen(request)) < 0) {
        free(buf);
        return NULL;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        /* Count complete responses by their bodies' closing brace plus a
         * header block each; good enough for these small JSON replies. */
        size_t seen = 0;
        for (const char *p = buf; (p = strstr(p, "HTTP/1.1 ")); p++)
            seen++;
        const char *last = buf;
        for (const char *p = buf; (p = strstr(p, "HTTP/1.1 ")); p++)
            last = p;
        const char *cl = strcasestr(last, "content-length: ");
        const char *hend = strstr(last, "\r\n\r\n");
        if (seen >= want_responses && cl && hend &&
            (size_t)(buf + len - (hend + 4)) >= (size_t)atoi(cl + 16))
            break;
    }
    return buf;
}

static int connect_server(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* A request that holds NUL bytes: len bytes of data. */
static char *roundtrip_bytes(const char *data, size_t len)
{
    int fd = connect_server();
    if (fd < 0)
        return NULL;
    char *r = write(fd, data, len) == (ssize_t)len ? roundtrip_on(fd, "", 1) : NULL;
    close(fd);
    return r;
}

static char *roundtrip(const char *request)
{
    int fd = connect_server();
    if (fd < 0)
        return NULL;
    char *r = roundtrip_on(fd, request, 1);
    close(fd);
    return r;
}

/* lws answers its own refusals as HTTP/1.0. */
static int status_of(const char *resp)
{
    return resp && (strncmp(resp, "HTTP/1.1 ", 9) == 0 || strncmp(resp, "HTTP/1.0 ", 9) == 0)
               ? atoi(resp + 9)
               : -1;
}

static void expect(const char *request, int status, const char *needle)
{
    char *resp = roundtrip(request);
    CHECKF(status_of(resp) == status, "%.60s... -> status %d, want %d", request, status_of(resp),
           status);
    if (needle)
        CHECKF(resp && strstr(resp, needle), "%.60s... lacks %s; got %s", request, needle,
               resp ? resp : "(nothing)");
    free(resp);
}

#define AUTH "Authorization: Bearer " TOKEN "\r\n"

#define WS_HEADERS                                                                                 \
    "Host: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"                                     \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

/* What lws lets through that the server refuses itself (http.h). */
static void test_strict(void)
{
    expect("GET /v1/echo/a HTTP/2.0\r\nHost: t\r\n\r\n", 400, "malformed request line");
    expect("GET /v1/echo/a FOO/1.1\r\nHost: t\r\n\r\n", 400, "connection: close");
    expect("GET /v1/echo/a\r\nHost: t\r\n\r\n", 400, "malformed request line");
    expect("GET /v1/echo/a HTTP/1.2\r\nHost: t\r\n\r\n", 200, "\"params\":[\"a\"]");
    /* lws ends the request line at an encoded CR: no version is left. */
    expect("GET /v1/echo/a%0d%0aX HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed request line");
    expect("GET /v1/echo/a?q=x%0Ay HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed request line");
    expect("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: t\r\n\r\n", 405, "method_not_allowed");
    expect("POST /v1/echo/a HTTP/1.1\r\nHost: t\r\n" AUTH "Content-Length:\r\n\r\n{}", 400,
           "invalid Content-Length");
    expect("POST /v1/echo/a HTTP/1.1\r\nHost: t\r\n" AUTH "Content-Length : 2\r\n\r\n{}", 400,
           "whitespace between");
    expect("POST /v1/echo/a HTTP/1.1\r\nHost: t\r\n" AUTH "Transfer-Encoding\t: chunked\r\n\r\n"
           "2\r\n{}\r\n0\r\n\r\n",
           400, "whitespace between");
    static const char nul[] = "GET /v1/echo/a HTTP/1.1\r\nHost: t\r\nAccept: a\0b\r\n\r\n";
    char *resp = roundtrip_bytes(nul, sizeof(nul) - 1);
    CHECKF(status_of(resp) == 400 && strstr(resp, "NUL byte"), "a NUL in a header: %s",
           resp ? resp : "(nothing)");
    free(resp);
    /* A POST without Content-Length has no body; lws would take the next
     * request for one, so the reply closes the connection instead of
     * leaving that request unanswered. */
    resp = roundtrip("POST /v1/echo/a HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n"
                     "GET /v1/echo/b HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECKF(status_of(resp) == 200 && strstr(resp, "connection: close"),
           "a POST without Content-Length: %s", resp ? resp : "(nothing)");
    free(resp);

    /* Upgrades: the handshake is checked before any endpoint's decision. */
    expect("GET /v1/echo/a HTTP/1.1\r\n" WS_HEADERS "Sec-WebSocket-Version: 13\r\n\r\n", 404,
           "no WebSocket endpoint here");
    expect("GET /v1/echo/a HTTP/1.1\r\n" WS_HEADERS "Sec-WebSocket-Version: 8\r\n\r\n", 426,
           "sec-websocket-version: 13");
    expect("GET /v1/echo/a HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n",
           400, "Sec-WebSocket-Key");
    expect("GET /v1/echo/a HTTP/1.0\r\n" WS_HEADERS "Sec-WebSocket-Version: 13\r\n\r\n", 400,
           "needs HTTP/1.1");
}

/* Waits until at most n streams are running or queued. */
static void wait_floods(int n)
{
    for (int i = 0; i < 50000 && atomic_load(&floods_started) - atomic_load(&floods_ended) > n; i++)
        usleep(100);
}

/* Streamed and deferred replies from workers whose clients leave at every
 * point: before the handler runs, mid-stream, at its end, or never. The
 * server must free each request once, after both sides let go of it (ASan
 * sees the rest). */
static void test_churn(void)
{
    static const char *const paths[] = {"/v1/flood/1", "/v1/flood/50", "/v1/flood/3000",
                                        "/v1/deferred/worker"};
    unsigned seed = 1;
    int complete = 0;

    for (int round = 0; round < 40; round++) {
        int fds[4];
        const char *path[4];
        for (int k = 0; k < 4; k++) {
            char req[128];
            path[k] = paths[rand_r(&seed) % 4];
            snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" AUTH "\r\n", path[k]);
            fds[k] = connect_server();
            if (fds[k] >= 0 && write(fds[k], req, strlen(req)) < 0) {
                close(fds[k]);
                fds[k] = -1;
            }
        }
        for (int k = 0; k < 4; k++) {
            if (fds[k] < 0)
                continue;
            char buf[4096];
            int reads = (int)(rand_r(&seed) % 4);
            if (reads == 3) {
                /* To the end: a stream's last chunk, then the close. */
                size_t len = 0;
                char tail[6] = "";
                ssize_t n;
                while ((n = read(fds[k], buf, sizeof(buf))) > 0) {
                    size_t keep = n >= 5 ? 5 : (size_t)n;
                    memmove(tail, tail + keep, 5 - keep);
                    memcpy(tail + 5 - keep, buf + n - keep, keep);
                    len += (size_t)n;
                }
                if (strncmp(path[k], "/v1/flood/", 10) == 0 && len > 0) {
                    complete++;
                    CHECKF(strcmp(tail, "0\r\n\r\n") == 0, "%s ends with \"%s\"", path[k], tail);
                }
            }
            for (int i = 0; i < reads && i < 3; i++)
                if (read(fds[k], buf, (size_t)1 + rand_r(&seed) % sizeof(buf)) <= 0)
                    break;
            close(fds[k]);
        }
        wait_floods(0);
    }

    /* Many short streams whose clients leave right after asking, or after
     * the first bytes: the worker's last write finds them gone. */
    for (int i = 0; i < 4000; i++) {
        char req[128], buf[256];
        wait_floods(6);
        int fd = connect_server();
        if (fd < 0)
            continue;
        snprintf(req, sizeof(req), "GET /v1/flood/%u HTTP/1.1\r\nHost: t\r\n\r\n",
                 rand_r(&seed) % 64);
        if (write(fd, req, strlen(req)) > 0 && i % 2)
            (void)!read(fd, buf, sizeof(buf));
        close(fd);
    }
    wait_floods(0);
    CHECKF(atomic_load(&floods_ended) == atomic_load(&floods_started) &&
               atomic_load(&floods_started) > 0,
           "churn: %d streams started, %d ended", atomic_load(&floods_started),
           atomic_load(&floods_ended));
    CHECKF(complete > 0, "churn: no stream read to its end");
}

static void test_server(void)
{
    static const struct lws_protocols ws_protocols[] = {
        {.name = "test-ws", .callback = lws_callback_http_dummy}, {0}};
    struct http_server_opts o = {.port = 0,
                                 .admin_token = TOKEN,
                                 .max_body = 64,
                                 .n_threads = 2,
                                 .max_queued = 8,
                                 .extra_protocols = ws_protocols,
                                 .ws_upgrade = ws_refuse_unset};
    struct ph_error err = {0};
    pthread_t t;
    char req[4096], *resp;

    lws_set_log_level(LLL_ERR, NULL);
    if (http_server_new(&o, &srv, &err) < 0) {
        CHECKF(0, "http_server_new: %s", err.message);
        return;
    }
    CHECKF(http_route(srv, HTTP_POST, "/v1/echo/{id}", 0, 0, h_echo, NULL) == 0, "route");
    CHECKF(http_route(srv, HTTP_GET, "/v1/echo/{id}", HTTP_ROUTE_PUBLIC, 0, h_echo, NULL) == 0,
           "route");
    CHECKF(http_route(srv, HTTP_POST, "/v1/echo/{id}", 0, 0, h_echo, NULL) == -EEXIST, "dup");
    CHECKF(http_route(srv, HTTP_POST, "/v1/bad/", 0, 0, h_echo, NULL) == -EINVAL, "bad pattern");
    CHECKF(http_route(srv, HTTP_PUT, "/v1/big", HTTP_ROUTE_BIG_BODY, 0, h_echo, NULL) == 0, "big");
    CHECKF(http_route(srv, HTTP_GET, "/v1/deferred/{how}", 0, 0, h_deferred, NULL) == 0, "route");
    CHECKF(http_route(srv, HTTP_GET, "/v1/stream/{n}", HTTP_ROUTE_PUBLIC, 0, h_stream, NULL) == 0,
           "route");
    CHECKF(http_route(srv, HTTP_GET, "/v1/flood/{n}", HTTP_ROUTE_PUBLIC, 0, h_flood, NULL) == 0,
           "route");
    CHECKF(http_route(srv, HTTP_GET, "/v1/unset/{how}", HTTP_ROUTE_PUBLIC, 0, h_unset, NULL) == 0,
           "route");
    port = http_server_port(srv);
    CHECKF(port > 0, "port %d", port);
    pthread_create(&t, NULL, serve, NULL);

    /* Percent-decoding and queries, as lws hands them over. */
    expect("GET /v1/echo/a%62c?q=hello%20w%26rld&x=1 HTTP/1.1\r\nHost: t\r\n\r\n", 200,
           "\"params\":[\"abc\"]");
    expect("GET /v1/echo/abc?q=hello%20w%26rld HTTP/1.1\r\nHost: t\r\n\r\n", 200,
           "\"q\":\"hello w&rld\"");
    expect("GET /v1/echo/abc?q=a+b HTTP/1.1\r\nHost: t\r\n\r\n", 200, "\"q\":\"a b\"");
    expect("GET /v1/echo/abc/ HTTP/1.1\r\nHost: t\r\nRange: bytes=1-2\r\n\r\n", 200,
           "\"range\":\"bytes=1-2\"");
    expect("GET /v1/echo/a%2Fb HTTP/1.1\r\nHost: t\r\n\r\n", 404, "\"code\":\"not_found\"");
    expect("GET /v1/echo/a%20b HTTP/1.1\r\nHost: t\r\n\r\n", 404, "not_found");
    expect("GET /v1/echo/a%zzb HTTP/1.1\r\nHost: t\r\n\r\n", 403, NULL); /* lws refuses */
    expect("GET /v1/echo/a%01b HTTP/1.1\r\nHost: t\r\n\r\n", 400, "invalid request path");
    resp = roundtrip("GET /v1/echo/a%00b HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECKF(status_of(resp) != 200, "a decoded NUL must not reach a route: %s", resp);
    free(resp);
    expect("GET /v1/nothing HTTP/1.1\r\nHost: t\r\n\r\n", 404, "\"code\":\"not_found\"");
    expect("DELETE /v1/echo/abc HTTP/1.1\r\nHost: t\r\n\r\n", 405, "allow: GET, POST");
    expect("DELETE /v1/echo/abc HTTP/1.1\r\nHost: t\r\n\r\n", 405, "method_not_allowed");
    expect("GET /v1/echo/abc HTTP/1.1\r\nHost: t\r\n\r\n", 200, "cache-control: no-store");
    expect("GET /v1/echo/abc HTTP/1.1\r\nHost: t\r\n\r\n", 200, "content-type: application/json");

    /* An error nobody filled in still says something, and is no 200. */
    expect("GET /v1/unset/none HTTP/1.1\r\nHost: t\r\n\r\n", 500,
           "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}");
    expect("GET /v1/unset/null HTTP/1.1\r\nHost: t\r\n\r\n", 500, "\"message\":\"internal error\"");
    expect("GET /v1/unset/kind HTTP/1.1\r\nHost: t\r\n\r\n", 409,
           "{\"error\":{\"code\":\"conflict\",\"message\":\"internal error\"}}");
    expect("GET /v1/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Protocol: test-ws\r\n\r\n",
           429, "{\"error\":{\"code\":\"limit_exceeded\",\"message\":\"internal error\"}}");

    /* Auth. */
    expect("POST /v1/echo/abc HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}", 401,
           "\"code\":\"unauthorized\"");
    expect("POST /v1/echo/abc HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer nope\r\n"
           "Content-Length: 2\r\n\r\n{}",
           401, "www-authenticate: Bearer");
    expect("POST /v1/echo/abc HTTP/1.1\r\nHost: t\r\nAuthorization: Basic " TOKEN "\r\n"
           "Content-Length: 2\r\n\r\n{}",
           401, "unauthorized");
    expect("POST /v1/echo/abc HTTP/1.1\r\nHost: t\r\n" AUTH "Content-Length: 7\r\n"
           "Content-Type: application/json\r\n\r\n{\"a\":1}",
           200, "\"actor\":\"admin\"");
    expect("POST /v1/echo/abc HTTP/1.1\r\nHost: t\r\nauthorization: bearer  " TOKEN "\r\n"
           "Content-Length: 0\r\n\r\n",
           200, "\"body\":{}");

    /* Bodies: limit 64 bytes by default, BIG_BODY gets the big limit. */
    expect("POST /v1/echo/abc HTTP/1.1\r\nHost: t\r\n" AUTH "Content-Length: 65\r\n\r\n", 413,
           "\"code\":\"too_large\"");
    expect("POST /v1/echo/abc HTTP/1.1\r\nHost: t\r\n" AUTH "Content-Length: 3\r\n\r\n[1]", 400,
           "body must be a JSON object");
    expect("POST /v1/echo/abc HTTP/1.1\r\nHost: t\r\n" AUTH "Content-Length: x\r\n\r\n", 400,
           "invalid Content-Length");
    expect("POST /v1/echo/abc HTTP/1.1\r\nHost: t\r\n" AUTH "Transfer-Encoding: chunked\r\n\r\n"
           "2\r\n{}\r\n0\r\n\r\n",
           400, "chunked");
    snprintf(req, sizeof(req),
             "PUT /v1/big HTTP/1.1\r\nHost: t\r\n" AUTH
             "Content-Length: 1000\r\n\r\n{\"x\":\"%0992d\"}",
             0);
    expect(req, 200, "\"x\":\"000");

    /* Keep-alive: two requests on one connection, then a deferred reply
     * from a worker thread and one from a done() callback. */
    int fd = connect_server();
    resp = roundtrip_on(fd,
                        "GET /v1/echo/one HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /v1/echo/two HTTP/1.1\r\nHost: t\r\n\r\n",
                        2);
    CHECKF(resp && strstr(resp, "\"params\":[\"one\"]") && strstr(resp, "\"params\":[\"two\"]"),
           "keep-alive: %s", resp ? resp : "(nothing)");
    free(resp);
    resp = roundtrip_on(fd, "GET /v1/deferred/worker HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n", 1);
    CHECKF(status_of(resp) == 200 && strstr(resp, "\"from\":\"worker\""), "worker reply: %s",
           resp ? resp : "(nothing)");
    free(resp);
    resp = roundtrip_on(fd, "GET /v1/deferred/loop HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n", 1);
    CHECKF(status_of(resp) == 200 && strstr(resp, "\"from\":\"loop\""), "done() reply: %s",
           resp ? resp : "(nothing)");
    free(resp);
    close(fd);

    /* A streamed reply: chunked, every piece in order, then the end, and
     * the connection closes. */
    resp = roundtrip("GET /v1/stream/5 HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECKF(status_of(resp) == 200 && strcasestr(resp, "transfer-encoding: chunked") &&
               strcasestr(resp, "content-type: application/x-ndjson") &&
               !strcasestr(resp, "content-length"),
           "stream head: %s", resp ? resp : "(nothing)");
    const char *body = resp ? strstr(resp, "\r\n\r\n") : NULL;
    CHECKF(body && strcmp(body + 4, "8\r\n{\"i\":0}\n\r\n8\r\n{\"i\":1}\n\r\n8\r\n{\"i\":2}\n\r\n"
                                    "8\r\n{\"i\":3}\n\r\n8\r\n{\"i\":4}\n\r\n0\r\n\r\n") == 0,
           "stream body: %s", body ? body + 4 : "(none)");
    free(resp);
    /* A client that leaves mid-stream: the writer learns it, req is freed
     * once the writer ends (ASan sees a use after free or a leak). */
    fd = connect_server();
    const char *sreq = "GET /v1/stream/400 HTTP/1.1\r\nHost: t\r\n\r\n";
    char head[256];
    CHECKF(fd >= 0 && write(fd, sreq, strlen(sreq)) > 0 && read(fd, head, sizeof(head)) > 0,
           "start of a stream");
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&streams_ended) < 2; i++)
        usleep(20 * 1000);
    CHECKF(atomic_load(&streams_ended) == 2 && atomic_load(&stream_refused) == 1,
           "the writer of a left stream: ended %d, refused %d", atomic_load(&streams_ended),
           atomic_load(&stream_refused));
    expect("GET /v1/echo/after HTTP/1.1\r\nHost: t\r\n\r\n", 200, "\"params\":[\"after\"]");

    test_churn();
    expect("GET /v1/echo/churned HTTP/1.1\r\nHost: t\r\n\r\n", 200, "\"params\":[\"churned\"]");
    test_strict();
    expect("GET /v1/echo/strict HTTP/1.1\r\nHost: t\r\n\r\n", 200, "\"params\":[\"strict\"]");

    http_server_stop(srv);
    pthread_join(t, NULL);
    http_server_free(srv);
}

static void test_admin_actor(void)
{
    char a[16];
    http_admin_actor(NULL, a, sizeof(a));
    CHECK_STR(a, "admin");
    http_admin_actor("", a, sizeof(a));
    CHECK_STR(a, "admin");
    http_admin_actor("mcp:x\"y\n", a, sizeof(a));
    CHECK_STR(a, "admin/mcp:x_y_");
    http_admin_actor("a-very-long-client-name", a, sizeof(a));
    CHECK_STR(a, "admin/a-very-lo");
}

int main(void)
{
    test_admin_actor();
    test_patterns();
    test_match();
    test_range();
    test_query();
    test_versions();
    test_ws_handshake();
    test_static_paths();
    test_error_fallback();
    test_json_body();
    test_server();
    CHECK_DONE();
}
