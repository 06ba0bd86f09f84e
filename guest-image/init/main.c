/*
 * porthole-init: PID 1 of a Porthole guest.
 *
 * One static binary, two stages:
 *  - stage 1 runs from the initramfs (which carries /porthole-initramfs): it
 *    loads the virtio modules, mounts /dev/vda and switches root into it;
 *  - stage 2 runs as /sbin/porthole-init in the real root: it applies the
 *    per-VM config the host passed through fw_cfg, brings up the network,
 *    starts sshd (and for browser guests Xorg, Chromium and a CDP relay),
 *    prints readiness markers on the serial console and then reaps children
 *    until it is told to power off.
 *
 * The host learns what happens only from the serial log, so every step logs a
 * short line and readiness is a fixed marker line:
 *   "PORTHOLE_READY ssh", "PORTHOLE_READY browser",
 *   "PORTHOLE_ERROR <what>: <reason>".
 *
 * Run by root when not PID 1 (the host calls these over ssh):
 *   porthole-init browser-configure   restart Chromium with the key=value
 *                                     config on stdin (same keys as fw_cfg),
 *                                     resizing the screen; prints "ready"
 *   porthole-init browser-stop        stop Chromium so its profile is flushed
 * and two test modes:
 *   porthole-init relay LISTEN_PORT TARGET_PORT
 *   porthole-init check-config FILE
 */

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "init.h"

#define STAGE1_MARKER "/porthole-initramfs"
#define FWCFG_CONFIG FWCFG_DIR "/config/raw"
#define SSH_PORT 22

static void config_load(struct config *cfg)
{
    /* Static: env entries point into this text for the guest's lifetime. */
    static char text[CONFIG_MAX + 1];
    config_defaults(cfg);
    ssize_t n = read_file(FWCFG_CONFIG, text, CONFIG_MAX);
    if (n < 0) {
        logmsg("no config from fw_cfg (%s); using defaults", strerror((int)-n));
        return;
    }
    config_parse(cfg, text, config_reject_log, NULL);
}

static _Noreturn void stage2(void)
{
    mounts_setup();
    logmsg("stage 2");
    static struct config cfg;
    config_load(&cfg);
    hostname_apply(&cfg);
    network_setup();
    keys_install();
    env_install(&cfg);
    if (cfg.resize_root)
        resize_root_start();

    int sshd_ready = sshd_notify_open();
    if (sshd_ready < 0)
        logmsg("sshd readiness socket: %s", strerror(-sshd_ready));
    struct child *sshd = sshd_start(sshd_ready >= 0);
    int xorg_ready = -1;
    struct child *xorg =
        cfg.kind == KIND_BROWSER && !cfg.headless ? xorg_start(false, &xorg_ready) : NULL;

    uint16_t ssh_port = SSH_PORT;
    if (sshd && wait_watched(sshd_ready, cond_port_listening, &ssh_port, 30000, sshd))
        emit_marker("PORTHOLE_READY ssh");
    else
        emit_marker("PORTHOLE_ERROR ssh: sshd did not start");
    sshd_notify_close(sshd_ready);

    if (cfg.kind == KIND_BROWSER)
        browser_start(&cfg, xorg, xorg_ready);

    /* sshd is the guest's only way in; bring it back if it dies, within
     * reason. Chromium is deliberately not restarted: browser-configure and
     * browser-stop stop and start it from outside, and a restart here would
     * fight them. A Chromium they start is reparented to us and reaped by
     * the waitpid(-1) loop like any orphan. */
    int sshd_restarts = 0;
    for (;;) {
        service_signals(1000);
        if (sshd && sshd->exited && sshd_restarts < 5) {
            sshd_restarts++;
            logmsg("restarting sshd");
            sshd = sshd_start(false);
        }
    }
}

static int check_config(const char *path)
{
    static char text[CONFIG_MAX + 1];
    ssize_t n = read_file(path, text, CONFIG_MAX);
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror((int)-n));
        return 1;
    }
    static struct config cfg;
    config_defaults(&cfg);
    config_parse(&cfg, text, config_reject_log, NULL);
    /* The buffers of env_install and policy_install: what fits here fits
     * in the guest. */
    static char env[ENV_SCRIPT_MAX], policy[POLICY_MAX];
    struct strbuf sb = {.data = env, .cap = sizeof(env)};
    if (env_script_build(&cfg, &sb) < 0)
        return 1;
    printf("hostname=%s\nkind=%s\nresize_root=%d\nbrowser.mode=%s\nbrowser.size=%ux%u\n"
           "browser.profile_dir=%s\n",
           cfg.hostname, cfg.kind == KIND_BROWSER ? "browser" : "sandbox", cfg.resize_root,
           cfg.headless ? "headless" : "live", cfg.width, cfg.height, cfg.profile_dir);
    printf("--- %s\n%s", ENV_SCRIPT, sb.data);
    sb = (struct strbuf){.data = policy, .cap = sizeof(policy)};
    if (policy_build(&cfg, &sb) < 0)
        return 1;
    printf("--- %s\n%s", POLICY_PATH, sb.data);
    return 0;
}

static int test_main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "browser-configure") == 0)
        return browser_configure_main();
    if (argc == 2 && strcmp(argv[1], "browser-stop") == 0)
        return browser_stop_main();
    if (argc == 2 && strcmp(argv[1], "clone-refresh") == 0)
        return clone_refresh_main();
    if (argc == 3 && strcmp(argv[1], "clock-set") == 0)
        return clock_set_main(argv[2]);
    if (argc == 3 && strcmp(argv[1], "clock-shift") == 0)
        return clock_shift_main(argv[2]);
    if (argc == 4 && strcmp(argv[1], "relay") == 0) {
        unsigned long lp = strtoul(argv[2], NULL, 10), tp = strtoul(argv[3], NULL, 10);
        if (lp == 0 || lp > 65535 || tp == 0 || tp > 65535)
            return 2;
        signal(SIGPIPE, SIG_IGN);
        relay_run((uint16_t)lp, (uint16_t)tp);
    }
    if (argc == 3 && strcmp(argv[1], "check-config") == 0)
        return check_config(argv[2]);
    fprintf(stderr,
            "porthole-init is the guest's PID 1.\n"
            "browser control (root): %s browser-configure < CONFIG | browser-stop\n"
            "clones (root): %s clone-refresh < IDENTITY | clock-set SEC.NSEC | clock-shift NS\n"
            "test modes: %s relay LISTEN_PORT TARGET_PORT | check-config FILE\n",
            argv[0], argv[0], argv[0]);
    return 2;
}

int main(int argc, char **argv)
{
    if (getpid() != 1)
        return test_main(argc, argv);
    umask(022);
    setenv("PATH", SYSTEM_PATH, 1);
    signals_setup();
    /* Let ctrl-alt-del reach us as SIGINT instead of an instant reboot. */
    reboot(RB_DISABLE_CAD);
    if (path_exists(STAGE1_MARKER))
        stage1();
    stage2();
}
