/**
 * Training panel: a "kind": "train" experiment being trained (or a saved run of one). The status
 * and the buttons that act on it (Stop, Resume, Analyse: `webview/panel/action` requests), the
 * numbers of the latest step (loss, learning rate, gradient norm, throughput, ETA), the loss curve
 * (linear or log scale, kept across snapshots), the loss by position of the latest batch, and
 * where the checkpoints are. Snapshots arrive a few times a second while training; each updates
 * the view in place (numbers patched, charts redrawn in their slots, buttons kept), and what is
 * shown is still a function of the latest state alone.
 */
import type { PanelActionParams, TrainingState } from '../../protocol/webview.js';
import type { ViewContext } from '../context.js';
import { Disposables, h, setChildren } from '../dom.js';
import { formatSig } from '../format.js';
import { button, checkbox } from '../ui/controls.js';
import { panelHeader, section, stat } from './common.js';
import { StepChart } from './trainingChart.js';

const STATUS_TEXT: Record<TrainingState['status'], string> = {
  starting: 'starting',
  running: 'training',
  stopping: 'stopping after this step',
  stopped: 'stopped',
  completed: 'completed',
  failed: 'failed',
};

/** "1 h 02 min", "3 min 05 s", "42 s". */
export function formatDuration(sec: number | null): string {
  if (sec === null || !Number.isFinite(sec)) return '—';
  const s = Math.max(0, Math.round(sec));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** 12800 -> "12.8 k", 1.2e6 -> "1.2 M". */
export function formatCount(n: number | null): string {
  if (n === null || !Number.isFinite(n)) return '—';
  if (n >= 1e6) return `${formatSig(n / 1e6, 3)} M`;
  if (n >= 1e3) return `${formatSig(n / 1e3, 3)} k`;
  return formatSig(n, 3);
}

export function validateTraining(st: TrainingState): void {
  if (st.curve.step.length !== st.curve.loss.length) throw new Error(`training state: ${st.curve.step.length} curve steps for ${st.curve.loss.length} losses`);
  if (!(st.maxSteps > 0)) throw new Error(`training state: maxSteps must be positive, got ${st.maxSteps}`);
}

/**
 * Views that can take a newer snapshot of the same panel in place (training: several a second)
 * register an updater for their root element; the app calls it instead of rebuilding the DOM, so
 * the scroll position, focus, hover and a half-done click on Stop survive.
 */
export const trainingUpdaters = new WeakMap<HTMLElement, (st: TrainingState) => void>();

export function renderTraining(first: TrainingState, ctx: ViewContext): HTMLElement {
  validateTraining(first);
  const { doc } = ctx;
  let st = first;
  const ui = { ...(ctx.ui.get('training') ?? { logScale: false, byPosition: true }) };
  const setUi = (v: Partial<typeof ui>) => ctx.ui.set('training', { ...ui, ...v });

  // Buttons: only where the host can act (a live panel; not a run re-opened from disk). They are
  // made once and shown or hidden by each snapshot, so a click is never lost to a redraw.
  const status = h(doc, 'span', { class: 'ml-status', role: 'status' });
  const act = (action: PanelActionParams['action'], label: string, title: () => string, primary: () => boolean): HTMLElement | null => {
    const run = ctx.host.panelAction;
    if (!run) return null;
    const b = button(doc, {
      label,
      title: title(),
      appearance: primary() ? 'primary' : 'secondary',
      onClick: () => {
        b.setAttribute('disabled', '');
        status.textContent = '';
        // Usable again once the host has taken the action (Analyse opens its own panel; Stop and
        // Resume change the status, and the next snapshot shows the buttons that apply).
        run(action).then(
          () => b.removeAttribute('disabled'),
          (e: unknown) => {
            b.removeAttribute('disabled');
            status.textContent = e instanceof Error ? e.message : String(e);
          },
        );
      },
    });
    b.dataset.action = action;
    return b;
  };
  const isLive = () => st.status === 'starting' || st.status === 'running';
  const stopBtn = act('training.stop', 'Stop', () => 'Stop after the current step and save a checkpoint', () => false);
  const resumeBtn = act('training.resume', 'Resume', () => `Continue from the checkpoint at step ${st.step}`, () => true);
  const analyseBtn = act('training.analyse', 'Analyse', () => "Run the experiment's analyses on the latest checkpoint", () => !st.actions.resume);
  const showButtons = () => {
    if (stopBtn) stopBtn.hidden = !(isLive() && st.actions.stop);
    if (resumeBtn) {
      resumeBtn.hidden = !st.actions.resume;
      resumeBtn.title = `Continue from the checkpoint at step ${st.step}`;
    }
    if (analyseBtn) analyseBtn.hidden = !st.actions.analyse;
  };

  const badge = h(doc, 'span', { class: 'ml-badge' });
  const showBadge = () => {
    badge.className = `ml-badge${st.status === 'failed' ? ' ml-bad' : st.status === 'completed' ? ' ml-good' : ''}`;
    badge.dataset.status = st.status;
    badge.textContent = STATUS_TEXT[st.status];
  };
  const header = panelHeader(doc, `Training — ${st.title}`, null, badge, stopBtn, resumeBtn, analyseBtn, status);

  const message = h(doc, 'p');
  const showMessage = () => {
    message.hidden = !st.message;
    message.textContent = st.message ?? '';
    message.className = st.status === 'failed' ? 'ml-message ml-bad ml-training-message' : 'ml-note ml-training-message';
    if (st.status === 'failed') message.setAttribute('role', 'alert');
    else message.removeAttribute('role');
  };

  const stats = h(doc, 'div', { class: 'ml-stats ml-training-stats' });
  const showStats = () => {
    const last = st.last;
    const live = isLive();
    const stepText = h(doc, 'span', { class: 'ml-training-step', 'data-step': st.step, 'data-max-steps': st.maxSteps }, `${st.step.toLocaleString('en-US')} / ${st.maxSteps.toLocaleString('en-US')}`);
    setChildren(
      stats,
      stat(doc, 'step', stepText, st.startStep > 0 ? `resumed at step ${st.startStep}` : undefined),
      stat(doc, 'loss', last ? formatSig(last.loss, 4) : '—', last ? String(last.loss) : undefined),
      stat(doc, 'lr', last ? formatSig(last.lr, 3) : '—', 'learning rate of the latest step (after warm-up scaling)'),
      stat(doc, 'grad norm', last ? formatSig(last.gradNorm, 3) : '—', 'gradient norm before clipping'),
      stat(doc, 'tokens/s', formatCount(st.tokensPerSec), `${st.tokensPerStep.toLocaleString('en-US')} tokens per step`),
      stat(doc, 'steps/s', st.stepsPerSec === null ? '—' : formatSig(st.stepsPerSec, 3)),
      stat(doc, live ? 'ETA' : 'time', live ? formatDuration(st.etaSec) : formatDuration(st.elapsedSec), live ? `elapsed ${formatDuration(st.elapsedSec)}` : 'training time of this session'),
    );
  };
  const progress = h(doc, 'progress', { class: 'ml-training-progress' });
  // The stylesheet has no rule for it; CSSOM styles are allowed by the CSP (attributes are not).
  progress.style.width = '100%';
  const showProgress = () => {
    progress.max = st.maxSteps;
    progress.value = st.step;
    progress.title = `${((st.step / st.maxSteps) * 100).toFixed(1)} %`;
  };

  // A chart redraws inside its own slot (same size), so the page below it does not move.
  const chartSlot = (draw: (d: Disposables) => HTMLElement | null): { el: HTMLElement; redraw: () => void } => {
    const el = h(doc, 'div', { class: 'ml-training-chart' });
    let own = new Disposables();
    const redraw = () => {
      const keep = el.offsetHeight;
      if (keep > 0) el.style.minHeight = `${keep}px`;
      own.dispose();
      own = new Disposables();
      setChildren(el, draw(own));
    };
    ctx.disposables.add(() => own.dispose());
    redraw();
    return { el, redraw };
  };
  const curve = chartSlot((d) =>
    st.curve.step.length
      ? new StepChart(doc, { x: st.curve.step, y: st.curve.loss, xAxis: 'step', yAxis: 'loss', log: ui.logScale }, d).el
      : h(doc, 'p', { class: 'ml-empty' }, st.status === 'failed' ? 'No step completed.' : 'Waiting for the first step…'),
  );
  const logBox = checkbox(doc, {
    label: 'log scale',
    checked: ui.logScale,
    title: 'Loss on a logarithmic axis',
    onChange: (v) => {
      setUi({ logScale: v });
      ui.logScale = v;
      curve.redraw();
    },
  });
  const curveNoteText = () => `${st.curve.step.length < st.step ? `${st.curve.step.length} points, each the mean of consecutive steps · ` : ''}${formatCount(st.params)} trainable parameters · ${st.model}`;
  const curveSection = section(doc, 'Loss', curveNoteText(), h(doc, 'div', { class: 'ml-toolbar' }, logBox), curve.el);
  const curveNote = curveSection.querySelector('.ml-note');

  const posChart = chartSlot((d) => (ui.byPosition && st.posLoss ? new StepChart(doc, { x: st.posLoss.values.map((_, i) => i), y: st.posLoss.values, xAxis: 'position', yAxis: 'loss', log: false, height: 160 }, d).el : null));
  const posBox = checkbox(doc, {
    label: 'show',
    checked: ui.byPosition,
    title: 'Mean loss at each position of the latest batch',
    onChange: (v) => {
      setUi({ byPosition: v });
      ui.byPosition = v;
      posChart.redraw();
    },
  });
  const posNoteText = () => `mean over the batch of step ${st.posLoss?.step ?? 0}; positions without a target (e.g. BOS) show 0`;
  const posSection = section(doc, 'Loss by position', posNoteText(), h(doc, 'div', { class: 'ml-toolbar' }, posBox), posChart.el);
  const posNote = posSection.querySelector('.ml-note');

  const checkpoint = h(doc, 'div', { class: 'ml-mono ml-training-checkpoint', title: st.sae ? "the SAE's folder in SAELens's format (cfg.json + sae_weights.safetensors + sparsity.safetensors)" : 'model folders loadable as models (config.json + model.safetensors), with optimizer and trainer state' });
  const where = section(doc, st.sae ? 'SAE folder' : 'Checkpoints', null, checkpoint);

  // SAE training: the metrics of each snapshot (the same panel, a section of its own).
  const saeStats = h(doc, 'div', { class: 'ml-stats ml-sae-stats' });
  const showSaeStats = () => {
    const m = st.sae;
    if (!m) return;
    const i = m.steps.length - 1;
    const at = <T,>(xs: T[]) => (i >= 0 ? xs[i]! : null);
    const ev = at(m.explainedVariance), l0 = at(m.l0), mse = at(m.mse), dead = at(m.deadFeatures);
    const e = m.evaluation;
    setChildren(
      saeStats,
      stat(doc, 'MSE', mse === null ? '—' : formatSig(mse, 4), 'Σ over the hook\'s width of (reconstruction − activation)², per token, mean over the steps since the last snapshot'),
      stat(doc, 'L0', l0 === null ? '—' : formatSig(l0, 3), 'active features per token'),
      stat(doc, 'explained variance', ev === null ? '—' : formatSig(ev, 4), '1 − Σ(x̂ − x)² / Σ(x − mean)² over the batches'),
      stat(doc, 'dead features', dead === null ? '—' : `${dead}${m.d_sae !== null ? ` / ${m.d_sae}` : ''}`, 'features that have not fired for more than dead_feature_window steps'),
      ...(e && e.tokens > 0 ? [stat(doc, 'held out', `EV ${formatSig(e.explainedVariance, 4)} · L0 ${formatSig(e.l0, 3)}`, `the saved SAE spliced into the model, on ${e.tokens} held-out tokens; ${e.neverFired} features never fired`)] : []),
    );
  };
  const saeChart = chartSlot((d) => {
    const m = st.sae;
    if (!m || m.steps.length === 0) return null;
    return h(
      doc,
      'div',
      { class: 'ml-sae-charts' },
      new StepChart(doc, { x: m.steps, y: m.explainedVariance, xAxis: 'step', yAxis: 'explained variance', log: false, height: 140 }, d).el,
      new StepChart(doc, { x: m.steps, y: m.l0, xAxis: 'step', yAxis: 'L0', log: false, height: 120 }, d).el,
      new StepChart(doc, { x: m.steps, y: m.deadFeatures, xAxis: 'step', yAxis: 'dead features', log: false, height: 120 }, d).el,
    );
  });
  const saeNoteText = () => (st.sae ? `${st.sae.architecture} on ${st.sae.hook}${st.sae.d_in !== null ? `, d_in ${st.sae.d_in}` : ''}${st.sae.d_sae !== null ? `, d_sae ${st.sae.d_sae}` : ''}${st.sae.k !== null ? `, k ${st.sae.k}` : ''}${st.sae.corpus ? ` · ${st.sae.corpus}` : ''}` : '');
  const saeSection = section(doc, 'SAE metrics', saeNoteText(), saeStats, saeChart.el);
  const saeNote = saeSection.querySelector('.ml-note');

  const root = h(doc, 'div', { class: 'ml-view ml-training' }, header, message, stats, progress, curveSection, saeSection, posSection, where);
  const show = (redrawCharts: boolean) => {
    root.dataset.status = st.status;
    showBadge();
    showButtons();
    showMessage();
    showStats();
    showProgress();
    if (curveNote) curveNote.textContent = curveNoteText();
    posSection.hidden = !st.posLoss;
    if (posNote) posNote.textContent = posNoteText();
    checkpoint.textContent = st.checkpoint ?? `${st.checkpointDir} (none yet)`;
    saeSection.hidden = !st.sae;
    showSaeStats();
    if (saeNote) saeNote.textContent = saeNoteText();
    if (redrawCharts) {
      curve.redraw();
      posChart.redraw();
    }
  };
  show(false);
  trainingUpdaters.set(root, (next) => {
    validateTraining(next);
    const prev = st;
    st = next;
    // Redraw a chart only when its data changed (a snapshot that only moves ETA leaves them be).
    const curveChanged = prev.curve.step.length !== next.curve.step.length || prev.curve.step.at(-1) !== next.curve.step.at(-1) || prev.status !== next.status;
    const posChanged = prev.posLoss?.step !== next.posLoss?.step;
    show(false);
    if (curveChanged) curve.redraw();
    if (posChanged) posChart.redraw();
    if (prev.sae?.steps.length !== next.sae?.steps.length) saeChart.redraw();
  });
  return root;
}
