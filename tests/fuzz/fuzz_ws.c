/* Fuzz target for the assembly of WebSocket messages from the pieces lws
 * hands over (gateway/ws_msg.c), with the peer's claimed frame lengths.
 * Input: 3 bytes of the link's max_message (big-endian, + 1), then
 * pieces, each 1 byte of flags (bit 0 final, bit 1 binary, bits 2-7 a
 * shift for the claim), 2 bytes of length, 4 bytes of claimed remaining
 * length (shifted left by the shift), then its bytes. Whatever they are:
 * the message is the pieces joined, refused exactly past max_message,
 * and never held in more memory than max_message or the 1 MiB the claim
 * is trusted with. */
#include <errno.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "ws_msg.h"

#define FIRST_ALLOC_MAX (1024 * 1024) /* ws_msg.c's bound on the claim */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_msg *rx = NULL;
    uint8_t *want = NULL; /* the message so far, as sent */
    size_t want_len = 0, want_cap = 0;
    bool want_binary = false;

    if (size < 3)
        return 0;
    size_t max = ((size_t)data[0] << 16 | (size_t)data[1] << 8 | data[2]) + 1;
    size_t bound = max > FIRST_ALLOC_MAX ? max : FIRST_ALLOC_MAX;
    const uint8_t *p = data + 3, *end = data + size;

    while (end - p >= 7) {
        bool final = p[0] & 1, binary = p[0] & 2;
        unsigned shift = (p[0] >> 2) & 63;
        size_t len = (size_t)p[1] << 8 | p[2];
        uint64_t claim = (uint64_t)p[3] << 24 | (uint64_t)p[4] << 16 | (uint64_t)p[5] << 8 | p[6];
        size_t remaining = (size_t)(claim << shift);
        p += 7;
        if (len > (size_t)(end - p))
            len = (size_t)(end - p);
        /* The piece in an allocation of its own size, as lws's buffer. */
        uint8_t *piece = fuzz_memdup(p, len);
        p += len;

        if (!rx)
            want_binary = binary;
        int r = ws_msg_append(&rx, piece, len, remaining, final, binary, max);
        if (want_len + len > max) {
            /* The gateway closes the link: the half message goes. */
            REQUIRE(r == -EMSGSIZE && rx && rx->len == want_len);
            ws_msg_free(rx);
            rx = NULL;
            want_len = 0;
            free(piece);
            continue;
        }
        REQUIRE(r == (final ? 1 : 0));
        if (want_len + len > want_cap) {
            want_cap = want_len + len;
            want = realloc(want, want_cap);
            REQUIRE(want);
        }
        if (len)
            memcpy(want + want_len, piece, len);
        want_len += len;
        free(piece);

        REQUIRE(rx && rx->len == want_len && rx->cap >= rx->len && rx->binary == want_binary);
        REQUIRE(rx->cap <= bound);
        REQUIRE(!want_len || memcmp(rx->data, want, want_len) == 0);
        if (r == 1) {
            /* lws writes the frame header into the headroom; cap bytes
             * follow it. */
            memset(rx->data - LWS_PRE, 0xa5, LWS_PRE);
            if (rx->cap)
                rx->data[rx->cap - 1] = 0x5a;
            ws_msg_free(rx);
            rx = NULL;
            want_len = 0;
        }
    }
    ws_msg_free(rx);
    free(want);
    return 0;
}
