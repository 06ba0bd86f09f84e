/* The porthole command-line client: shared pieces of its commands.
 *
 * A command is `int cmd_x(struct cli_ctx *c, int argc, char **argv)` that
 * returns the process exit code and, in --json mode, has printed exactly one
 * envelope through cli_emit() (or one of its wrappers) on stdout:
 *   {"ok", "command", "exit_code", "data", "error": {code, message, recovery?}}
 * "ok" is true when the command did what was asked (for exec: the command ran,
 * whatever its exit code). Exit codes: 0 success, 1 failure (API, gateway,
 * local I/O), 2 usage error;
 * `sandbox exec` exits with the guest command's code. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

struct cli_ctx {
    bool json;             /* --json given (before any "--") */
    bool stderr_tty;       /* progress and colours only on a terminal */
    const char *command;   /* weak: envelope name, "sandbox.create" */
    const char *usage;     /* weak: usage text of the current command */
    const char *state_dir; /* weak: --state-dir, NULL if not given */
    bool emitted;          /* an envelope (or final error) was printed */
};

/* What a failed step tells the user. */
struct cli_error {
    int exit_code; /* CLI_EXIT_FAIL or CLI_EXIT_USAGE */
    char code[64]; /* "gateway_unreachable", or the API's code */
    char message[1024];
    char recovery[512]; /* "" when there is no hint */
};

/* Fills e and returns neg_errno, so failures read
 * `return cli_error_set(err, 1, "code", NULL, -EIO, "...")`. */
int cli_error_set(struct cli_error *e, int exit_code, const char *code, const char *recovery,
                  int neg_errno, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* --- output.c: the envelope and messages ------------------------------- */

/* Prints the envelope (json mode) or, on error in text mode, the message and
 * recovery on stderr. Steals data (may be NULL). Returns exit_code. */
int cli_emit(struct cli_ctx *c, int exit_code, json_t *data, const struct cli_error *e);
/* Success: envelope with data (stolen) in json mode, nothing in text mode. */
int cli_ok(struct cli_ctx *c, json_t *data);
int cli_fail(struct cli_ctx *c, const struct cli_error *e);
/* Usage error (exit 2): envelope, or the message and the usage on stderr. */
int cli_usage_error(struct cli_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints c->usage (help requested): on stdout, or as {"usage"} data. */
int cli_help(struct cli_ctx *c);
/* A notice for the user on stderr; silent in json mode. */
void cli_notice(struct cli_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints rows (an array of objects) as aligned columns on stdout: header i
 * above the values of keys[i] ("-" when missing or null). */
void cli_table(const char *const *headers, const char *const *keys, size_t ncols,
               const json_t *rows);
/* Copies src into dst[len], truncating; dst always ends up NUL-terminated. */
void cli_copy(char *dst, size_t len, const char *src);
/* Writes len bytes to fd, retrying short writes; 0 or -errno. */
int cli_write_all(int fd, const void *data, size_t len);

/* --- args.c: argument parsing ----------------------------------------- */

/* Parses a decimal integer in [min, max]; -EINVAL / -ERANGE. */
int cli_parse_int(const char *s, long min, long max, long *out);
/* Adds "NAME=VALUE" to obj (a JSON object); -EINVAL on a bad name or size. */
int cli_parse_env(const char *kv, json_t *obj);
/* Options common to every command, to append to a getopt_long table. */
#define CLI_OPT_JSON 1000
#define CLI_OPT_HELP 'h'
#define CLI_OPT_STATE_DIR 1001
#define CLI_COMMON_OPTIONS                                                                         \
    {"json", no_argument, NULL, CLI_OPT_JSON}, {"help", no_argument, NULL, CLI_OPT_HELP},          \
    {                                                                                              \
        "state-dir", required_argument, NULL, CLI_OPT_STATE_DIR                                    \
    }
/* Handles a common option, or getopt's '?' / ':' and anything unknown as a
 * usage error. Returns true when parsing goes on, false when the command
 * must return *exit_code (help printed, or a usage error). */
bool cli_common_option(struct cli_ctx *c, int opt, int argc, char **argv, int *exit_code);
/* An integer option value in [min, max]; false with a usage error otherwise. */
bool cli_opt_int(struct cli_ctx *c, const char *name, const char *value, long min, long max,
                 long *out, int *exit_code);
/* The state dir: --state-dir (made absolute), else default_state_dir(),
 * which honours $PORTHOLE_STATE_DIR. malloc'd; NULL on OOM. */
char *cli_state_dir(const struct cli_ctx *c);

/* --- progress.c: a one-line spinner on a terminal ----------------------- */

struct progress {
    bool active;       /* stderr is a terminal */
    const char *label; /* weak */
    long long start_ms;
    long long last_ms;
    unsigned frame;
};
void progress_start(struct progress *p, const struct cli_ctx *c, const char *label);
int progress_tick(void *p); /* an httpc_request tick; never aborts */
void progress_done(struct progress *p);

/* --- discover.c / api.c: reaching the gateway --------------------------- */

struct api {
    char url[1100];    /* "http://127.0.0.1:8790" */
    char *token;       /* owned, NULL if none */
    struct cli_ctx *c; /* weak */
    /* weak, NULL: none. Sent as X-Porthole-Actor (who the call is for). */
    const char *actor;
    /* NULL: a spinner on a terminal. Else called while a call waits;
     * non-zero abandons the call (-ECANCELED). */
    int (*tick)(void *data);
    void *tick_data; /* weak */
};

#define DISCOVER_LOCAL_LISTEN "127.0.0.1:8790"
#define DISCOVER_READY_TIMEOUT_MS 30000

/* The gateway this client talks to: PORTHOLE_URL (+ PORTHOLE_TOKEN), else the
 * local gateway of the state dir, started in the background when none answers
 * and autostart is set. */
int discover_gateway(struct cli_ctx *c, bool autostart, struct api *api, struct cli_error *err);
/* GET /healthz with a short timeout; 0 when it answers {"status":"ok"}. */
int discover_probe(const char *url, int timeout_ms, char *version, size_t version_len);

void api_done(struct api *api);
/* Connects (discovering or starting the gateway) for commands that call the API. */
int api_open(struct cli_ctx *c, struct api *api, struct cli_error *err);

#define API_TIMEOUT_SHORT_MS (60 * 1000)
#define API_TIMEOUT_LONG_MS (10 * 60 * 1000)

/* A JSON request: body borrowed (may be NULL); *out a new reference to the
 * decoded 2xx body (may be NULL when the body is empty). A 4xx/5xx becomes
 * err with the API's code and message. progress_label (may be NULL) shows a
 * spinner on a terminal while waiting. */
int api_call(struct api *api, const char *method, const char *path, json_t *body, int timeout_ms,
             const char *progress_label, json_t **out, struct cli_error *err);
/* Any request with a raw body (may be NULL) whose raw 2xx answer lands in
 * *out (malloc'd, NUL-terminated, at most max bytes; NULL when out is NULL). */
int api_fetch(struct api *api, const char *method, const char *path, const char *content_type,
              const void *body, size_t len, int timeout_ms, size_t max, char **out, size_t *out_len,
              struct cli_error *err);
/* err from an API error object {code, message[, recovery]} (status: for
 * a fallback code); returns -EIO. */
int api_error_object(const struct api *api, const json_t *e, int status, struct cli_error *err);
/* A JSON request whose 2xx answer is handed to on_body as it arrives (a
 * streamed answer; on_body < 0 abandons it). A 4xx/5xx becomes err. */
int api_stream(struct api *api, const char *method, const char *path, json_t *body, int timeout_ms,
               int (*on_body)(void *data, const char *buf, size_t len), void *data,
               struct cli_error *err);
/* GET of a raw body written to fd (files, screenshots). *bytes = size. */
int api_download(struct api *api, const char *path, int fd, size_t *bytes, struct cli_error *err);
/* PUT of len bytes from fd as a raw body; *out the JSON answer. */
int api_upload(struct api *api, const char *path, int fd, size_t len, json_t **out,
               struct cli_error *err);
/* "/v1/sandboxes/" + escaped id + suffix; malloc'd. */
char *api_path(const char *prefix, const char *id, const char *suffix);

/* "/v1/sandboxes/ID/files?path=REMOTE", escaped; malloc'd. */
char *api_files_path(const char *id, const char *remote);

/* Helpers to read API objects. */
const char *json_str(const json_t *obj, const char *key); /* NULL unless a string */

/* --- commands ----------------------------------------------------------- */

int cmd_gateway(struct cli_ctx *c, int argc, char **argv);
int cmd_sandbox(struct cli_ctx *c, int argc, char **argv);
/* POST BASE/ID/OP with {} ({"to_disk": true} for pause --to-disk): stop,
 * start, pause, resume, snapshot of a sandbox or session. Prints
 * "ID STATUS" (a snapshot's id); the answer is the command's data. */
int cli_power(struct cli_ctx *c, int argc, char **argv, const char *base, const char *op);
int cmd_browser(struct cli_ctx *c, int argc, char **argv);
int cmd_image(struct cli_ctx *c, int argc, char **argv);
int cmd_doctor(struct cli_ctx *c, int argc, char **argv);
int cmd_mcp(struct cli_ctx *c, int argc, char **argv);
