/*
 * livecount — the HTTP reply writer.
 *
 * Does: write a whole response (status, content type, length, CORS for
 * the API routes, extra headers, body) in one lws_write from the worker's
 * scratch buffer, count it in metrics, and complete the transaction (or
 * close). Does not: stream (sse.c) or send files (http_static.c).
 *
 * Threads: the worker thread serving the request. Each function returns
 * what an LWS_CALLBACK_HTTP* callback should return (0, or -1 to close).
 */
#ifndef LC_HTTP_REPLY_H
#define LC_HTTP_REPLY_H

#include "lc/parse.h"

#include <jansson.h>
#include <libwebsockets.h>

struct lc_http_req;
#include <stdbool.h>

/**
 * Writes the response. extra: headers already formatted as
 * "name: value\r\n" lines, or NULL. close: add "Connection: close" and
 * close after writing (for requests whose body is not read).
 */
int lc_http_reply_ex(struct lws *wsi, int status, const char *content_type,
		     const char *body, size_t len, const char *extra,
		     bool close);

/** lc_http_reply_ex without closing. */
int lc_http_reply(struct lws *wsi, int status, const char *content_type,
		  const char *body, size_t len, const char *extra_headers);

/** Replies with API.md's error shape {"error":code,"message":message}. */
int lc_http_error_ex(struct lws *wsi, int status, const char *code,
		     const char *message, const char *extra, bool close);

/** lc_http_error_ex without extra headers or closing. */
int lc_http_error(struct lws *wsi, int status, const char *code,
		  const char *message);

/** Replies with a rejection from parse.c (or the query readers). */
int lc_http_reply_api_error(struct lws *wsi, const struct lc_api_error *err,
			    bool close);

/** Replies with a jansson value (reference stolen; NULL means 503). */
int lc_http_reply_json(struct lws *wsi, int status, json_t *v);

/**
 * lc_http_error_ex for a request whose per-session data lws has not
 * allocated yet (LWS_CALLBACK_HTTP_CONFIRM_UPGRADE): req gives the route
 * for CORS, metrics and the access log. Returns like lc_http_error_ex.
 */
int lc_http_error_req(struct lws *wsi, struct lc_http_req *req, int status,
		      const char *code, const char *message, const char *extra,
		      bool close);

#endif
