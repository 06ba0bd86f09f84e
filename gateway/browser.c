/* Browser sessions on top of the instance lifecycle: the browser kind, the
 * session API, persistent profiles, downloads, logs, and the policy
 * applied to CDP commands. See browser.h. */
#include "browser.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"
#include "params.h"
#include "pool.h"
#include "snapshot.h"
#include "ssh.h"
#include "urlhost.h"
#include "util.h"

#define GUEST_PROFILE_DIR "/root/porthole/profile"
#define GUEST_PERSIST_DIR "/root/porthole/persist"
#define PROFILE_MAX (512 * 1024 * 1024)
#define DOWNLOAD_MAX (256 * 1024 * 1024)

struct browsers {
    struct instance_kind kind;
    struct gateway *gw; /* weak */
};

static struct browsers *browsers_of(const struct instance *in)
{
    return container_of(in->kind, struct browsers, kind);
}

static void browser_session_free(void *data)
{
    struct browser_session *b = data;
    if (!b)
        return;
    json_decref(b->allowed_domains);
    free(b);
}

struct browser_session *browser_of(const struct instance *in)
{
    /* The browser kind is the one that frees browser sessions. */
    return in && in->kind->free_data == browser_session_free ? in->kind_data : NULL;
}

/* ---- guest configuration ------------------------------------------------ */

static char *browser_config_text(const struct browser_session *b, json_t *env,
                                 const char *profile_dir)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    const char *key;
    json_t *val;

    if (!f)
        return NULL;
    fprintf(f, "browser.mode=%s\nbrowser.width=%d\nbrowser.height=%d\nbrowser.downloads=%d\n",
            b->live ? "live" : "headless", b->width, b->height, b->allow_downloads ? 1 : 0);
    fprintf(f, "browser.profile_dir=%s\nbrowser.download_dir=%s\nnetwork.proxy=%s\n", profile_dir,
            BROWSER_GUEST_DOWNLOAD_DIR, VM_EGRESS_PROXY);
    json_object_foreach(env, key, val) fprintf(f, "env=%s=%s\n", key, json_string_value(val));
    /* Mirrored into Chromium's URL policy, for a block page of its own. */
    size_t i;
    json_array_foreach(b->allowed_domains, i, val)
        fprintf(f, "browser.allow_domain=%s\n", json_string_value(val));
    if (b->allowed_domains && json_array_size(b->allowed_domains) == 0)
        fprintf(f, "browser.allow_domain=\n");
    fclose(f);
    return buf;
}

/* What a template of the session's mode runs with (templates.c). */
static bool browser_is_template_default(const struct browser_session *b, json_t *env)
{
    return b->width == POOL_WIDTH && b->height == POOL_HEIGHT && b->allow_downloads &&
           !b->persistent && json_object_size(env) == 0 && !b->allowed_domains;
}

/* What a pooled VM runs with: the live template's settings. */
static bool browser_is_pool_default(const struct browser_session *b, json_t *env)
{
    return b->live && browser_is_template_default(b, env);
}

static char *profile_path(struct gateway *gw, const char *profile_id)
{
    char *p = NULL;
    if (asprintf(&p, "%s/profiles/%s.tgz", gw->state_dir, profile_id) < 0)
        return NULL;
    return p;
}

/* Worker thread, once the guest is up: restores a persistent profile and
 * restarts Chromium with the session's settings when they differ from what
 * the guest booted with. */
static int browser_prepare(struct instance *sb, struct vm *vm, struct ph_error *err)
{
    struct gateway *gw = browsers_of(sb)->gw;
    struct browser_session *b = browser_of(sb);
    struct run_result res = {0};
    const char *profile_dir = b->persistent ? GUEST_PERSIST_DIR : GUEST_PROFILE_DIR;
    int r;

    /* Back from a pause to disk: the browser it had runs on. */
    if (vm->resumed)
        return 0;

    if (b->persistent) {
        _cleanup_free_ char *path = profile_path(gw, b->profile_id), *data = NULL;
        size_t len = 0;
        r = vm_guest_run(vm,
                         "/sbin/porthole-init browser-stop && rm -rf " GUEST_PERSIST_DIR
                         " && mkdir -p " GUEST_PERSIST_DIR,
                         NULL, 0, 60, &res, err);
        run_result_done(&res);
        if (r < 0)
            return r;
        if (path && read_file(path, &data, &len, PROFILE_MAX) == 0) {
            r = vm_ssh_put_file(vm->ssh, "/root/porthole/profile-in.tgz", data, len, 0600, err);
            if (r < 0)
                return r;
            r = vm_guest_run(vm,
                             "tar -xzf /root/porthole/profile-in.tgz -C " GUEST_PERSIST_DIR
                             " && rm -f /root/porthole/profile-in.tgz",
                             NULL, 0, 120, &res, err);
            run_result_done(&res);
            if (r < 0)
                return r;
        }
    }
    /* A pooled VM or a clone runs its template's settings (a clone's is
     * of the session's mode); a fork's, its parent's. */
    if (b->persistent || (vm->pooled && !browser_is_pool_default(b, sb->env_vars)) ||
        (vm->cloned && !vm->pooled && !b->forked &&
         !browser_is_template_default(b, sb->env_vars))) {
        _cleanup_free_ char *cfg = browser_config_text(b, sb->env_vars, profile_dir);
        if (!cfg)
            return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        r = vm_guest_run(vm, "/sbin/porthole-init browser-configure", cfg, strlen(cfg), 120, &res,
                         err);
        run_result_done(&res);
        if (r < 0) {
            ph_error_prefix(err, "configuring the browser");
            return r;
        }
    }
    return 0;
}

/* Worker thread, before the VM stops (NULL: it keeps running): saves a
 * persistent profile. */
static void browser_before_stop(struct instance *sb, struct vm *vm)
{
    struct gateway *gw = browsers_of(sb)->gw;
    struct browser_session *b = browser_of(sb);
    struct run_result res = {0};
    struct ph_error err = {0};
    _cleanup_free_ char *path = NULL, *dir = NULL, *data = NULL;
    size_t len = 0;

    if (!vm || !b->persistent || !vm->ssh || !vm_alive(vm))
        return;
    /* Chromium writes its cookie store on exit; stop it before packing. */
    if (vm_guest_run(
            vm,
            "/sbin/porthole-init browser-stop; tar -czf /root/porthole/profile-out.tgz "
            "--exclude=Cache --exclude='Code Cache' --exclude=GPUCache -C " GUEST_PERSIST_DIR " .",
            NULL, 0, 120, &res, &err) < 0 ||
        vm_ssh_get_file(vm->ssh, "/root/porthole/profile-out.tgz", &data, &len, PROFILE_MAX, &err) <
            0) {
        lwsl_err("session %s: profile %s not saved: %s\n", sb->id, b->profile_id, err.message);
        run_result_done(&res);
        return;
    }
    run_result_done(&res);
    path = profile_path(gw, b->profile_id);
    if (!path || asprintf(&dir, "%s/profiles", gw->state_dir) < 0)
        return;
    mkdir_p(dir, 0700);
    if (write_file_atomic(path, data, len, 0600) < 0)
        lwsl_err("session %s: cannot write %s\n", sb->id, path);
    else
        lwsl_user("session %s: profile %s saved (%zu bytes)\n", sb->id, b->profile_id, len);
}

/* ---- JSON ---------------------------------------------------------------- */

/* The pool's VM serves it (it did not fail to take its settings). */
static bool served_by_pool(const struct instance *sb)
{
    return browser_of(sb)->from_pool && !sb->booted_afresh;
}

static json_t *url_or_null(const char *base, const char *fmt, const char *a, const char *b,
                           bool present)
{
    char buf[512];
    if (!present)
        return json_null();
    int n = snprintf(buf, sizeof(buf), "%s", base);
    snprintf(buf + n, sizeof(buf) - (size_t)n, fmt, a, b);
    return json_string(buf);
}

static json_t *browser_to_json(const struct instance *sb)
{
    const struct browser_session *b = browser_of(sb);
    const char *gateway_base = browsers_of(sb)->gw->url;
    char ws[256];
    json_t *o;

    /* The browser-level WebSocket behind the same capability: the proxy
     * resolves "devtools/browser" to the guest browser's own id. */
    snprintf(ws, sizeof(ws), "%s/devtools/browser", b->cdp_base);
    if (strncmp(ws, "http://", 7) == 0)
        memmove(ws + 2, ws + 4, strlen(ws + 4) + 1), memcpy(ws, "ws", 2);
    o = json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:i, s:i}, s:b, s:s, s:s?, s:i, s:b, s:i, s:i, s:o, "
        "s:o, s:s, s:s, s:o, s:o, s:s}",
        "session_id", sb->id, "vm_id", sb->vm_id, "status", instance_status_name(sb->status),
        "mode", b->live ? "live" : "headless", "viewport", "width", b->width, "height", b->height,
        "record_video", b->record_video, "profile_mode", b->persistent ? "persistent" : "ephemeral",
        "profile_id", b->persistent ? b->profile_id : NULL, "timeout_minutes", sb->timeout_minutes,
        "allow_downloads", b->allow_downloads, "mem_size_mib", sb->mem_mib, "disk_size_mib",
        sb->disk_mib, "created_at", instance_time_json(sb->created_at), "expires_at",
        instance_time_json(sb->expires_at), "cdp_url", b->cdp_base, "cdp_ws_url", ws, "live_url",
        url_or_null(gateway_base, "/live/%s/%s", sb->id, b->live_token, b->live), "control_url",
        url_or_null(gateway_base, "/live/%s/%s?control=1", sb->id, b->control_token, b->live),
        "served_from",
        served_by_pool(sb) ? "pool"
        : b->forked        ? "fork"
                           : instance_served_from(sb));
    if (!o)
        return NULL;
    json_object_set(o, "allowed_domains", b->allowed_domains ? b->allowed_domains : json_null());
    json_object_set(o, "env_vars", sb->env_vars);
    json_object_set_new(o, "ready_at", instance_time_json(sb->ready_at));
    if (sb->ready_ms > 0)
        json_object_set_new(o, "startup_ms", json_integer(sb->ready_ms - sb->start_ms));
    if (sb->status == INSTANCE_ERROR)
        json_object_set_new(o, "error", json_string(sb->error));
    return o;
}

static json_t *browser_record(const struct instance *sb)
{
    const struct browser_session *b = browser_of(sb);
    json_t *o = json_pack("{s:b, s:b, s:b, s:b, s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:b}", "live",
                          b->live, "record_video", b->record_video, "persistent", b->persistent,
                          "allow_downloads", b->allow_downloads, "width", b->width, "height",
                          b->height, "profile_id", b->profile_id, "cdp_token", b->cdp_token,
                          "live_token", b->live_token, "control_token", b->control_token,
                          "cdp_base", b->cdp_base, "from_pool", served_by_pool(sb));
    if (o && b->allowed_domains)
        json_object_set(o, "allowed_domains", b->allowed_domains);
    return o;
}

static void *browser_from_record(const struct instance_kind *kind, json_t *extra)
{
    struct browser_session *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->live = json_is_true(json_object_get(extra, "live"));
    b->record_video = json_is_true(json_object_get(extra, "record_video"));
    b->persistent = json_is_true(json_object_get(extra, "persistent"));
    b->allow_downloads = json_is_true(json_object_get(extra, "allow_downloads"));
    b->from_pool = json_is_true(json_object_get(extra, "from_pool"));
    b->width = (int)json_integer_value(json_object_get(extra, "width"));
    b->height = (int)json_integer_value(json_object_get(extra, "height"));
    instance_record_str(b->profile_id, sizeof(b->profile_id), extra, "profile_id", "");
    instance_record_str(b->cdp_token, sizeof(b->cdp_token), extra, "cdp_token", "");
    instance_record_str(b->live_token, sizeof(b->live_token), extra, "live_token", "");
    instance_record_str(b->control_token, sizeof(b->control_token), extra, "control_token", "");
    instance_record_str(b->cdp_base, sizeof(b->cdp_base), extra, "cdp_base", "");
    b->allowed_domains = json_incref(json_object_get(extra, "allowed_domains"));
    return b;
}

/* ---- policy on CDP commands -------------------------------------------- */

/* With allowed_domains set, a navigation goes through only when its URL
 * parses (by the URL Standard, as Chromium reads it) to a special scheme
 * whose host is on the list. about:blank and about:srcdoc load nothing from
 * the network and stay allowed; every other scheme is refused: javascript:
 * and data: run or render content the list cannot vouch for, blob: and
 * filesystem: carry another origin inside, file: and view-source: read
 * what the list does not name. The empty URL is Chromium's about:blank. */
int browser_url_allowed(json_t *allowed_domains, const char *url, char *reason, size_t len)
{
    struct urlhost u;

    if (!allowed_domains || !*url)
        return 0;
    if (urlhost_parse(url, strlen(url), &u) < 0) {
        snprintf(reason, len, "navigation refused: allowed_domains is set and the URL has %s",
                 u.why);
        return -EPERM;
    }
    switch (u.kind) {
    case URLHOST_BLANK:
        return 0;
    case URLHOST_DOMAIN:
    case URLHOST_IPV4:
    case URLHOST_IPV6:
        if (domain_allowed(allowed_domains, u.host))
            return 0;
        snprintf(reason, len,
                 "navigation to %s is not allowed: not in the session's allowed_domains", u.host);
        return -EPERM;
    case URLHOST_FILE:
    case URLHOST_OPAQUE:
        break;
    }
    if (u.scheme[0])
        snprintf(reason, len,
                 "navigation to a %s: URL is not allowed: allowed_domains is set, which allows "
                 "only about:blank and http(s), ws(s) and ftp URLs of the listed hosts",
                 u.scheme);
    else
        snprintf(reason, len,
                 "navigation refused: allowed_domains is set, which allows only about:blank and "
                 "http(s), ws(s) and ftp URLs of the listed hosts");
    return -EPERM;
}

static int allowed_domains_hook(const struct run_ctx *ctx, void *data, char *reason, size_t len)
{
    struct browser_session *b = data;
    const char *url;

    /* The command is "cdp METHOD URL" (browser_check_cdp); METHOD has no space. */
    if (!b->allowed_domains || strncmp(ctx->command, "cdp ", 4) != 0)
        return 0;
    url = strchr(ctx->command + 4, ' ');
    if (!url)
        return 0;
    return browser_url_allowed(b->allowed_domains, url + 1, reason, len);
}

int browser_check_cdp(struct browsers *bs, struct instance *sb, const char *method, const char *url,
                      char *reason, size_t reason_len)
{
    struct gateway *gw = bs->gw;
    _cleanup_free_ char *cmd = NULL;
    char actor[64];
    struct ph_error err = {0};
    size_t url_len = url ? strlen(url) : 0;

    snprintf(actor, sizeof(actor), "cdp:%s", sb->id);
    /* Hooks see the whole URL or nothing: a longer one is refused, not cut. */
    if (url_len > BROWSER_CDP_URL_MAX) {
        snprintf(reason, reason_len,
                 "navigation refused: the URL is %zu bytes, over the gateway's limit of %d",
                 url_len, BROWSER_CDP_URL_MAX);
        if (asprintf(&cmd, "cdp %s <URL of %zu bytes>", method, url_len) < 0)
            cmd = NULL;
        struct run_ctx big = {.vm_id = sb->id,
                              .command = cmd ? cmd : "cdp",
                              .shell = RUN_SHELL_RAW,
                              .timeout_s = 0,
                              .actor = actor};
        policy_audit_blocked(gw->policy, &big, reason);
        return -EPERM;
    }
    if (asprintf(&cmd, "cdp %s %s", method, url ? url : "") < 0) {
        cmd = NULL;
        snprintf(reason, reason_len, "navigation refused: out of memory");
        return -EPERM;
    }
    struct run_ctx ctx = {
        .vm_id = sb->id, .command = cmd, .shell = RUN_SHELL_RAW, .timeout_s = 0, .actor = actor};
    if (run_hooks_check(gw->hooks, sb->hooks, &ctx, &err) < 0) {
        snprintf(reason, reason_len, "%s", err.message);
        policy_audit_blocked(gw->policy, &ctx, err.message);
        return -EPERM;
    }
    policy_audit_event(gw->policy,
                       json_pack("{s:s, s:s, s:s, s:s, s:s}", "event", "cdp", "vm_id", sb->id,
                                 "actor", actor, "method", method, "url", url ? url : ""));
    return 0;
}

/* ---- capability lookups --------------------------------------------------- */

struct instance *browser_find(struct browsers *bs, const char *session_id)
{
    return instance_find(bs->gw->instances, &bs->kind, session_id);
}

struct instance *browser_for_req(struct browsers *bs, struct http_req *req, bool need_ready)
{
    return instance_for_req(bs->gw->instances, &bs->kind, req, need_ready);
}

struct instance *browser_resolve(struct browsers *bs, const char *session_id, const char *token,
                                 enum browser_cap cap, bool *control)
{
    struct instance *sb = browser_find(bs, session_id);
    struct browser_session *b = browser_of(sb);
    bool is_control = false, ok = false;

    if (!b || !token || sb->status != INSTANCE_READY || sb->deleting || !sb->vm)
        return NULL;
    switch (cap) {
    case BROWSER_CAP_CDP:
        ok = secret_equal(b->cdp_token, token);
        break;
    case BROWSER_CAP_CONTROL:
        ok = is_control = b->live && secret_equal(b->control_token, token);
        break;
    case BROWSER_CAP_VIEW:
        if (!b->live)
            break;
        is_control = secret_equal(b->control_token, token);
        ok = is_control || secret_equal(b->live_token, token);
        break;
    }
    if (control)
        *control = is_control;
    return ok ? sb : NULL;
}

/* ---- the API ------------------------------------------------------------------ */

/* Loop thread, for a new or a restored session: its own policy hook. */
static int browser_setup(struct instance *sb, struct ph_error *err)
{
    if (run_hooks_add_pre(sb->hooks, allowed_domains_hook, browser_of(sb)) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    return 0;
}

static void api_browser_create(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    struct ph_error err = {0};
    struct browser_params p;
    struct browser_session *b;
    json_t *body = http_json_body(req, &err);

    if (!body || browser_params_parse(body, &p, &err) < 0) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    if (p.persistent && !p.profile_id[0] &&
        random_id(p.profile_id, sizeof(p.profile_id), "p-", 8) < 0) {
        browser_params_done(&p);
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    if (p.persistent) {
        for (struct instance *o = instances_first(gw->instances); o; o = o->next)
            if (browser_of(o) && browser_of(o)->persistent && !o->deleting &&
                strcmp(browser_of(o)->profile_id, p.profile_id) == 0) {
                http_reply_errorf(req, PH_ERR_CONFLICT,
                                  "profile %s is in use by session %s; stop it first", p.profile_id,
                                  o->id);
                browser_params_done(&p);
                return;
            }
    }
    b = calloc(1, sizeof(*b));
    if (!b || random_hex(b->cdp_token, 24) < 0 || random_hex(b->live_token, 24) < 0 ||
        random_hex(b->control_token, 24) < 0) {
        free(b);
        browser_params_done(&p);
        http_reply_errorf(req, PH_ERR_INTERNAL, "cannot generate session tokens");
        return;
    }
    b->live = p.live;
    b->width = p.width;
    b->height = p.height;
    b->record_video = p.record_video;
    b->persistent = p.persistent;
    b->allow_downloads = p.allow_downloads;
    snprintf(b->profile_id, sizeof(b->profile_id), "%s", p.profile_id);
    b->allowed_domains = TAKE_PTR(p.allowed_domains);

    struct instance_launch l = {
        .kind = &gw->browsers->kind,
        .vcpus = POOL_VCPUS,
        .mem_mib = p.mem_mib,
        .disk_mib = p.disk_mib,
        .timeout_minutes = p.timeout_minutes,
        .env_vars = p.env_vars,
        .net_mode = p.net_mode,
        .allowed_domains = b->allowed_domains,
        .screen_width = b->width,
        .screen_height = b->height,
        .ready = p.wait ? instance_reply_ready : NULL,
        .ready_data = req,
    };
    /* A pooled VM has the pool's memory and disk; other sizes boot fresh.
     * Where templates serve, it is taken only when it needs no restart of
     * its browser: a clone of the session's mode starts sooner. */
    l.template_variant = b->live ? "live" : "headless";
    if (p.mem_mib == POOL_MEM_MIB && p.disk_mib == 0 &&
        (browser_is_pool_default(b, p.env_vars) || !gw->use_templates))
        l.pooled = pool_take(gw->pool);
    b->from_pool = l.pooled != NULL;
    /* Also for a pooled VM: should it not take the settings, a fresh boot
     * starts with them. */
    l.extra_config =
        browser_config_text(b, p.env_vars, b->persistent ? GUEST_PERSIST_DIR : GUEST_PROFILE_DIR);
    l.kind_data = b;
    struct instance *sb = instance_launch(gw->instances, &l, &err);
    browser_params_done(&p);
    if (!sb) {
        http_reply_error(req, &err);
        return;
    }
    lwsl_user("browser session %s starting (%s) for %s\n", sb->id,
              browser_of(sb)->from_pool ? "from the pool" : "cold boot", req->actor);
    pool_fill(gw->pool);
    if (!p.wait)
        http_reply_json(req, 201, instance_to_json(sb));
}

/* ---- fork ------------------------------------------------------------------ */

#define BROWSER_FORK_MAX 8

struct fork_req {
    struct http_req *req;
    struct gateway *gw;
    char parent[40];
    int pending;
    int64_t start_ms;
    json_t *sessions; /* owned: the children, as they come up */
};

static void fork_reply(struct fork_req *f)
{
    lwsl_user("browser session %s: forked into %zu in %lld ms\n", f->parent,
              json_array_size(f->sessions), (long long)(now_ms() - f->start_ms));
    http_reply_json(f->req, 201,
                    json_pack("{s:s, s:o, s:I}", "parent", f->parent, "sessions", f->sessions,
                              "fork_ms", (json_int_t)(now_ms() - f->start_ms)));
    free(f);
}

static void fork_child_ready(struct instance *in, int r, const struct ph_error *err, void *data)
{
    struct fork_req *f = data;
    json_array_append_new(f->sessions,
                          r == 0 ? instance_to_json(in)
                                 : json_pack("{s:s, s:s, s:s}", "session_id", in->id, "status",
                                             "error", "error", err ? err->message : "failed"));
    if (--f->pending == 0)
        fork_reply(f);
}

/* A child: the parent's settings and sizes, its own tokens, timeout,
 * recordings and disk overlay on the fork's snapshot. */
static int fork_child(struct fork_req *f, const struct instance *parent, const char *snap_id,
                      const char *dir, struct ph_error *err)
{
    const struct browser_session *pb = browser_of(parent);
    struct browser_session *b = calloc(1, sizeof(*b));

    if (!b || random_hex(b->cdp_token, 24) < 0 || random_hex(b->live_token, 24) < 0 ||
        random_hex(b->control_token, 24) < 0) {
        free(b);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "cannot generate session tokens");
    }
    b->live = pb->live;
    b->width = pb->width;
    b->height = pb->height;
    b->record_video = pb->record_video;
    b->allow_downloads = pb->allow_downloads;
    b->allowed_domains = pb->allowed_domains ? json_deep_copy(pb->allowed_domains) : NULL;
    b->forked = true;
    struct instance_launch l = {
        .kind = &f->gw->browsers->kind,
        .vcpus = parent->vcpus,
        .mem_mib = parent->mem_mib,
        .disk_mib = parent->disk_mib,
        .timeout_minutes = parent->timeout_minutes,
        .env_vars = parent->env_vars,
        .net_mode = parent->net_mode,
        .allowed_domains = b->allowed_domains,
        .screen_width = b->width,
        .screen_height = b->height,
        .ready = fork_child_ready,
        .ready_data = f,
        .from_dir = dir,
        .from_snapshot = snap_id,
        .kind_data = b,
    };
    return instance_launch(f->gw->instances, &l, err) ? 0 : -EIO;
}

static void fork_snapshot_done(struct instance *parent, const char *snap_id, int r,
                               const struct ph_error *err, void *data)
{
    struct fork_req *f = data;
    struct vm_template snap;
    struct ph_error e = {0};
    int count = f->pending;

    if (r < 0 ||
        snapshots_lookup(f->gw->snapshots, snap_id, parent->kind, &snap, NULL, 0, &e) < 0) {
        http_reply_error(f->req, r < 0 ? err : &e);
        json_decref(f->sessions);
        free(f);
        return;
    }
    /* Each child's ready callback counts down; one that cannot even be
     * launched counts now. */
    f->pending = count + 1;
    for (int i = 0; i < count; i++) {
        e = (struct ph_error){0};
        if (fork_child(f, parent, snap_id, snap.dir, &e) < 0) {
            json_array_append_new(f->sessions,
                                  json_pack("{s:s, s:s}", "status", "error", "error", e.message));
            f->pending--;
        }
    }
    if (--f->pending == 0)
        fork_reply(f);
}

static void api_browser_fork(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    struct ph_error err = {0};
    static const char *const allowed[] = {"count", NULL};
    json_t *body = http_json_body(req, &err);
    struct instance *sb;
    struct fork_req *f;
    int count = 1;

    if (!body || params_only(body, allowed, &err) < 0 ||
        params_int(body, "count", 1, 1, BROWSER_FORK_MAX, &count, &err) < 0) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    if (!(sb = browser_for_req(gw->browsers, req, true)))
        return;
    if (instances_count(gw->instances) + count > gw->max_instances) {
        http_reply_errorf(req, PH_ERR_LIMIT,
                          "a fork into %d would pass the limit of %d sandboxes and sessions", count,
                          gw->max_instances);
        return;
    }
    if (!(f = calloc(1, sizeof(*f))) || !(f->sessions = json_array())) {
        free(f);
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    f->req = req;
    f->gw = gw;
    f->pending = count;
    f->start_ms = now_ms();
    snprintf(f->parent, sizeof(f->parent), "%s", sb->id);
    lwsl_user("browser session %s: fork into %d for %s\n", sb->id, count, req->actor);
    if (snapshots_take(gw->snapshots, sb, true, fork_snapshot_done, f, &err) < 0) {
        json_decref(f->sessions);
        free(f);
        http_reply_error(req, &err);
    }
}

static struct instance *session_for_req(struct gateway *gw, struct http_req *req, bool need_ready)
{
    return browser_for_req(gw->browsers, req, need_ready);
}

/* POST .../pause ({"to_disk": true} allowed) and .../resume. */
static void api_browser_pause(struct http_req *req, void *data)
{
    struct instance *sb = session_for_req(data, req, false);
    if (sb)
        instance_power_req(sb, req, INSTANCE_POWER_PAUSE);
}

static void api_browser_resume(struct http_req *req, void *data)
{
    struct instance *sb = session_for_req(data, req, false);
    if (sb)
        instance_power_req(sb, req, INSTANCE_POWER_RESUME);
}

static void api_browser_list(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    http_reply_json(req, 200,
                    json_pack("{s:o, s:i}", "sessions",
                              instances_list_json(gw->instances, &gw->browsers->kind), "pool_ready",
                              pool_ready_count(gw->pool)));
}

static void api_browser_get(struct http_req *req, void *data)
{
    struct instance *sb = session_for_req(data, req, false);
    if (sb)
        http_reply_json(req, 200, instance_to_json(sb));
}

static void api_browser_delete(struct http_req *req, void *data)
{
    struct instance *sb = session_for_req(data, req, false);
    if (sb && instance_delete(sb, instance_reply_deleted, req) < 0)
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
}

/* Blocking guest reads for logs and downloads, on a worker. */
enum guest_read_op { READ_LOGS, READ_DOWNLOADS, READ_DOWNLOAD_FILE };

struct guest_read_job {
    struct gateway *gw;
    struct instance *sb;
    struct http_req *req;
    enum guest_read_op op;
    char name[80];
    char *data;
    size_t len;
    json_t *json;
    struct ph_error err;
    int r;
};

static void guest_read_run(void *data)
{
    struct guest_read_job *j = data;
    struct vm *vm = j->sb->vm;
    struct run_result res = {0};

    switch (j->op) {
    case READ_LOGS: {
        _cleanup_free_ char *serial_path = NULL, *serial = NULL;
        size_t slen = 0;
        if (asprintf(&serial_path, "%s/serial.log", vm->run_dir) >= 0)
            read_file(serial_path, &serial, &slen, 64 * 1024 * 1024);
        j->r = vm_guest_run(vm, "tail -c 65536 /var/log/porthole-chromium.log 2>/dev/null; true",
                            NULL, 0, 20, &res, &j->err);
        const char *tail = serial && slen > 65536 ? serial + slen - 65536 : serial;
        j->json = json_pack("{s:s, s:s}", "console", tail ? tail : "", "chromium",
                            j->r == 0 && res.out ? res.out : "");
        if (!j->json) /* invalid UTF-8 in a log: fall back to the sanitized form */
            j->json =
                json_pack("{s:s, s:s}", "console", "(unreadable)", "chromium", "(unreadable)");
        j->r = 0;
        break;
    }
    case READ_DOWNLOADS: {
        j->r = vm_guest_run(vm,
                            "cd " BROWSER_GUEST_DOWNLOAD_DIR
                            " 2>/dev/null && find . -maxdepth 1 -type f "
                            "! -name '*.crdownload' -printf '%f\\t%s\\n'; true",
                            NULL, 0, 20, &res, &j->err);
        if (j->r < 0)
            break;
        j->json = json_array();
        for (char *line = res.out, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            char *tab = strchr(line, '\t');
            if (!tab)
                continue;
            *tab = '\0';
            json_array_append_new(j->json, json_pack("{s:s, s:I}", "name", line, "bytes",
                                                     (json_int_t)strtoll(tab + 1, NULL, 10)));
        }
        break;
    }
    case READ_DOWNLOAD_FILE: {
        char path[160];
        snprintf(path, sizeof(path), BROWSER_GUEST_DOWNLOAD_DIR "/%s", j->name);
        j->r = vm_ssh_get_file(vm->ssh, path, &j->data, &j->len, DOWNLOAD_MAX, &j->err);
        break;
    }
    }
    run_result_done(&res);
}

static void guest_read_done(void *data)
{
    struct guest_read_job *j = data;
    if (j->r < 0)
        http_reply_error(j->req, &j->err);
    else if (j->op == READ_LOGS)
        http_reply_json(j->req, 200, TAKE_PTR(j->json));
    else if (j->op == READ_DOWNLOADS)
        http_reply_json(j->req, 200, json_pack("{s:o}", "downloads", TAKE_PTR(j->json)));
    else
        http_reply_data(j->req, 200, "application/octet-stream", TAKE_PTR(j->data), j->len, NULL);
    instance_release(j->sb);
    json_decref(j->json);
    free(j->data);
    free(j);
}

static void guest_read_submit(struct gateway *gw, struct http_req *req, enum guest_read_op op)
{
    struct instance *sb = session_for_req(gw, req, true);
    struct guest_read_job *j;

    if (!sb)
        return;
    if (op == READ_DOWNLOAD_FILE && req->params[1][0] == '.') {
        http_reply_errorf(req, PH_ERR_INVALID, "invalid download name");
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j) {
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    j->gw = gw;
    j->sb = sb;
    j->req = req;
    j->op = op;
    if (op == READ_DOWNLOAD_FILE)
        snprintf(j->name, sizeof(j->name), "%s", req->params[1]);
    if (instance_submit_req(sb, req, guest_read_run, guest_read_done, j) < 0)
        free(j);
}

static void api_browser_logs(struct http_req *req, void *data)
{
    guest_read_submit(data, req, READ_LOGS);
}

static void api_browser_downloads(struct http_req *req, void *data)
{
    guest_read_submit(data, req, READ_DOWNLOADS);
}

static void api_browser_download(struct http_req *req, void *data)
{
    guest_read_submit(data, req, READ_DOWNLOAD_FILE);
}

static void serve_page(struct gateway *gw, struct http_req *req, const char *name)
{
    char path[700];
    char *data = NULL;
    size_t len = 0;

    snprintf(path, sizeof(path), "%s/%s", gw->web_root, name);
    if (read_file(path, &data, &len, 1024 * 1024) < 0) {
        http_reply_errorf(req, PH_ERR_UNAVAILABLE, "web page %s is not installed", name);
        return;
    }
    http_reply_data(req, 200, "text/html; charset=utf-8", data, len, NULL);
}

static void api_live_page(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    if (!browser_resolve(gw->browsers, req->params[0], req->params[1], BROWSER_CAP_VIEW, NULL)) {
        http_reply_errorf(req, PH_ERR_NOT_FOUND, "no such live session");
        return;
    }
    serve_page(gw, req, "live.html");
}

static void api_dashboard(struct http_req *req, void *data)
{
    serve_page(data, req, "dashboard.html");
}

static void browser_api_register(struct gateway *gw)
{
    http_route(gw->http, HTTP_POST, "/v1/browser/sessions", 0, 0, api_browser_create, gw);
    http_route(gw->http, HTTP_GET, "/v1/browser/sessions", 0, 0, api_browser_list, gw);
    http_route(gw->http, HTTP_GET, "/v1/browser/sessions/{id}", 0, 0, api_browser_get, gw);
    http_route(gw->http, HTTP_DELETE, "/v1/browser/sessions/{id}", 0, 0, api_browser_delete, gw);
    http_route(gw->http, HTTP_GET, "/v1/browser/sessions/{id}/logs", 0, 0, api_browser_logs, gw);
    http_route(gw->http, HTTP_POST, "/v1/browser/sessions/{id}/fork", 0, 0, api_browser_fork, gw);
    http_route(gw->http, HTTP_POST, "/v1/browser/sessions/{id}/pause", 0, 0, api_browser_pause, gw);
    http_route(gw->http, HTTP_POST, "/v1/browser/sessions/{id}/resume", 0, 0, api_browser_resume,
               gw);
    http_route(gw->http, HTTP_GET, "/v1/browser/sessions/{id}/downloads", 0, 0,
               api_browser_downloads, gw);
    http_route(gw->http, HTTP_GET, "/v1/browser/sessions/{id}/downloads/{name}", 0, 0,
               api_browser_download, gw);
    http_route(gw->http, HTTP_GET, "/live/{id}/{token}", HTTP_ROUTE_PUBLIC, 0, api_live_page, gw);
    http_route(gw->http, HTTP_GET, "/dashboard", HTTP_ROUTE_PUBLIC, 0, api_dashboard, gw);
}

int browsers_new(struct gateway *gw, struct browsers **out)
{
    struct browsers *bs = calloc(1, sizeof(*bs));
    if (!bs)
        return -ENOMEM;
    bs->gw = gw;
    bs->kind = (struct instance_kind){
        .name = "browser",
        .label = "browser session",
        .id_prefix = "bs-",
        .ready_marker = BROWSER_READY_MARKER,
        .vm_kind = VM_KIND_BROWSER,
        .setup = browser_setup,
        .prepare = browser_prepare,
        .before_stop = browser_before_stop,
        .to_json = browser_to_json,
        .record = browser_record,
        .restore = browser_from_record,
        .free_data = browser_session_free,
    };
    instances_add_kind(gw->instances, &bs->kind);
    gw->browsers = bs;
    browser_api_register(gw);
    *out = bs;
    return 0;
}

void browsers_free(struct browsers *bs)
{
    free(bs);
}
