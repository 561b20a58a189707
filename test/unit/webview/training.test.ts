/** The training panel in jsdom: numbers, the loss curve (linear / log), by-position loss, buttons, saved runs, failures. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PanelActionParams, PanelState, TrainingState } from '../../../src/protocol/webview.js';
import { renderState, updateState } from '../../../src/webview/views/index.js';
import { formatCount, formatDuration } from '../../../src/webview/views/training.js';
import { StepChart, logTicks, stepLayout } from '../../../src/webview/views/trainingChart.js';
import { TrainingTracker, analysisState } from '../../../src/extension/trainingStates.js';
import type { TrainAnalyseResult } from '../../../src/protocol/engine.js';
import { flush, makeCtx, makeDom, texts } from './jsdomEnv.js';

function running(): TrainingState {
  let now = 0;
  const t = new TrainingTracker({ title: 'No positional embeddings', file: '/w/no-position.experiment.json', model: '2L × 1H, d_model 64', checkpointDir: '/w/.mechlens/train/no-position', maxSteps: 4000, now: () => now });
  t.progress({ kind: 'started', step: 0, maxSteps: 4000, losses: [], params: 138796, tokensPerStep: 12800, resumedFrom: null, notes: [] });
  for (let i = 1; i <= 120; i++) {
    t.progress({ kind: 'step', step: i, maxSteps: 4000, loss: 6 * Math.exp(-i / 60), gradNorm: 0.25, lr: 1e-4 * Math.min(i / 100, 1), stepMs: 180, tokensPerSec: 71111, etaSec: (4000 - i) / 5.5, posLoss: [0, ...Array.from({ length: 49 }, (_, p) => 5 - p * 0.01)] });
  }
  now = 25_000;
  return t.state();
}

function render(st: PanelState, withActions = true) {
  const dom = makeDom();
  const doc = dom.window.document;
  const ctx = makeCtx(doc);
  const actions: PanelActionParams['action'][] = [];
  if (withActions) {
    ctx.host.panelAction = async (a) => {
      actions.push(a);
      if (a === 'training.resume') throw new Error('the worker is busy');
    };
  }
  const el = renderState(st, ctx);
  doc.getElementById('app')!.appendChild(el);
  return { doc, ctx, el, actions };
}

test('a running training: step count, loss, lr, grad norm, throughput, ETA, curve and loss by position', () => {
  const { el } = render(running());
  assert.ok(el.classList.contains('ml-training'));
  assert.equal(el.dataset.status, 'running');
  const step = el.querySelector<HTMLElement>('.ml-training-step')!;
  assert.equal(step.dataset.step, '120');
  assert.equal(step.textContent, '120 / 4,000');
  const stats = Object.fromEntries([...el.querySelectorAll('.ml-stat')].map((s) => [s.querySelector('.ml-stat-label')!.textContent, s.querySelector('.ml-stat-value')!.textContent]));
  assert.equal(stats['loss'], '0.8120');
  assert.equal(stats['lr'], '1.00e-4');
  assert.equal(stats['grad norm'], '0.250');
  assert.equal(stats['tokens/s'], '71.1 k');
  assert.equal(stats['steps/s'], '5.56');
  assert.equal(stats['ETA'], '11 min 45 s');
  assert.equal((el.querySelector('progress') as HTMLProgressElement).value, 120);
  const charts = el.querySelectorAll<HTMLElement>('.ml-stepchart');
  assert.equal(charts.length, 2, 'the loss curve and the loss by position');
  assert.equal(charts[0]!.dataset.points, '120');
  assert.equal(charts[0]!.dataset.lastX, '120');
  assert.equal(charts[0]!.dataset.scale, 'linear');
  assert.equal(charts[1]!.dataset.points, '50');
  assert.match(texts(el, '.ml-section .ml-note').join(' '), /mean over the batch of step 120/);
  assert.match(el.querySelector('.ml-training-checkpoint')!.textContent!, /none yet/);
  const polyline = charts[0]!.querySelector('polyline')!;
  assert.equal(polyline.getAttribute('points')!.split(' ').length, 120);
});

test('log scale and the by-position toggle persist in the UI state and re-render', () => {
  const st = running();
  const { el, ctx, doc } = render(st);
  const box = [...el.querySelectorAll<HTMLInputElement>('input[type=checkbox]')];
  assert.equal(box.length, 2);
  box[0]!.checked = true;
  box[0]!.dispatchEvent(new doc.defaultView!.Event('change'));
  assert.deepEqual(ctx.ui.state.training, { logScale: true, byPosition: true });
  // Redrawn in place (a finished run gets no new snapshot)...
  assert.equal(el.querySelector<HTMLElement>('.ml-stepchart')!.dataset.scale, 'log');
  assert.match(el.querySelector('svg')!.getAttribute('aria-label')!, /log scale/);
  // ...and the next snapshot keeps the choice.
  assert.equal(renderState(st, ctx).querySelector<HTMLElement>('.ml-stepchart')!.dataset.scale, 'log');
  box[1]!.checked = false;
  box[1]!.dispatchEvent(new doc.defaultView!.Event('change'));
  assert.equal(el.querySelectorAll('.ml-stepchart').length, 1);
  assert.deepEqual(ctx.ui.state.training, { logScale: true, byPosition: false });
  assert.equal(renderState(st, ctx).querySelectorAll('.ml-stepchart').length, 1);
});

test('buttons: Stop while training, Resume and Analyse after; each sends its panel action; errors show', async () => {
  const live = render(running());
  const buttons = () => [...live.el.querySelectorAll<HTMLElement>('[data-action]:not([hidden])')].map((b) => b.dataset.action);
  assert.deepEqual(buttons(), ['training.stop']);
  live.el.querySelector<HTMLElement>('[data-action="training.stop"]')!.click();
  assert.deepEqual(live.actions, ['training.stop']);
  assert.ok(live.el.querySelector('[data-action="training.stop"]')!.hasAttribute('disabled'), 'one click at a time');
  await flush();
  assert.ok(!live.el.querySelector('[data-action="training.stop"]')!.hasAttribute('disabled'), 'usable again once the host took it');

  let now = 0;
  const t = new TrainingTracker({ title: 't', file: '/w/t.experiment.json', model: 'm', checkpointDir: '/w/c', maxSteps: 100, now: () => now });
  t.progress({ kind: 'started', step: 0, maxSteps: 100, losses: [], params: 10, tokensPerStep: 10, resumedFrom: null, notes: [] });
  t.progress({ kind: 'step', step: 1, maxSteps: 100, loss: 2, gradNorm: 1, lr: 1, stepMs: 10, tokensPerSec: 1000, etaSec: 1, posLoss: [0, 2] });
  now = 1000;
  t.finish({ status: 'stopped', step: 1, maxSteps: 100, checkpoint: '/w/c/step-000001', losses: [2] });
  const stopped = render(t.state());
  assert.deepEqual([...stopped.el.querySelectorAll<HTMLElement>('[data-action]:not([hidden])')].map((b) => b.dataset.action), ['training.resume', 'training.analyse']);
  assert.match(stopped.el.querySelector('.ml-training-message')!.textContent!, /Stopped at step 1 of 100/);
  stopped.el.querySelector<HTMLElement>('[data-action="training.resume"]')!.click();
  await flush();
  assert.equal(stopped.el.querySelector('.ml-status')!.textContent, 'the worker is busy');
  assert.ok(!stopped.el.querySelector('[data-action="training.resume"]')!.hasAttribute('disabled'), 'usable again after the error');
  stopped.el.querySelector<HTMLElement>('[data-action="training.analyse"]')!.click();
  assert.deepEqual(stopped.actions, ['training.resume', 'training.analyse']);

  // A saved run (re-opened from the Runs view) has no buttons; nor does a host without actions.
  assert.equal(render(t.state({ live: false })).el.querySelectorAll('[data-action]:not([hidden])').length, 0);
  assert.equal(render(t.state(), false).el.querySelectorAll('[data-action]').length, 0);
});

test('a failed training shows why, as an alert', () => {
  const t = new TrainingTracker({ title: 't', file: '/w/t.experiment.json', model: 'm', checkpointDir: '/ro/ckpt', maxSteps: 10 });
  t.fail('the checkpoint folder /ro/ckpt is not writable: EACCES (permission denied)');
  const { el } = render(t.state());
  assert.equal(el.dataset.status, 'failed');
  const msg = el.querySelector('[role=alert]')!;
  assert.match(msg.textContent!, /\/ro\/ckpt is not writable: EACCES/);
  assert.equal(el.querySelector('.ml-badge[data-status]')!.textContent, 'failed');
  assert.match(el.querySelector('.ml-empty')!.textContent!, /No step completed/);
});

test('inconsistent states are errors the app shows, not half-drawn views', () => {
  const st = { ...running(), curve: { step: [1, 2], loss: [1] } };
  assert.throws(() => render(st), /2 curve steps for 1 losses/);
});

test('StepChart: log ticks, layout and hover on the nearest step', () => {
  assert.deepEqual(logTicks(0.004, 7), [0.01, 0.1, 1]);
  assert.deepEqual(logTicks(0.3, 7), [0.5, 1, 2, 5]);
  const lay = stepLayout({ x: [1, 2, 3], y: [6, 0, 0.01], xAxis: 'step', yAxis: 'loss', log: true }, 400);
  assert.equal(lay.drawn, 2, 'zero cannot be drawn on a log axis');
  const { doc } = render(running());
  const chart = new StepChart(doc, { x: [10, 20, 30, 40], y: [4, 3, 2, 1], xAxis: 'step', yAxis: 'loss', width: 500 });
  const L = chart.layout!;
  assert.equal(chart.indexAt(L.plot.x), 0);
  assert.equal(chart.indexAt(L.plot.x + L.plot.w * 0.7), 2);
  assert.equal(chart.indexAt(L.plot.x + L.plot.w), 3);
  assert.equal(formatDuration(3725), '1 h 02 min');
  assert.equal(formatDuration(null), '—');
  assert.equal(formatCount(1.25e6), '1.25 M');
});

test("the analysis panel (the experiment results view) draws a checkpoint's analyses", () => {
  const r: TrainAnalyseResult = {
    checkpoint: '/w/c/step-000010', step: 10, elapsedMs: 5,
    cfg: { model_name: 't', n_layers: 1, d_model: 4, n_heads: 1, d_head: 4, d_mlp: 2, attn_only: false, d_vocab: 3, n_ctx: 2, act_fn: 'relu', normalization_type: 'LN', positional_embedding_type: 'standard' },
    results: [
      { index: 0, title: 'Loss', kind: 'loss', sequences: 5, loss: 0.5, posLoss: [0, 0.5] },
      { index: 1, title: 'Attention', kind: 'attention_patterns', sequences: 5, nHeads: 1, patterns: [[[1, 0], [0.5, 0.5]]] },
      { index: 2, title: 'Ablation', kind: 'ablation', ablation: 'mean', sequences: 5, baseline: 0.5, hooks: ['hook_embed', 'blocks.0.attn.hook_pattern'], losses: [4, 0.6] },
    ],
  };
  const { el } = render(analysisState({ title: 't', file: '/w/t.experiment.json' }, r));
  assert.ok(el.classList.contains('ml-view'));
  assert.match(el.textContent!, /Analysis — t/);
  assert.deepEqual(texts(el, '.ml-bar-label'), ['hook_embed', 'blocks.0.attn.hook_pattern']);
  assert.ok(el.querySelectorAll('.ml-heatmap').length >= 1);
});

test('a newer snapshot updates the training view in place: same elements (Stop keeps its click), new numbers and points', () => {
  let now = 0;
  const t = new TrainingTracker({ title: 't', file: '/w/t.experiment.json', model: 'm', checkpointDir: '/w/c', maxSteps: 100, now: () => now });
  t.progress({ kind: 'started', step: 0, maxSteps: 100, losses: [], params: 10, tokensPerStep: 10, resumedFrom: null, notes: [] });
  const step = (i: number) => t.progress({ kind: 'step', step: i, maxSteps: 100, loss: 3 / i, gradNorm: 1, lr: 1e-3, stepMs: 10, tokensPerSec: 1000, etaSec: 100 - i, posLoss: [0, 3 / i] });
  step(1);
  const { el, actions } = render(t.state());
  const stop = el.querySelector<HTMLElement>('[data-action="training.stop"]')!;
  const chartSlot = el.querySelector('.ml-training-chart')!;
  for (let i = 2; i <= 30; i++) {
    step(i);
    now += 100;
    assert.ok(updateState(el, t.state()), 'the training view takes the snapshot in place');
  }
  assert.equal(el.querySelector('[data-action="training.stop"]'), stop, 'the Stop button is the same element');
  assert.equal(el.querySelector('.ml-training-chart'), chartSlot, 'the chart slot is kept');
  assert.equal(el.querySelector<HTMLElement>('.ml-training-step')!.dataset.step, '30');
  assert.equal(el.querySelector<HTMLElement>('.ml-stepchart')!.dataset.points, '30');
  assert.equal((el.querySelector('progress') as HTMLProgressElement).value, 30);
  stop.click();
  assert.deepEqual(actions, ['training.stop']);
  // Stopped: Stop hides, Resume and Analyse show, in the same view.
  t.finish({ status: 'stopped', step: 30, maxSteps: 100, checkpoint: '/w/c/step-000030', losses: [] });
  assert.ok(updateState(el, t.state()));
  assert.deepEqual([...el.querySelectorAll<HTMLElement>('[data-action]:not([hidden])')].map((b) => b.dataset.action), ['training.resume', 'training.analyse']);
  assert.equal(el.dataset.status, 'stopped');
  assert.match(el.querySelector('.ml-training-checkpoint')!.textContent!, /step-000030/);
  // Other kinds are rendered anew.
  assert.equal(updateState(el, { kind: 'error', title: 'x', message: 'y' }), false);
});
