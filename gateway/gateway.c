#include "gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include "config.h"
#include "browser.h"
#include "cdp_proxy.h"
#include "media.h"
#include "network.h"
#include "pool.h"
#include "snapshot.h"
#include "templates.h"
#include "sandbox.h"
#include "mcp_http.h"
#include "shell_proxy.h"
#include "vnc_proxy.h"
#include "ws.h"
#include "util.h"

#define GATEWAY_CONFIG_MAX (1024 * 1024)

/* SIGTERM and SIGINT are blocked in every thread and taken by this one,
 * which stops the server: no handler, and no global for one to reach. */
static void *signal_thread(void *data)
{
    struct http_server *srv = data;
    sigset_t set;
    int sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigwait(&set, &sig);
    http_server_stop(srv);
    return NULL;
}

/* PORTHOLE_TOKEN when set; else the token of this state dir, generated on
 * first start and readable by its owner only. */
static int gateway_load_token(struct gateway *gw, struct ph_error *err)
{
    const char *env = getenv("PORTHOLE_TOKEN");
    _cleanup_free_ char *path = NULL, *data = NULL;
    char fresh[65];
    int r;

    if (env && *env) {
        /* 32 characters of a random hex or base64 token are 128 bits or
         * more; anything shorter is too easy to guess for the key to
         * every sandbox and session. */
        if (strlen(env) < 32)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "PORTHOLE_TOKEN is %zu characters; it must have at least 32 "
                                "(e.g. head -c 24 /dev/urandom | base64)",
                                strlen(env));
        gw->token = strdup(env);
        return gw->token ? 0 : ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    if (asprintf(&path, "%s/token", gw->state_dir) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if (read_file(path, &data, NULL, 1024) == 0) {
        data[strcspn(data, "\r\n")] = '\0';
        if (strlen(data) >= 32) {
            gw->token = TAKE_PTR(data);
            return 0;
        }
    }
    r = random_hex(fresh, 32);
    if (r < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, r, "cannot generate a token");
    r = write_file_atomic(path, fresh, strlen(fresh), 0600);
    if (r < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, r, "cannot write %s: %s", path, strerror(-r));
    gw->token = strdup(fresh);
    return gw->token ? 0 : ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
}

/* An integer key of the config in [min, max] into *out, def when absent. */
static int config_int(json_t *cfg, const char *key, int def, int min, int max, int *out,
                      struct ph_error *err)
{
    json_t *v = json_object_get(cfg, key);

    if (v && (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "config: %s must be a whole number from %d%s to %d", key, min,
                            min == 0 ? " (no limit)" : "", max);
    *out = v ? (int)json_integer_value(v) : def;
    return 0;
}

/* The HTTP server's connection bounds (see http.h, "Connections"). None
 * can be turned off. */
static int gateway_connection_limits(json_t *cfg, struct http_server_opts *o, struct ph_error *err)
{
    int r = config_int(cfg, "max_connections", HTTP_DEFAULT_MAX_CONNECTIONS, 1, 65535,
                       &o->max_connections, err);
    if (r >= 0)
        r = config_int(cfg, "max_connections_per_client", HTTP_DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
                       1, 65535, &o->max_connections_per_client, err);
    if (r >= 0)
        r = config_int(cfg, "unauthenticated_timeout_s", HTTP_DEFAULT_UNAUTHENTICATED_TIMEOUT_S, 1,
                       3600, &o->unauthenticated_timeout_s, err);
    return r;
}

static int gateway_load_config(struct gateway *gw, const char *path, json_t **out,
                               struct ph_error *err)
{
    json_t *cfg;
    json_error_t je;
    _cleanup_free_ char *audit = NULL;

    if (path) {
        _cleanup_free_ char *text = NULL;
        int r = read_file(path, &text, NULL, GATEWAY_CONFIG_MAX);
        if (r < 0)
            return ph_error_set(err, PH_ERR_INVALID, r, "cannot read config %s: %s", path,
                                strerror(-r));
        cfg = json_loads(text, 0, &je);
        if (!cfg || !json_is_object(cfg)) {
            json_decref(cfg);
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "config %s: line %d: %s", path,
                                je.line, cfg ? "must be a JSON object" : je.text);
        }
    } else {
        cfg = json_object();
    }
    if (!json_object_get(cfg, "audit_log")) {
        if (asprintf(&audit, "%s/audit.jsonl", gw->state_dir) < 0) {
            json_decref(cfg);
            return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        }
        json_object_set_new(cfg, "audit_log", json_string(audit));
    }
    json_t *v = json_object_get(cfg, "max_sandboxes");
    gw->max_instances = json_is_integer(v) ? (int)json_integer_value(v) : 16;
    v = json_object_get(cfg, "browser_pool");
    gw->pool_target = json_is_integer(v) ? (int)json_integer_value(v) : 1;
    v = json_object_get(cfg, "templates");
    gw->use_templates = !json_is_false(v);
    v = json_object_get(cfg, "recording_fps");
    gw->recording_fps = json_is_integer(v) ? (int)json_integer_value(v) : 15;
    if (gw->recording_fps < 1 || gw->recording_fps > 60)
        gw->recording_fps = 15;
    v = json_object_get(cfg, "recording_retention_hours");
    gw->recording_retention_hours = json_is_integer(v) ? (int)json_integer_value(v) : 0;
    /* Bounds on what can grow: 0 turns one off. */
    static const struct {
        const char *key;
        int def;
    } limits[] = {
        {"recording_max_mib", 2048}, {"recording_max_minutes", 120}, {"recording_total_mib", 10240},
        {"console_log_max_mib", 16}, {"cdp_session_max_mib", 512},
    };
    int *limit_fields[] = {&gw->recording_max_mib, &gw->recording_max_minutes,
                           &gw->recording_total_mib, &gw->console_log_max_mib,
                           &gw->cdp_session_max_mib};
    for (size_t i = 0; i < ARRAY_SIZE(limits); i++)
        if (config_int(cfg, limits[i].key, limits[i].def, 0, 1 << 24, limit_fields[i], err) < 0) {
            json_decref(cfg);
            return -EINVAL;
        }
    v = json_object_get(cfg, "boot_timeout_s");
    gw->boot_timeout_s = json_is_integer(v) ? (int)json_integer_value(v) : 150;
    v = json_object_get(cfg, "ports_bind_address");
    snprintf(gw->port_bind, sizeof(gw->port_bind), "%s",
             json_is_string(v) ? json_string_value(v) : "127.0.0.1");
    {
        unsigned char a[sizeof(struct in6_addr)];
        if (inet_pton(AF_INET, gw->port_bind, a) != 1 &&
            inet_pton(AF_INET6, gw->port_bind, a) != 1) {
            json_decref(cfg);
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "config: ports_bind_address must be an IP address, not \"%s\"",
                                gw->port_bind);
        }
    }
    if (strcmp(gw->port_bind, "127.0.0.1") != 0)
        fprintf(stderr, "porthole gateway: sandboxes' exposed ports listen on %s\n", gw->port_bind);
    gw->cdp_host_forward = json_is_true(json_object_get(cfg, "cdp_host_forward"));
    if (gw->cdp_host_forward)
        fprintf(stderr, "porthole gateway: cdp_host_forward is on: every browser VM's DevTools "
                        "is open to every local user on a 127.0.0.1 port (benchmarks only)\n");
    *out = cfg;
    return 0;
}

/* The relay QEMU runs per guest connection: porthole-egress-relay next to
 * this executable (libc only: starts in a few ms), else this executable's
 * own egress-relay subcommand. Paths with a quote or comma are refused:
 * the command goes through QEMU's option parser and shell-style splitting. */
static int egress_relay_command(const char *exe, char **out)
{
    _cleanup_free_ char *small = NULL;
    const char *slash = strrchr(exe, '/');

    if (!slash || strpbrk(exe, "',"))
        return -EINVAL;
    if (asprintf(&small, "%.*s/porthole-egress-relay", (int)(slash - exe), exe) < 0)
        return -ENOMEM;
    if (access(small, X_OK) == 0)
        return asprintf(out, "'%s'", small) < 0 ? -ENOMEM : 0;
    return asprintf(out, "'%s' egress-relay", exe) < 0 ? -ENOMEM : 0;
}

static void api_healthz(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    http_reply_json(req, 200,
                    json_pack("{s:s, s:s, s:s}", "status", "ok", "version", PORTHOLE_VERSION,
                              "accel", accel_name(gw->accel.accel)));
}

/* What the gateway holds ready: the pool, the templates, the instances. */
static void api_status(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    char why[256];
    bool failing = state_write_failing(gw->db, why, sizeof(why));
    http_reply_json(req, 200,
                    json_pack("{s:s, s:s, s:{s:i, s:i}, s:o, s:i, s:{s:s, s:s?}}", "version",
                              PORTHOLE_VERSION, "accel", accel_name(gw->accel.accel), "pool",
                              "target", gw->pool_target, "ready", pool_ready_count(gw->pool),
                              "templates", templates_status(gw->templates), "instances",
                              instances_count(gw->instances), "state_db", "status",
                              failing ? "failing" : "ok", "error", failing ? why : NULL));
}

static void gateway_tick(lws_sorted_usec_list_t *sul)
{
    struct gateway *gw = lws_container_of(sul, struct gateway, sweep);

    instances_sweep(gw->instances);
    templates_fill(gw->templates);
    pool_fill(gw->pool);
    snapshots_sweep(gw->snapshots);
    media_sweep(gw->media);
    mcp_http_sweep(gw->mcp);
    lws_sul_schedule(http_server_context(gw->http), 0, sul, gateway_tick, LWS_US_PER_SEC);
}

/* The static root: live view, dashboard, noVNC. An installed gateway uses
 * its data dir; one run from a build tree uses the tree it was built from. */
static void gateway_find_web_root(struct gateway *gw)
{
    const char *candidates[] = {getenv("PORTHOLE_WEB_ROOT"), PORTHOLE_WEB_BUILD_ROOT,
                                PORTHOLE_DATADIR "/web"};
    char probe[700];
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
        if (!candidates[i] || !*candidates[i])
            continue;
        snprintf(probe, sizeof(probe), "%s/live.html", candidates[i]);
        if (access(probe, R_OK) == 0) {
            snprintf(gw->web_root, sizeof(gw->web_root), "%s", candidates[i]);
            return;
        }
    }
    fprintf(stderr, "porthole gateway: live view files not found; live URLs will not work\n");
}

static int parse_listen(const char *listen, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(listen, ':');
    char *end;
    long p;

    if (!colon || (size_t)(colon - listen) >= hostlen || colon == listen)
        return -EINVAL;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return -EINVAL;
    *port = (int)p;
    return 0;
}

/* Reverse order of gateway_main's set-up. Instances were told to end
 * while the server still ran (instances_shutdown); here the server goes
 * first, which finishes every queued and running job, then what those
 * jobs used. */
static void gateway_free(struct gateway *gw)
{
    pool_stop_filling(gw->pool);
    templates_stop(gw->templates);
    http_server_free(gw->http);
    templates_free(gw->templates);
    /* The pool's VMs are stopped with the registry's state dir and
     * records: before the registry goes. */
    pool_free(gw->pool);
    instances_free(gw->instances);
    network_free(gw->net);
    media_free(gw->media);
    mcp_http_free(gw->mcp);
    shell_proxy_free(gw->shell);
    vnc_proxy_free(gw->vnc);
    cdp_proxy_free(gw->cdp);
    snapshots_free(gw->snapshots);
    browsers_free(gw->browsers);
    sandboxes_free(gw->sandboxes);
    ws_hub_free(gw->ws);
    policy_free(gw->policy);
    run_hooks_free(gw->hooks);
    state_close(gw->db);
    free(gw->token);
    free(gw->exe);
    free(gw->relay);
    free(gw->state_dir);
    free(gw->cache_dir);
}

static void gateway_log_observer_failure(void *data, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    (void)data;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    lwsl_warn("%s\n", buf);
}

int gateway_main(const struct gateway_opts *o)
{
    struct gateway gw = {0};
    struct ph_error err = {0};
    json_t *cfg = NULL;
    char host[256];
    int port, r, rc = 1;
    enum vm_accel requested;
    _cleanup_free_ char *db_path = NULL, *info_path = NULL, *info = NULL;

    /* Before any thread exists (state_open starts the database's
     * writer), so that every thread inherits the mask: a thread that
     * left SIGTERM unblocked would take it and end the process at once. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    lws_set_log_level(LLL_ERR | LLL_WARN | LLL_USER, NULL);
    if (parse_listen(o->listen ? o->listen : GATEWAY_DEFAULT_LISTEN, host, sizeof(host), &port) <
        0) {
        fprintf(stderr, "porthole gateway: --listen must be ADDR:PORT\n");
        return 2;
    }
    if (accel_parse(o->accel, &requested) < 0) {
        fprintf(stderr, "porthole gateway: --accel must be auto, kvm or tcg\n");
        return 2;
    }
    gw.state_dir = o->state_dir ? strdup(o->state_dir) : default_state_dir();
    gw.cache_dir = default_cache_dir();
    /* Guests' connections run the egress relay under QEMU. */
    gw.exe = realpath("/proc/self/exe", NULL);
    if (!gw.state_dir || !gw.cache_dir || !gw.exe || egress_relay_command(gw.exe, &gw.relay) < 0) {
        fprintf(stderr, "porthole gateway: cannot find the egress relay next to %s\n",
                gw.exe ? gw.exe : "this executable");
        goto out;
    }
    if ((r = mkdir_p(gw.state_dir, 0700)) < 0) {
        fprintf(stderr, "porthole gateway: cannot create %s: %s\n", gw.state_dir, strerror(-r));
        goto out;
    }
    if (gateway_load_token(&gw, &err) < 0 ||
        gateway_load_config(&gw, o->config_path, &cfg, &err) < 0) {
        fprintf(stderr, "porthole gateway: %s\n", err.message);
        goto out;
    }
    if (accel_choose(requested, &gw.accel) < 0) {
        fprintf(stderr, "porthole gateway: PORTHOLE_ACCEL must be auto, kvm or tcg\n");
        rc = 2;
        goto out;
    }
    if (gw.accel.accel == VM_ACCEL_TCG && !gw.accel.overridden)
        fprintf(stderr,
                "porthole gateway: hardware acceleration unavailable: %s; running guests in "
                "software emulation, expect ~10-30x slower\n",
                gw.accel.reason);
    else
        fprintf(stderr, "porthole gateway: accelerator %s (%s)\n", accel_name(gw.accel.accel),
                gw.accel.reason);

    if (asprintf(&db_path, "%s/state.db", gw.state_dir) < 0) {
        fprintf(stderr, "porthole gateway: out of memory\n");
        goto out;
    }
    if (state_open(db_path, &gw.db, &err) < 0) {
        fprintf(stderr, "porthole gateway: %s\n", err.message);
        goto out;
    }
    gw.hooks = run_hooks_new();
    gw.policy = policy_new();
    if (!gw.hooks || !gw.policy) {
        fprintf(stderr, "porthole gateway: out of memory\n");
        goto out;
    }
    run_hooks_set_logger(gw.hooks, gateway_log_observer_failure, NULL);
    r = policy_load(gw.policy, cfg, &err);
    if (r == 0 && policy_register(gw.policy, gw.hooks) < 0)
        r = ph_error_set(&err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if (r < 0) {
        fprintf(stderr, "porthole gateway: policy: %s\n", err.message);
        goto out;
    }

    gateway_find_web_root(&gw);
    if (!(gw.ws = ws_hub_new())) {
        fprintf(stderr, "porthole gateway: out of memory\n");
        goto out;
    }
    struct http_server_opts hopts = {
        .static_dir = gw.web_root[0] ? gw.web_root : NULL,
        .listen_addr = host,
        .port = port,
        .admin_token = gw.token,
    };
    ws_server_opts(&hopts, gw.ws);
    if (gateway_connection_limits(cfg, &hopts, &err) < 0 ||
        http_server_new(&hopts, &gw.http, &err) < 0) {
        fprintf(stderr, "porthole gateway: %s\n", err.message);
        goto out;
    }
    gw.work = http_server_work(gw.http);
    gw.fast_work = http_server_work_lane(gw.http, WORK_LANE_FAST);
    snprintf(gw.url, sizeof(gw.url), "http://%s:%d", host, http_server_port(gw.http));
    http_route(gw.http, HTTP_GET, "/healthz", HTTP_ROUTE_PUBLIC, 0, api_healthz, &gw);
    http_route(gw.http, HTTP_GET, "/v1/status", 0, 0, api_status, &gw);
    struct instances_config icfg = {
        .state_dir = gw.state_dir,
        .cache_dir = gw.cache_dir,
        .db = gw.db,
        .work = gw.work,
        .exec_work = http_server_work_lane(gw.http, WORK_LANE_EXEC),
        .hooks = gw.hooks,
        .accel = gw.accel.accel,
        .max_instances = gw.max_instances,
        .boot_timeout_s = gw.boot_timeout_s,
        .egress_relay = gw.relay,
        .cdp_host_forward = gw.cdp_host_forward,
        .templates = gw.use_templates,
        .console_log_max_bytes = (int64_t)gw.console_log_max_mib << 20,
    };
    /* Kinds first, then the observers, in the order they set up. */
    if (instances_new(&icfg, &gw.instances) < 0 ||
        pool_new(gw.instances, gw.pool_target, &gw.pool) < 0 ||
        templates_new(gw.instances, gw.use_templates, &gw.templates) < 0 ||
        sandboxes_new(&gw, &gw.sandboxes) < 0 || browsers_new(&gw, &gw.browsers) < 0 ||
        snapshots_new(&gw, &gw.snapshots) < 0) {
        fprintf(stderr, "porthole gateway: out of memory\n");
        goto out;
    }
    if (network_new(&gw, cfg, &gw.net, &err) < 0) {
        fprintf(stderr, "porthole gateway: %s\n", err.message);
        goto out;
    }
    if (cdp_proxy_new(&gw, &gw.cdp) < 0 || vnc_proxy_new(&gw, &gw.vnc) < 0 ||
        shell_proxy_new(&gw, &gw.shell) < 0 || media_new(&gw, &gw.media) < 0 ||
        mcp_http_new(&gw, o->mcp, &gw.mcp) < 0) {
        fprintf(stderr, "porthole gateway: out of memory\n");
        goto out;
    }

    if (asprintf(&info_path, "%s/gateway.json", gw.state_dir) < 0 ||
        asprintf(&info, "{\"url\": \"%s\", \"pid\": %d}\n", gw.url, (int)getpid()) < 0) {
        fprintf(stderr, "porthole gateway: out of memory\n");
        goto out;
    }
    write_file_atomic(info_path, info, strlen(info), 0600);

    pool_restore(gw.pool);
    instances_restore(gw.instances);
    templates_fill(gw.templates);
    pool_fill(gw.pool);
    lws_sul_schedule(http_server_context(gw.http), 0, &gw.sweep, gateway_tick, LWS_US_PER_SEC);

    pthread_t sig_thread;
    bool sig_thread_up = pthread_create(&sig_thread, NULL, signal_thread, gw.http) == 0;
    if (!sig_thread_up)
        fprintf(stderr, "porthole gateway: cannot start the signal thread; stop it with SIGKILL\n");
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "porthole gateway: listening on %s (state %s)\n", gw.url, gw.state_dir);
    if (o->ready_fd >= 0) {
        dprintf(o->ready_fd, "ready %s\n", gw.url);
        close(o->ready_fd);
    }
    rc = http_server_run(gw.http) < 0 ? 1 : 0;
    lws_sul_schedule(http_server_context(gw.http), 0, &gw.sweep, NULL, LWS_SET_TIMER_USEC_CANCEL);
    if (sig_thread_up) {
        /* Wakes the thread if the loop ended for another reason. */
        pthread_kill(sig_thread, SIGTERM);
        pthread_join(sig_thread, NULL);
    }
    /* Proxied clients are closed and recordings finalized now; the VMs
     * themselves keep running for the next gateway to re-attach to. */
    instances_shutdown(gw.instances);
    mcp_http_shutdown(gw.mcp);
    shell_proxy_shutdown(gw.shell);
    fprintf(stderr, "porthole gateway: stopped\n");
out:
    json_decref(cfg);
    gateway_free(&gw);
    return rc;
}
