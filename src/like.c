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

#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
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
 * Appends s (n bytes, already validated: no control characters) as a JSON
 * string, as jansson would write it. Returns false when it does not fit.
 */
static bool
put_json_string(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
	size_t k = *len;

	if (k + n + 2 > cap)
		return false;
	buf[k++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f)
			return false; /* not a validated string: jansson */
		if (ch == '"' || ch == '\\') {
			if (k + 2 + (n - i) + 1 > cap)
				return false;
			buf[k++] = '\\';
		}
		buf[k++] = (char)ch;
	}
	if (k + 1 > cap)
		return false;
	buf[k++] = '"';
	*len = k;
	return true;
}

/* The answer of answer_count written directly; false: use jansson. */
static bool
fast_answer(struct lc_like_answer *out, const struct lc_like_req *r,
	    const char *what, int64_t value)
{
	char *b = out->a.body;
	size_t cap = sizeof(out->a.body), n = 0;
	int k;

	if (r->ws_id) {
		k = snprintf(b, cap, "{\"type\":\"%s\",\"id\":",
			     r->views ? "viewed" : "liked");
		n = (size_t)k;
		if (!put_json_string(b, cap, &n, r->ws_id, r->ws_id_len) ||
		    n + 8 > cap)
			return false;
		memcpy(b + n, ",\"url\":", 7);
		n += 7;
	} else {
		memcpy(b, "{\"url\":", 7);
		n = 7;
	}
	if (!put_json_string(b, cap, &n, r->items[0].url, r->items[0].url_len))
		return false;
	k = snprintf(b + n, cap - n, ",\"%s\":%" PRId64 "}", what, value);
	if (k < 0 || (size_t)k >= cap - n)
		return false;
	out->a.len = n + (size_t)k;
	return true;
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
	/* The common case without an allocation (S1 is mostly this). */
	if (fast_answer(out, r, what, value))
		return;
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
 * A key in cluster mode, once Redis answered its claim (or did not in
 * time): count, or answer with another node's first answer, or 409.
 * Counted or not, a claim of ours is settled: with the answer, or
 * released for a refusal a retry may get past.
 */
static void
finish_cluster_key(struct lc_worker *w, const struct lc_like_req *r,
		   enum lc_kv_claim res, struct lc_like_answer *out,
		   struct apply *x)
{
	struct lc_idem *t = w->srv->idem;
	int64_t ttl = (int64_t)w->srv->cfg->idempotency_ttl_s * 1000;
	struct lc_kv_job *settle;

	switch (res) {
	case LC_KV_ANSWERED:
		lc_idem_load(t, r->key, r->key_len, out->a.status, out->a.body,
			     out->a.len, lc_now_ms());
		replayed(out);
		return;
	case LC_KV_PENDING:
		refuse(out, 409, "in_progress",
		       "a request with this key is being counted on another "
		       "node; retry",
		       1);
		return;
	case LC_KV_CLAIMED:
	case LC_KV_UNAVAILABLE:
		/* UNAVAILABLE too: Redis may run the claim late. */
		if (lc_idem_run(t, r->key, r->key_len, lc_now_ms(), apply, x,
				&out->a))
			replayed(out);
		break;
	}
	settle = calloc(1, sizeof(*settle));
	if (!settle)
		return; /* the claim expires after LC_KV_PENDING_MS */
	settle->settle = true;
	settle->release = out->a.status != 200;
	memcpy(settle->key, r->key, r->key_len);
	settle->klen = r->key_len;
	settle->ttl_ms = ttl;
	settle->ans = out->a;
	lc_bridge_kv_submit(w->srv->bridge, settle);
}

static void
release_claim(struct lc_like_job *j)
{
	struct lc_kv_job *rel;

	if (j->kv.result != LC_KV_CLAIMED || !(rel = calloc(1, sizeof(*rel))))
		return;
	rel->settle = rel->release = true;
	memcpy(rel->key, j->kv.key, j->kv.klen);
	rel->klen = j->kv.klen;
	lc_bridge_kv_submit(j->w->srv->bridge, rel);
}

void
lc_like_job_unref(struct lc_like_job *j)
{
	if (j && atomic_fetch_sub(&j->refs, 1) == 1)
		free(j);
}

/* The worker's thread: the bridge answered the claim. */
static void
job_resume(struct lc_worker_call *c)
{
	struct lc_like_job *j =
	    (struct lc_like_job *)((char *)c -
				   offsetof(struct lc_like_job, call));
	struct apply x = {j->w, &j->req, &j->ans};

	if (!j->wsi) {
		/* The client went: nothing counted, the claim released. */
		release_claim(j);
	} else {
		j->ans.a = j->kv.ans;
		finish_cluster_key(j->w, &j->req, j->kv.result, &j->ans, &x);
		j->finish(j);
	}
	lc_like_job_unref(j);
}

/* The key thread: hand the answer to the worker. */
static void
claim_done(struct lc_kv_job *kv, void *arg)
{
	struct lc_like_job *j = arg;

	(void)kv;
	if (!lc_worker_call(j->w, &j->call)) {
		release_claim(j);
		lc_like_job_unref(j);
	}
}

/*
 * A copy of the request (its strings live in buffers the transport frees
 * when its callback returns) and the claim handed to the bridge.
 */
static struct lc_like_job *
defer(struct lc_worker *w, const struct lc_like_req *r)
{
	size_t bytes = r->ws_id_len + r->key_len + 2;
	struct lc_like_job *j;
	struct lc_like *items;
	char *p;

	for (size_t i = 0; i < r->n; i++)
		bytes += r->items[i].url_len + 1;
	if (r->n > 1)
		bytes += r->n * sizeof(struct lc_like) + sizeof(void *);
	j = calloc(1, sizeof(*j) + bytes);
	if (!j)
		return NULL;
	p = (char *)(j + 1);
	items = &j->items1;
	if (r->n > 1) {
		p += sizeof(void *) - (uintptr_t)p % sizeof(void *);
		items = (struct lc_like *)p;
		p += r->n * sizeof(*items);
	}
	for (size_t i = 0; i < r->n; i++) {
		items[i] = r->items[i];
		items[i].url = memcpy(p, r->items[i].url, r->items[i].url_len);
		p += r->items[i].url_len + 1;
	}
	j->req = *r;
	j->req.items = items;
	j->req.key = memcpy(p, r->key, r->key_len);
	p += r->key_len + 1;
	if (r->ws_id)
		j->req.ws_id = memcpy(p, r->ws_id, r->ws_id_len);
	j->w = w;
	j->wsi = r->wsi;
	j->req.wsi = r->wsi;
	j->call.fn = job_resume;
	atomic_init(&j->refs, 2);
	memcpy(j->kv.key, r->key, r->key_len);
	j->kv.klen = r->key_len;
	j->kv.done = claim_done;
	j->kv.done_arg = j;
	return j;
}

void
lc_like_apply(struct lc_worker *w, const struct lc_like_req *r,
	      struct lc_like_answer *out)
{
	struct apply x = {w, r, out};
	struct lc_idem *t = w->srv->idem;
	uint64_t after;

	memset(&out->err, 0, sizeof(out->err));
	out->deferred = NULL;
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
	else if (w->srv->bridge &&
		 !lc_idem_lookup(t, r->key, r->key_len, lc_now_ms(), &out->a)) {
		/* Unknown here: claimed in Redis, answered later. */
		struct lc_like_job *j = defer(w, r);

		if (!j)
			refuse(out, 503, "out_of_memory",
			       "server out of memory", 1);
		else {
			out->deferred = j;
			lc_bridge_kv_submit(w->srv->bridge, &j->kv);
		}
	} else if (lc_idem_run(t, r->key, r->key_len, lc_now_ms(), apply, &x,
			       &out->a))
		replayed(out);
}
