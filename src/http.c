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
#include "lc/http_likes.h"
#include "lc/http_read.h"
#include "lc/http_reply.h"
#include "lc/http_static.h"
#include "lc/sse.h"
#include "lc/worker.h"

#include <stdlib.h>
#include <string.h>

static const char *const route_paths[LC_ROUTE_MAX] = {
#define ROUTE_PATH(id, path, label) path,
    LC_ROUTES(ROUTE_PATH)
#undef ROUTE_PATH
};

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

static int
on_request(struct lws *wsi, struct lc_worker *w, struct lc_http_req *pss,
	   const char *path)
{
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
		    "authorization, last-event-id\r\n"
		    "access-control-max-age: 600\r\n",
		    false);
	if (pss->route == LC_ROUTE_LIKES)
		return lc_http_likes_start(wsi, w, pss);
	if (pss->method != LC_M_GET && pss->method != LC_M_HEAD) {
		if (pss->route == LC_ROUTE_OTHER && !strncmp(path, "/v1/", 4))
			return lc_http_error(wsi, 404, "not_found",
					     "no such resource");
		/* A body we will not read: close after answering. */
		return lc_http_error_ex(wsi, 405, "method_not_allowed",
					"use GET", "allow: GET\r\n",
					pss->method == LC_M_POST);
	}
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
		pss->body_len = 0;
		pss->body_wanted = pss->body_refused = false;
		return on_request(wsi, w, pss, in);

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
		if (pss->body_len + len > pss->body_cap) {
			pss->body_refused = true;
			return lc_http_error_ex(
			    wsi, 413, "too_large",
			    "body longer than its Content-Length", NULL, true);
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
		return lc_http_likes_body(wsi, w, pss);

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
