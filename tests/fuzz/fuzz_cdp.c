/* Fuzz target for the CDP proxy's pure parts (gateway/cdp_parse.c). The
 * first byte picks one, the rest is its input:
 *   'm'        a client's CDP message, as policy looks at it
 *   'j' / 'J'  a /json answer of the guest's Chromium, rewritten (ws, wss)
 *   'p' / 'P'  a WebSocket path (/cdp/ID/TOKEN/devtools/..., root form)
 *   'g'        a /json/version answer, for the browser's guid
 * Whatever the bytes: no crash, and above all no navigation passes
 * unseen: a message that any JSON reading takes for Page.navigate or
 * Target.createTarget, also wrapped in Target.sendMessageToTarget, is
 * never waved through. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cdp_proxy.h"
#include "fuzz.h"

#define HOST "127.1.2.3:4567"
#define BASE "/cdp/br-abc/tok123"

static bool segment(const char *s, size_t len)
{
    if (len == 0 || len > CDP_SEGMENT_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

/* Whether a lax reading of msg (duplicates allowed: the last wins, as in
 * many parsers) finds a navigation, at any depth of nesting. */
static bool navigates(const char *msg, size_t len, int depth)
{
    json_error_t je;
    json_t *root = json_loadb(msg, len, 0, &je);
    bool yes = false;

    if (depth > 8 || !json_is_object(root)) {
        json_decref(root);
        return false;
    }
    const char *method = json_string_value(json_object_get(root, "method"));
    json_t *inner = json_object_get(json_object_get(root, "params"), "message");
    if (method &&
        (strcmp(method, "Page.navigate") == 0 || strcmp(method, "Target.createTarget") == 0))
        yes = true;
    else if (method && strcmp(method, "Target.sendMessageToTarget") == 0 && json_is_string(inner))
        yes = navigates(json_string_value(inner), json_string_length(inner), depth + 1);
    json_decref(root);
    return yes;
}

static void message(const uint8_t *p, size_t n)
{
    char *msg = fuzz_memdup(p, n);
    struct cdp_call call;
    int r = cdp_inspect(msg, n, &call);

    REQUIRE(r == CDP_PASS || r == CDP_NAVIGATES || r == -EINVAL);
    if (r == CDP_PASS)
        REQUIRE(!navigates(msg, n, 0));
    if (r == CDP_NAVIGATES) {
        REQUIRE(call.method && call.url);
        REQUIRE(strcmp(call.method, "Page.navigate") == 0 ||
                strcmp(call.method, "Target.createTarget") == 0);
    }
    if (r != CDP_PASS) {
        /* The refusal answers in the message's id and session. */
        char *reply = cdp_error_reply(call.id, call.session_id, -32000, "refused");
        json_error_t je;
        json_t *v = reply ? json_loads(reply, 0, &je) : NULL;
        REQUIRE(json_is_object(v));
        REQUIRE(json_integer_value(json_object_get(json_object_get(v, "error"), "code")) == -32000);
        REQUIRE(!call.id || json_equal(json_object_get(v, "id"), call.id));
        REQUIRE(!call.session_id ||
                strcmp(json_string_value(json_object_get(v, "sessionId")), call.session_id) == 0);
        json_decref(v);
        free(reply);
    }
    cdp_call_done(&call);
    free(msg);
}

/* Every debugger URL left in o points back at the gateway. */
static void check_rewritten(json_t *o, bool tls)
{
    const char *key;
    json_t *v;
    const char *ws = tls ? "wss://" HOST BASE "/devtools/" : "ws://" HOST BASE "/devtools/";
    const char *param = tls ? "wss=" HOST BASE "/devtools/" : "ws=" HOST BASE "/devtools/";

    if (!json_is_object(o))
        return;
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "webSocketDebuggerUrl") == 0) {
            REQUIRE(json_is_string(v));
            REQUIRE(strncmp(json_string_value(v), ws, strlen(ws)) == 0);
        } else if (strncmp(key, "devtoolsFrontendUrl", 19) == 0) {
            REQUIRE(json_is_string(v));
            REQUIRE(strstr(json_string_value(v), param));
        }
    }
}

static void rewrite(const uint8_t *p, size_t n, bool tls)
{
    char *body = fuzz_memdup(p, n), *out = NULL;
    int r = cdp_rewrite_json(body, n, tls ? "wss://" HOST BASE : "ws://" HOST BASE, &out);

    REQUIRE(r == 0 || r == -EINVAL);
    if (r == 0) {
        json_error_t je;
        json_t *v = json_loads(out, 0, &je), *e;
        size_t i;
        REQUIRE(json_is_object(v) || json_is_array(v));
        if (json_is_object(v))
            check_rewritten(v, tls);
        json_array_foreach(v, i, e) check_rewritten(e, tls);
        json_decref(v);
    } else {
        REQUIRE(!out);
    }
    free(out);
    free(body);
}

static void ws_path(const char *path, bool root_form)
{
    char id[CDP_SEGMENT_MAX + 1], token[CDP_SEGMENT_MAX + 1], upstream[CDP_SEGMENT_MAX + 32];
    char again[2 * CDP_SEGMENT_MAX + sizeof(upstream) + 16];

    if (cdp_ws_path_parse(path, root_form, id, sizeof(id), token, sizeof(token), upstream,
                          sizeof(upstream)) < 0)
        return;
    /* The parts are segments, and put together they are the path. */
    const char *target = NULL;
    bool page = strncmp(upstream, "/devtools/page/", 15) == 0;
    if (page)
        target = upstream + 15;
    else if (strncmp(upstream, "/devtools/browser/", 18) == 0)
        target = upstream + 18;
    else
        REQUIRE(upstream[0] == '\0');
    if (target)
        REQUIRE(segment(target, strlen(target)));
    if (!root_form)
        REQUIRE(segment(id, strlen(id)) && segment(token, strlen(token)));
    snprintf(again, sizeof(again), "%s%s%s%s/devtools/%s%s%s", root_form ? "" : "/cdp/",
             root_form ? "" : id, root_form ? "" : "/", root_form ? "" : token,
             page ? "page" : "browser", target ? "/" : "", target ? target : "");
    size_t pl = strlen(path), al = strlen(again);
    REQUIRE(pl == al || (pl == al + 1 && path[al] == '/'));
    REQUIRE(strncmp(path, again, al) == 0);
}

static void guid(const uint8_t *p, size_t n)
{
    char *body = fuzz_memdup(p, n);
    char out[CDP_SEGMENT_MAX + 1];

    if (cdp_browser_guid(body, n, out, sizeof(out)) == 0)
        REQUIRE(segment(out, strlen(out)));
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *s;

    switch (data[0]) {
    case 'm':
        message(p, n);
        break;
    case 'j':
    case 'J':
        rewrite(p, n, data[0] == 'J');
        break;
    case 'p':
    case 'P':
        s = fuzz_strndup(p, n);
        ws_path(s, data[0] == 'P');
        free(s);
        break;
    case 'g':
        guid(p, n);
        break;
    default:
        break;
    }
    return 0;
}
