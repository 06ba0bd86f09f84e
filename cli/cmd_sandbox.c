/* `porthole sandbox ...`: command sandboxes through /v1/sandboxes. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "cli.h"
#include "execstream.h"
#include "httpc.h"
#include "localfile.h"
#include "run.h"
#include "terminal.h"
#include "util.h"
#include "wsc.h"

static const char usage_sandbox[] =
    "Usage: porthole sandbox COMMAND [ARGS...] [--json]\n"
    "\n"
    "  create     boot a sandbox and print its id\n"
    "  list       list sandboxes\n"
    "  exec       run a command: sandbox exec ID [--shell login|raw] [--timeout S] -- CMD...\n"
    "  shell      open a terminal in the sandbox: sandbox shell ID [-- CMD...]\n"
    "  delete     delete sandboxes: sandbox delete ID...|--all\n"
    "  upload     copy a file in: sandbox upload ID LOCAL REMOTE\n"
    "  download   copy a file out: sandbox download ID REMOTE LOCAL\n"
    "  env        show or set environment variables: sandbox env ID [NAME=VALUE...]\n"
    "  stop       power a sandbox off, keeping its disk: sandbox stop ID\n"
    "  start      boot a stopped sandbox again from its disk: sandbox start ID\n"
    "  pause      stop its CPUs, memory kept: sandbox pause ID\n"
    "  resume     run a paused sandbox again: sandbox resume ID\n"
    "  snapshot   save its memory and disk: sandbox snapshot ID (then create --from-snapshot)\n"
    "  port       expose a guest port on the host: sandbox port expose|list|close ID ...\n"
    "\n"
    "Run 'porthole sandbox COMMAND --help' for a command's options.\n";

static const char usage_create[] =
    "Usage: porthole sandbox create [--vcpus N] [--memory MIB] [--disk MIB] [--image NAME]\n"
    "                               [--env NAME=VALUE]... [--timeout-minutes N]\n"
    "                               [--from-snapshot ID] [--json]\n"
    "\n"
    "Boots a sandbox and prints its id once it is ready (seconds with KVM, up to a\n"
    "minute under software emulation).\n"
    "\n"
    "  --vcpus N            virtual CPUs\n"
    "  --image NAME         a custom image (porthole image build NAME --packages ...)\n"
    "  --memory MIB         guest memory in MiB\n"
    "  --disk MIB           root disk size in MiB\n"
    "  --env NAME=VALUE     environment variable for login-shell commands (repeatable)\n"
    "  --timeout-minutes N  delete the sandbox after N minutes\n"
    "  --from-snapshot ID   start from a snapshot (its size, image and disk)\n"
    "  --json               print the sandbox as a JSON envelope\n";

static const char usage_snapshot[] =
    "Usage: porthole sandbox snapshot ID [--json]\n"
    "\n"
    "Saves the sandbox's memory, devices and disk at this instant and prints the\n"
    "snapshot's id; the sandbox stands still meanwhile (about a second per GiB of\n"
    "memory in use) and runs on after. 'porthole sandbox create --from-snapshot ID'\n"
    "starts new sandboxes from it, each with its own identity.\n";

static const char usage_list[] = "Usage: porthole sandbox list [--json]\n"
                                 "\n"
                                 "Lists sandboxes: id, status, size and expiry.\n";

static const char usage_exec[] =
    "Usage: porthole sandbox exec ID [--shell login|raw] [--timeout S] [--json] -- CMD...\n"
    "\n"
    "Runs CMD in the sandbox (the words are joined with spaces, as ssh does).\n"
    "Without --json, the command's stdout and stderr are written to ours and\n"
    "porthole exits with the command's exit code.\n"
    "\n"
    "  --shell login|raw  login (default): through the login shell, with the\n"
    "                     sandbox's env vars; raw: the command as given\n"
    "  --timeout S        kill the command after S seconds (default 30)\n"
    "  --json             print {exit_code, stdout, stderr, duration_ms} in an envelope\n";

static const char usage_shell[] =
    "Usage: porthole sandbox shell ID [--term NAME] [-- CMD...]\n"
    "\n"
    "Opens a terminal in the sandbox: its login shell (with the sandbox's env\n"
    "vars), or CMD on a terminal (as ssh -t runs it). Keys go to the guest, ^C\n"
    "included, and window resizes follow. porthole exits with the shell's exit\n"
    "code. The policy sees it as one command, \"shell\" (or CMD), and can refuse it.\n"
    "The login shell needs a terminal on stdin; CMD does not: piped input is sent\n"
    "as it is, and its end as ^D.\n"
    "\n"
    "  --term NAME  TERM in the guest (default xterm-256color)\n";

static const char usage_delete[] = "Usage: porthole sandbox delete ID...|--all [--json]\n"
                                   "\n"
                                   "Stops and deletes sandboxes; prints each deleted id.\n";

static const char usage_upload[] =
    "Usage: porthole sandbox upload ID LOCAL REMOTE [--json]\n"
    "\n"
    "Copies the local file LOCAL to the absolute path REMOTE in the sandbox.\n";

static const char usage_download[] =
    "Usage: porthole sandbox download ID REMOTE LOCAL [--json]\n"
    "\n"
    "Copies the file at absolute path REMOTE in the sandbox to LOCAL (a file, or a\n"
    "directory to keep the remote name).\n";

static const char usage_env[] =
    "Usage: porthole sandbox env ID [NAME=VALUE...] [--json]\n"
    "\n"
    "Without assignments, prints the sandbox's environment variables as NAME=VALUE.\n"
    "With them, sets those variables (others are kept); login-shell commands see\n"
    "them from the next command on.\n";

static const char usage_stop[] =
    "Usage: porthole sandbox stop ID [--json]\n"
    "\n"
    "Powers the sandbox off. Its disk (installed packages, files), environment\n"
    "variables and exposed ports are kept; 'porthole sandbox start ID' boots it\n"
    "again from that disk. Commands are refused while it is stopped.\n";

static const char usage_start[] =
    "Usage: porthole sandbox start ID [--json]\n"
    "\n"
    "Boots a stopped sandbox again from its disk and prints its id once it is\n"
    "ready. A sandbox that runs is left as it is.\n";

static const char usage_pause[] =
    "Usage: porthole sandbox pause ID [--to-disk] [--json]\n"
    "\n"
    "Stops the sandbox's virtual CPUs: it uses no CPU and keeps its memory (its\n"
    "processes resume where they were), across a gateway restart too. Commands\n"
    "are refused until 'porthole sandbox resume ID'; its timeout keeps running.\n"
    "\n"
    "  --to-disk  write its memory to disk and end its QEMU: it holds no RAM\n";

static const char usage_resume[] = "Usage: porthole sandbox resume ID [--json]\n"
                                   "\n"
                                   "Runs a paused sandbox again; its clock is set to the host's.\n";

static const char usage_port[] =
    "Usage: porthole sandbox port expose ID GUEST_PORT [--host-port N] [--guest-loopback] "
    "[--json]\n"
    "       porthole sandbox port list ID [--json]\n"
    "       porthole sandbox port close ID GUEST_PORT [--json]\n"
    "\n"
    "expose makes the guest's TCP port GUEST_PORT reachable on the host (127.0.0.1\n"
    "unless the gateway is configured otherwise) and prints ADDRESS:PORT. The\n"
    "forward reaches the guest's loopback, so a service bound to 127.0.0.1 in the\n"
    "guest answers too; no guest can reach it. It lasts until closed or until the\n"
    "sandbox is deleted, across gateway restarts.\n"
    "\n"
    "  --host-port N      this host port instead of a free one\n"
    "  --guest-loopback   accepted for SmolVM's expose_local; the forward is the same\n";

/* Parses only the common options; for commands whose arguments are positional. */
static bool parse_plain(struct cli_ctx *c, int argc, char **argv, int *code)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1)
        if (!cli_common_option(c, opt, argc, argv, code))
            return false;
    return true;
}

static int fail_oom(struct cli_ctx *c)
{
    struct cli_error e;
    cli_error_set(&e, 1, "internal", NULL, -ENOMEM, "out of memory");
    return cli_fail(c, &e);
}

static int sandbox_create(struct cli_ctx *c, int argc, char **argv)
{
    enum { OPT_VCPUS = 1, OPT_MEMORY, OPT_DISK, OPT_ENV, OPT_TIMEOUT, OPT_IMAGE, OPT_SNAPSHOT };
    static const struct option opts[] = {
        {"vcpus", required_argument, NULL, OPT_VCPUS},
        {"from-snapshot", required_argument, NULL, OPT_SNAPSHOT},
        {"image", required_argument, NULL, OPT_IMAGE},
        {"memory", required_argument, NULL, OPT_MEMORY},
        {"disk", required_argument, NULL, OPT_DISK},
        {"env", required_argument, NULL, OPT_ENV},
        {"timeout-minutes", required_argument, NULL, OPT_TIMEOUT},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    json_auto_t *body = json_object(), *env = json_object(), *sb = NULL;
    struct api api;
    struct cli_error err;
    int opt, code, r;
    long n;

    c->command = "sandbox.create";
    c->usage = usage_create;
    if (!body || !env)
        return fail_oom(c);
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_VCPUS:
            if (!cli_opt_int(c, "--vcpus", optarg, 1, 64, &n, &code))
                return code;
            json_object_set_new(body, "vcpus", json_integer(n));
            break;
        case OPT_MEMORY:
            if (!cli_opt_int(c, "--memory", optarg, 128, 1024 * 1024, &n, &code))
                return code;
            json_object_set_new(body, "mem_mib", json_integer(n));
            break;
        case OPT_DISK:
            if (!cli_opt_int(c, "--disk", optarg, 256, 4 * 1024 * 1024, &n, &code))
                return code;
            json_object_set_new(body, "disk_mib", json_integer(n));
            break;
        case OPT_ENV:
            if (cli_parse_env(optarg, env) < 0)
                return cli_usage_error(c,
                                       "--env: expected NAME=VALUE with a valid name, got "
                                       "'%.64s'",
                                       optarg);
            break;
        case OPT_TIMEOUT:
            if (!cli_opt_int(c, "--timeout-minutes", optarg, 1, 7 * 24 * 60, &n, &code))
                return code;
            json_object_set_new(body, "timeout_minutes", json_integer(n));
            break;
        case OPT_IMAGE:
            json_object_set_new(body, "image", json_string(optarg));
            break;
        case OPT_SNAPSHOT:
            json_object_set_new(body, "from_snapshot", json_string(optarg));
            break;
        default:
            if (!cli_common_option(c, opt, argc, argv, &code))
                return code;
        }
    }
    if (optind < argc)
        return cli_usage_error(c, "unexpected argument '%.64s'", argv[optind]);
    if (json_object_size(env) > 0)
        json_object_set(body, "env_vars", env);

    r = api_open(c, &api, &err);
    if (r >= 0)
        r = api_call(&api, "POST", "/v1/sandboxes", body, API_TIMEOUT_LONG_MS, "Creating sandbox",
                     &sb, &err);
    api_done(&api);
    if (r < 0)
        return cli_fail(c, &err);
    if (!json_str(sb, "id")) {
        cli_error_set(&err, 1, "bad_response", NULL, -EPROTO, "the gateway's answer has no id");
        return cli_fail(c, &err);
    }
    if (!c->json)
        printf("%s\n", json_str(sb, "id"));
    return cli_ok(c, json_incref(sb));
}

static int sandbox_list(struct cli_ctx *c, int argc, char **argv)
{
    static const char *const headers[] = {"ID", "STATUS", "VCPUS", "MEM_MIB", "CREATED", "EXPIRES"};
    static const char *const keys[] = {"id",      "status",     "vcpus",
                                       "mem_mib", "created_at", "expires_at"};
    json_auto_t *list = NULL;
    struct api api;
    struct cli_error err;
    json_t *arr;
    int code, r;

    c->command = "sandbox.list";
    c->usage = usage_list;
    if (!parse_plain(c, argc, argv, &code))
        return code;
    if (optind < argc)
        return cli_usage_error(c, "unexpected argument '%.64s'", argv[optind]);
    r = api_open(c, &api, &err);
    if (r >= 0)
        r = api_call(&api, "GET", "/v1/sandboxes", NULL, API_TIMEOUT_SHORT_MS, NULL, &list, &err);
    api_done(&api);
    if (r < 0)
        return cli_fail(c, &err);
    arr = json_object_get(list, "sandboxes");
    if (!json_is_array(arr)) {
        cli_error_set(&err, 1, "bad_response", NULL, -EPROTO,
                      "the gateway's answer has no \"sandboxes\" array");
        return cli_fail(c, &err);
    }
    if (!c->json)
        cli_table(headers, keys, ARRAY_SIZE(keys), arr);
    return cli_ok(c, json_incref(list));
}

/* The guest command: argv words joined by spaces, as ssh joins them. */
static char *join_words(char **words, int n)
{
    size_t len = 1;
    char *out, *p;

    for (int i = 0; i < n; i++)
        len += strlen(words[i]) + 1;
    if (len > RUN_MAX_COMMAND_LEN + 1)
        return NULL;
    out = p = malloc(len);
    if (!out)
        return NULL;
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? " " : "", words[i]);
    *p = '\0';
    return out;
}

/* Output as the command prints it; --json keeps it for the envelope. */
static void exec_print(void *data, bool is_stderr, const char *text, size_t len)
{
    struct cli_ctx *c = data;
    if (c->json)
        return;
    if (!is_stderr)
        fflush(stdout);
    cli_write_all(is_stderr ? STDERR_FILENO : STDOUT_FILENO, text, len);
}

static int sandbox_exec(struct cli_ctx *c, int argc, char **argv)
{
    enum { OPT_SHELL = 1, OPT_TIMEOUT };
    static const struct option opts[] = {
        {"shell", required_argument, NULL, OPT_SHELL},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    json_auto_t *body = json_object(), *res = NULL;
    _cleanup_free_ char *command = NULL, *path = NULL;
    struct api api;
    struct cli_error err;
    enum run_shell shell;
    long timeout_s = RUN_DEFAULT_TIMEOUT_S;
    json_t *exit_v;
    int opt, code, r;

    c->command = "sandbox.exec";
    c->usage = usage_exec;
    if (!body)
        return fail_oom(c);
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_SHELL:
            if (run_shell_parse(optarg, &shell) < 0)
                return cli_usage_error(c, "--shell: expected login or raw, got '%.32s'", optarg);
            json_object_set_new(body, "shell", json_string(run_shell_name(shell)));
            break;
        case OPT_TIMEOUT:
            if (!cli_opt_int(c, "--timeout", optarg, 1, RUN_MAX_TIMEOUT_S, &timeout_s, &code))
                return code;
            json_object_set_new(body, "timeout", json_integer(timeout_s));
            break;
        default:
            if (!cli_common_option(c, opt, argc, argv, &code))
                return code;
        }
    }
    if (optind >= argc)
        return cli_usage_error(c, "missing sandbox ID");
    if (optind + 1 >= argc)
        return cli_usage_error(c, "missing command: sandbox exec ID -- CMD...");
    command = join_words(argv + optind + 1, argc - optind - 1);
    if (!command)
        return cli_usage_error(c, "command longer than %d bytes", RUN_MAX_COMMAND_LEN);
    json_object_set_new(body, "command", json_string(command));
    path = api_path("/v1/sandboxes/", argv[optind], "/exec");
    if (!path || !json_object_get(body, "command"))
        return cli_usage_error(c, "the command is not valid UTF-8");

    /* Streamed: output shows as the command prints it. */
    json_object_set_new(body, "stream", json_true());
    struct exec_stream st;
    exec_stream_init(&st, exec_print, c);
    r = api_open(c, &api, &err);
    /* The gateway enforces the command's timeout; the HTTP wait covers it
     * plus a reconnect to the guest. */
    if (r >= 0)
        r = api_stream(&api, "POST", path, body, (int)(timeout_s + 120) * 1000, exec_stream_feed,
                       &st, &err);
    if (r >= 0)
        r = exec_stream_finish(&st, &api, &res, &err);
    exec_stream_done(&st);
    api_done(&api);
    if (r < 0)
        return cli_fail(c, &err);
    exit_v = json_object_get(res, "exit_code");
    if (!json_is_integer(exit_v)) {
        cli_error_set(&err, 1, "bad_response", NULL, -EPROTO,
                      "the gateway's answer has no exit_code");
        return cli_fail(c, &err);
    }
    /* Killed by a signal is -1 in the API; a shell would say 128+N, and 255
     * is what ssh exits with when it cannot tell. */
    code = (int)json_integer_value(exit_v);
    if (code < 0 || code > 255)
        code = 255;
    if (!c->json) {
        if (json_is_true(json_object_get(res, "stdout_truncated")) ||
            json_is_true(json_object_get(res, "stderr_truncated")))
            cli_notice(c, "output was truncated by the gateway");
    }
    return cli_emit(c, code, json_incref(res), NULL);
}

static int sandbox_shell(struct cli_ctx *c, int argc, char **argv)
{
    enum { OPT_TERM = 1 };
    static const struct option opts[] = {
        {"term", required_argument, NULL, OPT_TERM},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    _cleanup_free_ char *command = NULL, *esc = NULL, *base = NULL, *path = NULL, *term_esc = NULL;
    json_auto_t *sb = NULL;
    const char *term = NULL;
    struct api api;
    struct cli_error err;
    struct wsc *ws = NULL;
    char detail[256];
    int opt, code = 0, cols, rows, r;

    c->command = "sandbox.shell";
    c->usage = usage_shell;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == OPT_TERM)
            term = optarg;
        else if (!cli_common_option(c, opt, argc, argv, &code))
            return code;
    }
    if (c->json)
        return cli_usage_error(c, "--json: a terminal has no envelope");
    if (optind >= argc)
        return cli_usage_error(c, "missing sandbox ID");
    if (optind + 1 < argc && !(command = join_words(argv + optind + 1, argc - optind - 1)))
        return cli_usage_error(c, "command longer than %d bytes", RUN_MAX_COMMAND_LEN);
    /* An interactive shell switches its terminal to raw mode when it first
     * prompts, which turns a ^D sent before then into a plain byte: piped
     * input could leave it waiting for ever. */
    if (!command && isatty(STDIN_FILENO) != 1)
        return cli_usage_error(c,
                               "stdin is not a terminal; run commands with 'porthole sandbox "
                               "exec ID -- CMD', or give the shell one: sandbox shell ID -- CMD");
    terminal_size(&cols, &rows);
    if ((command && !(esc = httpc_escape(command, false))) ||
        (term && !(term_esc = httpc_escape(term, false))) ||
        !(base = api_path("/v1/sandboxes/", argv[optind], "/shell")) ||
        asprintf(&path, "%s?cols=%d&rows=%d%s%s%s%s", base, cols, rows, esc ? "&command=" : "",
                 esc ? esc : "", term_esc ? "&term=" : "", term_esc ? term_esc : "") < 0) {
        path = NULL;
        return cli_usage_error(c, "out of memory");
    }
    _cleanup_free_ char *get = api_path("/v1/sandboxes/", argv[optind], NULL);
    /* The sandbox's own errors (unknown, not ready) as the API words them;
     * the upgrade answers only with its status. */
    r = api_open(c, &api, &err);
    if (r >= 0)
        r = get ? api_call(&api, "GET", get, NULL, API_TIMEOUT_SHORT_MS, NULL, &sb, &err)
                : cli_error_set(&err, 1, "internal", NULL, -ENOMEM, "out of memory");
    if (r >= 0 && (r = wsc_open_http(api.url, path, api.token, api.actor, API_TIMEOUT_SHORT_MS, &ws,
                                     detail, sizeof(detail))) < 0)
        cli_error_set(&err, 1, "shell_failed", NULL, r, "cannot open the terminal: %s", detail);
    if (r >= 0)
        r = terminal_run(ws, &code, &err);
    wsc_free(ws);
    api_done(&api);
    if (r < 0)
        return cli_fail(c, &err);
    return code;
}

static int sandbox_delete(struct cli_ctx *c, int argc, char **argv)
{
    static const struct batch_spec spec = {
        .list_path = "/v1/sandboxes",
        .list_key = "sandboxes",
        .id_key = "id",
        .item_prefix = "/v1/sandboxes/",
        .done_key = "deleted",
        .noun = "sandbox",
        .progress = "Deleting",
    };

    c->command = "sandbox.delete";
    c->usage = usage_delete;
    return batch_delete_command(c, &spec, argc, argv);
}

static bool remote_path_ok(const char *p)
{
    return p[0] == '/' && strlen(p) < 4096;
}

static int sandbox_upload(struct cli_ctx *c, int argc, char **argv)
{
    _cleanup_free_ char *path = NULL;
    json_auto_t *res = NULL;
    struct api api;
    struct cli_error err;
    size_t bytes = 0;
    int code, r;

    c->command = "sandbox.upload";
    c->usage = usage_upload;
    if (!parse_plain(c, argc, argv, &code))
        return code;
    if (argc - optind != 3)
        return cli_usage_error(c, "expected ID LOCAL REMOTE");
    if (!remote_path_ok(argv[optind + 2]))
        return cli_usage_error(c, "REMOTE must be an absolute path, got '%.64s'", argv[optind + 2]);
    /* Before api_open, so a typo never starts a gateway. */
    if (access(argv[optind + 1], R_OK) < 0) {
        cli_error_set(&err, 1, "local_io", NULL, -errno, "cannot read %s: %m", argv[optind + 1]);
        return cli_fail(c, &err);
    }
    path = api_files_path(argv[optind], argv[optind + 2]);
    if (!path)
        return fail_oom(c);
    r = api_open(c, &api, &err);
    if (r >= 0)
        r = localfile_upload(&api, path, argv[optind + 1], &res, &bytes, &err);
    api_done(&api);
    if (r < 0)
        return cli_fail(c, &err);
    if (!res)
        res = json_pack("{s:s, s:I}", "path", argv[optind + 2], "bytes", (json_int_t)bytes);
    if (!c->json)
        printf("uploaded %zu bytes to %s:%s\n", bytes, argv[optind], argv[optind + 2]);
    return cli_ok(c, json_incref(res));
}

static int sandbox_download(struct cli_ctx *c, int argc, char **argv)
{
    _cleanup_free_ char *path = NULL, *local = NULL;
    struct api api;
    struct cli_error err;
    struct stat st;
    const char *remote, *base;
    size_t bytes = 0;
    int code, r;

    c->command = "sandbox.download";
    c->usage = usage_download;
    if (!parse_plain(c, argc, argv, &code))
        return code;
    if (argc - optind != 3)
        return cli_usage_error(c, "expected ID REMOTE LOCAL");
    remote = argv[optind + 1];
    if (!remote_path_ok(remote))
        return cli_usage_error(c, "REMOTE must be an absolute path, got '%.64s'", remote);
    base = strrchr(remote, '/') + 1;
    /* Like cp: into a directory, the file keeps its remote name. */
    if (stat(argv[optind + 2], &st) == 0 && S_ISDIR(st.st_mode)) {
        if (!*base)
            return cli_usage_error(c, "REMOTE names a directory: %.64s", remote);
        const char *dir = argv[optind + 2];
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
            n--;
        r = asprintf(&local, "%.*s/%s", (int)n, dir, base);
    } else {
        r = asprintf(&local, "%s", argv[optind + 2]);
    }
    path = api_files_path(argv[optind], remote);
    if (r < 0 || !path)
        return fail_oom(c);
    r = api_open(c, &api, &err);
    if (r >= 0)
        r = localfile_download(&api, path, local, &bytes, &err);
    api_done(&api);
    if (r < 0)
        return cli_fail(c, &err);
    if (!c->json)
        printf("downloaded %zu bytes to %s\n", bytes, local);
    return cli_ok(c, json_pack("{s:s, s:s, s:I}", "path", remote, "local", local, "bytes",
                               (json_int_t)bytes));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted NAME=VALUE lines, so the output is stable and diffable. */
static int print_env(const json_t *vars)
{
    size_t n = 0, cap = json_object_size(vars);
    _cleanup_free_ const char **keys = calloc(cap ? cap : 1, sizeof(*keys));
    const char *key;
    json_t *v;

    if (!keys)
        return -ENOMEM;
    json_object_foreach((json_t *)vars, key, v)
    {
        if (n < cap)
            keys[n++] = key;
    }
    qsort(keys, n, sizeof(*keys), cmp_str);
    for (size_t i = 0; i < n; i++) {
        const char *value = json_string_value(json_object_get(vars, keys[i]));
        printf("%s=%s\n", keys[i], value ? value : "");
    }
    return 0;
}

static int sandbox_env(struct cli_ctx *c, int argc, char **argv)
{
    _cleanup_free_ char *path = NULL;
    json_auto_t *set = json_object(), *cur = NULL, *res = NULL, *body = NULL;
    struct api api;
    struct cli_error err;
    json_t *vars;
    int code, r;

    c->command = "sandbox.env";
    c->usage = usage_env;
    if (!set)
        return fail_oom(c);
    if (!parse_plain(c, argc, argv, &code))
        return code;
    if (optind >= argc)
        return cli_usage_error(c, "missing sandbox ID");
    for (int i = optind + 1; i < argc; i++)
        if (cli_parse_env(argv[i], set) < 0)
            return cli_usage_error(c, "expected NAME=VALUE with a valid name, got '%.64s'",
                                   argv[i]);
    path = api_path("/v1/sandboxes/", argv[optind], "/env");
    if (!path)
        return fail_oom(c);
    r = api_open(c, &api, &err);
    if (r >= 0)
        r = api_call(&api, "GET", path, NULL, API_TIMEOUT_SHORT_MS, NULL, &cur, &err);
    if (r >= 0 && json_object_size(set) > 0) {
        /* Merged here so the result is "these added or changed, the rest
         * kept" whether the gateway's PUT replaces or merges. */
        vars = json_object_get(cur, "env_vars");
        body =
            json_pack("{s:o}", "env_vars", json_is_object(vars) ? json_copy(vars) : json_object());
        if (!body || json_object_update(json_object_get(body, "env_vars"), set) < 0) {
            api_done(&api);
            return fail_oom(c);
        }
        r = api_call(&api, "PUT", path, body, API_TIMEOUT_SHORT_MS, NULL, &res, &err);
    }
    api_done(&api);
    if (r < 0)
        return cli_fail(c, &err);
    if (json_object_size(set) == 0) {
        vars = json_object_get(cur, "env_vars");
        if (!c->json)
            print_env(vars);
        return cli_ok(c, json_incref(cur));
    }
    return cli_ok(c, json_incref(res ? res : body));
}

int cli_power(struct cli_ctx *c, int argc, char **argv, const char *base, const char *op)
{
    _cleanup_free_ char *path = NULL, *suffix = NULL;
    json_auto_t *body = json_object(), *res = NULL;
    struct api api;
    struct cli_error err;
    int code, r;

    enum { OPT_TO_DISK = 1 };
    static const struct option opts[] = {
        {"to-disk", no_argument, NULL, OPT_TO_DISK}, CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == OPT_TO_DISK && strcmp(op, "pause") == 0)
            json_object_set_new(body, "to_disk", json_true());
        else if (opt == OPT_TO_DISK)
            return cli_usage_error(c, "--to-disk is for pause");
        else if (!cli_common_option(c, opt, argc, argv, &code))
            return code;
    }
    if (optind >= argc)
        return cli_usage_error(c, "missing ID");
    if (optind + 1 < argc)
        return cli_usage_error(c, "unexpected argument '%.64s'", argv[optind + 1]);
    if (asprintf(&suffix, "/%s", op) < 0)
        suffix = NULL;
    path = suffix ? api_path(base, argv[optind], suffix) : NULL;
    if (!path || !body)
        return fail_oom(c);
    r = api_open(c, &api, &err);
    if (r >= 0)
        r = api_call(&api, "POST", path, body, API_TIMEOUT_LONG_MS, NULL, &res, &err);
    api_done(&api);
    if (r < 0)
        return cli_fail(c, &err);
    if (!c->json) {
        const char *id = json_str(res, "snapshot_id");
        if (id)
            printf("%s\n", id);
        else
            printf("%s %s\n",
                   json_str(res, "id") ? json_str(res, "id") : json_str(res, "session_id"),
                   json_str(res, "status"));
    }
    return cli_ok(c, json_incref(res));
}

/* stop, start, pause, resume, snapshot: a POST with {} that answers the
 * sandbox (or the snapshot). */
static int sandbox_power(struct cli_ctx *c, int argc, char **argv, const char *op)
{
    static const struct {
        const char *op, *command, *usage;
    } ops[] = {
        {"stop", "sandbox.stop", usage_stop},
        {"start", "sandbox.start", usage_start},
        {"pause", "sandbox.pause", usage_pause},
        {"resume", "sandbox.resume", usage_resume},
        {"snapshot", "sandbox.snapshot", usage_snapshot},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
        if (strcmp(ops[i].op, op) == 0) {
            c->command = ops[i].command;
            c->usage = ops[i].usage;
        }
    return cli_power(c, argc, argv, "/v1/sandboxes/", op);
}

static int sandbox_stop(struct cli_ctx *c, int argc, char **argv)
{
    return sandbox_power(c, argc, argv, "stop");
}

static int sandbox_start(struct cli_ctx *c, int argc, char **argv)
{
    return sandbox_power(c, argc, argv, "start");
}

static int sandbox_pause(struct cli_ctx *c, int argc, char **argv)
{
    return sandbox_power(c, argc, argv, "pause");
}

static int sandbox_resume(struct cli_ctx *c, int argc, char **argv)
{
    return sandbox_power(c, argc, argv, "resume");
}

static int sandbox_snapshot(struct cli_ctx *c, int argc, char **argv)
{
    return sandbox_power(c, argc, argv, "snapshot");
}

static void print_port(const json_t *p)
{
    const char *err = json_string_value(json_object_get(p, "error"));
    printf("%s:%lld -> guest port %lld%s%s\n", json_string_value(json_object_get(p, "host")),
           (long long)json_integer_value(json_object_get(p, "host_port")),
           (long long)json_integer_value(json_object_get(p, "guest_port")), err ? ": " : "",
           err ? err : "");
}

static int sandbox_port(struct cli_ctx *c, int argc, char **argv)
{
    enum { OPT_HOST_PORT = 256, OPT_LOOPBACK };
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"host-port", required_argument, NULL, OPT_HOST_PORT},
        {"guest-loopback", no_argument, NULL, OPT_LOOPBACK},
        {NULL, 0, NULL, 0},
    };
    _cleanup_free_ char *path = NULL;
    json_auto_t *body = NULL, *res = NULL;
    const char *op, *method = "GET";
    long guest = 0, host = 0;
    bool loopback = false;
    struct api api;
    struct cli_error err;
    int opt, code, r;

    c->command = "sandbox.port";
    c->usage = usage_port;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == OPT_HOST_PORT) {
            if (cli_parse_int(optarg, 1, 65535, &host) < 0)
                return cli_usage_error(c, "--host-port: expected 1 to 65535, got '%.32s'", optarg);
        } else if (opt == OPT_LOOPBACK) {
            loopback = true;
        } else if (!cli_common_option(c, opt, argc, argv, &code)) {
            return code;
        }
    }
    if (optind >= argc)
        return cli_usage_error(c, "missing port command: expose, list or close");
    op = argv[optind];
    bool with_port = strcmp(op, "expose") == 0 || strcmp(op, "close") == 0;
    if (!with_port && strcmp(op, "list") != 0 && strcmp(op, "ls") != 0)
        return cli_usage_error(c, "unknown port command '%.64s'", op);
    if (optind + 1 >= argc)
        return cli_usage_error(c, "missing sandbox ID");
    if (with_port && (optind + 2 >= argc || cli_parse_int(argv[optind + 2], 1, 65535, &guest) < 0))
        return cli_usage_error(c, "expected a GUEST_PORT of 1 to 65535 after the ID");
    if (argc > optind + (with_port ? 3 : 2))
        return cli_usage_error(c, "unexpected argument '%.64s'", argv[argc - 1]);
    if ((host || loopback) && strcmp(op, "expose") != 0)
        return cli_usage_error(c, "--host-port and --guest-loopback go with expose");

    if (strcmp(op, "close") == 0) {
        char suffix[24];
        snprintf(suffix, sizeof(suffix), "/ports/%ld", guest);
        path = api_path("/v1/sandboxes/", argv[optind + 1], suffix);
        method = "DELETE";
    } else {
        path = api_path("/v1/sandboxes/", argv[optind + 1], "/ports");
        if (strcmp(op, "expose") == 0) {
            method = "POST";
            body = json_pack("{s:I, s:b}", "guest_port", (json_int_t)guest, "guest_loopback",
                             loopback);
            if (body && host)
                json_object_set_new(body, "host_port", json_integer(host));
            if (!body)
                return fail_oom(c);
        }
    }
    if (!path)
        return fail_oom(c);
    r = api_open(c, &api, &err);
    if (r >= 0)
        r = api_call(&api, method, path, body, API_TIMEOUT_SHORT_MS, NULL, &res, &err);
    api_done(&api);
    if (r < 0)
        return cli_fail(c, &err);
    if (!c->json) {
        if (strcmp(op, "expose") == 0) {
            printf("%s:%lld\n", json_string_value(json_object_get(res, "host")),
                   (long long)json_integer_value(json_object_get(res, "host_port")));
        } else if (strcmp(op, "close") != 0) {
            size_t i;
            json_t *p;
            json_array_foreach(json_object_get(res, "ports"), i, p) print_port(p);
        }
    }
    return cli_ok(c, json_incref(res));
}

int cmd_sandbox(struct cli_ctx *c, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(struct cli_ctx *c, int argc, char **argv);
    } subs[] = {
        {"create", sandbox_create},     {"list", sandbox_list},     {"ls", sandbox_list},
        {"exec", sandbox_exec},         {"delete", sandbox_delete}, {"rm", sandbox_delete},
        {"shell", sandbox_shell},       {"upload", sandbox_upload}, {"download", sandbox_download},
        {"env", sandbox_env},           {"port", sandbox_port},     {"stop", sandbox_stop},
        {"start", sandbox_start},       {"pause", sandbox_pause},   {"resume", sandbox_resume},
        {"snapshot", sandbox_snapshot},
    };

    c->command = "sandbox";
    c->usage = usage_sandbox;
    if (argc < 2)
        return cli_usage_error(c, "missing sandbox command");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0)
        return cli_help(c);
    for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].fn(c, argc - 1, argv + 1);
    return cli_usage_error(c, "unknown sandbox command '%.64s'", argv[1]);
}
