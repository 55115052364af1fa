/*
 * Writes the answer of a parked request (defer.h, http_defer.h).
 *
 * Threads: the worker thread, from LWS_CALLBACK_HTTP_WRITEABLE.
 */
#define _GNU_SOURCE
#include "lc/http_defer.h"
#include "lc/defer.h"
#include "lc/http_reply.h"
#include "lc/worker.h"

int
lc_http_resume(struct lws *wsi)
{
	struct lc_worker *w = lc_worker_of(wsi);
	struct lc_deferred *d = lc_defer_take(&w->defer, wsi);
	int rc;

	if (!d)
		return 0;
	rc = lc_http_reply(wsi, d->status, "application/json",
			   d->body ? d->body : "", d->len, NULL);
	lc_defer_free(d);
	return rc;
}
