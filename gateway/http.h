/* http_server: the gateway's HTTP/1.1 API server on libwebsockets.
 *
 * Usage:
 *   struct http_server_opts o = {.listen_addr = "127.0.0.1", .port = 8080,
 *                                .admin_token = token};
 *   r = http_server_new(&o, &srv, &err);
 *   http_route(srv, HTTP_POST, "/v1/sandboxes/{id}/exec", 0, 0, api_exec, api);
 *   http_route(srv, HTTP_GET, "/healthz", HTTP_ROUTE_PUBLIC, 0, api_health, api);
 *   http_server_run(srv);            // until http_server_stop()
 *   http_server_free(srv);
 *
 *   static void api_exec(struct http_req *req, void *data)
 *   {
 *       json_t *body = http_json_body(req, &err);
 *       if (!body) return http_reply_error(req, &err);
 *       ... work_submit(http_server_work(srv), exec_run, exec_done, job) ...
 *       // exec_done (loop thread) later: http_reply_json(job->req, 200, result);
 *   }
 *
 * Requests and replies:
 *  - Routes match the decoded path segment by segment; "{x}" captures one
 *    segment of [A-Za-z0-9._-]{1,64} into req->params[], in order. A
 *    trailing '/' on the request path is ignored. Unknown path → 404
 *    not_found; known path, other method → 405 method_not_allowed (with
 *    Allow).
 *  - Every route without HTTP_ROUTE_PUBLIC needs "Authorization: Bearer T"
 *    where T is the admin token (actor "admin") or accepted by opts.auth;
 *    otherwise 401 unauthorized.
 *  - The body is read whole before the handler runs; over the route's limit
 *    → 413 too_large (from Content-Length before reading, and while
 *    reading). Chunked request bodies are refused with 400.
 *  - The handler owns req until it calls exactly one http_reply_*(), at
 *    once or later, from any thread (replies made off the loop thread are
 *    handed to it). If the client went away meanwhile, the reply only frees
 *    req: never reply twice, never touch req after replying.
 *  - Every response has Content-Length and Cache-Control: no-store; JSON
 *    errors are {"error": {"code", "message"}}. Keep-alive works. HEAD is
 *    served as GET without the body (handlers see HTTP_GET).
 *
 * Connections (the table's policy is argued in http_conn.c):
 *  - At most max_connections hold a slot at once, and at most
 *    max_connections_per_client sockets are open from one client: a
 *    remote address, or on loopback a local user other than the gateway's
 *    own (whose connections are not bounded per client: it can read the
 *    token anyway).
 *  - A connection is authenticated once a request on it carried a valid
 *    bearer token (on any route), once a WebSocket endpoint accepted its
 *    upgrade, or from the start when it came through an extra listener.
 *    Authenticated connections keep their slot (lws's 60 s keep-alive).
 *  - An unauthenticated connection with no request in progress closes
 *    after unauthenticated_timeout_s (from its accept, or from its last
 *    request). With the table full, the one idle longest is closed to
 *    admit a newcomer (if idle for a second at least, unless the
 *    newcomer's first bytes show a valid token); a newcomer that has sent
 *    nothing yet waits for its first request, without a slot, for up to
 *    about two seconds.
 *  - A refused connection reads "HTTP/1.1 429" (over its client's bound)
 *    or "503" (table full) with a JSON error body and Connection: close
 *    (a plain close over TLS). Refusals are logged once a burst.
 *  - A request head must arrive whole within HTTP_HEAD_TIMEOUT_S of its
 *    first byte, or the connection closes. libwebsockets' lenient parser
 *    reads a few malformed heads as unfinished (a header line without a
 *    colon, an obs-fold, a control byte in a value): those end that way,
 *    without an answer.
 *
 * lws decodes the request line itself: "%zz"-style escapes are refused by
 * lws with 403 before any route sees them, "+" in the path becomes a space,
 * "/./" and "/../" are collapsed, and %2F becomes a '/' (so it can never
 * hide inside a capture). What lws lets through that a strict server
 * would not is refused here with 400 and a close: a version other than
 * HTTP/1.x (or none, as when an encoded CR or LF cut the line), a NUL in a
 * kept header, whitespace before the colon of Content-Length or
 * Transfer-Encoding, a WebSocket handshake RFC 6455 does not describe (426
 * for another Sec-WebSocket-Version). CONNECT gets a 405. A POST, PUT or
 * PATCH without Content-Length has no body, and its connection closes
 * after the reply (lws would read the next request as that body). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "work.h"

struct lws;
struct lws_context;
struct lws_protocols;
struct work_pool;
struct http_server;

enum http_method { HTTP_GET, HTTP_POST, HTTP_PUT, HTTP_DELETE, HTTP_PATCH };
#define HTTP_N_METHODS 5
const char *http_method_name(enum http_method m);

#define HTTP_MAX_PATH 1024
#define HTTP_MAX_PARAMS 4
#define HTTP_MAX_CAPTURE 64
#define HTTP_DEFAULT_MAX_BODY (1024 * 1024)
#define HTTP_DEFAULT_MAX_BIG_BODY (64 * 1024 * 1024)
#define HTTP_DEFAULT_MAX_CONNECTIONS 256
#define HTTP_DEFAULT_MAX_CONNECTIONS_PER_CLIENT 64
#define HTTP_DEFAULT_UNAUTHENTICATED_TIMEOUT_S 10
#define HTTP_HEAD_TIMEOUT_S 10 /* a request head from its first byte to its end */

/* Allocated by the server and handed to the handler; private state follows
 * it in memory. Everything here stays valid until the reply. */
struct http_req {
    enum http_method method;
    char path[HTTP_MAX_PATH];            /* decoded, no query */
    const char *params[HTTP_MAX_PARAMS]; /* weak: the {x} captures, in order */
    size_t n_params;
    char *body; /* owned by req, NUL-terminated, never NULL */
    size_t body_len;
    char remote[64]; /* client address, "unix" on a unix socket */
    char actor[64];  /* "admin", what opts.auth said, or "" if public */
};

typedef void (*http_handler_fn)(struct http_req *req, void *data);

/* Accepts a bearer token other than the admin token (per-user keys, ...).
 * Loop thread, must not block. Returns 0 and writes actor when valid. */
typedef int (*http_auth_fn)(void *data, const char *token, char *actor, size_t actor_len);

/* Decides on a WebSocket upgrade before lws binds it to a protocol. Loop
 * thread. path is decoded, without query (lws_get_urlarg_by_name works on
 * wsi). Return 0 to let it proceed, < 0 with err filled to refuse it with
 * that error as the HTTP response. */
typedef int (*http_ws_upgrade_fn)(void *data, struct lws *wsi, const char *path,
                                  struct ph_error *err);

struct http_server_opts {
    const char *listen_addr; /* weak; default "127.0.0.1"; starting with '/' = unix socket */
    int port;                /* 0 = any free port, see http_server_port() */
    size_t max_body;         /* 0 = HTTP_DEFAULT_MAX_BODY */
    size_t max_big_body;     /* HTTP_ROUTE_BIG_BODY routes; 0 = HTTP_DEFAULT_MAX_BIG_BODY */
    int max_connections;     /* accepted sockets at once; 0 = HTTP_DEFAULT_MAX_CONNECTIONS */
    int n_threads;           /* work pool threads; 0 = WORK_DEFAULT_THREADS */
    int max_queued;          /* work pool queue bound; 0 = WORK_DEFAULT_MAX_QUEUED */
    int reply_timeout_s;     /* a handler that never replies loses the connection
                                after this; 0 = 3700 s (past RUN_MAX_TIMEOUT_S) */
    const char *admin_token; /* weak, copied; NULL or "" = only opts.auth can authorize */
    http_auth_fn auth;       /* optional */
    void *auth_data;         /* weak */
    const char *static_dir;  /* weak, copied; optional: files served under GET /static/ */
    const char *tls_cert;    /* weak; PEM paths, both or neither: serve HTTPS */
    const char *tls_key;

    /* The other connection bounds (see "Connections" above): sockets
     * from one client, and how long an unauthenticated one may idle; 0 =
     * HTTP_DEFAULT_MAX_CONNECTIONS_PER_CLIENT, _UNAUTHENTICATED_TIMEOUT_S. */
    int max_connections_per_client;
    int unauthenticated_timeout_s;

    /* WebSocket extension point. extra_protocols (terminated by an entry
     * with a NULL name; copied) are appended to the vhost after the HTTP
     * protocol. lws binds an upgrade to the protocol named by the client's
     * Sec-WebSocket-Protocol (refusing a client that names only unknown
     * ones: noVNC asks for "binary"), else to ws_default_protocol (one of
     * extra_protocols; without it such upgrades are refused). Every
     * upgrade is refused with 404 unless ws_upgrade allows it. The default
     * protocol's callback is wrapped so the server sees the upgrade first;
     * everything else reaches it as lws sends it. LWS_CALLBACK_WSI_DESTROY,
     * which lws 4.1 gives only to a vhost's first protocol, is passed on to
     * the protocol the wsi is bound to (user is NULL then). The lws
     * context's user pointer belongs to the server: use
     * http_server_from_wsi(). */
    const struct lws_protocols *extra_protocols;
    const char *ws_default_protocol;
    http_ws_upgrade_fn ws_upgrade;
    void *ws_data; /* weak */
};

enum {
    HTTP_ROUTE_PUBLIC = 1u << 0,   /* no Authorization needed */
    HTTP_ROUTE_BIG_BODY = 1u << 1, /* body up to opts.max_big_body */
};

int http_server_new(const struct http_server_opts *o, struct http_server **out,
                    struct ph_error *err);
/* Before http_server_run. pattern: "/a/{x}/b", at most HTTP_MAX_PARAMS
 * captures, each a whole segment. max_body != 0 overrides the limit the
 * flags give. Returns 0, -EINVAL (bad pattern), -EEXIST, -ENOMEM. */
int http_route(struct http_server *s, enum http_method m, const char *pattern, unsigned flags,
               size_t max_body, http_handler_fn fn, void *data);
/* Runs the event loop on the calling thread (which becomes "the loop
 * thread") until http_server_stop(). Returns 0 or -EIO. */
int http_server_run(struct http_server *s);
/* Any thread, and async-signal-safe: sets a flag and wakes the loop. */
void http_server_stop(struct http_server *s);
/* Stops accepting, finishes the work pool (running the pending done()
 * callbacks, whose replies are dropped with their connections), closes
 * every connection. Handlers must have replied to every request they
 * still hold by the time this returns. NULL is a no-op. */
void http_server_free(struct http_server *s);

int http_server_port(const struct http_server *s); /* the bound TCP port */
struct lws_context *http_server_context(struct http_server *s);
/* The main listener's vhost: client connections (proxies' upstreams) bind
 * to it so that they outlive any extra listener. */
struct lws_vhost *http_server_vhost(struct http_server *s);
struct work_pool *http_server_work(struct http_server *s); /* WORK_LANE_CONTROL */
struct work_pool *http_server_work_lane(struct http_server *s, enum work_lane lane);
void *http_server_ws_data(struct http_server *s); /* opts.ws_data */
struct http_server *http_server_from_wsi(struct lws *wsi);

/* Extra listeners: more TCP sockets served by the same routes, WebSocket
 * endpoints and connection limit, each tagged with a data pointer that
 * handlers read back with http_req_listener() / http_wsi_listener() (NULL
 * for the main listener). The CDP proxy gives each browser session one on
 * a random loopback address, so that the address itself can carry the
 * session (see cdp_proxy.h). Plain HTTP only. Loop thread.
 *
 * http_listener_open: addr is an IPv4 literal; port 0 = any free port.
 * With HTTP_LISTENER_SAME_UID, a connection is accepted only when its
 * other end belongs to the gateway's own user (looked up in
 * /proc/net/tcp: any local user can list listening sockets, so on a shared
 * host an address is no secret from them); a peer that cannot be looked
 * up is refused. Returns 0, or -EADDRINUSE
 * (cannot bind: try another address or port), -ENOMEM.
 * http_listener_close: connecting is refused from the moment it returns,
 * http_*_listener() return NULL for everything that came through it, and
 * connections still open on it end within HTTP_LISTENER_GRACE_S (owners of
 * WebSockets close theirs first, cleanly). The listener is freed by the
 * server. NULL is a no-op. */
struct http_listener;
#define HTTP_LISTENER_GRACE_S 2
enum {
    HTTP_LISTENER_SAME_UID = 1u << 0, /* loopback peers of the gateway's own uid only */
};
int http_listener_open(struct http_server *s, const char *addr, int port, unsigned flags,
                       void *data, struct http_listener **out, struct ph_error *err);
int http_listener_port(const struct http_listener *l);
void http_listener_close(struct http_listener *l);
void *http_req_listener(struct http_req *req);
void *http_wsi_listener(struct lws *wsi);

/* Request accessors; valid until the reply. Query values are decoded (a
 * name without '=' has value ""); the first of repeated names wins.
 * Header names are case-insensitive; the server keeps Host, Content-Type,
 * Content-Length, Authorization, Range, If-Range, If-None-Match, Accept,
 * Origin, Referer, User-Agent, X-Request-Id, X-Forwarded-For,
 * X-Porthole-Actor, Mcp-Session-Id and Mcp-Protocol-Version. */
const char *http_query(struct http_req *req, const char *name);
const char *http_header(struct http_req *req, const char *name);
/* The actor of an admin-token request: "admin", or "admin/NAME" when the
 * client names who it acts for (X-Porthole-Actor; printable ASCII, cut to
 * len). Audit text only. */
void http_admin_actor(const char *on_behalf, char *out, size_t len);
/* For a WebSocket endpoint's check: the upgrade request carries a token
 * that authorizes an API call (Authorization: Bearer, as for any route).
 * Returns 0 with the actor filled, or -EACCES. */
int http_wsi_authorize(struct lws *wsi, char *actor, size_t actor_len);
/* A query item of an upgrade request, decoded, into out (len bytes).
 * Returns its length, -ENOENT when absent, -E2BIG when it does not fit. */
int http_wsi_query(struct lws *wsi, const char *name, char *out, size_t len);
/* The whole query string as lws decoded it: its '&'-separated items
 * joined again with '&' ("" without a query). Returns the length, or
 * -ENOSPC when out (len bytes) is too small. */
int http_query_string(struct http_req *req, char *out, size_t len);
/* Loop thread: true once the client's connection closed (the reply will be
 * dropped), so long work may give up early. */
bool http_req_disconnected(const struct http_req *req);

/* The body as a JSON object (new reference): empty body → {}. NULL with a
 * 400 in err for invalid JSON ("invalid JSON: line L: ...") or a non-object,
 * a 500 when out of memory. */
json_t *http_json_body(struct http_req *req, struct ph_error *err);

/* Replies. Exactly one per request, from any thread. */
void http_reply_json(struct http_req *req, int status, json_t *body /* stolen, may be NULL */);
/* An error not filled in still makes a reply with a cause: err NULL or of
 * kind PH_ERR_NONE is a 500, an empty message reads "internal error". */
void http_reply_error(struct http_req *req, const struct ph_error *err);
void http_reply_errorf(struct http_req *req, enum ph_error_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* data is stolen (free()'d); extra_headers are complete lines, each ending
 * in "\r\n" ("Content-Disposition: attachment\r\n"), or NULL. */
void http_reply_data(struct http_req *req, int status, const char *content_type, char *data,
                     size_t len, const char *extra_headers);
/* Streams a regular file from disk in chunks, honouring one Range
 * (bytes=a-b, a-, -n): 200 with Accept-Ranges, 206 with Content-Range, 416
 * when unsatisfiable; 404 when the file does not exist. */
void http_reply_file(struct http_req *req, const char *path, const char *content_type);

/* A streamed reply, instead of one of the above: http_stream_begin once,
 * http_stream_write any number of times, http_stream_end once; from any
 * thread, in that order. The body goes out with chunked encoding as it is
 * written (writes are copied), and the connection closes after it. req
 * stays the handler's until http_stream_end; once the client has left,
 * writes return false and are dropped (stop producing then). */
void http_stream_begin(struct http_req *req, int status, const char *content_type);
bool http_stream_write(struct http_req *req, const void *data, size_t len);
void http_stream_end(struct http_req *req);
/* True once the client of a begun stream has left (any thread). */
bool http_stream_gone(struct http_req *req);

/* For tests: the pure parsers behind the server. */

/* 0 when pattern is a valid route pattern, else -EINVAL. */
int http_pattern_check(const char *pattern);
/* Matches path against pattern; captures are copied into store (store_len
 * >= strlen(path) + 1 is always enough) and params[] point into it.
 * Returns true on a match. */
bool http_route_match(const char *pattern, const char *path, char *store, size_t store_len,
                      const char **params, size_t *n_params);
/* One Range header against a resource of size bytes. Returns 1 with
 * *start and *len set for a satisfiable single range; 0 when the header is
 * to be ignored (absent, another unit, malformed, several ranges: serve the
 * whole resource); -ERANGE when unsatisfiable (416). */
int http_parse_range(const char *header, uint64_t size, uint64_t *start, uint64_t *len);
/* Looks name up in args, a sequence of len bytes holding NUL-terminated
 * "name=value" (or "name") items, as the server stores a query string. */
const char *http_query_find(const char *args, size_t len, const char *name);
/* True when a /static/ sub-path is safe to open below static_dir: segments
 * of [A-Za-z0-9._-] not starting with '.', no empty segment. */
bool http_static_path_ok(const char *rel);
/* The HTTP-version of a request line, as the client wrote it: "HTTP/1."
 * and one digit (a minor version above 1 is served as HTTP/1.1). */
bool http_version_ok(const char *version);
/* The parts of a WebSocket upgrade request RFC 6455 (4.2.1) asks for,
 * each as received or NULL when absent: HTTP/1.1 or later, a Host, a
 * Connection naming "upgrade", a Sec-WebSocket-Key of 16 bytes in base64
 * and Sec-WebSocket-Version 13. Returns 0, -EINVAL (err: a 400) or
 * -EPROTONOSUPPORT for another version (answered 426 with
 * "Sec-WebSocket-Version: 13"). */
int http_ws_handshake_check(const char *http_version, const char *host, const char *connection,
                            const char *key, const char *ws_version, struct ph_error *err);
