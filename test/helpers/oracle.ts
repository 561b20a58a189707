/**
 * The oracle fixtures (test/fixtures/<name>/, written by oracle/gen_models.py with TransformerLens
 * itself) and one table-driven comparison of MechLens against any of them.
 *
 * A fixture folder is a Hugging Face checkpoint (config.json, model.safetensors, tokenizer files)
 * plus spec.json (prompts, tokens, answers), expected.json (scalars and small results, versions,
 * flags) and expected.safetensors (<mode>/<hook>, <mode>/logits, <mode>/params/<name>,
 * <mode>/dla/..., <mode>/lens/..., <mode>/patching/..., <mode>/loss/per_token).
 *
 * Everything MechLens-specific this file touches is imported here, at the top, so that a change
 * of the engine's module layout is one edit: the model is loaded as a user loads a folder
 * (loadModelFolder), processed (applyProcessing) and run (HookedTransformer).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModelFolder } from '../../src/engine/model/load.js';
import { applyProcessing } from '../../src/engine/weights/process.js';
import { isTiedFactorName, isTiedUnembed, unembedMatrix } from '../../src/engine/model/unembed.js';
import { HookedTransformer, type Tokens } from '../../src/engine/model/hookedTransformer.js';
import type { Params, Processing } from '../../src/engine/model/params.js';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { ActivationCache, tokensToResidualDirections } from '../../src/engine/cache/activationCache.js';
import { headDla, layerDla, logitDiff, logitLens, loss, rankOf } from '../../src/engine/analysis/basic.js';
import { logitDiffMetric, normalizedMetric, runPatchSweep, type PatchSweepSpec } from '../../src/engine/analysis/patching.js';
import { detectHeads, HEAD_KINDS, type SimilarityOptions } from '../../src/engine/analysis/heads.js';
import { allHooks, type OutputName } from '../../src/engine/hooks/hooks.js';
import type { F32 } from '../../src/engine/tensor/tensor.js';

export const FIXTURES_ROOT = path.join(__dirname, '..', 'fixtures');

export interface OracleSpec {
  prompts: string[];
  tokens: number[][];
  str_tokens: string[][];
  corrupted_prompts: string[];
  corrupted_tokens: number[][];
  answers: [number, number][];
  answer_strs: [string, string][];
  detector_text: string;
  detector_tokens: number[][];
  test_prompt: { prompt: string; answer: string };
  prepend_bos: boolean;
}

export interface OracleMode {
  hooks: string[];
  loss: number;
  logit_diff: number;
  logit_diffs: number[];
  corrupted_logit_diff: number;
  layer_dla_labels: string[];
  layer_dla: number[];
  head_dla_labels: string[];
  head_dla: number[][];
  logit_lens: { labels: string[]; values: number[] };
  logit_lens_incl_mid: boolean;
  patching_axes: Record<string, string[]>;
  resid_pre_patching: number[][];
  head_z_patching: number[][];
  head_detectors: Record<string, Record<string, number[][]>>;
  test_prompt: { prompt: string; answer: string; tokens: number[]; answer_ranks: { str: string; token: number; rank: number; logit: number; prob: number }[] };
  params_as_in_default: string[];
  asked: Record<string, boolean>;
  applied: Record<string, boolean>;
  normalization_type_after: string;
}

export interface OracleExpected {
  fixture: string;
  family: string;
  description: string;
  transformer_lens_version: string;
  versions: Record<string, string>;
  seed: number;
  tl_cfg: Record<string, unknown>;
  processing: Partial<Record<Processing, OracleMode>>;
  unsupported: Partial<Record<Processing, string>>;
  to_tokens: { text: string; prepend_bos: boolean; tokens: number[]; str_tokens: string[] }[];
  hf_vs_transformer_lens_logits_max_abs_diff: number;
}

export interface OracleFixture {
  name: string;
  dir: string;
  spec: OracleSpec;
  expected: OracleExpected;
  /** expected.safetensors, read once. */
  tensors: Map<string, F32>;
  /** The processing modes TransformerLens computed for this family. */
  modes: Processing[];
}

const readJson = <T>(p: string): T => JSON.parse(fs.readFileSync(p, 'utf8')) as T;

/** Names of the fixture folders written by the oracle (an expected.json with transformer_lens_version). */
export function oracleFixtureNames(): string[] {
  // A model fixture has the checkpoint's spec beside TransformerLens's outputs; other oracle
  // outputs (SAELens on trained SAEs, tokenizers) carry a version stamp too but no spec.json.
  return fs.readdirSync(FIXTURES_ROOT).filter((n) => {
    const p = path.join(FIXTURES_ROOT, n, 'expected.json');
    return fs.existsSync(p) && fs.existsSync(path.join(FIXTURES_ROOT, n, 'spec.json'))
      && typeof readJson<Record<string, unknown>>(p)['transformer_lens_version'] === 'string';
  }).sort();
}

const fixtureCache = new Map<string, OracleFixture>();
export function oracleFixture(name: string): OracleFixture {
  const hit = fixtureCache.get(name);
  if (hit) return hit;
  const dir = path.join(FIXTURES_ROOT, name);
  if (!fs.existsSync(path.join(dir, 'expected.json'))) throw new Error(`no oracle fixture ${name} in ${FIXTURES_ROOT} (regenerate with oracle/regenerate.py)`);
  const expected = readJson<OracleExpected>(path.join(dir, 'expected.json'));
  const fx: OracleFixture = {
    name, dir, expected,
    spec: readJson<OracleSpec>(path.join(dir, 'spec.json')),
    tensors: readSafetensors(path.join(dir, 'expected.safetensors')),
    modes: (['none', 'default', 'default+refactor'] as const).filter((m) => expected.processing[m] !== undefined),
  };
  fixtureCache.set(name, fx);
  return fx;
}

/** TransformerLens's value of `key` for a mode (`<mode>/<key>`); refactor params it left as default's come from default/. */
export function expectedTensor(fx: OracleFixture, mode: Processing, key: string): F32 {
  const t = fx.tensors.get(`${mode}/${key}`);
  if (t) return t;
  const shared = key.startsWith('params/') && fx.expected.processing[mode]?.params_as_in_default?.includes(key.slice('params/'.length));
  const d = shared ? fx.tensors.get(`default/${key}`) : undefined;
  if (d) return d;
  throw new Error(`${fx.name}: the fixture has no ${mode}/${key}`);
}

/**
 * TransformerLens's processed parameters for a mode, under its names (named_parameters()). With
 * grouped-query attention it names the key/value weights blocks.L.attn._W_K, _W_V, _b_K, _b_V
 * ([n_key_value_heads, ...]); RMS models have ln*.w only (no .b), and none once folded.
 */
export function expectedParams(fx: OracleFixture, mode: Processing): Params {
  const out: Params = new Map();
  const prefix = `${mode}/params/`;
  for (const [k, v] of fx.tensors) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  for (const k of fx.expected.processing[mode]?.params_as_in_default ?? []) out.set(k, fx.tensors.get(`default/params/${k}`)!);
  return out;
}

/** The fixture's checkpoint loaded as a user loads a model folder, processed, ready to run (one CPU thread). */
export function engineModel(fx: OracleFixture, mode: Processing): HookedTransformer {
  const loaded = loadModelFolder(fx.dir);
  const { cfg, params } = applyProcessing(loaded.cfg, loaded.params, mode);
  return new HookedTransformer(cfg, params, mode, fx.dir, { device: 'cpu', threads: 1 });
}

// ---------------------------------------------------------------------------------------------
// Comparison

/** One comparison: what, the worst |diff| and where, and whether it is within atol. */
export interface Check {
  what: string;
  worst: number;
  where: string;
  ok: boolean;
}

function flatIndexToCoords(i: number, dims: readonly number[]): number[] {
  const out: number[] = [];
  for (let d = dims.length - 1; d >= 0; d--) {
    out.unshift(i % dims[d]!);
    i = Math.floor(i / dims[d]!);
  }
  return out;
}

/** Compares two arrays of the same length; `where` names the worst entry by its coordinates in dims. */
export function compareArrays(what: string, got: ArrayLike<number>, want: ArrayLike<number>, dims: readonly number[], atol: number): Check {
  if (got.length !== want.length) return { what, worst: Infinity, where: `length ${got.length} vs ${want.length} (dims [${dims.join(', ')}])`, ok: false };
  let worst = 0;
  let at = -1;
  for (let i = 0; i < got.length; i++) {
    // Equal values (the -Infinity of masked attention scores included) differ by 0.
    const d = got[i] === want[i] ? 0 : Math.abs(got[i]! - want[i]!);
    if (Number.isNaN(d) || d > worst) {
      worst = Number.isNaN(d) ? Infinity : d;
      at = i;
      if (!Number.isFinite(worst)) break;
    }
  }
  const where = at < 0 ? '' : `[${flatIndexToCoords(at, dims).join(', ')}]: got ${got[at]}, TransformerLens ${want[at]}`;
  return { what, worst, where, ok: worst <= atol };
}

export function compareTensors(what: string, got: F32 | undefined, want: F32, atol: number): Check {
  if (!got) return { what, worst: Infinity, where: 'missing in MechLens', ok: false };
  if (got.dims.length !== want.dims.length || got.dims.some((d, i) => d !== want.dims[i])) {
    return { what, worst: Infinity, where: `shape [${got.dims.join(', ')}] vs TransformerLens [${want.dims.join(', ')}]`, ok: false };
  }
  return compareArrays(what, got.data, want.data, want.dims, atol);
}

const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x as number]);
const shapeOf = (x: unknown): number[] => (Array.isArray(x) ? [x.length, ...shapeOf(x[0])] : []);

export function compareNested(what: string, got: unknown, want: unknown, atol: number): Check {
  const gs = shapeOf(got);
  const ws = shapeOf(want);
  if (gs.join() !== ws.join()) return { what, worst: Infinity, where: `shape [${gs.join(', ')}] vs TransformerLens [${ws.join(', ')}]`, ok: false };
  return compareArrays(what, flat(got), flat(want), ws, atol);
}

/**
 * Signs of refactored attention columns. refactor_factored_attn_matrices sets W_Q, W_K (and W_V,
 * W_O) from an SVD, whose singular vectors are unique only up to sign: TransformerLens takes
 * LAPACK's, MechLens a canonical rule. Per layer, head and d_head column, the sign that maps
 * MechLens's W_Q (W_V) column onto TransformerLens's; it must then hold for W_K, b_Q, b_K (W_O,
 * b_V) and the q/k (v/z) hooks too, since q·k and z·W_O are unchanged by it. Key
 * `${layer}.qk` / `${layer}.vo`, values [head * d_head + e] = ±1.
 */
export function refactorSigns(got: Params, want: Params, nLayers: number): Map<string, Int8Array> {
  const out = new Map<string, Int8Array>();
  for (let l = 0; l < nLayers; l++) {
    for (const [group, name] of [['qk', 'W_Q'], ['vo', 'W_V']] as const) {
      const g = got.get(`blocks.${l}.attn.${name}`);
      const w = want.get(`blocks.${l}.attn.${name}`);
      if (!g || !w) continue;
      const [H, D, E] = w.dims as [number, number, number];
      const s = new Int8Array(H * E);
      for (let h = 0; h < H; h++) {
        for (let e = 0; e < E; e++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += g.data[(h * D + d) * E + e]! * w.data[(h * D + d) * E + e]!;
          s[h * E + e] = dot < 0 ? -1 : 1;
        }
      }
      out.set(`${l}.${group}`, s);
    }
  }
  return out;
}

/** `t` with its (head, d_head) columns multiplied by signs; `colAxis` is the d_head axis, `headAxis` the head axis. */
function withSigns(t: F32, signs: Int8Array, headAxis: number, colAxis: number, E: number): F32 {
  const dims = t.dims;
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((a, b) => a * b, 1));
  const data = new Float32Array(t.data.length);
  for (let i = 0; i < data.length; i++) {
    const h = Math.floor(i / strides[headAxis]!) % dims[headAxis]!;
    const e = Math.floor(i / strides[colAxis]!) % dims[colAxis]!;
    data[i] = t.data[i]! * signs[h * E + e]!;
  }
  return { ...t, data };
}

/** MechLens's refactored param or hook, aligned to TransformerLens's signs (identity for anything else). */
export function alignRefactorSigns(name: string, t: F32, signs: Map<string, Int8Array>): F32 {
  const p = /^blocks\.(\d+)\.attn\.(W_Q|W_K|b_Q|b_K|W_V|W_O|b_V|hook_q|hook_k|hook_v|hook_z)$/.exec(name);
  if (!p) return t;
  const kind = p[2]!;
  const group = ['W_Q', 'W_K', 'b_Q', 'b_K', 'hook_q', 'hook_k'].includes(kind) ? 'qk' : 'vo';
  const s = signs.get(`${p[1]}.${group}`);
  if (!s) return t;
  const nd = t.dims.length;
  // W_Q/W_K/W_V [head, d_model, d_head]; W_O [head, d_head, d_model]; b_* [head, d_head];
  // hooks [batch, pos, head, d_head].
  if (kind === 'W_O') return withSigns(t, s, 0, 1, t.dims[1]!);
  if (kind.startsWith('hook_')) return withSigns(t, s, 2, 3, t.dims[3]!);
  return withSigns(t, s, 0, nd - 1, t.dims[nd - 1]!);
}

export interface CompareOptions {
  atol?: number;
  /** TransformerLens hooks MechLens is known not to have (each must be listed in docs/DESIGN.md). */
  missingHooks?: (name: string) => boolean;
  /** Skip the patching sweeps (the slowest part). */
  skipPatching?: boolean;
}

const PATCH_SPECS: Record<string, PatchSweepSpec> = {
  resid_pre: { kind: 'layer_pos', hook: 'resid_pre' },
  attn_out: { kind: 'layer_pos', hook: 'attn_out' },
  mlp_out: { kind: 'layer_pos', hook: 'mlp_out' },
  head_z_all_pos: { kind: 'head', activation: 'z', by: 'all_pos' },
  head_q_all_pos: { kind: 'head', activation: 'q', by: 'all_pos' },
  head_k_all_pos: { kind: 'head', activation: 'k', by: 'all_pos' },
  head_v_all_pos: { kind: 'head', activation: 'v', by: 'all_pos' },
  head_pattern_all_pos: { kind: 'head', activation: 'pattern', by: 'all_pos' },
  head_z_by_pos: { kind: 'head', activation: 'z', by: 'pos' },
  head_q_by_pos: { kind: 'head', activation: 'q', by: 'pos' },
  head_k_by_pos: { kind: 'head', activation: 'k', by: 'pos' },
  head_v_by_pos: { kind: 'head', activation: 'v', by: 'pos' },
  head_pattern_by_pos: { kind: 'head', activation: 'pattern', by: 'pos' },
};

/** TransformerLens's axis names (index_axis_names) in MechLens's words. */
const AXIS_ALIASES: Record<string, string> = { head_index: 'head', dest_pos: 'pos' };

/** A sweep result transposed from MechLens's axis order to TransformerLens's. */
function transposeTo(values: Float64Array, dims: number[], axes: string[], wantAxes: string[]): { data: Float64Array; dims: number[] } {
  const norm = (a: string) => AXIS_ALIASES[a] ?? a;
  const perm = wantAxes.map((a) => axes.map(norm).indexOf(norm(a)));
  if (perm.some((p) => p < 0) || perm.length !== axes.length) throw new Error(`cannot map MechLens axes [${axes.join(', ')}] to TransformerLens's [${wantAxes.join(', ')}]`);
  const outDims = perm.map((p) => dims[p]!);
  const inStrides = dims.map((_, i) => dims.slice(i + 1).reduce((a, b) => a * b, 1));
  const out = new Float64Array(values.length);
  for (let i = 0; i < out.length; i++) {
    const c = flatIndexToCoords(i, outDims);
    let src = 0;
    for (let k = 0; k < c.length; k++) src += c[k]! * inStrides[perm[k]!]!;
    out[i] = values[src]!;
  }
  return { data: out, dims: outDims };
}

/**
 * Compares MechLens with TransformerLens on one fixture and processing mode: processed params,
 * logits, every hook, loss, logit difference, DLA (decompose_resid, stack_head_results,
 * apply_ln_to_stack, tokens_to_residual_directions, per-layer and per-head), the logit lens,
 * every patching sweep, the head detectors and test_prompt's ranks. Returns every check.
 */
export async function compareWithOracle(fx: OracleFixture, mode: Processing, opts: CompareOptions = {}): Promise<Check[]> {
  const atol = opts.atol ?? 1e-4;
  const exp = fx.expected.processing[mode];
  if (!exp) throw new Error(`${fx.name}: TransformerLens did not compute mode ${mode} (${fx.expected.unsupported[mode] ?? 'not generated'})`);
  const checks: Check[] = [];
  const model = engineModel(fx, mode);
  try {
    const cfg = model.cfg;
    const tokens: Tokens = fx.spec.tokens;
    const corrupted: Tokens = fx.spec.corrupted_tokens;
    const answers = fx.spec.answers;

    // Processed parameters (aligned up to SVD signs after refactoring).
    const want = expectedParams(fx, mode);
    const signs = mode === 'default+refactor' ? refactorSigns(model.params, want, cfg.n_layers) : new Map<string, Int8Array>();
    // A tied model's W_U is the one its factors stand for (model/unembed.ts), built whole here.
    const tied = isTiedUnembed(model.params);
    for (const [name, w] of want) {
      const g = name === 'unembed.W_U' && tied ? unembedMatrix(model.params) : model.params.get(name);
      checks.push(compareTensors(`params ${name}`, g && alignRefactorSigns(name, g, signs), w, atol));
    }
    for (const name of model.params.keys()) {
      if (!want.has(name) && !isTiedFactorName(name)) checks.push({ what: `params ${name}`, worst: Infinity, where: 'MechLens has it, TransformerLens does not', ok: false });
    }

    // Logits and every hook TransformerLens cached (hook_result included). Hooks MechLens does
    // not name yet are still compared, through the value they would hold.
    const known = new Set<string>(allHooks(cfg));
    const missing = exp.hooks.filter((h) => !known.has(h));
    const unexpected = missing.filter((h) => !(opts.missingHooks?.(h) ?? false));
    if (unexpected.length > 0) checks.push({ what: 'hook names', worst: Infinity, where: `TransformerLens caches ${unexpected.join(', ')}, MechLens has no such hook`, ok: false });
    const hooks = exp.hooks.filter((h) => known.has(h));
    const run = await model.runWithCache(tokens, { names: hooks as OutputName[] });
    checks.push(compareTensors('logits', run.logits, expectedTensor(fx, mode, 'logits'), atol));
    for (const h of hooks) {
      const g = run.cache.get(h as OutputName);
      checks.push(compareTensors(`hook ${h}`, g && alignRefactorSigns(h, g, signs), expectedTensor(fx, mode, h), atol));
    }
    for (const h of missing) {
      const derived = derivedHook(h, run.logits!, run.cache, model.params, (model.cfg.output_logits_soft_cap ?? 0) > 0);
      if (derived) checks.push(compareTensors(`hook ${h} (as MechLens computes it, unnamed)`, derived, expectedTensor(fx, mode, h), atol));
    }

    // Loss and logit difference.
    const logits = run.logits!;
    checks.push(compareArrays('loss', [loss(logits, tokens)], [exp.loss], [1], atol));
    checks.push(compareTensors('loss per token', loss(logits, tokens, { per_token: true }), expectedTensor(fx, mode, 'loss/per_token'), atol));
    const ld = logitDiff(logits, answers);
    const cld = logitDiff(await model.forward(corrupted), answers);
    checks.push(compareArrays('logit_diff', [ld], [exp.logit_diff], [1], atol));
    checks.push(compareArrays('corrupted_logit_diff', [cld], [exp.corrupted_logit_diff], [1], atol));

    // Direct logit attribution and the logit lens (last position).
    const cache = new ActivationCache(run.cache, cfg, model.params);
    const dirs = tokensToResidualDirections(model.params, answers.map((a) => a[0]), answers.map((a) => a[1]));
    checks.push(compareTensors('tokens_to_residual_directions', dirs, expectedTensor(fx, mode, 'dla/residual_directions'), atol));
    const dec = cache.decomposeResid(-1, { pos_slice: -1 });
    checks.push(compareTensors('decompose_resid', dec.stack, expectedTensor(fx, mode, 'dla/decompose_resid'), atol));
    checks.push(compareNested('decompose_resid labels', [dec.labels.length], [exp.layer_dla_labels.length], 0));
    if (dec.labels.join() !== exp.layer_dla_labels.join()) checks.push({ what: 'decompose_resid labels', worst: Infinity, where: `[${dec.labels.join(', ')}] vs [${exp.layer_dla_labels.join(', ')}]`, ok: false });
    checks.push(compareTensors('apply_ln_to_stack(decompose_resid)', cache.applyLnToStack(dec.stack, -1, { pos_slice: -1 }), expectedTensor(fx, mode, 'dla/decompose_resid_ln'), atol));
    const heads = cache.stackHeadResults(-1, { pos_slice: -1 });
    checks.push(compareTensors('stack_head_results', heads.stack, expectedTensor(fx, mode, 'dla/stack_head_results'), atol));
    checks.push(compareTensors('apply_ln_to_stack(stack_head_results)', cache.applyLnToStack(heads.stack, -1, { pos_slice: -1 }), expectedTensor(fx, mode, 'dla/stack_head_results_ln'), atol));
    if (heads.labels.join() !== exp.head_dla_labels.join()) checks.push({ what: 'stack_head_results labels', worst: Infinity, where: `[${heads.labels.join(', ')}] vs [${exp.head_dla_labels.join(', ')}]`, ok: false });
    checks.push(compareNested('head DLA', headDla(cache, answers), exp.head_dla, atol));
    checks.push(compareNested('layer DLA', layerDla(cache, answers), exp.layer_dla, atol));
    const lens = logitLens(cache, answers);
    checks.push(compareNested('logit lens', lens.values, exp.logit_lens.values, atol));
    if (lens.labels.join() !== exp.logit_lens.labels.join()) checks.push({ what: 'logit lens labels', worst: Infinity, where: `[${lens.labels.join(', ')}] vs [${exp.logit_lens.labels.join(', ')}]`, ok: false });

    // Activation patching, normalised logit-difference metric.
    if (!opts.skipPatching) {
      const metric = normalizedMetric(logitDiffMetric(answers), ld, cld);
      for (const [name, spec] of Object.entries(PATCH_SPECS)) {
        const wantT = expectedTensor(fx, mode, `patching/${name}`);
        const r = await runPatchSweep(model, tokens, corrupted, metric, spec);
        const t = transposeTo(r.values, r.dims, r.axes, exp.patching_axes[name]!);
        checks.push(t.dims.join() === wantT.dims.join()
          ? compareArrays(`patching ${name}`, t.data, wantT.data, wantT.dims, atol)
          : { what: `patching ${name}`, worst: Infinity, where: `shape [${t.dims.join(', ')}] vs TransformerLens [${wantT.dims.join(', ')}]`, ok: false });
      }
    }

    // Head detectors on the detector text's tokens.
    const variants: Record<string, SimilarityOptions> = { mul: {}, abs: { errorMeasure: 'abs' }, mul_exclude_bos_current: { excludeBos: true, excludeCurrentToken: true } };
    for (const [variant, o] of Object.entries(variants)) {
      for (const kind of HEAD_KINDS) {
        const w = exp.head_detectors[variant]?.[kind];
        if (!w) continue;
        checks.push(compareNested(`head detector ${kind} (${variant})`, await detectHeads(model, fx.spec.detector_tokens, kind, o), w, atol));
      }
    }

    // test_prompt's ranks: each answer token's rank among the predictions before it.
    const tp = exp.test_prompt;
    const tpLogits = await model.forward([tp.tokens]);
    const V = tpLogits.dims[2]!;
    const ranks = tp.answer_ranks.map((r, i) => {
      const pos = tp.tokens.length - tp.answer_ranks.length + i - 1;
      return rankOf(tpLogits.data.subarray(pos * V, (pos + 1) * V), r.token);
    });
    checks.push(compareArrays('test_prompt ranks', ranks, tp.answer_ranks.map((r) => r.rank), [ranks.length], 0));
  } finally {
    await model.dispose();
  }
  return checks;
}

/**
 * The value of a TransformerLens hook MechLens computes but does not name (yet): unembed.hook_out
 * is the logits (before a final-logit softcap: then unembed.hook_in · W_U + b_U), unembed.hook_in
 * ln_final's output (hook_normalized, times w plus b when ln_final has them).
 */
function derivedHook(name: string, logits: F32, cache: Map<OutputName, F32>, params: Params, softcapped: boolean): F32 | null {
  if (name === 'unembed.hook_out') {
    if (!softcapped) return logits;
    const x = derivedHook('unembed.hook_in', logits, cache, params, softcapped);
    const WU = isTiedUnembed(params) ? unembedMatrix(params) : params.get('unembed.W_U');
    const bU = params.get('unembed.b_U');
    if (!x || !WU || !bU) return null;
    // [batch, pos, d_model] x [d_model, d_vocab_out] + [d_vocab_out]
    const [D, V] = WU.dims as [number, number];
    const rows = x.data.length / D;
    const out = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < V; v++) {
        let acc = bU.data[v]!;
        for (let d = 0; d < D; d++) acc += x.data[r * D + d]! * WU.data[d * V + v]!;
        out[r * V + v] = acc;
      }
    }
    return { ...logits, data: out };
  }
  if (name !== 'unembed.hook_in') return null;
  const x = cache.get('ln_final.hook_normalized');
  if (!x) return null;
  const w = params.get('ln_final.w')?.data;
  const b = params.get('ln_final.b')?.data;
  if (!w) return x;
  const d = w.length;
  return { ...x, data: x.data.map((v, i) => v * w[i % d]! + (b ? b[i % d]! : 0)) };
}

/** A table of the checks (worst first), for the test log. */
export function formatChecks(title: string, checks: readonly Check[]): string {
  const bad = checks.filter((c) => !c.ok);
  const worst = [...checks].filter((c) => Number.isFinite(c.worst)).sort((a, b) => b.worst - a.worst)[0];
  const lines = [`${title}: ${checks.length} checks, ${bad.length} failed; worst within tolerance: ${worst ? `${worst.what} ${worst.worst.toExponential(2)} ${worst.where}` : '-'}`];
  for (const c of bad) lines.push(`  FAIL ${c.what}: max |diff| ${c.worst} ${c.where}`);
  return lines.join('\n');
}

/** Throws with every failed check (worst |diff| and where) listed. */
export function assertChecks(title: string, checks: readonly Check[]): void {
  if (checks.some((c) => !c.ok)) throw new Error(formatChecks(title, checks));
}
