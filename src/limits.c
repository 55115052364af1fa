/*
 * Client limits (see limits.h): connection counts and like-rate buckets.
 *
 * Threads: connection counts from any worker (atomics); a rate table from
 * its worker only.
 */
#include "lc/limits.h"
#include "lc/common.h"
#include "lc/hash.h"

#include <stdlib.h>

int
lc_conn_limits_init(struct lc_conn_limits *l, int64_t max, int max_per_ip)
{
	atomic_init(&l->total, 0);
	l->per_ip = calloc(LC_IP_BUCKETS, sizeof(*l->per_ip));
	l->sub_bytes = calloc(LC_IP_BUCKETS, sizeof(*l->sub_bytes));
	l->max = max;
	l->max_per_ip = max_per_ip;
	return l->per_ip && l->sub_bytes ? 0 : LC_ENOMEM;
}

void
lc_conn_limits_cleanup(struct lc_conn_limits *l)
{
	free(l->per_ip);
	free(l->sub_bytes);
	l->per_ip = NULL;
	l->sub_bytes = NULL;
}

bool
lc_sub_bytes_take(_Atomic int64_t *acct, int64_t bytes, int64_t max)
{
	if (atomic_fetch_add(acct, bytes) + bytes > max && max) {
		atomic_fetch_sub(acct, bytes);
		return false;
	}
	return true;
}

void
lc_sub_bytes_give(_Atomic int64_t *acct, int64_t bytes)
{
	atomic_fetch_sub(acct, bytes);
}

uint16_t
lc_conn_limits_bucket(uint32_t ip)
{
	return (uint16_t)(lc_hash_mix(ip) & (LC_IP_BUCKETS - 1));
}

bool
lc_conn_limits_admit(struct lc_conn_limits *l, uint16_t bucket)
{
	uint32_t per_ip;

	if (atomic_fetch_add(&l->total, 1) + 1 > l->max) {
		atomic_fetch_sub(&l->total, 1);
		return false;
	}
	per_ip = atomic_fetch_add(&l->per_ip[bucket], 1) + 1;
	if (l->max_per_ip && per_ip > (uint32_t)l->max_per_ip) {
		atomic_fetch_sub(&l->per_ip[bucket], 1);
		atomic_fetch_sub(&l->total, 1);
		return false;
	}
	return true;
}

void
lc_conn_limits_release(struct lc_conn_limits *l, uint16_t bucket)
{
	atomic_fetch_sub(&l->per_ip[bucket], 1);
	atomic_fetch_sub(&l->total, 1);
}

int
lc_rate_take(struct lc_rate_table *t, int limit, uint32_t ip, int64_t cost,
	     int64_t now)
{
	struct lc_rate *r;

	if (!limit)
		return 0;
	if (cost > limit)
		cost = limit; /* a batch larger than the rate still gets in */
	r = &t->slot[lc_hash_mix(ip) & (LC_RATE_SLOTS - 1)];
	if (r->ip != ip || !r->last_ms) {
		/* Direct-mapped: a new address takes the slot, full bucket. */
		r->ip = ip;
		r->tokens = limit;
		r->last_ms = now;
	}
	r->tokens += (double)(now - r->last_ms) * limit / 1000.0;
	if (r->tokens > limit)
		r->tokens = limit;
	r->last_ms = now;
	if (r->tokens < (double)cost) {
		int wait = (int)(((double)cost - r->tokens) / limit) + 1;

		return wait;
	}
	r->tokens -= (double)cost;
	return 0;
}
