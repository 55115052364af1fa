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
 * written by delivery.c through the transport functions below, usually at
 * the tick itself (see the note in delivery.c).
 */
#define _GNU_SOURCE
#include "lc/ws.h"
#include "lc/idem.h"
#include "lc/like.h"
#include "lc/common.h"
#include "lc/delivery.h"
#include "lc/http_policy.h"
#include "lc/http_query.h"
#include "lc/metrics.h"
#include "lc/parse.h"
#include "lc/worker.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STRIKES 10

/* A WebSocket connection: its delivery session and the client side. */
struct ws_conn {
	struct lc_session s;   /* first: lws' user data is also the session */
	bool authorized;       /* presented write_token (or none needed) */
	bool going_away;       /* shutdown: close with 1001 when writeable */
	uint8_t strikes;       /* bad client frames in the current window */
	int64_t ops_window_ms; /* rate limit window start */
	uint32_t ops_in_window;
	char *err_frame; /* pending error frame (LWS_PRE + text) */
	size_t err_len;
	char *ack_frame; /* pending "liked" ack (newest wins), same layout */
	size_t ack_len;
	char *rx; /* partial message being assembled */
	size_t rx_len, rx_cap;
	/* Cluster mode: keyed likes waiting for their claims (like.h); the
	 * connection's next messages wait for them (rx flow control). */
	struct lc_like_job *like_jobs;
};

size_t
lc_ws_pss_size(void)
{
	return sizeof(struct ws_conn);
}

/* ---- the transport, as delivery.c sees it ------------------------- */

static int
update_open(char *buf, size_t size, uint64_t seq, int64_t ts_ms)
{
	return snprintf(buf, size,
			"{\"type\":\"update\",\"seq\":%" PRIu64
			",\"ts\":%" PRId64 ",\"counts\":{",
			seq, ts_ms);
}

static bool
can_write(struct lc_session *s)
{
	return !lws_partial_buffered(s->conn);
}

static int
write_frame(struct lc_session *s, char *frame, size_t len)
{
	return lws_write(s->conn, (unsigned char *)frame, len, LWS_WRITE_TEXT) <
		       0
		   ? -1
		   : 0;
}

static int
write_ping(struct lc_session *s)
{
	/* lws 4.1.6 does not report an empty pong, so the ping carries a
	 * payload for the pong to echo. */
	unsigned char ping[LWS_PRE + 2] = {[LWS_PRE] = 'l', 'c'};

	return lws_write(s->conn, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0 ? -1
									 : 0;
}

static void
close_conn(struct lc_session *s)
{
	lws_set_timeout(s->conn, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void
want_writable(struct lc_session *s)
{
	lws_callback_on_writable(s->conn);
}

/* Shutdown: close code 1001 "going away", from the writeable callback. */
static void
goodbye(struct lc_session *s)
{
	((struct ws_conn *)(void *)s)->going_away = true;
	lws_callback_on_writable(s->conn);
}

static const struct lc_transport ws_transport = {
    .name = "WebSocket",
    .kind = LC_T_WS,
    .answers_pings = true,
    .snapshot_open = "{\"type\":\"snapshot\",\"counts\":{",
    .frame_close = "}}",
    .update_open = update_open,
    .can_write = can_write,
    .write = write_frame,
    .write_ping = write_ping,
    .close = close_conn,
    .want_writable = want_writable,
    .goodbye = goodbye,
};

/* ---- client frames ------------------------------------------------- */

/* Queues one error frame; a second while one is pending is a strike. */
static int
send_error(struct ws_conn *c, const struct lc_api_error *err, int retry_after)
{
	json_t *o;
	char *txt;
	size_t n;

	LC_STAT_ADD(lc_worker_of(c->s.conn)->stats.client_errors, 1);
	if (++c->strikes > MAX_STRIKES) {
		lws_close_reason(c->s.conn, LWS_CLOSE_STATUS_POLICY_VIOLATION,
				 (unsigned char *)"too many bad messages", 21);
		return -1;
	}
	if (c->err_frame)
		return 0; /* one is already on its way; this one is dropped */
	o = json_pack("{s:s, s:s, s:s}", "type", "error", "error", err->code,
		      "message", err->message);
	if (o && retry_after)
		json_object_set_new(o, "retry_after",
				    json_integer(retry_after));
	txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!txt)
		return 0;
	n = strlen(txt);
	c->err_frame = malloc(LWS_PRE + n);
	if (c->err_frame) {
		memcpy(c->err_frame + LWS_PRE, txt, n);
		c->err_len = n;
		lws_callback_on_writable(c->s.conn);
	}
	free(txt);
	return 0;
}

/*
 * Queues the ack of a like sent with an "id". One is kept: a newer ack
 * replaces an unsent older one (its like still counted; a client that
 * missed the ack resends the like with its id and gets the ack again).
 */
static void
send_ack(struct ws_conn *c, const char *txt, size_t n)
{
	char *f = malloc(LWS_PRE + n);

	if (!f)
		return;
	memcpy(f + LWS_PRE, txt, n);
	free(c->ack_frame);
	c->ack_frame = f;
	c->ack_len = n;
	lws_callback_on_writable(c->s.conn);
}

/* The worker's thread: a keyed like's claim came back; answer it. */
static void
like_ready(struct lc_like_job *j)
{
	struct ws_conn *c = j->arg;
	struct lc_like_job **p = &c->like_jobs;

	while (*p && *p != j)
		p = &(*p)->tnext;
	if (*p)
		*p = j->tnext;
	if (j->ans.a.status != 200)
		send_error(c, &j->ans.err, j->ans.retry_after);
	else if (j->req.ws_id && j->ans.a.len)
		send_ack(c, j->ans.a.body, j->ans.a.len);
	if (!c->like_jobs)
		lws_rx_flow_control(c->s.conn, 1);
	lc_like_job_unref(j);
}

static int
handle_op(struct ws_conn *c, const char *msg, size_t len)
{
	struct lc_worker *w = lc_worker_of(c->s.conn);
	const struct lc_config *cfg = w->srv->cfg;
	struct lc_limits lim = {.max_url_bytes = (size_t)cfg->max_url_bytes,
				.max_batch_items = (size_t)cfg->max_batch_items,
				.max_json_depth = cfg->max_json_depth};
	struct lc_ws_op op;
	struct lc_api_error err;
	int64_t now = lc_mono_ms();
	int rc = 0;

	if (now - c->ops_window_ms >= 1000) {
		c->ops_window_ms = now;
		c->ops_in_window = 0;
		c->strikes = 0;
	}
	if (++c->ops_in_window > (uint32_t)cfg->max_ops_per_sec) {
		lc_api_error_set(&err, 429, "rate_limited",
				 "more than %d messages per second",
				 cfg->max_ops_per_sec);
		return send_error(c, &err, 0);
	}
	if (lc_ws_op_parse(msg, len, &lim, (size_t)cfg->max_subs_per_conn, &op,
			   &err))
		return send_error(c, &err, 0);
	switch (op.kind) {
	case LC_OP_SUBSCRIBE:
	case LC_OP_UNSUBSCRIBE: {
		size_t n = json_array_size(op.urls);
		const char **urls = malloc((n + 1) * sizeof(*urls));
		size_t *lens = malloc((n + 1) * sizeof(*lens));

		if (!urls || !lens) {
			lc_api_error_set(&err, 503, "out_of_memory",
					 "out of memory");
			rc = send_error(c, &err, 0);
		} else {
			for (size_t i = 0; i < n; i++) {
				json_t *u = json_array_get(op.urls, i);

				urls[i] = json_string_value(u);
				lens[i] = json_string_length(u);
			}
			if (op.kind == LC_OP_UNSUBSCRIBE)
				for (size_t i = 0; i < n; i++)
					lc_session_unsubscribe(&c->s, urls[i],
							       lens[i]);
			else if (lc_session_subscribe(&c->s, urls, lens, n,
						      &err))
				rc = send_error(c, &err, 0);
		}
		free(urls);
		free(lens);
		break;
	}
	case LC_OP_LIKE:
	case LC_OP_VIEW: {
		char key[LC_IDEM_KEY_MAX + 1];
		bool views = op.kind == LC_OP_VIEW;
		struct lc_like_req r = {
		    .items = &op.like,
		    .n = 1,
		    .views = views,
		    .authorized = c->authorized,
		    .wsi = c->s.conn,
		    .key = op.id ? key : NULL,
		    .key_len = op.id ? lc_idem_make_key(key, views ? 'W' : 'w',
							op.id, op.id_len)
				     : 0,
		    .ws_id = op.id,
		    .ws_id_len = op.id_len};
		struct lc_like_answer *ans = malloc(sizeof(*ans));

		if (!ans) {
			lc_api_error_set(&err, 503, "out_of_memory",
					 "out of memory");
			rc = send_error(c, &err, 1);
			break;
		}
		lc_like_apply(w, &r, ans);
		if (ans->deferred) {
			ans->deferred->finish = like_ready;
			ans->deferred->arg = c;
			ans->deferred->tnext = c->like_jobs;
			c->like_jobs = ans->deferred;
			lws_rx_flow_control(c->s.conn, 0);
		} else if (ans->a.status != 200)
			rc = send_error(c, &ans->err, ans->retry_after);
		else if (op.id && ans->a.len) /* acknowledged when asked */
			send_ack(c, ans->a.body, ans->a.len);
		free(ans);
		break;
	}
	}
	lc_ws_op_free(&op);
	return rc;
}

static int
on_receive(struct lws *wsi, struct ws_conn *c, const char *in, size_t len)
{
	size_t max = (size_t)lc_worker_of(wsi)->srv->cfg->max_ws_message_bytes;
	bool first = lws_is_first_fragment(wsi),
	     final = lws_is_final_fragment(wsi);
	struct lc_api_error err;

	c->s.last_rx_ms = lc_mono_ms();
	if (lws_frame_is_binary(wsi)) {
		if (final) {
			lc_api_error_set(&err, 400, "bad_op",
					 "send text frames with JSON");
			return send_error(c, &err, 0);
		}
		return 0;
	}
	/* The common case: a whole small message in one callback. */
	if (first && final && !lws_remaining_packet_payload(wsi)) {
		if (len > max)
			goto too_big;
		return handle_op(c, in, len);
	}
	if (first)
		c->rx_len = 0;
	if (c->rx_len + len > max)
		goto too_big;
	if (c->rx_len + len > c->rx_cap) {
		size_t cap = c->rx_cap ? c->rx_cap : 1024;
		char *p;

		while (cap < c->rx_len + len)
			cap *= 2;
		if (cap > max)
			cap = max;
		p = realloc(c->rx, cap);
		if (!p)
			return -1;
		c->rx = p;
		c->rx_cap = cap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (!final || lws_remaining_packet_payload(wsi))
		return 0;
	{
		int rc = handle_op(c, c->rx, c->rx_len);

		/* Large buffers are not kept on idle connections. */
		free(c->rx);
		c->rx = NULL;
		c->rx_len = c->rx_cap = 0;
		return rc;
	}
too_big:
	lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
			 (unsigned char *)"message too large", 17);
	return -1;
}

static int
on_writeable(struct lws *wsi, struct ws_conn *c)
{
	if (c->going_away) {
		/*
		 * Code 1001 and a reason, written here: lws 4.1.6 closes a
		 * connection whose writeable callback returns -1 without the
		 * frame lws_close_reason() prepares. 4 is lws' internal
		 * LWS_WRITE_CLOSE (lws-write.h names the gap).
		 */
		unsigned char f[LWS_PRE + 24] = {[LWS_PRE] = 1001 >> 8,
						 1001 & 0xff};

		memcpy(f + LWS_PRE + 2, "server shutting down", 20);
		lws_write(wsi, f + LWS_PRE, 22, (enum lws_write_protocol)4);
		return -1;
	}
	if (c->s.closing)
		return -1;
	if (c->err_frame || c->ack_frame) {
		char **f = c->err_frame ? &c->err_frame : &c->ack_frame;
		size_t n = c->err_frame ? c->err_len : c->ack_len;
		int rc = lws_write(wsi, (unsigned char *)*f + LWS_PRE, n,
				   LWS_WRITE_TEXT);

		free(*f);
		*f = NULL;
		if (rc < 0)
			return -1;
		if (c->ack_frame || c->s.snapshot_due || c->s.dirty ||
		    c->s.ping_due)
			lws_callback_on_writable(wsi);
		return 0;
	}
	lc_session_flush(&c->s);
	return c->s.closing ? -1 : 0;
}

int
lc_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	       void *in, size_t len)
{
	struct ws_conn *c = user;
	struct lc_worker *w;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
		const struct lc_config *cfg = lc_worker_of(wsi)->srv->cfg;
		char buf[256];

		if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_GET_URI) <=
			0 ||
		    strcmp(buf, "/v1/ws"))
			return 1;
		/* Browsers send Origin; other clients need not. */
		return lc_http_origin_refused(wsi, cfg) ? 1 : 0;
	}
	case LWS_CALLBACK_ESTABLISHED: {
		char *buf;
		const char *urls[LC_URLS_PER_REQUEST_MAX];
		size_t lens[LC_URLS_PER_REQUEST_MAX];
		struct lc_api_error err;
		int n, max;

		w = lc_worker_of(wsi);
		lc_session_init(&c->s, &w->delivery, &ws_transport, wsi);
		c->s.ip_sub_bytes = lc_conn_sub_bytes(w, wsi);
		c->ops_window_ms = c->s.last_tx_ms;
		lc_metrics_count_http(&w->stats, LC_ROUTE_WS, 200);
		c->authorized = lc_http_authorized(wsi, w->srv->cfg);
		if (!c->authorized) {
			char tok[300];
			const char *tv[1];
			size_t tl[1];
			struct lc_api_error e2;

			/* Browsers cannot set headers on a WebSocket: ?token=
			 */
			c->authorized =
			    lc_http_query(wsi, "token", tok, sizeof(tok), tv,
					  tl, 1, &e2) == 1 &&
			    lc_http_token_matches(w->srv->cfg, tv[0], tl[0]);
		}
		/* Query args are gone after this callback: read them now. */
		max = w->srv->cfg->max_urls_per_request;
		assert(max <= LC_URLS_PER_REQUEST_MAX); /* config.c's bound */
		buf = malloc(LC_QUERY_URLS_BYTES(max));
		if (!buf)
			return -1;
		n = lc_http_query(wsi, "url", buf, LC_QUERY_URLS_BYTES(max),
				  urls, lens, max, &err);
		if (n < 0 || (n > 0 && lc_session_subscribe(&c->s, urls, lens,
							    (size_t)n, &err)))
			send_error(c, &err, 0);
		free(buf);
		return 0;
	}
	case LWS_CALLBACK_RECEIVE:
		return on_receive(wsi, c, in, len);
	case LWS_CALLBACK_RECEIVE_PONG:
		c->s.last_rx_ms = lc_mono_ms();
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return on_writeable(wsi, c);
	case LWS_CALLBACK_CLOSED:
		while (c->like_jobs) {
			struct lc_like_job *j = c->like_jobs;

			c->like_jobs = j->tnext;
			j->wsi = NULL; /* it releases its claim alone */
			lc_like_job_unref(j);
		}
		lc_session_cleanup(&c->s);
		free(c->err_frame);
		c->err_frame = NULL;
		free(c->ack_frame);
		c->ack_frame = NULL;
		free(c->rx);
		c->rx = NULL;
		return 0;
	default:
		return 0;
	}
}
