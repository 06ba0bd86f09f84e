/* The recorder against a real VNC server (Xtigervnc, started by
 * recorder_test.sh with DISPLAY set to it): key names, PNG screenshots,
 * the encoder's odd sizes, frame capture and pointer input, a 4-second
 * recording checked with ffprobe/ffmpeg and by reading its MP4 boxes, a
 * recording killed with SIGKILL, and a desktop size change mid-recording.
 *
 *   test_recorder                          key names and encoders only
 *   test_recorder PORT WORKDIR             everything (DISPLAY must be set)
 *   test_recorder --record-child PORT FILE (internal: the SIGKILL victim) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <rfb/keysym.h>

#include "check.h"
#include "recorder/encoder.h"
#include "recorder/keys.h"
#include "recorder/recording.h"
#include "recorder/screenshot.h"
#include "recorder/vnc.h"
#include "util.h"

#define W 640
#define H 480

static const char *workdir = "/tmp";

/* ---- helpers ---- */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Scenario timing (the recording must last a given time), not readiness. */
static void sleep_until(double t)
{
    double d = t - mono_s();
    if (d <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)d, .tv_nsec = (long)((d - (time_t)d) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Runs a shell command, returns its stdout (malloc'd, NUL-terminated) or
 * NULL when it failed. */
static char *run_capture(const char *cmd, size_t *len_out)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, p)) > 0) {
        len += n;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int status = pclose(p);
    if (!buf)
        return NULL;
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "command failed (%d): %s\n", status, cmd);
        free(buf);
        return NULL;
    }
    return buf;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *str_or_empty(json_t *s)
{
    const char *v = json_string_value(s);
    return v ? v : "";
}

static json_t *ffprobe(const char *path, bool count_frames)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "ffprobe -v error %s-show_streams -show_format -of json '%s'",
             count_frames ? "-count_frames " : "", path);
    char *out = run_capture(cmd, NULL);
    if (!out)
        return NULL;
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    free(out);
    return j;
}

static json_t *video_stream(json_t *probe)
{
    json_t *streams = json_object_get(probe, "streams");
    size_t i;
    json_t *s;
    json_array_foreach(streams, i, s)
    {
        if (strcmp(str_or_empty(json_object_get(s, "codec_type")), "video") == 0)
            return s;
    }
    return NULL;
}

static long json_long_str(json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? atol(v) : -1;
}

static double json_double_str(json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? atof(v) : -1;
}

/* Top-level MP4 boxes: offsets of the first moov and mdat, number of moof. */
struct mp4_layout {
    long moov, mdat;
    int moofs;
    int boxes;
    bool truncated;
};

static bool mp4_scan(const char *path, struct mp4_layout *l)
{
    FILE *f = fopen(path, "rb");
    *l = (struct mp4_layout){.moov = -1, .mdat = -1};
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long off = 0;
    while (off + 8 <= size) {
        unsigned char hdr[16];
        fseek(f, off, SEEK_SET);
        if (fread(hdr, 1, 8, f) != 8)
            break;
        uint64_t bsize =
            ((uint64_t)hdr[0] << 24) | ((uint64_t)hdr[1] << 16) | ((uint64_t)hdr[2] << 8) | hdr[3];
        char type[5] = {(char)hdr[4], (char)hdr[5], (char)hdr[6], (char)hdr[7], 0};
        if (bsize == 1) {
            if (fread(hdr + 8, 1, 8, f) != 8)
                break;
            bsize = 0;
            for (int i = 8; i < 16; i++)
                bsize = (bsize << 8) | hdr[i];
        } else if (bsize == 0) {
            bsize = (uint64_t)(size - off);
        }
        if (bsize < 8)
            break;
        if (strcmp(type, "moov") == 0 && l->moov < 0)
            l->moov = off;
        if (strcmp(type, "mdat") == 0 && l->mdat < 0)
            l->mdat = off;
        if (strcmp(type, "moof") == 0)
            l->moofs++;
        l->boxes++;
        if ((uint64_t)(size - off) < bsize)
            l->truncated = true;
        off += (long)bsize;
    }
    fclose(f);
    return l->boxes > 0;
}

static char classify(const uint8_t *p)
{
    if (p[0] > 200 && p[1] < 60 && p[2] < 60)
        return 'R';
    if (p[2] > 200 && p[0] < 60 && p[1] < 60)
        return 'B';
    if (p[1] > 200 && p[0] < 60 && p[2] < 60)
        return 'G';
    return '?';
}

/* Waits (on the session's frame signal, no sleeping) until pixel (x, y)
 * has the colour class want. */
static bool wait_color(struct vnc_client *c, int x, int y, char want, int timeout_ms)
{
    struct vnc_frame f = {0};
    double end = mono_s() + timeout_ms / 1000.0;
    bool ok = false;
    for (;;) {
        if (vnc_client_frame_update(c, &f) < 0)
            break;
        if (x < f.width && y < f.height &&
            classify(f.rgba + ((size_t)y * (size_t)f.width + (size_t)x) * 4) == want) {
            ok = true;
            break;
        }
        int left = (int)((end - mono_s()) * 1000);
        if (left <= 0 || vnc_client_wait_frame(c, f.seq, left) < 0)
            break;
    }
    vnc_frame_done(&f);
    return ok;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool png_header(const uint8_t *png, size_t len, int *w, int *h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len < 33 || memcmp(png, sig, 8) != 0 || memcmp(png + 12, "IHDR", 4) != 0)
        return false;
    *w = (int)be32(png + 16);
    *h = (int)be32(png + 20);
    return true;
}

static bool write_whole(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* ---- tests without a server ---- */

static void test_keys(void)
{
    uint32_t ks[KEYS_MAX_COMBO];
    struct ph_error err = {0};

    CHECK(keys_parse("ctrl+shift+t", ks, KEYS_MAX_COMBO, &err) == 3);
    CHECK(ks[0] == XK_Control_L && ks[1] == XK_Shift_L && ks[2] == 't');
    CHECK(keys_parse("Control+Alt+Delete", ks, KEYS_MAX_COMBO, NULL) == 3);
    CHECK(ks[0] == XK_Control_L && ks[1] == XK_Alt_L && ks[2] == XK_Delete);
    CHECK(keys_parse("Return", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Return);
    CHECK(keys_parse("enter", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Return);
    CHECK(keys_parse("ESC", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Escape);
    CHECK(keys_parse("Escape", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Escape);
    CHECK(keys_parse("Tab", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Tab);
    CHECK(keys_parse("BackSpace", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_BackSpace);
    CHECK(keys_parse("Home", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Home);
    CHECK(keys_parse("end", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_End);
    CHECK(keys_parse("PageUp", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Page_Up);
    CHECK(keys_parse("Page_Down", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Page_Down);
    CHECK(keys_parse("ArrowLeft", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Left);
    CHECK(keys_parse("up", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Up);
    CHECK(keys_parse("Right", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Right);
    CHECK(keys_parse("ARROWDOWN", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Down);
    CHECK(keys_parse("F1", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_F1);
    CHECK(keys_parse("f12", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_F12);
    CHECK(keys_parse("alt+F4", ks, KEYS_MAX_COMBO, NULL) == 2 && ks[0] == XK_Alt_L &&
          ks[1] == XK_F4);
    CHECK(keys_parse("space", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_space);
    CHECK(keys_parse("cmd+c", ks, KEYS_MAX_COMBO, NULL) == 2 && ks[0] == XK_Super_L &&
          ks[1] == 'c');
    CHECK(keys_parse("meta", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == XK_Super_L);
    CHECK(keys_parse("win+e", ks, KEYS_MAX_COMBO, NULL) == 2 && ks[0] == XK_Super_L);
    CHECK(keys_parse("super+l", ks, KEYS_MAX_COMBO, NULL) == 2 && ks[0] == XK_Super_L);
    CHECK(keys_parse("A", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == 'A'); /* case kept */
    CHECK(keys_parse("ctrl++", ks, KEYS_MAX_COMBO, NULL) == 2 && ks[0] == XK_Control_L &&
          ks[1] == '+');
    CHECK(keys_parse("+", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == '+');
    CHECK(keys_parse("ctrl+plus", ks, KEYS_MAX_COMBO, NULL) == 2 && ks[1] == '+');
    CHECK(keys_parse("\xc3\xa9", ks, KEYS_MAX_COMBO, NULL) == 1 && ks[0] == 0xe9);
    CHECK(keys_parse("ctrl+\xe2\x82\xac", ks, KEYS_MAX_COMBO, NULL) == 2 && ks[1] == 0x010020ac);

    ph_error_clear(&err);
    CHECK(keys_parse("ctrl+foo", ks, KEYS_MAX_COMBO, &err) == -EINVAL);
    CHECK(err.kind == PH_ERR_INVALID && strstr(err.message, "foo"));
    CHECK(keys_parse("", ks, KEYS_MAX_COMBO, NULL) == -EINVAL);
    CHECK(keys_parse("ctrl+", ks, KEYS_MAX_COMBO, NULL) == -EINVAL);
    CHECK(keys_parse("ctrl++shift", ks, KEYS_MAX_COMBO, NULL) == -EINVAL);
    CHECK(keys_parse("F0", ks, KEYS_MAX_COMBO, NULL) == -EINVAL);
    CHECK(keys_parse("F25", ks, KEYS_MAX_COMBO, NULL) == -EINVAL);
    CHECK(keys_parse("F1x", ks, KEYS_MAX_COMBO, NULL) == -EINVAL);
    CHECK(keys_parse("t+ctrl", ks, KEYS_MAX_COMBO, NULL) == -EINVAL);
    CHECK(keys_parse("\xc3", ks, KEYS_MAX_COMBO, NULL) == -EINVAL);     /* cut UTF-8 */
    CHECK(keys_parse("\xc0\xaf", ks, KEYS_MAX_COMBO, NULL) == -EINVAL); /* overlong */
    CHECK(keys_parse("a+b+c+d+e+f+g+h+i", ks, KEYS_MAX_COMBO, NULL) == -E2BIG);
    CHECK(keys_parse("ctrl+shift+t", ks, 2, NULL) == -E2BIG);

    CHECK(keys_for_char('a') == 'a');
    CHECK(keys_for_char('Z') == 'Z');
    CHECK(keys_for_char(' ') == XK_space);
    CHECK(keys_for_char('\n') == XK_Return);
    CHECK(keys_for_char('\t') == XK_Tab);
    CHECK(keys_for_char(0xe9) == 0xe9);
    CHECK(keys_for_char(0x20ac) == 0x010020ac);
    CHECK(keys_for_char(0x1f600) == 0x0101f600);
    CHECK(keys_for_char(0x07) == 0);
    CHECK(keys_for_char(0x85) == 0);
    CHECK(keys_for_char(0xd800) == 0);
    CHECK(keys_for_char(0x110000) == 0);

    /* The VM's US keyboard: which keysyms need Shift, which have no key. */
    CHECK(keys_us_key('a') == KEYS_US_PLAIN);
    CHECK(keys_us_key('0') == KEYS_US_PLAIN);
    CHECK(keys_us_key(XK_space) == KEYS_US_PLAIN);
    CHECK(keys_us_key('/') == KEYS_US_PLAIN);
    CHECK(keys_us_key('`') == KEYS_US_PLAIN);
    CHECK(keys_us_key('A') == KEYS_US_SHIFTED);
    CHECK(keys_us_key('Z') == KEYS_US_SHIFTED);
    CHECK(keys_us_key('!') == KEYS_US_SHIFTED);
    CHECK(keys_us_key('"') == KEYS_US_SHIFTED);
    CHECK(keys_us_key('~') == KEYS_US_SHIFTED);
    CHECK(keys_us_key(XK_plus) == KEYS_US_SHIFTED);
    CHECK(keys_us_key(XK_Return) == KEYS_US_PLAIN);
    CHECK(keys_us_key(XK_Control_L) == KEYS_US_PLAIN);
    CHECK(keys_us_key(XK_Super_L) == KEYS_US_PLAIN);
    CHECK(keys_us_key(XK_F12) == KEYS_US_PLAIN);
    CHECK(keys_us_key(XK_F13) == KEYS_US_NONE);
    CHECK(keys_us_key(0xdc) == KEYS_US_NONE);       /* Ü */
    CHECK(keys_us_key(0x010020ac) == KEYS_US_NONE); /* € */
    CHECK(keys_us_key(0x07) == KEYS_US_NONE);
    CHECK(keys_us_key(0x7f) == KEYS_US_NONE);
}

static void test_png_synthetic(void)
{
    int w = 64, h = 48, ow, oh;
    uint8_t *rgba = malloc((size_t)w * h * 4);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgba + ((size_t)y * w + x) * 4;
            p[0] = (uint8_t)(x * 4);
            p[1] = (uint8_t)(y * 5);
            p[2] = (uint8_t)((x + y) * 2);
            p[3] = 0xff;
        }
    uint8_t *png;
    size_t len;
    struct ph_error err = {0};
    CHECK(rec_png_encode(rgba, w, h, 0, 0, &png, &len, &err) == 0);
    CHECK(png_header(png, len, &ow, &oh) && ow == w && oh == h);

    /* Decoded by ffmpeg, the pixels come back exactly (PNG is lossless). */
    char path[512];
    snprintf(path, sizeof(path), "%s/synthetic.png", workdir);
    CHECK(write_whole(path, png, len));
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "ffmpeg -v error -i '%s' -f rawvideo -pix_fmt rgb24 -", path);
    size_t rawlen = 0;
    char *raw = run_capture(cmd, &rawlen);
    CHECK(raw && rawlen == (size_t)w * h * 3);
    if (raw && rawlen == (size_t)w * h * 3) {
        int bad = 0;
        for (int i = 0; i < w * h; i++)
            bad += memcmp(raw + i * 3, rgba + i * 4, 3) != 0;
        CHECK(bad == 0);
    }
    free(raw);
    free(png);

    CHECK(rec_png_encode(rgba, w, h, 32, 0, &png, &len, NULL) == 0);
    CHECK(png_header(png, len, &ow, &oh) && ow == 32 && oh == 24);
    free(png);
    CHECK(rec_png_encode(rgba, 0, h, 0, 0, &png, &len, &err) == -EINVAL && png == NULL);
    free(rgba);

    rec_png_fit(1280, 720, 640, 0, &ow, &oh);
    CHECK(ow == 640 && oh == 360);
    rec_png_fit(1280, 720, 0, 360, &ow, &oh);
    CHECK(ow == 640 && oh == 360);
    rec_png_fit(1280, 720, 1000, 400, &ow, &oh);
    CHECK(ow == 711 && oh == 400);
    rec_png_fit(640, 480, 1280, 960, &ow, &oh); /* never scaled up */
    CHECK(ow == 640 && oh == 480);
}

static void test_encoder_sizes(void)
{
    char path[512];
    struct ph_error err = {0};
    struct rec_encoder *e;
    int w = 321, h = 241, ew, eh;

    snprintf(path, sizeof(path), "%s/odd.mp4", workdir);
    CHECK(rec_encoder_open(path, w, h, 10, &e, &err) == 0);
    if (!e)
        return;
    rec_encoder_size(e, &ew, &eh);
    CHECK(ew == 320 && eh == 240);
    uint8_t *rgba = malloc((size_t)w * h * 4);
    memset(rgba, 0x80, (size_t)w * h * 4);
    CHECK(rec_encoder_repeat(e, 0, NULL) == -EINVAL); /* nothing to repeat yet */
    for (int i = 0; i < 5; i++)
        CHECK(rec_encoder_write(e, rgba, w, h, i, &err) == 0);
    CHECK(rec_encoder_write(e, rgba, w, h, 4, NULL) == -EINVAL); /* time must move on */
    CHECK(rec_encoder_write(e, rgba, 200, 100, 5, &err) == 0);   /* scaled */
    CHECK(rec_encoder_repeat(e, 7, &err) == 0);                  /* a gap is fine */
    CHECK(rec_encoder_frames(e) == 7);
    CHECK(rec_encoder_close(e, &err) == 0);
    free(rgba);

    json_t *probe = ffprobe(path, true);
    json_t *vs = video_stream(probe);
    CHECK(vs != NULL);
    CHECK(json_integer_value(json_object_get(vs, "width")) == 320);
    CHECK(json_integer_value(json_object_get(vs, "height")) == 240);
    CHECK(json_long_str(vs, "nb_read_frames") == 7);
    json_decref(probe);

    CHECK(rec_encoder_open(path, 1, 240, 10, &e, &err) == -EINVAL);
    CHECK(rec_encoder_open("/nonexistent-dir/x.mp4", 320, 240, 10, &e, &err) < 0 && !e);
    /* A device that refuses writes fails at open, and stays in place. */
    CHECK(rec_encoder_open("/dev/full", 320, 240, 10, &e, &err) < 0 && !e);
    CHECK(access("/dev/full", F_OK) == 0);
}

/* ---- tests against the server ---- */

static void test_snapshot_and_input(struct vnc_client *c)
{
    uint8_t *rgba;
    int w, h;

    CHECK(sh("xsetroot -solid red") == 0);
    CHECK(wait_color(c, W / 2, H / 2, 'R', 5000));
    CHECK(vnc_client_snapshot(c, &rgba, &w, &h) == 0);
    CHECK(w == W && h == H);
    if (rgba && w == W && h == H) {
        /* Away from the centre, where X puts the pointer at start. */
        const uint8_t *p = rgba + ((size_t)(H / 4) * W + W / 4) * 4;
        CHECK(p[0] == 255 && p[1] == 0 && p[2] == 0 && p[3] == 255);
        p = rgba + ((size_t)W * H - 1) * 4; /* the last pixel too */
        CHECK(p[0] == 255 && p[1] == 0 && p[2] == 0 && p[3] == 255);
    }

    /* Screenshots of the real screen, full size and scaled. */
    uint8_t *png;
    size_t len;
    int pw, ph;
    struct ph_error err = {0};
    CHECK(rec_png_encode(rgba, w, h, 0, 0, &png, &len, &err) == 0);
    CHECK(png_header(png, len, &pw, &ph) && pw == W && ph == H);
    free(png);
    CHECK(rec_png_encode(rgba, w, h, 320, 0, &png, &len, &err) == 0);
    CHECK(png_header(png, len, &pw, &ph) && pw == 320 && ph == 240);
    char path[512];
    snprintf(path, sizeof(path), "%s/screen-small.png", workdir);
    CHECK(write_whole(path, png, len));
    free(png);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "ffmpeg -v error -i '%s' -f rawvideo -pix_fmt rgb24 -", path);
    size_t rawlen = 0;
    char *raw = run_capture(cmd, &rawlen);
    CHECK(raw && rawlen == 320 * 240 * 3 &&
          classify((uint8_t *)raw + (120 * 320 + 160) * 3) == 'R');
    free(raw);
    free(rgba);

    /* The server draws the pointer into the framebuffer (the client asks
     * for no cursor encoding): after a move, the picture around the new
     * position is no longer plain red. The root window has no cursor of its
     * own until one is set. */
    CHECK(sh("xsetroot -cursor_name left_ptr") == 0);
    CHECK(vnc_client_pointer(c, 100, 100, 0, &err) == 0);
    CHECK(vnc_client_pointer(c, 500, 400, 0, &err) == 0);
    bool drawn = false;
    struct vnc_frame f = {0};
    double end = mono_s() + 5;
    while (!drawn && mono_s() < end) {
        if (vnc_client_frame_update(c, &f) < 0)
            break;
        for (int y = 390; y < 410 && !drawn; y++)
            for (int x = 490; x < 510 && !drawn; x++)
                drawn = classify(f.rgba + ((size_t)y * W + x) * 4) != 'R';
        if (!drawn)
            vnc_client_wait_frame(c, f.seq, 500);
    }
    CHECK(drawn);
    vnc_frame_done(&f);
    CHECK(vnc_client_pointer(c, W, 10, 0, &err) == -EINVAL && err.kind == PH_ERR_INVALID);
    CHECK(vnc_client_pointer(c, 10, 10, VNC_BUTTON_LEFT, &err) == 0);
    CHECK(vnc_client_pointer(c, 10, 10, 0, &err) == 0);
    CHECK(vnc_client_key(c, XK_Shift_L, true, &err) == 0);
    CHECK(vnc_client_key(c, XK_Shift_L, false, &err) == 0);
    CHECK(vnc_client_status(c, &err) == 0);
}

/* The server sends only what is asked for: a screen that changes with
 * nobody reading costs it at most the answer to a request already out; a
 * snapshot still shows the newest picture; a rate caps the updates. */
static void test_paced_requests(struct vnc_client *c)
{
    uint8_t *rgba = NULL;
    int w, h;

    uint64_t u0 = vnc_client_updates(c);
    for (int i = 0; i < 20; i++)
        CHECK(sh("xsetroot -solid %s", i % 2 ? "green" : "blue") == 0);
    usleep(300 * 1000);
    uint64_t idle = vnc_client_updates(c) - u0;
    fprintf(stderr, "20 screen changes with no reader: %llu update(s) sent\n",
            (unsigned long long)idle);
    CHECK(idle <= 1);
    CHECK(vnc_client_snapshot(c, &rgba, &w, &h) == 0);
    CHECK(rgba && w == W && h == H && classify(rgba + ((size_t)(H / 2) * W + W / 2) * 4) == 'G');
    free(rgba);

    vnc_client_set_rate(c, 5);
    uint64_t u1 = vnc_client_updates(c);
    double t = mono_s();
    CHECK(sh("for i in $(seq 500); do xsetroot -solid red; xsetroot -solid blue; done") == 0);
    double took = mono_s() - t;
    vnc_client_set_rate(c, 0);
    uint64_t n = vnc_client_updates(c) - u1;
    fprintf(stderr, "1000 screen changes in %.2f s at 5 updates/s: %llu update(s) sent\n", took,
            (unsigned long long)n);
    CHECK(n >= 2 && (double)n <= 5 * took + 3);
}

static void test_recording(struct vnc_client *c)
{
    char path[512];
    struct ph_error err = {0};
    struct rec_recording *rec = NULL;

    snprintf(path, sizeof(path), "%s/rec.mp4", workdir);
    CHECK(sh("xsetroot -solid red") == 0);
    CHECK(wait_color(c, W / 2, H / 2, 'R', 5000));

    double t0 = mono_s();
    CHECK(rec_recording_start(c, path, 15, NULL, &rec, &err) == 0);
    if (!rec) {
        fprintf(stderr, "recording: %s\n", err.message);
        return;
    }
    CHECK(rec_recording_started_ms(rec) > 0 && rec_recording_ended_ms(rec) == 0);
    sleep_until(t0 + 2.0);
    CHECK(sh("xsetroot -solid blue") == 0);
    sleep_until(t0 + 3.0);
    CHECK(rec_recording_bytes(rec) > 0); /* fragments reach the file as we go */
    sleep_until(t0 + 4.0);
    int r = rec_recording_stop(rec, &err);
    CHECK(r == 0);
    if (r != 0)
        fprintf(stderr, "stop: %d %s\n", r, err.message);
    int64_t started = rec_recording_started_ms(rec), ended = rec_recording_ended_ms(rec);
    CHECK(ended - started >= 3900 && ended - started < 6000);
    int64_t frames = rec_recording_frames(rec);
    fprintf(stderr, "recorded %lld frames, %lld late, %lld bytes, %lld ms\n", (long long)frames,
            (long long)rec_recording_late(rec), (long long)rec_recording_bytes(rec),
            (long long)(ended - started));
    CHECK(frames >= 54 && frames <= 66);
    CHECK(rec_recording_stop(rec, NULL) == r); /* idempotent */

    /* ffprobe: h264, ~60 frames, ~4 s. */
    json_t *probe = ffprobe(path, false);
    CHECK(probe != NULL);
    json_t *vs = video_stream(probe);
    CHECK(vs != NULL);
    CHECK(vs && strcmp(str_or_empty(json_object_get(vs, "codec_name")), "h264") == 0);
    CHECK(json_integer_value(json_object_get(vs, "width")) == W);
    CHECK(json_integer_value(json_object_get(vs, "height")) == H);
    long nb = json_long_str(vs, "nb_frames");
    double dur = json_double_str(json_object_get(probe, "format"), "duration");
    long size = json_long_str(json_object_get(probe, "format"), "size");
    fprintf(stderr,
            "ffprobe: codec=%s %lldx%lld nb_frames=%ld duration=%.3f size=%ld "
            "r_frame_rate=%s format=%s\n",
            json_string_value(json_object_get(vs, "codec_name")),
            (long long)json_integer_value(json_object_get(vs, "width")),
            (long long)json_integer_value(json_object_get(vs, "height")), nb, dur, size,
            json_string_value(json_object_get(vs, "r_frame_rate")),
            json_string_value(json_object_get(json_object_get(probe, "format"), "format_name")));
    CHECK(nb >= 54 && nb <= 66);
    CHECK(dur >= 3.2 && dur <= 4.8); /* within 20% of 4 s */
    CHECK(size == rec_recording_bytes(rec));
    json_decref(probe);
    rec_recording_free(rec);

    /* faststart: the index comes before the media data, no fragments left. */
    struct mp4_layout l;
    CHECK(mp4_scan(path, &l));
    fprintf(stderr, "boxes: moov@%ld mdat@%ld moof=%d\n", l.moov, l.mdat, l.moofs);
    CHECK(l.moov >= 0 && l.mdat > l.moov && l.moofs == 0 && !l.truncated);

    /* Every 5th frame: red first, blue last, never red after blue. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -v error -i '%s' -vf \"select='not(mod(n\\,5))'\" -vsync 0 "
             "-f rawvideo -pix_fmt rgb24 -",
             path);
    size_t rawlen = 0;
    char *raw = run_capture(cmd, &rawlen);
    size_t fsz = (size_t)W * H * 3;
    CHECK(raw && rawlen >= 10 * fsz && rawlen % fsz == 0);
    if (raw && rawlen >= 10 * fsz) {
        char seq[64] = {0};
        size_t n = rawlen / fsz;
        bool seen_blue = false, order_ok = true;
        for (size_t i = 0; i < n && i < sizeof(seq) - 1; i++) {
            seq[i] = classify((uint8_t *)raw + i * fsz + ((size_t)(H / 2) * W + W / 2) * 3);
            if (seq[i] == 'B')
                seen_blue = true;
            if (seq[i] == 'R' && seen_blue)
                order_ok = false;
        }
        fprintf(stderr, "colours of every 5th frame: %s\n", seq);
        CHECK(seq[0] == 'R' && seq[1] == 'R');
        CHECK(seq[n - 1] == 'B' && seq[n - 2] == 'B');
        CHECK(order_ok);
        /* The change came at 2 s: frame 30, so sample 6 (of every 5th). */
        int first_blue = (int)(strchr(seq, 'B') ? strchr(seq, 'B') - seq : -1);
        CHECK(first_blue >= 5 && first_blue <= 8);
    }
    free(raw);
}

/* The SIGKILL victim: records until it has passed a keyframe (2 s) and a
 * bit, says so on stdout, then waits to be killed. */
static int record_child(int port, const char *path)
{
    struct ph_error err = {0};
    struct vnc_client *c;
    struct rec_recording *rec;

    if (vnc_client_new("127.0.0.1", port, 10000, &c, &err) < 0 ||
        rec_recording_start(c, path, 15, NULL, &rec, &err) < 0) {
        fprintf(stderr, "child: %s\n", err.message);
        return 1;
    }
    double end = mono_s() + 20;
    while (rec_recording_frames(rec) < 50 && mono_s() < end)
        sleep_until(mono_s() + 0.05);
    printf("recording %lld\n", (long long)rec_recording_frames(rec));
    fflush(stdout);
    for (;;)
        pause();
}

/* A recording ends by itself at its duration or size limit, with a
 * finished file, and says which limit it was. */
static void test_recording_limits(struct vnc_client *c)
{
    char path[512], why[128];
    struct ph_error err = {0};
    struct rec_recording *rec = NULL;

    snprintf(path, sizeof(path), "%s/limit-time.mp4", workdir);
    struct rec_limits by_time = {.max_ms = 1500};
    CHECK(rec_recording_start(c, path, 15, &by_time, &rec, &err) == 0);
    if (!rec) {
        fprintf(stderr, "recording: %s\n", err.message);
        return;
    }
    double t0 = mono_s();
    while (!rec_recording_ended_itself(rec, why, sizeof(why)) && mono_s() < t0 + 20)
        sleep_until(mono_s() + 0.1);
    CHECK(rec_recording_ended_itself(rec, why, sizeof(why)));
    CHECK_STR(why, "duration limit (1500 ms)");
    CHECK(rec_recording_stop(rec, &err) == 0);
    CHECK(rec_recording_finished(rec));
    CHECK(rec_recording_ended_itself(rec, NULL, 0)); /* a stop afterwards changes nothing */
    json_t *probe = ffprobe(path, false);
    double dur = probe ? json_double_str(json_object_get(probe, "format"), "duration") : 0;
    fprintf(stderr, "duration-limited recording: %.2f s, %lld frames\n", dur,
            (long long)rec_recording_frames(rec));
    CHECK(dur > 1.3 && dur < 1.8);
    CHECK(rec_recording_frames(rec) >= 20 && rec_recording_frames(rec) <= 25);
    json_decref(probe);
    rec_recording_free(TAKE_PTR(rec));

    snprintf(path, sizeof(path), "%s/limit-size.mp4", workdir);
    struct rec_limits by_size = {.max_bytes = 1, .max_ms = 60000};
    CHECK(rec_recording_start(c, path, 15, &by_size, &rec, &err) == 0);
    if (!rec)
        return;
    t0 = mono_s();
    while (!rec_recording_ended_itself(rec, why, sizeof(why)) && mono_s() < t0 + 20)
        sleep_until(mono_s() + 0.1);
    CHECK_STR(why, "size limit (1 bytes)");
    CHECK(mono_s() < t0 + 10); /* long before the duration limit */
    CHECK(rec_recording_stop(rec, &err) == 0);
    probe = ffprobe(path, false);
    CHECK(probe && video_stream(probe) != NULL);
    json_decref(probe);
    rec_recording_free(TAKE_PTR(rec));

    /* A stopped recording did not end by itself. */
    snprintf(path, sizeof(path), "%s/limit-none.mp4", workdir);
    CHECK(rec_recording_start(c, path, 15, &by_time, &rec, &err) == 0);
    if (!rec)
        return;
    CHECK(rec_recording_stop(rec, &err) == 0);
    CHECK(!rec_recording_ended_itself(rec, why, sizeof(why)));
    rec_recording_free(TAKE_PTR(rec));
}

static void test_killed_recording(int port)
{
    char path[512], portstr[16];
    int pipefd[2];

    snprintf(path, sizeof(path), "%s/killed.mp4", workdir);
    snprintf(portstr, sizeof(portstr), "%d", port);
    CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        execl("/proc/self/exe", "test_recorder", "--record-child", portstr, path, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    CHECK(pid > 0);

    /* Readiness from the child's own word, with a bound. */
    char line[64] = {0};
    struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
    if (poll(&pfd, 1, 30000) == 1)
        CHECK(read(pipefd[0], line, sizeof(line) - 1) > 0);
    close(pipefd[0]);
    CHECK(strncmp(line, "recording", 9) == 0);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    struct mp4_layout l;
    CHECK(mp4_scan(path, &l));
    fprintf(stderr, "killed at \"%.*s\": moov@%ld first mdat@%ld moof=%d truncated=%d\n",
            (int)strcspn(line, "\n"), line, l.moov, l.mdat, l.moofs, l.truncated);
    CHECK(l.moofs >= 1); /* still the fragmented file, as intended */

    json_t *probe = ffprobe(path, true);
    CHECK(probe != NULL);
    json_t *vs = video_stream(probe);
    CHECK(vs && strcmp(str_or_empty(json_object_get(vs, "codec_name")), "h264") == 0);
    long nb = json_long_str(vs, "nb_read_frames");
    double dur = json_double_str(json_object_get(probe, "format"), "duration");
    fprintf(stderr, "ffprobe of killed recording: codec=%s nb_read_frames=%ld duration=%.3f\n",
            vs ? json_string_value(json_object_get(vs, "codec_name")) : "?", nb, dur);
    CHECK(nb >= 30); /* at least the first 2-second fragment */
    json_decref(probe);

    /* And every frame in it decodes. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "ffmpeg -v error -xerror -i '%s' -f null - 2>&1", path);
    char *out = run_capture(cmd, NULL);
    CHECK(out && out[0] == '\0');
    if (out && out[0])
        fprintf(stderr, "decode errors: %s\n", out);
    free(out);
}

static void test_resize(struct vnc_client *c)
{
    char path[512];
    struct ph_error err = {0};
    struct rec_recording *rec = NULL;

    snprintf(path, sizeof(path), "%s/resize.mp4", workdir);
    double t0 = mono_s();
    CHECK(rec_recording_start(c, path, 15, NULL, &rec, &err) == 0);
    if (!rec)
        return;
    sleep_until(t0 + 1.0);
    CHECK(sh("xrandr --fb 800x600 >/dev/null 2>&1") == 0);
    CHECK(sh("xsetroot -solid green") == 0);
    /* The session follows the new size. */
    struct vnc_frame f = {0};
    double end = mono_s() + 5;
    while (mono_s() < end) {
        if (vnc_client_frame_update(c, &f) < 0)
            break;
        if (f.width == 800 && f.height == 600)
            break;
        vnc_client_wait_frame(c, f.seq, 500);
    }
    CHECK(f.width == 800 && f.height == 600);
    vnc_frame_done(&f);
    CHECK(wait_color(c, 700, 500, 'G', 5000));
    sleep_until(t0 + 2.5);
    CHECK(rec_recording_stop(rec, &err) == 0);
    rec_recording_free(rec);

    /* The video keeps its first size; the bigger screen is scaled into it. */
    json_t *probe = ffprobe(path, true);
    json_t *vs = video_stream(probe);
    CHECK(vs != NULL);
    CHECK(json_integer_value(json_object_get(vs, "width")) == W);
    CHECK(json_integer_value(json_object_get(vs, "height")) == H);
    long nb = json_long_str(vs, "nb_read_frames");
    CHECK(nb >= 34 && nb <= 42);
    json_decref(probe);

    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -v error -sseof -0.2 -i '%s' -frames:v 1 -f rawvideo -pix_fmt rgb24 -", path);
    size_t rawlen = 0;
    char *raw = run_capture(cmd, &rawlen);
    CHECK(raw && rawlen == (size_t)W * H * 3 &&
          classify((uint8_t *)raw + ((size_t)(H - 10) * W + (W - 10)) * 3) == 'G');
    free(raw);
    sh("xrandr --fb %dx%d >/dev/null 2>&1", W, H);
}

/* This process's open descriptors, as "fd target" lines, read in-process
 * (a popen() child would race with the pipe it is read through). */
static char *list_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    size_t cap = 8192, len = 0;
    char *out = calloc(1, cap);
    struct dirent *de;

    if (!d || !out) {
        if (d)
            closedir(d);
        free(out);
        return NULL;
    }
    while ((de = readdir(d))) {
        char path[64], target[256];
        if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
            continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        if (len + strlen(de->d_name) + strlen(target) + 3 < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s %s\n", de->d_name, target);
    }
    closedir(d);
    return out;
}

/* Sessions come and go without leaking descriptors (the socket, the
 * eventfd) or threads. */
static void test_session_cycle(int port)
{
    struct ph_error err = {0};
    char *before = list_fds();
    for (int i = 0; i < 3; i++) {
        struct vnc_client *c = NULL;
        CHECK(vnc_client_new("127.0.0.1", port, 10000, &c, &err) == 0);
        vnc_client_free(c);
    }
    char *after = list_fds();
    CHECK(before && after && strcmp(before, after) == 0);
    if (before && after && strcmp(before, after) != 0)
        fprintf(stderr, "descriptors before:\n%s\nafter:\n%s\n", before, after);
    free(before);
    free(after);
    vnc_client_free(NULL);
    rec_recording_free(NULL);
    CHECK(rec_encoder_close(NULL, NULL) == 0);
}

/* A loopback listener of its own: its fd, and its port in *port. */
static int listen_local(int *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
        if (lfd >= 0)
            close(lfd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return lfd;
}

/* A TCP forwarder in front of the VNC server, for one client, that can be
 * cut: the recording's screen going away while the server goes on. */
struct cut_proxy {
    int lfd, server_port, stop[2];
    pthread_t thread;
};

static void *cut_proxy_main(void *data)
{
    struct cut_proxy *p = data;
    int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
    int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)p->server_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char buf[65536];

    if (c >= 0 && u >= 0 && connect(u, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        for (;;) {
            struct pollfd fds[3] = {{.fd = c, .events = POLLIN},
                                    {.fd = u, .events = POLLIN},
                                    {.fd = p->stop[0], .events = POLLIN}};
            if (poll(fds, 3, -1) < 0 || fds[2].revents)
                break;
            int from = fds[0].revents ? c : u, to = from == c ? u : c;
            ssize_t n = read(from, buf, sizeof(buf));
            if (n <= 0 || write(to, buf, (size_t)n) != n)
                break;
        }
    if (c >= 0)
        close(c);
    if (u >= 0)
        close(u);
    return NULL;
}

/* The screen connection lost under a running recording: the recording
 * ends by itself at once, failed, saying so, and its file plays up to the
 * cut (it used to repeat the last picture until a limit). */
static void test_connection_lost(int port)
{
    struct cut_proxy p = {.server_port = port};
    struct vnc_client *c = NULL;
    struct rec_recording *rec = NULL;
    struct ph_error err = {0};
    char path[512], why[256] = "";
    int lport = 0;

    p.lfd = listen_local(&lport);
    CHECK(p.lfd >= 0 && pipe2(p.stop, O_CLOEXEC) == 0);
    CHECK(pthread_create(&p.thread, NULL, cut_proxy_main, &p) == 0);
    CHECK(vnc_client_new("127.0.0.1", lport, 10000, &c, &err) == 0);
    snprintf(path, sizeof(path), "%s/lost.mp4", workdir);
    if (c)
        CHECK(rec_recording_start(c, path, 15, NULL, &rec, &err) == 0);
    if (rec) {
        sleep_until(mono_s() + 2.5);
        CHECK(!rec_recording_ended_itself(rec, NULL, 0));
        CHECK(write(p.stop[1], "x", 1) == 1);
        double t0 = mono_s();
        while (!rec_recording_ended_itself(rec, why, sizeof(why)) && mono_s() < t0 + 20)
            sleep_until(mono_s() + 0.05);
        fprintf(stderr, "screen cut: the recording ended itself after %.2f s: %s\n", mono_s() - t0,
                why);
        CHECK(strstr(why, "the screen connection was lost") != NULL);
        CHECK(rec_recording_stop(rec, &err) < 0);
        CHECK(strstr(err.message, "the screen connection was lost") != NULL);
        json_t *probe = ffprobe(path, false);
        double dur = probe ? json_double_str(json_object_get(probe, "format"), "duration") : 0;
        fprintf(stderr, "recording with its screen cut: %.2f s\n", dur);
        CHECK(probe && video_stream(probe) != NULL && dur > 1.5);
        json_decref(probe);
        rec_recording_free(rec);
    } else {
        fprintf(stderr, "recording through the proxy: %s\n", err.message);
        CHECK(write(p.stop[1], "x", 1) == 1);
    }
    vnc_client_free(c);
    pthread_join(p.thread, NULL);
    close(p.lfd);
    close(p.stop[0]);
    close(p.stop[1]);
}

static void test_connect_errors(int port)
{
    struct ph_error err = {0};
    struct vnc_client *c = NULL;
    int closed_port = alloc_local_port();
    CHECK(closed_port > 0 && closed_port != port);
    CHECK(vnc_client_new("127.0.0.1", closed_port, 2000, &c, &err) < 0 && !c);
    CHECK(err.kind == PH_ERR_TRANSPORT);
    fprintf(stderr, "connect error as reported: %s\n", err.message);
    CHECK(vnc_client_new("127.0.0.1", 0, 2000, &c, &err) == -EINVAL);

    /* A server that accepts and never speaks: the timeout bounds the wait. */
    int silent_port = 0, lfd = listen_local(&silent_port);
    CHECK(lfd >= 0);
    double t = mono_s();
    CHECK(vnc_client_new("127.0.0.1", silent_port, 1000, &c, &err) < 0 && !c);
    double took = mono_s() - t;
    fprintf(stderr, "silent server: failed after %.1f s: %s\n", took, err.message);
    CHECK(took < 4 && err.kind == PH_ERR_TIMEOUT);
    close(lfd);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 4 && strcmp(argv[1], "--record-child") == 0)
        return record_child(atoi(argv[2]), argv[3]);

    if (argc >= 3)
        workdir = argv[2];
    test_keys();
    test_png_synthetic();
    test_encoder_sizes();
    if (argc < 3) {
        fprintf(stderr, "no VNC server given: server tests skipped\n");
        CHECK_DONE();
    }

    int port = atoi(argv[1]);
    struct ph_error err = {0};
    struct vnc_client *c = NULL;
    double t = mono_s();
    int r = vnc_client_new("127.0.0.1", port, 10000, &c, &err);
    CHECK(r == 0);
    if (r < 0) {
        fprintf(stderr, "connect: %s\n", err.message);
        CHECK_DONE();
    }
    fprintf(stderr, "connected, first full frame after %.0f ms\n", (mono_s() - t) * 1000);
    {
        /* The same server on its Unix socket, as the gateway reaches
         * QEMU's: a path for the host, no port. */
        char sock[600];
        struct vnc_client *u = NULL;
        snprintf(sock, sizeof(sock), "%s/vnc.sock", workdir);
        CHECK(vnc_client_new(sock, 0, 10000, &u, &err) == 0);
        CHECK(vnc_client_status(u, NULL) == 0);
        vnc_client_free(u);
        fprintf(stderr, "connected on the Unix socket %s\n", sock);
    }
    test_connect_errors(port);
    test_session_cycle(port);
    test_snapshot_and_input(c);
    test_paced_requests(c);
    test_recording(c);
    test_recording_limits(c);
    test_killed_recording(port);
    test_connection_lost(port);
    test_resize(c);
    vnc_client_free(c);
    CHECK_DONE();
}
