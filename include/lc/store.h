/*
 * livecount — SQLite persistence: open, migrate, load, flush, history.
 *
 * One struct lc_store is one SQLite connection; use it from one thread at a
 * time. The batcher owns the read-write connection; each worker opens its
 * own read-only one for GET /v1/history (WAL lets readers and the writer
 * proceed without waiting on each other).
 *
 * Schema (user_version 1): urls(id, url), counters(url_id, likes, unlikes,
 * updated_at in Unix ms), likes_minute(url_id, minute in Unix s, likes,
 * unlikes), views counts_v and history_v; (user_version 2, cluster mode)
 * node_slots(url_id, node, likes, unlikes) and view node_slots_v;
 * (user_version 3) idempotency_keys(key, status, body, created_at in Unix
 * ms); (user_version 4) the counts move into the urls row: urls(id, url,
 * likes, unlikes, updated_at), counters becomes a view of it;
 * (user_version 5) views in urls, likes_minute and node_slots, watching_max
 * in likes_minute, and the views updated; (user_version 6) meta(key,
 * value) with this database's instance id, node_slots(url_id, node,
 * instance, likes, unlikes, views): a slot is a node and a database
 * (slots.h). Every flush
 * writes absolute values, so running a flush twice never double-counts.
 * (scripts/check-docs.py checks this list against the migrations in
 * store.c.)
 */
#ifndef LC_STORE_H
#define LC_STORE_H

#include "lc/counter.h"
#include "lc/idem.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define LC_STORE_APP_ID 0x4c43544c /* "LCTL" in PRAGMA application_id */
#define LC_STORE_SCHEMA_VERSION 6

/** Per-minute totals of one URL, owned by the batcher thread. */
struct lc_minute {
	int64_t minute;		/* Unix seconds, a multiple of 60 */
	int64_t likes, unlikes; /* absolute totals for that minute */
	int64_t views;		/* views in that minute */
	int64_t watching_max;	/* peak watching figure seen in it */
	int64_t written_likes, written_unlikes; /* as last committed */
	int64_t written_views;
	bool dirty;		/* changed since last written */
	struct lc_minute *next; /* older minutes follow */
};

struct lc_store;

/**
 * Opens (creating if needed) the database at path for writing: takes an
 * exclusive advisory lock (a second livecount on the same file is
 * refused), refuses files that are not livecount/SQLite databases (file
 * untouched), sets pragmas, runs migrations and prepares the flush
 * statements. Returns the store or NULL with a one-line reason in err.
 */
struct lc_store *lc_store_open_writer(const char *path, char *err,
				      size_t errlen);

/**
 * Opens the database at path read-only, for lc_store_history. Returns
 * the store or NULL with a one-line reason in err.
 */
struct lc_store *lc_store_open_reader(const char *path, char *err,
				      size_t errlen);

/** lc_store_open_reader if readonly, else lc_store_open_writer. */
struct lc_store *lc_store_open(const char *path, bool readonly, char *err,
			       size_t errlen);

void lc_store_close(struct lc_store *st);

/**
 * The database's instance id: a random 32-bit id (never 0) made with the
 * database and kept in its `meta` table; it names this database's slot in
 * cluster mode (slots.h). A writer's only.
 */
uint32_t lc_store_instance(const struct lc_store *st);

/**
 * Cluster mode: the store then loads and writes every node's slots
 * (node_slots), reading an entry's counts and slots under slots_lock.
 * Call before lc_store_load. Not for read-only stores.
 */
void lc_store_set_cluster(struct lc_store *st, pthread_mutex_t *slots_lock,
			  uint32_t self);

/**
 * Loads every counter into c, and the current minute's totals (for
 * now_ms) into the entries' minute lists. Returns the number of URLs
 * loaded or a negative LC_E code.
 */
long lc_store_load(struct lc_store *st, struct lc_counter *c, int64_t now_ms);

/**
 * Writes n entries in one transaction, in three steps: url ids for the
 * URLs new to the database; per entry its absolute counters (read from the
 * entry now), node slots (cluster mode) and every dirty minute total; then
 * nkeys idempotency keys, and keys created before prune_before_ms (if
 * nonzero) deleted. On success returns 0 and the caller may mark the
 * minutes clean. On failure rolls back, forgets url ids assigned in this
 * transaction and returns LC_EIO (LC_EBUSY when the database was locked);
 * nothing is marked clean. Writer store, one thread.
 */
int lc_store_flush(struct lc_store *st, struct lc_entry *const *entries,
		   size_t n, const struct lc_idem_record *keys, size_t nkeys,
		   int64_t prune_before_ms);

/**
 * Sorts entries in the order lc_store_flush writes them: those known to
 * the database by url id, then the new ones by their text (they get their
 * ids in that order), so every table grows at its right edge. A caller
 * cutting a flush into several may order the whole first; each part is
 * then found in order and not sorted again. Any thread.
 */
void lc_store_order(struct lc_entry **entries, size_t n);

/**
 * Appends {"t":ISO,"likes":P,"unlikes":N} objects for url's minutes in
 * [since_s, until_s) to points (a JSON array). Returns 0 or LC_EIO.
 */
int lc_store_history(struct lc_store *st, const char *url, size_t len,
		     int64_t since_s, int64_t until_s, size_t max_points,
		     json_t *points);

/**
 * Reads one minute's totals (0, 0 when there is no row). Writer store,
 * batcher thread. Returns 0 or LC_EIO.
 */
int lc_store_minute_get(struct lc_store *st, int64_t url_id, int64_t minute,
			struct lc_minute *m);

/** How long a write waits for a lock held by another connection. */
void lc_store_set_busy_timeout(struct lc_store *st, int ms);

/** Loads the keys created since since_ms into t. Count or LC_E code. */
long lc_store_load_keys(struct lc_store *st, struct lc_idem *t,
			int64_t since_ms);

/** Runs a passive WAL checkpoint (when idle). */
void lc_store_checkpoint(struct lc_store *st);

/**
 * Checkpoints the whole WAL and truncates it to zero bytes, giving its
 * room back to the file system (after a failed flush). Waits for readers
 * up to the busy timeout; best effort.
 */
void lc_store_checkpoint_truncate(struct lc_store *st);

/**
 * Whether path still names the file this writer opened: NULL if so, else
 * what happened to it ("deleted or moved away", "replaced by another
 * file", "not open" after a failed lc_store_reopen). One stat(); writer.
 */
const char *lc_store_file_check(struct lc_store *st);

/**
 * Closes the writer's connection and opens the database at its path
 * again (creating it, migrations, pragmas), keeping the cluster settings:
 * for a file found deleted, moved or replaced. Every row must then be
 * written again (url ids start over). On failure returns LC_EIO with the
 * reason in err; the store stays closed (flushes fail) until a later
 * call succeeds.
 */
int lc_store_reopen(struct lc_store *st, char *err, size_t errlen);

/** The last SQLite error text of this connection. */
const char *lc_store_errmsg(struct lc_store *st);

#endif
