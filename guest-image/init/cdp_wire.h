/* The wire formats of porthole-init's CDP client (cdp.c): Chromium's HTTP
 * replies (/json/version, /json/list, the WebSocket handshake), the
 * WebSocket frames around CDP messages, and what the client reads out of
 * them. Pure: bytes in, results out, so the host's unit tests and fuzzer
 * run it as the guest does.
 *
 *   http_reply_parse(buf, len, eof, &reply)    until it returns 1
 *   cdp_debugger_path(body, ..., "/devtools/page/", path, sizeof(path))
 *   ws_text_frame(frame, cap, msg, len)        the command, to send
 *   ws_frame_parse(buf, len, &frame)           each frame that comes back
 *   cdp_reply_id(payload, len)                 the reply to our command? */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The longest /devtools/... path the client takes ("/devtools/page/" and
 * a 32-digit id need 48). */
#define CDP_PATH_MAX 128

struct http_reply {
    int status;       /* 100..599 */
    size_t head_len;  /* the status line and headers, blank line included */
    size_t body_len;  /* once whole: the body is buf + head_len, this long */
    long long length; /* Content-Length, -1 when the reply has none */
};

/* Parses an HTTP/1.x reply in buf[0..len). Returns 1 once it is whole (the
 * head and, with Content-Length, that many bytes of body; without it, the
 * body runs to the peer's close, eof; 1xx, 204 and 304 replies have none),
 * 0 while more bytes are to come, -EPROTO for anything else: no HTTP/1.x
 * status line, a header line without a name and ':', or a Content-Length
 * that is not digits, is over 2^40, or comes twice with two values. Bytes
 * past the reply (WebSocket frames after a 101) are left alone. */
int http_reply_parse(const char *buf, size_t len, bool eof, struct http_reply *reply);

/* The path of the first "webSocketDebuggerUrl" in a /json reply's body
 * that starts with prefix: "ws://127.0.0.1:9222/devtools/page/ID" gives
 * "/devtools/page/ID". Values that are not ws:// URLs, or whose path holds
 * a space, a control character, '"' or '\' (JSON escapes are not undone:
 * Chromium writes none there), are passed over. Returns 0, -ENOENT when
 * none matches, or -ENAMETOOLONG when the first match does not fit. */
int cdp_debugger_path(const char *body, size_t len, const char *prefix, char *path,
                      size_t path_size);

/* A client's text frame for msg[0..len): final, masked with a zero key
 * (legal, and it leaves the payload as it is). Returns the frame's length,
 * or -EMSGSIZE when it does not fit cap. */
ssize_t ws_text_frame(char *out, size_t cap, const char *msg, size_t len);

#define WS_OP_CONT 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xa

struct ws_frame {
    bool fin;
    unsigned opcode; /* WS_OP_* */
    size_t head_len; /* the payload starts here */
    uint64_t payload_len;
};

/* Parses the header of a frame from a server at buf[0..len). Returns 1
 * when the header is there (the payload may still be coming), 0 while more
 * bytes are needed, -EPROTO for what a client must refuse: reserved bits or
 * opcodes, a mask (servers never mask), a control frame that is fragmented
 * or over 125 bytes, a length in more bytes than it needs, or one with the
 * top bit set. */
int ws_frame_parse(const unsigned char *buf, size_t len, struct ws_frame *frame);

/* The "id" of a CDP message (a JSON object): the integer value of its own
 * "id" member, not one nested deeper or inside a string. Returns it, or -1
 * when the message has none (an event) or is not such an object. */
long long cdp_reply_id(const char *msg, size_t len);
