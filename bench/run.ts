/**
 * `npm run bench`: speed and memory of the engine on a GPT-2-small-shaped model with random
 * weights (124M parameters, tied unembedding), as JSON lines (one per benchmark group), each
 * with its targets. Speed and memory are checked here, never by timed tests.
 *
 * Groups: engine, experiments, training, saes (SAE splicing and feature statistics, see saes.ts), saetrain (training an SAE, see saeTrain.ts), peers (TransformerLens beside MechLens, see peers.ts),
 * scale (large checkpoints, see scale.ts; only when named: `npm run bench -- scale`).
 *
 * Engine targets (2-core machine): forward 8x8 <= 150 ms; every-hook / plain <= 1.25 (every hook
 * = runWithCache(), TransformerLens's run_with_cache default); loaded-model memory <= 2x its weights.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { HookedTransformer } from '../src/engine/model/hookedTransformer.js';
import { applyProcessing } from '../src/engine/weights/process.js';
import { allHooks } from '../src/engine/hooks/hooks.js';
import { gpt2SmallConfig, paramBytes, randomParams, randomTokens } from './randomModel.js';
import { round, timeInterleaved } from './stats.js';



function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function benchEngine(): Promise<Record<string, number | boolean | string>> {
  const cfg0 = gpt2SmallConfig();
  gc();
  const rssBefore = process.memoryUsage().rss;
  const raw = randomParams(cfg0);
  const checkpointBytes = paramBytes(raw); // W_U tied to W_E: stored once, as in GPT-2's checkpoint
  // As a user loads it: TransformerLens's default processing (fold_ln, centring, ...).
  const { cfg, params } = applyProcessing(cfg0, raw, 'default');
  raw.clear();
  const heldBytes = paramBytes(params, { countTiedUnembed: true }); // after processing W_U is its own tensor
  const model = new HookedTransformer(cfg, params, 'default', 'random', { device: 'cpu' });
  const t0 = performance.now();
  await model.warmUp();
  const sessionMs = performance.now() - t0;
  const tok8 = randomTokens(8, 8, cfg.d_vocab);
  const tok128 = randomTokens(1, 128, cfg.d_vocab);
  await model.forward(tok8);
  // The first full-logits run schedules W_U's packing (see HookedTransformer.unembedForRun): the
  // memory of the loaded model includes the packed copy, and the timed runs use it.
  while (!model.unembedPacked) await new Promise((r) => setTimeout(r, 20));
  gc();
  await new Promise((r) => setTimeout(r, 200));
  gc();
  const loadedRss = process.memoryUsage().rss - rssBefore;

  // Plain and every-hook runs alternate, so that this shared host's drift in speed (the same
  // forward varies by +-15% from minute to minute here) hits both sides of the ratio alike.
  // runWithCache() returns what TransformerLens's run_with_cache does by default (no per-head
  // hook_result); with hook_result too, for information.
  const [f8 = NaN, all8 = NaN, withResult8 = NaN] = await timeInterleaved([() => model.forward(tok8), () => model.runWithCache(tok8), () => model.runWithCache(tok8, { names: allHooks(cfg) })], 25);
  const [f128 = NaN, all128 = NaN] = await timeInterleaved([() => model.forward(tok128), () => model.runWithCache(tok128)], 11);
  await model.dispose();
  return {
    bench: 'engine',
    model: 'gpt2-small-shaped random (124M params, tied unembedding), processing default',
    forward_8x8_ms: round(f8),
    forward_1x128_ms: round(f128),
    every_hook_ratio_8x8: round(all8 / f8, 3),
    every_hook_ratio_1x128: round(all128 / f128, 3),
    every_hook_incl_hook_result_ratio_8x8: round(withResult8 / f8, 3),
    session_creation_ms: round(sessionMs),
    loaded_rss_mb: round(loadedRss / 1e6),
    checkpoint_weights_mb: round(checkpointBytes / 1e6),
    held_params_mb: round(heldBytes / 1e6),
    memory_ratio_vs_checkpoint: round(loadedRss / checkpointBytes, 3),
    memory_ratio_vs_held_params: round(loadedRss / heldBytes, 3),
    target_forward_8x8_ms: 150,
    target_every_hook_ratio: 1.25,
    target_memory_ratio: 2,
    pass: f8 <= 150 && all8 / f8 <= 1.25 && loadedRss / checkpointBytes <= 2,
  };
}


/** Optional benchmark groups contributed by other modules (experiments, training). */
async function optional(file: string, fn: string): Promise<Record<string, unknown> | null> {
  const p = path.join(__dirname, file);
  if (!fs.existsSync(p)) return null;
  const mod = (await import(p)) as Record<string, () => Promise<Record<string, unknown>>>;
  const f = mod[fn];
  return f ? f() : null;
}

async function main(): Promise<void> {
  // Group names select groups; --flags belong to the groups (e.g. scale's --only=gpt2-xl).
  const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  // The scale group writes multi-GB checkpoints and loads 1-2B-parameter models: only when named.
  const want = (name: string) => (only.length === 0 ? name !== 'scale' : only.includes(name));
  const host = { cpus: os.cpus().length, load1: round(os.loadavg()[0]!, 2), node: process.version };
  const emit = (r: Record<string, unknown> | null) => r && process.stdout.write(JSON.stringify({ ...r, host }) + '\n');
  if (want('engine')) emit(await benchEngine());
  if (want('experiments')) emit(await optional('experiments.ts', 'benchExperiments'));
  if (want('training')) emit(await optional('training.ts', 'benchTraining'));
  if (want('saes')) emit(await optional('saes.ts', 'benchSaes'));
  if (want('saetrain')) emit(await optional('saeTrain.ts', 'benchSaeTrain'));
  if (want('peers')) emit(await optional('peers.ts', 'benchPeers'));
  if (want('scale')) emit(await optional('scale.ts', 'benchScale'));
}

void main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
