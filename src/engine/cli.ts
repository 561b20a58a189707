/**
 * `mechlens`: the engine headless, for scripts and tests.
 *
 *   mechlens cache   --model DIR|ID --tokens-json FILE [--processing MODE] [--hooks all|NAME,...] --out FILE.safetensors
 *   mechlens analyze --model DIR|ID --spec FILE [--processing MODE] --out FILE.json
 *   mechlens info    --model DIR|ID [--processing MODE]
 *   mechlens run     FILE.experiment.json [--out DIR] [--root DIR] [--model DIR|ID] [--processing MODE] [--strict]
 *   mechlens report  RUN_DIR|run.json|FILE.experiment.json --out report.html
 *
 * Any failure prints one line `mechlens: <what is wrong and how to fix it>` to stderr and exits
 * with status 1 (2 for usage errors); outputs are written atomically, so a failed run never leaves
 * a partial file behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoadedEngine } from './engine.js';
import { PROCESSING_MODES, type Processing } from './model/params.js';
import { writeSafetensors } from './model/safetensors.js';
import { allHooks, requireHook, type OutputName } from './hooks/hooks.js';
import type { F32 } from './tensor/tensor.js';
import type { Device } from './backends/onnx/runtime.js';
import { cmdReport, cmdRun, DiagnosticsError, ExpectationsError, InterruptedError } from './experiments/commands.js';

class UsageError extends Error {}

const USAGE = `usage:
  mechlens cache   --model DIR|HF_ID --tokens-json FILE [--processing none|default|default+refactor] [--hooks all|NAME,...] --out FILE.safetensors
  mechlens analyze --model DIR|HF_ID --spec FILE [--processing none|default|default+refactor] --out FILE.json
  mechlens info    --model DIR|HF_ID [--processing ...]
  mechlens run     FILE.experiment.json [--out RUN_DIR] [--root DIR] [--model DIR|HF_ID] [--processing ...] [--strict] [--memory-budget MB]
  mechlens run     --resume RUN_DIR      (finish a killed or interrupted run: only the missing analyses run)
  mechlens report  RUN_DIR|run.json|FILE.experiment.json --out report.html
options: --device auto|cpu|cuda (default cpu), --offline (never download),
         --root DIR (files an experiment names must lie inside it; default: the experiment's folder),
         --memory-budget MB (memory one analysis may use; default half the free memory)`;

type Flags = Record<string, string | true>;

/** Commands that take one positional argument (a file or folder) before their options. */
const POSITIONAL = new Set(['run', 'report']);

function parseArgs(argv: string[]): { cmd: string; flags: Flags; positional: string[] } {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h') throw new UsageError('no command given');
  const flags: Flags = {};
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--') && POSITIONAL.has(cmd) && positional.length === 0) {
      positional.push(a);
      continue;
    }
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(a)}`);
    const eq = a.indexOf('=');
    if (eq > 0) flags[a.slice(2, eq)] = a.slice(eq + 1);
    else if (a === '--offline' || a === '--strict') flags[a.slice(2)] = true;
    else {
      const v = rest[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`option ${a} needs a value`);
      flags[a.slice(2)] = v;
      i++;
    }
  }
  return { cmd, flags, positional };
}

function need(flags: Flags, name: string): string {
  const v = flags[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`missing --${name}`);
  return v;
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** [[id, ...], ...] or {"tokens": [[...]]}; ids must be integers. */
function parseTokenGrid(v: unknown, what: string): number[][] {
  const grid = Array.isArray(v) ? v : typeof v === 'object' && v !== null ? (v as { tokens?: unknown }).tokens : undefined;
  if (!Array.isArray(grid) || grid.length === 0 || !grid.every((r) => Array.isArray(r))) {
    throw new Error(`${what} must be a non-empty array of token-id arrays ([[0, 7, 40], ...]) or {"tokens": [[...]]}`);
  }
  grid.forEach((row: unknown[], b) =>
    row.forEach((t, p) => {
      if (!Number.isInteger(t)) throw new Error(`${what}: element [${b}][${p}] is ${JSON.stringify(t)}, not an integer token id`);
    }),
  );
  return grid as number[][];
}

function processingOf(flags: Flags): Processing {
  const p = (flags['processing'] as string | undefined) ?? 'default';
  if (!PROCESSING_MODES.includes(p as Processing)) throw new UsageError(`--processing must be one of ${PROCESSING_MODES.join(', ')}, got ${JSON.stringify(p)}`);
  return p as Processing;
}

function deviceOf(flags: Flags): Device {
  const d = (flags['device'] as string | undefined) ?? 'cpu';
  if (!['auto', 'cpu', 'cuda'].includes(d)) throw new UsageError(`--device must be auto, cpu or cuda, got ${JSON.stringify(d)}`);
  return d as Device;
}

function memoryBudgetOf(flags: Flags): number | undefined {
  const v = flags['memory-budget'];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isFinite(n) || n <= 0) throw new UsageError(`--memory-budget must be a number of megabytes above 0, got ${JSON.stringify(v)}`);
  return n;
}

function checkOutDir(out: string): void {
  const dir = path.dirname(path.resolve(out));
  if (!fs.existsSync(dir)) throw new Error(`output folder ${dir} does not exist`);
}

/** Writes text atomically (temp file + rename). */
function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    try { fs.unlinkSync(tmp); } catch { /* nothing to remove */ }
    throw new Error(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

async function load(flags: Flags): Promise<LoadedEngine> {
  return LoadedEngine.load(need(flags, 'model'), { processing: processingOf(flags), device: deviceOf(flags), allowDownload: flags['offline'] !== true });
}

async function cmdCache(flags: Flags): Promise<void> {
  const out = need(flags, 'out');
  const tokens = parseTokenGrid(readJson(need(flags, 'tokens-json'), 'tokens file'), 'tokens file');
  checkOutDir(out);
  const eng = await load(flags);
  try {
    const hooksArg = (flags['hooks'] as string | undefined) ?? 'all';
    // `all` here is every hook point, hook_result included (runWithCache's 'all' follows
    // TransformerLens's run_with_cache, which leaves hook_result out unless use_attn_result).
    const names: OutputName[] = hooksArg === 'all' ? allHooks(eng.model.cfg) : hooksArg.split(',').map((s) => s.trim()).filter(Boolean).map((n) => requireHook(n, eng.model.cfg).name);
    const r = await eng.model.runWithCache(tokens, { names });
    const tensors = new Map<string, F32>();
    tensors.set('logits', r.logits!);
    for (const [k, v] of r.cache) tensors.set(k, v);
    writeSafetensors(out, tensors, { processing: eng.model.processing, model: eng.model.source });
  } finally {
    await eng.dispose();
  }
}

async function cmdAnalyze(flags: Flags): Promise<void> {
  const out = need(flags, 'out');
  const spec = readJson(need(flags, 'spec'), 'spec file');
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new Error('spec file must be a JSON object {tokens, corrupted_tokens, answers}');
  const s = spec as Record<string, unknown>;
  const tokens = parseTokenGrid(s['tokens'], 'spec.tokens');
  const corrupted = parseTokenGrid(s['corrupted_tokens'], 'spec.corrupted_tokens');
  const answers = s['answers'];
  if (!Array.isArray(answers)) throw new Error('spec.answers must be an array of [correct, wrong] token-id pairs, one per prompt');
  checkOutDir(out);
  const eng = await load(flags);
  try {
    const res = await eng.analyze(tokens, corrupted, answers as [number, number][]);
    writeFileAtomic(out, JSON.stringify(res, null, 1) + '\n');
  } finally {
    await eng.dispose();
  }
}

async function cmdInfo(flags: Flags, io: CliIo): Promise<void> {
  const eng = await load(flags);
  try {
    const info = eng.info();
    for (const w of info.warnings ?? []) process.stderr.write(`mechlens: warning: ${w}\n`);
    io.out(JSON.stringify({ ...info, hooks: info.hooks.length }, null, 1) + '\n');
  } finally {
    await eng.dispose();
  }
}

/** Where a command's results go (tests capture them without touching process.stdout). */
export interface CliIo {
  out(text: string): void;
}

export async function main(argv: string[], io: CliIo = { out: (t) => process.stdout.write(t) }): Promise<number> {
  try {
    const { cmd, flags, positional } = parseArgs(argv);
    switch (cmd) {
      case 'cache': await cmdCache(flags); break;
      case 'analyze': await cmdAnalyze(flags); break;
      case 'info': await cmdInfo(flags, io); break;
      case 'run':
      case 'report': {
        const input = positional[0];
        const resume = cmd === 'run' && typeof flags['resume'] === 'string' ? flags['resume'] : undefined;
        if (!input && resume === undefined) throw new UsageError(cmd === 'run' ? 'missing the experiment file: mechlens run FILE.experiment.json' : 'missing the run: mechlens report RUN_DIR --out report.html');
        const opts = {
          out: typeof flags['out'] === 'string' ? flags['out'] : undefined,
          root: typeof flags['root'] === 'string' ? flags['root'] : undefined,
          model: typeof flags['model'] === 'string' ? flags['model'] : undefined,
          processing: flags['processing'] !== undefined ? processingOf(flags) : undefined,
          device: flags['device'] !== undefined ? deviceOf(flags) : undefined,
          offline: flags['offline'] === true,
          strict: flags['strict'] === true,
          memoryBudgetMB: memoryBudgetOf(flags),
        };
        if (cmd === 'run') io.out((await cmdRun(input, { ...opts, resume })) + '\n');
        else await cmdReport(input!, need(flags, 'out'), { ...opts, out: undefined });
        break;
      }
      default: throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
    }
    return 0;
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    process.stderr.write(`mechlens: ${msg}\n`);
    if (e instanceof UsageError) {
      process.stderr.write(USAGE + '\n');
      return 2;
    }
    // Diagnostics were printed as file:line:col lines before this summary.
    if (e instanceof DiagnosticsError) return 1;
    if (e instanceof ExpectationsError) return 3;
    if (e instanceof InterruptedError) return 130;
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
