/* The WHATWG URL Standard's basic URL parser, as far as the host: the
 * steps below follow its states (scheme, special authority slashes,
 * authority, host, port) and its host parser (IPv4, IPv6, domain). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "urlhost.h"

static int fail(struct urlhost *out, int r, const char *why)
{
    out->host[0] = '\0';
    out->port = -1;
    out->why = why;
    return r;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char to_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static int hex_value(char c)
{
    if (is_digit(c))
        return c - '0';
    c = to_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Case-insensitive: is s[0..n) the lowercase word w? */
static bool word_is(const char *s, size_t n, const char *w)
{
    if (strlen(w) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (to_lower(s[i]) != w[i])
            return false;
    return true;
}

/* The standard's first steps: strip leading and trailing C0 control or
 * space, then remove every ASCII tab or newline, wherever it is. */
static char *clean_input(const char *url, size_t len, size_t *out_len)
{
    size_t b = 0, e = len, n = 0;

    while (b < e && (unsigned char)url[b] <= 0x20)
        b++;
    while (e > b && (unsigned char)url[e - 1] <= 0x20)
        e--;
    char *s = malloc(e - b + 1);
    if (!s)
        return NULL;
    for (size_t i = b; i < e; i++)
        if (url[i] != '\t' && url[i] != '\n' && url[i] != '\r')
            s[n++] = url[i];
    s[n] = '\0';
    *out_len = n;
    return s;
}

/* Forbidden domain code points (ASCII only: non-ASCII is mapped before). */
static bool forbidden_in_domain(unsigned char c)
{
    return c <= 0x1f || c == 0x7f || (c != '\0' && strchr(" #%/:<>?@[\\]^|", c));
}

/* ---- IPv4 ---------------------------------------------------------------- */

#define IPV4_TOO_BIG ((uint64_t)1 << 32)

/* The IPv4 number parser: decimal, 0x hex, or 0-prefixed octal. The value
 * saturates at IPV4_TOO_BIG, which no caller accepts. */
static int ipv4_number(const char *p, size_t n, uint64_t *value)
{
    unsigned radix = 10;
    uint64_t v = 0;

    if (n == 0)
        return -1;
    if (n >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        radix = 16;
        p += 2;
        n -= 2;
    } else if (n >= 2 && p[0] == '0') {
        radix = 8;
        p++;
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        int d = hex_value(p[i]);
        if (d < 0 || (unsigned)d >= radix)
            return -1;
        v = v * radix + (unsigned)d;
        if (v > IPV4_TOO_BIG)
            v = IPV4_TOO_BIG;
    }
    *value = v;
    return 0;
}

/* "Ends in a number": the last label (a trailing dot aside) is all digits
 * or parses as an IPv4 number. */
static bool ends_in_number(const char *d, size_t n)
{
    uint64_t v;

    if (n > 0 && d[n - 1] == '.')
        n--;
    size_t start = n;
    while (start > 0 && d[start - 1] != '.')
        start--;
    if (start == n)
        return false;
    bool digits = true;
    for (size_t i = start; i < n; i++)
        digits = digits && is_digit(d[i]);
    return digits || ipv4_number(d + start, n - start, &v) == 0;
}

static int ipv4_parse(const char *d, size_t n, uint32_t *addr)
{
    uint64_t numbers[4];
    size_t count = 0, start = 0;

    /* One trailing dot is allowed: "1.2.3.4." */
    if (n > 1 && d[n - 1] == '.')
        n--;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && d[i] != '.')
            continue;
        if (count == 4 || ipv4_number(d + start, i - start, &numbers[count]) < 0)
            return -1;
        count++;
        start = i + 1;
    }
    for (size_t i = 0; i + 1 < count; i++)
        if (numbers[i] > 255)
            return -1;
    if (numbers[count - 1] >= ((uint64_t)1 << (8 * (5 - count))))
        return -1;
    uint64_t v = numbers[count - 1];
    for (size_t i = 0; i + 1 < count; i++)
        v += numbers[i] << (8 * (3 - i));
    *addr = (uint32_t)v;
    return 0;
}

/* ---- IPv6 ---------------------------------------------------------------- */

static int ipv6_parse(const char *p, size_t n, uint16_t address[8])
{
    size_t i = 0, piece = 0;
    long compress = -1;

#define C (i < n ? p[i] : '\0')
#define AT_END (i >= n)
    memset(address, 0, 8 * sizeof(address[0]));
    if (C == ':') {
        if (i + 1 >= n || p[i + 1] != ':')
            return -1;
        i += 2;
        compress = (long)++piece;
    }
    while (!AT_END) {
        if (piece == 8)
            return -1;
        if (C == ':') {
            if (compress >= 0)
                return -1;
            i++;
            compress = (long)++piece;
            continue;
        }
        unsigned value = 0, length = 0;
        while (length < 4 && !AT_END && hex_value(C) >= 0) {
            value = value * 16 + (unsigned)hex_value(C);
            i++;
            length++;
        }
        if (C == '.' && !AT_END) {
            /* An IPv4 address in the last two pieces: strict dotted decimal. */
            if (length == 0 || piece > 6)
                return -1;
            i -= length;
            unsigned seen = 0;
            while (!AT_END) {
                int v4 = -1;
                if (seen > 0) {
                    if (C == '.' && seen < 4)
                        i++;
                    else
                        return -1;
                }
                if (AT_END || !is_digit(C))
                    return -1;
                while (!AT_END && is_digit(C)) {
                    int digit = C - '0';
                    if (v4 < 0)
                        v4 = digit;
                    else if (v4 == 0)
                        return -1;
                    else
                        v4 = v4 * 10 + digit;
                    if (v4 > 255)
                        return -1;
                    i++;
                }
                address[piece] = (uint16_t)(address[piece] * 0x100 + v4);
                seen++;
                if (seen == 2 || seen == 4)
                    piece++;
            }
            if (seen != 4)
                return -1;
            break;
        } else if (C == ':' && !AT_END) {
            i++;
            if (AT_END)
                return -1;
        } else if (!AT_END) {
            return -1;
        }
        address[piece++] = (uint16_t)value;
    }
#undef C
#undef AT_END
    if (compress >= 0) {
        size_t swaps = piece - (size_t)compress;
        piece = 7;
        while (piece != 0 && swaps > 0) {
            uint16_t t = address[piece];
            address[piece] = address[(size_t)compress + swaps - 1];
            address[(size_t)compress + swaps - 1] = t;
            piece--;
            swaps--;
        }
    } else if (piece != 8) {
        return -1;
    }
    return 0;
}

/* "[a:b::c]": the first longest run of two or more zero pieces becomes "::". */
static void ipv6_serialize(const uint16_t address[8], char *out, size_t len)
{
    int compress = -1, best = 1;
    size_t n = 0;

    for (int i = 0; i < 8;) {
        int run = 0;
        while (i + run < 8 && address[i + run] == 0)
            run++;
        if (run > best) {
            best = run;
            compress = i;
        }
        i += run ? run : 1;
    }
    n += (size_t)snprintf(out + n, len - n, "[");
    for (int i = 0; i < 8; i++) {
        if (i == compress) {
            n += (size_t)snprintf(out + n, len - n, "%s", i == 0 ? "::" : ":");
            i += best - 1;
            continue;
        }
        n += (size_t)snprintf(out + n, len - n, "%x%s", address[i], i == 7 ? "" : ":");
    }
    snprintf(out + n, len - n, "]");
}

/* ---- hosts --------------------------------------------------------------- */

/* ---- IDNA, for Latin-1 letters ------------------------------------------
 * UTS #46 as the URL Standard uses it maps a non-ASCII domain label and
 * then writes it in punycode (RFC 3492). Its full mapping needs Unicode's
 * tables; this does the part that needs none: labels whose non-ASCII code
 * points are Latin-1 letters (U+00C0..U+00FF but for U+00D7 and U+00F7),
 * where the mapping is only lowercasing and NFC changes nothing. U+00DF
 * (sharp s) is left out: UTS #46's transitional and nontransitional
 * processing disagree on it. Anything else non-ASCII is refused. */

enum { PUNY_BASE = 36, PUNY_TMIN = 1, PUNY_TMAX = 26, PUNY_SKEW = 38, PUNY_DAMP = 700 };

static uint32_t puny_adapt(uint32_t delta, uint32_t points, bool first)
{
    uint32_t k = 0;
    delta = first ? delta / PUNY_DAMP : delta / 2;
    delta += delta / points;
    while (delta > ((PUNY_BASE - PUNY_TMIN) * PUNY_TMAX) / 2) {
        delta /= PUNY_BASE - PUNY_TMIN;
        k += PUNY_BASE;
    }
    return k + (PUNY_BASE - PUNY_TMIN + 1) * delta / (delta + PUNY_SKEW);
}

static char puny_digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

/* Appends "xn--" and the punycode of cp[0..n) to out; false when it does
 * not fit. The code points are below U+0100, so no sum overflows. */
static bool puny_encode(const uint32_t *cp, size_t n, char *out, size_t *len, size_t cap)
{
    size_t basic = 0, done;
    uint32_t next = 0x80, delta = 0, bias = 72;

#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (*len + 1 >= cap)                                                                       \
            return false;                                                                          \
        out[(*len)++] = (ch);                                                                      \
    } while (0)
    for (const char *p = "xn--"; *p; p++)
        PUT(*p);
    for (size_t i = 0; i < n; i++)
        if (cp[i] < 0x80) {
            PUT((char)cp[i]);
            basic++;
        }
    if (basic > 0)
        PUT('-');
    for (done = basic; done < n;) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (cp[i] >= next && cp[i] < m)
                m = cp[i];
        delta += (m - next) * (uint32_t)(done + 1);
        next = m;
        for (size_t i = 0; i < n; i++) {
            if (cp[i] < next)
                delta++;
            if (cp[i] != next)
                continue;
            uint32_t q = delta;
            for (uint32_t k = PUNY_BASE;; k += PUNY_BASE) {
                uint32_t t = k <= bias ? PUNY_TMIN : k >= bias + PUNY_TMAX ? PUNY_TMAX : k - bias;
                if (q < t)
                    break;
                PUT(puny_digit(t + (q - t) % (PUNY_BASE - t)));
                q = (q - t) / (PUNY_BASE - t);
            }
            PUT(puny_digit(q));
            bias = puny_adapt(delta, (uint32_t)(done + 1), done == basic);
            delta = 0;
            done++;
        }
        delta++;
        next++;
    }
#undef PUT
    out[*len] = '\0';
    return true;
}

static int puny_digit_value(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= '0' && c <= '9')
        return c - '0' + 26;
    return -1;
}

/* RFC 3492's decoder on s[0..n), a label's part after "xn--" (lowercase),
 * into cp[0..*ncp) (cap code points at most). -1 when it is not punycode,
 * would overflow, or names a code point that is not a scalar value. */
static int puny_decode(const char *s, size_t n, uint32_t *cp, size_t *ncp, size_t cap)
{
    size_t basic = 0, in = 0, out = 0;
    uint32_t next = 0x80, bias = 72, i = 0;

    for (size_t k = 0; k < n; k++)
        if (s[k] == '-')
            basic = k;
    if (basic > cap)
        return -1;
    for (; out < basic; out++)
        cp[out] = (unsigned char)s[out];
    /* A delimiter first is not one: the digits start at 0 and '-' is none. */
    in = basic > 0 ? basic + 1 : 0;
    while (in < n) {
        uint32_t old = i, w = 1;
        for (uint32_t k = PUNY_BASE;; k += PUNY_BASE) {
            int digit = in < n ? puny_digit_value(s[in++]) : -1;
            if (digit < 0 || (uint32_t)digit > (UINT32_MAX - i) / w)
                return -1;
            i += (uint32_t)digit * w;
            uint32_t t = k <= bias ? PUNY_TMIN : k >= bias + PUNY_TMAX ? PUNY_TMAX : k - bias;
            if ((uint32_t)digit < t)
                break;
            if (w > UINT32_MAX / (PUNY_BASE - t))
                return -1;
            w *= PUNY_BASE - t;
        }
        bias = puny_adapt(i - old, (uint32_t)(out + 1), old == 0);
        if (i / (out + 1) > 0x10ffff - next)
            return -1;
        next += i / (uint32_t)(out + 1);
        i %= (uint32_t)(out + 1);
        if ((next >= 0xd800 && next <= 0xdfff) || out >= cap)
            return -1;
        memmove(cp + i + 1, cp + i, (out - i) * sizeof(cp[0]));
        cp[i++] = next;
        out++;
    }
    *ncp = out;
    return 0;
}

/* Whether UTS #46 takes a non-ASCII Latin-1 code point as it is (status
 * valid, or deviation for U+00DF in nontransitional processing): the small
 * letters and some symbols. The others it maps (capitals, U+00AA, ...),
 * ignores (U+00AD) or refuses (C1 controls). */
static bool latin1_valid(uint32_t c)
{
    static const char symbols[] = "\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa9\xab\xac\xae\xb0\xb1\xb6\xb7"
                                  "\xbb\xbf\xd7\xdf";

    return c >= 0xe0 ? c <= 0xff : c >= 0xa1 && strchr(symbols, (char)c) != NULL;
}

/* A label already in punycode ("xn--" and lowercase ASCII) is kept as it
 * is once it decodes (RFC 3492) to something UTS #46 would have written
 * this way: ASCII, or with Latin-1 it takes as it is. Decoded Latin-1
 * that it maps or refuses is refused: a decoded label may need no
 * mapping. Beyond Latin-1 the label is not checked further (that takes
 * Unicode's tables): the browser refuses the URL of an invalid one, and
 * the host of a valid one is this very label. */
static int punycode_check(const char *l, size_t n, struct urlhost *u)
{
    uint32_t cp[URLHOST_MAX];
    size_t ncp;
    bool latin1 = true;

    if (n > URLHOST_MAX)
        return fail(u, -ENAMETOOLONG, "a host longer than 253 characters");
    if (puny_decode(l + 4, n - 4, cp, &ncp, sizeof(cp) / sizeof(cp[0])) < 0 || ncp == 0)
        return fail(u, -EINVAL, "a label that starts with xn-- but is not valid punycode");
    for (size_t i = 0; i < ncp; i++)
        latin1 = latin1 && cp[i] <= 0xff;
    for (size_t i = 0; i < ncp && latin1; i++)
        if (cp[i] >= 0x80 && !latin1_valid(cp[i]))
            return fail(u, -EINVAL, "a punycode label with a character IDNA does not allow");
    return 0;
}

/* Every label of d[0..n) that starts with "xn--" through punycode_check. */
static int punycode_labels_check(const char *d, size_t n, struct urlhost *u)
{
    for (size_t start = 0; start <= n;) {
        const char *dot = memchr(d + start, '.', n - start);
        size_t end = dot ? (size_t)(dot - d) : n;
        if (end - start >= 4 && memcmp(d + start, "xn--", 4) == 0) {
            int r = punycode_check(d + start, end - start, u);
            if (r < 0)
                return r;
        }
        start = end + 1;
    }
    return 0;
}

/* One label of d (percent-decoded, not yet lowercased) to ASCII: ASCII
 * labels lowercased as they are, others mapped and punycoded. */
static int idna_label(const unsigned char *l, size_t n, char *out, size_t *len, size_t cap,
                      struct urlhost *u)
{
    uint32_t cp[URLHOST_MAX + 1];
    size_t ncp = 0;
    bool ascii = true;

    for (size_t i = 0; i < n;) {
        uint32_t c = l[i];
        if (c < 0x80) {
            i++;
        } else if ((c & 0xe0) == 0xc0 && i + 1 < n && (l[i + 1] & 0xc0) == 0x80) {
            c = ((c & 0x1f) << 6) | (l[i + 1] & 0x3f);
            i += 2;
            if (c < 0x80)
                return fail(u, -EILSEQ, "a host that is not valid UTF-8");
            ascii = false;
        } else {
            /* Three- and four-byte sequences are beyond Latin-1. */
            return fail(u, -EILSEQ,
                        "a non-ASCII host beyond Latin-1 letters (write it as xn-- punycode)");
        }
        if (c >= 'A' && c <= 'Z')
            c += 32;
        else if (c >= 0xc0 && c <= 0xde && c != 0xd7)
            c += 0x20; /* Latin-1 capitals map to their small letters */
        else if (c >= 0x80 && (c < 0xe0 || c == 0xf7 || c > 0xff))
            return fail(u, -EILSEQ,
                        "a non-ASCII host beyond Latin-1 letters (write it as xn-- punycode)");
        if (ncp >= URLHOST_MAX)
            return fail(u, -ENAMETOOLONG, "a host longer than 253 characters");
        cp[ncp++] = c;
    }
    if (ascii) {
        for (size_t i = 0; i < ncp; i++) {
            if (*len + 1 >= cap)
                return fail(u, -ENAMETOOLONG, "a host longer than 253 characters");
            out[(*len)++] = (char)cp[i];
        }
        out[*len] = '\0';
        return 0;
    }
    if (ncp >= 4 && cp[0] == 'x' && cp[1] == 'n' && cp[2] == '-' && cp[3] == '-')
        return fail(u, -EILSEQ, "a punycode label with non-ASCII characters in it");
    if (!puny_encode(cp, ncp, out, len, cap))
        return fail(u, -ENAMETOOLONG, "a host longer than 253 characters");
    return 0;
}

/* d[0..*dn), a domain with non-ASCII bytes, to its ASCII form, in place
 * (d's allocation is cap bytes). */
static int idna_to_ascii(char *d, size_t *dn, size_t cap, struct urlhost *u)
{
    char out[URLHOST_MAX + 2];
    size_t len = 0;
    const unsigned char *p = (const unsigned char *)d, *end = p + *dn;

    for (;;) {
        const unsigned char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
        int r = idna_label(p, n, out, &len, sizeof(out), u);
        if (r < 0)
            return r;
        if (!dot)
            break;
        if (len + 1 >= sizeof(out))
            return fail(u, -ENAMETOOLONG, "a host longer than 253 characters");
        out[len++] = '.';
        out[len] = '\0';
        p = dot + 1;
    }
    if (len + 1 > cap)
        return fail(u, -ENAMETOOLONG, "a host longer than 253 characters");
    memcpy(d, out, len + 1);
    *dn = len;
    return 0;
}

/* Whether each non-ASCII byte of s[0..n), before percent-decoding, is in
 * a UTF-8 sequence of its own. A browser is given text: a stray byte is
 * U+FFFD to it, never the end of a character that a percent-encoded byte
 * before it starts ("%C3" and a raw 0x80 are not U+00C0). Sequences of 3
 * or 4 bytes are only framed here: they are beyond Latin-1, refused later
 * whatever they hold. */
static bool raw_utf8_framed(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xc2 && c <= 0xdf ? 2
                     : c >= 0xe0 && c <= 0xef ? 3
                     : c >= 0xf0 && c <= 0xf4 ? 4
                                              : 0;
        if (len == 0 || len > n - i)
            return false;
        for (size_t k = 1; k < len; k++)
            if (((unsigned char)s[i + k] & 0xc0) != 0x80)
                return false;
        i += len - 1;
    }
    return true;
}

/* s[0..n), which starts with '[', as "[IPv6]" into address. */
static int bracketed_ipv6(const char *s, size_t n, uint16_t address[8], struct urlhost *out)
{
    if (n < 2 || s[n - 1] != ']')
        return fail(out, -EINVAL, "an IPv6 address without its closing ']'");
    if (ipv6_parse(s + 1, n - 2, address) < 0)
        return fail(out, -EINVAL, "an invalid IPv6 address");
    return 0;
}

/* The host parser for a special scheme, on s[0..n) (n > 0). */
static int host_parse(const char *s, size_t n, struct urlhost *out)
{
    if (s[0] == '[') {
        uint16_t address[8];
        int r = bracketed_ipv6(s, n, address, out);
        if (r < 0)
            return r;
        ipv6_serialize(address, out->host, sizeof(out->host));
        out->kind = URLHOST_IPV6;
        return 0;
    }

    if (!raw_utf8_framed(s, n))
        return fail(out, -EILSEQ, "a host that is not valid UTF-8");
    /* Percent-decoding comes first: "a%2eb" is the domain "a.b". The
     * buffer has room for the ASCII form of a host up to URLHOST_MAX. */
    size_t cap = n + URLHOST_MAX + 2;
    char *d = malloc(cap);
    size_t dn = 0;
    if (!d)
        return fail(out, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hex_value(s[i + 1])) >= 0 &&
            (lo = hex_value(s[i + 2])) >= 0) {
            d[dn++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[dn++] = s[i];
        }
    }
    d[dn] = '\0';

    int r = 0;
    bool ascii = true;
    for (size_t i = 0; i < dn; i++)
        ascii = ascii && (unsigned char)d[i] < 0x80;
    if (!ascii)
        r = idna_to_ascii(d, &dn, cap, out);
    for (size_t i = 0; i < dn && r == 0; i++) {
        unsigned char c = (unsigned char)d[i];
        if (forbidden_in_domain(c))
            r = fail(out, -EINVAL, "a host with a character that is not allowed in a domain");
        d[i] = to_lower(d[i]);
    }
    if (r == 0)
        r = punycode_labels_check(d, dn, out);
    if (r < 0) {
        free(d);
        return r;
    }

    if (ends_in_number(d, dn)) {
        uint32_t a;
        r = ipv4_parse(d, dn, &a);
        free(d);
        if (r < 0)
            return fail(out, -EINVAL, "a host that ends in a number but is not an IPv4 address");
        snprintf(out->host, sizeof(out->host), "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff,
                 (a >> 8) & 0xff, a & 0xff);
        out->kind = URLHOST_IPV4;
        return 0;
    }

    /* Names are compared without the root's dot; other empty labels no
     * resolver accepts, so they are refused rather than compared. */
    if (dn > 0 && d[dn - 1] == '.')
        d[--dn] = '\0';
    if (dn == 0 || d[0] == '.' || d[dn - 1] == '.' || strstr(d, ".."))
        r = fail(out, -EINVAL, "a host with an empty label");
    else if (dn > URLHOST_MAX)
        r = fail(out, -ENAMETOOLONG, "a host longer than 253 characters");
    else
        memcpy(out->host, d, dn + 1);
    free(d);
    if (r == 0)
        out->kind = URLHOST_DOMAIN;
    return r;
}

/* The opaque host of a scheme that is not special: only a host the
 * standard refuses matters (the host itself is not returned). */
static int opaque_host_check(const char *s, size_t n, struct urlhost *out)
{
    uint16_t address[8];

    if (n > 0 && s[0] == '[')
        return bracketed_ipv6(s, n, address, out);
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || strchr(" #/:<>?@[\\]^|", s[i]))
            return fail(out, -EINVAL, "a host with a character that is not allowed in a host");
    return 0;
}

/* The authority at s[0..n), after the slashes: userinfo, host, port. For a
 * special scheme '\' ends it like '/' and the host is a domain or an
 * address, never empty; for the others the host is opaque, may be empty
 * and is only checked. */
static int authority_parse(const char *s, size_t n, bool special, struct urlhost *out)
{
    size_t end = 0, start = 0, colon;
    bool brackets = false, at = false;

    while (end < n && s[end] != '/' && s[end] != '?' && s[end] != '#' &&
           !(special && s[end] == '\\'))
        end++;
    /* The userinfo ends at the last '@' of the authority. */
    for (size_t k = 0; k < end; k++)
        if (s[k] == '@') {
            start = k + 1;
            at = true;
        }
    if (start == end && (special || at))
        return fail(out, -EINVAL, "an empty host");
    for (colon = start; colon < end; colon++) {
        if (s[colon] == '[')
            brackets = true;
        else if (s[colon] == ']')
            brackets = false;
        else if (s[colon] == ':' && !brackets)
            break;
    }
    if (colon == start && colon < end)
        return fail(out, -EINVAL, "an empty host");
    if (colon + 1 < end) {
        long port = 0;
        for (size_t k = colon + 1; k < end; k++) {
            if (!is_digit(s[k]))
                return fail(out, -EINVAL, "a port that is not a number");
            port = port * 10 + (s[k] - '0');
            if (port > 65535)
                return fail(out, -EINVAL, "a port above 65535");
        }
        if (special)
            out->port = (int)port;
    }
    if (!special)
        return opaque_host_check(s + start, colon - start, out);
    return host_parse(s + start, colon - start, out);
}

/* After "file:": a host only after two slashes ('/' or '\'), up to the
 * path; none when empty or a drive letter ("c:", "c|"). It is parsed as
 * a special scheme's is, for whether the standard refuses it. */
static int file_host_check(const char *s, size_t n, struct urlhost *out)
{
    size_t end = 2;

    if (n < 2 || (s[0] != '/' && s[0] != '\\') || (s[1] != '/' && s[1] != '\\'))
        return 0;
    while (end < n && s[end] != '/' && s[end] != '\\' && s[end] != '?' && s[end] != '#')
        end++;
    if (end == 2 || (end == 4 && is_alpha(s[2]) && (s[3] == ':' || s[3] == '|')))
        return 0;
    int r = host_parse(s + 2, end - 2, out);
    out->kind = URLHOST_FILE;
    out->host[0] = '\0';
    return r;
}

int urlhost_parse(const char *url, size_t len, struct urlhost *out)
{
    static const char *const special[] = {"http", "https", "ws", "wss", "ftp", NULL};
    size_t n, i = 0;
    int r;

    memset(out, 0, sizeof(*out));
    out->port = -1;
    out->kind = URLHOST_OPAQUE;
    char *s = clean_input(url, len, &n);
    if (!s)
        return fail(out, -ENOMEM, "out of memory");

    if (n > 0 && is_alpha(s[0]))
        while (i < n &&
               (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
            i++;
    if (i == 0 || i == n || s[i] != ':') {
        free(s);
        return fail(out, -EINVAL, "not an absolute URL (no scheme)");
    }
    if (i < sizeof(out->scheme))
        for (size_t k = 0; k < i; k++)
            out->scheme[k] = to_lower(s[k]);

    const char *rest = s + i + 1;
    size_t rest_n = n - i - 1;
    r = 0;
    bool is_special = false;
    for (size_t k = 0; special[k]; k++)
        is_special = is_special || word_is(s, i, special[k]);
    if (is_special) {
        /* Any run of '/' and '\' (none, too) leads to the authority. */
        size_t slashes = 0;
        while (slashes < rest_n && (rest[slashes] == '/' || rest[slashes] == '\\'))
            slashes++;
        r = authority_parse(rest + slashes, rest_n - slashes, true, out);
    } else if (word_is(s, i, "file")) {
        out->kind = URLHOST_FILE;
        r = file_host_check(rest, rest_n, out);
    } else if (rest_n >= 2 && rest[0] == '/' && rest[1] == '/') {
        r = authority_parse(rest + 2, rest_n - 2, false, out);
    } else if (word_is(s, i, "about")) {
        /* An opaque path, up to the query or fragment. */
        size_t p = 0;
        while (p < rest_n && rest[p] != '?' && rest[p] != '#')
            p++;
        if ((p == 5 && memcmp(rest, "blank", 5) == 0) || (p == 6 && memcmp(rest, "srcdoc", 6) == 0))
            out->kind = URLHOST_BLANK;
    }
    free(s);
    return r;
}
