/* Deleting several objects (ID... or --all) as one command with one result. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cli.h"

struct batch_spec {
    const char *list_path;   /* "/v1/sandboxes", for --all */
    const char *list_key;    /* "sandboxes" */
    const char *id_key;      /* "id" */
    const char *item_prefix; /* "/v1/sandboxes/" */
    const char *done_key;    /* "deleted": the data key and the verb in messages */
    const char *progress;    /* "Deleting": spinner label on a terminal */
    const char *noun;        /* "sandbox": names the IDs in usage errors */
};

/* DELETEs each id (or every listed object that is not already gone), then
 * emits {done_key: [ids], "failed": [{id, code, message}]}. Returns the exit
 * code: 0 when all succeeded, else 1 with the first failure's code. */
int batch_delete(struct cli_ctx *c, const struct batch_spec *spec, char **ids, size_t n_ids,
                 bool all);
/* A whole "delete ID... | --all" command: parses its arguments (usage
 * errors exit 2), then batch_delete. c->command and c->usage are set. */
int batch_delete_command(struct cli_ctx *c, const struct batch_spec *spec, int argc, char **argv);
