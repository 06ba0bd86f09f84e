/* The browser: Chromium's policy, start and stop, readiness at boot, and
 * the browser-configure and browser-stop commands the host runs over ssh. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cdp_wire.h"
#include "init.h"

/* Whoever starts Chromium (PID 1 at boot, browser-configure later) records
 * the browser process here, so the next stop finds it. */
#define CHROMIUM_PID_FILE RUN_DIR "/chromium.pid"
#define BROWSER_LOCK RUN_DIR "/browser.lock"
#define CHROMIUM_LIB_DIR "/usr/lib/chromium/"
#define CHROMIUM_BIN CHROMIUM_LIB_DIR "chromium"
#define CHROMIUM_LOG "/var/log/porthole-chromium.log"
#define HEADLESS_TOP_CHROME_PX 87
#define CHROMIUM_PROCS_MAX 512
/* For Browser.close, answering included. Longer than one would guess: under
 * TCG on a loaded host the whole close took up to 7.3 s, and a Chromium busy
 * starting up did not answer /json/version within 2 s; cutting it short
 * loses cookies. */
#define CHROMIUM_STOP_GRACE_MS 10000
/* SIGTERM's own grace when Browser.close used up the first one. */
#define CHROMIUM_TERM_MIN_MS 3000
#define CDP_VERSION_WAIT_MS 5000
#define CHROMIUM_KILL_WAIT_MS 5000
#define CHROMIUM_READY_MS 60000

static const char *first_existing(const char *a, const char *b)
{
    return access(a, X_OK) == 0 ? a : b;
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

/* Chromium prints "DevTools listening on ws://..." right after it binds
 * its debugging port, so a write to its log is when to look at the port:
 * an inotify fd on the log (made first, so the watch exists before
 * Chromium starts), or -1. */
static int chromium_log_watch(void)
{
    int fd = open(CHROMIUM_LOG, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd >= 0)
        close(fd);
    int w = inotify_watch(CHROMIUM_LOG, IN_MODIFY);
    if (w < 0)
        logmsg("inotify on " CHROMIUM_LOG ": %s", strerror(-w));
    return w;
}

void browser_start(const struct config *cfg, struct child *xorg, int xorg_ready)
{
    if (!cfg->headless) {
        /* Chromium started before the X server serves exits at once. */
        if (!xorg || x_wait_ready(xorg, xorg_ready, X_START_MS) < 0) {
            emit_marker("PORTHOLE_ERROR browser: Xorg did not start (see " XORG_LOG ")");
            return;
        }
        logmsg("Xorg ready on :0");
        x_pointer_home();
        wm_start(false);
    }
    policy_install(cfg);
    int log_watch = chromium_log_watch();
    struct child *chromium = chromium_start(cfg, false);
    if (!chromium) {
        if (log_watch >= 0)
            if (log_watch >= 0)
                close(log_watch);
        emit_marker("PORTHOLE_ERROR browser: cannot start chromium");
        return;
    }
    relay_start();
    uint16_t port = CDP_PORT;
    /* First start in a fresh guest under TCG takes tens of seconds. */
    bool listening = wait_watched(log_watch, cond_port_listening, &port, 180000, chromium);
    if (log_watch >= 0)
        close(log_watch);
    if (!listening) {
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

int browser_stop_main(void)
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
int browser_configure_main(void)
{
    const char *cmd = "browser-configure";
    static char text[CONFIG_MAX + 1];
    ssize_t n = read_fd_all(STDIN_FILENO, text, CONFIG_MAX);
    if (n < 0)
        return browser_fail(cmd, "reading the config from stdin: %s", strerror((int)-n));
    static struct config cfg;
    config_defaults(&cfg);
    cfg.kind = KIND_BROWSER;
    if (config_parse(&cfg, text, config_reject_log, NULL) > 0)
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

    int log_watch = chromium_log_watch();
    struct child *chromium = chromium_start(&cfg, true);
    if (!chromium) {
        if (log_watch >= 0)
            if (log_watch >= 0)
                close(log_watch);
        return browser_fail(cmd, "cannot start chromium");
    }
    /* "ready" promises that a CDP client is served now: Chromium answers
     * /json/version only once its DevTools handler runs, which under TCG can
     * be many seconds after the port is bound. A request sent meanwhile is
     * answered then, so after the port each try blocks on Chromium, not on
     * a timer; the pause is for one that failed at once. */
    char devtools_path[CDP_PATH_MAX];
    int last_error = -ECONNREFUSED;
    double deadline = monotonic_s() + CHROMIUM_READY_MS / 1000.0;
    uint16_t port = CDP_PORT;
    for (;;) {
        bool listening =
            wait_watched(log_watch, cond_port_listening, &port, ms_until(deadline), chromium);
        if (listening && (last_error = cdp_get_version(devtools_path, sizeof(devtools_path),
                                                       CDP_VERSION_WAIT_MS)) == 0)
            break;
        if (chromium->exited) {
            char why[32];
            describe_status(chromium->status, why, sizeof(why));
            if (log_watch >= 0)
                close(log_watch);
            return browser_fail(cmd, "chromium exited (%s) before serving CDP; see " CHROMIUM_LOG,
                                why);
        }
        if (ms_until(deadline) == 0) {
            if (log_watch >= 0)
                close(log_watch);
            return browser_fail(cmd, "chromium not serving CDP on port %d after %d s: %s", CDP_PORT,
                                CHROMIUM_READY_MS / 1000, strerror(-last_error));
        }
        sleep_ms(50);
    }
    if (log_watch >= 0)
        close(log_watch);
    cdp_warm_up();
    printf("ready\n");
    return 0;
}
