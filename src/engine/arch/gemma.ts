/**
 * Gemma 1 (GemmaForCausalLM), Gemma 2 (Gemma2ForCausalLM) and Gemma 3 (Gemma3ForCausalLM), as
 * TransformerLens 3.9 runs them.
 *
 * Both: RMSNorm whose HF weight w is applied as (1 + w) (TransformerLens stores 1 + w, so its
 * norms are plain RMSNorm), the token embedding multiplied by sqrt(d_model) (folded into W_E;
 * the tied unembedding stays unscaled), full rotary in GPT-NeoX's halves layout, a gated MLP, no
 * biases, keys and values always stored as _W_K / _W_V with n_key_value_heads heads (TransformerLens
 * sets n_key_value_heads for every Gemma, even when it equals n_heads), head_dim from the config.
 *
 * Gemma 1: TransformerLens's own Gemma configs say act_fn "gelu" (exact GELU), where the HF model
 * computes GELU's tanh approximation; MechLens follows TransformerLens.
 *
 * Gemma 2 adds norms after attention and after the MLP (ln1_post / ln2_post; the HF
 * post_attention_layernorm is ln1_post here, pre_feedforward_layernorm is ln2), attention
 * scores divided by sqrt(query_pre_attn_scalar), softcaps on attention scores and final logits,
 * GELU-tanh, and sliding-window attention on the layers config.json's layer_types calls
 * "sliding_attention" (without layer_types, the even layers, as HF and TransformerLens do).
 *
 * Gemma 3 (Gemma3ForCausalLM, the text-only 270M / 1B checkpoints and text-only exports): Gemma 2's
 * block without softcaps (unless config.json sets them), per-head q/k RMSNorm with (1 + w) gains,
 * five local layers to one global (layer_types, else sliding_window_pattern), and rotary with its
 * own base on local layers (rotary_base_local) and optional linear scaling on global ones
 * (rotary_scaling_factor). The multimodal Gemma3ForConditionalGeneration checkpoints are not read.
 *
 * TransformerLens 3.9 has no config conversion for Gemma checkpoints (only fixed configs for the
 * official google/gemma-* names); the mapping below gives those configs' values with the sizes
 * read from config.json.
 */
import { makeConfig, type AttnType, type ConfigInput, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, firstPresent, headsRule, linearRule, zerosRule, type StateDict, type WeightRule } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';

/** The fields every Gemma shares (sizes, norms, rotary, gated MLP, grouped-query heads). */
function commonConfig(f: HfFields, modelName: string, arch: string): ConfigInput {
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const headDim = f.optNum('head_dim');
  const d_head = headDim !== null && headDim > 0 ? headDim : Math.floor(d_model / n_heads);
  return {
    model_name: modelName,
    n_layers: f.num('num_hidden_layers'),
    d_model,
    n_heads,
    d_head,
    d_mlp: f.num('intermediate_size'),
    d_vocab: f.num('vocab_size'),
    n_ctx: f.num('max_position_embeddings', 8192),
    eps: f.num('rms_norm_eps', 1e-6),
    n_key_value_heads: f.num('num_key_value_heads', n_heads),
    normalization_type: 'RMS',
    positional_embedding_type: 'rotary',
    rotary_dim: d_head,
    rotary_adjacent_pairs: false,
    rotary_base: f.ropeTheta(),
    gated_mlp: true,
    tie_word_embeddings: f.bool('tie_word_embeddings', true),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: arch,
  };
}

function gemma1Config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'Gemma');
  return makeConfig({ ...commonConfig(f, modelName, 'GemmaForCausalLM'), act_fn: 'gelu' });
}

/** A positive number field, or null when absent / null (Gemma 2 writes null for "no softcap"). */
function optPositive(f: HfFields, k: string): number | null {
  const v = f.optNum(k);
  return v !== null && v > 0 ? v : null;
}

/**
 * Which layers are local: config.json's layer_types ("sliding_attention" / "full_attention",
 * transformers 5), else the even layers (Gemma 2's fixed alternation, starting local).
 */
export function slidingLayers(f: HfFields, n_layers: number, fallback: (layer: number) => boolean): AttnType[] {
  const lt = f.hf['layer_types'];
  if (Array.isArray(lt)) {
    if (lt.length !== n_layers) throw new Error(`config.json's layer_types has ${lt.length} entries, expected one per layer (num_hidden_layers = ${n_layers})`);
    return lt.map((t, i) => {
      if (t === 'sliding_attention') return 'local';
      if (t === 'full_attention') return 'global';
      throw new Error(`config.json's layer_types[${i}] is ${JSON.stringify(t)}; expected "sliding_attention" or "full_attention"`);
    });
  }
  return Array.from({ length: n_layers }, (_, l) => (fallback(l) ? 'local' : 'global'));
}

function gemma2Config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'Gemma 2');
  const c = commonConfig(f, modelName, 'Gemma2ForCausalLM');
  const window = f.num('sliding_window', 4096);
  return makeConfig({
    ...c,
    act_fn: mapAct(f.str('hidden_activation', f.str('hidden_act', 'gelu_pytorch_tanh')), 'Gemma 2'),
    use_attn_scale: true,
    attn_scale: Math.sqrt(f.num('query_pre_attn_scalar', c.d_head!)),
    use_local_attn: true,
    window_size: window,
    attn_types: slidingLayers(f, c.n_layers, (l) => l % 2 === 0),
    attn_scores_soft_cap: optPositive(f, 'attn_logit_softcapping'),
    output_logits_soft_cap: optPositive(f, 'final_logit_softcapping'),
    use_normalization_before_and_after: true,
  });
}

/**
 * Gemma 3's rotary settings: global layers' base and linear scaling, local layers' base, from
 * transformers 5's rope_parameters {full_attention: {...}, sliding_attention: {...}} or
 * transformers 4's rope_theta / rope_local_base_freq / rope_scaling.
 */
function gemma3Rope(f: HfFields): { rotary_base: number; rotary_base_local: number; rotary_scaling_factor: number } {
  const rp = f.obj('rope_parameters');
  const part = (k: string): Record<string, unknown> | null => {
    const v = rp?.[k];
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  };
  const num = (o: Record<string, unknown> | null, k: string): number | null => (typeof o?.[k] === 'number' ? (o[k] as number) : null);
  const full = part('full_attention');
  const sliding = part('sliding_attention');
  const scaling = full ?? f.obj('rope_scaling');
  const type = String(scaling?.['rope_type'] ?? scaling?.['type'] ?? 'default');
  if (type !== 'default' && type !== 'linear') {
    throw new Error(`config.json's global-layer rope_type ${JSON.stringify(type)} is not supported for Gemma 3 (supported: default, linear)`);
  }
  return {
    rotary_base: num(full, 'rope_theta') ?? f.optNum('rope_theta') ?? 1_000_000,
    rotary_base_local: num(sliding, 'rope_theta') ?? f.optNum('rope_local_base_freq') ?? 10_000,
    rotary_scaling_factor: type === 'linear' ? (num(scaling, 'factor') ?? 1) : 1,
  };
}

function gemma3Config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'Gemma 3');
  const c = commonConfig(f, modelName, 'Gemma3ForCausalLM');
  // Every `pattern`-th layer is global (sliding_window_pattern 6: five local, one global).
  const pattern = f.optNum('sliding_window_pattern') ?? f.optNum('_sliding_window_pattern') ?? 6;
  return makeConfig({
    ...c,
    ...gemma3Rope(f),
    act_fn: mapAct(f.str('hidden_activation', f.str('hidden_act', 'gelu_pytorch_tanh')), 'Gemma 3'),
    use_attn_scale: true,
    attn_scale: Math.sqrt(f.num('query_pre_attn_scalar', c.d_head!)),
    use_local_attn: true,
    window_size: f.num('sliding_window', 4096),
    attn_types: slidingLayers(f, c.n_layers, (l) => (l + 1) % pattern !== 0),
    attn_scores_soft_cap: optPositive(f, 'attn_logit_softcapping'),
    output_logits_soft_cap: optPositive(f, 'final_logit_softcapping'),
    use_normalization_before_and_after: true,
    use_qk_norm: true,
  });
}

/** HF RMSNorm weight w -> TransformerLens's 1 + w (float32, as TransformerLens adds it). */
const plusOne = (tl: string, hf: string, D: number): WeightRule => ({
  from: [{ name: hf, dims: [D] }], to: [tl], make: ([s]) => [s!.map((v) => v + 1)],
});

/**
 * model.embed_tokens, model.layers.L.{input_layernorm, self_attn.{q,k,v,o}_proj,
 * post_attention_layernorm, [pre,post]_feedforward_layernorm, mlp.{gate,up,down}_proj}, model.norm,
 * lm_head (or the tied embedding) -> TransformerLens params, as its convert_gemma_weights does.
 */
export function gemmaWeights(sd: StateDict, cfg: HookedTransformerConfig, family: string): Params {
  const { d_model: D, n_heads: H, d_head: E, d_vocab: V, d_vocab_out: VO, n_layers } = cfg;
  const KV = cfg.n_key_value_heads ?? H;
  const M = cfg.d_mlp!;
  const post = cfg.use_normalization_before_and_after;
  const heads = (tl: string, hf: string, n: number): WeightRule => headsRule(tl, hf, n, E, D);
  // W_E = embed_tokens · sqrt(d_model), a float32 product as TransformerLens computes it.
  const scale = Math.fround(Math.sqrt(D));
  const r: WeightRule[] = [{
    from: [{ name: 'model.embed_tokens.weight', dims: [V, D] }], to: ['embed.W_E'],
    // In place when the source is this rule's own (a quarter of Gemma 2's weights: no second copy).
    make: ([s], fresh) => {
      const out = fresh ? s! : new Float32Array(s!.length);
      for (let i = 0; i < out.length; i++) out[i] = s![i]! * scale;
      return [out];
    },
    scaledBy: scale,
  }];
  for (let l = 0; l < n_layers; l++) {
    const h = `model.layers.${l}.`;
    const b = `blocks.${l}.attn.`;
    r.push(
      plusOne(`blocks.${l}.ln1.w`, `${h}input_layernorm.weight`, D),
      heads(`${b}W_Q`, `${h}self_attn.q_proj.weight`, H),
      heads(`${b}_W_K`, `${h}self_attn.k_proj.weight`, KV),
      heads(`${b}_W_V`, `${h}self_attn.v_proj.weight`, KV),
      zerosRule(`${b}b_Q`, H * E), zerosRule(`${b}_b_K`, KV * E), zerosRule(`${b}_b_V`, KV * E),
      // o_proj.weight [d_model, (head_index d_head)] -> W_O [head_index, d_head, d_model]
      linearRule(`${b}W_O`, `${h}self_attn.o_proj.weight`, D, H * E), zerosRule(`${b}b_O`, D),
      linearRule(`blocks.${l}.mlp.W_in`, `${h}mlp.up_proj.weight`, M, D),
      linearRule(`blocks.${l}.mlp.W_gate`, `${h}mlp.gate_proj.weight`, M, D),
      linearRule(`blocks.${l}.mlp.W_out`, `${h}mlp.down_proj.weight`, D, M),
      zerosRule(`blocks.${l}.mlp.b_in`, M), zerosRule(`blocks.${l}.mlp.b_out`, D),
    );
    if (cfg.use_qk_norm) {
      // Gemma 3: per-head q/k RMSNorm gains [d_head], (1 + w) like every Gemma norm.
      r.push(plusOne(`${b}q_norm.w`, `${h}self_attn.q_norm.weight`, E), plusOne(`${b}k_norm.w`, `${h}self_attn.k_norm.weight`, E));
    }
    if (post) {
      // Gemma 2: post_attention_layernorm normalizes the attention output; the MLP has its own pair.
      r.push(
        plusOne(`blocks.${l}.ln1_post.w`, `${h}post_attention_layernorm.weight`, D),
        plusOne(`blocks.${l}.ln2.w`, `${h}pre_feedforward_layernorm.weight`, D),
        plusOne(`blocks.${l}.ln2_post.w`, `${h}post_feedforward_layernorm.weight`, D),
      );
    } else {
      // Gemma 1: post_attention_layernorm is the norm before the MLP.
      r.push(plusOne(`blocks.${l}.ln2.w`, `${h}post_attention_layernorm.weight`, D));
    }
  }
  r.push(plusOne('ln_final.w', 'model.norm.weight', D));
  // Tied checkpoints usually omit lm_head.weight (TransformerLens reads the HF model's lm_head, the embedding then).
  const head = cfg.tie_word_embeddings ? firstPresent(sd, ['lm_head.weight', 'model.embed_tokens.weight']) : 'lm_head.weight';
  r.push(linearRule('unembed.W_U', head, VO, D), zerosRule('unembed.b_U', VO));
  return convertWeights(sd, cfg, r, family, `model.layers.${n_layers}.input_layernorm.weight`);
}

export const gemma: ArchFamily = {
  name: 'gemma',
  architectures: ['GemmaForCausalLM'],
  modelTypes: ['gemma'],
  config: gemma1Config,
  weights: (sd, cfg) => gemmaWeights(sd, cfg, 'Gemma'),
};

export const gemma2: ArchFamily = {
  name: 'gemma2',
  architectures: ['Gemma2ForCausalLM'],
  modelTypes: ['gemma2'],
  config: gemma2Config,
  weights: (sd, cfg) => gemmaWeights(sd, cfg, 'Gemma 2'),
};

export const gemma3: ArchFamily = {
  name: 'gemma3',
  architectures: ['Gemma3ForCausalLM'],
  modelTypes: ['gemma3_text'],
  config: gemma3Config,
  weights: (sd, cfg) => gemmaWeights(sd, cfg, 'Gemma 3'),
};
