/*
 * `ingest` mode: keep-alive POSTs of single likes or JSON batches as fast as
 * possible or at a fixed rate, then a check that the server counted exactly
 * the likes it acknowledged. One epoll loop per process; with --procs each
 * process uses its own URLs (prefix + "p<i>-"), connections and share of
 * the rate, and verifies its own URLs.
 */
#include "lc_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

static int
share(int total, int parts, int i)
{
	return total / parts + (i < total % parts ? 1 : 0);
}

static void
loop_once(int ep, rpool_t *rp, int timeout_ms)
{
	struct epoll_event evs[256];
	int n = epoll_wait(ep, evs, 256, timeout_ms);
	for (int i = 0; i < n; i++) {
		uint32_t idx = (uint32_t)evs[i].data.u64;
		if (idx == 0xffffffffu)
			rp_timer_event(rp);
		else
			rp_event(rp, idx, evs[i].events);
	}
	rp_poll(rp, lc_now_ns());
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && !lc_stop)
		;
}

int
run_ingest(const cfg_t *cfg, int proc, shm_t *shm, stats_t *st)
{
	char prefix[600];
	if (cfg->procs > 1)
		snprintf(prefix, sizeof(prefix), "%sp%d-", cfg->url_prefix,
			 proc);
	else
		snprintf(prefix, sizeof(prefix), "%s", cfg->url_prefix);
	urltab_t t;
	if (urltab_build(&t, prefix, (uint32_t)cfg->urls, cfg->batch > 0) < 0) {
		fprintf(stderr, "livecount-load: cannot build the URL table\n");
		return -1;
	}
	int nconn = share(cfg->connections, cfg->procs, proc);
	if (nconn < 1)
		nconn = 1;
	double rate = cfg->rate > 0 ? cfg->rate / cfg->procs : 0;
	st->connections = (uint64_t)nconn;

	int64_t *before = NULL, *after = calloc(t.n, sizeof(int64_t));
	if (cfg->verify && cfg->prefix_given) {
		before = calloc(t.n, sizeof(int64_t));
		if (lc_fetch_counts(cfg, &t, before) < 0) {
			lc_err(st, LC_E_VERIFY);
			free(before);
			before = NULL;
		}
	}

	int ep = epoll_create1(EPOLL_CLOEXEC);
	rpool_t rp;
	if (ep < 0 ||
	    rp_init(&rp, cfg, &t, st, ep, 1, nconn, cfg->batch, rate,
		    (uint32_t)(proc * (cfg->connections / cfg->procs + 1))) <
		0) {
		fprintf(stderr,
			"livecount-load: out of memory or descriptors\n");
		return -1;
	}
	if (cfg->max_requests)
		rp.max_requests =
		    (uint64_t)share((int)cfg->max_requests, cfg->procs, proc);
	rp_connect_all(&rp);
	uint64_t cdl = lc_now_ns() + (uint64_t)(cfg->connect_timeout_s * 1e9);
	while (!lc_stop && rp_connected(&rp) < nconn && lc_now_ns() < cdl)
		loop_once(ep, &rp, 10);
	if (rp_connected(&rp) < nconn)
		fprintf(stderr,
			"livecount-load: only %d of %d connections up, "
			"starting anyway\n",
			rp_connected(&rp), nconn);

	uint64_t t0 = lc_now_ns();
	uint64_t t_end = t0 + (uint64_t)(cfg->duration_s * 1e9);
	double cpu0 = lc_cpu_s(), scpu0 = 0, scpu1 = 0;
	long rss;
	if (cfg->server_pid && proc == 0 &&
	    lc_server_sample(cfg, &scpu0, &rss) == 0)
		st->server_rss_start_kb = rss;
	rp_start(&rp, t0, t_end);
	uint64_t next_pg = t0 + 1000000000ull;
	while (!lc_stop) {
		loop_once(ep, &rp, 10);
		uint64_t now = lc_now_ns();
		if (now >= next_pg) {
			lc_progress(cfg, shm, proc, st, now, t0, "ingest");
			next_pg += 1000000000ull;
		}
		if (now >= t_end)
			break;
		if (rp.max_requests && rp.nsent >= rp.max_requests &&
		    rp.busy == 0)
			break; /* --requests reached */
	}
	uint64_t stop_at = lc_now_ns();
	rp_stop(&rp, stop_at);
	st->phase_s = (double)(stop_at - t0) / 1e9;
	if (cfg->server_pid && proc == 0 &&
	    lc_server_sample(cfg, &scpu1, &rss) == 0) {
		st->server_rss_end_kb = rss;
		st->server_cpu_s = scpu1 - scpu0;
		st->server_cpu_wall_s = st->phase_s;
	}
	double drain_s = cfg->timeout_s < 10 ? cfg->timeout_s : 10;
	uint64_t ddl = stop_at + (uint64_t)(drain_s * 1e9);
	while (rp.busy > 0 && lc_now_ns() < ddl && !lc_stop)
		loop_once(ep, &rp, 10);
	rp_abandon(&rp);
	st->cpu_s = lc_cpu_s() - cpu0;
	st->cpu_wall_s = (double)(lc_now_ns() - t0) / 1e9;
	lc_progress(cfg, shm, proc, st, lc_now_ns(), t0, "ingest");

	if (cfg->verify && !lc_stop) {
		/* Counts read back are at most one dispatch tick stale: wait a
		 * few. */
		int settle = cfg->tick_ms * 3 < 300 ? 300 : cfg->tick_ms * 3;
		sleep_ms(settle);
		if (lc_fetch_counts(cfg, &t, after) < 0) {
			lc_err(st, LC_E_VERIFY);
		} else {
			int bad = rp_verify(&rp, before, after, false);
			if (bad) {
				/* Tell a late read apart from a lost like: read
				 * once more. */
				sleep_ms(1000);
				if (lc_fetch_counts(cfg, &t, after) < 0)
					lc_err(st, LC_E_VERIFY);
				int bad2 = rp_verify(&rp, before, after, true);
				st->stale_reads +=
				    (uint64_t)(bad > bad2 ? bad - bad2 : 0);
			} else {
				rp_verify(&rp, before, after, true);
			}
		}
	}
	rp_close(&rp);
	close(ep);
	free(before);
	free(after);
	urltab_free(&t);
	return 0;
}
