/* Fuzz target for the CLI's WebSocket client (cli/wsc.c): what a server
 * sends after the handshake, through the real wsc_open, wsc_recv and
 * wsc_free. The handshake is this file's: httpc_websocket_open hands over
 * one end of a socket pair, with the fuzzer's bytes queued on it.
 * Input: 2 bytes (big-endian) of how many of the rest came with the
 * handshake's answer (httpc's pending bytes), then the server's stream.
 * Whatever it is: no crash, no wait for bytes that cannot come (the
 * stream ends, so every call ends at once), every message is whole and
 * NUL-terminated, and the messages are never more than what was sent. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "httpc.h"
#include "util.h"
#include "wsc.h"

static const uint8_t *fuzz_pending, *fuzz_stream;
static size_t fuzz_pending_len, fuzz_stream_len;
static int fuzz_server = -1; /* the server's end, kept open for pongs and the close */

int httpc_url_parse(const char *url, struct httpc_url *out)
{
    memset(out, 0, sizeof(*out));
    return strncmp(url, "http://", 7) == 0 ? 0 : -EINVAL;
}

void httpc_response_done(struct httpc_response *resp)
{
    (void)resp;
}

int httpc_websocket_open(const struct httpc_url *url, const struct httpc_request *req, int *fd,
                         char **pending, size_t *pending_len, struct httpc_response *resp)
{
    int sv[2];

    (void)url;
    (void)req;
    memset(resp, 0, sizeof(*resp));
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    /* All of the stream fits in the socket's buffer (inputs are small). */
    REQUIRE(write(sv[1], fuzz_stream, fuzz_stream_len) == (ssize_t)fuzz_stream_len);
    shutdown(sv[1], SHUT_WR);
    fuzz_server = sv[1];
    *fd = sv[0];
    *pending = fuzz_pending_len ? fuzz_memdup(fuzz_pending, fuzz_pending_len) : NULL;
    *pending_len = fuzz_pending_len;
    resp->status = 101;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wsc *ws;
    char detail[128];

    if (size < 2 || size > 64 * 1024)
        return 0;
    size_t pending = (size_t)data[0] << 8 | data[1];
    if (pending > size - 2)
        pending = size - 2;
    fuzz_pending = data + 2;
    fuzz_pending_len = pending;
    fuzz_stream = data + 2 + pending;
    fuzz_stream_len = size - 2 - pending;

    REQUIRE(wsc_open("ws://127.0.0.1:8790/cdp/ID/TOKEN/devtools/browser", 1000, &ws, detail,
                     sizeof(detail)) == 0);
    size_t total = 0;
    for (;;) {
        char *msg = (char *)1;
        size_t len = 1;
        int r = wsc_recv(ws, &msg, &len, now_ms() + 5000, NULL, NULL);
        if (r < 0) {
            REQUIRE(r == -ECONNRESET || r == -EPROTO || r == -EMSGSIZE);
            REQUIRE(!msg && len == 0);
            break;
        }
        REQUIRE(r == 0 && msg && msg[len] == '\0' && len <= WSC_MAX_MESSAGE);
        total += len;
        REQUIRE(total <= size);
        free(msg);
    }
    wsc_free(ws);
    close(fuzz_server);
    fuzz_server = -1;
    return 0;
}
