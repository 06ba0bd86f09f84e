/* mcp_http: the gateway's MCP endpoint, the Streamable HTTP transport of
 * the Model Context Protocol (revision 2025-11-25, 2025-06-18 and
 * 2025-03-26 alike) at /mcp, behind the admin token.
 *
 * Usage (loop thread):
 *   mcp_http_new(gw, ops, &gw->mcp);  // the routes; ops NULL: no /mcp
 *   mcp_http_sweep(gw->mcp);          // every second: idle sessions end
 *   mcp_http_shutdown(gw->mcp);       // the loop has stopped: every session
 *                                     // ends, waiting requests are answered
 *   mcp_http_free(gw->mcp);           // after the HTTP server
 *
 * The MCP session itself (JSON-RPC, the tools) is the one `porthole mcp`
 * serves on stdio, handed in as ops by the executable; its tools call this
 * gateway's API with the admin token, so every call is audited like an API
 * call with the MCP client's name as the actor.
 *
 * POST /mcp carries one JSON-RPC message (no batches, which 2025-06-18
 * dropped). An initialize opens a session
 * and its answer carries Mcp-Session-Id, which every later message must
 * carry (400 without it, 404 once it is unknown: the client initializes
 * again). A request is answered with application/json, or, once it sends
 * progress notifications, with a text/event-stream of those and then the
 * answer. A notification or a response gets 202. DELETE /mcp ends the
 * session (its calls are cancelled); GET /mcp is 405: this server opens no
 * stream of its own. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct gateway;
struct mcp_http;

#define MCP_HTTP_MAX_SESSIONS 64
#define MCP_HTTP_IDLE_S 3600         /* a session nobody used for this long ends */
#define MCP_HTTP_MAX_BODY (8u << 20) /* one message, as the session takes */

/* json is msg as one line of text (what goes out); msg is borrowed. */
typedef void (*mcp_http_send_fn)(void *data, const char *json, const json_t *msg);

struct mcp_http_ops {
    /* A session whose tools reach the gateway at url with token; its
     * messages go out through send (any thread, one at a time). */
    void *(*session_new)(const char *url, const char *token, mcp_http_send_fn send,
                         void *send_data);
    void (*session_handle)(void *session, const char *msg, size_t len);
    /* Cancels its calls and waits for them (a worker runs it). */
    void (*session_free)(void *session);
    bool (*version_supported)(const char *version);
};

int mcp_http_new(struct gateway *gw, const struct mcp_http_ops *ops, struct mcp_http **out);
void mcp_http_sweep(struct mcp_http *mh);
void mcp_http_shutdown(struct mcp_http *mh);
void mcp_http_free(struct mcp_http *mh);
