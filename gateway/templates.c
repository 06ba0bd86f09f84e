/* The templates of the kinds' default VMs, built in the background. See
 * templates.h. */
#include "templates.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libwebsockets.h>

#include "instance.h"
#include "params.h"
#include "pool.h"
#include "util.h"
#include "vm_template.h"
#include "work.h"

#define TEMPLATES_CHECK_MS 10000

struct template_slot {
    enum vm_kind kind;
    bool headless;
    const char *marker;
    char name[40];       /* the template it wants (empty: not known yet) */
    bool ready;          /* that template is built */
    int64_t retry_at_ms; /* after a failure: no build before this */
    char error[256];     /* the last failure, "" if none */
    int64_t built_ms;    /* how long the last build of ours took */
};

struct templates {
    struct instances *reg; /* weak */
    bool enabled, stopped;
    struct template_slot *building; /* the one a worker builds, or NULL */
    int64_t checked_ms;
    struct template_slot slots[3];
};

struct template_job {
    struct templates *t;
    struct template_slot *slot;
    struct ph_error err;
    int64_t took_ms;
    int r;
};

void templates_default_spec(const struct instances *reg, enum vm_kind kind, bool headless,
                            const char *image, const char *egress_cmd, struct vm_spec *out)
{
    bool browser = kind == VM_KIND_BROWSER;
    *out = (struct vm_spec){
        .kind = kind,
        .vcpus = browser ? POOL_VCPUS : SANDBOX_DEFAULT_VCPUS,
        .mem_mib = browser ? POOL_MEM_MIB : SANDBOX_DEFAULT_MEM_MIB,
        .extra_config = !browser   ? NULL
                        : headless ? POOL_CONFIG_HEADLESS
                                   : POOL_CONFIG,
        .template_variant = !browser   ? NULL
                            : headless ? "headless"
                                       : "live",
        .accel = instances_accel(reg),
        .image_dir = image,
        .screen_width = kind == VM_KIND_BROWSER ? POOL_WIDTH : 0,
        .screen_height = kind == VM_KIND_BROWSER ? POOL_HEIGHT : 0,
        .egress_cmd = egress_cmd,
    };
}

int templates_new(struct instances *reg, bool enabled, struct templates **out)
{
    struct templates *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->reg = reg;
    t->enabled = enabled;
    /* Sandboxes first: theirs is built in seconds. */
    t->slots[0] = (struct template_slot){.kind = VM_KIND_SANDBOX, .marker = "PORTHOLE_READY ssh"};
    /* Then the API's default session (headless), then live ones. */
    t->slots[1] = (struct template_slot){
        .kind = VM_KIND_BROWSER, .headless = true, .marker = BROWSER_READY_MARKER};
    t->slots[2] = (struct template_slot){.kind = VM_KIND_BROWSER, .marker = BROWSER_READY_MARKER};
    if (enabled)
        vm_template_sweep(instances_cache_dir(reg));
    *out = t;
    return 0;
}

/* The spec of a slot's template, with the strings it points to. */
struct slot_spec {
    struct vm_spec spec;
    char *image, *egress_cmd;
};

static int slot_spec(const struct templates *t, const struct template_slot *slot, const char *id,
                     struct slot_spec *out)
{
    memset(out, 0, sizeof(*out));
    out->image = vm_image_dir(instances_cache_dir(t->reg), vm_kind_flavour(slot->kind));
    out->egress_cmd = instances_egress_cmd(t->reg, id);
    if (!out->image || (instances_egress_enabled(t->reg) && !out->egress_cmd)) {
        free(out->image);
        free(out->egress_cmd);
        return -ENOMEM;
    }
    templates_default_spec(t->reg, slot->kind, slot->headless, out->image, out->egress_cmd,
                           &out->spec);
    return 0;
}

static void slot_spec_done(struct slot_spec *s)
{
    free(s->image);
    free(s->egress_cmd);
}

static void template_job_run(void *data)
{
    struct template_job *j = data;
    struct slot_spec s;
    /* The egress socket a template's guest would reach is nobody's: it has
     * no network while it is built, and its clones have their own. */
    if (slot_spec(j->t, j->slot, "template", &s) < 0) {
        j->r = ph_error_set(&j->err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        return;
    }
    int64_t t0 = now_ms();
    j->r = vm_template_build(instances_cache_dir(j->t->reg), &s.spec, j->slot->marker,
                             instances_boot_timeout_s(j->t->reg) * 1000, &j->err);
    j->took_ms = now_ms() - t0;
    slot_spec_done(&s);
    /* A new template may be the one an older image's gave way to. */
    if (j->r == 0)
        vm_template_sweep(instances_cache_dir(j->t->reg));
}

static void template_job_done(void *data)
{
    struct template_job *j = data;
    struct template_slot *slot = j->slot;

    j->t->building = NULL;
    j->t->checked_ms = 0; /* look again at once */
    if (j->r == 0) {
        slot->error[0] = '\0';
        slot->built_ms = j->took_ms;
        lwsl_user("templates: %s template %s built in %lld ms\n", vm_kind_flavour(slot->kind),
                  slot->name, (long long)j->took_ms);
    } else if (j->err.kind == PH_ERR_CONFLICT) {
        slot->retry_at_ms = now_ms() + 5000; /* another gateway builds it */
    } else {
        snprintf(slot->error, sizeof(slot->error), "%s", j->err.message);
        slot->retry_at_ms = now_ms() + TEMPLATES_RETRY_S * 1000;
        lwsl_err("templates: building the %s template failed (next try in %d s): %s\n",
                 vm_kind_flavour(slot->kind), TEMPLATES_RETRY_S, j->err.message);
    }
    free(j);
}

void templates_fill(struct templates *t)
{
    if (!t || !t->enabled || t->stopped || t->building)
        return;
    int64_t now = now_ms();
    if (t->checked_ms && now - t->checked_ms < TEMPLATES_CHECK_MS)
        return;
    t->checked_ms = now;
    for (size_t i = 0; i < ARRAY_SIZE(t->slots); i++) {
        struct template_slot *slot = &t->slots[i];
        struct slot_spec s;
        struct vm_template found;
        if (slot_spec(t, slot, "template", &s) < 0)
            return;
        bool present = vm_image_present(s.image);
        slot->ready = present && vm_template_find(instances_cache_dir(t->reg), &s.spec, &found);
        if (present)
            snprintf(slot->name, sizeof(slot->name), "%s", found.name);
        slot_spec_done(&s);
        if (!present || slot->ready || now < slot->retry_at_ms)
            continue;
        struct template_job *j = calloc(1, sizeof(*j));
        if (!j)
            return;
        j->t = t;
        j->slot = slot;
        if (work_submit(instances_work(t->reg), template_job_run, template_job_done, j) < 0) {
            free(j);
            return;
        }
        t->building = slot;
        lwsl_user("templates: building the %s template %s\n", vm_kind_flavour(slot->kind),
                  slot->name);
        return;
    }
}

json_t *templates_status(const struct templates *t)
{
    json_t *list = json_array();
    for (size_t i = 0; t && list && i < ARRAY_SIZE(t->slots); i++) {
        const struct template_slot *slot = &t->slots[i];
        const char *state = !t->enabled           ? "disabled"
                            : slot->ready         ? "ready"
                            : t->building == slot ? "building"
                            : slot->error[0]      ? "failed"
                                                  : "missing";
        json_t *o = json_pack("{s:s, s:s, s:s, s:s?}", "kind",
                              slot->kind == VM_KIND_BROWSER ? "browser" : "sandbox", "name",
                              slot->name, "state", state, "mode",
                              slot->kind != VM_KIND_BROWSER ? NULL
                              : slot->headless              ? "headless"
                                                            : "live");
        if (o && slot->error[0])
            json_object_set_new(o, "error", json_string(slot->error));
        if (o && slot->built_ms)
            json_object_set_new(o, "build_ms", json_integer(slot->built_ms));
        /* What its clones share: the pages of its memory file in use. */
        struct stat st;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/templates/%s/" VM_TEMPLATE_MEMORY,
                 instances_cache_dir(t->reg), slot->name);
        if (o && slot->ready && stat(path, &st) == 0)
            json_object_set_new(o, "memory_mib", json_integer((json_int_t)st.st_blocks / 2048));
        json_array_append_new(list, o);
    }
    return list;
}

void templates_stop(struct templates *t)
{
    if (!t)
        return;
    t->stopped = true;
    /* A build would hold the drain of the work pool for as long as a boot
     * takes: its QEMU goes, and the build fails at once. */
    if (t->building && t->building->name[0]) {
        _cleanup_free_ char *root = NULL;
        if (asprintf(&root, "%s/templates", instances_cache_dir(t->reg)) >= 0)
            vm_kill_orphan(root, t->building->name);
    }
}

void templates_free(struct templates *t)
{
    free(t);
}
