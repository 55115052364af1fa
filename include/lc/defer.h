/*
 * livecount — parked HTTP requests: a request answered later, by another
 * thread, without its worker's event loop ever waiting.
 *
 * The worker parks a request (lc_defer_park) and returns from its
 * callback with nothing written; another thread computes the answer and
 * hands it over (lc_defer_answer), which wakes the worker
 * (lws_cancel_service). The worker takes the answers from its mailbox
 * (lc_defer_drain, from LWS_CALLBACK_EVENT_WAIT_CANCELLED), asks for the
 * connection's writeable callback, and there writes the answer
 * (lc_defer_take + the HTTP reply writer). A connection that closes while
 * its request is parked is forgotten (lc_defer_forget); its answer, when
 * it comes, is dropped.
 *
 * Threads: lc_defer_answer from any thread; everything else on the
 * worker's thread (init/cleanup by whoever owns the worker, with no
 * answer in flight). Every producer must be stopped before the worker's
 * lws context is destroyed (the wake-up uses it).
 *
 * Does not: write HTTP (http_read.c's lc_http_resume does), or know what
 * the answer is for.
 */
#ifndef LC_DEFER_H
#define LC_DEFER_H

#include <libwebsockets.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/** One parked request. Owned by its worker's struct lc_defer. */
struct lc_deferred {
	struct lc_deferred *next; /* pending list (worker thread) */
	struct lc_deferred *done; /* mailbox (struct lc_defer's lock) */
	struct lc_defer *q;
	struct lws *wsi; /* NULL once the connection is gone (worker) */
	bool answered;	 /* in the mailbox or taken (lock) */
	bool ready;	 /* taken: waits for its writeable (worker) */
	/* The answer (set by lc_defer_answer). */
	int status;
	char *body; /* malloc'ed, owned here */
	size_t len;
};

/** A worker's parked requests and the mailbox of their answers. */
struct lc_defer {
	pthread_mutex_t lock;
	struct lc_deferred *done;    /* answered, not yet drained (lock) */
	struct lc_deferred *pending; /* every parked request (worker) */
	size_t npending;	     /* worker thread */
	struct lws_context *ctx;     /* woken by answers (set at start) */
};

void lc_defer_init(struct lc_defer *q);

/** Frees every parked request and answer; no producer may run. */
void lc_defer_cleanup(struct lc_defer *q);

/** The context to wake; worker thread, once its context exists. */
void lc_defer_start(struct lc_defer *q, struct lws_context *ctx);

/**
 * Parks the request on wsi: the caller then returns 0 from its callback
 * with nothing written, and hands the ticket to whoever will answer.
 * NULL when out of memory. Worker thread.
 */
struct lc_deferred *lc_defer_park(struct lc_defer *q, struct lws *wsi);

/**
 * Gives up a parked request that was never handed to a producer (the
 * caller answers it itself). Worker thread.
 */
void lc_defer_unpark(struct lc_deferred *d);

/**
 * Resumes a parked request with this answer: an HTTP status and a JSON
 * body (malloc'ed, ownership taken; NULL with len 0 for an empty one).
 * Call exactly once per ticket; the ticket must not be used after. Any
 * thread; wakes the worker.
 */
void lc_defer_answer(struct lc_deferred *d, int status, char *body, size_t len);

/**
 * Takes the answers in the mailbox: asks for the writeable callback of
 * each connection still there, frees the others. Worker thread, from the
 * wake-up.
 */
void lc_defer_drain(struct lc_defer *q);

/**
 * The answer ready for wsi, removed from the parked requests (free it
 * with lc_defer_free after writing it), or NULL. Worker thread, from the
 * connection's writeable callback.
 */
struct lc_deferred *lc_defer_take(struct lc_defer *q, struct lws *wsi);

void lc_defer_free(struct lc_deferred *d);

/** The connection is closing: its parked request, if any, is dropped. */
void lc_defer_forget(struct lc_defer *q, struct lws *wsi);

#endif
