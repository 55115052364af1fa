/*
 * The Server-Sent Events transport: GET /v1/events?url=U[&url=U2...].
 *
 * Threads: the worker thread owning the stream.
 *
 * The stream starts with `event: snapshot`, then carries `event: update`
 * frames with `id: <seq>`, which delivery.c builds (and shares) with the
 * wire format below, exactly like the WebSocket ones. A reconnecting client
 * (Last-Event-ID header or lastEventID parameter) needs nothing special:
 * every stream opens with a fresh snapshot, and counts are absolute.
 *
 * A note on lws 4.1.6 and HTTP/1 SSE (docs/LWS-NOTES.md, lws issue #2455):
 * a response that never completes stays in lws' "doing transaction" state,
 * where lws ignores POLLIN; when the client leaves, the readable EOF is
 * never consumed and the worker spins at 100% CPU until a write fails. So
 * once the headers and the snapshot are written we tell lws the HTTP
 * transaction is complete. The connection is then an idle keep-alive
 * connection to lws: it reads, and a client that leaves is noticed and
 * closed at once. lws no longer calls HTTP_WRITEABLE for it, so the stream
 * has no want_writable: delivery writes its frames directly, from the tick
 * that produces them (and the sweep, for pings), skipping a stream whose
 * socket is full: it stays dirty, coalesces, and is retried next tick. The
 * session therefore lives in its own allocation, hung on the connection's
 * struct lc_conn (lws frees per-protocol user data when a transaction
 * completes).
 */
#define _GNU_SOURCE
#include "lc/sse.h"
#include "lc/common.h"
#include "lc/delivery.h"
#include "lc/http_log.h"
#include "lc/http_policy.h"
#include "lc/http_query.h"
#include "lc/http_reply.h"
#include "lc/metrics.h"
#include "lc/parse.h"
#include "lc/worker.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int
update_open(char *buf, size_t size, uint64_t seq, int64_t ts_ms)
{
	return snprintf(buf, size,
			"id: %" PRIu64
			"\nevent: update\ndata: {\"seq\":%" PRIu64
			",\"ts\":%" PRId64 ",\"counts\":{",
			seq, seq, ts_ms);
}

static bool
can_write(struct lc_session *s)
{
	return !lws_partial_buffered(s->conn);
}

static int
write_frame(struct lc_session *s, char *frame, size_t len)
{
	return lws_write(s->conn, (unsigned char *)frame, len, LWS_WRITE_HTTP) <
		       0
		   ? -1
		   : 0;
}

static int
write_ping(struct lc_session *s)
{
	unsigned char ping[LWS_PRE + 8];

	memcpy(ping + LWS_PRE, ": ping\n\n", 8);
	return write_frame(s, (char *)ping + LWS_PRE, 8);
}

static void
close_stream(struct lc_session *s)
{
	lws_set_timeout(s->conn, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/*
 * Shutdown: a retry: hint (the reconnect delay an EventSource uses; the
 * stream's end then looks like any dropped stream to it), then the end.
 */
static void
goodbye(struct lc_session *s)
{
	unsigned char msg[LWS_PRE + 32];
	static const char hint[] = "retry: 1000\n\n";

	if (s->closing)
		return;
	memcpy(msg + LWS_PRE, hint, sizeof(hint) - 1);
	write_frame(s, (char *)msg + LWS_PRE, sizeof(hint) - 1);
	s->closing = true;
	close_stream(s);
}

static const struct lc_transport sse_transport = {
    .name = "SSE",
    .kind = LC_T_SSE,
    .answers_pings = false,
    .snapshot_open = "event: snapshot\ndata: {\"counts\":{",
    .frame_close = "}}\n\n",
    .update_open = update_open,
    .can_write = can_write,
    .write = write_frame,
    .write_ping = write_ping,
    .close = close_stream,
    .want_writable = NULL, /* no HTTP_WRITEABLE after completion: next tick */
    .goodbye = goodbye,
};

struct lc_session *
lc_sse_session(struct lws *wsi)
{
	struct lc_conn *c = lc_conn_of(wsi);

	return c ? c->sse : NULL;
}

void
lc_sse_destroyed(struct lws *wsi)
{
	struct lc_session *s = lc_sse_session(wsi);

	if (!s)
		return;
	lc_conn_of(wsi)->sse = NULL;
	lc_session_cleanup(s);
	free(s);
}

/* Can the connection outlive this response (HTTP/1.1, or 1.0 asking)? */
static bool
keeps_alive(struct lws *wsi)
{
	char v[16], c[128];
	int n = lws_hdr_copy(wsi, c, sizeof(c), WSI_TOKEN_CONNECTION);
	bool http10 = lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP) > 0 &&
		      !strcmp(v, "HTTP/1.0");

	if (n > 0 && strcasestr(c, "close"))
		return false;
	return !http10 || (n > 0 && strcasestr(c, "keep-alive"));
}

int
lc_sse_start(struct lws *wsi, struct lc_worker *w)
{
	int max = w->srv->cfg->max_urls_per_request;
	size_t bufsz = LC_QUERY_URLS_BYTES(max);
	char *buf = malloc(bufsz);
	const char *urls[LC_URLS_PER_REQUEST_MAX];
	size_t lens[LC_URLS_PER_REQUEST_MAX];
	unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
					  *end = hdr + sizeof(hdr);
	struct lc_session *s;
	struct lc_api_error err;
	int n;

	if (!buf)
		return lc_http_error(wsi, 503, "out_of_memory",
				     "out of memory");
	assert(max <= LC_URLS_PER_REQUEST_MAX); /* config.c's bound */
	n = lc_http_query(wsi, "url", buf, bufsz, urls, lens, max, &err);
	if (n <= 0) {
		free(buf);
		if (!n)
			lc_api_error_set(
			    &err, 400, "bad_url",
			    "at least one url query parameter needed");
		return lc_http_error(wsi, err.status, err.code, err.message);
	}
	s = lc_conn_of(wsi) ? calloc(1, sizeof(*s)) : NULL;
	if (!s) {
		free(buf);
		return lc_http_error(wsi, 503, "out_of_memory",
				     "out of memory");
	}
	lc_session_init(s, &w->delivery, &sse_transport, wsi);
	lc_conn_of(wsi)->sse = s;
	s->ip_sub_bytes = lc_conn_sub_bytes(w, wsi);
	if (lc_session_subscribe(s, urls, lens, (size_t)n, &err)) {
		free(buf);
		lc_sse_destroyed(wsi);
		return lc_http_error(wsi, err.status, err.code, err.message);
	}
	free(buf);
	if (lws_add_http_header_status(wsi, HTTP_STATUS_OK, &p, end) ||
	    lws_add_http_header_by_token(
		wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
		(const unsigned char *)"text/event-stream", 17, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
					 (const unsigned char *)"no-cache", 8,
					 &p, end) ||
	    lws_add_http_header_by_name(
		wsi, (const unsigned char *)"x-accel-buffering:",
		(const unsigned char *)"no", 2, &p, end) ||
	    lc_http_add_cors(wsi, w->srv->cfg, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lc_metrics_count_http(&w->stats, LC_ROUTE_EVENTS, 200);
	if (lws_wsi_user(wsi))
		lc_http_log(wsi, lws_wsi_user(wsi), 200, 0);
	/* The snapshot goes out now, before lws forgets the request. */
	lc_session_flush(s);
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	if (!keeps_alive(wsi)) {
		/*
		 * HTTP/1.0 or Connection: close (a default reverse proxy):
		 * completing the transaction would close the connection, so
		 * the stream stays lws' open transaction, written without
		 * chunking, with POLLIN off (no spin on the client's EOF, see
		 * the note at the top) and a once-a-second check for it.
		 */
		lws_rx_flow_control(wsi, 0);
		lws_set_timer_usecs(wsi, LWS_USEC_PER_SEC);
		return 0;
	}
	/*
	 * Hand the connection back to lws as an idle keep-alive one (see the
	 * note at the top). Completing the transaction arms lws' keep-alive
	 * idle timeout (http_keepalive_s), which would end the stream then,
	 * and keeps every stream in the thread's sorted timeout list, walked
	 * by each like's own completion: taken off again after it.
	 */
	if (lws_http_transaction_completed(wsi))
		return -1;
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	return 0;
}

int
lc_sse_timer(struct lws *wsi)
{
	char b;
	ssize_t r;

	if (!lc_sse_session(wsi))
		return 0;
	r = recv(lws_get_socket_fd(wsi), &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (!r || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
		return -1; /* the client (or its proxy) left */
	lws_set_timer_usecs(wsi, LWS_USEC_PER_SEC);
	return 0;
}
