/*
 * livecount: flags and config, start the modules in order, run the dispatch
 * tick, stop in reverse order.
 *
 * Threads: main() becomes the dispatcher thread. It blocks SIGINT, SIGTERM,
 * SIGHUP and SIGUSR1 in every thread before any is created and waits for
 * them with sigtimedwait() between ticks, so no signal handler runs at all.
 *
 * Shutdown order (SIGTERM/SIGINT): drain for drain_ms (/readyz answers
 * 503, everything else is served and ticks run), refuse likes, tell every
 * subscriber goodbye (WebSocket close 1001, SSE retry: hint), stop the
 * workers (no new connections, existing ones closed; every like they
 * acknowledged is in a shard), run a final tick (every shard merged), stop
 * the bridge (a last push) and the batcher (a final, unthrottled flush),
 * exit 0. Nothing acknowledged is lost.
 *
 * A note on clean-up: every module main() starts is a field of struct app,
 * and teardown() releases whatever exists, in reverse order of start. So a
 * failure at any step of start-up and a normal stop take the same road out.
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
#include "lc/http_log.h"
#include "lc/idem.h"
#include "lc/notify.h"
#include "lc/parse.h"
#include "lc/server.h"
#include "lc/store.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libgen.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* Everything main() starts; zero = not started (static storage). */
struct app {
	struct lc_config cfg;
	int argc;
	char **argv; /* kept for SIGHUP's reload */
	sigset_t sigs;
	pthread_t dispatcher_thread;
	struct lc_store *store; /* owned by the batcher once it exists */
	struct lc_counter counter;
	bool counter_up, clustered;
	struct lc_cluster cluster;
	struct lc_idem *idem;
	struct lc_batcher *batcher;
	struct lc_dispatch dispatch;
	bool dispatch_up;
	struct lc_bridge *bridge;
	struct lc_server srv;
	bool server_made, server_running;
	long loaded; /* URLs loaded from the database */
};

/* What main() does next after configure(). */
enum { RUN = -1 };

static void
print_version(void)
{
	char lws[32];
	size_t n;

	/* Debian's lws says "4.1.6-" (no git hash after the dash). */
	snprintf(lws, sizeof(lws), "%s", lws_get_library_version());
	n = strcspn(lws, " ");
	lws[n] = '\0';
	while (n && lws[n - 1] == '-')
		lws[--n] = '\0';
	printf("livecount %s (libwebsockets %s, hiredis %d.%d.%d, SQLite %s, "
	       "jansson %s)\n",
	       LC_VERSION, lws, HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH,
	       sqlite3_libversion(), JANSSON_VERSION);
}

/* A private key others may read is worth a word, not a refusal. */
static void
warn_readable_key(const struct lc_config *cfg)
{
	struct stat st;

	if (cfg->tls_key[0] && !stat(cfg->tls_key, &st) && (st.st_mode & 077))
		fprintf(stderr,
			"livecount: warning: tls_key %s is readable by group "
			"or others (mode %03o); chmod 600 it\n",
			cfg->tls_key, (unsigned)(st.st_mode & 0777));
}

/*
 * Flags, file and environment, then the checks across keys. Answers
 * --help, --version and --check-config itself. Returns RUN, or the exit
 * code: 0 after those three, 2 for a bad configuration.
 */
static int
configure(struct app *a, int argc, char **argv)
{
	bool help, version, check;
	char err[2600];

	a->argc = argc;
	a->argv = argv;
	if (lc_config_from_args(&a->cfg, argc, argv, environ, &help, &version,
				&check, err, sizeof(err)) ||
	    (!help && !version &&
	     lc_config_validate(&a->cfg, err, sizeof(err)))) {
		fprintf(stderr, "livecount: %s\n", err);
		return 2;
	}
	if (help)
		lc_config_usage(stdout);
	else if (version)
		print_version();
	if (help || version)
		return 0;
	warn_readable_key(&a->cfg);
	if (check) {
		lc_config_dump(&a->cfg, stdout);
		fprintf(stderr, "livecount: configuration ok\n");
	}
	return check ? 0 : RUN;
}

/* log_level, for our log and lws' (its notices only at debug). */
static void
apply_log_level(const struct lc_config *cfg)
{
	lc_log_set_level((enum lc_log_level)lc_log_level_parse(cfg->log_level));
	lws_set_log_level(cfg->log_level[0] == 'd'
			      ? LLL_ERR | LLL_WARN | LLL_NOTICE
			      : LLL_ERR,
			  NULL);
}

/*
 * Blocks the signals main waits for in every thread to come (they inherit
 * the mask), before any exists; seeds the hash and the parser.
 */
static void
prepare_process(struct app *a)
{
	apply_log_level(&a->cfg);
	sigemptyset(&a->sigs);
	sigaddset(&a->sigs, SIGINT);
	sigaddset(&a->sigs, SIGTERM);
	sigaddset(&a->sigs, SIGUSR1); /* the leading-edge kick: tick_loop */
	sigaddset(&a->sigs, SIGHUP);  /* reload, never die: reload() */
	pthread_sigmask(SIG_BLOCK, &a->sigs, NULL);
	a->dispatcher_thread = pthread_self();
	signal(SIGPIPE, SIG_IGN);
	lc_hash_seed_init();
	lc_parse_init();
}

/* One level of ./data/ is created; deeper trees are the admin's. */
static int
ensure_parent_dir(const char *path)
{
	char tmp[1024], *dir;

	snprintf(tmp, sizeof(tmp), "%s", path);
	dir = dirname(tmp);
	if (!strcmp(dir, ".") || !strcmp(dir, "/"))
		return 0;
	if (mkdir(dir, 0755) && errno != EEXIST) {
		lc_err("cannot create directory %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The database, the counter table loaded from it, the idempotency keys, and
 * the batcher that will own the store. Returns 0 or the exit code.
 */
static int
open_state(struct app *a)
{
	const struct lc_config *cfg = &a->cfg;
	int64_t t0 = lc_mono_us();
	char err[512];
	long keys;

	if (ensure_parent_dir(cfg->db))
		return 1;
	a->store = lc_store_open(cfg->db, false, err, sizeof(err));
	if (!a->store) {
		lc_err("%s", err);
		return 1;
	}
	if (lc_counter_init(&a->counter, 1024))
		goto oom;
	a->counter_up = true;
	a->counter.max_urls = cfg->max_urls;
	a->clustered = cfg->redis_url[0] != '\0';
	if (a->clustered) {
		lc_cluster_init(&a->cluster, (uint32_t)cfg->node_id,
				lc_store_instance(a->store));
		lc_store_set_cluster(a->store, &a->counter.slots_lock,
				     (uint32_t)cfg->node_id);
	}
	a->loaded = lc_store_load(a->store, &a->counter, lc_now_ms());
	if (a->loaded < 0) {
		lc_err("database: cannot load counters: %s",
		       lc_store_errmsg(a->store));
		return 1;
	}
	lc_info("loaded %ld URLs from %s in %lld ms", a->loaded, cfg->db,
		(long long)(lc_mono_us() - t0) / 1000);
	a->idem = lc_idem_create((size_t)cfg->max_idempotency_keys,
				 (int64_t)cfg->idempotency_ttl_s * 1000);
	if (!a->idem)
		goto oom;
	keys = lc_store_load_keys(a->store, a->idem,
				  lc_now_ms() -
				      (int64_t)cfg->idempotency_ttl_s * 1000);
	if (keys < 0) {
		lc_err("database: cannot load idempotency keys: %s",
		       lc_store_errmsg(a->store));
		return 1;
	}
	if (keys)
		lc_info("loaded %ld idempotency keys", keys);
	/* Its thread starts once the dispatcher it reads exists. */
	a->batcher = lc_batcher_create(a->store, cfg->flush_interval_ms,
				       cfg->max_rows_per_sec);
	if (!a->batcher)
		goto oom;
	return 0;
oom:
	lc_err("out of memory");
	return 1;
}

/* Wakes the dispatcher (main) thread: the leading-edge kick. */
static void
kick_dispatcher(void *arg)
{
	const struct app *a = arg;

	pthread_kill(a->dispatcher_thread, SIGUSR1);
}

/*
 * The dispatcher, the batcher's thread and, in cluster mode, the bridge to
 * Redis (before listening: a node id held by a running node exits 2 here).
 * Workers read the dispatcher (top list, tick seq) from their first request
 * on, so it exists before them; its sources (one per worker) are attached
 * by lc_server_start, before any worker serves and before the first tick.
 */
static int
start_core(struct app *a)
{
	const struct lc_config *cfg = &a->cfg;
	char err[512];

	if (lc_dispatch_init(&a->dispatch, &a->counter, NULL, 0, a->batcher,
			     (size_t)cfg->top_limit_max)) {
		lc_err("out of memory");
		return 1;
	}
	a->dispatch_up = true;
	a->dispatch.watching_interval_ms = cfg->watching_interval_ms;
	a->dispatch.tick_ms = cfg->tick_ms; /* per-URL leading edge */
	a->dispatch.kick.quiet_ms = cfg->tick_ms;
	lc_batcher_set_idem(a->batcher, a->idem, &a->dispatch.seq,
			    (int64_t)cfg->idempotency_ttl_s * 1000);
	lc_batcher_set_table(a->batcher, &a->counter);
	if (lc_batcher_start_thread(a->batcher)) {
		lc_err("cannot start the batcher thread");
		return 1;
	}
	if (a->clustered) {
		a->dispatch.cluster = &a->cluster;
		a->cluster.kick = &a->dispatch.kick;
		a->bridge = lc_bridge_start(cfg->redis_url, &a->counter,
					    &a->cluster, err, sizeof(err));
		if (!a->bridge) {
			lc_err("%s", err);
			return 2;
		}
	}
	lc_dispatch_sum_table(&a->dispatch);
	lc_dispatch_set_kick(&a->dispatch, kick_dispatcher, a);
	return 0;
}

/*
 * The access log, the workers (listening from here on), the first top
 * list; then /readyz says 200 and systemd hears READY=1.
 */
static int
start_serving(struct app *a)
{
	const struct lc_config *cfg = &a->cfg;
	struct lc_server *srv = &a->srv;

	if (lc_http_log_open(cfg->access_log)) {
		lc_err("access_log: cannot open %s: %s", cfg->access_log,
		       strerror(errno));
		return 1;
	}
	srv->cfg = cfg;
	srv->counter = &a->counter;
	srv->dispatch = &a->dispatch;
	srv->batcher = a->batcher;
	srv->idem = a->idem;
	srv->bridge = a->bridge;
	srv->started_ms = lc_now_ms();
	srv->nworkers =
	    cfg->workers ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (srv->nworkers < 1)
		srv->nworkers = 1;
	a->server_made = a->server_running = true;
	if (lc_server_start(srv)) /* attaches the workers' sources */
		return 1;
	lc_dispatch_tick(&a->dispatch, lc_now_ms()); /* first top list */
	atomic_store(&srv->ready, true);
	lc_info("livecount %s listening on %s://%s:%d with %d workers, "
		"tick %d ms, database %s",
		LC_VERSION, cfg->tls_cert[0] ? "https" : "http", cfg->bind,
		srv->port, srv->nworkers, cfg->tick_ms, cfg->db);
	lc_notify("READY=1\nSTATUS=listening on %s:%d, %ld URLs loaded\n"
		  "MAINPID=%ld",
		  cfg->bind, srv->port, a->loaded, (long)getpid());
	return 0;
}

/*
 * SIGHUP: re-reads the configuration the way start did (file, environment,
 * flags), applies the keys the table flags reloadable (log_level) and names
 * the other changed keys as needing a restart (lc_config_reload). A bad
 * configuration is logged and the running one kept. Never exits.
 */
static void
reload(struct app *a)
{
	static struct lc_config fresh;
	bool help, version, check;
	char err[2600];

	lc_notify("RELOADING=1");
	if (lc_config_from_args(&fresh, a->argc, a->argv, environ, &help,
				&version, &check, err, sizeof(err)) ||
	    lc_config_validate(&fresh, err, sizeof(err)))
		lc_err("SIGHUP: configuration not reloaded: %s", err);
	else if (lc_config_reload(&a->cfg, &fresh))
		apply_log_level(&a->cfg);
	lc_notify("READY=1\nSTATUS=configuration reloaded");
}

/*
 * The dispatch loop, until SIGTERM or SIGINT. Runs come every tick_ms,
 * and a kick (SIGUSR1, sent by the first like after a run, lc_kick_maybe)
 * brings the next one to now, at most one per RUN_WINDOW_US: what arrives
 * within that window goes in one run, so 100k changes a second over 100k
 * URLs cost at most ~1000 runs a second. Which URLs a run publishes is
 * decided per URL (dispatch.c, the per-URL leading edge): a lone change to
 * any URL goes out at once, a storm on one URL at most once per tick. A
 * URL held back wakes the loop when its turn comes.
 */
#define RUN_WINDOW_US 1000

static void
tick_loop(struct app *a)
{
	const int64_t tick_us = (int64_t)a->cfg.tick_ms * 1000;
	/*
	 * The cadence is its own schedule, every tick_ms whatever runs a kick
	 * brought in between: a URL whose likes did not kick (it went out
	 * less than a tick ago) is taken by the next cadence run.
	 */
	int64_t cadence = lc_mono_us() + tick_us, kick_at = 0, last_run = 0;

	for (;;) {
		int64_t next = cadence, due, wait;
		int sig;

		if (kick_at && kick_at < next)
			next = kick_at;
		due = lc_dispatch_next_due_ms(&a->dispatch) * 1000;
		if (due && due < next)
			next = due;
		/* Runs at most every half window (a due time at ms grain). */
		if (next < last_run + RUN_WINDOW_US / 2)
			next = last_run + RUN_WINDOW_US / 2;
		wait = next - lc_mono_us();
		if (wait > 0) {
			struct timespec ts = {(time_t)(wait / 1000000),
					      (long)(wait % 1000000) * 1000};

			sig = sigtimedwait(&a->sigs, NULL, &ts);
			if (sig == SIGUSR1) {
				kick_at = last_run + RUN_WINDOW_US;
				continue;
			}
			if (sig == SIGHUP) {
				reload(a);
				continue;
			}
			if (sig > 0) {
				lc_info("received %s, shutting down",
					strsignal(sig));
				return;
			}
			if (sig < 0 && errno != EAGAIN)
				continue; /* EINTR and the like */
			if (lc_mono_us() < next)
				continue;
		}
		{
			int64_t started = lc_mono_us();

			lc_dispatch_tick(&a->dispatch, lc_now_ms());
			last_run = started;
			kick_at = 0;
			/* The cadence follows its own starts: it does not
			 * drift. */
			if (started >= cadence - RUN_WINDOW_US / 2)
				cadence = started + tick_us;
		}
	}
}

/*
 * SIGTERM's drain: drain_ms more of ticks while the workers serve and
 * /readyz answers 503, so a load balancer stops sending new clients
 * before any is refused. A second SIGTERM or SIGINT ends it early.
 */
static void
drain(struct app *a)
{
	const int64_t tick_us = (int64_t)a->cfg.tick_ms * 1000;
	int64_t until = lc_mono_us() + (int64_t)a->cfg.drain_ms * 1000;

	if (a->cfg.drain_ms > 0)
		lc_info("draining for %d ms (/readyz answers 503)",
			a->cfg.drain_ms);
	while (lc_mono_us() < until) {
		int64_t wait = until - lc_mono_us();
		struct timespec ts;
		int sig;

		if (wait > tick_us)
			wait = tick_us;
		ts.tv_sec = (time_t)(wait / 1000000);
		ts.tv_nsec = (long)(wait % 1000000) * 1000;
		sig = sigtimedwait(&a->sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			lc_info("received %s again, ending the drain",
				strsignal(sig));
			break;
		}
		lc_dispatch_tick(&a->dispatch, lc_now_ms());
	}
}

/*
 * The final flush: everything acknowledged written, or retried until
 * shutdown_timeout_ms and the loss named. Returns the exit code.
 */
static int
final_flush(struct app *a)
{
	int64_t lost = 0;
	size_t lost_urls = 0;
	int rc = lc_batcher_stop(a->batcher, a->cfg.shutdown_timeout_ms, &lost,
				 &lost_urls);

	a->batcher = NULL;
	a->store = NULL; /* closed by the batcher */
	if (rc) {
		lc_err("stopped WITHOUT writing everything: %lld acknowledged "
		       "likes and unlikes of %zu URLs could not be written to "
		       "%s within shutdown_timeout_ms (%d ms)",
		       (long long)lost, lost_urls, a->cfg.db,
		       a->cfg.shutdown_timeout_ms);
		return 1;
	}
	lc_info("stopped cleanly; %llu likes and %llu unlikes merged this run",
		(unsigned long long)atomic_load(&a->dispatch.stats.likes),
		(unsigned long long)atomic_load(&a->dispatch.stats.unlikes));
	return 0;
}

/* Releases whatever exists, in reverse order of start. */
static void
teardown(struct app *a)
{
	if (a->server_running)
		lc_server_stop(&a->srv);
	lc_bridge_stop(a->bridge);
	if (a->batcher)
		lc_batcher_stop(a->batcher, a->cfg.shutdown_timeout_ms, NULL,
				NULL);
	else if (a->store)
		lc_store_close(a->store);
	if (a->dispatch_up)
		lc_dispatch_cleanup(&a->dispatch);
	lc_http_log_close();
	if (a->server_made)
		lc_server_free(&a->srv);
	lc_idem_destroy(a->idem);
	if (a->clustered)
		lc_cluster_cleanup(&a->cluster);
	if (a->counter_up)
		lc_counter_cleanup(&a->counter);
}

int
main(int argc, char **argv)
{
	static struct app a;
	int rc = configure(&a, argc, argv);

	if (rc != RUN)
		return rc;
	prepare_process(&a);
	/* Start-up, bottom up; a failure at any step goes to teardown. */
	if ((rc = open_state(&a)) || (rc = start_core(&a)) ||
	    (rc = start_serving(&a)))
		goto out;

	tick_loop(&a);

	/* Shutdown, top down. */
	lc_notify("STOPPING=1\nSTATUS=draining: closing connections, final "
		  "flush");
	atomic_store(&a.srv.leaving, true);
	atomic_store(&a.srv.ready, false);
	drain(&a); /* /readyz says 503, everything else is served */
	atomic_store(&a.srv.draining, true); /* likes refused from here */
	lc_dispatch_tick(&a.dispatch, lc_now_ms()); /* updates before goodbye */
	lc_server_goodbye(&a.srv, 1000);
	lc_server_stop(&a.srv);
	a.server_running = false;
	lc_dispatch_tick(&a.dispatch, lc_now_ms()); /* the final merge */
	lc_bridge_stop(
	    a.bridge); /* a last push of what that tick handed over */
	a.bridge = NULL;
	rc = final_flush(&a);
out:
	teardown(&a);
	return rc;
}
