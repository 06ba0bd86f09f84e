#include "utf8.h"

#include <stdlib.h>
#include <string.h>

/* The length of the sequence a lead byte starts (1..4), 0 for a byte that
 * starts none (a continuation byte, or one no valid sequence begins with). */
static size_t lead_len(unsigned char c)
{
    return c < 0x80                 ? 1
           : c >= 0xc2 && c <= 0xdf ? 2
           : c >= 0xe0 && c <= 0xef ? 3
           : c >= 0xf0 && c <= 0xf4 ? 4
                                    : 0;
}

size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
    static const unsigned min_of[] = {0, 0, 0x80, 0x800, 0x10000};
    unsigned char c = s[0];
    size_t n = lead_len(c);
    unsigned min, cp;

    if (n <= 1)
        return n;
    min = min_of[n];
    cp = c & (0x7f >> n);
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

json_t *utf8_json_string(const char *data, size_t len)
{
    const unsigned char *s = (const unsigned char *)data;
    char *buf;
    size_t o = 0;
    json_t *j;

    if (!data)
        return json_string("");
    /* Worst case every byte becomes the 3-byte replacement character. */
    buf = malloc(len * 3 + 1);
    if (!buf)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = s[i] ? utf8_seq_len(s + i, len - i) : 1;
        if (n == 0) {
            memcpy(buf + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, s + i, n);
            o += n;
            i += n;
        }
    }
    j = json_stringn(buf, o);
    free(buf);
    return j;
}

size_t utf8_unfinished(const char *buf, size_t len)
{
    for (size_t k = 1; k <= 3 && k <= len; k++) {
        unsigned char b = (unsigned char)buf[len - k];
        if ((b & 0xc0) == 0x80)
            continue;
        size_t need = lead_len(b);
        return need > k ? k : 0;
    }
    return 0;
}
