/* Templates: a VM booted once to ready, stopped and saved, that new VMs
 * are cloned from instead of booting (Kata Containers' VM templating).
 *
 * A template is CACHE/templates/NAME, shared by every gateway of the
 * machine as the images are:
 *   memory.ram     the guest's RAM: the template VM ran with this file
 *                  mapped shared; clones map it private (copy on write), so
 *                  every page a clone has not written is one page of the
 *                  host's page cache for all of them
 *   device.state   QEMU's device state, saved with x-ignore-shared (the RAM
 *                  is left out: the file above holds it)
 *   disk.qcow2     its disk, an overlay on the image; read-only from then
 *                  on, the backing file of every clone's overlay
 *   client_key, host_key(.pub)   the template's SSH keys (vm_restore_clone)
 *   template.json  what it was built from; written last, so a dir without
 *                  it is not a template
 *
 * NAME is FLAVOUR-HASH, the hash taken over everything a clone must share
 * with its template: the resolved image dir (a rebuilt image gets a new
 * template), the vCPUs, the RAM size, the accelerator, whether the guest
 * has the egress address, spec.template_variant, the QEMU binary (its size
 * and mtime: an upgraded QEMU may not load an older one's device state)
 * and VM_TEMPLATE_RECIPE. What a session or sandbox
 * sets on top (env vars, the browser's settings) is applied to the clone.
 *
 * Usage (worker threads: everything here blocks):
 *   vm_template_build(cache, &spec, marker, timeout_ms, &err)   boot, save, publish
 *   if (vm_template_find(cache, &spec, &t)) { spec.template_dir = t.dir; ... }
 *   vm_new(...), vm_start(...), vm_restore_clone(...)
 *   vm_template_sweep(cache)   templates whose image is gone, dead builds
 */
#pragma once

#include <limits.h>
#include <stdbool.h>

#include "error.h"

struct vm_spec;

/* Bumped whenever what a template holds changes (how it is booted, warmed
 * or saved): every template is built again. */
#define VM_TEMPLATE_RECIPE "1"
#define VM_TEMPLATE_MEMORY "memory.ram"
#define VM_TEMPLATE_DEVICE_STATE "device.state"

struct vm_template {
    char dir[PATH_MAX];
    char name[40];
    int screen_width, screen_height; /* what its screen was built with */
    int vcpus, mem_mib;              /* what a clone must have */
};

/* The template or snapshot in dir (its info file read): 0, or -ENOENT. */
int vm_template_open(const char *dir, struct vm_template *out);
/* Its info file, written last when a template or snapshot is complete:
 * spec's sizes and screen, and the image it came from (for the sweep). */
int vm_template_write_info(const char *dir, const struct vm_spec *spec, const char *image);

/* The template spec would be cloned from: its name, and whether it is
 * built (dir filled). A spec that cannot be cloned (its own disk size, a
 * restart from its run dir) has none: false with name empty. */
bool vm_template_find(const char *cache_dir, const struct vm_spec *spec, struct vm_template *out);

/* Boots spec (spec.template_build is set here) to marker, saves it and
 * publishes it as the template of that spec. 0 when it is built (by this
 * call or an earlier one); PH_ERR_CONFLICT while another process builds it. */
int vm_template_build(const char *cache_dir, const struct vm_spec *spec, const char *marker,
                      int timeout_ms, struct ph_error *err);

/* Removes templates whose image is gone and builds that nobody runs any
 * more (a builder killed midway). */
void vm_template_sweep(const char *cache_dir);
