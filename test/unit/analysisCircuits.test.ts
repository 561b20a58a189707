import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { makeConfig } from '../../src/engine/model/config.js';
import { eigenvalues } from '../../src/engine/analysis/eig.js';
import { columnNorms, compositionScores, copyingScore, FactoredMatrix, fullOvCircuit, fullQkCircuit, headWeight, ovCircuit, ovCopyingScores, ovIntoMlp, ovIntoUnembed, positionalQkCircuit, qkCircuit } from '../../src/engine/analysis/circuits.js';
import { mat, matmul, transpose, type Mat } from '../../src/engine/weights/linalg.js';
import { fixtureConfig, fixtureParams } from '../helpers/tinyModel.js';
import type { Params } from '../../src/engine/model/params.js';
import { isTiedUnembed, unembedMatrix } from '../../src/engine/model/unembed.js';

function fixtureModel(params: Params = fixtureParams('default')): HookedTransformer {
  return new HookedTransformer(makeConfig({ ...fixtureConfig(), normalization_type: 'LNPre' }), params, 'default', 'fixture', { device: 'cpu', threads: 1 });
}

function param(p: Params, name: string, rows: number, cols: number): Mat {
  // The tied fixture's W_U is kept as factors of W_E (model/unembed.ts): built whole here.
  return mat(rows, cols, Float64Array.from((name === 'unembed.W_U' ? unembedMatrix(p) : p.get(name)!).data));
}

function maxDiff(a: Mat, b: Mat): number {
  assert.deepEqual([a.rows, a.cols], [b.rows, b.cols]);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

function frob(a: Mat): number {
  return Math.sqrt(a.data.reduce((s, x) => s + x * x, 0));
}

/** Random orthogonal n x n (Gram-Schmidt of a seeded random matrix). */
function orthogonal(n: number, seed: number): Mat {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
  const q = mat(n, n);
  for (let j = 0; j < n; j++) {
    const v = Array.from({ length: n }, rnd);
    for (let k = 0; k < j; k++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += v[i]! * q.data[i * n + k]!;
      for (let i = 0; i < n; i++) v[i]! -= dot * q.data[i * n + k]!;
    }
    const nv = Math.hypot(...v);
    for (let i = 0; i < n; i++) q.data[i * n + j] = v[i]! / nv;
  }
  return q;
}

test('eigenvalues of a general real matrix: real and complex pairs, under an orthogonal similarity', () => {
  // Block diagonal with eigenvalues 3, -2, 0.5, 1±2i, -0.3±0.7i, 0, then rotated.
  const n = 8;
  const D = mat(n, n);
  const set = (i: number, j: number, v: number) => (D.data[i * n + j] = v);
  set(0, 0, 3); set(1, 1, -2); set(2, 2, 0.5);
  set(3, 3, 1); set(3, 4, -2); set(4, 3, 2); set(4, 4, 1);
  set(5, 5, -0.3); set(5, 6, 0.7); set(6, 5, -0.7); set(6, 6, -0.3);
  set(2, 7, 4); // an upper-triangular coupling keeps the spectrum
  const Q = orthogonal(n, 42);
  const A = matmul(matmul(Q, D), transpose(Q));
  const e = eigenvalues(A.data, n);
  const got = Array.from(e.re, (r, i) => [r, e.im[i]!] as [number, number]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const want: [number, number][] = [[-2, 0], [-0.3, -0.7], [-0.3, 0.7], [0, 0], [0.5, 0], [1, -2], [1, 2], [3, 0]];
  got.forEach((g, i) => assert.ok(Math.abs(g[0] - want[i]![0]) < 1e-9 && Math.abs(g[1] - want[i]![1]) < 1e-9, `eigenvalue ${i}: got ${g}, want ${want[i]}`));
  // A 64x64 random matrix: the eigenvalues sum to the trace.
  const R = orthogonal(64, 7);
  const e2 = eigenvalues(R.data, 64);
  let tr = 0;
  for (let i = 0; i < 64; i++) tr += R.data[i * 64 + i]!;
  assert.ok(Math.abs(e2.re.reduce((a, b) => a + b, 0) - tr) < 1e-9);
  // An orthogonal matrix has every |λ| = 1.
  e2.re.forEach((r, i) => assert.ok(Math.abs(Math.hypot(r, e2.im[i]!) - 1) < 1e-9, `|λ_${i}| = ${Math.hypot(r, e2.im[i]!)}`));
});

test('QK / OV circuits: shapes and identities with the weights', async () => {
  const p = fixtureParams('default');
  const m = fixtureModel(p);
  const cfg = m.cfg;
  const { d_model: d, d_head: dh, d_vocab: V } = cfg;
  try {
    const [l, h] = [1, 2];
    const WE = param(p, 'embed.W_E', V, d);
    const WU = param(p, 'unembed.W_U', d, cfg.d_vocab_out);
    const WQ = headWeight(p, cfg, l, h, 'Q'), WK = headWeight(p, cfg, l, h, 'K'), WV = headWeight(p, cfg, l, h, 'V'), WO = headWeight(p, cfg, l, h, 'O');
    assert.deepEqual([WQ.rows, WQ.cols, WO.rows, WO.cols], [d, dh, dh, d]);

    const qk = qkCircuit(m, l, h);
    assert.deepEqual([qk.ldim, qk.mdim, qk.rdim], [d, dh, d]);
    assert.ok(maxDiff(qk.materialize(), matmul(WQ, transpose(WK))) < 1e-12);
    const ov = ovCircuit(m, l, h);
    assert.ok(maxDiff(ov.materialize(), matmul(WV, WO)) < 1e-12);

    // Full OV of a head equals W_E W_V W_O W_U; full QK equals W_E W_Q W_Kᵀ W_Eᵀ (float32 GEMMs inside).
    const fov = await fullOvCircuit(m, l, h);
    assert.deepEqual([fov.ldim, fov.rdim], [V, cfg.d_vocab_out]);
    const fovWant = matmul(matmul(matmul(WE, WV), WO), WU);
    assert.ok(maxDiff(fov.materialize(), fovWant) < 1e-5, `full OV: ${maxDiff(fov.materialize(), fovWant)}`);
    const fqk = await fullQkCircuit(m, l, h);
    const fqkWant = matmul(matmul(matmul(WE, WQ), transpose(WK)), transpose(WE));
    assert.ok(maxDiff(fqk.materialize(), fqkWant) < 1e-5);
    // Selected rows and columns.
    const sub = fov.materialize([3, 7], [1, 2, 49]);
    assert.ok(Math.abs(sub.data[1 * 3 + 2]! - fovWant.data[7 * V + 49]!) < 1e-5);
    const pqk = await positionalQkCircuit(m, l, h, 16);
    const Wpos = param(p, 'pos_embed.W_pos', cfg.n_ctx, d);
    assert.ok(maxDiff(pqk.materialize(), matmul(matmul(matmul(Wpos, WQ), transpose(WK)), transpose(Wpos))) < 1e-5);

    // Norm, eigenvalues, transpose from the factors.
    assert.ok(Math.abs(fov.norm() - frob(fovWant)) < 1e-4 * frob(fovWant));
    const eFactored = fov.eigenvalues();
    assert.equal(eFactored.re.length, dh);
    const eFull = eigenvalues(fovWant.data, V);
    const big = (e: { re: Float64Array; im: Float64Array }) => Array.from(e.re, (r, i) => [r, e.im[i]!]).filter(([r, i]) => Math.hypot(r!, i!) > 1e-6).sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
    const a = big(eFactored), b = big(eFull);
    assert.equal(a.length, b.length);
    a.forEach((x, i) => assert.ok(Math.hypot(x[0]! - b[i]![0]!, x[1]! - b[i]![1]!) < 1e-4, `eigenvalue ${i}: ${x} vs ${b[i]}`));
    assert.ok(maxDiff(qk.T.materialize(), transpose(qk.materialize())) < 1e-12);

    const intoU = await ovIntoUnembed(m, l, h);
    assert.ok(maxDiff(intoU.materialize(), matmul(matmul(WV, WO), WU)) < 1e-5);
    // OV into the next MLP: W_V W_O W_in, and its column norms.
    const into = ovIntoMlp(m, 0, 1, 1);
    const Win = param(p, 'blocks.1.mlp.W_in', d, cfg.d_mlp!);
    const intoWant = matmul(matmul(headWeight(p, cfg, 0, 1, 'V'), headWeight(p, cfg, 0, 1, 'O')), Win);
    assert.ok(maxDiff(into.materialize(), intoWant) < 1e-9);
    const norms = columnNorms(into);
    for (const j of [0, 17, 127]) {
      let s = 0;
      for (let i = 0; i < d; i++) s += intoWant.data[i * cfg.d_mlp! + j]! ** 2;
      assert.ok(Math.abs(norms[j]! - Math.sqrt(s)) < 1e-9);
    }
  } finally {
    await m.dispose();
  }
});

test('composition scores equal ‖L R‖ / (‖L‖ ‖R‖) of the formed matrices, zero unless l1 < l2', async () => {
  const p = fixtureParams('default');
  const m = fixtureModel(p);
  const cfg = m.cfg;
  try {
    for (const mode of ['Q', 'K', 'V'] as const) {
      const s = await compositionScores(m, mode);
      assert.deepEqual(s.dims, [2, 4, 2, 4]);
      for (let h1 = 0; h1 < 4; h1++) {
        for (let h2 = 0; h2 < 4; h2++) {
          const Lm = ovCircuit(m, 0, h1).materialize();
          const Rm = mode === 'V' ? ovCircuit(m, 1, h2).materialize() : mode === 'Q' ? qkCircuit(m, 1, h2).materialize() : transpose(qkCircuit(m, 1, h2).materialize());
          const want = frob(matmul(Lm, Rm)) / (frob(Lm) * frob(Rm));
          const got = s.data[((0 * 4 + h1) * 2 + 1) * 4 + h2]!;
          assert.ok(Math.abs(got - want) < 1e-5, `${mode} L0H${h1} -> L1H${h2}: ${got} vs ${want}`);
          // Same layer or backwards: masked to 0 as in TransformerLens.
          assert.equal(s.data[((1 * 4 + h1) * 2 + 0) * 4 + h2], 0);
          assert.equal(s.data[((0 * 4 + h1) * 2 + 0) * 4 + h2], 0);
        }
      }
    }
    void cfg;
  } finally {
    await m.dispose();
  }
});

test('copying score: +1 for a positive semidefinite full OV circuit, -1 for its negative', async () => {
  // With a tied unembedding (W_U = W_Eᵀ) and W_O = c W_Vᵀ, the full OV circuit W_E W_V W_Vᵀ W_Eᵀ c
  // has eigenvalues of one sign.
  const p = fixtureParams('none');
  const cfg = fixtureConfig();
  const d = cfg.d_model, dh = cfg.d_head, H = cfg.n_heads;
  // The tied fixture unprocessed: W_U is W_Eᵀ, kept as W_E alone (W_U W_E is then W_Eᵀ W_E, one Gemm).
  assert.ok(isTiedUnembed(p));
  const WV = p.get('blocks.0.attn.W_V')!.data;
  const WO = new Float32Array(H * dh * d);
  for (let h = 0; h < H; h++) for (let i = 0; i < d; i++) for (let j = 0; j < dh; j++) WO[(h * dh + j) * d + i] = (h === 1 ? -1 : 1) * WV[(h * d + i) * dh + j]!;
  p.set('blocks.0.attn.W_O', { ...p.get('blocks.0.attn.W_O')!, data: WO });
  const m = new HookedTransformer(cfg, p, 'none', 'fixture', { device: 'cpu', threads: 1 });
  try {
    const scores = await ovCopyingScores(m);
    assert.ok(Math.abs(scores[0]![0]! - 1) < 1e-4, `head 0: ${scores[0]![0]}`);
    assert.ok(Math.abs(scores[0]![1]! + 1) < 1e-4, `head 1: ${scores[0]![1]}`);
    // Same number through the factored full OV circuit.
    assert.ok(Math.abs(copyingScore((await fullOvCircuit(m, 1, 3)).eigenvalues()) - scores[1]![3]!) < 1e-4);
    assert.ok(new FactoredMatrix(mat(2, 1, [1, 2]), mat(1, 2, [3, 4])).norm() > 0);
  } finally {
    await m.dispose();
  }
});
