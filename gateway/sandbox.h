/* Command sandboxes: a trivial instance kind (a guest with sshd and
 * nothing else) and the /v1/sandboxes API over it: create, list, show,
 * delete, exec through the run/callback core, files in and out, env vars.
 *
 * Usage (loop thread): sandboxes_new(gw, &gw->sandboxes) once the HTTP
 * server and gw->instances exist; sandboxes_free() at shutdown, after
 * instances_free(). */
#pragma once

struct gateway;
struct instance_kind;
struct sandboxes;

int sandboxes_new(struct gateway *gw, struct sandboxes **out);
void sandboxes_free(struct sandboxes *s);
/* The sandbox kind, for modules that serve sandboxes (the shell). */
const struct instance_kind *sandboxes_kind(const struct sandboxes *s);
