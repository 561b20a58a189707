/**
 * Pure builders for training (no `vscode`, no engine code; unit-tested in plain node):
 *
 *  - TrainingTracker turns the engine's training progress (src/protocol/engine.ts) into the
 *    training panel's complete snapshots (TrainingState): the loss history downsampled for the
 *    curve, throughput and ETA, the status and which buttons apply;
 *  - analysisState turns the analyses of a checkpoint into the experiment results panel's state
 *    (ExperimentState: heatmaps, bars, lines and numbers per analysis);
 *  - run records of both, and what a checkpoint folder holds (its `latest` step).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelConfigInfo, TrainConfigPayload, TrainingProgress, TrainingStepPayload, TrainAnalyseResult, TrainAnalysisResult, TrainStartResult } from '../protocol/engine.js';
import type { ExperimentBlock, ExperimentSection, ExperimentState, HeatmapData, TrainingState } from '../protocol/webview.js';
import type { RunRecord } from '../protocol/runs.js';

/** Points of the loss curve in a snapshot; longer histories are averaged in equal runs of steps. */
export const MAX_CURVE_POINTS = 2000;

/**
 * losses[i] is the loss of step i + 1. At most `max` points: runs of k = ceil(n / max) steps
 * averaged, each point at the run's last step (so the final point is the latest step).
 */
export function downsampleCurve(losses: readonly number[], max = MAX_CURVE_POINTS): { step: number[]; loss: number[] } {
  const n = losses.length;
  if (n <= max) return { step: losses.map((_, i) => i + 1), loss: [...losses] };
  const k = Math.ceil(n / max);
  const step: number[] = [];
  const loss: number[] = [];
  for (let i = 0; i < n; i += k) {
    const end = Math.min(n, i + k);
    let s = 0;
    for (let j = i; j < end; j++) s += losses[j]!;
    step.push(end);
    loss.push(s / (end - i));
  }
  return { step, loss };
}

/** The architecture in a few words, for the panel. */
export function describeModel(c: Pick<TrainConfigPayload, 'model' | 'zero_pos_embed'>): string {
  const m = c.model;
  const parts = [
    `${m.n_layers}L × ${m.n_heads}H`,
    `d_model ${m.d_model}`,
    ...(m.d_head !== undefined && m.d_head * m.n_heads !== m.d_model ? [`d_head ${m.d_head}`] : []),
    m.attn_only ? 'attention-only' : `d_mlp ${m.d_mlp ?? 4 * m.d_model}`,
    m.normalization_type === null ? 'no LayerNorm' : (m.normalization_type ?? 'LN'),
    ...(m.attn_only ? [] : [m.act_fn ?? 'gelu_new']),
    `d_vocab ${m.d_vocab === 0 ? '(tokenizer)' : m.d_vocab}`,
    `n_ctx ${m.n_ctx}`,
  ];
  if (m.positional_embedding_type === 'none') parts.push('no W_pos');
  else if (c.zero_pos_embed) parts.push('W_pos zeroed and frozen');
  return parts.join(', ');
}

export interface TrackerInit {
  title: string;
  file: string;
  model: string;
  checkpointDir: string;
  maxSteps: number;
  /** Milliseconds clock (tests pass a fake). */
  now?: () => number;
}

/**
 * The training panel's state for one session (a Train or a Resume). Feed it the progress
 * notifications in order, then finish() or fail(); state() is a fresh complete snapshot.
 */
export class TrainingTracker {
  private status: TrainingState['status'] = 'starting';
  private message: string | undefined;
  private losses: number[] = [];
  private stepNo = 0;
  private startStep = 0;
  private maxSteps: number;
  private last: TrainingState['last'] = null;
  private tokensPerSec: number | null = null;
  private etaSec: number | null = null;
  private posLoss: TrainingState['posLoss'] = null;
  private tokensPerStep = 0;
  private params = 0;
  private checkpoint: string | null = null;
  private readonly t0: number;
  private t1: number | null = null;
  private readonly now: () => number;
  private notes: string[] = [];

  constructor(private readonly init: TrackerInit) {
    this.now = init.now ?? (() => Date.now());
    this.t0 = this.now();
    this.maxSteps = init.maxSteps;
  }

  get step(): number {
    return this.stepNo;
  }

  get currentStatus(): TrainingState['status'] {
    return this.status;
  }

  /** The newest checkpoint folder this session knows of. */
  get checkpointPath(): string | null {
    return this.checkpoint;
  }

  /** A checkpoint that existed before this session (a resumed run's starting point). */
  setCheckpoint(p: string | null): void {
    this.checkpoint = p;
  }

  progress(p: TrainingProgress): void {
    switch (p.kind) {
      case 'started':
        this.status = this.status === 'stopping' ? 'stopping' : 'running';
        this.losses = [...p.losses];
        this.stepNo = p.step;
        this.startStep = p.step;
        this.maxSteps = p.maxSteps;
        this.tokensPerStep = p.tokensPerStep;
        this.params = p.params;
        this.notes = [...p.notes];
        if (p.resumedFrom) this.checkpoint = p.resumedFrom;
        return;
      case 'step':
        this.onStep(p);
        return;
      case 'checkpoint':
        this.checkpoint = p.path;
        return;
    }
  }

  private onStep(p: TrainingStepPayload): void {
    // Steps arrive in order; a gap would mean a lost notification: the curve still gets the loss.
    this.losses.push(p.loss);
    this.stepNo = p.step;
    this.maxSteps = p.maxSteps;
    this.last = { loss: p.loss, lr: p.lr, gradNorm: p.gradNorm, stepMs: p.stepMs };
    this.tokensPerSec = p.tokensPerSec;
    this.etaSec = p.etaSec;
    this.posLoss = { step: p.step, values: [...p.posLoss] };
  }

  /** Stop was asked for: the worker finishes the current step and checkpoints. */
  stopping(): void {
    if (this.status === 'running' || this.status === 'starting') this.status = 'stopping';
  }

  finish(r: TrainStartResult): void {
    this.status = r.status === 'completed' ? 'completed' : 'stopped';
    this.stepNo = r.step;
    this.maxSteps = r.maxSteps;
    this.losses = [...r.losses];
    if (r.checkpoint) this.checkpoint = r.checkpoint;
    this.t1 = this.now();
    if (r.status === 'stopped') this.message = `Stopped at step ${r.step} of ${r.maxSteps}${r.checkpoint ? `; the checkpoint ${r.checkpoint} can be resumed or analysed` : ''}.`;
  }

  fail(message: string): void {
    this.status = 'failed';
    this.message = message;
    this.t1 = this.now();
  }

  state(opts: { live: boolean } = { live: true }): TrainingState {
    const running = this.status === 'starting' || this.status === 'running' || this.status === 'stopping';
    const elapsedSec = ((this.t1 ?? this.now()) - this.t0) / 1000;
    const stepsPerSec = this.tokensPerSec !== null && this.tokensPerStep > 0 ? this.tokensPerSec / this.tokensPerStep : null;
    const message = [this.message, ...this.notes].filter((m): m is string => !!m).join(' ');
    const s: TrainingState = {
      kind: 'training',
      title: this.init.title,
      file: this.init.file,
      model: this.init.model,
      status: this.status,
      step: this.stepNo,
      maxSteps: this.maxSteps,
      startStep: this.startStep,
      curve: downsampleCurve(this.losses),
      last: this.last,
      tokensPerSec: this.tokensPerSec,
      stepsPerSec,
      etaSec: running ? this.etaSec : null,
      elapsedSec,
      posLoss: this.posLoss,
      tokensPerStep: this.tokensPerStep,
      params: this.params,
      checkpointDir: this.init.checkpointDir,
      checkpoint: this.checkpoint,
      actions: {
        stop: opts.live && running && this.status !== 'stopping',
        resume: opts.live && !running && this.checkpoint !== null && this.stepNo < this.maxSteps,
        analyse: opts.live && !running && this.checkpoint !== null,
      },
    };
    if (message) s.message = message;
    return s;
  }
}

/** The newest checkpoint of a checkpoint folder (its `latest` pointer), or null. */
export function latestCheckpoint(dir: string): { path: string; step: number } | null {
  let name: string;
  try {
    name = fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim();
  } catch {
    return null;
  }
  const m = /^step-(\d+)$/.exec(name);
  if (!m || !fs.existsSync(path.join(dir, name, 'config.json'))) return null;
  return { path: path.join(dir, name), step: Number(m[1]) };
}

// ---------------------------------------------------------------------------------------------
// Analyses -> the experiment results panel.

/** 4 significant digits: the panel shows them, and run.json stays a few MB for 300 x 300 circuits. */
const r4 = (v: number): number => (Number.isFinite(v) ? Number(v.toPrecision(4)) : v);
const labels = (n: number, prefix = ''): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const grid = (m: number[][]): number[][] => m.map((row) => row.map(r4));

function heat(data: HeatmapData, look: { scale?: 'diverging' | 'sequential'; square?: boolean; valueFormat?: 'number' | 'percent' } = {}): ExperimentBlock {
  return { type: 'heatmap', data, ...look };
}

function blocksOf(r: TrainAnalysisResult, cfg: ModelConfigInfo): { blocks: ExperimentBlock[]; notes: string[] } {
  switch (r.kind) {
    case 'loss': {
      const scored = r.posLoss.map((v, i) => [i, v] as const).filter(([, v]) => v !== 0);
      return {
        blocks: [
          { type: 'stats', items: [{ label: 'loss', value: r.loss, title: String(r.loss) }, { label: 'sequences', value: String(r.sequences), format: 'text' }, { label: 'tokens scored', value: `${scored.length} per sequence`, format: 'text' }] },
          { type: 'line', title: 'Loss by position', labels: r.posLoss.map((_, i) => String(i)), values: r.posLoss.map((v) => (v === 0 ? null : v)), xAxis: 'position', yAxis: 'loss' },
        ],
        notes: [],
      };
    }
    case 'attention_patterns':
      return {
        blocks: r.patterns.map((m, l) => heat({ title: `Layer ${l} attention pattern`, rowAxis: 'query position', colAxis: 'key position', rowLabels: labels(m.length), colLabels: labels(m.length), values: grid(m), valueLabel: 'mean attention probability', zmax: 1 }, { scale: 'sequential', square: true, valueFormat: 'percent' })),
        notes: [],
      };
    case 'logit_contributions': {
      const cols = r.positions.map((p, i) => `${p}→${r.targets[i]}`);
      const mean = r.values.map((row) => row.reduce((a, b) => a + b, 0) / Math.max(1, row.length));
      return {
        blocks: [
          heat({ title: 'Direct logit contribution to the target, per position', rowAxis: 'component', colAxis: 'position → target token', rowLabels: r.components, colLabels: cols, values: grid(r.values), valueLabel: 'logit contribution (centred)' }),
          { type: 'bars', title: 'Mean over positions', labels: r.components, values: mean.map(r4), valueLabel: 'mean logit contribution to the target' },
        ],
        notes: [`Sequence ${r.sequence}: ${r.tokens.join(' ')}`],
      };
    }
    case 'fold_ln':
      return {
        blocks: [{
          type: 'stats',
          items: [
            { label: 'normalization', value: r.normalization, format: 'text' },
            { label: 'steps', value: r.steps.join(', '), format: 'text' },
            { label: 'max |Δ log p|', value: r.maxLogProbDiff, title: `largest difference of log-probabilities from the trained model, over ${r.sequences} sequences` },
            ...(r.wPosNorm !== null ? [{ label: '‖W_pos‖', value: r.wPosNorm }] : []),
          ],
        }],
        notes: r.notes,
      };
    case 'qk_circuit':
      return {
        blocks: [heat({ title: `QK circuit, ${cfg.n_heads > 1 ? `L${r.layer}H${r.head}` : `layer ${r.layer}`} (${r.weights})`, rowAxis: 'query token', colAxis: 'key token', rowLabels: labels(r.values.length), colLabels: labels(r.values[0]?.length ?? 0), values: grid(r.values), valueLabel: 'W_E W_Q W_Kᵀ W_Eᵀ' }, { square: true })],
        notes: r.tokens < cfg.d_vocab ? [`The first ${r.tokens} of ${cfg.d_vocab} tokens.`] : [],
      };
    case 'ov_circuit': {
      const into = r.into === 'mlp_in' ? `W_in[${r.mlpLayer}]` : 'W_U';
      return {
        blocks: [heat({ title: `OV circuit into ${into}, ${cfg.n_heads > 1 ? `L${r.layer}H${r.head}` : `layer ${r.layer}`} (${r.weights})`, rowAxis: 'source token', colAxis: r.into === 'mlp_in' ? 'neuron' : 'output token', rowLabels: labels(r.values.length), colLabels: labels(r.values[0]?.length ?? 0), values: grid(r.values), valueLabel: `W_E W_V W_O ${into}` })],
        notes: r.tokens < cfg.d_vocab ? [`The first ${r.tokens} of ${cfg.d_vocab} tokens.`] : [],
      };
    }
    case 'mlp_activations': {
      const nonNeg = (m: number[][]) => m.every((row) => row.every((v) => v >= 0));
      const map = (title: string, m: number[][], valueLabel: string, percent = false): ExperimentBlock =>
        heat(
          { title, rowAxis: 'position', colAxis: 'neuron', rowLabels: labels(m.length), colLabels: labels(m[0]?.length ?? 0), values: grid(m), valueLabel, ...(percent ? { zmax: 1 } : {}) },
          { scale: nonNeg(m) ? 'sequential' : 'diverging', ...(percent ? { valueFormat: 'percent' as const } : {}) },
        );
      return {
        blocks: [
          { type: 'stats', items: [{ label: 'firing rate', value: r.firingRate, format: 'percent', title: 'fraction of (sequence, position, neuron) with hook_post > 0' }, { label: 'sequences', value: String(r.sequences), format: 'text' }] },
          map(`Layer ${r.layer}: activations on sequence ${r.sequence}`, r.example, 'hook_post'),
          map(`Layer ${r.layer}: mean activation`, r.mean, `mean hook_post over ${r.sequences} sequences`),
          map(`Layer ${r.layer}: firing rate`, r.firing, 'fraction of sequences with hook_post > 0', true),
        ],
        notes: [],
      };
    }
    case 'ablation':
      return {
        blocks: [
          { type: 'stats', items: [{ label: 'baseline loss', value: r.baseline }, { label: 'hooks', value: String(r.hooks.length), format: 'text' }, { label: 'sequences', value: String(r.sequences), format: 'text' }] },
          { type: 'bars', title: `Loss with each hook ${r.ablation}-ablated`, labels: r.hooks, values: r.losses.map(r4), valueLabel: `loss (baseline ${r4(r.baseline)})` },
        ],
        notes: [r.ablation === 'mean' ? 'Each hook replaced by its mean over other fresh sequences, at every position (the seed\'s activation replacement).' : 'Each hook set to zero.'],
      };
  }
}

/** The experiment results panel's state for the analyses of a checkpoint. */
export function analysisState(x: { title: string; file: string; description?: string }, r: TrainAnalyseResult): ExperimentState {
  const sections: ExperimentSection[] = r.results.map((res) => {
    const { blocks, notes } = blocksOf(res, r.cfg);
    const s: ExperimentSection = { index: res.index, kind: res.kind, group: null, title: res.title, elapsedMs: res.elapsedMs ?? 0, blocks };
    if (notes.length) s.notes = notes;
    return s;
  });
  return {
    kind: 'experiment',
    title: `Analysis — ${x.title}`,
    model: `${r.cfg.model_name} @ step ${r.step}`,
    description: `${x.description ? `${x.description}\n` : ''}Checkpoint ${r.checkpoint}; analyses in ${(r.elapsedMs / 1000).toFixed(1)} s.`,
    metric: 'cross-entropy loss of the training task on fresh sequences',
    file: x.file,
    sections,
  };
}

export function trainingRunRecord(a: { id: string; createdAt: Date; version: string; config: TrainConfigPayload; file: string; state: TrainingState }): RunRecord {
  return {
    id: a.id,
    kind: 'training',
    title: `MechLens: Train — ${a.state.title}`,
    createdAt: a.createdAt.toISOString(),
    model: { spec: a.state.checkpoint ?? a.state.checkpointDir, name: a.config.model.model_name ?? 'trained', processing: 'none' },
    engineVersion: a.version,
    inputs: { prompts: [], experiment: a.file, config: a.config },
    // A saved run is a record: its buttons would have nothing to act on.
    state: { ...a.state, actions: { stop: false, resume: false, analyse: false } },
  };
}

export function analysisRunRecord(a: { id: string; createdAt: Date; version: string; file: string; result: TrainAnalyseResult; state: ExperimentState }): RunRecord {
  return {
    id: a.id,
    kind: 'training-analysis',
    title: `MechLens: ${a.state.title}`,
    createdAt: a.createdAt.toISOString(),
    model: { spec: a.result.checkpoint, name: a.result.cfg.model_name, processing: 'none' },
    engineVersion: a.version,
    inputs: { prompts: [], experiment: a.file, checkpoint: a.result.checkpoint, step: a.result.step },
    state: a.state,
  };
}
