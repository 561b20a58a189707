/**
 * Messages between the extension host and MechLens webviews (panels and the side view).
 * Webviews pull a complete state snapshot when ready (`webview/state/get`) and are pushed
 * complete snapshots afterwards (`webview/state/set`), never deltas. All payloads are plain
 * JSON-compatible data with documented shapes (axis names in TransformerLens order).
 */
import { notificationType, requestType } from './ipc.js';
import type { SaeDashboardResult, TestPromptResult, TopKEntry } from './engine.js';

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
  /**
   * Sequential scales only: the value drawn as the neutral colour (default 0), e.g. the corrupted
   * run's probability in causal tracing, so that colour shows what restoring recovers.
   */
  zmin?: number;
}

export interface InspectState {
  kind: 'inspect';
  model: string;
  prompt: string;
  result: TestPromptResult;
  /** Optional wrong answer for a logit difference. */
  wrong?: { token: number; str: string; logit: number };
  /** The SAE of the setting mechlens.sae read on this prompt (the features tab). */
  features?: InspectFeatures;
  /** Why the SAE could not be read (the rest of Inspect still shows). */
  featuresError?: string;
}

/** An SAE's features on one prompt: the top ones per token and the activations of each. */
export interface InspectFeatures {
  /** Where the SAE came from (folder or hub release path), its architecture and the hook it reads. */
  sae: string;
  architecture: string;
  hook: string;
  d_sae: number;
  strTokens: string[];
  /** [pos] -> the most active features, largest first (active ones only). */
  top: { feature: number; act: number }[][];
  /** feature -> its activation (hook_sae_acts_post) at every position, for the features in `top`. */
  acts: Record<string, number[]>;
  /** Mean active features per token, and the fraction of variance the reconstruction explains. */
  l0: number;
  explainedVariance: number;
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
  /** b_U[answer] (- b_U[wrong]): the total's part no component writes (older runs: absent). */
  unembedBias?: number;
  /** An un-folded final norm's weight-and-bias part (processing "none"); null or absent once folded. */
  lnFinalTerm?: number | null;
  /** With an SAE set (mechlens.sae) and a wrong answer: each active feature's direct logit attribution. */
  featureDla?: FeatureDlaView;
  /** Why the SAE's feature attribution could not be computed (the rest still shows). */
  featureDlaError?: string;
}

/** An SAE's features' direct contributions to the logit difference (at the last position). */
export interface FeatureDlaView {
  sae: string;
  hook: string;
  /** Active features by |contribution|, with their contributions. */
  features: number[];
  values: number[];
  /** b_dec's contribution, the error term's, and the sum of all (= the hook's own DLA). */
  bias: number;
  error: number;
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

/** One number of an experiment's `expect` block, reported as met or not. */
export interface ExperimentCheck {
  what: string;
  expected: number;
  /** null when the result has no such number (e.g. a cell outside the sweep). */
  actual: number | null;
  tolerance: number;
  ok: boolean;
}

/**
 * A piece of an experiment result, drawn with the shared components. Numbers are raw (the view
 * formats them); NaN, or null after a JSON round trip through run.json, marks a missing value.
 */
export type ExperimentBlock =
  /** A matrix: patching sweeps (layer × position `tok_i`, layer × head), DLA per head, attention, scores, circuits. */
  | { type: 'heatmap'; data: HeatmapData; scale?: 'diverging' | 'sequential'; square?: boolean; valueFormat?: 'number' | 'percent' }
  /** An exact sweep beside its attribution-patching estimate (same layout and colour range). */
  | { type: 'compare'; exact: HeatmapData; estimate: HeatmapData; correlation: number | null; maxAbsDiff: number | null }
  /** Signed bars, one per label (DLA per component, loss change per ablated hook). */
  | { type: 'bars'; title: string; labels: string[]; values: (number | null)[]; valueLabel: string }
  /** A line over categories (logit lens, loss by position). */
  | { type: 'line'; title: string; labels: string[]; values: (number | null)[]; xAxis: string; yAxis: string; reference?: { value: number; label: string } }
  /** test_prompt: the prompt's tokens, the top-k next tokens and the answer's rank. */
  | { type: 'topk'; title: string; strTokens: string[]; entries: TopKEntry[]; answer?: { token: number; str: string; rank: number; logit: number; prob: number } }
  | { type: 'table'; title: string; columns: string[]; rows: (string | number | null)[][] }
  /** Tokens coloured by a value each (neuron activations, neuroscope style), diverging around 0. */
  | { type: 'tokens'; title: string; tokens: string[]; values: (number | null)[]; valueLabel: string }
  | { type: 'stats'; items: { label: string; value: number | string | null; format?: 'sig' | 'signed' | 'percent' | 'text'; title?: string }[] }
  /** A matrix too large to put in the panel state: where the run folder holds it, and a summary. */
  | { type: 'ref'; title: string; rowAxis: string; colAxis: string; valueLabel: string; rows: number; cols: number; file: string; path: string; summary: { min: number | null; max: number | null; top: { row: string; col: string; value: number }[] } };

/** One analysis (of one prompt group) of an experiment run. */
export interface ExperimentSection {
  /** Index of the analysis in the file's "analyses". */
  index: number;
  kind: string;
  group: string | null;
  title: string;
  /** Cancelled part-way: missing cells are NaN. */
  partial?: boolean;
  elapsedMs: number;
  checks?: ExperimentCheck[];
  blocks: ExperimentBlock[];
  /** Why a part is missing or approximate (e.g. attribution patching not available for this sweep). */
  notes?: string[];
}

/** The results panel of an experiment run (also what run.json of an editor run holds). */
export interface ExperimentState {
  kind: 'experiment';
  title: string;
  model: string;
  description: string;
  /** What the patching numbers mean, e.g. 'logit_diff, normalised: (patched − corrupted) / (clean − corrupted)'. */
  metric: string;
  /** The experiment file (absolute path), when it came from one. */
  file?: string;
  run?: { id: string; dir: string; createdAt: string; elapsedMs: number; cancelled: boolean };
  sections: ExperimentSection[];
}

/**
 * A training run (a "kind": "train" experiment file): its status, the loss curve so far and the
 * numbers of the latest step. Pushed as complete snapshots a few times a second while training.
 */
export interface TrainingState {
  kind: 'training';
  title: string;
  /** The experiment file (absolute path). */
  file: string;
  /** The architecture in a few words, e.g. '2L × 1H, d_model 64, d_mlp 256, LN, relu, W_pos zeroed and frozen'. */
  model: string;
  status: 'starting' | 'running' | 'stopping' | 'stopped' | 'completed' | 'failed';
  /** Why it failed (NaN loss, an unwritable checkpoint folder, …) or a note (resumed with other settings). */
  message?: string;
  /** Completed steps, and the run's total. */
  step: number;
  maxSteps: number;
  /** The step this session started from (0, or the checkpoint's when resumed). */
  startStep: number;
  /** Loss per step, at most ~2000 points (means of equal runs of steps when longer); step[i] is the last step of point i. */
  curve: { step: number[]; loss: number[] };
  /** The latest step's numbers (null before the first step of this session). */
  last: { loss: number; lr: number; gradNorm: number; stepMs: number } | null;
  tokensPerSec: number | null;
  stepsPerSec: number | null;
  etaSec: number | null;
  /** Seconds of training in this session. */
  elapsedSec: number;
  /** Mean loss at each position of the latest step's batch (0 where nothing is scored). */
  posLoss: { step: number; values: number[] } | null;
  tokensPerStep: number;
  params: number;
  /** The checkpoint folder (step-N folders and `latest`) and the newest checkpoint in it. */
  checkpointDir: string;
  checkpoint: string | null;
  /** The panel's buttons (false in a saved run re-opened from the Runs view). */
  actions: { stop: boolean; resume: boolean; analyse: boolean };
  /**
   * SAE training ("kind": "train_sae"): the curve is the SAE's loss per snapshot, and these are
   * the snapshots' metrics (each the mean over the steps since the previous snapshot), the saved
   * folder (checkpoint) and, once saved, its measurement on the held-out tokens.
   */
  sae?: {
    architecture: string;
    hook: string;
    d_in: number | null;
    d_sae: number | null;
    k: number | null;
    corpus: string | null;
    /** Activations computed so far, before training starts: [done, total] corpus rows. */
    activations: [number, number] | null;
    steps: number[];
    mse: number[];
    l0: number[];
    explainedVariance: number[];
    deadFeatures: number[];
    evaluation: { tokens: number; explainedVariance: number; l0: number; mse: number; neverFired: number } | null;
  };
}

/** One SAE feature's dashboard over a corpus: top-activating contexts, histogram, logit effect. */
export interface FeatureDashboardState {
  kind: 'feature';
  model: string;
  /** Where the SAE came from, its architecture and the hook it reads. */
  sae: string;
  architecture: string;
  hook: string;
  /** The corpus file read. */
  corpus: string;
  result: SaeDashboardResult;
}

export type PanelState = InspectState | AttentionState | AttributionState | HeatmapState | ExperimentState | TrainingState | TopKViewState | FeatureDashboardState | ErrorState | LoadingState;

/** A button of a panel that asks the host to act (the training panel's Stop / Resume / Analyse). */
export interface PanelActionParams {
  action: 'training.stop' | 'training.resume' | 'training.analyse' | 'training.revealCheckpoint' | 'sae.dashboard';
  /** sae.dashboard: the feature. */
  feature?: number;
}

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
  /** Webview -> host: a panel button (panels that have none answer with an error). */
  panelAction: requestType<PanelActionParams, void>('webview/panel/action'),
  /** Webview -> host, on load: the saved run the panel shows (kept with setState for a window reload). */
  getRunId: requestType<Record<string, never>, RunIdParams>('webview/run/get'),
} as const;

/** The saved run a panel shows (null: none, e.g. still computing). */
export interface RunIdParams {
  runId: string | null;
  /** The panel is locked (kept across a window reload too). */
  locked?: boolean;
}

export const WebviewNotifications = {
  /** Host -> webview: replace the whole state. */
  setState: notificationType<PanelState>('webview/state/set'),
  /** Host -> webview: the panel now shows this saved run (or none). */
  setRunId: notificationType<RunIdParams>('webview/run/set'),
  /** Webview -> host: the user picked a head (e.g. to open it large or link views). */
  selectHead: notificationType<{ layer: number; head: number }>('webview/head/select'),
} as const;
