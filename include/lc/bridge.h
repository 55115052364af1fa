/*
 * livecount — the bridge: cluster mode's link to Redis.
 *
 * Two threads of its own, each with one synchronous hiredis connection
 * with connect and command timeouts, so a stalled or unreachable Redis
 * only ever stalls the bridge: counting and serving never wait for it.
 *   - the command thread pushes this node's own slots (one fenced script
 *     per chunk: ZADD GT + PUBLISH, only while this process holds the
 *     node's lease), publishes a heartbeat every second with the lease
 *     refresh, watches the data set's epoch, runs full resyncs and, with
 *     Sentinel, asks the sentinels every second which Redis is primary;
 *   - the subscriber thread listens on the channel and hands every other
 *     node's readings to the dispatcher (cluster.h), checks each sender's
 *     sequence for gaps, and asks for a resync after every (re)subscribe.
 * Both reconnect with exponential backoff and full jitter.
 *
 * Redis errors: any error reply (OOM, READONLY, NOAUTH, MISCONF, ...) is
 * a failed command. The link is then "degraded" (reason in /v1/stats and
 * livecount_cluster_link_degraded), the log says so at most once per
 * ERROR_LOG_MS with a count of the errors in between, and the items that
 * failed go to the back of the push queue, so one bad item never holds
 * back the others.
 *
 * It does not merge anything itself (the dispatcher does, slots.h) and
 * never calls into a worker.
 */
#ifndef LC_BRIDGE_H
#define LC_BRIDGE_H

#include "lc/cluster.h"
#include "lc/config.h"
#include "lc/counter.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Redis round trips: <= 0.5, 1, 2, 5, 10, 50, 100, 500, 1000 ms, +Inf. */
#define LC_BRIDGE_RTT_BUCKETS 10

enum lc_link_state {
	LC_LINK_DOWN,	  /* no connection, or not synced yet */
	LC_LINK_DEGRADED, /* connected, but Redis refuses commands */
	LC_LINK_UP,	  /* pushing and receiving, synced */
};

struct lc_bridge_stats {
	_Atomic bool link_up;		 /* pushing and receiving, synced */
	_Atomic int link_state;		 /* enum lc_link_state */
	_Atomic uint64_t connects;	 /* successful (re)connections */
	_Atomic uint64_t errors;	 /* failed connects and commands */
	_Atomic uint64_t error_replies;	 /* error replies from Redis */
	_Atomic uint64_t lease_lost;	 /* times another process held it */
	_Atomic uint64_t failovers;	 /* primary changes (Sentinel) */
	_Atomic uint64_t resyncs;	 /* completed full resyncs */
	_Atomic uint64_t resync_ms_last; /* duration of the last one */
	_Atomic uint64_t seq_gaps;	 /* lost pub/sub messages detected */
	_Atomic uint64_t pushed_urls;	 /* own slots written (ZADD GT) */
	_Atomic uint64_t messages_out, bytes_out; /* PUBLISHed */
	_Atomic uint64_t messages_in, bytes_in;	  /* received */
	_Atomic uint64_t commands;		  /* Redis commands sent */
	_Atomic uint64_t pending_urls;		  /* own slots not yet pushed */
	_Atomic int64_t oldest_pending_us;	  /* mono time, 0 = none */
	_Atomic uint64_t rtt_buckets[LC_BRIDGE_RTT_BUCKETS];
	_Atomic uint64_t rtt_us_sum, rtt_count;
};

struct lc_bridge;

/**
 * Starts the bridge for node cl->self against redis_url. When Redis
 * answers, the node's lease is taken first: if another running process
 * holds node id cl->self, if Redis refuses the lease (an error reply such
 * as OOM) or the credentials, returns NULL with the reason in err (exit 2
 * material, never the password). When Redis does not answer, starts
 * anyway (logged) and keeps trying; it writes nothing of its own slot
 * until it holds the lease. Main thread, after the database is loaded.
 */
struct lc_bridge *lc_bridge_start(const char *redis_url, struct lc_counter *c,
				  struct lc_cluster *cl, char *err,
				  size_t errlen);

/**
 * Stops both threads after a last push of what the final tick handed over
 * (bounded by the command timeout), gives the node's lease back (so the
 * node can restart at once), and frees the bridge. Main thread.
 */
void lc_bridge_stop(struct lc_bridge *b);

/** Wakes the command thread (the dispatcher's hand-off hook). Any thread. */
void lc_bridge_wake(void *b);

const struct lc_bridge_stats *lc_bridge_stats(struct lc_bridge *b);

/**
 * {"node_id":N,"link":"up"|"degraded"|"down","link_reason":S|null,
 * "redis":"<masked url>","primary":"HOST:PORT"|null,"nodes":[{"id",
 * "self","link","last_push_age_ms"}...]} for /v1/stats (new reference).
 * Any thread.
 */
json_t *lc_bridge_status_json(struct lc_bridge *b);

/* ---- cluster-wide idempotency keys -------------------------------------
 * A small synchronous Redis client per worker (hiredis contexts are not
 * thread-safe), with a short timeout: a keyed like first claims its key in
 * Redis (lc:idem:<key>, SET-if-absent in one script), so a retry sent to
 * another node is answered there with the first answer. When Redis is
 * slow or the cluster link is down the node falls back to its own table
 * (counted in errors): serving never waits longer than the timeout.
 */
#include "lc/idem.h"

struct lc_redis_kv;

enum lc_kv_claim {
	LC_KV_CLAIMED,	   /* ours: count, then store the answer */
	LC_KV_ANSWERED,	   /* another node's first answer is in *ans */
	LC_KV_PENDING,	   /* another node is counting it right now */
	LC_KV_UNAVAILABLE, /* no Redis answer in time: decide locally */
};

/** A client for redis_url; connects at first use. NULL when out of memory. */
struct lc_redis_kv *lc_redis_kv_create(const char *redis_url,
				       struct lc_bridge *b);
void lc_redis_kv_destroy(struct lc_redis_kv *kv);

/** Claims key for ttl_ms, or reads its first answer. Its own thread. */
enum lc_kv_claim lc_redis_kv_claim(struct lc_redis_kv *kv, const char *key,
				   size_t klen, int64_t ttl_ms,
				   struct lc_idem_answer *ans);

/** Stores the first answer of a claimed key (or drops the claim: NULL). */
void lc_redis_kv_settle(struct lc_redis_kv *kv, const char *key, size_t klen,
			int64_t ttl_ms, const struct lc_idem_answer *ans);

#endif
