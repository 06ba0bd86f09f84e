/* Private to the HTTP server's files (http.c, http_parse.c,
 * http_listener.c): the server's and a request's inner state. */
#pragma once

#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "http.h"

#define N_KEPT_HEADERS 18 /* the request headers kept (http.c's table) */

#define HTTP_CHUNK (64 * 1024)      /* body bytes per WRITEABLE */
#define HTTP_HEADER_BUF 4096        /* response header block */
#define HTTP_MAX_EXTRA_HEADERS 2048 /* http_reply_data's extra_headers */
#define HTTP_MAX_QUERY 4096         /* stored query items, all together */
#define HTTP_MAX_QUERY_ITEMS 64
#define HTTP_MAX_HEADER_VALUE 4096        /* one kept request header */
#define HTTP_LWS_HEADER_DATA 8192         /* lws's per-request header storage */
#define HTTP_RX_BUF 32768                 /* lws's read size, so body chunks */
#define HTTP_SEND_TIMEOUT_S 30            /* a client that stops reading our reply */
#define HTTP_DEFAULT_REPLY_TIMEOUT_S 3700 /* above RUN_MAX_TIMEOUT_S */

struct http_route_entry {
    enum http_method method;
    char *pattern; /* owned */
    unsigned flags;
    size_t max_body;
    http_handler_fn fn;
    void *data; /* weak */
};

enum req_state {
    REQ_RECEIVING, /* reading the body; the server owns req */
    REQ_HANDLING,  /* the handler owns req until it replies */
    REQ_SENDING,   /* reply attached; the server owns req */
    REQ_STREAMING, /* a streamed reply: the server sends what the handler
                    * queues; the handler holds req until http_stream_end */
};

/* One queued piece of a streamed reply, already framed as a chunk. */
struct http_chunk {
    struct http_chunk *next;
    size_t len;
    char data[];
};

struct http_resp {
    int status;
    char content_type[128];
    char *extra; /* owned header lines, or NULL */
    char *data;  /* owned body, or NULL */
    size_t len, off;
    int fd; /* owned file being streamed, -1 if unused */
    uint64_t file_off, file_len, file_sent;
    bool headers_sent;
    bool close_after; /* body left unread: the connection cannot be reused */
    /* A streamed reply (http_stream_*). Under the server's handoff_lock:
     * chunks, stream_end, gone. */
    bool streaming;
    bool stream_end;           /* the handler is done with req (set with its last kick) */
    bool gone;                 /* the client left: writes are dropped */
    bool final_sent;           /* loop thread: the last chunk went out */
    struct http_chunk *chunks; /* owned FIFO, each framed */
    struct http_chunk **chunks_tail;
    size_t queued; /* bytes in chunks */
};

struct http_req_full {
    struct http_req pub;
    struct http_server *server; /* weak */
    struct lws *wsi;            /* weak; NULL once the connection closed */
    enum req_state state;
    bool replied;                         /* an http_reply_* call happened */
    bool head_only;                       /* HEAD: a GET without the body */
    const struct http_route_entry *route; /* weak */
    size_t body_expected;
    int64_t started_ms;
    char capture[HTTP_MAX_PATH]; /* params[] point here */
    char *query;                 /* owned, NUL-separated items */
    size_t query_len;
    char *headers[N_KEPT_HEADERS]; /* owned values, NULL if absent */
    struct http_resp resp;
    struct http_req_full *next_handoff; /* weak link on server->handoff */
    bool in_handoff;                    /* on server->handoff (under handoff_lock) */
};

/* An extra listener. Not an lws vhost: lws 4.1 keeps a vhost's listening
 * socket open (accepting into the backlog, unserviced) until the vhost is
 * finally freed, and rebinds requests among listener-less vhosts by their
 * Host header. So the socket is ours, watched as a raw file on the main
 * vhost; what it accepts joins the main vhost, and the connection table
 * remembers which listener each came through. */
struct http_listener {
    struct http_server *server; /* weak */
    struct lws *accept_wsi;     /* weak: the listening socket; NULL once closed */
    int fd;                     /* the listening socket, owned by accept_wsi */
    int port;
    unsigned flags;             /* HTTP_LISTENER_* */
    void *data;                 /* weak */
    struct http_listener *next; /* server->listeners */
};

/* Who a connection's other end is, for max_connections_per_client: a
 * remote IPv4 address, or on loopback the local user (see http_conn.c). */
#define HTTP_CLIENT_OWNER 0ull                   /* the gateway's own user: not bounded */
#define HTTP_CLIENT_ADDR(a) ((1ull << 32) | (a)) /* a remote IPv4 address, network order */
#define HTTP_CLIENT_UID(u) ((2ull << 32) | (u))  /* another local user on loopback */
#define HTTP_CLIENT_UNKNOWN (3ull << 32)         /* loopback, owner not found */

/* An accepted connection. */
struct http_conn_entry {
    struct lws *wsi;           /* weak */
    struct http_listener *via; /* weak: the extra listener it came through, or NULL */
    uint64_t client;           /* HTTP_CLIENT_* */
    int64_t active_ms;         /* accepted, or its last request began or ended */
    bool authenticated;        /* showed a token or capability, see http_conn.c */
    bool in_request;           /* a request is being read, handled or answered */
    bool closing;              /* closed by the table, lws has not freed it yet */
    bool probation;            /* let in past a full table, holding no slot, until its
                                  first request shows a token (or it is refused) */
};

/* The bounds of the connection table (http_server_opts). */
struct http_conn_limits {
    size_t max_conns;          /* holding a slot at once (not closing, not on probation) */
    size_t cap;                /* entries at once, closing and probation ones included */
    size_t room;               /* the array: cap, and a few more for newcomers with a token */
    size_t per_client;         /* open at once from one client */
    int64_t unauth_timeout_ms; /* idle unauthenticated connections close after it */
};

/* What a connection about to be accepted has sent so far. */
enum http_shown {
    HTTP_SHOWN_NOTHING, /* nothing yet (or nothing readable: TLS) */
    HTTP_SHOWN_REQUEST, /* the start of a request without a valid token */
    HTTP_SHOWN_TOKEN,   /* a request with a valid token */
};

/* What the table does with a connection it is asked to accept. */
enum http_admit {
    HTTP_ADMIT,           /* a slot is free */
    HTTP_ADMIT_EVICTING,  /* a slot is made free by closing *victim */
    HTTP_ADMIT_PROBATION, /* no slot, but its first request may earn one */
    HTTP_REFUSE_CLIENT,   /* over max_connections_per_client: 429 */
    HTTP_REFUSE_FULL,     /* every slot is held by a connection that stays: 503 */
};

/* A burst of refusals or evictions: the first is logged, the rest
 * counted, and the count logged once the burst is over. */
struct http_conn_burst {
    int64_t last_ms;
    unsigned long count;
};

/* Per-connection state lws allocates for the HTTP protocol. */
struct http_conn {
    struct http_req_full *req; /* the transaction in progress, or NULL */
};

struct http_server {
    struct lws_context *ctx;               /* owned */
    struct lws_vhost *vhost;               /* weak, owned by ctx */
    struct work_pool *pool;                /* owned: pools[WORK_LANE_CONTROL] */
    struct work_pool *pools[WORK_LANES];   /* owned */
    struct lws_protocols *protocols;       /* owned, NULL-name terminated */
    struct lws_protocol_vhost_options pvo; /* lws keeps pointers to these */
    struct lws_protocol_vhost_options pvo_default;
    char *ws_default_protocol;            /* owned */
    lws_callback_function *ws_default_cb; /* the wrapped default protocol's own */

    struct http_route_entry *routes; /* owned */
    size_t n_routes, cap_routes;

    struct http_listener *listeners; /* owned list; each freed with its vhost */

    char *admin_token; /* owned, wiped on free */
    http_auth_fn auth;
    void *auth_data;  /* weak */
    char *static_dir; /* owned, NULL if none */
    size_t max_body, max_big_body;
    int reply_timeout_s;
    http_ws_upgrade_fn ws_upgrade;
    void *ws_data; /* weak */

    /* Accepted sockets, to enforce the connection bounds (http_conn.c):
     * the wsi created right after FILTER_NETWORK_CONNECTION allowed one is
     * the accepted one, and takes the admission decided for it. */
    struct http_conn_entry *conns; /* owned array of limits.room */
    size_t n_conns;                /* entries in use, closing ones included */
    struct http_conn_limits limits;
    bool accepting;
    struct http_conn_entry pending; /* the admitted connection lws is creating */
    bool tls;                       /* refusals cannot be written in clear */
    int diag_fd;                    /* owned netlink sock_diag socket, -1 if unused */
    bool diag_warned;               /* said once that peers cannot be looked up */
    lws_sorted_usec_list_t conn_sweep;
    struct http_conn_burst refused_client, refused_full, evicted;

    pthread_t loop_thread;
    bool loop_started;
    volatile sig_atomic_t stop;

    /* Replies made off the loop thread wait here for EVENT_WAIT_CANCELLED. */
    pthread_mutex_t handoff_lock;
    struct http_req_full *handoff; /* weak list, LIFO */

    unsigned char *scratch; /* owned, LWS_PRE + HTTP_CHUNK, loop thread only */
};

struct http_req_full *http_req_full(struct http_req *req);
/* {"error": {"code", "message"}} as compact JSON (malloc'd), or NULL. An
 * empty or NULL message becomes "internal error". */
char *http_error_body(const char *code, const char *message, size_t *len);
/* A whole error response with that body and "Connection: close" (extra:
 * complete header lines, or NULL), for a connection lws does not speak
 * HTTP on: malloc'd, *len bytes, or NULL. */
char *http_error_response(int status, const char *reason, const char *code, const char *message,
                          const char *extra, size_t *len);
/* Digits to a number, no sign or overflow (http_parse.c). */
bool http_parse_u64(const char **s, uint64_t *out);
/* The token after "Bearer " in an Authorization header, or NULL. */
const char *http_bearer_token(const char *authz);
/* The bearer token of the Authorization header of the first request in
 * buf, what a client sent so far (NUL-terminated; cut in place), or NULL
 * when it has none or its line is not all there yet. A hint for the
 * connection table only: requests are authorized as lws parses them. */
const char *http_peek_bearer(char *buf);
/* The admin token, or one opts.auth accepts (loop thread). */
bool http_token_valid(struct http_server *s, const char *token);
/* The accepted-connection table (http_conn.c), loop thread.
 * http_conns_init/_done: with the server (limits from opts).
 * http_conn_admit: the policy for a socket just accepted (through via, an
 * extra listener, or NULL): true to go on (the next http_conn_track takes
 * what was decided); false when refused, after writing the client an error
 * it can read where possible: the caller closes fd.
 * http_conn_track/_untrack: the wsi lws made of it, and its end.
 * http_conn_request_begin/_end: a request on it starts (token: with a
 * valid one), or completes.
 * http_conn_authenticated: it showed a token or capability.
 * Both fail (-EBUSY, err set to a 503) when the connection was let in on
 * probation and gets no slot: the caller refuses the request with err.
 * http_conns_sweep: starts or stops the timer behind
 * unauthenticated_timeout_s (and the end of logged bursts). */
int http_conns_init(struct http_server *s, const struct http_server_opts *o);
void http_conns_done(struct http_server *s);
bool http_conn_admit(struct http_server *s, int fd, struct http_listener *via);
void http_conn_track(struct http_server *s, struct lws *wsi, struct http_listener *via);
void http_conn_untrack(struct http_server *s, struct lws *wsi);
int http_conn_request_begin(struct http_server *s, struct lws *wsi, bool token,
                            struct ph_error *err);
void http_conn_request_end(struct http_server *s, struct lws *wsi);
int http_conn_authenticated(struct http_server *s, struct lws *wsi, struct ph_error *err);
void http_conns_sweep(struct http_server *s, bool on);
/* The pure policy behind http_conn_admit and the sweep, for tests.
 * decide: what to do with a new connection from client at now, which has
 * shown that much; *victim is the index to close for HTTP_ADMIT_EVICTING.
 * victim: the unauthenticated connection to shed for a newcomer (one that
 * showed a token when credential), or SIZE_MAX. expired: e is an
 * unauthenticated connection idle past the timeout (or on probation past
 * the grace period). */
enum http_admit http_conn_decide(const struct http_conn_entry *conns, size_t n,
                                 const struct http_conn_limits *lim, uint64_t client,
                                 enum http_shown shown, int64_t now, size_t *victim);
size_t http_conn_victim(const struct http_conn_entry *conns, size_t n,
                        const struct http_conn_limits *lim, bool credential, int64_t now);
bool http_conn_expired(const struct http_conn_entry *e, const struct http_conn_limits *lim,
                       int64_t now);
/* Extra listeners (http_listener.c). */
void http_listener_accept(struct http_server *s, struct http_listener *l);
void http_listener_free(struct http_listener *l);
