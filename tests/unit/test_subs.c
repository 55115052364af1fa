/* Unit tests: the worker's url <-> subscription index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc/counter.h"
#include "lc/hash.h"
#include "lc/subs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct lc_entry *
get(struct lc_counter *c, const char *url)
{
	return lc_counter_find_or_insert(c, url, strlen(url),
					 lc_hash(url, strlen(url)));
}

/* Every node's array and every sub's back-pointer agree. */
static void
check_consistent(struct lc_subs *s)
{
	size_t total = 0, nodes = 0;

	for (size_t i = 0; i <= s->mask; i++) {
		struct lc_subs_node *n = s->slots[i];

		if (!n)
			continue;
		nodes++;
		assert_true(n->n > 0);
		assert_ptr_equal(lc_subs_find(s, n->e), n);
		for (uint32_t k = 0; k < n->n; k++) {
			assert_ptr_equal(n->subs[k]->node, n);
			assert_int_equal(n->subs[k]->idx, k);
		}
		total += n->n;
	}
	assert_int_equal(nodes, s->n);
	assert_int_equal(total, s->subscriptions);
}

static void
test_add_remove_many(void **state)
{
	enum { SESSIONS = 2000, URLS = 50 };
	struct lc_counter c;
	struct lc_subs s;
	static struct lc_sub subs[SESSIONS][3];
	struct lc_entry *e[URLS];
	char url[16];

	(void)state;
	lc_counter_init(&c, 64);
	assert_int_equal(lc_subs_init(&s), 0);
	for (int u = 0; u < URLS; u++) {
		snprintf(url, sizeof(url), "u%d", u);
		e[u] = get(&c, url);
	}
	for (int i = 0; i < SESSIONS; i++)
		for (int k = 0; k < 3; k++) {
			subs[i][k].owner = &subs[i];
			assert_int_equal(
			    lc_subs_add(&s, e[(i + k * 7) % URLS], &subs[i][k]),
			    0);
		}
	check_consistent(&s);
	assert_int_equal(s.subscriptions, SESSIONS * 3);
	assert_int_equal(s.n, URLS);
	int32_t total = 0;

	for (int u = 0; u < URLS; u++)
		total += atomic_load(&e[u]->subscribers);
	assert_int_equal(total, SESSIONS * 3);

	/* Remove in a scrambled order; consistency holds at every step. */
	for (int i = 0; i < SESSIONS; i += 2)
		lc_subs_remove(&s, &subs[i][1]);
	check_consistent(&s);
	for (int i = SESSIONS - 1; i >= 0; i--) {
		lc_subs_remove(&s, &subs[i][0]);
		lc_subs_remove(&s, &subs[i][2]);
		if (i & 1)
			lc_subs_remove(&s, &subs[i][1]);
		if (i % 97 == 0)
			check_consistent(&s);
	}
	assert_int_equal(s.subscriptions, 0);
	assert_int_equal(s.n, 0); /* every node freed with its last sub */
	for (int u = 0; u < URLS; u++) {
		assert_int_equal(atomic_load(&e[u]->subscribers), 0);
		assert_null(lc_subs_find(&s, e[u]));
	}
	/* Removing twice is harmless. */
	lc_subs_remove(&s, &subs[0][0]);
	lc_subs_cleanup(&s);
	lc_counter_cleanup(&c);
}

static void
test_churn_keeps_index_small(void **state)
{
	struct lc_counter c;
	struct lc_subs s;
	struct lc_sub sub = {0};
	char url[16];

	(void)state;
	lc_counter_init(&c, 64);
	lc_subs_init(&s);
	/* Subscribe/unsubscribe 100k distinct URLs one at a time. */
	for (int i = 0; i < 100000; i++) {
		snprintf(url, sizeof(url), "c%d", i);
		assert_int_equal(lc_subs_add(&s, get(&c, url), &sub), 0);
		lc_subs_remove(&s, &sub);
	}
	assert_int_equal(s.n, 0);
	assert_true(s.mask < 64); /* no tombstones made it grow */
	lc_subs_cleanup(&s);
	lc_counter_cleanup(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_remove_many),
	    cmocka_unit_test(test_churn_keeps_index_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
