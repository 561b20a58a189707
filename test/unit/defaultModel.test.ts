/**
 * The embedded default model (models/default/, trained by scripts/train-default-model.ts):
 * `builtin:default` loads it rather than the untrained toy, and the extension's own head
 * detectors find a previous-token head and an induction head in it on fresh random tokens
 * (nothing is read from metrics.json), and it predicts held-out text of the book far better than
 * character frequencies alone.
 */
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoadedEngine } from '../../src/engine/engine.js';
import { embeddedModelDir } from '../../src/engine/model/builtin.js';
import { repeatedTokenHeadScores } from '../../src/engine/analysis/heads.js';
import { loss } from '../../src/engine/analysis/basic.js';
import { prepareText, textWindows, unigramEntropy } from '../../scripts/train-default-model.js';

const MODEL_DIR = path.resolve(__dirname, '..', '..', 'models', 'default');
const THRESHOLD = 0.5;
let enginePromise: Promise<LoadedEngine> | null = null;
const engine = () => (enginePromise ??= LoadedEngine.load('builtin:default', { device: 'cpu', threads: 2 }));
after(async () => { await (await enginePromise)?.dispose(); });

/** Best head of a [layer][head] grid. */
function best(grid: number[][]): { layer: number; head: number; score: number } {
  let r = { layer: -1, head: -1, score: -Infinity };
  grid.forEach((row, layer) => row.forEach((score, head) => { if (score > r.score) r = { layer, head, score }; }));
  return r;
}

test('the default model ships in models/default with its tokenizer, under 20 MB', () => {
  for (const f of ['config.json', 'model.safetensors', 'vocab.json', 'README.md', 'metrics.json']) assert.ok(fs.existsSync(path.join(MODEL_DIR, f)), `models/default/${f} is missing`);
  const bytes = fs.readdirSync(MODEL_DIR).reduce((s, f) => s + fs.statSync(path.join(MODEL_DIR, f)).size, 0);
  assert.ok(bytes <= 20 * 1024 * 1024, `models/default is ${bytes} bytes`);
  assert.equal(embeddedModelDir(), MODEL_DIR);
});

test('builtin:default loads the embedded trained model, not the untrained toy', async () => {
  const e = await engine();
  const info = e.info();
  assert.equal(info.spec, 'builtin:default');
  assert.equal(e.model.source, MODEL_DIR);
  assert.doesNotMatch(e.model.source, /toy/);
  assert.equal(info.cfg.model_name, 'moby-dick-char-attn-only-2l');
  assert.equal(info.cfg.n_layers, 2);
  assert.equal(info.tokenizer, 'char');
  assert.equal(info.processing, 'default');
  // The tokenizer is the model's own character vocabulary (vocab.json), which round-trips text.
  const text = 'Call me Ishmael.';
  assert.equal(e.tokenizer.decode(e.tokenizer.encode(text)), text);
});

test('the head detectors find a previous-token head and an induction head on fresh repeated random tokens', async () => {
  const e = await engine();
  // A seed the recipe's own evaluation does not use: the scores are recomputed here, not read.
  const r = await repeatedTokenHeadScores(e.model, { seqLen: 50, batch: 10, seed: 424242, prependBos: false });
  const prev = best(r.detector.previous_token_head);
  const ind = best(r.inductionStripe);
  assert.ok(prev.score >= THRESHOLD, `best previous-token score ${prev.score.toFixed(3)} (L${prev.layer}H${prev.head}) < ${THRESHOLD}`);
  assert.ok(ind.score >= THRESHOLD, `best induction score ${ind.score.toFixed(3)} (L${ind.layer}H${ind.head}) < ${THRESHOLD}`);
  // The circuit of Olsson et al.: the previous-token head comes first, the induction head reads it.
  assert.equal(prev.layer, 0, `the previous-token head is in layer ${prev.layer}`);
  assert.equal(ind.layer, 1, `the induction head is in layer ${ind.layer}`);
  assert.ok(r.detector.induction_head[ind.layer]![ind.head]! > r.detector.induction_head[0]!.reduce((a, b) => Math.max(a, b), 0));
  // And it does its job: the repeated half is predicted far better than the random first half.
  const lp = r.lossByPosition;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(lp.slice(0, 49)), second = mean(lp.slice(50));
  assert.ok(second < first - 1.5, `loss on the repeated half ${second.toFixed(3)} vs first half ${first.toFixed(3)}`);
});

test('held-out text of the book: loss well below the unigram entropy', async () => {
  const e = await engine();
  const { book, heldOut } = prepareText();
  const windows = textWindows(e.tokenizer, heldOut, e.model.cfg.n_ctx, 8);
  assert.equal(windows.length, 8);
  const l = loss(await e.model.forward(windows), windows);
  const h = unigramEntropy(book);
  assert.ok(h > 2.5 && h < 3.5, `unigram entropy ${h}`);
  assert.ok(l < 0.6 * h, `held-out loss ${l.toFixed(3)} nats is not well below the unigram entropy ${h.toFixed(3)}`);
});
