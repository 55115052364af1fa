/*
 * Static files: the dashboard and the SDK from web_root, GET / and paths of
 * [A-Za-z0-9/_.-] with a known extension, never "..".
 *
 * Threads: the worker thread serving the request; lws sends the file.
 */
#define _GNU_SOURCE
#include "lc/http_static.h"
#include "lc/http_log.h"
#include "lc/http_policy.h"
#include "lc/http_reply.h"
#include "lc/metrics.h"
#include "lc/worker.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

int
lc_http_static_serve(struct lws *wsi, struct lc_worker *w, const char *path)
{
	const char *ext = strrchr(path, '.');
	char file[2048], headers[512];
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
	snprintf(file, sizeof(file), "%s%s", w->srv->cfg->web_root, path);
	if (stat(file, &st) || !S_ISREG(st.st_mode))
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
			     (unsigned char *)headers + sizeof(headers)))
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
