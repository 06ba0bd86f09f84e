/* A small blocking QMP client: connect to a VM's control socket, read the
 * greeting, negotiate capabilities, execute commands. Asynchronous events
 * that arrive while waiting for a reply are skipped. */
#pragma once

#include <jansson.h>

#include "error.h"

struct qmp;

int qmp_connect(const char *socket_path, int timeout_ms, struct qmp **out, struct ph_error *err);
void qmp_free(struct qmp *q);
/* args may be NULL (borrowed). *ret (may be NULL) receives the "return"
 * value, new reference. A QMP error reply is PH_ERR_INTERNAL with its desc. */
int qmp_execute(struct qmp *q, const char *command, json_t *args, json_t **ret, int timeout_ms,
                struct ph_error *err);
