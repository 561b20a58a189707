/**
 * Model configuration under TransformerLens's HookedTransformerConfig field names, so that
 * users can read our configs against TransformerLens docs one to one.
 */
export type ActFn = 'gelu_new' | 'gelu' | 'relu' | 'gelu_fast' | 'solu_ln' | 'silu' | 'gelu_pytorch_tanh';
export const ACT_FNS: readonly ActFn[] = ['gelu_new', 'gelu', 'relu', 'gelu_fast', 'solu_ln', 'silu', 'gelu_pytorch_tanh'];
/** LN: (x - mean) / scale * w + b; LNPre: without w, b (folded); RMS: x / rms * w; RMSPre: x / rms. */
export type NormalizationType = 'LN' | 'LNPre' | 'RMS' | 'RMSPre' | null;
export type PositionalEmbeddingType = 'standard' | 'rotary' | 'alibi' | 'none';
export type AttnType = 'global' | 'local';

export interface HookedTransformerConfig {
  model_name: string;
  n_layers: number;
  d_model: number;
  n_heads: number;
  d_head: number;
  /** null for attention-only models. */
  d_mlp: number | null;
  d_vocab: number;
  /** d_vocab_out: the unembedding's width; equals d_vocab for GPT-2. */
  d_vocab_out: number;
  n_ctx: number;
  act_fn: ActFn;
  normalization_type: NormalizationType;
  eps: number;
  attn_only: boolean;
  /** 'standard' adds W_pos; 'none' means positional embeddings are absent (or zeroed and frozen). */
  positional_embedding_type: PositionalEmbeddingType;
  /** TransformerLens default for GPT-2 is true: 1/sqrt(d_head). */
  use_attn_scale: boolean;
  /**
   * What attention scores are divided by when use_attn_scale: sqrt(d_head) by default; Gemma 2
   * takes sqrt(query_pre_attn_scalar) from its config (12 for the 27B model, whose d_head is 128).
   */
  attn_scale: number;
  tie_word_embeddings: boolean;
  /** Token id of BOS / EOS / PAD where the tokenizer has them. */
  bos_token_id: number | null;
  eos_token_id: number | null;
  original_architecture: string;
  /** Grouped-query attention: keys and values have this many heads (null: n_heads, plain MHA). */
  n_key_value_heads: number | null;
  /** Rotary embedding on the first rotary_dim dims of each q/k head (null unless rotary). */
  rotary_dim: number | null;
  rotary_base: number;
  /** Gemma 3: the rotary base of local (sliding-window) layers; null: rotary_base everywhere. */
  rotary_base_local: number | null;
  /** Gemma 3 (4B and up): linear rope scaling of global layers, frequencies multiplied by it (1: none). */
  rotary_scaling_factor: number;
  /** true: GPT-J's interleaved pairs (x0,x1),(x2,x3)…; false: GPT-NeoX's halves (x_i, x_{i+n/2}). */
  rotary_adjacent_pairs: boolean;
  /** Llama 3's NTK-by-parts rope scaling (TransformerLens's use_NTK_by_parts_rope and its fields). */
  use_NTK_by_parts_rope: boolean;
  NTK_by_parts_factor: number;
  NTK_by_parts_low_freq_factor: number;
  NTK_by_parts_high_freq_factor: number;
  NTK_original_ctx_len: number;
  /** MLP is act(x W_gate) * (x W_in) + b_in (Llama's SwiGLU). */
  gated_mlp: boolean;
  /** Attention and MLP both read resid_pre and add into resid_post (no resid_mid). */
  parallel_attn_mlp: boolean;
  /** Sliding-window attention: layers whose attn_types entry is 'local' see window_size keys back. */
  use_local_attn: boolean;
  window_size: number | null;
  attn_types: AttnType[] | null;
  /** Softcaps c·tanh(x / c) on attention scores / final logits (null: none). */
  attn_scores_soft_cap: number | null;
  output_logits_soft_cap: number | null;
  /**
   * Gemma 2/3: a second norm after attention (ln1_post) and after the MLP (ln2_post), applied to
   * their outputs before hook_attn_out / hook_mlp_out. Always RMS with its own weight, which
   * fold_ln leaves in place (it reads no weight it could fold into).
   */
  use_normalization_before_and_after: boolean;
  /** Whether to_tokens prepends BOS by default (TransformerLens's default_prepend_bos). */
  default_prepend_bos: boolean;
  /**
   * RMSNorm over each query and key head after the projections, before rotary (Qwen3, Gemma 3:
   * attn.q_norm.w / attn.k_norm.w [d_head], shared by all heads). OLMo-2 style norms over the
   * whole projection are picked by original_architecture instead, as in TransformerLens (qkNorm).
   */
  use_qk_norm: boolean;
  /**
   * BLOOM: a LayerNorm on the token embedding (embed.ln.w / embed.ln.b; hooks embed.ln.hook_scale /
   * hook_normalized, before hook_embed). Always LN with its weights: fold_ln leaves it in place,
   * as TransformerLens does (its Embed builds it once, whatever processing later says).
   */
  post_embedding_ln: boolean;
  /**
   * Mixture-of-experts MLP (Mixtral, OLMoE; TransformerLens's MoE): num_experts gated experts,
   * of which a router picks experts_per_token per token (both null: a dense MLP).
   */
  num_experts: number | null;
  experts_per_token: number | null;
  /** MoE: the chosen experts' router probabilities are renormalized to sum to 1 (Mixtral). */
  norm_topk_prob: boolean;
  /** OLMoE / OLMo 1: q, k and v clamped to [-clip_qkv, clip_qkv] after the projections and q/k norms (null: no clamp). */
  clip_qkv: number | null;
}

export type ConfigInput = Partial<HookedTransformerConfig> &
  Pick<HookedTransformerConfig, 'n_layers' | 'd_model' | 'n_heads' | 'd_vocab' | 'n_ctx'>;

/** Fills TransformerLens's defaults and validates; throws with the offending field named. */
export function makeConfig(c: ConfigInput): HookedTransformerConfig {
  const d_head = c.d_head ?? Math.floor(c.d_model / c.n_heads);
  const attn_only = c.attn_only ?? false;
  const cfg: HookedTransformerConfig = {
    model_name: c.model_name ?? 'custom',
    n_layers: c.n_layers,
    d_model: c.d_model,
    n_heads: c.n_heads,
    d_head,
    d_mlp: attn_only ? null : (c.d_mlp ?? 4 * c.d_model),
    d_vocab: c.d_vocab,
    d_vocab_out: c.d_vocab_out ?? c.d_vocab,
    n_ctx: c.n_ctx,
    act_fn: c.act_fn ?? 'gelu_new',
    normalization_type: c.normalization_type === undefined ? 'LN' : c.normalization_type,
    eps: c.eps ?? 1e-5,
    attn_only,
    positional_embedding_type: c.positional_embedding_type ?? 'standard',
    use_attn_scale: c.use_attn_scale ?? true,
    attn_scale: c.attn_scale ?? Math.sqrt(d_head),
    tie_word_embeddings: c.tie_word_embeddings ?? false,
    bos_token_id: c.bos_token_id ?? null,
    eos_token_id: c.eos_token_id ?? null,
    original_architecture: c.original_architecture ?? 'GPT2LMHeadModel',
    n_key_value_heads: c.n_key_value_heads ?? null,
    rotary_dim: (c.positional_embedding_type ?? 'standard') === 'rotary' ? (c.rotary_dim ?? d_head) : null,
    rotary_base: c.rotary_base ?? 10000,
    rotary_base_local: c.rotary_base_local ?? null,
    rotary_scaling_factor: c.rotary_scaling_factor ?? 1,
    rotary_adjacent_pairs: c.rotary_adjacent_pairs ?? false,
    use_NTK_by_parts_rope: c.use_NTK_by_parts_rope ?? false,
    NTK_by_parts_factor: c.NTK_by_parts_factor ?? 8,
    NTK_by_parts_low_freq_factor: c.NTK_by_parts_low_freq_factor ?? 1,
    NTK_by_parts_high_freq_factor: c.NTK_by_parts_high_freq_factor ?? 4,
    NTK_original_ctx_len: c.NTK_original_ctx_len ?? 8192,
    gated_mlp: c.gated_mlp ?? false,
    parallel_attn_mlp: c.parallel_attn_mlp ?? false,
    use_local_attn: c.use_local_attn ?? false,
    window_size: c.window_size ?? null,
    attn_types: c.attn_types ?? null,
    attn_scores_soft_cap: c.attn_scores_soft_cap ?? null,
    output_logits_soft_cap: c.output_logits_soft_cap ?? null,
    use_normalization_before_and_after: c.use_normalization_before_and_after ?? false,
    default_prepend_bos: c.default_prepend_bos ?? true,
    use_qk_norm: c.use_qk_norm ?? false,
    post_embedding_ln: c.post_embedding_ln ?? false,
    num_experts: c.num_experts ?? null,
    experts_per_token: c.experts_per_token ?? null,
    norm_topk_prob: c.norm_topk_prob ?? false,
    clip_qkv: c.clip_qkv ?? null,
  };
  const positive: (keyof HookedTransformerConfig)[] = ['n_layers', 'd_model', 'n_heads', 'd_head', 'd_vocab', 'd_vocab_out', 'n_ctx'];
  for (const k of positive) {
    const v = cfg[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new Error(`config field ${k} must be a positive integer, got ${JSON.stringify(v)}`);
    }
  }
  if (cfg.d_mlp !== null && (!Number.isInteger(cfg.d_mlp) || cfg.d_mlp <= 0)) {
    throw new Error(`config field d_mlp must be a positive integer (or attn_only: true), got ${JSON.stringify(cfg.d_mlp)}`);
  }
  if (!ACT_FNS.includes(cfg.act_fn)) {
    throw new Error(`config field act_fn must be one of ${ACT_FNS.join(', ')}; got ${JSON.stringify(cfg.act_fn)}`);
  }
  const kv = cfg.n_key_value_heads;
  if (kv !== null && (!Number.isInteger(kv) || kv <= 0 || cfg.n_heads % kv !== 0)) {
    throw new Error(`config field n_key_value_heads must be a positive divisor of n_heads = ${cfg.n_heads}, got ${JSON.stringify(kv)}`);
  }
  if (cfg.rotary_dim !== null && (!Number.isInteger(cfg.rotary_dim) || cfg.rotary_dim <= 0 || cfg.rotary_dim % 2 !== 0 || cfg.rotary_dim > cfg.d_head)) {
    throw new Error(`config field rotary_dim must be an even integer in 2..d_head (${cfg.d_head}), got ${JSON.stringify(cfg.rotary_dim)}`);
  }
  if (cfg.use_local_attn && (cfg.window_size === null || !Number.isInteger(cfg.window_size) || cfg.window_size <= 0)) {
    throw new Error(`config field window_size must be a positive integer when use_local_attn is true, got ${JSON.stringify(cfg.window_size)}`);
  }
  if (cfg.attn_types !== null && cfg.attn_types.length !== cfg.n_layers) {
    throw new Error(`config field attn_types must list one of 'global' / 'local' per layer (${cfg.n_layers}), got ${cfg.attn_types.length}`);
  }
  if ((cfg.num_experts === null) !== (cfg.experts_per_token === null)) {
    throw new Error(`config fields num_experts and experts_per_token must be given together (a mixture-of-experts MLP), got ${cfg.num_experts} and ${cfg.experts_per_token}`);
  }
  if (cfg.num_experts !== null) {
    const E = cfg.num_experts, k = cfg.experts_per_token!;
    if (!Number.isInteger(E) || E <= 0) throw new Error(`config field num_experts must be a positive integer, got ${JSON.stringify(E)}`);
    if (!Number.isInteger(k) || k <= 0 || k > E) throw new Error(`config field experts_per_token must be an integer in 1..num_experts (${E}), got ${JSON.stringify(k)}`);
    if (!cfg.gated_mlp) throw new Error('config field gated_mlp must be true with num_experts: every expert is a gated MLP (TransformerLens\'s MoEGatedMLP)');
    if (cfg.normalization_type !== 'RMS' && cfg.normalization_type !== 'RMSPre') {
      throw new Error(`config field normalization_type must be RMS or RMSPre with num_experts (the MoE families are RMS-normalized; folding a LayerNorm's bias into experts is not defined here), got ${JSON.stringify(cfg.normalization_type)}`);
    }
    if (cfg.attn_only || cfg.parallel_attn_mlp || cfg.use_normalization_before_and_after || cfg.act_fn === 'solu_ln') {
      throw new Error('config: num_experts cannot be combined with attn_only, parallel_attn_mlp, use_normalization_before_and_after or act_fn solu_ln');
    }
  }
  if (cfg.clip_qkv !== null && !(cfg.clip_qkv > 0)) throw new Error(`config field clip_qkv must be > 0 (or null), got ${cfg.clip_qkv}`);
  if (!(cfg.attn_scale > 0)) throw new Error(`config field attn_scale must be > 0, got ${cfg.attn_scale}`);
  if (!(cfg.eps > 0)) throw new Error(`config field eps must be > 0, got ${cfg.eps}`);
  return cfg;
}

/** Key/value heads: n_key_value_heads under grouped-query attention, else n_heads. */
export function nKvHeads(cfg: Pick<HookedTransformerConfig, 'n_heads' | 'n_key_value_heads'>): number {
  return cfg.n_key_value_heads ?? cfg.n_heads;
}

/** The attention type of a layer: 'local' only when use_local_attn and attn_types say so. */
export function attnType(cfg: HookedTransformerConfig, layer: number): AttnType {
  if (!cfg.use_local_attn) return 'global';
  return cfg.attn_types?.[layer] ?? 'local';
}

/**
 * Architectures whose q/k RMSNorm runs over the whole projection (all heads' features at once,
 * before the head split): TransformerLens 3.9 keys this on original_architecture, not on a flag.
 */
export const WHOLE_PROJECTION_QK_NORM: readonly string[] = ['Olmo2ForCausalLM', 'Olmo3ForCausalLM', 'OlmoeForCausalLM'];

/**
 * The model's q/k norm, as TransformerLens picks it: 'head' (use_qk_norm: each head's d_head
 * features, gains [d_head]), 'whole' (OLMo-2/3, OLMoE: each position's n_heads·d_head query
 * features and n_key_value_heads·d_head key features, gains of those sizes), or null.
 */
export function qkNorm(cfg: { use_qk_norm: boolean; original_architecture: string }): 'head' | 'whole' | null {
  if (cfg.use_qk_norm) return 'head';
  return WHOLE_PROJECTION_QK_NORM.includes(cfg.original_architecture) ? 'whole' : null;
}

/**
 * Post-norm decoders (OLMo-2/3): ln1 / ln2 normalize each sublayer's OUTPUT, before hook_attn_out
 * / hook_mlp_out and the residual add, and the sublayers read the residual stream unnormalized.
 * TransformerLens 3.9 keys this on original_architecture (POST_NORM_ARCHITECTURES) and refuses
 * fold_ln and centring of writing weights for them (the norm's gain sits on no reading weight).
 */
export const POST_NORM_ARCHITECTURES: readonly string[] = ['Olmo2ForCausalLM', 'Olmo3ForCausalLM'];

export function isPostNormArch(cfg: Pick<HookedTransformerConfig, 'original_architecture'>): boolean {
  return POST_NORM_ARCHITECTURES.includes(cfg.original_architecture);
}

/** Whether the MLP is a mixture of experts (TransformerLens's MoE). */
export function isMoe(cfg: Pick<HookedTransformerConfig, 'num_experts'>): boolean {
  return cfg.num_experts !== null && cfg.num_experts !== undefined && cfg.num_experts > 0;
}

/** RMS-family norms (no centring): RMS, RMSPre. */
export function isRmsNorm(cfg: Pick<HookedTransformerConfig, 'normalization_type'>): boolean {
  return cfg.normalization_type === 'RMS' || cfg.normalization_type === 'RMSPre';
}
