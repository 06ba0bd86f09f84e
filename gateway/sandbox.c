/* Command sandboxes: their lifecycle on the loop thread, the blocking VM work
 * on worker threads, and the /v1/sandboxes API. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "browser.h"
#include "manager.h"
#include "params.h"
#include "ssh.h"
#include "utf8.h"
#include "util.h"

#define SANDBOX_FILE_MAX (64 * 1024 * 1024)

const char *sandbox_status_name(enum sandbox_status s)
{
    static const char *const names[] = {"starting", "ready", "stopping", "error"};
    return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "error";
}

static const char *kind_record_name(enum vm_kind kind)
{
    return kind == VM_KIND_BROWSER ? "browser" : "sandbox";
}

struct sandbox *gateway_find(struct gateway *gw, const char *id, enum vm_kind kind)
{
    for (struct sandbox *sb = gw->sandboxes; sb; sb = sb->next)
        if (sb->kind == kind && strcmp(sb->id, id) == 0)
            return sb;
    return NULL;
}

static void sandbox_free(struct sandbox *sb)
{
    if (!sb)
        return;
    json_decref(sb->env_vars);
    json_decref(sb->extra);
    browser_session_free(sb->browser);
    vm_free(sb->vm);
    run_hooks_free(sb->hooks);
    free(sb);
}

static void sandbox_unlink(struct gateway *gw, struct sandbox *sb)
{
    for (struct sandbox **p = &gw->sandboxes; *p; p = &(*p)->next)
        if (*p == sb) {
            *p = sb->next;
            return;
        }
}

static json_t *time_json(int64_t ms)
{
    char buf[40];
    format_time_utc(ms, buf, sizeof(buf));
    return json_string(buf);
}

json_t *sandbox_to_json(const struct sandbox *sb)
{
    if (sb->browser)
        return browser_to_json(sb);
    json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:i, s:i, s:i, s:i, s:O}", "id", sb->id, "status",
                          sandbox_status_name(sb->status), "created_at", time_json(sb->created_at),
                          "expires_at", time_json(sb->expires_at), "vcpus", sb->vcpus, "mem_mib",
                          sb->mem_mib, "disk_mib", sb->disk_mib, "timeout_minutes",
                          sb->timeout_minutes, "env_vars", sb->env_vars);
    if (o && sb->status == SANDBOX_ERROR)
        json_object_set_new(o, "error", json_string(sb->error));
    return o;
}

void sandbox_save(struct gateway *gw, struct sandbox *sb)
{
    json_t *rec = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:i, s:i, s:i, s:O, s:i, s:i, s:i}", "id", sb->id,
        "kind", kind_record_name(sb->kind), "status", sandbox_status_name(sb->status), "error",
        sb->error, "created_at", (json_int_t)sb->created_at, "expires_at",
        (json_int_t)sb->expires_at, "vcpus", sb->vcpus, "mem_mib", sb->mem_mib, "disk_mib",
        sb->disk_mib, "timeout_minutes", sb->timeout_minutes, "env_vars", sb->env_vars, "ssh_port",
        sb->vm ? sb->vm->ssh_port : -1, "vnc_port", sb->vm ? sb->vm->vnc_port : -1, "cdp_port",
        sb->vm ? sb->vm->cdp_port : -1);
    if (!rec)
        return;
    json_object_set_new(rec, "vm_id", json_string(sb->vm_id));
    if (sb->browser)
        json_object_set_new(rec, "extra", browser_record(sb));
    if (state_put(gw->db, sb->id, kind_record_name(sb->kind), rec) < 0)
        lwsl_err("state: cannot save %s\n", sb->id);
    json_decref(rec);
}

void sandbox_hold(struct sandbox *sb)
{
    sb->jobs++;
}

/* ---- deletion ---------------------------------------------------------- */

struct stop_job {
    struct gateway *gw;
    struct sandbox *sb;
    struct vm *vm; /* taken from sb */
    struct ph_error err;
    int r;
};

static void stop_job_run(void *data)
{
    struct stop_job *j = data;
    if (j->vm && j->sb->browser)
        browser_before_stop(j->gw, j->sb, j->vm);
    if (j->vm)
        j->r = vm_stop(j->vm, 3000, &j->err);
    else
        vm_kill_orphan(j->gw->state_dir, j->sb->vm_id);
    vm_remove_run_dir(j->gw->state_dir, j->sb->vm_id);
}

static void stop_job_done(void *data)
{
    struct stop_job *j = data;
    struct sandbox *sb = j->sb;

    if (j->r < 0)
        lwsl_err("stop %s: %s\n", sb->id, j->err.message);
    state_delete(j->gw->db, sb->id);
    sandbox_unlink(j->gw, sb);
    if (sb->browser)
        browser_after_stop(j->gw, sb);
    for (struct pending_reply *w = sb->delete_waiters, *next; w; w = next) {
        next = w->next;
        http_reply_json(w->req, 200, json_pack("{s:s, s:s}", "id", sb->id, "status", "deleted"));
        free(w);
    }
    lwsl_user("%s %s deleted\n", kind_record_name(sb->kind), sb->id);
    vm_free(j->vm);
    sandbox_free(sb);
    free(j);
}

static void sandbox_stop_now(struct gateway *gw, struct sandbox *sb)
{
    struct stop_job *j = calloc(1, sizeof(*j));
    if (!j)
        return;
    j->gw = gw;
    j->sb = sb;
    j->vm = TAKE_PTR(sb->vm);
    if (work_submit(gw->work, stop_job_run, stop_job_done, j) < 0) {
        /* The queue is full: stopping inline is better than leaking a VM. */
        stop_job_run(j);
        stop_job_done(j);
    }
}

void sandbox_release(struct gateway *gw, struct sandbox *sb)
{
    if (--sb->jobs == 0 && sb->deleting)
        sandbox_stop_now(gw, sb);
}

void sandbox_delete(struct gateway *gw, struct sandbox *sb, struct http_req *req)
{
    if (req) {
        struct pending_reply *w = calloc(1, sizeof(*w));
        if (!w) {
            http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
            return;
        }
        w->req = req;
        w->next = sb->delete_waiters;
        sb->delete_waiters = w;
    }
    if (sb->deleting)
        return;
    sb->deleting = true;
    sb->status = SANDBOX_STOPPING;
    sandbox_save(gw, sb);
    /* Clients learn now that the session ends ("session ended"), not later
     * from a vanished guest. */
    if (sb->browser)
        browser_after_stop(gw, sb);
    if (sb->jobs == 0) {
        sandbox_stop_now(gw, sb);
        return;
    }
    /* Commands still running would hold the VM until their own timeout;
     * ending QEMU now makes them fail at once and the stop follow. */
    if (sb->vm && sb->vm->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, sb->vm->pidfd, SIGKILL, NULL, 0);
}

/* ---- creation ---------------------------------------------------------- */

struct boot_job {
    struct gateway *gw;
    struct sandbox *sb;
    struct http_req *req; /* weak, NULL when the client did not wait */
    char *extra_config;   /* owned */
    struct vm *vm;        /* owned until handed to sb; preset when pooled */
    int (*prepare)(struct gateway *gw, struct sandbox *sb, struct vm *vm, struct ph_error *err);
    struct ph_error err;
    int r;
    const char *marker;
};

static void boot_job_run(void *data)
{
    struct boot_job *j = data;
    struct sandbox *sb = j->sb;
    _cleanup_free_ char *image = vm_image_dir(j->gw->cache_dir, vm_kind_flavour(sb->kind));
    size_t n_env = json_object_size(sb->env_vars), i = 0;
    struct vm_env_var *env = calloc(n_env + 1, sizeof(*env));
    const char *key;
    json_t *val;

    if (!image || !env) {
        j->r = ph_error_set(&j->err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        free(env);
        return;
    }
    if (j->vm) {
        /* A pre-booted VM: only the session's own settings remain. */
        free(env);
        j->r = j->prepare ? j->prepare(j->gw, sb, j->vm, &j->err) : 0;
        goto fail;
    }
    /* env_vars is not modified while the boot job runs: PUT /env needs a
     * ready sandbox. */
    json_object_foreach(sb->env_vars, key, val) env[i++] =
        (struct vm_env_var){key, json_string_value(val)};
    struct vm_spec spec = {
        .kind = sb->kind,
        .vcpus = sb->vcpus,
        .mem_mib = sb->mem_mib,
        .disk_mib = sb->disk_mib,
        .env = env,
        .n_env = n_env,
        .extra_config = j->extra_config,
        .accel = j->gw->accel.accel,
        .image_dir = image,
        .screen_width = sb->browser ? sb->browser->width : 0,
        .screen_height = sb->browser ? sb->browser->height : 0,
    };
    j->r = gateway_boot_vm(j->gw, sb->vm_id, &spec, j->marker, &j->vm, &j->err);
    if (j->r == 0 && j->prepare)
        j->r = j->prepare(j->gw, sb, j->vm, &j->err);
    free(env);
fail:
    if (j->r < 0 && j->vm) {
        vm_stop(j->vm, 1000, NULL);
        vm_free(TAKE_PTR(j->vm));
        vm_remove_run_dir(j->gw->state_dir, sb->vm_id);
    }
}

int gateway_boot_vm(struct gateway *gw, const char *id, const struct vm_spec *spec,
                    const char *marker, struct vm **out, struct ph_error *err)
{
    int r = -EIO;

    /* A boot that never reaches its marker is retried once from scratch:
     * under software emulation a guest kernel now and then stalls early,
     * and a fresh QEMU gets past it. */
    for (int attempt = 0; attempt < 2; attempt++) {
        struct vm *vm = NULL;
        r = vm_new(gw->state_dir, id, spec, &vm, err);
        if (r < 0)
            return r;
        r = vm_start(vm, spec, err);
        if (r == 0)
            r = vm_wait_ready(vm, marker, gw->boot_timeout_s * 1000, err);
        if (r == 0) {
            *out = vm;
            return 0;
        }
        lwsl_warn("vm %s: boot attempt %d failed: %s\n", id, attempt + 1, err->message);
        vm_stop(vm, 1000, NULL);
        vm_free(vm);
        vm_remove_run_dir(gw->state_dir, id);
        if (err->kind != PH_ERR_TIMEOUT && err->kind != PH_ERR_UNAVAILABLE)
            break;
    }
    return r;
}

static void boot_job_done(void *data)
{
    struct boot_job *j = data;
    struct sandbox *sb = j->sb;
    struct gateway *gw = j->gw;

    if (j->r == 0) {
        sb->vm = TAKE_PTR(j->vm);
        if (!sb->deleting)
            sb->status = SANDBOX_READY;
        if (sb->browser)
            sb->browser->ready_ms = now_ms();
        lwsl_user("%s %s ready (ssh port %d)\n", kind_record_name(sb->kind), sb->id,
                  sb->vm->ssh_port);
    } else {
        sb->status = SANDBOX_ERROR;
        snprintf(sb->error, sizeof(sb->error), "%s", j->err.message);
        lwsl_err("%s %s failed to start: %s\n", kind_record_name(sb->kind), sb->id, j->err.message);
    }
    sandbox_save(gw, sb);
    if (j->req) {
        if (j->r == 0)
            http_reply_json(j->req, 201, sandbox_to_json(sb));
        else
            http_reply_error(j->req, &j->err);
    }
    /* A sandbox that never started is not kept around: nothing in it. */
    if (j->r < 0 && !sb->deleting)
        sandbox_delete(gw, sb, NULL);
    sandbox_release(gw, sb);
    free(j->extra_config);
    free(j);
}

static int gateway_count(struct gateway *gw)
{
    int n = 0;
    for (struct sandbox *sb = gw->sandboxes; sb; sb = sb->next)
        n++;
    return n;
}

struct sandbox *sandbox_launch(struct gateway *gw, struct launch *l, struct ph_error *err)
{
    struct sandbox *sb;
    struct boot_job *j;

    if (gateway_count(gw) >= gw->max_sandboxes) {
        ph_error_set(err, PH_ERR_LIMIT, -EAGAIN,
                     "limit of %d sandboxes and sessions reached; delete one first",
                     gw->max_sandboxes);
        goto fail_launch;
    }
    sb = calloc(1, sizeof(*sb));
    j = calloc(1, sizeof(*j));
    if (!sb || !j || !(sb->hooks = run_hooks_new()) ||
        random_id(sb->id, sizeof(sb->id), l->id_prefix, 6) < 0) {
        ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        sandbox_free(sb);
        free(j);
        goto fail_launch;
    }
    sb->kind = l->kind;
    snprintf(sb->vm_id, sizeof(sb->vm_id), "%s", l->pooled ? l->pooled->id : sb->id);
    sb->status = SANDBOX_STARTING;
    sb->created_at = wall_ms();
    sb->expires_at = sb->created_at + (int64_t)l->timeout_minutes * 60000;
    sb->vcpus = l->vcpus;
    sb->mem_mib = l->mem_mib;
    sb->disk_mib = l->disk_mib;
    sb->timeout_minutes = l->timeout_minutes;
    sb->env_vars = json_incref(l->env_vars);
    sb->browser = TAKE_PTR(l->browser);
    j->gw = gw;
    j->sb = sb;
    j->req = l->reply;
    j->extra_config = TAKE_PTR(l->extra_config);
    j->marker = l->marker;
    j->prepare = l->prepare;
    j->vm = TAKE_PTR(l->pooled);
    sandbox_hold(sb);
    if (l->setup && l->setup(gw, sb, err) < 0) {
        free(j->extra_config);
        vm_free(j->vm);
        free(j);
        sandbox_free(sb);
        return NULL;
    }
    if (work_submit(gw->work, boot_job_run, boot_job_done, j) < 0) {
        ph_error_set(err, PH_ERR_LIMIT, -EAGAIN, "gateway is busy; try again");
        if (sb->browser)
            browser_after_stop(gw, sb);
        free(j->extra_config);
        vm_free(j->vm);
        free(j);
        sandbox_free(sb);
        return NULL;
    }
    sb->next = gw->sandboxes;
    gw->sandboxes = sb;
    sandbox_save(gw, sb);
    return sb;
fail_launch:
    free(TAKE_PTR(l->extra_config));
    browser_session_free(TAKE_PTR(l->browser));
    vm_free(TAKE_PTR(l->pooled));
    return NULL;
}

static void api_sandbox_create(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    struct ph_error err = {0};
    struct sandbox_params p;
    json_t *body = http_json_body(req, &err);
    struct sandbox *sb;

    if (!body || sandbox_params_parse(body, &p, &err) < 0) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    struct launch l = {
        .kind = VM_KIND_SANDBOX,
        .id_prefix = "sb-",
        .vcpus = p.vcpus,
        .mem_mib = p.mem_mib,
        .disk_mib = p.disk_mib,
        .timeout_minutes = p.timeout_minutes,
        .env_vars = p.env_vars,
        .marker = "PORTHOLE_READY ssh",
        .reply = p.wait ? req : NULL,
    };
    sb = sandbox_launch(gw, &l, &err);
    sandbox_params_done(&p);
    if (!sb) {
        http_reply_error(req, &err);
        return;
    }
    lwsl_user("sandbox %s starting for %s\n", sb->id, req->actor);
    if (!p.wait)
        http_reply_json(req, 201, sandbox_to_json(sb));
}

/* ---- lookups ------------------------------------------------------------ */

struct sandbox *sandbox_lookup(struct gateway *gw, struct http_req *req, enum vm_kind kind,
                               bool need_ready)
{
    const char *what = kind == VM_KIND_BROWSER ? "browser session" : "sandbox";
    struct sandbox *sb = gateway_find(gw, req->params[0], kind);
    if (!sb) {
        http_reply_errorf(req, PH_ERR_NOT_FOUND, "no %s with id \"%s\"", what, req->params[0]);
        return NULL;
    }
    if (need_ready && (sb->status != SANDBOX_READY || !sb->vm || sb->deleting)) {
        http_reply_errorf(req, PH_ERR_CONFLICT, "%s %s is %s, not ready", what, sb->id,
                          sandbox_status_name(sb->status));
        return NULL;
    }
    return sb;
}

static struct sandbox *sandbox_for_req(struct gateway *gw, struct http_req *req, bool need_ready)
{
    return sandbox_lookup(gw, req, VM_KIND_SANDBOX, need_ready);
}

int sandbox_submit(struct gateway *gw, struct sandbox *sb, struct http_req *req, work_fn run,
                   work_fn done, void *data)
{
    sandbox_hold(sb);
    int r = work_submit(gw->work, run, done, data);
    if (r < 0) {
        sandbox_release(gw, sb);
        http_reply_errorf(req, PH_ERR_LIMIT, "gateway is busy; try again");
    }
    return r;
}

json_t *sandbox_list_json(struct gateway *gw, enum vm_kind kind)
{
    json_t *arr = json_array();
    for (struct sandbox *sb = gw->sandboxes; sb; sb = sb->next)
        if (sb->kind == kind)
            json_array_insert_new(arr, 0, sandbox_to_json(sb));
    return arr;
}

static void api_sandbox_list(struct http_req *req, void *data)
{
    http_reply_json(req, 200,
                    json_pack("{s:o}", "sandboxes", sandbox_list_json(data, VM_KIND_SANDBOX)));
}

static void api_sandbox_get(struct http_req *req, void *data)
{
    struct sandbox *sb = sandbox_for_req(data, req, false);
    if (sb)
        http_reply_json(req, 200, sandbox_to_json(sb));
}

static void api_sandbox_delete(struct http_req *req, void *data)
{
    struct sandbox *sb = sandbox_for_req(data, req, false);
    if (sb)
        sandbox_delete(data, sb, req);
}

/* ---- exec ---------------------------------------------------------------- */

struct exec_job {
    struct gateway *gw;
    struct sandbox *sb;
    struct vm *vm; /* weak: held by sb->jobs */
    struct http_req *req;
    char *command; /* owned */
    struct run_request rr;
    struct run_result res;
    struct ph_error err;
    int r;
};

static void exec_job_run(void *data)
{
    struct exec_job *j = data;
    struct run_transport t = vm_transport(j->vm);
    j->r = run_command(&t, j->gw->hooks, j->sb->hooks, &j->rr, &j->res, &j->err);
}

static void exec_job_done(void *data)
{
    struct exec_job *j = data;

    if (j->r < 0) {
        http_reply_error(j->req, &j->err);
    } else {
        json_t *o = json_pack("{s:i, s:o, s:o, s:I, s:b, s:b}", "exit_code", j->res.exit_code,
                              "stdout", utf8_json_string(j->res.out, j->res.out_len), "stderr",
                              utf8_json_string(j->res.err, j->res.err_len), "duration_ms",
                              (json_int_t)j->res.duration_ms, "stdout_truncated",
                              j->res.out_truncated, "stderr_truncated", j->res.err_truncated);
        http_reply_json(j->req, 200, o);
    }
    run_result_done(&j->res);
    sandbox_release(j->gw, j->sb);
    free(j->command);
    free(j);
}

static void api_sandbox_exec(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    struct ph_error err = {0};
    struct exec_params p;
    struct sandbox *sb = sandbox_for_req(gw, req, true);
    json_t *body;
    struct exec_job *j;

    if (!sb)
        return;
    body = http_json_body(req, &err);
    if (!body || exec_params_parse(body, &p, &err) < 0) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j || !(j->command = strdup(p.command))) {
        free(j);
        json_decref(body);
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    json_decref(body);
    j->gw = gw;
    j->sb = sb;
    j->vm = sb->vm;
    j->req = req;
    j->rr = (struct run_request){
        .command = j->command, .shell = p.shell, .timeout_s = p.timeout_s, .actor = req->actor};
    if (sandbox_submit(gw, sb, req, exec_job_run, exec_job_done, j) < 0) {
        free(j->command);
        free(j);
    }
}

/* ---- files and env -------------------------------------------------------- */

enum file_op { FILE_PUT, FILE_GET, ENV_PUT };

struct file_job {
    struct gateway *gw;
    struct sandbox *sb;
    struct vm *vm; /* weak: held */
    struct http_req *req;
    enum file_op op;
    char *path; /* owned */
    char *data; /* owned: file read back */
    size_t len;
    json_t *env; /* owned: new env for ENV_PUT */
    struct ph_error err;
    int r;
};

static void file_job_run(void *data)
{
    struct file_job *j = data;
    switch (j->op) {
    case FILE_PUT:
        j->r = vm_ssh_put_file(j->vm->ssh, j->path, j->req->body, j->req->body_len, 0644, &j->err);
        break;
    case FILE_GET:
        j->r = vm_ssh_get_file(j->vm->ssh, j->path, &j->data, &j->len, SANDBOX_FILE_MAX, &j->err);
        break;
    case ENV_PUT: {
        size_t n = json_object_size(j->env), i = 0;
        struct vm_env_var *env = calloc(n + 1, sizeof(*env));
        const char *key;
        json_t *val;
        if (!env) {
            j->r = -ENOMEM;
            break;
        }
        json_object_foreach(j->env, key, val) env[i++] =
            (struct vm_env_var){key, json_string_value(val)};
        j->r = vm_set_env(j->vm, env, n, &j->err);
        free(env);
        break;
    }
    }
    if (j->r < 0 && j->err.kind == PH_ERR_NONE)
        ph_error_set(&j->err, PH_ERR_INTERNAL, j->r, "%s", strerror(-j->r));
}

static void file_job_done(void *data)
{
    struct file_job *j = data;

    if (j->r < 0) {
        http_reply_error(j->req, &j->err);
    } else if (j->op == FILE_PUT) {
        http_reply_json(
            j->req, 200,
            json_pack("{s:s, s:I}", "path", j->path, "bytes", (json_int_t)j->req->body_len));
    } else if (j->op == FILE_GET) {
        http_reply_data(j->req, 200, "application/octet-stream", TAKE_PTR(j->data), j->len, NULL);
    } else {
        json_decref(j->sb->env_vars);
        j->sb->env_vars = json_incref(j->env);
        sandbox_save(j->gw, j->sb);
        http_reply_json(j->req, 200, json_pack("{s:O}", "env_vars", j->sb->env_vars));
    }
    sandbox_release(j->gw, j->sb);
    free(j->path);
    free(j->data);
    json_decref(j->env);
    free(j);
}

static void file_job_submit(struct gateway *gw, struct sandbox *sb, struct http_req *req,
                            struct file_job *j)
{
    j->gw = gw;
    j->sb = sb;
    j->vm = sb->vm;
    j->req = req;
    if (sandbox_submit(gw, sb, req, file_job_run, file_job_done, j) < 0) {
        free(j->path);
        json_decref(j->env);
        free(j);
    }
}

static void api_sandbox_file(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    struct ph_error err = {0};
    const char *path = http_query(req, "path");
    struct sandbox *sb;
    struct file_job *j;

    if (guest_path_check(path, &err) < 0) {
        http_reply_error(req, &err);
        return;
    }
    if (!(sb = sandbox_for_req(gw, req, true)))
        return;
    j = calloc(1, sizeof(*j));
    if (!j || !(j->path = strdup(path))) {
        free(j);
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    j->op = req->method == HTTP_PUT ? FILE_PUT : FILE_GET;
    file_job_submit(gw, sb, req, j);
}

static void api_sandbox_env_get(struct http_req *req, void *data)
{
    struct sandbox *sb = sandbox_for_req(data, req, false);
    if (sb)
        http_reply_json(req, 200, json_pack("{s:O}", "env_vars", sb->env_vars));
}

static void api_sandbox_env_put(struct http_req *req, void *data)
{
    static const char *const allowed[] = {"env_vars", NULL};
    struct gateway *gw = data;
    struct ph_error err = {0};
    json_t *body, *env = NULL;
    struct sandbox *sb;
    struct file_job *j;

    if (!(sb = sandbox_for_req(gw, req, true)))
        return;
    body = http_json_body(req, &err);
    if (!body || params_only(body, allowed, &err) < 0 ||
        env_vars_parse(json_object_get(body, "env_vars"), "env_vars", &env, &err) < 0) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    j = calloc(1, sizeof(*j));
    if (!j) {
        json_decref(env);
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    j->op = ENV_PUT;
    j->env = env;
    file_job_submit(gw, sb, req, j);
}

void sandbox_api_register(struct gateway *gw)
{
    http_route(gw->http, HTTP_POST, "/v1/sandboxes", 0, 0, api_sandbox_create, gw);
    http_route(gw->http, HTTP_GET, "/v1/sandboxes", 0, 0, api_sandbox_list, gw);
    http_route(gw->http, HTTP_GET, "/v1/sandboxes/{id}", 0, 0, api_sandbox_get, gw);
    http_route(gw->http, HTTP_DELETE, "/v1/sandboxes/{id}", 0, 0, api_sandbox_delete, gw);
    http_route(gw->http, HTTP_POST, "/v1/sandboxes/{id}/exec", 0, 0, api_sandbox_exec, gw);
    http_route(gw->http, HTTP_PUT, "/v1/sandboxes/{id}/files", HTTP_ROUTE_BIG_BODY,
               SANDBOX_FILE_MAX, api_sandbox_file, gw);
    http_route(gw->http, HTTP_GET, "/v1/sandboxes/{id}/files", 0, 0, api_sandbox_file, gw);
    http_route(gw->http, HTTP_GET, "/v1/sandboxes/{id}/env", 0, 0, api_sandbox_env_get, gw);
    http_route(gw->http, HTTP_PUT, "/v1/sandboxes/{id}/env", 0, 0, api_sandbox_env_put, gw);
}

/* ---- restart and supervision ------------------------------------------- */

struct restore_job {
    struct gateway *gw;
    struct sandbox *sb;
    int ssh_port, vnc_port, cdp_port;
    struct vm *vm;
    struct ph_error err;
    int r;
};

static void restore_job_run(void *data)
{
    struct restore_job *j = data;
    j->r = vm_attach(j->gw->state_dir, j->sb->vm_id, j->sb->kind, j->ssh_port, j->vnc_port,
                     j->cdp_port, &j->vm, &j->err);
}

static void restore_job_done(void *data)
{
    struct restore_job *j = data;
    struct sandbox *sb = j->sb;

    if (j->r == 0 && sb->browser && browser_restored(j->gw, sb, &j->err) < 0)
        j->r = -EIO;
    if (j->r == 0) {
        sb->vm = TAKE_PTR(j->vm);
        if (!sb->deleting)
            sb->status = SANDBOX_READY;
        lwsl_user("re-attached to %s %s\n", kind_record_name(sb->kind), sb->id);
    } else {
        sb->status = SANDBOX_ERROR;
        snprintf(sb->error, sizeof(sb->error), "lost while the gateway was down: %s",
                 j->err.message);
        lwsl_warn("%s %s: %s\n", kind_record_name(sb->kind), sb->id, sb->error);
    }
    sandbox_save(j->gw, sb);
    sandbox_release(j->gw, sb);
    vm_free(j->vm);
    free(j);
}

void sandbox_restore_all(struct gateway *gw)
{
    json_t *all = NULL, *rec;
    size_t i;

    if (state_list(gw->db, NULL, &all) < 0)
        return;
    json_array_foreach(all, i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "id"));
        const char *kind = json_string_value(json_object_get(rec, "kind"));
        const char *status = json_string_value(json_object_get(rec, "status"));
        struct sandbox *sb = calloc(1, sizeof(*sb));
        struct restore_job *j = calloc(1, sizeof(*j));
        if (kind && strcmp(kind, "pool") == 0 && id) {
            /* Pre-booted VMs of an earlier run are not worth re-attaching
             * (the pool refills): end whatever is left of them. */
            vm_kill_orphan(gw->state_dir, id);
            vm_remove_run_dir(gw->state_dir, id);
            state_delete(gw->db, id);
            free(sb);
            free(j);
            continue;
        }
        if (!id || !kind || !sb || !j || !(sb->hooks = run_hooks_new())) {
            free(sb ? sb->hooks : NULL);
            free(sb);
            free(j);
            continue;
        }
        snprintf(sb->id, sizeof(sb->id), "%s", id);
        const char *vm_id = json_string_value(json_object_get(rec, "vm_id"));
        snprintf(sb->vm_id, sizeof(sb->vm_id), "%s", vm_id ? vm_id : id);
        sb->kind = strcmp(kind, "browser") == 0 ? VM_KIND_BROWSER : VM_KIND_SANDBOX;
        sb->created_at = json_integer_value(json_object_get(rec, "created_at"));
        sb->expires_at = json_integer_value(json_object_get(rec, "expires_at"));
        sb->vcpus = (int)json_integer_value(json_object_get(rec, "vcpus"));
        sb->mem_mib = (int)json_integer_value(json_object_get(rec, "mem_mib"));
        sb->disk_mib = (int)json_integer_value(json_object_get(rec, "disk_mib"));
        sb->timeout_minutes = (int)json_integer_value(json_object_get(rec, "timeout_minutes"));
        sb->env_vars = json_incref(json_object_get(rec, "env_vars"));
        if (!sb->env_vars)
            sb->env_vars = json_object();
        if (sb->kind == VM_KIND_BROWSER)
            sb->browser = browser_from_record(json_object_get(rec, "extra"));
        sb->status = SANDBOX_STARTING;
        sb->next = gw->sandboxes;
        gw->sandboxes = sb;
        j->gw = gw;
        j->sb = sb;
        j->ssh_port = (int)json_integer_value(json_object_get(rec, "ssh_port"));
        j->vnc_port = (int)json_integer_value(json_object_get(rec, "vnc_port"));
        j->cdp_port = (int)json_integer_value(json_object_get(rec, "cdp_port"));
        /* Records of a sandbox that was being deleted or never booted are
         * finished off: whatever is left of them goes. */
        if (!status || strcmp(status, "stopping") == 0 || strcmp(status, "starting") == 0 ||
            j->ssh_port <= 0) {
            free(j);
            sandbox_delete(gw, sb, NULL);
            continue;
        }
        sandbox_hold(sb);
        if (work_submit(gw->work, restore_job_run, restore_job_done, j) < 0) {
            free(j);
            sandbox_release(gw, sb);
        }
    }
    json_decref(all);
}

void sandbox_sweep(struct gateway *gw)
{
    int64_t now = wall_ms();

    for (struct sandbox *sb = gw->sandboxes, *next; sb; sb = next) {
        next = sb->next;
        if (sb->deleting)
            continue;
        if (now >= sb->expires_at) {
            lwsl_user("%s %s expired after %d minutes\n", kind_record_name(sb->kind), sb->id,
                      sb->timeout_minutes);
            sandbox_delete(gw, sb, NULL);
            continue;
        }
        if (sb->status == SANDBOX_READY && sb->vm && !vm_alive(sb->vm)) {
            sb->status = SANDBOX_ERROR;
            snprintf(sb->error, sizeof(sb->error),
                     "QEMU exited unexpectedly (console log: %s/serial.log)", sb->vm->run_dir);
            lwsl_err("%s %s: %s\n", kind_record_name(sb->kind), sb->id, sb->error);
            sandbox_save(gw, sb);
        }
    }
}
