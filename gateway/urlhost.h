/* The host a browser navigates to for a URL, found by the WHATWG URL
 * Standard's basic URL parser (no base URL), the way Chromium reads it.
 *
 *   struct urlhost u;
 *   if (urlhost_parse(url, strlen(url), &u) < 0)  -> refuse, u.why says why
 *   switch (u.kind) ... u.host is the canonical host of DOMAIN/IPV4/IPV6
 *
 * Only the scheme and the authority are parsed; path, query and fragment
 * are not looked at. The authority of file: and of schemes that are not
 * special is checked as the standard checks it (a URL with a host it
 * refuses is refused) but not returned. The function is pure: no I/O, no
 * globals, no logging.
 *
 * Where the standard asks for more than this parser does, it refuses rather
 * than guesses:
 *  - IDNA: a non-ASCII label is written in punycode ("bücher" is
 *    "xn--bcher-kva") only when its non-ASCII characters are Latin-1
 *    letters, which UTS #46 maps by lowercasing alone; any other non-ASCII
 *    character (and U+00DF) is -EILSEQ;
 *  - a label written in punycode is kept when it decodes to ASCII or to
 *    Latin-1 that UTS #46 takes as it is, refused when it does not decode
 *    or decodes to Latin-1 that it maps or refuses. One that decodes
 *    beyond Latin-1 is kept unchecked, the one case where this parser
 *    accepts more than the standard: checking it takes Unicode's tables,
 *    and no host is misread by it, since the host of a valid one is the
 *    label as written and the browser refuses the URL of an invalid one;
 *  - a domain with an empty label ("a..b", ".a"), apart from one trailing
 *    dot, which is removed: "a.example." is "a.example";
 *  - a domain longer than URLHOST_MAX: -ENAMETOOLONG (no DNS name is).
 * The input is read in full however long it is; nothing is cut. */
#pragma once

#include <stddef.h>

/* The longest domain returned (DNS: 253 without the trailing dot). */
#define URLHOST_MAX 253

enum urlhost_kind {
    URLHOST_DOMAIN, /* special scheme (http, https, ws, wss, ftp), a domain */
    URLHOST_IPV4,   /* special scheme, host "a.b.c.d" */
    URLHOST_IPV6,   /* special scheme, host "[...]" in compressed form */
    URLHOST_FILE,   /* file: (its host is checked, not returned) */
    URLHOST_BLANK,  /* about:blank or about:srcdoc, any query or fragment */
    URLHOST_OPAQUE, /* any other scheme: data:, javascript:, blob:, about:x... (a
                     * "//" authority is checked, not returned) */
};

struct urlhost {
    enum urlhost_kind kind;
    /* Lowercase scheme without ':'; "" when longer than fits. */
    char scheme[32];
    /* DOMAIN/IPV4/IPV6 only: lowercase ASCII, no trailing dot; "" otherwise. */
    char host[URLHOST_MAX + 1];
    int port;        /* -1 when none or not a special scheme */
    const char *why; /* static text on failure, NULL on success */
};

/* Parses the first len bytes of url (which may hold NUL bytes). Returns 0,
 * or on failure fills out->why and returns:
 *   -EINVAL        not an absolute URL, or a host or port the standard
 *                  rejects (the browser would refuse it too);
 *   -EILSEQ        a non-ASCII host;
 *   -ENAMETOOLONG  a domain longer than URLHOST_MAX;
 *   -ENOMEM        out of memory. */
int urlhost_parse(const char *url, size_t len, struct urlhost *out);
