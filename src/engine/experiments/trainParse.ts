/**
 * Reading a `"kind": "train"` experiment file (trainSchema.ts): the schema check, then the checks
 * that need no training run — an MLP for MLP analyses, layers / heads / hooks that exist, a BOS id
 * inside the vocabulary, a text file that can be read and whose vocabulary matches d_vocab — each
 * a diagnostic at the offending text. The result carries the trainer's TrainConfig (as the plain
 * TrainConfigPayload the worker receives) and where checkpoints go.
 */
import * as path from 'node:path';
import { nodeAt, toValue, type JsonNode, type JsonPath, type LineIndex } from './json.js';
import { validate } from './validate.js';
import { trainExperimentSchema, type TrainExperimentFile } from './trainSchema.js';
import type { Diagnostic, Location } from './diagnostics.js';
import { readNamedFile, type NamedFiles } from './files.js';
import type { TrainAnalysisSpec, TrainConfigPayload, TrainModelPayload } from '../../protocol/engine.js';
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { allHooks } from '../hooks/hooks.js';

/** GPT-2's BPE vocabulary (the text task's 'gpt2' tokenizer). */
const GPT2_VOCAB = 50257;

export interface ResolvedTrainAnalysis {
  index: number;
  spec: TrainAnalysisSpec;
  at: Location;
}

export interface ResolvedTrainExperiment {
  kind: 'train';
  file: string;
  dir: string;
  /** The file name without `.experiment.json`: default model_name and checkpoint folder name. */
  name: string;
  title: string;
  spec: TrainExperimentFile;
  /** What the trainer gets (defaults filled in, text file made absolute). */
  config: TrainConfigPayload;
  /**
   * Checkpoint folder: the file's "checkpoints" resolved against its folder (explicit), or the
   * default <file's folder>/.mechlens/train/<name> (the editor puts it under the workspace folder).
   */
  checkpoints: { dir: string; explicit: boolean };
  analyses: ResolvedTrainAnalysis[];
  /** Seed of the analyses' fresh sequences. */
  analysisSeed: number;
  /** The model config the trainer will build (d_vocab 0 for a text task means the tokenizer's). */
  cfg: HookedTransformerConfig;
  locate(path: JsonPath): Location;
}

/** The default checkpoint folder of a train experiment named `name` under `root`. */
export function defaultCheckpointDir(root: string, name: string): string {
  return path.join(root, '.mechlens', 'train', name);
}

export function experimentName(file: string): string {
  return path.basename(file).replace(/\.experiment\.json$/i, '').replace(/\.json$/i, '') || 'experiment';
}

/** Whether a parsed JSON root is a train experiment ("kind": "train"). */
export function isTrainRoot(root: JsonNode): boolean {
  if (root.type !== 'object') return false;
  const k = root.properties.find((p) => p.key === 'kind');
  return k?.value.type === 'string' && k.value.value === 'train';
}

export function resolveTrainExperiment(root: JsonNode, lines: LineIndex, absFile: string, named: NamedFiles): { train?: ResolvedTrainExperiment; diagnostics: Diagnostic[] } {
  const dir = path.dirname(absFile);
  const diagnostics: Diagnostic[] = [];
  const where = (p: JsonPath, atKey = false): Location => {
    const r = nodeAt(root, p);
    if (atKey && r.exact && r.key) return { file: absFile, range: lines.range(r.key.offset, r.key.length) };
    return { file: absFile, range: lines.range(r.node.offset, r.exact || r.node.type !== 'object' ? r.node.length : 1) };
  };
  const err = (p: JsonPath, message: string, code: string) => diagnostics.push({ ...where(p), severity: 'error', message, code });
  const warn = (p: JsonPath, message: string, code: string) => diagnostics.push({ ...where(p), severity: 'warning', message, code });

  for (const p of validate(root, trainExperimentSchema)) diagnostics.push({ ...where(p.path, p.atKey), severity: 'error', message: p.message, code: 'schema' });
  if (diagnostics.length > 0) return { diagnostics };
  const spec = toValue(root) as TrainExperimentFile;
  const m = spec.model;
  const task = spec.task;
  const name = experimentName(absFile);

  // The model.
  if (m.attn_only && m.d_mlp !== undefined) err(['model', 'd_mlp'], 'an attention-only model (attn_only: true) has no MLP: remove d_mlp', 'train-model');
  if (m.positional_embedding_type === 'none' && m.zero_pos_embed) warn(['model', 'zero_pos_embed'], 'positional_embedding_type "none" already has no W_pos; zero_pos_embed has nothing to zero', 'train-model');
  let dVocab = m.d_vocab;
  const bos = task.kind === 'text' ? null : (task.bos_token_id ?? 0);
  if (task.kind === 'text') {
    const read = readNamedFile(named, task.file, 'the training text');
    if ('error' in read) err(['task', 'file'], read.error, read.code === 'file' ? 'train-file' : read.code);
    else {
      const { text } = read;
      const vocab = task.tokenizer === 'gpt2' ? GPT2_VOCAB : new Set(Array.from(text)).size;
      if (dVocab !== undefined && dVocab !== 0 && dVocab !== vocab) {
        err(['model', 'd_vocab'], `the ${task.tokenizer} tokenizer of ${task.file} has ${vocab} tokens but d_vocab is ${dVocab}; set d_vocab to ${vocab}, 0 or leave it out`, 'train-vocab');
      }
      // Character counts bound the token count from above (BPE merges characters).
      if (task.tokenizer === 'char' && Array.from(text).length < m.n_ctx + 1) err(['task', 'file'], `${task.file} has ${Array.from(text).length} characters; a window of n_ctx = ${m.n_ctx} needs at least ${m.n_ctx + 1}`, 'train-file');
      dVocab = vocab;
    }
  } else {
    if (dVocab === undefined) err(['model'], `missing "d_vocab": the ${task.kind} task draws random token ids from [1, d_vocab)`, 'train-vocab');
    else if (dVocab < 2) err(['model', 'd_vocab'], `d_vocab must be at least 2 (BOS and one other token), got ${dVocab}`, 'train-vocab');
    else if (bos !== null && bos >= dVocab) err(['task', 'bos_token_id'], `bos_token_id ${bos} is not in the vocabulary 0..${dVocab - 1}`, 'train-vocab');
    if (task.kind === 'induction' && m.n_ctx < 3) err(['model', 'n_ctx'], `the induction task repeats a sequence after BOS: n_ctx must be at least 3, got ${m.n_ctx}`, 'train-model');
  }
  const t = spec.training;
  if ((t.warmup_steps ?? 0) > t.max_steps) warn(['training', 'warmup_steps'], `warmup_steps ${t.warmup_steps} is more than max_steps ${t.max_steps}: the learning rate never reaches lr`, 'train-optimizer');
  if (diagnostics.some((d) => d.severity === 'error')) return { diagnostics };

  const { zero_pos_embed: zeroPos, ...modelFields } = m;
  const model: TrainModelPayload = { ...modelFields, d_vocab: task.kind === 'text' ? (m.d_vocab ?? 0) : m.d_vocab!, model_name: m.model_name ?? name };
  if (bos !== null) model.bos_token_id = bos;
  let cfg: HookedTransformerConfig;
  try {
    cfg = makeConfig({ ...model, d_vocab: dVocab ?? 1, bos_token_id: bos });
  } catch (e) {
    err(['model'], (e as Error).message, 'train-model');
    return { diagnostics };
  }

  // The analyses: what they name must exist in this model.
  const analyses: ResolvedTrainAnalysis[] = (spec.analyses ?? []).map((a, index) => ({ index, spec: a, at: where(['analyses', index]) }));
  const hooks = new Set<string>(allHooks(cfg));
  for (const a of analyses) {
    const at = (...p: (string | number)[]) => ['analyses', a.index, ...p];
    const s = a.spec;
    const checkList = (key: 'layers' | 'heads', max: number, what: string) => {
      const list = (s as { layers?: number[]; heads?: number[] })[key];
      list?.forEach((v, i) => {
        if (v >= max) err(at(key, i), `${what} ${v} does not exist: the model has ${what}s 0..${max - 1}`, 'train-range');
      });
    };
    checkList('layers', cfg.n_layers, 'layer');
    checkList('heads', cfg.n_heads, 'head');
    if (cfg.attn_only && (s.kind === 'mlp_activations' || (s.kind === 'ov_circuit' && (s.into ?? 'mlp_in') === 'mlp_in'))) {
      err(at('kind'), `${s.kind === 'ov_circuit' ? 'an OV circuit into W_in' : s.kind} needs MLPs, but the model is attention-only${s.kind === 'ov_circuit' ? ' (use "into": "unembed")' : ''}`, 'train-mlp');
    }
    if (s.kind === 'ov_circuit' && s.mlp_layer !== undefined && s.mlp_layer >= cfg.n_layers) err(at('mlp_layer'), `layer ${s.mlp_layer} does not exist: the model has layers 0..${cfg.n_layers - 1}`, 'train-range');
    if (s.kind === 'mlp_activations' && s.sequence !== undefined && s.sequence >= (s.sequences ?? 4000)) err(at('sequence'), `sequence ${s.sequence} is not among the ${s.sequences ?? 4000} sequences`, 'train-range');
    if (s.kind === 'ablation') {
      s.hooks?.forEach((h, i) => {
        if (!hooks.has(h)) err(at('hooks', i), `${JSON.stringify(h)} is not a hook of this model (e.g. ${[...hooks].slice(0, 3).join(', ')}, …)`, 'train-hook');
      });
    }
  }
  if (diagnostics.some((d) => d.severity === 'error')) return { diagnostics };

  const config: TrainConfigPayload = {
    model,
    task: task.kind === 'text' ? { ...task, file: path.resolve(dir, task.file) } : task,
    zero_pos_embed: zeroPos ?? false,
    max_steps: t.max_steps,
    batch_size: t.batch_size,
    lr: t.lr,
    betas: t.betas ?? [0.9, 0.999],
    eps: t.eps ?? 1e-8,
    weight_decay: t.weight_decay ?? 0.01,
    decay_params: t.decay_params ?? 'all',
    max_grad_norm: t.max_grad_norm ?? null,
    warmup_steps: t.warmup_steps ?? 0,
    seed: spec.seed ?? 0,
    save_every: t.save_every === undefined ? 500 : t.save_every,
    keep_checkpoints: t.keep_checkpoints ?? 3,
  };
  const train: ResolvedTrainExperiment = {
    kind: 'train',
    file: absFile,
    dir,
    name,
    title: spec.title ?? name,
    spec,
    config,
    checkpoints: spec.checkpoints !== undefined ? { dir: path.resolve(dir, spec.checkpoints), explicit: true } : { dir: defaultCheckpointDir(dir, name), explicit: false },
    analyses,
    analysisSeed: spec.analysis_seed ?? config.seed + 1,
    cfg,
    locate: (p) => where(p),
  };
  return { train, diagnostics };
}
