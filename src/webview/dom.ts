/**
 * Tiny DOM builders. Everything is created with createElement/textContent, never innerHTML, so
 * token strings (which can contain '<', quotes, control characters) can never become markup,
 * and the CSP never sees inline <style>/<script>. Every builder takes the Document explicitly
 * so components run unchanged in the webview and in jsdom tests.
 */

export type Child = Node | string | number | null | undefined | false;
export type Attrs = Record<string, string | number | boolean | null | undefined>;

function setAttrs(el: Element, attrs: Attrs | undefined): void {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    el.setAttribute(k === 'className' ? 'class' : k, v === true ? '' : String(v));
  }
}

function append(doc: Document, el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? doc.createTextNode(String(c)) : c);
  }
}

/** h(doc, 'div', { class: 'x' }, 'text', child) */
export function h<K extends keyof HTMLElementTagNameMap>(doc: Document, tag: K, attrs?: Attrs, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = doc.createElement(tag);
  setAttrs(el, attrs);
  append(doc, el, children);
  return el;
}

export const SVG_NS = 'http://www.w3.org/2000/svg';

/** s(doc, 'rect', { x: 0, ... }) for inline SVG charts. */
export function s<K extends keyof SVGElementTagNameMap>(doc: Document, tag: K, attrs?: Attrs, ...children: Child[]): SVGElementTagNameMap[K] {
  const el = doc.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(doc, el, children);
  return el;
}

/** Replaces all children. */
export function setChildren(el: Element, ...children: Child[]): void {
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el.ownerDocument, el, children);
}

/** Collects cleanup functions (observers, listeners on window) of one rendered view. */
export class Disposables {
  private fns: (() => void)[] = [];
  add(fn: () => void): void {
    this.fns.push(fn);
  }
  dispose(): void {
    const fns = this.fns;
    this.fns = [];
    for (const f of fns.reverse()) {
      try {
        f();
      } catch {
        /* cleanup must not throw into the next render */
      }
    }
  }
}

/**
 * Calls `fn(width)` with the element's content width now (or `fallback` when not laid out, as
 * in jsdom) and on every resize afterwards. Returns the unsubscribe function.
 */
export function observeWidth(el: HTMLElement, fallback: number, fn: (width: number) => void): () => void {
  const win = el.ownerDocument.defaultView;
  const RO = (win as (Window & typeof globalThis) | null)?.ResizeObserver;
  let last = -1;
  const fire = (w: number) => {
    const width = Math.floor(w > 0 ? w : fallback);
    if (width === last) return;
    last = width;
    fn(width);
  };
  if (!RO) {
    fire(el.clientWidth);
    return () => undefined;
  }
  // Not attached yet (views are built before they replace the old one): the observer's first
  // callback, after layout, gives the real width; drawing now would only be thrown away.
  if (el.isConnected && el.clientWidth > 0) fire(el.clientWidth);
  const ro = new RO((entries) => {
    const e = entries[0];
    if (e) fire(e.contentRect.width);
  });
  ro.observe(el);
  return () => ro.disconnect();
}

/** A floating tooltip inside a `position: relative` container. */
export class Tooltip {
  readonly el: HTMLDivElement;
  constructor(doc: Document, container: HTMLElement) {
    this.el = h(doc, 'div', { class: 'ml-tooltip', role: 'tooltip' });
    this.el.hidden = true;
    container.appendChild(this.el);
  }
  /** Shows lines of [label, value] (or plain strings) near (x, y) in container coordinates. */
  show(x: number, y: number, lines: (string | [string, string])[]): void {
    const doc = this.el.ownerDocument;
    setChildren(
      this.el,
      ...lines.map((l) =>
        typeof l === 'string' ? h(doc, 'div', { class: 'ml-tooltip-head' }, l) : h(doc, 'div', undefined, h(doc, 'span', { class: 'ml-tooltip-key' }, l[0]), ' ', h(doc, 'span', { class: 'ml-tooltip-val' }, l[1])),
      ),
    );
    this.el.hidden = false;
    // Keep inside the container: flip to the left/top of the cursor near the right/bottom edge.
    const parent = this.el.parentElement;
    const pw = parent?.clientWidth ?? 0;
    const tw = this.el.offsetWidth;
    const th = this.el.offsetHeight;
    const left = pw > 0 && x + 14 + tw > pw ? Math.max(0, x - 14 - tw) : x + 14;
    const top = y - 10 - th < 0 ? y + 16 : y - 10 - th;
    this.el.style.left = `${left}px`;
    this.el.style.top = `${top}px`;
  }
  hide(): void {
    this.el.hidden = true;
  }
}
