/*
 * The HTTP transport's lws glue: protocols[0]'s callback, routing each
 * request by its path (the routes of http_routes.h) and method to the like
 * API, the read API, SSE or static files, and collecting request bodies.
 *
 * Threads: lws calls this on the worker thread that owns the connection.
 * lws also delivers LWS_CALLBACK_WSI_DESTROY of every connection here,
 * where the connection record (and an SSE stream's session) are freed.
 */
#define _GNU_SOURCE
#include "lc/http.h"
#include "lc/http_defer.h"
#include "lc/http_likes.h"
#include "lc/http_log.h"
#include "lc/http_policy.h"
#include "lc/http_query.h"
#include "lc/http_read.h"
#include "lc/http_reply.h"
#include "lc/http_static.h"
#include "lc/sse.h"
#include "lc/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

static const char *const route_paths[LC_ROUTE_MAX] = {
#define ROUTE_PATH(id, path, label) path,
    LC_ROUTES(ROUTE_PATH)
#undef ROUTE_PATH
};

/*
 * Query parameters each route takes; any other is answered 400 naming it.
 * An unknown name is nearly always the rest of a liked URL whose '&' or
 * ';' was not percent-encoded, which would otherwise be cut silently.
 * Routes with NULL take no parameters and ignore any (cache busters).
 */
static const char *const route_params[LC_ROUTE_MAX] = {
    [LC_ROUTE_LIKES] = "url\0n\0",
    [LC_ROUTE_VIEWS] = "url\0n\0",
    [LC_ROUTE_COUNTS] = "url\0",
    [LC_ROUTE_TOP] = "limit\0by\0",
    [LC_ROUTE_HISTORY] = "url\0since\0until\0",
    [LC_ROUTE_EVENTS] = "url\0lastEventID\0token\0",
    [LC_ROUTE_WS] = "url\0token\0",
};

/* Writes the first unknown parameter's name to bad; false when none. */
static bool
unknown_param(struct lws *wsi, enum lc_route route, char *bad, size_t badlen)
{
	const char *allowed = route_params[route];
	char frag[LC_QUERY_FRAGMENT_BYTES];

	if (!allowed)
		return false;
	for (int idx = 0;
	     lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
				   WSI_TOKEN_HTTP_URI_ARGS, idx) >= 0;
	     idx++) {
		size_t n = strcspn(frag, "=");
		bool ok = false;

		for (const char *a = allowed; *a; a += strlen(a) + 1)
			if (strlen(a) == n && !strncmp(a, frag, n))
				ok = true;
		if (!ok) {
			if (n >= badlen)
				n = badlen - 1;
			memcpy(bad, frag, n);
			bad[n] = '\0';
			return true;
		}
	}
	return false;
}

static enum lc_http_method
method_of(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
		return LC_M_GET;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
		return LC_M_POST;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI))
		return LC_M_DELETE;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI))
		return LC_M_HEAD;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI))
		return LC_M_OPTIONS;
	return LC_M_OTHER;
}

static enum lc_route
route_of(const char *path)
{
	enum lc_route route = LC_ROUTE_OTHER;

	for (int r = 0; r < LC_ROUTE_MAX; r++)
		if (route_paths[r] && !strcmp(path, route_paths[r]))
			route = (enum lc_route)r;
	return route;
}

/* Did the client announce a body (that we may leave unread)? */
static bool
has_body(struct lws *wsi)
{
	char cl[32];

	return lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) ||
	       (lws_hdr_copy(wsi, cl, sizeof(cl),
			     WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
		strcmp(cl, "0"));
}

/* Body bytes a new buffer takes at first, and at least per growth. */
#define BODY_CHUNK 16384
/*
 * Bodies of at most BODY_CHUNK bytes (a single like, a small batch) may
 * go SMALL_BODY_RESERVE past max_body_bytes_in_flight, so that senders
 * of large bodies that stall cannot lock out ordinary likes.
 */
#define SMALL_BODY_RESERVE (1 << 20)

static bool
body_budget_left(struct lc_worker *w, struct lc_http_req *pss, size_t want)
{
	int64_t bound = w->srv->cfg->max_body_bytes_in_flight;

	if (pss->body_expected <= BODY_CHUNK)
		bound += SMALL_BODY_RESERVE;
	return atomic_load_explicit(&w->srv->body_bytes_in_flight,
				    memory_order_relaxed) +
		   (int64_t)want <=
	       bound;
}

static int
body_busy(struct lws *wsi, struct lc_worker *w)
{
	atomic_fetch_add_explicit(&w->srv->body_refusals, 1,
				  memory_order_relaxed);
	return lc_http_error_ex(wsi, 503, "busy",
				"too many request bodies in flight; retry "
				"later",
				"retry-after: 1\r\n", true);
}

/*
 * POST / DELETE /v1/likes: the checks of the request as a whole (its
 * encoding, a url both in the query and in a body, the process's body
 * budget), then http_likes.c; then `Expect: 100-continue` is answered once
 * the body is wanted (every refusal above was a final status instead).
 */
static int
likes_start(struct lws *wsi, struct lc_worker *w, struct lc_http_req *pss)
{
	char h[64];
	int rc;

	if (lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_HTTP_CONTENT_ENCODING) >
		0 &&
	    strcasecmp(h, "identity"))
		return lc_http_error_ex(wsi, 415, "unsupported_media_type",
					"request bodies must not be encoded "
					"(Content-Encoding: identity)",
					NULL, true);
	if (has_body(wsi) && lc_http_query_has(wsi, "url"))
		return lc_http_error_ex(wsi, 400, "bad_request",
					"send the url either in the query or "
					"in a JSON body, not both",
					NULL, true);
	rc = lc_http_likes_start(wsi, w, pss);
	/* An answer completed the transaction: lws gave us a fresh pss. */
	pss = lws_wsi_user(wsi);
	if (rc || !pss || !pss->body_wanted)
		return rc;
	if (pss->body_expected &&
	    !body_budget_left(w, pss,
			      pss->body_expected < BODY_CHUNK
				  ? pss->body_expected
				  : BODY_CHUNK)) {
		pss->body_wanted = false;
		return body_busy(wsi, w);
	}
	if (pss->body_expected &&
	    lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_HTTP_EXPECT) > 0 &&
	    !strcasecmp(h, "100-continue")) {
		unsigned char cont[LWS_PRE + 32];
		static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";

		memcpy(cont + LWS_PRE, line, sizeof(line) - 1);
		if (lws_write(wsi, cont + LWS_PRE, sizeof(line) - 1,
			      LWS_WRITE_HTTP) < (int)sizeof(line) - 1)
			return -1;
	}
	return 0;
}

/*
 * Body buffers of BODY_MMAP_MIN bytes and more are mappings of their own
 * (munmap to free): from the malloc heap they would stay
 * in RSS after their connections closed (glibc raises its mmap threshold
 * after freeing big blocks and keeps freed heap memory in its arenas), so
 * memory held by stalled senders comes back when they go. Whether a
 * buffer is a mapping follows from its capacity alone.
 */
#define BODY_MMAP_MIN (1u << 20)

static char *
body_realloc(char *old, size_t len, size_t old_cap, size_t cap)
{
	void *p;

	if (cap < BODY_MMAP_MIN)
		return realloc(old, cap);
	/*
	 * A new mapping and a copy rather than mremap(): growth doubles, so
	 * copies stay linear, and ThreadSanitizer does not follow mremap (it
	 * reports the moved pages' reuse by another worker as a race).
	 */
	p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (len)
		memcpy(p, old, len);
	if (old_cap >= BODY_MMAP_MIN)
		munmap(old, old_cap);
	else
		free(old);
	return p;
}

/* Grows the body buffer to hold `need` bytes within the process budget. */
static int
body_grow(struct lc_worker *w, struct lc_http_req *pss, size_t need)
{
	size_t cap = pss->body_cap ? pss->body_cap : BODY_CHUNK;
	char *p;

	while (cap < need)
		cap *= 2;
	if (cap > pss->body_expected)
		cap = pss->body_expected;
	if (!body_budget_left(w, pss, cap - pss->body_cap))
		return -1;
	p = body_realloc(pss->body, pss->body_len, pss->body_cap, cap);
	if (!p)
		return -1;
	atomic_fetch_add_explicit(&w->srv->body_bytes_in_flight,
				  (int64_t)(cap - pss->body_cap),
				  memory_order_relaxed);
	pss->body = p;
	pss->body_cap = cap;
	return 0;
}

/* Frees a body buffer (see body_realloc). */
static void
body_free(char *body, size_t cap)
{
	if (cap >= BODY_MMAP_MIN)
		munmap(body, cap);
	else
		free(body);
}

/*
 * Frees the body buffer and gives its bytes back to the budget. A buffer
 * with body_cap 0 is lent to the completion handler, which frees it.
 */
static void
body_release(struct lws *wsi, struct lc_http_req *pss)
{
	if (pss->body_cap) {
		atomic_fetch_sub_explicit(
		    &lc_worker_of(wsi)->srv->body_bytes_in_flight,
		    (int64_t)pss->body_cap, memory_order_relaxed);
		body_free(pss->body, pss->body_cap);
	}
	pss->body = NULL;
	pss->body_cap = pss->body_len = 0;
}

/*
 * A WebSocket upgrade, before lws accepts it: only /v1/ws, from an allowed
 * origin, asking for livecount.v1 (lws would otherwise bind an upgrade
 * without a subprotocol to protocols[0], where every op is ignored, and
 * drop one with another subprotocol or origin without a status). Refusals
 * are JSON answers and close the connection.
 */
static int
confirm_upgrade(struct lws *wsi, struct lc_worker *w, struct lc_http_req *pss)
{
	char buf[256], bad[64];
	int n;

	pss->route = LC_ROUTE_WS;
	pss->method = LC_M_GET;
	if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_GET_URI) <= 0 ||
	    strcmp(buf, "/v1/ws")) {
		pss->route = LC_ROUTE_OTHER;
		return lc_http_error_req(wsi, pss, 404, "not_found",
					 "WebSocket upgrades go to /v1/ws",
					 NULL, true);
	}
	if (lc_http_origin_refused(wsi, w->srv->cfg))
		return lc_http_error_req(
		    wsi, pss, 403, "forbidden_origin",
		    "this origin is not in allowed_origins", NULL, true);
	n = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_PROTOCOL);
	{
		bool ok = false;

		for (char *save, *t = n > 0 ? strtok_r(buf, ",", &save) : NULL;
		     t; t = strtok_r(NULL, ",", &save)) {
			t += strspn(t, " \t");
			t[strcspn(t, " \t")] = '\0';
			if (!strcmp(t, "livecount.v1"))
				ok = true;
		}
		if (!ok)
			return lc_http_error_req(
			    wsi, pss, 400, "bad_subprotocol",
			    "ask for the WebSocket subprotocol livecount.v1 "
			    "(Sec-WebSocket-Protocol: livecount.v1)",
			    NULL, true);
	}
	if (unknown_param(wsi, LC_ROUTE_WS, bad, sizeof(bad))) {
		char msg[160];

		for (char *p = bad; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		snprintf(msg, sizeof(msg), "unknown query parameter '%s'", bad);
		return lc_http_error_req(wsi, pss, 400, "bad_request", msg,
					 NULL, true);
	}
	lc_http_log(wsi, pss, 101, 0);
	return 0;
}

static int
on_request(struct lws *wsi, struct lc_worker *w, struct lc_http_req *pss,
	   const char *path)
{
	char bad[64];

	pss->route = (uint8_t)route_of(path);
	pss->method = (uint8_t)method_of(wsi);
	/*
	 * lws decodes %0A / %0D in the request target and then takes them for
	 * the end of the request line, silently cutting the URI (and losing
	 * the HTTP version). A request without a version was cut: refuse it.
	 */
	if (!lws_hdr_total_length(wsi, WSI_TOKEN_HTTP))
		return lc_http_error_ex(
		    wsi, 400, "bad_request",
		    "request line contains an encoded CR or LF", NULL, true);

	if (pss->method == LC_M_OPTIONS && pss->route < LC_ROUTE_STATIC)
		/* CORS preflight: the methods and headers a browser may send.
		 */
		return lc_http_reply_ex(
		    wsi, 204, "text/plain", "", 0,
		    "access-control-allow-methods: GET, POST, "
		    "DELETE, OPTIONS\r\n"
		    "access-control-allow-headers: content-type, "
		    "authorization, last-event-id, idempotency-key\r\n"
		    "access-control-max-age: 600\r\n",
		    false);
	if (unknown_param(wsi, pss->route, bad, sizeof(bad))) {
		char msg[200];

		for (char *p = bad; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		snprintf(msg, sizeof(msg),
			 "unknown query parameter '%s' (percent-encode '&', "
			 "';' and '#' inside a url value)",
			 bad);
		return lc_http_error_ex(wsi, 400, "bad_request", msg, NULL,
					has_body(wsi));
	}
	/*
	 * A browser's write or stream from an origin not in allowed_origins
	 * is refused, as a WebSocket upgrade is: CORS alone would only hide
	 * the answer of a no-cors form post, not stop the like.
	 */
	if ((pss->route == LC_ROUTE_LIKES || pss->route == LC_ROUTE_VIEWS ||
	     pss->route == LC_ROUTE_EVENTS) &&
	    lc_http_origin_refused(wsi, w->srv->cfg))
		return lc_http_error_ex(wsi, 403, "forbidden_origin",
					"this origin is not in allowed_origins",
					NULL, has_body(wsi));
	if (pss->route == LC_ROUTE_LIKES || pss->route == LC_ROUTE_VIEWS)
		return likes_start(wsi, w, pss);
	if (pss->method != LC_M_GET && pss->method != LC_M_HEAD) {
		if (pss->route == LC_ROUTE_OTHER && !strncmp(path, "/v1/", 4))
			return lc_http_error(wsi, 404, "not_found",
					     "no such resource");
		/* A body we will not read: close after answering. */
		return lc_http_error_ex(wsi, 405, "method_not_allowed",
					"use GET", "allow: GET\r\n",
					pss->method == LC_M_POST);
	}
	if ((pss->route == LC_ROUTE_STATS || pss->route == LC_ROUTE_METRICS) &&
	    !lc_http_metrics_authorized(wsi, w->srv->cfg))
		return lc_http_error_ex(
		    wsi, 401, "unauthorized",
		    "this server's metrics need Authorization: Bearer "
		    "<metrics_token>",
		    "www-authenticate: Bearer\r\n", false);
	switch (pss->route) {
	case LC_ROUTE_COUNTS:
		return lc_http_get_counts(wsi, w);
	case LC_ROUTE_TOP:
		return lc_http_get_top(wsi, w);
	case LC_ROUTE_HISTORY:
		return lc_http_get_history(wsi, w);
	case LC_ROUTE_STATS:
		return lc_http_get_stats(wsi, w);
	case LC_ROUTE_HEALTHZ:
		return lc_http_get_healthz(wsi);
	case LC_ROUTE_READYZ:
		return lc_http_get_readyz(wsi, w);
	case LC_ROUTE_METRICS:
		return lc_http_get_metrics(wsi, w);
	case LC_ROUTE_EVENTS:
		/* HEAD: the stream's headers, no stream. */
		if (pss->method == LC_M_HEAD)
			return lc_http_reply(wsi, 200, "text/event-stream", "",
					     0, "cache-control: no-cache\r\n");
		return lc_sse_start(wsi, w);
	case LC_ROUTE_WS:
		return lc_http_error_ex(
		    wsi, 426, "upgrade_required",
		    "connect with a WebSocket upgrade, subprotocol "
		    "livecount.v1",
		    "upgrade: websocket\r\n", false);
	default:
		if (!strncmp(path, "/v1/", 4))
			return lc_http_error(wsi, 404, "not_found",
					     "no such resource");
		return lc_http_static_serve(wsi, w, path);
	}
}

int
lc_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		 void *in, size_t len)
{
	struct lc_http_req *pss = user;
	struct lc_worker *w;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		w = lc_worker_of(wsi);
		/* A request arriving on a live SSE stream: protocol abuse. */
		if (lc_sse_session(wsi))
			return -1;
		pss->start_us = lc_mono_us();
		body_release(wsi, pss);
		pss->body_expected = 0;
		pss->body_wanted = pss->body_refused = false;
		memset(&pss->scan, 0, sizeof(pss->scan));
		return on_request(wsi, w, pss, in);

	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
		/* lws has no per-session data for the request yet. */
		struct lc_http_req req = {.start_us = lc_mono_us()};

		if (!in || strcasecmp(in, "websocket"))
			return 0;
		return confirm_upgrade(wsi, lc_worker_of(wsi), &req);
	}

	case LWS_CALLBACK_HTTP_BODY:
		if (!pss->body_wanted || pss->body_refused || !len)
			return 0;
		w = lc_worker_of(wsi);
		if (pss->deadline_ms && lc_mono_ms() > pss->deadline_ms) {
			pss->body_refused = true;
			return lc_http_error_ex(wsi, 408, "timeout",
						"request body took too long",
						NULL, true);
		}
		if (pss->body_len + len > pss->body_expected) {
			pss->body_refused = true;
			return lc_http_error_ex(
			    wsi, 413, "too_large",
			    "body longer than its Content-Length", NULL, true);
		}
		/* Count a batch's items now, not after the whole body. */
		if (!lc_batch_scan_feed(&pss->scan, in, len,
					(size_t)w->srv->cfg->max_batch_items)) {
			char msg[96];

			pss->body_refused = true;
			body_release(wsi, pss);
			snprintf(msg, sizeof(msg),
				 "a batch holds at most %d items",
				 w->srv->cfg->max_batch_items);
			return lc_http_error_ex(wsi, 413, "too_many_items", msg,
						NULL, true);
		}
		if (pss->body_len + len > pss->body_cap &&
		    body_grow(w, pss, pss->body_len + len)) {
			pss->body_refused = true;
			body_release(wsi, pss);
			return body_busy(wsi, w);
		}
		memcpy(pss->body + pss->body_len, in, len);
		pss->body_len += len;
		return 0;

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (!pss->body_wanted || pss->body_refused)
			return 0;
		pss->body_wanted = false;
		pss->deadline_ms = 0;
		w = lc_worker_of(wsi);
		{
			/*
			 * The answer may complete the transaction, and lws then
			 * frees pss: the buffer is lent to the handler (cap 0
			 * marks it so for body_release) and freed here.
			 */
			char *body = pss->body;
			size_t cap = pss->body_cap;
			int rc;

			pss->body_cap = 0;
			rc = lc_http_likes_body(wsi, w, pss);
			body_free(body, cap);
			atomic_fetch_sub_explicit(&w->srv->body_bytes_in_flight,
						  (int64_t)cap,
						  memory_order_relaxed);
			return rc;
		}

	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss && pss->like_job) /* a keyed like's answer */
			return lc_http_likes_writeable(wsi, pss);
		return lc_http_resume(wsi); /* a parked request's answer */

	case LWS_CALLBACK_TIMER:
		return lc_sse_timer(wsi);

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
		lc_http_likes_closed(pss);
		body_release(wsi, pss);
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}
