/**
 * Hugging Face GPT-2 state dict -> TransformerLens parameters, exactly as TransformerLens's
 * convert_gpt2_weights does (no processing: the result is TransformerLens's 'none' params).
 *
 * HF GPT-2 uses Conv1D layers, which compute x @ W with W stored [d_in, d_out] (the transpose of
 * nn.Linear), so Conv1D weights are already in TransformerLens's [d_model, ...] orientation and
 * only need splitting per head:
 *   attn.c_attn.weight [d_model, 3*d_model] -> W_Q/W_K/W_V [head_index, d_model, d_head]
 *   attn.c_attn.bias   [3*d_model]          -> b_Q/b_K/b_V [head_index, d_head]
 *   attn.c_proj.weight [d_model, d_model]   -> W_O [head_index, d_head, d_model]
 *   mlp.c_fc.weight    [d_model, d_mlp]     -> W_in (as is);  mlp.c_proj.weight [d_mlp, d_model] -> W_out
 *   wte.weight [d_vocab, d_model] -> W_E, and (tied) its transpose -> W_U [d_model, d_vocab_out]
 */
import { f32, type F32 } from '../tensor/tensor.js';
import type { HookedTransformerConfig } from './config.js';
import type { Params } from './params.js';

/**
 * A read-only view of a state dict. A Map<string, F32> is one; a lazy reader over safetensors
 * files is another (it reads a tensor only when asked, so a checkpoint is never held twice).
 */
export interface StateDict {
  keys(): Iterable<string>;
  get(name: string): F32 | undefined;
  /** Shape without reading the data, when the source can do that cheaply (used to validate first). */
  shapeOf?(name: string): readonly number[] | undefined;
}

const fmt = (dims: readonly number[]): string => `[${dims.join(', ')}]`;

/** 'transformer.' for GPT2LMHeadModel checkpoints, '' for GPT2Model ones (e.g. the original gpt2 upload). */
export function detectGpt2Prefix(sd: StateDict): string {
  const keys = [...sd.keys()];
  if (keys.includes('transformer.wte.weight')) return 'transformer.';
  if (keys.includes('wte.weight')) return '';
  return keys.some((k) => k.startsWith('transformer.')) ? 'transformer.' : '';
}

/**
 * Converts a Hugging Face GPT-2 state dict (keys with or without the `transformer.` prefix) to
 * TransformerLens params. Every tensor is checked against cfg before anything is converted;
 * all problems are reported together in one Error naming each tensor with its expected and
 * actual shape. Returned tensors own fresh buffers (never aliases of the input's).
 */
export function convertGpt2Weights(sd: StateDict, cfg: HookedTransformerConfig): Params {
  const { d_model, n_heads, d_head, d_vocab, d_vocab_out, n_ctx, n_layers } = cfg;
  if (n_heads * d_head !== d_model) {
    throw new Error(`GPT-2 weights need n_heads * d_head == d_model, but config has ${n_heads} * ${d_head} != ${d_model}`);
  }
  if (cfg.d_mlp === null) throw new Error('GPT-2 weights have an MLP in every block, but the config has d_mlp null (attn_only)');
  const d_mlp = cfg.d_mlp;
  const prefix = detectGpt2Prefix(sd);
  const keys = new Set(sd.keys());

  // W_U comes from lm_head only when the embeddings are untied; tied checkpoints usually omit it.
  const useLmHead = !cfg.tie_word_embeddings;
  const lmHeadKey = keys.has('lm_head.weight') ? 'lm_head.weight' : `${prefix}lm_head.weight`;

  const expected: [string, number[]][] = [
    [`${prefix}wte.weight`, [d_vocab, d_model]],
    [`${prefix}wpe.weight`, [n_ctx, d_model]],
  ];
  for (let l = 0; l < n_layers; l++) {
    const h = `${prefix}h.${l}.`;
    expected.push(
      [`${h}ln_1.weight`, [d_model]], [`${h}ln_1.bias`, [d_model]],
      [`${h}attn.c_attn.weight`, [d_model, 3 * d_model]], [`${h}attn.c_attn.bias`, [3 * d_model]],
      [`${h}attn.c_proj.weight`, [d_model, d_model]], [`${h}attn.c_proj.bias`, [d_model]],
      [`${h}ln_2.weight`, [d_model]], [`${h}ln_2.bias`, [d_model]],
      [`${h}mlp.c_fc.weight`, [d_model, d_mlp]], [`${h}mlp.c_fc.bias`, [d_mlp]],
      [`${h}mlp.c_proj.weight`, [d_mlp, d_model]], [`${h}mlp.c_proj.bias`, [d_model]],
    );
  }
  expected.push([`${prefix}ln_f.weight`, [d_model]], [`${prefix}ln_f.bias`, [d_model]]);
  if (useLmHead) expected.push([lmHeadKey, [d_vocab_out, d_model]]);
  if (!useLmHead && d_vocab_out !== d_vocab) {
    throw new Error(`tied embeddings need d_vocab_out == d_vocab, but config has ${d_vocab_out} != ${d_vocab}`);
  }

  const problems: string[] = [];
  for (const [name, dims] of expected) {
    const got = keys.has(name) ? (sd.shapeOf ? sd.shapeOf(name) : sd.get(name)?.dims) : undefined;
    if (got === undefined) {
      problems.push(`${name}: expected shape ${fmt(dims)}, but the tensor is missing`);
    } else if (got.length !== dims.length || got.some((d, i) => d !== dims[i])) {
      problems.push(`${name}: expected shape ${fmt(dims)}, got ${fmt(got)}`);
    }
  }
  // More layers than the config declares means config.json and the weights disagree.
  if (keys.has(`${prefix}h.${n_layers}.ln_1.weight`)) {
    problems.push(`${prefix}h.${n_layers}.*: the weights have more layers than the config's n_layers = ${n_layers}`);
  }
  if (problems.length > 0) {
    // One line: callers such as the CLI show only an error's first line.
    const where = prefix ? ` (keys prefixed "${prefix}")` : '';
    const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; and ${problems.length - 8} more` : '');
    throw new Error(`cannot convert GPT-2 weights to TransformerLens params${where}, ${problems.length} problem(s): ${shown}`);
  }

  const get = (name: string): F32 => {
    const t = sd.get(name);
    if (!t) throw new Error(`${name}: tensor disappeared from the state dict while converting`);
    return t;
  };
  // A fresh copy with TransformerLens dims and axis names (pure reshapes keep the row-major order).
  const copy = (name: string, dims: number[], axes: string[]): F32 => f32(dims, get(name).data.slice(), axes);

  const params: Params = new Map();
  const W_E = copy(`${prefix}wte.weight`, [d_vocab, d_model], ['d_vocab', 'd_model']);
  params.set('embed.W_E', W_E);
  params.set('pos_embed.W_pos', copy(`${prefix}wpe.weight`, [n_ctx, d_model], ['n_ctx', 'd_model']));

  for (let l = 0; l < n_layers; l++) {
    const h = `${prefix}h.${l}.`;
    const b = `blocks.${l}.`;
    params.set(`${b}ln1.w`, copy(`${h}ln_1.weight`, [d_model], ['d_model']));
    params.set(`${b}ln1.b`, copy(`${h}ln_1.bias`, [d_model], ['d_model']));

    // c_attn.weight [d_model, 3*d_model]: columns are (qkv, head_index, d_head) -> W_X [head_index, d_model, d_head].
    const Wqkv = get(`${h}attn.c_attn.weight`).data;
    const names = ['W_Q', 'W_K', 'W_V'] as const;
    for (let q = 0; q < 3; q++) {
      const out = new Float32Array(n_heads * d_model * d_head);
      for (let i = 0; i < n_heads; i++) {
        for (let m = 0; m < d_model; m++) {
          const src = m * 3 * d_model + q * d_model + i * d_head;
          const dst = (i * d_model + m) * d_head;
          out.set(Wqkv.subarray(src, src + d_head), dst);
        }
      }
      params.set(`${b}attn.${names[q]}`, f32([n_heads, d_model, d_head], out, ['head_index', 'd_model', 'd_head']));
    }
    // c_attn.bias [3*d_model] = (qkv, head_index, d_head) -> b_X [head_index, d_head].
    const bqkv = get(`${h}attn.c_attn.bias`).data;
    const bnames = ['b_Q', 'b_K', 'b_V'] as const;
    for (let q = 0; q < 3; q++) {
      const out = bqkv.slice(q * d_model, (q + 1) * d_model);
      params.set(`${b}attn.${bnames[q]}`, f32([n_heads, d_head], out, ['head_index', 'd_head']));
    }
    // c_proj.weight [d_model (= head_index d_head), d_model] is W_O [head_index, d_head, d_model] reshaped.
    params.set(`${b}attn.W_O`, copy(`${h}attn.c_proj.weight`, [n_heads, d_head, d_model], ['head_index', 'd_head', 'd_model']));
    params.set(`${b}attn.b_O`, copy(`${h}attn.c_proj.bias`, [d_model], ['d_model']));

    params.set(`${b}ln2.w`, copy(`${h}ln_2.weight`, [d_model], ['d_model']));
    params.set(`${b}ln2.b`, copy(`${h}ln_2.bias`, [d_model], ['d_model']));
    params.set(`${b}mlp.W_in`, copy(`${h}mlp.c_fc.weight`, [d_model, d_mlp], ['d_model', 'd_mlp']));
    params.set(`${b}mlp.b_in`, copy(`${h}mlp.c_fc.bias`, [d_mlp], ['d_mlp']));
    params.set(`${b}mlp.W_out`, copy(`${h}mlp.c_proj.weight`, [d_mlp, d_model], ['d_mlp', 'd_model']));
    params.set(`${b}mlp.b_out`, copy(`${h}mlp.c_proj.bias`, [d_model], ['d_model']));
  }

  params.set('ln_final.w', copy(`${prefix}ln_f.weight`, [d_model], ['d_model']));
  params.set('ln_final.b', copy(`${prefix}ln_f.bias`, [d_model], ['d_model']));

  // W_U [d_model, d_vocab_out] = (lm_head.weight or, when tied, wte.weight) [d_vocab_out, d_model] transposed.
  const U = useLmHead ? get(lmHeadKey).data : W_E.data;
  const W_U = new Float32Array(d_model * d_vocab_out);
  for (let v = 0; v < d_vocab_out; v++) {
    for (let m = 0; m < d_model; m++) W_U[m * d_vocab_out + v] = U[v * d_model + m]!;
  }
  params.set('unembed.W_U', f32([d_model, d_vocab_out], W_U, ['d_model', 'd_vocab_out']));
  // GPT-2 has no unembedding bias; TransformerLens fills zeros.
  params.set('unembed.b_U', f32([d_vocab_out], undefined, ['d_vocab_out']));
  return params;
}
