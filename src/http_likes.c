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
#include "lc/http_policy.h"
#include "lc/http_query.h"
#include "lc/http_reply.h"
#include "lc/idem.h"
#include "lc/like.h"
#include "lc/parse.h"
#include "lc/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void deferred_ready(struct lc_like_job *j);
static int answer(struct lws *wsi, const struct lc_like_answer *ans,
		  bool close);

static struct lc_limits
limits_of(struct lc_worker *w)
{
	const struct lc_config *c = w->srv->cfg;

	return (struct lc_limits){.max_url_bytes = (size_t)c->max_url_bytes,
				  .max_batch_items = (size_t)c->max_batch_items,
				  .max_json_depth = c->max_json_depth};
}

/*
 * Runs a request through the one like path and answers it. With an
 * Idempotency-Key, a retry of a like already counted gets the first
 * answer again (and is not counted).
 */
static int
run(struct lws *wsi, struct lc_worker *w, struct lc_http_req *pss,
    const struct lc_like *items, size_t n, bool batch, bool close)
{
	struct lc_like_req r = {.items = items,
				.n = n,
				.batch = batch,
				.views = pss->route == LC_ROUTE_VIEWS,
				.authorized = true, /* checked at the headers */
				.wsi = wsi,
				.key = pss->idem_len ? pss->idem_key : NULL,
				.key_len = pss->idem_len};
	/* On the worker's stack: no allocation per like. */
	struct lc_like_answer ans;

	lc_like_apply(w, &r, &ans);
	if (ans.deferred) {
		/* Answered from HTTP_WRITEABLE once the claim comes back. */
		ans.deferred->finish = deferred_ready;
		pss->like_job = ans.deferred;
		pss->like_ready = false;
		pss->like_close = close;
		return 0;
	}
	return answer(wsi, &ans, close);
}

/* The worker's thread: the claim came back, the answer is in j->ans. */
static void
deferred_ready(struct lc_like_job *j)
{
	struct lc_http_req *pss = lws_wsi_user(j->wsi);

	pss->like_ready = true;
	lws_callback_on_writable(j->wsi);
}

int
lc_http_likes_writeable(struct lws *wsi, struct lc_http_req *pss)
{
	struct lc_like_job *j = pss->like_job;
	int rc;

	if (!j || !pss->like_ready)
		return 0;
	pss->like_job = NULL;
	rc = answer(wsi, &j->ans, pss->like_close);
	lc_like_job_unref(j);
	return rc;
}

void
lc_http_likes_closed(struct lc_http_req *pss)
{
	if (!pss->like_job)
		return;
	pss->like_job->wsi = NULL; /* it releases its claim alone */
	lc_like_job_unref(pss->like_job);
	pss->like_job = NULL;
}

static int
answer(struct lws *wsi, const struct lc_like_answer *ans, bool close)
{
	char extra[48] = "";

	if (ans->replayed)
		snprintf(extra, sizeof(extra), "idempotent-replayed: true\r\n");
	else if (ans->retry_after)
		snprintf(extra, sizeof(extra), "retry-after: %d\r\n",
			 ans->retry_after);
	return lc_http_reply_ex(wsi, ans->a.status, "application/json",
				ans->a.body, ans->a.len, extra, close);
}

/* The query form: ?url=U[&n=K]; DELETE makes it an unlike (likes). */
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
	return run(wsi, w, pss, &like, 1, false, close);
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
	/* Views only grow: nothing of a batch with a bad n is counted. */
	if (pss->route == LC_ROUTE_VIEWS &&
	    lc_views_check(likes.batch ? likes.items : &likes.one,
			   likes.batch ? likes.n : 1, likes.batch, &err)) {
		lc_likes_free(&likes);
		return lc_http_reply_api_error(wsi, &err, false);
	}
	if (!likes.batch)
		rc = run(wsi, w, pss, &likes.one, 1, false, false);
	else
		rc = run(wsi, w, pss, likes.items, likes.n, true, false);
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

/* LWS_CALLBACK_HTTP for /v1/likes and /v1/views. */
int
lc_http_likes_start(struct lws *wsi, struct lc_worker *w,
		    struct lc_http_req *pss)
{
	bool views = pss->route == LC_ROUTE_VIEWS;
	char cl[32];
	long long len = -1;

	if (views && pss->method != LC_M_POST)
		return lc_http_error_ex(wsi, 405, "method_not_allowed",
					"use POST (views only grow)",
					"allow: POST\r\n",
					pss->method == LC_M_DELETE);
	if (pss->method != LC_M_POST && pss->method != LC_M_DELETE)
		return lc_http_error_ex(wsi, 405, "method_not_allowed",
					"use POST or DELETE",
					"allow: POST, DELETE\r\n", false);
	if (!lc_http_authorized(wsi, w->srv->cfg))
		return lc_http_error_ex(
		    wsi, 401, "unauthorized",
		    views ? "views need Authorization: Bearer <token>"
			  : "likes need Authorization: Bearer <token>",
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
				  pss->idem_key, views ? 'H' : 'h', k,
				  (size_t)n)))
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
