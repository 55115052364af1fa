/*
 * Static files: the dashboard and the SDK from web_root, GET / and paths of
 * [A-Za-z0-9/_.-] with a known extension, never "..", and never a file whose
 * real path (symlinks resolved) lies outside web_root's real path.
 *
 * Threads: the worker thread serving the request; lws sends the file.
 *
 * A note on symlinks: the path filter keeps ".." out of the request, but a
 * symlink inside web_root (web/leak.json -> /etc/passwd, or a directory
 * link) would still lead out of it, so the file is resolved with realpath()
 * and served only when it lies beneath realpath(web_root); lws then opens
 * the resolved path, which has no symlink left to follow. Links that stay
 * inside web_root work, and so does a web_root reached through a link.
 * openat2(RESOLVE_BENEATH) would close the remaining window (a directory
 * swapped for a link between the check and the open) but lws opens files
 * by name; that window needs write access to web_root, which is game over
 * anyway.
 *
 * A note on the Content-Security-Policy: HTML pages get a strict one (no
 * inline script or style, everything from this server, connections to this
 * server over HTTP, WebSocket and SSE) so that an injection in a page can't
 * run script or send data elsewhere. connect-src adds ws:// and wss:// of
 * the Host the page was asked from ('self' covers them only in CSP level 3
 * browsers) and csp_connect_src, the other livecounts a page may read with
 * ?server= (each http(s) source also gets its ws(s) twin).
 */
#define _GNU_SOURCE
#include "lc/http_static.h"
#include "lc/http_log.h"
#include "lc/http_policy.h"
#include "lc/http_reply.h"
#include "lc/metrics.h"
#include "lc/worker.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char csp_fixed[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'; connect-src 'self'";

static const struct {
	const char *ext, *type, *cache;
} mime[] = {
    {".html", "text/html; charset=utf-8", "no-cache"},
    {".js", "text/javascript; charset=utf-8", "no-cache"},
    {".mjs", "text/javascript; charset=utf-8", "no-cache"},
    {".css", "text/css; charset=utf-8", "no-cache"},
    {".ts", "text/plain; charset=utf-8", "no-cache"},
    {".json", "application/json", "no-cache"},
    {".svg", "image/svg+xml", "max-age=3600"},
    {".png", "image/png", "max-age=3600"},
    {".ico", "image/x-icon", "max-age=3600"},
};

/*
 * Resolves root + path (path starts with '/') into real, a PATH_MAX buffer,
 * and says whether the result lies beneath root's real path.
 */
static bool
resolve_beneath(const char *root, const char *path, char *real)
{
	char real_root[PATH_MAX], joined[PATH_MAX];
	size_t n;
	int len;

	len = snprintf(joined, sizeof(joined), "%s%s", root, path);
	if (len < 0 || (size_t)len >= sizeof(joined) ||
	    !realpath(root, real_root) || !realpath(joined, real))
		return false;
	n = strlen(real_root);
	if (n == 1) /* web_root is "/" */
		return true;
	return !strncmp(real, real_root, n) && real[n] == '/';
}

/*
 * Whether s (n bytes) can go into a CSP source list as one source: no
 * space, ';', ',', quote or control character that would end it or start
 * another directive.
 */
static bool
csp_source_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    !memchr(".:/*_-+[]%~", s[i], 11))
			return false;
	return n > 0;
}

/* Appends " src" to csp (len used of size), and its WebSocket twin. */
static void
csp_add_source(char *csp, size_t size, size_t *len, const char *src, size_t n)
{
	const char *twin = NULL;
	size_t skip = 0;
	int k;

	if (!csp_source_ok(src, n))
		return;
	if (n > 7 && !strncasecmp(src, "http://", 7))
		twin = "ws://", skip = 7;
	else if (n > 8 && !strncasecmp(src, "https://", 8))
		twin = "wss://", skip = 8;
	k = twin ? snprintf(csp + *len, size - *len, " %.*s %s%.*s", (int)n,
			    src, twin, (int)(n - skip), src + skip)
		 : snprintf(csp + *len, size - *len, " %.*s", (int)n, src);
	if (k > 0 && (size_t)k < size - *len)
		*len += (size_t)k;
	else
		csp[*len] = '\0'; /* does not fit: left out */
}

/* Adds the Content-Security-Policy header of an HTML page. */
static int
add_csp(struct lws *wsi, const struct lc_config *cfg, unsigned char **p,
	unsigned char *end)
{
	char csp[4096], host[256];
	size_t len = sizeof(csp_fixed) - 1, n;
	int hl;

	memcpy(csp, csp_fixed, sizeof(csp_fixed));
	hl = lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST);
	if (hl > 0 && csp_source_ok(host, (size_t)hl))
		len += (size_t)snprintf(csp + len, sizeof(csp) - len,
					" ws://%s wss://%s", host, host);
	for (const char *s = cfg->csp_connect_src; *s; s += n) {
		s += strspn(s, " ,\t");
		n = strcspn(s, " ,\t");
		csp_add_source(csp, sizeof(csp), &len, s, n);
	}
	return lws_add_http_header_by_name(
	    wsi, (const unsigned char *)"content-security-policy:",
	    (const unsigned char *)csp, (int)len, p, end);
}

int
lc_http_static_serve(struct lws *wsi, struct lc_worker *w, const char *path)
{
	const char *ext = strrchr(path, '.');
	char file[PATH_MAX], headers[5120];
	struct lc_http_req *pss = lws_wsi_user(wsi);
	unsigned char *hp;
	struct stat st;
	size_t i;
	int n;

	if (!strcmp(path, "/"))
		path = "/index.html", ext = ".html";
	for (const char *p = path; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '/' || *p == '-' ||
		      *p == '_' || *p == '.') ||
		    (p[0] == '.' && p[1] == '.'))
			goto notfound;
	for (i = 0; ext && i < sizeof(mime) / sizeof(mime[0]); i++)
		if (!strcmp(ext, mime[i].ext))
			break;
	if (!ext || i == sizeof(mime) / sizeof(mime[0]))
		goto notfound;
	if (!resolve_beneath(w->srv->cfg->web_root, path, file) ||
	    stat(file, &st) || !S_ISREG(st.st_mode))
		goto notfound;
	n = snprintf(headers, sizeof(headers),
		     "cache-control: %s\r\nx-content-type-options: nosniff\r\n",
		     mime[i].cache);
	/*
	 * CORS like the API: module scripts (the SDK, <live-count>) are
	 * fetched with CORS, so a page on an allowed origin needs this.
	 */
	hp = (unsigned char *)headers + n;
	if (lc_http_add_cors(wsi, w->srv->cfg, &hp,
			     (unsigned char *)headers + sizeof(headers)) ||
	    lc_http_add_hsts(wsi, w->srv->cfg, &hp,
			     (unsigned char *)headers + sizeof(headers)) ||
	    (!strcmp(mime[i].ext, ".html") &&
	     add_csp(wsi, w->srv->cfg, &hp,
		     (unsigned char *)headers + sizeof(headers))))
		return -1;
	n = (int)(hp - (unsigned char *)headers);
	lc_metrics_count_http(&w->stats, LC_ROUTE_STATIC, 200);
	if (pss)
		lc_http_log(wsi, pss, 200,
			    lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI)
				? 0
				: (size_t)st.st_size);
	n = lws_serve_http_file(wsi, file, mime[i].type, headers, n);
	if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi)))
		return -1;
	return 0;
notfound:
	return lc_http_error(wsi, 404, "not_found", "no such resource");
}
