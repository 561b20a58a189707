/**
 * Entry point of the engine process (a child of the extension host; also usable as a worker thread). The extension host (or any Node client) starts this
 * file in a worker_threads Worker and talks to it with the typed requests of
 * src/protocol/engine.ts over one RpcEndpoint. Long requests honour cancellation between steps
 * and stream progress notifications.
 */
import { parentPort } from 'node:worker_threads';
import { RpcEndpoint, InvalidRequestError, type Channel } from '../../protocol/rpc.js';
import { EngineNotifications, EngineRequests, type InterventionPayload } from '../../protocol/engine.js';
import { LoadedEngine } from '../engine.js';
import type { Intervention } from '../interventions/plan.js';
import { parseSaeHook, requireHook, type OutputName } from '../hooks/hooks.js';
import { f32 } from '../tensor/tensor.js';
import type { WireMessage } from '../../protocol/ipc.js';
import { registerTrainingHandlers } from './trainingService.js';
import { registerSaeTrainHandlers } from './saeTrainService.js';
import { registerExperimentHandlers } from './experimentsWorker.js';
import { SaeService } from '../sae/service.js';

export function serveEngine(channel: Channel): RpcEndpoint {
  const rpc = new RpcEndpoint(channel);
  let engine: LoadedEngine | null = null;
  let loading: Promise<LoadedEngine> | null = null;

  const current = (): LoadedEngine => {
    if (!engine) throw new InvalidRequestError('no model is loaded: load one first (MechLens: Load Model)');
    return engine;
  };

  // SAEs loaded for the current model (engine/sae/*; forgotten when another model is loaded).
  const saes = new SaeService(() => current());

  rpc.onRequest(EngineRequests.loadModel, async (p, ctx) => {
    const next = LoadedEngine.load(p.model, {
      processing: p.processing,
      device: p.device,
      allowDownload: p.allowDownload,
      signal: ctx.signal,
      onProgress: (pr) => rpc.notify(EngineNotifications.progress, {
        requestId: ctx.requestId,
        message: `downloading ${pr.file}`,
        ...(pr.total ? { fraction: pr.loaded / pr.total } : {}),
      }),
    });
    loading = next;
    const loaded = await next;
    if (ctx.signal.aborted) {
      await loaded.dispose();
      throw new Error('cancelled');
    }
    // Warm the plain forward so the first panel is quick; then swap models.
    rpc.notify(EngineNotifications.progress, { requestId: ctx.requestId, message: 'compiling the model' });
    await loaded.model.warmUp();
    // Cancelled while compiling: keep the previous model (the client believes it is still loaded).
    if (ctx.signal.aborted) {
      await loaded.dispose();
      throw new Error('cancelled');
    }
    const old = engine;
    engine = loaded;
    saes.clear();
    loading = null;
    await old?.dispose();
    return loaded.info();
  });

  rpc.onRequest(EngineRequests.modelInfo, () => engine?.info() ?? null);

  rpc.onRequest(EngineRequests.tokenize, (p) => current().tokenize(p.texts, p.prependBos));

  rpc.onRequest(EngineRequests.runWithCache, async (p) => {
    const e = current();
    const cfg = e.model.cfg;
    // SAE hooks are checked by the run against the SAEs it splices.
    const hook = (n: string) => (parseSaeHook(n) ? n : requireHook(n, cfg).name);
    const names = p.names === 'all' ? 'all' : p.names.map((n) => hook(n) as OutputName);
    const r = await e.model.run(p.tokens, {
      names,
      interventions: (p.interventions ?? []).map((iv) => toIntervention(iv, hook)),
      startAtLayer: p.startAtLayer,
      stopAtLayer: p.stopAtLayer,
      saes: (p.saes ?? []).map((s) => ({ sae: saes.sae(s.saeId), useErrorTerm: s.useErrorTerm === true })),
    });
    const cache: Record<string, { dims: number[]; axes?: string[]; data: Float32Array }> = {};
    for (const [k, v] of r.cache) cache[k] = { dims: [...v.dims], axes: v.axes ? [...v.axes] : undefined, data: v.data } as never;
    return r.logits ? { logits: { dims: [...r.logits.dims], data: r.logits.data, axes: ['batch', 'pos', 'd_vocab'] }, cache } : { cache };
  });

  rpc.onRequest(EngineRequests.testPrompt, (p) => current().testPrompt(p.prompt, { answer: p.answer, prependBos: p.prependBos, k: p.k }));

  rpc.onRequest(EngineRequests.attribution, (p, ctx) => current().attribution(p.prompt, { answer: p.answer, wrong: p.wrong, prependBos: p.prependBos }, ctx.signal));

  rpc.onRequest(EngineRequests.measureTokens, (p) => current().measureTokens(p.texts, p.prependBos));

  rpc.onRequest(EngineRequests.analyze, (p, ctx) => current().analyze(p.tokens, p.corrupted_tokens, p.answers, ctx.signal));

  // engine/sae/*: SAEs for the loaded model (forgotten when another model is loaded).
  rpc.onRequest(EngineRequests.saeLoad, (p, ctx) => saes.load(p.sae, { allowDownload: p.allowDownload, signal: ctx.signal }));
  rpc.onRequest(EngineRequests.saeFeatures, (p) => saes.features(p.saeId, p.texts, { prependBos: p.prependBos, top: p.top }));
  rpc.onRequest(EngineRequests.saeFeatureActs, (p) => saes.featureActs(p.saeId, p.texts, p.feature, { prependBos: p.prependBos }));
  rpc.onRequest(EngineRequests.saeFeatureDla, (p) => saes.featureDla(p));
  rpc.onRequest(EngineRequests.saeDashboard, (p, ctx) => saes.dashboard(p, {
    signal: ctx.signal,
    onProgress: (done, total) => rpc.notify(EngineNotifications.progress, { requestId: ctx.requestId, message: `feature statistics: ${done} of ${total} tokens`, fraction: done / total }),
  }));

  // engine/experiment/*: experiment files, each with its own model (the settings' one reused when the same).
  registerExperimentHandlers(rpc, () => engine);

  rpc.onRequest(EngineRequests.sleep, (p, ctx) =>
    new Promise((resolve, reject) => {
      const t0 = Date.now();
      const timer = setTimeout(() => resolve({ slept: Date.now() - t0 }), p.ms);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(new Error('cancelled'));
      });
    }),
  );

  rpc.onRequest(EngineRequests.crash, () =>
    new Promise<never>(() => {
      setTimeout(() => {
        throw new Error('deliberate crash (engine/debug/crash)');
      }, 0);
    }),
  );

  // Training and the analyses of trained checkpoints (they never replace the loaded model).
  registerTrainingHandlers(rpc);
  registerSaeTrainHandlers(rpc);

  void loading;
  return rpc;
}

function toIntervention(p: InterventionPayload, hook: (n: string) => string): Intervention {
  const base = { hook: hook(p.hook), ...(p.index ? { index: p.index } : {}) } as Pick<Intervention, 'hook' | 'index'>;
  const t = (x: { dims: number[]; data: Float32Array }) => f32(x.dims, x.data);
  switch (p.kind) {
    case 'patch': return { ...base, kind: 'patch', source: t(p.source) };
    case 'zero': return { ...base, kind: 'zero' };
    case 'mean': return p.over === 'batch' ? { ...base, kind: 'mean', over: 'batch' } : { ...base, kind: 'mean', over: 'supplied', mean: t(p.mean) };
    case 'add': return { ...base, kind: 'add', vector: t(p.vector) };
    case 'scale': return { ...base, kind: 'scale', factor: p.factor };
  }
}

if (parentPort) {
  // In a worker thread (kept for embedding; the extension and CLI tests use a child process).
  const port = parentPort;
  serveEngine({
    post: (m: WireMessage) => port.postMessage(m),
    onMessage: (fn) => {
      port.on('message', fn);
      return () => port.off('message', fn);
    },
  });
} else if (process.send) {
  // A child process of the extension host (client.ts): the IPC channel carries the protocol; when
  // the host goes away the channel closes and the engine ends with it.
  serveEngine({
    post: (m: WireMessage) => {
      if (process.connected) process.send!(m);
    },
    onMessage: (fn) => {
      process.on('message', fn);
      return () => process.off('message', fn);
    },
  });
  process.on('disconnect', () => process.exit(0));
}
