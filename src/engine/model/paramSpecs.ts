/**
 * The one list of a model's parameters: TransformerLens state-dict names, dims and axis names,
 * derived from the config alone. Loading checks converted checkpoints against it, weight
 * processing checks shapes with it, the trainer lays out its flat parameter vector by it, and
 * random / built-in models are drawn from it: a new family's parameters appear everywhere at once.
 *
 *   embed.W_E [d_vocab, d_model]                    pos_embed.W_pos [n_ctx, d_model] (standard only)
 *   blocks.L.ln1.w / .b [d_model]                   (LN: w and b; RMS: w; LNPre / RMSPre: none)
 *   blocks.L.attn.W_Q [head_index, d_model, d_head] b_Q [head_index, d_head]
 *   blocks.L.attn.W_K / W_V [kv_head, d_model, d_head], b_K / b_V [kv_head, d_head]
 *       (named _W_K, _b_K, _W_V, _b_V under grouped-query attention, as TransformerLens stores them)
 *   blocks.L.attn.W_O [head_index, d_head, d_model] b_O [d_model]
 *   blocks.L.attn.q_norm.w / k_norm.w [d_head] (per-head q/k norm), or [(head_index d_head)] and
 *       [(kv_head d_head)] (OLMo-2's norm over the whole projection)
 *   blocks.L.ln1_post.w / ln2_post.w [d_model] (Gemma 2/3's norms after attention and the MLP)
 *   blocks.L.ln2.*, blocks.L.mlp.W_in [d_model, d_mlp] (W_gate too when gated) b_in [d_mlp]
 *   blocks.L.mlp.W_out [d_mlp, d_model] b_out [d_model]
 *   mixture of experts instead (TransformerLens's MoE, whose weights are nn.Linear modules, so
 *   their state-dict names end in .weight and are [d_out, d_in]): the router
 *   blocks.L.mlp.W_gate.weight [expert, d_model]; per expert e blocks.L.mlp.experts.e.W_gate.weight
 *   and W_in.weight [d_mlp, d_model], W_out.weight [d_model, d_mlp]; no biases
 *   ln_final.*, unembed.W_U [d_model, d_vocab_out] b_U [d_vocab_out]
 */
import { isMoe, qkNorm, type HookedTransformerConfig } from './config.js';

export interface ParamSpec {
  name: string;
  dims: number[];
  axes: string[];
  /** Matrices (W_*) vs biases / norm weights; the trainer's decay policy 'matrices' reads it. */
  isMatrix: boolean;
}

/** A key/value parameter's state-dict name: `_W_K` under grouped-query attention, else `W_K`. */
export function kvParamName(cfg: Pick<HookedTransformerConfig, 'n_key_value_heads'>, name: 'W_K' | 'W_V' | 'b_K' | 'b_V'): string {
  return cfg.n_key_value_heads === null ? name : `_${name}`;
}

/** Which weights a norm of this type has. */
function normParams(t: HookedTransformerConfig['normalization_type']): ('w' | 'b')[] {
  if (t === 'LN') return ['w', 'b'];
  if (t === 'RMS') return ['w'];
  return [];
}

/**
 * Parameters in TransformerLens state-dict order. `includePos` defaults to whether the model has
 * learned positional embeddings (the trainer leaves them out when they are zeroed and frozen).
 */
export function paramSpecs(cfg: HookedTransformerConfig, opts: { includePos?: boolean } = {}): ParamSpec[] {
  const { d_model: d, n_heads: H, d_head: dh, d_vocab: V, d_vocab_out: Vo, n_ctx } = cfg;
  const KV = cfg.n_key_value_heads ?? H;
  const out: ParamSpec[] = [];
  const add = (name: string, dims: number[], axes: string[]): void => {
    out.push({ name, dims, axes, isMatrix: /(^|\.)_?W_[A-Za-z]+(\.weight)?$/.test(name) });
  };
  const norm = (prefix: string): void => {
    for (const p of normParams(cfg.normalization_type)) add(`${prefix}.${p}`, [d], ['d_model']);
  };
  add('embed.W_E', [V, d], ['d_vocab', 'd_model']);
  // BLOOM's embedding LayerNorm keeps its weights in every processing mode (fold_ln leaves it).
  if (cfg.post_embedding_ln) for (const p of ['w', 'b']) add(`embed.ln.${p}`, [d], ['d_model']);
  if (opts.includePos ?? cfg.positional_embedding_type === 'standard') add('pos_embed.W_pos', [n_ctx, d], ['n_ctx', 'd_model']);
  for (let l = 0; l < cfg.n_layers; l++) {
    const b = `blocks.${l}`;
    norm(`${b}.ln1`);
    add(`${b}.attn.W_Q`, [H, d, dh], ['head_index', 'd_model', 'd_head']);
    add(`${b}.attn.${kvParamName(cfg, 'W_K')}`, [KV, d, dh], ['head_index', 'd_model', 'd_head']);
    add(`${b}.attn.${kvParamName(cfg, 'W_V')}`, [KV, d, dh], ['head_index', 'd_model', 'd_head']);
    add(`${b}.attn.W_O`, [H, dh, d], ['head_index', 'd_head', 'd_model']);
    add(`${b}.attn.b_Q`, [H, dh], ['head_index', 'd_head']);
    add(`${b}.attn.${kvParamName(cfg, 'b_K')}`, [KV, dh], ['head_index', 'd_head']);
    add(`${b}.attn.${kvParamName(cfg, 'b_V')}`, [KV, dh], ['head_index', 'd_head']);
    add(`${b}.attn.b_O`, [d], ['d_model']);
    // Gemma 2/3's post-norms keep their weight in every processing mode (fold_ln leaves them).
    const post = cfg.use_normalization_before_and_after && cfg.normalization_type !== null;
    if (post) add(`${b}.ln1_post.w`, [d], ['d_model']);
    const qk = qkNorm(cfg);
    if (qk === 'head') {
      add(`${b}.attn.q_norm.w`, [dh], ['d_head']);
      add(`${b}.attn.k_norm.w`, [dh], ['d_head']);
    } else if (qk === 'whole') {
      add(`${b}.attn.q_norm.w`, [H * dh], ['head_index_d_head']);
      add(`${b}.attn.k_norm.w`, [KV * dh], ['head_index_d_head']);
    }
    if (!cfg.attn_only) {
      const dm = cfg.d_mlp!;
      norm(`${b}.ln2`);
      if (isMoe(cfg)) {
        add(`${b}.mlp.W_gate.weight`, [cfg.num_experts!, d], ['expert', 'd_model']);
        for (let e = 0; e < cfg.num_experts!; e++) {
          add(`${b}.mlp.experts.${e}.W_in.weight`, [dm, d], ['d_mlp', 'd_model']);
          add(`${b}.mlp.experts.${e}.W_out.weight`, [d, dm], ['d_model', 'd_mlp']);
          add(`${b}.mlp.experts.${e}.W_gate.weight`, [dm, d], ['d_mlp', 'd_model']);
        }
        continue;
      }
      add(`${b}.mlp.W_in`, [d, dm], ['d_model', 'd_mlp']);
      if (cfg.gated_mlp) add(`${b}.mlp.W_gate`, [d, dm], ['d_model', 'd_mlp']);
      add(`${b}.mlp.b_in`, [dm], ['d_mlp']);
      add(`${b}.mlp.W_out`, [dm, d], ['d_mlp', 'd_model']);
      add(`${b}.mlp.b_out`, [d], ['d_model']);
      if (post) add(`${b}.ln2_post.w`, [d], ['d_model']);
    }
  }
  norm('ln_final');
  add('unembed.W_U', [d, Vo], ['d_model', 'd_vocab_out']);
  add('unembed.b_U', [Vo], ['d_vocab_out']);
  return out;
}
