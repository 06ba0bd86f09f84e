#include "qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

#define QMP_MAX_LINE (1024 * 1024)

struct qmp {
    int fd;    /* owned */
    char *buf; /* owned: bytes read but not yet parsed */
    size_t len, cap;
};

void qmp_free(struct qmp *q)
{
    if (!q)
        return;
    if (q->fd >= 0)
        close(q->fd);
    free(q->buf);
    free(q);
}

/* Reads one JSON line (QMP sends one object per line). */
static int qmp_read_message(struct qmp *q, int64_t deadline, json_t **out, struct ph_error *err)
{
    for (;;) {
        char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
        if (nl) {
            size_t line = (size_t)(nl - q->buf);
            json_error_t je;
            json_t *msg = json_loadb(q->buf, line, 0, &je);
            memmove(q->buf, nl + 1, q->len - line - 1);
            q->len -= line + 1;
            if (!msg)
                return ph_error_set(err, PH_ERR_INTERNAL, -EPROTO, "QMP sent invalid JSON: %s",
                                    je.text);
            *out = msg;
            return 0;
        }
        if (q->len >= QMP_MAX_LINE)
            return ph_error_set(err, PH_ERR_INTERNAL, -EMSGSIZE, "QMP message too long");
        if (q->cap - q->len < 4096) {
            size_t ncap = q->cap ? q->cap * 2 : 16384;
            char *nb = realloc(q->buf, ncap);
            if (!nb)
                return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
            q->buf = nb;
            q->cap = ncap;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return ph_error_set(err, PH_ERR_TIMEOUT, -ETIMEDOUT, "QMP did not answer in time");
        struct pollfd pfd = {.fd = q->fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return ph_error_set(err, PH_ERR_INTERNAL, -errno, "QMP poll: %s", strerror(errno));
        if (r == 0)
            continue;
        ssize_t n = read(q->fd, q->buf + q->len, q->cap - q->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ph_error_set(err, PH_ERR_UNAVAILABLE, -ECONNRESET, "QMP connection closed");
        q->len += (size_t)n;
    }
}

static int qmp_send(struct qmp *q, json_t *msg, struct ph_error *err)
{
    _cleanup_free_ char *s = json_dumps(msg, JSON_COMPACT);
    if (!s)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = send(q->fd, s + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ph_error_set(err, PH_ERR_UNAVAILABLE, -errno, "QMP send: %s", strerror(errno));
        off += (size_t)n;
    }
    return 0;
}

int qmp_execute(struct qmp *q, const char *command, json_t *args, json_t **ret, int timeout_ms,
                struct ph_error *err)
{
    int64_t deadline = now_ms() + timeout_ms;
    json_t *msg = json_pack("{s:s}", "execute", command);
    int r;

    if (!msg)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if (args)
        json_object_set(msg, "arguments", args);
    r = qmp_send(q, msg, err);
    json_decref(msg);
    if (r < 0)
        return r;
    for (;;) {
        json_t *reply = NULL;
        r = qmp_read_message(q, deadline, &reply, err);
        if (r < 0)
            return r;
        json_t *val = json_object_get(reply, "return");
        if (val) {
            if (ret)
                *ret = json_incref(val);
            json_decref(reply);
            return 0;
        }
        json_t *e = json_object_get(reply, "error");
        if (e) {
            r = ph_error_set(err, PH_ERR_INTERNAL, -EIO, "QMP %s failed: %s", command,
                             json_string_value(json_object_get(e, "desc")) ?: "unknown error");
            json_decref(reply);
            return r;
        }
        /* An asynchronous event: not the reply we wait for. */
        json_decref(reply);
    }
}

int qmp_connect(const char *path, int timeout_ms, struct qmp **out, struct ph_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct qmp *q;
    json_t *greeting = NULL;
    int r;

    if (strlen(path) >= sizeof(sa.sun_path))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENAMETOOLONG, "QMP socket path too long");
    strcpy(sa.sun_path, path);
    q = calloc(1, sizeof(*q));
    if (!q)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = ph_error_set(err, PH_ERR_UNAVAILABLE, -errno, "cannot connect to QMP at %s: %s", path,
                         strerror(errno));
        qmp_free(q);
        return r;
    }
    r = qmp_read_message(q, now_ms() + timeout_ms, &greeting, err);
    if (r < 0) {
        qmp_free(q);
        return r;
    }
    bool ok = json_object_get(greeting, "QMP") != NULL;
    json_decref(greeting);
    if (!ok) {
        qmp_free(q);
        return ph_error_set(err, PH_ERR_INTERNAL, -EPROTO, "no QMP greeting on %s", path);
    }
    r = qmp_execute(q, "qmp_capabilities", NULL, NULL, timeout_ms, err);
    if (r < 0) {
        qmp_free(q);
        return r;
    }
    *out = q;
    return 0;
}
