#include "cdpc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"
#include "util.h"
#include "wsc.h"

struct cdp_page {
    struct wsc *ws; /* owned */
    int next_id;
    char expect[64]; /* event watched for, "" if none */
    bool seen;       /* it came */
};

/* The first "page" target of GET cdp_url/json/list. */
static int page_ws_url(const char *cdp_url, int timeout_ms, char *out, size_t len,
                       struct cli_error *err)
{
    struct httpc_url u;
    struct httpc_response resp;
    struct httpc_request req = HTTPC_REQUEST_INIT("GET", "/json/list");
    json_t *list, *t;
    size_t i;
    int r;

    if (httpc_url_parse(cdp_url, &u) < 0)
        return cli_error_set(err, 1, "invalid_url", NULL, -EINVAL, "not an http:// cdp_url: %s",
                             cdp_url);
    req.timeout_ms = timeout_ms;
    req.max_body = 4 * 1024 * 1024;
    r = httpc_do(&u, &req, &resp);
    if (r < 0 || resp.status != 200) {
        cli_error_set(err, 1, "cdp_unreachable", NULL, r < 0 ? r : -EIO,
                      "cannot list the session's pages: %s",
                      r < 0 ? (resp.detail[0] ? resp.detail : strerror(-r)) : "HTTP error");
        if (r >= 0)
            snprintf(err->message, sizeof(err->message), "cannot list the session's pages: HTTP %d",
                     resp.status);
        httpc_response_done(&resp);
        return r < 0 ? r : -EIO;
    }
    list = json_loadb(resp.body, resp.body_len, 0, NULL);
    httpc_response_done(&resp);
    r = cli_error_set(err, 1, "no_page", "open a page first (browser_navigate needs one tab)",
                      -ENOENT, "the session has no page");
    json_array_foreach(list, i, t)
    {
        const char *type = json_str(t, "type"), *ws = json_str(t, "webSocketDebuggerUrl");
        if (type && ws && strcmp(type, "page") == 0 && strlen(ws) < len) {
            snprintf(out, len, "%s", ws);
            r = 0;
            break;
        }
    }
    json_decref(list);
    return r;
}

int cdp_page_open(const char *cdp_url, int timeout_ms, struct cdp_page **out, struct cli_error *err)
{
    char url[1024], detail[256];
    int r;

    *out = NULL;
    if ((r = page_ws_url(cdp_url, timeout_ms, url, sizeof(url), err)) < 0)
        return r;
    struct cdp_page *p = calloc(1, sizeof(*p));
    if (!p)
        return cli_error_set(err, 1, "internal", NULL, -ENOMEM, "out of memory");
    r = wsc_open(url, timeout_ms, &p->ws, detail, sizeof(detail));
    if (r < 0) {
        free(p);
        return cli_error_set(err, 1, "cdp_unreachable", NULL, r,
                             "cannot open the page's DevTools WebSocket: %s", detail);
    }
    *out = p;
    return 0;
}

void cdp_page_free(struct cdp_page *p)
{
    if (!p)
        return;
    wsc_free(p->ws);
    free(p);
}

void cdp_page_expect(struct cdp_page *p, const char *event)
{
    snprintf(p->expect, sizeof(p->expect), "%s", event);
    p->seen = false;
}

/* Reads one message: the answer to id (returned in *answer) or an event. */
static int read_one(struct cdp_page *p, int id, int64_t deadline, json_t **answer,
                    struct cli_error *err)
{
    char *msg;
    size_t len;
    int r = wsc_recv(p->ws, &msg, &len, deadline, NULL, NULL);
    if (r < 0)
        return cli_error_set(err, 1, r == -ETIMEDOUT ? "timeout" : "cdp_error", NULL, r,
                             r == -ETIMEDOUT ? "the browser did not answer in time"
                                             : "the DevTools connection failed: %s",
                             strerror(-r));
    json_t *m = json_loadb(msg, len, 0, NULL);
    free(msg);
    const char *method = json_str(m, "method");
    if (method && p->expect[0] && strcmp(method, p->expect) == 0)
        p->seen = true;
    json_t *mid = json_object_get(m, "id");
    if (json_is_integer(mid) && json_integer_value(mid) == id) {
        *answer = m;
        return 1;
    }
    json_decref(m);
    return 0;
}

int cdp_page_call(struct cdp_page *p, const char *method, json_t *params, int timeout_ms,
                  json_t **result, struct cli_error *err)
{
    int64_t deadline = now_ms() + timeout_ms;
    int id = ++p->next_id, r;
    json_t *answer = NULL;

    *result = NULL;
    json_t *msg = json_pack("{s:i, s:s, s:o}", "id", id, "method", method, "params",
                            params ? params : json_object());
    _cleanup_free_ char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (!text)
        return cli_error_set(err, 1, "internal", NULL, -ENOMEM, "out of memory");
    if ((r = wsc_send(p->ws, text, strlen(text), deadline)) < 0)
        return cli_error_set(err, 1, "cdp_error", NULL, r, "cannot send %s: %s", method,
                             strerror(-r));
    while ((r = read_one(p, id, deadline, &answer, err)) == 0)
        ;
    if (r < 0)
        return r;
    json_t *e = json_object_get(answer, "error");
    if (e) {
        cli_error_set(err, 1, "cdp_error", NULL, -EIO, "%s: %s", method,
                      json_str(e, "message") ? json_str(e, "message") : "refused");
        json_decref(answer);
        return -EIO;
    }
    *result = json_incref(json_object_get(answer, "result"));
    json_decref(answer);
    if (!*result)
        *result = json_object();
    return 0;
}

int cdp_page_wait(struct cdp_page *p, int timeout_ms, struct cli_error *err)
{
    int64_t deadline = now_ms() + timeout_ms;
    json_t *none = NULL;
    while (!p->seen) {
        /* id 0 is never used: every message is an event here. */
        int r = read_one(p, 0, deadline, &none, err);
        if (r < 0)
            return r;
        json_decref(none);
        none = NULL;
    }
    return 0;
}
