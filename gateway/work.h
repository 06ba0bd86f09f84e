/* work_pool: a fixed set of worker threads for blocking jobs (libssh
 * sessions, image builds, snapshot saves) whose results are handed back to
 * the libwebsockets loop thread.
 *
 * Usage:
 *   struct work_pool *p = work_pool_new(ctx, 8, 256);
 *   r = work_submit(p, exec_run, exec_done, job);   // -EAGAIN: reply 429
 *   ...
 *   // in LWS_CALLBACK_EVENT_WAIT_CANCELLED (the http server does this):
 *   work_pool_dispatch(p);
 *   ...
 *   work_pool_free(p);
 *
 * run(data) runs on a worker thread; when it returns, the job goes on a
 * done-queue and lws_cancel_service() wakes the loop, whose next
 * work_pool_dispatch() calls done(data) there. done() owns data from then
 * on. Jobs start in submission order; done() calls happen in completion
 * order. */
#pragma once

struct lws_context;
struct work_pool;

typedef void (*work_fn)(void *data);

#define WORK_DEFAULT_THREADS 8
#define WORK_DEFAULT_MAX_QUEUED 256

/* The gateway's pools, one per kind of work, so that long jobs of one kind
 * never hold the threads another needs (the http server owns all three). */
enum work_lane {
    WORK_LANE_CONTROL, /* boots, stops, files, screenshots: seconds to minutes */
    WORK_LANE_EXEC,    /* user commands: as long as their timeout (an hour at most) */
    WORK_LANE_FAST,    /* CDP fetches, socket closes: seconds */
    WORK_LANES
};
#define WORK_EXEC_THREADS 16
#define WORK_FAST_THREADS 4

/* ctx is weak and may be NULL (then nobody is woken: the owner must call
 * work_pool_dispatch itself, as tests do). n_threads <= 0 and max_queued
 * <= 0 take the defaults. max_queued bounds jobs waiting for a thread, not
 * the ones running. Returns NULL on out-of-memory or thread creation
 * failure. */
struct work_pool *work_pool_new(struct lws_context *ctx, int n_threads, int max_queued);

/* Any thread. run must not be NULL; done may be NULL (then data is the
 * job's own business). Returns 0, -EAGAIN when max_queued jobs are already
 * waiting, -ESHUTDOWN once work_pool_free has begun, -ENOMEM. */
int work_submit(struct work_pool *p, work_fn run, work_fn done, void *data);

/* Any thread: fn(data) runs on the loop thread at the next dispatch, after
 * the done() calls already queued. Returns 0 or -ENOMEM. */
int work_run_on_loop(struct work_pool *p, work_fn fn, void *data);

/* Loop thread only: runs every finished job's done() and every
 * work_run_on_loop function queued so far. Callbacks may submit more work. */
void work_pool_dispatch(struct work_pool *p);

/* Loop thread (or after the loop stopped). New submissions fail with
 * -ESHUTDOWN; jobs already queued are not dropped: the workers finish every
 * one of them (run() must therefore be bounded, as every blocking job here
 * has its own timeout), the threads are joined, and the remaining done()
 * and loop functions run here, inline, so no job's data leaks. NULL is a
 * no-op. */
void work_pool_free(struct work_pool *p);
