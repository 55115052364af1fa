/* Unit tests: connection limits and like-rate token buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc/hash.h"
#include "lc/limits.h"

#include <stdlib.h>

static void
test_conn_limits_total_and_per_ip(void **state)
{
	struct lc_conn_limits l;
	uint16_t a = lc_conn_limits_bucket(0x0100007f), b;
	uint32_t ip = 0x0200007f;

	(void)state;
	/* Another address in a different bucket. */
	while ((b = lc_conn_limits_bucket(ip)) == a)
		ip++;
	assert_int_equal(lc_conn_limits_init(&l, 3, 2), 0);
	assert_true(lc_conn_limits_admit(&l, a));
	assert_true(lc_conn_limits_admit(&l, a));
	assert_false(lc_conn_limits_admit(&l, a)); /* per IP */
	assert_true(lc_conn_limits_admit(&l, b));
	assert_false(lc_conn_limits_admit(&l, b)); /* total */
	assert_int_equal(atomic_load(&l.total), 3);
	lc_conn_limits_release(&l, a);
	assert_true(lc_conn_limits_admit(&l, b));
	assert_int_equal(atomic_load(&l.per_ip[a]), 1);
	assert_int_equal(atomic_load(&l.per_ip[b]), 2);
	lc_conn_limits_cleanup(&l);
}

static void
test_rate_bucket(void **state)
{
	struct lc_rate_table *t = calloc(1, sizeof(*t));
	int64_t now = 1000000;
	uint32_t ip2 = 2, ip3 = 3;

	/* The table is direct-mapped: use addresses in distinct slots. */
#define SLOT(ip) (lc_hash_mix(ip) & (LC_RATE_SLOTS - 1))
	while (SLOT(ip2) == SLOT(1))
		ip2++;
	while (SLOT(ip3) == SLOT(1) || SLOT(ip3) == SLOT(ip2))
		ip3++;
#undef SLOT

	(void)state;
	assert_non_null(t);
	/* Unlimited: always admitted. */
	assert_int_equal(lc_rate_take(t, 0, 1, 1000000, now), 0);
	/* 10 likes/s: a full bucket, then a wait. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(lc_rate_take(t, 10, 1, 1, now), 0);
	assert_int_equal(lc_rate_take(t, 10, 1, 1, now), 1);
	/* Another address has its own bucket. */
	assert_int_equal(lc_rate_take(t, 10, ip2, 1, now), 0);
	/* 500 ms refill 5 tokens. */
	assert_int_equal(lc_rate_take(t, 10, 1, 5, now + 500), 0);
	assert_int_equal(lc_rate_take(t, 10, 1, 1, now + 500), 1);
	/* A batch larger than the rate still gets in from a full bucket. */
	assert_int_equal(lc_rate_take(t, 10, ip3, 1000, now), 0);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conn_limits_total_and_per_ip),
	    cmocka_unit_test(test_rate_bucket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
