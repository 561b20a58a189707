/**
 * GPT-Neo (GPTNeoForCausalLM): GPT-2's block (learned positions, LayerNorm, GELU MLP, tied
 * unembedding) with two differences that matter for interpretability: attention scores are NOT
 * divided by sqrt(d_head) (use_attn_scale false), and layers alternate between global attention
 * and local attention over the last window_size keys (config.json's attention_layers, or its
 * run-length form attention_types). Projections are nn.Linear (q/k/v without bias), not GPT-2's
 * Conv1D. TransformerLens takes d_mlp = 4 · hidden_size whatever intermediate_size says.
 */
import { makeConfig, type AttnType, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, copyRule, firstPresent, headsRule, linearRule, zerosRule, type StateDict, type WeightRule } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';

/** attention_layers ["global", "local", ...], else attention_types [[["global", "local"], n], ...] expanded. */
function attentionLayers(f: HfFields, n_layers: number): AttnType[] {
  let layers: unknown[] | null = Array.isArray(f.hf['attention_layers']) ? (f.hf['attention_layers'] as unknown[]) : null;
  const types = f.hf['attention_types'];
  if (layers === null && Array.isArray(types)) {
    layers = [];
    for (const entry of types) {
      if (!Array.isArray(entry) || !Array.isArray(entry[0]) || typeof entry[1] !== 'number') {
        throw new Error(`config.json's attention_types must be a list of [[kinds...], repeats], got ${JSON.stringify(types)}`);
      }
      for (let r = 0; r < entry[1]; r++) layers.push(...(entry[0] as unknown[]));
    }
  }
  if (layers === null) throw new Error('config.json has neither attention_layers nor attention_types (needed for a GPT-Neo model: which layers attend locally)');
  if (layers.length !== n_layers) throw new Error(`config.json's attention layers list ${layers.length} kinds, expected one per layer (num_layers = ${n_layers})`);
  return layers.map((t, i) => {
    if (t === 'global' || t === 'local') return t;
    throw new Error(`config.json's attention_layers[${i}] is ${JSON.stringify(t)}; expected "global" or "local"`);
  });
}

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'GPT-Neo');
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_heads');
  const n_layers = f.num('num_layers');
  return makeConfig({
    model_name: modelName,
    n_layers,
    d_model,
    n_heads,
    d_head: Math.floor(d_model / n_heads),
    d_mlp: 4 * d_model,
    d_vocab: f.num('vocab_size'),
    n_ctx: f.num('max_position_embeddings'),
    eps: f.num('layer_norm_epsilon', 1e-5),
    act_fn: mapAct(f.str('activation_function', 'gelu_new'), 'GPT-Neo'),
    normalization_type: 'LN',
    use_attn_scale: false,
    use_local_attn: true,
    window_size: f.num('window_size', 256),
    attn_types: attentionLayers(f, n_layers),
    tie_word_embeddings: f.bool('tie_word_embeddings', true),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'GPTNeoForCausalLM',
  });
}

/**
 * transformer.{wte, wpe}, transformer.h.L.{ln_1, attn.attention.{q,k,v,out}_proj, ln_2,
 * mlp.c_fc, mlp.c_proj}, transformer.ln_f, lm_head (or the tied wte) -> TransformerLens params,
 * as its convert_neo_weights does (zero q/k/v biases, zero b_U).
 */
function weights(sd: StateDict, cfg: HookedTransformerConfig): Params {
  const { d_model: D, n_heads: H, d_head: E, d_vocab: V, d_vocab_out: VO, n_ctx, n_layers } = cfg;
  const M = cfg.d_mlp!;
  const heads = (tl: string, hf: string): WeightRule => headsRule(tl, hf, H, E, D);
  const r: WeightRule[] = [copyRule('embed.W_E', 'transformer.wte.weight', [V, D]), copyRule('pos_embed.W_pos', 'transformer.wpe.weight', [n_ctx, D])];
  for (let l = 0; l < n_layers; l++) {
    const h = `transformer.h.${l}.`;
    const b = `blocks.${l}.`;
    r.push(
      copyRule(`${b}ln1.w`, `${h}ln_1.weight`, [D]), copyRule(`${b}ln1.b`, `${h}ln_1.bias`, [D]),
      heads(`${b}attn.W_Q`, `${h}attn.attention.q_proj.weight`),
      heads(`${b}attn.W_K`, `${h}attn.attention.k_proj.weight`),
      heads(`${b}attn.W_V`, `${h}attn.attention.v_proj.weight`),
      zerosRule(`${b}attn.b_Q`, H * E), zerosRule(`${b}attn.b_K`, H * E), zerosRule(`${b}attn.b_V`, H * E),
      // out_proj.weight [d_model, (head_index d_head)] -> W_O [head_index, d_head, d_model]
      linearRule(`${b}attn.W_O`, `${h}attn.attention.out_proj.weight`, D, H * E), copyRule(`${b}attn.b_O`, `${h}attn.attention.out_proj.bias`, [D]),
      copyRule(`${b}ln2.w`, `${h}ln_2.weight`, [D]), copyRule(`${b}ln2.b`, `${h}ln_2.bias`, [D]),
      linearRule(`${b}mlp.W_in`, `${h}mlp.c_fc.weight`, M, D), copyRule(`${b}mlp.b_in`, `${h}mlp.c_fc.bias`, [M]),
      linearRule(`${b}mlp.W_out`, `${h}mlp.c_proj.weight`, D, M), copyRule(`${b}mlp.b_out`, `${h}mlp.c_proj.bias`, [D]),
    );
  }
  r.push(copyRule('ln_final.w', 'transformer.ln_f.weight', [D]), copyRule('ln_final.b', 'transformer.ln_f.bias', [D]));
  // Tied checkpoints usually omit lm_head.weight (TransformerLens reads the HF model's lm_head, the embedding then).
  const head = cfg.tie_word_embeddings ? firstPresent(sd, ['lm_head.weight', 'transformer.wte.weight']) : 'lm_head.weight';
  r.push(linearRule('unembed.W_U', head, VO, D), zerosRule('unembed.b_U', VO));
  return convertWeights(sd, cfg, r, 'GPT-Neo', `transformer.h.${n_layers}.ln_1.weight`);
}

export const gptneo: ArchFamily = {
  name: 'gpt-neo',
  architectures: ['GPTNeoForCausalLM'],
  modelTypes: ['gpt_neo'],
  config,
  weights,
};
