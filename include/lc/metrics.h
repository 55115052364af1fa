/*
 * livecount — metrics: the per-worker statistics, /metrics (Prometheus
 * text exposition) and /v1/stats (JSON for the dashboard).
 *
 * Does: hold the HTTP and like counters of a worker, count a reply, render
 * every worker's, the dispatcher's and the batcher's numbers. Does not:
 * serve HTTP (http_read.c does) or hold the delivery counters (delivery.h).
 *
 * Threads: counters are written by their worker only (LC_STAT_ADD);
 * rendering runs on whichever worker serves the request and takes no locks.
 * Labels are fixed route names, status codes and transports; never a URL.
 */
#ifndef LC_METRICS_H
#define LC_METRICS_H

#include "lc/common.h"
#include "lc/http_routes.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct lc_server;

/* HTTP statuses tracked in metrics; anything else counts as "other". */
/* clang-format off */
#define LC_STATUSES(X)                                                         \
	X(200) X(204) X(304) X(400) X(401) X(403) X(404) X(405) X(408)        \
	X(411) X(413) X(415) X(426) X(429) X(431) X(500) X(503)
enum lc_status_idx {
#define LC_STATUS_ENUM(c) LC_S_##c,
	LC_STATUSES(LC_STATUS_ENUM)
#undef LC_STATUS_ENUM
	LC_S_OTHER,
	LC_S_MAX
};
/* clang-format on */

/* Written by the owning worker only (LC_STAT_ADD); read by /metrics. */
struct lc_worker_stats {
	_Atomic uint64_t http[LC_ROUTE_MAX][LC_S_MAX];
	_Atomic uint64_t likes_accepted;      /* like units (sum of n > 0) */
	_Atomic uint64_t unlikes_accepted;    /* unlike units */
	_Atomic uint64_t views_accepted;      /* view units */
	_Atomic uint64_t client_errors;	      /* WS error frames sent */
	_Atomic uint64_t accepts;	      /* connections accepted */
	_Atomic uint64_t accept_refused;      /* over max_connections */
	_Atomic uint64_t slow_headers_closed; /* no headers by the deadline */
};

/** Counts one HTTP reply of route with status. Owning worker. */
void lc_metrics_count_http(struct lc_worker_stats *st, enum lc_route route,
			   int status);

/**
 * Renders the Prometheus text exposition into a new malloc'd string (the
 * caller frees it) and sets *len; NULL when out of memory. Any worker.
 */
char *lc_metrics_render(struct lc_server *srv, size_t *len);

/** Renders GET /v1/stats JSON; like lc_metrics_render. */
char *lc_stats_render(struct lc_server *srv, size_t *len);

#endif
