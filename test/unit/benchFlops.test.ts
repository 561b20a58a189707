/**
 * The bench's count of the FLOPs a patching sweep cannot avoid (bench/flops.ts), on a model small
 * enough to count by hand: 2 layers, d_model 2, one head of d_head 1, d_mlp 4, 3 positions.
 * Per position: k and v projections 8, q projection 4, W_O 4, MLP 32; attention of query q over
 * all its keys 2·(q+1) for the scores and 2·(q+1) for the weighted sum; the metric's dot 4.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { necessarySweepFlops, type FlopShapes } from '../../bench/flops.js';

const cfg: FlopShapes = { n_layers: 2, d_model: 2, n_heads: 1, d_head: 1, d_mlp: 4, n_key_value_heads: null, gated_mlp: false, attn_only: false };

test('resid_pre by layer x position, no shared prefix: every cell and both runs, counted by hand', () => {
  const f = necessarySweepFlops(cfg, { kind: 'layer_pos', hook: 'resid_pre' }, 3, [0]);
  assert.equal(f.cells, 6);
  // Layer 1 (the last): k, v of p (8); the last query: own (q 4 + scores 6) or against key p only
  // (2), then its weighted sum 6, W_O 4, MLP 32; the metric 4. p = 2: 8+4+6+6+4+32+4 = 64;
  // p = 0 or 1: 8+2+6+4+32+4 = 56. Layer 0: p = 2: 60 + 60 + 4 = 124; p = 1: (8+48+44) + (16+52)
  // + 4 = 172 (block 1 with keys 1, 2 changed: dense and query path both 32); p = 0:
  // (8+44+42+44) + 72 + 4 = 214, where block 1 with all three keys changed takes the query path
  // (q 4, W_K q 4, scores 2·2·3 = 12, pooled inputs 12, W_V 4 = 36 against the dense 40) + W_O 4 + MLP 32.
  assert.equal(f.cellWork, 64 + 56 + 56 + 124 + 172 + 214);
  // Corrupted: block 0 in full (k, v 24 + queries 44+48+52) = 168, block 1's k, v 24; clean:
  // block 0 in full again (the sources of layer 1) = 168.
  assert.equal(f.runs, 168 + 24 + 168);
  assert.equal(f.total, 686 + 360);
});

test('neurons: the rank-one change of mlp_out, positions of the shared prefix skipped, each prompt counted', () => {
  // Layer 0, two neurons; prompt 0 shares its first position with its corrupted prompt, prompt 1
  // shares all three (nothing to patch). Per cell, prompt 0: mlp_out at positions 1, 2 (2·2·2 = 8),
  // then block 1 with positions 1, 2 changed: k, v 16, the last query 4+6+6+4+32 = 52, metric 4.
  const f = necessarySweepFlops(cfg, { kind: 'neuron', layer: 0, neurons: [0, 1] }, 3, [1, 3]);
  assert.equal(f.cells, 2);
  assert.equal(f.cellWork, 2 * (8 + 16 + 52 + 4));
  // Runs: the corrupted run for each prompt (168 + 24), no clean blocks before layer 0.
  assert.equal(f.runs, 2 * 192);
});

test('head z by layer x head: W_O of the one head, then the MLP and the blocks after', () => {
  // Layer 1 (last), no prefix: only the last position matters: W_O[head] 2·1·2 = 4 and MLP 32,
  // metric 4 = 40. Layer 0: positions 0..2 through W_O[head] and MLP (3·36 = 108), then block 1
  // with all three positions changed by its query path 36 (above), W_O 4, MLP 32, metric 4 = 76.
  const f = necessarySweepFlops(cfg, { kind: 'head', activation: 'z' }, 3, [0]);
  assert.equal(f.cells, 2);
  assert.equal(f.cellWork, 40 + 108 + 76);
  // The counts only shrink when positions are shared, and vanish when all are.
  const shared = necessarySweepFlops(cfg, { kind: 'head', activation: 'z' }, 3, [2]);
  assert.ok(shared.cellWork < f.cellWork);
  assert.equal(necessarySweepFlops(cfg, { kind: 'head', activation: 'z' }, 3, [3]).cellWork, 0);
});

test("neurons: block L+1's attention from the rank-one change when that is cheaper, with its per-neuron and per-sweep work", () => {
  // 3 layers, d_model 8, one head of d_head 8, d_mlp 4, 2 positions, one prompt, no shared prefix;
  // q / W_O projections 128, k+v of c positions 256·c, MLP 128, metric 16.
  const c3: FlopShapes = { n_layers: 3, d_model: 8, n_heads: 1, d_head: 8, d_mlp: 4, n_key_value_heads: null, gated_mlp: false, attn_only: false };
  // Per cell: mlp_out's change 2·2·8 = 32; block 1's attention by rank one: query 0: scores 16,
  // Av W_O sum 16, Bv W_O 16; query 1: 32 + 32 + 16 = 128 in all (dense: k, v 512 + queries
  // 288 + 320 = 1120); block 1's MLP at both positions 256; block 2 (last) by its query path
  // (q 128, W_K q 128, scores 32, pooled inputs 32, W_V 128 = 448, dense 704) + W_O 128 + MLP 128,
  // metric 16 = 720. Rank one: 1136 per cell, plus per neuron W_Q|K|V 2·8·24 = 384, dot with
  // the 2 positions 32 and Bv W_O 128 = 544; per sweep 2 positions · (384 + 128) = 1024.
  const four = necessarySweepFlops(c3, { kind: 'neuron', layer: 0, neurons: [0, 1, 2, 3] }, 2, [0]);
  assert.equal(four.cellWork, 4 * (1136 + 544) + 1024); // 7744 < dense 4 · 2128
  // One neuron: the per-sweep work does not pay, and the dense count (32 + 1120 + 256 + 720) is the floor.
  assert.equal(necessarySweepFlops(c3, { kind: 'neuron', layer: 0, neurons: [0] }, 2, [0]).cellWork, 2128);
});
