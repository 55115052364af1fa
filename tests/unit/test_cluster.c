/*
 * Unit tests: cluster mode without a network. The merge rules of per-node
 * slots (max-merge, duplicates, reordering, a slot going backwards, the
 * own slot's one-time adoption, two processes with one node id), the wire
 * format (keys, members, scores, messages: every URL the API accepts
 * round-trips), and the dispatcher merging remote readings and handing own
 * changes to the bridge.
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

/* Slot ids in these tests: node n's database is instance 0x1000 + n. */
static struct lc_slot_id
sid(uint32_t node)
{
	return (struct lc_slot_id){node, 0x1000 + node};
}

static int64_t
count(struct lc_entry *e)
{
	return lc_entry_count(e);
}

static void
merge3(struct lc_entry *e, uint32_t node, struct lc_reading r, bool adopt,
       struct lc_reading exp)
{
	struct lc_reading d;

	assert_int_equal(lc_slots_merge(e, sid(1), sid(node), r, adopt, 0, &d),
			 0);
	assert_int_equal(d.likes, exp.likes);
	assert_int_equal(d.unlikes, exp.unlikes);
	assert_int_equal(d.views, exp.views);
}

static void
merge(struct lc_entry *e, uint32_t node, int64_t l, int64_t u, bool adopt,
      int64_t exp_dl, int64_t exp_du)
{
	merge3(e, node, (struct lc_reading){l, u, 0}, adopt,
	       (struct lc_reading){exp_dl, exp_du, 0});
}

static struct lc_reading
rd(int64_t l, int64_t u, int64_t v)
{
	return (struct lc_reading){l, u, v};
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
	assert_int_equal(lc_slots_find(e, sid(2))->likes, 9);
	assert_int_equal(lc_slots_find(e, sid(2))->unlikes, 7);
	/* our own slot: only our likes move it, never a reading */
	assert_int_equal(lc_slots_add_own(e, sid(1), 10, 0, 0), 0);
	assert_int_equal(count(e), 12);
	merge(e, 1, 50, 0, false, 0, 0);
	assert_int_equal(lc_slots_find(e, sid(1))->likes, 10);
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
	assert_int_equal(lc_slots_load(e, sid(1), sid(1), rd(8, 0, 0)), 0);
	assert_int_equal(lc_slots_settle(e, sid(1)), 0);
	assert_int_equal(count(e), 8);
	/* 3 more in this run before the first resync */
	lc_slots_add_own(e, sid(1), 3, 0, 0);
	assert_int_equal(count(e), 11);
	/* Redis holds 10 from the earlier run (the database lost 2) */
	merge(e, 1, 10, 0, true, 2, 0);
	assert_int_equal(lc_slots_find(e, sid(1))->likes, 13);
	/* a repeated first resync adopts nothing twice */
	merge(e, 1, 10, 0, true, 0, 0);
	merge(e, 1, 9, 0, true, 0, 0);
	assert_int_equal(count(e), 13);
	lc_counter_cleanup(&c);
}

/*
 * Two processes with one node id (issue 20): A (database X) and B
 * (database Y) each write their own slot, "1.X" and "1.Y". A's push of 5
 * reaches Redis but the cut swallows its reply (never confirmed), A counts
 * 2 more alone, B counts 3; whatever order the readings come in, and
 * however often, every like counts once: 10 on A, on B and on node 2.
 * (Slots named by node id alone counted A's unconfirmed 5 twice here once
 * A adopted B's totals of their shared slot.)
 */
static void
test_two_processes_one_node_id(void **state)
{
	struct lc_slot_id x = {1, 0xaaaa}, y = {1, 0xbbbb}, c2 = sid(2);
	struct lc_counter ca, cb, cc;
	struct lc_entry *a, *b, *c;
	struct lc_reading d;

	(void)state;
	lc_counter_init(&ca, 16);
	lc_counter_init(&cb, 16);
	lc_counter_init(&cc, 16);
	a = get(&ca, "u");
	b = get(&cb, "u");
	c = get(&cc, "u");
	/* A: 5, pushed (Redis: 1.X = 5), the reply lost: no confirm */
	lc_slots_add_own(a, x, 5, 0, 0);
	/* B and node 2 learn 1.X = 5 (B's first, adopting resync too) */
	assert_int_equal(lc_slots_merge(b, y, x, rd(5, 0, 0), true, 0, &d), 0);
	assert_int_equal(d.likes, 5);
	assert_int_equal(lc_slots_merge(c, c2, x, rd(5, 0, 0), false, 0, &d),
			 0);
	/* A counts 2 alone; B counts 3 (Redis: 1.Y = 3) */
	lc_slots_add_own(a, x, 2, 0, 0);
	lc_slots_add_own(b, y, 3, 0, 0);
	/* A is back: its resync reads 1.X = 5 (its own: not adopted again,
	 * however the lease changed hands) and 1.Y = 3 */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		    lc_slots_merge(a, x, x, rd(5, 0, 0), false, 0, &d), 0);
		assert_int_equal(d.likes, 0);
		assert_int_equal(
		    lc_slots_merge(a, x, y, rd(3, 0, 0), false, 0, &d), 0);
	}
	assert_int_equal(count(a), 10);
	/* A pushes 1.X = 7; B and node 2 read both slots, in any order */
	assert_int_equal(lc_slots_merge(b, y, x, rd(7, 0, 0), false, 0, &d), 0);
	assert_int_equal(lc_slots_merge(b, y, y, rd(3, 0, 0), false, 0, &d), 0);
	assert_int_equal(lc_slots_merge(c, c2, y, rd(3, 0, 0), false, 0, &d),
			 0);
	assert_int_equal(lc_slots_merge(c, c2, x, rd(7, 0, 0), false, 0, &d),
			 0);
	assert_int_equal(lc_slots_merge(c, c2, x, rd(5, 0, 0), false, 0, &d),
			 0);
	assert_int_equal(count(b), 10);
	assert_int_equal(count(c), 10);
	assert_int_equal(lc_slots_find(a, x)->likes, 7);
	assert_int_equal(lc_slots_find(c, y)->likes, 3);
	lc_counter_cleanup(&ca);
	lc_counter_cleanup(&cb);
	lc_counter_cleanup(&cc);
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
	assert_int_equal(lc_slots_settle(e, sid(4)), 0);
	assert_int_equal(lc_slots_find(e, sid(4))->likes, 7);
	assert_int_equal(lc_slots_find(e, sid(4))->unlikes, 2);
	assert_int_equal(count(e), 5);
	/* counts that disagree with the slots follow the slots */
	f = get(&c, "f");
	lc_entry_add(f, 100, 0, 0);
	lc_slots_load(f, sid(4), sid(4), rd(3, 0, 0));
	lc_slots_load(f, sid(4), sid(5), rd(4, 1, 0));
	assert_int_equal(lc_slots_settle(f, sid(4)), 0);
	assert_int_equal(count(f), 6);
	lc_counter_cleanup(&c);
}

/* ---- wire format ------------------------------------------------------ */

struct seen {
	int n;
	struct lc_slot_id id[8];
	int64_t l[8], u[8], v[8];
	int32_t w[8];
	char url[8][2100];
	size_t len[8];
};

static int
on_line(void *arg, const struct lc_msg_line *l)
{
	struct seen *s = arg;

	if (s->n == 8)
		return -100;
	s->id[s->n] = l->id;
	s->l[s->n] = l->r.likes;
	s->u[s->n] = l->r.unlikes;
	s->v[s->n] = l->r.views;
	s->w[s->n] = l->watching;
	memcpy(s->url[s->n], l->url, l->len);
	s->len[s->n] = l->len;
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
					  (uint64_t)round * 1000003u,
					  (enum lc_msg_kind)(round % 4)},
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
			struct lc_msg_line l = {
			    {(uint32_t)(i + 1), i % 2 ? 0 : 0xfedcba98u >> i},
			    {INT64_MAX - i, i, 7 * i},
			    i % 3 ? i * 1000 : -1,
			    urls[i],
			    lens[i]};

			assert_int_equal(lc_msg_add(&b, &l), 0);
		}
		assert_int_equal(lc_msg_parse(b.p, b.n, &got, on_line, &s),
				 lines);
		assert_int_equal(got.node, h.node);
		assert_true(got.boot == h.boot);
		assert_true(got.seq == h.seq);
		assert_int_equal(got.kind, h.kind);
		for (int i = 0; i < lines; i++) {
			assert_int_equal(s.id[i].node, (uint32_t)(i + 1));
			assert_int_equal(s.id[i].inst,
					 i % 2 ? 0 : 0xfedcba98u >> i);
			assert_true(s.l[i] == INT64_MAX - i);
			assert_int_equal(s.u[i], i);
			assert_int_equal(s.v[i], 7 * i);
			assert_int_equal(s.w[i], i % 3 ? i * 1000 : -1);
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
	    "lc3 1 0123456789abcdef 1",			/* no newline */
	    "lc2 1 0123456789abcdef 1\n",		/* the old magic */
	    "lc3 0 0123456789abcdef 1\n",		/* node 0 */
	    "lc3 1024 0123456789abcdef 1\n",		/* node > 1023 */
	    "lc3 1 0123456789abcdeg 1\n",		/* boot */
	    "lc3 1 0123456789abcdef x\n",		/* seq */
	    "lc3 1 0123456789abcdef 1 ciao\n",		/* kind */
	    "lc3 1 0123456789abcdef 1 bye \n",		/* kind */
	    "lc3 1 0123456789abcdef 1\n1 2 3 0 - \n",	/* empty url */
	    "lc3 1 0123456789abcdef 1\n1 2 3 4\n",	/* no url */
	    "lc3 1 0123456789abcdef 1\n1 2 3 u\n",	/* lc1's line */
	    "lc3 1 0123456789abcdef 1\n1 -2 3 0 - u\n", /* negative */
	    "lc3 1 0123456789abcdef 1\n1 2 3 0 -1 u\n", /* watchers < 0 */
	    "lc3 1 0123456789abcdef 1\n1 2 3 0 x u\n",	/* watchers */
	    "lc3 1 0123456789abcdef 1\n1 2 3 0 2147483648 u\n",
	    "lc3 1 0123456789abcdef 1\n1 2 3 0 - u", /* unterminated */
	    "lc3 1 0123456789abcdef 1\n1 99999999999999999999 3 0 - u\n",
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
	    lc_msg_parse("lc3 7 00000000000000ff 9\n", 25, &h, on_line, &s), 0);
	assert_int_equal(h.node, 7);
	assert_true(h.boot == 255 && h.seq == 9 && h.kind == LC_MSG_PLAIN);
	{
		const char *bye = "lc3 7 00000000000000ff 10 bye\n";

		assert_int_equal(
		    lc_msg_parse(bye, strlen(bye), &h, on_line, &s), 0);
	}
	assert_true(h.seq == 10 && h.kind == LC_MSG_BYE);
}

static void
test_keys_members_scores(void **state)
{
	char key[LC_CLUSTER_KEY_HEAD + 2048 + 1], url[2048];
	const char *u;
	size_t n, len, ulen;
	struct lc_slot_id id;
	enum lc_member_kind unl;
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

	assert_true(lc_cluster_member_parse("12:l", 4, &id, &unl));
	assert_true(id.node == 12 && id.inst == 0 && unl == LC_MEMBER_LIKES);
	assert_true(lc_cluster_member_parse("1023:u", 6, &id, &unl));
	assert_true(id.node == 1023 && unl == LC_MEMBER_UNLIKES);
	assert_true(lc_cluster_member_parse("7:v", 3, &id, &unl));
	assert_true(id.node == 7 && unl == LC_MEMBER_VIEWS);
	assert_true(lc_cluster_member_parse("3.0a1b2c3d:l", 12, &id, &unl));
	assert_true(id.node == 3 && id.inst == 0x0a1b2c3d &&
		    unl == LC_MEMBER_LIKES);
	assert_false(lc_cluster_member_parse("0:l", 3, &id, &unl));
	assert_false(lc_cluster_member_parse("1024:l", 6, &id, &unl));
	assert_false(lc_cluster_member_parse("1:x", 3, &id, &unl));
	assert_false(lc_cluster_member_parse(":l", 2, &id, &unl));
	assert_false(lc_cluster_member_parse("3.00000000:l", 12, &id, &unl));
	assert_false(lc_cluster_member_parse("3.0A1B2C3D:l", 12, &id, &unl));
	assert_false(lc_cluster_member_parse("3.a1b2c3d:l", 11, &id, &unl));
	assert_false(lc_cluster_member_parse(".0a1b2c3d:l", 11, &id, &unl));
	/* a slot's name round-trips, the longest fits LC_SLOT_ID_MAX */
	{
		char m[LC_SLOT_ID_MAX + 2];
		struct lc_slot_id big = {1023, 0xffffffffu}, got;
		int ml = lc_slot_id_format(m, LC_SLOT_ID_MAX, big);

		assert_int_equal(ml, LC_SLOT_ID_MAX - 1);
		assert_string_equal(m, "1023.ffffffff");
		m[ml] = ':', m[ml + 1] = 'v';
		assert_true(
		    lc_cluster_member_parse(m, (size_t)ml + 2, &got, &unl));
		assert_true(lc_slot_id_eq(got, big) && unl == LC_MEMBER_VIEWS);
		assert_int_equal(
		    lc_slot_id_format(m, sizeof(m), (struct lc_slot_id){9, 0}),
		    1);
		assert_string_equal(m, "9");
	}

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
	lc_cluster_init(&cl, 1, 0x1001);
	lc_dispatch_init(&d, &c, srcs, 1, NULL, 10);
	d.cluster = &cl;

	/* our own like: own slot, counts, handed to the bridge */
	assert_int_equal(lc_source_add(&a, &c, "x", 1, 3, &cnt), 0);
	lc_dispatch_tick(&d, 1000);
	e = get(&c, "x");
	assert_int_equal(count(e), 3);
	assert_int_equal(lc_slots_find(e, sid(1))->likes, 3);
	n = lc_cluster_take_own(&cl, &own);
	assert_int_equal(n, 1);
	assert_ptr_equal(own[0], e);
	free(own);

	/* readings from node 2 (one duplicated, one stale) */
	b = lc_remote_batch_new(false);
	lc_remote_batch_add(b, sid(2), rd(5, 0, 0), -1, "x", 1);
	lc_remote_batch_add(b, sid(2), rd(5, 0, 0), -1, "x", 1);
	lc_remote_batch_add(b, sid(2), rd(4, 0, 0), -1, "x", 1);
	lc_remote_batch_add(b, sid(2), rd(1, 1, 0), -1, "new", 3);
	lc_cluster_post_remote(&cl, b);
	lc_dispatch_tick(&d, 2000);
	assert_int_equal(count(e), 8);
	assert_int_equal(count(get(&c, "new")), 0);
	assert_int_equal(lc_slots_find(get(&c, "new"), sid(2))->unlikes, 1);
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

/* Views: max-merged per node like likes; adopted for our own slot. */
static void
test_views_merge(void **state)
{
	struct lc_counter c;
	struct lc_entry *e;

	(void)state;
	lc_counter_init(&c, 16);
	e = get(&c, "v");
	merge3(e, 2, rd(0, 0, 7), false, rd(0, 0, 7));
	merge3(e, 2, rd(0, 0, 7), false, rd(0, 0, 0)); /* duplicate */
	merge3(e, 2, rd(0, 0, 3), false, rd(0, 0, 0)); /* stale */
	merge3(e, 3, rd(1, 0, 2), false, rd(1, 0, 2));
	assert_int_equal(lc_entry_read(e).views, 9);
	/* our own: only what Redis holds beyond the base, once */
	lc_slots_add_own_marked(e, sid(1), 0, 0, 4, 0, NULL);
	lc_slots_confirm(e, rd(0, 0, 4));
	merge3(e, 1, rd(0, 0, 9), false, rd(0, 0, 0));
	merge3(e, 1, rd(0, 0, 6), true, rd(0, 0, 2));
	merge3(e, 1, rd(0, 0, 6), true, rd(0, 0, 0));
	assert_int_equal(lc_slots_find(e, sid(1))->views, 6);
	assert_int_equal(lc_entry_read(e).views, 15);
	/* settle: counts follow the slots, and views loaded with them */
	struct lc_entry *f = get(&c, "f");

	lc_slots_load(f, sid(1), sid(1), rd(2, 0, 5));
	lc_slots_load(f, sid(1), sid(2), rd(0, 0, 6));
	assert_int_equal(lc_slots_settle(f, sid(1)), 0);
	assert_int_equal(lc_entry_read(f).views, 11);
	assert_int_equal(count(f), 2);
	lc_counter_cleanup(&c);
}

/* The share bookkeeping: sums, withdrawals, boots, silence. */
static void
test_shares(void **state)
{
	struct lc_counter c;
	struct lc_cluster cl;
	struct lc_entry *e, *f;
	uint32_t gone[LC_CLUSTER_NODES];
	int rc;

	(void)state;
	lc_counter_init(&c, 16);
	lc_cluster_init(&cl, 1, 0x1001);
	e = get(&c, "e");
	f = get(&c, "f");
	assert_false(lc_shares_boot(&cl, 2, 0xa));
	assert_int_equal(lc_shares_set(&cl, e, 2, 3, &rc), 3);
	assert_int_equal(lc_shares_set(&cl, e, 2, 3, &rc), 0);
	assert_false(lc_shares_boot(&cl, 3, 0xb));
	assert_int_equal(lc_shares_set(&cl, e, 3, 2, &rc), 2);
	assert_int_equal(lc_shares_set(&cl, f, 2, 1, &rc), 1);
	/* ours is never a share, and a share is never negative */
	assert_int_equal(lc_shares_set(&cl, e, 1, 9, &rc), 0);
	assert_int_equal(lc_shares_set(&cl, e, 2, -1, &rc), 0);
	atomic_store(&e->subscribers, 1);
	assert_int_equal(lc_entry_watching(e), 6);
	assert_int_equal(cl.shares[2].urls, 2);
	assert_int_equal(cl.share_nodes, 2);
	/* node 2 leaves e: 5 - 3 */
	assert_int_equal(lc_shares_set(&cl, e, 2, 0, &rc), -3);
	assert_int_equal(lc_entry_watching(e), 3);
	assert_int_equal(cl.shares[2].urls, 1);
	/* silence: both nodes heard 1 s ago, then node 3 goes quiet */
	atomic_store(&cl.seen_us[2], 10000000);
	atomic_store(&cl.boot[2], 0xa);
	atomic_store(&cl.seen_us[3], 10000000);
	atomic_store(&cl.boot[3], 0xb);
	assert_int_equal(lc_shares_expired(&cl, 11000000, gone), 0);
	atomic_store(&cl.seen_us[2], 16000000);
	assert_int_equal(lc_shares_expired(&cl, 16500000, gone), 1);
	assert_int_equal(gone[0], 3);
	assert_int_equal(lc_shares_drop(&cl, e, 3), -2);
	assert_int_equal(lc_entry_watching(e), 1);
	assert_int_equal(lc_shares_expired(&cl, 16500000, gone), 0);
	/* node 2 says bye (seen 0), or comes back with another boot */
	atomic_store(&cl.seen_us[2], 0);
	assert_int_equal(lc_shares_expired(&cl, 16500000, gone), 1);
	atomic_store(&cl.seen_us[2], 16500000);
	atomic_store(&cl.boot[2], 0xc);
	assert_int_equal(lc_shares_expired(&cl, 16500000, gone), 1);
	assert_true(lc_shares_boot(&cl, 2, 0xc)); /* drop before setting */
	assert_int_equal(lc_shares_drop(&cl, f, 2), -1);
	assert_int_equal(cl.share_nodes, 0);
	assert_int_equal(lc_shares_expired(&cl, 16500000, gone), 0);
	assert_int_equal(atomic_load(&f->remote_watching), 0);
	lc_cluster_cleanup(&cl);
	lc_counter_cleanup(&c);
}

/* The dispatcher: share lines, full announcements, a new boot, views. */
static void
test_dispatch_shares_and_views(void **state)
{
	struct lc_counter c;
	struct lc_source a, *srcs[1] = {&a};
	struct lc_dispatch d;
	struct lc_cluster cl;
	struct lc_remote_batch *b;
	struct lc_entry *e;
	struct lc_buf lines = {0};

	(void)state;
	lc_counter_init(&c, 16);
	lc_source_init(&a);
	lc_cluster_init(&cl, 1, 0x1001);
	lc_dispatch_init(&d, &c, srcs, 1, NULL, 10);
	d.cluster = &cl;
	atomic_store(&cl.seen_us[2], lc_mono_us());
	atomic_store(&cl.boot[2], 0xa);

	/* node 2: 4 watchers of "w" (a URL unknown here), views of "v" */
	b = lc_remote_batch_new(false);
	b->sender = 2;
	b->boot = 0xa;
	lc_remote_batch_add(b, sid(2), rd(0, 0, 0), 4, "w", 1);
	lc_remote_batch_add(b, sid(2), rd(0, 0, 12), -1, "v", 1);
	lc_cluster_post_remote(&cl, b);
	lc_dispatch_tick(&d, 1000);
	e = get(&c, "w");
	assert_int_equal(lc_entry_watching(e), 4);
	assert_int_equal(lc_entry_read(get(&c, "v")).views, 12);
	assert_int_equal(atomic_load(&cl.stats.remote_views), 12);
	/* a share line about another node than its sender is ignored */
	b = lc_remote_batch_new(false);
	b->sender = 2;
	b->boot = 0xa;
	lc_remote_batch_add(b, sid(3), rd(0, 0, 0), 9, "w", 1);
	lc_cluster_post_remote(&cl, b);
	lc_dispatch_tick(&d, 1100);
	assert_int_equal(lc_entry_watching(e), 4);
	/* a restart of node 2 (new boot) replaces, never adds */
	atomic_store(&cl.boot[2], 0xb);
	b = lc_remote_batch_new(false);
	b->sender = 2;
	b->boot = 0xb;
	lc_remote_batch_add(b, sid(2), rd(0, 0, 0), 1, "w", 1);
	lc_cluster_post_remote(&cl, b);
	lc_dispatch_tick(&d, 1200);
	assert_int_equal(lc_entry_watching(e), 1);
	/* a full announcement without "w": its share there is 0 */
	b = lc_remote_batch_new(false);
	b->sender = 2;
	b->boot = 0xb;
	b->reset = true;
	lc_cluster_post_remote(&cl, b);
	lc_dispatch_tick(&d, 1300);
	assert_int_equal(lc_entry_watching(e), 0);
	/* back to 2, then node 2 goes silent: dropped at the next tick */
	b = lc_remote_batch_new(false);
	b->sender = 2;
	b->boot = 0xb;
	lc_remote_batch_add(b, sid(2), rd(0, 0, 0), 2, "w", 1);
	lc_cluster_post_remote(&cl, b);
	lc_dispatch_tick(&d, 1400);
	assert_int_equal(lc_entry_watching(e), 2);
	atomic_store(&cl.seen_us[2],
		     lc_mono_us() - (LC_SHARE_TIMEOUT_MS + 1) * 1000LL);
	lc_dispatch_tick(&d, 1500);
	assert_int_equal(lc_entry_watching(e), 0);

	/* our own subscribers: the share is queued for the bridge */
	atomic_store(&e->subscribers, 2);
	assert_int_equal(lc_source_watch_changed(&a, e), 0);
	lc_dispatch_tick(&d, 3000);
	lc_cluster_take_shares(&cl, &lines);
	assert_string_equal(lines.p, "1 0 0 0 2 w\n");
	/* the figure unchanged but the share moved (ours 2 -> 1, node 2's
	 * 0 -> 1): announced all the same */
	lines.n = 0;
	atomic_store(&e->subscribers, 1);
	assert_int_equal(lc_source_watch_changed(&a, e), 0);
	b = lc_remote_batch_new(false);
	b->sender = 2;
	b->boot = 0xb;
	lc_remote_batch_add(b, sid(2), rd(0, 0, 0), 1, "w", 1);
	atomic_store(&cl.seen_us[2], lc_mono_us());
	lc_cluster_post_remote(&cl, b);
	lc_dispatch_tick(&d, 5000);
	assert_int_equal(lc_entry_watching(e), 2);
	lc_cluster_take_shares(&cl, &lines);
	assert_string_equal(lines.p, "1 0 0 0 1 w\n");
	lc_buf_free(&lines);

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
	    cmocka_unit_test(test_two_processes_one_node_id),
	    cmocka_unit_test(test_settle),
	    cmocka_unit_test(test_message_round_trip),
	    cmocka_unit_test(test_message_malformed),
	    cmocka_unit_test(test_keys_members_scores),
	    cmocka_unit_test(test_dispatch_remote_and_own),
	    cmocka_unit_test(test_views_merge),
	    cmocka_unit_test(test_shares),
	    cmocka_unit_test(test_dispatch_shares_and_views),
	};

	lc_hash_seed_init();
	lc_parse_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
