/*
 * The access log (see http_log.h): one line per answered request.
 *
 * Threads: opened and closed by main around the workers' life; each worker
 * formats a line on its stack and writes it with one write(2).
 */
#define _GNU_SOURCE
#include "lc/http_log.h"
#include "lc/common.h"
#include "lc/worker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int log_fd = -1;
static bool log_owned;

int
lc_http_log_open(const char *target)
{
	if (!target || !target[0])
		return 0;
	if (!strcmp(target, "-")) {
		log_fd = STDERR_FILENO;
		return 0;
	}
	log_fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	log_owned = log_fd >= 0;
	return log_fd < 0 ? -1 : 0;
}

void
lc_http_log_close(void)
{
	if (log_owned)
		close(log_fd);
	log_fd = -1;
	log_owned = false;
}

static const char *const method_names[] = {"GET",  "POST",    "DELETE",
					   "HEAD", "OPTIONS", "OTHER"};

void
lc_http_log(struct lws *wsi, const struct lc_http_req *req, int status,
	    size_t bytes)
{
	static const enum lws_token_indexes uri_tokens[] = {
	    WSI_TOKEN_GET_URI, WSI_TOKEN_POST_URI, WSI_TOKEN_DELETE_URI,
	    WSI_TOKEN_HEAD_URI, WSI_TOKEN_OPTIONS_URI};
	char line[1024], path[512] = "-", ts[32], ip[INET_ADDRSTRLEN] = "-";
	struct lc_conn *c;
	int n;

	if (log_fd < 0)
		return;
	for (size_t i = 0; i < sizeof(uri_tokens) / sizeof(uri_tokens[0]); i++)
		if (lws_hdr_total_length(wsi, uri_tokens[i]) > 0) {
			if (lws_hdr_copy(wsi, path, sizeof(path),
					 uri_tokens[i]) <= 0)
				strcpy(path, "-");
			break;
		}
	/* The path is decoded: keep the line one line of printable bytes. */
	for (char *p = path; *p; p++)
		if ((unsigned char)*p < 0x21 || *p == 0x7f)
			*p = '?';
	c = lc_conn_of(wsi);
	if (c && c->ip)
		inet_ntop(AF_INET, &c->ip, ip, sizeof(ip));
	lc_iso8601_ms(lc_now_ms(), ts);
	n = snprintf(
	    line, sizeof(line), "%s %s %s %s %d %zu %.6f\n", ts, ip,
	    method_names[req->method < 6 ? req->method : 5], path, status,
	    bytes,
	    req->start_us ? (double)(lc_mono_us() - req->start_us) / 1e6 : 0.0);
	if (n > 0 &&
	    write(log_fd, line,
		  (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0)
		return; /* a full disk loses log lines, never requests */
}
