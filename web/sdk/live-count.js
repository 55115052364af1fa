// <live-count url="https://example.com/post/1" [button] [server="http://host:8080"]>
//
// One script tag on any page:
//   <script type="module" src="http://livecount-host/sdk/live-count.js"></script>
//
// Shows the live count of `url`; with `button`, a like button too. The server
// is the one this script was loaded from (the page's origin when livecount
// serves the page); `server` overrides it. Elements talking to one server
// share one client, hence one connection. The element fires a `count` event
// ({detail: {count, delta}}) on each change and sets the `stale` attribute
// while the connection is down. Style it from outside with ::part(count) and
// ::part(button).

import { createClient } from './livecount.js';

const defaultServer = new URL(import.meta.url).origin;
const clients = new Map();
const fmt = new Intl.NumberFormat();

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
  static observedAttributes = ['url', 'server', 'button'];

  #count = null;
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

  connectedCallback() { this.#start(); }
  disconnectedCallback() { this.#stop(); }

  attributeChangedCallback(name) {
    if (name === 'button') this.#els.button.hidden = !this.hasAttribute('button');
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

  #show(count, delta = 0) {
    if (count === this.#count) return;
    this.#count = count;
    this.#els.count.textContent = fmt.format(count);
    this.dispatchEvent(new CustomEvent('count', { detail: { count, delta } }));
  }

  #start() {
    this.#stop();
    const url = this.getAttribute('url');
    if (!url) return;
    const client = this.client;
    const stale = (s) => this.toggleAttribute('stale', s !== 'connected');
    try {
      this.#off.push(client.subscribe(url, (c, info) => this.#show(c, info.delta)));
    } catch (e) {
      this.#els.error.textContent = 'bad url';
      this.#els.error.hidden = false;
      return;
    }
    this.#off.push(client.on('state', stale));
    stale(client.state);
  }

  #stop() {
    for (const off of this.#off.splice(0)) off();
  }
}

if (!customElements.get('live-count')) customElements.define('live-count', LiveCount);

export { LiveCount };
