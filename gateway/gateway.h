/* The gateway daemon, `porthole gateway`: its options, and the state its
 * modules share. struct gateway owns one context per module; nothing of
 * the gateway lives in file-scope variables.
 *
 *   http (http.c, ws.c, work.c)   the server, its WebSockets, the workers
 *   instances (instance.c)        the lifecycle of every VM
 *   sandboxes (sandbox.c)         the sandbox kind and /v1/sandboxes
 *   browsers (browser.c)          the browser kind and /v1/browser
 *   pool (pool.c)                 pre-booted browser VMs
 *   net (network.c, egress.c)     every guest's one way out, with its policy
 *   cdp, vnc, media               observers of browser sessions: the CDP
 *                                 proxy, the live-view proxy, screenshots,
 *                                 computer use and recordings
 *
 * Everything here is touched on the event-loop thread only, unless a
 * module's header says otherwise. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "accel.h"
#include "http.h"
#include "instance.h"
#include "policy.h"
#include "run.h"
#include "state.h"

struct gateway_opts {
    const char *listen;      /* "127.0.0.1:8790" */
    const char *state_dir;   /* NULL: default_state_dir() */
    const char *config_path; /* JSON config, or NULL */
    const char *accel;       /* "auto" | "kvm" | "tcg", NULL = auto */
    int ready_fd;            /* -1 if unused: "ready URL\n" is written once listening */
    /* The MCP session served at /mcp (the executable's, see mcp_http.h);
     * NULL: no /mcp. */
    const struct mcp_http_ops *mcp;
};

#define GATEWAY_DEFAULT_LISTEN "127.0.0.1:8790"

/* Runs until SIGTERM/SIGINT; returns the process exit code. */
int gateway_main(const struct gateway_opts *o);

struct sandboxes;
struct browsers;
struct pool;
struct network;
struct ws_hub;
struct cdp_proxy;
struct vnc_proxy;
struct shell_proxy;
struct mcp_http;
struct mcp_http_ops;
struct media;
struct templates;
struct snapshots;

struct gateway {
    char *state_dir; /* owned */
    char *cache_dir; /* owned */
    char *exe;       /* owned: this executable's path */
    char *relay;     /* owned: the egress relay command (instances_config) */
    char *token;     /* owned: the admin bearer token */
    char url[128];
    struct accel_choice accel;
    struct state_db *db;         /* owned */
    struct http_server *http;    /* owned */
    struct work_pool *work;      /* weak: the server's */
    struct work_pool *fast_work; /* weak: the server's WORK_LANE_FAST */
    struct ws_hub *ws;           /* owned */
    struct policy *policy;       /* owned */
    struct run_hooks *hooks;     /* owned: global callbacks (policy, audit) */
    struct instances *instances; /* owned */
    struct sandboxes *sandboxes; /* owned */
    struct browsers *browsers;   /* owned */
    struct pool *pool;           /* owned */
    struct templates *templates; /* owned */
    struct snapshots *snapshots; /* owned */
    struct network *net;         /* owned: the guests' egress */
    struct cdp_proxy *cdp;       /* owned */
    struct vnc_proxy *vnc;       /* owned */
    struct shell_proxy *shell;   /* owned */
    struct mcp_http *mcp;        /* owned, NULL: no /mcp */
    struct media *media;         /* owned */
    int max_instances;
    int boot_timeout_s;
    bool cdp_host_forward; /* benchmarks only: see instances_config */
    char port_bind[48];    /* where sandboxes' exposed ports listen ("ports_bind_address") */
    int pool_target;       /* pre-booted browser VMs to keep ready */
    bool use_templates;    /* clone new VMs from templates ("templates", default true) */
    char web_root[512];    /* static files: live view, dashboard, noVNC */
    int recording_fps;
    int recording_retention_hours; /* 0: keep until deleted (or the budget is full) */
    int recording_max_mib;         /* one recording's size limit, 0: none */
    int recording_max_minutes;     /* one recording's duration limit, 0: none */
    int recording_total_mib;       /* all recordings' budget, 0: none */
    int console_log_max_mib;       /* a guest's console log, 0: no limit */
    int cdp_session_max_mib;       /* what one session's CDP clients hold in the gateway, 0: none */
    lws_sorted_usec_list_t sweep;  /* the 1 s tick */
};
