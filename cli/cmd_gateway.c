/* `porthole gateway`: the API gateway in the foreground. Only option
 * checking happens here; gateway_main() owns everything after. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "accel.h"
#include "cli.h"
#include "mcp.h"
#include "gateway.h"
#include "util.h"

static const char usage_gateway[] =
    "Usage: porthole gateway [--listen ADDR:PORT] [--state-dir DIR] [--config FILE]\n"
    "                        [--accel auto|kvm|tcg] [--ready-fd N]\n"
    "\n"
    "Runs the API gateway in the foreground; it owns every sandbox and browser\n"
    "session. Clients started without PORTHOLE_URL start one in the background.\n"
    "\n"
    "  --listen ADDR:PORT  where to listen (default " GATEWAY_DEFAULT_LISTEN ")\n"
    "  --state-dir DIR     state: database, VM run dirs, token, gateway.json\n"
    "  --config FILE       JSON configuration (limits, policy hooks)\n"
    "  --accel MODE        auto (default, or $PORTHOLE_ACCEL), kvm or tcg\n"
    "  --ready-fd N        write \"ready URL\" to fd N once listening, then close it\n";

int cmd_gateway(struct cli_ctx *c, int argc, char **argv)
{
    enum { OPT_LISTEN = 1, OPT_CONFIG, OPT_ACCEL, OPT_READY_FD };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"accel", required_argument, NULL, OPT_ACCEL},
        {"ready-fd", required_argument, NULL, OPT_READY_FD},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct gateway_opts o = {
        .listen = GATEWAY_DEFAULT_LISTEN, .ready_fd = -1, .mcp = &mcp_gateway_ops};
    _cleanup_free_ char *state = NULL;
    enum vm_accel accel;
    int opt, code;
    long n;

    c->command = "gateway";
    c->usage = usage_gateway;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_LISTEN:
            /* Full checking is the gateway's; this catches a missing port. */
            if (!strchr(optarg, ':') || strlen(optarg) > 255)
                return cli_usage_error(c, "--listen: expected ADDR:PORT, got '%.64s'", optarg);
            o.listen = optarg;
            break;
        case OPT_CONFIG:
            o.config_path = optarg;
            break;
        case OPT_ACCEL:
            if (accel_parse(optarg, &accel) < 0)
                return cli_usage_error(c, "--accel: expected auto, kvm or tcg, got '%.32s'",
                                       optarg);
            o.accel = optarg;
            break;
        case OPT_READY_FD:
            if (!cli_opt_int(c, "--ready-fd", optarg, 0, 65535, &n, &code))
                return code;
            if (fcntl((int)n, F_GETFD) < 0)
                return cli_usage_error(c, "--ready-fd: fd %ld is not open", n);
            o.ready_fd = (int)n;
            break;
        default:
            if (!cli_common_option(c, opt, argc, argv, &code))
                return code;
        }
    }
    if (optind < argc)
        return cli_usage_error(c, "unexpected argument '%.64s'", argv[optind]);
    state = cli_state_dir(c);
    if (!state) {
        struct cli_error e;
        cli_error_set(&e, 1, "internal", NULL, -ENOMEM, "out of memory");
        return cli_fail(c, &e);
    }
    o.state_dir = state;
    code = gateway_main(&o);
    if (code != 0) {
        struct cli_error e;
        cli_error_set(&e, code, "gateway_failed", "see the messages above", -EIO,
                      "the gateway stopped with exit code %d", code);
        return cli_emit(c, code, NULL, &e);
    }
    return cli_ok(c, NULL);
}
