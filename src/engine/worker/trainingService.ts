/**
 * The engine worker's training requests (src/protocol/engine.ts):
 *
 *  - engine/training/start: trains (or resumes) with the trainer of src/engine/training, one
 *    progress notification per step. Cancelling the request is "Stop": the trainer finishes the
 *    step it is on, writes a checkpoint and the request answers normally with status 'stopped',
 *    so the caller learns the step and checkpoint. A NaN loss keeps the last good step: it is
 *    checkpointed before the error (TrainingError NAN_LOSS) is returned.
 *  - engine/training/analyse: a train experiment's analyses on a checkpoint
 *    (src/engine/experiments/trainAnalyses.ts), with progress fractions.
 *
 * Neither touches the worker's loaded model: a checkpoint is loaded for the analyses only.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RpcEndpoint } from '../../protocol/rpc.js';
import { EngineNotifications, EngineRequests, type TrainConfigPayload, type TrainingProgress } from '../../protocol/engine.js';
import { resolveCheckpoint, Trainer, TrainingError, type TrainConfig } from '../training/trainer.js';
import { analyseCheckpoint } from '../experiments/trainAnalyses.js';

/** Settings the file may change on resume without changing the maths of the run. */
const RESUMABLE = ['max_steps', 'save_every', 'keep_checkpoints'] as const;

/** The fields of a checkpoint's config that differ from the file's (what resuming ignores). */
export function configDifferences(file: TrainConfigPayload, ckpt: TrainConfig): string[] {
  const out: string[] = [];
  const skip = new Set<string>(RESUMABLE);
  const walk = (a: unknown, b: unknown, at: string) => {
    if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && !Array.isArray(a)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
        if (!at && skip.has(k)) continue;
        walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}.${k}` : k);
      }
      return;
    }
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${at}: file ${JSON.stringify(a)}, checkpoint ${JSON.stringify(b)}`);
  };
  walk(file, ckpt, '');
  return out;
}

export function registerTrainingHandlers(rpc: RpcEndpoint): void {
  rpc.onRequest(EngineRequests.trainStart, async (p, ctx) => {
    const progress = (training: TrainingProgress) => rpc.notify(EngineNotifications.progress, { requestId: ctx.requestId, message: training.kind, training });
    const opts = { saveDir: p.saveDir, ...(p.threads !== undefined ? { threads: p.threads } : {}) };
    const notes: string[] = [];
    let trainer: Trainer;
    let resumedFrom: string | null = null;
    if (p.resume) {
      resumedFrom = resolveCheckpoint(p.saveDir);
      trainer = await Trainer.resume(p.saveDir, opts, { max_steps: p.config.max_steps, save_every: p.config.save_every, keep_checkpoints: p.config.keep_checkpoints });
      const diff = configDifferences(p.config, trainer.config);
      if (diff.length) notes.push(`The checkpoint was trained with other settings; resuming keeps the checkpoint's (${diff.join('; ')}).`);
    } else {
      // A fresh run must not mix with an older run's checkpoints (pruning and `latest` go by step).
      clearCheckpoints(p.saveDir);
      // The payload is the trainer's TrainConfig as plain data (a type error here means they drifted).
      const config: TrainConfig = p.config;
      trainer = await Trainer.create(config, opts);
    }
    try {
      const c = trainer.config;
      progress({
        kind: 'started', step: trainer.step, maxSteps: c.max_steps, losses: [...trainer.losses], params: trainer.layout.total,
        tokensPerStep: c.batch_size * trainer.cfg.n_ctx, resumedFrom, notes,
      });
      if (trainer.step >= c.max_steps) return { status: 'completed' as const, step: trainer.step, maxSteps: c.max_steps, checkpoint: resumedFrom, losses: [...trainer.losses] };
      let r;
      try {
        r = await trainer.run({
          signal: ctx.signal,
          ...(p.untilStep !== undefined ? { untilStep: p.untilStep } : {}),
          onProgress: (s) => {
            progress({ kind: 'step', step: s.step, maxSteps: s.maxSteps, loss: s.loss, gradNorm: s.gradNorm, lr: s.lr, stepMs: s.stepMs, tokensPerSec: s.tokensPerSec, etaSec: s.etaSec, posLoss: Array.from(s.posLoss) });
          },
        });
      } catch (e) {
        if (e instanceof TrainingError && e.code === 'NAN_LOSS' && trainer.step > 0) {
          // The model is still at the last good step: keep it loadable and resumable.
          let saved = '';
          try {
            saved = ` The last good step (${trainer.step}) was saved to ${trainer.saveCheckpoint()}.`;
          } catch (se) {
            saved = ` Saving the last good step failed too: ${(se as Error).message}`;
          }
          throw new TrainingError(e.message + saved, 'NAN_LOSS');
        }
        throw e;
      }
      if (r.checkpoint) progress({ kind: 'checkpoint', step: r.step, path: r.checkpoint });
      return { status: r.status === 'aborted' ? ('stopped' as const) : ('completed' as const), step: r.step, maxSteps: c.max_steps, checkpoint: r.checkpoint, losses: r.losses };
    } finally {
      await trainer.dispose();
    }
  });

  rpc.onRequest(EngineRequests.trainAnalyse, (p, ctx) =>
    analyseCheckpoint(p, {
      signal: ctx.signal,
      onProgress: (message, fraction) => rpc.notify(EngineNotifications.progress, { requestId: ctx.requestId, message, fraction }),
    }),
  );
}

/** Removes step-N folders and `latest` of an earlier run (only those: the folder may hold other files). */
function clearCheckpoints(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return; // absent: the trainer creates it (or says why it cannot)
  }
  for (const n of names) {
    if (/^step-\d+$/.test(n) || n === 'latest' || n.startsWith('.tmp-step-')) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
  }
}
