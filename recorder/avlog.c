#include "avlog.h"

#include <pthread.h>

#include <libavutil/log.h>

static void av_quiet_once(void)
{
    if (av_log_get_level() == AV_LOG_INFO)
        av_log_set_level(AV_LOG_QUIET);
}

void rec_av_quiet(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, av_quiet_once);
}
