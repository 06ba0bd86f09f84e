/* One command, several DELETEs: every id is tried even after a failure, and
 * the result says which went and which did not. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "util.h"

#define BATCH_MAX_ITEMS 4096

static int delete_one(struct api *api, const struct batch_spec *spec, const char *id,
                      struct cli_error *err)
{
    _cleanup_free_ char *path = api_path(spec->item_prefix, id, NULL), *label = NULL;

    if (!path || asprintf(&label, "%s %.64s", spec->progress, id) < 0)
        return cli_error_set(err, 1, "internal", NULL, -ENOMEM, "out of memory");
    /* Stopping a VM includes a graceful shutdown and, for a browser, the
     * recording's finalization. */
    return api_call(api, "DELETE", path, NULL, API_TIMEOUT_LONG_MS, label, NULL, err);
}

/* Ids of every listed object not already gone. */
static int list_ids(struct api *api, const struct batch_spec *spec, json_t **ids,
                    struct cli_error *err)
{
    json_auto_t *list = NULL;
    json_t *arr, *item;
    size_t i;
    int r;

    r = api_call(api, "GET", spec->list_path, NULL, API_TIMEOUT_SHORT_MS, NULL, &list, err);
    if (r < 0)
        return r;
    arr = json_object_get(list, spec->list_key);
    if (!json_is_array(arr))
        return cli_error_set(err, 1, "bad_response", NULL, -EPROTO,
                             "the gateway's list has no \"%s\" array", spec->list_key);
    *ids = json_array();
    json_array_foreach(arr, i, item)
    {
        const char *id = json_str(item, spec->id_key), *status = json_str(item, "status");
        if (!id || (status && (strcmp(status, "stopped") == 0 || strcmp(status, "deleted") == 0)))
            continue;
        json_array_append_new(*ids, json_string(id));
    }
    return 0;
}

int batch_delete(struct cli_ctx *c, const struct batch_spec *spec, char **ids, size_t n_ids,
                 bool all)
{
    struct api api;
    struct cli_error err, first = {0};
    json_auto_t *todo = NULL;
    json_t *done = json_array(), *failed = json_array(), *data, *v;
    size_t i, n_failed = 0;
    int r;

    r = api_open(c, &api, &err);
    if (r < 0) {
        json_decref(done);
        json_decref(failed);
        return cli_fail(c, &err);
    }
    if (all) {
        r = list_ids(&api, spec, &todo, &err);
        if (r < 0) {
            api_done(&api);
            json_decref(done);
            json_decref(failed);
            return cli_fail(c, &err);
        }
    } else {
        todo = json_array();
        for (i = 0; i < n_ids && i < BATCH_MAX_ITEMS; i++)
            json_array_append_new(todo, json_string(ids[i]));
    }
    json_array_foreach(todo, i, v)
    {
        const char *id = json_string_value(v);
        r = delete_one(&api, spec, id, &err);
        /* With --all, an object that vanished meanwhile is as good as deleted. */
        if (r < 0 && !(all && strcmp(err.code, "not_found") == 0)) {
            json_array_append_new(failed, json_pack("{s:s, s:s, s:s}", "id", id, "code", err.code,
                                                    "message", err.message));
            if (n_failed++ == 0)
                first = err;
            continue;
        }
        json_array_append_new(done, json_string(id));
        if (!c->json) {
            printf("%s\n", id);
            fflush(stdout);
        }
    }
    api_done(&api);
    data = json_object();
    json_object_set_new(data, spec->done_key, done);
    json_object_set_new(data, "failed", failed);
    if (n_failed == 0)
        return cli_ok(c, data);
    {
        char msg[sizeof(first.message)];
        const char *id = json_string_value(json_object_get(json_array_get(failed, 0), "id"));

        if (json_array_size(todo) > 1)
            snprintf(msg, sizeof(msg), "%zu of %zu not %s; first: %.128s: %.700s", n_failed,
                     json_array_size(todo), spec->done_key, id, first.message);
        else
            snprintf(msg, sizeof(msg), "%.128s: %.700s", id, first.message);
        memcpy(first.message, msg, sizeof(msg));
    }
    return cli_emit(c, CLI_EXIT_FAIL, data, &first);
}

int batch_delete_command(struct cli_ctx *c, const struct batch_spec *spec, int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, NULL, 'a'},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    bool all = false;
    int opt, code;

    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == 'a')
            all = true;
        else if (!cli_common_option(c, opt, argc, argv, &code))
            return code;
    }
    if (all && optind < argc)
        return cli_usage_error(c, "give IDs or --all, not both");
    if (!all && optind >= argc)
        return cli_usage_error(c, "missing %s ID (or --all)", spec->noun);
    if (argc - optind > BATCH_MAX_ITEMS)
        return cli_usage_error(c, "at most %d ids at once", BATCH_MAX_ITEMS);
    return batch_delete(c, spec, argv + optind, (size_t)(argc - optind), all);
}
