/*
 * LD_PRELOAD shim for tests: shifts CLOCK_REALTIME (clock_gettime,
 * gettimeofday, time) by the number of seconds written in the file named
 * by $LC_CLOCK_SHIFT_FILE, re-read at most every 20 ms, so a test can step
 * a running server's wall clock back or forward. CLOCK_MONOTONIC is left
 * alone. Built by the test that uses it; not part of the server.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long shift_s;
static long long read_at_ns;

static long long
mono_ns(void)
{
	struct timespec ts;

	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long
shift(void)
{
	long long now = mono_ns();
	const char *path;

	if (now - read_at_ns > 20000000LL &&
	    (path = getenv("LC_CLOCK_SHIFT_FILE"))) {
		FILE *f = fopen(path, "r");

		read_at_ns = now;
		if (f) {
			long v;

			if (fscanf(f, "%ld", &v) == 1)
				shift_s = v;
			fclose(f);
		}
	}
	return shift_s;
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = (int)syscall(SYS_clock_gettime, id, ts);

	if (!rc && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_sec += shift();
	return rc;
}

int
gettimeofday(struct timeval *tv, void *tz)
{
	struct timespec ts;

	(void)tz;
	clock_gettime(CLOCK_REALTIME, &ts);
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

time_t
time(time_t *t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (t)
		*t = ts.tv_sec;
	return ts.tv_sec;
}
