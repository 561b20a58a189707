/**
 * The analyses of a `"kind": "train"` experiment, run on a trained checkpoint: the no-positional-embedding experiment's
 * notebook after training, generalised to any task and architecture the trainer supports.
 *
 * Data: fresh sequences of the training task from a seed of their own (never training batches).
 * Stream 0 ("A", as many sequences as the largest analysis asks for; each analysis uses its first
 * `sequences`) feeds the loss, the mean attention pattern, the MLP maps, the logit contributions
 * and the ablation means; stream 1 ("B") is the batch the ablated losses are measured on, as the
 * seed measures on `next(big_data_loader)` with means of the first batch. Every loss is the
 * task's own (targets from Task.fill, positions without a target skipped), so for previous_token
 * it is the original notebook's loss_fn. Large batches run in chunks, so 4000 x 50 tokens need little memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModelFolder } from '../model/load.js';
import { HookedTransformer, type Tokens } from '../model/hookedTransformer.js';
import type { HookedTransformerConfig } from '../model/config.js';
import { getParam, type Params } from '../model/params.js';
import { unembedMatrix } from '../model/unembed.js';
import { applyProcessing } from '../weights/process.js';
import { mat, matmul as matmul64, type Mat } from '../weights/linalg.js';
import { fullOvCircuit, fullQkCircuit, ovIntoMlp } from '../analysis/circuits.js';
import { hookDictOrder } from '../analysis/ablation.js';
import type { HookName, OutputName } from '../hooks/hooks.js';
import type { Intervention } from '../interventions/plan.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { IGNORE, makeTask, type Task } from '../training/tasks.js';
import { Rng } from '../training/rng.js';
import { resolveCheckpoint } from '../training/trainer.js';
import type { ModelConfigInfo, TrainAnalyseParams, TrainAnalyseResult, TrainAnalysisResult, TrainAnalysisSpec } from '../../protocol/engine.js';

export interface AnalyseOptions {
  signal?: AbortSignal;
  /** Progress of the whole set: a message and the fraction of analyses done. */
  onProgress?: (message: string, fraction: number) => void;
  /** Sequences per forward pass (memory bound; default 250). */
  chunk?: number;
}

/** Fresh sequences: tokens and targets as rows (HookedTransformer takes rows). */
interface Sequences {
  tokens: number[][];
  targets: number[][];
}

function sample(task: Task, seed: number, stream: number, n: number, P: number, V: number): Sequences {
  const rng = new Rng(seed, 100 + stream);
  const tokens = new Int32Array(n * P);
  const targets = new Int32Array(n * P);
  task.fill(rng, n, P, V, { tokens, targets });
  const rows = (a: Int32Array) => Array.from({ length: n }, (_, b) => Array.from(a.subarray(b * P, (b + 1) * P)));
  return { tokens: rows(tokens), targets: rows(targets) };
}

function cancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw Object.assign(new Error('cancelled'), { code: 'cancelled' });
}

/**
 * Cross-entropy of logits [batch, pos, V] against targets (IGNORE skipped), accumulated into
 * `acc` per position: sum and count.
 */
function accumulateLoss(logits: F32, targets: readonly (readonly number[])[], acc: { sum: Float64Array; count: Float64Array }): void {
  const [B, P, V] = logits.dims as [number, number, number];
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P; p++) {
      const t = targets[b]![p]!;
      if (t === IGNORE) continue;
      const o = (b * P + p) * V;
      let m = -Infinity;
      for (let v = 0; v < V; v++) m = Math.max(m, logits.data[o + v]!);
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(logits.data[o + v]! - m);
      acc.sum[p]! += m + Math.log(z) - logits.data[o + t]!;
      acc.count[p]! += 1;
    }
  }
}

function lossOf(acc: { sum: Float64Array; count: Float64Array }): { loss: number; posLoss: number[] } {
  let s = 0, c = 0;
  const posLoss = Array.from(acc.sum, (x, p) => {
    s += x;
    c += acc.count[p]!;
    return acc.count[p]! > 0 ? x / acc.count[p]! : 0;
  });
  return { loss: c > 0 ? s / c : NaN, posLoss };
}

function toRows(m: Mat): number[][] {
  return Array.from({ length: m.rows }, (_, i) => Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols)));
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function cfgInfo(cfg: HookedTransformerConfig): ModelConfigInfo {
  return {
    model_name: cfg.model_name, n_layers: cfg.n_layers, d_model: cfg.d_model, n_heads: cfg.n_heads, d_head: cfg.d_head, d_mlp: cfg.d_mlp, attn_only: cfg.attn_only === true,
    d_vocab: cfg.d_vocab, n_ctx: cfg.n_ctx, act_fn: cfg.act_fn, normalization_type: cfg.normalization_type, positional_embedding_type: cfg.positional_embedding_type,
  };
}

function isZero(t: F32 | undefined): boolean {
  return t !== undefined && t.data.every((x) => x === 0);
}

/** Default heading of an analysis result. */
function titleOf(s: TrainAnalysisSpec, extra = ''): string {
  if (s.title) return extra ? `${s.title} ${extra}` : s.title;
  const base: Record<TrainAnalysisSpec['kind'], string> = {
    loss: 'Loss on fresh sequences',
    attention_patterns: 'Mean attention pattern per layer',
    logit_contributions: "Per-component logit contributions to each position's target",
    fold_ln: 'LayerNorm-folded analysis model',
    qk_circuit: 'QK circuit W_E W_Q W_Kᵀ W_Eᵀ',
    ov_circuit: 'OV circuit',
    mlp_activations: 'MLP activations',
    ablation: 'Loss with each hook ablated',
  };
  return extra ? `${base[s.kind]} ${extra}` : base[s.kind];
}

/** The step of a checkpoint folder (trainer_state.json, else the folder's name). */
function stepOf(dir: string): number {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(dir, 'trainer_state.json'), 'utf8')) as { step?: unknown };
    if (typeof s.step === 'number') return s.step;
  } catch { /* not a trainer checkpoint */ }
  const m = /step-(\d+)$/.exec(dir);
  return m ? Number(m[1]) : 0;
}

export async function analyseCheckpoint(p: TrainAnalyseParams, opts: AnalyseOptions = {}): Promise<TrainAnalyseResult> {
  const t0 = performance.now();
  const { signal } = opts;
  const chunk = opts.chunk ?? 250;
  // A step folder, a checkpoint folder with `latest`, or any model folder.
  const dir = fs.existsSync(path.join(p.checkpoint, 'config.json')) ? path.resolve(p.checkpoint) : resolveCheckpoint(p.checkpoint);
  const loaded = loadModelFolder(dir);
  const cfg = loaded.cfg;
  const params = loaded.params;
  const rt = { device: 'cpu' as const, ...(p.threads !== undefined ? { threads: p.threads } : {}) };
  const model = new HookedTransformer(cfg, params, 'none', dir, rt);
  let folded: { model: HookedTransformer; notes: string[] } | null = null;
  const foldedModel = () => {
    if (!folded) {
      const f = applyProcessing(cfg, params, 'default');
      folded = { model: new HookedTransformer(f.cfg, f.params, 'default', `${dir} (LayerNorm folded)`, rt), notes: f.notes };
    }
    return folded;
  };
  try {
    const task = makeTask(p.task);
    const P = cfg.n_ctx, V = cfg.d_vocab;
    const nA = Math.max(1, ...p.analyses.map((a) => {
      switch (a.kind) {
        case 'loss': case 'attention_patterns': return a.sequences ?? 4000;
        case 'mlp_activations': return Math.max(a.sequences ?? 4000, (a.sequence ?? 0) + 1);
        case 'ablation': return a.sequences ?? 4000;
        case 'fold_ln': return a.sequences ?? 64;
        case 'logit_contributions': return (a.sequence ?? 0) + 1;
        default: return 1;
      }
    }));
    const A = sample(task, p.seed, 0, nA, P, V);
    let B: Sequences | null = null;
    const results: TrainAnalysisResult[] = [];

    /** Runs rows [0, n) of `s` in chunks; `fn` gets each chunk's result and its first row. */
    const chunks = async (s: Sequences, n: number, run: Parameters<HookedTransformer['run']>[1], fn: (r: Awaited<ReturnType<HookedTransformer['run']>>, from: number, rows: Tokens) => void, m = model) => {
      for (let i = 0; i < n; i += chunk) {
        cancelled(signal);
        const rows = s.tokens.slice(i, Math.min(n, i + chunk));
        fn(await m.run(rows, run), i, rows);
      }
    };
    const lossOn = async (s: Sequences, n: number, interventions: readonly Intervention[] = []) => {
      const acc = { sum: new Float64Array(P), count: new Float64Array(P) };
      await chunks(s, n, { interventions }, (r, from) => accumulateLoss(r.logits!, s.targets.slice(from, from + r.logits!.dims[0]!), acc));
      return lossOf(acc);
    };

    for (let ai = 0; ai < p.analyses.length; ai++) {
      const a = p.analyses[ai]!;
      cancelled(signal);
      opts.onProgress?.(titleOf(a), ai / p.analyses.length);
      const base = { index: ai };
      const [first, ta] = [results.length, performance.now()];
      switch (a.kind) {
        case 'loss': {
          const n = a.sequences ?? 4000;
          const l = await lossOn(A, n);
          results.push({ ...base, title: titleOf(a, `(${n} sequences)`), kind: 'loss', sequences: n, loss: l.loss, posLoss: l.posLoss });
          break;
        }
        case 'attention_patterns': {
          const n = a.sequences ?? 4000;
          const names = range(cfg.n_layers).map((l) => `blocks.${l}.attn.hook_pattern` as OutputName);
          const sum = range(cfg.n_layers).map(() => new Float64Array(P * P));
          await chunks(A, n, { names, noLogits: true }, (r) => {
            names.forEach((name, l) => {
              const t = r.cache.get(name)!; // [batch, head, q, k]
              const rowsN = t.dims[0]! * t.dims[1]!;
              for (let i = 0; i < rowsN; i++) for (let j = 0; j < P * P; j++) sum[l]![j]! += t.data[i * P * P + j]!;
            });
          });
          const patterns = sum.map((s) => Array.from({ length: P }, (_, q) => Array.from(s.subarray(q * P, (q + 1) * P), (x) => x / (n * cfg.n_heads))));
          results.push({ ...base, title: titleOf(a, `(mean over ${n} sequences${cfg.n_heads > 1 ? ' and the heads' : ''})`), kind: 'attention_patterns', sequences: n, nHeads: cfg.n_heads, patterns });
          break;
        }
        case 'logit_contributions':
          results.push({ ...base, ...(await logitContributions(model, params, A, a.sequence ?? 0, a)) });
          break;
        case 'fold_ln': {
          const n = a.sequences ?? 64;
          const f = foldedModel();
          let maxDiff = 0;
          for (let i = 0; i < n; i += chunk) {
            cancelled(signal);
            const rows = A.tokens.slice(i, Math.min(n, i + chunk));
            const [x, y] = [await model.forward(rows), await f.model.forward(rows)];
            maxDiff = Math.max(maxDiff, maxLogProbDiff(x, y));
          }
          const fcfg = f.model.cfg;
          const wpos = f.model.params.get('pos_embed.W_pos');
          const all = ['fold_ln', 'center_writing_weights', 'center_unembed', 'fold_value_biases'];
          results.push({
            ...base, title: titleOf(a), kind: 'fold_ln', sequences: n,
            steps: all.filter((s) => !f.notes.some((note) => note.startsWith(`${s} skipped`))),
            notes: f.notes,
            normalization: `${cfg.normalization_type ?? 'none'} → ${fcfg.normalization_type ?? 'none'}`,
            maxLogProbDiff: maxDiff,
            wPosNorm: wpos ? Math.hypot(...wpos.data) : null,
          });
          break;
        }
        case 'qk_circuit':
        case 'ov_circuit': {
          const w = a.weights ?? 'folded';
          const m = w === 'folded' ? foldedModel().model : model;
          const n = Math.min(V, a.tokens ?? 512);
          for (const l of a.layers ?? range(cfg.n_layers)) {
            for (const h of a.heads ?? range(cfg.n_heads)) {
              cancelled(signal);
              const head = cfg.n_heads > 1 ? ` L${l}H${h}` : ` layer ${l}`;
              if (a.kind === 'qk_circuit') {
                const fm = await fullQkCircuit(m, l, h);
                results.push({ ...base, title: titleOf(a, `—${head} (${w} weights)`), kind: 'qk_circuit', layer: l, head: h, weights: w, tokens: n, values: toRows(fm.materialize(range(n), range(n))) });
              } else if ((a.into ?? 'mlp_in') === 'mlp_in') {
                const ml = a.mlp_layer ?? l;
                // W_E [n, d_model] (W_V W_O W_in): the factored product's left factor gets W_E's rows.
                const fm = ovIntoMlp(m, l, h, ml);
                const WE = getParam(m.params, 'embed.W_E');
                const left = matmul64(mat(n, cfg.d_model, WE.data.subarray(0, n * cfg.d_model)), fm.A);
                results.push({ ...base, title: titleOf(a, `W_E W_V W_O W_in[${ml}] —${head} (${w} weights)`), kind: 'ov_circuit', layer: l, head: h, weights: w, into: 'mlp_in', mlpLayer: ml, tokens: n, values: toRows(matmul64(left, fm.B)) });
              } else {
                const fm = await fullOvCircuit(m, l, h);
                results.push({ ...base, title: titleOf(a, `W_E W_V W_O W_U —${head} (${w} weights)`), kind: 'ov_circuit', layer: l, head: h, weights: w, into: 'unembed', mlpLayer: null, tokens: n, values: toRows(fm.materialize(range(n), range(Math.min(cfg.d_vocab_out, n)))) });
              }
            }
          }
          break;
        }
        case 'mlp_activations': {
          const n = a.sequences ?? 4000;
          const ex = a.sequence ?? 0;
          const D = cfg.d_mlp!;
          for (const l of a.layers ?? range(cfg.n_layers)) {
            const name = `blocks.${l}.mlp.hook_post` as OutputName;
            const sum = new Float64Array(P * D);
            const fire = new Float64Array(P * D);
            let example: number[][] = [];
            await chunks(A, n, { names: [name], noLogits: true, stopAtLayer: l + 1 }, (r, from) => {
              const t = r.cache.get(name)!; // [batch, pos, d_mlp]
              const Bn = t.dims[0]!;
              for (let b = 0; b < Bn; b++) {
                const o = b * P * D;
                for (let j = 0; j < P * D; j++) {
                  const x = t.data[o + j]!;
                  sum[j]! += x;
                  if (x > 0) fire[j]! += 1;
                }
                if (from + b === ex) example = Array.from({ length: P }, (_, q) => Array.from(t.data.subarray(o + q * D, o + (q + 1) * D)));
              }
            });
            const grid = (s: Float64Array) => Array.from({ length: P }, (_, q) => Array.from(s.subarray(q * D, (q + 1) * D), (x) => x / n));
            const firing = grid(fire);
            let total = 0;
            for (const x of fire) total += x;
            results.push({ ...base, title: titleOf(a, `— layer ${l}`), kind: 'mlp_activations', layer: l, sequence: ex, sequences: n, example, mean: grid(sum), firing, firingRate: total / (n * P * D) });
          }
          break;
        }
        case 'ablation': {
          const n = a.sequences ?? 4000;
          B ??= sample(task, p.seed, 1, n, P, V);
          const kind = a.ablation ?? 'mean';
          const hooks = (a.hooks as HookName[] | undefined) ?? hookDictOrder(cfg).filter((h) => h !== 'hook_pos_embed' && !h.endsWith('hook_result'));
          let means: Map<string, F32> | null = null;
          if (kind === 'mean') {
            // cache[hook].mean(0) over the reference sequences, accumulated chunk by chunk.
            const sums = new Map<string, { dims: number[]; acc: Float64Array }>();
            await chunks(A, n, { names: hooks as OutputName[], noLogits: !hooks.some((h) => h.startsWith('ln_final.')) }, (r) => {
              for (const h of hooks) {
                const t = r.cache.get(h as OutputName)!;
                const per = t.data.length / t.dims[0]!;
                let s = sums.get(h);
                if (!s) sums.set(h, (s = { dims: t.dims.slice(1), acc: new Float64Array(per) }));
                for (let b = 0; b < t.dims[0]!; b++) for (let j = 0; j < per; j++) s.acc[j]! += t.data[b * per + j]!;
              }
            });
            means = new Map([...sums].map(([h, s]) => [h, f32(s.dims, Float32Array.from(s.acc, (x) => x / n))]));
          }
          const baseline = (await lossOn(B, n)).loss;
          const losses: number[] = [];
          for (let i = 0; i < hooks.length; i++) {
            const h = hooks[i]!;
            opts.onProgress?.(`${titleOf(a)}: ${h}`, (ai + i / hooks.length) / p.analyses.length);
            const iv: Intervention = kind === 'zero' ? { kind: 'zero', hook: h } : { kind: 'mean', over: 'supplied', hook: h, mean: means!.get(h)! };
            losses.push((await lossOn(B, n, [iv])).loss);
          }
          results.push({ ...base, title: titleOf(a, `(${kind}, ${n} sequences)`), kind: 'ablation', ablation: kind, sequences: n, baseline, hooks, losses });
          break;
        }
      }
      for (let k = first; k < results.length; k++) results[k]!.elapsedMs = performance.now() - ta;
    }
    opts.onProgress?.('done', 1);
    return { checkpoint: dir, step: stepOf(dir), cfg: cfgInfo(cfg), results, elapsedMs: performance.now() - t0 };
  } finally {
    await model.dispose();
    await (folded as { model: HookedTransformer } | null)?.model.dispose();
  }
}

/** max |log_softmax(x) - log_softmax(y)| over every row of two [batch, pos, V] logit tensors. */
function maxLogProbDiff(x: F32, y: F32): number {
  const V = x.dims[2]!;
  let worst = 0;
  for (let o = 0; o < x.data.length; o += V) {
    const lse = (t: F32) => {
      let m = -Infinity;
      for (let v = 0; v < V; v++) m = Math.max(m, t.data[o + v]!);
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(t.data[o + v]! - m);
      return m + Math.log(z);
    };
    const [lx, ly] = [lse(x), lse(y)];
    for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(x.data[o + v]! - lx - (y.data[o + v]! - ly)));
  }
  return worst;
}

/**
 * The no-positional-embedding experiment's "how different bits of the model directly contribute to the logits", for one
 * sequence: each residual component (embed, pos_embed when it is not zero, every attn_out and
 * mlp_out) centred over d_model, divided by ln_final's cached scale, times ln_final.w * W_U, then
 * centred over the vocabulary; the value at each scored position's target token.
 */
async function logitContributions(model: HookedTransformer, params: Params, A: Sequences, seq: number, a: TrainAnalysisSpec): Promise<Omit<Extract<TrainAnalysisResult, { kind: 'logit_contributions' }>, 'index'>> {
  const cfg = model.cfg;
  const comps: { label: string; hook: OutputName }[] = [{ label: 'embed', hook: 'hook_embed' as OutputName }];
  if (cfg.positional_embedding_type === 'standard' && !isZero(params.get('pos_embed.W_pos'))) comps.push({ label: 'pos_embed', hook: 'hook_pos_embed' as OutputName });
  for (let l = 0; l < cfg.n_layers; l++) {
    comps.push({ label: `${l}_attn_out`, hook: `blocks.${l}.hook_attn_out` as OutputName });
    if (!cfg.attn_only) comps.push({ label: `${l}_mlp_out`, hook: `blocks.${l}.hook_mlp_out` as OutputName });
  }
  const norm = cfg.normalization_type;
  const names = [...comps.map((c) => c.hook), ...(norm !== null ? ['ln_final.hook_scale' as OutputName] : [])];
  const tokens = A.tokens[seq]!;
  const r = await model.run([tokens], { names, noLogits: true });
  const P = tokens.length, D = cfg.d_model, V = cfg.d_vocab_out;
  const WU = unembedMatrix(params); // [d_model, d_vocab_out] (a trained model's own, or built for a tied one: small models only)
  const w = norm === 'LN' ? getParam(params, 'ln_final.w').data : null;
  const scale = norm !== null ? r.cache.get('ln_final.hook_scale' as OutputName)!.data : null; // [1, pos, 1]
  const targets = A.targets[seq]!;
  const positions = range(P).filter((q) => targets[q] !== IGNORE);
  const x = new Float64Array(D);
  const values = comps.map((c) => {
    const t = r.cache.get(c.hook)!.data; // [1, pos, d_model]
    return positions.map((q) => {
      let mean = 0;
      for (let d = 0; d < D; d++) mean += t[q * D + d]!;
      mean = norm !== null ? mean / D : 0;
      const s = scale ? scale[q]! : 1;
      for (let d = 0; d < D; d++) x[d] = ((t[q * D + d]! - mean) / s) * (w ? w[d]! : 1);
      // logits over the vocabulary of this component, centred; we need the target's and the mean.
      let sumAll = 0;
      let target = 0;
      const tgt = targets[q]!;
      for (let v = 0; v < V; v++) {
        let z = 0;
        for (let d = 0; d < D; d++) z += x[d]! * WU.data[d * V + v]!;
        sumAll += z;
        if (v === tgt) target = z;
      }
      return target - sumAll / V;
    });
  });
  return {
    title: titleOf(a, `(sequence ${seq})`),
    kind: 'logit_contributions',
    sequence: seq,
    tokens: [...tokens],
    positions,
    targets: positions.map((q) => targets[q]!),
    components: comps.map((c) => c.label),
    values,
  };
}
