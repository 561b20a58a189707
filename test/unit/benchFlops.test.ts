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
  // + 4 = 172; p = 0: (8+44+42+44) + (24+52) + 4 = 218.
  assert.equal(f.cellWork, 64 + 56 + 56 + 124 + 172 + 218);
  // Corrupted: block 0 in full (k, v 24 + queries 44+48+52) = 168, block 1's k, v 24; clean:
  // block 0 in full again (the sources of layer 1) = 168.
  assert.equal(f.runs, 168 + 24 + 168);
  assert.equal(f.total, 690 + 360);
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
  // with all three positions changed: k, v 24 + the last query 52 + metric 4 = 80.
  const f = necessarySweepFlops(cfg, { kind: 'head', activation: 'z' }, 3, [0]);
  assert.equal(f.cells, 2);
  assert.equal(f.cellWork, 40 + 108 + 80);
  // The counts only shrink when positions are shared, and vanish when all are.
  const shared = necessarySweepFlops(cfg, { kind: 'head', activation: 'z' }, 3, [2]);
  assert.ok(shared.cellWork < f.cellWork);
  assert.equal(necessarySweepFlops(cfg, { kind: 'head', activation: 'z' }, 3, [3]).cellWork, 0);
});
