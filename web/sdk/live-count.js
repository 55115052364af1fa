// <live-count url="https://example.com/post/1" [button] [show="count|views|watching"]
//             [record-view] [server="http://host:8080"]>
//
// One script tag on any page:
//   <script type="module" src="http://livecount-host/sdk/live-count.js"></script>
//
// Shows the live count of `url` (likes − unlikes); `show="views"` its views
// instead, `show="watching"` how many are watching it now. With `button`, a
// like button too. With `record-view`, the element records one view of `url`
// (POST /v1/views) when it is connected to the document: once per
// connection (and per URL it is given), not on the client's reconnects. The
// server is the one this script was loaded from (the page's origin when
// livecount serves the page); `server` overrides it. Elements talking to one
// server share one client, hence one connection. The element fires a `count`
// event ({detail: {count, delta, views, watching}}) when the count changes, a
// `stats` event ({detail: {count, views, watching}}) when any figure changes,
// and sets the `stale` attribute while the connection is down. Style it from
// outside with ::part(count) (the figure shown, whichever it is) and
// ::part(button).

import { createClient } from './livecount.js';

const defaultServer = new URL(import.meta.url).origin;
const clients = new Map();
const fmt = new Intl.NumberFormat();
// What `show` may choose, and how the figure is named to screen readers.
const SHOWS = { count: 'likes', views: 'views', watching: 'watching now' };

function clientFor(server) {
  let c = clients.get(server);
  if (!c) clients.set(server, (c = createClient(server)));
  return c;
}

const css = `
:host{display:inline-flex;align-items:center;gap:.35em;font:inherit;vertical-align:middle}
:host([stale]) [part=count]{opacity:.5}
button{font:inherit;cursor:pointer;border:1px solid #d0d4da;background:#fff;border-radius:999px;
 padding:.1em .6em;line-height:1.4;color:#c2185b}
button:hover{background:#fdeef4}
button:active{transform:scale(.95)}
button[disabled]{opacity:.6;cursor:default}
[part=count]{font-variant-numeric:tabular-nums;min-width:1ch}
[part=error]{color:#b00020;font-size:.8em}`;

// The element's style as a constructed stylesheet shared by every element,
// not a <style> element: a page whose Content-Security-Policy has no
// 'unsafe-inline' style-src (livecount's own pages) blocks the latter. A
// browser without constructable stylesheets gets the <style> element.
let sheet = null;
function styleShadow(root) {
  try {
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
    }
    root.adoptedStyleSheets = [sheet];
    return '';
  } catch {
    sheet = null;
    return `<style>${css}</style>`;
  }
}

class LiveCount extends HTMLElement {
  static observedAttributes = ['url', 'server', 'button', 'show'];

  #count = null;
  #views = null;
  #watching = null;
  #shown = null; // [what, value] on screen
  #viewed = null; // the URL a view was recorded for in this connection
  #off = [];
  #els;

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `${styleShadow(root)}<button part="button" type="button" aria-label="Like" hidden>♥</button>` +
      `<span part="count" aria-live="polite">–</span><span part="error" hidden></span>`;
    const [button, count, error] = root.querySelectorAll('button,span');
    this.#els = { button, count, error };
    button.addEventListener('click', () => this.like());
  }

  /** The last count received, or null before the first one. */
  get count() { return this.#count; }
  /** The last views figure received, or null before the first one. */
  get views() { return this.#views; }
  /** The last watching figure received, or null before the first one. */
  get watching() { return this.#watching; }
  /** What the element shows: 'count' (default), 'views' or 'watching'. */
  get show() {
    const s = this.getAttribute('show');
    return Object.hasOwn(SHOWS, s) ? s : 'count';
  }

  connectedCallback() { this.#start(); }

  disconnectedCallback() {
    this.#stop();
    this.#viewed = null; // connected again later: another view
  }

  attributeChangedCallback(name) {
    if (name === 'button') this.#els.button.hidden = !this.hasAttribute('button');
    else if (name === 'show') this.#render();
    else if (this.isConnected) this.#start();
  }

  get client() { return clientFor(this.getAttribute('server') || defaultServer); }

  /** Like this URL once (what the button does); resolves to the new count. */
  async like(n = 1) {
    const url = this.getAttribute('url');
    if (!url) return null;
    const { button, error } = this.#els;
    button.disabled = true;
    try {
      const client = this.client;
      const r = await client.like(url, n);
      error.hidden = true;
      // While live, the update (within a tick) is the authority: a reply can
      // be a tick behind likes taken by other server threads.
      if (client.state !== 'connected') this.#show(r.count);
      return r.count;
    } catch (e) {
      error.textContent = e.code === 'rate_limited' ? 'slow down' : 'failed';
      error.title = e.message;
      error.hidden = false;
      throw e;
    } finally {
      button.disabled = false;
    }
  }

  #show(count, delta = 0, info = null) {
    const views = info?.views ?? this.#views;
    const watching = info?.watching ?? this.#watching;
    const countChanged = count !== this.#count;
    const changed = countChanged || views !== this.#views || watching !== this.#watching;
    this.#count = count;
    this.#views = views;
    this.#watching = watching;
    this.#render();
    if (countChanged) this.dispatchEvent(new CustomEvent('count', { detail: { count, delta, views, watching } }));
    if (changed) this.dispatchEvent(new CustomEvent('stats', { detail: { count, views, watching } }));
  }

  // The chosen figure, written only when it changed (aria-live reads it).
  #render() {
    const what = this.show;
    const v = what === 'views' ? this.#views : what === 'watching' ? this.#watching : this.#count;
    if (this.#shown && this.#shown[0] === what && this.#shown[1] === v) return;
    this.#shown = [what, v];
    const el = this.#els.count;
    el.textContent = v === null ? '–' : fmt.format(v);
    el.title = SHOWS[what];
  }

  // record-view: one view per connection of the element and URL shown.
  #recordView(url, client) {
    if (!this.hasAttribute('record-view') || this.#viewed === url) return;
    this.#viewed = url;
    client.view(url).then((r) => {
      // Until the update brings it (a tick later); not if the URL changed meanwhile.
      if (this.getAttribute('url') === url && (this.#views === null || r.views > this.#views)) {
        this.#views = r.views;
        this.#render();
      }
    }, (e) => {
      this.#els.error.textContent = e.code === 'rate_limited' ? 'slow down' : 'view failed';
      this.#els.error.title = e.message;
      this.#els.error.hidden = false;
    });
  }

  #start() {
    this.#stop();
    const url = this.getAttribute('url');
    if (!url) return;
    const client = this.client;
    const stale = (s) => this.toggleAttribute('stale', s !== 'connected');
    try {
      this.#off.push(client.subscribe(url, (c, info) => this.#show(c, info.delta, info)));
    } catch (e) {
      this.#els.error.textContent = 'bad url';
      this.#els.error.hidden = false;
      return;
    }
    this.#recordView(url, client);
    this.#off.push(client.on('state', stale));
    stale(client.state);
  }

  #stop() {
    for (const off of this.#off.splice(0)) off();
  }
}

if (!customElements.get('live-count')) customElements.define('live-count', LiveCount);

export { LiveCount };
