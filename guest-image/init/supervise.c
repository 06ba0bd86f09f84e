/* Supervision: PID 1's signals, its children (spawn, reap), bounded waits
 * that keep reaping while they wait, and shutdown. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "init.h"

#define CHILDREN_MAX 16

/* An event source can go quiet for reasons of its own (Chromium's log on
 * a full disk takes no writes): every wait also looks at its condition
 * this often. A backstop, not the mechanism. */
#define WAIT_RECHECK_MS 1000
#define RUN_AND_WAIT_MS 60000

static struct child children[CHILDREN_MAX];
static sigset_t handled_signals;
/* PID 1's handled signals as an fd, so waits poll them beside their event;
 * -1 when not PID 1 (or signalfd failed: sigtimedwait then). */
static int signal_fd = -1;

static void noop_handler(int sig)
{
    (void)sig;
}

/* Signals stay blocked and are taken from a signalfd (or sigtimedwait()),
 * so PID 1 never runs code from a handler. The handlers exist because the
 * kernel drops signals to init whose disposition is SIG_DFL. */
void signals_setup(void)
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
    signal_fd = signalfd(-1, &handled_signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0)
        logmsg("signalfd: %s; waits fall back to looking every %d ms", strerror(errno),
               WAIT_RECHECK_MS);
}

void child_reset_signals(void)
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

struct child *child_track(pid_t pid, const char *name)
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

void describe_status(int status, char *buf, size_t size)
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

char *default_env[] = {"PATH=" SYSTEM_PATH, "HOME=/root", "LANG=C.UTF-8", "TERM=linux", NULL};

struct child *spawn(const char *name, char *const argv[], const struct spawn_opts *opts)
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
        if (opts && opts->pass_fd) {
            /* dup2 clears FD_CLOEXEC on the copy; onto itself it would not. */
            if (*opts->pass_fd == 3)
                fcntl(3, F_SETFD, 0);
            else
                dup2(*opts->pass_fd, 3);
        }
        if (opts && opts->detach)
            close_range(opts->pass_fd ? 4 : 3, ~0U, 0);
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

static void signal_act(int sig)
{
    if (sig == SIGTERM)
        shutdown_system("SIGTERM");
    if (sig == SIGINT)
        shutdown_system("SIGINT (ctrl-alt-del)");
    if (sig == SIGPWR)
        shutdown_system("SIGPWR");
}

/* Waits up to timeout_ms for handled signals and acts on them: reaps on
 * SIGCHLD, shuts down on the power signals. */
void service_signals(int timeout_ms)
{
    if (signal_fd >= 0) {
        struct pollfd p = {.fd = signal_fd, .events = POLLIN};
        struct signalfd_siginfo si;
        if (timeout_ms > 0)
            poll(&p, 1, timeout_ms);
        while (read(signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
            signal_act((int)si.ssi_signo);
    } else {
        struct timespec ts = {.tv_sec = timeout_ms / 1000,
                              .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
        siginfo_t info;
        signal_act(sigtimedwait(&handled_signals, &info, &ts));
    }
    reap_children();
}

void fd_drain(int fd)
{
    /* Big enough for any inotify event (a smaller read is EINVAL). */
    char buf[4096] __attribute__((aligned(8)));
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        return;
    }
}

bool wait_until(int wake_fd, wait_cond cond, void *arg, int timeout_ms, const struct child *needed)
{
    bool pid1 = getpid() == 1, held = false;
    double deadline = monotonic_s() + timeout_ms / 1000.0;
    /* Not PID 1, no SIGCHLD comes here: the child's pidfd says it ended. */
    int pidfd = !pid1 && needed ? (int)syscall(SYS_pidfd_open, needed->pid, 0) : -1;

    for (;;) {
        if (cond(arg)) {
            held = true;
            break;
        }
        if (needed && needed->exited)
            break;
        int left = ms_until(deadline);
        if (left == 0)
            break;
        if (left > WAIT_RECHECK_MS)
            left = WAIT_RECHECK_MS;
        struct pollfd p[3];
        nfds_t n = 0;
        if (wake_fd >= 0)
            p[n++] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
        if (pid1 && signal_fd >= 0)
            p[n++] = (struct pollfd){.fd = signal_fd, .events = POLLIN};
        if (pidfd >= 0)
            p[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        if (pid1 && signal_fd < 0 && left > 50)
            left = 50; /* sigtimedwait below takes nothing while we sleep */
        if (poll(p, n, left) < 0 && errno != EINTR)
            sleep_ms(left);
        /* A source whose writers are gone (a pipe's EOF) would poll
         * readable forever: what it said is read by cond, then it goes. */
        if (wake_fd >= 0 && (p[0].revents & (POLLHUP | POLLERR)) && !(p[0].revents & POLLIN)) {
            if (cond(arg)) {
                held = true;
                break;
            }
            wake_fd = -1;
        }
        if (pid1)
            service_signals(0);
        else
            reap_children();
    }
    if (pidfd >= 0)
        close(pidfd);
    return held;
}

struct watched {
    int fd;
    wait_cond check;
    void *arg;
};

static bool cond_watched(void *arg)
{
    struct watched *w = arg;
    if (w->fd >= 0)
        fd_drain(w->fd);
    return w->check(w->arg);
}

bool wait_watched(int fd, wait_cond check, void *arg, int timeout_ms, const struct child *needed)
{
    struct watched w = {.fd = fd, .check = check, .arg = arg};
    return wait_until(fd, cond_watched, &w, timeout_ms, needed);
}

bool cond_path_exists(void *arg)
{
    return path_exists(arg);
}

bool cond_child_exited(void *arg)
{
    return ((const struct child *)arg)->exited;
}

bool cond_port_listening(void *arg)
{
    return tcp_listening(*(const uint16_t *)arg);
}

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
        int left = ms_until(deadline);
        if (left == 0)
            return false;
        /* Returns at the next SIGCHLD (or any handled signal). */
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (long)(left % 1000) * 1000000L};
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

void run_and_wait(const char *name, char *const argv[])
{
    struct child *c = spawn(name, argv, NULL);
    if (!c)
        return;
    if (wait_until(-1, cond_child_exited, c, RUN_AND_WAIT_MS, NULL))
        return;
    logmsg("%s still running after %d s; killing it", name, RUN_AND_WAIT_MS / 1000);
    kill(c->pid, SIGKILL);
    wait_until(-1, cond_child_exited, c, 5000, NULL);
}
