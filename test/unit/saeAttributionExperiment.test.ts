/**
 * The sae_attribution experiment kind through `mechlens run` / `mechlens report`: its numbers are
 * those of analysis/saeAttribution.ts in-process, on the experiment's normalised scale, and bad
 * files get located errors (no corrupted prompts, another metric, experiment-wide SAEs).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadRun } from '../../src/engine/experiments/store.js';
import { parseExperiment } from '../../src/engine/experiments/parse.js';
import { saeAttribution } from '../../src/engine/analysis/saeAttribution.js';
import { logitDiffMetric } from '../../src/engine/analysis/metrics.js';
import { loadSaeFolder } from '../../src/engine/sae/sae.js';
import { FIXTURES_ROOT, engineModel, oracleFixture } from '../helpers/oracle.js';
import { runCliResult } from '../helpers/cli.js';

const MODEL = path.join(FIXTURES_ROOT, 'gpt2-tied-gelu-new');
const SAE = path.join(FIXTURES_ROOT, 'saes', 'gpt2-tied-gelu-new', 'standard-resid-post-0');
const spec = JSON.parse(fs.readFileSync(path.join(MODEL, 'spec.json'), 'utf8')) as { prompts: string[]; corrupted_prompts: string[]; answer_strs: [string, string][] };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-sae-attr-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
fs.cpSync(SAE, path.join(tmp, 'saes', 'sae0'), { recursive: true });

const base = {
  model: { name: MODEL, processing: 'default' },
  prompts: spec.prompts.map((p, i) => ({ prompt: p, corrupted: spec.corrupted_prompts[i]!, answer: spec.answer_strs[i]![0], wrong: spec.answer_strs[i]![1] })),
};

const cli = runCliResult;

interface Cell { feature: number; pos: number; estimate: number; exact: number; estimateScaled: number; exactScaled: number }

test('sae_attribution runs from an experiment file with the in-process numbers, normalised like the patching kinds, and reports', async () => {
  const file = path.join(tmp, 'attr.experiment.json');
  fs.writeFileSync(file, JSON.stringify({ ...base, analyses: [{ kind: 'sae_attribution', sae: './saes/sae0', top: 4 }] }));
  const out = path.join(tmp, 'run');
  const r = await cli(['run', file, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const res = loadRun(out).results!.results[0]!;
  assert.equal(res.kind, 'sae_attribution');
  const cells = res.data['top'] as Cell[];
  assert.equal(cells.length, 4);

  const fx = oracleFixture('gpt2-tied-gelu-new');
  const ht = engineModel(fx, 'default');
  try {
    const sae = loadSaeFolder(SAE);
    const answers = fx.spec.answers as [number, number][];
    const want = await saeAttribution(ht, sae, fx.spec.tokens, fx.spec.corrupted_tokens, answers, { top: 4 });
    const metric = logitDiffMetric(answers);
    const clean = metric(await ht.forward(fx.spec.tokens));
    const corr = metric(await ht.forward(fx.spec.corrupted_tokens));
    cells.forEach((c, j) => {
      const w = want.top[j]!;
      assert.deepEqual([c.feature, c.pos], [w.feature, w.pos], `cell ${j}`);
      assert.ok(Math.abs(c.estimate - w.estimate) < 1e-5 && Math.abs(c.exact - w.exact!) < 1e-5, `cell ${j}: ${JSON.stringify(c)} vs ${JSON.stringify(w)}`);
      // Normalised: (corrupted + change - corrupted) / (clean - corrupted) with the plain model's metrics.
      assert.ok(Math.abs(c.estimateScaled - (want.corruptedMetric + w.estimate - corr) / (clean - corr)) < 1e-4, `cell ${j}: normalised estimate`);
      assert.ok(Math.abs(c.exactScaled - (want.corruptedMetric + w.exact! - corr) / (clean - corr)) < 1e-4, `cell ${j}: normalised exact`);
    });
  } finally {
    await ht.dispose();
  }
  const kinds = res.blocks.map((b) => b.type);
  assert.deepEqual(kinds, ['stats', 'heatmap', 'table']);
  const tableBlock = res.blocks[2] as { rows: (string | number | null)[][] };
  assert.equal(tableBlock.rows.length, 4);
  const html = path.join(tmp, 'report.html');
  const rep = await cli(['report', out, '--out', html]);
  assert.equal(rep.code, 0, rep.stderr);
  const text = fs.readFileSync(html, 'utf8');
  assert.match(text, /Attribution patching of SAE features/);
  assert.match(text, /exact patching beside the estimate/);
});

test('sae_attribution: located errors for missing corrupted prompts, another metric, experiment-wide SAEs, top out of range', () => {
  const parse = (extra: Record<string, unknown>, analyses: unknown[]) => parseExperiment(JSON.stringify({ ...base, ...extra, analyses }), path.join(tmp, 'x.experiment.json')).diagnostics;
  const a = [{ kind: 'sae_attribution', sae: './saes/sae0' }];
  const d1 = parse({ prompts: base.prompts.map(({ corrupted: _c, ...p }) => p) }, a);
  assert.ok(d1.some((d) => /sae_attribution patches clean activations into corrupted runs, but prompt 1 has no corrupted prompt/.test(d.message)), JSON.stringify(d1));
  const d2 = parse({ metric: 'answer_prob' }, a);
  assert.ok(d2.some((d) => /sae_attribution estimates changes of the logit difference; this experiment's metric is answer_prob/.test(d.message)), JSON.stringify(d2));
  const d3 = parse({ saes: [{ sae: './saes/sae0' }] }, a);
  assert.ok(d3.some((d) => /"saes" splices others into every analysis/.test(d.message)), JSON.stringify(d3));
  const d4 = parse({}, [{ kind: 'sae_attribution', sae: './saes/sae0', top: 500 }]);
  assert.ok(d4.some((d) => /500 is above the maximum 200/.test(d.message)), JSON.stringify(d4));
  const d5 = parse({}, [{ kind: 'sae_attribution', sae: './saes/missing' }]);
  assert.ok(d5.some((d) => d.severity === 'error'), JSON.stringify(d5));
  assert.equal(parse({}, a).filter((d) => d.severity === 'error').length, 0);
});
