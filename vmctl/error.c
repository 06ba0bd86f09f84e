#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ph_error_set(struct ph_error *err, enum ph_error_kind kind, int neg_errno, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->kind = kind;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return neg_errno < 0 ? neg_errno : -EIO;
}

void ph_error_clear(struct ph_error *err)
{
    if (err) {
        err->kind = PH_ERR_NONE;
        err->message[0] = '\0';
    }
}

void ph_error_prefix(struct ph_error *err, const char *fmt, ...)
{
    char prefix[256], old[sizeof(err->message)];
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof(old));
    /* Truncation is acceptable: the prefix and the start of the cause are
     * what a reader needs. */
    size_t n = strlen(prefix);
    if (n > sizeof(err->message) - 3)
        n = sizeof(err->message) - 3;
    memcpy(err->message, prefix, n);
    memcpy(err->message + n, ": ", 2);
    size_t rest = sizeof(err->message) - n - 3;
    size_t ol = strnlen(old, rest);
    memcpy(err->message + n + 2, old, ol);
    err->message[n + 2 + ol] = '\0';
}

/* Only failures are described: one whose kind was never set (a callee that
 * returned -errno without filling the error) is an internal error, never
 * a 200 "ok" error reply. */
static const struct {
    const char *code;
    int status;
} kinds[] = {
    [PH_ERR_NONE] = {"internal", 500},
    [PH_ERR_INVALID] = {"bad_request", 400},
    [PH_ERR_UNAUTHORIZED] = {"unauthorized", 401},
    [PH_ERR_BLOCKED] = {"blocked", 403},
    [PH_ERR_NOT_FOUND] = {"not_found", 404},
    [PH_ERR_CONFLICT] = {"conflict", 409},
    [PH_ERR_TOO_LARGE] = {"too_large", 413},
    [PH_ERR_LIMIT] = {"limit_exceeded", 429},
    [PH_ERR_TIMEOUT] = {"timeout", 504},
    [PH_ERR_UNAVAILABLE] = {"unavailable", 503},
    [PH_ERR_TRANSPORT] = {"transport", 502},
    [PH_ERR_INTERNAL] = {"internal", 500},
    [PH_ERR_CANCELLED] = {"cancelled", 499},
};

const char *ph_error_code(enum ph_error_kind kind)
{
    if ((unsigned)kind >= sizeof(kinds) / sizeof(kinds[0]))
        return "internal";
    return kinds[kind].code;
}

int ph_error_http_status(enum ph_error_kind kind)
{
    if ((unsigned)kind >= sizeof(kinds) / sizeof(kinds[0]))
        return 500;
    return kinds[kind].status;
}
