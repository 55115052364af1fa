/*
 * livecount — the dispatcher: the tick that turns pending likes into counts
 * and counts into updates.
 *
 * Every tick (tick_ms) the dispatcher thread swaps each source's delta
 * shard for an empty one, merges the deltas into the counter table (it is
 * the table's only count writer), and then hands out:
 *   - one immutable, refcounted update set (subscribed URLs that changed,
 *     with count, delta and JSON key) to every source's mailbox, waking the
 *     source's thread;
 *   - the tick's changes (url, likes, unlikes) to the batcher.
 *
 * A "source" is anything that produces deltas and consumes updates: each
 * worker thread. In cluster mode the bridge to Redis is one more source of
 * deltas (other nodes' slot readings, merged by the rules of slots.h), and
 * the dispatcher hands it the entries whose own slot changed (cluster.h).
 */
#ifndef LC_DISPATCH_H
#define LC_DISPATCH_H

#include "lc/counter.h"
#include "lc/parse.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct lc_batcher;
struct lc_cluster;

/** One URL's change in a tick. */
struct lc_change {
	struct lc_entry *e;
	int64_t likes, unlikes; /* for the batcher (may span carried ticks) */
	int64_t views;
	int64_t tick_likes, tick_unlikes; /* this tick's part: updates */
	int64_t tick_views;
	int32_t watching; /* the watching figure published with it, or -1 */
	bool own;	  /* cluster mode: this node's own slot changed */
};

/** A tick's changes for the batcher; owned by whoever holds it. */
struct lc_change_batch {
	int64_t minute_s; /* Unix seconds of the tick's minute */
	size_t n;
	struct lc_change items[];
};

/** One subscribed URL's new stats in a tick. */
struct lc_update {
	struct lc_entry *e;
	int64_t count, delta, views;
	int64_t watching;
	const char *key; /* JSON string of the url, quotes included */
	size_t key_len;
};

/** A tick's updates: immutable once published, shared by every worker. */
struct lc_update_set {
	_Atomic int refs;
	uint64_t seq;  /* increases by one each tick */
	int64_t ts_ms; /* wall clock of the tick */
	size_t n;
	struct lc_update items[];
};

/* Fault injection for tests: the next N update-set / batcher-batch
 * allocations of a tick fail. */
extern _Atomic int lc_dispatch_fail_updates, lc_dispatch_fail_batches;

void lc_update_set_ref(struct lc_update_set *u);
void lc_update_set_unref(struct lc_update_set *u);

/**
 * Leading edge: the dispatcher arms `armed` after every tick; the first
 * source to add a like while it is armed disarms it and calls fn (wakes
 * the dispatcher), which dispatches at once when no tick with changes ran
 * in the last tick_ms, so a lone like is not held until the next tick.
 * One relaxed load per like otherwise, one wake-up per tick at most.
 */
struct lc_kick {
	_Atomic bool armed;
	/* Per-URL leading edge: a like of a URL published less than this
	 * long ago (monotonic ms) waits for the cadence; 0: always kick. */
	int64_t quiet_ms;
	void (*fn)(void *arg); /* any thread; must be cheap */
	void *arg;
	_Atomic uint64_t kicks; /* wake-ups sent */
};

/** Called after adding: wakes the dispatcher on a quiet period's first. */
static inline void
lc_kick_maybe(struct lc_kick *k)
{
	if (k && atomic_load_explicit(&k->armed, memory_order_relaxed) &&
	    atomic_exchange_explicit(&k->armed, false, memory_order_acq_rel) &&
	    k->fn) {
		atomic_fetch_add_explicit(&k->kicks, 1, memory_order_relaxed);
		k->fn(k->arg);
	}
}

/**
 * lc_kick_maybe for a like of e (NULL: a URL the table does not hold
 * yet): a URL whose update went out less than quiet_ms ago would be held
 * anyway, so it does not wake the dispatcher (a hot URL would otherwise
 * cost a run per like); the cadence takes it.
 */
static inline void
lc_kick_for(struct lc_kick *k, const struct lc_entry *e, int64_t mono_ms)
{
	if (k && e && k->quiet_ms &&
	    mono_ms - atomic_load_explicit(&e->pub_ms, memory_order_relaxed) <
		k->quiet_ms)
		return;
	lc_kick_maybe(k);
}

/** A producer of deltas and consumer of update sets (a worker). */
struct lc_source {
	struct lc_kick *kick;	  /* the dispatcher's; NULL in some tests */
	pthread_mutex_t lock;	  /* guards `active`; worker <-> dispatcher */
	struct lc_shard *active;  /* receives the source's likes */
	struct lc_shard *spare;	  /* dispatcher only: the next empty shard */
	struct lc_shard *merging; /* being merged now; under `lock` */
	struct lc_shard shards[2];

	pthread_mutex_t mbox_lock; /* guards mbox*, dispatcher <-> worker */
	struct lc_update_set **mbox;
	size_t mbox_n, mbox_cap;

	void (*wake)(void *arg); /* called after posting (lws_cancel_service) */
	void *wake_arg;
};

int lc_source_init(struct lc_source *s);
void lc_source_cleanup(struct lc_source *s);

/**
 * Adds one like (n > 0) or unlike (n < 0) to the source's shard and returns
 * the URL's count as the caller sees it: the table as of the last tick
 * plus this source's pending delta (count may be NULL: lc_dispatch_read
 * gives every source's). Source's thread only. Returns 0,
 * LC_EFULL (a URL new to the table while max_urls are held) or LC_ENOMEM;
 * nothing is added then.
 */
int lc_source_add(struct lc_source *s, struct lc_counter *c, const char *url,
		  size_t len, int64_t n, int64_t *count);

/**
 * Adds a batch of validated views (every n >= 1) all-or-nothing, taking the
 * lock once: lc_source_add_batch for the views counter.
 */
int lc_source_add_views(struct lc_source *s, struct lc_counter *c,
			const struct lc_like *items, size_t n);

/**
 * Notes that e's subscriptions on this source's worker changed (its
 * subscribers count moved): the dispatcher publishes the new watching
 * figure at most once per watching_interval_ms. Source's thread only.
 * Returns 0 or LC_ENOMEM (the figure then waits for the next change).
 */
int lc_source_watch_changed(struct lc_source *s, struct lc_entry *e);

/**
 * Adds a batch of validated likes all-or-nothing, taking the lock once.
 * Source's thread only. Returns 0, LC_EFULL (the batch holds URLs new to
 * the table and max_urls would be passed) or LC_ENOMEM; nothing is added
 * then.
 */
int lc_source_add_batch(struct lc_source *s, struct lc_counter *c,
			const struct lc_like *items, size_t n);

/**
 * This source's likes and unlikes of url not yet merged (the active
 * shard). Source's thread only.
 */
void lc_source_pending(struct lc_source *s, const char *url, size_t len,
		       int64_t *likes, int64_t *unlikes);

/**
 * Moves up to max queued update sets into out (the caller now owns one
 * reference each). Source's thread.
 */
size_t lc_source_take_updates(struct lc_source *s, struct lc_update_set **out,
			      size_t max);

/* What a top list is ordered by (GET /v1/top?by=). */
enum lc_top_by { LC_TOP_COUNT, LC_TOP_VIEWS, LC_TOP_WATCHING, LC_TOP_KINDS };

/** A published top list; take with lc_dispatch_top_get, drop with _put. */
struct lc_top {
	_Atomic int refs;
	size_t n;
	struct {
		const char *url; /* the entry's url (stable) */
		size_t url_len;
		int64_t count, views, watching;
	} items[];
};

/*
 * The tick-duration histogram, listed once: each bucket's upper bound in
 * microseconds and as the Prometheus `le` label in seconds. A last bucket,
 * +Inf, follows them.
 */
/* clang-format off */
#define LC_TICK_BUCKET_BOUNDS(X)                                               \
	X(1000, "0.001") X(2000, "0.002") X(5000, "0.005") X(10000, "0.01")   \
	X(20000, "0.02") X(50000, "0.05") X(100000, "0.1")
/* clang-format on */
#define LC_TICK_BUCKET_ONE(us, le) +1
enum { LC_TICK_BUCKETS = LC_TICK_BUCKET_BOUNDS(LC_TICK_BUCKET_ONE) + 1 };
#undef LC_TICK_BUCKET_ONE

struct lc_dispatch_stats {
	_Atomic uint64_t ticks;
	_Atomic uint64_t tick_us_total; /* sum of tick durations */
	_Atomic uint64_t tick_us_max;
	_Atomic uint64_t likes, unlikes; /* merged totals since start */
	_Atomic uint64_t views;		 /* merged views since start */
	_Atomic uint64_t urls_changed;
	_Atomic uint64_t updates; /* update-set items published */
	_Atomic uint64_t tick_us_buckets[LC_TICK_BUCKETS]; /* see above */
	_Atomic uint64_t likes_per_s;	 /* likes+unlikes merged, last ~1 s */
	_Atomic uint64_t alloc_failures; /* hand-offs retried next tick */
	/* All-time sums over the table (loaded + merged): /v1/stats. */
	_Atomic int64_t all_likes, all_unlikes, all_views;
};

struct lc_dispatch {
	struct lc_counter *counter;
	struct lc_source **sources;
	size_t nsources;
	struct lc_batcher *batcher; /* may be NULL (tests) */
	struct lc_cluster *cluster; /* NULL on a single node */
	size_t top_k;

	/* dispatcher thread only */
	uint64_t tick_no;
	struct lc_change *changes;
	size_t nchanges, changes_cap;
	/* A hand-off that failed (out of memory) keeps its changes for the
	 * next tick instead of losing them. */
	bool carry_batch, carry_updates;
	struct lc_entry **own; /* cluster: entries whose own slot changed */
	size_t own_n, own_cap;
	/*
	 * Three max-heaps (indexed: each entry knows its position in each),
	 * kept up to date with O(log n) per changed URL; each top list is
	 * read off its heap's first levels. By count: every URL ever liked
	 * or unliked; by views: every URL ever viewed; by watching: every
	 * URL watched now (it leaves at 0). So subscribe-only URLs are in
	 * none once nobody watches them, and can be reclaimed.
	 */
	struct lc_heap {
		struct lc_rank {
			struct lc_entry *e;
			int64_t v;
		} * r;
		size_t n, cap;
	} heap[LC_TOP_KINDS];
	bool top_dirty; /* republish the top lists */
	/* Entries whose watching figure changed and waits for its turn
	 * (watching_interval_ms after the last one published). */
	struct lc_entry **watch;
	size_t watch_n, watch_cap;
	int64_t watching_interval_ms;
	/*
	 * Per-URL leading edge: a URL's update goes out at once when none
	 * went out for it in the last tick_ms, else it is held (deferred) and
	 * coalesced until then. 0: every run publishes every change (tests).
	 */
	int64_t tick_ms;
	struct lc_entry **deferred;
	size_t deferred_n, deferred_cap;
	int64_t next_due_ms;   /* earliest deferred URL's turn (mono), or 0 */
	int64_t top_pub_ms;    /* top lists published at most once a tick */
	int64_t rate_since_ms; /* start of the likes_per_s window */
	uint64_t rate_base;    /* likes+unlikes at that start */

	pthread_mutex_t top_lock; /* guards `top` pointer swaps */
	struct lc_top *top[LC_TOP_KINDS];

	_Atomic uint64_t seq; /* last published tick seq */
	struct lc_dispatch_stats stats;
	struct lc_kick kick; /* leading edge; sources point here */
};

int lc_dispatch_init(struct lc_dispatch *d, struct lc_counter *c,
		     struct lc_source **sources, size_t nsources,
		     struct lc_batcher *batcher, size_t top_k);
void lc_dispatch_cleanup(struct lc_dispatch *d);

/**
 * Recomputes the all-time sums (stats.all_likes/all_unlikes) and ranks
 * every liked URL for the top list, from the table; called once after
 * loading the database, before the first tick. Dispatcher thread.
 */
void lc_dispatch_sum_table(struct lc_dispatch *d);

/**
 * Sets the function that wakes the dispatcher thread (the kick). Before
 * any source thread starts; each source's `kick` points at d->kick from
 * its creation (the server sets it before its threads run).
 */
void lc_dispatch_set_kick(struct lc_dispatch *d, void (*fn)(void *), void *arg);

/**
 * Runs one tick: swap, merge, publish. Dispatcher thread only.
 * Returns the number of URLs whose likes or views changed (watching alone
 * does not count), and arms the kick (the next
 * like wakes the dispatcher).
 */
size_t lc_dispatch_tick(struct lc_dispatch *d, int64_t now_ms);

/* Sources lc_dispatch_read looks at (workers are at most 256). */
#define LC_READ_SOURCES_MAX 272

/**
 * Read-your-writes: url's counts including every like any source added
 * before the call (the table, the shards being merged, the active
 * shards), each exactly once. Takes every source's lock for a moment.
 * Any registered reader thread (a worker).
 */
struct lc_counts lc_dispatch_read(struct lc_dispatch *d, struct lc_counter *c,
				  const char *url, size_t len);

/**
 * When the next run is due for a URL whose update was held back
 * (monotonic ms), or 0 when none is. Dispatcher thread.
 */
int64_t lc_dispatch_next_due_ms(const struct lc_dispatch *d);

/** The current top list with a reference held. Any thread. */
struct lc_top *lc_dispatch_top_get(struct lc_dispatch *d);

/** The current top list by count, views or watching. Any thread. */
struct lc_top *lc_dispatch_top_get_by(struct lc_dispatch *d, enum lc_top_by by);
void lc_dispatch_top_put(struct lc_top *t);

#endif
