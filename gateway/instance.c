/* The lifecycle of VM-backed instances: creation and boot, readiness,
 * deletion, expiry, persistence and restore. See instance.h. */
#include "instance.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "state.h"
#include "util.h"
#include "vm_template.h"

#define INSTANCE_STOP_GRACE_MS 3000

struct instance_waiter {
    instance_deleted_fn fn;
    void *data;                   /* weak */
    struct instance_waiter *next; /* owned */
};

struct instances {
    struct instances_config cfg;
    struct instance_kind *kinds;         /* weak list */
    struct instance_observer *observers; /* weak list, in registration order */
    struct instance *list;               /* owned, newest first */
    unsigned sweeps;                     /* instances_sweep calls */
};

/* Per-instance flags the lifecycle keeps for itself: each observer call
 * that must happen once. */
struct instance_private {
    bool ended, stopped, destroyed;
};

const char *instance_status_name(enum instance_status s)
{
    static const char *const names[] = {"starting", "ready",   "stopping",
                                        "error",    "stopped", "paused"};
    return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "error";
}

/* ---- vmctl as the VM back end ---------------------------------------- */

/* A clone of spec's template, when there is one: 0 with *out, else the
 * reason (logged; the caller boots cold). */
static int vmctl_clone(struct instances *reg, const char *id, const struct vm_spec *spec,
                       struct vm **out, struct ph_error *snap_err)
{
    struct vm_template t;
    struct ph_error err = {0};
    struct vm *vm = NULL;
    int r;

    /* A snapshot named by the launch, or the spec's template. */
    if (spec->template_dir
            ? vm_template_open(spec->template_dir, &t) < 0
            : spec->cold || !reg->cfg.templates || !vm_template_find(reg->cfg.cache_dir, spec, &t))
        return -ENOENT;
    struct vm_spec clone = *spec;
    clone.template_dir = t.dir;
    clone.screen_width = t.screen_width;
    clone.screen_height = t.screen_height;
    int64_t t0 = now_ms();
    if ((r = vm_new(reg->cfg.state_dir, id, &clone, &vm, &err)) < 0)
        goto fail;
    if ((r = vm_start(vm, &clone, &err)) < 0 ||
        (r = vm_restore_clone(vm, reg->cfg.boot_timeout_s * 1000, &err)) < 0)
        goto fail;
    lwsl_user("vm %s: %s %s in %lld ms\n", id,
              spec->template_dir ? "restored from snapshot" : "cloned from template", t.name,
              (long long)(now_ms() - t0));
    *out = vm;
    return 0;
fail:
    if (spec->template_dir) {
        *snap_err = err;
        ph_error_prefix(snap_err, "restoring snapshot %s", t.name);
    } else {
        lwsl_warn("vm %s: cloning template %s failed, booting cold: %s\n", id, t.name, err.message);
    }
    if (vm) {
        vm_stop(vm, 1000, NULL);
        vm_free(vm);
        vm_remove_run_dir(reg->cfg.state_dir, id);
    }
    return r < 0 ? r : -EIO;
}

static int vmctl_boot(struct instances *reg, const char *id, const struct vm_spec *spec,
                      const char *marker, struct vm **out, struct ph_error *err)
{
    struct vm_spec with = *spec;
    int r = -EIO;

    with.cdp_host_forward = reg->cfg.cdp_host_forward;
    spec = &with;
    if (vmctl_clone(reg, id, spec, out, err) == 0)
        return 0;
    /* A snapshot's clone has no cold boot to fall back on. */
    if (spec->template_dir)
        return err->kind != PH_ERR_NONE ? -EIO
                                        : ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT,
                                                       "snapshot %s is gone", spec->template_dir);
    /* A start the last gateway left half done may have left its QEMU on
     * this disk: two on one disk would corrupt it. */
    if (spec->reuse_run_dir && (r = vm_kill_orphan(reg->cfg.state_dir, id)) < 0)
        return ph_error_set(err, PH_ERR_UNAVAILABLE, r, "an earlier QEMU of %s does not exit", id);
    /* A boot that never reaches its marker is retried once from scratch:
     * under software emulation a guest kernel now and then stalls early,
     * and a fresh QEMU gets past it. */
    for (int attempt = 0; attempt < 2; attempt++) {
        struct vm *vm = NULL;
        r = vm_new(reg->cfg.state_dir, id, spec, &vm, err);
        if (r < 0)
            return r;
        r = vm_start(vm, spec, err);
        if (r == 0)
            r = spec->incoming_state
                    ? vm_restore_state(vm, reg->cfg.boot_timeout_s * 1000, err)
                    : vm_wait_ready(vm, marker, reg->cfg.boot_timeout_s * 1000, err);
        if (r == 0) {
            *out = vm;
            return 0;
        }
        lwsl_warn("vm %s: boot attempt %d failed: %s\n", id, attempt + 1, err->message);
        vm_stop(vm, 1000, NULL);
        vm_free(vm);
        /* A stopped VM's disk is the user's: it stays for the next try. */
        if (!spec->reuse_run_dir)
            vm_remove_run_dir(reg->cfg.state_dir, id);
        /* Saved memory is loaded once: a fresh QEMU would not change it. */
        if (spec->incoming_state ||
            (err->kind != PH_ERR_TIMEOUT && err->kind != PH_ERR_UNAVAILABLE))
            break;
    }
    return r;
}

static int vmctl_attach(struct instances *reg, const char *id, enum vm_kind kind, int ssh_port,
                        int cdp_port, struct vm **out, struct ph_error *err)
{
    return vm_attach(reg->cfg.state_dir, id, kind, ssh_port, cdp_port, out, err);
}

/* What the guest wrote reaches its disk before QEMU goes: QMP quit does
 * not wait for the guest's page cache. */
static int vmctl_power_off(struct vm *vm, int grace_ms, struct ph_error *err)
{
    struct run_result res = {0};
    struct ph_error sync_err = {0};

    if (vm_guest_run(vm, "sync", NULL, 0, 60, &res, &sync_err) == 0)
        run_result_done(&res);
    else
        lwsl_warn("vm %s: sync before power off: %s\n", vm->id, sync_err.message);
    return vm_stop(vm, grace_ms, err);
}

static void vmctl_discard(struct instances *reg, const char *id)
{
    vm_kill_orphan(reg->cfg.state_dir, id);
    vm_remove_run_dir(reg->cfg.state_dir, id);
}

const struct instance_vm_ops instance_vmctl_ops = {
    .boot = vmctl_boot,
    .attach = vmctl_attach,
    .stop = vm_stop,
    .power_off = vmctl_power_off,
    .pause = vm_pause,
    .resume = vm_resume,
    .save = vm_save_state,
    .discard = vmctl_discard,
    .alive = vm_alive,
    .console_cap = vm_console_cap,
    .free = vm_free,
};

char *instances_egress_socket(const struct instances *reg, const char *vm_id)
{
    char *p = NULL;
    if (!reg->cfg.egress_relay || asprintf(&p, "%s/egress/%s.sock", reg->cfg.state_dir, vm_id) < 0)
        return NULL;
    return p;
}

bool instances_egress_enabled(const struct instances *reg)
{
    return reg->cfg.egress_relay != NULL;
}

char *instances_egress_cmd(const struct instances *reg, const char *vm_id)
{
    _cleanup_free_ char *sock = instances_egress_socket(reg, vm_id);
    char *cmd = NULL;

    /* QEMU's slirp splits the command with shell quoting rules (no shell
     * runs it); single quotes keep the path whole, and it may hold none
     * (nor a comma: see qemu.c). */
    if (!sock || strchr(reg->cfg.egress_relay, ',') || strpbrk(sock, "',") ||
        asprintf(&cmd, "%s '%s'", reg->cfg.egress_relay, sock) < 0)
        return NULL;
    return cmd;
}

int instances_boot_vm(struct instances *reg, const char *id, const struct vm_spec *spec,
                      const char *marker, struct vm **out, struct ph_error *err)
{
    return reg->cfg.vm_ops->boot(reg, id, spec, marker, out, err);
}

/* ---- the registry ------------------------------------------------------ */

int instances_new(const struct instances_config *cfg, struct instances **out)
{
    struct instances *reg = calloc(1, sizeof(*reg));
    if (!reg)
        return -ENOMEM;
    reg->cfg = *cfg;
    if (!reg->cfg.vm_ops)
        reg->cfg.vm_ops = &instance_vmctl_ops;
    *out = reg;
    return 0;
}

void instances_add_kind(struct instances *reg, struct instance_kind *kind)
{
    kind->next = reg->kinds;
    reg->kinds = kind;
}

void instances_observe(struct instances *reg, struct instance_observer *o)
{
    struct instance_observer **p = &reg->observers;
    while (*p)
        p = &(*p)->next;
    o->next = NULL;
    *p = o;
}

const char *instances_state_dir(const struct instances *reg)
{
    return reg->cfg.state_dir;
}

const char *instances_cache_dir(const struct instances *reg)
{
    return reg->cfg.cache_dir;
}

struct state_db *instances_db(const struct instances *reg)
{
    return reg->cfg.db;
}

struct run_hooks *instances_hooks(const struct instances *reg)
{
    return reg->cfg.hooks;
}

enum vm_accel instances_accel(const struct instances *reg)
{
    return reg->cfg.accel;
}

struct work_pool *instances_work(const struct instances *reg)
{
    return reg->cfg.work;
}

int instances_boot_timeout_s(const struct instances *reg)
{
    return reg->cfg.boot_timeout_s;
}

struct instance *instance_find(struct instances *reg, const struct instance_kind *kind,
                               const char *id)
{
    for (struct instance *in = reg->list; in; in = in->next)
        if ((!kind || in->kind == kind) && strcmp(in->id, id) == 0)
            return in;
    return NULL;
}

struct instance *instances_first(struct instances *reg)
{
    return reg->list;
}

int instances_count(const struct instances *reg)
{
    int n = 0;
    for (const struct instance *in = reg->list; in; in = in->next)
        n++;
    return n;
}

static void instance_unlink(struct instance *in)
{
    for (struct instance **p = &in->reg->list; *p; p = &(*p)->next)
        if (*p == in) {
            *p = in->next;
            return;
        }
}

/* ---- observers ----------------------------------------------------------- */

static struct instance_private *priv(struct instance *in)
{
    return (struct instance_private *)(in + 1);
}

static int notify_setup(struct instance *in, struct ph_error *err)
{
    if (in->kind->setup && in->kind->setup(in, err) < 0)
        return -EIO;
    for (struct instance_observer *o = in->reg->observers; o; o = o->next)
        if (o->setup && o->setup(o, in, err) < 0)
            return -EIO;
    return 0;
}

/* Worker thread. *by_kind: the kind's own prepare refused (the guest did
 * not take the instance's settings), not an observer. */
static int notify_prepare(struct instance *in, struct vm *vm, struct ph_error *err, bool *by_kind)
{
    if (by_kind)
        *by_kind = false;
    if (in->kind->prepare && in->kind->prepare(in, vm, err) < 0) {
        if (by_kind)
            *by_kind = true;
        return -EIO;
    }
    for (struct instance_observer *o = in->reg->observers; o; o = o->next)
        if (o->prepare && o->prepare(o, in, vm, err) < 0)
            return -EIO;
    return 0;
}

/* Worker thread while the loop runs; the flag is only read and set by the
 * one stop job, or on the loop once no job runs. */
static void notify_stopping(struct instance *in, struct vm *vm)
{
    if (priv(in)->stopped)
        return;
    priv(in)->stopped = true;
    for (struct instance_observer *o = in->reg->observers; o; o = o->next)
        if (o->stopping)
            o->stopping(o, in, vm);
    if (in->kind->before_stop)
        in->kind->before_stop(in, vm);
}

static void notify_ending(struct instance *in)
{
    if (priv(in)->ended)
        return;
    priv(in)->ended = true;
    for (struct instance_observer *o = in->reg->observers; o; o = o->next)
        if (o->ending)
            o->ending(o, in);
}

/* The one free path. The instance must be unlinked, with no job holding it. */
static void instance_destroy(struct instance *in)
{
    struct instances *reg = in->reg;

    notify_ending(in);
    if (!priv(in)->destroyed) {
        priv(in)->destroyed = true;
        for (struct instance_observer *o = reg->observers; o; o = o->next)
            if (o->destroy)
                o->destroy(o, in);
    }
    for (struct instance_waiter *w = in->waiters, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    if (in->kind->free_data)
        in->kind->free_data(in->kind_data);
    if (in->vm)
        reg->cfg.vm_ops->free(in->vm);
    json_decref(in->env_vars);
    json_decref(in->allowed_domains);
    run_hooks_free(in->hooks);
    free(in);
}

static struct instance *instance_alloc(struct instances *reg, struct instance_kind *kind)
{
    struct instance *in = calloc(1, sizeof(*in) + sizeof(struct instance_private));
    if (!in)
        return NULL;
    in->reg = reg;
    in->kind = kind;
    if (!(in->hooks = run_hooks_new())) {
        free(in);
        return NULL;
    }
    return in;
}

/* ---- persistence ------------------------------------------------------------ */

void instance_save(struct instance *in)
{
    struct vm *vm = in->vm;
    json_t *rec = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:O, s:i, s:i}", "id", in->id,
        "vm_id", in->vm_id, "kind", in->kind->name, "status", instance_status_name(in->status),
        "error", in->error, "created_at", (json_int_t)in->created_at, "ready_at",
        (json_int_t)in->ready_at, "expires_at", (json_int_t)in->expires_at, "vcpus", in->vcpus,
        "mem_mib", in->mem_mib, "disk_mib", in->disk_mib, "timeout_minutes", in->timeout_minutes,
        "env_vars", in->env_vars, "ssh_port", vm ? vm->ssh_port : -1, "cdp_port",
        vm ? vm->cdp_port : -1);
    if (!rec) {
        lwsl_err("state: cannot save %s: out of memory\n", in->id);
        return;
    }
    json_object_set_new(rec, "network", json_string(net_mode_name(in->net_mode)));
    if (in->paused_to_disk)
        json_object_set_new(rec, "paused_to_disk", json_true());
    if (in->image[0])
        json_object_set_new(rec, "image", json_string(in->image));
    if (in->from_snapshot[0])
        json_object_set_new(rec, "from_snapshot", json_string(in->from_snapshot));
    if (in->allowed_domains)
        json_object_set(rec, "allowed_domains", in->allowed_domains);
    if (in->kind->record) {
        json_t *extra = in->kind->record(in);
        if (extra)
            json_object_set_new(rec, "extra", extra);
    }
    if (state_put(in->reg->cfg.db, in->id, in->kind->name, rec) < 0)
        lwsl_err("state: cannot save %s\n", in->id);
    json_decref(rec);
}

const char *instance_image(const struct instance *in)
{
    return in->image[0] ? in->image : vm_kind_flavour(in->kind->vm_kind);
}

json_t *instance_time_json(int64_t wall_ms)
{
    char buf[40];
    if (wall_ms <= 0)
        return json_null();
    format_time_utc(wall_ms, buf, sizeof(buf));
    return json_string(buf);
}

const char *instance_served_from(const struct instance *in)
{
    if (in->from_snapshot[0])
        return "snapshot";
    return in->vm && in->vm->cloned ? "template" : "cold_boot";
}

json_t *instance_json_base(const struct instance *in)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:i, s:i, s:i, s:i, s:O}", "id", in->id, "status",
        instance_status_name(in->status), "created_at", instance_time_json(in->created_at),
        "ready_at", instance_time_json(in->ready_at), "expires_at",
        instance_time_json(in->expires_at), "vcpus", in->vcpus, "mem_mib", in->mem_mib, "disk_mib",
        in->disk_mib, "timeout_minutes", in->timeout_minutes, "env_vars", in->env_vars);
    if (o)
        json_object_set_new(o, "image", json_string(instance_image(in)));
    if (o && in->vm)
        json_object_set_new(o, "served_from", json_string(instance_served_from(in)));
    if (o && in->from_snapshot[0])
        json_object_set_new(o, "from_snapshot", json_string(in->from_snapshot));
    if (o && (in->status == INSTANCE_ERROR ||
              ((in->status == INSTANCE_STOPPED || in->status == INSTANCE_PAUSED) && in->error[0])))
        json_object_set_new(o, "error", json_string(in->error));
    if (o && in->status == INSTANCE_PAUSED)
        json_object_set_new(o, "paused_to_disk", json_boolean(in->paused_to_disk));
    return o;
}

json_t *instance_to_json(const struct instance *in)
{
    json_t *o = in->kind->to_json ? in->kind->to_json(in) : instance_json_base(in);
    /* Every kind's egress policy; observers (the egress proxy) add their
     * figures to it. */
    if (o)
        json_object_set_new(o, "network",
                            json_pack("{s:s, s:O?}", "mode", net_mode_name(in->net_mode),
                                      "allowed_domains", in->allowed_domains));
    for (struct instance_observer *ob = in->reg->observers; o && ob; ob = ob->next)
        if (ob->describe)
            ob->describe(ob, in, o);
    return o;
}

const char *instances_using(struct instances *reg, const char *snap_id, const char *dir)
{
    for (struct instance *in = reg->list; in; in = in->next) {
        if (in->from_snapshot[0] && strcmp(in->from_snapshot, snap_id) == 0 &&
            in->status == INSTANCE_STARTING)
            return in->id;
        char path[PATH_MAX];
        _cleanup_free_ char *ref = NULL;
        snprintf(path, sizeof(path), "%s/vms/%s/template", reg->cfg.state_dir, in->vm_id);
        if (read_file(path, &ref, NULL, PATH_MAX) == 0 && strcmp(ref, dir) == 0)
            return in->id;
    }
    return NULL;
}

json_t *instances_list_json(struct instances *reg, const struct instance_kind *kind)
{
    json_t *arr = json_array();
    for (struct instance *in = reg->list; in && arr; in = in->next)
        if (in->kind == kind)
            json_array_insert_new(arr, 0, instance_to_json(in));
    return arr;
}

/* ---- holding, and deletion ----------------------------------------------- */

void instance_hold(struct instance *in)
{
    in->jobs++;
}

static int submit_to(struct instance *in, struct work_pool *pool, work_fn run, work_fn done,
                     void *data)
{
    instance_hold(in);
    int r = work_submit(pool, run, done, data);
    if (r < 0)
        instance_release(in);
    return r;
}

int instance_submit(struct instance *in, work_fn run, work_fn done, void *data)
{
    return submit_to(in, in->reg->cfg.work, run, done, data);
}

int instance_submit_exec(struct instance *in, work_fn run, work_fn done, void *data)
{
    struct work_pool *p = in->reg->cfg.exec_work ? in->reg->cfg.exec_work : in->reg->cfg.work;
    return submit_to(in, p, run, done, data);
}

struct stop_job {
    struct instance *in;
    struct vm *vm; /* owned: taken from in */
    struct ph_error err;
    int r;
};

static void stop_job_run(void *data)
{
    struct stop_job *j = data;
    struct instances *reg = j->in->reg;

    notify_stopping(j->in, j->vm);
    if (j->vm)
        j->r = reg->cfg.vm_ops->stop(j->vm, INSTANCE_STOP_GRACE_MS, &j->err);
    reg->cfg.vm_ops->discard(reg, j->in->vm_id);
}

static void stop_job_done(void *data)
{
    struct stop_job *j = data;
    struct instance *in = j->in;
    struct instances *reg = in->reg;

    if (j->r < 0)
        lwsl_err("stop %s: %s\n", in->id, j->err.message);
    state_delete(reg->cfg.db, in->id);
    instance_unlink(in);
    for (struct instance_waiter *w = in->waiters; w; w = w->next)
        if (w->fn)
            w->fn(w->data, in->id);
    lwsl_user("%s %s deleted\n", in->kind->name, in->id);
    if (j->vm)
        reg->cfg.vm_ops->free(j->vm);
    instance_destroy(in);
    free(j);
}

/* Queues the stop; when the queue is full it stays unqueued and the sweep
 * tries again: a stop never runs on the loop thread. */
static void instance_stop_now(struct instance *in)
{
    struct stop_job *j = calloc(1, sizeof(*j));
    if (!j)
        return;
    j->in = in;
    j->vm = TAKE_PTR(in->vm);
    if (work_submit(in->reg->cfg.work, stop_job_run, stop_job_done, j) < 0) {
        in->vm = TAKE_PTR(j->vm);
        free(j);
        return;
    }
    in->stop_queued = true;
}

void instance_release(struct instance *in)
{
    if (--in->jobs == 0 && in->deleting && !in->stop_queued)
        instance_stop_now(in);
}

int instance_delete(struct instance *in, instance_deleted_fn done, void *data)
{
    if (done) {
        struct instance_waiter *w = calloc(1, sizeof(*w));
        if (!w)
            return -ENOMEM;
        w->fn = done;
        w->data = data;
        w->next = in->waiters;
        in->waiters = w;
    }
    if (in->deleting)
        return 0;
    in->deleting = true;
    in->status = INSTANCE_STOPPING;
    instance_save(in);
    /* Clients learn now that the instance ends ("session ended"), not
     * later from a vanished guest. */
    notify_ending(in);
    if (in->jobs == 0) {
        instance_stop_now(in);
        return 0;
    }
    /* Commands still running would hold the VM until their own timeout;
     * ending QEMU now makes them fail at once and the stop follow. */
    if (in->vm && in->vm->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, in->vm->pidfd, SIGKILL, NULL, 0);
    return 0;
}

/* ---- creation ------------------------------------------------------------ */

struct boot_job {
    struct instance *in;
    char *extra_config;           /* owned */
    char *from_dir;               /* owned: the snapshot to start from, or NULL */
    const char *template_variant; /* static */
    int screen_width, screen_height;
    struct vm *vm; /* owned until handed to in; preset when pooled */
    bool restart;  /* a stopped instance booting again from its run dir */
    bool incoming; /* with restart: loading the memory a pause to disk saved */
    bool afresh;   /* the VM handed over failed prepare: a cold boot replaced it */
    instance_ready_fn ready;
    void *ready_data;
    struct ph_error err;
    int r;
};

static int boot_job_boot(struct boot_job *j, bool cold)
{
    struct instance *in = j->in;
    struct instances *reg = in->reg;
    _cleanup_free_ char *image = vm_image_dir(reg->cfg.cache_dir, instance_image(in));
    size_t n_env = json_object_size(in->env_vars), i = 0;
    _cleanup_free_ struct vm_env_var *env = calloc(n_env + 1, sizeof(*env));
    _cleanup_free_ char *egress_cmd = instances_egress_cmd(reg, in->vm_id);
    const char *key;
    json_t *val;

    if (!image || !env || (instances_egress_enabled(reg) && !egress_cmd))
        return ph_error_set(&j->err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    /* env_vars does not change while the instance starts: PUT /env needs
     * a ready one. */
    json_object_foreach(in->env_vars, key, val) env[i++] =
        (struct vm_env_var){key, json_string_value(val)};
    struct vm_spec spec = {
        .kind = in->kind->vm_kind,
        .vcpus = in->vcpus,
        .mem_mib = in->mem_mib,
        .disk_mib = in->disk_mib,
        .env = env,
        .n_env = n_env,
        .extra_config = j->extra_config,
        .accel = reg->cfg.accel,
        .image_dir = image,
        .screen_width = j->screen_width,
        .screen_height = j->screen_height,
        .egress_cmd = egress_cmd,
        .reuse_run_dir = j->restart,
        .incoming_state = j->incoming,
        .cold = cold,
        .template_dir = j->restart ? NULL : j->from_dir,
        .template_variant = j->template_variant,
    };
    return instances_boot_vm(reg, in->vm_id, &spec, in->kind->ready_marker, &j->vm, &j->err);
}

static void boot_job_drop_vm(struct boot_job *j)
{
    struct instances *reg = j->in->reg;
    reg->cfg.vm_ops->stop(j->vm, 1000, NULL);
    reg->cfg.vm_ops->free(TAKE_PTR(j->vm));
}

static void boot_job_run(void *data)
{
    struct boot_job *j = data;
    struct instance *in = j->in;
    struct instances *reg = in->reg;
    bool handed = j->vm != NULL; /* a pooled VM */

    bool by_kind = false;

    if (!j->vm)
        j->r = boot_job_boot(j, false);
    if (j->r == 0)
        j->r = notify_prepare(in, j->vm, &j->err, &by_kind);
    /* A pooled VM or a template's clone that does not take the instance's
     * settings (a browser that will not restart on a busy machine) is the
     * VM's failure, not the request's: a fresh boot with the settings
     * from the start serves it, slower. Not when the request itself is
     * refused (a limit, a bad value), nor when an observer refused: a
     * fresh boot would be refused the same way. A snapshot's or a fork's
     * state has no stand-in. */
    bool request_refused = j->err.kind == PH_ERR_LIMIT || j->err.kind == PH_ERR_INVALID ||
                           j->err.kind == PH_ERR_CONFLICT || j->err.kind == PH_ERR_BLOCKED ||
                           j->err.kind == PH_ERR_NOT_FOUND || j->err.kind == PH_ERR_TOO_LARGE;
    if (j->r < 0 && j->vm && by_kind && !request_refused && !j->restart && !j->from_dir &&
        (handed || j->vm->cloned)) {
        lwsl_warn("%s %s: the %s VM did not take its settings (%s); booting a fresh one\n",
                  in->kind->name, in->id, handed ? "pooled" : "cloned", j->err.message);
        boot_job_drop_vm(j);
        reg->cfg.vm_ops->discard(reg, in->vm_id);
        j->err = (struct ph_error){0};
        j->afresh = true;
        j->r = boot_job_boot(j, true);
        if (j->r == 0)
            j->r = notify_prepare(in, j->vm, &j->err, NULL);
    }
    if (j->r < 0 && j->vm)
        boot_job_drop_vm(j);
    /* A failed restart keeps the disk: the instance stays stopped. */
    if (j->r < 0 && !j->restart)
        reg->cfg.vm_ops->discard(reg, in->vm_id);
    if (j->r < 0 && j->err.kind == PH_ERR_NONE)
        ph_error_set(&j->err, PH_ERR_INTERNAL, j->r, "%s", strerror(-j->r));
}

static void boot_job_done(void *data)
{
    struct boot_job *j = data;
    struct instance *in = j->in;

    in->booted_afresh |= j->afresh;
    if (j->r == 0) {
        in->vm = TAKE_PTR(j->vm);
        in->ready_ms = now_ms();
        in->error[0] = '\0';
        in->paused_to_disk = false;
        if (!in->deleting) {
            in->status = INSTANCE_READY;
            /* The timeout is the time a user gets with a ready instance,
             * however long the boot took; a restart keeps the deadline. */
            if (!j->restart) {
                in->ready_at = wall_ms();
                in->expires_at = in->ready_at + (int64_t)in->timeout_minutes * 60000;
            }
        }
        lwsl_user("%s %s ready (ssh port %d)\n", in->kind->name, in->id, in->vm->ssh_port);
    } else if (j->incoming) {
        /* The saved memory stays for another try. */
        in->status = in->deleting ? INSTANCE_STOPPING : INSTANCE_PAUSED;
        snprintf(in->error, sizeof(in->error), "resume failed: %s", j->err.message);
        lwsl_err("%s %s failed to resume from disk: %s\n", in->kind->name, in->id, j->err.message);
    } else if (j->restart) {
        in->status = in->deleting ? INSTANCE_STOPPING : INSTANCE_STOPPED;
        snprintf(in->error, sizeof(in->error), "start failed: %s", j->err.message);
        lwsl_err("%s %s failed to start again: %s\n", in->kind->name, in->id, j->err.message);
    } else {
        in->status = INSTANCE_ERROR;
        snprintf(in->error, sizeof(in->error), "%s", j->err.message);
        lwsl_err("%s %s failed to start: %s\n", in->kind->name, in->id, j->err.message);
    }
    instance_save(in);
    if (j->ready)
        j->ready(in, j->r, j->r < 0 ? &j->err : NULL, j->ready_data);
    /* An instance that never started is not kept around: nothing in it. */
    if (j->r < 0 && !in->deleting && !j->restart)
        instance_delete(in, NULL, NULL);
    instance_release(in);
    free(j->extra_config);
    free(j->from_dir);
    free(j);
}

/* A pre-booted VM nobody will use: ended on a worker, or killed now. */
static void discard_pooled(struct instances *reg, struct vm *vm)
{
    if (!vm)
        return;
    if (vm->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
    reg->cfg.vm_ops->discard(reg, vm->id);
    reg->cfg.vm_ops->free(vm);
}

struct instance *instance_launch(struct instances *reg, struct instance_launch *l,
                                 struct ph_error *err)
{
    struct instance_kind *kind = l->kind;
    struct instance *in = NULL;
    struct boot_job *j = NULL;

    /* A taken id is a conflict whatever the count: retrying later would
     * not help. */
    if (l->id && instance_find(reg, NULL, l->id)) {
        ph_error_set(err, PH_ERR_CONFLICT, -EEXIST, "the id %s is taken", l->id);
        goto fail;
    }
    char why[200];
    if (reg->cfg.db && state_write_failing(reg->cfg.db, why, sizeof(why))) {
        /* What it would start could not be found again after a restart. */
        ph_error_set(err, PH_ERR_UNAVAILABLE, -EIO,
                     "the gateway cannot save its state just now (state database: %s); "
                     "try again later",
                     why);
        goto fail;
    }
    if (instances_count(reg) >= reg->cfg.max_instances) {
        ph_error_set(err, PH_ERR_LIMIT, -EAGAIN,
                     "limit of %d sandboxes and sessions reached; delete one first",
                     reg->cfg.max_instances);
        goto fail;
    }
    in = instance_alloc(reg, kind);
    j = calloc(1, sizeof(*j));
    if (!in || !j ||
        (l->id ? snprintf(in->id, sizeof(in->id), "%s", l->id) < 0
               : random_id(in->id, sizeof(in->id), kind->id_prefix, 6) < 0)) {
        ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(in->vm_id, sizeof(in->vm_id), "%s", l->pooled ? l->pooled->id : in->id);
    snprintf(in->image, sizeof(in->image), "%s", l->image ? l->image : "");
    snprintf(in->from_snapshot, sizeof(in->from_snapshot), "%s",
             l->from_snapshot ? l->from_snapshot : "");
    in->status = INSTANCE_STARTING;
    in->created_at = wall_ms();
    in->expires_at = in->created_at + (int64_t)l->timeout_minutes * 60000;
    in->start_ms = now_ms();
    in->vcpus = l->vcpus;
    in->mem_mib = l->mem_mib;
    in->disk_mib = l->disk_mib;
    in->timeout_minutes = l->timeout_minutes;
    in->env_vars = l->env_vars ? json_incref(l->env_vars) : json_object();
    in->net_mode = l->net_mode;
    in->allowed_domains = json_incref(l->allowed_domains);
    in->kind_data = TAKE_PTR(l->kind_data);
    j->in = in;
    j->extra_config = TAKE_PTR(l->extra_config);
    j->screen_width = l->screen_width;
    j->screen_height = l->screen_height;
    j->vm = TAKE_PTR(l->pooled);
    j->template_variant = l->template_variant;
    if (l->from_dir && !(j->from_dir = strdup(l->from_dir))) {
        ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto fail_job;
    }
    j->ready = l->ready;
    j->ready_data = l->ready_data;
    instance_hold(in);
    if (notify_setup(in, err) < 0)
        goto fail_job;
    if (work_submit(reg->cfg.work, boot_job_run, boot_job_done, j) < 0) {
        ph_error_set(err, PH_ERR_LIMIT, -EAGAIN, "gateway is busy; try again");
        goto fail_job;
    }
    in->next = reg->list;
    reg->list = in;
    instance_save(in);
    return in;

fail_job:
    free(j->extra_config);
    free(j->from_dir);
    discard_pooled(reg, j->vm);
    free(j);
    instance_destroy(in);
    return NULL;
fail:
    free(j);
    if (in)
        instance_destroy(in);
    else if (kind->free_data && l->kind_data)
        kind->free_data(TAKE_PTR(l->kind_data));
    free(TAKE_PTR(l->extra_config));
    discard_pooled(reg, TAKE_PTR(l->pooled));
    return NULL;
}

/* ---- power off and on ------------------------------------------------------ */

struct power_job {
    struct instance *in;
    struct vm *vm; /* owned: taken from in */
    instance_ready_fn done;
    void *data;
    struct ph_error err;
    int r;
};

static void power_off_run(void *data)
{
    struct power_job *j = data;
    const struct instance_vm_ops *ops = j->in->reg->cfg.vm_ops;
    j->r = (ops->power_off ? ops->power_off : ops->stop)(j->vm, INSTANCE_STOP_GRACE_MS, &j->err);
}

static void power_off_done(void *data)
{
    struct power_job *j = data;
    struct instance *in = j->in;

    in->reg->cfg.vm_ops->free(j->vm);
    if (j->r < 0)
        lwsl_err("%s %s: power off: %s\n", in->kind->name, in->id, j->err.message);
    else
        lwsl_user("%s %s stopped\n", in->kind->name, in->id);
    instance_save(in);
    if (j->done)
        j->done(in, j->r, j->r < 0 ? &j->err : NULL, j->data);
    instance_release(in);
    free(j);
}

int instance_power_off(struct instance *in, instance_ready_fn done, void *data,
                       struct ph_error *err)
{
    struct power_job *j;

    if (in->status == INSTANCE_STOPPED && !in->deleting) {
        if (done)
            done(in, 0, NULL, data);
        return 0;
    }
    if (in->status != INSTANCE_READY || !in->vm || in->deleting)
        return ph_error_set(err, PH_ERR_CONFLICT, -EBUSY, "%s %s is %s; only a ready one stops",
                            in->kind->label, in->id, instance_status_name(in->status));
    if (in->jobs > 0)
        return ph_error_set(err, PH_ERR_CONFLICT, -EBUSY,
                            "%s %s is running commands or transfers; stop it once they end",
                            in->kind->label, in->id);
    if (!(j = calloc(1, sizeof(*j))))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    j->in = in;
    j->vm = in->vm;
    j->done = done;
    j->data = data;
    if (instance_submit(in, power_off_run, power_off_done, j) < 0) {
        free(j);
        return ph_error_set(err, PH_ERR_LIMIT, -EAGAIN, "gateway is busy; try again");
    }
    /* From here on nothing new reaches the VM: it is the job's. */
    in->vm = NULL;
    in->status = INSTANCE_STOPPED;
    in->error[0] = '\0';
    return 0;
}

int instance_power_on(struct instance *in, instance_ready_fn done, void *data, struct ph_error *err)
{
    struct boot_job *j;

    if (in->status == INSTANCE_READY && in->vm && !in->deleting) {
        if (done)
            done(in, 0, NULL, data);
        return 0;
    }
    if (in->status != INSTANCE_STOPPED || in->jobs > 0 || in->deleting)
        return ph_error_set(err, PH_ERR_CONFLICT, -EBUSY, "%s %s is %s; only a stopped one starts",
                            in->kind->label, in->id,
                            in->jobs > 0 ? "still stopping" : instance_status_name(in->status));
    if (!(j = calloc(1, sizeof(*j))))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    j->in = in;
    j->restart = true;
    j->ready = done;
    j->ready_data = data;
    if (instance_submit(in, boot_job_run, boot_job_done, j) < 0) {
        free(j);
        return ph_error_set(err, PH_ERR_LIMIT, -EAGAIN, "gateway is busy; try again");
    }
    /* The record says stopped until the boot is done: a gateway killed
     * meanwhile finds a stopped instance, never a half-started one that
     * it would delete with its disk. */
    in->status = INSTANCE_STARTING;
    in->start_ms = now_ms();
    return 0;
}

/* ---- pause and resume ---------------------------------------------------- */

struct pause_job {
    struct instance *in;
    struct vm *vm; /* weak: held; owned for a pause to disk */
    bool resume, to_disk;
    instance_ready_fn done;
    void *data;
    struct ph_error err;
    int r;
};

static void pause_run(void *data)
{
    struct pause_job *j = data;
    const struct instance_vm_ops *ops = j->in->reg->cfg.vm_ops;
    j->r = (j->resume ? ops->resume : j->to_disk ? ops->save : ops->pause)(j->vm, &j->err);
}

static void pause_done(void *data)
{
    struct pause_job *j = data;
    struct instance *in = j->in;

    if (j->to_disk && j->r == 0) {
        in->reg->cfg.vm_ops->free(j->vm);
        in->paused_to_disk = true;
        in->error[0] = '\0';
    } else if (j->to_disk) {
        in->vm = j->vm; /* the save failed: the VM runs on */
    }
    if (!in->deleting && in->status == INSTANCE_PAUSED)
        /* A failed pause leaves it running; a failed resume, paused. */
        in->status = (j->r == 0) == j->resume ? INSTANCE_READY : INSTANCE_PAUSED;
    if (j->r < 0)
        lwsl_err("%s %s: %s: %s\n", in->kind->name, in->id, j->resume ? "resume" : "pause",
                 j->err.message);
    else
        lwsl_user("%s %s %s\n", in->kind->name, in->id,
                  j->resume    ? "resumed"
                  : j->to_disk ? "paused to disk"
                               : "paused");
    instance_save(in);
    if (j->done)
        j->done(in, j->r, j->r < 0 ? &j->err : NULL, j->data);
    instance_release(in);
    free(j);
}

/* Resume of a pause to disk: a boot that loads the saved memory. */
static int resume_from_disk(struct instance *in, instance_ready_fn done, void *data,
                            struct ph_error *err)
{
    struct boot_job *j = calloc(1, sizeof(*j));

    if (!j)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    j->in = in;
    j->restart = j->incoming = true;
    j->ready = done;
    j->ready_data = data;
    if (instance_submit(in, boot_job_run, boot_job_done, j) < 0) {
        free(j);
        return ph_error_set(err, PH_ERR_LIMIT, -EAGAIN, "gateway is busy; try again");
    }
    /* The record still says paused to disk until the guest runs: a gateway
     * killed meanwhile finds it so, memory file included. */
    in->start_ms = now_ms();
    return 0;
}

static int pause_submit(struct instance *in, bool resume, bool to_disk, instance_ready_fn done,
                        void *data, struct ph_error *err)
{
    const struct instance_vm_ops *ops = in->reg->cfg.vm_ops;
    struct pause_job *j;

    if (!in->deleting && in->jobs == 0 &&
        (resume    ? in->status == INSTANCE_READY && in->vm
         : to_disk ? in->status == INSTANCE_PAUSED && in->paused_to_disk
                   : in->status == INSTANCE_PAUSED && (in->vm || in->paused_to_disk))) {
        if (done)
            done(in, 0, NULL, data);
        return 0;
    }
    if (!(resume ? ops->resume : to_disk ? ops->save : ops->pause))
        return ph_error_set(err, PH_ERR_INVALID, -ENOTSUP, "%ss cannot be paused%s",
                            in->kind->label, to_disk ? " to disk" : "");
    /* A VM paused in memory can still be written out. */
    bool ok = resume    ? in->status == INSTANCE_PAUSED && (in->vm || in->paused_to_disk)
              : to_disk ? (in->status == INSTANCE_READY || in->status == INSTANCE_PAUSED) && in->vm
                        : in->status == INSTANCE_READY && in->vm;
    if (!ok || in->deleting)
        return ph_error_set(err, PH_ERR_CONFLICT, -EBUSY, "%s %s is %s; only a %s one %s",
                            in->kind->label, in->id, instance_status_name(in->status),
                            resume ? "paused" : "ready", resume ? "resumes" : "pauses");
    if (in->jobs > 0)
        return ph_error_set(err, PH_ERR_CONFLICT, -EBUSY, "%s %s is %s; try again once that ends",
                            in->kind->label, in->id,
                            resume ? "still pausing or resuming"
                                   : "running commands, transfers or terminals");
    if (resume && in->paused_to_disk)
        return resume_from_disk(in, done, data, err);
    if (!(j = calloc(1, sizeof(*j))))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    *j = (struct pause_job){
        .in = in, .vm = in->vm, .resume = resume, .to_disk = to_disk, .done = done, .data = data};
    if (instance_submit(in, pause_run, pause_done, j) < 0) {
        free(j);
        return ph_error_set(err, PH_ERR_LIMIT, -EAGAIN, "gateway is busy; try again");
    }
    /* Paused from now on: no new command reaches a guest about to stop;
     * resumed only once its vCPUs run. A VM being saved is the job's. */
    in->status = INSTANCE_PAUSED;
    if (to_disk)
        in->vm = NULL;
    return 0;
}

int instance_pause(struct instance *in, instance_ready_fn done, void *data, struct ph_error *err)
{
    return pause_submit(in, false, false, done, data, err);
}

int instance_pause_to_disk(struct instance *in, instance_ready_fn done, void *data,
                           struct ph_error *err)
{
    return pause_submit(in, false, true, done, data, err);
}

int instance_resume(struct instance *in, instance_ready_fn done, void *data, struct ph_error *err)
{
    return pause_submit(in, true, false, done, data, err);
}

/* ---- restart and supervision ----------------------------------------------- */

struct restore_job {
    struct instance *in;
    int ssh_port, cdp_port;
    struct vm *vm;
    struct ph_error err;
    int r;
};

static void restore_job_run(void *data)
{
    struct restore_job *j = data;
    struct instances *reg = j->in->reg;
    j->r = reg->cfg.vm_ops->attach(reg, j->in->vm_id, j->in->kind->vm_kind, j->ssh_port,
                                   j->cdp_port, &j->vm, &j->err);
}

static void restore_job_done(void *data)
{
    struct restore_job *j = data;
    struct instance *in = j->in;

    if (j->r == 0 && notify_setup(in, &j->err) < 0)
        j->r = -EIO;
    if (j->r == 0) {
        in->vm = TAKE_PTR(j->vm);
        if (!in->deleting)
            in->status = in->vm->paused ? INSTANCE_PAUSED : INSTANCE_READY;
        lwsl_user("re-attached to %s %s%s\n", in->kind->name, in->id,
                  in->vm->paused ? " (paused)" : "");
    } else {
        in->status = INSTANCE_ERROR;
        snprintf(in->error, sizeof(in->error), "lost while the gateway was down: %s",
                 j->err.message);
        lwsl_warn("%s %s: %s\n", in->kind->name, in->id, in->error);
    }
    instance_save(in);
    instance_release(in);
    if (j->vm)
        in->reg->cfg.vm_ops->free(j->vm);
    free(j);
}

void instance_record_str(char *dst, size_t len, json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));
    snprintf(dst, len, "%s", s ? s : dflt);
}

static void restore_record(struct instances *reg, struct instance_kind *kind, json_t *rec)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    const char *status = json_string_value(json_object_get(rec, "status"));
    struct instance *in;
    struct restore_job *j;

    if (!id || !(in = instance_alloc(reg, kind)))
        return;
    snprintf(in->id, sizeof(in->id), "%s", id);
    instance_record_str(in->vm_id, sizeof(in->vm_id), rec, "vm_id", id);
    instance_record_str(in->image, sizeof(in->image), rec, "image", "");
    instance_record_str(in->from_snapshot, sizeof(in->from_snapshot), rec, "from_snapshot", "");
    in->created_at = json_integer_value(json_object_get(rec, "created_at"));
    in->ready_at = json_integer_value(json_object_get(rec, "ready_at"));
    in->expires_at = json_integer_value(json_object_get(rec, "expires_at"));
    in->start_ms = now_ms();
    in->vcpus = (int)json_integer_value(json_object_get(rec, "vcpus"));
    in->mem_mib = (int)json_integer_value(json_object_get(rec, "mem_mib"));
    in->disk_mib = (int)json_integer_value(json_object_get(rec, "disk_mib"));
    in->timeout_minutes = (int)json_integer_value(json_object_get(rec, "timeout_minutes"));
    in->env_vars = json_incref(json_object_get(rec, "env_vars"));
    if (!in->env_vars)
        in->env_vars = json_object();
    {
        /* Records from before network policies: the default, internet. */
        const char *net = json_string_value(json_object_get(rec, "network"));
        json_t *ad = json_object_get(rec, "allowed_domains");
        in->net_mode = net && strcmp(net, "none") == 0 ? NET_NONE : NET_INTERNET;
        if (json_is_array(ad)) {
            in->net_mode = NET_ALLOWLIST;
            in->allowed_domains = json_incref(ad);
        }
    }
    if (kind->restore)
        in->kind_data = kind->restore(kind, json_object_get(rec, "extra"));
    in->status = INSTANCE_STARTING;
    in->next = reg->list;
    reg->list = in;
    j = calloc(1, sizeof(*j));
    if (j) {
        j->in = in;
        j->ssh_port = (int)json_integer_value(json_object_get(rec, "ssh_port"));
        j->cdp_port = (int)json_integer_value(json_object_get(rec, "cdp_port"));
    }
    in->paused_to_disk = json_is_true(json_object_get(rec, "paused_to_disk"));
    bool on_disk = status && strcmp(status, "paused") == 0 && in->paused_to_disk;
    /* A stopped one, or one paused to disk, has no VM to attach to: it
     * waits for a start or a resume. */
    if (j && status && (strcmp(status, "stopped") == 0 || on_disk) &&
        (!kind->restore || in->kind_data)) {
        struct ph_error err = {0};
        free(j);
        in->status = on_disk ? INSTANCE_PAUSED : INSTANCE_STOPPED;
        instance_record_str(in->error, sizeof(in->error), rec, "error", "");
        if (notify_setup(in, &err) < 0) {
            in->status = INSTANCE_ERROR;
            snprintf(in->error, sizeof(in->error), "%s", err.message);
        }
        lwsl_user("%s %s is %s; kept\n", kind->name, in->id,
                  on_disk ? "paused to disk" : "stopped");
        return;
    }
    /* Records of an instance that was being deleted or never booted are
     * finished off: whatever is left of them goes. */
    if (!j || (kind->restore && !in->kind_data) || !status || strcmp(status, "stopping") == 0 ||
        strcmp(status, "starting") == 0 || j->ssh_port <= 0) {
        free(j);
        instance_delete(in, NULL, NULL);
        return;
    }
    if (instance_submit(in, restore_job_run, restore_job_done, j) < 0) {
        free(j);
        instance_delete(in, NULL, NULL);
    }
}

/* Run dirs that no record names: a VM whose record was never written or
 * went first (a SIGKILL at the wrong moment) would otherwise run forever.
 * Their QEMU (only one whose command line names the dir) is ended and the
 * dir removed. At start, before anything boots. */
static void reap_unrecorded(struct instances *reg)
{
    _cleanup_free_ char *path = NULL;
    DIR *d;
    struct dirent *e;

    if (asprintf(&path, "%s/vms", reg->cfg.state_dir) < 0 || !(d = opendir(path)))
        return;
    while ((e = readdir(d))) {
        bool known = e->d_name[0] == '.';
        for (struct instance *in = reg->list; in && !known; in = in->next)
            known = strcmp(in->vm_id, e->d_name) == 0;
        if (known || e->d_type != DT_DIR || !vm_id_valid(e->d_name))
            continue;
        lwsl_warn("%s/%s: no record names it; ending what is left of it\n", path, e->d_name);
        reg->cfg.vm_ops->discard(reg, e->d_name);
    }
    closedir(d);
}

void instances_restore(struct instances *reg)
{
    for (struct instance_kind *kind = reg->kinds; kind; kind = kind->next) {
        json_t *all = NULL, *rec;
        size_t i;
        if (state_list(reg->cfg.db, kind->name, &all) < 0)
            continue;
        json_array_foreach(all, i, rec) restore_record(reg, kind, rec);
        json_decref(all);
    }
    reap_unrecorded(reg);
}

void instances_sweep(struct instances *reg)
{
    int64_t now = wall_ms();

    for (struct instance *in = reg->list, *next; in; in = next) {
        next = in->next;
        if (in->deleting) {
            if (in->jobs == 0 && !in->stop_queued)
                instance_stop_now(in); /* the queue was full last time */
            continue;
        }
        if (in->status != INSTANCE_STARTING && now >= in->expires_at) {
            lwsl_user("%s %s expired after %d minutes\n", in->kind->name, in->id,
                      in->timeout_minutes);
            instance_delete(in, NULL, NULL);
            continue;
        }
        if ((in->status == INSTANCE_READY || in->status == INSTANCE_PAUSED) && in->vm &&
            !reg->cfg.vm_ops->alive(in->vm)) {
            in->status = INSTANCE_ERROR;
            snprintf(in->error, sizeof(in->error),
                     "QEMU exited unexpectedly (console log: %s/serial.log)",
                     in->vm->run_dir ? in->vm->run_dir : in->vm_id);
            lwsl_err("%s %s: %s\n", in->kind->name, in->id, in->error);
            instance_save(in);
        }
        /* A guest writes its console as fast as it likes: every 10 s,
         * its log is cut back to its limit. */
        if (in->vm && reg->cfg.vm_ops->console_cap && reg->cfg.console_log_max_bytes > 0 &&
            reg->sweeps % 10 == 0 &&
            reg->cfg.vm_ops->console_cap(in->vm, reg->cfg.console_log_max_bytes) == 1)
            lwsl_warn("%s %s: console log over %lld MiB; its oldest part was dropped\n",
                      in->kind->name, in->id, (long long)(reg->cfg.console_log_max_bytes >> 20));
    }
    reg->sweeps++;
}

void instances_shutdown(struct instances *reg)
{
    for (struct instance *in = reg->list; in; in = in->next) {
        notify_ending(in);
        /* A queued stop job tells the observers itself. */
        if (!in->stop_queued)
            notify_stopping(in, NULL);
    }
}

void instances_free(struct instances *reg)
{
    if (!reg)
        return;
    while (reg->list) {
        struct instance *in = reg->list;
        reg->list = in->next;
        /* The VM keeps running: the next gateway re-attaches to it. */
        notify_ending(in);
        notify_stopping(in, NULL);
        instance_destroy(in);
    }
    free(reg);
}
