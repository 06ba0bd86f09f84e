/* Unit tests for gateway/policy.c: configuration checks, the deny list, hook
 * programs (small shell scripts in a temporary directory: allow, block
 * with a reason, silent block, timeout, killed, vanished, not reading its
 * input, too talkative) and the audit log read back with jansson. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "policy.h"
#include "run.h"
#include "util.h"

static char dir[] = "/tmp/test_policy.XXXXXX";

struct fake {
    int calls;
    bool fail;
};

static int fake_exec(void *data, const char *command, const struct run_request *req,
                     struct run_result *res, struct ph_error *err)
{
    struct fake *f = data;
    (void)command;
    f->calls++;
    if (f->fail)
        return ph_error_set(err, PH_ERR_TIMEOUT, -ETIMEDOUT, "command timed out after %d s",
                            req->timeout_s);
    res->exit_code = 3;
    res->out = strdup("hello");
    res->out_len = 5;
    res->err = strdup("oops\n");
    res->err_len = 5;
    res->duration_ms = 12;
    return 0;
}

static char *path_in_dir(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static const char *write_script(const char *name, const char *body)
{
    char *path = path_in_dir(name), text[4096];
    snprintf(text, sizeof(text), "#!/bin/sh\n%s\n", body);
    CHECK(write_file(path, text, strlen(text), 0755) == 0);
    return path;
}

static struct policy *load(json_t *config, struct ph_error *err)
{
    struct policy *p = policy_new();
    memset(err, 0, sizeof(*err));
    if (policy_load(p, config, err) < 0) {
        policy_free(p);
        p = NULL;
    }
    json_decref(config);
    return p;
}

/* Loads a config that must fail, with a message containing needle. */
static void load_fails(json_t *config, const char *needle)
{
    struct ph_error err;
    struct policy *p = load(config, &err);
    CHECK(p == NULL);
    if (p || !strstr(err.message, needle))
        fprintf(stderr, "  wanted an error with \"%s\", got \"%s\"\n", needle, err.message);
    CHECK(err.kind == PH_ERR_INVALID);
    policy_free(p);
}

static void test_config(void)
{
    struct ph_error err;
    struct policy *p;
    json_t *many = json_array();

    p = load(NULL, &err);
    CHECK(p != NULL);
    CHECK(policy_load(p, NULL, &err) == -EALREADY);
    policy_free(p);
    policy_free(NULL);

    /* Keys of other modules share the object and are not ours to judge. */
    p = load(json_pack("{s:i,s:[s]}", "max_sandboxes", 4, "deny", "mkfs"), &err);
    CHECK(p != NULL);
    policy_free(p);

    load_fails(json_pack("{s:s}", "deny", "mkfs"), "deny must be an array");
    load_fails(json_pack("{s:[i]}", "deny", 3), "deny[0] must be a string");
    load_fails(json_pack("{s:[s,s]}", "deny", "ok", ""), "deny[1]");
    load_fails(json_pack("{s:[s]}", "deny", " \t "), "deny[0]");
    for (int i = 0; i <= POLICY_MAX_DENY; i++)
        json_array_append_new(many, json_string("x"));
    load_fails(json_pack("{s:o}", "deny", many), "more than");
    load_fails(json_pack("{s:s}", "hook", "hook.sh"), "absolute path");
    load_fails(json_pack("{s:s}", "hook", path_in_dir("missing.sh")), "not an executable");
    CHECK(write_file(path_in_dir("plain.sh"), "#!/bin/sh\n", 10, 0644) == 0);
    load_fails(json_pack("{s:s}", "hook", path_in_dir("plain.sh")), "not an executable");
    load_fails(json_pack("{s:s}", "hook", dir), "not an executable");
    load_fails(json_pack("{s:i}", "hook_timeout_s", 0), "hook_timeout_s");
    load_fails(json_pack("{s:i}", "hook_timeout_s", POLICY_MAX_HOOK_TIMEOUT_S + 1),
               "hook_timeout_s");
    load_fails(json_pack("{s:s}", "hook_timeout_s", "10"), "hook_timeout_s");
    load_fails(json_pack("{s:s}", "audit_log", "audit.jsonl"), "absolute path");
    load_fails(json_pack("{s:s}", "audit_log", dir), "audit log");
}

/* Runs command through hooks with the fake transport. */
static int run(struct run_hooks *hooks, struct fake *f, const char *command, struct ph_error *err)
{
    struct run_transport t = {.vm_id = "sb-test1", .exec = fake_exec, .data = f};
    struct run_request req = RUN_REQUEST_INIT(command);
    struct run_result res;
    int r;

    req.actor = "admin";
    req.timeout_s = 7;
    memset(err, 0, sizeof(*err));
    r = run_command(&t, hooks, NULL, &req, &res, err);
    run_result_done(&res);
    return r;
}

/* The audit log's lines as JSON objects (a new array). */
static json_t *audit_lines(const char *path)
{
    char *data = NULL;
    json_t *arr = json_array();

    if (read_file(path, &data, NULL, 1 << 20) < 0)
        return arr;
    for (char *line = data, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        CHECK(nl != NULL); /* every line is complete */
        if (!nl)
            break;
        *nl = '\0';
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        CHECK(o && json_is_object(o));
        if (!o)
            fprintf(stderr, "  bad audit line: %s (%s)\n", line, je.text);
        else
            json_array_append_new(arr, o);
    }
    free(data);
    return arr;
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_int_t num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : -999;
}

/* "2026-11-22T10:00:00.123Z" */
static bool ts_ok(const char *ts)
{
    return ts && strlen(ts) == 24 && ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' &&
           ts[23] == 'Z';
}

static void test_deny_and_audit(void)
{
    const char *audit = path_in_dir("audit/log.jsonl");
    struct ph_error err;
    struct fake f = {0};
    struct stat st;
    struct policy *p =
        load(json_pack("{s:[s,s],s:s}", "deny", "rm -rf /", "mkfs", "audit_log", audit), &err);
    struct run_hooks *hooks = run_hooks_new();

    CHECK(p != NULL);
    if (!p)
        return;
    CHECK(policy_register(p, hooks) == 0);
    CHECK(stat(audit, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(stat(path_in_dir("audit"), &st) == 0 && (st.st_mode & 0777) == 0700);

    CHECK(run(hooks, &f, "echo hi", &err) == 0);
    CHECK(f.calls == 1);
    CHECK(run(hooks, &f, "sudo rm   -rf\t/ --no-preserve-root", &err) == -EPERM);
    CHECK(err.kind == PH_ERR_BLOCKED);
    CHECK_STR(err.message, "command matches deny rule \"rm -rf /\"");
    CHECK(run(hooks, &f, "mkfs.ext4 /dev/vda", &err) == -EPERM);
    CHECK_STR(err.message, "command matches deny rule \"mkfs\"");
    CHECK(run(hooks, &f, "rm -rf ./build", &err) == 0);
    CHECK(f.calls == 2); /* blocked commands never reached the transport */

    f.fail = true;
    CHECK(run(hooks, &f, "sleep 100", &err) == -ETIMEDOUT);
    CHECK(err.kind == PH_ERR_TIMEOUT);

    struct run_ctx other = {.vm_id = "sb-x", .command = "curl evil", .timeout_s = 30};
    policy_audit_blocked(p, &other, "blocked by the egress callback");
    policy_audit_event(p, json_pack("{s:s,s:s,s:s}", "event", "cdp", "session_id", "bs-1", "method",
                                    "Page.navigate"));
    policy_audit_event(p, json_pack("{s:s,s:s}", "ts", "fixed", "event", "custom"));
    /* Commands are bytes; the audit line stays valid JSON. */
    f.fail = false;
    CHECK(run(hooks, &f, "echo \xff\xfe", &err) == 0);

    json_t *lines = audit_lines(audit);
    CHECK(json_array_size(lines) == 9);
    if (json_array_size(lines) == 9) {
        json_t *l;

        l = json_array_get(lines, 0);
        CHECK_STR(str(l, "event"), "run");
        CHECK(ts_ok(str(l, "ts")));
        CHECK_STR(str(l, "vm_id"), "sb-test1");
        CHECK_STR(str(l, "actor"), "admin");
        CHECK_STR(str(l, "command"), "echo hi");
        CHECK_STR(str(l, "shell"), "login");
        CHECK(num(l, "timeout") == 7);
        CHECK(num(l, "exit_code") == 3);
        CHECK(num(l, "duration_ms") == 12);
        CHECK(num(l, "stdout_bytes") == 5);
        CHECK(num(l, "stderr_bytes") == 5);
        CHECK(!json_object_get(l, "reason") && !json_object_get(l, "error"));

        l = json_array_get(lines, 1);
        CHECK_STR(str(l, "event"), "blocked");
        CHECK_STR(str(l, "command"), "sudo rm   -rf\t/ --no-preserve-root");
        CHECK_STR(str(l, "reason"), "command matches deny rule \"rm -rf /\"");
        CHECK(!json_object_get(l, "exit_code"));

        l = json_array_get(lines, 2);
        CHECK_STR(str(l, "event"), "blocked");
        CHECK_STR(str(l, "command"), "mkfs.ext4 /dev/vda");

        l = json_array_get(lines, 3);
        CHECK_STR(str(l, "event"), "run");
        CHECK_STR(str(l, "command"), "rm -rf ./build");

        l = json_array_get(lines, 4);
        CHECK_STR(str(l, "event"), "error");
        CHECK_STR(str(l, "command"), "sleep 100");
        CHECK_STR(str(json_object_get(l, "error"), "code"), "timeout");
        CHECK_STR(str(json_object_get(l, "error"), "message"), "command timed out after 7 s");

        l = json_array_get(lines, 5);
        CHECK_STR(str(l, "event"), "blocked");
        CHECK_STR(str(l, "vm_id"), "sb-x");
        CHECK(json_is_null(json_object_get(l, "actor")));
        CHECK_STR(str(l, "reason"), "blocked by the egress callback");

        l = json_array_get(lines, 6);
        CHECK_STR(str(l, "event"), "cdp");
        CHECK_STR(str(l, "method"), "Page.navigate");
        CHECK(ts_ok(str(l, "ts")));

        l = json_array_get(lines, 7);
        CHECK_STR(str(l, "ts"), "fixed"); /* a caller's ts is kept */

        l = json_array_get(lines, 8);
        CHECK_STR(str(l, "command"), "echo \xef\xbf\xbd\xef\xbf\xbd");
    }
    json_decref(lines);
    run_hooks_free(hooks);
    policy_free(p);

    /* A wider existing log is narrowed to 0600 on load. */
    CHECK(chmod(audit, 0644) == 0);
    p = load(json_pack("{s:s}", "audit_log", audit), &err);
    CHECK(p && stat(audit, &st) == 0 && (st.st_mode & 0777) == 0600);
    policy_free(p);
}

/* Loads a policy with just this hook, registered on fresh hooks. */
static struct policy *hook_policy(const char *script, int timeout_s, struct run_hooks **hooks)
{
    struct ph_error err;
    struct policy *p = load(json_pack("{s:s,s:i,s:s}", "hook", script, "hook_timeout_s", timeout_s,
                                      "audit_log", path_in_dir("hook-audit.jsonl")),
                            &err);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "  load: %s\n", err.message);
        return NULL;
    }
    *hooks = run_hooks_new();
    CHECK(policy_register(p, *hooks) == 0);
    return p;
}

/* No child of ours is left, zombie or alive. */
static void check_no_children(void)
{
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
}

/* A process that is gone or a zombie (waiting for an init that may not
 * reap in a container). */
static bool process_dead(pid_t pid)
{
    char path[64], stat_line[256];
    for (int i = 0; i < 100; i++) {
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *fp = fopen(path, "re");
        if (!fp)
            return true;
        bool zombie = fgets(stat_line, sizeof(stat_line), fp) && strstr(stat_line, ") Z");
        fclose(fp);
        if (zombie)
            return true;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void test_hook_allow(void)
{
    char body[1024];
    struct run_hooks *hooks = NULL;
    struct fake f = {0};
    struct ph_error err;

    snprintf(body, sizeof(body), "cat > %s/input.json\nenv > %s/env.txt\nexit 0", dir, dir);
    struct policy *p = hook_policy(write_script("allow.sh", body), 10, &hooks);
    if (!p)
        return;
    CHECK(run(hooks, &f, "ls -la /tmp", &err) == 0);
    CHECK(f.calls == 1);

    json_error_t je;
    json_t *in = json_load_file(path_in_dir("input.json"), 0, &je);
    CHECK(in && json_object_size(in) == 5);
    CHECK_STR(str(in, "vm_id"), "sb-test1");
    CHECK_STR(str(in, "command"), "ls -la /tmp");
    CHECK_STR(str(in, "shell"), "login");
    CHECK(num(in, "timeout") == 7);
    CHECK_STR(str(in, "actor"), "admin");
    json_decref(in);

    /* The gateway's secrets stay out of the hook's environment. */
    char *env = NULL;
    CHECK(read_file(path_in_dir("env.txt"), &env, NULL, 65536) == 0);
    CHECK(env && !strstr(env, "PORTHOLE_TOKEN") && strstr(env, "PORTHOLE_HOOK=1") &&
          strstr(env, "PATH="));
    free(env);
    check_no_children();
    run_hooks_free(hooks);
    policy_free(p);
}

static void test_hook_block(void)
{
    struct run_hooks *hooks = NULL;
    struct fake f = {0};
    struct ph_error err;
    struct policy *p;

    p = hook_policy(write_script("block.sh", "cat >/dev/null\necho '  no rm for you\n'\nexit 3"),
                    10, &hooks);
    if (p) {
        CHECK(run(hooks, &f, "rm x", &err) == -EPERM);
        CHECK(err.kind == PH_ERR_BLOCKED);
        CHECK_STR(err.message, "no rm for you");
        CHECK(f.calls == 0);
        json_t *lines = audit_lines(path_in_dir("hook-audit.jsonl"));
        json_t *last = json_array_get(lines, json_array_size(lines) - 1);
        CHECK_STR(str(last, "event"), "blocked");
        CHECK_STR(str(last, "reason"), "no rm for you");
        json_decref(lines);
        run_hooks_free(hooks);
        policy_free(p);
    }

    p = hook_policy(write_script("silent.sh", "exit 7"), 10, &hooks);
    if (p) {
        CHECK(run(hooks, &f, "true", &err) == -EPERM);
        CHECK_STR(err.message, "blocked by hook program (exit 7)");
        run_hooks_free(hooks);
        policy_free(p);
    }

    p = hook_policy(write_script("killed.sh", "kill -9 $$"), 10, &hooks);
    if (p) {
        CHECK(run(hooks, &f, "true", &err) == -EPERM);
        CHECK_STR(err.message, "blocked by hook program (killed by signal 9)");
        run_hooks_free(hooks);
        policy_free(p);
    }

    /* Output past 1 KiB is drained and dropped; the hook never blocks. */
    p = hook_policy(write_script("talky.sh", "i=0; while [ $i -lt 2000 ]; do "
                                             "echo 'too much to say about this command'; "
                                             "i=$((i+1)); done; exit 1"),
                    10, &hooks);
    if (p) {
        CHECK(run(hooks, &f, "true", &err) == -EPERM);
        CHECK(strncmp(err.message, "too much to say about this command too much", 43) == 0);
        CHECK(strlen(err.message) <= POLICY_MAX_HOOK_OUTPUT);
        run_hooks_free(hooks);
        policy_free(p);
    }
    CHECK(f.calls == 0);
    check_no_children();
}

static void test_hook_failures(void)
{
    struct run_hooks *hooks = NULL;
    struct fake f = {0};
    struct ph_error err;
    struct policy *p;
    char body[512];

    /* Past the timeout: blocked, and the hook's whole process group dies. */
    snprintf(body, sizeof(body), "sleep 30 &\necho $! > %s/sleep.pid\nwait", dir);
    p = hook_policy(write_script("slow.sh", body), 1, &hooks);
    if (p) {
        int64_t t0 = now_ms();
        CHECK(run(hooks, &f, "true", &err) == -EPERM);
        int64_t took = now_ms() - t0;
        CHECK(took >= 1000 && took < 5000);
        CHECK_STR(err.message, "hook program timed out after 1 s");
        char *pid_text = NULL;
        CHECK(read_file(path_in_dir("sleep.pid"), &pid_text, NULL, 64) == 0);
        if (pid_text)
            CHECK(process_dead((pid_t)atoi(pid_text)));
        free(pid_text);
        run_hooks_free(hooks);
        policy_free(p);
    }
    check_no_children();

    /* The program vanished after load: fail closed. */
    const char *gone = write_script("gone.sh", "exit 0");
    p = hook_policy(gone, 10, &hooks);
    if (p) {
        CHECK(unlink(gone) == 0);
        CHECK(run(hooks, &f, "true", &err) == -EPERM);
        CHECK(strstr(err.message, "cannot be started") != NULL);
        run_hooks_free(hooks);
        policy_free(p);
    }

    /* A hook that decides without reading a large input: no deadlock and
     * no SIGPIPE (left at its default here, so it would kill the test). */
    p = hook_policy(write_script("noread.sh", "exit 0"), 10, &hooks);
    if (p) {
        size_t n = RUN_MAX_COMMAND_LEN - 16;
        char *cmd = malloc(n + 1);
        memset(cmd, 'x', n);
        cmd[n] = '\0';
        memcpy(cmd, "echo ", 5);
        CHECK(run(hooks, &f, cmd, &err) == 0);
        free(cmd);
        run_hooks_free(hooks);
        policy_free(p);
    }
    CHECK(f.calls == 1);
    check_no_children();
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    unsetenv("PORTHOLE_TOKEN");
    setenv("PORTHOLE_TOKEN", "do-not-leak", 1);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_config();
    test_deny_and_audit();
    test_hook_allow();
    test_hook_block();
    test_hook_failures();
    rm_rf(dir);
    CHECK_DONE();
}
