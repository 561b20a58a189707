/**
 * MechLens's side of the scale bench, in a process of its own so that its peak RSS is MechLens's
 * alone: `node --import tsx bench/scaleChild.ts FOLDER REPS` loads the folder as a user's load
 * does (folder loader, TransformerLens's default processing, onnxruntime with 2 threads), times
 * load-to-first-result (a 1x128 forward), then REPS forwards and REPS run_with_cache runs of 1x128
 * alternating, and prints one JSON object.
 */
import { HookedTransformer } from '../src/engine/model/hookedTransformer.js';
import { loadModelFolder } from '../src/engine/model/load.js';
import { applyProcessing } from '../src/engine/weights/process.js';
import { randomTokens } from './randomModel.js';

async function main(): Promise<void> {
  const [folder, repsArg] = process.argv.slice(2);
  if (!folder) throw new Error('usage: scaleChild.ts FOLDER [REPS]');
  const reps = Number(repsArg ?? 3);
  const rssMb = () => Math.round(process.memoryUsage().rss / 1e6);
  const peakMb = () => Math.round((process.resourceUsage().maxRSS * 1024) / 1e6);
  /** RSS now and peak so far (MB) after each stage, to see which one sets the peak. */
  const stages: Record<string, [number, number]> = {};
  const stage = (name: string) => (stages[name] = [rssMb(), peakMb()]);
  const t0 = performance.now();
  const loaded = loadModelFolder(folder);
  const loadMs = performance.now() - t0;
  stage('read');
  const peakAfterRead = peakMb();
  const { cfg, params } = applyProcessing(loaded.cfg, loaded.params, 'default', { consume: true }); // as the engine's load
  stage('processed');
  const model = new HookedTransformer(cfg, params, 'default', folder, { device: 'cpu', threads: 2 });
  const tokens = randomTokens(1, 128, Math.min(cfg.d_vocab, 50257)); // the same ids as the TransformerLens side
  await model.forward(tokens);
  const firstMs = performance.now() - t0;
  stage('first_forward');
  const peakAfterFirst = peakMb();
  const fwd: number[] = [];
  const rwc: number[] = [];
  for (let i = 0; i < reps; i++) {
    let t = performance.now();
    await model.forward(tokens);
    fwd.push(performance.now() - t);
    t = performance.now();
    await model.runWithCache(tokens);
    rwc.push(performance.now() - t);
    stage(`rep${i}`);
  }
  await model.dispose();
  process.stdout.write(
    JSON.stringify({
      read_and_convert_ms: loadMs,
      load_to_first_result_ms: firstMs,
      forward_1x128_ms: fwd,
      run_with_cache_1x128_ms: rwc,
      peak_rss_after_read_mb: peakAfterRead,
      peak_rss_after_first_result_mb: peakAfterFirst,
      peak_rss_mb: peakMb(),
      rss_end_mb: rssMb(),
      stages_rss_and_peak_mb: stages,
    }) + '\n',
  );
}

void main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
