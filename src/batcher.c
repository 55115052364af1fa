/*
 * The batcher thread: inbox -> dirty set -> throttled SQLite flushes.
 *
 * Threads: lc_batcher_push from the dispatcher; everything else on the
 * batcher's own thread (or the test's thread for lc_batcher_create'd ones).
 * The batcher is the only thread touching an entry's batcher fields
 * (dirty, db_id, minutes).
 *
 * A note on the hand-off: the dispatcher appends whole tick batches to the
 * inbox under a mutex it holds for a pointer append; the batcher swaps the
 * inbox list for an empty one and folds the batches into its dirty set
 * outside the lock. A slow disk therefore makes the inbox longer, never the
 * tick slower. The dirty set is a FIFO of entries (each queued once, via
 * its `dirty` flag) so the oldest changes are written first when the
 * throttle cuts a flush short.
 */
#define _GNU_SOURCE
#include "lc/batcher.h"
#include "lc/common.h"

#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

struct lc_batcher {
	struct lc_store *store;
	int flush_interval_ms;
	int max_rows_per_sec;
	pthread_t thread;
	bool threaded;

	pthread_mutex_t lock; /* guards inbox and stopping */
	pthread_cond_t cond;
	struct lc_change_batch **inbox;
	size_t inbox_n, inbox_cap;
	bool stopping;

	/* batcher thread only: FIFO ring of dirty entries */
	struct lc_entry **q;
	size_t q_head, q_n, q_cap;

	struct lc_batcher_stats stats;

	/* Idempotency keys: written once every tick before them is. */
	struct lc_idem *idem;
	const _Atomic uint64_t *tick_seq; /* the dispatcher's published seq */
	int64_t idem_ttl_ms, pruned_at_ms;
	struct lc_idem_record *keybuf;
	bool final;   /* stopping: every tick is done, write every key */
	size_t chunk; /* URLs per transaction now (full-disk note) */

	/* The file check (note on a lost file). */
	struct lc_counter *table; /* every count, to write them all again */
	bool file_lost;		  /* not recreated yet */
	bool rewriting;		  /* recreated; the rewrite is not done */
	bool reopen_failed;	  /* said so once */
};

#define KEYS_PER_FLUSH 256
#define CHUNK_MAX 65536 /* URLs per transaction */
#define CHUNK_MIN 64
#define CHUNK_RECOVER 1024 /* at most, until the backlog is written */

static int
queue_push(struct lc_batcher *bt, struct lc_entry *e)
{
	if (bt->q_n == bt->q_cap) {
		size_t cap = bt->q_cap ? bt->q_cap * 2 : 1024;
		struct lc_entry **q = malloc(cap * sizeof(*q));

		if (!q)
			return LC_ENOMEM;
		for (size_t i = 0; i < bt->q_n; i++)
			q[i] = bt->q[(bt->q_head + i) % bt->q_cap];
		free(bt->q);
		bt->q = q;
		bt->q_head = 0;
		bt->q_cap = cap;
	}
	bt->q[(bt->q_head + bt->q_n++) % bt->q_cap] = e;
	return 0;
}

/* Adds one change to the entry's minute totals and queues the entry. */
static void
fold_change(struct lc_batcher *bt, const struct lc_change *c, int64_t minute)
{
	struct lc_entry *e = c->e;
	struct lc_minute *m = e->minutes;

	if (m && minute < m->minute) {
		/*
		 * The wall clock stepped back: a minute comes round again.
		 * Its row only ever grows: find it in memory, or start from
		 * what the database holds for it, never from zero.
		 */
		struct lc_minute **pp = &e->minutes;

		while (*pp && (*pp)->minute > minute)
			pp = &(*pp)->next;
		if (*pp && (*pp)->minute == minute) {
			m = *pp;
		} else {
			m = calloc(1, sizeof(*m));
			if (!m) {
				lc_err("batcher: out of memory; %s misses "
				       "minute history",
				       e->url);
				goto queue;
			}
			m->minute = minute;
			if (e->db_id &&
			    lc_store_minute_get(bt->store, e->db_id, minute, m))
				lc_warn("batcher: cannot read minute %lld of "
					"%s: %s",
					(long long)minute, e->url,
					lc_store_errmsg(bt->store));
			m->written_likes = m->likes;
			m->written_unlikes = m->unlikes;
			m->written_views = m->views;
			m->next = *pp;
			*pp = m;
		}
	} else if (!m || m->minute != minute) {
		/* A new minute is the newest: it goes in front. */
		m = calloc(1, sizeof(*m));
		if (!m) {
			lc_err("batcher: out of memory; %s misses minute "
			       "history",
			       e->url);
			goto queue;
		}
		m->minute = minute;
		m->next = e->minutes;
		e->minutes = m;
	}
	m->likes = lc_sat_add(m->likes, c->likes);
	m->unlikes = lc_sat_add(m->unlikes, c->unlikes);
	m->views = lc_sat_add(m->views, c->views);
	{
		/* The minute's peak audience: the figure published with this
		 * change, or the one in force. */
		int64_t w = c->watching >= 0
				? c->watching
				: atomic_load_explicit(&e->watch_sent,
						       memory_order_relaxed);

		if (w > m->watching_max)
			m->watching_max = w;
	}
	m->dirty = true;
queue:
	if (!e->dirty) {
		if (queue_push(bt, e)) {
			lc_err("batcher: out of memory; %s not queued", e->url);
			return;
		}
		e->dirty = true;
	}
}

/* Takes the inbox whole and folds it into the dirty set. */
static void
drain_inbox(struct lc_batcher *bt)
{
	struct lc_change_batch **in;
	size_t n;

	pthread_mutex_lock(&bt->lock);
	in = bt->inbox;
	n = bt->inbox_n;
	bt->inbox = NULL;
	bt->inbox_n = bt->inbox_cap = 0;
	pthread_mutex_unlock(&bt->lock);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < in[i]->n; k++)
			fold_change(bt, &in[i]->items[k], in[i]->minute_s);
		free(in[i]);
	}
	free(in);
	atomic_store(&bt->stats.dirty, bt->q_n);
}

/* After a committed flush: minutes are clean, old ones can go. */
static void
mark_clean(struct lc_entry *e)
{
	struct lc_minute *m = e->minutes, *next;

	e->dirty = false;
	if (!m)
		return;
	m->dirty = false;
	m->written_likes = m->likes;
	m->written_unlikes = m->unlikes;
	m->written_views = m->views;
	/* Keep the newest minute: later changes in it add to its total. */
	for (next = m->next, m->next = NULL; next; next = m) {
		m = next->next;
		free(next);
	}
}

struct requeue {
	struct lc_batcher *bt;
	size_t n;
};

static void
requeue_cb(struct lc_entry *e, void *arg)
{
	struct requeue *a = arg;
	struct lc_counts c = lc_entry_read(e);

	/* Never liked nor viewed: never written (may be reclaimed). */
	if (!c.likes && !c.unlikes && !c.views && !c.updated_ms)
		return;
	e->db_id = 0;
	if (e->minutes) {
		e->minutes->dirty = true;
		e->minutes->written_likes = e->minutes->written_unlikes = 0;
		e->minutes->written_views = 0;
	}
	if (!e->dirty) {
		if (queue_push(a->bt, e)) {
			lc_err("batcher: out of memory; %s not rewritten",
			       e->url);
			return;
		}
		e->dirty = true;
	}
	a->n++;
}

/*
 * A note on a lost file: someone deleted, moved or replaced the database
 * under the running server. Writing on would go into a file nobody can
 * read again (or, replaced, let our WAL overlay another file), and a clean
 * stop would claim that everything acknowledged is on disk. So at every
 * flush and at least once a flush interval when idle, the batcher checks
 * that the path still names its file. When it does not, it says so (log,
 * livecount_db_file_lost_total, /readyz 503 until the rewrite is done),
 * opens the database at the path again (a new one if nothing is there)
 * and queues every URL of the counter table, whose counts are complete,
 * with the minutes memory still holds; flushes then write them all. If
 * the database cannot be opened, flushes fail and are retried, and a stop
 * reports the URLs it could not write.
 */
static int
check_file(struct lc_batcher *bt)
{
	const char *why = bt->file_lost ? NULL : lc_store_file_check(bt->store);
	char err[256];

	if (!why && !bt->file_lost)
		return 0;
	if (why) {
		struct requeue a = {bt, 0};

		lc_err("database: its file was %s; writing every count to a "
		       "database at the configured path again",
		       why);
		bt->file_lost = bt->rewriting = true;
		atomic_fetch_add(&bt->stats.file_lost, 1);
		atomic_store(&bt->stats.file_ok, false);
		atomic_store(&bt->stats.healthy, false);
		if (bt->table)
			lc_counter_foreach(bt->table, requeue_cb, &a);
		atomic_store(&bt->stats.dirty, bt->q_n);
		lc_info("database: %zu URLs to write again", a.n);
	}
	if (lc_store_reopen(bt->store, err, sizeof(err))) {
		if (!bt->reopen_failed)
			lc_err("%s; retrying every flush", err);
		bt->reopen_failed = true;
		return LC_EIO;
	}
	bt->file_lost = bt->reopen_failed = false;
	atomic_fetch_add(&bt->stats.db_generation, 1);
	lc_warn("database: opened %s again", "the configured path");
	return 0;
}

/*
 * One transaction: the n entries of batch, and the persistable keys when
 * `last` (the flush empties the queue). On success they are marked clean
 * (dequeue_written then takes them out of the queue).
 */
static int
flush_chunk(struct lc_batcher *bt, struct lc_entry **batch, size_t n, bool last,
	    uint64_t seq, int64_t prune)
{
	size_t nkeys = 0;
	uint64_t upto = 0;
	int64_t t0, us;
	int rc;

	if (bt->idem && bt->keybuf && last)
		nkeys = lc_idem_take_persistable(bt->idem, seq, bt->keybuf,
						 KEYS_PER_FLUSH, &upto);
	if (!n && !nkeys && !prune)
		return 0;
	t0 = lc_mono_us();
	rc = lc_store_flush(bt->store, batch, n, bt->keybuf, nkeys, prune);
	us = lc_mono_us() - t0;
	if (rc) {
		atomic_fetch_add(&bt->stats.flush_errors, 1);
		lc_warn("batcher: flush of %zu URLs failed (%s); keeping them "
			"dirty for the next attempt",
			n, lc_store_errmsg(bt->store));
		return rc;
	}
	if (nkeys)
		lc_idem_persisted(bt->idem, upto);
	for (size_t i = 0; i < n; i++)
		mark_clean(batch[i]);
	atomic_fetch_add(&bt->stats.flushes, 1);
	atomic_fetch_add(&bt->stats.rows, n);
	atomic_fetch_add(&bt->stats.flush_us_total, (uint64_t)us);
	if ((uint64_t)us > atomic_load(&bt->stats.flush_us_max))
		atomic_store(&bt->stats.flush_us_max, (uint64_t)us);
	lc_debug("batcher: flushed %zu URLs in %lld us", n, (long long)us);
	return 0;
}

/*
 * Takes the written (clean) entries out of the first n queue places,
 * keeping the others in their order at the front.
 */
static void
dequeue_written(struct lc_batcher *bt, size_t n)
{
	size_t keep = 0;

	for (size_t i = n; i-- > 0;) {
		struct lc_entry *e = bt->q[(bt->q_head + i) % bt->q_cap];

		if (e->dirty)
			bt->q[(bt->q_head + n - 1 - keep++) % bt->q_cap] = e;
	}
	if (n) {
		bt->q_head = (bt->q_head + n - keep) % bt->q_cap;
		bt->q_n -= n - keep;
	}
}

/*
 * A note on a full disk. In WAL mode a commit appends its pages to the
 * WAL, and a checkpoint copies them into the database file, which grows
 * by the pages that are new. A WAL holding more new pages than the disk
 * has room left can never be checkpointed, so it can never be reused
 * either: every later transaction needs more room, until that much is
 * freed. Hence:
 *  - a flush is cut into transactions of at most bt->chunk URLs, and
 *    every commit is followed by a checkpoint (passive: it never waits),
 *    so the WAL holds one transaction, not up to SQLite's 1000 pages;
 *  - after a failure the WAL is checkpointed and truncated, giving back
 *    the room the failed transactions took, and until the backlog is
 *    written the transactions are small (CHUNK_MIN URLs, doubling up to
 *    CHUNK_RECOVER), each followed by a truncating checkpoint.
 * So writing resumes as soon as a little room is freed, and needs about
 * the database's own size plus one small transaction.
 */
int
lc_batcher_flush_now(struct lc_batcher *bt, size_t max_rows)
{
	struct lc_entry **batch;
	uint64_t seq;
	int64_t prune = 0;
	size_t n, done = 0;
	int rc = 0;

	/*
	 * The tick seq is read before the inbox is drained: every batch of
	 * the ticks up to it is then folded, and once the queue is empty
	 * after this flush, all their changes are in the database. Keys
	 * whose likes were merged by then may be written in the same
	 * transaction (never before their counts, so a retry after a crash
	 * is never answered for a like the database lost).
	 */
	seq = bt->final	     ? UINT64_MAX
	      : bt->tick_seq ? atomic_load(bt->tick_seq)
			     : 0;
	drain_inbox(bt);
	if (check_file(bt)) {
		atomic_fetch_add(&bt->stats.flush_errors, 1);
		return LC_EIO;
	}
	n = bt->q_n < max_rows ? bt->q_n : max_rows;
	if (bt->idem &&
	    (!bt->pruned_at_ms || lc_mono_ms() - bt->pruned_at_ms > 60000)) {
		prune = lc_now_ms() - bt->idem_ttl_ms; /* a stamp: wall */
		if (prune < 0)
			prune = 0;
		bt->pruned_at_ms = lc_mono_ms();
	}
	if (!bt->chunk)
		bt->chunk = CHUNK_MAX;
	batch = malloc((n + 1) * sizeof(*batch));
	if (!batch)
		return LC_ENOMEM;
	for (size_t i = 0; i < n; i++)
		batch[i] = bt->q[(bt->q_head + i) % bt->q_cap];
	/* Chunks in write order, so the whole flush appends (store.h). */
	lc_store_order(batch, n);
	do {
		size_t k = n - done < bt->chunk ? n - done : bt->chunk;

		rc = flush_chunk(bt, batch + done, k,
				 done + k == n && n == bt->q_n, seq, prune);
		if (rc)
			break;
		prune = 0;
		done += k;
		if (bt->chunk == CHUNK_MAX) {
			lc_store_checkpoint(bt->store);
			continue;
		}
		lc_store_checkpoint_truncate(bt->store);
		if (done == n && n == bt->q_n)
			bt->chunk = CHUNK_MAX; /* the backlog is written */
		else if (bt->chunk < CHUNK_RECOVER)
			bt->chunk *= 2;
	} while (done < n);
	free(batch);
	dequeue_written(bt, n);
	if (rc) {
		if (prune)
			bt->pruned_at_ms = 0;
		bt->chunk = CHUNK_MIN;
		lc_store_checkpoint_truncate(bt->store);
	}
	if (!rc && bt->rewriting && !bt->q_n) {
		bt->rewriting = false;
		atomic_store(&bt->stats.file_ok, true);
		lc_info("database: every count is written again");
	}
	atomic_store(&bt->stats.healthy, rc == 0);
	atomic_store(&bt->stats.dirty, bt->q_n);
	return rc;
}

static void *
run(void *arg)
{
	struct lc_batcher *bt = arg;
	size_t budget = (size_t)((int64_t)bt->max_rows_per_sec *
				 bt->flush_interval_ms / 1000);
	int64_t idle_checkpoint_at = 0, last_flush = 0;
	const int64_t interval = (int64_t)bt->flush_interval_ms * 1000;

	if (!budget)
		budget = 1;
	/*
	 * Counting comes first: when the cores are busy the scheduler should
	 * give them to the workers, and the batcher takes what is left (its
	 * rows wait, dirty, never lost). Linux applies nice per thread.
	 */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10))
		lc_debug("batcher: cannot lower its priority");
	for (;;) {
		bool stopping, flush = false;

		pthread_mutex_lock(&bt->lock);
		for (;;) {
			int64_t now = lc_mono_us(), due = last_flush + interval;
			bool pending =
			    bt->inbox_n || bt->q_n ||
			    (bt->idem && lc_idem_unpersisted(bt->idem));
			struct timespec until;
			int64_t wait;

			if (bt->stopping)
				break;
			if (pending && now >= due) {
				flush = true;
				break;
			}
			/*
			 * Leading edge: with nothing pending we sleep until
			 * the dispatcher pushes (it signals), and a change
			 * after a quiet interval is written at once; changes
			 * within the interval after a flush wait for the
			 * next one. The wait is bounded so the idle
			 * checkpoint below still runs.
			 */
			wait = pending ? due - now : interval;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += (time_t)(wait / 1000000);
			until.tv_nsec += (long)(wait % 1000000) * 1000;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			if (pthread_cond_timedwait(&bt->cond, &bt->lock,
						   &until) == ETIMEDOUT &&
			    !pending)
				break; /* idle: time for the checkpoint */
		}
		stopping = bt->stopping;
		pthread_mutex_unlock(&bt->lock);
		if (stopping)
			break;
		if (flush) {
			last_flush = lc_mono_us();
			lc_batcher_flush_now(bt, budget);
		}
		/* The file check, at least once an interval (note above). */
		if (!flush && check_file(bt))
			atomic_store(&bt->stats.healthy, false);
		/* A quiet database gets its WAL folded back in. */
		if (!bt->q_n && lc_mono_us() > idle_checkpoint_at) {
			lc_store_checkpoint(bt->store);
			idle_checkpoint_at = lc_mono_us() + 10 * 1000000;
		}
	}
	return NULL;
}

struct lc_batcher *
lc_batcher_create(struct lc_store *st, int flush_interval_ms,
		  int max_rows_per_sec)
{
	struct lc_batcher *bt = calloc(1, sizeof(*bt));

	if (!bt)
		return NULL;
	bt->store = st;
	bt->flush_interval_ms = flush_interval_ms;
	bt->max_rows_per_sec = max_rows_per_sec;
	pthread_condattr_t ca;

	pthread_mutex_init(&bt->lock, NULL);
	/* Deadlines on the monotonic clock: a clock step changes nothing. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&bt->cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&bt->stats.healthy, true);
	atomic_init(&bt->stats.file_ok, true);
	return bt;
}

int
lc_batcher_start_thread(struct lc_batcher *bt)
{
	if (pthread_create(&bt->thread, NULL, run, bt))
		return LC_ENOMEM;
	bt->threaded = true;
	return 0;
}

struct lc_batcher *
lc_batcher_start(struct lc_store *st, int flush_interval_ms,
		 int max_rows_per_sec)
{
	struct lc_batcher *bt =
	    lc_batcher_create(st, flush_interval_ms, max_rows_per_sec);

	if (!bt)
		return NULL;
	if (lc_batcher_start_thread(bt)) {
		free(bt);
		return NULL;
	}
	return bt;
}

void
lc_batcher_push(struct lc_batcher *bt, struct lc_change_batch *b)
{
	pthread_mutex_lock(&bt->lock);
	if (bt->inbox_n == bt->inbox_cap) {
		size_t cap = bt->inbox_cap ? bt->inbox_cap * 2 : 16;
		void *p = realloc(bt->inbox, cap * sizeof(*bt->inbox));

		if (!p) {
			pthread_mutex_unlock(&bt->lock);
			lc_err("batcher: out of memory; %zu URLs miss this "
			       "tick's minute history",
			       b->n);
			free(b);
			return;
		}
		bt->inbox = p;
		bt->inbox_cap = cap;
	}
	bt->inbox[bt->inbox_n++] = b;
	/* Wakes an idle batcher: a change after a quiet interval is written
	 * at once (leading edge); a busy one is not waiting on the cond. */
	pthread_cond_signal(&bt->cond);
	pthread_mutex_unlock(&bt->lock);
}

/* Likes and unlikes acknowledged but not in the database (dirty minutes). */
static int64_t
unwritten(struct lc_batcher *bt)
{
	int64_t n = 0;

	for (size_t i = 0; i < bt->q_n; i++)
		for (struct lc_minute *m =
			 bt->q[(bt->q_head + i) % bt->q_cap]->minutes;
		     m; m = m->next)
			if (m->dirty)
				n = lc_sat_add(
				    n, lc_sat_add(m->likes - m->written_likes,
						  m->unlikes -
						      m->written_unlikes));
	return n;
}

int
lc_batcher_stop(struct lc_batcher *bt, int timeout_ms, int64_t *lost_likes,
		size_t *lost_urls)
{
	int64_t deadline = lc_mono_us() + (int64_t)timeout_ms * 1000;
	int rc = 0;

	if (bt->threaded) {
		pthread_mutex_lock(&bt->lock);
		bt->stopping = true;
		pthread_cond_signal(&bt->cond);
		pthread_mutex_unlock(&bt->lock);
		pthread_join(bt->thread, NULL);
	}
	bt->final = true; /* the final tick ran: every key may be written */
	/*
	 * Final flush: everything, unthrottled; wait out a busy or full
	 * database until the deadline (shutdown_timeout_ms), then give up
	 * and say how much could not be written.
	 */
	for (;;) {
		int64_t left_ms = (deadline - lc_mono_us()) / 1000;

		/* Never wait on a lock past the deadline. */
		lc_store_set_busy_timeout(bt->store, left_ms < 100 ? 100
						     : left_ms > 5000
							 ? 5000
							 : (int)left_ms);
		drain_inbox(bt);
		rc = lc_batcher_flush_now(bt, SIZE_MAX);
		if (!rc && !bt->q_n &&
		    !(bt->idem && lc_idem_unpersisted(bt->idem)))
			break;
		if (lc_mono_us() >= deadline)
			break;
		if (rc)
			nanosleep(&(struct timespec){0, 250000000}, NULL);
	}
	if (lost_likes)
		*lost_likes = bt->q_n ? unwritten(bt) : 0;
	if (lost_urls)
		*lost_urls = bt->q_n;
	if (!rc && bt->q_n)
		rc = LC_EIO;
	lc_store_close(bt->store);
	/* Entries are owned by the counter table; minutes by us. */
	while (bt->q_n) {
		bt->q[bt->q_head]->dirty = false;
		bt->q_head = (bt->q_head + 1) % bt->q_cap;
		bt->q_n--;
	}
	free(bt->q);
	free(bt->keybuf);
	pthread_mutex_destroy(&bt->lock);
	pthread_cond_destroy(&bt->cond);
	free(bt);
	return rc;
}

void
lc_batcher_set_idem(struct lc_batcher *bt, struct lc_idem *idem,
		    const _Atomic uint64_t *tick_seq, int64_t ttl_ms)
{
	bt->keybuf = malloc(KEYS_PER_FLUSH * sizeof(*bt->keybuf));
	bt->tick_seq = tick_seq;
	bt->idem_ttl_ms = ttl_ms;
	bt->pruned_at_ms = 0;
	bt->idem = idem;
}

const struct lc_batcher_stats *
lc_batcher_stats(struct lc_batcher *bt)
{
	return &bt->stats;
}

void
lc_batcher_set_table(struct lc_batcher *bt, struct lc_counter *c)
{
	bt->table = c;
}
