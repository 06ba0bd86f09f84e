#include "recording.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

#define NSEC_PER_SEC 1000000000LL
#define REC_REFRESH_TIMEOUT_MS 10000

struct rec_recording {
    struct vnc_client *vnc;  /* weak: must outlive the recording */
    struct rec_encoder *enc; /* owned by the thread until it exits, then NULL */
    char *path;              /* owned */
    int fps;
    struct vnc_frame frame; /* owned, the last picture taken */
    int64_t t0_ns;          /* CLOCK_MONOTONIC at frame 0 */
    pthread_t thread;
    bool thread_running; /* joinable */

    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled by stop */
    bool stop;
    bool ended_itself; /* it stopped recording before any stop: limit or error */
    bool finished;     /* the thread is done, the file finalized */
    char limit[96];    /* the limit that ended it, "" if none */
    struct rec_limits limits;
    int result;            /* rec_recording_stop()'s answer once the thread ended */
    struct ph_error error; /* the failure, when result < 0 or fragmented */
    int64_t bytes;
    int64_t frames;
    int64_t late;
    int64_t started_ms;
    int64_t ended_ms;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

/* Start time of frame k; computed from frame 0 every time, never by adding
 * periods, so rounding cannot accumulate. */
static int64_t frame_deadline_ns(const struct rec_recording *rec, int64_t k)
{
    /* Rounded up, so that at the deadline elapsed * fps is at least k. */
    return rec->t0_ns + (k * NSEC_PER_SEC + rec->fps - 1) / rec->fps;
}

/* Encodes the picture for frame idx: the screen if it changed since the
 * last sample, else the previous picture again. */
static int sample_and_encode(struct rec_recording *rec, int64_t idx, struct ph_error *err)
{
    int r = vnc_client_frame_update(rec->vnc, &rec->frame);
    if (r == 1)
        return rec_encoder_write(rec->enc, rec->frame.rgba, rec->frame.width, rec->frame.height,
                                 idx, err);
    if (r == 0)
        return rec_encoder_repeat(rec->enc, idx, err);
    if (r == -ENOTCONN) {
        /* The screen is gone (its VM died, or the server closed): nothing
         * more can be recorded, and a connection is never replaced under a
         * running recording. It ends here, failed, and says why. */
        struct ph_error why = {0};
        vnc_client_status(rec->vnc, &why);
        return ph_error_set(err, PH_ERR_UNAVAILABLE, r, "the screen connection was lost (%s)",
                            why.message[0] ? why.message : "closed");
    }
    return ph_error_set(err, PH_ERR_INTERNAL, r, "take frame: %s", strerror(-r));
}

static void *recording_main(void *arg)
{
    struct rec_recording *rec = arg;
    struct ph_error err = {0};
    int64_t next = 0; /* the next frame index to encode */
    int r = 0;

    for (;;) {
        int64_t deadline = frame_deadline_ns(rec, next);
        struct timespec ts = {.tv_sec = deadline / NSEC_PER_SEC,
                              .tv_nsec = deadline % NSEC_PER_SEC};
        bool stopping;

        /* An absolute CLOCK_MONOTONIC deadline, as clock_nanosleep(
         * TIMER_ABSTIME) would give, but on a condition variable so that
         * stop wakes the thread at once instead of after a frame period. */
        pthread_mutex_lock(&rec->lock);
        while (!rec->stop && pthread_cond_timedwait(&rec->cond, &rec->lock, &ts) != ETIMEDOUT)
            ;
        stopping = rec->stop;
        pthread_mutex_unlock(&rec->lock);

        /* The frame for this moment: pts = elapsed * fps. At stop, one last
         * sample unless the current slot is already encoded, so the video
         * runs up to the stop time. Frame 0 is always the first. */
        int64_t idx = (mono_ns() - rec->t0_ns) * rec->fps / NSEC_PER_SEC;
        if (stopping && idx < next)
            break;
        if (idx < next || next == 0)
            idx = next;

        /* Slots that went by while this thread ran late (a busy host, a slow
         * frame) get the previous picture again, which is what the screen
         * showed as far as the recording knows, so the file keeps a constant
         * frame rate. Past one second of them in one go the rest are
         * skipped (the previous frame just lasts longer): a host that cannot
         * keep up is not handed even more work. */
        int64_t late = idx - next;
        int64_t fill = late < rec->fps ? late : rec->fps;
        for (int64_t k = 0; k < fill && r == 0; k++)
            r = rec_encoder_repeat(rec->enc, next + k, &err);
        if (r == 0)
            r = sample_and_encode(rec, idx, &err);
        if (r < 0)
            break;

        pthread_mutex_lock(&rec->lock);
        rec->late += late;
        rec->frames = rec_encoder_frames(rec->enc);
        rec->bytes = rec_encoder_bytes(rec->enc);
        if (rec->limits.max_bytes > 0 && rec->bytes >= rec->limits.max_bytes &&
            rec->limits.max_bytes_name)
            snprintf(rec->limit, sizeof(rec->limit), "%s", rec->limits.max_bytes_name);
        else if (rec->limits.max_bytes > 0 && rec->bytes >= rec->limits.max_bytes)
            snprintf(rec->limit, sizeof(rec->limit), "size limit (%lld %s)",
                     (long long)(rec->limits.max_bytes >= 1 << 20 ? rec->limits.max_bytes >> 20
                                                                  : rec->limits.max_bytes),
                     rec->limits.max_bytes >= 1 << 20 ? "MiB" : "bytes");
        else if (rec->limits.max_ms > 0 && (idx + 1) * 1000 / rec->fps >= rec->limits.max_ms)
            snprintf(rec->limit, sizeof(rec->limit), "duration limit (%lld %s)",
                     (long long)(rec->limits.max_ms % 60000 ? rec->limits.max_ms
                                                            : rec->limits.max_ms / 60000),
                     rec->limits.max_ms % 60000 ? "ms" : "min");
        bool limited = rec->limit[0] != '\0';
        pthread_mutex_unlock(&rec->lock);
        next = idx + 1;
        if (stopping || limited)
            break;
    }

    /* The video ends here; finalizing the file is not recording. Whether
     * it ended by itself is known now, before the (long) finalize. */
    vnc_client_set_rate(rec->vnc, 0);
    pthread_mutex_lock(&rec->lock);
    rec->ended_ms = wall_ms();
    rec->ended_itself = !rec->stop;
    if (r < 0)
        rec->error = err;
    pthread_mutex_unlock(&rec->lock);

    struct ph_error close_err = {0};
    int rc = rec_encoder_close(rec->enc, &close_err);
    rec->enc = NULL;
    if (r == 0) {
        r = rc;
        err = close_err;
    }

    struct stat st;
    pthread_mutex_lock(&rec->lock);
    if (stat(rec->path, &st) == 0)
        rec->bytes = st.st_size;
    rec->result = r;
    rec->error = err;
    rec->finished = true;
    pthread_mutex_unlock(&rec->lock);
    return NULL;
}

static void recording_destroy(struct rec_recording *rec)
{
    rec_encoder_close(rec->enc, NULL);
    vnc_frame_done(&rec->frame);
    pthread_mutex_destroy(&rec->lock);
    pthread_cond_destroy(&rec->cond);
    free(rec->path);
    free(rec);
}

int rec_recording_start(struct vnc_client *vnc, const char *path, int fps,
                        const struct rec_limits *limits, struct rec_recording **out,
                        struct ph_error *err)
{
    struct rec_recording *rec;
    pthread_condattr_t ca;
    int r;

    *out = NULL;
    if (fps == 0)
        fps = REC_DEFAULT_FPS;
    if (!vnc || !path || fps < 1 || fps > 60)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "bad recording request (fps %d)", fps);

    rec = calloc(1, sizeof(*rec));
    if (!rec)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    rec->vnc = vnc;
    rec->fps = fps;
    if (limits)
        rec->limits = *limits;
    rec->path = strdup(path);
    pthread_mutex_init(&rec->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rec->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!rec->path) {
        recording_destroy(rec);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }

    /* The first picture, as the screen is now, fixes the video's size. */
    r = vnc_client_refresh(vnc, REC_REFRESH_TIMEOUT_MS);
    if (r == -ETIMEDOUT) {
        recording_destroy(rec);
        return ph_error_set(err, PH_ERR_TIMEOUT, r, "the screen did not answer within %d ms",
                            REC_REFRESH_TIMEOUT_MS);
    }
    if (r == 0)
        r = vnc_client_frame_update(vnc, &rec->frame);
    if (r < 0) {
        recording_destroy(rec);
        if (r == -ENOTCONN)
            return ph_error_set(err, PH_ERR_UNAVAILABLE, r, "the screen is not connected");
        return ph_error_set(err, PH_ERR_INTERNAL, r, "take frame: %s", strerror(-r));
    }
    r = rec_encoder_open(path, rec->frame.width, rec->frame.height, fps, &rec->enc, err);
    if (r < 0) {
        recording_destroy(rec);
        return r;
    }
    /* The first sample must encode the picture just taken, not compare
     * equal to it and find nothing to repeat. */
    rec->frame.seq = 0;

    rec->started_ms = wall_ms();
    rec->t0_ns = mono_ns();
    /* The server sends changes as often as frames are taken, no more. */
    vnc_client_set_rate(vnc, fps);
    r = pthread_create(&rec->thread, NULL, recording_main, rec);
    if (r != 0) {
        vnc_client_set_rate(vnc, 0);
        recording_destroy(rec);
        return ph_error_set(err, PH_ERR_INTERNAL, -r, "pthread_create: %s", strerror(r));
    }
    rec->thread_running = true;
    *out = rec;
    return 0;
}

int rec_recording_stop(struct rec_recording *rec, struct ph_error *err)
{
    pthread_mutex_lock(&rec->lock);
    rec->stop = true;
    pthread_cond_broadcast(&rec->cond);
    pthread_mutex_unlock(&rec->lock);

    if (rec->thread_running) {
        pthread_join(rec->thread, NULL);
        rec->thread_running = false;
    }
    if (rec->result != 0 && err)
        *err = rec->error;
    return rec->result;
}

bool rec_recording_ended_itself(struct rec_recording *rec, char *why, size_t why_size)
{
    pthread_mutex_lock(&rec->lock);
    bool itself = rec->ended_itself;
    if (why && why_size)
        snprintf(why, why_size, "%s", rec->limit[0] ? rec->limit : rec->error.message);
    pthread_mutex_unlock(&rec->lock);
    return itself;
}

bool rec_recording_finished(struct rec_recording *rec)
{
    pthread_mutex_lock(&rec->lock);
    bool done = rec->finished;
    pthread_mutex_unlock(&rec->lock);
    return done;
}

void rec_recording_free(struct rec_recording *rec)
{
    if (!rec)
        return;
    rec_recording_stop(rec, NULL);
    recording_destroy(rec);
}

#define LOCKED_GET(rec, field)                                                                     \
    ({                                                                                             \
        pthread_mutex_lock(&(rec)->lock);                                                          \
        int64_t _v = (rec)->field;                                                                 \
        pthread_mutex_unlock(&(rec)->lock);                                                        \
        _v;                                                                                        \
    })

int64_t rec_recording_bytes(struct rec_recording *rec)
{
    return LOCKED_GET(rec, bytes);
}

int64_t rec_recording_started_ms(struct rec_recording *rec)
{
    return LOCKED_GET(rec, started_ms);
}

int64_t rec_recording_ended_ms(struct rec_recording *rec)
{
    return LOCKED_GET(rec, ended_ms);
}

int64_t rec_recording_frames(struct rec_recording *rec)
{
    return LOCKED_GET(rec, frames);
}

int64_t rec_recording_late(struct rec_recording *rec)
{
    return LOCKED_GET(rec, late);
}
