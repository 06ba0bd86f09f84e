/* The envelope and the user-facing messages: the only place that decides
 * what reaches stdout and stderr for a result. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_error_set(struct cli_error *e, int exit_code, const char *code, const char *recovery,
                  int neg_errno, const char *fmt, ...)
{
    va_list ap;

    if (!e)
        return neg_errno;
    e->exit_code = exit_code;
    snprintf(e->code, sizeof(e->code), "%s", code);
    snprintf(e->recovery, sizeof(e->recovery), "%s", recovery ? recovery : "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return neg_errno;
}

void cli_copy(char *dst, size_t len, const char *src)
{
    size_t n;

    if (len == 0)
        return;
    n = strnlen(src, len - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int cli_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void print_envelope(struct cli_ctx *c, int exit_code, json_t *data,
                           const struct cli_error *e)
{
    json_t *env = json_object(), *err = json_null();
    char *text;

    if (e) {
        err = json_pack("{s:s, s:s}", "code", e->code, "message", e->message);
        if (err && e->recovery[0])
            json_object_set_new(err, "recovery", json_string(e->recovery));
    }
    /* Order matters to people reading it; JSON_PRESERVE_ORDER keeps it. */
    json_object_set_new(env, "ok", json_boolean(!e));
    json_object_set_new(env, "command", json_string(c->command ? c->command : "porthole"));
    json_object_set_new(env, "exit_code", json_integer(exit_code));
    json_object_set_new(env, "data", data ? data : json_null());
    json_object_set_new(env, "error", err ? err : json_null());
    text = json_dumps(env, JSON_PRESERVE_ORDER);
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        free(text);
    } else {
        /* Out of memory while dumping: still one parseable envelope. */
        printf("{\"ok\": false, \"command\": \"%s\", \"exit_code\": 1, \"data\": null, "
               "\"error\": {\"code\": \"internal\", \"message\": \"out of memory\"}}\n",
               c->command ? c->command : "porthole");
    }
    fflush(stdout);
    json_decref(env);
}

int cli_emit(struct cli_ctx *c, int exit_code, json_t *data, const struct cli_error *e)
{
    if (c->emitted) {
        json_decref(data);
        return exit_code;
    }
    c->emitted = true;
    if (c->json) {
        print_envelope(c, exit_code, data, e);
        return exit_code;
    }
    json_decref(data);
    if (e) {
        fflush(stdout);
        fprintf(stderr, "porthole: error: %s\n", e->message);
        if (e->recovery[0])
            fprintf(stderr, "hint: %s\n", e->recovery);
    }
    return exit_code;
}

int cli_ok(struct cli_ctx *c, json_t *data)
{
    return cli_emit(c, CLI_EXIT_OK, data, NULL);
}

int cli_fail(struct cli_ctx *c, const struct cli_error *e)
{
    return cli_emit(c, e->exit_code ? e->exit_code : CLI_EXIT_FAIL, NULL, e);
}

int cli_usage_error(struct cli_ctx *c, const char *fmt, ...)
{
    struct cli_error e = {.exit_code = CLI_EXIT_USAGE};
    va_list ap;

    snprintf(e.code, sizeof(e.code), "usage_error");
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    if (c->json) {
        if (c->command && strcmp(c->command, "porthole") != 0)
            snprintf(e.recovery, sizeof(e.recovery), "see: porthole %s --help", c->command);
        else
            snprintf(e.recovery, sizeof(e.recovery), "see: porthole --help");
        /* "sandbox.create" reads better as "sandbox create" in a hint. */
        for (char *p = e.recovery; *p; p++)
            if (*p == '.')
                *p = ' ';
        return cli_emit(c, CLI_EXIT_USAGE, NULL, &e);
    }
    c->emitted = true;
    fprintf(stderr, "porthole: %s\n", e.message);
    if (c->usage)
        fprintf(stderr, "\n%s", c->usage);
    return CLI_EXIT_USAGE;
}

int cli_help(struct cli_ctx *c)
{
    const char *usage = c->usage ? c->usage : "";

    if (c->json)
        return cli_ok(c, json_pack("{s:s}", "usage", usage));
    c->emitted = true;
    fputs(usage, stdout);
    return CLI_EXIT_OK;
}

void cli_notice(struct cli_ctx *c, const char *fmt, ...)
{
    va_list ap;

    if (c->json)
        return;
    va_start(ap, fmt);
    fputs("porthole: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* A cell as text: strings as they are, numbers and booleans formatted. */
static void cell_text(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, len, "%s", json_is_true(v) ? "yes" : "no");
    else
        snprintf(buf, len, "-");
    /* A newline or tab in a value would break the columns. */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\t' || *p == '\r')
            *p = ' ';
}

#define CLI_TABLE_MAX_COLS 12
#define CLI_TABLE_CELL 256

void cli_table(const char *const *headers, const char *const *keys, size_t ncols,
               const json_t *rows)
{
    size_t width[CLI_TABLE_MAX_COLS] = {0};
    char cell[CLI_TABLE_CELL];
    size_t i, c;
    const json_t *row;

    if (ncols > CLI_TABLE_MAX_COLS)
        ncols = CLI_TABLE_MAX_COLS;
    for (c = 0; c < ncols; c++)
        width[c] = strlen(headers[c]);
    json_array_foreach(rows, i, row)
    {
        for (c = 0; c < ncols; c++) {
            cell_text(json_object_get(row, keys[c]), cell, sizeof(cell));
            if (strlen(cell) > width[c])
                width[c] = strlen(cell);
        }
    }
    for (c = 0; c < ncols; c++)
        printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, headers[c],
               c + 1 < ncols ? "  " : "\n");
    json_array_foreach(rows, i, row)
    {
        for (c = 0; c < ncols; c++) {
            cell_text(json_object_get(row, keys[c]), cell, sizeof(cell));
            printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, cell, c + 1 < ncols ? "  " : "\n");
        }
    }
    fflush(stdout);
}
