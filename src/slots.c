/*
 * Per-node slots of an entry and their merge rules (see slots.h).
 *
 * Threads: the dispatcher writes (and main at start-up, before any other
 * thread); the batcher and the bridge read. Every call happens under the
 * counter table's slots_lock, taken by the caller.
 *
 * A note on the own slot after a restart: the base is what this process
 * knows to be in Redis for its slot: its database's totals at start, then
 * every push Redis confirmed. Redis may know more when the database lost
 * its last flush in a crash (the run before pushed likes it never wrote);
 * the first full resync after start therefore "adopts" the reading for
 * our own slot: base = max(base, reading), and the own slot rises by the
 * difference. The bridge pushes nothing of our own slot before that resync
 * ends, and nobody else writes our slot (it is named by our database), so
 * every reading it adopts was written by an earlier run of this database
 * and what this process pushed itself is never counted twice.
 */
#include "lc/slots.h"
#include "lc/cluster.h"
#include "lc/common.h"

#include <stdlib.h>
#include <string.h>

static struct lc_slot *
slot_get(struct lc_entry *e, struct lc_slot_id id, bool create)
{
	struct lc_slots *ss = e->slots;

	for (uint32_t i = 0; ss && i < ss->n; i++)
		if (ss->s[i].node == id.node && ss->s[i].inst == id.inst)
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
	ss->s[ss->n] = (struct lc_slot){.node = id.node, .inst = id.inst};
	return &ss->s[ss->n++];
}

const struct lc_slot *
lc_slots_find(const struct lc_entry *e, struct lc_slot_id id)
{
	return slot_get((struct lc_entry *)e, id, false);
}

int
lc_slots_add_own_marked(struct lc_entry *e, struct lc_slot_id self,
			int64_t likes, int64_t unlikes, int64_t views,
			int64_t now_ms, _Atomic bool *mark)
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
lc_slots_add_own(struct lc_entry *e, struct lc_slot_id self, int64_t likes,
		 int64_t unlikes, int64_t now_ms)
{
	return lc_slots_add_own_marked(e, self, likes, unlikes, 0, now_ms,
				       NULL);
}

/* Raises *have to r (never lowers it); returns by how much. */
static int64_t
raise_to(int64_t *have, int64_t r)
{
	int64_t d = r > *have ? r - *have : 0;

	*have += d;
	return d;
}

int
lc_slots_merge(struct lc_entry *e, struct lc_slot_id self, struct lc_slot_id id,
	       struct lc_reading r, bool adopt, int64_t now_ms,
	       struct lc_reading *d)
{
	bool own = lc_slot_id_eq(id, self);
	struct lc_slot *s;

	*d = (struct lc_reading){0, 0, 0};
	if (own && !adopt)
		return 0; /* we are the authority on our own slot */
	s = slot_get(e, id, true);
	if (!s)
		return LC_ENOMEM;
	if (own) {
		struct lc_slots *ss = e->slots;

		d->likes = raise_to(&ss->base_likes, r.likes);
		d->unlikes = raise_to(&ss->base_unlikes, r.unlikes);
		d->views = raise_to(&ss->base_views, r.views);
		s->likes = lc_sat_add(s->likes, d->likes);
		s->unlikes = lc_sat_add(s->unlikes, d->unlikes);
		s->views = lc_sat_add(s->views, d->views);
	} else {
		d->likes = raise_to(&s->likes, r.likes);
		d->unlikes = raise_to(&s->unlikes, r.unlikes);
		d->views = raise_to(&s->views, r.views);
	}
	if (d->likes || d->unlikes || d->views)
		lc_entry_add_marked(e, d->likes, d->unlikes, d->views, now_ms,
				    NULL);
	return 0;
}

void
lc_slots_confirm(struct lc_entry *e, struct lc_reading r)
{
	if (!e->slots)
		return;
	raise_to(&e->slots->base_likes, r.likes);
	raise_to(&e->slots->base_unlikes, r.unlikes);
	raise_to(&e->slots->base_views, r.views);
}

int
lc_slots_load(struct lc_entry *e, struct lc_slot_id self, struct lc_slot_id id,
	      struct lc_reading r)
{
	struct lc_slot *s = slot_get(e, id, true);

	if (!s)
		return LC_ENOMEM;
	s->likes = r.likes;
	s->unlikes = r.unlikes;
	s->views = r.views;
	if (lc_slot_id_eq(id, self)) {
		e->slots->base_likes = r.likes;
		e->slots->base_unlikes = r.unlikes;
		e->slots->base_views = r.views;
	}
	return 0;
}

int
lc_slots_settle(struct lc_entry *e, struct lc_slot_id self)
{
	struct lc_counts c = lc_entry_read(e);
	int64_t l = 0, u = 0, v = 0;

	if (!e->slots || !e->slots->n) {
		if (!c.likes && !c.unlikes && !c.views)
			return 0;
		return lc_slots_load(
		    e, self, self,
		    (struct lc_reading){c.likes, c.unlikes, c.views});
	}
	for (uint32_t i = 0; i < e->slots->n; i++) {
		l = lc_sat_add(l, e->slots->s[i].likes);
		u = lc_sat_add(u, e->slots->s[i].unlikes);
		v = lc_sat_add(v, e->slots->s[i].views);
	}
	if (l != c.likes || u != c.unlikes)
		lc_entry_add(e, l - c.likes, u - c.unlikes, c.updated_ms);
	/*
	 * Views only grow: a database whose slots were written before
	 * views reached them keeps its views total, given to our own slot.
	 */
	if (v > c.views)
		lc_entry_add_views(e, v - c.views);
	else if (v < c.views) {
		struct lc_slot *own = slot_get(e, self, true);

		if (!own)
			return LC_ENOMEM;
		own->views = lc_sat_add(own->views, c.views - v);
		e->slots->base_views = own->views;
	}
	return 0;
}

/* ---- watching shares (cluster.h) ----------------------------------- */

static void
share_count(struct lc_cluster *cl, uint32_t node, int32_t old, int32_t w)
{
	struct lc_share_node *sn = &cl->shares[node];

	if (!old && w > 0) {
		if (!sn->urls++)
			cl->share_nodes++;
	} else if (old > 0 && !w) {
		if (!--sn->urls)
			cl->share_nodes--;
	}
}

int32_t
lc_shares_set(struct lc_cluster *cl, struct lc_entry *e, uint32_t node,
	      int32_t w, int *rc)
{
	struct lc_slot *s;
	int32_t d;

	*rc = 0;
	if (node == cl->self || node >= LC_CLUSTER_NODES || w < 0)
		return 0;
	s = slot_get(e, (struct lc_slot_id){node, 0}, w > 0);
	if (!s) {
		*rc = w > 0 ? LC_ENOMEM : 0;
		return 0;
	}
	d = w - s->watching;
	share_count(cl, node, s->watching, w);
	s->watching = w;
	if (d)
		atomic_fetch_add_explicit(&e->remote_watching, d,
					  memory_order_relaxed);
	return d;
}

bool
lc_shares_boot(struct lc_cluster *cl, uint32_t node, uint64_t boot)
{
	struct lc_share_node *sn = &cl->shares[node];
	bool other = sn->boot != boot && sn->urls;

	sn->boot = boot;
	return other;
}

int32_t
lc_shares_drop(struct lc_cluster *cl, struct lc_entry *e, uint32_t node)
{
	int32_t d = 0;

	for (uint32_t i = 0; e->slots && i < e->slots->n; i++) {
		struct lc_slot *s = &e->slots->s[i];

		if ((node && s->node != node) || s->watching <= 0)
			continue;
		share_count(cl, s->node, s->watching, 0);
		d -= s->watching;
		s->watching = 0;
	}
	if (d)
		atomic_fetch_add_explicit(&e->remote_watching, d,
					  memory_order_relaxed);
	return d;
}

size_t
lc_shares_expired(struct lc_cluster *cl, int64_t now_us, uint32_t *out)
{
	size_t n = 0;

	if (!cl->share_nodes)
		return 0;
	for (uint32_t i = 1; i < LC_CLUSTER_NODES; i++) {
		int64_t seen;

		if (!cl->shares[i].urls)
			continue;
		seen = atomic_load(&cl->seen_us[i]);
		if (!seen || now_us - seen > LC_SHARE_TIMEOUT_MS * 1000LL ||
		    atomic_load(&cl->boot[i]) != cl->shares[i].boot)
			out[n++] = i;
	}
	return n;
}
