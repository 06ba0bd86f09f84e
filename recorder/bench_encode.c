/* How much CPU recording costs: encodes synthetic screen content at a given
 * size and frame rate as fast as it can, and prints CPU seconds (user+sys,
 * all threads, from getrusage) per minute of recorded video, for three kinds
 * of screen: idle (the same picture repeated, the recorder's path for an
 * unchanged screen), typing (a small region changes every frame) and
 * scrolling (every pixel moves every frame).
 *
 *   bench_encode [WIDTH HEIGHT FPS SECONDS]    default 1280 720 15 20
 *
 * With --vnc it measures the whole recorder instead, in real time: a VNC
 * session (its decoding thread included) recording a live screen.
 *
 *   bench_encode --vnc PORT SECONDS [FPS]      VNC server on 127.0.0.1:PORT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "recorder/encoder.h"
#include "recorder/recording.h"
#include "recorder/vnc.h"

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A page of "text": dark glyph-sized blocks in lines on white, taller than
 * the screen so it can scroll. */
static uint8_t *make_page(int w, int h)
{
    uint8_t *p = malloc((size_t)w * (size_t)h * 4);
    uint32_t seed = 12345;
    if (!p)
        return NULL;
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
        ((uint32_t *)p)[i] = 0xffffffffu;
    for (int line = 20; line + 14 < h; line += 22) {
        for (int x = 40; x + 8 < w - 40; x += 9) {
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 7 == 0)
                continue; /* a space */
            uint32_t glyph = seed;
            for (int gy = 0; gy < 14; gy++)
                for (int gx = 0; gx < 7; gx++)
                    if ((glyph >> ((gy * 7 + gx) % 31)) & 1)
                        ((uint32_t *)p)[(size_t)(line + gy) * (size_t)w + (size_t)(x + gx)] =
                            0xff202020u;
        }
    }
    return p;
}

static int run(const char *kind, int w, int h, int fps, int seconds)
{
    char path[] = "/tmp/bench_encode_XXXXXX.mp4";
    int fd = mkstemps(path, 4);
    if (fd < 0) {
        perror("mkstemps");
        return 1;
    }
    close(fd);

    int page_h = h * 4;
    uint8_t *page = make_page(w, page_h);
    uint8_t *screen = malloc((size_t)w * (size_t)h * 4);
    if (!page || !screen) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    memcpy(screen, page, (size_t)w * (size_t)h * 4);

    struct ph_error err = {0};
    struct rec_encoder *e;
    if (rec_encoder_open(path, w, h, fps, &e, &err) < 0) {
        fprintf(stderr, "open: %s\n", err.message);
        return 1;
    }
    int64_t frames = (int64_t)fps * seconds;
    double c0 = cpu_seconds(), t0 = wall_seconds();
    for (int64_t i = 0; i < frames; i++) {
        int r;
        if (strcmp(kind, "idle") == 0 && i > 0) {
            r = rec_encoder_repeat(e, i, &err);
        } else {
            if (strcmp(kind, "typing") == 0) {
                /* One more "character" per frame on a line near the top. */
                int x = 40 + (int)(i % ((w - 80) / 9)) * 9,
                    y = 40 + (int)((i / ((w - 80) / 9)) % 10) * 22;
                for (int gy = 0; gy < 14; gy++)
                    for (int gx = 0; gx < 7; gx++)
                        ((uint32_t *)screen)[(size_t)(y + gy) * (size_t)w + (size_t)(x + gx)] =
                            ((i + gx + gy) & 1) ? 0xff202020u : 0xffffffffu;
            } else if (strcmp(kind, "scrolling") == 0) {
                int off = (int)((i * 6) % (page_h - h));
                memcpy(screen, page + (size_t)off * (size_t)w * 4, (size_t)w * (size_t)h * 4);
            }
            r = rec_encoder_write(e, screen, w, h, i, &err);
        }
        if (r < 0) {
            fprintf(stderr, "write: %s\n", err.message);
            return 1;
        }
    }
    double c1 = cpu_seconds(), t1 = wall_seconds();
    int r = rec_encoder_close(e, &err);
    double c2 = cpu_seconds(), t2 = wall_seconds();
    if (r < 0) {
        fprintf(stderr, "close: %s\n", err.message);
        return 1;
    }
    FILE *f = fopen(path, "rb");
    long size = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fclose(f);
    }
    unlink(path);

    double minutes = (double)frames / fps / 60.0;
    printf("%-9s %dx%d@%d: %.2f CPU s per recorded minute (encode %.2f s CPU, %.2f s wall for "
           "%.0f s of video; finalize %.2f s CPU, %.2f s wall), %.1f MB per minute\n",
           kind, w, h, fps, (c1 - c0) / minutes, c1 - c0, t1 - t0, (double)frames / fps, c2 - c1,
           t2 - t1, (double)size / 1e6 / minutes);
    free(page);
    free(screen);
    return 0;
}

static int run_vnc(int port, int seconds, int fps)
{
    char path[] = "/tmp/bench_record_XXXXXX.mp4";
    int fd = mkstemps(path, 4);
    if (fd < 0) {
        perror("mkstemps");
        return 1;
    }
    close(fd);

    struct ph_error err = {0};
    struct vnc_client *c;
    struct rec_recording *rec;
    double c0 = cpu_seconds();
    if (vnc_client_new("127.0.0.1", port, 10000, &c, &err) < 0 ||
        rec_recording_start(c, path, fps, NULL, &rec, &err) < 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    uint8_t *rgba;
    int w = 0, h = 0;
    if (vnc_client_snapshot(c, &rgba, &w, &h) == 0)
        free(rgba);
    struct timespec ts = {.tv_sec = seconds};
    while (nanosleep(&ts, &ts) < 0)
        ;
    double c1 = cpu_seconds();
    int r = rec_recording_stop(rec, &err);
    double c2 = cpu_seconds();
    if (r < 0) {
        fprintf(stderr, "stop: %s\n", err.message);
        return 1;
    }
    double minutes = seconds / 60.0;
    printf("live %dx%d@%d: %.2f CPU s per recorded minute (VNC + sampling + encoding, %.2f s "
           "CPU for %d s), finalize %.2f s CPU, %lld frames, %lld late, %.2f MB per minute\n",
           w, h, fps, (c1 - c0) / minutes, c1 - c0, seconds, c2 - c1,
           (long long)rec_recording_frames(rec), (long long)rec_recording_late(rec),
           (double)rec_recording_bytes(rec) / 1e6 / minutes);
    rec_recording_free(rec);
    vnc_client_free(c);
    unlink(path);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--vnc") == 0)
        return run_vnc(atoi(argv[2]), atoi(argv[3]), argc > 4 ? atoi(argv[4]) : 15);

    int w = argc > 1 ? atoi(argv[1]) : 1280;
    int h = argc > 2 ? atoi(argv[2]) : 720;
    int fps = argc > 3 ? atoi(argv[3]) : 15;
    int seconds = argc > 4 ? atoi(argv[4]) : 20;
    if (w < 2 || h < 2 || fps < 1 || seconds < 1) {
        fprintf(stderr, "usage: bench_encode [WIDTH HEIGHT FPS SECONDS]\n");
        return 2;
    }
    int r = 0;
    r |= run("idle", w, h, fps, seconds);
    r |= run("typing", w, h, fps, seconds);
    r |= run("scrolling", w, h, fps, seconds);
    return r;
}
