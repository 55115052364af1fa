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

/**
 * Adds the CORS header for this request's Origin, if it is allowed, at *p
 * (before end). Returns 0, or nonzero when the headers did not fit.
 */
int lc_http_add_cors(struct lws *wsi, const struct lc_config *cfg,
		     unsigned char **p, unsigned char *end);

/** Constant-time comparison of tok (len bytes) with write_token. */
bool lc_http_token_matches(const struct lc_config *cfg, const char *tok,
			   size_t len);

/** Whether the request carries "Authorization: Bearer <write_token>"
 * (always true when no write_token is configured). */
bool lc_http_authorized(struct lws *wsi, const struct lc_config *cfg);

#endif
