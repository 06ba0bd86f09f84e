/* porthole: the command-line client of the gateway, and the gateway itself
 * (`porthole gateway`). This file only dispatches; each command group lives
 * in its own cmd_*.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "relay.h"
#include "util.h"

static const char usage_main[] =
    "Usage: porthole [--state-dir DIR] COMMAND [ARGS...] [--json]\n"
    "\n"
    "Sandboxes (Linux microVMs for commands):\n"
    "  sandbox create     boot a sandbox and print its id\n"
    "  sandbox list       list sandboxes\n"
    "  sandbox exec       run a command in a sandbox: sandbox exec ID -- CMD...\n"
    "  sandbox delete     delete sandboxes (ID... or --all)\n"
    "  sandbox upload     copy a local file into a sandbox\n"
    "  sandbox download   copy a file out of a sandbox\n"
    "  sandbox env        show or set a sandbox's environment variables\n"
    "\n"
    "Browser sessions (Chromium in a microVM, reachable over CDP):\n"
    "  browser start      start a session; prints session_id, cdp_url, live_url,\n"
    "                     control_url\n"
    "  browser stop       stop sessions (ID... or --all)\n"
    "  browser list       list sessions\n"
    "  browser open       print (and open) a session's live view URL\n"
    "  browser logs       print a session's logs\n"
    "  browser screenshot save the session's screen as PNG\n"
    "  browser record     start, stop or list screen recordings\n"
    "\n"
    "Agents:\n"
    "  mcp                serve the Model Context Protocol on stdin/stdout\n"
    "\n"
    "This host:\n"
    "  gateway            run the API gateway in the foreground\n"
    "  image build        build the guest images (base, browser)\n"
    "  doctor             check that this host can run sandboxes\n"
    "  version            print the version\n"
    "  help [COMMAND]     show help for a command\n"
    "\n"
    "Every command takes --json: one envelope on stdout,\n"
    "  {\"ok\", \"command\", \"exit_code\", \"data\", \"error\": {\"code\", \"message\", "
    "\"recovery\"}}\n"
    "Exit codes: 0 success, 1 failure, 2 usage error; sandbox exec exits with the\n"
    "command's own exit code.\n"
    "\n"
    "Environment:\n"
    "  PORTHOLE_URL        gateway to use (http://HOST:PORT); without it, the local\n"
    "                      gateway of the state dir, started in the background on demand\n"
    "  PORTHOLE_TOKEN      the gateway's API token (default: the local gateway's token file)\n"
    "  PORTHOLE_STATE_DIR  state dir of the local gateway (also --state-dir)\n"
    "  PORTHOLE_ACCEL      kvm, tcg or auto: accelerator for guests\n";

/* --json anywhere before "--" decides the output format of usage errors
 * found before the option parser reaches it. */
static bool argv_wants_json(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--json") == 0)
            return true;
    }
    return false;
}

static int cmd_version(struct cli_ctx *c)
{
    c->command = "version";
    if (c->json)
        return cli_ok(c, json_pack("{s:s}", "version", PORTHOLE_VERSION));
    printf("porthole %s\n", PORTHOLE_VERSION);
    return cli_ok(c, NULL);
}

static int dispatch(struct cli_ctx *c, int argc, char **argv);

/* `porthole help sandbox create` is `porthole sandbox create --help`. */
static int cmd_help(struct cli_ctx *c, int argc, char **argv)
{
    char *args[8];
    int n = 0;

    c->command = "help";
    c->usage = usage_main;
    if (argc < 2)
        return cli_help(c);
    for (int i = 1; i < argc && n < (int)ARRAY_SIZE(args) - 3; i++)
        if (strcmp(argv[i], "--json") != 0)
            args[n++] = argv[i];
    if (n == 0 || strcmp(args[0], "help") == 0)
        return cli_help(c);
    args[n++] = "--help";
    args[n] = NULL;
    return dispatch(c, n, args);
}

static int dispatch(struct cli_ctx *c, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(struct cli_ctx *c, int argc, char **argv);
    } commands[] = {
        {"sandbox", cmd_sandbox}, {"browser", cmd_browser}, {"image", cmd_image},
        {"doctor", cmd_doctor},   {"gateway", cmd_gateway}, {"help", cmd_help},
        {"mcp", cmd_mcp},
    };
    const char *name = argv[0];

    if (strcmp(name, "version") == 0)
        return cmd_version(c);
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].fn(c, argc, argv);
    c->usage = usage_main;
    return cli_usage_error(c, "unknown command '%.64s'", name);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"version", no_argument, NULL, 'V'},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct cli_ctx c = {
        .json = argv_wants_json(argc, argv),
        .stderr_tty = isatty(STDERR_FILENO) == 1,
        .command = "porthole",
        .usage = usage_main,
    };
    int opt, code = CLI_EXIT_OK;

    /* Hidden, and before any setup: QEMU spawns it per guest connection. */
    if (argc == 3 && strcmp(argv[1], "egress-relay") == 0)
        return egress_relay_main(argv[2]);
    opterr = 0;
    /* "+": stop at the command; its own options are parsed by the command. */
    while ((opt = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
        if (opt == 'V')
            return cmd_version(&c);
        if (!cli_common_option(&c, opt, argc, argv, &code))
            return code;
    }
    if (optind >= argc) {
        if (c.json)
            return cli_usage_error(&c, "missing command");
        fputs(usage_main, stderr);
        return CLI_EXIT_USAGE;
    }
    code = dispatch(&c, argc - optind, argv + optind);
    if (c.json && !c.emitted) {
        /* Every --json run prints one envelope, even when a command forgot. */
        struct cli_error e;
        cli_error_set(&e, 1, "internal", NULL, 0, "the command produced no result");
        return cli_emit(&c, code ? code : CLI_EXIT_FAIL, NULL, &e);
    }
    return code;
}
