/**
 * Model configuration under TransformerLens's HookedTransformerConfig field names, so that
 * users can read our configs against TransformerLens docs one to one.
 */
export type ActFn = 'gelu_new' | 'gelu' | 'relu' | 'gelu_fast' | 'solu_ln';
export type NormalizationType = 'LN' | 'LNPre' | null;
export type PositionalEmbeddingType = 'standard' | 'none';

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
  tie_word_embeddings: boolean;
  /** Token id of BOS / EOS / PAD where the tokenizer has them. */
  bos_token_id: number | null;
  eos_token_id: number | null;
  original_architecture: string;
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
    tie_word_embeddings: c.tie_word_embeddings ?? false,
    bos_token_id: c.bos_token_id ?? null,
    eos_token_id: c.eos_token_id ?? null,
    original_architecture: c.original_architecture ?? 'GPT2LMHeadModel',
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
  if (!['gelu_new', 'gelu', 'relu', 'gelu_fast', 'solu_ln'].includes(cfg.act_fn)) {
    throw new Error(`config field act_fn must be one of gelu_new, gelu, relu, gelu_fast; got ${JSON.stringify(cfg.act_fn)}`);
  }
  if (!(cfg.eps > 0)) throw new Error(`config field eps must be > 0, got ${cfg.eps}`);
  return cfg;
}

/** Hugging Face GPT-2 config.json -> HookedTransformerConfig (as TransformerLens's convert_hf_model_config does). */
export function configFromHfGpt2(hf: Record<string, unknown>, modelName = 'gpt2'): HookedTransformerConfig {
  const num = (k: string, fallback?: number): number => {
    const v = hf[k];
    if (typeof v === 'number') return v;
    if (fallback !== undefined) return fallback;
    throw new Error(`config.json is missing the number field "${k}" (a GPT-2 config needs n_layer, n_embd, n_head, vocab_size, n_positions)`);
  };
  const mt = hf['model_type'];
  if (mt !== undefined && mt !== 'gpt2') {
    throw new Error(`config.json has model_type ${JSON.stringify(mt)}; MechLens loads GPT-2-family checkpoints (model_type "gpt2")`);
  }
  const act = (hf['activation_function'] as string | undefined) ?? 'gelu_new';
  const actMap: Record<string, HookedTransformerConfig['act_fn']> = {
    gelu_new: 'gelu_new', gelu_pytorch_tanh: 'gelu_new', gelu: 'gelu', relu: 'relu', gelu_fast: 'gelu_fast',
  };
  const act_fn = actMap[act];
  if (!act_fn) throw new Error(`config.json activation_function ${JSON.stringify(act)} is not supported (use gelu_new, gelu or relu)`);
  const d_model = num('n_embd');
  const n_heads = num('n_head');
  const nInner = hf['n_inner'];
  return makeConfig({
    model_name: modelName,
    n_layers: num('n_layer'),
    d_model,
    n_heads,
    d_head: Math.floor(d_model / n_heads),
    d_mlp: typeof nInner === 'number' ? nInner : 4 * d_model,
    d_vocab: num('vocab_size'),
    n_ctx: num('n_positions', num('n_ctx', 1024)),
    act_fn,
    normalization_type: 'LN',
    eps: num('layer_norm_epsilon', 1e-5),
    tie_word_embeddings: hf['tie_word_embeddings'] !== false,
    bos_token_id: typeof hf['bos_token_id'] === 'number' ? (hf['bos_token_id'] as number) : null,
    eos_token_id: typeof hf['eos_token_id'] === 'number' ? (hf['eos_token_id'] as number) : null,
    original_architecture: 'GPT2LMHeadModel',
  });
}
