/*
 * livecount — writing the answer of a parked HTTP request (defer.h) once
 * it came: from the connection's writeable callback.
 *
 * Threads: the worker thread.
 */
#ifndef LC_HTTP_DEFER_H
#define LC_HTTP_DEFER_H

#include <libwebsockets.h>

/**
 * LWS_CALLBACK_HTTP_WRITEABLE: writes the answer waiting for wsi, if any
 * (JSON, through the HTTP reply writer: logged, counted, CORS). Returns
 * what the callback returns (0, or -1 to close).
 */
int lc_http_resume(struct lws *wsi);

#endif
