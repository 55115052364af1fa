/*
 * livecount — the like API: POST / DELETE /v1/likes.
 *
 * Does: check method, token, length and content type; take likes from the
 * query (?url=U&n=K) or a JSON body (one or a batch) into the worker's
 * delta source, within the per-IP like rate; answer with the count or the
 * number accepted. Does not: collect the body (http.c does, into
 * struct lc_http_req) or count anything itself (dispatch.c merges).
 *
 * Threads: the worker thread serving the request.
 */
#ifndef LC_HTTP_LIKES_H
#define LC_HTTP_LIKES_H

#include "lc/http_routes.h"

#include <libwebsockets.h>

struct lc_worker;

/**
 * LWS_CALLBACK_HTTP for /v1/likes: answers at once, or sets
 * req->body_wanted (and sizes req->body) to read a body first.
 */
int lc_http_likes_start(struct lws *wsi, struct lc_worker *w,
			struct lc_http_req *req);

/** LWS_CALLBACK_HTTP_BODY_COMPLETION: handles the collected body. */
int lc_http_likes_body(struct lws *wsi, struct lc_worker *w,
		       struct lc_http_req *req);

/**
 * LWS_CALLBACK_HTTP_WRITEABLE: writes the answer of a keyed like whose
 * cluster-wide claim came back (req->like_ready). 0, or -1 to close.
 */
int lc_http_likes_writeable(struct lws *wsi, struct lc_http_req *req);

/** The connection closes: a keyed like still waiting is let go. */
void lc_http_likes_closed(struct lc_http_req *req);

#endif
