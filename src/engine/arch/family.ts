/**
 * What one model family says about itself: which Hugging Face checkpoints it reads (config.json's
 * `architectures` / `model_type`), how their config maps to TransformerLens's config fields, and
 * how their tensors map to TransformerLens params. Everything else (graph components, hooks,
 * weight processing, analyses) is shared and switched by those config fields, as in
 * TransformerLens 3.x; a family file holds only what is particular to it.
 */
import type { HookedTransformerConfig } from '../model/config.js';
import type { StateDict } from '../model/hf.js';
import type { Params } from '../model/params.js';

export interface ArchFamily {
  /** Short name shown to users, e.g. 'llama'. */
  name: string;
  /** TransformerLens's original_architecture values this family reads, e.g. 'LlamaForCausalLM'. */
  architectures: readonly string[];
  /** config.json model_type values, for configs without `architectures`. */
  modelTypes: readonly string[];
  /** HF config.json -> HookedTransformerConfig (as TransformerLens's convert_hf_model_config). */
  config(hf: HfConfig, modelName: string): HookedTransformerConfig;
  /** HF state dict -> TransformerLens 'none' params (as pretrained/weight_conversions/<family>.py). */
  weights(sd: StateDict, cfg: HookedTransformerConfig): Params;
}

export type HfConfig = Record<string, unknown>;

/** Reads config.json fields with errors that name the field and the family. */
export class HfFields {
  constructor(readonly hf: HfConfig, readonly family: string) {}

  num(k: string, fallback?: number): number {
    const v = this.hf[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new Error(`config.json is missing the number field "${k}" (needed for a ${this.family} model)`);
    }
    throw new Error(`config.json field "${k}" must be a number, got ${JSON.stringify(v)}`);
  }

  optNum(k: string): number | null {
    const v = this.hf[k];
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  }

  str(k: string, fallback: string): string {
    const v = this.hf[k];
    return typeof v === 'string' ? v : fallback;
  }

  bool(k: string, fallback: boolean): boolean {
    const v = this.hf[k];
    return typeof v === 'boolean' ? v : fallback;
  }

  obj(k: string): Record<string, unknown> | null {
    const v = this.hf[k];
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  }

  /** Token id fields may be a number or a list (eos_token_id in Llama 3): the first one. */
  tokenId(k: string): number | null {
    const v = this.hf[k];
    if (typeof v === 'number') return v;
    if (Array.isArray(v) && typeof v[0] === 'number') return v[0] as number;
    return null;
  }

  /** rope_theta: top level (transformers 4) or rope_parameters.rope_theta (transformers 5). */
  ropeTheta(fallback = 10000): number {
    const top = this.optNum('rope_theta');
    if (top !== null) return top;
    const rp = this.obj('rope_parameters');
    return typeof rp?.['rope_theta'] === 'number' ? (rp['rope_theta'] as number) : fallback;
  }

  /** rope_scaling (transformers 4) or rope_parameters (transformers 5). */
  ropeScaling(): Record<string, unknown> | null {
    return this.obj('rope_scaling') ?? this.obj('rope_parameters');
  }
}

/** HF hidden_act / activation_function -> TransformerLens act_fn. */
export function mapAct(act: string, family: string): HookedTransformerConfig['act_fn'] {
  const m: Record<string, HookedTransformerConfig['act_fn']> = {
    gelu_new: 'gelu_new', gelu_pytorch_tanh: 'gelu_pytorch_tanh', gelu: 'gelu', relu: 'relu', gelu_fast: 'gelu_fast', silu: 'silu', swish: 'silu',
  };
  const a = m[act];
  if (!a) throw new Error(`config.json activation ${JSON.stringify(act)} is not supported for ${family} (supported: ${Object.keys(m).join(', ')})`);
  return a;
}
