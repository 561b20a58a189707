/**
 * Runs a checked experiment: every analysis on every prompt group, with progress and
 * cancellation. Each result carries its numbers as plain JSON, heatmaps in the panels' format
 * (HeatmapData: rows x columns, labelled axes, values; the report and the webview draw the same
 * data), optional colored-token views and tables, large tensors for safetensors, and the checks
 * of any `expect` block. A cancelled run keeps the results (and partial sweep) computed so far.
 */
import type { HookedTransformer } from '../model/hookedTransformer.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { toSingleToken, toTokens, tokensToStrings } from '../model/tokenizer.js';
import type { ExperimentBlock, HeatmapData } from '../../protocol/webview.js';
import type { TestPromptResult } from '../../protocol/engine.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { ActivationCache } from '../cache/activationCache.js';
import { confinedReader, readNamedFile } from './files.js';
import { headDla, layerDla, logitDiffs, logitLens, rankOf, topK } from '../analysis/basic.js';
import { answerProbMetric, logitDiffMetric, normalizationUndefined, normalizedMetric, type Metric } from '../analysis/metrics.js';
import { runPatchSweep, type PatchSweepSpec, type SweepResult } from '../analysis/patching.js';
import { SweepAbortedError } from '../analysis/sweep.js';
import { attentionPatterns, detectHeads, repeatedTokenHeadScores } from '../analysis/heads.js';
import { compositionScores, copyingScore, fullOvCircuit, fullQkCircuit, ovCopyingScores } from '../analysis/circuits.js';
import { maxActivatingLines, neuronActivations, neuronDla } from '../analysis/neurons.js';
import { ablateEveryHook } from '../analysis/ablation.js';
import { causalTrace } from '../analysis/tracing.js';
import { pathPatch } from '../analysis/pathPatching.js';
import { attributionPatching, type AttributionResult } from '../analysis/attribution.js';
import type { HookName } from '../hooks/hooks.js';
import { findSubject, parseHead, type GroupTokens, type ResolvedAnalysis, type ResolvedExperiment } from './parse.js';
import { PATCHING_KINDS, type AnalysisKind, type AnalysisSpec, type GroupExpectation } from './schema.js';
import * as path from 'node:path';
import { pearson } from '../tensor/stats.js';
import { featureAblation, featureActivations, greedyContinue, steeringIntervention, topFeaturesPerToken } from '../analysis/sae.js';
import { loss as lmLoss } from '../analysis/basic.js';
import { saeAttribution } from '../analysis/saeAttribution.js';
import { loadSae } from '../sae/load.js';
import { loadSaeFolder, type Sae } from '../sae/sae.js';

export interface Check {
  what: string;
  expected: number;
  actual: number;
  tolerance: number;
  ok: boolean;
}

export interface AnalysisResult {
  /** Index of the analysis in the file. */
  index: number;
  kind: AnalysisKind;
  group: string | null;
  title: string;
  /** The result's numbers (plain JSON). */
  data: Record<string, unknown>;
  /** What the panel and the report draw (the panels' ExperimentBlock format). */
  blocks: ExperimentBlock[];
  checks?: Check[];
  /** Large tensors, stored in tensors.safetensors as `<index>/<group>/<name>`. */
  tensors?: Record<string, F32>;
  /** The analysis was cancelled part-way: NaN marks cells not computed. */
  partial?: boolean;
  notes?: string[];
  elapsedMs: number;
}

export interface ExperimentResults {
  results: AnalysisResult[];
  cancelled: boolean;
  elapsedMs: number;
  /** Problems with the model that every result inherits (non-finite weights), said in the panel and report. */
  warnings?: string[];
}

export interface RunProgress {
  /** 'start' of an analysis, 'progress' within it (with fraction), 'done' when it finished. */
  phase: 'start' | 'progress' | 'done';
  /** Analyses finished, and in all. */
  done: number;
  total: number;
  message: string;
  /** Progress within the current analysis, 0..1, when it reports one. */
  fraction?: number;
}

export interface RunOptions {
  signal?: AbortSignal;
  onProgress?: (p: RunProgress) => void;
  /** Called with each analysis as soon as it finished completely (the store writes it at once). */
  onResult?: (group: number, r: AnalysisResult) => void;
  /** A result saved by an interrupted run of the same experiment: used instead of computing it again. */
  reuse?: (group: number, index: number) => AnalysisResult | undefined;
  /** The loaded model's warnings (LoadedEngine.warnings), carried into the results. */
  warnings?: readonly string[];
}

const DEFAULT_TITLES: Record<AnalysisKind, string> = {
  test_prompt: 'Top predictions',
  logit_diff: 'Logit difference',
  layer_dla: 'Logit difference from each layer (direct logit attribution)',
  head_dla: 'Logit difference from each head (direct logit attribution)',
  neuron_dla: 'Direct logit attribution of neurons',
  logit_lens: 'Logit difference from the accumulated residual stream (logit lens)',
  attention: 'Attention patterns',
  head_scores: 'Head scores on repeated random tokens',
  detect_heads: 'Head detector',
  circuits: 'QK and OV circuits',
  copying_scores: 'Copying scores of the full OV circuits',
  composition: 'Composition scores',
  neuron_activations: 'Neuron activations',
  ablation: 'Loss with each hook ablated',
  patch: 'Activation patching',
  patch_heads: 'Activation patching of heads',
  patch_neurons: 'Activation patching of neurons',
  causal_trace: 'Causal tracing',
  path_patch: 'Path patching',
  sae_features: 'SAE features per token',
  sae_ablate: 'Ablating SAE features',
  sae_steer: 'Steering with an SAE feature',
  sae_attribution: 'Attribution patching of SAE features',
};

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const headLabels = (L: number, H: number) => range(L * H).map((i) => `L${Math.floor(i / H)}H${i % H}`);

function heatmap(title: string, rowAxis: string, colAxis: string, rowLabels: string[], colLabels: string[], values: number[][], valueLabel: string): HeatmapData {
  return { title, rowAxis, colAxis, rowLabels, colLabels, values, valueLabel };
}

const heat = (data: HeatmapData, scale: 'diverging' | 'sequential' = 'diverging', square = false): ExperimentBlock => ({ type: 'heatmap', data, scale, ...(square ? { square } : {}) });
const bars = (title: string, labels: string[], values: number[], valueLabel: string): ExperimentBlock => ({ type: 'bars', title, labels, values, valueLabel });
const line = (title: string, labels: string[], values: number[], xAxis: string, yAxis: string, reference?: { value: number; label: string }): ExperimentBlock => ({ type: 'line', title, labels, values, xAxis, yAxis, ...(reference ? { reference } : {}) });
const table = (title: string, columns: string[], rows: (string | number | null)[][]): ExperimentBlock => ({ type: 'table', title, columns, rows });

function rows2d(values: ArrayLike<number>, nRows: number, nCols: number): number[][] {
  return range(nRows).map((r) => Array.from({ length: nCols }, (_, c) => values[r * nCols + c]!));
}

function check(what: string, expected: number, actual: number, tolerance: number): Check {
  return { what, expected, actual, tolerance, ok: Math.abs(actual - expected) <= tolerance };
}

/** torch.topk of a flat list: indices and values, largest first. */
function topIndices(values: readonly number[], k: number, by: (v: number) => number = (v) => v): number[] {
  return range(values.length).filter((i) => !Number.isNaN(values[i]!)).sort((a, b) => by(values[b]!) - by(values[a]!) || a - b).slice(0, k);
}

interface GroupContext {
  name: string | null;
  texts: { clean: string[]; corrupted: string[] | null };
  tokens: GroupTokens;
  /** Position labels `${token}_${i}` of the first prompt (the original notebooks' x axis). */
  posLabels: string[];
  metric: Metric | null;
  expect?: GroupExpectation;
  /** Clean and corrupted metric values, when both exist. */
  clean?: number;
  corrupted?: number;
  /** Normalisation was asked for but is undefined for this group (metrics.ts's one rule): why. */
  unnormalised?: string;
  /** The clean or corrupted metric is NaN/Inf: said on every result of the group instead of a bare null. */
  nonFinite?: string;
  /** Attribution patching of the group, computed once for every sweep that asks for it. */
  attribution?: Promise<AttributionResult>;
}

export async function runExperiment(x: ResolvedExperiment, model: HookedTransformer, tok: Tokenizer, groupTokens: GroupTokens[], opts: RunOptions = {}): Promise<ExperimentResults> {
  // The experiment's SAEs are spliced into every run of every analysis, then detached.
  const attached = await Promise.all((x.spec.saes ?? []).map(async (e) => ({ sae: await experimentSae(x, e.sae), useErrorTerm: e.errorTerm === true })));
  if (attached.length === 0) return runAttached(x, model, tok, groupTokens, opts);
  const before = [...model.attachedSaes()];
  for (const s of attached) model.attachSae(s);
  try {
    return await runAttached(x, model, tok, groupTokens, opts);
  } finally {
    model.detachSaes();
    for (const s of before) model.attachSae(s);
  }
}

async function runAttached(x: ResolvedExperiment, model: HookedTransformer, tok: Tokenizer, groupTokens: GroupTokens[], opts: RunOptions): Promise<ExperimentResults> {
  const t0 = performance.now();
  const results: AnalysisResult[] = [];
  const total = x.groups.length * x.analyses.length;
  let done = 0;
  for (const [gi, g] of x.groups.entries()) {
    const gt = groupTokens[gi]!;
    const ctx: GroupContext = {
      name: g.name,
      texts: { clean: g.prompts.map((p) => p.prompt), corrupted: gt.corrupted ? g.prompts.map((p) => p.corrupted!) : null },
      tokens: gt,
      posLabels: gt.strTokens.map((s, i) => `${s}_${i}`),
      metric: null,
      expect: g.expect,
    };
    if (gt.answers && gt.answers.every((a) => a[0] >= 0)) {
      const base = x.metric === 'logit_diff' ? (gt.answers.every((a) => a[1] >= 0) ? logitDiffMetric(gt.answers) : null) : answerProbMetric(gt.answers.map((a) => a[0]), { log: x.metric === 'answer_logprob' });
      if (base) {
        try {
          ctx.clean = await metricOf(model, gt.clean, base, opts.signal);
          if (gt.corrupted) ctx.corrupted = await metricOf(model, gt.corrupted, base, opts.signal);
        } catch (e) {
          if (opts.signal?.aborted) return { results, cancelled: true, elapsedMs: performance.now() - t0 };
          throw e;
        }
        const odd = ([['clean', ctx.clean], ['corrupted', ctx.corrupted]] as const).filter(([, v]) => v !== undefined && !Number.isFinite(v));
        if (odd.length) ctx.nonFinite = `the ${odd.map(([k, v]) => `${k} metric is ${v}`).join(' and the ')}: the model's outputs are not finite numbers${opts.warnings?.length ? ' (see the warning about its weights)' : ''}, so values computed from them show as n/a`;
        ctx.unnormalised = x.normalize && ctx.corrupted !== undefined ? (normalizationUndefined(ctx.clean, ctx.corrupted) ?? undefined) : undefined;
        ctx.metric = x.normalize && ctx.corrupted !== undefined && !ctx.unnormalised ? normalizedMetric(base, ctx.clean, ctx.corrupted) : base;
      }
    }
    for (const a of x.analyses) {
      if (opts.signal?.aborted) return { results, cancelled: true, elapsedMs: performance.now() - t0 };
      const saved = opts.reuse?.(gi, a.index);
      if (saved) {
        results.push(saved);
        done++;
        opts.onProgress?.({ phase: 'done', done, total, message: `${saved.title} (saved by the interrupted run)` });
        continue;
      }
      const kindTitle = a.spec.kind === 'ablation' ? `Loss with each hook ${a.spec.ablation ?? 'mean'}-ablated` : DEFAULT_TITLES[a.spec.kind];
      const title = `${g.name !== null ? `${g.name}: ` : ''}${a.spec.title ?? kindTitle}`;
      opts.onProgress?.({ phase: 'start', done, total, message: title });
      const ta = performance.now();
      const res: AnalysisResult = { index: a.index, kind: a.spec.kind, group: g.name, title, data: {}, blocks: [], elapsedMs: 0 };
      const progress = (d: number, t: number) => opts.onProgress?.({ phase: 'progress', done, total, message: title, fraction: d / t });
      try {
        await runAnalysis(a, res, ctx, x, model, tok, { signal: opts.signal, onProgress: progress });
      } catch (e) {
        // An analysis that stops on the signal without a partial result (head scores, circuits):
        // the run is cancelled with the analyses finished before it.
        if (!(e instanceof SweepAbortedError) && opts.signal?.aborted) return { results, cancelled: true, elapsedMs: performance.now() - t0 };
        if (!(e instanceof SweepAbortedError)) throw e;
        res.partial = true;
        fillFromPartial(res, e.partial, ctx, model);
        res.elapsedMs = performance.now() - ta;
        results.push(res);
        return { results, cancelled: true, elapsedMs: performance.now() - t0 };
      }
      if (ctx.nonFinite) (res.notes ??= []).push(`Not finite: ${ctx.nonFinite}.`);
      if (ctx.unnormalised && PATCHING_KINDS.has(a.spec.kind)) {
        (res.notes ??= []).push(`Normalised values are undefined for ${g.name !== null ? `group ${JSON.stringify(g.name)}` : 'these prompts'}: ${ctx.unnormalised}. The figures show the raw ${metricLabel(x, { ...ctx, unnormalised: undefined }).replace(/^normalised /, '')}, labelled raw.`);
      }
      // Two analyses of a group with one title (the same kind twice) stay tellable apart in the
      // panel's and report's lists of contents.
      if (results.some((r) => r.group === res.group && r.title === res.title)) res.title = `${res.title} (analysis ${a.index + 1})`;
      res.elapsedMs = performance.now() - ta;
      results.push(res);
      opts.onResult?.(gi, res);
      // The analysis's session variants (and their memory arenas) are not needed by the next one.
      await model.releaseVariants();
      done++;
      opts.onProgress?.({ phase: 'done', done, total, message: res.title });
    }
  }
  return { results, cancelled: false, elapsedMs: performance.now() - t0, ...(opts.warnings?.length ? { warnings: [...opts.warnings] } : {}) };
}

/** Token positions per run of metricOf (as a sweep's runs hold). */
const METRIC_POSITIONS = 4096;

/**
 * The metric of a group's prompts: with a last-position reader, the prompts run a bounded number
 * at a time (the signal checked between runs) and only the last position's logits of the
 * metric's tokens are kept, [batch, K]; otherwise one forward pass of every prompt.
 */
async function metricOf(model: HookedTransformer, tokens: number[][], metric: Metric, signal?: AbortSignal): Promise<number> {
  const lp = metric.lastPosition;
  if (!lp) return metric(await model.forward(tokens));
  const per = Math.max(1, Math.floor(METRIC_POSITIONS / Math.max(1, tokens[0]!.length)));
  const parts: Float32Array[] = [];
  let K = 0;
  for (let b0 = 0; b0 < tokens.length; b0 += per) {
    signal?.throwIfAborted();
    const logits = (await model.run(tokens.slice(b0, b0 + per), { names: [], lastPositionOnly: true, vocab: lp.vocab ?? undefined })).logits!; // [rows, 1, K]
    K = logits.dims[2]!;
    parts.push(logits.data);
  }
  const last = new Float32Array(tokens.length * K);
  let at = 0;
  for (const p of parts) {
    last.set(p, at);
    at += p.length;
  }
  return lp.score(f32([tokens.length, K], last));
}

function metricLabel(x: ResolvedExperiment, ctx: GroupContext): string {
  const base = x.metric === 'logit_diff' ? 'logit diff' : x.metric === 'answer_prob' ? 'answer prob' : 'answer log-prob';
  if (!x.normalize || ctx.corrupted === undefined) return base;
  return ctx.unnormalised ? `raw ${base} (normalisation undefined)` : `normalised ${base}`;
}

/** Heatmap of a patching sweep result, in the original notebooks' layouts. */
function sweepHeatmaps(r: SweepResult, title: string, ctx: GroupContext, model: HookedTransformer, valueLabel: string): HeatmapData[] {
  const H = model.cfg.n_heads;
  const [A, B, C] = r.dims;
  const layerLabels = r.coords[0]!.map(String);
  switch (r.axes.join(',')) {
    case 'layer,pos': return [heatmap(title, 'layer', 'position', layerLabels, ctx.posLabels, rows2d(r.values, A!, B!), valueLabel)];
    case 'layer,head': return [heatmap(title, 'layer', 'head', layerLabels, range(H).map(String), rows2d(r.values, A!, B!), valueLabel)];
    case 'layer,pos,head': {
      // Rows = heads (L{l}H{h}), columns = positions.
      const rows = r.coords[0]!.flatMap((l) => range(H).map((h) => `L${l}H${h}`));
      const vals = range(A! * C!).map((i) => range(B!).map((p) => r.values[(Math.floor(i / C!) * B! + p) * C! + (i % C!)]!));
      return [heatmap(title, 'head', 'position', rows, ctx.posLabels, vals, valueLabel)];
    }
    case 'layer,head,dest_pos': {
      const rows = r.coords[0]!.flatMap((l) => range(H).map((h) => `L${l}H${h}`));
      return [heatmap(title, 'head', 'destination position', rows, ctx.posLabels, rows2d(r.values, A! * B!, C!), valueLabel)];
    }
    default: return [heatmap(title, r.axes[0]!, 'neuron', [title], r.coords[0]!.map((n) => `N${n}`), [Array.from(r.values)], valueLabel)];
  }
}

function cellChecks(r: SweepResult, expect: { cells?: { at: number[]; value: number }[]; tolerance?: number } | undefined): Check[] | undefined {
  if (!expect?.cells) return undefined;
  const tol = expect.tolerance ?? 1e-3;
  return expect.cells.map((c) => {
    // `at` names coordinates (layer numbers, neuron ids), mapped to indices of the result.
    let flat = 0;
    let ok = c.at.length === r.dims.length;
    c.at.forEach((v, i) => {
      const k = r.coords[i]?.indexOf(v) ?? -1;
      if (k < 0) ok = false;
      flat = flat * (r.dims[i] ?? 1) + Math.max(0, k);
    });
    const actual = ok ? r.values[flat]! : NaN;
    return { ...check(`${r.axes.join(', ')} = [${c.at.join(', ')}]`, c.value, actual, tol), ok: ok && Math.abs(actual - c.value) <= tol };
  });
}

function fillFromPartial(res: AnalysisResult, partial: unknown, ctx: GroupContext, model: HookedTransformer): void {
  const p = partial as Partial<SweepResult>;
  if (p && p.values instanceof Float64Array && p.dims && p.axes && p.coords) {
    res.data = { dims: p.dims, axes: p.axes, coords: p.coords, values: Array.from(p.values) };
    res.blocks = sweepHeatmaps(p as SweepResult, `${res.title} (cancelled: partial)`, ctx, model, 'metric').map((h) => heat(h));
  } else {
    res.data = { partial };
  }
}

async function runAnalysis(
  a: ResolvedAnalysis, res: AnalysisResult, ctx: GroupContext, x: ResolvedExperiment, model: HookedTransformer, tok: Tokenizer,
  sweepOpts: { signal?: AbortSignal; onProgress: (d: number, t: number) => void },
): Promise<void> {
  const s = a.spec;
  const cfg = model.cfg;
  const L = cfg.n_layers, H = cfg.n_heads;
  const gt = ctx.tokens;
  const answers = gt.answers;
  const title = res.title;
  const valueLabel = metricLabel(x, ctx);
  const needMetric = (): Metric => {
    if (!ctx.metric) throw new Error(`${s.kind} needs answers for every prompt`);
    return ctx.metric;
  };
  const cache = async () => new ActivationCache((await model.runWithCache(gt.clean)).cache, cfg, model.params);

  switch (s.kind) {
    case 'test_prompt': {
      const i = s.prompt ?? 0;
      const promptText = s.text ?? ctx.texts.clean[i]!;
      const row = s.text !== undefined ? toTokens(tok, s.text, { prependBos: x.prependBos, truncate: false }).tokens[0]! : gt.clean[i]!;
      const logits = await model.forward([row]);
      const V = logits.dims[2]!;
      const last = logits.data.subarray((row.length - 1) * V, row.length * V);
      const top = topK(last, s.topK ?? 10).map((t) => ({ token: t.token, str: tokensToStrings(tok, [t.token])[0]!, logit: t.logit, prob: t.prob }));
      const result: TestPromptResult = { tokens: row, strTokens: tokensToStrings(tok, row), topK: top, perTokenLoss: [] };
      const ans = s.answer !== undefined ? toSingleToken(tok, s.answer) : s.text === undefined ? answers?.[i]?.[0] : undefined;
      if (ans !== undefined && ans >= 0) {
        let m = -Infinity;
        for (const v of last) if (v > m) m = v;
        let z = 0;
        for (const v of last) z += Math.exp(v - m);
        result.answer = { token: ans, str: tokensToStrings(tok, [ans])[0]!, rank: rankOf(last, ans), logit: last[ans]!, prob: Math.exp(last[ans]! - m) / z };
      }
      res.data = { ...result };
      res.blocks = [{ type: 'topk', title: JSON.stringify(promptText), strTokens: result.strTokens, entries: top, ...(result.answer ? { answer: result.answer } : {}) }];
      return;
    }
    case 'logit_diff': {
      const a2 = answers!;
      const clean = logitDiffs(await model.forward(gt.clean), a2);
      const mean = (v: number[]) => v.reduce((p, q) => p + q, 0) / v.length;
      const data: Record<string, unknown> = { clean: { perPrompt: clean, mean: mean(clean) } };
      const rows: (string | number)[][] = clean.map((v, i) => [i, ctx.texts.clean[i]!, Number(v.toFixed(4))]);
      let corr: number[] | null = null;
      if (gt.corrupted) {
        corr = logitDiffs(await model.forward(gt.corrupted), a2);
        data['corrupted'] = { perPrompt: corr, mean: mean(corr) };
        rows.forEach((r, i) => r.push(ctx.texts.corrupted![i]!, Number(corr![i]!.toFixed(4))));
      }
      res.data = data;
      res.blocks = [
        { type: 'stats', items: [{ label: 'clean', value: mean(clean), format: 'signed', title: 'average clean logit difference' }, ...(corr ? [{ label: 'corrupted', value: mean(corr), format: 'signed' as const, title: 'average corrupted logit difference' }] : [])] },
        table('Per prompt', corr ? ['#', 'clean prompt', 'clean', 'corrupted prompt', 'corrupted'] : ['#', 'prompt', 'logit diff'], rows),
      ];
      const g = ctx.expect;
      const e = { ...(g ? { clean: g.logitDiff, corrupted: g.corrupted, perPrompt: g.perPrompt, tolerance: g.tolerance } : {}), ...s.expect };
      const tol = e.tolerance ?? 5e-4;
      const checks: Check[] = [];
      if (e.clean !== undefined) checks.push(check('average clean logit difference', e.clean, mean(clean), tol));
      if (e.corrupted !== undefined) checks.push(check('average corrupted logit difference', e.corrupted, corr ? mean(corr) : NaN, tol));
      e.perPrompt?.forEach((v, i) => checks.push(check(`clean logit difference of prompt ${i}`, v, clean[i] ?? NaN, tol)));
      if (checks.length) res.checks = checks;
      return;
    }
    case 'layer_dla': {
      const c = await cache();
      const values = layerDla(c, answers!);
      const labels = c.decomposeResid(-1, { pos_slice: -1 }).labels;
      res.data = { labels, values };
      res.blocks = [bars(title, labels, values, 'logit diff')];
      return;
    }
    case 'head_dla': {
      const values = headDla(await cache(), answers!);
      const flat = values.flat();
      const top = topIndices(flat, s.top ?? 3);
      const bottom = topIndices(flat, s.top ?? 3, (v) => -v);
      res.data = { values, top: top.map((i) => ({ head: `L${Math.floor(i / H)}H${i % H}`, value: flat[i] })), bottom: bottom.map((i) => ({ head: `L${Math.floor(i / H)}H${i % H}`, value: flat[i] })) };
      res.blocks = [heat(heatmap(title, 'layer', 'head', range(L).map(String), range(H).map(String), values, 'logit diff')), table('Top and bottom heads', ['head', 'logit diff'], [...top, ...bottom].map((i) => [`L${Math.floor(i / H)}H${i % H}`, flat[i]!]))];
      const want = s.expect?.top ?? ctx.expect?.headDlaTop;
      if (want) {
        const tol = s.expect?.tolerance ?? ctx.expect?.tolerance ?? 5e-4;
        const order = topIndices(flat, want.length);
        res.checks = want.map((v, k) => check(`top ${k + 1} head attribution (${order[k] !== undefined ? `L${Math.floor(order[k]! / H)}H${order[k]! % H}` : '-'})`, v, order[k] !== undefined ? flat[order[k]!]! : NaN, tol));
      }
      return;
    }
    case 'neuron_dla': {
      const values = await neuronDla(model, gt.clean, answers!, s.layer);
      const top = topIndices(values, s.top ?? 10, Math.abs);
      res.data = { layer: s.layer, values, top: top.map((n) => ({ neuron: n, value: values[n] })) };
      res.blocks = [line(title, range(values.length).map((n) => `N${n}`), values, 'neuron', 'logit diff'), table(`Neurons of layer ${s.layer} with the largest |attribution|`, ['neuron', 'logit diff'], top.map((n) => [`L${s.layer}N${n}`, values[n]!]))];
      return;
    }
    case 'logit_lens': {
      const r = logitLens(await cache(), answers!);
      res.data = r;
      res.blocks = [line(title, r.labels, r.values, 'accumulated residual stream', 'logit diff')];
      return;
    }
    case 'attention': {
      const pats = await attentionPatterns(model, gt.clean, sweepOpts); // [layer, head, q, k]
      let heads: { layer: number; head: number }[];
      if (Array.isArray(s.heads)) heads = s.heads.map((h) => parseHead(h)!);
      else {
        const dla = answers && answers.every((p) => p[1] >= 0) ? headDla(await cache(), answers).flat() : null;
        if (!dla) throw new Error('attention with heads "top_dla" needs answers and wrong answers; list the heads instead');
        const k = s.top ?? 3;
        heads = [...topIndices(dla, k), ...topIndices(dla, k, (v) => -v)].map((i) => ({ layer: Math.floor(i / H), head: i % H }));
      }
      const P = gt.clean[0]!.length;
      const labels = gt.strTokens.map((t, i) => `${t}_${i}`);
      res.blocks = heads.map(({ layer, head }) => {
        const o = (layer * H + head) * P * P;
        return heat(heatmap(`${title}: L${layer}H${head}${gt.clean.length > 1 ? ` (mean over ${gt.clean.length} prompts)` : ''}`, 'query position', 'key position', labels, labels, rows2d(pats.data.subarray(o, o + P * P), P, P), 'attention'), 'sequential', true);
      });
      res.data = { heads: heads.map((h) => `L${h.layer}H${h.head}`), strTokens: gt.strTokens };
      res.tensors = { pattern: pats };
      return;
    }
    case 'head_scores': {
      const r = await repeatedTokenHeadScores(model, { seqLen: s.seqLen, batch: s.batch, seed: s.seed, prependBos: s.prependBos, tokenRange: s.tokenRange, errorMeasure: s.errorMeasure, excludeBos: s.excludeBos, excludeCurrentToken: s.excludeCurrentToken, ...sweepOpts });
      const hm = (t: string, v: number[][]) => heatmap(`${title}: ${t}`, 'layer', 'head', range(L).map(String), range(H).map(String), v, 'score');
      res.data = { seqLen: r.seqLen, inductionStripe: r.inductionStripe, detector: r.detector, lossByPosition: r.lossByPosition };
      res.blocks = [
        heat(hm('induction score (attention to the token after the previous occurrence)', r.inductionStripe), 'sequential'),
        heat(hm('previous-token head score', r.detector.previous_token_head), 'sequential'),
        heat(hm('duplicate-token head score', r.detector.duplicate_token_head), 'sequential'),
        heat(hm('induction head score (head_detector)', r.detector.induction_head), 'sequential'),
        line(`${title}: loss by position on repeated random tokens`, range(r.lossByPosition.length).map(String), r.lossByPosition, 'position', 'loss', { value: r.seqLen - 0.5, label: 'repeat starts' }),
      ];
      return;
    }
    case 'detect_heads': {
      const v = await detectHeads(model, gt.clean, s.pattern, { errorMeasure: s.errorMeasure, excludeBos: s.excludeBos, excludeCurrentToken: s.excludeCurrentToken, ...sweepOpts });
      res.data = { pattern: s.pattern, values: v };
      res.blocks = [heat(heatmap(`${title}: ${s.pattern}`, 'layer', 'head', range(L).map(String), range(H).map(String), v, 'score'), 'sequential')];
      return;
    }
    case 'circuits': {
      const row = gt.clean[0]!;
      const ids = [...new Set(row)];
      const labels = tokensToStrings(tok, ids).map((t) => JSON.stringify(t));
      const data: Record<string, unknown>[] = [];
      for (const [k, hs] of s.heads.entries()) {
        sweepOpts.signal?.throwIfAborted();
        sweepOpts.onProgress(k, s.heads.length);
        const { layer, head } = parseHead(hs)!;
        const qk = await fullQkCircuit(model, layer, head);
        const ov = await fullOvCircuit(model, layer, head);
        const qkM = qk.materialize(ids, ids);
        const ovM = ov.materialize(ids, ids);
        const cs = copyingScore(ov.eigenvalues());
        data.push({ head: hs, tokens: ids, qk: rows2d(qkM.data, ids.length, ids.length), ov: rows2d(ovM.data, ids.length, ids.length), copyingScore: cs, qkNorm: qk.norm(), ovNorm: ov.norm() });
        res.blocks.push(
          { type: 'stats', items: [{ label: `${hs} copying score`, value: cs, format: 'signed', title: 'Σλ / Σ|λ| of the full OV circuit' }, { label: '‖full QK‖', value: qk.norm(), format: 'sig' }, { label: '‖full OV‖', value: ov.norm(), format: 'sig' }] },
          heat(heatmap(`${title}: ${hs} full QK circuit W_E W_Q W_Kᵀ W_Eᵀ`, 'query token', 'key token', labels, labels, rows2d(qkM.data, ids.length, ids.length), 'attention score')),
          heat(heatmap(`${title}: ${hs} full OV circuit W_E W_V W_O W_U`, 'source token', 'output logit', labels, labels, rows2d(ovM.data, ids.length, ids.length), 'logit')),
        );
      }
      res.data = { heads: data };
      return;
    }
    case 'copying_scores': {
      const v = await ovCopyingScores(model, sweepOpts);
      res.data = { values: v };
      res.blocks = [heat(heatmap(title, 'layer', 'head', range(L).map(String), range(H).map(String), v, 'copying score'))];
      return;
    }
    case 'composition': {
      const t = await compositionScores(model, s.mode, sweepOpts);
      const names = headLabels(L, H);
      res.blocks = [heat(heatmap(`${title}: ${s.mode}-composition`, 'earlier head (OV)', `later head (${s.mode === 'V' ? 'OV' : s.mode === 'Q' ? 'QK' : 'QKᵀ'})`, names, names, rows2d(t.data, L * H, L * H), 'composition score'), 'sequential')];
      res.data = { mode: s.mode, axes: ['layer', 'head', 'layer', 'head'], shape: t.dims };
      res.tensors = { scores: t };
      return;
    }
    case 'neuron_activations': {
      const views: { title: string; tokens: string[]; values: number[] }[] = [];
      if (s.file !== undefined) {
        // Read again under the same rules as when the file was parsed (files.ts): it may have
        // changed, or become a link out of the experiment's folder, since.
        const read = readNamedFile({ root: x.root, dir: x.dir, reader: confinedReader(x.root) }, s.file, 'the text file');
        if ('error' in read) throw new Error(read.error);
        const file = read.path;
        const lines = read.text.split(/\r\n|\r|\n/);
        const rows = lines.map((l) => (l.trim() === '' ? [] : toTokens(tok, l, { prependBos: x.prependBos, nCtx: cfg.n_ctx, truncate: true }).tokens[0]!));
        const top = await maxActivatingLines(model, rows, s.layer, s.neuron, s.top ?? 10, { signal: sweepOpts.signal, onProgress: sweepOpts.onProgress });
        for (const t of top) views.push({ title: `${path.basename(file)}:${t.line + 1} (max ${t.max.toFixed(3)})`, tokens: tokensToStrings(tok, t.tokens), values: t.acts });
        res.data = { layer: s.layer, neuron: s.neuron, file, lines: top.map((t) => ({ line: t.line + 1, max: t.max, acts: t.acts, tokens: t.tokens })) };
      } else {
        const rows = s.text !== undefined ? [toTokens(tok, s.text, { prependBos: x.prependBos, truncate: false }).tokens[0]!] : gt.clean;
        const acts = await neuronActivations(model, rows, s.layer, s.neuron);
        acts.forEach((t, i) => views.push({ title: s.text ?? ctx.texts.clean[i]!, tokens: tokensToStrings(tok, t.tokens), values: t.acts }));
        res.data = { layer: s.layer, neuron: s.neuron, texts: acts.map((t) => ({ tokens: t.tokens, acts: t.acts, max: t.max, min: t.min })) };
        if (s.expect) {
          const tol = s.expect.tolerance ?? 5e-4;
          res.checks = [];
          if (s.expect.max !== undefined) res.checks.push(check(`largest activation of L${s.layer}N${s.neuron}`, s.expect.max, acts[0]!.max, tol));
          if (s.expect.min !== undefined) res.checks.push(check(`smallest activation of L${s.layer}N${s.neuron}`, s.expect.min, acts[0]!.min, tol));
        }
      }
      res.blocks = views.map((v) => ({ type: 'tokens', title: `L${s.layer}N${s.neuron}: ${v.title}`, tokens: v.tokens, values: v.values, valueLabel: `blocks.${s.layer}.mlp.hook_post[${s.neuron}]` }));
      return;
    }
    case 'ablation': {
      const r = await ablateEveryHook(model, gt.clean, { kind: s.ablation ?? 'mean', loss: s.loss, hooks: s.hooks as HookName[] | undefined, signal: sweepOpts.signal, onProgress: sweepOpts.onProgress });
      const deltas = r.losses.map((l) => l - r.baseline);
      res.data = { kind: r.kind, baseline: r.baseline, hooks: r.hooks, losses: r.losses, deltas };
      res.blocks = [
        { type: 'stats', items: [{ label: 'baseline loss', value: r.baseline, format: 'sig' }, { label: 'ablation', value: r.kind, format: 'text' }] },
        bars(`${title} (${r.kind}): loss change`, r.hooks, deltas, 'loss - baseline'),
        table(`Loss with each hook ${r.kind}-ablated (baseline ${r.baseline.toFixed(4)})`, ['hook', 'loss', 'change'], r.hooks.map((h, i) => [h, r.losses[i]!, deltas[i]!])),
      ];
      return;
    }
    case 'patch':
    case 'patch_heads':
    case 'patch_neurons': {
      const sweep: PatchSweepSpec = s.kind === 'patch'
        ? { kind: 'layer_pos', hook: s.hook, layers: s.layers }
        : s.kind === 'patch_heads'
          ? { kind: 'head', activation: s.activation, by: s.by, layers: s.layers }
          : { kind: 'neuron', layer: s.layer, hook: s.hook, neurons: s.neurons };
      const r = await runPatchSweep(model, gt.clean, gt.corrupted!, needMetric(), sweep, sweepOpts);
      const what = s.kind === 'patch' ? `blocks.L.hook_${s.hook}` : s.kind === 'patch_heads' ? `blocks.L.attn.hook_${s.activation}${s.by === 'pos' ? ' by position' : ''}` : `blocks.${s.layer}.mlp.hook_${s.hook ?? 'post'}`;
      res.title = s.title ? title : `${title}: ${what}`;
      res.data = { hook: r.hook, dims: r.dims, axes: r.axes, coords: r.coords, values: Array.from(r.values), clean: ctx.clean, corrupted: ctx.corrupted };
      res.checks = cellChecks(r, s.expect);
      if (s.kind === 'patch_neurons') {
        const vals = Array.from(r.values);
        const top = topIndices(vals, s.top ?? 10, Math.abs);
        res.blocks = [
          line(res.title, r.coords[0]!.map((n) => `N${n}`), vals, 'neuron', valueLabel),
          table('Neurons with the largest |effect|', ['neuron', valueLabel], top.map((i) => [`L${s.layer}N${r.coords[0]![i]}`, vals[i]!])),
        ];
      } else {
        res.blocks = sweepHeatmaps(r, res.title, ctx, model, valueLabel).map((h) => heat(h));
      }
      if (s.attribution) await addAttribution(res, r, s, ctx, x, model, sweepOpts.signal);
      return;
    }
    case 'causal_trace': {
      const i = s.prompt ?? 0;
      const row = gt.clean[i]!;
      const subject = Array.isArray(s.subject) ? (s.subject as [number, number]) : findSubject(tok, row, s.subject)!;
      const r = await causalTrace(model, row, { subject, samples: s.samples, noise: s.noise, window: s.window, kinds: s.kinds, seed: s.seed, ...sweepOpts });
      const labels = gt.strTokens.map((t, p) => (p >= subject[0] && p < subject[1] ? `${t}*` : t));
      const ans = tokensToStrings(tok, [r.answer])[0]!;
      res.data = { ...r, answerStr: ans, prompt: ctx.texts.clean[i] };
      // "restoring <what>": one layer's residual stream, or a window of layers' MLP / attention outputs.
      const names: Record<string, string> = { resid: "one layer's residual stream", mlp: `MLP outputs over a ${r.window}-layer window`, attn: `attention outputs over a ${r.window}-layer window` };
      for (const [k, table] of Object.entries(r.scores)) {
        // The colour starts at the noised run's probability (what restoring nothing gives), as in
        // ROME's figures, and tops out at the clean run's (or the largest restored value).
        const top = Math.max(r.highScore, ...table!.flat().filter(Number.isFinite));
        const data = heatmap(`${title}: restoring ${names[k]} (p(${JSON.stringify(ans)}): clean ${r.highScore.toFixed(4)}, noised ${r.lowScore.toFixed(4)})`, 'token', 'layer', labels, range(L).map(String), table!, `p(${ans})`);
        res.blocks.push(heat(Number.isFinite(r.lowScore) && r.lowScore < top ? { ...data, zmin: r.lowScore, zmax: top } : data, 'sequential'));
      }
      return;
    }
    case 'sae_features': {
      const sae = await experimentSae(x, s.sae);
      const f = await featureActivations(model, gt.clean, sae);
      const k = s.top ?? 5;
      const top = topFeaturesPerToken(f.acts, k);
      const D = sae.cfg.d_sae;
      const [B, P] = f.acts.dims as [number, number, number];
      const rows: (string | number | null)[][] = [];
      top.forEach((perPos, b) => {
        const strs = tokensToStrings(tok, gt.clean[b]!);
        perPos.forEach((feats, p) => rows.push([b, p, JSON.stringify(strs[p]!), feats.map((t) => `${t.feature} (${t.act.toFixed(3)})`).join(', ') || '-']));
      });
      const l0 = range(B).map((b) => range(P).map((p) => {
        let n = 0;
        for (let j = 0; j < D; j++) if (f.acts.data[(b * P + p) * D + j]! > 0) n++;
        return n;
      }));
      res.data = { sae: sae.source, hook: sae.cfg.hook_name_out, d_sae: D, l0: f.l0, explainedVariance: f.explainedVariance, mse: f.mse, top };
      res.blocks = [
        { type: 'stats', items: [{ label: 'SAE', value: `${sae.cfg.architecture} at ${sae.cfg.hook_name_out}, d_sae ${D}`, format: 'text' }, { label: 'L0 (active features per token)', value: f.l0, format: 'sig' }, { label: 'explained variance', value: f.explainedVariance, format: 'percent' }, { label: 'reconstruction MSE', value: f.mse, format: 'sig' }] },
        ...gt.clean.map((row, b) => ({ type: 'tokens' as const, title: `${ctx.texts.clean[b]}: active features per token`, tokens: tokensToStrings(tok, row), values: l0[b]!, valueLabel: 'L0' })),
        table(`Top ${k} features per token (activation)`, ['prompt', 'pos', 'token', 'features'], rows),
      ];
      res.tensors = { acts: f.acts };
      return;
    }
    case 'sae_ablate': {
      const sae = await experimentSae(x, s.sae);
      const kind = s.ablation ?? 'zero';
      const edit = await featureAblation(model, gt.clean, sae, { features: s.features, kind, ...(s.positions ? { positions: s.positions } : {}) });
      const before = await model.forward(gt.clean, { saes: [{ sae, useErrorTerm: true }] });
      const after = await model.forward(gt.clean, edit);
      const m = ctx.metric;
      const items: { label: string; value: number | string | null; format?: 'sig' | 'signed' | 'percent' | 'text' }[] = [
        { label: 'features', value: s.features.join(', '), format: 'text' },
        { label: 'ablation', value: kind, format: 'text' },
        { label: 'loss before', value: lmLoss(before, gt.clean), format: 'sig' },
        { label: 'loss after', value: lmLoss(after, gt.clean), format: 'sig' },
      ];
      const data: Record<string, unknown> = { sae: sae.source, features: s.features, ablation: kind, positions: s.positions ?? null, lossBefore: items[2]!.value, lossAfter: items[3]!.value };
      if (m) {
        const mb = m(before), ma = m(after);
        items.push({ label: `${valueLabel} before`, value: mb, format: 'signed' }, { label: `${valueLabel} after`, value: ma, format: 'signed' });
        data['metricBefore'] = mb;
        data['metricAfter'] = ma;
      }
      if (answers && answers.every((a2) => a2[1] >= 0)) {
        const ldB = logitDiffs(before, answers), ldA = logitDiffs(after, answers);
        data['logitDiffs'] = { before: ldB, after: ldA };
        res.blocks.push(table('Logit difference per prompt', ['#', 'prompt', 'before', 'after', 'change'], ldB.map((v, i) => [i, ctx.texts.clean[i]!, v, ldA[i]!, ldA[i]! - v])));
      }
      res.blocks.unshift({ type: 'stats', items });
      res.data = data;
      return;
    }
    case 'sae_steer': {
      const sae = await experimentSae(x, s.sae);
      const i = s.prompt ?? 0;
      const row = gt.clean[i]!;
      const iv = steeringIntervention(model, sae, { feature: s.feature, alpha: s.alpha, ...(s.positions ? { positions: s.positions } : {}) });
      const V = cfg.d_vocab_out;
      const last = (l: F32) => l.data.subarray((row.length - 1) * V, row.length * V);
      const before = await model.forward([row]);
      const after = await model.runWithHooks([row], [iv]);
      const k = 10;
      const entries = (l: F32) => topK(last(l), k).map((t) => ({ token: t.token, str: tokensToStrings(tok, [t.token])[0]!, logit: t.logit, prob: t.prob }));
      const n = s.generate ?? 10;
      const contBefore = n > 0 ? await greedyContinue(model, row, n, {}, sweepOpts.signal) : [];
      const contAfter = n > 0 ? await greedyContinue(model, row, n, { interventions: [iv] }, sweepOpts.signal) : [];
      const text = (ids: number[]) => tok.decode(ids);
      const strTokens = tokensToStrings(tok, row);
      res.data = { sae: sae.source, feature: s.feature, alpha: s.alpha, positions: s.positions ?? null, prompt: ctx.texts.clean[i], topBefore: entries(before), topAfter: entries(after), continuationBefore: text(contBefore), continuationAfter: text(contAfter), tokensBefore: contBefore, tokensAfter: contAfter };
      res.blocks = [
        { type: 'stats', items: [{ label: 'feature', value: String(s.feature), format: 'text' }, { label: 'alpha', value: s.alpha, format: 'signed' }, { label: 'at', value: `${sae.cfg.hook_name_out}${s.positions ? ` positions ${s.positions.join(', ')}` : ', every position'}`, format: 'text' }] },
        { type: 'topk', title: `Before: ${JSON.stringify(ctx.texts.clean[i])}`, strTokens, entries: entries(before) },
        { type: 'topk', title: `Steered (+${s.alpha} x feature ${s.feature})`, strTokens, entries: entries(after) },
        ...(n > 0 ? [table(`Greedy continuation (${n} tokens)`, ['', 'text'], [['before', JSON.stringify(text(contBefore))], ['steered', JSON.stringify(text(contAfter))]])] : []),
      ];
      return;
    }
    case 'sae_attribution': {
      const sae = await experimentSae(x, s.sae);
      const D = sae.cfg.d_sae;
      const r = await saeAttribution(model, sae, gt.clean, gt.corrupted!, answers!, { top: s.top ?? 10, ...sweepOpts });
      // On the experiment's scale, as the other patching kinds: normalised (patched - corrupted) /
      // (clean - corrupted) with the group's clean and corrupted metrics, else the raw metric.
      const norm = x.normalize && !ctx.unnormalised && ctx.clean !== undefined && ctx.corrupted !== undefined;
      const scaled = (delta: number) => (norm ? (r.corruptedMetric + delta - ctx.corrupted!) / (ctx.clean! - ctx.corrupted!) : r.corruptedMetric + delta);
      const P = r.estimate.dims[0]!;
      const cells = r.top.map((c) => ({ ...c, estimateScaled: scaled(c.estimate), exactScaled: c.exact === null ? null : scaled(c.exact) }));
      const pairs = cells.filter((c) => c.exactScaled !== null).map((c) => [c.estimateScaled, c.exactScaled!] as const);
      const correlation = pairs.length >= 2 ? pearson(pairs.map((q) => q[0]), pairs.map((q) => q[1])) : NaN;
      const maxAbsDiff = pairs.reduce((m, [e, q]) => Math.max(m, Math.abs(e - q)), 0);
      // Heatmap rows: the features with the largest |estimate| at any position.
      const peak = range(D).map((f) => Math.max(...range(P).map((p) => Math.abs(r.estimate.data[p * D + f]!))));
      const shown = topIndices(peak, 20).filter((f) => peak[f]! > 0);
      const strs = tokensToStrings(tok, gt.clean[0]!);
      res.title = s.title ? title : `${title}: ${sae.cfg.hook_name_out}`;
      res.data = {
        sae: sae.source, hook: sae.cfg.hook_name_out, d_sae: D, cleanMetric: r.cleanMetric, corruptedMetric: r.corruptedMetric,
        correlation: Number.isFinite(correlation) ? correlation : null, maxAbsDiff: pairs.length ? maxAbsDiff : null, top: cells,
      };
      res.blocks = [
        { type: 'stats', items: [
          { label: 'SAE', value: `${sae.cfg.architecture} at ${sae.cfg.hook_name_out}, d_sae ${D}`, format: 'text' },
          { label: 'logit diff clean (SAE spliced)', value: r.cleanMetric, format: 'signed' },
          { label: 'logit diff corrupted (SAE spliced)', value: r.corruptedMetric, format: 'signed' },
          { label: 'cells patched exactly', value: String(pairs.length), format: 'text' },
          { label: 'estimate vs exact: correlation', value: Number.isFinite(correlation) ? correlation : null, format: 'sig', title: 'Pearson correlation over the cells patched exactly' },
          { label: 'estimate vs exact: largest |difference|', value: pairs.length ? maxAbsDiff : null, format: 'sig' },
        ] },
        ...(shown.length ? [heat(heatmap(`${res.title}: attribution estimate (gradient x activation difference)`, 'feature', 'position', shown.map((f) => `F${f}`), ctx.posLabels, shown.map((f) => range(P).map((p) => (norm ? r.estimate.data[p * D + f]! / (ctx.clean! - ctx.corrupted!) : r.estimate.data[p * D + f]!))), norm ? `estimated change (${valueLabel})` : 'estimated change of the logit diff'))] : []),
        // Six columns, so that the table fits a panel beside the editor.
        table(`Cells with the largest |estimate|: exact patching beside the estimate (${valueLabel})`, ['feature at position', 'clean act', 'corrupted act', 'estimate', 'exact', 'estimate − exact'],
          cells.map((c) => [`F${c.feature} at ${c.pos} ${JSON.stringify(strs[c.pos] ?? '')}`, c.cleanAct, c.corruptedAct, c.estimateScaled, c.exactScaled, c.exactScaled === null ? null : c.estimateScaled - c.exactScaled])),
      ];
      res.tensors = { estimate: r.estimate };
      return;
    }
    case 'path_patch': {
      const denoise = (s.direction ?? 'denoise') === 'denoise';
      const [base, source] = denoise ? [gt.corrupted!, gt.clean] : [gt.clean, gt.corrupted!];
      const receivers = s.receivers === 'logits' ? 'logits' as const : { heads: s.receivers.map((h) => parseHead(h)!), input: s.input ?? 'v' };
      const r = await pathPatch(model, base, source, needMetric(), { receivers }, sweepOpts);
      const to = s.receivers === 'logits' ? 'the logits' : `${s.receivers.join(', ')} (${s.input ?? 'v'})`;
      res.title = s.title ? title : `${title}: sender heads -> ${to}${denoise ? '' : ' (noising)'}`;
      res.data = { values: r.values, senderLayers: r.senderLayers, direction: denoise ? 'denoise' : 'noise' };
      res.blocks = [heat(heatmap(res.title, 'sender layer', 'sender head', range(r.values.length).map(String), range(H).map(String), r.values, valueLabel))];
      return;
    }
  }
}

/**
 * `"attribution": true` on a patching analysis: the same cells estimated by attribution patching
 * (analysis/attribution.ts), added as a second heatmap of the same layout, with the Pearson
 * correlation and largest difference to the exact sweep in data.attribution. Attribution patching
 * measures the mean logit difference, so other metrics (and sweeps it does not cover) say why
 * there is no estimate instead.
 */
async function addAttribution(res: AnalysisResult, r: SweepResult, s: Extract<AnalysisSpec, { kind: 'patch' | 'patch_heads' | 'patch_neurons' }>, ctx: GroupContext, x: ResolvedExperiment, model: HookedTransformer, signal?: AbortSignal): Promise<void> {
  const skip = (reason: string) => void (res.data['attribution'] = { skipped: reason });
  if (x.metric !== 'logit_diff') return skip(`attribution patching estimates the logit difference; this experiment's metric is ${x.metric}`);
  if (s.kind === 'patch' && !['resid_pre', 'attn_out', 'mlp_out'].includes(s.hook)) return skip(`attribution patching covers resid_pre, attn_out and mlp_out, not ${s.hook}`);
  if (s.kind === 'patch_heads' && (s.by ?? 'all_pos') !== 'all_pos') return skip('attribution patching of heads covers all positions together (by: "all_pos")');
  if (s.kind === 'patch_neurons' && (s.hook ?? 'post') !== 'post') return skip('attribution patching of neurons covers hook_post');
  let a: AttributionResult;
  try {
    a = await (ctx.attribution ??= attributionPatching(model, ctx.tokens.clean, ctx.tokens.corrupted!, ctx.tokens.answers!, { signal }));
  } catch (e) {
    return skip(`attribution patching failed: ${(e as Error).message}`);
  }
  // Rows per layer of the sweep's own layout ([layer, pos], [layer, head] or [neuron]).
  const table = s.kind === 'patch' ? (s.hook === 'resid_pre' ? a.residPre : s.hook === 'attn_out' ? a.attnOut : a.mlpOut) : s.kind === 'patch_heads' ? a.heads[s.activation] : null;
  const flat = s.kind === 'patch_neurons' ? r.coords[0]!.map((n) => a.neurons[s.layer]![n]!) : r.coords[0]!.flatMap((l) => table![l]!);
  // Normalised (patched - corrupted) / (clean - corrupted); back to logit differences when the experiment is not normalised.
  const values = Float64Array.from(flat, (v) => (x.normalize && !ctx.unnormalised ? v : v * (a.cleanMetric - a.corruptedMetric) + a.corruptedMetric));
  const pairs = Array.from(values, (v, i) => [r.values[i]!, v] as const).filter(([p, q]) => Number.isFinite(p) && Number.isFinite(q));
  const maxAbsDiff = pairs.reduce((m, [p, q]) => Math.max(m, Math.abs(p - q)), 0);
  const correlation = pearson(pairs.map((p) => p[0]), pairs.map((p) => p[1]));
  res.data['attribution'] = { values: Array.from(values), correlation, maxAbsDiff, cleanMetric: a.cleanMetric, corruptedMetric: a.corruptedMetric };
  const title = `${res.title}: attribution patching (r = ${Number.isFinite(correlation) ? correlation.toFixed(3) : 'n/a'} with the exact sweep)`;
  // The exact sweep and its estimate side by side, in the same layout ('compare' block).
  const exact = sweepHeatmaps(r, res.title, ctx, model, metricLabel(x, ctx));
  const estimate = sweepHeatmaps({ ...r, values }, title, ctx, model, 'attribution estimate');
  const compares: ExperimentBlock[] = exact.map((e, i) => ({ type: 'compare', exact: e, estimate: estimate[i]!, correlation: Number.isFinite(correlation) ? correlation : null, maxAbsDiff: Number.isFinite(maxAbsDiff) ? maxAbsDiff : null }));
  // The pair replaces the exact sweep's own heatmaps (it shows them), keeping their place.
  const at = res.blocks.findIndex((b) => b.type === 'heatmap');
  if (at < 0) res.blocks.push(...compares);
  else res.blocks = [...res.blocks.slice(0, at).filter((b) => b.type !== 'heatmap'), ...compares, ...res.blocks.slice(at).filter((b) => b.type !== 'heatmap')];
}

/** SAEs loaded for each experiment run (one load per `"sae"` value). */
const loadedSaes = new WeakMap<ResolvedExperiment, Map<string, Promise<Sae>>>();

function experimentSae(x: ResolvedExperiment, spec: string): Promise<Sae> {
  let per = loadedSaes.get(x);
  if (!per) loadedSaes.set(x, (per = new Map()));
  const hit = per.get(spec);
  if (hit) return hit;
  const r = x.saes.get(spec);
  if (!r) throw new Error(`internal: the SAE ${JSON.stringify(spec)} was not resolved when the experiment was parsed`);
  const p = r.kind === 'local' ? Promise.resolve().then(() => loadSaeFolder(r.path)) : loadSae(r.ref, { allowDownload: !x.model.offline });
  per.set(spec, p);
  return p;
}

/** All tensors of the results, keyed `<index>/<group>/<name>` for safetensors. */
export function resultTensors(results: readonly AnalysisResult[]): Map<string, F32> {
  const out = new Map<string, F32>();
  for (const r of results) for (const [k, t] of Object.entries(r.tensors ?? {})) out.set(`${r.index}/${r.group ?? '_'}/${k}`, f32(t.dims, t.data));
  return out;
}
