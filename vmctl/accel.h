/* Accelerator choice (PLATFORM.md §1): KVM only where /dev/kvm opens, a VM
 * can be created, and the host is not a PVM host (whose KVM hangs stock
 * guest kernels); TCG otherwise, with the reason. An explicit request
 * (--accel, or PORTHOLE_ACCEL=kvm|tcg) wins over detection. */
#pragma once

#include <stdbool.h>

enum vm_accel {
    VM_ACCEL_AUTO = 0,
    VM_ACCEL_KVM,
    VM_ACCEL_TCG,
};

/* What the host looks like; filled by accel_probe(), or by hand in tests. */
struct accel_probe {
    bool kvm_present;   /* /dev/kvm exists */
    bool kvm_opens;     /* open(O_RDWR) succeeded */
    bool kvm_create_vm; /* KVM_CREATE_VM succeeded */
    bool pvm_host;      /* /sys/module/kvm_pvm exists */
    int open_errno;     /* errno of a failed open, else 0 */
};

struct accel_choice {
    enum vm_accel accel; /* never AUTO */
    bool overridden;     /* chosen by the user, not detected */
    char reason[256];    /* why; for TCG also why KVM was not used */
};

const char *accel_name(enum vm_accel accel);
/* "kvm", "tcg", "auto" (or "" / NULL → auto); -EINVAL otherwise. */
int accel_parse(const char *name, enum vm_accel *out);

void accel_probe(struct accel_probe *probe);
/* Pure decision from a probe and a request; requested AUTO means detect. */
void accel_decide(const struct accel_probe *probe, enum vm_accel requested,
                  struct accel_choice *out);
/* Probe + decide; requested AUTO also consults PORTHOLE_ACCEL. Returns
 * -EINVAL when PORTHOLE_ACCEL holds an unknown value. */
int accel_choose(enum vm_accel requested, struct accel_choice *out);
