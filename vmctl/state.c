#include "state.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* A change not yet in the database: the newest one of its id. */
struct state_op {
    char *id;   /* owned */
    char *kind; /* owned; NULL: a delete */
    char *text; /* owned: the record as JSON; NULL: a delete */
    uint64_t gen;
    bool seen; /* state_list's copies: the database has a row of this id */
    struct state_op *next;
};

struct state_db {
    sqlite3 *wdb;          /* owned: the writer thread's connection */
    sqlite3 *rdb;          /* owned: state_list's, under rlock */
    pthread_mutex_t rlock; /* rdb */
    pthread_mutex_t lock;  /* everything below */
    pthread_cond_t wake;   /* the writer: changes, or stop */
    pthread_cond_t done;   /* a write attempt ended, or wdb came free */
    struct state_op *pending;
    uint64_t gen;
    bool stop, started;
    bool busy;                 /* a thread is using wdb (a write or a checkpoint) */
    unsigned since_checkpoint; /* commits since the WAL was last checkpointed */
    int64_t stop_deadline_ms;
    int failures; /* consecutive failed writes; 0 when the last one went in */
    char error[256];
    pthread_t writer;
};

/* WAL with synchronous=NORMAL: a commit is a write() into the WAL, no
 * fsync, and survives the process being killed; only checkpoints sync,
 * and those the writer thread makes (autocheckpoint is off). */
static const char schema[] = "PRAGMA journal_mode=WAL;"
                             "PRAGMA synchronous=NORMAL;"
                             "PRAGMA wal_autocheckpoint=0;"
                             "CREATE TABLE IF NOT EXISTS objects ("
                             "  id TEXT PRIMARY KEY,"
                             "  kind TEXT NOT NULL,"
                             "  created INTEGER NOT NULL DEFAULT (strftime('%s','now')),"
                             "  record TEXT NOT NULL);";

static void op_clear(struct state_op *op)
{
    free(op->id);
    free(op->kind);
    free(op->text);
}

static void op_free(struct state_op *op)
{
    if (!op)
        return;
    op_clear(op);
    free(op);
}

static void ops_free(struct state_op *op)
{
    while (op) {
        struct state_op *next = op->next;
        op_free(op);
        op = next;
    }
}

/* ---- the writer ------------------------------------------------------ */

static int step_op(sqlite3 *db, const struct state_op *op)
{
    sqlite3_stmt *st = NULL;
    const char *sql = op->text ? "INSERT INTO objects(id, kind, record) VALUES(?1, ?2, ?3) "
                                 "ON CONFLICT(id) DO UPDATE SET kind = ?2, record = ?3"
                               : "DELETE FROM objects WHERE id = ?1";
    int r = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (r == SQLITE_OK) {
        sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
        if (op->text) {
            sqlite3_bind_text(st, 2, op->kind, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, op->text, -1, SQLITE_STATIC);
        }
        r = sqlite3_step(st);
        if (r == SQLITE_DONE)
            r = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return r;
}

/* Writes batch in one transaction: all of it or none. */
static int write_batch(sqlite3 *db, const struct state_op *batch, char *why, size_t why_len)
{
    int r = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

    for (const struct state_op *op = batch; r == SQLITE_OK && op; op = op->next)
        r = step_op(db, op);
    if (r == SQLITE_OK)
        r = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (r == SQLITE_OK)
        return 0;
    snprintf(why, why_len, "%s", sqlite3_errmsg(db));
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -EIO;
}

/* A copy of every pending change, for the writer to write unlocked. */
static struct state_op *pending_copy(const struct state_db *s)
{
    struct state_op *head = NULL, **tail = &head;

    for (const struct state_op *op = s->pending; op; op = op->next) {
        struct state_op *c = calloc(1, sizeof(*c));
        if (c)
            *c = (struct state_op){.id = strdup(op->id),
                                   .kind = op->kind ? strdup(op->kind) : NULL,
                                   .text = op->text ? strdup(op->text) : NULL,
                                   .gen = op->gen};
        if (!c || !c->id || (op->kind && !c->kind) || (op->text && !c->text)) {
            op_free(c);
            ops_free(head);
            return NULL; /* out of memory: the next round tries again */
        }
        *tail = c;
        tail = &c->next;
    }
    return head;
}

/* The batch went in: drop each pending change it carried, unless a newer
 * one of the same id came meanwhile. */
static void pending_written(struct state_db *s, const struct state_op *batch)
{
    for (const struct state_op *w = batch; w; w = w->next)
        for (struct state_op **p = &s->pending; *p; p = &(*p)->next)
            if ((*p)->gen == w->gen) {
                struct state_op *op = *p;
                *p = op->next;
                op_free(op);
                break;
            }
}

static void wait_ms(struct state_db *s, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&s->wake, &s->lock, &ts);
}

static void *writer_main(void *data)
{
    struct state_db *s = data;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        while ((!s->pending && !s->stop && s->since_checkpoint < STATE_CHECKPOINT_EVERY) || s->busy)
            pthread_cond_wait(s->busy ? &s->done : &s->wake, &s->lock);
        if (!s->pending && s->since_checkpoint >= STATE_CHECKPOINT_EVERY) {
            s->busy = true;
            s->since_checkpoint = 0;
            pthread_mutex_unlock(&s->lock);
            /* PASSIVE: copies what no reader still needs and waits for no one. */
            sqlite3_wal_checkpoint_v2(s->wdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
            pthread_mutex_lock(&s->lock);
            s->busy = false;
            pthread_cond_broadcast(&s->done);
            continue;
        }
        if (!s->pending)
            break;
        struct state_op *batch = pending_copy(s);
        char why[sizeof(s->error)] = "out of memory";
        int r = -ENOMEM;
        s->busy = true;
        pthread_mutex_unlock(&s->lock);
        if (batch)
            r = write_batch(s->wdb, batch, why, sizeof(why));
        pthread_mutex_lock(&s->lock);
        s->busy = false;
        if (r == 0) {
            s->since_checkpoint++;
            pending_written(s, batch);
            if (s->failures)
                fprintf(stderr, "state: the database takes writes again after %d failures\n",
                        s->failures);
            s->failures = 0;
            s->error[0] = '\0';
        } else {
            if (!s->failures)
                fprintf(stderr, "state: cannot write the database (%s); retrying\n", why);
            s->failures++;
            snprintf(s->error, sizeof(s->error), "%s", why);
        }
        ops_free(batch);
        pthread_cond_broadcast(&s->done);
        if (r < 0) {
            if (s->stop && now_ms() >= s->stop_deadline_ms)
                break;
            /* SQLite already waited busy_timeout for a lock. */
            wait_ms(s, s->failures < 4 ? 250 << s->failures : 4000);
        }
    }
    for (const struct state_op *op = s->pending; op; op = op->next)
        fprintf(stderr, "state: not saved at exit (%s): %s %s\n", s->error, op->id,
                op->text ? "record" : "delete");
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- open and close -------------------------------------------------- */

static int open_conn(const char *path, sqlite3 **db, int busy_ms, struct ph_error *err)
{
    if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return ph_error_set(err, PH_ERR_INTERNAL, -EIO, "cannot open state database %s: %s", path,
                            *db ? sqlite3_errmsg(*db) : "out of memory");
    sqlite3_busy_timeout(*db, busy_ms);
    return 0;
}

int state_open(const char *path, struct state_db **out, struct ph_error *err)
{
    struct state_db *s = calloc(1, sizeof(*s));
    char *msg = NULL;
    int r;

    if (!s)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    pthread_mutex_init(&s->rlock, NULL);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->done, NULL);
    if ((r = open_conn(path, &s->wdb, STATE_BUSY_TIMEOUT_MS, err)) < 0)
        goto fail;
    if (sqlite3_exec(s->wdb, schema, NULL, NULL, &msg) != SQLITE_OK) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -EIO, "state database %s: %s", path,
                         msg ? msg : "schema failed");
        sqlite3_free(msg);
        goto fail;
    }
    /* Readers of a WAL database wait for no writer: this one's timeout
     * only covers a checkpoint or recovery in progress. */
    if ((r = open_conn(path, &s->rdb, STATE_BUSY_TIMEOUT_MS, err)) < 0)
        goto fail;
    /* The writer takes no signals: a process that waits for SIGTERM in
     * one thread of its own must not have it delivered here (where its
     * default action would kill the process). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int started = pthread_create(&s->writer, NULL, writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started != 0) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -EAGAIN, "cannot start the state writer thread");
        goto fail;
    }
    s->started = true;
    *out = s;
    return 0;
fail:
    state_close(s);
    return r;
}

void state_close(struct state_db *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        s->stop_deadline_ms = now_ms() + STATE_CLOSE_WAIT_MS;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->writer, NULL);
    }
    ops_free(s->pending);
    sqlite3_close(s->wdb);
    sqlite3_close(s->rdb);
    pthread_cond_destroy(&s->done);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->rlock);
    free(s);
}

/* ---- changes --------------------------------------------------------- */

/* Writes one change on the caller's thread, never waiting for a lock:
 * 0 when it is in the database. Called with s->lock held and wdb free;
 * returns with it held again. */
static int write_now(struct state_db *s, const struct state_op *op)
{
    char why[sizeof(s->error)];

    s->busy = true;
    pthread_mutex_unlock(&s->lock);
    sqlite3_busy_timeout(s->wdb, 0);
    int r = write_batch(s->wdb, op, why, sizeof(why));
    sqlite3_busy_timeout(s->wdb, STATE_BUSY_TIMEOUT_MS);
    pthread_mutex_lock(&s->lock);
    s->busy = false;
    if (r == 0 && ++s->since_checkpoint >= STATE_CHECKPOINT_EVERY)
        pthread_cond_signal(&s->wake);
    pthread_cond_broadcast(&s->done);
    return r;
}

/* Makes (kind, text) the newest change of id; takes kind and text. With
 * nothing queued and the connection free it is written at once, so a
 * change the caller goes on to acknowledge is already in the database;
 * otherwise (another process holds the lock, the writer is at work) it is
 * queued for the writer thread, and the caller never waits. */
static int change(struct state_db *s, const char *id, char *kind, char *text)
{
    struct state_op *op = NULL, *next, mine = {.id = strdup(id), .kind = kind, .text = text};
    int r = 0;

    if (!mine.id || (text && !kind)) {
        op_clear(&mine);
        return -ENOMEM;
    }
    pthread_mutex_lock(&s->lock);
    mine.gen = ++s->gen;
    if (!s->pending && !s->busy && !s->stop && write_now(s, &mine) == 0)
        goto drop;
    for (struct state_op **p = &s->pending; *p; p = &(*p)->next)
        if (strcmp((*p)->id, id) == 0) {
            op = *p;
            break;
        }
    if (op && op->gen > mine.gen)
        goto drop; /* queued while this one was being tried: the newer stands */
    if (!op && (op = calloc(1, sizeof(*op)))) {
        op->next = s->pending;
        s->pending = op;
    }
    if (!op) {
        r = -ENOMEM;
        goto drop;
    }
    next = op->next;
    op_clear(op);
    *op = mine;
    op->next = next;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return 0;
drop:
    pthread_mutex_unlock(&s->lock);
    op_clear(&mine);
    return r;
}

int state_put(struct state_db *s, const char *id, const char *kind, json_t *record)
{
    char *text = json_dumps(record, JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    return change(s, id, strdup(kind), text);
}

int state_delete(struct state_db *s, const char *id)
{
    return change(s, id, NULL, NULL);
}

int state_flush(struct state_db *s, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int r = 0;

    pthread_mutex_lock(&s->lock);
    while ((s->pending || s->busy) && r == 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            r = -ETIMEDOUT;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000 + 1;
        pthread_cond_timedwait(&s->done, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

bool state_write_failing(struct state_db *s, char *why, size_t why_len)
{
    pthread_mutex_lock(&s->lock);
    bool failing = s->failures > 0;
    if (failing && why)
        snprintf(why, why_len, "%s", s->error);
    pthread_mutex_unlock(&s->lock);
    return failing;
}

/* ---- reading ---------------------------------------------------------- */

static struct state_op *op_find(struct state_op *ops, const char *id)
{
    for (; ops; ops = ops->next)
        if (strcmp(ops->id, id) == 0)
            return ops;
    return NULL;
}

static int append_text(json_t *arr, const char *text)
{
    json_t *rec = text ? json_loads(text, 0, NULL) : NULL;
    /* A row that no longer parses is skipped rather than failing the
     * whole listing (and so the gateway's start). */
    return rec ? json_array_append_new(arr, rec) : 0;
}

int state_list(struct state_db *s, const char *kind, json_t **out)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    struct state_op *pending;
    int r = 0, step;

    if (!arr)
        return -ENOMEM;
    /* The changes on their way first, then the rows: a change written in
     * between is then in both, and the pending copy stands for it. */
    pthread_mutex_lock(&s->lock);
    pending = pending_copy(s);
    bool copied = pending || !s->pending;
    pthread_mutex_unlock(&s->lock);
    if (!copied) {
        json_decref(arr);
        return -ENOMEM;
    }
    pthread_mutex_lock(&s->rlock);
    if (sqlite3_prepare_v2(s->rdb,
                           kind ? "SELECT id, record FROM objects WHERE kind = ?1 ORDER BY rowid"
                                : "SELECT id, record FROM objects ORDER BY rowid",
                           -1, &st, NULL) != SQLITE_OK) {
        r = -EIO;
        goto out;
    }
    if (kind)
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        struct state_op *op = id ? op_find(pending, id) : NULL;
        if (op)
            op->seen = true;
        if (op && (!op->text || (kind && strcmp(op->kind, kind) != 0)))
            continue; /* deleted, or no longer of this kind */
        if (append_text(arr, op ? op->text : (const char *)sqlite3_column_text(st, 1)) < 0) {
            r = -ENOMEM;
            goto out;
        }
    }
    if (step != SQLITE_DONE) {
        r = -EIO;
        goto out;
    }
    /* New ones, not in the database yet, after the rows and oldest first
     * (the pending list has the newest first). */
    size_t n_new = 0;
    for (const struct state_op *op = pending; op; op = op->next)
        n_new++;
    for (size_t want = n_new; want > 0 && r == 0; want--) {
        const struct state_op *op = pending;
        for (size_t i = 1; i < want; i++)
            op = op->next;
        if (op->text && !op->seen && (!kind || strcmp(op->kind, kind) == 0) &&
            append_text(arr, op->text) < 0)
            r = -ENOMEM;
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    ops_free(pending);
    if (r < 0) {
        json_decref(arr);
        return r;
    }
    *out = arr;
    return 0;
}
