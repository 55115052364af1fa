/*
 * The like API: POST / DELETE /v1/likes, as a query (?url=U&n=K) or a JSON
 * body (one like or a batch), into the worker's delta source.
 *
 * Threads: the worker thread serving the request.
 *
 * A note on request bodies in lws 4.1.6: a POST without Content-Length is
 * treated by lws as a 100 MB body, bodies are not range-checked, and
 * chunked request bodies are not decoded. So: a POST without a length has
 * no body (RFC 9112) and is answered at once with "Connection: close"
 * (lws would otherwise read the next request as body); a body longer than
 * max_body_bytes is refused from its Content-Length before a byte is read;
 * chunked bodies get 411. Bodies are collected by http.c into the
 * request's buffer, grown as bytes arrive within the process-wide
 * max_body_bytes_in_flight, and handled at LWS_CALLBACK_HTTP_BODY_COMPLETION.
 */
#define _GNU_SOURCE
#include "lc/http_likes.h"
#include "lc/bridge.h"
#include "lc/http_policy.h"
#include "lc/http_query.h"
#include "lc/http_reply.h"
#include "lc/idem.h"
#include "lc/parse.h"
#include "lc/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct lc_limits
limits_of(struct lc_worker *w)
{
	const struct lc_config *c = w->srv->cfg;

	return (struct lc_limits){.max_url_bytes = (size_t)c->max_url_bytes,
				  .max_batch_items = (size_t)c->max_batch_items,
				  .max_json_depth = c->max_json_depth};
}

static void
count_accepted(struct lc_worker *w, const struct lc_like *items, size_t n)
{
	uint64_t l = 0, u = 0;

	for (size_t i = 0; i < n; i++) {
		if (items[i].n > 0)
			l += (uint64_t)items[i].n;
		else
			u += (uint64_t)-items[i].n;
	}
	LC_STAT_ADD(w->stats.likes_accepted, l);
	LC_STAT_ADD(w->stats.unlikes_accepted, u);
}

/* A like request ready to apply: one like or a batch. */
struct job {
	struct lc_worker *w;
	struct lws *wsi;
	const struct lc_like *items;
	size_t n;
	bool batch;
	char extra[64]; /* headers for the answer (Retry-After) */
};

static void
answer_error(struct lc_idem_answer *ans, int status, const char *code,
	     const char *message)
{
	ans->status = status;
	ans->len = (size_t)snprintf(ans->body, sizeof(ans->body),
				    "{\"error\":\"%s\",\"message\":\"%s\"}",
				    code, message);
}

/*
 * Applies a job and writes its answer into ans. Returns true when the
 * answer is the request's outcome (the like was counted), which an
 * idempotency key then remembers; false for a refusal the client should
 * retry (shutting down, rate limited, out of memory), never remembered.
 * *after_seq: the dispatch tick after which the like is merged for sure
 * (read after adding: the shard it went into is swapped by then).
 */
static bool
job_apply(void *arg, struct lc_idem_answer *ans, uint64_t *after_seq)
{
	struct job *j = arg;
	struct lc_worker *w = j->w;
	int64_t count = 0;
	int wait, rc;

	j->extra[0] = '\0';
	if (atomic_load_explicit(&w->srv->draining, memory_order_relaxed)) {
		snprintf(j->extra, sizeof(j->extra), "retry-after: 1\r\n");
		answer_error(ans, 503, "shutting_down",
			     "server is shutting down");
		return false;
	}
	wait = lc_worker_rate_take(w, j->wsi, j->batch ? (int64_t)j->n : 1);
	if (wait) {
		snprintf(j->extra, sizeof(j->extra), "retry-after: %d\r\n",
			 wait);
		answer_error(ans, 429, "rate_limited",
			     "too many likes from this address; retry later");
		return false;
	}
	rc = j->batch
		 ? lc_source_add_batch(&w->source, w->srv->counter, j->items,
				       j->n)
		 : lc_source_add(&w->source, w->srv->counter, j->items[0].url,
				 j->items[0].url_len, j->items[0].n, &count);
	if (rc == LC_EFULL) {
		/* Existing URLs keep working; new ones wait for room. */
		answer_error(ans, 507, "url_limit",
			     "the server holds max_urls distinct URLs; likes "
			     "of URLs it already counts are accepted, new "
			     "URLs are refused");
		return false;
	}
	if (rc) {
		answer_error(ans, 503, "out_of_memory", "server out of memory");
		return false;
	}
	*after_seq =
	    atomic_load_explicit(&w->srv->dispatch->seq, memory_order_acquire) +
	    2;
	count_accepted(w, j->items, j->n);
	ans->status = 200;
	if (j->batch) {
		ans->len = (size_t)snprintf(ans->body, sizeof(ans->body),
					    "{\"accepted\":%zu}", j->n);
	} else {
		json_t *s =
		    json_stringn_nocheck(j->items[0].url, j->items[0].url_len);
		size_t n = 7;

		memcpy(ans->body, "{\"url\":", 7);
		if (s)
			n +=
			    json_dumpb(s, ans->body + 7, sizeof(ans->body) - 64,
				       JSON_ENCODE_ANY);
		json_decref(s);
		n += (size_t)snprintf(ans->body + n, sizeof(ans->body) - n,
				      ",\"count\":%lld}", (long long)count);
		ans->len = n;
	}
	return true;
}

/*
 * Runs a job and answers it. With an Idempotency-Key, a retry of a like
 * already counted gets the first answer again (and is not counted).
 */
static int
job_run(struct lws *wsi, struct lc_http_req *pss, struct job *j, bool close)
{
	/* On the worker's stack: no allocation per like. */
	struct lc_idem_answer answer, *ans = &answer;
	uint64_t after;
	bool replay = false;

	if (pss->idem_len && j->w->srv->idem && j->w->kv &&
	    !lc_idem_lookup(j->w->srv->idem, pss->idem_key, pss->idem_len,
			    lc_now_ms(), ans)) {
		/* Cluster: the key may have been used on another node. */
		int64_t ttl = (int64_t)j->w->srv->cfg->idempotency_ttl_s * 1000;

		switch (lc_redis_kv_claim(j->w->kv, pss->idem_key,
					  pss->idem_len, ttl, ans)) {
		case LC_KV_ANSWERED:
			lc_idem_load(j->w->srv->idem, pss->idem_key,
				     pss->idem_len, ans->status, ans->body,
				     ans->len, lc_now_ms());
			replay = true;
			break;
		case LC_KV_PENDING:
			answer_error(ans, 409, "in_progress",
				     "a request with this Idempotency-Key is "
				     "being counted on another node; retry");
			snprintf(j->extra, sizeof(j->extra),
				 "retry-after: 1\r\n");
			break;
		case LC_KV_CLAIMED:
			replay = lc_idem_run(j->w->srv->idem, pss->idem_key,
					     pss->idem_len, lc_now_ms(),
					     job_apply, j, ans);
			/* Refused (429, 503): let a retry claim it again. */
			lc_redis_kv_settle(j->w->kv, pss->idem_key,
					   pss->idem_len, ttl,
					   ans->status == 200 ? ans : NULL);
			break;
		case LC_KV_UNAVAILABLE:
			replay = lc_idem_run(j->w->srv->idem, pss->idem_key,
					     pss->idem_len, lc_now_ms(),
					     job_apply, j, ans);
			break;
		}
	} else if (pss->idem_len && j->w->srv->idem)
		replay =
		    lc_idem_run(j->w->srv->idem, pss->idem_key, pss->idem_len,
				lc_now_ms(), job_apply, j, ans);
	else
		job_apply(j, ans, &after);
	return lc_http_reply_ex(
	    wsi, ans->status, "application/json", ans->body, ans->len,
	    replay ? "idempotent-replayed: true\r\n" : j->extra, close);
}

static int
like_one(struct lws *wsi, struct lc_worker *w, struct lc_http_req *pss,
	 const struct lc_like *like, bool close)
{
	struct job j = {w, wsi, like, 1, false, ""};

	return job_run(wsi, pss, &j, close);
}

/* The query form: ?url=U[&n=K]; DELETE makes it an unlike. */
static int
likes_query(struct lws *wsi, struct lc_worker *w, struct lc_http_req *pss,
	    bool close)
{
	char buf[LC_QUERY_URL_BYTES];
	const char *vals[1];
	size_t lens[1];
	struct lc_like like;
	struct lc_api_error err;
	int found;

	found =
	    lc_http_query(wsi, "url", buf, sizeof(buf), vals, lens, 1, &err);
	if (found <= 0) {
		if (!found)
			lc_api_error_set(&err, 400, "bad_url",
					 "url query parameter is missing");
		return lc_http_reply_api_error(wsi, &err, close);
	}
	like.url = vals[0];
	like.url_len = lens[0];
	like.n = 1;
	{
		char nbuf[32];
		const char *nv[1];
		size_t nl[1];
		int k = lc_http_query(wsi, "n", nbuf, sizeof(nbuf), nv, nl, 1,
				      &err);

		if (k < 0 ||
		    (k == 1 && lc_n_parse(nv[0], nl[0], &like.n, &err)))
			return lc_http_reply_api_error(wsi, &err, close);
	}
	if (pss->method == LC_M_DELETE)
		like.n = -like.n;
	return like_one(wsi, w, pss, &like, close);
}

int
lc_http_likes_body(struct lws *wsi, struct lc_worker *w,
		   struct lc_http_req *pss)
{
	struct lc_limits lim = limits_of(w);
	struct lc_likes likes;
	struct lc_api_error err;
	int rc;

	if (lc_http_query_has(wsi, "url"))
		return likes_query(wsi, w, pss, false);
	if (pss->method != LC_M_POST || !pss->body_len)
		return lc_http_error(wsi, 400, "bad_url",
				     "url query parameter or JSON body "
				     "required");
	if (lc_likes_parse(pss->body, pss->body_len, &lim, &likes, &err))
		return lc_http_reply_api_error(wsi, &err, false);
	if (!likes.batch) {
		rc = like_one(wsi, w, pss, &likes.one, false);
	} else {
		struct job j = {w, wsi, likes.items, likes.n, true, ""};

		rc = job_run(wsi, pss, &j, false);
	}
	lc_likes_free(&likes);
	return rc;
}

static bool
content_type_json(struct lws *wsi)
{
	char ct[128];
	int n = lws_hdr_copy(wsi, ct, sizeof(ct), WSI_TOKEN_HTTP_CONTENT_TYPE);

	if (n < 16 || strncasecmp(ct, "application/json", 16))
		return false;
	return !ct[16] || ct[16] == ';' || ct[16] == ' ';
}

/* LWS_CALLBACK_HTTP for /v1/likes. */
int
lc_http_likes_start(struct lws *wsi, struct lc_worker *w,
		    struct lc_http_req *pss)
{
	char cl[32];
	long long len = -1;

	if (pss->method != LC_M_POST && pss->method != LC_M_DELETE)
		return lc_http_error_ex(wsi, 405, "method_not_allowed",
					"use POST or DELETE",
					"allow: POST, DELETE\r\n", false);
	if (!lc_http_authorized(wsi, w->srv->cfg))
		return lc_http_error_ex(
		    wsi, 401, "unauthorized",
		    "likes need Authorization: Bearer <token>",
		    "www-authenticate: Bearer\r\n", true);
	pss->idem_len = 0;
	{
		int n = lws_hdr_custom_length(wsi, "idempotency-key:", 16);

		if (n >= 0) {
			char k[LC_IDEM_CLIENT_KEY_MAX + 1];

			if (n < 1 || n > LC_IDEM_CLIENT_KEY_MAX ||
			    lws_hdr_custom_copy(wsi, k, sizeof(k),
						"idempotency-key:", 16) != n ||
			    !(pss->idem_len = (uint8_t)lc_idem_make_key(
				  pss->idem_key, 'h', k, (size_t)n)))
				return lc_http_error_ex(
				    wsi, 400, "bad_request",
				    "Idempotency-Key must be 1 to 128 "
				    "printable ASCII characters",
				    NULL, false);
		}
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING))
		return lc_http_error_ex(
		    wsi, 411, "length_required",
		    "chunked bodies are not supported; send "
		    "Content-Length",
		    NULL, true);
	if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) >
	    0) {
		char *end;

		len = strtoll(cl, &end, 10);
		if (*end || len < 0)
			return lc_http_error_ex(wsi, 400, "bad_request",
						"bad Content-Length", NULL,
						true);
	}
	if (len > w->srv->cfg->max_body_bytes) {
		char msg[96];

		snprintf(msg, sizeof(msg), "body is %lld bytes, more than %d",
			 len, w->srv->cfg->max_body_bytes);
		return lc_http_error_ex(wsi, 413, "too_large", msg, NULL, true);
	}
	if (len < 0)
		/* No length: no body. lws would wait for one; close after. */
		return likes_query(wsi, w, pss, pss->method == LC_M_POST);
	if (len == 0) {
		if (pss->method == LC_M_DELETE)
			return likes_query(wsi, w, pss, false);
		/* lws calls BODY_COMPLETION next, headers still attached. */
		pss->body_wanted = true;
		return 0;
	}
	if (!lc_http_query_has(wsi, "url") && !content_type_json(wsi))
		return lc_http_error_ex(wsi, 415, "unsupported_media_type",
					"send Content-Type: application/json",
					NULL, true);
	/* Not reserved: http.c grows the buffer as bytes arrive (issue 10). */
	pss->body_expected = (size_t)len;
	pss->body_wanted = true;
	pss->deadline_ms = lc_mono_ms() + w->srv->cfg->http_timeout_ms;
	return 0;
}
