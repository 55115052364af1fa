/*
 * livecount — the HTTP transport's lws glue (protocols[0]).
 *
 * Does: route each request by path (http_routes.h) and method to the like
 * API (http_likes.c), the read API (http_read.c), the SSE stream (sse.c)
 * or static files (http_static.c); collect request bodies; free each
 * connection's record at LWS_CALLBACK_WSI_DESTROY. Does not: write replies
 * itself (http_reply.c) or decide CORS and auth (http_policy.c).
 *
 * Threads: lws calls it on the worker thread owning the connection.
 */
#ifndef LC_HTTP_H
#define LC_HTTP_H

#include "lc/http_routes.h"

#include <libwebsockets.h>

/** protocols[0]'s callback; per-session data is struct lc_http_req. */
int lc_http_callback(struct lws *wsi, enum lws_callback_reasons reason,
		     void *user, void *in, size_t len);

#endif
