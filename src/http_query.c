/*
 * Query parameters of the request URI (see http_query.h): copying the
 * values of one name, validating liked URLs, integers and times.
 *
 * Threads: the worker thread serving the request, inside the lws callback
 * (lws frees the header table after it).
 */
#define _GNU_SOURCE
#include "lc/http_query.h"
#include "lc/worker.h"

#include <stdlib.h>
#include <string.h>

int
lc_http_query(struct lws *wsi, const char *name, char *buf, size_t buflen,
	      const char **vals, size_t *lens, int max,
	      struct lc_api_error *err)
{
	struct lc_worker *w = lc_worker_of(wsi);
	size_t nlen = strlen(name), used = 0;
	int found = 0;

	for (int idx = 0;; idx++) {
		char frag[LC_QUERY_FRAGMENT_BYTES];
		int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
					      WSI_TOKEN_HTTP_URI_ARGS, idx);
		size_t vlen;

		if (n < 0)
			break;
		if ((size_t)n <= nlen || strncmp(frag, name, nlen) ||
		    frag[nlen] != '=')
			continue;
		vlen = (size_t)n - nlen - 1;
		/* lws keeps a decoded %00 inside the fragment: refuse it. */
		if (strlen(frag + nlen + 1) != vlen) {
			lc_api_error_set(err, 400,
					 !strcmp(name, "url") ? "bad_url"
							      : "bad_request",
					 "%s contains a NUL byte", name);
			return -1;
		}
		if (found == max) {
			lc_api_error_set(err, 400, "too_many_urls",
					 "at most %d %s parameters per request",
					 max, name);
			return -1;
		}
		if (!strcmp(name, "url") &&
		    lc_url_check(frag + nlen + 1, vlen,
				 (size_t)w->srv->cfg->max_url_bytes, err))
			return -1;
		if (used + vlen + 1 > buflen) {
			lc_api_error_set(err, 400, "bad_request",
					 "query parameters too long");
			return -1;
		}
		memcpy(buf + used, frag + nlen + 1, vlen + 1);
		vals[found] = buf + used;
		lens[found] = vlen;
		used += vlen + 1;
		found++;
	}
	return found;
}

bool
lc_http_query_has(struct lws *wsi, const char *name)
{
	size_t nlen = strlen(name);
	char frag[LC_QUERY_FRAGMENT_BYTES];

	for (int idx = 0;
	     lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
				   WSI_TOKEN_HTTP_URI_ARGS, idx) >= 0;
	     idx++)
		if (!strncmp(frag, name, nlen) && frag[nlen] == '=')
			return true;
	return false;
}

int
lc_http_query_int(struct lws *wsi, const char *name, long long lo, long long hi,
		  long long def, long long *out, struct lc_api_error *err)
{
	char buf[32];
	const char *v[1];
	size_t l[1];
	char *end;
	int n = lc_http_query(wsi, name, buf, sizeof(buf), v, l, 1, err);

	if (n < 0)
		return -1;
	if (!n) {
		*out = def;
		return 0;
	}
	*out = strtoll(v[0], &end, 10);
	if (!l[0] || *end || *out < lo || *out > hi) {
		lc_api_error_set(err, 400, "bad_request",
				 "%s must be an integer from %lld to %lld",
				 name, lo, hi);
		return -1;
	}
	return 0;
}

int
lc_http_query_time(struct lws *wsi, const char *name, int64_t def, int64_t *out,
		   struct lc_api_error *err)
{
	char buf[64];
	const char *v[1];
	size_t l[1];
	int n = lc_http_query(wsi, name, buf, sizeof(buf), v, l, 1, err);

	if (n < 0)
		return -1;
	if (!n) {
		*out = def;
		return 0;
	}
	if (lc_time_parse(v[0], out)) {
		lc_api_error_set(err, 400, "bad_request",
				 "%s must be ISO-8601 UTC or Unix seconds",
				 name);
		return -1;
	}
	return 0;
}
