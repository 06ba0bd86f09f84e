/* The run/callback core's semantics (DESIGN §3), with a fake transport. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "run.h"

struct fake {
    int calls; /* how many commands reached the "guest" */
    char last[256];
    int fail_with; /* 0, or a ph_error_kind to fail with */
    int exit_code;
};

static int fake_exec(void *data, const char *command, const struct run_request *req,
                     struct run_result *res, struct ph_error *err)
{
    struct fake *f = data;
    (void)req;
    f->calls++;
    snprintf(f->last, sizeof(f->last), "%s", command);
    if (f->fail_with)
        return ph_error_set(err, (enum ph_error_kind)f->fail_with, -ETIMEDOUT, "fake failure");
    res->exit_code = f->exit_code;
    res->out = strdup("out");
    res->out_len = 3;
    res->err = strdup("");
    return 0;
}

/* A trace of hook calls: "g-pre,v-pre,g-post" ... */
static char trace[512];

static void note(const char *what)
{
    if (trace[0])
        strcat(trace, ",");
    strcat(trace, what);
}

static int pre_allow(const struct run_ctx *ctx, void *data, char *reason, size_t len)
{
    (void)ctx;
    (void)reason;
    (void)len;
    note(data);
    return 0;
}

static int pre_deny_rm(const struct run_ctx *ctx, void *data, char *reason, size_t len)
{
    note(data);
    if (strstr(ctx->command, "rm -rf /")) {
        snprintf(reason, len, "no rm for %s", ctx->vm_id);
        return -EPERM;
    }
    return 0;
}

static const struct run_result *seen_result;
static const struct ph_error *seen_error;
static int seen_exit;

static int observer(const struct run_ctx *ctx, void *data)
{
    note(data);
    seen_result = ctx->result;
    seen_error = ctx->error;
    if (ctx->result)
        seen_exit = ctx->result->exit_code;
    return 0;
}

static int failing_observer(const struct run_ctx *ctx, void *data)
{
    (void)ctx;
    note(data);
    return -EIO;
}

static int logged;
static void count_log(void *data, const char *fmt, ...)
{
    (void)data;
    (void)fmt;
    logged++;
}

int main(void)
{
    struct fake f = {0};
    struct run_transport t = {.vm_id = "vm-1", .exec = fake_exec, .data = &f};
    struct run_hooks *g = run_hooks_new(), *v = run_hooks_new();
    struct run_result res;
    struct ph_error err;
    struct run_request req = RUN_REQUEST_INIT("echo hi");

    run_hooks_set_logger(g, count_log, NULL);
    run_hooks_add_pre(g, pre_allow, "g-pre");
    run_hooks_add_pre(g, pre_deny_rm, "g-deny");
    run_hooks_add_post(g, observer, "g-post");
    run_hooks_add_error(g, observer, "g-err");
    run_hooks_add_pre(v, pre_allow, "v-pre");
    run_hooks_add_post(v, failing_observer, "v-post-fails");
    run_hooks_add_post(v, observer, "v-post");
    run_hooks_add_error(v, observer, "v-err");

    /* Allowed command: every pre hook in order (global first), then every
     * post observer in order; a failing observer is logged and skipped. */
    trace[0] = 0;
    CHECK(run_command(&t, g, v, &req, &res, &err) == 0);
    CHECK_STR(trace, "g-pre,g-deny,v-pre,g-post,v-post-fails,v-post");
    CHECK(f.calls == 1);
    CHECK(logged == 1);
    CHECK(res.exit_code == 0 && strcmp(res.out, "out") == 0);
    CHECK(seen_result == &res && seen_error == NULL);
    /* login shell wraps the command; raw does not. */
    CHECK(strstr(f.last, "bash -l -c 'echo hi'") != NULL);
    run_result_done(&res);

    req.shell = RUN_SHELL_RAW;
    CHECK(run_command(&t, g, v, &req, &res, &err) == 0);
    CHECK_STR(f.last, "echo hi");
    run_result_done(&res);

    /* A quote in a login command cannot break out of the wrapper. */
    req = RUN_REQUEST_INIT("echo 'a'\"b\"");
    CHECK(run_command(&t, g, v, &req, &res, &err) == 0);
    CHECK_STR(f.last, "exec bash -l -c 'echo '\\''a'\\''\"b\"'");
    run_result_done(&res);

    /* Non-zero exit is a completed command: post hooks, not error hooks. */
    f.exit_code = 3;
    trace[0] = 0;
    CHECK(run_command(&t, g, v, &req, &res, &err) == 0);
    CHECK(res.exit_code == 3 && seen_exit == 3);
    CHECK(strstr(trace, "err") == NULL);
    run_result_done(&res);
    f.exit_code = 0;

    /* Veto: never reaches the transport, caller gets blocked with the hook's
     * reason, later pre hooks and all observers are skipped. */
    int before = f.calls;
    trace[0] = 0;
    req = RUN_REQUEST_INIT("rm -rf / --no-preserve-root");
    CHECK(run_command(&t, g, v, &req, &res, &err) == -EPERM);
    CHECK(err.kind == PH_ERR_BLOCKED);
    CHECK_STR(err.message, "no rm for vm-1");
    CHECK(f.calls == before);
    CHECK_STR(trace, "g-pre,g-deny");
    CHECK_STR(ph_error_code(err.kind), "blocked");
    CHECK(ph_error_http_status(err.kind) == 403);

    /* The same transport works right after a veto. */
    req = RUN_REQUEST_INIT("echo again");
    CHECK(run_command(&t, g, v, &req, &res, &err) == 0);
    CHECK(f.calls == before + 1);
    run_result_done(&res);

    /* Transport failure: error observers see it, the caller gets the
     * original error, post observers do not run. */
    f.fail_with = PH_ERR_TIMEOUT;
    trace[0] = 0;
    seen_error = NULL;
    CHECK(run_command(&t, g, v, &req, &res, &err) < 0);
    CHECK(err.kind == PH_ERR_TIMEOUT);
    CHECK_STR(err.message, "fake failure");
    CHECK_STR(trace, "g-pre,g-deny,v-pre,g-err,v-err");
    CHECK(seen_error != NULL && seen_result == NULL);
    f.fail_with = 0;

    /* Input bounds are checked before any hook runs. */
    trace[0] = 0;
    req = RUN_REQUEST_INIT("");
    CHECK(run_command(&t, g, v, &req, &res, &err) == -EINVAL && err.kind == PH_ERR_INVALID);
    req = RUN_REQUEST_INIT("true");
    req.timeout_s = 0;
    CHECK(run_command(&t, g, v, &req, &res, &err) == -EINVAL);
    CHECK(trace[0] == 0);

    /* run_hooks_check alone (used for CDP actions) applies the same veto. */
    struct run_ctx ctx = {.vm_id = "vm-2", .command = "rm -rf /"};
    CHECK(run_hooks_check(g, v, &ctx, &err) == -EPERM);
    ctx.command = "Page.navigate https://example.com";
    CHECK(run_hooks_check(g, v, &ctx, &err) == 0);

    /* NULL lists are allowed; run_hooks_free(NULL) is a no-op. */
    req = RUN_REQUEST_INIT("true");
    CHECK(run_command(&t, NULL, NULL, &req, &res, &err) == 0);
    run_result_done(&res);
    run_hooks_free(NULL);
    run_hooks_free(g);
    run_hooks_free(v);
    CHECK_DONE();
}
