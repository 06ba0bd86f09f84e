#include "vnc_proxy.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "browser.h"
#include "http.h"
#include "gateway.h"
#include "rfb_filter.h"
#include "util.h"
#include "ws.h"

#define VNC_SEGMENT_MAX 64

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
