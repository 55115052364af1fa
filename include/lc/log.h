/*
 * livecount — logging: one line per message on stderr.
 *
 * Does: filter by level and write whole lines (a single fputs each, so
 * lines of different threads never interleave). Does not: rotate, buffer
 * or send anywhere else. log.c also holds the ISO-8601 time helpers
 * declared in common.h.
 *
 * Threads: any.
 */
#ifndef LC_LOG_H
#define LC_LOG_H

enum lc_log_level {
	LC_LOG_ERROR = 0,
	LC_LOG_WARN = 1,
	LC_LOG_INFO = 2,
	LC_LOG_DEBUG = 3,
};

/** Sets the most verbose level that is printed. Any thread (SIGHUP). */
void lc_log_set_level(enum lc_log_level level);

/** Parses "error", "warn", "info" or "debug"; returns -1 when unknown. */
int lc_log_level_parse(const char *name);

/** Writes one line "<ISO time> <LEVEL> <message>" to stderr. Any thread. */
void lc_log(enum lc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define lc_err(...) lc_log(LC_LOG_ERROR, __VA_ARGS__)
#define lc_warn(...) lc_log(LC_LOG_WARN, __VA_ARGS__)
#define lc_info(...) lc_log(LC_LOG_INFO, __VA_ARGS__)
#define lc_debug(...) lc_log(LC_LOG_DEBUG, __VA_ARGS__)

#endif
