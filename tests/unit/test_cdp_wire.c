/* The guest init's CDP client wire formats (guest-image/init/cdp_wire.c):
 * Chromium's HTTP replies byte by byte and malformed, the debugger path in
 * /json replies, WebSocket frames at each length encoding's bounds, and
 * which CDP message is the reply to a command. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdp_wire.h"
#include "check.h"

/* Chromium 156's reply to GET /json/version, as it sends it. */
static const char version_body[] =
    "{\n   \"Browser\": \"Chrome/156.0.8078.114\",\n   \"Protocol-Version\": \"1.3\",\n"
    "   \"User-Agent\": \"Mozilla/5.0 (X11; Linux x86_64)\",\n   \"V8-Version\": \"15.6\",\n"
    "   \"WebKit-Version\": \"537.36\",\n   \"webSocketDebuggerUrl\": "
    "\"ws://127.0.0.1:9222/devtools/browser/d551e2d6-88f7-4379-bb33-6a4485919bf5\"\n}\n";

static int parse(const char *s, bool eof, struct http_reply *r)
{
    return http_reply_parse(s, strlen(s), eof, r);
}

static void test_http_whole_reply(void)
{
    char reply[2048];
    struct http_reply r;
    int n = snprintf(reply, sizeof(reply),
                     "HTTP/1.1 200 OK\r\nContent-Length:%zu\r\n"
                     "Content-Type:application/json; charset=UTF-8\r\n\r\n%s",
                     strlen(version_body), version_body);
    size_t head = (size_t)n - strlen(version_body);

    /* Every prefix is "more to come", the whole is whole. */
    int early = 0;
    for (int i = 0; i < n; i++)
        if (http_reply_parse(reply, (size_t)i, false, &r) != 0)
            early++;
    CHECK(early == 0);
    CHECK(http_reply_parse(reply, (size_t)n, false, &r) == 1);
    CHECK(r.status == 200 && r.head_len == head && r.body_len == strlen(version_body));
    CHECK(r.length == (long long)strlen(version_body));
    /* Closed one byte short: truncated. */
    CHECK(http_reply_parse(reply, (size_t)n - 1, true, &r) == -EPROTO);

    /* Bytes past the body are not the body's. */
    CHECK(parse("HTTP/1.1 200 OK\r\ncontent-length: 2 \r\n\r\nokEXTRA", false, &r) == 1);
    CHECK(r.body_len == 2);

    /* No Content-Length: the body runs to the close. */
    CHECK(parse("HTTP/1.0 200 OK\r\n\r\nabc", false, &r) == 0);
    CHECK(parse("HTTP/1.0 200 OK\r\n\r\nabc", true, &r) == 1 && r.body_len == 3 && r.length == -1);

    /* A handshake's frames after the head are left alone. */
    const char hs[] = "HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\n"
                      "Connection: Upgrade\r\n\r\n\x81\x02hi";
    CHECK(http_reply_parse(hs, sizeof(hs) - 1, false, &r) == 1);
    CHECK(r.status == 101 && r.head_len == sizeof(hs) - 1 - 4 && r.body_len == 0);

    CHECK(parse("HTTP/1.1 204 No Content\r\n\r\n", false, &r) == 1 && r.body_len == 0);
    CHECK(parse("HTTP/1.1 304\r\n\r\n", false, &r) == 1 && r.status == 304);
    CHECK(parse("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false, &r) == 1);
    CHECK(r.status == 404 && r.body_len == 0);
    /* The same length twice is one length. */
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", false, &r) ==
          1);
    /* The bound itself, announced: fine (the caller's buffer decides). */
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n", false, &r) == 0);
}

static void test_http_malformed(void)
{
    struct http_reply r;
    /* Refused as soon as the first bytes show it is not HTTP/1.x. */
    CHECK(parse("HTTX", false, &r) == -EPROTO);
    CHECK(parse("\r\nHTTP/1.1 200 OK\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/2 200\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 20 OK\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 2000 OK\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 099 Low\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1  200 OK\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 1099511627777\r\n\r\n", false, &r) == -EPROTO);
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", false, &r) ==
          -EPROTO);
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", false, &r) ==
          -EPROTO);
    /* Closed before the head ended. */
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Le", true, &r) == -EPROTO);
    CHECK(parse("", true, &r) == -EPROTO);
    CHECK(parse("", false, &r) == 0);
}

static int path_of(const char *body, const char *prefix, char *path, size_t size)
{
    return cdp_debugger_path(body, strlen(body), prefix, path, size);
}

static void test_debugger_path(void)
{
    char path[CDP_PATH_MAX];

    CHECK(path_of(version_body, "/devtools/browser/", path, sizeof(path)) == 0);
    CHECK_STR(path, "/devtools/browser/d551e2d6-88f7-4379-bb33-6a4485919bf5");
    CHECK(path_of(version_body, "/devtools/page/", path, sizeof(path)) == -ENOENT);

    /* /json/list: the frontend URL also names the page, the debugger URL is
     * the one taken; the first page wins. */
    const char *list =
        "[ {\n   \"description\": \"\",\n   \"devtoolsFrontendUrl\": "
        "\"/devtools/inspector.html?ws=127.0.0.1:9222/devtools/page/FRONT\",\n"
        "   \"id\": \"A1\",\n   \"title\": \"about:blank\",\n   \"type\": \"page\",\n"
        "   \"url\": \"about:blank\",\n"
        "   \"webSocketDebuggerUrl\": \"ws://127.0.0.1:9222/devtools/page/A1\"\n"
        "}, {\n   \"webSocketDebuggerUrl\": \"ws://127.0.0.1:9222/devtools/page/B2\"\n} ]\n";
    CHECK(path_of(list, "/devtools/page/", path, sizeof(path)) == 0);
    CHECK_STR(path, "/devtools/page/A1");

    /* A page's title cannot plant a URL: its quotes are escaped. */
    const char *planted = "[{\"title\": \"x\\\",\\\"webSocketDebuggerUrl\\\":\\\"ws://e/devtools/"
                          "page/EVIL\\\"\", \"webSocketDebuggerUrl\": "
                          "\"ws://127.0.0.1:9222/devtools/page/REAL\"}]";
    CHECK(path_of(planted, "/devtools/page/", path, sizeof(path)) == 0);
    CHECK_STR(path, "/devtools/page/REAL");

    /* Passed over: JSON escapes, spaces, other schemes, no path, the prefix
     * alone; then a good one after them is still found. */
    CHECK(path_of("{\"webSocketDebuggerUrl\": \"ws://h\\/devtools\\/page\\/X\"}", "/devtools/page/",
                  path, sizeof(path)) == -ENOENT);
    CHECK(path_of("{\"webSocketDebuggerUrl\": \"ws://h/devtools/page/a\\\\b\"}", "/devtools/page/",
                  path, sizeof(path)) == -ENOENT);
    CHECK(path_of("{\"webSocketDebuggerUrl\": \"ws://h/devtools/page/X HTTP/1.1\"}",
                  "/devtools/page/", path, sizeof(path)) == -ENOENT);
    CHECK(path_of("{\"webSocketDebuggerUrl\": \"wss://h/devtools/page/X\"}", "/devtools/page/",
                  path, sizeof(path)) == -ENOENT);
    CHECK(path_of("{\"webSocketDebuggerUrl\": \"ws://h\"}", "/devtools/page/", path,
                  sizeof(path)) == -ENOENT);
    CHECK(path_of("{\"webSocketDebuggerUrl\": \"ws://h/devtools/page/\", "
                  "\"webSocketDebuggerUrl\":\"ws://h/devtools/page/OK\"}",
                  "/devtools/page/", path, sizeof(path)) == 0);
    CHECK_STR(path, "/devtools/page/OK");
    CHECK(path_of("{\"webSocketDebuggerUrl\" = \"ws://h/devtools/page/X\"}", "/devtools/page/",
                  path, sizeof(path)) == -ENOENT);
    /* Cut off inside the value. */
    CHECK(path_of("{\"webSocketDebuggerUrl\": \"ws://h/devtools/page/X", "/devtools/page/", path,
                  sizeof(path)) == -ENOENT);

    /* The path buffer's bound, exactly. */
    char small[20]; /* "/devtools/page/ABCD" is 19 bytes */
    CHECK(path_of("{\"webSocketDebuggerUrl\":\"ws://h/devtools/page/ABCD\"}", "/devtools/page/",
                  small, sizeof(small)) == 0);
    CHECK_STR(small, "/devtools/page/ABCD");
    CHECK(path_of("{\"webSocketDebuggerUrl\":\"ws://h/devtools/page/ABCDE\"}", "/devtools/page/",
                  small, sizeof(small)) == -ENAMETOOLONG);
}

static void test_text_frame(void)
{
    static char msg[70000], out[70020];
    memset(msg, 'm', sizeof(msg));
    const struct {
        size_t len, head;
    } cases[] = {{0, 2}, {125, 2}, {126, 4}, {65535, 4}, {65536, 10}, {70000, 10}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len, head = cases[i].head;
        size_t total = head + 4 + len;
        CHECK(ws_text_frame(out, total, msg, len) == (ssize_t)total);
        CHECK(ws_text_frame(out, total - 1, msg, len) == -EMSGSIZE);
        CHECK((unsigned char)out[0] == 0x81);
        CHECK(((unsigned char)out[1] & 0x80) != 0); /* masked */
        unsigned code = (unsigned char)out[1] & 0x7f;
        if (head == 2)
            CHECK(code == len);
        else if (head == 4)
            CHECK(code == 126 &&
                  ((size_t)(unsigned char)out[2] << 8 | (unsigned char)out[3]) == len);
        else {
            size_t n = 0;
            for (int b = 0; b < 8; b++)
                n = n << 8 | (unsigned char)out[2 + b];
            CHECK(code == 127 && n == len);
        }
        CHECK(memcmp(out + head, "\0\0\0\0", 4) == 0);
        CHECK(memcmp(out + head + 4, msg, len) == 0);
    }
    CHECK(ws_text_frame(out, 3, "", 0) == -EMSGSIZE);
}

static int frame(const char *bytes, size_t len, struct ws_frame *f)
{
    return ws_frame_parse((const unsigned char *)bytes, len, f);
}

static void test_frame_parse(void)
{
    struct ws_frame f;

    CHECK(frame("", 0, &f) == 0);
    CHECK(frame("\x81", 1, &f) == 0);
    CHECK(frame("\x81\x05hello", 7, &f) == 1);
    CHECK(f.fin && f.opcode == WS_OP_TEXT && f.head_len == 2 && f.payload_len == 5);
    /* The header alone is enough: the payload may still be coming. */
    CHECK(frame("\x81\x05", 2, &f) == 1 && f.payload_len == 5);
    CHECK(frame("\x01\x01x", 3, &f) == 1 && !f.fin);
    CHECK(frame("\x80\x01x", 3, &f) == 1 && f.opcode == WS_OP_CONT);

    /* 16-bit lengths: 126 is the smallest, a shorter one is refused. */
    CHECK(frame("\x81\x7e\x00", 3, &f) == 0);
    CHECK(frame("\x81\x7e\x00\x7e", 4, &f) == 1 && f.head_len == 4 && f.payload_len == 126);
    CHECK(frame("\x81\x7e\xff\xff", 4, &f) == 1 && f.payload_len == 65535);
    CHECK(frame("\x81\x7e\x00\x7d", 4, &f) == -EPROTO);
    /* 64-bit lengths: from 65536, never with the top bit. */
    CHECK(frame("\x81\x7f\0\0\0\0\0\x01\0", 9, &f) == 0);
    CHECK(frame("\x81\x7f\0\0\0\0\0\x01\0\0", 10, &f) == 1);
    CHECK(f.head_len == 10 && f.payload_len == 65536);
    CHECK(frame("\x81\x7f\0\0\0\0\0\0\xff\xff", 10, &f) == -EPROTO);
    CHECK(frame("\x81\x7f\x80\0\0\0\0\0\0\0", 10, &f) == -EPROTO);
    CHECK(frame("\x81\x7f\x7f\xff\xff\xff\xff\xff\xff\xff", 10, &f) == 1);

    /* What a client must refuse from a server. */
    CHECK(frame("\x81\x85\0\0\0\0hello", 11, &f) == -EPROTO); /* masked */
    CHECK(frame("\xc1\x00", 2, &f) == -EPROTO);               /* RSV1 */
    CHECK(frame("\x91\x00", 2, &f) == -EPROTO);               /* RSV3 */
    CHECK(frame("\x83\x00", 2, &f) == -EPROTO);               /* opcode 3 */
    CHECK(frame("\x8b\x00", 2, &f) == -EPROTO);               /* opcode 0xb */
    CHECK(frame("\x89\x7e\x00\x7e", 4, &f) == -EPROTO);       /* a ping over 125 */
    CHECK(frame("\x08\x00", 2, &f) == -EPROTO);               /* a fragmented close */
    CHECK(frame("\x88\x7d", 2, &f) == 1 && f.opcode == WS_OP_CLOSE);
    CHECK(frame("\x8a\x00", 2, &f) == 1 && f.opcode == WS_OP_PONG);
}

static long long id_of(const char *msg)
{
    return cdp_reply_id(msg, strlen(msg));
}

static void test_reply_id(void)
{
    CHECK(id_of("{\"id\":1,\"result\":{}}") == 1);
    CHECK(id_of(" {\n \"id\" : 42 }") == 42);
    CHECK(id_of("{\"result\":{\"result\":{\"type\":\"number\",\"value\":1}},\"id\":3}") == 3);
    CHECK(id_of("{\"x\":[{\"id\":1},[\"id\"]],\"id\":2}") == 2);
    CHECK(id_of("{\"a\":\"id\",\"id\":5}") == 5);
    CHECK(id_of("{\"a\":\"\\\"id\\\":1\",\"id\":6}") == 6);
    /* Events and the like: no id of their own. */
    CHECK(id_of("{\"method\":\"Target.targetCreated\",\"params\":{\"id\":1}}") == -1);
    CHECK(id_of("{\"method\":\"x\",\"params\":\"\\\"id\\\":1\"}") == -1);
    CHECK(id_of("{\"ids\":1}") == -1);
    CHECK(id_of("{\"i\\u0064\":1}") == -1);
    /* Not an integer id, or not an object, or cut off. */
    CHECK(id_of("{\"id\":\"1\"}") == -1);
    CHECK(id_of("{\"id\":-1}") == -1);
    CHECK(id_of("{\"id\":1.5}") == -1);
    CHECK(id_of("{\"id\":}") == -1);
    CHECK(id_of("{\"id\":1") == -1);
    CHECK(id_of("{\"id\"") == -1);
    CHECK(id_of("{\"id\":123456789012345678}") == 123456789012345678LL);
    CHECK(id_of("{\"id\":1234567890123456789}") == -1);
    CHECK(id_of("[{\"id\":1}]") == -1);
    /* Malformed: an object where a member's name should be. */
    CHECK(id_of("{{\"id\":1}}") == -1);
    CHECK(id_of("{\"a\":1,{\"id\":1}}") == -1);
    CHECK(id_of("\"id\":1") == -1);
    CHECK(id_of("") == -1);
    CHECK(id_of("{\"a\":\"unterminated}") == -1);
}

int main(void)
{
    test_http_whole_reply();
    test_http_malformed();
    test_debugger_path();
    test_text_frame();
    test_frame_parse();
    test_reply_id();
    CHECK_DONE();
}
