/* One microVM: its run dir, QEMU process, keys, forwards and SSH session.
 *
 * Lifecycle:
 *   vm_new(&spec, ...)     run dir, per-VM keys, qcow2 overlay, config blob
 *   vm_start(vm)           QEMU daemonized; returns once QMP is up
 *   vm_wait_ready(vm)      waits for the guest init's ready marker on the
 *                          serial socket, then connects SSH (host key pinned)
 *   ... vm_exec / vm_put_file / vm_get_file through vm->ssh ...
 *   vm_stop(vm)            QMP quit, SIGKILL after a grace period, waits for
 *                          the process to be gone
 *   vm_free(vm)            memory only; vm_remove_run_dir() deletes files
 *
 * A restarted gateway calls vm_attach() with the id and ports it stored:
 * the run dir's pid file, the process's identity and the QMP socket are
 * checked before the VM is trusted again.
 *
 * Run dir layout (DIR = STATE/vms/ID): qmp.sock, serial.sock, serial.log,
 * qemu.pid, disk.qcow2, client_key(.pub), host_key(.pub), config.
 *
 * All calls block (seconds to minutes): call them from worker threads. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "accel.h"
#include "error.h"
#include "qemu.h"
#include "run.h"

enum vm_kind {
    VM_KIND_SANDBOX = 0, /* image flavour "base" */
    VM_KIND_BROWSER,     /* image flavour "browser" */
};
const char *vm_kind_flavour(enum vm_kind kind);

/* Guest ports the gateway may forward to (besides SSH). */
#define VM_GUEST_PORT_SSH 22
#define VM_GUEST_PORT_CDP 9223 /* guest init's relay to Chromium's 127.0.0.1:9222 */
/* Chromium's DevTools on the guest's loopback, reached through the VM's SSH
 * session (vm.devtools_socket). */
#define VM_GUEST_PORT_DEVTOOLS 9222

/* The most the guest init reads as one config (its CONFIG_MAX in
 * guest-image/init/guest_config.h): a longer one is refused here, never cut. */
#define VM_CONFIG_MAX (64 * 1024)

/* What guests use as their HTTP proxy: QEMU's guestfwd to the egress relay. */
#define VM_EGRESS_PROXY QEMU_EGRESS_HOSTPORT

struct vm_env_var {
    const char *name;  /* weak */
    const char *value; /* weak */
};

struct vm_spec {
    enum vm_kind kind;
    int vcpus;
    int mem_mib;
    int disk_mib;                 /* 0: the image's own size */
    const struct vm_env_var *env; /* weak */
    size_t n_env;
    const char *extra_config; /* weak: more "key=value\n" lines for the guest init */
    enum vm_accel accel;      /* KVM or TCG (already chosen) */
    const char *image_dir;    /* weak: holds vmlinuz, initrd.img, rootfs.img */
    /* Browser VMs: the screen's size at boot (0: VM_SCREEN_WIDTH x
     * VM_SCREEN_HEIGHT); the guest can change it later. */
    int screen_width, screen_height;
    /* The shell command QEMU runs for each guest connection to the egress
     * address (weak; see qemu_opts.guestfwd_cmd). NULL: no network. */
    const char *egress_cmd;
    /* Browser VMs: also forward a 127.0.0.1 TCP port to the guest's CDP
     * relay (vm.cdp_port), which every local user can reach. For
     * benchmarks that compare against a path without the gateway only. */
    bool cdp_host_forward;
    /* Boot again from the run dir a stopped VM left (its disk, keys and
     * exposed ports are kept; the config is written anew). */
    bool reuse_run_dir;
    /* With reuse_run_dir: QEMU waits for the memory vm_save_state wrote
     * (-incoming defer); vm_restore_state loads it. */
    bool incoming_state;
    /* Boot from the image even when a template is ready (the gateway's
     * choice: a clone that did not take its settings). */
    bool cold;
    /* Boot a template (see vm_template.h): the guest's RAM is the file
     * run_dir/memory.ram mapped shared, so that vm_save_template writes
     * only the device state. */
    bool template_build;
    /* A clone of the template in this dir (weak; vm_template_find): the
     * disk is an overlay on the template's, the RAM a private mapping of
     * its memory file, and QEMU waits for its device state;
     * vm_restore_clone brings it up. */
    const char *template_dir;
    /* Names the template among those of one image and size ("live",
     * "headless"; weak, NULL: none): a browser's differ by how Chromium
     * runs. */
    const char *template_variant;
};

#define VM_SCREEN_WIDTH 1280
#define VM_SCREEN_HEIGHT 720

/* A guest TCP port made reachable on the host (a sandbox's exposed port):
 * connections to host_addr:host_port are carried over the VM's SSH to the
 * guest's 127.0.0.1:guest_port, so a service bound to the guest's loopback
 * answers as well as one bound to every address. */
#define VM_PORTS_MAX 16
struct vm_port {
    int guest_port;
    int host_port;
    char host_addr[48];  /* an IP literal */
    bool guest_loopback; /* as asked; the forward is the same either way */
    /* Why the forward does not listen (a host port taken while the gateway
     * was down), else empty. */
    char error[160];
};

struct vm {
    char id[40];
    enum vm_kind kind;
    char *run_dir; /* owned */
    pid_t pid;     /* QEMU daemon, 0 if not started */
    int pidfd;     /* owned, -1 if unused */
    int ssh_port;  /* host side of the forward to guest :22 */
    /* Size of serial.log when this QEMU started: its console output, and
     * the ready marker vm_wait_ready looks for, come after it. */
    size_t console_boot_offset;
    /* Browser VMs: QEMU's VNC server for the VM's screen, on a Unix socket
     * in the run dir (NULL for sandboxes; owned). The guest draws into a
     * virtio-gpu device and never encodes a frame itself. */
    char *vnc_socket;
    /* Browser VMs: Chromium's DevTools, as a Unix socket in the run dir
     * that the tunnel carries over SSH to the guest's 127.0.0.1 (owned,
     * NULL for sandboxes). Connections work once the VM is ready. */
    char *devtools_socket;
    struct vm_tunnel *devtools; /* owned, NULL until ready */
    int cdp_port;               /* spec.cdp_host_forward's port, -1 if unused */
    enum vm_accel accel;
    struct vm_ssh *ssh; /* owned, NULL until ready */
    /* Exposed ports, in the order they were opened, saved in the run dir's
     * "ports" so that vm_attach opens them again. Under ports_lock. */
    pthread_mutex_t ports_lock;
    struct vm_port ports[VM_PORTS_MAX];
    struct vm_tunnel *port_tunnels[VM_PORTS_MAX]; /* owned; NULL where error is set */
    size_t n_ports;
    /* Its vCPUs are stopped (vm_pause, or found so by vm_attach); a VM
     * attached while paused connects its SSH session at vm_resume. */
    bool paused;
    bool attach_pending;
    /* Restored from a template (vm_restore_clone) rather than booted: its
     * guest runs with the template's settings until told others. */
    bool cloned;
    /* Its guest carries on from a pause to disk (vm_restore_state): what
     * ran in it before runs on, nothing needs setting up again. */
    bool resumed;
    /* Pre-booted by the gateway's pool, with the pool's settings. */
    bool pooled;
    char *template_dir; /* owned: the template a clone came from, or NULL */
    /* Browser VMs: the screen QEMU was started with (0 when attached). */
    int screen_width, screen_height;
};

/* An id a run dir may have: [a-z0-9_-], 1 to 39 characters. */
bool vm_id_valid(const char *id);

/* Creates the run dir under state_dir/vms/ and everything the VM needs
 * before boot. id must be unique ([a-z0-9-], <= 39 chars). With
 * spec.reuse_run_dir the run dir must exist, with its disk: only the config
 * is written. */
int vm_new(const char *state_dir, const char *id, const struct vm_spec *spec, struct vm **out,
           struct ph_error *err);
void vm_free(struct vm *vm);

int vm_start(struct vm *vm, const struct vm_spec *spec, struct ph_error *err);
/* Waits up to timeout_ms for marker ("PORTHOLE_READY ssh") on the serial
 * console, then connects SSH. Fails early if QEMU exits. */
int vm_wait_ready(struct vm *vm, const char *marker, int timeout_ms, struct ph_error *err);

/* Re-attach to a VM that may still be running after a gateway restart;
 * one found paused comes back with vm->paused (nothing reaches its guest
 * until vm_resume). */
int vm_attach(const char *state_dir, const char *id, enum vm_kind kind, int ssh_port, int cdp_port,
              struct vm **out, struct ph_error *err);

/* Stops the guest's vCPUs (QMP stop): it uses no CPU, keeps its memory,
 * and answers nothing until vm_resume. */
int vm_pause(struct vm *vm, struct ph_error *err);
/* Runs them again (QMP cont), connects what a paused attach left out, and
 * steps the guest's clock over the pause. */
int vm_resume(struct vm *vm, struct ph_error *err);

/* Pause to disk: stops the vCPUs, writes the guest's memory and device
 * state to the run dir ("memory.state") and ends QEMU; the disk stays. */
int vm_save_state(struct vm *vm, struct ph_error *err);
/* After vm_start with spec.incoming_state: loads that state, runs the
 * vCPUs, connects SSH and steps the guest clock; the file goes once the
 * guest runs. */
int vm_restore_state(struct vm *vm, int timeout_ms, struct ph_error *err);

/* Templates (vm_template.h). vm_save_template: after vm_wait_ready of a
 * spec.template_build VM, stops it and writes its device state (not its
 * RAM, which its memory file holds) to run_dir/device.state, then ends
 * QEMU. vm_restore_clone: after vm_start of a spec.template_dir VM, loads
 * that state, runs the vCPUs, connects SSH with the template's client key
 * and gives the guest an identity of its own (host name, machine id, RNG
 * seed, clock, and this VM's client key as the only one sshd takes) and
 * its config's env vars. */
int vm_save_template(struct vm *vm, struct ph_error *err);
/* A snapshot of a running VM into dir (created): its memory and device
 * state (memory.state), a copy of its disk and its keys and config; the
 * guest stands still meanwhile and runs on after. A VM with
 * spec.template_dir = dir is then a clone of that instant (with an
 * identity of its own, as a template's clones). */
int vm_snapshot(struct vm *vm, const char *dir, struct ph_error *err);
int vm_restore_clone(struct vm *vm, int timeout_ms, struct ph_error *err);

/* True while the QEMU process exists (checks the pidfd without blocking). */
bool vm_alive(const struct vm *vm);
/* Keeps the console log (serial.log, which the guest writes) at most
 * max_bytes long: past that, its oldest part goes, leaving half of
 * max_bytes. QEMU appends to it meanwhile. 1 when it cut, 0 when the log
 * was short enough, else -errno. */
int vm_console_cap(const struct vm *vm, int64_t max_bytes);
int vm_stop(struct vm *vm, int grace_ms, struct ph_error *err);
int vm_remove_run_dir(const char *state_dir, const char *id);
/* Ends the QEMU of a run dir that nobody holds a struct vm for (a VM whose
 * re-attach failed): only if its pid file names a live QEMU of that run
 * dir. 0 when nothing of it runs any more. */
int vm_kill_orphan(const char *state_dir, const char *id);

/* The transport for run_command(). */
struct run_transport vm_transport(struct vm *vm);

/* Writes /etc/profile.d/porthole-env.sh in the guest (login shells see it). */
int vm_set_env(struct vm *vm, const struct vm_env_var *env, size_t n_env, struct ph_error *err);

/* Runs cmd as root in the guest, for the gateway's own needs (not a user
 * command: it does not pass the policy chain, but it is bounded the same
 * way), with in on its stdin. A non-zero exit is an error naming its
 * stderr. res is filled on success (run_result_done it). */
int vm_guest_run(struct vm *vm, const char *cmd, const void *in, size_t in_len, int timeout_s,
                 struct run_result *res, struct ph_error *err);

/* Exposes want->guest_port on want->host_addr:want->host_port (0: a free
 * port); *got is the forward as opened. The VM must be ready. A guest port
 * already exposed or a taken host port is PH_ERR_CONFLICT, more than
 * VM_PORTS_MAX is PH_ERR_LIMIT. Any thread. */
int vm_port_open(struct vm *vm, const struct vm_port *want, struct vm_port *got,
                 struct ph_error *err);
/* Closes the forward of guest_port (PH_ERR_NOT_FOUND when there is none):
 * its connections end. May wait for the tunnel's thread (seconds at most):
 * a worker's call. */
int vm_port_close(struct vm *vm, int guest_port, struct ph_error *err);
/* A copy of the forwards (at most max), for listing. Any thread; never waits
 * on the network. */
size_t vm_ports(struct vm *vm, struct vm_port *out, size_t max);
/* vm_stop and vm_free close every forward; vm_attach opens the saved ones. */
void vm_ports_close_all(struct vm *vm);
void vm_ports_reopen(struct vm *vm);

/* Image of a flavour under cache_dir: CACHE/images/FLAVOUR. malloc'd. */
char *vm_image_dir(const char *cache_dir, const char *flavour);
bool vm_image_present(const char *image_dir);
