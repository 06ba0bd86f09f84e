#include "computer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "recorder/keys.h"
#include "params.h"
#include "recorder/vnc.h"

static int parse_point(json_t *obj, const char *xf, const char *yf, int w, int h,
                       struct computer_point *p, struct ph_error *err)
{
    json_t *x = json_object_get(obj, xf), *y = json_object_get(obj, yf);
    if (!json_is_integer(x) || !json_is_integer(y))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "%s and %s must be integers", xf, yf);
    json_int_t xv = json_integer_value(x), yv = json_integer_value(y);
    if (xv < 0 || xv >= w || yv < 0 || yv >= h)
        return ph_error_set(err, PH_ERR_INVALID, -ERANGE,
                            "(%s, %s) = (%lld, %lld) is outside the %dx%d screen", xf, yf,
                            (long long)xv, (long long)yv, w, h);
    p->x = (int)xv;
    p->y = (int)yv;
    return 0;
}

static int parse_button(json_t *body, int *button, struct ph_error *err)
{
    const char *b;
    int r = params_string(body, "button", "left", 16, &b, err);
    if (r < 0)
        return r;
    if (strcmp(b, "left") == 0)
        *button = VNC_BUTTON_LEFT;
    else if (strcmp(b, "right") == 0)
        *button = VNC_BUTTON_RIGHT;
    else if (strcmp(b, "middle") == 0 || strcmp(b, "wheel") == 0)
        *button = VNC_BUTTON_MIDDLE;
    else
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "button must be \"left\", \"right\" or \"middle\"");
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

static int parse_keys(json_t *body, struct computer_action *a, struct ph_error *err)
{
    json_t *v = json_object_get(body, "keys");
    if (!v)
        v = json_object_get(body, "text"); /* Anthropic's key action names it text */
    if (json_is_string(v)) {
        int n = keys_parse(json_string_value(v), a->keys, COMPUTER_MAX_KEYS, err);
        if (n < 0)
            return ph_error_set(err, PH_ERR_INVALID, n, "keys: %s", err ? err->message : "");
        a->n_keys = n;
        return 0;
    }
    if (json_is_array(v) && json_array_size(v) > 0) {
        /* OpenAI's keypress: ["CTRL", "L"], pressed together. */
        size_t i;
        json_t *k;
        a->n_keys = 0;
        json_array_foreach(v, i, k)
        {
            uint32_t ks[COMPUTER_MAX_KEYS];
            if (!json_is_string(k))
                return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "keys[%zu] must be a string", i);
            int n = keys_parse(json_string_value(k), ks, COMPUTER_MAX_KEYS, err);
            if (n < 0)
                return ph_error_set(err, PH_ERR_INVALID, n, "keys[%zu]: %s", i,
                                    err ? err->message : "");
            for (int m = 0; m < n; m++) {
                if (a->n_keys >= COMPUTER_MAX_KEYS)
                    return ph_error_set(err, PH_ERR_INVALID, -E2BIG,
                                        "keys: at most %d keys at once", COMPUTER_MAX_KEYS);
                a->keys[a->n_keys++] = ks[m];
            }
        }
        return 0;
    }
    return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                        "keys must be a combination such as \"ctrl+l\" or an array of keys");
}

int computer_parse(json_t *body, int w, int h, struct computer_action *a, struct ph_error *err)
{
    const char *action;
    int r;

    memset(a, 0, sizeof(*a));
    a->clicks = 1;
    if ((r = params_string(body, "action", NULL, 32, &action, err)) < 0)
        return r;
    if (!action)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "action is required");
    if ((r = params_bool(body, "screenshot", false, &a->screenshot_after, err)) < 0)
        return r;
    snprintf(a->name, sizeof(a->name), "%s", action);

    if (strcmp(action, "screenshot") == 0) {
        a->kind = COMPUTER_SCREENSHOT;
        a->screenshot_after = true;
        return 0;
    }
    if (strcmp(action, "move") == 0 || strcmp(action, "mouse_move") == 0) {
        a->kind = COMPUTER_MOVE;
        a->n_path = 1;
        return parse_point(body, "x", "y", w, h, &a->path[0], err);
    }
    if (strcmp(action, "click") == 0 || strcmp(action, "left_click") == 0 ||
        strcmp(action, "right_click") == 0 || strcmp(action, "middle_click") == 0 ||
        strcmp(action, "double_click") == 0 || strcmp(action, "triple_click") == 0) {
        a->kind = COMPUTER_CLICK;
        a->n_path = 1;
        if ((r = parse_point(body, "x", "y", w, h, &a->path[0], err)) < 0)
            return r;
        if (strcmp(action, "right_click") == 0)
            a->button = VNC_BUTTON_RIGHT;
        else if (strcmp(action, "middle_click") == 0)
            a->button = VNC_BUTTON_MIDDLE;
        else if ((r = parse_button(body, &a->button, err)) < 0)
            return r;
        a->clicks = strcmp(action, "double_click") == 0   ? 2
                    : strcmp(action, "triple_click") == 0 ? 3
                                                          : 1;
        return params_int(body, "clicks", a->clicks, 1, 3, &a->clicks, err);
    }
    if (strcmp(action, "drag") == 0 || strcmp(action, "left_click_drag") == 0) {
        json_t *path = json_object_get(body, "path");
        a->kind = COMPUTER_DRAG;
        if ((r = parse_button(body, &a->button, err)) < 0)
            return r;
        if (path) {
            size_t i;
            json_t *pt;
            if (!json_is_array(path) || json_array_size(path) < 2 ||
                json_array_size(path) > COMPUTER_MAX_PATH)
                return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                    "path must be an array of 2..%d points {x, y}",
                                    COMPUTER_MAX_PATH);
            json_array_foreach(path, i, pt)
            {
                if (!json_is_object(pt))
                    return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "path[%zu] must be {x, y}",
                                        i);
                if ((r = parse_point(pt, "x", "y", w, h, &a->path[i], err)) < 0)
                    return r;
            }
            a->n_path = (int)json_array_size(path);
            return 0;
        }
        a->n_path = 2;
        if ((r = parse_point(body, "start_x", "start_y", w, h, &a->path[0], err)) < 0)
            return r;
        return parse_point(body, "x", "y", w, h, &a->path[1], err);
    }
    if (strcmp(action, "scroll") == 0) {
        a->kind = COMPUTER_SCROLL;
        a->n_path = 1;
        if ((r = parse_point(body, "x", "y", w, h, &a->path[0], err)) < 0 ||
            (r = params_int(body, "scroll_x", 0, -COMPUTER_MAX_SCROLL, COMPUTER_MAX_SCROLL,
                            &a->scroll_x, err)) < 0 ||
            (r = params_int(body, "scroll_y", 0, -COMPUTER_MAX_SCROLL, COMPUTER_MAX_SCROLL,
                            &a->scroll_y, err)) < 0)
            return r;
        if (!a->scroll_x && !a->scroll_y)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "scroll needs scroll_x or scroll_y (wheel steps)");
        return 0;
    }
    if (strcmp(action, "type") == 0) {
        json_t *t = json_object_get(body, "text");
        a->kind = COMPUTER_TYPE;
        if (!json_is_string(t) || json_string_length(t) == 0)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "text must be a non-empty string");
        int n =
            utf8_decode(json_string_value(t), json_string_length(t), a->text, COMPUTER_MAX_TEXT);
        if (n < 0)
            return ph_error_set(err, PH_ERR_INVALID, -E2BIG, "text must be at most %d characters",
                                COMPUTER_MAX_TEXT);
        for (int i = 0; i < n; i++)
            if (!keys_for_char(a->text[i]))
                return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                    "text[%d]: character U+%04X cannot be typed", i,
                                    (unsigned)a->text[i]);
        a->n_text = n;
        return 0;
    }
    if (strcmp(action, "key") == 0 || strcmp(action, "keypress") == 0) {
        a->kind = COMPUTER_KEY;
        return parse_keys(body, a, err);
    }
    if (strcmp(action, "wait") == 0) {
        a->kind = COMPUTER_WAIT;
        return params_int(body, "ms", 1000, 0, COMPUTER_MAX_WAIT_MS, &a->wait_ms, err);
    }
    return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                        "unknown action \"%.32s\" (screenshot, move, click, double_click, "
                        "right_click, drag, scroll, type, key, wait)",
                        action);
}

void computer_describe(const struct computer_action *a, char *buf, size_t len)
{
    int n = snprintf(buf, len, "computer %s", a->name);
    for (int i = 0; i < a->n_path && n > 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, " %d,%d", a->path[i].x, a->path[i].y);
    if (a->kind == COMPUTER_TYPE && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " (%d characters)", a->n_text);
    else if (a->kind == COMPUTER_KEY && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " (%d keys)", a->n_keys);
    else if (a->kind == COMPUTER_SCROLL && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " dx=%d dy=%d", a->scroll_x, a->scroll_y);
}
