/* What the files of porthole-init share: paths and limits used in more
 * than one place, and each file's entry points. main.c says what the
 * program does; each file opens with the concept it holds. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "guest_config.h"

#define ROOT_DEVICE "/dev/vda"
#define FWCFG_DIR "/sys/firmware/qemu_fw_cfg/by_name/opt/porthole"
#define HOST_KEY_MAX (16 * 1024)
#define HOST_KEY_PATH "/etc/ssh/ssh_host_ed25519_key"
#define ENV_SCRIPT "/etc/profile.d/porthole-env.sh"
#define POLICY_DIR "/etc/chromium/policies/managed"
#define POLICY_PATH POLICY_DIR "/porthole.json"
#define X_SOCKET "/tmp/.X11-unix/X0"
#define RUN_DIR "/run/porthole"
#define XORG_LOG "/var/log/porthole-xorg.log"
#define X_START_MS 30000
#define CDP_PORT 9222
#define SYSTEM_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* util.c: the log, markers, clocks, files */
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A config_reject_fn that logs the line (ctx unused). */
void config_reject_log(void *ctx, size_t line_no, const char *key);
void emit_marker(const char *line);
void console_setup(void);
int write_all(int fd, const void *buf, size_t len);
double monotonic_s(void);
int ms_until(double deadline);
void sleep_ms(long ms);
bool path_exists(const char *path);
ssize_t read_fd_all(int fd, char *buf, size_t max);
ssize_t read_file(const char *path, char *buf, size_t max);
int write_file(const char *path, const void *data, size_t len, mode_t mode);
int write_string(const char *path, const char *s, mode_t mode);
int mkdir_p(const char *path, mode_t mode);

/* supervise.c: signals, children, bounded waits, shutdown */
struct child {
    pid_t pid; /* 0 if the slot is free */
    char name[24];
    bool exited;
    int status;
};

struct spawn_opts {
    const char *log_path; /* stdout+stderr appended here; NULL = console */
    char *const *envp;    /* NULL = the default environment */
    /* The child must outlive its caller (browser-configure run over ssh):
     * no fd of the caller may stay open in it, or the ssh channel would
     * never see EOF. */
    bool detach;
    const int *pass_fd; /* NULL, or an fd the child gets as its fd 3 */
};

extern char *default_env[];

void signals_setup(void);
void child_reset_signals(void);
/* The returned slot is weak: it belongs to the child table. */
struct child *child_track(pid_t pid, const char *name);
struct child *spawn(const char *name, char *const argv[], const struct spawn_opts *opts);
void describe_status(int status, char *buf, size_t size);
void service_signals(int timeout_ms);
void run_and_wait(const char *name, char *const argv[]);

/* Every wait for something to be ready is an event and a deadline: PID 1
 * waits on the event's fd and its signals together (so it keeps reaping);
 * other callers on the event and the pidfd of the child they need. */
typedef bool (*wait_cond)(void *arg);

/* Waits until cond(arg) holds, timeout_ms at most. cond is looked at first,
 * then each time wake_fd (-1 for none) polls readable or hung up, a signal
 * came, and at least once a second; it must read what wake_fd has. So that
 * no change is missed, wake_fd is set up before what it reports can happen.
 * The death of needed (NULL for none) ends the wait. Returns whether cond
 * held. */
bool wait_until(int wake_fd, wait_cond cond, void *arg, int timeout_ms, const struct child *needed);
/* wait_until for a notification fd (inotify, netlink, a datagram socket):
 * what it has is read and dropped, then check(arg) says whether it is
 * time. */
bool wait_watched(int fd, wait_cond check, void *arg, int timeout_ms, const struct child *needed);
/* Reads a non-blocking fd until it has nothing more. */
void fd_drain(int fd);
bool cond_path_exists(void *arg);
bool cond_port_listening(void *arg);
bool cond_child_exited(void *arg);
/* An inotify fd (O_NONBLOCK) watching path for mask, or -errno. */
int inotify_watch(const char *path, uint32_t mask);

/* boot.c: stage 1 and the mounts */
_Noreturn void stage1(void);
void mounts_setup(void);

/* net.c: network, host name, listening ports */
void network_setup(void);
void hostname_apply(const struct config *cfg);
bool tcp_listening(uint16_t port);

/* services.c: sshd, keys, env script, root resize */
/* The socket sshd_start(true) has sshd report its readiness on: a wake fd
 * for the wait on port 22 (sd_notify's protocol, which Debian's sshd
 * speaks: READY=1 after it listens). -errno when it cannot be made. */
int sshd_notify_open(void);
void sshd_notify_close(int fd);
struct child *sshd_start(bool notify);
void keys_install(void);
void env_install(const struct config *cfg);
void resize_root_start(void);

/* relay.c: the CDP relay */
_Noreturn void relay_run(uint16_t listen_port, uint16_t target_port);
struct child *relay_start(void);
void relay_ensure(void);

/* x.c: the X server and its clients */
struct child *xorg_start(bool detach, int *ready_fd);
/* Waits for the Xorg that xorg_start gave ready_fd for (and closes it): 0,
 * -ECHILD when it exited, -ETIMEDOUT. */
int x_wait_ready(const struct child *xorg, int ready_fd, int timeout_ms);
void wm_start(bool detach);
void x_pointer_home(void);
int x_screen_resize(unsigned width, unsigned height);
int x_server_ensure(void);

/* cdp.c: the CDP client */
/* 0 once Chromium answers /json/version; path gets the browser's
 * WebSocket path. */
int cdp_get_version(char *path, size_t path_size, int timeout_ms);
int cdp_browser_close(double deadline);
void cdp_warm_up(void);

/* browser.c: Chromium, at boot and for the host's commands */
void browser_start(const struct config *cfg, struct child *xorg, int xorg_ready);
int browser_configure_main(void);
int browser_stop_main(void);

/* clone.c: a clone's identity */
int clone_refresh_main(void);
int clock_set_main(const char *when);
int clock_shift_main(const char *arg);
