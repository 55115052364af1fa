/*
 * livecount — the batcher: persists counts and per-minute history to
 * SQLite on its own thread, at a throttled rate.
 *
 * The dispatcher pushes each tick's changes into the batcher's inbox (a
 * mutex-guarded list the batcher takes whole and replaces with an empty
 * one), so counting never waits on disk. The batcher folds changes into its
 * dirty set (per URL: counters and per-minute totals), and every
 * flush_interval_ms writes at most max_rows_per_sec * interval URLs in one
 * transaction, oldest first. What does not fit, or what a failed flush
 * could not write, stays dirty for the next flush.
 */
#ifndef LC_BATCHER_H
#define LC_BATCHER_H

#include "lc/dispatch.h"
#include "lc/idem.h"
#include "lc/store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct lc_batcher_stats {
	_Atomic uint64_t flushes;      /* successful flush transactions */
	_Atomic uint64_t flush_errors; /* failed flush transactions */
	_Atomic uint64_t rows;	       /* URL rows written */
	_Atomic uint64_t flush_us_total;
	_Atomic uint64_t flush_us_max;
	_Atomic uint64_t dirty;	    /* URLs waiting to be written */
	_Atomic bool healthy;	    /* last flush succeeded (readyz) */
	_Atomic bool file_ok;	    /* not lost, or written again (readyz) */
	_Atomic uint64_t file_lost; /* database file found lost */
	_Atomic uint64_t db_generation; /* +1 per reopen: readers reopen */
};

struct lc_batcher;

/**
 * Starts the batcher thread; it takes ownership of st (closed at stop).
 * Returns NULL when the thread cannot start.
 */
struct lc_batcher *lc_batcher_start(struct lc_store *st, int flush_interval_ms,
				    int max_rows_per_sec);

/** Queues a tick's changes; takes ownership of b. Dispatcher thread. */
void lc_batcher_push(struct lc_batcher *bt, struct lc_change_batch *b);

/**
 * Folds the inbox and runs one flush now, without throttle, on the calling
 * thread. Only for tests with no batcher thread running (see
 * lc_batcher_create); returns the flush result.
 */
int lc_batcher_flush_now(struct lc_batcher *bt, size_t max_rows);

/** Starts the thread of a batcher made by lc_batcher_create. */
int lc_batcher_start_thread(struct lc_batcher *bt);

/** A batcher with no thread, for unit tests driving flushes by hand. */
struct lc_batcher *lc_batcher_create(struct lc_store *st, int flush_interval_ms,
				     int max_rows_per_sec);

/**
 * Stops the thread after a final, unthrottled flush of everything queued,
 * retried until timeout_ms if the database cannot be written; closes the
 * store and frees the batcher. Returns 0 when everything was written,
 * else nonzero with the acknowledged likes + unlikes that could not be
 * written in *lost_likes and their URLs in *lost_urls (either may be
 * NULL).
 */
int lc_batcher_stop(struct lc_batcher *bt, int timeout_ms, int64_t *lost_likes,
		    size_t *lost_urls);

/**
 * Persists idempotency keys (idem.h) with the flushes: a key is written in
 * the transaction that writes the last of the changes of the tick after
 * which its like was merged (tick_seq: the dispatcher's published seq),
 * or later; keys older than ttl_ms are deleted. Before the thread starts.
 */
void lc_batcher_set_idem(struct lc_batcher *bt, struct lc_idem *idem,
			 const _Atomic uint64_t *tick_seq, int64_t ttl_ms);

/**
 * The counter table, whose every URL is written again when the database
 * file is found deleted, moved or replaced (batcher.c, note on a lost
 * file). Before the thread starts.
 */
void lc_batcher_set_table(struct lc_batcher *bt, struct lc_counter *c);

/** Counters for /metrics; any thread. */
const struct lc_batcher_stats *lc_batcher_stats(struct lc_batcher *bt);

#endif
