/*
 * Delivery to subscriber sessions (see delivery.h): subscriptions, applying
 * update sets, the frame a session owes, the write queue and the sweep.
 * No libwebsockets: bytes go out through the session's struct lc_transport.
 *
 * Threads: the worker thread that owns the struct lc_delivery.
 *
 * A note on "serialise once, never queue": a session owes at most one
 * update, represented by its `dirty` flag, never by queued frames. When it
 * can be written it gets the latest counts of its changed URLs, with the
 * delta since what it was last sent, so a slow reader skips intermediate
 * ticks and costs no memory. A session whose one subscription is exactly
 * one tick behind (the common case) is sent the frame cached on the URL's
 * node, built once per tick per worker and shared by every such session.
 *
 * A note on writing at the tick: waiting for a writeable callback costs two
 * epoll_ctl calls and a loop iteration per frame (measured at 19k
 * subscribers, it was most of the worker's time). Writing is safe whenever
 * the transport holds no unsent bytes for the connection (can_write), which
 * is exactly what a writeable callback would wait for. So a session is
 * written directly at the tick; one with unsent bytes waits: for its
 * writeable callback when the transport has one (WebSocket), else for the
 * next tick (SSE). Either way a slow reader holds at most one frame in the
 * transport.
 */
#define _GNU_SOURCE
#include "lc/delivery.h"
#include "lc/hash.h"
#include "lc/limits.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
lc_delivery_init(struct lc_delivery *d, const struct lc_config *cfg,
		 struct lc_counter *counter, const _Atomic uint64_t *tick_seq,
		 size_t headroom)
{
	memset(d, 0, sizeof(*d));
	d->cfg = cfg;
	d->counter = counter;
	d->tick_seq = tick_seq;
	d->headroom = headroom;
	return lc_subs_init(&d->subs);
}

void
lc_delivery_cleanup(struct lc_delivery *d)
{
	lc_subs_cleanup(&d->subs);
	free(d->buf);
	d->buf = NULL;
	d->buf_cap = 0;
}

/* Ensures the scratch buffer holds headroom + n bytes. */
static char *
scratch(struct lc_delivery *d, size_t n)
{
	if (n > d->buf_cap) {
		size_t cap = d->buf_cap ? d->buf_cap : 65536;
		char *p;

		while (cap < n)
			cap *= 2;
		p = realloc(d->buf, d->headroom + cap);
		if (!p)
			return NULL;
		d->buf = p;
		d->buf_cap = cap;
	}
	return d->buf;
}

static void
link_session(struct lc_delivery *d, struct lc_session *s)
{
	s->prev = NULL;
	s->next = d->sessions;
	if (d->sessions)
		d->sessions->prev = s;
	d->sessions = s;
}

static void
unlink_session(struct lc_delivery *d, struct lc_session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else if (d->sessions == s)
		d->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

void
lc_session_init(struct lc_session *s, struct lc_delivery *d,
		const struct lc_transport *t, void *conn)
{
	int64_t now = lc_mono_ms();

	memset(s, 0, sizeof(*s));
	s->t = t;
	s->conn = conn;
	s->d = d;
	s->subs = &s->one;
	s->cap = 1;
	s->last_tx_ms = s->last_rx_ms = now;
	link_session(d, s);
	LC_STAT_ADD(d->stats.conns[t->kind], 1);
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

/* What a subscription to a URL of len bytes costs its IP (limits.h). */
static int64_t
sub_cost(size_t len)
{
	return (int64_t)len + LC_SUB_OVERHEAD_BYTES;
}

static void
give_back(struct lc_session *s, int64_t bytes)
{
	if (s->ip_sub_bytes && bytes)
		lc_sub_bytes_give(s->ip_sub_bytes, bytes);
}

/* Tells the dispatcher e's watching figure moved. */
static void
watch_changed(struct lc_delivery *d, struct lc_entry *e)
{
	if (d->source && lc_source_watch_changed(d->source, e))
		LC_STAT_ADD(d->stats.watch_lost, 1);
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
	struct lc_delivery *d = s->d;
	size_t max = (size_t)d->cfg->max_subs_per_conn, fresh = 0;
	int64_t taken = 0; /* this URL's bytes on the IP's account */

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
			uint64_t h = lc_hash(urls[i], lens[i]);

			/*
			 * One address may hold only so many URL bytes
			 * subscribed, whatever its connections:
			 * subscribe-only URLs cost memory nobody else pays.
			 */
			if (s->ip_sub_bytes &&
			    !lc_sub_bytes_take(
				s->ip_sub_bytes, sub_cost(lens[i]),
				d->cfg->max_subscribed_bytes_per_ip))
				return lc_api_error_set(
				    err, 429, "too_many_subscriptions",
				    "this address holds "
				    "max_subscribed_bytes_per_ip (%d) of "
				    "subscribed URLs; unsubscribe or close "
				    "connections first",
				    d->cfg->max_subscribed_bytes_per_ip);
			taken = s->ip_sub_bytes ? sub_cost(lens[i]) : 0;
			sub = &s->subs[s->nsubs];
			for (int tries = 0;; tries++) {
				/*
				 * A URL nobody liked gets a watched entry,
				 * reclaimed once unsubscribed (counter.c);
				 * if it was being retired just now, look
				 * again.
				 */
				int rc;

				e = lc_counter_find_or_insert_watched(
				    d->counter, urls[i], lens[i], h, &rc);
				if (rc == LC_EFULL) {
					give_back(s, taken);
					return lc_api_error_set(
					    err, 507, "url_limit",
					    "the server holds max_urls "
					    "distinct URLs; new URLs are "
					    "refused");
				}
				if (!e || !lc_entry_json_key(e))
					goto oom;
				memset(sub, 0, sizeof(*sub));
				sub->owner = s;
				if (lc_subs_add(&d->subs, e, sub))
					goto oom;
				if (!atomic_load_explicit(&e->retired,
							  memory_order_seq_cst))
					break;
				lc_subs_remove(&d->subs, sub);
				if (tries == 3)
					goto oom;
			}
			s->nsubs++;
			taken = 0;
			LC_STAT_ADD(d->stats.subscriptions, 1);
			watch_changed(d, e);
		}
		/* Every (re)subscribe is answered with a snapshot. */
		sub->snapshot_due = true;
	}
	if (!s->dirty && !s->snapshot_due)
		s->dirty_since_ms = lc_mono_ms();
	s->snapshot_due = true;
	if (s->t->want_writable)
		s->t->want_writable(s);
	else
		lc_session_queue(s);
	return 0;
oom:
	give_back(s, taken);
	return lc_api_error_set(err, 503, "out_of_memory",
				"server out of memory");
}

static void
drop_sub(struct lc_session *s, struct lc_sub *sub)
{
	struct lc_sub *last = &s->subs[s->nsubs - 1];

	struct lc_entry *e = sub->node->e;

	give_back(s, sub_cost(e->url_len));
	lc_subs_remove(&s->d->subs, sub);
	watch_changed(s->d, e);
	if (sub != last) {
		*sub = *last;
		sub->node->subs[sub->idx] = sub;
	}
	s->nsubs--;
	LC_STAT_ADD(s->d->stats.subscriptions, -1);
}

void
lc_session_unsubscribe(struct lc_session *s, const char *url, size_t len)
{
	struct lc_sub *sub = find_sub(s, url, len);

	if (sub)
		drop_sub(s, sub);
}

/* Drops s from the pending or waiting list (before it is freed). */
static void
unqueue(struct lc_session *s)
{
	struct lc_delivery *d = s->d;
	struct lc_session **lists[2] = {&d->pending, &d->waiting};

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
			if (i == 0 && d->pending_tail == s)
				d->pending_tail = prev;
			break;
		}
	}
	s->queued = false;
}

void
lc_session_cleanup(struct lc_session *s)
{
	struct lc_delivery *d = s->d;

	if (!d)
		return;
	while (s->nsubs)
		drop_sub(s, &s->subs[s->nsubs - 1]);
	if (s->subs != &s->one)
		free(s->subs);
	s->subs = &s->one;
	unqueue(s);
	unlink_session(d, s);
	LC_STAT_ADD(d->stats.conns[s->t->kind], -1);
	s->d = NULL;
}

/* ------------------------------------------------------------------ */

/* A growing text in the delivery's scratch buffer, after the headroom. */
struct out {
	struct lc_delivery *d;
	size_t len;
	bool oom;
};

static void
put(struct out *o, const char *s, size_t n)
{
	char *b;

	if (o->oom)
		return;
	b = scratch(o->d, o->len + n + 1);
	if (!b) {
		o->oom = true;
		return;
	}
	memcpy(b + o->d->headroom + o->len, s, n);
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

static void
update_head(struct out *o, const struct lc_transport *t, uint64_t seq,
	    int64_t ts)
{
	char tmp[160];
	int n = t->update_open(tmp, sizeof(tmp), seq, ts);

	put(o, tmp, (size_t)n);
}

static void
update_item(struct out *o, bool first, const char *key, int64_t count,
	    int64_t delta, int64_t views, int64_t watching)
{
	if (!first)
		put(o, ",", 1);
	puts_(o, key);
	putf(o,
	     ":{\"count\":%" PRId64 ",\"delta\":%" PRId64 ",\"views\":%" PRId64
	     ",\"watching\":%" PRId64 "}",
	     count, delta, views, watching);
}

/* Whether node holds figures sub has not been sent. */
static bool
news_for(const struct lc_sub *sub, const struct lc_subs_node *node)
{
	return node->seq > sub->last_seq &&
	       (node->count != sub->last_count ||
		node->views != sub->last_views ||
		node->watching != sub->last_watching);
}

static void
sent(struct lc_sub *sub, const struct lc_subs_node *node)
{
	sub->last_count = node->count;
	sub->last_views = node->views;
	sub->last_watching = node->watching;
	sub->last_seq = node->seq;
}

static size_t
snapshot_frame(struct lc_session *s, char **frame)
{
	struct lc_delivery *d = s->d;
	struct out o = {.d = d};
	uint64_t seq = atomic_load_explicit(d->tick_seq, memory_order_acquire);
	bool first = true;

	puts_(&o, s->t->snapshot_open);
	for (uint16_t i = 0; i < s->nsubs; i++) {
		struct lc_sub *sub = &s->subs[i];
		struct lc_entry *e = sub->node->e;
		struct lc_counts k;

		if (!sub->snapshot_due)
			continue;
		/* seq was read first: the figures include at least tick seq. */
		k = lc_entry_read(e);
		sub->last_count = k.likes - k.unlikes;
		sub->last_views = k.views;
		/* As last published (at most watching_interval_ms old), so
		 * the updates that follow never step back. */
		sub->last_watching =
		    atomic_load_explicit(&e->watch_sent, memory_order_relaxed);
		sub->last_seq = seq;
		if (!first)
			put(&o, ",", 1);
		first = false;
		puts_(&o, atomic_load(&e->json_key));
		putf(&o, ":%" PRId64, sub->last_count);
	}
	/* The same URLs again with all their live stats (API.md). */
	put(&o, "},\"stats\":{", 11);
	first = true;
	for (uint16_t i = 0; i < s->nsubs; i++) {
		struct lc_sub *sub = &s->subs[i];

		if (!sub->snapshot_due)
			continue;
		sub->snapshot_due = false;
		if (!first)
			put(&o, ",", 1);
		first = false;
		puts_(&o, atomic_load(&sub->node->e->json_key));
		putf(&o,
		     ":{\"count\":%" PRId64 ",\"views\":%" PRId64
		     ",\"watching\":%" PRId64 "}",
		     sub->last_count, sub->last_views, sub->last_watching);
	}
	s->snapshot_due = false;
	puts_(&o, s->t->frame_close);
	if (o.oom)
		return 0;
	LC_STAT_ADD(d->stats.snapshots, 1);
	*frame = d->buf + d->headroom;
	return o.len;
}

/* The per-node frame shared by single-URL sessions, built once a tick. */
static size_t
shared_frame(struct lc_session *s, struct lc_subs_node *node, char **frame)
{
	struct lc_delivery *d = s->d;
	int k = s->t->kind;

	if (node->frame_seq[k] != node->seq) {
		struct out o = {.d = d};
		char *mem;

		update_head(&o, s->t, node->seq, node->ts_ms);
		update_item(&o, true, atomic_load(&node->e->json_key),
			    node->count, node->delta, node->views,
			    node->watching);
		puts_(&o, s->t->frame_close);
		if (o.oom || !(mem = malloc(d->headroom + o.len)))
			return 0;
		memcpy(mem + d->headroom, d->buf + d->headroom, o.len);
		free(node->frame_mem[k]);
		node->frame_mem[k] = mem;
		node->frame[k] = mem + d->headroom;
		node->frame_len[k] = o.len;
		node->frame_seq[k] = node->seq;
	}
	*frame = node->frame[k];
	return node->frame_len[k];
}

static size_t
update_frame(struct lc_session *s, char **frame)
{
	struct lc_delivery *d = s->d;
	struct out o = {.d = d};
	bool first = true;

	if (s->nsubs == 1) {
		struct lc_sub *sub = &s->subs[0];
		struct lc_subs_node *node = sub->node;

		if (!news_for(sub, node))
			return 0;
		if (sub->last_count == node->count - node->delta) {
			size_t n = shared_frame(s, node, frame);

			if (n) {
				sent(sub, node);
				LC_STAT_ADD(d->stats.shared_frames, 1);
				return n;
			}
		}
	}
	update_head(&o, s->t, d->seq, d->ts_ms);
	for (uint16_t i = 0; i < s->nsubs; i++) {
		struct lc_sub *sub = &s->subs[i];
		struct lc_subs_node *node = sub->node;

		if (!news_for(sub, node))
			continue;
		update_item(&o, first, atomic_load(&node->e->json_key),
			    node->count, node->count - sub->last_count,
			    node->views, node->watching);
		first = false;
		sent(sub, node);
	}
	if (first)
		return 0;
	puts_(&o, s->t->frame_close);
	if (o.oom)
		return 0;
	*frame = d->buf + d->headroom;
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
		LC_STAT_ADD(s->d->stats.frames[s->t->kind], 1);
	return n;
}

void
lc_session_queue(struct lc_session *s)
{
	struct lc_delivery *d = s->d;

	if (s->queued || s->closing)
		return;
	/*
	 * First in, first out: under load a flush takes several slices and
	 * ticks keep coming; a LIFO would serve the sessions it just wrote
	 * again and starve the ones at its end.
	 */
	s->queued = true;
	s->pending_next = NULL;
	if (d->pending)
		d->pending_tail->pending_next = s;
	else
		d->pending = s;
	d->pending_tail = s;
}

static void
close_session(struct lc_session *s)
{
	s->closing = true;
	s->t->close(s);
}

/* Writes one frame (or a ping when !frame); false when the write failed. */
static bool
write_out(struct lc_session *s, char *frame, size_t n)
{
	int rc;

	if (frame)
		rc = s->t->write(s, frame, n);
	else {
		if (s->t->answers_pings)
			s->ping_sent_ms = lc_mono_ms();
		rc = s->t->write_ping(s);
	}
	if (rc < 0) {
		close_session(s);
		return false;
	}
	s->last_tx_ms = lc_mono_ms();
	s->ping_due = false;
	return true;
}

bool
lc_session_flush(struct lc_session *s)
{
	bool wrote = false;
	char *frame;
	size_t n;

	if (s->closing)
		return true;
	for (int i = 0; i < 2; i++) { /* a snapshot, then an update */
		if (!s->t->can_write(s))
			goto wait;
		n = lc_session_next_frame(s, &frame);
		if (!n)
			break;
		if (!write_out(s, frame, n))
			return true;
		wrote = true;
	}
	if (!wrote && s->ping_due && s->t->can_write(s))
		write_out(s, NULL, 0);
	if (!s->snapshot_due && !s->dirty)
		return true;
wait:
	if (s->t->want_writable) {
		s->t->want_writable(s);
		return true;
	}
	return false;
}

void
lc_delivery_flush_pending(struct lc_delivery *d)
{
	struct lc_session *s;
	int budget = LC_FLUSH_SLICE;

	while (budget-- && (s = d->pending)) {
		d->pending = s->pending_next;
		if (!d->pending)
			d->pending_tail = NULL;
		if (lc_session_flush(s)) {
			s->queued = false;
			continue;
		}
		/* Unsent bytes: it waits, coalescing, for the next tick. */
		s->pending_next = d->waiting;
		d->waiting = s;
	}
	if (d->pending && d->schedule_flush)
		d->schedule_flush(d);
}

void
lc_delivery_requeue_waiting(struct lc_delivery *d)
{
	struct lc_session *s;

	/* They waited a tick already: they go first. */
	while ((s = d->waiting)) {
		d->waiting = s->pending_next;
		s->pending_next = d->pending;
		if (!d->pending)
			d->pending_tail = s;
		d->pending = s;
	}
}

void
lc_delivery_apply_updates(struct lc_delivery *d, const struct lc_update_set *u)
{
	int64_t now = lc_mono_ms();

	for (size_t i = 0; i < u->n; i++) {
		const struct lc_update *it = &u->items[i];
		struct lc_subs_node *node = lc_subs_find(&d->subs, it->e);

		if (!node)
			continue;
		node->count = it->count;
		node->delta = it->delta;
		node->views = it->views;
		node->watching = it->watching;
		node->seq = u->seq;
		node->ts_ms = u->ts_ms;
		for (uint32_t k = 0; k < node->n; k++) {
			struct lc_session *s = node->subs[k]->owner;

			if (s->dirty) {
				LC_STAT_ADD(d->stats.coalesced, 1);
				continue;
			}
			s->dirty = true;
			s->dirty_since_ms = now;
			lc_session_queue(s);
		}
	}
	d->seq = u->seq;
	d->ts_ms = u->ts_ms;
}

static int64_t
ping_interval_ms(const struct lc_delivery *d, const struct lc_transport *t)
{
	return t->kind == LC_T_WS ? d->cfg->ws_ping_ms : d->cfg->sse_ping_ms;
}

void
lc_delivery_sweep(struct lc_delivery *d, int64_t now)
{
	const struct lc_config *cfg = d->cfg;

	for (struct lc_session *s = d->sessions; s; s = s->next) {
		int64_t ping_ms = ping_interval_ms(d, s->t);

		if (s->closing)
			continue;
		/*
		 * Stalls are judged by time: bytes waiting in the kernel that
		 * the peer has not acknowledged any of for stall_timeout_ms.
		 * (A small send buffer alone would take minutes to fill at a
		 * few frames a second.)
		 */
		if (d->peer_progress) {
			uint64_t acked;
			uint32_t queued;

			if (d->peer_progress(s, &acked, &queued)) {
				if (!queued || acked != s->peer_acked ||
				    !s->peer_moved_ms) {
					s->peer_acked = acked;
					s->peer_moved_ms = now;
				} else if (now - s->peer_moved_ms >
					   cfg->stall_timeout_ms) {
					lc_info("closing a stalled %s "
						"subscriber (%u bytes "
						"unread for %d ms)",
						s->t->name, queued,
						cfg->stall_timeout_ms);
					LC_STAT_ADD(d->stats.slow_closes, 1);
					close_session(s);
					continue;
				}
			}
		}
		if ((s->dirty || s->snapshot_due) &&
		    now - s->dirty_since_ms > cfg->stall_timeout_ms &&
		    now - s->last_tx_ms > cfg->stall_timeout_ms) {
			lc_info("closing a stalled %s subscriber", s->t->name);
			LC_STAT_ADD(d->stats.slow_closes, 1);
			close_session(s);
			continue;
		}
		if (s->t->answers_pings && s->ping_sent_ms > s->last_rx_ms &&
		    now - s->ping_sent_ms >= ping_ms) {
			/* A ping unanswered for a whole interval: peer gone. */
			close_session(s);
			continue;
		}
		if (now - s->last_tx_ms >= ping_ms) {
			s->ping_due = true;
			lc_session_queue(s);
		}
	}
	lc_delivery_flush_pending(d);
}
