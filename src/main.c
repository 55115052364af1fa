/*
 * livecount: flags and config, start the modules in order, run the dispatch
 * tick, stop in reverse order.
 *
 * Threads: main() becomes the dispatcher thread. It blocks SIGINT/SIGTERM
 * in every thread before any is created and waits for them with
 * sigtimedwait() between ticks, so no signal handler runs at all.
 *
 * Shutdown order (SIGTERM/SIGINT): drain for drain_ms (/readyz answers
 * 503, everything else is served and ticks run), refuse likes, tell every
 * subscriber goodbye (WebSocket close 1001, SSE retry: hint), stop the
 * workers (no new connections, existing ones closed; every like they
 * acknowledged is in a shard), run a final tick (every shard merged), stop
 * the batcher (a final, unthrottled flush), exit 0. Nothing acknowledged
 * is lost.
 */
#define _GNU_SOURCE
#include "lc/batcher.h"
#include "lc/bridge.h"
#include "lc/cluster.h"
#include "lc/common.h"
#include "lc/config.h"
#include "lc/counter.h"
#include "lc/dispatch.h"
#include "lc/hash.h"
#include "lc/idem.h"
#include "lc/http_log.h"
#include "lc/notify.h"
#include "lc/parse.h"
#include "lc/server.h"
#include "lc/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libgen.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static int
ensure_parent_dir(const char *path)
{
	char tmp[1024], *dir;

	snprintf(tmp, sizeof(tmp), "%s", path);
	dir = dirname(tmp);
	if (!strcmp(dir, ".") || !strcmp(dir, "/"))
		return 0;
	if (mkdir(dir, 0755) && errno != EEXIST) {
		/* One level is what ./data/ needs; deeper trees are the
		 * admin's. */
		lc_err("cannot create directory %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Wakes the dispatcher (main) thread: the leading-edge kick. */
static pthread_t dispatcher_thread;

static void
kick_dispatcher(void *arg)
{
	(void)arg;
	pthread_kill(dispatcher_thread, SIGUSR1);
}

/*
 * The dispatch loop. Ticks run every tick_ms; a kick (SIGUSR1, sent by the
 * first like after a tick, lc_kick_maybe) moves the next tick to
 * "now" if no tick with changes ran in the last tick_ms, else to tick_ms
 * after that one: a lone like goes out at once, a storm at most once per
 * tick.
 */
/*
 * SIGHUP: re-reads the configuration the way start did (file, environment,
 * flags) and applies what can change in a running server: log_level.
 * Other changed keys are named in the log as needing a restart; a bad
 * file is logged and the running configuration kept. Never exits.
 */
static int saved_argc;
static char **saved_argv;

static void
reload(const struct lc_config *running)
{
	static struct lc_config fresh;
	bool help, version, check;
	char err[2600];
	FILE *f;
	char *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;

	if (lc_config_from_args(&fresh, saved_argc, saved_argv, environ, &help,
				&version, &check, err, sizeof(err))) {
		lc_err("SIGHUP: configuration not reloaded: %s", err);
		return;
	}
	lc_log_set_level(
	    (enum lc_log_level)lc_log_level_parse(fresh.log_level));
	/* Name the keys whose change needs a restart. */
	f = open_memstream(&a, &alen);
	if (f) {
		lc_config_dump(running, f);
		fclose(f);
	}
	f = open_memstream(&b, &blen);
	if (f) {
		lc_config_dump(&fresh, f);
		fclose(f);
	}
	if (a && b) {
		char *sa, *sb, *la = strtok_r(a, "\n", &sa),
			       *lb = strtok_r(b, "\n", &sb);

		for (; la && lb; la = strtok_r(NULL, "\n", &sa),
				 lb = strtok_r(NULL, "\n", &sb))
			if (strcmp(la, lb) && strncmp(la, "log_level", 9))
				lc_warn(
				    "SIGHUP: '%s' needs a restart (running: "
				    "'%s')",
				    lb, la);
	}
	free(a);
	free(b);
	lc_info("SIGHUP: configuration reloaded (log_level = %s)",
		fresh.log_level);
}

/*
 * --check-config: what start would refuse, checked without starting: the
 * bind address, the database's directory (writable, or creatable one
 * level), the web root.
 */
/* Can a file be created in dir? (access() says yes to root anywhere.) */
static bool
dir_writable(const char *dir)
{
	char tmp[1100];
	int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);

	if (fd >= 0) {
		close(fd);
		return true;
	}
	snprintf(tmp, sizeof(tmp), "%s/.livecount-check-XXXXXX", dir);
	fd = mkstemp(tmp);
	if (fd < 0)
		return false;
	close(fd);
	unlink(tmp);
	return true;
}

static int
check_paths(const struct lc_config *cfg, char *err, size_t errlen)
{
	struct in_addr a;
	struct stat st;
	char tmp[1024], *dir;

	if (inet_pton(AF_INET, cfg->bind, &a) != 1) {
		snprintf(err, errlen, "bind: '%s' is not an IPv4 address",
			 cfg->bind);
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s", cfg->db);
	dir = dirname(tmp);
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode) || !dir_writable(dir)) {
			snprintf(err, errlen,
				 "db: directory %s is not writable", dir);
			return -1;
		}
	} else {
		char parent[1024];

		snprintf(parent, sizeof(parent), "%s", dir);
		if (!dir_writable(dirname(parent))) {
			snprintf(err, errlen,
				 "db: directory %s does not exist and cannot "
				 "be created",
				 dir);
			return -1;
		}
	}
	if (access(cfg->db, F_OK) == 0 && access(cfg->db, R_OK | W_OK)) {
		snprintf(err, errlen, "db: %s is not readable and writable",
			 cfg->db);
		return -1;
	}
	if (stat(cfg->web_root, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "web_root: %s is not a directory",
			 cfg->web_root);
		return -1;
	}
	return 0;
}

static void
tick_loop(struct lc_dispatch *d, const sigset_t *sigs, int tick_ms,
	  const struct lc_config *cfg)
{
	const int64_t tick_us = (int64_t)tick_ms * 1000;
	/*
	 * A tick "ran" when it started; the next may start tick_ms after that
	 * start, less a 2 % slack. Counted from its end, or without slack,
	 * every like arriving exactly a tick after the last one waited for
	 * the previous tick's duration and the wake-up's latency, and the
	 * wait grew like by like (measured: 1000 subscribers, 10 likes/s,
	 * tick 100 ms: dispatch 45 ms after the like at p50 by the 50th).
	 */
	const int64_t slack_us = tick_us / 50;
	int64_t next = lc_mono_us() + tick_us, last_change = -tick_us;

	for (;;) {
		int64_t wait = next - lc_mono_us();
		int sig;

		if (wait > 0) {
			struct timespec ts = {(time_t)(wait / 1000000),
					      (long)(wait % 1000000) * 1000};

			sig = sigtimedwait(sigs, NULL, &ts);
			if (sig == SIGUSR1) {
				if (last_change + tick_us - slack_us < next)
					next = last_change + tick_us - slack_us;
				continue;
			}
			if (sig == SIGHUP) {
				lc_notify("RELOADING=1");
				reload(cfg);
				lc_notify("READY=1\nSTATUS=configuration "
					  "reloaded");
				continue;
			}
			if (sig > 0) {
				lc_info("received %s, shutting down",
					strsignal(sig));
				return;
			}
			if (sig < 0 && errno == EINTR)
				continue;
			if (sig < 0 && errno != EAGAIN)
				continue;
			if (lc_mono_us() < next)
				continue;
		}
		{
			int64_t started = lc_mono_us();

			if (lc_dispatch_tick(d, lc_now_ms()))
				last_change = started;
			/* The cadence follows starts, so it does not drift. */
			next = started + tick_us;
			if (next <= lc_mono_us())
				next = lc_mono_us() + tick_us / 10;
		}
	}
}

/*
 * SIGTERM's drain: drain_ms more of ticks while the workers serve and
 * /readyz answers 503, so a load balancer stops sending new clients
 * before any is refused. A second SIGTERM or SIGINT ends it early.
 */
static void
drain(struct lc_dispatch *d, const sigset_t *sigs, int tick_ms, int drain_ms)
{
	int64_t until = lc_mono_us() + (int64_t)drain_ms * 1000;

	if (drain_ms > 0)
		lc_info("draining for %d ms (/readyz answers 503)", drain_ms);
	while (lc_mono_us() < until) {
		int64_t wait = until - lc_mono_us();
		struct timespec ts;
		int sig;

		if (wait > (int64_t)tick_ms * 1000)
			wait = (int64_t)tick_ms * 1000;
		ts.tv_sec = (time_t)(wait / 1000000);
		ts.tv_nsec = (long)(wait % 1000000) * 1000;
		sig = sigtimedwait(sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			lc_info("received %s again, ending the drain",
				strsignal(sig));
			break;
		}
		lc_dispatch_tick(d, lc_now_ms());
	}
}

int
main(int argc, char **argv)
{
	static struct lc_config cfg;
	struct lc_counter counter;
	struct lc_dispatch dispatch;
	struct lc_server srv;
	struct lc_source **sources = NULL;
	struct lc_batcher *batcher;
	struct lc_bridge *bridge = NULL;
	struct lc_idem *idem = NULL;
	static struct lc_cluster cluster;
	bool clustered;
	struct lc_store *store;
	bool help, version, check;
	char err[2600];
	sigset_t sigs;
	long loaded;
	int64_t t0;
	int rc = 1;

	saved_argc = argc;
	saved_argv = argv;
	if (lc_config_from_args(&cfg, argc, argv, environ, &help, &version,
				&check, err, sizeof(err))) {
		fprintf(stderr, "livecount: %s\n", err);
		return 2;
	}
	if (help) {
		lc_config_usage(stdout);
		return 0;
	}
	if (version) {
		char lws[32];
		size_t n;

		/* Debian's lws says "4.1.6-" (no git hash after the dash). */
		snprintf(lws, sizeof(lws), "%s", lws_get_library_version());
		n = strcspn(lws, " ");
		lws[n] = '\0';
		while (n && lws[n - 1] == '-')
			lws[--n] = '\0';
		printf("livecount %s (libwebsockets %s, hiredis %d.%d.%d, "
		       "SQLite %s, jansson %s)\n",
		       LC_VERSION, lws, HIREDIS_MAJOR, HIREDIS_MINOR,
		       HIREDIS_PATCH, sqlite3_libversion(), JANSSON_VERSION);
		return 0;
	}
	if (!cfg.tls_cert[0] != !cfg.tls_key[0]) {
		fprintf(stderr,
			"livecount: tls_cert and tls_key go together\n");
		return 2;
	}
	if (cfg.tls_cert[0] &&
	    (access(cfg.tls_cert, R_OK) || access(cfg.tls_key, R_OK))) {
		fprintf(stderr, "livecount: tls_cert/tls_key: cannot read %s\n",
			access(cfg.tls_cert, R_OK) ? cfg.tls_cert
						   : cfg.tls_key);
		return 2;
	}
	clustered = cfg.redis_url[0] != '\0';
	if (clustered) {
		static struct lc_redis_url url;

		/* The message names the problem, never the password. */
		if (lc_bridge_parse_url(cfg.redis_url, &url, err,
					sizeof(err))) {
			fprintf(stderr, "livecount: %s\n", err);
			return 2;
		}
		if (!cfg.node_id) {
			fprintf(stderr, "livecount: node_id: cluster mode "
					"(redis_url) needs a node_id, 1..1023, "
					"unique in the cluster\n");
			return 2;
		}
	}
	if (check) {
		if (check_paths(&cfg, err, sizeof(err))) {
			fprintf(stderr, "livecount: %s\n", err);
			return 2;
		}
		lc_config_dump(&cfg, stdout);
		fprintf(stderr, "livecount: configuration ok\n");
		return 0;
	}
	lc_log_set_level((enum lc_log_level)lc_log_level_parse(cfg.log_level));
	lws_set_log_level(
	    cfg.log_level[0] == 'd' ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR,
	    NULL);

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGUSR1); /* the leading-edge kick, see tick_loop */
	sigaddset(&sigs, SIGHUP);  /* reload, never die: see reload() */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	dispatcher_thread = pthread_self();
	signal(SIGPIPE, SIG_IGN);
	lc_hash_seed_init();
	lc_parse_init();

	if (ensure_parent_dir(cfg.db))
		return 1;
	store = lc_store_open(cfg.db, false, err, sizeof(err));
	if (!store) {
		lc_err("%s", err);
		return 1;
	}
	if (lc_counter_init(&counter, 1024)) {
		lc_err("out of memory");
		return 1;
	}
	counter.max_urls = cfg.max_urls;
	if (clustered) {
		lc_cluster_init(&cluster, (uint32_t)cfg.node_id);
		lc_store_set_cluster(store, &counter.slots_lock,
				     (uint32_t)cfg.node_id);
	}
	t0 = lc_mono_us();
	loaded = lc_store_load(store, &counter, lc_now_ms());
	if (loaded < 0) {
		lc_err("database: cannot load counters: %s",
		       lc_store_errmsg(store));
		lc_store_close(store);
		return 1;
	}
	lc_info("loaded %ld URLs from %s in %lld ms", loaded, cfg.db,
		(long long)(lc_mono_us() - t0) / 1000);

	idem = lc_idem_create((size_t)cfg.max_idempotency_keys,
			      (int64_t)cfg.idempotency_ttl_s * 1000);
	if (!idem) {
		lc_err("out of memory");
		return 1;
	}
	{
		long keys = lc_store_load_keys(
		    store, idem,
		    lc_now_ms() - (int64_t)cfg.idempotency_ttl_s * 1000);

		if (keys < 0) {
			lc_err("database: cannot load idempotency keys: %s",
			       lc_store_errmsg(store));
			return 1;
		}
		if (keys)
			lc_info("loaded %ld idempotency keys", keys);
	}
	/* Its thread starts once the dispatcher it reads exists. */
	batcher = lc_batcher_create(store, cfg.flush_interval_ms,
				    cfg.max_rows_per_sec);
	if (!batcher) {
		lc_err("out of memory");
		return 1;
	}

	memset(&srv, 0, sizeof(srv));
	srv.cfg = &cfg;
	srv.counter = &counter;
	srv.dispatch = &dispatch;
	srv.batcher = batcher;
	srv.idem = idem;
	srv.started_ms = lc_now_ms();
	srv.nworkers =
	    cfg.workers ? cfg.workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (srv.nworkers < 1)
		srv.nworkers = 1;

	/*
	 * Workers read the dispatcher (top list, tick seq) from their first
	 * request on, so it is initialised first; its sources (one per
	 * worker) are attached once the workers exist, before the first tick.
	 */
	if (lc_dispatch_init(&dispatch, &counter, NULL, 0, batcher,
			     (size_t)cfg.top_limit_max))
		goto out_batcher;
	lc_batcher_set_idem(batcher, idem, &dispatch.seq,
			    (int64_t)cfg.idempotency_ttl_s * 1000);
	if (lc_batcher_start_thread(batcher)) {
		lc_err("cannot start the batcher thread");
		goto out_batcher;
	}
	if (clustered) {
		/* Before listening: a duplicate node id exits here. */
		dispatch.cluster = &cluster;
		cluster.kick = &dispatch.kick;
		bridge = lc_bridge_start(cfg.redis_url, &counter, &cluster, err,
					 sizeof(err));
		if (!bridge) {
			lc_err("%s", err);
			lc_dispatch_cleanup(&dispatch);
			lc_batcher_stop(batcher, cfg.shutdown_timeout_ms, NULL,
					NULL);
			lc_cluster_cleanup(&cluster);
			lc_counter_cleanup(&counter);
			return 2;
		}
		srv.bridge = bridge;
	}
	lc_dispatch_sum_table(&dispatch);
	lc_dispatch_set_kick(&dispatch, kick_dispatcher, NULL);
	if (lc_http_log_open(cfg.access_log)) {
		lc_err("access_log: cannot open %s: %s", cfg.access_log,
		       strerror(errno));
		goto out_server;
	}
	if (lc_server_start(&srv))
		goto out_server;
	sources = calloc((size_t)srv.nworkers, sizeof(*sources));
	if (!sources)
		goto out_server;
	for (int i = 0; i < srv.nworkers; i++)
		sources[i] = &srv.workers[i].source;
	dispatch.sources = sources;
	dispatch.nsources = (size_t)srv.nworkers;
	lc_dispatch_tick(&dispatch, lc_now_ms()); /* first top list */
	atomic_store(&srv.ready, true);
	lc_info("livecount %s listening on %s://%s:%d with %d workers, "
		"tick %d ms, database %s",
		LC_VERSION, cfg.tls_cert[0] ? "https" : "http", cfg.bind,
		srv.port, srv.nworkers, cfg.tick_ms, cfg.db);

	lc_notify("READY=1\nSTATUS=listening on %s:%d, %ld URLs loaded\n"
		  "MAINPID=%ld",
		  cfg.bind, srv.port, loaded, (long)getpid());
	tick_loop(&dispatch, &sigs, cfg.tick_ms, &cfg);
	lc_notify("STOPPING=1\nSTATUS=draining: closing connections, final "
		  "flush");

	/* The drain: /readyz says 503, everything else is served. */
	atomic_store(&srv.leaving, true);
	atomic_store(&srv.ready, false);
	drain(&dispatch, &sigs, cfg.tick_ms, cfg.drain_ms);
	atomic_store(&srv.draining, true);
	lc_dispatch_tick(&dispatch, lc_now_ms()); /* updates before goodbye */
	lc_server_goodbye(&srv, 1000);
	lc_server_stop(&srv);
	lc_dispatch_tick(&dispatch, lc_now_ms()); /* the final merge */
	/* A last push of what the final tick handed to the bridge. */
	lc_bridge_stop(bridge);
	bridge = NULL;
	{
		int64_t lost = 0;
		size_t lost_urls = 0;

		rc = lc_batcher_stop(batcher, cfg.shutdown_timeout_ms, &lost,
				     &lost_urls)
			 ? 1
			 : 0;
		batcher = NULL;
		if (rc)
			lc_err("stopped WITHOUT writing everything: %lld "
			       "acknowledged likes and unlikes of %zu URLs "
			       "could not be written to %s within "
			       "shutdown_timeout_ms (%d ms)",
			       (long long)lost, lost_urls, cfg.db,
			       cfg.shutdown_timeout_ms);
	}
	lc_dispatch_cleanup(&dispatch);
	if (!rc)
		lc_info(
		    "stopped cleanly; %llu likes and %llu unlikes merged "
		    "this run",
		    (unsigned long long)atomic_load(&dispatch.stats.likes),
		    (unsigned long long)atomic_load(&dispatch.stats.unlikes));
	goto out_free;

out_server:
	lc_server_stop(&srv);
	lc_dispatch_cleanup(&dispatch);
out_batcher:
	rc = 1;
	lc_bridge_stop(bridge);
	if (batcher)
		lc_batcher_stop(batcher, cfg.shutdown_timeout_ms, NULL, NULL);
out_free:
	lc_http_log_close();
	if (clustered)
		lc_cluster_cleanup(&cluster);
	lc_server_free(&srv);
	free(sources);
	lc_idem_destroy(idem);
	lc_counter_cleanup(&counter);
	return rc;
}
