/**
 * Llama 1/2/3, TinyLlama (LlamaForCausalLM): RMSNorm, full rotary in GPT-NeoX's halves layout
 * (with Llama 3's NTK-by-parts scaling when rope_scaling says rope_type llama3), SiLU-gated MLP,
 * grouped-query attention when num_key_value_heads < num_attention_heads (TransformerLens then
 * stores K/V as _W_K/_W_V with n_key_value_heads heads), no biases (TransformerLens fills zeros).
 */
import { makeConfig, type ConfigInput, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, copyRule, firstPresent, headsRule, linearRule, zerosRule, type StateDict, type WeightRule } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { kvParamName } from '../model/paramSpecs.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';

/** Llama 3's rope scaling fields (TransformerLens's _apply_llama3_rope_scaling). */
export function llama3RopeScaling(f: HfFields): Partial<ConfigInput> {
  const rs = f.ropeScaling();
  const type = String(rs?.['rope_type'] ?? rs?.['type'] ?? '').toLowerCase();
  if (!rs || type !== 'llama3') return {};
  const n = (k: string, d: number): number => (typeof rs[k] === 'number' ? (rs[k] as number) : d);
  return {
    use_NTK_by_parts_rope: true,
    NTK_original_ctx_len: n('original_max_position_embeddings', f.num('max_position_embeddings')),
    NTK_by_parts_low_freq_factor: n('low_freq_factor', 1),
    NTK_by_parts_high_freq_factor: n('high_freq_factor', 4),
    NTK_by_parts_factor: n('factor', 1),
  };
}

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'Llama');
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const kv = f.num('num_key_value_heads', n_heads);
  return makeConfig({
    model_name: modelName,
    n_layers: f.num('num_hidden_layers'),
    d_model,
    n_heads,
    d_head: Math.floor(d_model / n_heads),
    d_mlp: f.num('intermediate_size'),
    d_vocab: f.num('vocab_size'),
    n_ctx: f.num('max_position_embeddings'),
    eps: f.num('rms_norm_eps', 1e-6),
    act_fn: mapAct(f.str('hidden_act', 'silu'), 'Llama'),
    // TransformerLens uses GQA only when the head counts differ.
    n_key_value_heads: kv !== n_heads ? kv : null,
    normalization_type: 'RMS',
    positional_embedding_type: 'rotary',
    rotary_adjacent_pairs: false,
    rotary_dim: Math.floor(d_model / n_heads),
    rotary_base: f.ropeTheta(),
    gated_mlp: true,
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'LlamaForCausalLM',
    ...llama3RopeScaling(f),
  });
}

/** What Llama-shaped checkpoints of other families add to Llama's tensors. */
export interface LlamaLikeOptions {
  /** q_proj / k_proj / v_proj carry biases (Qwen2): b_Q, b_K, b_V from them instead of zeros. */
  qkvBias?: boolean;
  /** self_attn.q_norm / k_norm gains (Qwen3): attn.q_norm.w / attn.k_norm.w. */
  qkNorm?: boolean;
}

/**
 * model.layers.L.self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj, *_layernorm, model.norm,
 * lm_head (or the tied embedding) -> TransformerLens params: the rules, for families whose
 * checkpoints use Llama's names (Mistral, Qwen2, Qwen3) and add to them.
 */
export function llamaRules(sd: StateDict, cfg: HookedTransformerConfig, opts: LlamaLikeOptions = {}): WeightRule[] {
  const { d_model: D, n_heads: H, d_head: E, d_vocab: V, d_vocab_out: VO, n_layers } = cfg;
  const KV = cfg.n_key_value_heads ?? H;
  const M = cfg.d_mlp!;
  const heads = (tl: string, hf: string, n: number): WeightRule => headsRule(tl, hf, n, E, D);
  // bias [(head d_head)] -> [head, d_head]: the same bytes.
  const bias = (tl: string, hf: string, n: number): WeightRule => (opts.qkvBias ? copyRule(tl, hf, [n * E]) : zerosRule(tl, n * E));
  const r: WeightRule[] = [copyRule('embed.W_E', 'model.embed_tokens.weight', [V, D])];
  for (let l = 0; l < n_layers; l++) {
    const h = `model.layers.${l}.`;
    const b = `blocks.${l}.attn.`;
    r.push(
      copyRule(`blocks.${l}.ln1.w`, `${h}input_layernorm.weight`, [D]),
      heads(`${b}W_Q`, `${h}self_attn.q_proj.weight`, H),
      heads(`${b}${kvParamName(cfg, 'W_K')}`, `${h}self_attn.k_proj.weight`, KV),
      heads(`${b}${kvParamName(cfg, 'W_V')}`, `${h}self_attn.v_proj.weight`, KV),
      bias(`${b}b_Q`, `${h}self_attn.q_proj.bias`, H),
      bias(`${b}${kvParamName(cfg, 'b_K')}`, `${h}self_attn.k_proj.bias`, KV),
      bias(`${b}${kvParamName(cfg, 'b_V')}`, `${h}self_attn.v_proj.bias`, KV),
      // o_proj.weight [d_model, (head_index d_head)] -> W_O [head_index, d_head, d_model]
      linearRule(`${b}W_O`, `${h}self_attn.o_proj.weight`, D, H * E), zerosRule(`${b}b_O`, D),
      copyRule(`blocks.${l}.ln2.w`, `${h}post_attention_layernorm.weight`, [D]),
      linearRule(`blocks.${l}.mlp.W_in`, `${h}mlp.up_proj.weight`, M, D),
      linearRule(`blocks.${l}.mlp.W_gate`, `${h}mlp.gate_proj.weight`, M, D),
      linearRule(`blocks.${l}.mlp.W_out`, `${h}mlp.down_proj.weight`, D, M),
      zerosRule(`blocks.${l}.mlp.b_in`, M), zerosRule(`blocks.${l}.mlp.b_out`, D),
    );
    if (opts.qkNorm) r.push(copyRule(`${b}q_norm.w`, `${h}self_attn.q_norm.weight`, [E]), copyRule(`${b}k_norm.w`, `${h}self_attn.k_norm.weight`, [E]));
  }
  r.push(copyRule('ln_final.w', 'model.norm.weight', [D]));
  const head = cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : firstPresent(sd, ['lm_head.weight']);
  r.push(linearRule('unembed.W_U', head, VO, D), zerosRule('unembed.b_U', VO));
  return r;
}

/** Llama-named checkpoints -> TransformerLens params (Llama, Mistral; others through opts). */
export function llamaWeights(sd: StateDict, cfg: HookedTransformerConfig, family = 'Llama', opts: LlamaLikeOptions = {}): Params {
  return convertWeights(sd, cfg, llamaRules(sd, cfg, opts), family, `model.layers.${cfg.n_layers}.input_layernorm.weight`);
}

export const llama: ArchFamily = {
  name: 'llama',
  architectures: ['LlamaForCausalLM'],
  modelTypes: ['llama'],
  config,
  weights: (sd, cfg) => llamaWeights(sd, cfg),
};
