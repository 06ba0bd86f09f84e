/* Computer-use actions (the vocabulary of OpenAI's and Anthropic's computer
 * tools) parsed and checked before they become RFB pointer and key events.
 * Parsing is pure so every rule is unit-tested; execution needs a VNC
 * session and runs on a worker thread. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define COMPUTER_MAX_TEXT 4096
#define COMPUTER_MAX_PATH 64
#define COMPUTER_MAX_SCROLL 50
#define COMPUTER_MAX_WAIT_MS 10000
#define COMPUTER_MAX_KEYS 8

enum computer_kind {
    COMPUTER_SCREENSHOT,
    COMPUTER_MOVE,
    COMPUTER_CLICK,
    COMPUTER_DRAG,
    COMPUTER_SCROLL,
    COMPUTER_TYPE,
    COMPUTER_KEY,
    COMPUTER_WAIT,
};

struct computer_point {
    int x, y;
};

struct computer_action {
    enum computer_kind kind;
    char name[33];                                 /* the action as asked ("double_click"...) */
    struct computer_point path[COMPUTER_MAX_PATH]; /* move/click/scroll: [0]; drag: all */
    int n_path;
    int button;                       /* VNC button bit for clicks and drags */
    int clicks;                       /* 1..3 */
    int scroll_x, scroll_y;           /* wheel steps, + is right/down */
    uint32_t text[COMPUTER_MAX_TEXT]; /* code points to type */
    int n_text;
    uint32_t keys[COMPUTER_MAX_KEYS]; /* keysyms pressed together */
    int n_keys;
    int wait_ms;
    bool screenshot_after;
};

/* Parses and checks one action; coordinates are checked against the screen
 * size (width x height). 400 errors name the field. */
int computer_parse(json_t *body, int width, int height, struct computer_action *out,
                   struct ph_error *err);
/* A one-line description for the audit log and policy hooks:
 * "computer click 640 360 left". */
void computer_describe(const struct computer_action *a, char *buf, size_t len);
