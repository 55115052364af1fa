/*
 * Metrics (see metrics.h): counting HTTP replies, /metrics (Prometheus text
 * exposition) and /v1/stats (JSON for the dashboard).
 *
 * Threads: rendered on whichever worker serves the request. Every number
 * read here is an atomic written by exactly one thread (a worker, the
 * dispatcher or the batcher), so rendering takes no locks and a scrape
 * never slows the path it measures. Labels are fixed route names, status
 * codes and transports; never a URL.
 */
#define _GNU_SOURCE
#include "lc/metrics.h"
#include "lc/idem.h"
#include "lc/batcher.h"
#include "lc/bridge.h"
#include "lc/cluster.h"
#include "lc/common.h"
#include "lc/worker.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char *const route_names[LC_ROUTE_MAX] = {
#define ROUTE_LABEL(id, path, label) label,
    LC_ROUTES(ROUTE_LABEL)
#undef ROUTE_LABEL
};

static const char *const status_names[LC_S_MAX] = {
#define STATUS_NAME(c) #c,
    LC_STATUSES(STATUS_NAME)
#undef STATUS_NAME
	"other"};

static const char *const tick_le[LC_TICK_BUCKETS] = {
#define BUCKET_LE(us, le) le,
    LC_TICK_BUCKET_BOUNDS(BUCKET_LE)
#undef BUCKET_LE
	"+Inf"};

static int
status_idx(int status)
{
	switch (status) {
#define STATUS_CASE(c)                                                         \
	case c:                                                                \
		return LC_S_##c;
		LC_STATUSES(STATUS_CASE)
#undef STATUS_CASE
	}
	return LC_S_OTHER;
}

void
lc_metrics_count_http(struct lc_worker_stats *st, enum lc_route route,
		      int status)
{
	LC_STAT_ADD(st->http[route][status_idx(status)], 1);
}

struct text {
	char *s;
	size_t len, cap;
	bool oom;
};

static void __attribute__((format(printf, 2, 3)))
add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		char *p = realloc(t->s, t->cap * 2);

		if (!p) {
			t->oom = true;
			return;
		}
		t->s = p;
		t->cap *= 2;
	}
}

#define SUM(field)                                                             \
	({                                                                     \
		int64_t _v = 0;                                                \
		for (int _i = 0; _i < srv->nworkers; _i++)                     \
			_v += (int64_t)atomic_load_explicit(                   \
			    &srv->workers[_i].field, memory_order_relaxed);    \
		_v;                                                            \
	})

static void
metric(struct text *t, const char *name, const char *type, const char *help,
       int64_t v)
{
	add(t, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type,
	    name, (long long)v);
}

/* Cluster mode: the Redis link, resyncs, push lag and round trips. */
static void
cluster_metrics(struct text *t, struct lc_server *srv)
{
	const struct lc_bridge_stats *b = lc_bridge_stats(srv->bridge);
	const struct lc_cluster_stats *cs = &srv->dispatch->cluster->stats;
	static const char *const le[LC_BRIDGE_RTT_BUCKETS] = {
	    "0.0005", "0.001", "0.002", "0.005", "0.01",
	    "0.05",   "0.1",   "0.5",	"1",	 "+Inf"};
	int64_t oldest = atomic_load(&b->oldest_pending_us);
	uint64_t cum = 0;

	metric(t, "livecount_cluster_link_up", "gauge",
	       "1 while the link to Redis is up and synced, else 0.",
	       atomic_load(&b->link_up));
	metric(t, "livecount_cluster_link_degraded", "gauge",
	       "1 while connected but Redis refuses commands (error replies "
	       "such as OOM, READONLY, NOAUTH, MISCONF) or the node id's "
	       "lease; the reason is in /v1/stats.",
	       atomic_load(&b->link_state) == LC_LINK_DEGRADED);
	metric(t, "livecount_cluster_keys_link_up", "gauge",
	       "1 while the connection for cluster-wide idempotency keys is "
	       "up (else keyed likes are decided by this node alone).",
	       atomic_load(&b->keys_up));
	metric(t, "livecount_cluster_redis_error_replies_total", "counter",
	       "Error replies from Redis (each also counts in errors_total).",
	       (int64_t)atomic_load(&b->error_replies));
	metric(t, "livecount_cluster_lease_lost_total", "counter",
	       "Times another process was found holding this node id.",
	       (int64_t)atomic_load(&b->lease_lost));
	metric(t, "livecount_cluster_failovers_total", "counter",
	       "Changes of the Redis primary (Sentinel).",
	       (int64_t)atomic_load(&b->failovers));
	metric(t, "livecount_cluster_connects_total", "counter",
	       "Connections to Redis made (first and reconnects).",
	       (int64_t)atomic_load(&b->connects));
	metric(t, "livecount_cluster_errors_total", "counter",
	       "Failed Redis connects, commands and lost connections.",
	       (int64_t)atomic_load(&b->errors));
	metric(t, "livecount_cluster_resyncs_total", "counter",
	       "Full resyncs with Redis (after each (re)subscribe, gap or "
	       "epoch change).",
	       (int64_t)atomic_load(&b->resyncs));
	metric(t, "livecount_cluster_resync_last_milliseconds", "gauge",
	       "Duration of the last full resync.",
	       (int64_t)atomic_load(&b->resync_ms_last));
	metric(t, "livecount_cluster_seq_gaps_total", "counter",
	       "Lost pub/sub messages detected (each heals by a resync).",
	       (int64_t)atomic_load(&b->seq_gaps));
	metric(t, "livecount_cluster_pushed_urls_total", "counter",
	       "Own per-URL totals written to Redis.",
	       (int64_t)atomic_load(&b->pushed_urls));
	metric(t, "livecount_cluster_pending_urls", "gauge",
	       "Own per-URL totals waiting to be written to Redis.",
	       (int64_t)atomic_load(&b->pending_urls));
	add(t,
	    "# HELP livecount_cluster_push_lag_seconds Age of the oldest own "
	    "change not yet in Redis.\n"
	    "# TYPE livecount_cluster_push_lag_seconds gauge\n"
	    "livecount_cluster_push_lag_seconds %.3f\n",
	    oldest ? (double)(lc_mono_us() - oldest) / 1e6 : 0.0);
	metric(t, "livecount_cluster_messages_sent_total", "counter",
	       "Messages published (pushes and heartbeats).",
	       (int64_t)atomic_load(&b->messages_out));
	metric(t, "livecount_cluster_sent_bytes_total", "counter",
	       "Bytes published.", (int64_t)atomic_load(&b->bytes_out));
	metric(t, "livecount_cluster_messages_received_total", "counter",
	       "Messages received from the channel.",
	       (int64_t)atomic_load(&b->messages_in));
	metric(t, "livecount_cluster_received_bytes_total", "counter",
	       "Bytes received from the channel.",
	       (int64_t)atomic_load(&b->bytes_in));
	metric(t, "livecount_cluster_redis_commands_total", "counter",
	       "Redis commands sent.", (int64_t)atomic_load(&b->commands));
	metric(t, "livecount_cluster_remote_likes_total", "counter",
	       "Like units learnt from other nodes.",
	       (int64_t)atomic_load(&cs->remote_likes));
	metric(t, "livecount_cluster_remote_unlikes_total", "counter",
	       "Unlike units learnt from other nodes.",
	       (int64_t)atomic_load(&cs->remote_unlikes));
	metric(t, "livecount_cluster_adopted_total", "counter",
	       "Own like and unlike units found in Redis from an earlier run.",
	       (int64_t)atomic_load(&cs->adopted_likes));
	add(t, "# HELP livecount_cluster_redis_rtt_seconds Redis round trips "
	       "(one pipeline each).\n"
	       "# TYPE livecount_cluster_redis_rtt_seconds histogram\n");
	for (int i = 0; i < LC_BRIDGE_RTT_BUCKETS; i++) {
		cum += atomic_load(&b->rtt_buckets[i]);
		add(t,
		    "livecount_cluster_redis_rtt_seconds_bucket{le=\"%s\"} "
		    "%llu\n",
		    le[i], (unsigned long long)cum);
	}
	add(t,
	    "livecount_cluster_redis_rtt_seconds_sum %.6f\n"
	    "livecount_cluster_redis_rtt_seconds_count %llu\n",
	    (double)atomic_load(&b->rtt_us_sum) / 1e6,
	    (unsigned long long)atomic_load(&b->rtt_count));
}

/*
 * The standard process_* metrics (as the Prometheus client libraries
 * export them), from /proc/self: Linux only, like the server.
 */
static void
process_metrics(struct text *t, struct lc_server *srv)
{
	long page = sysconf(_SC_PAGESIZE), ticks = sysconf(_SC_CLK_TCK);
	unsigned long utime = 0, stime = 0;
	long long vsize = 0, rss = 0;
	int64_t fds = 0;
	struct rlimit rl;
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	DIR *d;

	if (f) {
		if (fgets(buf, sizeof(buf), f)) {
			/* Fields after the command name, which may hold spaces.
			 */
			const char *p = strrchr(buf, ')');

			if (p && sscanf(p + 2,
					"%*c %*d %*d %*d %*d %*d %*u %*u %*u "
					"%*u %*u %lu %lu %*d %*d %*d %*d %*d "
					"%*d %*u %lld %lld",
					&utime, &stime, &vsize, &rss) != 4)
				utime = stime = 0;
		}
		fclose(f);
	}
	d = opendir("/proc/self/fd");
	if (d) {
		for (struct dirent *e; (e = readdir(d));)
			if (e->d_name[0] != '.')
				fds++;
		closedir(d);
		fds--; /* the directory's own descriptor */
	}
	add(t,
	    "# HELP process_cpu_seconds_total Total user and system CPU time "
	    "spent in seconds.\n"
	    "# TYPE process_cpu_seconds_total counter\n"
	    "process_cpu_seconds_total %.2f\n",
	    ticks > 0 ? (double)(utime + stime) / (double)ticks : 0.0);
	metric(t, "process_resident_memory_bytes", "gauge",
	       "Resident memory size in bytes.", (int64_t)(rss * page));
	metric(t, "process_virtual_memory_bytes", "gauge",
	       "Virtual memory size in bytes.", (int64_t)vsize);
	metric(t, "process_open_fds", "gauge",
	       "Number of open file descriptors.", fds);
	if (!getrlimit(RLIMIT_NOFILE, &rl))
		metric(t, "process_max_fds", "gauge",
		       "Maximum number of open file descriptors.",
		       rl.rlim_cur == RLIM_INFINITY ? INT64_MAX
						    : (int64_t)rl.rlim_cur);
	add(t,
	    "# HELP process_start_time_seconds Start time of the process since "
	    "unix epoch in seconds.\n"
	    "# TYPE process_start_time_seconds gauge\n"
	    "process_start_time_seconds %.3f\n",
	    (double)srv->started_ms / 1000.0);
}

char *
lc_metrics_render(struct lc_server *srv, size_t *len)
{
	struct lc_dispatch_stats *ds = &srv->dispatch->stats;
	const struct lc_batcher_stats *bs = lc_batcher_stats(srv->batcher);
	struct text t = {.s = malloc(16384), .cap = 16384};
	uint64_t cum = 0;

	if (!t.s)
		return NULL;
	add(&t,
	    "# HELP livecount_info Build information.\n"
	    "# TYPE livecount_info gauge\n"
	    "livecount_info{version=\"%s\"} 1\n",
	    LC_VERSION);
	metric(&t, "livecount_uptime_seconds", "gauge", "Seconds since start.",
	       (lc_now_ms() - srv->started_ms) / 1000);
	metric(&t, "livecount_likes_total", "counter",
	       "Like units accepted (sum of n > 0).",
	       SUM(stats.likes_accepted));
	metric(&t, "livecount_unlikes_total", "counter",
	       "Unlike units accepted (sum of -n for n < 0).",
	       SUM(stats.unlikes_accepted));
	metric(&t, "livecount_views_total", "counter",
	       "View units accepted (sum of n).", SUM(stats.views_accepted));
	metric(&t, "livecount_likes_merged_total", "counter",
	       "Like units merged into the counter table by the dispatcher.",
	       (int64_t)atomic_load(&ds->likes));
	metric(&t, "livecount_urls_reclaimed_total", "counter",
	       "URLs only ever subscribed to, freed after their last "
	       "subscriber left.",
	       (int64_t)atomic_load(&srv->counter->reclaimed));
	metric(&t, "livecount_urls_refused_total", "counter",
	       "Likes and subscriptions of new URLs refused (507): max_urls "
	       "reached.",
	       (int64_t)atomic_load(&srv->counter->refused));
	metric(&t, "livecount_urls", "gauge", "URLs in the counter table.",
	       (int64_t)lc_counter_size(srv->counter));

	add(&t, "# HELP livecount_http_requests_total HTTP requests by route "
		"and status.\n# TYPE livecount_http_requests_total counter\n");
	for (int r = 0; r < LC_ROUTE_MAX; r++)
		for (int s = 0; s < LC_S_MAX; s++) {
			int64_t v = SUM(stats.http[r][s]);

			if (!v)
				continue;
			add(&t,
			    "livecount_http_requests_total{route=\"%s\",code="
			    "\"%s\"} %lld\n",
			    route_names[r], status_names[s], (long long)v);
		}
	add(&t,
	    "# HELP livecount_connections Live subscriber connections by "
	    "transport.\n# TYPE livecount_connections gauge\n"
	    "livecount_connections{transport=\"ws\"} %lld\n"
	    "livecount_connections{transport=\"sse\"} %lld\n",
	    (long long)SUM(delivery.stats.conns[LC_T_WS]),
	    (long long)SUM(delivery.stats.conns[LC_T_SSE]));
	metric(&t, "livecount_subscriptions", "gauge",
	       "Live subscriptions (session, URL).",
	       SUM(delivery.stats.subscriptions));
	metric(&t, "livecount_watching", "gauge",
	       "Watching now on this node: live subscriptions summed over "
	       "URLs (each URL's watching figure is its share of this).",
	       SUM(delivery.stats.subscriptions));
	add(&t,
	    "# HELP livecount_update_frames_total Update frames sent.\n"
	    "# TYPE livecount_update_frames_total counter\n"
	    "livecount_update_frames_total{transport=\"ws\"} %lld\n"
	    "livecount_update_frames_total{transport=\"sse\"} %lld\n",
	    (long long)SUM(delivery.stats.frames[LC_T_WS]),
	    (long long)SUM(delivery.stats.frames[LC_T_SSE]));
	metric(
	    &t, "livecount_shared_frames_total", "counter",
	    "Update frames written from a per-URL frame built once per tick.",
	    SUM(delivery.stats.shared_frames));
	metric(&t, "livecount_snapshots_total", "counter",
	       "Snapshot frames sent.", SUM(delivery.stats.snapshots));
	metric(&t, "livecount_coalesced_updates_total", "counter",
	       "Updates merged into one still waiting to be written.",
	       SUM(delivery.stats.coalesced));
	metric(&t, "livecount_slow_consumer_closes_total", "counter",
	       "Subscribers closed for making no progress.",
	       SUM(delivery.stats.slow_closes));
	metric(&t, "livecount_client_errors_total", "counter",
	       "Error frames sent for bad client messages.",
	       SUM(stats.client_errors));
	metric(&t, "livecount_connections_accepted_total", "counter",
	       "TCP connections accepted.", SUM(stats.accepts));
	metric(&t, "livecount_connections_refused_total", "counter",
	       "Connections closed at once: over max_connections or "
	       "max_conns_per_ip.",
	       SUM(stats.accept_refused));
	metric(&t, "livecount_slow_headers_closed_total", "counter",
	       "Connections closed with 408: request headers not whole by "
	       "http_timeout_ms after connecting.",
	       SUM(stats.slow_headers_closed));

	metric(&t, "livecount_dispatch_ticks_total", "counter",
	       "Dispatch ticks run.", (int64_t)atomic_load(&ds->ticks));
	add(&t,
	    "# HELP livecount_dispatch_tick_seconds Dispatch tick "
	    "duration.\n# TYPE livecount_dispatch_tick_seconds histogram\n");
	for (int i = 0; i < LC_TICK_BUCKETS; i++) {
		cum += atomic_load(&ds->tick_us_buckets[i]);
		add(&t,
		    "livecount_dispatch_tick_seconds_bucket{le=\"%s\"} %llu\n",
		    tick_le[i], (unsigned long long)cum);
	}
	add(&t,
	    "livecount_dispatch_tick_seconds_sum %.6f\n"
	    "livecount_dispatch_tick_seconds_count %llu\n",
	    (double)atomic_load(&ds->tick_us_total) / 1e6,
	    (unsigned long long)atomic_load(&ds->ticks));
	add(&t,
	    "# HELP livecount_dispatch_tick_seconds_max Longest tick.\n"
	    "# TYPE livecount_dispatch_tick_seconds_max gauge\n"
	    "livecount_dispatch_tick_seconds_max %.6f\n",
	    (double)atomic_load(&ds->tick_us_max) / 1e6);
	metric(&t, "livecount_dispatch_alloc_failures_total", "counter",
	       "Tick hand-offs that failed for memory and were retried with "
	       "the next tick.",
	       (int64_t)atomic_load(&ds->alloc_failures));
	metric(&t, "livecount_dispatch_kicks_total", "counter",
	       "Wake-ups of the dispatcher by the first like after a tick "
	       "(leading edge).",
	       (int64_t)atomic_load(&srv->dispatch->kick.kicks));
	metric(&t, "livecount_updates_published_total", "counter",
	       "Subscribed URL changes published to workers.",
	       (int64_t)atomic_load(&ds->updates));

	metric(&t, "livecount_flushes_total", "counter",
	       "Successful flush transactions.",
	       (int64_t)atomic_load(&bs->flushes));
	metric(&t, "livecount_flush_errors_total", "counter",
	       "Failed flush transactions (rows kept dirty and retried).",
	       (int64_t)atomic_load(&bs->flush_errors));
	metric(&t, "livecount_db_file_lost_total", "counter",
	       "Times the database file was found deleted, moved or "
	       "replaced (then written again from memory).",
	       (int64_t)atomic_load(&bs->file_lost));
	metric(&t, "livecount_flush_rows_total", "counter",
	       "URL rows written by flushes.", (int64_t)atomic_load(&bs->rows));
	add(&t,
	    "# HELP livecount_flush_seconds_total Time spent in flushes.\n"
	    "# TYPE livecount_flush_seconds_total counter\n"
	    "livecount_flush_seconds_total %.6f\n"
	    "# HELP livecount_flush_seconds_max Longest flush.\n"
	    "# TYPE livecount_flush_seconds_max gauge\n"
	    "livecount_flush_seconds_max %.6f\n",
	    (double)atomic_load(&bs->flush_us_total) / 1e6,
	    (double)atomic_load(&bs->flush_us_max) / 1e6);
	metric(&t, "livecount_dirty_urls", "gauge",
	       "URLs waiting to be written to the database.",
	       (int64_t)atomic_load(&bs->dirty));
	if (srv->idem) {
		const struct lc_idem_stats *is = lc_idem_stats(srv->idem);

		metric(&t, "livecount_idempotency_keys", "gauge",
		       "Idempotency keys remembered.",
		       (int64_t)atomic_load(&is->keys));
		metric(&t, "livecount_idempotency_replays_total", "counter",
		       "Retried likes answered from their key, not counted.",
		       (int64_t)atomic_load(&is->hits));
		metric(&t, "livecount_idempotency_evicted_total", "counter",
		       "Keys dropped before their lifetime: "
		       "max_idempotency_keys reached.",
		       (int64_t)atomic_load(&is->evicted));
		metric(&t, "livecount_idempotency_expired_total", "counter",
		       "Keys dropped at the end of their lifetime.",
		       (int64_t)atomic_load(&is->expired));
	}
	metric(&t, "livecount_body_bytes_in_flight", "gauge",
	       "Request body bytes held by all connections "
	       "(max_body_bytes_in_flight).",
	       (int64_t)atomic_load(&srv->body_bytes_in_flight));
	metric(&t, "livecount_body_refusals_total", "counter",
	       "Request bodies answered 503 for max_body_bytes_in_flight.",
	       (int64_t)atomic_load(&srv->body_refusals));
	if (srv->bridge)
		cluster_metrics(&t, srv);
	process_metrics(&t, srv);
	if (t.oom) {
		free(t.s);
		return NULL;
	}
	*len = t.len;
	return t.s;
}

char *
lc_stats_render(struct lc_server *srv, size_t *len)
{
	struct lc_dispatch_stats *ds = &srv->dispatch->stats;
	int64_t all_l = atomic_load(&ds->all_likes);
	int64_t all_u = atomic_load(&ds->all_unlikes);
	int64_t all_v = atomic_load(&ds->all_views);
	json_t *o = json_pack(
	    "{s:{s:I, s:I, s:I}, s:I, s:I, s:I, s:{s:I, s:I}, s:I, s:I, s:I, "
	    "s:i, s:I}",
	    "totals", "likes", (json_int_t)all_l, "unlikes", (json_int_t)all_u,
	    "count", (json_int_t)(all_l - all_u), "likes_total",
	    (json_int_t)SUM(stats.likes_accepted), "unlikes_total",
	    (json_int_t)SUM(stats.unlikes_accepted), "likes_per_s",
	    (json_int_t)atomic_load(&ds->likes_per_s), "connections", "ws",
	    (json_int_t)SUM(delivery.stats.conns[LC_T_WS]), "sse",
	    (json_int_t)SUM(delivery.stats.conns[LC_T_SSE]), "subscriptions",
	    (json_int_t)SUM(delivery.stats.subscriptions), "urls",
	    (json_int_t)lc_counter_size(srv->counter), "seq",
	    (json_int_t)atomic_load(&srv->dispatch->seq), "tick_ms",
	    srv->cfg->tick_ms, "uptime_s",
	    (json_int_t)((lc_now_ms() - srv->started_ms) / 1000));
	char *s;

	if (o && srv->bridge)
		json_object_set_new(o, "cluster",
				    lc_bridge_status_json(srv->bridge));
	if (o) {
		/* Views: all time in "totals", accepted since start beside
		 * likes_total (API.md: extend, don't change). */
		json_object_set_new(json_object_get(o, "totals"), "views",
				    json_integer(all_v));
		json_object_set_new(o, "views_total",
				    json_integer(SUM(stats.views_accepted)));
	}
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (s)
		*len = strlen(s);
	return s;
}
