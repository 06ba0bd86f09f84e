#include "qemu.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Used when the host's TSC rate cannot be learned. */
#define TSC_KHZ_FALLBACK 2000000L

static long tsc_khz;

static int64_t raw_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* TCG's guest TSC is the host's own (QEMU reads the host TSC for the
 * guest's rdtsc): the guest must be told the host's rate, or its clock
 * runs fast or slow by the ratio. Measured once against CLOCK_MONOTONIC_RAW
 * over 50 ms (kernel-reported rates are not exposed everywhere). */
static void measure_tsc(void)
{
    tsc_khz = TSC_KHZ_FALLBACK;
#if defined(__x86_64__) || defined(__i386__)
    long best = 0;
    for (int round = 0; round < 3; round++) {
        int64_t t0 = raw_ns();
        uint64_t c0 = __builtin_ia32_rdtsc();
        struct timespec nap = {.tv_nsec = 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
        uint64_t c1 = __builtin_ia32_rdtsc();
        int64_t t1 = raw_ns();
        if (t1 <= t0 || c1 <= c0)
            continue;
        long khz = (long)((double)(c1 - c0) * 1e6 / (double)(t1 - t0));
        /* The rounds agree to well under 0.1 % on a steady TSC; keep the
         * last one that is sane. */
        if (khz >= 200000 && khz <= 10000000)
            best = khz;
    }
    if (best)
        tsc_khz = best;
#endif
}

long qemu_host_tsc_khz(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, measure_tsc);
    return tsc_khz;
}

void strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

char *qemu_kernel_cmdline(enum vm_accel accel, const char *extra)
{
    char *out = NULL, timer[64] = "";
    /* Under TCG the kernel cannot calibrate the TSC and microvm boots then
     * hang at random; telling it the rate and trusting the TSC fixes that
     * (PLATFORM.md §2). The rate is the host's: see qemu_host_tsc_khz.
     * Under KVM the kernel calibrates itself. */
    if (accel == VM_ACCEL_TCG)
        snprintf(timer, sizeof(timer), " tsc_early_khz=%ld tsc=reliable", qemu_host_tsc_khz());
    if (asprintf(&out, "console=ttyS0 quiet panic=-1 reboot=t%s%s%s", timer, extra ? " " : "",
                 extra ? extra : "") < 0)
        return NULL;
    return out;
}

struct argv_builder {
    char **v;
    size_t n, cap;
    int failed;
};

__attribute__((format(printf, 2, 3))) static void arg(struct argv_builder *b, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;

    if (b->failed)
        return;
    if (b->n + 2 > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        char **nv = realloc(b->v, ncap * sizeof(*nv));
        if (!nv) {
            b->failed = 1;
            return;
        }
        b->v = nv;
        b->cap = ncap;
    }
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (!s) {
        b->failed = 1;
        return;
    }
    b->v[b->n++] = s;
    b->v[b->n] = NULL;
}

char **qemu_build_argv(const struct qemu_opts *o)
{
    struct argv_builder b = {0};
    const char *bin = o->binary ? o->binary : getenv("PORTHOLE_QEMU");
    char *cmdline = qemu_kernel_cmdline(o->accel, o->cmdline_extra);

    if (!cmdline)
        return NULL;
    arg(&b, "%s", bin && *bin ? bin : "qemu-system-x86_64");
    arg(&b, "-M");
    arg(&b, "microvm,memory-backend=ram0");
    arg(&b, "-object");
    if (o->mem_file) {
        if (strchr(o->mem_file, ','))
            b.failed = 1;
        arg(&b, "memory-backend-file,id=ram0,size=%dM,mem-path=%s,share=%s", o->mem_mib,
            o->mem_file, o->mem_shared ? "on" : "off");
    } else {
        arg(&b, "memory-backend-ram,id=ram0,size=%dM", o->mem_mib);
    }
    if (o->accel == VM_ACCEL_KVM) {
        arg(&b, "-accel");
        arg(&b, "kvm");
        arg(&b, "-cpu");
        arg(&b, "host");
    } else {
        arg(&b, "-accel");
        arg(&b, "tcg,thread=multi");
        arg(&b, "-cpu");
        arg(&b, "max");
    }
    arg(&b, "-smp");
    arg(&b, "%d", o->vcpus);
    arg(&b, "-m");
    arg(&b, "%d", o->mem_mib);
    /* Named threads ("CPU 0/TCG", "vnc_worker"): what QEMU spends on
     * the guest and on the host's side of its screen can be told apart. */
    arg(&b, "-name");
    arg(&b, "porthole,debug-threads=on");
    arg(&b, "-nodefaults");
    arg(&b, "-no-user-config");
    arg(&b, "-display");
    arg(&b, "none");
    arg(&b, "-no-reboot");
    arg(&b, "-kernel");
    arg(&b, "%s", o->kernel);
    arg(&b, "-initrd");
    arg(&b, "%s", o->initrd);
    arg(&b, "-append");
    arg(&b, "%s", cmdline);
    /* The serial console goes to a socket the gateway reads for the ready
     * marker, and always to a log file, whether anybody listens or not. */
    arg(&b, "-chardev");
    arg(&b, "socket,id=ser0,path=%s,server=on,wait=off,logfile=%s,logappend=on", o->serial_socket,
        o->serial_log);
    arg(&b, "-serial");
    arg(&b, "chardev:ser0");
    arg(&b, "-qmp");
    arg(&b, "unix:%s,server=on,wait=off", o->qmp_socket);
    if (o->vnc_socket) {
        /* virtio-gpu and virtio-input bind only to a modern virtio-mmio
         * transport; microvm's is legacy unless told otherwise. */
        arg(&b, "-global");
        arg(&b, "virtio-mmio.force-legacy=false");
    }
    arg(&b, "-drive");
    arg(&b, "id=root,file=%s,format=qcow2,if=none,discard=unmap", o->disk);
    arg(&b, "-device");
    arg(&b, "virtio-blk-device,drive=root");
    {
        char fwd[1024] = "";
        size_t used = 0;
        for (size_t i = 0; i < o->n_forwards; i++) {
            int w = snprintf(fwd + used, sizeof(fwd) - used, ",hostfwd=tcp:127.0.0.1:%d-:%d",
                             o->forwards[i].host_port, o->forwards[i].guest_port);
            if (w < 0 || (size_t)w >= sizeof(fwd) - used) {
                b.failed = 1;
                break;
            }
            used += (size_t)w;
        }
        /* restrict=on: nothing but the forwards and the egress relay, so
         * no guest reaches the host's loopback (QEMU's 10.0.2.2), its
         * other addresses or its networks. QEMU's option parser takes
         * ",," for a comma; a command with one is refused. */
        if (o->guestfwd_cmd && strchr(o->guestfwd_cmd, ','))
            b.failed = 1;
        arg(&b, "-netdev");
        if (o->guestfwd_cmd)
            arg(&b, "user,id=n0,restrict=on%s,guestfwd=tcp:%s:%d-cmd:%s", fwd, QEMU_EGRESS_ADDR,
                QEMU_EGRESS_PORT, o->guestfwd_cmd);
        else
            arg(&b, "user,id=n0,restrict=on%s", fwd);
    }
    arg(&b, "-device");
    arg(&b, "virtio-net-device,netdev=n0");
    if (o->vnc_socket) {
        /* The guest's X server draws into this device; QEMU's VNC server
         * encodes it on the host, in QEMU's own threads, so watching or
         * recording the screen costs the guest nothing. The tablet gives
         * absolute pointer positions, as VNC clients send them. */
        arg(&b, "-device");
        arg(&b, "virtio-gpu-device,xres=%d,yres=%d", o->screen_width, o->screen_height);
        arg(&b, "-device");
        arg(&b, "virtio-tablet-device");
        arg(&b, "-device");
        arg(&b, "virtio-keyboard-device");
        arg(&b, "-vnc");
        /* On a Unix socket in the run dir (0700): no TCP port a guest or
         * another local user could reach. force-shared: no client can ask
         * for the screen to itself and push the recorder or other viewers
         * out. */
        if (strchr(o->vnc_socket, ','))
            b.failed = 1;
        arg(&b, "unix:%s,share=force-shared", o->vnc_socket);
    }
    for (size_t i = 0; i < o->n_fwcfg; i++) {
        arg(&b, "-fw_cfg");
        arg(&b, "name=%s,file=%s", o->fwcfg[i].name, o->fwcfg[i].path);
    }
    if (o->incoming) {
        arg(&b, "-incoming");
        arg(&b, "%s", o->incoming);
    }
    arg(&b, "-pidfile");
    arg(&b, "%s", o->pidfile);
    arg(&b, "-daemonize");
    free(cmdline);
    if (b.failed) {
        strv_free(b.v);
        return NULL;
    }
    return b.v;
}
