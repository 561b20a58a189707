/**
 * Training (src/engine/training): the differentiable model graph against HookedTransformer, the
 * in-graph AdamW against torch's update rule, a short no-positional-embedding-style run, checkpoints (loadModel,
 * resume = uninterrupted, failures), NaN detection and the tasks.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GraphBuilder } from '../../src/engine/graph/builder.js';
import { addGradients, inferShapes } from '../../src/engine/graph/autodiff.js';
import { OnnxDType } from '../../src/engine/graph/onnxProto.js';
import { OnnxRuntime, ortF32, ortI64 } from '../../src/engine/backends/onnx/runtime.js';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { loadModel } from '../../src/engine/model/load.js';
import { makeConfig, type HookedTransformerConfig } from '../../src/engine/model/config.js';
import { loadTokenizerForModel } from '../../src/engine/model/tokenizer.js';
import type { Params } from '../../src/engine/model/params.js';
import { applyProcessing } from '../../src/engine/weights/process.js';
import type { HookName } from '../../src/engine/hooks/hooks.js';
import { emitForward, initializerParams, initParams, paramSpecs, tokenInput } from '../../src/engine/training/model.js';
import { Rng } from '../../src/engine/training/rng.js';
import { IGNORE, makeTask } from '../../src/engine/training/tasks.js';
import { noPositionConfig, Trainer, TrainingError, type TrainConfig } from '../../src/engine/training/trainer.js';
import { assertClose, fixtureConfig, fixtureParams, spec } from '../helpers/fixture.js';
import type * as ort from 'onnxruntime-node';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-training-'));
process.on('exit', () => fs.rmSync(tmpRoot, { recursive: true, force: true }));
const tmp = (name: string) => path.join(tmpRoot, name);

/** A small no-positional-embedding-style config (previous token, no positional information, LN, relu). */
function tinyConfig(overrides: Partial<TrainConfig> = {}, model: Partial<TrainConfig['model']> = {}): TrainConfig {
  return noPositionConfig({
    model: { n_layers: 2, d_model: 16, d_head: 16, n_heads: 1, d_mlp: 32, d_vocab: 12, n_ctx: 8, act_fn: 'relu', normalization_type: 'LN', bos_token_id: 0, ...model },
    batch_size: 16, lr: 3e-3, warmup_steps: 5, max_steps: 20, seed: 7, ...overrides,
  });
}

function meanLossPrevToken(logits: { dims: readonly number[]; data: Float32Array }, tokens: number[][]): number {
  const [B, P, V] = logits.dims as [number, number, number];
  let s = 0, n = 0;
  for (let b = 0; b < B; b++) for (let p = 1; p < P; p++) {
    const off = (b * P + p) * V;
    let mx = -Infinity, z = 0;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits.data[off + v]!);
    for (let v = 0; v < V; v++) z += Math.exp(logits.data[off + v]! - mx);
    s += -(logits.data[off + tokens[b]![p - 1]!]! - mx - Math.log(z));
    n++;
  }
  return s / n;
}

for (const mode of ['none', 'default'] as const) {
  test(`the differentiable graph gives HookedTransformer's logits and hooks (fixture, processing ${mode})`, async () => {
    const { cfg, params } = applyProcessing(fixtureConfig(), fixtureParams('none'), mode);
    const ht = new HookedTransformer(cfg, params, mode, 'fixture', { device: 'cpu', threads: 1 });
    const rt = new OnnxRuntime({ device: 'cpu', threads: 1 });
    try {
      const { logits: want, cache } = await ht.runWithCache(spec.tokens);
      const hooks = [...cache.keys()].filter((h) => !h.endsWith('hook_result')) as HookName[];
      const g = new GraphBuilder('fwd');
      const tokens = tokenInput(g, 'tokens', 'batch', 'pos');
      const out = emitForward(g, cfg, initializerParams(g, params), tokens, { batch: 'batch', pos: 'pos', hooks: new Set(hooks), usePos: cfg.positional_embedding_type === 'standard' });
      g.output(g.alias(out.logits, 'logits'), OnnxDType.FLOAT, ['batch', 'pos', cfg.d_vocab_out]);
      assert.deepEqual([...out.hooks.keys()].sort(), [...hooks].sort(), 'every hook HookedTransformer caches (but hook_result) is exposed');
      const shapes = inferShapes(g);
      for (const h of hooks) g.output(h, OnnxDType.FLOAT, shapes.shape(h));
      const s = await rt.compile(g.build());
      const [B, P] = [spec.tokens.length, spec.tokens[0]!.length];
      const res = await rt.run(s, { tokens: ortI64(BigInt64Array.from(spec.tokens.flat(), (x) => BigInt(x)), [B, P]) }, ['logits', ...hooks]);
      assertClose(res['logits']!, want!, 1e-4, 'logits');
      for (const h of hooks) assertClose(res[h]!, cache.get(h)!, 1e-4, h);
      await s.session.release();
    } finally {
      await ht.dispose();
    }
  });
}

/** Tiny configs of the registered families' block types (graph components shared with inference). */
const FAMILY_CONFIGS: [string, Parameters<typeof makeConfig>[0]][] = [
  ['Llama-style (RMS, rotary, GQA, gated SiLU)', { n_layers: 2, d_model: 16, n_heads: 4, d_head: 4, n_key_value_heads: 2, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, use_NTK_by_parts_rope: true, NTK_original_ctx_len: 4 }],
  ['GPT-NeoX-style (LN, partial rotary, parallel)', { n_layers: 2, d_model: 16, n_heads: 2, d_head: 8, rotary_dim: 4, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'gelu', normalization_type: 'LN', positional_embedding_type: 'rotary', parallel_attn_mlp: true }],
  ['Gemma-2-style (post-norms, softcaps, query_pre_attn_scalar, local/global layers, GELU-tanh)', { n_layers: 2, d_model: 16, n_heads: 4, d_head: 8, n_key_value_heads: 2, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'gelu_pytorch_tanh', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, use_local_attn: true, window_size: 3, attn_types: ['local', 'global'], attn_scale: 3, attn_scores_soft_cap: 2, output_logits_soft_cap: 1.5, use_normalization_before_and_after: true }],
  ['GPT-Neo-style (LN, learned positions, unscaled attention, global/local layers)', { n_layers: 2, d_model: 16, n_heads: 4, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'gelu_new', normalization_type: 'LN', use_attn_scale: false, use_local_attn: true, window_size: 3, attn_types: ['global', 'local'] }],
  ['OPT-style (LN, learned positions, ReLU MLP with biases)', { n_layers: 2, d_model: 16, n_heads: 4, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'relu', normalization_type: 'LN', original_architecture: 'OPTForCausalLM' }],
  ['BLOOM-style (ALiBi, LayerNorm on the embedding, gelu_fast)', { n_layers: 2, d_model: 16, n_heads: 4, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'gelu_fast', normalization_type: 'LN', positional_embedding_type: 'alibi', post_embedding_ln: true, original_architecture: 'BloomForCausalLM' }],
  ['OLMo-2-style (post-norm blocks, q/k norm over the whole projection)', { n_layers: 2, d_model: 16, n_heads: 4, d_head: 4, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, original_architecture: 'Olmo2ForCausalLM' }],
  ['Gemma-3-style (per-head q/k norm, local rotary base, linear-scaled global rotary)', { n_layers: 2, d_model: 16, n_heads: 4, d_head: 8, n_key_value_heads: 1, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'gelu_pytorch_tanh', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, use_local_attn: true, window_size: 3, attn_types: ['local', 'global'], rotary_base: 1e6, rotary_base_local: 1e4, rotary_scaling_factor: 8, use_qk_norm: true, use_normalization_before_and_after: true }],
  ['Mistral-style (sliding window 3)', { n_layers: 1, d_model: 16, n_heads: 4, d_head: 4, n_key_value_heads: 1, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, use_local_attn: true, window_size: 3 }],
  ['Qwen3-style (per-head q/k norm, d_head 8 with d_model 16 / 4 heads, GQA)', { n_layers: 2, d_model: 16, n_heads: 4, d_head: 8, n_key_value_heads: 2, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, use_qk_norm: true, rotary_base: 1e6, original_architecture: 'Qwen3ForCausalLM' }],
  ['OLMo-2-style q/k norm over the whole projection', { n_layers: 1, d_model: 16, n_heads: 4, d_head: 4, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, original_architecture: 'Olmo2ForCausalLM' }],
  ['Mixtral-style (mixture of experts: top-2 of 4 gated SiLU experts, weights renormalized)', { n_layers: 2, d_model: 16, n_heads: 4, d_head: 4, n_key_value_heads: 2, d_mlp: 12, d_vocab: 11, n_ctx: 8, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, num_experts: 4, experts_per_token: 2, norm_topk_prob: true, original_architecture: 'MixtralForCausalLM' }],
  ['OLMoE-style (whole-projection q/k norm, q/k/v clamped, top-2 of 3 experts, not renormalized)', { n_layers: 2, d_model: 16, n_heads: 4, d_head: 4, n_key_value_heads: 4, d_mlp: 12, d_vocab: 11, n_ctx: 8, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, num_experts: 3, experts_per_token: 2, clip_qkv: 0.8, original_architecture: 'OlmoeForCausalLM' }],
  ['GPT-J-style (interleaved partial rotary, parallel)', { n_layers: 2, d_model: 16, n_heads: 2, d_head: 8, rotary_dim: 4, rotary_adjacent_pairs: true, d_mlp: 24, d_vocab: 11, n_ctx: 8, act_fn: 'gelu_new', normalization_type: 'LN', positional_embedding_type: 'rotary', parallel_attn_mlp: true }],
];

for (const [label, c] of FAMILY_CONFIGS) {
  test(`the differentiable graph gives HookedTransformer's logits and every hook: ${label}`, async () => {
    const cfg = makeConfig(c);
    const rng = new Rng(3);
    const params = initParams(cfg, rng, { zeroPos: false });
    // Norm weights away from 1, so that where they are applied matters.
    for (const [n, t] of params) if (n.endsWith('.w')) for (let i = 0; i < t.data.length; i++) t.data[i] = 1 + 0.3 * rng.normal();
    const tokens = [[1, 5, 2, 9, 3, 3, 7], [4, 4, 10, 0, 6, 2, 8]];
    const ht = new HookedTransformer(cfg, params, 'none', 'random', { device: 'cpu', threads: 1 });
    const rt = new OnnxRuntime({ device: 'cpu', threads: 1 });
    try {
      const { logits: want, cache } = await ht.runWithCache(tokens);
      const hooks = [...cache.keys()] as HookName[];
      if (cfg.positional_embedding_type === 'rotary') assert.ok(hooks.includes('blocks.0.attn.hook_rot_q' as HookName), 'rotary hooks are cached');
      const g = new GraphBuilder('fwd');
      const tok = tokenInput(g, 'tokens', 'batch', 'pos');
      const out = emitForward(g, cfg, initializerParams(g, params), tok, { batch: 'batch', pos: 'pos', hooks: new Set(hooks), usePos: cfg.positional_embedding_type === 'standard' });
      g.output(g.alias(out.logits, 'logits'), OnnxDType.FLOAT, ['batch', 'pos', cfg.d_vocab_out]);
      assert.deepEqual([...out.hooks.keys()].sort(), [...hooks].sort(), 'every hook HookedTransformer caches is exposed');
      for (const h of hooks) g.output(h, OnnxDType.FLOAT, cache.get(h)!.dims.map((_, i) => `${h}_${i}`));
      const s = await rt.compile(g.build());
      const res = await rt.run(s, { tokens: ortI64(BigInt64Array.from(tokens.flat(), (x) => BigInt(x)), [2, 7]) }, ['logits', ...hooks]);
      assertClose(res['logits']!, want!, 1e-5, 'logits');
      for (const h of hooks) assertClose(res[h]!, cache.get(h)!, 1e-5, h);
      await s.session.release();
    } finally {
      await ht.dispose();
    }
  });
}

test('a tiny Llama-style model trains (RMS, rotary, grouped-query attention, gated SiLU MLP): loss falls', async () => {
  const model = { normalization_type: 'RMS' as const, positional_embedding_type: 'rotary' as const, n_heads: 4, d_head: 4, n_key_value_heads: 2, gated_mlp: true, act_fn: 'silu' as const };
  const t = await Trainer.create(tinyConfig({ max_steps: 30, lr: 1e-2, warmup_steps: 0 }, model), { threads: 1 });
  try {
    const r = await t.run();
    const first = r.losses.slice(0, 3).reduce((a, b) => a + b, 0) / 3, last = r.losses.slice(-3).reduce((a, b) => a + b, 0) / 3;
    assert.ok(last < first - 0.1, `loss ${first.toFixed(3)} -> ${last.toFixed(3)} should fall`);
    assert.ok(t.layout.specs.some((s) => s.name === 'blocks.0.attn._W_K' && s.dims[0] === 2), 'K has n_key_value_heads heads');
    assert.ok(t.layout.specs.some((s) => s.name === 'blocks.0.mlp.W_gate'));
    assert.ok(!t.layout.specs.some((s) => s.name === 'pos_embed.W_pos' || s.name.endsWith('.b') && s.name.includes('ln')), 'no W_pos, no norm biases');
  } finally {
    await t.dispose();
  }
});

test('one training step is torch.optim.AdamW after clip_grad_norm_ (with warm-up and decay policy)', async () => {
  for (const decay of ['all', 'matrices'] as const) {
    // max_grad_norm small enough that clipping is active; warm-up 2: step 0 has lr 0 (LambdaLR(0) = 0).
    // eps 1e-4 keeps m / (sqrt(v) + eps) smooth where gradients are ~0, so float32 vs float64 noise
    // in near-zero gradients cannot flip an update's sign.
    const c = tinyConfig({ max_grad_norm: 0.05, warmup_steps: 2, lr: 1e-2, weight_decay: 0.3, decay_params: decay, betas: [0.8, 0.9], eps: 1e-4 }, { n_layers: 1, d_vocab: 9, n_ctx: 6 });
    const t = await Trainer.create(c, { threads: 1 });
    const layout = t.layout;
    const cfg = t.cfg;
    try {
      assert.ok(!layout.specs.some((s) => s.name === 'pos_embed.W_pos'), 'a zeroed and frozen W_pos is not trained');
      // Expected update in float64 from gradients computed by a separate (non-optimizer) graph.
      const grad = await gradientGraph(cfg);
      const rng = new Rng(c.seed, 1);
      const task = makeTask(c.task);
      const B = c.batch_size, P = cfg.n_ctx;
      const batch = { tokens: new Int32Array(B * P), targets: new Int32Array(B * P) };
      const p = Float64Array.from(flat(t.params(), layout.specs.map((s) => s.name)));
      const m = new Float64Array(p.length), v = new Float64Array(p.length);
      for (let step = 0; step < 3; step++) {
        task.fill(rng, B, P, cfg.d_vocab, batch);
        const g = await grad(unflatParams(Float32Array.from(p), layout.specs), batch);
        const norm = Math.sqrt(g.reduce((s, x) => s + x * x, 0));
        const coef = Math.min(1, c.max_grad_norm! / (norm + 1e-6));
        const lr = c.lr * Math.min(step / c.warmup_steps, 1);
        const [b1, b2] = c.betas;
        const bc1 = 1 - b1 ** (step + 1), bc2 = 1 - b2 ** (step + 1);
        let off = 0;
        for (const s of layout.specs) {
          const n = s.dims.reduce((a, b) => a * b, 1);
          const wd = decay === 'all' || s.isMatrix ? c.weight_decay : 0;
          for (let i = off; i < off + n; i++) {
            const gi = g[i]! * coef;
            p[i] = p[i]! * (1 - lr * wd);
            m[i] = b1 * m[i]! + (1 - b1) * gi;
            v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
            p[i] = p[i]! - (lr / bc1) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + c.eps);
          }
          off += n;
        }
        const info = await t.trainStep();
        assert.ok(Math.abs(info.gradNorm - norm) < 1e-4 * norm, `step ${step}: grad norm ${info.gradNorm} vs ${norm}`);
        assert.equal(info.lr, lr);
        const got = flat(t.params(), layout.specs.map((s) => s.name));
        let worst = 0;
        got.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - p[i]!))));
        // Parameters are O(0.1-1); float32 storage of p, m, v bounds the agreement.
        assert.ok(worst < 2e-6, `decay ${decay}, step ${step}: max |trainer - torch AdamW| = ${worst}`);
        if (step === 0) assert.equal(worst, 0, 'lr 0 at step 0 (warm-up) leaves the parameters unchanged');
      }
    } finally {
      await t.dispose();
    }
  }
});

function flat(p: Params, names: string[]): Float32Array {
  const parts = names.map((n) => p.get(n)!.data);
  const out = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
  let o = 0;
  for (const x of parts) { out.set(x, o); o += x.length; }
  return out;
}

function unflatParams(v: Float32Array, specs: { name: string; dims: number[] }[]): Params {
  const p: Params = new Map();
  let o = 0;
  for (const s of specs) {
    const n = s.dims.reduce((a, b) => a * b, 1);
    p.set(s.name, { dtype: 'float32', dims: s.dims, data: v.slice(o, o + n) });
    o += n;
  }
  return p;
}

/** d loss / d params (flat, layout order) for a batch, from a plain forward + autodiff graph. */
async function gradientGraph(cfg: HookedTransformerConfig): Promise<(p: Params, batch: { tokens: Int32Array; targets: Int32Array }) => Promise<Float64Array>> {
  const specs = paramSpecs(cfg, { includePos: false });
  const rt = new OnnxRuntime({ device: 'cpu', threads: 1 });
  return async (p, batch) => {
    const g = new GraphBuilder('grad');
    for (const s of specs) g.input(`p:${s.name}`, OnnxDType.FLOAT, s.dims);
    const tokens = tokenInput(g, 'tokens', 'batch', 'pos');
    const targets = g.input('targets', OnnxDType.INT64, ['batch', 'pos']);
    const { logits } = emitForward(g, cfg, (n) => `p:${n}`, tokens, { batch: 'batch', pos: 'pos', usePos: false });
    g.nodes.push({ op: 'SoftmaxCrossEntropyLoss', inputs: [g.op('Reshape', [logits, g.constI64([-1, cfg.d_vocab_out])]), g.op('Reshape', [targets, g.constI64([-1])])], outputs: ['loss'], attrs: { ignore_index: { kind: 'int', v: IGNORE } } });
    const grads = addGradients(g, 'loss', specs.map((s) => `p:${s.name}`));
    for (const s of specs) g.output(grads.get(`p:${s.name}`)!, OnnxDType.FLOAT, s.dims);
    const sess = await rt.compile(g.build());
    const B = batch.tokens.length / cfg.n_ctx;
    const feeds: Record<string, ort.Tensor> = {
      tokens: ortI64(BigInt64Array.from(batch.tokens, (x) => BigInt(x)), [B, cfg.n_ctx]),
      targets: ortI64(BigInt64Array.from(batch.targets, (x) => BigInt(x)), [B, cfg.n_ctx]),
    };
    for (const s of specs) feeds[`p:${s.name}`] = ortF32(p.get(s.name)!);
    const out = await rt.run(sess, feeds, specs.map((s) => grads.get(`p:${s.name}`)!));
    await sess.session.release();
    return Float64Array.from(specs.flatMap((s) => Array.from(out[grads.get(`p:${s.name}`)!]!.data)));
  };
}

test('a short no-positional-embedding-style run learns the previous token; its checkpoint loads through loadModel into HookedTransformer', async () => {
  const c = tinyConfig({ max_steps: 250, batch_size: 64, lr: 3e-3, warmup_steps: 20, seed: 1 }, { d_model: 32, d_head: 32, d_mlp: 64, d_vocab: 20, n_ctx: 12 });
  const saveDir = tmp('short-run');
  const t = await Trainer.create(c, { saveDir, threads: 1 });
  let progress = 0;
  let last: { tokensPerSec: number; etaSec: number; posLoss: Float32Array } | null = null;
  const r = await t.run({ onProgress: (p) => { progress++; last = p; } });
  const params = t.params();
  await t.dispose();
  assert.equal(r.status, 'completed');
  assert.equal(progress, 250);
  assert.ok(last !== null && (last as { tokensPerSec: number }).tokensPerSec > 0);
  const curve = [0, 25, 50, 100, 150, 200, 249].map((i) => `${i + 1}: ${r.losses[i]!.toFixed(3)}`).join(', ');
  console.log(`no-positional-embedding-style run (d_vocab 20, ln 20 = ${Math.log(20).toFixed(3)}): ${curve}`);
  const tail = r.losses.slice(-20).reduce((a, b) => a + b, 0) / 20;
  assert.ok(r.losses[0]! > 2.5, `initial loss ${r.losses[0]} should be near ln(20)`);
  assert.ok(tail < 0.3, `mean loss over the last 20 steps ${tail} should be far below ln(20) = 3.0`);
  assert.ok(params.get('pos_embed.W_pos')!.data.every((x) => x === 0), 'W_pos stays exactly zero');

  // The checkpoint is a model folder the engine loads like any other.
  assert.equal(r.checkpoint, path.join(saveDir, 'step-000250'));
  assert.equal(fs.readFileSync(path.join(saveDir, 'latest'), 'utf8').trim(), 'step-000250');
  const loaded = await loadModel(r.checkpoint!);
  assert.equal(loaded.cfg.positional_embedding_type, 'standard');
  assert.equal(loaded.cfg.d_vocab, 20);
  const tok = loadTokenizerForModel(r.checkpoint!, loaded.cfg);
  assert.equal(tok.kind, 'ids');
  assert.equal(tok.bosTokenId, 0);
  const ht = HookedTransformer.fromLoaded({ ...loaded, processing: 'none' }, { device: 'cpu', threads: 1 });
  const mem = new HookedTransformer(loaded.cfg, params, 'none', 'memory', { device: 'cpu', threads: 1 });
  try {
    const rng = new Rng(99);
    const tokens = Array.from({ length: 8 }, () => [0, ...Array.from({ length: 11 }, () => rng.int(1, 20))]);
    const logits = await ht.forward(tokens);
    assertClose(logits, await mem.forward(tokens), 0, 'loaded vs in-memory trained logits');
    const loss = meanLossPrevToken(logits, tokens);
    assert.ok(loss < 0.35, `the loaded model predicts the previous token (loss ${loss})`);
  } finally {
    await ht.dispose();
    await mem.dispose();
  }
});

test('stop (AbortSignal) and resume continue the same curve as an uninterrupted run', async () => {
  const c = tinyConfig({ max_steps: 16, save_every: 5, keep_checkpoints: 2 });
  const straight = await Trainer.create(c, { threads: 1 });
  const full = await straight.run();
  const fullParams = straight.params();
  await straight.dispose();

  const saveDir = tmp('resume');
  const first = await Trainer.create(c, { saveDir, threads: 1 });
  const ac = new AbortController();
  const part = await first.run({ signal: ac.signal, onProgress: (p) => { if (p.step === 7) ac.abort(); } });
  await first.dispose();
  assert.equal(part.status, 'aborted');
  assert.equal(part.step, 7);
  assert.equal(part.checkpoint, path.join(saveDir, 'step-000007'));
  // save_every 5 wrote step 5, the abort step 7; keep_checkpoints 2 keeps both.
  assert.deepEqual(fs.readdirSync(saveDir).filter((n) => n.startsWith('step-')).sort(), ['step-000005', 'step-000007']);

  const second = await Trainer.resume(saveDir, { saveDir, threads: 1 });
  assert.equal(second.step, 7);
  const rest = await second.run();
  const resumedParams = second.params();
  await second.dispose();
  assert.equal(rest.losses.length, 16);
  let worst = 0;
  full.losses.forEach((l, i) => (worst = Math.max(worst, Math.abs(l - rest.losses[i]!))));
  assert.ok(worst <= 1e-6, `resumed losses differ from the uninterrupted run by up to ${worst}`);
  for (const [n, t] of fullParams) assertClose(resumedParams.get(n)!, t, 1e-6, `final ${n}`);
  assert.deepEqual(fs.readdirSync(saveDir).filter((n) => n.startsWith('step-')).sort(), ['step-000015', 'step-000016']);
  assert.ok(!fs.readdirSync(saveDir).some((n) => n.startsWith('.tmp')), 'no temporary folders are left');
});

test('a NaN loss stops the run with a clear error and leaves the model at the last good step', async () => {
  const c = tinyConfig();
  const good = await Trainer.create(c, { threads: 1 });
  const params = good.params();
  await good.dispose();
  params.get('embed.W_E')!.data[3] = NaN;
  const t = await Trainer.create(c, { initialParams: params, threads: 1 });
  try {
    await assert.rejects(t.trainStep(), (e: unknown) => e instanceof TrainingError && e.code === 'NAN_LOSS' && /step 1: the loss is NaN/.test(e.message) && /lower lr/i.test(e.message));
    assert.equal(t.step, 0);
    assert.ok(Number.isNaN(t.params().get('embed.W_E')!.data[3]!));
  } finally {
    await t.dispose();
  }
});

test('an unwritable checkpoint folder fails cleanly, before and during training', async () => {
  const file = tmp('a-file');
  fs.writeFileSync(file, 'not a folder');
  await assert.rejects(Trainer.create(tinyConfig(), { saveDir: path.join(file, 'ckpt'), threads: 1 }), (e: unknown) => e instanceof TrainingError && e.code === 'CHECKPOINT' && /not writable: ENOTDIR/.test(e.message));

  const saveDir = tmp('vanishing');
  const t = await Trainer.create(tinyConfig({ max_steps: 4 }), { saveDir, threads: 1 });
  try {
    await t.run({ untilStep: 2 });
    const first = path.join(saveDir, 'step-000002');
    assert.ok(fs.existsSync(path.join(first, 'model.safetensors')));
    // `latest` becomes a folder, so it cannot be replaced by a file: the save fails midway (after
    // the step folder was written), is rolled back, and the earlier checkpoint stays intact.
    fs.rmSync(path.join(saveDir, 'latest'));
    fs.mkdirSync(path.join(saveDir, 'latest'));
    await assert.rejects(t.run(), (e: unknown) => e instanceof TrainingError && e.code === 'CHECKPOINT' && /could not save the checkpoint for step 4/.test(e.message) && /step-000002 is intact/.test(e.message));
    assert.ok(fs.existsSync(path.join(first, 'config.json')));
    assert.ok(!fs.existsSync(path.join(saveDir, 'step-000004')), 'the half-registered checkpoint is withdrawn');
    assert.ok(!fs.readdirSync(saveDir).some((n) => n.startsWith('.tmp')), 'no temporary folders are left');
  } finally {
    await t.dispose();
  }
});

test('tasks: induction repeats a random sequence; text uses a character tokenizer and its checkpoint keeps the vocabulary', async () => {
  const rng = new Rng(3);
  const ind = makeTask({ kind: 'induction', loss_on: 'repeated' });
  const b = { tokens: new Int32Array(2 * 9), targets: new Int32Array(2 * 9) };
  ind.fill(rng, 2, 9, 50, b);
  const row = Array.from(b.tokens.slice(0, 9));
  assert.equal(row[0], 0);
  assert.deepEqual(row.slice(1, 5), row.slice(5, 9));
  // 'repeated': positions 5..7 predict tokens 6..8 (the second copy after its first token).
  assert.deepEqual(Array.from(b.targets.slice(0, 9)), [IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, row[6], row[7], row[8], IGNORE]);

  const file = tmp('text.txt');
  fs.writeFileSync(file, 'the cat sat on the mat. '.repeat(40));
  const text = makeTask({ kind: 'text', file, tokenizer: 'char' });
  assert.equal(text.chars, ' .acehmnost');
  const c = tinyConfig({ task: { kind: 'text', file, tokenizer: 'char' }, zero_pos_embed: false, max_steps: 3 }, { d_vocab: 0 });
  const saveDir = tmp('text-run');
  const t = await Trainer.create(c, { saveDir, threads: 1 });
  assert.equal(t.cfg.d_vocab, 11, 'd_vocab comes from the character vocabulary');
  assert.ok(t.layout.specs.some((s) => s.name === 'pos_embed.W_pos'), 'positional embeddings are trained when not frozen');
  const r = await t.run();
  await t.dispose();
  const tb = { tokens: new Int32Array(12), targets: new Int32Array(12) };
  text.fill(new Rng(1), 1, 12, 11, tb);
  assert.deepEqual(Array.from(tb.targets.slice(0, 11)), Array.from(tb.tokens.slice(1)), 'next-token targets');
  const loaded = await loadModel(r.checkpoint!);
  const tok = loadTokenizerForModel(r.checkpoint!, loaded.cfg);
  assert.equal(tok.kind, 'char');
  assert.equal(tok.decode(tok.encode('the mat')), 'the mat');
});

test('config errors name the field', async () => {
  await assert.rejects(Trainer.create(tinyConfig({ batch_size: 0 })), /batch_size must be a positive integer/);
  await assert.rejects(Trainer.create(tinyConfig({ betas: [0.9, 1.5] })), /betas must be two numbers in \[0, 1\)/);
  await assert.rejects(Trainer.create(tinyConfig({}, { n_heads: 0 })), /n_heads must be a positive integer/);
  assert.equal(makeConfig({ n_layers: 1, d_model: 4, n_heads: 1, d_vocab: 3, n_ctx: 2 }).act_fn, 'gelu_new');
});

test('every architecture trains: attention-only, LNPre, no normalization, gelu / gelu_new, trained positional embeddings', async () => {
  const variants: [string, Partial<TrainConfig['model']>, boolean][] = [
    ['attn_only, LNPre, 2 heads', { attn_only: true, normalization_type: 'LNPre', n_heads: 2, d_head: 8 }, true],
    ['no normalization, gelu, d_head * n_heads != d_model', { normalization_type: null, act_fn: 'gelu', n_heads: 3, d_head: 4 }, false],
    ['LN, gelu_new, positional embeddings trained', { act_fn: 'gelu_new' }, false],
  ];
  for (const [label, model, zeroPos] of variants) {
    const t = await Trainer.create(tinyConfig({ zero_pos_embed: zeroPos, max_steps: 30, lr: 1e-2, warmup_steps: 0 }, model), { threads: 1 });
    try {
      const r = await t.run();
      const first = r.losses.slice(0, 3).reduce((a, b) => a + b, 0) / 3, last = r.losses.slice(-3).reduce((a, b) => a + b, 0) / 3;
      assert.ok(last < first, `${label}: loss ${first.toFixed(3)} -> ${last.toFixed(3)} should fall`);
      assert.equal(t.layout.specs.some((s) => s.name === 'pos_embed.W_pos'), !zeroPos, `${label}: W_pos trained iff not frozen`);
    } finally {
      await t.dispose();
    }
  }
  const gpt2 = makeTask({ kind: 'text', file: (() => { const f = tmp('gpt2.txt'); fs.writeFileSync(f, 'Hello world. '.repeat(30)); return f; })(), tokenizer: 'gpt2' });
  assert.equal(gpt2.vocabSize, 50257);
  const b = { tokens: new Int32Array(6), targets: new Int32Array(6) };
  gpt2.fill(new Rng(1), 1, 6, 50257, b);
  assert.equal(b.tokens[0], 50256, 'GPT-2 windows start with BOS (<|endoftext|>)');
  assert.ok([15496, 995, 13].includes(b.tokens[1]!), `a GPT-2 id of "Hello world." (got ${b.tokens[1]})`);
});
