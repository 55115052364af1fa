/*
 * Subscriber sessions, shared by the WebSocket and SSE transports:
 * subscribe / unsubscribe, applying update sets, building the next frame
 * (snapshot or coalesced update), and the periodic sweep.
 *
 * Threads: the worker thread that owns the session.
 *
 * A note on "serialise once, never queue": a session owes at most one
 * update, represented by its `dirty` flag, never by queued frames. When it
 * becomes writeable it gets the latest counts of its changed URLs, with the
 * delta since what it was last sent, so a slow reader skips intermediate
 * ticks and costs no memory. A session whose one subscription is exactly
 * one tick behind (the common case) is sent the frame cached on the URL's
 * node, built once per tick per worker and shared by every such session.
 */
#define _GNU_SOURCE
#include "lc/common.h"
#include "lc/hash.h"
#include "lc/parse.h"
#include "lc/server.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
lc_session_init(struct lc_session *s, struct lc_worker *w, struct lws *wsi,
		enum lc_transport t)
{
	int64_t now = lc_now_ms();

	memset(s, 0, sizeof(*s));
	s->wsi = wsi;
	s->w = w;
	s->transport = (uint8_t)t;
	s->subs = &s->one;
	s->cap = 1;
	s->last_tx_ms = s->last_rx_ms = s->ops_window_ms = now;
	lc_worker_session_link(w, s);
	LC_STAT_ADD(w->stats.conns[t], 1);
}

/* After subs moved in memory, repoint their nodes at the new places. */
static void
relink(struct lc_session *s)
{
	for (uint16_t i = 0; i < s->nsubs; i++)
		if (s->subs[i].node)
			s->subs[i].node->subs[s->subs[i].idx] = &s->subs[i];
}

static int
reserve(struct lc_session *s, size_t want)
{
	struct lc_sub *p;
	size_t cap = s->cap;

	if (want <= cap)
		return 0;
	while (cap < want)
		cap *= 2;
	if (s->subs == &s->one) {
		p = malloc(cap * sizeof(*p));
		if (p && s->nsubs)
			p[0] = s->one;
	} else
		p = realloc(s->subs, cap * sizeof(*p));
	if (!p)
		return LC_ENOMEM;
	s->subs = p;
	s->cap = (uint16_t)cap;
	relink(s);
	return 0;
}

static struct lc_sub *
find_sub(struct lc_session *s, const char *url, size_t len)
{
	for (uint16_t i = 0; i < s->nsubs; i++) {
		struct lc_entry *e = s->subs[i].node->e;

		if (e->url_len == len && !memcmp(e->url, url, len))
			return &s->subs[i];
	}
	return NULL;
}

int
lc_session_subscribe(struct lc_session *s, const char *const *urls,
		     const size_t *lens, size_t n, struct lc_api_error *err)
{
	struct lc_worker *w = s->w;
	size_t max = (size_t)w->srv->cfg->max_subs_per_conn, fresh = 0;

	for (size_t i = 0; i < n; i++)
		if (!find_sub(s, urls[i], lens[i]))
			fresh++;
	if (s->nsubs + fresh > max)
		return lc_api_error_set(
		    err, 400, "too_many_subscriptions",
		    "at most %zu subscriptions per connection", max);
	if (reserve(s, s->nsubs + fresh))
		goto oom;
	for (size_t i = 0; i < n; i++) {
		struct lc_sub *sub = find_sub(s, urls[i], lens[i]);
		struct lc_entry *e;

		if (!sub) {
			e = lc_counter_find_or_insert(
			    w->srv->counter, urls[i], lens[i],
			    lc_hash(urls[i], lens[i]));
			if (!e || !lc_entry_json_key(e))
				goto oom;
			sub = &s->subs[s->nsubs];
			memset(sub, 0, sizeof(*sub));
			sub->owner = s;
			if (lc_subs_add(&w->subs, e, sub))
				goto oom;
			s->nsubs++;
			LC_STAT_ADD(w->stats.subscriptions, 1);
		}
		/* Every (re)subscribe is answered with a snapshot. */
		sub->snapshot_due = true;
	}
	if (!s->dirty && !s->snapshot_due)
		s->dirty_since_ms = lc_now_ms();
	s->snapshot_due = true;
	if (s->transport == LC_T_WS)
		lws_callback_on_writable(s->wsi);
	else
		lc_session_queue(s);
	return 0;
oom:
	return lc_api_error_set(err, 503, "out_of_memory",
				"server out of memory");
}

static void
drop_sub(struct lc_session *s, struct lc_sub *sub)
{
	struct lc_sub *last = &s->subs[s->nsubs - 1];

	lc_subs_remove(&s->w->subs, sub);
	if (sub != last) {
		*sub = *last;
		sub->node->subs[sub->idx] = sub;
	}
	s->nsubs--;
	LC_STAT_ADD(s->w->stats.subscriptions, -1);
}

void
lc_session_unsubscribe(struct lc_session *s, const char *url, size_t len)
{
	struct lc_sub *sub = find_sub(s, url, len);

	if (sub)
		drop_sub(s, sub);
}

void
lc_session_cleanup(struct lc_session *s)
{
	if (!s->w)
		return;
	while (s->nsubs)
		drop_sub(s, &s->subs[s->nsubs - 1]);
	if (s->subs != &s->one)
		free(s->subs);
	s->subs = &s->one;
	free(s->err_frame);
	s->err_frame = NULL;
	free(s->rx);
	s->rx = NULL;
	lc_session_unqueue(s);
	lc_worker_session_unlink(s->w, s);
	LC_STAT_ADD(s->w->stats.conns[s->transport], -1);
	s->w = NULL;
}

/* ------------------------------------------------------------------ */

/* A growing text in the worker's scratch buffer, after LWS_PRE. */
struct out {
	struct lc_worker *w;
	size_t len;
	bool oom;
};

static void
put(struct out *o, const char *s, size_t n)
{
	char *b;

	if (o->oom)
		return;
	b = lc_worker_buf(o->w, o->len + n + 1);
	if (!b) {
		o->oom = true;
		return;
	}
	memcpy(b + LWS_PRE + o->len, s, n);
	o->len += n;
}

static void
puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3)))
putf(struct out *o, const char *fmt, ...)
{
	char tmp[160];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	put(o, tmp, (size_t)n);
}

/* Update header: WS {"type":"update",... / SSE id: S\nevent: update\n... */
static void
update_head(struct out *o, enum lc_transport t, uint64_t seq, int64_t ts)
{
	if (t == LC_T_WS)
		putf(o,
		     "{\"type\":\"update\",\"seq\":%" PRIu64 ",\"ts\":%" PRId64
		     ",\"counts\":{",
		     seq, ts);
	else
		putf(o,
		     "id: %" PRIu64 "\nevent: update\ndata: {\"seq\":%" PRIu64
		     ",\"ts\":%" PRId64 ",\"counts\":{",
		     seq, seq, ts);
}

static void
update_item(struct out *o, bool first, const char *key, int64_t count,
	    int64_t delta)
{
	if (!first)
		put(o, ",", 1);
	puts_(o, key);
	putf(o, ":{\"count\":%" PRId64 ",\"delta\":%" PRId64 "}", count, delta);
}

static void
frame_tail(struct out *o, enum lc_transport t)
{
	puts_(o, t == LC_T_WS ? "}}" : "}}\n\n");
}

static size_t
snapshot_frame(struct lc_session *s, char **frame)
{
	struct lc_worker *w = s->w;
	struct out o = {.w = w};
	uint64_t seq =
	    atomic_load_explicit(&w->srv->dispatch->seq, memory_order_acquire);
	bool first = true;

	puts_(&o, s->transport == LC_T_WS
		      ? "{\"type\":\"snapshot\",\"counts\":{"
		      : "event: snapshot\ndata: {\"counts\":{");
	for (uint16_t i = 0; i < s->nsubs; i++) {
		struct lc_sub *sub = &s->subs[i];
		struct lc_entry *e = sub->node->e;

		if (!sub->snapshot_due)
			continue;
		sub->snapshot_due = false;
		/* seq was read first: the count includes at least tick seq. */
		sub->last_count = lc_entry_count(e);
		sub->last_seq = seq;
		if (!first)
			put(&o, ",", 1);
		first = false;
		puts_(&o, atomic_load(&e->json_key));
		putf(&o, ":%" PRId64, sub->last_count);
	}
	s->snapshot_due = false;
	frame_tail(&o, s->transport);
	if (o.oom)
		return 0;
	LC_STAT_ADD(w->stats.snapshots, 1);
	*frame = w->buf + LWS_PRE;
	return o.len;
}

/* The per-node frame shared by single-URL sessions, built once a tick. */
static size_t
shared_frame(struct lc_session *s, struct lc_subs_node *node, char **frame)
{
	int k = s->transport;

	if (node->frame_seq[k] != node->seq) {
		struct out o = {.w = s->w};
		char *mem;

		update_head(&o, s->transport, node->seq, node->ts_ms);
		update_item(&o, true, atomic_load(&node->e->json_key),
			    node->count, node->delta);
		frame_tail(&o, s->transport);
		if (o.oom || !(mem = malloc(LWS_PRE + o.len)))
			return 0;
		memcpy(mem + LWS_PRE, s->w->buf + LWS_PRE, o.len);
		free(node->frame_mem[k]);
		node->frame_mem[k] = mem;
		node->frame[k] = mem + LWS_PRE;
		node->frame_len[k] = o.len;
		node->frame_seq[k] = node->seq;
	}
	*frame = node->frame[k];
	return node->frame_len[k];
}

static size_t
update_frame(struct lc_session *s, char **frame)
{
	struct lc_worker *w = s->w;
	struct out o = {.w = w};
	bool first = true;

	if (s->nsubs == 1) {
		struct lc_sub *sub = &s->subs[0];
		struct lc_subs_node *node = sub->node;

		if (node->seq <= sub->last_seq ||
		    node->count == sub->last_count)
			return 0;
		if (sub->last_count == node->count - node->delta) {
			size_t n = shared_frame(s, node, frame);

			if (n) {
				sub->last_count = node->count;
				sub->last_seq = node->seq;
				LC_STAT_ADD(w->stats.shared_frames, 1);
				return n;
			}
		}
	}
	update_head(&o, s->transport, w->seq, w->ts_ms);
	for (uint16_t i = 0; i < s->nsubs; i++) {
		struct lc_sub *sub = &s->subs[i];
		struct lc_subs_node *node = sub->node;

		if (node->seq <= sub->last_seq ||
		    node->count == sub->last_count)
			continue;
		update_item(&o, first, atomic_load(&node->e->json_key),
			    node->count, node->count - sub->last_count);
		first = false;
		sub->last_count = node->count;
		sub->last_seq = node->seq;
	}
	if (first)
		return 0;
	frame_tail(&o, s->transport);
	if (o.oom)
		return 0;
	*frame = w->buf + LWS_PRE;
	return o.len;
}

size_t
lc_session_next_frame(struct lc_session *s, char **frame)
{
	size_t n;

	if (s->snapshot_due) {
		n = snapshot_frame(s, frame);
		if (n)
			return n;
	}
	if (!s->dirty)
		return 0;
	s->dirty = false;
	n = update_frame(s, frame);
	if (n)
		LC_STAT_ADD(s->w->stats.frames[s->transport], 1);
	return n;
}

void
lc_session_queue(struct lc_session *s)
{
	if (s->queued || s->closing)
		return;
	/*
	 * First in, first out: under load a flush takes several slices and
	 * ticks keep coming; a LIFO would serve the sessions it just wrote
	 * again and starve the ones at its end.
	 */
	s->queued = true;
	s->pending_next = NULL;
	if (s->w->pending)
		s->w->pending_tail->pending_next = s;
	else
		s->w->pending = s;
	s->w->pending_tail = s;
}

void
lc_session_unqueue(struct lc_session *s)
{
	struct lc_session **lists[2] = {&s->w->pending, &s->w->waiting};

	if (!s->queued)
		return;
	for (int i = 0; i < 2; i++) {
		struct lc_session **pp = lists[i], *prev = NULL;

		while (*pp && *pp != s) {
			prev = *pp;
			pp = &(*pp)->pending_next;
		}
		if (*pp) {
			*pp = s->pending_next;
			if (i == 0 && s->w->pending_tail == s)
				s->w->pending_tail = prev;
			break;
		}
	}
	s->queued = false;
}

static bool
write_frame(struct lc_session *s, unsigned char *buf, size_t n,
	    enum lws_write_protocol kind)
{
	if (lws_write(s->wsi, buf, n, kind) < 0) {
		s->closing = true;
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK,
				LWS_TO_KILL_ASYNC);
		return false;
	}
	s->last_tx_ms = lc_now_ms();
	s->ping_due = false;
	return true;
}

/*
 * A note on writing outside WRITEABLE: waiting for a writeable callback
 * costs two epoll_ctl calls and a loop iteration per frame (measured at
 * 19k subscribers, it was most of the worker's time). lws_write is safe
 * whenever lws holds no unsent bytes for the connection
 * (lws_partial_buffered), which is exactly what a writeable callback
 * would wait for. So a session is written directly at the tick; one
 * with unsent bytes waits: WebSocket ones for their WRITEABLE, SSE ones
 * (lws does not call back on a completed transaction) for the next tick.
 * Either way a slow reader holds at most one frame in lws.
 */
bool
lc_session_flush(struct lc_session *s)
{
	enum lws_write_protocol kind =
	    s->transport == LC_T_WS ? LWS_WRITE_TEXT : LWS_WRITE_HTTP;
	bool wrote = false;
	char *frame;
	size_t n;

	if (s->closing)
		return true;
	for (int i = 0; i < 2; i++) { /* a snapshot, then an update */
		if (lws_partial_buffered(s->wsi))
			goto wait;
		n = lc_session_next_frame(s, &frame);
		if (!n)
			break;
		if (!write_frame(s, (unsigned char *)frame, n, kind))
			return true;
		wrote = true;
	}
	if (!wrote && s->ping_due && !lws_partial_buffered(s->wsi)) {
		if (s->transport == LC_T_WS) {
			/*
			 * lws 4.1.6 does not report an empty pong, so the
			 * ping carries a payload for the pong to echo.
			 */
			unsigned char ping[LWS_PRE + 2] = {[LWS_PRE] = 'l',
							   'c'};

			s->ping_sent_ms = lc_now_ms();
			write_frame(s, ping + LWS_PRE, 2, LWS_WRITE_PING);
		} else {
			unsigned char ping[LWS_PRE + 8];

			memcpy(ping + LWS_PRE, ": ping\n\n", 8);
			write_frame(s, ping + LWS_PRE, 8, LWS_WRITE_HTTP);
		}
	}
	if (!s->snapshot_due && !s->dirty)
		return true;
wait:
	if (s->transport == LC_T_WS) {
		lws_callback_on_writable(s->wsi);
		return true;
	}
	return false;
}

/*
 * Sessions written per slice. Writing 5000 frames takes a worker tens of
 * milliseconds; likes arriving meanwhile would wait for all of it and
 * could miss the next tick. Slices let the loop serve them in between.
 */
#define FLUSH_SLICE 256

static void
flush_slice_cb(lws_sorted_usec_list_t *sul)
{
	lc_worker_flush_pending(
	    lws_container_of(sul, struct lc_worker, flush_sul));
}

void
lc_worker_flush_pending(struct lc_worker *w)
{
	struct lc_session *s;
	int budget = FLUSH_SLICE;

	while (budget-- && (s = w->pending)) {
		w->pending = s->pending_next;
		if (!w->pending)
			w->pending_tail = NULL;
		if (lc_session_flush(s)) {
			s->queued = false;
			continue;
		}
		/* Unsent bytes: it waits, coalescing, for the next tick. */
		s->pending_next = w->waiting;
		w->waiting = s;
	}
	if (w->pending && w->ctx)
		lws_sul_schedule(w->ctx, 0, &w->flush_sul, flush_slice_cb, 1);
}

void
lc_worker_requeue_waiting(struct lc_worker *w)
{
	struct lc_session *s;

	/* They waited a tick already: they go first. */
	while ((s = w->waiting)) {
		w->waiting = s->pending_next;
		s->pending_next = w->pending;
		if (!w->pending)
			w->pending_tail = s;
		w->pending = s;
	}
}

void
lc_worker_apply_updates(struct lc_worker *w, struct lc_update_set *u)
{
	int64_t now = lc_now_ms();

	for (size_t i = 0; i < u->n; i++) {
		const struct lc_update *it = &u->items[i];
		struct lc_subs_node *node = lc_subs_find(&w->subs, it->e);

		if (!node)
			continue;
		node->count = it->count;
		node->delta = it->delta;
		node->seq = u->seq;
		node->ts_ms = u->ts_ms;
		for (uint32_t k = 0; k < node->n; k++) {
			struct lc_session *s = node->subs[k]->owner;

			if (s->dirty) {
				LC_STAT_ADD(w->stats.coalesced, 1);
				continue;
			}
			s->dirty = true;
			s->dirty_since_ms = now;
			lc_session_queue(s);
		}
	}
	w->seq = u->seq;
	w->ts_ms = u->ts_ms;
}

void
lc_worker_sweep(struct lc_worker *w, int64_t now)
{
	const struct lc_config *cfg = w->srv->cfg;

	for (struct lc_session *s = w->sessions; s; s = s->next) {
		if (s->closing)
			continue;
		if ((s->dirty || s->snapshot_due) &&
		    now - s->dirty_since_ms > cfg->stall_timeout_ms &&
		    now - s->last_tx_ms > cfg->stall_timeout_ms) {
			lc_info("closing a stalled %s subscriber",
				s->transport == LC_T_WS ? "WebSocket" : "SSE");
			LC_STAT_ADD(w->stats.slow_closes, 1);
			s->closing = true;
			lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK,
					LWS_TO_KILL_ASYNC);
			continue;
		}
		if (s->transport == LC_T_WS &&
		    s->ping_sent_ms > s->last_rx_ms &&
		    now - s->ping_sent_ms >= cfg->ws_ping_ms) {
			/* A ping unanswered for a whole interval: peer gone. */
			s->closing = true;
			lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK,
					LWS_TO_KILL_ASYNC);
			continue;
		}
		if (now - s->last_tx_ms >= (s->transport == LC_T_WS
						? cfg->ws_ping_ms
						: cfg->sse_ping_ms)) {
			s->ping_due = true;
			lc_session_queue(s);
		}
	}
	lc_worker_flush_pending(w);
}
