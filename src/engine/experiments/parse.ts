/**
 * Reading an experiment file: JSON syntax, the schema, prompts (inline or from a .prompts file)
 * and the checks that need no model; then, with a loaded model, the checks that need its
 * tokenizer and shape (answers of one token, clean and corrupted prompts of the same length,
 * layers / heads / neurons / hooks that exist). Every problem is a diagnostic with the file and
 * range of the offending text; an experiment with an error is never run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LineIndex, nodeAt, parseJsonWithPositions, JsonSyntaxError, toValue, type JsonNode, type JsonPath, type Range } from './json.js';
import { analysisExperimentSchema, ANSWER_KINDS, PATCHING_KINDS, type AnalysisSpec, type ExperimentFile, type GroupExpectation, type PromptSource } from './schema.js';
import { validate } from './validate.js';
import type { Diagnostic, Location } from './diagnostics.js';
import { isTrainRoot, resolveTrainExperiment, type ResolvedTrainExperiment } from './trainParse.js';
import { isSaeTrainRoot, resolveSaeTrainExperiment, type ResolvedSaeTrainExperiment } from './saeTrainParse.js';
export type { Diagnostic, Location } from './diagnostics.js';
import { confinedReader, readNamedFile, type FileReader, type NamedFiles } from './files.js';
import { parsePromptsFile, splitLines } from '../prompts/promptsFile.js';
import { isMoe, type HookedTransformerConfig } from '../model/config.js';
import { allHooks, parseSaeHook, requireHook } from '../hooks/hooks.js';
import { toSingleToken, toTokens, tokensToStrings, type Tokenizer } from '../model/tokenizer.js';
import type { Processing } from '../model/params.js';
import type { Device } from '../backends/onnx/runtime.js';
import { resolveSaeSpec, type SaeSpecResolution } from './saeRefs.js';
import { checkSaeForModel, type Sae } from '../sae/sae.js';



export interface ResolvedPrompt {
  prompt: string;
  corrupted?: string;
  answer?: string;
  wrong?: string;
  /** Where each field is written (inline in the experiment, or on a line of a .prompts file). */
  at: { prompt: Location; corrupted?: Location; answer?: Location; wrong?: Location };
}

export interface ResolvedGroup {
  /** null for an experiment with a single "prompts" list. */
  name: string | null;
  expect?: GroupExpectation;
  prompts: ResolvedPrompt[];
  at: Location;
}

export interface ResolvedAnalysis {
  index: number;
  spec: AnalysisSpec;
  at: Location;
}

export interface ResolvedExperiment {
  file: string;
  dir: string;
  /** The folder every file the experiment names stays inside (files.ts). */
  root: string;
  spec: ExperimentFile;
  title: string;
  model: { name: string; spec: string; processing: Processing; device: Device; offline: boolean; at: Location };
  prependBos: boolean | undefined;
  metric: 'logit_diff' | 'answer_prob' | 'answer_logprob';
  normalize: boolean;
  groups: ResolvedGroup[];
  analyses: ResolvedAnalysis[];
  /** Where a value of the experiment file is written (path of keys / indices from the root). */
  locate(path: JsonPath): Location;
  /** The SAEs the sae_* analyses name, by their `"sae"` value as written (local folders read, hub ones to fetch). */
  saes: Map<string, Exclude<SaeSpecResolution, { kind: 'error' }>>;
}

export interface ParseResult {
  experiment?: ResolvedExperiment;
  /** Set instead of `experiment` for a `"kind": "train"` file (trainParse.ts). */
  train?: ResolvedTrainExperiment;
  /** Set instead of `experiment` for a `"kind": "train_sae"` file (saeTrainParse.ts). */
  trainSae?: ResolvedSaeTrainExperiment;
  diagnostics: Diagnostic[];
}

export type { FileReader } from './files.js';

/**
 * What an experiment file may ask for (docs/experiments.md, "Limits"): each bound is far above
 * what a study needs and far below what exhausts a 2-core, 24 GB machine. Sizes that depend on the
 * model (tokens beyond n_ctx, hooks it does not have) are checked with the model (checkWithModel).
 */
export const EXPERIMENT_LIMITS = {
  fileChars: 4 * 1024 * 1024,
  analyses: 256,
  groups: 64,
  promptsPerGroup: 4096,
  hooks: 4096,
  samples: 1000,
  batch: 1024,
} as const;

type Where = (p: JsonPath, atKey?: boolean) => Location;

/** The size limits that need no model, each a located error naming the limit and what to do. */
function checkSizes(spec: ExperimentFile, where: Where, err: (loc: Location, message: string, code: string) => void, skip: ReadonlySet<number> = new Set()): void {
  const L = EXPERIMENT_LIMITS;
  if (spec.analyses.length > L.analyses) err(where(['analyses']), `${spec.analyses.length} analyses; an experiment may have at most ${L.analyses}: split it into several files`, 'limit');
  if (spec.groups && spec.groups.length > L.groups) err(where(['groups']), `${spec.groups.length} groups; at most ${L.groups}: split the experiment`, 'limit');
  const inline = (ps: unknown, at: JsonPath) => {
    if (Array.isArray(ps) && ps.length > L.promptsPerGroup) err(where(at), `${ps.length} prompts; a group may have at most ${L.promptsPerGroup}: sample them, or split them into groups`, 'limit');
  };
  inline(spec.prompts, ['prompts']);
  spec.groups?.forEach((g, i) => inline(g.prompts, ['groups', i, 'prompts']));
  spec.analyses.forEach((a, i) => {
    if (skip.has(i)) return;
    if (a.kind === 'ablation' && a.hooks && a.hooks.length > L.hooks) err(where(['analyses', i, 'hooks']), `${a.hooks.length} hooks; at most ${L.hooks} (a model has a few dozen per layer): list the hooks to ablate, or leave "hooks" out for every hook`, 'limit');
    if (a.kind === 'causal_trace' && a.samples !== undefined && a.samples > L.samples) err(where(['analyses', i, 'samples']), `${a.samples} noisy samples; at most ${L.samples} (ROME averages 10)`, 'limit');
    if (a.kind === 'head_scores' && a.batch !== undefined && a.batch > L.batch) err(where(['analyses', i, 'batch']), `a batch of ${a.batch} random sequences; at most ${L.batch} (10 gives stable scores)`, 'limit');
  });
}

export interface ParseOptions {
  /**
   * The folder every file the experiment names must stay inside (the workspace folder in VS Code;
   * `--root` in the CLI). Default: the experiment file's own folder.
   */
  root?: string;
}

const ZERO: Range = { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } };

export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === 'error');
}

/** "file:line:col: error: message" with 1-based line and column, as compilers print. */
export function formatDiagnostic(d: Diagnostic, cwd = process.cwd()): string {
  const rel = path.relative(cwd, d.file) || d.file;
  return `${rel}:${d.range.start.line + 1}:${d.range.start.character + 1}: ${d.severity}: ${d.message}`;
}

/** Parses "L7H11". */
export function parseHead(s: string): { layer: number; head: number } | null {
  const m = /^L(\d+)H(\d+)$/.exec(s);
  return m ? { layer: Number(m[1]), head: Number(m[2]) } : null;
}

/**
 * Parses and statically checks an experiment file's text. `file` is its path (prompts and text
 * files are resolved against its folder and must stay inside `opts.root`: files.ts). `reader`
 * replaces the file system in tests.
 */
export function parseExperiment(text: string, file: string, reader?: FileReader, opts: ParseOptions = {}): ParseResult {
  const absFile = path.resolve(file);
  const dir = path.dirname(absFile);
  const rootDir = path.resolve(opts.root ?? dir);
  const named: NamedFiles = { root: rootDir, dir, reader: reader ?? confinedReader(rootDir) };
  const lines = new LineIndex(text);
  const diagnostics: Diagnostic[] = [];
  if (text.length > EXPERIMENT_LIMITS.fileChars) {
    return { diagnostics: [{ file: absFile, range: lines.range(0, 1), severity: 'error', message: `the experiment file has ${text.length} characters; the limit is ${EXPERIMENT_LIMITS.fileChars}: put long prompt lists in a .prompts file and split the experiment`, code: 'limit' }] };
  }
  let root: JsonNode;
  try {
    root = parseJsonWithPositions(text);
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    return { diagnostics: [{ file: absFile, range: lines.range(e.offset, 1), severity: 'error', message: `JSON syntax: ${e.message}`, code: 'json-syntax' }] };
  }
  const where = (p: JsonPath, atKey = false): Location => {
    const r = nodeAt(root, p);
    if (atKey && r.exact && r.key) return { file: absFile, range: lines.range(r.key.offset, r.key.length) };
    return { file: absFile, range: lines.range(r.node.offset, r.exact || r.node.type !== 'object' ? r.node.length : 1) };
  };
  const err = (loc: Location, message: string, code: string) => diagnostics.push({ ...loc, severity: 'error', message, code });

  // A train experiment has a schema and checks of its own.
  if (isTrainRoot(root)) return resolveTrainExperiment(root, lines, absFile, named);
  if (isSaeTrainRoot(root)) return resolveSaeTrainExperiment(root, lines, absFile, named);
  // Every problem of the file is reported in one pass: an analysis with a schema problem is left
  // out of the checks below (they would only repeat it), the others are still checked, with the
  // model too (experimentCheck). Problems outside the analyses (prompts, model, top-level keys)
  // leave nothing sound to check further.
  const skipped = new Set<number>();
  let unsound = false;
  for (const p of validate(root, analysisExperimentSchema)) {
    err(where(p.path, p.atKey), p.message, 'schema');
    if (p.path[0] === 'analyses' && typeof p.path[1] === 'number') skipped.add(p.path[1]);
    else unsound = true;
  }
  if (unsound) return { diagnostics };
  const spec = toValue(root) as ExperimentFile;
  checkSizes(spec, where, err, skipped);
  if (diagnostics.some((d) => d.code === 'limit')) return { diagnostics };

  // Prompts.
  const errorsBeforePrompts = diagnostics.filter((d) => d.severity === 'error').length;
  const groups: ResolvedGroup[] = [];
  if (spec.prompts && spec.groups) err(where(['groups'], true), 'give either "prompts" or "groups", not both', 'prompts');
  else if (!spec.prompts && !spec.groups) err(where([]), 'missing "prompts" (or "groups"): the experiment needs prompts to run on', 'prompts');
  else if (spec.prompts) {
    const ps = resolvePrompts(spec.prompts, ['prompts'], named, where, diagnostics);
    if (ps) groups.push({ name: null, prompts: ps, at: where(['prompts']) });
  } else {
    const names = new Set<string>();
    spec.groups!.forEach((g, i) => {
      if (names.has(g.name)) err(where(['groups', i, 'name']), `two groups are named ${JSON.stringify(g.name)}; names must differ`, 'groups');
      names.add(g.name);
      const ps = resolvePrompts(g.prompts, ['groups', i, 'prompts'], named, where, diagnostics);
      if (ps) groups.push({ name: g.name, prompts: ps, at: where(['groups', i]), ...(g.expect ? { expect: g.expect } : {}) });
    });
  }
  const promptsSound = diagnostics.filter((d) => d.severity === 'error').length === errorsBeforePrompts;

  const metric = spec.metric ?? 'logit_diff';
  const analyses: ResolvedAnalysis[] = spec.analyses.map((a, index) => ({ index, spec: a, at: where(['analyses', index]) })).filter((a) => !skipped.has(a.index));
  const saes = new Map<string, SaeSpecResolution>() as Map<string, Exclude<SaeSpecResolution, { kind: 'error' }>>;
  spec.saes?.forEach((e, i) => {
    const r = saes.get(e.sae) ?? resolveSaeSpec(named, e.sae);
    if (r.kind === 'error') err(where(['saes', i, 'sae']), r.error, r.code);
    else saes.set(e.sae, r);
  });
  for (const a of analyses) {
    const kindAt = where(['analyses', a.index, 'kind']);
    for (const g of groups) {
      const gname = g.name === null ? '' : ` of group ${JSON.stringify(g.name)}`;
      if (PATCHING_KINDS.has(a.spec.kind)) {
        const missing = g.prompts.findIndex((p) => p.corrupted === undefined);
        if (missing >= 0) err(kindAt, `${a.spec.kind} patches clean activations into corrupted runs, but prompt ${missing + 1}${gname} has no corrupted prompt (write CLEAN => CORRUPTED, or "corrupted": ...)`, 'needs-corrupted');
      }
      const topDla = a.spec.kind === 'attention' && (a.spec.heads === undefined || a.spec.heads === 'top_dla');
      if (ANSWER_KINDS.has(a.spec.kind) || topDla) {
        const needWrong = metric === 'logit_diff' || topDla || ['logit_diff', 'layer_dla', 'head_dla', 'neuron_dla', 'logit_lens'].includes(a.spec.kind);
        const bad = g.prompts.findIndex((p) => p.answer === undefined || (needWrong && p.wrong === undefined));
        if (bad >= 0) {
          err(kindAt, `${a.spec.kind}${topDla ? ' of the top-DLA heads (list "heads" instead to show any)' : ''} needs ${needWrong ? 'an answer and a wrong answer' : 'an answer'} for every prompt, but prompt ${bad + 1}${gname} has ${g.prompts[bad]!.answer === undefined ? 'none' : 'no wrong answer'} (write -> " answer" | " wrong")`, 'needs-answers');
        }
      }
      const idx = 'prompt' in a.spec && !('text' in a.spec && a.spec.text !== undefined) ? a.spec.prompt : undefined;
      if (idx !== undefined && idx >= g.prompts.length) err(where(['analyses', a.index, 'prompt']), `prompt ${idx} does not exist${gname}: there are ${g.prompts.length} prompts (0-based)`, 'range');
    }
    if (a.spec.kind === 'neuron_activations' && a.spec.file !== undefined) {
      const r = readNamedFile(named, a.spec.file, 'the text file');
      if ('error' in r) err(where(['analyses', a.index, 'file']), r.error, r.code);
    }
    if (a.spec.kind === 'sae_attribution' && metric !== 'logit_diff') {
      err(kindAt, `sae_attribution estimates changes of the logit difference; this experiment's metric is ${metric} (set "metric": "logit_diff")`, 'range');
    }
    if (a.spec.kind === 'sae_attribution' && spec.saes?.length) {
      err(kindAt, 'sae_attribution differentiates the model with its own SAE alone, but "saes" splices others into every analysis; move it to an experiment without "saes"', 'range');
    }
    if (a.spec.kind === 'sae_features' || a.spec.kind === 'sae_ablate' || a.spec.kind === 'sae_steer' || a.spec.kind === 'sae_attribution') {
      const r = saes.get(a.spec.sae) ?? resolveSaeSpec(named, a.spec.sae);
      if (r.kind === 'error') err(where(['analyses', a.index, 'sae']), r.error, r.code);
      else {
        saes.set(a.spec.sae, r);
        if (r.kind === 'local') {
          const D = r.cfg.d_sae;
          const bad = (f: number, p: (string | number)[]) => f >= D && err(where(['analyses', a.index, ...p]), `feature ${f} does not exist: the SAE has features 0..${D - 1}`, 'range');
          if (a.spec.kind === 'sae_ablate') a.spec.features.forEach((f, i) => bad(f, ['features', i]));
          if (a.spec.kind === 'sae_steer') bad(a.spec.feature, ['feature']);
        }
      }
    }
    if (a.spec.kind === 'causal_trace' && Array.isArray(a.spec.subject) && a.spec.subject[0] >= a.spec.subject[1]) {
      err(where(['analyses', a.index, 'subject']), 'subject [start, end) must have start < end', 'range');
    }
  }
  // With errors the experiment is still returned (never run: callers check hasErrors) so that the
  // model's checks can add theirs in the same pass; not when its prompts could not be read.
  if (!promptsSound) return { diagnostics };

  const m = typeof spec.model === 'string' ? { name: spec.model } : spec.model;
  const local = path.resolve(dir, m.name);
  const isFolder = !m.name.startsWith('builtin:') && (m.name.startsWith('.') || m.name.startsWith('/') || fs.existsSync(local));
  const experiment: ResolvedExperiment = {
    file: absFile,
    dir,
    root: rootDir,
    spec,
    title: spec.title ?? path.basename(absFile).replace(/\.experiment\.json$/, ''),
    model: { name: m.name, spec: isFolder ? local : m.name, processing: m.processing ?? 'default', device: m.device ?? 'cpu', offline: m.offline ?? false, at: where(['model']) },
    // Absent: the model family's TransformerLens default (no BOS for GPT-NeoX/Pythia, Qwen, Phi-2).
    prependBos: spec.prependBos,
    metric,
    normalize: spec.normalize ?? true,
    groups,
    analyses,
    locate: (p) => where(p),
    saes,
  };
  return { experiment, diagnostics };
}

function resolvePrompts(src: PromptSource, at: JsonPath, named: NamedFiles, where: (p: JsonPath, atKey?: boolean) => Location, out: Diagnostic[]): ResolvedPrompt[] | null {
  if (Array.isArray(src)) {
    return src.map((p, i) => {
      const r: ResolvedPrompt = { prompt: p.prompt, at: { prompt: where([...at, i, 'prompt']) } };
      for (const k of ['corrupted', 'answer', 'wrong'] as const) {
        if (p[k] !== undefined) {
          r[k] = p[k];
          r.at[k] = where([...at, i, k]);
        }
      }
      return r;
    });
  }
  const read = readNamedFile(named, src.file, 'the prompts file');
  if ('error' in read) {
    out.push({ ...where([...at, 'file']), severity: 'error', message: read.error, code: read.code === 'file' ? 'prompts-file' : read.code });
    return null;
  }
  const { path: file, text } = read;
  const parsed = parsePromptsFile(text);
  const span = (s: { line: number; start: number; end: number }): Location => ({ file, range: { start: { line: s.line, character: s.start }, end: { line: s.line, character: s.end } } });
  let lo = 0;
  let hi = Number.MAX_SAFE_INTEGER;
  if (src.lines) {
    [lo, hi] = [src.lines[0] - 1, src.lines[1] - 1];
    if (lo > hi) out.push({ ...where([...at, 'lines']), severity: 'error', message: `lines [${src.lines[0]}, ${src.lines[1]}] is empty: the first line comes first`, code: 'prompts-lines' });
  }
  if (src.section !== undefined) {
    const ls = splitLines(text);
    const header = (l: string) => /^\s*##\s*(.*?)\s*$/.exec(l)?.[1];
    const start = ls.findIndex((l) => header(l) === src.section);
    if (start < 0) {
      const names = ls.map(header).filter((x): x is string => x !== undefined);
      out.push({ ...where([...at, 'section']), severity: 'error', message: `no section "## ${src.section}" in ${file}${names.length ? `; its sections are ${names.map((n) => JSON.stringify(n)).join(', ')}` : ''}`, code: 'prompts-section' });
      return null;
    }
    let end = ls.findIndex((l, i) => i > start && header(l) !== undefined);
    if (end < 0) end = ls.length;
    lo = Math.max(lo, start + 1);
    hi = Math.min(hi, end - 1);
  }
  // Problems of the selected lines are reported in the prompts file itself.
  for (const p of parsed.problems) {
    if (p.span.line >= lo && p.span.line <= hi) out.push({ ...span(p.span), severity: p.severity, message: p.message, code: `prompts-${p.code}` });
  }
  const entries = parsed.prompts.filter((e) => e.line >= lo && e.line <= hi);
  if (entries.length === 0) {
    out.push({ ...where(at), severity: 'error', message: `no prompts selected from ${file}`, code: 'prompts-empty' });
    return null;
  }
  if (entries.length > EXPERIMENT_LIMITS.promptsPerGroup) {
    out.push({ ...where(at), severity: 'error', message: `${entries.length} prompts selected from ${file}; a group may have at most ${EXPERIMENT_LIMITS.promptsPerGroup}: select a section or "lines"`, code: 'limit' });
    return null;
  }
  return entries.map((e) => {
    const r: ResolvedPrompt = { prompt: e.prompt.text, at: { prompt: span(e.prompt.span) } };
    for (const k of ['corrupted', 'answer', 'wrong'] as const) {
      const t = e[k];
      if (t) {
        r[k] = t.text;
        r.at[k] = span(t.span);
      }
    }
    return r;
  });
}

/** Token ids of one group, after the model checks. */
export interface GroupTokens {
  clean: number[][];
  corrupted: number[][] | null;
  /** [correct, wrong] per prompt (wrong = -1 when not given), null when some prompt has no answer. */
  answers: [number, number][] | null;
  strTokens: string[];
}

/**
 * The checks that need the model: tokenization (answers of one token, prompts within n_ctx,
 * equal lengths), and layer / head / neuron / hook references. Returns the tokens of every
 * group (in order) when there is no error.
 */
export function checkWithModel(x: ResolvedExperiment, cfg: HookedTransformerConfig, tok: Tokenizer): { diagnostics: Diagnostic[]; tokens: GroupTokens[] } {
  const diagnostics: Diagnostic[] = [];
  const err = (loc: Location, message: string, code: string) => diagnostics.push({ ...loc, severity: 'error', message, code });
  const tokens: GroupTokens[] = [];
  const name = x.model.name;
  for (const g of x.groups) {
    const gname = g.name === null ? '' : ` in group ${JSON.stringify(g.name)}`;
    const enc = (text: string, loc: Location, what: string): number[] | null => {
      try {
        const ids = toTokens(tok, text, { prependBos: x.prependBos, truncate: false }).tokens[0]!;
        if (ids.length > cfg.n_ctx) {
          err(loc, `this ${what} is ${ids.length} tokens, longer than ${name}'s context of ${cfg.n_ctx} tokens (n_ctx)`, 'too-long');
          return null;
        }
        return ids;
      } catch (e) {
        err(loc, `${name} cannot tokenize this ${what}: ${(e as Error).message}`, 'tokenize');
        return null;
      }
    };
    const single = (text: string, loc: Location, what: string): number | null => {
      try {
        return toSingleToken(tok, text);
      } catch {
        let shown = '';
        try {
          shown = tokensToStrings(tok, tok.encode(text)).map((s) => JSON.stringify(s)).join(', ');
        } catch { /* not tokenizable at all */ }
        err(loc, `the ${what} ${JSON.stringify(text)} must be a single token for ${name}, but it is ${shown ? `[${shown}]` : 'not tokenizable'}`, 'multi-token-answer');
        return null;
      }
    };
    const clean: number[][] = [];
    const corr: number[][] = [];
    const answers: [number, number][] = [];
    let allAnswers = true;
    let ok = true;
    g.prompts.forEach((p, i) => {
      const c = enc(p.prompt, p.at.prompt, 'prompt');
      const k = p.corrupted !== undefined ? enc(p.corrupted, p.at.corrupted!, 'corrupted prompt') : null;
      if (!c || (p.corrupted !== undefined && !k)) ok = false;
      if (c && k && c.length !== k.length) {
        err(p.at.corrupted!, `the clean prompt is ${c.length} tokens and the corrupted one ${k.length} for ${name}: patching compares position by position, so both need the same number of tokens`, 'length-mismatch');
        ok = false;
      }
      if (c && clean.length > 0 && c.length !== clean[0]!.length) {
        err(p.at.prompt, `prompt ${i + 1}${gname} is ${c.length} tokens but prompt 1 is ${clean[0]!.length}: the prompts of a group run as one batch and need the same number of tokens`, 'length-mismatch');
        ok = false;
      }
      if (c) clean.push(c);
      if (k) corr.push(k);
      const a = p.answer !== undefined ? single(p.answer, p.at.answer!, 'answer') : null;
      const w = p.wrong !== undefined ? single(p.wrong, p.at.wrong!, 'wrong answer') : null;
      if ((p.answer !== undefined && a === null) || (p.wrong !== undefined && w === null)) ok = false;
      if (a === null) allAnswers = false;
      answers.push([a ?? -1, w ?? -1]);
    });
    if (ok) {
      tokens.push({
        clean,
        corrupted: corr.length === clean.length ? corr : null,
        answers: allAnswers ? answers : null,
        strTokens: tokensToStrings(tok, clean[0]!),
      });
    }
  }

  x.spec.saes?.forEach((e, i) => {
    const r = x.saes.get(e.sae);
    if (r?.kind !== 'local') return;
    try {
      checkSaeForModel({ cfg: r.cfg, source: e.sae } as Sae, cfg);
    } catch (er) {
      err(x.locate(['saes', i, 'sae']), (er as Error).message, 'sae-model');
    }
  });
  const saeOutputs = new Set<string>();
  for (const e of x.spec.saes ?? []) {
    const r = x.saes.get(e.sae);
    if (r?.kind === 'local') {
      try {
        saeOutputs.add(checkSaeForModel({ cfg: r.cfg, source: e.sae } as Sae, cfg).hookOut);
      } catch { /* reported above */ }
    }
  }
  const L = cfg.n_layers, H = cfg.n_heads;
  for (const a of x.analyses) {
    const s = a.spec;
    const at = (...p: (string | number)[]): Location => locateIn(x, a, p);
    const layerOk = (l: number, p: (string | number)[]) => {
      if (l >= L) err(at(...p), `layer ${l} does not exist: ${name} has layers 0..${L - 1}`, 'range');
      return l < L;
    };
    const headOk = (h: string, p: (string | number)[]) => {
      const r = parseHead(h)!;
      if (r.layer >= L || r.head >= H) err(at(...p), `head ${h} does not exist: ${name} has layers 0..${L - 1} with heads 0..${H - 1}`, 'range');
    };
    const mlpOk = () => {
      if (cfg.d_mlp === null) err(at('kind'), `${s.kind} needs MLP layers, but ${name} is attention-only`, 'attn-only');
      // A mixture of experts has no layer-wide neurons: each expert's fire only on the tokens
      // routed to it (blocks.L.mlp.experts.E.hook_post [routed, d_mlp]).
      if (isMoe(cfg)) err(at('kind'), `${s.kind} reads a layer's MLP neurons (blocks.L.mlp.hook_post [batch, pos, d_mlp]), but ${name} is a mixture of experts: its neurons belong to each of ${cfg.num_experts} experts and fire only on the tokens the router sends there (blocks.L.mlp.experts.E.hook_post); use patch with hook mlp_out, or read the expert hooks with mechlens cache`, 'range');
      return cfg.d_mlp !== null && !isMoe(cfg);
    };
    switch (s.kind) {
      case 'test_prompt':
        if (s.text !== undefined) {
          try {
            const n = toTokens(tok, s.text, { prependBos: x.prependBos, truncate: false }).tokens[0]!.length;
            if (n > cfg.n_ctx) err(at('text'), `this prompt is ${n} tokens, longer than ${name}'s context of ${cfg.n_ctx} tokens`, 'too-long');
          } catch (e) {
            err(at('text'), `${name} cannot tokenize this prompt: ${(e as Error).message}`, 'tokenize');
          }
        }
        if (s.answer !== undefined) {
          try {
            toSingleToken(tok, s.answer);
          } catch (e) {
            err(at('answer'), `the answer must be a single token for ${name}: ${(e as Error).message}`, 'multi-token-answer');
          }
        }
        break;
      case 'neuron_dla':
        if (mlpOk()) layerOk(s.layer, ['layer']);
        break;
      case 'patch_neurons':
        if (mlpOk() && layerOk(s.layer, ['layer'])) s.neurons?.forEach((n, i) => n >= cfg.d_mlp! && err(at('neurons', i), `neuron ${n} does not exist: layers have neurons 0..${cfg.d_mlp! - 1}`, 'range'));
        break;
      case 'neuron_activations':
        if (mlpOk() && layerOk(s.layer, ['layer']) && s.neuron >= cfg.d_mlp!) err(at('neuron'), `neuron ${s.neuron} does not exist: layers have neurons 0..${cfg.d_mlp! - 1}`, 'range');
        break;
      case 'patch':
        if ((s.hook === 'mlp_out' || s.hook === 'resid_mid') && cfg.attn_only) err(at('hook'), `${name} is attention-only: it has no hook_${s.hook}`, 'attn-only');
        s.layers?.forEach((l, i) => layerOk(l, ['layers', i]));
        break;
      case 'patch_heads':
        s.layers?.forEach((l, i) => layerOk(l, ['layers', i]));
        break;
      case 'attention':
        if (Array.isArray(s.heads)) s.heads.forEach((h, i) => headOk(h, ['heads', i]));
        break;
      case 'circuits':
        s.heads.forEach((h, i) => headOk(h, ['heads', i]));
        break;
      case 'path_patch':
        if (Array.isArray(s.receivers)) {
          s.receivers.forEach((h, i) => headOk(h, ['receivers', i]));
          if (s.receivers.every((h) => parseHead(h)!.layer === 0)) err(at('receivers'), 'receivers in layer 0 have no earlier sender heads', 'range');
        }
        break;
      case 'ablation': {
        // More hooks than the model has hook points means some are listed twice (or are unknown).
        const have = allHooks(cfg).length;
        if (s.hooks && s.hooks.length > have) err(at('hooks'), `${s.hooks.length} hooks listed, but ${name} has ${have} hook points: list each hook once, or leave "hooks" out for every hook`, 'range');
        s.hooks?.forEach((h, i) => {
          // Hooks of the experiment's SAEs (`<hook>.hook_sae_acts_post`) exist in every run.
          const saeHook = parseSaeHook(h);
          if (saeHook && saeOutputs.has(saeHook.base)) return;
          try {
            requireHook(h, cfg);
          } catch (e) {
            err(at('hooks', i), (e as Error).message, 'unknown-hook');
          }
        });
        break;
      }
      case 'sae_features':
      case 'sae_ablate':
      case 'sae_steer':
      case 'sae_attribution': {
        const r = x.saes.get(s.sae);
        if (r?.kind === 'local') {
          try {
            checkSaeForModel({ cfg: r.cfg, source: s.sae } as Sae, cfg);
          } catch (e) {
            err(at('sae'), (e as Error).message, 'sae-model');
          }
        }
        break;
      }
      case 'head_scores': {
        const len = 2 * (s.seqLen ?? 50) + (s.prependBos ? 1 : 0);
        if (len > cfg.n_ctx) err(at('seqLen'), `2 x seqLen${s.prependBos ? ' + 1' : ''} = ${len} tokens exceeds ${name}'s context of ${cfg.n_ctx}`, 'range');
        if (s.tokenRange && (s.tokenRange[0] >= s.tokenRange[1] || s.tokenRange[1] > cfg.d_vocab)) err(at('tokenRange'), `tokenRange must be [lo, hi) with lo < hi <= d_vocab = ${cfg.d_vocab}`, 'range');
        break;
      }
      case 'causal_trace': {
        // Checked here, before anything runs (it used to fail after the analyses before it ran).
        if (cfg.attn_only && s.kinds?.includes('mlp')) err(at('kinds'), `${name} is attention-only: it has no MLP to restore; list "kinds": ["resid", "attn"] (the default for such a model)`, 'range');
        for (const [gi, g] of tokens.entries()) {
          const row = g.clean[s.prompt ?? 0];
          if (!row) continue;
          if (Array.isArray(s.subject)) {
            if (s.subject[1] > row.length) err(at('subject'), `subject [${s.subject[0]}, ${s.subject[1]}) goes past the prompt's ${row.length} tokens`, 'range');
          } else if (findSubject(tok, row, s.subject) === null) {
            err(at('subject'), `the subject ${JSON.stringify(s.subject)} is not a run of whole tokens of prompt ${s.prompt ?? 0}${x.groups[gi]?.name ? ` of group ${JSON.stringify(x.groups[gi]!.name)}` : ''}`, 'subject');
          }
        }
        break;
      }
      default:
        break;
    }
  }
  return { diagnostics, tokens };
}

function locateIn(x: ResolvedExperiment, a: ResolvedAnalysis, p: (string | number)[]): Location {
  return x.locate(['analyses', a.index, ...p]);
}

/**
 * ROME's find_token_range: the token positions [start, end) whose decoded text contains the
 * subject (the shortest run of tokens ending where the subject ends), or null.
 */
export function findSubject(tok: Tokenizer, row: readonly number[], subject: string): [number, number] | null {
  // Character offsets where each token's text ends, from decoding growing prefixes (so a
  // tokenizer that joins tokens with spaces, like integer ids, is handled too).
  const ends = row.map((_, i) => tok.decode(row.slice(0, i + 1)).length);
  const whole = tok.decode([...row]);
  const at = whole.indexOf(subject);
  if (at < 0) return null;
  const start = ends.findIndex((e) => e > at);
  const end = ends.findIndex((e) => e >= at + subject.length);
  return start < 0 || end < 0 ? null : [start, end + 1];
}

/** Reads and parses an experiment file from disk. */
export function readExperiment(file: string, reader?: FileReader, opts: ParseOptions = {}): ParseResult {
  let text: string | null;
  try {
    // A file far past the limit is refused before it is read (a character is at most 4 bytes of UTF-8).
    const bytes = reader ? 0 : fs.statSync(path.resolve(file)).size;
    if (bytes > 4 * EXPERIMENT_LIMITS.fileChars) {
      return { diagnostics: [{ file: path.resolve(file), range: ZERO, severity: 'error', message: `the experiment file has ${bytes} bytes; the limit is ${EXPERIMENT_LIMITS.fileChars} characters: put long prompt lists in a .prompts file and split the experiment`, code: 'limit' }] };
    }
    text = reader ? (reader.read(path.resolve(file)) as string | null) : fs.readFileSync(path.resolve(file), 'utf8');
  } catch {
    text = null;
  }
  if (text === null) return { diagnostics: [{ file: path.resolve(file), range: ZERO, severity: 'error', message: `cannot read ${path.resolve(file)}`, code: 'file' }] };
  return parseExperiment(text, file, reader, opts);
}
