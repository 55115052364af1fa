/*
 * The WebSocket transport: /v1/ws, subprotocol livecount.v1.
 *
 * Threads: the worker thread owning the connection.
 *
 * Client frames (subscribe, unsubscribe, like) are assembled up to
 * max_ws_message_bytes (lws 4.1.6 has no cap of its own: beyond it we close
 * with 1009), rate limited per connection, validated by parse.c, and
 * answered with an error frame when bad. A connection that keeps sending
 * bad frames (10 in one second) is closed with 1008. Error frames go out
 * from LWS_CALLBACK_SERVER_WRITEABLE; snapshots, updates and pings are
 * written by session.c (see lc_session_flush for why at the tick itself).
 */
#define _GNU_SOURCE
#include "lc/common.h"
#include "lc/parse.h"
#include "lc/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STRIKES 10

static struct lc_worker *
worker_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

/* Queues one error frame; a second while one is pending is a strike. */
static int
send_error(struct lc_session *s, const struct lc_api_error *err)
{
	json_t *o;
	char *txt;
	size_t n;

	LC_STAT_ADD(s->w->stats.client_errors, 1);
	if (++s->strikes > MAX_STRIKES) {
		lws_close_reason(s->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
				 (unsigned char *)"too many bad messages", 21);
		return -1;
	}
	if (s->err_frame)
		return 0; /* one is already on its way; this one is dropped */
	o = json_pack("{s:s, s:s, s:s}", "type", "error", "error", err->code,
		      "message", err->message);
	txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!txt)
		return 0;
	n = strlen(txt);
	s->err_frame = malloc(LWS_PRE + n);
	if (s->err_frame) {
		memcpy(s->err_frame + LWS_PRE, txt, n);
		s->err_len = n;
		lws_callback_on_writable(s->wsi);
	}
	free(txt);
	return 0;
}

static int
handle_op(struct lc_session *s, const char *msg, size_t len)
{
	struct lc_worker *w = s->w;
	const struct lc_config *cfg = w->srv->cfg;
	struct lc_limits lim = {.max_url_bytes = (size_t)cfg->max_url_bytes,
				.max_batch_items = (size_t)cfg->max_batch_items,
				.max_json_depth = cfg->max_json_depth};
	struct lc_ws_op op;
	struct lc_api_error err;
	int64_t now = lc_now_ms(), count;
	int rc = 0;

	if (now - s->ops_window_ms >= 1000) {
		s->ops_window_ms = now;
		s->ops_in_window = 0;
		s->strikes = 0;
	}
	if (++s->ops_in_window > (uint32_t)cfg->max_ops_per_sec) {
		lc_api_error_set(&err, 429, "rate_limited",
				 "more than %d messages per second",
				 cfg->max_ops_per_sec);
		return send_error(s, &err);
	}
	if (lc_ws_op_parse(msg, len, &lim, (size_t)cfg->max_subs_per_conn, &op,
			   &err))
		return send_error(s, &err);
	switch (op.kind) {
	case LC_OP_SUBSCRIBE:
	case LC_OP_UNSUBSCRIBE: {
		size_t n = json_array_size(op.urls);
		const char **urls = malloc((n + 1) * sizeof(*urls));
		size_t *lens = malloc((n + 1) * sizeof(*lens));

		if (!urls || !lens) {
			lc_api_error_set(&err, 503, "out_of_memory",
					 "out of memory");
			rc = send_error(s, &err);
		} else {
			for (size_t i = 0; i < n; i++) {
				json_t *u = json_array_get(op.urls, i);

				urls[i] = json_string_value(u);
				lens[i] = json_string_length(u);
			}
			if (op.kind == LC_OP_UNSUBSCRIBE)
				for (size_t i = 0; i < n; i++)
					lc_session_unsubscribe(s, urls[i],
							       lens[i]);
			else if (lc_session_subscribe(s, urls, lens, n, &err))
				rc = send_error(s, &err);
		}
		free(urls);
		free(lens);
		break;
	}
	case LC_OP_LIKE:
		if (!s->authorized) {
			lc_api_error_set(
			    &err, 401, "unauthorized",
			    "likes need the write token (Authorization "
			    "header or ?token= when connecting)");
			rc = send_error(s, &err);
		} else if (atomic_load(&w->srv->draining)) {
			lc_api_error_set(&err, 503, "shutting_down",
					 "server is shutting down");
			rc = send_error(s, &err);
		} else if (lc_source_add(&w->source, w->srv->counter,
					 op.like.url, op.like.url_len,
					 op.like.n, &count)) {
			lc_api_error_set(&err, 503, "out_of_memory",
					 "out of memory");
			rc = send_error(s, &err);
		} else if (op.like.n > 0)
			LC_STAT_ADD(w->stats.likes_accepted,
				    (uint64_t)op.like.n);
		else
			LC_STAT_ADD(w->stats.unlikes_accepted,
				    (uint64_t)-op.like.n);
		break;
	}
	lc_ws_op_free(&op);
	return rc;
}

static int
on_receive(struct lws *wsi, struct lc_session *s, const char *in, size_t len)
{
	size_t max = (size_t)s->w->srv->cfg->max_ws_message_bytes;
	bool first = lws_is_first_fragment(wsi),
	     final = lws_is_final_fragment(wsi);
	struct lc_api_error err;

	s->last_rx_ms = lc_now_ms();
	if (lws_frame_is_binary(wsi)) {
		if (final) {
			lc_api_error_set(&err, 400, "bad_op",
					 "send text frames with JSON");
			return send_error(s, &err);
		}
		return 0;
	}
	/* The common case: a whole small message in one callback. */
	if (first && final && !lws_remaining_packet_payload(wsi)) {
		if (len > max)
			goto too_big;
		return handle_op(s, in, len);
	}
	if (first)
		s->rx_len = 0;
	if (s->rx_len + len > max)
		goto too_big;
	if (s->rx_len + len > s->rx_cap) {
		size_t cap = s->rx_cap ? s->rx_cap : 1024;
		char *p;

		while (cap < s->rx_len + len)
			cap *= 2;
		if (cap > max)
			cap = max;
		p = realloc(s->rx, cap);
		if (!p)
			return -1;
		s->rx = p;
		s->rx_cap = cap;
	}
	memcpy(s->rx + s->rx_len, in, len);
	s->rx_len += len;
	if (!final || lws_remaining_packet_payload(wsi))
		return 0;
	{
		int rc = handle_op(s, s->rx, s->rx_len);

		/* Large buffers are not kept on idle connections. */
		free(s->rx);
		s->rx = NULL;
		s->rx_len = s->rx_cap = 0;
		return rc;
	}
too_big:
	lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
			 (unsigned char *)"message too large", 17);
	return -1;
}

static int
on_writeable(struct lws *wsi, struct lc_session *s)
{
	if (s->closing)
		return -1;
	if (s->err_frame) {
		int rc = lws_write(wsi, (unsigned char *)s->err_frame + LWS_PRE,
				   s->err_len, LWS_WRITE_TEXT);

		free(s->err_frame);
		s->err_frame = NULL;
		if (rc < 0)
			return -1;
		if (s->snapshot_due || s->dirty || s->ping_due)
			lws_callback_on_writable(wsi);
		return 0;
	}
	lc_session_flush(s);
	return s->closing ? -1 : 0;
}

int
lc_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	       void *in, size_t len)
{
	struct lc_session *s = user;
	struct lc_worker *w;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
		const struct lc_config *cfg = worker_of(wsi)->srv->cfg;
		char buf[256];
		int n;

		if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_GET_URI) <=
			0 ||
		    strcmp(buf, "/v1/ws"))
			return 1;
		/* Browsers send Origin; other clients need not. */
		n = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_ORIGIN);
		if (n > 0 && !lc_origin_allowed(cfg, buf, (size_t)n))
			return 1;
		return 0;
	}
	case LWS_CALLBACK_ESTABLISHED: {
		char *buf;
		const char *urls[64];
		size_t lens[64];
		struct lc_api_error err;
		int n, max;

		w = worker_of(wsi);
		lc_session_init(s, w, wsi, LC_T_WS);
		lc_http_count(w, LC_ROUTE_WS, 200);
		s->authorized = lc_http_authorized(wsi, w->srv->cfg);
		if (!s->authorized) {
			char tok[300];
			const char *tv[1];
			size_t tl[1];
			struct lc_api_error e2;

			/* Browsers cannot set headers on a WebSocket: ?token=
			 */
			s->authorized =
			    lc_http_query(wsi, "token", tok, sizeof(tok), tv,
					  tl, 1, &e2) == 1 &&
			    lc_token_matches(w->srv->cfg, tv[0], tl[0]);
		}
		/* Query args are gone after this callback: read them now. */
		max = w->srv->cfg->max_urls_per_request;
		buf = malloc((size_t)max * 2049 + 1);
		if (!buf)
			return -1;
		n = lc_http_query(wsi, "url", buf, (size_t)max * 2049 + 1, urls,
				  lens, max, &err);
		if (n < 0 || (n > 0 && lc_session_subscribe(s, urls, lens,
							    (size_t)n, &err)))
			send_error(s, &err);
		free(buf);
		return 0;
	}
	case LWS_CALLBACK_RECEIVE:
		return on_receive(wsi, s, in, len);
	case LWS_CALLBACK_RECEIVE_PONG:
		s->last_rx_ms = lc_now_ms();
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return on_writeable(wsi, s);
	case LWS_CALLBACK_CLOSED:
		lc_session_cleanup(s);
		return 0;
	default:
		return 0;
	}
}
