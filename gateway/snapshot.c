/* Snapshots of instances, and their API. See snapshot.h. */
#include "snapshot.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libwebsockets.h>

#include "gateway.h"
#include "http.h"
#include "instance.h"
#include "sandbox.h"
#include "state.h"
#include "util.h"
#include "vm.h"
#include "work.h"

#define SNAPSHOT_KIND "snapshot"
#define SNAPSHOTS_BUSY_MAX 16
#define SNAPSHOTS_SWEEP_MS 10000

struct snapshots {
    struct gateway *gw; /* weak */
    /* Instances a snapshot is being taken of: one at a time each (QEMU
     * runs one migration). Weak; held by the job. */
    const struct instance *busy[SNAPSHOTS_BUSY_MAX];
    int64_t swept_ms;
};

struct snap_job {
    struct snapshots *s;
    struct instance *in;
    struct vm *vm; /* weak: the instance's, held */
    char id[40];
    char dir[PATH_MAX];
    bool internal;
    int vcpus, mem_mib;
    snapshot_done_fn done;
    void *data;
    long long bytes;
    int64_t took_ms;
    struct ph_error err;
    int r;
};

static char *snapshot_dir(const struct snapshots *s, const char *id)
{
    char *p = NULL;
    if (asprintf(&p, "%s/snapshots/%s", s->gw->state_dir, id) < 0)
        return NULL;
    return p;
}

static long long dir_bytes(const char *dir)
{
    static const char *const files[] = {"memory.state", "disk.qcow2"};
    long long n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if (stat(path, &st) == 0)
            n += (long long)st.st_blocks * 512;
    }
    return n;
}

static void snap_job_run(void *data)
{
    struct snap_job *j = data;
    int64_t t0 = now_ms();
    struct vm_spec like = {
        .kind = j->vm->kind,
        .vcpus = j->vcpus,
        .mem_mib = j->mem_mib,
        .screen_width = j->vm->screen_width,
        .screen_height = j->vm->screen_height,
    };
    j->r = vm_snapshot(j->vm, j->dir, &j->err);
    if (j->r == 0 && (j->r = vm_template_write_info(j->dir, &like, "")) < 0) {
        ph_error_set(&j->err, PH_ERR_INTERNAL, j->r, "cannot write the snapshot's info");
        rm_rf(j->dir);
    }
    j->bytes = j->r == 0 ? dir_bytes(j->dir) : 0;
    j->took_ms = now_ms() - t0;
}

static void busy_set(struct snapshots *s, const struct instance *in, bool on)
{
    for (size_t i = 0; i < SNAPSHOTS_BUSY_MAX; i++) {
        if (on && !s->busy[i]) {
            s->busy[i] = in;
            return;
        }
        if (!on && s->busy[i] == in) {
            s->busy[i] = NULL;
            return;
        }
    }
}

static bool busy_has(const struct snapshots *s, const struct instance *in, size_t *used)
{
    bool found = false;
    *used = 0;
    for (size_t i = 0; i < SNAPSHOTS_BUSY_MAX; i++) {
        found |= s->busy[i] == in;
        *used += s->busy[i] != NULL;
    }
    return found;
}

static void snap_job_done(void *data)
{
    struct snap_job *j = data;
    struct instance *in = j->in;

    busy_set(j->s, in, false);
    if (j->r == 0) {
        /* parent: the snapshot the source started from, which this one's
         * disk is an overlay on (it stays while this one does). */
        json_t *rec = json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:b, s:I, s:s, s:I, s:s?}", "id",
                                j->id, "kind", in->kind->name, "source", in->id, "created_at",
                                (json_int_t)wall_ms(), "vcpus", j->vcpus, "mem_mib", j->mem_mib,
                                "internal", j->internal, "size_bytes", (json_int_t)j->bytes,
                                "image", in->image, "took_ms", (json_int_t)j->took_ms, "parent",
                                in->from_snapshot[0] ? in->from_snapshot : NULL);
        if (!rec || state_put(j->s->gw->db, j->id, SNAPSHOT_KIND, rec) < 0) {
            j->r = ph_error_set(&j->err, PH_ERR_INTERNAL, -EIO, "cannot record snapshot %s", j->id);
            rm_rf(j->dir);
        } else {
            lwsl_user("%s %s: snapshot %s taken in %lld ms (%lld MiB)\n", in->kind->name, in->id,
                      j->id, (long long)j->took_ms, j->bytes >> 20);
        }
        json_decref(rec);
    } else {
        lwsl_err("%s %s: snapshot failed: %s\n", in->kind->name, in->id, j->err.message);
    }
    j->done(in, j->id, j->r, j->r < 0 ? &j->err : NULL, j->data);
    instance_release(in);
    free(j);
}

int snapshots_take(struct snapshots *s, struct instance *in, bool internal, snapshot_done_fn done,
                   void *data, struct ph_error *err)
{
    size_t used;
    struct snap_job *j;
    _cleanup_free_ char *dir = NULL;

    if (in->status != INSTANCE_READY || !in->vm || in->deleting)
        return ph_error_set(err, PH_ERR_CONFLICT, -EBUSY, "%s %s is %s; only a ready one %s",
                            in->kind->label, in->id, instance_status_name(in->status),
                            internal ? "forks" : "has snapshots taken");
    if (busy_has(s, in, &used))
        return ph_error_set(err, PH_ERR_CONFLICT, -EBUSY,
                            "%s %s: a snapshot of it is being taken; try again once it ends",
                            in->kind->label, in->id);
    if (used >= SNAPSHOTS_BUSY_MAX)
        return ph_error_set(err, PH_ERR_LIMIT, -EAGAIN, "too many snapshots at once; try again");
    if (!(j = calloc(1, sizeof(*j))) ||
        random_id(j->id, sizeof(j->id), internal ? "fork-" : "snap-", 6) < 0 ||
        !(dir = snapshot_dir(s, j->id))) {
        free(j);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    *j = (struct snap_job){.s = s,
                           .in = in,
                           .vm = in->vm,
                           .internal = internal,
                           .vcpus = in->vcpus,
                           .mem_mib = in->mem_mib,
                           .done = done,
                           .data = data};
    snprintf(j->id, sizeof(j->id), "%s", strrchr(dir, '/') + 1);
    snprintf(j->dir, sizeof(j->dir), "%s", dir);
    if (instance_submit(in, snap_job_run, snap_job_done, j) < 0) {
        free(j);
        return ph_error_set(err, PH_ERR_LIMIT, -EAGAIN, "gateway is busy; try again");
    }
    busy_set(s, in, true);
    return 0;
}

/* The record of snapshot id (new reference), or NULL. */
static json_t *snapshot_record(struct state_db *db, const char *id)
{
    json_t *all = NULL, *rec, *found = NULL;
    size_t i;
    if (state_list(db, SNAPSHOT_KIND, &all) < 0)
        return NULL;
    json_array_foreach(all, i, rec)
    {
        const char *rid = json_string_value(json_object_get(rec, "id"));
        if (rid && strcmp(rid, id) == 0)
            found = json_incref(rec);
    }
    json_decref(all);
    return found;
}

static json_t *snapshot_json(const json_t *rec)
{
    json_t *o = json_deep_copy(rec);
    json_int_t at = json_integer_value(json_object_get(rec, "created_at"));
    json_object_set_new(o, "snapshot_id", json_string(json_string_value(json_object_get(o, "id"))));
    json_object_set_new(o, "created_at", instance_time_json(at));
    return o;
}

int snapshots_lookup(struct snapshots *s, const char *id, const struct instance_kind *kind,
                     struct vm_template *info, char *image, size_t image_len, struct ph_error *err)
{
    json_t *rec = vm_id_valid(id) ? snapshot_record(s->gw->db, id) : NULL;
    const char *rkind = json_string_value(json_object_get(rec, "kind"));
    _cleanup_free_ char *dir = snapshot_dir(s, id);

    memset(info, 0, sizeof(*info));
    bool ok =
        rec && rkind && strcmp(rkind, kind->name) == 0 && dir && vm_template_open(dir, info) == 0;
    const char *rimage = json_string_value(json_object_get(rec, "image"));
    if (ok && image)
        snprintf(image, image_len, "%s", rimage ? rimage : "");
    json_decref(rec);
    if (!ok)
        return ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT, "no %s snapshot with id \"%s\"",
                            kind->label, id);
    return 0;
}

/* A snapshot whose disk is an overlay on id's, or NULL. */
/* A snapshot among the records all whose parent is id (into out), else NULL. */
static const char *child_in(json_t *all, const char *id, char *out, size_t len)
{
    json_t *rec;
    size_t i;
    json_array_foreach(all, i, rec)
    {
        const char *parent = json_string_value(json_object_get(rec, "parent"));
        if (parent && strcmp(parent, id) == 0) {
            snprintf(out, len, "%s", json_string_value(json_object_get(rec, "id")));
            return out;
        }
    }
    return NULL;
}

static const char *snapshot_child(struct snapshots *s, const char *id, char *out, size_t len)
{
    json_t *all = NULL;
    if (state_list(s->gw->db, SNAPSHOT_KIND, &all) < 0)
        return NULL;
    const char *found = child_in(all, id, out, len);
    json_decref(all);
    return found;
}

/* ---- the API ------------------------------------------------------------- */

static void reply_taken(struct instance *in, const char *snap_id, int r, const struct ph_error *err,
                        void *data)
{
    struct http_req *req = data;
    json_t *rec = r == 0 ? snapshot_record(instances_db(in->reg), snap_id) : NULL;
    if (rec)
        http_reply_json(req, 201, snapshot_json(rec));
    else if (r == 0)
        http_reply_errorf(req, PH_ERR_INTERNAL, "snapshot %s was taken but its record is gone",
                          snap_id);
    else
        http_reply_error(req, err);
    json_decref(rec);
}

static void api_snapshot_take(struct http_req *req, void *data)
{
    struct snapshots *s = data;
    struct ph_error err = {0};
    struct instance *in =
        instance_for_req(s->gw->instances, sandboxes_kind(s->gw->sandboxes), req, true);

    if (in && snapshots_take(s, in, false, reply_taken, req, &err) < 0)
        http_reply_error(req, &err);
}

static void api_snapshot_list(struct http_req *req, void *data)
{
    struct snapshots *s = data;
    json_t *all = NULL, *rec, *out = json_array();
    size_t i;
    if (state_list(s->gw->db, SNAPSHOT_KIND, &all) == 0)
        json_array_foreach(all, i, rec) json_array_append_new(out, snapshot_json(rec));
    json_decref(all);
    http_reply_json(req, 200, json_pack("{s:o}", "snapshots", out));
}

static void api_snapshot_get(struct http_req *req, void *data)
{
    struct snapshots *s = data;
    json_t *rec = vm_id_valid(req->params[0]) ? snapshot_record(s->gw->db, req->params[0]) : NULL;
    if (!rec) {
        http_reply_errorf(req, PH_ERR_NOT_FOUND, "no snapshot with id \"%s\"", req->params[0]);
        return;
    }
    http_reply_json(req, 200, snapshot_json(rec));
    json_decref(rec);
}

struct rm_job {
    char *dir;
    struct http_req *req; /* NULL for the sweep's */
    char id[40];
};

static void rm_job_run(void *data)
{
    struct rm_job *j = data;
    rm_rf(j->dir);
}

static void rm_job_done(void *data)
{
    struct rm_job *j = data;
    if (j->req)
        http_reply_json(j->req, 200, json_pack("{s:s, s:s}", "id", j->id, "status", "deleted"));
    free(j->dir);
    free(j);
}

/* Removes snapshot id's record now and its files on a worker. */
static int snapshot_remove(struct snapshots *s, const char *id, struct http_req *req)
{
    struct rm_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->dir = snapshot_dir(s, id))) {
        free(j);
        return -ENOMEM;
    }
    j->req = req;
    snprintf(j->id, sizeof(j->id), "%s", id);
    state_delete(s->gw->db, id);
    if (work_submit(s->gw->work, rm_job_run, rm_job_done, j) < 0) {
        rm_job_run(j); /* a few unlinks: rare enough to do here */
        rm_job_done(j);
    }
    return 0;
}

static void api_snapshot_delete(struct http_req *req, void *data)
{
    struct snapshots *s = data;
    const char *id = req->params[0];
    json_t *rec = vm_id_valid(id) ? snapshot_record(s->gw->db, id) : NULL;
    _cleanup_free_ char *dir = snapshot_dir(s, id);
    const char *user;

    if (!rec) {
        http_reply_errorf(req, PH_ERR_NOT_FOUND, "no snapshot with id \"%s\"", id);
        return;
    }
    json_decref(rec);
    char child[40];
    if (dir && ((user = instances_using(s->gw->instances, id, dir)) ||
                (user = snapshot_child(s, id, child, sizeof(child))))) {
        http_reply_errorf(req, PH_ERR_CONFLICT,
                          "snapshot %s is in use by %s (its disk is an overlay on the snapshot's); "
                          "delete that first",
                          id, user);
        return;
    }
    if (snapshot_remove(s, id, req) < 0)
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
}

void snapshots_sweep(struct snapshots *s)
{
    json_t *all = NULL, *rec;
    size_t i;
    int64_t now = now_ms();

    if (!s || (s->swept_ms && now - s->swept_ms < SNAPSHOTS_SWEEP_MS))
        return;
    s->swept_ms = now;
    if (state_list(s->gw->db, SNAPSHOT_KIND, &all) < 0)
        return;
    json_array_foreach(all, i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "id"));
        _cleanup_free_ char *dir = id ? snapshot_dir(s, id) : NULL;
        char child[40];
        /* One read of the records serves the whole pass. */
        if (!json_is_true(json_object_get(rec, "internal")) || !dir ||
            instances_using(s->gw->instances, id, dir) || child_in(all, id, child, sizeof(child)))
            continue;
        lwsl_user("snapshot %s: no instance uses it any more; removed\n", id);
        snapshot_remove(s, id, NULL);
    }
    json_decref(all);
}

int snapshots_new(struct gateway *gw, struct snapshots **out)
{
    struct snapshots *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->gw = gw;
    http_route(gw->http, HTTP_POST, "/v1/sandboxes/{id}/snapshot", 0, 0, api_snapshot_take, s);
    http_route(gw->http, HTTP_GET, "/v1/snapshots", 0, 0, api_snapshot_list, s);
    http_route(gw->http, HTTP_GET, "/v1/snapshots/{id}", 0, 0, api_snapshot_get, s);
    http_route(gw->http, HTTP_DELETE, "/v1/snapshots/{id}", 0, 0, api_snapshot_delete, s);
    *out = s;
    return 0;
}

void snapshots_free(struct snapshots *s)
{
    free(s);
}
