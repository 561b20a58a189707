/**
 * What each analysis of an experiment will cost, computed from the model's shapes and the file
 * before anything runs: the bytes of the tensors it holds at once (activation caches, attention
 * patterns, logits, the batched runs of a sweep) and its work in forward passes. A run whose
 * analysis would need more memory than the budget stops before it allocates, with an error at
 * that analysis naming the estimate, the budget and what to make smaller; a size no machine can
 * hold (one tensor past 2^31 elements) is an error whatever the budget.
 *
 * The estimates follow the code that runs (run.ts, analysis/*): a sweep's runs hold about 4096
 * token positions (sweep.ts runGroups), file lines run 64 at a time (neurons.ts), head scores
 * and head detection keep every layer's hook_pattern [batch, head, query_pos, key_pos]. They are
 * float32 tensor bytes, not the process's RSS: onnxruntime's arena and V8 add a constant factor
 * (ESTIMATE_OVERHEAD), which the budget check includes.
 */
import * as os from 'node:os';
import type { HookedTransformerConfig } from '../model/config.js';
import { hookDictOrder } from '../analysis/ablation.js';
import { HEAD_SCORE_BATCH } from '../analysis/heads.js';
import type { Diagnostic } from './diagnostics.js';
import type { GroupTokens, ResolvedExperiment } from './parse.js';
import { readNamedFile, confinedReader } from './files.js';
import type { AnalysisKind } from './schema.js';

/** Bytes of one float32. */
const F = 4;
/** Token positions per batched sweep run (sweep.ts runGroups' default). */
const SWEEP_POSITIONS = 4096;
/** Input bytes a sweep run may hold (sweep.ts maxBatchBytes default). */
const SWEEP_INPUT_BYTES = 256e6;
/** Lines per run of neuron_activations over a file (neurons.ts). */
const LINE_BATCH = 64;
/** The largest tensor one run may hold: onnxruntime and typed arrays index with 32-bit lengths past this. */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;
/** What the process needs beyond the estimated tensors (arena rounding, copies into JS, V8): a factor on the estimate. */
export const ESTIMATE_OVERHEAD = 1.5;
/**
 * Logits are held about three times over: onnxruntime's output, the arena's buffer of the last
 * MatMul and the copy into JavaScript (measured: head scores of 16 x 100 tokens of a
 * 50,257-token vocabulary grow the process by about 3x the logits' bytes).
 */
const LOGIT_COPIES = 3;
/** What running the model costs beyond its tensors (session variants, the arena's first chunks): measured at 50-100 MB. */
export const SESSION_BYTES = 64 * 1024 * 1024;
/** The default budget: this fraction of the memory free when the run starts. */
export const DEFAULT_BUDGET_FRACTION = 0.5;

export interface AnalysisEstimate {
  /** Index of the analysis in the file, and its group (null for a single "prompts" list). */
  index: number;
  group: string | null;
  kind: AnalysisKind;
  /** Bytes of the tensors held at once (float32), before ESTIMATE_OVERHEAD. */
  bytes: number;
  /** Forward passes (a batched run counts once; a backward pass counts as two). */
  forwards: number;
  /** The largest single tensor: what it is and its elements. */
  largest: { what: string; elements: number };
  /** What to make smaller, for the error. */
  reduce: string;
}

export interface ExperimentEstimate {
  analyses: AnalysisEstimate[];
  /** The largest analysis's bytes with the overhead (analyses run one after another and release their memory). */
  peakBytes: number;
  forwards: number;
}

/** The default memory budget: half the memory free now. */
export function defaultBudgetBytes(): number {
  return Math.floor(os.freemem() * DEFAULT_BUDGET_FRACTION);
}

/** The budget in bytes from a setting / flag in MB (absent, 0 or negative: the default). */
export function budgetBytes(mb: number | undefined): number {
  return mb !== undefined && Number.isFinite(mb) && mb > 0 ? Math.floor(mb * 1024 * 1024) : defaultBudgetBytes();
}

export function formatBytes(b: number): string {
  if (b >= 1024 ** 3) return `${(b / 1024 ** 3).toFixed(1)} GB`;
  if (b >= 1024 ** 2) return `${(b / 1024 ** 2).toFixed(b >= 100 * 1024 ** 2 ? 0 : 1)} MB`;
  return `${Math.max(1, Math.ceil(b / 1024))} KB`;
}

/** Per-position float32 sizes of one model. */
function shapes(cfg: HookedTransformerConfig) {
  const d = cfg.d_model, H = cfg.n_heads, dh = cfg.d_head, dm = cfg.d_mlp ?? 0, L = cfg.n_layers, V = cfg.d_vocab_out;
  /** Activations of one layer that a forward pass holds at once per position, without the attention scores. */
  const layerWidth = 4 * d + 4 * H * dh + 2 * dm;
  return {
    d, H, dh, dm, L, V,
    /** One forward pass on rows x P tokens (peak: one layer's activations, the scores and the logits). */
    forward: (rows: number, P: number, lastOnly = false) => F * (rows * P * layerWidth + 2 * rows * H * P * P + LOGIT_COPIES * rows * (lastOnly ? 1 : P) * V),
    /** Every hook of every layer cached (run_with_cache), plus the logits. */
    cache: (rows: number, P: number) => F * (rows * P * (2 * d + L * (layerWidth + 3 * d + H * d) + LOGIT_COPIES * V) + L * 2 * rows * H * P * P),
    /** Every layer's hook_pattern [rows, head, P, P]. */
    patterns: (rows: number, P: number) => F * L * rows * H * P * P,
  };
}

/** The cells of a patching sweep (run.ts / patching.ts layouts). */
function sweepCells(spec: Extract<ResolvedExperiment['analyses'][number]['spec'], { kind: 'patch' | 'patch_heads' | 'patch_neurons' }>, cfg: HookedTransformerConfig, P: number): number {
  const layers = 'layers' in spec && spec.layers ? spec.layers.length : cfg.n_layers;
  if (spec.kind === 'patch') return layers * P;
  if (spec.kind === 'patch_heads') return layers * cfg.n_heads * ((spec.by ?? 'all_pos') === 'pos' ? P : 1);
  return spec.neurons?.length ?? cfg.d_mlp ?? 0;
}

/** Bytes and forward passes of a batched sweep of `cells` variants of a B x P batch (sweep.ts). */
function sweep(s: ReturnType<typeof shapes>, cells: number, B: number, P: number): { bytes: number; forwards: number; rows: number } {
  const rows = Math.max(B, Math.floor(SWEEP_POSITIONS / Math.max(1, P)) - (Math.floor(SWEEP_POSITIONS / Math.max(1, P)) % Math.max(1, B)));
  const forwards = Math.ceil((cells * B) / rows);
  const inputs = Math.min(SWEEP_INPUT_BYTES, F * rows * P * s.d * 2);
  return { bytes: s.forward(rows, P, true) + inputs, forwards, rows };
}

/**
 * The estimate of every analysis on every group, from the model config and the checked tokens
 * (checkWithModel's). Files an analysis reads (neuron_activations "file") are counted by lines.
 */
export function estimateExperiment(x: ResolvedExperiment, cfg: HookedTransformerConfig, groups: readonly GroupTokens[]): ExperimentEstimate {
  const s = shapes(cfg);
  const out: AnalysisEstimate[] = [];
  for (const [gi, gt] of groups.entries()) {
    const group = x.groups[gi]?.name ?? null;
    const B = gt.clean.length;
    const P = gt.clean[0]?.length ?? 1;
    const pairs = gt.corrupted ? 2 : 1;
    for (const a of x.analyses) {
      const spec = a.spec;
      const e: AnalysisEstimate = { index: a.index, group, kind: spec.kind, bytes: s.forward(B, P), forwards: 1, largest: { what: 'logits', elements: B * P * s.V }, reduce: 'fewer or shorter prompts' };
      const cacheBytes = s.cache(B, P);
      switch (spec.kind) {
        case 'test_prompt': {
          const n = spec.text !== undefined ? Math.min(cfg.n_ctx, spec.text.length + 1) : P;
          Object.assign(e, { bytes: s.forward(1, n), largest: { what: 'logits', elements: n * s.V }, reduce: 'a shorter prompt' });
          break;
        }
        case 'logit_diff':
          e.forwards = pairs;
          break;
        case 'layer_dla':
        case 'head_dla':
        case 'logit_lens':
        case 'neuron_dla':
          Object.assign(e, { bytes: cacheBytes + F * B * (s.L * s.H + 2 * s.L + 2) * s.d, largest: { what: 'logits', elements: B * P * s.V } });
          break;
        case 'attention':
        case 'detect_heads':
          Object.assign(e, { bytes: s.patterns(B, P) + s.forward(B, P) + (spec.kind === 'attention' && !Array.isArray(spec.heads) ? cacheBytes : 0), forwards: spec.kind === 'attention' && !Array.isArray(spec.heads) ? 2 : 1, largest: { what: 'hook_pattern', elements: B * s.H * P * P }, reduce: 'fewer or shorter prompts' });
          break;
        case 'head_scores': {
          const Bh = spec.batch ?? 10;
          const T = 2 * (spec.seqLen ?? 50) + (spec.prependBos ? 1 : 0);
          // The sequences run HEAD_SCORE_BATCH at a time; the scores are sums over them.
          const b = Math.min(Bh, HEAD_SCORE_BATCH);
          Object.assign(e, { bytes: s.patterns(b, T) + s.forward(b, T) + F * Bh * T, forwards: Math.ceil(Bh / HEAD_SCORE_BATCH), largest: { what: `hook_pattern [${b}, ${s.H}, ${T}, ${T}]`, elements: b * s.H * T * T }, reduce: 'a smaller "batch" or "seqLen"' });
          break;
        }
        case 'circuits': {
          const n = new Set(gt.clean[0] ?? []).size;
          Object.assign(e, { bytes: F * (4 * s.V * s.dh + 2 * n * n), forwards: 0, largest: { what: 'W_E W_Q', elements: s.V * s.dh }, reduce: 'fewer heads' });
          break;
        }
        case 'copying_scores':
          Object.assign(e, { bytes: F * (s.d * s.d + 3 * s.L * s.H * s.dh * s.d), forwards: 0, largest: { what: 'W_O W_U W_E', elements: s.L * s.H * s.dh * s.d } });
          break;
        case 'composition':
          Object.assign(e, { bytes: F * ((s.L * s.H) ** 2 + 2 * s.L * s.H * s.d * s.dh + s.L * s.H * s.dh * s.dh), forwards: 0, largest: { what: 'scores', elements: (s.L * s.H) ** 2 } });
          break;
        case 'neuron_activations': {
          if (spec.file !== undefined) {
            const read = readNamedFile({ root: x.root, dir: x.dir, reader: confinedReader(x.root) }, spec.file, 'the text file');
            const lines = 'error' in read ? [] : read.text.split(/\r\n|\r|\n/).filter((l) => l.trim() !== '');
            const longest = Math.min(cfg.n_ctx, lines.reduce((m, l) => Math.max(m, l.length + 1), 1));
            Object.assign(e, { bytes: s.forward(Math.min(LINE_BATCH, Math.max(1, lines.length)), longest), forwards: Math.ceil(lines.length / LINE_BATCH), largest: { what: 'hook_post', elements: LINE_BATCH * longest * s.dm }, reduce: 'a shorter file (or "text")' });
          } else if (spec.text !== undefined) {
            const n = Math.min(cfg.n_ctx, spec.text.length + 1);
            Object.assign(e, { bytes: s.forward(1, n), largest: { what: 'hook_post', elements: n * s.dm }, reduce: 'a shorter text' });
          }
          break;
        }
        case 'ablation': {
          const hooks = spec.hooks?.length ?? hookDictOrder(cfg).filter((h) => h !== 'hook_pos_embed' && !h.endsWith('hook_result')).length;
          Object.assign(e, { bytes: cacheBytes + s.forward(B, P), forwards: hooks + 1, reduce: 'fewer "hooks" or fewer prompts' });
          break;
        }
        case 'patch':
        case 'patch_heads':
        case 'patch_neurons': {
          const sw = sweep(s, sweepCells(spec, cfg, P), B, P);
          const attribution = spec.attribution ? 3 * cacheBytes : 0;
          Object.assign(e, { bytes: 2 * cacheBytes + sw.bytes + attribution, forwards: sw.forwards + 2 + (spec.attribution ? 3 : 0), largest: { what: `a batched run of ${sw.rows} rows`, elements: sw.rows * P * Math.max(s.d, s.dm) }, reduce: 'fewer or shorter prompts, or fewer "layers"' });
          break;
        }
        case 'causal_trace': {
          const S = spec.samples ?? 10;
          const kinds = spec.kinds?.length ?? (cfg.attn_only ? 2 : 3);
          const row = gt.clean[spec.prompt ?? 0]?.length ?? P;
          const sw = sweep(s, kinds * s.L * row, S, row);
          Object.assign(e, { bytes: s.cache(S, row) + s.cache(1, row) + sw.bytes, forwards: sw.forwards + 2, largest: { what: `the noisy runs' cache [${S}, ${row}, ...]`, elements: S * row * Math.max(s.d * s.L, s.H * row) }, reduce: 'fewer "samples" or a shorter prompt' });
          break;
        }
        case 'sae_attribution': {
          // Clean and corrupted runs with the SAE, one forward + backward pass (its graph keeps
          // every activation, about a cache), then one corrupted run per exact-patched cell.
          Object.assign(e, { bytes: 2 * cacheBytes, forwards: 5 + (spec.top ?? 10), reduce: 'fewer or shorter prompts, or a smaller "top"' });
          break;
        }
        case 'path_patch': {
          const sw = sweep(s, s.L * s.H, B, P);
          Object.assign(e, { bytes: 3 * cacheBytes + sw.bytes, forwards: sw.forwards + 3, reduce: 'fewer or shorter prompts' });
          break;
        }
      }
      if (e.forwards > 0) e.bytes += SESSION_BYTES;
      out.push(e);
    }
  }
  const peak = out.reduce((m, e) => Math.max(m, e.bytes), 0);
  return { analyses: out, peakBytes: peak * ESTIMATE_OVERHEAD, forwards: out.reduce((n, e) => n + e.forwards, 0) };
}

const label = (e: AnalysisEstimate) => `analysis ${e.index + 1} (${e.kind}${e.group !== null ? `, group ${JSON.stringify(e.group)}` : ''})`;

/**
 * The errors of an estimate: an analysis above the budget (bytes with the overhead), or a tensor
 * no run can hold. Each at its analysis in the file.
 */
export function budgetDiagnostics(x: ResolvedExperiment, est: ExperimentEstimate, budget: number, budgetSource: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  const seen = new Set<number>();
  for (const e of est.analyses) {
    if (seen.has(e.index)) continue;
    const need = e.bytes * ESTIMATE_OVERHEAD;
    if (e.largest.elements > MAX_TENSOR_ELEMENTS) {
      seen.add(e.index);
      out.push({ ...x.locate(['analyses', e.index]), severity: 'error', code: 'too-large', message: `${label(e)} would hold ${e.largest.what} of ${e.largest.elements} elements, more than one tensor can have (${MAX_TENSOR_ELEMENTS}): use ${e.reduce}` });
    } else if (need > budget) {
      seen.add(e.index);
      out.push({ ...x.locate(['analyses', e.index]), severity: 'error', code: 'memory-budget', message: `${label(e)} needs about ${formatBytes(need)} of memory (${e.forwards} forward passes), over the budget of ${formatBytes(budget)} (${budgetSource}): use ${e.reduce}, or raise the budget` });
    }
  }
  return out;
}

/** One line per analysis and a total, for the CLI's log and the editor's progress. */
export function describeEstimate(x: ResolvedExperiment, est: ExperimentEstimate, budget: number): string[] {
  const lines = est.analyses.map((e) => `  ${label(e)}: ~${formatBytes(e.bytes * ESTIMATE_OVERHEAD)}, ${e.forwards} forward pass${e.forwards === 1 ? '' : 'es'}`);
  return [`estimate: at most ~${formatBytes(est.peakBytes)} at once, ${est.forwards} forward passes in all (budget ${formatBytes(budget)})`, ...lines];
}
