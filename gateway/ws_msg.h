/* ws_msg: the messages the WebSocket pump (ws.h) queues, and their
 * assembly from the pieces lws hands over as it reads a frame.
 *
 *   struct ws_msg *rx = NULL;            // per side: the message so far
 *   r = ws_msg_append(&rx, in, len, remaining, final, binary, max);
 *   if (r == 1) { deliver(rx); rx = NULL; }   // whole: the caller's now
 *   ...
 *   ws_msg_free(rx);                     // a message left half-way
 *
 * Pure (no lws calls: only its LWS_PRE), so that it is fuzzed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* One message (or raw chunk) in a queue. data has LWS_PRE bytes of
 * headroom before it, as lws_write wants. */
struct ws_msg {
    struct ws_msg *next; /* owned by the queue */
    size_t len;          /* bytes in data */
    size_t cap;          /* room in data */
    size_t off;          /* bytes already written */
    bool binary;
    unsigned char *data; /* points into the allocation, after LWS_PRE */
};

/* A message of len bytes copied from data (data may be NULL: zeroes).
 * NULL on out-of-memory. */
struct ws_msg *ws_msg_new(const void *data, size_t len, bool binary);
/* NULL is a no-op. */
void ws_msg_free(struct ws_msg *m);

/* Adds the next len bytes of a message to *rx (NULL before its first
 * piece, which also gives the message its type). remaining is what the
 * frame header says is still to come of this frame: the peer's word, so
 * only a hint for the first allocation, up to 1 MiB. final: this piece
 * ends the message. Returns 1 when the message is whole (*rx is it, for
 * the caller to take), 0 when more is to come, -EMSGSIZE when it would
 * pass max bytes, -ENOMEM; *rx then stays a valid message or NULL. */
int ws_msg_append(struct ws_msg **rx, const void *in, size_t len, size_t remaining, bool final,
                  bool binary, size_t max);
