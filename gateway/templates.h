/* templates: builds, in the background, the template each kind's default
 * VM is cloned from (vm_template.h), and says how far it got.
 *
 * Usage (loop thread):
 *   templates_new(gw->instances, enabled, &t);
 *   templates_fill(t);     // at start and every tick: builds what is
 *                          // missing (the image changed, or none yet),
 *                          // one build at a time on a worker
 *   templates_status(t);   // for GET /v1/status
 *   templates_stop(t);     // shutdown begins: no new builds
 *   templates_free(t);     // once the work pool drained
 *
 * Until a kind's template is built, its VMs boot cold; once it is, every
 * VM with the default size is a clone (instance.c, vmctl_boot). A build
 * that fails is tried again after TEMPLATES_RETRY_S. */
#pragma once

#include <stdbool.h>

#include <jansson.h>

#include "vm.h"

struct instances;
struct templates;

#define TEMPLATES_RETRY_S 300

/* What the kind's default VM is: a sandbox with the API's default size, or
 * a browser with the pool's settings, live or headless. image and
 * egress_cmd are weak. */
void templates_default_spec(const struct instances *reg, enum vm_kind kind, bool headless,
                            const char *image, const char *egress_cmd, struct vm_spec *out);

int templates_new(struct instances *reg, bool enabled, struct templates **out);
void templates_fill(struct templates *t);
json_t *templates_status(const struct templates *t);
void templates_stop(struct templates *t);
void templates_free(struct templates *t);
