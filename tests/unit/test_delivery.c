/*
 * Unit tests: delivery to subscriber sessions, driven through a fake
 * transport (no sockets, no lws): snapshots, coalescing, at most one
 * pending update, the shared per-URL frame, stall closes, pings, and
 * unsubscribing or closing while a write is pending.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc/config.h"
#include "lc/counter.h"
#include "lc/delivery.h"
#include "lc/hash.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADROOM 16

/* What the fake transport saw, per connection. */
struct fake_conn {
	bool writable; /* can_write answer */
	int writes, pings, closes, want_writable;
	char last[512];	      /* last frame written */
	const char *last_ptr; /* its address (to see shared frames) */
};

static int
fake_update_open(char *buf, size_t size, uint64_t seq, int64_t ts_ms)
{
	return snprintf(buf, size, "U%" PRIu64 "@%" PRId64 "{", seq, ts_ms);
}

static bool
fake_can_write(struct lc_session *s)
{
	return ((struct fake_conn *)s->conn)->writable;
}

static int
fake_write(struct lc_session *s, char *frame, size_t len)
{
	struct fake_conn *c = s->conn;

	/* The headroom before the frame is writable (lws writes there). */
	memset(frame - HEADROOM, 0, HEADROOM);
	assert_true(len < sizeof(c->last));
	memcpy(c->last, frame, len);
	c->last[len] = '\0';
	c->last_ptr = frame;
	c->writes++;
	return 0;
}

static int
fake_ping(struct lc_session *s)
{
	((struct fake_conn *)s->conn)->pings++;
	return 0;
}

static void
fake_close(struct lc_session *s)
{
	((struct fake_conn *)s->conn)->closes++;
}

static void
fake_want_writable(struct lc_session *s)
{
	((struct fake_conn *)s->conn)->want_writable++;
}

/* Like SSE: no writeable callback, a full socket waits for the next tick. */
static const struct lc_transport tick_transport = {
    .name = "fake",
    .kind = LC_T_SSE,
    .snapshot_open = "S{",
    .frame_close = "}",
    .update_open = fake_update_open,
    .can_write = fake_can_write,
    .write = fake_write,
    .write_ping = fake_ping,
    .close = fake_close,
};

/* Like WebSocket: answers pings, has a writeable callback. */
static const struct lc_transport cb_transport = {
    .name = "fake-ws",
    .kind = LC_T_WS,
    .answers_pings = true,
    .snapshot_open = "S{",
    .frame_close = "}",
    .update_open = fake_update_open,
    .can_write = fake_can_write,
    .write = fake_write,
    .write_ping = fake_ping,
    .close = fake_close,
    .want_writable = fake_want_writable,
};

struct fx {
	struct lc_config cfg;
	struct lc_counter counter;
	_Atomic uint64_t seq;
	struct lc_delivery d;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->cfg.max_subs_per_conn = 100;
	f->cfg.stall_timeout_ms = 10000;
	f->cfg.ws_ping_ms = 30000;
	f->cfg.sse_ping_ms = 15000;
	assert_int_equal(lc_counter_init(&f->counter, 16), 0);
	assert_int_equal(
	    lc_delivery_init(&f->d, &f->cfg, &f->counter, &f->seq, HEADROOM),
	    0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	lc_delivery_cleanup(&f->d);
	lc_counter_cleanup(&f->counter);
	free(f);
	return 0;
}

static struct lc_entry *
entry(struct fx *f, const char *url)
{
	return lc_counter_find_or_insert(&f->counter, url, strlen(url),
					 lc_hash(url, strlen(url)));
}

static void
subscribe(struct lc_session *s, const char *url)
{
	const char *urls[1] = {url};
	size_t lens[1] = {strlen(url)};
	struct lc_api_error err;

	assert_int_equal(lc_session_subscribe(s, urls, lens, 1, &err), 0);
}

/* Publishes one tick: url's count becomes count (delta from before). */
static void
tick(struct fx *f, uint64_t seq, const char *url, int64_t count, int64_t delta)
{
	struct lc_update_set *u =
	    calloc(1, sizeof(*u) + sizeof(struct lc_update));

	assert_non_null(u);
	u->seq = seq;
	u->ts_ms = 1000 * (int64_t)seq;
	u->n = 1;
	u->items[0].e = entry(f, url);
	u->items[0].count = count;
	u->items[0].delta = delta;
	atomic_store(&f->seq, seq);
	lc_delivery_apply_updates(&f->d, u);
	free(u);
}

static size_t
queue_len(const struct lc_session *head)
{
	size_t n = 0;

	for (; head; head = head->pending_next)
		n++;
	return n;
}

static void
test_snapshot_on_subscribe(void **state)
{
	struct fx *f = *state;
	struct fake_conn c = {.writable = true};
	struct lc_session s;

	lc_session_init(&s, &f->d, &tick_transport, &c);
	subscribe(&s, "https://a.example/");
	assert_true(s.queued);
	lc_delivery_flush_pending(&f->d);
	assert_int_equal(c.writes, 1);
	assert_string_equal(c.last, "S{\"https://a.example/\":0},\"stats\":{"
				    "\"https://a.example/\":{\"count\":0,"
				    "\"views\":0,\"watching\":0}}");
	assert_int_equal(atomic_load(&f->d.stats.snapshots), 1);
	assert_null(f->d.pending);
	lc_session_cleanup(&s);
	assert_int_equal(atomic_load(&f->d.stats.conns[LC_T_SSE]), 0);
	assert_int_equal(atomic_load(&f->d.stats.subscriptions), 0);
}

/* Ticks arriving before a session can write become one update. */
static void
test_coalescing(void **state)
{
	struct fx *f = *state;
	struct fake_conn c = {.writable = true};
	struct lc_session s;

	lc_session_init(&s, &f->d, &tick_transport, &c);
	subscribe(&s, "https://a.example/");
	lc_delivery_flush_pending(&f->d);
	c.writable = false;
	tick(f, 1, "https://a.example/", 3, 3);
	tick(f, 2, "https://a.example/", 5, 2);
	tick(f, 3, "https://a.example/", 9, 4);
	assert_int_equal(atomic_load(&f->d.stats.coalesced), 2);
	/* At most one pending update: queued once, whatever the ticks. */
	assert_int_equal(queue_len(f->d.pending), 1);
	lc_delivery_flush_pending(&f->d);
	assert_int_equal(c.writes, 1); /* only the snapshot so far */
	assert_int_equal(queue_len(f->d.waiting), 1);
	assert_true(s.dirty);
	/* Next tick: still one update owed, with the newest count. */
	c.writable = true;
	lc_delivery_requeue_waiting(&f->d);
	lc_delivery_flush_pending(&f->d);
	assert_int_equal(c.writes, 2);
	assert_string_equal(
	    c.last, "U3@3000{\"https://a.example/\":"
		    "{\"count\":9,\"delta\":9,\"views\":0,\"watching\":0}}");
	assert_false(s.dirty);
	assert_null(f->d.pending);
	assert_null(f->d.waiting);
	lc_session_cleanup(&s);
}

/* Single-URL sessions one tick behind share one frame built once. */
static void
test_shared_frame(void **state)
{
	struct fx *f = *state;
	struct fake_conn c1 = {.writable = true}, c2 = {.writable = true},
			 c3 = {.writable = true};
	struct lc_session s1, s2, s3;

	lc_session_init(&s1, &f->d, &tick_transport, &c1);
	lc_session_init(&s2, &f->d, &tick_transport, &c2);
	lc_session_init(&s3, &f->d, &cb_transport, &c3);
	subscribe(&s1, "https://hot.example/");
	subscribe(&s2, "https://hot.example/");
	subscribe(&s3, "https://hot.example/");
	lc_delivery_flush_pending(&f->d);
	lc_session_flush(&s3); /* the writeable callback of a ws session */
	tick(f, 1, "https://hot.example/", 7, 7);
	lc_delivery_flush_pending(&f->d);
	assert_int_equal(c1.writes, 2);
	assert_int_equal(c2.writes, 2);
	assert_int_equal(c3.writes, 2);
	assert_ptr_equal(c1.last_ptr, c2.last_ptr); /* the very same bytes */
	assert_ptr_not_equal(c1.last_ptr, c3.last_ptr); /* other transport */
	assert_string_equal(
	    c1.last, "U1@1000{\"https://hot.example/\":"
		     "{\"count\":7,\"delta\":7,\"views\":0,\"watching\":0}}");
	assert_int_equal(atomic_load(&f->d.stats.shared_frames), 3);
	assert_int_equal(atomic_load(&f->d.stats.frames[LC_T_SSE]), 2);
	assert_int_equal(atomic_load(&f->d.stats.frames[LC_T_WS]), 1);
	lc_session_cleanup(&s1);
	lc_session_cleanup(&s2);
	lc_session_cleanup(&s3);
}

/* A session with two URLs gets one frame with both changes. */
static void
test_multi_url_update(void **state)
{
	struct fx *f = *state;
	struct fake_conn c = {.writable = true};
	struct lc_session s;

	lc_session_init(&s, &f->d, &tick_transport, &c);
	subscribe(&s, "https://a.example/");
	subscribe(&s, "https://b.example/");
	lc_delivery_flush_pending(&f->d);
	assert_int_equal(c.writes, 1); /* one snapshot for both */
	c.writable = false;
	tick(f, 1, "https://a.example/", 2, 2);
	tick(f, 2, "https://b.example/", 4, 4);
	lc_delivery_flush_pending(&f->d);
	assert_int_equal(c.writes, 1);
	c.writable = true;
	lc_delivery_requeue_waiting(&f->d);
	lc_delivery_flush_pending(&f->d);
	assert_int_equal(c.writes, 2);
	assert_non_null(strstr(
	    c.last, "\"https://a.example/\":"
		    "{\"count\":2,\"delta\":2,\"views\":0,\"watching\":0}"));
	assert_non_null(strstr(
	    c.last, "\"https://b.example/\":"
		    "{\"count\":4,\"delta\":4,\"views\":0,\"watching\":0}"));
	lc_session_cleanup(&s);
}

/* A session making no progress for stall_timeout_ms is closed once. */
static void
test_stall_close(void **state)
{
	struct fx *f = *state;
	struct fake_conn c = {.writable = true};
	struct lc_session s;
	int64_t now;

	lc_session_init(&s, &f->d, &tick_transport, &c);
	subscribe(&s, "https://a.example/");
	lc_delivery_flush_pending(&f->d);
	c.writable = false;
	tick(f, 1, "https://a.example/", 1, 1);
	now = s.dirty_since_ms;
	lc_delivery_sweep(&f->d, now + f->cfg.stall_timeout_ms / 2);
	assert_int_equal(c.closes, 0);
	lc_delivery_sweep(&f->d, now + f->cfg.stall_timeout_ms + 1);
	assert_int_equal(c.closes, 1);
	assert_true(s.closing);
	assert_int_equal(atomic_load(&f->d.stats.slow_closes), 1);
	/* Closing: no more writes, no second close. */
	c.writable = true;
	lc_delivery_requeue_waiting(&f->d);
	lc_delivery_flush_pending(&f->d);
	lc_delivery_sweep(&f->d, now + 3 * f->cfg.stall_timeout_ms);
	assert_int_equal(c.writes, 1);
	assert_int_equal(c.closes, 1);
	lc_session_cleanup(&s);
}

static uint64_t fake_acked;
static uint32_t fake_queued;

static bool
fake_progress(struct lc_session *s, uint64_t *acked, uint32_t *queued)
{
	(void)s;
	*acked = fake_acked;
	*queued = fake_queued;
	return true;
}

/*
 * Stalls judged by the peer: bytes queued in the kernel that the peer
 * acknowledges none of for stall_timeout_ms close the session, even
 * though every write of ours succeeds (the send buffer is not full).
 */
static void
test_stall_by_peer_progress(void **state)
{
	struct fx *f = *state;
	struct fake_conn c = {.writable = true};
	struct lc_session s;
	int64_t t0 = 1000000;

	f->d.peer_progress = fake_progress;
	lc_session_init(&s, &f->d, &tick_transport, &c);
	subscribe(&s, "https://p.example/");
	lc_delivery_flush_pending(&f->d);
	fake_acked = 100;
	fake_queued = 0;
	lc_delivery_sweep(&f->d, t0); /* nothing owed: fine */
	fake_queued = 500;
	lc_delivery_sweep(&f->d, t0 + 1000);
	fake_acked = 200; /* the peer reads: progress */
	lc_delivery_sweep(&f->d, t0 + 1000 + f->cfg.stall_timeout_ms);
	assert_int_equal(c.closes, 0);
	lc_delivery_sweep(&f->d, t0 + 1000 + 2 * f->cfg.stall_timeout_ms);
	assert_int_equal(c.closes, 0);
	/* no byte acknowledged for longer than the timeout: closed */
	lc_delivery_sweep(&f->d, t0 + 1000 + 3 * f->cfg.stall_timeout_ms + 1);
	assert_int_equal(c.closes, 1);
	assert_int_equal(atomic_load(&f->d.stats.slow_closes), 1);
	f->d.peer_progress = NULL;
	lc_session_cleanup(&s);
}

/* An idle session is pinged; a ping unanswered for an interval closes. */
static void
test_ping_and_unanswered_ping(void **state)
{
	struct fx *f = *state;
	struct fake_conn c = {.writable = true};
	struct lc_session s;
	int64_t t0;

	lc_session_init(&s, &f->d, &cb_transport, &c);
	t0 = s.last_tx_ms;
	lc_delivery_sweep(&f->d, t0 + f->cfg.ws_ping_ms);
	assert_int_equal(c.pings, 1);
	assert_true(s.ping_sent_ms > 0);
	/* A pong came back (ws.c sets last_rx_ms): the session stays. */
	s.last_rx_ms = s.ping_sent_ms + 1;
	lc_delivery_sweep(&f->d, s.ping_sent_ms + f->cfg.ws_ping_ms - 1);
	assert_int_equal(c.closes, 0);
	/* The next ping is not answered for a whole interval: closed. */
	s.ping_sent_ms = s.last_rx_ms + 1;
	lc_delivery_sweep(&f->d, s.ping_sent_ms + f->cfg.ws_ping_ms);
	assert_int_equal(c.closes, 1);
	assert_true(s.closing);
	lc_session_cleanup(&s);
}

/* Unsubscribing while an update is pending: nothing is written. */
static void
test_unsubscribe_during_pending_write(void **state)
{
	struct fx *f = *state;
	struct fake_conn c = {.writable = true};
	struct lc_session s;

	lc_session_init(&s, &f->d, &tick_transport, &c);
	subscribe(&s, "https://a.example/");
	lc_delivery_flush_pending(&f->d);
	c.writable = false;
	tick(f, 1, "https://a.example/", 1, 1);
	lc_delivery_flush_pending(&f->d); /* waits for the next tick */
	assert_true(s.queued);
	lc_session_unsubscribe(&s, "https://a.example/", 18);
	assert_int_equal(s.nsubs, 0);
	c.writable = true;
	lc_delivery_requeue_waiting(&f->d);
	lc_delivery_flush_pending(&f->d);
	assert_int_equal(c.writes, 1); /* the snapshot only */
	assert_false(s.dirty);
	/* The URL's node is gone: a later tick reaches nobody. */
	tick(f, 2, "https://a.example/", 2, 1);
	assert_null(f->d.pending);
	lc_session_cleanup(&s);
}

/* A session freed while queued leaves the queue (no dangling pointer). */
static void
test_cleanup_while_queued(void **state)
{
	struct fx *f = *state;
	struct fake_conn c1 = {.writable = true}, c2 = {.writable = true};
	struct lc_session *s1 = malloc(sizeof(*s1)), s2;

	assert_non_null(s1);
	lc_session_init(s1, &f->d, &tick_transport, &c1);
	lc_session_init(&s2, &f->d, &tick_transport, &c2);
	subscribe(s1, "https://a.example/");
	subscribe(&s2, "https://a.example/");
	assert_int_equal(queue_len(f->d.pending), 2);
	lc_session_cleanup(s1);
	free(s1);
	assert_int_equal(queue_len(f->d.pending), 1);
	lc_delivery_flush_pending(&f->d);
	assert_int_equal(c2.writes, 1);
	assert_null(f->d.pending_tail);
	lc_session_cleanup(&s2);
	assert_null(f->d.sessions);
}

/* Too many subscriptions are refused with the API's error. */
static void
test_too_many_subscriptions(void **state)
{
	struct fx *f = *state;
	struct fake_conn c = {.writable = true};
	struct lc_session s;
	const char *urls[2] = {"https://a.example/", "https://b.example/"};
	size_t lens[2] = {18, 18};
	struct lc_api_error err;

	f->cfg.max_subs_per_conn = 1;
	lc_session_init(&s, &f->d, &tick_transport, &c);
	assert_int_not_equal(lc_session_subscribe(&s, urls, lens, 2, &err), 0);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.code, "too_many_subscriptions");
	assert_int_equal(s.nsubs, 0);
	lc_session_cleanup(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_snapshot_on_subscribe, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shared_frame, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_multi_url_update, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_stall_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stall_by_peer_progress, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_ping_and_unanswered_ping,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unsubscribe_during_pending_write, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cleanup_while_queued, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_too_many_subscriptions, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
