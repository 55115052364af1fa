/*
 * HTTP access policy (see http_policy.h): which origins may call the API
 * (CORS) and whether a request carries the write token.
 *
 * Threads: the worker thread serving the request.
 */
#define _GNU_SOURCE
#include "lc/http_policy.h"

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

int
lc_http_add_cors(struct lws *wsi, const struct lc_config *cfg,
		 unsigned char **p, unsigned char *end)
{
	char origin[256];
	int n;

	if (!strcmp(cfg->allowed_origins, "*"))
		return lws_add_http_header_by_name(
		    wsi, (const unsigned char *)"access-control-allow-origin:",
		    (const unsigned char *)"*", 1, p, end);
	/* A list: echo the caller's origin when it is on it. */
	n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
	if (n <= 0 || !lc_http_origin_allowed(cfg, origin, (size_t)n))
		return 0;
	return lws_add_http_header_by_name(
		   wsi, (const unsigned char *)"access-control-allow-origin:",
		   (const unsigned char *)origin, n, p, end) ||
	       lws_add_http_header_by_name(wsi, (const unsigned char *)"vary:",
					   (const unsigned char *)"Origin", 6,
					   p, end);
}

bool
lc_http_token_matches(const struct lc_config *cfg, const char *tok, size_t len)
{
	size_t tl = strlen(cfg->write_token);
	unsigned char diff = 0;

	if (len != tl)
		return false;
	/* Constant time over the token's length. */
	for (size_t i = 0; i < tl; i++)
		diff |= (unsigned char)(tok[i] ^ cfg->write_token[i]);
	return !diff;
}

bool
lc_http_authorized(struct lws *wsi, const struct lc_config *cfg)
{
	char h[300];
	int n;

	if (!cfg->write_token[0])
		return true;
	n = lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_HTTP_AUTHORIZATION);
	return n > 7 && !strncasecmp(h, "Bearer ", 7) &&
	       lc_http_token_matches(cfg, h + 7, (size_t)n - 7);
}
