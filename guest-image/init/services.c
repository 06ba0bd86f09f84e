/* Services of every guest: sshd and its keys, the env script, the root
 * disk's resize. */

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "init.h"

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

struct child *sshd_start(void)
{
    char *argv[] = {(char *)"/usr/sbin/sshd", (char *)"-D", (char *)"-e", NULL};
    struct spawn_opts opts = {.log_path = "/var/log/porthole-sshd.log"};
    return spawn("sshd", argv, &opts);
}

void resize_root_start(void)
{
    char *argv[] = {(char *)"/sbin/resize2fs", (char *)ROOT_DEVICE, NULL};
    struct spawn_opts opts = {.log_path = "/var/log/porthole-resize.log"};
    if (spawn("resize2fs", argv, &opts))
        logmsg("resize2fs " ROOT_DEVICE " started");
}
