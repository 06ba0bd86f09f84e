#include "keys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <rfb/keysym.h>

struct key_name {
    const char *name;
    uint32_t keysym;
};

/* Spellings agents use: X names (xdotool), DOM/Playwright names, and the
 * short forms people type. Compared case-insensitively. */
static const struct key_name key_names[] = {
    {"ctrl", XK_Control_L},
    {"control", XK_Control_L},
    {"control_l", XK_Control_L},
    {"control_r", XK_Control_R},
    {"shift", XK_Shift_L},
    {"shift_l", XK_Shift_L},
    {"shift_r", XK_Shift_R},
    {"alt", XK_Alt_L},
    {"alt_l", XK_Alt_L},
    {"alt_r", XK_Alt_R},
    {"option", XK_Alt_L},
    {"altgr", XK_ISO_Level3_Shift},
    /* "Meta" in Playwright and "cmd"/"win" all mean the logo key, which X
     * calls Super; Meta_L exists in X but applications ignore it. */
    {"meta", XK_Super_L},
    {"super", XK_Super_L},
    {"super_l", XK_Super_L},
    {"super_r", XK_Super_R},
    {"cmd", XK_Super_L},
    {"command", XK_Super_L},
    {"win", XK_Super_L},
    {"windows", XK_Super_L},

    {"return", XK_Return},
    {"enter", XK_Return},
    {"kp_enter", XK_KP_Enter},
    {"tab", XK_Tab},
    {"escape", XK_Escape},
    {"esc", XK_Escape},
    {"backspace", XK_BackSpace},
    {"delete", XK_Delete},
    {"del", XK_Delete},
    {"insert", XK_Insert},
    {"ins", XK_Insert},
    {"home", XK_Home},
    {"end", XK_End},
    {"page_up", XK_Page_Up},
    {"pageup", XK_Page_Up},
    {"prior", XK_Page_Up},
    {"page_down", XK_Page_Down},
    {"pagedown", XK_Page_Down},
    {"next", XK_Page_Down},
    {"left", XK_Left},
    {"arrowleft", XK_Left},
    {"up", XK_Up},
    {"arrowup", XK_Up},
    {"right", XK_Right},
    {"arrowright", XK_Right},
    {"down", XK_Down},
    {"arrowdown", XK_Down},
    {"space", XK_space},
    {"spacebar", XK_space},
    {"plus", XK_plus},
    {"minus", XK_minus},
    {"caps_lock", XK_Caps_Lock},
    {"capslock", XK_Caps_Lock},
    {"num_lock", XK_Num_Lock},
    {"numlock", XK_Num_Lock},
    {"scroll_lock", XK_Scroll_Lock},
    {"print", XK_Print},
    {"printscreen", XK_Print},
    {"pause", XK_Pause},
    {"menu", XK_Menu},
    {"contextmenu", XK_Menu},

    /* X's names of punctuation keys, as xdotool takes them. */
    {"equal", XK_equal},
    {"comma", XK_comma},
    {"period", XK_period},
    {"slash", XK_slash},
    {"backslash", XK_backslash},
    {"semicolon", XK_semicolon},
    {"apostrophe", XK_apostrophe},
    {"grave", XK_grave},
    {"bracketleft", XK_bracketleft},
    {"bracketright", XK_bracketright},

    /* The numeric keypad ("KP_0" is xdotool's example). */
    {"kp_0", XK_KP_0},
    {"kp_1", XK_KP_1},
    {"kp_2", XK_KP_2},
    {"kp_3", XK_KP_3},
    {"kp_4", XK_KP_4},
    {"kp_5", XK_KP_5},
    {"kp_6", XK_KP_6},
    {"kp_7", XK_KP_7},
    {"kp_8", XK_KP_8},
    {"kp_9", XK_KP_9},
    {"kp_add", XK_KP_Add},
    {"kp_subtract", XK_KP_Subtract},
    {"kp_multiply", XK_KP_Multiply},
    {"kp_divide", XK_KP_Divide},
    {"kp_decimal", XK_KP_Decimal},
};

static bool is_modifier(uint32_t ks)
{
    return (ks >= XK_Shift_L && ks <= XK_Hyper_R) || ks == XK_ISO_Level3_Shift;
}

/* Decodes one UTF-8 code point of exactly len bytes; 0 when s is not that. */
static uint32_t utf8_single(const unsigned char *s, size_t len)
{
    uint32_t cp;
    size_t need;

    if (len == 0)
        return 0;
    if (s[0] < 0x80) {
        cp = s[0];
        need = 1;
    } else if ((s[0] & 0xe0) == 0xc0) {
        cp = s[0] & 0x1f;
        need = 2;
    } else if ((s[0] & 0xf0) == 0xe0) {
        cp = s[0] & 0x0f;
        need = 3;
    } else if ((s[0] & 0xf8) == 0xf0) {
        cp = s[0] & 0x07;
        need = 4;
    } else {
        return 0;
    }
    if (len != need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms would let one character hide behind another spelling. */
    if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000))
        return 0;
    return cp;
}

static uint32_t key_lookup(const char *name, size_t len)
{
    char buf[32];

    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, name, len);
    buf[len] = '\0';

    for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++)
        if (strcasecmp(buf, key_names[i].name) == 0)
            return key_names[i].keysym;

    /* F1..F24; "F0", "F01" and "F25" are unknown, not guessed at. */
    if ((buf[0] == 'f' || buf[0] == 'F') && len >= 2 && len <= 3) {
        int n = 0;
        for (size_t i = 1; i < len; i++) {
            if (buf[i] < '0' || buf[i] > '9')
                return 0;
            n = n * 10 + (buf[i] - '0');
        }
        if (n >= 1 && n <= 24 && buf[1] != '0')
            return XK_F1 + (uint32_t)(n - 1);
        return 0;
    }

    /* A single character: "t", "T", "/", "é". */
    uint32_t cp = utf8_single((const unsigned char *)buf, len);
    if (cp == 0)
        return 0;
    return keys_for_char(cp);
}

int keys_parse(const char *combo, uint32_t *keysyms, size_t max, struct ph_error *err)
{
    size_t n = 0;
    const char *p = combo;

    if (!combo || !*combo)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "empty key combination");

    for (;;) {
        const char *plus = strchr(p, '+');
        size_t len = plus ? (size_t)(plus - p) : strlen(p);
        const char *name = p;

        /* An empty name right before the end is the plus key itself:
         * "+" alone, or "ctrl++". */
        if (len == 0 && plus && plus[1] == '\0') {
            name = plus;
            len = 1;
            plus = NULL;
        }
        if (len == 0)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "empty key name in \"%.64s\"", combo);

        uint32_t ks = key_lookup(name, len);
        if (ks == 0)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "unknown key name \"%.*s\"",
                                (int)(len > 64 ? 64 : len), name);
        if (n >= max)
            return ph_error_set(err, PH_ERR_INVALID, -E2BIG,
                                "too many keys in \"%.64s\" (at most %zu)", combo, max);
        /* Modifiers go first so the combo reads as chord: a key named
         * before a modifier ("t+ctrl") is refused rather than guessed at. */
        if (n > 0 && is_modifier(ks) && !is_modifier(keysyms[n - 1]))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "modifier \"%.*s\" after a key in \"%.64s\"",
                                (int)(len > 64 ? 64 : len), name, combo);
        keysyms[n++] = ks;

        if (!plus)
            break;
        p = plus + 1;
    }
    return (int)n;
}

enum keys_us keys_us_key(uint32_t keysym)
{
    if (keysym < 0x80) {
        if (keysym >= 'A' && keysym <= 'Z')
            return KEYS_US_SHIFTED;
        if (keysym >= 0x20 && strchr("~!@#$%^&*()_+{}|:\"<>?", (int)keysym))
            return KEYS_US_SHIFTED;
        return keysym >= 0x20 && keysym < 0x7f ? KEYS_US_PLAIN : KEYS_US_NONE;
    }
    if (keysym >= XK_F1 && keysym <= XK_F12)
        return KEYS_US_PLAIN;
    /* The named keys besides F1..F12 are all on a US keyboard. */
    for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++)
        if (key_names[i].keysym == keysym)
            return KEYS_US_PLAIN;
    return KEYS_US_NONE;
}

uint32_t keys_for_char(uint32_t cp)
{
    if (cp == '\n' || cp == '\r')
        return XK_Return;
    if (cp == '\t')
        return XK_Tab;
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
        return 0;
    /* X keysyms for Latin-1 are the code points themselves. */
    if (cp <= 0xff)
        return cp;
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return 0x01000000u | cp;
}
