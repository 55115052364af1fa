/*
 * The counter table (url -> counts) and the per-worker delta shards.
 *
 * Threads: lookups from any thread without locks; inserts under
 * insert_lock; count updates by the dispatcher only (see counter.h).
 *
 * A note on lock-free lookups: the index is an open-addressing array of
 * entry pointers. A slot goes from NULL to an entry exactly once (release
 * store), and entries never move, so a reader probing with acquire loads
 * sees either a complete entry or an empty slot. When the table grows, a
 * new index is filled and published with one atomic store; readers still
 * probing the old one finish correctly (they may miss an entry inserted
 * after the switch, which reads as "not liked yet": at most one tick
 * stale). Outgrown indexes are kept until the table is destroyed instead
 * of being reclaimed with hazard pointers or epochs: their total size is
 * smaller than the live index (1/2 + 1/4 + ...), a price worth the
 * simplicity.
 */
#define _GNU_SOURCE
#include "lc/counter.h"
#include "lc/common.h"
#include "lc/hash.h"
#include "lc/store.h"

#include <jansson.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

uint64_t lc_hash_seed = 0x2545f4914f6cdd1dULL;

void
lc_hash_seed_init(void)
{
	uint64_t s;

	if (getrandom(&s, sizeof(s), 0) == (ssize_t)sizeof(s))
		lc_hash_seed = s;
}

struct lc_counter_index {
	size_t mask;
	struct lc_counter_index *next_retired;
	_Atomic(struct lc_entry *) slots[];
};

/*
 * A note on reclamation: a subscription inserts an entry for its URL (a
 * session needs one to be told of changes), so readers, who need no
 * token, could otherwise fill memory with URLs nobody ever liked. Entries
 * inserted by a subscription are "watched"; each tick the dispatcher looks
 * at a slice of them, and one still never liked and with no subscriber is
 * retired: flagged, replaced in the index by a tombstone (lock-free
 * readers skip it; inserts reuse it). It is freed only after a grace
 * period: two ticks (a like that found it before it was retired sits in a
 * shard merged by then, and the merge sees the flag and looks again), and
 * every registered reader (each worker, the bridge) seen outside its
 * reading stretch or past it since the removal (a seqcount per reader,
 * odd while inside; removal and the snapshot on one side, entering and
 * the lookup on the other, are sequentially consistent, so a reader that
 * entered later cannot find the entry). A subscriber racing the retirement
 * checks the flag after counting itself in and looks again if set.
 * Indexes rebuilt to drop tombstones are freed the same way.
 */
#define TOMB ((struct lc_entry *)&tomb_slot)
static const char tomb_slot;

struct lc_retired {
	struct lc_retired *next;
	uint64_t tick;		   /* retired in this tick */
	uint64_t *snap;		   /* readers' seq at that time */
	struct lc_entry **entries; /* to free */
	size_t n;
	struct lc_counter_index *indexes; /* old indexes to free */
};

static struct lc_counter_index *
index_new(size_t cap)
{
	struct lc_counter_index *ix;

	ix = calloc(1, sizeof(*ix) + cap * sizeof(ix->slots[0]));
	if (ix)
		ix->mask = cap - 1;
	return ix;
}

static size_t
pow2_at_least(size_t n)
{
	size_t p = 16;

	while (p < n)
		p <<= 1;
	return p;
}

int
lc_counter_init(struct lc_counter *c, size_t expected)
{
	struct lc_counter_index *ix = index_new(pow2_at_least(expected * 2));

	memset(c, 0, sizeof(*c));
	if (!ix)
		return LC_ENOMEM;
	atomic_init(&c->index, ix);
	pthread_mutex_init(&c->insert_lock, NULL);
	pthread_mutex_init(&c->slots_lock, NULL);
	return 0;
}

static void
entry_free(struct lc_entry *e)
{
	/* The batcher is gone by now (or never had it): minutes go too. */
	while (e->minutes) {
		struct lc_minute *m = e->minutes;

		e->minutes = m->next;
		free(m);
	}
	free(atomic_load(&e->json_key));
	free(e->slots);
	free(e);
}

/* Entries freed in one reclaim that make it return memory to the system. */
#define LC_TRIM_AFTER_ENTRIES 1024

static void
retired_free(struct lc_retired *r)
{
	struct lc_counter_index *ix;

	for (size_t i = 0; i < r->n; i++)
		entry_free(r->entries[i]);
	while ((ix = r->indexes)) {
		r->indexes = ix->next_retired;
		free(ix);
	}
	free(r->entries);
	free(r->snap);
	free(r);
}

void
lc_counter_cleanup(struct lc_counter *c)
{
	struct lc_counter_index *ix = atomic_load(&c->index), *r;
	struct lc_retired *rt;

	if (!ix)
		return;
	while ((rt = c->retired_head)) {
		c->retired_head = rt->next;
		retired_free(rt);
	}
	while ((r = c->rebuilt)) {
		c->rebuilt = r->next_retired;
		free(r);
	}
	free(c->watch);
	free(c->readers);
	for (size_t i = 0; i <= ix->mask; i++) {
		struct lc_entry *e =
		    atomic_load_explicit(&ix->slots[i], memory_order_relaxed);

		if (e && e != TOMB)
			entry_free(e);
	}
	free(ix);
	while ((r = c->retired)) {
		c->retired = r->next_retired;
		free(r);
	}
	pthread_mutex_destroy(&c->insert_lock);
	pthread_mutex_destroy(&c->slots_lock);
	atomic_store(&c->index, NULL);
}

static struct lc_entry *
index_find(struct lc_counter_index *ix, const char *url, size_t len,
	   uint64_t hash)
{
	for (size_t i = hash & ix->mask;; i = (i + 1) & ix->mask) {
		struct lc_entry *e =
		    atomic_load_explicit(&ix->slots[i], memory_order_seq_cst);

		if (!e)
			return NULL;
		if (e == TOMB)
			continue;
		if (e->hash == hash && e->url_len == len &&
		    !memcmp(e->url, url, len))
			return e;
	}
}

static void
index_put(struct lc_counter_index *ix, struct lc_entry *e)
{
	size_t i = e->hash & ix->mask;
	struct lc_entry *x;

	while (
	    (x = atomic_load_explicit(&ix->slots[i], memory_order_relaxed)) &&
	    x != TOMB)
		i = (i + 1) & ix->mask;
	atomic_store_explicit(&ix->slots[i], e, memory_order_release);
}

struct lc_entry *
lc_counter_find(struct lc_counter *c, const char *url, size_t len,
		uint64_t hash)
{
	return index_find(atomic_load_explicit(&c->index, memory_order_acquire),
			  url, len, hash);
}

/*
 * Rebuilds the index: doubled when live entries fill it, at the same size
 * when tombstones do. Caller holds insert_lock. An outgrown index is kept
 * to the end (their sizes add up to less than the last one); one rebuilt
 * at the same size is freed by the next reclaim after a grace period.
 */
static int
grow(struct lc_counter *c)
{
	struct lc_counter_index *old = atomic_load(&c->index);
	bool same = c->size * 4 < old->mask + 1;
	struct lc_counter_index *ix =
	    index_new((old->mask + 1) * (same ? 1 : 2));

	if (!ix)
		return LC_ENOMEM;
	for (size_t i = 0; i <= old->mask; i++) {
		struct lc_entry *e =
		    atomic_load_explicit(&old->slots[i], memory_order_relaxed);

		if (e && e != TOMB)
			index_put(ix, e);
	}
	atomic_store_explicit(&c->index, ix, memory_order_seq_cst);
	c->tombs = 0;
	if (same) {
		old->next_retired = c->rebuilt;
		c->rebuilt = old;
	} else {
		old->next_retired = c->retired;
		c->retired = old;
	}
	return 0;
}

struct lc_entry *
lc_counter_find_or_insert(struct lc_counter *c, const char *url, size_t len,
			  uint64_t hash)
{
	struct lc_entry *e = lc_counter_find(c, url, len, hash);
	struct lc_counter_index *ix;

	if (e)
		return e;
	pthread_mutex_lock(&c->insert_lock);
	ix = atomic_load(&c->index);
	e = index_find(ix, url, len, hash);
	if (e)
		goto out;
	/* Keep the load factor (tombstones too) under 1/2. */
	if ((c->size + c->tombs + 1) * 2 > ix->mask + 1) {
		if (grow(c))
			goto out;
		ix = atomic_load(&c->index);
	}
	e = calloc(1, sizeof(*e) + len + 1);
	if (!e)
		goto out;
	e->hash = hash;
	e->url_len = (uint32_t)len;
	memcpy(e->url, url, len);
	index_put(ix, e);
	c->size++;
	atomic_fetch_add_explicit(&c->used, 1, memory_order_relaxed);
out:
	pthread_mutex_unlock(&c->insert_lock);
	return e;
}

int
lc_counter_add_reader(struct lc_counter *c, struct lc_reader *r)
{
	void *p = realloc(c->readers, (c->nreaders + 1) * sizeof(*c->readers));

	if (!p)
		return LC_ENOMEM;
	c->readers = p;
	c->readers[c->nreaders++] = r;
	return 0;
}

struct lc_entry *
lc_counter_find_or_insert_watched(struct lc_counter *c, const char *url,
				  size_t len, uint64_t hash, int *rc)
{
	struct lc_entry *e = lc_counter_find(c, url, len, hash);

	*rc = 0;
	if (!e && c->max_urls &&
	    atomic_load_explicit(&c->used, memory_order_relaxed) >=
		c->max_urls) {
		atomic_fetch_add_explicit(&c->refused, 1, memory_order_relaxed);
		*rc = LC_EFULL;
		return NULL;
	}
	if (!e)
		e = lc_counter_find_or_insert(c, url, len, hash);
	if (!e) {
		*rc = LC_ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&c->insert_lock);
	/* Never liked (yet): watch it; once liked, the slice drops it. */
	if (!e->watched && !atomic_load(&e->likes) &&
	    !atomic_load(&e->unlikes) && !atomic_load(&e->views) &&
	    !atomic_load(&e->retired)) {
		if (c->watch_n == c->watch_cap) {
			size_t cap = c->watch_cap ? c->watch_cap * 2 : 256;
			void *p = realloc(c->watch, cap * sizeof(*c->watch));

			if (p) {
				c->watch = p;
				c->watch_cap = cap;
			}
		}
		if (c->watch_n < c->watch_cap) {
			e->watched = true;
			c->watch[c->watch_n++] = e;
		}
	}
	pthread_mutex_unlock(&c->insert_lock);
	return e;
}

/* True when every reader was outside, or moved on, since snap. */
static bool
grace_passed(const struct lc_counter *c, const uint64_t *snap)
{
	for (size_t i = 0; i < c->nreaders; i++) {
		uint64_t now = atomic_load_explicit(&c->readers[i]->seq,
						    memory_order_seq_cst);

		if ((snap[i] & 1) && now == snap[i])
			return false;
	}
	return true;
}

/* Removes e from the index (caller holds insert_lock). */
static void
index_remove(struct lc_counter *c, struct lc_entry *e)
{
	struct lc_counter_index *ix = atomic_load(&c->index);

	for (size_t i = e->hash & ix->mask;; i = (i + 1) & ix->mask) {
		struct lc_entry *x =
		    atomic_load_explicit(&ix->slots[i], memory_order_relaxed);

		if (!x)
			return;
		if (x == e) {
			atomic_store_explicit(&ix->slots[i], TOMB,
					      memory_order_seq_cst);
			c->size--;
			c->tombs++;
			return;
		}
	}
}

size_t
lc_counter_reclaim(struct lc_counter *c, uint64_t tick_no, size_t budget)
{
	struct lc_retired *r = NULL;
	size_t removed = 0, freed = 0;

	/* Free what has passed its grace period, oldest first. */
	while (c->retired_head && c->retired_head->tick + 2 <= tick_no &&
	       grace_passed(c, c->retired_head->snap)) {
		struct lc_retired *done = c->retired_head;

		c->retired_head = done->next;
		if (!c->retired_head)
			c->retired_tail = NULL;
		atomic_fetch_add(&c->reclaimed, done->n);
		atomic_fetch_sub(&c->used, (int64_t)done->n);
		freed += done->n;
		retired_free(done);
	}
	/*
	 * Many entries freed (subscribers of many URLs left), however many
	 * reclaims it took: once nothing more waits to be freed, give the
	 * pages back to the system, or glibc keeps them in its arenas and RSS
	 * stays at its peak.
	 */
	c->untrimmed += freed;
	if (c->untrimmed >= LC_TRIM_AFTER_ENTRIES && !c->retired_head) {
		malloc_trim(0);
		c->untrimmed = 0;
	}

	pthread_mutex_lock(&c->insert_lock);
	if (!c->watch_n && !c->rebuilt)
		goto out;
	r = calloc(1, sizeof(*r));
	if (!r)
		goto out;
	r->entries = malloc((budget ? budget : 1) * sizeof(*r->entries));
	r->snap = calloc(c->nreaders ? c->nreaders : 1, sizeof(*r->snap));
	if (!r->entries || !r->snap) {
		free(r->entries);
		free(r->snap);
		free(r);
		r = NULL;
		goto out;
	}
	for (size_t k = 0; k < budget && c->watch_n; k++) {
		struct lc_entry *e;

		if (c->watch_at >= c->watch_n)
			c->watch_at = 0;
		e = c->watch[c->watch_at];
		if (atomic_load_explicit(&e->likes, memory_order_relaxed) ||
		    atomic_load_explicit(&e->unlikes, memory_order_relaxed) ||
		    atomic_load_explicit(&e->views, memory_order_relaxed)) {
			/* Liked or viewed: a real entry now, not watched. */
			e->watched = false;
			c->watch[c->watch_at] = c->watch[--c->watch_n];
			continue;
		}
		/* Subscribed here or on another node (cluster mode), or its
		 * watching figure or share not yet published (the dispatcher's
		 * list holds it: same thread as this). */
		if (atomic_load_explicit(&e->subscribers,
					 memory_order_seq_cst) > 0 ||
		    atomic_load_explicit(&e->remote_watching,
					 memory_order_relaxed) > 0 ||
		    e->share_sent || e->watch_listed || e->deferred ||
		    atomic_load_explicit(&e->watch_sent,
					 memory_order_relaxed)) {
			c->watch_at++;
			continue;
		}
		/* Retire, unless a subscriber came in meanwhile (it checks
		 * the flag after counting itself in: one of us sees the
		 * other). */
		atomic_store_explicit(&e->retired, true, memory_order_seq_cst);
		if (atomic_load_explicit(&e->subscribers,
					 memory_order_seq_cst) > 0) {
			atomic_store_explicit(&e->retired, false,
					      memory_order_seq_cst);
			c->watch_at++;
			continue;
		}
		index_remove(c, e);
		e->watched = false;
		c->watch[c->watch_at] = c->watch[--c->watch_n];
		r->entries[r->n++] = e;
		removed++;
	}
	r->indexes = c->rebuilt;
	c->rebuilt = NULL;
out:
	pthread_mutex_unlock(&c->insert_lock);
	if (!r)
		return removed;
	if (!r->n && !r->indexes) {
		retired_free(r);
		return removed;
	}
	/* After the removals: a reader entering from now on cannot find
	 * them, one inside now must be seen leaving. */
	atomic_thread_fence(memory_order_seq_cst);
	for (size_t i = 0; i < c->nreaders; i++)
		r->snap[i] = atomic_load_explicit(&c->readers[i]->seq,
						  memory_order_seq_cst);
	r->tick = tick_no;
	if (c->retired_tail)
		c->retired_tail->next = r;
	else
		c->retired_head = r;
	c->retired_tail = r;
	return removed;
}

size_t
lc_counter_size(struct lc_counter *c)
{
	size_t n;

	pthread_mutex_lock(&c->insert_lock);
	n = c->size;
	pthread_mutex_unlock(&c->insert_lock);
	return n;
}

void
lc_counter_foreach(struct lc_counter *c,
		   void (*fn)(struct lc_entry *e, void *arg), void *arg)
{
	struct lc_counter_index *ix =
	    atomic_load_explicit(&c->index, memory_order_acquire);

	for (size_t i = 0; i <= ix->mask; i++) {
		struct lc_entry *e =
		    atomic_load_explicit(&ix->slots[i], memory_order_acquire);

		if (e && e != TOMB)
			fn(e, arg);
	}
}

struct lc_counts
lc_entry_read_marks(const struct lc_entry *e, _Atomic bool *const *marks,
		    bool *seen, size_t n)
{
	struct lc_counts r;
	uint32_t s1, s2;

	do {
		s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
		r.likes = atomic_load_explicit(&e->likes, memory_order_relaxed);
		r.unlikes =
		    atomic_load_explicit(&e->unlikes, memory_order_relaxed);
		r.updated_ms =
		    atomic_load_explicit(&e->updated_ms, memory_order_relaxed);
		r.views = atomic_load_explicit(&e->views, memory_order_relaxed);
		for (size_t i = 0; i < n; i++)
			seen[i] = !marks[i] ||
				  atomic_load_explicit(marks[i],
						       memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&e->seq, memory_order_relaxed);
	} while ((s1 & 1) || s1 != s2);
	return r;
}

struct lc_counts
lc_entry_read(const struct lc_entry *e)
{
	return lc_entry_read_marks(e, NULL, NULL, 0);
}

void
lc_entry_add_marked(struct lc_entry *e, int64_t likes, int64_t unlikes,
		    int64_t views, int64_t now_ms, _Atomic bool *mark)
{
	uint32_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);

	atomic_store_explicit(&e->seq, s + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(
	    &e->likes,
	    lc_sat_add(atomic_load_explicit(&e->likes, memory_order_relaxed),
		       likes),
	    memory_order_relaxed);
	atomic_store_explicit(
	    &e->unlikes,
	    lc_sat_add(atomic_load_explicit(&e->unlikes, memory_order_relaxed),
		       unlikes),
	    memory_order_relaxed);
	if (views)
		atomic_store_explicit(
		    &e->views,
		    lc_sat_add(
			atomic_load_explicit(&e->views, memory_order_relaxed),
			views),
		    memory_order_relaxed);
	atomic_store_explicit(&e->updated_ms, now_ms, memory_order_relaxed);
	if (mark)
		atomic_store_explicit(mark, true, memory_order_relaxed);
	atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}

void
lc_entry_add(struct lc_entry *e, int64_t likes, int64_t unlikes, int64_t now_ms)
{
	lc_entry_add_marked(e, likes, unlikes, 0, now_ms, NULL);
}

void
lc_entry_add_views(struct lc_entry *e, int64_t views)
{
	/* Loading views at start does not change when it was last liked. */
	lc_entry_add_marked(
	    e, 0, 0, views,
	    atomic_load_explicit(&e->updated_ms, memory_order_relaxed), NULL);
}

const char *
lc_entry_json_key(struct lc_entry *e)
{
	char *k = atomic_load_explicit(&e->json_key, memory_order_acquire);
	char *expected = NULL;
	json_t *s;

	if (k)
		return k;
	s = json_stringn_nocheck(e->url, e->url_len);
	if (!s)
		return NULL;
	k = json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(s);
	if (!k)
		return NULL;
	if (!atomic_compare_exchange_strong(&e->json_key, &expected, k)) {
		free(k); /* another thread won the race */
		return expected;
	}
	return k;
}

/* ------------------------------------------------------------------ */

#define SHARD_MIN_SLOTS 64u

int
lc_shard_init(struct lc_shard *s)
{
	memset(s, 0, sizeof(*s));
	s->slots = calloc(SHARD_MIN_SLOTS, sizeof(*s->slots));
	if (!s->slots)
		return LC_ENOMEM;
	s->mask = SHARD_MIN_SLOTS - 1;
	return 0;
}

void
lc_shard_cleanup(struct lc_shard *s)
{
	free(s->items);
	free(s->slots);
	free(s->arena);
	memset(s, 0, sizeof(*s));
}

void
lc_shard_clear(struct lc_shard *s)
{
	/*
	 * A shard that once held a million URLs should not cost a million
	 * slot clears every tick afterwards: shrink it when it was mostly
	 * empty this time.
	 */
	if (s->mask + 1 > SHARD_MIN_SLOTS && s->n * 8 < s->mask + 1) {
		uint32_t *small = calloc(SHARD_MIN_SLOTS, sizeof(*small));

		if (small) {
			free(s->slots);
			s->slots = small;
			s->mask = SHARD_MIN_SLOTS - 1;
			free(s->items);
			s->items = NULL;
			s->cap = 0;
			free(s->arena);
			s->arena = NULL;
			s->arena_cap = 0;
			goto out;
		}
	}
	if (s->n)
		memset(s->slots, 0, (s->mask + 1) * sizeof(*s->slots));
out:
	s->n = 0;
	s->arena_len = 0;
	s->total_likes = s->total_unlikes = s->total_views = 0;
}

struct lc_shard_item *
lc_shard_find(const struct lc_shard *s, const char *url, size_t len,
	      uint64_t hash)
{
	for (uint32_t i = (uint32_t)hash & s->mask;; i = (i + 1) & s->mask) {
		uint32_t v = s->slots[i];
		struct lc_shard_item *it;

		if (!v)
			return NULL;
		it = &s->items[v - 1];
		if (it->hash == hash && it->url_len == len &&
		    !memcmp(s->arena + it->url_off, url, len))
			return it;
	}
}

static int
shard_grow(struct lc_shard *s)
{
	uint32_t cap = (s->mask + 1) * 2;
	uint32_t *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return LC_ENOMEM;
	for (uint32_t k = 0; k < s->n; k++) {
		uint32_t i = (uint32_t)s->items[k].hash & (cap - 1);

		while (slots[i])
			i = (i + 1) & (cap - 1);
		slots[i] = k + 1;
	}
	free(s->slots);
	s->slots = slots;
	s->mask = cap - 1;
	return 0;
}

struct lc_shard_item *
lc_shard_add(struct lc_shard *s, const char *url, size_t len, uint64_t hash,
	     int64_t likes, int64_t unlikes)
{
	return lc_shard_add3(s, url, len, hash, likes, unlikes, 0);
}

struct lc_shard_item *
lc_shard_add3(struct lc_shard *s, const char *url, size_t len, uint64_t hash,
	      int64_t likes, int64_t unlikes, int64_t views)
{
	struct lc_shard_item *it = lc_shard_find(s, url, len, hash);
	uint32_t i;

	if (it)
		goto add;
	if ((s->n + 1) * 2 > s->mask + 1 && shard_grow(s))
		return NULL;
	if (s->n == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 64;
		void *p = realloc(s->items, cap * sizeof(*s->items));

		if (!p)
			return NULL;
		s->items = p;
		s->cap = cap;
	}
	if (s->arena_len + len + 1 > s->arena_cap) {
		size_t cap = s->arena_cap ? s->arena_cap : 4096;
		void *p;

		while (cap < s->arena_len + len + 1)
			cap *= 2;
		p = realloc(s->arena, cap);
		if (!p)
			return NULL;
		s->arena = p;
		s->arena_cap = cap;
	}
	it = &s->items[s->n];
	it->hash = hash;
	it->entry = NULL;
	it->reserved = false;
	atomic_init(&it->merged, false);
	it->likes = it->unlikes = it->views = 0;
	it->watch_changed = false;
	it->url_off = (uint32_t)s->arena_len;
	it->url_len = (uint32_t)len;
	memcpy(s->arena + s->arena_len, url, len);
	s->arena[s->arena_len + len] = '\0';
	s->arena_len += len + 1;
	for (i = (uint32_t)hash & s->mask; s->slots[i]; i = (i + 1) & s->mask)
		;
	s->slots[i] = ++s->n;
add:
	it->likes = lc_sat_add(it->likes, likes);
	it->unlikes = lc_sat_add(it->unlikes, unlikes);
	it->views = lc_sat_add(it->views, views);
	s->total_likes = lc_sat_add(s->total_likes, likes);
	s->total_unlikes = lc_sat_add(s->total_unlikes, unlikes);
	s->total_views = lc_sat_add(s->total_views, views);
	return it;
}
