/*
 * livecount-load: shared declarations.
 *
 * livecount-load is a separate program (not part of the server): an
 * epoll-based, single-threaded-per-process load generator for livecount.
 * Each process runs one epoll loop; `--procs P` forks P such processes that
 * share a small MAP_SHARED region (phase flags, progress counters, and in
 * fan-out mode the like→send-time rings) and pipe their binary statistics
 * back to the parent, which merges them exactly (histograms included) and
 * prints one JSON summary.
 */
#ifndef LC_LOAD_H
#define LC_LOAD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LC_MAX_PROCS 64

/* ---- time ---------------------------------------------------------- */

/** CLOCK_MONOTONIC in ns (system-wide, so comparable across processes). */
uint64_t lc_now_ns(void);
/** CLOCK_REALTIME in ms (compared with the server's `ts`). */
uint64_t lc_wall_ms(void);

/* ---- log-bucketed histogram (HDR-style) ---------------------------------
 * Values are ns. 128 linear sub-buckets per power of two: a bucket's width is
 * at most 1/128 of its lower bound and quantiles report the bucket midpoint,
 * so the relative error is <= 0.4 %. Values below 128 ns are exact; the
 * range ends at 2^48 ns (~78 h). 43 KB per histogram, O(1) record, exact
 * merge by adding bucket counts. */
#define HIST_SUB_BITS 7u
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_SHIFTS 41u
#define HIST_BUCKETS (HIST_SUB + HIST_SHIFTS * HIST_SUB)

typedef struct {
	uint64_t total;
	uint64_t max;
	double sum; /* for the mean, ns */
	uint64_t counts[HIST_BUCKETS];
} hist_t;

void hist_record_n(hist_t *h, uint64_t v, uint64_t n);
static inline void
hist_record(hist_t *h, uint64_t v)
{
	hist_record_n(h, v, 1);
}
void hist_merge(hist_t *dst, const hist_t *src);
/** Value (ns) at quantile q in [0,1]; 0 when empty. */
uint64_t hist_quantile(const hist_t *h, double q);
double hist_mean(const hist_t *h);

/* ---- errors ---------------------------------------------------------- */
#define LC_ERRORS(X)                                                           \
	X(CONNECT, "connect")                                                  \
	X(CONNECT_TIMEOUT, "connect_timeout")                                  \
	X(CLOSED, "closed")                                                    \
	X(TIMEOUT, "timeout")                                                  \
	X(HTTP_4XX, "http_4xx")                                                \
	X(HTTP_429, "http_429")                                                \
	X(HTTP_5XX, "http_5xx")                                                \
	X(HTTP_503, "http_503")                                                \
	X(BAD_RESPONSE, "bad_response")                                        \
	X(BAD_JSON, "bad_json")                                                \
	X(ACCEPTED_MISMATCH, "accepted_mismatch")                              \
	X(WS_HANDSHAKE, "ws_handshake")                                        \
	X(WS_PROTOCOL, "ws_protocol")                                          \
	X(SSE_PROTOCOL, "sse_protocol")                                        \
	X(UNEXPECTED_URL, "unexpected_url")                                    \
	X(SEQ, "seq_regress")                                                  \
	X(COUNT_MISMATCH, "count_mismatch")                                    \
	X(NOT_CONVERGED, "not_converged")                                      \
	X(VERIFY, "verify_failed")                                             \
	X(PHASE_TIMEOUT, "phase_timeout")

enum lc_err {
#define X(id, name) LC_E_##id,
	LC_ERRORS(X)
#undef X
	    LC_E__COUNT
};
extern const char *const lc_err_names[LC_E__COUNT];

/* ---- per-process statistics (piped to the parent as raw bytes) ------- */
typedef struct {
	uint64_t err[LC_E__COUNT];
	uint64_t
	    connections; /* client connections opened (subscribers or HTTP) */
	uint64_t requests_ok;	/* HTTP requests answered 200 */
	uint64_t requests_sent; /* HTTP requests written */
	uint64_t likes_acked;	/* likes acknowledged by a 200 */
	uint64_t views_acked;	/* --views-per-like: views acknowledged */
	uint64_t unsent;	/* open-loop requests due but never sent */
	uint64_t idle_408;	/* idle keep-alive connections the server closed
				   with a 408 */
	uint64_t ambiguous;	/* likes in requests whose outcome is unknown */
	uint64_t msgs;	     /* messages received by subscribers (whole run) */
	uint64_t msgs_phase; /* ... during the like phase */
	/* Frames before the like phase (the connect ramp and the wait after
	 * it, snapshots included) and the most any one subscriber got. */
	uint64_t msgs_pre, msgs_pre_max;
	/* Updates whose count did not change (only views/watching did). */
	uint64_t same_count;
	uint64_t snapshots, updates, pings, coalesced;
	uint64_t lat_unmatched; /* counts seen with no recorded send time */
	uint64_t subscribers, ready, converged;
	uint64_t urls_checked, urls_ok, stale_reads;
	int64_t counted;  /* sum over URLs of (count after - count before) */
	int64_t expected; /* sum over URLs of acknowledged likes */
	uint64_t t_first_connect, t_last_ready; /* monotonic ns (0: none) */
	double phase_s; /* measured length of the main phase */
	double cpu_s;	/* user+sys CPU of this process during the main phase */
	double cpu_wall_s; /* wall time over which cpu_s was measured */
	/* --server-pid: the server's CPU over the main phase and its resident
	 * memory at start, when all subscribers are ready and at the end. */
	double server_cpu_s, server_cpu_wall_s;
	/* fanout: the server's CPU from the first connect until the like
	 * phase starts (the ramp), and that wall time. */
	double server_cpu_connect_s, server_connect_wall_s;
	long server_rss_start_kb, server_rss_ready_kb, server_rss_end_kb;
	hist_t lat;	/* request latency (ingest) / like→visible (fanout) */
	hist_t connect; /* subscriber connect → snapshot */
	hist_t rtt;	/* fanout: like POST round trip */
	hist_t
	    delivery; /* fanout: server `ts` → received (wall clock, ms res.) */
} stats_t;

void stats_merge(stats_t *dst, const stats_t *src);
uint64_t stats_errors(const stats_t *s);
static inline void
lc_err(stats_t *s, enum lc_err e)
{
	s->err[e]++;
}

/* ---- configuration --------------------------------------------------- */
enum lc_mode { LC_MODE_INGEST, LC_MODE_FANOUT };
enum lc_transport { LC_T_WS, LC_T_SSE };

typedef struct {
	enum lc_mode mode;
	struct sockaddr_in dst;
	char hosthdr[80]; /* "127.0.0.1:8080" */
	int connections;
	double duration_s;
	int batch; /* 0: single likes */
	int urls;
	double rate;	       /* requests/s, 0: closed loop */
	uint64_t max_requests; /* ingest: stop after this many requests, 0: no
				  limit */
	int views_per_like;    /* ingest --batch: view batches per like batch */
	char url_prefix[512];
	bool prefix_given;
	int procs;
	int sources;
	enum lc_transport transport;
	int subscribers;
	double like_rate;
	double ramp_per_s; /* 0: as fast as max_pending allows */
	int tick_ms;
	int like_conns;
	double timeout_s;
	double connect_timeout_s;
	int max_pending;
	int lat_samples;
	bool verify;
	bool quiet;
	int server_pid;		       /* 0: none; the first of server_pids */
	int server_pids[LC_MAX_PROCS]; /* --server-pid P1,P2,...: summed */
	int nserver_pids;
	/* fanout --like-target: likes go to this server (another cluster
	 * node) while subscribers and the count check use --target. */
	struct sockaddr_in like_dst;
	char like_hosthdr[80];
	bool like_target_given;
	/* --like-match send-order: key each like by the order it was sent
	 * (base + k) and ignore the count in its answer; for likes spread
	 * over cluster nodes whose answers carry each node's own view. */
	bool match_send_order;
	/* fanout --nchan-pub/--nchan-sub: speak to nginx+nchan instead of
	 * livecount (channel = path prefix + run tag + URL index). */
	bool nchan;
	char nchan_pub[128], nchan_sub[128];
	char run_tag[64];
} cfg_t;

/* ---- URL table --------------------------------------------------------- */
typedef struct {
	uint32_t n;
	const char **raw;
	uint16_t *rawlen;
	const char **enc; /* percent-encoded for a query string */
	uint16_t *enclen;
	const char **item; /* `{"url":"<json>","n":1}` for batches, or NULL */
	uint16_t *itemlen;
	uint32_t *slots; /* open-addressing hash of raw → index+1 */
	uint32_t mask;
	char *arena;
} urltab_t;

int urltab_build(urltab_t *t, const char *prefix, uint32_t n, bool items);
void urltab_free(urltab_t *t);
/** Index of url, or -1. */
int64_t urltab_find(const urltab_t *t, const char *url, size_t len);

/* ---- shared region --------------------------------------------------- */
typedef struct {
	int64_t count; /* key; written last (release) */
	uint64_t ts;   /* intended send time, monotonic ns */
} ring_ent_t;

typedef struct {
	uint64_t abort;
	uint64_t procs_ready; /* fanout: processes done connecting */
	uint64_t likes_start; /* fanout: monotonic ns the like phase began */
	uint64_t likes_end;   /* fanout: planned end of the like phase */
	uint64_t final_ready; /* fanout: final counts published */
	uint64_t progress[LC_MAX_PROCS][6];
	uint32_t ring_mask;
	int64_t *final_counts; /* [urls] */
	ring_ent_t *rings;     /* [urls][ring_mask+1] */
} shm_t;

enum { PG_REQ, PG_LIKES, PG_ERR, PG_CONN, PG_MSGS, PG_READY };

shm_t *shm_create(uint32_t urls, uint32_t ring_size);

/* ---- networking ------------------------------------------------------ */
/** Nonblocking connect from 127.0.0.(1 + src % sources); returns fd or -errno.
 */
int lc_connect_nb(const cfg_t *cfg, uint32_t src);
size_t lc_pct_encode(const char *s, size_t n, char *out);

/** Minimal blocking HTTP/1.1 client for set-up and verification requests. */
typedef struct {
	const cfg_t *cfg;
	int fd;
	char *buf;
	size_t cap, len;
} bhttp_t;
void bhttp_init(bhttp_t *b, const cfg_t *cfg);
void bhttp_cleanup(bhttp_t *b);
/** Returns 0 and the status/body (borrowed, valid until the next call), or -1.
 */
int bhttp_request(bhttp_t *b, const char *method, const char *path, int *status,
		  const char **body, size_t *blen, int timeout_ms);

/** GET /v1/counts for every URL (50 per request) into out[]. 0 or -1. */
int lc_fetch_counts(const cfg_t *cfg, const urltab_t *t, int64_t *out);

/* ---- HTTP response parsing --------------------------------------------- */
typedef struct {
	int status;
	int64_t content_length; /* -1 when absent */
	bool chunked;
	bool conn_close;
	size_t head_len;
	const char *ws_accept;
	size_t ws_accept_len;
	const char *ws_proto;
	size_t ws_proto_len;
	const char *ctype;
	size_t ctype_len;
} http_head_t;

/** Parse a response head: 0 need more, head length (>0), or -1 malformed. */
long http_parse_head(const char *buf, size_t len, http_head_t *h);
/** Parse a whole response (dechunking in place once complete): bytes consumed
 * (>0), 0 need more, -1 malformed. `body` points into buf. */
long http_parse_response(char *buf, size_t len, http_head_t *h,
			 const char **body, size_t *blen);

/* ---- WebSocket helpers ------------------------------------------------- */
void ws_make_key(char key[24], uint64_t *rng);
void ws_expected_accept(const char key[24], char out[28]);
/** Build a masked client frame; returns its length (payload <= 125). */
size_t ws_build_frame(uint8_t *out, int opcode, const void *payload, size_t len,
		      uint64_t *rng);

/* ---- JSON scanner -------------------------------------------------------- */
enum { LC_MSG_UNKNOWN, LC_MSG_SNAPSHOT, LC_MSG_UPDATE, LC_MSG_ERROR };
typedef struct {
	int type;
	bool has_seq, has_ts;
	int64_t seq, ts;
} lc_msg_t;
/** Called once per entry of a "counts" object. has_delta is false for a
 * snapshot entry (plain number) or a /v1/counts entry. */
typedef void (*lc_count_cb)(void *ctx, const char *url, size_t ulen,
			    int64_t count, int64_t delta, bool has_delta);
/** Parse a livecount message / counts response. 0 ok, -1 malformed. */
int js_parse_msg(const char *p, size_t n, lc_msg_t *m, lc_count_cb cb,
		 void *ctx);
/** Top-level integer member. 0 found, -1 not found or malformed. */
int js_get_int(const char *p, size_t n, const char *key, int64_t *out);

/* ---- request pool (keep-alive HTTP like senders) ------------------------- */
typedef struct rp_conn rp_conn_t;
typedef struct rpool {
	const cfg_t *cfg;
	const urltab_t *urls;
	stats_t *st;
	hist_t *lat; /* where request latency goes */
	int ep, tfd;
	uint32_t tag;
	int n;
	rp_conn_t *c;
	uint32_t *idle;
	int nidle;
	int busy;
	int batch;   /* items per request, 0: single like */
	double rate; /* requests/s for this process, 0: closed loop */
	uint32_t src_base;
	uint64_t t0, t_end;
	bool sending;
	uint64_t k_next;
	uint32_t next_url;
	uint32_t
	    view_from;	/* --views-per-like: first URL of the last like batch */
	int64_t *acked; /* [urls] */
	int32_t *ambig; /* [urls] */
	int64_t acked_all;  /* added to every URL (whole rounds in batches) */
	int64_t *pub_count; /* nchan: count carried by the last publish */
	uint64_t timer_at;
	uint64_t nsent, max_requests; /* max_requests 0: no limit */
	void (*on_count)(void *ctx, uint32_t url, int64_t count,
			 uint64_t intended);
	void (*on_send)(void *ctx, uint32_t url,
			uint64_t intended); /* single likes */
	void *ctx;
} rpool_t;

int rp_init(rpool_t *rp, const cfg_t *cfg, const urltab_t *urls, stats_t *st,
	    int ep, uint32_t tag, int nconns, int batch, double rate,
	    uint32_t src_base);
void rp_connect_all(rpool_t *rp);
int rp_connected(const rpool_t *rp);
void rp_start(rpool_t *rp, uint64_t t0, uint64_t t_end);
void rp_stop(rpool_t *rp, uint64_t now);
void rp_event(rpool_t *rp, uint32_t idx, uint32_t events);
void rp_timer_event(rpool_t *rp);
/** Time-based work: timeouts, reconnects, open-loop sends. */
void rp_poll(rpool_t *rp, uint64_t now);
/** Give up on requests still in flight (counted as timeouts). */
void rp_abandon(rpool_t *rp);
void rp_close(rpool_t *rp);
/** Compare counts after-before with acknowledged likes; returns the number of
 * mismatching URLs, and adds to the statistics only when record is set. */
int rp_verify(rpool_t *rp, const int64_t *before, const int64_t *after,
	      bool record);

/* ---- modes --------------------------------------------------------------- */
int run_ingest(const cfg_t *cfg, int proc, shm_t *shm, stats_t *st);
int run_fanout(const cfg_t *cfg, int proc, shm_t *shm, const urltab_t *urls,
	       stats_t *st);

extern volatile int lc_stop; /* set by SIGINT/SIGTERM */
void lc_progress(const cfg_t *cfg, shm_t *shm, int proc, const stats_t *st,
		 uint64_t now, uint64_t t0, const char *phase);
double lc_cpu_s(void);
/** CPU seconds (user+sys) and resident KB of a process from /proc; -1 if gone.
 */
int lc_proc_sample(int pid, double *cpu_s, long *rss_kb);
/** The same summed over every --server-pid; -1 if none could be read. */
int lc_server_sample(const cfg_t *cfg, double *cpu_s, long *rss_kb);
uint64_t lc_rand(uint64_t *s);

#endif
