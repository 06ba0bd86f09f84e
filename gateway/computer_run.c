#include "computer_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rfb/keysym.h>

#include "browser.h"
#include "http.h"
#include "policy.h"
#include "recorder/keys.h"
#include "recorder/screenshot.h"
#include "recorder/vnc.h"
#include "run.h"
#include "util.h"

#define COMPUTER_DRAG_STEPS 12
#define COMPUTER_PRESS_MS 30
/* Chromium counts a press as the next click of a series when its X time
 * is within 500 ms of the one before, and as the same event again when
 * the two times are equal. Those times are stamped when the guest's X
 * server reads the events: a busy guest (or QEMU) that reads them late
 * reads two presses sent close together in one go, and one read late
 * pushes them apart. Presses 250 ms apart leave 250 ms either way. */
#define COMPUTER_CLICK_GAP_MS (250 - COMPUTER_PRESS_MS)
#define COMPUTER_COMBO_GAP_MS 30
/* Keys and the pointer are separate input devices in the guest, each with
 * its own queue: without a pause, a click can reach the page before the
 * modifier held for it, or after its release. */
#define COMPUTER_HOLD_SETTLE_MS 60
#define COMPUTER_SETTLE_QUIET_MS 150
#define COMPUTER_SETTLE_MAX_MS 2000
#define COMPUTER_GUEST_INPUT_TIMEOUT_S 60
/* The text comes on stdin; 40 ms between keys, as a fast typist. */
#define COMPUTER_GUEST_TYPE "xdotool type --delay 40 --file -"
#define COMPUTER_GUEST_REMAP_PAUSE_MS 500

/* One action's view of the session. */
struct target {
    struct vnc_client *vnc;           /* weak */
    struct vm *vm;                    /* weak */
    struct computer_pointer *pointer; /* weak */
};

static int pointer(const struct target *t, int x, int y, int buttons, struct ph_error *err)
{
    t->pointer->x = x;
    t->pointer->y = y;
    t->pointer->buttons = buttons;
    return vnc_client_pointer(t->vnc, x, y, buttons, err);
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

/* ---- input the VM's keyboard has no key for ------------------------------ */

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
    int r = vm_guest_run(vm, cmd, in, in_len, COMPUTER_GUEST_INPUT_TIMEOUT_S, &res, err);
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
            sleep_ms(COMPUTER_GUEST_REMAP_PAUSE_MS);
        r = guest_input(vm, ks, n, COMPUTER_GUEST_TYPE, text, len, err);
        if (r < 0)
            return r;
        start = end;
    }
    return 0;
}

static int combo_in_guest(struct vm *vm, const struct computer_combo *c, struct ph_error *err)
{
    /* xdotool reads keysyms in hex: "0xffe3+0x1000e9". */
    char tail[32 + COMPUTER_MAX_KEYS * 12] = "xdotool key ";
    uint32_t ks[COMPUTER_MAX_KEYS];
    size_t used = strlen(tail);
    int n = 0;

    for (int i = 0; i < c->n; i++) {
        if (keys_us_key(c->keys[i]) == KEYS_US_NONE && !keysym_in(ks, n, c->keys[i]))
            ks[n++] = c->keys[i];
        used +=
            (size_t)snprintf(tail + used, sizeof(tail) - used, "%s0x%x", i ? "+" : "", c->keys[i]);
    }
    return guest_input(vm, ks, n, tail, NULL, 0, err);
}

/* The guest's own idea of where the pointer is: it also knows about moves
 * made through the live view. */
static int cursor_in_guest(struct vm *vm, int *x, int *y, struct ph_error *err)
{
    struct run_result res = {0};
    int r = vm_guest_run(vm, "export DISPLAY=:0; xdotool getmouselocation --shell", NULL, 0,
                         COMPUTER_GUEST_INPUT_TIMEOUT_S, &res, err);
    if (r < 0)
        return r;
    const char *px = strstr(res.out, "X="), *py = strstr(res.out, "\nY=");
    if (!px || !py || sscanf(px, "X=%d", x) != 1 || sscanf(py, "\nY=%d", y) != 1)
        r = ph_error_set(err, PH_ERR_UNAVAILABLE, -EPROTO,
                         "the guest did not say where the pointer is");
    run_result_done(&res);
    return r;
}

/* ---- keys over VNC --------------------------------------------------------- */

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

static int combo_press(const struct target *t, const struct computer_combo *c, struct ph_error *err)
{
    /* A character that needs Shift ("A", "!", "ctrl+?") gets it, unless
     * the combination holds Shift already; but a letter beside Ctrl, Alt
     * or Super names its key ("CTRL+A" is select-all, as agents send
     * it), as on a keyboard's keycaps. */
    bool shifted = false, has_shift = false, has_mod = false;
    int r = 0;

    for (int i = 0; i < c->n; i++) {
        uint32_t k = c->keys[i];
        has_shift |= k == XK_Shift_L || k == XK_Shift_R;
        has_mod |= (k >= XK_Control_L && k <= XK_Hyper_R && k != XK_Shift_L && k != XK_Shift_R &&
                    k != XK_Caps_Lock && k != XK_Shift_Lock);
    }
    for (int i = 0; i < c->n; i++) {
        uint32_t k = c->keys[i];
        enum keys_us where = keys_us_key(k);
        if (where == KEYS_US_NONE)
            return combo_in_guest(t->vm, c, err);
        if (where == KEYS_US_SHIFTED && !(has_mod && k >= 'A' && k <= 'Z'))
            shifted = true;
    }
    bool add_shift = shifted && !has_shift;
    if (add_shift && (r = vnc_client_key(t->vnc, XK_Shift_L, true, err)) < 0)
        return r;
    /* QEMU picks the keysym's own shift level: "a" with Shift held would
     * come out as "a" again. xdotool's "shift+a" means "A". */
    uint32_t keys[COMPUTER_MAX_KEYS];
    for (int i = 0; i < c->n; i++)
        keys[i] =
            has_shift && c->keys[i] >= 'a' && c->keys[i] <= 'z' ? c->keys[i] - 32 : c->keys[i];
    for (int i = 0; i < c->n; i++)
        if ((r = vnc_client_key(t->vnc, keys[i], true, err)) < 0)
            return r;
    for (int i = c->n - 1; i >= 0; i--)
        if ((r = vnc_client_key(t->vnc, keys[i], false, err)) < 0)
            return r;
    if (add_shift)
        r = vnc_client_key(t->vnc, XK_Shift_L, false, err);
    return r;
}

/* Held keys go down before a pointer action and up after it, also when
 * the action failed half-way (a stuck modifier would spoil every later
 * action). */
static int hold(const struct target *t, const struct computer_combo *held, bool down,
                struct ph_error *err)
{
    int r = 0;
    if (held->n == 0)
        return 0;
    if (down) {
        for (int i = 0; i < held->n && r == 0; i++)
            r = vnc_client_key(t->vnc, held->keys[i], true, err);
        sleep_ms(COMPUTER_HOLD_SETTLE_MS);
        return r;
    }
    sleep_ms(COMPUTER_HOLD_SETTLE_MS);
    for (int i = held->n - 1; i >= 0; i--) {
        int k = vnc_client_key(t->vnc, held->keys[i], false, r < 0 ? NULL : err);
        if (k < 0 && r == 0)
            r = k;
    }
    return r;
}

/* ---- pointer actions ------------------------------------------------------- */

static int click(const struct target *t, const struct computer_action *a, int x, int y,
                 struct ph_error *err)
{
    int held = t->pointer->buttons, r;

    if ((r = pointer(t, x, y, held, err)) < 0)
        return r;
    if (a->button == COMPUTER_BUTTON_BACK || a->button == COMPUTER_BUTTON_FORWARD) {
        /* RFB has no side buttons; the browser's own keys do the same. */
        struct computer_combo c = {
            {XK_Alt_L, a->button == COMPUTER_BUTTON_BACK ? XK_Left : XK_Right}, 2};
        return combo_press(t, &c, err);
    }
    /* Gaps like a hand's: X clients count clicks from event times (see
     * COMPUTER_CLICK_GAP_MS). */
    for (int i = 0; i < a->clicks; i++) {
        if (i > 0)
            sleep_ms(COMPUTER_CLICK_GAP_MS);
        if ((r = pointer(t, x, y, held | a->button, err)) < 0)
            return r;
        sleep_ms(COMPUTER_PRESS_MS);
        if ((r = pointer(t, x, y, held, err)) < 0)
            return r;
    }
    return 0;
}

static int drag(const struct target *t, const struct computer_action *a, struct ph_error *err)
{
    struct computer_point path[COMPUTER_MAX_PATH + 1];
    int n = 0, held = t->pointer->buttons, r;

    if (a->from_here)
        path[n++] = (struct computer_point){t->pointer->x, t->pointer->y};
    for (int i = 0; i < a->n_path; i++)
        path[n++] = a->path[i];
    if ((r = pointer(t, path[0].x, path[0].y, held, err)) < 0 ||
        (r = pointer(t, path[0].x, path[0].y, held | a->button, err)) < 0)
        return r;
    /* Intermediate motion, so pages that track mousemove see a drag. */
    for (int s = 1; s < n; s++) {
        const struct computer_point *from = &path[s - 1], *to = &path[s];
        for (int k = 1; k <= COMPUTER_DRAG_STEPS; k++) {
            int x = from->x + (to->x - from->x) * k / COMPUTER_DRAG_STEPS;
            int y = from->y + (to->y - from->y) * k / COMPUTER_DRAG_STEPS;
            if ((r = pointer(t, x, y, held | a->button, err)) < 0)
                return r;
            sleep_ms(10);
        }
    }
    return pointer(t, path[n - 1].x, path[n - 1].y, held & ~a->button, err);
}

static int scroll(const struct target *t, const struct computer_action *a, int x, int y,
                  struct ph_error *err)
{
    int held = t->pointer->buttons, r;
    int steps_y = abs(a->scroll_y), steps_x = abs(a->scroll_x);
    int bit_y = a->scroll_y > 0 ? VNC_WHEEL_DOWN : VNC_WHEEL_UP;
    int bit_x = a->scroll_x > 0 ? VNC_WHEEL_RIGHT : VNC_WHEEL_LEFT;

    if ((r = pointer(t, x, y, held, err)) < 0)
        return r;
    for (int i = 0; i < steps_y; i++)
        if ((r = pointer(t, x, y, held | bit_y, err)) < 0 || (r = pointer(t, x, y, held, err)) < 0)
            return r;
    for (int i = 0; i < steps_x; i++)
        if ((r = pointer(t, x, y, held | bit_x, err)) < 0 || (r = pointer(t, x, y, held, err)) < 0)
            return r;
    return 0;
}

static int pointer_action(const struct target *t, const struct computer_action *a,
                          struct ph_error *err)
{
    /* Without a point, Anthropic's actions act where the pointer is. */
    int x = a->n_path ? a->path[0].x : t->pointer->x;
    int y = a->n_path ? a->path[0].y : t->pointer->y;
    int held = t->pointer->buttons;

    switch (a->kind) {
    case COMPUTER_MOVE:
        return pointer(t, x, y, held, err);
    case COMPUTER_CLICK:
        return click(t, a, x, y, err);
    case COMPUTER_DRAG:
        return drag(t, a, err);
    case COMPUTER_SCROLL:
        return scroll(t, a, x, y, err);
    case COMPUTER_MOUSE_DOWN:
        return pointer(t, x, y, held | a->button, err);
    case COMPUTER_MOUSE_UP:
        return pointer(t, x, y, held & ~a->button, err);
    default:
        return 0;
    }
}

int computer_run(struct vnc_client *vnc, struct vm *vm, struct computer_pointer *ptr,
                 const struct computer_action *a, struct ph_error *err)
{
    const struct target t = {vnc, vm, ptr};
    int r = 0;

    switch (a->kind) {
    case COMPUTER_SCREENSHOT:
        return 0;
    case COMPUTER_CURSOR_POSITION:
        if ((r = cursor_in_guest(vm, &ptr->x, &ptr->y, err)) < 0)
            return r;
        return 0;
    case COMPUTER_WAIT:
        sleep_ms(a->wait_ms);
        return 0;
    case COMPUTER_HOLD_KEY:
        if ((r = hold(&t, &a->held, true, err)) == 0)
            sleep_ms(a->wait_ms);
        {
            int k = hold(&t, &a->held, false, r < 0 ? NULL : err);
            return r < 0 ? r : k;
        }
    case COMPUTER_TYPE:
        for (int i = 0; i < a->n_text; i++)
            if (keys_us_key(keys_for_char(a->text[i])) == KEYS_US_NONE)
                return type_in_guest(vm, a, err);
        for (int i = 0; i < a->n_text; i++) {
            uint32_t ks = keys_for_char(a->text[i]);
            if ((r = key_tap(vnc, ks, keys_us_key(ks) == KEYS_US_SHIFTED, err)) < 0)
                return r;
        }
        return 0;
    case COMPUTER_KEY:
        for (int i = 0; i < a->n_combos; i++) {
            if (i > 0)
                sleep_ms(COMPUTER_COMBO_GAP_MS);
            if ((r = combo_press(&t, &a->combos[i], err)) < 0)
                return r;
        }
        return 0;
    case COMPUTER_MOVE:
    case COMPUTER_CLICK:
    case COMPUTER_DRAG:
    case COMPUTER_SCROLL:
    case COMPUTER_MOUSE_DOWN:
    case COMPUTER_MOUSE_UP:
        if ((r = hold(&t, &a->held, true, err)) == 0)
            r = pointer_action(&t, a, err);
        {
            int k = hold(&t, &a->held, false, r < 0 ? NULL : err);
            return r < 0 ? r : k;
        }
    }
    return 0;
}

/* ---- the API step ---------------------------------------------------------- */

static int query_int(struct http_req *req, const char *name, int *out, struct ph_error *err)
{
    const char *v = req ? http_query(req, name) : NULL;
    char *end;
    *out = 0;
    if (!v)
        return 0;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 0 || n > 16384)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "%s must be an integer 0..16384", name);
    *out = (int)n;
    return 0;
}

static bool query_true(struct http_req *req, const char *name)
{
    const char *v = req ? http_query(req, name) : NULL;
    return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

static int space_of(const struct computer_request *cr, int screen_w, int screen_h,
                    struct computer_space *sp, struct ph_error *err)
{
    const char *mode = cr->req ? http_query(cr->req, "display") : NULL;
    int dw, dh, r;

    if (mode && strcmp(mode, "auto") != 0 && strcmp(mode, "screen") != 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "display must be \"auto\" (XGA, WXGA or FWXGA, as Anthropic's "
                            "reference scales) or \"screen\"");
    if ((r = query_int(cr->req, "display_width", &dw, err)) < 0 ||
        (r = query_int(cr->req, "display_height", &dh, err)) < 0)
        return r;
    return computer_space_init(sp, screen_w, screen_h, dw, dh, mode && strcmp(mode, "auto") == 0,
                               err);
}

static json_t *size_json(int w, int h)
{
    return json_pack("{s:i, s:i}", "width", w, "height", h);
}

/* The screen as the model sees it: the display's size when scaled, else
 * bounded by max_w x max_h. */
static int screenshot_add(const struct computer_request *cr, const struct computer_space *sp,
                          json_t *reply, struct ph_error *err)
{
    uint8_t *rgba = NULL, *png = NULL;
    size_t len = 0;
    int w, h, r;
    bool scaled = sp->w != sp->screen_w || sp->h != sp->screen_h;

    if ((r = vnc_client_snapshot(cr->vnc, &rgba, &w, &h)) < 0)
        return ph_error_set(err, PH_ERR_UNAVAILABLE, r, "no picture from the screen");
    r = rec_png_encode(rgba, w, h, scaled ? sp->w : cr->max_w, scaled ? sp->h : cr->max_h, &png,
                       &len, err);
    free(rgba);
    if (r < 0)
        return r;
    _cleanup_free_ char *enc = base64_encode(png, len);
    free(png);
    if (!enc)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    json_object_set_new(reply, "screenshot_base64", json_string(enc));
    json_object_set_new(reply, "screenshot_mime_type", json_string("image/png"));
    return 0;
}

int computer_request_run(const struct computer_request *cr, json_t **reply, struct ph_error *err)
{
    _cleanup_free_ struct computer_action *a = calloc(1, sizeof(*a));
    struct computer_space sp;
    uint8_t *rgba = NULL;
    int w = 0, h = 0, r;
    char desc[256];

    *reply = NULL;
    if (!a)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    /* The screen's size now: it follows the session's viewport. */
    if (vnc_client_snapshot(cr->vnc, &rgba, &w, &h) < 0)
        return ph_error_set(err, PH_ERR_UNAVAILABLE, -EIO, "no screen");
    free(rgba);
    if ((r = space_of(cr, w, h, &sp, err)) < 0 || (r = computer_parse(cr->body, &sp, a, err)) < 0)
        return r;
    a->screenshot_after |= query_true(cr->req, "screenshot");

    computer_describe(a, desc, sizeof(desc));
    struct run_ctx ctx = {
        .vm_id = cr->vm_id, .command = desc, .shell = RUN_SHELL_RAW, .actor = cr->actor};
    /* Actions pass the same policy chain as commands. */
    if ((r = run_hooks_check(cr->global_hooks, cr->vm_hooks, &ctx, err)) < 0) {
        policy_audit_blocked(cr->policy, &ctx, err->message);
        return r;
    }
    int64_t start = now_ms();
    r = computer_run(cr->vnc, cr->vm, cr->pointer, a, err);
    policy_audit_event(cr->policy, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s?}", "event", "computer",
                                             "vm_id", cr->vm_id, "actor", cr->actor, "command",
                                             desc, "duration_ms", (json_int_t)(now_ms() - start),
                                             "error", r < 0 ? err->message : NULL));
    if (r < 0)
        return r;

    int cx = cr->pointer->x, cy = cr->pointer->y;
    computer_space_from_screen(&sp, &cx, &cy);
    json_t *o = json_pack("{s:b, s:s, s:{s:i, s:i}, s:o, s:o}", "ok", 1, "action", a->name,
                          "cursor", "x", cx, "y", cy, "display", size_json(sp.w, sp.h), "screen",
                          size_json(sp.screen_w, sp.screen_h));
    if (!o)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if (a->kind == COMPUTER_CURSOR_POSITION) {
        char out[48];
        snprintf(out, sizeof(out), "X=%d,Y=%d", cx, cy);
        json_object_set_new(o, "output", json_string(out));
    }
    if (a->screenshot_after) {
        /* The picture once the screen has reacted: no change for a moment
         * (or a bounded wait for a screen that keeps moving). */
        if (a->kind != COMPUTER_SCREENSHOT)
            vnc_client_settle(cr->vnc, COMPUTER_SETTLE_QUIET_MS, COMPUTER_SETTLE_MAX_MS);
        if ((r = screenshot_add(cr, &sp, o, err)) < 0) {
            json_decref(o);
            return r;
        }
    }
    *reply = o;
    return 0;
}
