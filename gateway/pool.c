/* The pool of pre-booted browser VMs. See pool.h. */
#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "instance.h"
#include "state.h"
#include "templates.h"
#include "util.h"

#define POOL_RECORD_KIND "pool"

struct pool_vm {
    struct vm *vm;        /* owned */
    struct pool_vm *next; /* owned */
};

struct pool {
    struct instances *reg; /* weak */
    int target;
    int booting;
    bool stopped;        /* shutdown: no more boots */
    struct pool_vm *vms; /* owned list, ready */
};

struct pool_job {
    struct pool *pool;
    char id[40];
    struct vm *vm;
    struct ph_error err;
    int r;
};

int pool_new(struct instances *reg, int target, struct pool **out)
{
    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->reg = reg;
    p->target = target;
    *out = p;
    return 0;
}

static void pool_record(struct pool *p, const char *id, const struct vm *vm)
{
    json_t *rec = json_pack("{s:s, s:s, s:s}", "id", id, "kind", POOL_RECORD_KIND, "status",
                            vm ? "ready" : "booting");
    if (rec && state_put(instances_db(p->reg), id, POOL_RECORD_KIND, rec) < 0)
        lwsl_err("pool: cannot save %s\n", id);
    json_decref(rec);
}

static void pool_discard(struct pool *p, const char *id)
{
    instance_vmctl_ops.discard(p->reg, id);
    state_delete(instances_db(p->reg), id);
}

void pool_restore(struct pool *p)
{
    json_t *all = NULL, *rec;
    size_t i;

    if (state_list(instances_db(p->reg), POOL_RECORD_KIND, &all) < 0)
        return;
    /* Pre-booted VMs of an earlier run are not worth re-attaching (the
     * pool refills): end whatever is left of them, booted or not. */
    json_array_foreach(all, i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "id"));
        if (id)
            pool_discard(p, id);
    }
    json_decref(all);
}

static void pool_job_run(void *data)
{
    struct pool_job *j = data;
    struct instances *reg = j->pool->reg;
    _cleanup_free_ char *image = vm_image_dir(instances_cache_dir(reg), "browser");
    _cleanup_free_ char *egress_cmd = instances_egress_cmd(reg, j->id);
    struct vm_spec spec;
    templates_default_spec(reg, VM_KIND_BROWSER, false, image, egress_cmd, &spec);
    if (!image || (!egress_cmd && instances_egress_enabled(reg))) {
        j->r = ph_error_set(&j->err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        return;
    }
    j->r = instances_boot_vm(reg, j->id, &spec, BROWSER_READY_MARKER, &j->vm, &j->err);
    if (j->r == 0)
        j->vm->pooled = true;
}

static void pool_job_done(void *data)
{
    struct pool_job *j = data;
    struct pool *p = j->pool;
    struct pool_vm *pv = NULL;

    p->booting--;
    if (j->r == 0 && (pv = calloc(1, sizeof(*pv)))) {
        pv->vm = TAKE_PTR(j->vm);
        pv->next = p->vms;
        p->vms = pv;
        pool_record(p, pv->vm->id, pv->vm);
        lwsl_user("pool: browser VM %s ready\n", pv->vm->id);
    } else {
        if (j->r < 0)
            lwsl_err("pool: browser VM failed to boot: %s\n", j->err.message);
        if (j->vm) {
            vm_stop(j->vm, 1000, NULL); /* out of memory only: rare enough to block */
            vm_free(TAKE_PTR(j->vm));
        }
        pool_discard(p, j->id);
    }
    free(j);
}

int pool_ready_count(const struct pool *p)
{
    int n = 0;
    for (const struct pool_vm *pv = p->vms; pv; pv = pv->next)
        n++;
    return n;
}

void pool_fill(struct pool *p)
{
    _cleanup_free_ char *image = NULL;

    /* Drop pool VMs whose QEMU died. */
    for (struct pool_vm **pp = &p->vms; *pp;) {
        struct pool_vm *pv = *pp;
        if (vm_alive(pv->vm)) {
            pp = &pv->next;
            continue;
        }
        lwsl_warn("pool: VM %s died\n", pv->vm->id);
        *pp = pv->next;
        pool_discard(p, pv->vm->id);
        vm_free(pv->vm);
        free(pv);
    }
    /* One boot at a time: a pool refill must not starve running sessions
     * of the machine's few cores. */
    if (p->stopped || p->booting > 0 || pool_ready_count(p) >= p->target)
        return;
    image = vm_image_dir(instances_cache_dir(p->reg), "browser");
    if (!image || !vm_image_present(image))
        return;
    struct pool_job *j = calloc(1, sizeof(*j));
    if (!j || random_id(j->id, sizeof(j->id), "vm-", 6) < 0) {
        free(j);
        return;
    }
    j->pool = p;
    pool_record(p, j->id, NULL);
    if (work_submit(instances_work(p->reg), pool_job_run, pool_job_done, j) < 0) {
        state_delete(instances_db(p->reg), j->id);
        free(j);
        return;
    }
    p->booting++;
}

struct vm *pool_take(struct pool *p)
{
    struct pool_vm *pv = p->vms;
    struct vm *vm;
    if (!pv)
        return NULL;
    p->vms = pv->next;
    vm = pv->vm;
    free(pv);
    state_delete(instances_db(p->reg), vm->id);
    return vm;
}

void pool_stop_filling(struct pool *p)
{
    if (p)
        p->stopped = true;
}

void pool_free(struct pool *p)
{
    struct vm *vm;

    if (!p)
        return;
    /* They are not worth re-attaching: a new gateway boots its own. */
    while ((vm = pool_take(p))) {
        vm_stop(vm, 2000, NULL);
        vm_remove_run_dir(instances_state_dir(p->reg), vm->id);
        vm_free(vm);
    }
    free(p);
}
