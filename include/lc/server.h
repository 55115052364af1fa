/*
 * livecount — the network side: worker threads, their lws contexts, and the
 * state the transports (http.c, ws.c, sse.c) share.
 *
 * Each worker thread owns one lws_context on its own libuv loop, its own
 * SO_REUSEPORT listening socket (adopted into lws; the kernel spreads new
 * connections across workers), its connections, its subscription index and
 * its delta source. Other threads talk to a worker only through its
 * source's mailbox and lws_cancel_service().
 */
#ifndef LC_SERVER_H
#define LC_SERVER_H

#include "lc/config.h"
#include "lc/counter.h"
#include "lc/dispatch.h"
#include "lc/subs.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>

struct lc_batcher;
struct lc_store;

/* HTTP routes, for metrics labels (never a URL in a label). */
enum lc_route {
	LC_ROUTE_LIKES,
	LC_ROUTE_COUNTS,
	LC_ROUTE_TOP,
	LC_ROUTE_HISTORY,
	LC_ROUTE_STATS,
	LC_ROUTE_HEALTHZ,
	LC_ROUTE_READYZ,
	LC_ROUTE_METRICS,
	LC_ROUTE_EVENTS,
	LC_ROUTE_WS,
	LC_ROUTE_STATIC,
	LC_ROUTE_OTHER,
	LC_ROUTE_MAX
};

/* HTTP statuses tracked in metrics; anything else counts as "other". */
/* clang-format off */
#define LC_STATUSES                                                            \
	X(200) X(204) X(304) X(400) X(401) X(403) X(404) X(405) X(408)        \
	X(411) X(413) X(415) X(426) X(429) X(431) X(500) X(503)
enum lc_status_idx {
#define X(c) LC_S_##c,
	LC_STATUSES
#undef X
	LC_S_OTHER,
	LC_S_MAX
};
/* clang-format on */

enum lc_transport { LC_T_WS = 0, LC_T_SSE = 1 };

/* Written by the owning worker only (relaxed stores); read by /metrics. */
struct lc_worker_stats {
	_Atomic uint64_t http[LC_ROUTE_MAX][LC_S_MAX];
	_Atomic uint64_t likes_accepted;   /* like units (sum of n > 0) */
	_Atomic uint64_t unlikes_accepted; /* unlike units */
	_Atomic int64_t conns[2];	   /* live, by transport */
	_Atomic int64_t subscriptions;
	_Atomic uint64_t frames[2];	/* update frames sent */
	_Atomic uint64_t shared_frames; /* of which shared per-URL */
	_Atomic uint64_t snapshots;
	_Atomic uint64_t coalesced;	 /* updates merged into a pending one */
	_Atomic uint64_t slow_closes;	 /* closed for stalling */
	_Atomic uint64_t client_errors;	 /* error frames sent */
	_Atomic uint64_t accepts;	 /* connections accepted */
	_Atomic uint64_t accept_refused; /* over max_connections */
};

/* Single-writer increment: the owning worker is the only writer. */
#define LC_STAT_ADD(field, v)                                                  \
	atomic_store_explicit(                                                 \
	    &(field),                                                          \
	    atomic_load_explicit(&(field), memory_order_relaxed) + (v),        \
	    memory_order_relaxed)

struct lc_server;
struct lc_session;

/*
 * One accepted connection, tied to its wsi with lws_set_opaque_user_data
 * from adoption to LWS_CALLBACK_WSI_DESTROY: the client address for the
 * per-IP limits, and the SSE session when the connection becomes a stream.
 */
struct lc_conn {
	uint32_t ip;	 /* IPv4, network byte order */
	uint16_t bucket; /* index into lc_server.ip_conns */
	struct lc_session *sse;
};

/* A worker's token bucket for one client IP (likes per second). */
struct lc_rate {
	uint32_t ip;
	int64_t last_ms;
	double tokens;
};
#define LC_RATE_SLOTS 4096
#define LC_IP_BUCKETS 65536

/* A subscriber: a WebSocket connection or an SSE stream. */
struct lc_session {
	struct lws *wsi;
	struct lc_worker *w;
	struct lc_session *prev, *next;	 /* worker's session list */
	struct lc_session *pending_next; /* worker's `pending` list */
	uint8_t transport;		 /* enum lc_transport */
	bool dirty;	   /* an update is owed (coalesces further ticks) */
	bool snapshot_due; /* some subscription owes a snapshot */
	bool ping_due;	   /* WS: send a ping; SSE: send ": ping" */
	bool closing;
	bool queued;	 /* on the worker's `pending` list */
	bool authorized; /* WS: presented write_token (or none needed) */
	uint8_t strikes; /* bad client frames in the current window */
	uint16_t nsubs, cap;
	struct lc_sub *subs; /* &one or heap array of cap */
	struct lc_sub one;
	int64_t dirty_since_ms; /* when `dirty` went up (stall detection) */
	int64_t last_tx_ms;	/* last frame written */
	int64_t last_rx_ms;	/* last frame / pong received (WS) */
	int64_t ping_sent_ms;	/* last ping written (WS); answered if < rx */
	int64_t ops_window_ms;	/* rate limit window start */
	uint32_t ops_in_window;
	char *err_frame; /* pending error frame (LWS_PRE + text) */
	size_t err_len;
	char *rx; /* WS: partial message being assembled */
	size_t rx_len, rx_cap;
};

struct lc_worker {
	struct lc_server *srv;
	int id;
	pthread_t thread;
	struct lws_context *ctx; /* worker thread only */
	struct lws_vhost *vh;
	int listen_fd;
	struct lws *listen_wsi;
	struct lc_source source;
	struct lc_subs subs;
	struct lc_store *reader;	  /* read-only db for history, lazily */
	struct lc_session *sessions;	  /* list head, for the sweep */
	struct lc_session *pending;	  /* FIFO of sessions to write now */
	struct lc_session *pending_tail;  /* its last session */
	struct lc_session *waiting;	  /* SSE with unsent bytes: next tick */
	lws_sorted_usec_list_t flush_sul; /* continues a sliced flush */
	lws_sorted_usec_list_t sweep;
	uint64_t seq;  /* last update set applied */
	int64_t ts_ms; /* its tick time */
	int64_t conns; /* live connections on this worker */
	_Atomic bool stop;
	int start_rc; /* result of start-up, for main */
	char *buf;    /* scratch response buffer (LWS_PRE + buf_cap) */
	size_t buf_cap;
	struct lc_rate rate[LC_RATE_SLOTS]; /* likes/s per client IP */
	struct lc_worker_stats stats;
};

struct lc_server {
	const struct lc_config *cfg;
	struct lc_counter *counter;
	struct lc_dispatch *dispatch;
	struct lc_batcher *batcher;
	struct lc_worker *workers;
	int nworkers;
	int port; /* actual listening port */
	int64_t started_ms;
	_Atomic bool draining;
	_Atomic bool ready;
	_Atomic int64_t conns_total; /* open connections, all workers */
	_Atomic uint32_t *ip_conns;  /* open connections per IP bucket */
	int64_t max_conns;	     /* effective max_connections */
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	int started;
};

/* server.c */
int lc_server_start(struct lc_server *srv);
/** Stops and joins the workers; their sources stay for the final tick. */
void lc_server_stop(struct lc_server *srv);
/** Frees what lc_server_start allocated; after the final tick. */
void lc_server_free(struct lc_server *srv);
void lc_worker_session_link(struct lc_worker *w, struct lc_session *s);
void lc_worker_session_unlink(struct lc_worker *w, struct lc_session *s);
/** Releases a connection's accounting (WSI_DESTROY). Worker thread. */
void lc_conn_release(struct lws *wsi);
/** The connection record of a wsi (NULL for lws' own wsis). */
static inline struct lc_conn *
lc_conn_of(struct lws *wsi)
{
	return lws_get_opaque_user_data(wsi);
}
/**
 * Takes `cost` like items from the client's bucket. Returns 0, or the
 * seconds to wait (Retry-After) when the client is over its rate.
 */
int lc_worker_rate_take(struct lc_worker *w, struct lws *wsi, int64_t cost);

/** Ensures the worker scratch buffer holds LWS_PRE + n bytes. */
char *lc_worker_buf(struct lc_worker *w, size_t n);

/* http.c */
size_t lc_http_pss_size(void);
int lc_http_callback(struct lws *wsi, enum lws_callback_reasons reason,
		     void *user, void *in, size_t len);
/**
 * Writes a whole HTTP response (status, content type, body, extra headers
 * already formatted as "name: value\r\n" lines or NULL) in one lws_write.
 * Returns what LWS_CALLBACK_HTTP* should return (0 or -1).
 */
int lc_http_reply(struct lws *wsi, int status, const char *content_type,
		  const char *body, size_t len, const char *extra_headers);
/** Replies with API.md's error shape. */
int lc_http_error(struct lws *wsi, int status, const char *code,
		  const char *message);
void lc_http_count(struct lc_worker *w, enum lc_route route, int status);
/** Whether origin (len bytes) is in allowed_origins ("*" allows all). */
bool lc_origin_allowed(const struct lc_config *cfg, const char *origin,
		       size_t len);
/** Adds the CORS header for this request's Origin, if it is allowed. */
int lc_http_add_cors(struct lws *wsi, const struct lc_config *cfg,
		     unsigned char **p, unsigned char *end);
/** Constant-time comparison of tok (len bytes) with write_token. */
bool lc_token_matches(const struct lc_config *cfg, const char *tok, size_t len);
/** Whether the request carries "Authorization: Bearer <write_token>". */
bool lc_http_authorized(struct lws *wsi, const struct lc_config *cfg);
/**
 * Copies the query parameters named `name` from the request URI into
 * vals (at most max), validating each as a liked URL when is_url. Values
 * point into buf. Returns the number found or -1 with err filled.
 */
struct lc_api_error;
int lc_http_query(struct lws *wsi, const char *name, char *buf, size_t buflen,
		  const char **vals, size_t *lens, int max,
		  struct lc_api_error *err);

/* subscribe.c: transport-independent session logic */
void lc_session_init(struct lc_session *s, struct lc_worker *w, struct lws *wsi,
		     enum lc_transport t);
/** Subscribes to validated urls; snapshot owed. Returns 0 or LC_E*. */
int lc_session_subscribe(struct lc_session *s, const char *const *urls,
			 const size_t *lens, size_t n,
			 struct lc_api_error *err);
void lc_session_unsubscribe(struct lc_session *s, const char *url, size_t len);
void lc_session_cleanup(struct lc_session *s);
/**
 * Builds the next frame owed to the session (snapshot first, then update)
 * into a buffer with LWS_PRE headroom. Returns the frame length and sets
 * *frame, or 0 when nothing is owed. The frame stays valid until the next
 * call on this worker.
 */
size_t lc_session_next_frame(struct lc_session *s, char **frame);
/** Queues the session for lc_worker_flush_pending. */
void lc_session_queue(struct lc_session *s);
/**
 * Writes what the session owes (snapshot, update, ping) if lws holds no
 * unsent data for it. Returns false when it must wait for the socket.
 */
bool lc_session_flush(struct lc_session *s);
/**
 * Writes queued sessions, a slice at a time (the rest continues on the
 * next loop iteration, so requests are served in between). Sessions whose
 * socket is full wait for the next tick.
 */
void lc_worker_flush_pending(struct lc_worker *w);
/** Puts sessions that waited back in the queue (each tick). */
void lc_worker_requeue_waiting(struct lc_worker *w);
/** Applies an update set to the worker's index, waking subscribers. */
void lc_worker_apply_updates(struct lc_worker *w, struct lc_update_set *u);
/** Periodic sweep: pings, stall closes. */
void lc_worker_sweep(struct lc_worker *w, int64_t now_ms);

/* ws.c */
int lc_ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
		   void *user, void *in, size_t len);

/* sse.c */
/** Answers GET /v1/events: headers, snapshot, then a live stream. */
int lc_sse_start(struct lws *wsi, struct lc_worker *w);
/** The stream's session, or NULL when wsi is not an SSE stream. */
struct lc_session *lc_sse_session(struct lws *wsi);
/** Frees the stream's session when lws destroys its wsi. */
void lc_sse_destroyed(struct lws *wsi);
/** Drops the session from its worker's pending list (before freeing). */
void lc_session_unqueue(struct lc_session *s);

/* metrics.c */
/** Renders the Prometheus text exposition into a new malloc'd string. */
char *lc_metrics_render(struct lc_server *srv, size_t *len);
/** Renders GET /v1/stats JSON; new malloc'd string. */
char *lc_stats_render(struct lc_server *srv, size_t *len);

#endif
