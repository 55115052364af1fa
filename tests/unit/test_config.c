/* Unit tests: configuration table, parsing, precedence, docs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
test_defaults(void **state)
{
	struct lc_config c;

	(void)state;
	lc_config_defaults(&c);
	assert_int_equal(c.port, 8080);
	assert_int_equal(c.tick_ms, 100);
	assert_int_equal(c.flush_interval_ms, 1000);
	assert_int_equal(c.workers, 0);
	assert_string_equal(c.db, "./data/livecount.db");
	assert_int_equal(c.max_batch_items, 10000);
	assert_int_equal(c.max_url_bytes, 2048);
}

static void
test_set_checks_type_and_bounds(void **state)
{
	struct lc_config c;
	char err[256];

	(void)state;
	lc_config_defaults(&c);
	assert_int_equal(lc_config_set(&c, "tick-ms", "50", err, sizeof(err)),
			 0);
	assert_int_equal(c.tick_ms, 50);
	assert_int_not_equal(
	    lc_config_set(&c, "tick_ms", "abc", err, sizeof(err)), 0);
	assert_non_null(strstr(err, "tick_ms"));
	assert_int_not_equal(
	    lc_config_set(&c, "port", "70000", err, sizeof(err)), 0);
	assert_non_null(strstr(err, "port"));
	assert_int_not_equal(lc_config_set(&c, "port", "12x", err, sizeof(err)),
			     0);
	assert_int_not_equal(lc_config_set(&c, "nope", "1", err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "nope"));
	assert_int_not_equal(
	    lc_config_set(&c, "log_level", "loud", err, sizeof(err)), 0);
	assert_int_equal(c.port, 8080); /* failed sets change nothing */
}

static char *
write_tmp(const char *text)
{
	static char path[] = "/tmp/lc_test_config_XXXXXX";
	int fd;
	FILE *f;

	strcpy(path, "/tmp/lc_test_config_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void
test_file_errors_name_line_and_key(void **state)
{
	struct lc_config c;
	char err[256];
	char *p;

	(void)state;
	lc_config_defaults(&c);
	p = write_tmp("# comment\n\nport = 9000\n  tick_ms=20  \n");
	assert_int_equal(lc_config_load_file(&c, p, err, sizeof(err)), 0);
	assert_int_equal(c.port, 9000);
	assert_int_equal(c.tick_ms, 20);
	unlink(p);

	p = write_tmp("port = 9000\nworkers = many\n");
	assert_int_not_equal(lc_config_load_file(&c, p, err, sizeof(err)), 0);
	assert_non_null(strstr(err, ":2:"));
	assert_non_null(strstr(err, "workers"));
	unlink(p);

	p = write_tmp("just words\n");
	assert_int_not_equal(lc_config_load_file(&c, p, err, sizeof(err)), 0);
	unlink(p);
	assert_int_not_equal(
	    lc_config_load_file(&c, "/nonexistent/x.conf", err, sizeof(err)),
	    0);
}

static void
test_precedence_flags_env_file_defaults(void **state)
{
	struct lc_config c;
	bool help, version, check;
	char err[256], cfgarg[128];
	char *p = write_tmp("port = 1111\ntick_ms = 11\nflush_interval_ms = "
			    "111\n");
	char *env[] = {"LIVECOUNT_TICK_MS=22",
		       "LIVECOUNT_FLUSH_INTERVAL_MS=222", "OTHER=1", NULL};
	char *argv[] = {
	    "livecount", "--config",	   cfgarg, "--flush-interval-ms",
	    "333",	 "--db=/tmp/x.db", NULL};

	(void)state;
	snprintf(cfgarg, sizeof(cfgarg), "%s", p);
	assert_int_equal(lc_config_from_args(&c, 6, argv, env, &help, &version,
					     &check, err, sizeof(err)),
			 0);
	assert_int_equal(c.port, 1111);		    /* file */
	assert_int_equal(c.tick_ms, 22);	    /* env beats file */
	assert_int_equal(c.flush_interval_ms, 333); /* flag beats env */
	assert_string_equal(c.db, "/tmp/x.db");	    /* --key=value form */
	assert_int_equal(c.max_batch_items, 10000); /* default */
	assert_false(help || version || check);
	unlink(p);
}

static void
test_bad_flags_and_env(void **state)
{
	struct lc_config c;
	bool h, v, k;
	char err[256];
	char *env_ok[] = {NULL};
	char *env_bad[] = {"LIVECOUNT_BOGUS=1", NULL};
	char *a1[] = {"livecount", "--bogus", "1", NULL};
	char *a2[] = {"livecount", "--port", NULL};
	char *a3[] = {"livecount", "stray", NULL};
	char *a4[] = {"livecount", "--help", "--bogus", NULL};

	(void)state;
	assert_int_not_equal(lc_config_from_args(&c, 3, a1, env_ok, &h, &v, &k,
						 err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "--bogus"));
	assert_int_not_equal(lc_config_from_args(&c, 2, a2, env_ok, &h, &v, &k,
						 err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "port"));
	assert_int_not_equal(lc_config_from_args(&c, 2, a3, env_ok, &h, &v, &k,
						 err, sizeof(err)),
			     0);
	assert_int_not_equal(lc_config_from_args(&c, 1, a1, env_bad, &h, &v, &k,
						 err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "LIVECOUNT_BOGUS"));
	/* --help wins even over a bad flag, so usage is always reachable. */
	assert_int_equal(lc_config_from_args(&c, 3, a4, env_ok, &h, &v, &k, err,
					     sizeof(err)),
			 0);
	assert_true(h);
}

/* A typo gets the nearest key, spelt as it was given (issue 17). */
static void
test_unknown_key_did_you_mean(void **state)
{
	struct lc_config c;
	bool h, v, k;
	char err[256];
	char *env_ok[] = {NULL};
	char *env_typo[] = {"LIVECOUNT_TIKC_MS=5", NULL};
	char *a1[] = {"livecount", "--tikc-ms", "5", NULL};
	char *a2[] = {"livecount", "--prot=9000", NULL};

	(void)state;
	lc_config_defaults(&c);
	assert_int_not_equal(
	    lc_config_set(&c, "tikc_ms", "5", err, sizeof(err)), 0);
	assert_non_null(strstr(err, "did you mean tick_ms?"));
	assert_int_not_equal(lc_config_set(&c, "zzzzzz", "5", err, sizeof(err)),
			     0);
	assert_null(strstr(err, "did you mean"));
	assert_int_not_equal(lc_config_set(&c, "pt", "1", err, sizeof(err)), 0);
	assert_null(strstr(err, "did you mean")); /* 2 edits of 2: too far */
	assert_int_not_equal(lc_config_from_args(&c, 3, a1, env_ok, &h, &v, &k,
						 err, sizeof(err)),
			     0);
	assert_string_equal(
	    err, "--tikc-ms: unknown flag (did you mean --tick-ms?)");
	assert_int_not_equal(lc_config_from_args(&c, 2, a2, env_ok, &h, &v, &k,
						 err, sizeof(err)),
			     0);
	assert_string_equal(err, "--prot: unknown flag (did you mean --port?)");
	assert_int_not_equal(lc_config_from_args(&c, 1, a1, env_typo, &h, &v,
						 &k, err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "did you mean LIVECOUNT_TICK_MS?"));
}

/* `--tick-ms --db x` forgot the value: say so, not "'--db' is not...". */
static void
test_flag_without_value(void **state)
{
	struct lc_config c;
	bool h, v, k;
	char err[256];
	char *env[] = {NULL};
	char *a1[] = {"livecount", "--tick-ms", "--db", "x.db", NULL};
	char *a2[] = {"livecount", "--tick-ms", NULL};
	char *a3[] = {
	    "livecount", "--write-token=--x", "--reuse-port", "--port", "9",
	    NULL};

	(void)state;
	assert_int_not_equal(
	    lc_config_from_args(&c, 4, a1, env, &h, &v, &k, err, sizeof(err)),
	    0);
	assert_string_equal(
	    err,
	    "--tick-ms needs a value (--tick-ms VALUE or --tick-ms=VALUE)");
	assert_int_not_equal(
	    lc_config_from_args(&c, 2, a2, env, &h, &v, &k, err, sizeof(err)),
	    0);
	assert_non_null(strstr(err, "--tick-ms needs a value"));
	/* A value that starts with "--" still goes with '='. */
	assert_int_equal(
	    lc_config_from_args(&c, 5, a3, env, &h, &v, &k, err, sizeof(err)),
	    0);
	assert_string_equal(c.write_token, "--x");
	assert_true(c.reuse_port);
	assert_int_equal(c.port, 9);
}

static size_t
key_index(const char *name)
{
	for (size_t i = 0; i < lc_config_key_count(); i++)
		if (!strcmp(lc_config_key_name(i), name))
			return i;
	fail_msg("no key %s", name);
	return 0;
}

/* SIGHUP copies reloadable keys only; the flag says which. */
static void
test_reload_applies_reloadable_keys_only(void **state)
{
	static struct lc_config running, fresh;

	(void)state;
	assert_true(lc_config_key_reloadable(key_index("log_level")));
	assert_false(lc_config_key_reloadable(key_index("tick_ms")));
	assert_false(lc_config_key_reloadable(lc_config_key_count()));
	lc_config_defaults(&running);
	lc_config_defaults(&fresh);
	assert_int_equal(lc_config_reload(&running, &fresh), 0);
	strcpy(fresh.log_level, "debug");
	fresh.tick_ms = 50;
	strcpy(fresh.write_token, "secret");
	assert_int_equal(lc_config_reload(&running, &fresh), 1);
	assert_string_equal(running.log_level, "debug");
	assert_int_equal(running.tick_ms, 100);
	assert_string_equal(running.write_token, "");
}

/* What needs several keys, checked the same for start and --check-config. */
static void
test_validate_across_keys(void **state)
{
	static struct lc_config c;
	const char *src = getenv("LC_SOURCE_DIR");
	char err[512];

	(void)state;
	assert_non_null(src);
	lc_config_defaults(&c);
	snprintf(c.web_root, sizeof(c.web_root), "%s/web", src);
	strcpy(c.db, "/tmp/lc-validate-test/x.db");
	assert_int_equal(lc_config_validate(&c, err, sizeof(err)), 0);

	strcpy(c.tls_cert, "/etc/hostname");
	assert_int_not_equal(lc_config_validate(&c, err, sizeof(err)), 0);
	assert_string_equal(err, "tls_cert and tls_key go together");
	strcpy(c.tls_key, "/nonexistent/key.pem");
	assert_int_not_equal(lc_config_validate(&c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "cannot read /nonexistent/key.pem"));
	c.tls_cert[0] = c.tls_key[0] = '\0';

	strcpy(c.redis_url, "redis://127.0.0.1:6379");
	assert_int_not_equal(lc_config_validate(&c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "node_id"));
	c.node_id = 3;
	assert_int_equal(lc_config_validate(&c, err, sizeof(err)), 0);
	strcpy(c.redis_url, "http://127.0.0.1:6379");
	assert_int_not_equal(lc_config_validate(&c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "redis_url"));
	c.redis_url[0] = '\0';

	strcpy(c.bind, "example.com");
	assert_int_not_equal(lc_config_validate(&c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "bind"));
	strcpy(c.bind, "127.0.0.1");
	strcpy(c.db, "/proc/nonexistent/x.db");
	assert_int_not_equal(lc_config_validate(&c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "db: directory /proc/nonexistent"));
	strcpy(c.db, "/tmp/x.db");
	strcpy(c.web_root, "/nonexistent");
	assert_int_not_equal(lc_config_validate(&c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "web_root"));
}

static void
test_redis_url_forms(void **state)
{
	static struct lc_redis_url u;
	char err[512], out[600];

	(void)state;
	assert_int_equal(
	    lc_config_parse_redis_url("redis://h", &u, err, sizeof(err)), 0);
	assert_string_equal(u.addr.host, "h");
	assert_int_equal(u.addr.port, 6379);
	assert_int_equal(
	    lc_config_parse_redis_url("redis://h:6390/2", &u, err, sizeof(err)),
	    0);
	assert_int_equal(u.addr.port, 6390);
	assert_int_equal(u.db, 2);
	assert_string_equal(u.pass, "");
	/* credentials: requirepass, ACL user, percent-encoded */
	assert_int_equal(lc_config_parse_redis_url("redis://:p%40ss@h:1/3", &u,
						   err, sizeof(err)),
			 0);
	assert_string_equal(u.user, "");
	assert_string_equal(u.pass, "p@ss");
	assert_int_equal(u.db, 3);
	assert_int_equal(
	    lc_config_parse_redis_url("redis://bob:pw@h", &u, err, sizeof(err)),
	    0);
	assert_string_equal(u.user, "bob");
	assert_string_equal(u.pass, "pw");
	/* refused, and the message never holds the password */
	assert_int_not_equal(
	    lc_config_parse_redis_url("redis://u@h", &u, err, sizeof(err)), 0);
	assert_int_not_equal(
	    lc_config_parse_redis_url("redis://h:0", &u, err, sizeof(err)), 0);
	assert_int_not_equal(lc_config_parse_redis_url("redis://:topsecret@h:x",
						       &u, err, sizeof(err)),
			     0);
	assert_null(strstr(err, "topsecret"));
	assert_int_not_equal(lc_config_parse_redis_url("rediss://:topsecret@h",
						       &u, err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "hiredis >= 1.0"));
	assert_null(strstr(err, "topsecret"));
	/* Sentinel */
	assert_int_equal(lc_config_parse_redis_url(
			     "redis+sentinel://:pw@a:26379,b:26380/mymaster/4",
			     &u, err, sizeof(err)),
			 0);
	assert_int_equal(u.nsentinels, 2);
	assert_string_equal(u.sentinels[1].host, "b");
	assert_int_equal(u.sentinels[1].port, 26380);
	assert_string_equal(u.master, "mymaster");
	assert_int_equal(u.db, 4);
	assert_string_equal(u.pass, "pw");
	assert_int_not_equal(lc_config_parse_redis_url("redis+sentinel://a/m",
						       &u, err, sizeof(err)),
			     0);
	assert_int_not_equal(lc_config_parse_redis_url("redis+sentinel://a:1",
						       &u, err, sizeof(err)),
			     0);
	/* masking */
	lc_config_redis_url_masked("redis://bob:pw@h:1/2", out, sizeof(out));
	assert_string_equal(out, "redis://bob:***@h:1/2");
	lc_config_redis_url_masked("redis://:pw@h", out, sizeof(out));
	assert_string_equal(out, "redis://:***@h");
	lc_config_redis_url_masked("redis://h:1", out, sizeof(out));
	assert_string_equal(out, "redis://h:1");
	lc_config_redis_url_masked("redis+sentinel://u:pw@a:1,b:2/m", out,
				   sizeof(out));
	assert_string_equal(out, "redis+sentinel://u:***@a:1,b:2/m");
}

static char *
slurp(const char *src, const char *rel)
{
	char path[1024];
	char *text;
	long n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", src, rel);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = malloc((size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	text[n] = '\0';
	fclose(f);
	return text;
}

/* README and the man page document every key (`make docs` lists them). */
static void
test_readme_and_man_page_document_every_key(void **state)
{
	const char *src = getenv("LC_SOURCE_DIR");
	char *readme, *man, want[128];

	(void)state;
	assert_non_null(src);
	readme = slurp(src, "README.md");
	man = slurp(src, "docs/livecount.8");
	for (size_t i = 0; i < lc_config_key_count(); i++) {
		const char *k = lc_config_key_name(i);

		snprintf(want, sizeof(want), "| `%s` |", k);
		if (!strstr(readme, want))
			fail_msg("README.md does not document %s", k);
		snprintf(want, sizeof(want), "\n.BR %s \"", k);
		if (!strstr(man, want))
			fail_msg("docs/livecount.8 does not document %s", k);
	}
	free(readme);
	free(man);
}

/* conf/livecount.conf sets every key and states its built-in default. */
static void
test_shipped_conf_documents_every_key(void **state)
{
	const char *src = getenv("LC_SOURCE_DIR");
	char path[1024], text[65536], want[256];
	struct lc_config c;
	char err[256];
	size_t n;
	FILE *f;

	(void)state;
	assert_non_null(src);
	snprintf(path, sizeof(path), "%s/conf/livecount.conf", src);
	lc_config_defaults(&c);
	assert_int_equal(lc_config_load_file(&c, path, err, sizeof(err)), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	for (size_t i = 0; i < lc_config_key_count(); i++) {
		const char *k = lc_config_key_name(i);

		snprintf(want, sizeof(want), "\n%s =", k);
		if (!strstr(text, want))
			fail_msg("conf/livecount.conf does not set %s", k);
		if (!strcmp(k, "web_root"))
			continue; /* its default is the build's source tree */
		snprintf(want, sizeof(want), "Default %s",
			 lc_config_key_default(i));
		if (!strstr(text, want))
			fail_msg("conf/livecount.conf does not state '%s' for "
				 "%s",
				 want, k);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_set_checks_type_and_bounds),
	    cmocka_unit_test(test_file_errors_name_line_and_key),
	    cmocka_unit_test(test_precedence_flags_env_file_defaults),
	    cmocka_unit_test(test_bad_flags_and_env),
	    cmocka_unit_test(test_shipped_conf_documents_every_key),
	    cmocka_unit_test(test_readme_and_man_page_document_every_key),
	    cmocka_unit_test(test_unknown_key_did_you_mean),
	    cmocka_unit_test(test_flag_without_value),
	    cmocka_unit_test(test_reload_applies_reloadable_keys_only),
	    cmocka_unit_test(test_validate_across_keys),
	    cmocka_unit_test(test_redis_url_forms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
