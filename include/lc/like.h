/*
 * livecount — the one like path: every like and unlike, from every
 * transport (HTTP query, JSON object or batch, WebSocket op), is applied
 * by lc_like_apply, so each meets the same rules in the same order and
 * gets the same answers:
 *
 *   write token -> draining -> per-IP like rate -> idempotency key
 *   (cluster-wide claim first) -> the worker's delta source (max_urls)
 *   -> the answer, read-your-writes (lc_dispatch_read).
 *
 * Does: decide and count, and write the answer's JSON. Does not: parse
 * requests (parse.c), read bodies or write to a socket (the transports).
 *
 * Threads: the worker thread serving the request.
 */
#ifndef LC_LIKE_H
#define LC_LIKE_H

#include "lc/bridge.h"
#include "lc/common.h"
#include "lc/idem.h"
#include "lc/worker.h"
#include "lc/parse.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct lws;

/* One request's likes, as a transport parsed them. */
struct lc_like_req {
	const struct lc_like *items;
	size_t n;
	bool batch;	 /* answered {"accepted":N}, else {"url":U,"count":C} */
	bool views;	 /* views (n >= 1): answered {"url":U,"views":V} */
	bool authorized; /* the transport's write_token check passed */
	struct lws *wsi; /* the client's connection (its IP's like rate) */
	/* A stored idempotency key (lc_idem_make_key) or NULL. */
	const char *key;
	size_t key_len;
	/* WebSocket "id": the answer is the ack {"type":"liked","id":..}. */
	const char *ws_id;
	size_t ws_id_len;
};

struct lc_like_job;

struct lc_like_answer {
	struct lc_idem_answer a; /* status and JSON body */
	struct lc_api_error err; /* when a.status != 200: the same error */
	bool replayed;		 /* the first answer to this key, again */
	int retry_after;	 /* seconds to wait before a retry; 0: none */
	/*
	 * Cluster mode, a key to claim in Redis: not answered yet. The
	 * transport sets deferred->finish and deferred->wsi and answers
	 * when finish(deferred) runs (worker thread), with deferred->ans.
	 */
	struct lc_like_job *deferred;
};

/*
 * A keyed like waiting for its cluster-wide claim (bridge.h): a copy of
 * the request, answered on the worker's thread once the bridge answers.
 * Two references: the claim's (dropped once the answer was handled) and
 * the transport's (dropped with lc_like_job_unref after it answered, or
 * when its client goes: it then sets wsi to NULL first, and the job cleans
 * up alone, releasing its claim).
 */
struct lc_like_job {
	struct lc_kv_job kv; /* first: the claim */
	struct lc_worker_call call;
	_Atomic int refs;
	struct lc_worker *w;
	struct lws *wsi;		       /* the transport's; NULL: gone */
	void (*finish)(struct lc_like_job *j); /* the transport's */
	void *arg;			       /* the transport's */
	struct lc_like_job *tnext;	       /* the transport's list */
	struct lc_like_req req;		       /* items and strings: copies */
	struct lc_like_answer ans;
	struct lc_like items1; /* req.items for a single like */
};

/** Drops a reference (the last frees the job). Any thread. */
void lc_like_job_unref(struct lc_like_job *j);

/**
 * Applies a like request and writes its answer into *out (status 200 and
 * the answer, or the error in both out->err and out->a's error shape).
 * With a key, a retry of a request already counted is answered with the
 * first answer (out->replayed) and counted nothing. In cluster mode a key
 * this node does not know is claimed in Redis without waiting: then
 * out->deferred is set and nothing is answered yet (see lc_like_job).
 */
void lc_like_apply(struct lc_worker *w, const struct lc_like_req *r,
		   struct lc_like_answer *out);

#endif
