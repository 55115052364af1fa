/*
 * livecount — the server: starting and stopping the worker threads.
 *
 * Each worker thread owns one lws_context on its own libuv loop, its own
 * SO_REUSEPORT listening socket (adopted into lws; the kernel spreads new
 * connections across workers), its connections, its delivery state and
 * its delta source (worker.h). Does not: handle any request (the
 * transports do) or run the tick (dispatch.c).
 *
 * Threads: main thread only. Other threads talk to a worker only through
 * its source's mailbox and lws_cancel_service().
 */
#ifndef LC_SERVER_H
#define LC_SERVER_H

#include "lc/worker.h"

/**
 * Binds one listening socket per worker (srv->nworkers, set by main with
 * cfg, counter, dispatch, batcher), starts the worker threads and waits
 * until each has its context. Returns 0, LC_ENOMEM or LC_EIO (logged);
 * on failure call lc_server_stop and lc_server_free all the same.
 */
int lc_server_start(struct lc_server *srv);

/**
 * Shutdown: every subscriber is told goodbye by its worker (WebSocket
 * close 1001, SSE retry: hint) and closed; waits up to wait_ms for them
 * to go. Main thread, before lc_server_stop.
 */
void lc_server_goodbye(struct lc_server *srv, int wait_ms);

/** Stops and joins the workers; their sources stay for the final tick. */
void lc_server_stop(struct lc_server *srv);

/** Frees what lc_server_start allocated; after the final tick. */
void lc_server_free(struct lc_server *srv);

#endif
