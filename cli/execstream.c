/* A streamed exec's events, parsed as they arrive. See execstream.h. */
#include "execstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One event line at most: 64 KiB of output escaped, with room to spare. */
#define EXEC_EVENT_MAX (8u * 1024 * 1024)

void exec_stream_init(struct exec_stream *st,
                      void (*on_output)(void *data, bool is_stderr, const char *text, size_t len),
                      void *data)
{
    *st = (struct exec_stream){.on_output = on_output, .data = data};
    st->out = json_string("");
    st->err = json_string("");
}

static int append(json_t **acc, json_t *piece)
{
    size_t a = json_string_length(*acc), b = json_string_length(piece);
    char *joined = malloc(a + b + 1);
    if (!joined)
        return -ENOMEM;
    memcpy(joined, json_string_value(*acc), a);
    memcpy(joined + a, json_string_value(piece), b);
    json_t *next = json_stringn(joined, a + b);
    free(joined);
    if (!next)
        return -ENOMEM;
    json_decref(*acc);
    *acc = next;
    return 0;
}

static int event(struct exec_stream *st, const char *line, size_t n)
{
    json_t *ev = json_loadb(line, n, JSON_ALLOW_NUL, NULL);
    const char *type = json_str(ev, "type");
    json_t *data = json_object_get(ev, "data");
    int r = 0;

    if (!type)
        r = -EPROTO;
    else if ((strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0) && json_is_string(data)) {
        bool is_err = type[3] == 'e';
        r = append(is_err ? &st->err : &st->out, data);
        if (r == 0 && st->on_output)
            st->on_output(st->data, is_err, json_string_value(data), json_string_length(data));
    } else if (strcmp(type, "exit") == 0 || strcmp(type, "error") == 0) {
        json_decref(st->end);
        st->end = json_incref(ev);
    }
    json_decref(ev);
    return r;
}

int exec_stream_feed(void *data, const char *buf, size_t len)
{
    struct exec_stream *st = data;

    while (len > 0) {
        const char *nl = memchr(buf, '\n', len);
        size_t n = nl ? (size_t)(nl - buf) : len;
        if (st->len + n > EXEC_EVENT_MAX)
            return -EFBIG;
        if (st->len + n + 1 > st->cap) {
            size_t cap = st->cap ? st->cap : 4096;
            while (cap < st->len + n + 1)
                cap *= 2;
            char *p = realloc(st->line, cap);
            if (!p)
                return -ENOMEM;
            st->line = p;
            st->cap = cap;
        }
        memcpy(st->line + st->len, buf, n);
        st->len += n;
        buf += n;
        len -= n;
        if (nl) {
            buf++;
            len--;
            int r = st->len ? event(st, st->line, st->len) : 0;
            st->len = 0;
            if (r < 0)
                return r;
        }
    }
    return 0;
}

int exec_stream_finish(struct exec_stream *st, struct api *api, json_t **result,
                       struct cli_error *err)
{
    *result = NULL;
    if (st->len > 0) {
        int r = event(st, st->line, st->len); /* a last line without its newline */
        st->len = 0;
        if (r < 0)
            return cli_error_set(err, 1, "bad_response", NULL, r,
                                 "the gateway's stream ended with a malformed event");
    }
    if (json_is_object(json_object_get(st->end, "error")))
        return api_error_object(api, json_object_get(st->end, "error"), 200, err);
    if (!json_is_integer(json_object_get(st->end, "exit_code")))
        return cli_error_set(err, 1, "bad_response", NULL, -EPROTO,
                             "the gateway's stream ended before the command did");
    *result = json_deep_copy(st->end);
    if (!*result)
        return cli_error_set(err, 1, "internal", NULL, -ENOMEM, "out of memory");
    json_object_del(*result, "type");
    json_object_set(*result, "stdout", st->out);
    json_object_set(*result, "stderr", st->err);
    return 0;
}

void exec_stream_done(struct exec_stream *st)
{
    free(st->line);
    json_decref(st->out);
    json_decref(st->err);
    json_decref(st->end);
    *st = (struct exec_stream){0};
}
