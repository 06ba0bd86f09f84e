/* Fuzz target for the guest init's CDP client wire formats
 * (guest-image/init/cdp_wire.c). The input is what Chromium's debugging
 * port could send: an HTTP reply, a /json body, WebSocket frames. Each
 * parser reads an exactly sized copy, so ASan sees a read past the end;
 * what they report must lie inside the input and be what the client may
 * use (a path for a request line, a frame that fits its header). */
#include <errno.h>
#include <string.h>

#include "cdp_wire.h"
#include "fuzz.h"

static void check_http(const char *in, size_t size, bool eof)
{
    struct http_reply r;
    int rc = http_reply_parse(in, size, eof, &r);
    REQUIRE(rc == 1 || rc == 0 || rc == -EPROTO);
    if (rc != 1)
        return;
    REQUIRE(r.status >= 100 && r.status <= 999);
    REQUIRE(r.head_len >= 16 && r.head_len <= size);
    REQUIRE(memcmp(in + r.head_len - 4, "\r\n\r\n", 4) == 0);
    REQUIRE(r.body_len <= size - r.head_len);
    REQUIRE(r.length < 0 || (size_t)r.length == r.body_len || r.status < 200 || r.status == 204 ||
            r.status == 304);
    /* Whole means whole: a longer read says the same. */
    if (!eof) {
        struct http_reply again;
        REQUIRE(http_reply_parse(in, size, true, &again) == 1);
        REQUIRE(again.head_len == r.head_len && again.status == r.status);
    }
}

static void check_path(const char *in, size_t size, const char *prefix)
{
    char path[CDP_PATH_MAX];
    int rc = cdp_debugger_path(in, size, prefix, path, sizeof(path));
    REQUIRE(rc == 0 || rc == -ENOENT || rc == -ENAMETOOLONG);
    if (rc != 0)
        return;
    size_t n = strlen(path);
    REQUIRE(n > strlen(prefix) && strncmp(path, prefix, strlen(prefix)) == 0);
    for (size_t i = 0; i < n; i++)
        REQUIRE(path[i] > ' ' && path[i] < 0x7f && path[i] != '\\' && path[i] != '"');
    REQUIRE(memmem(in, size, path, n));
}

static void check_frames(const unsigned char *in, size_t size)
{
    /* As the client walks them: frame after frame while they parse. */
    while (size > 0) {
        struct ws_frame f;
        int rc = ws_frame_parse(in, size, &f);
        REQUIRE(rc == 1 || rc == 0 || rc == -EPROTO);
        if (rc != 1)
            return;
        REQUIRE(f.head_len == 2 || f.head_len == 4 || f.head_len == 10);
        REQUIRE(f.head_len <= size && f.opcode <= WS_OP_PONG);
        REQUIRE(f.opcode < WS_OP_CLOSE || (f.fin && f.payload_len <= 125));
        if (f.payload_len > size - f.head_len)
            return;
        cdp_reply_id((const char *)in + f.head_len, (size_t)f.payload_len);
        in += f.head_len + f.payload_len;
        size -= f.head_len + (size_t)f.payload_len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_memdup(data, size);

    check_http(in, size, false);
    check_http(in, size, true);
    check_path(in, size, "/devtools/browser/");
    check_path(in, size, "/devtools/page/");
    check_frames((const unsigned char *)in, size);
    long long id = cdp_reply_id(in, size);
    REQUIRE(id >= -1);

    /* A text frame of the input, parsed back once unmasked as a server
     * would send it. */
    static char frame[10 + 4 + 70000];
    if (size <= 70000) {
        ssize_t n = ws_text_frame(frame, sizeof(frame), in, size);
        REQUIRE(n == (ssize_t)(size + 4 + (size < 126 ? 2 : size <= 0xffff ? 4 : 10)));
        size_t head = (size_t)n - 4 - size;
        frame[1] = (char)(frame[1] & 0x7f);
        memmove(frame + head, frame + head + 4, size);
        struct ws_frame f;
        REQUIRE(ws_frame_parse((const unsigned char *)frame, (size_t)n - 4, &f) == 1);
        REQUIRE(f.fin && f.opcode == WS_OP_TEXT && f.head_len == head && f.payload_len == size);
    }
    free(in);
    return 0;
}
