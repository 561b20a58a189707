import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { logitDiffMetric, normalizedMetric, patchHeadAllPos, patchResidPreByLayerPos } from '../../src/engine/analysis/patching.js';
import { makeConfig } from '../../src/engine/model/config.js';
import { expectedJson, fixtureConfig, fixtureParams, spec } from '../helpers/fixture.js';
import type { HookName } from '../../src/engine/hooks/hooks.js';

function fixtureModel(mode: 'none' | 'default'): HookedTransformer {
  const base = fixtureConfig();
  const cfg = mode === 'none' ? base : makeConfig({ ...base, normalization_type: 'LNPre' });
  return new HookedTransformer(cfg, fixtureParams(mode), mode, 'fixture', { device: 'cpu', threads: 1 });
}

function assertMatrixClose(got: number[][], want: number[][], atol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: rows`);
  let worst = 0;
  got.forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - want[i]![j]!)))));
  assert.ok(worst <= atol, `${what}: max |diff| ${worst} > ${atol}`);
}

for (const mode of ['none', 'default'] as const) {
  test(`resid_pre and head z patching match the fixture (${mode})`, async () => {
    const m = fixtureModel(mode);
    try {
      const ld = logitDiffMetric(spec.answers);
      const clean = ld(await m.forward(spec.tokens));
      const corr = ld(await m.forward(spec.corrupted_tokens));
      const exp = expectedJson.processing[mode] as { logit_diff: number; corrupted_logit_diff: number; resid_pre_patching: number[][]; head_z_patching: number[][] };
      assert.ok(Math.abs(clean - exp.logit_diff) < 1e-4, `clean logit diff ${clean} vs ${exp.logit_diff}`);
      assert.ok(Math.abs(corr - exp.corrupted_logit_diff) < 1e-4, `corrupted logit diff ${corr} vs ${exp.corrupted_logit_diff}`);
      const metric = normalizedMetric(ld, clean, corr);
      // Small batches force several chunks per layer, exercising the batching.
      assertMatrixClose(await patchResidPreByLayerPos(m, spec.tokens, spec.corrupted_tokens, metric, { maxBatchRows: 12 }), exp.resid_pre_patching, 1e-4, 'resid_pre_patching');
      assertMatrixClose(await patchHeadAllPos(m, spec.tokens, spec.corrupted_tokens, metric, 'z', { maxBatchRows: 8 }), exp.head_z_patching, 1e-4, 'head_z_patching');
    } finally {
      await m.dispose();
    }
  });
}

test('batched sweep equals the naive one-forward-per-cell loop', async () => {
  const m = fixtureModel('none');
  try {
    const ld = logitDiffMetric(spec.answers);
    const clean = await m.runWithCache(spec.tokens);
    const batched = await patchHeadAllPos(m, spec.tokens, spec.corrupted_tokens, ld, 'v');
    for (let l = 0; l < m.cfg.n_layers; l++) {
      for (let h = 0; h < m.cfg.n_heads; h++) {
        const hook = `blocks.${l}.attn.hook_v` as HookName;
        const logits = await m.runWithHooks(spec.corrupted_tokens, [{ kind: 'patch', hook, index: { head_index: [h] }, source: clean.cache.get(hook)! }]);
        assert.ok(Math.abs(ld(logits) - batched[l]![h]!) < 1e-5, `L${l}H${h}: naive ${ld(logits)} vs batched ${batched[l]![h]}`);
      }
    }
  } finally {
    await m.dispose();
  }
});

test('patching clean into clean gives 1 everywhere', async () => {
  const m = fixtureModel('default');
  try {
    const ld = logitDiffMetric(spec.answers);
    const metric = normalizedMetric(ld, ld(await m.forward(spec.tokens)), ld(await m.forward(spec.corrupted_tokens)));
    // The "corrupted" run is the clean prompt itself, so every patched run is the clean run.
    const heads = await patchHeadAllPos(m, spec.tokens, spec.tokens, metric, 'z');
    const resid = await patchResidPreByLayerPos(m, spec.tokens, spec.tokens, metric);
    for (const v of [...heads.flat(), ...resid.flat()]) assert.ok(Math.abs(v - 1) < 1e-5, `got ${v}`);
  } finally {
    await m.dispose();
  }
});
