/*
 * livecount — cluster mode's wire format and its dispatcher <-> bridge
 * hand-offs. No Redis here (that is bridge.c): this module is the part of
 * cluster mode that can be unit-tested without a network.
 *
 * What lives in Redis (one logical database, shared by every node):
 *   lc:u:{TTTT}:<url>   sorted set; members "<node>:l" / "<node>:u" scored
 *                       with that node's absolute likes / unlikes of <url>,
 *                       written only with ZADD GT (never lowered, retries
 *                       and duplicates harmless). TTTT: 4 hex digits of an
 *                       unseeded hash of the url, a Redis Cluster hash tag.
 *   lc:node:<id>        the lease of a running node (refuses duplicates)
 *   lc:meta             the data set's epoch: gone or changed = Redis lost
 *                       its data, every node re-pushes what it knows
 *   channel lc:changes  every push and heartbeat, as one text message:
 *                         "lc1 <node> <boot> <seq>\n" then zero or more
 *                         "<node> <likes> <unlikes> <url>\n" lines
 *                       (a URL has no control characters, so no newline).
 *
 * Hand-offs (both mutex-guarded lists, taken whole):
 *   bridge -> dispatcher: batches of slot readings (node, likes, unlikes,
 *     url), merged by the dispatcher each tick with the rules of slots.h;
 *   dispatcher -> bridge: entries whose own slot changed in a tick; the
 *     bridge reads the slot when it pushes, so it always pushes the latest.
 */
#ifndef LC_CLUSTER_H
#define LC_CLUSTER_H

#include "lc/counter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lc_kick;

#define LC_CLUSTER_CHANNEL "lc:changes"
#define LC_CLUSTER_KEY_PREFIX "lc:u:"
/* "lc:u:{TTTT}:" */
#define LC_CLUSTER_KEY_HEAD 12
#define LC_CLUSTER_MSG_MAGIC "lc1"

/* ---- wire format -------------------------------------------------- */

/** A growable byte buffer. */
struct lc_buf {
	char *p;
	size_t n, cap;
};

/** Appends n bytes; returns 0 or LC_ENOMEM. */
int lc_buf_add(struct lc_buf *b, const void *p, size_t n);
void lc_buf_free(struct lc_buf *b);

/** Writes url's Redis key into out (cap >= LC_CLUSTER_KEY_HEAD + len + 1). */
size_t lc_cluster_key(char *out, size_t cap, const char *url, size_t len);

/** The url inside a key, or false when it is not a livecount key. */
bool lc_cluster_key_url(const char *key, size_t klen, const char **url,
			size_t *len);

/** Parses a member "<node>:l" or "<node>:u". */
bool lc_cluster_member_parse(const char *m, size_t len, uint32_t *node,
			     bool *unlikes);

/** Parses a sorted-set score that must be a whole number >= 0. */
bool lc_cluster_score_parse(const char *s, size_t len, int64_t *v);

struct lc_msg_header {
	uint32_t node;
	uint64_t boot; /* random per run of a node */
	uint64_t seq;  /* +1 per message of that run */
};

/** Starts a message in b (emptied first). Returns 0 or LC_ENOMEM. */
int lc_msg_begin(struct lc_buf *b, const struct lc_msg_header *h);

/** Appends one slot reading. Returns 0 or LC_ENOMEM. */
int lc_msg_add(struct lc_buf *b, uint32_t node, int64_t likes, int64_t unlikes,
	       const char *url, size_t len);

/**
 * Parses a message: fills *h, then calls fn once per line. Returns the
 * number of lines, or LC_EINVAL for a malformed message (fn may have been
 * called for the lines before the bad one), or fn's nonzero return.
 */
long lc_msg_parse(const char *p, size_t n, struct lc_msg_header *h,
		  int (*fn)(void *arg, uint32_t node, int64_t likes,
			    int64_t unlikes, const char *url, size_t len),
		  void *arg);

/* ---- hand-offs ------------------------------------------------------- */

struct lc_remote_item {
	uint32_t node;
	int64_t likes, unlikes;
	uint32_t url_off, url_len;
};

/** Slot readings from Redis, for the dispatcher. */
struct lc_remote_batch {
	struct lc_remote_batch *next;
	bool adopt; /* from the first full resync after start (slots.h) */
	size_t n, cap;
	struct lc_remote_item *items;
	struct lc_buf urls;
};

struct lc_remote_batch *lc_remote_batch_new(bool adopt);
int lc_remote_batch_add(struct lc_remote_batch *b, uint32_t node, int64_t likes,
			int64_t unlikes, const char *url, size_t len);
void lc_remote_batch_free(struct lc_remote_batch *b);

struct lc_cluster_stats {
	_Atomic uint64_t remote_items; /* readings merged */
	_Atomic uint64_t remote_likes; /* likes learnt from other nodes */
	_Atomic uint64_t remote_unlikes;
	_Atomic uint64_t adopted_likes; /* own likes adopted from Redis */
	_Atomic uint64_t merge_errors;	/* readings dropped: out of memory */
};

struct lc_cluster {
	uint32_t self; /* this node's id */

	pthread_mutex_t lock; /* guards the lists below */
	struct lc_remote_batch *in_head, *in_tail;
	size_t in_items; /* readings waiting in the inbox */
	uint64_t takes;	 /* lc_cluster_take_remote calls so far */
	struct lc_entry **out;
	size_t out_n, out_cap;

	struct lc_kick *kick; /* the dispatcher's leading edge (dispatch.h) */
	void (*wake_bridge)(void *arg); /* after posting own changes */
	void *wake_arg;
	/* Set by the dispatcher when it had to drop readings: resync. */
	_Atomic bool resync_wanted;
	struct lc_cluster_stats stats;
};

int lc_cluster_init(struct lc_cluster *cl, uint32_t self);
void lc_cluster_cleanup(struct lc_cluster *cl);

/** Bridge: queues a batch for the dispatcher (takes ownership). */
void lc_cluster_post_remote(struct lc_cluster *cl, struct lc_remote_batch *b);

/** Readings waiting for the dispatcher (for back-pressure). Any thread. */
size_t lc_cluster_remote_pending(struct lc_cluster *cl);

/**
 * How many times the dispatcher took the inbox. It merges what it takes
 * before it takes again, so once the inbox is empty and this grew by two
 * since a post, that post is merged (the bridge waits for its adoption to
 * be merged before it pushes). Any thread.
 */
uint64_t lc_cluster_takes(struct lc_cluster *cl);

/** Dispatcher: takes every queued batch (a list; free each). */
struct lc_remote_batch *lc_cluster_take_remote(struct lc_cluster *cl);

/**
 * Dispatcher: queues entries whose own slot changed and wakes the bridge.
 * Returns 0 or LC_ENOMEM (nothing queued; the caller keeps them).
 */
int lc_cluster_post_own(struct lc_cluster *cl, struct lc_entry *const *e,
			size_t n);

/**
 * Bridge: takes the queued own entries into *out (a malloc'ed array the
 * caller frees); returns how many.
 */
size_t lc_cluster_take_own(struct lc_cluster *cl, struct lc_entry ***out);

#endif
