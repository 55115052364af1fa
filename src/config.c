/*
 * Configuration table, parsing and precedence.
 *
 * A note on the design: like Redis' static_configs[], every key lives in one
 * table row with its type, default, bounds and doc line. Setting a key from
 * the file, the environment or a flag all go through lc_config_set(), so
 * validation and error messages are identical whatever the source, and
 * `--help` and conf/livecount.conf are generated from / checked against the
 * same rows (tests/unit/test_config.c).
 */
#define _GNU_SOURCE
#include "lc/config.h"
#include "lc/common.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LC_WEB_ROOT
#define LC_WEB_ROOT "./web"
#endif

enum key_type { KEY_INT, KEY_STR, KEY_BOOL };

struct key {
	const char *name;
	enum key_type type;
	size_t offset;
	size_t size; /* string capacity */
	const char *def;
	long long min, max;
	const char *doc;
};

/* One row per key reads best as a table. */
/* clang-format off */
#define INT_KEY(n, d, lo, hi, doc)                                             \
	{#n, KEY_INT, offsetof(struct lc_config, n), 0, d, lo, hi, doc}
#define STR_KEY(n, d, doc)                                                     \
	{#n,                                                                   \
	 KEY_STR,                                                              \
	 offsetof(struct lc_config, n),                                        \
	 sizeof(((struct lc_config *)0)->n),                                   \
	 d,                                                                    \
	 0,                                                                    \
	 0,                                                                    \
	 doc}

#define BOOL_KEY(n, d, doc)                                                    \
	{#n, KEY_BOOL, offsetof(struct lc_config, n), 0, d, 0, 1, doc}

static const struct key keys[] = {
	STR_KEY(bind, "0.0.0.0", "address to listen on"),
	INT_KEY(port, "8080", 0, 65535, "TCP port; 0 picks a free port"),
	STR_KEY(db, "./data/livecount.db", "SQLite database file"),
	INT_KEY(workers, "0", 0, 256, "worker threads; 0 = number of cores"),
	INT_KEY(tick_ms, "100", 5, 60000, "dispatch tick in milliseconds"),
	INT_KEY(flush_interval_ms, "1000", 10, 3600000,
		"batcher flush period in milliseconds"),
	INT_KEY(max_rows_per_sec, "1000000", 1, 1000000000,
		"batcher throttle: URL rows written per second"),
	STR_KEY(web_root, LC_WEB_ROOT, "directory of static files served at /"),
	STR_KEY(log_level, "info", "error | warn | info | debug"),
	INT_KEY(max_body_bytes, "8388608", 64, 1073741824,
		"largest HTTP request body (413 beyond)"),
	INT_KEY(max_body_bytes_in_flight, "67108864", 65536, 2147483647,
		"request body bytes held by all connections (503 beyond)"),
	INT_KEY(max_batch_items, "10000", 1, 1000000,
		"items in one JSON batch (413 beyond)"),
	INT_KEY(max_url_bytes, "2048", 1, LC_URL_MAX_BYTES,
		"bytes in one liked URL"),
	INT_KEY(max_urls_per_request, "50", 1, LC_URLS_PER_REQUEST_MAX,
		"url= parameters in one GET /v1/counts or SSE request"),
	INT_KEY(max_json_depth, "8", 2, 1000, "JSON nesting depth accepted"),
	INT_KEY(max_subs_per_conn, "100", 1, 100000,
		"subscriptions per WebSocket connection"),
	INT_KEY(max_ws_message_bytes, "65536", 128, 16777216,
		"largest WebSocket message from a client (close 1009)"),
	INT_KEY(max_ops_per_sec, "200", 1, 1000000,
		"client WebSocket messages per second per connection"),
	INT_KEY(stall_timeout_ms, "30000", 100, 3600000,
		"close a subscriber whose socket makes no progress this long"),
	INT_KEY(sse_ping_ms, "15000", 100, 3600000,
		"SSE comment line after this much silence"),
	INT_KEY(ws_ping_ms, "30000", 100, 3600000,
		"WebSocket ping after this much silence"),
	INT_KEY(http_timeout_ms, "10000", 100, 3600000,
		"deadline to receive a whole HTTP request"),
	INT_KEY(top_limit_max, "1000", 1, 100000,
		"largest limit accepted by GET /v1/top"),
	INT_KEY(max_connections, "0", 0, 100000000,
		"open connections per process; 0 = the fd limit minus 64"),
	INT_KEY(max_conns_per_ip, "10000", 0, 100000000,
		"open connections per client IP; 0 = no limit"),
	INT_KEY(max_likes_per_sec_per_ip, "0", 0, 1000000000,
		"like items per second per client IP and worker (429); 0 = off"),
	STR_KEY(write_token, "",
		"if set, likes need 'Authorization: Bearer <token>' (401)"),
	STR_KEY(allowed_origins, "*",
		"browser origins allowed for WebSocket and CORS, comma-separated"),
	STR_KEY(tls_cert, "", "PEM certificate file: serve HTTPS and WSS"),
	STR_KEY(tls_key, "", "PEM private key file for tls_cert"),
	INT_KEY(sndbuf_bytes, "131072", 0, 67108864,
		"kernel send buffer per connection (SO_SNDBUF); 0 = system's"),
	INT_KEY(max_urls, "5000000", 0, 2000000000,
		"distinct URLs held in memory; past it new URLs get 507"),
	INT_KEY(max_idempotency_keys, "100000", 1, 100000000,
		"idempotency keys remembered (oldest dropped first)"),
	INT_KEY(idempotency_ttl_s, "86400", 1, 2592000,
		"how long a retried like with the same key counts once"),
	INT_KEY(shutdown_timeout_ms, "60000", 0, 3600000,
		"on SIGTERM, how long to retry writing to a failing database"),
	INT_KEY(drain_ms, "1000", 0, 600000,
		"on SIGTERM, serve this long with /readyz 503 before closing"),
	STR_KEY(access_log, "",
		"one line per HTTP request: empty = off, - = stderr, or a file"),
	BOOL_KEY(reuse_port, "no",
		 "share the port with other processes (SO_REUSEPORT)"),
	STR_KEY(redis_url, "",
		"cluster mode: redis://[[USER]:PASSWORD@]HOST:PORT[/DB] or "
		"redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/"
		"MASTER[/DB]; empty = single node"),
	INT_KEY(node_id, "0", 0, 1023,
		"cluster mode: this node's id, unique in the cluster (1..1023)"),
};

/* clang-format on */

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

int
lc_config_parse_bool(const char *v)
{
	static const char *const yes[] = {"1", "yes", "true", "on"};
	static const char *const no[] = {"0", "no", "false", "off"};

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i]))
			return 1;
		if (!strcasecmp(v, no[i]))
			return 0;
	}
	return -1;
}

static const struct key *
find_key(const char *name, size_t len)
{
	char norm[64];

	if (len >= sizeof(norm))
		return NULL;
	for (size_t i = 0; i < len; i++)
		norm[i] = name[i] == '-'
			      ? '_'
			      : (char)tolower((unsigned char)name[i]);
	norm[len] = '\0';
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, norm))
			return &keys[i];
	return NULL;
}

static int
set_key(struct lc_config *cfg, const struct key *k, const char *value,
	char *err, size_t errlen)
{
	char *p = (char *)cfg + k->offset;

	if (k->type == KEY_STR) {
		size_t n = strlen(value);

		if (n >= k->size) {
			snprintf(err, errlen, "%s: value longer than %zu bytes",
				 k->name, k->size - 1);
			return LC_EINVAL;
		}
		if (!strcmp(k->name, "log_level") &&
		    lc_log_level_parse(value) < 0) {
			snprintf(err, errlen,
				 "log_level: '%s' is not error, warn, info or "
				 "debug",
				 value);
			return LC_EINVAL;
		}
		memcpy(p, value, n + 1);
		return 0;
	}

	char *end;
	long long v;

	if (k->type == KEY_BOOL) {
		int b = lc_config_parse_bool(value);

		if (b < 0) {
			snprintf(err, errlen,
				 "%s: '%s' is not yes/no, true/false, on/off "
				 "or 1/0",
				 k->name, value);
			return LC_EINVAL;
		}
		*(bool *)p = b;
		return 0;
	}
	errno = 0;
	v = strtoll(value, &end, 10);
	while (*end && isspace((unsigned char)*end))
		end++;
	if (!*value || *end || errno) {
		snprintf(err, errlen, "%s: '%s' is not an integer", k->name,
			 value);
		return LC_EINVAL;
	}
	if (v < k->min || v > k->max) {
		snprintf(err, errlen, "%s: %lld is outside %lld..%lld", k->name,
			 v, k->min, k->max);
		return LC_EINVAL;
	}
	*(int *)p = (int)v;
	return 0;
}

void
lc_config_defaults(struct lc_config *cfg)
{
	char err[128];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++)
		set_key(cfg, &keys[i], keys[i].def, err, sizeof(err));
}

int
lc_config_set(struct lc_config *cfg, const char *key, const char *value,
	      char *err, size_t errlen)
{
	const struct key *k = find_key(key, strlen(key));

	if (!k) {
		snprintf(err, errlen, "%s: unknown configuration key", key);
		return LC_EINVAL;
	}
	return set_key(cfg, k, value, err, errlen);
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/*
 * A relative path in a configuration file (db, web_root, tls_cert,
 * tls_key, access_log other than "-") is relative to the file's directory, not
 * to wherever the server was started from; flags and environment stay relative
 * to the current directory, as usual on a command line.
 */
static int
rebase_path(const char *file, const char *key, char **v, char *buf, size_t cap)
{
	static const char *const path_keys[] = {"db", "web_root", "tls_cert",
						"tls_key", "access_log"};
	const char *slash = strrchr(file, '/');
	bool is_path = false;
	int n;

	for (size_t i = 0; i < sizeof(path_keys) / sizeof(path_keys[0]); i++)
		if (!strcmp(key, path_keys[i]))
			is_path = true;
	if (!is_path || !**v || **v == '/' || !slash || !strcmp(*v, "-"))
		return 0;
	n = snprintf(buf, cap, "%.*s/%s", (int)(slash - file), file, *v);
	if (n < 0 || (size_t)n >= cap)
		return LC_EINVAL;
	*v = buf;
	return 0;
}

int
lc_config_load_file(struct lc_config *cfg, const char *path, char *err,
		    size_t errlen)
{
	char *line = NULL, sub[256], rebased[2048];
	size_t cap = 0;
	ssize_t got;
	unsigned lineno = 0;
	FILE *f = fopen(path, "r");
	int rc = 0;

	if (!f) {
		snprintf(err, errlen, "config: cannot open %s: %s", path,
			 strerror(errno));
		return LC_EIO;
	}
	while ((got = getline(&line, &cap, f)) >= 0) {
		char *eq, *k, *v;

		lineno++;
		if (strlen(line) != (size_t)got) {
			snprintf(err, errlen, "%s:%u: line contains a NUL byte",
				 path, lineno);
			rc = LC_EINVAL;
			break;
		}
		k = trim(line);
		if (!*k || *k == '#')
			continue;
		eq = strchr(k, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%u: expected 'key = value'",
				 path, lineno);
			rc = LC_EINVAL;
			break;
		}
		*eq = '\0';
		k = trim(k);
		v = trim(eq + 1);
		if (rebase_path(path, k, &v, rebased, sizeof(rebased))) {
			snprintf(err, errlen, "%s:%u: %s: path too long", path,
				 lineno, k);
			rc = LC_EINVAL;
			break;
		}
		if (lc_config_set(cfg, k, v, sub, sizeof(sub))) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, sub);
			rc = LC_EINVAL;
			break;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

int
lc_config_load_env(struct lc_config *cfg, char *const *envp, char *err,
		   size_t errlen)
{
	static const char prefix[] = "LIVECOUNT_";

	for (; envp && *envp; envp++) {
		const char *e = *envp, *eq;
		const struct key *k;

		if (strncmp(e, prefix, sizeof(prefix) - 1))
			continue;
		e += sizeof(prefix) - 1;
		eq = strchr(e, '=');
		if (!eq || !strncmp(e, "CONFIG=", 7))
			continue;
		k = find_key(e, (size_t)(eq - e));
		if (!k) {
			snprintf(err, errlen,
				 "LIVECOUNT_%.*s: unknown configuration key",
				 (int)(eq - e), e);
			return LC_EINVAL;
		}
		if (set_key(cfg, k, eq + 1, err, errlen))
			return LC_EINVAL;
	}
	return 0;
}

int
lc_config_from_args(struct lc_config *cfg, int argc, char **argv,
		    char *const *envp, bool *help, bool *version, bool *check,
		    char *err, size_t errlen)
{
	const char *file = NULL;

	*help = *version = *check = false;
	lc_config_defaults(cfg);

	/* First pass: find the file and the action flags. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			*help = true;
		else if (!strcmp(argv[i], "--version"))
			*version = true;
		else if (!strcmp(argv[i], "--check-config"))
			*check = true;
		else if (!strcmp(argv[i], "--config")) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "--config: missing file");
				return LC_EINVAL;
			}
			file = argv[++i];
		} else if (!strncmp(argv[i], "--", 2) &&
			   !strchr(argv[i], '=')) {
			const struct key *k =
			    find_key(argv[i] + 2, strlen(argv[i] + 2));

			/* skip the value; a bool flag may stand alone */
			if (!k || k->type != KEY_BOOL ||
			    (i + 1 < argc &&
			     lc_config_parse_bool(argv[i + 1]) >= 0))
				i++;
		}
	}
	if (*help || *version)
		return 0;
	if (!file)
		for (char *const *e = envp; e && *e; e++)
			if (!strncmp(*e, "LIVECOUNT_CONFIG=", 17))
				file = *e + 17;
	if (file && lc_config_load_file(cfg, file, err, errlen))
		return LC_EINVAL;
	if (lc_config_load_env(cfg, envp, err, errlen))
		return LC_EINVAL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *name, *value, *eq;
		const struct key *k;

		if (!strcmp(a, "--help") || !strcmp(a, "-h") ||
		    !strcmp(a, "--version") || !strcmp(a, "--check-config"))
			continue;
		if (!strcmp(a, "--config")) {
			i++;
			continue;
		}
		if (strncmp(a, "--", 2)) {
			snprintf(err, errlen, "%s: unexpected argument", a);
			return LC_EINVAL;
		}
		name = a + 2;
		eq = strchr(name, '=');
		k = find_key(name, eq ? (size_t)(eq - name) : strlen(name));
		if (!k) {
			snprintf(err, errlen, "%s: unknown flag (see --help)",
				 a);
			return LC_EINVAL;
		}
		if (eq)
			value = eq + 1;
		else if (k->type == KEY_BOOL &&
			 (i + 1 >= argc ||
			  lc_config_parse_bool(argv[i + 1]) < 0))
			value = "yes";
		else if (i + 1 < argc)
			value = argv[++i];
		else {
			snprintf(err, errlen, "%s: missing value", a);
			return LC_EINVAL;
		}
		if (set_key(cfg, k, value, err, errlen))
			return LC_EINVAL;
	}
	return 0;
}

void
lc_config_usage(void *out)
{
	FILE *f = out;

	fprintf(f,
		"usage: livecount [--config FILE] [--KEY VALUE ...] "
		"[--check-config] [--help] [--version]\n\n"
		"Counts likes for URLs and pushes live counts over WebSocket "
		"and SSE.\nManual: man livecount (docs/livecount.8 in the "
		"source tree). Signals: TERM/INT\nstop gracefully, HUP "
		"reloads log_level.\n\n"
		"Every configuration key is also a flag (tick_ms is "
		"--tick-ms) and an environment\nvariable (LIVECOUNT_TICK_MS). "
		"Precedence: flags > environment > file > defaults.\n\n"
		"keys (default):\n");
	for (size_t i = 0; i < NKEYS; i++) {
		char flag[64];

		snprintf(flag, sizeof(flag), "--%s", keys[i].name);
		for (char *p = flag + 2; *p; p++)
			if (*p == '_')
				*p = '-';
		fprintf(f, "  %-24s %s (%s)\n", flag, keys[i].doc, keys[i].def);
	}
}

void
lc_config_dump(const struct lc_config *cfg, void *out)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const char *p = (const char *)cfg + keys[i].offset;
		const char *at = keys[i].type == KEY_STR &&
					 !strcmp(keys[i].name, "redis_url")
				     ? strchr(p, '@')
				     : NULL;
		const char *cred = at ? strstr(p, "://") : NULL;

		if (keys[i].type == KEY_STR &&
		    !strcmp(keys[i].name, "write_token") && *p)
			fprintf(out, "%s = (set, %zu bytes)\n", keys[i].name,
				strlen(p));
		else if (cred && cred < at &&
			 !memchr(cred + 3, '/', (size_t)(at - cred - 3))) {
			/* The Redis password: "redis://user:***@host". */
			const char *colon =
			    memchr(cred + 3, ':', (size_t)(at - cred - 3));

			fprintf(out, "%s = %.*s***%s\n", keys[i].name,
				(int)((colon ? colon : cred + 2) + 1 - p), p,
				at);
		} else if (keys[i].type == KEY_STR)
			fprintf(out, "%s = %s\n", keys[i].name, p);
		else if (keys[i].type == KEY_BOOL)
			fprintf(out, "%s = %s\n", keys[i].name,
				*(const bool *)p ? "yes" : "no");
		else
			fprintf(out, "%s = %d\n", keys[i].name,
				*(const int *)p);
	}
}

size_t
lc_config_key_count(void)
{
	return NKEYS;
}

const char *
lc_config_key_name(size_t i)
{
	return i < NKEYS ? keys[i].name : NULL;
}

const char *
lc_config_key_default(size_t i)
{
	return i < NKEYS ? keys[i].def : NULL;
}
