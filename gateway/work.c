#include "work.h"

#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

struct work_job {
    work_fn run;  /* NULL for a work_run_on_loop function */
    work_fn done; /* may be NULL */
    void *data;   /* weak: the job's owner decides */
    struct work_job *next;
};

/* A FIFO of jobs linked through next. */
struct work_queue {
    struct work_job *head, *tail; /* owned */
    size_t len;
};

struct work_pool {
    struct lws_context *ctx; /* weak, may be NULL */
    pthread_t *threads;      /* owned, n_threads of them */
    int n_threads;
    size_t max_queued;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;  /* a job was queued or shutdown began */
    struct work_queue todo;
    struct work_queue finished;
    bool shutdown;
};

static void queue_push(struct work_queue *q, struct work_job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->len++;
}

static struct work_job *queue_pop(struct work_queue *q)
{
    struct work_job *j = q->head;
    if (!j)
        return NULL;
    q->head = j->next;
    if (!q->head)
        q->tail = NULL;
    q->len--;
    return j;
}

static void pool_finish(struct work_pool *p, struct work_job *j)
{
    pthread_mutex_lock(&p->lock);
    queue_push(&p->finished, j);
    pthread_mutex_unlock(&p->lock);
    /* lws_cancel_service only writes to the loop's wake pipe, so any thread
     * may call it; the loop then delivers LWS_CALLBACK_EVENT_WAIT_CANCELLED. */
    if (p->ctx)
        lws_cancel_service(p->ctx);
}

static void *worker_main(void *arg)
{
    struct work_pool *p = arg;

    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (!p->todo.head && !p->shutdown)
            pthread_cond_wait(&p->wake, &p->lock);
        struct work_job *j = queue_pop(&p->todo);
        pthread_mutex_unlock(&p->lock);
        /* The queue is drained before a worker honours shutdown, so queued
         * jobs are finished rather than dropped. */
        if (!j)
            return NULL;
        j->run(j->data);
        pool_finish(p, j);
    }
}

struct work_pool *work_pool_new(struct lws_context *ctx, int n_threads, int max_queued)
{
    struct work_pool *p = calloc(1, sizeof(*p));
    sigset_t all, old;

    if (!p)
        return NULL;
    p->ctx = ctx;
    p->max_queued = (size_t)(max_queued > 0 ? max_queued : WORK_DEFAULT_MAX_QUEUED);
    if (n_threads <= 0)
        n_threads = WORK_DEFAULT_THREADS;
    p->threads = calloc((size_t)n_threads, sizeof(*p->threads));
    if (!p->threads) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);

    /* Workers inherit a fully blocked mask so process signals (SIGINT,
     * SIGTERM, SIGCHLD) always reach the loop thread, which owns them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < n_threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0)
            break;
        p->n_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (p->n_threads != n_threads) {
        work_pool_free(p);
        return NULL;
    }
    return p;
}

int work_submit(struct work_pool *p, work_fn run, work_fn done, void *data)
{
    struct work_job *j;

    if (!run)
        return -EINVAL;
    j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->run = run;
    j->done = done;
    j->data = data;

    pthread_mutex_lock(&p->lock);
    if (p->shutdown || p->todo.len >= p->max_queued) {
        int r = p->shutdown ? -ESHUTDOWN : -EAGAIN;
        pthread_mutex_unlock(&p->lock);
        free(j);
        return r;
    }
    queue_push(&p->todo, j);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int work_run_on_loop(struct work_pool *p, work_fn fn, void *data)
{
    struct work_job *j = calloc(1, sizeof(*j));

    if (!j)
        return -ENOMEM;
    j->done = fn;
    j->data = data;
    pool_finish(p, j);
    return 0;
}

void work_pool_dispatch(struct work_pool *p)
{
    struct work_queue batch;

    if (!p)
        return;
    /* Take the whole list at once: done() callbacks may queue more work or
     * loop functions, which the next wake-up handles, so this never spins. */
    pthread_mutex_lock(&p->lock);
    batch = p->finished;
    p->finished = (struct work_queue){0};
    pthread_mutex_unlock(&p->lock);

    struct work_job *j;
    while ((j = queue_pop(&batch))) {
        if (j->done)
            j->done(j->data);
        free(j);
    }
}

void work_pool_free(struct work_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->shutdown = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);

    /* done() callbacks may still queue loop functions; keep going until
     * nothing is left. */
    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool empty = !p->finished.head;
        pthread_mutex_unlock(&p->lock);
        if (empty)
            break;
        work_pool_dispatch(p);
    }

    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}
