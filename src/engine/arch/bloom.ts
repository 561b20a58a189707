/**
 * BLOOM (BloomForCausalLM): no positional embedding; ALiBi adds m_h · min(j - i, 0) to head h's
 * attention scores (positional_embedding_type 'alibi', the attention component); a LayerNorm
 * right after the token embedding (word_embeddings_layernorm -> embed.ln, post_embedding_ln);
 * pre-LayerNorm blocks with biases everywhere; a fused query_key_value projection laid out per
 * head as [head_index, q/k/v, d_head]; a GELU (tanh form, TransformerLens's gelu_fast) MLP of
 * 4 · hidden_size; tied unembedding without a bias. As TransformerLens: n_ctx 2048 (ALiBi has no
 * table, TransformerLens caps it for the tokenizer), no BOS prepended by default.
 *
 * Refused, since TransformerLens 3.9 would compute them differently from the checkpoint:
 * apply_residual_connection_post_layernorm (the residual taken after the norm), and head counts
 * that are not a power of two (HF interleaves extra ALiBi slopes there, TransformerLens does not;
 * only the 176B BLOOM has one, 112 heads).
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, copyRule, firstPresent, linearRule, zerosRule, type StateDict, type WeightRule } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { HfFields, type ArchFamily, type HfConfig } from './family.js';

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'BLOOM');
  const d_model = f.num('hidden_size', f.optNum('n_embed') ?? undefined);
  const n_heads = f.num('n_head', f.optNum('num_attention_heads') ?? undefined);
  if (f.bool('apply_residual_connection_post_layernorm', false)) {
    throw new Error('config.json says "apply_residual_connection_post_layernorm": true (the residual taken after each LayerNorm); TransformerLens 3.9, whose numbers MechLens reproduces, computes BLOOM only with the residual taken before it');
  }
  if ((n_heads & (n_heads - 1)) !== 0) {
    throw new Error(`config.json has n_head ${n_heads}, not a power of two: Hugging Face's BLOOM then interleaves extra ALiBi slopes, which TransformerLens 3.9 (whose numbers MechLens reproduces) does not, so its numbers would not be this checkpoint's`);
  }
  return makeConfig({
    model_name: modelName,
    n_layers: f.num('n_layer', f.optNum('num_hidden_layers') ?? undefined),
    d_model,
    n_heads,
    d_head: Math.floor(d_model / n_heads),
    d_mlp: 4 * d_model,
    d_vocab: f.num('vocab_size'),
    // TransformerLens caps BLOOM's context at 2048 (its tokenizer's limit); ALiBi itself has no table.
    n_ctx: 2048,
    eps: f.num('layer_norm_epsilon', 1e-5),
    // BLOOM's bloom_gelu_forward is the tanh approximation, TransformerLens's gelu_fast.
    act_fn: 'gelu_fast',
    normalization_type: 'LN',
    positional_embedding_type: 'alibi',
    post_embedding_ln: true,
    default_prepend_bos: false,
    tie_word_embeddings: f.bool('tie_word_embeddings', true),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'BloomForCausalLM',
  });
}

/** 'transformer.' for BloomForCausalLM checkpoints, '' for BloomModel ones (the bigscience/bloom-* uploads). */
function detectPrefix(sd: StateDict): string {
  const keys = new Set(sd.keys());
  if (keys.has('transformer.word_embeddings.weight')) return 'transformer.';
  if (keys.has('word_embeddings.weight')) return '';
  return 'transformer.';
}

/**
 * {p}word_embeddings, {p}word_embeddings_layernorm, {p}h.L.{input_layernorm,
 * self_attention.{query_key_value, dense}, post_attention_layernorm, mlp.{dense_h_to_4h,
 * dense_4h_to_h}}, {p}ln_f, lm_head (or the tied embedding) -> TransformerLens params, as its
 * convert_bloom_weights does (b_U zero).
 */
function weights(sd: StateDict, cfg: HookedTransformerConfig): Params {
  const { d_model: D, n_heads: H, d_head: E, d_vocab: V, d_vocab_out: VO, n_layers } = cfg;
  const M = cfg.d_mlp!;
  const p = detectPrefix(sd);
  const r: WeightRule[] = [
    copyRule('embed.W_E', `${p}word_embeddings.weight`, [V, D]),
    copyRule('embed.ln.w', `${p}word_embeddings_layernorm.weight`, [D]), copyRule('embed.ln.b', `${p}word_embeddings_layernorm.bias`, [D]),
  ];
  for (let l = 0; l < n_layers; l++) {
    const h = `${p}h.${l}.`;
    const b = `blocks.${l}.`;
    r.push(
      copyRule(`${b}ln1.w`, `${h}input_layernorm.weight`, [D]), copyRule(`${b}ln1.b`, `${h}input_layernorm.bias`, [D]),
      {
        // query_key_value.weight [(head_index, q/k/v, d_head), d_model] -> W_Q/W_K/W_V [head_index, d_model, d_head].
        from: [{ name: `${h}self_attention.query_key_value.weight`, dims: [3 * H * E, D] }],
        to: [`${b}attn.W_Q`, `${b}attn.W_K`, `${b}attn.W_V`],
        make: ([w]) => [0, 1, 2].map((which) => {
          const out = new Float32Array(H * D * E);
          for (let i = 0; i < H; i++) for (let e = 0; e < E; e++) {
            const row = ((i * 3 + which) * E + e) * D;
            for (let m = 0; m < D; m++) out[(i * D + m) * E + e] = w![row + m]!;
          }
          return out;
        }),
      },
      {
        // query_key_value.bias [(head_index, q/k/v, d_head)] -> b_Q/b_K/b_V [head_index, d_head].
        from: [{ name: `${h}self_attention.query_key_value.bias`, dims: [3 * H * E] }],
        to: [`${b}attn.b_Q`, `${b}attn.b_K`, `${b}attn.b_V`],
        make: ([bias]) => [0, 1, 2].map((which) => {
          const out = new Float32Array(H * E);
          for (let i = 0; i < H; i++) out.set(bias!.subarray((i * 3 + which) * E, (i * 3 + which + 1) * E), i * E);
          return out;
        }),
      },
      // dense.weight [d_model, (head_index d_head)] -> W_O [head_index, d_head, d_model]
      linearRule(`${b}attn.W_O`, `${h}self_attention.dense.weight`, D, H * E), copyRule(`${b}attn.b_O`, `${h}self_attention.dense.bias`, [D]),
      copyRule(`${b}ln2.w`, `${h}post_attention_layernorm.weight`, [D]), copyRule(`${b}ln2.b`, `${h}post_attention_layernorm.bias`, [D]),
      linearRule(`${b}mlp.W_in`, `${h}mlp.dense_h_to_4h.weight`, M, D), copyRule(`${b}mlp.b_in`, `${h}mlp.dense_h_to_4h.bias`, [M]),
      linearRule(`${b}mlp.W_out`, `${h}mlp.dense_4h_to_h.weight`, D, M), copyRule(`${b}mlp.b_out`, `${h}mlp.dense_4h_to_h.bias`, [D]),
    );
  }
  r.push(copyRule('ln_final.w', `${p}ln_f.weight`, [D]), copyRule('ln_final.b', `${p}ln_f.bias`, [D]));
  // Tied checkpoints usually omit lm_head.weight (TransformerLens reads the HF model's lm_head, the embedding then).
  const head = cfg.tie_word_embeddings ? firstPresent(sd, ['lm_head.weight', `${p}word_embeddings.weight`]) : 'lm_head.weight';
  r.push(linearRule('unembed.W_U', head, VO, D), zerosRule('unembed.b_U', VO));
  return convertWeights(sd, cfg, r, 'BLOOM', `${p}h.${n_layers}.input_layernorm.weight`);
}

export const bloom: ArchFamily = {
  name: 'bloom',
  architectures: ['BloomForCausalLM'],
  modelTypes: ['bloom'],
  config,
  weights,
};
