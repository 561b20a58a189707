/**
 * The TransformerLens-layout model folder that training writes and the loader reads
 * (loadModelFolder delegates here when config.json carries the marker below):
 *
 *   config.json        {"mechlens_format": "transformer_lens", "format_version": 1,
 *                       ...HookedTransformerConfig fields (n_layers, d_model, attn_only, ...)}
 *   model.safetensors  the TransformerLens state dict, float32, params.ts names
 *                      (embed.W_E, blocks.0.attn.W_Q [head_index, d_model, d_head], ...)
 *   vocab.json         {"chars": "..."} for character-level models (read by the tokenizer)
 *
 * Why not Hugging Face GPT-2 layout: it cannot hold what TransformerLens models have and GPT-2
 * lacks — the unembedding bias b_U, attention-only blocks, LNPre / no normalization,
 * n_heads * d_head != d_model — so a trained toy model would not round-trip exactly.
 *
 * Also here: writeFileAtomic (tmp file + fsync + rename), used for every checkpoint file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeConfig, type ConfigInput, type HookedTransformerConfig } from './config.js';
import type { Params } from './params.js';
import { SafetensorsFile, writeSafetensors } from './safetensors.js';
import { isTiedUnembed, unembedMatrix } from './unembed.js';
import { paramSpecs } from './paramSpecs.js';

export const TL_FORMAT_MARKER = 'transformer_lens';
export const TL_FORMAT_VERSION = 1;

/** True when a parsed config.json is a MechLens TransformerLens-layout config. */
export function isTransformerLensConfigJson(j: unknown): j is Record<string, unknown> {
  return typeof j === 'object' && j !== null && (j as Record<string, unknown>)['mechlens_format'] === TL_FORMAT_MARKER;
}

export function configToJson(cfg: HookedTransformerConfig): Record<string, unknown> {
  return { mechlens_format: TL_FORMAT_MARKER, format_version: TL_FORMAT_VERSION, ...cfg };
}

/** config.json object -> validated HookedTransformerConfig (errors name the field). */
export function configFromJson(j: Record<string, unknown>, modelName?: string): HookedTransformerConfig {
  const v = j['format_version'];
  if (typeof v === 'number' && v > TL_FORMAT_VERSION) {
    throw new Error(`config.json has format_version ${v}; this MechLens reads TransformerLens-layout version ${TL_FORMAT_VERSION} (update MechLens)`);
  }
  const fields = { ...j };
  delete fields['mechlens_format'];
  delete fields['format_version'];
  for (const k of ['n_layers', 'd_model', 'n_heads', 'd_vocab', 'n_ctx'] as const) {
    if (typeof fields[k] !== 'number') throw new Error(`config.json is missing the number field "${k}"`);
  }
  const cfg = makeConfig(fields as ConfigInput);
  return modelName ? { ...cfg, model_name: modelName } : cfg;
}

/**
 * Reads a TransformerLens-layout folder: config from `cfgJson` (the parsed config.json) and
 * every parameter the config implies from model.safetensors, shape-checked; all problems are
 * reported together.
 */
export function readTransformerLensFolder(folder: string, cfgJson: Record<string, unknown>, modelName?: string): { cfg: HookedTransformerConfig; params: Params } {
  const cfg = configFromJson(cfgJson, modelName);
  const file = path.join(folder, 'model.safetensors');
  const f = SafetensorsFile.open(file);
  try {
    const specs = paramSpecs(cfg, { includePos: cfg.positional_embedding_type === 'standard' });
    const problems: string[] = [];
    for (const s of specs) {
      const e = f.entries.get(s.name);
      if (!e) problems.push(`${s.name}: missing (expected [${s.dims.join(', ')}])`);
      else if (e.shape.length !== s.dims.length || e.shape.some((d, i) => d !== s.dims[i])) problems.push(`${s.name}: expected [${s.dims.join(', ')}], got [${e.shape.join(', ')}]`);
    }
    if (problems.length) throw new Error(`${file} does not match config.json, ${problems.length} problem(s): ${problems.slice(0, 8).join('; ')}`);
    const params: Params = new Map();
    for (const s of specs) params.set(s.name, { ...f.readF32(s.name), axes: s.axes });
    return { cfg, params };
  } finally {
    f.close();
  }
}

/** Writes data to file so that the file is either the old or the complete new content. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx');
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== null) {
      try { fs.closeSync(fd); } catch { /* already closed */ }
    }
    try { fs.unlinkSync(tmp); } catch { /* never created */ }
    throw e;
  }
}

/**
 * Writes a complete TransformerLens-layout model folder into `dir` (which must exist and be
 * empty or hold an older version of the same files). `chars` adds a character vocab.json.
 */
export function writeTransformerLensFolder(dir: string, cfg: HookedTransformerConfig, params: Params, opts: { chars?: string | null; metadata?: Record<string, string> } = {}): void {
  const specs = paramSpecs(cfg, { includePos: cfg.positional_embedding_type === 'standard' });
  const ordered = new Map(specs.map((s) => {
    // A tied W_U (kept as factors of W_E while loaded) is saved whole, as TransformerLens has it.
    const t = s.name === 'unembed.W_U' && isTiedUnembed(params) ? unembedMatrix(params) : params.get(s.name);
    if (!t) throw new Error(`cannot save the model: parameter ${s.name} is missing`);
    return [s.name, t] as const;
  }));
  writeSafetensors(path.join(dir, 'model.safetensors'), ordered, { format: 'pt', mechlens_format: TL_FORMAT_MARKER, ...opts.metadata });
  if (opts.chars) writeFileAtomic(path.join(dir, 'vocab.json'), JSON.stringify({ chars: opts.chars }));
  // config.json last: a folder only looks like a model once its weights are complete.
  writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(configToJson(cfg), null, 2));
}
