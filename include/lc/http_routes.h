/*
 * livecount — the HTTP routes, listed once.
 *
 * A table, no code: http.c matches request paths against it and dispatches
 * on the route, metrics.c labels livecount_http_requests_total with it, and
 * the reply writer (http_reply.c) adds CORS headers for the API routes.
 * Also the per-request state lws keeps for protocols[0].
 *
 * Threads: any (constants); struct lc_http_req belongs to the worker
 * thread owning the connection.
 */
#ifndef LC_HTTP_ROUTES_H
#define LC_HTTP_ROUTES_H

#include "lc/idem.h"
#include "lc/parse.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * X(ID, path, metrics label). Routes before STATIC are the cookie-free API
 * that allowed origins may call (CORS); STATIC and OTHER have no fixed path.
 */
/* clang-format off */
#define LC_ROUTES(X)                                                           \
	X(LIKES,   "/v1/likes",   "likes")                                     \
	X(VIEWS,   "/v1/views",   "views")                                     \
	X(COUNTS,  "/v1/counts",  "counts")                                    \
	X(TOP,     "/v1/top",     "top")                                       \
	X(HISTORY, "/v1/history", "history")                                   \
	X(STATS,   "/v1/stats",   "stats")                                     \
	X(HEALTHZ, "/healthz",    "healthz")                                   \
	X(READYZ,  "/readyz",     "readyz")                                    \
	X(METRICS, "/metrics",    "metrics")                                   \
	X(EVENTS,  "/v1/events",  "events")                                    \
	X(WS,      "/v1/ws",      "ws")                                        \
	X(STATIC,  NULL,          "static")                                    \
	X(OTHER,   NULL,          "other")
/* clang-format on */

enum lc_route {
#define LC_ROUTE_ENUM(id, path, label) LC_ROUTE_##id,
	LC_ROUTES(LC_ROUTE_ENUM)
#undef LC_ROUTE_ENUM
	    LC_ROUTE_MAX
};

enum lc_http_method {
	LC_M_GET,
	LC_M_POST,
	LC_M_DELETE,
	LC_M_HEAD,
	LC_M_OPTIONS,
	LC_M_OTHER
};

struct lc_like_job;

/* Per-request state (lws per-session data of protocols[0]). */
struct lc_http_req {
	uint8_t route;	   /* enum lc_route */
	uint8_t method;	   /* enum lc_http_method */
	bool body_wanted;  /* body is being collected */
	bool body_refused; /* already answered; ignore the rest */
	char *body;	   /* collected body (owned, freed on close) */
	size_t body_len, body_cap;
	size_t body_expected; /* the declared Content-Length, not reserved */
	int64_t deadline_ms;  /* whole-body deadline */
	int64_t start_us;     /* monotonic, when the request arrived (log) */
	struct lc_batch_scan scan; /* batch items, as body bytes arrive */
	uint8_t idem_len;	   /* Idempotency-Key, copied at the headers */
	char idem_key[LC_IDEM_KEY_MAX + 1]; /* "h:" + key */
	/* Cluster mode: a keyed like waiting for its claim (like.h). */
	struct lc_like_job *like_job;
	bool like_ready; /* its answer is in like_job: write it */
	bool like_close; /* then close the connection */
};

#endif
