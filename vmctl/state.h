/* Embedded state in SQLite: one row per VM-backed object (sandbox or
 * browser session), its record stored as JSON so the gateway can add fields
 * without a migration.
 *
 * Changes never wait for the database. state_put and state_delete write
 * on the caller's thread when nothing is queued and no other process holds
 * the lock (a WAL commit with no fsync), so what the caller acknowledges
 * next is already saved, and a gateway killed just after loses nothing.
 * When the lock is held, the change becomes the newest of its id in memory
 * and a writer thread of the handle's own writes what is pending in one
 * transaction, retrying (with a pause) until the database takes it; the
 * same thread checkpoints the WAL. state_list gives the rows with the
 * pending changes laid over them, so a reader sees its own writes.
 * state_close waits up to STATE_CLOSE_WAIT_MS for what is pending, then
 * logs what it drops. Thread-safe. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct state_db;

#define STATE_BUSY_TIMEOUT_MS 5000 /* one write's wait for another process's lock */
#define STATE_CLOSE_WAIT_MS 10000  /* state_close's for a failing database */
#define STATE_CHECKPOINT_EVERY 64  /* commits between WAL checkpoints */

int state_open(const char *path, struct state_db **out, struct ph_error *err);
void state_close(struct state_db *db);
/* Insert or replace. record is borrowed. 0 or -ENOMEM. */
int state_put(struct state_db *db, const char *id, const char *kind, json_t *record);
int state_delete(struct state_db *db, const char *id);
/* Waits until nothing is pending: 0, or -ETIMEDOUT. */
int state_flush(struct state_db *db, int timeout_ms);
/* Whether the last write failed (and so changes wait): why gets the
 * database's message. */
bool state_write_failing(struct state_db *db, char *why, size_t why_len);
/* Array of records (new reference) of one kind, or of all when kind NULL,
 * oldest first. */
int state_list(struct state_db *db, const char *kind, json_t **out);
