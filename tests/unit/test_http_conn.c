/* Unit tests for gateway/http_conn.c's policy: which connection is admitted,
 * refused or shed, and which unauthenticated one has idled too long; then
 * a real server's listener with the same-user check, which asks the
 * kernel who is on the other end. A real gateway is driven through the
 * rules in tests/integration/test_conn_limits.py. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http_private.h"

#include "check.h"

#define NOW 100000
#define A HTTP_CLIENT_ADDR(0x0100000a) /* 10.0.0.1 */
#define B HTTP_CLIENT_ADDR(0x0200000a)
#define U HTTP_CLIENT_UID(1000)

static const struct http_conn_limits lim = {
    .max_conns = 4, .cap = 8, .room = 9, .per_client = 2, .unauth_timeout_ms = 10000};

enum { AUTHED = 1, BUSY = 2, CLOSING = 4, PROBATION = 8 };

/* An entry last active at NOW - age_ms. */
static struct http_conn_entry conn(uint64_t client, int64_t age_ms, unsigned flags)
{
    return (struct http_conn_entry){.wsi = (struct lws *)1,
                                    .client = client,
                                    .active_ms = NOW - age_ms,
                                    .authenticated = flags & AUTHED,
                                    .in_request = flags & BUSY,
                                    .closing = flags & CLOSING,
                                    .probation = flags & PROBATION};
}
#define idle(client, age_ms) conn(client, age_ms, 0)
#define authed(client, age_ms) conn(client, age_ms, AUTHED)
#define busy(client, age_ms) conn(client, age_ms, BUSY)
#define closing(client) conn(client, 0, CLOSING)
#define probation(client, age_ms) conn(client, age_ms, PROBATION)

static enum http_admit decide_as(const struct http_conn_entry *t, size_t n, uint64_t client,
                                 enum http_shown shown, size_t *victim)
{
    *victim = SIZE_MAX;
    return http_conn_decide(t, n, &lim, client, shown, NOW, victim);
}

/* A newcomer whose request has arrived, without a token. */
static enum http_admit decide(const struct http_conn_entry *t, size_t n, uint64_t client,
                              size_t *victim)
{
    return decide_as(t, n, client, HTTP_SHOWN_REQUEST, victim);
}

static void test_room(void)
{
    struct http_conn_entry t[] = {idle(A, 0), authed(B, 0), busy(U, 0)};
    size_t v;

    CHECK(decide(t, 0, A, &v) == HTTP_ADMIT);
    CHECK(decide(t, 3, A, &v) == HTTP_ADMIT);
    CHECK(decide(t, 3, HTTP_CLIENT_OWNER, &v) == HTTP_ADMIT);
}

static void test_per_client(void)
{
    struct http_conn_entry t[] = {idle(A, 0), authed(A, 0), closing(B), closing(B)};
    size_t v;

    /* Authenticated connections count too: the bound is on sockets. */
    CHECK(decide(t, 2, A, &v) == HTTP_REFUSE_CLIENT);
    /* Closing ones do not. */
    CHECK(decide(t, 4, B, &v) == HTTP_ADMIT);
    CHECK(decide(t, 4, U, &v) == HTTP_ADMIT);

    /* The gateway's own user has no per-client bound, only the total. */
    struct http_conn_entry own[] = {idle(HTTP_CLIENT_OWNER, 0), idle(HTTP_CLIENT_OWNER, 0),
                                    idle(HTTP_CLIENT_OWNER, 0)};
    CHECK(decide(own, 3, HTTP_CLIENT_OWNER, &v) == HTTP_ADMIT);

    /* Local users whose socket could not be looked up share one bound. */
    struct http_conn_entry unk[] = {idle(HTTP_CLIENT_UNKNOWN, 0), idle(HTTP_CLIENT_UNKNOWN, 0)};
    CHECK(decide(unk, 2, HTTP_CLIENT_UNKNOWN, &v) == HTTP_REFUSE_CLIENT);
}

static void test_full(void)
{
    size_t v;

    /* Authenticated connections are never shed. */
    struct http_conn_entry all_authed[] = {authed(A, 90000), authed(B, 90000), authed(U, 90000),
                                           authed(HTTP_CLIENT_OWNER, 90000)};
    CHECK(decide(all_authed, 4, HTTP_CLIENT_OWNER, &v) == HTTP_REFUSE_FULL);

    /* The unauthenticated one idle longest goes, past the grace period. */
    struct http_conn_entry t[] = {authed(A, 90000), idle(B, 3000), idle(U, 5000),
                                  idle(HTTP_CLIENT_OWNER, 2000)};
    CHECK(decide(t, 4, HTTP_CLIENT_OWNER, &v) == HTTP_ADMIT_EVICTING);
    CHECK(v == 2);

    /* Connections younger than the grace are spared: a burst of
     * newcomers is refused rather than shedding each other unread. */
    struct http_conn_entry young[] = {idle(A, 10), idle(B, 500), idle(U, 999), authed(A, 90000)};
    CHECK(decide(young, 4, HTTP_CLIENT_OWNER, &v) == HTTP_REFUSE_FULL);
    young[1].active_ms = NOW - 1000;
    CHECK(decide(young, 4, HTTP_CLIENT_OWNER, &v) == HTTP_ADMIT_EVICTING);
    CHECK(v == 1);

    /* A request in progress keeps its connection, unless it is an
     * unauthenticated one past the timeout and nothing idle is left. */
    struct http_conn_entry reqs[] = {busy(A, 9999), busy(B, 20000), busy(U, 15000),
                                     authed(A, 90000)};
    CHECK(decide(reqs, 4, HTTP_CLIENT_OWNER, &v) == HTTP_ADMIT_EVICTING);
    CHECK(v == 1);
    reqs[1].active_ms = reqs[2].active_ms = NOW - 9999;
    CHECK(decide(reqs, 4, HTTP_CLIENT_OWNER, &v) == HTTP_REFUSE_FULL);
    /* Idle ones go before slow ones, however old. */
    reqs[1] = busy(B, 80000);
    reqs[2] = idle(U, 1500);
    CHECK(decide(reqs, 4, HTTP_CLIENT_OWNER, &v) == HTTP_ADMIT_EVICTING);
    CHECK(v == 2);

    /* The per-client bound comes first: a client over it is refused even
     * when it could shed. */
    struct http_conn_entry mine[] = {idle(A, 5000), idle(A, 5000), idle(B, 5000), idle(B, 5000)};
    CHECK(decide(mine, 4, A, &v) == HTTP_REFUSE_CLIENT);
    CHECK(decide(mine, 4, U, &v) == HTTP_ADMIT_EVICTING);

    /* Closing entries free no slot until lws is done with them, and may
     * be at most cap in all. */
    struct http_conn_entry lingering[] = {closing(A), closing(A), closing(A), closing(A),
                                          closing(B), closing(B), closing(B), idle(U, 0)};
    CHECK(decide(lingering, 7, HTTP_CLIENT_OWNER, &v) == HTTP_ADMIT);
    CHECK(decide(lingering, 8, HTTP_CLIENT_OWNER, &v) == HTTP_REFUSE_FULL);
}

static void test_credential(void)
{
    size_t v;

    /* A newcomer whose first request shows a valid token sheds any
     * unauthenticated connection: young ones, idle ones first. */
    struct http_conn_entry young[] = {idle(A, 10), busy(B, 20), idle(U, 5), authed(A, 0)};
    CHECK(decide(young, 4, HTTP_CLIENT_OWNER, &v) == HTTP_REFUSE_FULL);
    CHECK(decide_as(young, 4, HTTP_CLIENT_OWNER, HTTP_SHOWN_TOKEN, &v) == HTTP_ADMIT_EVICTING);
    CHECK(v == 0);
    struct http_conn_entry busy_only[] = {busy(A, 10), busy(B, 20), authed(U, 5), authed(A, 0)};
    CHECK(decide_as(busy_only, 4, HTTP_CLIENT_OWNER, HTTP_SHOWN_TOKEN, &v) == HTTP_ADMIT_EVICTING);
    CHECK(v == 1);
    /* Never an authenticated one, and no bound is lifted. */
    struct http_conn_entry all_authed[] = {authed(A, 9), authed(B, 9), authed(U, 9), authed(A, 9)};
    CHECK(decide_as(all_authed, 4, HTTP_CLIENT_OWNER, HTTP_SHOWN_TOKEN, &v) == HTTP_REFUSE_FULL);
    CHECK(decide_as(young, 4, A, HTTP_SHOWN_REQUEST, &v) == HTTP_REFUSE_CLIENT);
    CHECK(decide_as(all_authed, 4, A, HTTP_SHOWN_TOKEN, &v) == HTTP_REFUSE_CLIENT);
}

static void test_probation(void)
{
    size_t v;

    /* Full of young connections: one that has sent nothing yet is let in
     * on probation (its first request decides), one whose request showed
     * no token is refused. */
    struct http_conn_entry young[] = {idle(A, 10), idle(B, 20), idle(U, 5), authed(A, 0)};
    CHECK(decide_as(young, 4, HTTP_CLIENT_OWNER, HTTP_SHOWN_NOTHING, &v) == HTTP_ADMIT_PROBATION);
    CHECK(decide_as(young, 4, HTTP_CLIENT_OWNER, HTTP_SHOWN_REQUEST, &v) == HTTP_REFUSE_FULL);
    /* With an idle one to shed, nobody waits. */
    young[2].active_ms = NOW - 2000;
    CHECK(decide_as(young, 4, HTTP_CLIENT_OWNER, HTTP_SHOWN_NOTHING, &v) == HTTP_ADMIT_EVICTING);
    CHECK(v == 2);

    /* Probation entries hold no slot and are not shed, but count for
     * their client and against the cap. */
    struct http_conn_entry t[] = {probation(A, 5000), probation(A, 5000), probation(B, 5000),
                                  probation(B, 5000), probation(U, 5000)};
    CHECK(decide(t, 5, HTTP_CLIENT_OWNER, &v) == HTTP_ADMIT);
    CHECK(decide(t, 5, A, &v) == HTTP_REFUSE_CLIENT);
    CHECK(http_conn_victim(t, 5, &lim, true, NOW) == SIZE_MAX);
    struct http_conn_entry capped[] = {idle(A, 0),      idle(B, 0),      idle(U, 0),
                                       authed(A, 0),    probation(U, 0), probation(U, 0),
                                       probation(B, 0), closing(A)};
    CHECK(decide_as(capped, 8, HTTP_CLIENT_OWNER, HTTP_SHOWN_NOTHING, &v) == HTTP_REFUSE_FULL);
    /* An admin still gets in, into the room kept past the cap. */
    CHECK(decide_as(capped, 8, HTTP_CLIENT_OWNER, HTTP_SHOWN_TOKEN, &v) == HTTP_ADMIT_EVICTING);
    CHECK(v == 0);
    struct http_conn_entry roomful[9];
    for (size_t i = 0; i < 9; i++)
        roomful[i] = i < 8 ? capped[i] : closing(B);
    CHECK(decide_as(roomful, 9, HTTP_CLIENT_OWNER, HTTP_SHOWN_TOKEN, &v) == HTTP_REFUSE_FULL);

    /* One that says nothing goes after the grace period, not the timeout. */
    struct http_conn_entry e = probation(A, 999);
    CHECK(!http_conn_expired(&e, &lim, NOW));
    e.active_ms = NOW - 1000;
    CHECK(http_conn_expired(&e, &lim, NOW));
    e.in_request = true;
    CHECK(!http_conn_expired(&e, &lim, NOW));
}

/* The token the first request's bytes show, as far as they arrived. */
static void test_peek_bearer(void)
{
    static const struct {
        const char *in, *token;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer abc\r\n\r\n", "abc"},
        {"GET / HTTP/1.1\r\nauthorization:bearer\t  abc \t\r\nX: y\r\n", "abc"},
        {"GET / HTTP/1.1\r\nAuthorization: Bearer abc", NULL}, /* not all there */
        {"GET / HTTP/1.1\r\nAuthorization: Basic abc\r\n\r\n", NULL},
        {"GET / HTTP/1.1\r\nX-Authorization: Bearer abc\r\n\r\n", NULL},
        {"GET / HTTP/1.1\r\nX: Authorization: Bearer abc\r\n\r\n", NULL},
        /* In the body or the next request: not this request's. */
        {"POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\n\r\nAuthorization: Bearer abc\r\n", NULL},
        {"Authorization: Bearer abc\r\n", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", cases[i].in);
        const char *got = http_peek_bearer(buf);
        if (cases[i].token)
            CHECK_STR(got, cases[i].token);
        else if (got) {
            fprintf(stderr, "case %zu: got token \"%s\", want none\n", i, got);
            check_failures++;
        }
    }
}

static void test_expired(void)
{
    struct http_conn_entry e = idle(A, 10000);

    CHECK(http_conn_expired(&e, &lim, NOW));
    e.active_ms = NOW - 9999;
    CHECK(!http_conn_expired(&e, &lim, NOW));
    e = authed(A, 90000);
    CHECK(!http_conn_expired(&e, &lim, NOW));
    e = busy(A, 90000);
    CHECK(!http_conn_expired(&e, &lim, NOW));
    e = idle(A, 90000);
    e.closing = true;
    CHECK(!http_conn_expired(&e, &lim, NOW));
}

static void h_ping(struct http_req *req, void *data)
{
    http_reply_json(req, 200, json_pack("{s:b}", "pong", 1));
}

static void *serve(void *data)
{
    http_server_run(data);
    return NULL;
}

/* Connects to port as uid (when not -1), asks GET /ping; returns 1 when
 * answered 200, 0 when closed unanswered, -1 when it could not try. In a
 * child, where only plain system calls are made (the server's threads
 * live on in the parent). */
static int ping_as(int port, int uid)
{
    pid_t pid = fork();
    int status;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        static const char req[] = "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n";
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        struct timeval tv = {.tv_sec = 5};
        char buf[512];
        int fd;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (uid >= 0 && (setgid((gid_t)uid) < 0 || setuid((uid_t)uid) < 0))
            _exit(3);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            _exit(3);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (write(fd, req, sizeof(req) - 1) < 0)
            _exit(0);
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        _exit(n > 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0 ? 1 : 0);
    }
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) > 1)
        return -1;
    return WEXITSTATUS(status);
}

static void test_listener_same_uid(void)
{
    struct http_server_opts o = {.admin_token = "t0123456789abcdef0123456789abcdef"};
    struct http_server *srv = NULL;
    struct http_listener *l = NULL;
    struct ph_error err = {0};
    pthread_t t;

    lws_set_log_level(LLL_ERR, NULL);
    if (http_server_new(&o, &srv, &err) < 0) {
        fprintf(stderr, "http_server_new: %s\n", err.message);
        check_failures++;
        return;
    }
    CHECK(http_route(srv, HTTP_GET, "/ping", HTTP_ROUTE_PUBLIC, 0, h_ping, NULL) == 0);
    CHECK(http_listener_open(srv, "127.0.0.1", 0, HTTP_LISTENER_SAME_UID, NULL, &l, &err) == 0);
    pthread_create(&t, NULL, serve, srv);

    CHECK(ping_as(http_server_port(srv), -1) == 1);
    CHECK(ping_as(http_listener_port(l), -1) == 1);
    if (geteuid() == 0) {
        /* Another local user: the main listener answers it, the session
         * listener does not. */
        CHECK(ping_as(http_server_port(srv), 65534) == 1);
        CHECK(ping_as(http_listener_port(l), 65534) == 0);
    } else {
        fprintf(stderr, "skipped: connecting as another user needs root\n");
    }

    http_server_stop(srv);
    pthread_join(t, NULL);
    http_server_free(srv);
}

int main(void)
{
    test_room();
    test_per_client();
    test_full();
    test_credential();
    test_probation();
    test_peek_bearer();
    test_expired();
    test_listener_same_uid();
    CHECK_DONE();
}
