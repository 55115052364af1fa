/*
 * Unit tests: counter table, shards, and the source/dispatcher hand-off
 * under real threads (exact totals while ticks run concurrently).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc/common.h"
#include "lc/counter.h"
#include "lc/dispatch.h"
#include "lc/hash.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct lc_entry *
get(struct lc_counter *c, const char *url)
{
	return lc_counter_find_or_insert(c, url, strlen(url),
					 lc_hash(url, strlen(url)));
}

static void
test_table_insert_find_grow(void **state)
{
	struct lc_counter c;
	char url[32];

	(void)state;
	assert_int_equal(lc_counter_init(&c, 4), 0);
	for (int i = 0; i < 100000; i++) {
		snprintf(url, sizeof(url), "u%d", i);
		struct lc_entry *e = get(&c, url);

		assert_non_null(e);
		lc_entry_add(e, i, 1, 1000);
	}
	assert_int_equal(lc_counter_size(&c), 100000);
	for (int i = 0; i < 100000; i += 997) {
		struct lc_entry *e;

		snprintf(url, sizeof(url), "u%d", i);
		e = lc_counter_find(&c, url, strlen(url),
				    lc_hash(url, strlen(url)));
		assert_non_null(e);
		assert_string_equal(e->url, url);
		assert_int_equal(lc_entry_count(e), i - 1);
		assert_ptr_equal(get(&c, url), e); /* stable, no duplicate */
	}
	assert_null(lc_counter_find(&c, "nope", 4, lc_hash("nope", 4)));
	/* Prefixes and equal hashes of different lengths are different. */
	assert_ptr_not_equal(get(&c, "u1"), get(&c, "u1 "));
	lc_counter_cleanup(&c);
}

static void
test_json_key_escapes(void **state)
{
	struct lc_counter c;
	struct lc_entry *e;

	(void)state;
	lc_counter_init(&c, 16);
	e = get(&c, "a\"b\\c</script>\xe2\x80\xa8");
	assert_string_equal(lc_entry_json_key(e),
			    "\"a\\\"b\\\\c</script>\xe2\x80\xa8\"");
	assert_ptr_equal(lc_entry_json_key(e), lc_entry_json_key(e));
	lc_counter_cleanup(&c);
}

static void
test_shard_add_clear(void **state)
{
	struct lc_shard s;
	char url[32];

	(void)state;
	assert_int_equal(lc_shard_init(&s), 0);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 5000; i++) {
			snprintf(url, sizeof(url), "https://x/%d", i % 1000);
			assert_non_null(lc_shard_add(&s, url, strlen(url),
						     lc_hash(url, strlen(url)),
						     2, 1));
		}
		assert_int_equal(s.n, 1000);
		assert_int_equal(s.total_likes, 10000);
		struct lc_shard_item *it = lc_shard_find(
		    &s, "https://x/7", 11, lc_hash("https://x/7", 11));
		assert_non_null(it);
		assert_int_equal(it->likes, 10);
		assert_int_equal(it->unlikes, 5);
		assert_string_equal(lc_shard_url(&s, it), "https://x/7");
		lc_shard_clear(&s);
		assert_int_equal(s.n, 0);
		assert_null(lc_shard_find(&s, "https://x/7", 11,
					  lc_hash("https://x/7", 11)));
	}
	lc_shard_cleanup(&s);
}

/* ---- many threads, one dispatcher, exact totals ---- */

#define THREADS 4
#define PER_THREAD 200000
#define MANY_URLS 1000

struct hammer {
	struct lc_source *src;
	struct lc_counter *c;
	int id;
};

static _Atomic bool stop_ticking;

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;
	char url[32];
	int64_t count;

	for (int i = 0; i < PER_THREAD; i++) {
		/* Half on one hot URL, half spread over MANY_URLS. */
		if (i & 1)
			snprintf(url, sizeof(url), "many/%d", i % MANY_URLS);
		else
			strcpy(url, "hot");
		/* cmocka asserts must stay on the main thread: abort here. */
		if (lc_source_add(h->src, h->c, url, strlen(url),
				  (i % 10 == 0) ? -1 : 1, &count))
			abort();
	}
	/* And a batch, all-or-nothing. */
	struct lc_like batch[100];

	for (int i = 0; i < 100; i++) {
		batch[i].url = "batch";
		batch[i].url_len = 5;
		batch[i].n = 3;
	}
	if (lc_source_add_batch(h->src, h->c, batch, 100))
		abort();
	return NULL;
}

static void *
ticker_main(void *arg)
{
	struct lc_dispatch *d = arg;

	while (!atomic_load(&stop_ticking)) {
		lc_dispatch_tick(d, lc_now_ms());
		struct timespec ts = {0, 2000000};

		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void
test_threads_exact_totals(void **state)
{
	struct lc_counter c;
	struct lc_source src[THREADS], *srcs[THREADS];
	struct hammer h[THREADS];
	pthread_t th[THREADS], ticker;
	struct lc_dispatch d;
	int64_t likes_hot = 0, unlikes_hot = 0, many = 0;
	char url[32];

	(void)state;
	lc_counter_init(&c, 16);
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(lc_source_init(&src[i]), 0);
		srcs[i] = &src[i];
	}
	assert_int_equal(lc_dispatch_init(&d, &c, srcs, THREADS, NULL, 10), 0);
	atomic_store(&stop_ticking, false);
	pthread_create(&ticker, NULL, ticker_main, &d);
	for (int i = 0; i < THREADS; i++) {
		h[i] = (struct hammer){&src[i], &c, i};
		pthread_create(&th[i], NULL, hammer_main, &h[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	atomic_store(&stop_ticking, true);
	pthread_join(ticker, NULL);
	lc_dispatch_tick(&d, lc_now_ms()); /* the final merge */

	for (int i = 0; i < PER_THREAD; i += 2) {
		if (i % 10 == 0)
			unlikes_hot++;
		else
			likes_hot++;
	}
	struct lc_counts hot = lc_entry_read(get(&c, "hot"));

	assert_int_equal(hot.likes, likes_hot * THREADS);
	assert_int_equal(hot.unlikes, unlikes_hot * THREADS);
	for (int u = 0; u < MANY_URLS; u++) {
		snprintf(url, sizeof(url), "many/%d", u);
		many += lc_entry_count(get(&c, url));
	}
	/* Odd i: likes except i % 10 == 0 never odd, so all +1. */
	assert_int_equal(many, (int64_t)THREADS * PER_THREAD / 2);
	assert_int_equal(lc_entry_count(get(&c, "batch")), THREADS * 300);
	assert_int_equal(lc_counter_size(&c), MANY_URLS + 2);

	/* The top list saw the same totals. */
	struct lc_top *t = lc_dispatch_top_get(&d);

	assert_true(t->n >= 2);
	assert_string_equal(t->items[0].url, "hot");
	assert_int_equal(t->items[0].count, hot.likes - hot.unlikes);
	lc_dispatch_top_put(t);

	lc_dispatch_cleanup(&d);
	for (int i = 0; i < THREADS; i++)
		lc_source_cleanup(&src[i]);
	lc_counter_cleanup(&c);
}

/* The count a like returns: table as of the last tick + own pending. */
static void
test_returned_count_and_pending(void **state)
{
	struct lc_counter c;
	struct lc_source a, b, *srcs[2] = {&a, &b};
	struct lc_dispatch d;
	int64_t count, pl, pu;

	(void)state;
	lc_counter_init(&c, 16);
	lc_source_init(&a);
	lc_source_init(&b);
	lc_dispatch_init(&d, &c, srcs, 2, NULL, 10);
	lc_source_add(&a, &c, "u", 1, 5, &count);
	assert_int_equal(count, 5);
	lc_source_add(&b, &c, "u", 1, 2, &count);
	assert_int_equal(count, 2); /* a's likes not merged yet */
	lc_source_pending(&a, "u", 1, &pl, &pu);
	assert_int_equal(pl, 5);
	lc_dispatch_tick(&d, 1000);
	lc_source_add(&b, &c, "u", 1, -1, &count);
	assert_int_equal(count, 6); /* both merged, plus own pending */
	lc_source_pending(&b, "u", 1, &pl, &pu);
	assert_int_equal(pl, 0);
	assert_int_equal(pu, 1);
	lc_dispatch_tick(&d, 2000);
	struct lc_counts r = lc_entry_read(get(&c, "u"));

	assert_int_equal(r.likes, 7);
	assert_int_equal(r.unlikes, 1);
	assert_int_equal(r.updated_ms, 2000);
	lc_dispatch_cleanup(&d);
	lc_source_cleanup(&a);
	lc_source_cleanup(&b);
	lc_counter_cleanup(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_insert_find_grow),
	    cmocka_unit_test(test_json_key_escapes),
	    cmocka_unit_test(test_shard_add_clear),
	    cmocka_unit_test(test_threads_exact_totals),
	    cmocka_unit_test(test_returned_count_and_pending),
	};

	lc_hash_seed_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
