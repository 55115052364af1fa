/*
 * The one like path (see like.h).
 *
 * Threads: the worker thread serving the request. lc_idem_run calls
 * apply() under the key table's lock; apply takes the worker's source
 * lock and then, for the answer, every source's lock (lock order: keys,
 * then sources in index order).
 *
 * A note on answers: the count in an answer is read with
 * lc_dispatch_read after the like went into the worker's shard, so it
 * holds every like this node acknowledged before, whichever worker took
 * it ("read your writes"), not the last tick's table plus this worker's
 * shard. It costs one lock per worker per answer; batches, which answer
 * only how many items they took, skip it.
 */
#define _GNU_SOURCE
#include "lc/like.h"
#include "lc/bridge.h"
#include "lc/worker.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* The error answer in both forms. Returns false (not counted). */
static bool
refuse(struct lc_like_answer *out, int status, const char *code,
       const char *message, int retry_after)
{
	lc_api_error_set(&out->err, status, code, "%s", message);
	out->retry_after = retry_after;
	out->a.status = status;
	out->a.len = (size_t)snprintf(out->a.body, sizeof(out->a.body),
				      "{\"error\":\"%s\",\"message\":\"%s\"}",
				      code, message);
	return false;
}

static void
count_accepted(struct lc_worker *w, const struct lc_like *items, size_t n,
	       bool views)
{
	uint64_t l = 0, u = 0;

	for (size_t i = 0; i < n; i++) {
		if (views)
			LC_STAT_ADD(w->stats.views_accepted,
				    (uint64_t)items[i].n);
		else if (items[i].n > 0)
			l += (uint64_t)items[i].n;
		else
			u += (uint64_t)-items[i].n;
	}
	LC_STAT_ADD(w->stats.likes_accepted, l);
	LC_STAT_ADD(w->stats.unlikes_accepted, u);
}

/*
 * The answer to one counted like or view: HTTP's {"url":U,"count":C} (or
 * "views":V), or the WebSocket ack {"type":"liked"|"viewed","id":..}.
 */
static void
answer_count(struct lc_like_answer *out, const struct lc_like_req *r,
	     int64_t value)
{
	const char *what = r->views ? "views" : "count";
	json_t *o;

	out->a.status = 200;
	if (r->ws_id)
		o = json_pack("{s:s, s:s%, s:s%, s:I}", "type",
			      r->views ? "viewed" : "liked", "id", r->ws_id,
			      r->ws_id_len, "url", r->items[0].url,
			      r->items[0].url_len, what, (json_int_t)value);
	else
		o = json_pack("{s:s%, s:I}", "url", r->items[0].url,
			      r->items[0].url_len, what, (json_int_t)value);
	out->a.len =
	    o ? json_dumpb(o, out->a.body, sizeof(out->a.body), JSON_COMPACT)
	      : 0;
	if (out->a.len > sizeof(out->a.body))
		out->a.len = 0; /* cannot happen: the body fits a 2 KB URL */
	json_decref(o);
}

struct apply {
	struct lc_worker *w;
	const struct lc_like_req *r;
	struct lc_like_answer *out;
};

/*
 * Counts the request and writes its answer. Returns true when the
 * answer is the request's outcome (counted), which a key then remembers;
 * false for a refusal the client should retry (shutting down, rate
 * limited, url_limit, out of memory), never remembered. *after_seq: the
 * tick after which the likes are merged for sure (read after adding: the
 * shard they went into is swapped by then).
 */
static bool
apply(void *arg, struct lc_idem_answer *ans, uint64_t *after_seq)
{
	struct apply *x = arg;
	struct lc_worker *w = x->w;
	const struct lc_like_req *r = x->r;
	struct lc_server *srv = w->srv;
	int wait, rc;

	(void)ans; /* x->out->a */
	if (atomic_load_explicit(&srv->draining, memory_order_relaxed))
		return refuse(x->out, 503, "shutting_down",
			      "server is shutting down", 1);
	wait = lc_worker_rate_take(w, r->wsi, r->batch ? (int64_t)r->n : 1);
	if (wait)
		return refuse(x->out, 429, "rate_limited",
			      "too many likes from this address; retry later",
			      wait);
	if (r->views)
		rc = lc_source_add_views(&w->source, srv->counter, r->items,
					 r->n);
	else if (r->batch)
		rc = lc_source_add_batch(&w->source, srv->counter, r->items,
					 r->n);
	else
		rc = lc_source_add(&w->source, srv->counter, r->items[0].url,
				   r->items[0].url_len, r->items[0].n, NULL);
	if (rc == LC_EFULL)
		/* Existing URLs keep working; new ones wait for room. */
		return refuse(x->out, 507, "url_limit",
			      "the server holds max_urls distinct URLs; likes "
			      "and views of URLs it already counts are "
			      "accepted, new URLs are refused",
			      0);
	if (rc)
		return refuse(x->out, 503, "out_of_memory",
			      "server out of memory", 1);
	*after_seq =
	    atomic_load_explicit(&srv->dispatch->seq, memory_order_acquire) + 2;
	count_accepted(w, r->items, r->n, r->views);
	if (r->batch) {
		x->out->a.status = 200;
		x->out->a.len =
		    (size_t)snprintf(x->out->a.body, sizeof(x->out->a.body),
				     "{\"accepted\":%zu}", r->n);
	} else {
		struct lc_counts c =
		    lc_dispatch_read(srv->dispatch, srv->counter,
				     r->items[0].url, r->items[0].url_len);

		answer_count(x->out, r,
			     r->views ? c.views
				      : lc_sat_add(c.likes, -c.unlikes));
	}
	return true;
}

/* The answer of a replay: a stored answer has no lc_api_error. */
static void
replayed(struct lc_like_answer *out)
{
	out->replayed = true;
	out->retry_after = 0;
}

/*
 * A key in cluster mode: claimed in Redis first, so a retry that reaches
 * another node is answered, not counted again.
 */
static void
apply_cluster_key(struct lc_worker *w, const struct lc_like_req *r,
		  struct lc_like_answer *out, struct apply *x)
{
	struct lc_idem *t = w->srv->idem;
	int64_t ttl = (int64_t)w->srv->cfg->idempotency_ttl_s * 1000;

	switch (lc_redis_kv_claim(w->kv, r->key, r->key_len, ttl, &out->a)) {
	case LC_KV_ANSWERED:
		lc_idem_load(t, r->key, r->key_len, out->a.status, out->a.body,
			     out->a.len, lc_now_ms());
		replayed(out);
		break;
	case LC_KV_PENDING:
		refuse(out, 409, "in_progress",
		       "a request with this key is being counted on another "
		       "node; retry",
		       1);
		break;
	case LC_KV_CLAIMED:
		if (lc_idem_run(t, r->key, r->key_len, lc_now_ms(), apply, x,
				&out->a))
			replayed(out);
		/* Refused (429, 503): a retry may claim it again. */
		lc_redis_kv_settle(w->kv, r->key, r->key_len, ttl,
				   out->a.status == 200 ? &out->a : NULL);
		break;
	case LC_KV_UNAVAILABLE:
		if (lc_idem_run(t, r->key, r->key_len, lc_now_ms(), apply, x,
				&out->a))
			replayed(out);
		break;
	}
}

void
lc_like_apply(struct lc_worker *w, const struct lc_like_req *r,
	      struct lc_like_answer *out)
{
	struct apply x = {w, r, out};
	struct lc_idem *t = w->srv->idem;
	uint64_t after;

	memset(&out->err, 0, sizeof(out->err));
	out->replayed = false;
	out->retry_after = 0;
	out->a.len = 0;
	if (!r->authorized) {
		refuse(out, 401, "unauthorized",
		       "likes and views need the write token (Authorization: "
		       "Bearer <token>, or ?token= when connecting a "
		       "WebSocket)",
		       0);
		return;
	}
	if (!r->key || !t)
		apply(&x, &out->a, &after);
	else if (w->kv &&
		 !lc_idem_lookup(t, r->key, r->key_len, lc_now_ms(), &out->a))
		apply_cluster_key(w, r, out, &x);
	else if (lc_idem_run(t, r->key, r->key_len, lc_now_ms(), apply, &x,
			     &out->a))
		replayed(out);
}
