/**
 * SAE training benchmark (bench/run.ts group 'saetrain'): samples/sae-train.experiment.json — a
 * TopK SAE with 8 × 128 = 1024 features, k = 16, on builtin:default's blocks.1.hook_resid_post
 * over Moby-Dick — trained end to end as the editor trains it (trainSaeRun: model load, corpus,
 * activations, training, save, measurement of the saved SAE on the held-out tokens), on 2
 * onnxruntime threads. Target: explained variance >= 0.9 at L0 <= 16 (held out) within 5 minutes
 * of wall time in all.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseExperiment } from '../src/engine/experiments/parse.js';
import { trainSaeRun } from '../src/engine/sae/trainRun.js';
import { round } from './stats.js';

export async function benchSaeTrain(): Promise<Record<string, unknown>> {
  const file = path.join(__dirname, '..', 'samples', 'sae-train.experiment.json');
  const parsed = parseExperiment(fs.readFileSync(file, 'utf8'), file);
  if (!parsed.trainSae) throw new Error(`${file} does not parse: ${parsed.diagnostics.map((d) => d.message).join('; ')}`);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-bench-sae-'));
  const load0 = os.loadavg()[0]!;
  const t0 = performance.now();
  try {
    const r = await trainSaeRun({ ...parsed.trainSae.payload, output: path.join(out, 'sae') }, { threads: 2 });
    const wall = (performance.now() - t0) / 1000;
    const last = r.snapshots[r.snapshots.length - 1]!;
    const e = r.evaluation;
    return {
      bench: 'saetrain',
      what: `topk SAE d_sae ${r.d_sae} (8x d_in ${r.d_in}), k ${parsed.trainSae.payload.k}, on builtin:default blocks.1.hook_resid_post, ${r.steps} steps x ${parsed.trainSae.payload.batch_size} tokens, Moby-Dick; 2 threads`,
      wall_s: round(wall, 1),
      activations_s: round(r.activationSec, 1),
      train_s: round(r.trainSec, 1),
      train_tokens_per_s: round((r.step * parsed.trainSae.payload.batch_size) / r.trainSec),
      heldout_tokens: e.tokens,
      heldout_explained_variance: round(e.explainedVariance, 4),
      heldout_l0: round(e.l0, 2),
      heldout_never_fired: e.neverFired,
      final_train_explained_variance: round(last.explainedVariance, 4),
      dead_features: last.deadFeatures,
      target_explained_variance: 0.9,
      target_l0: 16,
      target_wall_s: 300,
      pass: e.explainedVariance >= 0.9 && e.l0 <= 16 && wall <= 300,
      load1_before: round(load0, 2),
      load1_after: round(os.loadavg()[0]!, 2),
    };
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}
