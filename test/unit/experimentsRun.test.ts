import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isRunRecord, type RunRecord } from '../../src/protocol/runs.js';
import { loadRun } from '../../src/engine/experiments/store.js';
import { checkWithModel, parseExperiment } from '../../src/engine/experiments/parse.js';
import { runExperiment, type ExperimentResults } from '../../src/engine/experiments/run.js';
import { DIVERGING_STOPS, heatmapSvg } from '../../src/engine/experiments/report.js';
import { LoadedEngine } from '../../src/engine/engine.js';
import { writeSafetensors } from '../../src/engine/model/safetensors.js';
import { randn } from '../../bench/randomModel.js';
import { f32, type F32 } from '../../src/engine/tensor/tensor.js';
import { FIXTURE_MODEL_DIR, expectedJson, spec } from '../helpers/fixture.js';
import { runCliResult } from '../helpers/cli.js';

const ROOT = path.join(__dirname, '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-exp-run-'));
process.on('exit', () => process.env['KEEP_TMP'] || fs.rmSync(tmp, { recursive: true, force: true }));

const cli = runCliResult;

const fixtureExperiment = (model: string) => JSON.stringify({
  $schema: path.join(ROOT, 'schemas', 'experiment.schema.json'),
  title: 'Fixture study',
  model: { name: model, processing: 'default' },
  prependBos: false,
  prompts: spec.tokens.map((t, i) => ({ prompt: t.join(' '), corrupted: spec.corrupted_tokens[i]!.join(' '), answer: String(spec.answers[i]![0]), wrong: String(spec.answers[i]![1]) })),
  analyses: [
    { kind: 'logit_diff', expect: { clean: (expectedJson.processing.default as { logit_diff: number }).logit_diff, tolerance: 1e-4 } },
    { kind: 'head_dla' },
    { kind: 'patch', hook: 'resid_pre', expect: { cells: [{ at: [1, 3], value: (expectedJson.processing.default as { resid_pre_patching: number[][] }).resid_pre_patching[1]![3]! }], tolerance: 1e-4 } },
    { kind: 'patch_heads', activation: 'z' },
    { kind: 'attention', heads: ['L0H1'] },
    { kind: 'neuron_activations', layer: 1, neuron: 3 },
    { kind: 'patch_neurons', layer: 0, neurons: [1, 2, 3], expect: { cells: [{ at: [2], value: 123 }] } },
  ],
}, null, 2);

test('mechlens run writes a run folder with the fixture\'s numbers, and report a self-contained HTML', async () => {
  const file = path.join(tmp, 'fixture.experiment.json');
  fs.writeFileSync(file, fixtureExperiment(FIXTURE_MODEL_DIR));
  const out = path.join(tmp, 'run-fixture');
  const r = await cli(['run', file, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), out);
  assert.match(r.stderr, /\[1\/7\] Logit difference/);
  assert.match(r.stderr, /expectations: 2 of 3 met/);
  for (const f of ['run.json', 'results.json', 'tensors.safetensors', 'experiment.json']) assert.ok(fs.existsSync(path.join(out, f)), f);

  const record = JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8')) as RunRecord;
  assert.ok(isRunRecord(record));
  assert.equal(record.kind, 'experiment');
  assert.equal(record.engineVersion, (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  assert.equal(record.inputs.prompts[0], spec.tokens[0]!.join(' '));
  assert.equal(record.state.kind, 'experiment');
  if (record.state.kind === 'experiment') {
    assert.equal(record.state.sections.length, 7);
    assert.equal(record.state.run!.dir, out);
    assert.equal(record.state.sections[2]!.checks![0]!.ok, true);
  }
  assert.ok(!Number.isNaN(Date.parse(record.createdAt)));

  const { results } = loadRun(out);
  const byKind = (k: string) => results!.results.find((x) => x.kind === k)!;
  const exp = expectedJson.processing.default as { resid_pre_patching: number[][]; head_z_patching: number[][]; head_dla: number[][] };
  const close = (a: number[], b: number[], what: string) => a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < 1e-4, `${what}[${i}]: ${v} vs ${b[i]}`));
  close(byKind('patch').data['values'] as number[], exp.resid_pre_patching.flat(), 'resid_pre_patching');
  close(byKind('patch_heads').data['values'] as number[], exp.head_z_patching.flat(), 'head_z_patching');
  close((byKind('head_dla').data['values'] as number[][]).flat(), exp.head_dla.flat(), 'head_dla');
  assert.equal(byKind('patch_neurons').checks![0]!.ok, false);
  assert.ok(byKind('logit_diff').checks!.every((c) => c.ok));
  // --strict: a missed expectation is exit status 3 (the run is still saved).
  const strict = await cli(['run', file, '--out', path.join(tmp, 'run-strict'), '--strict']);
  assert.equal(strict.code, 3);
  assert.match(strict.stderr, /1 expectation not met \(--strict\)/);
  assert.ok(fs.existsSync(path.join(tmp, 'run-strict', 'run.json')));

  const html = path.join(tmp, 'report.html');
  const rep = await cli(['report', out, '--out', html]);
  assert.equal(rep.code, 0, rep.stderr);
  const text = fs.readFileSync(html, 'utf8');
  assert.match(text, /^<!DOCTYPE html>/);
  assert.ok(!/<script|<link|<img|<iframe|\burl\(|https?:\/\//i.test(text), 'the report loads nothing remote and runs no script');
  assert.ok((text.match(/<svg /g) ?? []).length >= 5);
  assert.ok(text.includes(`<title>layer 1, position ${spec.tokens[0]![3]}_3: normalised logit diff = `), 'the patching cell has its layer/position title');
  assert.match(text, /2 of 3 expectations met/);
  assert.match(text, /class="tok"/);
});

test('an experiment whose model cannot load is not run: the diagnostic points at "model"', async () => {
  const file = path.join(tmp, 'bad-model.experiment.json');
  fs.writeFileSync(file, fixtureExperiment(path.join(tmp, 'no-such-model')));
  const r = await cli(['run', file, '--out', path.join(tmp, 'never')]);
  assert.equal(r.code, 1);
  const line = fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes('"model"')) + 1;
  assert.match(r.stderr, new RegExp(`bad-model\\.experiment\\.json:${line}:\\d+: error: the model .* cannot be loaded`));
  assert.match(r.stderr, /nothing was run/);
  assert.ok(!fs.existsSync(path.join(tmp, 'never')));
  // Schema errors: file:line:col, exit 1, no run.
  const bad = path.join(tmp, 'bad.experiment.json');
  fs.writeFileSync(bad, '{\n  "model": "builtin:toy",\n  "prompts": [{ "prompt": "ab" }],\n  "analyses": [{ "kind": "patch", "hook": "resid" }]\n}\n');
  const r2 = await cli(['run', bad]);
  assert.equal(r2.code, 1);
  const col = fs.readFileSync(bad, 'utf8').split('\n')[3]!.indexOf('"resid"') + 1;
  assert.match(r2.stderr, new RegExp(`bad\\.experiment\\.json:4:${col}: error: "resid" is not allowed`));
  assert.equal((await cli(['run'])).code, 2);
});

test('the toy tour sample runs on builtin:default and shows what it says: L0H0 a previous-token head, L1H1 an induction head', async () => {
  const file = path.join(ROOT, 'samples', 'toy-tour.experiment.json');
  const sample = JSON.parse(fs.readFileSync(file, 'utf8')) as { model: string; description: string; analyses: Record<string, unknown>[] };
  assert.equal(sample.model, 'builtin:default');
  assert.match(sample.description, /L0H0 is a previous-token head/);
  assert.match(sample.description, /L1H1 is an induction head/);
  const out = path.join(tmp, 'run-toy');
  const r = await cli(['run', file, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const { results } = loadRun(out);
  const kinds = new Set(results!.results.map((x) => x.kind));
  // Every kind but the three that need MLPs (builtin:default is attention-only).
  assert.equal(kinds.size, 16);
  for (const res of results!.results) {
    assert.ok(res.blocks.length > 0, `${res.title} shows something`);
  }
  // The list of contents names each analysis once (mean and zero ablation used to share a title).
  const titles = results!.results.map((x) => x.title);
  assert.deepEqual(titles.filter((t, i) => titles.indexOf(t) !== i), []);
  assert.ok(titles.includes('Loss with each hook mean-ablated') && titles.includes('Loss with each hook zero-ablated'), titles.join(' | '));
  const argmax = (grid: number[][]) => {
    let best = { l: 0, h: 0, v: -Infinity };
    grid.forEach((row, l) => row.forEach((v, h) => v > best.v && (best = { l, h, v })));
    return `L${best.l}H${best.h}`;
  };
  const prev = results!.results.find((x) => x.kind === 'detect_heads' && (x.data as { pattern: string }).pattern === 'previous_token_head')!;
  assert.equal(argmax((prev.data as { values: number[][] }).values), 'L0H0');
  const scores = results!.results.find((x) => x.kind === 'head_scores')!;
  assert.equal(argmax((scores.data as { inductionStripe: number[][] }).inductionStripe), 'L1H1');
  const dla = results!.results.find((x) => x.kind === 'head_dla')!;
  assert.equal(argmax((dla.data as { values: number[][] }).values), 'L1H1');
  // The prompts' answer is the model's top prediction.
  const top = results!.results.find((x) => x.kind === 'test_prompt')!;
  assert.equal((top.data as { topK: { str: string }[] }).topK[0]!.str, 'v');
  const trace = results!.results.find((x) => x.kind === 'causal_trace')!;
  const traceTitles = JSON.stringify(trace.blocks);
  assert.match(traceTitles, /restoring one layer's residual stream/);
  assert.doesNotMatch(traceTitles, /restoring single restored/);
  // Causal tracing's colour starts at the noised run's probability, not at 0.
  const low = (trace.data as { lowScore: number }).lowScore;
  for (const b of trace.blocks) {
    const d = (b as { data: { zmin?: number; zmax?: number; values: number[][] } }).data;
    assert.equal(d.zmin, low, `${JSON.stringify(d).slice(0, 80)}: zmin is the noised probability`);
    assert.ok(d.zmax! >= Math.max(...d.values.flat()), 'zmax covers every restored value');
  }
  const html = path.join(tmp, 'toy.html');
  assert.equal((await cli(['report', out, '--out', html])).code, 0);
});

test('the MLP and neuron analyses run on builtin:toy (the tour model has no MLPs)', async () => {
  const file = path.join(tmp, 'toy-mlp.experiment.json');
  fs.writeFileSync(file, JSON.stringify({
    model: 'builtin:toy',
    prompts: [{ prompt: 'the cat sat on the m', corrupted: 'the dog sat on the m', answer: 'a', wrong: 'o' }],
    metric: 'logit_diff',
    analyses: [
      { kind: 'neuron_dla', layer: 1, top: 5 },
      { kind: 'neuron_activations', layer: 0, neuron: 7, text: 'the cat sat on the mat' },
      { kind: 'patch', hook: 'mlp_out' },
      { kind: 'patch_neurons', layer: 1, top: 5 },
      { kind: 'causal_trace', subject: 'cat', samples: 2, window: 2 },
    ],
  }));
  const out = path.join(tmp, 'run-toy-mlp');
  const r = await cli(['run', file, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const { results } = loadRun(out);
  assert.deepEqual(results!.results.map((x) => x.kind), ['neuron_dla', 'neuron_activations', 'patch', 'patch_neurons', 'causal_trace']);
  for (const res of results!.results) assert.ok(res.blocks.length > 0, `${res.title} shows something`);
  assert.match(JSON.stringify(results!.results[4]!.blocks), /restoring MLP outputs over a 2-layer window/);
});

/**
 * A GPT-2-vocabulary model folder with GPT-2 small's layers and neurons (the sample names layers 8
 * and 10 and neuron 2744) but d_model 24 and 2 heads, so the sample runs in seconds.
 */
function miniGpt2Folder(dir: string): void {
  const V = 50257, d = 24, L = 12, n = 64, m = 3072;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', n_layer: L, n_embd: d, n_head: 2, n_inner: m, vocab_size: V, n_positions: n, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', bos_token_id: 50256, eos_token_id: 50256 }));
  let seed = 11;
  const r = (dims: number[], std = 0.2): F32 => f32(dims, randn(dims.reduce((a, b) => a * b, 1), std, seed++));
  const ones = (k: number) => f32([k], new Float32Array(k).fill(1));
  const t = new Map<string, F32>([['wte.weight', r([V, d])], ['wpe.weight', r([n, d], 0.1)], ['ln_f.weight', ones(d)], ['ln_f.bias', r([d], 0.02)]]);
  for (let l = 0; l < L; l++) {
    const h = `h.${l}.`;
    t.set(`${h}ln_1.weight`, ones(d)); t.set(`${h}ln_1.bias`, r([d], 0.02));
    t.set(`${h}attn.c_attn.weight`, r([d, 3 * d])); t.set(`${h}attn.c_attn.bias`, r([3 * d], 0.02));
    t.set(`${h}attn.c_proj.weight`, r([d, d])); t.set(`${h}attn.c_proj.bias`, r([d], 0.02));
    t.set(`${h}ln_2.weight`, ones(d)); t.set(`${h}ln_2.bias`, r([d], 0.02));
    t.set(`${h}mlp.c_fc.weight`, r([d, m])); t.set(`${h}mlp.c_fc.bias`, r([m], 0.02));
    t.set(`${h}mlp.c_proj.weight`, r([m, d], 0.05)); t.set(`${h}mlp.c_proj.bias`, r([d], 0.02));
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), t);
}

test("the contraction-circuit study's sample runs end to end on a GPT-2-vocabulary model (random weights)", async () => {
  const model = path.join(tmp, 'mini-gpt2');
  miniGpt2Folder(model);
  // The sample as written, except that the two 3072-neuron sweeps are cut to a few neurons to
  // keep this test small (the full sweeps are the benchmark's workload).
  const sample = JSON.parse(fs.readFileSync(path.join(ROOT, 'samples', 'contractions-re-they.experiment.json'), 'utf8')) as { analyses: Record<string, unknown>[] };
  for (const a of sample.analyses) if (a['kind'] === 'patch_neurons') a['neurons'] = [0, 2744, 1063, 2193];
  const file = path.join(tmp, 'contractions-re-they.experiment.json');
  fs.writeFileSync(file, JSON.stringify(sample, null, 2));
  fs.copyFileSync(path.join(ROOT, 'samples', 'contractions.prompts'), path.join(tmp, 'contractions.prompts'));
  const out = path.join(tmp, 'run-contractions');
  const r = await cli(['run', file, '--model', model, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  // Random weights: the study's GPT-2 numbers are reported as not met, the run still completes.
  assert.match(r.stderr, /FAIL .*average clean logit difference: expected 2\.1055/);
  const { results } = loadRun(out);
  assert.equal(results!.results.length, 17);
  const neurons = results!.results.filter((x) => x.kind === 'patch_neurons');
  assert.deepEqual(neurons.map((x) => (x.data['values'] as number[]).length), [4, 4]);
  const mlp = results!.results.find((x) => x.kind === 'patch' && x.title.includes('mlp_out'))!;
  assert.deepEqual(mlp.data['dims'], [12, 8]);
  const block = mlp.blocks[0]!;
  assert.ok(block.type === 'heatmap' && block.data.colLabels[2] === "'re_2");
});

test('a cancelled run keeps the results so far and the partial sweep', async () => {
  const file = path.join(tmp, 'cancel.experiment.json');
  fs.writeFileSync(file, fixtureExperiment(FIXTURE_MODEL_DIR));
  const parsed = parseExperiment(fs.readFileSync(file, 'utf8'), file);
  const engine = await LoadedEngine.load(FIXTURE_MODEL_DIR, { processing: 'default', device: 'cpu' });
  try {
    const checked = checkWithModel(parsed.experiment!, engine.model.cfg, engine.tokenizer);
    const ac = new AbortController();
    let res: ExperimentResults | null = null;
    res = await runExperiment(parsed.experiment!, engine.model, engine.tokenizer, checked.tokens, {
      signal: ac.signal,
      onProgress: (p) => {
        // Abort inside the head sweep (analysis 4), after its first batch.
        if (p.phase === 'progress' && p.message.includes('heads')) ac.abort();
      },
    });
    assert.equal(res.cancelled, true);
    const last = res.results[res.results.length - 1]!;
    assert.equal(last.kind, 'patch_heads');
    assert.equal(last.partial, true);
    const vals = last.data['values'] as number[];
    assert.ok(vals.some((v) => Number.isNaN(v)) && vals.some((v) => !Number.isNaN(v)));
    assert.equal(res.results.length, 4);
  } finally {
    await engine.dispose();
  }
});

test('heatmap SVG: diverging colours centred at 0, labelled axes, values on hover', () => {
  assert.deepEqual(DIVERGING_STOPS.find(([t]) => t === 0)![1], [247, 247, 247]);
  const svg = heatmapSvg({ title: 't', rowAxis: 'layer', colAxis: 'head', rowLabels: ['0', '1'], colLabels: ['0', '1', '2'], values: [[-1, 0, 1], [0.5, NaN, 2]], valueLabel: 'v' });
  assert.match(svg, /<title>layer 1, head 2: v = 2<\/title>/);
  assert.match(svg, /fill="rgb\(247,247,247\)"><title>layer 0, head 1/);
  assert.match(svg, /fill="rgb\(103,0,31\)"><title>layer 1, head 2/);
  assert.match(svg, /fill="rgb\(200,200,200\)"><title>layer 1, head 1: v = n\/a/);
  assert.match(svg, />layer<\/text>/);
  assert.match(svg, />head<\/text>/);
});
