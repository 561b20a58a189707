/**
 * A Hugging Face GPT-2 checkpoint folder (config.json + model.safetensors, GPT2LMHeadModel
 * names, Conv1D layouts) holding the random GPT-2-small-shaped weights of randomModel.ts, so the
 * cold-start bench loads the GPT-2-small-shaped model from files exactly as a user loads a
 * downloaded GPT-2: the folder loader, the GPT-2 family's conversion, default processing, the
 * GPT-2 tokenizer (d_vocab 50257 without tokenizer files). Written once into the ignored .bench/
 * and reused while its config is unchanged.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors } from '../src/engine/model/safetensors.js';
import { f32, type F32 } from '../src/engine/tensor/tensor.js';
import type { HookedTransformerConfig } from '../src/engine/model/config.js';
import { gpt2SmallConfig, randn } from './randomModel.js';

export const ROOT = path.resolve(__dirname, '..');

/** GPT-2's own config.json fields for these shapes (n_ctx too: TransformerLens's converter reads it). */
function hfConfig(cfg: HookedTransformerConfig): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_layer: cfg.n_layers, n_embd: cfg.d_model, n_head: cfg.n_heads, n_inner: null,
    n_positions: cfg.n_ctx, n_ctx: cfg.n_ctx, vocab_size: cfg.d_vocab, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, tie_word_embeddings: true,
    bos_token_id: 50256, eos_token_id: 50256,
  };
}

/**
 * The random GPT-2-small-shaped checkpoint's folder, written on first use: matrices N(0, 0.02^2)
 * (wpe 0.01), biases N(0, 0.01^2), LayerNorm weights 1, as randomModel.ts draws them.
 */
export function gpt2SmallCheckpoint(dir = path.join(ROOT, '.bench', 'coldstart', 'gpt2-small-random')): string {
  const cfg = gpt2SmallConfig();
  const config = hfConfig(cfg);
  const configPath = path.join(dir, 'config.json');
  if (fs.existsSync(configPath) && fs.readFileSync(configPath, 'utf8') === JSON.stringify(config, null, 2) && fs.existsSync(path.join(dir, 'model.safetensors'))) return dir;
  fs.mkdirSync(dir, { recursive: true });
  const { d_model: D, d_mlp: M, d_vocab: V, n_ctx: N } = cfg;
  let seed = 1;
  const mat = (dims: number[], std = 0.02): F32 => f32(dims, randn(dims.reduce((a, b) => a * b, 1), std, seed++));
  const ones = (n: number): F32 => f32([n], new Float32Array(n).fill(1));
  const t = new Map<string, F32>();
  t.set('transformer.wte.weight', mat([V, D]));
  t.set('transformer.wpe.weight', mat([N, D], 0.01));
  for (let l = 0; l < cfg.n_layers; l++) {
    const h = `transformer.h.${l}.`;
    t.set(`${h}ln_1.weight`, ones(D));
    t.set(`${h}ln_1.bias`, mat([D], 0.01));
    t.set(`${h}attn.c_attn.weight`, mat([D, 3 * D]));
    t.set(`${h}attn.c_attn.bias`, mat([3 * D], 0.01));
    t.set(`${h}attn.c_proj.weight`, mat([D, D]));
    t.set(`${h}attn.c_proj.bias`, mat([D], 0.01));
    t.set(`${h}ln_2.weight`, ones(D));
    t.set(`${h}ln_2.bias`, mat([D], 0.01));
    t.set(`${h}mlp.c_fc.weight`, mat([D, M!]));
    t.set(`${h}mlp.c_fc.bias`, mat([M!], 0.01));
    t.set(`${h}mlp.c_proj.weight`, mat([M!, D]));
    t.set(`${h}mlp.c_proj.bias`, mat([D], 0.01));
  }
  t.set('transformer.ln_f.weight', ones(D));
  t.set('transformer.ln_f.bias', mat([D], 0.01));
  writeSafetensors(path.join(dir, 'model.safetensors'), t, { format: 'pt' });
  // config.json last: the folder is a model only once its weights are complete.
  fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
  return dir;
}
