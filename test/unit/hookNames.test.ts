/**
 * A misspelt hook name gets the model's closest hook name as the suggestion (edit distance over
 * the model's own hooks), not a generic list of examples.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { editDistance, nearestHook, requireHook } from '../../src/engine/hooks/hooks.js';
import { makeConfig } from '../../src/engine/model/config.js';

const gpt2 = makeConfig({ n_layers: 4, d_model: 16, n_heads: 2, d_vocab: 10, n_ctx: 8 });
const attnOnly = makeConfig({ n_layers: 2, d_model: 16, n_heads: 2, d_vocab: 10, n_ctx: 8, attn_only: true });

test('editDistance', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('hook_pattern', 'hook_pattern'), 0);
  assert.equal(editDistance('abcdef', 'uvwxyz', 2), 3, 'stops past the bound');
});

test('the closest hook of this model is suggested', () => {
  const cases: [string, string][] = [
    ['blocks.0.attn.hook_patern', 'blocks.0.attn.hook_pattern'],
    ['blocks.3.hook_resid_pr', 'blocks.3.hook_resid_pre'],
    ['blocks.2.hook_mlp_output', 'blocks.2.hook_mlp_out'],
    ['ln_final.hook_normalised', 'ln_final.hook_normalized'],
    ['blocks.1.attn.hook_atn_scores', 'blocks.1.attn.hook_attn_scores'],
  ];
  for (const [bad, want] of cases) assert.throws(() => requireHook(bad, gpt2), new RegExp(`unknown hook "${bad.replace(/\./g, '\\.')}": did you mean ${want.replace(/\./g, '\\.')}\\?`));
});

test('no suggestion when nothing is close, or two hooks are equally close', () => {
  assert.equal(nearestHook('completely.different', gpt2), null);
  assert.throws(() => requireHook('completely.different', gpt2), /use a full TransformerLens name/);
  // hook_q, hook_k, hook_v and hook_z are all one edit away from hook_x.
  assert.equal(nearestHook('blocks.0.attn.hook_x', gpt2), null);
  // Only hooks the model has: an attention-only model has no MLP hooks to suggest.
  assert.notEqual(nearestHook('blocks.0.hook_mlp_ou', attnOnly), 'blocks.0.hook_mlp_out');
});
