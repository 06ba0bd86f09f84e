/* A one-line spinner with elapsed time on stderr, for the minute a sandbox
 * can take to boot under software emulation. Silent unless stderr is a
 * terminal, so logs and pipes never see carriage returns. */
#include <stdio.h>

#include "cli.h"
#include "util.h"

#define PROGRESS_FRAME_MS 120

void progress_start(struct progress *p, const struct cli_ctx *c, const char *label)
{
    *p = (struct progress){.active = c->stderr_tty && label, .label = label};
    p->start_ms = p->last_ms = now_ms();
    if (p->active) {
        fprintf(stderr, "\r%s ...", label);
        fflush(stderr);
    }
}

int progress_tick(void *data)
{
    static const char frames[] = "|/-\\";
    struct progress *p = data;
    long long now = now_ms();

    if (!p || !p->active || now - p->last_ms < PROGRESS_FRAME_MS)
        return 0;
    p->last_ms = now;
    p->frame++;
    /* \033[K clears what a longer previous line left behind. */
    fprintf(stderr, "\r%c %s ... %llds\033[K", frames[p->frame % 4], p->label,
            (now - p->start_ms) / 1000);
    fflush(stderr);
    return 0;
}

void progress_done(struct progress *p)
{
    if (!p->active)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->active = false;
}
