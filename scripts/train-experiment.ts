/**
 * Trains a `"kind": "train"` experiment file headless, through the engine worker's own requests
 * (engine/training/start, then engine/training/analyse) — what the editor's Train and Analyse
 * lenses do, without VS Code. For long runs (the no-positional-embedding experiment) and for checking the numbers.
 *
 *   node --import tsx scripts/train-experiment.ts FILE.experiment.json [--checkpoints DIR] [--resume]
 *        [--until N] [--no-analyse] [--analyse-only] [--out results.json] [--threads N]
 *
 * Prints progress every 100 steps and, after the analyses, the loss and every hook's ablated loss.
 *
 * A `"kind": "train_sae"` file trains its SAE through engine/sae/train instead (--output DIR
 * overrides the file's SAE folder, --threads N, --out result.json), printing each snapshot and
 * the saved SAE's explained variance, L0 and never-firing features on the held-out tokens.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineClient } from '../src/engine/worker/client.js';
import { EngineRequests, type TrainAnalyseResult } from '../src/protocol/engine.js';
import { formatDiagnostic, hasErrors, parseExperiment } from '../src/engine/experiments/parse.js';
import type { ResolvedSaeTrainExperiment } from '../src/engine/experiments/saeTrainParse.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const flag = (name: string) => process.argv.includes(name);

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file || file.startsWith('--')) throw new Error('usage: train-experiment.ts FILE.experiment.json [--checkpoints DIR] [--resume] [--until N] [--no-analyse] [--analyse-only] [--out FILE] [--threads N]');
  const parsed = parseExperiment(fs.readFileSync(file, 'utf8'), file);
  for (const d of parsed.diagnostics) console.error(formatDiagnostic(d));
  if (!hasErrors(parsed.diagnostics) && parsed.trainSae) return trainSae(parsed.trainSae);
  if (hasErrors(parsed.diagnostics) || !parsed.train) throw new Error(`${file} is not a valid train or train_sae experiment`);
  const x = parsed.train;
  const saveDir = path.resolve(arg('--checkpoints') ?? x.checkpoints.dir);
  const threads = arg('--threads') !== undefined ? Number(arg('--threads')) : undefined;
  const root = path.join(__dirname, '..');
  const client = new EngineClient({ workerPath: path.join(root, 'test', 'helpers', 'tsWorker.cjs'), workerData: { entry: path.join(root, 'src', 'engine', 'worker', 'engineWorker.ts') } });
  const stop = new AbortController();
  process.on('SIGINT', () => {
    console.error('stopping after this step (checkpointing)…');
    stop.abort();
  });
  try {
    if (!flag('--analyse-only')) {
      const t0 = Date.now();
      const until = arg('--until');
      const r = await client.requestWithProgress(
        EngineRequests.trainStart,
        { config: x.config, saveDir, resume: flag('--resume'), ...(until ? { untilStep: Number(until) } : {}), ...(threads !== undefined ? { threads } : {}) },
        (p) => {
          const t = p.training;
          if (!t) return;
          if (t.kind === 'started') console.error(`${t.resumedFrom ? `resuming ${t.resumedFrom} at step ${t.step}` : 'training from scratch'}: ${t.params} parameters, ${t.tokensPerStep} tokens per step, ${t.maxSteps} steps${t.notes.length ? `\n${t.notes.join('\n')}` : ''}`);
          if (t.kind === 'step' && (t.step % 100 === 0 || t.step === t.maxSteps || t.step === 1)) {
            console.error(`step ${t.step}/${t.maxSteps}  loss ${t.loss.toFixed(4)}  lr ${t.lr.toExponential(2)}  |g| ${t.gradNorm.toFixed(3)}  ${(1000 / t.stepMs).toFixed(2)} steps/s  ${Math.round(t.tokensPerSec)} tok/s  ETA ${Math.round(t.etaSec)} s`);
          }
          if (t.kind === 'checkpoint') console.error(`checkpoint ${t.path}`);
        },
        stop.signal,
      );
      console.error(`${r.status} at step ${r.step}/${r.maxSteps} in ${((Date.now() - t0) / 1000).toFixed(0)} s; checkpoint ${r.checkpoint}; last loss ${r.losses[r.losses.length - 1]?.toFixed(5)}`);
      if (r.status !== 'completed' || flag('--no-analyse')) return;
    }
    const t1 = Date.now();
    const a: TrainAnalyseResult = await client.requestWithProgress(
      EngineRequests.trainAnalyse,
      { checkpoint: saveDir, task: x.config.task, analyses: x.analyses.map((y) => y.spec), seed: x.analysisSeed, ...(threads !== undefined ? { threads } : {}) },
      (p) => console.error(`  [${Math.round((p.fraction ?? 0) * 100)}%] ${p.message}`),
    );
    console.error(`analyses of ${a.checkpoint} (step ${a.step}) in ${((Date.now() - t1) / 1000).toFixed(0)} s`);
    for (const r of a.results) {
      if (r.kind === 'loss') console.log(`${r.title}: loss ${r.loss.toFixed(6)}`);
      if (r.kind === 'fold_ln') console.log(`${r.title}: ${r.normalization}, steps ${r.steps.join(', ')}, max |Δ log p| ${r.maxLogProbDiff.toExponential(2)}, |W_pos| ${r.wPosNorm}`);
      if (r.kind === 'mlp_activations') console.log(`${r.title}: firing rate ${r.firingRate.toFixed(4)}`);
      if (r.kind === 'attention_patterns') r.patterns.forEach((m, l) => console.log(`${r.title} L${l}: mean attention to the previous position ${(m.slice(1).reduce((s, row, q) => s + row[q]!, 0) / (m.length - 1)).toFixed(4)}, to itself ${(m.reduce((s, row, q) => s + row[q]!, 0) / m.length).toFixed(4)}, to BOS ${(m.reduce((s, row) => s + row[0]!, 0) / m.length).toFixed(4)}`));
      if (r.kind === 'ablation') {
        console.log(`${r.title}: baseline ${r.baseline.toFixed(6)}`);
        r.hooks.forEach((h, i) => console.log(`  ${h.padEnd(32)} ${r.losses[i]!.toFixed(6)}`));
      }
    }
    const out = arg('--out');
    if (out) {
      fs.writeFileSync(out, JSON.stringify(a));
      console.error(`wrote ${out}`);
    }
  } finally {
    await client.dispose();
  }
}

/** A "train_sae" file: engine/sae/train, a line per snapshot, then the held-out measurement. */
async function trainSae(x: ResolvedSaeTrainExperiment): Promise<void> {
  const root = path.join(__dirname, '..');
  const threads = arg('--threads') !== undefined ? Number(arg('--threads')) : undefined;
  const output = arg('--output');
  const config = { ...x.payload, ...(output ? { output: path.resolve(output) } : {}) };
  const client = new EngineClient({ workerPath: path.join(root, 'test', 'helpers', 'tsWorker.cjs'), workerData: { entry: path.join(root, 'src', 'engine', 'worker', 'engineWorker.ts') } });
  const stop = new AbortController();
  process.on('SIGINT', () => {
    console.error('stopping after this step (saving the SAE)…');
    stop.abort();
  });
  try {
    const r = await client.requestWithProgress(EngineRequests.saeTrain, { config, ...(threads !== undefined ? { threads } : {}) }, (p) => {
      const s = p.saeTraining;
      if (!s) return;
      if (s.kind === 'started') console.error(`training a ${config.architecture} SAE on ${config.hook}: d_in ${s.d_in}, d_sae ${s.d_sae}, ${s.trainTokens} training tokens of ${s.corpus} (${s.evalTokens} held out), ${s.steps} steps`);
      if (s.kind === 'snapshot') console.error(`step ${s.step}/${s.steps}  mse ${s.mse.toFixed(4)}  ${config.architecture === 'topk' ? 'aux' : 'l1'} ${s.auxLoss.toFixed(4)}  L0 ${s.l0.toFixed(2)}  EV ${s.explainedVariance.toFixed(4)}  dead ${s.deadFeatures}  ${Math.round(s.tokensPerSec)} tok/s  ETA ${Math.round(s.etaSec)} s`);
      if (s.kind === 'saved') console.error(`saved ${s.path}`);
    }, stop.signal);
    const e = r.evaluation;
    console.log(`${r.status} at step ${r.step}/${r.steps} (activations ${r.activationSec.toFixed(1)} s, training ${r.trainSec.toFixed(1)} s); SAE ${r.output}`);
    console.log(`held-out ${e.tokens} tokens: explained variance ${e.explainedVariance.toFixed(4)}, L0 ${e.l0.toFixed(2)}, mse ${e.mse.toFixed(4)}, features never firing ${e.neverFired} / ${r.d_sae}`);
    const out = arg('--out');
    if (out) fs.writeFileSync(out, JSON.stringify(r));
  } finally {
    await client.dispose();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
