#include "encoder.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "avlog.h"

/* Bounded CPU: a recording may use at most this many encoder threads. */
#define REC_ENCODER_THREADS 2
#define REC_KEYFRAME_SECONDS 2

struct rec_encoder {
    char *path;             /* owned */
    AVFormatContext *oc;    /* owned, with oc->pb open */
    AVCodecContext *cc;     /* owned */
    AVStream *st;           /* weak, owned by oc */
    struct SwsContext *sws; /* owned, cached for the last input geometry */
    AVFrame *frame;         /* owned, yuv420p at the encoded size */
    AVPacket *pkt;          /* owned */
    int width, height;      /* encoded size (even) */
    int fps;
    bool have_picture; /* frame holds a converted picture */
    int64_t last_pts;  /* -1 before the first frame */
    int64_t frames;
    int64_t bytes;
};

/* libav* errors are -errno where one fits and tags otherwise. */
static int av_to_errno(int averr)
{
    if (averr < 0 && averr > -4096)
        return averr;
    return -EIO;
}

/* A full disk is the storage's state, not a fault of the recorder: the
 * caller is told to come back (503), not that something broke. */
static enum ph_error_kind io_kind(int neg_errno)
{
    return neg_errno == -ENOSPC || neg_errno == -EDQUOT ? PH_ERR_UNAVAILABLE : PH_ERR_INTERNAL;
}

static int av_fail(struct ph_error *err, int averr, const char *what)
{
    char buf[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, buf, sizeof(buf));
    return ph_error_set(err, io_kind(av_to_errno(averr)), av_to_errno(averr), "%s: %s", what, buf);
}

/* Removes what a failed open left behind, but never a device or a link:
 * the path is the caller's. */
static void unlink_if_regular(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
        unlink(path);
}

static void encoder_free(struct rec_encoder *e)
{
    if (!e)
        return;
    if (e->oc) {
        if (e->oc->pb)
            avio_closep(&e->oc->pb);
        avformat_free_context(e->oc);
    }
    avcodec_free_context(&e->cc);
    sws_freeContext(e->sws);
    av_frame_free(&e->frame);
    av_packet_free(&e->pkt);
    free(e->path);
    free(e);
}

int rec_encoder_open(const char *path, int width, int height, int fps, struct rec_encoder **out,
                     struct ph_error *err)
{
    struct rec_encoder *e;
    AVDictionary *opts = NULL;
    const AVCodec *codec;
    int r;

    rec_av_quiet();
    *out = NULL;
    if (!path || width < 2 || height < 2 || width > 8192 || height > 8192 || fps < 1 || fps > 60)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "bad recording geometry %dx%d@%d", width,
                            height, fps);

    codec = avcodec_find_encoder_by_name("libx264");
    if (!codec)
        return ph_error_set(err, PH_ERR_UNAVAILABLE, -ENOSYS,
                            "libavcodec was built without libx264");

    e = calloc(1, sizeof(*e));
    if (!e)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    e->path = strdup(path);
    e->width = width & ~1;
    e->height = height & ~1;
    e->fps = fps;
    e->last_pts = -1;
    e->frame = av_frame_alloc();
    e->pkt = av_packet_alloc();
    e->cc = avcodec_alloc_context3(codec);
    if (!e->path || !e->frame || !e->pkt || !e->cc) {
        encoder_free(e);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }

    r = avformat_alloc_output_context2(&e->oc, NULL, "mp4", path);
    if (r < 0) {
        r = av_fail(err, r, "mp4 muxer");
        encoder_free(e);
        return r;
    }

    AVCodecContext *cc = e->cc;
    cc->width = e->width;
    cc->height = e->height;
    cc->pix_fmt = AV_PIX_FMT_YUV420P;
    cc->time_base = (AVRational){1, fps};
    cc->framerate = (AVRational){fps, 1};
    cc->gop_size = fps * REC_KEYFRAME_SECONDS;
    cc->max_b_frames = 0;
    cc->thread_count = REC_ENCODER_THREADS;
    /* What swscale produces by default: BT.601 matrix, limited range. */
    cc->colorspace = AVCOL_SPC_SMPTE170M;
    cc->color_range = AVCOL_RANGE_MPEG;
    cc->color_primaries = AVCOL_PRI_BT709;
    cc->color_trc = AVCOL_TRC_IEC61966_2_1;
    if (e->oc->oformat->flags & AVFMT_GLOBALHEADER)
        cc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    /* Screen content is mostly still: veryfast keeps skipped macroblocks
     * cheap; zerolatency drops lookahead and B-frames, so every frame sent
     * comes straight back as a packet and nothing waits in the encoder. */
    av_dict_set(&opts, "preset", "veryfast", 0);
    av_dict_set(&opts, "tune", "zerolatency", 0);
    av_dict_set(&opts, "crf", "23", 0);
    r = avcodec_open2(cc, codec, &opts);
    av_dict_free(&opts);
    if (r < 0) {
        r = av_fail(err, r, "open libx264");
        encoder_free(e);
        return r;
    }

    e->st = avformat_new_stream(e->oc, NULL);
    if (!e->st) {
        encoder_free(e);
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    e->st->time_base = cc->time_base;
    r = avcodec_parameters_from_context(e->st->codecpar, cc);
    if (r < 0) {
        r = av_fail(err, r, "stream parameters");
        encoder_free(e);
        return r;
    }

    e->frame->format = cc->pix_fmt;
    e->frame->width = cc->width;
    e->frame->height = cc->height;
    r = av_frame_get_buffer(e->frame, 0);
    if (r < 0) {
        r = av_fail(err, r, "frame buffer");
        encoder_free(e);
        return r;
    }

    r = avio_open(&e->oc->pb, path, AVIO_FLAG_WRITE);
    if (r < 0) {
        r = ph_error_set(err, io_kind(av_to_errno(r)), av_to_errno(r), "open %s: %s", path,
                         av_err2str(r));
        encoder_free(e);
        return r;
    }
    /* Fragmented while recording: moov (empty) first, then a moof+mdat per
     * keyframe, each flushed as soon as the muxer writes it. A crash leaves
     * a file that plays up to the last complete fragment. */
    av_dict_set(&opts, "movflags", "frag_keyframe+empty_moov+default_base_moof", 0);
    av_dict_set(&opts, "flush_packets", "1", 0);
    r = avformat_write_header(e->oc, &opts);
    av_dict_free(&opts);
    if (r < 0) {
        r = av_fail(err, r, "write mp4 header");
        encoder_free(e);
        unlink_if_regular(path);
        return r;
    }
    e->bytes = avio_tell(e->oc->pb);
    *out = e;
    return 0;
}

/* Sends frame (or NULL to drain) and writes every packet that comes out. */
static int encode_and_mux(struct rec_encoder *e, AVFrame *frame, struct ph_error *err)
{
    int r = avcodec_send_frame(e->cc, frame);
    if (r < 0)
        return av_fail(err, r, "encode frame");

    for (;;) {
        r = avcodec_receive_packet(e->cc, e->pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
            return 0;
        if (r < 0)
            return av_fail(err, r, "encode frame");
        if (e->pkt->duration == 0)
            e->pkt->duration = 1;
        av_packet_rescale_ts(e->pkt, e->cc->time_base, e->st->time_base);
        e->pkt->stream_index = e->st->index;
        r = av_interleaved_write_frame(e->oc, e->pkt); /* takes the packet's data */
        if (r < 0)
            return av_fail(err, r, "write mp4");
        e->bytes = avio_tell(e->oc->pb);
    }
}

static int encode_picture(struct rec_encoder *e, int64_t pts_index, struct ph_error *err)
{
    if (pts_index <= e->last_pts)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "frame time %lld is not after %lld",
                            (long long)pts_index, (long long)e->last_pts);
    e->frame->pts = pts_index;
    int r = encode_and_mux(e, e->frame, err);
    if (r < 0)
        return r;
    e->last_pts = pts_index;
    e->frames++;
    return 0;
}

int rec_encoder_write(struct rec_encoder *e, const uint8_t *rgba, int w, int h, int64_t pts_index,
                      struct ph_error *err)
{
    int src_w = w, src_h = h;
    int r;

    if (!rgba || w < 1 || h < 1 || w > 16384 || h > 16384)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "bad frame %dx%d", w, h);
    if (pts_index <= e->last_pts)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "frame time %lld is not after %lld",
                            (long long)pts_index, (long long)e->last_pts);

    /* A frame one pixel wider or taller than the encoded size (odd sides)
     * is cropped, not scaled: scaling by one pixel would blur everything. */
    if ((w == e->width || w == e->width + 1) && (h == e->height || h == e->height + 1)) {
        src_w = e->width;
        src_h = e->height;
    }
    e->sws = sws_getCachedContext(e->sws, src_w, src_h, AV_PIX_FMT_RGB0, e->width, e->height,
                                  AV_PIX_FMT_YUV420P, SWS_BILINEAR, NULL, NULL, NULL);
    if (!e->sws)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "swscale %dx%d -> %dx%d", src_w, src_h,
                            e->width, e->height);

    /* The encoder may still hold a reference to the last picture. */
    r = av_frame_make_writable(e->frame);
    if (r < 0)
        return av_fail(err, r, "frame buffer");

    const uint8_t *src[1] = {rgba};
    const int src_stride[1] = {w * 4};
    sws_scale(e->sws, src, src_stride, 0, src_h, e->frame->data, e->frame->linesize);
    e->have_picture = true;
    return encode_picture(e, pts_index, err);
}

int rec_encoder_repeat(struct rec_encoder *e, int64_t pts_index, struct ph_error *err)
{
    if (!e->have_picture)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "no picture to repeat yet");
    return encode_picture(e, pts_index, err);
}

int64_t rec_encoder_bytes(const struct rec_encoder *e)
{
    return e->bytes;
}

int64_t rec_encoder_frames(const struct rec_encoder *e)
{
    return e->frames;
}

void rec_encoder_size(const struct rec_encoder *e, int *width, int *height)
{
    *width = e->width;
    *height = e->height;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

/* Stream-copies the fragmented file at src into a regular MP4 at dst with
 * moov before mdat (movflags +faststart, which rewrites dst once more). */
static int remux_faststart(const char *src, const char *dst, struct ph_error *err)
{
    AVFormatContext *in = NULL, *o = NULL;
    AVPacket *pkt = NULL;
    AVDictionary *opts = NULL;
    int r;

    r = avformat_open_input(&in, src, NULL, NULL);
    if (r < 0)
        return av_fail(err, r, "reopen recording");
    r = avformat_alloc_output_context2(&o, NULL, "mp4", dst);
    if (r < 0) {
        r = av_fail(err, r, "mp4 muxer");
        goto out;
    }
    /* The mov demuxer fills codec parameters from the sample description;
     * no avformat_find_stream_info(), which would decode frames for nothing. */
    for (unsigned i = 0; i < in->nb_streams; i++) {
        AVStream *ost = avformat_new_stream(o, NULL);
        if (!ost) {
            r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
            goto out;
        }
        r = avcodec_parameters_copy(ost->codecpar, in->streams[i]->codecpar);
        if (r < 0) {
            r = av_fail(err, r, "copy stream parameters");
            goto out;
        }
        ost->codecpar->codec_tag = 0;
        ost->time_base = in->streams[i]->time_base;
    }
    r = avio_open(&o->pb, dst, AVIO_FLAG_WRITE);
    if (r < 0) {
        r = av_fail(err, r, "open remux output");
        goto out;
    }
    av_dict_set(&opts, "movflags", "+faststart", 0);
    r = avformat_write_header(o, &opts);
    av_dict_free(&opts);
    if (r < 0) {
        r = av_fail(err, r, "write mp4 header");
        goto out;
    }
    pkt = av_packet_alloc();
    if (!pkt) {
        r = ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        goto out;
    }
    while ((r = av_read_frame(in, pkt)) >= 0) {
        AVStream *ist = in->streams[pkt->stream_index];
        AVStream *ost = o->streams[pkt->stream_index];
        av_packet_rescale_ts(pkt, ist->time_base, ost->time_base);
        pkt->pos = -1;
        r = av_interleaved_write_frame(o, pkt);
        if (r < 0) {
            r = av_fail(err, r, "remux packet");
            goto out;
        }
    }
    if (r != AVERROR_EOF) {
        r = av_fail(err, r, "read recording");
        goto out;
    }
    r = av_write_trailer(o);
    if (r < 0) {
        r = av_fail(err, r, "finish mp4");
        goto out;
    }
    r = avio_closep(&o->pb);
    if (r < 0) {
        r = av_fail(err, r, "close remux output");
        goto out;
    }
    r = fsync_path(dst);
    if (r < 0)
        r = ph_error_set(err, PH_ERR_INTERNAL, r, "fsync %s: %s", dst, strerror(-r));
out:
    av_packet_free(&pkt);
    if (o) {
        if (o->pb)
            avio_closep(&o->pb);
        avformat_free_context(o);
    }
    avformat_close_input(&in);
    return r;
}

int rec_encoder_close(struct rec_encoder *e, struct ph_error *err)
{
    int r;

    if (!e)
        return 0;
    r = encode_and_mux(e, NULL, err);
    if (r == 0) {
        r = av_write_trailer(e->oc);
        if (r < 0)
            r = av_fail(err, r, "finish mp4");
    }
    int rc = avio_closep(&e->oc->pb);
    if (r == 0 && rc < 0)
        r = av_fail(err, rc, "close recording");
    if (r < 0) {
        encoder_free(e);
        return r;
    }

    char *tmp = NULL;
    if (asprintf(&tmp, "%s.faststart.tmp", e->path) < 0) {
        encoder_free(e);
        ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
        return REC_ENCODER_FRAGMENTED;
    }
    r = remux_faststart(e->path, tmp, err);
    if (r == 0 && rename(tmp, e->path) < 0)
        r = ph_error_set(err, PH_ERR_INTERNAL, -errno, "rename %s: %s", tmp, strerror(errno));
    if (r < 0) {
        unlink(tmp);
        ph_error_prefix(err, "faststart rewrite of %s (kept fragmented)", e->path);
        r = REC_ENCODER_FRAGMENTED;
    }
    free(tmp);
    encoder_free(e);
    return r;
}
