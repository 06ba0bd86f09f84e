/* Boot: stage 1 in the initramfs (modules, the root disk, switch root) and
 * the mounts stage 2 needs. */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "init.h"

#define MODULE_ORDER "/lib/modules/order"
#define NEWROOT "/newroot"
#define SELF_PATH "/sbin/porthole-init"
#define MODULE_LIST_MAX (16 * 1024)

static void mount_fs(const char *source, const char *target, const char *type, unsigned long flags,
                     const char *data)
{
    mkdir(target, 0755);
    if (mount(source, target, type, flags, data) < 0 && errno != EBUSY)
        logmsg("mount %s on %s: %s", type, target, strerror(errno));
}

/* Stage 1 moves its /proc, /sys and /dev into the new root, and a guest may
 * also boot stage 2 directly; mount only what is not there yet. */
static void mount_unless(const char *source, const char *target, const char *type,
                         unsigned long flags, const char *data, long magic)
{
    struct statfs sf;
    if (statfs(target, &sf) == 0 && (long)sf.f_type == magic) {
        struct stat here, parent;
        char up[PATH_MAX];
        snprintf(up, sizeof(up), "%s/..", target);
        /* Same fs type as the parent means "not a mount point" (e.g. a tmpfs
         * /tmp under a tmpfs root would otherwise be skipped wrongly). */
        if (stat(target, &here) == 0 && stat(up, &parent) == 0 && here.st_dev != parent.st_dev)
            return;
    }
    mount_fs(source, target, type, flags, data);
}

static _Noreturn void fatal(const char *what)
{
    char line[256];
    snprintf(line, sizeof(line), "PORTHOLE_ERROR boot: %s", what);
    emit_marker(line);
    sync();
    reboot(RB_POWER_OFF);
    reboot(RB_AUTOBOOT);
    for (;;)
        pause();
}

static void load_modules(void)
{
    static char list[MODULE_LIST_MAX + 1];
    ssize_t n = read_file(MODULE_ORDER, list, MODULE_LIST_MAX);
    if (n < 0) {
        logmsg("no module list: %s", strerror((int)-n));
        return;
    }
    int loaded = 0;
    for (char *save = NULL, *path = strtok_r(list, "\n", &save); path;
         path = strtok_r(NULL, "\n", &save)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            logmsg("module %s: %s", path, strerror(errno));
            continue;
        }
        /* glibc has no finit_module() wrapper. */
        if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
            logmsg("load %s: %s", path, strerror(errno));
        else
            loaded++;
        close(fd);
    }
    logmsg("loaded %d modules", loaded);
}

_Noreturn void stage1(void)
{
    mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    console_setup();
    logmsg("stage 1");
    load_modules();

    /* virtio_blk usually probes synchronously, but give a slow (TCG) guest
     * a bounded grace period. devtmpfs makes its nodes with vfs_mknod, so
     * inotify on /dev sees the disk appear. */
    int dev_watch = inotify_watch("/dev", IN_CREATE | IN_MOVED_TO);
    if (dev_watch < 0)
        logmsg("inotify on /dev: %s", strerror(-dev_watch));
    bool root = wait_watched(dev_watch, cond_path_exists, (void *)ROOT_DEVICE, 10000, NULL);
    if (dev_watch >= 0)
        close(dev_watch);
    if (!root)
        fatal(ROOT_DEVICE " did not appear");
    mkdir(NEWROOT, 0755);
    if (mount(ROOT_DEVICE, NEWROOT, "ext4", MS_NOATIME, NULL) < 0) {
        logmsg("mount " ROOT_DEVICE ": %s", strerror(errno));
        fatal("cannot mount " ROOT_DEVICE);
    }

    const char *moved[] = {"/dev", "/proc", "/sys"};
    for (size_t i = 0; i < 3; i++) {
        char target[64];
        snprintf(target, sizeof(target), NEWROOT "%s", moved[i]);
        mkdir(target, 0755);
        if (mount(moved[i], target, NULL, MS_MOVE, NULL) < 0)
            logmsg("move %s: %s", moved[i], strerror(errno));
    }
    /* The classic switch_root: make the new root "/" by moving its mount
     * over the initramfs, then chroot into it. The initramfs stays in
     * memory (about a megabyte) since nothing can unmount rootfs. */
    if (chdir(NEWROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
        chdir("/") < 0) {
        logmsg("switch root: %s", strerror(errno));
        fatal("cannot switch root");
    }
    char *argv[] = {(char *)"porthole-init", NULL};
    execve(SELF_PATH, argv, default_env);
    logmsg("exec " SELF_PATH ": %s", strerror(errno));
    fatal("cannot exec " SELF_PATH);
}

void mounts_setup(void)
{
    mount_unless("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, PROC_SUPER_MAGIC);
    mount_unless("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, SYSFS_MAGIC);
    mount_unless("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", TMPFS_MAGIC);
    console_setup();
    /* A directly booted root may come up read-only. */
    mount(NULL, "/", NULL, MS_REMOUNT, NULL);
    mount_unless("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                 "gid=5,mode=0620,ptmxmode=0666", DEVPTS_SUPER_MAGIC);
    mount_unless("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", TMPFS_MAGIC);
    mount_unless("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=20%", TMPFS_MAGIC);
    /* devtmpfs has no /dev/fd; bash process substitution needs it. */
    symlink("/proc/self/fd", "/dev/fd");
    symlink("/proc/self/fd/0", "/dev/stdin");
    symlink("/proc/self/fd/1", "/dev/stdout");
    symlink("/proc/self/fd/2", "/dev/stderr");
    mkdir("/tmp", 01777);
    chmod("/tmp", 01777);
    mkdir("/run/lock", 01777);
    chmod("/run/lock", 01777);
    mkdir("/run/sshd", 0755);
    symlink("/proc/self/mounts", "/etc/mtab");
}
