/**
 * SAE benchmarks (bench/run.ts group 'saes'), on the GPT-2-small-shaped random model:
 *
 *  - splice: a standard SAE with d_sae = 32 x d_model (24576 features) at blocks.8.hook_resid_pre,
 *    spliced with its error term, against the plain forward, alternating in one run (8 prompts x
 *    8 tokens and 1 x 128). Target: spliced / plain <= 1.5.
 *  - features: feature statistics of that SAE over a 50k-token corpus (rows of 128 tokens, the
 *    forward stopping at the SAE's hook, the activations reduced inside onnxruntime), the work
 *    behind a feature dashboard. Target <= 60 s (`--sae-tokens=N` measures fewer tokens; the
 *    target is then not judged). Beside it, on 4096 tokens alternating in one run, the plain pass
 *    it replaced (the splice's activations fetched and walked in JavaScript).
 */
import * as os from 'node:os';
import { HookedTransformer } from '../src/engine/model/hookedTransformer.js';
import { applyProcessing } from '../src/engine/weights/process.js';
import { featureStats } from '../src/engine/analysis/saeFeatures.js';
import { checkSaeForModel } from '../src/engine/sae/sae.js';
import type { OutputName } from '../src/engine/hooks/hooks.js';
import { newSaeId, type Sae } from '../src/engine/sae/sae.js';
import { parseSaeConfig } from '../src/engine/sae/config.js';
import { f32 } from '../src/engine/tensor/tensor.js';
import { mulberry32 } from '../src/engine/tensor/mulberry32.js';
import { gpt2SmallConfig, randomParams, randomTokens } from './randomModel.js';
import { round, timeInterleaved } from './stats.js';


function randomSae(dIn: number, dSae: number, hook: string): Sae {
  const rand = mulberry32(7);
  const n = (k: number, s: number) => Float32Array.from({ length: k }, () => (rand() * 2 - 1) * s);
  const cfg = parseSaeConfig({ architecture: 'standard', d_in: dIn, d_sae: dSae, apply_b_dec_to_input: true, normalize_activations: 'none', metadata: { sae_lens_version: '6.54.12', hook_name: hook } }, 'bench SAE');
  return {
    id: newSaeId('bench'), cfg, sparsity: null, source: 'random bench SAE',
    weights: { W_enc: f32([dIn, dSae], n(dIn * dSae, Math.sqrt(3 / dIn))), W_dec: f32([dSae, dIn], n(dSae * dIn, 0.05)), b_dec: f32([dIn]), b_enc: f32([dSae], n(dSae, 0.5).map((v) => v - 1)) },
  };
}


/**
 * The plain pass featureStats replaced, for the ratio: the splice's activations [batch, pos,
 * d_sae] fetched from a run that stops after the SAE's block, every one walked in JavaScript
 * (counts, sums, maxima, top-K lists).
 */
async function plainFeatureStats(model: HookedTransformer, sae: Sae, rows: readonly (readonly number[])[], K: number, batch: number): Promise<number> {
  const { hookOut } = checkSaeForModel(sae, model.cfg);
  const acts = `${hookOut}.hook_sae_acts_post` as OutputName;
  const layer = Number(/^blocks\.(\d+)\./.exec(hookOut)![1]);
  const D = sae.cfg.d_sae;
  const count = new Float64Array(D);
  const sum = new Float64Array(D);
  const maxAct = new Float32Array(D);
  const top: { row: number; pos: number; act: number }[][] = Array.from({ length: D }, () => []);
  const floor = new Float32Array(D);
  const minAct = (t: readonly { act: number }[]) => t.reduce((m, c) => Math.min(m, c.act), Infinity);
  for (let s = 0; s < rows.length; s += batch) {
    const ids = rows.slice(s, s + batch);
    const r = await model.run(ids, { saes: [{ sae, useErrorTerm: true }], names: [acts], noLogits: true, stopAtLayer: layer + 1 });
    const a = r.cache.get(acts)!.data;
    const P = ids[0]!.length;
    for (let b = 0; b < ids.length; b++) {
      for (let p = 0; p < P; p++) {
        const off = (b * P + p) * D;
        for (let f = 0; f < D; f++) {
          const v = a[off + f]!;
          if (v <= 0) continue;
          count[f]!++;
          sum[f]! += v;
          if (v > maxAct[f]!) maxAct[f] = v;
          const t = top[f]!;
          if (t.length < K) {
            t.push({ row: s + b, pos: p, act: v });
            if (t.length === K) floor[f] = minAct(t);
          } else if (v > floor[f]!) {
            let m = 0;
            for (let j = 1; j < K; j++) if (t[j]!.act < t[m]!.act) m = j;
            t[m] = { row: s + b, pos: p, act: v };
            floor[f] = minAct(t);
          }
        }
      }
    }
  }
  return count.reduce((x, c) => x + c, 0);
}

export async function benchSaes(): Promise<Record<string, unknown>> {
  const cfg0 = gpt2SmallConfig();
  const { cfg, params } = applyProcessing(cfg0, randomParams(cfg0), 'default');
  const model = new HookedTransformer(cfg, params, 'default', 'random', { device: 'cpu' });
  const load0 = os.loadavg()[0]!;
  const sae = randomSae(cfg.d_model, 32 * cfg.d_model, 'blocks.8.hook_resid_pre');
  const splice = { saes: [{ sae, useErrorTerm: true }] };
  const tok8 = randomTokens(8, 8, cfg.d_vocab);
  const tok128 = randomTokens(1, 128, cfg.d_vocab);
  await model.warmUp();
  const [p8 = NaN, s8 = NaN] = await timeInterleaved([() => model.forward(tok8), () => model.forward(tok8, splice)], 15);
  const [p128 = NaN, s128 = NaN] = await timeInterleaved([() => model.forward(tok128), () => model.forward(tok128, splice)], 7);
  await model.releaseVariants();
  // 50k tokens (391 rows of 128); --sae-tokens=N for a shorter measurement (then the target
  // is not judged).
  const flag = process.argv.find((a) => a.startsWith('--sae-tokens='));
  const nTokens = flag ? Number(flag.slice('--sae-tokens='.length)) : 50_000;
  const rows = randomTokens(Math.ceil(nTokens / 128), 128, cfg.d_vocab);
  // The ratio to the plain pass, alternating on 4096 tokens (32 rows, 4 batches).
  const few = rows.slice(0, 32);
  const [graphS = NaN, plainS = NaN] = await timeInterleaved([() => featureStats(model, sae, few, { topK: 20, batch: 8 }), () => plainFeatureStats(model, sae, few, 20, 8)], 3);
  await model.releaseVariants();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let progressCalls = 0;
  const stats = await featureStats(model, sae, rows, { topK: 20, batch: 8, onProgress: () => progressCalls++ });
  const featuresS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  await model.dispose();
  return {
    bench: 'saes',
    model: 'gpt2-small-shaped random (124M params), processing default; standard SAE d_sae 24576 at blocks.8.hook_resid_pre',
    forward_8x8_ms: round(p8),
    spliced_8x8_ms: round(s8),
    splice_ratio_8x8: round(s8 / p8, 3),
    forward_1x128_ms: round(p128),
    spliced_1x128_ms: round(s128),
    splice_ratio_1x128: round(s128 / p128, 3),
    feature_stats_s: round(featuresS, 2),
    // CPU time of the same span (user + system, every thread; 2 x wall at most on 2 cores):
    // stretched wall time on a loaded host shows here as a low ratio to wall.
    feature_stats_cpu_s: round((cpu.user + cpu.system) / 1e6, 2),
    feature_stats_tokens: stats.tokens,
    feature_stats_tokens_per_s: round(stats.tokens / featuresS),
    feature_stats_progress_reports: progressCalls,
    feature_stats_4096_s: round(graphS / 1000, 2),
    plain_pass_4096_s: round(plainS / 1000, 2),
    plain_over_feature_stats_4096: round(plainS / graphS, 2),
    // The random SAE's firing density (real SAEs: well under 1%; denser makes the top-context
    // bookkeeping slower).
    feature_density_mean: round(stats.density.reduce((a, v) => a + v, 0) / stats.density.length, 4),
    target_splice_ratio: 1.5,
    target_feature_stats_s: 60,
    pass: s8 / p8 <= 1.5 && s128 / p128 <= 1.5 && (nTokens < 50_000 ? null : featuresS <= 60),
    load1_before: round(load0, 2),
    load1_after: round(os.loadavg()[0]!, 2),
  };
}
