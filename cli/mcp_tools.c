#include "mcp_tools.h"
#include "execstream.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdpc.h"
#include "httpc.h"
#include "util.h"

#define TOOL_FILE_MAX (8u << 20)
#define TOOL_SCREENSHOT_MAX (32u << 20)
#define TOOL_CDP_TIMEOUT_MS 30000
#define TOOL_NAVIGATE_TIMEOUT_MS 60000
#define TOOL_PROGRESS_EVERY_MS 1000
/* Exec asks the gateway to wait this much longer than the command may run. */
#define TOOL_EXEC_SLACK_MS 30000

/* ---- results ---------------------------------------------------------------- */

static json_t *text_content(const char *text)
{
    return json_pack("{s:s, s:s}", "type", "text", "text", text);
}

/* A result whose text is data as JSON, and data itself as structuredContent. */
static json_t *json_result(json_t *data /* stolen */, const char *summary)
{
    _cleanup_free_ char *text = json_dumps(data, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_t *content = json_array();
    if (summary)
        json_array_append_new(content, text_content(summary));
    json_array_append_new(content, text_content(text ? text : "null"));
    json_t *r = json_pack("{s:o, s:b}", "content", content, "isError", 0);
    if (json_is_object(data))
        json_object_set(r, "structuredContent", data);
    json_decref(data);
    return r;
}

static json_t *error_result(const struct cli_error *e)
{
    char text[2048];
    snprintf(text, sizeof(text), "%s: %s%s%s", e->code, e->message, e->recovery[0] ? " (" : "",
             e->recovery[0] ? e->recovery : "");
    if (e->recovery[0])
        strncat(text, ")", sizeof(text) - strlen(text) - 1);
    return json_pack("{s:[o], s:b}", "content", text_content(text), "isError", 1);
}

static json_t *error_resultf(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static json_t *error_resultf(const char *code, const char *fmt, ...)
{
    struct cli_error e = {0};
    va_list ap;
    snprintf(e.code, sizeof(e.code), "%s", code);
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    return error_result(&e);
}

/* ---- arguments ---------------------------------------------------------- */

/* A string argument; NULL (and *bad set to an error result) when it is
 * required and missing, or not a string. */
static const char *arg_str(json_t *args, const char *name, bool required, json_t **bad)
{
    json_t *v = json_object_get(args, name);
    if ((!v || json_is_null(v)) && !required)
        return NULL;
    if (!json_is_string(v) || (required && json_string_length(v) == 0)) {
        *bad = error_resultf("invalid_argument", "%s must be %s", name,
                             required ? "a non-empty string" : "a string");
        return NULL;
    }
    return json_string_value(v);
}

/* An integer argument in [min, max]; def when absent. false with *bad. */
static bool arg_int(json_t *args, const char *name, long def, long min, long max, long *out,
                    json_t **bad)
{
    json_t *v = json_object_get(args, name);
    *out = def;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        *bad = error_resultf("invalid_argument", "%s must be an integer between %ld and %ld", name,
                             min, max);
        return false;
    }
    *out = (long)json_integer_value(v);
    return true;
}

/* ---- waiting: progress and cancellation ----------------------------------- */

struct waiting {
    struct mcp_call *call;
    int64_t start, last;
    long total_s; /* 0: unknown */
    const char *what;
};

/* The api tick of a call that may take long: progress about every second
 * (elapsed time), and the end of the wait when the client cancelled. */
static int waiting_tick(void *data)
{
    struct waiting *w = data;
    int64_t now = now_ms();
    if (atomic_load(&w->call->cancelled))
        return 1;
    if (now - w->last >= TOOL_PROGRESS_EVERY_MS) {
        char msg[160];
        double elapsed = (double)(now - w->start) / 1000;
        w->last = now;
        snprintf(msg, sizeof(msg), "%s: %.0f s", w->what, elapsed);
        w->call->progress(w->call, elapsed, (double)w->total_s, msg);
    }
    return 0;
}

static struct api waiting_api(struct mcp_call *c, struct waiting *w, const char *what, long total_s)
{
    struct api api = c->api;
    *w = (struct waiting){
        .call = c, .start = now_ms(), .last = now_ms(), .total_s = total_s, .what = what};
    api.tick = waiting_tick;
    api.tick_data = w;
    return api;
}

/* An API call that waits with progress; the JSON answer or an error result. */
static json_t *api_json(struct mcp_call *c, const char *method, const char *path, json_t *body,
                        int timeout_ms, const char *what, json_t **out)
{
    struct waiting w;
    struct api api = waiting_api(c, &w, what, 0);
    struct cli_error err = {0};
    int r = api_call(&api, method, path, body, timeout_ms, NULL, out, &err);
    if (r == -ECANCELED)
        return error_resultf("cancelled", "cancelled by the client");
    if (r < 0)
        return error_result(&err);
    if (!*out)
        *out = json_object();
    return NULL;
}

/* ---- sandboxes -------------------------------------------------------------- */

static json_t *tool_sandbox_create(struct mcp_call *c, json_t *args)
{
    json_t *bad = NULL, *out = NULL, *body = json_object(),
           *env = json_object_get(args, "env_vars");
    long vcpus, mem, minutes;
    if (!arg_int(args, "vcpus", 0, 0, 8, &vcpus, &bad) ||
        !arg_int(args, "mem_mib", 0, 0, 16384, &mem, &bad) ||
        !arg_int(args, "timeout_minutes", 0, 0, 1440, &minutes, &bad)) {
        json_decref(body);
        return bad;
    }
    if (vcpus)
        json_object_set_new(body, "vcpus", json_integer(vcpus));
    if (mem)
        json_object_set_new(body, "mem_mib", json_integer(mem));
    if (minutes)
        json_object_set_new(body, "timeout_minutes", json_integer(minutes));
    if (json_is_object(env))
        json_object_set(body, "env_vars", env);
    bad = api_json(c, "POST", "/v1/sandboxes", body, API_TIMEOUT_LONG_MS, "booting the sandbox",
                   &out);
    json_decref(body);
    if (bad)
        return bad;
    char summary[200];
    snprintf(summary, sizeof(summary), "sandbox %s is %s", json_str(out, "id") ?: "?",
             json_str(out, "status") ?: "?");
    return json_result(out, summary);
}

/* A running exec's progress: elapsed time and its latest output line. */
struct exec_progress {
    struct waiting w;
    char last[120];
};

static void exec_seen(void *data, bool is_stderr, const char *text, size_t len)
{
    struct exec_progress *p = data;
    /* The last complete line, else the tail of the piece. */
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    const char *start = text + len;
    while (start > text && start[-1] != '\n' && (size_t)(text + len - start) < sizeof(p->last) - 1)
        start--;
    if (start < text + len)
        snprintf(p->last, sizeof(p->last), "%s%.*s", is_stderr ? "stderr: " : "",
                 (int)(text + len - start), start);
}

static int exec_tick(void *data)
{
    struct exec_progress *p = data;
    if (atomic_load(&p->w.call->cancelled))
        return 1;
    int64_t now = now_ms();
    if (now - p->w.last >= TOOL_PROGRESS_EVERY_MS) {
        char msg[200];
        double elapsed = (double)(now - p->w.start) / 1000;
        p->w.last = now;
        snprintf(msg, sizeof(msg), "running: %.0f s%s%s", elapsed, p->last[0] ? "; " : "", p->last);
        p->w.call->progress(p->w.call, elapsed, (double)p->w.total_s, msg);
    }
    return 0;
}

static json_t *tool_sandbox_exec(struct mcp_call *c, json_t *args)
{
    json_t *bad = NULL, *out = NULL;
    const char *id = arg_str(args, "sandbox_id", true, &bad);
    const char *command = id ? arg_str(args, "command", true, &bad) : NULL;
    long timeout;
    struct exec_progress prog = {0};
    struct exec_stream st;
    struct cli_error err = {0};

    if (!command || !arg_int(args, "timeout_s", 30, 1, 3600, &timeout, &bad))
        return bad;
    _cleanup_free_ char *path = api_path("/v1/sandboxes/", id, "/exec");
    if (!path)
        return error_resultf("internal", "out of memory");
    json_t *body =
        json_pack("{s:s, s:i, s:b}", "command", command, "timeout", (int)timeout, "stream", 1);
    struct api api = waiting_api(c, &prog.w, "running", timeout);
    api.tick = exec_tick;
    api.tick_data = &prog;
    /* Streamed: progress shows the output, and a cancellation closes the
     * stream, which is how the gateway learns to kill the command. */
    exec_stream_init(&st, exec_seen, &prog);
    int r = api_stream(&api, "POST", path, body, (int)timeout * 1000 + TOOL_EXEC_SLACK_MS,
                       exec_stream_feed, &st, &err);
    json_decref(body);
    if (r == -ECANCELED) {
        exec_stream_done(&st);
        return error_resultf("cancelled", "cancelled; the command was killed in the guest");
    }
    if (r >= 0)
        r = exec_stream_finish(&st, &api, &out, &err);
    exec_stream_done(&st);
    if (r < 0)
        return error_result(&err);
    char summary[64];
    json_t *code = json_object_get(out, "exit_code");
    snprintf(summary, sizeof(summary), "exit code %lld", (long long)json_integer_value(code));
    return json_result(out, summary);
}

static json_t *tool_sandbox_read_file(struct mcp_call *c, json_t *args)
{
    json_t *bad = NULL;
    const char *id = arg_str(args, "sandbox_id", true, &bad);
    const char *file = id ? arg_str(args, "path", true, &bad) : NULL;
    struct cli_error err = {0};
    char *data = NULL;
    size_t len = 0;

    if (!file)
        return bad;
    _cleanup_free_ char *path = api_files_path(id, file);
    if (!path)
        return error_resultf("internal", "out of memory");
    struct waiting w;
    struct api api = waiting_api(c, &w, "transferring", 0); /* cancellable */
    if (api_fetch(&api, "GET", path, NULL, NULL, 0, API_TIMEOUT_SHORT_MS, TOOL_FILE_MAX, &data,
                  &len, &err) < 0)
        return error_result(&err);
    /* jansson refuses invalid UTF-8 (and NUL) in strings. */
    json_t *text = memchr(data, 0, len) ? NULL : json_stringn(data, len);
    json_t *r;
    if (text) {
        r = json_pack("{s:[{s:s, s:o}], s:b}", "content", "type", "text", "text", text, "isError",
                      0);
    } else {
        /* Not text: the bytes as an embedded resource. */
        _cleanup_free_ char *b64 = base64_encode(data, len);
        _cleanup_free_ char *uri = NULL;
        if (!b64 || asprintf(&uri, "porthole://sandboxes/%s/files%s", id, file) < 0) {
            free(data);
            return error_resultf("internal", "out of memory");
        }
        r = json_pack("{s:[{s:s, s:{s:s, s:s, s:s}}], s:b}", "content", "type", "resource",
                      "resource", "uri", uri, "mimeType", "application/octet-stream", "blob", b64,
                      "isError", 0);
    }
    free(data);
    return r;
}

static json_t *tool_sandbox_write_file(struct mcp_call *c, json_t *args)
{
    json_t *bad = NULL, *out = NULL;
    const char *id = arg_str(args, "sandbox_id", true, &bad);
    const char *file = id ? arg_str(args, "path", true, &bad) : NULL;
    const char *encoding = file ? arg_str(args, "encoding", false, &bad) : NULL;
    json_t *content = json_object_get(args, "content");
    struct cli_error err = {0};
    unsigned char *bytes = NULL;
    size_t len;
    char *raw = NULL;

    if (!file || bad)
        return bad;
    if (!json_is_string(content))
        return error_resultf("invalid_argument", "content must be a string");
    if (encoding && strcmp(encoding, "base64") == 0) {
        if (base64_decode(json_string_value(content), json_string_length(content), &bytes, &len) <
            0)
            return error_resultf("invalid_argument", "content is not valid base64");
    } else if (encoding && strcmp(encoding, "utf-8") != 0) {
        return error_resultf("invalid_argument", "encoding must be \"utf-8\" or \"base64\"");
    }
    _cleanup_free_ char *path = api_files_path(id, file);
    struct waiting w;
    struct api api = waiting_api(c, &w, "transferring", 0); /* cancellable */
    int r = path ? api_fetch(&api, "PUT", path, "application/octet-stream",
                             bytes ? (const void *)bytes : json_string_value(content),
                             bytes ? len : json_string_length(content), API_TIMEOUT_SHORT_MS,
                             64 * 1024, &raw, &len, &err)
                 : -ENOMEM;
    free(bytes);
    if (r < 0)
        return path ? error_result(&err) : error_resultf("internal", "out of memory");
    out = json_loads(raw ? raw : "{}", 0, NULL);
    free(raw);
    return json_result(out ? out : json_object(), "written");
}

static json_t *tool_sandbox_list(struct mcp_call *c, json_t *args)
{
    json_t *out = NULL,
           *bad = api_json(c, "GET", "/v1/sandboxes", NULL, API_TIMEOUT_SHORT_MS, "listing", &out);
    return bad ? bad : json_result(out, NULL);
}

static json_t *delete_one(struct mcp_call *c, json_t *args, const char *field, const char *prefix)
{
    json_t *bad = NULL, *out = NULL;
    const char *id = arg_str(args, field, true, &bad);
    if (!id)
        return bad;
    _cleanup_free_ char *path = api_path(prefix, id, NULL);
    if (!path)
        return error_resultf("internal", "out of memory");
    bad = api_json(c, "DELETE", path, NULL, API_TIMEOUT_LONG_MS, "stopping", &out);
    return bad ? bad : json_result(out, "deleted");
}

static json_t *tool_sandbox_delete(struct mcp_call *c, json_t *args)
{
    return delete_one(c, args, "sandbox_id", "/v1/sandboxes/");
}

/* ---- browser sessions ------------------------------------------------------- */

static json_t *tool_browser_start(struct mcp_call *c, json_t *args)
{
    json_t *bad = NULL, *out = NULL, *live = json_object_get(args, "live");
    long w, h, minutes;
    if (!arg_int(args, "viewport_width", 1280, 640, 7680, &w, &bad) ||
        !arg_int(args, "viewport_height", 720, 480, 4320, &h, &bad) ||
        !arg_int(args, "timeout_minutes", 30, 1, 240, &minutes, &bad))
        return bad;
    if (live && !json_is_boolean(live))
        return error_resultf("invalid_argument", "live must be true or false");
    json_t *body = json_pack("{s:s, s:{s:i, s:i}, s:i}", "mode",
                             !live || json_is_true(live) ? "live" : "headless", "viewport", "width",
                             (int)w, "height", (int)h, "timeout_minutes", (int)minutes);
    bad = api_json(c, "POST", "/v1/browser/sessions", body, API_TIMEOUT_LONG_MS,
                   "starting the browser", &out);
    json_decref(body);
    if (bad)
        return bad;
    char summary[1200];
    snprintf(summary, sizeof(summary),
             "session %s is ready. cdp_url (for Playwright's connectOverCDP, or "
             "--cdp-endpoint of Playwright's MCP server): %s",
             json_str(out, "session_id") ?: "?", json_str(out, "cdp_url") ?: "-");
    return json_result(out, summary);
}

static json_t *tool_browser_stop(struct mcp_call *c, json_t *args)
{
    return delete_one(c, args, "session_id", "/v1/browser/sessions/");
}

static json_t *tool_browser_list(struct mcp_call *c, json_t *args)
{
    json_t *out = NULL, *bad = api_json(c, "GET", "/v1/browser/sessions", NULL,
                                        API_TIMEOUT_SHORT_MS, "listing", &out);
    return bad ? bad : json_result(out, NULL);
}

static json_t *image_content(const char *b64)
{
    return json_pack("{s:s, s:s, s:s}", "type", "image", "data", b64, "mimeType", "image/png");
}

static json_t *tool_browser_screenshot(struct mcp_call *c, json_t *args)
{
    json_t *bad = NULL;
    const char *id = arg_str(args, "session_id", true, &bad);
    long max_w;
    struct cli_error err = {0};
    char *png = NULL, suffix[64];
    size_t len = 0;

    if (!id || !arg_int(args, "max_width", 0, 0, 7680, &max_w, &bad))
        return bad;
    snprintf(suffix, sizeof(suffix), "/screenshot?max_width=%ld", max_w);
    _cleanup_free_ char *path = api_path("/v1/browser/sessions/", id, suffix);
    if (!path)
        return error_resultf("internal", "out of memory");
    struct waiting w;
    struct api api = waiting_api(c, &w, "transferring", 0); /* cancellable */
    if (api_fetch(&api, "GET", path, NULL, NULL, 0, API_TIMEOUT_SHORT_MS, TOOL_SCREENSHOT_MAX, &png,
                  &len, &err) < 0)
        return error_result(&err);
    _cleanup_free_ char *b64 = base64_encode(png, len);
    free(png);
    if (!b64)
        return error_resultf("internal", "out of memory");
    return json_pack("{s:[o], s:b}", "content", image_content(b64), "isError", 0);
}

static json_t *tool_browser_computer(struct mcp_call *c, json_t *args)
{
    json_t *bad = NULL, *out = NULL;
    const char *id = arg_str(args, "session_id", true, &bad);
    long dw, dh;
    char query[160];

    if (!id || !arg_int(args, "display_width", 0, 0, 7680, &dw, &bad) ||
        !arg_int(args, "display_height", 0, 0, 4320, &dh, &bad))
        return bad;
    /* The action as the model wrote it: everything but our own fields. */
    json_t *action = json_deep_copy(args);
    json_object_del(action, "session_id");
    json_object_del(action, "display_width");
    json_object_del(action, "display_height");
    snprintf(query, sizeof(query), "/computer?display_width=%ld&display_height=%ld", dw, dh);
    _cleanup_free_ char *path = api_path("/v1/browser/sessions/", id, query);
    bad = path ? api_json(c, "POST", path, action, API_TIMEOUT_SHORT_MS, "acting", &out)
               : error_resultf("internal", "out of memory");
    json_decref(action);
    if (bad)
        return bad;
    json_t *shot = json_incref(json_object_get(out, "screenshot_base64"));
    json_object_del(out, "screenshot_base64");
    json_object_del(out, "screenshot_mime_type");
    json_t *r = json_result(out, NULL);
    if (json_is_string(shot))
        json_array_append_new(json_object_get(r, "content"),
                              image_content(json_string_value(shot)));
    json_decref(shot);
    return r;
}

/* The session's page over CDP. */
static json_t *session_page(struct mcp_call *c, const char *id, struct cdp_page **page)
{
    json_t *out = NULL, *bad;
    struct cli_error err = {0};
    _cleanup_free_ char *path = api_path("/v1/browser/sessions/", id, NULL);

    if (!path)
        return error_resultf("internal", "out of memory");
    if ((bad = api_json(c, "GET", path, NULL, API_TIMEOUT_SHORT_MS, "looking up", &out)))
        return bad;
    const char *cdp = json_str(out, "cdp_url");
    int r =
        cdp ? cdp_page_open(cdp, TOOL_CDP_TIMEOUT_MS, page, &err)
            : cli_error_set(&err, 1, "not_ready", NULL, -EAGAIN, "session %s has no cdp_url", id);
    json_decref(out);
    return r < 0 ? error_result(&err) : NULL;
}

static json_t *page_state(struct cdp_page *p, struct cli_error *err)
{
    json_t *res = NULL;
    if (cdp_page_call(p, "Runtime.evaluate",
                      json_pack("{s:s, s:b}", "expression",
                                "({url: location.href, title: document.title})", "returnByValue",
                                1),
                      TOOL_CDP_TIMEOUT_MS, &res, err) < 0)
        return NULL;
    json_t *v = json_incref(json_object_get(json_object_get(res, "result"), "value"));
    json_decref(res);
    return v ? v : json_object();
}

/* Chromium drops input that comes before a page's first paint, which on a
 * slow guest can be seconds after the load event: a click sent the moment
 * navigate answered would be lost. This waits for the paint, or 5 s for a
 * page that paints nothing. */
static const char first_paint_js[] = "new Promise(function (done) {"
                                     "  var cap = setTimeout(function () { done(false); }, 5000);"
                                     "  try {"
                                     "    new PerformanceObserver(function (list, o) {"
                                     "      o.disconnect(); clearTimeout(cap); done(true);"
                                     "    }).observe({type: 'paint', buffered: true});"
                                     "  } catch (e) { clearTimeout(cap); done(false); }"
                                     "})";

static int page_wait_paint(struct cdp_page *p, struct cli_error *err)
{
    json_t *res = NULL;
    int r = cdp_page_call(p, "Runtime.evaluate",
                          json_pack("{s:s, s:b, s:b}", "expression", first_paint_js, "awaitPromise",
                                    1, "returnByValue", 1),
                          TOOL_CDP_TIMEOUT_MS, &res, err);
    json_decref(res);
    return r;
}

static json_t *tool_browser_navigate(struct mcp_call *c, json_t *args)
{
    json_t *bad = NULL, *res = NULL;
    const char *id = arg_str(args, "session_id", true, &bad);
    const char *url = id ? arg_str(args, "url", true, &bad) : NULL;
    struct cdp_page *p = NULL;
    struct cli_error err = {0};

    if (!url)
        return bad;
    if ((bad = session_page(c, id, &p)))
        return bad;
    int r = cdp_page_call(p, "Page.enable", NULL, TOOL_CDP_TIMEOUT_MS, &res, &err);
    json_decref(res);
    res = NULL;
    cdp_page_expect(p, "Page.loadEventFired");
    if (r == 0)
        r = cdp_page_call(p, "Page.navigate", json_pack("{s:s}", "url", url), TOOL_CDP_TIMEOUT_MS,
                          &res, &err);
    if (r == 0 && json_str(res, "errorText")) {
        r = cli_error_set(&err, 1, "navigation_failed", NULL, -EIO, "%s: %s", url,
                          json_str(res, "errorText"));
    }
    json_decref(res);
    bool loaded = r == 0 && cdp_page_wait(p, TOOL_NAVIGATE_TIMEOUT_MS, &err) == 0;
    if (r == 0)
        r = page_wait_paint(p, &err);
    json_t *state = r == 0 ? page_state(p, &err) : NULL;
    cdp_page_free(p);
    if (!state)
        return error_result(&err);
    json_object_set_new(state, "loaded", json_boolean(loaded));
    return json_result(state, loaded ? "loaded" : "navigated; the load event did not come in time");
}

static json_t *tool_browser_evaluate(struct mcp_call *c, json_t *args)
{
    json_t *bad = NULL, *res = NULL;
    const char *id = arg_str(args, "session_id", true, &bad);
    const char *expr = id ? arg_str(args, "expression", true, &bad) : NULL;
    struct cdp_page *p = NULL;
    struct cli_error err = {0};

    if (!expr)
        return bad;
    if ((bad = session_page(c, id, &p)))
        return bad;
    int r = cdp_page_call(p, "Runtime.evaluate",
                          json_pack("{s:s, s:b, s:b, s:b}", "expression", expr, "returnByValue", 1,
                                    "awaitPromise", 1, "userGesture", 1),
                          TOOL_CDP_TIMEOUT_MS, &res, &err);
    cdp_page_free(p);
    if (r < 0)
        return error_result(&err);
    json_t *ex = json_object_get(res, "exceptionDetails");
    if (ex) {
        const char *desc =
            json_str(json_object_get(ex, "exception"), "description") ?: json_str(ex, "text");
        json_t *e = error_resultf("exception", "%s", desc ? desc : "the expression threw");
        json_decref(res);
        return e;
    }
    json_t *result = json_object_get(res, "result");
    json_t *value = json_object_get(result, "value");
    json_t *data = json_pack("{s:O, s:s?}", "value", value ? value : json_null(), "type",
                             json_str(result, "type"));
    json_decref(res);
    return json_result(data, NULL);
}

/* ---- the table -------------------------------------------------------------- */

#define SANDBOX_ID                                                                                 \
    "\"sandbox_id\": {\"type\": \"string\", \"description\": \"The sandbox's id, as "              \
    "sandbox_create or sandbox_list return it (\\\"sb-...\\\").\"}"
#define SESSION_ID                                                                                 \
    "\"session_id\": {\"type\": \"string\", \"description\": \"The browser session's id, as "      \
    "browser_start or browser_list return it (\\\"bs-...\\\").\"}"

struct tool {
    const char *name;
    const char *title;
    const char *description;
    const char *schema; /* inputSchema, JSON */
    bool read_only, destructive;
    json_t *(*run)(struct mcp_call *c, json_t *args);
};

static const struct tool tools[] = {
    {"sandbox_create", "Create a sandbox",
     "Boots a fresh Linux microVM for running commands and returns its id. Boot takes seconds "
     "to a minute; progress is reported while it boots. Delete it with sandbox_delete when done.",
     "{\"type\": \"object\", \"properties\": {"
     "\"vcpus\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 8, \"description\": "
     "\"Virtual CPUs (default 2).\"},"
     "\"mem_mib\": {\"type\": \"integer\", \"minimum\": 256, \"maximum\": 16384, "
     "\"description\": \"Memory in MiB (default 1024).\"},"
     "\"timeout_minutes\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 1440, "
     "\"description\": \"The sandbox is deleted after this many minutes (default 60).\"},"
     "\"env_vars\": {\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}, "
     "\"description\": \"Environment variables for every command, NAME: value.\"}}}",
     false, false, tool_sandbox_create},
    {"sandbox_exec", "Run a command in a sandbox",
     "Runs a shell command (bash login shell) in a sandbox and returns exit_code, stdout and "
     "stderr. The gateway's policy applies: a refused command comes back as an error naming the "
     "rule. Long commands report progress every second; cancelling the call kills the command in "
     "the sandbox.",
     "{\"type\": \"object\", \"properties\": {" SANDBOX_ID ","
     "\"command\": {\"type\": \"string\", \"description\": \"The command line, as typed in "
     "bash: pipes, redirections and && work.\"},"
     "\"timeout_s\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 3600, \"description\": "
     "\"Kill the command after this many seconds (default 30).\"}},"
     "\"required\": [\"sandbox_id\", \"command\"]}",
     false, true, tool_sandbox_exec},
    {"sandbox_read_file", "Read a file from a sandbox",
     "Returns a file's content from a sandbox: as text when it is UTF-8, else as a binary "
     "resource (base64).",
     "{\"type\": \"object\", \"properties\": {" SANDBOX_ID ","
     "\"path\": {\"type\": \"string\", \"description\": \"Absolute path in the sandbox, such as "
     "/root/notes.txt.\"}},"
     "\"required\": [\"sandbox_id\", \"path\"]}",
     true, false, tool_sandbox_read_file},
    {"sandbox_write_file", "Write a file into a sandbox",
     "Creates or replaces a file in a sandbox (mode 0644; parent directories must exist).",
     "{\"type\": \"object\", \"properties\": {" SANDBOX_ID ","
     "\"path\": {\"type\": \"string\", \"description\": \"Absolute path in the sandbox.\"},"
     "\"content\": {\"type\": \"string\", \"description\": \"The file's content.\"},"
     "\"encoding\": {\"type\": \"string\", \"enum\": [\"utf-8\", \"base64\"], \"description\": "
     "\"How content is given: utf-8 text (default) or base64 for binary files.\"}},"
     "\"required\": [\"sandbox_id\", \"path\", \"content\"]}",
     false, true, tool_sandbox_write_file},
    {"sandbox_list", "List sandboxes", "Lists the sandboxes with their id, status and expiry.",
     "{\"type\": \"object\", \"properties\": {}}", true, false, tool_sandbox_list},
    {"sandbox_delete", "Delete a sandbox",
     "Stops a sandbox's microVM and deletes it with everything in it.",
     "{\"type\": \"object\", \"properties\": {" SANDBOX_ID "}, \"required\": [\"sandbox_id\"]}",
     false, true, tool_sandbox_delete},
    {"browser_start", "Start a browser session",
     "Starts Chromium in a fresh microVM. Returns session_id and cdp_url: Playwright's "
     "connectOverCDP and Playwright's MCP server (--cdp-endpoint) take cdp_url as it is. A live "
     "session has a screen for browser_screenshot and browser_computer, and live_url/control_url "
     "for a person to watch or drive it. Starting takes seconds to a minute; progress is "
     "reported.",
     "{\"type\": \"object\", \"properties\": {"
     "\"live\": {\"type\": \"boolean\", \"description\": \"With a screen (default true); false "
     "starts headless Chromium, reachable over CDP only.\"},"
     "\"viewport_width\": {\"type\": \"integer\", \"minimum\": 640, \"maximum\": 7680, "
     "\"description\": \"Screen width in pixels (default 1280).\"},"
     "\"viewport_height\": {\"type\": \"integer\", \"minimum\": 480, \"maximum\": 4320, "
     "\"description\": \"Screen height in pixels (default 720).\"},"
     "\"timeout_minutes\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 240, "
     "\"description\": \"The session stops after this many minutes (default 30).\"}}}",
     false, false, tool_browser_start},
    {"browser_stop", "Stop a browser session",
     "Stops a browser session and its microVM (a recording, if any, is finalized and kept).",
     "{\"type\": \"object\", \"properties\": {" SESSION_ID "}, \"required\": [\"session_id\"]}",
     false, true, tool_browser_stop},
    {"browser_list", "List browser sessions",
     "Lists the browser sessions with their id, status, mode and URLs.",
     "{\"type\": \"object\", \"properties\": {}}", true, false, tool_browser_list},
    {"browser_screenshot", "Screenshot of a browser session",
     "Returns the whole screen of a live session as a PNG image.",
     "{\"type\": \"object\", \"properties\": {" SESSION_ID ","
     "\"max_width\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 7680, \"description\": "
     "\"Scale the picture down to at most this width (0 or absent: full size).\"}},"
     "\"required\": [\"session_id\"]}",
     true, false, tool_browser_screenshot},
    {"browser_computer", "Act on a browser session's screen",
     "Performs one mouse or keyboard action on a live session's screen, in Anthropic's computer "
     "tool vocabulary (action: left_click, right_click, middle_click, double_click, "
     "triple_click, mouse_move, left_click_drag, left_mouse_down, left_mouse_up, scroll, key, "
     "hold_key, type, cursor_position, screenshot, wait). OpenAI's computer_call action objects "
     "work too: pass {\"action\": {\"type\": \"click\", ...}}. Coordinates are screen pixels, or "
     "pixels of display_width x display_height when given. screenshot: true returns the screen "
     "after the action as an image.",
     "{\"type\": \"object\", \"properties\": {" SESSION_ID ","
     "\"action\": {\"description\": \"The action's name (left_click, type, key, scroll, ...), "
     "or an OpenAI action object.\", \"type\": [\"string\", \"object\"]},"
     "\"coordinate\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}, \"minItems\": 2, "
     "\"maxItems\": 2, \"description\": \"[x, y]: where to click, move, scroll or end a drag; "
     "without it, clicks and scrolls act where the pointer is.\"},"
     "\"start_coordinate\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}, "
     "\"minItems\": 2, \"maxItems\": 2, \"description\": \"[x, y] where left_click_drag "
     "starts.\"},"
     "\"text\": {\"type\": \"string\", \"description\": \"type: the text to type. key and "
     "hold_key: xdotool key names such as \\\"ctrl+l\\\", \\\"Return\\\" or \\\"ctrl+a "
     "BackSpace\\\" (one combination after another). Clicks and scroll: modifier keys to hold, "
     "such as \\\"shift\\\".\"},"
     "\"scroll_direction\": {\"type\": \"string\", \"enum\": [\"up\", \"down\", \"left\", "
     "\"right\"], \"description\": \"scroll: which way.\"},"
     "\"scroll_amount\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 50, "
     "\"description\": \"scroll: how many wheel steps.\"},"
     "\"duration\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 30, \"description\": "
     "\"wait and hold_key: seconds.\"},"
     "\"screenshot\": {\"type\": \"boolean\", \"description\": \"Return a screenshot taken "
     "after the action.\"},"
     "\"display_width\": {\"type\": \"integer\", \"description\": \"The screen width the model "
     "was told, when smaller than the real screen: coordinates and screenshots use it.\"},"
     "\"display_height\": {\"type\": \"integer\", \"description\": \"The screen height the "
     "model was told (see display_width).\"}},"
     "\"required\": [\"session_id\", \"action\"]}",
     false, true, tool_browser_computer},
    {"browser_navigate", "Open a URL in a browser session",
     "Loads a URL in the session's page (its first tab) and waits for the load event; returns "
     "the final URL and title. The session's allowed_domains policy applies.",
     "{\"type\": \"object\", \"properties\": {" SESSION_ID ","
     "\"url\": {\"type\": \"string\", \"description\": \"The URL to open, such as "
     "https://example.com/.\"}},"
     "\"required\": [\"session_id\", \"url\"]}",
     false, false, tool_browser_navigate},
    {"browser_evaluate", "Evaluate JavaScript in a browser session",
     "Evaluates a JavaScript expression in the session's page and returns its value (as JSON; "
     "a promise is awaited). A thrown exception comes back as an error with its message.",
     "{\"type\": \"object\", \"properties\": {" SESSION_ID ","
     "\"expression\": {\"type\": \"string\", \"description\": \"A JavaScript expression, such as "
     "document.title or [...document.links].map(a => a.href).\"}},"
     "\"required\": [\"session_id\", \"expression\"]}",
     false, true, tool_browser_evaluate},
};

json_t *mcp_tools_list(void)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
        json_t *schema = json_loads(tools[i].schema, 0, NULL);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o, s:{s:b, s:b, s:b}}", "name",
                                             tools[i].name, "title", tools[i].title, "description",
                                             tools[i].description, "inputSchema",
                                             schema ? schema : json_object(), "annotations",
                                             "readOnlyHint", tools[i].read_only, "destructiveHint",
                                             tools[i].destructive, "openWorldHint", 0));
    }
    return arr;
}

bool mcp_tools_has(const char *name)
{
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
        if (strcmp(tools[i].name, name) == 0)
            return true;
    return false;
}

json_t *mcp_tools_call(struct mcp_call *c, const char *name, json_t *args, int *rpc_code,
                       char *rpc_message, size_t len)
{
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
        if (strcmp(tools[i].name, name) == 0)
            return tools[i].run(c, args);
    *rpc_code = -32602;
    snprintf(rpc_message, len, "unknown tool \"%.64s\"", name);
    return NULL;
}
