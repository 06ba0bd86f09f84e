/* vm_ssh_connect_until against what a booting guest's port does: QEMU's
 * user-mode forward resets connections while no sshd listens in the guest,
 * a closed port refuses them. Both are tried again until the deadline; once
 * a real SSH server answers with a host key other than the pinned one, the
 * connect fails at once with that reason. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <libssh/server.h>

#include "check.h"
#include "ssh.h"
#include "util.h"

struct server {
    int listen_fd;
    int port;
    int resets;           /* connections to reset before acting as a server */
    const char *host_key; /* private key file; NULL: reset every connection */
    int accepted;         /* connections seen, under lock */
    bool stop;
    pthread_mutex_t lock;
};

static int listen_local(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* What slirp does with a forwarded connection nobody in the guest takes:
 * accept it, then reset it. */
static void reset_conn(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

static void serve_ssh(struct server *sv, int fd)
{
    ssh_bind b = ssh_bind_new();
    ssh_session sess = ssh_new();
    if (b && sess && ssh_bind_options_set(b, SSH_BIND_OPTIONS_HOSTKEY, sv->host_key) == SSH_OK &&
        ssh_bind_accept_fd(b, sess, fd) == SSH_OK) {
        /* The client hangs up once it has seen the host key. */
        ssh_handle_key_exchange(sess);
        ssh_disconnect(sess);
    } else {
        close(fd);
    }
    ssh_free(sess);
    ssh_bind_free(b);
}

static void *server_run(void *arg)
{
    struct server *sv = arg;
    for (;;) {
        int fd = accept4(sv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        pthread_mutex_lock(&sv->lock);
        bool stop = sv->stop;
        int n = ++sv->accepted;
        pthread_mutex_unlock(&sv->lock);
        if (fd < 0 || stop) {
            if (fd >= 0)
                close(fd);
            return NULL;
        }
        if (sv->host_key && n > sv->resets)
            serve_ssh(sv, fd);
        else
            reset_conn(fd);
    }
}

static char client_key[64], pinned_pub[64], other_host_key[64];

/* Starts sv's thread on a loopback port; a client of it, pinned to the
 * expected host key. */
static struct vm_ssh *server_start(struct server *sv, pthread_t *th)
{
    sv->listen_fd = listen_local(&sv->port);
    CHECK(sv->listen_fd >= 0);
    CHECK(pthread_create(th, NULL, server_run, sv) == 0);
    return vm_ssh_new("127.0.0.1", sv->port, "root", client_key, pinned_pub);
}

static void server_stop(struct server *sv, pthread_t th)
{
    pthread_mutex_lock(&sv->lock);
    sv->stop = true;
    pthread_mutex_unlock(&sv->lock);
    /* Wake the accept with a connection of our own. */
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)sv->port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
    }
    pthread_join(th, NULL);
    close(sv->listen_fd);
}

static int accepted(struct server *sv)
{
    pthread_mutex_lock(&sv->lock);
    int n = sv->accepted;
    pthread_mutex_unlock(&sv->lock);
    return n;
}

static char dir[] = "/tmp/test_ssh_connect.XXXXXX";

static void make_keys(void)
{
    ssh_key client = NULL, pinned = NULL, other = NULL;
    CHECK(mkdtemp(dir) != NULL);
    snprintf(client_key, sizeof(client_key), "%s/client_key", dir);
    snprintf(pinned_pub, sizeof(pinned_pub), "%s/host_key.pub", dir);
    snprintf(other_host_key, sizeof(other_host_key), "%s/other_host_key", dir);
    CHECK(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &client) == SSH_OK);
    CHECK(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &pinned) == SSH_OK);
    CHECK(ssh_pki_export_privkey_file(client, NULL, NULL, NULL, client_key) == SSH_OK);
    CHECK(ssh_pki_export_pubkey_file(pinned, pinned_pub) == SSH_OK);
    CHECK(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &other) == SSH_OK);
    CHECK(ssh_pki_export_privkey_file(other, NULL, NULL, NULL, other_host_key) == SSH_OK);
    ssh_key_free(client);
    ssh_key_free(pinned);
    ssh_key_free(other);
}

/* A port nobody listens on: refused every time, tried until the deadline. */
static void test_refused(void)
{
    int port, fd = listen_local(&port);
    CHECK(fd >= 0);
    close(fd);
    struct vm_ssh *s = vm_ssh_new("127.0.0.1", port, "root", client_key, pinned_pub);
    struct ph_error err = {0};
    CHECK(s != NULL);

    CHECK(vm_ssh_connect(s, 2000, &err) == -ECONNREFUSED);
    CHECK(err.kind == PH_ERR_UNAVAILABLE);

    int64_t t0 = now_ms();
    CHECK(vm_ssh_connect_until(s, t0 + 1500, -1, &err) == -ECONNREFUSED);
    int64_t took = now_ms() - t0;
    CHECK(took >= 1400 && took < 4000);
    CHECK(strstr(err.message, "no SSH server answered") != NULL);
    vm_ssh_free(s);
}

/* A forward that accepts and resets: several tries, all within the
 * deadline, and the last reason in the message. */
static void test_reset_until_deadline(void)
{
    struct server sv = {.lock = PTHREAD_MUTEX_INITIALIZER};
    pthread_t th;
    struct vm_ssh *s = server_start(&sv, &th);
    struct ph_error err = {0};

    int64_t t0 = now_ms();
    CHECK(vm_ssh_connect_until(s, t0 + 2000, -1, &err) == -ECONNREFUSED);
    int64_t took = now_ms() - t0;
    CHECK(took >= 1900 && took < 5000);
    CHECK(accepted(&sv) >= 3);
    CHECK(err.kind == PH_ERR_UNAVAILABLE);
    CHECK(strstr(err.message, "ssh connect to 127.0.0.1") != NULL);
    fprintf(stderr, "reset until deadline: %d connections in %lld ms: %s\n", accepted(&sv),
            (long long)took, err.message);
    vm_ssh_free(s);
    server_stop(&sv, th);
}

/* Resets while the guest's sshd is not up, then an sshd whose host key is
 * not the pinned one: that ends the wait at once, long before the
 * deadline, and with its own reason. */
static void test_reset_then_wrong_host_key(void)
{
    struct server sv = {.lock = PTHREAD_MUTEX_INITIALIZER, .resets = 3, .host_key = other_host_key};
    pthread_t th;
    struct vm_ssh *s = server_start(&sv, &th);
    struct ph_error err = {0};

    int64_t t0 = now_ms();
    CHECK(vm_ssh_connect_until(s, t0 + 30000, -1, &err) == -EPERM);
    CHECK(now_ms() - t0 < 15000);
    CHECK(accepted(&sv) == 4);
    CHECK(err.kind == PH_ERR_TRANSPORT);
    CHECK(strstr(err.message, "host key does not match") != NULL);
    vm_ssh_free(s);
    server_stop(&sv, th);
}

/* A readable abort fd (QEMU's pidfd once it exited) ends the wait. */
static void test_abort_fd(void)
{
    int port, fd = listen_local(&port), pipefd[2];
    CHECK(fd >= 0);
    close(fd);
    CHECK(pipe(pipefd) == 0);
    CHECK(write(pipefd[1], "x", 1) == 1);
    struct vm_ssh *s = vm_ssh_new("127.0.0.1", port, "root", client_key, pinned_pub);
    struct ph_error err = {0};

    int64_t t0 = now_ms();
    CHECK(vm_ssh_connect_until(s, t0 + 30000, pipefd[0], &err) == -ECONNREFUSED);
    CHECK(now_ms() - t0 < 5000);
    CHECK(strstr(err.message, "QEMU exited") != NULL);
    vm_ssh_free(s);
    close(pipefd[0]);
    close(pipefd[1]);
}

int main(void)
{
    make_keys();
    test_refused();
    test_reset_until_deadline();
    test_reset_then_wrong_host_key();
    test_abort_fd();
    unlink(client_key);
    unlink(pinned_pub);
    unlink(other_host_key);
    rmdir(dir);
    CHECK_DONE();
}
