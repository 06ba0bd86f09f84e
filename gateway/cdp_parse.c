/* The pure parts of the CDP proxy (declared in cdp_proxy.h): WebSocket
 * paths, the rewriting of Chromium's /json answers, what policy sees in a
 * client's message, and the answer to a refused one. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdp_proxy.h"
#include "util.h"

#define CDP_MAX_NESTING 4 /* Target.sendMessageToTarget inside itself */

static bool segment_ok(const char *s, size_t len)
{
    if (len == 0 || len > CDP_SEGMENT_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool copy_segment(char *out, size_t out_len, const char *s, size_t len)
{
    if (!out)
        return true;
    if (len + 1 > out_len)
        return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

int cdp_ws_path_parse(const char *path, bool root_form, char *id, size_t id_len, char *token,
                      size_t token_len, char *upstream, size_t upstream_len)
{
    const char *seg[7];
    size_t seg_len[7], n = 0, k = 0;

    if (!path || path[0] != '/')
        return -EINVAL;
    size_t plen = strlen(path);
    if (plen > 1 && path[plen - 1] == '/')
        plen--;
    for (const char *p = path + 1, *end = path + plen; p < end;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *e = slash ? slash : end;
        if (n == ARRAY_SIZE(seg) || !segment_ok(p, (size_t)(e - p)))
            return -EINVAL;
        seg[n] = p;
        seg_len[n++] = (size_t)(e - p);
        p = slash ? slash + 1 : end;
        if (slash && p == end)
            return -EINVAL; /* "//" at the end */
    }
#define SEG_IS(i, lit) (seg_len[i] == strlen(lit) && memcmp(seg[i], lit, seg_len[i]) == 0)
    if (!root_form) {
        if (n < 3 || !SEG_IS(0, "cdp") || !copy_segment(id, id_len, seg[1], seg_len[1]) ||
            !copy_segment(token, token_len, seg[2], seg_len[2]))
            return -EINVAL;
        k = 3;
    }
    if (n < k + 2 || n > k + 3 || !SEG_IS(k, "devtools"))
        return -EINVAL;
    bool browser = SEG_IS(k + 1, "browser");
    if (!browser && !SEG_IS(k + 1, "page"))
        return -EINVAL;
    if (n == k + 2 && !browser)
        return -EINVAL; /* a page needs its target id */
#undef SEG_IS
    if (n == k + 2) {
        if (upstream_len < 1)
            return -EINVAL;
        upstream[0] = '\0';
        return 0;
    }
    int w = snprintf(upstream, upstream_len, "/devtools/%s/%.*s", browser ? "browser" : "page",
                     (int)seg_len[k + 2], seg[k + 2]);
    return w < 0 || (size_t)w >= upstream_len ? -EINVAL : 0;
}

/* The /devtools/... path of a ws://host:port/devtools/... URL, or NULL. */
static const char *ws_url_path(const char *url)
{
    const char *p = strstr(url, "://");
    if (!p)
        return NULL;
    p = strchr(p + 3, '/');
    return p && strncmp(p, "/devtools/", 10) == 0 ? p : NULL;
}

static char *rewrite_ws_url(const char *url, const char *ws_base)
{
    const char *path = ws_url_path(url);
    char *out;
    if (!path || asprintf(&out, "%s%s", ws_base, path) < 0)
        return NULL;
    return out;
}

/* devtoolsFrontendUrl: "...inspector.html?ws=127.0.0.1:9222/devtools/page/X"
 * (or wss=, maybe among other parameters). */
static char *rewrite_frontend_url(const char *url, const char *ws_base)
{
    const char *q = strchr(url, '?');
    const char *base_host = strstr(ws_base, "://");
    bool tls = strncmp(ws_base, "wss:", 4) == 0;
    char *out;

    if (!q || !base_host)
        return NULL;
    base_host += 3;
    for (const char *p = q + 1; *p;) {
        const char *amp = strchrnul(p, '&');
        size_t name_len = (size_t)(strchrnul(p, '=') - p);
        if (name_len < (size_t)(amp - p) && ((name_len == 2 && strncmp(p, "ws", 2) == 0) ||
                                             (name_len == 3 && strncmp(p, "wss", 3) == 0))) {
            const char *v = p + name_len + 1;
            const char *slash = memchr(v, '/', (size_t)(amp - v));
            if (!slash || (size_t)(amp - slash) < 10 || strncmp(slash, "/devtools/", 10) != 0)
                return NULL;
            if (asprintf(&out, "%.*s%s=%s%.*s%s", (int)(p - url), url, tls ? "wss" : "ws",
                         base_host, (int)(amp - slash), slash, amp) < 0)
                return NULL;
            return out;
        }
        p = *amp ? amp + 1 : amp;
    }
    return NULL;
}

static int rewrite_object(json_t *o, const char *ws_base)
{
    const char *key;
    json_t *v;
    void *tmp;

    if (!json_is_object(o))
        return 0;
    json_object_foreach_safe(o, tmp, key, v)
    {
        bool ws_field = strcmp(key, "webSocketDebuggerUrl") == 0;
        bool fe_field = strncmp(key, "devtoolsFrontendUrl", 19) == 0;
        if (!ws_field && !fe_field)
            continue;
        char *n = json_is_string(v)
                      ? (ws_field ? rewrite_ws_url(json_string_value(v), ws_base)
                                  : rewrite_frontend_url(json_string_value(v), ws_base))
                      : NULL;
        /* What cannot be pointed back here must not name the guest. */
        int r = n ? json_object_set_new(o, key, json_string(n)) : json_object_del(o, key);
        free(n);
        if (r < 0)
            return -ENOMEM;
    }
    return 0;
}

int cdp_rewrite_json(const char *body, size_t len, const char *ws_base, char **out)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    int r = 0;

    *out = NULL;
    if (!root || (!json_is_object(root) && !json_is_array(root))) {
        json_decref(root);
        return -EINVAL;
    }
    if (json_is_object(root)) {
        r = rewrite_object(root, ws_base);
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(root, i, v)
        {
            if ((r = rewrite_object(v, ws_base)) < 0)
                break;
        }
    }
    if (r == 0 && !(*out = json_dumps(root, JSON_COMPACT)))
        r = -ENOMEM;
    json_decref(root);
    return r;
}

/* Could this message navigate? Cheap: most messages never get parsed. A
 * \u escape could spell a method name or key the plain search misses. */
bool cdp_may_navigate(const char *msg, size_t len)
{
    return memmem(msg, len, "Page.navigate", 13) || memmem(msg, len, "Target.createTarget", 19) ||
           memmem(msg, len, "\\u", 2);
}

static int inspect_level(const char *msg, size_t len, struct cdp_call *call, int depth)
{
    json_error_t je;
    /* Duplicate keys would let us check one "method" while Chromium runs
     * another. */
    json_t *root = json_loadb(msg, len, JSON_REJECT_DUPLICATES, &je);

    if (!root) {
        if (depth == 0 && (root = json_loadb(msg, len, 0, &je)) && json_is_object(root)) {
            call->roots[0] = root; /* lax, only to answer in its id */
            call->id = json_object_get(root, "id");
        } else {
            json_decref(root);
        }
        return -EINVAL;
    }
    call->roots[depth] = root;
    if (!json_is_object(root))
        return -EINVAL; /* not a command; and it mentions a navigation */
    if (depth == 0) {
        json_t *sid = json_object_get(root, "sessionId");
        call->id = json_object_get(root, "id");
        call->session_id = json_is_string(sid) ? json_string_value(sid) : NULL;
    }
    const char *method = json_string_value(json_object_get(root, "method"));
    json_t *params = json_object_get(root, "params");
    if (!method)
        return CDP_PASS;
    if (strcmp(method, "Page.navigate") == 0 || strcmp(method, "Target.createTarget") == 0) {
        json_t *url = json_object_get(params, "url");
        call->method = method;
        call->url = json_is_string(url) ? json_string_value(url) : "";
        return CDP_NAVIGATES;
    }
    if (strcmp(method, "Target.sendMessageToTarget") == 0) {
        json_t *inner = json_object_get(params, "message");
        if (!json_is_string(inner) ||
            !cdp_may_navigate(json_string_value(inner), json_string_length(inner)))
            return CDP_PASS;
        if (depth + 1 >= CDP_MAX_NESTING)
            return -EINVAL;
        return inspect_level(json_string_value(inner), json_string_length(inner), call, depth + 1);
    }
    return CDP_PASS;
}

int cdp_inspect(const char *msg, size_t len, struct cdp_call *call)
{
    memset(call, 0, sizeof(*call));
    if (!cdp_may_navigate(msg, len))
        return CDP_PASS;
    return inspect_level(msg, len, call, 0);
}

void cdp_call_done(struct cdp_call *call)
{
    for (size_t i = 0; i < ARRAY_SIZE(call->roots); i++)
        json_decref(call->roots[i]);
    memset(call, 0, sizeof(*call));
}

char *cdp_error_reply(const json_t *id, const char *session_id, int code, const char *message)
{
    json_t *o = json_object();
    char *s = NULL;

    if (!o)
        return NULL;
    if ((id && json_object_set(o, "id", (json_t *)id) < 0) ||
        json_object_set_new(o, "error", json_pack("{s:i,s:s}", "code", code, "message", message)) <
            0 ||
        (session_id && json_object_set_new(o, "sessionId", json_string(session_id)) < 0))
        goto out;
    s = json_dumps(o, JSON_COMPACT);
out:
    json_decref(o);
    return s;
}

int cdp_browser_guid(const char *body, size_t len, char *out, size_t out_len)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    const char *url = json_string_value(json_object_get(root, "webSocketDebuggerUrl"));
    const char *path = url ? ws_url_path(url) : NULL;
    int r = -EINVAL;

    if (path && strncmp(path, "/devtools/browser/", 18) == 0 &&
        segment_ok(path + 18, strlen(path + 18)) && strlen(path + 18) < out_len) {
        strcpy(out, path + 18);
        r = 0;
    }
    json_decref(root);
    return r;
}
