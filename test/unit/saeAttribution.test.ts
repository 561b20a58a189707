/**
 * Attribution patching over SAE features (analysis/saeAttribution.ts): its gradient against
 * central finite differences of the metric (a feature's activation nudged through the splice's
 * own hook), its estimates as gradient x activation difference, and its exact patching against
 * the same edit made another way (adding the activation difference), for SAEs of every
 * architecture and normalisation of the fixtures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { FIXTURES_ROOT, engineModel, oracleFixture } from '../helpers/oracle.js';
import { checkSaeForModel, loadSaeFolder } from '../../src/engine/sae/sae.js';
import { saeAttribution } from '../../src/engine/analysis/saeAttribution.js';
import { logitDiffMetric } from '../../src/engine/analysis/metrics.js';
import { f32 } from '../../src/engine/tensor/tensor.js';
import type { Intervention } from '../../src/engine/interventions/plan.js';
import type { SaeHookName } from '../../src/engine/hooks/hooks.js';

const CASES: [string, string[]][] = [
  ['gpt2-tied-gelu-new', ['standard-resid-post-0', 'topk-resid-pre-1', 'standard-mlp-post-1-layer-norm', 'transcoder-mlp-0', 'gated-attn-out-0', 'jumprelu-mlp-out-1']],
  ['rms-gqa-gated', ['standard-resid-pre-1-constant-norm', 'topk-resid-mid-0-rescaled', 'jumprelu-transcoder-mlp-1']],
];

for (const [model, folders] of CASES) {
  test(`${model}: the features' gradient equals finite differences; estimates are gradient x activation difference; exact patching equals adding the difference`, async () => {
    const fx = oracleFixture(model);
    const ht = engineModel(fx, 'default');
    const clean = fx.spec.tokens;
    const corrupted = fx.spec.corrupted_tokens;
    const answers = fx.spec.answers as [number, number][];
    const metric = logitDiffMetric(answers);
    const [B, P] = [clean.length, clean[0]!.length];
    try {
      for (const folder of folders) {
        const sae = loadSaeFolder(path.join(FIXTURES_ROOT, 'saes', model, folder));
        const { hookOut } = checkSaeForModel(sae, ht.cfg);
        const D = sae.cfg.d_sae;
        const acts = `${hookOut}.hook_sae_acts_post` as SaeHookName;
        const splice = { saes: [{ sae, useErrorTerm: true }] };
        const r = await saeAttribution(ht, sae, clean, corrupted, answers, { top: 3 });
        assert.equal(r.top.length, 3, folder);

        // Estimates: sum over prompts of (clean - corrupted) x gradient.
        for (let p = 0; p < P; p++) for (let f = 0; f < D; f++) {
          let want = 0;
          for (let b = 0; b < B; b++) {
            const i = (b * P + p) * D + f;
            want += (r.cleanActs.data[i]! - r.corruptedActs.data[i]!) * r.grad.data[i]!;
          }
          assert.ok(Math.abs(r.estimate.data[p * D + f]! - want) <= 1e-6 * Math.max(1, Math.abs(want)), `${folder}: estimate at (${p}, ${f})`);
        }
        const ranked = [...r.estimate.data].map(Math.abs).sort((a, b) => b - a);
        r.top.forEach((c, j) => assert.equal(Math.abs(r.estimate.data[c.pos * D + c.feature]!), ranked[j], `${folder}: top ${j} is the ${j}-th largest |estimate|`));

        // Gradient: central differences of the metric, a feature nudged at one prompt and position.
        const nudge = async (b: number, p: number, f: number, eps: number) => {
          const v = new Float32Array(D);
          v[f] = eps;
          return metric(await ht.forward(corrupted, { ...splice, interventions: [{ kind: 'add', hook: acts, vector: f32([D], v), index: { batch: [b], pos: [p] } }] }));
        };
        const cells: [number, number, number][] = [...r.top.map((c) => [0, c.pos, c.feature] as [number, number, number]), [1, P - 1, 0], [1, P - 2, D - 1], [0, 1, 7 % D]];
        let worst = 0;
        for (const [b, p, f] of cells) {
          const eps = 1e-2;
          const fd = ((await nudge(b, p, f, eps)) - (await nudge(b, p, f, -eps))) / (2 * eps);
          const g = r.grad.data[(b * P + p) * D + f]!;
          const err = Math.abs(fd - g) / Math.max(0.05, Math.abs(g));
          worst = Math.max(worst, err);
          assert.ok(err < 2e-3, `${folder}: d metric / d feature ${f} at prompt ${b}, position ${p}: gradient ${g}, finite difference ${fd}`);
        }
        // A gradient that cannot be told from zero checks nothing: the cells must move the metric.
        assert.ok(cells.some(([b, p, f]) => Math.abs(r.grad.data[(b * P + p) * D + f]!) > 1e-3), `${folder}: all gradients checked are ~0`);

        // Exact patching: the same as adding (clean - corrupted) at that cell of each prompt.
        for (const c of r.top) {
          const ivs: Intervention[] = [];
          for (let b = 0; b < B; b++) {
            const v = new Float32Array(D);
            const i = (b * P + c.pos) * D + c.feature;
            v[c.feature] = r.cleanActs.data[i]! - r.corruptedActs.data[i]!;
            ivs.push({ kind: 'add', hook: acts, vector: f32([D], v), index: { batch: [b], pos: [c.pos] } });
          }
          const viaAdd = metric(await ht.forward(corrupted, { ...splice, interventions: ivs })) - r.corruptedMetric;
          assert.ok(Math.abs(c.exact! - viaAdd) < 1e-4, `${folder}: exact patching of feature ${c.feature} at ${c.pos}: ${c.exact} vs ${viaAdd} by adding the difference`);
        }
        // The splice leaves the model's metric as it is (error term).
        assert.ok(Math.abs(r.cleanMetric - metric(await ht.forward(clean))) < 1e-4, folder);
        assert.ok(Math.abs(r.corruptedMetric - metric(await ht.forward(corrupted))) < 1e-4, folder);
      }
    } finally {
      await ht.dispose();
    }
  });
}

test('attribution over features refuses attached SAEs and mismatched prompts', async () => {
  const fx = oracleFixture('gpt2-tied-gelu-new');
  const ht = engineModel(fx, 'default');
  try {
    const sae = loadSaeFolder(path.join(FIXTURES_ROOT, 'saes', 'gpt2-tied-gelu-new', 'standard-resid-post-0'));
    const answers = fx.spec.answers as [number, number][];
    await assert.rejects(saeAttribution(ht, sae, fx.spec.tokens, fx.spec.corrupted_tokens.map((r) => r.slice(1)), answers), /must have the same shape/);
    await assert.rejects(saeAttribution(ht, sae, fx.spec.tokens, fx.spec.corrupted_tokens, answers.slice(1)), /answers: got 1/);
    ht.attachSae({ sae, useErrorTerm: true });
    await assert.rejects(saeAttribution(ht, sae, fx.spec.tokens, fx.spec.corrupted_tokens, answers), /SAEs are attached at blocks\.0\.hook_resid_post/);
  } finally {
    ht.detachSaes();
    await ht.dispose();
  }
});
