/**
 * GPT-2 (GPT2LMHeadModel): learned positions, LayerNorm, GELU (tanh) MLP, tied unembedding.
 *
 * HF GPT-2 uses Conv1D layers, which compute x @ W with W stored [d_in, d_out] (the transpose of
 * nn.Linear), so its weights are already in TransformerLens's [d_model, ...] orientation and only
 * need splitting per head:
 *   attn.c_attn.weight [d_model, 3·d_model] -> W_Q/W_K/W_V [head_index, d_model, d_head]
 *   attn.c_attn.bias   [3·d_model]          -> b_Q/b_K/b_V [head_index, d_head]
 *   attn.c_proj.weight [d_model, d_model]   -> W_O [head_index, d_head, d_model]
 *   mlp.c_fc.weight    [d_model, d_mlp]     -> W_in (as is);  mlp.c_proj.weight -> W_out
 *   wte.weight [d_vocab, d_model] -> W_E, and (tied) its transpose -> W_U [d_model, d_vocab_out]
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, copyRule, transpose2, zerosRule, type StateDict, type WeightRule } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';

/** Hugging Face GPT-2 config.json -> HookedTransformerConfig (as TransformerLens's convert_hf_model_config does). */
export function configFromHfGpt2(hf: HfConfig, modelName = 'gpt2'): HookedTransformerConfig {
  const f = new HfFields(hf, 'GPT-2');
  const mt = hf['model_type'];
  if (mt !== undefined && mt !== 'gpt2') {
    throw new Error(`config.json has model_type ${JSON.stringify(mt)}, not a GPT-2 config (model_type "gpt2")`);
  }
  const d_model = f.num('n_embd');
  const n_heads = f.num('n_head');
  return makeConfig({
    model_name: modelName,
    n_layers: f.num('n_layer'),
    d_model,
    n_heads,
    d_head: Math.floor(d_model / n_heads),
    d_mlp: f.optNum('n_inner') ?? 4 * d_model,
    d_vocab: f.num('vocab_size'),
    n_ctx: f.num('n_positions', f.num('n_ctx', 1024)),
    act_fn: mapGpt2Act(f.str('activation_function', 'gelu_new')),
    normalization_type: 'LN',
    eps: f.num('layer_norm_epsilon', 1e-5),
    tie_word_embeddings: hf['tie_word_embeddings'] !== false,
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'GPT2LMHeadModel',
  });
}

/** GPT-2's gelu_pytorch_tanh is gelu_new's formula; TransformerLens calls both gelu_new here. */
function mapGpt2Act(a: string): HookedTransformerConfig['act_fn'] {
  const act = mapAct(a, 'GPT-2');
  return act === 'gelu_pytorch_tanh' ? 'gelu_new' : act;
}

/** 'transformer.' for GPT2LMHeadModel checkpoints, '' for GPT2Model ones (e.g. the original gpt2 upload). */
export function detectGpt2Prefix(sd: StateDict): string {
  const keys = [...sd.keys()];
  if (keys.includes('transformer.wte.weight')) return 'transformer.';
  if (keys.includes('wte.weight')) return '';
  return keys.some((k) => k.startsWith('transformer.')) ? 'transformer.' : '';
}

/**
 * Converts a Hugging Face GPT-2 state dict (keys with or without the `transformer.` prefix) to
 * TransformerLens params, exactly as TransformerLens's convert_gpt2_weights does.
 */
export function convertGpt2Weights(sd: StateDict, cfg: HookedTransformerConfig): Params {
  const { d_model: D, n_heads: H, d_head: E, d_vocab: V, d_vocab_out: VO, n_ctx, n_layers } = cfg;
  if (H * E !== D) throw new Error(`GPT-2 weights need n_heads * d_head == d_model, but config has ${H} * ${E} != ${D}`);
  if (cfg.d_mlp === null) throw new Error('GPT-2 weights have an MLP in every block, but the config has d_mlp null (attn_only)');
  const M = cfg.d_mlp;
  const p = detectGpt2Prefix(sd);
  const keys = new Set(sd.keys());
  // W_U comes from lm_head only when the embeddings are untied; tied checkpoints usually omit it.
  const useLmHead = !cfg.tie_word_embeddings;
  if (!useLmHead && VO !== V) throw new Error(`tied embeddings need d_vocab_out == d_vocab, but config has ${VO} != ${V}`);
  const lmHead = keys.has('lm_head.weight') ? 'lm_head.weight' : `${p}lm_head.weight`;

  const rules: WeightRule[] = [copyRule('embed.W_E', `${p}wte.weight`, [V, D]), copyRule('pos_embed.W_pos', `${p}wpe.weight`, [n_ctx, D])];
  for (let l = 0; l < n_layers; l++) {
    const h = `${p}h.${l}.`;
    const b = `blocks.${l}.`;
    rules.push(
      copyRule(`${b}ln1.w`, `${h}ln_1.weight`, [D]), copyRule(`${b}ln1.b`, `${h}ln_1.bias`, [D]),
      {
        // c_attn.weight [d_model, 3·d_model]: columns are (qkv, head_index, d_head) -> W_X [head_index, d_model, d_head].
        from: [{ name: `${h}attn.c_attn.weight`, dims: [D, 3 * D] }],
        to: [`${b}attn.W_Q`, `${b}attn.W_K`, `${b}attn.W_V`],
        make: ([w]) => [0, 1, 2].map((q) => {
          const out = new Float32Array(H * D * E);
          for (let i = 0; i < H; i++) for (let m = 0; m < D; m++) {
            const src = m * 3 * D + q * D + i * E;
            out.set(w!.subarray(src, src + E), (i * D + m) * E);
          }
          return out;
        }),
      },
      {
        // c_attn.bias [3·d_model] = (qkv, head_index, d_head) -> b_X [head_index, d_head].
        from: [{ name: `${h}attn.c_attn.bias`, dims: [3 * D] }],
        to: [`${b}attn.b_Q`, `${b}attn.b_K`, `${b}attn.b_V`],
        make: ([bias]) => [0, 1, 2].map((q) => bias!.slice(q * D, (q + 1) * D)),
      },
      // c_proj.weight [d_model (= head_index d_head), d_model] is W_O [head_index, d_head, d_model] reshaped.
      copyRule(`${b}attn.W_O`, `${h}attn.c_proj.weight`, [D, D]), copyRule(`${b}attn.b_O`, `${h}attn.c_proj.bias`, [D]),
      copyRule(`${b}ln2.w`, `${h}ln_2.weight`, [D]), copyRule(`${b}ln2.b`, `${h}ln_2.bias`, [D]),
      copyRule(`${b}mlp.W_in`, `${h}mlp.c_fc.weight`, [D, M]), copyRule(`${b}mlp.b_in`, `${h}mlp.c_fc.bias`, [M]),
      copyRule(`${b}mlp.W_out`, `${h}mlp.c_proj.weight`, [M, D]), copyRule(`${b}mlp.b_out`, `${h}mlp.c_proj.bias`, [D]),
    );
  }
  rules.push(copyRule('ln_final.w', `${p}ln_f.weight`, [D]), copyRule('ln_final.b', `${p}ln_f.bias`, [D]));
  // W_U [d_model, d_vocab_out] = (lm_head.weight or, when tied, wte.weight) [d_vocab_out, d_model] transposed.
  const uSrc = useLmHead ? lmHead : `${p}wte.weight`;
  rules.push({ from: [{ name: uSrc, dims: [VO, D] }], to: ['unembed.W_U'], make: ([u]) => [transpose2(u!, VO, D)], transpose: [1, VO, D] });
  // GPT-2 has no unembedding bias; TransformerLens fills zeros.
  rules.push(zerosRule('unembed.b_U', VO));
  const where = p ? ` (keys prefixed "${p}")` : '';
  return convertWeights(sd, cfg, rules, `GPT-2${where}`, `${p}h.${n_layers}.ln_1.weight`);
}

export const gpt2: ArchFamily = {
  name: 'gpt2',
  architectures: ['GPT2LMHeadModel', 'GPT2Model'],
  modelTypes: ['gpt2'],
  config: configFromHfGpt2,
  weights: convertGpt2Weights,
};
