/* Internal to the recorder: keeps libav* from printing.
 *
 * FFmpeg's libraries log to stderr by default, and library code here must
 * not print. rec_av_quiet() lowers av_log to AV_LOG_QUIET once, unless the
 * program already chose a level of its own (anything but the default
 * AV_LOG_INFO), which is then left alone. Failures still reach callers
 * through return values and struct ph_error. */
#pragma once

void rec_av_quiet(void);
