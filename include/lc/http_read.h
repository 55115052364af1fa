/*
 * livecount — the read API: GET /v1/counts, /v1/top, /v1/history,
 * /v1/stats, /healthz, /readyz, /metrics.
 *
 * Does: read the counter table (plus this worker's pending likes), the
 * dispatcher's top list, the database's per-minute history (handed to
 * the worker's history reader thread, the request parked until it
 * answers: history.h) and the metrics, and reply with JSON or text.
 * Does not: write anything.
 *
 * Threads: the worker thread serving the request. Each returns what the
 * lws HTTP callback returns.
 */
#ifndef LC_HTTP_READ_H
#define LC_HTTP_READ_H

#include <libwebsockets.h>

struct lc_worker;

int lc_http_get_counts(struct lws *wsi, struct lc_worker *w);
int lc_http_get_top(struct lws *wsi, struct lc_worker *w);
int lc_http_get_history(struct lws *wsi, struct lc_worker *w);
int lc_http_get_stats(struct lws *wsi, struct lc_worker *w);
int lc_http_get_metrics(struct lws *wsi, struct lc_worker *w);
int lc_http_get_healthz(struct lws *wsi);
int lc_http_get_readyz(struct lws *wsi, struct lc_worker *w);

#endif
