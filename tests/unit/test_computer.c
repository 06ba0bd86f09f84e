/* Computer-use actions: parsing, bounds and key names, before any RFB. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "computer.h"
#include "recorder/vnc.h"

static int parse(const char *text, struct computer_action *a, struct ph_error *err)
{
    json_t *j = json_loads(text, 0, NULL);
    if (!j) {
        fprintf(stderr, "bad JSON %s\n", text);
        exit(2);
    }
    int r = computer_parse(j, 1280, 720, a, err);
    json_decref(j);
    return r;
}

static void bad(const char *text, const char *needle)
{
    struct computer_action *a = malloc(sizeof(*a));
    struct ph_error err = {0};
    int r = parse(text, a, &err);
    if (r >= 0 || err.kind != PH_ERR_INVALID || !strstr(err.message, needle)) {
        fprintf(stderr, "%s: r=%d \"%s\", wanted \"%s\"\n", text, r, err.message, needle);
        check_failures++;
    }
    free(a);
}

int main(void)
{
    struct computer_action *a = malloc(sizeof(*a));
    struct ph_error err;
    char desc[256];

    CHECK(parse("{\"action\":\"click\",\"x\":640,\"y\":360}", a, &err) == 0);
    CHECK(a->kind == COMPUTER_CLICK && a->button == VNC_BUTTON_LEFT && a->clicks == 1);
    CHECK(a->path[0].x == 640 && a->path[0].y == 360);
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
          a->n_path == 3 && a->path[2].x == 9);
    CHECK(parse("{\"action\":\"drag\",\"start_x\":1,\"start_y\":1,\"x\":50,\"y\":60}", a, &err) ==
              0 &&
          a->n_path == 2 && a->path[1].y == 60);
    CHECK(parse("{\"action\":\"scroll\",\"x\":10,\"y\":10,\"scroll_y\":3}", a, &err) == 0 &&
          a->scroll_y == 3);
    CHECK(parse("{\"action\":\"type\",\"text\":\"hi \\u00e9\\u20ac\"}", a, &err) == 0);
    CHECK(a->n_text == 5 && a->text[0] == 'h' && a->text[3] == 0xe9 && a->text[4] == 0x20ac);
    CHECK(parse("{\"action\":\"key\",\"keys\":\"ctrl+l\"}", a, &err) == 0 && a->n_keys == 2);
    CHECK(a->keys[0] == 0xffe3 && a->keys[1] == 'l');
    CHECK(parse("{\"action\":\"key\",\"keys\":\"shift+Tab\"}", a, &err) == 0 &&
          a->keys[1] == 0xff09);
    CHECK(parse("{\"action\":\"key\",\"keys\":\"Return\"}", a, &err) == 0 && a->n_keys == 1 &&
          a->keys[0] == 0xff0d);
    CHECK(parse("{\"action\":\"keypress\",\"keys\":[\"CTRL\",\"A\"]}", a, &err) == 0 &&
          a->n_keys == 2);
    CHECK(parse("{\"action\":\"wait\",\"ms\":250}", a, &err) == 0 && a->wait_ms == 250);
    CHECK(parse("{\"action\":\"screenshot\"}", a, &err) == 0 && a->screenshot_after);
    CHECK(parse("{\"action\":\"click\",\"x\":3,\"y\":4,\"screenshot\":true}", a, &err) == 0 &&
          a->screenshot_after);

    bad("{}", "action is required");
    bad("{\"action\":\"explode\"}", "unknown action");
    bad("{\"action\":\"click\",\"x\":1280,\"y\":0}", "outside the 1280x720 screen");
    bad("{\"action\":\"click\",\"x\":-1,\"y\":0}", "outside");
    bad("{\"action\":\"click\",\"x\":\"1\",\"y\":0}", "must be integers");
    bad("{\"action\":\"click\",\"x\":1,\"y\":1,\"button\":\"fourth\"}", "button must be");
    bad("{\"action\":\"scroll\",\"x\":1,\"y\":1}", "scroll needs");
    bad("{\"action\":\"scroll\",\"x\":1,\"y\":1,\"scroll_y\":1000}", "scroll_y must be between");
    bad("{\"action\":\"type\",\"text\":\"\"}", "non-empty");
    bad("{\"action\":\"type\",\"text\":\"a\\u0001b\"}", "cannot be typed");
    bad("{\"action\":\"key\",\"keys\":\"ctrl+nosuchkey\"}", "keys");
    bad("{\"action\":\"key\"}", "keys must be");
    bad("{\"action\":\"wait\",\"ms\":999999}", "ms must be between");
    bad("{\"action\":\"drag\",\"path\":[{\"x\":1,\"y\":1}]}", "path must be an array");
    {
        /* Text past the bound is refused, not truncated. */
        size_t n = COMPUTER_MAX_TEXT + 1;
        char *big = malloc(n + 1);
        memset(big, 'a', n);
        big[n] = 0;
        json_t *j = json_pack("{s:s, s:s}", "action", "type", "text", big);
        CHECK(computer_parse(j, 1280, 720, a, &err) < 0 && strstr(err.message, "at most"));
        json_decref(j);
        free(big);
    }
    free(a);
    CHECK_DONE();
}
