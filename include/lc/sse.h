/*
 * livecount — the Server-Sent Events transport: GET /v1/events.
 *
 * Does: answer the request with headers and a snapshot, then keep the
 * connection as a stream whose session (delivery.h) is written through
 * SSE's transport functions and wire format (`event: snapshot`,
 * `id: <seq>` + `event: update`, `: ping`). Does not: decide what a stream
 * is owed (delivery.c).
 *
 * Threads: the worker thread owning the stream.
 */
#ifndef LC_SSE_H
#define LC_SSE_H

#include <libwebsockets.h>

struct lc_worker;
struct lc_session;

/** Answers GET /v1/events: headers, snapshot, then a live stream. */
int lc_sse_start(struct lws *wsi, struct lc_worker *w);

/** The stream's session, or NULL when wsi is not an SSE stream. */
struct lc_session *lc_sse_session(struct lws *wsi);

/** Frees the stream's session when lws destroys its wsi. */
void lc_sse_destroyed(struct lws *wsi);

/**
 * LWS_CALLBACK_TIMER of a stream held open without keep-alive (HTTP/1.0,
 * Connection: close): returns -1 once the client has left, else re-arms.
 */
int lc_sse_timer(struct lws *wsi);

#endif
