/* Computer-use actions: porthole's, Anthropic's and OpenAI's spellings,
 * scaled coordinate spaces, bounds and key names, before any RFB. */
#include <stdlib.h>
#include <string.h>

#include <rfb/keysym.h>

#include "check.h"
#include "computer.h"
#include "recorder/vnc.h"

static struct computer_space screen_720 = {1280, 720, 1280, 720};

static int parse_in(const struct computer_space *sp, const char *text, struct computer_action *a,
                    struct ph_error *err)
{
    json_t *j = json_loads(text, 0, NULL);
    if (!j) {
        fprintf(stderr, "bad JSON %s\n", text);
        exit(2);
    }
    memset(err, 0, sizeof(*err));
    int r = computer_parse(j, sp, a, err);
    json_decref(j);
    return r;
}

static int parse(const char *text, struct computer_action *a, struct ph_error *err)
{
    return parse_in(&screen_720, text, a, err);
}

/* The action is refused with a 400 whose message contains needle. */
static void bad_in(const struct computer_space *sp, const char *text, const char *needle)
{
    struct computer_action *a = malloc(sizeof(*a));
    struct ph_error err = {0};
    int r = parse_in(sp, text, a, &err);
    if (r >= 0 || err.kind != PH_ERR_INVALID || !strstr(err.message, needle)) {
        fprintf(stderr, "%s: r=%d \"%s\", wanted \"%s\"\n", text, r, err.message, needle);
        check_failures++;
    }
    free(a);
}

static void bad(const char *text, const char *needle)
{
    bad_in(&screen_720, text, needle);
}

static void test_porthole(struct computer_action *a)
{
    struct ph_error err;
    char desc[256];

    CHECK(parse("{\"action\":\"click\",\"x\":640,\"y\":360}", a, &err) == 0);
    CHECK(a->kind == COMPUTER_CLICK && a->button == VNC_BUTTON_LEFT && a->clicks == 1);
    CHECK(a->path[0].x == 640 && a->path[0].y == 360 && a->n_path == 1 && !a->openai);
    computer_describe(a, desc, sizeof(desc));
    CHECK_STR(desc, "computer click 640,360");

    CHECK(parse("{\"action\":\"click\",\"x\":1,\"y\":2,\"button\":\"right\"}", a, &err) == 0);
    CHECK(a->button == VNC_BUTTON_RIGHT);
    CHECK(parse("{\"action\":\"double_click\",\"x\":1,\"y\":2}", a, &err) == 0 && a->clicks == 2);
    CHECK(parse("{\"action\":\"move\",\"x\":0,\"y\":719}", a, &err) == 0 &&
          a->kind == COMPUTER_MOVE);
    CHECK(parse("{\"action\":\"drag\",\"path\":[{\"x\":1,\"y\":1},{\"x\":5,\"y\":6},"
                "{\"x\":9,\"y\":9}]}",
                a, &err) == 0 &&
          a->n_path == 3 && a->path[2].x == 9 && !a->from_here);
    CHECK(parse("{\"action\":\"drag\",\"start_x\":1,\"start_y\":1,\"x\":50,\"y\":60}", a, &err) ==
              0 &&
          a->n_path == 2 && a->path[1].y == 60);
    CHECK(parse("{\"action\":\"scroll\",\"x\":10,\"y\":10,\"scroll_y\":3}", a, &err) == 0 &&
          a->scroll_y == 3);
    CHECK(parse("{\"action\":\"type\",\"text\":\"hi \\u00e9\\u20ac\"}", a, &err) == 0);
    CHECK(a->n_text == 5 && a->text[0] == 'h' && a->text[3] == 0xe9 && a->text[4] == 0x20ac);
    CHECK(parse("{\"action\":\"key\",\"keys\":\"ctrl+l\"}", a, &err) == 0 && a->n_combos == 1);
    CHECK(a->combos[0].n == 2 && a->combos[0].keys[0] == XK_Control_L &&
          a->combos[0].keys[1] == 'l');
    CHECK(parse("{\"action\":\"key\",\"keys\":\"shift+Tab\"}", a, &err) == 0 &&
          a->combos[0].keys[1] == XK_Tab);
    CHECK(parse("{\"action\":\"key\",\"keys\":\"Return\"}", a, &err) == 0 && a->combos[0].n == 1 &&
          a->combos[0].keys[0] == XK_Return);
    CHECK(parse("{\"action\":\"keypress\",\"keys\":[\"CTRL\",\"A\"]}", a, &err) == 0 &&
          a->n_combos == 1 && a->combos[0].n == 2);
    CHECK(parse("{\"action\":\"wait\",\"ms\":250}", a, &err) == 0 && a->wait_ms == 250);
    CHECK(parse("{\"action\":\"screenshot\"}", a, &err) == 0 && a->screenshot_after);
    CHECK(parse("{\"action\":\"click\",\"x\":3,\"y\":4,\"screenshot\":true}", a, &err) == 0 &&
          a->screenshot_after);

    bad("{}", "action is required");
    bad("{\"action\":\"explode\"}", "unknown action");
    bad("{\"action\":7}", "action must be");
    bad("{\"action\":\"click\",\"x\":1280,\"y\":0}", "outside the 1280x720 screen");
    bad("{\"action\":\"click\",\"x\":-1,\"y\":0}", "outside");
    bad("{\"action\":\"click\",\"x\":\"1\",\"y\":0}", "x and y must be integers");
    bad("{\"action\":\"click\",\"x\":1.5,\"y\":0}", "x and y must be integers");
    bad("{\"action\":\"click\",\"x\":10}", "x and y must be integers");
    bad("{\"action\":\"click\",\"x\":1,\"y\":1,\"button\":\"fourth\"}", "button must be");
    bad("{\"action\":\"click\",\"x\":1,\"y\":1,\"button\":\"back\"}", "button must be");
    bad("{\"action\":\"scroll\",\"x\":1,\"y\":1}", "scroll needs");
    bad("{\"action\":\"scroll\",\"x\":1,\"y\":1,\"scroll_y\":1000}", "scroll_y must be between");
    bad("{\"action\":\"type\",\"text\":\"\"}", "text must be a non-empty string");
    bad("{\"action\":\"type\",\"text\":\"a\\u0001b\"}",
        "text[1]: character U+0001 cannot be typed");
    bad("{\"action\":\"key\",\"keys\":\"ctrl+nosuchkey\"}", "keys: unknown key name \"nosuchkey\"");
    bad("{\"action\":\"key\",\"keys\":\"\"}", "keys: empty key combination");
    bad("{\"action\":\"key\"}", "keys (or text) must be");
    bad("{\"action\":\"wait\",\"ms\":999999}", "ms must be between");
    bad("{\"action\":\"drag\",\"path\":[{\"x\":1,\"y\":1}]}", "path must be an array");
    bad("{\"action\":\"drag\",\"path\":[{\"x\":1,\"y\":1},{\"x\":99999,\"y\":1}]}",
        "path[1].(x, y) = (99999, 1) is outside");
    bad("{\"action\":\"click\",\"x\":1,\"y\":1,\"screenshot\":\"yes\"}", "screenshot must be");
    {
        /* Text past the bound is refused, not truncated. */
        size_t n = COMPUTER_MAX_TEXT + 1;
        char *big = malloc(n + 1);
        struct ph_error e;
        memset(big, 'a', n);
        big[n] = 0;
        json_t *j = json_pack("{s:s, s:s}", "action", "type", "text", big);
        CHECK(computer_parse(j, &screen_720, a, &e) < 0 &&
              strstr(e.message, "text must be at most"));
        json_decref(j);
        free(big);
    }
}

/* Anthropic's computer tool input, every action of computer_20250124. */
static void test_anthropic(struct computer_action *a)
{
    struct ph_error err;
    char desc[256];

    CHECK(parse("{\"action\":\"left_click\",\"coordinate\":[100,200]}", a, &err) == 0);
    CHECK(a->kind == COMPUTER_CLICK && a->button == VNC_BUTTON_LEFT && a->clicks == 1 &&
          a->n_path == 1 && a->path[0].x == 100 && a->path[0].y == 200 && a->held.n == 0);
    /* Without a coordinate: where the pointer is. */
    CHECK(parse("{\"action\":\"left_click\"}", a, &err) == 0 && a->n_path == 0);
    computer_describe(a, desc, sizeof(desc));
    CHECK_STR(desc, "computer left_click (here)");
    /* text on a click holds modifiers. */
    CHECK(parse("{\"action\":\"left_click\",\"coordinate\":[5,5],\"text\":\"shift\"}", a, &err) ==
              0 &&
          a->held.n == 1 && a->held.keys[0] == XK_Shift_L);
    CHECK(parse("{\"action\":\"left_click\",\"coordinate\":[5,5],\"text\":\"ctrl+shift\"}", a,
                &err) == 0 &&
          a->held.n == 2 && a->held.keys[0] == XK_Control_L && a->held.keys[1] == XK_Shift_L);
    CHECK(parse("{\"action\":\"right_click\",\"coordinate\":[1,2]}", a, &err) == 0 &&
          a->button == VNC_BUTTON_RIGHT);
    CHECK(parse("{\"action\":\"middle_click\",\"coordinate\":[1,2]}", a, &err) == 0 &&
          a->button == VNC_BUTTON_MIDDLE);
    CHECK(parse("{\"action\":\"double_click\",\"coordinate\":[1,2]}", a, &err) == 0 &&
          a->clicks == 2);
    CHECK(parse("{\"action\":\"triple_click\",\"coordinate\":[1,2]}", a, &err) == 0 &&
          a->clicks == 3 && a->button == VNC_BUTTON_LEFT);
    CHECK(parse("{\"action\":\"mouse_move\",\"coordinate\":[1279,719]}", a, &err) == 0 &&
          a->kind == COMPUTER_MOVE && a->path[0].x == 1279 && a->path[0].y == 719);
    CHECK(parse("{\"action\":\"left_click_drag\",\"start_coordinate\":[10,20],"
                "\"coordinate\":[300,400]}",
                a, &err) == 0);
    CHECK(a->kind == COMPUTER_DRAG && a->n_path == 2 && !a->from_here && a->path[0].x == 10 &&
          a->path[1].y == 400 && a->button == VNC_BUTTON_LEFT);
    /* The first tool version drags from where the pointer is. */
    CHECK(parse("{\"action\":\"left_click_drag\",\"coordinate\":[300,400]}", a, &err) == 0 &&
          a->from_here && a->n_path == 1 && a->path[0].x == 300);
    CHECK(parse("{\"action\":\"left_mouse_down\"}", a, &err) == 0 &&
          a->kind == COMPUTER_MOUSE_DOWN && a->n_path == 0 && a->button == VNC_BUTTON_LEFT);
    CHECK(parse("{\"action\":\"left_mouse_up\",\"coordinate\":[7,8]}", a, &err) == 0 &&
          a->kind == COMPUTER_MOUSE_UP && a->n_path == 1 && a->path[0].x == 7);
    CHECK(parse("{\"action\":\"scroll\",\"coordinate\":[640,360],\"scroll_direction\":\"down\","
                "\"scroll_amount\":5}",
                a, &err) == 0 &&
          a->kind == COMPUTER_SCROLL && a->scroll_y == 5 && a->scroll_x == 0);
    CHECK(parse("{\"action\":\"scroll\",\"scroll_direction\":\"up\",\"scroll_amount\":2}", a,
                &err) == 0 &&
          a->scroll_y == -2 && a->n_path == 0);
    CHECK(parse("{\"action\":\"scroll\",\"coordinate\":[1,1],\"scroll_direction\":\"left\","
                "\"scroll_amount\":1,\"text\":\"shift\"}",
                a, &err) == 0 &&
          a->scroll_x == -1 && a->held.n == 1);
    CHECK(parse("{\"action\":\"scroll\",\"coordinate\":[1,1],\"scroll_direction\":\"right\","
                "\"scroll_amount\":4}",
                a, &err) == 0 &&
          a->scroll_x == 4);
    /* key: xdotool's syntax. */
    CHECK(parse("{\"action\":\"key\",\"text\":\"ctrl+shift+t\"}", a, &err) == 0 &&
          a->n_combos == 1 && a->combos[0].n == 3 && a->combos[0].keys[1] == XK_Shift_L &&
          a->combos[0].keys[2] == 't');
    CHECK(parse("{\"action\":\"key\",\"text\":\"Return\"}", a, &err) == 0 &&
          a->combos[0].keys[0] == XK_Return);
    CHECK(parse("{\"action\":\"key\",\"text\":\"KP_0\"}", a, &err) == 0 &&
          a->combos[0].keys[0] == XK_KP_0);
    CHECK(parse("{\"action\":\"key\",\"text\":\"alt+Tab\"}", a, &err) == 0 &&
          a->combos[0].keys[0] == XK_Alt_L && a->combos[0].keys[1] == XK_Tab);
    CHECK(parse("{\"action\":\"key\",\"text\":\"super+Page_Down\"}", a, &err) == 0 &&
          a->combos[0].keys[0] == XK_Super_L && a->combos[0].keys[1] == XK_Page_Down);
    CHECK(parse("{\"action\":\"key\",\"text\":\"ctrl+a BackSpace\"}", a, &err) == 0 &&
          a->n_combos == 2 && a->combos[0].n == 2 && a->combos[1].n == 1 &&
          a->combos[1].keys[0] == XK_BackSpace);
    CHECK(parse("{\"action\":\"key\",\"text\":\"ctrl+equal\"}", a, &err) == 0 &&
          a->combos[0].keys[1] == XK_equal);
    CHECK(parse("{\"action\":\"hold_key\",\"text\":\"shift\",\"duration\":0.5}", a, &err) == 0 &&
          a->kind == COMPUTER_HOLD_KEY && a->held.n == 1 && a->held.keys[0] == XK_Shift_L &&
          a->wait_ms == 500 && a->n_combos == 0);
    CHECK(parse("{\"action\":\"hold_key\",\"text\":\"ctrl+shift\",\"duration\":2}", a, &err) == 0 &&
          a->held.n == 2 && a->wait_ms == 2000);
    CHECK(parse("{\"action\":\"type\",\"text\":\"Hello, World!\"}", a, &err) == 0 &&
          a->n_text == 13);
    CHECK(parse("{\"action\":\"cursor_position\"}", a, &err) == 0 &&
          a->kind == COMPUTER_CURSOR_POSITION && !a->screenshot_after);
    CHECK(parse("{\"action\":\"screenshot\"}", a, &err) == 0 && a->screenshot_after);
    CHECK(parse("{\"action\":\"wait\",\"duration\":1.5}", a, &err) == 0 && a->wait_ms == 1500);

    bad("{\"action\":\"left_click\",\"coordinate\":[1280,5]}",
        "coordinate = (1280, 5) is outside the 1280x720 screen");
    bad("{\"action\":\"left_click\",\"coordinate\":[5]}", "coordinate must be [x, y]");
    bad("{\"action\":\"left_click\",\"coordinate\":\"5,5\"}", "coordinate must be [x, y]");
    bad("{\"action\":\"left_click\",\"coordinate\":[5,-1]}", "coordinate = (5, -1) is outside");
    bad("{\"action\":\"left_click\",\"coordinate\":[5,5],\"text\":\"shift+nokey\"}",
        "text: unknown key name \"nokey\"");
    bad("{\"action\":\"left_click\",\"coordinate\":[5,5],\"text\":7}", "text must name the keys");
    bad("{\"action\":\"mouse_move\"}", "x and y must be integers");
    bad("{\"action\":\"left_click_drag\",\"start_coordinate\":[1,1]}", "x and y must be integers");
    bad("{\"action\":\"left_click_drag\",\"start_coordinate\":[1,1,1],\"coordinate\":[2,2]}",
        "start_coordinate must be [x, y]");
    bad("{\"action\":\"scroll\",\"coordinate\":[1,1],\"scroll_direction\":\"sideways\","
        "\"scroll_amount\":1}",
        "scroll_direction must be");
    bad("{\"action\":\"scroll\",\"coordinate\":[1,1],\"scroll_direction\":\"down\"}",
        "scroll_amount is required");
    bad("{\"action\":\"scroll\",\"coordinate\":[1,1],\"scroll_direction\":\"down\","
        "\"scroll_amount\":-3}",
        "scroll_amount must be between 0 and 50");
    bad("{\"action\":\"scroll\",\"coordinate\":[1,1],\"scroll_direction\":\"down\","
        "\"scroll_amount\":\"3\"}",
        "scroll_amount must be an integer");
    bad("{\"action\":\"key\",\"text\":\"ctrl+\"}", "text:");
    bad("{\"action\":\"key\",\"text\":\"   \"}", "text: empty key combination");
    bad("{\"action\":\"hold_key\",\"text\":\"shift\"}", "duration is required");
    bad("{\"action\":\"hold_key\",\"text\":\"shift\",\"duration\":-1}", "duration must be");
    bad("{\"action\":\"hold_key\",\"text\":\"shift\",\"duration\":100}", "duration must be");
    bad("{\"action\":\"hold_key\",\"duration\":1}", "text must be a combination");
    bad("{\"action\":\"hold_key\",\"text\":\"F20\",\"duration\":1}", "cannot be held");
    bad("{\"action\":\"wait\",\"duration\":\"1\"}", "duration must be a number");
    bad("{\"action\":\"type\"}", "text must be a non-empty string");
}

/* OpenAI's computer_call.action objects: bare, wrapped, and the item. */
static void test_openai(struct computer_action *a)
{
    struct ph_error err;

    CHECK(parse("{\"type\":\"click\",\"button\":\"left\",\"x\":100,\"y\":50}", a, &err) == 0);
    CHECK(a->openai && a->kind == COMPUTER_CLICK && a->button == VNC_BUTTON_LEFT &&
          a->clicks == 1 && a->path[0].x == 100 && a->path[0].y == 50);
    CHECK_STR(a->name, "click");
    CHECK(parse("{\"type\":\"click\",\"button\":\"right\",\"x\":1,\"y\":1}", a, &err) == 0 &&
          a->button == VNC_BUTTON_RIGHT);
    CHECK(parse("{\"type\":\"click\",\"button\":\"wheel\",\"x\":1,\"y\":1}", a, &err) == 0 &&
          a->button == VNC_BUTTON_MIDDLE);
    CHECK(parse("{\"type\":\"click\",\"button\":\"back\",\"x\":1,\"y\":1}", a, &err) == 0 &&
          a->button == COMPUTER_BUTTON_BACK);
    CHECK(parse("{\"type\":\"click\",\"button\":\"forward\",\"x\":1,\"y\":1}", a, &err) == 0 &&
          a->button == COMPUTER_BUTTON_FORWARD);
    CHECK(parse("{\"type\":\"click\",\"button\":\"left\",\"x\":1,\"y\":1,\"keys\":[\"CTRL\"]}", a,
                &err) == 0 &&
          a->held.n == 1 && a->held.keys[0] == XK_Control_L);
    CHECK(parse("{\"type\":\"double_click\",\"x\":10,\"y\":20}", a, &err) == 0 && a->clicks == 2 &&
          a->button == VNC_BUTTON_LEFT);
    CHECK(parse("{\"type\":\"drag\",\"path\":[{\"x\":1,\"y\":2},{\"x\":30,\"y\":40}]}", a, &err) ==
              0 &&
          a->kind == COMPUTER_DRAG && a->n_path == 2 && a->path[1].x == 30 &&
          a->button == VNC_BUTTON_LEFT);
    CHECK(parse("{\"type\":\"keypress\",\"keys\":[\"CTRL\",\"SHIFT\",\"T\"]}", a, &err) == 0);
    CHECK(a->kind == COMPUTER_KEY && a->n_combos == 1 && a->combos[0].n == 3 &&
          a->combos[0].keys[0] == XK_Control_L && a->combos[0].keys[1] == XK_Shift_L &&
          a->combos[0].keys[2] == 'T');
    CHECK(parse("{\"type\":\"keypress\",\"keys\":[\"ENTER\"]}", a, &err) == 0 &&
          a->combos[0].keys[0] == XK_Return);
    CHECK(parse("{\"type\":\"keypress\",\"keys\":[\"ARROWLEFT\"]}", a, &err) == 0 &&
          a->combos[0].keys[0] == XK_Left);
    CHECK(parse("{\"type\":\"keypress\",\"keys\":[\"ESC\"]}", a, &err) == 0 &&
          a->combos[0].keys[0] == XK_Escape);
    CHECK(parse("{\"type\":\"keypress\",\"keys\":[\"SPACE\"]}", a, &err) == 0 &&
          a->combos[0].keys[0] == XK_space);
    CHECK(parse("{\"type\":\"move\",\"x\":5,\"y\":6}", a, &err) == 0 && a->kind == COMPUTER_MOVE &&
          a->path[0].y == 6);
    CHECK(parse("{\"type\":\"screenshot\"}", a, &err) == 0 && a->kind == COMPUTER_SCREENSHOT &&
          a->screenshot_after);
    /* Pixels to wheel steps. */
    CHECK(parse("{\"type\":\"scroll\",\"x\":640,\"y\":360,\"scroll_x\":0,\"scroll_y\":300}", a,
                &err) == 0 &&
          a->scroll_y == 300 / COMPUTER_PX_PER_STEP && a->scroll_x == 0);
    CHECK(parse("{\"type\":\"scroll\",\"x\":640,\"y\":360,\"scroll_x\":-20,\"scroll_y\":0}", a,
                &err) == 0 &&
          a->scroll_x == -1);
    CHECK(parse("{\"type\":\"type\",\"text\":\"hello\"}", a, &err) == 0 && a->n_text == 5);
    CHECK(parse("{\"type\":\"wait\"}", a, &err) == 0 && a->wait_ms == COMPUTER_OPENAI_WAIT_MS);
    /* Wrapped: {"action": {...}} and the whole computer_call item. */
    CHECK(parse("{\"action\":{\"type\":\"click\",\"button\":\"left\",\"x\":7,\"y\":8}}", a, &err) ==
              0 &&
          a->openai && a->path[0].x == 7);
    CHECK(parse("{\"type\":\"computer_call\",\"id\":\"cu_1\",\"call_id\":\"call_1\","
                "\"status\":\"completed\",\"pending_safety_checks\":[],"
                "\"action\":{\"type\":\"keypress\",\"keys\":[\"CTRL\",\"L\"]}}",
                a, &err) == 0 &&
          a->kind == COMPUTER_KEY && a->combos[0].n == 2);
    CHECK(parse("{\"action\":{\"type\":\"move\",\"x\":1,\"y\":1},\"screenshot\":true}", a, &err) ==
              0 &&
          a->screenshot_after);

    bad("{\"type\":\"fly\"}", "type \"fly\" is not an action");
    bad("{\"type\":\"click\",\"button\":\"left\",\"x\":1280,\"y\":1}",
        "(x, y) = (1280, 1) is outside the 1280x720 screen");
    bad("{\"type\":\"click\",\"button\":\"fourth\",\"x\":1,\"y\":1}",
        "button must be \"left\", \"right\", \"wheel\", \"back\" or \"forward\"");
    bad("{\"type\":\"click\",\"button\":\"left\",\"x\":1}", "x and y must be integers");
    bad("{\"action\":{\"type\":\"click\",\"button\":\"left\",\"x\":1}}",
        "action.x and action.y must be integers");
    bad("{\"action\":{\"type\":\"drag\",\"path\":[{\"x\":1,\"y\":1},{\"x\":2}]}}",
        "action.path[1].x and action.path[1].y must be integers");
    bad("{\"type\":\"drag\",\"path\":[]}", "path must be an array of 2..64 points");
    bad("{\"type\":\"keypress\",\"keys\":\"CTRL+L\"}", "keys must be an array");
    bad("{\"type\":\"keypress\",\"keys\":[]}", "keys must not be empty");
    bad("{\"type\":\"keypress\",\"keys\":[\"CTRL\",\"NOPE\"]}", "keys[1]: unknown key name");
    bad("{\"type\":\"keypress\",\"keys\":[\"CTRL\",3]}", "keys[1] must be a string");
    bad("{\"type\":\"scroll\",\"x\":1,\"y\":1,\"scroll_y\":999999}",
        "scroll_y must be between -5000 and 5000");
    bad("{\"type\":\"scroll\",\"x\":1,\"y\":1,\"scroll_y\":\"down\"}",
        "scroll_y must be an integer");
    bad("{\"type\":\"type\"}", "text must be a non-empty string");
    bad("{\"type\":\"move\",\"x\":1,\"y\":1,\"keys\":[\"F20\"]}", "keys: key 0x");
    bad("{\"action\":{\"x\":1}}", "action.type is required");
    bad("{\"type\":\"computer_call\",\"call_id\":\"c\"}", "action is required");
}

static void test_space(struct computer_action *a)
{
    struct computer_space sp;
    struct ph_error err = {0};

    /* Anthropic's reference: XGA for 4:3, WXGA for 16:10, FWXGA for ~16:9,
     * only when smaller than the screen. */
    CHECK(computer_space_init(&sp, 1280, 960, 0, 0, true, &err) == 0 && sp.w == 1024 &&
          sp.h == 768);
    CHECK(computer_space_init(&sp, 1440, 900, 0, 0, true, &err) == 0 && sp.w == 1280 &&
          sp.h == 800);
    CHECK(computer_space_init(&sp, 1920, 1080, 0, 0, true, &err) == 0 && sp.w == 1366 &&
          sp.h == 768);
    CHECK(computer_space_init(&sp, 1280, 720, 0, 0, true, &err) == 0 && sp.w == 1280 &&
          sp.h == 720);
    CHECK(computer_space_init(&sp, 1024, 768, 0, 0, true, &err) == 0 && sp.w == 1024);
    CHECK(computer_space_init(&sp, 1000, 1000, 0, 0, true, &err) == 0 && sp.w == 1000);
    /* Near 16:10 but a row short of WXGA: not scaled up to it. */
    CHECK(computer_space_init(&sp, 1289, 799, 0, 0, true, &err) == 0 && sp.w == 1289 &&
          sp.h == 799);
    /* Sizes asked for. */
    CHECK(computer_space_init(&sp, 1280, 720, 0, 0, false, &err) == 0 && sp.w == 1280);
    CHECK(computer_space_init(&sp, 1280, 720, 640, 360, false, &err) == 0 && sp.w == 640 &&
          sp.h == 360);
    CHECK(computer_space_init(&sp, 1280, 720, 1024, 0, false, &err) == 0 && sp.h == 576);
    CHECK(computer_space_init(&sp, 1280, 720, 0, 540, false, &err) == 0 && sp.w == 960);
    CHECK(computer_space_init(&sp, 1280, 720, 960, 720, false, &err) < 0 &&
          strstr(err.message, "aspect ratio") && strstr(err.message, "960x540 would"));
    CHECK(computer_space_init(&sp, 1280, 720, 2560, 1440, false, &err) < 0 &&
          strstr(err.message, "display_width x display_height"));
    CHECK(computer_space_init(&sp, 1280, 720, 32, 18, false, &err) < 0 &&
          strstr(err.message, "at least 64"));

    /* Both ways: model (1024x768) <-> screen (1280x960). */
    computer_space_init(&sp, 1280, 960, 0, 0, true, &err);
    int x = 512, y = 384;
    computer_space_to_screen(&sp, &x, &y);
    CHECK(x == 640 && y == 480);
    computer_space_from_screen(&sp, &x, &y);
    CHECK(x == 512 && y == 384);
    x = 1023;
    y = 767;
    computer_space_to_screen(&sp, &x, &y);
    CHECK(x == 1279 && y == 959);
    x = 1279;
    y = 959;
    computer_space_from_screen(&sp, &x, &y);
    CHECK(x == 1023 && y == 767);
    x = 101;
    y = 0;
    computer_space_to_screen(&sp, &x, &y);
    CHECK(x == 126 && y == 0); /* 101 * 1.25 = 126.25 */

    /* Actions in the scaled space, checked against it, mapped to the screen. */
    CHECK(parse_in(&sp, "{\"action\":\"left_click\",\"coordinate\":[512,384]}", a, &err) == 0 &&
          a->path[0].x == 640 && a->path[0].y == 480);
    CHECK(parse_in(&sp, "{\"type\":\"click\",\"button\":\"left\",\"x\":1000,\"y\":700}", a, &err) ==
              0 &&
          a->path[0].x == 1250 && a->path[0].y == 875);
    CHECK(parse_in(&sp,
                   "{\"action\":\"left_click_drag\",\"start_coordinate\":[0,0],"
                   "\"coordinate\":[1023,767]}",
                   a, &err) == 0 &&
          a->path[1].x == 1279 && a->path[1].y == 959);
    bad_in(&sp, "{\"action\":\"left_click\",\"coordinate\":[1024,100]}",
           "coordinate = (1024, 100) is outside the 1024x768 display");
    bad_in(&sp, "{\"type\":\"move\",\"x\":1100,\"y\":10}", "outside the 1024x768 display");
}

int main(void)
{
    struct computer_action *a = malloc(sizeof(*a));

    test_porthole(a);
    test_anthropic(a);
    test_openai(a);
    test_space(a);
    free(a);
    CHECK_DONE();
}
