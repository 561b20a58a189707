/**
 * A GPT-2-small-shaped model with random weights (124M parameters, tied unembedding), for
 * benchmarks: the shapes and work of the real thing without needing its checkpoint.
 */
import { makeConfig, type HookedTransformerConfig } from '../src/engine/model/config.js';
import type { Params } from '../src/engine/model/params.js';
import { paramSpecs } from '../src/engine/model/paramSpecs.js';
import { f32 } from '../src/engine/tensor/tensor.js';
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

/**
 * Unprocessed ('none') TransformerLens params for any config, from paramSpecs: matrices
 * N(0, 0.02^2) (W_pos 0.01), biases N(0, 0.01^2), norm weights 1; W_U is W_E transposed when
 * the config ties the embeddings, as GPT-2's.
 */
export function randomParams(cfg: HookedTransformerConfig, seed = 1): Params {
  const p: Params = new Map();
  let k = seed;
  for (const s of paramSpecs(cfg)) {
    const n = s.dims.reduce((a, b) => a * b, 1);
    const last = s.name.split('.').pop()!;
    if (s.name === 'unembed.W_U' && cfg.tie_word_embeddings) {
      const WE = p.get('embed.W_E')!;
      const d = cfg.d_model, V = cfg.d_vocab;
      const WU = new Float32Array(d * V);
      for (let v = 0; v < V; v++) for (let i = 0; i < d; i++) WU[i * V + v] = WE.data[v * d + i]!;
      p.set(s.name, f32(s.dims, WU, s.axes));
    } else if (last === 'w') {
      p.set(s.name, f32(s.dims, new Float32Array(n).fill(1), s.axes));
    } else if (s.name === 'unembed.b_U') {
      p.set(s.name, f32(s.dims, undefined, s.axes));
    } else {
      p.set(s.name, f32(s.dims, randn(n, s.isMatrix ? (s.name === 'pos_embed.W_pos' ? 0.01 : 0.02) : 0.01, k++), s.axes));
    }
  }
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
