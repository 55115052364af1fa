// Showing long URLs in narrow places: shortened in the middle, so the host
// and the end of the path (the parts that tell URLs apart) stay readable.
//
// splitUrl() gives a head (host and the start of the path, which CSS cuts
// with an ellipsis at its end when space is short) and a tail (the end of the
// path, always shown). urlCell() builds that as a link whose title and
// accessible name are the full URL. No layout is read: CSS does the cutting
// (see .short in style.css), so it adapts to every width.

import { carriedParams } from './params.js';

const TAIL_MAX = 24;

/** {head, tail} for display; head + tail is the URL without an http(s):// prefix. */
export function splitUrl(url) {
  const bare = url.replace(/^https?:\/\//i, '');
  const slash = bare.indexOf('/');
  const rest = slash < 0 ? '' : bare.slice(slash);
  if (rest.length <= 1) return { head: bare, tail: '' };
  // The last path segment (with its query) when short enough, else the last characters.
  let cut = rest.replace(/\/$/, '').lastIndexOf('/');
  if (rest.length - cut > TAIL_MAX) {
    cut = rest.length - TAIL_MAX;
    const word = rest.slice(cut).search(/[-_.~+=&]/); // start the tail at a word when one starts soon
    if (word >= 0 && word < 8) cut += word;
  }
  return { head: bare.slice(0, slash + cut), tail: rest.slice(cut) };
}

/** Link to the URL page of `url` (keeps the dashboard's ?server=, when valid, and ?transport=). */
export function pageHref(url, params) {
  const q = new URLSearchParams({ url });
  for (const [k, v] of carriedParams(params)) q.set(k, v);
  return `u.html?${q}`;
}

/** Fill `el` (an <a> or any element) with the shortened `url`, full URL as title and accessible name. */
export function fillUrl(el, url) {
  const { head, tail } = splitUrl(url);
  const h = document.createElement('span');
  h.className = 'head';
  h.textContent = head;
  const parts = [h];
  if (tail) {
    const t = document.createElement('span');
    t.className = 'tail';
    t.textContent = tail;
    parts.push(t);
  }
  el.replaceChildren(...parts);
  el.classList.add('short');
  el.title = url;
  el.setAttribute('aria-label', url);
}

/** Escape text for an HTML attribute value in double quotes. */
export const attr = (s) => String(s).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
