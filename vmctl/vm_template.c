/* Templates: where they live, what names them, how one is built. See
 * vm_template.h. */
#include "vm_template.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "util.h"
#include "vm.h"

#define TEMPLATE_INFO "template.json"

static char *templates_root(const char *cache_dir)
{
    char *p = NULL;
    if (asprintf(&p, "%s/templates", cache_dir) < 0)
        return NULL;
    return p;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static bool spec_clonable(const struct vm_spec *spec)
{
    return spec->disk_mib == 0 && !spec->reuse_run_dir && !spec->incoming_state &&
           !spec->template_build && !spec->template_dir;
}

/* Which QEMU runs VMs (as qemu_build_argv picks it): its size and mtime,
 * so that an upgraded QEMU, whose device state may not load, gets new
 * templates. "" when it is not found. */
static void qemu_identity(char *out, size_t len)
{
    const char *bin = getenv("PORTHOLE_QEMU");
    char path[PATH_MAX] = "";
    struct stat st;

    out[0] = '\0';
    if (bin && *bin) {
        snprintf(path, sizeof(path), "%s", bin);
    } else {
        const char *p = getenv("PATH");
        for (const char *dir = p ? p : "/usr/bin"; dir && *dir;) {
            const char *colon = strchr(dir, ':');
            size_t n = colon ? (size_t)(colon - dir) : strlen(dir);
            snprintf(path, sizeof(path), "%.*s/qemu-system-x86_64", (int)n, dir);
            if (access(path, X_OK) == 0)
                break;
            path[0] = '\0';
            dir = colon ? colon + 1 : NULL;
        }
    }
    if (path[0] && stat(path, &st) == 0)
        snprintf(out, len, "%lld:%lld", (long long)st.st_size, (long long)st.st_mtime);
}

/* The template's name for spec, and the image it resolves to. */
static int template_name(const struct vm_spec *spec, char *name, size_t len, char *image,
                         size_t image_len)
{
    char real[PATH_MAX], key[PATH_MAX + 512], qemu[64];
    if (!realpath(spec->image_dir, real))
        return -errno;
    qemu_identity(qemu, sizeof(qemu));
    snprintf(key, sizeof(key),
             "recipe=%s image=%s vcpus=%d mem=%d accel=%d egress=%d variant=%s qemu=%s",
             VM_TEMPLATE_RECIPE, real, spec->vcpus, spec->mem_mib, (int)spec->accel,
             spec->egress_cmd != NULL, spec->template_variant ? spec->template_variant : "", qemu);
    snprintf(name, len, "%s-%016llx", vm_kind_flavour(spec->kind), (unsigned long long)fnv1a(key));
    snprintf(image, image_len, "%s", real);
    return 0;
}

bool vm_template_find(const char *cache_dir, const struct vm_spec *spec, struct vm_template *out)
{
    char image[PATH_MAX];
    _cleanup_free_ char *root = templates_root(cache_dir);

    memset(out, 0, sizeof(*out));
    if (!root || !spec_clonable(spec) ||
        template_name(spec, out->name, sizeof(out->name), image, sizeof(image)) < 0)
        return false;
    snprintf(out->dir, sizeof(out->dir), "%s/%s", root, out->name);
    return vm_template_open(out->dir, out) == 0;
}

int vm_template_open(const char *dir, struct vm_template *out)
{
    char info[PATH_MAX];
    const char *slash = strrchr(dir, '/');

    snprintf(info, sizeof(info), "%s/" TEMPLATE_INFO, dir);
    json_t *j = json_load_file(info, 0, NULL);
    if (!j)
        return -ENOENT;
    if (out->dir != dir)
        snprintf(out->dir, sizeof(out->dir), "%s", dir);
    snprintf(out->name, sizeof(out->name), "%s", slash ? slash + 1 : dir);
    out->screen_width = (int)json_integer_value(json_object_get(j, "screen_width"));
    out->screen_height = (int)json_integer_value(json_object_get(j, "screen_height"));
    out->vcpus = (int)json_integer_value(json_object_get(j, "vcpus"));
    out->mem_mib = (int)json_integer_value(json_object_get(j, "mem_mib"));
    json_decref(j);
    return 0;
}

/* An exclusive lock on root/NAME.lock without waiting: the fd, or -EAGAIN
 * while somebody else holds it. */
static int lock_name(const char *root, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s.lock", root, name);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno == EWOULDBLOCK ? -EAGAIN : -errno;
        close(fd);
        return e;
    }
    return fd;
}

int vm_template_write_info(const char *dir, const struct vm_spec *spec, const char *image)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" TEMPLATE_INFO, dir);
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:s, s:I}", "recipe",
                          VM_TEMPLATE_RECIPE, "flavour", vm_kind_flavour(spec->kind), "image",
                          image, "vcpus", spec->vcpus, "mem_mib", spec->mem_mib, "screen_width",
                          spec->screen_width, "screen_height", spec->screen_height, "accel",
                          accel_name(spec->accel), "built_at", (json_int_t)wall_ms());
    char *text = j ? json_dumps(j, JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!text)
        return -ENOMEM;
    int r = write_file_atomic(path, text, strlen(text), 0600);
    free(text);
    return r;
}

int vm_template_build(const char *cache_dir, const struct vm_spec *spec, const char *marker,
                      int timeout_ms, struct ph_error *err)
{
    struct vm_template t;
    char image[PATH_MAX];
    _cleanup_free_ char *root = templates_root(cache_dir);
    struct vm_spec with = *spec;
    struct vm *vm = NULL;
    int lock = -1, r;

    if (!root)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if (vm_template_find(cache_dir, spec, &t))
        return 0;
    if (!t.name[0] || template_name(spec, t.name, sizeof(t.name), image, sizeof(image)) < 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "this VM spec has no template");
    if ((r = mkdir_p(root, 0700)) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, r, "cannot create %s: %s", root, strerror(-r));
    if ((lock = lock_name(root, t.name)) < 0)
        return ph_error_set(err, lock == -EAGAIN ? PH_ERR_CONFLICT : PH_ERR_INTERNAL, lock,
                            "template %s: %s", t.name,
                            lock == -EAGAIN ? "another process is building it" : strerror(-lock));
    /* It may have been finished while we waited for nothing. */
    if (vm_template_find(cache_dir, spec, &t))
        goto done;
    /* What a builder killed midway left; a template whose info is there
     * but cannot be read now is left alone (its clones' disks are on it). */
    char info[PATH_MAX];
    snprintf(info, sizeof(info), "%s/template.json", t.dir);
    if (access(info, F_OK) == 0 || errno != ENOENT) {
        r = ph_error_set(err, PH_ERR_UNAVAILABLE, -EIO, "template %s is there but unreadable",
                         t.dir);
        goto out;
    }
    vm_kill_orphan(root, t.name);
    vm_remove_run_dir(root, t.name);
    rm_rf(t.dir);

    with.template_build = true;
    if ((r = vm_new(root, t.name, &with, &vm, err)) < 0)
        goto out;
    if ((r = vm_start(vm, &with, err)) < 0 ||
        (r = vm_wait_ready(vm, marker, timeout_ms, err)) < 0 || (r = vm_save_template(vm, err)) < 0)
        goto fail;
    if ((r = vm_template_write_info(vm->run_dir, &with, image)) < 0) {
        ph_error_set(err, PH_ERR_INTERNAL, r, "cannot write the template's info: %s", strerror(-r));
        goto fail;
    }
    if (rename(vm->run_dir, t.dir) < 0) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -errno, "cannot publish %s: %s", t.dir,
                         strerror(errno));
        goto fail;
    }
    vm_free(vm);
    goto done;
fail:
    vm_stop(vm, 1000, NULL);
    vm_free(vm);
    vm_remove_run_dir(root, t.name);
    goto out;
done:
    r = 0;
out:
    close(lock);
    return r;
}

void vm_template_sweep(const char *cache_dir)
{
    _cleanup_free_ char *root = templates_root(cache_dir), *vms = NULL;
    struct dirent *e;
    DIR *d;

    if (!root || asprintf(&vms, "%s/vms", root) < 0)
        return;
    /* A build dir whose lock nobody holds: its builder is gone. */
    if ((d = opendir(vms))) {
        while ((e = readdir(d))) {
            if (!vm_id_valid(e->d_name))
                continue;
            int lock = lock_name(root, e->d_name);
            if (lock < 0)
                continue;
            vm_kill_orphan(root, e->d_name);
            vm_remove_run_dir(root, e->d_name);
            close(lock);
        }
        closedir(d);
    }
    /* A template of an image that is gone: nothing can clone it (and no
     * VM can have been left on it, as the image went only once unused). */
    if (!(d = opendir(root)))
        return;
    while ((e = readdir(d))) {
        char dir[PATH_MAX], info[PATH_MAX];
        if (!vm_id_valid(e->d_name) || strcmp(e->d_name, "vms") == 0)
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", root, e->d_name);
        snprintf(info, sizeof(info), "%s/" TEMPLATE_INFO, dir);
        json_t *j = json_load_file(info, 0, NULL);
        const char *image = json_string_value(json_object_get(j, "image"));
        bool gone = j && image && access(image, F_OK) < 0 && errno == ENOENT;
        json_decref(j);
        if (!gone)
            continue;
        int lock = lock_name(root, e->d_name);
        if (lock < 0)
            continue;
        rm_rf(dir);
        snprintf(info, sizeof(info), "%s/%s.lock", root, e->d_name);
        unlink(info);
        close(lock);
    }
    closedir(d);
}
