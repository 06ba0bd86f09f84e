/* mcp_tools: the tools `porthole mcp` offers, each a client of the
 * gateway's API (sandboxes, browser sessions, screenshots, computer use)
 * or of a session's CDP (navigate, evaluate). A table of name, description
 * and input schema, and one dispatch function: the MCP session (mcp.h) is
 * their only caller, whatever carries its messages. */
#pragma once

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cli.h"

/* One tools/call while it runs. */
struct mcp_call {
    struct api api; /* the session's, with this call's actor and tick */
    atomic_bool cancelled;
    /* Sends notifications/progress when the client asked for it (a
     * progressToken); progress must grow from call to call. */
    void (*progress)(struct mcp_call *c, double progress, double total, const char *message);
    void *session; /* weak: for progress */
};

/* The tools/list result's "tools" array (new reference). */
json_t *mcp_tools_list(void);

/* Whether a tool of this name exists. */
bool mcp_tools_has(const char *name);

/* Runs a tool: a CallToolResult (new reference), with isError for a tool
 * that failed (the model reads why). An unknown tool is NULL with a
 * JSON-RPC error code and message. */
json_t *mcp_tools_call(struct mcp_call *c, const char *name, json_t *args, int *rpc_code,
                       char *rpc_message, size_t len);
