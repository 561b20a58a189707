/**
 * What every view receives besides its panel state: the document to build in, the host's
 * actions (save/copy/select go through the typed RPC in app.ts), persisted UI selections, the
 * theme of the moment and a place to register cleanups. Views never touch globals, so tests
 * can pass a jsdom Document and fakes.
 */
import type { PanelActionParams, SaveFileParams } from '../protocol/webview.js';
import type { ChartTheme } from './colors.js';
import type { Disposables } from './dom.js';

export interface HostActions {
  /** `webview/file/save`: resolves to the saved path, or null when the user cancelled. */
  saveFile(p: SaveFileParams): Promise<string | null>;
  /** `webview/clipboard/copy`. */
  copyText(text: string): Promise<void>;
  /** `webview/head/select` notification (e.g. clicking a head in the DLA map). */
  selectHead(layer: number, head: number): void;
  /** `webview/panel/action`: a panel's button (training Stop / Resume / Analyse). Absent where the host has none. */
  panelAction?(action: PanelActionParams['action'], extra?: Omit<PanelActionParams, 'action'>): Promise<void>;
}

/**
 * UI selections persisted with vscode.setState so they survive the panel being hidden and
 * re-shown, and new snapshots of the same kind (e.g. re-running attention keeps the head).
 */
export interface UiState {
  attention?: {
    /** The head shown large. */
    layer: number;
    head: number;
    /** Token view direction: false = colour by how much the hovered token attends to others (query -> keys); true = how much others attend to it. */
    reverse: boolean;
    /** Token pinned by click in the token view, or null. */
    pinned: number | null;
  };
  /** Per figure (keyed by title): show values in cells. */
  annotate?: Record<string, boolean>;
  /** Per exact/estimate pair (keyed by the exact figure's title): one colour range for both. */
  sharedScale?: Record<string, boolean>;
  /** Training panel: loss on a log scale; the per-position loss shown. */
  training?: { logScale: boolean; byPosition: boolean };
}

export interface UiStore {
  get<K extends keyof UiState>(key: K): UiState[K];
  set<K extends keyof UiState>(key: K, value: UiState[K]): void;
}

export interface ViewContext {
  doc: Document;
  host: HostActions;
  ui: UiStore;
  theme: ChartTheme;
  /** Cleanups run before the next render replaces this view. */
  disposables: Disposables;
}

/** A UiStore over a plain object (tests, preview). */
export function memoryUiStore(initial: UiState = {}): UiStore & { state: UiState } {
  const state: UiState = { ...initial };
  return {
    state,
    get: (k) => state[k],
    set: (k, v) => {
      state[k] = v;
    },
  };
}
