/**
 * Small random models of several families (4 layers, so that a block can be first, middle or
 * last), for tests that compare a fast path against the plain forward: GPT-2-style (LayerNorm)
 * and Llama-style (RMSNorm, grouped-query attention, rotary, gated MLP), with weights scaled up
 * so that activations are O(1) and patches and neurons matter.
 */
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { makeConfig, type HookedTransformerConfig } from '../../src/engine/model/config.js';
import { applyProcessing } from '../../src/engine/weights/process.js';
import { randomParams } from '../../bench/randomModel.js';

export const SMALL_SHAPE = { n_layers: 4, d_model: 32, n_heads: 4, d_head: 8, d_mlp: 64, d_vocab: 50, n_ctx: 16 };

export const GPT2_LIKE = makeConfig({ ...SMALL_SHAPE, model_name: 'gpt2-like', act_fn: 'gelu_new', normalization_type: 'LN' });

export const LLAMA_LIKE = makeConfig({
  ...SMALL_SHAPE, model_name: 'llama-like', act_fn: 'silu', normalization_type: 'RMS', n_key_value_heads: 2, positional_embedding_type: 'rotary',
  gated_mlp: true, original_architecture: 'LlamaForCausalLM', eps: 1e-5,
});

/** Random weights (seeded) scaled up from the bench's N(0, 0.02^2), unprocessed or with default processing, on one thread. */
export function scaledRandomModel(cfg: HookedTransformerConfig, mode: 'none' | 'default', seed: number): HookedTransformer {
  const raw = randomParams(cfg, seed);
  for (const [name, t] of raw) if (!name.endsWith('.w')) for (let i = 0; i < t.data.length; i++) t.data[i]! *= 12;
  const { cfg: c, params } = mode === 'none' ? { cfg, params: raw } : applyProcessing(cfg, raw, 'default');
  return new HookedTransformer(c, params, mode, cfg.model_name, { device: 'cpu', threads: 1 });
}
