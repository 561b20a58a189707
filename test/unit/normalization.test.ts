/**
 * One rule for the normalised patching metric (patched − corrupted) / (clean − corrupted): where
 * clean and corrupted metrics are equal it is undefined, shown as such with the reason, and the
 * raw values shown instead are labelled raw — in experiment runs and in `mechlens analyze` alike.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runExperimentFile } from '../../src/engine/experiments/commands.js';
import { LoadedEngine, analyzeModel } from '../../src/engine/engine.js';
import { normalizationUndefined, normalizedMetric, logitDiffMetric } from '../../src/engine/analysis/metrics.js';

test('the rule: equal or non-finite metrics make the normalised metric undefined, with the reason', () => {
  assert.equal(normalizationUndefined(2, 1), null);
  assert.match(normalizationUndefined(1.5, 1.5)!, /equal \(1\.50000\)/);
  assert.match(normalizationUndefined(1.5, 1.5 + 1e-9)!, /equal/);
  assert.match(normalizationUndefined(NaN, 1)!, /not finite/);
  assert.throws(() => normalizedMetric(logitDiffMetric([[1, 2]]), 3, 3), /normalised metric is undefined: the clean and corrupted metrics are equal/);
});

test('an experiment whose clean and corrupted prompts give equal metrics shows raw values labelled raw, with the reason', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-norm-'));
  const file = path.join(dir, 'same.experiment.json');
  // The corrupted prompt is the clean one: nothing to normalise by.
  fs.writeFileSync(file, JSON.stringify({ model: 'builtin:toy', normalize: true, prompts: [{ prompt: 'the cat sat', corrupted: 'the cat sat', answer: 'a', wrong: 'o' }], analyses: [{ kind: 'patch', hook: 'resid_pre' }, { kind: 'patch_heads', activation: 'z' }] }));
  const r = await runExperimentFile(file, { out: path.join(dir, 'run'), log: () => undefined });
  for (const res of r.results.results) {
    const heat = res.blocks.find((b) => b.type === 'heatmap' || b.type === 'compare');
    assert.ok(heat, `${res.title} has a figure`);
    const data = heat.type === 'heatmap' ? heat.data : heat.type === 'compare' ? heat.exact : undefined;
    assert.match(data!.valueLabel, /^raw logit diff \(normalisation undefined\)/, `${res.title}: ${data!.valueLabel}`);
    assert.doesNotMatch(JSON.stringify(res.blocks), /normalised logit diff/);
    assert.ok(res.notes?.some((n) => /Normalised values are undefined for these prompts: the clean and corrupted metrics are equal/.test(n)), JSON.stringify(res.notes));
    const values = (res.data['values'] as number[] | undefined) ?? [];
    assert.ok(values.length > 0 && values.every((v) => Number.isFinite(v)), 'raw values are numbers, not null');
  }
});

test('mechlens analyze: the same rule, said in the output instead of null', async () => {
  const eng = await LoadedEngine.load('builtin:toy', { processing: 'default' });
  try {
    const tokens = [[1, 2, 3, 4]];
    const same = await analyzeModel(eng.model, tokens, tokens, [[5, 6]]);
    assert.equal(same.patching_metric, 'raw logit difference');
    assert.match(same.normalization_undefined!, /equal/);
    assert.ok(same.resid_pre_patching.flat().every((v) => Number.isFinite(v)), 'raw values, not null');
    const diff = await analyzeModel(eng.model, tokens, [[1, 7, 3, 4]], [[5, 6]]);
    assert.equal(diff.patching_metric, 'normalised logit difference');
    assert.equal(diff.normalization_undefined, null);
  } finally {
    await eng.dispose();
  }
});
