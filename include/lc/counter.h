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
	_Atomic int64_t updated_ms; /* Unix ms of the last change */
	/* Live subscriptions to this URL summed over all workers. */
	_Atomic int32_t subscribers;
	/* JSON-encoded url with quotes, made on first need; any thread. */
	_Atomic(char *) json_key;
	/* Dispatcher thread only. */
	uint64_t tick;	   /* last tick in which this entry changed */
	uint32_t tick_idx; /* its index in that tick's change list */
	uint32_t rank_idx; /* position + 1 in the rank heap, 0 = absent */
	/*
	 * Cluster mode only (NULL on a single node): every node's absolute
	 * totals for this url (slots.h). Written by the dispatcher, read by
	 * the batcher and the bridge, always under the table's slots_lock.
	 */
	struct lc_slots *slots;
	/* Bridge thread only: queued to be pushed to Redis. */
	bool push_queued;
	/* Batcher thread only. */
	bool dirty;		   /* queued for the next flush */
	int64_t db_id;		   /* urls.id, 0 until written */
	struct lc_minute *minutes; /* per-minute totals not yet dropped */
	uint32_t url_len;
	char url[]; /* NUL-terminated */
};

/** A consistent reading of an entry. */
struct lc_counts {
	int64_t likes, unlikes, updated_ms;
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
};

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
 * The JSON string form of the entry's url ("..." with escapes), built once
 * and cached. Any thread. NULL when out of memory.
 */
const char *lc_entry_json_key(struct lc_entry *e);

/* ------------------------------------------------------------------ */

struct lc_shard_item {
	uint64_t hash;
	struct lc_entry *entry;	   /* table entry when known, else NULL */
	int64_t likes, unlikes;	   /* pending since the last tick */
	uint32_t url_off, url_len; /* url bytes in the shard's arena */
};

struct lc_shard {
	struct lc_shard_item *items; /* dense, in insertion order */
	uint32_t n, cap;
	uint32_t *slots; /* open addressing: item index + 1, 0 = empty */
	uint32_t mask;
	char *arena; /* url bytes */
	size_t arena_len, arena_cap;
	int64_t total_likes, total_unlikes; /* sums over items */
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

/** Finds the item for url, or NULL. */
struct lc_shard_item *lc_shard_find(const struct lc_shard *s, const char *url,
				    size_t len, uint64_t hash);

static inline const char *
lc_shard_url(const struct lc_shard *s, const struct lc_shard_item *it)
{
	return s->arena + it->url_off;
}

#endif
