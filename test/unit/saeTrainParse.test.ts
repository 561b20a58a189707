/**
 * The "train_sae" experiment file (src/engine/experiments/saeTrainParse.ts): the sample parses,
 * defaults are filled in, and each mistake is an error at the offending text.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hasErrors, parseExperiment } from '../../src/engine/experiments/parse.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-sae-parse-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
fs.writeFileSync(path.join(dir, 'corpus.txt'), 'Call me Ishmael.\n'.repeat(50));
const file = path.join(dir, 'x.experiment.json');

function parse(obj: Record<string, unknown>) {
  const text = JSON.stringify(obj, null, 2);
  const r = parseExperiment(text, file);
  return { ...r, text, errorsAt: r.diagnostics.filter((d) => d.severity === 'error').map((d) => ({ line: text.split('\n')[d.range.start.line]!.trim(), message: d.message })) };
}

const base = { kind: 'train_sae', hook: 'blocks.1.hook_resid_post', sae: { architecture: 'topk', expansion_factor: 8, k: 16 }, training: { steps: 100, batch_size: 256 } };

test('the sample train_sae experiment parses', () => {
  const f = path.join(__dirname, '..', '..', 'samples', 'sae-train.experiment.json');
  const r = parseExperiment(fs.readFileSync(f, 'utf8'), f);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error'), []);
  assert.ok(r.trainSae);
  assert.equal(r.trainSae.payload.corpus, 'builtin:book');
  assert.equal(r.trainSae.output.dir, path.join(path.dirname(f), 'saes', 'blocks.1.hook_resid_post'));
});

test('defaults: builtin:default, the book, expansion 8, SAELens optimiser settings, .mechlens/saes/<name>', () => {
  const r = parse({ kind: 'train_sae', hook: 'blocks.0.hook_resid_post', sae: { architecture: 'standard' }, training: { training_tokens: 40960, batch_size: 4096 }, corpus: 'corpus.txt' });
  assert.ok(!hasErrors(r.diagnostics), JSON.stringify(r.diagnostics));
  const p = r.trainSae!.payload;
  assert.equal(p.model, 'builtin:default');
  assert.equal(p.expansion_factor, 8);
  assert.equal(p.steps, 10);
  assert.equal(p.lr, 3e-4);
  assert.equal(p.max_grad_norm, 1);
  assert.equal(p.l1_coefficient, 5);
  assert.equal(p.corpus, path.join(dir, 'corpus.txt'));
  assert.equal(p.output, path.join(dir, '.mechlens', 'saes', 'x'));
});

test('mistakes are errors at the offending text', () => {
  const cases: [Record<string, unknown>, RegExp, RegExp][] = [
    [{ ...base, hook: 'blocks.7.hook_resid_post' }, /"hook"/, /blocks\.7|layer/],
    [{ ...base, hook: 'blocks.0.attn.hook_pattern' }, /"hook"/, /4 axes|\[batch, pos, d\]/],
    [{ ...base, hook: 'hook_embed' }, /"hook"/, /not a block hook/],
    [{ ...base, sae: { architecture: 'topk', k: 2000 } }, /"k"/, /k = 2000 is larger than d_sae = 1024/],
    [{ ...base, sae: { architecture: 'topk', d_sae: 512, expansion_factor: 4 } }, /"d_sae"/, /either "expansion_factor" or "d_sae"/],
    [{ ...base, sae: { architecture: 'standard', k: 8 } }, /"k"/, /setting of the topk architecture/],
    [{ ...base, sae: { architecture: 'topk', l1_coefficient: 1 } }, /"l1_coefficient"/, /setting of the standard architecture/],
    [{ ...base, sae: { architecture: 'relu' } }, /"architecture"/, /standard|topk/],
    [{ ...base, training: { batch_size: 256 } }, /"training"/, /missing "steps"/],
    [{ ...base, training: { steps: 10, training_tokens: 100 } }, /"training_tokens"/, /either "steps" or "training_tokens"/],
    [{ ...base, training: { steps: 10, lr_warm_up_steps: 8, lr_decay_steps: 8 } }, /"lr_decay_steps"/, /exceed the 10 steps/],
    [{ ...base, corpus: 'missing.txt' }, /"corpus"/, /does not exist/],
    [{ ...base, corpus: '../outside.txt' }, /"corpus"/, /leaves the experiment's folder/],
    [{ ...base, output: '/tmp/abs' }, /"output"/, /absolute path/],
    [{ ...base, training: { steps: 10, momentum: 0.9 } }, /"momentum"/, /momentum/],
  ];
  for (const [obj, line, message] of cases) {
    const r = parse(obj);
    assert.equal(r.trainSae, undefined, JSON.stringify(obj));
    assert.ok(r.errorsAt.some((e) => line.test(e.line) && message.test(e.message)), `${JSON.stringify(obj)}: expected an error at ${line} matching ${message}, got ${JSON.stringify(r.errorsAt)}`);
  }
});

test('a dead_feature_window as long as the run is a warning (no feature can count as dead)', () => {
  const r = parse({ ...base, training: { steps: 100, dead_feature_window: 500 } });
  assert.ok(r.trainSae);
  assert.ok(r.diagnostics.some((d) => d.severity === 'warning' && /dead_feature_window/.test(d.message)));
});
