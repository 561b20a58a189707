/** The pure parts of the experiments feature: lens positions (checked against the engine's parser), prompt analyses, runs and messages. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseExperiment } from '../../../src/engine/experiments/parse.js';
import {
  PROMPT_ANALYSES, analysisLabel, diagnosticWhere, errorsMessage, experimentOutline, isExperimentFile, lastRunOf, modelProblem, parseHeads, parseNeuron,
  promptExperiment, promptExperimentPath, whyNot,
} from '../../../src/extension/experimentsModel.js';
import type { ExperimentDiagnostic } from '../../../src/protocol/engine.js';
import type { RunRecord } from '../../../src/protocol/runs.js';

const SAMPLES = path.join(__dirname, '..', '..', '..', 'samples');
const samples = fs.readdirSync(SAMPLES).filter(isExperimentFile).sort();

test('every sample analysis experiment: one "Run this analysis" lens per analysis, on the line where the engine locates it', () => {
  assert.ok(samples.length >= 4, `samples: ${samples.join(', ')}`);
  for (const name of samples) {
    const file = path.join(SAMPLES, name);
    const text = fs.readFileSync(file, 'utf8');
    const o = experimentOutline(text);
    // "kind": "train" and "train_sae" files are the training features' (no lenses from here).
    if (o.kind === 'train' || o.kind === 'train_sae') continue;
    const parsed = parseExperiment(text, file);
    assert.ok(parsed.experiment, `${name}: ${parsed.diagnostics.map((d) => d.message).join('; ')}`);
    const x = parsed.experiment;
    assert.equal(o.syntaxError, false);
    assert.equal(o.analyses.length, x.analyses.length, name);
    for (const a of x.analyses) {
      const mine = o.analyses[a.index]!;
      // Same place as the parser's diagnostics for that analysis, and its "kind".
      assert.deepEqual(mine.range, a.at.range, `${name} analysis ${a.index}`);
      assert.equal(mine.kind, a.spec.kind);
      assert.equal(text.split('\n')[mine.range.start.line]!.slice(mine.range.start.character).startsWith('{'), true);
    }
    assert.deepEqual(o.top.start, { line: 0, character: 0 }, `${name}: the top lenses go on the first line`);
    assert.equal(o.title, x.spec.title ?? null);
    const key = JSON.parse(text) as Record<string, unknown>;
    const promptsKey = 'prompts' in key ? '"prompts"' : '"groups"';
    assert.equal(text.split('\n')[o.prompts.start.line]!.slice(o.prompts.start.character, o.prompts.end.character), promptsKey, name);
  }
});

test('outline of broken and train files', () => {
  const bad = experimentOutline('{ "model": "gpt2", "analyses": [ { "kind": "logit_diff" }, ]');
  assert.equal(bad.syntaxError, true);
  assert.deepEqual(bad.analyses, []);
  assert.equal(experimentOutline('{"kind": "train", "analyses": []}').kind, 'train');
  const o = experimentOutline('\n\n  {\n "analyses": [\n\n  {"kind": "patch", "hook": "mlp_out", "title": "MLPs"}, 3 ]\n}');
  assert.deepEqual(o.top.start, { line: 2, character: 2 });
  assert.deepEqual(o.analyses.map((a) => [a.index, a.kind, a.title, a.range.start.line, a.range.start.character]), [[0, 'patch', 'MLPs', 5, 2], [1, null, null, 5, 57]]);
  assert.deepEqual(analysisLabel(o.analyses[0]!, { kind: 'patch', hook: 'mlp_out' }), { label: 'patch (mlp_out)', description: '#0 · MLPs' });
});

test('prompt analyses: what each needs, and the experiment that runs it', () => {
  assert.deepEqual(PROMPT_ANALYSES.map((c) => c.id), ['logit_diff', 'dla', 'logit_lens', 'attention', 'head_scores', 'circuits', 'neuron_activations', 'ablation', 'patching', 'causal_trace', 'path_patch']);
  const full = { prompt: 'When Mary and John went, John gave it to', corrupted: 'When Mary and John went, Mary gave it to', answer: ' Mary', wrong: ' John' };
  const bare = { prompt: 'the cat sat' };
  const byId = (id: string) => PROMPT_ANALYSES.find((c) => c.id === id)!;
  assert.equal(whyNot(byId('patching'), [full]), null);
  assert.match(whyNot(byId('patching'), [{ ...full, corrupted: undefined }]) ?? '', /corrupted prompt/);
  assert.match(whyNot(byId('logit_lens'), [bare]) ?? '', /answer and a wrong answer/);
  assert.equal(whyNot(byId('head_scores'), [bare]), null);

  const model = { name: 'builtin:default', processing: 'default' as const, device: 'auto' as const, offline: false };
  const x = promptExperiment(byId('patching'), [full], model, { prependBos: true, source: 'ioi.prompts:3' });
  assert.deepEqual(x['prompts'], [full]);
  assert.deepEqual((x['analyses'] as { kind: string; attribution?: boolean }[]).map((a) => [a.kind, a.attribution]), [['patch', true], ['patch', true], ['patch', true], ['patch_heads', true]]);
  assert.deepEqual(x['model'], { name: 'builtin:default', processing: 'default', device: 'auto', offline: false });
  // An attention-only model has no mlp_out to patch.
  const ao = promptExperiment(byId('patching'), [full], model, { prependBos: true, attnOnly: true });
  assert.deepEqual((ao['analyses'] as { kind: string; hook?: string }[]).map((a) => a.hook ?? a.kind), ['resid_pre', 'attn_out', 'patch_heads']);
  assert.match(String(x['title']), /^Activation patching sweeps — When Mary and John/);
  assert.match(String(x['description']), /ioi\.prompts:3/);
  // One prompt: mean ablation would change nothing, so it zero-ablates.
  assert.equal((promptExperiment(byId('ablation'), [bare], model, { prependBos: true })['analyses'] as { ablation: string }[])[0]!.ablation, 'zero');
  assert.equal((promptExperiment(byId('ablation'), [bare, bare], model, { prependBos: true })['analyses'] as { ablation: string }[])[0]!.ablation, 'mean');
  assert.deepEqual(promptExperiment(byId('circuits'), [bare], model, { prependBos: true, input: 'l1h0, 2.3' })['analyses'], [{ kind: 'circuits', heads: ['L1H0', 'L2H3'] }]);
  assert.deepEqual(promptExperiment(byId('neuron_activations'), [bare], model, { prependBos: true, input: 'L0N7' })['analyses'], [{ kind: 'neuron_activations', layer: 0, neuron: 7, text: 'the cat sat' }]);
  assert.deepEqual(promptExperiment(byId('attention'), [full], model, { prependBos: true })['analyses'], [{ kind: 'attention', heads: 'top_dla', top: 3 }]);
  assert.throws(() => promptExperiment(byId('attention'), [bare], model, { prependBos: true }), /L\{layer\}H\{head\}/);
  assert.throws(() => promptExperiment(byId('causal_trace'), [bare], model, { prependBos: true, input: ' ' }), /subject/);
  assert.deepEqual(parseHeads('L7H11 L10H1'), ['L7H11', 'L10H1']);
  assert.ok(!Array.isArray(parseHeads('7-11')));
  assert.deepEqual(parseNeuron('l8n2744'), { layer: 8, neuron: 2744 });
  assert.ok('error' in parseNeuron('neuron 3'));
  assert.equal(promptExperimentPath('/w/samples/ioi.prompts'), '/w/samples/ioi.prompt-analysis.experiment.json');
});

test('the last run of a file, and the messages when nothing runs', () => {
  const rec = (id: string, file: string | undefined, kind = 'experiment') => ({ record: { id, kind, inputs: { prompts: [], ...(file ? { experiment: file } : {}) } } as unknown as RunRecord });
  const runs = [rec('c', '/w/b.experiment.json'), rec('b', '/w/a.experiment.json', 'attention'), rec('a', '/w/a.experiment.json'), rec('z', undefined)];
  assert.equal(lastRunOf(runs, '/w/a.experiment.json')?.record.id, 'a');
  assert.equal(lastRunOf(runs, '/w/./b.experiment.json')?.record.id, 'c');
  assert.equal(lastRunOf(runs, '/w/none.experiment.json'), undefined);

  const d = (line: number, message: string, severity: 'error' | 'warning' = 'error', code = 'schema', file = '/w/x.experiment.json'): ExperimentDiagnostic => ({ file, range: { start: { line, character: 4 }, end: { line, character: 9 } }, severity, message, code });
  assert.equal(diagnosticWhere(d(2, 'm'), '/w'), 'x.experiment.json:3:5');
  assert.equal(diagnosticWhere(d(2, 'm', 'error', 'x', '/elsewhere/p.prompts'), '/w'), 'p.prompts:3:5');
  const msg = errorsMessage('x.experiment.json', [d(0, 'not this', 'warning'), d(3, 'unknown hook "blocks.0.hook_nope"', 'error', 'unknown-hook'), d(5, 'second')], '/w');
  assert.equal(msg, 'x.experiment.json was not run: 2 errors. x.experiment.json:4:5: unknown hook "blocks.0.hook_nope" (and 1 more problem, see Problems)');
  assert.equal(modelProblem([d(1, 'a'), d(1, 'gpt2 is not available offline', 'error', 'model-unavailable')])?.code, 'model-unavailable');
  assert.equal(modelProblem([d(1, 'a')]), undefined);
});
