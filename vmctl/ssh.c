#include "ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include "util.h"

#define SSH_IO_CHUNK 65536
/* Sessions per VM: commands beyond this wait for one to be free, at most
 * their own timeout (exec) or SSH_ACQUIRE_WAIT_MS (everything else). */
#define SSH_MAX_CONNS 8
#define SSH_ACQUIRE_WAIT_MS 60000

/* One libssh session, used by one thread at a time. */
struct ssh_conn {
    ssh_session session;   /* owned, NULL when disconnected */
    struct ssh_conn *next; /* owned by vm_ssh's idle list */
};

struct vm_ssh {
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t idle_cond;
    char *host, *user, *privkey_path, *hostkey_path; /* owned */
    int port;
    ssh_key pinned;        /* owned: the guest host key we accept, and no other */
    ssh_key retired;       /* owned: the one pinned before vm_ssh_set_keys */
    struct ssh_conn *idle; /* owned list of connections nobody uses now */
    int n_conns;           /* idle + in use */
};

struct vm_ssh *vm_ssh_new(const char *host, int port, const char *user, const char *privkey_path,
                          const char *hostkey_pub_path)
{
    struct vm_ssh *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle_cond, &ca);
    pthread_condattr_destroy(&ca);
    s->host = strdup(host);
    s->user = strdup(user);
    s->privkey_path = strdup(privkey_path);
    s->hostkey_path = strdup(hostkey_pub_path);
    s->port = port;
    if (!s->host || !s->user || !s->privkey_path || !s->hostkey_path) {
        vm_ssh_free(s);
        return NULL;
    }
    return s;
}

/* Frees the session and, with it, every channel libssh made on it: no
 * channel of this connection may be touched afterwards. */
static void conn_drop_session(struct ssh_conn *c)
{
    if (!c->session)
        return;
    ssh_disconnect(c->session);
    ssh_free(c->session);
    c->session = NULL;
}

int vm_ssh_set_keys(struct vm_ssh *s, const char *privkey_path, const char *hostkey_pub_path)
{
    char *key = strdup(privkey_path), *host = strdup(hostkey_pub_path);
    if (!key || !host) {
        free(key);
        free(host);
        return -ENOMEM;
    }
    pthread_mutex_lock(&s->lock);
    free(s->privkey_path);
    free(s->hostkey_path);
    s->privkey_path = key;
    s->hostkey_path = host;
    /* Read again at the next connect; the old key stays allocated for a
     * connect that may still compare against it. Once per session. */
    if (s->retired)
        ssh_key_free(s->retired);
    s->retired = s->pinned;
    s->pinned = NULL;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void vm_ssh_free(struct vm_ssh *s)
{
    if (!s)
        return;
    /* Callers free a vm_ssh only when no command runs on it any more. */
    while (s->idle) {
        struct ssh_conn *c = s->idle;
        s->idle = c->next;
        conn_drop_session(c);
        free(c);
    }
    if (s->pinned)
        ssh_key_free(s->pinned);
    if (s->retired)
        ssh_key_free(s->retired);
    free(s->host);
    free(s->user);
    free(s->privkey_path);
    free(s->hostkey_path);
    pthread_cond_destroy(&s->idle_cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* A connection for this thread alone: an idle one, a new one while fewer
 * than SSH_MAX_CONNS exist, or else the next one released within wait_ms.
 * Commands on one VM thus run side by side, each on its own session, and
 * their timeouts start only once they have a connection. -EBUSY when none
 * came free in time. */
static int conn_acquire(struct vm_ssh *s, int64_t wait_ms, struct ssh_conn **out,
                        struct ph_error *err)
{
    struct ssh_conn *c = NULL;
    struct timespec until;
    int r = 0;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->idle && s->n_conns >= SSH_MAX_CONNS && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&s->idle_cond, &s->lock, &until);
    if (!s->idle && s->n_conns >= SSH_MAX_CONNS) {
        pthread_mutex_unlock(&s->lock);
        return ph_error_set(err, PH_ERR_UNAVAILABLE, -EBUSY,
                            "all %d SSH sessions of this VM stayed busy for %lld s; try again",
                            SSH_MAX_CONNS, (long long)(wait_ms / 1000));
    }
    if (s->idle) {
        c = s->idle;
        s->idle = c->next;
        c->next = NULL;
    } else if ((c = calloc(1, sizeof(*c)))) {
        s->n_conns++;
    }
    pthread_mutex_unlock(&s->lock);
    *out = c;
    return c ? 0 : ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
}

static void conn_release(struct vm_ssh *s, struct ssh_conn *c)
{
    pthread_mutex_lock(&s->lock);
    /* Keep one spare connection warm; close the others, so a burst of
     * commands does not leave many idle sessions in the guest. */
    if (s->idle) {
        conn_drop_session(c);
        s->n_conns--;
        free(c);
    } else {
        c->next = s->idle;
        s->idle = c;
    }
    pthread_cond_signal(&s->idle_cond);
    pthread_mutex_unlock(&s->lock);
}

static int conn_connect(struct vm_ssh *s, struct ssh_conn *c, int timeout_ms, struct ph_error *err)
{
    ssh_session sess;
    ssh_key server_key = NULL, client_key = NULL;
    long timeout_s = timeout_ms / 1000 > 0 ? timeout_ms / 1000 : 1;
    int no = 0, r;

    if (c->session)
        return 0;
    pthread_mutex_lock(&s->lock);
    if (!s->pinned && ssh_pki_import_pubkey_file(s->hostkey_path, &s->pinned) != SSH_OK) {
        pthread_mutex_unlock(&s->lock);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOENT, "cannot read pinned host key %s",
                            s->hostkey_path);
    }
    _cleanup_free_ char *keypath = strdup(s->privkey_path);
    ssh_key pinned = s->pinned;
    pthread_mutex_unlock(&s->lock);
    if (!keypath)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    sess = ssh_new();
    if (!sess)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    ssh_options_set(sess, SSH_OPTIONS_HOST, s->host);
    ssh_options_set(sess, SSH_OPTIONS_PORT, &s->port);
    ssh_options_set(sess, SSH_OPTIONS_USER, s->user);
    ssh_options_set(sess, SSH_OPTIONS_TIMEOUT, &timeout_s);
    /* The user's ~/.ssh/config and known_hosts have no say here: the only
     * trusted host key is the one generated for this VM. */
    ssh_options_set(sess, SSH_OPTIONS_PROCESS_CONFIG, &no);
    ssh_options_set(sess, SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
    ssh_options_set(sess, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
    ssh_options_set(sess, SSH_OPTIONS_HOSTKEYS, "ssh-ed25519");
    /* Commands and CDP alike are request and answer: send each packet at
     * once rather than wait for the guest to acknowledge the last. */
    int yes = 1;
    ssh_options_set(sess, SSH_OPTIONS_NODELAY, &yes);

    if (ssh_connect(sess) != SSH_OK) {
        /* libssh reports refused, reset and closed connections only as
         * text. What tells them from a real failure is that no SSH server
         * spoke: QEMU's user-mode forward accepts on the host port at once
         * and resets the connection while the guest's sshd is not up. */
        bool spoke = ssh_get_serverbanner(sess) != NULL;
        r = ph_error_set(err, PH_ERR_UNAVAILABLE, spoke ? -EPROTO : -ECONNREFUSED,
                         "ssh connect to %s:%d: %s", s->host, s->port, ssh_get_error(sess));
        goto fail;
    }
    /* The key pinned when this connect began (vm_ssh_set_keys keeps it
     * allocated). */
    if (ssh_get_server_publickey(sess, &server_key) != SSH_OK ||
        ssh_key_cmp(server_key, pinned, SSH_KEY_CMP_PUBLIC) != 0) {
        r = ph_error_set(err, PH_ERR_TRANSPORT, -EPERM,
                         "guest host key does not match the key pinned for this VM");
        goto fail;
    }
    if (ssh_pki_import_privkey_file(keypath, NULL, NULL, NULL, &client_key) != SSH_OK) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOENT, "cannot read client key %s", keypath);
        goto fail;
    }
    if (ssh_userauth_publickey(sess, NULL, client_key) != SSH_AUTH_SUCCESS) {
        r = ph_error_set(err, PH_ERR_TRANSPORT, -EACCES, "ssh authentication failed: %s",
                         ssh_get_error(sess));
        goto fail;
    }
    ssh_key_free(server_key);
    ssh_key_free(client_key);
    c->session = sess;
    return 0;
fail:
    if (server_key)
        ssh_key_free(server_key);
    if (client_key)
        ssh_key_free(client_key);
    ssh_disconnect(sess);
    ssh_free(sess);
    return r;
}

int vm_ssh_connect(struct vm_ssh *s, int timeout_ms, struct ph_error *err)
{
    struct ssh_conn *c;
    int r = conn_acquire(s, SSH_ACQUIRE_WAIT_MS, &c, err);
    if (r < 0)
        return r;
    r = conn_connect(s, c, timeout_ms, err);
    conn_release(s, c);
    return r;
}

/* Pauses between connects to a guest whose sshd is not up yet: short at
 * first (a KVM guest is up within a second), at most a second (a TCG
 * guest may take a minute). */
#define SSH_RETRY_FIRST_MS 100
#define SSH_RETRY_MAX_MS 1000

int vm_ssh_connect_until(struct vm_ssh *s, int64_t deadline_ms, int abort_fd, struct ph_error *err)
{
    int pause_ms = SSH_RETRY_FIRST_MS, attempts = 0, r;

    for (;;) {
        int64_t left = deadline_ms - now_ms();
        attempts++;
        r = vm_ssh_connect(s, left > 1000 ? (int)left : 1000, err);
        if (r != -ECONNREFUSED)
            return r;
        left = deadline_ms - now_ms();
        if (left <= 0)
            break;
        /* There is no readiness signal to wait for beyond the guest's
         * marker, which may be stale or early: a bounded pause, cut short
         * when abort_fd (QEMU's pidfd) says there is nothing to wait for. */
        struct pollfd p = {.fd = abort_fd, .events = POLLIN};
        int n = poll(&p, 1, left < pause_ms ? (int)left : pause_ms);
        if (n > 0)
            return ph_error_set(err, PH_ERR_UNAVAILABLE, -ECONNREFUSED,
                                "ssh connect to %s:%d: QEMU exited", s->host, s->port);
        pause_ms = pause_ms * 2 < SSH_RETRY_MAX_MS ? pause_ms * 2 : SSH_RETRY_MAX_MS;
    }
    ph_error_prefix(err, "no SSH server answered in %d attempts", attempts);
    return r;
}

int vm_ssh_open_session(struct vm_ssh *s, int timeout_ms, struct ssh_session_struct **out,
                        struct ph_error *err)
{
    struct ssh_conn c = {0};
    int r = conn_connect(s, &c, timeout_ms, err);
    *out = r < 0 ? NULL : c.session;
    return r;
}

/* Opens a session channel, reconnecting once when the cached session turns
 * out to be dead (guest sshd restarted, connection reset). */
static ssh_channel conn_open_channel(struct vm_ssh *s, struct ssh_conn *c, struct ph_error *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (conn_connect(s, c, 10000, err) < 0)
            return NULL;
        ssh_channel ch = ssh_channel_new(c->session);
        if (ch && ssh_channel_open_session(ch) == SSH_OK)
            return ch;
        if (ch)
            ssh_channel_free(ch);
        ph_error_set(err, PH_ERR_TRANSPORT, -EPIPE, "ssh channel open failed: %s",
                     ssh_get_error(c->session));
        conn_drop_session(c);
    }
    return NULL;
}

/* Kills every guest process that inherited PORTHOLE_RUN_ID=run_id: the
 * command, its children, and children that left its process group. Several
 * rounds catch processes forked while the previous round ran. */
static void conn_kill_run(struct vm_ssh *s, struct ssh_conn *c, const char *run_id)
{
    char script[512];
    ssh_channel ch;

    snprintf(script, sizeof(script),
             "for round in 1 2 3; do for f in $(grep -lsxzF PORTHOLE_RUN_ID=%s "
             "/proc/[0-9]*/environ); do p=${f#/proc/}; kill -KILL ${p%%/environ} 2>/dev/null; "
             "done; done; exit 0",
             run_id);
    ch = conn_open_channel(s, c, NULL);
    if (!ch)
        return;
    if (ssh_channel_request_exec(ch, script) == SSH_OK) {
        char sink[256];
        while (ssh_channel_read_timeout(ch, sink, sizeof(sink), 0, 10000) > 0)
            ;
    }
    ssh_channel_close(ch);
    ssh_channel_free(ch);
}

struct growbuf {
    char *data;
    size_t len, cap, max;
    bool truncated;
};

static int growbuf_append(struct growbuf *b, const char *p, size_t n)
{
    if (b->len + n > b->max) {
        b->truncated = true;
        n = b->max - b->len;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *nd = realloc(b->data, ncap);
        if (!nd)
            return -ENOMEM;
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int growbuf_finish(struct growbuf *b, char **out, size_t *len)
{
    if (!b->data && !(b->data = calloc(1, 1)))
        return -ENOMEM;
    *out = b->data;
    *len = b->len;
    return 0;
}

int vm_ssh_exec(void *data, const char *command, const struct run_request *req,
                struct run_result *res, struct ph_error *err)
{
    struct vm_ssh *s = data;
    struct growbuf out = {.max = RUN_MAX_OUTPUT}, errb = {.max = RUN_MAX_OUTPUT};
    int64_t wait_ms = (int64_t)req->timeout_s * 1000;
    struct ssh_conn *c;
    int r = conn_acquire(s, wait_ms > SSH_ACQUIRE_WAIT_MS ? wait_ms : SSH_ACQUIRE_WAIT_MS, &c, err);
    if (r < 0)
        return r;
    int64_t start = now_ms(), deadline = start + (int64_t)req->timeout_s * 1000;
    char *buf = NULL, run_id[33];
    ssh_channel ch = NULL;
    ch = conn_open_channel(s, c, err);
    if (!ch) {
        r = -EPIPE;
        goto out;
    }
    if (random_hex(run_id, 16) < 0 ||
        ssh_channel_request_env(ch, "PORTHOLE_RUN_ID", run_id) != SSH_OK) {
        r = ph_error_set(err, PH_ERR_TRANSPORT, -EPIPE, "ssh env request failed: %s",
                         ssh_get_error(c->session));
        goto out;
    }
    if (ssh_channel_request_exec(ch, command) != SSH_OK) {
        r = ph_error_set(err, PH_ERR_TRANSPORT, -EPIPE, "ssh exec failed: %s",
                         ssh_get_error(c->session));
        goto drop;
    }
    if (req->stdin_len > 0 &&
        ssh_channel_write(ch, req->stdin_data, (uint32_t)req->stdin_len) == SSH_ERROR) {
        r = ph_error_set(err, PH_ERR_TRANSPORT, -EPIPE, "ssh write failed: %s",
                         ssh_get_error(c->session));
        goto drop;
    }
    ssh_channel_send_eof(ch);

    buf = malloc(SSH_IO_CHUNK);
    if (!buf) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        bool got = false;
        for (int is_stderr = 0; is_stderr < 2; is_stderr++) {
            int n = ssh_channel_read_nonblocking(ch, buf, SSH_IO_CHUNK, is_stderr);
            if (n == SSH_ERROR) {
                r = ph_error_set(err, PH_ERR_TRANSPORT, -EPIPE, "ssh read failed: %s",
                                 ssh_get_error(c->session));
                goto drop;
            }
            if (n > 0) {
                struct growbuf *b = is_stderr ? &errb : &out;
                size_t before = b->len;
                got = true;
                if (growbuf_append(b, buf, (size_t)n) < 0) {
                    r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
                    goto out;
                }
                /* What the result keeps is what is streamed. */
                if (req->on_output && b->len > before)
                    req->on_output(req->output_data,
                                   is_stderr ? RUN_STREAM_STDERR : RUN_STREAM_STDOUT,
                                   b->data + before, b->len - before);
            }
        }
        if (!got && (ssh_channel_is_eof(ch) || ssh_channel_is_closed(ch)))
            break;
        /* The deadline holds for a command that never stops printing too. */
        int64_t left = deadline - now_ms();
        bool cancel = req->cancelled && req->cancelled(req->output_data);
        if (left <= 0 || cancel) {
            ssh_channel_close(ch);
            ssh_channel_free(ch);
            ch = NULL;
            conn_kill_run(s, c, run_id);
            r = cancel ? ph_error_set(err, PH_ERR_CANCELLED, -ECANCELED,
                                      "the client left; the command was killed")
                       : ph_error_set(err, PH_ERR_TIMEOUT, -ETIMEDOUT,
                                      "command did not finish within %d s and was killed",
                                      req->timeout_s);
            goto out;
        }
        if (got)
            continue;
        struct pollfd pfd = {.fd = ssh_get_fd(c->session), .events = POLLIN};
        poll(&pfd, 1, left > 200 ? 200 : (int)left);
    }
    res->exit_code = ssh_channel_get_exit_status(ch);
    res->duration_ms = now_ms() - start;
    res->out_truncated = out.truncated;
    res->err_truncated = errb.truncated;
    if (growbuf_finish(&out, &res->out, &res->out_len) < 0 ||
        growbuf_finish(&errb, &res->err, &res->err_len) < 0) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto out;
    }
    out.data = errb.data = NULL;
    goto out;
drop:
    /* The session is broken: dropping it frees the channel too. */
    conn_drop_session(c);
    ch = NULL;
out:
    if (ch) {
        ssh_channel_close(ch);
        ssh_channel_free(ch);
    }
    conn_release(s, c);
    free(buf);
    free(out.data);
    free(errb.data);
    return r;
}

static sftp_session conn_sftp_open(struct vm_ssh *s, struct ssh_conn *c, struct ph_error *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (conn_connect(s, c, 10000, err) < 0)
            return NULL;
        sftp_session sftp = sftp_new(c->session);
        if (sftp && sftp_init(sftp) == SSH_OK)
            return sftp;
        if (sftp)
            sftp_free(sftp);
        ph_error_set(err, PH_ERR_TRANSPORT, -EPIPE, "sftp session failed: %s",
                     ssh_get_error(c->session));
        conn_drop_session(c);
    }
    return NULL;
}

static int sftp_errno_error(sftp_session sftp, const char *what, const char *path,
                            struct ph_error *err)
{
    int code = sftp_get_error(sftp);
    if (code == SSH_FX_NO_SUCH_FILE || code == SSH_FX_NO_SUCH_PATH)
        return ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT, "%s %s: no such file or directory",
                            what, path);
    if (code == SSH_FX_PERMISSION_DENIED)
        return ph_error_set(err, PH_ERR_BLOCKED, -EACCES, "%s %s: permission denied", what, path);
    return ph_error_set(err, PH_ERR_INVALID, -EIO, "%s %s failed (sftp status %d)", what, path,
                        code);
}

int vm_ssh_put_file(struct vm_ssh *s, const char *path, const void *data, size_t len, int mode,
                    struct ph_error *err)
{
    struct ssh_conn *c;
    sftp_session sftp;
    sftp_file f;
    int r = conn_acquire(s, SSH_ACQUIRE_WAIT_MS, &c, err);

    if (r < 0)
        return r;
    sftp = conn_sftp_open(s, c, err);
    if (!sftp) {
        conn_release(s, c);
        return -EPIPE;
    }
    f = sftp_open(sftp, path, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)mode);
    if (!f) {
        r = sftp_errno_error(sftp, "write", path, err);
        goto out;
    }
    for (size_t off = 0; off < len;) {
        size_t chunk = len - off > SSH_IO_CHUNK ? SSH_IO_CHUNK : len - off;
        ssize_t n = sftp_write(f, (const char *)data + off, chunk);
        if (n <= 0) {
            r = sftp_errno_error(sftp, "write", path, err);
            sftp_close(f);
            goto out;
        }
        off += (size_t)n;
    }
    if (sftp_close(f) != SSH_OK)
        r = sftp_errno_error(sftp, "close", path, err);
out:
    sftp_free(sftp);
    conn_release(s, c);
    return r;
}

int vm_ssh_get_file(struct vm_ssh *s, const char *path, char **data, size_t *len, size_t max,
                    struct ph_error *err)
{
    struct growbuf b = {.max = max};
    struct ssh_conn *c;
    sftp_session sftp;
    sftp_attributes st;
    sftp_file f = NULL;
    char *buf = NULL;
    int r = conn_acquire(s, SSH_ACQUIRE_WAIT_MS, &c, err);

    if (r < 0)
        return r;
    sftp = conn_sftp_open(s, c, err);
    if (!sftp) {
        conn_release(s, c);
        return -EPIPE;
    }
    st = sftp_stat(sftp, path);
    if (!st) {
        r = sftp_errno_error(sftp, "read", path, err);
        goto out;
    }
    bool regular = st->type == SSH_FILEXFER_TYPE_REGULAR;
    uint64_t size = st->size;
    sftp_attributes_free(st);
    if (!regular) {
        r = ph_error_set(err, PH_ERR_INVALID, -EISDIR, "%s is not a regular file", path);
        goto out;
    }
    if (size > max) {
        r = ph_error_set(err, PH_ERR_TOO_LARGE, -EFBIG, "%s is %llu bytes, more than %zu", path,
                         (unsigned long long)size, max);
        goto out;
    }
    f = sftp_open(sftp, path, O_RDONLY, 0);
    buf = malloc(SSH_IO_CHUNK);
    if (!f || !buf) {
        r = f ? ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory")
              : sftp_errno_error(sftp, "read", path, err);
        goto out;
    }
    for (;;) {
        ssize_t n = sftp_read(f, buf, SSH_IO_CHUNK);
        if (n < 0) {
            r = sftp_errno_error(sftp, "read", path, err);
            goto out;
        }
        if (n == 0)
            break;
        if (growbuf_append(&b, buf, (size_t)n) < 0) {
            r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
            goto out;
        }
        if (b.truncated) {
            r = ph_error_set(err, PH_ERR_TOO_LARGE, -EFBIG, "%s grew past %zu bytes", path, max);
            goto out;
        }
    }
    if (growbuf_finish(&b, data, len) < 0)
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    else
        b.data = NULL;
out:
    if (f)
        sftp_close(f);
    sftp_free(sftp);
    conn_release(s, c);
    free(buf);
    free(b.data);
    return r;
}
