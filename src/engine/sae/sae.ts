/**
 * A sparse autoencoder or transcoder in SAELens's on-disk format, loaded: its config (config.ts)
 * and float32 weights, checked against each other, and against a model's hooks.
 *
 * Folder layout (what SAELens's `save_model` writes, and what a release repository on the hub
 * holds once per hook, in a sub-folder each):
 *   cfg.json                  the config (config.ts reads both layouts)
 *   sae_weights.safetensors   W_enc [d_in, d_sae], W_dec [d_sae, d_out], b_dec [d_out], and by
 *                             architecture b_enc [d_sae], threshold [d_sae] (jumprelu; older files
 *                             hold log_threshold), b_gate / b_mag / r_mag [d_sae] (gated)
 *   sparsity.safetensors      optional: `sparsity` [d_sae], log10 of each feature's firing density
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { allHooks, hookDims, parseHook, requireHook, type HookName } from '../hooks/hooks.js';
import type { HookedTransformerConfig } from '../model/config.js';
import { SafetensorsFile } from '../model/safetensors.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { expectedTensors, isTranscoder, parseSaeConfig, SaeFormatError, type SaeConfig } from './config.js';

export const SAE_CFG_FILE = 'cfg.json';
export const SAE_WEIGHTS_FILE = 'sae_weights.safetensors';
export const SAE_SPARSITY_FILE = 'sparsity.safetensors';

export interface SaeWeights {
  W_enc: F32;
  W_dec: F32;
  b_dec: F32;
  b_enc?: F32;
  threshold?: F32;
  b_gate?: F32;
  b_mag?: F32;
  r_mag?: F32;
}

/**
 * A loaded SAE. Plain data (it crosses the worker boundary like any intervention): `id` is
 * unique per load and names the SAE's compiled sessions, so two SAEs never share one.
 */
export interface Sae {
  id: string;
  cfg: SaeConfig;
  weights: SaeWeights;
  /** log10 firing density per feature, [d_sae], when sparsity.safetensors exists. */
  sparsity: F32 | null;
  /** For display: the folder, or `repo/folder` from the hub. */
  source: string;
}

let loadCounter = 0;

/** A fresh id for an SAE loaded from `source`. */
export function newSaeId(source: string): string {
  return `${path.basename(source) || 'sae'}#${++loadCounter}`;
}

const fmt = (d: readonly number[]): string => `[${d.join(', ')}]`;

/** Loads an SAE folder (cfg.json + sae_weights.safetensors [+ sparsity.safetensors]). */
export function loadSaeFolder(dir: string, source: string = path.resolve(dir)): Sae {
  const folder = path.resolve(dir);
  if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) {
    throw new SaeFormatError(`SAE folder ${folder} does not exist; an SAE folder holds ${SAE_CFG_FILE} and ${SAE_WEIGHTS_FILE} (SAELens's format)`);
  }
  const cfgPath = path.join(folder, SAE_CFG_FILE);
  const wPath = path.join(folder, SAE_WEIGHTS_FILE);
  if (!fs.existsSync(cfgPath)) {
    const subs = fs.readdirSync(folder).filter((n) => fs.existsSync(path.join(folder, n, SAE_CFG_FILE)));
    throw new SaeFormatError(
      `${folder} has no ${SAE_CFG_FILE}` +
        (subs.length ? `; it looks like a release folder with one SAE per sub-folder: ${subs.slice(0, 6).join(', ')}${subs.length > 6 ? ', …' : ''}` : '; an SAE folder holds cfg.json and sae_weights.safetensors (SAELens\'s format)'),
    );
  }
  if (!fs.existsSync(wPath)) throw new SaeFormatError(`${folder} has ${SAE_CFG_FILE} but no ${SAE_WEIGHTS_FILE}`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new SaeFormatError(`${cfgPath} is not valid JSON: ${(e as Error).message}`);
  }
  const cfg = parseSaeConfig(raw, cfgPath);
  const file = SafetensorsFile.open(wPath);
  let weights: SaeWeights;
  try {
    weights = readWeights(file, cfg, wPath);
  } finally {
    file.close();
  }
  let sparsity: F32 | null = null;
  const sPath = path.join(folder, SAE_SPARSITY_FILE);
  if (fs.existsSync(sPath)) {
    const sf = SafetensorsFile.open(sPath);
    try {
      if (!sf.has('sparsity')) throw new SaeFormatError(`${sPath} has no tensor "sparsity" (log10 feature density, [d_sae])`);
      const s = sf.readF32('sparsity');
      if (s.dims.length !== 1 || s.dims[0] !== cfg.d_sae) throw new SaeFormatError(`${sPath}: sparsity must have shape [${cfg.d_sae}], got ${fmt(s.dims)}`);
      sparsity = f32(s.dims, s.data, ['d_sae']);
    } finally {
      sf.close();
    }
  }
  return { id: newSaeId(source), cfg, weights, sparsity, source };
}

function readWeights(file: SafetensorsFile, cfg: SaeConfig, where: string): SaeWeights {
  const want = expectedTensors(cfg);
  const have = new Set(file.names());
  const problems: string[] = [];
  const out: Record<string, F32> = {};
  // Older JumpReLU files store log(threshold); SAELens exponentiates it on loading.
  const logThreshold = 'threshold' in want && !have.has('threshold') && have.has('log_threshold');
  // Older files may carry an all-ones `scaling_factor` that SAELens drops.
  let dropScaling = false;
  if (have.has('scaling_factor')) {
    const s = file.readF32('scaling_factor');
    if (s.data.every((v) => v === 1)) dropScaling = true;
    else problems.push('scaling_factor: a finetuning scaling factor other than 1 is not supported (SAELens 6 no longer applies it)');
  }
  for (const [name, dims] of Object.entries(want)) {
    const src = name === 'threshold' && logThreshold ? 'log_threshold' : name;
    if (!have.has(src)) {
      problems.push(`${name}: missing (expected shape ${fmt(dims)})`);
      continue;
    }
    const got = file.entries.get(src)!.shape;
    if (got.length !== dims.length || got.some((d, i) => d !== dims[i])) {
      problems.push(`${src}: expected shape ${fmt(dims)} for d_in ${cfg.d_in}, d_sae ${cfg.d_sae}${isTranscoder(cfg.architecture) ? `, d_out ${cfg.d_out}` : ''}, got ${fmt(got)}`);
      continue;
    }
    const t = file.readF32(src);
    if (src === 'log_threshold') for (let i = 0; i < t.data.length; i++) t.data[i] = Math.exp(t.data[i]!);
    out[name] = t;
  }
  const extra = [...have].filter((n) => !(n in want) && !(n === 'log_threshold' && logThreshold) && !(n === 'scaling_factor' && dropScaling));
  if (extra.length) problems.push(`unexpected tensor(s) ${extra.join(', ')} for a ${cfg.architecture} SAE (SAELens would refuse them too)`);
  if (problems.length) throw new SaeFormatError(`${where}: ${problems.length} problem(s) with the ${cfg.architecture} SAE's weights: ${problems.join('; ')}`);
  for (const [k, t] of Object.entries(out)) {
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i]!)) throw new SaeFormatError(`${where}: ${k} holds a non-finite value at flat index ${i}`);
    }
  }
  const ax = (t: F32, axes: string[]): F32 => f32(t.dims, t.data, axes);
  const w: SaeWeights = { W_enc: ax(out['W_enc']!, ['d_in', 'd_sae']), W_dec: ax(out['W_dec']!, ['d_sae', 'd_out']), b_dec: ax(out['b_dec']!, ['d_out']) };
  for (const k of ['b_enc', 'threshold', 'b_gate', 'b_mag', 'r_mag'] as const) if (out[k]) w[k] = ax(out[k], ['d_sae']);
  return w;
}

/**
 * The MechLens hook an SAELens hook name means: HookedSAETransformer adds `blocks.L.mlp.hook_in`
 * (the MLP's input), which is TransformerLens's `blocks.L.ln2.hook_normalized` in a model with
 * normalisation.
 */
export function resolveSaeHook(name: string, cfg: HookedTransformerConfig): HookName {
  const m = /^blocks\.(\d+)\.mlp\.hook_in$/.exec(name);
  if (m) {
    if (cfg.normalization_type === null) throw new SaeFormatError(`hook ${name}: the MLP input of a model without normalisation is blocks.${m[1]}.hook_resid_mid; name that hook instead`);
    return `blocks.${m[1]}.ln2.hook_normalized` as HookName;
  }
  return name as HookName;
}

/**
 * Checks that an SAE fits a model: its hooks exist, are [batch, pos, d] activations, and have
 * d_in (and for transcoders d_out) as their width; a transcoder's two hooks are in one block,
 * input first. Returns the resolved hook names. Errors name the SAE, the hook and both sizes.
 */
export function checkSaeForModel(sae: Sae, cfg: HookedTransformerConfig): { hookIn: HookName; hookOut: HookName } {
  const c = sae.cfg;
  const what = `SAE ${sae.source}`;
  const one = (name: string, width: number, role: string): HookName => {
    const h = resolveSaeHook(name, cfg);
    try {
      requireHook(h, cfg);
    } catch (e) {
      throw new SaeFormatError(`${what}: its ${role} hook ${name} is not a hook of this model: ${(e as Error).message}`);
    }
    const p = parseHook(h, cfg)!;
    const dims = hookDims(p.name, cfg, 1, 1);
    if (dims.length !== 3) {
      throw new SaeFormatError(`${what}: ${role} hook ${name} has ${dims.length} axes; SAEs here read [batch, pos, d] hooks (residual stream, attn_out, mlp_out, MLP neurons, normalised inputs)`);
    }
    if (dims[2] !== width) {
      throw new SaeFormatError(`${what}: ${role === 'input' ? 'd_in' : 'd_out'} = ${width}, but ${name} of this model has width ${dims[2]}: the SAE was made for another model or hook`);
    }
    return h;
  };
  const hookIn = one(c.hook_name, c.d_in, 'input');
  const hookOut = c.hook_name_out === c.hook_name ? hookIn : one(c.hook_name_out, c.d_out, 'output');
  if (hookOut !== hookIn) {
    const li = parseHook(hookIn, cfg)!.layer;
    const lo = parseHook(hookOut, cfg)!.layer;
    if (li === null || li !== lo) throw new SaeFormatError(`${what}: a transcoder's input and output hooks must be in one block (got ${hookIn} and ${hookOut})`);
    const order = allHooks(cfg);
    if (order.indexOf(hookIn) > order.indexOf(hookOut)) throw new SaeFormatError(`${what}: a transcoder's input hook ${hookIn} must come before its output hook ${hookOut} in the forward pass`);
  }
  return { hookIn, hookOut };
}
