/*
 * core_bench: the counting core's costs that need no network, measured
 * on the real code (linked against lc_core):
 *   core_bench top [N]    a dispatch tick's top-list cost in an N-URL table
 *                         (default 1M) when a top member drops, and with
 *                         1000 changed URLs;
 *   core_bench flush [N]  one flush of N new URLs (default 1M) to a fresh
 *                         SQLite file, as the batcher writes it.
 * Numbers go to stdout; RESULTS.md quotes them (medians of A/B runs).
 */
#define _GNU_SOURCE
#include "lc/batcher.h"
#include "lc/common.h"
#include "lc/counter.h"
#include "lc/dispatch.h"
#include "lc/hash.h"
#include "lc/log.h"
#include "lc/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int
top(size_t n)
{
	struct lc_counter c;
	struct lc_source a, *srcs[1] = {&a};
	struct lc_dispatch d;
	struct lc_top *t;
	char url[64], top0[64];
	int64_t t0, cnt;

	lc_counter_init(&c, n);
	lc_source_init(&a);
	lc_dispatch_init(&d, &c, srcs, 1, NULL, 1000);
	for (size_t i = 0; i < n; i++) {
		int k =
		    snprintf(url, sizeof(url), "https://example.com/p/%zu", i);
		struct lc_entry *e = lc_counter_find_or_insert(
		    &c, url, (size_t)k, lc_hash(url, (size_t)k));

		lc_entry_add(e, rand() % 100000, 0, 0);
	}
	t0 = lc_mono_us();
	lc_dispatch_sum_table(&d);
	lc_dispatch_tick(&d, 1);
	printf("top: %zu URLs ranked in %.1f ms\n", n,
	       (double)(lc_mono_us() - t0) / 1000);
	t = lc_dispatch_top_get(&d);
	snprintf(top0, sizeof(top0), "%s", t->items[0].url);
	lc_dispatch_top_put(t);
	for (int k = 0; k < 5; k++) {
		lc_source_add(&a, &c, top0, strlen(top0), -50000, &cnt);
		t0 = lc_mono_us();
		lc_dispatch_tick(&d, 2 + k);
		printf("top: tick where a top member drops: %.3f ms\n",
		       (double)(lc_mono_us() - t0) / 1000);
		lc_source_add(&a, &c, top0, strlen(top0), 50000, &cnt);
		lc_dispatch_tick(&d, 100 + k);
	}
	for (int k = 0; k < 3; k++) {
		for (int j = 0; j < 1000; j++) {
			int m = snprintf(url, sizeof(url),
					 "https://example.com/p/%d",
					 rand() % (int)n);

			lc_source_add(&a, &c, url, (size_t)m,
				      rand() % 3 ? 1 : -1, &cnt);
		}
		t0 = lc_mono_us();
		lc_dispatch_tick(&d, 200 + k);
		printf("top: tick with 1000 changed URLs: %.3f ms\n",
		       (double)(lc_mono_us() - t0) / 1000);
	}
	return 0;
}

static double
cpu_s(const struct rusage *r)
{
	return (double)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) +
	       (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1e6;
}

static int
flush(size_t n)
{
	struct rusage r0, r1;
	char path[] = "/tmp/lc-core-bench-XXXXXX", db[64], url[128], err[256];
	struct lc_counter c;
	struct lc_store *st;
	struct lc_batcher *bt;
	struct lc_change_batch *b;
	int64_t now = lc_now_ms(), t0;
	int rc;

	if (!mkdtemp(path))
		return 1;
	snprintf(db, sizeof(db), "%s/lc.db", path);
	st = lc_store_open(db, false, err, sizeof(err));
	if (!st) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	lc_counter_init(&c, n);
	bt = lc_batcher_create(st, 1000, 1000000000);
	b = malloc(sizeof(*b) + n * sizeof(b->items[0]));
	b->minute_s = now / 60000 * 60;
	b->n = n;
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(url, sizeof(url),
				 "https://example.com/articles/%zu/%08zx",
				 i * 7919 % n, (size_t)(i * 2654435761u));
		struct lc_entry *e = lc_counter_find_or_insert(
		    &c, url, (size_t)k, lc_hash(url, (size_t)k));

		lc_entry_add(e, 3, 1, now);
		b->items[i] =
		    (struct lc_change){.e = e, .likes = 3, .unlikes = 1};
	}
	lc_batcher_push(bt, b);
	getrusage(RUSAGE_THREAD, &r0);
	t0 = lc_mono_us();
	rc = lc_batcher_flush_now(bt, n);
	getrusage(RUSAGE_THREAD, &r1);
	/* CPU time too: on a shared machine wall time mostly measures load. */
	printf("flush: %zu new URLs in %.2f s, %.2f s CPU (rc %d)\n", n,
	       (double)(lc_mono_us() - t0) / 1e6, cpu_s(&r1) - cpu_s(&r0), rc);
	lc_batcher_stop(bt, 1000, NULL, NULL);
	snprintf(url, sizeof(url), "rm -rf %s", path);
	return system(url) || rc;
}

int
main(int argc, char **argv)
{
	size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;

	lc_hash_seed_init();
	lc_log_set_level(LC_LOG_ERROR);
	if (argc > 1 && !strcmp(argv[1], "top"))
		return top(n);
	if (argc > 1 && !strcmp(argv[1], "flush"))
		return flush(n);
	fprintf(stderr, "usage: core_bench top|flush [N]\n");
	return 2;
}
