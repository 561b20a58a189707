/**
 * ActivationCache against the tiny GPT-2 fixture (every hook of a 2-layer model for the
 * processing modes 'none', 'default', 'default+refactor'): decomposition invariants, the LN
 * handling, slicing, projections, a batch-less cache, and the error messages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { makeConfig, type HookedTransformerConfig } from '../../src/engine/model/config.js';
import { configFromHfGpt2 } from '../../src/engine/arch/gpt2.js';
import { PROCESSING_MODES, type Params, type Processing } from '../../src/engine/model/params.js';
import { f32, type F32 } from '../../src/engine/tensor/tensor.js';
import {
  ActivationCache,
  accumulatedBias,
  answerResidualDirections,
  resolveSlice,
  tokensToResidualDirections,
} from '../../src/engine/cache/activationCache.js';

// TransformerLens's own activations and processed params (the oracle fixture, see test/helpers/oracle.ts).
const DIR = path.join(__dirname, '..', 'fixtures', 'gpt2-tied-gelu-new');
const ALL = readSafetensors(path.join(DIR, 'expected.safetensors'));
const SPEC = JSON.parse(fs.readFileSync(path.join(DIR, 'spec.json'), 'utf8')) as { tokens: number[][]; answers: number[][] };
const HF = JSON.parse(fs.readFileSync(path.join(DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
const ATOL = 1e-4;

function prefixed(prefix: string): Map<string, F32> {
  const m = new Map<string, F32>();
  for (const [k, v] of ALL) if (k.startsWith(prefix)) m.set(k.slice(prefix.length), v);
  return m;
}

/** Hooks (without logits, params and the analyses) of one mode. */
function hooksOf(mode: Processing): Map<string, F32> {
  const m = prefixed(`${mode}/`);
  for (const k of [...m.keys()]) if (k === 'logits' || /^(params|dla|lens|patching|loss)\//.test(k) || k.startsWith('unembed.')) m.delete(k);
  return m;
}

/** The processed params of a mode; 'default+refactor' stores only those refactoring changed (the rest are 'default's). */
function paramsOf(mode: Processing): Params {
  return mode === 'default+refactor' ? new Map([...prefixed('default/params/'), ...prefixed('default+refactor/params/')]) : prefixed(`${mode}/params/`);
}

function cfgOf(mode: Processing): HookedTransformerConfig {
  const base = configFromHfGpt2(HF, 'gpt2-tied-gelu-new');
  return mode === 'none' ? base : makeConfig({ ...base, normalization_type: 'LNPre' });
}

function cacheOf(mode: Processing, drop: readonly string[] = []): ActivationCache {
  const h = hooksOf(mode);
  for (const k of drop) h.delete(k);
  return new ActivationCache(h, cfgOf(mode), paramsOf(mode));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, what: string, atol = ATOL): void {
  const m = maxDiff(a, b);
  assert.ok(m <= atol, `${what}: max |difference| ${m.toExponential(3)} > ${atol}`);
}

/** Sum over axis 0 of a [component, ...rest] stack -> [...rest] flat. */
function sumComponents(t: F32): Float64Array {
  const C = t.dims[0]!;
  const n = t.data.length / C;
  const out = new Float64Array(n);
  for (let c = 0; c < C; c++) for (let i = 0; i < n; i++) out[i]! += t.data[c * n + i]!;
  return out;
}

/** Component c of a stack as a flat view. */
function comp(t: F32, c: number): Float32Array {
  const n = t.data.length / t.dims[0]!;
  return t.data.subarray(c * n, (c + 1) * n);
}

/** x [rows, d] @ P [d, K] -> [rows, K]. */
function matmul(x: Float32Array, d: number, P: Float32Array, K: number): Float64Array {
  const rows = x.length / d;
  const out = new Float64Array(rows * K);
  for (let r = 0; r < rows; r++) for (let i = 0; i < d; i++) for (let k = 0; k < K; k++) out[r * K + k]! += x[r * d + i]! * P[i * K + k]!;
  return out;
}

const B = SPEC.tokens.length;
const P = SPEC.tokens[0]!.length;
const D = 32;
const VOCAB = Number(HF['vocab_size']);

for (const mode of PROCESSING_MODES) {
  test(`[${mode}] the fixture's logits follow from the final residual and these W_U / b_U`, () => {
    // Verifies the claim that 'default+refactor' can use 'default' params for W_U / b_U.
    const cache = cacheOf(mode);
    const p = paramsOf(mode);
    const { stack, labels } = cache.accumulatedResid(-1, { apply_ln: true });
    assert.equal(labels.at(-1), 'final_post');
    const normed = comp(stack, stack.dims[0]! - 1);
    const w = p.get('ln_final.w')?.data;
    const b = p.get('ln_final.b')?.data;
    const x = new Float32Array(normed.length);
    for (let i = 0; i < x.length; i++) x[i] = normed[i]! * (w ? w[i % D]! : 1) + (b ? b[i % D]! : 0);
    const V = VOCAB;
    const logits = matmul(x, D, p.get('unembed.W_U')!.data, V);
    const bU = p.get('unembed.b_U')!.data;
    for (let i = 0; i < logits.length; i++) logits[i]! += bU[i % V]!;
    assertClose(logits, ALL.get(`${mode}/logits`)!.data, `${mode} logits`);
  });

  test(`[${mode}] decomposeResid components sum to the residual stream they decompose`, () => {
    const cache = cacheOf(mode);
    for (let L = 0; L <= 2; L++) {
      const { stack, labels } = cache.decomposeResid(L);
      const want = L < 2 ? `blocks.${L}.hook_resid_pre` : 'blocks.1.hook_resid_post';
      assertClose(sumComponents(stack), cache.get(want).data, `decomposeResid(${L}) vs ${want}`);
      assert.equal(labels.length, 2 + 2 * L);
      assert.deepEqual(stack.dims, [2 + 2 * L, B, P, D]);
      if (L < 2) {
        const mid = cache.decomposeResid(L, { mlp_input: true });
        assert.equal(mid.labels.at(-1), `${L}_attn_out`);
        assertClose(sumComponents(mid.stack), cache.get(`blocks.${L}.hook_resid_mid`).data, `decomposeResid(${L}, mlp_input)`);
      }
    }
    assert.deepEqual(cache.decomposeResid().labels, ['embed', 'pos_embed', '0_attn_out', '0_mlp_out', '1_attn_out', '1_mlp_out']);
    assert.deepEqual(cache.decomposeResid(-1, { mode: 'attn' }).labels, ['embed', 'pos_embed', '0_attn_out', '1_attn_out']);
    assert.deepEqual(cache.decomposeResid(-1, { mode: 'mlp', incl_embeds: false }).labels, ['0_mlp_out', '1_mlp_out']);
    assert.deepEqual(cache.decomposeResid(0, { incl_embeds: false }).stack.dims, [0, B, P, D]);
  });

  test(`[${mode}] stackHeadResults: heads + b_O = hook_attn_out per layer`, () => {
    const cache = cacheOf(mode);
    const p = paramsOf(mode);
    const { stack, labels } = cache.stackHeadResults();
    assert.deepEqual(stack.dims, [8, B, P, D]);
    assert.deepEqual(stack.axes, ['component', 'batch', 'pos', 'd_model']);
    assert.deepEqual(labels, ['L0H0', 'L0H1', 'L0H2', 'L0H3', 'L1H0', 'L1H1', 'L1H2', 'L1H3']);
    const n = B * P * D;
    for (let l = 0; l < 2; l++) {
      const s = new Float64Array(n);
      for (let h = 0; h < 4; h++) {
        const c = comp(stack, l * 4 + h);
        for (let i = 0; i < n; i++) s[i]! += c[i]!;
      }
      const bO = p.get(`blocks.${l}.attn.b_O`)!.data;
      for (let i = 0; i < n; i++) s[i]! += bO[i % D]!;
      assertClose(s, cache.get(`blocks.${l}.hook_attn_out`).data, `layer ${l} heads + b_O`);
    }
    assert.deepEqual(cache.stackHeadResults(1).labels, ['L0H0', 'L0H1', 'L0H2', 'L0H3']);
    assert.deepEqual(cache.stackHeadResults(0).stack.dims, [0, B, P, D]);
    const rem = cache.stackHeadResults(-1, { incl_remainder: true });
    assert.equal(rem.labels.at(-1), 'remainder');
    assertClose(sumComponents(rem.stack), cache.get('blocks.1.hook_resid_post').data, 'heads + remainder');
  });

  test(`[${mode}] accumulatedResid: labels, and the last component is the final resid_post`, () => {
    const cache = cacheOf(mode);
    const { stack, labels } = cache.accumulatedResid(-1, { incl_mid: true });
    assert.deepEqual(labels, ['0_pre', '0_mid', '1_pre', '1_mid', 'final_post']);
    assert.deepEqual(stack.dims, [5, B, P, D]);
    assertClose(comp(stack, 4), cache.get('blocks.1.hook_resid_post').data, 'final_post');
    assertClose(comp(stack, 1), cache.get('blocks.0.hook_resid_mid').data, '0_mid');
    assert.deepEqual(cache.accumulatedResid().labels, ['0_pre', '1_pre', 'final_post']);
    assert.deepEqual(cache.accumulatedResid(1).labels, ['0_pre', '1_pre']);
    assert.deepEqual(cache.accumulatedResid(1, { mlp_input: true, incl_mid: true }).labels, ['0_pre', '0_mid', '1_pre', '1_mid']);
  });

  test(`[${mode}] getFullResidDecomposition sums to the residual stream`, () => {
    const cache = cacheOf(mode);
    const full = cache.getFullResidDecomposition();
    assert.equal(full.labels.length, 8 + 2 * 128 + 3);
    assert.deepEqual(full.labels.slice(7, 10), ['L1H3', 'L0N0', 'L0N1']);
    assert.deepEqual(full.labels.slice(-3), ['embed', 'pos_embed', 'bias']);
    assert.deepEqual(full.stack.dims, [8 + 256 + 3, B, P, D]);
    assertClose(sumComponents(full.stack), cache.get('blocks.1.hook_resid_post').data, 'full decomposition (neurons)');
    const coarse = cache.getFullResidDecomposition(-1, { expand_neurons: false });
    assert.deepEqual(coarse.labels.slice(8), ['0_mlp_out', '1_mlp_out', 'embed', 'pos_embed', 'bias']);
    assertClose(sumComponents(coarse.stack), cache.get('blocks.1.hook_resid_post').data, 'full decomposition (mlp_out)');
    const l1 = cache.getFullResidDecomposition(1);
    assertClose(sumComponents(l1.stack), cache.get('blocks.1.hook_resid_pre').data, 'decomposition of resid_pre 1');
    const l1mid = cache.getFullResidDecomposition(1, { mlp_input: true, pos_slice: -1 });
    assert.equal(l1mid.labels.filter((s) => s.startsWith('L1H')).length, 4);
    const mid = cache.accumulatedResid(1, { mlp_input: true, pos_slice: -1 }).stack;
    assertClose(sumComponents(l1mid.stack), comp(mid, mid.dims[0]! - 1), 'decomposition of resid_mid 1 at pos -1');
    const l0 = cache.getFullResidDecomposition(0);
    assert.deepEqual(l0.labels, ['embed', 'pos_embed', 'bias']);
    assertClose(sumComponents(l0.stack), cache.get('blocks.0.hook_resid_pre').data, 'decomposition at layer 0');
  });

  test(`[${mode}] apply_ln is linear: normalised components sum to the normalised residual`, () => {
    const cache = cacheOf(mode);
    const { stack } = cache.decomposeResid(-1, { apply_ln: true });
    // The fixture's ln_final.hook_normalized is (x - mean) / scale (before any LN weight).
    assertClose(sumComponents(stack), cache.get('ln_final.hook_normalized').data, 'sum of LN components');
    const full = cache.getFullResidDecomposition(-1, { apply_ln: true, pos_slice: { start: 2, stop: 6 } });
    const want = cache.accumulatedResid(-1, { apply_ln: true, pos_slice: { start: 2, stop: 6 } }).stack;
    assertClose(sumComponents(full.stack), comp(want, want.dims[0]! - 1), 'full decomposition, LN, pos 2..5');
    const l1 = cache.decomposeResid(1, { apply_ln: true, mlp_input: true });
    assertClose(sumComponents(l1.stack), cache.get('blocks.1.ln2.hook_normalized').data, 'ln2 input');
  });

  test(`[${mode}] projections match project-after-decompose`, () => {
    const cache = cacheOf(mode);
    const K = 3;
    const Pm = new Float32Array(D * K);
    for (let i = 0; i < Pm.length; i++) Pm[i] = Math.sin(i * 0.7) + 0.1;
    const proj = f32([D, K], Pm);
    for (const apply_ln of [false, true]) {
      const dense = cache.getFullResidDecomposition(-1, { apply_ln, pos_slice: [0, -1] });
      const projected = cache.getFullResidDecomposition(-1, { apply_ln, pos_slice: [0, -1], project_output_onto: proj });
      assert.deepEqual(projected.stack.dims, [dense.stack.dims[0], B, 2, K]);
      assert.deepEqual(projected.labels, dense.labels);
      assertClose(projected.stack.data, matmul(dense.stack.data, D, Pm, K), `full decomposition projected (apply_ln ${apply_ln})`);
      const nd = cache.stackNeuronResults(2, { apply_ln, pos_slice: -1, incl_remainder: true });
      const np = cache.stackNeuronResults(2, { apply_ln, pos_slice: -1, incl_remainder: true, project_output_onto: proj });
      assertClose(np.stack.data, matmul(nd.stack.data, D, Pm, K), `neurons projected (apply_ln ${apply_ln})`);
    }
    const vec = f32([D], Pm.slice(0, D));
    const v = cache.getFullResidDecomposition(-1, { pos_slice: -1, project_output_onto: vec, expand_neurons: false });
    assert.deepEqual(v.stack.dims, [8 + 2 + 3, B]);
  });
}

test('hook_result missing: head results are computed from hook_z and W_O', () => {
  for (const mode of ['none', 'default'] as const) {
    const full = cacheOf(mode);
    const drop = ['blocks.0.attn.hook_result', 'blocks.1.attn.hook_result'];
    const fromZ = cacheOf(mode, drop);
    assertClose(fromZ.stackHeadResults(-1, { pos_slice: { start: 1, step: 3 } }).stack.data, full.stackHeadResults(-1, { pos_slice: { start: 1, step: 3 } }).stack.data, `${mode} heads from z`);
    assert.equal(fromZ.has('blocks.0.attn.hook_result'), false);
    fromZ.computeHeadResults();
    assertClose(fromZ.get('blocks.1.attn.hook_result').data, full.get('blocks.1.attn.hook_result').data, `${mode} computeHeadResults`);
  }
  // 'default+refactor' rewrote W_O: its own W_O turns its hook_z into its results, the 'default'
  // W_O does not.
  const refZ = new ActivationCache(hooksOf('default+refactor'), cfgOf('default+refactor'), paramsOf('default+refactor'));
  const drop = ['blocks.0.attn.hook_result', 'blocks.1.attn.hook_result'];
  const h = hooksOf('default+refactor');
  for (const k of drop) h.delete(k);
  assertClose(new ActivationCache(h, cfgOf('default+refactor'), paramsOf('default+refactor')).stackHeadResults(1).stack.data, refZ.stackHeadResults(1).stack.data, 'refactored heads from z');
  const withDefaultWO = new ActivationCache(h, cfgOf('default+refactor'), paramsOf('default')).stackHeadResults(1).stack.data;
  assert.ok(maxDiff(withDefaultWO, refZ.stackHeadResults(1).stack.data) > 1e-2, 'refactored W_O differs from default W_O');
});

test('pos_slice: single position drops the axis; ranges and lists keep it', () => {
  const cache = cacheOf('default');
  const full = cache.decomposeResid().stack;
  const last = cache.decomposeResid(-1, { pos_slice: -1 }).stack;
  assert.deepEqual(last.dims, [6, B, D]);
  assert.deepEqual(last.axes, ['component', 'batch', 'd_model']);
  const pick = (t: F32, c: number, b: number, p: number): Float32Array => t.data.subarray(((c * B + b) * P + p) * D, ((c * B + b) * P + p + 1) * D);
  assertClose(last.data.subarray(((2 * B + B - 1) * D), (2 * B + B) * D), pick(full, 2, B - 1, P - 1), 'pos -1');
  const list = cache.decomposeResid(-1, { pos_slice: [5, 0] }).stack;
  assert.deepEqual(list.dims, [6, B, 2, D]);
  assertClose(list.data.subarray(((1 * B + B - 1) * 2 + 0) * D, ((1 * B + B - 1) * 2 + 1) * D), pick(full, 1, B - 1, 5), 'pos [5, 0]');
  assert.deepEqual(resolveSlice({ start: 1, stop: 7, step: 2 }, 8).indices, [1, 3, 5]);
  assert.deepEqual(resolveSlice({ start: -3 }, 8).indices, [5, 6, 7]);
  assert.deepEqual(resolveSlice({ stop: -6 }, 8).indices, [0, 1]);
  assert.deepEqual(resolveSlice({ step: -3 }, 8).indices, [7, 4, 1]);
  assert.deepEqual(resolveSlice({ start: 20 }, 8).indices, []);
  assert.equal(resolveSlice(null, 8).identity, true);
  assert.equal(resolveSlice(-8, 8).indices[0], 0);
});

test('logitAttrs: fused LN + dot equals applyLnToStack then W_U columns; broadcasting', () => {
  const cache = cacheOf('none');
  const p = paramsOf('none');
  const correct = SPEC.answers.map((a) => a[0]!);
  const wrong = SPEC.answers.map((a) => a[1]!);
  const { stack } = cache.decomposeResid();
  const attrs = cache.logitAttrs(stack, correct, wrong);
  assert.deepEqual(attrs.dims, [6, B, P]);
  assert.deepEqual(attrs.axes, ['component', 'batch', 'pos']);
  const normed = cache.applyLnToStack(stack);
  const dirs = answerResidualDirections(p, SPEC.answers);
  assert.deepEqual(dirs.dims, [B, D]);
  const want = new Float64Array(6 * B * P);
  for (let c = 0; c < 6; c++) for (let b = 0; b < B; b++) for (let q = 0; q < P; q++) {
    let s = 0;
    for (let i = 0; i < D; i++) s += normed.data[((c * B + b) * P + q) * D + i]! * dirs.data[b * D + i]!;
    want[(c * B + b) * P + q] = s;
  }
  assertClose(attrs.data, want, 'logitAttrs per-example directions');
  // [batch, pos] tokens: each position its own token.
  const grid = SPEC.tokens;
  const g = cache.logitAttrs(stack, grid);
  const td = tokensToResidualDirections(p, grid);
  assert.deepEqual(td.dims, [B, P, D]);
  let s = 0;
  for (let i = 0; i < D; i++) s += normed.data[((3 * B + B - 1) * P + 5) * D + i]! * td.data[((B - 1) * P + 5) * D + i]!;
  assert.ok(Math.abs(g.data[(3 * B + B - 1) * P + 5]! - s) < ATOL);
  // A single token broadcasts everywhere.
  const one = cache.logitAttrs(stack, 7);
  assert.deepEqual(one.dims, [6, B, P]);
  // batch_slice selects prompts on both the stack and the scale.
  const sub = cache.logitAttrs(cache.decomposeResid(-1, { pos_slice: -1 }).stack, [correct[1]!], [wrong[1]!], { pos_slice: -1, batch_slice: [1] });
  assert.deepEqual(sub.dims, [6, 1]);
  for (let c = 0; c < 6; c++) assert.ok(Math.abs(sub.data[c]! - want[(c * B + 1) * P + P - 1]!) < ATOL);
});

test('a cache without a batch axis gives the batch-0 rows', () => {
  const cfg = cfgOf('default');
  const hooks = new Map<string, F32>();
  for (const [k, v] of hooksOf('default')) {
    const n = v.data.length / v.dims[0]!;
    hooks.set(k, f32(v.dims.slice(1), v.data.slice(0, n)));
  }
  const one = new ActivationCache(hooks, cfg, paramsOf('default'), { hasBatchDim: false });
  const both = cacheOf('default');
  const a = one.getFullResidDecomposition(-1, { apply_ln: true, pos_slice: -1 });
  const b = both.getFullResidDecomposition(-1, { apply_ln: true, pos_slice: -1 });
  assert.deepEqual(a.stack.dims, [b.stack.dims[0], D]);
  const C = b.stack.dims[0]!;
  const b0 = new Float32Array(C * D);
  for (let c = 0; c < C; c++) b0.set(b.stack.data.subarray(c * B * D, c * B * D + D), c * D);
  assertClose(a.stack.data, b0, 'batch-less decomposition');
  const attrs = one.logitAttrs(one.stackHeadResults(-1, { pos_slice: -1 }).stack, SPEC.answers[0]![0]!, SPEC.answers[0]![1]!, { pos_slice: -1 });
  assert.deepEqual(attrs.dims, [8]);
});

test('accumulatedBias and tokensToResidualDirections', () => {
  const p = paramsOf('default');
  const cfg = cfgOf('default');
  const bias = accumulatedBias(p, cfg, 1, true).data;
  const want = p.get('blocks.0.attn.b_O')!.data.map((v, i) => v + p.get('blocks.0.mlp.b_out')!.data[i]! + p.get('blocks.1.attn.b_O')!.data[i]!);
  assertClose(bias, want, 'accumulated bias');
  const d = tokensToResidualDirections(p, 3);
  assert.deepEqual(d.dims, [D]);
  assert.equal(d.data[5], p.get('unembed.W_U')!.data[5 * VOCAB + 3]);
  assert.throws(() => tokensToResidualDirections(p, [1, 2], [3]), /same shape/);
  assert.throws(() => tokensToResidualDirections(p, VOCAB), new RegExp(`not in 0\\.\\.${VOCAB - 1}`));
  assert.throws(() => answerResidualDirections(p, [[1, 2, 3]]), /\[correct, wrong\] pair/);
});

test('errors: missing hooks name what the cache holds', () => {
  const cache = cacheOf('default', ['ln_final.hook_scale', 'blocks.1.attn.hook_result', 'blocks.1.attn.hook_z']);
  assert.throws(() => cache.get('blocks.0.hook_resid_prex'), (e: Error) => {
    assert.match(e.message, /no activation "blocks\.0\.hook_resid_prex"/);
    assert.match(e.message, /not a TransformerLens hook name/);
    assert.match(e.message, /blocks\.\{0-1\}\.hook_resid_pre/);
    assert.match(e.message, /hook_embed/);
    return true;
  });
  assert.throws(() => cache.get('blocks.5.hook_resid_pre'), /the model has 2 layers/);
  assert.throws(() => cache.get('ln_final.hook_scale'), /cache this hook/);
  assert.throws(() => cache.decomposeResid(-1, { apply_ln: true }), /apply_ln needs the cached LayerNorm scale ln_final\.hook_scale/);
  assert.throws(() => cache.logitAttrs(cache.decomposeResid().stack, 1), /ln_final\.hook_scale/);
  assert.throws(() => cache.stackHeadResults(), /need blocks\.1\.attn\.hook_result or blocks\.1\.attn\.hook_z/);
  assert.throws(() => new ActivationCache(new Map(), cfgOf('none'), paramsOf('none')).get('hook_embed'), /the cache is empty/);
});

test('errors: bad pos_slice, layer and mismatched stacks', () => {
  const cache = cacheOf('none');
  assert.throws(() => cache.decomposeResid(-1, { pos_slice: P }), new RegExp(`pos_slice: index ${P} is out of range for an axis of length ${P} \\(valid: -${P}\\.\\.${P - 1}\\)`));
  assert.throws(() => cache.decomposeResid(-1, { pos_slice: -(P + 1) }), /out of range/);
  assert.throws(() => cache.decomposeResid(-1, { pos_slice: 1.5 }), /not an integer index/);
  assert.throws(() => cache.decomposeResid(-1, { pos_slice: [0, P + 1] }), new RegExp(`index ${P + 1} is out of range`));
  assert.throws(() => cache.decomposeResid(-1, { pos_slice: { step: 0 } }), /step cannot be 0/);
  assert.throws(() => cache.decomposeResid(-1, { pos_slice: { start: 0.5 } }), /start must be an integer/);
  assert.throws(() => cache.decomposeResid(-1, { pos_slice: 'last' as unknown as number }), /expected a number, an array/);
  assert.throws(() => cache.accumulatedResid(3), /layer must be an integer in 0\.\.2/);
  assert.throws(() => cache.decomposeResid(2, { mlp_input: true }), /mlp_input needs a layer below n_layers/);
  const full = cache.decomposeResid().stack;
  assert.throws(() => cache.applyLnToStack(full, -1, { pos_slice: -1 }), /pass the pos_slice/);
  assert.throws(() => cache.logitAttrs(full, [1, 2, 3], null), /do not broadcast/);
  assert.throws(() => cache.applyLnToStack(f32([1, 4], new Float32Array(4))), /d_model=32/);
  assert.throws(() => cache.getFullResidDecomposition(-1, { project_output_onto: f32([4], new Float32Array(4)) }), /project_output_onto must be \[d_model=32\]/);
  assert.throws(() => cache.accumulatedResid(1, { apply_ln: true, recompute_ln: true }), /only to the final layer/);
});

test('recompute_ln normalises each component with its own statistics', () => {
  const cache = cacheOf('default');
  const { stack } = cache.accumulatedResid(-1, { apply_ln: true, recompute_ln: true, pos_slice: -1 });
  // The final component equals the real ln_final output; every row has mean 0 and RMS ~1.
  const final = comp(stack, 2);
  const want = cache.get('ln_final.hook_normalized').data;
  const last = new Float32Array(B * D);
  for (let b = 0; b < B; b++) last.set(want.subarray((b * P + P - 1) * D, (b * P + P) * D), b * D);
  assertClose(final, last, 'recomputed final LN');
  const first = comp(stack, 0);
  let ms = 0;
  for (let i = 0; i < D; i++) ms += first[i]! * first[i]!;
  assert.ok(Math.abs(ms / D - 1) < 1e-2);
});
