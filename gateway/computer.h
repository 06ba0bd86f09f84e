/* Computer-use actions, parsed and checked before any of them becomes an
 * RFB pointer or key event. Three spellings are taken as they are sent:
 *
 *   porthole's own      {"action": "click", "x": 10, "y": 20, "button": "left"}
 *   Anthropic's tool    {"action": "left_click", "coordinate": [10, 20]}
 *   OpenAI's action     {"type": "click", "x": 10, "y": 20, "button": "left"},
 *                       bare, as {"action": {...}}, or the whole computer_call
 *                       item {"type": "computer_call", "action": {...}}
 *
 * Coordinates are in the model's space (struct computer_space): the screen,
 * or the smaller size the model was told, which the screenshots are scaled
 * to. The parser maps them to the screen; replies map the screen back.
 *
 * Parsing is pure so every rule is unit-tested; a 400 names the field it
 * is about. computer_run.h executes what comes out. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define COMPUTER_MAX_TEXT 4096
#define COMPUTER_MAX_PATH 64
#define COMPUTER_MAX_SCROLL 50     /* wheel steps per action */
#define COMPUTER_MAX_WAIT_MS 30000 /* wait and hold_key */
#define COMPUTER_MAX_KEYS 8        /* keys pressed together */
#define COMPUTER_MAX_COMBOS 16     /* "ctrl+a Delete": combinations one after another */
/* OpenAI's scroll_x / scroll_y are pixels; one wheel step is taken for
 * this many (the guest's Chromium scrolled 360 px for 4 steps). */
#define COMPUTER_PX_PER_STEP 100
/* OpenAI's wait has no duration. */
#define COMPUTER_OPENAI_WAIT_MS 2000
/* Smallest display a model can be told about. */
#define COMPUTER_MIN_DISPLAY 64

/* Buttons beyond RFB's: OpenAI's "back" and "forward" clicks, which the
 * runner sends as the browser's keys (Alt+Left, Alt+Right). */
#define COMPUTER_BUTTON_BACK 0x100
#define COMPUTER_BUTTON_FORWARD 0x200

enum computer_kind {
    COMPUTER_SCREENSHOT,
    COMPUTER_MOVE,
    COMPUTER_CLICK,
    COMPUTER_DRAG,
    COMPUTER_SCROLL,
    COMPUTER_TYPE,
    COMPUTER_KEY,
    COMPUTER_WAIT,
    COMPUTER_MOUSE_DOWN,
    COMPUTER_MOUSE_UP,
    COMPUTER_HOLD_KEY,
    COMPUTER_CURSOR_POSITION,
};

/* The model's coordinate space and the screen's. Unscaled, w = screen_w
 * and h = screen_h. */
struct computer_space {
    int screen_w, screen_h;
    int w, h;
};

/* The space for a screen of screen_w x screen_h when the model was told
 * want_w x want_h (0 for either: derived from the other and the screen's
 * aspect ratio; both 0: no scaling). With automatic set, the size is
 * chosen as Anthropic's reference implementation does: the first of XGA
 * (1024x768), WXGA (1280x800) and FWXGA (1366x768) whose aspect ratio is
 * within 0.02 of the screen's, when it is narrower than the screen and
 * not taller. A size larger than the screen, or of another aspect ratio
 * (more than a pixel off once scaled), is a 400 naming display_width /
 * display_height. */
int computer_space_init(struct computer_space *sp, int screen_w, int screen_h, int want_w,
                        int want_h, bool automatic, struct ph_error *err);
/* Model space to screen (clamped to the screen) and back. */
void computer_space_to_screen(const struct computer_space *sp, int *x, int *y);
void computer_space_from_screen(const struct computer_space *sp, int *x, int *y);

struct computer_point {
    int x, y; /* screen coordinates */
};

/* Keys pressed together, in order, released in reverse. */
struct computer_combo {
    uint32_t keys[COMPUTER_MAX_KEYS]; /* X keysyms */
    int n;
};

struct computer_action {
    enum computer_kind kind;
    char name[33];                                 /* as asked: "left_click", "keypress" */
    bool openai;                                   /* came as an OpenAI action object */
    struct computer_point path[COMPUTER_MAX_PATH]; /* move/click/scroll/down/up: [0]; drag: all */
    int n_path;     /* 0: where the pointer is now (Anthropic's clicks without coordinate) */
    bool from_here; /* drag: starts where the pointer is now, then path */
    int button;     /* VNC button bit, or COMPUTER_BUTTON_BACK / _FORWARD */
    int clicks;     /* 1..3 */
    int scroll_x, scroll_y;           /* wheel steps, + is right/down */
    uint32_t text[COMPUTER_MAX_TEXT]; /* code points to type */
    int n_text;
    struct computer_combo combos[COMPUTER_MAX_COMBOS]; /* key: one after another */
    int n_combos;
    struct computer_combo held; /* modifiers held during a pointer action; hold_key's keys */
    int wait_ms;                /* wait, hold_key */
    bool screenshot_after;
};

/* Parses and checks one action in any of the three spellings. */
int computer_parse(json_t *body, const struct computer_space *sp, struct computer_action *out,
                   struct ph_error *err);
/* A one-line description (screen coordinates) for the audit log and the
 * policy hooks: "computer click 640,360". */
void computer_describe(const struct computer_action *a, char *buf, size_t len);
