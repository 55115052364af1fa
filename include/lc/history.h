/*
 * livecount — the history reader: a thread with its own read-only SQLite
 * connection that answers GET /v1/history, so no worker's event loop ever
 * waits on the database (a locked or slow database, a long range).
 *
 * A worker parks the request (defer.h) and submits the query; the thread
 * runs it, renders the JSON answer and resumes the request with it. The
 * connection is opened on the first query and opened again after the
 * batcher reopened the database (its file was lost, batcher.c).
 *
 * Threads: lc_history_submit from the owning worker's thread;
 * create/stop/destroy from main (stop before the worker's context goes,
 * destroy after its thread ended).
 */
#ifndef LC_HISTORY_H
#define LC_HISTORY_H

#include "lc/defer.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct lc_history;

/**
 * Starts a reader thread for the database at db_path (not opened yet).
 * generation, if not NULL, is watched: when it changes, the connection is
 * opened again. NULL when out of memory or the thread cannot start.
 */
struct lc_history *lc_history_create(const char *db_path,
				     const _Atomic uint64_t *generation);

/**
 * Queues the query for url (len bytes) over minutes in [since_s, until_s),
 * at most max_points; d is resumed with the answer (200 with the points,
 * or 503). Returns 0, or LC_EFULL when too many queries wait (or the
 * reader stopped): d is then untouched and the caller answers.
 */
int lc_history_submit(struct lc_history *h, struct lc_deferred *d,
		      const char *url, size_t len, int64_t since_s,
		      int64_t until_s, size_t max_points);

/**
 * Stops the thread: queries not started are answered 503. Safe on NULL.
 * Later submits fail.
 */
void lc_history_stop(struct lc_history *h);

/** Frees a stopped reader. Safe on NULL. */
void lc_history_destroy(struct lc_history *h);

#endif
