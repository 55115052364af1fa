/*
 * livecount — per-node slots: how a URL's count is shared by the nodes of
 * a cluster, and the merge rules that make it exact.
 *
 * A slot is named by the node id that accepted its likes and the
 * instance of the database it keeps them in (struct lc_slot_id): a random
 * 32-bit id made with the database (store.h) and kept in it. Each slot
 * holds three grow-only absolute totals per URL: the likes, the unlikes
 * and the views that one database accepted (a PN-counter kept as
 * max-registers; README, "How counts stay exact"). A URL's cluster count
 * is the sum over the slots of (likes - unlikes). An entry's slots list
 * every slot's totals as this node knows them; the entry's own counts are
 * kept equal to their sums, so every reader sees cluster totals without
 * knowing about slots.
 *
 * A note on why the database names the slot, not the node id: a slot has
 * one writer, ever. Two processes started with one node id (a lease that
 * lapsed while Redis refused writes, an operator's slip) each have their
 * own database, so each writes its own slot and both sets of likes count;
 * a node restarted with its database keeps its slot; one restarted with an
 * empty database gets a new slot and the old one keeps what it held.
 * Nothing ever has to guess which of two writers' values are whose. Slots
 * of databases from before instances (members "<node>:l") have inst 0 and
 * are read like any other node's: kept, never written again.
 *
 * Merge rules (lc_slots_merge):
 *   - another slot only ever grows: a reading lower than or equal to what
 *     is known (a duplicate, a retry, a late or reordered message) changes
 *     nothing; a higher one adds the difference;
 *   - this process's own slot grows only by its own likes
 *     (lc_slots_add_own), except once, at the first full resync after
 *     start ("adopt"): what Redis holds for it beyond its base (what the
 *     database held at start) was pushed by an earlier run of this
 *     database whose last flush a crash lost, and is added.
 *
 * The slot list of an entry also keeps the other nodes' live shares of
 * "watching now" (lc_shares_set), on a slot of inst 0 of each node.
 *
 * This module does not talk to Redis and does not lock: callers hold the
 * table's slots_lock. Only the dispatcher thread writes.
 */
#ifndef LC_SLOTS_H
#define LC_SLOTS_H

#include "lc/counter.h"

#include <stdbool.h>
#include <stdint.h>

/** Highest node id (node ids are 1..LC_MAX_NODE_ID). */
#define LC_MAX_NODE_ID 1023

/** A slot's name: node id and database instance (0: from before instances). */
struct lc_slot_id {
	uint32_t node, inst;
};

static inline bool
lc_slot_id_eq(struct lc_slot_id a, struct lc_slot_id b)
{
	return a.node == b.node && a.inst == b.inst;
}

struct lc_slot {
	uint32_t node, inst;
	int64_t likes, unlikes; /* that node's absolute totals */
	int64_t views;
	/* Another node's live share of "watching now" (its subscriptions to
	 * the URL) as last announced; only on inst 0, never for self. */
	int32_t watching;
};

struct lc_slots {
	uint32_t n, cap;
	/* Own slot's totals known to be in Redis (loaded, adopted, pushed). */
	int64_t base_likes, base_unlikes, base_views;
	struct lc_slot s[];
};

/**
 * Adds this node's own likes/unlikes (both >= 0) to its slot of e, and to
 * e's counts (stamped now_ms). Returns 0 or LC_ENOMEM (nothing changed).
 */
int lc_slots_add_own(struct lc_entry *e, struct lc_slot_id self, int64_t likes,
		     int64_t unlikes, int64_t now_ms);

/** lc_slots_add_own, setting *mark in the entry's write section
 * (lc_entry_add_marked). */
int lc_slots_add_own_marked(struct lc_entry *e, struct lc_slot_id self,
			    int64_t likes, int64_t unlikes, int64_t views,
			    int64_t now_ms, _Atomic bool *mark);

/** One node's absolute totals of a URL, as read from Redis. */
struct lc_reading {
	int64_t likes, unlikes, views;
};

/**
 * Merges one reading r of slot `id` of e, as received from Redis. For
 * another slot keeps the maximum of each total; for self changes something
 * only when `adopt` (the first full resync after start), then raising
 * the base to the reading and the slot by the same amount. Applies the
 * increase to e's counts (stamped now_ms) and returns it in *d (zeros when
 * nothing changed). Returns 0 or LC_ENOMEM (nothing changed; the reading
 * comes again at the next resync).
 */
int lc_slots_merge(struct lc_entry *e, struct lc_slot_id self,
		   struct lc_slot_id id, struct lc_reading r, bool adopt,
		   int64_t now_ms, struct lc_reading *d);

/**
 * Sets a slot as loaded from the database (start-up, before any thread
 * runs); for self it is also the base. Does not touch e's counts: call
 * lc_slots_settle once every slot is loaded. Returns 0 or LC_ENOMEM.
 */
int lc_slots_load(struct lc_entry *e, struct lc_slot_id self,
		  struct lc_slot_id id, struct lc_reading r);

/**
 * Start-up in cluster mode: makes e's counts the sum of its slots. An entry
 * with counts but no slots (a database from single-node mode, or from
 * before cluster mode) gives those counts to this node's own slot.
 * Returns 0 or LC_ENOMEM.
 */
int lc_slots_settle(struct lc_entry *e, struct lc_slot_id self);

/**
 * The bridge: Redis confirmed own totals r for e: raises the base to
 * them. Caller holds slots_lock.
 */
void lc_slots_confirm(struct lc_entry *e, struct lc_reading r);

/** The slot `id` of e, or NULL. */
const struct lc_slot *lc_slots_find(const struct lc_entry *e,
				    struct lc_slot_id id);

#endif
