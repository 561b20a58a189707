/**
 * "kind": "train" experiment files: the schema (one file for both kinds, if/then/else for
 * editors), the samples (the no-positional-embedding experiment exactly), and diagnostics at the line and column of the
 * offending text — through parseExperiment, as every caller reads them, and through the
 * extension's parseTrainText (trainParse.ts without the tokenizer).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseExperiment, type Diagnostic, type FileReader } from '../../../src/engine/experiments/parse.js';
import { LineIndex } from '../../../src/engine/experiments/json.js';
import { analysisExperimentSchema, experimentSchema } from '../../../src/engine/experiments/schema.js';
import { trainExperimentSchema } from '../../../src/engine/experiments/trainSchema.js';
import { saeTrainExperimentSchema } from '../../../src/engine/experiments/saeTrainSchema.js';
import { defaultCheckpointDir } from '../../../src/engine/experiments/trainParse.js';
import { noPositionConfig } from '../../../src/engine/training/trainer.js';

const ROOT = path.join(__dirname, '..', '..', '..');
const DIR = '/virtual/train';

function reader(files: Record<string, string>): FileReader {
  return { read: (f) => files[f] ?? null };
}

/** 0-based line and column of the n-th occurrence of `needle`. */
function at(text: string, needle: string, nth = 0): { line: number; character: number } {
  let i = -1;
  for (let k = 0; k <= nth; k++) {
    i = text.indexOf(needle, i + 1);
    assert.ok(i >= 0, `${needle} not in text`);
  }
  return new LineIndex(text).position(i);
}

const show = (ds: Diagnostic[]) => JSON.stringify(ds.map((d) => `${d.range.start.line}:${d.range.start.character} ${d.severity} ${d.code} ${d.message}`));

function only(ds: Diagnostic[], re: RegExp): Diagnostic {
  const m = ds.filter((d) => re.test(d.message));
  assert.equal(m.length, 1, `expected one diagnostic matching ${re}, got ${show(ds)}`);
  return m[0]!;
}

/** A small valid train file; `patch` replaces parts of it by text. */
function trainText(patch: (s: string) => string = (s) => s): string {
  return patch(`{
  "kind": "train",
  "model": { "n_layers": 2, "d_model": 32, "n_heads": 2, "d_mlp": 64, "d_vocab": 20, "n_ctx": 12, "act_fn": "relu" },
  "task": { "kind": "previous_token" },
  "training": { "batch_size": 16, "max_steps": 50, "lr": 0.001 },
  "analyses": [
    { "kind": "loss", "sequences": 100 },
    { "kind": "qk_circuit", "layers": [1] },
    { "kind": "ablation" }
  ]
}
`);
}

const parse = (text: string, files: Record<string, string> = {}) => parseExperiment(text, `${DIR}/tiny.experiment.json`, reader(files));

test('schemas/experiment.schema.json holds every kind: "kind" picks the train, train_sae or analysis definition', () => {
  const file = JSON.parse(fs.readFileSync(path.join(ROOT, 'schemas', 'experiment.schema.json'), 'utf8')) as typeof experimentSchema;
  assert.deepEqual(file, JSON.parse(JSON.stringify(experimentSchema)), 'regenerate with UPDATE_SCHEMA=1 node scripts/test-unit.mjs experimentsParse');
  assert.deepEqual(file.if, { properties: { kind: { const: 'train' } }, required: ['kind'] });
  assert.deepEqual(file.then, { $ref: '#/definitions/train' });
  assert.deepEqual(file.else, { if: { properties: { kind: { const: 'train_sae' } }, required: ['kind'] }, then: { $ref: '#/definitions/train_sae' }, else: { $ref: '#/definitions/analysis' } });
  assert.deepEqual(file.definitions!['train'], JSON.parse(JSON.stringify(trainExperimentSchema)));
  assert.deepEqual(file.definitions!['train_sae'], JSON.parse(JSON.stringify(saeTrainExperimentSchema)));
  assert.deepEqual(Object.keys(file.definitions!['analysis']!.properties!), Object.keys(analysisExperimentSchema.properties!));
  // Every property an editor completes has a description (hover text).
  const walk = (s: typeof experimentSchema, where: string) => {
    for (const [k, v] of Object.entries(s.properties ?? {})) {
      assert.ok(v.description, `${where}.${k} has no description`);
      walk(v, `${where}.${k}`);
    }
  };
  walk(trainExperimentSchema, 'train');
  walk(saeTrainExperimentSchema, 'train_sae');
});

test('samples/no-position.experiment.json is the no-positional-embedding experiment exactly (the engine\'s noPositionConfig)', () => {
  const file = path.join(ROOT, 'samples', 'no-position.experiment.json');
  const r = parseExperiment(fs.readFileSync(file, 'utf8'), file);
  assert.deepEqual(r.diagnostics, [], show(r.diagnostics));
  assert.equal(r.experiment, undefined);
  const x = r.train!;
  const seed = noPositionConfig();
  const { model_name: _a, ...want } = seed.model;
  const { model_name: _b, ...got } = x.config.model;
  assert.deepEqual(got, { ...want, positional_embedding_type: 'standard' });
  // The experiment's BOS is 0, the task's default, written out in the sample.
  assert.deepEqual(x.config.task, { bos_token_id: 0, ...seed.task });
  for (const k of ['zero_pos_embed', 'max_steps', 'batch_size', 'lr', 'betas', 'eps', 'weight_decay', 'decay_params', 'max_grad_norm', 'warmup_steps', 'seed'] as const) {
    assert.deepEqual(x.config[k], seed[k], k);
  }
  // The notebook's analyses, in its order.
  assert.deepEqual(x.analyses.map((a) => a.spec.kind), ['loss', 'attention_patterns', 'logit_contributions', 'fold_ln', 'qk_circuit', 'ov_circuit', 'mlp_activations', 'qk_circuit', 'ov_circuit', 'mlp_activations', 'ablation']);
  const loss = x.analyses[0]!.spec;
  assert.ok(loss.kind === 'loss' && loss.sequences === 4000);
  assert.equal(x.analysisSeed, 124, 'fresh sequences: a seed other than the training stream');
  assert.deepEqual(x.checkpoints, { dir: defaultCheckpointDir(path.dirname(file), 'no-position'), explicit: false });
});

test('samples/induction.experiment.json: a 2-layer attention-only model on repeated random sequences', () => {
  const file = path.join(ROOT, 'samples', 'induction.experiment.json');
  const r = parseExperiment(fs.readFileSync(file, 'utf8'), file);
  assert.deepEqual(r.diagnostics, [], show(r.diagnostics));
  const c = r.train!.config;
  assert.equal(c.model.n_layers, 2);
  assert.equal(c.model.attn_only, true);
  assert.deepEqual(c.task, { kind: 'induction', bos_token_id: 0, loss_on: 'repeated' });
  // Under a minute at ~20 steps/s on a busy 2-core machine.
  assert.ok(c.max_steps * c.batch_size * c.model.n_ctx <= 400 * 64 * 33, 'the sample stays small');
});

test('schema problems of train files are reported at the key, value or object they concern', () => {
  const text = trainText((s) => s
    .replace('"act_fn": "relu"', '"act_fn": "relu", "n_embd": 32')
    .replace('"lr": 0.001', '"lr": "fast"')
    .replace('{ "kind": "previous_token" }', '{ "kind": "previous" }')
    .replace('{ "kind": "ablation" }', '{ "kind": "ablate" }'));
  const ds = parse(text).diagnostics;
  assert.deepEqual(only(ds, /unknown property "n_embd"/).range.start, at(text, '"n_embd"'));
  assert.match(only(ds, /unknown property "n_embd"/).message, /allowed here: n_layers, d_model/);
  assert.deepEqual(only(ds, /expected a number, got "fast"/).range.start, at(text, '"fast"'));
  const kind = only(ds, /unknown kind "previous"/);
  assert.deepEqual(kind.range.start, at(text, '"previous"'));
  assert.match(kind.message, /"previous_token", "induction", "text"/);
  const a = only(ds, /unknown kind "ablate"/);
  assert.deepEqual(a.range.start, at(text, '"ablate"'));
  assert.match(a.message, /"loss", "attention_patterns", .*"ablation"/);
  assert.ok(ds.every((d) => d.severity === 'error' && d.code === 'schema' && d.file === path.resolve(`${DIR}/tiny.experiment.json`)));

  const missing = trainText((s) => s.replace('"training": { "batch_size": 16, "max_steps": 50, "lr": 0.001 },\n', ''));
  const m = only(parse(missing).diagnostics, /missing required property "training"/);
  assert.deepEqual(m.range.start, { line: 0, character: 0 });
  const betas = trainText((s) => s.replace('"lr": 0.001', '"lr": 0.001, "betas": [0.9]'));
  assert.deepEqual(only(parse(betas).diagnostics, /exactly 2 elements/).range.start, at(betas, '[0.9]'));
});

test('checks beyond the schema: architecture, vocabulary, layers / heads / hooks, text files', () => {
  const d1 = trainText((s) => s.replace('"act_fn": "relu"', '"act_fn": "relu", "attn_only": true'));
  assert.deepEqual(only(parse(d1).diagnostics, /attention-only model .* has no MLP: remove d_mlp/).range.start, at(d1, '64'));

  const d2 = trainText((s) => s.replace('"layers": [1]', '"layers": [1, 2], "heads": [5]'));
  const ds2 = parse(d2).diagnostics;
  assert.deepEqual(only(ds2, /layer 2 does not exist: the model has layers 0..1/).range.start, at(d2, '2]'));
  assert.deepEqual(only(ds2, /head 5 does not exist: the model has heads 0..1/).range.start, at(d2, '5]'));

  const d3 = trainText((s) => s.replace('{ "kind": "ablation" }', '{ "kind": "ablation", "hooks": ["hook_embed", "blocks.0.hook_resid_pro"] }'));
  assert.deepEqual(only(parse(d3).diagnostics, /"blocks.0.hook_resid_pro" is not a hook of this model/).range.start, at(d3, '"blocks.0.hook_resid_pro"'));

  const d4 = trainText((s) => s.replace('"d_vocab": 20, ', ''));
  assert.deepEqual(only(parse(d4).diagnostics, /missing "d_vocab"/).range.start, at(d4, '{ "n_layers"'));
  const d5 = trainText((s) => s.replace('{ "kind": "previous_token" }', '{ "kind": "previous_token", "bos_token_id": 20 }'));
  assert.deepEqual(only(parse(d5).diagnostics, /bos_token_id 20 is not in the vocabulary 0..19/).range.start, at(d5, '20 }'));

  // Text tasks: the file is read relative to the experiment; d_vocab must be its tokenizer's.
  const d6 = trainText((s) => s.replace('{ "kind": "previous_token" }', '{ "kind": "text", "file": "corpus.txt", "tokenizer": "char" }'));
  const missingFile = only(parse(d6).diagnostics, /cannot read the training text \/virtual\/train\/corpus.txt/);
  assert.deepEqual(missingFile.range.start, at(d6, '"corpus.txt"'));
  const corpus = { [`${DIR}/corpus.txt`]: 'abcabcabcabcabcabcabcabc' };
  assert.deepEqual(only(parse(d6, corpus).diagnostics, /the char tokenizer of corpus.txt has 3 tokens but d_vocab is 20/).range.start, at(d6, '20'));
  const ok = parse(d6.replace('"d_vocab": 20, ', ''), corpus);
  assert.deepEqual(ok.diagnostics, [], show(ok.diagnostics));
  assert.deepEqual(ok.train!.config.task, { kind: 'text', file: `${DIR}/corpus.txt`, tokenizer: 'char' });
  assert.equal(ok.train!.config.model.d_vocab, 0, 'the trainer takes the vocabulary from the tokenizer');

  // Warnings do not stop a run.
  const d7 = trainText((s) => s.replace('"lr": 0.001', '"lr": 0.001, "warmup_steps": 80'));
  const w = parse(d7);
  assert.equal(only(w.diagnostics, /warmup_steps 80 is more than max_steps 50/).severity, 'warning');
  assert.ok(w.train);
});

test('defaults follow TransformerLens / torch; the checkpoint folder is explicit or .mechlens/train/<name>', () => {
  const r = parse(trainText());
  assert.deepEqual(r.diagnostics, []);
  const c = r.train!.config;
  assert.deepEqual([c.betas, c.eps, c.weight_decay, c.max_grad_norm, c.warmup_steps, c.seed, c.decay_params, c.zero_pos_embed], [[0.9, 0.999], 1e-8, 0.01, null, 0, 0, 'all', false]);
  assert.equal(c.model.model_name, 'tiny');
  assert.equal(c.model.bos_token_id, 0);
  assert.deepEqual(r.train!.checkpoints, { dir: '/virtual/train/.mechlens/train/tiny', explicit: false });
  const explicit = parse(trainText((s) => s.replace('"kind": "train",', '"kind": "train", "checkpoints": "../ckpt/run1",')));
  assert.deepEqual(explicit.train!.checkpoints, { dir: '/virtual/ckpt/run1', explicit: true });
});

test('analysis experiments are unchanged: no "kind", or "kind": "analysis"; a misspelt kind is named', () => {
  const analysis = (kind: string) => `{ ${kind}"model": "builtin:toy", "prompts": [{ "prompt": "a b" }], "analyses": [{ "kind": "logit_lens" }] }`;
  const plain = parse(analysis(''));
  assert.ok(!plain.diagnostics.some((d) => d.code === 'schema'), show(plain.diagnostics));
  assert.equal(plain.train, undefined);
  const explicit = parse(analysis('"kind": "analysis", '));
  assert.ok(!explicit.diagnostics.some((d) => d.code === 'schema'), show(explicit.diagnostics));
  const typo = analysis('"kind": "trian", ');
  const d = only(parse(typo).diagnostics, /"trian" is not allowed/);
  assert.match(d.message, /"analysis", "train"/);
  assert.deepEqual(d.range.start, at(typo, '"trian"'));
});

test('a train experiment may use the registered families\' blocks (a tiny Llama-style model); a bad n_key_value_heads is reported at the model', () => {
  const text = (kv: number) => JSON.stringify({
    kind: 'train',
    model: { n_layers: 2, d_model: 16, n_heads: 4, n_key_value_heads: kv, d_mlp: 32, d_vocab: 12, n_ctx: 8, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true },
    task: { kind: 'previous_token' },
    training: { batch_size: 4, lr: 0.001, max_steps: 5 },
  }, null, 2);
  const ok = parse(text(2));
  assert.deepEqual(ok.diagnostics, [], show(ok.diagnostics));
  const m = ok.train!.config.model;
  assert.equal(m.normalization_type, 'RMS');
  assert.equal(m.n_key_value_heads, 2);
  assert.equal(m.gated_mlp, true);
  const bad = parse(text(3));
  assert.match(only(bad.diagnostics, /n_key_value_heads/).message, /divisor of n_heads = 4/);
});
