/* PNG screenshots of a frame (libavcodec's PNG encoder, RGB 8-bit).
 *
 *   uint8_t *png; size_t len;
 *   r = rec_png_encode(rgba, w, h, 1280, 0, &png, &len, &err);  // at most 1280 wide
 *   ... send png, free(png);
 *
 * max_w / max_h bound the output size (0 = no bound); the picture is scaled
 * down to fit, keeping its aspect ratio, never up. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* rgba: w*h*4 bytes, rows packed, alpha ignored (screens are opaque).
 * *png is malloc'd. */
int rec_png_encode(const uint8_t *rgba, int w, int h, int max_w, int max_h, uint8_t **png,
                   size_t *len, struct ph_error *err);

/* The size rec_png_encode() produces for these inputs. */
void rec_png_fit(int w, int h, int max_w, int max_h, int *out_w, int *out_h);
