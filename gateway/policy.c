#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "params.h"
#include "utf8.h"
#include "util.h"

#define POLICY_MAX_PATH 4096

struct policy {
    bool loaded;
    char **deny; /* owned: rules, whitespace-normalized */
    size_t n_deny;
    char *hook; /* owned, NULL if no hook program */
    int hook_timeout_s;
    char *audit_path; /* owned, NULL if no audit log */
    int audit_fd;     /* owned, -1 if unused */
    pthread_mutex_t audit_lock;
};

struct policy *policy_new(void)
{
    struct policy *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->audit_fd = -1;
    p->hook_timeout_s = POLICY_DEFAULT_HOOK_TIMEOUT_S;
    pthread_mutex_init(&p->audit_lock, NULL);
    return p;
}

void policy_free(struct policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_deny; i++)
        free(p->deny[i]);
    free(p->deny);
    free(p->hook);
    free(p->audit_path);
    if (p->audit_fd >= 0)
        close(p->audit_fd);
    pthread_mutex_destroy(&p->audit_lock);
    free(p);
}

/* ---- audit ---------------------------------------------------------- */

static void format_ts(char *buf, size_t len)
{
    int64_t ms = wall_ms();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char base[32];

    gmtime_r(&t, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", base, (int)(ms % 1000));
}

static int audit_write(struct policy *p, json_t *event)
{
    char ts[40];
    char *line;
    size_t len;
    int r = 0;

    if (!event)
        return -ENOMEM;
    if (p->audit_fd < 0) {
        json_decref(event);
        return 0;
    }
    if (!json_object_get(event, "ts")) {
        format_ts(ts, sizeof(ts));
        json_object_set_new(event, "ts", json_string(ts));
    }
    line = json_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(event);
    if (!line)
        return -ENOMEM;
    len = strlen(line);
    line[len++] = '\n'; /* json_dumps's NUL becomes the newline */

    /* One write() per line, under the lock, so lines from concurrent hooks
     * never interleave; O_APPEND keeps other writers' lines whole too. */
    pthread_mutex_lock(&p->audit_lock);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(p->audit_fd, line + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            break;
        }
        off += (size_t)n;
    }
    pthread_mutex_unlock(&p->audit_lock);
    free(line);
    return r;
}

void policy_audit_event(struct policy *p, json_t *event)
{
    if (!p) {
        json_decref(event);
        return;
    }
    audit_write(p, event);
}

static json_t *str_or_null(const char *s)
{
    return s ? utf8_json_string(s, strlen(s)) : json_null();
}

/* What the hook program reads, and what every run audit line starts
 * with: {vm_id, command, shell, timeout, actor}. */
static json_t *ctx_fields(json_t *o, const struct run_ctx *ctx)
{
    const char *cmd = ctx->command ? ctx->command : "";

    if (!o)
        return NULL;
    json_object_set_new(o, "vm_id", str_or_null(ctx->vm_id));
    json_object_set_new(o, "command", utf8_json_string(cmd, strlen(cmd)));
    json_object_set_new(o, "shell", json_string(run_shell_name(ctx->shell)));
    json_object_set_new(o, "timeout", json_integer(ctx->timeout_s));
    json_object_set_new(o, "actor", str_or_null(ctx->actor));
    return o;
}

/* An audit line for ctx, "ts" and "event" first for readers of the log. */
static json_t *ctx_event(const char *event, const struct run_ctx *ctx)
{
    json_t *o = json_object();
    char ts[40];

    if (!o)
        return NULL;
    format_ts(ts, sizeof(ts));
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "event", json_string(event));
    return ctx_fields(o, ctx);
}

void policy_audit_blocked(struct policy *p, const struct run_ctx *ctx, const char *reason)
{
    if (!p || p->audit_fd < 0)
        return;
    json_t *o = ctx_event("blocked", ctx);
    if (o)
        json_object_set_new(o, "reason",
                            utf8_json_string(reason ? reason : "", reason ? strlen(reason) : 0));
    audit_write(p, o);
}

static int audit_post(const struct run_ctx *ctx, void *data)
{
    struct policy *p = data;
    const struct run_result *res = ctx->result;
    json_t *o = ctx_event("run", ctx);

    if (o && res) {
        json_object_set_new(o, "exit_code", json_integer(res->exit_code));
        json_object_set_new(o, "duration_ms", json_integer(res->duration_ms));
        json_object_set_new(o, "stdout_bytes", json_integer((json_int_t)res->out_len));
        json_object_set_new(o, "stderr_bytes", json_integer((json_int_t)res->err_len));
        if (res->out_truncated)
            json_object_set_new(o, "stdout_truncated", json_true());
        if (res->err_truncated)
            json_object_set_new(o, "stderr_truncated", json_true());
    }
    return audit_write(p, o);
}

static int audit_error(const struct run_ctx *ctx, void *data)
{
    struct policy *p = data;
    const struct ph_error *e = ctx->error;
    json_t *o = ctx_event("error", ctx);

    if (o && e)
        json_object_set_new(o, "error",
                            json_pack("{s:s,s:o}", "code", ph_error_code(e->kind), "message",
                                      utf8_json_string(e->message, strlen(e->message))));
    return audit_write(p, o);
}

/* ---- deny list ------------------------------------------------------ */

/* Copies s with every run of whitespace turned into one space, so "rm  -rf
 * /" and "rm\t-rf /" meet the rule "rm -rf /". */
static char *squeeze_space(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    bool in_space = false;

    if (!out)
        return NULL;
    for (; *s; s++) {
        bool sp = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f';
        if (sp) {
            if (!in_space)
                *o++ = ' ';
            in_space = true;
        } else {
            *o++ = *s;
            in_space = false;
        }
    }
    *o = '\0';
    return out;
}

static int deny_pre(const struct run_ctx *ctx, void *data, char *reason, size_t reason_len)
{
    struct policy *p = data;
    _cleanup_free_ char *cmd = squeeze_space(ctx->command ? ctx->command : "");

    if (!cmd) {
        /* Fail closed: an unchecked command must not run. */
        snprintf(reason, reason_len, "policy check failed: out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < p->n_deny; i++) {
        if (!strstr(cmd, p->deny[i]))
            continue;
        snprintf(reason, reason_len, "command matches deny rule \"%s\"", p->deny[i]);
        policy_audit_blocked(p, ctx, reason);
        return -EPERM;
    }
    return 0;
}

/* ---- hook program --------------------------------------------------- */

/* write() that turns a closed reader into EPIPE without a process-wide
 * SIGPIPE, whatever the caller's signal disposition. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, old, pending;
    ssize_t n;
    int saved;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    n = write(fd, buf, len);
    saved = errno;
    if (n < 0 && saved == EPIPE && !sigismember(&old, SIGPIPE)) {
        /* Consume the SIGPIPE this write raised on our thread. */
        struct timespec zero = {0, 0};
        if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
            sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return n;
}

static int pidfd_open_compat(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Reason text from the hook's stdout: control characters become spaces,
 * surrounding whitespace goes. */
static void clean_reason(char *s)
{
    size_t len = strlen(s), start = 0;

    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            s[i] = ' ';
    while (len > 0 && s[len - 1] == ' ')
        s[--len] = '\0';
    while (s[start] == ' ')
        start++;
    memmove(s, s + start, len - start + 1);
}

struct hook_run {
    pid_t pid;
    int in_fd, out_fd, pidfd; /* owned, -1 when closed */
    char out[POLICY_MAX_HOOK_OUTPUT + 1];
    size_t out_len;
    bool exited;
    int status;
};

static int hook_spawn(struct policy *p, struct hook_run *h, struct ph_error *err)
{
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    char env_path[POLICY_MAX_PATH + 8], env_home[POLICY_MAX_PATH + 8];
    const char *path = getenv("PATH"), *home = getenv("HOME");
    char *envp[4] = {NULL};
    char *argv[] = {p->hook, NULL};
    size_t n_env = 0;
    int r;

    if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0) {
        r = -errno;
        close_fd(&in_pipe[0]);
        close_fd(&in_pipe[1]);
        return ph_error_set(err, PH_ERR_INTERNAL, r, "cannot create pipes: %s", strerror(-r));
    }

    snprintf(env_path, sizeof(env_path), "PATH=%s",
             path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    envp[n_env++] = env_path;
    if (home && *home) {
        snprintf(env_home, sizeof(env_home), "HOME=%s", home);
        envp[n_env++] = env_home;
    }
    envp[n_env++] = (char *)"PORTHOLE_HOOK=1";

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
    /* Only those: no descriptor of the gateway's (a client's socket, one a
     * library opened without O_CLOEXEC) reaches the hook. */
    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
    posix_spawnattr_init(&attr);
    /* Worker threads block every signal and the gateway ignores SIGPIPE;
     * the hook must start with neither. Its own process group lets a
     * timeout kill everything it started. */
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    r = posix_spawn(&h->pid, p->hook, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close_fd(&in_pipe[0]);
    close_fd(&out_pipe[1]);
    if (r != 0) {
        close_fd(&in_pipe[1]);
        close_fd(&out_pipe[0]);
        return ph_error_set(err, PH_ERR_BLOCKED, -r, "hook program %s cannot be started: %s",
                            p->hook, strerror(r));
    }
    h->in_fd = in_pipe[1];
    h->out_fd = out_pipe[0];
    fcntl(h->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(h->out_fd, F_SETFL, O_NONBLOCK);
    h->pidfd = pidfd_open_compat(h->pid);
    return 0;
}

static void hook_read(struct hook_run *h)
{
    char buf[4096];

    for (;;) {
        ssize_t n = read(h->out_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || errno != EAGAIN)
                close_fd(&h->out_fd);
            return;
        }
        /* Keep the first KiB, drain the rest so the hook never blocks on
         * a full pipe. */
        size_t keep = POLICY_MAX_HOOK_OUTPUT - h->out_len;
        if (keep > (size_t)n)
            keep = (size_t)n;
        memcpy(h->out + h->out_len, buf, keep);
        h->out_len += keep;
        h->out[h->out_len] = '\0';
    }
}

static bool hook_reap(struct hook_run *h, int flags)
{
    for (;;) {
        pid_t r = waitpid(h->pid, &h->status, flags);
        if (r == h->pid) {
            h->exited = true;
            return true;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            /* Somebody else reaped it (a waitpid(-1) elsewhere): the
             * verdict is unknown, so the caller blocks. */
            h->exited = true;
            h->status = -1;
            return true;
        }
        return false;
    }
}

/* Runs the hook on input; returns 0 to allow, -EPERM (reason filled) to
 * block. Never returns before the child is reaped. */
static int hook_check(struct policy *p, const char *input, size_t input_len, char *reason,
                      size_t reason_len)
{
    struct hook_run h = {.pid = -1, .in_fd = -1, .out_fd = -1, .pidfd = -1};
    struct ph_error err = {0};
    int64_t deadline = now_ms() + (int64_t)p->hook_timeout_s * 1000;
    size_t in_off = 0;
    bool timed_out = false;

    if (hook_spawn(p, &h, &err) < 0) {
        snprintf(reason, reason_len, "%s", err.message);
        return -EPERM;
    }

    while (!h.exited) {
        struct pollfd fds[3];
        nfds_t n = 0;
        int in_idx = -1, out_idx = -1, pid_idx = -1;

        if (h.in_fd >= 0) {
            in_idx = (int)n;
            fds[n++] = (struct pollfd){.fd = h.in_fd, .events = POLLOUT};
        }
        if (h.out_fd >= 0) {
            out_idx = (int)n;
            fds[n++] = (struct pollfd){.fd = h.out_fd, .events = POLLIN};
        }
        if (h.pidfd >= 0) {
            pid_idx = (int)n;
            fds[n++] = (struct pollfd){.fd = h.pidfd, .events = POLLIN};
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        /* Without a pidfd (kernel < 5.3) the exit is polled for. */
        int wait_ms = h.pidfd >= 0 ? (int)left : (int)(left < 20 ? left : 20);
        int pr = poll(fds, n, wait_ms);
        if (pr < 0 && errno != EINTR)
            break;

        if (in_idx >= 0 && (fds[in_idx].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write_nosigpipe(h.in_fd, input + in_off, input_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            /* A hook that does not read its input may still decide. */
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == input_len)
                close_fd(&h.in_fd);
        }
        if (out_idx >= 0 && (fds[out_idx].revents & (POLLIN | POLLHUP | POLLERR)))
            hook_read(&h);
        if (pid_idx >= 0 && !(fds[pid_idx].revents & POLLIN))
            continue;
        /* Exited (or no pidfd to say so): reap without blocking. Before
         * reaping, the zombie keeps its pid, so the group kill below can
         * hit nobody else; it clears out anything the hook left behind. */
        siginfo_t si = {0};
        if (waitid(P_PID, (id_t)h.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == h.pid)
            kill(-h.pid, SIGKILL);
        hook_reap(&h, WNOHANG);
    }

    if (!h.exited) {
        kill(-h.pid, SIGKILL);
        kill(h.pid, SIGKILL);
        hook_reap(&h, 0);
    }
    if (h.out_fd >= 0)
        hook_read(&h); /* whatever it wrote before exiting */
    close_fd(&h.in_fd);
    close_fd(&h.out_fd);
    close_fd(&h.pidfd);

    if (timed_out) {
        snprintf(reason, reason_len, "hook program timed out after %d s", p->hook_timeout_s);
        return -EPERM;
    }
    if (h.status == -1) {
        snprintf(reason, reason_len, "hook program %s: exit status unavailable", p->hook);
        return -EPERM;
    }
    if (WIFEXITED(h.status) && WEXITSTATUS(h.status) == 0)
        return 0;
    clean_reason(h.out);
    if (WIFSIGNALED(h.status))
        snprintf(reason, reason_len, "blocked by hook program (killed by signal %d)",
                 WTERMSIG(h.status));
    else if (h.out[0])
        snprintf(reason, reason_len, "%s", h.out);
    else
        snprintf(reason, reason_len, "blocked by hook program (exit %d)", WEXITSTATUS(h.status));
    return -EPERM;
}

static int hook_pre(const struct run_ctx *ctx, void *data, char *reason, size_t reason_len)
{
    struct policy *p = data;
    json_t *in = ctx_fields(json_object(), ctx);
    char *input = in ? json_dumps(in, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    int r;

    json_decref(in);
    if (!input) {
        snprintf(reason, reason_len, "policy check failed: out of memory");
        r = -ENOMEM;
    } else {
        r = hook_check(p, input, strlen(input), reason, reason_len);
    }
    free(input);
    if (r < 0)
        policy_audit_blocked(p, ctx, reason);
    return r;
}

/* ---- configuration -------------------------------------------------- */

static int load_deny(struct policy *p, json_t *v, struct ph_error *err)
{
    size_t i;
    json_t *rule;

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "deny must be an array of strings");
    if (json_array_size(v) > POLICY_MAX_DENY)
        return ph_error_set(err, PH_ERR_INVALID, -E2BIG, "deny holds more than %d rules",
                            POLICY_MAX_DENY);
    p->deny = calloc(json_array_size(v) + 1, sizeof(*p->deny));
    if (!p->deny)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    json_array_foreach(v, i, rule)
    {
        const char *s = json_string_value(rule);
        if (!s || strlen(s) != json_string_length(rule))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "deny[%zu] must be a string", i);
        char *norm = squeeze_space(s);
        if (!norm)
            return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        p->deny[p->n_deny++] = norm;
        /* An empty rule would match every command. */
        if (strlen(norm) == 0 || strcmp(norm, " ") == 0 || strlen(norm) > POLICY_MAX_DENY_LEN)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "deny[%zu] must hold 1..%d characters besides whitespace", i,
                                POLICY_MAX_DENY_LEN);
    }
    return 0;
}

static int open_audit(struct policy *p, const char *path, struct ph_error *err)
{
    _cleanup_free_ char *dir = strdup(path);
    struct stat st;
    int fd, r;

    if (!dir)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        r = mkdir_p(dir, 0700);
        if (r < 0)
            return ph_error_set(err, PH_ERR_INVALID, r, "cannot create %s: %s", dir, strerror(-r));
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0)
        return ph_error_set(err, PH_ERR_INVALID, -errno, "cannot open audit log %s: %s", path,
                            strerror(errno));
    /* An existing log keeps its mode on open; audit lines hold commands,
     * which may hold secrets. */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        ((st.st_mode & 077) && fchmod(fd, 0600) < 0)) {
        close(fd);
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "audit log %s must be a regular file we may restrict to 0600", path);
    }
    p->audit_fd = fd;
    return 0;
}

int policy_load(struct policy *p, json_t *config, struct ph_error *err)
{
    const char *hook = NULL, *audit = NULL;
    int r;

    if (p->loaded)
        return ph_error_set(err, PH_ERR_INTERNAL, -EALREADY, "policy already loaded");
    p->loaded = true;
    if (!config || json_is_null(config))
        return 0;
    if (!json_is_object(config))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "policy config must be an object");

    r = load_deny(p, json_object_get(config, "deny"), err);
    if (r < 0)
        return r;
    r = params_string(config, "hook", NULL, POLICY_MAX_PATH, &hook, err);
    if (r < 0)
        return r;
    r = params_int(config, "hook_timeout_s", POLICY_DEFAULT_HOOK_TIMEOUT_S, 1,
                   POLICY_MAX_HOOK_TIMEOUT_S, &p->hook_timeout_s, err);
    if (r < 0)
        return r;
    r = params_string(config, "audit_log", NULL, POLICY_MAX_PATH, &audit, err);
    if (r < 0)
        return r;

    if (hook) {
        struct stat st;
        if (hook[0] != '/')
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "hook must be an absolute path");
        /* Caught here, a typo is a startup error; later it would block
         * every command (fail closed). */
        if (stat(hook, &st) < 0 || !S_ISREG(st.st_mode) || access(hook, X_OK) < 0)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "hook %s is not an executable file",
                                hook);
        if (!(p->hook = strdup(hook)))
            return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    if (audit) {
        if (audit[0] != '/')
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "audit_log must be an absolute path");
        if (!(p->audit_path = strdup(audit)))
            return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        r = open_audit(p, audit, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int policy_register(struct policy *p, struct run_hooks *global)
{
    int r;

    if (p->n_deny > 0 && (r = run_hooks_add_pre(global, deny_pre, p)) < 0)
        return r;
    if (p->hook && (r = run_hooks_add_pre(global, hook_pre, p)) < 0)
        return r;
    if (p->audit_fd >= 0) {
        if ((r = run_hooks_add_post(global, audit_post, p)) < 0)
            return r;
        if ((r = run_hooks_add_error(global, audit_error, p)) < 0)
            return r;
    }
    return 0;
}
