/* Services of every guest: sshd and its keys, the env script, the root
 * disk's resize. */

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/types.h>
#include <unistd.h>

#include "init.h"

/* Debian's sshd says READY=1 here (sd_notify) once it listens. */
#define SSHD_NOTIFY_SOCKET RUN_DIR "/sshd.notify"

#define FWCFG_HOST_KEY FWCFG_DIR "/host_key/raw"
#define FWCFG_AUTH_KEYS FWCFG_DIR "/authorized_keys/raw"
#define AUTH_KEYS_MAX (64 * 1024)

void keys_install(void)
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

void env_install(const struct config *cfg)
{
    static char text[ENV_SCRIPT_MAX];
    struct strbuf sb = {.data = text, .cap = sizeof(text)};
    int r = env_script_build(cfg, &sb);
    if (r == 0)
        r = write_file(ENV_SCRIPT, sb.data, sb.len, 0644);
    if (r < 0)
        logmsg("%s: %s", ENV_SCRIPT, strerror(-r));
}

int sshd_notify_open(void)
{
    int r = mkdir_p(RUN_DIR, 0755);
    if (r < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", SSHD_NOTIFY_SOCKET);
    unlink(SSHD_NOTIFY_SOCKET);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

void sshd_notify_close(int fd)
{
    if (fd < 0)
        return;
    close(fd);
    unlink(SSHD_NOTIFY_SOCKET);
}

struct child *sshd_start(bool notify)
{
    static char *notify_env[] = {"PATH=" SYSTEM_PATH,
                                 "HOME=/root",
                                 "LANG=C.UTF-8",
                                 "TERM=linux",
                                 "NOTIFY_SOCKET=" SSHD_NOTIFY_SOCKET,
                                 NULL};
    char *argv[] = {(char *)"/usr/sbin/sshd", (char *)"-D", (char *)"-e", NULL};
    struct spawn_opts opts = {.log_path = "/var/log/porthole-sshd.log",
                              .envp = notify ? notify_env : NULL};
    return spawn("sshd", argv, &opts);
}

void resize_root_start(void)
{
    char *argv[] = {(char *)"/sbin/resize2fs", (char *)ROOT_DEVICE, NULL};
    struct spawn_opts opts = {.log_path = "/var/log/porthole-resize.log"};
    if (spawn("resize2fs", argv, &opts))
        logmsg("resize2fs " ROOT_DEVICE " started");
}
