#include "rfb_filter.h"

#include <errno.h>
#include <string.h>

/* RFB client-to-server message types (RFC 6143 §7.5 and the registered
 * extensions noVNC speaks). */
enum {
    RFB_SET_PIXEL_FORMAT = 0,
    RFB_SET_ENCODINGS = 2,
    RFB_FB_UPDATE_REQUEST = 3,
    RFB_KEY_EVENT = 4,
    RFB_POINTER_EVENT = 5,
    RFB_CLIENT_CUT_TEXT = 6,
    RFB_ENABLE_CONTINUOUS_UPDATES = 150,
    RFB_CLIENT_FENCE = 248,
    RFB_XVP = 250,
    RFB_SET_DESKTOP_SIZE = 251,
    RFB_QEMU = 255,
};

void rfb_filter_init(struct rfb_filter *f, bool view_only)
{
    *f = (struct rfb_filter){.view_only = view_only, .stage = RFB_STAGE_VERSION, .need = 12};
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The type byte of a message arrived: how long its fixed part is, and
 * whether it goes through. */
static int message_start(struct rfb_filter *f, uint8_t type)
{
    bool input = false;

    switch (type) {
    case RFB_SET_PIXEL_FORMAT:
        f->need = 20;
        break;
    case RFB_SET_ENCODINGS:
        f->need = 4;
        break;
    case RFB_FB_UPDATE_REQUEST:
    case RFB_ENABLE_CONTINUOUS_UPDATES:
        f->need = 10;
        break;
    case RFB_KEY_EVENT:
        f->need = 8;
        input = true;
        break;
    case RFB_POINTER_EVENT:
        f->need = 6;
        input = true;
        break;
    case RFB_CLIENT_CUT_TEXT:
        f->need = 8;
        input = true;
        break;
    case RFB_CLIENT_FENCE:
        f->need = 9;
        break;
    case RFB_XVP: /* shutdown, reboot, reset of the guest */
        f->need = 4;
        input = true;
        break;
    case RFB_SET_DESKTOP_SIZE:
        f->need = 8;
        input = true;
        break;
    case RFB_QEMU: /* its sub-type decides the rest */
        f->need = 2;
        input = true;
        break;
    default:
        return -EPROTO;
    }
    f->drop = input && f->view_only;
    return 0;
}

/* The fixed part (hdr[0..need)) is complete: validate it, and either ask
 * for more fixed bytes (raise need) or set the variable-length body. */
static int header_complete(struct rfb_filter *f)
{
    switch (f->stage) {
    case RFB_STAGE_VERSION: {
        const uint8_t *h = f->hdr;
        if (memcmp(h, "RFB 003.", 8) != 0 || h[11] != '\n' || h[8] < '0' || h[8] > '9' ||
            h[9] < '0' || h[9] > '9' || h[10] < '0' || h[10] > '9')
            return -EPROTO;
        f->minor = (h[8] - '0') * 100 + (h[9] - '0') * 10 + (h[10] - '0');
        return 0;
    }
    case RFB_STAGE_SECURITY:
        /* QEMU's VNC server offers None here; VNC authentication is the
         * one other type whose client half is fixed and known. */
        return f->hdr[0] == 1 || f->hdr[0] == 2 ? 0 : -EPROTO;
    case RFB_STAGE_AUTH:
    case RFB_STAGE_INIT:
        return 0;
    case RFB_STAGE_MESSAGES:
        break;
    }

    switch (f->hdr[0]) {
    case RFB_SET_ENCODINGS:
        f->body = 4u * ((uint32_t)f->hdr[2] << 8 | f->hdr[3]);
        return 0;
    case RFB_CLIENT_CUT_TEXT: {
        uint32_t n = be32(f->hdr + 4);
        /* Extended clipboard (noVNC with a server that offers it) sends the
         * negated length. */
        uint32_t size = n & 0x80000000u ? (uint32_t)(-(int64_t)(int32_t)n) : n;
        if (size > RFB_MAX_CUT_TEXT)
            return -EPROTO;
        f->body = size;
        return 0;
    }
    case RFB_CLIENT_FENCE:
        if (f->hdr[8] > 64)
            return -EPROTO;
        f->body = f->hdr[8];
        return 0;
    case RFB_SET_DESKTOP_SIZE:
        f->body = 16u * f->hdr[6];
        return 0;
    case RFB_QEMU:
        if (f->need == 2) {
            if (f->hdr[1] != 0)
                return -EPROTO; /* only the extended key event */
            f->need = 12;
        }
        return 0;
    default:
        return 0;
    }
}

/* The unit is over: on to the next. */
static void unit_done(struct rfb_filter *f)
{
    switch (f->stage) {
    case RFB_STAGE_VERSION:
        /* 3.3 (and the unknown minors, treated as 3.3) lets the server pick
         * the security type: the client says nothing for None. */
        f->stage = f->minor >= 7 ? RFB_STAGE_SECURITY : RFB_STAGE_INIT;
        break;
    case RFB_STAGE_SECURITY:
        f->stage = f->hdr[0] == 2 ? RFB_STAGE_AUTH : RFB_STAGE_INIT;
        break;
    case RFB_STAGE_AUTH:
        f->stage = RFB_STAGE_INIT;
        break;
    case RFB_STAGE_INIT:
    case RFB_STAGE_MESSAGES:
        f->stage = RFB_STAGE_MESSAGES;
        break;
    }
    f->have = 0;
    f->body = 0;
    f->drop = false;
    f->need = f->stage == RFB_STAGE_SECURITY || f->stage == RFB_STAGE_INIT ? 1
              : f->stage == RFB_STAGE_AUTH                                 ? 16
                                                                           : 0;
}

ssize_t rfb_filter_feed(struct rfb_filter *f, const uint8_t *in, size_t len, uint8_t *out)
{
    size_t i = 0, o = 0;

    if (f->failed)
        return -EPROTO;
    while (i < len) {
        if (f->have > 0 && f->have == f->need) {
            /* in the body */
            size_t n = len - i < f->body ? len - i : (size_t)f->body;
            if (!f->drop)
                memmove(out + o, in + i, n);
            o += f->drop ? 0 : n;
            i += n;
            f->body -= n;
            if (f->body == 0)
                unit_done(f);
            continue;
        }
        uint8_t c = in[i++];
        if (f->have == 0 && f->stage == RFB_STAGE_MESSAGES && message_start(f, c) < 0)
            goto fail;
        f->hdr[f->have++] = c;
        /* Exclusive access would disconnect every other viewer. */
        if (f->stage == RFB_STAGE_INIT)
            c = 1;
        if (!f->drop)
            out[o++] = c;
        if (f->have == f->need) {
            if (header_complete(f) < 0)
                goto fail;
            if (f->have == f->need && f->body == 0)
                unit_done(f);
        }
    }
    return (ssize_t)o;
fail:
    f->failed = true;
    return -EPROTO;
}
