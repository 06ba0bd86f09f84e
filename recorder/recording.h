/* A screen recording: a thread that samples a VNC session at a steady frame
 * rate and encodes each sample to MP4 (see encoder.h for the file format).
 *
 *   struct rec_recording *rec;
 *   r = rec_recording_start(vnc, "/state/rec/abc.mp4", 0, &rec, &err);  // 0 = 15 fps
 *   ...
 *   r = rec_recording_stop(rec, &err);   // finalizes the file; blocks, see below
 *   rec_recording_bytes(rec), rec_recording_started_ms(rec), ...
 *   rec_recording_free(rec);
 *
 * Frame k is taken at start + k/fps on CLOCK_MONOTONIC and gets timestamp
 * k, so the video's duration matches the wall time recorded. An idle screen
 * repeats the last picture (cheap for the encoder). When the thread runs
 * late (busy host, slow frame), the slots it missed repeat the previous
 * picture (up to one second of them; beyond that they are skipped and the
 * previous frame lasts longer), so the timeline never drifts and the frame
 * rate stays constant. The picture keeps the size the screen had at the start: a
 * later desktop size change is scaled to it. If the VNC session ends, the
 * last picture is held until stop.
 *
 * The vnc session is borrowed: stop the recording before freeing it.
 * rec_recording_stop() drains the encoder and rewrites the file with its
 * index first, which reads and writes the whole file once: call it from a
 * worker thread, not an event loop. Stop and free from one thread (the
 * owner); the accessors are safe from any thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "encoder.h"
#include "error.h"
#include "vnc.h"

#define REC_DEFAULT_FPS 15

struct rec_recording;

/* Where a recording ends by itself (0: no limit). The file is finalized
 * as at a stop; max_bytes counts what the encoder wrote so far, so the
 * file ends up to one frame's fragment past it. */
struct rec_limits {
    int64_t max_bytes;
    int64_t max_ms;
    /* What reaching max_bytes is called (static; NULL: "size limit (N MiB)"). */
    const char *max_bytes_name;
};

/* fps: 1..60, 0 for REC_DEFAULT_FPS; limits may be NULL. Fails when no
 * frame is available or the file cannot be created; on success the first
 * frame is taken now. */
int rec_recording_start(struct vnc_client *vnc, const char *path, int fps,
                        const struct rec_limits *limits, struct rec_recording **out,
                        struct ph_error *err);
/* It stopped recording without a stop: a limit was reached (why names it)
 * or encoding failed (why is the error; rec_recording_stop returns <0).
 * True from that moment, while the file may still be being finalized.
 * Safe from any thread; why may be NULL. */
bool rec_recording_ended_itself(struct rec_recording *rec, char *why, size_t why_size);
/* The thread is done and the file finalized: rec_recording_stop returns
 * at once. */
bool rec_recording_finished(struct rec_recording *rec);
/* Stops sampling, finalizes the file and joins the thread. 0 when the file
 * is a regular MP4 with its index first; REC_ENCODER_FRAGMENTED when it is
 * complete but stayed fragmented; <0 when encoding failed during the
 * recording or at the end (err says why; the fragments written so far
 * remain playable). Calling it again returns the same result. */
int rec_recording_stop(struct rec_recording *rec, struct ph_error *err);
/* Stops if needed, then frees. NULL is a no-op. */
void rec_recording_free(struct rec_recording *rec);

/* Size of the file so far (final size after stop). */
int64_t rec_recording_bytes(struct rec_recording *rec);
/* Wall-clock ms since the epoch of the first and the last sample; ended is
 * 0 while recording (it is set before the file is finalized). */
int64_t rec_recording_started_ms(struct rec_recording *rec);
int64_t rec_recording_ended_ms(struct rec_recording *rec);
/* Frames encoded; slots not sampled on time because the thread ran late. */
int64_t rec_recording_frames(struct rec_recording *rec);
int64_t rec_recording_late(struct rec_recording *rec);
