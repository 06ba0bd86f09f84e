#include "run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum hook_type { HOOK_PRE, HOOK_POST, HOOK_ERROR };

struct hook {
    enum hook_type type;
    union {
        run_pre_fn pre;
        run_observer_fn observer;
    } fn;
    void *data; /* weak */
};

struct run_hooks {
    struct hook *hooks; /* owned, in registration order */
    size_t n, cap;
    run_log_fn log;
    void *log_data; /* weak */
};

const char *run_shell_name(enum run_shell shell)
{
    return shell == RUN_SHELL_RAW ? "raw" : "login";
}

int run_shell_parse(const char *name, enum run_shell *out)
{
    if (strcmp(name, "login") == 0)
        *out = RUN_SHELL_LOGIN;
    else if (strcmp(name, "raw") == 0)
        *out = RUN_SHELL_RAW;
    else
        return -EINVAL;
    return 0;
}

void run_result_done(struct run_result *res)
{
    if (!res)
        return;
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
}

struct run_hooks *run_hooks_new(void)
{
    return calloc(1, sizeof(struct run_hooks));
}

void run_hooks_free(struct run_hooks *hooks)
{
    if (!hooks)
        return;
    free(hooks->hooks);
    free(hooks);
}

static int hooks_add(struct run_hooks *h, struct hook hook)
{
    if (h->n == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 8;
        struct hook *n = realloc(h->hooks, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        h->hooks = n;
        h->cap = ncap;
    }
    h->hooks[h->n++] = hook;
    return 0;
}

int run_hooks_add_pre(struct run_hooks *h, run_pre_fn fn, void *data)
{
    return hooks_add(h, (struct hook){.type = HOOK_PRE, .fn.pre = fn, .data = data});
}

int run_hooks_add_post(struct run_hooks *h, run_observer_fn fn, void *data)
{
    return hooks_add(h, (struct hook){.type = HOOK_POST, .fn.observer = fn, .data = data});
}

int run_hooks_add_error(struct run_hooks *h, run_observer_fn fn, void *data)
{
    return hooks_add(h, (struct hook){.type = HOOK_ERROR, .fn.observer = fn, .data = data});
}

void run_hooks_set_logger(struct run_hooks *h, run_log_fn fn, void *data)
{
    h->log = fn;
    h->log_data = data;
}

int run_hooks_check(struct run_hooks *global, struct run_hooks *local, const struct run_ctx *ctx,
                    struct ph_error *err)
{
    struct run_hooks *lists[2] = {global, local};

    for (size_t l = 0; l < 2; l++) {
        if (!lists[l])
            continue;
        for (size_t i = 0; i < lists[l]->n; i++) {
            struct hook *h = &lists[l]->hooks[i];
            char reason[400] = "";
            if (h->type != HOOK_PRE)
                continue;
            if (h->fn.pre(ctx, h->data, reason, sizeof(reason)) < 0)
                return ph_error_set(err, PH_ERR_BLOCKED, -EPERM, "%s",
                                    reason[0] ? reason : "command blocked by a pre-run callback");
        }
    }
    return 0;
}

void run_hooks_observe(struct run_hooks *global, struct run_hooks *local, const struct run_ctx *ctx)
{
    struct run_hooks *lists[2] = {global, local};
    enum hook_type want = ctx->error ? HOOK_ERROR : HOOK_POST;

    for (size_t l = 0; l < 2; l++) {
        if (!lists[l])
            continue;
        for (size_t i = 0; i < lists[l]->n; i++) {
            struct hook *h = &lists[l]->hooks[i];
            if (h->type != want)
                continue;
            /* An observer's failure must never change the command's outcome:
             * report it and carry on with the next one. */
            /* A list without a logger reports through the global one. */
            struct run_hooks *logger =
                lists[l]->log ? lists[l] : (global && global->log ? global : NULL);
            if (h->fn.observer(ctx, h->data) < 0 && logger)
                logger->log(logger->log_data, "%s observer %zu failed for vm %s command %s",
                            want == HOOK_ERROR ? "run_error" : "post_run", i, ctx->vm_id,
                            ctx->command);
        }
    }
}

char *run_wrap_command(const struct run_request *req)
{
    if (req->shell == RUN_SHELL_RAW)
        return strdup(req->command);
    _cleanup_free_ char *q = shell_quote(req->command);
    char *out = NULL;
    if (!q || asprintf(&out, "exec bash -l -c %s", q) < 0)
        return NULL;
    return out;
}

int run_command(const struct run_transport *t, struct run_hooks *global, struct run_hooks *local,
                const struct run_request *req, struct run_result *res, struct ph_error *err)
{
    struct run_ctx ctx = {
        .vm_id = t->vm_id,
        .command = req->command,
        .shell = req->shell,
        .timeout_s = req->timeout_s,
        .actor = req->actor,
    };
    struct ph_error terr = {0};
    int r;

    memset(res, 0, sizeof(*res));
    if (!req->command || !*req->command)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "command is empty");
    if (strlen(req->command) > RUN_MAX_COMMAND_LEN)
        return ph_error_set(err, PH_ERR_TOO_LARGE, -E2BIG, "command longer than %d bytes",
                            RUN_MAX_COMMAND_LEN);
    if (req->timeout_s <= 0 || req->timeout_s > RUN_MAX_TIMEOUT_S)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "timeout must be 1..%d seconds",
                            RUN_MAX_TIMEOUT_S);

    r = run_hooks_check(global, local, &ctx, err);
    if (r < 0)
        return r;

    _cleanup_free_ char *wrapped = run_wrap_command(req);
    if (!wrapped)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if (req->on_output)
        req->on_output(req->output_data, RUN_STREAM_START, NULL, 0);
    r = t->exec(t->data, wrapped, req, res, &terr);
    if (r < 0) {
        if (terr.kind == PH_ERR_NONE)
            ph_error_set(&terr, PH_ERR_TRANSPORT, r, "transport failed: %s", strerror(-r));
        run_result_done(res);
        ctx.error = &terr;
        run_hooks_observe(global, local, &ctx);
        if (err)
            *err = terr;
        return r;
    }
    ctx.result = res;
    run_hooks_observe(global, local, &ctx);
    return 0;
}
