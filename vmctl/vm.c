#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "qemu.h"
#include "qmp.h"
#include "ssh.h"
#include "tunnel.h"
#include "util.h"
#include "vm_template.h"

#define VM_SPAWN_ATTEMPTS 3
#define VM_SERIAL_MAX_LINE 4096

const char *vm_kind_flavour(enum vm_kind kind)
{
    return kind == VM_KIND_BROWSER ? "browser" : "base";
}

bool vm_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= sizeof(((struct vm *)0)->id))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-' ||
              id[i] == '_'))
            return false;
    return true;
}

static char *run_path(const struct vm *vm, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", vm->run_dir, name) < 0)
        return NULL;
    return p;
}

static int pidfd_open_pid(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Runs argv to completion with output appended to log_path; returns its
 * exit status (0..255) or -errno. */
static int spawn_wait(char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    pid_t pid;
    int status, r;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    /* Nothing else: a descriptor some library opened without O_CLOEXEC
     * (libvncclient's socket, until it is marked) must not outlive it in
     * QEMU. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    /* The caller may block signals in its threads (the gateway takes
     * SIGTERM in one thread of its own): the child starts with none
     * blocked and every signal at its default. */
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    /* QEMU and qemu-img get an environment of their own, not the
     * caller's (which holds the gateway's token): the search path, and
     * the locale and temp dir when set. */
    char path_var[4096], lang_var[256], tmp_var[1024];
    char *envp[4];
    size_t n_env = 0;
    const char *v = getenv("PATH");
    snprintf(path_var, sizeof(path_var), "PATH=%s", v ? v : "/usr/local/bin:/usr/bin:/bin");
    envp[n_env++] = path_var;
    if ((v = getenv("LANG"))) {
        snprintf(lang_var, sizeof(lang_var), "LANG=%s", v);
        envp[n_env++] = lang_var;
    }
    if ((v = getenv("TMPDIR"))) {
        snprintf(tmp_var, sizeof(tmp_var), "TMPDIR=%s", v);
        envp[n_env++] = tmp_var;
    }
    envp[n_env] = NULL;
    r = posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0)
        return -r;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* The last line of a log, for error messages that point at the cause. */
static void log_tail(const char *path, char *out, size_t len)
{
    _cleanup_free_ char *data = NULL;
    size_t n = 0;

    out[0] = '\0';
    if (read_file(path, &data, &n, 16 * 1024 * 1024) < 0 || n == 0)
        return;
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
        data[--n] = '\0';
    char *start = strrchr(data, '\n');
    start = start ? start + 1 : data;
    snprintf(out, len, "%s", start);
}

static int gen_keypair(const char *priv_path, const char *pub_path, char **pub_line,
                       struct ph_error *err)
{
    ssh_key key = NULL;
    char *b64 = NULL;
    int r = 0;

    unlink(priv_path);
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK ||
        ssh_pki_export_privkey_file(key, NULL, NULL, NULL, priv_path) != SSH_OK ||
        ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -EIO, "cannot generate an ed25519 key at %s",
                         priv_path);
        goto out;
    }
    chmod(priv_path, 0600);
    if (asprintf(pub_line, "ssh-ed25519 %s porthole\n", b64) < 0) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto out;
    }
    r = write_file(pub_path, *pub_line, strlen(*pub_line), 0644);
    if (r < 0)
        ph_error_set(err, PH_ERR_INTERNAL, r, "cannot write %s: %s", pub_path, strerror(-r));
out:
    ssh_string_free_char(b64);
    ssh_key_free(key);
    return r;
}

static int vm_write_config(struct vm *vm, const struct vm_spec *spec, struct ph_error *err)
{
    _cleanup_free_ char *path = run_path(vm, "config");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int r;

    if (!f || !path) {
        if (f)
            fclose(f);
        free(buf);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    /* The id as a host name: '_' (valid in ids) is not in a DNS label. */
    char host[sizeof(vm->id)];
    snprintf(host, sizeof(host), "%s", vm->id);
    for (char *p = host; *p; p++)
        if (*p == '_')
            *p = '-';
    fprintf(f, "hostname=%s\nkind=%s\n", host,
            spec->kind == VM_KIND_BROWSER ? "browser" : "sandbox");
    if (spec->disk_mib > 0)
        fprintf(f, "resize_root=1\n");
    if (spec->egress_cmd)
        fprintf(f, "network.proxy=%s\n", VM_EGRESS_PROXY);
    for (size_t i = 0; i < spec->n_env; i++)
        fprintf(f, "env=%s=%s\n", spec->env[i].name, spec->env[i].value);
    if (spec->extra_config)
        fputs(spec->extra_config, f);
    fclose(f);
    if (len > VM_CONFIG_MAX) {
        free(buf);
        return ph_error_set(err, PH_ERR_INVALID, -E2BIG,
                            "the VM's config is %zu bytes; the guest takes at most %d", len,
                            VM_CONFIG_MAX);
    }
    r = write_file(path, buf, len, 0600);
    free(buf);
    if (r < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, r, "cannot write VM config: %s", strerror(-r));
    return 0;
}

void vm_free(struct vm *vm)
{
    if (!vm)
        return;
    vm_ports_close_all(vm);
    pthread_mutex_destroy(&vm->ports_lock);
    vm_tunnel_stop(vm->devtools);
    vm_ssh_free(vm->ssh);
    if (vm->pidfd >= 0)
        close(vm->pidfd);
    free(vm->vnc_socket);
    free(vm->devtools_socket);
    free(vm->template_dir);
    free(vm->run_dir);
    free(vm);
}

static struct vm *vm_alloc(const char *state_dir, const char *id, enum vm_kind kind)
{
    struct vm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return NULL;
    snprintf(vm->id, sizeof(vm->id), "%s", id);
    vm->kind = kind;
    vm->pidfd = -1;
    vm->cdp_port = -1;
    pthread_mutex_init(&vm->ports_lock, NULL);
    if (asprintf(&vm->run_dir, "%s/vms/%s", state_dir, id) < 0) {
        pthread_mutex_destroy(&vm->ports_lock);
        free(vm);
        return NULL;
    }
    if (kind == VM_KIND_BROWSER && (!(vm->vnc_socket = run_path(vm, "vnc.sock")) ||
                                    !(vm->devtools_socket = run_path(vm, "devtools.sock")))) {
        vm_free(vm);
        return NULL;
    }
    return vm;
}

static int vm_allocate_ports(struct vm *vm, const struct vm_spec *spec)
{
    vm->ssh_port = alloc_local_port();
    if (vm->ssh_port < 0)
        return vm->ssh_port;
    if (vm->kind == VM_KIND_BROWSER && spec->cdp_host_forward) {
        vm->cdp_port = alloc_local_port();
        if (vm->cdp_port < 0)
            return -EADDRNOTAVAIL;
    }
    return 0;
}

/* A clone never boots: its console log starts as the one of the boot it
 * carries on from (the template's or the snapshot's), and says so. */
static void vm_seed_console(struct vm *vm, const char *from_dir)
{
    _cleanup_free_ char *to = run_path(vm, "serial.log"), *data = NULL, *text = NULL;
    char from[PATH_MAX];
    size_t len = 0;

    snprintf(from, sizeof(from), "%s/serial.log", from_dir);
    if (!to || read_file(from, &data, &len, 4 * 1024 * 1024) < 0)
        len = 0;
    if (to && asprintf(&text, "%.*s\r\n[porthole] %s: restored from %s, not booted\r\n", (int)len,
                       data ? data : "", vm->id, from_dir) >= 0)
        write_file(to, text, strlen(text), 0640);
}

int vm_new(const char *state_dir, const char *id, const struct vm_spec *spec, struct vm **out,
           struct ph_error *err)
{
    struct vm *vm;
    _cleanup_free_ char *pub = NULL, *hostpub = NULL;
    int r;

    if (!vm_id_valid(id))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "invalid VM id \"%s\"", id);
    if (!vm_image_present(spec->image_dir))
        return ph_error_set(err, PH_ERR_UNAVAILABLE, -ENOENT,
                            "guest image %s is missing; run: porthole image build %s",
                            spec->image_dir, vm_kind_flavour(spec->kind));
    vm = vm_alloc(state_dir, id, spec->kind);
    if (!vm)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    vm->accel = spec->accel;
    if (spec->reuse_run_dir) {
        _cleanup_free_ char *disk = run_path(vm, "disk.qcow2");
        if (!disk || access(disk, F_OK) < 0) {
            r = ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT, "VM %s has no disk left in %s", id,
                             vm->run_dir);
            goto fail_keep_dir;
        }
        if ((r = vm_write_config(vm, spec, err)) < 0)
            goto fail_keep_dir;
        *out = vm;
        return 0;
    }
    if (access(vm->run_dir, F_OK) == 0) {
        r = ph_error_set(err, PH_ERR_CONFLICT, -EEXIST, "run dir %s already exists", vm->run_dir);
        goto fail_keep_dir;
    }
    r = mkdir_p(vm->run_dir, 0700);
    if (r < 0) {
        ph_error_set(err, PH_ERR_INTERNAL, r, "cannot create %s: %s", vm->run_dir, strerror(-r));
        goto fail_keep_dir;
    }

    {
        _cleanup_free_ char *ck = run_path(vm, "client_key"), *ckp = run_path(vm, "client_key.pub"),
                            *hk = run_path(vm, "host_key"), *hkp = run_path(vm, "host_key.pub"),
                            *ak = run_path(vm, "authorized_keys");
        if (!ck || !ckp || !hk || !hkp || !ak) {
            r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
            goto fail;
        }
        r = gen_keypair(ck, ckp, &pub, err);
        if (r < 0)
            goto fail;
        /* A clone's sshd gets this one from clone-refresh. */
        r = gen_keypair(hk, hkp, &hostpub, err);
        if (r < 0)
            goto fail;
        r = write_file(ak, pub, strlen(pub), 0600);
        if (r < 0) {
            ph_error_set(err, PH_ERR_INTERNAL, r, "cannot write authorized_keys");
            goto fail;
        }
    }
    r = vm_write_config(vm, spec, err);
    if (r < 0)
        goto fail;

    {
        _cleanup_free_ char *disk = run_path(vm, "disk.qcow2"), *log = run_path(vm, "qemu.log"),
                            *backing = NULL, *size = NULL;
        char real[PATH_MAX];
        if (!disk || !log || !realpath(spec->image_dir, real)) {
            r = ph_error_set(err, PH_ERR_INTERNAL, -ENOENT, "cannot resolve image dir %s",
                             spec->image_dir);
            goto fail;
        }
        /* The overlay names the resolved, recipe-hashed image, so a rebuilt
         * image never changes the disk under a VM that already exists. A
         * clone's names its template's disk, which never changes either. */
        if ((spec->template_dir ? asprintf(&backing, "%s/disk.qcow2", spec->template_dir)
                                : asprintf(&backing, "%s/rootfs.img", real)) < 0 ||
            (spec->disk_mib > 0 && asprintf(&size, "%dM", spec->disk_mib) < 0)) {
            r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
            goto fail;
        }
        char *argv[] = {
            "qemu-img", "create", "-q", "-f", "qcow2", "-F", spec->template_dir ? "qcow2" : "raw",
            "-b",       backing,  disk, size, NULL};
        r = spawn_wait(argv, log);
        if (r != 0) {
            char tail[256];
            log_tail(log, tail, sizeof(tail));
            r = ph_error_set(err, PH_ERR_INTERNAL, r < 0 ? r : -EIO, "qemu-img create failed: %s",
                             tail[0] ? tail : strerror(-r));
            goto fail;
        }
    }
    if (spec->template_dir) {
        _cleanup_free_ char *ref = run_path(vm, "template");
        if (!ref || !(vm->template_dir = strdup(spec->template_dir)) ||
            write_file(ref, spec->template_dir, strlen(spec->template_dir), 0600) < 0) {
            r = ph_error_set(err, PH_ERR_INTERNAL, -EIO, "cannot record the VM's template");
            goto fail;
        }
        vm_seed_console(vm, spec->template_dir);
    }
    *out = vm;
    return 0;
fail:
    rm_rf(vm->run_dir);
fail_keep_dir:
    vm_free(vm);
    return r;
}

static int vm_read_pidfile(const struct vm *vm, pid_t *pid)
{
    _cleanup_free_ char *path = run_path(vm, "qemu.pid"), *data = NULL;
    if (!path)
        return -ENOMEM;
    int r = read_file(path, &data, NULL, 64);
    if (r < 0)
        return r;
    long v = strtol(data, NULL, 10);
    if (v <= 1)
        return -EINVAL;
    *pid = (pid_t)v;
    return 0;
}

static int vm_spawn_qemu(struct vm *vm, const struct vm_spec *spec, struct ph_error *err)
{
    char real[PATH_MAX];
    _cleanup_free_ char *kernel = NULL, *initrd = NULL, *disk = run_path(vm, "disk.qcow2"),
                        *qmp = run_path(vm, "qmp.sock"), *ser = run_path(vm, "serial.sock"),
                        *serlog = run_path(vm, "serial.log"), *pidf = run_path(vm, "qemu.pid"),
                        *cfg = run_path(vm, "config"), *hk = run_path(vm, "host_key"),
                        *ak = run_path(vm, "authorized_keys"), *log = run_path(vm, "qemu.log");

    if (!realpath(spec->image_dir, real))
        return ph_error_set(err, PH_ERR_UNAVAILABLE, -ENOENT, "image dir %s is gone",
                            spec->image_dir);
    if (asprintf(&kernel, "%s/vmlinuz", real) < 0 || asprintf(&initrd, "%s/initrd.img", real) < 0 ||
        !disk || !qmp || !ser || !serlog || !pidf || !cfg || !hk || !ak || !log)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");

    struct qemu_opts o = {
        .accel = spec->accel,
        .vcpus = spec->vcpus,
        .mem_mib = spec->mem_mib,
        .kernel = kernel,
        .initrd = initrd,
        .disk = disk,
        .qmp_socket = qmp,
        .serial_socket = ser,
        .serial_log = serlog,
        .pidfile = pidf,
        .fwcfg = {{"opt/porthole/config", cfg},
                  {"opt/porthole/host_key", hk},
                  {"opt/porthole/authorized_keys", ak}},
        .n_fwcfg = 3,
    };
    o.forwards[o.n_forwards++] = (struct qemu_forward){vm->ssh_port, VM_GUEST_PORT_SSH};
    o.guestfwd_cmd = spec->egress_cmd;
    if (spec->incoming_state || spec->template_dir)
        o.incoming = "defer";
    _cleanup_free_ char *mem = NULL;
    if (spec->template_build) {
        o.mem_file = mem = run_path(vm, VM_TEMPLATE_MEMORY);
        o.mem_shared = true;
    } else if (spec->template_dir) {
        /* A snapshot's RAM is in its saved state, a template's in its
         * memory file. */
        if (asprintf(&mem, "%s/" VM_TEMPLATE_MEMORY, spec->template_dir) < 0)
            return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        if (access(mem, F_OK) == 0)
            o.mem_file = mem;
    }
    if (spec->template_build && !mem)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if (vm->vnc_socket) {
        o.vnc_socket = vm->vnc_socket;
        o.screen_width = spec->screen_width > 0 ? spec->screen_width : VM_SCREEN_WIDTH;
        o.screen_height = spec->screen_height > 0 ? spec->screen_height : VM_SCREEN_HEIGHT;
        vm->screen_width = o.screen_width;
        vm->screen_height = o.screen_height;
    }
    if (vm->cdp_port > 0)
        o.forwards[o.n_forwards++] = (struct qemu_forward){vm->cdp_port, VM_GUEST_PORT_CDP};

    char **argv = qemu_build_argv(&o);
    if (!argv)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    unlink(qmp);
    unlink(ser);
    unlink(pidf);
    struct stat log_st;
    vm->console_boot_offset = stat(serlog, &log_st) == 0 ? (size_t)log_st.st_size : 0;
    /* -daemonize: the process we start exits once QEMU is initialised and
     * its sockets listen, which is our readiness signal. */
    int st = spawn_wait(argv, log);
    strv_free(argv);
    if (st != 0) {
        char tail[300];
        log_tail(log, tail, sizeof(tail));
        return ph_error_set(err, PH_ERR_INTERNAL, st < 0 ? st : -EIO, "QEMU failed to start: %s",
                            tail[0] ? tail : "no output");
    }
    return 0;
}

int vm_start(struct vm *vm, const struct vm_spec *spec, struct ph_error *err)
{
    struct qmp *q = NULL;
    _cleanup_free_ char *qmp_path = run_path(vm, "qmp.sock");
    int r = -EIO;

    if (!qmp_path)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    /* A forwarded port taken between our probe and QEMU's bind makes QEMU
     * fail; pick fresh ports and try again. */
    for (int attempt = 0; attempt < VM_SPAWN_ATTEMPTS; attempt++) {
        r = vm_allocate_ports(vm, spec);
        if (r < 0)
            return ph_error_set(err, PH_ERR_INTERNAL, r, "no free local port");
        r = vm_spawn_qemu(vm, spec, err);
        if (r == 0)
            break;
    }
    if (r < 0)
        return r;
    r = vm_read_pidfile(vm, &vm->pid);
    if (r < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, r, "QEMU wrote no usable pid file");
    vm->pidfd = pidfd_open_pid(vm->pid);
    if (vm->pidfd < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, -errno, "pidfd_open(%d): %s", (int)vm->pid,
                            strerror(errno));
    r = qmp_connect(qmp_path, 10000, &q, err);
    qmp_free(q);
    return r;
}

int vm_console_cap(const struct vm *vm, int64_t max_bytes)
{
    _cleanup_free_ char *path = run_path(vm, "serial.log");
    _cleanup_close_ int fd = path ? open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW) : -1;
    struct stat st;

    if (!path)
        return -ENOMEM;
    if (fd < 0 || fstat(fd, &st) < 0)
        return -errno;
    if (max_bytes <= 0 || st.st_size <= max_bytes)
        return 0;
    /* QEMU opened it O_APPEND (logappend=on), so its writes land at the
     * end whatever happens before it. Collapsing works in whole blocks,
     * on the filesystems that have it (ext4, XFS). */
    int64_t block = st.st_blksize > 0 ? st.st_blksize : 4096;
    int64_t cut = (st.st_size - max_bytes / 2) / block * block;
    if (cut > 0 && fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, cut) == 0)
        return 1;
    /* Elsewhere the newest half is kept by copying: read it, empty the
     * file, and append a note and that half (what QEMU appends meanwhile
     * lands just before them). */
    static const char note[] = "[porthole: the console log passed its size limit; earlier "
                               "output was dropped]\n";
    size_t keep = (size_t)(max_bytes / 2);
    _cleanup_free_ char *tail = malloc(keep ? keep : 1);
    if (!tail)
        return -ENOMEM;
    ssize_t n = pread(fd, tail, keep, st.st_size - (off_t)keep);
    if (n < 0)
        return -errno;
    if (ftruncate(fd, 0) < 0 || fcntl(fd, F_SETFL, O_APPEND) < 0)
        return -errno;
    if (write_all_fd(fd, note, sizeof(note) - 1) < 0 || write_all_fd(fd, tail, (size_t)n) < 0)
        return -EIO;
    return 1;
}

bool vm_alive(const struct vm *vm)
{
    if (vm->pidfd < 0)
        return false;
    struct pollfd p = {.fd = vm->pidfd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

/* Only what this QEMU printed counts: the log of a VM started again holds
 * the markers of its earlier boots, and a clone's the template's. */
static bool serial_log_has(const struct vm *vm, const char *marker)
{
    _cleanup_free_ char *path = run_path(vm, "serial.log"), *data = NULL;
    size_t len = 0;
    if (!path || read_file(path, &data, &len, 64 * 1024 * 1024) < 0)
        return false;
    /* Shorter than when QEMU started: vm_console_cap cut the log since,
     * keeping its newest half, which may still hold older boots. Then only
     * the serial socket can tell. */
    if (len < vm->console_boot_offset)
        return false;
    return strstr(data + vm->console_boot_offset, marker) != NULL;
}

static int serial_connect(const struct vm *vm)
{
    _cleanup_free_ char *path = run_path(vm, "serial.sock");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static int vm_boot_failure(const struct vm *vm, struct ph_error *err, const char *what)
{
    _cleanup_free_ char *serlog = run_path(vm, "serial.log");
    char tail[300] = "";
    if (serlog)
        log_tail(serlog, tail, sizeof(tail));
    return ph_error_set(err, PH_ERR_UNAVAILABLE, -EIO, "%s (last console line: %s)", what,
                        tail[0] ? tail : "none");
}

/* The DevTools socket of a browser VM whose SSH session is up. */
static int vm_open_devtools(struct vm *vm, struct ph_error *err)
{
    if (!vm->devtools_socket || vm->devtools)
        return 0;
    return vm_tunnel_start(vm->ssh, vm->devtools_socket, VM_GUEST_PORT_DEVTOOLS, &vm->devtools,
                           err);
}

/* vm->ssh for the run dir's keys, made once. 0 or -ENOMEM. */
static int vm_ssh_ensure(struct vm *vm)
{
    if (vm->ssh)
        return 0;
    _cleanup_free_ char *ck = run_path(vm, "client_key"), *hkp = run_path(vm, "host_key.pub");
    if (ck && hkp)
        vm->ssh = vm_ssh_new("127.0.0.1", vm->ssh_port, "root", ck, hkp);
    return vm->ssh ? 0 : -ENOMEM;
}

#define VM_ATTACH_CONNECT_MS 15000

/* What a guest that answers gets: SSH, DevTools, the saved ports. A
 * guest's sshd that does not answer yet is tried again until timeout_ms. */
static int vm_connect_guest(struct vm *vm, int timeout_ms, struct ph_error *err)
{
    int r = vm_ssh_connect_until(vm->ssh, now_ms() + timeout_ms, vm->pidfd, err);
    if (r < 0 || (r = vm_open_devtools(vm, err)) < 0)
        return r;
    vm_ports_reopen(vm);
    return 0;
}

int vm_wait_ready(struct vm *vm, const char *marker, int timeout_ms, struct ph_error *err)
{
    int64_t deadline = now_ms() + timeout_ms;
    _cleanup_close_ int fd = serial_connect(vm);
    char line[VM_SERIAL_MAX_LINE];
    size_t used = 0;
    bool seen = false;

    if (fd < 0)
        return vm_boot_failure(vm, err, "cannot attach to the VM's serial console");
    /* Whatever was printed before we attached is only in the log. */
    seen = serial_log_has(vm, marker);
    while (!seen) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return ph_error_set(err, PH_ERR_TIMEOUT, -ETIMEDOUT,
                                "guest not ready after %d s (waiting for \"%s\")",
                                timeout_ms / 1000, marker);
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = vm->pidfd, .events = POLLIN}};
        int n = poll(p, 2, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ph_error_set(err, PH_ERR_INTERNAL, -errno, "poll: %s", strerror(errno));
        if (p[1].revents)
            return vm_boot_failure(vm, err, "QEMU exited during boot");
        if (!p[0].revents)
            continue;
        ssize_t got = read(fd, line + used, sizeof(line) - 1 - used);
        if (got <= 0)
            return vm_boot_failure(vm, err, "serial console closed during boot");
        used += (size_t)got;
        line[used] = '\0';
        if (strstr(line, marker)) {
            seen = true;
            break;
        }
        /* Keep only the unfinished last line, so a marker split across two
         * reads is still found. */
        char *nl = strrchr(line, '\n');
        if (nl) {
            size_t rest = used - (size_t)(nl + 1 - line);
            memmove(line, nl + 1, rest);
            used = rest;
        } else if (used >= sizeof(line) - 1) {
            used = 0;
        }
    }
    if (vm_ssh_ensure(vm) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    int64_t left = deadline - now_ms();
    /* The ports reopened are a stopped VM's, booted again. */
    return vm_connect_guest(vm, left > 5000 ? (int)left : 5000, err);
}

/* The pid in the pid file must still be the QEMU of this run dir: after a
 * host reboot or a long downtime the number may belong to another process. */
static bool vm_pid_is_ours(const struct vm *vm, pid_t pid)
{
    char path[64];
    _cleanup_free_ char *cmdline = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (read_file(path, &cmdline, &len, 64 * 1024) < 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (cmdline[i] == '\0')
            cmdline[i] = ' ';
    return strstr(cmdline, vm->run_dir) != NULL && strstr(cmdline, "qemu") != NULL;
}

/* One QMP command on a connection of its own; args borrowed, *ret (may
 * be NULL) a new reference. */
static int vm_qmp_args(struct vm *vm, const char *command, json_t *args, json_t **ret,
                       struct ph_error *err)
{
    _cleanup_free_ char *qmp_path = run_path(vm, "qmp.sock");
    struct qmp *q = NULL;
    int r;

    if (!qmp_path)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if ((r = qmp_connect(qmp_path, 5000, &q, err)) < 0)
        return r;
    r = qmp_execute(q, command, args, ret, 10000, err);
    qmp_free(q);
    return r;
}

static int vm_qmp(struct vm *vm, const char *command, struct ph_error *err)
{
    return vm_qmp_args(vm, command, NULL, NULL, err);
}

int vm_pause(struct vm *vm, struct ph_error *err)
{
    int r = vm_qmp(vm, "stop", err);
    if (r == 0)
        vm->paused = true;
    return r;
}

static void vm_step_clock(struct vm *vm);

int vm_resume(struct vm *vm, struct ph_error *err)
{
    int r;

    if ((r = vm_qmp(vm, "cont", err)) < 0)
        return r;
    vm->paused = false;
    if (vm->attach_pending) {
        if ((r = vm_connect_guest(vm, VM_ATTACH_CONNECT_MS, err)) < 0)
            return r;
        vm->attach_pending = false;
    }
    vm_step_clock(vm);
    return 0;
}

static int64_t wall_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

#define VM_CLOCK_SLACK_NS (100 * 1000000LL)

/* out holds "clock=SEC.NSEC", the guest's clock right after it was set to
 * the host's time of sending, read back at recv_ns. The difference is how
 * long the command took to start (seconds, under software emulation with
 * a busy host): the guest's clock moves on by it. */
static void vm_clock_fix(struct vm *vm, const char *out, int64_t recv_ns)
{
    const char *p = out ? strstr(out, "clock=") : NULL;
    struct run_result res = {0};
    struct ph_error err = {0};
    char cmd[96];
    long long sec = 0, nsec = 0;

    if (!p || sscanf(p, "clock=%lld.%9lld", &sec, &nsec) != 2 || sec <= 0 || sec > 1LL << 34 ||
        nsec < 0)
        return;
    int64_t delta = recv_ns - (sec * 1000000000LL + nsec);
    if (delta < VM_CLOCK_SLACK_NS && delta > -VM_CLOCK_SLACK_NS)
        return;
    snprintf(cmd, sizeof(cmd), "/sbin/porthole-init clock-shift %lld", (long long)delta);
    if (vm_guest_run(vm, cmd, NULL, 0, 30, &res, &err) == 0)
        run_result_done(&res);
    else
        fprintf(stderr, "vm %s: shifting the clock by %lld ms: %s\n", vm->id,
                (long long)(delta / 1000000), err.message);
}

/* The guest's clock stood still with its vCPUs: set it to the host's. */
static void vm_step_clock(struct vm *vm)
{
    struct run_result res = {0};
    struct ph_error clock_err = {0};
    char cmd[96];
    int64_t now = wall_ns();

    snprintf(cmd, sizeof(cmd), "/sbin/porthole-init clock-set %lld.%09lld",
             (long long)(now / 1000000000LL), (long long)(now % 1000000000LL));
    if (vm_guest_run(vm, cmd, NULL, 0, 30, &res, &clock_err) == 0) {
        vm_clock_fix(vm, res.out, wall_ns());
        run_result_done(&res);
    } else {
        fprintf(stderr, "vm %s: stepping the clock after a pause: %s\n", vm->id, clock_err.message);
    }
}

/* "exec:cat > 'PATH'" or "exec:cat 'PATH'": QEMU runs it with /bin/sh. */
static int migrate_uri(const char *path, bool out, json_t **args)
{
    _cleanup_free_ char *q = shell_quote(path);
    char *uri = NULL;
    if (!q || asprintf(&uri, "exec:cat %s%s", out ? "> " : "", q) < 0)
        return -ENOMEM;
    *args = json_pack("{s:s}", "uri", uri);
    free(uri);
    return *args ? 0 : -ENOMEM;
}

/* Polls command until its "status" is none of busy. Returns the last
 * reply (new reference), or NULL with err. */
static json_t *qmp_wait_status(struct vm *vm, const char *command, const char *const *busy,
                               int timeout_ms, struct ph_error *err)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        json_t *ret = NULL;
        if (vm_qmp_args(vm, command, NULL, &ret, err) < 0)
            return NULL;
        const char *st = json_string_value(json_object_get(ret, "status"));
        bool waiting = !st;
        for (const char *const *b = busy; st && *b; b++)
            waiting |= strcmp(st, *b) == 0;
        if (!waiting)
            return ret;
        json_decref(ret);
        if (now_ms() > deadline) {
            ph_error_set(err, PH_ERR_TIMEOUT, -ETIMEDOUT, "%s: still %s after %d s", command,
                         st ? st : "unknown", timeout_ms / 1000);
            return NULL;
        }
        usleep(100 * 1000);
    }
}

#define VM_STATE_FILE "memory.state"
#define VM_STATE_TIMEOUT_MS (10 * 60 * 1000)

/* x-ignore-shared: RAM in a shared file is left out of the stream (a
 * template's memory file already holds it). Both ends must agree, and the
 * setting stays with the QEMU process: a clone (loaded with it on) turns
 * it off before it saves its own state. */
static int vm_set_ignore_shared(struct vm *vm, bool on, struct ph_error *err)
{
    json_t *args =
        json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "x-ignore-shared", "state", on);
    if (!args)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    int r = vm_qmp_args(vm, "migrate-set-capabilities", args, NULL, err);
    json_decref(args);
    return r;
}

/* A migration that failed or timed out: cancelled, waited for, and the
 * guest run again (it was stopped for it). */
static void vm_migrate_abort(struct vm *vm)
{
    static const char *const busy[] = {"setup",  "active",     "pre-switchover",
                                       "device", "cancelling", NULL};
    vm_qmp(vm, "migrate_cancel", NULL);
    json_decref(qmp_wait_status(vm, "query-migrate", busy, 10000, NULL));
    if (vm_qmp(vm, "cont", NULL) == 0)
        vm_step_clock(vm);
}

/* Stops the vCPUs, writes the VM's state to run_dir/NAME and ends QEMU;
 * on failure the guest runs again. */
static int vm_save_to(struct vm *vm, const char *name, bool ignore_shared, struct ph_error *err)
{
    static const char *const busy[] = {"setup", "active", "pre-switchover", "device", NULL};
    _cleanup_free_ char *path = run_path(vm, name), *tmp = NULL;
    json_t *args = NULL, *ret = NULL;
    int r;

    if (!path || asprintf(&tmp, "%s.tmp", path) < 0 || migrate_uri(tmp, true, &args) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    unlink(tmp);
    r = vm_set_ignore_shared(vm, ignore_shared, err);
    bool stopped = r == 0 && (r = vm_qmp(vm, "stop", err)) == 0;
    if (stopped)
        r = vm_qmp_args(vm, "migrate", args, NULL, err);
    json_decref(args);
    if (r == 0 && !(ret = qmp_wait_status(vm, "query-migrate", busy, VM_STATE_TIMEOUT_MS, err)))
        r = -ETIMEDOUT;
    if (r < 0) {
        if (stopped)
            vm_migrate_abort(vm);
        unlink(tmp);
        return r;
    }
    const char *st = json_string_value(json_object_get(ret, "status"));
    if (!st || strcmp(st, "completed") != 0) {
        const char *why = json_string_value(json_object_get(ret, "error-desc"));
        r = ph_error_set(err, PH_ERR_INTERNAL, -EIO, "saving the VM's state: %s%s%s",
                         st ? st : "no status", why ? ": " : "", why ? why : "");
        json_decref(ret);
        unlink(tmp);
        /* The guest goes on running rather than stay half saved. */
        vm_qmp(vm, "cont", NULL);
        return r;
    }
    json_decref(ret);
    if (rename(tmp, path) < 0) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -errno, "%s: %s", path, strerror(errno));
        vm_qmp(vm, "cont", NULL);
        return r;
    }
    vm->paused = true;
    /* The disk was flushed when the migration completed. */
    return vm_stop(vm, 10000, err);
}

int vm_save_state(struct vm *vm, struct ph_error *err)
{
    return vm_save_to(vm, VM_STATE_FILE, false, err);
}

int vm_save_template(struct vm *vm, struct ph_error *err)
{
    /* Clones must not inherit a half-open session of ours: close it while
     * the guest still runs, so its sshd sees the end. */
    vm_tunnel_stop(vm->devtools);
    vm->devtools = NULL;
    vm_ssh_free(vm->ssh);
    vm->ssh = NULL;
    usleep(200 * 1000);
    return vm_save_to(vm, VM_TEMPLATE_DEVICE_STATE, true, err);
}

/* cp of one file, holes kept. */
static int copy_file(const char *from, const char *to, struct ph_error *err)
{
    char *argv[] = {"cp", "--sparse=always", "--", (char *)from, (char *)to, NULL};
    int r = spawn_wait(argv, "/dev/null");
    if (r != 0)
        return ph_error_set(err, PH_ERR_INTERNAL, r < 0 ? r : -EIO, "cannot copy %s to %s", from,
                            to);
    return 0;
}

int vm_snapshot(struct vm *vm, const char *dir, struct ph_error *err)
{
    static const char *const busy[] = {"setup", "active", "pre-switchover", "device", NULL};
    static const char *const files[] = {"client_key",   "client_key.pub", "host_key",
                                        "host_key.pub", "config",         "serial.log"};
    _cleanup_free_ char *state = NULL, *disk = run_path(vm, "disk.qcow2"), *copy = NULL;
    json_t *args = NULL, *ret = NULL;
    int r;

    if (!disk || asprintf(&state, "%s/" VM_STATE_FILE, dir) < 0 ||
        asprintf(&copy, "%s/disk.qcow2", dir) < 0 || migrate_uri(state, true, &args) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if ((r = mkdir_p(dir, 0700)) < 0) {
        json_decref(args);
        return ph_error_set(err, PH_ERR_INTERNAL, r, "cannot create %s: %s", dir, strerror(-r));
    }
    /* Memory and disk at one instant: the vCPUs stop for the migration,
     * and the disk is copied once QEMU flushed it (migration completed)
     * and before they run again. */
    bool stopped =
        (r = vm_set_ignore_shared(vm, false, err)) == 0 && (r = vm_qmp(vm, "stop", err)) == 0;
    if (stopped)
        r = vm_qmp_args(vm, "migrate", args, NULL, err);
    json_decref(args);
    if (r == 0 && !(ret = qmp_wait_status(vm, "query-migrate", busy, VM_STATE_TIMEOUT_MS, err)))
        r = -ETIMEDOUT;
    if (r < 0 && stopped) {
        /* Nothing may still write into dir when it goes. */
        vm_migrate_abort(vm);
        rm_rf(dir);
        return r;
    }
    if (r == 0 && strcmp(json_string_value(json_object_get(ret, "status")), "completed") != 0) {
        const char *why = json_string_value(json_object_get(ret, "error-desc"));
        r = ph_error_set(err, PH_ERR_INTERNAL, -EIO, "saving the memory: %s",
                         why ? why : json_string_value(json_object_get(ret, "status")));
    }
    json_decref(ret);
    if (r == 0)
        r = copy_file(disk, copy, err);
    for (size_t i = 0; r == 0 && i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *from = run_path(vm, files[i]), *to = NULL;
        if (!from || asprintf(&to, "%s/%s", dir, files[i]) < 0)
            r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        else
            r = copy_file(from, to, err);
    }
    /* Whatever happened, the guest runs on, its clock set over the stop. */
    struct ph_error cont_err = {0};
    if (vm_qmp(vm, "cont", &cont_err) < 0 && r == 0)
        r = ph_error_set(err, cont_err.kind, -EIO, "%s", cont_err.message);
    else
        vm_step_clock(vm);
    if (r < 0)
        rm_rf(dir);
    return r;
}

/* QEMU started with -incoming defer loads path and runs the vCPUs. */
static int vm_load_from(struct vm *vm, const char *path, bool ignore_shared, int timeout_ms,
                        struct ph_error *err)
{
    static const char *const busy[] = {"inmigrate", NULL};
    json_t *args = NULL, *ret;
    int r;

    if (migrate_uri(path, false, &args) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    r = ignore_shared ? vm_set_ignore_shared(vm, true, err) : 0;
    if (r == 0)
        r = vm_qmp_args(vm, "migrate-incoming", args, NULL, err);
    json_decref(args);
    if (r < 0)
        return r;
    if (!(ret = qmp_wait_status(vm, "query-status", busy, timeout_ms, err)))
        return -ETIMEDOUT;
    const char *st = json_string_value(json_object_get(ret, "status"));
    if (strcmp(st, "paused") != 0 && strcmp(st, "running") != 0) {
        r = ph_error_set(err, PH_ERR_UNAVAILABLE, -EIO, "loading the saved state: QEMU is %s", st);
        json_decref(ret);
        return r;
    }
    json_decref(ret);
    if ((r = vm_qmp(vm, "cont", err)) < 0)
        return r;
    vm->paused = false;
    return 0;
}

int vm_restore_state(struct vm *vm, int timeout_ms, struct ph_error *err)
{
    _cleanup_free_ char *path = run_path(vm, VM_STATE_FILE);
    int r;

    if (!path)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if ((r = vm_load_from(vm, path, false, timeout_ms, err)) < 0)
        return r;
    if (vm_ssh_ensure(vm) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if ((r = vm_connect_guest(vm, VM_ATTACH_CONNECT_MS, err)) < 0)
        return r;
    unlink(path);
    vm_step_clock(vm);
    vm->resumed = true;
    return 0;
}

/* What clone-refresh (the guest init) reads: the identity, then the
 * VM's config (host name, env vars, proxy). malloc'd. */
static char *clone_identity(struct vm *vm)
{
    _cleanup_free_ char *pubpath = run_path(vm, "client_key.pub"), *pub = NULL,
                        *cfgpath = run_path(vm, "config"), *cfg = NULL,
                        *hkpath = run_path(vm, "host_key"), *hk = NULL, *hkhex = NULL;
    size_t hk_len = 0;
    char seed[129], mid[33];
    struct timespec now;
    char *out = NULL;

    if (!pubpath || !cfgpath || read_file(pubpath, &pub, NULL, 4096) < 0 ||
        read_file(cfgpath, &cfg, NULL, VM_CONFIG_MAX) < 0 || random_hex(seed, 64) < 0 ||
        random_hex(mid, 16) < 0)
        return NULL;
    pub[strcspn(pub, "\n")] = '\0';
    /* The guest's own sshd host key, hex (the private key file's text). */
    if (!hkpath || read_file(hkpath, &hk, &hk_len, 16 * 1024) < 0 ||
        !(hkhex = malloc(hk_len * 2 + 1)))
        return NULL;
    for (size_t i = 0; i < hk_len; i++)
        snprintf(hkhex + 2 * i, 3, "%02x", (unsigned char)hk[i]);
    hkhex[2 * hk_len] = '\0';
    clock_gettime(CLOCK_REALTIME, &now);
    if (asprintf(&out,
                 "authorized_key=%s\nhost_key=%s\nseed=%s\nmachine_id=%s\ntime=%lld.%09ld\n--\n%s",
                 pub, hkhex, seed, mid, (long long)now.tv_sec, now.tv_nsec, cfg) < 0)
        out = NULL;
    explicit_bzero(seed, sizeof(seed));
    explicit_bzero(hk, hk_len);
    explicit_bzero(hkhex, hk_len * 2);
    return out;
}

int vm_restore_clone(struct vm *vm, int timeout_ms, struct ph_error *err)
{
    _cleanup_free_ char *state = NULL, *tkey = NULL, *thkp = NULL,
                        *own = run_path(vm, "client_key"), *hkp = run_path(vm, "host_key.pub"),
                        *identity = NULL;
    struct run_result res = {0};
    int r;

    if (!vm->template_dir)
        return ph_error_set(err, PH_ERR_INTERNAL, -EINVAL, "VM %s is not a clone", vm->id);
    if (!own || !hkp || asprintf(&state, "%s/" VM_TEMPLATE_DEVICE_STATE, vm->template_dir) < 0 ||
        asprintf(&tkey, "%s/client_key", vm->template_dir) < 0 ||
        asprintf(&thkp, "%s/host_key.pub", vm->template_dir) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    /* A template holds only the device state (its RAM is the memory file
     * QEMU maps); a snapshot holds all of it. */
    bool template = access(state, F_OK) == 0;
    if (!template) {
        free(state);
        if (asprintf(&state, "%s/" VM_STATE_FILE, vm->template_dir) < 0)
            return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    int64_t t0 = now_ms(), t_load, t_ssh;
    if ((r = vm_load_from(vm, state, template, timeout_ms, err)) < 0)
        return r;
    t_load = now_ms();
    /* The guest has the template's keys until clone-refresh gives it its
     * own: the one session opened with them (to a QEMU started just now
     * on a port it holds) stays, every later one pins and uses ours. */
    vm_ssh_free(vm->ssh);
    if (!(vm->ssh = vm_ssh_new("127.0.0.1", vm->ssh_port, "root", tkey, thkp)))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if ((r = vm_ssh_connect(vm->ssh, timeout_ms, err)) < 0)
        return r;
    t_ssh = now_ms();
    if (!(identity = clone_identity(vm)))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "cannot make the clone's identity");
    r = vm_guest_run(vm, "/sbin/porthole-init clone-refresh", identity, strlen(identity), 30, &res,
                     err);
    explicit_bzero(identity, strlen(identity));
    if (r < 0) {
        ph_error_prefix(err, "refreshing the clone's identity");
        return r;
    }
    vm_clock_fix(vm, res.out, wall_ns());
    run_result_done(&res);
    if ((r = vm_ssh_set_keys(vm->ssh, own, hkp)) < 0)
        return ph_error_set(err, PH_ERR_INTERNAL, r, "out of memory");
    if ((r = vm_open_devtools(vm, err)) < 0)
        return r;
    vm->cloned = true;
    fprintf(stderr, "vm %s: restored in %lld ms (state %lld, ssh %lld, identity and rest %lld)\n",
            vm->id, (long long)(now_ms() - t0), (long long)(t_load - t0),
            (long long)(t_ssh - t_load), (long long)(now_ms() - t_ssh));
    return 0;
}

int vm_attach(const char *state_dir, const char *id, enum vm_kind kind, int ssh_port, int cdp_port,
              struct vm **out, struct ph_error *err)
{
    struct vm *vm = vm_alloc(state_dir, id, kind);
    struct qmp *q = NULL;
    _cleanup_free_ char *qmp_path = NULL;
    int r;

    if (!vm)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    vm->ssh_port = ssh_port;
    vm->cdp_port = cdp_port;
    r = vm_read_pidfile(vm, &vm->pid);
    if (r < 0 || !vm_pid_is_ours(vm, vm->pid)) {
        r = ph_error_set(err, PH_ERR_UNAVAILABLE, -ESRCH, "QEMU of VM %s is no longer running", id);
        goto fail;
    }
    vm->pidfd = pidfd_open_pid(vm->pid);
    if (vm->pidfd < 0) {
        r = ph_error_set(err, PH_ERR_UNAVAILABLE, -errno, "QEMU of VM %s is gone", id);
        goto fail;
    }
    qmp_path = run_path(vm, "qmp.sock");
    if (!qmp_path) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto fail;
    }
    r = qmp_connect(qmp_path, 5000, &q, err);
    json_t *st = NULL;
    if (r == 0 && qmp_execute(q, "query-status", NULL, &st, 5000, NULL) == 0)
        vm->paused = json_is_string(json_object_get(st, "status")) &&
                     strcmp(json_string_value(json_object_get(st, "status")), "paused") == 0;
    json_decref(st);
    qmp_free(q);
    if (r < 0)
        goto fail;
    if (vm_ssh_ensure(vm) < 0) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto fail;
    }
    {
        _cleanup_free_ char *ref = run_path(vm, "template");
        if (ref)
            read_file(ref, &vm->template_dir, NULL, PATH_MAX);
        vm->cloned = vm->template_dir != NULL;
    }
    /* A paused guest would not answer: vm_resume connects it. */
    if (vm->paused) {
        vm->attach_pending = true;
        *out = vm;
        return 0;
    }
    if ((r = vm_connect_guest(vm, VM_ATTACH_CONNECT_MS, err)) < 0)
        goto fail;
    *out = vm;
    return 0;
fail:
    vm_free(vm);
    return r;
}

static bool vm_wait_exit(const struct vm *vm, int timeout_ms)
{
    struct pollfd p = {.fd = vm->pidfd, .events = POLLIN};
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left < 0)
            left = 0;
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return true;
        if (n == 0)
            return false;
        if (errno != EINTR)
            return false;
    }
}

int vm_stop(struct vm *vm, int grace_ms, struct ph_error *err)
{
    _cleanup_free_ char *qmp_path = run_path(vm, "qmp.sock");
    struct qmp *q = NULL;

    /* The forwards go before the session they ride on. Their saved list
     * stays in the run dir: a boot from that dir opens them again. */
    vm_ports_close_all(vm);
    vm_tunnel_stop(vm->devtools);
    vm->devtools = NULL;
    vm_ssh_free(vm->ssh);
    vm->ssh = NULL;
    if (vm->pidfd < 0 || !vm_alive(vm))
        return 0;
    /* QMP quit ends QEMU at once; the guest's disk is a throwaway overlay,
     * so there is nothing a guest shutdown would need to flush. */
    if (qmp_path && qmp_connect(qmp_path, 2000, &q, NULL) == 0) {
        qmp_execute(q, "quit", NULL, NULL, 2000, NULL);
        qmp_free(q);
    }
    if (vm_wait_exit(vm, grace_ms))
        return 0;
    syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
    if (vm_wait_exit(vm, 5000))
        return 0;
    return ph_error_set(err, PH_ERR_INTERNAL, -EBUSY, "QEMU pid %d did not exit", (int)vm->pid);
}

int vm_remove_run_dir(const char *state_dir, const char *id)
{
    _cleanup_free_ char *dir = NULL;
    if (!vm_id_valid(id))
        return -EINVAL;
    if (asprintf(&dir, "%s/vms/%s", state_dir, id) < 0)
        return -ENOMEM;
    return rm_rf(dir);
}

int vm_kill_orphan(const char *state_dir, const char *id)
{
    struct vm *vm;
    pid_t pid;
    int r = 0;

    if (!vm_id_valid(id))
        return -EINVAL;
    vm = vm_alloc(state_dir, id, VM_KIND_SANDBOX);
    if (!vm)
        return -ENOMEM;
    if (vm_read_pidfile(vm, &pid) == 0 && vm_pid_is_ours(vm, pid)) {
        vm->pidfd = pidfd_open_pid(pid);
        if (vm->pidfd >= 0) {
            syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
            if (!vm_wait_exit(vm, 5000))
                r = -EBUSY;
        }
    }
    vm_free(vm);
    return r;
}

struct run_transport vm_transport(struct vm *vm)
{
    return (struct run_transport){.vm_id = vm->id, .exec = vm_ssh_exec, .data = vm->ssh};
}

int vm_set_env(struct vm *vm, const struct vm_env_var *env, size_t n_env, struct ph_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int r;

    if (!f)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    fputs("# written by porthole: the sandbox's environment variables\n", f);
    /* The guest init's file also names the egress proxy, the only way
     * out: a guest booted with one keeps it. */
    _cleanup_free_ char *cfg_path = run_path(vm, "config"), *cfg = NULL;
    const char *proxy = NULL;
    if (cfg_path && read_file(cfg_path, &cfg, NULL, VM_CONFIG_MAX) == 0 &&
        (proxy = strstr(cfg, "\nnetwork.proxy=")))
        proxy += strlen("\nnetwork.proxy=");
    if (proxy) {
        int plen = (int)strcspn(proxy, "\n");
        static const char *const names[] = {"http_proxy", "https_proxy", "HTTP_PROXY",
                                            "HTTPS_PROXY"};
        for (size_t i = 0; i < ARRAY_SIZE(names); i++)
            fprintf(f, "export %s=http://%.*s\n", names[i], plen, proxy);
        fputs("export no_proxy=localhost,127.0.0.1,::1\nexport NO_PROXY=$no_proxy\n", f);
    }
    for (size_t i = 0; i < n_env; i++) {
        _cleanup_free_ char *q = shell_quote(env[i].value);
        if (!q) {
            fclose(f);
            free(buf);
            return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        }
        fprintf(f, "export %s=%s\n", env[i].name, q);
    }
    fclose(f);
    if (!vm->ssh) {
        free(buf);
        return ph_error_set(err, PH_ERR_UNAVAILABLE, -ENOTCONN, "VM %s is not ready", vm->id);
    }
    r = vm_ssh_put_file(vm->ssh, "/etc/profile.d/porthole-env.sh", buf, len, 0644, err);
    free(buf);
    return r;
}

int vm_guest_run(struct vm *vm, const char *cmd, const void *in, size_t in_len, int timeout_s,
                 struct run_result *res, struct ph_error *err)
{
    struct run_request req = {.command = cmd,
                              .shell = RUN_SHELL_RAW,
                              .timeout_s = timeout_s,
                              .stdin_data = in,
                              .stdin_len = in_len};
    int r;

    if (!vm->ssh)
        return ph_error_set(err, PH_ERR_UNAVAILABLE, -ENOTCONN, "VM %s is not ready", vm->id);
    r = vm_ssh_exec(vm->ssh, cmd, &req, res, err);
    if (r < 0)
        return r;
    if (res->exit_code != 0) {
        r = ph_error_set(err, PH_ERR_UNAVAILABLE, -EIO, "guest command failed (exit %d): %.300s",
                         res->exit_code, res->err && *res->err ? res->err : res->out);
        run_result_done(res);
        return r;
    }
    return 0;
}

char *vm_image_dir(const char *cache_dir, const char *flavour)
{
    char *p = NULL;
    if (asprintf(&p, "%s/images/%s", cache_dir, flavour) < 0)
        return NULL;
    return p;
}

bool vm_image_present(const char *image_dir)
{
    static const char *const files[] = {"vmlinuz", "initrd.img", "rootfs.img", "manifest.json"};
    char path[PATH_MAX];
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        snprintf(path, sizeof(path), "%s/%s", image_dir, files[i]);
        if (access(path, R_OK) != 0)
            return false;
    }
    return true;
}
