#include "mcp_http.h"

#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "http.h"
#include "util.h"
#include "work.h"

#define RPC_PARSE_ERROR -32700
#define RPC_INVALID_REQUEST -32600
#define RPC_SESSION_ENDED -32000     /* implementation-defined: the session went away */
#define RPC_REQUEST_CANCELLED -32800 /* as LSP numbers it */

/* A request waiting for its answer. */
struct mcp_pending {
    json_t *id;             /* owned */
    json_t *progress_token; /* owned, NULL: none asked for */
    struct http_req *req;   /* answered exactly once, then forgotten */
    bool streaming;         /* the answer became an event stream */
    struct mcp_pending *next;
};

struct mcp_sess {
    struct mcp_http *mh; /* weak */
    char id[33];         /* Mcp-Session-Id: 128 random bits in hex */
    char header[64];     /* "Mcp-Session-Id: ID\r\n", on every JSON answer */
    void *session;       /* owned through ops->session_free */
    pthread_mutex_t lock;
    struct mcp_pending *pending; /* under lock */
    int64_t used_ms;             /* loop: the last message */
    struct mcp_sess *next;       /* loop: the live sessions */
};

struct mcp_http {
    struct gateway *gw; /* weak */
    const struct mcp_http_ops *ops;
    struct mcp_sess *dying; /* ended, their free not queued yet */
    struct mcp_sess *sessions;
    int n_sessions;
};

static void pending_free(struct mcp_pending *p)
{
    json_decref(p->id);
    json_decref(p->progress_token);
    free(p);
}

/* One JSON-RPC error object as the answer to req, HTTP status included. */
static void reply_rpc_error(struct http_req *req, int status, json_t *id, int code,
                            const char *message, const char *headers)
{
    json_t *o = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                          "error", "code", code, "message", message);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    http_reply_data(req, status, "application/json", text, strlen(text), headers);
}

static void sse_event(struct http_req *req, const char *json)
{
    http_stream_write(req, "event: message\ndata: ", 21);
    http_stream_write(req, json, strlen(json));
    http_stream_write(req, "\n\n", 2);
}

/* The session's messages (any thread): an answer goes to the request it
 * answers, a progress notification to the request that asked for it. */
static void sess_send(void *data, const char *json, const json_t *m)
{
    struct mcp_sess *ss = data;
    const char *method = json_string_value(json_object_get(m, "method"));
    json_t *token = json_object_get(json_object_get(m, "params"), "progressToken");
    json_t *id = json_object_get(m, "id");

    pthread_mutex_lock(&ss->lock);
    if (method && strcmp(method, "notifications/progress") == 0 && token) {
        for (struct mcp_pending *p = ss->pending; p; p = p->next) {
            if (!p->progress_token || !json_equal(p->progress_token, token))
                continue;
            if (!p->streaming) {
                http_stream_begin(p->req, 200, "text/event-stream");
                p->streaming = true;
            }
            sse_event(p->req, json);
            break;
        }
    } else if (!method && id) {
        for (struct mcp_pending **pp = &ss->pending; *pp; pp = &(*pp)->next) {
            struct mcp_pending *p = *pp;
            if (!json_equal(p->id, id))
                continue;
            *pp = p->next;
            if (p->streaming) {
                sse_event(p->req, json);
                http_stream_end(p->req);
            } else {
                char *text = strdup(json);
                if (text)
                    http_reply_data(p->req, 200, "application/json", text, strlen(text),
                                    ss->header);
                else
                    http_reply_errorf(p->req, PH_ERR_INTERNAL, "out of memory");
            }
            pending_free(p);
            break;
        }
    }
    /* Anything else (log messages, list changes) would need a stream of the
     * server's own, which this transport does not open. */
    pthread_mutex_unlock(&ss->lock);
}

/* A request the client cancelled gets no answer from the session; its
 * HTTP request is answered here, so that it does not wait for ever. */
static void sess_cancelled(struct mcp_sess *ss, json_t *request_id)
{
    pthread_mutex_lock(&ss->lock);
    for (struct mcp_pending **pp = &ss->pending; request_id && *pp; pp = &(*pp)->next) {
        struct mcp_pending *p = *pp;
        if (!json_equal(p->id, request_id))
            continue;
        *pp = p->next;
        if (p->streaming)
            http_stream_end(p->req);
        else
            reply_rpc_error(p->req, 200, p->id, RPC_REQUEST_CANCELLED, "cancelled by the client",
                            ss->header);
        pending_free(p);
        break;
    }
    pthread_mutex_unlock(&ss->lock);
}

/* ---- ending sessions ------------------------------------------------------ */

/* Requests still waiting get their end: the session is gone. */
static void sess_answer_rest(struct mcp_sess *ss)
{
    pthread_mutex_lock(&ss->lock);
    while (ss->pending) {
        struct mcp_pending *p = ss->pending;
        ss->pending = p->next;
        if (p->streaming)
            http_stream_end(p->req);
        else
            reply_rpc_error(p->req, 404, p->id, RPC_SESSION_ENDED, "the MCP session ended", NULL);
        pending_free(p);
    }
    pthread_mutex_unlock(&ss->lock);
}

static void sess_destroy(struct mcp_sess *ss)
{
    sess_answer_rest(ss);
    pthread_mutex_destroy(&ss->lock);
    free(ss);
}

static void sess_free_run(void *data)
{
    struct mcp_sess *ss = data;
    ss->mh->ops->session_free(ss->session);
    ss->session = NULL;
}

static void sess_free_done(void *data)
{
    sess_destroy(data);
}

/* Unlinks ss and ends it: its calls are cancelled off the loop. */
static void sess_end(struct mcp_http *mh, struct mcp_sess *ss)
{
    for (struct mcp_sess **pp = &mh->sessions; *pp; pp = &(*pp)->next)
        if (*pp == ss) {
            *pp = ss->next;
            mh->n_sessions--;
            break;
        }
    if (work_submit(mh->gw->fast_work, sess_free_run, sess_free_done, ss) < 0) {
        /* The queue is full: the sweep tries again (its calls may wait on
         * this very loop, which must not block on them). */
        ss->next = mh->dying;
        mh->dying = ss;
    }
}

void mcp_http_sweep(struct mcp_http *mh)
{
    int64_t now = now_ms();

    if (!mh)
        return;
    for (struct mcp_sess *ss = TAKE_PTR(mh->dying), *next; ss; ss = next) {
        next = ss->next;
        if (work_submit(mh->gw->fast_work, sess_free_run, sess_free_done, ss) < 0) {
            ss->next = mh->dying;
            mh->dying = ss;
        }
    }
    for (struct mcp_sess *ss = mh->sessions, *next; ss; ss = next) {
        next = ss->next;
        if (now - ss->used_ms > (int64_t)MCP_HTTP_IDLE_S * 1000) {
            lwsl_user("mcp: session %.8s... idle for %d s, ended\n", ss->id, MCP_HTTP_IDLE_S);
            sess_end(mh, ss);
        }
    }
}

/* ---- the routes ----------------------------------------------------------- */

static struct mcp_sess *sess_new(struct mcp_http *mh, struct ph_error *err)
{
    struct mcp_sess *ss = calloc(1, sizeof(*ss));

    if (!ss) {
        ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        return NULL;
    }
    if (random_hex(ss->id, 16) < 0) {
        free(ss);
        ph_error_set(err, PH_ERR_INTERNAL, -EIO, "no randomness for a session id");
        return NULL;
    }
    snprintf(ss->header, sizeof(ss->header), "Mcp-Session-Id: %s\r\n", ss->id);
    ss->mh = mh;
    pthread_mutex_init(&ss->lock, NULL);
    ss->session = mh->ops->session_new(mh->gw->url, mh->gw->token, sess_send, ss);
    if (!ss->session) {
        pthread_mutex_destroy(&ss->lock);
        free(ss);
        ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        return NULL;
    }
    ss->next = mh->sessions;
    mh->sessions = ss;
    mh->n_sessions++;
    return ss;
}

static struct mcp_sess *sess_find(struct mcp_http *mh, const char *id)
{
    for (struct mcp_sess *ss = mh->sessions; id && ss; ss = ss->next)
        if (strcmp(ss->id, id) == 0)
            return ss;
    return NULL;
}

/* The session a message belongs to, or NULL with the answer made. */
static struct mcp_sess *sess_for_req(struct mcp_http *mh, struct http_req *req, json_t *id)
{
    const char *sid = http_header(req, "mcp-session-id");
    struct mcp_sess *ss = sess_find(mh, sid);

    if (!sid)
        reply_rpc_error(req, 400, id, RPC_INVALID_REQUEST,
                        "no Mcp-Session-Id header: initialize first", NULL);
    else if (!ss)
        reply_rpc_error(req, 404, id, RPC_SESSION_ENDED,
                        "unknown MCP session (it ended, or the gateway restarted): initialize "
                        "again",
                        NULL);
    return ss;
}

static void api_mcp_post(struct http_req *req, void *data)
{
    struct mcp_http *mh = data;
    const char *version = http_header(req, "mcp-protocol-version");
    json_error_t jerr;
    json_t *msg = json_loadb(req->body, req->body_len, 0, &jerr);
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    bool request = method && id && !json_is_null(id);
    struct ph_error err = {0};
    struct mcp_sess *ss;

    if (!msg) {
        reply_rpc_error(req, 400, NULL, RPC_PARSE_ERROR, jerr.text, NULL);
        return;
    }
    if (!json_is_object(msg)) {
        reply_rpc_error(req, 400, NULL, RPC_INVALID_REQUEST,
                        json_is_array(msg) ? "batches are not supported: one message per POST"
                                           : "not a JSON-RPC 2.0 message",
                        NULL);
        json_decref(msg);
        return;
    }
    /* The session answers a bad id with a null one, which no waiting
     * request would match: refused here. */
    if (request && !json_is_string(id) && !json_is_integer(id)) {
        reply_rpc_error(req, 400, NULL, RPC_INVALID_REQUEST, "id must be a string or an integer",
                        NULL);
        json_decref(msg);
        return;
    }
    if (version && !mh->ops->version_supported(version)) {
        reply_rpc_error(req, 400, id, RPC_INVALID_REQUEST,
                        "unsupported MCP-Protocol-Version; initialize to agree on one", NULL);
        json_decref(msg);
        return;
    }
    if (request && strcmp(method, "initialize") == 0) {
        if (mh->n_sessions >= MCP_HTTP_MAX_SESSIONS) {
            http_reply_errorf(req, PH_ERR_LIMIT,
                              "at most %d MCP sessions at once; end one with DELETE /mcp",
                              MCP_HTTP_MAX_SESSIONS);
            json_decref(msg);
            return;
        }
        if (!(ss = sess_new(mh, &err))) {
            http_reply_error(req, &err);
            json_decref(msg);
            return;
        }
        lwsl_user("mcp: session %.8s... opened for %s\n", ss->id, req->actor);
    } else if (!(ss = sess_for_req(mh, req, id))) {
        json_decref(msg);
        return;
    }
    ss->used_ms = now_ms();
    if (request) {
        struct mcp_pending *p = calloc(1, sizeof(*p));
        if (!p) {
            http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
            json_decref(msg);
            return;
        }
        p->id = json_incref(id);
        p->progress_token = json_incref(json_object_get(
            json_object_get(json_object_get(msg, "params"), "_meta"), "progressToken"));
        p->req = req;
        pthread_mutex_lock(&ss->lock);
        p->next = ss->pending;
        ss->pending = p;
        pthread_mutex_unlock(&ss->lock);
    }
    if (!request && method && strcmp(method, "notifications/cancelled") == 0)
        sess_cancelled(ss, json_object_get(json_object_get(msg, "params"), "requestId"));
    /* The answer to a request may come at once (initialize, tools/list)
     * or from a call's thread later (tools/call). */
    mh->ops->session_handle(ss->session, req->body, req->body_len);
    if (!request)
        http_reply_data(req, 202, "application/json", NULL, 0, NULL);
    json_decref(msg);
}

static void api_mcp_delete(struct http_req *req, void *data)
{
    struct mcp_http *mh = data;
    struct mcp_sess *ss = sess_for_req(mh, req, NULL);

    if (!ss)
        return;
    lwsl_user("mcp: session %.8s... ended by %s\n", ss->id, req->actor);
    sess_end(mh, ss);
    http_reply_json(req, 200, json_pack("{s:s}", "status", "ended"));
}

static void api_mcp_get(struct http_req *req, void *data)
{
    (void)data;
    /* The transport lets a server refuse the stream of its own. */
    http_reply_data(req, 405, "application/json", NULL, 0, "Allow: POST, DELETE\r\n");
}

int mcp_http_new(struct gateway *gw, const struct mcp_http_ops *ops, struct mcp_http **out)
{
    struct mcp_http *mh;

    *out = NULL;
    if (!ops)
        return 0;
    if (!(mh = calloc(1, sizeof(*mh))))
        return -ENOMEM;
    mh->gw = gw;
    mh->ops = ops;
    if (http_route(gw->http, HTTP_POST, "/mcp", HTTP_ROUTE_BIG_BODY, MCP_HTTP_MAX_BODY,
                   api_mcp_post, mh) < 0 ||
        http_route(gw->http, HTTP_DELETE, "/mcp", 0, 0, api_mcp_delete, mh) < 0 ||
        http_route(gw->http, HTTP_GET, "/mcp", 0, 0, api_mcp_get, mh) < 0) {
        free(mh);
        return -ENOMEM;
    }
    *out = mh;
    return 0;
}

void mcp_http_shutdown(struct mcp_http *mh)
{
    struct mcp_sess **lists[2] = {mh ? &mh->sessions : NULL, mh ? &mh->dying : NULL};

    /* The loop has stopped: the calls are cancelled (their waits end within
     * a tick) and joined here. */
    for (size_t i = 0; mh && i < 2; i++)
        while (*lists[i]) {
            struct mcp_sess *ss = *lists[i];
            *lists[i] = ss->next;
            if (i == 0)
                mh->n_sessions--;
            sess_free_run(ss);
            sess_destroy(ss);
        }
}

void mcp_http_free(struct mcp_http *mh)
{
    mcp_http_shutdown(mh);
    free(mh);
}
