#include "accel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

const char *accel_name(enum vm_accel accel)
{
    switch (accel) {
    case VM_ACCEL_KVM:
        return "kvm";
    case VM_ACCEL_TCG:
        return "tcg";
    default:
        return "auto";
    }
}

int accel_parse(const char *name, enum vm_accel *out)
{
    if (!name || !*name || strcmp(name, "auto") == 0)
        *out = VM_ACCEL_AUTO;
    else if (strcmp(name, "kvm") == 0)
        *out = VM_ACCEL_KVM;
    else if (strcmp(name, "tcg") == 0)
        *out = VM_ACCEL_TCG;
    else
        return -EINVAL;
    return 0;
}

void accel_probe(struct accel_probe *p)
{
    memset(p, 0, sizeof(*p));
    p->kvm_present = access("/dev/kvm", F_OK) == 0;
    /* The PVM module registers a KVM that only runs PVM-built guest kernels;
     * a stock kernel hangs at its first instruction (PLATFORM.md §1). */
    p->pvm_host = access("/sys/module/kvm_pvm", F_OK) == 0;
    if (!p->kvm_present)
        return;
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        p->open_errno = errno;
        return;
    }
    p->kvm_opens = true;
    int vmfd = ioctl(fd, KVM_CREATE_VM, 0UL);
    if (vmfd >= 0) {
        p->kvm_create_vm = true;
        close(vmfd);
    }
    close(fd);
}

void accel_decide(const struct accel_probe *p, enum vm_accel requested, struct accel_choice *out)
{
    memset(out, 0, sizeof(*out));
    if (requested != VM_ACCEL_AUTO) {
        out->accel = requested;
        out->overridden = true;
        snprintf(out->reason, sizeof(out->reason), "%s requested explicitly",
                 accel_name(requested));
        return;
    }
    out->accel = VM_ACCEL_TCG;
    if (!p->kvm_present)
        snprintf(out->reason, sizeof(out->reason), "/dev/kvm does not exist");
    else if (!p->kvm_opens)
        snprintf(out->reason, sizeof(out->reason), "/dev/kvm cannot be opened: %s",
                 strerror(p->open_errno ? p->open_errno : EACCES));
    else if (!p->kvm_create_vm)
        snprintf(out->reason, sizeof(out->reason), "KVM_CREATE_VM failed on /dev/kvm");
    else if (p->pvm_host)
        snprintf(out->reason, sizeof(out->reason),
                 "/dev/kvm is provided by kvm_pvm, which hangs stock guest kernels");
    else {
        out->accel = VM_ACCEL_KVM;
        snprintf(out->reason, sizeof(out->reason), "/dev/kvm works and is hardware KVM");
    }
}

int accel_choose(enum vm_accel requested, struct accel_choice *out)
{
    struct accel_probe probe;

    if (requested == VM_ACCEL_AUTO) {
        const char *env = getenv("PORTHOLE_ACCEL");
        if (accel_parse(env, &requested) < 0)
            return -EINVAL;
    }
    accel_probe(&probe);
    accel_decide(&probe, requested, out);
    return 0;
}
