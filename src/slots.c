/*
 * Per-node slots of an entry and their merge rules (see slots.h).
 *
 * Threads: the dispatcher writes (and main at start-up, before any other
 * thread); the batcher and the bridge read. Every call happens under the
 * counter table's slots_lock, taken by the caller.
 *
 * A note on the own slot after a restart: the base is what this process
 * knows to be in Redis for its slot: its database's totals at start, then
 * every push Redis confirmed. Redis may know more (the database lost a
 * flush in a crash, it is a new, empty one, or another process held the
 * node's lease for a while and added its own likes); the resync after
 * taking the lease therefore "adopts" the reading for our own slot:
 * base = max(base, reading), and the own slot rises by the difference.
 * The bridge pushes nothing of our own slot between taking the lease and
 * the end of that resync, and a push is fenced by the lease, so every
 * reading it adopts was written by an earlier run or another holder, and
 * what this process pushed itself is at most the base (never counted
 * twice).
 */
#include "lc/slots.h"
#include "lc/common.h"

#include <stdlib.h>
#include <string.h>

static struct lc_slot *
slot_get(struct lc_entry *e, uint32_t node, bool create)
{
	struct lc_slots *ss = e->slots;

	for (uint32_t i = 0; ss && i < ss->n; i++)
		if (ss->s[i].node == node)
			return &ss->s[i];
	if (!create)
		return NULL;
	if (!ss || ss->n == ss->cap) {
		uint32_t cap = ss ? ss->cap * 2 : 2;
		struct lc_slots *p =
		    realloc(ss, sizeof(*ss) + cap * sizeof(ss->s[0]));

		if (!p)
			return NULL;
		if (!ss)
			memset(p, 0, sizeof(*p));
		p->cap = cap;
		e->slots = ss = p;
	}
	ss->s[ss->n] = (struct lc_slot){.node = node};
	return &ss->s[ss->n++];
}

const struct lc_slot *
lc_slots_find(const struct lc_entry *e, uint32_t node)
{
	return slot_get((struct lc_entry *)e, node, false);
}

int
lc_slots_add_own_marked(struct lc_entry *e, uint32_t self, int64_t likes,
			int64_t unlikes, int64_t views, int64_t now_ms,
			_Atomic bool *mark)
{
	struct lc_slot *s = slot_get(e, self, true);

	if (!s)
		return LC_ENOMEM;
	s->likes = lc_sat_add(s->likes, likes);
	s->unlikes = lc_sat_add(s->unlikes, unlikes);
	s->views = lc_sat_add(s->views, views);
	lc_entry_add_marked(e, likes, unlikes, views, now_ms, mark);
	return 0;
}

int
lc_slots_add_own(struct lc_entry *e, uint32_t self, int64_t likes,
		 int64_t unlikes, int64_t now_ms)
{
	return lc_slots_add_own_marked(e, self, likes, unlikes, 0, now_ms,
				       NULL);
}

int
lc_slots_merge(struct lc_entry *e, uint32_t self, uint32_t node, int64_t likes,
	       int64_t unlikes, bool adopt, int64_t now_ms, int64_t *dl,
	       int64_t *du)
{
	struct lc_slot *s;

	*dl = *du = 0;
	if (node == self && !adopt)
		return 0; /* we are the authority on our own slot */
	s = slot_get(e, node, true);
	if (!s)
		return LC_ENOMEM;
	if (node == self) {
		struct lc_slots *ss = e->slots;

		if (likes > ss->base_likes) {
			*dl = likes - ss->base_likes;
			ss->base_likes = likes;
		}
		if (unlikes > ss->base_unlikes) {
			*du = unlikes - ss->base_unlikes;
			ss->base_unlikes = unlikes;
		}
	} else {
		if (likes > s->likes)
			*dl = likes - s->likes;
		if (unlikes > s->unlikes)
			*du = unlikes - s->unlikes;
	}
	s->likes += *dl;
	s->unlikes += *du;
	if (*dl || *du)
		lc_entry_add(e, *dl, *du, now_ms);
	return 0;
}

void
lc_slots_confirm(struct lc_entry *e, int64_t likes, int64_t unlikes)
{
	if (!e->slots)
		return;
	if (likes > e->slots->base_likes)
		e->slots->base_likes = likes;
	if (unlikes > e->slots->base_unlikes)
		e->slots->base_unlikes = unlikes;
}

int
lc_slots_load(struct lc_entry *e, uint32_t self, uint32_t node, int64_t likes,
	      int64_t unlikes)
{
	struct lc_slot *s = slot_get(e, node, true);

	if (!s)
		return LC_ENOMEM;
	s->likes = likes;
	s->unlikes = unlikes;
	if (node == self) {
		e->slots->base_likes = likes;
		e->slots->base_unlikes = unlikes;
	}
	return 0;
}

int
lc_slots_settle(struct lc_entry *e, uint32_t self)
{
	struct lc_counts c = lc_entry_read(e);
	int64_t l = 0, u = 0;

	if (!e->slots || !e->slots->n) {
		if (!c.likes && !c.unlikes)
			return 0;
		return lc_slots_load(e, self, self, c.likes, c.unlikes);
	}
	for (uint32_t i = 0; i < e->slots->n; i++) {
		l = lc_sat_add(l, e->slots->s[i].likes);
		u = lc_sat_add(u, e->slots->s[i].unlikes);
	}
	if (l != c.likes || u != c.unlikes)
		lc_entry_add(e, l - c.likes, u - c.unlikes, c.updated_ms);
	return 0;
}
