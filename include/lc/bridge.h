/*
 * livecount — the bridge: cluster mode's link to Redis.
 *
 * Three threads of its own (four with Sentinel), each with its own
 * hiredis connection with connect and command timeouts, so a stalled or
 * unreachable Redis only ever stalls the bridge: counting and serving
 * never wait for it.
 *   - the command thread pushes this node's own slots (one script per
 *     chunk, fenced by the node's lease: ZADD GT, then one PUBLISH of what
 *     Redis took), refreshes the lease every second with the heartbeat,
 *     watches the data set's epoch, runs full resyncs and, with Sentinel,
 *     asks the sentinels every second which Redis is primary;
 *   - the subscriber thread listens on the channel and hands every other
 *     node's readings to the dispatcher (cluster.h), checks each sender's
 *     sequence for gaps, and asks for a resync after every (re)subscribe;
 *   - the key thread claims and settles cluster-wide idempotency keys for
 *     the workers (below), without blocking, answering each claim within
 *     LC_KV_CLAIM_MS;
 *   - with Sentinel, a watcher subscribed to +switch-master on one
 *     sentinel wakes the command thread the moment a failover is decided.
 * They reconnect with exponential backoff and full jitter.
 *
 * Redis errors: any error reply (OOM, READONLY, NOAUTH, MISCONF, ...) is
 * a failed command. The link is then "degraded" (reason in /v1/stats and
 * livecount_cluster_link_degraded), the log says so at most once per 5 s
 * with a count of the errors in between, and a URL whose write failed
 * waits in a retry list, so one bad item never holds back the others.
 *
 * It does not merge anything itself (the dispatcher does, slots.h). It
 * reaches a worker only through the job's done() (lc_worker_call).
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
	_Atomic bool link_up;	   /* pushing and receiving, synced, keys up */
	_Atomic bool keys_up;	   /* the key thread's connection */
	_Atomic int link_state;	   /* enum lc_link_state */
	_Atomic uint64_t connects; /* successful (re)connections */
	_Atomic uint64_t errors;   /* failed connects and commands */
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
 * A keyed like first claims its key in Redis (lc:idem:<key>: GET, or SET
 * 'pending' for LC_KV_PENDING_MS, in one script), so a retry sent to
 * another node is answered there with the first answer; the claim is then
 * settled with that answer (SET XX for the key's lifetime) or released.
 *
 * Nothing waits for Redis in a worker: a claim is a job handed to the
 * bridge's key thread (its own connection, non-blocking, pipelined), and
 * answered through the job's done() when the reply comes or after
 * LC_KV_CLAIM_MS, whichever is first (then LC_KV_UNAVAILABLE: the worker
 * decides alone). done() runs on the key thread: it must only hand the job
 * to its worker (mailbox + lws_cancel_service). With the link down or
 * degraded a claim is answered LC_KV_UNAVAILABLE at once.
 *
 * Every claim is settled or released: the worker settles after counting,
 * also after LC_KV_UNAVAILABLE (a claim Redis ran late then gets its
 * answer; on no claim, SET XX does nothing), and a claim nobody settles
 * expires after LC_KV_PENDING_MS. An error reply to a settle counts as an
 * error (link degraded) and the claim is released (DEL, allowed under
 * OOM), never taken for success.
 */
#include "lc/idem.h"

#define LC_KV_CLAIM_MS 50
#define LC_KV_PENDING_MS 10000

enum lc_kv_claim {
	LC_KV_CLAIMED,	   /* ours: count, then settle */
	LC_KV_ANSWERED,	   /* another node's first answer is in ans */
	LC_KV_PENDING,	   /* another node is counting it right now */
	LC_KV_UNAVAILABLE, /* no Redis answer in time: decide locally */
};

/*
 * One claim or settle. The caller fills the fields marked "in" and may
 * embed the job in a larger struct (first member). A claim belongs to the
 * bridge from lc_bridge_kv_submit until done(); a settle belongs to the
 * bridge from then on (it frees it with free(): malloc it).
 */
struct lc_kv_job {
	struct lc_kv_job *next; /* the bridge's queue, then the caller's */
	bool settle;		/* in: a settle, else a claim */
	bool release;		/* in (settle): drop the claim, no answer */
	char key[LC_IDEM_KEY_MAX + 1]; /* in: a stored key */
	size_t klen;		       /* in */
	int64_t ttl_ms;		       /* in (settle): the answer's lifetime */
	struct lc_idem_answer ans;     /* settle: in; claim: out (ANSWERED) */
	enum lc_kv_claim result;       /* out (claim) */
	/* in (claim): called once with the result, on the key thread. */
	void (*done)(struct lc_kv_job *j, void *arg);
	void *done_arg;
	int64_t deadline_us; /* the bridge's */
};

/**
 * Hands a claim or a settle to the key thread. A claim's done() may run
 * before this returns (link down: LC_KV_UNAVAILABLE). Any thread.
 */
void lc_bridge_kv_submit(struct lc_bridge *b, struct lc_kv_job *j);

#endif
