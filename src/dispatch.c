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
#include "lc/common.h"
#include "lc/hash.h"

#include <stdlib.h>
#include <string.h>

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
	if (!it) {
		pthread_mutex_unlock(&s->lock);
		return LC_ENOMEM;
	}
	if (!it->entry)
		it->entry = lc_counter_find(c, url, len, h);
	e = it->entry;
	pending = it->likes - it->unlikes;
	pthread_mutex_unlock(&s->lock);
	*count = pending + (e ? lc_entry_count(e) : 0);
	return 0;
}

int
lc_source_add_batch(struct lc_source *s, const struct lc_like *items, size_t n)
{
	size_t i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < n; i++) {
		int64_t k = items[i].n;

		if (!lc_shard_add(s->active, items[i].url, items[i].url_len,
				  lc_hash(items[i].url, items[i].url_len),
				  k > 0 ? k : 0, k < 0 ? -k : 0))
			goto undo;
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
undo:
	/* Out of memory: take back what this batch added (items exist). */
	while (i--) {
		int64_t k = items[i].n;

		lc_shard_add(s->active, items[i].url, items[i].url_len,
			     lc_hash(items[i].url, items[i].url_len),
			     k > 0 ? -k : 0, k < 0 ? k : 0);
	}
	pthread_mutex_unlock(&s->lock);
	return LC_ENOMEM;
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
	d->top_entries = calloc(top_k ? top_k : 1, sizeof(*d->top_entries));
	d->top = calloc(1, sizeof(*d->top));
	if (!d->top_entries || !d->top) {
		free(d->top_entries);
		free(d->top);
		return LC_ENOMEM;
	}
	atomic_init(&d->top->refs, 1);
	pthread_mutex_init(&d->top_lock, NULL);
	return 0;
}

static void
sum_cb(struct lc_entry *e, void *arg)
{
	struct lc_dispatch *d = arg;
	struct lc_counts r = lc_entry_read(e);

	atomic_fetch_add_explicit(&d->stats.all_likes, r.likes,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&d->stats.all_unlikes, r.unlikes,
				  memory_order_relaxed);
}

void
lc_dispatch_sum_table(struct lc_dispatch *d)
{
	atomic_store(&d->stats.all_likes, 0);
	atomic_store(&d->stats.all_unlikes, 0);
	lc_counter_foreach(d->counter, sum_cb, d);
}

void
lc_dispatch_cleanup(struct lc_dispatch *d)
{
	free(d->changes);
	free(d->top_entries);
	lc_dispatch_top_put(d->top);
	pthread_mutex_destroy(&d->top_lock);
}

/* Records a change of e in this tick's list, merging repeats. */
static int
note_change(struct lc_dispatch *d, struct lc_entry *e, int64_t likes,
	    int64_t unlikes)
{
	struct lc_change *c;

	if (e->tick == d->tick_no) {
		c = &d->changes[e->tick_idx];
		c->likes += likes;
		c->unlikes += unlikes;
		return 0;
	}
	if (d->nchanges == d->changes_cap) {
		size_t cap = d->changes_cap ? d->changes_cap * 2 : 1024;
		void *p = realloc(d->changes, cap * sizeof(*d->changes));

		if (!p)
			return LC_ENOMEM;
		d->changes = p;
		d->changes_cap = cap;
	}
	e->tick = d->tick_no;
	e->tick_idx = (uint32_t)d->nchanges;
	c = &d->changes[d->nchanges++];
	c->e = e;
	c->likes = likes;
	c->unlikes = unlikes;
	return 0;
}

/* Merges one swapped-out shard into the table. */
static void
merge_shard(struct lc_dispatch *d, struct lc_source *src, struct lc_shard *sh,
	    int64_t now_ms)
{
	for (uint32_t i = 0; i < sh->n; i++) {
		struct lc_shard_item *it = &sh->items[i];
		struct lc_entry *e = it->entry;

		if (!it->likes && !it->unlikes)
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
		if (!e || note_change(d, e, it->likes, it->unlikes)) {
			bool kept;

			pthread_mutex_lock(&src->lock);
			kept = lc_shard_add(src->active, lc_shard_url(sh, it),
					    it->url_len, it->hash, it->likes,
					    it->unlikes) != NULL;
			pthread_mutex_unlock(&src->lock);
			lc_err("dispatch: out of memory merging %s (%s)",
			       lc_shard_url(sh, it),
			       kept ? "retried next tick" : "LOST");
			continue;
		}
		lc_entry_add(e, it->likes, it->unlikes, now_ms);
		atomic_fetch_add_explicit(&d->stats.likes, (uint64_t)it->likes,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&d->stats.unlikes,
					  (uint64_t)it->unlikes,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&d->stats.all_likes, it->likes,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&d->stats.all_unlikes, it->unlikes,
					  memory_order_relaxed);
	}
}

struct heap {
	struct lc_entry **e;
	int64_t *v;
	size_t n, k;
};

static void
heap_swap(struct heap *h, size_t a, size_t b)
{
	struct lc_entry *te = h->e[a];
	int64_t tv = h->v[a];

	h->e[a] = h->e[b];
	h->v[a] = h->v[b];
	h->e[b] = te;
	h->v[b] = tv;
}

static void
heap_sift_down(struct heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->n && h->v[l] < h->v[m])
			m = l;
		if (r < h->n && h->v[r] < h->v[m])
			m = r;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

static void
heap_offer(struct heap *h, struct lc_entry *e)
{
	int64_t v = lc_entry_count(e);

	if (h->n < h->k) {
		size_t i = h->n++;

		h->e[i] = e;
		h->v[i] = v;
		while (i && h->v[(i - 1) / 2] > h->v[i]) {
			heap_swap(h, i, (i - 1) / 2);
			i = (i - 1) / 2;
		}
	} else if (h->k && v > h->v[0]) {
		h->e[0] = e;
		h->v[0] = v;
		heap_sift_down(h, 0);
	}
}

static void
offer_cb(struct lc_entry *e, void *arg)
{
	heap_offer(arg, e);
}

static int
cmp_top(const void *a, const void *b)
{
	const struct lc_entry *x = *(struct lc_entry *const *)a;
	const struct lc_entry *y = *(struct lc_entry *const *)b;
	int64_t cx = lc_entry_count(x), cy = lc_entry_count(y);

	if (cx != cy)
		return cx > cy ? -1 : 1;
	return strcmp(x->url, y->url);
}

/*
 * Keeps the top_k entries by count. Between full scans, the new top can
 * only come from the old top plus this tick's changes, as long as no
 * member of the old top went down (then an outsider may have overtaken
 * it, and we rescan the whole table).
 */
static void
update_top(struct lc_dispatch *d)
{
	struct heap h;
	struct lc_top *t, *old;

	if (!d->top_k)
		return;
	for (size_t i = 0; i < d->nchanges && !d->top_dirty; i++)
		if (d->changes[i].e->in_top &&
		    d->changes[i].likes < d->changes[i].unlikes)
			d->top_dirty = true;
	if (!d->top_dirty && !d->nchanges)
		return;
	h.k = d->top_k;
	h.n = 0;
	h.e = malloc(h.k * sizeof(*h.e));
	h.v = malloc(h.k * sizeof(*h.v));
	if (!h.e || !h.v)
		goto out;
	if (d->top_dirty) {
		lc_counter_foreach(d->counter, offer_cb, &h);
		d->top_dirty = false;
	} else {
		/* Old members carry in_top, so each candidate is offered once.
		 */
		for (size_t i = 0; i < d->top_n; i++)
			heap_offer(&h, d->top_entries[i]);
		for (size_t i = 0; i < d->nchanges; i++)
			if (!d->changes[i].e->in_top)
				heap_offer(&h, d->changes[i].e);
	}
	for (size_t i = 0; i < d->top_n; i++)
		d->top_entries[i]->in_top = false;
	qsort(h.e, h.n, sizeof(*h.e), cmp_top);
	memcpy(d->top_entries, h.e, h.n * sizeof(*h.e));
	d->top_n = h.n;
	t = malloc(sizeof(*t) + h.n * sizeof(t->items[0]));
	if (!t)
		goto out;
	atomic_init(&t->refs, 1);
	t->n = h.n;
	for (size_t i = 0; i < h.n; i++) {
		t->items[i].url = h.e[i]->url;
		t->items[i].url_len = h.e[i]->url_len;
		t->items[i].count = lc_entry_count(h.e[i]);
	}
	pthread_mutex_lock(&d->top_lock);
	old = d->top;
	d->top = t;
	pthread_mutex_unlock(&d->top_lock);
	lc_dispatch_top_put(old);
out:
	for (size_t i = 0; i < d->top_n; i++)
		d->top_entries[i]->in_top = true;
	free(h.e);
	free(h.v);
}

struct lc_top *
lc_dispatch_top_get(struct lc_dispatch *d)
{
	struct lc_top *t;

	pthread_mutex_lock(&d->top_lock);
	t = d->top;
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

static void
publish_updates(struct lc_dispatch *d, uint64_t seq, int64_t now_ms)
{
	struct lc_update_set *u;
	size_t n = 0;

	for (size_t i = 0; i < d->nchanges; i++)
		if (atomic_load_explicit(&d->changes[i].e->subscribers,
					 memory_order_relaxed) > 0)
			n++;
	if (!n)
		return;
	u = malloc(sizeof(*u) + n * sizeof(u->items[0]));
	if (!u) {
		lc_err("dispatch: out of memory; skipping tick %llu updates",
		       (unsigned long long)seq);
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

		if (atomic_load_explicit(&c->e->subscribers,
					 memory_order_relaxed) <= 0 ||
		    !(key = lc_entry_json_key(c->e)))
			continue;
		it = &u->items[u->n++];
		it->e = c->e;
		it->count = lc_entry_count(c->e);
		it->delta = c->likes - c->unlikes;
		it->key = key;
		it->key_len = strlen(key);
	}
	atomic_fetch_add_explicit(&d->stats.updates, u->n,
				  memory_order_relaxed);
	for (size_t i = 0; i < d->nsources; i++)
		source_post(d->sources[i], u);
	lc_update_set_unref(u);
}

static void
hand_to_batcher(struct lc_dispatch *d, int64_t now_ms)
{
	struct lc_change_batch *b;

	if (!d->batcher || !d->nchanges)
		return;
	b = malloc(sizeof(*b) + d->nchanges * sizeof(b->items[0]));
	if (!b) {
		/*
		 * The table already holds these counts; only this tick's
		 * minute history is lost. Say so loudly.
		 */
		lc_err("dispatch: out of memory; %zu URLs miss this minute's "
		       "history",
		       d->nchanges);
		return;
	}
	b->minute_s = now_ms / 60000 * 60;
	b->n = d->nchanges;
	memcpy(b->items, d->changes, d->nchanges * sizeof(b->items[0]));
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
	d->nchanges = 0;
	for (size_t i = 0; i < d->nsources; i++) {
		struct lc_source *s = d->sources[i];
		struct lc_shard *full;

		pthread_mutex_lock(&s->lock);
		full = s->active;
		s->active = s->spare;
		pthread_mutex_unlock(&s->lock);
		s->spare = full;
		if (full->n) {
			merge_shard(d, s, full, now_ms);
			lc_shard_clear(full);
		}
	}
	seq = atomic_load_explicit(&d->seq, memory_order_relaxed) + 1;
	publish_updates(d, seq, now_ms);
	atomic_store_explicit(&d->seq, seq, memory_order_release);
	hand_to_batcher(d, now_ms);
	update_top(d);

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
	if (now_ms - d->rate_since_ms >= 1000) {
		uint64_t total = atomic_load(&d->stats.likes) +
				 atomic_load(&d->stats.unlikes);

		if (d->rate_since_ms)
			atomic_store(&d->stats.likes_per_s,
				     (total - d->rate_base) * 1000 /
					 (uint64_t)(now_ms - d->rate_since_ms));
		d->rate_since_ms = now_ms;
		d->rate_base = total;
	}
	return d->nchanges;
}
