/*
 * livecount — configuration: one table of keys with defaults, bounds, docs
 * and flags (reloadable, secret, path).
 *
 * Sources, lowest precedence first: built-in defaults, the config file
 * (`key = value` lines, `#` comments), `LIVECOUNT_<KEY>` environment
 * variables, command-line flags (`--key-name value` for every key).
 * Loaded once by main() before any thread starts, then checked as a whole
 * by lc_config_validate(). Afterwards only the main thread writes it, and
 * only the keys flagged reloadable (lc_config_reload, on SIGHUP), none of
 * which another thread reads; so every thread may read it without locks.
 */
#ifndef LC_CONFIG_H
#define LC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Upper bounds of max_url_bytes and max_urls_per_request, enforced by the
 * config table. Request buffers are sized from these constants (not from
 * the configured values), with _Static_asserts where they depend on them.
 * LC_URLS_PER_REQUEST_MAX is also bounded by lws: query arguments share one
 * pool of ~90 header fragments (docs/LWS-NOTES.md).
 */
#define LC_URL_MAX_BYTES 2048
#define LC_URLS_PER_REQUEST_MAX 50

struct lc_config {
	char bind[64];		  /* listen address */
	int port;		  /* listen port; 0 = pick a free port */
	char db[1024];		  /* SQLite file path */
	int workers;		  /* worker threads; 0 = number of cores */
	int tick_ms;		  /* dispatch tick */
	int watching_interval_ms; /* watching pushed at most this often */
	int flush_interval_ms;	  /* batcher flush period */
	int max_rows_per_sec; /* batcher throttle, rows written per second */
	char web_root[1024];  /* static files served at / */
	char log_level[16];   /* error | warn | info | debug */

	int max_body_bytes;	      /* HTTP request body cap (413) */
	int max_body_bytes_in_flight; /* body bytes held, all conns (503) */
	int max_batch_items;	      /* items per JSON batch (413) */
	int max_url_bytes;	      /* bytes per liked URL (400) */
	int max_urls_per_request; /* url= params per GET /v1/counts or SSE */
	int max_json_depth;	  /* JSON nesting accepted (400) */
	int max_subs_per_conn;	  /* subscriptions per WS connection */
	int max_ws_message_bytes; /* WS message cap (close 1009) */
	int max_ops_per_sec;	  /* client WS ops per second per connection */
	int stall_timeout_ms;	  /* close a subscriber making no progress */
	int sse_ping_ms;	  /* SSE comment after this much silence */
	int ws_ping_ms;		  /* WS ping after this much silence */
	int http_timeout_ms;	  /* whole-request deadline for HTTP bodies */
	int http_keepalive_s;	  /* idle keep-alive HTTP connections closed */
	int top_limit_max;	  /* upper bound of GET /v1/top?limit */

	int max_connections;  /* per process; 0 = fd limit - 64 */
	int max_conns_per_ip; /* per client IPv4 address; 0 = no limit */
	int max_likes_per_sec_per_ip; /* like items per second; 0 = no limit */
	char write_token[256];	      /* if set, likes need Bearer <token> */
	char metrics_token[256];      /* if set, /metrics, /v1/stats need it */
	int max_subscribed_bytes_per_ip; /* URL bytes subscribed per IP */
	int hsts_max_age;		 /* TLS: Strict-Transport-Security */
	char allowed_origins[1024];	 /* "*" or comma-separated origins */
	char csp_connect_src[1024];	 /* extra CSP connect-src sources */
	char tls_cert[1024];		 /* PEM certificate: serve HTTPS/WSS */
	char tls_key[1024];		 /* PEM private key for tls_cert */

	int max_urls;		  /* distinct URLs in memory; 0 = no cap */
	int sndbuf_bytes;	  /* SO_SNDBUF per connection; 0 = system's */
	int max_idempotency_keys; /* keys remembered, oldest dropped */
	int idempotency_ttl_s;	  /* a key's lifetime */
	int shutdown_timeout_ms;  /* final flush retries on SIGTERM */
	int drain_ms;		  /* SIGTERM: /readyz 503 this long first */
	char access_log[1024];	  /* "" off, "-" stderr, or a file path */
	bool reuse_port;	  /* share the port with other processes */
	char redis_url[512];	  /* cluster mode when set */
	int node_id;		  /* cluster mode: 1..1023, unique */
};

/* The shortest write_token / metrics_token accepted. */
#define LC_TOKEN_MIN_BYTES 16

/**
 * Refuses a write_token or metrics_token shorter than LC_TOKEN_MIN_BYTES
 * or not printable ASCII: 0, or -1 with a message in err.
 */
int lc_config_check_tokens(const struct lc_config *cfg, char *err,
			   size_t errlen);

/** Parses yes/no, true/false, on/off, 1/0 (any case): 1, 0, or -1. */
int lc_config_parse_bool(const char *v);

/** Fills every field with its built-in default. */
void lc_config_defaults(struct lc_config *cfg);

/**
 * Sets one key from its text form, checking type and bounds.
 * `key` may use '-' or '_'. Returns 0, or LC_EINVAL with a one-line
 * reason in err (which names the key).
 */
int lc_config_set(struct lc_config *cfg, const char *key, const char *value,
		  char *err, size_t errlen);

/** Applies a config file. Returns 0 or LC_EINVAL/LC_EIO with err filled. */
int lc_config_load_file(struct lc_config *cfg, const char *path, char *err,
			size_t errlen);

/**
 * Applies every set `LIVECOUNT_<KEY>` variable from envp (NULL-terminated,
 * as environ). Returns 0 or LC_EINVAL with err filled.
 */
int lc_config_load_env(struct lc_config *cfg, char *const *envp, char *err,
		       size_t errlen);

/**
 * The whole sequence main() uses: defaults, then the file named by
 * `--config` (or LIVECOUNT_CONFIG), then the environment, then flags.
 * Sets *help / *version / *check when those flags are present.
 * Returns 0, or LC_EINVAL with err filled (exit code 2 material).
 */
int lc_config_from_args(struct lc_config *cfg, int argc, char **argv,
			char *const *envp, bool *help, bool *version,
			bool *check, char *err, size_t errlen);

/** Prints usage and every key with its default and doc to `out` (FILE*). */
void lc_config_usage(void *out);

/** Prints the effective configuration as `key = value` lines. */
void lc_config_dump(const struct lc_config *cfg, void *out);

/**
 * Checks what single keys cannot: tls_cert and tls_key together and
 * readable, the tokens (lc_config_check_tokens), redis_url's form and a node_id
 * with it, the bind address, the database's directory (writable, or creatable
 * one level) and file, the web root. What start would refuse, so
 * `--check-config` and start both call it. Returns 0, or LC_EINVAL with a
 * one-line reason naming the key in err.
 */
int lc_config_validate(const struct lc_config *cfg, char *err, size_t errlen);

#define LC_REDIS_MAX_SENTINELS 8

struct lc_redis_addr {
	char host[256];
	int port;
};

/** A parsed redis_url. Holds the password: never print it (see
 * lc_config_redis_url_masked). */
struct lc_redis_url {
	struct lc_redis_addr addr; /* redis://; unused with Sentinel */
	int db;
	char user[128], pass[256]; /* empty pass = no AUTH */
	int nsentinels;		   /* > 0: redis+sentinel:// */
	struct lc_redis_addr sentinels[LC_REDIS_MAX_SENTINELS];
	char master[128]; /* the Sentinel master name */
};

/**
 * Parses redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or
 * redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]
 * (USER and PASSWORD percent-decoded; they authenticate with the data
 * nodes, not the sentinels). Returns 0, or LC_EINVAL with the reason in
 * err, which never holds the password. rediss:// is refused: TLS needs
 * hiredis >= 1.0. Any thread.
 */
int lc_config_parse_redis_url(const char *url, struct lc_redis_url *u,
			      char *err, size_t errlen);

/**
 * Copies url to out with the password replaced by "***" (for logs,
 * errors, --check-config and /v1/stats). Any thread.
 */
void lc_config_redis_url_masked(const char *url, char *out, size_t cap);

/**
 * SIGHUP: copies into `running` every reloadable key whose value differs
 * in `fresh` (a configuration loaded again and validated), logs a warning
 * naming every other changed key as needing a restart, and a line listing
 * the reloadable keys' values. The caller then applies them (main.c:
 * log_level). Main thread only. Returns the number of keys copied.
 */
size_t lc_config_reload(struct lc_config *running,
			const struct lc_config *fresh);

/** Number of keys and their names, for tests and docs. */
size_t lc_config_key_count(void);
const char *lc_config_key_name(size_t i);
const char *lc_config_key_default(size_t i);

/** Whether key i takes effect on SIGHUP (else it needs a restart). */
bool lc_config_key_reloadable(size_t i);

#endif
