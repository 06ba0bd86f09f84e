/* mcp: a Model Context Protocol server session, independent of its
 * transport. It speaks JSON-RPC 2.0 as the MCP specification (revision
 * 2025-11-25, and the earlier ones a client may ask for) says: initialize
 * and version negotiation, ping, tools/list, tools/call with progress
 * notifications and cancellation. The tools themselves (mcp_tools.h) are
 * clients of the gateway's API.
 *
 *   struct mcp_session *s = mcp_session_new(&api, write_line, out);
 *   for each message received:  mcp_session_handle(s, text, len);
 *   mcp_session_free(s);        // cancels calls still running, waits for them
 *
 * tools/call runs on a thread of its own, so a long call neither blocks the
 * others nor a notifications/cancelled for it. Every message the session
 * sends goes through send (one JSON text without newlines), from any of
 * those threads, one at a time.
 *
 * `porthole mcp` (cmd_mcp.c) feeds it lines from stdin and writes its lines
 * to stdout; the gateway's /mcp (mcp_gateway_ops) feeds it request bodies. */
#pragma once

#include <stddef.h>

#include "cli.h"
#include "mcp_http.h"

#define MCP_PROTOCOL_LATEST "2025-11-25"
#define MCP_MAX_CALLS 16           /* tools/call running at once */
#define MCP_MAX_MESSAGE (8u << 20) /* one incoming message */

/* json is msg as one line of text; msg is borrowed. */
typedef void (*mcp_send_fn)(void *data, const char *json, const json_t *msg);

struct mcp_session;

/* api is copied (its token stays owned by the caller, who keeps it alive
 * until mcp_session_free). NULL on out-of-memory. */
struct mcp_session *mcp_session_new(const struct api *api, mcp_send_fn send, void *send_data);
void mcp_session_handle(struct mcp_session *s, const char *msg, size_t len);
void mcp_session_free(struct mcp_session *s);

/* One of the protocol revisions this server speaks. */
bool mcp_version_supported(const char *version);
/* The same sessions for the gateway's Streamable HTTP transport at /mcp
 * (gateway/mcp_http.h), whose tools call that gateway. */
extern const struct mcp_http_ops mcp_gateway_ops;
