// The query parameters every page script shares, checked in one place.
//
// ?server= names another livecount for the page to talk to. It ends up in
// links (the JSON link, the row links), in fetch and WebSocket addresses and
// in the embed snippet, so it is accepted only as an absolute http: or
// https: URL: anything else (javascript:, data:, a relative path) would turn
// a link on this origin into script, and is ignored with a warning.

/**
 * The server base URL from `params` (a URLSearchParams): the ?server= value
 * as scheme://host[:port][/path] (no query, fragment or credentials, no
 * trailing slash) when it is an http: or https: URL, else `fallback` (the
 * page's own origin). Never returns anything but an http(s) URL.
 */
export function serverParam(params, fallback = globalThis.location?.origin) {
  const s = params.get('server');
  if (!s) return fallback;
  let u;
  try {
    u = new URL(s);
  } catch {
    u = null;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || !u.host) {
    console.warn(`livecount: ?server= ignored, not an http: or https: URL: ${s}`);
    return fallback;
  }
  return u.origin + u.pathname.replace(/\/+$/, '');
}

/** The query parameters a page passes on to the pages it links to (?server= only when valid). */
export function carriedParams(params) {
  const out = new URLSearchParams();
  if (params?.get('server') && serverParam(params, null)) out.set('server', serverParam(params, null));
  if (params?.get('transport')) out.set('transport', params.get('transport'));
  return out;
}
