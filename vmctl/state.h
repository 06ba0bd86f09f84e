/* Embedded state in SQLite: one row per VM-backed object (sandbox or
 * browser session), its record stored as JSON so the gateway can add fields
 * without a migration. Thread-safe (serialized connection). */
#pragma once

#include <jansson.h>

#include "error.h"

struct state_db;

int state_open(const char *path, struct state_db **out, struct ph_error *err);
void state_close(struct state_db *db);
/* Insert or replace. record is borrowed. */
int state_put(struct state_db *db, const char *id, const char *kind, json_t *record);
int state_delete(struct state_db *db, const char *id);
/* Array of records (new reference) of one kind, or of all when kind NULL,
 * oldest first. */
int state_list(struct state_db *db, const char *kind, json_t **out);
