/*
 * The bridge to Redis: three threads, three hiredis connections (and a
 * fourth of each with Sentinel: the +switch-master watcher).
 *
 * Threads: lc_bridge_start/stop on main; cmd_main, sub_main and kv_main
 * on their own threads; lc_bridge_wake from the dispatcher;
 * lc_bridge_kv_submit from workers; the stats from any worker. The push
 * queue, the epoch, the lease and the command connection belong to the
 * command thread; the peers' sequence numbers to the subscriber; the key
 * connection and its in-flight FIFO to the key thread.
 *
 * A note on synchronous hiredis: 0.14.1's async API has no timeouts, no
 * reconnect and a libuv adapter that never reports a refused connect
 * (read in the hiredis v0.14.1 sources: the async API and its libuv
 * adapter). Its synchronous API has both timeouts
 * (redisConnectWithTimeout, redisSetTimeout), and a thread per connection
 * makes blocking harmless: a SIGSTOPped Redis costs the bridge a timeout,
 * nobody else anything. Each round trip is a pipeline (append N commands,
 * read N replies), so a push of 512 URLs is one round trip. The key
 * thread, which must answer each claim within 50 ms whatever Redis does,
 * drives its connection without blocking instead (see kv_main).
 *
 * A note on correctness: pub/sub is only the fast path. The state is in
 * Redis (ZADD GT of absolute totals: never lowered, a retry or a late
 * duplicate is harmless), and after every (re)subscribe, sequence gap,
 * lost reply, change of epoch or of primary, and recovery from error
 * replies, the command thread runs a full resync: read every key (SCAN +
 * ZRANGE) into the dispatcher, then write every slot this node knows (ZADD
 * GT), which also repopulates a Redis that restarted empty. Our own slot
 * (named by our database, slots.h) is written only through the push
 * script fenced by the node's lease, and not before the first resync
 * after start has adopted what an earlier run of our database left in
 * Redis.
 *
 * A note on errors: an error reply is a failed command, never success
 * (note_error: counted, the reason kept for /v1/stats, logged at most once
 * per ERROR_LOG_MS); a URL Redis refuses waits in a retry list.
 */
#define _GNU_SOURCE
#include "lc/bridge.h"
#include "lc/common.h"
#include "lc/config.h"
#include "lc/dispatch.h"
#include "lc/slots.h"

#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 1000
#define COMMAND_TIMEOUT_MS 2000
/* Our own heartbeat comes back every second; silence this long = dead. */
#define SUB_TIMEOUT_MS 3000
#define BEAT_MS 1000
#define LEASE_MS 10000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PUSH_CHUNK 512
#define SCAN_COUNT 1000
/* Readings waiting for the dispatcher before the bridge holds back. */
#define INBOX_MAX 1000000
#define PEER_DOWN_MS 3000
/* Repeated errors: one log line per this long, with a count. */
#define ERROR_LOG_MS 5000
/* An error reply this recent makes the link "degraded". */
#define DEGRADED_MS 3000
/* Items that failed wait this long before they are tried again. */
#define ERROR_RETRY_MS 1000
/* With Sentinel: ask which Redis is primary this often. */
#define SENTINEL_CHECK_MS 1000
#define SENTINEL_BACKOFF_MAX_MS 1000
/* lease(): Redis answered with an error. */
#define LEASE_ERR (-100)

struct peer {
	uint64_t boot, seq;	 /* subscriber thread only */
	_Atomic int64_t seen_us; /* last message, mono; 0 = never */
};

struct lc_bridge {
	struct lc_redis_url url; /* holds the password: never logged */
	char url_masked[600];
	char host[256]; /* the Redis in use (the primary with Sentinel) */
	int port, db;
	uint32_t self;
	struct lc_slot_id own;	       /* our slot (slots.h) */
	char own_name[LC_SLOT_ID_MAX]; /* its name in Redis */
	uint64_t boot;
	char lease[160]; /* "<boot> <host> <pid>" */
	char lease_key[32], gen_key[40];
	struct lc_counter *counter;
	struct lc_cluster *cl;

	pthread_t cmd_thread, sub_thread;
	pthread_mutex_t lock; /* guards work, stopping, sub, host/port */
	pthread_cond_t cond;
	bool work, stopping;
	redisContext *sub;   /* for stop: shutdown() interrupts a read */
	redisContext *watch; /* the sentinel watcher's, likewise */
	pthread_t watch_thread;
	bool watch_started;
	_Atomic bool switch_seen; /* +switch-master heard: ask at once */

	/* Errors, from both threads: guarded by elock. */
	pthread_mutex_t elock;
	char reason[256];	     /* the last error, for /v1/stats */
	int64_t last_reply_error_us; /* mono; degraded while recent */
	int64_t last_log_us;	     /* mono; rate limit of the log */
	uint64_t unlogged;	     /* errors since the last log line */
	char auth_err[640];	     /* a refused AUTH (start-up) */
	int sentinel_next;	     /* the sentinel to ask first */

	/* command thread only */
	redisContext *cmd;
	struct lc_entry **q; /* FIFO of own entries to push */
	size_t q_head, q_n, q_cap;
	bool synced;	 /* the first (adopting) resync after start done */
	bool lease_held; /* confirmed by the last lease round trip */
	bool lease_lost; /* another process holds it (logged once) */
	int64_t gen;	 /* the lease generation we hold; 0 = never held */
	bool was_degraded;
	char epoch[40];
	uint64_t seq_out;
	int64_t backoff_ms, next_connect_us, next_beat_us;
	int64_t push_hold_us, resync_hold_us, next_sentinel_us;
	struct lc_buf msg;
	struct lc_buf args; /* the push script's arguments */
	size_t *argo;	    /* their offsets in args, then lengths */
	const char **argv;
	size_t *argl;
	struct lc_slot *vals; /* the values of a push, per item */
	struct lc_buf shares; /* share lines taken from the dispatcher */
	bool hello_due;	      /* announce ours with a hello (after a resync) */
	/* The key thread (cluster-wide idempotency keys). */
	pthread_t kv_thread;
	pthread_mutex_t kv_lock; /* guards kv_in, kv_in_tail, kv_stop */
	struct lc_kv_job *kv_in, *kv_in_tail;
	bool kv_stop;
	_Atomic bool kv_started; /* set once at start */
	int kv_efd;		 /* eventfd: wakes the key thread */
	redisContext *kv;	 /* key thread only, from here on */
	struct kv_rec *kv_q;	 /* in flight, FIFO */
	size_t kv_head, kv_n, kv_cap;
	int64_t kv_retry_us;
	pthread_t kv_dial_thread;  /* dials the key connection */
	bool kv_dialing;	   /* key thread only */
	bool kv_dial_done;	   /* kv_lock */
	redisContext *kv_dialed;   /* kv_lock: the dial's result */
	struct lc_kv_job *kv_held; /* settles waiting for a connection */
	size_t kv_held_n;
	struct lc_entry **rq; /* refused by Redis: retried at retry_at_us */
	size_t rq_n, rq_cap;
	int64_t retry_at_us;

	_Atomic bool sub_up;
	_Atomic uint64_t resync_asked, resync_done; /* generations */
	_Atomic int64_t last_push_us;
	struct peer peers[LC_MAX_NODE_ID + 1];
	struct lc_bridge_stats stats;
	struct lc_reader qs; /* walks the table: reclamation waits for it */
};

static uint64_t
random_u64(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (uint64_t)lc_mono_us() * 0x9e3779b97f4a7c15ULL ^
		    (uint64_t)getpid();
	return v;
}

/*
 * Exponential backoff with full jitter: a random wait in [min, cap]. With
 * Sentinel the cap is 1 s: a failover takes seconds, and the sentinels
 * know the new primary as soon as it is promoted.
 */
static int64_t
next_backoff(const struct lc_bridge *b, int64_t *cur)
{
	int64_t max =
	    b->url.nsentinels ? SENTINEL_BACKOFF_MAX_MS : BACKOFF_MAX_MS;
	int64_t cap = *cur ? *cur * 2 : BACKOFF_MIN_MS;

	if (cap > max)
		cap = max;
	*cur = cap;
	return BACKOFF_MIN_MS +
	       (int64_t)(random_u64() % (uint64_t)(cap - BACKOFF_MIN_MS + 1));
}

static void
note_rtt(struct lc_bridge *b, int64_t us)
{
	static const int64_t bounds_us[LC_BRIDGE_RTT_BUCKETS - 1] = {
	    500, 1000, 2000, 5000, 10000, 50000, 100000, 500000, 1000000};
	size_t i = 0;

	while (i < LC_BRIDGE_RTT_BUCKETS - 1 && us > bounds_us[i])
		i++;
	atomic_fetch_add(&b->stats.rtt_buckets[i], 1);
	atomic_fetch_add(&b->stats.rtt_us_sum, (uint64_t)us);
	atomic_fetch_add(&b->stats.rtt_count, 1);
}

/*
 * Notes an error: counted, kept as the reason shown by /v1/stats, logged at
 * most once per ERROR_LOG_MS with the count of those not logged. An error
 * reply (reply = true) makes the link "degraded" for DEGRADED_MS. Any
 * bridge thread.
 */
static void
note_error(struct lc_bridge *b, bool reply, const char *what, const char *msg)
{
	int64_t now = lc_mono_us();
	uint64_t more = 0;
	bool log = false;

	atomic_fetch_add(&b->stats.errors, 1);
	if (reply)
		atomic_fetch_add(&b->stats.error_replies, 1);
	pthread_mutex_lock(&b->elock);
	snprintf(b->reason, sizeof(b->reason), "%s: %s", what, msg);
	if (reply)
		b->last_reply_error_us = now;
	if (!b->last_log_us || now - b->last_log_us >= ERROR_LOG_MS * 1000) {
		log = true;
		more = b->unlogged;
		b->unlogged = 0;
		b->last_log_us = now;
	} else {
		b->unlogged++;
	}
	pthread_mutex_unlock(&b->elock);
	if (log && more)
		lc_warn("cluster: %s: %s (and %llu more Redis errors in the "
			"last %d s)",
			what, msg, (unsigned long long)more,
			ERROR_LOG_MS / 1000);
	else if (log)
		lc_warn("cluster: %s: %s", what, msg);
}

static bool
is_auth_error(const char *e)
{
	return !strncmp(e, "NOAUTH", 6) || !strncmp(e, "WRONGPASS", 9) ||
	       !strncmp(e, "NOPERM", 6) ||
	       strstr(e, "invalid password") != NULL ||
	       strstr(e, "AUTH <password> called without") != NULL;
}

/* A plain connection with the connect and command timeouts. */
static redisContext *
dial(const char *host, int port, int timeout_ms)
{
	struct timeval ct = {CONNECT_TIMEOUT_MS / 1000,
			     CONNECT_TIMEOUT_MS % 1000 * 1000};
	struct timeval rt = {timeout_ms / 1000, timeout_ms % 1000 * 1000};
	redisContext *c = redisConnectWithTimeout(host, port, ct);

	if (c && !c->err)
		redisSetTimeout(c, rt);
	return c;
}

/*
 * Sentinel: asks the sentinels, in turn from the last one that answered,
 * for the primary of url.master. Returns true with host/port filled.
 */
static bool
ask_sentinels(struct lc_bridge *b, char *host, size_t hostlen, int *port)
{
	int n = b->url.nsentinels, first;

	/* The command and subscriber threads both ask (elock). */
	pthread_mutex_lock(&b->elock);
	first = b->sentinel_next;
	pthread_mutex_unlock(&b->elock);
	for (int k = 0; k < n; k++) {
		int i = (first + k) % n;
		const struct lc_redis_addr *a = &b->url.sentinels[i];
		redisContext *c = dial(a->host, a->port, CONNECT_TIMEOUT_MS);
		redisReply *r = NULL;

		if (c && !c->err)
			r = redisCommand(c,
					 "SENTINEL get-master-addr-by-name %s",
					 b->url.master);
		if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		    r->element[0]->type == REDIS_REPLY_STRING &&
		    r->element[1]->type == REDIS_REPLY_STRING &&
		    r->element[0]->len < hostlen) {
			memcpy(host, r->element[0]->str,
			       r->element[0]->len + 1);
			*port = atoi(r->element[1]->str);
			freeReplyObject(r);
			redisFree(c);
			pthread_mutex_lock(&b->elock);
			b->sentinel_next = i;
			pthread_mutex_unlock(&b->elock);
			return true;
		}
		lc_debug("cluster: sentinel %s:%d: %s", a->host, a->port,
			 r && r->type == REDIS_REPLY_ERROR ? r->str
			 : r	       ? "does not know the master"
			 : c && c->err ? c->errstr
				       : "no answer");
		if (r)
			freeReplyObject(r);
		if (c)
			redisFree(c);
	}
	return false;
}

/* Sets the Redis in use (logged when it changes); true if it changed. */
static bool
set_primary(struct lc_bridge *b, const char *host, int port)
{
	bool changed;

	pthread_mutex_lock(&b->lock);
	changed = strcmp(b->host, host) || b->port != port;
	if (changed) {
		if (b->host[0] && b->url.nsentinels) {
			lc_warn("cluster: the primary of '%s' is now %s:%d "
				"(was %s:%d)",
				b->url.master, host, port, b->host, b->port);
			atomic_fetch_add(&b->stats.failovers, 1);
		}
		snprintf(b->host, sizeof(b->host), "%s", host);
		b->port = port;
	}
	pthread_mutex_unlock(&b->lock);
	return changed;
}

/*
 * Connects to the Redis in use (asking the sentinels first with
 * Sentinel), authenticates, selects the database and checks that it
 * answers (and, with Sentinel, that it is a primary). NULL on failure,
 * counted and logged (rate-limited); a refused AUTH also fills auth_err.
 */
static redisContext *
connect_redis(struct lc_bridge *b, int timeout_ms, const char *who)
{
	char host[256], why[300] = "";
	int port;
	redisContext *c = NULL;
	redisReply *r = NULL;

	if (b->url.nsentinels) {
		if (!ask_sentinels(b, host, sizeof(host), &port)) {
			note_error(b, false, "sentinels",
				   "no sentinel named a primary");
			return NULL;
		}
		set_primary(b, host, port);
	} else {
		pthread_mutex_lock(&b->lock);
		snprintf(host, sizeof(host), "%s", b->host);
		port = b->port;
		pthread_mutex_unlock(&b->lock);
	}
	c = dial(host, port, timeout_ms);
	if (!c || c->err) {
		snprintf(why, sizeof(why), "%s",
			 c ? c->errstr : "out of memory");
		goto fail;
	}
	/*
	 * A stopped Redis still completes the TCP handshake (the kernel
	 * does it), so a connection means nothing until a command answers.
	 */
	if (b->url.pass[0]) {
		if (b->url.user[0])
			r = redisCommand(c, "AUTH %s %s", b->url.user,
					 b->url.pass);
		else
			r = redisCommand(c, "AUTH %s", b->url.pass);
		if (!r || r->type == REDIS_REPLY_ERROR)
			goto fail_reply;
		freeReplyObject(r);
	}
	if (b->url.nsentinels)
		r = redisCommand(c, "ROLE");
	else if (b->db)
		r = redisCommand(c, "SELECT %d", b->db);
	else
		r = redisCommand(c, "PING");
	if (!r || r->type == REDIS_REPLY_ERROR)
		goto fail_reply;
	if (b->url.nsentinels) {
		bool primary = r->type == REDIS_REPLY_ARRAY && r->elements &&
			       r->element[0]->type == REDIS_REPLY_STRING &&
			       !strcmp(r->element[0]->str, "master");

		freeReplyObject(r);
		r = NULL;
		if (!primary) {
			snprintf(why, sizeof(why),
				 "not a primary (yet): asking the sentinels "
				 "again");
			goto fail;
		}
		if (b->db) {
			r = redisCommand(c, "SELECT %d", b->db);
			if (!r || r->type == REDIS_REPLY_ERROR)
				goto fail_reply;
		}
	}
	if (r)
		freeReplyObject(r);
	atomic_fetch_add(&b->stats.connects, 1);
	return c;
fail_reply:
	if (r && r->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "%s", r->str);
		if (is_auth_error(r->str)) {
			pthread_mutex_lock(&b->elock);
			snprintf(b->auth_err, sizeof(b->auth_err),
				 "Redis at %s:%d refused %s (%s)", host, port,
				 b->url.pass[0]
				     ? "the credentials in redis_url"
				     : "to serve without a password: give it "
				       "in redis_url as "
				       "redis://[USER]:PASSWORD@HOST:PORT",
				 r->str);
			pthread_mutex_unlock(&b->elock);
		}
	} else {
		snprintf(why, sizeof(why), "%s",
			 c->err ? c->errstr : "no answer");
	}
fail : {
	char what[400];

	snprintf(what, sizeof(what), "%s connection to %s:%d failed", who, host,
		 port);
	note_error(b, r && r->type == REDIS_REPLY_ERROR, what, why);
}
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The lease: one running process per node id. */

/*
 * The lease and its generation. KEYS: lc:node:<id>, lc:nodegen:<id>.
 * ARGV: our value, ttl ms, the generation we hold (0: none), force ("1":
 * take it from a holder that is gone), a channel and a heartbeat message
 * (published only when the lease is ours, so another process's node id
 * never shows up in our sequence). Returns the generation held (an
 * integer), or the other holder (a string). A lease that expired and was
 * held by nobody else meanwhile (same generation) is simply taken back;
 * a new holder gets a new generation, which tells the previous one that
 * another process ran with its node id meanwhile (logged; that process
 * wrote its own database's slot, slots.h).
 */
static const char lease_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "local g = tonumber(redis.call('GET', KEYS[2]) or '0') "
    "if v ~= ARGV[1] then "
    "  if v ~= false and ARGV[4] ~= '1' then return v end "
    "  if v ~= false or g == 0 or g ~= tonumber(ARGV[3]) then "
    "    g = redis.call('INCR', KEYS[2]) end "
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
    "if ARGV[6] and ARGV[6] ~= '' then "
    "  redis.call('PUBLISH', ARGV[5], ARGV[6]) end "
    "return g";

/* Gives the lease back at a clean stop (only if it is still ours). */
static const char release_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "  if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end "
    "  return redis.call('DEL', KEYS[1]) end return 0";

/*
 * Announces watching shares, fenced by the lease like a push. KEYS: the
 * lease. ARGV: our lease value, the channel, the message. Returns 1, or
 * the error "LCLEASE <holder>".
 */
static const char announce_script[] =
    "local h = redis.call('GET', KEYS[1]) "
    "if h ~= ARGV[1] then "
    "  return redis.error_reply('LCLEASE ' .. tostring(h)) end "
    "redis.call('PUBLISH', ARGV[2], ARGV[3]) return 1";

/*
 * The push, fenced by the lease. KEYS: the lease, then one key per URL.
 * ARGV: our lease value, the channel, the message header, our slot's
 * name, then per URL: likes, unlikes, views, its message line. Writes
 * each URL's own totals with ZADD GT and publishes the lines of those
 * Redis took, in one message. Returns {first error or "", lines
 * published, failed index...} or the error "LCLEASE <holder>" when the
 * lease is not ours: one process per node id writes and publishes.
 */
static const char push_script[] =
    "local h = redis.call('GET', KEYS[1]) "
    "if h ~= ARGV[1] then "
    "  return redis.error_reply('LCLEASE ' .. tostring(h)) end "
    "local ml, mu, mv = ARGV[4] .. ':l', ARGV[4] .. ':u', ARGV[4] .. ':v' "
    "local msg, res, err = {ARGV[3]}, {'', 0}, nil "
    "for i = 2, #KEYS do "
    "  local a = 5 + (i - 2) * 4 "
    "  local r = redis.pcall('ZADD', KEYS[i], 'GT', ARGV[a], ml, "
    "                        ARGV[a + 1], mu, ARGV[a + 2], mv) "
    "  if type(r) == 'table' and r.err then "
    "    err = err or r.err res[#res + 1] = i - 1 "
    "  else msg[#msg + 1] = ARGV[a + 3] end "
    "end "
    "if #msg > 1 then redis.call('PUBLISH', ARGV[2], table.concat(msg)) end "
    "res[1] = err or '' res[2] = #msg - 1 "
    "return res";

/* True when the other holder is a process of this host that is gone. */
static bool
holder_is_dead_here(const char *holder)
{
	char host[128], mine[128];
	unsigned long long boot;
	long pid;

	if (sscanf(holder, "%llx %127s %ld", &boot, host, &pid) != 3)
		return false;
	if (gethostname(mine, sizeof(mine)))
		return false;
	mine[sizeof(mine) - 1] = '\0';
	return !strcmp(host, mine) && pid > 0 && kill((pid_t)pid, 0) &&
	       errno == ESRCH;
}

/*
 * Takes or refreshes the lease (publishing msg, when not NULL, if it is
 * ours). Returns 0 with *gen set, LC_EBUSY with the holder in `holder`,
 * LEASE_ERR with Redis's error in `holder` (an error reply: OOM, ...), or
 * LC_EIO when Redis did not answer (the connection is then unusable).
 */
static int
lease(struct lc_bridge *b, redisContext *c, const struct lc_buf *msg,
      int64_t *gen, char *holder, size_t hlen)
{
	char ttl[16], mygen[24];

	snprintf(ttl, sizeof(ttl), "%d", LEASE_MS);
	snprintf(mygen, sizeof(mygen), "%" PRId64, b->gen);
	for (int force = 0; force < 2; force++) {
		const char *argv[10] = {"EVAL",
					lease_script,
					"2",
					b->lease_key,
					b->gen_key,
					b->lease,
					ttl,
					mygen,
					force ? "1" : "0",
					LC_CLUSTER_CHANNEL};
		size_t argl[11];
		const char *av[11];
		redisReply *r;

		for (int i = 0; i < 10; i++) {
			av[i] = argv[i];
			argl[i] = strlen(argv[i]);
		}
		av[10] = msg ? msg->p : "";
		argl[10] = msg ? msg->n : 0;
		r = redisCommandArgv(c, 11, av, argl);
		if (!r)
			return LC_EIO;
		if (r->type == REDIS_REPLY_INTEGER) {
			*gen = r->integer;
			freeReplyObject(r);
			if (msg) {
				atomic_fetch_add(&b->stats.messages_out, 1);
				atomic_fetch_add(&b->stats.bytes_out, msg->n);
			}
			return 0;
		}
		if (r->type != REDIS_REPLY_STRING) {
			snprintf(holder, hlen, "%s",
				 r->type == REDIS_REPLY_ERROR ? r->str
							      : "odd reply");
			freeReplyObject(r);
			return LEASE_ERR;
		}
		snprintf(holder, hlen, "%s", r->str);
		freeReplyObject(r);
		if (!holder_is_dead_here(holder))
			return LC_EBUSY;
		lc_info("cluster: node %u's lease was held by a process of "
			"this host that is gone (%s); taking it over",
			b->self, holder);
	}
	return LC_EBUSY;
}

/*
 * What a lease round trip tells the command thread. A new generation
 * means another process held our node id meanwhile: it wrote its own
 * database's slot, never ours (slots.h), so nothing is adopted; a resync
 * reads its slot. Returns the lease() code.
 */
static int
lease_round(struct lc_bridge *b, const struct lc_buf *msg)
{
	char holder[300];
	int64_t gen = 0;
	int rc = lease(b, b->cmd, msg, &gen, holder, sizeof(holder));

	atomic_fetch_add(&b->stats.commands, 1);
	if (rc == 0) {
		if (b->lease_lost)
			lc_info("cluster: node id %u's lease is ours again",
				b->self);
		if (gen != b->gen) {
			if (b->gen) {
				lc_warn("cluster: node id %u was held by "
					"another process meanwhile "
					"(generation %" PRId64 " -> %" PRId64
					"); its likes are in its own slot",
					b->self, b->gen, gen);
				atomic_fetch_add(&b->resync_asked, 1);
			}
			b->gen = gen;
		}
		b->lease_held = true;
		b->lease_lost = false;
	} else if (rc == LC_EBUSY) {
		char why[400];

		b->lease_held = false;
		if (!b->lease_lost)
			atomic_fetch_add(&b->stats.lease_lost, 1);
		b->lease_lost = true;
		snprintf(why, sizeof(why),
			 "held by another process (%s); not writing it until "
			 "it is ours again",
			 holder);
		note_error(b, true, "node id lease", why);
	} else if (rc == LEASE_ERR) {
		/* Not known to be ours any more: the fence stops our pushes. */
		note_error(b, true, "lease refresh", holder);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* The push queue (command thread). */

static void
queue_add(struct lc_bridge *b, struct lc_entry *e)
{
	if (e->push_queued)
		return;
	if (b->q_n == b->q_cap) {
		size_t cap = b->q_cap ? b->q_cap * 2 : 1024;
		struct lc_entry **q = malloc(cap * sizeof(*q));

		if (!q) {
			/* The next resync pushes every slot anyway. */
			atomic_fetch_add(&b->stats.errors, 1);
			atomic_fetch_add(&b->resync_asked, 1);
			return;
		}
		for (size_t i = 0; i < b->q_n; i++)
			q[i] = b->q[(b->q_head + i) % b->q_cap];
		free(b->q);
		b->q = q;
		b->q_head = 0;
		b->q_cap = cap;
	}
	if (!b->q_n)
		atomic_store(&b->stats.oldest_pending_us, lc_mono_us());
	e->push_queued = true;
	b->q[(b->q_head + b->q_n++) % b->q_cap] = e;
	atomic_store(&b->stats.pending_urls, b->q_n);
}

static void
take_own(struct lc_bridge *b)
{
	struct lc_entry **own;
	size_t n = lc_cluster_take_own(b->cl, &own);

	for (size_t i = 0; i < n; i++)
		queue_add(b, own[i]);
	free(own);
}

/* "HOST:PORT" of the Redis in use (the other thread may change it). */
static const char *
cur_addr(struct lc_bridge *b, char *out, size_t cap)
{
	pthread_mutex_lock(&b->lock);
	snprintf(out, cap, "%s:%d", b->host, b->port);
	pthread_mutex_unlock(&b->lock);
	return out;
}

static void
drop_cmd(struct lc_bridge *b, const char *why)
{
	char addr[300], what[320], msg[300];

	if (!b->cmd)
		return;
	snprintf(what, sizeof(what), "link to Redis %s down",
		 cur_addr(b, addr, sizeof(addr)));
	snprintf(msg, sizeof(msg), "%s; counting locally", why);
	note_error(b, false, what, msg);
	redisFree(b->cmd);
	b->cmd = NULL;
	b->lease_held = false;
	atomic_store(&b->stats.link_up, false);
	atomic_store(&b->stats.link_state, LC_LINK_DOWN);
	b->next_connect_us =
	    lc_mono_us() + next_backoff(b, &b->backoff_ms) * 1000;
}

/* With Sentinel, a READONLY (or similar) reply means: ask again. */
static bool
primary_moved(const char *e)
{
	return !strncmp(e, "READONLY", 8) || !strncmp(e, "MASTERDOWN", 10);
}

/*
 * Reads n pipelined replies; false on any failure: an error reply (noted,
 * the connection kept, but dropped on READONLY to ask the sentinels
 * again) or a lost connection (dropped).
 */
static bool
read_replies(struct lc_bridge *b, size_t n, int64_t t0, const char *what)
{
	bool ok = true, moved = false;

	for (size_t i = 0; i < n; i++) {
		redisReply *r = NULL;

		if (redisGetReply(b->cmd, (void **)&r) != REDIS_OK || !r) {
			drop_cmd(b, b->cmd->err ? b->cmd->errstr : what);
			return false;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			if (ok)
				note_error(b, true, what, r->str);
			moved |= primary_moved(r->str);
			ok = false;
		}
		freeReplyObject(r);
	}
	atomic_fetch_add(&b->stats.commands, n);
	note_rtt(b, lc_mono_us() - t0);
	if (moved)
		drop_cmd(b, "the server is not the primary any more");
	return ok;
}

static void
append_zadd(struct lc_bridge *b, const char *url, size_t len,
	    const struct lc_slot *s, uint32_t n)
{
	/* ZADD key GT (score member) x 3n */
	const char *argv[3 + 6 * 8];
	size_t argl[3 + 6 * 8];
	char key[LC_CLUSTER_KEY_HEAD + 2048 + 1];
	char nums[6 * 8][LC_SLOT_ID_MAX + 8];
	uint32_t done = 0;

	/* More than 8 slots: several ZADDs of 8 nodes each. */
	while (done < n) {
		int argc = 3;
		uint32_t k = n - done < 8 ? n - done : 8;

		argv[0] = "ZADD";
		argl[0] = 4;
		argl[1] = lc_cluster_key(key, sizeof(key), url, len);
		argv[1] = key;
		argv[2] = "GT";
		argl[2] = 2;
		for (uint32_t i = 0; i < k; i++) {
			const struct lc_slot *x = &s[done + i];
			const int64_t v[3] = {x->likes, x->unlikes, x->views};
			static const char kind[3] = {'l', 'u', 'v'};

			for (int j = 0; j < 3; j++) {
				char *sc = nums[6 * i + 2 * j];
				char *mb = nums[6 * i + 2 * j + 1];

				size_t ml = (size_t)lc_slot_id_format(
				    mb, LC_SLOT_ID_MAX,
				    (struct lc_slot_id){x->node, x->inst});

				argl[argc] =
				    (size_t)snprintf(sc, 24, "%" PRId64, v[j]);
				argv[argc++] = sc;
				mb[ml++] = ':';
				mb[ml++] = kind[j];
				mb[ml] = '\0';
				argl[argc] = ml;
				argv[argc++] = mb;
			}
		}
		redisAppendCommandArgv(b->cmd, argc, argv, argl);
		done += k;
	}
}

static bool
begin_msg(struct lc_bridge *b)
{
	struct lc_msg_header h = {b->self, b->boot, ++b->seq_out};

	return lc_msg_begin(&b->msg, &h) == 0;
}

/* Appends one argument of the push script (its offset is kept). */
static bool
arg_add(struct lc_bridge *b, size_t *argc, const void *p, size_t n)
{
	b->argo[*argc] = b->args.n;
	b->argl[*argc] = n;
	(*argc)++;
	return lc_buf_add(&b->args, p, n) == 0;
}

static bool
arg_addi(struct lc_bridge *b, size_t *argc, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRId64, v);

	return arg_add(b, argc, num, (size_t)n);
}

/*
 * Takes the queue's head off; one that Redis refused waits in the retry
 * list (ERROR_RETRY_MS), so it never holds back the queue behind it.
 */
static void
queue_pop(struct lc_bridge *b, bool failed)
{
	struct lc_entry *e = b->q[b->q_head];

	b->q_head = (b->q_head + 1) % b->q_cap;
	b->q_n--;
	if (!failed) {
		e->push_queued = false;
		return;
	}
	if (b->rq_n == b->rq_cap) {
		size_t cap = b->rq_cap ? b->rq_cap * 2 : 256;
		struct lc_entry **rq = realloc(b->rq, cap * sizeof(*rq));

		if (!rq) {
			/* The next resync pushes every slot anyway. */
			e->push_queued = false;
			atomic_fetch_add(&b->resync_asked, 1);
			return;
		}
		b->rq = rq;
		b->rq_cap = cap;
	}
	if (!b->rq_n)
		b->retry_at_us = lc_mono_us() + ERROR_RETRY_MS * 1000;
	b->rq[b->rq_n++] = e;
}

/* Puts the entries that waited their ERROR_RETRY_MS back in the queue. */
static void
retry_due(struct lc_bridge *b)
{
	size_t n = b->rq_n;

	if (!n || lc_mono_us() < b->retry_at_us)
		return;
	b->rq_n = 0;
	for (size_t i = 0; i < n; i++) {
		b->rq[i]->push_queued = false;
		queue_add(b, b->rq[i]);
	}
}

/*
 * Pushes up to `max` (<= PUSH_CHUNK) queued own slots in one round trip:
 * the fenced push script (ZADD GT per URL, one PUBLISH of those Redis
 * took). Entries leave the queue once Redis has taken them; those it
 * refused wait in the retry list, so the others go on. Returns false when
 * nothing more should be pushed now (the whole call failed).
 */
static bool
push_some(struct lc_bridge *b, size_t max)
{
	size_t k = b->q_n < max ? b->q_n : max, argc = 0, hlen;
	int64_t t0 = lc_mono_us();
	redisReply *r = NULL;
	size_t nfailed = 0, published = 0;
	bool ok = true, moved = false;

	if (!b->argo) {
		size_t n = 8 + 5 * PUSH_CHUNK;

		b->argo = malloc(n * sizeof(*b->argo));
		b->argl = malloc(n * sizeof(*b->argl));
		b->argv = malloc(n * sizeof(*b->argv));
		b->vals = malloc(PUSH_CHUNK * sizeof(*b->vals));
		if (!b->argo || !b->argl || !b->argv || !b->vals)
			return false;
	}
	if (!begin_msg(b))
		return false;
	hlen = b->msg.n;
	b->args.n = 0;
	ok &= arg_add(b, &argc, "EVAL", 4);
	ok &= arg_add(b, &argc, push_script, sizeof(push_script) - 1);
	ok &= arg_addi(b, &argc, (int64_t)k + 1);
	ok &= arg_add(b, &argc, b->lease_key, strlen(b->lease_key));
	for (size_t i = 0; i < k; i++) {
		struct lc_entry *e = b->q[(b->q_head + i) % b->q_cap];
		char key[LC_CLUSTER_KEY_HEAD + 2048 + 1];
		const struct lc_slot *own;
		struct lc_slot sl = {.node = b->own.node, .inst = b->own.inst};

		pthread_mutex_lock(&b->counter->slots_lock);
		own = lc_slots_find(e, b->own);
		if (own)
			sl = *own;
		pthread_mutex_unlock(&b->counter->slots_lock);
		b->vals[i] = sl;
		ok &= arg_add(
		    b, &argc, key,
		    lc_cluster_key(key, sizeof(key), e->url, e->url_len));
	}
	ok &= arg_add(b, &argc, b->lease, strlen(b->lease));
	ok &= arg_add(b, &argc, LC_CLUSTER_CHANNEL, strlen(LC_CLUSTER_CHANNEL));
	ok &= arg_add(b, &argc, b->msg.p, hlen);
	ok &= arg_add(b, &argc, b->own_name, strlen(b->own_name));
	for (size_t i = 0; i < k && ok; i++) {
		struct lc_entry *e = b->q[(b->q_head + i) % b->q_cap];
		size_t before = b->msg.n;

		struct lc_msg_line l = {
		    b->own,
		    {b->vals[i].likes, b->vals[i].unlikes, b->vals[i].views},
		    -1,
		    e->url,
		    e->url_len};

		ok &= arg_addi(b, &argc, b->vals[i].likes);
		ok &= arg_addi(b, &argc, b->vals[i].unlikes);
		ok &= arg_addi(b, &argc, b->vals[i].views);
		ok &= lc_msg_add(&b->msg, &l) == 0;
		if (ok)
			ok &= arg_add(b, &argc, b->msg.p + before,
				      b->msg.n - before);
	}
	if (!ok) {
		b->seq_out--;
		atomic_fetch_add(&b->stats.errors, 1);
		return false; /* out of memory: the next wake tries again */
	}
	for (size_t i = 0; i < argc; i++)
		b->argv[i] = b->args.p + b->argo[i];
	r = redisCommandArgv(b->cmd, (int)argc, b->argv, b->argl);
	atomic_fetch_add(&b->stats.commands, 1);
	if (!r) {
		b->seq_out--;
		drop_cmd(b, b->cmd->err ? b->cmd->errstr : "push failed");
		return false;
	}
	note_rtt(b, lc_mono_us() - t0);
	if (r->type == REDIS_REPLY_ERROR) {
		b->seq_out--;
		if (!strncmp(r->str, "LCLEASE", 7)) {
			/* Not ours (any more): the next beat finds out. */
			b->lease_held = false;
			b->next_beat_us = 0;
			note_error(b, true, "push",
				   "node id lease not held; holding back");
		} else {
			note_error(b, true, "push", r->str);
			if (primary_moved(r->str))
				drop_cmd(b, "the server is not the primary "
					    "any more");
		}
		b->push_hold_us = lc_mono_us() + ERROR_RETRY_MS * 1000;
		freeReplyObject(r);
		return false;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_INTEGER) {
		b->seq_out--;
		note_error(b, true, "push", "unexpected reply");
		b->push_hold_us = lc_mono_us() + ERROR_RETRY_MS * 1000;
		freeReplyObject(r);
		return false;
	}
	published = (size_t)r->element[1]->integer;
	if (!published)
		b->seq_out--; /* nothing went out under that number */
	else {
		atomic_fetch_add(&b->stats.messages_out, 1);
		atomic_fetch_add(&b->stats.bytes_out, b->msg.n);
	}
	nfailed = r->elements - 2;
	if (nfailed)
		note_error(b, true, "push", r->element[0]->str);
	moved = nfailed && primary_moved(r->element[0]->str);
	{
		size_t next_bad = 2;

		for (size_t i = 0; i < k; i++) {
			bool bad =
			    next_bad < r->elements &&
			    r->element[next_bad]->type == REDIS_REPLY_INTEGER &&
			    (size_t)r->element[next_bad]->integer == i + 1;

			if (bad) {
				next_bad++;
			} else {
				struct lc_entry *e = b->q[b->q_head];

				pthread_mutex_lock(&b->counter->slots_lock);
				lc_slots_confirm(
				    e, (struct lc_reading){b->vals[i].likes,
							   b->vals[i].unlikes,
							   b->vals[i].views});
				pthread_mutex_unlock(&b->counter->slots_lock);
			}
			queue_pop(b, bad);
		}
	}
	freeReplyObject(r);
	atomic_store(&b->stats.pending_urls, b->q_n + b->rq_n);
	if (!b->q_n && !b->rq_n)
		atomic_store(&b->stats.oldest_pending_us, 0);
	else if (!b->rq_n)
		atomic_store(&b->stats.oldest_pending_us, lc_mono_us());
	atomic_fetch_add(&b->stats.pushed_urls, k - nfailed);
	if (k > nfailed)
		atomic_store(&b->last_push_us, lc_mono_us());
	if (moved) {
		/* A replica now (Sentinel failover): ask again. */
		drop_cmd(b, "the server is not the primary any more");
		return false;
	}
	return true;
}

/*
 * Pushes what is queued now, once (those Redis refuses wait for their
 * retry): only while this process holds the lease and has adopted its
 * slot, and not during a hold after a failed call.
 */
static void
push_all(struct lc_bridge *b)
{
	size_t budget;

	retry_due(b);
	budget = b->q_n;
	while (budget && b->cmd && b->synced && b->lease_held &&
	       lc_mono_us() >= b->push_hold_us) {
		size_t k = budget < PUSH_CHUNK ? budget : PUSH_CHUNK;

		if (!push_some(b, k))
			break;
		budget -= k;
	}
}

/* ------------------------------------------------------------------ */
/* Watching shares (command thread): what this node announces. */

static void
share_line_cb(struct lc_entry *e, void *arg)
{
	struct lc_bridge *b = arg;
	int32_t w = atomic_load_explicit(&e->subscribers, memory_order_relaxed);
	struct lc_msg_line l = {{b->self, 0}, {0, 0, 0}, w, e->url, e->url_len};

	if (w > 0 && lc_msg_add(&b->msg, &l))
		atomic_store(&b->cl->announce_all, true); /* again, later */
}

/*
 * Announces this node's shares of "watching now", fenced by the lease:
 * every share > 0 at once (a " hello" after our resync, a " full" when a
 * node asked for it or a change could not be queued), else the changes
 * the dispatcher queued (at most one per URL per watching_interval_ms).
 * Held while this process does not hold the lease or has not synced.
 */
static void
announce(struct lc_bridge *b)
{
	struct lc_msg_header h = {b->self, b->boot, 0, LC_MSG_PLAIN};
	const char *argv[7];
	size_t argl[7];
	redisReply *r;
	bool full;

	if (!b->cmd || !b->synced || !b->lease_held ||
	    lc_mono_us() < b->push_hold_us)
		return;
	full = b->hello_due || atomic_exchange(&b->cl->announce_all, false);
	lc_cluster_take_shares(b->cl, &b->shares);
	if (!full && !b->shares.n)
		return;
	h.seq = ++b->seq_out;
	h.kind = b->hello_due ? LC_MSG_HELLO
		 : full	      ? LC_MSG_FULL
			      : LC_MSG_PLAIN;
	if (lc_msg_begin(&b->msg, &h))
		goto nomem;
	if (full) {
		/* Every current share: what was queued is older. */
		lc_reader_enter(&b->qs);
		lc_counter_foreach(b->counter, share_line_cb, b);
		lc_reader_exit(&b->qs);
	} else if (lc_buf_add(&b->msg, b->shares.p, b->shares.n))
		goto nomem;
	b->shares.n = 0;
	argv[0] = "EVAL";
	argv[1] = announce_script;
	argv[2] = "1";
	argv[3] = b->lease_key;
	argv[4] = b->lease;
	argv[5] = LC_CLUSTER_CHANNEL;
	argv[6] = b->msg.p;
	for (int i = 0; i < 6; i++)
		argl[i] = strlen(argv[i]);
	argl[6] = b->msg.n;
	r = redisCommandArgv(b->cmd, 7, argv, argl);
	atomic_fetch_add(&b->stats.commands, 1);
	if (!r) {
		b->seq_out--;
		atomic_store(&b->cl->announce_all, true);
		drop_cmd(b, b->cmd->err ? b->cmd->errstr : "announce failed");
		return;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		b->seq_out--;
		atomic_store(&b->cl->announce_all, true);
		if (!strncmp(r->str, "LCLEASE", 7)) {
			b->lease_held = false;
			b->next_beat_us = 0;
		} else
			note_error(b, true, "announce", r->str);
		b->push_hold_us = lc_mono_us() + ERROR_RETRY_MS * 1000;
	} else {
		b->hello_due = false;
		atomic_fetch_add(&b->stats.messages_out, 1);
		atomic_fetch_add(&b->stats.bytes_out, b->msg.n);
	}
	freeReplyObject(r);
	return;
nomem:
	b->seq_out--;
	b->shares.n = 0;
	atomic_store(&b->cl->announce_all, true);
	atomic_fetch_add(&b->stats.errors, 1);
}

/* ------------------------------------------------------------------ */
/* Resync (command thread). */

struct reading {
	struct lc_slot_id id;
	struct lc_reading r;
};

/* Turns one ZRANGE WITHSCORES reply into readings of the batch. */
static int
add_key_readings(struct lc_remote_batch *batch, const char *url, size_t len,
		 const redisReply *r)
{
	struct reading rd[64];
	size_t n = 0;

	if (r->type != REDIS_REPLY_ARRAY)
		return 0;
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *m = r->element[i], *sc = r->element[i + 1];
		struct lc_slot_id id;
		enum lc_member_kind kind;
		int64_t v;
		size_t j;

		if (m->type != REDIS_REPLY_STRING ||
		    sc->type != REDIS_REPLY_STRING ||
		    !lc_cluster_member_parse(m->str, m->len, &id, &kind) ||
		    !lc_cluster_score_parse(sc->str, sc->len, &v))
			continue;
		for (j = 0; j < n && !lc_slot_id_eq(rd[j].id, id); j++)
			;
		if (j == n) {
			if (n == 64) {
				/* Flush a full set and keep going. */
				for (size_t k = 0; k < n; k++)
					if (lc_remote_batch_add(batch, rd[k].id,
								rd[k].r, -1,
								url, len))
						return LC_ENOMEM;
				n = j = 0;
			}
			rd[n++] = (struct reading){id, {0, 0, 0}};
		}
		if (kind == LC_MEMBER_UNLIKES)
			rd[j].r.unlikes = v;
		else if (kind == LC_MEMBER_VIEWS)
			rd[j].r.views = v;
		else
			rd[j].r.likes = v;
	}
	for (size_t k = 0; k < n; k++)
		if (lc_remote_batch_add(batch, rd[k].id, rd[k].r, -1, url, len))
			return LC_ENOMEM;
	return 0;
}

static bool
stopping(struct lc_bridge *b)
{
	bool s;

	pthread_mutex_lock(&b->lock);
	s = b->stopping;
	pthread_mutex_unlock(&b->lock);
	return s;
}

/* Hands a batch to the dispatcher, waiting while its inbox is full. */
static void
post_batch(struct lc_bridge *b, struct lc_remote_batch *batch)
{
	while (lc_cluster_remote_pending(b->cl) > INBOX_MAX && !stopping(b))
		usleep(5000);
	if (batch->n)
		lc_cluster_post_remote(b->cl, batch);
	else
		lc_remote_batch_free(batch);
}

/* Reads every livecount key into the dispatcher. */
static bool
resync_read(struct lc_bridge *b, bool adopt)
{
	char cursor[32] = "0";

	do {
		int64_t t0 = lc_mono_us();
		redisReply *r = redisCommand(
		    b->cmd, "SCAN %s MATCH " LC_CLUSTER_KEY_PREFIX "* COUNT %d",
		    cursor, SCAN_COUNT);
		struct lc_remote_batch *batch;
		redisReply *keys;

		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[0]->len >= sizeof(cursor)) {
			if (r)
				freeReplyObject(r);
			drop_cmd(b, "SCAN failed");
			return false;
		}
		note_rtt(b, lc_mono_us() - t0);
		memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
		keys = r->element[1];
		t0 = lc_mono_us();
		for (size_t i = 0; i < keys->elements; i++)
			redisAppendCommand(b->cmd, "ZRANGE %b 0 -1 WITHSCORES",
					   keys->element[i]->str,
					   (size_t)keys->element[i]->len);
		batch = lc_remote_batch_new(adopt);
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *z = NULL;
			const char *url;
			size_t len;

			if (redisGetReply(b->cmd, (void **)&z) != REDIS_OK ||
			    !z) {
				freeReplyObject(r);
				lc_remote_batch_free(batch);
				drop_cmd(b, "ZRANGE failed");
				return false;
			}
			if (batch &&
			    lc_cluster_key_url(keys->element[i]->str,
					       keys->element[i]->len, &url,
					       &len) &&
			    add_key_readings(batch, url, len, z)) {
				lc_remote_batch_free(batch);
				batch = NULL;
			}
			freeReplyObject(z);
		}
		atomic_fetch_add(&b->stats.commands, keys->elements + 1);
		if (keys->elements)
			note_rtt(b, lc_mono_us() - t0);
		freeReplyObject(r);
		if (!batch) {
			atomic_fetch_add(&b->stats.errors, 1);
			return false; /* out of memory: try again later */
		}
		post_batch(b, batch);
	} while (strcmp(cursor, "0") && !stopping(b));
	return !stopping(b);
}

struct repush {
	struct lc_bridge *b;
	size_t pending; /* commands appended, replies not read */
	int64_t t0;
	bool ok;
};

static void
repush_cb(struct lc_entry *e, void *arg)
{
	struct repush *rp = arg;
	struct lc_bridge *b = rp->b;
	struct lc_slot s[32], *sl = s;
	uint32_t n = 0;

	if (!rp->ok)
		return;
	bool own = false;

	pthread_mutex_lock(&b->counter->slots_lock);
	if (e->slots && e->slots->n) {
		n = e->slots->n;
		if (n > 32)
			sl = malloc(n * sizeof(*sl));
		if (sl) {
			/* Ours goes through the fenced push, not here. */
			uint32_t k = 0;

			for (uint32_t i = 0; i < n; i++) {
				const struct lc_slot *x = &e->slots->s[i];

				if (lc_slot_id_eq(
					(struct lc_slot_id){x->node, x->inst},
					b->own))
					own = true;
				else if (x->likes || x->unlikes || x->views)
					sl[k++] = *x; /* not a share's alone */
			}
			n = k;
		}
	}
	pthread_mutex_unlock(&b->counter->slots_lock);
	if (own)
		queue_add(b, e);
	if (!n)
		return;
	if (!sl) {
		rp->ok = false;
		return;
	}
	if (!rp->pending)
		rp->t0 = lc_mono_us();
	append_zadd(b, e->url, e->url_len, sl, n);
	rp->pending += (n + 7) / 8;
	if (sl != s)
		free(sl);
	if (rp->pending >= SCAN_COUNT) {
		/* An error reply is noted (degraded), not a failed resync. */
		read_replies(b, rp->pending, rp->t0, "resync push");
		rp->ok = b->cmd != NULL;
		rp->pending = 0;
	}
}

/*
 * Writes every slot this node knows: the others' copies here (ZADD GT, a
 * copy never lowers anything), ours queued for the fenced push.
 */
static bool
resync_write(struct lc_bridge *b)
{
	struct repush rp = {b, 0, 0, true};

	lc_reader_enter(&b->qs);
	lc_counter_foreach(b->counter, repush_cb, &rp);
	lc_reader_exit(&b->qs);
	if (rp.ok && rp.pending)
		read_replies(b, rp.pending, rp.t0, "resync push");
	return rp.ok && b->cmd;
}

static void
resync(struct lc_bridge *b)
{
	uint64_t gen = atomic_load(&b->resync_asked);
	int64_t t0 = lc_mono_us();
	bool adopt = !b->synced;
	char addr[300];

	atomic_store(&b->stats.link_up, false);
	if (!resync_read(b, adopt)) {
		b->resync_hold_us = lc_mono_us() + ERROR_RETRY_MS * 1000;
		return;
	}
	/*
	 * Our own slot may be pushed once the dispatcher has merged what
	 * was adopted: a push before that would confirm (lc_slots_confirm)
	 * a value without the adopted difference, and lose it.
	 */
	if (adopt) {
		uint64_t t = lc_cluster_takes(b->cl);

		while (!stopping(b) && (lc_cluster_remote_pending(b->cl) ||
					lc_cluster_takes(b->cl) < t + 2))
			usleep(2000);
	}
	/* From here on every reading of our own slot was merged: push. */
	b->synced = true;
	/*
	 * What we counted while cut off goes out (published) first: the
	 * other nodes learn it now, not after the write-back of every slot
	 * we know (for 100k URLs that write-back takes seconds).
	 */
	push_all(b);
	if (!resync_write(b)) {
		b->resync_hold_us = lc_mono_us() + ERROR_RETRY_MS * 1000;
		return;
	}
	atomic_store(&b->resync_done, gen);
	/* We may have missed shares meanwhile: ask every node for all. */
	b->hello_due = true;
	atomic_fetch_add(&b->stats.resyncs, 1);
	atomic_store(&b->stats.resync_ms_last,
		     (uint64_t)(lc_mono_us() - t0) / 1000);
	lc_info("cluster: resync with %s done in %lld ms%s",
		cur_addr(b, addr, sizeof(addr)),
		(long long)(lc_mono_us() - t0) / 1000,
		adopt ? " (the first: what Redis holds of our slot adopted)"
		      : "");
}

/* ------------------------------------------------------------------ */
/* Heartbeat, lease and epoch (command thread), one round trip. */

static const char epoch_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false then redis.call('SET', KEYS[1], ARGV[1]) v = ARGV[1] end "
    "return v";

/* Interrupts the subscriber's read: it reconnects (to a new primary). */
static void
kick_subscriber(struct lc_bridge *b)
{
	pthread_mutex_lock(&b->lock);
	if (b->sub)
		shutdown(b->sub->fd, SHUT_RDWR);
	pthread_mutex_unlock(&b->lock);
}

/* Sentinel: the primary moved (a failover): reconnect both links. */
static void
check_primary(struct lc_bridge *b)
{
	char host[256];
	int port;

	if (!b->url.nsentinels || (lc_mono_us() < b->next_sentinel_us &&
				   !atomic_exchange(&b->switch_seen, false)))
		return;
	b->next_sentinel_us = lc_mono_us() + SENTINEL_CHECK_MS * 1000;
	if (!ask_sentinels(b, host, sizeof(host), &port) ||
	    !set_primary(b, host, port))
		return;
	drop_cmd(b, "the sentinels named a new primary");
	b->next_connect_us = 0;
	kick_subscriber(b);
}

/*
 * Sentinel: a thread subscribed to +switch-master on one sentinel (in
 * turn after a lost connection), so a failover is acted on the moment the
 * sentinels decide it; the command thread's once-a-second question stays
 * as the safety net (a pub/sub message can be lost).
 */
static void *
watch_main(void *arg)
{
	struct lc_bridge *b = arg;
	int64_t backoff = 0;

	for (int i = 0; !stopping(b); i = (i + 1) % b->url.nsentinels) {
		const struct lc_redis_addr *a = &b->url.sentinels[i];
		redisContext *c = dial(a->host, a->port, CONNECT_TIMEOUT_MS);
		redisReply *r = NULL;

		if (c && !c->err) {
			/* Subscribed: no read timeout, stop shuts it down. */
			struct timeval none = {0, 0};

			r = redisCommand(c, "SUBSCRIBE +switch-master");
			redisSetTimeout(c, none);
		}
		if (!r || r->type != REDIS_REPLY_ARRAY) {
			if (r)
				freeReplyObject(r);
			if (c)
				redisFree(c);
			for (int64_t t = 0, ms = next_backoff(b, &backoff);
			     t < ms && !stopping(b); t += 50)
				usleep(50000);
			continue;
		}
		freeReplyObject(r);
		backoff = 0;
		pthread_mutex_lock(&b->lock);
		b->watch = c;
		/* Stop sets stopping, then shuts b->watch down, both locked. */
		if (b->stopping)
			shutdown(c->fd, SHUT_RDWR);
		pthread_mutex_unlock(&b->lock);
		while (!stopping(b)) {
			r = NULL;
			if (redisGetReply(c, (void **)&r) != REDIS_OK || !r)
				break;
			/* "message", "+switch-master", "<master> <old> <new>"
			 */
			if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
			    r->element[2]->type == REDIS_REPLY_STRING &&
			    !strncmp(r->element[2]->str, b->url.master,
				     strlen(b->url.master)) &&
			    r->element[2]->str[strlen(b->url.master)] == ' ') {
				lc_info(
				    "cluster: sentinel %s:%d: +switch-master "
				    "%s",
				    a->host, a->port, r->element[2]->str);
				atomic_store(&b->switch_seen, true);
				lc_bridge_wake(b);
			}
			freeReplyObject(r);
		}
		pthread_mutex_lock(&b->lock);
		b->watch = NULL;
		pthread_mutex_unlock(&b->lock);
		redisFree(c);
	}
	return NULL;
}

static void
beat(struct lc_bridge *b)
{
	char fresh[40];
	int64_t t0 = lc_mono_us();
	redisReply *r = NULL;
	int rc;

	snprintf(fresh, sizeof(fresh), "%016" PRIx64, random_u64());
	if (!begin_msg(b))
		return;
	/* The heartbeat rides the lease refresh: published only if ours. */
	rc = lease_round(b, &b->msg);
	if (rc)
		b->seq_out--;
	if (rc == LC_EIO) {
		drop_cmd(b,
			 b->cmd->err ? b->cmd->errstr : "lease refresh failed");
		return;
	}
	note_rtt(b, lc_mono_us() - t0);
	r = redisCommand(b->cmd, "EVAL %s 1 lc:meta %s", epoch_script, fresh);
	atomic_fetch_add(&b->stats.commands, 1);
	if (!r) {
		drop_cmd(b,
			 b->cmd->err ? b->cmd->errstr : "epoch check failed");
		return;
	}
	if (r->type == REDIS_REPLY_STRING && r->len < sizeof(b->epoch)) {
		if (b->epoch[0] && strcmp(b->epoch, r->str)) {
			lc_warn("cluster: Redis lost its data (epoch %s -> "
				"%s); repopulating it",
				b->epoch, r->str);
			atomic_fetch_add(&b->resync_asked, 1);
		}
		memcpy(b->epoch, r->str, r->len + 1);
	} else if (r->type == REDIS_REPLY_ERROR) {
		note_error(b, true, "epoch check", r->str);
		if (primary_moved(r->str))
			drop_cmd(b, "the server is not the primary any more");
	}
	freeReplyObject(r);
}

/* ------------------------------------------------------------------ */

static bool
resync_pending(struct lc_bridge *b)
{
	if (atomic_exchange(&b->cl->resync_wanted, false))
		atomic_fetch_add(&b->resync_asked, 1);
	return atomic_load(&b->resync_asked) != atomic_load(&b->resync_done);
}

static void
update_link(struct lc_bridge *b)
{
	int64_t last_err;
	bool err_recent, connected = b->cmd && atomic_load(&b->sub_up);
	int st;

	pthread_mutex_lock(&b->elock);
	last_err = b->last_reply_error_us;
	pthread_mutex_unlock(&b->elock);
	err_recent = last_err && lc_mono_us() - last_err < DEGRADED_MS * 1000;
	if (connected && !err_recent && b->lease_held && b->was_degraded) {
		/* Redis takes commands again: make sure it holds everything. */
		b->was_degraded = false;
		atomic_fetch_add(&b->resync_asked, 1);
	}
	if (!connected)
		st = LC_LINK_DOWN;
	else if (err_recent || !b->lease_held)
		st = LC_LINK_DEGRADED;
	else if (b->synced && !resync_pending(b) &&
		 (atomic_load(&b->stats.keys_up) || !b->kv_started))
		st = LC_LINK_UP;
	else
		st = LC_LINK_DOWN; /* syncing */
	if (st == LC_LINK_DEGRADED)
		b->was_degraded = true;
	if (st != atomic_load(&b->stats.link_state)) {
		char addr[300];

		if (st == LC_LINK_UP)
			lc_info("cluster: link to Redis %s up (node %u)",
				cur_addr(b, addr, sizeof(addr)), b->self);
		else if (st == LC_LINK_DEGRADED)
			lc_warn("cluster: link to Redis %s degraded: Redis "
				"refuses commands or node id %u's lease",
				cur_addr(b, addr, sizeof(addr)), b->self);
	}
	atomic_store(&b->stats.link_state, st);
	atomic_store(&b->stats.link_up, st == LC_LINK_UP);
}

static void
release_lease(struct lc_bridge *b)
{
	struct lc_msg_header h = {b->self, b->boot, b->seq_out + 1, LC_MSG_BYE};
	redisReply *r;
	bool bye;

	if (!b->cmd || !b->lease_held)
		return;
	/* " bye": the other nodes drop our watchers at once. */
	bye = lc_msg_begin(&b->msg, &h) == 0;

	r = redisCommand(b->cmd, "EVAL %s 1 %s %s %s %b", release_script,
			 b->lease_key, b->lease, LC_CLUSTER_CHANNEL,
			 bye ? b->msg.p : "", bye ? b->msg.n : (size_t)0);
	if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
		lc_info("cluster: node id %u's lease given back", b->self);
	else
		lc_warn("cluster: could not give node id %u's lease back (%s); "
			"it expires in %d s",
			b->self,
			r && r->type == REDIS_REPLY_ERROR ? r->str
			: r				  ? "not ours"
							  : "no answer",
			LEASE_MS / 1000);
	if (r)
		freeReplyObject(r);
}

static void *
cmd_main(void *arg)
{
	struct lc_bridge *b = arg;

	for (;;) {
		int64_t now = lc_mono_us(), wake = b->next_beat_us;
		struct timespec ts;
		bool stop;

		if (!b->cmd && b->next_connect_us < wake)
			wake = b->next_connect_us;
		if (b->rq_n && b->retry_at_us < wake)
			wake = b->retry_at_us;
		pthread_mutex_lock(&b->lock);
		if (!b->work && !b->stopping && wake > now) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t ns = ts.tv_nsec + (wake - now) * 1000;

			ts.tv_sec += ns / 1000000000;
			ts.tv_nsec = ns % 1000000000;
			pthread_cond_timedwait(&b->cond, &b->lock, &ts);
		}
		b->work = false;
		stop = b->stopping;
		pthread_mutex_unlock(&b->lock);

		take_own(b);
		now = lc_mono_us();
		if (!b->cmd && now >= b->next_connect_us && !stop) {
			b->cmd =
			    connect_redis(b, COMMAND_TIMEOUT_MS, "command");
			if (b->cmd) {
				int rc = lease_round(b, NULL);

				if (rc == 0)
					b->backoff_ms = 0;
				else if (rc == LC_EIO)
					drop_cmd(b, "lease failed");
				if (b->cmd)
					b->next_beat_us = 0;
			} else
				b->next_connect_us =
				    now +
				    next_backoff(b, &b->backoff_ms) * 1000;
		}
		if (!stop)
			check_primary(b);
		if (b->cmd && lc_mono_us() >= b->next_beat_us) {
			b->next_beat_us = lc_mono_us() + BEAT_MS * 1000;
			beat(b);
		}
		if (b->cmd && b->lease_held && atomic_load(&b->sub_up) &&
		    resync_pending(b) && !stop &&
		    lc_mono_us() >= b->resync_hold_us)
			resync(b);
		push_all(b);
		announce(b);
		update_link(b);
		if (stop)
			break;
	}
	if (b->q_n || b->rq_n)
		lc_warn("cluster: %zu URLs not pushed to Redis at stop; they "
			"are in the database and pushed at the next start",
			b->q_n + b->rq_n);
	release_lease(b);
	if (b->cmd)
		redisFree(b->cmd);
	b->cmd = NULL;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Subscriber thread. */

struct sub_ctx {
	struct lc_bridge *b;
	struct lc_remote_batch *batch;
};

static int
on_line(void *arg, const struct lc_msg_line *l)
{
	struct sub_ctx *s = arg;

	if (!s->batch && !(s->batch = lc_remote_batch_new(false)))
		return LC_ENOMEM;
	return lc_remote_batch_add(s->batch, l->id, l->r, l->watching, l->url,
				   l->len);
}

static void
on_message(struct lc_bridge *b, const char *p, size_t n)
{
	struct sub_ctx s = {b, NULL};
	struct lc_msg_header h;
	struct peer *peer;
	long rc;

	atomic_fetch_add(&b->stats.messages_in, 1);
	atomic_fetch_add(&b->stats.bytes_in, n);
	if (n > 4 && p[0] == 'l' && p[1] == 'c' && p[3] == ' ' &&
	    memcmp(p, LC_CLUSTER_MSG_MAGIC, 3)) {
		/*
		 * Another version's message (lc2: slots named by node id
		 * alone; lc1: before views and watching
		 * reached the cluster): a resync would not help. Said once.
		 */
		static _Atomic bool said;

		if (!atomic_exchange(&said, true))
			lc_warn("cluster: a node speaks %.3s, not "
				"" LC_CLUSTER_MSG_MAGIC ": its messages are "
				"ignored (run one version on every node)",
				p);
		return;
	}
	rc = lc_msg_parse(p, n, &h, on_line, &s);
	if (rc < 0) {
		lc_warn("cluster: malformed message on " LC_CLUSTER_CHANNEL
			" ignored; resyncing");
		lc_remote_batch_free(s.batch);
		atomic_fetch_add(&b->resync_asked, 1);
		return;
	}
	peer = &b->peers[h.node];
	atomic_store(&peer->seen_us, lc_mono_us());
	if (h.node != b->self) {
		/* Watching shares: who is alive, which run (cluster.h). */
		atomic_store(&b->cl->boot[h.node], h.boot);
		atomic_store(&b->cl->seen_us[h.node],
			     h.kind == LC_MSG_BYE ? 0 : lc_mono_us());
		if (h.kind == LC_MSG_BYE)
			lc_kick_maybe(b->cl->kick);
		if (h.kind == LC_MSG_HELLO) {
			/* A node (re)synced: it hears our shares again. */
			atomic_store(&b->cl->announce_all, true);
			lc_bridge_wake(b);
		}
		if ((h.kind == LC_MSG_HELLO || h.kind == LC_MSG_FULL) &&
		    !s.batch && !(s.batch = lc_remote_batch_new(false))) {
			/* The next resync's hello brings them again. */
			atomic_fetch_add(&b->resync_asked, 1);
			return;
		}
		if (s.batch) {
			s.batch->sender = h.node;
			s.batch->boot = h.boot;
			s.batch->reset =
			    h.kind == LC_MSG_HELLO || h.kind == LC_MSG_FULL;
		}
	}
	if (h.node == b->self) {
		/*
		 * Our own echo, or another process with our node id: its
		 * slot is its database's, not ours (slots.h), so its totals
		 * count like any node's (our own slot's lines are ignored by
		 * lc_slots_merge). Its sequence is not tracked.
		 */
		static _Atomic int64_t said_us;
		int64_t now = lc_mono_us(), was = atomic_load(&said_us);

		if (h.boot == b->boot || !s.batch) {
			lc_remote_batch_free(s.batch);
			return;
		}
		if (now - was > ERROR_LOG_MS * 1000LL &&
		    atomic_compare_exchange_strong(&said_us, &was, now))
			lc_warn("cluster: another process runs with our node "
				"id %u; its likes are its own slot's",
				b->self);
	} else {
		if (peer->boot == h.boot && h.seq != peer->seq + 1) {
			lc_info("cluster: node %u: messages %" PRIu64
				"..%" PRIu64 " lost; resyncing",
				h.node, peer->seq + 1, h.seq - 1);
			atomic_fetch_add(&b->stats.seq_gaps, 1);
			atomic_fetch_add(&b->resync_asked, 1);
			lc_bridge_wake(b);
		}
		peer->boot = h.boot;
		peer->seq = h.seq;
	}
	if (!s.batch)
		return;
	if (lc_cluster_remote_pending(b->cl) > INBOX_MAX) {
		lc_remote_batch_free(s.batch);
		atomic_fetch_add(&b->resync_asked, 1);
		return;
	}
	/* An empty batch still resets the sender's shares (hello, full). */
	lc_cluster_post_remote(b->cl, s.batch);
	lc_kick_maybe(b->cl->kick); /* a lone remote like goes out at once */
}

static redisContext *
subscribe(struct lc_bridge *b)
{
	redisContext *c = connect_redis(b, SUB_TIMEOUT_MS, "subscriber");
	redisReply *r;

	if (!c)
		return NULL;
	r = redisCommand(c, "SUBSCRIBE " LC_CLUSTER_CHANNEL);
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		if (r)
			freeReplyObject(r);
		redisFree(c);
		atomic_fetch_add(&b->stats.errors, 1);
		return NULL;
	}
	freeReplyObject(r);
	return c;
}

static void *
sub_main(void *arg)
{
	struct lc_bridge *b = arg;
	int64_t backoff = 0;

	while (!stopping(b)) {
		redisContext *c = subscribe(b);

		if (!c) {
			int64_t ms = next_backoff(b, &backoff);

			for (int64_t t = 0; t < ms && !stopping(b); t += 50)
				usleep(50000);
			continue;
		}
		backoff = 0;
		pthread_mutex_lock(&b->lock);
		b->sub = c;
		pthread_mutex_unlock(&b->lock);
		/* Senders' sequences restart; what we missed comes by resync.
		 */
		for (size_t i = 0; i <= LC_MAX_NODE_ID; i++)
			b->peers[i].boot = 0;
		atomic_store(&b->sub_up, true);
		atomic_fetch_add(&b->resync_asked, 1);
		lc_bridge_wake(b);
		for (;;) {
			redisReply *r = NULL;

			if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
				if (!stopping(b))
					lc_warn("cluster: subscription lost "
						"(%s); resubscribing",
						c->errstr[0] ? c->errstr
							     : "no reply");
				break;
			}
			if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
			    r->element[0]->type == REDIS_REPLY_STRING &&
			    !strcmp(r->element[0]->str, "message") &&
			    r->element[2]->type == REDIS_REPLY_STRING)
				on_message(b, r->element[2]->str,
					   r->element[2]->len);
			freeReplyObject(r);
		}
		atomic_store(&b->sub_up, false);
		atomic_store(&b->stats.link_up, false);
		atomic_fetch_add(&b->stats.errors, 1);
		pthread_mutex_lock(&b->lock);
		b->sub = NULL;
		pthread_mutex_unlock(&b->lock);
		redisFree(c);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */

/* The key thread, at the end of this file. */
static void *kv_main(void *arg);
static void kv_skip(struct lc_bridge *b, struct lc_kv_job *j);

void
lc_bridge_wake(void *arg)
{
	struct lc_bridge *b = arg;

	pthread_mutex_lock(&b->lock);
	b->work = true;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

struct lc_bridge *
lc_bridge_start(const char *redis_url, struct lc_counter *c,
		struct lc_cluster *cl, char *err, size_t errlen)
{
	struct lc_bridge *b = calloc(1, sizeof(*b));
	pthread_condattr_t ca;
	char host[128] = "?", holder[160];

	if (!b) {
		snprintf(err, errlen, "cluster: out of memory");
		return NULL;
	}
	if (lc_config_parse_redis_url(redis_url, &b->url, err, errlen)) {
		free(b);
		return NULL;
	}
	lc_config_redis_url_masked(redis_url, b->url_masked,
				   sizeof(b->url_masked));
	if (!b->url.nsentinels) {
		snprintf(b->host, sizeof(b->host), "%s", b->url.addr.host);
		b->port = b->url.addr.port;
	}
	b->db = b->url.db;
	b->self = cl->self;
	b->own = cl->own;
	lc_slot_id_format(b->own_name, sizeof(b->own_name), b->own);
	snprintf(b->lease_key, sizeof(b->lease_key), "lc:node:%u", b->self);
	snprintf(b->gen_key, sizeof(b->gen_key), "lc:nodegen:%u", b->self);
	b->counter = c;
	b->cl = cl;
	b->boot = random_u64();
	gethostname(host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	for (char *p = host; *p; p++)
		if (*p == ' ')
			*p = '_';
	snprintf(b->lease, sizeof(b->lease), "%016" PRIx64 " %s %ld", b->boot,
		 host, (long)getpid());
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->elock, NULL);
	pthread_mutex_init(&b->kv_lock, NULL);
	b->kv_efd = -1;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);

	b->cmd = connect_redis(b, COMMAND_TIMEOUT_MS, "command");
	if (b->cmd) {
		int64_t gen = 0;
		int rc = lease(b, b->cmd, NULL, &gen, holder, sizeof(holder));

		if (rc == LC_EBUSY || rc == LEASE_ERR) {
			if (rc == LC_EBUSY)
				snprintf(err, errlen,
					 "node_id %u is in use by a running "
					 "node (boot, host, pid: %s); give "
					 "this node another node_id, or wait "
					 "%d s if that node is gone",
					 b->self, holder, LEASE_MS / 1000);
			else
				snprintf(err, errlen,
					 "cluster: Redis at %s:%d refused "
					 "node_id %u's lease (%s): without it "
					 "this node could write over another "
					 "process's counts; fix Redis and "
					 "start again",
					 b->host, b->port, b->self, holder);
			goto fail_early;
		}
		if (rc) {
			drop_cmd(b, "lease failed");
		} else {
			b->gen = gen;
			b->lease_held = true;
		}
	} else if (b->auth_err[0]) {
		snprintf(err, errlen, "redis_url: %s", b->auth_err);
		goto fail_early;
	} else {
		lc_warn("cluster: Redis %s does not answer; counting locally "
			"and retrying (this node writes nothing of its own "
			"until it holds node_id %u's lease)",
			b->url_masked, b->self);
		b->next_connect_us =
		    lc_mono_us() + next_backoff(b, &b->backoff_ms) * 1000;
	}
	/* Registered last: the table keeps a pointer to it until the end. */
	if (lc_counter_add_reader(c, &b->qs)) {
		snprintf(err, errlen, "cluster: out of memory");
		goto fail_early;
	}
	cl->wake_bridge = lc_bridge_wake;
	cl->wake_arg = b;
	if (pthread_create(&b->sub_thread, NULL, sub_main, b)) {
		snprintf(err, errlen, "cluster: cannot start a thread");
		goto fail;
	}
	if (pthread_create(&b->cmd_thread, NULL, cmd_main, b)) {
		pthread_mutex_lock(&b->lock);
		b->stopping = true;
		pthread_mutex_unlock(&b->lock);
		pthread_join(b->sub_thread, NULL);
		snprintf(err, errlen, "cluster: cannot start a thread");
		goto fail;
	}
	if (b->url.nsentinels &&
	    !pthread_create(&b->watch_thread, NULL, watch_main, b))
		b->watch_started = true;
	/* Without the key thread, keyed likes are decided locally. */
	b->kv_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->kv_efd >= 0 && !pthread_create(&b->kv_thread, NULL, kv_main, b))
		b->kv_started = true;
	else
		lc_warn("cluster: no key thread: keyed likes are decided by "
			"each node alone");
	lc_info("cluster: node %u (run %016" PRIx64 ") with Redis %s (%s:%d)",
		b->self, b->boot, b->url_masked, b->host, b->port);
	return b;
fail:
	cl->wake_bridge = NULL;
fail_early:
	if (b->cmd)
		redisFree(b->cmd);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->elock);
	pthread_mutex_destroy(&b->kv_lock);
	pthread_cond_destroy(&b->cond);
	free(b);
	return NULL;
}

void
lc_bridge_stop(struct lc_bridge *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->stopping = true;
	b->work = true;
	pthread_cond_signal(&b->cond);
	if (b->sub)
		shutdown(b->sub->fd, SHUT_RDWR);
	if (b->watch)
		shutdown(b->watch->fd, SHUT_RDWR);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->sub_thread, NULL);
	if (b->watch_started)
		pthread_join(b->watch_thread, NULL);
	pthread_join(b->cmd_thread, NULL);
	pthread_mutex_lock(&b->kv_lock);
	b->kv_stop = true;
	pthread_mutex_unlock(&b->kv_lock);
	if (b->kv_started) {
		uint64_t one = 1;

		if (write(b->kv_efd, &one, sizeof(one)) < 0)
			(void)0;
		pthread_join(b->kv_thread, NULL);
	}
	{
		/* Submitted after the thread stopped reading: answered. */
		struct lc_kv_job *j = b->kv_in, *next;

		for (; j; j = next) {
			next = j->next;
			kv_skip(b, j);
		}
		b->kv_in = NULL;
	}
	if (b->kv_efd >= 0)
		close(b->kv_efd);
	free(b->kv_q);
	pthread_mutex_destroy(&b->kv_lock);
	b->cl->wake_bridge = NULL;
	/* Entries pushed by nobody keep their flag: the table dies next. */
	free(b->q);
	free(b->rq);
	free(b->argo);
	free(b->argl);
	free(b->argv);
	free(b->vals);
	lc_buf_free(&b->shares);
	lc_buf_free(&b->msg);
	lc_buf_free(&b->args);
	pthread_mutex_destroy(&b->elock);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	free(b);
}

const struct lc_bridge_stats *
lc_bridge_stats(struct lc_bridge *b)
{
	return &b->stats;
}

json_t *
lc_bridge_status_json(struct lc_bridge *b)
{
	int64_t now = lc_mono_us(), last = atomic_load(&b->last_push_us);
	static const char *const names[] = {"down", "degraded", "up"};
	int st = atomic_load(&b->stats.link_state);
	const char *link = names[st >= 0 && st <= 2 ? st : 0];
	json_t *nodes = json_array(), *self, *o;
	char reason[256], primary[300];

	pthread_mutex_lock(&b->elock);
	snprintf(reason, sizeof(reason), "%s", b->reason);
	pthread_mutex_unlock(&b->elock);
	pthread_mutex_lock(&b->lock);
	snprintf(primary, sizeof(primary), "%s:%d", b->host, b->port);
	if (!b->host[0])
		primary[0] = '\0';
	pthread_mutex_unlock(&b->lock);
	self = json_pack("{s:i, s:b, s:s}", "id", (int)b->self, "self", 1,
			 "link", link);
	if (self)
		json_object_set_new(self, "last_push_age_ms",
				    last ? json_integer((now - last) / 1000)
					 : json_null());
	json_array_append_new(nodes, self);
	for (uint32_t i = 1; i <= LC_MAX_NODE_ID; i++) {
		int64_t seen = atomic_load(&b->peers[i].seen_us);

		if (i == b->self || !seen)
			continue;
		json_array_append_new(
		    nodes,
		    json_pack(
			"{s:i, s:b, s:s, s:I}", "id", (int)i, "self", 0, "link",
			now - seen < PEER_DOWN_MS * 1000 ? "up" : "down",
			"last_push_age_ms", (json_int_t)((now - seen) / 1000)));
	}
	o = json_pack("{s:i, s:s, s:s, s:s, s:o}", "node_id", (int)b->self,
		      "link", link, "keys_link",
		      atomic_load(&b->stats.keys_up) ? "up" : "down", "redis",
		      b->url_masked, "nodes", nodes);
	if (o) {
		/* The reason stays until the link is up again. */
		json_object_set_new(o, "link_reason",
				    st != LC_LINK_UP && reason[0]
					? json_string(reason)
					: json_null());
		json_object_set_new(o, "primary",
				    primary[0] ? json_string(primary)
					       : json_null());
		json_object_set_new(o, "slot", json_string(b->own_name));
	}
	return o;
}

/* ------------------------------------------------------------------ */
/*
 * Cluster-wide idempotency keys (bridge.h): the key thread.
 *
 * A note on waiting: one hiredis context, dialled (connect, AUTH, SELECT:
 * blocking) on a helper thread, then switched to non-blocking; commands are
 * appended as jobs arrive and written without blocking, replies read as
 * the socket becomes readable (redisBufferRead/redisGetReplyFromReader,
 * what hiredis's async API does inside), and poll() wakes the thread for
 * the earliest claim deadline. Replies come in order: a FIFO of in-flight
 * records matches them to jobs. A claim answered LC_KV_UNAVAILABLE at its
 * deadline keeps its record (job NULL) so its late reply is still read;
 * its worker settles it, and the settle is sent after the claim on the
 * same connection, so Redis runs them in that order.
 */

/* Without a connection, look at the link this often to connect early. */
#define KV_IDLE_CONNECT_MS 100
#define KV_RETRY_MS 1000
/* A reply this late means a stalled Redis: drop the connection. */
#define KV_STALL_MS 2000

struct kv_rec {
	struct lc_kv_job *job; /* NULL: a claim already answered */
	bool settle, release;
	int64_t sent_us;
	char key[LC_IDEM_KEY_MAX + 1]; /* a settle's, for a release */
	size_t klen;
};

static const char claim_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v then return v end "
    "redis.call('SET', KEYS[1], 'pending', 'PX', ARGV[1]) return false";

static const char release_claim_script[] =
    "if redis.call('GET', KEYS[1]) == 'pending' then "
    "  return redis.call('DEL', KEYS[1]) end return 0";

static void
kv_complete(struct lc_kv_job *j, enum lc_kv_claim res)
{
	j->result = res;
	j->done(j, j->done_arg);
}

/* Completes a job that was never sent. */
static void
kv_skip(struct lc_bridge *b, struct lc_kv_job *j)
{
	if (j->settle)
		free(j);
	else
		kv_complete(j, LC_KV_UNAVAILABLE);
	(void)b;
}

static void
kv_drop(struct lc_bridge *b, const char *why)
{
	atomic_store(&b->stats.keys_up, false);
	if (b->kv) {
		note_error(b, false, "key connection", why);
		redisFree(b->kv);
		b->kv = NULL;
		b->kv_retry_us = lc_mono_us() + KV_RETRY_MS * 1000;
	}
	while (b->kv_n) {
		struct kv_rec *r = &b->kv_q[b->kv_head];

		if (r->job)
			kv_skip(b, r->job);
		b->kv_head = (b->kv_head + 1) % b->kv_cap;
		b->kv_n--;
	}
}

/*
 * The key connection is dialled on a short-lived thread of its own: a
 * connect, AUTH and SELECT take a round trip each, and the key thread
 * must go on answering claims (LC_KV_UNAVAILABLE while there is no
 * connection) within LC_KV_CLAIM_MS meanwhile.
 */
static void *
kv_dial_main(void *arg)
{
	struct lc_bridge *b = arg;
	struct timeval ct = {CONNECT_TIMEOUT_MS / 1000,
			     CONNECT_TIMEOUT_MS % 1000 * 1000};
	struct timeval rt = {COMMAND_TIMEOUT_MS / 1000,
			     COMMAND_TIMEOUT_MS % 1000 * 1000};
	char host[256];
	int port, fl;
	uint64_t one = 1;
	redisReply *r = NULL;
	redisContext *c;

	pthread_mutex_lock(&b->lock);
	snprintf(host, sizeof(host), "%s", b->host);
	port = b->port;
	pthread_mutex_unlock(&b->lock);
	c = redisConnectWithTimeout(host, port, ct);
	if (!c || c->err)
		goto fail;
	redisSetTimeout(c, rt);
	if (b->url.pass[0]) {
		r = b->url.user[0] ? redisCommand(c, "AUTH %s %s", b->url.user,
						  b->url.pass)
				   : redisCommand(c, "AUTH %s", b->url.pass);
		if (!r || r->type == REDIS_REPLY_ERROR)
			goto fail;
		freeReplyObject(r);
	}
	r = b->db ? redisCommand(c, "SELECT %d", b->db)
		  : redisCommand(c, "PING");
	if (!r || r->type == REDIS_REPLY_ERROR)
		goto fail;
	freeReplyObject(r);
	r = NULL;
	/* From here on: non-blocking, driven by the key thread's poll(). */
	c->flags &= ~REDIS_BLOCK;
	fl = fcntl(c->fd, F_GETFL);
	fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
	goto done;
fail:
	note_error(b, r && r->type == REDIS_REPLY_ERROR, "key connection",
		   r && r->type == REDIS_REPLY_ERROR ? r->str
		   : c && c->err		     ? c->errstr
						     : "out of memory");
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	c = NULL;
done:
	pthread_mutex_lock(&b->kv_lock);
	b->kv_dialed = c;
	b->kv_dial_done = true;
	pthread_mutex_unlock(&b->kv_lock);
	if (write(b->kv_efd, &one, sizeof(one)) < 0)
		(void)0;
	return NULL;
}

/* Starts a dial when due; takes a finished one. Key thread. */
static void
kv_connect(struct lc_bridge *b)
{
	bool done;
	redisContext *c;

	if (b->kv_dialing) {
		pthread_mutex_lock(&b->kv_lock);
		done = b->kv_dial_done;
		c = b->kv_dialed;
		b->kv_dial_done = false;
		b->kv_dialed = NULL;
		pthread_mutex_unlock(&b->kv_lock);
		if (!done)
			return;
		pthread_join(b->kv_dial_thread, NULL);
		b->kv_dialing = false;
		b->kv = c;
		atomic_store(&b->stats.keys_up, c != NULL);
		return;
	}
	if (b->kv || lc_mono_us() < b->kv_retry_us)
		return;
	b->kv_retry_us = lc_mono_us() + KV_RETRY_MS * 1000;
	if (!pthread_create(&b->kv_dial_thread, NULL, kv_dial_main, b))
		b->kv_dialing = true;
}

static bool
kv_push(struct lc_bridge *b, struct kv_rec rec)
{
	if (b->kv_n == b->kv_cap) {
		size_t cap = b->kv_cap ? b->kv_cap * 2 : 64;
		struct kv_rec *q = malloc(cap * sizeof(*q));

		if (!q)
			return false;
		for (size_t i = 0; i < b->kv_n; i++)
			q[i] = b->kv_q[(b->kv_head + i) % b->kv_cap];
		free(b->kv_q);
		b->kv_q = q;
		b->kv_head = 0;
		b->kv_cap = cap;
	}
	b->kv_q[(b->kv_head + b->kv_n++) % b->kv_cap] = rec;
	return true;
}

/* Appends a job's command (not yet written). */
static void
kv_send(struct lc_bridge *b, struct lc_kv_job *j)
{
	char ikey[LC_IDEM_KEY_MAX + 16], num[24], head[16];
	struct kv_rec rec = {j, j->settle, j->release, lc_mono_us(), "", 0};
	int kl =
	    snprintf(ikey, sizeof(ikey), "lc:idem:%.*s", (int)j->klen, j->key);
	int rc;

	if (!j->settle) {
		const char *argv[5] = {"EVAL", claim_script, "1", ikey, num};
		size_t argl[5] = {4, sizeof(claim_script) - 1, 1, (size_t)kl,
				  0};

		argl[4] =
		    (size_t)snprintf(num, sizeof(num), "%d", LC_KV_PENDING_MS);
		rc = redisAppendCommandArgv(b->kv, 5, argv, argl);
		j->deadline_us = rec.sent_us + LC_KV_CLAIM_MS * 1000;
	} else if (j->release) {
		const char *argv[4] = {"EVAL", release_claim_script, "1", ikey};
		size_t argl[4] = {4, sizeof(release_claim_script) - 1, 1,
				  (size_t)kl};

		rc = redisAppendCommandArgv(b->kv, 4, argv, argl);
	} else {
		/* "<status>\n<body>", kept for the key's lifetime. */
		char *v = malloc(sizeof(head) + j->ans.len);
		int n = snprintf(head, sizeof(head), "%d\n", j->ans.status);
		const char *argv[6] = {"SET", ikey, v, "XX", "PX", num};
		size_t argl[6] = {3, (size_t)kl, 0, 2, 2, 0};

		if (!v) {
			kv_skip(b, j);
			return;
		}
		memcpy(v, head, (size_t)n);
		memcpy(v + n, j->ans.body, j->ans.len);
		argl[2] = (size_t)n + j->ans.len;
		argl[5] = (size_t)snprintf(num, sizeof(num), "%lld",
					   (long long)j->ttl_ms);
		rc = redisAppendCommandArgv(b->kv, 6, argv, argl);
		free(v);
	}
	if (j->settle) {
		memcpy(rec.key, j->key, j->klen);
		rec.klen = j->klen;
	}
	if (rc != REDIS_OK || !kv_push(b, rec)) {
		kv_drop(b, "out of memory");
		kv_skip(b, j);
		return;
	}
	atomic_fetch_add(&b->stats.commands, 1);
}

/* A claim's reply into its job. */
static enum lc_kv_claim
kv_claim_result(const redisReply *r, struct lc_idem_answer *ans)
{
	if (r->type == REDIS_REPLY_NIL)
		return LC_KV_CLAIMED;
	if (r->type == REDIS_REPLY_STRING) {
		const char *nl = memchr(r->str, '\n', r->len);

		if (r->len == 7 && !memcmp(r->str, "pending", 7))
			return LC_KV_PENDING;
		if (nl &&
		    (size_t)(r->str + r->len - nl - 1) <= sizeof(ans->body)) {
			ans->status = atoi(r->str);
			ans->len = (size_t)(r->str + r->len - nl - 1);
			memcpy(ans->body, nl + 1, ans->len);
			return LC_KV_ANSWERED;
		}
	}
	return LC_KV_UNAVAILABLE;
}

/* One reply, matched to the oldest in-flight record. */
static void
kv_reply(struct lc_bridge *b, redisReply *r)
{
	struct kv_rec rec;

	if (!b->kv_n)
		return;
	rec = b->kv_q[b->kv_head];
	b->kv_head = (b->kv_head + 1) % b->kv_cap;
	b->kv_n--;
	note_rtt(b, lc_mono_us() - rec.sent_us);
	if (r->type == REDIS_REPLY_ERROR) {
		note_error(b, true, rec.settle ? "key settle" : "key claim",
			   r->str);
		if (rec.settle && !rec.release && b->kv) {
			/* Not stored: release the claim, never "success". */
			struct lc_kv_job tmp = {
			    .settle = true, .release = true, .klen = rec.klen};

			memcpy(tmp.key, rec.key, rec.klen);
			tmp.key[rec.klen] = '\0';
			rec.job = NULL;
			kv_send(b, &tmp);
		}
	}
	if (rec.settle) {
		free(rec.job);
		return;
	}
	if (rec.job)
		kv_complete(rec.job, r->type == REDIS_REPLY_ERROR
					 ? LC_KV_UNAVAILABLE
					 : kv_claim_result(r, &rec.job->ans));
}

/*
 * A settle while the key connection is down waits for the next one (its
 * claim may have run): up to LC_KV_PENDING_MS, when the claim expires.
 */
static bool
kv_hold(struct lc_bridge *b, struct lc_kv_job *j)
{
	if (b->kv_held_n >= 10000)
		return false;
	j->deadline_us = lc_mono_us() + LC_KV_PENDING_MS * 1000;
	j->next = b->kv_held;
	b->kv_held = j;
	b->kv_held_n++;
	return true;
}

static void
kv_unhold(struct lc_bridge *b)
{
	struct lc_kv_job *j = b->kv_held, *next;
	int64_t now = lc_mono_us();

	b->kv_held = NULL;
	b->kv_held_n = 0;
	for (; j; j = next) {
		next = j->next;
		j->next = NULL;
		if (b->kv && now < j->deadline_us)
			kv_send(b, j);
		else
			kv_skip(b, j);
	}
}

static bool
kv_stopping(struct lc_bridge *b)
{
	bool s;

	pthread_mutex_lock(&b->kv_lock);
	s = b->kv_stop;
	pthread_mutex_unlock(&b->kv_lock);
	return s;
}

static void *
kv_main(void *arg)
{
	struct lc_bridge *b = arg;

	for (;;) {
		struct lc_kv_job *in, *next;
		struct pollfd pf[2];
		int64_t now, wait_us = 1000000;
		int nfds = 1, done = 1;
		uint64_t junk;

		pthread_mutex_lock(&b->kv_lock);
		in = b->kv_in;
		b->kv_in = b->kv_in_tail = NULL;
		pthread_mutex_unlock(&b->kv_lock);
		/* Connected ahead of need (the link is up only with it),
		 * never while a claim waits. */
		kv_connect(b);
		for (; in; in = next) {
			next = in->next;
			in->next = NULL;
			if (b->kv &&
			    (in->settle ||
			     atomic_load(&b->stats.link_state) == LC_LINK_UP))
				kv_send(b, in);
			else if (in->settle && !kv_hold(b, in))
				kv_skip(b, in);
			else if (!in->settle)
				/* Down or degraded: don't wait for Redis. */
				kv_skip(b, in);
		}
		if (b->kv)
			kv_unhold(b);
		if (kv_stopping(b))
			break;
		if (b->kv && redisBufferWrite(b->kv, &done) != REDIS_OK)
			kv_drop(b, b->kv->errstr);
		now = lc_mono_us();
		/* Claims past their deadline: answered, still read later. */
		for (size_t i = 0; i < b->kv_n; i++) {
			struct kv_rec *r =
			    &b->kv_q[(b->kv_head + i) % b->kv_cap];

			if (r->job && !r->settle) {
				if (now >= r->job->deadline_us) {
					kv_complete(r->job, LC_KV_UNAVAILABLE);
					r->job = NULL;
				} else if (r->job->deadline_us - now <
					   wait_us) {
					wait_us = r->job->deadline_us - now;
				}
			}
		}
		if (b->kv_n &&
		    now - b->kv_q[b->kv_head].sent_us > KV_STALL_MS * 1000)
			kv_drop(b, "no reply (Redis stalled)");
		if (!b->kv && wait_us > KV_IDLE_CONNECT_MS * 1000)
			wait_us = KV_IDLE_CONNECT_MS * 1000;
		pf[0] = (struct pollfd){.fd = b->kv_efd, .events = POLLIN};
		if (b->kv) {
			pf[1] = (struct pollfd){
			    .fd = b->kv->fd,
			    .events = (short)(POLLIN | (done ? 0 : POLLOUT))};
			nfds = 2;
		}
		if (poll(pf, (nfds_t)nfds, (int)((wait_us + 999) / 1000)) < 0)
			continue;
		if (pf[0].revents & POLLIN)
			while (read(b->kv_efd, &junk, sizeof(junk)) > 0)
				;
		if (nfds == 2 && b->kv &&
		    (pf[1].revents & (POLLIN | POLLERR | POLLHUP))) {
			void *reply = NULL;

			if (redisBufferRead(b->kv) != REDIS_OK) {
				kv_drop(b, b->kv->errstr);
				continue;
			}
			while (b->kv &&
			       redisGetReplyFromReader(b->kv, &reply) ==
				   REDIS_OK &&
			       reply) {
				kv_reply(b, reply);
				freeReplyObject(reply);
				reply = NULL;
			}
		}
	}
	kv_drop(b, "stopping");
	if (b->kv_dialing) {
		pthread_join(b->kv_dial_thread, NULL);
		b->kv_dialing = false;
		if (b->kv_dialed)
			redisFree(b->kv_dialed);
		b->kv_dialed = NULL;
	}
	kv_unhold(b);
	return NULL;
}

void
lc_bridge_kv_submit(struct lc_bridge *b, struct lc_kv_job *j)
{
	uint64_t one = 1;
	bool stop;

	j->next = NULL;
	pthread_mutex_lock(&b->kv_lock);
	/* No key thread (it could not start): answered here, at once. */
	stop = b->kv_stop || !atomic_load(&b->kv_started);
	if (!stop) {
		if (b->kv_in_tail)
			b->kv_in_tail->next = j;
		else
			b->kv_in = j;
		b->kv_in_tail = j;
	}
	pthread_mutex_unlock(&b->kv_lock);
	if (stop) {
		kv_skip(b, j);
		return;
	}
	if (write(b->kv_efd, &one, sizeof(one)) < 0)
		(void)0; /* the counter is full: the thread wakes anyway */
}
