/* vmctl/qmp.c against a QMP server of the test's own: the greeting, the
 * capabilities handshake, an event before the answer; then the same with
 * each allocation failing in turn, where a failed call must still say why
 * (its error is what a client or the log gets). */
#define ALLOC_FAIL_WRAP
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "alloc_fail.h"
#include "check.h"
#include "qmp.h"

static const char greeting[] =
    "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 8}}, \"capabilities\": []}}\n";
static const char event[] = "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1}}\n";
static const char answer[] = "{\"return\": {\"status\": \"running\", \"running\": true}}\n";

static int listen_fd = -1;
static atomic_bool stopping;

static void send_str(int fd, const char *s)
{
    (void)!send(fd, s, strlen(s), MSG_NOSIGNAL);
}

/* One client at a time: the greeting, then an event and an answer for
 * every command it sends (QMP commands are JSON objects back to back, so
 * "execute" is counted). Allocates nothing the counter sees. */
static void *server_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0 || atomic_load(&stopping)) {
            if (fd >= 0)
                close(fd);
            return NULL;
        }
        send_str(fd, greeting);
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
            buf[n] = '\0';
            for (const char *p = buf; (p = strstr(p, "\"execute\"")); p++) {
                send_str(fd, event);
                send_str(fd, answer);
            }
        }
        close(fd);
    }
}

/* Connect, one command, and its answer as the server sends it. */
static int qmp_round(const char *path, struct ph_error *err)
{
    struct qmp *q = NULL;
    json_t *ret = NULL;
    int r = qmp_connect(path, 5000, &q, err);

    if (r == 0)
        r = qmp_execute(q, "query-status", NULL, &ret, 5000, err);
    if (r == 0) {
        const char *st = json_string_value(json_object_get(ret, "status"));
        CHECK(st && strcmp(st, "running") == 0);
    }
    json_decref(ret);
    qmp_free(q);
    return r;
}

int main(void)
{
    char dir[] = "/tmp/test_qmp.XXXXXX", path[128];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct ph_error err = {0};
    pthread_t server;
    int n;

    alloc_fail_hook_jansson();
    if (!mkdtemp(dir))
        return 2;
    snprintf(path, sizeof(path), "%s/qmp.sock", dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(listen_fd, 4) < 0 || pthread_create(&server, NULL, server_main, NULL) != 0) {
        perror("test_qmp: server");
        return 2;
    }

    CHECK(qmp_round(path, &err) == 0);
    if (err.kind != PH_ERR_NONE)
        fprintf(stderr, "qmp round: %s\n", err.message);

    /* Allocation n of a round fails, for every n until a round has no
     * n-th allocation: each failed round filled its error. */
    for (n = 1; n < 1000; n++) {
        ph_error_clear(&err);
        alloc_fail_after(n);
        int r = qmp_round(path, &err);
        bool fired = alloc_fail_fired();
        alloc_fail_after(0);
        if (!fired) {
            CHECK(r == 0);
            break;
        }
        if (r == 0) {
            fprintf(stderr, "allocation %d failed unnoticed\n", n);
            check_failures++;
        } else if (err.kind == PH_ERR_NONE || !err.message[0]) {
            fprintf(stderr, "allocation %d: %s failed with an empty error (kind %d)\n", n,
                    strerror(-r), err.kind);
            check_failures++;
        }
    }
    CHECK(n > 3 && n < 1000);

    /* A last connection wakes the server to see it should stop. */
    atomic_store(&stopping, true);
    int wake = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (wake >= 0 && connect(wake, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        pthread_join(server, NULL);
    if (wake >= 0)
        close(wake);
    close(listen_fd);
    unlink(path);
    rmdir(dir);
    CHECK_DONE();
}
