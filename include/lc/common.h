/*
 * livecount — small shared definitions: error codes, clocks, the
 * statistics increment, time formatting (log.c), and logging (log.h).
 *
 * Everything here is safe to call from any thread. Nothing here includes
 * libwebsockets.h, so the core modules that use it stay unit-testable
 * without a network.
 */
#ifndef LC_COMMON_H
#define LC_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lc/log.h"

#define LC_VERSION "0.1.0"

/* Error codes: functions return 0 or one of these (negative). */
enum {
	LC_OK = 0,
	LC_ENOMEM = -1,	 /* allocation failed */
	LC_EINVAL = -2,	 /* bad argument or bad input */
	LC_ETOOBIG = -4, /* input larger than a configured limit */
	LC_EIO = -5,	 /* I/O or database failure */
	LC_ENOTDB = -6,	 /* file is not a livecount database */
	LC_EBUSY = -7,	 /* resource held by someone else */
	LC_EFULL = -8,	 /* a configured capacity is reached (max_urls) */
};

/*
 * a + b, saturated at +-(2^63 - 1): counts never wrap (a like beyond the
 * maximum leaves the count there; README says so). Symmetric, so a count
 * (likes - unlikes, both saturated) always fits.
 */
static inline int64_t
lc_sat_add(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r) || r == INT64_MIN)
		return b > 0 ? INT64_MAX : -INT64_MAX;
	return r;
}

/*
 * Single-writer increment of a statistics counter: relaxed load and store,
 * correct because exactly one thread (the owner) writes the field; readers
 * (/metrics) load it relaxed from any thread.
 */
#define LC_STAT_ADD(field, v)                                                  \
	atomic_store_explicit(                                                 \
	    &(field),                                                          \
	    atomic_load_explicit(&(field), memory_order_relaxed) + (v),        \
	    memory_order_relaxed)

/* Wall clock in Unix milliseconds. */
static inline int64_t
lc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic clock in milliseconds: every deadline, timer and rate window
 * (a step of the wall clock must not move them). */
static inline int64_t
lc_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic clock in microseconds, for durations and deadlines. */
static inline int64_t
lc_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/** Formats Unix milliseconds as "2026-11-24T03:35:00.123Z" (25 bytes). */
void lc_iso8601_ms(int64_t unix_ms, char out[32]);

/**
 * Parses an ISO-8601 UTC time ("2026-11-24T03:35:00Z", optional ".mmm",
 * or a date alone) or a plain integer of Unix seconds.
 * Returns 0 and stores Unix seconds, or LC_EINVAL.
 */
int lc_time_parse(const char *s, int64_t *unix_s);

#endif
