/* Small shared helpers: cleanup attributes, time, ids, files, strings.
 * Everything here is thread-safe and never prints. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static inline void freep(void *p)
{
    free(*(void **)p);
}
static inline void closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))

/* Hands ownership out of a cleanup-tracked local. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _tp = (p);                                                                   \
        (p) = NULL;                                                                                \
        _tp;                                                                                       \
    })
#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _tf = (fd);                                                                            \
        (fd) = -1;                                                                                 \
        _tf;                                                                                       \
    })

/* The struct that holds member ptr. */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

int64_t now_ms(void);  /* CLOCK_MONOTONIC */
int64_t wall_ms(void); /* CLOCK_REALTIME, ms since epoch */
/* RFC 3339 UTC ("2026-11-22T10:00:00Z") of a wall-clock ms value. */
void format_time_utc(int64_t wall_ms, char *buf, size_t len);

/* Random bytes from getrandom(); returns 0 or -errno. */
int random_bytes(void *buf, size_t len);
/* Lowercase hex of random bytes: out must hold 2*nbytes+1. */
int random_hex(char *out, size_t nbytes);
/* "sb-" + 12 hex chars and similar: prefix + 2*nbytes hex. */
int random_id(char *out, size_t outlen, const char *prefix, size_t nbytes);

/* Constant-time comparison of two NUL-terminated secrets. */
bool secret_equal(const char *a, const char *b);

/* Whole-file helpers. read_file adds a NUL after the data; fails with -EFBIG
 * past max. write_file_atomic writes DIR/.tmp then renames, with mode. */
int read_file(const char *path, char **data, size_t *len, size_t max);
int write_file(const char *path, const void *data, size_t len, int mode);
/* Writes all of data to fd (retrying short writes and EINTR): 0 or -errno. */
int write_all_fd(int fd, const void *data, size_t len);
int write_file_atomic(const char *path, const void *data, size_t len, int mode);
int mkdir_p(const char *path, int mode);
int rm_rf(const char *path);

/* A listening Unix socket at path that only this user can connect to
 * (mode 0600, set before listen), non-blocking and close-on-exec. A socket
 * left at path by an earlier run is replaced; any other file there is
 * -EEXIST. Returns the fd or -errno. */
int unix_listen_private(const char *path, int backlog);
/* A blocking, close-on-exec connection to the Unix socket at path, or
 * -errno. */
int unix_connect(const char *path);

/* A listening TCP socket on addr (an IPv4 or IPv6 literal) and port (0:
 * any free one, written to *bound_port when not NULL), non-blocking and
 * close-on-exec. Returns the fd or -errno (-EINVAL for a bad address,
 * -EADDRINUSE when the port is taken). */
int tcp_listen(const char *addr, int port, int backlog, int *bound_port);
/* Fresh TCP port on 127.0.0.1 that nothing listens on right now. */
int alloc_local_port(void);
/* True when something accepts TCP connections on 127.0.0.1:port. */
bool local_port_in_use(int port);

/* Default directories, honouring XDG_STATE_HOME / XDG_CACHE_HOME / HOME.
 * Return malloc'd strings or NULL on OOM. */
char *default_state_dir(void);
char *default_cache_dir(void);

/* Quote s for a POSIX shell as one single-quoted word; malloc'd. */
char *shell_quote(const char *s);

/* Standard base64 (RFC 4648, with padding). encode: malloc'd, NUL-terminated,
 * NULL on OOM. decode: *out malloc'd (NUL-terminated for convenience),
 * -EINVAL on a character outside the alphabet or bad padding (whitespace
 * is skipped), -ENOMEM. */
char *base64_encode(const void *data, size_t len);
int base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len);

/* Checks an environment variable name ([A-Za-z_][A-Za-z0-9_]*, <= 128). */
bool env_name_valid(const char *name);
