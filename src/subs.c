/*
 * A worker's url <-> session subscription index (see subs.h).
 *
 * Worker thread only. The hash is open addressing keyed by the entry
 * pointer (entries are unique and stable per URL), with backward-shift
 * deletion so no tombstones pile up under subscribe/unsubscribe churn.
 */
#include "lc/subs.h"
#include "lc/common.h"
#include "lc/hash.h"

#include <stdlib.h>
#include <string.h>

static size_t
slot_of(const struct lc_subs *s, const struct lc_entry *e)
{
	return lc_hash_mix((uint64_t)(uintptr_t)e) & s->mask;
}

int
lc_subs_init(struct lc_subs *s)
{
	memset(s, 0, sizeof(*s));
	s->slots = calloc(16, sizeof(*s->slots));
	if (!s->slots)
		return LC_ENOMEM;
	s->mask = 15;
	return 0;
}

static void
drop_frames(struct lc_subs_node *node)
{
	for (int k = 0; k < LC_FRAME_KINDS; k++) {
		free(node->frame_mem[k]);
		node->frame_mem[k] = NULL;
		node->frame[k] = NULL;
		node->frame_len[k] = 0;
		node->frame_seq[k] = 0;
	}
}

static void
node_free(struct lc_subs_node *node)
{
	drop_frames(node);
	free(node->subs);
	free(node);
}

void
lc_subs_cleanup(struct lc_subs *s)
{
	for (size_t i = 0; s->slots && i <= s->mask; i++)
		if (s->slots[i])
			node_free(s->slots[i]);
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

struct lc_subs_node *
lc_subs_find(struct lc_subs *s, const struct lc_entry *e)
{
	for (size_t i = slot_of(s, e);; i = (i + 1) & s->mask) {
		if (!s->slots[i])
			return NULL;
		if (s->slots[i]->e == e)
			return s->slots[i];
	}
}

static int
grow(struct lc_subs *s)
{
	size_t cap = (s->mask + 1) * 2;
	struct lc_subs_node **old = s->slots, **slots;
	size_t old_cap = s->mask + 1;

	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return LC_ENOMEM;
	s->slots = slots;
	s->mask = cap - 1;
	for (size_t i = 0; i < old_cap; i++) {
		size_t j;

		if (!old[i])
			continue;
		for (j = slot_of(s, old[i]->e); s->slots[j];
		     j = (j + 1) & s->mask)
			;
		s->slots[j] = old[i];
	}
	free(old);
	return 0;
}

int
lc_subs_add(struct lc_subs *s, struct lc_entry *e, struct lc_sub *sub)
{
	struct lc_subs_node *node = lc_subs_find(s, e);

	if (!node) {
		size_t i;

		if ((s->n + 1) * 2 > s->mask + 1 && grow(s))
			return LC_ENOMEM;
		node = calloc(1, sizeof(*node));
		if (node)
			node->subs = malloc(4 * sizeof(*node->subs));
		if (!node || !node->subs) {
			free(node);
			return LC_ENOMEM;
		}
		node->cap = 4;
		node->e = e;
		for (i = slot_of(s, e); s->slots[i]; i = (i + 1) & s->mask)
			;
		s->slots[i] = node;
		s->n++;
	}
	if (node->n == node->cap) {
		/* Only nodes with members get here, so failing leaves no husk.
		 */
		uint32_t cap = node->cap * 2;
		void *p = realloc(node->subs, cap * sizeof(*node->subs));

		if (!p)
			return LC_ENOMEM;
		node->subs = p;
		node->cap = cap;
	}
	sub->node = node;
	sub->idx = node->n;
	node->subs[node->n++] = sub;
	s->subscriptions++;
	/* seq_cst: the dispatcher's retirement reads it (counter.c). */
	atomic_fetch_add_explicit(&e->subscribers, 1, memory_order_seq_cst);
	return 0;
}

/* Removes slot i, shifting later members of its probe run back. */
static void
slot_delete(struct lc_subs *s, size_t i)
{
	size_t j = i;

	s->slots[i] = NULL;
	for (;;) {
		size_t home;

		j = (j + 1) & s->mask;
		if (!s->slots[j])
			return;
		home = slot_of(s, s->slots[j]->e);
		/* Move j into the hole at i unless its home lies in (i, j]. */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			s->slots[i] = s->slots[j];
			s->slots[j] = NULL;
			i = j;
		}
	}
}

void
lc_subs_remove(struct lc_subs *s, struct lc_sub *sub)
{
	struct lc_subs_node *node = sub->node;
	struct lc_sub *last;

	if (!node)
		return;
	last = node->subs[--node->n];
	node->subs[sub->idx] = last;
	last->idx = sub->idx;
	sub->node = NULL;
	s->subscriptions--;
	atomic_fetch_sub_explicit(&node->e->subscribers, 1,
				  memory_order_relaxed);
	if (node->n)
		return;
	for (size_t i = slot_of(s, node->e);; i = (i + 1) & s->mask)
		if (s->slots[i] == node) {
			slot_delete(s, i);
			break;
		}
	s->n--;
	node_free(node);
}
