/* Supervision: PID 1's signals, its children (spawn, reap), bounded waits
 * that keep reaping while they wait, and shutdown. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "init.h"

#define CHILDREN_MAX 16

static struct child children[CHILDREN_MAX];
static sigset_t handled_signals;

static void noop_handler(int sig)
{
    (void)sig;
}

/* Signals stay blocked and are taken with sigtimedwait(), so PID 1 never
 * runs code from a handler. The handlers exist because the kernel drops
 * signals to init whose disposition is SIG_DFL. */
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
void service_signals(int timeout_ms)
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

/* Polls cond every step_ms while still doing PID 1's work; a child that
 * the caller depends on dying ends the wait early. */
bool wait_for(wait_cond cond, const void *arg, int timeout_ms, int step_ms,
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

bool cond_path_exists(const void *arg)
{
    return path_exists(arg);
}

bool cond_port_listening(const void *arg)
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

void run_and_wait(const char *name, char *const argv[])
{
    struct child *c = spawn(name, argv, NULL);
    if (!c)
        return;
    while (!c->exited)
        service_signals(100);
}
