/**
 * Phi-3 (Phi3ForCausalLM): Llama's block (RMSNorm, SiLU-gated MLP, full rotary, grouped-query
 * attention when the head counts differ) with fused projections in the checkpoint, split on load:
 * self_attn.qkv_proj [(head_index + 2·kv_head)·d_head, d_model] holds Q | K | V rows and
 * mlp.gate_up_proj [2·d_mlp, d_model] holds gate | up rows. sliding_window, when set, makes every
 * layer local (Phi-3-mini: 2047 keys in a 4096 context), as TransformerLens does.
 *
 * TransformerLens 3.9 reads neither rope_scaling nor partial_rotary_factor for this architecture,
 * so for checkpoints that set them (Phi-3-*-128k and Phi-3.5 use "longrope", Phi-4-mini rotates
 * 3/4 of each head) its numbers are not the model's; MechLens refuses those with an error rather
 * than compute either TransformerLens's wrong numbers or numbers no oracle checks.
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, copyRule, firstPresent, headsFromLinear, linearRule, transpose2, zerosRule, type StateDict, type WeightRule } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { kvParamName } from '../model/paramSpecs.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'Phi-3');
  // rope_scaling (transformers 4) or rope_parameters (5), whose rope_type is 'default' when unscaled.
  const rs = f.ropeScaling();
  const rsType = rs ? String(rs['rope_type'] ?? rs['type'] ?? '') : '';
  if (rs && rsType !== '' && rsType !== 'default') {
    throw new Error(`config.json's rope_scaling has type ${JSON.stringify(rsType)}, which MechLens does not support for Phi-3 (TransformerLens 3.9 ignores it, so no reference numbers exist); use a checkpoint without rope_scaling, such as Phi-3-mini-4k-instruct`);
  }
  const rp = f.obj('rope_parameters');
  const partial = f.optNum('partial_rotary_factor') ?? (typeof rp?.['partial_rotary_factor'] === 'number' ? (rp['partial_rotary_factor'] as number) : 1);
  if (partial !== 1) {
    throw new Error(`config.json's partial_rotary_factor is ${partial}, which MechLens does not support for Phi3ForCausalLM (TransformerLens 3.9 rotates every dim for this architecture, so no reference numbers exist)`);
  }
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const n_layers = f.num('num_hidden_layers');
  const d_head = Math.floor(d_model / n_heads);
  const kv = f.num('num_key_value_heads', n_heads);
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
    act_fn: mapAct(f.str('hidden_act', 'silu'), 'Phi-3'),
    n_key_value_heads: kv !== n_heads ? kv : null,
    normalization_type: 'RMS',
    positional_embedding_type: 'rotary',
    rotary_adjacent_pairs: false,
    rotary_dim: d_head,
    rotary_base: f.ropeTheta(),
    gated_mlp: true,
    use_local_attn: local,
    window_size: local ? window : null,
    attn_types: local ? new Array<'local'>(n_layers).fill('local') : null,
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'Phi3ForCausalLM',
  });
}

function weights(sd: StateDict, cfg: HookedTransformerConfig): Params {
  const { d_model: D, n_heads: H, d_head: E, d_vocab: V, d_vocab_out: VO, n_layers } = cfg;
  const KV = cfg.n_key_value_heads ?? H;
  const M = cfg.d_mlp!;
  const r: WeightRule[] = [copyRule('embed.W_E', 'model.embed_tokens.weight', [V, D])];
  for (let l = 0; l < n_layers; l++) {
    const h = `model.layers.${l}.`;
    const b = `blocks.${l}.`;
    r.push(
      copyRule(`${b}ln1.w`, `${h}input_layernorm.weight`, [D]),
      {
        // qkv_proj.weight [(head_index + 2·kv_head)·d_head, d_model]: rows Q | K | V, each
        // "(head d_head) d_model" -> W [head, d_model, d_head].
        from: [{ name: `${h}self_attn.qkv_proj.weight`, dims: [(H + 2 * KV) * E, D] }],
        to: [`${b}attn.W_Q`, `${b}attn.${kvParamName(cfg, 'W_K')}`, `${b}attn.${kvParamName(cfg, 'W_V')}`],
        make: ([w]) => {
          const q = H * E * D, k = KV * E * D;
          return [headsFromLinear(w!.subarray(0, q), H, E, D), headsFromLinear(w!.subarray(q, q + k), KV, E, D), headsFromLinear(w!.subarray(q + k, q + 2 * k), KV, E, D)];
        },
      },
      zerosRule(`${b}attn.b_Q`, H * E), zerosRule(`${b}attn.${kvParamName(cfg, 'b_K')}`, KV * E), zerosRule(`${b}attn.${kvParamName(cfg, 'b_V')}`, KV * E),
      // o_proj.weight [d_model, (head_index d_head)] -> W_O [head_index, d_head, d_model]
      linearRule(`${b}attn.W_O`, `${h}self_attn.o_proj.weight`, D, H * E), zerosRule(`${b}attn.b_O`, D),
      copyRule(`${b}ln2.w`, `${h}post_attention_layernorm.weight`, [D]),
      {
        // gate_up_proj.weight [2·d_mlp, d_model]: rows gate | up -> W_gate, W_in [d_model, d_mlp].
        from: [{ name: `${h}mlp.gate_up_proj.weight`, dims: [2 * M, D] }],
        to: [`${b}mlp.W_gate`, `${b}mlp.W_in`],
        make: ([w]) => [transpose2(w!.subarray(0, M * D), M, D), transpose2(w!.subarray(M * D), M, D)],
      },
      linearRule(`${b}mlp.W_out`, `${h}mlp.down_proj.weight`, D, M),
      zerosRule(`${b}mlp.b_in`, M), zerosRule(`${b}mlp.b_out`, D),
    );
  }
  r.push(copyRule('ln_final.w', 'model.norm.weight', [D]));
  const head = cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : firstPresent(sd, ['lm_head.weight']);
  r.push(linearRule('unembed.W_U', head, VO, D), zerosRule('unembed.b_U', VO));
  return convertWeights(sd, cfg, r, 'Phi-3', `model.layers.${n_layers}.input_layernorm.weight`);
}

export const phi3: ArchFamily = {
  name: 'phi3',
  architectures: ['Phi3ForCausalLM'],
  modelTypes: ['phi3'],
  config,
  weights,
};
