/**
 * Messages between the extension host and MechLens webviews (panels and the side view).
 * Webviews pull a complete state snapshot when ready (`webview/state/get`) and are pushed
 * complete snapshots afterwards (`webview/state/set`), never deltas. All payloads are plain
 * JSON-compatible data with documented shapes (axis names in TransformerLens order).
 */
import { notificationType, requestType } from './ipc.js';
import type { TestPromptResult } from './engine.js';

/** A dense matrix for heatmaps: values[row][col]; labels per axis. */
export interface HeatmapData {
  title: string;
  /** e.g. 'layer' / 'head' / 'position' */
  rowAxis: string;
  colAxis: string;
  rowLabels: string[];
  colLabels: string[];
  values: number[][];
  /** What one cell's value means, shown in the hover and colour bar (e.g. 'normalised logit diff'). */
  valueLabel: string;
  /** Symmetric colour range around 0; default max |value|. */
  zmax?: number;
}

export interface InspectState {
  kind: 'inspect';
  model: string;
  prompt: string;
  result: TestPromptResult;
  /** Optional wrong answer for a logit difference. */
  wrong?: { token: number; str: string; logit: number };
}

export interface AttentionState {
  kind: 'attention';
  model: string;
  /** Prompts shown; patterns are the mean over them when there are several (same length). */
  prompts: string[];
  /** Token strings of the (first) prompt, used for both axes. */
  strTokens: string[];
  nLayers: number;
  nHeads: number;
  /** patterns[layer][head] is a [query_pos][key_pos] matrix (rows sum to 1). */
  patterns: number[][][][];
  /** Whether `patterns` is a mean over several prompts. */
  meanOver: number;
}

export interface AttributionState {
  kind: 'attribution';
  model: string;
  prompt: string;
  strTokens: string[];
  /** The direction attributed to: the answer's logit, or answer minus wrong. */
  target: { answer: string; wrong?: string };
  /** Per residual component (embed, pos_embed, 0_attn_out, 0_mlp_out, ...). */
  layerLabels: string[];
  layerDla: number[];
  /** [layer][head]. */
  headDla: number[][];
  /** Logit lens over accumulated residual streams (labels 0_pre, 0_mid, ..., final_post). */
  logitLens: { labels: string[]; values: number[] };
  /** The total (the answer's logit or logit difference) for reference. */
  total: number;
}

export interface HeatmapState {
  kind: 'heatmap';
  model: string;
  heatmaps: HeatmapData[];
  /** Free text shown above (what was run, metric definition). */
  description: string;
}

export interface TopKViewState {
  kind: 'topk';
  model: string | null;
  prompt: string | null;
  result: TestPromptResult | null;
  /** Why nothing is shown (no model, empty line, error). */
  message?: string;
}

export interface ErrorState {
  kind: 'error';
  title: string;
  message: string;
}

export interface LoadingState {
  kind: 'loading';
  title: string;
  message: string;
}

export type PanelState = InspectState | AttentionState | AttributionState | HeatmapState | TopKViewState | ErrorState | LoadingState;

export interface SaveFileParams {
  /** Suggested file name, e.g. 'attention-L0H3.png'. */
  suggestedName: string;
  /** 'png' (base64 data) or 'svg' / 'csv' / 'json' (text). */
  format: 'png' | 'svg' | 'csv' | 'json';
  /** base64 for png, text otherwise. */
  content: string;
}

export const WebviewRequests = {
  /** Webview -> host, on load: the current complete state. */
  getState: requestType<Record<string, never>, PanelState>('webview/state/get'),
  /** Webview -> host: save an exported figure or data through a save dialog. Resolves to the path or null if cancelled. */
  saveFile: requestType<SaveFileParams, string | null>('webview/file/save'),
  /** Webview -> host: copy text to the clipboard. */
  copyText: requestType<{ text: string }, void>('webview/clipboard/copy'),
} as const;

export const WebviewNotifications = {
  /** Host -> webview: replace the whole state. */
  setState: notificationType<PanelState>('webview/state/set'),
  /** Webview -> host: the user picked a head (e.g. to open it large or link views). */
  selectHead: notificationType<{ layer: number; head: number }>('webview/head/select'),
} as const;
