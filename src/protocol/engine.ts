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
  /** No MLPs (blocks are resid_pre + attn_out): no mlp or resid_mid hooks. */
  attn_only: boolean;
  d_vocab: number;
  n_ctx: number;
  act_fn: string;
  normalization_type: string | null;
  positional_embedding_type: string;
  /** TransformerLens's architecture name, e.g. LlamaForCausalLM. */
  original_architecture?: string;
  /** Grouped-query attention: heads of keys and values (null: n_heads). */
  n_key_value_heads?: number | null;
  /** Mixture of experts (Mixtral, OLMoE): experts per layer and how many each token uses (null: a dense MLP). */
  num_experts?: number | null;
  experts_per_token?: number | null;
}

export interface HookInfo {
  name: string;
  axes: string[];
  /** Size of head_index when it is not n_heads (hook_k / hook_v / hook_rot_k under grouped-query attention). */
  heads?: number;
}

export interface ModelInfo {
  /** What the user asked for (folder, HF id, 'builtin:…'). */
  spec: string;
  /** Where it was loaded from (resolved folder). */
  source: string;
  cfg: ModelConfigInfo;
  processing: ProcessingMode;
  device: 'cpu' | 'cuda';
  tokenizer: 'gpt2-bpe' | 'hf' | 'char' | 'ids';
  /** Bytes of parameters held by the engine. */
  paramBytes: number;
  hooks: HookInfo[];
  loadMs: number;
  /** Problems found while loading, e.g. non-finite weights (tensor names and counts). */
  warnings?: string[];
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
  /** SAEs loaded with engine/sae/load to splice in: their `<hook>.hook_sae_*` hooks can be named and intervened on. */
  saes?: { saeId: string; useErrorTerm?: boolean }[];
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
  /** What the two patching tables hold: the normalised logit difference, or the raw one when normalising is undefined. */
  patching_metric: 'normalised logit difference' | 'raw logit difference';
  /** Why normalising is undefined (clean and corrupted logit differences equal), else null. */
  normalization_undefined: string | null;
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
  /**
   * The unembedding bias's share of the total, b_U[answer] (- b_U[wrong]): no residual component
   * writes it, so the components alone never add up to the total.
   */
  unembedBias: number;
  /**
   * What an un-folded final LayerNorm / RMSNorm (processing "none") adds through its weight and
   * bias, which TransformerLens's DLA (apply_ln_to_stack) leaves out; null once folded, where
   * components + unembedBias equal the total.
   */
  lnFinalTerm: number | null;
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
  /** Training requests (engine/training/start) report each step here. */
  training?: TrainingProgress;
  /** SAE training (engine/sae/train) reports its phases and metric snapshots here. */
  saeTraining?: SaeTrainingProgress;
}

// ---------------------------------------------------------------------------------------------
// Training toy transformers (src/engine/training) and the analyses run on a trained checkpoint.
// Shapes mirror src/engine/training/trainer.ts's TrainConfig (plain data, so the protocol does
// not import the engine); field names are TransformerLens's.

/** The model of a training run, in HookedTransformerConfig field names. */
export interface TrainModelPayload {
  n_layers: number;
  d_model: number;
  n_heads: number;
  d_head?: number;
  d_mlp?: number;
  attn_only?: boolean;
  d_vocab: number;
  n_ctx: number;
  act_fn?: 'gelu_new' | 'gelu' | 'relu' | 'gelu_fast' | 'silu';
  normalization_type?: 'LN' | 'LNPre' | 'RMS' | 'RMSPre' | null;
  positional_embedding_type?: 'standard' | 'rotary' | 'none';
  /** Block types of the registered families (Llama: RMS, rotary, gated_mlp, n_key_value_heads; GPT-NeoX: parallel_attn_mlp, rotary_dim). */
  rotary_dim?: number;
  rotary_base?: number;
  n_key_value_heads?: number;
  gated_mlp?: boolean;
  parallel_attn_mlp?: boolean;
  bos_token_id?: number | null;
  model_name?: string;
}

export type TrainTaskPayload =
  | { kind: 'previous_token'; bos_token_id?: number }
  | { kind: 'induction'; bos_token_id?: number; loss_on?: 'all' | 'repeated' }
  | { kind: 'text'; file: string; tokenizer: 'gpt2' | 'char' };

/** Everything that determines a run (TrainConfig of the engine). */
export interface TrainConfigPayload {
  model: TrainModelPayload;
  task: TrainTaskPayload;
  zero_pos_embed: boolean;
  max_steps: number;
  batch_size: number;
  lr: number;
  betas: [number, number];
  eps: number;
  weight_decay: number;
  decay_params: 'all' | 'matrices';
  max_grad_norm: number | null;
  warmup_steps: number;
  seed: number;
  save_every: number | null;
  keep_checkpoints: number;
}

export interface TrainStartParams {
  config: TrainConfigPayload;
  /** Checkpoint folder (step-NNNNNN folders and a `latest` pointer). */
  saveDir: string;
  /** Continue from saveDir's latest checkpoint (its step, data stream and optimizer state). */
  resume: boolean;
  /** Stop (and checkpoint) after this many completed steps; default max_steps. */
  untilStep?: number;
  /** onnxruntime intra-op threads (default: all cores). */
  threads?: number;
}

/** One training step, as the trainer reports it. */
export interface TrainingStepPayload {
  step: number;
  maxSteps: number;
  loss: number;
  gradNorm: number;
  lr: number;
  stepMs: number;
  /** Smoothed over recent steps. */
  tokensPerSec: number;
  etaSec: number;
  /** Mean loss at each position of this step's batch, [pos] (0 where nothing is scored). */
  posLoss: number[];
}

export type TrainingProgress =
  | {
      kind: 'started';
      /** Completed steps (0 for a fresh run; the checkpoint's step when resuming). */
      step: number;
      maxSteps: number;
      /** Loss of every completed step so far (a resumed run's history). */
      losses: number[];
      /** Trainable parameters. */
      params: number;
      tokensPerStep: number;
      resumedFrom: string | null;
      /** Differences between the file's settings and a resumed checkpoint's, and the like. */
      notes: string[];
    }
  | ({ kind: 'step' } & TrainingStepPayload)
  | { kind: 'checkpoint'; step: number; path: string };

export interface TrainStartResult {
  status: 'completed' | 'stopped';
  step: number;
  maxSteps: number;
  /** The last checkpoint written (a model folder), or null. */
  checkpoint: string | null;
  /** Loss of every completed step (including a resumed run's earlier steps). */
  losses: number[];
}

/** Analyses run on a trained checkpoint (the train experiment's "analyses"). */
export type TrainAnalysisSpec = { title?: string } & (
  | { kind: 'loss'; sequences?: number }
  | { kind: 'attention_patterns'; sequences?: number }
  | { kind: 'logit_contributions'; sequence?: number }
  | { kind: 'fold_ln'; sequences?: number }
  | { kind: 'qk_circuit'; layers?: number[]; heads?: number[]; weights?: 'raw' | 'folded'; tokens?: number }
  | { kind: 'ov_circuit'; layers?: number[]; heads?: number[]; into?: 'mlp_in' | 'unembed'; mlp_layer?: number; weights?: 'raw' | 'folded'; tokens?: number }
  | { kind: 'mlp_activations'; layers?: number[]; sequences?: number; sequence?: number }
  | { kind: 'ablation'; ablation?: 'mean' | 'zero'; sequences?: number; hooks?: string[] }
);

export type TrainAnalysisKind = TrainAnalysisSpec['kind'];

export interface TrainAnalyseParams {
  /** A checkpoint folder (step-NNNNNN) or a checkpoint folder's parent with a `latest` pointer. */
  checkpoint: string;
  task: TrainTaskPayload;
  analyses: TrainAnalysisSpec[];
  /** Seed of the fresh evaluation sequences (independent of the training data stream). */
  seed: number;
  threads?: number;
}

/** Per analysis; matrices are [row][col], circuits over at most `tokens` vocabulary rows. */
export type TrainAnalysisResult = { index: number; title: string; /** Time this analysis took (for several results of one analysis, all of it). */ elapsedMs?: number } & (
  | { kind: 'loss'; sequences: number; loss: number; posLoss: number[] }
  | { kind: 'attention_patterns'; sequences: number; nHeads: number; patterns: number[][][] }
  | { kind: 'logit_contributions'; sequence: number; tokens: number[]; positions: number[]; targets: number[]; components: string[]; values: number[][] }
  | { kind: 'fold_ln'; sequences: number; steps: string[]; notes: string[]; normalization: string; maxLogProbDiff: number; wPosNorm: number | null }
  | { kind: 'qk_circuit'; layer: number; head: number; weights: 'raw' | 'folded'; tokens: number; values: number[][] }
  | { kind: 'ov_circuit'; layer: number; head: number; weights: 'raw' | 'folded'; into: 'mlp_in' | 'unembed'; mlpLayer: number | null; tokens: number; values: number[][] }
  | { kind: 'mlp_activations'; layer: number; sequence: number; sequences: number; example: number[][]; mean: number[][]; firing: number[][]; firingRate: number }
  | { kind: 'ablation'; ablation: 'mean' | 'zero'; sequences: number; baseline: number; hooks: string[]; losses: number[] }
);

export interface TrainAnalyseResult {
  /** The step folder analysed. */
  checkpoint: string;
  step: number;
  cfg: ModelConfigInfo;
  results: TrainAnalysisResult[];
  elapsedMs: number;
}

/**
 * A problem of an experiment file (src/engine/experiments/parse.ts's Diagnostic): the file it is
 * in (the experiment, or a .prompts / text file it names), 0-based line and UTF-16 column.
 */
export interface ExperimentDiagnostic {
  file: string;
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  severity: 'error' | 'warning';
  message: string;
  code: string;
}

export interface ExperimentCheckParams {
  /** Absolute path of the *.experiment.json (prompts files and model folders resolve against it). */
  file: string;
  /** The text to check (an editor's unsaved buffer); default: the file on disk. */
  text?: string;
  /** The folder every file the experiment names must stay inside (its workspace folder); default: the experiment's folder. */
  root?: string;
  /**
   * false: only the checks that need no model (JSON, schema, prompts files), at once. true: also
   * the tokenizer- and shape-aware ones, loading the experiment's model without downloading it.
   */
  withModel: boolean;
  /** Whether a run may download the model (decides how a model missing from the HF cache is reported). */
  allowDownload: boolean;
}
export interface ExperimentCheckResult {
  diagnostics: ExperimentDiagnostic[];
  /** The experiment's model, once the file parses. */
  model?: { name: string; spec: string; processing: ProcessingMode };
  /** With withModel: whether the model-aware checks ran (false when the model is not available). */
  modelChecked: boolean;
}

export interface ExperimentRunParams {
  file: string;
  /** The text to run (an unsaved buffer, or an experiment built in memory); default: the file on disk. */
  text?: string;
  /** Indices into "analyses" to run; default all. */
  only?: number[];
  /** The folder holding .mechlens/runs (the workspace folder). */
  workspace: string;
  /** The folder every file the experiment names must stay inside (its workspace folder); default: `workspace`. */
  root?: string;
  /** An incomplete run folder to finish: the experiment is read from its copy, only missing analyses run. */
  resume?: string;
  /** May the model be downloaded from the Hugging Face hub (also subject to the file's "offline"). */
  allowDownload: boolean;
  /** Names this run for engine/experiment/progress; progress notifications are sent as well. */
  token?: string;
  /** Memory one analysis may use, in MB (the setting mechlens.memoryBudgetMB); absent or 0: half the free memory. */
  memoryBudgetMB?: number;
}
export interface ExperimentRunResult {
  /** Every problem found; when one is an error nothing ran and `run` is absent. */
  diagnostics: ExperimentDiagnostic[];
  run?: {
    id: string;
    /** The run folder, <workspace>/.mechlens/runs/<id>. */
    dir: string;
    /** Stopped by cancellation: the folder holds the results computed so far. */
    cancelled: boolean;
    checks: { met: number; total: number };
    elapsedMs: number;
    modelName: string;
  };
}

/** The latest progress of a running experiment (polled by clients that cannot route notifications). */
export interface ExperimentProgress {
  token: string;
  message: string;
  /** Analyses finished, and in all (0 of 0 while the model loads). */
  done: number;
  total: number;
  /** 0..1 over the whole run, when known. */
  fraction?: number;
  finished: boolean;
}

/** A sparse autoencoder / transcoder loaded in the worker for the loaded model (src/engine/sae). */
export interface SaeInfo {
  /** Names the SAE in the other engine/sae/* requests. */
  id: string;
  source: string;
  architecture: string;
  d_in: number;
  d_sae: number;
  d_out: number;
  /** The hook it reads and the hook its output replaces (the same for an SAE). */
  hookIn: string;
  hookOut: string;
  normalizeActivations: string;
  k: number | null;
  /** sparsity.safetensors was present (logDensityFromFile in dashboards). */
  hasSparsity: boolean;
  modelName?: string;
  notes: string[];
}
export interface LoadSaeParams {
  /** A folder in SAELens's format, or a hub release folder org/name/<folder>. */
  sae: string;
  allowDownload?: boolean;
}
export interface SaeFeaturesParams {
  saeId: string;
  texts: string[];
  prependBos?: boolean;
  /** Features per token (default 10). */
  top?: number;
}
export interface SaeFeaturesResult {
  tokens: number[][];
  strTokens: string[][];
  /** [text][pos] -> the most active features, largest first (active ones only). */
  top: { feature: number; act: number }[][][];
  /** Per text: mean active features per token, and the fraction of variance the reconstruction explains. */
  l0: number[];
  explainedVariance: number[];
  /**
   * [text]: every feature that is among some token's top ones, with its activation at every
   * position of that text ([pos]), so that a view can colour the prompt by any of them.
   */
  acts: Record<string, number[]>[];
}
export interface SaeFeatureActsParams {
  saeId: string;
  texts: string[];
  feature: number;
  prependBos?: boolean;
}
export interface SaeFeatureActsResult {
  strTokens: string[][];
  /** [text][pos]: the feature's activation (hook_sae_acts_post). */
  values: number[][];
}
export interface SaeDashboardParams {
  saeId: string;
  feature: number;
  /** An absolute path of a text file, or texts. */
  corpus: { file: string } | { texts: string[] };
  /** Tokens per corpus row, BOS included (default 128, at most n_ctx). */
  rowTokens?: number;
  /** Corpus tokens read (default 50,000). */
  maxTokens?: number;
  prependBos?: boolean;
  /** Contexts returned (default 20) and tokens shown each side of the activating one (default 8). */
  topK?: number;
  contextTokens?: number;
  /** Rows whose activations make the histogram (default 64; the top contexts' rows first). */
  histogramRows?: number;
  /** Promoted / suppressed tokens listed (default 10). */
  logitTokens?: number;
  /** Names the request for progress notifications (optional). */
  token?: string;
}
export interface SaeDashboardResult {
  feature: number;
  /** Corpus tokens the statistics cover. */
  tokens: number;
  /** Fraction of corpus tokens where the feature fires; its largest and mean (when active) activation. */
  density: number;
  maxAct: number;
  meanActive: number;
  /** Top-activating contexts, largest first: the window of tokens and the activating token's index in it. */
  contexts: { row: number; pos: number; act: number; strTokens: string[]; highlight: number }[];
  histogram: { edges: number[]; counts: number[] };
  /** W_dec[feature] @ W_U: most promoted and suppressed tokens (null for an SAE not writing d_model values). */
  logitEffect: { top: { token: number; str: string; value: number }[]; bottom: { token: number; str: string; value: number }[] } | null;
  /** log10 density from the SAE's sparsity.safetensors, when it has one. */
  logDensityFromFile?: number;
}

export interface SaeFeatureDlaParams {
  saeId: string;
  /** Prompts of one token length, and per prompt the answer and wrong answer (single tokens). */
  texts: string[];
  answers: [string, string][];
  prependBos?: boolean;
}
export interface SaeFeatureDlaResult {
  /** Features active at the last position, by |contribution|, with their mean contribution to the logit difference. */
  features: number[];
  values: number[];
  bias: number;
  error: number;
  /** Sum of all: the SAE output's (= the hook's) direct logit attribution. */
  total: number;
}

// ---------------------------------------------------------------------------------------------
// Training an SAE (src/engine/sae/train.ts) on a model hook's activations over a corpus: the
// resolved "train_sae" experiment (src/engine/experiments/saeTrainParse.ts), as plain data.

export interface SaeTrainPayload {
  /** builtin:default, a hub id or an absolute model folder. */
  model: string;
  hook: string;
  architecture: 'standard' | 'topk';
  /** One of: d_sae, or expansion_factor x the hook's width. */
  d_sae?: number;
  expansion_factor?: number;
  k: number;
  l1_coefficient: number;
  l1_warm_up_steps: number;
  aux_loss_coefficient: number;
  apply_b_dec_to_input: boolean;
  b_dec_init: 'zeros' | 'mean';
  decoder_init_norm: number | null;
  steps: number;
  batch_size: number;
  lr: number;
  betas: [number, number];
  lr_warm_up_steps: number;
  lr_decay_steps: number;
  max_grad_norm: number | null;
  dead_feature_window: number;
  log_every: number;
  /** 'builtin:book', or an absolute text file / folder. */
  corpus: string;
  /** Tokens per corpus row (default: the model's n_ctx, at most 128). */
  context_size?: number;
  prepend_bos?: boolean;
  /** Tokens of the corpus read (default: as many as fit in 1 GiB of activations, at most 2,000,000). */
  corpus_tokens?: number;
  eval_tokens: number;
  seed: number;
  /** The SAE folder to write (absolute). */
  output: string;
}

export interface SaeTrainParams {
  config: SaeTrainPayload;
  /** onnxruntime intra-op threads (default: all cores). */
  threads?: number;
}

/** One snapshot of SAE training (the mean over the steps since the previous one). */
export interface SaeTrainSnapshotPayload {
  step: number;
  steps: number;
  loss: number;
  /** Σ_d (x̂ - x)² per token. */
  mse: number;
  /** L1 penalty (standard) or auxiliary dead-feature loss (topk). */
  auxLoss: number;
  l0: number;
  explainedVariance: number;
  deadFeatures: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  etaSec: number;
  elapsedSec: number;
}

export type SaeTrainingProgress =
  | { kind: 'activations'; done: number; total: number }
  | { kind: 'started'; d_in: number; d_sae: number; params: number; trainTokens: number; evalTokens: number; corpus: string; steps: number }
  | ({ kind: 'snapshot' } & SaeTrainSnapshotPayload)
  | { kind: 'saved'; path: string };

/** How the saved SAE does on the held-out tokens (the engine's spliced forward). */
export interface SaeEvaluationPayload {
  tokens: number;
  explainedVariance: number;
  l0: number;
  mse: number;
  neverFired: number;
}

export interface SaeTrainResult {
  status: 'completed' | 'stopped';
  step: number;
  steps: number;
  /** The SAE folder written (also when stopped: the SAE at that step). */
  output: string;
  d_in: number;
  d_sae: number;
  evaluation: SaeEvaluationPayload;
  snapshots: SaeTrainSnapshotPayload[];
  /** Seconds computing activations, and training. */
  activationSec: number;
  trainSec: number;
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
  /** Diagnostics of an experiment file (see ExperimentCheckParams.withModel). */
  experimentCheck: requestType<ExperimentCheckParams, ExperimentCheckResult>('engine/experiment/check'),
  /** Checks, runs and saves an experiment (its own model, loaded and cached in the worker); cancellable, keeps partial results. */
  experimentRun: requestType<ExperimentRunParams, ExperimentRunResult>('engine/experiment/run'),
  /** The latest progress of the run named `token`, or null when there is none. */
  experimentProgress: requestType<{ token: string }, ExperimentProgress | null>('engine/experiment/progress'),
  /** Trains (or resumes) a toy transformer; a `training` progress per step; cancel = stop after the current step and checkpoint. */
  trainStart: requestType<TrainStartParams, TrainStartResult>('engine/training/start'),
  /** Runs a train experiment's analyses on a checkpoint (progress notifications with fractions). */
  trainAnalyse: requestType<TrainAnalyseParams, TrainAnalyseResult>('engine/training/analyse'),
  /** Loads an SAE / transcoder for the loaded model (checked to fit it). */
  saeLoad: requestType<LoadSaeParams, SaeInfo>('engine/sae/load'),
  /** The most active features of every token of texts (the Inspect features tab). */
  saeFeatures: requestType<SaeFeaturesParams, SaeFeaturesResult>('engine/sae/features'),
  /** One feature's activation on every token (colour a prompt by a feature). */
  saeFeatureActs: requestType<SaeFeatureActsParams, SaeFeatureActsResult>('engine/sae/featureActs'),
  /** A feature dashboard over a corpus; progress notifications with fractions; cancellable; cached per SAE and corpus. */
  saeDashboard: requestType<SaeDashboardParams, SaeDashboardResult>('engine/sae/dashboard'),
  /** Each active feature's direct contribution to the logit difference at the last position. */
  saeFeatureDla: requestType<SaeFeatureDlaParams, SaeFeatureDlaResult>('engine/sae/featureDla'),
  /** Trains an SAE on a hook's activations (its own model, loaded in this worker); `saeTraining` progress; cancel = stop after the current step and save. */
  saeTrain: requestType<SaeTrainParams, SaeTrainResult>('engine/sae/train'),
  /** For tests: a request that runs until cancelled or `ms` elapses. */
  sleep: requestType<{ ms: number }, { slept: number }>('engine/debug/sleep'),
  /** For tests of crash recovery: the worker throws outside any handler and dies. */
  crash: requestType<Record<string, never>, never>('engine/debug/crash'),
} as const;

export const EngineNotifications = {
  progress: notificationType<ProgressParams>('engine/progress'),
} as const;
