/*
 * Unit tests: idempotency keys. A retry is answered from the table and
 * counted once, also when two threads race with the same key; the table
 * stays within max_keys (oldest dropped first) and drops keys after their
 * lifetime; key validation; keys reach the database only once the ticks
 * their likes were merged in are written, and come back at start.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc/batcher.h"
#include "lc/common.h"
#include "lc/hash.h"
#include "lc/idem.h"
#include "lc/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int counted;

static bool
count_like(void *arg, struct lc_idem_answer *ans, uint64_t *after_seq)
{
	int n = atomic_fetch_add(&counted, 1) + 1;

	*after_seq = arg ? *(uint64_t *)arg : 0;
	ans->status = 200;
	ans->len =
	    (size_t)snprintf(ans->body, sizeof(ans->body), "{\"count\":%d}", n);
	return true;
}

static void
test_retry_counted_once(void **state)
{
	struct lc_idem *t = lc_idem_create(100, 60000);
	struct lc_idem_answer a, b;

	(void)state;
	atomic_store(&counted, 0);
	assert_false(lc_idem_run(t, "k1", 2, 1000, count_like, NULL, &a));
	assert_true(lc_idem_run(t, "k1", 2, 2000, count_like, NULL, &b));
	assert_int_equal(counted, 1);
	assert_int_equal(b.status, 200);
	assert_int_equal(b.len, a.len);
	assert_memory_equal(b.body, a.body, a.len);
	assert_false(lc_idem_run(t, "k2", 2, 2000, count_like, NULL, &b));
	assert_int_equal(counted, 2);
	assert_int_equal(atomic_load(&lc_idem_stats(t)->hits), 1);
	/* after the lifetime the key is gone: counted again */
	assert_false(
	    lc_idem_run(t, "k1", 2, 1000 + 60000, count_like, NULL, &b));
	assert_int_equal(counted, 3);
	assert_true(atomic_load(&lc_idem_stats(t)->expired) >= 1);
	lc_idem_destroy(t);
}

static void
test_bounded_oldest_first(void **state)
{
	struct lc_idem *t = lc_idem_create(3, 60000);
	struct lc_idem_answer a;

	(void)state;
	atomic_store(&counted, 0);
	lc_idem_run(t, "a", 1, 1, count_like, NULL, &a);
	lc_idem_run(t, "b", 1, 2, count_like, NULL, &a);
	lc_idem_run(t, "c", 1, 3, count_like, NULL, &a);
	lc_idem_run(t, "d", 1, 4, count_like, NULL, &a); /* drops "a" */
	assert_int_equal(atomic_load(&lc_idem_stats(t)->keys), 3);
	assert_int_equal(atomic_load(&lc_idem_stats(t)->evicted), 1);
	assert_true(lc_idem_run(t, "b", 1, 5, count_like, NULL, &a));
	assert_false(lc_idem_run(t, "a", 1, 5, count_like, NULL, &a));
	lc_idem_destroy(t);
}

static void
test_key_valid(void **state)
{
	char long_key[130];

	(void)state;
	memset(long_key, 'k', sizeof(long_key));
	assert_true(lc_idem_key_valid("abc-123_XYZ:!~", 14));
	assert_true(lc_idem_key_valid(long_key, 128));
	assert_false(lc_idem_key_valid(long_key, 129));
	assert_false(lc_idem_key_valid("", 0));
	assert_false(lc_idem_key_valid("a b", 3));
	assert_false(lc_idem_key_valid("a\tb", 3));
	assert_false(lc_idem_key_valid("caf\xc3\xa9", 5));
}

/*
 * The longest key a client may send, made for the WebSocket transport,
 * through the table, the batcher's record and the database and back:
 * the record holds it whole (it overflowed the record's key by two
 * bytes, into its status, when the record held only 129 bytes).
 */
static void
test_longest_key_through_flush_and_load(void **state)
{
	char dir[] = "/tmp/lc_test_idem_XXXXXX", path[96], err[256];
	char client[LC_IDEM_CLIENT_KEY_MAX + 1], key[LC_IDEM_KEY_MAX + 1];
	char toolong[LC_IDEM_KEY_MAX + 2];
	struct lc_idem *t = lc_idem_create(100, 86400000), *t2;
	struct lc_idem_record rec[2];
	struct lc_idem_answer a;
	uint64_t upto = 0;
	size_t klen;
	struct lc_store *st;

	(void)state;
	atomic_store(&counted, 0);
	memset(client, 'i', sizeof(client));
	assert_int_equal(lc_idem_make_key(key, 'w', client, sizeof(client)), 0);
	klen = lc_idem_make_key(key, 'w', client, LC_IDEM_CLIENT_KEY_MAX);
	assert_int_equal(klen, LC_IDEM_KEY_MAX);
	assert_memory_equal(key, "w:iii", 5);
	assert_false(
	    lc_idem_run(t, key, klen, lc_now_ms(), count_like, NULL, &a));
	assert_int_equal(lc_idem_take_persistable(t, 0, rec, 2, &upto), 1);
	assert_int_equal(strlen(rec[0].key), LC_IDEM_KEY_MAX);
	assert_memory_equal(rec[0].key, key, klen);
	assert_int_equal(rec[0].status, 200);
	assert_int_equal(rec[0].len, a.len);

	/* a stored key one byte too long is refused everywhere */
	memset(toolong, 'x', sizeof(toolong));
	assert_false(lc_idem_run(t, toolong, sizeof(toolong), lc_now_ms(),
				 count_like, NULL, &a));
	assert_int_equal(atomic_load(&lc_idem_stats(t)->keys), 1);
	assert_false(
	    lc_idem_lookup(t, toolong, sizeof(toolong), lc_now_ms(), &a));
	assert_int_equal(lc_idem_load(t, toolong, sizeof(toolong), 200, "{}", 2,
				      lc_now_ms()),
			 0);
	assert_int_equal(atomic_load(&lc_idem_stats(t)->keys), 1);

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/lc.db", dir);
	st = lc_store_open(path, false, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(lc_store_flush(st, NULL, 0, rec, 1, 0), 0);
	lc_store_close(st);
	t2 = lc_idem_create(100, 86400000);
	st = lc_store_open(path, false, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(lc_store_load_keys(st, t2, 0), 1);
	atomic_store(&counted, 0);
	assert_true(
	    lc_idem_run(t2, key, klen, lc_now_ms(), count_like, NULL, &a));
	assert_int_equal(counted, 0);
	lc_store_close(st);
	lc_idem_destroy(t);
	lc_idem_destroy(t2);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

struct racer {
	struct lc_idem *t;
	int hits;
};

static void *
race(void *arg)
{
	struct racer *r = arg;
	struct lc_idem_answer a;
	char key[16];

	for (int i = 0; i < 2000; i++) {
		int n = snprintf(key, sizeof(key), "r%d", i);

		r->hits +=
		    lc_idem_run(r->t, key, (size_t)n, 1, count_like, NULL, &a);
	}
	return NULL;
}

static void
test_racing_threads_count_once(void **state)
{
	struct lc_idem *t = lc_idem_create(100000, 60000);
	struct racer r[4];
	pthread_t th[4];

	(void)state;
	atomic_store(&counted, 0);
	for (int i = 0; i < 4; i++) {
		r[i] = (struct racer){t, 0};
		pthread_create(&th[i], NULL, race, &r[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(counted, 2000);
	assert_int_equal(r[0].hits + r[1].hits + r[2].hits + r[3].hits, 6000);
	lc_idem_destroy(t);
}

static void
test_persisted_after_their_ticks(void **state)
{
	char dir[] = "/tmp/lc_test_idem_XXXXXX", path[96], err[256];
	struct lc_idem *t = lc_idem_create(100, 86400000), *t2;
	struct lc_idem_answer a;
	_Atomic uint64_t seq = 10;
	uint64_t after = 12;
	struct lc_batcher *bt;
	struct lc_store *st;

	(void)state;
	atomic_store(&counted, 0);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/lc.db", dir);
	st = lc_store_open(path, false, err, sizeof(err));
	assert_non_null(st);
	bt = lc_batcher_create(st, 1000, 1000000);
	lc_batcher_set_idem(bt, t, &seq, 86400000);
	lc_idem_run(t, "early", 5, lc_now_ms(), count_like, &after, &a);
	assert_int_equal(lc_idem_unpersisted(t), 1);
	/* its like is merged after tick 12: not written at tick 10 */
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(lc_idem_unpersisted(t), 1);
	atomic_store(&seq, 12);
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(lc_idem_unpersisted(t), 0);
	after = 99;
	lc_idem_run(t, "late", 4, lc_now_ms(), count_like, &after, &a);
	/* at stop every tick ran: every key is written */
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);
	assert_int_equal(lc_idem_unpersisted(t), 0);

	t2 = lc_idem_create(100, 86400000);
	st = lc_store_open(path, true, err, sizeof(err));
	assert_non_null(st);
	lc_store_close(st);
	st = lc_store_open(path, false, err, sizeof(err));
	assert_int_equal(lc_store_load_keys(st, t2, 0), 2);
	atomic_store(&counted, 100);
	assert_true(
	    lc_idem_run(t2, "early", 5, lc_now_ms(), count_like, NULL, &a));
	assert_int_equal(counted, 100);
	assert_string_equal(a.body, "{\"count\":1}");
	lc_store_close(st);
	lc_idem_destroy(t);
	lc_idem_destroy(t2);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_retry_counted_once),
	    cmocka_unit_test(test_bounded_oldest_first),
	    cmocka_unit_test(test_key_valid),
	    cmocka_unit_test(test_longest_key_through_flush_and_load),
	    cmocka_unit_test(test_racing_threads_count_once),
	    cmocka_unit_test(test_persisted_after_their_ticks),
	};

	lc_hash_seed_init();
	lc_log_set_level(LC_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
