/*
 * The read API: GET /v1/counts, /v1/top, /v1/history, /v1/stats,
 * /healthz, /readyz and /metrics.
 *
 * Threads: the worker thread serving the request. Counts are the counter
 * table as of the last tick plus this worker's pending likes; history
 * is read by the worker's history reader thread (history.h), never on the
 * event loop: the request is parked and answered when the rows come.
 */
#define _GNU_SOURCE
#include "lc/http_read.h"
#include "lc/batcher.h"
#include "lc/hash.h"
#include "lc/history.h"
#include "lc/http_query.h"
#include "lc/http_reply.h"
#include "lc/metrics.h"
#include "lc/worker.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A URL's watching figure now (0 for a URL not held). */
static int
watching_of(struct lc_worker *w, const char *url, size_t len)
{
	struct lc_entry *e =
	    lc_counter_find(w->srv->counter, url, len, lc_hash(url, len));

	return e ? lc_entry_watching(e) : 0;
}

int
lc_http_get_counts(struct lws *wsi, struct lc_worker *w)
{
	size_t max = (size_t)w->srv->cfg->max_urls_per_request;
	const char *vals[LC_URLS_PER_REQUEST_MAX];
	size_t lens[LC_URLS_PER_REQUEST_MAX];
	struct lc_api_error err;
	char *buf = malloc(LC_QUERY_URLS_BYTES(max));
	json_t *counts, *root;
	int n;

	if (!buf)
		return lc_http_error(wsi, 503, "out_of_memory",
				     "out of memory");
	assert(max <= LC_URLS_PER_REQUEST_MAX); /* config.c's bound */
	n = lc_http_query(wsi, "url", buf, LC_QUERY_URLS_BYTES(max), vals, lens,
			  (int)max, &err);
	if (n <= 0) {
		free(buf);
		if (!n)
			lc_api_error_set(
			    &err, 400, "bad_url",
			    "at least one url query parameter needed");
		return lc_http_reply_api_error(wsi, &err, false);
	}
	counts = json_object();
	for (int i = 0; i < n; i++) {
		/* Every like this node acknowledged, whichever worker. */
		struct lc_counts c = lc_dispatch_read(
		    w->srv->dispatch, w->srv->counter, vals[i], lens[i]);
		char ts[32];
		json_t *o;

		o = json_pack("{s:I, s:I, s:I, s:I, s:i}", "count",
			      (json_int_t)(c.likes - c.unlikes), "likes",
			      (json_int_t)c.likes, "unlikes",
			      (json_int_t)c.unlikes, "views",
			      (json_int_t)c.views, "watching",
			      watching_of(w, vals[i], lens[i]));
		if (o && c.updated_ms) {
			lc_iso8601_ms(c.updated_ms, ts);
			json_object_set_new(o, "updated_at", json_string(ts));
		} else if (o)
			json_object_set_new(o, "updated_at", json_null());
		/* The key is the validated url: use the length-aware setter. */
		json_object_setn_new_nocheck(counts, vals[i], lens[i], o);
	}
	free(buf);
	root = json_pack("{s:o}", "counts", counts);
	return lc_http_reply_json(wsi, 200, root);
}

int
lc_http_get_top(struct lws *wsi, struct lc_worker *w)
{
	static const char *const by_names[LC_TOP_KINDS] = {"count", "views",
							   "watching"};
	struct lc_api_error err;
	long long limit;
	struct lc_top *t;
	json_t *arr, *root;
	char buf[32];
	const char *vals[1];
	size_t lens[1];
	int by = LC_TOP_COUNT, n;

	if (lc_http_query_int(wsi, "limit", 1, w->srv->cfg->top_limit_max, 10,
			      &limit, &err))
		return lc_http_reply_api_error(wsi, &err, false);
	n = lc_http_query(wsi, "by", buf, sizeof(buf), vals, lens, 1, &err);
	if (n < 0)
		return lc_http_reply_api_error(wsi, &err, false);
	if (n == 1) {
		for (by = 0; by < LC_TOP_KINDS; by++)
			if (lens[0] == strlen(by_names[by]) &&
			    !memcmp(vals[0], by_names[by], lens[0]))
				break;
		if (by == LC_TOP_KINDS)
			return lc_http_error(wsi, 400, "bad_request",
					     "by must be count, views or "
					     "watching");
	}
	t = lc_dispatch_top_get_by(w->srv->dispatch, (enum lc_top_by)by);
	arr = json_array();
	for (size_t i = 0; i < t->n && i < (size_t)limit; i++)
		json_array_append_new(
		    arr,
		    json_pack("{s:s%, s:I, s:I, s:I}", "url", t->items[i].url,
			      t->items[i].url_len, "count",
			      (json_int_t)t->items[i].count, "views",
			      (json_int_t)t->items[i].views, "watching",
			      (json_int_t)t->items[i].watching));
	lc_dispatch_top_put(t);
	root = json_pack("{s:o}", "top", arr);
	return lc_http_reply_json(wsi, 200, root);
}

int
lc_http_get_history(struct lws *wsi, struct lc_worker *w)
{
	char buf[LC_QUERY_URL_BYTES];
	const char *vals[1];
	size_t lens[1];
	struct lc_api_error err;
	int64_t now_s = lc_now_ms() / 1000, since, until;
	struct lc_deferred *d;
	int n;

	n = lc_http_query(wsi, "url", buf, sizeof(buf), vals, lens, 1, &err);
	if (n <= 0) {
		if (!n)
			lc_api_error_set(&err, 400, "bad_url",
					 "url query parameter is missing");
		return lc_http_reply_api_error(wsi, &err, false);
	}
	if (lc_http_query_time(wsi, "until", now_s / 60 * 60 + 60, &until,
			       &err) ||
	    lc_http_query_time(wsi, "since", until - 86400, &since, &err))
		return lc_http_reply_api_error(wsi, &err, false);
	/*
	 * Off the loop: the history reader thread queries SQLite and resumes
	 * this request with the answer (history.h, defer.h).
	 */
	d = lc_defer_park(&w->defer, wsi);
	if (!d)
		return lc_http_error(wsi, 503, "out_of_memory",
				     "out of memory");
	if (lc_history_submit(w->history, d, vals[0], lens[0], since, until,
			      10080)) {
		lc_defer_unpark(d);
		return lc_http_error(wsi, 503, "unavailable",
				     "too many history reads waiting");
	}
	return 0;
}

static int
get_text(struct lws *wsi, char *s, size_t len, const char *type)
{
	int rc;

	if (!s)
		return lc_http_error(wsi, 503, "out_of_memory",
				     "out of memory");
	rc = lc_http_reply(wsi, 200, type, s, len,
			   "cache-control: no-store\r\n");
	free(s);
	return rc;
}

int
lc_http_get_readyz(struct lws *wsi, struct lc_worker *w)
{
	const struct lc_batcher_stats *bs = lc_batcher_stats(w->srv->batcher);
	const char *status = NULL, *msg = NULL;
	char body[160];

	if (atomic_load(&w->srv->draining) || atomic_load(&w->srv->leaving)) {
		status = "draining";
		msg = "server is shutting down";
	} else if (!atomic_load(&w->srv->ready)) {
		status = "starting";
		msg = "server is starting";
	} else if (!atomic_load(&bs->file_ok)) {
		status = "degraded";
		msg = "the database file was lost; writing every count again";
	} else if (!atomic_load(&bs->healthy)) {
		status = "degraded";
		msg = "the database cannot be written";
	}
	if (!status)
		return lc_http_reply(wsi, 200, "application/json",
				     "{\"status\":\"ready\"}", 18, NULL);
	snprintf(
	    body, sizeof(body),
	    "{\"status\":\"%s\",\"error\":\"not_ready\",\"message\":\"%s\"}",
	    status, msg);
	return lc_http_reply(wsi, 503, "application/json", body, strlen(body),
			     NULL);
}

int
lc_http_get_stats(struct lws *wsi, struct lc_worker *w)
{
	size_t len = 0;
	char *s = lc_stats_render(w->srv, &len);

	return get_text(wsi, s, len, "application/json");
}

int
lc_http_get_metrics(struct lws *wsi, struct lc_worker *w)
{
	size_t len = 0;
	char *s = lc_metrics_render(w->srv, &len);

	return get_text(wsi, s, len, "text/plain; version=0.0.4");
}

int
lc_http_get_healthz(struct lws *wsi)
{
	return lc_http_reply(wsi, 200, "application/json",
			     "{\"status\":\"ok\"}", 15, NULL);
}
