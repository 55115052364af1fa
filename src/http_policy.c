/*
 * HTTP access policy (see http_policy.h): which origins may call the API
 * (CORS) and whether a request carries the write token.
 *
 * Threads: the worker thread serving the request.
 */
#define _GNU_SOURCE
#include "lc/http_policy.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

bool
lc_http_origin_allowed(const struct lc_config *cfg, const char *origin,
		       size_t len)
{
	const char *p = cfg->allowed_origins;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		while (n && *p == ' ')
			p++, n--;
		while (n && p[n - 1] == ' ')
			n--;
		if ((n == 1 && *p == '*') ||
		    (n == len && !memcmp(p, origin, n)))
			return true;
		if (!e)
			break;
		p = e + 1;
	}
	return false;
}

enum lc_origin
lc_http_origin(struct lws *wsi, const struct lc_config *cfg,
	       char buf[LC_ORIGIN_MAX + 1], int *len)
{
	int total = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);

	*len = 0;
	buf[0] = '\0';
	if (total <= 0)
		return LC_ORIGIN_ABSENT;
	/*
	 * Present but longer than any origin we could have listed, or not
	 * copied whole: never taken for "no Origin" (that let a long
	 * Origin past allowed_origins).
	 */
	if (total > LC_ORIGIN_MAX ||
	    (*len = lws_hdr_copy(wsi, buf, LC_ORIGIN_MAX + 1,
				 WSI_TOKEN_ORIGIN)) != total) {
		*len = 0;
		buf[0] = '\0';
		return LC_ORIGIN_REFUSED;
	}
	return lc_http_origin_allowed(cfg, buf, (size_t)*len)
		   ? LC_ORIGIN_ALLOWED
		   : LC_ORIGIN_REFUSED;
}

bool
lc_http_origin_refused(struct lws *wsi, const struct lc_config *cfg)
{
	char buf[LC_ORIGIN_MAX + 1];
	int n;

	return lc_http_origin(wsi, cfg, buf, &n) == LC_ORIGIN_REFUSED;
}

int
lc_http_add_cors(struct lws *wsi, const struct lc_config *cfg,
		 unsigned char **p, unsigned char *end)
{
	char origin[LC_ORIGIN_MAX + 1];
	int n;

	if (!strcmp(cfg->allowed_origins, "*"))
		return lws_add_http_header_by_name(
		    wsi, (const unsigned char *)"access-control-allow-origin:",
		    (const unsigned char *)"*", 1, p, end);
	/*
	 * A list: echo the caller's origin when it is on it. The answer
	 * depends on Origin whether or not it is allowed, so caches are told
	 * so either way.
	 */
	if (lws_add_http_header_by_name(wsi, (const unsigned char *)"vary:",
					(const unsigned char *)"Origin", 6, p,
					end))
		return 1;
	if (lc_http_origin(wsi, cfg, origin, &n) != LC_ORIGIN_ALLOWED)
		return 0;
	return lws_add_http_header_by_name(
	    wsi, (const unsigned char *)"access-control-allow-origin:",
	    (const unsigned char *)origin, n, p, end);
}

int
lc_http_add_hsts(struct lws *wsi, const struct lc_config *cfg,
		 unsigned char **p, unsigned char *end)
{
	char v[48];
	int n;

	if (!cfg->tls_cert[0] || cfg->hsts_max_age <= 0)
		return 0;
	n = snprintf(v, sizeof(v), "max-age=%d", cfg->hsts_max_age);
	return lws_add_http_header_by_name(
	    wsi, (const unsigned char *)"strict-transport-security:",
	    (const unsigned char *)v, n, p, end);
}

bool
lc_http_token_matches(const struct lc_config *cfg, const char *tok, size_t len)
{
	return lc_token_equal(cfg->write_token, tok, len);
}

bool
lc_token_equal(const char *secret, const char *tok, size_t len)
{
	size_t sl = strnlen(secret, LC_TOKEN_MAX);
	unsigned char diff = (unsigned char)(len != sl);

	/*
	 * Constant time: always LC_TOKEN_MAX steps over both strings padded
	 * with zeros, so neither the secret's length nor where a guess first
	 * differs shows in the time taken.
	 */
	for (size_t i = 0; i < LC_TOKEN_MAX; i++) {
		unsigned char a = i < len ? (unsigned char)tok[i] : 0;
		unsigned char b = i < sl ? (unsigned char)secret[i] : 0;

		diff |= (unsigned char)(a ^ b);
	}
	return !diff && len <= LC_TOKEN_MAX;
}

/* Whether the request carries "Authorization: Bearer <secret>". */
static bool
bearer(struct lws *wsi, const char *secret)
{
	char h[LC_TOKEN_MAX + 16];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);

	if (n <= 7 || n >= (int)sizeof(h) ||
	    lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_HTTP_AUTHORIZATION) != n)
		return false;
	return !strncasecmp(h, "Bearer ", 7) &&
	       lc_token_equal(secret, h + 7, (size_t)n - 7);
}

bool
lc_http_authorized(struct lws *wsi, const struct lc_config *cfg)
{
	return !cfg->write_token[0] || bearer(wsi, cfg->write_token);
}

bool
lc_http_metrics_authorized(struct lws *wsi, const struct lc_config *cfg)
{
	return !cfg->metrics_token[0] || bearer(wsi, cfg->metrics_token);
}
