#include "state.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

struct state_db {
    sqlite3 *db; /* owned */
    pthread_mutex_t lock;
};

static const char schema[] = "PRAGMA journal_mode=WAL;"
                             "PRAGMA synchronous=NORMAL;"
                             "CREATE TABLE IF NOT EXISTS objects ("
                             "  id TEXT PRIMARY KEY,"
                             "  kind TEXT NOT NULL,"
                             "  created INTEGER NOT NULL DEFAULT (strftime('%s','now')),"
                             "  record TEXT NOT NULL);";

int state_open(const char *path, struct state_db **out, struct ph_error *err)
{
    struct state_db *s = calloc(1, sizeof(*s));
    char *msg = NULL;
    int r;

    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -EIO, "cannot open state database %s: %s", path,
                         s->db ? sqlite3_errmsg(s->db) : "out of memory");
        state_close(s);
        return r;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -EIO, "state database %s: %s", path,
                         msg ? msg : "schema failed");
        sqlite3_free(msg);
        state_close(s);
        return r;
    }
    *out = s;
    return 0;
}

void state_close(struct state_db *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int state_exec(struct state_db *s, const char *sql, const char *a, const char *b,
                      const char *c)
{
    sqlite3_stmt *st = NULL;
    int r = 0;

    pthread_mutex_lock(&s->lock);
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        r = -EIO;
        goto out;
    }
    const char *args[3] = {a, b, c};
    for (int i = 0; i < 3 && args[i]; i++)
        sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE)
        r = -EIO;
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return r;
}

int state_put(struct state_db *s, const char *id, const char *kind, json_t *record)
{
    char *text = json_dumps(record, JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    int r = state_exec(s,
                       "INSERT INTO objects(id, kind, record) VALUES(?1, ?2, ?3) "
                       "ON CONFLICT(id) DO UPDATE SET kind = ?2, record = ?3",
                       id, kind, text);
    free(text);
    return r;
}

int state_delete(struct state_db *s, const char *id)
{
    return state_exec(s, "DELETE FROM objects WHERE id = ?1", id, NULL, NULL);
}

int state_list(struct state_db *s, const char *kind, json_t **out)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int r = 0, step;

    if (!arr)
        return -ENOMEM;
    pthread_mutex_lock(&s->lock);
    if (sqlite3_prepare_v2(s->db,
                           kind ? "SELECT record FROM objects WHERE kind = ?1 ORDER BY rowid"
                                : "SELECT record FROM objects ORDER BY rowid",
                           -1, &st, NULL) != SQLITE_OK) {
        r = -EIO;
        goto out;
    }
    if (kind)
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        json_t *rec = text ? json_loads(text, 0, NULL) : NULL;
        /* A row that no longer parses is skipped rather than failing the
         * whole listing (and so the gateway's start). */
        if (rec)
            json_array_append_new(arr, rec);
    }
    if (step != SQLITE_DONE)
        r = -EIO;
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    if (r < 0) {
        json_decref(arr);
        return r;
    }
    *out = arr;
    return 0;
}
