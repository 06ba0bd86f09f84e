/* Fuzz target for the computer-use action parser (gateway/computer.c), in
 * its three spellings. Input: a first line "SWxSH DWxDH" or "SWxSH auto"
 * (the screen, and the display the model was told; 0x0 for none), then
 * the action's JSON body. Whatever it is: no crash, a refusal is a 400,
 * and an accepted action is one the runner can carry out as it is:
 * points on the screen, counts within their bounds, keys that exist. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "computer.h"
#include "fuzz.h"
#include "recorder/keys.h"
#include "recorder/vnc.h"

static bool on_screen(const struct computer_space *sp, struct computer_point p)
{
    return p.x >= 0 && p.x < sp->screen_w && p.y >= 0 && p.y < sp->screen_h;
}

static void check_space(const struct computer_space *sp, int sw, int sh)
{
    REQUIRE(sp->screen_w == sw && sp->screen_h == sh);
    REQUIRE(sp->w <= sw && sp->h <= sh);
    /* A real screen (the guest's sizes) gives a display of a real size. */
    if (sw >= 320 && sw <= 7680 && sh >= 240 && sh <= 4320)
        REQUIRE(sp->w >= 1 && sp->h >= 1);
    if (sp->w < 1 || sp->h < 1)
        return;
    /* The display's corners are on the screen, and the screen's on the
     * display. */
    int pts[4][2] = {{0, 0}, {sp->w - 1, 0}, {0, sp->h - 1}, {sp->w - 1, sp->h - 1}};
    for (int i = 0; i < 4; i++) {
        int x = pts[i][0], y = pts[i][1];
        computer_space_to_screen(sp, &x, &y);
        REQUIRE(x >= 0 && x < sw && y >= 0 && y < sh);
        computer_space_from_screen(sp, &x, &y);
        REQUIRE(x >= 0 && x < sp->w && y >= 0 && y < sp->h);
    }
}

static void check_combo(const struct computer_combo *c, bool held)
{
    REQUIRE(c->n >= (held ? 0 : 1) && c->n <= COMPUTER_MAX_KEYS);
    for (int i = 0; i < c->n; i++) {
        REQUIRE(c->keys[i] != 0);
        if (held)
            REQUIRE(keys_us_key(c->keys[i]) != KEYS_US_NONE);
    }
}

static void check_action(const struct computer_space *sp, const struct computer_action *a)
{
    REQUIRE(a->kind >= COMPUTER_SCREENSHOT && a->kind <= COMPUTER_CURSOR_POSITION);
    REQUIRE(a->name[0] && strnlen(a->name, sizeof(a->name)) < sizeof(a->name));
    REQUIRE(a->n_path >= 0 && a->n_path <= COMPUTER_MAX_PATH);
    for (int i = 0; i < a->n_path; i++)
        REQUIRE(on_screen(sp, a->path[i]));
    check_combo(&a->held, true);
    switch (a->kind) {
    case COMPUTER_MOVE:
        REQUIRE(a->n_path == 1);
        break;
    case COMPUTER_CLICK:
        REQUIRE(a->n_path <= 1 && a->clicks >= 1 && a->clicks <= 3);
        REQUIRE(a->button == VNC_BUTTON_LEFT || a->button == VNC_BUTTON_RIGHT ||
                a->button == VNC_BUTTON_MIDDLE ||
                (a->openai &&
                 (a->button == COMPUTER_BUTTON_BACK || a->button == COMPUTER_BUTTON_FORWARD)));
        break;
    case COMPUTER_DRAG:
        REQUIRE(a->n_path >= (a->from_here ? 1 : 2));
        REQUIRE(a->button == VNC_BUTTON_LEFT || a->button == VNC_BUTTON_RIGHT ||
                a->button == VNC_BUTTON_MIDDLE);
        break;
    case COMPUTER_SCROLL:
        REQUIRE(a->n_path <= 1);
        REQUIRE(a->scroll_x >= -COMPUTER_MAX_SCROLL && a->scroll_x <= COMPUTER_MAX_SCROLL);
        REQUIRE(a->scroll_y >= -COMPUTER_MAX_SCROLL && a->scroll_y <= COMPUTER_MAX_SCROLL);
        break;
    case COMPUTER_TYPE:
        REQUIRE(a->n_text >= 1 && a->n_text <= COMPUTER_MAX_TEXT);
        for (int i = 0; i < a->n_text; i++)
            REQUIRE(keys_for_char(a->text[i]) != 0);
        break;
    case COMPUTER_KEY:
        REQUIRE(a->n_combos >= 1 && a->n_combos <= COMPUTER_MAX_COMBOS);
        for (int i = 0; i < a->n_combos; i++)
            check_combo(&a->combos[i], false);
        break;
    case COMPUTER_MOUSE_DOWN:
    case COMPUTER_MOUSE_UP:
        REQUIRE(a->n_path <= 1 && a->button == VNC_BUTTON_LEFT);
        break;
    case COMPUTER_HOLD_KEY:
        REQUIRE(a->held.n >= 1);
        /* fall through */
    case COMPUTER_WAIT:
        REQUIRE(a->wait_ms >= 0 && a->wait_ms <= COMPUTER_MAX_WAIT_MS);
        break;
    default:
        REQUIRE(a->n_path == 0);
        break;
    }
}

/* Any buffer size, in an exact allocation: cut short, never past it. */
static void check_describe(const struct computer_action *a, size_t len)
{
    char *buf = malloc(len);
    REQUIRE(buf);
    computer_describe(a, buf, len);
    REQUIRE(strnlen(buf, len) < len);
    REQUIRE(strncmp(buf, "computer ", len - 1 < 9 ? len - 1 : 9) == 0);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    int sw, sh, dw = 0, dh = 0;

    if (!nl || nl - data > 64)
        return 0;
    char *line = fuzz_strndup(data, (size_t)(nl - data));
    bool automatic = strstr(line, " auto") != NULL;
    int fields = sscanf(line, "%dx%d %dx%d", &sw, &sh, &dw, &dh);
    free(line);
    /* The screen is what the VNC server says: at most 16384 a side. */
    if (fields < 2 || sw < 1 || sh < 1 || sw > 16384 || sh > 16384)
        return 0;

    struct computer_space sp;
    struct ph_error err = {0};
    if (computer_space_init(&sp, sw, sh, dw, dh, automatic, &err) < 0) {
        REQUIRE(err.kind == PH_ERR_INVALID && err.message[0]);
        return 0;
    }
    check_space(&sp, sw, sh);

    json_error_t je;
    const char *text = (const char *)nl + 1;
    size_t len = size - (size_t)(nl + 1 - data);
    json_t *body = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    static struct computer_action a;
    int r = computer_parse(body, &sp, &a, &err);
    if (r < 0) {
        REQUIRE(err.kind == PH_ERR_INVALID && err.message[0]);
        REQUIRE(strnlen(err.message, sizeof(err.message)) < sizeof(err.message));
    } else {
        REQUIRE(r == 0);
        check_action(&sp, &a);
        for (size_t n = 1; n < 48; n += 7)
            check_describe(&a, n);
        check_describe(&a, 256);
    }
    json_decref(body);
    return 0;
}
