/* Allocation failures on demand, for the paths a test never takes with a
 * real malloc: alloc_fail_after(n) makes the n-th allocation from then on
 * fail, that one only; alloc_fail_after(0) turns it off.
 *
 * What counts: jansson's allocations, once alloc_fail_hook_jansson() ran;
 * in a test built with ALLOC_FAIL_WRAP defined and linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc, also every malloc,
 * calloc and realloc of the code under test (libc's own, as in strdup or
 * asprintf, do not). One thread only: the counter is not atomic. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>

static long alloc_countdown;
static bool alloc_fired;

static inline void alloc_fail_after(long n)
{
    alloc_countdown = n;
    alloc_fired = false;
}

/* Whether the allocation asked for came (and failed). */
static inline bool alloc_fail_fired(void)
{
    return alloc_fired;
}

static inline bool alloc_fail_now(void)
{
    if (alloc_countdown <= 0 || --alloc_countdown > 0)
        return false;
    alloc_fired = true;
    return true;
}

#ifdef ALLOC_FAIL_WRAP
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
    return alloc_fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return alloc_fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return alloc_fail_now() ? NULL : __real_realloc(p, n);
}

/* Through the wrapped malloc, which counts it. */
static inline void *alloc_json_malloc(size_t n)
{
    return malloc(n);
}
#else
static inline void *alloc_json_malloc(size_t n)
{
    return alloc_fail_now() ? NULL : malloc(n);
}
#endif

/* Any time: jansson's frees stay free(), whoever allocated. */
static inline void alloc_fail_hook_jansson(void)
{
    json_set_alloc_funcs(alloc_json_malloc, free);
}
