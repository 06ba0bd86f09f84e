#include "computer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "recorder/keys.h"
#include "recorder/vnc.h"

/* ---- the model's coordinate space -------------------------------------- */

static int scaled(int v, int num, int den)
{
    return (int)(((int64_t)v * num + den / 2) / den);
}

int computer_space_init(struct computer_space *sp, int sw, int sh, int want_w, int want_h,
                        bool automatic, struct ph_error *err)
{
    static const struct {
        int w, h;
    } targets[] = {{1024, 768}, {1280, 800}, {1366, 768}};

    *sp = (struct computer_space){sw, sh, sw, sh};
    if (sw < 1 || sh < 1)
        return ph_error_set(err, PH_ERR_UNAVAILABLE, -EINVAL, "the screen is %dx%d", sw, sh);
    if (automatic) {
        double ratio = (double)sw / sh;
        for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
            if (fabs((double)targets[i].w / targets[i].h - ratio) >= 0.02)
                continue;
            /* Anthropic's reference compares widths only; within 0.02 of
             * the ratio the height can still be more than the screen's
             * (1280x800 on 1289x799): a display larger than the screen,
             * which no size asked for can be. */
            if (targets[i].w < sw && targets[i].h <= sh) {
                sp->w = targets[i].w;
                sp->h = targets[i].h;
            }
            break;
        }
        return 0;
    }
    if (want_w == 0 && want_h == 0)
        return 0;
    if (want_w < 0 || want_h < 0 || (want_w && want_w < COMPUTER_MIN_DISPLAY) ||
        (want_h && want_h < COMPUTER_MIN_DISPLAY) || want_w > sw || want_h > sh)
        return ph_error_set(err, PH_ERR_INVALID, -ERANGE,
                            "display_width x display_height (%dx%d) must be at least %d pixels a "
                            "side and at most the %dx%d screen",
                            want_w, want_h, COMPUTER_MIN_DISPLAY, sw, sh);
    int w = want_w ? want_w : scaled(want_h, sw, sh);
    int h = want_h ? want_h : scaled(want_w, sh, sw);
    /* A screenshot squeezed into another aspect ratio would mislead the
     * model about shapes; tell the caller the size that fits instead. */
    if (abs(scaled(w, sh, sw) - h) > 1)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "display_width x display_height (%dx%d) does not have the aspect "
                            "ratio of the %dx%d screen (%dx%d would)",
                            w, h, sw, sh, w, scaled(w, sh, sw));
    sp->w = w;
    sp->h = h;
    return 0;
}

void computer_space_to_screen(const struct computer_space *sp, int *x, int *y)
{
    *x = scaled(*x, sp->screen_w, sp->w);
    *y = scaled(*y, sp->screen_h, sp->h);
    if (*x >= sp->screen_w)
        *x = sp->screen_w - 1;
    if (*y >= sp->screen_h)
        *y = sp->screen_h - 1;
}

void computer_space_from_screen(const struct computer_space *sp, int *x, int *y)
{
    *x = scaled(*x, sp->w, sp->screen_w);
    *y = scaled(*y, sp->h, sp->screen_h);
    if (*x >= sp->w)
        *x = sp->w - 1;
    if (*y >= sp->h)
        *y = sp->h - 1;
}

/* ---- fields ------------------------------------------------------------- */

/* One action object being parsed. Messages name fields as the client
 * wrote them: "action.x" when OpenAI's action came wrapped. */
struct fields {
    json_t *obj;
    const char *prefix;
    const struct computer_space *sp;
    struct ph_error *err;
};

static json_t *field(const struct fields *f, const char *name)
{
    json_t *v = json_object_get(f->obj, name);
    return json_is_null(v) ? NULL : v;
}

static bool integral(json_t *v, json_int_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    /* Some clients send 512.0 for 512. */
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 1e9) {
            *out = (json_int_t)d;
            return true;
        }
    }
    return false;
}

static int field_int(const struct fields *f, const char *name, int def, int min, int max, int *out)
{
    json_t *v = field(f, name);
    json_int_t n;
    if (!v) {
        *out = def;
        return 0;
    }
    if (!integral(v, &n))
        return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL, "%s%s must be an integer", f->prefix,
                            name);
    if (n < min || n > max)
        return ph_error_set(f->err, PH_ERR_INVALID, -ERANGE, "%s%s must be between %d and %d",
                            f->prefix, name, min, max);
    *out = (int)n;
    return 0;
}

/* A point in the model's space, checked against it and mapped to the
 * screen. what names it in messages: "(x, y)" or "coordinate". */
static int point_check(const struct fields *f, const char *what, json_int_t x, json_int_t y,
                       struct computer_point *p)
{
    if (x < 0 || x >= f->sp->w || y < 0 || y >= f->sp->h)
        return ph_error_set(f->err, PH_ERR_INVALID, -ERANGE,
                            "%s%s = (%lld, %lld) is outside the %dx%d %s", f->prefix, what,
                            (long long)x, (long long)y, f->sp->w, f->sp->h,
                            f->sp->w == f->sp->screen_w ? "screen" : "display");
    p->x = (int)x;
    p->y = (int)y;
    computer_space_to_screen(f->sp, &p->x, &p->y);
    return 0;
}

static int point_xy(const struct fields *f, const char *xf, const char *yf,
                    struct computer_point *p)
{
    json_int_t x, y;
    char what[48];
    if (!integral(field(f, xf), &x) || !integral(field(f, yf), &y))
        return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL, "%s%s and %s%s must be integers",
                            f->prefix, xf, f->prefix, yf);
    snprintf(what, sizeof(what), "(%s, %s)", xf, yf);
    return point_check(f, what, x, y, p);
}

/* Anthropic's "coordinate": [x, y]. */
static int point_array(const struct fields *f, const char *name, struct computer_point *p)
{
    json_t *v = field(f, name);
    json_int_t x, y;
    if (!json_is_array(v) || json_array_size(v) != 2 || !integral(json_array_get(v, 0), &x) ||
        !integral(json_array_get(v, 1), &y))
        return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL, "%s%s must be [x, y], two integers",
                            f->prefix, name);
    return point_check(f, name, x, y, p);
}

/* The point of a pointer action: "coordinate" or "x"/"y". Returns 1 when
 * there is one, 0 when neither is given and optional, < 0 on error. */
static int point_of(const struct fields *f, bool optional, struct computer_point *p)
{
    int r;
    if (field(f, "coordinate"))
        r = point_array(f, "coordinate", p);
    else if (field(f, "x") || field(f, "y") || !optional)
        r = point_xy(f, "x", "y", p);
    else
        return 0;
    return r < 0 ? r : 1;
}

static int button_of(const struct fields *f, bool openai, int *button)
{
    json_t *v = field(f, "button");
    const char *b = json_is_string(v) ? json_string_value(v) : v ? NULL : "left";
    if (b && strcmp(b, "left") == 0)
        *button = VNC_BUTTON_LEFT;
    else if (b && strcmp(b, "right") == 0)
        *button = VNC_BUTTON_RIGHT;
    else if (b && (strcmp(b, "middle") == 0 || strcmp(b, "wheel") == 0))
        *button = VNC_BUTTON_MIDDLE;
    else if (b && openai && strcmp(b, "back") == 0)
        *button = COMPUTER_BUTTON_BACK;
    else if (b && openai && strcmp(b, "forward") == 0)
        *button = COMPUTER_BUTTON_FORWARD;
    else
        return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL, "%sbutton must be %s", f->prefix,
                            openai ? "\"left\", \"right\", \"wheel\", \"back\" or \"forward\""
                                   : "\"left\", \"right\" or \"middle\"");
    return 0;
}

/* Decodes UTF-8 (already validated by jansson) into code points. */
static int utf8_decode(const char *s, size_t len, uint32_t *out, int max)
{
    int n = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        int extra;
        if (c < 0x80) {
            cp = c;
            extra = 0;
        } else if (c < 0xe0) {
            cp = c & 0x1f;
            extra = 1;
        } else if (c < 0xf0) {
            cp = c & 0x0f;
            extra = 2;
        } else {
            cp = c & 0x07;
            extra = 3;
        }
        if (extra && i + (size_t)extra >= len)
            return -EINVAL;
        for (int k = 1; k <= extra; k++)
            cp = (cp << 6) | ((unsigned char)s[i + (size_t)k] & 0x3f);
        i += (size_t)extra + 1;
        if (n >= max)
            return -E2BIG;
        out[n++] = cp;
    }
    return n;
}

/* One combination ("ctrl+shift+t", "CTRL") appended to c. */
static int combo_add(const struct fields *f, const char *what, const char *s, size_t len,
                     struct computer_combo *c)
{
    char name[128];
    uint32_t ks[COMPUTER_MAX_KEYS];
    struct ph_error kerr = {0};

    if (len >= sizeof(name))
        return ph_error_set(f->err, PH_ERR_INVALID, -E2BIG, "%s%s: key name too long", f->prefix,
                            what);
    memcpy(name, s, len);
    name[len] = '\0';
    int n = keys_parse(name, ks, COMPUTER_MAX_KEYS, &kerr);
    if (n < 0)
        return ph_error_set(f->err, PH_ERR_INVALID, n, "%s%s: %s", f->prefix, what, kerr.message);
    for (int i = 0; i < n; i++) {
        if (c->n >= COMPUTER_MAX_KEYS)
            return ph_error_set(f->err, PH_ERR_INVALID, -E2BIG, "%s%s: at most %d keys at once",
                                f->prefix, what, COMPUTER_MAX_KEYS);
        c->keys[c->n++] = ks[i];
    }
    return 0;
}

/* xdotool's key syntax: combinations separated by spaces, pressed one after
 * another ("ctrl+a Delete"). */
static int combos_of_string(const struct fields *f, const char *what, const char *s,
                            struct computer_combo *out, int max, int *n_out)
{
    int n = 0, r;
    for (const char *p = s;;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, " ");
        if (n >= max)
            return ph_error_set(f->err, PH_ERR_INVALID, -E2BIG, "%s%s: at most %d key combinations",
                                f->prefix, what, max);
        out[n] = (struct computer_combo){0};
        if ((r = combo_add(f, what, p, len, &out[n])) < 0)
            return r;
        n++;
        p += len;
    }
    if (n == 0)
        return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL, "%s%s: empty key combination",
                            f->prefix, what);
    *n_out = n;
    return 0;
}

/* OpenAI's ["CTRL", "L"]: keys pressed together. */
static int combo_of_array(const struct fields *f, const char *name, json_t *arr,
                          struct computer_combo *c)
{
    size_t i;
    json_t *k;
    char what[48];

    *c = (struct computer_combo){0};
    if (json_array_size(arr) == 0)
        return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL, "%s%s must not be empty", f->prefix,
                            name);
    json_array_foreach(arr, i, k)
    {
        snprintf(what, sizeof(what), "%s[%zu]", name, i);
        if (!json_is_string(k))
            return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL, "%s%s must be a string", f->prefix,
                                what);
        int r = combo_add(f, what, json_string_value(k), json_string_length(k), c);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Keys held down through a pointer action: Anthropic's "text" ("shift",
 * "ctrl+shift"), OpenAI's "keys" (["SHIFT"]). Only keys of the VM's
 * keyboard can be held; the guest has no way to hold the others. */
static int held_of(const struct fields *f, const char *name, struct computer_combo *held)
{
    json_t *v = field(f, name);
    struct computer_combo seq[COMPUTER_MAX_COMBOS];
    int n = 0, r;

    *held = (struct computer_combo){0};
    if (!v)
        return 0;
    if (json_is_array(v)) {
        if ((r = combo_of_array(f, name, v, held)) < 0)
            return r;
    } else if (json_is_string(v)) {
        if ((r = combos_of_string(f, name, json_string_value(v), seq, COMPUTER_MAX_COMBOS, &n)) < 0)
            return r;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < seq[i].n; k++) {
                if (held->n >= COMPUTER_MAX_KEYS)
                    return ph_error_set(f->err, PH_ERR_INVALID, -E2BIG,
                                        "%s%s: at most %d keys at once", f->prefix, name,
                                        COMPUTER_MAX_KEYS);
                held->keys[held->n++] = seq[i].keys[k];
            }
    } else {
        return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                            "%s%s must name the keys to hold, such as \"shift\"", f->prefix, name);
    }
    for (int i = 0; i < held->n; i++)
        if (keys_us_key(held->keys[i]) == KEYS_US_NONE)
            return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                                "%s%s: key 0x%x cannot be held (not on the VM's US keyboard)",
                                f->prefix, name, held->keys[i]);
    return 0;
}

static int text_of(const struct fields *f, struct computer_action *a)
{
    json_t *t = field(f, "text");
    if (!json_is_string(t) || json_string_length(t) == 0)
        return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL, "%stext must be a non-empty string",
                            f->prefix);
    int n = utf8_decode(json_string_value(t), json_string_length(t), a->text, COMPUTER_MAX_TEXT);
    if (n < 0)
        return ph_error_set(f->err, PH_ERR_INVALID, -E2BIG, "%stext must be at most %d characters",
                            f->prefix, COMPUTER_MAX_TEXT);
    for (int i = 0; i < n; i++)
        if (!keys_for_char(a->text[i]))
            return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                                "%stext[%d]: character U+%04X cannot be typed", f->prefix, i,
                                (unsigned)a->text[i]);
    a->n_text = n;
    return 0;
}

/* Anthropic's "duration": seconds, a number. */
static int seconds_of(const struct fields *f, bool required, int def_ms, int *ms)
{
    json_t *v = field(f, "duration");
    if (!v) {
        if (required)
            return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL, "%sduration is required (seconds)",
                                f->prefix);
        *ms = def_ms;
        return 0;
    }
    double s = json_number_value(v);
    if (!json_is_number(v) || s < 0 || s * 1000 > COMPUTER_MAX_WAIT_MS)
        return ph_error_set(f->err, PH_ERR_INVALID, -ERANGE,
                            "%sduration must be a number of seconds between 0 and %d", f->prefix,
                            COMPUTER_MAX_WAIT_MS / 1000);
    *ms = (int)lround(s * 1000);
    return 0;
}

static int path_of(const struct fields *f, json_t *path, struct computer_action *a)
{
    size_t i;
    json_t *pt;

    if (!json_is_array(path) || json_array_size(path) < 2 ||
        json_array_size(path) > COMPUTER_MAX_PATH)
        return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                            "%spath must be an array of 2..%d points {x, y}", f->prefix,
                            COMPUTER_MAX_PATH);
    json_array_foreach(path, i, pt)
    {
        struct fields pf = *f;
        char prefix[48];
        snprintf(prefix, sizeof(prefix), "%spath[%zu].", f->prefix, i);
        pf.obj = pt;
        pf.prefix = prefix;
        if (!json_is_object(pt))
            return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL, "%spath[%zu] must be {x, y}",
                                f->prefix, i);
        int r = point_xy(&pf, "x", "y", &a->path[i]);
        if (r < 0)
            return r;
    }
    a->n_path = (int)json_array_size(path);
    return 0;
}

/* Pixels to wheel steps, at least one for any movement. */
static int px_to_steps(int px)
{
    int steps = (abs(px) + COMPUTER_PX_PER_STEP / 2) / COMPUTER_PX_PER_STEP;
    if (px != 0 && steps == 0)
        steps = 1;
    return px < 0 ? -steps : steps;
}

/* ---- OpenAI's computer_call.action --------------------------------------- */

static int parse_openai(const struct fields *f, const char *type, struct computer_action *a)
{
    int r;

    a->openai = true;
    snprintf(a->name, sizeof(a->name), "%s", type);
    if (strcmp(type, "screenshot") == 0) {
        a->kind = COMPUTER_SCREENSHOT;
        a->screenshot_after = true;
        return 0;
    }
    if (strcmp(type, "wait") == 0) {
        a->kind = COMPUTER_WAIT;
        a->wait_ms = COMPUTER_OPENAI_WAIT_MS;
        return 0;
    }
    if (strcmp(type, "type") == 0) {
        a->kind = COMPUTER_TYPE;
        return text_of(f, a);
    }
    if (strcmp(type, "keypress") == 0) {
        json_t *keys = field(f, "keys");
        a->kind = COMPUTER_KEY;
        if (!json_is_array(keys))
            return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                                "%skeys must be an array of key names, such as [\"CTRL\", \"L\"]",
                                f->prefix);
        a->n_combos = 1;
        return combo_of_array(f, "keys", keys, &a->combos[0]);
    }
    /* The rest may hold keys while the pointer acts. */
    if ((r = held_of(f, "keys", &a->held)) < 0)
        return r;
    if (strcmp(type, "move") == 0) {
        a->kind = COMPUTER_MOVE;
        a->n_path = 1;
        return point_xy(f, "x", "y", &a->path[0]);
    }
    if (strcmp(type, "click") == 0 || strcmp(type, "double_click") == 0) {
        a->kind = COMPUTER_CLICK;
        a->n_path = 1;
        a->clicks = type[0] == 'd' ? 2 : 1;
        if ((r = point_xy(f, "x", "y", &a->path[0])) < 0)
            return r;
        return button_of(f, true, &a->button);
    }
    if (strcmp(type, "drag") == 0) {
        a->kind = COMPUTER_DRAG;
        a->button = VNC_BUTTON_LEFT;
        return path_of(f, field(f, "path"), a);
    }
    if (strcmp(type, "scroll") == 0) {
        int px_x, px_y, lim = COMPUTER_MAX_SCROLL * COMPUTER_PX_PER_STEP;
        a->kind = COMPUTER_SCROLL;
        a->n_path = 1;
        if ((r = point_xy(f, "x", "y", &a->path[0])) < 0 ||
            (r = field_int(f, "scroll_x", 0, -lim, lim, &px_x)) < 0 ||
            (r = field_int(f, "scroll_y", 0, -lim, lim, &px_y)) < 0)
            return r;
        a->scroll_x = px_to_steps(px_x);
        a->scroll_y = px_to_steps(px_y);
        return 0;
    }
    return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                        "%stype \"%.32s\" is not an action (click, double_click, drag, keypress, "
                        "move, screenshot, scroll, type, wait)",
                        f->prefix, type);
}

/* ---- porthole's and Anthropic's {"action": NAME} ---------------------------- */

static bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static int parse_named(const struct fields *f, const char *action, struct computer_action *a)
{
    int r;

    snprintf(a->name, sizeof(a->name), "%s", action);
    if (is(action, "screenshot")) {
        a->kind = COMPUTER_SCREENSHOT;
        a->screenshot_after = true;
        return 0;
    }
    if (is(action, "cursor_position")) {
        a->kind = COMPUTER_CURSOR_POSITION;
        return 0;
    }
    if (is(action, "type")) {
        a->kind = COMPUTER_TYPE;
        return text_of(f, a);
    }
    if (is(action, "key") || is(action, "keypress") || is(action, "hold_key")) {
        json_t *v = field(f, "keys");
        const char *name = "keys";
        if (!v) {
            v = field(f, "text"); /* Anthropic names it text */
            name = "text";
        }
        a->kind = is(action, "hold_key") ? COMPUTER_HOLD_KEY : COMPUTER_KEY;
        if (json_is_array(v) && json_array_size(v) > 0) {
            a->n_combos = 1;
            r = combo_of_array(f, name, v, &a->combos[0]);
        } else if (json_is_string(v)) {
            r = combos_of_string(f, name, json_string_value(v), a->combos, COMPUTER_MAX_COMBOS,
                                 &a->n_combos);
        } else {
            r = ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                             "%s must be a combination such as \"ctrl+l\" (xdotool names, "
                             "several separated by spaces) or an array of keys",
                             a->kind == COMPUTER_HOLD_KEY ? "text" : "keys (or text)");
        }
        if (r < 0 || a->kind == COMPUTER_KEY)
            return r;
        /* hold_key holds every key named, together. */
        for (int i = 0; i < a->n_combos; i++)
            for (int k = 0; k < a->combos[i].n; k++) {
                if (a->held.n >= COMPUTER_MAX_KEYS)
                    return ph_error_set(f->err, PH_ERR_INVALID, -E2BIG,
                                        "%s: at most %d keys at once", name, COMPUTER_MAX_KEYS);
                if (keys_us_key(a->combos[i].keys[k]) == KEYS_US_NONE)
                    return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                                        "%s: key 0x%x cannot be held (not on the VM's US "
                                        "keyboard)",
                                        name, a->combos[i].keys[k]);
                a->held.keys[a->held.n++] = a->combos[i].keys[k];
            }
        a->n_combos = 0;
        return seconds_of(f, true, 0, &a->wait_ms);
    }
    if (is(action, "wait")) {
        a->kind = COMPUTER_WAIT;
        if (field(f, "duration"))
            return seconds_of(f, true, 0, &a->wait_ms);
        return field_int(f, "ms", 1000, 0, COMPUTER_MAX_WAIT_MS, &a->wait_ms);
    }

    /* Pointer actions: modifiers held in "text" (Anthropic). */
    if ((r = held_of(f, "text", &a->held)) < 0)
        return r;
    if (is(action, "move") || is(action, "mouse_move")) {
        a->kind = COMPUTER_MOVE;
        a->n_path = 1;
        return point_of(f, false, &a->path[0]);
    }
    if (is(action, "click") || is(action, "left_click") || is(action, "right_click") ||
        is(action, "middle_click") || is(action, "double_click") || is(action, "triple_click")) {
        a->kind = COMPUTER_CLICK;
        if ((r = point_of(f, true, &a->path[0])) < 0)
            return r;
        a->n_path = r;
        if (is(action, "right_click"))
            a->button = VNC_BUTTON_RIGHT;
        else if (is(action, "middle_click"))
            a->button = VNC_BUTTON_MIDDLE;
        else if ((r = button_of(f, false, &a->button)) < 0)
            return r;
        a->clicks = is(action, "double_click") ? 2 : is(action, "triple_click") ? 3 : 1;
        return field_int(f, "clicks", a->clicks, 1, 3, &a->clicks);
    }
    if (is(action, "left_mouse_down") || is(action, "left_mouse_up")) {
        a->kind = is(action, "left_mouse_down") ? COMPUTER_MOUSE_DOWN : COMPUTER_MOUSE_UP;
        a->button = VNC_BUTTON_LEFT;
        if ((r = point_of(f, true, &a->path[0])) < 0)
            return r;
        a->n_path = r;
        return 0;
    }
    if (is(action, "drag") || is(action, "left_click_drag")) {
        json_t *path = field(f, "path");
        a->kind = COMPUTER_DRAG;
        if ((r = button_of(f, false, &a->button)) < 0)
            return r;
        if (path)
            return path_of(f, path, a);
        a->n_path = 2;
        if (field(f, "start_coordinate"))
            r = point_array(f, "start_coordinate", &a->path[0]);
        else if (field(f, "start_x") || field(f, "start_y"))
            r = point_xy(f, "start_x", "start_y", &a->path[0]);
        else {
            /* Anthropic's first computer tool drags from where the
             * pointer is. */
            a->from_here = true;
            a->n_path = 1;
        }
        if (r < 0)
            return r;
        return point_of(f, false, &a->path[a->n_path - 1]);
    }
    if (is(action, "scroll")) {
        json_t *dir = field(f, "scroll_direction");
        a->kind = COMPUTER_SCROLL;
        if ((r = point_of(f, true, &a->path[0])) < 0)
            return r;
        a->n_path = r;
        if (dir) {
            const char *d = json_is_string(dir) ? json_string_value(dir) : "";
            int amount;
            if (!field(f, "scroll_amount"))
                return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                                    "scroll_amount is required with scroll_direction (wheel "
                                    "steps)");
            if ((r = field_int(f, "scroll_amount", 0, 0, COMPUTER_MAX_SCROLL, &amount)) < 0)
                return r;
            if (is(d, "up"))
                a->scroll_y = -amount;
            else if (is(d, "down"))
                a->scroll_y = amount;
            else if (is(d, "left"))
                a->scroll_x = -amount;
            else if (is(d, "right"))
                a->scroll_x = amount;
            else
                return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                                    "scroll_direction must be \"up\", \"down\", \"left\" or "
                                    "\"right\"");
            return 0;
        }
        if ((r = field_int(f, "scroll_x", 0, -COMPUTER_MAX_SCROLL, COMPUTER_MAX_SCROLL,
                           &a->scroll_x)) < 0 ||
            (r = field_int(f, "scroll_y", 0, -COMPUTER_MAX_SCROLL, COMPUTER_MAX_SCROLL,
                           &a->scroll_y)) < 0)
            return r;
        if (!a->scroll_x && !a->scroll_y)
            return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                                "scroll needs scroll_direction and scroll_amount, or scroll_x "
                                "or scroll_y (wheel steps)");
        return 0;
    }
    return ph_error_set(f->err, PH_ERR_INVALID, -EINVAL,
                        "unknown action \"%.32s\" (screenshot, cursor_position, move/mouse_move, "
                        "click/left_click, right_click, middle_click, double_click, "
                        "triple_click, left_mouse_down, left_mouse_up, drag/left_click_drag, "
                        "scroll, type, key, hold_key, wait)",
                        action);
}

int computer_parse(json_t *body, const struct computer_space *sp, struct computer_action *a,
                   struct ph_error *err)
{
    struct fields f = {.obj = body, .prefix = "", .sp = sp, .err = err};
    json_t *action = json_object_get(body, "action"), *type = json_object_get(body, "type");
    bool shot;
    int r;

    memset(a, 0, sizeof(*a));
    a->clicks = 1;
    if ((r = params_bool(body, "screenshot", false, &shot, err)) < 0)
        return r;
    if (json_is_object(action)) {
        /* {"action": {...}} or the computer_call item around it. */
        f.obj = action;
        f.prefix = "action.";
        type = json_object_get(action, "type");
        if (!json_is_string(type))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "action.type is required (OpenAI's action objects)");
        r = parse_openai(&f, json_string_value(type), a);
    } else if (json_is_string(action)) {
        if (json_string_length(action) > 32)
            return ph_error_set(err, PH_ERR_INVALID, -E2BIG, "action is longer than 32 bytes");
        r = parse_named(&f, json_string_value(action), a);
    } else if (action) {
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "action must be a name such as \"left_click\" or an OpenAI action "
                            "object");
    } else if (json_is_string(type) && strcmp(json_string_value(type), "computer_call") != 0) {
        if (json_string_length(type) > 32)
            return ph_error_set(err, PH_ERR_INVALID, -E2BIG, "type is longer than 32 bytes");
        r = parse_openai(&f, json_string_value(type), a);
    } else {
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "action is required (or type, for an OpenAI action object)");
    }
    if (r < 0)
        return r;
    a->screenshot_after |= shot;
    return 0;
}

void computer_describe(const struct computer_action *a, char *buf, size_t len)
{
    int n = snprintf(buf, len, "computer %s", a->name);
    if (a->n_path == 0 && a->kind != COMPUTER_SCREENSHOT && a->kind != COMPUTER_TYPE &&
        a->kind != COMPUTER_KEY && a->kind != COMPUTER_WAIT && a->kind != COMPUTER_HOLD_KEY &&
        a->kind != COMPUTER_CURSOR_POSITION && n > 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, " (here)");
    for (int i = 0; i < a->n_path && n > 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, " %d,%d", a->path[i].x, a->path[i].y);
    if (n < 0 || (size_t)n >= len)
        return;
    if (a->kind == COMPUTER_TYPE) {
        snprintf(buf + n, len - (size_t)n, " (%d characters)", a->n_text);
    } else if (a->kind == COMPUTER_KEY) {
        int keys = 0;
        for (int i = 0; i < a->n_combos; i++)
            keys += a->combos[i].n;
        snprintf(buf + n, len - (size_t)n, " (%d keys)", keys);
    } else if (a->kind == COMPUTER_HOLD_KEY) {
        snprintf(buf + n, len - (size_t)n, " (%d keys, %d ms)", a->held.n, a->wait_ms);
    } else if (a->kind == COMPUTER_SCROLL) {
        snprintf(buf + n, len - (size_t)n, " dx=%d dy=%d", a->scroll_x, a->scroll_y);
    }
}
