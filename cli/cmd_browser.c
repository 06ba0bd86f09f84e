/* `porthole browser ...`: browser sessions through /v1/browser/sessions.
 * Flags and output mirror SmolVM's `smolvm browser` so agent prompts written
 * for it carry over (`browser start --live --json` → data.cdp_url). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "cli.h"
#include "httpc.h"
#include "localfile.h"
#include "util.h"

extern char **environ;

/* SmolVM's limits (DESIGN §4): checked here so a typo is a usage error. */
#define VIEWPORT_W_MIN 640
#define VIEWPORT_W_MAX 7680
#define VIEWPORT_H_MIN 480
#define VIEWPORT_H_MAX 4320
#define VIEWPORT_W_DEFAULT 1280
#define VIEWPORT_H_DEFAULT 720
#define BROWSER_MEM_MIN 512
#define BROWSER_MEM_MAX 16384
#define BROWSER_DISK_MIN 2048
#define BROWSER_DISK_MAX 16384
#define BROWSER_TIMEOUT_MIN 1
#define BROWSER_TIMEOUT_MAX 240

static const char usage_browser[] =
    "Usage: porthole browser COMMAND [ARGS...] [--json]\n"
    "\n"
    "  start        start a session; prints session_id, cdp_url, live_url, control_url\n"
    "  stop         stop sessions: browser stop ID...|--all\n"
    "  list         list sessions\n"
    "  open         print a session's live view URL and open it when possible\n"
    "  logs         print a session's logs\n"
    "  screenshot   save the session's screen: browser screenshot ID FILE\n"
    "  record       recordings: browser record start|stop|list ID [RID]\n"
    "  pause        stop a session's CPUs, memory kept: browser pause ID [--to-disk]\n"
    "  resume       run a paused session again: browser resume ID\n"
    "  fork         copy a live session, pages and logins: browser fork ID --count N\n"
    "\n"
    "Run 'porthole browser COMMAND --help' for a command's options.\n";

static const char usage_start[] =
    "Usage: porthole browser start [--live] [--record-video] [--viewport-width W]\n"
    "         [--viewport-height H] [--timeout-minutes N] [--profile-id P]\n"
    "         [--profile-mode ephemeral|persistent] [--no-downloads] [--memory MIB]\n"
    "         [--disk MIB] [--env NAME=VALUE]... [--json]\n"
    "\n"
    "Starts Chromium in a fresh microVM and prints session_id, cdp_url (give it to\n"
    "Playwright's connectOverCDP or Puppeteer), live_url (watch the screen) and\n"
    "control_url (watch and drive it).\n"
    "\n"
    "  --live                 live view: live_url and control_url open the screen in a\n"
    "                         browser (control_url also takes mouse and keyboard)\n"
    "  --record-video         record the screen to MP4 (needs --live)\n"
    "  --viewport-width W     640..7680 (default 1280)\n"
    "  --viewport-height H    480..4320 (default 720)\n"
    "  --timeout-minutes N    stop the session after N minutes, 1..240 (default 30)\n"
    "  --profile-id P         browser profile to keep across sessions (implies persistent)\n"
    "  --profile-mode MODE    ephemeral (default) or persistent\n"
    "  --no-downloads         refuse file downloads in the browser\n"
    "  --memory MIB           guest memory, 512..16384 (default 2048)\n"
    "  --disk MIB             guest disk, 2048..16384 (default 4096)\n"
    "  --env NAME=VALUE       environment variable in the guest (repeatable)\n"
    "  --json                 print the session as a JSON envelope\n";

static const char usage_stop[] =
    "Usage: porthole browser stop ID...|--all [--json]\n"
    "\n"
    "Stops sessions (recordings are finalized and kept); prints each stopped id.\n";

static const char usage_list[] = "Usage: porthole browser list [--json]\n"
                                 "\n"
                                 "Lists browser sessions.\n";

static const char usage_open[] =
    "Usage: porthole browser open ID [--json]\n"
    "\n"
    "Prints the session's live view URL, and opens it with xdg-open when a display\n"
    "is available. Only sessions started with --live have one.\n";

static const char usage_logs[] = "Usage: porthole browser logs ID [--json]\n"
                                 "\n"
                                 "Prints the session's logs (guest init, Chromium).\n";

static const char usage_screenshot[] = "Usage: porthole browser screenshot ID FILE [--json]\n"
                                       "\n"
                                       "Saves the session's whole screen as a PNG file.\n";

static const char usage_record[] =
    "Usage: porthole browser record start ID [--json]\n"
    "       porthole browser record stop ID RID [--json]\n"
    "       porthole browser record list ID [--json]\n"
    "\n"
    "Starts a screen recording (prints its id), stops one (the MP4 is finalized\n"
    "and kept), or lists a session's recordings.\n";

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

/* One API call whose decoded answer is the command's data. */
static int simple_call(struct cli_ctx *c, const char *method, const char *path, json_t *body,
                       int timeout_ms, const char *progress, json_t **out)
{
    struct api api;
    struct cli_error err;
    int r;

    r = api_open(c, &api, &err);
    if (r >= 0)
        r = api_call(&api, method, path, body, timeout_ms, progress, out, &err);
    api_done(&api);
    if (r < 0)
        return cli_fail(c, &err);
    return 0;
}

static const char usage_pause[] =
    "Usage: porthole browser pause ID [--to-disk] [--json]\n"
    "\n"
    "Stops the session's CPUs: it uses no CPU, keeps its memory and answers nothing\n"
    "until resumed. --to-disk also writes its memory out and ends the VM process.\n";
static const char usage_resume[] = "Usage: porthole browser resume ID [--json]\n"
                                   "\n"
                                   "Runs a paused session again; its clock is set to the host's.\n";
static const char usage_fork[] =
    "Usage: porthole browser fork ID [--count N] [--json]\n"
    "\n"
    "Makes N (1..8, default 1) new sessions that carry on from this one as it is\n"
    "now: the same open pages, cookies, storage and logins. Each has its own\n"
    "URLs, tokens, timeout and disk from then on. Prints one session per line.\n";

static int browser_pause(struct cli_ctx *c, int argc, char **argv)
{
    c->command = "browser.pause";
    c->usage = usage_pause;
    return cli_power(c, argc, argv, "/v1/browser/sessions/", "pause");
}

static int browser_resume(struct cli_ctx *c, int argc, char **argv)
{
    c->command = "browser.resume";
    c->usage = usage_resume;
    return cli_power(c, argc, argv, "/v1/browser/sessions/", "resume");
}

static int browser_fork(struct cli_ctx *c, int argc, char **argv)
{
    enum { OPT_COUNT = 1 };
    static const struct option opts[] = {
        {"count", required_argument, NULL, OPT_COUNT}, CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    json_auto_t *body = json_object(), *res = NULL;
    _cleanup_free_ char *path = NULL;
    int opt, code;
    long n = 1;

    c->command = "browser.fork";
    c->usage = usage_fork;
    if (!body)
        return fail_oom(c);
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == OPT_COUNT) {
            if (!cli_opt_int(c, "--count", optarg, 1, 8, &n, &code))
                return code;
        } else if (!cli_common_option(c, opt, argc, argv, &code)) {
            return code;
        }
    }
    if (optind >= argc)
        return cli_usage_error(c, "missing session ID");
    if (optind + 1 < argc)
        return cli_usage_error(c, "unexpected argument '%.64s'", argv[optind + 1]);
    json_object_set_new(body, "count", json_integer(n));
    if (!(path = api_path("/v1/browser/sessions/", argv[optind], "/fork")))
        return fail_oom(c);
    if ((code = simple_call(c, "POST", path, body, API_TIMEOUT_LONG_MS, "Forking", &res)) != 0)
        return code;
    if (!c->json) {
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(res, "sessions"), i, s)
            printf("%s %s %s\n", json_str(s, "session_id") ? json_str(s, "session_id") : "-",
                   json_str(s, "status") ? json_str(s, "status") : "-",
                   json_str(s, "cdp_url") ? json_str(s, "cdp_url")
                                          : (json_str(s, "error") ? json_str(s, "error") : ""));
    }
    return cli_ok(c, json_incref(res));
}

static int browser_start(struct cli_ctx *c, int argc, char **argv)
{
    enum {
        OPT_LIVE = 1,
        OPT_RECORD,
        OPT_VW,
        OPT_VH,
        OPT_TIMEOUT,
        OPT_PROFILE_ID,
        OPT_PROFILE_MODE,
        OPT_NO_DOWNLOADS,
        OPT_MEMORY,
        OPT_DISK,
        OPT_ENV,
    };
    static const struct option opts[] = {
        {"live", no_argument, NULL, OPT_LIVE},
        {"record-video", no_argument, NULL, OPT_RECORD},
        {"viewport-width", required_argument, NULL, OPT_VW},
        {"viewport-height", required_argument, NULL, OPT_VH},
        {"timeout-minutes", required_argument, NULL, OPT_TIMEOUT},
        {"profile-id", required_argument, NULL, OPT_PROFILE_ID},
        {"profile-mode", required_argument, NULL, OPT_PROFILE_MODE},
        {"no-downloads", no_argument, NULL, OPT_NO_DOWNLOADS},
        {"memory", required_argument, NULL, OPT_MEMORY},
        {"disk", required_argument, NULL, OPT_DISK},
        {"env", required_argument, NULL, OPT_ENV},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    json_auto_t *body = json_object(), *env = json_object(), *session = NULL;
    bool live = false, record = false;
    long width = 0, height = 0, n;
    const char *profile_id = NULL, *profile_mode = NULL, *live_url, *control_url;
    int opt, code;

    c->command = "browser.start";
    c->usage = usage_start;
    if (!body || !env)
        return fail_oom(c);
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_LIVE:
            live = true;
            break;
        case OPT_RECORD:
            record = true;
            break;
        case OPT_VW:
            if (!cli_opt_int(c, "--viewport-width", optarg, VIEWPORT_W_MIN, VIEWPORT_W_MAX, &width,
                             &code))
                return code;
            break;
        case OPT_VH:
            if (!cli_opt_int(c, "--viewport-height", optarg, VIEWPORT_H_MIN, VIEWPORT_H_MAX,
                             &height, &code))
                return code;
            break;
        case OPT_TIMEOUT:
            if (!cli_opt_int(c, "--timeout-minutes", optarg, BROWSER_TIMEOUT_MIN,
                             BROWSER_TIMEOUT_MAX, &n, &code))
                return code;
            json_object_set_new(body, "timeout_minutes", json_integer(n));
            break;
        case OPT_PROFILE_ID:
            /* Becomes a directory name on the gateway's side. */
            if (!*optarg || strlen(optarg) > 64 ||
                strspn(optarg,
                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
                    strlen(optarg) ||
                optarg[0] == '.')
                return cli_usage_error(c,
                                       "--profile-id: use up to 64 letters, digits, '-', '_' "
                                       "or '.', got '%.64s'",
                                       optarg);
            profile_id = optarg;
            break;
        case OPT_PROFILE_MODE:
            if (strcmp(optarg, "ephemeral") != 0 && strcmp(optarg, "persistent") != 0)
                return cli_usage_error(c,
                                       "--profile-mode: expected ephemeral or persistent, "
                                       "got '%.32s'",
                                       optarg);
            profile_mode = optarg;
            break;
        case OPT_NO_DOWNLOADS:
            json_object_set_new(body, "allow_downloads", json_false());
            break;
        case OPT_MEMORY:
            if (!cli_opt_int(c, "--memory", optarg, BROWSER_MEM_MIN, BROWSER_MEM_MAX, &n, &code))
                return code;
            json_object_set_new(body, "mem_size_mib", json_integer(n));
            break;
        case OPT_DISK:
            if (!cli_opt_int(c, "--disk", optarg, BROWSER_DISK_MIN, BROWSER_DISK_MAX, &n, &code))
                return code;
            json_object_set_new(body, "disk_size_mib", json_integer(n));
            break;
        case OPT_ENV:
            if (cli_parse_env(optarg, env) < 0)
                return cli_usage_error(c,
                                       "--env: expected NAME=VALUE with a valid name, got "
                                       "'%.64s'",
                                       optarg);
            break;
        default:
            if (!cli_common_option(c, opt, argc, argv, &code))
                return code;
        }
    }
    if (optind < argc)
        return cli_usage_error(c, "unexpected argument '%.64s'", argv[optind]);
    if (record && !live)
        return cli_usage_error(c, "--record-video needs --live (recording captures the live "
                                  "view)");
    if (profile_id && !profile_mode)
        profile_mode = "persistent";
    if (profile_mode && strcmp(profile_mode, "persistent") == 0 && !profile_id)
        return cli_usage_error(c, "--profile-mode persistent needs --profile-id");
    if (profile_mode && strcmp(profile_mode, "ephemeral") == 0 && profile_id)
        return cli_usage_error(c, "--profile-id needs --profile-mode persistent");

    json_object_set_new(body, "mode", json_string(live ? "live" : "headless"));
    if (record)
        json_object_set_new(body, "record_video", json_true());
    if (width || height)
        json_object_set_new(body, "viewport",
                            json_pack("{s:i, s:i}", "width",
                                      width ? (int)width : VIEWPORT_W_DEFAULT, "height",
                                      height ? (int)height : VIEWPORT_H_DEFAULT));
    if (profile_mode)
        json_object_set_new(body, "profile_mode", json_string(profile_mode));
    if (profile_id)
        json_object_set_new(body, "profile_id", json_string(profile_id));
    if (json_object_size(env) > 0)
        json_object_set(body, "env_vars", env);

    code = simple_call(c, "POST", "/v1/browser/sessions", body, API_TIMEOUT_LONG_MS,
                       "Starting browser session", &session);
    if (code)
        return code;
    if (!json_str(session, "session_id")) {
        struct cli_error err;
        cli_error_set(&err, 1, "bad_response", NULL, -EPROTO,
                      "the gateway's answer has no session_id");
        return cli_fail(c, &err);
    }
    if (!c->json) {
        live_url = json_str(session, "live_url");
        printf("session_id: %s\n", json_str(session, "session_id"));
        printf("cdp_url: %s\n", json_str(session, "cdp_url") ? json_str(session, "cdp_url") : "-");
        printf("live_url: %s\n", live_url ? live_url : "- (headless; start with --live)");
        control_url = json_str(session, "control_url");
        printf("control_url: %s\n", control_url ? control_url : "- (headless; start with --live)");
    }
    return cli_ok(c, json_incref(session));
}

static int browser_stop(struct cli_ctx *c, int argc, char **argv)
{
    static const struct batch_spec spec = {
        .list_path = "/v1/browser/sessions",
        .list_key = "sessions",
        .id_key = "session_id",
        .item_prefix = "/v1/browser/sessions/",
        .done_key = "stopped",
        .noun = "session",
        .progress = "Stopping",
    };

    c->command = "browser.stop";
    c->usage = usage_stop;
    return batch_delete_command(c, &spec, argc, argv);
}

static int browser_list(struct cli_ctx *c, int argc, char **argv)
{
    static const char *const headers[] = {"SESSION_ID", "STATUS",  "MODE",
                                          "PROFILE",    "EXPIRES", "CDP_URL"};
    static const char *const keys[] = {"session_id", "status",     "mode",
                                       "profile_id", "expires_at", "cdp_url"};
    json_auto_t *list = NULL;
    json_t *arr;
    int code;

    c->command = "browser.list";
    c->usage = usage_list;
    if (!parse_plain(c, argc, argv, &code))
        return code;
    if (optind < argc)
        return cli_usage_error(c, "unexpected argument '%.64s'", argv[optind]);
    code = simple_call(c, "GET", "/v1/browser/sessions", NULL, API_TIMEOUT_SHORT_MS, NULL, &list);
    if (code)
        return code;
    arr = json_object_get(list, "sessions");
    if (!json_is_array(arr)) {
        struct cli_error err;
        cli_error_set(&err, 1, "bad_response", NULL, -EPROTO,
                      "the gateway's answer has no \"sessions\" array");
        return cli_fail(c, &err);
    }
    if (!c->json)
        cli_table(headers, keys, ARRAY_SIZE(keys), arr);
    return cli_ok(c, json_incref(list));
}

/* True when `xdg-open` is an executable somewhere on PATH. */
static bool have_xdg_open(void)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (!path || strlen(path) >= sizeof(buf))
        return false;
    strcpy(buf, path);
    for (char *save = NULL, *dir = strtok_r(buf, ":", &save); dir;
         dir = strtok_r(NULL, ":", &save)) {
        char exe[4200];
        snprintf(exe, sizeof(exe), "%s/xdg-open", *dir ? dir : ".");
        if (access(exe, X_OK) == 0)
            return true;
    }
    return false;
}

/* Starts xdg-open URL without waiting: it may stay as long as the browser it
 * opens. Its output goes to /dev/null so ours stays one clean line. */
static bool spawn_xdg_open(const char *url)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    char *argv[] = {"xdg-open", (char *)url, NULL};
    pid_t pid;
    int r;

    if (posix_spawn_file_actions_init(&fa) != 0)
        return false;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    r = posix_spawnp(&pid, "xdg-open", &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return r == 0;
}

static int browser_open(struct cli_ctx *c, int argc, char **argv)
{
    _cleanup_free_ char *path = NULL;
    json_auto_t *session = NULL;
    const char *live_url, *display = getenv("DISPLAY"), *wayland = getenv("WAYLAND_DISPLAY");
    bool opened = false;
    int code;

    c->command = "browser.open";
    c->usage = usage_open;
    if (!parse_plain(c, argc, argv, &code))
        return code;
    if (argc - optind != 1)
        return cli_usage_error(c, "expected one session ID");
    path = api_path("/v1/browser/sessions/", argv[optind], NULL);
    if (!path)
        return fail_oom(c);
    code = simple_call(c, "GET", path, NULL, API_TIMEOUT_SHORT_MS, NULL, &session);
    if (code)
        return code;
    live_url = json_str(session, "live_url");
    if (!live_url) {
        struct cli_error err;
        cli_error_set(&err, 1, "no_live_view",
                      "start a session with a live view: porthole browser start --live", -ENOENT,
                      "session %s has no live view (headless)", argv[optind]);
        return cli_fail(c, &err);
    }
    if (((display && *display) || (wayland && *wayland)) && have_xdg_open())
        opened = spawn_xdg_open(live_url);
    if (!c->json)
        printf("%s\n", live_url);
    return cli_ok(c, json_pack("{s:s, s:s, s:b}", "session_id", argv[optind], "live_url", live_url,
                               "opened", opened));
}

static int browser_logs(struct cli_ctx *c, int argc, char **argv)
{
    _cleanup_free_ char *path = NULL;
    json_auto_t *res = NULL;
    json_t *logs;
    int code;

    c->command = "browser.logs";
    c->usage = usage_logs;
    if (!parse_plain(c, argc, argv, &code))
        return code;
    if (argc - optind != 1)
        return cli_usage_error(c, "expected one session ID");
    path = api_path("/v1/browser/sessions/", argv[optind], "/logs");
    if (!path)
        return fail_oom(c);
    code = simple_call(c, "GET", path, NULL, API_TIMEOUT_SHORT_MS, NULL, &res);
    if (code)
        return code;
    logs = json_object_get(res, "logs");
    if (!c->json && json_is_string(logs)) {
        size_t len = json_string_length(logs);
        cli_write_all(STDOUT_FILENO, json_string_value(logs), len);
        if (len > 0 && json_string_value(logs)[len - 1] != '\n')
            cli_write_all(STDOUT_FILENO, "\n", 1);
    }
    return cli_ok(c, json_incref(res));
}

static int browser_screenshot(struct cli_ctx *c, int argc, char **argv)
{
    _cleanup_free_ char *path = NULL;
    struct api api;
    struct cli_error err;
    size_t bytes = 0;
    int code, r;

    c->command = "browser.screenshot";
    c->usage = usage_screenshot;
    if (!parse_plain(c, argc, argv, &code))
        return code;
    if (argc - optind != 2)
        return cli_usage_error(c, "expected ID FILE");
    path = api_path("/v1/browser/sessions/", argv[optind], "/screenshot");
    if (!path)
        return fail_oom(c);
    r = api_open(c, &api, &err);
    if (r >= 0)
        r = localfile_download(&api, path, argv[optind + 1], &bytes, &err);
    api_done(&api);
    if (r < 0)
        return cli_fail(c, &err);
    if (!c->json)
        printf("saved %s (%zu bytes)\n", argv[optind + 1], bytes);
    return cli_ok(c, json_pack("{s:s, s:s, s:I}", "session_id", argv[optind], "path",
                               argv[optind + 1], "bytes", (json_int_t)bytes));
}

static int browser_record(struct cli_ctx *c, int argc, char **argv)
{
    static const char *const headers[] = {"ID", "STATUS", "STARTED", "STOPPED", "BYTES"};
    static const char *const keys[] = {"id", "status", "started_at", "stopped_at", "bytes"};
    _cleanup_free_ char *path = NULL, *suffix = NULL, *rid = NULL;
    json_auto_t *res = NULL;
    const char *action;
    int code, nargs;

    c->command = "browser.record";
    c->usage = usage_record;
    if (!parse_plain(c, argc, argv, &code))
        return code;
    if (optind >= argc)
        return cli_usage_error(c, "missing action: start, stop or list");
    action = argv[optind];
    nargs = argc - optind - 1;
    if (strcmp(action, "start") == 0) {
        c->command = "browser.record.start";
        if (nargs != 1)
            return cli_usage_error(c, "expected: browser record start ID");
        path = api_path("/v1/browser/sessions/", argv[optind + 1], "/recordings");
        if (!path)
            return fail_oom(c);
        json_auto_t *body = json_object();
        code = simple_call(c, "POST", path, body, API_TIMEOUT_SHORT_MS, NULL, &res);
        if (code)
            return code;
        if (!c->json)
            printf("%s\n", json_str(res, "id") ? json_str(res, "id") : "-");
        return cli_ok(c, json_incref(res));
    }
    if (strcmp(action, "stop") == 0) {
        c->command = "browser.record.stop";
        if (nargs != 2)
            return cli_usage_error(c, "expected: browser record stop ID RID");
        rid = httpc_escape(argv[optind + 2], false);
        if (!rid || asprintf(&suffix, "/recordings/%s/stop", rid) < 0)
            return fail_oom(c);
        path = api_path("/v1/browser/sessions/", argv[optind + 1], suffix);
        if (!path)
            return fail_oom(c);
        /* Stopping finalizes the MP4, which waits for the encoder to drain. */
        code =
            simple_call(c, "POST", path, NULL, API_TIMEOUT_LONG_MS, "Finalizing recording", &res);
        if (code)
            return code;
        if (!c->json)
            printf("%s\n", json_str(res, "id") ? json_str(res, "id") : argv[optind + 2]);
        return cli_ok(c, json_incref(res));
    }
    if (strcmp(action, "list") == 0) {
        c->command = "browser.record.list";
        if (nargs != 1)
            return cli_usage_error(c, "expected: browser record list ID");
        path = api_path("/v1/browser/sessions/", argv[optind + 1], "/recordings");
        if (!path)
            return fail_oom(c);
        code = simple_call(c, "GET", path, NULL, API_TIMEOUT_SHORT_MS, NULL, &res);
        if (code)
            return code;
        if (!c->json)
            cli_table(headers, keys, ARRAY_SIZE(keys), json_object_get(res, "recordings"));
        return cli_ok(c, json_incref(res));
    }
    return cli_usage_error(c, "unknown record action '%.32s': start, stop or list", action);
}

int cmd_browser(struct cli_ctx *c, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(struct cli_ctx *c, int argc, char **argv);
    } subs[] = {
        {"start", browser_start},   {"stop", browser_stop},
        {"list", browser_list},     {"ls", browser_list},
        {"open", browser_open},     {"logs", browser_logs},
        {"record", browser_record}, {"screenshot", browser_screenshot},
        {"pause", browser_pause},   {"resume", browser_resume},
        {"fork", browser_fork},
    };

    c->command = "browser";
    c->usage = usage_browser;
    if (argc < 2)
        return cli_usage_error(c, "missing browser command");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0)
        return cli_help(c);
    for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].fn(c, argc - 1, argv + 1);
    return cli_usage_error(c, "unknown browser command '%.64s'", argv[1]);
}
