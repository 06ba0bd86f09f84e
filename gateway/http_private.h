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
    bool peer_unknown_warned;   /* said once that peers cannot be looked up */
    struct http_listener *next; /* server->listeners */
};

/* An accepted connection. */
struct http_conn_entry {
    struct lws *wsi;           /* weak */
    struct http_listener *via; /* weak: the extra listener it came through, or NULL */
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

    /* Accepted sockets, to enforce max_connections: the wsi created right
     * after FILTER_NETWORK_CONNECTION allowed one is the accepted one. */
    struct http_conn_entry *conns; /* owned array */
    size_t n_conns, max_conns;
    bool accepting;

    pthread_t loop_thread;
    bool loop_started;
    volatile sig_atomic_t stop;

    /* Replies made off the loop thread wait here for EVENT_WAIT_CANCELLED. */
    pthread_mutex_t handoff_lock;
    struct http_req_full *handoff; /* weak list, LIFO */

    unsigned char *scratch; /* owned, LWS_PRE + HTTP_CHUNK, loop thread only */
};

struct http_req_full *http_req_full(struct http_req *req);
/* Digits to a number, no sign or overflow (http_parse.c). */
bool http_parse_u64(const char **s, uint64_t *out);
/* The token after "Bearer " in an Authorization header, or NULL. */
const char *http_bearer_token(const char *authz);
/* The accepted-connection table behind max_connections and listeners. */
void http_conn_track(struct http_server *s, struct lws *wsi, struct http_listener *via);
void http_conn_untrack(struct http_server *s, struct lws *wsi);
/* Extra listeners (http_listener.c). */
void http_listener_accept(struct http_server *s, struct http_listener *l);
void http_listener_free(struct http_listener *l);
