/* Unit tests for gateway/instance.c, the lifecycle of every VM-backed
 * instance, with test kinds and stand-in VMs (no guest): create -> ready
 * -> delete, a boot that fails, a guest that cannot be prepared, a setup
 * that refuses, expiry, a QEMU that dies, deletion while a job holds the
 * instance, restore of saved records, power off and on (a stopped instance
 * across a restart too), and shutdown with live instances of two kinds. Every observer call is
 * counted: each must happen exactly once per instance, in order, and everything made must be freed
 * (the ASan build's leak checker sees to the rest). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "instance.h"
#include "state.h"
#include "util.h"

static char dir[] = "/tmp/test_instance.XXXXXX";

/* ---- stand-in VMs ---- */

static atomic_int vms_live;    /* made and not freed */
static atomic_int vms_stopped; /* stop calls */
static atomic_int discards;
static atomic_bool boot_fails, vm_dead;
static atomic_int boots_reusing; /* boots from a kept run dir */
static atomic_bool boots_clone;  /* boots give clones of a template unless spec.cold */
static atomic_int boots_cold;    /* boots with spec.cold */

static struct vm *fake_vm(const char *id)
{
    struct vm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return NULL;
    snprintf(vm->id, sizeof(vm->id), "%s", id);
    vm->pidfd = -1;
    vm->ssh_port = 2222;
    vm->cdp_port = -1;
    atomic_fetch_add(&vms_live, 1);
    return vm;
}

static int fake_boot(struct instances *reg, const char *id, const struct vm_spec *spec,
                     const char *marker, struct vm **out, struct ph_error *err)
{
    if (atomic_load(&boot_fails))
        return ph_error_set(err, PH_ERR_TIMEOUT, -ETIMEDOUT, "guest never printed %s", marker);
    if (spec->reuse_run_dir)
        atomic_fetch_add(&boots_reusing, 1);
    if (spec->cold)
        atomic_fetch_add(&boots_cold, 1);
    *out = fake_vm(id);
    if (*out)
        (*out)->cloned = (atomic_load(&boots_clone) || spec->template_dir) && !spec->cold;
    return *out ? 0 : -ENOMEM;
}

static int fake_attach(struct instances *reg, const char *id, enum vm_kind kind, int ssh_port,
                       int cdp_port, struct vm **out, struct ph_error *err)
{
    if (ssh_port != 2222)
        return ph_error_set(err, PH_ERR_UNAVAILABLE, -ENOENT, "no VM %s", id);
    *out = fake_vm(id);
    return *out ? 0 : -ENOMEM;
}

static int fake_stop(struct vm *vm, int grace_ms, struct ph_error *err)
{
    atomic_fetch_add(&vms_stopped, 1);
    return 0;
}

static atomic_bool pause_fails;

static int fake_pause(struct vm *vm, struct ph_error *err)
{
    if (atomic_load(&pause_fails))
        return ph_error_set(err, PH_ERR_INTERNAL, -EIO, "QMP stop failed");
    vm->paused = true;
    return 0;
}

static int fake_resume(struct vm *vm, struct ph_error *err)
{
    vm->paused = false;
    return 0;
}

static void fake_discard(struct instances *reg, const char *id)
{
    atomic_fetch_add(&discards, 1);
}

static bool fake_alive(const struct vm *vm)
{
    return !atomic_load(&vm_dead);
}

static void fake_free(struct vm *vm)
{
    if (!vm)
        return;
    atomic_fetch_sub(&vms_live, 1);
    free(vm);
}

static const struct instance_vm_ops fake_ops = {
    .boot = fake_boot,
    .attach = fake_attach,
    .stop = fake_stop,
    .pause = fake_pause,
    .resume = fake_resume,
    .discard = fake_discard,
    .alive = fake_alive,
    .free = fake_free,
};

/* ---- a test kind: its data is a counter block, restored from "extra" ---- */

struct kind_data {
    int tag;
};

static atomic_int data_live;

static struct kind_data *kind_data_new(int tag)
{
    struct kind_data *d = calloc(1, sizeof(*d));
    d->tag = tag;
    atomic_fetch_add(&data_live, 1);
    return d;
}

static void kind_free_data(void *data)
{
    if (!data)
        return;
    atomic_fetch_sub(&data_live, 1);
    free(data);
}

static json_t *kind_record(const struct instance *in)
{
    return json_pack("{s:i}", "tag", ((struct kind_data *)in->kind_data)->tag);
}

static void *kind_restore(const struct instance_kind *kind, json_t *extra)
{
    return kind_data_new((int)json_integer_value(json_object_get(extra, "tag")));
}

/* kind_a's own prepare: refuses a pooled or cloned VM with this error
 * kind while it is not PH_ERR_NONE (a guest that does not take the
 * instance's settings, or a request the kind turns down). */
static _Atomic enum ph_error_kind kind_refuses_handed;
static atomic_int kind_prepares;

static int kind_prepare(struct instance *in, struct vm *vm, struct ph_error *err)
{
    atomic_fetch_add(&kind_prepares, 1);
    enum ph_error_kind k = atomic_load(&kind_refuses_handed);
    if (k != PH_ERR_NONE && (vm->cloned || vm->pooled))
        return ph_error_set(err, k, -EIO, "the kind refuses this VM");
    return 0;
}

static struct instance_kind kind_a = {
    .name = "testa",
    .prepare = kind_prepare,
    .label = "test instance",
    .id_prefix = "ta-",
    .ready_marker = "READY a",
    .record = kind_record,
    .restore = kind_restore,
    .free_data = kind_free_data,
};
static struct instance_kind kind_b = {
    .name = "testb",
    .label = "other test instance",
    .id_prefix = "tb-",
    .ready_marker = "READY b",
    .free_data = kind_free_data,
};

/* ---- an observer that counts, and checks the order per instance ---- */

enum { EV_SETUP, EV_PREPARE, EV_STOPPING, EV_ENDING, EV_DESTROY, EV_N };

struct counter {
    struct instance_observer o;
    atomic_int n[EV_N];
    atomic_int stopping_without_vm;
    bool refuse_setup, refuse_prepare;
    bool refuse_handed; /* refuse a pooled or cloned VM */
};

static int obs_setup(struct instance_observer *o, struct instance *in, struct ph_error *err)
{
    struct counter *c = container_of(o, struct counter, o);
    atomic_fetch_add(&c->n[EV_SETUP], 1);
    if (c->refuse_setup)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "setup refused by the test");
    return 0;
}

static int obs_prepare(struct instance_observer *o, struct instance *in, struct vm *vm,
                       struct ph_error *err)
{
    struct counter *c = container_of(o, struct counter, o);
    atomic_fetch_add(&c->n[EV_PREPARE], 1);
    CHECK(vm != NULL);
    if (c->refuse_prepare || (c->refuse_handed && vm && (vm->cloned || vm->pooled)))
        return ph_error_set(err, PH_ERR_UNAVAILABLE, -EIO, "prepare refused by the test");
    return 0;
}

static void obs_stopping(struct instance_observer *o, struct instance *in, struct vm *vm)
{
    struct counter *c = container_of(o, struct counter, o);
    atomic_fetch_add(&c->n[EV_STOPPING], 1);
    if (!vm)
        atomic_fetch_add(&c->stopping_without_vm, 1);
}

static void obs_ending(struct instance_observer *o, struct instance *in)
{
    struct counter *c = container_of(o, struct counter, o);
    atomic_fetch_add(&c->n[EV_ENDING], 1);
}

static void obs_destroy(struct instance_observer *o, struct instance *in)
{
    struct counter *c = container_of(o, struct counter, o);
    /* Destroy comes last: ending always came first. */
    CHECK(atomic_load(&c->n[EV_ENDING]) > atomic_load(&c->n[EV_DESTROY]));
    atomic_fetch_add(&c->n[EV_DESTROY], 1);
}

static void counter_init(struct counter *c)
{
    memset(c, 0, sizeof(*c));
    c->o = (struct instance_observer){.setup = obs_setup,
                                      .prepare = obs_prepare,
                                      .stopping = obs_stopping,
                                      .ending = obs_ending,
                                      .destroy = obs_destroy};
}

static void check_counts(const struct counter *c, int setup, int prepare, int stopping, int ending,
                         int destroy, int line)
{
    int want[EV_N] = {setup, prepare, stopping, ending, destroy};
    static const char *const names[EV_N] = {"setup", "prepare", "stopping", "ending", "destroy"};
    for (int i = 0; i < EV_N; i++)
        if (atomic_load(&c->n[i]) != want[i]) {
            fprintf(stderr, "line %d: %s called %d times, expected %d\n", line, names[i],
                    atomic_load(&c->n[i]), want[i]);
            check_failures++;
        }
}
#define CHECK_COUNTS(c, s, p, st, e, d) check_counts(c, s, p, st, e, d, __LINE__)

/* ---- the test's own loop: dispatch the work pool until cond holds ---- */

struct world {
    struct state_db *db;
    struct work_pool *work;
    struct run_hooks *hooks;
    struct instances *reg;
    struct counter counter;
};

#define SPIN_UNTIL(w, cond)                                                                        \
    do {                                                                                           \
        int64_t _deadline = now_ms() + 10000;                                                      \
        while (!(cond) && now_ms() < _deadline) {                                                  \
            work_pool_dispatch((w)->work);                                                         \
            usleep(1000);                                                                          \
        }                                                                                          \
        CHECK(cond);                                                                               \
    } while (0)

static void world_init(struct world *w, const char *db_name)
{
    char path[256];
    struct ph_error err = {0};

    memset(w, 0, sizeof(*w));
    snprintf(path, sizeof(path), "%s/%s", dir, db_name);
    CHECK(state_open(path, &w->db, &err) == 0);
    CHECK((w->work = work_pool_new(NULL, 2, 16)) != NULL);
    CHECK((w->hooks = run_hooks_new()) != NULL);
    struct instances_config cfg = {
        .state_dir = dir,
        .cache_dir = dir,
        .db = w->db,
        .work = w->work,
        .hooks = w->hooks,
        .accel = VM_ACCEL_TCG,
        .max_instances = 4,
        .boot_timeout_s = 5,
        .vm_ops = &fake_ops,
    };
    CHECK(instances_new(&cfg, &w->reg) == 0);
    instances_add_kind(w->reg, &kind_a);
    instances_add_kind(w->reg, &kind_b);
    counter_init(&w->counter);
    instances_observe(w->reg, &w->counter.o);
}

/* Shutdown as the gateway does it: end, drain the workers, free. */
static void world_done(struct world *w)
{
    instances_shutdown(w->reg);
    work_pool_free(w->work);
    instances_free(w->reg);
    run_hooks_free(w->hooks);
    state_close(w->db);
}

static int records(struct world *w)
{
    json_t *all = NULL;
    CHECK(state_list(w->db, NULL, &all) == 0);
    int n = (int)json_array_size(all);
    json_decref(all);
    return n;
}

struct ready_result {
    int calls, r;
    char message[256];
};

static void on_ready(struct instance *in, int r, const struct ph_error *err, void *data)
{
    struct ready_result *rr = data;
    rr->calls++;
    rr->r = r;
    snprintf(rr->message, sizeof(rr->message), "%s", err ? err->message : "");
}

static void on_deleted(void *data, const char *id)
{
    (*(int *)data)++;
}

/* What every test launch asks for: a small instance of kind_a, told to rr. */
static struct instance_launch test_launch(int tag, struct ready_result *rr)
{
    return (struct instance_launch){
        .kind = &kind_a,
        .vcpus = 1,
        .mem_mib = 256,
        .timeout_minutes = 5,
        .kind_data = kind_data_new(tag),
        .extra_config = strdup("x=1\n"),
        .ready = on_ready,
        .ready_data = rr,
    };
}

static struct instance *launch_id(struct world *w, struct instance_kind *kind, const char *id,
                                  int tag, struct ready_result *rr, struct ph_error *err)
{
    struct instance_launch l = test_launch(tag, rr);
    l.kind = kind;
    l.id = id;
    return instance_launch(w->reg, &l, err);
}

/* Launches l, waits until it has failed and is gone, and checks that the
 * failure says want. */
static void launch_fails(struct world *w, struct instance_launch *l, const char *want)
{
    struct ready_result *rr = l->ready_data;
    struct ph_error err = {0};
    CHECK(instance_launch(w->reg, l, &err) != NULL);
    SPIN_UNTIL(w, rr->calls == 1 && instances_first(w->reg) == NULL);
    CHECK(rr->r < 0);
    CHECK(strstr(rr->message, want) != NULL);
}

static struct instance *launch(struct world *w, struct instance_kind *kind, int tag,
                               struct ready_result *rr, struct ph_error *err)
{
    return launch_id(w, kind, NULL, tag, rr, err);
}

/* ---- tests ---- */

static void test_create_ready_delete(void)
{
    struct world w;
    struct ready_result rr = {0};
    struct ph_error err = {0};
    int deleted = 0;

    world_init(&w, "lifecycle.db");
    struct instance *in = launch(&w, &kind_a, 7, &rr, &err);
    CHECK(in != NULL);
    if (!in) {
        world_done(&w);
        return;
    }
    CHECK(strncmp(in->id, "ta-", 3) == 0);
    CHECK(in->status == INSTANCE_STARTING);
    CHECK(instance_find(w.reg, &kind_a, in->id) == in);
    CHECK(instance_find(w.reg, &kind_b, in->id) == NULL);
    CHECK(records(&w) == 1);
    SPIN_UNTIL(&w, rr.calls == 1);
    CHECK(rr.r == 0);
    CHECK(in->status == INSTANCE_READY);
    CHECK(in->vm != NULL && atomic_load(&vms_live) == 1);
    CHECK(in->ready_at > 0);
    CHECK(in->expires_at == in->ready_at + 5 * 60000);
    CHECK_COUNTS(&w.counter, 1, 1, 0, 0, 0);
    json_t *j = instance_to_json(in);
    CHECK_STR(json_string_value(json_object_get(j, "status")), "ready");
    CHECK(json_is_string(json_object_get(j, "ready_at")));
    json_decref(j);

    CHECK(instance_delete(in, on_deleted, &deleted) == 0);
    CHECK(instance_delete(in, on_deleted, &deleted) == 0); /* a second waiter, no second stop */
    CHECK(in->status == INSTANCE_STOPPING);
    /* Ending at once (proxies close first); destroy only once the stop
     * job is done, on the loop (stopping runs on a worker meanwhile). */
    CHECK(atomic_load(&w.counter.n[EV_ENDING]) == 1);
    CHECK(atomic_load(&w.counter.n[EV_DESTROY]) == 0);
    SPIN_UNTIL(&w, deleted == 2);
    CHECK(instances_first(w.reg) == NULL);
    CHECK_COUNTS(&w.counter, 1, 1, 1, 1, 1);
    CHECK(atomic_load(&w.counter.stopping_without_vm) == 0);
    CHECK(atomic_load(&vms_live) == 0);
    CHECK(atomic_load(&vms_stopped) == 1);
    CHECK(atomic_load(&data_live) == 0);
    CHECK(records(&w) == 0);
    world_done(&w);
    atomic_store(&vms_stopped, 0);
}

static void test_boot_failure(void)
{
    struct world w;
    struct ready_result rr = {0};

    world_init(&w, "bootfail.db");
    atomic_store(&boot_fails, true);
    struct instance_launch l = test_launch(1, &rr);
    launch_fails(&w, &l, "never printed READY a");
    /* It never had a guest to prepare or a VM to stop, but it ended once. */
    CHECK_COUNTS(&w.counter, 1, 0, 1, 1, 1);
    CHECK(atomic_load(&vms_live) == 0);
    CHECK(atomic_load(&data_live) == 0);
    CHECK(records(&w) == 0);
    atomic_store(&boot_fails, false);
    world_done(&w);
}

static void test_prepare_refused(void)
{
    struct world w;
    struct ready_result rr = {0};

    world_init(&w, "prepare.db");
    w.counter.refuse_prepare = true;
    struct instance_launch l = test_launch(1, &rr);
    launch_fails(&w, &l, "prepare refused");
    CHECK(atomic_load(&vms_stopped) == 1); /* the guest that booted was stopped */
    CHECK(atomic_load(&vms_live) == 0);
    CHECK_COUNTS(&w.counter, 1, 1, 1, 1, 1);
    world_done(&w);
    atomic_store(&vms_stopped, 0);
}

/* A pooled VM or a clone that refuses its settings is replaced by a cold
 * boot: the request gets a slower start, not an error. A snapshot's
 * state has no stand-in, and a cold VM that refuses them fails. */
static void test_prepare_fallback(void)
{
    struct world w;
    struct ph_error err = {0};
    int deleted = 0;

    world_init(&w, "fallback.db");
    atomic_store(&kind_prepares, 0);
    atomic_store(&kind_refuses_handed, PH_ERR_UNAVAILABLE);
    atomic_store(&boots_clone, true);

    /* A clone of the template. */
    struct ready_result rr = {0};
    struct instance *in = launch(&w, &kind_a, 1, &rr, &err);
    CHECK(in != NULL);
    SPIN_UNTIL(&w, rr.calls == 1);
    CHECK(rr.r == 0);
    CHECK(in->status == INSTANCE_READY);
    CHECK(in->booted_afresh);
    CHECK(in->vm && !in->vm->cloned);
    CHECK(atomic_load(&boots_cold) == 1);
    CHECK(atomic_load(&vms_stopped) == 1); /* the clone */
    CHECK(atomic_load(&discards) >= 1);    /* and its run dir */
    CHECK(atomic_load(&vms_live) == 1);
    /* The kind refused the clone, so the observers prepared the fresh VM only. */
    CHECK(atomic_load(&kind_prepares) == 2);
    CHECK_COUNTS(&w.counter, 1, 1, 0, 0, 0);
    CHECK(instance_delete(in, on_deleted, &deleted) == 0);
    SPIN_UNTIL(&w, deleted == 1);

    /* A pooled VM: the fresh boot keeps its id. */
    struct ready_result rr2 = {0};
    struct vm *pooled = fake_vm("vm-pool1");
    pooled->pooled = true;
    struct instance_launch l = test_launch(2, &rr2);
    l.pooled = pooled;
    atomic_store(&boots_clone, false);
    in = instance_launch(w.reg, &l, &err);
    CHECK(in != NULL);
    SPIN_UNTIL(&w, rr2.calls == 1);
    CHECK(rr2.r == 0);
    CHECK(in->booted_afresh);
    CHECK_STR(in->vm_id, "vm-pool1");
    CHECK(in->vm && !in->vm->pooled);
    CHECK_STR(in->vm->id, "vm-pool1");
    CHECK(atomic_load(&boots_cold) == 2);
    CHECK(atomic_load(&vms_live) == 1);
    deleted = 0;
    CHECK(instance_delete(in, on_deleted, &deleted) == 0);
    SPIN_UNTIL(&w, deleted == 1);

    /* A snapshot's clone is not replaced. */
    struct ready_result rr3 = {0};
    struct instance_launch ls = test_launch(3, &rr3);
    ls.from_dir = dir;
    ls.from_snapshot = "snap-test";
    launch_fails(&w, &ls, "the kind refuses");
    CHECK(atomic_load(&boots_cold) == 2);

    /* A request the kind turns down (a limit) is not retried cold. */
    atomic_store(&boots_clone, true);
    atomic_store(&kind_refuses_handed, PH_ERR_LIMIT);
    struct ready_result rr5 = {0};
    struct instance_launch l5 = test_launch(5, &rr5);
    launch_fails(&w, &l5, "the kind refuses");
    CHECK(atomic_load(&boots_cold) == 2);

    /* Nor is an observer's refusal: a fresh boot would meet it again. */
    atomic_store(&kind_refuses_handed, PH_ERR_NONE);
    w.counter.refuse_handed = true;
    struct ready_result rr6 = {0};
    struct instance_launch l6 = test_launch(6, &rr6);
    launch_fails(&w, &l6, "prepare refused");
    CHECK(atomic_load(&boots_cold) == 2);
    w.counter.refuse_handed = false;

    /* A cold boot that refuses them too fails, after two tries. */
    atomic_store(&kind_refuses_handed, PH_ERR_UNAVAILABLE);
    w.counter.refuse_prepare = true;
    atomic_store(&boots_clone, true);
    struct ready_result rr4 = {0};
    struct instance_launch l4 = test_launch(4, &rr4);
    launch_fails(&w, &l4, "prepare refused");
    CHECK(atomic_load(&boots_cold) == 3);
    CHECK(atomic_load(&vms_live) == 0);
    CHECK(atomic_load(&data_live) == 0);
    CHECK(records(&w) == 0);

    atomic_store(&kind_refuses_handed, PH_ERR_NONE);
    atomic_store(&boots_clone, false);
    atomic_store(&boots_cold, 0);
    atomic_store(&vms_stopped, 0);
    world_done(&w);
}

static void test_setup_refused_and_limit(void)
{
    struct world w;
    struct ready_result rr = {0};
    struct ph_error err = {0};

    world_init(&w, "setup.db");
    w.counter.refuse_setup = true;
    CHECK(launch(&w, &kind_a, 1, &rr, &err) == NULL);
    CHECK(strstr(err.message, "setup refused") != NULL);
    CHECK_COUNTS(&w.counter, 1, 0, 0, 1, 1);
    CHECK(atomic_load(&data_live) == 0);
    CHECK(records(&w) == 0);
    w.counter.refuse_setup = false;

    /* max_instances is 4: the fifth is refused with a limit error, and its
     * kind data is freed. */
    struct ready_result r4[4] = {0};
    CHECK(launch_id(&w, &kind_a, "chosen-1", 0, &r4[0], &err) != NULL);
    for (int i = 1; i < 4; i++)
        CHECK(launch(&w, i % 2 ? &kind_b : &kind_a, i, &r4[i], &err) != NULL);
    ph_error_clear(&err);
    CHECK(launch(&w, &kind_a, 9, &rr, &err) == NULL);
    CHECK(err.kind == PH_ERR_LIMIT);
    /* A taken id is a conflict even at the limit: waiting would not help. */
    ph_error_clear(&err);
    CHECK(launch_id(&w, &kind_b, "chosen-1", 9, &rr, &err) == NULL);
    CHECK(err.kind == PH_ERR_CONFLICT);
    CHECK(atomic_load(&data_live) == 4);
    SPIN_UNTIL(&w, r4[0].calls + r4[1].calls + r4[2].calls + r4[3].calls == 4);
    json_t *a = instances_list_json(w.reg, &kind_a), *b = instances_list_json(w.reg, &kind_b);
    CHECK(json_array_size(a) == 2 && json_array_size(b) == 2);
    json_decref(a);
    json_decref(b);
    world_done(&w); /* shutdown with four live instances of two kinds */
    CHECK_COUNTS(&w.counter, 5, 4, 4, 5, 5);
    CHECK(atomic_load(&w.counter.stopping_without_vm) == 4);
    CHECK(atomic_load(&vms_live) == 0);
    CHECK(atomic_load(&vms_stopped) == 0); /* their VMs keep running */
    CHECK(atomic_load(&data_live) == 0);
}

static void test_expiry_and_dead_vm(void)
{
    struct world w;
    struct ready_result rr1 = {0}, rr2 = {0};
    struct ph_error err = {0};

    world_init(&w, "expiry.db");
    struct instance *a = launch(&w, &kind_a, 1, &rr1, &err);
    struct instance *b = launch(&w, &kind_b, 2, &rr2, &err);
    SPIN_UNTIL(&w, rr1.calls == 1 && rr2.calls == 1);
    char b_id[40];
    snprintf(b_id, sizeof(b_id), "%s", b->id);

    /* Not yet expired: the sweep leaves both. */
    instances_sweep(w.reg);
    CHECK(!a->deleting && !b->deleting);
    a->expires_at = wall_ms() - 1;
    instances_sweep(w.reg);
    CHECK(a->deleting);
    SPIN_UNTIL(&w, instances_count(w.reg) == 1 && instance_find(w.reg, NULL, b_id));
    CHECK_COUNTS(&w.counter, 2, 2, 1, 1, 1);

    /* A QEMU that dies: error with the reason, kept until deleted. */
    atomic_store(&vm_dead, true);
    instances_sweep(w.reg);
    CHECK(b->status == INSTANCE_ERROR);
    CHECK(strstr(b->error, "QEMU exited unexpectedly") != NULL);
    CHECK(!b->deleting);
    atomic_store(&vm_dead, false);
    world_done(&w);
    CHECK_COUNTS(&w.counter, 2, 2, 2, 2, 2);
    CHECK(atomic_load(&vms_live) == 0);
    CHECK(atomic_load(&data_live) == 0);
    atomic_store(&vms_stopped, 0);
}

static void noop_job(void *data)
{
    (void)data;
}

static void release_job(void *data)
{
    instance_release(data);
}

static void test_delete_waits_for_jobs(void)
{
    struct world w;
    struct ready_result rr = {0};
    struct ph_error err = {0};
    int deleted = 0;

    world_init(&w, "hold.db");
    struct instance *in = launch(&w, &kind_a, 1, &rr, &err);
    SPIN_UNTIL(&w, rr.calls == 1);
    instance_hold(in);
    CHECK(instance_delete(in, on_deleted, &deleted) == 0);
    for (int i = 0; i < 50; i++) {
        work_pool_dispatch(w.work);
        usleep(1000);
    }
    CHECK(deleted == 0);
    CHECK(atomic_load(&vms_stopped) == 0); /* held: not stopped yet */
    CHECK(work_submit(w.work, noop_job, release_job, in) == 0);
    SPIN_UNTIL(&w, deleted == 1);
    CHECK(atomic_load(&vms_stopped) == 1);
    CHECK_COUNTS(&w.counter, 1, 1, 1, 1, 1);
    world_done(&w);
    atomic_store(&vms_stopped, 0);
}

static void test_restore(void)
{
    struct world w;
    struct ph_error err = {0};

    /* Records as an earlier gateway left them: a ready instance whose VM
     * still answers, one whose VM is gone, one that was still starting. */
    world_init(&w, "restore.db");
    json_t *ok =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:{}, s:i, "
                  "s:i, s:i, s:{s:i}}",
                  "id", "ta-aaaaaaaaaaaa", "vm_id", "ta-aaaaaaaaaaaa", "kind", "testa", "status",
                  "ready", "created_at", (json_int_t)1000, "ready_at", (json_int_t)2000,
                  "expires_at", (json_int_t)(wall_ms() + 600000), "vcpus", 1, "mem_mib", 256,
                  "disk_mib", 0, "timeout_minutes", 10, "env_vars", "ssh_port", 2222, "vnc_port",
                  -1, "cdp_port", -1, "extra", "tag", 42);
    json_t *lost = json_deep_copy(ok), *starting = json_deep_copy(ok);
    json_object_set_new(lost, "id", json_string("ta-bbbbbbbbbbbb"));
    json_object_set_new(lost, "vm_id", json_string("ta-bbbbbbbbbbbb"));
    json_object_set_new(lost, "ssh_port", json_integer(2999));
    json_object_set_new(starting, "id", json_string("ta-cccccccccccc"));
    json_object_set_new(starting, "status", json_string("starting"));
    CHECK(state_put(w.db, "ta-aaaaaaaaaaaa", "testa", ok) == 0);
    CHECK(state_put(w.db, "ta-bbbbbbbbbbbb", "testa", lost) == 0);
    CHECK(state_put(w.db, "ta-cccccccccccc", "testa", starting) == 0);
    json_decref(ok);
    json_decref(lost);
    json_decref(starting);

    instances_restore(w.reg);
    struct instance *a = instance_find(w.reg, &kind_a, "ta-aaaaaaaaaaaa");
    struct instance *b = instance_find(w.reg, &kind_a, "ta-bbbbbbbbbbbb");
    CHECK(a && b);
    SPIN_UNTIL(&w, a && b && a->status == INSTANCE_READY && b->status == INSTANCE_ERROR &&
                       !instance_find(w.reg, NULL, "ta-cccccccccccc"));
    if (a && b) {
        CHECK(((struct kind_data *)a->kind_data)->tag == 42);
        CHECK(a->ready_at == 2000 && a->timeout_minutes == 10);
        CHECK(a->vm != NULL);
        CHECK(strstr(b->error, "lost while the gateway was down") != NULL);
    }
    CHECK(records(&w) == 2); /* the starting one is finished off */
    CHECK(atomic_load(&discards) >= 1);
    /* Restored ones are set up again (policy hooks, listeners); the
     * finished-off one never was, but it ended and was destroyed once. */
    CHECK_COUNTS(&w.counter, 1, 0, 1, 1, 1);
    ph_error_clear(&err);
    world_done(&w);
    CHECK_COUNTS(&w.counter, 1, 0, 3, 3, 3);
    CHECK(atomic_load(&vms_live) == 0);
    CHECK(atomic_load(&data_live) == 0);
}

static void test_power_off_on(void)
{
    struct world w;
    struct ready_result rr = {0}, off = {0}, on = {0}, again = {0};
    struct ph_error err = {0};
    int deleted = 0;

    atomic_store(&discards, 0);
    atomic_store(&vms_stopped, 0);
    world_init(&w, "power.db");
    struct instance *in = launch(&w, &kind_a, 3, &rr, &err);
    CHECK(in != NULL);
    if (!in) {
        world_done(&w);
        return;
    }
    SPIN_UNTIL(&w, rr.calls == 1);
    CHECK(instance_power_on(in, on_ready, &again, &err) == 0); /* ready: done at once */
    CHECK(again.calls == 1 && again.r == 0);
    int64_t expires = in->expires_at;
    char id[40];
    snprintf(id, sizeof(id), "%s", in->id);

    /* A job holding the VM: no stop under it. */
    instance_hold(in);
    CHECK(instance_power_off(in, on_ready, &off, &err) < 0);
    CHECK(err.kind == PH_ERR_CONFLICT);
    ph_error_clear(&err);
    instance_release(in);

    CHECK(instance_power_off(in, on_ready, &off, &err) == 0);
    CHECK(in->status == INSTANCE_STOPPED && in->vm == NULL);
    SPIN_UNTIL(&w, off.calls == 1);
    CHECK(off.r == 0);
    CHECK(atomic_load(&vms_live) == 0 && atomic_load(&vms_stopped) == 1);
    CHECK(atomic_load(&discards) == 0); /* the disk stays */
    /* Not an ending: no observer hears of it, the record stays. */
    CHECK_COUNTS(&w.counter, 1, 1, 0, 0, 0);
    CHECK(records(&w) == 1);
    json_t *j = instance_to_json(in);
    CHECK_STR(json_string_value(json_object_get(j, "status")), "stopped");
    json_decref(j);
    CHECK(instance_power_off(in, on_ready, &off, &err) == 0 && off.calls == 2);

    CHECK(instance_power_on(in, on_ready, &on, &err) == 0);
    CHECK(in->status == INSTANCE_STARTING);
    SPIN_UNTIL(&w, on.calls == 1);
    CHECK(on.r == 0 && in->status == INSTANCE_READY && in->vm != NULL);
    CHECK(atomic_load(&boots_reusing) == 1);
    CHECK(in->expires_at == expires);        /* a start keeps the deadline */
    CHECK_COUNTS(&w.counter, 1, 2, 0, 0, 0); /* a new guest is prepared */

    /* Stopped across a gateway restart: kept, set up, not attached. */
    off = (struct ready_result){0};
    CHECK(instance_power_off(in, on_ready, &off, &err) == 0);
    SPIN_UNTIL(&w, off.calls == 1);
    world_done(&w);
    CHECK(atomic_load(&vms_live) == 0 && atomic_load(&discards) == 0);
    CHECK(atomic_load(&data_live) == 0);

    struct world w2;
    world_init(&w2, "power.db");
    instances_restore(w2.reg);
    in = instance_find(w2.reg, &kind_a, id);
    CHECK(in != NULL);
    if (in) {
        CHECK(in->status == INSTANCE_STOPPED && in->vm == NULL);
        CHECK(((struct kind_data *)in->kind_data)->tag == 3);
        CHECK_COUNTS(&w2.counter, 1, 0, 0, 0, 0);
        CHECK(atomic_load(&discards) == 0);

        /* A start that fails leaves it stopped, with the reason, disk kept. */
        atomic_store(&boot_fails, true);
        on = (struct ready_result){0};
        CHECK(instance_power_on(in, on_ready, &on, &err) == 0);
        SPIN_UNTIL(&w2, on.calls == 1);
        atomic_store(&boot_fails, false);
        CHECK(on.r < 0 && strstr(on.message, "never printed") != NULL);
        CHECK(in->status == INSTANCE_STOPPED && strstr(in->error, "start failed") != NULL);
        CHECK(atomic_load(&discards) == 0 && records(&w2) == 1);

        CHECK(instance_delete(in, on_deleted, &deleted) == 0);
        SPIN_UNTIL(&w2, deleted == 1);
        CHECK(atomic_load(&discards) == 1 && records(&w2) == 0);
        CHECK_COUNTS(&w2.counter, 1, 0, 1, 1, 1);
    }
    world_done(&w2);
    CHECK(atomic_load(&vms_live) == 0 && atomic_load(&data_live) == 0);
    atomic_store(&vms_stopped, 0);
    atomic_store(&discards, 0);
}

static void test_pause_resume(void)
{
    struct world w;
    struct ready_result rr = {0}, p = {0}, q = {0};
    struct ph_error err = {0};
    int deleted = 0;

    world_init(&w, "pause.db");
    struct instance *in = launch(&w, &kind_a, 4, &rr, &err);
    CHECK(in != NULL);
    if (!in) {
        world_done(&w);
        return;
    }
    SPIN_UNTIL(&w, rr.calls == 1);
    CHECK(instance_resume(in, on_ready, &q, &err) == 0 && q.calls == 1); /* running: at once */

    /* A job or terminal holding it: no pause under it. */
    instance_hold(in);
    CHECK(instance_pause(in, on_ready, &p, &err) < 0 && err.kind == PH_ERR_CONFLICT);
    ph_error_clear(&err);
    instance_release(in);

    /* A failed pause leaves it running. */
    atomic_store(&pause_fails, true);
    CHECK(instance_pause(in, on_ready, &p, &err) == 0);
    SPIN_UNTIL(&w, p.calls == 1);
    atomic_store(&pause_fails, false);
    CHECK(p.r < 0 && in->status == INSTANCE_READY);

    p = (struct ready_result){0};
    CHECK(instance_pause(in, on_ready, &p, &err) == 0);
    CHECK(in->status == INSTANCE_PAUSED); /* at once: no new command gets in */
    CHECK(instance_lookup(w.reg, &kind_a, in->id, true, &err) == NULL);
    CHECK(err.kind == PH_ERR_CONFLICT && strstr(err.message, "resume it first") != NULL);
    ph_error_clear(&err);
    SPIN_UNTIL(&w, p.calls == 1);
    CHECK(p.r == 0 && in->status == INSTANCE_PAUSED && in->vm && in->vm->paused);
    CHECK(instance_power_off(in, NULL, NULL, &err) < 0 && err.kind == PH_ERR_CONFLICT);
    ph_error_clear(&err);
    json_t *j = instance_to_json(in);
    CHECK_STR(json_string_value(json_object_get(j, "status")), "paused");
    json_decref(j);
    CHECK(instance_pause(in, on_ready, &p, &err) == 0 && p.calls == 2); /* paused: at once */

    /* A paused VM stays alive: the sweep does not take it for dead. */
    instances_sweep(w.reg);
    CHECK(in->status == INSTANCE_PAUSED);

    q = (struct ready_result){0};
    CHECK(instance_resume(in, on_ready, &q, &err) == 0);
    SPIN_UNTIL(&w, q.calls == 1);
    CHECK(q.r == 0 && in->status == INSTANCE_READY && !in->vm->paused);
    CHECK(instance_lookup(w.reg, &kind_a, in->id, true, &err) == in);

    /* Deleting a paused one stops its VM like any other. */
    p = (struct ready_result){0};
    CHECK(instance_pause(in, on_ready, &p, &err) == 0);
    SPIN_UNTIL(&w, p.calls == 1);
    CHECK(instance_delete(in, on_deleted, &deleted) == 0);
    SPIN_UNTIL(&w, deleted == 1);
    CHECK(records(&w) == 0);
    world_done(&w);
    CHECK(atomic_load(&vms_live) == 0 && atomic_load(&data_live) == 0);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_create_ready_delete();
    test_boot_failure();
    test_prepare_refused();
    test_prepare_fallback();
    test_setup_refused_and_limit();
    test_expiry_and_dead_vm();
    test_delete_waits_for_jobs();
    test_restore();
    test_power_off_on();
    test_pause_resume();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    CHECK_DONE();
}
