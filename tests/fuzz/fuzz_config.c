/*
 * libFuzzer target: the configuration file parser and lc_config_set().
 *
 * 1. The input is written to a memfd (no file left behind) and loaded with
 *    lc_config_load_file() over the defaults. Errors must carry a message.
 *    After a successful load, lc_config_dump()'s output must itself be a
 *    config file that loads back to the identical configuration (values
 *    stay in bounds, strings stay terminated, log_level stays valid).
 * 2. The input, split at its first '=' into key and value (each ending at
 *    an embedded NUL, as C strings do), goes through lc_config_set().
 */
#define _GNU_SOURCE
#include "lc/common.h"
#include "lc/config.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

static int memfd = -1;
static char memfd_path[64];

static void
write_memfd(const void *data, size_t size)
{
	if (memfd < 0) {
		memfd = memfd_create("lc_fuzz_config", MFD_CLOEXEC);
		if (memfd < 0) {
			perror("memfd_create");
			abort();
		}
		snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d",
			 memfd);
	}
	if (ftruncate(memfd, 0) ||
	    (size && pwrite(memfd, data, size, 0) != (ssize_t)size)) {
		perror("memfd write");
		abort();
	}
}

/* lc_config_dump() into a malloc'ed string. */
static char *
dump(const struct lc_config *cfg, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		abort();
	lc_config_dump(cfg, f);
	fclose(f);
	return buf;
}

static void
check_strings(const struct lc_config *cfg)
{
	FUZZ_CHECK(memchr(cfg->bind, 0, sizeof(cfg->bind)));
	FUZZ_CHECK(memchr(cfg->db, 0, sizeof(cfg->db)));
	FUZZ_CHECK(memchr(cfg->web_root, 0, sizeof(cfg->web_root)));
	FUZZ_CHECK(memchr(cfg->log_level, 0, sizeof(cfg->log_level)));
}

static void
check_file(const uint8_t *data, size_t size)
{
	struct lc_config cfg, again;
	char err[512] = "", err2[512] = "";
	size_t l1, l2;
	char *d1, *d2;
	int rc;

	lc_config_defaults(&cfg);
	write_memfd(data, size);
	rc = lc_config_load_file(&cfg, memfd_path, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == LC_EINVAL);
	check_strings(&cfg);
	if (rc) {
		FUZZ_CHECK(err[0]);
		return;
	}
	FUZZ_CHECK(lc_log_level_parse(cfg.log_level) >= 0);

	d1 = dump(&cfg, &l1);
	write_memfd(d1, l1);
	lc_config_defaults(&again);
	rc = lc_config_load_file(&again, memfd_path, err2, sizeof(err2));
	/* A relative path may no longer fit once made relative to the file. */
	if (rc && strstr(err2, "path too long")) {
		free(d1);
		return;
	}
	if (rc) {
		fprintf(stderr, "dump of a loaded config does not load: %s\n%s",
			err2, d1);
		abort();
	}
	/*
	 * Two keys do not round-trip by design: relative paths in a file are
	 * relative to that file (here /proc/self/fd), and the dump hides the
	 * tokens (SECRET keys). Every other key must come back as it was.
	 */
	memcpy(again.db, cfg.db, sizeof(cfg.db));
	memcpy(again.web_root, cfg.web_root, sizeof(cfg.web_root));
	memcpy(again.tls_cert, cfg.tls_cert, sizeof(cfg.tls_cert));
	memcpy(again.tls_key, cfg.tls_key, sizeof(cfg.tls_key));
	memcpy(again.access_log, cfg.access_log, sizeof(cfg.access_log));
	memcpy(again.write_token, cfg.write_token, sizeof(cfg.write_token));
	memcpy(again.metrics_token, cfg.metrics_token,
	       sizeof(cfg.metrics_token));
	d2 = dump(&again, &l2);
	if (l1 != l2 || memcmp(d1, d2, l1)) {
		fprintf(stderr, "dump does not round-trip:\n%s---\n%s", d1, d2);
		abort();
	}
	free(d1);
	free(d2);
}

static void
check_set(const uint8_t *data, size_t size)
{
	char *key = fuzz_strdup(data, size);
	const char *eq = memchr(data, '=', size);
	const char *value = "";
	struct lc_config cfg;
	char err[256] = "";
	int rc;

	if (eq) {
		size_t k = (size_t)(eq - (const char *)data);

		key[k] = '\0';
		value = key + k + 1;
	}
	lc_config_defaults(&cfg);
	rc = lc_config_set(&cfg, key, value, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == LC_EINVAL);
	check_strings(&cfg);
	if (rc)
		FUZZ_CHECK(err[0]);
	else
		FUZZ_CHECK(lc_log_level_parse(cfg.log_level) >= 0);
	free(key);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_file(data, size);
	check_set(data, size);
	return 0;
}
