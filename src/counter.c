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

void
lc_counter_cleanup(struct lc_counter *c)
{
	struct lc_counter_index *ix = atomic_load(&c->index), *r;

	if (!ix)
		return;
	for (size_t i = 0; i <= ix->mask; i++) {
		struct lc_entry *e =
		    atomic_load_explicit(&ix->slots[i], memory_order_relaxed);

		if (e) {
			/* The batcher is gone by now: its minute lists go too.
			 */
			while (e->minutes) {
				struct lc_minute *m = e->minutes;

				e->minutes = m->next;
				free(m);
			}
			free(atomic_load(&e->json_key));
			free(e->slots);
			free(e);
		}
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
		    atomic_load_explicit(&ix->slots[i], memory_order_acquire);

		if (!e)
			return NULL;
		if (e->hash == hash && e->url_len == len &&
		    !memcmp(e->url, url, len))
			return e;
	}
}

static void
index_put(struct lc_counter_index *ix, struct lc_entry *e)
{
	size_t i = e->hash & ix->mask;

	while (atomic_load_explicit(&ix->slots[i], memory_order_relaxed))
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

/* Doubles the index. Caller holds insert_lock. */
static int
grow(struct lc_counter *c)
{
	struct lc_counter_index *old = atomic_load(&c->index);
	struct lc_counter_index *ix = index_new((old->mask + 1) * 2);

	if (!ix)
		return LC_ENOMEM;
	for (size_t i = 0; i <= old->mask; i++) {
		struct lc_entry *e =
		    atomic_load_explicit(&old->slots[i], memory_order_relaxed);

		if (e)
			index_put(ix, e);
	}
	atomic_store_explicit(&c->index, ix, memory_order_release);
	old->next_retired = c->retired;
	c->retired = old;
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
	/* Keep the load factor under 1/2 so probes stay short. */
	if ((c->size + 1) * 2 > ix->mask + 1) {
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
out:
	pthread_mutex_unlock(&c->insert_lock);
	return e;
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

		if (e)
			fn(e, arg);
	}
}

struct lc_counts
lc_entry_read(const struct lc_entry *e)
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
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&e->seq, memory_order_relaxed);
	} while ((s1 & 1) || s1 != s2);
	return r;
}

void
lc_entry_add(struct lc_entry *e, int64_t likes, int64_t unlikes, int64_t now_ms)
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
	atomic_store_explicit(&e->updated_ms, now_ms, memory_order_relaxed);
	atomic_store_explicit(&e->seq, s + 2, memory_order_release);
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
	s->total_likes = s->total_unlikes = 0;
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
	it->likes = it->unlikes = 0;
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
	s->total_likes = lc_sat_add(s->total_likes, likes);
	s->total_unlikes = lc_sat_add(s->total_unlikes, unlikes);
	return it;
}
