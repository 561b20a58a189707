/**
 * The architecture registry: every model family MechLens reads, picked by config.json's
 * `architectures` (TransformerLens's original_architecture) or, failing that, its `model_type`.
 * A family is one file in this folder and one entry in FAMILIES.
 */
import type { HookedTransformerConfig } from '../model/config.js';
import type { StateDict } from '../model/hf.js';
import type { Params } from '../model/params.js';
import type { ArchFamily, HfConfig } from './family.js';
import { gemma, gemma2, gemma3 } from './gemma.js';
import { gpt2 } from './gpt2.js';
import { gptneo } from './gptneo.js';
import { llama } from './llama.js';
import { mistral } from './mistral.js';
import { neox } from './neox.js';
import { olmo2 } from './olmo2.js';
import { opt } from './opt.js';
import { bloom } from './bloom.js';
import { qwen2 } from './qwen2.js';
import { qwen3 } from './qwen3.js';
import { phi3 } from './phi3.js';
import { gptj } from './gptj.js';
import { mixtral } from './mixtral.js';
import { olmoe } from './olmoe.js';

export type { ArchFamily, HfConfig } from './family.js';

export const FAMILIES: readonly ArchFamily[] = [gpt2, neox, llama, mistral, qwen2, qwen3, phi3, gptj, gemma, gemma2, gemma3, gptneo, olmo2, opt, bloom, mixtral, olmoe];

/** A one-line list of what is supported, for error messages and docs. */
export function supportedFamilies(): string {
  return FAMILIES.map((f) => `${f.name} (${f.architectures[0]})`).join(', ');
}

/** The family of an HF config.json, or an error naming what it says and what is supported. */
export function familyOf(hf: HfConfig): ArchFamily {
  const archs = Array.isArray(hf['architectures']) ? (hf['architectures'] as unknown[]).filter((a): a is string => typeof a === 'string') : [];
  for (const a of archs) {
    const f = FAMILIES.find((x) => x.architectures.includes(a));
    if (f) return f;
  }
  const mt = hf['model_type'];
  if (typeof mt === 'string') {
    const f = FAMILIES.find((x) => x.modelTypes.includes(mt));
    if (f) return f;
  }
  // GPT-2 configs from before `architectures` existed carry only n_embd / n_layer.
  if (archs.length === 0 && mt === undefined && typeof hf['n_embd'] === 'number') return FAMILIES[0]!;
  const said = [archs.length ? `architectures ${JSON.stringify(archs)}` : '', typeof mt === 'string' ? `model_type ${JSON.stringify(mt)}` : ''].filter(Boolean).join(' and ') || 'neither architectures nor model_type';
  throw new Error(`config.json has ${said}, which MechLens cannot load; supported families: ${supportedFamilies()}`);
}

/** HF config + state dict -> TransformerLens config and 'none' params. */
export function convertHfModel(hf: HfConfig, sd: StateDict, modelName: string): { cfg: HookedTransformerConfig; params: Params; family: ArchFamily } {
  const family = familyOf(hf);
  const cfg = family.config(hf, modelName);
  return { cfg, params: family.weights(sd, cfg), family };
}
