/** The training feature's pure builders: the panel's snapshots from progress, the analysis panel's state, run records. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MAX_CURVE_POINTS, TrainingTracker, analysisRunRecord, analysisState, describeModel, downsampleCurve, latestCheckpoint, trainingRunRecord } from '../../../src/extension/trainingStates.js';
import type { TrainAnalyseResult, TrainConfigPayload, TrainingStepPayload } from '../../../src/protocol/engine.js';
import { isRunRecord } from '../../../src/protocol/runs.js';
import { configDifferences } from '../../../src/engine/worker/trainingService.js';
import { noPositionConfig } from '../../../src/engine/training/trainer.js';

const step = (n: number, loss: number, extra: Partial<TrainingStepPayload> = {}): TrainingStepPayload => ({ step: n, maxSteps: 100, loss, gradNorm: 0.5, lr: 1e-3, stepMs: 100, tokensPerSec: 2560, etaSec: (100 - n) / 10, posLoss: [0, loss, loss], ...extra });

const config = (): TrainConfigPayload => ({ ...noPositionConfig(), model: { ...noPositionConfig().model } }) as TrainConfigPayload;

test('downsampleCurve keeps every step up to the limit, then averages equal runs ending at the latest step', () => {
  assert.deepEqual(downsampleCurve([3, 2, 1]), { step: [1, 2, 3], loss: [3, 2, 1] });
  const long = Array.from({ length: 4001 }, (_, i) => i + 1);
  const d = downsampleCurve(long, 2000);
  assert.ok(d.step.length <= 2000);
  assert.equal(d.step[d.step.length - 1], 4001, 'the last point is the latest step');
  assert.equal(d.step[0], 3);
  assert.equal(d.loss[0], 2, 'mean of steps 1..3');
  assert.equal(d.loss[d.loss.length - 1], 4000.5, 'the last, partial run: steps 4000..4001');
  assert.equal(downsampleCurve(long).step.length <= MAX_CURVE_POINTS, true);
});

test('describeModel names the architecture the way the panel shows it', () => {
  assert.equal(describeModel(config()), '2L × 1H, d_model 64, d_mlp 256, LN, relu, d_vocab 300, n_ctx 50, W_pos zeroed and frozen');
  const ind: TrainConfigPayload = { ...config(), zero_pos_embed: false, model: { n_layers: 2, d_model: 64, n_heads: 4, d_head: 16, attn_only: true, d_vocab: 64, n_ctx: 33 } };
  assert.equal(describeModel(ind), '2L × 4H, d_model 64, attention-only, LN, d_vocab 64, n_ctx 33');
});

test('TrainingTracker: started, steps, stop, resume-from history; throughput, ETA and buttons', () => {
  let now = 1000;
  const t = new TrainingTracker({ title: 'tiny', file: '/w/tiny.experiment.json', model: 'm', checkpointDir: '/w/.mechlens/train/tiny', maxSteps: 100, now: () => now });
  let s = t.state();
  assert.equal(s.status, 'starting');
  assert.deepEqual(s.actions, { stop: true, resume: false, analyse: false });
  assert.equal(s.last, null);
  t.progress({ kind: 'started', step: 0, maxSteps: 100, losses: [], params: 1234, tokensPerStep: 256, resumedFrom: null, notes: [] });
  for (let i = 1; i <= 10; i++) t.progress({ kind: 'step', ...step(i, 3 - i * 0.1) });
  now += 5000;
  s = t.state();
  assert.equal(s.status, 'running');
  assert.equal(s.step, 10);
  assert.deepEqual(s.curve.step, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(s.curve.loss[9], 2);
  assert.deepEqual(s.last, { loss: 2, lr: 1e-3, gradNorm: 0.5, stepMs: 100 });
  assert.equal(s.tokensPerSec, 2560);
  assert.equal(s.stepsPerSec, 10, 'tokens/s over tokens per step');
  assert.equal(s.etaSec, 9);
  assert.equal(s.elapsedSec, 5);
  assert.deepEqual(s.posLoss, { step: 10, values: [0, 2, 2] });
  assert.equal(s.params, 1234);

  t.stopping();
  assert.equal(t.state().status, 'stopping');
  assert.equal(t.state().actions.stop, false, 'asked once');
  t.progress({ kind: 'step', ...step(11, 1.9) });
  t.progress({ kind: 'checkpoint', step: 11, path: '/w/.mechlens/train/tiny/step-000011' });
  t.finish({ status: 'stopped', step: 11, maxSteps: 100, checkpoint: '/w/.mechlens/train/tiny/step-000011', losses: [...Array.from({ length: 10 }, (_, i) => 3 - (i + 1) * 0.1), 1.9] });
  now += 60_000;
  s = t.state();
  assert.equal(s.status, 'stopped');
  assert.equal(s.elapsedSec, 5, 'the clock stops with the run');
  assert.equal(s.etaSec, null);
  assert.match(s.message!, /Stopped at step 11 of 100; the checkpoint .*step-000011 can be resumed/);
  assert.deepEqual(s.actions, { stop: false, resume: true, analyse: true });
  assert.deepEqual(t.state({ live: false }).actions, { stop: false, resume: false, analyse: false });

  // A resumed session starts from the checkpoint's history: the curve continues at step 12.
  const r = new TrainingTracker({ title: 'tiny', file: '/w/tiny.experiment.json', model: 'm', checkpointDir: '/w/.mechlens/train/tiny', maxSteps: 100, now: () => now });
  r.setCheckpoint('/w/.mechlens/train/tiny/step-000011');
  r.progress({ kind: 'started', step: 11, maxSteps: 100, losses: s.curve.loss, params: 1234, tokensPerStep: 256, resumedFrom: '/w/.mechlens/train/tiny/step-000011', notes: ['The checkpoint was trained with other settings.'] });
  r.progress({ kind: 'step', ...step(12, 1.8) });
  const rs = r.state();
  assert.equal(rs.startStep, 11);
  assert.deepEqual(rs.curve.step.slice(-2), [11, 12]);
  assert.match(rs.message!, /other settings/);
  r.finish({ status: 'completed', step: 100, maxSteps: 100, checkpoint: '/w/.mechlens/train/tiny/step-000100', losses: Array.from({ length: 100 }, () => 1) });
  assert.deepEqual(r.state().actions, { stop: false, resume: false, analyse: true }, 'nothing left to resume');
});

test('TrainingTracker: a failure keeps the steps so far and says why', () => {
  const t = new TrainingTracker({ title: 'x', file: '/w/x.experiment.json', model: 'm', checkpointDir: '/w/c', maxSteps: 10 });
  t.progress({ kind: 'started', step: 0, maxSteps: 10, losses: [], params: 1, tokensPerStep: 1, resumedFrom: null, notes: [] });
  t.progress({ kind: 'step', ...step(1, 2, { maxSteps: 10 }) });
  t.fail('training stopped at step 2: the loss is NaN; the last finite loss was 2.0000 at step 1.');
  const s = t.state();
  assert.equal(s.status, 'failed');
  assert.match(s.message!, /the loss is NaN/);
  assert.equal(s.curve.loss.length, 1);
  assert.deepEqual(s.actions, { stop: false, resume: false, analyse: false }, 'no checkpoint known');
  t.setCheckpoint('/w/c/step-000001');
  assert.deepEqual(t.state().actions, { stop: false, resume: true, analyse: true });
});

test('latestCheckpoint reads the `latest` pointer of a checkpoint folder', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-latest-'));
  try {
    assert.equal(latestCheckpoint(dir), null);
    fs.mkdirSync(path.join(dir, 'step-000042'));
    fs.writeFileSync(path.join(dir, 'latest'), 'step-000042\n');
    assert.equal(latestCheckpoint(dir), null, 'a step folder without config.json is not a checkpoint');
    fs.writeFileSync(path.join(dir, 'step-000042', 'config.json'), '{}');
    assert.deepEqual(latestCheckpoint(dir), { path: path.join(dir, 'step-000042'), step: 42 });
    fs.writeFileSync(path.join(dir, 'latest'), 'garbage');
    assert.equal(latestCheckpoint(dir), null);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('configDifferences lists what a resumed checkpoint keeps from its own config', () => {
  const c = noPositionConfig();
  const file = { ...c, model: { ...c.model }, max_steps: 8000 } as TrainConfigPayload;
  assert.deepEqual(configDifferences(file, c), [], 'max_steps may change');
  file.lr = 3e-4;
  file.model.d_mlp = 128;
  assert.deepEqual(configDifferences(file, c), ['model.d_mlp: file 128, checkpoint 256', 'lr: file 0.0003, checkpoint 0.0001']);
});

const ANALYSIS: TrainAnalyseResult = {
  checkpoint: '/w/.mechlens/train/tiny/step-000050',
  step: 50,
  elapsedMs: 1234,
  cfg: { model_name: 'tiny', n_layers: 1, d_model: 4, n_heads: 1, d_head: 4, d_mlp: 3, attn_only: false, d_vocab: 5, n_ctx: 3, act_fn: 'relu', normalization_type: 'LN', positional_embedding_type: 'standard' },
  results: [
    { index: 0, title: 'Loss on fresh sequences (10 sequences)', kind: 'loss', sequences: 10, loss: 0.0123456, posLoss: [0, 0.02, 0.004] },
    { index: 1, title: 'Mean attention pattern per layer', kind: 'attention_patterns', sequences: 10, nHeads: 1, patterns: [[[1, 0, 0], [0.5, 0.5, 0], [0.1, 0.8, 0.1]]] },
    { index: 2, title: 'Per-component logit contributions', kind: 'logit_contributions', sequence: 0, tokens: [0, 3, 4], positions: [1, 2], targets: [0, 3], components: ['embed', '0_attn_out', '0_mlp_out'], values: [[0.1, 0.2], [5.123456, 6], [1, -1]] },
    { index: 3, title: 'LayerNorm-folded analysis model', kind: 'fold_ln', sequences: 4, steps: ['fold_ln', 'center_writing_weights'], notes: [], normalization: 'LN → LNPre', maxLogProbDiff: 2e-6, wPosNorm: 0 },
    { index: 4, title: 'QK circuit', kind: 'qk_circuit', layer: 0, head: 0, weights: 'raw', tokens: 2, values: [[1.23456789, 2], [3, 4]] },
    { index: 5, title: 'OV circuit', kind: 'ov_circuit', layer: 0, head: 0, weights: 'folded', into: 'mlp_in', mlpLayer: 0, tokens: 5, values: [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 1, 1], [0, 0, 0]] },
    { index: 6, title: 'MLP activations — layer 0', kind: 'mlp_activations', layer: 0, sequence: 0, sequences: 10, example: [[0, 1, 2], [0, 0, 1], [3, 0, 0]], mean: [[0, 1, 2], [0, 0, 1], [3, 0, 0]], firing: [[0, 1, 0.5], [0, 0, 1], [1, 0, 0]], firingRate: 0.39 },
    { index: 7, title: 'Loss with each hook ablated', kind: 'ablation', ablation: 'mean', sequences: 10, baseline: 0.01, hooks: ['hook_embed', 'blocks.0.attn.hook_pattern'], losses: [9.87654321, 0.0123] },
  ],
};

test('analysisState: one section per analysis, drawn as heatmaps, bars, lines and numbers', () => {
  const st = analysisState({ title: 'tiny', file: '/w/tiny.experiment.json' }, ANALYSIS);
  assert.equal(st.kind, 'experiment');
  assert.equal(st.title, 'Analysis — tiny');
  assert.equal(st.model, 'tiny @ step 50');
  assert.match(st.description, /step-000050/);
  assert.deepEqual(st.sections.map((s) => s.kind), ['loss', 'attention_patterns', 'logit_contributions', 'fold_ln', 'qk_circuit', 'ov_circuit', 'mlp_activations', 'ablation']);
  const types = st.sections.map((s) => s.blocks.map((b) => b.type).join('+'));
  assert.deepEqual(types, ['stats+line', 'heatmap', 'heatmap+bars', 'stats', 'heatmap', 'heatmap', 'stats+heatmap+heatmap+heatmap', 'stats+bars']);
  const loss = st.sections[0]!.blocks[1]!;
  assert.ok(loss.type === 'line');
  assert.deepEqual(loss.values, [null, 0.02, 0.004], 'position 0 has no target');
  const attn = st.sections[1]!.blocks[0]!;
  assert.ok(attn.type === 'heatmap' && attn.scale === 'sequential' && attn.square === true && attn.data.zmax === 1);
  const lc = st.sections[2]!.blocks[0]!;
  assert.ok(lc.type === 'heatmap');
  assert.deepEqual(lc.data.rowLabels, ['embed', '0_attn_out', '0_mlp_out']);
  assert.deepEqual(lc.data.colLabels, ['1→0', '2→3']);
  assert.equal(lc.data.values[1]![0], 5.123, '4 significant digits');
  const qk = st.sections[4]!.blocks[0]!;
  assert.ok(qk.type === 'heatmap');
  assert.equal(qk.data.values[0]![0], 1.235);
  assert.deepEqual(st.sections[4]!.notes, ['The first 2 of 5 tokens.']);
  const ov = st.sections[5]!.blocks[0]!;
  assert.ok(ov.type === 'heatmap' && ov.data.colAxis === 'neuron' && /W_in\[0\]/.test(ov.data.title));
  const fire = st.sections[6]!.blocks[3]!;
  assert.ok(fire.type === 'heatmap' && fire.valueFormat === 'percent' && fire.scale === 'sequential');
  const abl = st.sections[7]!.blocks[1]!;
  assert.ok(abl.type === 'bars');
  assert.deepEqual(abl.labels, ['hook_embed', 'blocks.0.attn.hook_pattern']);
  assert.deepEqual(abl.values, [9.877, 0.0123]);
});

test('run records of a training and of its analysis are valid RunRecords that re-open without buttons', () => {
  const t = new TrainingTracker({ title: 'tiny', file: '/w/tiny.experiment.json', model: 'm', checkpointDir: '/w/c', maxSteps: 2 });
  t.progress({ kind: 'started', step: 0, maxSteps: 2, losses: [], params: 1, tokensPerStep: 1, resumedFrom: null, notes: [] });
  t.finish({ status: 'completed', step: 2, maxSteps: 2, checkpoint: '/w/c/step-000002', losses: [2, 1] });
  const rec = trainingRunRecord({ id: 'r1', createdAt: new Date('2026-01-01T00:00:00Z'), version: '0.1.0', config: config(), file: '/w/tiny.experiment.json', state: t.state() });
  assert.ok(isRunRecord(JSON.parse(JSON.stringify(rec))));
  assert.equal(rec.kind, 'training');
  assert.equal(rec.model.spec, '/w/c/step-000002');
  assert.ok(rec.state.kind === 'training');
  assert.deepEqual(rec.state.actions, { stop: false, resume: false, analyse: false });
  const st = analysisState({ title: 'tiny', file: '/w/tiny.experiment.json' }, ANALYSIS);
  const a = analysisRunRecord({ id: 'r2', createdAt: new Date(), version: '0.1.0', file: '/w/tiny.experiment.json', result: ANALYSIS, state: st });
  assert.ok(isRunRecord(JSON.parse(JSON.stringify(a))));
  assert.equal(a.kind, 'training-analysis');
  assert.equal(a.inputs['step'], 50);
});
