/*
 * The HTTP transport: routing, the like API, reads, health, metrics and
 * static files.
 *
 * Threads: lws calls this on the worker thread that owns the connection.
 *
 * A note on request bodies in lws 4.1.6: a POST without Content-Length is
 * treated by lws as a 100 MB body, bodies are not range-checked, and
 * chunked request bodies are not decoded. So: a POST without a length has
 * no body (RFC 9112) and is answered at once with "Connection: close"
 * (lws would otherwise read the next request as body); a body longer than
 * max_body_bytes is refused from its Content-Length before a byte is read;
 * chunked bodies get 411. Bodies are collected into a per-connection buffer
 * and handled at LWS_CALLBACK_HTTP_BODY_COMPLETION.
 */
#define _GNU_SOURCE
#include "lc/batcher.h"
#include "lc/common.h"
#include "lc/hash.h"
#include "lc/parse.h"
#include "lc/server.h"
#include "lc/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum method { M_GET, M_POST, M_DELETE, M_HEAD, M_OPTIONS, M_OTHER };

struct http_pss {
	uint8_t route;	   /* enum lc_route */
	uint8_t method;	   /* enum method */
	bool body_wanted;  /* body is being collected */
	bool body_refused; /* already answered; ignore the rest */
	char *body;
	size_t body_len, body_cap;
	int64_t deadline_ms; /* whole-body deadline */
};

#define QUERY_BUF 8448 /* max_http_header_data + slack */

size_t
lc_http_pss_size(void)
{
	return sizeof(struct http_pss);
}

static struct lc_worker *
worker_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

static int
status_idx(int status)
{
	switch (status) {
#define X(c)                                                                   \
	case c:                                                                \
		return LC_S_##c;
		LC_STATUSES
#undef X
	}
	return LC_S_OTHER;
}

void
lc_http_count(struct lc_worker *w, enum lc_route route, int status)
{
	LC_STAT_ADD(w->stats.http[route][status_idx(status)], 1);
}

bool
lc_origin_allowed(const struct lc_config *cfg, const char *origin, size_t len)
{
	const char *p = cfg->allowed_origins;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		while (n && *p == ' ')
			p++, n--;
		while (n && p[n - 1] == ' ')
			n--;
		if ((n == 1 && *p == '*') ||
		    (n == len && !memcmp(p, origin, n)))
			return true;
		if (!e)
			break;
		p = e + 1;
	}
	return false;
}

int
lc_http_add_cors(struct lws *wsi, const struct lc_config *cfg,
		 unsigned char **p, unsigned char *end)
{
	char origin[256];
	int n;

	if (!strcmp(cfg->allowed_origins, "*"))
		return lws_add_http_header_by_name(
		    wsi, (const unsigned char *)"access-control-allow-origin:",
		    (const unsigned char *)"*", 1, p, end);
	/* A list: echo the caller's origin when it is on it. */
	n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
	if (n <= 0 || !lc_origin_allowed(cfg, origin, (size_t)n))
		return 0;
	return lws_add_http_header_by_name(
		   wsi, (const unsigned char *)"access-control-allow-origin:",
		   (const unsigned char *)origin, n, p, end) ||
	       lws_add_http_header_by_name(wsi, (const unsigned char *)"vary:",
					   (const unsigned char *)"Origin", 6,
					   p, end);
}

bool
lc_token_matches(const struct lc_config *cfg, const char *tok, size_t len)
{
	size_t tl = strlen(cfg->write_token);
	unsigned char diff = 0;

	if (len != tl)
		return false;
	/* Constant time over the token's length. */
	for (size_t i = 0; i < tl; i++)
		diff |= (unsigned char)(tok[i] ^ cfg->write_token[i]);
	return !diff;
}

bool
lc_http_authorized(struct lws *wsi, const struct lc_config *cfg)
{
	char h[300];
	int n;

	if (!cfg->write_token[0])
		return true;
	n = lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_HTTP_AUTHORIZATION);
	return n > 7 && !strncasecmp(h, "Bearer ", 7) &&
	       lc_token_matches(cfg, h + 7, (size_t)n - 7);
}

static int
reply_ex(struct lws *wsi, int status, const char *content_type,
	 const char *body, size_t len, const char *extra, bool close)
{
	struct lc_worker *w = worker_of(wsi);
	size_t extra_len = extra ? strlen(extra) : 0;
	unsigned char *start, *p, *end;
	struct http_pss *pss = lws_wsi_user(wsi);
	char *buf;

	buf = lc_worker_buf(w, len + extra_len + 512);
	if (!buf)
		return -1;
	start = p = (unsigned char *)buf + LWS_PRE;
	end = start + w->buf_cap;
	if (lws_add_http_header_status(wsi, (unsigned)status, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
					 (const unsigned char *)content_type,
					 (int)strlen(content_type), &p, end) ||
	    lws_add_http_header_content_length(wsi, len, &p, end))
		return -1;
	if (close && lws_add_http_header_by_token(
			 wsi, WSI_TOKEN_CONNECTION,
			 (const unsigned char *)"close", 5, &p, end))
		return -1;
	/* The API is cookie-free: allowed origins may read it (CORS). */
	if (pss && pss->route < LC_ROUTE_STATIC &&
	    lc_http_add_cors(wsi, w->srv->cfg, &p, end))
		return -1;
	if (extra_len) {
		memcpy(p, extra, extra_len);
		p += extra_len;
	}
	if (lws_finalize_http_header(wsi, &p, end))
		return -1;
	memcpy(p, body, len);
	p += len;
	if (pss)
		lc_http_count(w, pss->route, status);
	if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) <
	    (int)(p - start))
		return -1;
	if (close)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int
lc_http_reply(struct lws *wsi, int status, const char *content_type,
	      const char *body, size_t len, const char *extra_headers)
{
	return reply_ex(wsi, status, content_type, body, len, extra_headers,
			false);
}

static int
error_ex(struct lws *wsi, int status, const char *code, const char *message,
	 const char *extra, bool close)
{
	json_t *o = json_pack("{s:s, s:s}", "error", code, "message", message);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	int rc;

	json_decref(o);
	if (!s)
		return -1;
	rc = reply_ex(wsi, status, "application/json", s, strlen(s), extra,
		      close);
	free(s);
	return rc;
}

int
lc_http_error(struct lws *wsi, int status, const char *code,
	      const char *message)
{
	return error_ex(wsi, status, code, message, NULL, false);
}

static int
reply_err(struct lws *wsi, const struct lc_api_error *err, bool close)
{
	return error_ex(wsi, err->status, err->code, err->message, NULL, close);
}

/* Replies with a jansson value (reference stolen). */
static int
reply_json(struct lws *wsi, int status, json_t *v)
{
	char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
	int rc;

	json_decref(v);
	if (!s)
		return lc_http_error(wsi, 503, "out_of_memory",
				     "server out of memory");
	rc = lc_http_reply(wsi, status, "application/json", s, strlen(s), NULL);
	free(s);
	return rc;
}

int
lc_http_query(struct lws *wsi, const char *name, char *buf, size_t buflen,
	      const char **vals, size_t *lens, int max,
	      struct lc_api_error *err)
{
	struct lc_worker *w = worker_of(wsi);
	size_t nlen = strlen(name), used = 0;
	int found = 0;

	for (int idx = 0;; idx++) {
		char frag[QUERY_BUF];
		int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
					      WSI_TOKEN_HTTP_URI_ARGS, idx);
		size_t vlen;

		if (n < 0)
			break;
		if ((size_t)n <= nlen || strncmp(frag, name, nlen) ||
		    frag[nlen] != '=')
			continue;
		vlen = (size_t)n - nlen - 1;
		/* lws keeps a decoded %00 inside the fragment: refuse it. */
		if (strlen(frag + nlen + 1) != vlen) {
			lc_api_error_set(err, 400,
					 !strcmp(name, "url") ? "bad_url"
							      : "bad_request",
					 "%s contains a NUL byte", name);
			return -1;
		}
		if (found == max) {
			lc_api_error_set(err, 400, "too_many_urls",
					 "at most %d %s parameters per request",
					 max, name);
			return -1;
		}
		if (!strcmp(name, "url") &&
		    lc_url_check(frag + nlen + 1, vlen,
				 (size_t)w->srv->cfg->max_url_bytes, err))
			return -1;
		if (used + vlen + 1 > buflen) {
			lc_api_error_set(err, 400, "bad_request",
					 "query parameters too long");
			return -1;
		}
		memcpy(buf + used, frag + nlen + 1, vlen + 1);
		vals[found] = buf + used;
		lens[found] = vlen;
		used += vlen + 1;
		found++;
	}
	return found;
}

/* ------------------------------------------------------------------ */

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

/*
 * Likes per second per client IP: returns true when the client must wait,
 * with the 429 (and Retry-After) written and *rc set to what the callback
 * returns.
 */
static bool
rate_limited(struct lws *wsi, struct lc_worker *w, int64_t cost, bool close,
	     int *rc)
{
	char hdr[48];
	int wait = lc_worker_rate_take(w, wsi, cost);

	if (!wait)
		return false;
	snprintf(hdr, sizeof(hdr), "retry-after: %d\r\n", wait);
	*rc = error_ex(wsi, 429, "rate_limited",
		       "too many likes from this address; retry later", hdr,
		       close);
	return true;
}

/* {"url":U,"count":C} for one applied like. */
static int
reply_count(struct lws *wsi, const char *url, size_t len, int64_t count,
	    bool close)
{
	char body[2048 * 6 + 64];
	json_t *s = json_stringn_nocheck(url, len);
	size_t n;

	if (!s)
		return -1;
	memcpy(body, "{\"url\":", 7);
	n = 7 + json_dumpb(s, body + 7, sizeof(body) - 64, JSON_ENCODE_ANY);
	json_decref(s);
	n += (size_t)snprintf(body + n, sizeof(body) - n, ",\"count\":%lld}",
			      (long long)count);
	return reply_ex(wsi, 200, "application/json", body, n, NULL, close);
}

static int
like_one(struct lws *wsi, struct lc_worker *w, const struct lc_like *like,
	 bool close)
{
	int64_t count;
	int rc;

	if (atomic_load_explicit(&w->srv->draining, memory_order_relaxed))
		return error_ex(wsi, 503, "shutting_down",
				"server is shutting down", "retry-after: 1\r\n",
				close);
	if (rate_limited(wsi, w, 1, close, &rc))
		return rc;
	if (lc_source_add(&w->source, w->srv->counter, like->url, like->url_len,
			  like->n, &count))
		return error_ex(wsi, 503, "out_of_memory",
				"server out of memory", NULL, close);
	count_accepted(w, like, 1);
	return reply_count(wsi, like->url, like->url_len, count, close);
}

/* The query form: ?url=U[&n=K]; DELETE makes it an unlike. */
static int
likes_query(struct lws *wsi, struct lc_worker *w, struct http_pss *pss,
	    bool close)
{
	char buf[4096 + 16];
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
		return reply_err(wsi, &err, close);
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
			return reply_err(wsi, &err, close);
	}
	if (pss->method == M_DELETE)
		like.n = -like.n;
	return like_one(wsi, w, &like, close);
}

static bool
query_has(struct lws *wsi, const char *name)
{
	size_t nlen = strlen(name);
	char frag[QUERY_BUF];

	for (int idx = 0;
	     lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
				   WSI_TOKEN_HTTP_URI_ARGS, idx) >= 0;
	     idx++)
		if (!strncmp(frag, name, nlen) && frag[nlen] == '=')
			return true;
	return false;
}

static int
likes_body(struct lws *wsi, struct lc_worker *w, struct http_pss *pss)
{
	struct lc_limits lim = limits_of(w);
	struct lc_likes likes;
	struct lc_api_error err;
	char body[64];
	int rc;

	if (query_has(wsi, "url"))
		return likes_query(wsi, w, pss, false);
	if (pss->method != M_POST || !pss->body_len)
		return lc_http_error(wsi, 400, "bad_url",
				     "url query parameter or JSON body "
				     "required");
	if (lc_likes_parse(pss->body, pss->body_len, &lim, &likes, &err))
		return reply_err(wsi, &err, false);
	if (!likes.batch) {
		rc = like_one(wsi, w, &likes.one, false);
		lc_likes_free(&likes);
		return rc;
	}
	if (atomic_load_explicit(&w->srv->draining, memory_order_relaxed)) {
		lc_likes_free(&likes);
		return error_ex(wsi, 503, "shutting_down",
				"server is shutting down", "retry-after: 1\r\n",
				false);
	}
	if (rate_limited(wsi, w, (int64_t)likes.n, false, &rc)) {
		lc_likes_free(&likes);
		return rc;
	}
	if (lc_source_add_batch(&w->source, likes.items, likes.n)) {
		lc_likes_free(&likes);
		return lc_http_error(wsi, 503, "out_of_memory",
				     "server out of memory");
	}
	count_accepted(w, likes.items, likes.n);
	snprintf(body, sizeof(body), "{\"accepted\":%zu}", likes.n);
	lc_likes_free(&likes);
	return lc_http_reply(wsi, 200, "application/json", body, strlen(body),
			     NULL);
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
static int
likes_start(struct lws *wsi, struct lc_worker *w, struct http_pss *pss)
{
	char cl[32];
	long long len = -1;

	if (pss->method != M_POST && pss->method != M_DELETE)
		return error_ex(wsi, 405, "method_not_allowed",
				"use POST or DELETE", "allow: POST, DELETE\r\n",
				false);
	if (!lc_http_authorized(wsi, w->srv->cfg))
		return error_ex(wsi, 401, "unauthorized",
				"likes need Authorization: Bearer <token>",
				"www-authenticate: Bearer\r\n", true);
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING))
		return error_ex(wsi, 411, "length_required",
				"chunked bodies are not supported; send "
				"Content-Length",
				NULL, true);
	if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) >
	    0) {
		char *end;

		len = strtoll(cl, &end, 10);
		if (*end || len < 0)
			return error_ex(wsi, 400, "bad_request",
					"bad Content-Length", NULL, true);
	}
	if (len > w->srv->cfg->max_body_bytes) {
		char msg[96];

		snprintf(msg, sizeof(msg), "body is %lld bytes, more than %d",
			 len, w->srv->cfg->max_body_bytes);
		return error_ex(wsi, 413, "too_large", msg, NULL, true);
	}
	if (len < 0)
		/* No length: no body. lws would wait for one; close after. */
		return likes_query(wsi, w, pss, pss->method == M_POST);
	if (len == 0) {
		if (pss->method == M_DELETE)
			return likes_query(wsi, w, pss, false);
		/* lws calls BODY_COMPLETION next, headers still attached. */
		pss->body_wanted = true;
		return 0;
	}
	if (!query_has(wsi, "url") && !content_type_json(wsi))
		return error_ex(wsi, 415, "unsupported_media_type",
				"send Content-Type: application/json", NULL,
				true);
	if ((size_t)len > pss->body_cap) {
		char *p = realloc(pss->body, (size_t)len);

		if (!p)
			return error_ex(wsi, 503, "out_of_memory",
					"server out of memory", NULL, true);
		pss->body = p;
		pss->body_cap = (size_t)len;
	}
	pss->body_wanted = true;
	pss->deadline_ms = lc_now_ms() + w->srv->cfg->http_timeout_ms;
	return 0;
}

/* ------------------------------------------------------------------ */

static int
get_counts(struct lws *wsi, struct lc_worker *w)
{
	size_t max = (size_t)w->srv->cfg->max_urls_per_request;
	const char *vals[64];
	size_t lens[64];
	struct lc_api_error err;
	char *buf = malloc(max * 2049 + 1);
	json_t *counts, *root;
	int n;

	if (!buf)
		return lc_http_error(wsi, 503, "out_of_memory",
				     "out of memory");
	n = lc_http_query(wsi, "url", buf, max * 2049 + 1, vals, lens, (int)max,
			  &err);
	if (n <= 0) {
		free(buf);
		if (!n)
			lc_api_error_set(
			    &err, 400, "bad_url",
			    "at least one url query parameter needed");
		return reply_err(wsi, &err, false);
	}
	counts = json_object();
	for (int i = 0; i < n; i++) {
		struct lc_entry *e =
		    lc_counter_find(w->srv->counter, vals[i], lens[i],
				    lc_hash(vals[i], lens[i]));
		struct lc_counts c = {0, 0, 0};
		int64_t pl = 0, pu = 0;
		char ts[32];
		json_t *o;

		if (e)
			c = lc_entry_read(e);
		lc_source_pending(&w->source, vals[i], lens[i], &pl, &pu);
		c.likes += pl;
		c.unlikes += pu;
		o = json_pack("{s:I, s:I, s:I}", "count",
			      (json_int_t)(c.likes - c.unlikes), "likes",
			      (json_int_t)c.likes, "unlikes",
			      (json_int_t)c.unlikes);
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
	return reply_json(wsi, 200, root);
}

static int
int_param(struct lws *wsi, const char *name, long long lo, long long hi,
	  long long def, long long *out, struct lc_api_error *err)
{
	char buf[32];
	const char *v[1];
	size_t l[1];
	char *end;
	int n = lc_http_query(wsi, name, buf, sizeof(buf), v, l, 1, err);

	if (n < 0)
		return -1;
	if (!n) {
		*out = def;
		return 0;
	}
	*out = strtoll(v[0], &end, 10);
	if (!l[0] || *end || *out < lo || *out > hi) {
		lc_api_error_set(err, 400, "bad_request",
				 "%s must be an integer from %lld to %lld",
				 name, lo, hi);
		return -1;
	}
	return 0;
}

static int
get_top(struct lws *wsi, struct lc_worker *w)
{
	struct lc_api_error err;
	long long limit;
	struct lc_top *t;
	json_t *arr, *root;

	if (int_param(wsi, "limit", 1, w->srv->cfg->top_limit_max, 10, &limit,
		      &err))
		return reply_err(wsi, &err, false);
	t = lc_dispatch_top_get(w->srv->dispatch);
	arr = json_array();
	for (size_t i = 0; i < t->n && i < (size_t)limit; i++)
		json_array_append_new(
		    arr, json_pack("{s:s%, s:I}", "url", t->items[i].url,
				   t->items[i].url_len, "count",
				   (json_int_t)t->items[i].count));
	lc_dispatch_top_put(t);
	root = json_pack("{s:o}", "top", arr);
	return reply_json(wsi, 200, root);
}

static int
time_param(struct lws *wsi, const char *name, int64_t def, int64_t *out,
	   struct lc_api_error *err)
{
	char buf[64];
	const char *v[1];
	size_t l[1];
	int n = lc_http_query(wsi, name, buf, sizeof(buf), v, l, 1, err);

	if (n < 0)
		return -1;
	if (!n) {
		*out = def;
		return 0;
	}
	if (lc_time_parse(v[0], out)) {
		lc_api_error_set(err, 400, "bad_request",
				 "%s must be ISO-8601 UTC or Unix seconds",
				 name);
		return -1;
	}
	return 0;
}

static int
get_history(struct lws *wsi, struct lc_worker *w)
{
	char buf[4096 + 16];
	const char *vals[1];
	size_t lens[1];
	struct lc_api_error err;
	int64_t now_s = lc_now_ms() / 1000, since, until;
	json_t *points, *root;
	int n;

	n = lc_http_query(wsi, "url", buf, sizeof(buf), vals, lens, 1, &err);
	if (n <= 0) {
		if (!n)
			lc_api_error_set(&err, 400, "bad_url",
					 "url query parameter is missing");
		return reply_err(wsi, &err, false);
	}
	if (time_param(wsi, "until", now_s / 60 * 60 + 60, &until, &err) ||
	    time_param(wsi, "since", until - 86400, &since, &err))
		return reply_err(wsi, &err, false);
	if (!w->reader) {
		char e[256];

		w->reader = lc_store_open(w->srv->cfg->db, true, e, sizeof(e));
		if (!w->reader) {
			lc_warn("history: %s", e);
			return lc_http_error(wsi, 503, "unavailable",
					     "database cannot be read");
		}
	}
	points = json_array();
	if (lc_store_history(w->reader, vals[0], lens[0], since, until, 10080,
			     points)) {
		json_decref(points);
		return lc_http_error(wsi, 503, "unavailable",
				     "database cannot be read");
	}
	root = json_pack("{s:s%, s:i, s:o}", "url", vals[0], lens[0], "step",
			 60, "points", points);
	return reply_json(wsi, 200, root);
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

static int
get_readyz(struct lws *wsi, struct lc_worker *w)
{
	const struct lc_batcher_stats *bs = lc_batcher_stats(w->srv->batcher);
	const char *status = NULL, *msg = NULL;
	char body[160];

	if (atomic_load(&w->srv->draining)) {
		status = "draining";
		msg = "server is shutting down";
	} else if (!atomic_load(&w->srv->ready)) {
		status = "starting";
		msg = "server is starting";
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

/* ------------------------------------------------------------------ */

static const struct {
	const char *ext, *type, *cache;
} mime[] = {
    {".html", "text/html; charset=utf-8", "no-cache"},
    {".js", "text/javascript; charset=utf-8", "no-cache"},
    {".mjs", "text/javascript; charset=utf-8", "no-cache"},
    {".css", "text/css; charset=utf-8", "no-cache"},
    {".ts", "text/plain; charset=utf-8", "no-cache"},
    {".json", "application/json", "no-cache"},
    {".svg", "image/svg+xml", "max-age=3600"},
    {".png", "image/png", "max-age=3600"},
    {".ico", "image/x-icon", "max-age=3600"},
};

static int
serve_static(struct lws *wsi, struct lc_worker *w, const char *path)
{
	const char *ext = strrchr(path, '.');
	char file[2048], headers[128];
	struct stat st;
	size_t i;
	int n;

	if (!strcmp(path, "/"))
		path = "/index.html", ext = ".html";
	for (const char *p = path; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '/' || *p == '-' ||
		      *p == '_' || *p == '.') ||
		    (p[0] == '.' && p[1] == '.'))
			goto notfound;
	for (i = 0; ext && i < sizeof(mime) / sizeof(mime[0]); i++)
		if (!strcmp(ext, mime[i].ext))
			break;
	if (!ext || i == sizeof(mime) / sizeof(mime[0]))
		goto notfound;
	snprintf(file, sizeof(file), "%s%s", w->srv->cfg->web_root, path);
	if (stat(file, &st) || !S_ISREG(st.st_mode))
		goto notfound;
	n = snprintf(headers, sizeof(headers),
		     "cache-control: %s\r\nx-content-type-options: nosniff\r\n",
		     mime[i].cache);
	lc_http_count(w, LC_ROUTE_STATIC, 200);
	n = lws_serve_http_file(wsi, file, mime[i].type, headers, n);
	if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi)))
		return -1;
	return 0;
notfound:
	return lc_http_error(wsi, 404, "not_found", "no such resource");
}

static enum method
method_of(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
		return M_GET;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
		return M_POST;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI))
		return M_DELETE;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI))
		return M_HEAD;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI))
		return M_OPTIONS;
	return M_OTHER;
}

static const struct {
	const char *path;
	enum lc_route route;
} routes[] = {
    {"/v1/likes", LC_ROUTE_LIKES},   {"/v1/counts", LC_ROUTE_COUNTS},
    {"/v1/top", LC_ROUTE_TOP},	     {"/v1/history", LC_ROUTE_HISTORY},
    {"/v1/stats", LC_ROUTE_STATS},   {"/healthz", LC_ROUTE_HEALTHZ},
    {"/readyz", LC_ROUTE_READYZ},    {"/metrics", LC_ROUTE_METRICS},
    {"/v1/events", LC_ROUTE_EVENTS}, {"/v1/ws", LC_ROUTE_WS},
};

static int
on_request(struct lws *wsi, struct lc_worker *w, struct http_pss *pss,
	   const char *path)
{
	size_t len;
	char *s;

	pss->route = LC_ROUTE_OTHER;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(path, routes[i].path))
			pss->route = (uint8_t)routes[i].route;
	pss->method = (uint8_t)method_of(wsi);
	/*
	 * lws decodes %0A / %0D in the request target and then takes them for
	 * the end of the request line, silently cutting the URI (and losing
	 * the HTTP version). A request without a version was cut: refuse it.
	 */
	if (!lws_hdr_total_length(wsi, WSI_TOKEN_HTTP))
		return error_ex(wsi, 400, "bad_request",
				"request line contains an encoded CR or LF",
				NULL, true);

	if (pss->method == M_OPTIONS && pss->route < LC_ROUTE_STATIC)
		/* CORS preflight: the methods and headers a browser may send.
		 */
		return reply_ex(wsi, 204, "text/plain", "", 0,
				"access-control-allow-methods: GET, POST, "
				"DELETE, OPTIONS\r\n"
				"access-control-allow-headers: content-type, "
				"authorization, last-event-id\r\n"
				"access-control-max-age: 600\r\n",
				false);
	if (pss->route == LC_ROUTE_LIKES)
		return likes_start(wsi, w, pss);
	if (pss->method != M_GET && pss->method != M_HEAD) {
		if (pss->route == LC_ROUTE_OTHER && !strncmp(path, "/v1/", 4))
			return lc_http_error(wsi, 404, "not_found",
					     "no such resource");
		/* A body we will not read: close after answering. */
		return error_ex(wsi, 405, "method_not_allowed", "use GET",
				"allow: GET\r\n", pss->method == M_POST);
	}
	switch (pss->route) {
	case LC_ROUTE_COUNTS:
		return get_counts(wsi, w);
	case LC_ROUTE_TOP:
		return get_top(wsi, w);
	case LC_ROUTE_HISTORY:
		return get_history(wsi, w);
	case LC_ROUTE_STATS:
		s = lc_stats_render(w->srv, &len);
		return get_text(wsi, s, len, "application/json");
	case LC_ROUTE_HEALTHZ:
		return lc_http_reply(wsi, 200, "application/json",
				     "{\"status\":\"ok\"}", 15, NULL);
	case LC_ROUTE_READYZ:
		return get_readyz(wsi, w);
	case LC_ROUTE_METRICS:
		s = lc_metrics_render(w->srv, &len);
		return get_text(wsi, s, len, "text/plain; version=0.0.4");
	case LC_ROUTE_EVENTS:
		return lc_sse_start(wsi, w);
	case LC_ROUTE_WS:
		return error_ex(wsi, 426, "upgrade_required",
				"connect with a WebSocket upgrade, subprotocol "
				"livecount.v1",
				"upgrade: websocket\r\n", false);
	default:
		if (!strncmp(path, "/v1/", 4))
			return lc_http_error(wsi, 404, "not_found",
					     "no such resource");
		return serve_static(wsi, w, path);
	}
}

int
lc_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		 void *in, size_t len)
{
	struct http_pss *pss = user;
	struct lc_worker *w;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		w = worker_of(wsi);
		/* A request arriving on a live SSE stream: protocol abuse. */
		if (lc_sse_session(wsi))
			return -1;
		pss->body_len = 0;
		pss->body_wanted = pss->body_refused = false;
		return on_request(wsi, w, pss, in);

	case LWS_CALLBACK_HTTP_BODY:
		if (!pss->body_wanted || pss->body_refused || !len)
			return 0;
		w = worker_of(wsi);
		if (pss->deadline_ms && lc_now_ms() > pss->deadline_ms) {
			pss->body_refused = true;
			return error_ex(wsi, 408, "timeout",
					"request body took too long", NULL,
					true);
		}
		if (pss->body_len + len > pss->body_cap) {
			pss->body_refused = true;
			return error_ex(wsi, 413, "too_large",
					"body longer than its Content-Length",
					NULL, true);
		}
		memcpy(pss->body + pss->body_len, in, len);
		pss->body_len += len;
		return 0;

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (!pss->body_wanted || pss->body_refused)
			return 0;
		pss->body_wanted = false;
		pss->deadline_ms = 0;
		w = worker_of(wsi);
		return likes_body(wsi, w, pss);

	case LWS_CALLBACK_HTTP_WRITEABLE:
		return 0;

	case LWS_CALLBACK_WSI_DESTROY:
		lc_sse_destroyed(wsi);
		lc_conn_release(wsi);
		return 0;

	case LWS_CALLBACK_HTTP_FILE_COMPLETION:
		return lws_http_transaction_completed(wsi) ? -1 : 0;

	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (!pss)
			return 0;
		free(pss->body);
		pss->body = NULL;
		pss->body_cap = pss->body_len = 0;
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}
