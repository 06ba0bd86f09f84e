/* Key names to X keysyms, for computer-use actions sent over VNC.
 *
 *   uint32_t ks[KEYS_MAX_COMBO];
 *   int n = keys_parse("ctrl+shift+t", ks, KEYS_MAX_COMBO, &err);
 *   press ks[0..n-1] in order, release them in reverse order.
 *
 *   keys_for_char(cp) gives the keysym that types one Unicode code point.
 *
 * Names are case-insensitive ("Enter", "enter", "ENTER"); a single character
 * keeps its case, because X has distinct keysyms for 'a' and 'A'. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* A combo longer than this is refused: no hand presses more keys at once. */
#define KEYS_MAX_COMBO 8

/* Parses "mod+mod+key" (also a lone "key" or a lone modifier) into keysyms,
 * modifiers first in the order written. Modifiers: ctrl/control, shift,
 * alt/option, meta/super/cmd/command/win/windows. A literal plus is "plus"
 * or a trailing "+" ("ctrl++"). Returns the count (>= 1), -EINVAL for an
 * empty or unknown name, -E2BIG past max. */
int keys_parse(const char *combo, uint32_t *keysyms, size_t max, struct ph_error *err);

/* The keysym that types code point cp: ASCII and Latin-1 map to themselves,
 * '\n' and '\r' to Return, '\t' to Tab, other code points to the Unicode
 * keysym 0x01000000 | cp. Returns 0 for control characters, surrogates and
 * values past U+10FFFF (nothing to type). */
uint32_t keys_for_char(uint32_t cp);

/* Where a keysym is on the US keyboard of a browser VM (QEMU turns VNC key
 * events into that keyboard's scancodes, and the guest's X layout is "us"):
 * a key of its own, a key pressed with Shift (QEMU leaves Shift to the
 * client: 'A' arrives as the A key alone, which types 'a'), or no key at
 * all (non-ASCII text, F13 and up). */
enum keys_us {
    KEYS_US_NONE = 0,
    KEYS_US_PLAIN,
    KEYS_US_SHIFTED,
};
enum keys_us keys_us_key(uint32_t keysym);
