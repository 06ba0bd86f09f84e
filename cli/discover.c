/* Which gateway the CLI talks to, and starting a local one on demand.
 *
 * PORTHOLE_URL wins. Otherwise the gateway of the state dir: it records
 * STATE/gateway.json {"url","pid"} and STATE/token when it starts. When
 * nothing answers there, the CLI starts `porthole gateway` in the background
 * (own session, log in STATE/gateway.log) and waits for its "ready URL" line
 * on a pipe: readiness is a message, never a sleep. STATE/gateway.lock
 * serializes the check-then-start, so two CLIs started at once share one
 * gateway instead of racing for the port. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "httpc.h"
#include "util.h"

#define DISCOVER_PROBE_TIMEOUT_MS 2000
#define DISCOVER_MAX_FILE (64 * 1024)

int discover_probe(const char *url, int timeout_ms, char *version, size_t version_len)
{
    struct httpc_url u;
    struct httpc_request req = HTTPC_REQUEST_INIT("GET", "/healthz");
    struct httpc_response resp;
    json_t *root;
    const char *status, *ver;
    int r;

    r = httpc_url_parse(url, &u);
    if (r < 0)
        return r;
    req.connect_timeout_ms = timeout_ms;
    req.timeout_ms = timeout_ms;
    req.max_body = 64 * 1024;
    r = httpc_do(&u, &req, &resp);
    if (r < 0)
        return r;
    root = resp.status == 200 ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    httpc_response_done(&resp);
    status = json_str(root, "status");
    if (!status || strcmp(status, "ok") != 0) {
        json_decref(root);
        return -EPROTO;
    }
    ver = json_str(root, "version");
    if (version && version_len)
        snprintf(version, version_len, "%s", ver ? ver : "");
    json_decref(root);
    return 0;
}

/* The url and pid a local gateway recorded; -ENOENT when none did. */
static int read_gateway_json(const char *state, char *url, size_t url_len, long *pid)
{
    _cleanup_free_ char *path = NULL, *data = NULL;
    json_t *root, *p;
    const char *u;
    size_t len;
    int r;

    if (asprintf(&path, "%s/gateway.json", state) < 0)
        return -ENOMEM;
    r = read_file(path, &data, &len, DISCOVER_MAX_FILE);
    if (r < 0)
        return r;
    root = json_loadb(data, len, 0, NULL);
    u = json_str(root, "url");
    if (!u || strlen(u) >= url_len) {
        json_decref(root);
        return -EINVAL;
    }
    snprintf(url, url_len, "%s", u);
    p = json_object_get(root, "pid");
    *pid = json_is_integer(p) ? (long)json_integer_value(p) : 0;
    json_decref(root);
    return 0;
}

/* True when pid is alive and looks like a `porthole gateway` (pids get reused). */
static bool gateway_pid_alive(long pid)
{
    char path[64], cmd[512];
    ssize_t n;
    int fd;

    if (pid <= 1 || kill((pid_t)pid, 0) < 0)
        return false;
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true; /* alive, cannot tell more */
    n = read(fd, cmd, sizeof(cmd) - 1);
    close(fd);
    if (n <= 0)
        return false;
    cmd[n] = '\0';
    /* argv[1] follows argv[0]'s NUL. */
    size_t a0 = strlen(cmd);
    return (size_t)n > a0 + 1 && strcmp(cmd + a0 + 1, "gateway") == 0;
}

static char *read_token_file(const char *state)
{
    _cleanup_free_ char *path = NULL;
    char *data = NULL;
    size_t len;

    if (asprintf(&path, "%s/token", state) < 0)
        return NULL;
    if (read_file(path, &data, &len, 4096) < 0)
        return NULL;
    while (len > 0 && strchr(" \t\r\n", data[len - 1]))
        data[--len] = '\0';
    if (len == 0 || strpbrk(data, "\r\n")) {
        free(data);
        return NULL;
    }
    return data;
}

/* The last non-empty line of the gateway's log, for a failure message. */
static void log_last_line(const char *log_path, char *out, size_t out_len)
{
    char buf[2048];
    struct stat st;
    ssize_t n;
    int fd;

    out[0] = '\0';
    fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof(buf) - 1)
        lseek(fd, st.st_size - (off_t)sizeof(buf) + 1, SEEK_SET);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
        n--;
    buf[n] = '\0';
    char *line = strrchr(buf, '\n');
    cli_copy(out, out_len, line ? line + 1 : buf);
}

/* Moves fd above the standard ones so the child's dup2 calls cannot clobber it. */
static int fd_high(int *fd)
{
    int r = fcntl(*fd, F_DUPFD_CLOEXEC, 10);
    if (r < 0)
        return -errno;
    close(*fd);
    *fd = r;
    return 0;
}

static int start_local_gateway(struct cli_ctx *c, const char *state, char *url, size_t url_len,
                               struct cli_error *err)
{
    _cleanup_free_ char *log_path = NULL;
    _cleanup_close_ int rd = -1, wr = -1, log_fd = -1, null_fd = -1;
    char *argv[] = {"porthole",    "gateway",  "--state-dir",
                    (char *)state, "--listen", DISCOVER_LOCAL_LISTEN,
                    "--ready-fd",  "3",        NULL};
    char line[1200], tail[300];
    size_t have = 0;
    int64_t deadline;
    int pipefd[2], status;
    pid_t pid;

    if (asprintf(&log_path, "%s/gateway.log", state) < 0)
        return cli_error_set(err, 1, "internal", NULL, -ENOMEM, "out of memory");
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return cli_error_set(err, 1, "internal", NULL, -errno, "pipe: %m");
    rd = pipefd[0];
    wr = pipefd[1];
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
    if (log_fd < 0)
        return cli_error_set(err, 1, "gateway_start_failed", NULL, -errno, "cannot open %s: %m",
                             log_path);
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0)
        return cli_error_set(err, 1, "internal", NULL, -errno, "/dev/null: %m");
    if (fd_high(&wr) < 0 || fd_high(&log_fd) < 0 || fd_high(&null_fd) < 0)
        return cli_error_set(err, 1, "internal", NULL, -errno, "fcntl: %m");

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return cli_error_set(err, 1, "gateway_start_failed", NULL, -errno, "fork: %m");
    if (pid == 0) {
        /* Its own session: a Ctrl-C aimed at this CLI must not stop the
         * gateway that other clients and running sandboxes depend on. */
        setsid();
        if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0 || dup2(wr, 3) < 0)
            _exit(127);
        close_range(4, ~0U, 0);
        execv("/proc/self/exe", argv);
        dprintf(2, "porthole: cannot exec /proc/self/exe: %m\n");
        _exit(127);
    }
    close(TAKE_FD(wr));

    deadline = now_ms() + DISCOVER_READY_TIMEOUT_MS;
    for (;;) {
        struct pollfd pfd = {.fd = rd, .events = POLLIN};
        int64_t left = deadline - now_ms();
        ssize_t n;
        int r;

        if (left <= 0) {
            kill(pid, SIGTERM);
            char hint[PATH_MAX + 8];
            snprintf(hint, sizeof(hint), "see %s", log_path);
            return cli_error_set(err, 1, "gateway_start_failed", hint, -ETIMEDOUT,
                                 "the local gateway did not become ready within %d s (log: %s)",
                                 DISCOVER_READY_TIMEOUT_MS / 1000, log_path);
        }
        r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno != EINTR)
            return cli_error_set(err, 1, "internal", NULL, -errno, "poll: %m");
        if (r <= 0)
            continue;
        n = read(rd, line + have, sizeof(line) - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* EOF before a ready line: it exited (bad config, port taken). */
            pid_t w = waitpid(pid, &status, WNOHANG);
            log_last_line(log_path, tail, sizeof(tail));
            cli_error_set(err, 1, "gateway_start_failed", NULL, -ECHILD,
                          "the local gateway exited before it was ready%s%s (log: %s)",
                          tail[0] ? ": " : "", tail, log_path);
            snprintf(err->recovery, sizeof(err->recovery),
                     "read %s; if another program uses %s, set PORTHOLE_URL to a running "
                     "gateway",
                     log_path, DISCOVER_LOCAL_LISTEN);
            if (w == 0)
                kill(pid, SIGTERM);
            return -ECHILD;
        }
        have += (size_t)n;
        line[have] = '\0';
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
            break;
        }
        if (have >= sizeof(line) - 1)
            break;
    }
    if (strncmp(line, "ready ", 6) != 0 || strlen(line + 6) >= url_len) {
        kill(pid, SIGTERM);
        return cli_error_set(err, 1, "gateway_start_failed", NULL, -EPROTO,
                             "the local gateway sent an unexpected readiness line");
    }
    snprintf(url, url_len, "%s", line + 6);
    cli_notice(c, "started a local gateway at %s (pid %d, log: %s)", url, (int)pid, log_path);
    return 0;
}

static int discover_local(struct cli_ctx *c, bool autostart, struct api *api, struct cli_error *err)
{
    _cleanup_free_ char *state = cli_state_dir(c), *lock_path = NULL;
    _cleanup_close_ int lock_fd = -1;
    char url[sizeof(api->url)];
    const char *env_token = getenv("PORTHOLE_TOKEN");
    long pid = 0;
    int r;

    if (!state)
        return cli_error_set(err, 1, "internal", NULL, -ENOMEM, "out of memory");
    r = read_gateway_json(state, url, sizeof(url), &pid);
    if (r < 0 || discover_probe(url, DISCOVER_PROBE_TIMEOUT_MS, NULL, 0) < 0) {
        if (!autostart)
            return cli_error_set(err, 1, "gateway_unreachable",
                                 "run: porthole gateway (or any command that needs it starts one)",
                                 -ECONNREFUSED, "no local gateway answers for state dir %s", state);
        r = mkdir_p(state, 0700);
        if (r < 0)
            return cli_error_set(err, 1, "state_dir_unusable", "pass --state-dir DIR", r,
                                 "cannot create state dir %s: %s", state, strerror(-r));
        if (asprintf(&lock_path, "%s/gateway.lock", state) < 0)
            return cli_error_set(err, 1, "internal", NULL, -ENOMEM, "out of memory");
        lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0)
            return cli_error_set(err, 1, "state_dir_unusable", NULL, -errno, "cannot lock %s: %m",
                                 lock_path);
        /* Another CLI may have started it while we waited for the lock. */
        r = read_gateway_json(state, url, sizeof(url), &pid);
        if (r < 0 || discover_probe(url, DISCOVER_PROBE_TIMEOUT_MS, NULL, 0) < 0) {
            if (r == 0 && gateway_pid_alive(pid)) {
                char hint[300];
                snprintf(hint, sizeof(hint), "see %s/gateway.log; stop it (kill %ld) and retry",
                         state, pid);
                return cli_error_set(err, 1, "gateway_unreachable", hint, -ECONNREFUSED,
                                     "the local gateway (pid %ld) runs but does not answer at %s",
                                     pid, url);
            }
            r = start_local_gateway(c, state, url, sizeof(url), err);
            if (r < 0)
                return r;
        }
    }
    snprintf(api->url, sizeof(api->url), "%s", url);
    free(api->token);
    api->token = env_token && *env_token ? strdup(env_token) : read_token_file(state);
    return 0;
}

int discover_gateway(struct cli_ctx *c, bool autostart, struct api *api, struct cli_error *err)
{
    const char *env_url = getenv("PORTHOLE_URL");
    const char *env_token = getenv("PORTHOLE_TOKEN");
    struct httpc_url u;

    api->c = c;
    if (!env_url || !*env_url)
        return discover_local(c, autostart, api, err);
    if (strlen(env_url) >= sizeof(api->url) || httpc_url_parse(env_url, &u) < 0)
        return cli_error_set(err, 1, "invalid_url", "set PORTHOLE_URL to http://HOST:PORT", -EINVAL,
                             "PORTHOLE_URL is not an http:// URL: %.200s", env_url);
    snprintf(api->url, sizeof(api->url), "%s", env_url);
    /* Never send the local state dir's token to a gateway named by URL: it
     * may be another machine. */
    free(api->token);
    api->token = env_token && *env_token ? strdup(env_token) : NULL;
    return 0;
}
