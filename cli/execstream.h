/* A streamed exec's answer (POST .../exec {"stream": true}): newline-
 * delimited JSON events, fed as they arrive, with output handed on at once
 * and the whole result rebuilt at the end in the blocking form's shape.
 *
 *   struct exec_stream st;
 *   exec_stream_init(&st, on_output, data);
 *   api_stream(&api, "POST", path, body, ms, exec_stream_feed, &st, &err);
 *   r = exec_stream_finish(&st, &api, &result, &err);   // the exit, or the error event
 *   exec_stream_done(&st); */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli.h"

struct exec_stream {
    /* Each piece of output as it comes (may be NULL). */
    void (*on_output)(void *data, bool is_stderr, const char *text, size_t len);
    void *data;
    char *line; /* the unfinished last line */
    size_t len, cap;
    json_t *out, *err; /* the output so far, as strings */
    json_t *end;       /* the exit or error event */
};

void exec_stream_init(struct exec_stream *st,
                      void (*on_output)(void *data, bool is_stderr, const char *text, size_t len),
                      void *data);
/* An api_stream body callback; < 0 on a malformed or oversized event. */
int exec_stream_feed(void *data, const char *buf, size_t len);
/* 0 with *result (new reference: exit_code, stdout, stderr, duration_ms,
 * *_truncated) when the command ended, else -EIO with err: its error
 * event, or a stream that stopped before the end. */
int exec_stream_finish(struct exec_stream *st, struct api *api, json_t **result,
                       struct cli_error *err);
void exec_stream_done(struct exec_stream *st);
