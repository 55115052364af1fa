/*
 * livecount — static files from web_root (the dashboard and the SDK).
 *
 * Does: map GET / and safe paths with a known extension to a file, its
 * content type and cache policy, and let lws send it. Does not: list
 * directories or serve anything outside web_root.
 *
 * Threads: the worker thread serving the request.
 */
#ifndef LC_HTTP_STATIC_H
#define LC_HTTP_STATIC_H

#include <libwebsockets.h>

struct lc_worker;

/** Serves path (the request path) or answers 404. */
int lc_http_static_serve(struct lws *wsi, struct lc_worker *w,
			 const char *path);

#endif
