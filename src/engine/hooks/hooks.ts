/**
 * Hook names are TransformerLens's names, exactly; this table is the single source of their
 * shapes (axis names in TransformerLens order). Everything else (graph outputs, caches,
 * protocol payloads, panels) derives shapes from here.
 */
/**
 * The config fields hooks depend on (HookedTransformerConfig has them all; hooks/ is the ground
 * floor and takes the sizes in rather than importing the model layer).
 */
export interface HookConfig {
  n_layers: number;
  d_model: number;
  n_heads: number;
  d_head: number;
  d_mlp: number | null;
  d_vocab_out: number;
  attn_only: boolean;
  normalization_type: string | null;
  positional_embedding_type: string;
  n_key_value_heads: number | null;
  gated_mlp: boolean;
  parallel_attn_mlp: boolean;
  /** With original_architecture: which q/k norm the model has (model/config.ts's qkNorm). */
  use_qk_norm: boolean;
  original_architecture: string;
  /** Gemma 2/3's norms after attention and the MLP (ln1_post / ln2_post hooks). */
  use_normalization_before_and_after: boolean;
  /** BLOOM's LayerNorm on the token embedding (embed.ln hooks, before hook_embed). */
  post_embedding_ln?: boolean;
  /** Mixture-of-experts MLP (Mixtral, OLMoE): experts and how many each token uses (null: dense). */
  num_experts?: number | null;
  experts_per_token?: number | null;
}
type HookedTransformerConfig = HookConfig;

/** Same rule as model/config.ts's qkNorm (hooks/ cannot import the model layer). */
const WHOLE_PROJECTION_QK_NORM = new Set(['Olmo2ForCausalLM', 'Olmo3ForCausalLM', 'OlmoeForCausalLM']);
function qkNormOf(cfg: Pick<HookConfig, 'use_qk_norm' | 'original_architecture'>): 'head' | 'whole' | null {
  if (cfg.use_qk_norm) return 'head';
  return WHOLE_PROJECTION_QK_NORM.has(cfg.original_architecture) ? 'whole' : null;
}

export type BlockHookSuffix =
  | 'hook_resid_pre'
  | 'hook_resid_mid'
  | 'hook_resid_post'
  | 'hook_attn_out'
  | 'hook_mlp_out'
  | 'ln1.hook_scale'
  | 'ln1.hook_normalized'
  | 'ln2.hook_scale'
  | 'ln2.hook_normalized'
  | 'ln1_post.hook_scale'
  | 'ln1_post.hook_normalized'
  | 'ln2_post.hook_scale'
  | 'ln2_post.hook_normalized'
  | 'attn.hook_q'
  | 'attn.hook_k'
  | 'attn.hook_v'
  | 'attn.q_norm.hook_scale'
  | 'attn.q_norm.hook_normalized'
  | 'attn.k_norm.hook_scale'
  | 'attn.k_norm.hook_normalized'
  | 'attn.hook_rot_q'
  | 'attn.hook_rot_k'
  | 'attn.hook_z'
  | 'attn.hook_attn_scores'
  | 'attn.hook_pattern'
  | 'attn.hook_result'
  | 'mlp.hook_pre'
  | 'mlp.hook_pre_linear'
  | 'mlp.hook_post'
  | 'mlp.hook_expert_weights'
  | 'mlp.hook_expert_indices'
  | ExpertHookSuffix;

/**
 * One expert's hooks in a mixture-of-experts MLP (TransformerLens's MoEGatedMLP): hook_gate =
 * x W_gate (before the activation), hook_pre = x W_in, hook_post = act(gate) * pre, each
 * [routed, d_mlp] over the tokens routed to that expert only.
 */
export type ExpertHookSuffix = `mlp.experts.${number}.${'hook_gate' | 'hook_pre' | 'hook_post'}`;
const EXPERT_HOOK = /^mlp\.experts\.(\d+)\.(hook_gate|hook_pre|hook_post)$/;

export type GlobalHook = 'embed.ln.hook_scale' | 'embed.ln.hook_normalized' | 'hook_embed' | 'hook_pos_embed' | 'ln_final.hook_scale' | 'ln_final.hook_normalized';
export type HookName = GlobalHook | `blocks.${number}.${BlockHookSuffix}`;

/**
 * Hooks of an SAE or transcoder spliced in at a hook (src/engine/sae), named as SAELens's
 * HookedSAETransformer names them: `<output hook>.hook_sae_<what>`. They exist only in runs that
 * splice an SAE there.
 */
export const SAE_HOOK_SUFFIXES = ['hook_sae_input', 'hook_sae_acts_pre', 'hook_sae_acts_post', 'hook_sae_recons', 'hook_sae_error', 'hook_sae_output'] as const;
export type SaeHookSuffix = (typeof SAE_HOOK_SUFFIXES)[number];
export type SaeHookName = `${HookName}.${SaeHookSuffix}`;
/** Graph values that are not model hooks but can be requested like one. */
export type OutputName = HookName | 'logits' | SaeHookName;

/** `blocks.0.hook_resid_pre.hook_sae_acts_post` -> its hook and suffix; null for other names. */
export function parseSaeHook(name: string): { base: HookName; suffix: SaeHookSuffix } | null {
  const m = /^(.+)\.(hook_sae_[a-z_]+)$/.exec(name);
  if (!m || !(SAE_HOOK_SUFFIXES as readonly string[]).includes(m[2]!)) return null;
  return { base: m[1] as HookName, suffix: m[2] as SaeHookSuffix };
}

/**
 * 'batch_pos_head': batch, pos and head_index flattened in that order (TransformerLens runs the
 * per-head q/k norm on [batch·pos·head_index, d_head] and hooks it so); 'head_index_d_head':
 * head_index and d_head flattened (OLMo-2's q/k norm over the whole projection).
 */
export type Axis =
  | 'batch' | 'pos' | 'd_model' | 'head_index' | 'd_head' | 'query_pos' | 'key_pos' | 'd_mlp' | 'd_vocab' | 'one'
  | 'batch_pos_head' | 'head_index_d_head' | 'd_sae'
  /**
   * Mixture of experts: 'batch_pos' is batch and pos flattened (TransformerLens's router runs on
   * [batch·pos, d_model]); 'expert' num_experts; 'top_k' experts_per_token; 'routed' the tokens
   * one expert received, as TransformerLens gathers them (all tokens that ranked it first, in
   * batch·pos order, then those that ranked it second, ...), so its size depends on the input.
   */
  | 'batch_pos' | 'expert' | 'top_k' | 'routed';

const BLOCK_AXES: Record<Exclude<BlockHookSuffix, ExpertHookSuffix>, readonly Axis[]> = {
  hook_resid_pre: ['batch', 'pos', 'd_model'],
  hook_resid_mid: ['batch', 'pos', 'd_model'],
  hook_resid_post: ['batch', 'pos', 'd_model'],
  hook_attn_out: ['batch', 'pos', 'd_model'],
  hook_mlp_out: ['batch', 'pos', 'd_model'],
  'ln1.hook_scale': ['batch', 'pos', 'one'],
  'ln1.hook_normalized': ['batch', 'pos', 'd_model'],
  'ln2.hook_scale': ['batch', 'pos', 'one'],
  'ln2.hook_normalized': ['batch', 'pos', 'd_model'],
  'ln1_post.hook_scale': ['batch', 'pos', 'one'],
  'ln1_post.hook_normalized': ['batch', 'pos', 'd_model'],
  'ln2_post.hook_scale': ['batch', 'pos', 'one'],
  'ln2_post.hook_normalized': ['batch', 'pos', 'd_model'],
  'attn.hook_q': ['batch', 'pos', 'head_index', 'd_head'],
  'attn.hook_k': ['batch', 'pos', 'head_index', 'd_head'],
  'attn.hook_v': ['batch', 'pos', 'head_index', 'd_head'],
  // Per-head q/k norm (the 'whole' kind's axes are QK_NORM_WHOLE_AXES).
  'attn.q_norm.hook_scale': ['batch_pos_head', 'one'],
  'attn.q_norm.hook_normalized': ['batch_pos_head', 'd_head'],
  'attn.k_norm.hook_scale': ['batch_pos_head', 'one'],
  'attn.k_norm.hook_normalized': ['batch_pos_head', 'd_head'],
  'attn.hook_rot_q': ['batch', 'pos', 'head_index', 'd_head'],
  'attn.hook_rot_k': ['batch', 'pos', 'head_index', 'd_head'],
  'attn.hook_z': ['batch', 'pos', 'head_index', 'd_head'],
  'attn.hook_attn_scores': ['batch', 'head_index', 'query_pos', 'key_pos'],
  'attn.hook_pattern': ['batch', 'head_index', 'query_pos', 'key_pos'],
  'attn.hook_result': ['batch', 'pos', 'head_index', 'd_model'],
  'mlp.hook_pre': ['batch', 'pos', 'd_mlp'],
  'mlp.hook_pre_linear': ['batch', 'pos', 'd_mlp'],
  'mlp.hook_post': ['batch', 'pos', 'd_mlp'],
  'mlp.hook_expert_weights': ['batch_pos', 'expert'],
  'mlp.hook_expert_indices': ['batch_pos', 'top_k'],
};
const EXPERT_AXES: readonly Axis[] = ['routed', 'd_mlp'];

/** The expert of an expert hook's suffix (`mlp.experts.3.hook_pre` -> 3), else null. */
export function expertOfHook(name: string): number | null {
  const m = /(?:^|\.)mlp\.experts\.(\d+)\.hook_(?:gate|pre|post)$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** Hooks of a mixture-of-experts MLP (the router's and the experts'). */
export function isMoeHook(name: string): boolean {
  return /\.mlp\.(hook_expert_weights|hook_expert_indices|experts\.\d+\.hook_\w+)$/.test(name);
}
const GLOBAL_AXES: Record<GlobalHook | 'logits', readonly Axis[]> = {
  'embed.ln.hook_scale': ['batch', 'pos', 'one'],
  'embed.ln.hook_normalized': ['batch', 'pos', 'd_model'],
  hook_embed: ['batch', 'pos', 'd_model'],
  hook_pos_embed: ['batch', 'pos', 'd_model'],
  'ln_final.hook_scale': ['batch', 'pos', 'one'],
  'ln_final.hook_normalized': ['batch', 'pos', 'd_model'],
  logits: ['batch', 'pos', 'd_vocab'],
};

const QK_NORM_WHOLE_AXES: Partial<Record<BlockHookSuffix, readonly Axis[]>> = {
  'attn.q_norm.hook_scale': ['batch', 'pos', 'one'],
  'attn.q_norm.hook_normalized': ['batch', 'pos', 'head_index_d_head'],
  'attn.k_norm.hook_scale': ['batch', 'pos', 'one'],
  'attn.k_norm.hook_normalized': ['batch', 'pos', 'head_index_d_head'],
};
const isQkNormSuffix = (s: string): boolean => s.startsWith('attn.q_norm.') || s.startsWith('attn.k_norm.');

export const BLOCK_HOOK_SUFFIXES = Object.keys(BLOCK_AXES) as Exclude<BlockHookSuffix, ExpertHookSuffix>[];

export interface ParsedHook {
  name: OutputName;
  layer: number | null;
  suffix: BlockHookSuffix | GlobalHook | 'logits';
}

/** Parses a full hook name; null when it is not one (no shorthand like 'q' or 'resid_pre'). */
export function parseHook(name: string, cfg: Pick<HookedTransformerConfig, 'n_layers'>): ParsedHook | null {
  if (name in GLOBAL_AXES) return { name: name as OutputName, layer: null, suffix: name as GlobalHook | 'logits' };
  const m = /^blocks\.(\d+)\.(.+)$/.exec(name);
  if (!m) return null;
  const layer = Number(m[1]);
  const suffix = m[2] as BlockHookSuffix;
  const ex = EXPERT_HOOK.exec(suffix);
  if (ex && String(Number(ex[1])) !== ex[1]) return null;
  if ((!(suffix in BLOCK_AXES) && !ex) || layer >= cfg.n_layers || String(layer) !== m[1]) return null;
  return { name: name as HookName, layer, suffix };
}

/** Like parseHook but throws a message that names the bad hook and lists valid forms. */
export function requireHook(name: string, cfg: HookedTransformerConfig): ParsedHook {
  const p = parseHook(name, cfg);
  if (p) {
    if (cfg.attn_only && (p.suffix.startsWith('mlp.') || p.suffix === 'hook_mlp_out' || p.suffix.startsWith('ln2.') || p.suffix === 'hook_resid_mid')) {
      throw new Error(`hook ${name} does not exist in an attention-only model`);
    }
    if (cfg.normalization_type === null && (p.suffix.includes('hook_scale') || p.suffix.includes('hook_normalized'))) {
      throw new Error(`hook ${name} does not exist in a model without LayerNorm`);
    }
    if (cfg.parallel_attn_mlp && p.suffix === 'hook_resid_mid') {
      throw new Error(`hook ${name} does not exist: attention and MLP run in parallel in this model (both read hook_resid_pre), so there is no resid_mid`);
    }
    if (cfg.positional_embedding_type !== 'rotary' && (p.suffix === 'attn.hook_rot_q' || p.suffix === 'attn.hook_rot_k')) {
      throw new Error(`hook ${name} exists only in models with rotary positional embeddings`);
    }
    if (qkNormOf(cfg) === null && isQkNormSuffix(p.suffix)) {
      throw new Error(`hook ${name} exists only in models with a query/key norm (Qwen3, Gemma 3, OLMo-2)`);
    }
    if (!cfg.use_normalization_before_and_after && (p.suffix.startsWith('ln1_post.') || p.suffix.startsWith('ln2_post.'))) {
      throw new Error(`hook ${name} exists only in models with norms after attention and the MLP (Gemma 2 and 3)`);
    }
    if (cfg.attn_only && p.suffix.startsWith('ln2_post.')) throw new Error(`hook ${name} does not exist in an attention-only model`);
    if (!cfg.gated_mlp && p.suffix === 'mlp.hook_pre_linear') {
      throw new Error(`hook ${name} exists only in models with a gated MLP`);
    }
    const moe = (cfg.num_experts ?? 0) > 0;
    if (moe && /^mlp\.hook_(pre|pre_linear|post)$/.test(p.suffix)) {
      throw new Error(`hook ${name} does not exist in a mixture-of-experts model: each expert has its own (blocks.${p.layer}.mlp.experts.<e>.hook_gate / hook_pre / hook_post), and the router has mlp.hook_expert_weights / hook_expert_indices`);
    }
    if (!moe && (EXPERT_HOOK.test(p.suffix) || p.suffix === 'mlp.hook_expert_weights' || p.suffix === 'mlp.hook_expert_indices')) {
      throw new Error(`hook ${name} exists only in mixture-of-experts models (Mixtral, OLMoE)`);
    }
    const ex = expertOfHook(p.suffix);
    if (ex !== null && ex >= cfg.num_experts!) {
      throw new Error(`unknown hook ${JSON.stringify(name)}: the model has ${cfg.num_experts} experts per layer (0..${cfg.num_experts! - 1})`);
    }
    if (!cfg.post_embedding_ln && p.suffix.startsWith('embed.ln.')) {
      throw new Error(`hook ${name} exists only in models with a LayerNorm on the token embedding (BLOOM)`);
    }
    if (cfg.positional_embedding_type !== 'standard' && p.suffix === 'hook_pos_embed') {
      throw new Error(`hook ${name} exists only in models with learned positional embeddings`);
    }
    return p;
  }
  const m = /^blocks\.(\d+)\./.exec(name);
  if (m && Number(m[1]) >= cfg.n_layers) {
    throw new Error(`unknown hook ${JSON.stringify(name)}: the model has ${cfg.n_layers} layers (0..${cfg.n_layers - 1})`);
  }
  const near = nearestHook(name, cfg);
  throw new Error(
    near !== null
      ? `unknown hook ${JSON.stringify(name)}: did you mean ${near}?`
      : `unknown hook ${JSON.stringify(name)}: use a full TransformerLens name such as blocks.0.attn.hook_pattern, blocks.0.hook_resid_pre, hook_embed or ln_final.hook_normalized`,
  );
}

/** Levenshtein distance, stopping early once every path exceeds `max` (returns max + 1). */
export function editDistance(a: string, b: string, max = Infinity): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      cur.push(v);
      if (v < best) best = v;
    }
    if (best > max) return max + 1;
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The model's hook name closest to a misspelt one (edit distance), when it is close enough to be
 * what was meant: at most a quarter of the name's length, and never a tie with another hook.
 */
export function nearestHook(name: string, cfg: HookedTransformerConfig): string | null {
  const max = Math.max(2, Math.floor(name.length / 4));
  let best: string | null = null;
  let bestD = max + 1;
  let tie = false;
  for (const h of allHooks(cfg)) {
    const d = editDistance(name, h, bestD);
    if (d < bestD) {
      best = h;
      bestD = d;
      tie = false;
    } else if (d === bestD && best !== null) tie = true;
  }
  return best !== null && !tie ? best : null;
}

export function hookAxes(name: OutputName, cfg: Pick<HookedTransformerConfig, 'n_layers' | 'use_qk_norm' | 'original_architecture'>): readonly Axis[] {
  const sae = parseSaeHook(name);
  if (sae) {
    // Features: [batch, pos, d_sae]; the SAE's input and its outputs keep the hook's axes
    // (a transcoder's input has its input hook's width, with the same axis names here).
    if (sae.suffix === 'hook_sae_acts_pre' || sae.suffix === 'hook_sae_acts_post') return ['batch', 'pos', 'd_sae'];
    return hookAxes(sae.base, cfg);
  }
  const p = parseHook(name, cfg);
  if (!p) throw new Error(`unknown hook ${JSON.stringify(name)}`);
  if (p.layer === null) return GLOBAL_AXES[p.suffix as GlobalHook | 'logits'];
  const suffix = p.suffix as BlockHookSuffix;
  if (EXPERT_HOOK.test(suffix)) return EXPERT_AXES;
  const fixed = suffix as Exclude<BlockHookSuffix, ExpertHookSuffix>;
  return (qkNormOf(cfg) === 'whole' ? QK_NORM_WHOLE_AXES[fixed] : undefined) ?? BLOCK_AXES[fixed];
}

/**
 * Heads of a hook: keys and values (and rotated keys) have n_key_value_heads heads under
 * grouped-query attention, as TransformerLens caches them; every other head axis has n_heads.
 */
export function hookHeads(name: OutputName, cfg: HookedTransformerConfig): number {
  if (cfg.n_key_value_heads !== null && /\.attn\.(hook_(k|v|rot_k)|k_norm\.hook_\w+)$/.test(name)) return cfg.n_key_value_heads;
  return cfg.n_heads;
}

/**
 * Dims of a hook for a batch of [batch, pos] tokens: concrete numbers, or (graph value_info)
 * symbolic names for the batch and position axes.
 */
export function hookDims<D extends number | string = number>(name: OutputName, cfg: HookedTransformerConfig, batch: D, pos: D): (number | D)[] {
  const numeric = typeof batch === 'number' && typeof pos === 'number';
  return hookAxes(name, cfg).map((a) => {
    switch (a) {
      case 'batch': return batch;
      case 'pos': case 'query_pos': case 'key_pos': return pos;
      case 'd_model': return cfg.d_model;
      case 'head_index': return hookHeads(name, cfg);
      case 'd_head': return cfg.d_head;
      case 'd_mlp': return cfg.d_mlp ?? 0;
      case 'd_vocab': return cfg.d_vocab_out;
      case 'one': return 1;
      case 'd_sae': throw new Error(`internal: the size of ${name}'s d_sae axis comes from its SAE (saeHookWidth)`);
      // Symbolic: '' (an unknown dim in graph value_info). A named dim would let onnxruntime's
      // memory planner take the q and k rows (different sizes under GQA) for one size.
      case 'batch_pos_head': return typeof batch === 'number' && typeof pos === 'number' ? batch * pos * hookHeads(name, cfg) : ('' as D);
      case 'head_index_d_head': return hookHeads(name, cfg) * cfg.d_head;
      // Flattened rows: a symbolic '' dim in graph value_info, as batch_pos_head.
      case 'batch_pos': return numeric ? (batch as number) * (pos as number) : ('' as D);
      case 'expert': return cfg.num_experts ?? 0;
      case 'top_k': return cfg.experts_per_token ?? 0;
      // Data-dependent (how many tokens the router sent to the expert): -1 when sizes are asked
      // for (no intervention or SAE can target these hooks), '' in graph value_info.
      case 'routed': return numeric ? -1 : ('' as D);
    }
  });
}

/** Every hook the model has, in forward order (what `--hooks all` means). */
export function allHooks(cfg: HookedTransformerConfig): HookName[] {
  const out: HookName[] = cfg.post_embedding_ln ? ['embed.ln.hook_scale', 'embed.ln.hook_normalized', 'hook_embed'] : ['hook_embed'];
  if (cfg.positional_embedding_type === 'standard') out.push('hook_pos_embed');
  const ln = cfg.normalization_type !== null;
  for (let l = 0; l < cfg.n_layers; l++) {
    const b = `blocks.${l}.` as const;
    out.push(`${b}hook_resid_pre`);
    if (ln) out.push(`${b}ln1.hook_scale`, `${b}ln1.hook_normalized`);
    out.push(`${b}attn.hook_q`, `${b}attn.hook_k`, `${b}attn.hook_v`);
    if (qkNormOf(cfg) !== null) out.push(`${b}attn.q_norm.hook_scale`, `${b}attn.q_norm.hook_normalized`, `${b}attn.k_norm.hook_scale`, `${b}attn.k_norm.hook_normalized`);
    if (cfg.positional_embedding_type === 'rotary') out.push(`${b}attn.hook_rot_q`, `${b}attn.hook_rot_k`);
    out.push(`${b}attn.hook_attn_scores`, `${b}attn.hook_pattern`, `${b}attn.hook_z`, `${b}attn.hook_result`);
    const post = ln && cfg.use_normalization_before_and_after;
    if (post) out.push(`${b}ln1_post.hook_scale`, `${b}ln1_post.hook_normalized`);
    out.push(`${b}hook_attn_out`);
    if (!cfg.attn_only) {
      if (!cfg.parallel_attn_mlp) out.push(`${b}hook_resid_mid`);
      if (ln) out.push(`${b}ln2.hook_scale`, `${b}ln2.hook_normalized`);
      if ((cfg.num_experts ?? 0) > 0) {
        // TransformerLens's MoE: the router's hooks, then each expert's in expert order.
        out.push(`${b}mlp.hook_expert_weights`, `${b}mlp.hook_expert_indices`);
        for (let e = 0; e < cfg.num_experts!; e++) out.push(`${b}mlp.experts.${e}.hook_gate`, `${b}mlp.experts.${e}.hook_pre`, `${b}mlp.experts.${e}.hook_post`);
      } else {
        out.push(`${b}mlp.hook_pre`);
        if (cfg.gated_mlp) out.push(`${b}mlp.hook_pre_linear`);
        out.push(`${b}mlp.hook_post`);
      }
      if (post) out.push(`${b}ln2_post.hook_scale`, `${b}ln2_post.hook_normalized`);
      out.push(`${b}hook_mlp_out`);
    }
    out.push(`${b}hook_resid_post`);
  }
  if (ln) out.push('ln_final.hook_scale', 'ln_final.hook_normalized');
  return out;
}
