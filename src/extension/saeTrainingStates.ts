/**
 * Pure builder (no `vscode`, unit-tested in plain node) of the training panel's state for SAE
 * training ("kind": "train_sae"): the engine's saeTraining progress (src/protocol/engine.ts) in,
 * complete TrainingState snapshots out — the same panel as toy-transformer training, with the
 * SAE's metrics per snapshot (MSE, L0, explained variance, dead features) and only Stop.
 */
import type { SaeTrainingProgress, SaeTrainPayload, SaeTrainResult } from '../protocol/engine.js';
import type { TrainingState } from '../protocol/webview.js';
import type { RunRecord } from '../protocol/runs.js';
import { downsampleCurve } from './trainingStates.js';

export interface SaeTrackerInit {
  title: string;
  file: string;
  payload: SaeTrainPayload;
  now?: () => number;
}

type SaeBlock = NonNullable<TrainingState['sae']>;

export class SaeTrainingTracker {
  private status: TrainingState['status'] = 'starting';
  private message: string | undefined;
  private readonly losses: number[] = [];
  private stepNo = 0;
  private last: TrainingState['last'] = null;
  private tokensPerSec: number | null = null;
  private etaSec: number | null = null;
  private params = 0;
  private saved: string | null = null;
  private readonly t0: number;
  private t1: number | null = null;
  private readonly now: () => number;
  private readonly sae: SaeBlock;

  constructor(private readonly init: SaeTrackerInit) {
    this.now = init.now ?? (() => Date.now());
    this.t0 = this.now();
    const p = init.payload;
    this.sae = {
      architecture: p.architecture, hook: p.hook, d_in: null, d_sae: p.d_sae ?? null, k: p.architecture === 'topk' ? p.k : null, corpus: null,
      activations: null, steps: [], mse: [], l0: [], explainedVariance: [], deadFeatures: [], evaluation: null,
    };
  }

  get step(): number {
    return this.stepNo;
  }

  get currentStatus(): TrainingState['status'] {
    return this.status;
  }

  progress(p: SaeTrainingProgress): void {
    switch (p.kind) {
      case 'activations':
        this.sae.activations = [p.done, p.total];
        return;
      case 'started':
        if (this.status === 'starting') this.status = 'running';
        this.sae.d_in = p.d_in;
        this.sae.d_sae = p.d_sae;
        this.sae.corpus = `${p.corpus}: ${p.trainTokens.toLocaleString('en-US')} training tokens, ${p.evalTokens.toLocaleString('en-US')} held out`;
        this.params = p.params;
        return;
      case 'snapshot':
        if (this.status === 'starting') this.status = 'running';
        this.stepNo = p.step;
        this.losses.push(p.loss);
        this.sae.steps.push(p.step);
        this.sae.mse.push(p.mse);
        this.sae.l0.push(p.l0);
        this.sae.explainedVariance.push(p.explainedVariance);
        this.sae.deadFeatures.push(p.deadFeatures);
        this.last = { loss: p.loss, lr: p.lr, gradNorm: p.gradNorm, stepMs: p.tokensPerSec > 0 ? (1000 * this.init.payload.batch_size) / p.tokensPerSec : 0 };
        this.tokensPerSec = p.tokensPerSec;
        this.etaSec = p.etaSec;
        return;
      case 'saved':
        this.saved = p.path;
        return;
    }
  }

  stopping(): void {
    if (this.status === 'running' || this.status === 'starting') this.status = 'stopping';
  }

  finish(r: SaeTrainResult): void {
    this.status = r.status === 'completed' ? 'completed' : 'stopped';
    this.stepNo = r.step;
    this.saved = r.output;
    this.sae.evaluation = r.evaluation;
    this.t1 = this.now();
    const e = r.evaluation;
    const measured = e.tokens > 0 ? ` On ${e.tokens.toLocaleString('en-US')} held-out tokens: explained variance ${e.explainedVariance.toFixed(4)}, L0 ${e.l0.toFixed(2)}, ${e.neverFired} of ${r.d_sae} features never fired.` : '';
    this.message = `${r.status === 'stopped' ? `Stopped at step ${r.step} of ${r.steps}; the SAE at that step` : 'The SAE'} was saved to ${r.output} (SAELens's format: set mechlens.sae to it to read its features).${measured}`;
  }

  fail(message: string): void {
    this.status = 'failed';
    this.message = message;
    this.t1 = this.now();
  }

  state(opts: { live: boolean } = { live: true }): TrainingState {
    const running = this.status === 'starting' || this.status === 'running' || this.status === 'stopping';
    const p = this.init.payload;
    const act = this.sae.activations;
    const phase = this.status === 'starting' && act ? `Computing ${p.hook} on the corpus: ${act[0]} / ${act[1]} rows…` : undefined;
    const s: TrainingState = {
      kind: 'training',
      title: this.init.title,
      file: this.init.file,
      model: `${p.architecture} SAE on ${p.model} ${p.hook}${this.sae.d_sae !== null ? `, ${this.sae.d_sae} features` : ''}${p.architecture === 'topk' ? `, k ${p.k}` : `, L1 ${p.l1_coefficient}`}`,
      status: this.status,
      step: this.stepNo,
      maxSteps: p.steps,
      startStep: 0,
      curve: downsampleCurve(this.losses),
      last: this.last,
      tokensPerSec: this.tokensPerSec,
      stepsPerSec: this.tokensPerSec !== null ? this.tokensPerSec / p.batch_size : null,
      etaSec: running ? this.etaSec : null,
      elapsedSec: ((this.t1 ?? this.now()) - this.t0) / 1000,
      posLoss: null,
      tokensPerStep: p.batch_size,
      params: this.params,
      checkpointDir: p.output,
      checkpoint: this.saved,
      actions: { stop: opts.live && running && this.status !== 'stopping', resume: false, analyse: false },
      sae: { ...this.sae, steps: [...this.sae.steps], mse: [...this.sae.mse], l0: [...this.sae.l0], explainedVariance: [...this.sae.explainedVariance], deadFeatures: [...this.sae.deadFeatures] },
    };
    // The curve holds one point per snapshot: its x values are the snapshots' steps.
    s.curve = { step: [...this.sae.steps], loss: [...this.losses] };
    const message = this.message ?? phase;
    if (message) s.message = message;
    return s;
  }
}

/** The run record of an SAE training session (kind training, as toy-transformer training; no buttons). */
export function saeTrainingRunRecord(a: { id: string; createdAt: Date; version: string; payload: SaeTrainPayload; file: string; state: TrainingState }): RunRecord {
  return {
    id: a.id,
    kind: 'training',
    title: `MechLens: Train SAE — ${a.state.title}`,
    createdAt: a.createdAt.toISOString(),
    model: { spec: a.payload.model, name: a.payload.model, processing: 'default' },
    engineVersion: a.version,
    inputs: { prompts: [], experiment: a.file, config: a.payload },
    state: { ...a.state, actions: { stop: false, resume: false, analyse: false } },
  };
}
