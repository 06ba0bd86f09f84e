/* What the API handlers of every kind share: looking an instance up from
 * the request path, queueing its work, and the replies of a start and a
 * delete. */
#include <errno.h>

#include <libwebsockets.h>

#include "http.h"
#include "params.h"
#include "instance.h"

struct instance *instance_lookup(struct instances *reg, const struct instance_kind *kind,
                                 const char *id, bool need_ready, struct ph_error *err)
{
    struct instance *in = instance_find(reg, kind, id);
    if (!in) {
        ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT, "no %s with id \"%s\"", kind->label, id);
        return NULL;
    }
    if (need_ready && in->status == INSTANCE_STOPPED) {
        ph_error_set(err, PH_ERR_CONFLICT, -EBUSY, "%s %s is stopped; start it first", kind->label,
                     in->id);
        return NULL;
    }
    if (need_ready && in->status == INSTANCE_PAUSED) {
        ph_error_set(err, PH_ERR_CONFLICT, -EBUSY, "%s %s is paused; resume it first", kind->label,
                     in->id);
        return NULL;
    }
    if (need_ready && (in->status != INSTANCE_READY || !in->vm || in->deleting)) {
        ph_error_set(err, PH_ERR_CONFLICT, -EBUSY, "%s %s is %s, not ready", kind->label, in->id,
                     instance_status_name(in->status));
        return NULL;
    }
    return in;
}

struct instance *instance_for_req(struct instances *reg, const struct instance_kind *kind,
                                  struct http_req *req, bool need_ready)
{
    struct ph_error err = {0};
    struct instance *in = instance_lookup(reg, kind, req->params[0], need_ready, &err);
    if (!in)
        http_reply_error(req, &err);
    return in;
}

static int submitted(struct http_req *req, int r)
{
    if (r < 0)
        http_reply_errorf(req, PH_ERR_LIMIT, "gateway is busy; try again");
    return r;
}

int instance_submit_req(struct instance *in, struct http_req *req, work_fn run, work_fn done,
                        void *data)
{
    return submitted(req, instance_submit(in, run, done, data));
}

int instance_submit_exec_req(struct instance *in, struct http_req *req, work_fn run, work_fn done,
                             void *data)
{
    return submitted(req, instance_submit_exec(in, run, done, data));
}

static void reply_instance(struct http_req *req, int status, struct instance *in, int r,
                           const struct ph_error *err)
{
    if (r == 0)
        http_reply_json(req, status, instance_to_json(in));
    else
        http_reply_error(req, err);
}

void instance_reply_ready(struct instance *in, int r, const struct ph_error *err, void *data)
{
    reply_instance(data, 201, in, r, err);
}

void instance_reply_power(struct instance *in, int r, const struct ph_error *err, void *data)
{
    reply_instance(data, 200, in, r, err);
}

void instance_reply_deleted(void *data, const char *id)
{
    http_reply_json(data, 200, json_pack("{s:s, s:s}", "id", id, "status", "deleted"));
}

void instance_power_req(struct instance *in, struct http_req *req, enum instance_power_op op)
{
    static int (*const fns[])(struct instance *, instance_ready_fn, void *, struct ph_error *) = {
        [INSTANCE_POWER_STOP] = instance_power_off,
        [INSTANCE_POWER_START] = instance_power_on,
        [INSTANCE_POWER_PAUSE] = instance_pause,
        [INSTANCE_POWER_RESUME] = instance_resume,
    };
    static const char *const names[] = {"stop", "start", "pause", "resume"};
    static const char *const allowed[] = {NULL}, *const allowed_pause[] = {"to_disk", NULL};
    struct ph_error err = {0};
    json_t *body = NULL, *to_disk;

    /* An empty body or {} (what SmolVM's clients send); a pause may say
     * {"to_disk": true}. */
    if (req->body_len > 0 &&
        (!(body = http_json_body(req, &err)) ||
         params_only(body, op == INSTANCE_POWER_PAUSE ? allowed_pause : allowed, &err) < 0)) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    if ((to_disk = json_object_get(body, "to_disk")) && !json_is_boolean(to_disk)) {
        json_decref(body);
        http_reply_errorf(req, PH_ERR_INVALID, "to_disk must be true or false");
        return;
    }
    bool disk = json_is_true(to_disk);
    json_decref(body);
    lwsl_user("%s %s: %s%s for %s\n", in->kind->name, in->id, names[op], disk ? " to disk" : "",
              req->actor);
    if ((disk ? instance_pause_to_disk : fns[op])(in, instance_reply_power, req, &err) < 0)
        http_reply_error(req, &err);
}
