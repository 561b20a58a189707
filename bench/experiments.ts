/**
 * Patching benchmark: the contraction-circuit study's Experiment 1 patching workload on the GPT-2-small-shaped random
 * model (124M parameters), with the original notebook's 8 contraction prompts x 8 tokens (their GPT-2 token
 * ids) and answer pairs:
 *   resid_pre / attn_out / mlp_out by layer x position (12 x 8 cells each),
 *   head z / v / pattern by layer x head (12 x 12 cells each),
 *   single neurons of MLP layers 8 and 10 (3072 cells each).
 * Each batched sweep is timed once, cold (session compilation included), as a user runs it. The
 * naive loop (one full forward with full logits per cell, TransformerLens's
 * generic_activation_patch) is timed on a sample of cells of every sweep in the same process,
 * and its total is extrapolated per sweep; the sampled cells are also compared with the batched
 * values. Targets (2-core machine): >= 8x the naive loop overall, every layer x position or
 * layer x head sweep <= 10 s, both neuron sweeps together <= 120 s.
 */
import * as os from 'node:os';
import { HookedTransformer } from '../src/engine/model/hookedTransformer.js';
import { applyProcessing } from '../src/engine/weights/process.js';
import { logitDiffMetric, naivePatchCell, normalizedMetric, runPatchSweep, sweepLayout, type PatchSweepSpec } from '../src/engine/analysis/patching.js';
import { gpt2SmallConfig, randomParams } from './randomModel.js';

/** the contraction-circuit study Experiment 1: GPT-2 tokens of the ('re, they) prompts, as the notebook prints them. */
export const CONTRACTION_TOKENS = [
  [50256, 1135, 821, 5742, 674, 1545, 618, 484],
  [50256, 1135, 389, 5742, 674, 1545, 618, 484],
  [50256, 2990, 821, 6600, 8073, 1978, 981, 484],
  [50256, 2990, 389, 6600, 8073, 1978, 981, 484],
  [50256, 1135, 821, 5059, 18529, 593, 290, 484],
  [50256, 1135, 389, 5059, 18529, 593, 290, 484],
  [50256, 2990, 821, 11029, 1165, 2582, 290, 484],
  [50256, 2990, 389, 11029, 1165, 2582, 290, 484],
];
export const CONTRACTION_ANSWERS: [number, number][] = CONTRACTION_TOKENS.map((_, i) => (i % 2 === 0 ? [821, 389] : [389, 821]));

/** The study's patching suite, sweep by sweep (shared with the TransformerLens peer bench). */
export const SWEEPS: { name: string; spec: PatchSweepSpec }[] = [
  { name: 'resid_pre', spec: { kind: 'layer_pos', hook: 'resid_pre' } },
  { name: 'attn_out', spec: { kind: 'layer_pos', hook: 'attn_out' } },
  { name: 'mlp_out', spec: { kind: 'layer_pos', hook: 'mlp_out' } },
  { name: 'head_z', spec: { kind: 'head', activation: 'z' } },
  { name: 'head_v', spec: { kind: 'head', activation: 'v' } },
  { name: 'head_pattern', spec: { kind: 'head', activation: 'pattern' } },
  { name: 'neurons_L8', spec: { kind: 'neuron', layer: 8 } },
  { name: 'neurons_L10', spec: { kind: 'neuron', layer: 10 } },
];

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

export async function benchExperiments(): Promise<Record<string, number>> {
  const cfg0 = gpt2SmallConfig();
  const { cfg, params } = applyProcessing(cfg0, randomParams(cfg0), 'default');
  const model = new HookedTransformer(cfg, params, 'default', 'random', { device: 'cpu' });
  const out: Record<string, number> = { load_avg_1m_start: round(os.loadavg()[0]!, 2), cpus: os.cpus().length };
  try {
    const clean = CONTRACTION_TOKENS;
    const corrupted = CONTRACTION_TOKENS.map((_, i) => CONTRACTION_TOKENS[i % 2 === 0 ? i + 1 : i - 1]!);
    const ld = logitDiffMetric(CONTRACTION_ANSWERS);
    const metric = normalizedMetric(ld, ld(await model.forward(clean)), ld(await model.forward(corrupted)));

    let batchedTotal = 0;
    let naiveTotal = 0;
    let worstDiff = 0;
    let peakRss = process.memoryUsage().rss;
    const cleanCache = (await model.run(clean, { names: 'all', noLogits: true })).cache;
    for (const s of SWEEPS) {
      const t0 = performance.now();
      const r = await runPatchSweep(model, clean, corrupted, metric, s.spec);
      const ms = performance.now() - t0;
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      // Naive loop on a sample of cells spread over the sweep (first, middle, last layer), each
      // run once untimed (its session variant compiles) and then timed.
      const cells = sweepLayout(cfg, 8, s.spec).cells;
      const sample = [cells[0]!, cells[Math.floor(cells.length / 2)]!, cells[cells.length - 1]!];
      let naiveMs = 0;
      for (const c of sample) {
        await naivePatchCell(model, cleanCache, corrupted, metric, c);
        const t1 = performance.now();
        const v = await naivePatchCell(model, cleanCache, corrupted, metric, c);
        naiveMs += performance.now() - t1;
        worstDiff = Math.max(worstDiff, Math.abs(v - r.values[c.index]!));
      }
      // As the experiment runner does between analyses: drop this sweep's session variants.
      await model.releaseVariants();
      const naivePerCell = naiveMs / sample.length;
      const naiveEst = naivePerCell * cells.length;
      out[`${s.name}_ms`] = round(ms);
      out[`${s.name}_cells`] = cells.length;
      out[`${s.name}_naive_per_cell_ms`] = round(naivePerCell);
      out[`${s.name}_speedup`] = round(naiveEst / ms, 2);
      batchedTotal += ms;
      naiveTotal += naiveEst;
    }
    const gridMax = Math.max(...SWEEPS.filter((s) => s.spec.kind !== 'neuron').map((s) => out[`${s.name}_ms`]!));
    const neurons = out['neurons_L8_ms']! + out['neurons_L10_ms']!;
    out['total_batched_s'] = round(batchedTotal / 1000, 2);
    out['total_naive_estimated_s'] = round(naiveTotal / 1000, 1);
    out['overall_speedup'] = round(naiveTotal / batchedTotal, 2);
    out['max_grid_sweep_s'] = round(gridMax / 1000, 2);
    out['neuron_sweeps_s'] = round(neurons / 1000, 2);
    out['max_abs_diff_vs_naive'] = worstDiff;
    out['peak_rss_mb'] = round(peakRss / 1e6);
    out['load_avg_1m_end'] = round(os.loadavg()[0]!, 2);
    out['target_overall_speedup'] = 8;
    out['target_grid_sweep_s'] = 10;
    out['target_neuron_sweeps_s'] = 120;
    out['pass'] = out['overall_speedup']! >= 8 && gridMax <= 10_000 && neurons <= 120_000 && worstDiff <= 1e-4 ? 1 : 0;
    return out;
  } finally {
    await model.dispose();
  }
}

// `node --import tsx bench/experiments.ts` runs this benchmark alone.
if (require.main === module) {
  void benchExperiments().then((r) => process.stdout.write(JSON.stringify({ bench: 'experiments', ...r }) + '\n'));
}
