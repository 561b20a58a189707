/**
 * Pure builders of the panel snapshots (src/protocol/webview.ts) and run records from engine
 * results. No `vscode` import: unit-tested in plain node (test/unit/extension).
 */
import type { AttributionResult, ModelInfo, TestPromptResult } from '../protocol/engine.js';
import type { AttentionState, AttributionState, ErrorState, InspectState, LoadingState, PanelState, TopKViewState } from '../protocol/webview.js';
import type { RunInputs, RunKind, RunRecord } from '../protocol/runs.js';

export type PanelKind = 'inspect' | 'attention' | 'attribution';

/** A tensor as runWithCache returns it (Float32Array data) or as JSON (number[]). */
export interface TensorPayloadLike {
  dims: readonly number[];
  data: ArrayLike<number>;
}

const KIND_TITLES: Record<PanelKind, string> = {
  inspect: 'Inspect',
  attention: 'Attention',
  attribution: 'Logit lens & DLA',
};

/** One line of at most `max` characters: whitespace runs collapsed, an ellipsis when cut. */
export function shortText(s: string, max = 48): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length <= max ? one : `${one.slice(0, max - 1).trimEnd()}…`;
}

/**
 * Stable panel titles, e.g. 'MechLens: Attention — When John and Mary went…'; tests find panels
 * by them. Several prompts: the first one and '(+N)'.
 */
export function panelTitle(kind: PanelKind, prompts: readonly string[]): string {
  const first = prompts[0] ?? '';
  const more = prompts.length > 1 ? ` (+${prompts.length - 1})` : '';
  return `MechLens: ${KIND_TITLES[kind]} — ${shortText(first)}${more}`;
}

export function loadingState(title: string, message: string): LoadingState {
  return { kind: 'loading', title, message };
}

export function errorState(title: string, message: string): ErrorState {
  return { kind: 'error', title, message };
}

export function inspectState(model: string, prompt: string, result: TestPromptResult, wrong?: { token: number; str: string; logit: number }): InspectState {
  const s: InspectState = { kind: 'inspect', model, prompt, result };
  if (wrong) s.wrong = { token: wrong.token, str: wrong.str, logit: wrong.logit };
  return s;
}

/**
 * Rounds to 6 significant digits: attention weights are shown, not recomputed, and run.json stays
 * small. Significant digits, not decimals: a sharp head's 1e-7 weights must not show as 0%.
 */
const round6 = (v: number): number => (v === 0 || !Number.isFinite(v) ? v : Number(v.toPrecision(6)));

/**
 * patterns[layer][head][query_pos][key_pos], the mean over the batch, from the cached
 * blocks.{l}.attn.hook_pattern tensors [batch, head_index, query_pos, key_pos].
 */
export function meanAttentionPatterns(cache: Readonly<Record<string, TensorPayloadLike>>, nLayers: number, nHeads: number): { patterns: number[][][][]; batch: number; pos: number } {
  const patterns: number[][][][] = [];
  let batch = -1;
  let pos = -1;
  for (let l = 0; l < nLayers; l++) {
    const name = `blocks.${l}.attn.hook_pattern`;
    const t = cache[name];
    if (!t) throw new Error(`the engine returned no ${name}`);
    const [B, H, Q, K] = t.dims as [number, number, number, number];
    if (t.dims.length !== 4 || H !== nHeads || Q !== K) throw new Error(`${name} is [${t.dims.join(', ')}], expected [batch, ${nHeads}, pos, pos]`);
    if (batch >= 0 && (B !== batch || Q !== pos)) throw new Error(`${name} is [${t.dims.join(', ')}], unlike the previous layers`);
    batch = B;
    pos = Q;
    const layer: number[][][] = [];
    for (let h = 0; h < H; h++) {
      const m: number[][] = [];
      for (let q = 0; q < Q; q++) {
        const row: number[] = [];
        for (let k = 0; k < K; k++) {
          let s = 0;
          for (let b = 0; b < B; b++) s += t.data[((b * H + h) * Q + q) * K + k]!;
          row.push(round6(s / B));
        }
        m.push(row);
      }
      layer.push(m);
    }
    patterns.push(layer);
  }
  return { patterns, batch: Math.max(batch, 0), pos: Math.max(pos, 0) };
}

export function attentionState(model: string, prompts: string[], strTokens: string[], cache: Readonly<Record<string, TensorPayloadLike>>, nLayers: number, nHeads: number): AttentionState {
  const { patterns, batch, pos } = meanAttentionPatterns(cache, nLayers, nHeads);
  if (pos !== strTokens.length) throw new Error(`the patterns cover ${pos} positions but the prompt has ${strTokens.length} tokens`);
  return { kind: 'attention', model, prompts, strTokens, nLayers, nHeads, patterns, meanOver: batch };
}

export function attributionState(model: string, prompt: string, r: AttributionResult): AttributionState {
  const target: AttributionState['target'] = { answer: r.answer.str };
  if (r.wrong) target.wrong = r.wrong.str;
  return {
    kind: 'attribution',
    model,
    prompt,
    strTokens: r.strTokens,
    target,
    layerLabels: r.layerLabels,
    layerDla: r.layerDla,
    headDla: r.headDla,
    logitLens: r.logitLens,
    total: r.total,
    unembedBias: r.unembedBias,
    lnFinalTerm: r.lnFinalTerm,
  };
}

export function topKState(model: string | null, prompt: string | null, result: TestPromptResult | null, message?: string): TopKViewState {
  const s: TopKViewState = { kind: 'topk', model, prompt, result };
  if (message !== undefined) s.message = message;
  return s;
}

/**
 * Groups prompts by token length for a mean attention pattern: the prompts with the same length
 * as the first are kept, the others are named so the user can be told.
 */
export function sameLengthPrompts(prompts: readonly string[], tokens: readonly (readonly number[])[]): { kept: number[]; skipped: number[] } {
  const n = tokens[0]?.length ?? 0;
  const kept: number[] = [];
  const skipped: number[] = [];
  tokens.forEach((t, i) => (t.length === n ? kept : skipped).push(i));
  if (tokens.length !== prompts.length) throw new Error(`${tokens.length} token rows for ${prompts.length} prompts`);
  return { kept, skipped };
}

/** The model as panels name it: cfg.model_name, and the processing when it is not the default. */
export function modelLabel(info: Pick<ModelInfo, 'cfg' | 'processing'>): string {
  return info.processing === 'default' ? info.cfg.model_name : `${info.cfg.model_name} (${info.processing})`;
}

export function runRecord(args: {
  id: string;
  kind: RunKind;
  title: string;
  createdAt: Date;
  info: Pick<ModelInfo, 'spec' | 'cfg' | 'processing'>;
  engineVersion: string;
  inputs: RunInputs;
  state: PanelState;
}): RunRecord {
  return {
    id: args.id,
    kind: args.kind,
    title: args.title,
    createdAt: args.createdAt.toISOString(),
    model: { spec: args.info.spec, name: args.info.cfg.model_name, processing: args.info.processing },
    engineVersion: args.engineVersion,
    inputs: args.inputs,
    state: args.state,
  };
}

/** Whether a state is final (worth saving as a run): not loading, not an error. */
export function isResultState(s: PanelState): boolean {
  return s.kind !== 'loading' && s.kind !== 'error';
}
