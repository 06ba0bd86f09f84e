/* instance: the lifecycle of every VM-backed object the gateway hands out
 * (command sandboxes, browser sessions), with nothing of any one kind in it.
 *
 * Usage (loop thread unless said otherwise):
 *   instances_new(&cfg, &reg);                  // once, at start
 *   instances_add_kind(reg, &my->kind);         // each kind, see below
 *   instances_observe(reg, &my->observer);      // modules that attach to instances
 *   instances_restore(reg);                     // re-attach to the VMs of an earlier run
 *
 *   struct instance_launch l = {.kind = &my->kind, .vcpus = 2, ...,
 *                               .ready = on_ready, .ready_data = req};
 *   in = instance_launch(reg, &l, &err);         // starting; boots on a worker
 *   ...  on_ready(in, 0, NULL, req)               // ready (or r < 0 and err)
 *   instance_submit(in, run, done, job);          // blocking work on in->vm
 *   instance_delete(in, on_deleted, data);        // stopping ... freed
 *   instances_sweep(reg);                         // every second: expiry, dead QEMUs
 *   instances_free(reg);                          // shutdown: VMs keep running
 *
 * States: starting -> ready -> stopping -> (freed), or starting -> error
 * (a start that failed: the VM is gone, the record is removed) and ready
 * -> error (QEMU died: kept, with the reason, until deleted or expired).
 * A kind that allows it also has ready -> stopped -> starting -> ready
 * (instance_power_off/on: the VM powers off and boots again from the disk
 * it kept; a start that fails leaves it stopped, with the reason), and
 * ready -> paused -> ready (instance_pause/resume).
 *
 * A kind is a small ops struct. It lives inside its module's own context,
 * so its ops find that context with container_of(in->kind, ...). The
 * instance holds the kind's data (in->kind_data), made by whoever launches
 * it or by kind->restore, freed by kind->free_data.
 *
 * Observers hear about every instance of every kind: the CDP proxy, the
 * live-view proxy and media attach to browser sessions this way, so the
 * lifecycle never calls them by name. For each instance, in this order:
 *   setup     loop, once it exists (created or restored), before its VM
 *             is used; may refuse (the instance fails to start)
 *   prepare   worker, once a new guest is up, before it is handed out;
 *             may refuse. When the kind refuses a pooled or cloned guest,
 *             a fresh boot replaces it and the kind's prepare runs again
 *             on that one; observers prepare only the guest kept
 *   stopping  worker (loop at shutdown), once, before the VM stops; vm
 *             is NULL when the gateway leaves it running (shutdown)
 *   ending    loop, exactly once, when the instance starts ending
 *             (delete, expiry, failed start, shutdown): stop serving it
 *   destroy   loop, exactly once, right before it is freed: drop what
 *             was attached to it
 * Kind ops run before the observers' on the way up (setup, prepare) and
 * after them on the way down (stopping), as devices are set up in order
 * and torn down in reverse.
 *
 * Every instance is freed by one path (instance_destroy: destroy
 * observers, kind->free_data, the VM handle, the record in memory), used
 * by delete, expiry, a failed start and shutdown alike. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "params.h"
#include "run.h"
#include "vm.h"
#include "work.h"

struct instance;
struct instances;
struct state_db;

enum instance_status {
    INSTANCE_STARTING = 0,
    INSTANCE_READY,
    INSTANCE_STOPPING,
    INSTANCE_ERROR,
    INSTANCE_STOPPED, /* powered off, its run dir (disk) kept: instance_power_on */
    INSTANCE_PAUSED,  /* vCPUs stopped, memory kept: instance_resume */
};
const char *instance_status_name(enum instance_status s);

struct instance_kind {
    const char *name;         /* "sandbox": the record's kind, logs */
    const char *label;        /* "sandbox", "browser session": messages */
    const char *id_prefix;    /* "sb-" */
    const char *ready_marker; /* console line that means the guest is ready */
    enum vm_kind vm_kind;     /* image flavour */
    /* Each op may be NULL. */
    int (*setup)(struct instance *in, struct ph_error *err);
    int (*prepare)(struct instance *in, struct vm *vm, struct ph_error *err);
    void (*before_stop)(struct instance *in, struct vm *vm);
    /* The API object; NULL: instance_json_base(). */
    json_t *(*to_json)(const struct instance *in);
    /* Kind fields saved with the record ("extra"), and made back into
     * kind_data at restore (NULL from restore on out-of-memory). */
    json_t *(*record)(const struct instance *in);
    void *(*restore)(const struct instance_kind *kind, json_t *extra);
    void (*free_data)(void *kind_data);
    struct instance_kind *next; /* the registry's list */
};

struct instance_observer {
    int (*setup)(struct instance_observer *o, struct instance *in, struct ph_error *err);
    int (*prepare)(struct instance_observer *o, struct instance *in, struct vm *vm,
                   struct ph_error *err);
    void (*stopping)(struct instance_observer *o, struct instance *in, struct vm *vm);
    void (*ending)(struct instance_observer *o, struct instance *in);
    void (*destroy)(struct instance_observer *o, struct instance *in);
    /* loop: adds the observer's fields to the instance's API object */
    void (*describe)(struct instance_observer *o, const struct instance *in, json_t *obj);
    struct instance_observer *next; /* the registry's list */
};

/* How instances reach their VMs: vmctl's calls, or a test's stand-ins.
 * boot and attach run on workers. */
struct instance_vm_ops {
    int (*boot)(struct instances *reg, const char *id, const struct vm_spec *spec,
                const char *marker, struct vm **out, struct ph_error *err);
    int (*attach)(struct instances *reg, const char *id, enum vm_kind kind, int ssh_port,
                  int cdp_port, struct vm **out, struct ph_error *err);
    int (*stop)(struct vm *vm, int grace_ms, struct ph_error *err);
    /* stop for a VM that boots again from its disk: the guest's writes
     * reach the disk first (NULL: stop). */
    int (*power_off)(struct vm *vm, int grace_ms, struct ph_error *err);
    /* Stop and run again the vCPUs of a ready VM (NULL: not offered). */
    int (*pause)(struct vm *vm, struct ph_error *err);
    int (*resume)(struct vm *vm, struct ph_error *err);
    /* Pause to disk: memory into the run dir, QEMU ended (NULL: not
     * offered). A boot with spec.incoming_state brings it back. */
    int (*save)(struct vm *vm, struct ph_error *err);
    /* Ends what is left of a VM nobody holds (pid file) and removes its run dir. */
    void (*discard)(struct instances *reg, const char *id);
    bool (*alive)(const struct vm *vm);
    /* Trims the guest's console log to at most max_bytes (NULL: none). */
    int (*console_cap)(const struct vm *vm, int64_t max_bytes);
    void (*free)(struct vm *vm);
};
extern const struct instance_vm_ops instance_vmctl_ops;

struct instances_config {
    const char *state_dir;       /* weak: run dirs */
    const char *cache_dir;       /* weak: images */
    struct state_db *db;         /* weak: records */
    struct work_pool *work;      /* weak */
    struct work_pool *exec_work; /* weak: user commands (NULL: work) */
    struct run_hooks *hooks;     /* weak: the gateway's global callbacks */
    enum vm_accel accel;
    int max_instances; /* sandboxes and sessions together */
    int boot_timeout_s;
    const struct instance_vm_ops *vm_ops; /* NULL: instance_vmctl_ops */
    /* What QEMU runs per guest connection to the egress address, with the
     * VM's egress socket as its last argument: a quoted executable and its
     * leading arguments ("'/usr/bin/porthole' egress-relay"); NULL: guests
     * get no network at all. */
    const char *egress_relay;
    /* Give browser VMs a TCP forward to DevTools as well ("cdp_host_forward"
     * in the config): only for benchmarks, every local user can reach it. */
    bool cdp_host_forward;
    /* New VMs are clones of their spec's template where one is built
     * (vm_template.h); templates.c builds them. */
    bool templates;
    /* A guest's console log is kept at most this long (0: no limit). */
    int64_t console_log_max_bytes;
};

struct instance {
    char id[40];
    char vm_id[40];                   /* the VM's own id (!= id when a pre-booted VM serves it) */
    char image[32];                   /* a custom image's name, "" for the kind's flavour */
    char from_snapshot[40];           /* the snapshot it started from, "" if none */
    const struct instance_kind *kind; /* weak */
    void *kind_data;                  /* owned through kind->free_data */
    struct instances *reg;            /* weak */
    enum instance_status status;
    char error[512];    /* the reason when status is error */
    int64_t created_at; /* wall ms */
    int64_t ready_at;   /* wall ms, 0 until ready */
    int64_t expires_at; /* wall ms; counted from ready_at once ready */
    int64_t start_ms;   /* monotonic: launched */
    int64_t ready_ms;   /* monotonic: ready, 0 before */
    int vcpus, mem_mib, disk_mib, timeout_minutes;
    json_t *env_vars;        /* owned: object NAME -> value */
    enum net_mode net_mode;  /* the egress policy */
    json_t *allowed_domains; /* owned: NET_ALLOWLIST's patterns, else NULL */
    struct vm *vm;           /* owned; NULL until ready and once stopping */
    struct run_hooks *hooks; /* owned: this instance's own callbacks */
    int jobs;                /* worker jobs using vm right now */
    bool deleting;           /* ending has begun */
    bool paused_to_disk;     /* paused with its memory in the run dir, no QEMU */
    bool stop_queued;        /* the stop job is submitted */
    /* The VM it was handed (pooled or cloned) did not take its settings,
     * and a fresh boot serves it instead. */
    bool booted_afresh;
    struct instance_waiter *waiters; /* owned: told when deleted */
    struct instance *next;           /* the registry's list */
};

int instances_new(const struct instances_config *cfg, struct instances **out);
/* Shutdown, in two steps. instances_shutdown, while the HTTP server still
 * runs: every instance ends (observers hear ending, then stopping with a
 * NULL vm unless a stop job is under way). instances_free, once no worker
 * job runs any more (the work pool is drained): every instance is
 * destroyed and freed (observers that missed ending or stopping hear them
 * first). VMs keep running and records stay, for the next gateway to
 * re-attach to. NULL is a no-op. */
void instances_shutdown(struct instances *reg);
void instances_free(struct instances *reg);
void instances_add_kind(struct instances *reg, struct instance_kind *kind);
void instances_observe(struct instances *reg, struct instance_observer *o);
const char *instances_state_dir(const struct instances *reg);
const char *instances_cache_dir(const struct instances *reg);
struct state_db *instances_db(const struct instances *reg);
struct run_hooks *instances_hooks(const struct instances *reg);
enum vm_accel instances_accel(const struct instances *reg);
struct work_pool *instances_work(const struct instances *reg);
int instances_boot_timeout_s(const struct instances *reg);
/* The egress socket of a VM (the gateway listens, the guest's relay
 * connects) and the guestfwd command that reaches it; malloc'd, NULL when
 * guests get no network (or out of memory). */
char *instances_egress_socket(const struct instances *reg, const char *vm_id);
bool instances_egress_enabled(const struct instances *reg);
char *instances_egress_cmd(const struct instances *reg, const char *vm_id);
/* Worker thread: boots a VM with the configured ops (one retry when the
 * guest does not come up); on failure nothing of it is left. */
int instances_boot_vm(struct instances *reg, const char *id, const struct vm_spec *spec,
                      const char *marker, struct vm **out, struct ph_error *err);

/* Called once the instance is ready (r == 0) or failed to start (r < 0,
 * err says why; the instance is being deleted then). Loop thread. */
typedef void (*instance_ready_fn)(struct instance *in, int r, const struct ph_error *err,
                                  void *data);

struct instance_launch {
    struct instance_kind *kind;
    const char *id;    /* NULL: a random one with the kind's prefix */
    const char *image; /* NULL or "": the kind's flavour; else a custom image's name */
    int vcpus, mem_mib, disk_mib, timeout_minutes;
    json_t *env_vars; /* borrowed */
    enum net_mode net_mode;
    json_t *allowed_domains; /* borrowed */
    void *kind_data;         /* stolen (freed by kind->free_data on failure too) */
    char *extra_config;      /* stolen: more lines for the guest init */
    int screen_width, screen_height;
    struct vm *pooled; /* stolen: a pre-booted VM to use instead of booting */
    /* Start from this snapshot (vm_snapshot's dir, weak) instead of a boot;
     * from_snapshot is its id, as the instance shows it. */
    const char *from_dir, *from_snapshot;
    const char *template_variant; /* static: see vm_spec */
    instance_ready_fn ready;
    void *ready_data;
};

/* Creates an instance and boots it (or prepares the pooled VM) on a
 * worker. NULL with err filled (limit reached, busy, setup refused). */
struct instance *instance_launch(struct instances *reg, struct instance_launch *l,
                                 struct ph_error *err);

typedef void (*instance_deleted_fn)(void *data, const char *id);
/* Starts ending in (idempotent); done (may be NULL) is called once it is
 * gone. Worker jobs still running end with it: QEMU is killed. */
int instance_delete(struct instance *in, instance_deleted_fn done, void *data);

/* Powers a ready instance off, keeping its run dir (disk, keys, exposed
 * ports); done is called once QEMU is gone (r < 0: it did not go cleanly,
 * it is stopped all the same). PH_ERR_CONFLICT unless ready with no job
 * running; a stopped one is done at once. */
int instance_power_off(struct instance *in, instance_ready_fn done, void *data,
                       struct ph_error *err);
/* Boots a stopped instance again from its disk; done as for a launch (r < 0:
 * it stays stopped, in->error says why). A ready one is done at once. */
int instance_power_on(struct instance *in, instance_ready_fn done, void *data,
                      struct ph_error *err);

/* Deletes expired instances and notices dead QEMU processes. */
/* ready -> paused -> ready: the VM's vCPUs stop (no CPU used, memory and
 * the timeout kept; commands refused) and run again, across a gateway
 * restart too. Refused while commands or terminals hold it. done as for
 * power_off/on. */
int instance_pause(struct instance *in, instance_ready_fn done, void *data, struct ph_error *err);
int instance_resume(struct instance *in, instance_ready_fn done, void *data, struct ph_error *err);
/* The same with the memory written to the run dir and QEMU ended: it holds
 * no RAM; resume boots a QEMU that loads it. */
int instance_pause_to_disk(struct instance *in, instance_ready_fn done, void *data,
                           struct ph_error *err);
void instances_sweep(struct instances *reg);
/* Re-attaches to the VMs of every registered kind's records, then ends
 * whatever runs from a run dir no record names. Call after the pool's own
 * restore (pool_restore), before anything boots. */
void instances_restore(struct instances *reg);

/* NULL when unknown. Deleting ones are found too (check in->deleting). */
struct instance *instance_find(struct instances *reg, const struct instance_kind *kind,
                               const char *id);
struct instance *instances_first(struct instances *reg);
int instances_count(const struct instances *reg);
/* The API objects of one kind, newest first (a new array). */
/* The id of an instance that starts from snapshot snap_id or whose disk is
 * an overlay on the one in dir, or NULL. Reads each run dir's "template". */
const char *instances_using(struct instances *reg, const char *snap_id, const char *dir);
json_t *instances_list_json(struct instances *reg, const struct instance_kind *kind);
json_t *instance_to_json(const struct instance *in);
/* The image the instance boots: its custom one, else its kind's flavour. */
const char *instance_image(const struct instance *in);
/* An API timestamp ("2026-01-02T03:04:05Z"), null for 0. */
json_t *instance_time_json(int64_t wall_ms);
/* How its VM came to be: "snapshot", "template" (a clone) or "cold_boot". */
const char *instance_served_from(const struct instance *in);
/* The fields every kind shares, as the sandbox API shows them. */
json_t *instance_json_base(const struct instance *in);
/* Copies record field key (a string) into dst, or dflt when absent. */
void instance_record_str(char *dst, size_t len, json_t *obj, const char *key, const char *dflt);
/* Persists the record (loop thread). */
void instance_save(struct instance *in);

/* Worker jobs that use in->vm hold it; deletion waits for the release. */
void instance_hold(struct instance *in);
void instance_release(struct instance *in);
/* Holds in and queues run/done; -EAGAIN (queue full) releases it again. */
int instance_submit(struct instance *in, work_fn run, work_fn done, void *data);
/* The same on the pool for user commands (exec_work): an hour-long command
 * holds none of the threads that boots, stops and files need. */
int instance_submit_exec(struct instance *in, work_fn run, work_fn done, void *data);

/* ---- for API handlers ---- */

/* The instance of kind with id, or NULL with err: PH_ERR_NOT_FOUND, or
 * PH_ERR_CONFLICT when need_ready and it is not. */
struct instance *instance_lookup(struct instances *reg, const struct instance_kind *kind,
                                 const char *id, bool need_ready, struct ph_error *err);

struct http_req;
/* The instance of kind named by req->params[0]; replies 404 (unknown) or
 * 409 (not ready, when need_ready) itself and returns NULL then. */
struct instance *instance_for_req(struct instances *reg, const struct instance_kind *kind,
                                  struct http_req *req, bool need_ready);
/* instance_submit that replies 429 when the queue is full (the caller
 * then frees its job). */
int instance_submit_req(struct instance *in, struct http_req *req, work_fn run, work_fn done,
                        void *data);
int instance_submit_exec_req(struct instance *in, struct http_req *req, work_fn run, work_fn done,
                             void *data);
enum instance_power_op {
    INSTANCE_POWER_STOP,
    INSTANCE_POWER_START,
    INSTANCE_POWER_PAUSE,
    INSTANCE_POWER_RESUME,
};
/* POST .../stop, .../start, .../pause ({"to_disk": bool} allowed) and
 * .../resume of any kind: the body checked, the op started, the request
 * answered with the instance once it is done. */
void instance_power_req(struct instance *in, struct http_req *req, enum instance_power_op op);

/* An instance_ready_fn for a request that waits for the start: 201 with
 * the object, or the error. data is the struct http_req. */
void instance_reply_ready(struct instance *in, int r, const struct ph_error *err, void *data);
/* The same with 200, for a stop or a start. */
void instance_reply_power(struct instance *in, int r, const struct ph_error *err, void *data);
/* An instance_deleted_fn: 200 {"id", "status": "deleted"}. */
void instance_reply_deleted(void *data, const char *id);
