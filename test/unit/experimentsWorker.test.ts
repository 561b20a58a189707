/**
 * engine/experiment/* in a real engine worker thread (the TypeScript sources through
 * tsWorker.cjs): diagnostics at their line and column (static, then with the model), models that
 * are not available offline, runs saved under .mechlens/runs with progress, one analysis alone,
 * cancellation that keeps the partial results, and no run folder when there are errors.
 */
import { test, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient } from '../../src/engine/worker/client.js';
import { EngineRequests, type ExperimentDiagnostic, type ExperimentProgress } from '../../src/protocol/engine.js';
import { RUNS_DIR, type RunRecord } from '../../src/protocol/runs.js';

const ROOT = path.join(__dirname, '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-exp-worker-'));
// The worker copies process.env when it starts: an empty Hugging Face cache, so 'gpt2' is missing.
process.env['HF_HUB_CACHE'] = path.join(tmp, 'hf-empty');
const client = new EngineClient({ workerPath: path.join(ROOT, 'test', 'helpers', 'tsWorker.cjs'), workerData: { entry: path.join(ROOT, 'src', 'engine', 'worker', 'engineWorker.ts') } });
after(async () => {
  await client.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function write(name: string, x: unknown): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, typeof x === 'string' ? x : JSON.stringify(x, null, 2) + '\n');
  return file;
}

/** The text at a diagnostic's range. */
function at(file: string, d: ExperimentDiagnostic): string {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  assert.equal(d.range.start.line, d.range.end.line, 'single-line range');
  return lines[d.range.start.line]!.slice(d.range.start.character, d.range.end.character);
}

const toyPrompts = [
  { prompt: 'the cat sat on the m', corrupted: 'the dog sat on the m', answer: 'a', wrong: 'o' },
  { prompt: 'a bird sat on the ro', corrupted: 'a frog sat on the ro', answer: 'o', wrong: 'a' },
];

test('check: JSON and schema problems at once, at their line and column', async () => {
  const file = write('bad.experiment.json', '{\n  "model": "builtin:toy",\n  "prompts": [{ "prompt": "abc" }],\n  "analyses": [ { "kind": "logit_dif" } ]\n}\n');
  const r = await client.request(EngineRequests.experimentCheck, { file, withModel: false, allowDownload: false });
  assert.equal(r.diagnostics.length, 1);
  assert.equal(r.diagnostics[0]!.code, 'schema');
  assert.equal(at(file, r.diagnostics[0]!), '"logit_dif"');
  assert.match(r.diagnostics[0]!.message, /unknown kind "logit_dif"/);
  assert.equal(r.modelChecked, false);
  // The text of an unsaved editor wins over the file on disk.
  const fixed = await client.request(EngineRequests.experimentCheck, { file, text: fs.readFileSync(file, 'utf8').replace('logit_dif', 'head_scores'), withModel: true, allowDownload: false });
  assert.deepEqual(fixed.diagnostics, []);
  assert.equal(fixed.modelChecked, true);
});

test('check with the model: multi-token answers, clean/corrupted lengths, unknown hooks, a model that cannot load', async () => {
  const file = write('tok.experiment.json', {
    model: 'builtin:toy',
    prompts: [
      { prompt: 'the cat sat', corrupted: 'the dog sat', answer: 'ab', wrong: 'o' },
      { prompt: 'the cow sat', corrupted: 'the bird sat', answer: 'a', wrong: 'o' },
    ],
    analyses: [{ kind: 'logit_diff' }, { kind: 'ablation', hooks: ['blocks.0.hook_nope'] }],
  });
  const r = await client.request(EngineRequests.experimentCheck, { file, withModel: true, allowDownload: false });
  const by = (code: string) => r.diagnostics.find((d) => d.code === code);
  const multi = by('multi-token-answer');
  assert.ok(multi, JSON.stringify(r.diagnostics));
  assert.equal(at(file, multi), '"ab"');
  assert.match(multi.message, /single token/);
  const len = by('length-mismatch');
  assert.ok(len);
  assert.equal(at(file, len), '"the bird sat"');
  const hook = by('unknown-hook');
  assert.ok(hook);
  assert.equal(at(file, hook), '"blocks.0.hook_nope"');

  const missing = write('missing.experiment.json', { model: './no-such-model', prompts: [{ prompt: 'x' }], analyses: [{ kind: 'head_scores' }] });
  const m = await client.request(EngineRequests.experimentCheck, { file: missing, withModel: true, allowDownload: false });
  assert.equal(m.diagnostics[0]?.code, 'model-load');
  assert.equal(at(missing, m.diagnostics[0]!), '"./no-such-model"');
  assert.match(m.diagnostics[0]!.message, /cannot be loaded: .*does not exist/);
});

test('a Hugging Face model missing from the cache: a warning when a run may download it, an error offline (no download while checking)', async () => {
  const file = write('gpt2.experiment.json', { model: 'gpt2', prompts: [{ prompt: 'Hello' }], analyses: [{ kind: 'head_scores' }] });
  const online = await client.request(EngineRequests.experimentCheck, { file, withModel: true, allowDownload: true });
  assert.deepEqual(online.diagnostics.map((d) => [d.severity, d.code]), [['warning', 'model-not-cached']]);
  assert.match(online.diagnostics[0]!.message, /downloads it first/);
  const offline = await client.request(EngineRequests.experimentCheck, { file, withModel: true, allowDownload: false });
  assert.deepEqual(offline.diagnostics.map((d) => [d.severity, d.code]), [['error', 'model-unavailable']]);
  assert.match(offline.diagnostics[0]!.message, /not available offline.*hf-empty.*huggingface-cli download gpt2/);
  assert.equal(at(file, offline.diagnostics[0]!), '"gpt2"');
  // Running offline reports the same place, and runs nothing.
  const ws = path.join(tmp, 'ws-gpt2');
  const run = await client.request(EngineRequests.experimentRun, { file, workspace: ws, allowDownload: false });
  assert.equal(run.run, undefined);
  assert.equal(run.diagnostics[0]?.code, 'model-load');
  assert.match(run.diagnostics[0]!.message, /not in the Hugging Face cache .* downloading is off/);
  assert.ok(!fs.existsSync(path.join(ws, RUNS_DIR)), 'no run folder');
});

test('run: saved under .mechlens/runs with the panel state, progress, one analysis alone; errors run nothing', async () => {
  const file = write('toy.experiment.json', { title: 'Toy', model: 'builtin:toy', prompts: toyPrompts, analyses: [{ kind: 'logit_diff' }, { kind: 'patch', hook: 'resid_pre', attribution: true }, { kind: 'head_dla' }] });
  const ws = path.join(tmp, 'ws');
  const seen: ExperimentProgress[] = [];
  const poll = setInterval(() => void client.request(EngineRequests.experimentProgress, { token: 't1' }).then((p) => p && seen.push(p), () => undefined), 5);
  const r = await client.request(EngineRequests.experimentRun, { file, workspace: ws, allowDownload: false, token: 't1' });
  clearInterval(poll);
  assert.deepEqual(r.diagnostics, []);
  assert.ok(r.run);
  assert.equal(path.dirname(r.run.dir), path.join(ws, ...RUNS_DIR.split('/')));
  assert.equal(r.run.cancelled, false);
  for (const f of ['run.json', 'results.json', 'experiment.json']) assert.ok(fs.existsSync(path.join(r.run.dir, f)), f);
  const rec = JSON.parse(fs.readFileSync(path.join(r.run.dir, 'run.json'), 'utf8')) as RunRecord;
  assert.equal(rec.kind, 'experiment');
  assert.equal(rec.state.kind, 'experiment');
  if (rec.state.kind === 'experiment') assert.deepEqual(rec.state.sections.map((s) => s.kind), ['logit_diff', 'patch', 'head_dla']);
  const final = await client.request(EngineRequests.experimentProgress, { token: 't1' });
  assert.equal(final?.finished, true);
  assert.equal(final?.total, 3);
  // The estimate is shown first and stays in the progress message (the editor's notification).
  assert.ok(seen.some((p) => /\(estimate ~[\d.]+ [KMG]B, \d+ forward passes\)$/.test(p.message)), JSON.stringify(seen.map((p) => p.message).slice(0, 5)));

  const one = await client.request(EngineRequests.experimentRun, { file, workspace: ws, allowDownload: false, only: [2] });
  const rec1 = JSON.parse(fs.readFileSync(path.join(one.run!.dir, 'run.json'), 'utf8')) as RunRecord;
  assert.deepEqual(rec1.state.kind === 'experiment' && rec1.state.sections.map((s) => [s.index, s.kind]), [[2, 'head_dla']]);
  await assert.rejects(client.request(EngineRequests.experimentRun, { file, workspace: ws, allowDownload: false, only: [7] }), /analysis 7 does not exist/);

  const before = fs.readdirSync(path.join(ws, ...RUNS_DIR.split('/'))).length;
  const bad = write('bad-run.experiment.json', { model: 'builtin:toy', prompts: [{ prompt: 'the cat', corrupted: 'the ox', answer: 'a', wrong: 'o' }], analyses: [{ kind: 'patch', hook: 'resid_pre' }] });
  const b = await client.request(EngineRequests.experimentRun, { file: bad, workspace: ws, allowDownload: false });
  assert.equal(b.run, undefined);
  assert.deepEqual(b.diagnostics.map((d) => d.code), ['length-mismatch']);
  assert.equal(fs.readdirSync(path.join(ws, ...RUNS_DIR.split('/'))).length, before, 'no run folder for an experiment with errors');
});

test('run over the memory budget (mechlens.memoryBudgetMB): an error at the analysis, nothing run, no run folder', async () => {
  const file = write('budget.experiment.json', { model: 'builtin:toy', prompts: toyPrompts, analyses: [{ kind: 'logit_diff' }, { kind: 'causal_trace', subject: [1, 3], samples: 1000 }] });
  const ws = path.join(tmp, 'ws-budget');
  const r = await client.request(EngineRequests.experimentRun, { file, workspace: ws, allowDownload: false, memoryBudgetMB: 120 });
  assert.equal(r.run, undefined);
  assert.deepEqual(r.diagnostics.map((d) => d.code), ['memory-budget']);
  assert.match(r.diagnostics[0]!.message, /^analysis 2 \(causal_trace\) needs about [\d.]+ MB of memory \(\d+ forward passes\), over the budget of 120 MB \(the setting mechlens\.memoryBudgetMB\): use fewer "samples"/);
  assert.equal(r.diagnostics[0]!.range.start.line, fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes('"causal_trace"')) - 1, 'at the analysis object');
  assert.ok(!fs.existsSync(path.join(ws, ...RUNS_DIR.split('/'))) || fs.readdirSync(path.join(ws, ...RUNS_DIR.split('/'))).length === 0, 'no run folder');
});

test('cancel: the run stops and keeps the analyses done so far', async () => {
  const ws = path.join(tmp, 'ws-cancel');
  const ac = new AbortController();
  const p = client.request(EngineRequests.experimentRun, { file: path.join(ROOT, 'samples', 'toy-tour.experiment.json'), workspace: ws, allowDownload: false, token: 'tc' }, ac.signal);
  const poll = setInterval(() => void client.request(EngineRequests.experimentProgress, { token: 'tc' }).then((pr) => pr && pr.done >= 2 && ac.abort(), () => undefined), 10);
  const r = await p;
  clearInterval(poll);
  assert.ok(r.run, JSON.stringify(r.diagnostics));
  assert.equal(r.run.cancelled, true);
  const rec = JSON.parse(fs.readFileSync(path.join(r.run.dir, 'run.json'), 'utf8')) as RunRecord;
  assert.ok(rec.state.kind === 'experiment' && rec.state.run?.cancelled === true);
  const n = rec.state.kind === 'experiment' ? rec.state.sections.length : 0;
  assert.ok(n >= 2 && n < 21, `${n} of 21 analyses kept`);
});
