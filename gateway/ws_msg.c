#include "ws_msg.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#define WS_FIRST_ALLOC (16 * 1024)
#define WS_FIRST_ALLOC_MAX (1024 * 1024)

static struct ws_msg *msg_alloc(size_t cap)
{
    struct ws_msg *m = malloc(sizeof(*m) + LWS_PRE + cap);
    if (!m)
        return NULL;
    *m = (struct ws_msg){.cap = cap, .data = (unsigned char *)(m + 1) + LWS_PRE};
    return m;
}

struct ws_msg *ws_msg_new(const void *data, size_t len, bool binary)
{
    struct ws_msg *m = msg_alloc(len);
    if (!m)
        return NULL;
    if (data)
        memcpy(m->data, data, len);
    else
        memset(m->data, 0, len);
    m->len = len;
    m->binary = binary;
    return m;
}

void ws_msg_free(struct ws_msg *m)
{
    free(m);
}

/* Makes room for len more bytes; m may move. */
static struct ws_msg *msg_grow(struct ws_msg *m, size_t len, size_t max)
{
    size_t need = m->len + len, cap = m->cap ? m->cap : WS_FIRST_ALLOC;

    if (need <= m->cap)
        return m;
    while (cap < need)
        cap = cap > max / 2 ? max : cap * 2;
    if (cap < need)
        return NULL;
    struct ws_msg *n = realloc(m, sizeof(*n) + LWS_PRE + cap);
    if (!n)
        return NULL;
    n->cap = cap;
    n->data = (unsigned char *)(n + 1) + LWS_PRE;
    return n;
}

int ws_msg_append(struct ws_msg **rx, const void *in, size_t len, size_t remaining, bool final,
                  bool binary, size_t max)
{
    struct ws_msg *m = *rx;

    if (!m) {
        /* The frame header's length is the peer's word: trust it only so
         * far, and grow as the bytes really arrive. */
        size_t first = len + remaining;
        if (first > WS_FIRST_ALLOC_MAX)
            first = WS_FIRST_ALLOC_MAX;
        if (first < len)
            first = len;
        if (!(m = *rx = msg_alloc(final ? len : first)))
            return -ENOMEM;
        m->binary = binary;
    }
    if (len > max - m->len)
        return -EMSGSIZE;
    if (!(m = msg_grow(m, len, max)))
        return -ENOMEM;
    *rx = m;
    memcpy(m->data + m->len, in, len);
    m->len += len;
    return final ? 1 : 0;
}
