#include "screenshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "avlog.h"

void rec_png_fit(int w, int h, int max_w, int max_h, int *out_w, int *out_h)
{
    int ow = w, oh = h;

    if (max_w > 0 && ow > max_w) {
        oh = (int)(((int64_t)h * max_w + w / 2) / w);
        ow = max_w;
    }
    if (max_h > 0 && oh > max_h) {
        ow = (int)(((int64_t)w * max_h + h / 2) / h);
        oh = max_h;
    }
    *out_w = ow < 1 ? 1 : ow;
    *out_h = oh < 1 ? 1 : oh;
}

static int png_fail(struct ph_error *err, int averr, const char *what)
{
    char buf[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, buf, sizeof(buf));
    return ph_error_set(err, PH_ERR_INTERNAL, averr > -4096 ? averr : -EIO, "%s: %s", what, buf);
}

int rec_png_encode(const uint8_t *rgba, int w, int h, int max_w, int max_h, uint8_t **png,
                   size_t *len, struct ph_error *err)
{
    const AVCodec *codec;
    AVCodecContext *cc = NULL;
    AVFrame *frame = NULL;
    AVPacket *pkt = NULL;
    struct SwsContext *sws = NULL;
    int ow, oh, r;

    rec_av_quiet();
    *png = NULL;
    *len = 0;
    if (!rgba || w < 1 || h < 1 || w > 16384 || h > 16384 || max_w < 0 || max_h < 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "bad screenshot %dx%d (max %dx%d)", w, h,
                            max_w, max_h);
    rec_png_fit(w, h, max_w, max_h, &ow, &oh);

    codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    if (!codec)
        return ph_error_set(err, PH_ERR_UNAVAILABLE, -ENOSYS, "libavcodec has no PNG encoder");
    cc = avcodec_alloc_context3(codec);
    frame = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!cc || !frame || !pkt) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto out;
    }
    cc->width = ow;
    cc->height = oh;
    cc->pix_fmt = AV_PIX_FMT_RGB24;
    cc->time_base = (AVRational){1, 1};
    cc->thread_count = 1;
    /* Paeth prediction shrinks screen content (flat areas, text) a lot for
     * little CPU; "none", the default, leaves zlib alone with raw rows. */
    av_opt_set(cc->priv_data, "pred", "paeth", 0);
    r = avcodec_open2(cc, codec, NULL);
    if (r < 0) {
        r = png_fail(err, r, "open PNG encoder");
        goto out;
    }

    frame->format = AV_PIX_FMT_RGB24;
    frame->width = ow;
    frame->height = oh;
    r = av_frame_get_buffer(frame, 0);
    if (r < 0) {
        r = png_fail(err, r, "frame buffer");
        goto out;
    }
    /* Area averaging keeps text legible when shrinking. */
    sws =
        sws_getContext(w, h, AV_PIX_FMT_RGB0, ow, oh, AV_PIX_FMT_RGB24, SWS_AREA, NULL, NULL, NULL);
    if (!sws) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "swscale %dx%d -> %dx%d", w, h, ow, oh);
        goto out;
    }
    const uint8_t *src[1] = {rgba};
    const int src_stride[1] = {w * 4};
    sws_scale(sws, src, src_stride, 0, h, frame->data, frame->linesize);
    frame->pts = 0;

    r = avcodec_send_frame(cc, frame);
    if (r >= 0)
        r = avcodec_send_frame(cc, NULL);
    if (r >= 0)
        r = avcodec_receive_packet(cc, pkt);
    if (r < 0) {
        r = png_fail(err, r, "encode PNG");
        goto out;
    }
    *png = malloc((size_t)pkt->size);
    if (!*png) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto out;
    }
    memcpy(*png, pkt->data, (size_t)pkt->size);
    *len = (size_t)pkt->size;
    r = 0;
out:
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&frame);
    avcodec_free_context(&cc);
    return r;
}
