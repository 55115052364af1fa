/*
 * Idempotency keys (see idem.h): a chained hash table of keys and their
 * first answers, in one FIFO list by age that gives both the eviction
 * order (max_keys, ttl) and the order in which the batcher persists them.
 *
 * Threads: every function takes the table's mutex. lc_idem_run calls the
 * caller's function under it: that function counts a like (taking its
 * source's lock, never this one again), so lock order is idem -> source.
 *
 * A note on memory: a key costs its answer (a few hundred bytes; up to
 * ~2.2 KB for a 2 KB URL) plus ~80 bytes; max_idempotency_keys bounds the
 * total (README states the worst case).
 */
#define _GNU_SOURCE
#include "lc/idem.h"
#include "lc/common.h"
#include "lc/hash.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct node {
	struct node *hnext;	    /* hash chain */
	struct node *older, *newer; /* FIFO by age */
	uint64_t hash, id, after_seq;
	int64_t created_ms;
	bool persisted;
	int status;
	uint16_t klen;
	uint32_t len;
	char *body; /* after the key, in the same allocation */
	char key[];
};

struct lc_idem {
	pthread_mutex_t lock;
	struct node **buckets;
	size_t mask, n, max_keys;
	int64_t ttl_ms;
	uint64_t next_id;
	struct node *oldest, *newest;
	struct node *unpersisted; /* oldest key not yet in the database */
	_Atomic size_t pending;	  /* keys stored and not yet persisted */
	struct lc_idem_stats stats;
};

static bool
printable(const char *key, size_t len, size_t max)
{
	if (!len || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)key[i] < 0x21 ||
		    (unsigned char)key[i] > 0x7e)
			return false;
	return true;
}

bool
lc_idem_key_valid(const char *key, size_t len)
{
	return printable(key, len, LC_IDEM_CLIENT_KEY_MAX);
}

/* A stored key: what lc_idem_make_key makes (or a longer-prefixed one
 * from an older database: any printable key that fits). */
static bool
stored_key_valid(const char *key, size_t len)
{
	return printable(key, len, LC_IDEM_KEY_MAX);
}

size_t
lc_idem_make_key(char out[LC_IDEM_KEY_MAX + 1], char transport, const char *key,
		 size_t len)
{
	if (!lc_idem_key_valid(key, len))
		return 0;
	out[0] = transport;
	out[1] = ':';
	memcpy(out + LC_IDEM_PREFIX_LEN, key, len);
	out[LC_IDEM_PREFIX_LEN + len] = '\0';
	return LC_IDEM_PREFIX_LEN + len;
}

struct lc_idem *
lc_idem_create(size_t max_keys, int64_t ttl_ms)
{
	struct lc_idem *t = calloc(1, sizeof(*t));
	size_t nb = 1024;

	if (!t)
		return NULL;
	while (nb < max_keys && nb < ((size_t)1 << 24))
		nb <<= 1;
	t->buckets = calloc(nb, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return NULL;
	}
	t->mask = nb - 1;
	t->max_keys = max_keys ? max_keys : 1;
	t->ttl_ms = ttl_ms;
	t->next_id = 1;
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void
lc_idem_destroy(struct lc_idem *t)
{
	struct node *n, *next;

	if (!t)
		return;
	for (n = t->oldest; n; n = next) {
		next = n->newer;
		free(n);
	}
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct node *
find(struct lc_idem *t, const char *key, size_t klen, uint64_t h)
{
	for (struct node *n = t->buckets[h & t->mask]; n; n = n->hnext)
		if (n->hash == h && n->klen == klen &&
		    !memcmp(n->key, key, klen))
			return n;
	return NULL;
}

/* Unlinks and frees n. */
static void
drop(struct lc_idem *t, struct node *n)
{
	struct node **pp = &t->buckets[n->hash & t->mask];

	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
	if (!n->persisted)
		atomic_fetch_sub(&t->pending, 1);
	if (t->unpersisted == n) {
		t->unpersisted = n->newer;
		while (t->unpersisted && t->unpersisted->persisted)
			t->unpersisted = t->unpersisted->newer;
	}
	if (n->older)
		n->older->newer = n->newer;
	else
		t->oldest = n->newer;
	if (n->newer)
		n->newer->older = n->older;
	else
		t->newest = n->older;
	t->n--;
	atomic_store(&t->stats.keys, t->n);
	free(n);
}

static void
expire(struct lc_idem *t, int64_t now_ms)
{
	while (t->oldest && t->oldest->created_ms + t->ttl_ms <= now_ms) {
		drop(t, t->oldest);
		atomic_fetch_add(&t->stats.expired, 1);
	}
}

static struct node *
insert(struct lc_idem *t, const char *key, size_t klen, uint64_t h, int status,
       const char *body, size_t len, int64_t created_ms)
{
	struct node *n;

	if (len > LC_IDEM_BODY_MAX)
		len = LC_IDEM_BODY_MAX;
	while (t->n >= t->max_keys && t->oldest) {
		drop(t, t->oldest);
		atomic_fetch_add(&t->stats.evicted, 1);
	}
	n = malloc(sizeof(*n) + klen + len);
	if (!n)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->hash = h;
	n->klen = (uint16_t)klen;
	memcpy(n->key, key, klen);
	n->body = n->key + klen;
	memcpy(n->body, body, len);
	n->len = (uint32_t)len;
	n->status = status;
	n->created_ms = created_ms;
	n->id = t->next_id++;
	n->hnext = t->buckets[h & t->mask];
	t->buckets[h & t->mask] = n;
	n->older = t->newest;
	if (t->newest)
		t->newest->newer = n;
	else
		t->oldest = n;
	t->newest = n;
	t->n++;
	atomic_store(&t->stats.keys, t->n);
	return n;
}

/* Looks key up (expiring old keys first) and copies its answer. Locked. */
static struct node *
lookup_copy(struct lc_idem *t, const char *key, size_t klen, uint64_t h,
	    int64_t now_ms, struct lc_idem_answer *ans)
{
	struct node *n;

	expire(t, now_ms);
	n = find(t, key, klen, h);
	if (n) {
		ans->status = n->status;
		ans->len = n->len;
		memcpy(ans->body, n->body, n->len);
		atomic_fetch_add(&t->stats.hits, 1);
	}
	return n;
}

bool
lc_idem_run(struct lc_idem *t, const char *key, size_t klen, int64_t now_ms,
	    bool (*fn)(void *arg, struct lc_idem_answer *ans,
		       uint64_t *after_seq),
	    void *arg, struct lc_idem_answer *ans)
{
	uint64_t h = lc_hash(key, klen), after = 0;
	struct node *n;

	if (!stored_key_valid(key, klen)) {
		fn(arg, ans, &after); /* counted, not kept: never stored */
		return false;
	}
	pthread_mutex_lock(&t->lock);
	if (lookup_copy(t, key, klen, h, now_ms, ans)) {
		pthread_mutex_unlock(&t->lock);
		return true;
	}
	if (fn(arg, ans, &after)) {
		n = insert(t, key, klen, h, ans->status, ans->body, ans->len,
			   now_ms);
		if (n) {
			n->after_seq = after;
			atomic_fetch_add(&t->pending, 1);
			if (!t->unpersisted)
				t->unpersisted = n;
			atomic_fetch_add(&t->stats.stored, 1);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return false;
}

bool
lc_idem_lookup(struct lc_idem *t, const char *key, size_t klen, int64_t now_ms,
	       struct lc_idem_answer *ans)
{
	uint64_t h = lc_hash(key, klen);
	bool hit;

	if (!stored_key_valid(key, klen))
		return false;
	pthread_mutex_lock(&t->lock);
	hit = lookup_copy(t, key, klen, h, now_ms, ans) != NULL;
	pthread_mutex_unlock(&t->lock);
	return hit;
}

int
lc_idem_load(struct lc_idem *t, const char *key, size_t klen, int status,
	     const char *body, size_t len, int64_t created_ms)
{
	uint64_t h = lc_hash(key, klen);
	struct node *n;
	int rc = 0;

	if (!stored_key_valid(key, klen))
		return 0;
	pthread_mutex_lock(&t->lock);
	if (!find(t, key, klen, h)) {
		n = insert(t, key, klen, h, status, body, len, created_ms);
		if (n)
			n->persisted = true;
		else
			rc = LC_ENOMEM;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

size_t
lc_idem_take_persistable(struct lc_idem *t, uint64_t seq,
			 struct lc_idem_record *out, size_t max, uint64_t *upto)
{
	size_t k = 0;

	pthread_mutex_lock(&t->lock);
	for (struct node *n = t->unpersisted; n && k < max; n = n->newer) {
		if (n->persisted)
			continue;
		if (n->after_seq > seq)
			break;
		memcpy(out[k].key, n->key, n->klen);
		out[k].key[n->klen] = '\0';
		out[k].status = n->status;
		out[k].created_ms = n->created_ms;
		out[k].len = n->len;
		memcpy(out[k].body, n->body, n->len);
		*upto = n->id;
		k++;
	}
	pthread_mutex_unlock(&t->lock);
	return k;
}

void
lc_idem_persisted(struct lc_idem *t, uint64_t upto)
{
	size_t k = 0;

	pthread_mutex_lock(&t->lock);
	while (t->unpersisted && t->unpersisted->id <= upto) {
		if (!t->unpersisted->persisted) {
			k++;
			atomic_fetch_sub(&t->pending, 1);
		}
		t->unpersisted->persisted = true;
		t->unpersisted = t->unpersisted->newer;
	}
	pthread_mutex_unlock(&t->lock);
	atomic_fetch_add(&t->stats.persisted, k);
}

size_t
lc_idem_unpersisted(struct lc_idem *t)
{
	return atomic_load(&t->pending);
}

const struct lc_idem_stats *
lc_idem_stats(struct lc_idem *t)
{
	return &t->stats;
}
