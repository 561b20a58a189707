import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { makeConfig } from '../../src/engine/model/config.js';
import { answerProbMetric, logitDiffMetric, naivePatchCell, normalizedMetric, runPatchSweep, SweepAbortedError, sweepLayout, type PatchSweepSpec } from '../../src/engine/analysis/patching.js';
import { fixtureConfig, fixtureParams, spec } from '../helpers/tinyModel.js';
import type { Metric } from '../../src/engine/analysis/metrics.js';

function fixtureModel(mode: 'none' | 'default'): HookedTransformer {
  const base = fixtureConfig();
  const cfg = mode === 'none' ? base : makeConfig({ ...base, normalization_type: 'LNPre' });
  return new HookedTransformer(cfg, fixtureParams(mode), mode, 'fixture', { device: 'cpu', threads: 1 });
}

/** Every sweep kind against the one-forward-per-cell loop, all cells, to 1e-5. */
async function checkAgainstNaive(m: HookedTransformer, sweep: PatchSweepSpec, metric: Metric, maxBatchRows?: number, noPrefix = false): Promise<void> {
  const cleanCache = (await m.runWithCache(spec.tokens)).cache;
  const r = await runPatchSweep(m, spec.tokens, spec.corrupted_tokens, metric, sweep, { maxBatchRows, noPrefix });
  const { cells } = sweepLayout(m.cfg, spec.tokens[0]!.length, sweep);
  assert.equal(r.values.length, cells.length);
  let worst = 0;
  let where = '';
  for (const cell of cells) {
    const naive = await naivePatchCell(m, cleanCache, spec.corrupted_tokens, metric, cell);
    const d = Math.abs(naive - r.values[cell.index]!);
    if (!(d <= worst)) {
      worst = d;
      where = `${cell.hook} ${JSON.stringify(cell.select)}: naive ${naive}, batched ${r.values[cell.index]}`;
    }
  }
  assert.ok(worst <= 1e-5, `${JSON.stringify(sweep)}: max |batched - naive| = ${worst} at ${where}`);
}

const sweeps: PatchSweepSpec[] = [
  { kind: 'layer_pos', hook: 'resid_pre' },
  { kind: 'layer_pos', hook: 'resid_mid' },
  { kind: 'layer_pos', hook: 'resid_post' },
  { kind: 'layer_pos', hook: 'attn_out' },
  { kind: 'layer_pos', hook: 'mlp_out' },
  { kind: 'head', activation: 'z' },
  { kind: 'head', activation: 'q' },
  { kind: 'head', activation: 'k' },
  { kind: 'head', activation: 'v' },
  { kind: 'head', activation: 'pattern' },
  { kind: 'head', activation: 'z', by: 'pos' },
  { kind: 'head', activation: 'q', by: 'pos' },
  { kind: 'head', activation: 'k', by: 'pos' },
  { kind: 'head', activation: 'v', by: 'pos' },
  { kind: 'head', activation: 'pattern', by: 'pos' },
  { kind: 'neuron', layer: 0 },
  { kind: 'neuron', layer: 1, neurons: [0, 5, 77, 127] },
  { kind: 'neuron', layer: 1, hook: 'pre', neurons: [3, 9] },
];

for (const mode of ['none', 'default'] as const) {
  test(`every patching sweep equals the naive loop (${mode}, normalised logit diff)`, async () => {
    const m = fixtureModel(mode);
    try {
      const ld = logitDiffMetric(spec.answers);
      const metric = normalizedMetric(ld, ld(await m.forward(spec.tokens)), ld(await m.forward(spec.corrupted_tokens)));
      // Small batches: several chunks per layer. The fixture's prompts differ from position 3
      // on, so the runs share a 3-position prefix; without it every position is recomputed.
      for (const s of sweeps) await checkAgainstNaive(m, s, metric, 12);
      for (const s of sweeps.slice(0, 6)) await checkAgainstNaive(m, s, metric, 12, true);
      // Head sweeps over all positions with every layer's cells in one batch.
      for (const s of sweeps.slice(5, 10)) await checkAgainstNaive(m, s, metric);
    } finally {
      await m.dispose();
    }
  });
}

test('a metric without a last-position reader and a whole-vocabulary one give the naive numbers too', async () => {
  const m = fixtureModel('default');
  try {
    const plain: Metric = (logits) => {
      // Mean of every logit at position 3: reads more than the last position.
      const [B, P, V] = logits.dims as [number, number, number];
      let s = 0;
      for (let b = 0; b < B; b++) for (let v = 0; v < V; v++) s += logits.data[(b * P + 3) * V + v]!;
      return s / B;
    };
    await checkAgainstNaive(m, { kind: 'layer_pos', hook: 'resid_pre' }, plain);
    await checkAgainstNaive(m, { kind: 'head', activation: 'z' }, answerProbMetric(spec.answers.map((a) => a[0])));
  } finally {
    await m.dispose();
  }
});

test('attention-only models: attn_out patches start after the block', async () => {
  const base = fixtureConfig();
  const cfg = makeConfig({ ...base, attn_only: true });
  const params = fixtureParams('none');
  for (const k of [...params.keys()]) if (k.includes('.mlp.') || k.includes('.ln2.')) params.delete(k);
  const m = new HookedTransformer(cfg, params, 'none', 'fixture-attn-only', { device: 'cpu', threads: 1 });
  try {
    const metric = logitDiffMetric(spec.answers);
    await checkAgainstNaive(m, { kind: 'layer_pos', hook: 'attn_out' }, metric);
    await checkAgainstNaive(m, { kind: 'layer_pos', hook: 'resid_post' }, metric);
    await assert.rejects(runPatchSweep(m, spec.tokens, spec.corrupted_tokens, metric, { kind: 'layer_pos', hook: 'mlp_out' }), /attention-only/);
  } finally {
    await m.dispose();
  }
});

test('progress is reported, and a cancelled sweep keeps its partial result', async () => {
  const m = fixtureModel('none');
  try {
    const metric = logitDiffMetric(spec.answers);
    const ac = new AbortController();
    const seen: [number, number][] = [];
    const run = runPatchSweep(m, spec.tokens, spec.corrupted_tokens, metric, { kind: 'head', activation: 'z' }, {
      maxBatchRows: 8,
      signal: ac.signal,
      onProgress: (done, total) => {
        seen.push([done, total]);
        if (done >= 4) ac.abort();
      },
    });
    const err = await run.then(() => null, (e: unknown) => e);
    assert.ok(err instanceof SweepAbortedError, `expected SweepAbortedError, got ${String(err)}`);
    const partial = (err as SweepAbortedError<{ values: Float64Array }>).partial.values;
    assert.deepEqual(seen, [[2, 8], [4, 8]]);
    assert.equal(partial.filter((v) => !Number.isNaN(v)).length, 4);
    assert.equal(partial.filter((v) => Number.isNaN(v)).length, 4);
  } finally {
    await m.dispose();
  }
});

test('layouts follow TransformerLens axis orders', () => {
  const cfg = fixtureConfig();
  assert.deepEqual(sweepLayout(cfg, 8, { kind: 'head', activation: 'z', by: 'pos' }).axes, ['layer', 'pos', 'head']);
  assert.deepEqual(sweepLayout(cfg, 8, { kind: 'head', activation: 'pattern', by: 'pos' }).axes, ['layer', 'head', 'dest_pos']);
  assert.deepEqual(sweepLayout(cfg, 8, { kind: 'layer_pos', hook: 'mlp_out', layers: [1] }).dims, [1, 8]);
  assert.throws(() => sweepLayout(cfg, 8, { kind: 'neuron', layer: 2 }), /layers 0\.\.1/);
  assert.throws(() => sweepLayout(cfg, 8, { kind: 'neuron', layer: 0, neurons: [128] }), /neurons 0\.\.127/);
});
