/* snapshots: a sandbox's or a browser session's memory, disk and devices at
 * one instant, which new instances start from (vm_snapshot; the restore is
 * a clone with an identity of its own, as for templates).
 *
 * API (sandboxes):
 *   POST   /v1/sandboxes/{id}/snapshot   -> 201 {snapshot_id, source, ...}
 *   POST   /v1/sandboxes {"from_snapshot": ID, ...}   (sandbox.c)
 *   GET    /v1/snapshots, GET /v1/snapshots/{id}
 *   DELETE /v1/snapshots/{id}             409 while an instance's or another
 *                                         snapshot's disk is on it
 * A fork (browser.c) takes an internal snapshot, which goes by itself once
 * no instance uses it (snapshots_sweep).
 *
 * A snapshot is STATE/snapshots/ID (memory.state, disk.qcow2, keys, info)
 * and a record of kind "snapshot". Instances started from it keep an
 * overlay on its disk: it stays until the last of them is deleted. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "vm_template.h"

struct gateway;
struct instance;
struct instance_kind;
struct snapshots;

int snapshots_new(struct gateway *gw, struct snapshots **out);
void snapshots_free(struct snapshots *s);
/* Every tick: removes internal snapshots nothing uses any more. */
void snapshots_sweep(struct snapshots *s);

/* Snapshot id of kind: its dir and info, and (image may be NULL) the
 * custom image its source ran ("" for the kind's own). PH_ERR_NOT_FOUND
 * when there is none (or it is another kind's). */
int snapshots_lookup(struct snapshots *s, const char *id, const struct instance_kind *kind,
                     struct vm_template *info, char *image, size_t image_len, struct ph_error *err);

/* Takes a snapshot of a ready instance on a worker; done gets its id (r <
 * 0: err). internal: a fork's, swept once unused. */
typedef void (*snapshot_done_fn)(struct instance *in, const char *snap_id, int r,
                                 const struct ph_error *err, void *data);
int snapshots_take(struct snapshots *s, struct instance *in, bool internal, snapshot_done_fn done,
                   void *data, struct ph_error *err);
