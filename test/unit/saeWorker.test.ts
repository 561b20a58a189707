/**
 * engine/sae/* through the worker, as the editor's views call them: load an SAE for the loaded
 * model, features per token (checked against SAELens's), a feature's activations, a dashboard over
 * a corpus file with progress (then cached), and runWithCache splicing a loaded SAE.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient } from '../../src/engine/worker/client.js';
import { EngineRequests } from '../../src/protocol/engine.js';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { FIXTURES_ROOT } from '../helpers/oracle.js';

const entry = path.join(__dirname, '..', '..', 'src', 'engine', 'worker', 'engineWorker.ts');
const MODEL = path.join(FIXTURES_ROOT, 'gpt2-tied-gelu-new');
const SAES = path.join(FIXTURES_ROOT, 'saes', 'gpt2-tied-gelu-new');
const NAME = 'standard-resid-post-0';
const HOOK = 'blocks.0.hook_resid_post';
const spec = JSON.parse(fs.readFileSync(path.join(MODEL, 'spec.json'), 'utf8')) as { prompts: string[]; tokens: number[][] };
const want = readSafetensors(path.join(SAES, 'expected.safetensors')).get(`${NAME}/with_error/${HOOK}.hook_sae_acts_post`)!;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-sae-worker-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('the worker loads an SAE and answers features, feature activations, dashboards and spliced runs', async () => {
  const c = new EngineClient({ workerPath: path.join(__dirname, '..', 'helpers', 'tsWorker.cjs'), workerData: { entry } });
  try {
    await assert.rejects(c.request(EngineRequests.saeLoad, { sae: path.join(SAES, NAME) }), /no model is loaded/);
    await c.request(EngineRequests.loadModel, { model: MODEL, processing: 'default', device: 'cpu' });
    const info = await c.request(EngineRequests.saeLoad, { sae: path.join(SAES, NAME) });
    assert.equal(info.architecture, 'standard');
    assert.equal(info.hookOut, HOOK);
    await assert.rejects(c.request(EngineRequests.saeLoad, { sae: path.join(FIXTURES_ROOT, 'saes', 'rms-gqa-gated', 'jumprelu-mlp-post-0') }), /d_in = 64, but blocks\.0\.mlp\.hook_post of this model has width 128/);

    const D = info.d_sae;
    const f = await c.request(EngineRequests.saeFeatures, { saeId: info.id, texts: [spec.prompts[0]!], top: 3 });
    assert.deepEqual(f.tokens[0], spec.tokens[0]);
    const P = spec.tokens[0]!.length;
    for (let p = 0; p < P; p++) {
      const row = Array.from(want.data.subarray(p * D, (p + 1) * D));
      const best = row.indexOf(Math.max(...row));
      assert.equal(f.top[0]![p]![0]!.feature, best, `pos ${p}: top feature`);
      assert.ok(Math.abs(f.top[0]![p]![0]!.act - row[best]!) < 1e-4);
    }
    const feat = f.top[0]![3]![0]!.feature;
    const a = await c.request(EngineRequests.saeFeatureActs, { saeId: info.id, texts: [spec.prompts[0]!], feature: feat });
    a.values[0]!.forEach((v, p) => assert.ok(Math.abs(v - want.data[p * D + feat]!) < 1e-4));

    const corpus = path.join(tmp, 'corpus.txt');
    fs.writeFileSync(corpus, 'When Mary and John went to the store, John gave a drink to Mary. The Eiffel Tower is in Paris. '.repeat(6));
    const progress: number[] = [];
    const dash = await c.requestWithProgress(EngineRequests.saeDashboard, { saeId: info.id, feature: feat, corpus: { file: corpus }, rowTokens: 16, topK: 5, contextTokens: 3 }, (pr) => pr.fraction !== undefined && progress.push(pr.fraction));
    assert.ok(progress.length > 0 && progress[progress.length - 1] === 1, `progress ${progress.join(', ')}`);
    assert.ok(dash.tokens > 100 && dash.density > 0 && dash.density <= 1);
    assert.equal(dash.contexts.length, 5);
    assert.ok(dash.contexts[0]!.act >= dash.contexts[4]!.act && Math.abs(dash.contexts[0]!.act - dash.maxAct) < 1e-6);
    assert.ok(dash.contexts.every((x) => x.highlight >= 0 && x.highlight < x.strTokens.length));
    assert.ok(dash.histogram.counts.reduce((s, v) => s + v, 0) > 0);
    assert.equal(dash.logitEffect!.top.length, 10);
    // Cached: the same corpus again sends no progress.
    const again: number[] = [];
    await c.requestWithProgress(EngineRequests.saeDashboard, { saeId: info.id, feature: feat + 1 < D ? feat + 1 : 0, corpus: { file: corpus }, rowTokens: 16 }, (pr) => pr.fraction !== undefined && again.push(pr.fraction));
    assert.equal(again.length, 0);

    const answers = JSON.parse(fs.readFileSync(path.join(MODEL, 'spec.json'), 'utf8')) as { answer_strs: [string, string][] };
    const dla = await c.request(EngineRequests.saeFeatureDla, { saeId: info.id, texts: spec.prompts, answers: answers.answer_strs });
    assert.ok(dla.features.length > 0 && dla.features.length === dla.values.length);
    assert.ok(Math.abs(dla.values.reduce((a2, v) => a2 + v, 0) + dla.bias + dla.error - dla.total) < 1e-9);

    const r = await c.request(EngineRequests.runWithCache, { tokens: [spec.tokens[0]!], names: [`${HOOK}.hook_sae_acts_post`], saes: [{ saeId: info.id, useErrorTerm: true }] });
    const got = r.cache[`${HOOK}.hook_sae_acts_post`]!;
    assert.deepEqual(got.dims, [1, P, D]);
    got.data.forEach((v, i) => assert.ok(Math.abs(v - want.data[i]!) < 1e-4));
  } finally {
    await c.dispose();
  }
});
