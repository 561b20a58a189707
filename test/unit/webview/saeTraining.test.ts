/** SAE training in the training panel (jsdom): the tracker's snapshots (saeTrainingStates.ts) and the SAE metrics section, Stop, the saved result. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PanelActionParams, TrainingState } from '../../../src/protocol/webview.js';
import type { SaeTrainPayload } from '../../../src/protocol/engine.js';
import { renderState, updateState } from '../../../src/webview/views/index.js';
import { SaeTrainingTracker, saeTrainingRunRecord } from '../../../src/extension/saeTrainingStates.js';
import { makeCtx, makeDom } from './jsdomEnv.js';

const payload: SaeTrainPayload = {
  model: 'builtin:default', hook: 'blocks.1.hook_resid_post', architecture: 'topk', expansion_factor: 8, k: 16, l1_coefficient: 5, l1_warm_up_steps: 0,
  aux_loss_coefficient: 1, apply_b_dec_to_input: true, b_dec_init: 'mean', decoder_init_norm: 0.1, steps: 1500, batch_size: 1024, lr: 2e-3, betas: [0.9, 0.999],
  lr_warm_up_steps: 0, lr_decay_steps: 300, max_grad_norm: 1, dead_feature_window: 200, log_every: 50, corpus: 'builtin:book', context_size: 128,
  corpus_tokens: 2_000_000, eval_tokens: 16384, seed: 42, output: '/w/samples/saes/blocks.1.hook_resid_post',
};

function tracker(snapshots: number): SaeTrainingTracker {
  let now = 0;
  const t = new SaeTrainingTracker({ title: 'A TopK SAE', file: '/w/samples/sae-train.experiment.json', payload, now: () => now });
  t.progress({ kind: 'activations', done: 100, total: 9362 });
  t.progress({ kind: 'started', d_in: 128, d_sae: 1024, params: 263296, trainTokens: 1198336, evalTokens: 16384, corpus: 'Moby-Dick', steps: 1500 });
  for (let i = 1; i <= snapshots; i++) {
    t.progress({ kind: 'snapshot', step: 50 * i, steps: 1500, loss: 100 / i, mse: 90 / i, auxLoss: 10 / i, l0: 16, explainedVariance: 1 - 0.4 / i, deadFeatures: i === 1 ? 0 : 40 - i, lr: 2e-3, gradNorm: 5, tokensPerSec: 8000, etaSec: 150, elapsedSec: 6 * i });
  }
  now = 30_000;
  return t;
}

function render(st: TrainingState) {
  const dom = makeDom();
  const doc = dom.window.document;
  const ctx = makeCtx(doc);
  const actions: PanelActionParams['action'][] = [];
  ctx.host.panelAction = async (a) => {
    actions.push(a);
  };
  const el = renderState(st, ctx);
  doc.getElementById('app')!.appendChild(el);
  return { doc, ctx, el, actions };
}

const statsOf = (el: HTMLElement, sel: string) => Object.fromEntries([...el.querySelectorAll(`${sel} .ml-stat`)].map((s) => [s.querySelector('.ml-stat-label')!.textContent, s.querySelector('.ml-stat-value')!.textContent]));

test('before training: the activations phase is said; no Resume or Analyse', () => {
  const t = new SaeTrainingTracker({ title: 'A TopK SAE', file: '/w/x.experiment.json', payload });
  t.progress({ kind: 'activations', done: 100, total: 9362 });
  const st = t.state();
  assert.equal(st.status, 'starting');
  assert.match(st.message ?? '', /Computing blocks\.1\.hook_resid_post on the corpus: 100 \/ 9362 rows/);
  assert.deepEqual(st.actions, { stop: true, resume: false, analyse: false });
});

test('a running SAE training: MSE, L0, explained variance and dead features of the latest snapshot, their curves, Stop', async () => {
  const st = tracker(6).state();
  assert.equal(st.step, 300);
  assert.deepEqual(st.curve.step, [50, 100, 150, 200, 250, 300]);
  const { el, actions } = render(st);
  assert.equal(el.dataset.status, 'running');
  const sae = statsOf(el, '.ml-sae-stats');
  assert.equal(sae['MSE'], '15.00');
  assert.equal(sae['L0'], '16.0');
  assert.equal(sae['explained variance'], '0.9333');
  assert.equal(sae['dead features'], '34 / 1024');
  assert.equal(el.querySelectorAll('.ml-sae-charts .ml-stepchart').length, 3, 'explained variance, L0, dead features');
  assert.match(el.textContent ?? '', /topk on blocks\.1\.hook_resid_post, d_in 128, d_sae 1024, k 16 · Moby-Dick: 1,198,336 training tokens, 16,384 held out/);
  assert.match(el.textContent ?? '', /SAE folder/);
  const stop = el.querySelector<HTMLElement>('[data-action="training.stop"]')!;
  assert.equal(stop.hidden, false);
  assert.equal(el.querySelector<HTMLElement>('[data-action="training.resume"]')!.hidden, true);
  assert.equal(el.querySelector<HTMLElement>('[data-action="training.analyse"]')!.hidden, true);
  stop.click();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(actions, ['training.stop']);
  // A newer snapshot updates in place.
  assert.equal(updateState(el, tracker(7).state()), true);
  assert.equal(statsOf(el, '.ml-sae-stats')['MSE'], '12.86');
  assert.equal(el.querySelectorAll('.ml-sae-charts .ml-stepchart')[0]!.getAttribute('data-points'), '7');
});

test('finished: the held-out measurement and where the SAE was saved; the saved run has no buttons', () => {
  const t = tracker(30);
  t.finish({ status: 'completed', step: 1500, steps: 1500, output: payload.output, d_in: 128, d_sae: 1024, evaluation: { tokens: 16384, explainedVariance: 0.9803, l0: 16, mse: 7.37, neverFired: 68 }, snapshots: [], activationSec: 23, trainSec: 185 });
  const st = t.state();
  assert.equal(st.status, 'completed');
  assert.equal(st.checkpoint, payload.output);
  assert.match(st.message ?? '', /saved to \/w\/samples\/saes\/blocks\.1\.hook_resid_post .*explained variance 0\.9803, L0 16\.00, 68 of 1024 features never fired/);
  const { el } = render(st);
  assert.equal(statsOf(el, '.ml-sae-stats')['held out'], 'EV 0.9803 · L0 16.0');
  const rec = saeTrainingRunRecord({ id: 'r1', createdAt: new Date(0), version: '0', payload, file: st.file, state: st });
  assert.equal(rec.kind, 'training');
  assert.deepEqual((rec.state as TrainingState).actions, { stop: false, resume: false, analyse: false });
});
