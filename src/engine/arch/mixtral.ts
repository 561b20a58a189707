/**
 * Mixtral (MixtralForCausalLM): Mistral's attention (grouped-query, always stored as _W_K / _W_V;
 * rotary in halves; no biases; a sliding window only when config.json sets one, which the released
 * 8x7B / 8x22B do not) with a sparse mixture-of-experts MLP (graph/components/moe.ts): a router
 * (block_sparse_moe.gate) picks num_experts_per_tok of num_local_experts gated SiLU experts per
 * token, and their outputs are summed weighted by the router's softmax probabilities renormalized
 * over the chosen experts (TransformerLens pins norm_topk_prob on for Mixtral, as HF's router
 * always renormalizes).
 *
 * TransformerLens 3.9 takes d_head = hidden_size / num_attention_heads whatever head_dim says, so
 * a config whose head_dim differs is refused (naming the field) rather than loaded as
 * TransformerLens would mis-read it.
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, firstPresent, type StateDict, type WeightRule } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';
import { llamaRules } from './llama.js';

/** head_dim, when config.json gives one, must be hidden_size / num_attention_heads (TransformerLens's d_head). */
export function checkHeadDim(f: HfFields, family: string): number {
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const d_head = Math.floor(d_model / n_heads);
  const hd = f.optNum('head_dim');
  if (hd !== null && hd !== d_head) {
    throw new Error(`config.json field "head_dim" is ${hd}, but TransformerLens 3.9 loads ${family} with d_head = hidden_size / num_attention_heads = ${d_head}; MechLens cannot match TransformerLens on this checkpoint`);
  }
  return d_head;
}

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'Mixtral');
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const n_layers = f.num('num_hidden_layers');
  const d_head = checkHeadDim(f, 'Mixtral');
  const window = f.optNum('sliding_window');
  const local = window !== null && window > 0;
  return makeConfig({
    model_name: modelName,
    n_layers,
    d_model,
    n_heads,
    d_head,
    d_mlp: f.num('intermediate_size'),
    d_vocab: f.num('vocab_size'),
    n_ctx: f.num('max_position_embeddings'),
    eps: f.num('rms_norm_eps', 1e-5),
    act_fn: mapAct(f.str('hidden_act', 'silu'), 'Mixtral'),
    use_local_attn: local,
    window_size: local ? window : null,
    attn_types: new Array<'local' | 'global'>(n_layers).fill(local ? 'local' : 'global'),
    n_key_value_heads: f.num('num_key_value_heads', n_heads),
    normalization_type: 'RMS',
    positional_embedding_type: 'rotary',
    rotary_adjacent_pairs: false,
    rotary_dim: d_head,
    rotary_base: f.ropeTheta(1e6),
    gated_mlp: true,
    num_experts: f.num('num_local_experts'),
    experts_per_token: f.num('num_experts_per_tok'),
    norm_topk_prob: true,
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'MixtralForCausalLM',
  });
}

/**
 * The router and experts of layer `l` -> TransformerLens's MoE params (all nn.Linear [d_out, d_in],
 * copied as they are). Checkpoints come in two layouts:
 *  - one tensor per expert (the hub's, and what transformers 5 saves): `${moe}.gate.weight`
 *    [expert, d_model] and `${moe}.experts.E.{gate,up,down}` named by `names`;
 *  - fused (transformers 5's in-memory MixtralExperts / OlmoeExperts): `${moe}.experts.gate_up_proj`
 *    [expert, 2·d_mlp, d_model] (gate rows first, then up) and `${moe}.experts.down_proj`
 *    [expert, d_model, d_mlp], split here as TransformerLens's converters split them.
 */
export function expertRules(sd: StateDict, cfg: HookedTransformerConfig, l: number, moe: string, names: { gate: string; up: string; down: string }): WeightRule[] {
  const D = cfg.d_model, M = cfg.d_mlp!, E = cfg.num_experts!;
  const b = `blocks.${l}.mlp.`;
  const r: WeightRule[] = [{ from: [{ name: `${moe}.gate.weight`, dims: [E, D] }], to: [`${b}W_gate.weight`], make: ([s]) => [s!.slice()] }];
  const keys = new Set(sd.keys());
  if (keys.has(`${moe}.experts.gate_up_proj`) && !keys.has(`${moe}.experts.0.${names.gate}.weight`)) {
    r.push({
      from: [{ name: `${moe}.experts.gate_up_proj`, dims: [E, 2 * M, D] }],
      to: Array.from({ length: E }, (_, e) => [`${b}experts.${e}.W_gate.weight`, `${b}experts.${e}.W_in.weight`]).flat(),
      make: ([s]) => Array.from({ length: E }, (_, e) => [s!.slice(e * 2 * M * D, (e * 2 + 1) * M * D), s!.slice((e * 2 + 1) * M * D, (e + 1) * 2 * M * D)]).flat(),
    }, {
      from: [{ name: `${moe}.experts.down_proj`, dims: [E, D, M] }],
      to: Array.from({ length: E }, (_, e) => `${b}experts.${e}.W_out.weight`),
      make: ([s]) => Array.from({ length: E }, (_, e) => s!.slice(e * D * M, (e + 1) * D * M)),
    });
    return r;
  }
  for (let e = 0; e < E; e++) {
    const x = `${moe}.experts.${e}.`;
    const copy = (tl: string, hf: string, dims: number[]): WeightRule => ({ from: [{ name: hf, dims }], to: [tl], make: ([s]) => [s!.slice()] });
    r.push(
      copy(`${b}experts.${e}.W_gate.weight`, `${x}${names.gate}.weight`, [M, D]),
      copy(`${b}experts.${e}.W_in.weight`, `${x}${names.up}.weight`, [M, D]),
      copy(`${b}experts.${e}.W_out.weight`, `${x}${names.down}.weight`, [D, M]),
    );
  }
  return r;
}

/** Llama's attention / norm / embedding rules without its dense MLP's (the experts replace it). */
export function attentionRules(sd: StateDict, cfg: HookedTransformerConfig): WeightRule[] {
  return llamaRules(sd, cfg).filter((r) => !r.to.some((t) => /^blocks\.\d+\.mlp\./.test(t)));
}

function weights(sd: StateDict, cfg: HookedTransformerConfig): Params {
  const r = attentionRules(sd, cfg);
  for (let l = 0; l < cfg.n_layers; l++) {
    // The hub's name (block_sparse_moe, w1 = gate, w3 = up, w2 = down); transformers 5 renamed the block `mlp`.
    const moe = firstPresent(sd, [`model.layers.${l}.block_sparse_moe.gate.weight`, `model.layers.${l}.mlp.gate.weight`]).replace(/\.gate\.weight$/, '');
    const perExpert = moe.endsWith('block_sparse_moe') ? { gate: 'w1', up: 'w3', down: 'w2' } : { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };
    r.push(...expertRules(sd, cfg, l, moe, perExpert));
  }
  return convertWeights(sd, cfg, r, 'Mixtral', `model.layers.${cfg.n_layers}.input_layernorm.weight`);
}

export const mixtral: ArchFamily = {
  name: 'mixtral',
  architectures: ['MixtralForCausalLM'],
  modelTypes: ['mixtral'],
  config,
  weights,
};
