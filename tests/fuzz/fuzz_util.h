/*
 * Helpers shared by the libFuzzer targets of tests/fuzz/.
 *
 * FUZZ_CHECK aborts with the failing condition so that libFuzzer records
 * the input as a crash; it is active in every build type (unlike assert).
 * fuzz_dup copies the input into an exactly-sized heap buffer so that
 * AddressSanitizer catches any read past the end of the caller's bytes.
 */
#ifndef LC_FUZZ_UTIL_H
#define LC_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n",      \
				__FILE__, __LINE__, #cond);                    \
			abort();                                               \
		}                                                              \
	} while (0)

/* Exactly-sized copy (no terminator); size 0 gives a 1-byte allocation. */
static inline char *
fuzz_dup(const unsigned char *data, size_t size)
{
	char *p = malloc(size ? size : 1);

	if (!p)
		abort();
	memcpy(p, data, size);
	return p;
}

/* NUL-terminated copy; embedded NULs simply end the string early. */
static inline char *
fuzz_strdup(const unsigned char *data, size_t size)
{
	char *p = malloc(size + 1);

	if (!p)
		abort();
	memcpy(p, data, size);
	p[size] = '\0';
	return p;
}

#endif
