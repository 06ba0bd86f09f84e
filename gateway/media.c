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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rfb/keysym.h>

#include "browser.h"
#include "computer.h"
#include "gateway.h"
#include "recorder/keys.h"
#include "recorder/recording.h"
#include "recorder/screenshot.h"
#include "util.h"
#include "recorder/vnc.h"

#define MEDIA_VNC_TIMEOUT_MS 20000
#define MEDIA_DRAG_STEPS 12
#define MEDIA_PRESS_MS 30
#define MEDIA_CLICK_GAP_MS 80
#define MEDIA_SETTLE_QUIET_MS 150
#define MEDIA_SETTLE_MAX_MS 2000
#define MEDIA_GUEST_INPUT_TIMEOUT_S 60
/* The text comes on stdin; 40 ms between keys, as a fast typist. */
#define MEDIA_GUEST_TYPE "xdotool type --delay 40 --file -"
#define MEDIA_GUEST_REMAP_PAUSE_MS 500

struct session_media {
    pthread_mutex_t lock;
    struct vnc_client *vnc;    /* owned, NULL until first use */
    struct rec_recording *rec; /* owned: the active recording, or NULL */
    char rec_id[40];
    char rec_meta[600]; /* sidecar path of the active recording */
    int buttons;        /* pointer buttons held down */
    int px, py;         /* last pointer position */
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
    if (vm->vnc_port <= 0) {
        ph_error_set(err, PH_ERR_CONFLICT, -ENOTSUP, "this session has no screen");
        return NULL;
    }
    if (vnc_client_new("127.0.0.1", vm->vnc_port, MEDIA_VNC_TIMEOUT_MS, &m->vnc, err) < 0)
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

static int rec_meta_save(const char *path, json_t *meta)
{
    _cleanup_free_ char *text = json_dumps(meta, JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    return write_file_atomic(path, text, strlen(text), 0600);
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
    return json_pack(
        "{s:s, s:s, s:s, s:I, s:o, s:o, s:b}", "id", id, "session_id", session_id, "url", url,
        "bytes", (json_int_t)(stat(path, &st) == 0 ? st.st_size : 0), "started_at",
        time_or_null(json_integer_value(json_object_get(meta, "started_ms"))), "ended_at",
        time_or_null(json_integer_value(json_object_get(meta, "ended_ms"))), "active",
        json_integer_value(json_object_get(meta, "ended_ms")) == 0);
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
        return -ENOMEM;
    if ((r = mkdir_p(dir, 0700)) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, r, "cannot create %s", dir);
    snprintf(mp4, sizeof(mp4), "%s/%s.mp4", dir, id);
    snprintf(m->rec_meta, sizeof(m->rec_meta), "%s/%s.json", dir, id);
    r = rec_recording_start(vnc, mp4, gw->recording_fps, &m->rec, err);
    if (r < 0)
        return r;
    snprintf(m->rec_id, sizeof(m->rec_id), "%s", id);
    json_t *meta =
        json_pack("{s:s, s:s, s:I, s:I, s:i}", "id", id, "session_id", sb->id, "started_ms",
                  (json_int_t)wall_ms(), "ended_ms", (json_int_t)0, "fps", gw->recording_fps);
    rec_meta_save(m->rec_meta, meta);
    if (out)
        *out = rec_public(gw, sb->id, meta);
    json_decref(meta);
    return 0;
}

/* Lock held. Finalizes the active recording (file index first). */
static int media_rec_stop(struct gateway *gw, struct instance *sb, struct session_media *m,
                          json_t **out, struct ph_error *err)
{
    struct ph_error e = {0};
    int r;

    if (!m->rec)
        return ph_error_set(err, PH_ERR_CONFLICT, -EINVAL, "no recording is running");
    r = rec_recording_stop(m->rec, &e);
    json_t *meta = rec_meta_load(m->rec_meta);
    if (meta) {
        json_object_set_new(meta, "ended_ms", json_integer(wall_ms()));
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
    m->rec_id[0] = '\0';
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
        media_rec_stop(md->gw, in, m, NULL, NULL);
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

static int pointer(struct session_media *m, int x, int y, int buttons, struct ph_error *err)
{
    m->px = x;
    m->py = y;
    m->buttons = buttons;
    return vnc_client_pointer(m->vnc, x, y, buttons, err);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* What the VM's US keyboard has no key for is typed in the guest: xmodmap
 * lends each such keysym a keycode the guest's keyboard map ("us", evdev
 * keycodes) leaves empty, on both shift levels so case is kept, and xdotool
 * then presses those keys through XTEST. The loan stays after the action:
 * a browser that reads the key map late still finds the keysym there
 * (xdotool's own borrow-and-return loses characters that way). The whole
 * action goes this way, so its keys cannot overtake each other. */
static const int spare_keycodes[] = {93,  97,  103, 120, 132, 149, 154, 168, 178,
                                     183, 184, 197, 202, 217, 219, 222, 230, 248};
#define SPARE_KEYCODES ((int)(sizeof(spare_keycodes) / sizeof(spare_keycodes[0])))

/* Builds "xmodmap -e 'keycode K = 0xKS 0xKS' ... && TAIL" for the keysyms
 * ks[0..n) (n <= SPARE_KEYCODES, distinct, none on the US keyboard). */
static char *guest_input_command(const uint32_t *ks, int n, const char *tail)
{
    size_t cap = 128 + (size_t)n * 48 + strlen(tail), used;
    char *cmd = malloc(cap);
    if (!cmd)
        return NULL;
    used = (size_t)snprintf(cmd, cap, "export DISPLAY=:0 LC_ALL=C.UTF-8; xmodmap");
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(cmd + used, cap - used, " -e 'keycode %d = 0x%x 0x%x'",
                                 spare_keycodes[i], ks[i], ks[i]);
    snprintf(cmd + used, cap - used, " && %s", tail);
    return cmd;
}

static int guest_input(struct vm *vm, const uint32_t *ks, int n, const char *tail, const char *in,
                       size_t in_len, struct ph_error *err)
{
    struct run_result res = {0};
    _cleanup_free_ char *cmd = guest_input_command(ks, n, tail);
    if (!cmd)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    int r = vm_guest_run(vm, cmd, in, in_len, MEDIA_GUEST_INPUT_TIMEOUT_S, &res, err);
    if (r == 0)
        run_result_done(&res);
    return r;
}

static bool keysym_in(const uint32_t *ks, int n, uint32_t k)
{
    for (int i = 0; i < n; i++)
        if (ks[i] == k)
            return true;
    return false;
}

/* Text in pieces that need at most SPARE_KEYCODES keycodes each; a pause
 * between pieces lets the browser take the keys before they are lent to
 * other characters. */
static int type_in_guest(struct vm *vm, const struct computer_action *a, struct ph_error *err)
{
    _cleanup_free_ char *text = malloc((size_t)a->n_text * 4 + 1);
    uint32_t ks[SPARE_KEYCODES];
    int start = 0;

    if (!text)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    while (start < a->n_text) {
        int n = 0, end = start, r;
        size_t len = 0;
        for (; end < a->n_text; end++) {
            uint32_t k = keys_for_char(a->text[end]);
            if (keys_us_key(k) == KEYS_US_NONE && !keysym_in(ks, n, k)) {
                if (n == SPARE_KEYCODES)
                    break;
                ks[n++] = k;
            }
            len += utf8_put(a->text[end], text + len);
        }
        if (start > 0)
            sleep_ms(MEDIA_GUEST_REMAP_PAUSE_MS);
        r = guest_input(vm, ks, n, MEDIA_GUEST_TYPE, text, len, err);
        if (r < 0)
            return r;
        start = end;
    }
    return 0;
}

static int key_in_guest(struct vm *vm, const struct computer_action *a, struct ph_error *err)
{
    /* xdotool reads keysyms in hex: "0xffe3+0x1000e9". */
    char tail[32 + COMPUTER_MAX_KEYS * 12] = "xdotool key ";
    uint32_t ks[COMPUTER_MAX_KEYS];
    size_t used = strlen(tail);
    int n = 0;

    for (int i = 0; i < a->n_keys; i++) {
        if (keys_us_key(a->keys[i]) == KEYS_US_NONE && !keysym_in(ks, n, a->keys[i]))
            ks[n++] = a->keys[i];
        used +=
            (size_t)snprintf(tail + used, sizeof(tail) - used, "%s0x%x", i ? "+" : "", a->keys[i]);
    }
    return guest_input(vm, ks, n, tail, NULL, 0, err);
}

static int key_tap(struct vnc_client *vnc, uint32_t keysym, bool shift, struct ph_error *err)
{
    int r = 0;
    if (shift && (r = vnc_client_key(vnc, XK_Shift_L, true, err)) < 0)
        return r;
    if ((r = vnc_client_key(vnc, keysym, true, err)) == 0)
        r = vnc_client_key(vnc, keysym, false, err);
    if (shift && r == 0)
        r = vnc_client_key(vnc, XK_Shift_L, false, err);
    return r;
}

static int computer_run(struct session_media *m, struct vm *vm, const struct computer_action *a,
                        struct ph_error *err)
{
    int r = 0;
    const struct computer_point *p = &a->path[0];

    switch (a->kind) {
    case COMPUTER_SCREENSHOT:
        return 0;
    case COMPUTER_WAIT:
        sleep_ms(a->wait_ms);
        return 0;
    case COMPUTER_MOVE:
        return pointer(m, p->x, p->y, 0, err);
    case COMPUTER_CLICK:
        if ((r = pointer(m, p->x, p->y, 0, err)) < 0)
            return r;
        /* Gaps like a hand's: X clients count clicks from event times,
         * and a press and release in the same instant can be taken for a
         * bounce rather than a second click. */
        for (int i = 0; i < a->clicks; i++) {
            if (i > 0)
                sleep_ms(MEDIA_CLICK_GAP_MS);
            if ((r = pointer(m, p->x, p->y, a->button, err)) < 0)
                return r;
            sleep_ms(MEDIA_PRESS_MS);
            if ((r = pointer(m, p->x, p->y, 0, err)) < 0)
                return r;
        }
        return 0;
    case COMPUTER_DRAG:
        if ((r = pointer(m, p->x, p->y, 0, err)) < 0 ||
            (r = pointer(m, p->x, p->y, a->button, err)) < 0)
            return r;
        /* Intermediate motion, so pages that track mousemove see a drag. */
        for (int s = 1; s < a->n_path; s++) {
            const struct computer_point *from = &a->path[s - 1], *to = &a->path[s];
            for (int k = 1; k <= MEDIA_DRAG_STEPS; k++) {
                int x = from->x + (to->x - from->x) * k / MEDIA_DRAG_STEPS;
                int y = from->y + (to->y - from->y) * k / MEDIA_DRAG_STEPS;
                if ((r = pointer(m, x, y, a->button, err)) < 0)
                    return r;
                sleep_ms(10);
            }
        }
        p = &a->path[a->n_path - 1];
        return pointer(m, p->x, p->y, 0, err);
    case COMPUTER_SCROLL: {
        if ((r = pointer(m, p->x, p->y, 0, err)) < 0)
            return r;
        int steps_y = abs(a->scroll_y), steps_x = abs(a->scroll_x);
        int bit_y = a->scroll_y > 0 ? VNC_WHEEL_DOWN : VNC_WHEEL_UP;
        int bit_x = a->scroll_x > 0 ? VNC_WHEEL_RIGHT : VNC_WHEEL_LEFT;
        for (int i = 0; i < steps_y; i++)
            if ((r = pointer(m, p->x, p->y, bit_y, err)) < 0 ||
                (r = pointer(m, p->x, p->y, 0, err)) < 0)
                return r;
        for (int i = 0; i < steps_x; i++)
            if ((r = pointer(m, p->x, p->y, bit_x, err)) < 0 ||
                (r = pointer(m, p->x, p->y, 0, err)) < 0)
                return r;
        return 0;
    }
    case COMPUTER_TYPE:
        for (int i = 0; i < a->n_text; i++)
            if (keys_us_key(keys_for_char(a->text[i])) == KEYS_US_NONE)
                return type_in_guest(vm, a, err);
        for (int i = 0; i < a->n_text; i++) {
            uint32_t ks = keys_for_char(a->text[i]);
            if ((r = key_tap(m->vnc, ks, keys_us_key(ks) == KEYS_US_SHIFTED, err)) < 0)
                return r;
        }
        return 0;
    case COMPUTER_KEY: {
        /* A character that needs Shift ("A", "!", "ctrl+?") gets it, unless
         * the combination holds Shift already; but a letter beside Ctrl, Alt
         * or Super names its key ("CTRL+A" is select-all, as agents send
         * it), as on a keyboard's keycaps. */
        bool shifted = false, has_shift = false, has_mod = false;
        for (int i = 0; i < a->n_keys; i++) {
            uint32_t k = a->keys[i];
            has_shift |= k == XK_Shift_L || k == XK_Shift_R;
            has_mod |= (k >= XK_Control_L && k <= XK_Hyper_R && k != XK_Shift_L &&
                        k != XK_Shift_R && k != XK_Caps_Lock && k != XK_Shift_Lock);
        }
        for (int i = 0; i < a->n_keys; i++) {
            uint32_t k = a->keys[i];
            enum keys_us where = keys_us_key(k);
            if (where == KEYS_US_NONE)
                return key_in_guest(vm, a, err);
            if (where == KEYS_US_SHIFTED && !(has_mod && k >= 'A' && k <= 'Z'))
                shifted = true;
        }
        bool add_shift = shifted && !has_shift;
        if (add_shift && (r = vnc_client_key(m->vnc, XK_Shift_L, true, err)) < 0)
            return r;
        for (int i = 0; i < a->n_keys; i++)
            if ((r = vnc_client_key(m->vnc, a->keys[i], true, err)) < 0)
                return r;
        for (int i = a->n_keys - 1; i >= 0; i--)
            if ((r = vnc_client_key(m->vnc, a->keys[i], false, err)) < 0)
                return r;
        if (add_shift)
            r = vnc_client_key(m->vnc, XK_Shift_L, false, err);
        return r;
    }
    }
    return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const uint8_t *in, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? b64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static void media_computer(struct media_job *j, struct session_media *m)
{
    struct computer_action *a = calloc(1, sizeof(*a));
    uint8_t *rgba = NULL;
    int w = 0, h = 0;
    char desc[256], actor[80];

    if (!a) {
        j->r = -ENOMEM;
        return;
    }
    if (!media_vnc(m, j->vm, &j->err) || vnc_client_snapshot(m->vnc, &rgba, &w, &h) < 0) {
        j->r = j->err.kind ? -EIO : ph_error_set(&j->err, PH_ERR_UNAVAILABLE, -EIO, "no screen");
        goto out;
    }
    free(rgba);
    j->r = computer_parse(j->body, w, h, a, &j->err);
    if (j->r < 0)
        goto out;
    computer_describe(a, desc, sizeof(desc));
    snprintf(actor, sizeof(actor), "%s", j->req->actor);
    struct run_ctx ctx = {
        .vm_id = j->sb->id, .command = desc, .shell = RUN_SHELL_RAW, .actor = actor};
    /* Actions pass the same policy chain as commands. */
    j->r = run_hooks_check(j->gw->hooks, j->sb->hooks, &ctx, &j->err);
    if (j->r < 0) {
        policy_audit_blocked(j->gw->policy, &ctx, j->err.message);
        goto out;
    }
    int64_t start = now_ms();
    j->r = computer_run(m, j->vm, a, &j->err);
    policy_audit_event(j->gw->policy,
                       json_pack("{s:s, s:s, s:s, s:s, s:I, s:s?}", "event", "computer", "vm_id",
                                 j->sb->id, "actor", actor, "command", desc, "duration_ms",
                                 (json_int_t)(now_ms() - start), "error",
                                 j->r < 0 ? j->err.message : NULL));
    if (j->r < 0)
        goto out;
    j->reply = json_pack("{s:b, s:s, s:{s:i, s:i}}", "ok", 1, "action", a->name, "cursor", "x",
                         m->px, "y", m->py);
    if (a->screenshot_after) {
        /* The picture once the screen has reacted: no change for a moment
         * (or a bounded wait for a screen that keeps moving). */
        if (a->kind != COMPUTER_SCREENSHOT)
            vnc_client_settle(m->vnc, MEDIA_SETTLE_QUIET_MS, MEDIA_SETTLE_MAX_MS);
        uint8_t *png = NULL;
        size_t len = 0;
        j->r = media_screenshot_locked(m, j->vm, j->max_w, j->max_h, &png, &len, &j->err);
        if (j->r == 0) {
            char *enc = base64_encode(png, len);
            json_object_set_new(j->reply, "screenshot_base64", json_string(enc ? enc : ""));
            json_object_set_new(j->reply, "screenshot_mime_type", json_string("image/png"));
            free(enc);
            free(png);
        }
    }
out:
    free(a);
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
            j->r = media_rec_stop(j->gw, j->sb, m, &j->reply, &j->err);
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
    if (b && b->media && strcmp(b->media->rec_id, req->params[1]) == 0) {
        http_reply_errorf(req, PH_ERR_CONFLICT, "recording %s is running; stop it first",
                          req->params[1]);
        return;
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

void media_sweep(struct media *md)
{
    struct gateway *gw = md->gw;
    _cleanup_free_ char *root = NULL;
    DIR *top;
    struct dirent *s;
    int64_t cutoff;

    if (gw->recording_retention_hours <= 0 || ++md->sweep_ticks % 60 != 0)
        return;
    cutoff = wall_ms() - (int64_t)gw->recording_retention_hours * 3600 * 1000;
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
            if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            json_t *meta = rec_meta_load(path);
            int64_t ended = meta ? json_integer_value(json_object_get(meta, "ended_ms")) : 0;
            json_decref(meta);
            if (ended <= 0 || ended > cutoff)
                continue;
            snprintf(mp4, sizeof(mp4), "%.*s.mp4", (int)(strlen(path) - 5), path);
            unlink(mp4);
            unlink(path);
            lwsl_user("recording %s expired (retention %d h)\n", path,
                      gw->recording_retention_hours);
        }
        closedir(d);
        rmdir(dir); /* only succeeds once empty */
    }
    closedir(top);
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
    media_api_register(gw);
    *out = md;
    return 0;
}

void media_free(struct media *md)
{
    free(md);
}
