/*
 * Unit tests: cluster mode without a network. The merge rules of per-node
 * slots (max-merge, duplicates, reordering, a slot going backwards, the
 * own slot's one-time adoption), the wire format (keys, members, scores,
 * messages: every URL the API accepts round-trips), and the dispatcher
 * merging remote readings and handing own changes to the bridge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc/cluster.h"
#include "lc/common.h"
#include "lc/counter.h"
#include "lc/dispatch.h"
#include "lc/hash.h"
#include "lc/parse.h"
#include "lc/slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct lc_entry *
get(struct lc_counter *c, const char *url)
{
	return lc_counter_find_or_insert(c, url, strlen(url),
					 lc_hash(url, strlen(url)));
}

static int64_t
count(struct lc_entry *e)
{
	return lc_entry_count(e);
}

static void
merge(struct lc_entry *e, uint32_t node, int64_t l, int64_t u, bool adopt,
      int64_t exp_dl, int64_t exp_du)
{
	int64_t dl, du;

	assert_int_equal(lc_slots_merge(e, 1, node, l, u, adopt, 0, &dl, &du),
			 0);
	assert_int_equal(dl, exp_dl);
	assert_int_equal(du, exp_du);
}

static void
test_max_merge(void **state)
{
	struct lc_counter c;
	struct lc_entry *e;

	(void)state;
	lc_counter_init(&c, 16);
	e = get(&c, "u");
	/* self = 1; readings of node 2 */
	merge(e, 2, 5, 1, false, 5, 1);
	assert_int_equal(count(e), 4);
	merge(e, 2, 5, 1, false, 0, 0); /* duplicate */
	merge(e, 2, 3, 0, false, 0, 0); /* stale, reordered: goes backwards */
	assert_int_equal(count(e), 4);
	merge(e, 2, 9, 1, false, 4, 0);
	merge(e, 3, 2, 2, false, 2, 2); /* another node */
	assert_int_equal(count(e), 8);
	merge(e, 2, 8, 7, false, 0, 6); /* likes stale, unlikes new */
	assert_int_equal(count(e), 2);
	assert_int_equal(lc_slots_find(e, 2)->likes, 9);
	assert_int_equal(lc_slots_find(e, 2)->unlikes, 7);
	/* our own slot: only our likes move it, never a reading */
	assert_int_equal(lc_slots_add_own(e, 1, 10, 0, 0), 0);
	assert_int_equal(count(e), 12);
	merge(e, 1, 50, 0, false, 0, 0);
	assert_int_equal(lc_slots_find(e, 1)->likes, 10);
	assert_int_equal(count(e), 12);
	lc_counter_cleanup(&c);
}

static void
test_own_adoption(void **state)
{
	struct lc_counter c;
	struct lc_entry *e;

	(void)state;
	lc_counter_init(&c, 16);
	e = get(&c, "u");
	/* loaded from the database: 8 of our own likes */
	assert_int_equal(lc_slots_load(e, 1, 1, 8, 0), 0);
	assert_int_equal(lc_slots_settle(e, 1), 0);
	assert_int_equal(count(e), 8);
	/* 3 more in this run before the first resync */
	lc_slots_add_own(e, 1, 3, 0, 0);
	assert_int_equal(count(e), 11);
	/* Redis holds 10 from the earlier run (the database lost 2) */
	merge(e, 1, 10, 0, true, 2, 0);
	assert_int_equal(lc_slots_find(e, 1)->likes, 13);
	/* a repeated first resync adopts nothing twice */
	merge(e, 1, 10, 0, true, 0, 0);
	merge(e, 1, 9, 0, true, 0, 0);
	assert_int_equal(count(e), 13);
	lc_counter_cleanup(&c);
}

/*
 * Two processes with one node id, one after the other (issue 20): A
 * pushes 5 (confirmed), loses its lease, counts 2 alone; B takes the lease
 * with an empty database, adopts 5 and adds 3 (Redis: 8); A takes the
 * lease back and adopts what exceeds what it had confirmed: 10 = 5 + 2 + 3.
 * Without the confirmed base A would push 7 or 8 and lose likes.
 */
static void
test_adoption_after_another_holder(void **state)
{
	struct lc_counter c;
	struct lc_entry *a, *b;

	(void)state;
	lc_counter_init(&c, 16);
	a = get(&c, "a");
	b = get(&c, "b");
	/* process A: 5 likes, pushed and confirmed by Redis */
	lc_slots_add_own(a, 1, 5, 0, 0);
	lc_slots_confirm(a, 5, 0);
	/* cut off: 2 more, not pushed */
	lc_slots_add_own(a, 1, 2, 0, 0);
	/* process B (empty database) takes the lease: adopts 5, adds 3 */
	merge(b, 1, 5, 0, true, 5, 0);
	lc_slots_add_own(b, 1, 3, 0, 0);
	lc_slots_confirm(b, 8, 0);
	assert_int_equal(lc_slots_find(b, 1)->likes, 8);
	/* A takes the lease back (new generation): adopts 8 - 5 */
	merge(a, 1, 8, 0, true, 3, 0);
	assert_int_equal(lc_slots_find(a, 1)->likes, 10);
	assert_int_equal(count(a), 10);
	/* a repeated adoption adds nothing; a confirm never lowers */
	merge(a, 1, 8, 0, true, 0, 0);
	lc_slots_confirm(a, 4, 0);
	merge(a, 1, 8, 0, true, 0, 0);
	assert_int_equal(count(a), 10);
	/* A pushes 10: confirmed; B, back later, adopts A's 2 */
	lc_slots_confirm(a, 10, 0);
	merge(b, 1, 10, 0, true, 2, 0);
	assert_int_equal(count(b), 10);
	lc_counter_cleanup(&c);
}

static void
test_settle(void **state)
{
	struct lc_counter c;
	struct lc_entry *e, *f;

	(void)state;
	lc_counter_init(&c, 16);
	/* a single-node database: its counts become our own slot */
	e = get(&c, "old");
	lc_entry_add(e, 7, 2, 0);
	assert_int_equal(lc_slots_settle(e, 4), 0);
	assert_int_equal(lc_slots_find(e, 4)->likes, 7);
	assert_int_equal(lc_slots_find(e, 4)->unlikes, 2);
	assert_int_equal(count(e), 5);
	/* counts that disagree with the slots follow the slots */
	f = get(&c, "f");
	lc_entry_add(f, 100, 0, 0);
	lc_slots_load(f, 4, 4, 3, 0);
	lc_slots_load(f, 4, 5, 4, 1);
	assert_int_equal(lc_slots_settle(f, 4), 0);
	assert_int_equal(count(f), 6);
	lc_counter_cleanup(&c);
}

/* ---- wire format ------------------------------------------------------ */

struct seen {
	int n;
	uint32_t node[8];
	int64_t l[8], u[8];
	char url[8][2100];
	size_t len[8];
};

static int
on_line(void *arg, uint32_t node, int64_t l, int64_t u, const char *url,
	size_t len)
{
	struct seen *s = arg;

	if (s->n == 8)
		return -100;
	s->node[s->n] = node;
	s->l[s->n] = l;
	s->u[s->n] = u;
	memcpy(s->url[s->n], url, len);
	s->len[s->n] = len;
	s->n++;
	return 0;
}

/* A random URL the API accepts: valid UTF-8, no control characters. */
static size_t
random_url(char *out, size_t max)
{
	static const char *const pieces[] = {
	    "https://", "example.com", "/",	" ",  "{",    "}",
	    ":",	"}:",	       "lc:u:", "é",  "日本", "😀",
	    "?a=1&b=2", "#frag",       "%20",	"\\", "\""};
	size_t n = 0, want = 1 + (size_t)rand() % 40;

	while (want--) {
		const char *p =
		    pieces[rand() % (int)(sizeof(pieces) / sizeof(pieces[0]))];
		size_t k = strlen(p);

		if (n + k > max)
			break;
		memcpy(out + n, p, k);
		n += k;
	}
	if (!n)
		out[n++] = 'x';
	return n;
}

static void
test_message_round_trip(void **state)
{
	struct lc_api_error err;
	struct lc_buf b = {0};
	char urls[8][2048 + 8];
	size_t lens[8];

	(void)state;
	srand(42);
	for (int round = 0; round < 500; round++) {
		struct lc_msg_header h = {1 + (uint32_t)(round % 1023),
					  0x0123456789abcdefULL ^
					      (uint64_t)round,
					  (uint64_t)round * 1000003u},
				     got;
		struct seen s = {0};
		int lines = round % 8;

		assert_int_equal(lc_msg_begin(&b, &h), 0);
		for (int i = 0; i < lines; i++) {
			lens[i] = random_url(urls[i], 2048);
			if (i == 0 && round % 50 == 0) {
				/* the longest URL the API accepts */
				memset(urls[i], 'w', 2048);
				lens[i] = 2048;
			}
			assert_int_equal(
			    lc_url_check(urls[i], lens[i], 2048, &err), 0);
			assert_int_equal(lc_msg_add(&b, (uint32_t)(i + 1),
						    INT64_MAX - i, i, urls[i],
						    lens[i]),
					 0);
		}
		assert_int_equal(lc_msg_parse(b.p, b.n, &got, on_line, &s),
				 lines);
		assert_int_equal(got.node, h.node);
		assert_true(got.boot == h.boot);
		assert_true(got.seq == h.seq);
		for (int i = 0; i < lines; i++) {
			assert_int_equal(s.node[i], (uint32_t)(i + 1));
			assert_true(s.l[i] == INT64_MAX - i);
			assert_int_equal(s.u[i], i);
			assert_int_equal(s.len[i], lens[i]);
			assert_memory_equal(s.url[i], urls[i], lens[i]);
		}
	}
	lc_buf_free(&b);
}

static void
test_message_malformed(void **state)
{
	static const char *const bad[] = {
	    "",
	    "lc1 1 0123456789abcdef 1",		    /* no newline */
	    "lc2 1 0123456789abcdef 1\n",	    /* magic */
	    "lc1 0 0123456789abcdef 1\n",	    /* node 0 */
	    "lc1 1024 0123456789abcdef 1\n",	    /* node > 1023 */
	    "lc1 1 0123456789abcdeg 1\n",	    /* boot */
	    "lc1 1 0123456789abcdef x\n",	    /* seq */
	    "lc1 1 0123456789abcdef 1\n1 2 3\n",    /* no url */
	    "lc1 1 0123456789abcdef 1\n1 2 3 \n",   /* empty url */
	    "lc1 1 0123456789abcdef 1\n1 -2 3 u\n", /* negative */
	    "lc1 1 0123456789abcdef 1\n1 2 3 u",    /* unterminated */
	    "lc1 1 0123456789abcdef 1\n1 99999999999999999999 3 u\n",
	};
	struct lc_msg_header h;
	struct seen s;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&s, 0, sizeof(s));
		assert_true(
		    lc_msg_parse(bad[i], strlen(bad[i]), &h, on_line, &s) < 0);
	}
	/* a heartbeat: header only */
	assert_int_equal(
	    lc_msg_parse("lc1 7 00000000000000ff 9\n", 25, &h, on_line, &s), 0);
	assert_int_equal(h.node, 7);
	assert_true(h.boot == 255 && h.seq == 9);
}

static void
test_keys_members_scores(void **state)
{
	char key[LC_CLUSTER_KEY_HEAD + 2048 + 1], url[2048];
	const char *u;
	size_t n, len, ulen;
	uint32_t node;
	bool unl;
	int64_t v;

	(void)state;
	srand(7);
	for (int i = 0; i < 200; i++) {
		ulen = random_url(url, sizeof(url));
		n = lc_cluster_key(key, sizeof(key), url, ulen);
		assert_int_equal(n, LC_CLUSTER_KEY_HEAD + ulen);
		assert_true(lc_cluster_key_url(key, n, &u, &len));
		assert_int_equal(len, ulen);
		assert_memory_equal(u, url, ulen);
	}
	/* the hash tag is the same on every node and run (unseeded) */
	lc_cluster_key(key, sizeof(key), "a", 1);
	assert_string_equal(key, "lc:u:{cd20}:a");
	assert_false(lc_cluster_key_url("lc:node:1", 9, &u, &len));
	assert_false(lc_cluster_key_url("lc:u:{cd20}:", 12, &u, &len));

	assert_true(lc_cluster_member_parse("12:l", 4, &node, &unl));
	assert_true(node == 12 && !unl);
	assert_true(lc_cluster_member_parse("1023:u", 6, &node, &unl));
	assert_true(node == 1023 && unl);
	assert_false(lc_cluster_member_parse("0:l", 3, &node, &unl));
	assert_false(lc_cluster_member_parse("1024:l", 6, &node, &unl));
	assert_false(lc_cluster_member_parse("1:x", 3, &node, &unl));
	assert_false(lc_cluster_member_parse(":l", 2, &node, &unl));

	assert_true(lc_cluster_score_parse("42", 2, &v) && v == 42);
	assert_true(lc_cluster_score_parse("1e+17", 5, &v) &&
		    v == 100000000000000000LL);
	assert_false(lc_cluster_score_parse("-1", 2, &v));
	assert_false(lc_cluster_score_parse("1.5", 3, &v));
	assert_false(lc_cluster_score_parse("inf", 3, &v));
}

/* ---- the dispatcher with a cluster ------------------------------------ */

static void
test_dispatch_remote_and_own(void **state)
{
	struct lc_counter c;
	struct lc_source a, *srcs[1] = {&a};
	struct lc_dispatch d;
	struct lc_cluster cl;
	struct lc_remote_batch *b;
	struct lc_entry **own, *e;
	int64_t cnt;
	size_t n;

	(void)state;
	lc_counter_init(&c, 16);
	lc_source_init(&a);
	lc_cluster_init(&cl, 1);
	lc_dispatch_init(&d, &c, srcs, 1, NULL, 10);
	d.cluster = &cl;

	/* our own like: own slot, counts, handed to the bridge */
	assert_int_equal(lc_source_add(&a, &c, "x", 1, 3, &cnt), 0);
	lc_dispatch_tick(&d, 1000);
	e = get(&c, "x");
	assert_int_equal(count(e), 3);
	assert_int_equal(lc_slots_find(e, 1)->likes, 3);
	n = lc_cluster_take_own(&cl, &own);
	assert_int_equal(n, 1);
	assert_ptr_equal(own[0], e);
	free(own);

	/* readings from node 2 (one duplicated, one stale) */
	b = lc_remote_batch_new(false);
	lc_remote_batch_add(b, 2, 5, 0, "x", 1);
	lc_remote_batch_add(b, 2, 5, 0, "x", 1);
	lc_remote_batch_add(b, 2, 4, 0, "x", 1);
	lc_remote_batch_add(b, 2, 1, 1, "new", 3);
	lc_cluster_post_remote(&cl, b);
	lc_dispatch_tick(&d, 2000);
	assert_int_equal(count(e), 8);
	assert_int_equal(count(get(&c, "new")), 0);
	assert_int_equal(lc_slots_find(get(&c, "new"), 2)->unlikes, 1);
	/* remote changes alone are not pushed back */
	assert_int_equal(lc_cluster_take_own(&cl, &own), 0);
	free(own);
	assert_int_equal(atomic_load(&d.stats.all_likes), 9);
	assert_int_equal(atomic_load(&cl.stats.remote_likes), 6);

	lc_dispatch_cleanup(&d);
	lc_cluster_cleanup(&cl);
	lc_source_cleanup(&a);
	lc_counter_cleanup(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_max_merge),
	    cmocka_unit_test(test_own_adoption),
	    cmocka_unit_test(test_adoption_after_another_holder),
	    cmocka_unit_test(test_settle),
	    cmocka_unit_test(test_message_round_trip),
	    cmocka_unit_test(test_message_malformed),
	    cmocka_unit_test(test_keys_members_scores),
	    cmocka_unit_test(test_dispatch_remote_and_own),
	};

	lc_hash_seed_init();
	lc_parse_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
