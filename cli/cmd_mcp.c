/* porthole mcp: an MCP server over stdio, as MCP clients (Claude Desktop,
 * Cursor, agent SDKs) launch one. Messages are lines of JSON on stdin and
 * stdout; stdout carries nothing else, notices go to stderr. The session
 * (mcp.c) and its tools (mcp_tools.c) are the transport-free part. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mcp.h"

static const char usage_mcp[] =
    "Usage: porthole mcp\n"
    "\n"
    "Serves the Model Context Protocol on stdin/stdout (JSON-RPC 2.0, one message a\n"
    "line) for MCP clients that launch it: tools for sandboxes (create, exec, read\n"
    "and write files, list, delete) and browser sessions (start, stop, list,\n"
    "screenshot, computer-use actions, navigate, evaluate JavaScript).\n"
    "It talks to the gateway as the other commands do (PORTHOLE_URL and\n"
    "PORTHOLE_TOKEN, else the local gateway, started when needed); the gateway\n"
    "audits each call with the MCP client's name.\n"
    "\n"
    "Claude Desktop (claude_desktop_config.json):\n"
    "  {\"mcpServers\": {\"porthole\": {\"command\": \"porthole\", \"args\": [\"mcp\"]}}}\n";

static void write_line(void *data, const char *json, const json_t *msg)
{
    (void)msg;
    FILE *out = data;
    fputs(json, out);
    fputc('\n', out);
    fflush(out);
}

int cmd_mcp(struct cli_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    struct api api;
    struct cli_error err;
    int opt, code = CLI_EXIT_OK;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    c->command = "mcp";
    c->usage = usage_mcp;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+:h", opts, NULL)) != -1)
        if (!cli_common_option(c, opt, argc, argv, &code))
            return code;
    if (optind < argc)
        return cli_usage_error(c, "mcp takes no arguments");
    /* stdout is the protocol's: no spinner, no envelope. */
    c->stderr_tty = false;
    c->json = false;
    if (api_open(c, &api, &err) < 0)
        return cli_fail(c, &err);
    struct mcp_session *s = mcp_session_new(&api, write_line, stdout);
    if (!s) {
        api_done(&api);
        fprintf(stderr, "porthole mcp: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n > 0)
            mcp_session_handle(s, line, (size_t)n);
    }
    free(line);
    /* stdin closed: the client is gone. Calls still running are cancelled
     * (an exec is killed in the guest) before the process ends. */
    mcp_session_free(s);
    api_done(&api);
    return CLI_EXIT_OK;
}
