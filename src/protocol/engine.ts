/**
 * Messages between the extension host (or any client) and the engine worker.
 * Plain data only: no engine imports, so the webview bundle and the host can share these types.
 */
import { notificationType, requestType } from './ipc.js';
import type { TensorPayload } from './tensor.js';

export type ProcessingMode = 'none' | 'default' | 'default+refactor';
export type DeviceChoice = 'auto' | 'cpu' | 'cuda';

export interface ModelConfigInfo {
  model_name: string;
  n_layers: number;
  d_model: number;
  n_heads: number;
  d_head: number;
  d_mlp: number | null;
  d_vocab: number;
  n_ctx: number;
  act_fn: string;
  normalization_type: string | null;
  positional_embedding_type: string;
}

export interface HookInfo {
  name: string;
  axes: string[];
}

export interface ModelInfo {
  /** What the user asked for (folder, HF id, 'builtin:…'). */
  spec: string;
  /** Where it was loaded from (resolved folder). */
  source: string;
  cfg: ModelConfigInfo;
  processing: ProcessingMode;
  device: 'cpu' | 'cuda';
  tokenizer: 'gpt2-bpe' | 'char' | 'ids';
  /** Bytes of parameters held by the engine. */
  paramBytes: number;
  hooks: HookInfo[];
  loadMs: number;
}

export interface LoadModelParams {
  model: string;
  processing?: ProcessingMode;
  device?: DeviceChoice;
  /** Allow downloading from the Hugging Face hub when the id is not in the local cache. */
  allowDownload?: boolean;
}

export interface TokenizeParams {
  texts: string[];
  prependBos?: boolean;
}
export interface TokenizeResult {
  tokens: number[][];
  strTokens: string[][];
}

/** Serialisable intervention (see src/engine/interventions/plan.ts for the semantics). */
export type InterventionPayload =
  | { kind: 'patch'; hook: string; index?: Record<string, number[] | null>; source: TensorPayload }
  | { kind: 'zero'; hook: string; index?: Record<string, number[] | null> }
  | { kind: 'mean'; hook: string; index?: Record<string, number[] | null>; over: 'batch' }
  | { kind: 'mean'; hook: string; index?: Record<string, number[] | null>; over: 'supplied'; mean: TensorPayload }
  | { kind: 'add'; hook: string; index?: Record<string, number[] | null>; vector: TensorPayload }
  | { kind: 'scale'; hook: string; index?: Record<string, number[] | null>; factor: number };

export interface RunWithCacheParams {
  tokens: number[][];
  /** Hook names to return, or 'all'. */
  names: string[] | 'all';
  interventions?: InterventionPayload[];
  startAtLayer?: number;
  stopAtLayer?: number;
}
export interface RunWithCacheResult {
  logits?: TensorPayload;
  cache: Record<string, TensorPayload>;
}

export interface TopKEntry {
  token: number;
  str: string;
  logit: number;
  prob: number;
}

export interface TestPromptParams {
  prompt: string;
  /** Expected answer text (e.g. " Mary"); must be a single token. */
  answer?: string;
  prependBos?: boolean;
  k?: number;
}
export interface TestPromptResult {
  tokens: number[];
  strTokens: string[];
  /** Top-k next-token predictions after the last prompt token. */
  topK: TopKEntry[];
  /** Per-position loss: -log p(token[t+1] | prefix up to t), length pos-1. */
  perTokenLoss: number[];
  answer?: { token: number; str: string; rank: number; logit: number; prob: number };
}

export interface AnalyzeParams {
  tokens: number[][];
  corrupted_tokens: number[][];
  answers: [number, number][];
}
/** The fields of the fixture's expected.json under one processing mode. */
export interface AnalyzeResult {
  loss: number;
  logit_diff: number;
  corrupted_logit_diff: number;
  head_dla: number[][];
  layer_dla: number[];
  logit_lens: { labels: string[]; values: number[] };
  resid_pre_patching: number[][];
  head_z_patching: number[][];
}

/**
 * Direct logit attribution and logit lens of one prompt toward its answer (the answer's logit,
 * or the logit difference answer - wrong when a wrong answer is given). With no answer, the
 * model's top prediction after the prompt is attributed.
 */
export interface AttributionParams {
  prompt: string;
  /** Single-token answer text, e.g. " Mary". */
  answer?: string;
  /** Single-token wrong answer text, e.g. " John". */
  wrong?: string;
  prependBos?: boolean;
}
export interface AttributionResult {
  tokens: number[];
  strTokens: string[];
  /** The attributed answer; `predicted` when it is the model's top-1 because none was given. */
  answer: { token: number; str: string; logit: number; prob: number; rank: number; predicted: boolean };
  wrong?: { token: number; str: string; logit: number; prob: number; rank: number };
  /** decompose_resid labels: embed, pos_embed, 0_attn_out, 0_mlp_out, ... */
  layerLabels: string[];
  /** Per residual component at the last position, [component]. */
  layerDla: number[];
  /** Per head at the last position, [layer][head]. */
  headDla: number[][];
  /** Accumulated residual streams (0_pre, 0_mid, ..., final_post) projected on the direction. */
  logitLens: { labels: string[]; values: number[] };
  /** The answer's logit, or logit(answer) - logit(wrong). */
  total: number;
}

/** Token counts without any context-length check (diagnostics measure what would fail). */
export interface MeasureTokensParams {
  texts: string[];
  /** Prepend BOS as to_tokens does (prompts); false for answers. */
  prependBos: boolean;
}
export interface MeasureTokensResult {
  n_ctx: number;
  /** Per text: its token count and each token's text, or why it cannot be tokenized (count 0). */
  items: { count: number; strTokens: string[]; error?: string }[];
}

export interface ProgressParams {
  /** The request this progress belongs to. */
  requestId: number;
  message: string;
  /** 0..1 when known. */
  fraction?: number;
}

export const EngineRequests = {
  loadModel: requestType<LoadModelParams, ModelInfo>('engine/model/load'),
  modelInfo: requestType<Record<string, never>, ModelInfo | null>('engine/model/info'),
  tokenize: requestType<TokenizeParams, TokenizeResult>('engine/tokens/encode'),
  runWithCache: requestType<RunWithCacheParams, RunWithCacheResult>('engine/run/cache'),
  testPrompt: requestType<TestPromptParams, TestPromptResult>('engine/analysis/testPrompt'),
  analyze: requestType<AnalyzeParams, AnalyzeResult>('engine/analysis/analyze'),
  attribution: requestType<AttributionParams, AttributionResult>('engine/analysis/attribution'),
  measureTokens: requestType<MeasureTokensParams, MeasureTokensResult>('engine/tokens/measure'),
  /** For tests: a request that runs until cancelled or `ms` elapses. */
  sleep: requestType<{ ms: number }, { slept: number }>('engine/debug/sleep'),
  /** For tests of crash recovery: the worker throws outside any handler and dies. */
  crash: requestType<Record<string, never>, never>('engine/debug/crash'),
} as const;

export const EngineNotifications = {
  progress: notificationType<ProgressParams>('engine/progress'),
} as const;
