/* Accelerator selection (PLATFORM.md §1) from synthetic host probes. */
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
    CHECK(strstr(tcg, "tsc_early_khz=2000000") && strstr(tcg, "tsc=reliable"));
    CHECK(!strstr(kvm, "tsc_early_khz"));
    free(tcg);
    free(kvm);
    CHECK_DONE();
}
