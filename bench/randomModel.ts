/**
 * A GPT-2-small-shaped model with random weights (124M parameters, tied unembedding), for
 * benchmarks: the shapes and work of the real thing without needing its checkpoint.
 */
import { makeConfig, type HookedTransformerConfig } from '../src/engine/model/config.js';
import type { Params } from '../src/engine/model/params.js';
import { f32, type F32 } from '../src/engine/tensor/tensor.js';
import { mulberry32 } from '../src/engine/tensor/mulberry32.js';

/** Deterministic N(0, std^2) samples (mulberry32 + Box-Muller), so bench runs are comparable. */
export function randn(n: number, std: number, seed: number): Float32Array {
  const rnd = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rnd(), 1e-12), v = rnd();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export function gpt2SmallConfig(): HookedTransformerConfig {
  return makeConfig({ model_name: 'gpt2-small-random', n_layers: 12, d_model: 768, n_heads: 12, d_head: 64, d_mlp: 3072, d_vocab: 50257, n_ctx: 1024, act_fn: 'gelu_new', normalization_type: 'LN', tie_word_embeddings: true });
}

/** Unprocessed ('none') TransformerLens params; W_U is W_E transposed (tied), as GPT-2's. */
export function randomParams(cfg: HookedTransformerConfig, seed = 1): Params {
  const p: Params = new Map();
  let k = seed;
  const r = (dims: number[], std = 0.02): F32 => f32(dims, randn(dims.reduce((a, b) => a * b, 1), std, k++));
  const ones = (n: number) => f32([n], new Float32Array(n).fill(1));
  const { d_model: d, n_heads: H, d_head: dh, d_vocab: V, n_ctx } = cfg;
  const dm = cfg.d_mlp ?? 0;
  const WE = r([V, d]);
  p.set('embed.W_E', WE);
  p.set('pos_embed.W_pos', r([n_ctx, d], 0.01));
  for (let l = 0; l < cfg.n_layers; l++) {
    const b = `blocks.${l}`;
    p.set(`${b}.ln1.w`, ones(d)); p.set(`${b}.ln1.b`, r([d], 0.01));
    for (const w of ['Q', 'K', 'V']) { p.set(`${b}.attn.W_${w}`, r([H, d, dh])); p.set(`${b}.attn.b_${w}`, r([H, dh], 0.01)); }
    p.set(`${b}.attn.W_O`, r([H, dh, d])); p.set(`${b}.attn.b_O`, r([d], 0.01));
    if (!cfg.attn_only) {
      p.set(`${b}.ln2.w`, ones(d)); p.set(`${b}.ln2.b`, r([d], 0.01));
      p.set(`${b}.mlp.W_in`, r([d, dm])); p.set(`${b}.mlp.b_in`, r([dm], 0.01));
      p.set(`${b}.mlp.W_out`, r([dm, d])); p.set(`${b}.mlp.b_out`, r([d], 0.01));
    }
  }
  p.set('ln_final.w', ones(d)); p.set('ln_final.b', r([d], 0.01));
  const WU = new Float32Array(d * V);
  for (let v = 0; v < V; v++) for (let i = 0; i < d; i++) WU[i * V + v] = WE.data[v * d + i]!;
  p.set('unembed.W_U', f32([d, V], WU));
  p.set('unembed.b_U', f32([V]));
  return p;
}

export function paramBytes(p: Params, opts: { countTiedUnembed?: boolean } = {}): number {
  let n = 0;
  for (const [k, t] of p) if (k !== 'unembed.W_U' || opts.countTiedUnembed) n += t.data.byteLength;
  return n;
}

export function randomTokens(batch: number, pos: number, vocab: number, seed = 7): number[][] {
  const u = randn(batch * pos, 1, seed);
  return Array.from({ length: batch }, (_, b) => Array.from({ length: pos }, (_, p) => Math.floor(Math.abs(u[b * pos + p]! * 7919)) % vocab));
}
