/* Helpers every part of porthole-init uses: the log line, the readiness
 * markers on the serial console, clocks, and whole-file reads and writes. */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "init.h"

#define LOG_PREFIX "porthole-init: "
#define MARKER_TTY "/dev/ttyS0"

void logmsg(const char *fmt, ...)
{
    char line[512];
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    int n = snprintf(line, sizeof(line), LOG_PREFIX "[%ld.%02ld] ", (long)ts.tv_sec,
                     ts.tv_nsec / 10000000L);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write per line, so lines from children never split ours. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void config_reject_log(void *ctx, size_t line_no, const char *key)
{
    (void)ctx;
    if (key)
        logmsg("config line %zu: ignoring invalid %s", line_no, key);
    else
        logmsg("config line %zu: ignoring line without '='", line_no);
}

int inotify_watch(const char *path, uint32_t mask)
{
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (inotify_add_watch(fd, path, mask) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The host scans the serial log for these lines; they go to the UART itself
 * rather than /dev/console so a changed console= cannot hide them. */
void emit_marker(const char *line)
{
    int fd = open(MARKER_TTY, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        logmsg("cannot open a console for the marker: %s", strerror(errno));
        return;
    }
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "%s\n", line);
    if (n > 0)
        write_all(fd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
    close(fd);
    logmsg("marker: %s", line);
}

/* The kernel starts PID 1 with no fds at all when /dev/console is missing. */
void console_setup(void)
{
    if (fcntl(STDERR_FILENO, F_GETFD) >= 0)
        return;
    int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return;
    for (int i = 0; i < 3; i++)
        dup2(fd, i);
    if (fd > 2)
        close(fd);
}

double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Reads fd to EOF, at most max bytes; more is an error, never silently cut.
 * Returns the length, or -errno. buf gets a terminating NUL. */
ssize_t read_fd_all(int fd, char *buf, size_t max)
{
    size_t len = 0;
    for (;;) {
        if (len == max) {
            char extra;
            ssize_t r = read(fd, &extra, 1);
            if (r < 0 && errno == EINTR)
                continue;
            if (r != 0)
                return -EFBIG;
            break;
        }
        ssize_t r = read(fd, buf + len, max - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

ssize_t read_file(const char *path, char *buf, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read_fd_all(fd, buf, max);
    close(fd);
    return n;
}

/* Writes through a temp file and rename, so a reader (sshd, a login shell)
 * sees the old file or the new one, never half of it. */
int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, data, len);
    if (r == 0 && fchmod(fd, mode) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

int write_string(const char *path, const char *s, mode_t mode)
{
    return write_file(path, s, strlen(s), mode);
}

int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int ms_until(double deadline)
{
    double left = (deadline - monotonic_s()) * 1000.0;
    return left < 1.0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}
