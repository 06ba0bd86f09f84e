/* Calls to the gateway's API v1, and the mapping of every way they can fail
 * onto one cli_error: the API's own {code, message}, or a transport failure
 * with a hint the user can act on. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "httpc.h"
#include "util.h"

const char *json_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

void api_done(struct api *api)
{
    if (!api)
        return;
    free(api->token);
    api->token = NULL;
}

int api_open(struct cli_ctx *c, struct api *api, struct cli_error *err)
{
    *api = (struct api){.c = c};
    return discover_gateway(c, true, api, err);
}

char *api_path(const char *prefix, const char *id, const char *suffix)
{
    _cleanup_free_ char *esc = httpc_escape(id, false);
    char *out;

    if (!esc || asprintf(&out, "%s%s%s", prefix, esc, suffix ? suffix : "") < 0)
        return NULL;
    return out;
}

char *api_files_path(const char *id, const char *remote)
{
    _cleanup_free_ char *esc = httpc_escape(remote, true);
    _cleanup_free_ char *base = api_path("/v1/sandboxes/", id, "/files?path=");
    char *out;

    if (!esc || !base || asprintf(&out, "%s%s", base, esc) < 0)
        return NULL;
    return out;
}

/* A hint for an API error code, worded for the command that got it. */
static const char *recovery_for(const struct cli_ctx *c, const char *code)
{
    const char *cmd = c && c->command ? c->command : "";

    if (strcmp(code, "unauthorized") == 0)
        return "set PORTHOLE_TOKEN to the gateway's token (the token file in its state dir)";
    if (strcmp(code, "not_found") == 0) {
        if (strcmp(cmd, "sandbox.download") == 0 || strncmp(cmd, "browser.record", 14) == 0)
            return NULL;
        if (strncmp(cmd, "sandbox.", 8) == 0)
            return "list sandboxes: porthole sandbox list";
        if (strncmp(cmd, "browser.", 8) == 0)
            return "list sessions: porthole browser list";
        return NULL;
    }
    if (strcmp(code, "limit_exceeded") == 0)
        return "stop sessions or delete sandboxes you no longer need";
    if (strcmp(code, "unavailable") == 0)
        return "run: porthole doctor";
    return NULL;
}

static int transport_error(struct api *api, int r, const struct httpc_response *resp,
                           int timeout_ms, struct cli_error *err)
{
    const char *env_url = getenv("PORTHOLE_URL");

    if (resp->connected && r == -ETIMEDOUT)
        return cli_error_set(err, 1, "timeout", "the operation may still finish; check with list",
                             r, "the gateway at %s did not answer within %d s", api->url,
                             timeout_ms / 1000);
    if (resp->connected)
        return cli_error_set(err, 1, "gateway_error", "see the gateway's log", r,
                             "bad answer from the gateway at %s: %s", api->url,
                             resp->detail[0] ? resp->detail : strerror(-r));
    return cli_error_set(err, 1, "gateway_unreachable",
                         env_url && *env_url
                             ? "check that the gateway at PORTHOLE_URL runs, or unset "
                               "PORTHOLE_URL to use a local one"
                             : "check the gateway.log in the state dir, or run: porthole doctor",
                         r, "cannot reach the gateway at %s: %s", api->url,
                         resp->detail[0] ? resp->detail : strerror(-r));
}

int api_error_object(const struct api *api, const json_t *e, int status, struct cli_error *err)
{
    const char *code = json_str(e, "code"), *message = json_str(e, "message");
    const char *recovery = json_str(e, "recovery");
    char fallback[32];

    if (!code) {
        snprintf(fallback, sizeof(fallback), "http_%d", status);
        code = fallback;
    }
    if (!recovery)
        recovery = recovery_for(api->c, code);
    cli_error_set(err, 1, code, recovery, -EIO, "%s",
                  message ? message : "the gateway answered with an error");
    if (!message)
        snprintf(err->message, sizeof(err->message), "the gateway answered HTTP %d", status);
    return -EIO;
}

/* A 4xx/5xx answer: the API's {"error": {code, message}} when it sent one. */
static int api_error(const struct api *api, const struct httpc_response *resp,
                     struct cli_error *err)
{
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    int r = api_error_object(api, json_object_get(root, "error"), resp->status, err);
    json_decref(root);
    return r;
}

/* One exchange; a 2xx body is decoded as JSON into *out, or handed over
 * raw in *raw (either may be NULL). */
static int api_request(struct api *api, struct httpc_request *req, int timeout_ms,
                       const char *progress_label, json_t **out, char **raw, size_t *raw_len,
                       struct cli_error *err)
{
    struct httpc_url url;
    struct httpc_response resp;
    struct progress prog;
    int r;

    if (out)
        *out = NULL;
    if (raw)
        *raw = NULL;
    r = httpc_url_parse(api->url, &url);
    if (r < 0)
        return cli_error_set(err, 1, "invalid_url", "set PORTHOLE_URL to http://HOST:PORT", r,
                             "not an http:// URL: %s", api->url);
    req->token = api->token;
    req->actor = api->actor;
    req->timeout_ms = timeout_ms;
    progress_start(&prog, api->c, api->tick ? NULL : progress_label);
    req->tick = api->tick ? api->tick : progress_tick;
    req->tick_data = api->tick ? api->tick_data : &prog;
    r = httpc_do(&url, req, &resp);
    progress_done(&prog);
    if (r < 0) {
        r = transport_error(api, r, &resp, timeout_ms, err);
        httpc_response_done(&resp);
        return r;
    }
    if (resp.status >= 300) {
        r = api_error(api, &resp, err);
        httpc_response_done(&resp);
        return r;
    }
    if (out && resp.body_len > 0 && req->out_fd < 0) {
        json_error_t jerr;
        *out = json_loadb(resp.body, resp.body_len, 0, &jerr);
        if (!*out) {
            httpc_response_done(&resp);
            return cli_error_set(err, 1, "bad_response", NULL, -EPROTO,
                                 "the gateway sent invalid JSON: %s", jerr.text);
        }
    }
    r = (int)(resp.body_len > INT32_MAX ? INT32_MAX : resp.body_len);
    if (raw) {
        *raw = TAKE_PTR(resp.body);
        *raw_len = resp.body_len;
    }
    httpc_response_done(&resp);
    return r;
}

int api_call(struct api *api, const char *method, const char *path, json_t *body, int timeout_ms,
             const char *progress_label, json_t **out, struct cli_error *err)
{
    struct httpc_request req = HTTPC_REQUEST_INIT(method, path);
    _cleanup_free_ char *text = NULL;
    int r;

    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        if (!text)
            return cli_error_set(err, 1, "internal", NULL, -ENOMEM, "out of memory");
        req.body = text;
        req.body_len = strlen(text);
        req.content_type = "application/json";
    }
    r = api_request(api, &req, timeout_ms, progress_label, out, NULL, NULL, err);
    return r < 0 ? r : 0;
}

int api_fetch(struct api *api, const char *method, const char *path, const char *content_type,
              const void *body, size_t len, int timeout_ms, size_t max, char **out, size_t *out_len,
              struct cli_error *err)
{
    struct httpc_request req = HTTPC_REQUEST_INIT(method, path);
    int r;

    req.body = body;
    req.body_len = len;
    req.content_type = content_type;
    req.max_body = max;
    r = api_request(api, &req, timeout_ms, NULL, NULL, out, out_len, err);
    return r < 0 ? r : 0;
}

int api_stream(struct api *api, const char *method, const char *path, json_t *body, int timeout_ms,
               int (*on_body)(void *data, const char *buf, size_t len), void *data,
               struct cli_error *err)
{
    struct httpc_request req = HTTPC_REQUEST_INIT(method, path);
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct httpc_url url;
    struct httpc_response resp;
    int r;

    if (body && !text)
        return cli_error_set(err, 1, "internal", NULL, -ENOMEM, "out of memory");
    r = httpc_url_parse(api->url, &url);
    if (r < 0)
        return cli_error_set(err, 1, "invalid_url", NULL, r, "not an http:// URL: %s", api->url);
    req.body = text;
    req.body_len = text ? strlen(text) : 0;
    req.content_type = text ? "application/json" : NULL;
    req.token = api->token;
    req.actor = api->actor;
    req.timeout_ms = timeout_ms;
    req.on_body = on_body;
    req.body_data = data;
    req.tick = api->tick;
    req.tick_data = api->tick_data;
    r = httpc_do(&url, &req, &resp);
    if (r == -ECANCELED)
        cli_error_set(err, 1, "cancelled", NULL, r, "cancelled");
    else if (r < 0)
        r = transport_error(api, r, &resp, req.timeout_ms, err);
    else if (resp.status >= 300)
        r = api_error(api, &resp, err);
    else
        r = 0;
    httpc_response_done(&resp);
    return r;
}

int api_download(struct api *api, const char *path, int fd, size_t *bytes, struct cli_error *err)
{
    struct httpc_request req = HTTPC_REQUEST_INIT("GET", path);
    struct httpc_url url;
    struct httpc_response resp;
    int r;

    /* api_request would drop the byte count of a streamed body; this is the
     * same exchange with the count kept. */
    r = httpc_url_parse(api->url, &url);
    if (r < 0)
        return cli_error_set(err, 1, "invalid_url", NULL, r, "not an http:// URL: %s", api->url);
    req.token = api->token;
    req.actor = api->actor;
    req.timeout_ms = API_TIMEOUT_LONG_MS;
    req.out_fd = fd;
    r = httpc_do(&url, &req, &resp);
    if (r < 0) {
        r = transport_error(api, r, &resp, req.timeout_ms, err);
    } else if (resp.status >= 300) {
        r = api_error(api, &resp, err);
    } else {
        *bytes = resp.body_len;
        r = 0;
    }
    httpc_response_done(&resp);
    return r;
}

int api_upload(struct api *api, const char *path, int fd, size_t len, json_t **out,
               struct cli_error *err)
{
    struct httpc_request req = HTTPC_REQUEST_INIT("PUT", path);
    int r;

    req.body_fd = fd;
    req.body_len = len;
    req.content_type = "application/octet-stream";
    r = api_request(api, &req, API_TIMEOUT_LONG_MS, NULL, out, NULL, NULL, err);
    return r < 0 ? r : 0;
}
