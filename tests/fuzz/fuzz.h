/* What the fuzz targets share: libFuzzer's entry point, the check that
 * turns a broken invariant into the crash libFuzzer reports, and copies
 * of the input sized exactly, so that ASan sees any read past its end. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* n bytes of p in an allocation of exactly n bytes (1 when n is 0);
 * aborts on out-of-memory, which a fuzzer run should not hide. */
static inline void *fuzz_memdup(const void *p, size_t n)
{
    void *c = malloc(n ? n : 1);
    REQUIRE(c);
    memcpy(c, p, n);
    return c;
}

/* The same as a C string: n bytes and a NUL, which cuts it at the first
 * NUL of the input as the code under test would. */
static inline char *fuzz_strndup(const void *p, size_t n)
{
    char *c = malloc(n + 1);
    REQUIRE(c);
    memcpy(c, p, n);
    c[n] = '\0';
    return c;
}
