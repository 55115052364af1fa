/*
 * livecount — client limits: open connections (in total and per client IP)
 * and likes per second per client IP (token buckets).
 *
 * Does: the arithmetic and the counters. Does not: know about sockets or
 * lws; the worker (worker.c) admits and releases connections, the like API
 * (http_likes.c, ws.c) takes tokens.
 *
 * Threads: struct lc_conn_limits is shared by every worker (atomics, no
 * locks); a struct lc_rate_table belongs to one worker (its thread only).
 */
#ifndef LC_LIMITS_H
#define LC_LIMITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define LC_IP_BUCKETS 65536 /* per-IP connection counters (hashed) */
#define LC_RATE_SLOTS 4096  /* per-worker token buckets (direct-mapped) */

/* Open connections, all workers. */
struct lc_conn_limits {
	_Atomic int64_t total;	  /* open connections */
	_Atomic uint32_t *per_ip; /* open connections per IP bucket */
	int64_t max;		  /* effective max_connections */
	int max_per_ip;		  /* 0 = unlimited */
	/* URL bytes subscribed per IP bucket (max_subscribed_bytes_per_ip) */
	_Atomic int64_t *sub_bytes;
};

/** Allocates the per-IP counters. Returns 0 or LC_ENOMEM. Main thread. */
int lc_conn_limits_init(struct lc_conn_limits *l, int64_t max, int max_per_ip);

void lc_conn_limits_cleanup(struct lc_conn_limits *l);

/** The per-IP bucket of an IPv4 address (network byte order). */
uint16_t lc_conn_limits_bucket(uint32_t ip);

/** Counts a new connection; false (and nothing counted) when over a limit. */
bool lc_conn_limits_admit(struct lc_conn_limits *l, uint16_t bucket);

/** Uncounts a connection admitted with lc_conn_limits_admit. */
void lc_conn_limits_release(struct lc_conn_limits *l, uint16_t bucket);

/*
 * What one subscription costs its client IP: the URL's bytes plus this,
 * for the entry, its JSON key and the index nodes a new URL brings.
 */
#define LC_SUB_OVERHEAD_BYTES 256

/**
 * Takes `bytes` of subscriptions for an IP (*acct, one of sub_bytes) with
 * at most `max` in all (0 = no limit); false (nothing taken) past it.
 */
bool lc_sub_bytes_take(_Atomic int64_t *acct, int64_t bytes, int64_t max);

/** Gives back bytes taken with lc_sub_bytes_take. */
void lc_sub_bytes_give(_Atomic int64_t *acct, int64_t bytes);

/* A token bucket for one client IP (likes per second). */
struct lc_rate {
	uint32_t ip;
	int64_t last_ms;
	double tokens;
};

struct lc_rate_table {
	struct lc_rate slot[LC_RATE_SLOTS];
};

/**
 * Takes `cost` like items from ip's bucket at now_ms, with `limit` likes
 * per second (0 = unlimited). Returns 0, or the seconds to wait
 * (Retry-After) when the client is over its rate.
 */
int lc_rate_take(struct lc_rate_table *t, int limit, uint32_t ip, int64_t cost,
		 int64_t now_ms);

#endif
