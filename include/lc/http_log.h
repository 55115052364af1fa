/*
 * livecount — the access log: one line per HTTP request, off by default.
 *
 * Does: open the access_log target ("" off, "-" stderr, else a file opened
 * for append) and write one line per answered request:
 *
 *   2026-11-26T03:10:00.123Z 127.0.0.1 GET /v1/likes 200 22 0.000153
 *
 * time (UTC, ms), client IPv4, method, path without the query string (the
 * query carries the liked URLs and tokens: not logged), status, body bytes
 * sent, seconds from the request's arrival to its answer. A WebSocket
 * upgrade logs 101 and an SSE stream 200 with 0 bytes when it starts.
 * Does not: rotate (reopen on SIGHUP is left to logrotate's copytruncate).
 *
 * Threads: lc_http_log_open / close on main before the workers start and
 * after they stop; lc_http_log from any worker (one write(2) per line on
 * an O_APPEND descriptor, so lines never interleave).
 */
#ifndef LC_HTTP_LOG_H
#define LC_HTTP_LOG_H

#include "lc/http_routes.h"

#include <libwebsockets.h>
#include <stddef.h>

/** Opens the target; 0, or -1 with errno set (file cannot be opened). */
int lc_http_log_open(const char *target);

/** Closes the target (no-op when off). */
void lc_http_log_close(void);

/** Logs one answered request when the log is on. Worker thread. */
void lc_http_log(struct lws *wsi, const struct lc_http_req *req, int status,
		 size_t bytes);

#endif
