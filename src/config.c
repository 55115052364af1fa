/*
 * Configuration table, parsing and precedence.
 *
 * A note on the design: like Redis' static_configs[], every key lives in one
 * table row with its type, default, bounds, doc line and flags (RELOADABLE,
 * like Redis' MODIFIABLE_CONFIG; SECRET; PATH). Setting a key from the file,
 * the environment or a flag all go through lc_config_set(), so validation
 * and error messages are identical whatever the source; SIGHUP decides what
 * it applies from the flags alone; `--help` is generated from the rows, and
 * conf/livecount.conf, README and the man page are checked against them
 * (tests/unit/test_config.c, scripts/check-docs.py). What needs several
 * keys at once is checked by lc_config_validate(), at start and by
 * --check-config alike.
 */
#define _GNU_SOURCE
#include "lc/config.h"
#include "lc/common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef LC_WEB_ROOT
#define LC_WEB_ROOT "./web"
#endif

enum key_type { KEY_INT, KEY_STR, KEY_BOOL };

/* Key flags, the last column of a row (none: restart needed, shown). */
enum {
	RELOADABLE = 1, /* SIGHUP applies it (lc_config_reload; main.c) */
	SECRET = 2,	/* never printed: --check-config shows its length */
	PATH = 4,	/* relative in a file = relative to the file's dir */
};

struct key {
	const char *name;
	enum key_type type;
	size_t offset;
	size_t size; /* string capacity */
	const char *def;
	long long min, max;
	const char *doc;
	unsigned flags;
};

/*
 * One line per key (in the spirit of redis' static_configs[]): name,
 * default, bounds (integers), doc, then optionally its flags, e.g.
 * `STR_KEY(log_level, "info", "...", RELOADABLE)`. A key without flags
 * needs a restart, which is the safe default: only flag RELOADABLE a key
 * that no thread but main reads, or that main applies itself on SIGHUP.
 */
/* clang-format off */
#define INT_KEY(n, d, lo, hi, doc, ...)                                        \
	{#n, KEY_INT, offsetof(struct lc_config, n), 0, d, lo, hi, doc,        \
	 0 __VA_OPT__(| __VA_ARGS__)}
#define STR_KEY(n, d, doc, ...)                                                \
	{#n, KEY_STR, offsetof(struct lc_config, n),                           \
	 sizeof(((struct lc_config *)0)->n), d, 0, 0, doc,                     \
	 0 __VA_OPT__(| __VA_ARGS__)}
#define BOOL_KEY(n, d, doc, ...)                                               \
	{#n, KEY_BOOL, offsetof(struct lc_config, n), 0, d, 0, 1, doc,         \
	 0 __VA_OPT__(| __VA_ARGS__)}

static const struct key keys[] = {
	STR_KEY(bind, "127.0.0.1", "IPv4 address to listen on (localhost = 127.0.0.1; 0.0.0.0 = all)"),
	INT_KEY(port, "8080", 0, 65535, "TCP port; 0 picks a free port"),
	STR_KEY(db, "./data/livecount.db", "SQLite database file", PATH),
	INT_KEY(workers, "0", 0, 256, "worker threads; 0 = number of cores"),
	INT_KEY(tick_ms, "100", 5, 60000, "dispatch tick in milliseconds"),
	INT_KEY(watching_interval_ms, "1000", 10, 600000, "a URL's watching figure is pushed at most this often"),
	INT_KEY(flush_interval_ms, "1000", 10, 3600000, "batcher flush period in milliseconds"),
	INT_KEY(max_rows_per_sec, "1000000", 1, 1000000000, "batcher throttle: URL rows written per second"),
	STR_KEY(web_root, LC_WEB_ROOT, "directory of static files served at /", PATH),
	STR_KEY(log_level, "info", "error | warn | info | debug", RELOADABLE),
	INT_KEY(max_body_bytes, "8388608", 64, 1073741824, "largest HTTP request body (413 beyond)"),
	INT_KEY(max_body_bytes_in_flight, "67108864", 65536, 2147483647, "request body bytes held by all connections (503 beyond)"),
	INT_KEY(max_batch_items, "10000", 1, 1000000, "items in one JSON batch (413 beyond)"),
	INT_KEY(max_url_bytes, "2048", 1, LC_URL_MAX_BYTES, "bytes in one liked URL"),
	INT_KEY(max_urls_per_request, "50", 1, LC_URLS_PER_REQUEST_MAX, "url= parameters in one GET /v1/counts or SSE request"),
	INT_KEY(max_json_depth, "8", 2, 1000, "JSON nesting depth accepted"),
	INT_KEY(max_subs_per_conn, "100", 1, 100000, "subscriptions per WebSocket connection"),
	INT_KEY(max_ws_message_bytes, "65536", 128, 16777216, "largest WebSocket message from a client (close 1009)"),
	INT_KEY(max_ops_per_sec, "200", 1, 1000000, "client WebSocket messages per second per connection"),
	INT_KEY(stall_timeout_ms, "30000", 100, 3600000, "close a subscriber whose socket makes no progress this long"),
	INT_KEY(sse_ping_ms, "15000", 100, 3600000, "SSE comment line after this much silence"),
	INT_KEY(ws_ping_ms, "30000", 100, 3600000, "WebSocket ping after this much silence"),
	INT_KEY(http_timeout_ms, "10000", 100, 3600000, "deadline to receive a whole HTTP request"),
	INT_KEY(http_keepalive_s, "60", 1, 86400, "close a keep-alive HTTP connection idle this long between requests"),
	INT_KEY(top_limit_max, "1000", 1, 100000, "largest limit accepted by GET /v1/top"),
	INT_KEY(max_connections, "0", 0, 100000000, "open connections per process; 0 = the fd limit minus 64"),
	INT_KEY(max_conns_per_ip, "10000", 0, 100000000, "open connections per client IP; 0 = no limit"),
	INT_KEY(max_likes_per_sec_per_ip, "0", 0, 1000000000, "like items per second per client IP and worker (429); 0 = off"),
	STR_KEY(write_token, "", "if set, likes need 'Authorization: Bearer <token>' (401)", SECRET),
	STR_KEY(metrics_token, "", "if set, /metrics and /v1/stats need 'Authorization: Bearer <token>' (401)", SECRET),
	INT_KEY(max_subscribed_bytes_per_ip, "8388608", 0, 2147483647, "URL bytes (+256 each) one client IP may hold subscribed (429); 0 = off"),
	INT_KEY(hsts_max_age, "0", 0, 630720000, "with TLS: Strict-Transport-Security max-age in seconds; 0 = off"),
	STR_KEY(allowed_origins, "*", "browser origins allowed for WebSocket and CORS, comma-separated"),
	STR_KEY(csp_connect_src, "", "servers the pages may connect to besides their own (CSP)"),
	STR_KEY(tls_cert, "", "PEM certificate file: serve HTTPS and WSS", PATH),
	STR_KEY(tls_key, "", "PEM private key file for tls_cert", PATH),
	INT_KEY(sndbuf_bytes, "131072", 0, 67108864, "kernel send buffer per connection (SO_SNDBUF); 0 = system's"),
	INT_KEY(max_urls, "5000000", 0, 2000000000, "distinct URLs held in memory; past it new URLs get 507"),
	INT_KEY(max_idempotency_keys, "100000", 1, 100000000, "idempotency keys remembered (oldest dropped first)"),
	INT_KEY(idempotency_ttl_s, "86400", 1, 2592000, "how long a retried like with the same key counts once"),
	INT_KEY(shutdown_timeout_ms, "60000", 0, 3600000, "on SIGTERM, how long to retry writing to a failing database"),
	INT_KEY(drain_ms, "1000", 0, 600000, "on SIGTERM, serve this long with /readyz 503 before closing"),
	STR_KEY(access_log, "", "one line per HTTP request: empty = off, - = stderr, or a file", PATH),
	BOOL_KEY(reuse_port, "no", "share the port with other processes (SO_REUSEPORT)"),
	STR_KEY(redis_url, "", "cluster mode: redis://[[USER]:PASSWORD@]HOST:PORT[/DB] or redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]; empty = single node"),
	INT_KEY(node_id, "0", 0, 1023, "cluster mode: this node's id, unique in the cluster (1..1023)"),
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

/* name[0..len) with '-' as '_' and lower case, into norm (cap 64). */
static bool
normalize(const char *name, size_t len, char norm[64])
{
	if (len >= 64)
		return false;
	for (size_t i = 0; i < len; i++)
		norm[i] = name[i] == '-'
			      ? '_'
			      : (char)tolower((unsigned char)name[i]);
	norm[len] = '\0';
	return true;
}

static const struct key *
find_key(const char *name, size_t len)
{
	char norm[64];

	if (!normalize(name, len, norm))
		return NULL;
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, norm))
			return &keys[i];
	return NULL;
}

/*
 * Edit distance with adjacent transpositions (optimal string alignment):
 * a typo such as tikc_ms is one edit from tick_ms.
 */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), d[64][64];

	if (la >= 64 || lb >= 64)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1], v = d[i - 1][j] + 1;

			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	return d[la][lb];
}

/*
 * The key closest to an unknown name, if it is close enough to be a typo
 * (at most 2 edits, and fewer than a third of the name), else NULL.
 */
static const char *
suggest_key(const char *name, size_t len)
{
	char norm[64];
	const char *best = NULL;
	size_t best_d = SIZE_MAX;

	if (!normalize(name, len, norm))
		return NULL;
	for (size_t i = 0; i < NKEYS; i++) {
		size_t dist = edit_distance(norm, keys[i].name);

		if (dist < best_d) {
			best_d = dist;
			best = keys[i].name;
		}
	}
	return best_d <= 2 && best_d * 3 <= len ? best : NULL;
}

/*
 * "<what>: unknown ..." with " (did you mean <prefix><key>?)" when a key is
 * close; the suggestion is spelt the way the name was given: prefix "--"
 * and dashes for a flag, "LIVECOUNT_" and upper case for the environment.
 */
static void
unknown_key(char *err, size_t errlen, const char *what, const char *name,
	    size_t len, const char *prefix)
{
	const char *s = suggest_key(name, len);
	bool flag = !strcmp(prefix, "--"), env = !strcmp(prefix, "LIVECOUNT_");
	char sp[80];

	if (!s) {
		snprintf(err, errlen, "%s: unknown %s", what,
			 flag ? "flag (see --help)" : "configuration key");
		return;
	}
	snprintf(sp, sizeof(sp), "%s%s", prefix, s);
	for (char *p = sp + strlen(prefix); *p; p++)
		if (flag && *p == '_')
			*p = '-';
		else if (env)
			*p = (char)toupper((unsigned char)*p);
	snprintf(err, errlen, "%s: unknown %s (did you mean %s?)", what,
		 flag ? "flag" : "configuration key", sp);
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
		/* The one host name we resolve: no DNS at start. */
		if (!strcmp(k->name, "bind") && !strcasecmp(value, "localhost"))
			value = "127.0.0.1", n = 9;
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
		unknown_key(err, errlen, key, key, strlen(key), "");
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
 * A relative path in a configuration file (a PATH key: db, web_root,
 * tls_cert, tls_key, access_log other than "-") is relative to the file's
 * directory, not to wherever the server was started from; flags and
 * environment stay relative to the current directory, as usual on a
 * command line.
 */
static int
rebase_path(const char *file, const char *key, char **v, char *buf, size_t cap)
{
	const struct key *k = find_key(key, strlen(key));
	const char *slash = strrchr(file, '/');
	int n;

	if (!k || !(k->flags & PATH) || !**v || **v == '/' || !slash ||
	    !strcmp(*v, "-"))
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
			char what[80];

			snprintf(what, sizeof(what), "LIVECOUNT_%.*s",
				 (int)(eq - e), e);
			unknown_key(err, errlen, what, e, (size_t)(eq - e),
				    "LIVECOUNT_");
			return LC_EINVAL;
		}
		if (set_key(cfg, k, eq + 1, err, errlen))
			return LC_EINVAL;
	}
	return 0;
}

/*
 * A flag, not a value: `--tick-ms --db x` is a forgotten value, not a tick
 * of "--db". A value starting with "--" goes as --key=--value.
 */
static bool
is_flag(const char *arg)
{
	return !strncmp(arg, "--", 2);
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
			if (i + 1 < argc && !is_flag(argv[i + 1]) &&
			    (!k || k->type != KEY_BOOL ||
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
			char what[80];

			snprintf(what, sizeof(what), "%.*s",
				 eq ? (int)(eq - a) : (int)strlen(a), a);
			unknown_key(err, errlen, what, name,
				    eq ? (size_t)(eq - name) : strlen(name),
				    "--");
			return LC_EINVAL;
		}
		if (eq)
			value = eq + 1;
		else if (k->type == KEY_BOOL &&
			 (i + 1 >= argc ||
			  lc_config_parse_bool(argv[i + 1]) < 0))
			value = "yes";
		else if (i + 1 < argc && !is_flag(argv[i + 1]))
			value = argv[++i];
		else {
			snprintf(err, errlen,
				 "%s needs a value (%s VALUE or %s=VALUE)", a,
				 a, a);
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
	const char *sep = "";

	fprintf(f,
		"usage: livecount [--config FILE] [--KEY VALUE ...] "
		"[--check-config] [--help] [--version]\n\n"
		"Counts likes for URLs and pushes live counts over WebSocket "
		"and SSE.\nManual: man livecount (docs/livecount.8 in the "
		"source tree). Signals: TERM/INT\ndrain, then stop "
		"gracefully; HUP reloads ");
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].flags & RELOADABLE) {
			fprintf(f, "%s%s", sep, keys[i].name);
			sep = ", ";
		}
	fprintf(f,
		" (other keys need a restart).\n\n"
		"Every configuration key is also a flag (tick_ms is "
		"--tick-ms) and an environment\nvariable (LIVECOUNT_TICK_MS). "
		"Precedence: flags > environment > file > defaults.\n\n"
		"keys (default; [SIGHUP]: reloaded by SIGHUP):\n");
	for (size_t i = 0; i < NKEYS; i++) {
		char flag[64];

		snprintf(flag, sizeof(flag), "--%s", keys[i].name);
		for (char *p = flag + 2; *p; p++)
			if (*p == '_')
				*p = '-';
		fprintf(f, "  %-24s %s (%s)%s\n", flag, keys[i].doc,
			keys[i].def,
			keys[i].flags & RELOADABLE ? " [SIGHUP]" : "");
	}
}

/* A key's value as text, a SECRET one as its length only. */
static const char *
format_value(const struct lc_config *cfg, const struct key *k, char *buf,
	     size_t cap)
{
	const char *p = (const char *)cfg + k->offset;

	if (k->type == KEY_STR && (k->flags & SECRET) && *p)
		snprintf(buf, cap, "(set, %zu bytes)", strlen(p));
	else if (k->type == KEY_STR && !strcmp(k->name, "redis_url"))
		lc_config_redis_url_masked(p, buf, cap); /* the password */
	else if (k->type == KEY_STR)
		return p;
	else if (k->type == KEY_BOOL)
		return *(const bool *)p ? "yes" : "no";
	else
		snprintf(buf, cap, "%d", *(const int *)p);
	return buf;
}

static bool
same_value(const struct lc_config *a, const struct lc_config *b,
	   const struct key *k)
{
	const char *pa = (const char *)a + k->offset,
		   *pb = (const char *)b + k->offset;

	if (k->type == KEY_STR)
		return !strcmp(pa, pb);
	if (k->type == KEY_BOOL)
		return *(const bool *)pa == *(const bool *)pb;
	return *(const int *)pa == *(const int *)pb;
}

void
lc_config_dump(const struct lc_config *cfg, void *out)
{
	char buf[sizeof(cfg->redis_url) + 8];

	for (size_t i = 0; i < NKEYS; i++)
		fprintf(out, "%s = %s\n", keys[i].name,
			format_value(cfg, &keys[i], buf, sizeof(buf)));
}

size_t
lc_config_reload(struct lc_config *running, const struct lc_config *fresh)
{
	char applied[512] = "", ba[64], bb[64];
	size_t n = 0, len = 0;

	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];

		if (k->flags & RELOADABLE) {
			if (!same_value(running, fresh, k)) {
				memcpy((char *)running + k->offset,
				       (const char *)fresh + k->offset,
				       k->type == KEY_STR    ? k->size
				       : k->type == KEY_BOOL ? sizeof(bool)
							     : sizeof(int));
				n++;
			}
			len += (size_t)snprintf(
			    applied + len,
			    len < sizeof(applied) ? sizeof(applied) - len : 0,
			    "%s%s = %s", len ? ", " : "", k->name,
			    format_value(running, k, ba, sizeof(ba)));
		} else if (!same_value(running, fresh, k)) {
			lc_warn("SIGHUP: '%s = %s' needs a restart (running: "
				"'%s = %s')",
				k->name, format_value(fresh, k, bb, sizeof(bb)),
				k->name,
				format_value(running, k, ba, sizeof(ba)));
		}
	}
	lc_info("SIGHUP: configuration reloaded (%s)", applied);
	return n;
}

/* Percent-decodes n bytes of p into out; false when it does not fit. */
static bool
pct_decode(const char *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (c == '%') {
			char hex[3] = {0, 0, 0};
			char *end;
			long v;

			if (i + 2 >= n || !isxdigit((unsigned char)p[i + 1]) ||
			    !isxdigit((unsigned char)p[i + 2]))
				return false;
			hex[0] = p[i + 1];
			hex[1] = p[i + 2];
			v = strtol(hex, &end, 16);
			if (end != hex + 2)
				return false;
			c = (char)v;
			i += 2;
		}
		if (o + 1 >= cap)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

/* HOST[:PORT] of n bytes at p into a; false when malformed. */
static bool
parse_addr(const char *p, size_t n, struct lc_redis_addr *a, bool need_port)
{
	const char *colon = memchr(p, ':', n);
	size_t hl = colon ? (size_t)(colon - p) : n;
	char num[8], *end;
	long v;

	if (!hl || hl >= sizeof(a->host) || memchr(p, '@', n) ||
	    memchr(p, '/', n))
		return false;
	memcpy(a->host, p, hl);
	a->host[hl] = '\0';
	a->port = 6379;
	if (!colon)
		return !need_port;
	n -= hl + 1;
	if (!n || n >= sizeof(num))
		return false;
	memcpy(num, colon + 1, n);
	num[n] = '\0';
	errno = 0;
	v = strtol(num, &end, 10);
	if (errno || *end || v < 1 || v > 65535)
		return false;
	a->port = (int)v;
	return true;
}

static bool
parse_db(const char *p, int *db)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(p, &end, 10);
	if (errno || end == p || *end || v < 0 || v > 1000000)
		return false;
	*db = (int)v;
	return true;
}

int
lc_config_parse_redis_url(const char *url, struct lc_redis_url *u, char *err,
			  size_t errlen)
{
	static const char plain[] = "redis://HOST[:PORT][/DB]";
	static const char sentinel[] =
	    "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]";
	const char *p, *at, *slash, *form = plain;
	bool is_sentinel = false;

	memset(u, 0, sizeof(*u));
	if (!strncmp(url, "rediss://", 9)) {
		snprintf(err, errlen,
			 "redis_url: rediss:// (TLS) needs hiredis >= 1.0, and "
			 "livecount is built on Debian 12's hiredis 0.14.1, "
			 "which has no TLS: reach Redis through a local TLS "
			 "tunnel (README, \"Running a cluster\") with "
			 "redis://127.0.0.1:PORT");
		return LC_EINVAL;
	}
	if (!strncmp(url, "redis://", 8)) {
		p = url + 8;
	} else if (!strncmp(url, "redis+sentinel://", 17)) {
		p = url + 17;
		is_sentinel = true;
		form = sentinel;
	} else {
		snprintf(err, errlen,
			 "redis_url: not %s nor %s (with USER:PASSWORD@ or "
			 ":PASSWORD@ before the host for AUTH)",
			 plain, sentinel);
		return LC_EINVAL;
	}
	slash = strchr(p, '/');
	at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));

		if (!colon ||
		    !pct_decode(p, (size_t)(colon - p), u->user,
				sizeof(u->user)) ||
		    !pct_decode(colon + 1, (size_t)(at - colon - 1), u->pass,
				sizeof(u->pass)) ||
		    !u->pass[0]) {
			snprintf(err, errlen,
				 "redis_url: the credentials must be "
				 "[USER]:PASSWORD@ (percent-encoded, "
				 "password up to %zu bytes)",
				 sizeof(u->pass) - 1);
			return LC_EINVAL;
		}
		p = at + 1;
	}
	if (!is_sentinel) {
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (!parse_addr(p, n, &u->addr, false) ||
		    (slash && slash[1] && !parse_db(slash + 1, &u->db)))
			goto bad;
		return 0;
	}
	/* HOST:PORT[,HOST:PORT...]/MASTER[/DB] */
	if (!slash || !slash[1])
		goto bad;
	while (p < slash) {
		const char *comma = memchr(p, ',', (size_t)(slash - p));
		size_t n = comma ? (size_t)(comma - p) : (size_t)(slash - p);

		if (u->nsentinels == LC_REDIS_MAX_SENTINELS ||
		    !parse_addr(p, n, &u->sentinels[u->nsentinels], true))
			goto bad;
		u->nsentinels++;
		p += n + (comma ? 1 : 0);
	}
	p = slash + 1;
	slash = strchr(p, '/');
	{
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (!n || n >= sizeof(u->master) || !u->nsentinels)
			goto bad;
		memcpy(u->master, p, n);
		u->master[n] = '\0';
	}
	if (slash && slash[1] && !parse_db(slash + 1, &u->db))
		goto bad;
	return 0;
bad:
	snprintf(err, errlen,
		 "redis_url: not %s (with USER:PASSWORD@ or "
		 ":PASSWORD@ before the host for AUTH)",
		 form);
	return LC_EINVAL;
}

void
lc_config_redis_url_masked(const char *url, char *out, size_t cap)
{
	const char *p = strstr(url, "://"), *slash, *at, *colon;

	snprintf(out, cap, "%s", url);
	if (!p)
		return;
	p += 3;
	slash = strchr(p, '/');
	at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
	if (!at)
		return;
	colon = memchr(p, ':', (size_t)(at - p));
	if (!colon)
		colon = p - 1; /* no user: mask all before '@' */
	snprintf(out, cap, "%.*s***%s", (int)(colon + 1 - url), url, at);
}

/* Can a file be created in dir? (access() says yes to root anywhere.) */
static bool
dir_writable(const char *dir)
{
	char tmp[1100];
	int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);

	if (fd >= 0) {
		close(fd);
		return true;
	}
	snprintf(tmp, sizeof(tmp), "%s/.livecount-check-XXXXXX", dir);
	fd = mkstemp(tmp);
	if (fd < 0)
		return false;
	close(fd);
	unlink(tmp);
	return true;
}

/* The database's directory exists and is writable, or can be made. */
static int
check_db_path(const char *db, char *err, size_t errlen)
{
	struct stat st;
	char tmp[1024], parent[1024], *dir;

	snprintf(tmp, sizeof(tmp), "%s", db);
	dir = dirname(tmp);
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode) || !dir_writable(dir)) {
			snprintf(err, errlen,
				 "db: directory %s is not writable", dir);
			return LC_EINVAL;
		}
	} else {
		snprintf(parent, sizeof(parent), "%s", dir);
		if (!dir_writable(dirname(parent))) {
			snprintf(err, errlen,
				 "db: directory %s does not exist and cannot "
				 "be created",
				 dir);
			return LC_EINVAL;
		}
	}
	if (access(db, F_OK) == 0 && access(db, R_OK | W_OK)) {
		snprintf(err, errlen, "db: %s is not readable and writable",
			 db);
		return LC_EINVAL;
	}
	return 0;
}

int
lc_config_validate(const struct lc_config *cfg, char *err, size_t errlen)
{
	static struct lc_redis_url url; /* main thread only */
	struct in_addr a;
	struct stat st;

	if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
		snprintf(err, errlen, "tls_cert and tls_key go together");
		return LC_EINVAL;
	}
	if (cfg->tls_cert[0] &&
	    (access(cfg->tls_cert, R_OK) || access(cfg->tls_key, R_OK))) {
		snprintf(err, errlen, "tls_cert/tls_key: cannot read %s",
			 access(cfg->tls_cert, R_OK) ? cfg->tls_cert
						     : cfg->tls_key);
		return LC_EINVAL;
	}
	if (lc_config_check_tokens(cfg, err, errlen))
		return LC_EINVAL;
	/* The message names the problem, never the password. */
	if (cfg->redis_url[0] &&
	    lc_config_parse_redis_url(cfg->redis_url, &url, err, errlen))
		return LC_EINVAL;
	if (cfg->redis_url[0] && !cfg->node_id) {
		snprintf(err, errlen,
			 "node_id: cluster mode (redis_url) needs a node_id, "
			 "1..1023, unique in the cluster");
		return LC_EINVAL;
	}
	if (inet_pton(AF_INET, cfg->bind, &a) != 1) {
		snprintf(err, errlen, "bind: '%s' is not an IPv4 address",
			 cfg->bind);
		return LC_EINVAL;
	}
	if (check_db_path(cfg->db, err, errlen))
		return LC_EINVAL;
	if (stat(cfg->web_root, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "web_root: %s is not a directory",
			 cfg->web_root);
		return LC_EINVAL;
	}
	return 0;
}

int
lc_config_check_tokens(const struct lc_config *cfg, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		size_t offset;
	} tokens[] = {
	    {"write_token", offsetof(struct lc_config, write_token)},
	    {"metrics_token", offsetof(struct lc_config, metrics_token)},
	};

	for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
		const char *t = (const char *)cfg + tokens[i].offset;
		size_t n = strlen(t);

		if (n && n < LC_TOKEN_MIN_BYTES) {
			snprintf(err, errlen,
				 "%s: a token shorter than %d bytes is "
				 "guessable; use e.g. `openssl rand -hex 16`",
				 tokens[i].name, LC_TOKEN_MIN_BYTES);
			return -1;
		}
		for (size_t k = 0; k < n; k++)
			if ((unsigned char)t[k] < 0x21 ||
			    (unsigned char)t[k] > 0x7e) {
				snprintf(err, errlen,
					 "%s: printable ASCII without spaces "
					 "only",
					 tokens[i].name);
				return -1;
			}
	}
	return 0;
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

bool
lc_config_key_reloadable(size_t i)
{
	return i < NKEYS && (keys[i].flags & RELOADABLE);
}
