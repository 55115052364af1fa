/*
 * Logging and time formatting shared by every module.
 *
 * One line per call, written with a single fputs so that lines from several
 * threads never interleave (stdio locks the stream per call).
 */
#define _GNU_SOURCE
#include "lc/log.h"
#include "lc/common.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set at start and by SIGHUP (main) while other threads log. */
static _Atomic int max_level = LC_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
lc_log_set_level(enum lc_log_level level)
{
	atomic_store(&max_level, (int)level);
}

int
lc_log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++)
		if (!strcmp(name, level_names[i]))
			return (int)i;
	return -1;
}

void
lc_iso8601_ms(int64_t unix_ms, char out[32])
{
	time_t s = (time_t)(unix_ms / 1000);
	struct tm tm;

	size_t n;

	gmtime_r(&s, &tm);
	n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(unix_ms % 1000));
}

int
lc_time_parse(const char *s, int64_t *unix_s)
{
	struct tm tm = {0};
	char *end;
	int n = 0;

	if (!s || !*s)
		return LC_EINVAL;
	/* A bare integer is Unix seconds (up to year 9999). */
	if (isdigit((unsigned char)s[0]) && !strchr(s, '-')) {
		long long v;

		errno = 0;
		v = strtoll(s, &end, 10);
		if (*end || v < 0 || errno || v > 253402300799LL)
			return LC_EINVAL;
		*unix_s = v;
		return 0;
	}
	if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &n) != 3)
		return LC_EINVAL;
	s += n;
	if (*s == 'T' || *s == ' ') {
		n = 0;
		if (sscanf(s + 1, "%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &n) !=
		    2)
			return LC_EINVAL;
		s += 1 + n;
		if (*s == ':') {
			n = 0;
			if (sscanf(s + 1, "%2d%n", &tm.tm_sec, &n) != 1)
				return LC_EINVAL;
			s += 1 + n;
			if (*s == '.') {
				s++;
				while (isdigit((unsigned char)*s))
					s++;
			}
		}
		if (*s == 'Z')
			s++;
	}
	if (*s || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return LC_EINVAL;
	{
		struct tm back;
		int y = tm.tm_year, mo = tm.tm_mon, d = tm.tm_mday;
		time_t t;

		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		t = timegm(&tm);
		/* timegm normalises 2026-02-31 to March: refuse such dates. */
		gmtime_r(&t, &back);
		if (back.tm_year + 1900 != y || back.tm_mon + 1 != mo ||
		    back.tm_mday != d)
			return LC_EINVAL;
		*unix_s = (int64_t)t;
	}
	return 0;
}

void
lc_log(enum lc_log_level level, const char *fmt, ...)
{
	char line[1024], ts[32];
	va_list ap;
	int n;

	if ((int)level > atomic_load_explicit(&max_level, memory_order_relaxed))
		return;
	lc_iso8601_ms(lc_now_ms(), ts);
	n = snprintf(line, sizeof(line), "%s %-5s ", ts, level_names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	if (n && line[n - 1] != '\n') {
		line[n] = '\n';
		line[n + 1] = '\0';
	}
	fputs(line, stderr);
}
