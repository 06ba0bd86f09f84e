/* cdp_proxy: the Chrome DevTools Protocol of a browser session, behind its
 * capability URL.
 *
 * Usage (loop thread; the gateway wires ws.h first):
 *   cdp_proxy_new(gw, &gw->cdp);   // routes, WebSocket endpoints, and an
 *                                  // observer of the instance lifecycle
 *   ...
 *   cdp_proxy_free(gw->cdp);       // after the HTTP server
 *
 * Each browser session the lifecycle sets up gets its listener and
 * b->cdp_base; when it ends, its WebSockets close (clients get 1001
 * "session ended") and so does its listener.
 *
 * cdp_url = cdp_base = BASE/cdp/{id}/{cdp_token}. Behind it:
 *   GET      /json/version, /json/list, /json, /json/protocol
 *   GET|PUT  /json/new?URL (PUT upstream; the URL passes browser_check_cdp
 *            as Target.createTarget), /json/activate/{t}, /json/close/{t}
 *            fetched from the guest's Chromium on a worker (bounded in size
 *            and time); every webSocketDebuggerUrl and devtoolsFrontendUrl
 *            is rewritten to ws://HOST:PORT/cdp/{id}/{token}/devtools/...
 *            with HOST:PORT from the request's Host header, so nothing
 *            names the guest.
 *   WS       /devtools/browser/{guid}, /devtools/page/{target}, and
 *            /devtools/browser without the guid (the proxy looks it up):
 *            each client gets its own upstream WebSocket to the guest;
 *            Page.navigate and Target.createTarget pass browser_check_cdp
 *            first, a refusal is answered in the client's id and never
 *            forwarded.
 * A wrong id or token is a 404 and no upgrade.
 *
 * When the gateway listens on loopback, each session also gets a listener
 * of its own on a random 127.x.y.z and port (about 40 bits a local client
 * cannot guess: the address is the capability), and cdp_base uses it.
 * There the root forms /json/version, /json/list, /json, /json/new,
 * /json/protocol and /devtools/... also answer for that session, because
 * Puppeteer's connect({browserURL}) asks for new URL('/json/version',
 * browserURL) and so drops the path. Playwright's connectOverCDP works with
 * either form. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct gateway;

#define CDP_SEGMENT_MAX 64                  /* one path segment: ids, tokens, guids */
#define CDP_MAX_CONNECTIONS 16              /* WebSocket clients per session */
#define CDP_MAX_MESSAGE (64u * 1024 * 1024) /* one CDP message, either way */
#define CDP_FETCH_MAX (16u * 1024 * 1024)   /* a /json/... answer */
/* A guest under software emulation can take tens of seconds to answer
 * /json/version right after boot; Playwright's connectOverCDP waits 30 s
 * by default and callers pass more. Each fetch holds a worker thread, so
 * a session runs at most CDP_MAX_FETCHES at once; more wait their turn, up
 * to CDP_MAX_WAITING (429 beyond). */
#define CDP_FETCH_TIMEOUT_MS 60000
#define CDP_MAX_FETCHES 4
#define CDP_MAX_WAITING 64

struct cdp_proxy;

int cdp_proxy_new(struct gateway *gw, struct cdp_proxy **out);
void cdp_proxy_free(struct cdp_proxy *cp);

/* ---- pure parts (cdp_parse.c), for tests ---- */

/* Rewrites a /json/version or /json/list answer of Chromium: each
 * webSocketDebuggerUrl becomes ws_base + its /devtools/... path, the
 * ws=/wss= parameter of each devtoolsFrontendUrl* becomes ws_base without
 * its scheme + that path; such a field that does not point at /devtools/
 * is removed. ws_base is "ws://HOST:PORT/cdp/ID/TOKEN" (or wss://).
 * Returns 0 with *out malloc'd (compact JSON), -EINVAL when body is not a
 * JSON object or array, -ENOMEM. */
int cdp_rewrite_json(const char *body, size_t len, const char *ws_base, char **out);

/* What a client message asks for, as far as policy cares. */
struct cdp_call {
    json_t *roots[4];       /* owned: the parsed message and nested ones */
    json_t *id;             /* weak: the outer message's id, NULL if none */
    const char *session_id; /* weak: the outer message's sessionId, or NULL */
    const char *method;     /* weak: the navigating method */
    const char *url;        /* weak: its params.url, "" when absent */
};
enum {
    CDP_PASS = 0,      /* forward untouched */
    CDP_NAVIGATES = 1, /* method/url need browser_check_cdp */
};
/* Looks at one client message: only messages that could navigate
 * (Page.navigate, Target.createTarget, also inside
 * Target.sendMessageToTarget, and anything with a \u escape that could
 * hide one) are parsed. Returns CDP_PASS, CDP_NAVIGATES, or -EINVAL for a
 * message that may navigate but is not valid, unambiguous JSON (duplicate
 * keys, nesting too deep): refuse it (call->id is set when readable).
 * Call cdp_call_done() in every case. */
int cdp_inspect(const char *msg, size_t len, struct cdp_call *call);
/* Whether cdp_inspect would parse msg: a plain scan, cheap. */
bool cdp_may_navigate(const char *msg, size_t len);
void cdp_call_done(struct cdp_call *call);
/* {"id":ID,"error":{"code":code,"message":message},"sessionId":S}, id and
 * sessionId only when given. malloc'd, NULL on out-of-memory. */
char *cdp_error_reply(const json_t *id, const char *session_id, int code, const char *message);

/* Splits a WebSocket path: "/cdp/{id}/{token}/devtools/KIND[/{target}]" or,
 * with root_form, "/devtools/KIND[/{target}]". KIND is browser or page;
 * target may be empty only for browser. upstream gets "/devtools/KIND/" +
 * target (or "" for a browser without guid). Returns 0 or -EINVAL. */
int cdp_ws_path_parse(const char *path, bool root_form, char *id, size_t id_len, char *token,
                      size_t token_len, char *upstream, size_t upstream_len);
/* The guid of webSocketDebuggerUrl in a /json/version answer: 0 with it
 * in out, -EINVAL when there is none or it is not one segment that fits. */
int cdp_browser_guid(const char *body, size_t len, char *out, size_t out_len);
