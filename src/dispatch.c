/*
 * The dispatch tick, the sources' shard hand-off and mailboxes, and the
 * top list.
 *
 * Threads: lc_source_add* and lc_source_take_updates run on the source's
 * (worker's) thread; lc_dispatch_tick on the dispatcher thread; the top
 * list is readable from any thread.
 *
 * A note on the shard hand-off: each source has two shards. The worker adds
 * to `active` under the source's own mutex, which only that worker and the
 * dispatcher ever take, once per request (or once per batch), for a few
 * hundred nanoseconds; the dispatcher takes it once per tick to swap
 * `active` with the empty `spare`. No lock is shared between workers, and
 * the merge itself runs outside the lock, so a worker never waits for a
 * merge. Between the swap and the end of the merge a reader may see its
 * just-swapped likes missing for a moment: at most one tick stale, never
 * lost, never counted twice.
 */
#define _GNU_SOURCE
#include "lc/dispatch.h"
#include "lc/batcher.h"
#include "lc/cluster.h"
#include "lc/common.h"
#include "lc/hash.h"
#include "lc/slots.h"

#include <stdlib.h>
#include <string.h>

_Atomic int lc_dispatch_fail_updates, lc_dispatch_fail_batches;

/* malloc, unless a test asked this kind of allocation to fail. */
static void *
tick_alloc(size_t n, _Atomic int *fail)
{
	int f = atomic_load_explicit(fail, memory_order_relaxed);

	if (f > 0 && atomic_compare_exchange_strong(fail, &f, f - 1))
		return NULL;
	return malloc(n);
}

void
lc_update_set_ref(struct lc_update_set *u)
{
	atomic_fetch_add_explicit(&u->refs, 1, memory_order_relaxed);
}

void
lc_update_set_unref(struct lc_update_set *u)
{
	if (u &&
	    atomic_fetch_sub_explicit(&u->refs, 1, memory_order_acq_rel) == 1)
		free(u);
}

int
lc_source_init(struct lc_source *s)
{
	memset(s, 0, sizeof(*s));
	if (lc_shard_init(&s->shards[0]) || lc_shard_init(&s->shards[1])) {
		lc_shard_cleanup(&s->shards[0]);
		return LC_ENOMEM;
	}
	s->active = &s->shards[0];
	s->spare = &s->shards[1];
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->mbox_lock, NULL);
	return 0;
}

void
lc_source_cleanup(struct lc_source *s)
{
	for (size_t i = 0; i < s->mbox_n; i++)
		lc_update_set_unref(s->mbox[i]);
	free(s->mbox);
	lc_shard_cleanup(&s->shards[0]);
	lc_shard_cleanup(&s->shards[1]);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->mbox_lock);
}

/*
 * The first like of a URL in this tick's shard looks the URL up once; one
 * the table does not hold yet reserves room for it (max_urls), released
 * at the merge. Later likes of it in the tick cost nothing more. Source
 * lock held. Returns 0 or LC_EFULL.
 */
static int
claim_room(struct lc_shard_item *it, struct lc_counter *c, const char *url,
	   size_t len)
{
	if (it->entry || it->reserved)
		return 0;
	it->entry = lc_counter_find(c, url, len, it->hash);
	if (it->entry)
		return 0;
	if (lc_counter_reserve(c, 1))
		return LC_EFULL;
	it->reserved = true;
	return 0;
}

int
lc_source_add(struct lc_source *s, struct lc_counter *c, const char *url,
	      size_t len, int64_t n, int64_t *count)
{
	uint64_t h = lc_hash(url, len);
	struct lc_shard_item *it;
	struct lc_entry *e;
	int64_t pending;

	pthread_mutex_lock(&s->lock);
	it =
	    lc_shard_add(s->active, url, len, h, n > 0 ? n : 0, n < 0 ? -n : 0);
	if (!it || claim_room(it, c, url, len)) {
		if (it) /* no room for a new URL: take the like back */
			lc_shard_add(s->active, url, len, h, n > 0 ? -n : 0,
				     n < 0 ? n : 0);
		pthread_mutex_unlock(&s->lock);
		return it ? LC_EFULL : LC_ENOMEM;
	}
	e = it->entry;
	pending = it->likes - it->unlikes;
	/*
	 * The table is read under the lock too: the shard holding this like
	 * cannot be swapped (and merged) between reading the pending delta
	 * and the table, which would count the like twice in the answer.
	 */
	if (count)
		*count = lc_sat_add(pending, e ? lc_entry_count(e) : 0);
	pthread_mutex_unlock(&s->lock);
	if (s->kick)
		lc_kick_for(s->kick, e, lc_mono_us() / 1000);
	return 0;
}

static int
add_batch(struct lc_source *s, struct lc_counter *c,
	  const struct lc_like *items, size_t n, bool views)
{
	int rc = LC_ENOMEM;
	bool kick = false; /* some URL of the batch is quiet */
	size_t i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < n; i++) {
		int64_t k = items[i].n;
		struct lc_shard_item *it =
		    lc_shard_add3(s->active, items[i].url, items[i].url_len,
				  lc_hash(items[i].url, items[i].url_len),
				  !views && k > 0 ? k : 0,
				  !views && k < 0 ? -k : 0, views ? k : 0);

		if (!it)
			goto undo;
		if (claim_room(it, c, items[i].url, items[i].url_len)) {
			rc = LC_EFULL;
			i++; /* this one was added: undo it */
			goto undo;
		}
		/* One quiet URL in the batch is enough to wake the run. */
		if (!kick && s->kick &&
		    (!it->entry || !s->kick->quiet_ms ||
		     lc_mono_us() / 1000 -
			     atomic_load_explicit(&it->entry->pub_ms,
						  memory_order_relaxed) >=
			 s->kick->quiet_ms)) {
			kick = true;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (kick)
		lc_kick_maybe(s->kick);
	return 0;
undo:
	/*
	 * Out of memory or of room: take back what this batch added (items
	 * exist; reservations stay with their items, released at merge).
	 */
	while (i--) {
		int64_t k = items[i].n;

		lc_shard_add3(s->active, items[i].url, items[i].url_len,
			      lc_hash(items[i].url, items[i].url_len),
			      !views && k > 0 ? -k : 0, !views && k < 0 ? k : 0,
			      views ? -k : 0);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int
lc_source_add_batch(struct lc_source *s, struct lc_counter *c,
		    const struct lc_like *items, size_t n)
{
	return add_batch(s, c, items, n, false);
}

int
lc_source_add_views(struct lc_source *s, struct lc_counter *c,
		    const struct lc_like *items, size_t n)
{
	return add_batch(s, c, items, n, true);
}

int
lc_source_watch_changed(struct lc_source *s, struct lc_entry *e)
{
	struct lc_shard_item *it;

	pthread_mutex_lock(&s->lock);
	it = lc_shard_add(s->active, e->url, e->url_len, e->hash, 0, 0);
	if (it) {
		it->watch_changed = true;
		if (!it->entry && !it->reserved)
			it->entry = e;
	}
	pthread_mutex_unlock(&s->lock);
	/* No kick: a watching figure waits for the tick's cadence anyway
	 * (and must not take a lone like's leading edge). */
	return it ? 0 : LC_ENOMEM;
}

struct lc_counts
lc_dispatch_read(struct lc_dispatch *d, struct lc_counter *c, const char *url,
		 size_t len)
{
	uint64_t h = lc_hash(url, len);
	size_t ns = d->nsources;
	_Atomic bool *marks[LC_READ_SOURCES_MAX];
	bool seen[LC_READ_SOURCES_MAX];
	int64_t ml[LC_READ_SOURCES_MAX], mu[LC_READ_SOURCES_MAX];
	int64_t mv[LC_READ_SOURCES_MAX];
	int64_t al = 0, au = 0, av = 0;
	struct lc_counts r = {0, 0, 0, 0};
	struct lc_entry *e;

	if (ns > LC_READ_SOURCES_MAX)
		ns = LC_READ_SOURCES_MAX;
	/*
	 * Every source's lock, always in the same order (no other thread
	 * holds two): what any worker acknowledged before is in an active
	 * shard, in a shard being merged, or in the table.
	 */
	for (size_t i = 0; i < ns; i++)
		pthread_mutex_lock(&d->sources[i]->lock);
	for (size_t i = 0; i < ns; i++) {
		struct lc_source *s = d->sources[i];
		struct lc_shard_item *it =
		    lc_shard_find(s->active, url, len, h);

		if (it) {
			al = lc_sat_add(al, it->likes);
			au = lc_sat_add(au, it->unlikes);
			av = lc_sat_add(av, it->views);
		}
		it = s->merging ? lc_shard_find(s->merging, url, len, h) : NULL;
		marks[i] = it ? &it->merged : NULL;
		ml[i] = it ? it->likes : 0;
		mu[i] = it ? it->unlikes : 0;
		mv[i] = it ? it->views : 0;
	}
	/*
	 * The table with the marks of the items being merged, read in one
	 * go: each item's delta counts either in the table or here. A URL
	 * not in the table yet may be inserted by the merge meanwhile: look
	 * again when a mark says so.
	 */
	for (int tries = 0;; tries++) {
		bool inserted = false;

		e = lc_counter_find(c, url, len, h);
		if (e) {
			r = lc_entry_read_marks(e, marks, seen, ns);
			break;
		}
		for (size_t i = 0; i < ns; i++) {
			seen[i] = marks[i] &&
				  atomic_load_explicit(marks[i],
						       memory_order_acquire);
			inserted |= seen[i];
		}
		if (!inserted || tries == 1000)
			break;
	}
	for (size_t i = 0; i < ns; i++)
		pthread_mutex_unlock(&d->sources[i]->lock);
	for (size_t i = 0; i < ns; i++)
		if (!seen[i]) {
			al = lc_sat_add(al, ml[i]);
			au = lc_sat_add(au, mu[i]);
			av = lc_sat_add(av, mv[i]);
		}
	r.likes = lc_sat_add(r.likes, al);
	r.unlikes = lc_sat_add(r.unlikes, au);
	r.views = lc_sat_add(r.views, av);
	return r;
}

void
lc_source_pending(struct lc_source *s, const char *url, size_t len,
		  int64_t *likes, int64_t *unlikes)
{
	struct lc_shard_item *it;

	*likes = *unlikes = 0;
	pthread_mutex_lock(&s->lock);
	it = lc_shard_find(s->active, url, len, lc_hash(url, len));
	if (it) {
		*likes = it->likes;
		*unlikes = it->unlikes;
	}
	pthread_mutex_unlock(&s->lock);
}

size_t
lc_source_take_updates(struct lc_source *s, struct lc_update_set **out,
		       size_t max)
{
	size_t n;

	pthread_mutex_lock(&s->mbox_lock);
	n = s->mbox_n < max ? s->mbox_n : max;
	if (!n) {
		pthread_mutex_unlock(&s->mbox_lock);
		return 0;
	}
	memcpy(out, s->mbox, n * sizeof(*out));
	memmove(s->mbox, s->mbox + n, (s->mbox_n - n) * sizeof(*out));
	s->mbox_n -= n;
	pthread_mutex_unlock(&s->mbox_lock);
	return n;
}

static void
source_post(struct lc_source *s, struct lc_update_set *u)
{
	bool posted = false;

	pthread_mutex_lock(&s->mbox_lock);
	if (s->mbox_n == s->mbox_cap) {
		size_t cap = s->mbox_cap ? s->mbox_cap * 2 : 8;
		void *p = realloc(s->mbox, cap * sizeof(*s->mbox));

		if (p) {
			s->mbox = p;
			s->mbox_cap = cap;
		}
	}
	if (s->mbox_n < s->mbox_cap) {
		lc_update_set_ref(u);
		s->mbox[s->mbox_n++] = u;
		posted = true;
	}
	pthread_mutex_unlock(&s->mbox_lock);
	/*
	 * Out of memory drops this set for this source only; counts are
	 * absolute, so its subscribers are correct again next tick.
	 */
	if (posted && s->wake)
		s->wake(s->wake_arg);
}

/* ------------------------------------------------------------------ */

int
lc_dispatch_init(struct lc_dispatch *d, struct lc_counter *c,
		 struct lc_source **sources, size_t nsources,
		 struct lc_batcher *batcher, size_t top_k)
{
	memset(d, 0, sizeof(*d));
	d->counter = c;
	d->sources = sources;
	d->nsources = nsources;
	d->batcher = batcher;
	d->top_k = top_k;
	d->top_dirty = true;
	for (int k = 0; k < LC_TOP_KINDS; k++) {
		d->top[k] = calloc(1, sizeof(*d->top[k]));
		if (!d->top[k])
			return LC_ENOMEM;
		atomic_init(&d->top[k]->refs, 1);
	}
	pthread_mutex_init(&d->top_lock, NULL);
	d->watching_interval_ms = 1000;
	return 0;
}

static void rank_cb(struct lc_entry *e, void *arg);

/*
 * The all-time sums saturate like the counts they add up (lc_sat_add):
 * a wrapped sum went negative, and /v1/stats' likes - unlikes then
 * overflowed. Dispatcher thread only (the single writer), so a relaxed
 * load and store is enough.
 */
static void
add_all(struct lc_dispatch *d, int64_t likes, int64_t unlikes)
{
	int64_t l =
	    atomic_load_explicit(&d->stats.all_likes, memory_order_relaxed);
	int64_t u =
	    atomic_load_explicit(&d->stats.all_unlikes, memory_order_relaxed);

	atomic_store_explicit(&d->stats.all_likes, lc_sat_add(l, likes),
			      memory_order_relaxed);
	atomic_store_explicit(&d->stats.all_unlikes, lc_sat_add(u, unlikes),
			      memory_order_relaxed);
}

static void
sum_cb(struct lc_entry *e, void *arg)
{
	struct lc_dispatch *d = arg;
	struct lc_counts r = lc_entry_read(e);

	add_all(d, r.likes, r.unlikes);
	atomic_fetch_add_explicit(&d->stats.all_views, r.views,
				  memory_order_relaxed);
}

void
lc_dispatch_sum_table(struct lc_dispatch *d)
{
	atomic_store(&d->stats.all_likes, 0);
	atomic_store(&d->stats.all_unlikes, 0);
	atomic_store(&d->stats.all_views, 0);
	lc_counter_foreach(d->counter, sum_cb, d);
	lc_counter_foreach(d->counter, rank_cb, d);
	d->top_dirty = true;
}

void
lc_dispatch_set_kick(struct lc_dispatch *d, void (*fn)(void *), void *arg)
{
	d->kick.fn = fn;
	d->kick.arg = arg;
}

void
lc_dispatch_cleanup(struct lc_dispatch *d)
{
	free(d->changes);
	free(d->watch);
	free(d->deferred);
	free(d->own);
	for (int k = 0; k < LC_TOP_KINDS; k++) {
		free(d->heap[k].r);
		lc_dispatch_top_put(d->top[k]);
	}
	pthread_mutex_destroy(&d->top_lock);
}

/* Makes room for one more change, so that note_change cannot fail. */
static int
reserve_change(struct lc_dispatch *d)
{
	if (d->nchanges == d->changes_cap) {
		size_t cap = d->changes_cap ? d->changes_cap * 2 : 1024;
		void *p = realloc(d->changes, cap * sizeof(*d->changes));

		if (!p)
			return LC_ENOMEM;
		d->changes = p;
		d->changes_cap = cap;
	}
	return 0;
}

/* Records a change of e in this tick's list, merging repeats. */
static int
note_change(struct lc_dispatch *d, struct lc_entry *e, int64_t likes,
	    int64_t unlikes, int64_t views, bool own)
{
	struct lc_change *c;

	if (e->tick == d->tick_no) {
		c = &d->changes[e->tick_idx];
		c->likes = lc_sat_add(c->likes, likes);
		c->unlikes = lc_sat_add(c->unlikes, unlikes);
		c->views = lc_sat_add(c->views, views);
		c->tick_likes = lc_sat_add(c->tick_likes, likes);
		c->tick_unlikes = lc_sat_add(c->tick_unlikes, unlikes);
		c->tick_views = lc_sat_add(c->tick_views, views);
		c->own |= own;
		return 0;
	}
	if (reserve_change(d))
		return LC_ENOMEM;
	e->tick = d->tick_no;
	e->tick_idx = (uint32_t)d->nchanges;
	c = &d->changes[d->nchanges++];
	c->e = e;
	c->likes = c->tick_likes = likes;
	c->unlikes = c->tick_unlikes = unlikes;
	c->views = c->tick_views = views;
	c->watching = -1;
	c->own = own;
	return 0;
}

/* The watching figure of e as this node publishes it. */
static int32_t
watching_of(const struct lc_entry *e)
{
	return lc_entry_watching(e);
}

/* e's subscriptions changed: list it for a watching update. */
static void
watch_note(struct lc_dispatch *d, struct lc_entry *e)
{
	if (e->watch_listed)
		return;
	if (d->watch_n == d->watch_cap) {
		size_t cap = d->watch_cap ? d->watch_cap * 2 : 256;
		void *p = realloc(d->watch, cap * sizeof(*d->watch));

		if (!p)
			return; /* the next change lists it */
		d->watch = p;
		d->watch_cap = cap;
	}
	d->watch[d->watch_n++] = e;
	e->watch_listed = true;
}

/*
 * Publishes the watching figure of each listed entry whose turn came (at
 * most once per watching_interval_ms), riding this tick's changes; the
 * others stay listed. A connect storm thus costs each subscriber one
 * frame per interval, not one per connect.
 */
static void
watch_publish(struct lc_dispatch *d, int64_t now_ms)
{
	size_t keep = 0;

	for (size_t i = 0; i < d->watch_n; i++) {
		struct lc_entry *e = d->watch[i];
		int32_t w = watching_of(e);
		/* Cluster mode: this node's own share, announced to the
		 * others (cluster.h) on the same throttle as the figure. */
		int32_t share =
		    atomic_load_explicit(&e->subscribers, memory_order_relaxed);
		bool share_due;

		share = share > 0 ? share : 0;
		share_due = d->cluster && share != e->share_sent;
		if (w == atomic_load_explicit(&e->watch_sent,
					      memory_order_relaxed) &&
		    !share_due) {
			e->watch_listed = false; /* back where it was */
			continue;
		}
		if (e->watch_sent_ms &&
		    now_ms - e->watch_sent_ms < d->watching_interval_ms) {
			d->watch[keep++] = e;
			continue;
		}
		if (share_due) {
			lc_cluster_post_share(d->cluster, e->url, e->url_len,
					      share);
			e->share_sent = share;
		}
		if (w == atomic_load_explicit(&e->watch_sent,
					      memory_order_relaxed)) {
			e->watch_sent_ms = now_ms;
			e->watch_listed = false;
			continue;
		}
		if (e->tick != d->tick_no &&
		    note_change(d, e, 0, 0, 0, false)) {
			d->watch[keep++] = e; /* out of memory: next tick */
			continue;
		}
		d->changes[e->tick_idx].watching = w;
		atomic_store_explicit(&e->watch_sent, w, memory_order_relaxed);
		e->watch_sent_ms = now_ms;
		e->watch_listed = false;
	}
	d->watch_n = keep;
}

/* Merges one swapped-out shard into the table. */
static void
merge_shard(struct lc_dispatch *d, struct lc_source *src, struct lc_shard *sh,
	    int64_t now_ms)
{
	for (uint32_t i = 0; i < sh->n; i++) {
		struct lc_shard_item *it = &sh->items[i];
		struct lc_entry *e = it->entry;

		if (it->reserved) {
			/* Inserted below (counted there) or found: either way
			 * the reservation has served. */
			lc_counter_unreserve(d->counter, 1);
			it->reserved = false;
		}
		/* Found before it was reclaimed: look it up again. */
		if (e &&
		    atomic_load_explicit(&e->retired, memory_order_relaxed))
			e = NULL;
		if (it->watch_changed && e)
			watch_note(d, e);
		if (!it->likes && !it->unlikes && !it->views)
			continue;
		if (!e)
			e = lc_counter_find_or_insert(d->counter,
						      lc_shard_url(sh, it),
						      it->url_len, it->hash);
		/*
		 * Out of memory while inserting a new URL: there is no entry
		 * to hold the likes, so give them back to the source's active
		 * shard and try again next tick.
		 */
		/*
		 * In cluster mode the likes also go to this node's own slot;
		 * the slot is made first so that nothing after
		 * note_change can fail.
		 */
		if (e && d->cluster) {
			int rc;

			pthread_mutex_lock(&d->counter->slots_lock);
			rc = lc_slots_add_own(e, d->cluster->own, 0, 0, 0);
			pthread_mutex_unlock(&d->counter->slots_lock);
			if (rc)
				e = NULL;
		}
		if (!e || note_change(d, e, it->likes, it->unlikes, it->views,
				      d->cluster != NULL)) {
			bool kept;

			pthread_mutex_lock(&src->lock);
			kept = lc_shard_add3(src->active, lc_shard_url(sh, it),
					     it->url_len, it->hash, it->likes,
					     it->unlikes, it->views) != NULL;
			/* In the active shard now (or lost): not pending here.
			 */
			atomic_store_explicit(&it->merged, true,
					      memory_order_relaxed);
			pthread_mutex_unlock(&src->lock);
			lc_err("dispatch: out of memory merging %s (%s)",
			       lc_shard_url(sh, it),
			       kept ? "retried next tick" : "LOST");
			continue;
		}
		if (d->cluster) {
			pthread_mutex_lock(&d->counter->slots_lock);
			lc_slots_add_own_marked(e, d->cluster->own, it->likes,
						it->unlikes, it->views, now_ms,
						&it->merged);
			pthread_mutex_unlock(&d->counter->slots_lock);
		} else
			lc_entry_add_marked(e, it->likes, it->unlikes,
					    it->views, now_ms, &it->merged);
		atomic_fetch_add_explicit(&d->stats.views, (uint64_t)it->views,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&d->stats.all_views, it->views,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&d->stats.likes, (uint64_t)it->likes,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&d->stats.unlikes,
					  (uint64_t)it->unlikes,
					  memory_order_relaxed);
		add_all(d, it->likes, it->unlikes);
	}
}

struct drop_shares {
	struct lc_dispatch *d;
	uint32_t node; /* 0: every node */
};

static void
drop_shares_cb(struct lc_entry *e, void *arg)
{
	struct drop_shares *ds = arg;
	int32_t dw;

	if (!e->slots)
		return;
	pthread_mutex_lock(&ds->d->counter->slots_lock);
	dw = lc_shares_drop(ds->d->cluster, e, ds->node);
	pthread_mutex_unlock(&ds->d->counter->slots_lock);
	if (dw)
		watch_note(ds->d, e);
}

/* Withdraws every share of node: a walk of the table, when it has any. */
static void
drop_node_shares(struct lc_dispatch *d, uint32_t node)
{
	struct drop_shares ds = {d, node};

	if (d->cluster->shares[node].urls)
		lc_counter_foreach(d->counter, drop_shares_cb, &ds);
}

/*
 * The watchers of nodes that stopped (bye), went silent (no heartbeat for
 * LC_SHARE_TIMEOUT_MS: dead or cut off) or restarted (another boot) stop
 * counting here.
 */
static void
expire_shares(struct lc_dispatch *d)
{
	uint32_t gone[LC_CLUSTER_NODES];
	size_t n = lc_shares_expired(d->cluster, lc_mono_us(), gone);

	for (size_t i = 0; i < n; i++)
		drop_node_shares(d, gone[i]);
}

/* One share line of a message: node's live watchers of e. */
static void
merge_share(struct lc_dispatch *d, const struct lc_remote_item *it,
	    const char *url)
{
	struct lc_cluster *cl = d->cluster;
	struct lc_entry *e;
	int32_t dw;
	int rc;

	e = lc_counter_find(d->counter, url, it->url_len,
			    lc_hash(url, it->url_len));
	if (!e && !it->watching)
		return;
	if (!e) {
		/* Watched elsewhere only: freed again when nobody watches. */
		e = lc_counter_find_or_insert_watched(
		    d->counter, url, it->url_len, lc_hash(url, it->url_len),
		    &rc);
		if (!e) {
			atomic_store(&cl->announce_all, true);
			return;
		}
	}
	pthread_mutex_lock(&d->counter->slots_lock);
	dw = lc_shares_set(cl, e, it->id.node, it->watching, &rc);
	pthread_mutex_unlock(&d->counter->slots_lock);
	if (dw)
		watch_note(d, e);
}

/*
 * Merges the slot readings the bridge received from other nodes (and,
 * once after start, from our own earlier runs). A reading that changes
 * nothing costs a lookup; one that cannot be merged (out of memory) is
 * dropped and a resync asked for, which reads it again. Share lines set
 * the sender's watchers of a URL; a " full" or " hello" message first
 * withdraws every share of its sender (it lists them all).
 */
static void
merge_remote(struct lc_dispatch *d, int64_t now_ms)
{
	struct lc_cluster *cl = d->cluster;
	struct lc_remote_batch *b = lc_cluster_take_remote(cl), *next;
	uint64_t items = 0;

	for (; b; b = next) {
		next = b->next;
		if (b->sender &&
		    (lc_shares_boot(cl, b->sender, b->boot) || b->reset))
			drop_node_shares(d, b->sender);
		for (size_t i = 0; i < b->n; i++) {
			const struct lc_remote_item *it = &b->items[i];
			const char *url = b->urls.p + it->url_off;
			struct lc_entry *e;
			struct lc_reading dr;
			int rc;

			items++;
			if (it->watching >= 0 && b->sender &&
			    it->id.node == b->sender)
				merge_share(d, it, url);
			if (!it->r.likes && !it->r.unlikes && !it->r.views)
				continue; /* a share line: no totals */
			e = lc_counter_find_or_insert(
			    d->counter, url, it->url_len,
			    lc_hash(url, it->url_len));
			if (!e || reserve_change(d)) {
				atomic_fetch_add(&cl->stats.merge_errors, 1);
				atomic_store(&cl->resync_wanted, true);
				continue;
			}
			pthread_mutex_lock(&d->counter->slots_lock);
			rc = lc_slots_merge(e, cl->own, it->id, it->r, b->adopt,
					    now_ms, &dr);
			pthread_mutex_unlock(&d->counter->slots_lock);
			if (rc) {
				atomic_fetch_add(&cl->stats.merge_errors, 1);
				atomic_store(&cl->resync_wanted, true);
				continue;
			}
			if (!dr.likes && !dr.unlikes && !dr.views)
				continue;
			note_change(d, e, dr.likes, dr.unlikes, dr.views,
				    lc_slot_id_eq(it->id, cl->own));
			atomic_fetch_add_explicit(&d->stats.likes,
						  (uint64_t)dr.likes,
						  memory_order_relaxed);
			atomic_fetch_add_explicit(&d->stats.unlikes,
						  (uint64_t)dr.unlikes,
						  memory_order_relaxed);
			atomic_fetch_add_explicit(&d->stats.views,
						  (uint64_t)dr.views,
						  memory_order_relaxed);
			atomic_fetch_add_explicit(&d->stats.all_views, dr.views,
						  memory_order_relaxed);
			add_all(d, dr.likes, dr.unlikes);
			if (lc_slot_id_eq(it->id, cl->own)) {
				atomic_fetch_add(
				    &cl->stats.adopted_likes,
				    (uint64_t)(dr.likes + dr.unlikes));
			} else {
				atomic_fetch_add(&cl->stats.remote_likes,
						 (uint64_t)dr.likes);
				atomic_fetch_add(&cl->stats.remote_unlikes,
						 (uint64_t)dr.unlikes);
				atomic_fetch_add(&cl->stats.remote_views,
						 (uint64_t)dr.views);
			}
		}
		lc_remote_batch_free(b);
	}
	if (items)
		atomic_fetch_add(&cl->stats.remote_items, items);
}

/*
 * Hands the entries whose own slot changed to the bridge. If that fails
 * (out of memory) they are kept and offered again next tick: the bridge
 * reads the slot itself, so a late hand-off still pushes the latest value.
 */
static void
hand_to_bridge(struct lc_dispatch *d)
{
	for (size_t i = 0; i < d->nchanges; i++) {
		if (!d->changes[i].own)
			continue;
		if (d->own_n == d->own_cap) {
			size_t cap = d->own_cap ? d->own_cap * 2 : 1024;
			void *p = realloc(d->own, cap * sizeof(*d->own));

			if (!p)
				break; /* the rest are pushed at the resync */
			d->own = p;
			d->own_cap = cap;
		}
		d->own[d->own_n++] = d->changes[i].e;
	}
	if (d->own_n && !lc_cluster_post_own(d->cluster, d->own, d->own_n))
		d->own_n = 0;
}

/*
 * A note on the top list: the rank heap holds every liked URL ordered by
 * count, and is updated for just the URLs that changed in a tick (a sift
 * up or down each: O(changed * log n), whatever the table's size). The
 * top k are then the k best of the heap, found by a best-first walk from
 * the root over a small frontier heap (O(k log k)), and published as an
 * immutable, refcounted list for readers.
 */
static void
rank_set(struct lc_heap *h, int k, size_t i, struct lc_rank r)
{
	h->r[i] = r;
	r.e->rank_idx[k] = (uint32_t)(i + 1);
}

static void
rank_sift_up(struct lc_heap *h, int k, size_t i)
{
	struct lc_rank r = h->r[i];

	while (i && h->r[(i - 1) / 2].v < r.v) {
		rank_set(h, k, i, h->r[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	rank_set(h, k, i, r);
}

static void
rank_sift_down(struct lc_heap *h, int k, size_t i)
{
	struct lc_rank r = h->r[i];

	for (;;) {
		size_t l = 2 * i + 1, m = l;

		if (l >= h->n)
			break;
		if (l + 1 < h->n && h->r[l + 1].v > h->r[l].v)
			m = l + 1;
		if (h->r[m].v <= r.v)
			break;
		rank_set(h, k, i, h->r[m]);
		i = m;
	}
	rank_set(h, k, i, r);
}

/* Puts e in heap k at value v, moves it there, or (out) takes it out. */
static int
rank_put(struct lc_heap *h, int k, struct lc_entry *e, int64_t v, bool out)
{
	size_t i;

	if (!e->rank_idx[k]) {
		if (out)
			return 0;
		if (h->n == h->cap) {
			size_t cap = h->cap ? h->cap * 2 : 1024;
			void *p = realloc(h->r, cap * sizeof(*h->r));

			if (!p)
				return LC_ENOMEM;
			h->r = p;
			h->cap = cap;
		}
		rank_set(h, k, h->n++, (struct lc_rank){e, v});
		rank_sift_up(h, k, h->n - 1);
		return 0;
	}
	i = e->rank_idx[k] - 1;
	if (out) {
		e->rank_idx[k] = 0;
		if (i == --h->n)
			return 0;
		rank_set(h, k, i, h->r[h->n]);
		v = h->r[i].v;
	} else if (v == h->r[i].v)
		return 0;
	h->r[i].v = v;
	if (i && h->r[(i - 1) / 2].v < v)
		rank_sift_up(h, k, i);
	else
		rank_sift_down(h, k, i);
	return 0;
}

/* Puts e in its places in the three heaps. */
static int
rank_update(struct lc_dispatch *d, struct lc_entry *e)
{
	struct lc_counts c = lc_entry_read(e);
	int32_t w = atomic_load_explicit(&e->watch_sent, memory_order_relaxed);
	int rc = 0;

	/* Never liked: not in the count ranking; never viewed: not in the
	 * views one; watched by nobody now: not in the watching one. */
	if (c.likes || c.unlikes)
		rc |= rank_put(&d->heap[LC_TOP_COUNT], LC_TOP_COUNT, e,
			       c.likes - c.unlikes, false);
	if (c.views)
		rc |= rank_put(&d->heap[LC_TOP_VIEWS], LC_TOP_VIEWS, e, c.views,
			       false);
	rc |=
	    rank_put(&d->heap[LC_TOP_WATCHING], LC_TOP_WATCHING, e, w, w <= 0);
	return rc;
}

static void
rank_cb(struct lc_entry *e, void *arg)
{
	struct lc_dispatch *d = arg;

	if (rank_update(d, e))
		d->top_dirty = true; /* retried at the next full pass */
}

static int
cmp_top(const void *a, const void *b)
{
	const struct lc_rank *x = a, *y = b;

	if (x->v != y->v)
		return x->v > y->v ? -1 : 1;
	return strcmp(x->e->url, y->e->url);
}

/* The k best of a heap: best-first from the root. */
static size_t
rank_best(const struct lc_heap *h, struct lc_rank *out, size_t k,
	  uint32_t *frontier)
{
	size_t n = 0, fn = 0;

	if (h->n)
		frontier[fn++] = 0;
	while (n < k && fn) {
		/* frontier is a small max-heap of rank indexes */
		uint32_t top = frontier[0];

		out[n++] = h->r[top];
		frontier[0] = frontier[--fn];
		for (size_t i = 0;;) {
			size_t l = 2 * i + 1, m = i;

			if (l < fn && h->r[frontier[l]].v > h->r[frontier[m]].v)
				m = l;
			if (l + 1 < fn &&
			    h->r[frontier[l + 1]].v > h->r[frontier[m]].v)
				m = l + 1;
			if (m == i)
				break;
			uint32_t t = frontier[i];

			frontier[i] = frontier[m];
			frontier[m] = t;
			i = m;
		}
		for (uint32_t c = 2 * top + 1; c <= 2 * top + 2; c++) {
			size_t i;

			if (c >= h->n)
				break;
			i = fn++;
			frontier[i] = c;
			while (i && h->r[frontier[(i - 1) / 2]].v <
					h->r[frontier[i]].v) {
				uint32_t t = frontier[i];

				frontier[i] = frontier[(i - 1) / 2];
				frontier[(i - 1) / 2] = t;
				i = (i - 1) / 2;
			}
		}
	}
	return n;
}

/* Publishes heap k's top list. */
static int
publish_top(struct lc_dispatch *d, int k, struct lc_rank *best,
	    uint32_t *frontier)
{
	size_t n = rank_best(&d->heap[k], best, d->top_k, frontier);
	struct lc_top *t, *old;

	qsort(best, n, sizeof(*best), cmp_top);
	t = malloc(sizeof(*t) + n * sizeof(t->items[0]));
	if (!t)
		return LC_ENOMEM;
	atomic_init(&t->refs, 1);
	t->n = n;
	for (size_t i = 0; i < n; i++) {
		struct lc_entry *e = best[i].e;
		struct lc_counts c = lc_entry_read(e);

		t->items[i].url = e->url;
		t->items[i].url_len = e->url_len;
		t->items[i].count = c.likes - c.unlikes;
		t->items[i].views = c.views;
		t->items[i].watching =
		    atomic_load_explicit(&e->watch_sent, memory_order_relaxed);
	}
	pthread_mutex_lock(&d->top_lock);
	old = d->top[k];
	d->top[k] = t;
	pthread_mutex_unlock(&d->top_lock);
	lc_dispatch_top_put(old);
	return 0;
}

static void
update_top(struct lc_dispatch *d)
{
	struct lc_rank *best;
	uint32_t *frontier;
	bool failed = false;

	if (!d->top_k)
		return;
	for (size_t i = 0; i < d->nchanges; i++)
		if (rank_update(d, d->changes[i].e))
			d->top_dirty = true;
	if (!d->nchanges && !d->top_dirty)
		return;
	/* Runs may come every millisecond: the lists are republished at
	 * most once a tick (the ranks above are always current). */
	{
		int64_t mono_ms = lc_mono_us() / 1000;

		if (d->tick_ms && mono_ms - d->top_pub_ms < d->tick_ms) {
			int64_t due = d->top_pub_ms + d->tick_ms;

			/* A run then republishes them: at most a tick late. */
			d->top_dirty = true;
			if (!d->next_due_ms || due < d->next_due_ms)
				d->next_due_ms = due;
			return;
		}
		d->top_pub_ms = mono_ms;
	}
	best = malloc(d->top_k * sizeof(*best));
	frontier = malloc((2 * d->top_k + 2) * sizeof(*frontier));
	for (int k = 0; best && frontier && k < LC_TOP_KINDS; k++)
		failed |= publish_top(d, k, best, frontier) != 0;
	if (best && frontier && !failed)
		d->top_dirty = false;
	free(best);
	free(frontier);
}

struct lc_top *
lc_dispatch_top_get(struct lc_dispatch *d)
{
	return lc_dispatch_top_get_by(d, LC_TOP_COUNT);
}

struct lc_top *
lc_dispatch_top_get_by(struct lc_dispatch *d, enum lc_top_by by)
{
	struct lc_top *t;

	pthread_mutex_lock(&d->top_lock);
	t = d->top[by];
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&d->top_lock);
	return t;
}

void
lc_dispatch_top_put(struct lc_top *t)
{
	if (t &&
	    atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
		free(t);
}

/*
 * A note on the per-URL leading edge: a run of the dispatcher may come
 * every millisecond (each first like after a run wakes it), so that a
 * change to a quiet URL goes out at once even while other URLs are busy.
 * What a run may publish is decided per URL: a URL with no update in the
 * last tick_ms goes out now; one updated more recently is held (its deltas
 * summed in the entry) until its tick_ms has passed, so a hot URL still
 * costs each subscriber at most one frame per tick. Counts in the table,
 * the batcher and the cluster get every run's changes at once.
 */
static void
defer(struct lc_dispatch *d, struct lc_change *c)
{
	struct lc_entry *e = c->e;

	if (!e->deferred) {
		if (d->deferred_n == d->deferred_cap) {
			size_t cap =
			    d->deferred_cap ? d->deferred_cap * 2 : 256;
			void *p =
			    realloc(d->deferred, cap * sizeof(*d->deferred));

			if (!p)
				return; /* out of memory: it goes out now */
			d->deferred = p;
			d->deferred_cap = cap;
		}
		d->deferred[d->deferred_n++] = e;
		e->deferred = true;
		e->def_likes = e->def_unlikes = e->def_views = 0;
	}
	e->def_likes = lc_sat_add(e->def_likes, c->tick_likes);
	e->def_unlikes = lc_sat_add(e->def_unlikes, c->tick_unlikes);
	e->def_views = lc_sat_add(e->def_views, c->tick_views);
	c->tick_likes = c->tick_unlikes = c->tick_views = 0;
}

/* Decides, per changed URL, what this run publishes (see the note). */
static void
throttle_updates(struct lc_dispatch *d, int64_t mono_ms)
{
	size_t keep = 0;

	d->next_due_ms = 0;
	if (!d->tick_ms)
		return;
	/* Held URLs whose turn came go out with this run's changes. */
	for (size_t i = 0; i < d->deferred_n; i++) {
		struct lc_entry *e = d->deferred[i];
		struct lc_change *c;

		int64_t pub =
		    atomic_load_explicit(&e->pub_ms, memory_order_relaxed);

		if (mono_ms - pub < d->tick_ms) {
			d->deferred[keep++] = e;
			if (!d->next_due_ms ||
			    pub + d->tick_ms < d->next_due_ms)
				d->next_due_ms = pub + d->tick_ms;
			continue;
		}
		if (e->tick != d->tick_no &&
		    note_change(d, e, 0, 0, 0, false)) {
			d->deferred[keep++] = e; /* out of memory: next run */
			continue;
		}
		c = &d->changes[e->tick_idx];
		c->tick_likes = lc_sat_add(c->tick_likes, e->def_likes);
		c->tick_unlikes = lc_sat_add(c->tick_unlikes, e->def_unlikes);
		c->tick_views = lc_sat_add(c->tick_views, e->def_views);
		e->deferred = false;
		atomic_store_explicit(&e->pub_ms, mono_ms,
				      memory_order_relaxed);
		e->pub_tick = d->tick_no;
	}
	d->deferred_n = keep;
	/* This run's changes: at once for a quiet URL, else held. */
	for (size_t i = 0; i < d->nchanges; i++) {
		struct lc_change *c = &d->changes[i];
		struct lc_entry *e = c->e;

		/* A watching figure alone has its own throttle
		 * (watching_interval_ms) and must not delay a count. */
		if (!c->tick_likes && !c->tick_unlikes && !c->tick_views)
			continue;
		if (e->pub_tick == d->tick_no)
			continue; /* released above: goes out now */
		int64_t pub =
		    atomic_load_explicit(&e->pub_ms, memory_order_relaxed);

		if (e->deferred || mono_ms - pub < d->tick_ms) {
			defer(d, c);
			if (!d->next_due_ms ||
			    pub + d->tick_ms < d->next_due_ms)
				d->next_due_ms = pub + d->tick_ms;
			continue;
		}
		atomic_store_explicit(&e->pub_ms, mono_ms,
				      memory_order_relaxed);
		e->pub_tick = d->tick_no;
	}
}

int64_t
lc_dispatch_next_due_ms(const struct lc_dispatch *d)
{
	return d->next_due_ms;
}

/* Whether a change goes to subscribers: one of the figures moved and
 * someone on this node watches the URL. */
static bool
change_shows(const struct lc_change *c)
{
	return (c->tick_likes || c->tick_unlikes || c->tick_views ||
		c->watching >= 0) &&
	       atomic_load_explicit(&c->e->subscribers, memory_order_relaxed) >
		   0;
}

static void
publish_updates(struct lc_dispatch *d, uint64_t seq, int64_t now_ms)
{
	struct lc_update_set *u;
	size_t n = 0;

	d->carry_updates = false;
	for (size_t i = 0; i < d->nchanges; i++)
		if (change_shows(&d->changes[i]))
			n++;
	if (!n)
		return;
	u = tick_alloc(sizeof(*u) + n * sizeof(u->items[0]),
		       &lc_dispatch_fail_updates);
	if (!u) {
		/* Kept: the next tick publishes these changes with its own. */
		lc_err("dispatch: out of memory; tick %llu's updates go out "
		       "with the next tick",
		       (unsigned long long)seq);
		atomic_fetch_add(&d->stats.alloc_failures, 1);
		d->carry_updates = true;
		return;
	}
	atomic_init(&u->refs, 1);
	u->seq = seq;
	u->ts_ms = now_ms;
	u->n = 0;
	for (size_t i = 0; i < d->nchanges; i++) {
		struct lc_change *c = &d->changes[i];
		struct lc_update *it;
		const char *key;

		struct lc_counts k;

		if (!change_shows(c) || !(key = lc_entry_json_key(c->e)))
			continue;
		k = lc_entry_read(c->e);
		it = &u->items[u->n++];
		it->e = c->e;
		it->count = k.likes - k.unlikes;
		it->delta = c->tick_likes - c->tick_unlikes;
		it->views = k.views;
		it->watching = atomic_load_explicit(&c->e->watch_sent,
						    memory_order_relaxed);
		it->key = key;
		it->key_len = strlen(key);
	}
	atomic_fetch_add_explicit(&d->stats.updates, u->n,
				  memory_order_relaxed);
	for (size_t i = 0; i < d->nsources; i++)
		source_post(d->sources[i], u);
	lc_update_set_unref(u);
}

/* Whether the batcher takes a change (see hand_to_batcher). */
static bool
batcher_wants(const struct lc_change *c)
{
	struct lc_counts k;

	if (c->likes || c->unlikes || c->views)
		return true;
	k = lc_entry_read(c->e);
	return k.likes || k.unlikes || k.views;
}

static void
hand_to_batcher(struct lc_dispatch *d, int64_t now_ms)
{
	struct lc_change_batch *b;

	d->carry_batch = false;
	if (!d->batcher || !d->nchanges)
		return;
	b = tick_alloc(sizeof(*b) + d->nchanges * sizeof(b->items[0]),
		       &lc_dispatch_fail_batches);
	if (!b) {
		/*
		 * Kept: the next tick hands these changes to the batcher
		 * with its own (the database would otherwise never hear of
		 * them). Their minute is then the next tick's.
		 */
		lc_err("dispatch: out of memory; %zu URLs' changes go to the "
		       "batcher with the next tick",
		       d->nchanges);
		atomic_fetch_add(&d->stats.alloc_failures, 1);
		d->carry_batch = true;
		return;
	}
	b->minute_s = now_ms / 60000 * 60;
	b->n = 0;
	/*
	 * A watching-only change of a URL never liked nor viewed stays here:
	 * such an entry is reclaimed once nobody watches it, and has no row
	 * for the batcher to write.
	 */
	for (size_t i = 0; i < d->nchanges; i++)
		if (batcher_wants(&d->changes[i]))
			b->items[b->n++] = d->changes[i];
	if (!b->n) {
		free(b);
		return;
	}
	lc_batcher_push(d->batcher, b);
}

size_t
lc_dispatch_tick(struct lc_dispatch *d, int64_t now_ms)
{
	int64_t t0 = lc_mono_us(), us;
#define BOUND_US(us, le) us,
	static const uint64_t bounds_us[] = {LC_TICK_BUCKET_BOUNDS(BOUND_US)};
#undef BOUND_US
	size_t b = 0;
	uint64_t seq;

	d->tick_no++;
	if (!d->carry_batch && !d->carry_updates) {
		d->nchanges = 0;
	} else {
		/* A hand-off failed last tick: keep its changes, re-stamped
		 * so this tick's add to them; each consumer gets what it
		 * missed once. */
		for (size_t i = 0; i < d->nchanges; i++) {
			struct lc_change *c = &d->changes[i];

			c->e->tick = d->tick_no;
			c->e->tick_idx = (uint32_t)i;
			if (!d->carry_updates) {
				c->tick_likes = c->tick_unlikes = 0;
				c->tick_views = 0;
				c->watching = -1;
			}
			if (!d->carry_batch)
				c->likes = c->unlikes = c->views = 0;
		}
	}
	for (size_t i = 0; i < d->nsources; i++) {
		struct lc_source *s = d->sources[i];
		struct lc_shard *full;

		pthread_mutex_lock(&s->lock);
		full = s->active;
		s->active = s->spare;
		s->merging = full->n ? full : NULL;
		pthread_mutex_unlock(&s->lock);
		s->spare = full;
		if (full->n) {
			merge_shard(d, s, full, now_ms);
			/* Readers (lc_dispatch_read) look at it under the lock.
			 */
			pthread_mutex_lock(&s->lock);
			s->merging = NULL;
			pthread_mutex_unlock(&s->lock);
			lc_shard_clear(full);
		}
	}
	if (d->cluster) {
		expire_shares(d);
		merge_remote(d, now_ms);
	}
	watch_publish(d, now_ms);
	throttle_updates(d, lc_mono_us() / 1000);
	seq = atomic_load_explicit(&d->seq, memory_order_relaxed) + 1;
	publish_updates(d, seq, now_ms);
	if (d->cluster)
		hand_to_bridge(d);
	/*
	 * The batch goes to the batcher before seq is published: a batcher
	 * that reads seq then drains its inbox holds every tick up to seq
	 * (idempotency keys rely on it, batcher.c).
	 */
	hand_to_batcher(d, now_ms);
	atomic_store_explicit(&d->seq, seq, memory_order_release);
	update_top(d);
	/* Free entries nobody liked or watches any more (counter.c). */
	lc_counter_reclaim(d->counter, d->tick_no, 1024);

	us = lc_mono_us() - t0;
	while (b < sizeof(bounds_us) / sizeof(bounds_us[0]) &&
	       (uint64_t)us > bounds_us[b])
		b++;
	atomic_fetch_add_explicit(&d->stats.tick_us_buckets[b], 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&d->stats.ticks, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->stats.tick_us_total, (uint64_t)us,
				  memory_order_relaxed);
	if ((uint64_t)us > atomic_load(&d->stats.tick_us_max))
		atomic_store(&d->stats.tick_us_max, (uint64_t)us);
	atomic_fetch_add_explicit(&d->stats.urls_changed, d->nchanges,
				  memory_order_relaxed);
	/*
	 * The first like after any tick wakes the dispatcher, which runs at
	 * once if no tick with changes ran in the last tick_ms (tick_loop):
	 * so likes at a steady 10/s are each dispatched at once instead of
	 * phase-locking with the tick. One wake-up per tick at most. (A like
	 * added between this tick's swap and here waits for the next regular
	 * tick: late by at most one tick, never lost.)
	 */
	atomic_store_explicit(&d->kick.armed, true, memory_order_release);
	{
		/* The rate window is on the monotonic clock (a step of the
		 * wall clock must not divide by a negative time). */
		int64_t mono_ms = lc_mono_us() / 1000;

		if (mono_ms - d->rate_since_ms >= 1000) {
			uint64_t total = atomic_load(&d->stats.likes) +
					 atomic_load(&d->stats.unlikes);

			if (d->rate_since_ms)
				atomic_store(
				    &d->stats.likes_per_s,
				    (total - d->rate_base) * 1000 /
					(uint64_t)(mono_ms - d->rate_since_ms));
			d->rate_since_ms = mono_ms;
			d->rate_base = total;
		}
	}
	/* Watching-only changes are throttled on their own: they must not
	 * make the next lone like wait for the cadence. */
	{
		size_t counted = 0;

		for (size_t i = 0; i < d->nchanges; i++)
			counted += d->changes[i].likes ||
				   d->changes[i].unlikes || d->changes[i].views;
		return counted;
	}
}
