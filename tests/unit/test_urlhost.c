/* The host of a URL by the WHATWG URL Standard, and the allowed_domains
 * decision built on it: every trick that once let a URL name one host to
 * the policy and another to the browser. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "browser.h"
#include "check.h"
#include "params.h"
#include "urlhost.h"

/* Expects url (of len bytes) to parse with r, kind and host. */
static void expect_n(const char *url, size_t len, int want_r, enum urlhost_kind kind,
                     const char *host, int line)
{
    struct urlhost u;
    int r = urlhost_parse(url, len, &u);
    bool ok = r == want_r;
    if (ok && r == 0)
        ok = u.kind == kind && strcmp(u.host, host) == 0 && !u.why;
    if (ok && r < 0)
        ok = u.why && u.host[0] == '\0';
    if (!ok) {
        fprintf(stderr,
                "line %d: \"%.80s\": r=%d kind=%d host=\"%s\" why=%s; wanted r=%d kind=%d "
                "host=\"%s\"\n",
                line, url, r, (int)u.kind, u.host, u.why ? u.why : "-", want_r, (int)kind, host);
        check_failures++;
    }
}

#define HOST(url, kind, host) expect_n(url, strlen(url), 0, kind, host, __LINE__)
#define DOMAIN(url, host) HOST(url, URLHOST_DOMAIN, host)
#define IPV4(url, host) HOST(url, URLHOST_IPV4, host)
#define IPV6(url, host) HOST(url, URLHOST_IPV6, host)
#define REFUSED(url, r) expect_n(url, strlen(url), r, URLHOST_OPAQUE, "", __LINE__)

static int port_of(const char *url)
{
    struct urlhost u;
    if (urlhost_parse(url, strlen(url), &u) < 0)
        return -2;
    return u.port;
}

static void test_tricks(void)
{
    /* '\' is '/' for special schemes: the authority ends before it. */
    DOMAIN("http://evil.example\\@allowed.example/", "evil.example");
    DOMAIN("https://evil.example\\\\@allowed.example/", "evil.example");
    /* The userinfo runs to the last '@'. */
    DOMAIN("http://a@b@allowed.example/", "allowed.example");
    DOMAIN("http://user:pass@allowed.example:8080/x", "allowed.example");
    DOMAIN("http://allowed.example:80@evil.example/", "evil.example");
    DOMAIN("http://allowed.example?@evil.example/", "allowed.example");
    DOMAIN("http://allowed.example#@evil.example/", "allowed.example");
    DOMAIN("http://evil.example?x@allowed.example/", "evil.example");
    DOMAIN("http://evil.example/@allowed.example/", "evil.example");
    /* A long userinfo is read to its end: nothing is cut. */
    size_t n = 10000;
    char *big = malloc(n + 64);
    memcpy(big, "http://", 7);
    memset(big + 7, 'a', n);
    strcpy(big + 7 + n, "@evil.example/");
    DOMAIN(big, "evil.example");
    memcpy(big + 7 + n, "@allowed.example\\@evil.example/", 32);
    DOMAIN(big, "allowed.example");
    free(big);
    /* Case, the root's dot, percent-decoding before host parsing. */
    DOMAIN("HTTP://ALLOWED.example./", "allowed.example");
    DOMAIN("http://allowed.example%2eevil.example/", "allowed.example.evil.example");
    DOMAIN("http://allowed.example%2Eevil.example/", "allowed.example.evil.example");
    DOMAIN("http://%41llowed.example/", "allowed.example");
    /* Tabs and newlines vanish anywhere; C0 and space go at both ends. */
    DOMAIN("http://allo\twed.exa\nmple\r/", "allowed.example");
    DOMAIN("h\ttt\np://allowed.example/", "allowed.example");
    DOMAIN("\x01 \x1f http://allowed.example/ \x1f", "allowed.example");
    REFUSED("http://allowed.example\x7f/", -EINVAL);
}

static void test_slashes_and_schemes(void)
{
    DOMAIN("http:allowed.example", "allowed.example");
    DOMAIN("https:////allowed.example", "allowed.example");
    DOMAIN("http:\\\\allowed.example\\x", "allowed.example");
    DOMAIN("https:/\\/\\allowed.example", "allowed.example");
    DOMAIN("hTtPs://allowed.example", "allowed.example");
    DOMAIN("ws://allowed.example/", "allowed.example");
    DOMAIN("wss://allowed.example/", "allowed.example");
    DOMAIN("ftp://allowed.example/", "allowed.example");
    /* No scheme: a relative URL, which a navigation has no base for. */
    REFUSED("//allowed.example/", -EINVAL);
    REFUSED("allowed.example", -EINVAL);
    REFUSED("/path", -EINVAL);
    REFUSED("", -EINVAL);
    REFUSED(" \t ", -EINVAL);
    REFUSED("1http://allowed.example/", -EINVAL);
    REFUSED(":allowed.example", -EINVAL);

    HOST("about:blank", URLHOST_BLANK, "");
    HOST("about:srcdoc", URLHOST_BLANK, "");
    HOST("ABOUT:blank#x", URLHOST_BLANK, "");
    HOST("about:blank?x=1", URLHOST_BLANK, "");
    HOST(" about:bl\tank ", URLHOST_BLANK, "");
    HOST("about:blankx", URLHOST_OPAQUE, "");
    HOST("about://blank", URLHOST_OPAQUE, "");
    HOST("about:", URLHOST_OPAQUE, "");
    HOST("about:version", URLHOST_OPAQUE, "");
    HOST("javascript:alert(1)", URLHOST_OPAQUE, "");
    HOST("data:text/html,<h1>x", URLHOST_OPAQUE, "");
    HOST("blob:https://allowed.example/1234", URLHOST_OPAQUE, "");
    HOST("view-source:http://allowed.example/", URLHOST_OPAQUE, "");
    HOST("chrome://settings", URLHOST_OPAQUE, "");
    HOST("foo://allowed.example/", URLHOST_OPAQUE, "");
    HOST("file:///etc/passwd", URLHOST_FILE, "");
    HOST("FILE://allowed.example/etc/passwd", URLHOST_FILE, "");

    struct urlhost u;
    CHECK(urlhost_parse("JavaScript:x", 12, &u) == 0 && strcmp(u.scheme, "javascript") == 0);
    CHECK(urlhost_parse("view-source:x", 13, &u) == 0 && strcmp(u.scheme, "view-source") == 0);
}

static void test_ipv4(void)
{
    IPV4("http://127.0.0.1/", "127.0.0.1");
    IPV4("http://0x7f.1/", "127.0.0.1");
    IPV4("http://0X7F.1/", "127.0.0.1");
    IPV4("http://2130706433/", "127.0.0.1");
    IPV4("http://0x7f000001/", "127.0.0.1");
    IPV4("http://0177.0.0.1/", "127.0.0.1");
    IPV4("http://017700000001/", "127.0.0.1");
    IPV4("http://127.1/", "127.0.0.1");
    IPV4("http://127.0.1/", "127.0.0.1");
    IPV4("http://127.0.0.1./", "127.0.0.1");
    IPV4("http://%30x7f.1/", "127.0.0.1");
    IPV4("http://1.256/", "1.0.1.0");
    IPV4("http://4294967295/", "255.255.255.255");
    IPV4("http://0/", "0.0.0.0");
    IPV4("http://0x/", "0.0.0.0");
    IPV4("http://1.0x/", "1.0.0.0");
    /* Leading zeros: octal, however many. */
    IPV4("http://000000000000000000000000000000000000000000000000000000000127.1/", "87.0.0.1");
    IPV4("http://0x0000000000000000000000000000000000000000000000000000007f.1/", "127.0.0.1");
    IPV4("http://192.168.0.1:8080/", "192.168.0.1");
    REFUSED("http://256.0.0.1/", -EINVAL);
    REFUSED("http://1.2.3.4.5/", -EINVAL);
    REFUSED("http://4294967296/", -EINVAL);
    REFUSED("http://0x100000000/", -EINVAL);
    REFUSED("http://99999999999999999999999/", -EINVAL);
    REFUSED("http://1.2.16777216/", -EINVAL);
    REFUSED("http://09/", -EINVAL);
    REFUSED("http://foo.09/", -EINVAL);
    REFUSED("http://1..2/", -EINVAL);
    /* Not ending in a number: a domain. */
    DOMAIN("http://1.2.3.a/", "1.2.3.a");
    DOMAIN("http://0x1g/", "0x1g");
    DOMAIN("http://foo.0x1g/", "foo.0x1g");
}

static void test_ipv6(void)
{
    IPV6("http://[::1]:9222/", "[::1]");
    IPV6("http://[0:0:0:0:0:0:0:1]/", "[::1]");
    IPV6("http://[::]/", "[::]");
    IPV6("http://[1::]/", "[1::]");
    IPV6("http://[2001:DB8:0:0:1:0:0:1]/", "[2001:db8::1:0:0:1]");
    IPV6("http://[2001:db8:0:0:0:0:2:1]/", "[2001:db8::2:1]");
    IPV6("http://[1:0:3:4:5:6:7:8]/", "[1:0:3:4:5:6:7:8]");
    IPV6("http://[0001:0002:0003:0004:0005:0006:0007:0008]/", "[1:2:3:4:5:6:7:8]");
    IPV6("http://[::ffff:127.0.0.1]/", "[::ffff:7f00:1]");
    IPV6("http://[::127.0.0.1]/", "[::7f00:1]");
    IPV6("http://user@[fe80::1]:80/", "[fe80::1]");
    REFUSED("http://[::1/", -EINVAL);
    REFUSED("http://[::1]x/", -EINVAL);
    REFUSED("http://[]/", -EINVAL);
    REFUSED("http://[1:2:3:4:5:6:7:8:9]/", -EINVAL);
    REFUSED("http://[1:2:3:4:5:6:7]/", -EINVAL);
    REFUSED("http://[1::2::3]/", -EINVAL);
    REFUSED("http://[:1]/", -EINVAL);
    REFUSED("http://[1:]/", -EINVAL);
    REFUSED("http://[12345::]/", -EINVAL);
    REFUSED("http://[::1.2.3.04]/", -EINVAL);
    REFUSED("http://[::1.2.3]/", -EINVAL);
    REFUSED("http://[::1.2.3.4.5]/", -EINVAL);
    REFUSED("http://[::1.2.3.256]/", -EINVAL);
    REFUSED("http://[1:2:3:4:5:6:7:1.2.3.4]/", -EINVAL);
    REFUSED("http://[::1%25eth0]/", -EINVAL);
    REFUSED("http://[::1]evil.example/", -EINVAL);
}

static void test_hosts_and_ports(void)
{
    CHECK(port_of("http://allowed.example:8080/") == 8080);
    CHECK(port_of("http://allowed.example:65535/") == 65535);
    CHECK(port_of("http://allowed.example:/") == -1);
    CHECK(port_of("http://allowed.example/") == -1);
    CHECK(port_of("http://allowed.example:00000000000000080/") == 80);
    CHECK(port_of("http://[::1]:9222/") == 9222);
    REFUSED("http://allowed.example:65536/", -EINVAL);
    REFUSED("http://allowed.example:8a/", -EINVAL);
    REFUSED("http://allowed.example:80:90/", -EINVAL);
    REFUSED("http://allowed.example:-1/", -EINVAL);

    REFUSED("http://", -EINVAL);
    REFUSED("http:///", -EINVAL);
    REFUSED("http://user@/", -EINVAL);
    REFUSED("http://@/", -EINVAL);
    REFUSED("http://:80/", -EINVAL);
    REFUSED("http://?x", -EINVAL);
    REFUSED("https:", -EINVAL);

    /* Forbidden code points, whether written or percent-encoded. */
    REFUSED("http://allowed .example/", -EINVAL);
    REFUSED("http://a<b/", -EINVAL);
    REFUSED("http://a^b/", -EINVAL);
    REFUSED("http://a|b/", -EINVAL);
    REFUSED("http://a%/", -EINVAL);
    REFUSED("http://a%zz/", -EINVAL);
    REFUSED("http://a%25b/", -EINVAL);
    REFUSED("http://a%00b/", -EINVAL);
    REFUSED("http://a%2fb/", -EINVAL);
    REFUSED("http://a%5cb/", -EINVAL);
    REFUSED("http://a%40b/", -EINVAL);
    REFUSED("http://a%3ab/", -EINVAL);
    REFUSED("http://a%20b/", -EINVAL);
    REFUSED("http://a%7fb/", -EINVAL);
    REFUSED("http://a]b/", -EINVAL);
    expect_n("http://allowed.example\0.evil/", 29, -EINVAL, URLHOST_OPAQUE, "", __LINE__);
    expect_n("http://a\x01"
             "b/",
             11, -EINVAL, URLHOST_OPAQUE, "", __LINE__);
    /* Characters the standard lets through stay. */
    DOMAIN("http://a_b~c!$&'()*+,;=.example/", "a_b~c!$&'()*+,;=.example");

    /* Empty labels no resolver takes. */
    REFUSED("http://a..b/", -EINVAL);
    REFUSED("http://.a/", -EINVAL);
    REFUSED("http://a../", -EINVAL);
    REFUSED("http://./", -EINVAL);
    REFUSED("http://%2e/", -EINVAL);

    /* Non-ASCII: Latin-1 letters are lowercased and written in punycode
     * (RFC 3492's algorithm; the expected forms are Python's "punycode"
     * codec's); any other character is refused, not guessed at. */
    DOMAIN("http://all\xc3\xb6wed.example/", "xn--allwed-yxa.example");
    DOMAIN("http://ALL\xc3\x96WED.example/", "xn--allwed-yxa.example"); /* capital O umlaut */
    DOMAIN("http://%C3%A9.example/", "xn--9ca.example");
    DOMAIN("http://b\xc3\xbc"
           "cher.de/",
           "xn--bcher-kva.de");
    DOMAIN("http://M\xc3\xbcnchen.de./", "xn--mnchen-3ya.de");
    DOMAIN("http://caf\xc3\xa9.fr/", "xn--caf-dma.fr");
    DOMAIN("http://\xc3\xa0\xc3\xbf.test/", "xn--0ca6d.test");
    REFUSED("http://stra\xc3\x9f"
            "e.de/",
            -EILSEQ); /* sharp s */
    REFUSED("http://a\xc3\x97"
            "b.test/",
            -EILSEQ); /* multiplication sign */
    REFUSED("http://a\xc2\xa0"
            "b.test/",
            -EILSEQ);                                       /* no-break space */
    REFUSED("http://xn--a\xc3\xa9.test/", -EILSEQ);         /* punycode with non-ASCII */
    REFUSED("http://a\xc3.test/", -EILSEQ);                 /* cut UTF-8 */
    REFUSED("http://\xc1\x81.test/", -EILSEQ);              /* overlong 'A' */
    REFUSED("http://\xef\xbd\x81llowed.example/", -EILSEQ); /* fullwidth a */
    REFUSED("http://allowed\xe3\x80\x82"
            "example/",
            -EILSEQ); /* ideographic full stop */
    REFUSED("http://%ff/", -EILSEQ);
    DOMAIN("http://XN--ll-zda.example/", "xn--ll-zda.example");
    /* Two-byte UTF-8 beyond Latin-1 as well: the browser maps U+03A9 to
     * U+03C9 (xn--bya) and U+0130 to "i" and U+0307 (xn--i-9bb), so the
     * punycode of what is written (xn--exa, xn--bfa) is not its host. */
    REFUSED("http://\xce\xa9/", -EILSEQ);
    REFUSED("http://\xc4\xb0.example/", -EILSEQ);
    REFUSED("http://a\xcc\x81.example/", -EILSEQ); /* a, combining acute: NFC makes it U+00E1 */
    REFUSED("http://\xd8\xa8.example/", -EILSEQ);  /* Arabic beh */
    REFUSED("http://%CE%A9/", -EILSEQ);
    /* A raw byte is its own character: to the browser a stray 0x80 is
     * U+FFFD, not the end of the U+00C0 that "%C3" starts. */
    REFUSED("http://%C3\x80.test/", -EILSEQ);
    REFUSED("http://\x80.test/", -EILSEQ);
    DOMAIN("http://%C3%83\xc3\xa0.test/", "xn--0caf.test"); /* U+00C3 U+00E0 */

    /* Length: 253 is the most, one root dot aside; beyond is refused. */
    char url[800];
    memcpy(url, "http://", 7);
    memset(url + 7, 'a', 253);
    strcpy(url + 7 + 253, "./");
    struct urlhost u;
    CHECK(urlhost_parse(url, strlen(url), &u) == 0 && strlen(u.host) == 253);
    memset(url + 7, 'a', 254);
    strcpy(url + 7 + 254, "/");
    CHECK(urlhost_parse(url, strlen(url), &u) == -ENAMETOOLONG && u.why);
    /* Percent-encoded, 253 octets decode from 759 bytes: allowed. */
    size_t k = 7;
    for (int i = 0; i < 253; i++, k += 3)
        memcpy(url + k, "%61", 3);
    strcpy(url + k, "/");
    CHECK(urlhost_parse(url, strlen(url), &u) == 0 && strlen(u.host) == 253);
}

/* A label already in punycode is kept once it decodes to what IDNA would
 * have written that way; the forms are node's (the WHATWG URL Standard). */
static void test_punycode(void)
{
    DOMAIN("http://xn--bcher-kva.de/", "xn--bcher-kva.de");
    DOMAIN("http://XN--BCHER-KVA.de/", "xn--bcher-kva.de");
    DOMAIN("http://xn--0ca.test/", "xn--0ca.test");   /* U+00E0 */
    DOMAIN("http://xn--zca.test/", "xn--zca.test");   /* U+00DF, nontransitional */
    DOMAIN("http://xn--rca.test/", "xn--rca.test");   /* U+00D7, valid as it is */
    DOMAIN("http://xn--abc-.test/", "xn--abc-.test"); /* decodes to ASCII "abc" */
    /* Latin-1 that IDNA maps or refuses is no label's decoded form. */
    REFUSED("http://xn--3ba.test/", -EINVAL);   /* U+00C0, mapped to U+00E0 */
    REFUSED("http://xn--fca.test/", -EINVAL);   /* U+00CB */
    REFUSED("http://xn--hba.test/", -EINVAL);   /* U+00AA, mapped to "a" */
    REFUSED("http://xn--a-vca.test/", -EINVAL); /* U+00AD, ignored */
    REFUSED("http://xn--a.test/", -EINVAL);     /* U+0080 */
    /* Not punycode at all. */
    REFUSED("http://xn--/", -EINVAL);
    REFUSED("http://xn--zz/", -EINVAL);
    REFUSED("http://xn---abc/", -EINVAL); /* a delimiter first is none */
    REFUSED("http://xn--99999999/", -EINVAL);
    REFUSED("http://a.xn--zz.example/", -EINVAL);
    REFUSED("http://a%2exn--zz/", -EINVAL);
    /* Beyond Latin-1 a label is kept unchecked: a valid one is its own
     * host, and the browser refuses an invalid one (U+2488 here). */
    DOMAIN("http://xn--wgv71a119e.jp/", "xn--wgv71a119e.jp");
    DOMAIN("http://xn--a-ecp.ru/", "xn--a-ecp.ru");
}

/* file: and schemes that are not special have no host urlhost returns,
 * but one the standard refuses makes the URL refused. */
static void test_other_authorities(void)
{
    HOST("file://c:/x", URLHOST_FILE, "");
    HOST("file://C|/x", URLHOST_FILE, "");
    HOST("file://localhost/x", URLHOST_FILE, "");
    HOST("file://[::1]/x", URLHOST_FILE, "");
    HOST("file://b\xc3\xbc"
         "cher/x",
         URLHOST_FILE, "");
    HOST("file:a b", URLHOST_FILE, "");
    HOST("file:///a b", URLHOST_FILE, "");
    HOST("file:/\\a/", URLHOST_FILE, "");
    REFUSED("file://a b/", -EINVAL);
    REFUSED("file:\\\\a b", -EINVAL);
    REFUSED("file://a:80/", -EINVAL);
    REFUSED("file://user@a/", -EINVAL);
    REFUSED("file://[::1/", -EINVAL);
    REFUSED("file://1.2.3.09/", -EINVAL);
    REFUSED("file://xn--a/", -EINVAL);
    expect_n("file://\0a/", 10, -EINVAL, URLHOST_OPAQUE, "", __LINE__);

    HOST("foo://user:pw@[::1]:80/x", URLHOST_OPAQUE, "");
    HOST("foo:///x", URLHOST_OPAQUE, "");
    HOST("foo://", URLHOST_OPAQUE, "");
    HOST("foo://a:/", URLHOST_OPAQUE, "");
    HOST("foo://a%zz\x01\x7f\xc3\xa9/", URLHOST_OPAQUE, "");
    HOST("foo:a b", URLHOST_OPAQUE, "");
    HOST("blob:https://a b/", URLHOST_OPAQUE, "");
    CHECK(port_of("foo://a:8080/") == -1);
    REFUSED("foo://a b/", -EINVAL);
    REFUSED("foo://user@/", -EINVAL);
    REFUSED("foo://:80/", -EINVAL);
    REFUSED("foo://[bad/", -EINVAL);
    REFUSED("foo://[::1]x/", -EINVAL);
    REFUSED("foo://a[::1]/", -EINVAL);
    REFUSED("foo://a:99999/", -EINVAL);
    REFUSED("foo://a:8a/", -EINVAL);
    REFUSED("foo://a^b/", -EINVAL);
    REFUSED("foo://a\\b/", -EINVAL);
    REFUSED("javascript://a b", -EINVAL);
    REFUSED("about://a b", -EINVAL);
    expect_n("foo://a\0b/", 10, -EINVAL, URLHOST_OPAQUE, "", __LINE__);
}

static json_t *patterns(const char *json)
{
    struct browser_params p;
    struct ph_error err = {0};
    json_t *body = json_loads(json, 0, NULL);
    json_t *list = NULL;
    if (body && browser_params_parse(body, &p, &err) == 0) {
        list = json_incref(p.allowed_domains);
        browser_params_done(&p);
    } else {
        fprintf(stderr, "patterns %s: %s\n", json, err.message);
        check_failures++;
    }
    json_decref(body);
    return list;
}

static void test_domain_allowed(void)
{
    json_t *l = patterns("{\"allowed_domains\":[\"allowed.example\",\"*.Sub.Example\"]}");
    CHECK(domain_allowed(l, "allowed.example"));
    CHECK(!domain_allowed(l, "a.allowed.example"));
    CHECK(!domain_allowed(l, "evil-allowed.example"));
    CHECK(!domain_allowed(l, "allowed.example.evil"));
    CHECK(!domain_allowed(l, "sub.example"));
    CHECK(domain_allowed(l, "a.sub.example"));
    CHECK(domain_allowed(l, "a.b.sub.example"));
    CHECK(!domain_allowed(l, "evil-sub.example"));
    CHECK(!domain_allowed(l, "xsub.example"));
    CHECK(!domain_allowed(l, ".sub.example"));
    CHECK(!domain_allowed(l, "sub.example.evil"));
    CHECK(!domain_allowed(l, "example"));
    CHECK(!domain_allowed(l, ""));
    json_decref(l);

    /* Patterns are stored in the parser's form, so both compare as strings. */
    l = patterns("{\"allowed_domains\":[\"Allowed.Example.\",\"127.1\",\"[0:0::1]\",\"*.a.b\"]}");
    CHECK(json_array_size(l) == 4);
    CHECK_STR(json_string_value(json_array_get(l, 0)), "allowed.example");
    CHECK_STR(json_string_value(json_array_get(l, 1)), "127.0.0.1");
    CHECK_STR(json_string_value(json_array_get(l, 2)), "[::1]");
    CHECK_STR(json_string_value(json_array_get(l, 3)), "*.a.b");
    json_decref(l);
}

/* The decision the session's hook makes on "cdp METHOD URL". */
static void test_policy(void)
{
    char reason[400];
    json_t *l = patterns("{\"allowed_domains\":[\"allowed.example\",\"*.sub.example\",\"[::1]\"]}");
#define ALLOW(url) CHECK(browser_url_allowed(l, url, reason, sizeof(reason)) == 0)
#define DENY(url, needle)                                                                          \
    do {                                                                                           \
        reason[0] = '\0';                                                                          \
        CHECK(browser_url_allowed(l, url, reason, sizeof(reason)) == -EPERM);                      \
        CHECK(strstr(reason, needle) != NULL);                                                     \
    } while (0)
    ALLOW("https://allowed.example/path?q#f");
    ALLOW("HTTP://ALLOWED.example.:8080/");
    ALLOW("http:allowed.example");
    ALLOW("https://user:pw@allowed.example/");
    ALLOW("https://www.sub.example/");
    ALLOW("http://[0::1]:9222/json");
    ALLOW("about:blank");
    ALLOW("about:srcdoc");
    ALLOW("");
    DENY("http://evil.example\\@allowed.example/", "navigation to evil.example is not allowed");
    DENY("http://allowed.example%2eevil.example/", "allowed.example.evil.example");
    DENY("https://sub.example/", "navigation to sub.example is not allowed");
    DENY("https://www.allowed.example/", "www.allowed.example");
    DENY("https://evil-allowed.example/", "evil-allowed.example");
    DENY("http://0x7f.1/", "127.0.0.1");
    DENY("javascript:alert(document.domain)", "javascript: URL is not allowed");
    DENY("data:text/html,hi", "data: URL is not allowed");
    DENY("blob:https://allowed.example/0", "blob: URL is not allowed");
    DENY("view-source:https://allowed.example/", "view-source: URL");
    DENY("file:///etc/passwd", "file: URL");
    DENY("about:version", "about: URL");
    DENY("//allowed.example/", "no scheme");
    DENY("allowed.example", "no scheme");
    DENY("http://\xe6\x97\xa5.example/", "non-ASCII");
    /* A look-alike is its own host (xn--allwed-yxa.example), not the listed one. */
    DENY("http://all\xc3\xb6wed.example/", "not in the session's allowed_domains");
    DENY("http://[::1/", "IPv6");

    size_t n = 10000;
    char *big = malloc(n + 64);
    memcpy(big, "https://", 8);
    memset(big + 8, 'a', n);
    strcpy(big + 8 + n, "@evil.example/");
    DENY(big, "navigation to evil.example");
    strcpy(big + 8 + n, "@allowed.example/");
    ALLOW(big);
    free(big);
    json_decref(l);

    /* Without allowed_domains everything passes here (the global hooks
     * still see the command). */
    CHECK(browser_url_allowed(NULL, "javascript:1", reason, sizeof(reason)) == 0);
#undef ALLOW
#undef DENY
}

int main(void)
{
    test_tricks();
    test_slashes_and_schemes();
    test_ipv4();
    test_ipv6();
    test_hosts_and_ports();
    test_punycode();
    test_other_authorities();
    test_domain_allowed();
    test_policy();
    CHECK_DONE();
}
