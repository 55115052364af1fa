/*
 * livecount — the WebSocket transport: /v1/ws, subprotocol livecount.v1.
 *
 * Does: accept the upgrade (path, Origin), authorise likes, assemble and
 * rate-limit client frames, act on subscribe / unsubscribe / like, send
 * error frames, and implement the session's transport functions and wire
 * format (`{"type":"snapshot"...}`, `{"type":"update"...}`, pings with a
 * payload). Does not: decide what a session is owed (delivery.c).
 *
 * Threads: the worker thread owning the connection.
 */
#ifndef LC_WS_H
#define LC_WS_H

#include <libwebsockets.h>

/** protocols[1]'s callback. */
int lc_ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
		   void *user, void *in, size_t len);

/** Per-session data size of protocols[1]. */
size_t lc_ws_pss_size(void);

#endif
