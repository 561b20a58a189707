/**
 * Built-in models that need no download, so a fresh install shows real panels offline.
 *
 * `builtin:default` resolves to the embedded trained model once one ships in models/ (see
 * docs); until then it is `builtin:toy`: a small character-level GPT-2 whose weights are
 * generated deterministically from a fixed seed (GPT-2's N(0, 0.02) initialisation). Its numbers
 * are real forward passes of a real (untrained) transformer; they are not meaningful language
 * predictions, which the panels say.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeConfig, type HookedTransformerConfig } from './config.js';
import type { Params } from './params.js';
import { paramSpecs } from './paramSpecs.js';
import { createCharTokenizer, type Tokenizer } from './tokenizer.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { mulberry32 } from '../tensor/mulberry32.js';

/** Printable ASCII plus newline; BOS is an extra token after them. */
export const TOY_CHARS = '\n' + Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');

export interface BuiltinModel {
  cfg: HookedTransformerConfig;
  params: Params;
  tokenizer: Tokenizer;
  source: string;
}

export function isBuiltin(spec: string): boolean {
  return spec.startsWith('builtin:');
}

/** Folder of the embedded trained default model, if the package ships one. */
export function embeddedModelDir(): string | null {
  for (const base of [path.join(__dirname, '..', 'models', 'default'), path.join(__dirname, '..', '..', '..', 'models', 'default')]) {
    if (fs.existsSync(path.join(base, 'config.json')) && fs.existsSync(path.join(base, 'model.safetensors'))) return base;
  }
  return null;
}

export function builtinToy(): BuiltinModel {
  const tokenizer = createCharTokenizer({ chars: TOY_CHARS, bos_token_id: Array.from(TOY_CHARS).length, bos_token: '<|bos|>' }, 'builtin:toy');
  const cfg = makeConfig({
    model_name: 'builtin:toy', n_layers: 2, d_model: 64, n_heads: 4, d_head: 16, d_mlp: 256, d_vocab: tokenizer.vocabSize, n_ctx: 256,
    act_fn: 'gelu_new', normalization_type: 'LN', tie_word_embeddings: true, bos_token_id: tokenizer.bosTokenId,
  });
  const r = mulberry32(20261123);
  const normal = (dims: number[], std: number): F32 => {
    const n = dims.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r()) * std;
    return f32(dims, out);
  };
  // Drawn in paramSpecs order (matrices only; norm weights 1, biases 0): W_O and W_out scaled
  // down by sqrt(2 n_layers) as GPT-2 initialises its residual writers; W_U is W_E transposed (tied).
  const { d_model: d, d_vocab: V } = cfg;
  const p: Params = new Map();
  for (const s of paramSpecs(cfg)) {
    const last = s.name.split('.').pop()!;
    if (s.name === 'unembed.W_U') {
      const WE = p.get('embed.W_E')!;
      const WU = new Float32Array(d * V);
      for (let v = 0; v < V; v++) for (let i = 0; i < d; i++) WU[i * V + v] = WE.data[v * d + i]!;
      p.set(s.name, f32(s.dims, WU));
    } else if (last === 'w') {
      p.set(s.name, f32(s.dims, new Float32Array(s.dims[0]!).fill(1)));
    } else if (!s.isMatrix) {
      p.set(s.name, f32(s.dims));
    } else {
      const std = s.name === 'pos_embed.W_pos' ? 0.01 : /\.(W_O|W_out)$/.test(s.name) ? 0.02 / Math.sqrt(2 * cfg.n_layers) : 0.02;
      p.set(s.name, normal(s.dims, std));
    }
  }
  return { cfg, params: p, tokenizer, source: 'builtin:toy (untrained, deterministic)' };
}
