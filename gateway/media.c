/* Screenshots, computer-use actions and recordings of a live session's
 * screen, all through one VNC client per session. The blocking parts (VNC
 * connect, encoding, finalizing files) run on worker threads; the session's
 * media lock serializes them, so actions never interleave. */
#include "media.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "browser.h"
#include "computer_run.h"
#include "gateway.h"
#include "recorder/recording.h"
#include "recorder/screenshot.h"
#include "util.h"
#include "recorder/vnc.h"

#define MEDIA_VNC_TIMEOUT_MS 20000

struct session_media {
    pthread_mutex_t lock;
    struct vnc_client *vnc;    /* owned, NULL until first use */
    struct rec_recording *rec; /* owned: the active recording, or NULL */
    /* Its id: written with lock and id_lock held, read with either (the
     * loop takes only id_lock, which nobody holds for long). */
    char rec_id[40];
    pthread_mutex_t id_lock;
    char rec_meta[600];              /* sidecar path of the active recording */
    struct computer_pointer pointer; /* what the computer-use API did to the pointer */
};

struct media {
    struct instance_observer observer;
    struct gateway *gw; /* weak */
    int sweep_ticks;
};

static void session_media_free(struct session_media *m)
{
    if (!m)
        return;
    if (m->rec) {
        rec_recording_stop(m->rec, NULL);
        rec_recording_free(m->rec);
    }
    vnc_client_free(m->vnc);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->id_lock);
    free(m);
}

/* Lock held. A session whose connection ended is replaced. */
static struct vnc_client *media_vnc(struct session_media *m, struct vm *vm, struct ph_error *err)
{
    if (m->vnc && vnc_client_status(m->vnc, NULL) == 0)
        return m->vnc;
    if (m->rec) {
        ph_error_set(err, PH_ERR_UNAVAILABLE, -ENOTCONN,
                     "the screen connection of a running recording was lost");
        return NULL;
    }
    vnc_client_free(TAKE_PTR(m->vnc));
    if (!vm->vnc_socket) {
        ph_error_set(err, PH_ERR_CONFLICT, -ENOTSUP, "this session has no screen");
        return NULL;
    }
    if (vnc_client_new(vm->vnc_socket, 0, MEDIA_VNC_TIMEOUT_MS, &m->vnc, err) < 0)
        return NULL;
    return m->vnc;
}

/* ---- recordings on disk ------------------------------------------------- */

static char *rec_dir(struct gateway *gw, const char *session_id)
{
    char *p = NULL;
    if (asprintf(&p, "%s/recordings/%s", gw->state_dir, session_id) < 0)
        return NULL;
    return p;
}

static json_t *rec_meta_load(const char *path)
{
    _cleanup_free_ char *text = NULL;
    if (read_file(path, &text, NULL, 64 * 1024) < 0)
        return NULL;
    return json_loads(text, 0, NULL);
}

/* A sidecar takes this much room on disk, spaces after its JSON: when
 * the disk is full (the recording filled it), its last update still fits
 * in place, so a failed recording does not go on being listed active. */
#define REC_META_RESERVE 4096

static int rec_meta_save(const char *path, json_t *meta)
{
    _cleanup_free_ char *text = json_dumps(meta, JSON_COMPACT);
    char *padded;
    size_t len;
    int r;

    if (!text)
        return -ENOMEM;
    len = strlen(text);
    if (len < REC_META_RESERVE && (padded = realloc(text, REC_META_RESERVE))) {
        text = padded;
        memset(text + len, ' ', REC_META_RESERVE - 1 - len);
        text[REC_META_RESERVE - 1] = '\n';
        len = REC_META_RESERVE;
    }
    r = write_file_atomic(path, text, len, 0600);
    if (r == 0)
        return 0;
    /* No room for a new file: overwrite the old one's reserved bytes. */
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || (size_t)st.st_size < len ||
        pwrite(fd, text, len, 0) != (ssize_t)len) {
        lwsl_err("recording sidecar %s: cannot save it (%s)\n", path, strerror(-r));
        return r;
    }
    return 0;
}

/* One recording on disk, as rec_walk finds it. */
struct rec_file {
    const char *session_id;
    const char *meta_path, *mp4_path;
    json_t *meta; /* borrowed; NULL when the sidecar does not parse */
    int64_t ended_ms;
    int64_t bytes; /* the MP4's size */
};

/* Calls fn for every recording of the state dir (fn may delete it), and
 * with remove_tmp removes what a finalize cut short left
 * (NAME.mp4.faststart.tmp: only when none can be running). Empty session
 * dirs are removed (at the start; later, once a minute old). */
static void rec_walk(struct gateway *gw, bool remove_tmp,
                     void (*fn)(struct rec_file *f, void *data), void *data)
{
    _cleanup_free_ char *root = NULL;
    DIR *top;
    struct dirent *s;

    if (asprintf(&root, "%s/recordings", gw->state_dir) < 0 || !(top = opendir(root)))
        return;
    while ((s = readdir(top))) {
        char dir[800];
        DIR *d;
        struct dirent *e;
        if (s->d_name[0] == '.')
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", root, s->d_name);
        if (!(d = opendir(dir)))
            continue;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            char path[1100], mp4[1100];
            struct stat st;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (remove_tmp && n > 14 && strcmp(e->d_name + n - 14, ".faststart.tmp") == 0) {
                unlink(path);
                continue;
            }
            if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
                continue;
            snprintf(mp4, sizeof(mp4), "%.*s.mp4", (int)(strlen(path) - 5), path);
            json_t *meta = rec_meta_load(path);
            struct rec_file f = {
                .session_id = s->d_name,
                .meta_path = path,
                .mp4_path = mp4,
                .meta = meta,
                .ended_ms = meta ? json_integer_value(json_object_get(meta, "ended_ms")) : 0,
                .bytes = stat(mp4, &st) == 0 ? st.st_size : 0,
            };
            fn(&f, data);
            json_decref(meta);
        }
        closedir(d);
        /* Only succeeds once empty. Outside the start, a dir made in the
         * last minute is left: a recording may be about to start in it. */
        struct stat dst;
        if (remove_tmp || (stat(dir, &dst) == 0 && dst.st_mtime < time(NULL) - 60))
            rmdir(dir);
    }
    closedir(top);
}

static json_t *time_or_null(int64_t ms)
{
    char buf[40];
    if (ms <= 0)
        return json_null();
    format_time_utc(ms, buf, sizeof(buf));
    return json_string(buf);
}

/* The API's view of a recording: sidecar fields, the file's size now, and
 * the URL to fetch it. */
static json_t *rec_public(struct gateway *gw, const char *session_id, json_t *meta)
{
    const char *id = json_string_value(json_object_get(meta, "id"));
    char path[700], url[300];
    struct stat st;

    if (!id)
        return NULL;
    snprintf(path, sizeof(path), "%s/recordings/%s/%s.mp4", gw->state_dir, session_id, id);
    snprintf(url, sizeof(url), "%s/v1/browser/sessions/%s/recordings/%s", gw->url, session_id, id);
    bool active = json_integer_value(json_object_get(meta, "ended_ms")) == 0;
    const char *error = json_string_value(json_object_get(meta, "error"));
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:I, s:o, s:o, s:b, s:s}", "id", id, "session_id", session_id, "url", url,
        "bytes", (json_int_t)(stat(path, &st) == 0 ? st.st_size : 0), "started_at",
        time_or_null(json_integer_value(json_object_get(meta, "started_ms"))), "ended_at",
        time_or_null(json_integer_value(json_object_get(meta, "ended_ms"))), "active", active,
        "status",
        active  ? "recording"
        : error ? "failed"
                : "finished");
    if (o && json_is_string(json_object_get(meta, "end_reason")))
        json_object_set(o, "end_reason", json_object_get(meta, "end_reason"));
    if (o && error)
        json_object_set(o, "error", json_object_get(meta, "error"));
    return o;
}

/* What the recordings of the state dir hold, in bytes. */
static void rec_add_bytes(struct rec_file *f, void *data)
{
    *(int64_t *)data += f->bytes;
}

static int64_t rec_total_bytes(struct gateway *gw)
{
    int64_t total = 0;
    rec_walk(gw, false, rec_add_bytes, &total);
    return total;
}

/* Lock held. */
static int media_rec_start(struct gateway *gw, struct instance *sb, struct vm *vm,
                           struct session_media *m, json_t **out, struct ph_error *err)
{
    _cleanup_free_ char *dir = rec_dir(gw, sb->id);
    char id[40], mp4[700];
    struct vnc_client *vnc;
    int r;

    if (m->rec)
        return ph_error_set(err, PH_ERR_CONFLICT, -EBUSY,
                            "recording %s is running; stop it first (one at a time)", m->rec_id);
    if (!(vnc = media_vnc(m, vm, err)))
        return -ENOTCONN;
    if (!dir || random_id(id, sizeof(id), "rec-", 6) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    /* Recordings are never deleted to make room: a full budget refuses
     * new ones until some are deleted (or expire, with a retention). */
    int64_t budget = (int64_t)gw->recording_total_mib << 20;
    int64_t used = budget > 0 ? rec_total_bytes(gw) : 0;
    if (budget > 0 && used >= budget)
        return ph_error_set(err, PH_ERR_LIMIT, -ENOSPC,
                            "the recordings' budget is full: they hold %lld MiB of "
                            "recording_total_mib %d; delete some first",
                            (long long)(used >> 20), gw->recording_total_mib);
    if ((r = mkdir_p(dir, 0700)) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, r, "cannot create %s", dir);
    snprintf(mp4, sizeof(mp4), "%s/%s.mp4", dir, id);
    snprintf(m->rec_meta, sizeof(m->rec_meta), "%s/%s.json", dir, id);
    /* What is left of the budget caps this one too. */
    struct rec_limits limits = {
        .max_bytes = (int64_t)gw->recording_max_mib << 20,
        .max_ms = (int64_t)gw->recording_max_minutes * 60000,
    };
    if (budget > 0 && (limits.max_bytes == 0 || budget - used < limits.max_bytes)) {
        limits.max_bytes = budget - used;
        limits.max_bytes_name = "the recordings' budget was full (recording_total_mib)";
    }
    r = rec_recording_start(vnc, mp4, gw->recording_fps, &limits, &m->rec, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&m->id_lock);
    snprintf(m->rec_id, sizeof(m->rec_id), "%s", id);
    pthread_mutex_unlock(&m->id_lock);
    json_t *meta =
        json_pack("{s:s, s:s, s:I, s:I, s:i}", "id", id, "session_id", sb->id, "started_ms",
                  (json_int_t)wall_ms(), "ended_ms", (json_int_t)0, "fps", gw->recording_fps);
    rec_meta_save(m->rec_meta, meta);
    if (out)
        *out = rec_public(gw, sb->id, meta);
    json_decref(meta);
    return 0;
}

/* Lock held. Finalizes the active recording (file index first); why is
 * what ended it, unless it ended itself (a limit, an error). */
static int media_rec_stop(struct gateway *gw, struct instance *sb, struct session_media *m,
                          const char *why, json_t **out, struct ph_error *err)
{
    struct ph_error e = {0};
    char itself[sizeof(e.message)];
    int r;

    if (!m->rec)
        return ph_error_set(err, PH_ERR_CONFLICT, -EINVAL, "no recording is running");
    if (rec_recording_ended_itself(m->rec, itself, sizeof(itself)))
        why = itself;
    r = rec_recording_stop(m->rec, &e);
    json_t *meta = rec_meta_load(m->rec_meta);
    if (meta) {
        int64_t ended = rec_recording_ended_ms(m->rec);
        json_object_set_new(meta, "ended_ms", json_integer(ended > 0 ? ended : wall_ms()));
        json_object_set_new(meta, "end_reason", json_string(r < 0 ? "error" : why));
        json_object_set_new(meta, "frames", json_integer(rec_recording_frames(m->rec)));
        json_object_set_new(meta, "late_slots", json_integer(rec_recording_late(m->rec)));
        if (r < 0)
            json_object_set_new(meta, "error", json_string(e.message));
        rec_meta_save(m->rec_meta, meta);
        if (out)
            *out = rec_public(gw, sb->id, meta);
        json_decref(meta);
    }
    if (r < 0)
        lwsl_warn("session %s: recording %s: %s\n", sb->id, m->rec_id, e.message);
    rec_recording_free(TAKE_PTR(m->rec));
    pthread_mutex_lock(&m->id_lock);
    m->rec_id[0] = '\0';
    pthread_mutex_unlock(&m->id_lock);
    return 0;
}

/* ---- the lifecycle of a session's media ------------------------------- */

/* Loop thread: a live session's media state, before any job can use it. */
static int media_setup(struct instance_observer *o, struct instance *in, struct ph_error *err)
{
    struct browser_session *b = browser_of(in);
    struct session_media *m;

    if (!b || !b->live || b->media)
        return 0;
    if (!(m = calloc(1, sizeof(*m))))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->id_lock, NULL);
    b->media = m;
    return 0;
}

/* Worker thread: recording from the first frame starts before the session
 * is handed out. */
static int media_prepare(struct instance_observer *o, struct instance *in, struct vm *vm,
                         struct ph_error *err)
{
    struct media *md = container_of(o, struct media, observer);
    struct browser_session *b = browser_of(in);
    struct session_media *m = b ? b->media : NULL;
    int r;

    if (!b || !b->record_video)
        return 0;
    if (!m)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    pthread_mutex_lock(&m->lock);
    r = media_rec_start(md->gw, in, vm, m, NULL, err);
    pthread_mutex_unlock(&m->lock);
    return r;
}

/* Worker thread (loop at shutdown), before the VM stops or is left
 * running: finalizes the recording, ends the VNC client. */
static void media_stopping(struct instance_observer *o, struct instance *in, struct vm *vm)
{
    struct media *md = container_of(o, struct media, observer);
    struct browser_session *b = browser_of(in);
    struct session_media *m = b ? b->media : NULL;

    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    if (m->rec)
        media_rec_stop(md->gw, in, m, vm ? "the session ended" : "the gateway stopped", NULL, NULL);
    vnc_client_free(TAKE_PTR(m->vnc));
    pthread_mutex_unlock(&m->lock);
}

static void media_destroy(struct instance_observer *o, struct instance *in)
{
    struct browser_session *b = browser_of(in);
    if (b)
        session_media_free(TAKE_PTR(b->media));
}

/* ---- jobs ------------------------------------------------------------------ */

enum media_op { MEDIA_SCREENSHOT, MEDIA_COMPUTER, MEDIA_REC_START, MEDIA_REC_STOP };

struct media_job {
    struct gateway *gw;
    struct instance *sb;
    struct vm *vm; /* weak, held */
    struct http_req *req;
    enum media_op op;
    json_t *body; /* owned */
    int max_w, max_h;
    char rid[40];
    uint8_t *png; /* owned */
    size_t png_len;
    json_t *reply; /* owned */
    struct ph_error err;
    int r;
};

static int media_screenshot_locked(struct session_media *m, struct vm *vm, int max_w, int max_h,
                                   uint8_t **png, size_t *len, struct ph_error *err)
{
    uint8_t *rgba = NULL;
    int w, h, r;
    struct vnc_client *vnc = media_vnc(m, vm, err);
    if (!vnc)
        return -ENOTCONN;
    r = vnc_client_snapshot(vnc, &rgba, &w, &h);
    if (r < 0)
        return ph_error_set(err, PH_ERR_UNAVAILABLE, r, "no picture from the screen");
    r = rec_png_encode(rgba, w, h, max_w, max_h, png, len, err);
    free(rgba);
    return r;
}

static void media_computer(struct media_job *j, struct session_media *m)
{
    struct computer_request cr = {
        .vnc = media_vnc(m, j->vm, &j->err),
        .vm = j->vm,
        .pointer = &m->pointer,
        .global_hooks = j->gw->hooks,
        .vm_hooks = j->sb->hooks,
        .policy = j->gw->policy,
        .vm_id = j->sb->id,
        .actor = j->req->actor,
        .req = j->req,
        .body = j->body,
        .max_w = j->max_w,
        .max_h = j->max_h,
    };
    j->r = cr.vnc ? computer_request_run(&cr, &j->reply, &j->err) : -ENOTCONN;
}

static void media_job_run(void *data)
{
    struct media_job *j = data;
    struct session_media *m = browser_of(j->sb)->media;

    pthread_mutex_lock(&m->lock);
    switch (j->op) {
    case MEDIA_SCREENSHOT:
        j->r = media_screenshot_locked(m, j->vm, j->max_w, j->max_h, &j->png, &j->png_len, &j->err);
        break;
    case MEDIA_COMPUTER:
        media_computer(j, m);
        break;
    case MEDIA_REC_START:
        j->r = media_rec_start(j->gw, j->sb, j->vm, m, &j->reply, &j->err);
        break;
    case MEDIA_REC_STOP:
        if (strcmp(j->rid, m->rec_id) != 0)
            j->r = ph_error_set(&j->err, PH_ERR_CONFLICT, -EINVAL, "recording %s is not running",
                                j->rid);
        else
            j->r = media_rec_stop(j->gw, j->sb, m, "stopped", &j->reply, &j->err);
        break;
    }
    pthread_mutex_unlock(&m->lock);
}

static void media_job_done(void *data)
{
    struct media_job *j = data;
    if (j->r < 0)
        http_reply_error(j->req, &j->err);
    else if (j->op == MEDIA_SCREENSHOT)
        http_reply_data(j->req, 200, "image/png", (char *)TAKE_PTR(j->png), j->png_len, NULL);
    else
        http_reply_json(j->req, j->op == MEDIA_REC_START ? 201 : 200, TAKE_PTR(j->reply));
    instance_release(j->sb);
    json_decref(j->body);
    json_decref(j->reply);
    free(j->png);
    free(j);
}

static struct instance *live_session(struct gateway *gw, struct http_req *req)
{
    struct instance *sb = browser_for_req(gw->browsers, req, true);
    if (!sb)
        return NULL;
    if (!browser_of(sb)->live) {
        http_reply_errorf(req, PH_ERR_CONFLICT,
                          "session %s is headless: it has no screen (start it with mode live)",
                          sb->id);
        return NULL;
    }
    return sb;
}

static int query_int(struct http_req *req, const char *name, int max, int *out)
{
    const char *v = http_query(req, name);
    char *end;
    *out = 0;
    if (!v)
        return 0;
    long n = strtol(v, &end, 10);
    if (*end || n < 0 || n > max) {
        http_reply_errorf(req, PH_ERR_INVALID, "%s must be an integer 0..%d", name, max);
        return -EINVAL;
    }
    *out = (int)n;
    return 0;
}

static void media_submit(struct gateway *gw, struct http_req *req, enum media_op op)
{
    struct ph_error err = {0};
    struct instance *sb = live_session(gw, req);
    struct media_job *j;

    if (!sb)
        return;
    j = calloc(1, sizeof(*j));
    if (!j) {
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    j->gw = gw;
    j->sb = sb;
    j->vm = sb->vm;
    j->req = req;
    j->op = op;
    if (query_int(req, "max_width", 7680, &j->max_w) < 0 ||
        query_int(req, "max_height", 4320, &j->max_h) < 0) {
        free(j);
        return;
    }
    if (op == MEDIA_COMPUTER) {
        j->body = http_json_body(req, &err);
        if (!j->body) {
            free(j);
            http_reply_error(req, &err);
            return;
        }
        json_t *mw = json_object_get(j->body, "max_width");
        if (json_is_integer(mw))
            j->max_w = (int)json_integer_value(mw);
        json_object_del(j->body, "max_width");
    }
    if (op == MEDIA_REC_STOP)
        snprintf(j->rid, sizeof(j->rid), "%s", req->params[1]);
    if (instance_submit_req(sb, req, media_job_run, media_job_done, j) < 0) {
        json_decref(j->body);
        free(j);
    }
}

static void api_screenshot(struct http_req *req, void *data)
{
    media_submit(data, req, MEDIA_SCREENSHOT);
}

static void api_computer(struct http_req *req, void *data)
{
    media_submit(data, req, MEDIA_COMPUTER);
}

static void api_rec_start(struct http_req *req, void *data)
{
    media_submit(data, req, MEDIA_REC_START);
}

static void api_rec_stop(struct http_req *req, void *data)
{
    media_submit(data, req, MEDIA_REC_STOP);
}

/* Recordings outlive their session: these read the session's recording
 * folder whether or not the session still exists. */
static bool rec_session_known(struct gateway *gw, struct http_req *req)
{
    _cleanup_free_ char *dir = rec_dir(gw, req->params[0]);
    if (browser_find(gw->browsers, req->params[0]) || (dir && access(dir, F_OK) == 0))
        return true;
    http_reply_errorf(req, PH_ERR_NOT_FOUND, "no browser session or recordings with id \"%s\"",
                      req->params[0]);
    return false;
}

static void api_rec_list(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    _cleanup_free_ char *dir = rec_dir(gw, req->params[0]);
    json_t *arr = json_array();
    DIR *d;
    struct dirent *e;

    if (!rec_session_known(gw, req)) {
        json_decref(arr);
        return;
    }
    if (dir && (d = opendir(dir))) {
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            char path[900];
            if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            json_t *meta = rec_meta_load(path);
            json_t *pub = meta ? rec_public(gw, req->params[0], meta) : NULL;
            if (pub)
                json_array_append_new(arr, pub);
            json_decref(meta);
        }
        closedir(d);
    }
    http_reply_json(req, 200, json_pack("{s:o}", "recordings", arr));
}

static void api_rec_get(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    char path[700];
    if (!rec_session_known(gw, req))
        return;
    snprintf(path, sizeof(path), "%s/recordings/%s/%s.mp4", gw->state_dir, req->params[0],
             req->params[1]);
    if (access(path, R_OK) != 0) {
        http_reply_errorf(req, PH_ERR_NOT_FOUND, "no recording \"%s\"", req->params[1]);
        return;
    }
    http_reply_file(req, path, "video/mp4");
}

static void api_rec_delete(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    struct browser_session *b = browser_of(browser_find(gw->browsers, req->params[0]));
    char mp4[700], meta[700];

    if (!rec_session_known(gw, req))
        return;
    if (b && b->media) {
        pthread_mutex_lock(&b->media->id_lock);
        bool running = strcmp(b->media->rec_id, req->params[1]) == 0;
        pthread_mutex_unlock(&b->media->id_lock);
        if (running) {
            http_reply_errorf(req, PH_ERR_CONFLICT, "recording %s is running; stop it first",
                              req->params[1]);
            return;
        }
    }
    snprintf(mp4, sizeof(mp4), "%s/recordings/%s/%s.mp4", gw->state_dir, req->params[0],
             req->params[1]);
    snprintf(meta, sizeof(meta), "%s/recordings/%s/%s.json", gw->state_dir, req->params[0],
             req->params[1]);
    if (unlink(meta) < 0) {
        http_reply_errorf(req, PH_ERR_NOT_FOUND, "no recording \"%s\"", req->params[1]);
        return;
    }
    unlink(mp4);
    http_reply_json(req, 200, json_pack("{s:s, s:s}", "id", req->params[1], "status", "deleted"));
}

static void rec_expire(struct rec_file *f, void *data)
{
    struct gateway *gw = data;
    int64_t cutoff = wall_ms() - (int64_t)gw->recording_retention_hours * 3600 * 1000;
    if (f->ended_ms <= 0 || f->ended_ms > cutoff)
        return;
    unlink(f->mp4_path);
    unlink(f->meta_path);
    lwsl_user("recording %s expired (retention %d h)\n", f->meta_path,
              gw->recording_retention_hours);
}

/* Loop thread, every second: recordings that ended by themselves (a
 * limit, an encoder error such as a full disk) and whose file is
 * finalized are closed, so the API stops calling them active; their
 * thread is done, so this does not block. A session whose media lock a job holds is looked at next
 * time. Every minute: retention. */
void media_sweep(struct media *md)
{
    struct gateway *gw = md->gw;

    for (struct instance *in = instances_first(gw->instances); in; in = in->next) {
        struct browser_session *b = browser_of(in);
        struct session_media *m = b ? b->media : NULL;
        if (!m || pthread_mutex_trylock(&m->lock) != 0)
            continue;
        if (m->rec && rec_recording_ended_itself(m->rec, NULL, 0) &&
            rec_recording_finished(m->rec)) {
            lwsl_user("session %s: recording %s ended by itself\n", in->id, m->rec_id);
            media_rec_stop(gw, in, m, NULL, NULL, NULL);
        }
        pthread_mutex_unlock(&m->lock);
    }
    if (gw->recording_retention_hours <= 0 || ++md->sweep_ticks % 60 != 0)
        return;
    rec_walk(gw, false, rec_expire, gw);
}

/* At start, before any recording can run: a recording still marked active
 * was cut short by a gateway that was killed. Its file holds the fragments
 * written until then (it plays up to the cut). */
static void rec_mark_cut(struct rec_file *f, void *data)
{
    struct stat st;
    if (!f->meta || f->ended_ms != 0)
        return;
    json_object_set_new(
        f->meta, "ended_ms",
        json_integer(stat(f->mp4_path, &st) == 0
                         ? (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000
                         : wall_ms()));
    json_object_set_new(f->meta, "end_reason", json_string("error"));
    json_object_set_new(f->meta, "error",
                        json_string("cut short: the gateway was killed while recording (the "
                                    "file plays up to the cut, without its index first)"));
    if (rec_meta_save(f->meta_path, f->meta) == 0)
        lwsl_warn("recording %s was cut short by a killed gateway; marked failed\n", f->meta_path);
}

static void media_api_register(struct gateway *gw)
{
    http_route(gw->http, HTTP_GET, "/v1/browser/sessions/{id}/screenshot", 0, 0, api_screenshot,
               gw);
    http_route(gw->http, HTTP_POST, "/v1/browser/sessions/{id}/computer", 0, 0, api_computer, gw);
    http_route(gw->http, HTTP_GET, "/v1/browser/sessions/{id}/recordings", 0, 0, api_rec_list, gw);
    http_route(gw->http, HTTP_POST, "/v1/browser/sessions/{id}/recordings", 0, 0, api_rec_start,
               gw);
    http_route(gw->http, HTTP_POST, "/v1/browser/sessions/{id}/recordings/{rid}/stop", 0, 0,
               api_rec_stop, gw);
    http_route(gw->http, HTTP_GET, "/v1/browser/sessions/{id}/recordings/{rid}", 0, 0, api_rec_get,
               gw);
    http_route(gw->http, HTTP_DELETE, "/v1/browser/sessions/{id}/recordings/{rid}", 0, 0,
               api_rec_delete, gw);
}

int media_new(struct gateway *gw, struct media **out)
{
    struct media *md = calloc(1, sizeof(*md));
    if (!md)
        return -ENOMEM;
    md->gw = gw;
    md->observer = (struct instance_observer){
        .setup = media_setup,
        .prepare = media_prepare,
        .stopping = media_stopping,
        .destroy = media_destroy,
    };
    instances_observe(gw->instances, &md->observer);
    rec_walk(gw, true, rec_mark_cut, NULL);
    media_api_register(gw);
    *out = md;
    return 0;
}

void media_free(struct media *md)
{
    free(md);
}
