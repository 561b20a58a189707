/**
 * Reading a `"kind": "train_sae"` experiment file (saeTrainSchema.ts): the schema check, then the
 * checks that need no training run, each a diagnostic at the offending text — a hook of the block
 * form; for the built-in models (whose config is at hand) that the hook exists and is a
 * [batch, pos, d] activation, and d_sae / k against its width; settings of the other architecture;
 * steps given once; a corpus that can be read inside the experiment's folder. The result carries
 * the trainer's settings as plain data (the worker's engine/sae/train request) and the folder the
 * SAE goes to. Other models are checked (hook, width) when training starts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nodeAt, toValue, type JsonNode, type JsonPath, type LineIndex } from './json.js';
import { validate } from './validate.js';
import { saeTrainExperimentSchema, type SaeTrainExperimentFile } from './saeTrainSchema.js';
import type { Diagnostic, Location } from './diagnostics.js';
import { confinePath, readNamedFile, type NamedFiles } from './files.js';
import { experimentName } from './trainParse.js';
import type { SaeTrainPayload } from '../../protocol/engine.js';
import { embeddedModelDir } from '../model/builtin.js';
import { configFromJson } from '../model/tlFormat.js';
import type { HookedTransformerConfig } from '../model/config.js';
import { hookDims, requireHook, type OutputName } from '../hooks/hooks.js';

export const DEFAULT_SAE_MODEL = 'builtin:default';
export const BOOK_CORPUS_SPEC = 'builtin:book';

export interface ResolvedSaeTrainExperiment {
  kind: 'train_sae';
  file: string;
  dir: string;
  name: string;
  title: string;
  spec: SaeTrainExperimentFile;
  /** What the worker gets (defaults filled in, paths absolute). */
  payload: SaeTrainPayload;
  /** The SAE folder: the file's "output" (explicit) or <file's folder>/.mechlens/saes/<name> (the editor puts it under the workspace folder). */
  output: { dir: string; explicit: boolean };
  locate(path: JsonPath): Location;
}

/** The default SAE folder of a train_sae experiment named `name` under `root`. */
export function defaultSaeDir(root: string, name: string): string {
  return path.join(root, '.mechlens', 'saes', name);
}

export function isSaeTrainRoot(root: JsonNode): boolean {
  if (root.type !== 'object') return false;
  const k = root.properties.find((p) => p.key === 'kind');
  return k?.value.type === 'string' && k.value.value === 'train_sae';
}

/** The config of a built-in model, read without its weights (null for other models). */
function builtinConfig(model: string): HookedTransformerConfig | null {
  if (model !== 'builtin:default') return null;
  const dir = embeddedModelDir();
  if (!dir) return null;
  try {
    return configFromJson(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>);
  } catch {
    return null;
  }
}

export function resolveSaeTrainExperiment(root: JsonNode, lines: LineIndex, absFile: string, named: NamedFiles): { trainSae?: ResolvedSaeTrainExperiment; diagnostics: Diagnostic[] } {
  const dir = path.dirname(absFile);
  const diagnostics: Diagnostic[] = [];
  const where = (p: JsonPath, atKey = false): Location => {
    const r = nodeAt(root, p);
    if (atKey && r.exact && r.key) return { file: absFile, range: lines.range(r.key.offset, r.key.length) };
    return { file: absFile, range: lines.range(r.node.offset, r.exact || r.node.type !== 'object' ? r.node.length : 1) };
  };
  const err = (p: JsonPath, message: string, code: string, atKey = false) => diagnostics.push({ ...where(p, atKey), severity: 'error', message, code });
  const warn = (p: JsonPath, message: string, code: string) => diagnostics.push({ ...where(p), severity: 'warning', message, code });

  for (const p of validate(root, saeTrainExperimentSchema)) diagnostics.push({ ...where(p.path, p.atKey), severity: 'error', message: p.message, code: 'schema' });
  if (diagnostics.length > 0) return { diagnostics };
  const spec = toValue(root) as SaeTrainExperimentFile;
  const name = experimentName(absFile);
  const s = spec.sae, t = spec.training;
  const model = spec.model ?? DEFAULT_SAE_MODEL;
  const topk = s.architecture === 'topk';

  // The hook, and (built-in models) its width.
  let width: number | null = null;
  if (!/^blocks\.\d+\.[a-z_.0-9]+$/.test(spec.hook)) {
    err(['hook'], `${JSON.stringify(spec.hook)} is not a block hook: an SAE reads a [batch, pos, d] hook such as "blocks.1.hook_resid_post" or "blocks.0.hook_mlp_out"`, 'sae-hook');
  } else {
    const cfg = builtinConfig(model);
    if (cfg) {
      try {
        requireHook(spec.hook, cfg);
        const dims = hookDims(spec.hook as OutputName, cfg, 1, 1);
        if (dims.length !== 3) err(['hook'], `${spec.hook} has ${dims.length} axes; an SAE reads a [batch, pos, d] hook (residual stream, attn_out, mlp_out, MLP neurons)`, 'sae-hook');
        else width = dims[2] as number;
      } catch (e) {
        err(['hook'], `${(e as Error).message}`, 'sae-hook');
      }
    }
  }

  // The SAE's size and its architecture's settings.
  if (s.expansion_factor !== undefined && s.d_sae !== undefined) err(['sae', 'd_sae'], 'give either "expansion_factor" or "d_sae", not both', 'sae-size', true);
  if (s.d_sae === undefined && width !== null && s.expansion_factor !== undefined && !Number.isInteger(s.expansion_factor * width)) {
    err(['sae', 'expansion_factor'], `expansion_factor ${s.expansion_factor} × width ${width} is not a whole number of features`, 'sae-size');
  }
  const dSae = s.d_sae ?? (width !== null ? Math.round((s.expansion_factor ?? 8) * width) : null);
  for (const [key, arch] of [['k', 'topk'], ['aux_loss_coefficient', 'topk'], ['l1_coefficient', 'standard'], ['l1_warm_up_steps', 'standard']] as const) {
    if (s[key] !== undefined && s.architecture !== arch) err(['sae', key], `"${key}" is a setting of the ${arch} architecture; this SAE is ${s.architecture}: remove it`, 'sae-architecture', true);
  }
  const k = s.k ?? 16;
  if (topk && dSae !== null && k > dSae) err(['sae', s.k !== undefined ? 'k' : 'architecture'], `k = ${k} is larger than d_sae = ${dSae}`, 'sae-size');

  // Steps.
  const batch = t.batch_size ?? 4096;
  if (t.steps !== undefined && t.training_tokens !== undefined) err(['training', 'training_tokens'], 'give either "steps" or "training_tokens", not both', 'sae-steps', true);
  else if (t.steps === undefined && t.training_tokens === undefined) err(['training'], 'missing "steps" (or "training_tokens"): how long to train', 'sae-steps');
  const steps = t.steps ?? Math.max(1, Math.round((t.training_tokens ?? 0) / batch));
  if ((t.lr_warm_up_steps ?? 0) + (t.lr_decay_steps ?? 0) > steps) err(['training', t.lr_decay_steps !== undefined ? 'lr_decay_steps' : 'lr_warm_up_steps'], `lr_warm_up_steps + lr_decay_steps (${(t.lr_warm_up_steps ?? 0) + (t.lr_decay_steps ?? 0)}) exceed the ${steps} steps`, 'sae-steps');
  if (topk && (t.dead_feature_window ?? 1000) >= steps) warn(['training', t.dead_feature_window !== undefined ? 'dead_feature_window' : 'steps'], `dead_feature_window (${t.dead_feature_window ?? 1000}) is not below the ${steps} steps: no feature counts as dead and the auxiliary loss never revives any`, 'sae-steps');

  // The corpus: the book, a file or a folder inside the experiment's folder.
  const corpus = spec.corpus ?? BOOK_CORPUS_SPEC;
  let corpusPath = corpus;
  if (corpus !== BOOK_CORPUS_SPEC) {
    const c = confinePath(named.root, named.dir, corpus);
    if ('error' in c) err(['corpus'], c.error, 'file-outside');
    else {
      corpusPath = c.path;
      const st = fs.statSync(c.path, { throwIfNoEntry: false });
      if (!st) err(['corpus'], `the corpus ${c.path} does not exist: name a text file, a folder of .txt files, or "${BOOK_CORPUS_SPEC}"`, 'file');
      else if (st.isDirectory()) {
        const files = fs.readdirSync(c.path).filter((n) => /\.(txt|md|text)$/i.test(n));
        if (files.length === 0) err(['corpus'], `the corpus folder ${c.path} has no .txt, .md or .text files`, 'file');
        for (const f of files) {
          const r = readNamedFile(named, path.join(corpus, f), 'the corpus file');
          if ('error' in r) { err(['corpus'], r.error, r.code); break; }
        }
      } else {
        const r = readNamedFile(named, corpus, 'the corpus');
        if ('error' in r) err(['corpus'], r.error, r.code);
      }
    }
  }
  let outDir: { dir: string; explicit: boolean } = { dir: defaultSaeDir(dir, name), explicit: false };
  if (spec.output !== undefined) {
    const o = confinePath(named.root, named.dir, spec.output);
    if ('error' in o) err(['output'], o.error, 'file-outside');
    else {
      const st = fs.statSync(o.path, { throwIfNoEntry: false });
      if (st && !st.isDirectory()) err(['output'], `${o.path} is a file; "output" names the SAE's folder`, 'file');
      outDir = { dir: o.path, explicit: true };
    }
  }
  const modelSpec = model.startsWith('builtin:') || !/^\.{0,2}\//.test(model) ? model : path.resolve(dir, model);
  if (diagnostics.some((d) => d.severity === 'error')) return { diagnostics };

  const payload: SaeTrainPayload = {
    model: modelSpec,
    hook: spec.hook,
    architecture: s.architecture,
    ...(s.d_sae !== undefined ? { d_sae: s.d_sae } : { expansion_factor: s.expansion_factor ?? 8 }),
    k,
    l1_coefficient: s.l1_coefficient ?? 5,
    l1_warm_up_steps: s.l1_warm_up_steps ?? 0,
    aux_loss_coefficient: s.aux_loss_coefficient ?? 1,
    apply_b_dec_to_input: s.apply_b_dec_to_input ?? true,
    b_dec_init: s.b_dec_init ?? 'mean',
    decoder_init_norm: s.decoder_init_norm === undefined ? 0.1 : s.decoder_init_norm,
    steps,
    batch_size: batch,
    lr: t.lr ?? 3e-4,
    betas: t.betas ?? [0.9, 0.999],
    lr_warm_up_steps: t.lr_warm_up_steps ?? 0,
    lr_decay_steps: t.lr_decay_steps ?? 0,
    max_grad_norm: t.max_grad_norm === undefined ? 1 : t.max_grad_norm,
    dead_feature_window: t.dead_feature_window ?? 1000,
    log_every: t.log_every ?? 25,
    corpus: corpusPath,
    ...(spec.context_size !== undefined ? { context_size: spec.context_size } : {}),
    ...(spec.prepend_bos !== undefined ? { prepend_bos: spec.prepend_bos } : {}),
    ...(spec.corpus_tokens !== undefined ? { corpus_tokens: spec.corpus_tokens } : {}),
    eval_tokens: spec.eval_tokens ?? 16384,
    seed: spec.seed ?? 42,
    output: outDir.dir,
  };
  return {
    trainSae: { kind: 'train_sae', file: absFile, dir, name, title: spec.title ?? name, spec, payload, output: outDir, locate: (p) => where(p) },
    diagnostics,
  };
}
