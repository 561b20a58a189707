/**
 * Training and gradient benchmarks (called by bench/run.ts as the 'training' group):
 *
 *  - no-positional-embedding training steps per second: n_layers 2, d_model 64, d_head 64, n_heads 1, d_mlp 256,
 *    d_vocab 300, n_ctx 50, relu, LN, batch 256, positional embeddings zeroed and frozen; each
 *    step is one onnxruntime run (forward, loss, backward, clipping, AdamW). Target >= 5.5 steps/s
 *    on the 2-core machine.
 *  - attribution patching of every contraction-circuit sweep (resid_pre / attn_out / mlp_out by layer x pos,
 *    head z / q / k / v / pattern by layer x head, hook_post neurons) on a GPT-2-small-shaped model
 *    (random weights, default processing), 8 prompts x 8 tokens. Target <= 5 s, session creation
 *    included ("cold"); "warm" reuses the compiled session. For scale, the exact resid_pre and
 *    head-z sweeps are timed too, and their Pearson correlation with the estimates reported.
 *
 * The machine is shared: each figure is a median, and the load average before and after is
 * reported with it.
 */
import * as os from 'node:os';
import { noPositionConfig, Trainer } from '../src/engine/training/trainer.js';
import { HookedTransformer } from '../src/engine/model/hookedTransformer.js';
import { AttributionPatcher } from '../src/engine/analysis/attribution.js';
import { logitDiffMetric, normalizedMetric, runPatchSweep } from '../src/engine/analysis/patching.js';
import { applyProcessing } from '../src/engine/weights/process.js';
import { gpt2SmallConfig, randomParams, randomTokens } from './randomModel.js';
import { pearson } from '../src/engine/tensor/stats.js';
import { round } from './stats.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;


async function benchSteps(steps = 40, warm = 5): Promise<Record<string, number>> {
  const t0 = performance.now();
  const trainer = await Trainer.create(noPositionConfig({ max_steps: steps + warm }));
  const sessionMs = performance.now() - t0;
  const times: number[] = [];
  let loss = 0;
  try {
    for (let i = 0; i < warm + steps; i++) {
      const info = await trainer.trainStep();
      if (i >= warm) times.push(info.stepMs);
      loss = info.loss;
    }
  } finally {
    await trainer.dispose();
  }
  const med = median(times);
  return {
    no_position_steps_per_s: round(1000 / med, 2),
    no_position_step_ms_median: round(med),
    no_position_step_ms_min: round(Math.min(...times)),
    no_position_step_ms_max: round(Math.max(...times)),
    no_position_tokens_per_s: Math.round((256 * 50 * 1000) / med),
    no_position_session_ms: round(sessionMs),
    no_position_last_loss: round(loss, 4),
    target_no_position_steps_per_s: 5.5,
  };
}

async function benchAttribution(): Promise<Record<string, number>> {
  const cfg0 = gpt2SmallConfig();
  const { cfg, params } = applyProcessing(cfg0, randomParams(cfg0), 'default');
  const model = new HookedTransformer(cfg, params, 'default', 'random', { device: 'cpu' });
  const clean = randomTokens(8, 8, cfg.d_vocab, 7);
  const corrupted = clean.map((row, b) => row.map((t, p) => (p === 3 ? (t + 1 + b) % cfg.d_vocab : t)));
  const answers = clean.map((_, b) => [(100 + b) % cfg.d_vocab, (200 + b) % cfg.d_vocab] as const);
  const patcher = new AttributionPatcher(model);
  try {
    const t0 = performance.now();
    await patcher.run(clean, corrupted, answers);
    const cold = performance.now() - t0;
    const warm: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t1 = performance.now();
      await patcher.run(clean, corrupted, answers);
      warm.push(performance.now() - t1);
    }
    // Agreement with exact activation patching on two sweeps (exact: one patched run per cell).
    const r = await patcher.run(clean, corrupted, answers);
    const metric = normalizedMetric(logitDiffMetric(answers), r.cleanMetric, r.corruptedMetric);
    const t2 = performance.now();
    const exactResid = await runPatchSweep(model, clean, corrupted, metric, { kind: 'layer_pos', hook: 'resid_pre' });
    const exactZ = await runPatchSweep(model, clean, corrupted, metric, { kind: 'head', activation: 'z' });
    const exactMs = performance.now() - t2;
    return {
      attribution_gpt2small_8x8_cold_ms: round(cold),
      attribution_gpt2small_8x8_warm_ms: round(median(warm)),
      target_attribution_ms: 5000,
      exact_resid_pre_and_head_z_ms: round(exactMs),
      pearson_resid_pre: round(pearson([...exactResid.values], r.residPre.flat()), 3),
      pearson_head_z: round(pearson([...exactZ.values], r.heads.z.flat()), 3),
    };
  } finally {
    await patcher.dispose();
    await model.dispose();
  }
}

export async function benchTraining(): Promise<Record<string, number>> {
  const loadBefore = os.loadavg()[0]!;
  const steps = await benchSteps();
  const attr = await benchAttribution();
  const loadAfter = os.loadavg()[0]!;
  return {
    ...steps,
    ...attr,
    load1_before: round(loadBefore, 2),
    load1_after: round(loadAfter, 2),
    pass: steps['no_position_steps_per_s']! >= 5.5 && attr['attribution_gpt2small_8x8_cold_ms']! <= 5000 ? 1 : 0,
  };
}
