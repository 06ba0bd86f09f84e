/*
 * porthole-init: PID 1 of a Porthole guest.
 *
 * One static binary, two stages:
 *  - stage 1 runs from the initramfs (which carries /porthole-initramfs): it
 *    loads the virtio modules, mounts /dev/vda and switches root into it;
 *  - stage 2 runs as /sbin/porthole-init in the real root: it applies the
 *    per-VM config the host passed through fw_cfg, brings up the network,
 *    starts sshd (and for browser guests Xorg, Chromium and a CDP relay),
 *    prints readiness markers on the serial console and then reaps children
 *    until it is told to power off.
 *
 * The host learns what happens only from the serial log, so every step logs a
 * short line and readiness is a fixed marker line:
 *   "PORTHOLE_READY ssh", "PORTHOLE_READY browser",
 *   "PORTHOLE_ERROR <what>: <reason>".
 *
 * Run by root when not PID 1 (the host calls these over ssh):
 *   porthole-init browser-configure   restart Chromium with the key=value
 *                                     config on stdin (same keys as fw_cfg),
 *                                     resizing the screen; prints "ready"
 *   porthole-init browser-stop        stop Chromium so its profile is flushed
 * and two test modes:
 *   porthole-init relay LISTEN_PORT TARGET_PORT
 *   porthole-init check-config FILE
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/random.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "porthole-init: "
#define STAGE1_MARKER "/porthole-initramfs"
#define MODULE_ORDER "/lib/modules/order"
#define NEWROOT "/newroot"
#define ROOT_DEVICE "/dev/vda"
#define SELF_PATH "/sbin/porthole-init"
#define MARKER_TTY "/dev/ttyS0"

#define FWCFG_DIR "/sys/firmware/qemu_fw_cfg/by_name/opt/porthole"
#define FWCFG_CONFIG FWCFG_DIR "/config/raw"
#define FWCFG_HOST_KEY FWCFG_DIR "/host_key/raw"
#define FWCFG_AUTH_KEYS FWCFG_DIR "/authorized_keys/raw"

#define CONFIG_MAX (64 * 1024) /* the host refuses longer ones: VM_CONFIG_MAX in vmctl/vm.h */
/* The env script at its largest: a value's every quote takes 4 bytes
 * ('\''), so at most 4 times the config, and the proxy lines. */
#define ENV_SCRIPT_MAX (4 * CONFIG_MAX + 1024)
#define HOST_KEY_MAX (16 * 1024)
#define AUTH_KEYS_MAX (64 * 1024)
#define MODULE_LIST_MAX (16 * 1024)
#define ENV_MAX 128
#define ALLOW_DOMAINS_MAX 64 /* the gateway's BROWSER_MAX_DOMAINS */
/* Chromium's policy at its largest: ALLOW_DOMAINS_MAX patterns of up to
 * 255 bytes in both lists, an escaped 255-byte directory: about 35 KiB. */
#define POLICY_MAX (64 * 1024)
#define CHILDREN_MAX 16

#define HOST_KEY_PATH "/etc/ssh/ssh_host_ed25519_key"
#define ENV_SCRIPT "/etc/profile.d/porthole-env.sh"
#define POLICY_DIR "/etc/chromium/policies/managed"
#define POLICY_PATH POLICY_DIR "/porthole.json"
#define X_SOCKET "/tmp/.X11-unix/X0"
#define WM_BIN "/usr/bin/matchbox-window-manager"
#define RUN_DIR "/run/porthole"
/* Whoever starts Chromium (PID 1 at boot, browser-configure later) records
 * the browser process here, so the next stop finds it. */
#define CHROMIUM_PID_FILE RUN_DIR "/chromium.pid"
#define BROWSER_LOCK RUN_DIR "/browser.lock"
#define CHROMIUM_LIB_DIR "/usr/lib/chromium/"
#define CHROMIUM_BIN CHROMIUM_LIB_DIR "chromium"
#define CHROMIUM_LOG "/var/log/porthole-chromium.log"
#define XRANDR_BIN "/usr/bin/xrandr"
#define XORG_BIN "/usr/lib/xorg/Xorg"
#define XDOTOOL_BIN "/usr/bin/xdotool"
#define XORG_CONFIG RUN_DIR "/xorg.conf"
#define XORG_LOG "/var/log/porthole-xorg.log"
#define DRM_CARD "/dev/dri/card0"
#define X_START_MS 30000
#define TABLET_SHIFT (1.5 / 32767.0) /* see xorg_config_write */

#define SSH_PORT 22
#define CDP_PORT 9222
#define HEADLESS_TOP_CHROME_PX 87
#define RELAY_PORT 9223
#define RELAY_CONNS_MAX 64
#define RELAY_BUF (64 * 1024)

/* QEMU user-mode networking's fixed addresses. */
#define GUEST_ADDR "10.0.2.15"
#define GUEST_NETMASK "255.255.255.0"
#define GATEWAY_ADDR "10.0.2.2"
#define DNS_ADDR "10.0.2.3"

#define SYSTEM_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ------------------------------------------------------------------------ */
/* Logging and markers                                                      */

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void logmsg(const char *fmt, ...)
{
    char line[512];
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    int n = snprintf(line, sizeof(line), LOG_PREFIX "[%ld.%02ld] ", (long)ts.tv_sec,
                     ts.tv_nsec / 10000000L);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write per line, so lines from children never split ours. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The host scans the serial log for these lines; they go to the UART itself
 * rather than /dev/console so a changed console= cannot hide them. */
static void emit_marker(const char *line)
{
    int fd = open(MARKER_TTY, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        logmsg("cannot open a console for the marker: %s", strerror(errno));
        return;
    }
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "%s\n", line);
    if (n > 0)
        write_all(fd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
    close(fd);
    logmsg("marker: %s", line);
}

/* The kernel starts PID 1 with no fds at all when /dev/console is missing. */
static void console_setup(void)
{
    if (fcntl(STDERR_FILENO, F_GETFD) >= 0)
        return;
    int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return;
    for (int i = 0; i < 3; i++)
        dup2(fd, i);
    if (fd > 2)
        close(fd);
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* Small file helpers                                                       */

static bool path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Reads fd to EOF, at most max bytes; more is an error, never silently cut.
 * Returns the length, or -errno. buf gets a terminating NUL. */
static ssize_t read_fd_all(int fd, char *buf, size_t max)
{
    size_t len = 0;
    for (;;) {
        if (len == max) {
            char extra;
            ssize_t r = read(fd, &extra, 1);
            if (r < 0 && errno == EINTR)
                continue;
            if (r != 0)
                return -EFBIG;
            break;
        }
        ssize_t r = read(fd, buf + len, max - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

static ssize_t read_file(const char *path, char *buf, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read_fd_all(fd, buf, max);
    close(fd);
    return n;
}

/* Writes through a temp file and rename, so a reader (sshd, a login shell)
 * sees the old file or the new one, never half of it. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, data, len);
    if (r == 0 && fchmod(fd, mode) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

static int write_string(const char *path, const char *s, mode_t mode)
{
    return write_file(path, s, strlen(s), mode);
}

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Mounts                                                                   */

static void mount_fs(const char *source, const char *target, const char *type, unsigned long flags,
                     const char *data)
{
    mkdir(target, 0755);
    if (mount(source, target, type, flags, data) < 0 && errno != EBUSY)
        logmsg("mount %s on %s: %s", type, target, strerror(errno));
}

/* Stage 1 moves its /proc, /sys and /dev into the new root, and a guest may
 * also boot stage 2 directly; mount only what is not there yet. */
static void mount_unless(const char *source, const char *target, const char *type,
                         unsigned long flags, const char *data, long magic)
{
    struct statfs sf;
    if (statfs(target, &sf) == 0 && (long)sf.f_type == magic) {
        struct stat here, parent;
        char up[PATH_MAX];
        snprintf(up, sizeof(up), "%s/..", target);
        /* Same fs type as the parent means "not a mount point" (e.g. a tmpfs
         * /tmp under a tmpfs root would otherwise be skipped wrongly). */
        if (stat(target, &here) == 0 && stat(up, &parent) == 0 && here.st_dev != parent.st_dev)
            return;
    }
    mount_fs(source, target, type, flags, data);
}

/* ------------------------------------------------------------------------ */
/* Children                                                                 */

struct child {
    pid_t pid; /* 0 if the slot is free */
    char name[24];
    bool exited;
    int status;
};

static struct child children[CHILDREN_MAX];
static sigset_t handled_signals;

static void noop_handler(int sig)
{
    (void)sig;
}

/* Signals stay blocked and are taken with sigtimedwait(), so PID 1 never
 * runs code from a handler. The handlers exist because the kernel drops
 * signals to init whose disposition is SIG_DFL. */
static void signals_setup(void)
{
    sigemptyset(&handled_signals);
    const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGPWR, SIGHUP, SIGUSR1, SIGUSR2};
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = noop_handler;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaddset(&handled_signals, sigs[i]);
        sigaction(sigs[i], &sa, NULL);
    }
    sigprocmask(SIG_BLOCK, &handled_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void child_reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static struct child *child_track(pid_t pid, const char *name)
{
    for (size_t i = 0; i < CHILDREN_MAX; i++) {
        struct child *c = &children[i];
        if (c->pid != 0 && !c->exited)
            continue;
        memset(c, 0, sizeof(*c));
        c->pid = pid;
        snprintf(c->name, sizeof(c->name), "%s", name);
        return c;
    }
    return NULL;
}

static void describe_status(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "signal %d", WTERMSIG(status));
    else
        snprintf(buf, size, "status 0x%x", (unsigned)status);
}

static void reap_children(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (size_t i = 0; i < CHILDREN_MAX; i++) {
            struct child *c = &children[i];
            if (c->pid != pid || c->exited)
                continue;
            c->exited = true;
            c->status = status;
            char why[32];
            describe_status(status, why, sizeof(why));
            logmsg("%s (pid %d) exited: %s", c->name, (int)pid, why);
        }
    }
}

struct spawn_opts {
    const char *log_path; /* stdout+stderr appended here; NULL = console */
    char *const *envp;    /* NULL = the default environment */
    /* The child must outlive its caller (browser-configure run over ssh):
     * no fd of the caller may stay open in it, or the ssh channel would
     * never see EOF. */
    bool detach;
};

static char *default_env[] = {"PATH=" SYSTEM_PATH, "HOME=/root", "LANG=C.UTF-8", "TERM=linux",
                              NULL};

static struct child *spawn(const char *name, char *const argv[], const struct spawn_opts *opts)
{
    pid_t pid = fork();
    if (pid < 0) {
        logmsg("fork for %s: %s", name, strerror(errno));
        return NULL;
    }
    if (pid == 0) {
        child_reset_signals();
        setsid();
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (in >= 0)
            dup2(in, STDIN_FILENO);
        int out = -1;
        if (opts && opts->log_path)
            out = open(opts->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (out < 0 && opts && opts->detach)
            out = in;
        if (out >= 0) {
            dup2(out, STDOUT_FILENO);
            dup2(out, STDERR_FILENO);
        }
        if (opts && opts->detach)
            close_range(3, ~0U, 0);
        execve(argv[0], argv, opts && opts->envp ? opts->envp : default_env);
        logmsg("exec %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    struct child *c = child_track(pid, name);
    if (!c)
        logmsg("child table full; %s (pid %d) untracked", name, (int)pid);
    return c;
}

static _Noreturn void shutdown_system(const char *why);

/* Waits up to timeout_ms for one handled signal and acts on it: reaps on
 * SIGCHLD, shuts down on the power signals. */
static void service_signals(int timeout_ms)
{
    struct timespec ts = {.tv_sec = timeout_ms / 1000,
                          .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
    siginfo_t info;
    int sig = sigtimedwait(&handled_signals, &info, &ts);
    if (sig == SIGTERM)
        shutdown_system("SIGTERM");
    if (sig == SIGINT)
        shutdown_system("SIGINT (ctrl-alt-del)");
    if (sig == SIGPWR)
        shutdown_system("SIGPWR");
    reap_children();
}

typedef bool (*wait_cond)(const void *arg);

/* Polls cond every step_ms while still doing PID 1's work; a child that
 * the caller depends on dying ends the wait early. */
static bool wait_for(wait_cond cond, const void *arg, int timeout_ms, int step_ms,
                     const struct child *needed)
{
    double deadline = monotonic_s() + timeout_ms / 1000.0;
    for (;;) {
        if (cond(arg))
            return true;
        if (needed && needed->exited)
            return false;
        if (monotonic_s() >= deadline)
            return false;
        service_signals(step_ms);
    }
}

static bool cond_path_exists(const void *arg)
{
    return path_exists(arg);
}

/* True when some socket is in LISTEN on the port; reading /proc/net/tcp
 * avoids the stray connections a connect() probe would leave in logs. */
static bool tcp_listening(uint16_t port)
{
    const char *tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (size_t t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "re");
        if (!f)
            continue;
        char line[512];
        bool found = false;
        while (!found && fgets(line, sizeof(line), f)) {
            char *colon = strchr(line, ':');
            if (!colon)
                continue;
            /* "sl: LOCAL_ADDR:PORT REMOTE_ADDR:PORT ST ..." */
            char local[64], remote[64];
            unsigned st;
            if (sscanf(colon + 1, " %63s %63s %x", local, remote, &st) != 3)
                continue;
            char *p = strrchr(local, ':');
            if (p && strtoul(p + 1, NULL, 16) == port && st == 0x0A)
                found = true;
        }
        fclose(f);
        if (found)
            return true;
    }
    return false;
}

static bool cond_port_listening(const void *arg)
{
    return tcp_listening(*(const uint16_t *)arg);
}

/* ------------------------------------------------------------------------ */
/* Shutdown                                                                 */

static bool reap_all_for(int timeout_ms)
{
    double deadline = monotonic_s() + timeout_ms / 1000.0;
    for (;;) {
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
            ;
        if (pid < 0 && errno == ECHILD)
            return true;
        if (monotonic_s() >= deadline)
            return false;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
        siginfo_t info;
        sigtimedwait(&handled_signals, &info, &ts);
    }
}

static _Noreturn void shutdown_system(const char *why)
{
    logmsg("shutting down: %s", why);
    kill(-1, SIGTERM);
    if (!reap_all_for(3000)) {
        logmsg("processes left after 3 s, killing");
        kill(-1, SIGKILL);
        reap_all_for(1000);
    }
    sync();
    umount2("/dev/pts", MNT_DETACH);
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
        logmsg("remount / read-only: %s", strerror(errno));
    sync();
    logmsg("power off");
    reboot(RB_POWER_OFF);
    /* Power-off unsupported: a reset still ends QEMU under -no-reboot. */
    reboot(RB_AUTOBOOT);
    for (;;)
        pause();
}

static _Noreturn void fatal(const char *what)
{
    char line[256];
    snprintf(line, sizeof(line), "PORTHOLE_ERROR boot: %s", what);
    emit_marker(line);
    sync();
    reboot(RB_POWER_OFF);
    reboot(RB_AUTOBOOT);
    for (;;)
        pause();
}

/* ------------------------------------------------------------------------ */
/* Stage 1: initramfs                                                       */

static void load_modules(void)
{
    static char list[MODULE_LIST_MAX + 1];
    ssize_t n = read_file(MODULE_ORDER, list, MODULE_LIST_MAX);
    if (n < 0) {
        logmsg("no module list: %s", strerror((int)-n));
        return;
    }
    int loaded = 0;
    for (char *save = NULL, *path = strtok_r(list, "\n", &save); path;
         path = strtok_r(NULL, "\n", &save)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            logmsg("module %s: %s", path, strerror(errno));
            continue;
        }
        /* glibc has no finit_module() wrapper. */
        if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
            logmsg("load %s: %s", path, strerror(errno));
        else
            loaded++;
        close(fd);
    }
    logmsg("loaded %d modules", loaded);
}

static _Noreturn void stage1(void)
{
    mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    console_setup();
    logmsg("stage 1");
    load_modules();

    /* virtio_blk usually probes synchronously, but give a slow (TCG) guest
     * a bounded grace period. */
    if (!wait_for(cond_path_exists, ROOT_DEVICE, 10000, 10, NULL))
        fatal(ROOT_DEVICE " did not appear");
    mkdir(NEWROOT, 0755);
    if (mount(ROOT_DEVICE, NEWROOT, "ext4", MS_NOATIME, NULL) < 0) {
        logmsg("mount " ROOT_DEVICE ": %s", strerror(errno));
        fatal("cannot mount " ROOT_DEVICE);
    }

    const char *moved[] = {"/dev", "/proc", "/sys"};
    for (size_t i = 0; i < 3; i++) {
        char target[64];
        snprintf(target, sizeof(target), NEWROOT "%s", moved[i]);
        mkdir(target, 0755);
        if (mount(moved[i], target, NULL, MS_MOVE, NULL) < 0)
            logmsg("move %s: %s", moved[i], strerror(errno));
    }
    /* The classic switch_root: make the new root "/" by moving its mount
     * over the initramfs, then chroot into it. The initramfs stays in
     * memory (about a megabyte) since nothing can unmount rootfs. */
    if (chdir(NEWROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
        chdir("/") < 0) {
        logmsg("switch root: %s", strerror(errno));
        fatal("cannot switch root");
    }
    char *argv[] = {(char *)"porthole-init", NULL};
    execve(SELF_PATH, argv, default_env);
    logmsg("exec " SELF_PATH ": %s", strerror(errno));
    fatal("cannot exec " SELF_PATH);
}

/* ------------------------------------------------------------------------ */
/* Stage 2: config                                                          */

enum guest_kind { KIND_SANDBOX, KIND_BROWSER };

struct config {
    char hostname[65];
    enum guest_kind kind;
    bool resize_root;
    const char *env[ENV_MAX]; /* "NAME=VALUE", weak: point into the config text */
    size_t n_env;
    bool headless;
    unsigned width, height;
    bool downloads;
    char profile_dir[256];
    char download_dir[256];
    /* "ADDR:PORT" of the host's egress proxy, the guest's one way out
     * (its network reaches nothing else); "" when not given. */
    char proxy[32];
    /* Browser: allowed_domains ("host" or "*.domain", weak: into the config
     * text) for Chromium's URL policy; restricted with none allowed when
     * the list was given empty. */
    const char *allow_domains[ALLOW_DOMAINS_MAX];
    size_t n_allow_domains;
    bool restricted;
};

static void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->hostname, sizeof(cfg->hostname), "porthole");
    cfg->kind = KIND_SANDBOX;
    cfg->width = 1280;
    cfg->height = 720;
    cfg->downloads = true;
    snprintf(cfg->profile_dir, sizeof(cfg->profile_dir), "/root/porthole/profile");
    snprintf(cfg->download_dir, sizeof(cfg->download_dir), "/root/porthole/downloads");
}

/* "A.B.C.D:PORT": digits, dots and one colon, nothing a shell or a JSON
 * string would treat specially. */
static bool valid_proxy(const char *s, size_t cap)
{
    size_t n = strlen(s), colons = 0;
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ':')
            colons++;
        else if (!(s[i] == '.' || (s[i] >= '0' && s[i] <= '9')))
            return false;
    }
    return colons == 1 && s[n - 1] != ':';
}

static bool valid_hostname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[0] == '.')
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return false;
    return true;
}

/* "host" or "*.domain" as the gateway writes them: lowercase names or
 * IPv4 addresses (IPv6 literals are left to the host's proxy). */
static bool valid_domain_pattern(const char *s)
{
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    if (!*s || strlen(s) > 253 || *s == '.' || *s == '-')
        return false;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == '.'))
            return false;
    return true;
}

static bool domain_listed(const struct config *cfg, const char *pattern)
{
    for (size_t i = 0; i < cfg->n_allow_domains; i++)
        if (strcmp(cfg->allow_domains[i], pattern) == 0)
            return true;
    return false;
}

static bool valid_env_name(const char *s, size_t n)
{
    if (n == 0 || n > 128 || isdigit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

/* Absolute, no "..": the value ends up in mkdir and in Chromium's policy. */
static bool valid_dir(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n > 1 && n < max && s[0] == '/' && !strstr(s, "/../") &&
           strcmp(s + n - (n >= 3 ? 3 : n), "/..") != 0;
}

static bool parse_dimension(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = (unsigned)v;
    return true;
}

/* Parses "key=value" lines in place: env entries keep pointers into text.
 * Returns how many lines were rejected (each one logged). */
static int config_parse(struct config *cfg, char *text)
{
    int rejected = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq) {
            logmsg("config: ignoring line without '='");
            rejected++;
            continue;
        }
        *eq = '\0';
        const char *key = line, *val = eq + 1;
        bool ok = true;
        if (strcmp(key, "hostname") == 0) {
            ok = valid_hostname(val);
            if (ok)
                snprintf(cfg->hostname, sizeof(cfg->hostname), "%s", val);
        } else if (strcmp(key, "kind") == 0) {
            if (strcmp(val, "sandbox") == 0)
                cfg->kind = KIND_SANDBOX;
            else if (strcmp(val, "browser") == 0)
                cfg->kind = KIND_BROWSER;
            else
                ok = false;
        } else if (strcmp(key, "env") == 0) {
            const char *veq = strchr(val, '=');
            ok = veq && valid_env_name(val, (size_t)(veq - val)) && cfg->n_env < ENV_MAX;
            if (ok)
                cfg->env[cfg->n_env++] = val;
        } else if (strcmp(key, "resize_root") == 0) {
            cfg->resize_root = strcmp(val, "1") == 0;
        } else if (strcmp(key, "browser.mode") == 0) {
            if (strcmp(val, "live") == 0)
                cfg->headless = false;
            else if (strcmp(val, "headless") == 0)
                cfg->headless = true;
            else
                ok = false;
        } else if (strcmp(key, "browser.width") == 0) {
            ok = parse_dimension(val, 320, 7680, &cfg->width);
        } else if (strcmp(key, "browser.height") == 0) {
            ok = parse_dimension(val, 240, 4320, &cfg->height);
        } else if (strcmp(key, "browser.downloads") == 0) {
            cfg->downloads = strcmp(val, "1") == 0;
        } else if (strcmp(key, "browser.profile_dir") == 0) {
            ok = valid_dir(val, sizeof(cfg->profile_dir));
            if (ok)
                snprintf(cfg->profile_dir, sizeof(cfg->profile_dir), "%s", val);
        } else if (strcmp(key, "browser.allow_domain") == 0) {
            cfg->restricted = true;
            ok = !*val || (valid_domain_pattern(val) && cfg->n_allow_domains < ALLOW_DOMAINS_MAX);
            if (ok && *val)
                cfg->allow_domains[cfg->n_allow_domains++] = val;
        } else if (strcmp(key, "network.proxy") == 0) {
            ok = valid_proxy(val, sizeof(cfg->proxy));
            if (ok)
                snprintf(cfg->proxy, sizeof(cfg->proxy), "%s", val);
        } else if (strcmp(key, "browser.download_dir") == 0) {
            ok = valid_dir(val, sizeof(cfg->download_dir));
            if (ok)
                snprintf(cfg->download_dir, sizeof(cfg->download_dir), "%s", val);
        }
        /* Unknown keys are ignored: a newer host may send more. */
        if (!ok) {
            logmsg("config: ignoring invalid %s", key);
            rejected++;
        }
    }
    return rejected;
}

/* Appends to a bounded buffer; returns false once it would overflow. */
struct strbuf {
    char *data;
    size_t len, cap;
    bool overflow;
};

static void sb_add(struct strbuf *sb, const char *s, size_t n)
{
    if (sb->overflow || n > sb->cap - 1 - sb->len) {
        sb->overflow = true;
        return;
    }
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

static void sb_str(struct strbuf *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

/* POSIX shells have no escape inside '...': close, add \', reopen. */
static void sb_shell_quote(struct strbuf *sb, const char *s)
{
    sb_str(sb, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            sb_str(sb, "'\\''");
        else
            sb_add(sb, p, 1);
    }
    sb_str(sb, "'");
}

static void sb_json_string(struct strbuf *sb, const char *s)
{
    sb_str(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sb_add(sb, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            sb_str(sb, esc);
        } else {
            sb_add(sb, (const char *)p, 1);
        }
    }
    sb_str(sb, "\"");
}

static int env_script_build(const struct config *cfg, struct strbuf *sb)
{
    sb_str(sb, "# Written by porthole-init from the VM's config (boot or browser-configure).\n");
    if (cfg->proxy[0]) {
        /* The only way out: the host's egress proxy. Programs that ignore
         * these variables reach nothing. */
        static const char *const names[] = {"http_proxy", "https_proxy", "HTTP_PROXY",
                                            "HTTPS_PROXY"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            sb_str(sb, "export ");
            sb_str(sb, names[i]);
            sb_str(sb, "=http://");
            sb_str(sb, cfg->proxy);
            sb_str(sb, "\n");
        }
        sb_str(sb, "export no_proxy=localhost,127.0.0.1,::1\nexport NO_PROXY=$no_proxy\n");
    }
    for (size_t i = 0; i < cfg->n_env; i++) {
        const char *eq = strchr(cfg->env[i], '=');
        sb_str(sb, "export ");
        sb_add(sb, cfg->env[i], (size_t)(eq - cfg->env[i]));
        sb_str(sb, "=");
        sb_shell_quote(sb, eq + 1);
        sb_str(sb, "\n");
    }
    return sb->overflow ? -E2BIG : 0;
}

static int policy_build(const struct config *cfg, struct strbuf *sb)
{
    if (!cfg->downloads) {
        /* 3 = block all downloads. */
        sb_str(sb, "{\"DownloadRestrictions\": 3");
    } else {
        sb_str(sb, "{\"DownloadDirectory\": ");
        sb_json_string(sb, cfg->download_dir);
        sb_str(sb, ", \"PromptForDownload\": false");
    }
    if (cfg->proxy[0]) {
        /* A managed policy: no page or extension can change it. */
        sb_str(sb, ", \"ProxySettings\": {\"ProxyMode\": \"fixed_servers\", \"ProxyServer\": ");
        sb_json_string(sb, cfg->proxy);
        sb_str(sb, "}");
    }
    if (cfg->restricted) {
        /* Chromium's filters: "x" is x and its subdomains, ".x" is x alone.
         * "*.x" (subdomains only) allows "x" and blocks ".x", the more
         * specific filter, unless x itself is listed too. The host's proxy
         * enforces the same list whatever Chromium does. */
        sb_str(sb, ", \"URLAllowlist\": [\"about:blank\"");
        for (size_t i = 0; i < cfg->n_allow_domains; i++) {
            const char *d = cfg->allow_domains[i];
            char exact[256];
            snprintf(exact, sizeof(exact), ".%s", d);
            sb_str(sb, ", ");
            sb_json_string(sb, strncmp(d, "*.", 2) == 0 ? d + 2 : exact);
        }
        sb_str(sb, "], \"URLBlocklist\": [\"*\"");
        for (size_t i = 0; i < cfg->n_allow_domains; i++) {
            const char *d = cfg->allow_domains[i];
            if (strncmp(d, "*.", 2) == 0 && !domain_listed(cfg, d + 2)) {
                sb_str(sb, ", ");
                sb_json_string(sb, d + 1);
            }
        }
        sb_str(sb, "]");
    }
    sb_str(sb, "}\n");
    return sb->overflow ? -E2BIG : 0;
}

/* ------------------------------------------------------------------------ */
/* Stage 2: system setup                                                    */

static void hostname_apply(const struct config *cfg)
{
    if (sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
        logmsg("sethostname: %s", strerror(errno));
    char buf[512];
    snprintf(buf, sizeof(buf), "%s\n", cfg->hostname);
    write_string("/etc/hostname", buf, 0644);
    snprintf(buf, sizeof(buf),
             "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
             cfg->hostname);
    write_string("/etc/hosts", buf, 0644);
}

static int if_set_flags_up(int sock, const char *ifname)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
        return -errno;
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
        return -errno;
    return 0;
}

static int if_set_addr(int sock, const char *ifname, unsigned long request, const char *addr)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, addr, &sin->sin_addr);
    if (ioctl(sock, request, &ifr) < 0)
        return -errno;
    return 0;
}

static int route_add_default(int sock, const char *gateway)
{
    struct rtentry rt;
    memset(&rt, 0, sizeof(rt));
    struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
    struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
    struct sockaddr_in *mask = (struct sockaddr_in *)&rt.rt_genmask;
    dst->sin_family = gw->sin_family = mask->sin_family = AF_INET;
    inet_pton(AF_INET, gateway, &gw->sin_addr);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    if (ioctl(sock, SIOCADDRT, &rt) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The legacy ioctls cover a static address and one route with no exec of
 * `ip`, which costs real time under TCG. */
static void network_setup(void)
{
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        logmsg("network: socket: %s", strerror(errno));
        return;
    }
    int r = if_set_flags_up(sock, "lo");
    if (r < 0)
        logmsg("network: lo up: %s", strerror(-r));
    if (!wait_for(cond_path_exists, "/sys/class/net/eth0", 5000, 10, NULL)) {
        logmsg("network: no eth0");
        close(sock);
        return;
    }
    if ((r = if_set_addr(sock, "eth0", SIOCSIFADDR, GUEST_ADDR)) < 0 ||
        (r = if_set_addr(sock, "eth0", SIOCSIFNETMASK, GUEST_NETMASK)) < 0 ||
        (r = if_set_flags_up(sock, "eth0")) < 0 || (r = route_add_default(sock, GATEWAY_ADDR)) < 0)
        logmsg("network: eth0: %s", strerror(-r));
    else
        logmsg("network: eth0 " GUEST_ADDR "/24 via " GATEWAY_ADDR);
    close(sock);
    unlink("/etc/resolv.conf");
    write_string("/etc/resolv.conf", "nameserver " DNS_ADDR "\n", 0644);
}

static void run_and_wait(const char *name, char *const argv[])
{
    struct child *c = spawn(name, argv, NULL);
    if (!c)
        return;
    while (!c->exited)
        service_signals(100);
}

static void keys_install(void)
{
    static char buf[AUTH_KEYS_MAX + 1];
    ssize_t n = read_file(FWCFG_HOST_KEY, buf, HOST_KEY_MAX);
    int r = n > 0 ? write_file(HOST_KEY_PATH, buf, (size_t)n, 0600) : (int)n;
    if (n > 0 && r == 0) {
        logmsg("ssh host key installed from fw_cfg");
    } else {
        /* Booted without the host's key: still usable, but the host cannot
         * pin this key. */
        logmsg("no host key from fw_cfg (%s); generating one", strerror(r ? -r : ENODATA));
        unlink(HOST_KEY_PATH);
        char *argv[] = {(char *)"/usr/bin/ssh-keygen",
                        (char *)"-q",
                        (char *)"-t",
                        (char *)"ed25519",
                        (char *)"-N",
                        (char *)"",
                        (char *)"-f",
                        (char *)HOST_KEY_PATH,
                        NULL};
        run_and_wait("ssh-keygen", argv);
    }
    explicit_bzero(buf, sizeof(buf));

    n = read_file(FWCFG_AUTH_KEYS, buf, AUTH_KEYS_MAX);
    if (n <= 0) {
        logmsg("no authorized_keys from fw_cfg: %s", n < 0 ? strerror((int)-n) : "empty");
        return;
    }
    mkdir("/root", 0700);
    mkdir("/root/.ssh", 0700);
    chmod("/root/.ssh", 0700);
    r = write_file("/root/.ssh/authorized_keys", buf, (size_t)n, 0600);
    if (r < 0)
        logmsg("authorized_keys: %s", strerror(-r));
}

static void env_install(const struct config *cfg)
{
    static char text[ENV_SCRIPT_MAX];
    struct strbuf sb = {.data = text, .cap = sizeof(text)};
    int r = env_script_build(cfg, &sb);
    if (r == 0)
        r = write_file(ENV_SCRIPT, sb.data, sb.len, 0644);
    if (r < 0)
        logmsg("%s: %s", ENV_SCRIPT, strerror(-r));
}

static void mounts_setup(void)
{
    mount_unless("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, PROC_SUPER_MAGIC);
    mount_unless("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, SYSFS_MAGIC);
    mount_unless("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", TMPFS_MAGIC);
    console_setup();
    /* A directly booted root may come up read-only. */
    mount(NULL, "/", NULL, MS_REMOUNT, NULL);
    mount_unless("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                 "gid=5,mode=0620,ptmxmode=0666", DEVPTS_SUPER_MAGIC);
    mount_unless("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", TMPFS_MAGIC);
    mount_unless("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=20%", TMPFS_MAGIC);
    /* devtmpfs has no /dev/fd; bash process substitution needs it. */
    symlink("/proc/self/fd", "/dev/fd");
    symlink("/proc/self/fd/0", "/dev/stdin");
    symlink("/proc/self/fd/1", "/dev/stdout");
    symlink("/proc/self/fd/2", "/dev/stderr");
    mkdir("/tmp", 01777);
    chmod("/tmp", 01777);
    mkdir("/run/lock", 01777);
    chmod("/run/lock", 01777);
    mkdir("/run/sshd", 0755);
    symlink("/proc/self/mounts", "/etc/mtab");
}

static struct child *sshd_start(void)
{
    char *argv[] = {(char *)"/usr/sbin/sshd", (char *)"-D", (char *)"-e", NULL};
    struct spawn_opts opts = {.log_path = "/var/log/porthole-sshd.log"};
    return spawn("sshd", argv, &opts);
}

static void resize_root_start(void)
{
    char *argv[] = {(char *)"/sbin/resize2fs", (char *)ROOT_DEVICE, NULL};
    struct spawn_opts opts = {.log_path = "/var/log/porthole-resize.log"};
    if (spawn("resize2fs", argv, &opts))
        logmsg("resize2fs " ROOT_DEVICE " started");
}

/* ------------------------------------------------------------------------ */
/* CDP relay: Chromium binds its debugging port to loopback only            */

struct relay_dir {
    char *buf; /* owned, RELAY_BUF bytes */
    size_t off, len;
    bool eof;  /* source said EOF */
    bool shut; /* EOF passed on to the sink */
};

struct relay_conn {
    int fd[2]; /* [0] client, [1] upstream; -1 if the slot is free */
    bool connecting;
    struct relay_dir dir[2]; /* [0] client->upstream, [1] upstream->client */
};

static void relay_close(struct relay_conn *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->fd[i] >= 0)
            close(c->fd[i]);
        c->fd[i] = -1;
        free(c->dir[i].buf);
        c->dir[i].buf = NULL;
    }
}

static int relay_listen(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void relay_accept(int lfd, struct relay_conn *conns, uint16_t target_port)
{
    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    struct relay_conn *c = NULL;
    for (size_t i = 0; i < RELAY_CONNS_MAX && !c; i++)
        if (conns[i].fd[0] < 0)
            c = &conns[i];
    if (!c) {
        close(cfd);
        return;
    }
    int ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    char *b0 = malloc(RELAY_BUF), *b1 = malloc(RELAY_BUF);
    if (ufd < 0 || !b0 || !b1) {
        if (ufd >= 0)
            close(ufd);
        free(b0);
        free(b1);
        close(cfd);
        return;
    }
    /* CDP is small messages each way: relay each at once, never held back
     * for an acknowledgement (Nagle with delayed ACK costs 40 ms a turn). */
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(c, 0, sizeof(*c));
    c->fd[0] = cfd;
    c->fd[1] = ufd;
    c->dir[0].buf = b0;
    c->dir[1].buf = b1;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(target_port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(ufd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
        return;
    if (errno == EINPROGRESS) {
        c->connecting = true;
        return;
    }
    relay_close(c);
}

/* Moves bytes for one direction; returns false when the connection must
 * close (an error on either side). */
static bool relay_pump(struct relay_conn *c, int d, short src_ev, short dst_ev)
{
    struct relay_dir *dir = &c->dir[d];
    int src = c->fd[d], dst = c->fd[1 - d];
    if (!dir->eof && dir->len < RELAY_BUF && (src_ev & (POLLIN | POLLHUP | POLLERR))) {
        if (dir->off == dir->len)
            dir->off = dir->len = 0;
        ssize_t r = recv(src, dir->buf + dir->len, RELAY_BUF - dir->len, 0);
        if (r > 0)
            dir->len += (size_t)r;
        else if (r == 0)
            dir->eof = true;
        else if (errno != EAGAIN && errno != EINTR)
            return false;
    }
    if (!c->connecting && dir->len > dir->off && (dst_ev & (POLLOUT | POLLERR))) {
        ssize_t w = send(dst, dir->buf + dir->off, dir->len - dir->off, MSG_NOSIGNAL);
        if (w > 0)
            dir->off += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        if (dir->off == dir->len)
            dir->off = dir->len = 0;
    }
    if (!c->connecting && dir->eof && dir->len == dir->off && !dir->shut) {
        /* Half-close: HTTP clients may shut their write side and still
         * expect the reply. */
        shutdown(dst, SHUT_WR);
        dir->shut = true;
    }
    return true;
}

static _Noreturn void relay_run(uint16_t listen_port, uint16_t target_port)
{
    int lfd = relay_listen(listen_port);
    if (lfd < 0) {
        logmsg("relay: listen on %u: %s", listen_port, strerror(-lfd));
        _exit(1);
    }
    static struct relay_conn conns[RELAY_CONNS_MAX];
    for (size_t i = 0; i < RELAY_CONNS_MAX; i++)
        conns[i].fd[0] = conns[i].fd[1] = -1;
    struct pollfd pfd[1 + 2 * RELAY_CONNS_MAX];
    for (;;) {
        size_t n = 0, active = 0;
        for (size_t i = 0; i < RELAY_CONNS_MAX; i++) {
            struct relay_conn *c = &conns[i];
            if (c->fd[0] < 0)
                continue;
            active++;
            short ev[2] = {0, 0};
            for (int d = 0; d < 2; d++) {
                struct relay_dir *dir = &c->dir[d];
                if (!dir->eof && dir->len < RELAY_BUF)
                    ev[d] |= POLLIN;
                if (dir->len > dir->off)
                    ev[1 - d] |= POLLOUT;
            }
            if (c->connecting)
                ev[1] = POLLOUT;
            pfd[n++] = (struct pollfd){.fd = c->fd[0], .events = ev[0]};
            pfd[n++] = (struct pollfd){.fd = c->fd[1], .events = ev[1]};
        }
        /* When full, leave new clients in the kernel's backlog. */
        bool listening = active < RELAY_CONNS_MAX;
        if (listening)
            pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            logmsg("relay: poll: %s", strerror(errno));
            _exit(1);
        }
        size_t k = 0;
        for (size_t i = 0; i < RELAY_CONNS_MAX; i++) {
            struct relay_conn *c = &conns[i];
            if (c->fd[0] < 0)
                continue;
            short ev0 = pfd[k].revents, ev1 = pfd[k + 1].revents;
            k += 2;
            if (c->connecting) {
                if (!(ev1 & (POLLOUT | POLLERR | POLLHUP)))
                    goto pump;
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) {
                    relay_close(c);
                    continue;
                }
                c->connecting = false;
                ev1 &= (short)~(POLLHUP | POLLERR);
            }
        pump:
            /* An error on either side ends the pair; without this a reset
             * peer that we poll for nothing would linger. */
            if (!c->connecting && ((ev0 | ev1) & POLLERR)) {
                relay_close(c);
                continue;
            }
            if (!relay_pump(c, 0, ev0, ev1) || !relay_pump(c, 1, ev1, ev0) ||
                (c->dir[0].shut && c->dir[1].shut))
                relay_close(c);
        }
        if (listening && (pfd[n - 1].revents & POLLIN))
            relay_accept(lfd, conns, target_port);
    }
}

static struct child *relay_start(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        logmsg("fork for relay: %s", strerror(errno));
        return NULL;
    }
    if (pid == 0) {
        child_reset_signals();
        relay_run(RELAY_PORT, CDP_PORT);
    }
    return child_track(pid, "cdp-relay");
}

/* ------------------------------------------------------------------------ */
/* Browser                                                                  */

static const char *first_existing(const char *a, const char *b)
{
    return access(a, X_OK) == 0 ? a : b;
}

/* Finds the event device whose name contains `what` ("Tablet", "Keyboard":
 * QEMU names its virtio input devices "QEMU Virtio Tablet" and so on). No
 * udev runs in the guest, so Xorg is told the nodes instead of discovering
 * them. */
static int input_device_find(const char *what, char *path, size_t path_size)
{
    DIR *d = opendir("/sys/class/input");
    if (!d)
        return -errno;
    int r = -ENODEV;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "event", 5) != 0)
            continue;
        char name_path[PATH_MAX], name[128];
        snprintf(name_path, sizeof(name_path), "/sys/class/input/%s/device/name", e->d_name);
        ssize_t n = read_file(name_path, name, sizeof(name) - 1);
        if (n <= 0)
            continue;
        name[n] = '\0';
        if (strstr(name, what)) {
            snprintf(path, path_size, "/dev/input/%s", e->d_name);
            r = 0;
            break;
        }
    }
    closedir(d);
    return r;
}

/* The X server's configuration: the virtio-gpu screen through the kernel's
 * DRM driver (no GL: Chromium renders in software), QEMU's virtio tablet
 * and keyboard through evdev, no screen blanking. The cursor is drawn into
 * the framebuffer so screenshots and recordings show it.
 *
 * The tablet's matrix moves the pointer 1.5 tablet units right and down.
 * QEMU scales a VNC pixel x to the tablet's 0..32767 rounding down, and X
 * scales back rounding down again, which lands every point but exact
 * multiples one pixel short (measured: 100 -> 99). With the shift, the
 * position X computes lies between x and x + 1.5 * width / 32767: inside
 * pixel x for any screen narrower than 21845 pixels. */
static int xorg_config_write(void)
{
    char tablet[PATH_MAX], keyboard[PATH_MAX];
    int r = input_device_find("Tablet", tablet, sizeof(tablet));
    if (r == 0)
        r = input_device_find("Keyboard", keyboard, sizeof(keyboard));
    if (r < 0) {
        logmsg("no virtio tablet/keyboard in /sys/class/input: %s", strerror(-r));
        return r;
    }
    static char text[2 * PATH_MAX + 2048];
    int n = snprintf(text, sizeof(text),
                     "Section \"ServerFlags\"\n"
                     "  Option \"AutoAddDevices\" \"false\"\n"
                     "  Option \"AutoAddGPU\" \"false\"\n"
                     "  Option \"DontVTSwitch\" \"true\"\n"
                     "  Option \"BlankTime\" \"0\"\n"
                     "  Option \"StandbyTime\" \"0\"\n"
                     "  Option \"SuspendTime\" \"0\"\n"
                     "  Option \"OffTime\" \"0\"\n"
                     "EndSection\n"
                     "Section \"Extensions\"\n"
                     "  Option \"GLX\" \"Disable\"\n"
                     "EndSection\n"
                     "Section \"Device\"\n"
                     "  Identifier \"gpu\"\n"
                     "  Driver \"modesetting\"\n"
                     "  Option \"kmsdev\" \"" DRM_CARD "\"\n"
                     "  Option \"AccelMethod\" \"none\"\n"
                     "  Option \"SWcursor\" \"true\"\n"
                     "EndSection\n"
                     "Section \"Screen\"\n"
                     "  Identifier \"screen\"\n"
                     "  Device \"gpu\"\n"
                     "  DefaultDepth 24\n"
                     "EndSection\n"
                     "Section \"InputDevice\"\n"
                     "  Identifier \"tablet\"\n"
                     "  Driver \"evdev\"\n"
                     "  Option \"TransformationMatrix\" \"1 0 %.9f 0 1 %.9f 0 0 1\"\n"
                     "  Option \"Device\" \"%s\"\n"
                     "EndSection\n"
                     "Section \"InputDevice\"\n"
                     "  Identifier \"keyboard\"\n"
                     "  Driver \"evdev\"\n"
                     "  Option \"Device\" \"%s\"\n"
                     "  Option \"XkbLayout\" \"us\"\n"
                     "EndSection\n"
                     "Section \"ServerLayout\"\n"
                     "  Identifier \"porthole\"\n"
                     "  Screen \"screen\"\n"
                     "  InputDevice \"tablet\" \"CorePointer\"\n"
                     "  InputDevice \"keyboard\" \"CoreKeyboard\"\n"
                     "EndSection\n",
                     TABLET_SHIFT, TABLET_SHIFT, tablet, keyboard);
    if (n < 0 || (size_t)n >= sizeof(text))
        return -ENAMETOOLONG;
    if ((r = mkdir_p(RUN_DIR, 0755)) == 0)
        r = write_file(XORG_CONFIG, text, (size_t)n, 0644);
    if (r < 0)
        logmsg(XORG_CONFIG ": %s", strerror(-r));
    return r;
}

/* The X server on the VM's screen. QEMU sets the screen's preferred size
 * (the session's, at boot); a pooled VM is resized later with xrandr. */
static struct child *xorg_start(bool detach)
{
    /* A display lock left in an image would make Xorg refuse :0. */
    unlink("/tmp/.X0-lock");
    unlink(X_SOCKET);
    mkdir("/tmp/.X11-unix", 01777);
    chmod("/tmp/.X11-unix", 01777);
    if (!path_exists(DRM_CARD)) {
        logmsg(DRM_CARD " missing: the VM has no virtio-gpu screen");
        return NULL;
    }
    if (xorg_config_write() < 0)
        return NULL;
    /* -r: no key autorepeat in the server. Every key comes from xdotool or
     * from a VNC client, which repeats held keys itself; a server repeat
     * only adds phantom letters when a busy guest sees a key-up late. */
    char *argv[] = {
        (char *)XORG_BIN,   (char *)":0",          (char *)"-config",   (char *)XORG_CONFIG,
        (char *)"-logfile", (char *)XORG_LOG,      (char *)"-nolisten", (char *)"tcp",
        (char *)"-noreset", (char *)"-novtswitch", (char *)"-s",        (char *)"0",
        (char *)"-dpms",    (char *)"-r",          (char *)"vt7",       NULL};
    struct spawn_opts opts = {.log_path = "/var/log/porthole-xorg.out", .detach = detach};
    return spawn("Xorg", argv, &opts);
}

/* A window manager that gives the application window the whole screen.
 * Without one Chromium cannot maximize, and a window it sizes to the screen
 * itself it makes 1 px smaller on each axis (measured: 1023x767 on a
 * 1024x768 screen), which leaves a black edge in every screenshot and
 * recording. Best effort: Chromium works without it. */
static void wm_start(bool detach)
{
    static char *envp[] = {"PATH=" SYSTEM_PATH, "HOME=/root", "LANG=C.UTF-8", "DISPLAY=:0", NULL};
    char *argv[] = {(char *)WM_BIN, (char *)"-use_titlebar", (char *)"no", NULL};
    if (access(WM_BIN, X_OK) != 0) {
        logmsg("no window manager (%s): the browser window stays 1 px short of the screen", WM_BIN);
        return;
    }
    struct spawn_opts opts = {
        .log_path = "/var/log/porthole-wm.log", .envp = envp, .detach = detach};
    if (!spawn("window manager", argv, &opts))
        logmsg("cannot start %s", WM_BIN);
}

static int policy_install(const struct config *cfg)
{
    static char text[POLICY_MAX];
    struct strbuf sb = {.data = text, .cap = sizeof(text)};
    int r = mkdir_p(POLICY_DIR, 0755);
    if (r == 0)
        r = policy_build(cfg, &sb);
    if (r == 0)
        r = write_file(POLICY_PATH, sb.data, sb.len, 0644);
    if (r < 0)
        logmsg("chromium policy: %s", strerror(-r));
    return r;
}

static void chromium_pid_record(pid_t pid)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%d\n", (int)pid);
    int r = mkdir_p(RUN_DIR, 0755);
    if (r == 0)
        r = write_string(CHROMIUM_PID_FILE, buf, 0644);
    if (r < 0)
        logmsg(CHROMIUM_PID_FILE ": %s", strerror(-r));
}

/* detach: see struct spawn_opts; browser-configure starts Chromium for PID 1
 * to inherit. */
static struct child *chromium_start(const struct config *cfg, bool detach)
{
    int r = mkdir_p(cfg->profile_dir, 0700);
    if (r < 0)
        logmsg("profile dir %s: %s", cfg->profile_dir, strerror(-r));
    if (cfg->downloads && (r = mkdir_p(cfg->download_dir, 0755)) < 0)
        logmsg("download dir %s: %s", cfg->download_dir, strerror(-r));
    /* No Chromium runs on this profile now (the caller stopped it): a lock
     * left by one that was killed, or that names the host name a clone
     * had before it got its own, would make this one exit at once (code
     * 21, profile in use). */
    static const char *const locks[] = {"SingletonLock", "SingletonSocket", "SingletonCookie"};
    for (size_t i = 0; i < sizeof(locks) / sizeof(locks[0]); i++) {
        char lock[PATH_MAX];
        snprintf(lock, sizeof(lock), "%s/%s", cfg->profile_dir, locks[i]);
        unlink(lock);
    }

    static char user_data[300], window_size[48];
    snprintf(user_data, sizeof(user_data), "--user-data-dir=%s", cfg->profile_dir);
    /* Headless Chromium lays pages out inside a window that keeps room for
     * the browser's own (invisible) toolbars, 87 px tall in Chromium 156:
     * the window is made that much taller so the page gets the session's
     * viewport. A headful window fills the screen, which is the viewport. */
    snprintf(window_size, sizeof(window_size), "--window-size=%u,%u", cfg->width,
             cfg->height + (cfg->headless ? HEADLESS_TOP_CHROME_PX : 0));
    /* The wrapper script /usr/bin/chromium only adds a shell start. */
    const char *argv[32];
    size_t n = 0;
    argv[n++] = first_existing(CHROMIUM_BIN, "/usr/bin/chromium");
    if (cfg->headless)
        argv[n++] = "--headless=new";
    /* --test-type: no "unsupported command-line flag" bar over every page,
     * the way automation drivers start Chromium. */
    const char *flags[] = {"--no-sandbox", "--test-type", "--no-first-run",
                           "--no-default-browser-check", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--disable-gpu",
                           "--disable-dev-shm-usage", "--password-store=basic",
                           "--remote-debugging-port=9222",
                           /* The gateway's CDP proxy is the access check;
                            * Chromium's Origin check would only reject
                            * clients that send an Origin header. */
                           "--remote-allow-origins=*", user_data, "--window-position=0,0",
                           window_size, "--start-maximized", "about:blank"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        argv[n++] = flags[i];
    argv[n] = NULL;

    /* The sandbox's env vars reach the browser as well as login shells. */
    static char display[] = "DISPLAY=:0";
    char *envp[ENV_MAX + 8];
    size_t e = 0;
    for (char **p = default_env; *p; p++)
        envp[e++] = *p;
    if (!cfg->headless)
        envp[e++] = display;
    for (size_t i = 0; i < cfg->n_env && e < ENV_MAX + 7; i++)
        envp[e++] = (char *)cfg->env[i];
    envp[e] = NULL;
    struct spawn_opts opts = {.log_path = CHROMIUM_LOG, .envp = envp, .detach = detach};
    struct child *c = spawn("chromium", (char *const *)argv, &opts);
    if (c)
        chromium_pid_record(c->pid);
    return c;
}

static void cdp_warm_up(void);
static void x_pointer_home(void);

static void browser_start(const struct config *cfg, struct child *xorg)
{
    if (!cfg->headless) {
        /* Chromium started before the X socket exists exits at once. */
        if (!xorg || !wait_for(cond_path_exists, X_SOCKET, X_START_MS, 20, xorg)) {
            emit_marker("PORTHOLE_ERROR browser: Xorg did not start (see " XORG_LOG ")");
            return;
        }
        logmsg("Xorg ready on :0");
        x_pointer_home();
        wm_start(false);
    }
    policy_install(cfg);
    struct child *chromium = chromium_start(cfg, false);
    if (!chromium) {
        emit_marker("PORTHOLE_ERROR browser: cannot start chromium");
        return;
    }
    relay_start();
    const uint16_t port = CDP_PORT;
    /* First start in a fresh guest under TCG takes tens of seconds. */
    if (!wait_for(cond_port_listening, &port, 180000, 50, chromium)) {
        char why[32] = "timeout";
        if (chromium->exited)
            describe_status(chromium->status, why, sizeof(why));
        char line[96];
        snprintf(line, sizeof(line), "PORTHOLE_ERROR browser: chromium not listening (%s)", why);
        emit_marker(line);
        return;
    }
    cdp_warm_up();
    emit_marker("PORTHOLE_READY browser");
}

/* ------------------------------------------------------------------------ */
/* Stage 2 main                                                             */

static void config_load(struct config *cfg)
{
    /* Static: env entries point into this text for the guest's lifetime. */
    static char text[CONFIG_MAX + 1];
    config_defaults(cfg);
    ssize_t n = read_file(FWCFG_CONFIG, text, CONFIG_MAX);
    if (n < 0) {
        logmsg("no config from fw_cfg (%s); using defaults", strerror((int)-n));
        return;
    }
    config_parse(cfg, text);
}

static _Noreturn void stage2(void)
{
    mounts_setup();
    logmsg("stage 2");
    static struct config cfg;
    config_load(&cfg);
    hostname_apply(&cfg);
    network_setup();
    keys_install();
    env_install(&cfg);
    if (cfg.resize_root)
        resize_root_start();

    struct child *sshd = sshd_start();
    struct child *xorg = cfg.kind == KIND_BROWSER && !cfg.headless ? xorg_start(false) : NULL;

    const uint16_t ssh_port = SSH_PORT;
    if (sshd && wait_for(cond_port_listening, &ssh_port, 30000, 10, sshd))
        emit_marker("PORTHOLE_READY ssh");
    else
        emit_marker("PORTHOLE_ERROR ssh: sshd did not start");

    if (cfg.kind == KIND_BROWSER)
        browser_start(&cfg, xorg);

    /* sshd is the guest's only way in; bring it back if it dies, within
     * reason. Chromium is deliberately not restarted: browser-configure and
     * browser-stop stop and start it from outside, and a restart here would
     * fight them. A Chromium they start is reparented to us and reaped by
     * the waitpid(-1) loop like any orphan. */
    int sshd_restarts = 0;
    for (;;) {
        service_signals(1000);
        if (sshd && sshd->exited && sshd_restarts < 5) {
            sshd_restarts++;
            logmsg("restarting sshd");
            sshd = sshd_start();
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Browser control over ssh (not PID 1)                                     */

#define CHROMIUM_PROCS_MAX 512
/* For Browser.close, answering included. Longer than one would guess: under
 * TCG on a loaded host the whole close took up to 7.3 s, and a Chromium busy
 * starting up did not answer /json/version within 2 s; cutting it short
 * loses cookies. */
#define CHROMIUM_STOP_GRACE_MS 10000
/* SIGTERM's own grace when Browser.close used up the first one. */
#define CHROMIUM_TERM_MIN_MS 3000
#define CDP_REPLY_WAIT_MS 2000
#define CDP_VERSION_WAIT_MS 5000
#define CHROMIUM_KILL_WAIT_MS 5000
#define CHROMIUM_READY_MS 60000
#define XRANDR_TIMEOUT_MS 10000
#define XRANDR_OUTPUT_MAX (32 * 1024)

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

struct chromium_proc {
    pid_t pid;
    bool main_binary; /* runs CHROMIUM_BIN (not crashpad) */
    bool browser;     /* the browser process itself: no --type= argument */
};

static bool cmdline_has_type(pid_t pid)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    for (char *arg = buf; arg < buf + n; arg += strlen(arg) + 1)
        if (strncmp(arg, "--type=", 7) == 0)
            return true;
    return false;
}

/* Every live process running a binary from Chromium's directory, whoever
 * started it: zygote-forked renderers never exec, so their exe still names
 * Chromium. Zombies have no exe link and drop out, which is what "exited"
 * must mean here since PID 1, not us, reaps them. */
static size_t chromium_scan(struct chromium_proc *procs, size_t max)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    size_t n = 0;
    const size_t dir_len = strlen(CHROMIUM_LIB_DIR), bin_len = strlen(CHROMIUM_BIN);
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == (long)getpid())
            continue;
        char path[64], exe[PATH_MAX];
        snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
        ssize_t len = readlink(path, exe, sizeof(exe) - 1);
        if (len <= 0)
            continue;
        exe[len] = '\0';
        if (strncmp(exe, CHROMIUM_LIB_DIR, dir_len) != 0)
            continue;
        /* " (deleted)" follows the path of a binary replaced by an upgrade. */
        bool main_binary = strncmp(exe, CHROMIUM_BIN, bin_len) == 0 &&
                           (exe[bin_len] == '\0' || exe[bin_len] == ' ');
        procs[n++] =
            (struct chromium_proc){.pid = (pid_t)pid,
                                   .main_binary = main_binary,
                                   .browser = main_binary && !cmdline_has_type((pid_t)pid)};
    }
    closedir(d);
    return n;
}

static size_t chromium_count(struct chromium_proc *procs, size_t n, bool main_binary_only)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!main_binary_only || procs[i].main_binary)
            k++;
    return k;
}

static pid_t chromium_pid_read(void)
{
    char buf[32];
    if (read_file(CHROMIUM_PID_FILE, buf, sizeof(buf) - 1) <= 0)
        return 0;
    long pid = strtol(buf, NULL, 10);
    return pid > 1 && pid < INT_MAX ? (pid_t)pid : 0;
}

/* A blocking loopback connection to Chromium's debugging port, with every
 * send and recv bounded by timeout_ms. */
static int cdp_connect(int timeout_ms)
{
    if (timeout_ms < 1)
        timeout_ms = 1; /* 0 would mean no timeout at all */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(CDP_PORT)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Reads until needle shows up in what came so far, EOF, a timeout or a full
 * buffer. Returns the length read, or -errno. */
static ssize_t recv_until(int fd, char *buf, size_t size, const char *needle)
{
    size_t len = 0;
    buf[0] = '\0';
    while (len + 1 < size && !memmem(buf, len, needle, strlen(needle))) {
        ssize_t r = recv(fd, buf + len, size - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
    }
    return (ssize_t)len;
}

/* GET /json/version: Chromium answers it only once its DevTools handler
 * runs, which under TCG can be well after the port listens. Returns 0 when
 * the answer names the browser's WebSocket URL, else -errno. */
static int cdp_get(const char *what, const char *needle, char *buf, size_t size, int timeout_ms)
{
    char req[160];
    int fd = cdp_connect(timeout_ms);
    if (fd < 0)
        return fd;
    int rl = snprintf(req, sizeof(req),
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", what);
    int r = write_all(fd, req, (size_t)rl);
    ssize_t n = r < 0 ? r : recv_until(fd, buf, size, "\n}");
    close(fd);
    if (n < 0)
        return (int)n;
    return strstr(buf, needle) ? 0 : -EPROTO;
}

static int cdp_get_version(char *buf, size_t size, int timeout_ms)
{
    return cdp_get("/json/version", "/devtools/browser/", buf, size, timeout_ms);
}

static int ms_until(double deadline)
{
    double left = (deadline - monotonic_s()) * 1000.0;
    return left < 1.0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

#define CDP_MSG_MAX 512 /* the longest command cdp_ws_call sends */

/* Sends one CDP command (msg, with "id":1) on the WebSocket at the
 * /devtools/... path named in buf's JSON after prefix, and waits until
 * deadline at most for its reply. Returns 0 once the command is sent (a
 * reply that does not come in time is no failure), else -errno. */
static int cdp_ws_call(char *buf, size_t size, const char *prefix, const char *msg, double deadline)
{
    char path[128];
    const char *p = strstr(buf, prefix);
    size_t plen = p ? strcspn(p, "\"") : 0;
    if (!p || plen == 0 || plen >= sizeof(path))
        return -EPROTO;
    memcpy(path, p, plen);
    path[plen] = '\0';

    int left = ms_until(deadline);
    if (left == 0)
        return -ETIMEDOUT;
    int fd = cdp_connect(left);
    if (fd < 0)
        return fd;
    /* The key only has to be well-formed: this client checks nothing
     * against it, and the peer is loopback. */
    int hn = snprintf(buf, size,
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n",
                      path);
    int r = write_all(fd, buf, (size_t)hn);
    ssize_t n = r < 0 ? r : recv_until(fd, buf, size, "\r\n\r\n");
    if (n < 0 || strncmp(buf, "HTTP/1.1 101", 12) != 0) {
        close(fd);
        return n < 0 ? (int)n : -EPROTO;
    }
    /* One masked text frame (7- or 16-bit length); a zero mask key is legal
     * and leaves the payload as is. */
    size_t ml = strlen(msg), hl = 2;
    char frame[4 + 4 + CDP_MSG_MAX];
    if (ml > CDP_MSG_MAX) {
        close(fd);
        return -EMSGSIZE;
    }
    frame[0] = (char)0x81;
    if (ml < 126) {
        frame[1] = (char)(0x80 | ml);
    } else {
        frame[1] = (char)(0x80 | 126);
        frame[2] = (char)(ml >> 8);
        frame[3] = (char)(ml & 0xff);
        hl = 4;
    }
    memset(frame + hl, 0, 4);
    memcpy(frame + hl + 4, msg, ml);
    r = write_all(fd, frame, hl + 4 + ml);
    if (r < 0) {
        close(fd);
        return r;
    }
    /* A browser busy under TCG may answer late; once sent, the command is
     * read before our close, so a missing reply is no failure. */
    if ((left = ms_until(deadline)) > 0) {
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        recv_until(fd, buf, size, "\"id\":1");
    }
    close(fd);
    return 0;
}

/* Sends CDP Browser.close over Chromium's own WebSocket endpoint and waits
 * a little for the reply. This is the one shutdown that writes the cookie store:
 * SIGTERM makes Chromium exit cleanly too, but measured here (Chromium 156)
 * a persistent cookie set seconds before was lost on SIGTERM and kept after
 * Browser.close. Returns 0 once the command is sent, else -errno. */
static int cdp_browser_close(double deadline)
{
    static char buf[16 * 1024];
    /* Every step gets what is left; 0 would mean "no timeout" to
     * SO_RCVTIMEO. */
    int left = ms_until(deadline);
    if (left == 0)
        return -ETIMEDOUT;
    int r = cdp_get_version(buf, sizeof(buf), left);
    if (r < 0)
        return r;
    double reply_by = monotonic_s() + CDP_REPLY_WAIT_MS / 1000.0;
    return cdp_ws_call(buf, sizeof(buf), "/devtools/browser/",
                       "{\"id\":1,\"method\":\"Browser.close\"}",
                       reply_by < deadline ? reply_by : deadline);
}

/* The first script a fresh Chromium runs under TCG takes many seconds (V8
 * compiles its builtins, the renderer pages in): run one before the guest
 * says it is ready, so the session's first CDP command does not pay for it.
 * The script waits for two animation frames, so the page has been painted
 * (the screen is no longer black) by the time the session is handed out.
 * Best effort: a browser that does not answer is still handed out. */
static void cdp_warm_up(void)
{
    static char buf[16 * 1024];
    double deadline = monotonic_s() + 90.0;
    double t0 = monotonic_s();
    int r = -ETIMEDOUT;

    while (monotonic_s() < deadline) {
        r = cdp_get("/json/list", "/devtools/page/", buf, sizeof(buf), ms_until(deadline));
        if (r == 0)
            break;
        sleep_ms(200);
    }
    if (r == 0)
        r = cdp_ws_call(buf, sizeof(buf), "/devtools/page/",
                        "{\"id\":1,\"method\":\"Runtime.evaluate\",\"params\":{"
                        "\"expression\":\"new Promise(r => requestAnimationFrame("
                        "() => requestAnimationFrame(() => r(1))))\",\"awaitPromise\":true}}",
                        deadline);
    if (r < 0)
        logmsg("browser warm-up: %s", strerror(-r));
    else
        logmsg("browser warm-up took %.1f s", monotonic_s() - t0);
}

/* Waits until none of Chromium's own processes is left, or timeout_ms.
 * Each gets a pidfd, readable once it has exited; the scan after each exit
 * also finds processes started meanwhile. */
static void chromium_wait_exit(struct chromium_proc *procs, size_t *n, int timeout_ms)
{
    double deadline = monotonic_s() + timeout_ms / 1000.0;
    struct pollfd fds[CHROMIUM_PROCS_MAX];

    while (chromium_count(procs, *n, true) > 0) {
        size_t k = 0;
        for (size_t i = 0; i < *n; i++) {
            int fd = procs[i].main_binary ? (int)syscall(SYS_pidfd_open, procs[i].pid, 0) : -1;
            if (fd >= 0)
                fds[k++] = (struct pollfd){.fd = fd, .events = POLLIN};
        }
        int left = ms_until(deadline);
        if (left == 0) {
            for (size_t i = 0; i < k; i++)
                close(fds[i].fd);
            return;
        }
        /* None opened: each had just exited (ESRCH), or a kernel without
         * pidfds; look again soon. */
        if (k == 0)
            sleep_ms(left < 50 ? left : 50);
        else if (poll(fds, k, left) < 0 && errno != EINTR)
            sleep_ms(left < 50 ? left : 50);
        for (size_t i = 0; i < k; i++)
            close(fds[i].fd);
        *n = chromium_scan(procs, CHROMIUM_PROCS_MAX);
    }
}

/* Stops every Chromium process: Browser.close over CDP (see above), SIGTERM
 * to the browser when that is refused or does not end it, and SIGKILL for
 * whatever is left. Waits for all of Chromium's processes, not just the
 * browser: the cookie store lives in the network service process. Returns
 * 0 once none is left, else -ETIMEDOUT. */
static int chromium_stop(void)
{
    static struct chromium_proc procs[CHROMIUM_PROCS_MAX];
    size_t n = chromium_scan(procs, CHROMIUM_PROCS_MAX);
    if (n == 0) {
        unlink(CHROMIUM_PID_FILE);
        return 0;
    }
    double deadline = monotonic_s() + CHROMIUM_STOP_GRACE_MS / 1000.0;
    int r = cdp_browser_close(deadline);
    if (r == 0) {
        chromium_wait_exit(procs, &n, ms_until(deadline));
    } else if (chromium_count(procs, n, true) > 0) {
        fprintf(stderr, "porthole-init: CDP Browser.close: %s; sending SIGTERM\n", strerror(-r));
    }
    if (chromium_count(procs, n, true) > 0) {
        pid_t recorded = chromium_pid_read();
        for (size_t i = 0; i < n; i++)
            if (procs[i].browser || (procs[i].main_binary && procs[i].pid == recorded))
                kill(procs[i].pid, SIGTERM);
        int left_ms = ms_until(deadline);
        chromium_wait_exit(procs, &n,
                           left_ms > CHROMIUM_TERM_MIN_MS ? left_ms : CHROMIUM_TERM_MIN_MS);
        if (chromium_count(procs, n, true) > 0)
            fprintf(stderr, "porthole-init: chromium still running after SIGTERM; killing\n");
    }

    /* Left now: a hung browser, or crashpad handlers, which outlive it. */
    deadline = monotonic_s() + CHROMIUM_KILL_WAIT_MS / 1000.0;
    while (n > 0 && monotonic_s() < deadline) {
        for (size_t i = 0; i < n; i++)
            kill(procs[i].pid, SIGKILL);
        sleep_ms(20);
        n = chromium_scan(procs, CHROMIUM_PROCS_MAX);
    }
    unlink(CHROMIUM_PID_FILE);
    return n == 0 ? 0 : -ETIMEDOUT;
}

/* Runs an X client on :0 with its stdout captured into out (NUL-terminated,
 * cut at out_size - 1; out may be NULL) and stderr passed on, or dropped when
 * quiet. Killed after timeout_ms. Returns the wait status, or -errno. */
static int x_command(char *const argv[], char *out, size_t out_size, bool quiet, int timeout_ms)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pfd[0]);
        close(pfd[1]);
        return -e;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            if (quiet)
                dup2(null, STDERR_FILENO);
        }
        dup2(pfd[1], STDOUT_FILENO);
        char *envp[] = {(char *)"PATH=" SYSTEM_PATH, (char *)"HOME=/root", (char *)"DISPLAY=:0",
                        NULL};
        execve(argv[0], argv, envp);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    bool timed_out = false;
    double deadline = monotonic_s() + timeout_ms / 1000.0;
    for (;;) {
        int left = (int)((deadline - monotonic_s()) * 1000.0);
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        char buf[4096];
        ssize_t k = read(pfd[0], buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        size_t room = out && out_size > len + 1 ? out_size - 1 - len : 0;
        size_t take = (size_t)k < room ? (size_t)k : room;
        if (take > 0)
            memcpy(out + len, buf, take);
        len += take;
    }
    if (out && out_size > 0)
        out[len] = '\0';
    close(pfd[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return timed_out ? -ETIMEDOUT : status;
}

/* The kernel passes on a tablet position only when it changes, and starts
 * from 0,0 while X starts its pointer mid-screen: a first move to 0,0 would
 * never arrive. Putting X's pointer at 0,0 makes the two agree. */
static void x_pointer_home(void)
{
    char *argv[] = {(char *)XDOTOOL_BIN, (char *)"mousemove", (char *)"0", (char *)"0", NULL};
    int st = x_command(argv, NULL, 0, false, XRANDR_TIMEOUT_MS);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        logmsg("xdotool mousemove 0 0 failed; a first pointer move to 0,0 may be lost");
}

/* Reads the screen size and the name of the connected output ("Virtual-1"
 * on virtio-gpu) from `xrandr --current`. */
static int x_screen_query(unsigned *width, unsigned *height, char *output, size_t output_size)
{
    static char out[XRANDR_OUTPUT_MAX];
    char *argv[] = {(char *)XRANDR_BIN, (char *)"--current", NULL};
    int st = x_command(argv, out, sizeof(out), false, XRANDR_TIMEOUT_MS);
    if (st < 0)
        return st;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -EIO;
    const char *cur = strstr(out, " current ");
    if (!cur || sscanf(cur, " current %u x %u", width, height) != 2)
        return -EPROTO;
    output[0] = '\0';
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *sp = strstr(line, " connected");
        if (!sp || line[0] == ' ')
            continue;
        size_t len = (size_t)(sp - line);
        if (len == 0 || len >= output_size)
            continue;
        memcpy(output, line, len);
        output[len] = '\0';
        break;
    }
    return output[0] ? 0 : -ENODEV;
}

/* virtio-gpu takes any mode the X server defines, and QEMU's display (and
 * so its VNC server) follows the screen size, so VNC clients get the new
 * size as a desktop-size update. */
static int x_screen_resize(unsigned width, unsigned height)
{
    unsigned cur_w, cur_h;
    char output[64];
    int r = x_screen_query(&cur_w, &cur_h, output, sizeof(output));
    if (r < 0) {
        fprintf(stderr, "porthole-init: xrandr --current on :0: %s\n", strerror(-r));
        return r;
    }
    if (cur_w == width && cur_h == height)
        return 0;
    char mode[48], clock[32], w[16], h[16];
    snprintf(mode, sizeof(mode), "porthole-%ux%u", width, height);
    snprintf(clock, sizeof(clock), "%.2f", (double)width * height * 60.0 / 1e6);
    snprintf(w, sizeof(w), "%u", width);
    snprintf(h, sizeof(h), "%u", height);
    /* A mode left by an earlier resize makes these two fail, harmlessly. */
    char *newmode[] = {
        (char *)XRANDR_BIN, (char *)"--newmode", mode, clock, w, w, w, w, h, h, h, h, NULL};
    x_command(newmode, NULL, 0, true, XRANDR_TIMEOUT_MS);
    char *addmode[] = {(char *)XRANDR_BIN, (char *)"--addmode", output, mode, NULL};
    x_command(addmode, NULL, 0, true, XRANDR_TIMEOUT_MS);
    char *setmode[] = {
        (char *)XRANDR_BIN, (char *)"--output", output, (char *)"--mode", mode, NULL};
    r = x_command(setmode, NULL, 0, false, XRANDR_TIMEOUT_MS);
    if (r >= 0)
        r = x_screen_query(&cur_w, &cur_h, output, sizeof(output));
    if (r < 0 || cur_w != width || cur_h != height) {
        fprintf(stderr, "porthole-init: resizing :0 to %ux%u failed (screen is %ux%u)\n", width,
                height, cur_w, cur_h);
        return r < 0 ? r : -EIO;
    }
    return 0;
}

static bool x_server_alive(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", X_SOCKET);
    bool ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return ok;
}

/* A guest booted headless has no X server; live mode needs one. */
static int x_server_ensure(void)
{
    if (x_server_alive())
        return 0;
    struct child *xorg = xorg_start(true);
    if (!xorg)
        return -ECHILD;
    double deadline = monotonic_s() + X_START_MS / 1000.0;
    while (!x_server_alive()) {
        int status;
        if (waitpid(xorg->pid, &status, WNOHANG) == xorg->pid) {
            char why[32];
            describe_status(status, why, sizeof(why));
            fprintf(stderr, "porthole-init: Xorg exited (%s); see " XORG_LOG "\n", why);
            return -ECHILD;
        }
        if (monotonic_s() >= deadline)
            return -ETIMEDOUT;
        sleep_ms(20);
    }
    x_pointer_home();
    wm_start(true);
    return 0;
}

/* The relay PID 1 started survives Chromium restarts (it connects to 9222
 * per client); start one only if none listens. */
static void relay_ensure(void)
{
    if (tcp_listening(RELAY_PORT))
        return;
    pid_t pid = fork();
    if (pid != 0)
        return;
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0)
        for (int i = 0; i < 3; i++)
            dup2(null, i);
    /* Exec'ed afresh so it keeps none of this ssh session's environment:
     * the host kills whatever carries a timed-out run's PORTHOLE_RUN_ID. */
    char port_listen[8], port_target[8];
    snprintf(port_listen, sizeof(port_listen), "%d", RELAY_PORT);
    snprintf(port_target, sizeof(port_target), "%d", CDP_PORT);
    char *argv[] = {(char *)"porthole-init", (char *)"relay", port_listen, port_target, NULL};
    execve("/proc/self/exe", argv, default_env);
    _exit(127);
}

/* Serializes browser-configure and browser-stop; released at exit. */
static int browser_lock(void)
{
    int r = mkdir_p(RUN_DIR, 0755);
    if (r < 0)
        return r;
    int fd = open(BROWSER_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            return -errno;
    return fd;
}

static int browser_fail(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int browser_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "porthole-init %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int browser_stop_main(void)
{
    int lock = browser_lock();
    if (lock < 0)
        return browser_fail("browser-stop", "lock " BROWSER_LOCK ": %s", strerror(-lock));
    if (chromium_stop() < 0)
        return browser_fail("browser-stop", "chromium processes survived SIGKILL");
    printf("stopped\n");
    return 0;
}

/* stdin is a whole config, as at boot: keys left out take their defaults.
 * The env= lines reach Chromium and, as at boot, login shells. */
static int browser_configure_main(void)
{
    const char *cmd = "browser-configure";
    static char text[CONFIG_MAX + 1];
    ssize_t n = read_fd_all(STDIN_FILENO, text, CONFIG_MAX);
    if (n < 0)
        return browser_fail(cmd, "reading the config from stdin: %s", strerror((int)-n));
    static struct config cfg;
    config_defaults(&cfg);
    cfg.kind = KIND_BROWSER;
    if (config_parse(&cfg, text) > 0)
        return browser_fail(cmd, "invalid config (lines named above)");
    if (access(CHROMIUM_BIN, X_OK) < 0)
        return browser_fail(cmd, CHROMIUM_BIN ": %s (not a browser image?)", strerror(errno));

    int lock = browser_lock();
    if (lock < 0)
        return browser_fail(cmd, "lock " BROWSER_LOCK ": %s", strerror(-lock));
    if (chromium_stop() < 0)
        return browser_fail(cmd, "old chromium processes survived SIGKILL");

    int r;
    if (!cfg.headless) {
        if ((r = x_server_ensure()) < 0)
            return browser_fail(cmd, "no X server on :0: %s", strerror(-r));
        if ((r = x_screen_resize(cfg.width, cfg.height)) < 0)
            return browser_fail(cmd, "cannot resize the screen to %ux%u: %s", cfg.width, cfg.height,
                                strerror(-r));
    }
    if ((r = policy_install(&cfg)) < 0)
        return browser_fail(cmd, "writing " POLICY_PATH ": %s", strerror(-r));
    env_install(&cfg);
    relay_ensure();

    struct child *chromium = chromium_start(&cfg, true);
    if (!chromium)
        return browser_fail(cmd, "cannot start chromium");
    /* "ready" promises that a CDP client is served now: Chromium answers
     * /json/version only once its DevTools handler runs, which under TCG can
     * be many seconds after the port is bound. */
    static char version[16 * 1024];
    int last_error = -ECONNREFUSED;
    double deadline = monotonic_s() + CHROMIUM_READY_MS / 1000.0;
    for (;;) {
        int status;
        if (waitpid(chromium->pid, &status, WNOHANG) == chromium->pid) {
            char why[32];
            describe_status(status, why, sizeof(why));
            return browser_fail(cmd, "chromium exited (%s) before serving CDP; see " CHROMIUM_LOG,
                                why);
        }
        if (tcp_listening(CDP_PORT) &&
            (last_error = cdp_get_version(version, sizeof(version), CDP_VERSION_WAIT_MS)) == 0)
            break;
        if (monotonic_s() >= deadline)
            return browser_fail(cmd, "chromium not serving CDP on port %d after %d s: %s", CDP_PORT,
                                CHROMIUM_READY_MS / 1000, strerror(-last_error));
        sleep_ms(50);
    }
    cdp_warm_up();
    printf("ready\n");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Clone refresh: a VM restored from a template takes an identity of its own */

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The template's kernel RNG state is in every clone's memory: mix the
 * host's seed in, credit it, and reseed the CRNG at once, so two clones'
 * random output differs from their first read on. */
static int rng_reseed(const char *hex)
{
    struct {
        int entropy_count;
        int buf_size;
        unsigned char buf[64];
    } add = {0};
    size_t n = strlen(hex) / 2;
    if (n == 0 || n > sizeof(add.buf) || strlen(hex) % 2)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        add.buf[i] = (unsigned char)(hi << 4 | lo);
    }
    add.buf_size = (int)n;
    add.entropy_count = (int)n * 8;
    int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = 0;
    if (ioctl(fd, RNDADDENTROPY, &add) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0)
        r = -errno;
    close(fd);
    explicit_bzero(&add, sizeof(add));
    return r;
}

/* Sets the clock to "SEC.NSEC" (the host's, when it sent it) and prints
 * "clock=SEC.NSEC" as read right after: the host compares that with its
 * own clock when the line arrives, and shifts the guest's by what the
 * command took to start (clock-shift). */
static int clock_set_main(const char *when)
{
    char *end = NULL;
    struct timespec ts = {.tv_sec = (time_t)strtoll(when, &end, 10)};
    if (end && *end == '.')
        ts.tv_nsec = strtol(end + 1, NULL, 10);
    if (ts.tv_sec <= 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000L ||
        clock_settime(CLOCK_REALTIME, &ts) < 0) {
        fprintf(stderr, "setting the clock: %s\n", strerror(errno ? errno : EINVAL));
        return 1;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("clock=%lld.%09ld\n", (long long)ts.tv_sec, ts.tv_nsec);
    fflush(stdout);
    return 0;
}

/* Moves the clock by NS nanoseconds (may be negative), however long this
 * command took to start. */
static int clock_shift_main(const char *arg)
{
    char *end = NULL;
    long long ns = strtoll(arg, &end, 10);
    if (!end || *end || ns <= -86400000000000LL || ns >= 86400000000000LL) {
        fprintf(stderr, "clock-shift: not a shift in nanoseconds: %s\n", arg);
        return 2;
    }
    struct timex tx = {.modes = ADJ_SETOFFSET | ADJ_NANO};
    tx.time.tv_sec = ns / 1000000000LL;
    tx.time.tv_usec = ns % 1000000000LL;
    if (tx.time.tv_usec < 0) {
        tx.time.tv_sec -= 1;
        tx.time.tv_usec += 1000000000L;
    }
    if (clock_adjtime(CLOCK_REALTIME, &tx) < 0) {
        fprintf(stderr, "clock-shift: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* stdin: the clone's identity, "authorized_key=LINE", "host_key=HEX" (its
 * sshd's private key file), "seed=HEX" (at most 64 bytes), "time=SEC.NSEC"
 * (the host's clock) and "machine_id=HEX32",
 * one per line, then a line "--" and the VM's config as at boot (its host
 * name, env vars and proxy are applied as boot applies them). */
static int clone_refresh_main(void)
{
    static char text[CONFIG_MAX + 16 * 1024];
    ssize_t n = read_fd_all(STDIN_FILENO, text, sizeof(text) - 1);
    if (n < 0) {
        fprintf(stderr, "clone-refresh: stdin: %s\n", strerror((int)-n));
        return 1;
    }
    const char *key = NULL, *seed = NULL, *when = NULL, *mid = NULL, *hostkey = NULL;
    char *config = NULL;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strcmp(line, "--") == 0) {
            config = next;
            break;
        }
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *val = eq + 1;
        if (strcmp(line, "authorized_key") == 0)
            key = val;
        else if (strcmp(line, "seed") == 0)
            seed = val;
        else if (strcmp(line, "time") == 0)
            when = val;
        else if (strcmp(line, "machine_id") == 0)
            mid = val;
        else if (strcmp(line, "host_key") == 0)
            hostkey = val;
    }
    static struct config cfg;
    config_defaults(&cfg);
    if (!config || config_parse(&cfg, config) > 0 || !key || strncmp(key, "ssh-", 4) != 0 ||
        !seed || !when || !mid || strlen(mid) != 32 || !hostkey || strlen(hostkey) % 2 ||
        strlen(hostkey) / 2 > HOST_KEY_MAX) {
        fprintf(stderr, "clone-refresh: incomplete or invalid input\n");
        return 1;
    }
    int r = rng_reseed(seed);
    if (r < 0) {
        fprintf(stderr, "clone-refresh: reseeding the RNG: %s\n", strerror(-r));
        return 1;
    }
    hostname_apply(&cfg);
    env_install(&cfg);
    char line[64];
    snprintf(line, sizeof(line), "%s\n", mid);
    write_string("/etc/machine-id", line, 0444);
    /* Its own host key: sshd reads it for every new connection. */
    static char hk[HOST_KEY_MAX];
    size_t hk_len = strlen(hostkey) / 2;
    for (size_t i = 0; i < hk_len; i++) {
        int hi = hex_nibble(hostkey[2 * i]), lo = hex_nibble(hostkey[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            fprintf(stderr, "clone-refresh: host_key is not hex\n");
            return 1;
        }
        hk[i] = (char)(hi << 4 | lo);
    }
    r = write_file(HOST_KEY_PATH, hk, hk_len, 0600);
    explicit_bzero(hk, hk_len);
    if (r < 0) {
        fprintf(stderr, "clone-refresh: " HOST_KEY_PATH ": %s\n", strerror(-r));
        return 1;
    }
    unlink(HOST_KEY_PATH ".pub");
    /* The template's key stops working here: only this clone's opens a
     * new session (the one running this command stays). */
    char keys[4096];
    if (snprintf(keys, sizeof(keys), "%s\n", key) >= (int)sizeof(keys) ||
        (r = write_string("/root/.ssh/authorized_keys", keys, 0600)) < 0) {
        fprintf(stderr, "clone-refresh: authorized_keys: %s\n", strerror(r < 0 ? -r : E2BIG));
        return 1;
    }
    /* Last, so that what the host measures is only the way back. */
    return clock_set_main(when);
}

/* ------------------------------------------------------------------------ */
/* Test modes (not PID 1)                                                   */

static int check_config(const char *path)
{
    static char text[CONFIG_MAX + 1];
    ssize_t n = read_file(path, text, CONFIG_MAX);
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror((int)-n));
        return 1;
    }
    static struct config cfg;
    config_defaults(&cfg);
    config_parse(&cfg, text);
    /* The buffers of env_install and policy_install: what fits here fits
     * in the guest. */
    static char env[ENV_SCRIPT_MAX], policy[POLICY_MAX];
    struct strbuf sb = {.data = env, .cap = sizeof(env)};
    if (env_script_build(&cfg, &sb) < 0)
        return 1;
    printf("hostname=%s\nkind=%s\nresize_root=%d\nbrowser.mode=%s\nbrowser.size=%ux%u\n"
           "browser.profile_dir=%s\n",
           cfg.hostname, cfg.kind == KIND_BROWSER ? "browser" : "sandbox", cfg.resize_root,
           cfg.headless ? "headless" : "live", cfg.width, cfg.height, cfg.profile_dir);
    printf("--- %s\n%s", ENV_SCRIPT, sb.data);
    sb = (struct strbuf){.data = policy, .cap = sizeof(policy)};
    if (policy_build(&cfg, &sb) < 0)
        return 1;
    printf("--- %s\n%s", POLICY_PATH, sb.data);
    return 0;
}

static int test_main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "browser-configure") == 0)
        return browser_configure_main();
    if (argc == 2 && strcmp(argv[1], "browser-stop") == 0)
        return browser_stop_main();
    if (argc == 2 && strcmp(argv[1], "clone-refresh") == 0)
        return clone_refresh_main();
    if (argc == 3 && strcmp(argv[1], "clock-set") == 0)
        return clock_set_main(argv[2]);
    if (argc == 3 && strcmp(argv[1], "clock-shift") == 0)
        return clock_shift_main(argv[2]);
    if (argc == 4 && strcmp(argv[1], "relay") == 0) {
        unsigned long lp = strtoul(argv[2], NULL, 10), tp = strtoul(argv[3], NULL, 10);
        if (lp == 0 || lp > 65535 || tp == 0 || tp > 65535)
            return 2;
        signal(SIGPIPE, SIG_IGN);
        relay_run((uint16_t)lp, (uint16_t)tp);
    }
    if (argc == 3 && strcmp(argv[1], "check-config") == 0)
        return check_config(argv[2]);
    fprintf(stderr,
            "porthole-init is the guest's PID 1.\n"
            "browser control (root): %s browser-configure < CONFIG | browser-stop\n"
            "clones (root): %s clone-refresh < IDENTITY | clock-set SEC.NSEC | clock-shift NS\n"
            "test modes: %s relay LISTEN_PORT TARGET_PORT | check-config FILE\n",
            argv[0], argv[0], argv[0]);
    return 2;
}

int main(int argc, char **argv)
{
    if (getpid() != 1)
        return test_main(argc, argv);
    umask(022);
    setenv("PATH", SYSTEM_PATH, 1);
    signals_setup();
    /* Let ctrl-alt-del reach us as SIGINT instead of an instant reboot. */
    reboot(RB_DISABLE_CAD);
    if (path_exists(STAGE1_MARKER))
        stage1();
    stage2();
}
