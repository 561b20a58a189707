import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { applyProcessing, processWeights, processingOptions } from '../../src/engine/weights/process.js';
import { factoredSvd, identity, mat, matmul, maxAbsDiffMat, scaleCols, svd, transpose, type Mat, type Svd } from '../../src/engine/weights/linalg.js';
import { expectedHook, fixtureConfig, fixtureParams } from '../helpers/fixture.js';
import { maxAbsDiff, type F32 } from '../../src/engine/tensor/tensor.js';
import type { Params } from '../../src/engine/model/params.js';
import type { HookedTransformerConfig } from '../../src/engine/model/config.js';
import { mulberry32 } from '../../src/engine/tensor/mulberry32.js';

const ATOL = 1e-5;
const HOOK_ATOL = 1e-4;

function get(p: Params, name: string): F32 {
  const t = p.get(name);
  assert.ok(t, `missing param ${name}`);
  return t;
}

/** Deterministic uniform [-1, 1) numbers (mulberry32), so failures reproduce. */
function rng(seed: number): () => number {
  const u = mulberry32(seed);
  return () => u() * 2 - 1;
}

function randMat(rows: number, cols: number, seed: number): Mat {
  const r = rng(seed);
  const m = mat(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = r();
  return m;
}

/** Head h of a [head_index, rows, cols] tensor as a float64 matrix. */
function headMat(t: F32, h: number): Mat {
  const [, rows, cols] = t.dims as [number, number, number];
  return mat(rows, cols, t.data.subarray(h * rows * cols, (h + 1) * rows * cols));
}

/** [W; b[h]] ([d_model+1, d_head]): the weight with its bias as an extra input row. */
function withBiasRow(W: F32, b: F32, h: number): Mat {
  const w = headMat(W, h);
  const E = w.cols;
  const out = mat(w.rows + 1, E);
  out.data.set(w.data);
  for (let e = 0; e < E; e++) out.data[w.rows * E + e] = b.data[h * E + e]!;
  return out;
}

function snapshot(p: Params): Map<string, { t: F32; data: Float32Array }> {
  return new Map([...p].map(([k, t]) => [k, { t, data: Float32Array.from(t.data) }]));
}

function assertUnchanged(p: Params, snap: Map<string, { t: F32; data: Float32Array }>, what: string): void {
  assert.deepEqual([...p.keys()], [...snap.keys()], `${what}: input Map's keys changed`);
  for (const [k, s] of snap) {
    assert.equal(p.get(k), s.t, `${what}: input Map entry ${k} was replaced`);
    assert.ok(maxAbsDiff(s.t, { ...s.t, data: s.data }) === 0 && s.t.data.every((x, i) => Object.is(x, s.data[i])), `${what}: input tensor ${k} was mutated`);
  }
}

test('processingOptions maps each mode to TransformerLens flags', () => {
  assert.deepEqual(processingOptions('none'), {
    fold_ln: false, center_writing_weights: false, center_unembed: false, fold_value_biases: false, refactor_factored_attn_matrices: false,
  });
  assert.deepEqual(processingOptions('default'), {
    fold_ln: true, center_writing_weights: true, center_unembed: true, fold_value_biases: true, refactor_factored_attn_matrices: false,
  });
  assert.deepEqual(processingOptions('default+refactor'), { ...processingOptions('default'), refactor_factored_attn_matrices: true });
});

test("'none' params processed with 'default' equal the fixture's default params", () => {
  const cfg = fixtureConfig();
  assert.equal(cfg.normalization_type, 'LN');
  const out = applyProcessing(cfg, fixtureParams('none'), 'default');
  const want = fixtureParams('default');
  assert.equal(out.cfg.normalization_type, 'LNPre');
  assert.equal(cfg.normalization_type, 'LN', 'input cfg must not change');
  assert.deepEqual(out.notes, []);
  const failures: string[] = [];
  for (const [name, t] of want) {
    const got = out.params.get(name);
    if (!got) {
      failures.push(`${name}: missing`);
      continue;
    }
    const d = maxAbsDiff(got, t);
    if (!(d <= ATOL)) failures.push(`${name}: max |diff| ${d}`);
  }
  for (const name of out.params.keys()) if (!want.has(name)) failures.push(`${name}: not in the fixture's default params`);
  assert.deepEqual(failures, [], `tensors differing from the fixture (atol ${ATOL}):\n${failures.join('\n')}`);
  assert.ok(![...out.params.keys()].some((k) => /ln(1|2|_final)\./.test(k)), 'LayerNorm params must be gone after fold_ln');
});

test('processing never mutates its input params or cfg', () => {
  const cfg = fixtureConfig();
  const cfgCopy = structuredClone(cfg);
  const none = fixtureParams('none');
  const snap = snapshot(none);
  for (const mode of ['none', 'default', 'default+refactor'] as const) {
    const out = applyProcessing(cfg, none, mode);
    assert.notEqual(out.params, none, 'must return a new Map');
    assertUnchanged(none, snap, mode);
    assert.deepEqual(cfg, cfgCopy);
    for (const [k, t] of out.params) {
      const s = snap.get(k);
      // A tensor whose values changed must be a new object (not the caller's, written over).
      if (s && t !== s.t) assert.notEqual(t.data, s.t.data, `${mode}: ${k} shares its buffer with the input`);
    }
  }
});

test('consume: processing writes into the handed-over tensors, with the same values as a copying run; tensors sharing memory are copied first', () => {
  const cfg = fixtureConfig();
  for (const mode of ['default', 'default+refactor'] as const) {
    const ref = applyProcessing(cfg, fixtureParams('none'), mode);
    // Own copies: the fixture's tensors are shared by every test.
    const input: Params = new Map([...fixtureParams('none')].map(([k, t]) => [k, { ...t, data: t.data.slice() }]));
    // Two parameters that are views of one array (as a loader might hand over a tied pair):
    // processing either must not change the other.
    const wpos = get(input, 'pos_embed.W_pos');
    const shared = new Float32Array(wpos.data.length * 2);
    shared.set(wpos.data);
    shared.set(wpos.data, wpos.data.length);
    input.set('pos_embed.W_pos', { ...wpos, data: shared.subarray(0, wpos.data.length) });
    const aliasView = shared.subarray(wpos.data.length / 2, wpos.data.length * 1.5);
    const aliasBefore = aliasView.slice();
    input.set('extra.alias', { dtype: 'float32', dims: [aliasView.length], data: aliasView });
    const WE = get(input, 'embed.W_E').data;
    const out = applyProcessing(cfg, input, mode, { consume: true });
    assert.equal(get(out.params, 'embed.W_E').data, WE, `${mode}: W_E is processed in place`);
    assert.notEqual(get(out.params, 'pos_embed.W_pos').data.buffer, shared.buffer, `${mode}: an aliased tensor is copied before its write`);
    assert.deepEqual(get(out.params, 'extra.alias').data, aliasBefore, `${mode}: the other view is unchanged`);
    for (const [k, t] of ref.params) assert.equal(maxAbsDiff(get(out.params, k), t), 0, `${mode}: ${k} differs from the copying run`);
  }
});

test("'default' processing is idempotent and skips fold_ln on already-folded params", () => {
  const cfg = fixtureConfig();
  const once = applyProcessing(cfg, fixtureParams('none'), 'default');
  const twice = applyProcessing(once.cfg, once.params, 'default');
  assert.equal(twice.cfg.normalization_type, 'LNPre');
  assert.match(twice.notes.join('\n'), /fold_ln skipped: no LayerNorm weights/);
  for (const [k, t] of once.params) assert.ok(maxAbsDiff(get(twice.params, k), t) <= 1e-6, `${k} changed on re-processing`);
});

test('without LayerNorm, fold_ln and center_writing_weights are skipped; center_unembed and fold_value_biases still apply', () => {
  const base = fixtureConfig();
  const cfg: HookedTransformerConfig = { ...base, normalization_type: null };
  const params: Params = new Map([...fixtureParams('none')].filter(([k]) => !/ln(1|2|_final)\./.test(k)));
  const out = applyProcessing(cfg, params, 'default');
  assert.equal(out.cfg.normalization_type, null);
  assert.equal(out.notes.length, 2, out.notes.join('\n'));
  for (const k of ['embed.W_E', 'pos_embed.W_pos', 'blocks.0.attn.W_Q', 'blocks.0.attn.W_O', 'blocks.1.mlp.W_in', 'blocks.1.mlp.W_out']) {
    assert.equal(get(out.params, k), get(params, k), `${k} must be untouched`);
  }
  const WU = get(out.params, 'unembed.W_U');
  const [D, V] = WU.dims as [number, number];
  for (let d = 0; d < D; d++) {
    let s = 0;
    for (let v = 0; v < V; v++) s += WU.data[d * V + v]!;
    assert.ok(Math.abs(s / V) < 1e-6, 'W_U rows must be centred over the vocabulary');
  }
  assert.ok(get(out.params, 'blocks.0.attn.b_V').data.every((x) => x === 0), 'b_V folded into b_O');
});

/** Refactored weights vs unrefactored: products, biases' effect and the make_even structure. */
function checkRefactorInvariants(cfg: HookedTransformerConfig, before: Params, after: Params): void {
  const { n_heads: H, d_head: E, d_model: D } = cfg;
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `blocks.${l}.attn.`;
    const g = (ps: Params, n: string): F32 => get(ps, p + n);
    for (let h = 0; h < H; h++) {
      const what = `layer ${l} head ${h}`;
      // (x W_Q + b_Q)(y W_K + b_K)ᵀ for every x, y: the [d_model+1]^2 bilinear form.
      const qkBefore = matmul(withBiasRow(g(before, 'W_Q'), g(before, 'b_Q'), h), transpose(withBiasRow(g(before, 'W_K'), g(before, 'b_K'), h)));
      const qEff = withBiasRow(g(after, 'W_Q'), g(after, 'b_Q'), h);
      const kEff = withBiasRow(g(after, 'W_K'), g(after, 'b_K'), h);
      const dQK = maxAbsDiffMat(matmul(qEff, transpose(kEff)), qkBefore);
      assert.ok(dQK <= ATOL, `${what}: W_Q_eff W_K_effᵀ changed by ${dQK}`);
      // make_even: W_Q_effᵀ W_Q_eff = W_K_effᵀ W_K_eff = diag(S).
      const gq = matmul(transpose(qEff), qEff);
      const gk = matmul(transpose(kEff), kEff);
      for (let i = 0; i < E; i++) {
        for (let j = 0; j < E; j++) {
          if (i !== j) assert.ok(Math.abs(gq.data[i * E + j]!) <= ATOL * 10, `${what}: W_Q_eff columns ${i}, ${j} not orthogonal`);
        }
        assert.ok(Math.abs(gq.data[i * E + i]! - gk.data[i * E + i]!) <= ATOL * 10, `${what}: W_Q_eff and W_K_eff column ${i} norms differ`);
        if (i > 0) assert.ok(gq.data[i * E + i]! <= gq.data[(i - 1) * E + i - 1]! + 1e-6, `${what}: singular values not descending`);
      }
      const ovBefore = matmul(headMat(g(before, 'W_V'), h), headMat(g(before, 'W_O'), h));
      const WOa = headMat(g(after, 'W_O'), h);
      const dOV = maxAbsDiffMat(matmul(headMat(g(after, 'W_V'), h), WOa), ovBefore);
      assert.ok(dOV <= ATOL, `${what}: W_V W_O changed by ${dOV}`);
      const dRot = maxAbsDiffMat(matmul(WOa, transpose(WOa)), identity(E));
      assert.ok(dRot <= ATOL, `${what}: W_O rows not orthonormal (${dRot})`);
    }
    // b_O' = b_O + sum_h b_V W_O (with the old b_V, W_O); b_V' = 0.
    const bV = g(before, 'b_V');
    const WO = g(before, 'W_O');
    const bO = g(before, 'b_O');
    const want = Float64Array.from(bO.data);
    for (let i = 0; i < H * E; i++) for (let d = 0; d < D; d++) want[d]! += bV.data[i]! * WO.data[i * D + d]!;
    const gotBO = g(after, 'b_O');
    for (let d = 0; d < D; d++) assert.ok(Math.abs(gotBO.data[d]! - want[d]!) <= ATOL, `layer ${l}: b_O[${d}] = ${gotBO.data[d]}, expected ${want[d]}`);
    assert.ok(g(after, 'b_V').data.every((x) => x === 0), `layer ${l}: b_V must be zero after refactoring`);
  }
}

test('refactor_factored_attn_matrices keeps W_QK (with biases), W_OV and the output bias', () => {
  const cfg = fixtureConfig();
  const def = applyProcessing(cfg, fixtureParams('none'), 'default');
  const ref = applyProcessing(cfg, fixtureParams('none'), 'default+refactor');
  assert.equal(ref.cfg.normalization_type, 'LNPre');
  checkRefactorInvariants(def.cfg, def.params, ref.params);
  // Nothing but attention weights may change.
  for (const [k, t] of def.params) {
    if (/attn\.(W_Q|W_K|W_V|W_O|b_Q|b_K|b_V|b_O)$/.test(k)) continue;
    assert.equal(maxAbsDiff(get(ref.params, k), t), 0, `${k} must not change under refactoring`);
  }
});

test('refactor alone (b_V not yet folded) moves b_V W_O into b_O', () => {
  const cfg = fixtureConfig();
  const none = fixtureParams('none');
  assert.ok(get(none, 'blocks.0.attn.b_V').data.some((x) => x !== 0), 'fixture b_V should be non-zero for this test to mean anything');
  const out = processWeights(cfg, none, {
    fold_ln: false, center_writing_weights: false, center_unembed: false, fold_value_biases: false, refactor_factored_attn_matrices: true,
  });
  assert.equal(out.cfg.normalization_type, 'LN');
  checkRefactorInvariants(cfg, none, out.params);
});

/** x [batch, pos, d_model] @ W[h] + b[h] -> [batch, pos, head_index, d_head] (float64). */
function project(x: F32, W: F32, b: F32): Float64Array {
  const [B, P, D] = x.dims as [number, number, number];
  const [H, , E] = W.dims as [number, number, number];
  const out = new Float64Array(B * P * H * E);
  for (let n = 0; n < B * P; n++) {
    for (let h = 0; h < H; h++) {
      for (let e = 0; e < E; e++) {
        let s = b.data[h * E + e]!;
        for (let d = 0; d < D; d++) s += x.data[n * D + d]! * W.data[(h * D + d) * E + e]!;
        out[(n * H + h) * E + e] = s;
      }
    }
  }
  return out;
}

/**
 * Compares ours with the fixture's [batch, pos, head_index, d_head] per (head, d_head) column,
 * allowing each column one sign. Returns the signs [head_index * d_head] and the worst error.
 */
function matchUpToSign(ours: Float64Array, want: F32, H: number, E: number): { signs: number[]; err: number } {
  const N = want.data.length / (H * E);
  const signs: number[] = [];
  let err = 0;
  for (let c = 0; c < H * E; c++) {
    let dotp = 0;
    for (let n = 0; n < N; n++) dotp += ours[n * H * E + c]! * want.data[n * H * E + c]!;
    const s = dotp < 0 ? -1 : 1;
    signs.push(s);
    for (let n = 0; n < N; n++) err = Math.max(err, Math.abs(s * ours[n * H * E + c]! - want.data[n * H * E + c]!));
  }
  return { signs, err };
}

test("refactored q, k, v, z reproduce the fixture's default+refactor hooks up to a sign per d_head component", (t) => {
  const cfg = fixtureConfig();
  const { n_heads: H, d_head: E, d_model: D } = cfg;
  const def = applyProcessing(cfg, fixtureParams('none'), 'default').params;
  const ref = applyProcessing(cfg, fixtureParams('none'), 'default+refactor').params;
  let flipped = 0;
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `blocks.${l}.attn.`;
    // Sanity: without refactoring, the same computation matches 'default' exactly (no signs).
    const xd = expectedHook('default', `blocks.${l}.ln1.hook_normalized`);
    const qd = matchUpToSign(project(xd, get(def, `${p}W_Q`), get(def, `${p}b_Q`)), expectedHook('default', `${p}hook_q`), H, E);
    assert.ok(qd.err <= HOOK_ATOL && qd.signs.every((s) => s === 1), `layer ${l}: default q does not match the fixture (${qd.err})`);

    const x = expectedHook('default+refactor', `blocks.${l}.ln1.hook_normalized`);
    const q = project(x, get(ref, `${p}W_Q`), get(ref, `${p}b_Q`));
    const k = project(x, get(ref, `${p}W_K`), get(ref, `${p}b_K`));
    const v = project(x, get(ref, `${p}W_V`), get(ref, `${p}b_V`));
    const mq = matchUpToSign(q, expectedHook('default+refactor', `${p}hook_q`), H, E);
    const mk = matchUpToSign(k, expectedHook('default+refactor', `${p}hook_k`), H, E);
    const mv = matchUpToSign(v, expectedHook('default+refactor', `${p}hook_v`), H, E);
    t.diagnostic(`layer ${l} max err up to sign: q ${mq.err.toExponential(1)} k ${mk.err.toExponential(1)} v ${mv.err.toExponential(1)}`);
    assert.ok(mq.err <= HOOK_ATOL, `layer ${l}: q differs from the fixture by ${mq.err} even allowing signs`);
    assert.ok(mk.err <= HOOK_ATOL, `layer ${l}: k differs from the fixture by ${mk.err} even allowing signs`);
    assert.ok(mv.err <= HOOK_ATOL, `layer ${l}: v differs from the fixture by ${mv.err} even allowing signs`);
    // A QK component's sign flips q and k together (their product is fixed).
    assert.deepEqual(mk.signs, mq.signs, `layer ${l}: q and k component signs disagree`);

    // z = pattern @ v with the fixture's (sign-independent) pattern [batch, head_index, query_pos, key_pos].
    const pat = expectedHook('default+refactor', `${p}hook_pattern`);
    const [B, , P] = pat.dims as [number, number, number, number];
    const z = new Float64Array(B * P * H * E);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let qp = 0; qp < P; qp++) for (let kp = 0; kp < P; kp++) {
      const a = pat.data[((b * H + h) * P + qp) * P + kp]!;
      if (a === 0) continue;
      for (let e = 0; e < E; e++) z[((b * P + qp) * H + h) * E + e]! += a * v[((b * P + kp) * H + h) * E + e]!;
    }
    const mz = matchUpToSign(z, expectedHook('default+refactor', `${p}hook_z`), H, E);
    assert.ok(mz.err <= HOOK_ATOL, `layer ${l}: z differs from the fixture by ${mz.err} even allowing signs`);
    assert.deepEqual(mz.signs, mv.signs, `layer ${l}: z and v component signs disagree`);

    // Sign-free quantities match exactly: scores q·k/sqrt(d_head) (causal part) and each head's
    // result z W_O [batch, pos, head_index, d_model].
    const scores = expectedHook('default+refactor', `${p}hook_attn_scores`);
    let scoreErr = 0;
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let qp = 0; qp < P; qp++) for (let kp = 0; kp <= qp; kp++) {
      let s = 0;
      for (let e = 0; e < E; e++) s += q[((b * P + qp) * H + h) * E + e]! * k[((b * P + kp) * H + h) * E + e]!;
      scoreErr = Math.max(scoreErr, Math.abs(s / Math.sqrt(E) - scores.data[((b * H + h) * P + qp) * P + kp]!));
    }
    assert.ok(scoreErr <= HOOK_ATOL, `layer ${l}: attention scores differ by ${scoreErr}`);
    const WO = get(ref, `${p}W_O`);
    const result = expectedHook('default+refactor', `${p}hook_result`);
    let resErr = 0;
    for (let n = 0; n < B * P; n++) for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) {
      let s = 0;
      for (let e = 0; e < E; e++) s += z[(n * H + h) * E + e]! * WO.data[(h * E + e) * D + d]!;
      resErr = Math.max(resErr, Math.abs(s - result.data[(n * H + h) * D + d]!));
    }
    assert.ok(resErr <= HOOK_ATOL, `layer ${l}: head results differ by ${resErr}`);

    const fmt = (s: number[]): string => Array.from({ length: H }, (_, h) => s.slice(h * E, (h + 1) * E).map((x) => (x > 0 ? '+' : '-')).join('')).join(' ');
    t.diagnostic(`layer ${l} signs vs fixture (per head, per d_head component) QK: ${fmt(mq.signs)}  OV: ${fmt(mv.signs)}`);
    flipped += mq.signs.filter((s) => s < 0).length + mv.signs.filter((s) => s < 0).length;
  }
  // The fixture's signs are LAPACK's for the SVD of the formed product (see linalg.ts); ours are
  // canonical (largest |u| entry positive), so some components are flipped. Only report it.
  t.diagnostic(`${flipped} of ${cfg.n_layers * H * E * 2} components carry the opposite sign to the fixture`);
});

// ---- SVD ----

function checkSvd(a: Mat, s: Svd, what: string, tol = 1e-12): void {
  const k = Math.min(a.rows, a.cols);
  assert.equal(s.U.rows, a.rows);
  assert.equal(s.U.cols, k);
  assert.equal(s.V.rows, a.cols);
  assert.equal(s.V.cols, k);
  assert.equal(s.S.length, k);
  const scale = Math.max(1, s.S[0] ?? 0);
  const rec = matmul(scaleCols(s.U, s.S), transpose(s.V));
  assert.ok(maxAbsDiffMat(rec, a) <= tol * scale, `${what}: U S Vᵀ differs from A by ${maxAbsDiffMat(rec, a)}`);
  assert.ok(maxAbsDiffMat(matmul(transpose(s.U), s.U), identity(k)) <= tol, `${what}: UᵀU != I (${maxAbsDiffMat(matmul(transpose(s.U), s.U), identity(k))})`);
  assert.ok(maxAbsDiffMat(matmul(transpose(s.V), s.V), identity(k)) <= tol, `${what}: VᵀV != I`);
  for (let i = 0; i < k; i++) {
    assert.ok(s.S[i]! >= 0, `${what}: negative singular value`);
    if (i > 0) assert.ok(s.S[i]! <= s.S[i - 1]!, `${what}: singular values not descending`);
    // Canonical sign: the largest-|.| entry of each u_j is positive.
    let best = 0;
    for (let r = 0; r < s.U.rows; r++) if (Math.abs(s.U.data[r * k + i]!) > Math.abs(s.U.data[best * k + i]!)) best = r;
    assert.ok(s.U.data[best * k + i]! > 0, `${what}: component ${i} not in canonical sign`);
  }
}

/** An m x k matrix with orthonormal columns (Gram-Schmidt on random columns). */
function randOrthonormal(m: number, k: number, seed: number): Mat {
  const a = randMat(m, k, seed);
  for (let j = 0; j < k; j++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        let d = 0;
        for (let r = 0; r < m; r++) d += a.data[r * k + i]! * a.data[r * k + j]!;
        for (let r = 0; r < m; r++) a.data[r * k + j]! -= d * a.data[r * k + i]!;
      }
    }
    let n = 0;
    for (let r = 0; r < m; r++) n += a.data[r * k + j]! ** 2;
    n = Math.sqrt(n);
    for (let r = 0; r < m; r++) a.data[r * k + j]! /= n;
  }
  return a;
}

test('svd: random tall, wide and square matrices', () => {
  for (const [m, n, seed] of [[7, 5, 1], [5, 7, 2], [6, 6, 3], [40, 8, 4], [8, 40, 5], [33, 33, 6], [1, 4, 7], [4, 1, 8]] as const) {
    const a = randMat(m, n, seed);
    checkSvd(a, svd(a), `${m}x${n}`);
  }
});

test('svd: known singular values, including repeated ones', () => {
  const s = [5, 3, 3, 1e-3, 0];
  const U = randOrthonormal(9, 5, 11);
  const V = randOrthonormal(6, 5, 12);
  const a = matmul(scaleCols(U, s), transpose(V));
  const r = svd(a);
  checkSvd(a, r, 'known spectrum');
  for (let i = 0; i < s.length; i++) assert.ok(Math.abs(r.S[i]! - s[i]!) <= 1e-12, `S[${i}] = ${r.S[i]}, expected ${s[i]}`);
});

test('svd: rank-deficient and zero matrices keep orthonormal factors', () => {
  const a = matmul(randMat(12, 3, 21), randMat(3, 9, 22)); // rank 3
  const r = svd(a);
  checkSvd(a, r, 'rank 3 of 12x9');
  for (let i = 3; i < 9; i++) assert.ok(r.S[i]! <= 1e-12, `S[${i}] = ${r.S[i]} should vanish`);
  const wide = transpose(a);
  checkSvd(wide, svd(wide), 'rank 3 of 9x12');
  const z = mat(4, 3);
  const rz = svd(z);
  checkSvd(z, rz, 'zero 4x3');
  assert.ok(rz.S.every((x) => x === 0));
  const dup = matmul(randMat(10, 1, 23), randMat(1, 10, 24)); // rank 1, square
  checkSvd(dup, svd(dup), 'rank 1 of 10x10');
});

test('svd: sign convention is independent of the input sign', () => {
  const a = randMat(10, 4, 31);
  const neg = mat(10, 4, a.data.map((x) => -x));
  const r1 = svd(a);
  const r2 = svd(neg);
  // -A = U S (-V)ᵀ: same U (canonical), V negated.
  assert.ok(maxAbsDiffMat(r1.U, r2.U) <= 1e-12);
  assert.ok(maxAbsDiffMat(r1.V, mat(4, 4, r2.V.data.map((x) => -x))) <= 1e-12);
});

test('factoredSvd equals the SVD of the formed product', () => {
  for (const [m, r, n, seed] of [[33, 8, 33, 41], [32, 8, 32, 42], [20, 3, 9, 43], [5, 5, 5, 44]] as const) {
    const a = randMat(m, r, seed);
    const b = randMat(r, n, seed + 100);
    const prod = matmul(a, b);
    const f = factoredSvd(a, b);
    assert.equal(f.S.length, r);
    const rec = matmul(scaleCols(f.U, f.S), transpose(f.V));
    assert.ok(maxAbsDiffMat(rec, prod) <= 1e-12, `${m}x${r}x${n}: reconstruction off by ${maxAbsDiffMat(rec, prod)}`);
    assert.ok(maxAbsDiffMat(matmul(transpose(f.U), f.U), identity(r)) <= 1e-12);
    assert.ok(maxAbsDiffMat(matmul(transpose(f.V), f.V), identity(r)) <= 1e-12);
    const d = svd(prod);
    for (let i = 0; i < r; i++) assert.ok(Math.abs(f.S[i]! - d.S[i]!) <= 1e-12, `S[${i}] differs`);
    // Same canonical signs as the dense SVD (distinct singular values: the vectors are unique up to sign).
    const dU = mat(m, r);
    for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) dU.data[i * r + j] = d.U.data[i * d.U.cols + j]!;
    assert.ok(maxAbsDiffMat(f.U, dU) <= 1e-9, `${m}x${r}x${n}: U differs from the dense SVD's`);
  }
});
