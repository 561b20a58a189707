/**
 * engine/analysis/attribution and engine/tokens/measure (added for the extension's panels and
 * diagnostics), in the engine and through the worker.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { LoadedEngine } from '../../../src/engine/engine.js';
import { EngineClient } from '../../../src/engine/worker/client.js';
import { EngineRequests } from '../../../src/protocol/engine.js';
import { FIXTURE_MODEL_DIR } from '../../helpers/fixture.js';

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

test('attribution of one answer: components sum to the final logit lens value; a folded model with b_U = 0 gives the logit', async () => {
  const e = await LoadedEngine.load('builtin:toy', { device: 'cpu' });
  try {
    const r = await e.attribution('Hello wor', { answer: 'l' });
    assert.equal(r.answer.str, 'l');
    assert.equal(r.answer.predicted, false);
    assert.equal(r.strTokens.length, 10, 'BOS + 9 characters');
    assert.deepEqual(r.layerLabels, ['embed', 'pos_embed', '0_attn_out', '0_mlp_out', '1_attn_out', '1_mlp_out']);
    assert.equal(r.headDla.length, 2);
    assert.equal(r.headDla[0]!.length, 4);
    assert.equal(r.logitLens.labels.at(-1), 'final_post');
    const final = r.logitLens.values.at(-1)!;
    assert.ok(Math.abs(sum(r.layerDla) - final) < 1e-4, `sum(layerDla) ${sum(r.layerDla)} vs final_post ${final}`);
    assert.ok(Math.abs(final - r.total) < 1e-4, `final_post ${final} vs logit ${r.total} (toy b_U is 0)`);
    // No answer: the top prediction, with rank 0.
    const top = await e.attribution('Hello wor');
    assert.equal(top.answer.predicted, true);
    assert.equal(top.answer.rank, 0);
  } finally {
    await e.dispose();
  }
});

test('attribution with a wrong answer equals analyze()\'s head_dla / layer_dla / logit_lens for that prompt (fixture model)', async () => {
  const e = await LoadedEngine.load(FIXTURE_MODEL_DIR, { device: 'cpu' });
  try {
    // The fixture's tokenizer reads token ids.
    const pair = await e.attribution('1 2 3 7', { answer: '4', wrong: '5' });
    const a = await e.attribution('1 2 3 7', { answer: '4' });
    const w = await e.attribution('1 2 3 7', { answer: '5' });
    const corrupted = [pair.tokens.map((t, i) => (i === 1 ? (t + 1) % 50 : t))];
    const ref = await e.analyze([pair.tokens], corrupted, [[pair.answer.token, pair.wrong!.token]]);
    const close = (x: number, y: number, what: string) => assert.ok(Math.abs(x - y) < 1e-4, `${what}: ${x} vs ${y}`);
    pair.layerDla.forEach((v, i) => close(v, ref.layer_dla[i]!, `layer_dla[${i}]`));
    pair.headDla.forEach((row, l) => row.forEach((v, h) => close(v, ref.head_dla[l]![h]!, `head_dla[${l}][${h}]`)));
    pair.logitLens.values.forEach((v, i) => close(v, ref.logit_lens.values[i]!, `logit_lens[${i}]`));
    close(pair.total, ref.logit_diff, 'logit diff');
    // Linear in the direction: DLA(answer - wrong) = DLA(answer) - DLA(wrong).
    pair.layerDla.forEach((v, i) => close(v, a.layerDla[i]! - w.layerDla[i]!, `single-answer layer ${i}`));
    pair.headDla.forEach((row, l) => row.forEach((v, h) => close(v, a.headDla[l]![h]! - w.headDla[l]![h]!, `single-answer L${l}H${h}`)));
  } finally {
    await e.dispose();
  }
});

test('bad input is explained: multi-token answer, wrong without answer, empty and too long prompts', async () => {
  const e = await LoadedEngine.load('builtin:toy', { device: 'cpu' });
  try {
    await assert.rejects(e.attribution('Hello', { answer: ' Mary' }), /answer must be a single token: " Mary" is 5 tokens/);
    await assert.rejects(e.attribution('Hello', { wrong: 'x' }), /a wrong answer needs an answer/);
    await assert.rejects(e.attribution('   '), /the prompt is empty/);
    await assert.rejects(e.attribution('x'.repeat(300)), /301 tokens, longer than the model's context of 256/);
    const m = e.measureTokens(['abc', 'x'.repeat(300), '\u00e9'], true);
    assert.equal(m.n_ctx, 256);
    assert.deepEqual(m.items.map((i) => i.count), [4, 301, 0]);
    assert.match(m.items[2]!.error ?? '', /not in this model's vocabulary/);
  } finally {
    await e.dispose();
  }
});

test('the worker serves attribution and measureTokens', async () => {
  const entry = path.join(__dirname, '..', '..', '..', 'src', 'engine', 'worker', 'engineWorker.ts');
  const c = new EngineClient({ workerPath: path.join(__dirname, '..', '..', 'helpers', 'tsWorker.cjs'), workerData: { entry } });
  try {
    await c.request(EngineRequests.loadModel, { model: 'builtin:toy', device: 'cpu' });
    const r = await c.request(EngineRequests.attribution, { prompt: 'Hello', answer: 'o', wrong: 'a' });
    assert.equal(r.wrong?.str, 'a');
    const m = await c.request(EngineRequests.measureTokens, { texts: [' Mary'], prependBos: false });
    assert.deepEqual(m.items[0]?.strTokens, [' ', 'M', 'a', 'r', 'y']);
  } finally {
    await c.dispose();
  }
});
