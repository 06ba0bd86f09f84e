#include "vnc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <rfb/rfbclient.h>

#include "util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the pixel format below assumes a little-endian host"
#endif

/* How long one server message may stall half-read before the session is
 * declared dead (libvncclient's readTimeout, seconds). */
#define VNC_READ_TIMEOUT_S 10
/* Update requests per second while a thread waits for a new frame. */
#define VNC_WAIT_FPS 30
/* How long a snapshot waits for the server to bring the copy up to date. */
#define VNC_REFRESH_TIMEOUT_MS 10000

struct vnc_client {
    rfbClient *rfb;          /* owned; libvncclient calls only under io_lock */
    pthread_mutex_t io_lock; /* libvncclient's socket writes are not thread-safe */
    int wake_fd;             /* owned eventfd that stops the session thread, -1 if unused */
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;

    /* Session thread only (inside libvncclient callbacks or under io_lock). */
    bool inflight;       /* a request sent and no update received since */
    bool flush_inflight; /* that request answers refresh number flush_gen */
    bool saw_origin;     /* this update painted pixel (0, 0), as a flush's answer does */
    bool need_full;      /* the screen was resized: ask for all of it */
    uint64_t flush_gen;
    int64_t last_request_ms;
    _Atomic uint64_t updates; /* FramebufferUpdate messages received */
    uint8_t *work;            /* owned, libvncclient decodes into it (rfb->frameBuffer) */
    int work_w, work_h;
    int dirty_x0, dirty_y0, dirty_x1, dirty_y1; /* bounding box of this update */
    uint64_t painted;                           /* pixels received since the last size change */
    bool work_complete; /* every pixel of work painted since the last size change */

    /* The published screen, under fb_lock. */
    pthread_mutex_t fb_lock;
    pthread_cond_t fb_cond; /* CLOCK_MONOTONIC; signalled on a new frame or the end */
    uint8_t *fb;            /* owned, RGBA, fb_w * fb_h * 4; NULL until the first full frame */
    int fb_w, fb_h;
    uint64_t seq;          /* bumped on every published change */
    int rate_fps;          /* periodic incremental requests per second, 0 = none */
    int waiters;           /* threads in vnc_client_wait_frame */
    uint64_t fresh_wanted; /* refreshes asked for so far */
    uint64_t fresh_done;   /* refreshes answered so far */
    bool closed;
    char close_reason[256];
};

static char client_data_tag; /* address used as the rfbClientSetClientData key */

/* libvncclient reports through two global printf-like hooks. Library code
 * here must not print, so both keep the last line per thread, for errors. */
static _Thread_local char vnc_last_log[256];

static void vnc_log_sink(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vnc_last_log, sizeof(vnc_last_log), fmt, ap);
    va_end(ap);
    size_t n = strlen(vnc_last_log);
    while (n > 0 && (vnc_last_log[n - 1] == '\n' || vnc_last_log[n - 1] == '\r'))
        vnc_last_log[--n] = '\0';
}

static void vnc_install_log_sink(void)
{
    rfbClientLog = vnc_log_sink;
    rfbClientErr = vnc_log_sink;
}

static struct vnc_client *client_of(rfbClient *rfb)
{
    return rfbClientGetClientData(rfb, &client_data_tag);
}

/* Called by libvncclient at connect and on every desktop size change,
 * possibly in the middle of an update message. */
static rfbBool vnc_on_resize(rfbClient *rfb)
{
    struct vnc_client *c = client_of(rfb);
    int w = rfb->width, h = rfb->height;

    if (w <= 0 || h <= 0 || w > VNC_MAX_SIDE || h > VNC_MAX_SIDE) {
        snprintf(vnc_last_log, sizeof(vnc_last_log), "server framebuffer %dx%d out of range", w, h);
        return FALSE;
    }
    uint8_t *buf = calloc((size_t)w * (size_t)h, 4);
    if (!buf) {
        snprintf(vnc_last_log, sizeof(vnc_last_log), "out of memory for a %dx%d framebuffer", w, h);
        return FALSE;
    }
    free(c->work);
    c->work = buf;
    c->work_w = w;
    c->work_h = h;
    rfb->frameBuffer = buf;
    /* Rectangles seen before the change belong to the old geometry. The
     * published frame keeps the old picture until the new one is whole. */
    c->dirty_x0 = c->dirty_y0 = c->dirty_x1 = c->dirty_y1 = 0;
    c->painted = 0;
    c->work_complete = false;
    /* libvncclient's own full request after a resize is held back with the
     * others (see vnc_gate_requests); the session thread sends it. During
     * the handshake rfbInitClient still asks itself. */
    if (c->rfb)
        c->need_full = true;
    return TRUE;
}

static void vnc_on_rect(rfbClient *rfb, int x, int y, int w, int h)
{
    struct vnc_client *c = client_of(rfb);

    if (w <= 0 || h <= 0)
        return;
    if (c->dirty_x1 <= c->dirty_x0 || c->dirty_y1 <= c->dirty_y0) {
        c->dirty_x0 = x;
        c->dirty_y0 = y;
        c->dirty_x1 = x + w;
        c->dirty_y1 = y + h;
    } else {
        if (x < c->dirty_x0)
            c->dirty_x0 = x;
        if (y < c->dirty_y0)
            c->dirty_y0 = y;
        if (x + w > c->dirty_x1)
            c->dirty_x1 = x + w;
        if (y + h > c->dirty_y1)
            c->dirty_y1 = y + h;
    }
    c->painted += (uint64_t)w * (uint64_t)h;
    if (x == 0 && y == 0)
        c->saw_origin = true;
}

/* Copies rows [y0, y1) x [x0, x1) of work into fb, forcing alpha to 0xff
 * (the server leaves the padding byte of 32-bit pixels at 0). True when a
 * pixel changed: servers resend areas that were drawn again unchanged. */
static bool copy_region(uint8_t *dst, const uint8_t *src, int stride_px, int x0, int y0, int x1,
                        int y1)
{
    uint32_t diff = 0;
    for (int y = y0; y < y1; y++) {
        const uint32_t *s = (const uint32_t *)src + (size_t)y * (size_t)stride_px + x0;
        uint32_t *d = (uint32_t *)dst + (size_t)y * (size_t)stride_px + x0;
        for (int x = 0; x < x1 - x0; x++) {
            uint32_t v = s[x] | 0xff000000u;
            diff |= d[x] ^ v;
            d[x] = v;
        }
    }
    return diff != 0;
}

/* Publishes what this update changed in one step, so readers never see half
 * an update. */
static void publish_update(struct vnc_client *c)
{
    int x0 = c->dirty_x0, y0 = c->dirty_y0, x1 = c->dirty_x1, y1 = c->dirty_y1;

    c->dirty_x0 = c->dirty_y0 = c->dirty_x1 = c->dirty_y1 = 0;
    if (x1 <= x0 || y1 <= y0)
        return;

    if (!c->work_complete) {
        /* The answer to a full (non-incremental) request tiles the screen
         * without overlap, so enough painted area means every pixel. */
        if (c->painted < (uint64_t)c->work_w * (uint64_t)c->work_h)
            return;
        c->work_complete = true;
        x0 = 0;
        y0 = 0;
        x1 = c->work_w;
        y1 = c->work_h;
    }
    if (x0 < 0)
        x0 = 0;
    if (y0 < 0)
        y0 = 0;
    if (x1 > c->work_w)
        x1 = c->work_w;
    if (y1 > c->work_h)
        y1 = c->work_h;

    pthread_mutex_lock(&c->fb_lock);
    bool changed = false;
    if (c->fb_w != c->work_w || c->fb_h != c->work_h) {
        uint8_t *buf = malloc((size_t)c->work_w * (size_t)c->work_h * 4);
        if (!buf) {
            /* Keep the old picture; the next full update tries again. */
            c->work_complete = false;
            c->painted = 0;
            c->need_full = true;
            pthread_mutex_unlock(&c->fb_lock);
            return;
        }
        free(c->fb);
        c->fb = buf;
        c->fb_w = c->work_w;
        c->fb_h = c->work_h;
        x0 = 0;
        y0 = 0;
        x1 = c->work_w;
        y1 = c->work_h;
        changed = true;
    }
    if (copy_region(c->fb, c->work, c->work_w, x0, y0, x1, y1))
        changed = true;
    if (changed) {
        c->seq++;
        pthread_cond_broadcast(&c->fb_cond);
    }
    pthread_mutex_unlock(&c->fb_lock);
}

/* End of one FramebufferUpdate message. */
static void vnc_on_update_done(rfbClient *rfb)
{
    struct vnc_client *c = client_of(rfb);

    publish_update(c);
    c->updates++;
    c->inflight = false;
    /* A flush's answer paints (0, 0); an update that was already on its way
     * when the flush was sent may not, and does not count. */
    if (c->flush_inflight && c->saw_origin) {
        c->flush_inflight = false;
        if (c->work_complete) {
            pthread_mutex_lock(&c->fb_lock);
            if (c->fresh_done < c->flush_gen)
                c->fresh_done = c->flush_gen;
            pthread_cond_broadcast(&c->fb_cond);
            pthread_mutex_unlock(&c->fb_lock);
        }
    }
    c->saw_origin = false;
}

static struct timespec deadline_after_ms(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void vnc_mark_closed(struct vnc_client *c, const char *reason)
{
    pthread_mutex_lock(&c->fb_lock);
    if (!c->closed) {
        c->closed = true;
        snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
    }
    pthread_cond_broadcast(&c->fb_cond);
    pthread_mutex_unlock(&c->fb_lock);
}

/* libvncclient asks for the next incremental update as soon as it has read
 * one, so an open connection has the server encode the screen as fast as it
 * changes, and the guest pays for that whether or not anybody looks.
 * SendFramebufferUpdateRequest does nothing for a message the server is
 * marked as not supporting: clearing that mark leaves the asking to the
 * session thread, which writes its requests itself (vnc_send_requests). */
static void vnc_gate_requests(rfbClient *rfb)
{
    rfb->supportedMessages.client2server[rfbFramebufferUpdateRequest / 8] &=
        (uint8_t) ~(1u << (rfbFramebufferUpdateRequest % 8));
}

static void put_request(rfbFramebufferUpdateRequestMsg *m, bool incremental, int x, int y, int w,
                        int h)
{
    m->type = rfbFramebufferUpdateRequest;
    m->incremental = incremental ? 1 : 0;
    m->x = htons((uint16_t)x);
    m->y = htons((uint16_t)y);
    m->w = htons((uint16_t)w);
    m->h = htons((uint16_t)h);
}

enum vnc_request { VNC_REQ_INCREMENTAL, VNC_REQ_FLUSH, VNC_REQ_FULL };

/* io_lock held. A flush asks for every change of the whole screen plus
 * pixel (0, 0) unconditionally: the server answers at once, with everything
 * that changed up to the moment it read the request. */
static bool vnc_send_requests(struct vnc_client *c, enum vnc_request kind)
{
    rfbFramebufferUpdateRequestMsg m[2];
    int n = 1;
    put_request(&m[0], kind != VNC_REQ_FULL, 0, 0, c->work_w, c->work_h);
    if (kind == VNC_REQ_FLUSH)
        put_request(&m[n++], false, 0, 0, 1, 1);
    c->inflight = true;
    c->last_request_ms = now_ms();
    /* One write, so the server reads both in one go and answers once. */
    return WriteToRFBServer(c->rfb, (const char *)m,
                            (unsigned)(n * sz_rfbFramebufferUpdateRequestMsg));
}

/* Session thread, io_lock held. Sends the request that is due, if any: a
 * full one after a resize, a flush for a refresh, or the next periodic
 * incremental one when somebody wants frames at a rate. Gives how long
 * poll() may sleep before the next is due (-1: until woken). */
static int vnc_pump_requests(struct vnc_client *c, bool *ok)
{
    pthread_mutex_lock(&c->fb_lock);
    uint64_t wanted = c->fresh_wanted, done = c->fresh_done;
    int rate = c->rate_fps;
    if (c->waiters > 0 && rate < VNC_WAIT_FPS)
        rate = VNC_WAIT_FPS;
    pthread_mutex_unlock(&c->fb_lock);

    *ok = true;
    if (c->need_full && !c->inflight) {
        c->need_full = false;
        c->flush_inflight = true;
        c->flush_gen = wanted;
        *ok = vnc_send_requests(c, VNC_REQ_FULL);
        return -1;
    }
    /* Until a whole picture or a flush's answer arrived, keep asking as
     * libvncclient would: a server may answer with an update of settings
     * only (pixel format, pseudo-rectangles) and send the pixels asked for
     * on the next request. */
    if ((!c->work_complete || c->flush_inflight) && !c->inflight) {
        *ok = vnc_send_requests(c, VNC_REQ_INCREMENTAL);
        return -1;
    }
    if (wanted > c->flush_gen || (wanted > done && !c->flush_inflight)) {
        c->flush_inflight = true;
        c->flush_gen = wanted;
        *ok = vnc_send_requests(c, VNC_REQ_FLUSH);
        return -1;
    }
    if (c->inflight || rate <= 0)
        return -1;
    /* Rounded up: never more than rate requests a second. */
    int64_t due = c->last_request_ms + (1000 + rate - 1) / rate, now = now_ms();
    if (now < due)
        return (int)(due - now);
    *ok = vnc_send_requests(c, VNC_REQ_INCREMENTAL);
    return -1;
}

static void *vnc_session_main(void *arg)
{
    struct vnc_client *c = arg;
    char reason[300];

    for (;;) {
        bool ok;
        pthread_mutex_lock(&c->io_lock);
        int timeout_ms = vnc_pump_requests(c, &ok);
        pthread_mutex_unlock(&c->io_lock);
        if (!ok) {
            vnc_mark_closed(c, "VNC connection lost: cannot send an update request");
            break;
        }

        /* poll() rather than libvncclient's WaitForMessage(): select() breaks
         * past fd 1023, and the eventfd ends the wait at once. */
        struct pollfd fds[2] = {
            {.fd = c->rfb->sock, .events = POLLIN},
            {.fd = c->wake_fd, .events = POLLIN},
        };
        int n = poll(fds, 2, timeout_ms);
        if (atomic_load(&c->stop))
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(reason, sizeof(reason), "poll: %s", strerror(errno));
            vnc_mark_closed(c, reason);
            break;
        }
        if (fds[1].revents & POLLIN) {
            uint64_t count;
            if (read(c->wake_fd, &count, sizeof(count)) < 0) {
                /* EAGAIN: another wake-up already consumed it. */
            }
        }
        if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
            continue;

        pthread_mutex_lock(&c->io_lock);
        vnc_last_log[0] = '\0';
        /* libvncclient reads ahead into its own buffer: drain every message
         * already there, or the next one would wait for more socket data. */
        do {
            ok = HandleRFBServerMessage(c->rfb);
        } while (ok && c->rfb->buffered > 0 && !atomic_load(&c->stop));
        pthread_mutex_unlock(&c->io_lock);
        if (!ok) {
            snprintf(reason, sizeof(reason), "VNC connection lost%s%s", vnc_last_log[0] ? ": " : "",
                     vnc_last_log);
            vnc_mark_closed(c, reason);
            break;
        }
    }
    vnc_mark_closed(c, "VNC session closed");
    return NULL;
}

static void vnc_client_destroy(struct vnc_client *c)
{
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    pthread_mutex_destroy(&c->io_lock);
    pthread_mutex_destroy(&c->fb_lock);
    pthread_cond_destroy(&c->fb_cond);
    free(c->work);
    free(c->fb);
    free(c);
}

int vnc_client_new(const char *host, int port, int timeout_ms, struct vnc_client **out,
                   struct ph_error *err)
{
    static pthread_once_t log_once = PTHREAD_ONCE_INIT;
    struct vnc_client *c;
    pthread_condattr_t ca;
    int r;

    *out = NULL;
    bool unix_socket = host && host[0] == '/';
    if (!host || !*host || (!unix_socket && (port <= 0 || port > 65535)) ||
        (unix_socket && strlen(host) >= sizeof(((struct sockaddr_un *)0)->sun_path)) ||
        timeout_ms <= 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "bad VNC address %s:%d",
                            host ? host : "(null)", port);
    pthread_once(&log_once, vnc_install_log_sink);

    c = calloc(1, sizeof(*c));
    if (!c)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    c->wake_fd = -1;
    pthread_mutex_init(&c->io_lock, NULL);
    pthread_mutex_init(&c->fb_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->fb_cond, &ca);
    pthread_condattr_destroy(&ca);

    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->wake_fd < 0) {
        r = -errno;
        vnc_client_destroy(c);
        return ph_error_set(err, PH_ERR_INTERNAL, r, "eventfd: %s", strerror(-r));
    }

    /* 8 bits per sample, 3 samples, 4 bytes per pixel; the shifts put red in
     * the lowest byte, so pixels sit in memory as R, G, B, X. */
    rfbClient *rfb = rfbGetClient(8, 3, 4);
    if (!rfb) {
        vnc_client_destroy(c);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    rfb->format.bitsPerPixel = 32;
    rfb->format.depth = 24;
    rfb->format.trueColour = TRUE;
    rfb->format.bigEndian = FALSE;
    rfb->format.redMax = rfb->format.greenMax = rfb->format.blueMax = 255;
    rfb->format.redShift = 0;
    rfb->format.greenShift = 8;
    rfb->format.blueShift = 16;
    /* Lossless encodings only: recordings and screenshots must show the
     * guest's pixels, and JPEG artefacts would be encoded a second time. */
    rfb->appData.encodingsString = "copyrect tight zrle hextile zlib raw";
    /* To a server on this host (QEMU's VNC server for a VM's screen) moving
     * raw pixels is cheaper than compressing them on one side of the socket
     * and inflating them on the other. */
    if (host[0] == '/' || strcmp(host, "127.0.0.1") == 0)
        rfb->appData.encodingsString = "raw";
    rfb->appData.enableJPEG = FALSE;
    rfb->appData.compressLevel = 1;
    /* The server draws the pointer into the framebuffer, so recordings and
     * screenshots show it. */
    rfb->appData.useRemoteCursor = FALSE;
    rfb->appData.shareDesktop = TRUE;
    rfb->canHandleNewFBSize = TRUE;
    /* The handshake is bounded by the caller's timeout, later messages by
     * VNC_READ_TIMEOUT_S (both whole seconds in libvncclient). */
    rfb->connectTimeout = (unsigned)((timeout_ms + 999) / 1000);
    rfb->readTimeout = (int)rfb->connectTimeout;
    rfb->MallocFrameBuffer = vnc_on_resize;
    rfb->GotFrameBufferUpdate = vnc_on_rect;
    rfb->FinishedFrameBufferUpdate = vnc_on_update_done;
    free(rfb->serverHost);          /* rfbGetClient's placeholder "" */
    rfb->serverHost = strdup(host); /* freed by rfbClientCleanup */
    rfb->serverPort = port;
    if (!rfb->serverHost) {
        rfbClientCleanup(rfb);
        vnc_client_destroy(c);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    rfbClientSetClientData(rfb, &client_data_tag, c);

    vnc_last_log[0] = '\0';
    /* On failure rfbInitClient frees rfb itself (but not our framebuffer). */
    if (!rfbInitClient(rfb, NULL, NULL)) {
        bool timed_out = strstr(vnc_last_log, "timed out") != NULL;
        r = ph_error_set(err, timed_out ? PH_ERR_TIMEOUT : PH_ERR_TRANSPORT,
                         timed_out ? -ETIMEDOUT : -ECONNREFUSED, "VNC connect to %s:%d failed%s%s",
                         host, port, vnc_last_log[0] ? ": " : "", vnc_last_log);
        vnc_client_destroy(c);
        return r;
    }
    c->rfb = rfb;
    rfb->readTimeout = VNC_READ_TIMEOUT_S;
    /* rfbInitClient asked for the whole screen; every later request is the
     * session thread's. */
    vnc_gate_requests(rfb);
    c->inflight = true;
    c->last_request_ms = now_ms();
    /* libvncclient opens its socket without O_CLOEXEC. The gateway's own
     * spawns close everything past stderr (so the moment before this
     * cannot leak it there); this covers any other exec. */
    fcntl(rfb->sock, F_SETFD, FD_CLOEXEC);

    r = pthread_create(&c->thread, NULL, vnc_session_main, c);
    if (r != 0) {
        rfbClientCleanup(rfb);
        vnc_client_destroy(c);
        return ph_error_set(err, PH_ERR_INTERNAL, -r, "pthread_create: %s", strerror(r));
    }
    c->thread_started = true;

    /* Ready means one whole frame arrived: the answer to the full update
     * request rfbInitClient sent. */
    struct timespec deadline = deadline_after_ms(timeout_ms);
    r = 0;
    pthread_mutex_lock(&c->fb_lock);
    while (c->seq == 0 && !c->closed && r == 0)
        r = pthread_cond_timedwait(&c->fb_cond, &c->fb_lock, &deadline);
    bool ready = c->seq > 0 && !c->closed;
    char reason[sizeof(c->close_reason)];
    snprintf(reason, sizeof(reason), "%s", c->closed ? c->close_reason : "");
    pthread_mutex_unlock(&c->fb_lock);
    if (!ready) {
        vnc_client_free(c);
        if (reason[0])
            return ph_error_set(err, PH_ERR_TRANSPORT, -ECONNRESET, "VNC %s:%d: %s", host, port,
                                reason);
        return ph_error_set(err, PH_ERR_TIMEOUT, -ETIMEDOUT,
                            "VNC %s:%d sent no full frame within %d ms", host, port, timeout_ms);
    }
    *out = c;
    return 0;
}

static void vnc_wake(struct vnc_client *c)
{
    uint64_t one = 1;
    if (write(c->wake_fd, &one, sizeof(one)) < 0) {
        /* An eventfd write fails only when the counter would overflow, and
         * then the thread is already awake. */
    }
}

void vnc_client_free(struct vnc_client *c)
{
    if (!c)
        return;
    if (c->thread_started) {
        atomic_store(&c->stop, true);
        vnc_wake(c);
        pthread_join(c->thread, NULL);
    }
    if (c->rfb)
        rfbClientCleanup(c->rfb); /* closes the socket, leaves frameBuffer to us */
    vnc_client_destroy(c);
}

int vnc_client_status(struct vnc_client *c, struct ph_error *err)
{
    int r = 0;
    pthread_mutex_lock(&c->fb_lock);
    if (c->closed)
        r = ph_error_set(err, PH_ERR_UNAVAILABLE, -ENOTCONN, "%s", c->close_reason);
    pthread_mutex_unlock(&c->fb_lock);
    return r;
}

/* fb_lock held. Waits until *counter reaches target: 0, -ENOTCONN once the
 * connection ended, -ETIMEDOUT at the deadline. */
static int wait_counter_locked(struct vnc_client *c, const uint64_t *counter, uint64_t target,
                               const struct timespec *deadline)
{
    int r = 0;
    while (*counter < target && !c->closed && r == 0)
        r = pthread_cond_timedwait(&c->fb_cond, &c->fb_lock, deadline);
    if (*counter >= target)
        return 0;
    return c->closed ? -ENOTCONN : -ETIMEDOUT;
}

int vnc_client_refresh(struct vnc_client *c, int timeout_ms)
{
    struct timespec deadline = deadline_after_ms(timeout_ms < 0 ? 0 : timeout_ms);

    pthread_mutex_lock(&c->fb_lock);
    uint64_t want = ++c->fresh_wanted;
    pthread_mutex_unlock(&c->fb_lock);
    vnc_wake(c);
    pthread_mutex_lock(&c->fb_lock);
    int r = wait_counter_locked(c, &c->fresh_done, want, &deadline);
    pthread_mutex_unlock(&c->fb_lock);
    return r;
}

uint64_t vnc_client_updates(struct vnc_client *c)
{
    return atomic_load(&c->updates);
}

void vnc_client_set_rate(struct vnc_client *c, int fps)
{
    pthread_mutex_lock(&c->fb_lock);
    c->rate_fps = fps < 0 ? 0 : fps;
    pthread_mutex_unlock(&c->fb_lock);
    vnc_wake(c);
}

int vnc_client_snapshot(struct vnc_client *c, uint8_t **rgba, int *w, int *h)
{
    int r;

    *rgba = NULL;
    *w = *h = 0;
    r = vnc_client_refresh(c, VNC_REFRESH_TIMEOUT_MS);
    if (r < 0)
        return r;
    pthread_mutex_lock(&c->fb_lock);
    if (c->closed || !c->fb) {
        r = -ENOTCONN;
    } else {
        size_t len = (size_t)c->fb_w * (size_t)c->fb_h * 4;
        *rgba = malloc(len);
        if (!*rgba) {
            r = -ENOMEM;
        } else {
            memcpy(*rgba, c->fb, len);
            *w = c->fb_w;
            *h = c->fb_h;
        }
    }
    pthread_mutex_unlock(&c->fb_lock);
    return r;
}

int vnc_client_frame_update(struct vnc_client *c, struct vnc_frame *f)
{
    int r = 0;

    pthread_mutex_lock(&c->fb_lock);
    if (c->closed || !c->fb) {
        r = -ENOTCONN;
    } else if (f->seq != c->seq) {
        size_t len = (size_t)c->fb_w * (size_t)c->fb_h * 4;
        if (len > f->cap) {
            uint8_t *buf = realloc(f->rgba, len);
            if (!buf) {
                pthread_mutex_unlock(&c->fb_lock);
                return -ENOMEM;
            }
            f->rgba = buf;
            f->cap = len;
        }
        memcpy(f->rgba, c->fb, len);
        f->width = c->fb_w;
        f->height = c->fb_h;
        f->seq = c->seq;
        r = 1;
    }
    pthread_mutex_unlock(&c->fb_lock);
    return r;
}

int vnc_client_wait_frame(struct vnc_client *c, uint64_t after_seq, int timeout_ms)
{
    struct timespec deadline = deadline_after_ms(timeout_ms < 0 ? 0 : timeout_ms);

    /* Somebody waiting for a change is somebody who wants frames: updates
     * are asked for at VNC_WAIT_FPS (at least) while it waits. */
    pthread_mutex_lock(&c->fb_lock);
    bool asking = c->seq <= after_seq && !c->closed;
    if (asking) {
        c->waiters++;
        vnc_wake(c);
    }
    int r = wait_counter_locked(c, &c->seq, after_seq + 1, &deadline);
    if (asking)
        c->waiters--;
    pthread_mutex_unlock(&c->fb_lock);
    return r;
}

int vnc_client_settle(struct vnc_client *c, int quiet_ms, int max_ms)
{
    int64_t end = now_ms() + max_ms;

    pthread_mutex_lock(&c->fb_lock);
    uint64_t seq = c->seq;
    pthread_mutex_unlock(&c->fb_lock);
    for (;;) {
        int left = (int)(end - now_ms());
        if (left <= 0)
            return -ETIMEDOUT;
        int r = vnc_client_wait_frame(c, seq, quiet_ms < left ? quiet_ms : left);
        if (r == -ETIMEDOUT)
            return quiet_ms <= left ? 0 : -ETIMEDOUT;
        if (r < 0)
            return r;
        pthread_mutex_lock(&c->fb_lock);
        seq = c->seq;
        pthread_mutex_unlock(&c->fb_lock);
    }
}

void vnc_frame_done(struct vnc_frame *f)
{
    if (!f)
        return;
    free(f->rgba);
    *f = (struct vnc_frame){0};
}

/* Fails with the close reason once the session ended; gives the screen size
 * input coordinates are checked against. */
static int vnc_check_open(struct vnc_client *c, int *w, int *h, struct ph_error *err)
{
    int r = 0;
    pthread_mutex_lock(&c->fb_lock);
    if (c->closed)
        r = ph_error_set(err, PH_ERR_UNAVAILABLE, -ENOTCONN, "%s", c->close_reason);
    if (w)
        *w = c->fb_w;
    if (h)
        *h = c->fb_h;
    pthread_mutex_unlock(&c->fb_lock);
    return r;
}

int vnc_client_pointer(struct vnc_client *c, int x, int y, int buttons, struct ph_error *err)
{
    int w, h, r;

    r = vnc_check_open(c, &w, &h, err);
    if (r < 0)
        return r;
    if (x < 0 || y < 0 || x >= w || y >= h)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "point (%d, %d) is outside the %dx%d screen", x, y, w, h);
    if (buttons < 0 || buttons > 0xff)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "bad button mask 0x%x", buttons);

    pthread_mutex_lock(&c->io_lock);
    bool ok = SendPointerEvent(c->rfb, x, y, buttons);
    pthread_mutex_unlock(&c->io_lock);
    if (!ok)
        return ph_error_set(err, PH_ERR_TRANSPORT, -EIO, "VNC pointer event failed");
    return 0;
}

int vnc_client_key(struct vnc_client *c, uint32_t keysym, bool down, struct ph_error *err)
{
    int r = vnc_check_open(c, NULL, NULL, err);
    if (r < 0)
        return r;
    if (keysym == 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "no keysym");

    pthread_mutex_lock(&c->io_lock);
    bool ok = SendKeyEvent(c->rfb, keysym, down ? TRUE : FALSE);
    pthread_mutex_unlock(&c->io_lock);
    if (!ok)
        return ph_error_set(err, PH_ERR_TRANSPORT, -EIO, "VNC key event failed");
    return 0;
}
