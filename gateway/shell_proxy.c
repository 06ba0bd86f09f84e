#include "shell_proxy.h"

#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"
#include "http.h"
#include "instance.h"
#include "sandbox.h"
#include "util.h"
#include "vm_shell.h"
#include "ws.h"

#define SHELL_MAX_CONTROL 1024 /* bytes of one control message */
#define SHELL_MAX_MESSAGE (64u * 1024)
#define SHELL_PREFIX "/v1/sandboxes/"
#define SHELL_SUFFIX "/shell"

static const struct ws_link_ops shell_link_ops;

struct shell_proxy {
    struct instance_observer observer;
    struct gateway *gw; /* weak */
    bool stopping;      /* the loop has ended: no more work is queued */
};

/* A terminal's state, the link's data. */
struct shell_link {
    struct shell_proxy *sp; /* weak */
    struct instance *sb;    /* held (instance_hold) while the link lives */
    struct ws_link *link;   /* weak: the link owns this */
    struct vm_shell *sh;    /* owned; NULL until the open job's done */
    char *command;          /* owned; NULL: the login shell */
    char term[64];
    char actor[64];
    int cols, rows;           /* what the client asked for last */
    int open_cols, open_rows; /* what the open job was given */
    int64_t start_ms;         /* monotonic, once open */
    int exit_code;            /* once the upstream closed */
    bool ended;               /* the shell ran and its end was seen */
};

/* "/v1/sandboxes/{id}/shell". */
static int shell_path_parse(const char *path, char *id, size_t id_len)
{
    size_t pl = strlen(SHELL_PREFIX), sl = strlen(SHELL_SUFFIX), n = strlen(path);

    if (n <= pl + sl || strncmp(path, SHELL_PREFIX, pl) != 0 ||
        strcmp(path + n - sl, SHELL_SUFFIX) != 0)
        return -ENOENT;
    size_t idl = n - pl - sl;
    if (idl >= id_len || memchr(path + pl, '/', idl))
        return -ENOENT;
    memcpy(id, path + pl, idl);
    id[idl] = '\0';
    return 0;
}

/* An integer query item in lo..hi, dflt when absent. */
static int query_int(struct lws *wsi, const char *name, int dflt, int lo, int hi, int *out,
                     struct ph_error *err)
{
    char buf[16], *end;
    int n = http_wsi_query(wsi, name, buf, sizeof(buf));

    *out = dflt;
    if (n == -ENOENT)
        return 0;
    long v = n > 0 ? strtol(buf, &end, 10) : 0;
    if (n <= 0 || *end || v < lo || v > hi)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "%s must be an integer from %d to %d",
                            name, lo, hi);
    *out = (int)v;
    return 0;
}

/* The upgrade's decision, made at check and again at start: the caller is
 * authorized, the sandbox is ready and has room for one more terminal. */
static struct instance *shell_resolve(struct shell_proxy *sp, struct lws *wsi, const char *path,
                                      char *actor, size_t actor_len, struct ph_error *err)
{
    struct gateway *gw = sp->gw;
    char id[64];
    struct instance *sb;

    if (shell_path_parse(path, id, sizeof(id)) < 0) {
        ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT, "no WebSocket endpoint here");
        return NULL;
    }
    if (http_wsi_authorize(wsi, actor, actor_len) < 0) {
        ph_error_set(err, PH_ERR_UNAUTHORIZED, -EACCES,
                     "missing or wrong bearer token (Authorization: Bearer TOKEN)");
        return NULL;
    }
    sb = instance_lookup(gw->instances, sandboxes_kind(gw->sandboxes), id, true, err);
    if (!sb)
        return NULL;
    if (ws_links_count(gw->ws, sb, &shell_link_ops) >= SHELL_MAX_PER_SANDBOX) {
        ph_error_set(err, PH_ERR_LIMIT, -EMFILE, "at most %d terminals per sandbox",
                     SHELL_MAX_PER_SANDBOX);
        return NULL;
    }
    return sb;
}

/* ---- the terminal's end ------------------------------------------------- */

struct observe_job {
    struct gateway *gw;
    struct instance *sb; /* held */
    char *command;       /* owned: what the policy saw */
    char actor[64];
    struct run_result res;
};

static void observe_run(void *data)
{
    struct observe_job *j = data;
    struct run_ctx ctx = {
        .vm_id = j->sb->id,
        .command = j->command,
        .shell = RUN_SHELL_LOGIN,
        .actor = j->actor,
        .result = &j->res,
    };
    run_hooks_observe(j->gw->hooks, j->sb->hooks, &ctx);
}

static void observe_done(void *data)
{
    struct observe_job *j = data;
    instance_release(j->sb);
    free(j->command);
    free(j);
}

static const char *policy_command(const struct shell_link *s)
{
    return s->command ? s->command : "shell";
}

/* Observers hear how the terminal ended, off the loop (the audit writes). */
static void shell_observe_end(struct shell_link *s)
{
    struct observe_job *j = calloc(1, sizeof(*j));

    if (!j || !(j->command = strdup(policy_command(s)))) {
        free(j);
        lwsl_warn("sandbox %s: shell ended; out of memory telling the observers\n", s->sb->id);
        return;
    }
    j->gw = s->sp->gw;
    j->sb = s->sb;
    snprintf(j->actor, sizeof(j->actor), "%s", s->actor);
    j->res = (struct run_result){.exit_code = s->exit_code, .duration_ms = now_ms() - s->start_ms};
    if (instance_submit_exec(s->sb, observe_run, observe_done, j) < 0) {
        lwsl_warn("sandbox %s: shell ended; the gateway is busy or stopping, observers not told\n",
                  s->sb->id);
        free(j->command);
        free(j);
    }
}

static void shell_upstream_closed(struct ws_link *l)
{
    struct shell_link *s = ws_link_data(l);
    char reason[32];

    /* Only an upstream that ended by itself (the shell exited) has a
     * status; one the gateway closed (client gone, sandbox ending) has not. */
    if (!s->sh || ws_link_closing(l))
        return;
    s->exit_code = vm_shell_exit_status(s->sh);
    s->ended = true;
    snprintf(reason, sizeof(reason), "exit %d", s->exit_code);
    ws_link_set_close(l, LWS_CLOSE_STATUS_NORMAL, reason);
    lwsl_user("sandbox %s: shell for %s ended: %s\n", s->sb->id, s->actor, reason);
}

static void shell_link_destroy(struct ws_link *l)
{
    struct shell_link *s = ws_link_data(l);

    if (s->ended && !s->sp->stopping)
        shell_observe_end(s);
    else if (s->ended)
        lwsl_user("sandbox %s: shell ended as the gateway stops; observers not told\n", s->sb->id);
    vm_shell_close(s->sh);
    instance_release(s->sb);
    free(s->command);
    free(s);
}

/* A control message (text frame) from the client. */
static int shell_control(struct shell_link *s, const struct ws_msg *m)
{
    json_error_t jerr;
    json_t *o =
        m->len <= SHELL_MAX_CONTROL ? json_loadb((const char *)m->data, m->len, 0, &jerr) : NULL;
    json_t *type = json_object_get(o, "type");
    json_t *cols = json_object_get(o, "cols"), *rows = json_object_get(o, "rows");
    int r = -EINVAL;

    if (json_is_string(type) && strcmp(json_string_value(type), "resize") == 0 &&
        json_is_integer(cols) && json_is_integer(rows) && json_integer_value(cols) >= 1 &&
        json_integer_value(cols) <= VM_SHELL_MAX_COLS && json_integer_value(rows) >= 1 &&
        json_integer_value(rows) <= VM_SHELL_MAX_ROWS) {
        s->cols = (int)json_integer_value(cols);
        s->rows = (int)json_integer_value(rows);
        if (s->sh)
            vm_shell_resize(s->sh, s->cols, s->rows);
        r = 0;
    }
    json_decref(o);
    return r;
}

static int shell_from_client(struct ws_link *l, struct ws_msg **pm)
{
    struct shell_link *s = ws_link_data(l);
    struct ws_msg *m = *pm;

    if (m->binary)
        return 0; /* the terminal's input */
    if (shell_control(s, m) < 0) {
        lwsl_notice("sandbox %s: shell closed: a text frame that is not a control message\n",
                    s->sb->id);
        return -1;
    }
    ws_msg_free(m);
    return 1;
}

static const struct ws_link_ops shell_link_ops = {
    .name = "shell",
    .from_client = shell_from_client,
    .upstream_closed = shell_upstream_closed,
    .destroy = shell_link_destroy,
};

/* ---- opening ------------------------------------------------------------- */

struct open_job {
    struct shell_link *s; /* the link is held */
    struct vm *vm;        /* weak: the job holds the sandbox */
    struct vm_shell *sh;
    int fd;
    struct ph_error err;
    int r;
};

static void open_run(void *data)
{
    struct open_job *j = data;
    struct shell_link *s = j->s;
    struct run_ctx ctx = {
        .vm_id = s->sb->id,
        .command = policy_command(s),
        .shell = RUN_SHELL_LOGIN,
        .actor = s->actor,
    };

    j->r = run_hooks_check(s->sp->gw->hooks, s->sb->hooks, &ctx, &j->err);
    if (j->r == 0) {
        struct vm_shell_opts o = {.command = s->command,
                                  .term = s->term[0] ? s->term : NULL,
                                  .cols = s->open_cols,
                                  .rows = s->open_rows};
        j->r = vm_shell_open(j->vm->ssh, &o, &j->sh, &j->fd, &j->err);
        if (j->r < 0) {
            ctx.error = &j->err;
            run_hooks_observe(s->sp->gw->hooks, s->sb->hooks, &ctx);
        }
    }
}

static void open_done(void *data)
{
    struct open_job *j = data;
    struct shell_link *s = j->s;
    struct ws_link *l = s->link;

    if (j->r < 0) {
        lwsl_user("sandbox %s: shell for %s refused: %s\n", s->sb->id, s->actor, j->err.message);
        if (!ws_link_closing(l))
            ws_link_close(l,
                          j->err.kind == PH_ERR_BLOCKED ? LWS_CLOSE_STATUS_POLICY_VIOLATION
                                                        : LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
                          j->err.message);
    } else if (ws_link_closing(l)) {
        close(j->fd);
        vm_shell_close(j->sh);
    } else if (ws_link_adopt_fd(l, j->fd) < 0) {
        /* The fd is closed by the failed adoption; the link is closing. */
        vm_shell_close(j->sh);
    } else {
        s->sh = j->sh;
        s->start_ms = now_ms();
        lwsl_user("sandbox %s: shell open for %s (%s)\n", s->sb->id, s->actor, policy_command(s));
        if (s->cols != s->open_cols || s->rows != s->open_rows)
            vm_shell_resize(s->sh, s->cols, s->rows);
    }
    instance_release(s->sb);
    ws_link_release(l);
    free(j);
}

/* The query: cols, rows, term, command. */
struct shell_params {
    int cols, rows;
    char term[64];
    char command[SHELL_MAX_COMMAND + 1]; /* "": the login shell */
};

static int shell_params_parse(struct lws *wsi, struct shell_params *p, struct ph_error *err)
{
    int n;

    if (query_int(wsi, "cols", 80, 1, VM_SHELL_MAX_COLS, &p->cols, err) < 0 ||
        query_int(wsi, "rows", 24, 1, VM_SHELL_MAX_ROWS, &p->rows, err) < 0)
        return -EINVAL;
    if ((n = http_wsi_query(wsi, "term", p->term, sizeof(p->term))) < 0) {
        p->term[0] = '\0';
        if (n != -ENOENT)
            return ph_error_set(err, PH_ERR_INVALID, n, "term is too long");
    }
    for (const char *c = p->term; *c; c++)
        if (!(*c == '-' || *c == '.' || *c == '_' || (*c >= '0' && *c <= '9') ||
              (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "term has characters a TERM cannot");
    if ((n = http_wsi_query(wsi, "command", p->command, sizeof(p->command))) < 0) {
        p->command[0] = '\0';
        if (n != -ENOENT)
            return ph_error_set(err, PH_ERR_TOO_LARGE, n, "command longer than %d bytes",
                                SHELL_MAX_COMMAND);
    }
    return 0;
}

static int shell_ws_check(void *data, struct lws *wsi, const char *path, struct ph_error *err)
{
    struct shell_params *p = malloc(sizeof(*p));
    char actor[64];
    int r = -ENOMEM;

    if (!p)
        return ph_error_set(err, PH_ERR_INTERNAL, r, "out of memory");
    if (shell_resolve(data, wsi, path, actor, sizeof(actor), err))
        r = shell_params_parse(wsi, p, err);
    else
        r = -ENOENT;
    free(p);
    return r;
}

static int shell_ws_start(void *data, struct lws *wsi, const char *path, struct ph_error *err)
{
    struct shell_proxy *sp = data;
    struct shell_link *s = calloc(1, sizeof(*s));
    struct shell_params *p = malloc(sizeof(*p));
    struct instance *sb;
    struct open_job *j = NULL;

    if (!s || !p) {
        ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto fail;
    }
    s->sp = sp;
    if (!(sb = shell_resolve(sp, wsi, path, s->actor, sizeof(s->actor), err)) ||
        shell_params_parse(wsi, p, err) < 0)
        goto fail;
    if ((p->command[0] && !(s->command = strdup(p->command))) || !(j = calloc(1, sizeof(*j)))) {
        ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(s->term, sizeof(s->term), "%s", p->term);
    s->sb = sb;
    s->cols = s->open_cols = p->cols;
    s->rows = s->open_rows = p->rows;
    j->s = s;
    j->vm = sb->vm;
    j->fd = -1;
    if (!(s->link = ws_link_new(wsi, &shell_link_ops, sb, s, SHELL_MAX_MESSAGE))) {
        ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto fail;
    }
    free(p);
    /* The link's own hold on the sandbox, released when it is freed. */
    instance_hold(sb);
    ws_link_hold(s->link);
    if (instance_submit_exec(sb, open_run, open_done, j) < 0) {
        free(j);
        ws_link_release(s->link);
        ws_link_close(s->link, WS_CLOSE_TRY_AGAIN, "gateway is busy; try again");
    }
    return 0;
fail:
    free(j);
    free(p);
    if (s)
        free(s->command);
    free(s);
    return -EINVAL;
}

/* Observer: a sandbox ends: its terminals close. */
static void shell_sandbox_ending(struct instance_observer *o, struct instance *in)
{
    struct shell_proxy *sp = container_of(o, struct shell_proxy, observer);
    ws_links_close(sp->gw->ws, in, &shell_link_ops, LWS_CLOSE_STATUS_GOINGAWAY,
                   "sandbox is going away");
}

int shell_proxy_new(struct gateway *gw, struct shell_proxy **out)
{
    struct shell_proxy *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return -ENOMEM;
    sp->gw = gw;
    if (ws_endpoint_register(gw->ws, &(struct ws_endpoint){
                                         .prefix = SHELL_PREFIX,
                                         .check = shell_ws_check,
                                         .start = shell_ws_start,
                                         .data = sp,
                                     }) < 0) {
        free(sp);
        return -ENOSPC;
    }
    sp->observer = (struct instance_observer){.ending = shell_sandbox_ending};
    instances_observe(gw->instances, &sp->observer);
    *out = sp;
    return 0;
}

void shell_proxy_shutdown(struct shell_proxy *sp)
{
    if (sp)
        sp->stopping = true;
}

void shell_proxy_free(struct shell_proxy *sp)
{
    free(sp);
}
