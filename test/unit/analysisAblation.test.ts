import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { makeConfig } from '../../src/engine/model/config.js';
import { ablateEveryHook, hookDictOrder, tokenLoss } from '../../src/engine/analysis/ablation.js';
import { loss } from '../../src/engine/analysis/basic.js';
import { f32 } from '../../src/engine/tensor/tensor.js';
import { fixtureConfig, fixtureParams, spec } from '../helpers/fixture.js';

function fixtureModel(): HookedTransformer {
  return new HookedTransformer(makeConfig({ ...fixtureConfig(), normalization_type: 'LNPre' }), fixtureParams('default'), 'default', 'fixture', { device: 'cpu', threads: 1 });
}

test("hooks are ablated in TransformerLens's hook_dict order, without hook_pos_embed and hook_result", async () => {
  const m = fixtureModel();
  try {
    const order = hookDictOrder(m.cfg);
    assert.deepEqual(order.slice(0, 8), ['hook_embed', 'hook_pos_embed', 'blocks.0.ln1.hook_scale', 'blocks.0.ln1.hook_normalized', 'blocks.0.ln2.hook_scale', 'blocks.0.ln2.hook_normalized', 'blocks.0.attn.hook_k', 'blocks.0.attn.hook_q']);
    assert.deepEqual(order.slice(-2), ['ln_final.hook_scale', 'ln_final.hook_normalized']);
    const r = await ablateEveryHook(m, spec.tokens, { kind: 'zero' });
    assert.ok(!r.hooks.includes('hook_pos_embed') && !r.hooks.some((h) => h.endsWith('hook_result')));
    assert.equal(r.hooks.length, order.length - 1 - m.cfg.n_layers);
  } finally {
    await m.dispose();
  }
});

for (const kind of ['mean', 'zero'] as const) {
  test(`${kind} ablation of every hook equals one full forward per hook`, async () => {
    const m = fixtureModel();
    try {
      // The mean comes from another batch (the corrupted prompts), as the no-positional-embedding experiment averages a fresh batch.
      const r = await ablateEveryHook(m, spec.tokens, { kind, meanTokens: spec.corrupted_tokens });
      assert.ok(Math.abs(r.baseline - loss(await m.forward(spec.tokens), spec.tokens)) < 1e-6);
      const meanCache = (await m.runWithCache(spec.corrupted_tokens)).cache;
      for (let i = 0; i < r.hooks.length; i++) {
        const h = r.hooks[i]!;
        const t = meanCache.get(h)!;
        const per = t.data.length / t.dims[0]!;
        const mean = new Float32Array(per);
        for (let b = 0; b < t.dims[0]!; b++) for (let j = 0; j < per; j++) mean[j]! += t.data[b * per + j]! / t.dims[0]!;
        const logits = await m.runWithHooks(spec.tokens, [kind === 'zero' ? { kind: 'zero', hook: h } : { kind: 'mean', over: 'supplied', hook: h, mean: f32(t.dims.slice(1), mean) }]);
        const want = tokenLoss(logits, spec.tokens);
        assert.ok(Math.abs(r.losses[i]! - want) < 1e-4 || (Number.isNaN(want) && Number.isNaN(r.losses[i]!)), `${h}: ${r.losses[i]} vs ${want}`);
      }
      // Zeroing a LayerNorm scale divides by zero (NaN, as in TransformerLens); means stay finite.
      if (kind === 'mean') assert.ok(r.losses.every((x) => Number.isFinite(x)));
    } finally {
      await m.dispose();
    }
  });
}

test("the no-positional-embedding experiment's previous-token loss reads logits[:, 1:] against tokens[:, :-1]", () => {
  // logits [1, 3, 4]: position 1 predicts token 0 (id 2), position 2 predicts token 1 (id 3).
  const logits = f32([1, 3, 4], [0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 10]);
  const l = tokenLoss(logits, [[2, 3, 1]], 'previous_token');
  assert.ok(l < 1e-3, `loss ${l}`);
  assert.ok(tokenLoss(logits, [[2, 3, 1]], 'next_token') > 1);
});
