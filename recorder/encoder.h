/* H.264 in MP4 from RGBA frames (libavcodec/libx264, libswscale, libavformat).
 *
 *   struct rec_encoder *e;
 *   r = rec_encoder_open("/state/rec/abc.mp4", 1280, 720, 15, &e, &err);
 *   r = rec_encoder_write(e, rgba, w, h, pts_index, &err);  // pts in 1/fps units
 *   r = rec_encoder_repeat(e, pts_index, &err);             // the same picture again
 *   r = rec_encoder_close(e, &err);                         // always frees e
 *
 * While open, the file at path is a fragmented MP4 (a fragment per
 * keyframe, one every 2 s, each flushed to the kernel as it completes), so
 * a crash or SIGKILL leaves a playable file missing at most the last 2 s.
 * rec_encoder_close() drains the encoder, then rewrites the file as a
 * regular MP4 with its index (moov) at the front, by stream copy into
 * PATH.faststart.tmp and rename() over PATH.
 *
 * Frames of another size than the encoder's are scaled to it. H.264 4:2:0
 * needs even sides: an odd width or height is cropped by one pixel.
 * One thread at a time per encoder. */
#pragma once

#include <stdint.h>

#include "error.h"

/* rec_encoder_close() result when the recording is complete and playable
 * but stayed fragmented because the faststart rewrite failed (err says why). */
#define REC_ENCODER_FRAGMENTED 1

struct rec_encoder;

/* width/height: 2..8192; fps: 1..60. */
int rec_encoder_open(const char *path, int width, int height, int fps, struct rec_encoder **out,
                     struct ph_error *err);
/* rgba: w*h*4 bytes, rows packed, alpha ignored. pts_index must grow from
 * call to call (gaps are fine: the previous picture shows longer). */
int rec_encoder_write(struct rec_encoder *e, const uint8_t *rgba, int w, int h, int64_t pts_index,
                      struct ph_error *err);
/* Encodes the last written picture again at pts_index, without converting
 * it again. -EINVAL before any write. */
int rec_encoder_repeat(struct rec_encoder *e, int64_t pts_index, struct ph_error *err);
/* 0: PATH is a regular MP4 with moov first. REC_ENCODER_FRAGMENTED: PATH is
 * the fragmented file. <0: the recording could not be finalized (PATH still
 * holds whatever fragments were written). Frees e; NULL is a no-op. */
int rec_encoder_close(struct rec_encoder *e, struct ph_error *err);

/* Bytes written to PATH so far; frames encoded so far. */
int64_t rec_encoder_bytes(const struct rec_encoder *e);
int64_t rec_encoder_frames(const struct rec_encoder *e);
/* The encoded size (the size asked for, odd sides cropped to even). */
void rec_encoder_size(const struct rec_encoder *e, int *width, int *height);
