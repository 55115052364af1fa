// Type declarations for livecount.js, the livecount client SDK (wire contract v1, docs/API.md).

export type Transport = 'auto' | 'ws' | 'sse';
export type ConnectionState = 'connecting' | 'connected' | 'disconnected';

export interface ClientOptions {
  /** 'auto' (default) tries WebSocket and falls back to SSE when it cannot open. */
  transport?: Transport;
  /** Smallest reconnect delay, in ms (default 500). */
  minDelayMs?: number;
  /** Largest reconnect delay, in ms (default 20000). */
  maxDelayMs?: number;
  /** How long a WebSocket may take to open before it counts as failed, in ms (default 10000). */
  openTimeoutMs?: number;
  /**
   * WebSocket transport: URLs per socket (default 100, the server's default
   * `max_subs_per_conn`). More URLs open more sockets, each with its own
   * reconnect backoff; a socket left with no URLs closes (one always stays).
   * Set it to the server's value if that is lower, else the server answers
   * `too_many_subscriptions` (an `error` event; not retried).
   */
  maxUrlsPerConnection?: number;
  /**
   * SSE transport: URLs per EventSource (default 50, the server's
   * `max_urls_per_request`, also its maximum). Long URL sets use fewer.
   */
  maxUrlsPerStream?: number;
  /**
   * Write token (the server's `write_token`): sent as `Authorization: Bearer`
   * on likes and as `?token=` when opening a WebSocket (browsers cannot set
   * headers there), so WebSocket likes work too. Not sent on SSE (read-only).
   */
  token?: string;
  /**
   * How often like()/unlike()/view() resend a request that got no answer (network
   * failure), with the same `Idempotency-Key`, so it is counted once
   * (default 3; 0 = never).
   */
  likeRetries?: number;
  /**
   * WebSocket implementation. Default: globalThis.WebSocket; in Node 20
   * (which has none) the `ws` package when it is installed, else pass it.
   */
  WebSocket?: { new (url: string, protocols?: string | string[]): any };
  /** EventSource implementation (default: globalThis.EventSource; Node has none: pass one for SSE). */
  EventSource?: { new (url: string): any };
  /** fetch implementation (default: globalThis.fetch). */
  fetch?: typeof fetch;
}

export interface CountInfo {
  url: string;
  /** Change carried by this message; for a snapshot, the change since the last known count (0 if none). */
  delta: number;
  /** Server tick sequence number of the last update seen. */
  seq: number;
  /** Server wall clock (update) or local clock (snapshot), Unix ms. */
  ts: number;
  /** True for the count sent right after (re)subscribing. */
  snapshot: boolean;
  /** The URL's views (impressions, only grow) now; 0 from a server without views. */
  views: number;
  /**
   * Live subscriptions (WebSocket and SSE, cluster-wide) to the URL now, as
   * the server last published it (at most `watching_interval_ms` old, default
   * 1 s); this client's own subscription included once the server counted it.
   */
  watching: number;
  /** Change of `views` since the previous callback for this URL (0 on the first). */
  viewsDelta: number;
}

export type CountCallback = (count: number, info: CountInfo) => void;

export interface StateInfo {
  /** Transport of the current or last attempt. */
  transport: 'ws' | 'sse' | null;
  /** When disconnected with a retry planned: ms until the next attempt, else 0. */
  retryInMs: number;
  /** Unix ms of the next attempt, else 0. */
  retryAt: number;
  /** Failed attempts in a row. */
  attempt: number;
}

/** Error thrown by like()/unlike(): `code` is the server's `error` field ('network' when unreachable). */
export interface LivecountError extends Error {
  code: string;
  /** HTTP status, 0 when the server could not be reached. */
  status: number;
}

export interface LikeResult {
  url: string;
  count: number;
}

export interface ViewResult {
  url: string;
  /** The URL's views after this one. */
  views: number;
}

export interface UrlStats {
  count: number;
  views: number;
  watching: number;
}

export interface Client {
  /**
   * Watch a URL's count, views and watching figures: `cb(count, info)`, with
   * `info.views` and `info.watching`. The callback fires on the snapshot and
   * on every update (an update may change only views or watching: `delta` 0).
   * Several subscribers to one URL share one server subscription.
   * Throws TypeError for an empty, over-long (> 2048 bytes) or control-character URL.
   * @returns a function that ends this subscription.
   */
  subscribe(url: string, cb: CountCallback): () => void;
  /** POST /v1/likes: adds n (default 1) likes; rejects with a LivecountError. */
  like(url: string, n?: number): Promise<LikeResult>;
  /** DELETE /v1/likes: adds n (default 1) unlikes; rejects with a LivecountError. */
  unlike(url: string, n?: number): Promise<LikeResult>;
  /**
   * POST /v1/views: records n (default 1, at most 1000000) views, with an
   * Idempotency-Key reused on its retries like like(); rejects with a
   * LivecountError (`bad_n` for n < 1).
   */
  view(url: string, n?: number): Promise<ViewResult>;
  /**
   * Connection state changes; returns a function that removes the listener.
   * Over several WebSockets the state is the worst one's: 'disconnected'
   * while any waits to reconnect, 'connecting' while any opens.
   */
  on(event: 'state', fn: (state: ConnectionState, info: StateInfo) => void): () => void;
  /**
   * Transport errors and server error frames (`code` set, e.g.
   * 'too_many_subscriptions' or 'rate_limited'); the connection stays up.
   */
  on(event: 'error', fn: (err: Error & { code?: string }) => void): () => void;
  /** Connect now, even with nothing subscribed; when waiting to reconnect, retry (every socket) at once. */
  connect(): void;
  /** Close the connection for good. */
  close(): void;
  /** Last known count of a subscribed URL. */
  count(url: string): number | undefined;
  /** Last known count, views and watching of a subscribed URL. */
  stats(url: string): UrlStats | undefined;
  readonly state: ConnectionState;
  readonly transport: 'ws' | 'sse' | null;
  /** Unix ms of the next reconnect attempt, 0 when none is planned. */
  readonly retryAt: number;
  /** ms until the next reconnect attempt, 0 when none is planned. */
  readonly retryInMs: number;
}

export function createClient(baseUrl?: string, opts?: ClientOptions): Client;
