/* The X server on the VM's virtio-gpu screen, the window manager, and X
 * clients run for the screen size and the pointer. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "init.h"

#define WM_BIN "/usr/bin/matchbox-window-manager"
#define XRANDR_BIN "/usr/bin/xrandr"
#define XORG_BIN "/usr/lib/xorg/Xorg"
#define XDOTOOL_BIN "/usr/bin/xdotool"
#define XORG_CONFIG RUN_DIR "/xorg.conf"
#define DRM_CARD "/dev/dri/card0"
#define TABLET_SHIFT (1.5 / 32767.0) /* see xorg_config_write */
#define XRANDR_TIMEOUT_MS 10000
#define XRANDR_OUTPUT_MAX (32 * 1024)

/* Finds the event device whose name contains `what` ("Tablet", "Keyboard":
 * QEMU names its virtio input devices "QEMU Virtio Tablet" and so on). No
 * udev runs in the guest, so Xorg is told the nodes instead of discovering
 * them. */
static int input_device_find(const char *what, char *path, size_t path_size)
{
    DIR *d = opendir("/sys/class/input");
    if (!d)
        return -errno;
    int r = -ENODEV;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "event", 5) != 0)
            continue;
        char name_path[PATH_MAX], name[128];
        snprintf(name_path, sizeof(name_path), "/sys/class/input/%s/device/name", e->d_name);
        ssize_t n = read_file(name_path, name, sizeof(name) - 1);
        if (n <= 0)
            continue;
        name[n] = '\0';
        if (strstr(name, what)) {
            snprintf(path, path_size, "/dev/input/%s", e->d_name);
            r = 0;
            break;
        }
    }
    closedir(d);
    return r;
}

/* The X server's configuration: the virtio-gpu screen through the kernel's
 * DRM driver (no GL: Chromium renders in software), QEMU's virtio tablet
 * and keyboard through evdev, no screen blanking. The cursor is drawn into
 * the framebuffer so screenshots and recordings show it.
 *
 * The tablet's matrix moves the pointer 1.5 tablet units right and down.
 * QEMU scales a VNC pixel x to the tablet's 0..32767 rounding down, and X
 * scales back rounding down again, which lands every point but exact
 * multiples one pixel short (measured: 100 -> 99). With the shift, the
 * position X computes lies between x and x + 1.5 * width / 32767: inside
 * pixel x for any screen narrower than 21845 pixels. */
static int xorg_config_write(void)
{
    char tablet[PATH_MAX], keyboard[PATH_MAX];
    int r = input_device_find("Tablet", tablet, sizeof(tablet));
    if (r == 0)
        r = input_device_find("Keyboard", keyboard, sizeof(keyboard));
    if (r < 0) {
        logmsg("no virtio tablet/keyboard in /sys/class/input: %s", strerror(-r));
        return r;
    }
    static char text[2 * PATH_MAX + 2048];
    int n = snprintf(text, sizeof(text),
                     "Section \"ServerFlags\"\n"
                     "  Option \"AutoAddDevices\" \"false\"\n"
                     "  Option \"AutoAddGPU\" \"false\"\n"
                     "  Option \"DontVTSwitch\" \"true\"\n"
                     "  Option \"BlankTime\" \"0\"\n"
                     "  Option \"StandbyTime\" \"0\"\n"
                     "  Option \"SuspendTime\" \"0\"\n"
                     "  Option \"OffTime\" \"0\"\n"
                     "EndSection\n"
                     "Section \"Extensions\"\n"
                     "  Option \"GLX\" \"Disable\"\n"
                     "EndSection\n"
                     "Section \"Device\"\n"
                     "  Identifier \"gpu\"\n"
                     "  Driver \"modesetting\"\n"
                     "  Option \"kmsdev\" \"" DRM_CARD "\"\n"
                     "  Option \"AccelMethod\" \"none\"\n"
                     "  Option \"SWcursor\" \"true\"\n"
                     "EndSection\n"
                     "Section \"Screen\"\n"
                     "  Identifier \"screen\"\n"
                     "  Device \"gpu\"\n"
                     "  DefaultDepth 24\n"
                     "EndSection\n"
                     "Section \"InputDevice\"\n"
                     "  Identifier \"tablet\"\n"
                     "  Driver \"evdev\"\n"
                     "  Option \"TransformationMatrix\" \"1 0 %.9f 0 1 %.9f 0 0 1\"\n"
                     "  Option \"Device\" \"%s\"\n"
                     "EndSection\n"
                     "Section \"InputDevice\"\n"
                     "  Identifier \"keyboard\"\n"
                     "  Driver \"evdev\"\n"
                     "  Option \"Device\" \"%s\"\n"
                     "  Option \"XkbLayout\" \"us\"\n"
                     "EndSection\n"
                     "Section \"ServerLayout\"\n"
                     "  Identifier \"porthole\"\n"
                     "  Screen \"screen\"\n"
                     "  InputDevice \"tablet\" \"CorePointer\"\n"
                     "  InputDevice \"keyboard\" \"CoreKeyboard\"\n"
                     "EndSection\n",
                     TABLET_SHIFT, TABLET_SHIFT, tablet, keyboard);
    if (n < 0 || (size_t)n >= sizeof(text))
        return -ENAMETOOLONG;
    if ((r = mkdir_p(RUN_DIR, 0755)) == 0)
        r = write_file(XORG_CONFIG, text, (size_t)n, 0644);
    if (r < 0)
        logmsg(XORG_CONFIG ": %s", strerror(-r));
    return r;
}

/* The X server on the VM's screen. QEMU sets the screen's preferred size
 * (the session's, at boot); a pooled VM is resized later with xrandr.
 * *ready_fd gets the read end of its -displayfd pipe (-1 without one): the
 * server writes the display number there once it serves clients, after
 * its screens are set up, which is later than its socket appears. */
struct child *xorg_start(bool detach, int *ready_fd)
{
    *ready_fd = -1;
    /* A display lock left in an image would make Xorg refuse :0. */
    unlink("/tmp/.X0-lock");
    unlink(X_SOCKET);
    mkdir("/tmp/.X11-unix", 01777);
    chmod("/tmp/.X11-unix", 01777);
    if (!path_exists(DRM_CARD)) {
        logmsg(DRM_CARD " missing: the VM has no virtio-gpu screen");
        return NULL;
    }
    if (xorg_config_write() < 0)
        return NULL;
    /* -r: no key autorepeat in the server. Every key comes from xdotool or
     * from a VNC client, which repeats held keys itself; a server repeat
     * only adds phantom letters when a busy guest sees a key-up late. */
    char *argv[] = {(char *)XORG_BIN,
                    (char *)":0",
                    (char *)"-config",
                    (char *)XORG_CONFIG,
                    (char *)"-logfile",
                    (char *)XORG_LOG,
                    (char *)"-nolisten",
                    (char *)"tcp",
                    (char *)"-noreset",
                    (char *)"-novtswitch",
                    (char *)"-s",
                    (char *)"0",
                    (char *)"-dpms",
                    (char *)"-r",
                    (char *)"vt7",
                    NULL,
                    NULL,
                    NULL};
    int pipe_fd[2];
    struct spawn_opts opts = {.log_path = "/var/log/porthole-xorg.out", .detach = detach};
    if (pipe2(pipe_fd, O_CLOEXEC) == 0) {
        fcntl(pipe_fd[0], F_SETFL, O_NONBLOCK);
        /* The child gets the write end as its fd 3. */
        argv[15] = (char *)"-displayfd";
        argv[16] = (char *)"3";
        opts.pass_fd = &pipe_fd[1];
    } else {
        logmsg("pipe for Xorg's -displayfd: %s; waiting for its socket", strerror(errno));
    }
    struct child *c = spawn("Xorg", argv, &opts);
    if (opts.pass_fd) {
        close(pipe_fd[1]);
        if (c)
            *ready_fd = pipe_fd[0];
        else
            close(pipe_fd[0]);
    }
    return c;
}

/* A window manager that gives the application window the whole screen.
 * Without one Chromium cannot maximize, and a window it sizes to the screen
 * itself it makes 1 px smaller on each axis (measured: 1023x767 on a
 * 1024x768 screen), which leaves a black edge in every screenshot and
 * recording. Best effort: Chromium works without it. */
void wm_start(bool detach)
{
    static char *envp[] = {"PATH=" SYSTEM_PATH, "HOME=/root", "LANG=C.UTF-8", "DISPLAY=:0", NULL};
    char *argv[] = {(char *)WM_BIN, (char *)"-use_titlebar", (char *)"no", NULL};
    if (access(WM_BIN, X_OK) != 0) {
        logmsg("no window manager (%s): the browser window stays 1 px short of the screen", WM_BIN);
        return;
    }
    struct spawn_opts opts = {
        .log_path = "/var/log/porthole-wm.log", .envp = envp, .detach = detach};
    if (!spawn("window manager", argv, &opts))
        logmsg("cannot start %s", WM_BIN);
}

/* Runs an X client on :0 with its stdout captured into out (NUL-terminated,
 * cut at out_size - 1; out may be NULL) and stderr passed on, or dropped when
 * quiet. Killed after timeout_ms. Returns the wait status, or -errno. */
static int x_command(char *const argv[], char *out, size_t out_size, bool quiet, int timeout_ms)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pfd[0]);
        close(pfd[1]);
        return -e;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            if (quiet)
                dup2(null, STDERR_FILENO);
        }
        dup2(pfd[1], STDOUT_FILENO);
        char *envp[] = {(char *)"PATH=" SYSTEM_PATH, (char *)"HOME=/root", (char *)"DISPLAY=:0",
                        NULL};
        execve(argv[0], argv, envp);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    bool timed_out = false;
    double deadline = monotonic_s() + timeout_ms / 1000.0;
    for (;;) {
        int left = (int)((deadline - monotonic_s()) * 1000.0);
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        char buf[4096];
        ssize_t k = read(pfd[0], buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        size_t room = out && out_size > len + 1 ? out_size - 1 - len : 0;
        size_t take = (size_t)k < room ? (size_t)k : room;
        if (take > 0)
            memcpy(out + len, buf, take);
        len += take;
    }
    if (out && out_size > 0)
        out[len] = '\0';
    close(pfd[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return timed_out ? -ETIMEDOUT : status;
}

/* The kernel passes on a tablet position only when it changes, and starts
 * from 0,0 while X starts its pointer mid-screen: a first move to 0,0 would
 * never arrive. Putting X's pointer at 0,0 makes the two agree. */
void x_pointer_home(void)
{
    char *argv[] = {(char *)XDOTOOL_BIN, (char *)"mousemove", (char *)"0", (char *)"0", NULL};
    int st = x_command(argv, NULL, 0, false, XRANDR_TIMEOUT_MS);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        logmsg("xdotool mousemove 0 0 failed; a first pointer move to 0,0 may be lost");
}

/* Reads the screen size and the name of the connected output ("Virtual-1"
 * on virtio-gpu) from `xrandr --current`. */
static int x_screen_query(unsigned *width, unsigned *height, char *output, size_t output_size)
{
    static char out[XRANDR_OUTPUT_MAX];
    char *argv[] = {(char *)XRANDR_BIN, (char *)"--current", NULL};
    int st = x_command(argv, out, sizeof(out), false, XRANDR_TIMEOUT_MS);
    if (st < 0)
        return st;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -EIO;
    const char *cur = strstr(out, " current ");
    if (!cur || sscanf(cur, " current %u x %u", width, height) != 2)
        return -EPROTO;
    output[0] = '\0';
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *sp = strstr(line, " connected");
        if (!sp || line[0] == ' ')
            continue;
        size_t len = (size_t)(sp - line);
        if (len == 0 || len >= output_size)
            continue;
        memcpy(output, line, len);
        output[len] = '\0';
        break;
    }
    return output[0] ? 0 : -ENODEV;
}

/* virtio-gpu takes any mode the X server defines, and QEMU's display (and
 * so its VNC server) follows the screen size, so VNC clients get the new
 * size as a desktop-size update. */
int x_screen_resize(unsigned width, unsigned height)
{
    unsigned cur_w, cur_h;
    char output[64];
    int r = x_screen_query(&cur_w, &cur_h, output, sizeof(output));
    if (r < 0) {
        fprintf(stderr, "porthole-init: xrandr --current on :0: %s\n", strerror(-r));
        return r;
    }
    if (cur_w == width && cur_h == height)
        return 0;
    char mode[48], clock[32], w[16], h[16];
    snprintf(mode, sizeof(mode), "porthole-%ux%u", width, height);
    snprintf(clock, sizeof(clock), "%.2f", (double)width * height * 60.0 / 1e6);
    snprintf(w, sizeof(w), "%u", width);
    snprintf(h, sizeof(h), "%u", height);
    /* A mode left by an earlier resize makes these two fail, harmlessly. */
    char *newmode[] = {
        (char *)XRANDR_BIN, (char *)"--newmode", mode, clock, w, w, w, w, h, h, h, h, NULL};
    x_command(newmode, NULL, 0, true, XRANDR_TIMEOUT_MS);
    char *addmode[] = {(char *)XRANDR_BIN, (char *)"--addmode", output, mode, NULL};
    x_command(addmode, NULL, 0, true, XRANDR_TIMEOUT_MS);
    char *setmode[] = {
        (char *)XRANDR_BIN, (char *)"--output", output, (char *)"--mode", mode, NULL};
    r = x_command(setmode, NULL, 0, false, XRANDR_TIMEOUT_MS);
    if (r >= 0)
        r = x_screen_query(&cur_w, &cur_h, output, sizeof(output));
    if (r < 0 || cur_w != width || cur_h != height) {
        fprintf(stderr, "porthole-init: resizing :0 to %ux%u failed (screen is %ux%u)\n", width,
                height, cur_w, cur_h);
        return r < 0 ? r : -EIO;
    }
    return 0;
}

static bool x_server_alive(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", X_SOCKET);
    bool ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return ok;
}

struct x_ready {
    int fd; /* the -displayfd pipe's read end; -1: look at the socket */
    bool said;
};

static bool cond_x_ready(void *arg)
{
    struct x_ready *x = arg;
    if (x->fd < 0)
        return x_server_alive();
    char buf[32];
    ssize_t n;
    while ((n = read(x->fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && memchr(buf, '\n', (size_t)n))
            x->said = true;
    return x->said;
}

int x_wait_ready(const struct child *xorg, int ready_fd, int timeout_ms)
{
    struct x_ready x = {.fd = ready_fd};
    bool ok = wait_until(ready_fd, cond_x_ready, &x, timeout_ms, xorg);
    if (ready_fd >= 0)
        close(ready_fd);
    if (ok)
        return 0;
    return xorg->exited ? -ECHILD : -ETIMEDOUT;
}

/* A guest booted headless has no X server; live mode needs one. */
int x_server_ensure(void)
{
    if (x_server_alive())
        return 0;
    int ready_fd;
    struct child *xorg = xorg_start(true, &ready_fd);
    if (!xorg)
        return -ECHILD;
    int r = x_wait_ready(xorg, ready_fd, X_START_MS);
    if (r == -ECHILD) {
        char why[32];
        describe_status(xorg->status, why, sizeof(why));
        fprintf(stderr, "porthole-init: Xorg exited (%s); see " XORG_LOG "\n", why);
    }
    if (r < 0)
        return r;
    x_pointer_home();
    wm_start(true);
    return 0;
}
