/*
 * Unit tests: the dispatch tick's outputs: update sets (only subscribed
 * URLs, count + delta + JSON key, one shared object per tick), mailboxes
 * and wake-ups, the batcher hand-off, and the top list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc/batcher.h"
#include "lc/common.h"
#include "lc/counter.h"
#include "lc/dispatch.h"
#include "lc/hash.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int wakes;

static void
wake(void *arg)
{
	(void)arg;
	wakes++;
}

static void
like(struct lc_source *s, struct lc_counter *c, const char *url, int64_t n)
{
	int64_t count;

	assert_int_equal(lc_source_add(s, c, url, strlen(url), n, &count), 0);
}

static struct lc_entry *
get(struct lc_counter *c, const char *url)
{
	return lc_counter_find_or_insert(c, url, strlen(url),
					 lc_hash(url, strlen(url)));
}

static void
test_update_sets(void **state)
{
	struct lc_counter c;
	struct lc_source a, b, *srcs[2] = {&a, &b};
	struct lc_dispatch d;
	struct lc_update_set *ua[4], *ub[4];
	struct lc_entry *watched;

	(void)state;
	lc_counter_init(&c, 16);
	lc_source_init(&a);
	lc_source_init(&b);
	a.wake = b.wake = wake;
	lc_dispatch_init(&d, &c, srcs, 2, NULL, 10);
	watched = get(&c, "watched \"q\"");
	atomic_store(&watched->subscribers, 1);

	/* Nothing subscribed changed: no set, no wake-up. */
	wakes = 0;
	like(&a, &c, "unwatched", 1);
	lc_dispatch_tick(&d, 1000);
	assert_int_equal(wakes, 0);
	assert_int_equal(lc_source_take_updates(&a, ua, 4), 0);

	/* Likes from both sources merge into one item per URL. */
	like(&a, &c, "watched \"q\"", 2);
	like(&b, &c, "watched \"q\"", 3);
	like(&b, &c, "watched \"q\"", -1);
	like(&b, &c, "unwatched", 5);
	lc_dispatch_tick(&d, 2000);
	assert_int_equal(wakes, 2);
	assert_int_equal(lc_source_take_updates(&a, ua, 4), 1);
	assert_int_equal(lc_source_take_updates(&b, ub, 4), 1);
	assert_ptr_equal(ua[0], ub[0]); /* one shared, immutable set */
	assert_int_equal(ua[0]->n, 1);
	assert_ptr_equal(ua[0]->items[0].e, watched);
	assert_int_equal(ua[0]->items[0].count, 4);
	assert_int_equal(ua[0]->items[0].delta, 4);
	assert_string_equal(ua[0]->items[0].key, "\"watched \\\"q\\\"\"");
	assert_int_equal(ua[0]->ts_ms, 2000);
	uint64_t seq = ua[0]->seq;

	lc_update_set_unref(ua[0]);
	lc_update_set_unref(ub[0]);

	/* Next tick: seq + 1, delta of that tick only. */
	like(&a, &c, "watched \"q\"", -3);
	lc_dispatch_tick(&d, 3000);
	assert_int_equal(lc_source_take_updates(&a, ua, 4), 1);
	assert_int_equal(ua[0]->seq, seq + 1);
	assert_int_equal(ua[0]->items[0].count, 1);
	assert_int_equal(ua[0]->items[0].delta, -3);
	lc_update_set_unref(ua[0]);
	/* b did not drain: its mailbox keeps its sets in order. */
	like(&a, &c, "watched \"q\"", 1);
	lc_dispatch_tick(&d, 4000);
	assert_int_equal(lc_source_take_updates(&b, ub, 4), 2);
	assert_true(ub[0]->seq < ub[1]->seq);
	lc_update_set_unref(ub[0]);
	lc_update_set_unref(ub[1]);
	assert_int_equal(lc_source_take_updates(&a, ua, 4), 1);
	lc_update_set_unref(ua[0]);
	assert_int_equal(atomic_load(&d.seq), seq + 2);

	lc_dispatch_cleanup(&d);
	lc_source_cleanup(&a);
	lc_source_cleanup(&b);
	lc_counter_cleanup(&c);
}

static void
test_top_list(void **state)
{
	struct lc_counter c;
	struct lc_source a, *srcs[1] = {&a};
	struct lc_dispatch d;
	struct lc_top *t;
	char url[16];

	(void)state;
	lc_counter_init(&c, 16);
	lc_source_init(&a);
	lc_dispatch_init(&d, &c, srcs, 1, NULL, 3);
	for (int i = 1; i <= 10; i++) {
		snprintf(url, sizeof(url), "t%d", i);
		like(&a, &c, url, i);
	}
	lc_dispatch_tick(&d, 1000);
	t = lc_dispatch_top_get(&d);
	assert_int_equal(t->n, 3);
	assert_string_equal(t->items[0].url, "t10");
	assert_string_equal(t->items[2].url, "t8");
	lc_dispatch_top_put(t);

	/* An outsider climbs in (incremental path). */
	like(&a, &c, "t1", 100);
	lc_dispatch_tick(&d, 2000);
	t = lc_dispatch_top_get(&d);
	assert_string_equal(t->items[0].url, "t1");
	assert_int_equal(t->items[0].count, 101);
	assert_string_equal(t->items[2].url, "t9");
	lc_dispatch_top_put(t);

	/* A member falls below outsiders that did not change (rescan). */
	like(&a, &c, "t1", -101);
	lc_dispatch_tick(&d, 3000);
	t = lc_dispatch_top_get(&d);
	assert_string_equal(t->items[0].url, "t10");
	assert_string_equal(t->items[1].url, "t9");
	assert_string_equal(t->items[2].url, "t8");
	lc_dispatch_top_put(t);

	lc_dispatch_cleanup(&d);
	lc_source_cleanup(&a);
	lc_counter_cleanup(&c);
}

static int
cmp_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x > y ? -1 : x < y;
}

/*
 * The incremental top list against brute force: 2000 URLs, random likes
 * and unlikes (counts go down and below zero) over 300 ticks, plus
 * subscribe-only URLs (entries never liked) that must never be listed.
 */
static void
test_top_list_matches_brute_force(void **state)
{
	enum { N = 2000, K = 20 };
	static int64_t want[N], sorted[N];
	struct lc_counter c;
	struct lc_source a, *srcs[1] = {&a};
	struct lc_dispatch d;
	char url[32];

	(void)state;
	srand(3);
	memset(want, 0, sizeof(want));
	lc_counter_init(&c, 16);
	lc_source_init(&a);
	lc_dispatch_init(&d, &c, srcs, 1, NULL, K);
	for (int i = 0; i < 50; i++) {
		snprintf(url, sizeof(url), "watched-only/%d", i);
		get(&c, url);
	}
	for (int tick = 0; tick < 300; tick++) {
		int changes = 1 + rand() % 40;
		struct lc_top *t;
		size_t liked = 0;

		while (changes--) {
			int i = rand() % N;
			int64_t n = (rand() % 21) - 10;

			if (!n)
				n = 1;
			snprintf(url, sizeof(url), "u/%d", i);
			like(&a, &c, url, n);
			want[i] += n;
		}
		lc_dispatch_tick(&d, 1000 + tick);
		t = lc_dispatch_top_get(&d);
		for (int i = 0; i < N; i++) {
			snprintf(url, sizeof(url), "u/%d", i);
			if (lc_counter_find(&c, url, strlen(url),
					    lc_hash(url, strlen(url))))
				sorted[liked++] = want[i];
		}
		qsort(sorted, liked, sizeof(sorted[0]), cmp_desc);
		assert_int_equal(t->n, liked < K ? liked : K);
		for (size_t i = 0; i < t->n; i++) {
			assert_true(t->items[i].count == sorted[i]);
			assert_true(strncmp(t->items[i].url, "u/", 2) == 0);
			if (i)
				assert_true(t->items[i - 1].count >=
					    t->items[i].count);
		}
		lc_dispatch_top_put(t);
	}
	lc_dispatch_cleanup(&d);
	lc_source_cleanup(&a);
	lc_counter_cleanup(&c);
}

static void
test_batcher_gets_every_change(void **state)
{
	char dir[] = "/tmp/lc_test_dispatch_XXXXXX", path[96], err[256];
	struct lc_counter c;
	struct lc_source a, *srcs[1] = {&a};
	struct lc_dispatch d;
	struct lc_batcher *bt;
	struct lc_store *st;
	char url[16];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/lc.db", dir);
	lc_counter_init(&c, 16);
	lc_source_init(&a);
	st = lc_store_open(path, false, err, sizeof(err));
	assert_non_null(st);
	bt = lc_batcher_create(st, 1000, 1000000);
	lc_dispatch_init(&d, &c, srcs, 1, bt, 10);
	for (int i = 0; i < 500; i++) {
		snprintf(url, sizeof(url), "b%d", i % 250);
		like(&a, &c, url, 1);
		if (i % 100 == 99)
			lc_dispatch_tick(&d, lc_now_ms());
	}
	lc_dispatch_tick(&d, lc_now_ms());
	assert_int_equal(lc_batcher_flush_now(bt, 100000), 0);
	assert_int_equal(atomic_load(&lc_batcher_stats(bt)->rows), 250);
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);
	lc_dispatch_cleanup(&d);
	lc_source_cleanup(&a);
	lc_counter_cleanup(&c);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

/*
 * An allocation that fails on the tick path (the batcher's batch, the
 * update set) keeps the tick's changes for the next tick: the database
 * and the subscribers still get every like exactly once.
 */
static void
test_alloc_failure_keeps_changes(void **state)
{
	char dir[] = "/tmp/lc_test_dispatch_XXXXXX", path[96], err[256];
	struct lc_counter c;
	struct lc_source a, *srcs[1] = {&a};
	struct lc_dispatch d;
	struct lc_batcher *bt;
	struct lc_store *st;
	struct lc_update_set *u[8];
	struct lc_entry *w;
	sqlite3 *db;
	sqlite3_stmt *q;
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/lc.db", dir);
	lc_counter_init(&c, 16);
	lc_source_init(&a);
	st = lc_store_open(path, false, err, sizeof(err));
	bt = lc_batcher_create(st, 1000, 1000000);
	lc_dispatch_init(&d, &c, srcs, 1, bt, 10);
	w = get(&c, "watched");
	atomic_store(&w->subscribers, 1);

	like(&a, &c, "watched", 5);
	atomic_store(&lc_dispatch_fail_batches, 1);
	atomic_store(&lc_dispatch_fail_updates, 1);
	lc_dispatch_tick(&d, lc_now_ms()); /* both hand-offs fail */
	assert_int_equal(lc_source_take_updates(&a, u, 8), 0);
	assert_int_equal(atomic_load(&d.stats.alloc_failures), 2);
	like(&a, &c, "watched", 2);
	like(&a, &c, "other", 1);
	lc_dispatch_tick(&d, lc_now_ms());
	n = lc_source_take_updates(&a, u, 8);
	assert_int_equal(n, 1);
	assert_int_equal(u[0]->n, 1);
	assert_true(u[0]->items[0].count == 7);
	assert_true(u[0]->items[0].delta == 7); /* 5 missed + 2 */
	lc_update_set_unref(u[0]);
	/* the next tick does not repeat them */
	like(&a, &c, "watched", 1);
	lc_dispatch_tick(&d, lc_now_ms());
	n = lc_source_take_updates(&a, u, 8);
	assert_int_equal(n, 1);
	assert_true(u[0]->items[0].delta == 1);
	lc_update_set_unref(u[0]);
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT sum(likes) FROM "
					    "likes_minute",
					    -1, &q, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(q, 0), 9); /* once each */
	sqlite3_finalize(q);
	sqlite3_close(db);
	lc_dispatch_cleanup(&d);
	lc_source_cleanup(&a);
	lc_counter_cleanup(&c);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

struct ticker {
	struct lc_dispatch *d;
	_Atomic bool stop;
};

static void *
tick_forever(void *arg)
{
	struct ticker *t = arg;
	int64_t now = 1;

	while (!atomic_load(&t->stop))
		lc_dispatch_tick(t->d, now++);
	return NULL;
}

/*
 * The count a like is answered with is never more than the likes made:
 * a tick racing the like (swap and merge between reading the pending
 * delta and the table) once counted it twice in the answer.
 */
static void
test_answer_never_counts_twice(void **state)
{
	struct lc_counter c;
	struct lc_source a, *srcs[1] = {&a};
	struct lc_dispatch d;
	struct ticker t = {&d, false};
	pthread_t th;
	int64_t count, over = 0;

	(void)state;
	lc_counter_init(&c, 16);
	lc_source_init(&a);
	lc_dispatch_init(&d, &c, srcs, 1, NULL, 10);
	get(&c, "race"); /* an entry exists, as a subscription makes one */
	pthread_create(&th, NULL, tick_forever, &t);
	for (int64_t i = 1; i <= 300000; i++) {
		assert_int_equal(lc_source_add(&a, &c, "race", 4, 1, &count),
				 0);
		if (count > i)
			over++;
	}
	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	lc_dispatch_tick(&d, 0);
	assert_int_equal(lc_entry_count(get(&c, "race")), 300000);
	assert_int_equal(over, 0);
	lc_dispatch_cleanup(&d);
	lc_source_cleanup(&a);
	lc_counter_cleanup(&c);
}

/*
 * Read-your-writes: two workers like one URL (new to the table: it is
 * inserted by a merge during the run) while a dispatcher ticks without
 * pause. After each like, lc_dispatch_read must count every like either
 * worker had acknowledged before the read began, and never more than
 * were made. The old answer (the table plus the worker's own shard)
 * missed the other worker's pending likes.
 */
struct ryw {
	struct lc_source *src;
	struct lc_dispatch *d;
	struct lc_counter *c;
	_Atomic int64_t *acked;	  /* likes acknowledged, both workers */
	_Atomic int64_t *started; /* likes begun, both workers */
	int64_t under, over;
};

static void *
ryw_worker(void *arg)
{
	struct ryw *r = arg;

	for (int i = 0; i < 100000; i++) {
		int64_t before, after, got;
		struct lc_counts k;

		atomic_fetch_add(r->started, 1);
		assert_int_equal(lc_source_add(r->src, r->c, "ryw", 3, 1, NULL),
				 0);
		atomic_fetch_add(r->acked, 1);
		before = atomic_load(r->acked);
		k = lc_dispatch_read(r->d, r->c, "ryw", 3);
		got = k.likes - k.unlikes;
		after = atomic_load(r->started);
		if (got < before)
			r->under++;
		if (got > after)
			r->over++;
	}
	return NULL;
}

static void
test_read_your_writes(void **state)
{
	struct lc_counter c;
	struct lc_source a, b, *srcs[2] = {&a, &b};
	struct lc_dispatch d;
	struct ticker t = {&d, false};
	_Atomic int64_t acked = 0, started = 0;
	struct ryw ra = {&a, &d, &c, &acked, &started, 0, 0};
	struct ryw rb = {&b, &d, &c, &acked, &started, 0, 0};
	pthread_t th, wa, wb;

	(void)state;
	lc_counter_init(&c, 16);
	lc_source_init(&a);
	lc_source_init(&b);
	lc_dispatch_init(&d, &c, srcs, 2, NULL, 10);
	pthread_create(&th, NULL, tick_forever, &t);
	pthread_create(&wa, NULL, ryw_worker, &ra);
	pthread_create(&wb, NULL, ryw_worker, &rb);
	pthread_join(wa, NULL);
	pthread_join(wb, NULL);
	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	lc_dispatch_tick(&d, 0);
	assert_int_equal(lc_entry_count(get(&c, "ryw")), 200000);
	assert_int_equal(ra.under + rb.under, 0);
	assert_int_equal(ra.over + rb.over, 0);
	lc_dispatch_cleanup(&d);
	lc_source_cleanup(&a);
	lc_source_cleanup(&b);
	lc_counter_cleanup(&c);
}

static int kicked;

static void
kick(void *arg)
{
	(void)arg;
	kicked++;
}

/* Leading edge: armed by a quiet tick, fired once by the next like. */
static void
test_kick(void **state)
{
	struct lc_counter c;
	struct lc_source a, *srcs[1] = {&a};
	struct lc_dispatch d;
	struct lc_like batch[1] = {{"b", 1, 1}};

	(void)state;
	lc_counter_init(&c, 16);
	lc_source_init(&a);
	lc_dispatch_init(&d, &c, srcs, 1, NULL, 10);
	lc_dispatch_set_kick(&d, kick, NULL);
	a.kick = &d.kick;
	kicked = 0;
	like(&a, &c, "x", 1); /* not armed before the first tick */
	assert_int_equal(kicked, 0);
	assert_int_equal(lc_dispatch_tick(&d, 1), 1);
	like(&a, &c, "x", 1); /* the first like after any tick wakes it */
	like(&a, &c, "x", 1); /* ... once */
	assert_int_equal(kicked, 1);
	assert_int_equal(lc_dispatch_tick(&d, 2), 1);
	assert_int_equal(lc_dispatch_tick(&d, 3), 0);
	assert_int_equal(lc_source_add_batch(&a, &c, batch, 1), 0);
	assert_int_equal(kicked, 2);
	assert_int_equal(atomic_load(&d.kick.kicks), 2);
	lc_dispatch_tick(&d, 6);
	assert_int_equal(lc_entry_count(get(&c, "x")), 3);
	lc_dispatch_cleanup(&d);
	lc_source_cleanup(&a);
	lc_counter_cleanup(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_update_sets),
	    cmocka_unit_test(test_kick),
	    cmocka_unit_test(test_answer_never_counts_twice),
	    cmocka_unit_test(test_read_your_writes),
	    cmocka_unit_test(test_top_list),
	    cmocka_unit_test(test_top_list_matches_brute_force),
	    cmocka_unit_test(test_batcher_gets_every_change),
	    cmocka_unit_test(test_alloc_failure_keeps_changes),
	};

	lc_hash_seed_init();
	lc_log_set_level(LC_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
