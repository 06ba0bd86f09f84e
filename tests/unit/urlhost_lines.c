/* urlhost_parse as a filter, for urlhost_diff.mjs: each line of stdin is a
 * URL in hex (two digits a byte, so that any byte, NUL and newline too, can
 * be given), and each gets one line back, fields split by tabs:
 *
 *   ok KIND SCHEME PORT HOST      KIND as urlhost.h names it, lowercase
 *   refused ERRNO WHY             ERRNO's name, WHY urlhost's reason
 *   bad-input                     a line that is not hex
 *
 * Output is not flushed line by line: the caller writes all its input
 * first, then reads. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "urlhost.h"

static const char *kind_name(enum urlhost_kind kind)
{
    switch (kind) {
    case URLHOST_DOMAIN:
        return "domain";
    case URLHOST_IPV4:
        return "ipv4";
    case URLHOST_IPV6:
        return "ipv6";
    case URLHOST_FILE:
        return "file";
    case URLHOST_BLANK:
        return "blank";
    case URLHOST_OPAQUE:
        return "opaque";
    }
    return "unknown";
}

static const char *errno_name(int e)
{
    switch (e) {
    case EINVAL:
        return "EINVAL";
    case EILSEQ:
        return "EILSEQ";
    case ENAMETOOLONG:
        return "ENAMETOOLONG";
    case ENOMEM:
        return "ENOMEM";
    }
    return "unknown";
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes line[0..n) in place; the byte count, or -1 when it is not hex. */
static long unhex(char *line, size_t n)
{
    if (n % 2)
        return -1;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_digit(line[i]), lo = hex_digit(line[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        line[i / 2] = (char)(hi * 16 + lo);
    }
    return (long)(n / 2);
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    while ((n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            n--;
        long len = unhex(line, (size_t)n);
        if (len < 0) {
            puts("bad-input");
            continue;
        }
        struct urlhost u;
        int r = urlhost_parse(line, (size_t)len, &u);
        if (r < 0)
            printf("refused\t%s\t%s\n", errno_name(-r), u.why);
        else
            printf("ok\t%s\t%s\t%d\t%s\n", kind_name(u.kind), u.scheme, u.port, u.host);
    }
    free(line);
    if (ferror(stdin) || fflush(stdout) != 0) {
        perror("urlhost_lines");
        return 1;
    }
    return 0;
}
