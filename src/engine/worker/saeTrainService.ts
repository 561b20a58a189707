/**
 * The engine worker's engine/sae/train request: a "train_sae" experiment's whole run
 * (src/engine/sae/trainRun.ts) with a progress notification per phase and per metric snapshot.
 * Cancelling the request is "Stop": the trainer finishes its step, the SAE at that step is saved
 * and measured, and the request answers normally with status 'stopped'. It loads its own model
 * and leaves the worker's loaded one alone.
 */
import type { RpcEndpoint } from '../../protocol/rpc.js';
import { EngineNotifications, EngineRequests, type SaeTrainingProgress } from '../../protocol/engine.js';
import { trainSaeRun } from '../sae/trainRun.js';

function message(p: SaeTrainingProgress): string {
  switch (p.kind) {
    case 'activations': return `activations of ${p.done} / ${p.total} corpus rows`;
    case 'started': return `training ${p.d_sae} features on ${p.trainTokens} tokens`;
    case 'snapshot': return `step ${p.step} / ${p.steps}`;
    case 'saved': return `saved ${p.path}`;
  }
}

export function registerSaeTrainHandlers(rpc: RpcEndpoint): void {
  rpc.onRequest(EngineRequests.saeTrain, (p, ctx) =>
    trainSaeRun(p.config, {
      ...(p.threads !== undefined ? { threads: p.threads } : {}),
      signal: ctx.signal,
      onProgress: (s) => {
        const fraction = s.kind === 'activations' ? 0.1 * (s.done / s.total) : s.kind === 'snapshot' ? 0.1 + 0.9 * (s.step / s.steps) : undefined;
        rpc.notify(EngineNotifications.progress, { requestId: ctx.requestId, message: message(s), ...(fraction !== undefined ? { fraction } : {}), saeTraining: s });
      },
    }),
  );
}
