/*
 * livecount — the counting core: the counter table and per-worker shards.
 *
 * The counter table maps url -> (likes, unlikes, updated_at). Entries are
 * allocated once and never move or die while the table lives, so any thread
 * may keep a pointer to one. Lookups are lock-free from any thread; inserts
 * are serialised by one mutex (the dispatcher inserts while merging, workers
 * insert when someone subscribes to a URL nobody has liked yet). Counts are
 * written only by the dispatcher, under a per-entry sequence lock, so a
 * reader always sees a consistent (likes, unlikes, updated_at) triple.
 *
 * A shard is a worker's pending deltas since the last tick: url -> (likes,
 * unlikes). It is a plain single-owner hash; lc_shard_* functions are not
 * thread-safe. The worker/dispatcher hand-off of shards lives in dispatch.c.
 */
#ifndef LC_COUNTER_H
#define LC_COUNTER_H

#include "lc/common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lc_minute;

struct lc_entry {
	uint64_t hash;
	/* Written by the dispatcher only, read by anyone via lc_entry_read. */
	_Atomic uint32_t seq; /* sequence lock: odd while being written */
	_Atomic int64_t likes;
	_Atomic int64_t unlikes;
	_Atomic int64_t views;	    /* impressions: only grows */
	_Atomic int64_t updated_ms; /* Unix ms of the last change */
	/* Live subscriptions to this URL summed over all workers: this
	 * node's "watching now". */
	_Atomic int32_t subscribers;
	/* Cluster mode: the other nodes' live shares of watching, summed
	 * (written by the dispatcher from the bridge's readings). */
	_Atomic int32_t remote_watching;
	/* Removed from the table (reclaimed, see lc_counter_reclaim): whoever
	 * still holds the pointer must look the URL up again. */
	_Atomic bool retired;
	/* JSON-encoded url with quotes, made on first need; any thread. */
	_Atomic(char *) json_key;
	/* Dispatcher thread only. */
	uint64_t tick;	      /* last tick in which this entry changed */
	uint32_t tick_idx;    /* its index in that tick's change list */
	uint32_t rank_idx[3]; /* position + 1 in each rank heap, 0 = absent */
	/* Watching: the figure last published (read by workers for
	 * snapshots), and when (watching_interval_ms apart at least); a
	 * change waiting for its turn is on the dispatcher's watch list
	 * (watch_listed). */
	_Atomic int32_t watch_sent;
	bool watch_listed;
	int64_t watch_sent_ms;
	/* Cluster mode: this node's share (subscribers) last handed to the
	 * bridge to announce (cluster.h). Dispatcher only. */
	int32_t share_sent;
	/* Per-URL leading edge (dispatch.c): when an update of it was last
	 * published (monotonic ms), and the changes held back since, to go
	 * out once tick_ms has passed. */
	_Atomic int64_t pub_ms; /* read by workers: lc_kick_for */
	uint64_t pub_tick;	/* the run that last published it */
	int64_t def_likes, def_unlikes, def_views;
	bool deferred;
	/*
	 * Cluster mode only (NULL on a single node): every node's absolute
	 * totals for this url (slots.h). Written by the dispatcher, read by
	 * the batcher and the bridge, always under the table's slots_lock.
	 */
	struct lc_slots *slots;
	/* Bridge thread only: queued to be pushed to Redis. */
	bool push_queued;
	/* insert_lock: in the counter's watch list (subscribe-inserted). */
	bool watched;
	/* Batcher thread only. */
	bool dirty;		   /* queued for the next flush */
	int64_t db_id;		   /* urls.id, 0 until written */
	struct lc_minute *minutes; /* per-minute totals not yet dropped */
	uint32_t url_len;
	char url[]; /* NUL-terminated */
};

/** A consistent reading of an entry. */
struct lc_counts {
	int64_t likes, unlikes, updated_ms, views;
};

struct lc_counter_index;

struct lc_counter {
	_Atomic(struct lc_counter_index *) index; /* current; lock-free reads */
	pthread_mutex_t insert_lock;	  /* guards inserts, growth, `size` */
	size_t size;			  /* entries in the table */
	struct lc_counter_index *retired; /* outgrown indexes, freed at end */
	/* Cluster mode: guards every entry's `slots` (and, in the dispatcher,
	 * keeps an entry's counts and slots changing together). */
	pthread_mutex_t slots_lock;

	/* Reclamation (see the note in counter.c). */
	size_t tombs; /* removed slots; insert_lock */
	struct lc_counter_index
	    *rebuilt;		 /* same-size old indexes; insert_lock */
	struct lc_entry **watch; /* inserted by a subscribe; insert_lock */
	size_t watch_n, watch_cap, watch_at;
	struct lc_reader **readers; /* set before threads start */
	size_t nreaders;
	struct lc_retired *retired_head, *retired_tail; /* dispatcher only */
	size_t untrimmed; /* entries freed since the last malloc_trim */
	_Atomic uint64_t reclaimed; /* entries freed */

	/* Distinct URLs: entries plus new URLs waiting in shards. */
	_Atomic int64_t used;
	int64_t max_urls;	  /* set before threads start; 0 = no limit */
	_Atomic uint64_t refused; /* new URLs refused: max_urls reached */
};

/**
 * Reserves room for k new URLs (any thread): 0, or LC_EFULL (nothing
 * reserved, counted in `refused`) when max_urls would be passed.
 */
static inline int
lc_counter_reserve(struct lc_counter *c, int64_t k)
{
	if (!c->max_urls) {
		atomic_fetch_add_explicit(&c->used, k, memory_order_relaxed);
		return 0;
	}
	if (atomic_fetch_add_explicit(&c->used, k, memory_order_relaxed) + k >
	    c->max_urls) {
		atomic_fetch_sub_explicit(&c->used, k, memory_order_relaxed);
		atomic_fetch_add_explicit(&c->refused, 1, memory_order_relaxed);
		return LC_EFULL;
	}
	return 0;
}

static inline void
lc_counter_unreserve(struct lc_counter *c, int64_t k)
{
	atomic_fetch_sub_explicit(&c->used, k, memory_order_relaxed);
}

/**
 * A thread that reads entries it found in the table (lc_counter_find)
 * outside the dispatcher: workers, the bridge. It marks the stretches in
 * which it may hold such a pointer; entries are freed only after every
 * reader was seen outside, or has moved on since they were removed.
 */
struct lc_reader {
	_Atomic uint64_t seq; /* odd while inside */
	uint32_t depth;	      /* the reader's own thread only */
};

static inline void
lc_reader_enter(struct lc_reader *r)
{
	if (r && !r->depth++)
		atomic_store_explicit(
		    &r->seq,
		    atomic_load_explicit(&r->seq, memory_order_relaxed) + 1,
		    memory_order_seq_cst);
}

static inline void
lc_reader_exit(struct lc_reader *r)
{
	if (r && !--r->depth)
		atomic_store_explicit(
		    &r->seq,
		    atomic_load_explicit(&r->seq, memory_order_relaxed) + 1,
		    memory_order_release);
}

/** Registers a reader (before any reader thread starts). 0 or LC_ENOMEM. */
int lc_counter_add_reader(struct lc_counter *c, struct lc_reader *r);

/**
 * Like lc_counter_find_or_insert, for a subscription: an entry it inserts
 * is watched, and freed again by lc_counter_reclaim if it is still never
 * liked once nobody subscribes to it. A caller that then counts itself in
 * e->subscribers must check e->retired afterwards and, when set, undo and
 * look up again (the dispatcher retires only entries it saw without
 * subscribers).
 */
struct lc_entry *lc_counter_find_or_insert_watched(struct lc_counter *c,
						   const char *url, size_t len,
						   uint64_t hash, int *rc);

/**
 * Dispatcher, once per tick (tick_no increasing): looks at up to `budget`
 * watched entries and removes from the table those never liked and with
 * no subscriber; frees removed entries once every reader has passed a
 * quiescent point since and two ticks went by (so no shard still holds
 * them). Returns how many entries were removed.
 */
size_t lc_counter_reclaim(struct lc_counter *c, uint64_t tick_no,
			  size_t budget);

/** Initialises an empty table. Returns 0 or LC_ENOMEM. */
int lc_counter_init(struct lc_counter *c, size_t expected);

/** Frees the table and every entry. No other thread may use it any more. */
void lc_counter_cleanup(struct lc_counter *c);

/** Finds url (len bytes, hash from lc_hash). Any thread. NULL if absent. */
struct lc_entry *lc_counter_find(struct lc_counter *c, const char *url,
				 size_t len, uint64_t hash);

/**
 * Finds url or inserts it with zero counts. Any thread (takes insert_lock).
 * Returns the stable entry, or NULL when out of memory.
 */
struct lc_entry *lc_counter_find_or_insert(struct lc_counter *c,
					   const char *url, size_t len,
					   uint64_t hash);

/** Number of entries. Any thread (approximate while inserts run). */
size_t lc_counter_size(struct lc_counter *c);

/**
 * Calls fn for every entry (in no particular order). Safe from any thread;
 * entries inserted during the walk may be missed.
 */
void lc_counter_foreach(struct lc_counter *c,
			void (*fn)(struct lc_entry *e, void *arg), void *arg);

/** Reads an entry consistently. Any thread. */
struct lc_counts lc_entry_read(const struct lc_entry *e);

/** Watching now: subscriptions to the URL on this node and the others. */
static inline int32_t
lc_entry_watching(const struct lc_entry *e)
{
	int32_t n =
	    atomic_load_explicit(&e->subscribers, memory_order_relaxed) +
	    atomic_load_explicit(&e->remote_watching, memory_order_relaxed);

	return n > 0 ? n : 0;
}

static inline int64_t
lc_entry_count(const struct lc_entry *e)
{
	struct lc_counts r = lc_entry_read(e);

	return r.likes - r.unlikes;
}

/**
 * Adds to an entry's counts and stamps updated_ms. Dispatcher thread only
 * (the single writer); also used at start-up to load the database.
 */
void lc_entry_add(struct lc_entry *e, int64_t likes, int64_t unlikes,
		  int64_t now_ms);

/**
 * lc_entry_add that also sets *mark (if not NULL) inside the same write
 * section: a reader that reads the entry and the mark with
 * lc_entry_read_marks sees both before or both after.
 */
void lc_entry_add_marked(struct lc_entry *e, int64_t likes, int64_t unlikes,
			 int64_t views, int64_t now_ms, _Atomic bool *mark);

/** Adds views (>= 0) to an entry. Dispatcher (or start-up) only. */
void lc_entry_add_views(struct lc_entry *e, int64_t views);

/**
 * Reads an entry consistently together with n marks (each may be NULL,
 * read as true); marks[i]'s value goes to seen[i]. Any thread.
 */
struct lc_counts lc_entry_read_marks(const struct lc_entry *e,
				     _Atomic bool *const *marks, bool *seen,
				     size_t n);

/**
 * The JSON string form of the entry's url ("..." with escapes), built once
 * and cached. Any thread. NULL when out of memory.
 */
const char *lc_entry_json_key(struct lc_entry *e);

/* ------------------------------------------------------------------ */

struct lc_shard_item {
	uint64_t hash;
	struct lc_entry *entry; /* table entry when known, else NULL */
	int64_t likes, unlikes; /* pending since the last tick */
	int64_t views;		/* pending views */
	bool watch_changed;	/* its subscriptions changed (watching) */
	bool reserved;		/* holds a max_urls reservation */
	/*
	 * Set by the dispatcher inside the entry's write section that adds
	 * this item's delta to the table (lc_entry_add_marked), so a reader
	 * of the shard being merged counts the delta exactly once.
	 */
	_Atomic bool merged;
	uint32_t url_off, url_len; /* url bytes in the shard's arena */
};

struct lc_shard {
	struct lc_shard_item *items; /* dense, in insertion order */
	uint32_t n, cap;
	uint32_t *slots; /* open addressing: item index + 1, 0 = empty */
	uint32_t mask;
	char *arena; /* url bytes */
	size_t arena_len, arena_cap;
	int64_t total_likes, total_unlikes, total_views; /* sums over items */
};

int lc_shard_init(struct lc_shard *s);
void lc_shard_cleanup(struct lc_shard *s);

/** Empties the shard, keeping (or shrinking) its memory. */
void lc_shard_clear(struct lc_shard *s);

/**
 * Adds a delta for url. Returns the item (valid until the next add or
 * clear) or NULL when out of memory (nothing added).
 */
struct lc_shard_item *lc_shard_add(struct lc_shard *s, const char *url,
				   size_t len, uint64_t hash, int64_t likes,
				   int64_t unlikes);

/** lc_shard_add with views (>= 0) too. */
struct lc_shard_item *lc_shard_add3(struct lc_shard *s, const char *url,
				    size_t len, uint64_t hash, int64_t likes,
				    int64_t unlikes, int64_t views);

/** Finds the item for url, or NULL. */
struct lc_shard_item *lc_shard_find(const struct lc_shard *s, const char *url,
				    size_t len, uint64_t hash);

static inline const char *
lc_shard_url(const struct lc_shard *s, const struct lc_shard_item *it)
{
	return s->arena + it->url_off;
}

#endif
