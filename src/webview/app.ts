/**
 * The webview application: one typed RpcEndpoint over postMessage, the state handshake, and
 * rendering of complete snapshots.
 *
 * Handshake: on start the app requests `webview/state/get` and renders the answer; afterwards
 * every `webview/state/set` notification replaces the view. A notification that arrives while
 * the request is pending is newer than (or as new as) the state the host is about to answer
 * with, so the answer is then ignored. UI selections (selected head, token-view direction,
 * value labels) persist through vscode.setState and survive hide/show and new snapshots.
 */
import type { WireMessage } from '../protocol/ipc.js';
import { type Channel, RpcEndpoint } from '../protocol/rpc.js';
import { type PanelState, type RunIdParams, WebviewNotifications, WebviewRequests } from '../protocol/webview.js';
import { readTheme } from './colors.js';
import type { HostActions, UiState, UiStore, ViewContext } from './context.js';
import { Disposables, setChildren } from './dom.js';
import { renderState, updateState } from './views/index.js';
import { renderError } from './views/status.js';

/** The object acquireVsCodeApi() returns (only what MechLens uses). */
export interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): unknown;
}

/** What MechLens keeps in vscode.setState. */
export interface PersistedState {
  v: 1;
  ui: UiState;
  /** The saved run shown: what the extension's serializer reopens after a window reload. */
  runId?: string | null;
  locked?: boolean;
}

function readPersisted(api: VsCodeApi): PersistedState {
  const s = api.getState();
  if (typeof s === 'object' && s !== null && (s as { v?: unknown }).v === 1 && typeof (s as { ui?: unknown }).ui === 'object' && (s as { ui?: unknown }).ui !== null) return s as PersistedState;
  return { v: 1, ui: {} };
}

/** A Channel over the webview's postMessage / window 'message' events. */
export function webviewChannel(api: VsCodeApi, win: Window): Channel {
  return {
    post: (m: WireMessage) => api.postMessage(m),
    onMessage: (fn) => {
      const l = (e: MessageEvent) => fn(e.data);
      win.addEventListener('message', l);
      return () => win.removeEventListener('message', l);
    },
  };
}

export interface AppOptions {
  vscode: VsCodeApi;
  /** The element views render into (the host page's <div id="app">). */
  root: HTMLElement;
}

export class App {
  readonly rpc: RpcEndpoint;
  /** The state on screen (null until the first one arrives). */
  state: PanelState | null = null;
  /** Settles once the initial handshake is done (rendered, superseded or failed). */
  readonly ready: Promise<void>;
  private view = new Disposables();
  private readonly persisted: PersistedState;
  private readonly doc: Document;
  private readonly win: Window;
  private readonly host: HostActions;
  private readonly ui: UiStore;
  private readonly cleanup = new Disposables();

  constructor(private readonly opts: AppOptions) {
    this.doc = opts.root.ownerDocument;
    const win = this.doc.defaultView;
    if (!win) throw new Error('MechLens webview: the root element is not in a window');
    this.win = win;
    this.persisted = readPersisted(opts.vscode);
    this.rpc = new RpcEndpoint(webviewChannel(opts.vscode, win));
    this.host = {
      saveFile: (p) => this.rpc.request(WebviewRequests.saveFile, p),
      copyText: (text) => this.rpc.request(WebviewRequests.copyText, { text }),
      selectHead: (layer, head) => this.rpc.notify(WebviewNotifications.selectHead, { layer, head }),
      panelAction: (action, extra) => this.rpc.request(WebviewRequests.panelAction, { ...(extra ?? {}), action }),
    };
    this.ui = {
      get: (k) => this.persisted.ui[k],
      set: (k, v) => {
        this.persisted.ui[k] = v;
        opts.vscode.setState(this.persisted);
      },
    };

    let pushed = false;
    const keepRunId = (p: RunIdParams) => {
      this.persisted.runId = typeof p.runId === 'string' ? p.runId : null;
      this.persisted.locked = p.locked === true;
      opts.vscode.setState(this.persisted);
    };
    this.cleanup.add(this.rpc.onNotification(WebviewNotifications.setRunId, keepRunId));
    // Panels without the request (the Predictions view, older hosts) answer with an error: nothing to keep.
    void this.rpc.request(WebviewRequests.getRunId, {}).then(keepRunId, () => undefined);
    this.cleanup.add(
      this.rpc.onNotification(WebviewNotifications.setState, (s) => {
        pushed = true;
        this.render(s);
      }),
    );
    this.watchTheme();
    this.render({ kind: 'loading', title: 'MechLens', message: 'Waiting for the extension…' });
    this.ready = this.rpc.request(WebviewRequests.getState, {}).then(
      (s) => {
        if (!pushed) this.render(s);
      },
      (e: unknown) => {
        if (!pushed) this.render({ kind: 'error', title: 'Could not get the panel state', message: e instanceof Error ? e.message : String(e) });
      },
    );
  }

  /** Replaces the view with `st` (a complete snapshot). Keeps the scroll position when the kind is unchanged. */
  render(st: PanelState): void {
    const sameKind = this.state?.kind === st.kind;
    // A view that updates in place (training snapshots, several a second) keeps its DOM.
    const current = this.opts.root.firstElementChild as HTMLElement | null;
    if (sameKind && current) {
      try {
        if (updateState(current, st)) {
          this.state = st;
          return;
        }
      } catch {
        // An inconsistent snapshot: render it anew below, which shows the error.
      }
    }
    const scrollY = this.win.scrollY;
    this.view.dispose();
    this.view = new Disposables();
    this.state = st;
    const ctx: ViewContext = { doc: this.doc, host: this.host, ui: this.ui, theme: readTheme(this.doc), disposables: this.view };
    let el: HTMLElement;
    try {
      el = renderState(st, ctx);
    } catch (e) {
      this.view.dispose();
      el = renderError({ kind: 'error', title: 'Could not show this result', message: e instanceof Error ? e.message : String(e) }, ctx);
    }
    setChildren(this.opts.root, el);
    this.opts.root.dataset.kind = st.kind;

    if (sameKind && scrollY > 0) {
      try {
        this.win.scrollTo(0, scrollY);
      } catch {
        /* jsdom has no scrolling */
      }
    }
  }

  /** VS Code swaps body classes (vscode-light/-dark/-high-contrast) on theme change: canvases re-read colours. */
  private watchTheme(): void {
    const MO = (this.win as Window & typeof globalThis).MutationObserver;
    const body = this.doc.body;
    if (!MO || !body) return;
    let last = body.className;
    const mo = new MO(() => {
      if (body.className === last) return;
      last = body.className;
      if (this.state) this.render(this.state);
    });
    mo.observe(body, { attributes: true, attributeFilter: ['class'] });
    this.cleanup.add(() => mo.disconnect());
  }

  dispose(): void {
    this.view.dispose();
    this.cleanup.dispose();
    this.rpc.dispose('the webview was closed');
  }
}

export function startApp(opts: AppOptions): App {
  return new App(opts);
}
