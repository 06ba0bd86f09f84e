/* The gateway's shared state and the objects it manages. Everything here is
 * touched on the event-loop thread only, except `vm`, whose blocking calls
 * run on worker threads while `jobs` counts them (see sandbox_hold). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "accel.h"
#include "http.h"
#include "policy.h"
#include "run.h"
#include "state.h"
#include "vm.h"
#include "work.h"

enum sandbox_status {
    SANDBOX_STARTING = 0,
    SANDBOX_READY,
    SANDBOX_STOPPING,
    SANDBOX_ERROR,
};
const char *sandbox_status_name(enum sandbox_status s);

struct pool_vm;
struct session_media;

struct pending_reply {
    struct http_req *req;       /* weak until replied */
    struct pending_reply *next; /* owned */
};

/* The browser-specific part of a browser session (NULL for sandboxes). */
struct browser_session {
    bool live, record_video, persistent, allow_downloads;
    int width, height;
    char profile_id[65];
    char cdp_token[65]; /* capability secrets inside the URLs below */
    char live_token[65];
    char control_token[65];
    char cdp_base[160];      /* "http://host:port/cdp/ID/TOKEN" (per-session listener or main) */
    json_t *allowed_domains; /* owned, NULL: any */
    bool from_pool;          /* served by a pre-booted VM */
    int64_t start_ms;        /* monotonic: request arrived */
    int64_t ready_ms;        /* monotonic: session ready */
    struct session_media *media; /* owned: VNC session, recordings (media.c) */
};

struct sandbox {
    char id[40];
    char vm_id[40]; /* the VM's id (== id unless served from the pool) */
    enum vm_kind kind;
    enum sandbox_status status;
    char error[512];    /* reason when status is error */
    int64_t created_at; /* wall ms */
    int64_t expires_at; /* wall ms */
    int vcpus, mem_mib, disk_mib, timeout_minutes;
    json_t *env_vars;                /* owned: object NAME -> value */
    json_t *extra;                   /* owned: kind-specific record fields, or NULL */
    struct browser_session *browser; /* owned, browser sessions only */
    struct vm *vm;                   /* owned; NULL until created */
    struct run_hooks *hooks;         /* owned: this VM's own callbacks */
    int jobs;                        /* worker jobs using vm right now */
    bool deleting;
    struct pending_reply *delete_waiters; /* owned list */
    struct sandbox *next;                 /* owned by the gateway's list */
};

struct gateway {
    char *state_dir; /* owned */
    char *cache_dir; /* owned */
    char *token;     /* owned: the admin bearer token */
    char url[128];
    struct accel_choice accel;
    struct state_db *db;       /* owned */
    struct http_server *http;  /* owned */
    struct work_pool *work;    /* weak: the server's */
    struct policy *policy;     /* owned */
    struct run_hooks *hooks;   /* owned: global callbacks (policy, audit) */
    struct sandbox *sandboxes; /* owned list */
    int max_sandboxes;
    int boot_timeout_s;
    struct pool_vm *pool; /* owned list: pre-booted browser VMs */
    int pool_target;      /* how many to keep ready */
    int pool_booting;
    bool shutting_down; /* no new pool boots */
    char web_root[512]; /* static files: live view, dashboard, noVNC */
    int recording_fps;
    int recording_retention_hours; /* 0: keep until deleted */
};

/* Lookup on the loop thread; NULL when unknown or being deleted. */
struct sandbox *gateway_find(struct gateway *gw, const char *id, enum vm_kind kind);
/* Persists a sandbox's record (loop thread). */
void sandbox_save(struct gateway *gw, struct sandbox *sb);
json_t *sandbox_to_json(const struct sandbox *sb);
/* The objects of one kind, newest first (a new array). */
json_t *sandbox_list_json(struct gateway *gw, enum vm_kind kind);

/* The object named by req->params[0]; replies 404 (unknown) or 409 (not
 * ready, when need_ready) itself and returns NULL then. */
struct sandbox *sandbox_lookup(struct gateway *gw, struct http_req *req, enum vm_kind kind,
                               bool need_ready);
/* Holds sb and queues a job that uses its VM; when the queue is full,
 * releases it, replies 429 and returns < 0 (the caller frees its job). */
int sandbox_submit(struct gateway *gw, struct sandbox *sb, struct http_req *req, work_fn run,
                   work_fn done, void *data);

/* Worker jobs that use sb->vm hold it; deletion waits until released. */
void sandbox_hold(struct sandbox *sb);
void sandbox_release(struct gateway *gw, struct sandbox *sb);

/* Worker thread: makes, starts and waits for a VM (one retry when the
 * guest does not come up); on failure nothing of it is left. */
int gateway_boot_vm(struct gateway *gw, const char *id, const struct vm_spec *spec,
                    const char *marker, struct vm **out, struct ph_error *err);

/* What sandbox_launch needs; fields marked stolen are taken (and NULLed)
 * whether the launch succeeds or not. */
struct launch {
    enum vm_kind kind;
    const char *id_prefix; /* "sb-", "bs-" */
    int vcpus, mem_mib, disk_mib, timeout_minutes;
    json_t *env_vars;                /* borrowed */
    char *extra_config;              /* stolen: more lines for the guest init */
    const char *marker;              /* console line that means ready */
    struct browser_session *browser; /* stolen, browser sessions only */
    struct vm *pooled;               /* stolen: a pre-booted VM to use instead of booting */
    /* Loop thread, before the boot is queued (e.g. open a listener). */
    int (*setup)(struct gateway *gw, struct sandbox *sb, struct ph_error *err);
    /* Worker thread, once the guest is ready: apply per-object settings. */
    int (*prepare)(struct gateway *gw, struct sandbox *sb, struct vm *vm, struct ph_error *err);
    struct http_req *reply; /* gets 201 with the object once ready, or the error */
};

/* Creates a VM-backed object and boots it (or prepares a pooled VM) on a
 * worker. Returns NULL with err filled. */
struct sandbox *sandbox_launch(struct gateway *gw, struct launch *l, struct ph_error *err);

void sandbox_api_register(struct gateway *gw);
/* Starts deleting; req (may be NULL) gets the reply once the VM is gone. */
void sandbox_delete(struct gateway *gw, struct sandbox *sb, struct http_req *req);
/* Re-attaches to the VMs of a previous gateway run (at start). */
void sandbox_restore_all(struct gateway *gw);
/* Deletes expired sandboxes and notices dead QEMU processes (1 s tick). */
void sandbox_sweep(struct gateway *gw);
