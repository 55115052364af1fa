/*
 * livecount — HTTP access policy: CORS (allowed_origins) and the write
 * token (Authorization: Bearer, or ?token= for browsers' WebSockets).
 *
 * Does: decide and add the CORS response header. Does not: write replies.
 * Used by the HTTP, WebSocket and SSE transports.
 *
 * Threads: the worker thread serving the request.
 */
#ifndef LC_HTTP_POLICY_H
#define LC_HTTP_POLICY_H

#include "lc/config.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>

/** Whether origin (len bytes) is in allowed_origins ("*" allows all). */
bool lc_http_origin_allowed(const struct lc_config *cfg, const char *origin,
			    size_t len);

/* The longest Origin header we read (scheme://253-byte-host:port fits). */
#define LC_ORIGIN_MAX 1024
/* The longest token we compare (write_token, metrics_token). */
#define LC_TOKEN_MAX 255

enum lc_origin {
	LC_ORIGIN_ABSENT,  /* no Origin header: not a browser's request */
	LC_ORIGIN_ALLOWED, /* in allowed_origins */
	LC_ORIGIN_REFUSED, /* present and not allowed, or not readable */
};

/**
 * The request's Origin against allowed_origins; the origin is copied to
 * buf (*len bytes) when read. One rule for WebSocket, SSE, CORS and writes.
 */
enum lc_origin lc_http_origin(struct lws *wsi, const struct lc_config *cfg,
			      char buf[LC_ORIGIN_MAX + 1], int *len);

/** Whether an Origin is present and not allowed (or not readable). */
bool lc_http_origin_refused(struct lws *wsi, const struct lc_config *cfg);

/**
 * Adds the CORS header for this request's Origin, if it is allowed, at *p
 * (before end). Returns 0, or nonzero when the headers did not fit.
 */
int lc_http_add_cors(struct lws *wsi, const struct lc_config *cfg,
		     unsigned char **p, unsigned char *end);

/**
 * Adds Strict-Transport-Security when serving TLS with hsts_max_age set.
 * Returns 0, or nonzero when the header did not fit.
 */
int lc_http_add_hsts(struct lws *wsi, const struct lc_config *cfg,
		     unsigned char **p, unsigned char *end);

/** Constant-time comparison of tok (len bytes) with write_token. */
bool lc_http_token_matches(const struct lc_config *cfg, const char *tok,
			   size_t len);

/**
 * Whether tok (len bytes) equals the NUL-terminated secret, in a time
 * that depends on neither (LC_TOKEN_MAX steps).
 */
bool lc_token_equal(const char *secret, const char *tok, size_t len);

/** Whether the request carries "Authorization: Bearer <write_token>"
 * (always true when no write_token is configured). */
bool lc_http_authorized(struct lws *wsi, const struct lc_config *cfg);

/** Whether the request may read /metrics and /v1/stats: always when no
 * metrics_token is configured, else with "Authorization: Bearer <it>". */
bool lc_http_metrics_authorized(struct lws *wsi, const struct lc_config *cfg);

#endif
