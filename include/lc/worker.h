/*
 * livecount — a worker and the services its transports share: the state
 * every worker shares (struct lc_server), each worker's scratch buffer,
 * its connection records and limits, its like-rate buckets, and the
 * mailbox wake-up that brings a tick's update set into its delivery.
 *
 * Does not: create threads, contexts or listening sockets (server.c does),
 * or speak any protocol (http*.c, ws.c, sse.c do).
 *
 * Threads: each struct lc_worker is used by its own worker thread, except
 * `stop`, the source mailbox and its wake-up (source.wake), which main and
 * the dispatcher use. struct lc_server is written by main before the workers
 * start, then read by every thread (its atomics by anyone).
 */
#ifndef LC_WORKER_H
#define LC_WORKER_H

#include "lc/config.h"
#include "lc/counter.h"
#include "lc/defer.h"
#include "lc/delivery.h"
#include "lc/dispatch.h"
#include "lc/limits.h"
#include "lc/metrics.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>

struct lc_batcher;
struct lc_history;
struct lc_worker;

/* What the workers share. Fields above `workers` are set by main. */
struct lc_server {
	const struct lc_config *cfg;
	struct lc_counter *counter;
	struct lc_dispatch *dispatch;
	struct lc_batcher *batcher;
	struct lc_bridge *bridge; /* cluster mode; NULL on a single node */
	struct lc_idem *idem;	  /* idempotency keys (idem.h) */
	int64_t started_ms;
	int nworkers;
	struct lc_worker *workers;  /* nworkers, by lc_server_start */
	struct lc_source **sources; /* each worker's, for the dispatcher */
	int port;		    /* actual listening port */
	_Atomic bool draining;	    /* likes refused (503), after the drain */
	_Atomic bool ready;
	_Atomic bool leaving; /* SIGTERM: /readyz 503 while still serving */
	_Atomic bool goodbye; /* workers: close every subscriber politely */
	/* Request body buffers held by all workers, bytes (issue 10). */
	_Atomic int64_t body_bytes_in_flight;
	_Atomic uint64_t body_refusals; /* 503s for max_body_bytes_in_flight */
	struct lc_conn_limits limits;	/* open connections, all workers */
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	int started; /* workers done starting (start_lock) */
};

/*
 * One accepted connection, tied to its wsi with lws_set_opaque_user_data
 * from adoption to LWS_CALLBACK_WSI_DESTROY: the client address for the
 * limits, and the SSE session when the connection becomes a stream.
 */
struct lc_conn {
	uint32_t ip;	 /* IPv4, network byte order */
	uint16_t bucket; /* per-IP connection bucket (limits.h) */
	struct lc_session *sse;
};

/*
 * A function to run on a worker's thread, handed over from another thread
 * (lc_worker_call): how the bridge's answers reach a worker.
 */
struct lc_worker_call {
	struct lc_worker_call *next;
	void (*fn)(struct lc_worker_call *c);
};

struct lc_worker {
	struct lc_server *srv;
	int id;
	pthread_t thread;
	struct lws_context *ctx; /* worker thread only */
	struct lws_vhost *vh;
	int listen_fd;
	struct lws *listen_wsi;
	struct lc_source source;     /* likes in, update sets out */
	struct lc_delivery delivery; /* sessions and their index */
	struct lc_history *history;  /* history reader thread (history.h) */
	struct lc_defer defer;	     /* parked requests (defer.h) */
	lws_sorted_usec_list_t flush_sul; /* continues a sliced flush */
	lws_sorted_usec_list_t sweep;
	_Atomic bool stop;
	bool said_goodbye; /* srv->goodbye handled; worker thread only */
	/* Sockets whose request headers are awaited (server.c), oldest
	 * first; an edge-triggered epoll of them, adopted into lws. */
	struct lc_peek *peeking, *peeking_tail;
	int peek_ep;
	struct lws *peek_wsi;
	lws_sorted_usec_list_t peek_sul; /* the oldest one's deadline */
	int start_rc;			 /* result of start-up, for main */
	char *buf; /* scratch response buffer (LWS_PRE + buf_cap) */
	size_t buf_cap;
	struct lc_rate_table rate;  /* likes/s per client IP */
	struct lc_reader qs;	    /* marks callbacks for reclamation */
	pthread_mutex_t calls_lock; /* guards calls, calls_closed */
	struct lc_worker_call *calls, *calls_tail;
	bool calls_closed; /* the worker stopped: lc_worker_call refuses */
	struct lc_worker_stats stats;
};

/** Prepares w (in srv->workers) before its thread starts. 0 or LC_ENOMEM. */
int lc_worker_init(struct lc_worker *w, struct lc_server *srv, int id);

/** Frees what lc_worker_init allocated; after the final tick. */
void lc_worker_cleanup(struct lc_worker *w);

/**
 * Once w->ctx exists (worker thread): connects the mailbox wake-up to it
 * and starts the sweep timer.
 */
void lc_worker_start_timers(struct lc_worker *w);

/**
 * Runs c->fn(c) on w's thread soon (its mailbox, and lws_cancel_service).
 * Returns false when the worker has stopped (c is not taken: the caller
 * frees it). Any thread.
 */
bool lc_worker_call(struct lc_worker *w, struct lc_worker_call *c);

/**
 * The worker is stopping (its thread, before its context goes): refuses
 * further calls and runs those waiting.
 */
void lc_worker_calls_close(struct lc_worker *w);

/**
 * Takes the update sets waiting in the mailbox into the delivery and
 * writes what they made due, and runs the calls handed over
 * (LWS_CALLBACK_EVENT_WAIT_CANCELLED).
 */
void lc_worker_drain_mailbox(struct lc_worker *w);

/**
 * Shutdown, once srv->goodbye is set: every subscriber gets its
 * transport's goodbye (WebSocket close 1001, SSE retry: hint) and is
 * closed. Worker thread, from the wake-up; idempotent.
 */
void lc_worker_goodbye(struct lc_worker *w);

/** The worker owning a wsi. */
static inline struct lc_worker *
lc_worker_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

/** Ensures the worker scratch buffer holds LWS_PRE + n bytes. */
char *lc_worker_buf(struct lc_worker *w, size_t n);

/**
 * Takes `cost` like items from the client's bucket. Returns 0, or the
 * seconds to wait (Retry-After) when the client is over its rate.
 */
int lc_worker_rate_take(struct lc_worker *w, struct lws *wsi, int64_t cost);

/**
 * A connection record for a new client at ip, counted against the
 * limits; NULL when over one (counted as refused) or out of memory.
 */
struct lc_conn *lc_conn_create(struct lc_worker *w, uint32_t ip);

/** Ties c to the adopted wsi (LWS_CALLBACK_WSI_DESTROY releases it). */
void lc_conn_attach(struct lws *wsi, struct lc_conn *c);

/** Uncounts and frees a record that was never attached. */
void lc_conn_destroy(struct lc_worker *w, struct lc_conn *c);

/** Releases a connection's record (WSI_DESTROY). Worker thread. */
/** The subscribed-bytes account of wsi's client IP (NULL: unknown). */
_Atomic int64_t *lc_conn_sub_bytes(struct lc_worker *w, struct lws *wsi);

void lc_conn_release(struct lws *wsi);

/** The connection record of a wsi (NULL for lws' own wsis). */
static inline struct lc_conn *
lc_conn_of(struct lws *wsi)
{
	return lws_get_opaque_user_data(wsi);
}

#endif
