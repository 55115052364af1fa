/*
 * livecount — cluster mode's wire format and its dispatcher <-> bridge
 * hand-offs. No Redis here (that is bridge.c): this module is the part of
 * cluster mode that can be unit-tested without a network.
 *
 * What lives in Redis (one logical database, shared by every node):
 *   lc:u:{TTTT}:<url>   sorted set; members "<slot>:l" / "<slot>:u" /
 *                       "<slot>:v" scored with that slot's absolute likes /
 *                       unlikes / views of <url> (slots.h: a slot is a
 *                       node id and a database instance, "<node>.<inst>",
 *                       inst 8 hex digits; "<node>" alone: a slot from
 *                       before instances, or a share line's sender),
 *                       written only with ZADD GT (never lowered, retries
 *                       and duplicates harmless). TTTT: 4 hex digits of an
 *                       unseeded hash of the url, a Redis Cluster hash tag.
 *   lc:node:<id>        the lease of a running node (refuses duplicates)
 *   lc:meta             the data set's epoch: gone or changed = Redis lost
 *                       its data, every node re-pushes what it knows
 *   channel lc:changes  every push and heartbeat, as one text message:
 *                         "lc3 <node> <boot> <seq>[ bye| hello| full]\n"
 *                         then zero or more lines
 *                         "<slot> <likes> <unlikes> <views> <w> <url>\n"
 *                       (a URL has no control characters, so no newline).
 *                       <w> is the sender's own share of "watching now"
 *                       (its live subscriptions to <url>), or "-" when the
 *                       line does not carry it (a share line's totals are
 *                       0 0 0 and its slot the bare node id: nothing to
 *                       merge). " bye": the sender stops
 *                       (its shares are withdrawn). " full": the lines are
 *                       every share > 0 of the sender, the ones it does
 *                       not list are 0. " hello": a " full" from a node
 *                       that has just (re)synced: every other node answers
 *                       with its own " full".
 *
 * Watching cluster-wide (lc_shares_set and its kin): a node keeps every
 * other live node's last announced share per URL (in that URL's slot,
 * slots.h) and their sum in e->remote_watching. A node's shares go when it
 * says bye, when its heartbeat is older than LC_SHARE_TIMEOUT_MS, and when
 * it comes back with a new boot (a restart: its old shares are replaced,
 * never added).
 */
#ifndef LC_CLUSTER_H
#define LC_CLUSTER_H

#include "lc/counter.h"
#include "lc/slots.h"

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
#define LC_CLUSTER_MSG_MAGIC "lc3"
/* Another node silent this long (no heartbeat): its watchers are dropped. */
#define LC_SHARE_TIMEOUT_MS 6000
/* Node ids index arrays of this size (ids are 1..LC_MAX_NODE_ID). */
#define LC_CLUSTER_NODES 1024
/* Share lines waiting for the bridge before a full announcement instead. */
#define LC_SHARES_OUT_MAX (8u << 20)

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

/** Which total a member holds. */
enum lc_member_kind { LC_MEMBER_LIKES, LC_MEMBER_UNLIKES, LC_MEMBER_VIEWS };

/* "1023.ffffffff" and its NUL */
#define LC_SLOT_ID_MAX 14

/** Writes a slot's name ("<node>" or "<node>.<inst>"); returns its length. */
int lc_slot_id_format(char *out, size_t cap, struct lc_slot_id id);

/** Parses a member "<slot>:l", "<slot>:u" or "<slot>:v". */
bool lc_cluster_member_parse(const char *m, size_t len, struct lc_slot_id *id,
			     enum lc_member_kind *kind);

/** Parses a sorted-set score that must be a whole number >= 0. */
bool lc_cluster_score_parse(const char *s, size_t len, int64_t *v);

enum lc_msg_kind { LC_MSG_PLAIN, LC_MSG_BYE, LC_MSG_HELLO, LC_MSG_FULL };

struct lc_msg_header {
	uint32_t node;
	uint64_t boot; /* random per run of a node */
	uint64_t seq;  /* +1 per message of that run */
	enum lc_msg_kind kind;
};

/** One line of a message: a slot's totals of a URL, and its share. */
struct lc_msg_line {
	struct lc_slot_id id; /* inst 0: a share line */
	struct lc_reading r;
	int32_t watching; /* the sender's share; -1: not carried */
	const char *url;
	size_t len;
};

/** Starts a message in b (emptied first). Returns 0 or LC_ENOMEM. */
int lc_msg_begin(struct lc_buf *b, const struct lc_msg_header *h);

/** Appends one line. Returns 0 or LC_ENOMEM. */
int lc_msg_add(struct lc_buf *b, const struct lc_msg_line *l);

/**
 * Parses a message: fills *h, then calls fn once per line. Returns the
 * number of lines, or LC_EINVAL for a malformed message (fn may have been
 * called for the lines before the bad one), or fn's nonzero return.
 */
long lc_msg_parse(const char *p, size_t n, struct lc_msg_header *h,
		  int (*fn)(void *arg, const struct lc_msg_line *l), void *arg);

/* ---- hand-offs ------------------------------------------------------- */

struct lc_remote_item {
	struct lc_slot_id id;
	struct lc_reading r;
	int32_t watching; /* node's share, -1: none (a resync's reading) */
	uint32_t url_off, url_len;
};

/** Slot readings from Redis, for the dispatcher. */
struct lc_remote_batch {
	struct lc_remote_batch *next;
	bool adopt; /* from the first full resync after start (slots.h) */
	/* From a message: its sender, the sender's boot, and whether the
	 * lines list every share of the sender (hello, full). */
	uint32_t sender;
	uint64_t boot;
	bool reset;
	size_t n, cap;
	struct lc_remote_item *items;
	struct lc_buf urls;
};

struct lc_remote_batch *lc_remote_batch_new(bool adopt);
int lc_remote_batch_add(struct lc_remote_batch *b, struct lc_slot_id id,
			struct lc_reading r, int32_t watching, const char *url,
			size_t len);
void lc_remote_batch_free(struct lc_remote_batch *b);

struct lc_cluster_stats {
	_Atomic uint64_t remote_items; /* readings merged */
	_Atomic uint64_t remote_likes; /* likes learnt from other nodes */
	_Atomic uint64_t remote_unlikes;
	_Atomic uint64_t remote_views;
	_Atomic uint64_t adopted_likes; /* own likes adopted from Redis */
	_Atomic uint64_t merge_errors;	/* readings dropped: out of memory */
};

struct lc_cluster {
	uint32_t self;	       /* this node's id */
	struct lc_slot_id own; /* this process's slot (self, its database) */

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

	/*
	 * Watching shares. The subscriber thread stamps every node's last
	 * message (mono us; 0 = never, or it said bye) and boot; the
	 * dispatcher reads them and alone touches `shares`.
	 */
	_Atomic int64_t seen_us[LC_CLUSTER_NODES];
	_Atomic uint64_t boot[LC_CLUSTER_NODES]; /* of its last message */
	/* Our own shares to announce, as message lines (lock), and a request
	 * to announce them all (" full") when a change could not be queued. */
	struct lc_buf shares_out;
	_Atomic bool announce_all;
	struct lc_share_node {
		uint64_t boot; /* of the run whose shares we hold */
		size_t urls;   /* URLs with a share > 0 from that node */
	} shares[LC_CLUSTER_NODES];
	size_t share_nodes; /* nodes with urls > 0 */
	struct lc_cluster_stats stats;
};

int lc_cluster_init(struct lc_cluster *cl, uint32_t self, uint32_t inst);
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

/**
 * Dispatcher: queues this node's new share w of a URL for the bridge to
 * announce. Past LC_SHARES_OUT_MAX bytes waiting, or out of memory, asks
 * for a full announcement instead (announce_all).
 */
void lc_cluster_post_share(struct lc_cluster *cl, const char *url, size_t len,
			   int32_t w);

/** Bridge: takes the queued share lines into *out (swapped). */
void lc_cluster_take_shares(struct lc_cluster *cl, struct lc_buf *out);

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

/* ---- watching shares (dispatcher thread, under slots_lock; slots.c) */

/**
 * Sets node's share of e to w (>= 0) as announced by the run `boot` of
 * that node. Keeps e->remote_watching equal to the sum of the other
 * nodes' shares. Returns the change of e->remote_watching, or LC_ENOMEM
 * (through *rc; nothing changed). A share from a run older than the one
 * held is impossible on one channel; a newer boot must be handled first
 * (lc_shares_boot).
 */
int32_t lc_shares_set(struct lc_cluster *cl, struct lc_entry *e, uint32_t node,
		      int32_t w, int *rc);

/**
 * True when node's shares belong to a run other than `boot`: the caller
 * must drop them (lc_shares_drop) before setting new ones. Records boot.
 */
bool lc_shares_boot(struct lc_cluster *cl, uint32_t node, uint64_t boot);

/**
 * Zeroes e's shares of node (or of every node when node is 0); returns
 * the change of e->remote_watching (<= 0).
 */
int32_t lc_shares_drop(struct lc_cluster *cl, struct lc_entry *e,
		       uint32_t node);

/**
 * The nodes whose shares must go now: silent longer than
 * LC_SHARE_TIMEOUT_MS at now_us, said bye (seen_us 0), or heard with
 * another boot than the shares'. Fills out (cap LC_CLUSTER_NODES),
 * returns how many.
 */
size_t lc_shares_expired(struct lc_cluster *cl, int64_t now_us, uint32_t *out);

#endif
