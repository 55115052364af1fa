/*
 * Parked HTTP requests and the mailbox of their answers (see defer.h).
 *
 * Threads: the worker thread, except lc_defer_answer (any thread: it
 * takes the lock and calls lws_cancel_service, the one lws call safe from
 * another thread).
 *
 * A note on lifetime: a ticket is freed by the worker only once it has
 * been answered, because the producer may hold it until then; a closed
 * connection only clears the ticket's wsi. So a slow answer for a client
 * that left costs its ticket until the answer comes, and nothing else.
 */
#define _GNU_SOURCE
#include "lc/defer.h"

#include <stdlib.h>

void
lc_defer_init(struct lc_defer *q)
{
	pthread_mutex_init(&q->lock, NULL);
	q->done = q->pending = NULL;
	q->npending = 0;
	q->ctx = NULL;
}

void
lc_defer_free(struct lc_deferred *d)
{
	if (!d)
		return;
	free(d->body);
	free(d);
}

void
lc_defer_cleanup(struct lc_defer *q)
{
	struct lc_deferred *d, *next;

	for (d = q->pending; d; d = next) {
		next = d->next;
		lc_defer_free(d);
	}
	q->pending = q->done = NULL;
	q->npending = 0;
	pthread_mutex_destroy(&q->lock);
}

void
lc_defer_start(struct lc_defer *q, struct lws_context *ctx)
{
	pthread_mutex_lock(&q->lock);
	q->ctx = ctx;
	pthread_mutex_unlock(&q->lock);
}

struct lc_deferred *
lc_defer_park(struct lc_defer *q, struct lws *wsi)
{
	struct lc_deferred *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->q = q;
	d->wsi = wsi;
	d->next = q->pending;
	q->pending = d;
	q->npending++;
	/* Never parked forever: lws closes it if no answer comes. */
	lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, 60);
	return d;
}

static void
unlink_pending(struct lc_defer *q, struct lc_deferred *d)
{
	for (struct lc_deferred **pp = &q->pending; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			q->npending--;
			return;
		}
}

void
lc_defer_unpark(struct lc_deferred *d)
{
	if (d->wsi)
		lws_set_timeout(d->wsi, NO_PENDING_TIMEOUT, 0);
	unlink_pending(d->q, d);
	lc_defer_free(d);
}

void
lc_defer_answer(struct lc_deferred *d, int status, char *body, size_t len)
{
	struct lc_defer *q = d->q;
	struct lws_context *ctx;

	d->status = status;
	d->body = body;
	d->len = len;
	pthread_mutex_lock(&q->lock);
	d->answered = true;
	d->done = q->done;
	q->done = d;
	ctx = q->ctx;
	pthread_mutex_unlock(&q->lock);
	if (ctx)
		lws_cancel_service(ctx);
}

void
lc_defer_drain(struct lc_defer *q)
{
	struct lc_deferred *d, *next;

	pthread_mutex_lock(&q->lock);
	d = q->done;
	q->done = NULL;
	pthread_mutex_unlock(&q->lock);
	for (; d; d = next) {
		next = d->done;
		if (!d->wsi) {
			unlink_pending(q, d);
			lc_defer_free(d);
			continue;
		}
		d->ready = true;
		lws_callback_on_writable(d->wsi);
	}
}

struct lc_deferred *
lc_defer_take(struct lc_defer *q, struct lws *wsi)
{
	for (struct lc_deferred *d = q->pending; d; d = d->next)
		if (d->wsi == wsi && d->ready) {
			unlink_pending(q, d);
			lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
			return d;
		}
	return NULL;
}

void
lc_defer_forget(struct lc_defer *q, struct lws *wsi)
{
	if (!q->npending)
		return;
	for (struct lc_deferred *d = q->pending; d; d = d->next) {
		if (d->wsi != wsi)
			continue;
		d->wsi = NULL;
		/* Taken from the mailbox already: nobody else will free it. */
		if (d->ready) {
			unlink_pending(q, d);
			lc_defer_free(d);
		}
		return;
	}
}
