#include "vnc_proxy.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "browser.h"
#include "http.h"
#include "gateway.h"
#include "util.h"
#include "ws.h"

#define VNC_SEGMENT_MAX 64

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

/* ---- the client-stream filter ---------------------------------------- */

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

/* ---- the proxy --------------------------------------------------------- */

static int vnc_from_client(struct ws_link *l, struct ws_msg **pm)
{
    struct rfb_filter *f = ws_link_data(l);
    struct ws_msg *m = *pm;
    ssize_t n = rfb_filter_feed(f, m->data, m->len, m->data);

    if (n < 0) {
        lwsl_notice("vnc: closing a client that broke the RFB protocol\n");
        return -1;
    }
    if (n == 0) {
        ws_msg_free(m);
        return 1;
    }
    m->len = (size_t)n;
    m->binary = true;
    return 0;
}

static void vnc_link_destroy(struct ws_link *l)
{
    free(ws_link_data(l));
}

static const struct ws_link_ops vnc_link_ops = {
    .name = "vnc",
    .from_client = vnc_from_client,
    .destroy = vnc_link_destroy,
};

/* "/vnc/{id}/{token}" with an optional trailing '/'. */
static int vnc_path_parse(const char *path, char *id, char *token)
{
    const char *p = path + 5, *slash = strchr(p, '/'), *end;
    size_t idl, tl;

    if (strncmp(path, "/vnc/", 5) != 0 || !slash)
        return -EINVAL;
    idl = (size_t)(slash - p);
    end = strchrnul(slash + 1, '/');
    tl = (size_t)(end - slash - 1);
    if (*end == '/' && end[1] != '\0')
        return -EINVAL;
    if (idl == 0 || idl > VNC_SEGMENT_MAX || tl == 0 || tl > VNC_SEGMENT_MAX)
        return -EINVAL;
    memcpy(id, p, idl);
    id[idl] = '\0';
    memcpy(token, slash + 1, tl);
    token[tl] = '\0';
    return 0;
}

static struct instance *vnc_resolve(struct gateway *gw, const char *path, bool *control,
                                    struct ph_error *err)
{
    char id[VNC_SEGMENT_MAX + 1], token[VNC_SEGMENT_MAX + 1];
    struct instance *sb;

    *control = false;
    if (vnc_path_parse(path, id, token) < 0 ||
        !(sb = browser_resolve(gw->browsers, id, token, BROWSER_CAP_VIEW, control))) {
        ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT, "unknown browser session or token");
        return NULL;
    }
    if (!sb->vm || !sb->vm->vnc_socket) {
        ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT, "this session has no live view");
        return NULL;
    }
    if (ws_links_count(gw->ws, sb, &vnc_link_ops) >= VNC_MAX_CONNECTIONS) {
        ph_error_set(err, PH_ERR_LIMIT, -EMFILE, "at most %d live-view connections per session",
                     VNC_MAX_CONNECTIONS);
        return NULL;
    }
    return sb;
}

struct vnc_proxy {
    struct instance_observer observer;
    struct gateway *gw; /* weak */
};

static int vnc_ws_check(void *data, struct lws *wsi, const char *path, struct ph_error *err)
{
    struct gateway *gw = ((struct vnc_proxy *)data)->gw;
    bool control;
    (void)wsi;
    return vnc_resolve(gw, path, &control, err) ? 0 : -ENOENT;
}

static int vnc_ws_start(void *data, struct lws *wsi, const char *path, struct ph_error *err)
{
    struct gateway *gw = ((struct vnc_proxy *)data)->gw;
    bool control;
    struct instance *sb = vnc_resolve(gw, path, &control, err);
    struct rfb_filter *f;
    struct ws_link *l;

    if (!sb)
        return -ENOENT;
    if (!(f = malloc(sizeof(*f))))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    rfb_filter_init(f, !control);
    if (!(l = ws_link_new(wsi, &vnc_link_ops, sb, f, VNC_MAX_MESSAGE))) {
        free(f);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    ws_link_connect_unix(l, sb->vm->vnc_socket);
    return 0;
}

/* Observer: a session ends: its live-view connections close (clients get
 * 1001 "session ended", which the live page takes as final). */
static void vnc_session_close(struct instance_observer *o, struct instance *in)
{
    struct vnc_proxy *vp = container_of(o, struct vnc_proxy, observer);
    ws_links_close(vp->gw->ws, in, &vnc_link_ops, LWS_CLOSE_STATUS_GOINGAWAY, "session ended");
}

int vnc_proxy_new(struct gateway *gw, struct vnc_proxy **out)
{
    struct vnc_proxy *vp = calloc(1, sizeof(*vp));
    if (!vp)
        return -ENOMEM;
    vp->gw = gw;
    ws_endpoint_register(gw->ws, &(struct ws_endpoint){
                                     .prefix = "/vnc/",
                                     .check = vnc_ws_check,
                                     .start = vnc_ws_start,
                                     .data = vp,
                                 });
    vp->observer = (struct instance_observer){.ending = vnc_session_close};
    instances_observe(gw->instances, &vp->observer);
    *out = vp;
    return 0;
}

void vnc_proxy_free(struct vnc_proxy *vp)
{
    free(vp);
}
