/* state: a change is in the database when state_put returns while nothing
 * holds the lock; listings see pending changes; a database locked by
 * another connection makes writes wait (and say so), never the caller, and
 * nothing is lost once the lock goes, in the order the changes were made. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "state.h"
#include "util.h"

static json_t *rec(const char *id, int n)
{
    return json_pack("{s:s, s:i}", "id", id, "n", n);
}

static int put(struct state_db *db, const char *id, const char *kind, int n)
{
    json_t *r = rec(id, n);
    int ret = state_put(db, id, kind, r);
    json_decref(r);
    return ret;
}

/* The "n" of id in a listing of kind, -1 when absent, -2 when twice. */
static int n_of(struct state_db *db, const char *kind, const char *id)
{
    json_t *all = NULL, *v;
    size_t i;
    int n = -1;

    if (state_list(db, kind, &all) < 0)
        return -3;
    json_array_foreach(all, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "id")), id) == 0)
            n = n == -1 ? (int)json_integer_value(json_object_get(v, "n")) : -2;
    }
    json_decref(all);
    return n;
}

/* What the database itself holds for id, read by a connection of its own. */
static int n_on_disk(const char *path, const char *id)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT record FROM objects WHERE id = ?1", -1, &st, NULL) ==
            SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            json_t *r = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
            n = (int)json_integer_value(json_object_get(r, "n"));
            json_decref(r);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_basic(const char *path)
{
    struct state_db *db = NULL;
    struct ph_error err = {0};

    CHECK(state_open(path, &db, &err) == 0);
    if (!db)
        return;
    CHECK(put(db, "a", "sandbox", 1) == 0);
    CHECK(n_on_disk(path, "a") == 1); /* written before state_put returned */
    CHECK(put(db, "b", "browser", 2) == 0);
    CHECK(put(db, "a", "sandbox", 3) == 0); /* the newest stands */
    CHECK(n_of(db, "sandbox", "a") == 3);
    CHECK(n_of(db, "browser", "a") == -1);
    CHECK(n_of(db, NULL, "b") == 2);
    CHECK(state_flush(db, 10000) == 0);
    CHECK(n_on_disk(path, "a") == 3);
    CHECK(n_on_disk(path, "b") == 2);
    CHECK(state_delete(db, "b") == 0);
    CHECK(n_of(db, NULL, "b") == -1); /* pending delete hides the row */
    CHECK(state_flush(db, 10000) == 0);
    CHECK(n_on_disk(path, "b") == -1);
    /* A record that changes kind. */
    CHECK(put(db, "a", "browser", 4) == 0);
    CHECK(n_of(db, "sandbox", "a") == -1);
    CHECK(n_of(db, "browser", "a") == 4);
    CHECK(put(db, "c", "sandbox", 5) == 0);
    state_close(db); /* writes what is pending */
    CHECK(n_on_disk(path, "a") == 4);
    CHECK(n_on_disk(path, "c") == 5);

    /* Order: oldest first, new pending ones after the rows. */
    CHECK(state_open(path, &db, &err) == 0);
    if (!db)
        return;
    CHECK(put(db, "d", "sandbox", 6) == 0);
    CHECK(put(db, "e", "sandbox", 7) == 0);
    json_t *all = NULL;
    CHECK(state_list(db, "sandbox", &all) == 0);
    CHECK(json_array_size(all) == 3);
    CHECK_STR(json_string_value(json_object_get(json_array_get(all, 0), "id")), "c");
    CHECK_STR(json_string_value(json_object_get(json_array_get(all, 1), "id")), "d");
    CHECK_STR(json_string_value(json_object_get(json_array_get(all, 2), "id")), "e");
    json_decref(all);
    state_close(db);
}

static void test_locked(const char *path)
{
    struct state_db *db = NULL;
    struct ph_error err = {0};
    sqlite3 *other = NULL;
    char why[256] = "";

    CHECK(state_open(path, &db, &err) == 0);
    CHECK(sqlite3_open(path, &other) == SQLITE_OK);
    if (!db || !other)
        return;
    CHECK(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
    int64_t t0 = now_ms();
    CHECK(put(db, "locked", "sandbox", 8) == 0);
    CHECK(state_delete(db, "c") == 0);
    /* The callers never wait on the lock: a loop thread's bound. */
    CHECK(now_ms() - t0 < STATE_BUSY_TIMEOUT_MS / 2);
    CHECK(n_of(db, "sandbox", "locked") == 8);
    CHECK(n_of(db, "sandbox", "c") == -1);
    CHECK(state_flush(db, STATE_BUSY_TIMEOUT_MS + 2000) == -ETIMEDOUT);
    CHECK(state_write_failing(db, why, sizeof(why)));
    CHECK(strstr(why, "locked") != NULL);
    CHECK(n_on_disk(path, "locked") == -1);
    /* Changes made while others wait go after them, never ahead. */
    CHECK(put(db, "locked", "sandbox", 9) == 0);
    CHECK(n_of(db, "sandbox", "locked") == 9);
    CHECK(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(other);
    CHECK(state_flush(db, 3 * STATE_BUSY_TIMEOUT_MS) == 0);
    CHECK(!state_write_failing(db, why, sizeof(why)));
    CHECK(n_on_disk(path, "locked") == 9);
    CHECK(n_on_disk(path, "c") == -1);
    /* Back on the direct path once the queue is empty. */
    CHECK(put(db, "locked", "sandbox", 10) == 0);
    CHECK(n_on_disk(path, "locked") == 10);
    state_close(db);
}

/* Many commits: the writer checkpoints the WAL between them (autocheckpoint
 * is off), and every last value stands. */
static void test_many(const char *path)
{
    struct state_db *db = NULL;
    struct ph_error err = {0};
    char id[16];

    CHECK(state_open(path, &db, &err) == 0);
    if (!db)
        return;
    for (int i = 0; i < 10 * STATE_CHECKPOINT_EVERY; i++) {
        snprintf(id, sizeof(id), "m%d", i % 7);
        CHECK(put(db, id, "sandbox", i) == 0);
    }
    CHECK(state_flush(db, 10000) == 0);
    for (int k = 0; k < 7; k++) {
        int last = 10 * STATE_CHECKPOINT_EVERY - 1;
        while (last % 7 != k)
            last--;
        snprintf(id, sizeof(id), "m%d", k);
        CHECK(n_on_disk(path, id) == last);
    }
    state_close(db);
}

/* A process that blocks SIGTERM and takes it with sigwait (the gateway's
 * signal thread) must get it there: the writer thread must not take it,
 * where its default action would end the process. */
static void test_signals(const char *path)
{
    struct state_db *db = NULL;
    struct ph_error err = {0};
    sigset_t set;
    int sig = 0;

    /* In the gateway's order: the database is opened before the signal
     * is blocked (the writer thread starts with the mask of that time). */
    CHECK(state_open(path, &db, &err) == 0);
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (int i = 0; i < 20; i++) {
        CHECK(kill(getpid(), SIGUSR1) == 0);
        CHECK(sigwait(&set, &sig) == 0 && sig == SIGUSR1);
        CHECK(put(db, "sig", "sandbox", i) == 0); /* the writer at work meanwhile */
    }
    state_close(db);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int main(void)
{
    char dir[] = "/tmp/test-state-XXXXXX", path[64];

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/state.db", dir);
    test_basic(path);
    test_locked(path);
    test_many(path);
    test_signals(path);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    CHECK_DONE();
}
