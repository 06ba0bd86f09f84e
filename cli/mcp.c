#include "mcp.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mcp_tools.h"
#include "util.h"

/* JSON-RPC 2.0 error codes. */
#define RPC_PARSE_ERROR -32700
#define RPC_INVALID_REQUEST -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS -32602
#define RPC_INTERNAL_ERROR -32603

static const char *const protocol_versions[] = {MCP_PROTOCOL_LATEST, "2025-06-18", "2025-03-26",
                                                "2024-11-05", NULL};

struct call_slot {
    struct mcp_session *s;  /* weak */
    json_t *id;             /* owned: the request's id */
    json_t *progress_token; /* owned, NULL: no progress asked for */
    char name[128];
    json_t *args; /* owned */
    struct mcp_call call;
    pthread_t thread;
    atomic_bool done;       /* the thread has finished */
    double last_progress;   /* progress values must grow */
    struct call_slot *next; /* owned by the session's list */
};

struct mcp_session {
    struct api api; /* copy; token weak (the caller's) */
    mcp_send_fn send;
    void *send_data;
    pthread_mutex_t lock; /* send and the list of calls */
    struct call_slot *calls;
    int n_calls;
    bool initialized;
    char client[65]; /* the client's name, the actor of its calls */
    char actor[80];
};

static void send_json(struct mcp_session *s, json_t *msg /* stolen */)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    if (text) {
        pthread_mutex_lock(&s->lock);
        s->send(s->send_data, text, msg);
        pthread_mutex_unlock(&s->lock);
    }
    json_decref(msg);
    free(text);
}

static void reply(struct mcp_session *s, json_t *id, json_t *result /* stolen */)
{
    send_json(s, json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void reply_error(struct mcp_session *s, json_t *id, int code, const char *message)
{
    send_json(s, json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
                           id ? id : json_null(), "error", "code", code, "message", message));
}

/* ---- tools/call threads -------------------------------------------------- */

static void call_progress(struct mcp_call *c, double progress, double total, const char *message)
{
    struct call_slot *slot = c->session;
    if (!slot->progress_token || atomic_load(&c->cancelled) || progress <= slot->last_progress)
        return;
    slot->last_progress = progress;
    json_t *params =
        json_pack("{s:O, s:f}", "progressToken", slot->progress_token, "progress", progress);
    if (params && total > 0)
        json_object_set_new(params, "total", json_real(total));
    if (params && message)
        json_object_set_new(params, "message", json_string(message));
    send_json(slot->s, json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method",
                                 "notifications/progress", "params", params));
}

static void *call_thread(void *data)
{
    struct call_slot *slot = data;
    int code = 0;
    char message[256] = "";
    json_t *result =
        mcp_tools_call(&slot->call, slot->name, slot->args, &code, message, sizeof(message));

    /* A cancelled request gets no answer (the client has stopped waiting). */
    if (!atomic_load(&slot->call.cancelled)) {
        if (result)
            reply(slot->s, slot->id, result);
        else
            reply_error(slot->s, slot->id, code ? code : RPC_INTERNAL_ERROR,
                        message[0] ? message : "the tool failed");
    } else {
        json_decref(result);
    }
    atomic_store(&slot->done, true);
    return NULL;
}

static void slot_free(struct call_slot *slot)
{
    json_decref(slot->id);
    json_decref(slot->progress_token);
    json_decref(slot->args);
    free(slot);
}

/* Joins the calls that have finished. */
static void reap(struct mcp_session *s, bool all)
{
    for (;;) {
        struct call_slot *found = NULL, **pp;
        pthread_mutex_lock(&s->lock);
        for (pp = &s->calls; *pp; pp = &(*pp)->next)
            if (all || atomic_load(&(*pp)->done)) {
                found = *pp;
                *pp = found->next;
                s->n_calls--;
                break;
            }
        pthread_mutex_unlock(&s->lock);
        if (!found)
            return;
        pthread_join(found->thread, NULL);
        slot_free(found);
    }
}

static bool same_id(json_t *a, json_t *b)
{
    return a && b && json_equal(a, b);
}

static void tools_call(struct mcp_session *s, json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    json_t *token = json_object_get(json_object_get(params, "_meta"), "progressToken");
    struct call_slot *slot;

    if (!name || strlen(name) >= sizeof(slot->name)) {
        reply_error(s, id, RPC_INVALID_PARAMS, "params.name must name a tool");
        return;
    }
    if (!mcp_tools_has(name)) {
        reply_error(s, id, RPC_INVALID_PARAMS, "unknown tool");
        return;
    }
    if (args && !json_is_object(args)) {
        reply_error(s, id, RPC_INVALID_PARAMS, "params.arguments must be an object");
        return;
    }
    if (token && !json_is_string(token) && !json_is_integer(token)) {
        reply_error(s, id, RPC_INVALID_PARAMS,
                    "params._meta.progressToken must be a string or an integer");
        return;
    }
    reap(s, false);
    pthread_mutex_lock(&s->lock);
    bool busy = s->n_calls >= MCP_MAX_CALLS;
    for (struct call_slot *c = s->calls; c && !busy; c = c->next)
        if (same_id(c->id, id))
            busy = true;
    pthread_mutex_unlock(&s->lock);
    if (busy) {
        reply_error(s, id, RPC_INVALID_REQUEST, "too many tool calls at once, or the id is in use");
        return;
    }
    if (!(slot = calloc(1, sizeof(*slot)))) {
        reply_error(s, id, RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    slot->s = s;
    slot->id = json_incref(id);
    slot->progress_token = json_incref(token);
    snprintf(slot->name, sizeof(slot->name), "%s", name);
    slot->args = args ? json_incref(args) : json_object();
    slot->call.api = s->api;
    slot->call.api.actor = s->actor;
    slot->call.progress = call_progress;
    slot->call.session = slot;
    atomic_init(&slot->call.cancelled, false);
    atomic_init(&slot->done, false);
    if (pthread_create(&slot->thread, NULL, call_thread, slot) != 0) {
        slot_free(slot);
        {
            reply_error(s, id, RPC_INTERNAL_ERROR, "cannot start the call");
            return;
        }
    }
    pthread_mutex_lock(&s->lock);
    slot->next = s->calls;
    s->calls = slot;
    s->n_calls++;
    pthread_mutex_unlock(&s->lock);
}

static void cancel(struct mcp_session *s, json_t *params)
{
    json_t *id = json_object_get(params, "requestId");
    pthread_mutex_lock(&s->lock);
    for (struct call_slot *c = s->calls; c; c = c->next)
        if (same_id(c->id, id))
            atomic_store(&c->call.cancelled, true);
    pthread_mutex_unlock(&s->lock);
}

/* ---- the lifecycle ------------------------------------------------------- */

static void initialize(struct mcp_session *s, json_t *id, json_t *params)
{
    const char *want = json_string_value(json_object_get(params, "protocolVersion"));
    const char *name =
        json_string_value(json_object_get(json_object_get(params, "clientInfo"), "name"));
    const char *version = MCP_PROTOCOL_LATEST;
    size_t n = 0;

    for (const char *const *v = protocol_versions; *v; v++)
        if (want && strcmp(want, *v) == 0)
            version = *v;
    /* The client's name, as printable ASCII, is the actor of its calls. */
    for (const char *p = name ? name : "unknown"; *p && n < sizeof(s->client) - 1; p++)
        s->client[n++] = *p >= 0x21 && *p <= 0x7e ? *p : '_';
    s->client[n] = '\0';
    snprintf(s->actor, sizeof(s->actor), "mcp:%s", s->client);
    s->initialized = true;
    reply(s, id,
          json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion", version,
                    "capabilities", "tools", "listChanged", 0, "serverInfo", "name", "porthole",
                    "title", "Porthole", "version", PORTHOLE_VERSION, "instructions",
                    "Porthole runs commands in Linux microVM sandboxes and Chromium in microVM "
                    "browser sessions. Create a sandbox, then exec in it; start a browser "
                    "session (live, to see and drive its screen), then navigate, evaluate, take "
                    "screenshots and act with the computer tool. Delete what you no longer "
                    "need."));
}

void mcp_session_handle(struct mcp_session *s, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *msg;

    if (len > MCP_MAX_MESSAGE) {
        reply_error(s, NULL, RPC_INVALID_REQUEST, "message too large");
        return;
    }
    msg = json_loadb(text, len, 0, &jerr);
    if (!msg) {
        reply_error(s, NULL, RPC_PARSE_ERROR, jerr.text);
        return;
    }
    json_t *id = json_object_get(msg, "id");
    const char *version = json_string_value(json_object_get(msg, "jsonrpc"));
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");

    if (!json_is_object(msg) || !version || strcmp(version, "2.0") != 0) {
        reply_error(s, json_is_array(msg) ? NULL : id, RPC_INVALID_REQUEST,
                    json_is_array(msg) ? "batches are not supported"
                                       : "not a JSON-RPC 2.0 message");
    } else if (!method) {
        /* A response: this server sends no requests, so nothing waits. */
    } else if (!id || json_is_null(id)) {
        /* Notifications get no answer, whatever they are. */
        if (strcmp(method, "notifications/cancelled") == 0)
            cancel(s, params);
    } else if (!json_is_string(id) && !json_is_integer(id)) {
        reply_error(s, NULL, RPC_INVALID_REQUEST, "id must be a string or an integer");
    } else if (strcmp(method, "initialize") == 0) {
        initialize(s, id, params);
    } else if (strcmp(method, "ping") == 0) {
        reply(s, id, json_object());
    } else if (!s->initialized) {
        reply_error(s, id, RPC_INVALID_REQUEST, "initialize first");
    } else if (strcmp(method, "tools/list") == 0) {
        reply(s, id, json_pack("{s:o}", "tools", mcp_tools_list()));
    } else if (strcmp(method, "tools/call") == 0) {
        tools_call(s, id, params);
    } else {
        reply_error(s, id, RPC_METHOD_NOT_FOUND, "method not found");
    }
    json_decref(msg);
}

struct mcp_session *mcp_session_new(const struct api *api, mcp_send_fn send, void *send_data)
{
    struct mcp_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->api = *api;
    s->send = send;
    s->send_data = send_data;
    snprintf(s->actor, sizeof(s->actor), "mcp:unknown");
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void mcp_session_free(struct mcp_session *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    for (struct call_slot *c = s->calls; c; c = c->next)
        atomic_store(&c->call.cancelled, true);
    pthread_mutex_unlock(&s->lock);
    reap(s, true);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- the gateway's /mcp ------------------------------------------------ */

bool mcp_version_supported(const char *version)
{
    for (const char *const *v = protocol_versions; *v; v++)
        if (strcmp(version, *v) == 0)
            return true;
    return false;
}

/* A session of the gateway's Streamable HTTP transport: its tools call the
 * gateway that serves it, as `porthole mcp` would. */
struct gateway_session {
    struct cli_ctx c; /* no terminal, no envelope */
    struct api api;
    struct mcp_session *s;
};

static void *gateway_session_new(const char *url, const char *token, mcp_http_send_fn send,
                                 void *send_data)
{
    struct gateway_session *g = calloc(1, sizeof(*g));

    if (!g)
        return NULL;
    g->api.c = &g->c;
    snprintf(g->api.url, sizeof(g->api.url), "%s", url);
    if (!(g->api.token = strdup(token)) || !(g->s = mcp_session_new(&g->api, send, send_data))) {
        free(g->api.token);
        free(g);
        return NULL;
    }
    return g;
}

static void gateway_session_handle(void *session, const char *msg, size_t len)
{
    struct gateway_session *g = session;
    mcp_session_handle(g->s, msg, len);
}

static void gateway_session_free(void *session)
{
    struct gateway_session *g = session;
    mcp_session_free(g->s);
    free(g->api.token);
    free(g);
}

const struct mcp_http_ops mcp_gateway_ops = {
    .session_new = gateway_session_new,
    .session_handle = gateway_session_handle,
    .session_free = gateway_session_free,
    .version_supported = mcp_version_supported,
};
