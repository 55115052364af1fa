/*
 * The Server-Sent Events transport: GET /v1/events?url=U[&url=U2...].
 *
 * Threads: the worker thread owning the stream.
 *
 * The stream starts with `event: snapshot`, then carries `event: update`
 * frames with `id: <seq>`, built by session.c exactly like the WebSocket
 * ones (and shared the same way). A reconnecting client (Last-Event-ID
 * header or lastEventID parameter) needs nothing special: every stream
 * opens with a fresh snapshot, and counts are absolute.
 *
 * A note on lws 4.1.6 and HTTP/1 SSE (see LWS-NOTES.md): lws_http_mark_sse
 * logs an error on every h1 stream, so we detach the header table and
 * clear the timeout ourselves; and lws does not notice a departed SSE
 * client until a write fails, so every stream gets a ": ping" comment
 * after sse_ping_ms of silence and a failed write returns -1.
 */
#define _GNU_SOURCE
#include "lc/common.h"
#include "lc/parse.h"
#include "lc/server.h"

#include <stdlib.h>
#include <string.h>

int
lc_sse_start(struct lws *wsi, struct lc_worker *w, void *pss)
{
	struct lc_session *s = pss;
	int max = w->srv->cfg->max_urls_per_request;
	size_t bufsz = (size_t)max * 2049 + 1;
	char *buf = malloc(bufsz), *out;
	const char *urls[64];
	size_t lens[64];
	struct lc_err err;
	unsigned char *start, *p, *end;
	int n;

	if (!buf)
		return lc_http_error(wsi, 503, "out_of_memory", "out of memory");
	n = lc_http_query(wsi, "url", buf, bufsz, urls, lens, max, &err);
	if (n <= 0) {
		free(buf);
		if (!n)
			lc_err_set(&err, 400, "bad_url",
				   "at least one url query parameter needed");
		return lc_http_error(wsi, err.status, err.code, err.message);
	}
	out = lc_worker_buf(w, 512);
	if (!out) {
		free(buf);
		return -1;
	}
	start = p = (unsigned char *)out + LWS_PRE;
	end = start + 512;
	if (lws_add_http_header_status(wsi, HTTP_STATUS_OK, &p, end) ||
	    lws_add_http_header_by_token(
		    wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
		    (const unsigned char *)"text/event-stream", 17, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
					 (const unsigned char *)"no-cache", 8,
					 &p, end) ||
	    lws_add_http_header_by_name(wsi,
					(const unsigned char *)"x-accel-buffering:",
					(const unsigned char *)"no", 2, &p,
					end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end)) {
		free(buf);
		return -1;
	}
	lc_http_count(w, LC_ROUTE_EVENTS, 200);
	lc_session_init(s, w, wsi, LC_T_SSE);
	s->headers_sent = true;
	if (lc_session_subscribe(s, urls, lens, (size_t)n, &err)) {
		/* Headers are out: report in-stream, then end the stream. */
		lc_warn("sse: subscribe failed: %s", err.message);
		free(buf);
		return -1;
	}
	free(buf);
	/* A stream lives long: free the header table, disarm lws timeouts. */
	lws_http_headers_detach(wsi);
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	return 0;
}

int
lc_sse_writeable(struct lws *wsi, struct lc_session *s)
{
	char *frame;
	size_t n;
	int rc;

	if (s->closing || !s->w)
		return -1;
	n = lc_session_next_frame(s, &frame);
	if (n)
		rc = lws_write(wsi, (unsigned char *)frame, n, LWS_WRITE_HTTP);
	else if (s->ping_due) {
		unsigned char ping[LWS_PRE + 8];

		memcpy(ping + LWS_PRE, ": ping\n\n", 8);
		rc = lws_write(wsi, ping + LWS_PRE, 8, LWS_WRITE_HTTP);
	} else
		return 0;
	/* A positive return closes nothing here in 4.1.6: it must be -1. */
	if (rc < 0)
		return -1;
	s->ping_due = false;
	s->last_tx_ms = lc_now_ms();
	if (s->snapshot_due || s->dirty)
		lws_callback_on_writable(wsi);
	return 0;
}
