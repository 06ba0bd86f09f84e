/* ph_error: the one error type whose message reaches a client.
 *
 * Functions that can fail return -errno and, when given a struct ph_error,
 * fill it with a kind (which becomes the API's error code and HTTP status)
 * and a message written for the user. Library code never prints; the layer
 * that decides what to do with the failure logs it once. */
#pragma once

#include <stddef.h>

enum ph_error_kind {
    PH_ERR_NONE = 0,
    PH_ERR_INVALID,      /* bad_request, 400 */
    PH_ERR_UNAUTHORIZED, /* unauthorized, 401 */
    PH_ERR_BLOCKED,      /* blocked, 403 */
    PH_ERR_NOT_FOUND,    /* not_found, 404 */
    PH_ERR_CONFLICT,     /* conflict, 409 */
    PH_ERR_TOO_LARGE,    /* too_large, 413 */
    PH_ERR_LIMIT,        /* limit_exceeded, 429 */
    PH_ERR_TIMEOUT,      /* timeout, 504 */
    PH_ERR_UNAVAILABLE,  /* unavailable, 503 */
    PH_ERR_TRANSPORT,    /* transport, 502 */
    PH_ERR_INTERNAL,     /* internal, 500 */
    PH_ERR_CANCELLED,    /* cancelled, 499: the client gave up (a streamed command's left) */
};

struct ph_error {
    enum ph_error_kind kind;
    char message[512];
};

/* Fills err (when not NULL) and returns the negative errno given, so a
 * failure path reads `return ph_error_set(err, PH_ERR_X, -EIO, "...")`. */
int ph_error_set(struct ph_error *err, enum ph_error_kind kind, int neg_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ph_error_clear(struct ph_error *err);
/* Prefixes the existing message with context ("boot vm abc: ..."). */
void ph_error_prefix(struct ph_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The API's code and HTTP status of a failure of this kind. PH_ERR_NONE
 * (an error never filled in) counts as internal: 500. */
const char *ph_error_code(enum ph_error_kind kind);
int ph_error_http_status(enum ph_error_kind kind);
