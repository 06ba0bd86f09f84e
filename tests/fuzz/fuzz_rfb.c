/* Fuzz target for the RFB client-stream filter (gateway/rfb_filter.c).
 * Input: 1 byte that sets how the stream is cut, then the client's
 * stream. Whatever it is:
 *  - the cut does not matter: fed whole, or piece by piece in place as the
 *    proxy does, the filter forwards the same bytes or refuses at the same
 *    point;
 *  - a controlling client's stream goes through whole (the shared flag
 *    set), a watch-only one's is refused exactly when the other is;
 *  - what a watch-only client gets through is a fixed point: filtered
 *    again, as watch-only or as control, it comes out the same, so no
 *    input message is left in it. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "rfb_filter.h"

/* The stream through a new filter in one call, into an exact-size
 * buffer. Returns the bytes forwarded or -EPROTO. */
static ssize_t filter_whole(bool view_only, const uint8_t *in, size_t len, uint8_t **out)
{
    struct rfb_filter f;

    *out = malloc(len ? len : 1);
    REQUIRE(*out);
    rfb_filter_init(&f, view_only);
    ssize_t n = rfb_filter_feed(&f, in, len, *out);
    REQUIRE(n == -EPROTO || (n >= 0 && (size_t)n <= len));
    if (n < 0)
        REQUIRE(rfb_filter_feed(&f, in, len, *out) == -EPROTO); /* and it stays failed */
    return n;
}

/* The same cut into pieces of 1 to 64 bytes, each filtered in place. */
static ssize_t filter_pieces(uint8_t cut, const uint8_t *in, size_t len, uint8_t *out)
{
    struct rfb_filter f;
    size_t o = 0;

    rfb_filter_init(&f, true);
    for (size_t i = 0, k = 0; i < len; k++) {
        size_t n = 1 + (cut + k * 37) % 64;
        if (n > len - i)
            n = len - i;
        uint8_t *piece = fuzz_memdup(in + i, n);
        ssize_t r = rfb_filter_feed(&f, piece, n, piece);
        if (r < 0) {
            free(piece);
            return r;
        }
        REQUIRE((size_t)r <= n);
        memcpy(out + o, piece, (size_t)r);
        o += (size_t)r;
        i += n;
        free(piece);
    }
    return (ssize_t)o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    uint8_t *view, *control, *again;
    uint8_t *pieces = malloc(len ? len : 1);
    REQUIRE(pieces);

    ssize_t nv = filter_whole(true, in, len, &view);
    ssize_t nc = filter_whole(false, in, len, &control);
    ssize_t np = filter_pieces(data[0], in, len, pieces);

    REQUIRE((nv < 0) == (nc < 0) && (nv < 0) == (np < 0));
    if (nv >= 0) {
        REQUIRE(np == nv && memcmp(pieces, view, (size_t)nv) == 0);
        /* Control: everything, but for the shared flag made 1. */
        REQUIRE((size_t)nc == len);
        size_t diff = 0;
        for (size_t i = 0; i < len; i++)
            if (control[i] != in[i]) {
                REQUIRE(control[i] == 1);
                diff++;
            }
        REQUIRE(diff <= 1);

        ssize_t n2 = filter_whole(true, view, (size_t)nv, &again);
        REQUIRE(n2 == nv && memcmp(again, view, (size_t)nv) == 0);
        free(again);
        n2 = filter_whole(false, view, (size_t)nv, &again);
        REQUIRE(n2 == nv && memcmp(again, view, (size_t)nv) == 0);
        free(again);
    }
    free(pieces);
    free(view);
    free(control);
    return 0;
}
