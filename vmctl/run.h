/* The run/callback core: one way to run a command in a guest, shared by
 * command sandboxes and browser sessions.
 *
 * Usage:
 *   struct run_hooks *global = run_hooks_new();
 *   run_hooks_add_pre(global, my_veto, data);        // may block
 *   run_hooks_add_post(global, my_audit, data);      // observer
 *   run_hooks_add_error(global, my_alarm, data);     // observer
 *   struct run_request req = RUN_REQUEST_INIT("echo hi");
 *   struct run_result res; struct ph_error err;
 *   r = run_command(&target, global, per_vm_hooks, &req, &res, &err);
 *   ... run_result_done(&res);
 *
 * Semantics (DESIGN §3):
 *  - pre hooks run in registration order, global list first then the VM's;
 *    the first that returns < 0 vetoes: the command never reaches the
 *    transport, the caller gets PH_ERR_BLOCKED with the hook's reason, and no
 *    further hooks (pre, post or error) run.
 *  - post hooks run after a completed command, non-zero exit included.
 *  - error hooks run when the transport failed (timeout, unavailable,
 *    transport); the original error is what the caller gets.
 *  - A failing observer (returns < 0) is reported to the logger and ignored.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum run_shell {
    RUN_SHELL_LOGIN = 0, /* guest user's login shell: profile + env vars */
    RUN_SHELL_RAW,       /* the command as given, no wrapping */
};
const char *run_shell_name(enum run_shell shell);
int run_shell_parse(const char *name, enum run_shell *out); /* -EINVAL on unknown */

#define RUN_DEFAULT_TIMEOUT_S 30
#define RUN_MAX_TIMEOUT_S 3600
#define RUN_MAX_COMMAND_LEN (64 * 1024)
#define RUN_MAX_OUTPUT (8 * 1024 * 1024) /* per stream; more is truncated */

enum run_stream {
    RUN_STREAM_START = 0, /* the pre hooks let the command through; no data */
    RUN_STREAM_STDOUT,
    RUN_STREAM_STDERR,
};

struct run_request {
    const char *command; /* weak */
    enum run_shell shell;
    int timeout_s;
    const char *actor;      /* weak, who asked (for audit); may be NULL */
    const void *stdin_data; /* weak, may be NULL */
    size_t stdin_len;
    /* Streaming, when set: called on the running thread with
     * RUN_STREAM_START once the command passed the pre hooks, then with
     * output as it arrives (what the result keeps, so at most
     * RUN_MAX_OUTPUT per stream). The result has all of it as well. */
    void (*on_output)(void *data, enum run_stream stream, const char *buf, size_t len);
    /* Polled (with output_data) while the command runs, when set: true
     * kills it in the guest and the call fails with PH_ERR_CANCELLED. */
    bool (*cancelled)(void *data);
    void *output_data;
};
#define RUN_REQUEST_INIT(cmd)                                                                      \
    ((struct run_request){                                                                         \
        .command = (cmd), .shell = RUN_SHELL_LOGIN, .timeout_s = RUN_DEFAULT_TIMEOUT_S})

struct run_result {
    int exit_code; /* -1 when killed by a signal */
    char *out;     /* owned, NUL-terminated */
    size_t out_len;
    char *err; /* owned, NUL-terminated */
    size_t err_len;
    bool out_truncated;
    bool err_truncated;
    int64_t duration_ms;
};
void run_result_done(struct run_result *res);

/* What every hook sees. result is set for post hooks, error for error hooks. */
struct run_ctx {
    const char *vm_id;
    const char *command;
    enum run_shell shell;
    int timeout_s;
    const char *actor;
    const struct run_result *result; /* NULL until post */
    const struct ph_error *error;    /* NULL unless error hook */
};

/* A pre hook returns 0 to allow, < 0 to veto, writing its reason. */
typedef int (*run_pre_fn)(const struct run_ctx *ctx, void *data, char *reason, size_t reason_len);
/* An observer returns 0, or < 0 when it failed (logged, then ignored). */
typedef int (*run_observer_fn)(const struct run_ctx *ctx, void *data);
typedef void (*run_log_fn)(void *data, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct run_hooks;
struct run_hooks *run_hooks_new(void);
void run_hooks_free(struct run_hooks *hooks);
int run_hooks_add_pre(struct run_hooks *hooks, run_pre_fn fn, void *data);
int run_hooks_add_post(struct run_hooks *hooks, run_observer_fn fn, void *data);
int run_hooks_add_error(struct run_hooks *hooks, run_observer_fn fn, void *data);
/* Where failing observers are reported (default: nowhere). */
void run_hooks_set_logger(struct run_hooks *hooks, run_log_fn fn, void *data);

/* Runs the pre hooks only (used for actions that are not shell commands,
 * such as CDP navigations, which must pass the same policy). Returns 0 or
 * -EPERM with err filled as PH_ERR_BLOCKED. */
int run_hooks_check(struct run_hooks *global, struct run_hooks *local, const struct run_ctx *ctx,
                    struct ph_error *err);
/* Runs the post or error observers for an action run outside run_command. */
void run_hooks_observe(struct run_hooks *global, struct run_hooks *local,
                       const struct run_ctx *ctx);

/* The transport below the core: libssh in production, a fake in unit tests. */
struct run_transport {
    const char *vm_id;
    /* Runs the already-wrapped command; fills res or err. */
    int (*exec)(void *data, const char *command, const struct run_request *req,
                struct run_result *res, struct ph_error *err);
    void *data;
};

/* The command the transport receives for a request (login wraps it in a
 * login shell). malloc'd. */
char *run_wrap_command(const struct run_request *req);

int run_command(const struct run_transport *t, struct run_hooks *global, struct run_hooks *local,
                const struct run_request *req, struct run_result *res, struct ph_error *err);
