/*
 * livecount — a worker's subscription index: url <-> sessions.
 *
 * Each worker keeps its own index (worker thread only, no locks): entry ->
 * node listing the worker's subscriptions to that URL, and each session
 * holds its subscriptions, each pointing back at its node. Adding and
 * removing a subscription are O(1) (swap-remove inside the node), so a
 * session closing with 100 subscriptions, or 10k sessions leaving one hot
 * URL, never scans.
 *
 * A node also remembers the URL's latest count from the dispatcher (count,
 * delta, seq) and caches the update frames shared by every single-URL
 * session of this worker for that tick: built once, written N times.
 * No libwebsockets here: the frame bytes are opaque to this module.
 */
#ifndef LC_SUBS_H
#define LC_SUBS_H

#include "lc/counter.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lc_sub;

/* One shared frame per transport (delivery.h's enum lc_transport_kind). */
enum { LC_FRAME_KINDS = 2 };

struct lc_subs_node {
	struct lc_entry *e;
	struct lc_sub **subs; /* this worker's subscriptions to e */
	uint32_t n, cap;
	int64_t count, delta; /* latest update applied */
	int64_t views, watching;
	uint64_t seq; /* its tick seq; 0 = none yet */
	int64_t ts_ms;
	/* Shared frames for sessions whose only URL is this one. */
	void *frame_mem[LC_FRAME_KINDS]; /* allocation (owned) */
	char *frame[LC_FRAME_KINDS];	 /* frame bytes inside frame_mem */
	size_t frame_len[LC_FRAME_KINDS];
	uint64_t frame_seq[LC_FRAME_KINDS]; /* seq the frame was built for */
};

/** One session's subscription to one URL. */
struct lc_sub {
	struct lc_subs_node *node;
	uint32_t idx;	    /* position in node->subs */
	bool snapshot_due;  /* a snapshot frame is owed for this URL */
	int64_t last_count; /* count last sent to the client */
	int64_t last_views; /* views and watching last sent */
	int64_t last_watching;
	uint64_t last_seq; /* tick seq of that count */
	void *owner;	   /* the session */
};

struct lc_subs {
	struct lc_subs_node **slots; /* open addressing by entry pointer */
	size_t mask, n;
	size_t subscriptions; /* total lc_sub in the index */
};

int lc_subs_init(struct lc_subs *s);

/** Frees every node; subscriptions must already be gone. */
void lc_subs_cleanup(struct lc_subs *s);

/** The node for e, or NULL. */
struct lc_subs_node *lc_subs_find(struct lc_subs *s, const struct lc_entry *e);

/**
 * Links sub (owner set by the caller) to e, creating the node if needed,
 * and counts it in e->subscribers. Returns 0 or LC_ENOMEM.
 */
int lc_subs_add(struct lc_subs *s, struct lc_entry *e, struct lc_sub *sub);

/** Unlinks sub; frees the node when it was the last one. */
void lc_subs_remove(struct lc_subs *s, struct lc_sub *sub);

#endif
