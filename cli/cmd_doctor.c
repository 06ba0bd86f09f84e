/* `porthole doctor`: can this host run sandboxes, and if not, what to do.
 * Every check reports what it saw; the verdict needs QEMU and the base
 * image, the rest is information (software emulation works, only slower). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "accel.h"
#include "cli.h"
#include "config.h"
#include "util.h"
#include "vm.h"

#define DOCTOR_QEMU_TIMEOUT_MS 5000

static const char usage_doctor[] =
    "Usage: porthole doctor [--accel auto|kvm|tcg] [--state-dir DIR] [--json]\n"
    "\n"
    "Checks the accelerator (KVM or software emulation, and why), QEMU, the host\n"
    "kernel, /dev/kvm, the guest images, the state dir and the gateway. Exits 0\n"
    "when sandboxes can run here, 1 with what to do otherwise.\n";

/* Full path of an executable on PATH, or "" (name with a slash: as is). */
static void which(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    char buf[4096];

    out[0] = '\0';
    if (strchr(name, '/')) {
        if (access(name, X_OK) == 0)
            snprintf(out, len, "%s", name);
        return;
    }
    if (!path || strlen(path) >= sizeof(buf))
        path = "/usr/local/bin:/usr/bin:/bin";
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save = NULL, *dir = strtok_r(buf, ":", &save); dir;
         dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/%s", dir, name);
        if (access(out, X_OK) == 0)
            return;
    }
    out[0] = '\0';
}

/* First line of `qemu --version`, read through a pipe with a deadline so a
 * wedged binary cannot hang the doctor. */
static int qemu_version(const char *qemu, char *out, size_t len)
{
    char *argv[] = {(char *)qemu, "--version", NULL};
    char buf[1024];
    size_t have = 0;
    int pipefd[2], status;
    int64_t deadline;
    pid_t pid;

    out[0] = '\0';
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return -errno;
    }
    if (pid == 0) {
        int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (dup2(pipefd[1], STDOUT_FILENO) < 0 || null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 ||
            dup2(null_fd, STDERR_FILENO) < 0)
            _exit(127);
        execv(qemu, argv);
        _exit(127);
    }
    close(pipefd[1]);
    deadline = now_ms() + DOCTOR_QEMU_TIMEOUT_MS;
    while (have < sizeof(buf) - 1) {
        struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
        int64_t left = deadline - now_ms();
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, (int)left) == 0)
            break;
        n = read(pipefd[0], buf + have, sizeof(buf) - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(pipefd[0]);
    buf[have] = '\0';
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    buf[strcspn(buf, "\n")] = '\0';
    cli_copy(out, len, buf);
    return out[0] ? 0 : -EIO;
}

static json_t *check_image(const char *cache, const char *flavour)
{
    _cleanup_free_ char *dir = vm_image_dir(cache, flavour), *manifest_path = NULL, *data = NULL;
    json_t *o, *manifest = NULL;
    size_t len;
    bool present;

    if (!dir)
        return NULL;
    present = vm_image_present(dir);
    o = json_pack("{s:s, s:b}", "dir", dir, "present", present);
    if (asprintf(&manifest_path, "%s/manifest.json", dir) >= 0 &&
        read_file(manifest_path, &data, &len, 1024 * 1024) >= 0)
        manifest = json_loadb(data, len, 0, NULL);
    json_object_set_new(o, "recipe_hash",
                        json_str(manifest, "recipe_hash")
                            ? json_string(json_str(manifest, "recipe_hash"))
                            : json_null());
    json_object_set_new(o, "built_at",
                        json_str(manifest, "built_at") ? json_string(json_str(manifest, "built_at"))
                                                       : json_null());
    json_decref(manifest);
    return o;
}

static json_t *check_state_dir(const char *state)
{
    struct stat st;
    bool exists = stat(state, &st) == 0 && S_ISDIR(st.st_mode);

    return json_pack("{s:s, s:b, s:b}", "path", state, "exists", exists, "writable",
                     exists && access(state, W_OK) == 0);
}

/* Asks whichever gateway a client would use, without starting one. */
static json_t *check_gateway(struct cli_ctx *c)
{
    struct api api = {0};
    struct cli_error err;
    char version[64] = "";
    json_t *o;

    if (discover_gateway(c, false, &api, &err) < 0) {
        o = json_pack("{s:n, s:b, s:n, s:s}", "url", "answering", false, "version", "message",
                      err.message);
        api_done(&api);
        return o;
    }
    bool up = discover_probe(api.url, 2000, version, sizeof(version)) == 0;
    o = json_pack("{s:s, s:b, s:o}", "url", api.url, "answering", up, "version",
                  up ? json_string(version) : json_null());
    /* What it holds ready: the pool and the templates. */
    json_t *status = NULL;
    if (up && o && api_call(&api, "GET", "/v1/status", NULL, 5000, NULL, &status, &err) == 0)
        json_object_set_new(o, "status", status);
    api_done(&api);
    return o;
}

static void print_text(const json_t *d)
{
    const json_t *accel = json_object_get(d, "accel"), *qemu = json_object_get(d, "qemu"),
                 *kernel = json_object_get(d, "kernel"), *kvm = json_object_get(d, "kvm"),
                 *images = json_object_get(d, "images"), *state = json_object_get(d, "state_dir"),
                 *gw = json_object_get(d, "gateway"), *recovery = json_object_get(d, "recovery");
    const char *key;
    json_t *img, *v;
    size_t i;

    printf("porthole %s\n", PORTHOLE_VERSION);
    printf("accelerator   %s%s: %s\n", json_str(accel, "chosen"),
           json_is_true(json_object_get(accel, "overridden")) ? " (requested)" : "",
           json_str(accel, "reason"));
    if (json_is_true(json_object_get(qemu, "found")))
        printf("qemu          %s (%s)\n", json_str(qemu, "path"),
               json_str(qemu, "version") ? json_str(qemu, "version") : "version unknown");
    else
        printf("qemu          not found (%s)\n", json_str(qemu, "binary"));
    printf("kernel        %s %s\n", json_str(kernel, "release"), json_str(kernel, "machine"));
    if (!json_is_true(json_object_get(kvm, "present")))
        printf("/dev/kvm      absent\n");
    else
        printf("/dev/kvm      present, %s%s%s\n",
               json_is_true(json_object_get(kvm, "opens")) ? "opens" : "does not open",
               json_is_true(json_object_get(kvm, "create_vm")) ? ", creates VMs" : "",
               json_is_true(json_object_get(kvm, "pvm_host")) ? ", PVM host (kvm_pvm)" : "");
    json_object_foreach((json_t *)images, key, img)
    {
        if (json_is_true(json_object_get(img, "present")))
            printf("image %-7s present in %s (recipe %.12s, built %s)\n", key, json_str(img, "dir"),
                   json_str(img, "recipe_hash") ? json_str(img, "recipe_hash") : "?",
                   json_str(img, "built_at") ? json_str(img, "built_at") : "?");
        else
            printf("image %-7s missing (%s)\n", key, json_str(img, "dir"));
    }
    printf("state dir     %s%s\n", json_str(state, "path"),
           !json_is_true(json_object_get(state, "exists"))     ? " (not created yet)"
           : !json_is_true(json_object_get(state, "writable")) ? " (not writable)"
                                                               : "");
    if (json_is_true(json_object_get(gw, "answering"))) {
        const json_t *st = json_object_get(gw, "status"), *pool = json_object_get(st, "pool"), *t;
        printf("gateway       answering at %s (version %s)\n", json_str(gw, "url"),
               json_str(gw, "version"));
        if (pool)
            printf("pool          %lld of %lld pre-booted browser VMs ready\n",
                   (long long)json_integer_value(json_object_get(pool, "ready")),
                   (long long)json_integer_value(json_object_get(pool, "target")));
        json_array_foreach(json_object_get(st, "templates"), i, t)
        {
            printf("template      %s%s%s %s%s%s", json_str(t, "kind"),
                   json_str(t, "mode") ? " " : "", json_str(t, "mode") ? json_str(t, "mode") : "",
                   json_str(t, "state"), json_str(t, "error") ? ": " : "",
                   json_str(t, "error") ? json_str(t, "error") : "");
            if (json_object_get(t, "memory_mib"))
                printf(" (%lld MiB of memory its clones share)",
                       (long long)json_integer_value(json_object_get(t, "memory_mib")));
            printf("\n");
        }
    } else if (json_str(gw, "url"))
        printf("gateway       not answering at %s\n", json_str(gw, "url"));
    else
        printf("gateway       not running (clients start one on demand)\n");
    printf("\n%s\n", json_is_true(json_object_get(d, "ready"))
                         ? "ready: sandboxes can run on this host"
                         : "not ready: sandboxes cannot run yet");
    json_array_foreach(recovery, i, v) printf("  %s\n", json_string_value(v));
}

int cmd_doctor(struct cli_ctx *c, int argc, char **argv)
{
    enum { OPT_ACCEL = 1 };
    static const struct option opts[] = {
        {"accel", required_argument, NULL, OPT_ACCEL},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    _cleanup_free_ char *cache = NULL, *state = NULL;
    enum vm_accel requested = VM_ACCEL_AUTO;
    struct accel_probe probe;
    struct accel_choice choice;
    struct cli_error err;
    struct utsname uts;
    const char *qemu_bin = getenv("PORTHOLE_QEMU");
    char qemu_path[PATH_MAX], version[256];
    json_t *d, *images, *recovery;
    bool qemu_ok, base_ok;
    int opt, code, r;

    c->command = "doctor";
    c->usage = usage_doctor;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == OPT_ACCEL) {
            if (accel_parse(optarg, &requested) < 0)
                return cli_usage_error(c, "--accel: expected auto, kvm or tcg, got '%.32s'",
                                       optarg);
        } else if (!cli_common_option(c, opt, argc, argv, &code)) {
            return code;
        }
    }
    if (optind < argc)
        return cli_usage_error(c, "unexpected argument '%.64s'", argv[optind]);

    cache = default_cache_dir();
    state = cli_state_dir(c);
    if (!cache || !state) {
        cli_error_set(&err, 1, "internal", NULL, -ENOMEM, "out of memory");
        return cli_fail(c, &err);
    }
    d = json_object();
    recovery = json_array();

    accel_probe(&probe);
    r = accel_choose(requested, &choice);
    if (r < 0)
        json_object_set_new(d, "accel",
                            json_pack("{s:s, s:b, s:s}", "chosen", "invalid", "overridden", true,
                                      "reason", "PORTHOLE_ACCEL holds an unknown value"));
    else
        json_object_set_new(d, "accel",
                            json_pack("{s:s, s:b, s:s}", "chosen", accel_name(choice.accel),
                                      "overridden", choice.overridden, "reason", choice.reason));
    if (r < 0)
        json_array_append_new(recovery, json_string("set PORTHOLE_ACCEL to kvm, tcg or auto"));
    json_object_set_new(d, "kvm",
                        json_pack("{s:b, s:b, s:b, s:b, s:s?}", "present", probe.kvm_present,
                                  "opens", probe.kvm_opens, "create_vm", probe.kvm_create_vm,
                                  "pvm_host", probe.pvm_host, "open_error",
                                  probe.open_errno ? strerror(probe.open_errno) : NULL));

    if (!qemu_bin || !*qemu_bin)
        qemu_bin = "qemu-system-x86_64";
    which(qemu_bin, qemu_path, sizeof(qemu_path));
    qemu_ok = qemu_path[0] != '\0';
    if (qemu_ok && qemu_version(qemu_path, version, sizeof(version)) < 0)
        version[0] = '\0';
    json_object_set_new(d, "qemu",
                        json_pack("{s:s, s:b, s:s?, s:s?}", "binary", qemu_bin, "found", qemu_ok,
                                  "path", qemu_ok ? qemu_path : NULL, "version",
                                  qemu_ok && version[0] ? version : NULL));
    if (!qemu_ok)
        json_array_append_new(recovery, json_string("install QEMU: apt-get install qemu-system-x86 "
                                                    "qemu-utils (or set PORTHOLE_QEMU)"));

    if (uname(&uts) == 0)
        json_object_set_new(d, "kernel",
                            json_pack("{s:s, s:s, s:s}", "sysname", uts.sysname, "release",
                                      uts.release, "machine", uts.machine));

    images = json_object();
    json_object_set_new(images, "base", check_image(cache, "base"));
    json_object_set_new(images, "browser", check_image(cache, "browser"));
    json_object_set_new(d, "images", images);
    base_ok = json_is_true(json_object_get(json_object_get(images, "base"), "present"));
    if (!base_ok)
        json_array_append_new(recovery, json_string("run: porthole image build base"));
    if (!json_is_true(json_object_get(json_object_get(images, "browser"), "present")))
        json_array_append_new(recovery,
                              json_string("for browser sessions, run: porthole image build "
                                          "browser"));

    json_object_set_new(d, "state_dir", check_state_dir(state));
    json_object_set_new(d, "gateway", check_gateway(c));
    /* A bad PORTHOLE_ACCEL makes the gateway refuse to start. */
    json_object_set_new(d, "ready", json_boolean(qemu_ok && base_ok && r >= 0));
    json_object_set_new(d, "recovery", recovery);

    if (!c->json)
        print_text(d);
    if (qemu_ok && base_ok && r >= 0)
        return cli_ok(c, d);
    cli_error_set(&err, 1, "not_ready", NULL, -ENOENT, "sandboxes cannot run on this host: %s",
                  !qemu_ok   ? "QEMU is missing"
                  : !base_ok ? "the base image is missing"
                             : "PORTHOLE_ACCEL holds an unknown value");
    snprintf(err.recovery, sizeof(err.recovery), "%s",
             !qemu_ok   ? "install QEMU: apt-get install qemu-system-x86 qemu-utils"
             : !base_ok ? "run: porthole image build base"
                        : "set PORTHOLE_ACCEL to kvm, tcg or auto");
    if (c->json)
        return cli_emit(c, CLI_EXIT_FAIL, d, &err);
    /* The text report above already lists what to do. */
    json_decref(d);
    c->emitted = true;
    return CLI_EXIT_FAIL;
}
