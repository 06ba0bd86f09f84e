#include "vm_shell.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "chanpump.h"
#include "run.h"
#include "ssh.h"

#define SHELL_CONNECT_MS 10000
/* How long poll sleeps with nothing to do: the session's liveness is
 * looked at this often. */
#define SHELL_IDLE_MS 1000

struct vm_shell {
    pthread_mutex_t lock;
    int refs;       /* the caller's and the thread's; under lock */
    bool closing;   /* vm_shell_close ran; under lock */
    bool resize;    /* cols/rows changed since the thread applied them; under lock */
    int cols, rows; /* under lock */
    int exit_status;
    int wake_fd;          /* eventfd: closing or resize */
    ssh_session session;  /* the thread's */
    struct chan_pump tty; /* the thread's */
    char buf[CHAN_PUMP_BUF];
};

static void shell_unref(struct vm_shell *sh)
{
    pthread_mutex_lock(&sh->lock);
    bool last = --sh->refs == 0;
    pthread_mutex_unlock(&sh->lock);
    if (!last)
        return;
    chan_pump_close(&sh->tty);
    if (sh->session) {
        ssh_disconnect(sh->session);
        ssh_free(sh->session);
    }
    if (sh->wake_fd >= 0)
        close(sh->wake_fd);
    pthread_mutex_destroy(&sh->lock);
    free(sh);
}

static int clamp(int v, int hi)
{
    return v < 1 ? 1 : v > hi ? hi : v;
}

void vm_shell_resize(struct vm_shell *sh, int cols, int rows)
{
    uint64_t one = 1;

    pthread_mutex_lock(&sh->lock);
    sh->cols = clamp(cols, VM_SHELL_MAX_COLS);
    sh->rows = clamp(rows, VM_SHELL_MAX_ROWS);
    sh->resize = true;
    pthread_mutex_unlock(&sh->lock);
    if (write(sh->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        fprintf(stderr, "shell: cannot wake its thread: %s\n", strerror(errno));
}

int vm_shell_exit_status(struct vm_shell *sh)
{
    pthread_mutex_lock(&sh->lock);
    int r = sh->exit_status;
    pthread_mutex_unlock(&sh->lock);
    return r;
}

void vm_shell_close(struct vm_shell *sh)
{
    uint64_t one = 1;

    if (!sh)
        return;
    pthread_mutex_lock(&sh->lock);
    sh->closing = true;
    pthread_mutex_unlock(&sh->lock);
    if (write(sh->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        fprintf(stderr, "shell: cannot wake its thread: %s\n", strerror(errno));
    shell_unref(sh);
}

/* Applies a pending resize. False once vm_shell_close ran. */
static bool shell_control(struct vm_shell *sh)
{
    uint64_t n;
    if (read(sh->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        return false;
    pthread_mutex_lock(&sh->lock);
    bool closing = sh->closing, resize = sh->resize;
    int cols = sh->cols, rows = sh->rows;
    sh->resize = false;
    pthread_mutex_unlock(&sh->lock);
    if (resize && !closing)
        ssh_channel_change_pty_size(sh->tty.ch, cols, rows);
    return !closing;
}

static void *shell_thread(void *data)
{
    struct vm_shell *sh = data;

    for (;;) {
        ssize_t m;
        while ((m = chan_pump_step(&sh->tty, sh->buf, sizeof(sh->buf))) > 0)
            ;
        if (m < 0 || !ssh_is_connected(sh->session))
            break;
        struct pollfd p[3] = {
            {.fd = sh->wake_fd, .events = POLLIN},
            {.fd = sh->tty.fd, .events = chan_pump_events(&sh->tty)},
            /* While the client has not taken the last output, the session
             * is not read: its socket would stay readable and poll spin,
             * and the guest is held back by TCP as it should be. */
            {.fd = sh->tty.out_len ? -1 : ssh_get_fd(sh->session), .events = POLLIN},
        };
        if (poll(p, 3, SHELL_IDLE_MS) < 0 && errno != EINTR)
            break;
        if (p[0].revents && !shell_control(sh))
            break;
    }
    /* The status is known before the socket closes, so whoever reads EOF
     * can ask for it. */
    if (chan_pump_guest_done(&sh->tty)) {
        int code = ssh_channel_get_exit_status(sh->tty.ch);
        pthread_mutex_lock(&sh->lock);
        sh->exit_status = code >= 0 && code <= 255 ? code : -1;
        pthread_mutex_unlock(&sh->lock);
    }
    chan_pump_close(&sh->tty);
    shell_unref(sh);
    return NULL;
}

/* Opens the channel: a PTY, then the login shell or the command. */
static ssh_channel shell_channel(ssh_session session, const struct vm_shell_opts *o,
                                 struct ph_error *err)
{
    ssh_channel ch = ssh_channel_new(session);
    char *wrapped = NULL;

    if (!ch) {
        ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        return NULL;
    }
    if (o->command) {
        struct run_request req = RUN_REQUEST_INIT(o->command);
        if (!(wrapped = run_wrap_command(&req))) {
            ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
            ssh_channel_free(ch);
            return NULL;
        }
    }
    const char *step = "channel";
    int r = ssh_channel_open_session(ch);
    if (r == SSH_OK) {
        step = "terminal";
        r = ssh_channel_request_pty_size(ch, o->term ? o->term : "xterm-256color",
                                         clamp(o->cols, VM_SHELL_MAX_COLS),
                                         clamp(o->rows, VM_SHELL_MAX_ROWS));
    }
    if (r == SSH_OK) {
        step = wrapped ? "command" : "shell";
        r = wrapped ? ssh_channel_request_exec(ch, wrapped) : ssh_channel_request_shell(ch);
    }
    free(wrapped);
    if (r == SSH_OK)
        return ch;
    ph_error_set(err, PH_ERR_TRANSPORT, -EIO, "ssh %s request failed: %s", step,
                 ssh_get_error(session));
    ssh_channel_close(ch);
    ssh_channel_free(ch);
    return NULL;
}

int vm_shell_open(struct vm_ssh *ssh, const struct vm_shell_opts *o, struct vm_shell **out, int *fd,
                  struct ph_error *err)
{
    struct vm_shell *sh = calloc(1, sizeof(*sh));
    int sv[2] = {-1, -1}, r;
    pthread_t thread;
    pthread_attr_t attr;

    if (!sh)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    pthread_mutex_init(&sh->lock, NULL);
    sh->refs = 1;
    sh->exit_status = -1;
    chan_pump_reset(&sh->tty);
    if ((sh->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -errno, "shell socket: %s", strerror(errno));
        goto fail;
    }
    if ((r = vm_ssh_open_session(ssh, SHELL_CONNECT_MS, &sh->session, err)) < 0)
        goto fail;
    ssh_channel ch = shell_channel(sh->session, o, err);
    if (!ch) {
        r = -EIO;
        goto fail;
    }
    if ((r = chan_pump_init(&sh->tty, sv[1], ch)) < 0) {
        ssh_channel_close(ch);
        ssh_channel_free(ch);
        ph_error_set(err, PH_ERR_INTERNAL, r, "out of memory");
        goto fail;
    }
    sv[1] = -1;
    sh->refs = 2;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    r = -pthread_create(&thread, &attr, shell_thread, sh);
    pthread_attr_destroy(&attr);
    if (r < 0) {
        sh->refs = 1;
        ph_error_set(err, PH_ERR_INTERNAL, r, "shell thread: %s", strerror(-r));
        goto fail;
    }
    *out = sh;
    *fd = sv[0];
    return 0;
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    shell_unref(sh);
    return r;
}
