/*
 * livecount — delivery: what each subscriber session is owed, and writing
 * it through a transport.
 *
 * Does: subscribe / unsubscribe a session, apply a tick's update set to a
 * worker's subscription index (marking sessions dirty, coalescing), build
 * the next frame a session owes (snapshot first, then one coalesced update,
 * or the per-URL frame shared by every single-URL session), the FIFO of
 * sessions to write (written a slice at a time), and the sweep (pings,
 * stall closes, unanswered pings).
 *
 * Does not: touch a socket or libwebsockets. Bytes leave through the
 * session's struct lc_transport (write / can-write / close), which ws.c and
 * sse.c implement; the wire format of each frame comes from the transport
 * too. So the whole module is unit-tested with a fake transport
 * (tests/unit/test_delivery.c).
 *
 * Threads: one struct lc_delivery per worker, used by that worker's thread
 * only (no locks). The stats are read by /metrics on any worker (relaxed
 * atomics with a single writer, LC_STAT_ADD).
 */
#ifndef LC_DELIVERY_H
#define LC_DELIVERY_H

#include "lc/common.h"
#include "lc/config.h"
#include "lc/counter.h"
#include "lc/dispatch.h"
#include "lc/parse.h"
#include "lc/subs.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The transports, indexing per-transport stats and shared frames. */
enum lc_transport_kind { LC_T_WS = 0, LC_T_SSE = 1, LC_T_KINDS = 2 };
_Static_assert((int)LC_T_KINDS == (int)LC_FRAME_KINDS,
	       "a subs node caches one shared frame per transport");

struct lc_session;

/*
 * A transport as delivery sees it. The functions run on the worker thread;
 * `frame` arguments have the delivery's `headroom` bytes writable before
 * them (LWS_PRE for lws).
 */
struct lc_transport {
	const char *name; /* for logs: "WebSocket", "SSE" */
	enum lc_transport_kind kind;
	bool answers_pings; /* a ping unanswered for an interval closes */
	/* Wire format: a snapshot opens with snapshot_open, an update with
	 * update_open(seq, ts); both end with frame_close. */
	const char *snapshot_open;
	const char *frame_close;
	/** Writes the update opening into buf (size bytes); returns its length.
	 */
	int (*update_open)(char *buf, size_t size, uint64_t seq, int64_t ts_ms);
	/** Whether a frame can be written now without queueing in the
	 * transport. */
	bool (*can_write)(struct lc_session *s);
	/** Writes one whole frame (len bytes). Returns 0, or < 0 when the
	 * connection failed. */
	int (*write)(struct lc_session *s, char *frame, size_t len);
	/** Writes a keep-alive ping. Returns 0 or < 0 like write. */
	int (*write_ping)(struct lc_session *s);
	/** Closes the connection soon (not from inside this call). */
	void (*close)(struct lc_session *s);
	/**
	 * Asks to be called back when writeable (then lc_session_flush). NULL
	 * when the transport cannot: such a session with unsent bytes waits
	 * for the next tick instead.
	 */
	void (*want_writable)(struct lc_session *s);
	/**
	 * Shutdown: says goodbye the transport's way (WebSocket close 1001,
	 * SSE a retry: hint) and closes soon. Worker thread (worker.c).
	 */
	void (*goodbye)(struct lc_session *s);
};

/* Written by the owning worker only (LC_STAT_ADD); read by /metrics. */
struct lc_delivery_stats {
	_Atomic int64_t conns[LC_T_KINDS]; /* live sessions, by transport */
	_Atomic int64_t subscriptions;
	_Atomic uint64_t frames[LC_T_KINDS]; /* update frames sent */
	_Atomic uint64_t shared_frames;	     /* of which shared per-URL */
	_Atomic uint64_t snapshots;
	_Atomic uint64_t coalesced;   /* updates merged into a pending one */
	_Atomic uint64_t slow_closes; /* closed for stalling */
	_Atomic uint64_t watch_lost;  /* watching changes not noted (OOM) */
};

/* A subscriber: a WebSocket connection or an SSE stream. Worker thread. */
struct lc_session {
	const struct lc_transport *t;
	void *conn; /* the transport's connection (its struct lws) */
	struct lc_delivery *d;
	struct lc_session *prev, *next;	 /* delivery's session list */
	struct lc_session *pending_next; /* delivery's pending/waiting list */
	bool dirty;	   /* an update is owed (coalesces further ticks) */
	bool snapshot_due; /* some subscription owes a snapshot */
	bool ping_due;	   /* a keep-alive ping is owed */
	bool closing;	   /* the transport was told to close */
	bool queued;	   /* on the pending or waiting list */
	uint16_t nsubs, cap;
	struct lc_sub *subs; /* &one or heap array of cap */
	struct lc_sub one;
	int64_t dirty_since_ms; /* when `dirty` went up (stall detection) */
	uint64_t peer_acked;	/* peer_progress: last bytes acknowledged */
	int64_t peer_moved_ms;	/* when the peer last took bytes (or was
				   owed none) */
	int64_t last_tx_ms;	/* last frame written */
	int64_t last_rx_ms;	/* last frame / pong received (set by ws.c) */
	int64_t ping_sent_ms;	/* last ping written when answers_pings */
	/* The client IP's subscribed-bytes account (limits.h); NULL: none. */
	_Atomic int64_t *ip_sub_bytes;
};

/* One worker's delivery state. Worker thread only. */
struct lc_delivery {
	const struct lc_config *cfg; /* stall_timeout_ms, ping intervals */
	struct lc_counter *counter;  /* entries for new subscriptions */
	/* The worker's delta source: subscription changes go through it to
	 * the dispatcher (watching). NULL in some tests. */
	struct lc_source *source;
	const _Atomic uint64_t *tick_seq; /* the dispatcher's published seq */
	struct lc_subs subs;		  /* url <-> this worker's sessions */
	struct lc_session *sessions;	  /* list head, for the sweep */
	struct lc_session *pending;	  /* FIFO of sessions to write now */
	struct lc_session *pending_tail;  /* its last session */
	struct lc_session *waiting;	  /* unsent bytes, no want_writable */
	uint64_t seq;			  /* last update set applied */
	int64_t ts_ms;			  /* its tick time */
	size_t headroom;		  /* bytes before every frame */
	char *buf; /* scratch frame (headroom + buf_cap) */
	size_t buf_cap;
	/* Continues a sliced flush on the next loop iteration (NULL: never). */
	void (*schedule_flush)(struct lc_delivery *d);
	/*
	 * The peer's progress on a session's connection: bytes it has
	 * acknowledged so far, and bytes still waiting in the kernel for it.
	 * Returns false when unknown (NULL: stalls are judged by our writes).
	 */
	bool (*peer_progress)(struct lc_session *s, uint64_t *acked,
			      uint32_t *queued);
	struct lc_delivery_stats stats;
};

/**
 * Sessions written per lc_delivery_flush_pending call. Writing 5000 frames
 * takes a worker tens of milliseconds; likes arriving meanwhile would wait
 * for all of it and could miss the next tick. Slices let the loop serve
 * them in between.
 */
#define LC_FLUSH_SLICE 256

/**
 * Initialises d (caller's storage) for a worker. cfg, counter and tick_seq
 * are borrowed and must outlive d. headroom: bytes every transport needs
 * before a frame. Returns 0 or LC_ENOMEM.
 */
int lc_delivery_init(struct lc_delivery *d, const struct lc_config *cfg,
		     struct lc_counter *counter,
		     const _Atomic uint64_t *tick_seq, size_t headroom);

/** Frees d's index and buffers; every session must be cleaned up first. */
void lc_delivery_cleanup(struct lc_delivery *d);

/**
 * Applies an update set (borrowed) to the index: each subscribed URL's node
 * takes the new count, and its sessions become dirty and queued (a session
 * already dirty coalesces: it will be sent the newest count once).
 */
void lc_delivery_apply_updates(struct lc_delivery *d,
			       const struct lc_update_set *u);

/**
 * Writes queued sessions, LC_FLUSH_SLICE at a time (the rest continues
 * through schedule_flush). A session that cannot write and has no
 * want_writable waits for lc_delivery_requeue_waiting.
 */
void lc_delivery_flush_pending(struct lc_delivery *d);

/** Puts sessions that waited back at the head of the queue (each tick). */
void lc_delivery_requeue_waiting(struct lc_delivery *d);

/** Periodic sweep at now_ms: pings due, stall and unanswered-ping closes. */
void lc_delivery_sweep(struct lc_delivery *d, int64_t now_ms);

/** Initialises s (caller's storage) and links it into d. */
void lc_session_init(struct lc_session *s, struct lc_delivery *d,
		     const struct lc_transport *t, void *conn);

/**
 * Subscribes s to validated urls (borrowed); every one of them is owed a
 * snapshot. Returns 0, or an LC_E* code with err filled (too many
 * subscriptions, out of memory).
 */
int lc_session_subscribe(struct lc_session *s, const char *const *urls,
			 const size_t *lens, size_t n,
			 struct lc_api_error *err);

/** Drops s's subscription to url, if any. */
void lc_session_unsubscribe(struct lc_session *s, const char *url, size_t len);

/** Drops every subscription and unlinks s from d; s may then be freed. */
void lc_session_cleanup(struct lc_session *s);

/** Queues s for lc_delivery_flush_pending (once; not when closing). */
void lc_session_queue(struct lc_session *s);

/**
 * Builds the next frame s owes (snapshot first, then update). Returns its
 * length and sets *frame (headroom before it), or 0 when nothing is owed.
 * The frame stays valid until the next call on this delivery.
 */
size_t lc_session_next_frame(struct lc_session *s, char **frame);

/**
 * Writes what s owes (snapshot, update, ping) while the transport can
 * write. Returns false when it must wait for the next tick (see
 * lc_delivery_flush_pending).
 */
bool lc_session_flush(struct lc_session *s);

#endif
