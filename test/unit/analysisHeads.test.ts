import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { makeConfig } from '../../src/engine/model/config.js';
import { attentionPatterns, detectHeads, detectionPattern, headSimilarityScore, repeatedRandomTokens, repeatedTokenHeadScores } from '../../src/engine/analysis/heads.js';
import { f32 } from '../../src/engine/tensor/tensor.js';
import type { Params } from '../../src/engine/model/params.js';
import { fixtureConfig, fixtureParams, spec } from '../helpers/tinyModel.js';

const ones = (p: Float64Array, n: number) => {
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (p[i * n + j] === 1) out.push([i, j]);
  return out;
};

test('detection patterns follow head_detector.py', () => {
  const toks = [0, 5, 6, 5, 6];
  assert.deepEqual(ones(detectionPattern('previous_token_head', toks), 5), [[1, 0], [2, 1], [3, 2], [4, 3]]);
  assert.deepEqual(ones(detectionPattern('duplicate_token_head', toks), 5), [[3, 1], [4, 2]]);
  assert.deepEqual(ones(detectionPattern('induction_head', toks), 5), [[3, 2], [4, 3]]);
});

test("similarity scores: 'mul' is the share of attention on the pattern, 'abs' 1 - n x mean |diff| rounded", () => {
  const n = 5;
  const det = detectionPattern('previous_token_head', [0, 1, 2, 3, 4]);
  // A perfect previous-token head (row 0 can only attend to itself).
  const pat = new Float64Array(n * n);
  pat[0] = 1;
  for (let i = 1; i < n; i++) pat[i * n + i - 1] = 1;
  assert.equal(headSimilarityScore(pat, det, n), 4 / 5);
  assert.equal(headSimilarityScore(pat, det, n, { excludeCurrentToken: true }), 1);
  assert.equal(headSimilarityScore(pat, det, n, { errorMeasure: 'abs' }), 0.8);
  assert.equal(headSimilarityScore(pat, det, n, { errorMeasure: 'abs', excludeCurrentToken: true }), 1);
  // Uniform causal attention.
  const uni = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) uni[i * n + j] = 1 / (i + 1);
  assert.ok(Math.abs(headSimilarityScore(uni, det, n) - (1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 5) < 1e-12);
  assert.ok(Math.abs(headSimilarityScore(uni, det, n, { excludeBos: true }) - (1 / 3 + 1 / 4 + 1 / 5) / (1 / 2 + 2 / 3 + 3 / 4 + 4 / 5)) < 1e-12);
  const upper = new Float64Array(n * n);
  upper[1] = 1;
  assert.throws(() => headSimilarityScore(upper, det, n, { errorMeasure: 'abs' }), /lower-triangular/);
});

/**
 * One attention-only layer without LayerNorm whose residual is the one-hot position (W_E = 0):
 * head 0 attends from position i to i - shift (q_i . k_j = 100 iff j = i - shift), head 1 has
 * zero weights (uniform causal attention).
 */
function positionalModel(shift: number): HookedTransformer {
  const n = 16, d = 32, dh = 16, H = 2, V = 20;
  const cfg = makeConfig({ n_layers: 1, d_model: d, n_heads: H, d_head: dh, d_vocab: V, n_ctx: n, attn_only: true, normalization_type: null, positional_embedding_type: 'standard' });
  const p: Params = new Map();
  const z = (...dims: number[]) => f32(dims);
  p.set('embed.W_E', z(V, d));
  const Wpos = z(n, d);
  for (let i = 0; i < n; i++) Wpos.data[i * d + i] = 1;
  p.set('pos_embed.W_pos', Wpos);
  const WQ = z(H, d, dh), WK = z(H, d, dh);
  for (let i = 0; i < dh; i++) WQ.data[i * dh + i] = 10;
  for (let j = 0; j + shift < dh; j++) WK.data[j * dh + j + shift] = 10;
  p.set('blocks.0.attn.W_Q', WQ); p.set('blocks.0.attn.W_K', WK); p.set('blocks.0.attn.W_V', z(H, d, dh)); p.set('blocks.0.attn.W_O', z(H, dh, d));
  for (const b of ['b_Q', 'b_K', 'b_V']) p.set(`blocks.0.attn.${b}`, z(H, dh));
  p.set('blocks.0.attn.b_O', z(d));
  p.set('unembed.W_U', z(d, V)); p.set('unembed.b_U', z(V));
  return new HookedTransformer(cfg, p, 'none', 'constructed', { device: 'cpu', threads: 1 });
}

test('a constructed previous-token head is found by detect_head', async () => {
  const m = positionalModel(1);
  try {
    const toks = [[0, 3, 4, 5, 6, 7, 8, 9], [0, 9, 8, 7, 6, 5, 4, 3]];
    const s = await detectHeads(m, toks, 'previous_token_head', { excludeCurrentToken: true });
    assert.ok(s[0]![0]! > 0.999, `head 0: ${s[0]![0]}`);
    assert.ok(Math.abs(s[0]![1]! - (1 / 2 + 1 / 3 + 1 / 4 + 1 / 5 + 1 / 6 + 1 / 7 + 1 / 8) / (1 / 2 + 2 / 3 + 3 / 4 + 4 / 5 + 5 / 6 + 6 / 7 + 7 / 8)) < 1e-5, `head 1: ${s[0]![1]}`);
    const only = await detectHeads(m, toks, 'previous_token_head', { heads: [{ layer: 0, head: 1 }] });
    assert.equal(only[0]![0], -1);
    const rep = await repeatedTokenHeadScores(m, { seqLen: 5, batch: 3, seed: 1 });
    assert.ok(rep.detector.previous_token_head[0]![0]! > 0.85);
    assert.ok(rep.detector.previous_token_head[0]![1]! < 0.5);
  } finally {
    await m.dispose();
  }
});

test('an induction-stripe head (query i -> key i - (seq_len - 1)) scores 1 on repeated random tokens', async () => {
  const seqLen = 6;
  const m = positionalModel(seqLen - 1);
  try {
    const r = await repeatedTokenHeadScores(m, { seqLen, batch: 4, seed: 3 });
    assert.equal(r.tokens.length, 4);
    assert.equal(r.tokens[0]!.length, 2 * seqLen);
    assert.deepEqual(r.tokens[0]!.slice(0, seqLen), r.tokens[0]!.slice(seqLen));
    assert.ok(r.inductionStripe[0]![0]! > 0.999, `stripe head 0: ${r.inductionStripe[0]![0]}`);
    assert.ok(r.inductionStripe[0]![1]! < 0.3);
    assert.ok(r.detector.induction_head[0]![0]! > r.detector.induction_head[0]![1]!);
    assert.equal(r.lossByPosition.length, 2 * seqLen - 1);
    const withBos = repeatedRandomTokens(m, { seqLen: 3, batch: 1, prependBos: true, seed: 1 });
    assert.equal(withBos[0]!.length, 7);
  } finally {
    await m.dispose();
  }
});

test('attention patterns are averaged over the batch', async () => {
  const m = new HookedTransformer(fixtureConfig(), fixtureParams('none'), 'none', 'fixture', { device: 'cpu', threads: 1 });
  try {
    const all = await attentionPatterns(m, spec.tokens);
    const one = await attentionPatterns(m, [spec.tokens[0]!]);
    const two = await attentionPatterns(m, [spec.tokens[1]!]);
    const both = await attentionPatterns(m, [spec.tokens[0]!, spec.tokens[1]!]);
    assert.deepEqual(all.dims, [2, 4, 8, 8]);
    for (let i = 0; i < both.data.length; i++) assert.ok(Math.abs(both.data[i]! - (one.data[i]! + two.data[i]!) / 2) < 1e-6);
    for (let r = 0; r < 2 * 4 * 8; r++) {
      const s = all.data.subarray(r * 8, r * 8 + 8).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(s - 1) < 1e-5);
    }
  } finally {
    await m.dispose();
  }
});
