/*
 * The bridge to Redis: two threads, two synchronous hiredis connections.
 *
 * Threads: lc_bridge_start/stop on main; cmd_main and sub_main on their
 * own threads; lc_bridge_wake from the dispatcher; the stats from any
 * worker. The push queue, the epoch and the command connection belong to
 * the command thread; the peers' sequence numbers to the subscriber.
 *
 * A note on synchronous hiredis: 0.14.1's async API has no timeouts, no
 * reconnect and a libuv adapter that never reports a refused connect
 * (read in the hiredis v0.14.1 sources: the async API and its libuv
 * adapter). Its synchronous API has both timeouts
 * (redisConnectWithTimeout, redisSetTimeout), and a thread per connection
 * makes blocking harmless: a SIGSTOPped Redis costs the bridge a timeout,
 * nobody else anything. Each round trip is a pipeline (append N commands,
 * read N replies), so a push of 512 URLs is one round trip.
 *
 * A note on correctness: pub/sub is only the fast path. The state is in
 * Redis (ZADD GT of absolute totals: never lowered, a retry or a late
 * duplicate is harmless), and after every (re)subscribe, sequence gap,
 * lost reply or change of epoch the command thread runs a full resync:
 * read every key (SCAN + ZRANGE) into the dispatcher, then write every
 * slot this node knows (ZADD GT), which also repopulates a Redis that
 * restarted empty. Our own slot is never pushed before the first resync of
 * this run has read it (slots.h explains why).
 */
#define _GNU_SOURCE
#include "lc/bridge.h"
#include "lc/common.h"
#include "lc/config.h"
#include "lc/dispatch.h"
#include "lc/slots.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct peer {
	uint64_t boot, seq;	 /* subscriber thread only */
	_Atomic int64_t seen_us; /* last message, mono; 0 = never */
};

struct lc_bridge {
	char host[256];
	int port, db;
	uint32_t self;
	uint64_t boot;
	char lease[160]; /* "<boot> <host> <pid>" */
	struct lc_counter *counter;
	struct lc_cluster *cl;

	pthread_t cmd_thread, sub_thread;
	pthread_mutex_t lock; /* guards work, stopping, sub */
	pthread_cond_t cond;
	bool work, stopping;
	redisContext *sub; /* for stop: shutdown() interrupts a read */

	/* command thread only */
	redisContext *cmd;
	struct lc_entry **q; /* FIFO of own entries to push */
	size_t q_head, q_n, q_cap;
	bool synced; /* the first full resync of this run is done */
	bool lease_lost;
	char epoch[40];
	uint64_t seq_out;
	int64_t backoff_ms, next_connect_us, next_beat_us;
	struct lc_buf msg;

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

/* Exponential backoff with full jitter: a random wait in [min, cap]. */
static int64_t
next_backoff(int64_t *cur)
{
	int64_t cap = *cur ? *cur * 2 : BACKOFF_MIN_MS;

	if (cap > BACKOFF_MAX_MS)
		cap = BACKOFF_MAX_MS;
	*cur = cap;
	return BACKOFF_MIN_MS +
	       (int64_t)(random_u64() % (uint64_t)(cap - BACKOFF_MIN_MS + 1));
}

/* The parser lives with the configuration, which validates redis_url. */
int
lc_bridge_parse_url(const char *url, char *host, size_t hostlen, int *port,
		    int *db)
{
	return lc_config_parse_redis_url(url, host, hostlen, port, db);
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

static redisContext *
connect_redis(struct lc_bridge *b, int timeout_ms, const char *who)
{
	struct timeval ct = {CONNECT_TIMEOUT_MS / 1000,
			     CONNECT_TIMEOUT_MS % 1000 * 1000};
	struct timeval rt = {timeout_ms / 1000, timeout_ms % 1000 * 1000};
	redisContext *c = redisConnectWithTimeout(b->host, b->port, ct);
	redisReply *r = NULL;

	if (!c || c->err)
		goto fail;
	/*
	 * A stopped Redis still completes the TCP handshake (the kernel
	 * does it), so a connection means nothing until a command answers.
	 */
	redisSetTimeout(c, rt);
	if (b->db)
		r = redisCommand(c, "SELECT %d", b->db);
	else
		r = redisCommand(c, "PING");
	if (!r || r->type == REDIS_REPLY_ERROR)
		goto fail;
	freeReplyObject(r);
	atomic_fetch_add(&b->stats.connects, 1);
	return c;
fail:
	lc_debug("cluster: %s connection to %s:%d failed: %s", who, b->host,
		 b->port,
		 r	       ? r->str
		 : c && c->err ? c->errstr
			       : "out of memory");
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	atomic_fetch_add(&b->stats.errors, 1);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The lease: one running process per node id. */

static const char lease_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false or v == ARGV[1] or ARGV[3] == '1' then "
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 "
    "end return v";

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
 * Takes or refreshes the lease. Returns 0, LC_EBUSY with the holder in
 * `holder`, or LC_EIO when Redis did not answer.
 */
static int
lease(struct lc_bridge *b, redisContext *c, char *holder, size_t hlen)
{
	char key[32], ttl[16];

	snprintf(key, sizeof(key), "lc:node:%u", b->self);
	snprintf(ttl, sizeof(ttl), "%d", LEASE_MS);
	for (int force = 0; force < 2; force++) {
		redisReply *r =
		    redisCommand(c, "EVAL %s 1 %s %s %s %s", lease_script, key,
				 b->lease, ttl, force ? "1" : "0");

		if (!r)
			return LC_EIO;
		if (r->type == REDIS_REPLY_INTEGER) {
			freeReplyObject(r);
			return 0;
		}
		if (r->type != REDIS_REPLY_STRING) {
			freeReplyObject(r);
			return LC_EIO;
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

static void
drop_cmd(struct lc_bridge *b, const char *why)
{
	if (!b->cmd)
		return;
	lc_warn("cluster: link to Redis %s:%d down (%s); counting locally",
		b->host, b->port, why);
	redisFree(b->cmd);
	b->cmd = NULL;
	atomic_store(&b->stats.link_up, false);
	atomic_fetch_add(&b->stats.errors, 1);
	b->next_connect_us = lc_mono_us() + next_backoff(&b->backoff_ms) * 1000;
}

/* Reads n pipelined replies; false (connection dropped) on any failure. */
static bool
read_replies(struct lc_bridge *b, size_t n, int64_t t0, const char *what)
{
	bool ok = true;

	for (size_t i = 0; i < n; i++) {
		redisReply *r = NULL;

		if (redisGetReply(b->cmd, (void **)&r) != REDIS_OK || !r) {
			drop_cmd(b, b->cmd->err ? b->cmd->errstr : what);
			return false;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			lc_warn("cluster: %s: %s", what, r->str);
			ok = false;
		}
		freeReplyObject(r);
	}
	atomic_fetch_add(&b->stats.commands, n);
	note_rtt(b, lc_mono_us() - t0);
	if (!ok)
		atomic_fetch_add(&b->stats.errors, 1);
	return ok;
}

static void
append_zadd(struct lc_bridge *b, const char *url, size_t len,
	    const struct lc_slot *s, uint32_t n)
{
	/* ZADD key GT (score member) x 2n */
	const char *argv[3 + 4 * 8];
	size_t argl[3 + 4 * 8];
	char key[LC_CLUSTER_KEY_HEAD + 2048 + 1];
	char nums[4 * 8][24];
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
			char *sc = nums[4 * i];

			argl[argc] =
			    (size_t)snprintf(sc, 24, "%" PRId64, x->likes);
			argv[argc++] = sc;
			argl[argc] = (size_t)snprintf(nums[4 * i + 1], 24,
						      "%" PRIu32 ":l", x->node);
			argv[argc++] = nums[4 * i + 1];
			argl[argc] = (size_t)snprintf(nums[4 * i + 2], 24,
						      "%" PRId64, x->unlikes);
			argv[argc++] = nums[4 * i + 2];
			argl[argc] = (size_t)snprintf(nums[4 * i + 3], 24,
						      "%" PRIu32 ":u", x->node);
			argv[argc++] = nums[4 * i + 3];
		}
		redisAppendCommandArgv(b->cmd, argc, argv, argl);
		done += k;
	}
}

static void
append_publish(struct lc_bridge *b)
{
	const char *argv[3] = {"PUBLISH", LC_CLUSTER_CHANNEL, b->msg.p};
	size_t argl[3] = {7, strlen(LC_CLUSTER_CHANNEL), b->msg.n};

	redisAppendCommandArgv(b->cmd, 3, argv, argl);
	atomic_fetch_add(&b->stats.messages_out, 1);
	atomic_fetch_add(&b->stats.bytes_out, b->msg.n);
}

static bool
begin_msg(struct lc_bridge *b)
{
	struct lc_msg_header h = {b->self, b->boot, ++b->seq_out};

	return lc_msg_begin(&b->msg, &h) == 0;
}

/*
 * Pushes up to PUSH_CHUNK queued own slots in one round trip: a ZADD GT
 * per URL, then one PUBLISH with the same values. Entries leave the queue
 * only once Redis has answered; on failure they stay for the next try.
 */
static bool
push_some(struct lc_bridge *b)
{
	size_t k = b->q_n < PUSH_CHUNK ? b->q_n : PUSH_CHUNK, cmds = 0;
	int64_t t0 = lc_mono_us();

	if (!begin_msg(b))
		return false;
	for (size_t i = 0; i < k; i++) {
		struct lc_entry *e = b->q[(b->q_head + i) % b->q_cap];
		const struct lc_slot *own;
		struct lc_slot s = {b->self, 0, 0};

		pthread_mutex_lock(&b->counter->slots_lock);
		own = lc_slots_find(e, b->self);
		if (own)
			s = *own;
		pthread_mutex_unlock(&b->counter->slots_lock);
		append_zadd(b, e->url, e->url_len, &s, 1);
		cmds++;
		if (lc_msg_add(&b->msg, b->self, s.likes, s.unlikes, e->url,
			       e->url_len))
			return false;
	}
	append_publish(b);
	if (!read_replies(b, cmds + 1, t0, "push"))
		return false;
	for (size_t i = 0; i < k; i++) {
		b->q[b->q_head]->push_queued = false;
		b->q_head = (b->q_head + 1) % b->q_cap;
		b->q_n--;
	}
	atomic_store(&b->stats.pending_urls, b->q_n);
	atomic_store(&b->stats.oldest_pending_us, b->q_n ? lc_mono_us() : 0);
	atomic_fetch_add(&b->stats.pushed_urls, k);
	atomic_store(&b->last_push_us, lc_mono_us());
	return true;
}

/* ------------------------------------------------------------------ */
/* Resync (command thread). */

struct reading {
	uint32_t node;
	int64_t likes, unlikes;
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
		uint32_t node;
		bool unl;
		int64_t v;
		size_t j;

		if (m->type != REDIS_REPLY_STRING ||
		    sc->type != REDIS_REPLY_STRING ||
		    !lc_cluster_member_parse(m->str, m->len, &node, &unl) ||
		    !lc_cluster_score_parse(sc->str, sc->len, &v))
			continue;
		for (j = 0; j < n && rd[j].node != node; j++)
			;
		if (j == n) {
			if (n == 64) {
				/* Flush a full set and keep going. */
				for (size_t k = 0; k < n; k++)
					if (lc_remote_batch_add(
						batch, rd[k].node, rd[k].likes,
						rd[k].unlikes, url, len))
						return LC_ENOMEM;
				n = j = 0;
			}
			rd[n++] = (struct reading){node, 0, 0};
		}
		if (unl)
			rd[j].unlikes = v;
		else
			rd[j].likes = v;
	}
	for (size_t k = 0; k < n; k++)
		if (lc_remote_batch_add(batch, rd[k].node, rd[k].likes,
					rd[k].unlikes, url, len))
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
	pthread_mutex_lock(&b->counter->slots_lock);
	if (e->slots && e->slots->n) {
		n = e->slots->n;
		if (n > 32)
			sl = malloc(n * sizeof(*sl));
		if (sl)
			memcpy(sl, e->slots->s, n * sizeof(*sl));
	}
	pthread_mutex_unlock(&b->counter->slots_lock);
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
		rp->ok = read_replies(b, rp->pending, rp->t0, "resync push");
		rp->pending = 0;
	}
}

/* Writes every slot this node knows (ours and the others'). */
static bool
resync_write(struct lc_bridge *b)
{
	struct repush rp = {b, 0, 0, true};

	lc_reader_enter(&b->qs);
	lc_counter_foreach(b->counter, repush_cb, &rp);
	lc_reader_exit(&b->qs);
	if (rp.ok && rp.pending)
		rp.ok = read_replies(b, rp.pending, rp.t0, "resync push");
	return rp.ok && b->cmd;
}

static void
resync(struct lc_bridge *b)
{
	uint64_t gen = atomic_load(&b->resync_asked);
	int64_t t0 = lc_mono_us();
	bool adopt = !b->synced;

	atomic_store(&b->stats.link_up, false);
	if (!resync_read(b, adopt))
		return;
	/* From here on every reading of our own slot was taken: push. */
	b->synced = true;
	/*
	 * What we counted while cut off goes out (published) first: the
	 * other nodes learn it now, not after the write-back of every slot
	 * we know (for 100k URLs that write-back takes seconds).
	 */
	while (b->cmd && !b->lease_lost && b->q_n)
		if (!push_some(b))
			return;
	if (!resync_write(b))
		return;
	atomic_store(&b->resync_done, gen);
	atomic_fetch_add(&b->stats.resyncs, 1);
	atomic_store(&b->stats.resync_ms_last,
		     (uint64_t)(lc_mono_us() - t0) / 1000);
	lc_info("cluster: resync with %s:%d done in %lld ms%s", b->host,
		b->port, (long long)(lc_mono_us() - t0) / 1000,
		adopt ? " (first of this run)" : "");
}

/* ------------------------------------------------------------------ */
/* Heartbeat, lease and epoch (command thread), one round trip. */

static const char epoch_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false then redis.call('SET', KEYS[1], ARGV[1]) v = ARGV[1] end "
    "return v";

static void
beat(struct lc_bridge *b)
{
	char key[32], ttl[16], fresh[40];
	int64_t t0 = lc_mono_us();
	redisReply *r = NULL;

	snprintf(key, sizeof(key), "lc:node:%u", b->self);
	snprintf(ttl, sizeof(ttl), "%d", LEASE_MS);
	snprintf(fresh, sizeof(fresh), "%016" PRIx64, random_u64());
	if (!begin_msg(b))
		return;
	append_publish(b);
	redisAppendCommand(b->cmd, "EVAL %s 1 %s %s %s 0", lease_script, key,
			   b->lease, ttl);
	redisAppendCommand(b->cmd, "EVAL %s 1 lc:meta %s", epoch_script, fresh);
	if (!read_replies(b, 1, t0, "heartbeat"))
		return;
	if (redisGetReply(b->cmd, (void **)&r) != REDIS_OK || !r) {
		drop_cmd(b, "lease refresh failed");
		return;
	}
	if (r->type == REDIS_REPLY_STRING && !b->lease_lost) {
		lc_err("cluster: node id %u is now held by another process "
		       "(%s); not pushing until it is ours again",
		       b->self, r->str);
		b->lease_lost = true;
	} else if (r->type == REDIS_REPLY_INTEGER && b->lease_lost) {
		lc_info("cluster: node id %u's lease is ours again", b->self);
		b->lease_lost = false;
	}
	freeReplyObject(r);
	r = NULL;
	if (redisGetReply(b->cmd, (void **)&r) != REDIS_OK || !r) {
		drop_cmd(b, "epoch check failed");
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
	}
	freeReplyObject(r);
	atomic_fetch_add(&b->stats.commands, 2);
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
	bool up = b->cmd && atomic_load(&b->sub_up) && b->synced &&
		  !b->lease_lost && !resync_pending(b);

	if (up != atomic_load(&b->stats.link_up)) {
		atomic_store(&b->stats.link_up, up);
		if (up)
			lc_info("cluster: link to Redis %s:%d up (node %u)",
				b->host, b->port, b->self);
	}
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
				char holder[160];
				int rc =
				    lease(b, b->cmd, holder, sizeof(holder));

				b->backoff_ms = 0;
				if (rc == LC_EBUSY && !b->lease_lost) {
					lc_err("cluster: node id %u is held "
					       "by another process (%s)",
					       b->self, holder);
					b->lease_lost = true;
				} else if (rc == 0)
					b->lease_lost = false;
				else if (rc)
					drop_cmd(b, "lease failed");
				if (b->cmd)
					b->next_beat_us = 0;
			} else
				b->next_connect_us =
				    now + next_backoff(&b->backoff_ms) * 1000;
		}
		if (b->cmd && now >= b->next_beat_us) {
			b->next_beat_us = now + BEAT_MS * 1000;
			beat(b);
		}
		if (b->cmd && !b->lease_lost && atomic_load(&b->sub_up) &&
		    resync_pending(b) && !stop)
			resync(b);
		while (b->cmd && b->synced && !b->lease_lost && b->q_n)
			if (!push_some(b))
				break;
		update_link(b);
		if (stop)
			break;
	}
	if (b->q_n)
		lc_warn("cluster: %zu URLs not pushed to Redis at stop; they "
			"are in the database and pushed at the next start",
			b->q_n);
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
on_line(void *arg, uint32_t node, int64_t likes, int64_t unlikes,
	const char *url, size_t len)
{
	struct sub_ctx *s = arg;

	if (!s->batch && !(s->batch = lc_remote_batch_new(false)))
		return LC_ENOMEM;
	return lc_remote_batch_add(s->batch, node, likes, unlikes, url, len);
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
	if (h.node == b->self) {
		if (h.boot != b->boot)
			lc_warn("cluster: a message from another process with "
				"our node id %u",
				b->self);
		lc_remote_batch_free(s.batch); /* our own slot: ours */
		return;
	}
	if (peer->boot == h.boot && h.seq != peer->seq + 1) {
		lc_info("cluster: node %u: messages %" PRIu64 "..%" PRIu64
			" lost; resyncing",
			h.node, peer->seq + 1, h.seq - 1);
		atomic_fetch_add(&b->stats.seq_gaps, 1);
		atomic_fetch_add(&b->resync_asked, 1);
		lc_bridge_wake(b);
	}
	peer->boot = h.boot;
	peer->seq = h.seq;
	if (!s.batch)
		return;
	if (lc_cluster_remote_pending(b->cl) > INBOX_MAX) {
		lc_remote_batch_free(s.batch);
		atomic_fetch_add(&b->resync_asked, 1);
		return;
	}
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
			int64_t ms = next_backoff(&backoff);

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
	if (lc_bridge_parse_url(redis_url, b->host, sizeof(b->host), &b->port,
				&b->db)) {
		snprintf(err, errlen,
			 "redis_url: '%s' is not redis://HOST[:PORT][/DB]",
			 redis_url);
		free(b);
		return NULL;
	}
	b->self = cl->self;
	b->counter = c;
	if (lc_counter_add_reader(c, &b->qs)) {
		snprintf(err, errlen, "cluster: out of memory");
		free(b);
		return NULL;
	}
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
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);

	b->cmd = connect_redis(b, COMMAND_TIMEOUT_MS, "command");
	if (b->cmd) {
		int rc = lease(b, b->cmd, holder, sizeof(holder));

		if (rc == LC_EBUSY) {
			snprintf(err, errlen,
				 "node_id %u is in use by a running node "
				 "(boot, host, pid: %s); give this node "
				 "another node_id, or wait %d s if that node "
				 "is gone",
				 b->self, holder, LEASE_MS / 1000);
			redisFree(b->cmd);
			pthread_mutex_destroy(&b->lock);
			pthread_cond_destroy(&b->cond);
			free(b);
			return NULL;
		}
		if (rc)
			drop_cmd(b, "lease failed");
	} else {
		lc_warn("cluster: Redis at %s:%d does not answer; counting "
			"locally and retrying",
			b->host, b->port);
		b->next_connect_us =
		    lc_mono_us() + next_backoff(&b->backoff_ms) * 1000;
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
	lc_info("cluster: node %u (run %016" PRIx64 ") with Redis %s:%d/%d",
		b->self, b->boot, b->host, b->port, b->db);
	return b;
fail:
	cl->wake_bridge = NULL;
	if (b->cmd)
		redisFree(b->cmd);
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
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->sub_thread, NULL);
	pthread_join(b->cmd_thread, NULL);
	b->cl->wake_bridge = NULL;
	/* Entries pushed by nobody keep their flag: the table dies next. */
	free(b->q);
	lc_buf_free(&b->msg);
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
	json_t *nodes = json_array(), *self;

	self =
	    json_pack("{s:i, s:b, s:s}", "id", (int)b->self, "self", 1, "link",
		      atomic_load(&b->stats.link_up) ? "up" : "down");
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
	return json_pack("{s:i, s:s, s:o}", "node_id", (int)b->self, "link",
			 atomic_load(&b->stats.link_up) ? "up" : "down",
			 "nodes", nodes);
}

/* ------------------------------------------------------------------ */
/* Cluster-wide idempotency keys (bridge.h). */

#define KV_TIMEOUT_MS 50
#define KV_RETRY_MS 1000

struct lc_redis_kv {
	char host[256];
	int port, db;
	struct lc_bridge *b; /* its link state: down means don't wait */
	redisContext *c;
	int64_t retry_at_ms; /* after a failure, don't try before */
};

static const char claim_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v then return v end "
    "redis.call('SET', KEYS[1], 'pending', 'PX', ARGV[1]) return false";

struct lc_redis_kv *
lc_redis_kv_create(const char *redis_url, struct lc_bridge *b)
{
	struct lc_redis_kv *kv = calloc(1, sizeof(*kv));

	if (!kv)
		return NULL;
	if (lc_bridge_parse_url(redis_url, kv->host, sizeof(kv->host),
				&kv->port, &kv->db)) {
		free(kv);
		return NULL;
	}
	kv->b = b;
	return kv;
}

void
lc_redis_kv_destroy(struct lc_redis_kv *kv)
{
	if (!kv)
		return;
	if (kv->c)
		redisFree(kv->c);
	free(kv);
}

static void
kv_fail(struct lc_redis_kv *kv)
{
	if (kv->c)
		redisFree(kv->c);
	kv->c = NULL;
	kv->retry_at_ms = lc_mono_ms() + KV_RETRY_MS;
	if (kv->b)
		atomic_fetch_add(&kv->b->stats.errors, 1);
}

static bool
kv_ready(struct lc_redis_kv *kv)
{
	struct timeval tv = {0, KV_TIMEOUT_MS * 1000};
	redisReply *r;

	if (kv->b && !atomic_load(&kv->b->stats.link_up))
		return false; /* the bridge sees Redis down: don't wait */
	if (kv->c)
		return true;
	if (lc_mono_ms() < kv->retry_at_ms)
		return false;
	kv->c = redisConnectWithTimeout(kv->host, kv->port, tv);
	if (!kv->c || kv->c->err) {
		kv_fail(kv);
		return false;
	}
	redisSetTimeout(kv->c, tv);
	if (kv->db) {
		r = redisCommand(kv->c, "SELECT %d", kv->db);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			if (r)
				freeReplyObject(r);
			kv_fail(kv);
			return false;
		}
		freeReplyObject(r);
	}
	return true;
}

enum lc_kv_claim
lc_redis_kv_claim(struct lc_redis_kv *kv, const char *key, size_t klen,
		  int64_t ttl_ms, struct lc_idem_answer *ans)
{
	char ttl[24];
	redisReply *r;
	enum lc_kv_claim res = LC_KV_UNAVAILABLE;

	if (!kv || !kv_ready(kv))
		return LC_KV_UNAVAILABLE;
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
	r = redisCommand(kv->c, "EVAL %s 1 lc:idem:%b %s", claim_script, key,
			 klen, ttl);
	if (!r) {
		kv_fail(kv);
		return LC_KV_UNAVAILABLE;
	}
	if (r->type == REDIS_REPLY_NIL) {
		res = LC_KV_CLAIMED;
	} else if (r->type == REDIS_REPLY_STRING) {
		const char *nl = memchr(r->str, '\n', r->len);

		if (r->len == 7 && !memcmp(r->str, "pending", 7)) {
			res = LC_KV_PENDING;
		} else if (nl && (size_t)(r->str + r->len - nl - 1) <=
				     sizeof(ans->body)) {
			ans->status = atoi(r->str);
			ans->len = (size_t)(r->str + r->len - nl - 1);
			memcpy(ans->body, nl + 1, ans->len);
			res = LC_KV_ANSWERED;
		}
	}
	freeReplyObject(r);
	return res;
}

void
lc_redis_kv_settle(struct lc_redis_kv *kv, const char *key, size_t klen,
		   int64_t ttl_ms, const struct lc_idem_answer *ans)
{
	char head[16];
	redisReply *r;

	if (!kv || !kv->c)
		return;
	if (!ans) {
		r = redisCommand(kv->c, "DEL lc:idem:%b", key, klen);
	} else {
		char *v = malloc(sizeof(head) + ans->len);
		int n = snprintf(head, sizeof(head), "%d\n", ans->status);

		if (!v)
			return;
		memcpy(v, head, (size_t)n);
		memcpy(v + n, ans->body, ans->len);
		r = redisCommand(kv->c, "SET lc:idem:%b %b XX PX %lld", key,
				 klen, v, (size_t)n + ans->len,
				 (long long)ttl_ms);
		free(v);
	}
	if (!r)
		kv_fail(kv);
	else
		freeReplyObject(r);
}
