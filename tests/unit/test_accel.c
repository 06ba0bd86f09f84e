/* Accelerator selection (PLATFORM.md §1) from synthetic host probes. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "accel.h"
#include "check.h"
#include "qemu.h"

#define qemu_cmdline_for_test(a) qemu_kernel_cmdline((a), NULL)

int main(void)
{
    struct accel_choice c;
    struct accel_probe good = {.kvm_present = true, .kvm_opens = true, .kvm_create_vm = true};
    struct accel_probe pvm = good;
    struct accel_probe none = {0};
    struct accel_probe denied = {.kvm_present = true, .open_errno = 13};
    struct accel_probe nocreate = {.kvm_present = true, .kvm_opens = true};
    enum vm_accel a;

    pvm.pvm_host = true;

    accel_decide(&good, VM_ACCEL_AUTO, &c);
    CHECK(c.accel == VM_ACCEL_KVM && !c.overridden);

    /* The trap: /dev/kvm works but is kvm_pvm. */
    accel_decide(&pvm, VM_ACCEL_AUTO, &c);
    CHECK(c.accel == VM_ACCEL_TCG && !c.overridden);
    CHECK(strstr(c.reason, "kvm_pvm") != NULL);

    accel_decide(&none, VM_ACCEL_AUTO, &c);
    CHECK(c.accel == VM_ACCEL_TCG && strstr(c.reason, "does not exist"));
    accel_decide(&denied, VM_ACCEL_AUTO, &c);
    CHECK(c.accel == VM_ACCEL_TCG && strstr(c.reason, "cannot be opened"));
    accel_decide(&nocreate, VM_ACCEL_AUTO, &c);
    CHECK(c.accel == VM_ACCEL_TCG && strstr(c.reason, "KVM_CREATE_VM"));

    /* Explicit requests win both ways. */
    accel_decide(&pvm, VM_ACCEL_KVM, &c);
    CHECK(c.accel == VM_ACCEL_KVM && c.overridden);
    accel_decide(&good, VM_ACCEL_TCG, &c);
    CHECK(c.accel == VM_ACCEL_TCG && c.overridden);

    CHECK(accel_parse("kvm", &a) == 0 && a == VM_ACCEL_KVM);
    CHECK(accel_parse("tcg", &a) == 0 && a == VM_ACCEL_TCG);
    CHECK(accel_parse(NULL, &a) == 0 && a == VM_ACCEL_AUTO);
    CHECK(accel_parse("auto", &a) == 0 && a == VM_ACCEL_AUTO);
    CHECK(accel_parse("hvf", &a) < 0);

    /* The environment override reaches accel_choose. */
    setenv("PORTHOLE_ACCEL", "tcg", 1);
    CHECK(accel_choose(VM_ACCEL_AUTO, &c) == 0 && c.accel == VM_ACCEL_TCG && c.overridden);
    setenv("PORTHOLE_ACCEL", "bogus", 1);
    CHECK(accel_choose(VM_ACCEL_AUTO, &c) < 0);
    /* An explicit flag beats the environment. */
    CHECK(accel_choose(VM_ACCEL_KVM, &c) == 0 && c.accel == VM_ACCEL_KVM);
    unsetenv("PORTHOLE_ACCEL");

    /* TCG gets the timer fix on the kernel command line, KVM does not. */
    char *tcg = qemu_cmdline_for_test(VM_ACCEL_TCG), *kvm = qemu_cmdline_for_test(VM_ACCEL_KVM);
    /* At the host's own TSC rate, which TCG guests' TSC runs at. */
    char want[64];
    long khz = qemu_host_tsc_khz();
    snprintf(want, sizeof(want), "tsc_early_khz=%ld ", khz);
    CHECK(khz >= 200000 && khz <= 10000000);
    CHECK(strstr(tcg, want) && strstr(tcg, "tsc=reliable"));
    CHECK(!strstr(kvm, "tsc_early_khz"));
    free(tcg);
    free(kvm);

    /* A VM with a screen gets virtio-gpu at its size, a tablet and a
     * keyboard, a modern virtio-mmio transport (the legacy one binds no
     * virtio-gpu) and QEMU's VNC server on a Unix socket; a sandbox gets
     * none of it. Both get a restricted network. */
    struct qemu_opts o = {.accel = VM_ACCEL_TCG,
                          .vcpus = 2,
                          .mem_mib = 2048,
                          .kernel = "/k",
                          .initrd = "/i",
                          .disk = "/d.qcow2",
                          .qmp_socket = "/q",
                          .serial_socket = "/s",
                          .serial_log = "/l",
                          .pidfile = "/p"};
    char **argv = qemu_build_argv(&o);
    CHECK(argv != NULL);
    bool restricted = false;
    for (char **p = argv; p && *p; p++) {
        CHECK(!strstr(*p, "virtio-gpu") && strcmp(*p, "-vnc") != 0 && !strstr(*p, "force-legacy"));
        /* No egress command: a network with nothing but the forwards. */
        if (strcmp(*p, "-netdev") == 0 && p[1])
            restricted = strcmp(p[1], "user,id=n0,restrict=on") == 0;
    }
    CHECK(restricted);
    strv_free(argv);
    /* A comma would end QEMU's option value early: refused. */
    o.guestfwd_cmd = "relay a,b";
    CHECK(qemu_build_argv(&o) == NULL);
    o.guestfwd_cmd = "/bin/relay /run/e.sock";
    o.vnc_socket = "/run/vm/vnc.sock";
    o.screen_width = 1024;
    o.screen_height = 768;
    argv = qemu_build_argv(&o);
    CHECK(argv != NULL);
    bool gpu = false, tablet = false, keyboard = false, vnc = false, modern = false;
    for (char **p = argv; p && *p; p++) {
        gpu |= strcmp(*p, "virtio-gpu-device,xres=1024,yres=768") == 0;
        tablet |= strcmp(*p, "virtio-tablet-device") == 0;
        keyboard |= strcmp(*p, "virtio-keyboard-device") == 0;
        modern |= strcmp(*p, "virtio-mmio.force-legacy=false") == 0;
        if (strcmp(*p, "-vnc") == 0 && p[1])
            vnc = strcmp(p[1], "unix:/run/vm/vnc.sock,share=force-shared") == 0;
        if (strcmp(*p, "-netdev") == 0 && p[1])
            restricted = strcmp(p[1], "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:3128-cmd:"
                                      "/bin/relay /run/e.sock") == 0;
        CHECK(!strstr(*p, "127.0.0.1:") || strstr(*p, "hostfwd=tcp:127.0.0.1:"));
    }
    CHECK(gpu && tablet && keyboard && vnc && modern && restricted);
    strv_free(argv);
    /* RAM is always the backend "ram0": anonymous, or a template's file
     * mapped shared (the template) or private (a clone). */
    const char *backends[] = {
        "memory-backend-ram,id=ram0,size=512M",
        "memory-backend-file,id=ram0,size=512M,mem-path=/t/memory.ram,share=on",
        "memory-backend-file,id=ram0,size=512M,mem-path=/t/memory.ram,share=off"};
    o.mem_mib = 512;
    for (int i = 0; i < 3; i++) {
        o.mem_file = i ? "/t/memory.ram" : NULL;
        o.mem_shared = i == 1;
        argv = qemu_build_argv(&o);
        CHECK(argv != NULL);
        bool machine = false, backend = false;
        for (char **p = argv; p && *p && p[1]; p++) {
            machine |= strcmp(p[0], "-M") == 0 && strcmp(p[1], "microvm,memory-backend=ram0") == 0;
            backend |= strcmp(p[0], "-object") == 0 && strcmp(p[1], backends[i]) == 0;
        }
        CHECK(machine && backend);
        strv_free(argv);
    }
    o.mem_file = "/t/a,b";
    CHECK(qemu_build_argv(&o) == NULL);
    CHECK_DONE();
}
