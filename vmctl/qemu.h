/* The QEMU microvm command line, in one place. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "accel.h"

#define QEMU_MAX_FWCFG 8
#define QEMU_MAX_FORWARDS 8
/* The one address a guest can reach on its user-mode network: each TCP
 * connection to it runs qemu_opts.guestfwd_cmd (the egress relay). */
#define QEMU_EGRESS_ADDR "10.0.2.100"
#define QEMU_EGRESS_PORT 3128
#define QEMU_STR_(x) #x
#define QEMU_STR(x) QEMU_STR_(x)
/* "ADDR:PORT", as guests name it in their proxy settings. */
#define QEMU_EGRESS_HOSTPORT QEMU_EGRESS_ADDR ":" QEMU_STR(QEMU_EGRESS_PORT)

struct qemu_fwcfg {
    const char *name; /* "opt/porthole/config" */
    const char *path; /* host file */
};

struct qemu_forward {
    int host_port; /* bound on 127.0.0.1 only */
    int guest_port;
};

struct qemu_opts {
    const char *binary;  /* NULL: qemu-system-x86_64 (or $PORTHOLE_QEMU) */
    enum vm_accel accel; /* KVM or TCG, never AUTO */
    int vcpus;
    int mem_mib;
    const char *kernel, *initrd, *cmdline_extra;
    const char *disk; /* qcow2 overlay */
    const char *qmp_socket;
    const char *serial_socket;
    const char *serial_log;
    const char *pidfile;
    const char *incoming; /* "defer" to wait for migrate-incoming, or NULL */
    /* The guest's RAM (always the memory backend "ram0", so that state
     * saved by one kind of VM loads in another): anonymous memory, or this
     * file mapped shared (a template's) or private (a clone's). */
    const char *mem_file;
    bool mem_shared;
    struct qemu_fwcfg fwcfg[QEMU_MAX_FWCFG];
    size_t n_fwcfg;
    struct qemu_forward forwards[QEMU_MAX_FORWARDS];
    size_t n_forwards;
    /* A screen (virtio-gpu with a virtio tablet and keyboard) shown by
     * QEMU's VNC server on this Unix socket; NULL: no screen. */
    const char *vnc_socket;
    /* The network is always restrict=on: the guest reaches only the
     * host forwards' guest ends and, when this is set, QEMU_EGRESS_ADDR,
     * where QEMU runs this command (split by shell quoting rules, no shell) per connection with the
     * connection on its stdin and stdout. NULL: no way out at all. */
    const char *guestfwd_cmd;
    int screen_width, screen_height; /* the screen's preferred size */
};

/* The host's TSC rate in kHz (measured once; 2000000 when it cannot be):
 * what a TCG guest's TSC runs at. */
long qemu_host_tsc_khz(void);
/* Kernel command line for an accelerator (TCG needs the timer fix). malloc'd. */
char *qemu_kernel_cmdline(enum vm_accel accel, const char *extra);
/* NULL-terminated argv, every string malloc'd; free with strv_free. */
char **qemu_build_argv(const struct qemu_opts *o);
void strv_free(char **v);
