/* pool: browser VMs booted ahead of demand with the default session
 * settings, so that a session start is a hand-over instead of a boot.
 *
 * Usage (loop thread):
 *   pool_new(gw->instances, target, &pool);   // target 0: no pool
 *   pool_restore(pool);     // at start: ends the pool VMs of an earlier run
 *   pool_fill(pool);        // at start and every tick: one boot at a time
 *   vm = pool_take(pool);   // a ready VM for a session, or NULL
 *   pool_free(pool);        // at shutdown, after the work pool drained:
 *                           // stops the VMs still in the pool
 *
 * A pooled VM has a record of kind "pool" from the moment its boot is
 * queued, so a gateway killed while one boots finds and ends it at its
 * next start. */
#pragma once

#include <stdbool.h>

struct instances;
struct pool;
struct vm;

/* What a pooled VM is booted with: a session asking for anything else
 * reconfigures the browser of the VM it takes. */
#define POOL_MEM_MIB 2048
#define POOL_VCPUS 2
#define POOL_WIDTH 1280
#define POOL_HEIGHT 720
#define POOL_CONFIG                                                                                \
    "browser.mode=live\nbrowser.width=1280\nbrowser.height=720\nbrowser.downloads=1\n"
/* The headless template's (templates.c): the pool's, without a screen. */
#define POOL_CONFIG_HEADLESS                                                                       \
    "browser.mode=headless\nbrowser.width=1280\nbrowser.height=720\nbrowser.downloads=1\n"
#define BROWSER_READY_MARKER "PORTHOLE_READY browser"

int pool_new(struct instances *reg, int target, struct pool **out);
void pool_free(struct pool *p);
void pool_restore(struct pool *p);
void pool_fill(struct pool *p);
/* Stops refilling (shutdown begins). */
void pool_stop_filling(struct pool *p);
struct vm *pool_take(struct pool *p);
int pool_ready_count(const struct pool *p);
