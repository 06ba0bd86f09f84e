/* Command output is bytes; JSON strings must be UTF-8. */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
size_t utf8_seq_len(const unsigned char *s, size_t avail);
/* How many bytes at the end of buf start a sequence they do not finish
 * (0..3): what a reader of a byte stream keeps for the next read. */
size_t utf8_unfinished(const char *buf, size_t len);
/* A JSON string of data with each invalid byte replaced by U+FFFD. */
json_t *utf8_json_string(const char *data, size_t len);
