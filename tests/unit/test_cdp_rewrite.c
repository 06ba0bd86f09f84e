/* Unit tests for the pure parts of gateway/cdp_proxy.c: rewriting
 * Chromium's /json answers so they point back at the gateway, what policy
 * sees in a client's CDP message, the error answer, and WebSocket paths. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdp_proxy.h"

#include "check.h"

#define BASE "ws://127.1.2.3:4567/cdp/br-abc/tok123"

static json_t *parse(const char *s)
{
    json_error_t je;
    json_t *v = json_loads(s, 0, &je);
    if (!v)
        fprintf(stderr, "bad JSON in test: %s\n", je.text);
    return v;
}

static void test_rewrite_version(void)
{
    const char *in =
        "{\n   \"Browser\": \"Chrome/156.0.8078.79\",\n   \"Protocol-Version\": \"1.3\",\n"
        "   \"webSocketDebuggerUrl\": "
        "\"ws://127.0.0.1:9223/devtools/browser/219ab35d-37ef-4ed4-a8ce-d1cdf9645c06\"\n}\n";
    char *out = NULL;

    CHECK(cdp_rewrite_json(in, strlen(in), BASE, &out) == 0);
    json_t *v = out ? parse(out) : NULL;
    CHECK_STR(json_string_value(json_object_get(v, "webSocketDebuggerUrl")),
              BASE "/devtools/browser/219ab35d-37ef-4ed4-a8ce-d1cdf9645c06");
    CHECK_STR(json_string_value(json_object_get(v, "Browser")), "Chrome/156.0.8078.79");
    CHECK_STR(json_string_value(json_object_get(v, "Protocol-Version")), "1.3");
    CHECK(out && !strstr(out, "127.0.0.1:9223"));
    json_decref(v);
    free(out);
}

static void test_rewrite_list(void)
{
    const char *in =
        "[{\"description\":\"\",\"devtoolsFrontendUrl\":\"https://chrome-devtools-frontend."
        "appspot.com/serve_rev/@a21c/inspector.html?ws=127.0.0.1:9223/devtools/page/3B12\","
        "\"id\":\"3B12\",\"title\":\"t\",\"type\":\"page\",\"url\":\"about:blank\","
        "\"webSocketDebuggerUrl\":\"ws://127.0.0.1:9223/devtools/page/3B12\"},"
        "{\"devtoolsFrontendUrl\":\"/devtools/inspector.html?ws=127.0.0.1:9223/devtools/page/"
        "8C02&panel=x\",\"devtoolsFrontendUrlCompat\":\"/x.html?a=1&ws=10.0.2.15:9222/devtools/"
        "page/8C02\",\"id\":\"8C02\",\"webSocketDebuggerUrl\":\"ws://127.0.0.1:9223/devtools/"
        "page/8C02\"},"
        "{\"id\":\"odd\",\"webSocketDebuggerUrl\":\"ws://127.0.0.1:9223/elsewhere\","
        "\"devtoolsFrontendUrl\":\"/inspector.html?ws=127.0.0.1:9223/json\"},"
        "\"not an object\"]";
    char *out = NULL;

    CHECK(cdp_rewrite_json(in, strlen(in), BASE, &out) == 0);
    json_t *v = out ? parse(out) : NULL;
    CHECK(json_array_size(v) == 4);
    json_t *a = json_array_get(v, 0), *b = json_array_get(v, 1), *c = json_array_get(v, 2);
    CHECK_STR(json_string_value(json_object_get(a, "webSocketDebuggerUrl")),
              BASE "/devtools/page/3B12");
    CHECK_STR(json_string_value(json_object_get(a, "devtoolsFrontendUrl")),
              "https://chrome-devtools-frontend.appspot.com/serve_rev/@a21c/inspector.html?"
              "ws=127.1.2.3:4567/cdp/br-abc/tok123/devtools/page/3B12");
    CHECK_STR(json_string_value(json_object_get(a, "url")), "about:blank");
    CHECK_STR(json_string_value(json_object_get(b, "devtoolsFrontendUrl")),
              "/devtools/inspector.html?ws=127.1.2.3:4567/cdp/br-abc/tok123/devtools/page/"
              "8C02&panel=x");
    CHECK_STR(json_string_value(json_object_get(b, "devtoolsFrontendUrlCompat")),
              "/x.html?a=1&ws=127.1.2.3:4567/cdp/br-abc/tok123/devtools/page/8C02");
    /* Whatever cannot point back here is dropped, never left naming the
     * guest. */
    CHECK(json_object_get(c, "webSocketDebuggerUrl") == NULL);
    CHECK(json_object_get(c, "devtoolsFrontendUrl") == NULL);
    CHECK_STR(json_string_value(json_object_get(c, "id")), "odd");
    CHECK_STR(json_string_value(json_array_get(v, 3)), "not an object");
    CHECK(out && !strstr(out, "9223") && !strstr(out, "10.0.2.15"));
    json_decref(v);
    free(out);
}

static void test_rewrite_tls_and_errors(void)
{
    const char *in = "[{\"webSocketDebuggerUrl\":\"ws://127.0.0.1:9223/devtools/page/A\","
                     "\"devtoolsFrontendUrl\":\"/i.html?ws=127.0.0.1:9223/devtools/page/A\"}]";
    char *out = NULL;

    CHECK(cdp_rewrite_json(in, strlen(in), "wss://gw.example:443/cdp/x/t", &out) == 0);
    json_t *v = out ? parse(out) : NULL;
    json_t *a = json_array_get(v, 0);
    CHECK_STR(json_string_value(json_object_get(a, "webSocketDebuggerUrl")),
              "wss://gw.example:443/cdp/x/t/devtools/page/A");
    CHECK_STR(json_string_value(json_object_get(a, "devtoolsFrontendUrl")),
              "/i.html?wss=gw.example:443/cdp/x/t/devtools/page/A");
    json_decref(v);
    free(out);

    out = (char *)1;
    CHECK(cdp_rewrite_json("not json", 8, BASE, &out) == -EINVAL && out == NULL);
    CHECK(cdp_rewrite_json("\"string\"", 8, BASE, &out) == -EINVAL);
    CHECK(cdp_rewrite_json("{\"a\":", 5, BASE, &out) == -EINVAL);
    CHECK(cdp_rewrite_json("{}", 2, BASE, &out) == 0 && out && strcmp(out, "{}") == 0);
    free(out);
}

static int inspect(const char *msg, struct cdp_call *call)
{
    return cdp_inspect(msg, strlen(msg), call);
}

static void test_inspect(void)
{
    struct cdp_call call;

    /* Most traffic is never parsed. */
    CHECK(inspect("{\"id\":1,\"method\":\"Runtime.evaluate\",\"params\":{\"expression\":\"1\"}}",
                  &call) == CDP_PASS);
    CHECK(call.roots[0] == NULL);
    cdp_call_done(&call);
    CHECK(inspect("garbage without keywords", &call) == CDP_PASS);
    cdp_call_done(&call);

    CHECK(inspect("{\"id\":7,\"method\":\"Page.navigate\",\"params\":{\"url\":\"https://a.test/\"},"
                  "\"sessionId\":\"S1\"}",
                  &call) == CDP_NAVIGATES);
    CHECK_STR(call.method, "Page.navigate");
    CHECK_STR(call.url, "https://a.test/");
    CHECK_STR(call.session_id, "S1");
    CHECK(json_integer_value(call.id) == 7);
    cdp_call_done(&call);

    CHECK(inspect(
              "{\"id\":8,\"method\":\"Target.createTarget\",\"params\":{\"url\":\"about:blank\"}}",
              &call) == CDP_NAVIGATES);
    CHECK_STR(call.method, "Target.createTarget");
    CHECK_STR(call.url, "about:blank");
    CHECK(call.session_id == NULL);
    cdp_call_done(&call);

    /* No url: policy still decides, on "". */
    CHECK(inspect("{\"id\":9,\"method\":\"Page.navigate\",\"params\":{}}", &call) == CDP_NAVIGATES);
    CHECK_STR(call.url, "");
    cdp_call_done(&call);

    /* Mentions a navigation, is something else. */
    CHECK(
        inspect("{\"id\":10,\"method\":\"Page.navigateToHistoryEntry\",\"params\":{\"entryId\":1}}",
                &call) == CDP_PASS);
    cdp_call_done(&call);
    CHECK(inspect("{\"id\":11,\"method\":\"Runtime.evaluate\",\"params\":{\"expression\":"
                  "\"'Page.navigate'\"}}",
                  &call) == CDP_PASS);
    cdp_call_done(&call);

    /* Escapes that spell the method are seen through. */
    CHECK(inspect("{\"id\":12,\"\\u006dethod\":\"Page.navig\\u0061te\",\"params\":{\"url\":"
                  "\"https://b.test/\"}}",
                  &call) == CDP_NAVIGATES);
    CHECK_STR(call.url, "https://b.test/");
    cdp_call_done(&call);

    /* Duplicate keys: which one Chromium runs is not ours to guess. */
    CHECK(inspect("{\"id\":13,\"method\":\"Runtime.evaluate\",\"method\":\"Page.navigate\","
                  "\"params\":{\"url\":\"https://c.test/\"}}",
                  &call) == -EINVAL);
    CHECK(json_integer_value(call.id) == 13);
    cdp_call_done(&call);
    CHECK(inspect("{\"id\":14,\"method\":\"Page.navigate\",\"params\":{\"url\":\"https://ok/\","
                  "\"url\":\"https://evil/\"}}",
                  &call) == -EINVAL);
    cdp_call_done(&call);
    CHECK(inspect("[{\"method\":\"Page.navigate\"}]", &call) == -EINVAL);
    cdp_call_done(&call);
    CHECK(inspect("{\"method\":\"Page.navigate\"", &call) == -EINVAL);
    CHECK(call.id == NULL);
    cdp_call_done(&call);

    /* The old, non-flattened way to reach a page. */
    const char *nested =
        "{\"id\":15,\"method\":\"Target.sendMessageToTarget\",\"params\":{\"targetId\":\"T\","
        "\"message\":\"{\\\"id\\\":1,\\\"method\\\":\\\"Page.navigate\\\",\\\"params\\\":{"
        "\\\"url\\\":\\\"https://d.test/\\\"}}\"}}";
    CHECK(inspect(nested, &call) == CDP_NAVIGATES);
    CHECK_STR(call.url, "https://d.test/");
    CHECK(json_integer_value(call.id) == 15); /* answered in the outer id */
    cdp_call_done(&call);
    const char *nested_other =
        "{\"id\":16,\"method\":\"Target.sendMessageToTarget\",\"params\":{\"message\":"
        "\"{\\\"id\\\":1,\\\"method\\\":\\\"Runtime.enable\\\"}\"},\"x\":\"Page.navigate\"}";
    CHECK(inspect(nested_other, &call) == CDP_PASS);
    cdp_call_done(&call);

    /* Nesting without end is refused rather than followed. */
    char *deep = strdup("{\"method\":\"Page.navigate\",\"params\":{\"url\":\"u\"}}");
    for (int i = 0; i < 5; i++) {
        json_t *o = json_pack("{s:i,s:s,s:{s:s}}", "id", 100 + i, "method",
                              "Target.sendMessageToTarget", "params", "message", deep);
        free(deep);
        deep = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    }
    CHECK(inspect(deep, &call) == -EINVAL);
    CHECK(json_integer_value(call.id) == 104);
    cdp_call_done(&call);
    free(deep);
}

static void test_error_reply(void)
{
    json_t *id = json_integer(42);
    char *s = cdp_error_reply(id, "S9", -32000, "navigation to x is not allowed");
    CHECK_STR(s, "{\"id\":42,\"error\":{\"code\":-32000,\"message\":\"navigation to x is not "
                 "allowed\"},\"sessionId\":\"S9\"}");
    free(s);
    s = cdp_error_reply(NULL, NULL, -32700, "m");
    CHECK_STR(s, "{\"error\":{\"code\":-32700,\"message\":\"m\"}}");
    free(s);
    json_decref(id);
}

static void test_ws_paths(void)
{
    static const struct {
        const char *path;
        bool root;
        int r;
        const char *id, *token, *upstream;
    } cases[] = {
        {"/cdp/br-1/tok/devtools/browser/219ab35d-37ef", false, 0, "br-1", "tok",
         "/devtools/browser/219ab35d-37ef"},
        {"/cdp/br-1/tok/devtools/page/3B12", false, 0, "br-1", "tok", "/devtools/page/3B12"},
        {"/cdp/br-1/tok/devtools/page/3B12/", false, 0, "br-1", "tok", "/devtools/page/3B12"},
        {"/cdp/br-1/tok/devtools/browser", false, 0, "br-1", "tok", ""},
        {"/cdp/br-1/tok/devtools/browser/", false, 0, "br-1", "tok", ""},
        {"/devtools/browser/abc", true, 0, NULL, NULL, "/devtools/browser/abc"},
        {"/devtools/browser", true, 0, NULL, NULL, ""},
        {"/devtools/page/P", true, 0, NULL, NULL, "/devtools/page/P"},
        {"/cdp/br-1/tok/devtools/page", false, -EINVAL, NULL, NULL, NULL},
        {"/cdp/br-1/tok/devtools/other/x", false, -EINVAL, NULL, NULL, NULL},
        {"/cdp/br-1/tok/devtools/page/a/b", false, -EINVAL, NULL, NULL, NULL},
        {"/cdp/br-1/devtools/page/a", false, -EINVAL, NULL, NULL, NULL},
        {"/cdp/br-1/tok/json/version", false, -EINVAL, NULL, NULL, NULL},
        {"/cdp/br 1/tok/devtools/browser", false, -EINVAL, NULL, NULL, NULL},
        {"/cdp//tok/devtools/browser", false, -EINVAL, NULL, NULL, NULL},
        {"/cdp/br-1/tok/devtools/page/..%2f", false, -EINVAL, NULL, NULL, NULL},
        {"/devtools/page/P", false, -EINVAL, NULL, NULL, NULL},
        {"/cdp/br-1/tok/devtools/page/P", true, -EINVAL, NULL, NULL, NULL},
        {"devtools/page/P", true, -EINVAL, NULL, NULL, NULL},
    };
    char id[65], token[65], up[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = cdp_ws_path_parse(cases[i].path, cases[i].root, id, sizeof(id), token,
                                  sizeof(token), up, sizeof(up));
        if (r != cases[i].r) {
            fprintf(stderr, "path %s: %d, expected %d\n", cases[i].path, r, cases[i].r);
            check_failures++;
            continue;
        }
        if (r < 0)
            continue;
        CHECK_STR(up, cases[i].upstream);
        if (!cases[i].root) {
            CHECK_STR(id, cases[i].id);
            CHECK_STR(token, cases[i].token);
        }
    }
    /* A segment longer than the buffer is refused, not cut. */
    CHECK(cdp_ws_path_parse("/cdp/br-1/tok/devtools/page/0123456789", false, id, sizeof(id), token,
                            sizeof(token), up, 20) == -EINVAL);
}

int main(void)
{
    test_rewrite_version();
    test_rewrite_list();
    test_rewrite_tls_and_errors();
    test_inspect();
    test_error_reply();
    test_ws_paths();
    CHECK_DONE();
}
