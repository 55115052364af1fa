/*
 * The HTTP reply writer (see http_reply.h): status line, headers (CORS
 * for the API routes, extra headers, Connection: close) and body in one
 * lws_write from the worker's scratch buffer; API.md's error shape.
 *
 * Threads: the worker thread serving the request.
 */
#define _GNU_SOURCE
#include "lc/http_reply.h"
#include "lc/http_log.h"
#include "lc/http_policy.h"
#include "lc/worker.h"

#include <stdlib.h>
#include <string.h>

static int
reply(struct lws *wsi, struct lc_http_req *pss, int status,
      const char *content_type, const char *body, size_t len, const char *extra,
      bool close)
{
	struct lc_worker *w = lc_worker_of(wsi);
	size_t extra_len = extra ? strlen(extra) : 0;
	unsigned char *start, *p, *end;
	/* JSON answers end with a newline, for shells and line readers. */
	bool nl = !strncmp(content_type, "application/json", 16) &&
		  (!len || body[len - 1] != '\n');
	/* HEAD: the headers GET would have, no body (RFC 9110 9.3.2). */
	bool head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
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
	    lws_add_http_header_content_length(wsi, len + nl, &p, end))
		return -1;
	if (close && lws_add_http_header_by_token(
			 wsi, WSI_TOKEN_CONNECTION,
			 (const unsigned char *)"close", 5, &p, end))
		return -1;
	/* The API is cookie-free: allowed origins may read it (CORS). */
	if (pss && pss->route < LC_ROUTE_STATIC &&
	    lc_http_add_cors(wsi, w->srv->cfg, &p, end))
		return -1;
	if (lc_http_add_hsts(wsi, w->srv->cfg, &p, end))
		return -1;
	if (extra_len) {
		memcpy(p, extra, extra_len);
		p += extra_len;
	}
	if (lws_finalize_http_header(wsi, &p, end))
		return -1;
	if (!head) {
		memcpy(p, body, len);
		p += len;
		if (nl)
			*p++ = '\n';
	}
	if (pss) {
		lc_metrics_count_http(&w->stats, pss->route, status);
		lc_http_log(wsi, pss, status, head ? 0 : len + nl);
	}
	if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) <
	    (int)(p - start))
		return -1;
	if (close)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int
lc_http_reply_ex(struct lws *wsi, int status, const char *content_type,
		 const char *body, size_t len, const char *extra, bool close)
{
	return reply(wsi, lws_wsi_user(wsi), status, content_type, body, len,
		     extra, close);
}

int
lc_http_reply(struct lws *wsi, int status, const char *content_type,
	      const char *body, size_t len, const char *extra_headers)
{
	return lc_http_reply_ex(wsi, status, content_type, body, len,
				extra_headers, false);
}

int
lc_http_error_req(struct lws *wsi, struct lc_http_req *req, int status,
		  const char *code, const char *message, const char *extra,
		  bool close)
{
	json_t *o = json_pack("{s:s, s:s}", "error", code, "message", message);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	int rc;

	json_decref(o);
	if (!s)
		return -1;
	rc = reply(wsi, req, status, "application/json", s, strlen(s), extra,
		   close);
	free(s);
	return rc;
}

int
lc_http_error_ex(struct lws *wsi, int status, const char *code,
		 const char *message, const char *extra, bool close)
{
	return lc_http_error_req(wsi, lws_wsi_user(wsi), status, code, message,
				 extra, close);
}

int
lc_http_error(struct lws *wsi, int status, const char *code,
	      const char *message)
{
	return lc_http_error_ex(wsi, status, code, message, NULL, false);
}

int
lc_http_reply_api_error(struct lws *wsi, const struct lc_api_error *err,
			bool close)
{
	return lc_http_error_ex(wsi, err->status, err->code, err->message, NULL,
				close);
}

/* Replies with a jansson value (reference stolen). */
int
lc_http_reply_json(struct lws *wsi, int status, json_t *v)
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
