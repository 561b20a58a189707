/**
 * The peer bench (`npm run bench -- peers`): MechLens beside TransformerLens (HookedTransformer,
 * the oracle's pinned 3.x release) in the same run, on the very same GPT-2-small-shaped random
 * weights: one Hugging Face GPT-2 checkpoint folder (made once by oracle/peer_bench.py under the
 * ignored .bench/, reused), which MechLens reads with its folder loader and TransformerLens with
 * its own config and weight conversion. Both sides: TransformerLens's default processing, 2
 * threads (torch.set_num_threads(2); onnxruntime intra-op 2).
 *
 * Measured, the two sides alternating run by run (this host's speed drifts +-15% from minute to
 * minute), medians:
 *  - forward 8x8 and 1x128 (`model(tokens)`), run_with_cache 8x8;
 *  - the contraction-circuit study's patching suite (8 prompts x 8 tokens: resid_pre / attn_out /
 *    mlp_out by layer x pos, head z / v / pattern by layer x head, single neurons of layers 8
 *    and 10): MechLens's batched sweeps in full, cold (session compilation included);
 *    transformer_lens.patching's functions (neurons with generic_activation_patch) on a sample of
 *    each sweep's cells (its index_df argument), extrapolated to the whole sweep: every cell of
 *    TransformerLens's loop costs one full forward pass, so its time is linear in the cells. The
 *    sampled cells' values of the two sides are compared too;
 *  - training steps/s of the no-positional-embedding experiment's config (2 layers, d_model 64,
 *    1 head, batch 256 x 50, W_pos zeroed and frozen) with torch AdamW + clip_grad_norm_ +
 *    LambdaLR, against MechLens's trainer;
 *  - peak RSS of each process.
 * Targets (2 cores): forward and run_with_cache ratio (MechLens / TransformerLens) <= 1.0; the
 * patching suite >= 5x faster than TransformerLens's patching functions; training speedup >= 1.0.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { HookedTransformer } from '../src/engine/model/hookedTransformer.js';
import { loadModelFolder } from '../src/engine/model/load.js';
import { applyProcessing } from '../src/engine/weights/process.js';
import { logitDiffMetric, normalizedMetric, runPatchSweep, sweepLayout, type PatchCell } from '../src/engine/analysis/patching.js';
import { noPositionConfig, Trainer } from '../src/engine/training/trainer.js';
import { randomTokens } from './randomModel.js';
import { CONTRACTION_ANSWERS, CONTRACTION_TOKENS, SWEEPS } from './experiments.js';
import { BENCH_DIR, findOraclePython, makeCheckpoint, median, nodePeakRss, PyPeer, round } from './pyPeer.js';

/** GPT-2 small's shape (124M parameters, tied unembedding), as transformers' GPT2Config fields. */
const GPT2_SMALL_HF = { model_type: 'gpt2', n_layer: 12, n_embd: 768, n_head: 12, n_positions: 1024, vocab_size: 50257, activation_function: 'gelu_new', tie_word_embeddings: true };

/** Cells of TransformerLens's loop timed per sweep (spread evenly over layers and positions/heads/neurons). */
const TL_SAMPLE_CELLS = Number(process.env['PEERS_TL_CELLS'] ?? 12);

/** [layer, pos | head | neuron]: a cell as a row of TransformerLens's index_df. */
function tlIndex(c: PatchCell): [number, number] {
  const s = c.select as Record<string, readonly number[] | undefined>;
  const x = s['pos']?.[0] ?? s['head_index']?.[0] ?? s['d_mlp']?.[0];
  if (x === undefined) throw new Error(`peers bench: cannot map cell ${JSON.stringify(c)} to TransformerLens's index`);
  return [c.layer, x];
}

function spread<T>(xs: readonly T[], n: number): T[] {
  if (n >= xs.length) return [...xs];
  return Array.from({ length: n }, (_, k) => xs[Math.round((k * (xs.length - 1)) / (n - 1))]!);
}

const nums = (a: Record<string, unknown>, k: string): number[] => a[k] as number[];

export async function benchPeers(): Promise<Record<string, unknown>> {
  const py = findOraclePython();
  if ('skip' in py) return { bench: 'peers', skipped: py.skip, pass: null };
  const load1Start = os.loadavg()[0]!;
  const made = makeCheckpoint(py.python, GPT2_SMALL_HF, path.join(BENCH_DIR, 'peers-gpt2-small'), ['float32'], 1);
  const folder = path.join(BENCH_DIR, 'peers-gpt2-small', 'float32');

  const tl = new PyPeer(py.python);
  const hello = await tl.ready;
  const out: Record<string, unknown> = {
    bench: 'peers',
    model: 'gpt2-small-shaped random HF checkpoint (124M params, tied unembedding, transformers init, seed 1), processing default on both sides',
    checkpoint: path.relative(process.cwd(), folder),
    checkpoint_made: (made['made'] as string[]).length > 0,
    transformer_lens_version: hello['transformer_lens_version'],
    torch_version: hello['torch_version'],
    torch_threads: hello['threads'],
    onnxruntime_threads: 2,
  };
  let model: HookedTransformer | null = null;
  try {
    // -- load: the same folder on both sides -----------------------------------------------------
    let t0 = performance.now();
    const loaded = loadModelFolder(folder);
    const { cfg, params } = applyProcessing(loaded.cfg, loaded.params, 'default');
    model = new HookedTransformer(cfg, params, 'default', folder, { device: 'cpu', threads: 2 });
    await model.forward([[1, 2, 3, 4]]);
    out['mechlens_load_to_first_result_ms'] = round(performance.now() - t0);
    const tlLoad = await tl.request('load', { folder, processing: 'default', first_tokens: [[1, 2, 3, 4]] });
    out['transformer_lens_load_to_first_result_ms'] = round(tlLoad['load_to_first_result_ms'] as number);

    // -- forward / run_with_cache, alternating ---------------------------------------------------
    const tok8 = randomTokens(8, 8, cfg.d_vocab);
    const tok128 = randomTokens(1, 128, cfg.d_vocab);
    const m = model;
    const pairs: [string, () => Promise<unknown>, string, number[][], number][] = [
      ['forward_8x8', () => m.forward(tok8), 'forward', tok8, 15],
      ['forward_1x128', () => m.forward(tok128), 'forward', tok128, 9],
      ['run_with_cache_8x8', () => m.runWithCache(tok8), 'run_with_cache', tok8, 15],
    ];
    const pass: Record<string, boolean> = {};
    for (const [name, ml, cmd, tokens, reps] of pairs) {
      const mlMs: number[] = [];
      const tlMs: number[] = [];
      for (let i = 0; i < reps + 2; i++) {
        t0 = performance.now();
        await ml();
        const a = performance.now() - t0;
        const b = nums(await tl.request(cmd, { tokens, reps: 1 }), 'ms')[0]!;
        if (i >= 2) { mlMs.push(a); tlMs.push(b); }
      }
      const ratio = median(mlMs) / median(tlMs);
      out[`mechlens_${name}_ms`] = round(median(mlMs));
      out[`transformer_lens_${name}_ms`] = round(median(tlMs));
      out[`${name}_ratio`] = round(ratio, 3);
      // Spread of the per-pair ratio (run i of each side), to show the host's noise.
      const per = mlMs.map((x, i) => x / tlMs[i]!).sort((x, y) => x - y);
      out[`${name}_ratio_range`] = [round(per[0]!, 3), round(per.at(-1)!, 3)];
      pass[`${name}_ratio<=1.0`] = ratio <= 1.0;
    }

    // -- the contraction-circuit patching suite ------------------------------------------------
    const clean = CONTRACTION_TOKENS;
    const corrupted = CONTRACTION_TOKENS.map((_, i) => CONTRACTION_TOKENS[i % 2 === 0 ? i + 1 : i - 1]!);
    const ld = logitDiffMetric(CONTRACTION_ANSWERS);
    const metric = normalizedMetric(ld, ld(await m.forward(clean)), ld(await m.forward(corrupted)));
    await tl.request('patch_setup', { clean, corrupted, answers: CONTRACTION_ANSWERS });
    let mlTotal = 0;
    let tlTotal = 0;
    let worst = 0;
    const sweeps: Record<string, unknown> = {};
    for (const s of SWEEPS) {
      t0 = performance.now();
      const r = await runPatchSweep(m, clean, corrupted, metric, s.spec);
      const mlMs = performance.now() - t0;
      await m.releaseVariants(); // as the experiment runner does between analyses
      const cells = sweepLayout(cfg, 8, s.spec).cells;
      const sample = spread(cells, TL_SAMPLE_CELLS);
      const a = await tl.request('patch_cells', { sweep: s.name, cells: sample.map(tlIndex) });
      const perCell = median(nums(a, 'ms'));
      const tlEst = perCell * cells.length;
      nums(a, 'values').forEach((v, k) => { worst = Math.max(worst, Math.abs(v - r.values[sample[k]!.index]!)); });
      sweeps[s.name] = { cells: cells.length, mechlens_ms: round(mlMs), transformer_lens_cells_timed: sample.length, transformer_lens_per_cell_ms_median: round(perCell), transformer_lens_estimated_ms: round(tlEst), speedup: round(tlEst / mlMs, 2) };
      mlTotal += mlMs;
      tlTotal += tlEst;
    }
    const patchSpeedup = tlTotal / mlTotal;
    out['patching_suite_mechlens_s'] = round(mlTotal / 1000, 2);
    out['patching_suite_transformer_lens_estimated_s'] = round(tlTotal / 1000, 1);
    out['patching_suite_speedup'] = round(patchSpeedup, 2);
    out['patching_suite_note'] = `MechLens: every cell of every sweep, batched, cold (session compilation included). TransformerLens: transformer_lens.patching's functions (neurons: generic_activation_patch with a one-neuron setter on hook_post) timed one call per cell (a one-row index_df) on ${TL_SAMPLE_CELLS} cells per sweep spread over its layers; the median cell time times the sweep's cells estimates the sweep (its loop runs one full forward pass per cell).`;
    out['patching_sampled_cells_max_abs_diff'] = worst;
    out['patching_sweeps'] = sweeps;
    pass['patching_suite_speedup>=5'] = patchSpeedup >= 5;
    pass['patching_values_agree(<=1e-3)'] = worst <= 1e-3;
    await m.dispose();
    model = null;

    // -- training: the no-positional-embedding experiment --------------------------------------
    const trainer = await Trainer.create(noPositionConfig({ max_steps: 1000 }), { threads: 2 });
    await tl.request('train_setup', { seed: 123 });
    const mlSteps: number[] = [];
    const tlSteps: number[] = [];
    try {
      for (let round_ = 0; round_ < 5; round_++) {
        const n = 8;
        const mine: number[] = [];
        for (let i = 0; i < n; i++) mine.push((await trainer.trainStep()).stepMs);
        const theirs = nums(await tl.request('train_steps', { steps: n }), 'ms');
        if (round_ > 0) { mlSteps.push(...mine); tlSteps.push(...theirs); } // round 0 warms up
      }
    } finally {
      await trainer.dispose();
    }
    const mlStep = median(mlSteps);
    const tlStep = median(tlSteps);
    out['mechlens_train_steps_per_s'] = round(1000 / mlStep, 2);
    out['transformer_lens_train_steps_per_s'] = round(1000 / tlStep, 2);
    out['mechlens_train_step_ms'] = round(mlStep);
    out['transformer_lens_train_step_ms'] = round(tlStep);
    out['training_speedup'] = round(tlStep / mlStep, 3);
    pass['training_speedup>=1.0'] = tlStep / mlStep >= 1.0;

    // -- memory --------------------------------------------------------------------------------
    const rss = await tl.request('rss');
    out['mechlens_peak_rss_mb'] = round(nodePeakRss() / 1e6);
    out['transformer_lens_peak_rss_mb'] = round((rss['rss_peak'] as number) / 1e6);
    out['load1_start'] = round(load1Start, 2);
    out['load1_end'] = round(os.loadavg()[0]!, 2);
    out['targets'] = { forward_and_run_with_cache_ratio_max: 1.0, patching_suite_speedup_min: 5, training_speedup_min: 1.0 };
    out['failed'] = Object.entries(pass).filter(([, ok]) => !ok).map(([k]) => k);
    out['pass'] = Object.values(pass).every(Boolean);
    return out;
  } finally {
    await model?.dispose();
    await tl.close();
  }
}

// `node --import tsx bench/peers.ts` runs this group alone.
if (require.main === module) {
  void benchPeers().then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
