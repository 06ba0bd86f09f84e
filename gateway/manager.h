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

struct pending_reply {
    struct http_req *req; /* weak until replied */
    struct pending_reply *next; /* owned */
};

struct sandbox {
    char id[40];
    enum vm_kind kind;
    enum sandbox_status status;
    char error[512];        /* reason when status is error */
    int64_t created_at;     /* wall ms */
    int64_t expires_at;     /* wall ms */
    int vcpus, mem_mib, disk_mib, timeout_minutes;
    json_t *env_vars;       /* owned: object NAME -> value */
    json_t *extra;          /* owned: kind-specific record fields, or NULL */
    struct vm *vm;          /* owned; NULL until created */
    struct run_hooks *hooks;/* owned: this VM's own callbacks */
    int jobs;               /* worker jobs using vm right now */
    bool deleting;
    struct pending_reply *delete_waiters; /* owned list */
    struct sandbox *next;   /* owned by the gateway's list */
};

struct gateway {
    char *state_dir;            /* owned */
    char *cache_dir;            /* owned */
    char *token;                /* owned: the admin bearer token */
    char url[128];
    struct accel_choice accel;
    struct state_db *db;        /* owned */
    struct http_server *http;   /* owned */
    struct work_pool *work;     /* weak: the server's */
    struct policy *policy;      /* owned */
    struct run_hooks *hooks;    /* owned: global callbacks (policy, audit) */
    struct sandbox *sandboxes;  /* owned list */
    int max_sandboxes;
    int boot_timeout_s;
};

/* Lookup on the loop thread; NULL when unknown or being deleted. */
struct sandbox *gateway_find(struct gateway *gw, const char *id, enum vm_kind kind);
/* Persists a sandbox's record (loop thread). */
void sandbox_save(struct gateway *gw, struct sandbox *sb);
json_t *sandbox_to_json(const struct sandbox *sb);

/* Worker jobs that use sb->vm hold it; deletion waits until released. */
void sandbox_hold(struct sandbox *sb);
void sandbox_release(struct gateway *gw, struct sandbox *sb);

/* Creates a VM-backed object and boots it on a worker. extra_config
 * (stolen) goes to the guest init; marker is the console line that means
 * ready. reply_req, when set, gets 201 with the object once ready (or the
 * error). Returns NULL with err filled. */
struct sandbox *sandbox_launch(struct gateway *gw, enum vm_kind kind, const char *id_prefix,
                               int vcpus, int mem_mib, int disk_mib, int timeout_minutes,
                               json_t *env_vars, char *extra_config, const char *marker,
                               struct http_req *reply_req, struct ph_error *err);

void sandbox_api_register(struct gateway *gw);
/* Re-attaches to the VMs of a previous gateway run (at start). */
void sandbox_restore_all(struct gateway *gw);
/* Deletes expired sandboxes and notices dead QEMU processes (1 s tick). */
void sandbox_sweep(struct gateway *gw);
