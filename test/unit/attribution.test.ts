/**
 * Attribution patching (src/engine/analysis/attribution.ts) on the tiny GPT-2 fixture:
 *  1. each estimate equals the directional derivative of the normalised metric along
 *     (clean - corrupted) restricted to the cell, measured by finite differences through
 *     HookedTransformer's own patching interventions (an independent forward implementation);
 *  2. over every sweep, the estimates correlate with exact activation patching (runPatchSweep).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { AttributionPatcher, attributionPatching, type AttributionResult } from '../../src/engine/analysis/attribution.js';
import { logitDiffMetric, normalizedMetric, runPatchSweep, type PatchSweepSpec } from '../../src/engine/analysis/patching.js';
import { hookAxes, type HookName } from '../../src/engine/hooks/hooks.js';
import { applyProcessing } from '../../src/engine/weights/process.js';
import { f32, type F32 } from '../../src/engine/tensor/tensor.js';
import { fixtureConfig, fixtureParams, spec } from '../helpers/tinyModel.js';
import { pearson } from '../../src/engine/tensor/stats.js';

function fixtureModel(mode: 'none' | 'default'): HookedTransformer {
  const { cfg, params } = applyProcessing(fixtureConfig(), fixtureParams('none'), mode);
  return new HookedTransformer(cfg, params, mode, 'fixture', { device: 'cpu', threads: 1 });
}


/** corr + t * (clean - corr) on the entries where `inCell(index per axis)`, corr elsewhere. */
function moved(clean: F32, corr: F32, axes: readonly string[], inCell: (at: Record<string, number>) => boolean, t: number): F32 {
  const out = f32(corr.dims, corr.data.slice());
  const dims = corr.dims;
  const at: Record<string, number> = {};
  for (let i = 0; i < out.data.length; i++) {
    let rem = i;
    for (let a = dims.length - 1; a >= 0; a--) {
      at[axes[a]!] = rem % dims[a]!;
      rem = Math.floor(rem / dims[a]!);
    }
    if (inCell(at)) out.data[i] = corr.data[i]! + t * (clean.data[i]! - corr.data[i]!);
  }
  return out;
}

for (const mode of ['none', 'default'] as const) {
  test(`attribution = finite-difference directional derivative of the patched metric (processing ${mode})`, async () => {
    const m = fixtureModel(mode);
    try {
      const r = await attributionPatching(m, spec.tokens, spec.corrupted_tokens, spec.answers);
      const ld = logitDiffMetric(spec.answers);
      const clean = await m.runWithCache(spec.tokens);
      const corr = await m.runWithCache(spec.corrupted_tokens);
      const cleanLd = ld(clean.logits!), corrLd = ld(corr.logits!);
      assert.ok(Math.abs(r.cleanMetric - cleanLd) < 1e-4 && Math.abs(r.corruptedMetric - corrLd) < 1e-4, `metrics ${r.cleanMetric}, ${r.corruptedMetric} vs HookedTransformer ${cleanLd}, ${corrLd}`);
      const h = 1e-2;
      const cells: [string, HookName, (at: Record<string, number>) => boolean, number][] = [
        ['resid_pre L1 pos 3', 'blocks.1.hook_resid_pre', (a) => a['pos'] === 3, r.residPre[1]![3]!],
        ['resid_pre L0 pos 3', 'blocks.0.hook_resid_pre', (a) => a['pos'] === 3, r.residPre[0]![3]!],
        ['attn_out L0 pos 5', 'blocks.0.hook_attn_out', (a) => a['pos'] === 5, r.attnOut[0]![5]!],
        ['mlp_out L1 pos 7', 'blocks.1.hook_mlp_out', (a) => a['pos'] === 7, r.mlpOut[1]![7]!],
        ['z L1 H2', 'blocks.1.attn.hook_z', (a) => a['head_index'] === 2, r.heads.z[1]![2]!],
        ['q L1 H0', 'blocks.1.attn.hook_q', (a) => a['head_index'] === 0, r.heads.q[1]![0]!],
        ['k L0 H1', 'blocks.0.attn.hook_k', (a) => a['head_index'] === 1, r.heads.k[0]![1]!],
        ['v L0 H3', 'blocks.0.attn.hook_v', (a) => a['head_index'] === 3, r.heads.v[0]![3]!],
        ['pattern L1 H1', 'blocks.1.attn.hook_pattern', (a) => a['head_index'] === 1, r.heads.pattern[1]![1]!],
        ['neuron L0 N17', 'blocks.0.mlp.hook_post', (a) => a['d_mlp'] === 17, r.neurons[0]![17]!],
        ['neuron L1 N100', 'blocks.1.mlp.hook_post', (a) => a['d_mlp'] === 100, r.neurons[1]![100]!],
      ];
      const report: string[] = [];
      for (const [label, hook, inCell, attr] of cells) {
        const axes = hookAxes(hook, m.cfg);
        const c = clean.cache.get(hook)!, x = corr.cache.get(hook)!;
        const at = async (t: number) => ld(await m.runWithHooks(spec.corrupted_tokens, [{ kind: 'patch', hook, source: moved(c, x, axes, inCell, t) }]));
        const fd = (await at(h)) - (await at(-h));
        const want = fd / (2 * h) / (cleanLd - corrLd);
        report.push(`${label}: attribution ${attr.toFixed(5)}, finite difference ${want.toFixed(5)}`);
        assert.ok(Math.abs(attr - want) <= 2e-3 + 2e-2 * Math.abs(want), `${label}: attribution ${attr} vs finite difference ${want}`);
      }
      console.log(report.join('\n'));
    } finally {
      await m.dispose();
    }
  });
}

function flatten(r: AttributionResult, which: string): number[] {
  switch (which) {
    case 'resid_pre': return r.residPre.flat();
    case 'attn_out': return r.attnOut.flat();
    case 'mlp_out': return r.mlpOut.flat();
    case 'neurons': return r.neurons.flat();
    default: return r.heads[which as 'z'].flat();
  }
}

test('attribution patching correlates with exact activation patching over every sweep (fixture)', async () => {
  const m = fixtureModel('none');
  const patcher = new AttributionPatcher(m);
  try {
    const r = await patcher.run(spec.tokens, spec.corrupted_tokens, spec.answers);
    // A second run reuses the compiled session and gives the same numbers.
    const again = await patcher.run(spec.tokens, spec.corrupted_tokens, spec.answers);
    assert.deepEqual(again.heads.z, r.heads.z);
    const ld = logitDiffMetric(spec.answers);
    const metric = normalizedMetric(ld, r.cleanMetric, r.corruptedMetric);
    const sweeps: [string, PatchSweepSpec[]][] = [
      ['resid_pre', [{ kind: 'layer_pos', hook: 'resid_pre' }]],
      ['attn_out', [{ kind: 'layer_pos', hook: 'attn_out' }]],
      ['mlp_out', [{ kind: 'layer_pos', hook: 'mlp_out' }]],
      ...(['z', 'q', 'k', 'v', 'pattern'] as const).map((a): [string, PatchSweepSpec[]] => [a, [{ kind: 'head', activation: a }]]),
      ['neurons', [{ kind: 'neuron', layer: 0 }, { kind: 'neuron', layer: 1 }]],
    ];
    const all: [number[], number[]] = [[], []];
    const report: string[] = [];
    const min: Record<string, number> = { resid_pre: 0.95, attn_out: 0.9, mlp_out: 0.9, z: 0.8, q: 0.8, k: 0.7, v: 0.95, pattern: 0.5, neurons: 0.9 };
    for (const [name, specs] of sweeps) {
      const exact: number[] = [];
      for (const s of specs) exact.push(...(await runPatchSweep(m, spec.tokens, spec.corrupted_tokens, metric, s)).values);
      const approx = flatten(r, name);
      assert.equal(approx.length, exact.length, `${name}: cell count`);
      const rho = pearson(exact, approx);
      report.push(`${name}: ${exact.length} cells, Pearson r = ${rho.toFixed(3)}`);
      assert.ok(rho >= min[name]!, `${name}: correlation with exact patching ${rho} < ${min[name]}`);
      all[0].push(...exact);
      all[1].push(...approx);
    }
    const pooled = pearson(all[0], all[1]);
    report.push(`all sweeps pooled: ${all[0].length} cells, Pearson r = ${pooled.toFixed(3)}`);
    console.log(report.join('\n'));
    assert.ok(pooled > 0.9, `pooled correlation ${pooled}`);
  } finally {
    await patcher.dispose();
    await m.dispose();
  }
});

test('attribution patching rejects mismatched inputs with clear errors', async () => {
  const m = fixtureModel('none');
  try {
    await assert.rejects(attributionPatching(m, spec.tokens, spec.corrupted_tokens.slice(1), spec.answers), /must have the same shape/);
    await assert.rejects(attributionPatching(m, spec.tokens, spec.corrupted_tokens, spec.answers.slice(1)), /answers: got 3/);
    await assert.rejects(attributionPatching(m, spec.tokens, spec.tokens, spec.answers), /normalised metric .* is undefined/);
  } finally {
    await m.dispose();
  }
});
