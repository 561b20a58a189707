/**
 * SAELens's cfg.json, read into one normalised config. Two layouts exist on disk:
 *   - SAELens 6.x (`metadata.sae_lens_version` >= 6): `architecture`, `d_in`, `d_sae`, `dtype`,
 *     `apply_b_dec_to_input`, `normalize_activations`, `reshape_activations`, topk's `k` and
 *     `rescale_acts_by_decoder_norm`, transcoders' `d_out`; the hook names live in `metadata`
 *     (`hook_name`, transcoders' `hook_name_out`).
 *   - earlier releases (no version, or one below 6): a flat dict with `hook_name` (or the oldest
 *     `hook_point`) at the top, `activation_fn_str` / `activation_fn` ("topk" with
 *     `activation_fn_kwargs.k` means a TopK SAE), `normalize_activations` as a boolean or null,
 *     and `finetuning_scaling_factor`. SAELens converts these on loading; so does this reader.
 * Keys that do not change the forward pass (dataset, context size, training settings) are kept
 * in `raw` only.
 */

/** Architectures whose forward pass MechLens computes (SAELens's names). */
export const SAE_ARCHITECTURES = ['standard', 'jumprelu', 'topk', 'gated', 'transcoder', 'jumprelu_transcoder'] as const;
export type SaeArchitecture = (typeof SAE_ARCHITECTURES)[number];

/**
 * Input normalisation SAELens applies at run time. `expected_average_only_in` and
 * `covariance_whitening` are identities at inference in SAELens (the first is folded into the
 * weights only for SAEs loaded from its pretrained directory with a known scaling factor, the
 * second is folded before saving), so they run as `none` here too, with a note.
 */
export type SaeNormalization = 'none' | 'layer_norm' | 'constant_norm_rescale';

export interface SaeConfig {
  architecture: SaeArchitecture;
  /** Width of the input hook's last axis. */
  d_in: number;
  /** Number of features. */
  d_sae: number;
  /** Width of the output hook's last axis (d_in for SAEs, the output hook's for transcoders). */
  d_out: number;
  /** The hook the SAE reads, a TransformerLens hook name (or HookedSAETransformer's `blocks.L.mlp.hook_in`). */
  hook_name: string;
  /** The hook the reconstruction replaces: hook_name for SAEs, the output hook for transcoders. */
  hook_name_out: string;
  apply_b_dec_to_input: boolean;
  normalize_activations: SaeNormalization;
  /** TopK: features kept per position. */
  k: number | null;
  /** TopK: select (and report) pre-activations scaled by the decoder rows' norms, divided back before decoding. */
  rescale_acts_by_decoder_norm: boolean;
  /** The dtype the weights were saved in; MechLens computes in float32 whatever it is. */
  dtype: string;
  model_name: string | null;
  /** Whether the SAE was trained with a BOS token prepended (SAELens's `prepend_bos`). */
  prepend_bos: boolean | null;
  /** 'sae_lens_6' or 'pre_6' (see the file comment). */
  layout: 'sae_lens_6' | 'pre_6';
  sae_lens_version: string | null;
  /** Things the reader did that a user should know (an ignored normalisation, a converted key). */
  notes: string[];
  /** The cfg.json as read. */
  raw: Record<string, unknown>;
}

export class SaeFormatError extends Error {
  override name = 'SaeFormatError';
}

const isTranscoder = (a: SaeArchitecture): boolean => a === 'transcoder' || a === 'jumprelu_transcoder';
export { isTranscoder };

function majorVersion(v: unknown): number | null {
  if (typeof v !== 'string') return null;
  const m = /^(\d+)\./.exec(v.trim());
  return m ? Number(m[1]) : null;
}

/**
 * Parses a cfg.json object. `where` names the file in errors. Throws SaeFormatError naming the
 * key that is wrong and what it should be.
 */
export function parseSaeConfig(raw: unknown, where: string): SaeConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SaeFormatError(`${where}: cfg.json must hold a JSON object`);
  const r = raw as Record<string, unknown>;
  const meta = (typeof r['metadata'] === 'object' && r['metadata'] !== null && !Array.isArray(r['metadata']) ? r['metadata'] : {}) as Record<string, unknown>;
  const version = (typeof r['sae_lens_version'] === 'string' ? r['sae_lens_version'] : typeof meta['sae_lens_version'] === 'string' ? meta['sae_lens_version'] : null) as string | null;
  const major = majorVersion(version);
  const layout: SaeConfig['layout'] = major !== null && major >= 6 ? 'sae_lens_6' : 'pre_6';
  const notes: string[] = [];

  const int = (key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new SaeFormatError(`${where}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (key: string, v: unknown, dflt: boolean): boolean => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw new SaeFormatError(`${where}: "${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };

  // Architecture: explicit, or (older files) from the activation function.
  let arch: unknown = r['architecture'];
  let k: number | null = null;
  const actFn = r['activation_fn_str'] ?? r['activation_fn'];
  const actKw = r['activation_fn_kwargs'] as Record<string, unknown> | undefined;
  if (layout === 'pre_6') {
    if (arch === undefined || arch === null) arch = 'standard';
    if (actFn === 'topk' && actKw && actKw['k'] !== undefined && actKw['k'] !== null) {
      arch = 'topk';
      k = int('activation_fn_kwargs.k', actKw['k']);
    } else if (actFn !== undefined && actFn !== null && actFn !== 'relu' && arch === 'standard') {
      throw new SaeFormatError(`${where}: activation function ${JSON.stringify(actFn)} is not supported; MechLens runs relu (standard), jumprelu, topk and gated SAEs`);
    }
  }
  if (typeof arch !== 'string') throw new SaeFormatError(`${where}: "architecture" is missing; it must be one of ${SAE_ARCHITECTURES.join(', ')}`);
  if (!(SAE_ARCHITECTURES as readonly string[]).includes(arch)) {
    const hint = /skip_transcoder/.test(arch)
      ? ' (skip transcoders are not supported: SAELens\'s HookedSAETransformer splices them without their W_skip term, and MechLens will not silently disagree with either)'
      : '';
    throw new SaeFormatError(`${where}: unknown SAE architecture ${JSON.stringify(arch)}; supported: ${SAE_ARCHITECTURES.join(', ')}${hint}`);
  }
  const architecture = arch as SaeArchitecture;

  const d_in = int('d_in', r['d_in']);
  const d_sae = int('d_sae', r['d_sae']);
  const d_out = isTranscoder(architecture) ? int('d_out', r['d_out']) : d_in;

  // Hook names: metadata in 6.x, top level before (hook_point in the oldest files).
  const hookKey = (names: string[]): string | null => {
    for (const src of [meta, r]) for (const n of names) if (typeof src[n] === 'string' && src[n] !== '') return src[n] as string;
    return null;
  };
  const hook_name = hookKey(['hook_name', 'hook_point']);
  if (hook_name === null) {
    throw new SaeFormatError(`${where}: no hook name: SAELens 6 writes it as metadata.hook_name (older releases as hook_name or hook_point at the top level)`);
  }
  let hook_name_out = hook_name;
  if (isTranscoder(architecture)) {
    const out = hookKey(['hook_name_out']);
    if (out === null) throw new SaeFormatError(`${where}: a ${architecture} needs its output hook as metadata.hook_name_out`);
    hook_name_out = out;
  }
  const headIndex = meta['hook_head_index'] ?? r['hook_head_index'];
  if (headIndex !== undefined && headIndex !== null) {
    throw new SaeFormatError(`${where}: hook_head_index ${JSON.stringify(headIndex)}: SAEs of a single attention head are not supported`);
  }

  const reshape = r['reshape_activations'] ?? (layout === 'pre_6' && /hook_z$/.test(hook_name) ? 'hook_z' : 'none');
  if (reshape !== 'none') {
    throw new SaeFormatError(`${where}: reshape_activations ${JSON.stringify(reshape)} (an SAE on attn.hook_z, flattened over heads) is not supported yet; use SAEs on [batch, pos, d] hooks (residual stream, attn_out, mlp_out, MLP neurons)`);
  }

  let norm: unknown = r['normalize_activations'];
  if (typeof norm === 'boolean') norm = norm ? 'expected_average_only_in' : 'none';
  if (norm === undefined || norm === null) norm = 'none';
  let normalize_activations: SaeNormalization;
  if (norm === 'none' || norm === 'layer_norm' || norm === 'constant_norm_rescale') normalize_activations = norm;
  else if (norm === 'expected_average_only_in' || norm === 'covariance_whitening') {
    normalize_activations = 'none';
    notes.push(`normalize_activations "${norm}" runs as none, as SAELens runs it for an SAE loaded from a folder (its scaling is folded into the weights, or was before saving)`);
  } else {
    throw new SaeFormatError(`${where}: normalize_activations ${JSON.stringify(norm)} is not one of none, layer_norm, constant_norm_rescale, expected_average_only_in, covariance_whitening`);
  }

  if (architecture === 'topk') {
    if (k === null) k = int('k', r['k'] ?? 100);
    if (k > d_sae) throw new SaeFormatError(`${where}: k = ${k} is larger than d_sae = ${d_sae}`);
  }
  const apply_b_dec_to_input = bool('apply_b_dec_to_input', r['apply_b_dec_to_input'], !isTranscoder(architecture));
  if (isTranscoder(architecture) && apply_b_dec_to_input) {
    throw new SaeFormatError(`${where}: apply_b_dec_to_input must be false for a transcoder (its b_dec has the output's width)`);
  }
  if (r['finetuning_scaling_factor'] === true) {
    throw new SaeFormatError(`${where}: finetuning_scaling_factor is true; SAELens 6 no longer applies a finetuning scale, and neither does MechLens`);
  }
  const dtype = typeof r['dtype'] === 'string' ? (r['dtype'] as string).replace(/^torch\./, '') : 'float32';
  if (dtype !== 'float32') notes.push(`weights saved as ${dtype}; MechLens computes in float32`);
  const model_name = typeof (meta['model_name'] ?? r['model_name']) === 'string' ? ((meta['model_name'] ?? r['model_name']) as string) : null;
  const pb = meta['prepend_bos'] ?? r['prepend_bos'];
  return {
    architecture, d_in, d_sae, d_out, hook_name, hook_name_out, apply_b_dec_to_input, normalize_activations, k,
    rescale_acts_by_decoder_norm: architecture === 'topk' ? bool('rescale_acts_by_decoder_norm', r['rescale_acts_by_decoder_norm'], false) : false,
    dtype, model_name, prepend_bos: typeof pb === 'boolean' ? pb : null, layout, sae_lens_version: version, notes, raw: r,
  };
}

/** The tensors an architecture's sae_weights.safetensors must hold, with their shapes. */
export function expectedTensors(c: SaeConfig): Record<string, readonly number[]> {
  const t: Record<string, readonly number[]> = { W_enc: [c.d_in, c.d_sae], W_dec: [c.d_sae, c.d_out], b_dec: [c.d_out] };
  if (c.architecture === 'gated') Object.assign(t, { b_gate: [c.d_sae], b_mag: [c.d_sae], r_mag: [c.d_sae] });
  else t['b_enc'] = [c.d_sae];
  if (c.architecture === 'jumprelu' || c.architecture === 'jumprelu_transcoder') t['threshold'] = [c.d_sae];
  return t;
}
