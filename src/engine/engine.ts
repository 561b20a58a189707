/**
 * The engine as a service: one loaded model (weights processed, sessions compiled lazily) plus
 * its tokenizer, and the operations the CLI, the worker and the extension need. Pure Node.
 */
import * as path from 'node:path';
import { loadModel, type LoadProgress } from './model/load.js';
import { builtinToy, embeddedModelDir, isBuiltin } from './model/builtin.js';
import { applyProcessing } from './weights/process.js';
import { HookedTransformer, type Tokens } from './model/hookedTransformer.js';
import { loadTokenizerForModel, toTokens, toSingleToken, tokensToStrings, type Tokenizer } from './model/tokenizer.js';
import type { Processing } from './model/params.js';
import type { Device } from './backends/onnx/runtime.js';
import { ActivationCache, tokensToResidualDirections } from './cache/activationCache.js';
import { headDla, layerDla, logitDiff, logitLens, loss, projectRows, rankOf, topK } from './analysis/basic.js';
import { logitDiffMetric, normalizedMetric, patchHeadAllPos, patchResidPreByLayerPos } from './analysis/patching.js';
import { normalizationUndefined } from './analysis/metrics.js';
import { nonFiniteWarning } from './tensor/stats.js';
import { allHooks, hookAxes, hookHeads } from './hooks/hooks.js';
import type { AnalyzeResult, AttributionResult, MeasureTokensResult, ModelInfo, TestPromptResult } from '../protocol/engine.js';

export interface EngineLoadOptions {
  processing?: Processing;
  device?: Device;
  threads?: number;
  allowDownload?: boolean;
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
}

export class LoadedEngine {
  /** Problems found while loading (non-finite weights), shown by `info`, the side bar and runs. */
  readonly warnings: string[] = [];
  /**
   * Where load's time went, in ms: `read` (files read and converted to TransformerLens's layout,
   * or the built-in model made), `scan` (non-finite check), `process` (weight processing),
   * `tokenizer`. The cold-start bench reports them.
   */
  readonly phaseMs: Record<string, number> = {};
  /** The same phases' CPU time (user + system, all threads), which a busy host does not inflate as it does wall time. */
  readonly phaseCpuMs: Record<string, number> = {};

  private constructor(readonly spec: string, readonly model: HookedTransformer, readonly tokenizer: Tokenizer, readonly loadMs: number) {}

  static async load(spec: string, opts: EngineLoadOptions = {}): Promise<LoadedEngine> {
    const t0 = performance.now();
    const phaseMs: Record<string, number> = {};
    const phaseCpuMs: Record<string, number> = {};
    let tPhase = t0;
    let cpuPhase = process.cpuUsage();
    const phase = (name: string): void => {
      const now = performance.now();
      const cpu = process.cpuUsage();
      phaseMs[name] = now - tPhase;
      phaseCpuMs[name] = (cpu.user - cpuPhase.user + cpu.system - cpuPhase.system) / 1000;
      tPhase = now;
      cpuPhase = cpu;
    };
    const processing = opts.processing ?? 'default';
    const rt = { device: opts.device ?? 'auto', threads: opts.threads } as const;
    const embedded = spec === 'builtin:default' ? embeddedModelDir() : null;
    if (isBuiltin(spec) && !embedded) {
      if (spec !== 'builtin:default' && spec !== 'builtin:toy') throw new Error(`unknown built-in model ${JSON.stringify(spec)}: use builtin:default or builtin:toy`);
      const b = builtinToy();
      phase('read');
      const { cfg, params } = applyProcessing(b.cfg, b.params, processing, { consume: true });
      phase('process');
      const eng = new LoadedEngine(spec, new HookedTransformer(cfg, params, processing, b.source, rt), b.tokenizer, performance.now() - t0);
      Object.assign(eng.phaseMs, phaseMs);
      Object.assign(eng.phaseCpuMs, phaseCpuMs);
      return eng;
    }
    const loaded = await loadModel(embedded ?? spec, { allowDownload: opts.allowDownload ?? true, onProgress: opts.onProgress, signal: opts.signal });
    phase('read');
    // Scanned as loaded: processing would spread a NaN into other tensors and blur where it is.
    const nonFinite = nonFiniteWarning(loaded.params);
    phase('scan');
    // The loader's tensors are this load's alone: processed in place, not copied first.
    const { cfg, params } = applyProcessing(loaded.cfg, loaded.params, processing, { consume: true });
    phase('process');
    const folder = loaded.files.length ? path.dirname(loaded.files[0]!) : spec;
    const tokenizer = loadTokenizerForModel(folder, cfg);
    phase('tokenizer');
    const model = new HookedTransformer(cfg, params, processing, loaded.source, rt);
    const eng = new LoadedEngine(spec, model, tokenizer, performance.now() - t0);
    Object.assign(eng.phaseMs, phaseMs);
    Object.assign(eng.phaseCpuMs, phaseCpuMs);
    if (nonFinite) eng.warnings.push(nonFinite);
    return eng;
  }

  info(): ModelInfo {
    const cfg = this.model.cfg;
    let bytes = 0;
    for (const t of this.model.params.values()) bytes += t.data.byteLength;
    return {
      spec: this.spec,
      source: this.model.source,
      cfg: {
        model_name: cfg.model_name, n_layers: cfg.n_layers, d_model: cfg.d_model, n_heads: cfg.n_heads, d_head: cfg.d_head,
        d_mlp: cfg.d_mlp, attn_only: cfg.attn_only === true, d_vocab: cfg.d_vocab, n_ctx: cfg.n_ctx, act_fn: cfg.act_fn, normalization_type: cfg.normalization_type,
        positional_embedding_type: cfg.positional_embedding_type, original_architecture: cfg.original_architecture,
        n_key_value_heads: cfg.n_key_value_heads, num_experts: cfg.num_experts, experts_per_token: cfg.experts_per_token,
      },
      processing: this.model.processing,
      device: this.model.runtime.device,
      tokenizer: this.tokenizer.kind,
      paramBytes: bytes,
      hooks: allHooks(cfg).map((name) => {
        const heads = hookHeads(name, cfg);
        return { name, axes: [...hookAxes(name, cfg)], ...(heads !== cfg.n_heads ? { heads } : {}) };
      }),
      loadMs: this.loadMs,
      ...(this.warnings.length ? { warnings: [...this.warnings] } : {}),
    };
  }

  tokenize(texts: string[], prependBos?: boolean): { tokens: number[][]; strTokens: string[][] } {
    const tokens = texts.map((t) => toTokens(this.tokenizer, t, { prependBos, nCtx: this.model.cfg.n_ctx, truncate: false }).tokens[0]!);
    return { tokens, strTokens: tokens.map((row) => tokensToStrings(this.tokenizer, row)) };
  }

  /** TransformerLens's test_prompt: top-k after the prompt, the answer's rank, per-token loss. */
  async testPrompt(prompt: string, opts: { answer?: string; prependBos?: boolean; k?: number } = {}): Promise<TestPromptResult> {
    if (prompt.trim() === '') throw new Error('the prompt is empty: write some text to inspect');
    const { tokens, strTokens } = this.tokenize([prompt], opts.prependBos);
    const row = tokens[0]!;
    const logits = await this.model.forward([row]);
    const [, P, V] = logits.dims as [number, number, number];
    const last = logits.data.subarray((P - 1) * V, P * V);
    const tk = topK(last, opts.k ?? 10).map((t) => ({ token: t.token, str: tokensToStrings(this.tokenizer, [t.token])[0]!, logit: t.logit, prob: t.prob }));
    const perTok = P > 1 ? Array.from(loss(logits, [row], { per_token: true }).data) : [];
    const res: TestPromptResult = { tokens: row, strTokens: strTokens[0]!, topK: tk, perTokenLoss: perTok };
    if (opts.answer !== undefined) {
      const id = toSingleToken(this.tokenizer, opts.answer);
      const probs = softmax(last);
      res.answer = { token: id, str: opts.answer, rank: rankOf(last, id), logit: last[id]!, prob: probs[id]! };
    }
    return res;
  }

  /**
   * Token counts of texts with no context-length limit and no throwing: the editor's diagnostics
   * need to know *that* a prompt is too long or cannot be tokenized, per text.
   */
  measureTokens(texts: string[], prependBos: boolean): MeasureTokensResult {
    const items = texts.map((t) => {
      try {
        const ids = toTokens(this.tokenizer, t, { prependBos, truncate: false }).tokens[0] ?? [];
        return { count: ids.length, strTokens: tokensToStrings(this.tokenizer, ids) };
      } catch (e) {
        return { count: 0, strTokens: [], error: e instanceof Error ? e.message : String(e) };
      }
    });
    return { n_ctx: this.model.cfg.n_ctx, items };
  }

  /**
   * Direct logit attribution (per head, per residual component) and the logit lens of one prompt
   * at its last position, toward the answer's unembedding direction W_U[:, answer] or, with a
   * wrong answer, W_U[:, answer] - W_U[:, wrong] (TransformerLens's tokens_to_residual_directions;
   * each component is divided by the cached final LN scale, see analysis/basic.ts). Without an
   * answer, the model's top prediction is attributed.
   */
  async attribution(prompt: string, opts: { answer?: string; wrong?: string; prependBos?: boolean } = {}, signal?: AbortSignal): Promise<AttributionResult> {
    if (prompt.trim() === '') throw new Error('the prompt is empty: write some text to attribute');
    const cfg = this.model.cfg;
    const row = toTokens(this.tokenizer, prompt, { prependBos: opts.prependBos, truncate: false }).tokens[0]!;
    if (row.length > cfg.n_ctx) throw new Error(`the prompt is ${row.length} tokens, longer than the model's context of ${cfg.n_ctx} tokens (n_ctx); shorten it`);
    const single = (s: string | undefined, what: string): number | undefined => {
      if (s === undefined) return undefined;
      try {
        return toSingleToken(this.tokenizer, s);
      } catch (e) {
        throw new Error(`the ${what} must be a single token: ${(e as Error).message}`);
      }
    };
    const answerId = single(opts.answer, 'answer');
    const wrongId = single(opts.wrong, 'wrong answer');
    if (wrongId !== undefined && answerId === undefined) throw new Error('a wrong answer needs an answer: write -> " answer" | " wrong"');
    const run = await this.model.runWithCache([row]);
    if (signal?.aborted) throw new Error('cancelled');
    const logits = run.logits!;
    const V = logits.dims[2]!;
    const last = logits.data.subarray((row.length - 1) * V, row.length * V);
    const probs = softmax(last);
    const a = answerId ?? topK(last, 1)[0]!.token;
    const describe = (id: number) => ({ token: id, str: tokensToStrings(this.tokenizer, [id])[0]!, logit: last[id]!, prob: probs[id]!, rank: rankOf(last, id) });
    const cache = new ActivationCache(run.cache, cfg, this.model.params);
    const layerLabels = cache.decomposeResid(-1, { pos_slice: -1 }).labels;
    let head: number[][];
    let layer: number[];
    let lens: { labels: string[]; values: number[] };
    if (wrongId !== undefined) {
      const pairs: [number, number][] = [[a, wrongId]];
      head = headDla(cache, pairs);
      layer = layerDla(cache, pairs);
      lens = logitLens(cache, pairs);
    } else {
      // One answer: the same decompositions projected on W_U[:, answer] alone (batch of 1).
      const attrs = (stack: Parameters<ActivationCache['logitAttrs']>[0]) => Array.from(cache.logitAttrs(stack, [a], null, { pos_slice: -1 }).data);
      const perHead = attrs(cache.stackHeadResults(-1, { pos_slice: -1 }).stack);
      head = Array.from({ length: cfg.n_layers }, (_, l) => perHead.slice(l * cfg.n_heads, (l + 1) * cfg.n_heads));
      layer = attrs(cache.decomposeResid(-1, { pos_slice: -1 }).stack);
      // The logit lens re-normalises each stream with ln_final (TransformerLens 3), see analysis/basic.ts.
      const acc = cache.accumulatedResid(-1, { incl_mid: !cfg.attn_only, pos_slice: -1, apply_ln: true, recompute_ln: true });
      lens = { labels: acc.labels, values: Array.from(projectRows(acc.stack, tokensToResidualDirections(this.model.params, [a])).data) };
    }
    if (signal?.aborted) throw new Error('cancelled');
    const total = wrongId !== undefined ? last[a]! - last[wrongId]! : last[a]!;
    // The parts of the total no residual component writes: the unembedding bias, and (un-folded
    // final norm only) its weight and bias, which apply_ln_to_stack leaves out as TransformerLens does.
    const bU = this.model.params.get('unembed.b_U')?.data;
    const unembedBias = bU ? bU[a]! - (wrongId !== undefined ? bU[wrongId]! : 0) : 0;
    const folded = cfg.normalization_type !== 'LN' && cfg.normalization_type !== 'RMS';
    const sum = layer.reduce((x, y) => x + y, 0);
    const res: AttributionResult = {
      tokens: row,
      strTokens: tokensToStrings(this.tokenizer, row),
      answer: { ...describe(a), predicted: answerId === undefined },
      layerLabels,
      layerDla: layer,
      headDla: head,
      logitLens: lens,
      total,
      unembedBias,
      lnFinalTerm: folded ? null : total - sum - unembedBias,
    };
    if (wrongId !== undefined) res.wrong = describe(wrongId);
    return res;
  }

  async analyze(tokens: Tokens, corrupted: Tokens, answers: [number, number][], signal?: AbortSignal): Promise<AnalyzeResult> {
    return analyzeModel(this.model, tokens, corrupted, answers, signal);
  }

  dispose(): Promise<void> {
    return this.model.dispose();
  }
}

/** The fields of the reference fixture's expected.json, for one model and processing. */
export async function analyzeModel(model: HookedTransformer, tokens: Tokens, corrupted: Tokens, answers: [number, number][], signal?: AbortSignal): Promise<AnalyzeResult> {
  const [B, P] = model.checkTokens(tokens);
  const [B2, P2] = model.checkTokens(corrupted);
  if (B !== B2 || P !== P2) throw new Error(`corrupted_tokens are [${B2}, ${P2}] but tokens are [${B}, ${P}]; they must have the same shape`);
  if (answers.length !== B) throw new Error(`answers has ${answers.length} pairs but there are ${B} prompts`);
  answers.forEach((a, i) => {
    if (!Array.isArray(a) || a.length !== 2 || a.some((t) => !Number.isInteger(t) || t < 0 || t >= model.cfg.d_vocab_out)) {
      throw new Error(`answers[${i}] must be [correct, wrong] token ids in [0, ${model.cfg.d_vocab_out - 1}], got ${JSON.stringify(a)}`);
    }
  });
  const clean = await model.runWithCache(tokens);
  const cache = new ActivationCache(clean.cache, model.cfg, model.params);
  const corrLogits = await model.forward(corrupted);
  const ld = logitDiff(clean.logits!, answers);
  const cld = logitDiff(corrLogits, answers);
  // One rule (metrics.ts): where normalising is undefined the tables hold raw logit differences, said so.
  const why = normalizationUndefined(ld, cld);
  const metric = why ? logitDiffMetric(answers) : normalizedMetric(logitDiffMetric(answers), ld, cld);
  return {
    loss: loss(clean.logits!, tokens),
    logit_diff: ld,
    corrupted_logit_diff: cld,
    head_dla: headDla(cache, answers),
    layer_dla: layerDla(cache, answers),
    logit_lens: logitLens(cache, answers),
    patching_metric: why ? 'raw logit difference' : 'normalised logit difference',
    normalization_undefined: why,
    resid_pre_patching: await patchResidPreByLayerPos(model, tokens, corrupted, metric, { signal }),
    head_z_patching: await patchHeadAllPos(model, tokens, corrupted, metric, 'z', { signal }),
  };
}

function softmax(x: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of x) if (v > m) m = v;
  const out = new Float64Array(x.length);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += out[i] = Math.exp(x[i]! - m);
  for (let i = 0; i < x.length; i++) out[i]! /= s;
  return out;
}
