/**
 * Autodiff on whole tiny transformers (the training graph of src/engine/training/model.ts):
 *  1. against float64 finite differences of the reference interpreter, on sampled coordinates of
 *     every parameter, for several architectures;
 *  2. against @tensorflow/tfjs's autodiff of an independent tfjs implementation of the same
 *     model (TransformerLens maths written with tf ops), on every coordinate.
 * Loss: the no-positional-embedding experiment's previous-token cross-entropy (mean over scored tokens, position 0 ignored).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { GraphBuilder } from '../../src/engine/graph/builder.js';
import { addGradients } from '../../src/engine/graph/autodiff.js';
import { OnnxDType, type OnnxGraph } from '../../src/engine/graph/onnxProto.js';
import { OnnxRuntime, ortF32, ortI64 } from '../../src/engine/backends/onnx/runtime.js';
import { makeConfig, type ConfigInput, type HookedTransformerConfig } from '../../src/engine/model/config.js';
import type { Params } from '../../src/engine/model/params.js';
import { emitForward, initParams, paramSpecs, tokenInput } from '../../src/engine/training/model.js';
import { evaluate, finiteDifferences, ref, type RefTensor } from '../../src/engine/training/reference.js';
import { Rng } from '../../src/engine/training/rng.js';
import { IGNORE } from '../../src/engine/training/tasks.js';
import type * as ort from 'onnxruntime-node';

const runtime = new OnnxRuntime({ device: 'cpu', threads: 1 });
const B = 2, P = 5;

interface Built {
  graph: OnnxGraph;
  grads: Map<string, string>;
  names: string[];
}

/** Model graph with every parameter as its own input `p:<name>`, loss = previous-token cross-entropy. */
function buildLossGraph(cfg: HookedTransformerConfig): Built {
  const g = new GraphBuilder('tiny');
  const specs = paramSpecs(cfg, { includePos: cfg.positional_embedding_type === 'standard' });
  for (const s of specs) g.input(`p:${s.name}`, OnnxDType.FLOAT, s.dims);
  const tokens = tokenInput(g, 'tokens', B, P);
  const targets = g.input('targets', OnnxDType.INT64, [B, P]);
  const { logits } = emitForward(g, cfg, (n) => `p:${n}`, tokens, { batch: B, pos: P, usePos: cfg.positional_embedding_type === 'standard' });
  const flat = g.op('Reshape', [logits, g.constI64([B * P, cfg.d_vocab_out])]);
  g.nodes.push({ op: 'SoftmaxCrossEntropyLoss', inputs: [flat, g.op('Reshape', [targets, g.constI64([B * P])])], outputs: ['loss'], attrs: { reduction: { kind: 'string', v: 'mean' }, ignore_index: { kind: 'int', v: IGNORE } } });
  const names = specs.map((s) => `p:${s.name}`);
  const grads = addGradients(g, 'loss', names);
  g.output('loss', OnnxDType.FLOAT, []);
  specs.forEach((s, i) => g.output(grads.get(names[i]!)!, OnnxDType.FLOAT, s.dims));
  return { graph: g.build(), grads, names };
}

function data(cfg: HookedTransformerConfig, seed: number): { params: Params; tokens: number[]; targets: number[] } {
  const rng = new Rng(seed);
  const params = initParams(cfg, rng, { zeroPos: false });
  // Non-trivial biases and LayerNorm weights, so their gradients and uses are all exercised.
  for (const [name, t] of params) {
    if (!/\.W_/.test(`.${name.split('.').pop()}`)) for (let i = 0; i < t.data.length; i++) t.data[i] = t.data[i]! + 0.1 * rng.normal();
  }
  const tokens: number[] = [], targets: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P; p++) tokens.push(p === 0 ? 0 : rng.int(1, cfg.d_vocab));
    for (let p = 0; p < P; p++) targets.push(p === 0 ? IGNORE : tokens[b * P + p - 1]!);
  }
  return { params, tokens, targets };
}

async function runOrt(built: Built, d: ReturnType<typeof data>): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const s = await runtime.compile(built.graph);
  try {
    const feeds: Record<string, ort.Tensor> = {
      tokens: ortI64(BigInt64Array.from(d.tokens, (x) => BigInt(x)), [B, P]),
      targets: ortI64(BigInt64Array.from(d.targets, (x) => BigInt(x)), [B, P]),
    };
    for (const [n, t] of d.params) feeds[`p:${n}`] = ortF32(t);
    const out = await runtime.run(s, feeds, ['loss', ...built.names.map((n) => built.grads.get(n)!)]);
    return { loss: out['loss']!.data[0]!, grads: new Map(built.names.map((n) => [n.slice(2), out[built.grads.get(n)!]!.data])) };
  } finally {
    await s.session.release();
  }
}

const ARCHS: [string, ConfigInput][] = [
  ['LN, gelu_new, positional, 2 heads', { n_layers: 2, d_model: 8, n_heads: 2, d_head: 4, d_mlp: 12, d_vocab: 7, n_ctx: 6, act_fn: 'gelu_new', normalization_type: 'LN' }],
  ['LNPre, relu, d_head*n_heads != d_model', { n_layers: 1, d_model: 6, n_heads: 2, d_head: 4, d_mlp: 8, d_vocab: 7, n_ctx: 6, act_fn: 'relu', normalization_type: 'LNPre' }],
  ['attention-only, no normalization, no positional embeddings', { n_layers: 2, d_model: 6, n_heads: 1, d_head: 6, d_vocab: 5, n_ctx: 5, attn_only: true, normalization_type: null, positional_embedding_type: 'none' }],
  ['no normalization, gelu (erf)', { n_layers: 1, d_model: 6, n_heads: 3, d_head: 2, d_mlp: 8, d_vocab: 5, n_ctx: 5, act_fn: 'gelu', normalization_type: null }],
];

/** Registered families' blocks (the shared graph components): checked against finite differences only. */
const FAMILY_ARCHS: [string, ConfigInput][] = [
  ['Llama-style: RMS, rotary, grouped-query attention, SiLU-gated MLP', { n_layers: 2, d_model: 8, n_heads: 4, d_head: 2, n_key_value_heads: 2, d_mlp: 12, d_vocab: 7, n_ctx: 6, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true }],
  ['GPT-NeoX-style: LN, partial rotary, parallel attention and MLP', { n_layers: 1, d_model: 8, n_heads: 2, d_head: 4, rotary_dim: 2, d_mlp: 12, d_vocab: 7, n_ctx: 6, act_fn: 'gelu', normalization_type: 'LN', positional_embedding_type: 'rotary', parallel_attn_mlp: true }],
  ['Mistral-style: RMSPre, sliding window 2, adjacent-pair rotary, Llama 3 rope scaling', { n_layers: 1, d_model: 8, n_heads: 2, d_head: 4, n_key_value_heads: 1, d_mlp: 8, d_vocab: 7, n_ctx: 6, act_fn: 'silu', normalization_type: 'RMSPre', positional_embedding_type: 'rotary', rotary_adjacent_pairs: true, gated_mlp: true, use_local_attn: true, window_size: 2, use_NTK_by_parts_rope: true, NTK_original_ctx_len: 4, NTK_by_parts_factor: 8 }],
  ['Qwen3-style: per-head q/k norm, d_head apart from d_model / n_heads, grouped-query attention', { n_layers: 1, d_model: 8, n_heads: 2, d_head: 6, n_key_value_heads: 1, d_mlp: 8, d_vocab: 7, n_ctx: 6, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, use_qk_norm: true, original_architecture: 'Qwen3ForCausalLM' }],
  ['OLMo-2-style: q/k norm over the whole projection', { n_layers: 1, d_model: 8, n_heads: 2, d_head: 4, d_mlp: 8, d_vocab: 7, n_ctx: 6, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, original_architecture: 'Olmo2ForCausalLM' }],
  ['Mixtral-style: mixture of experts, top-2 of 3, weights renormalized', { n_layers: 1, d_model: 8, n_heads: 2, d_head: 4, n_key_value_heads: 1, d_mlp: 6, d_vocab: 7, n_ctx: 6, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, num_experts: 3, experts_per_token: 2, norm_topk_prob: true, original_architecture: 'MixtralForCausalLM' }],
  ['OLMoE-style: whole-projection q/k norm, q/k/v clamped, top-1 of 2 experts', { n_layers: 1, d_model: 8, n_heads: 2, d_head: 4, n_key_value_heads: 2, d_mlp: 6, d_vocab: 7, n_ctx: 6, act_fn: 'silu', normalization_type: 'RMS', positional_embedding_type: 'rotary', gated_mlp: true, num_experts: 2, experts_per_token: 1, clip_qkv: 0.9, original_architecture: 'OlmoeForCausalLM' }],
];

test('whole-model gradients match float64 finite differences (sampled coordinates of every parameter)', async () => {
  const report: string[] = [];
  for (const [label, c] of [...ARCHS, ...FAMILY_ARCHS]) {
    const cfg = makeConfig(c);
    const built = buildLossGraph(cfg);
    const d = data(cfg, 11);
    const { loss, grads } = await runOrt(built, d);
    const feeds: Record<string, RefTensor> = {
      tokens: ref([B, P], d.tokens, 'int'),
      targets: ref([B, P], d.targets, 'int'),
    };
    for (const [n, t] of d.params) feeds[`p:${n}`] = ref(t.dims, t.data);
    const lossRef = evaluate(built.graph, feeds, ['loss'])['loss']!.data[0]!;
    assert.ok(Math.abs(loss - lossRef) < 1e-5, `${label}: loss ${loss} vs float64 ${lossRef}`);
    const rng = new Rng(5);
    let worst = 0, count = 0;
    for (const [n, t] of d.params) {
      // Up to 4 coordinates per parameter; W_E/W_U rows of tokens that occur (else the gradient is trivially 0).
      const idx = [...new Set(Array.from({ length: Math.min(4, t.data.length) }, () => rng.int(0, t.data.length)))];
      const fd = finiteDifferences(built.graph, feeds, 'loss', `p:${n}`, idx);
      const ad = grads.get(n)!;
      idx.forEach((i, k) => {
        const err = Math.abs(ad[i]! - fd[k]!);
        const tol = 3e-5 + 2e-3 * Math.abs(fd[k]!);
        worst = Math.max(worst, err);
        count++;
        assert.ok(err <= tol, `${label}: d loss / d ${n}[${i}]: autodiff ${ad[i]} vs finite difference ${fd[k]} (|diff| ${err.toExponential(2)})`);
      });
    }
    report.push(`${label}: ${count} coordinates, max |autodiff - fd| = ${worst.toExponential(2)}`);
  }
  console.log(report.join('\n'));
});

/** The same model, written independently with tfjs ops (TransformerLens's maths). */
function tfjsLoss(cfg: HookedTransformerConfig, names: string[], d: ReturnType<typeof data>): (...ps: tf.Tensor[]) => tf.Scalar {
  const { d_model: dm, n_heads: H, d_head: dh, d_vocab_out: V } = cfg;
  const tokens = tf.tensor2d(d.tokens, [B, P], 'int32');
  const valid = d.targets.map((t) => (t === IGNORE ? 0 : 1));
  const tgt = tf.oneHot(tf.tensor1d(d.targets.map((t) => (t === IGNORE ? 0 : t)), 'int32'), V).mul(tf.tensor2d(valid, [B * P, 1]));
  const causal = tf.linalg.bandPart(tf.ones([P, P]), -1, 0).cast('bool');
  return (...ps: tf.Tensor[]) => {
    const p = (n: string) => ps[names.indexOf(n)]!;
    const ln = (x: tf.Tensor, prefix: string) => {
      if (cfg.normalization_type === null) return x;
      const { mean, variance } = tf.moments(x, -1, true);
      const y = x.sub(mean).div(variance.add(cfg.eps).sqrt());
      return cfg.normalization_type === 'LN' ? y.mul(p(`${prefix}.w`)).add(p(`${prefix}.b`)) : y;
    };
    const linear = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.matMul(x.reshape([B * P, -1]), w).add(b);
    let resid: tf.Tensor = tf.gather(p('embed.W_E'), tokens); // [batch, pos, d_model]
    if (cfg.positional_embedding_type === 'standard') resid = resid.add(p('pos_embed.W_pos').slice([0, 0], [P, dm]));
    for (let l = 0; l < cfg.n_layers; l++) {
      const L = `blocks.${l}`;
      const x = ln(resid, `${L}.ln1`);
      const proj = (w: string, b: string) => linear(x, p(w).transpose([1, 0, 2]).reshape([dm, H * dh]), p(b).reshape([H * dh])).reshape([B, P, H, dh]).transpose([0, 2, 1, 3]);
      const q = proj(`${L}.attn.W_Q`, `${L}.attn.b_Q`), k = proj(`${L}.attn.W_K`, `${L}.attn.b_K`), v = proj(`${L}.attn.W_V`, `${L}.attn.b_V`);
      let scores = tf.matMul(q, k, false, true); // [batch, head_index, query_pos, key_pos]
      if (cfg.use_attn_scale) scores = scores.div(Math.sqrt(dh));
      scores = tf.where(causal.broadcastTo(scores.shape), scores, tf.fill(scores.shape, -1e9));
      const z = tf.matMul(tf.softmax(scores), v).transpose([0, 2, 1, 3]); // [batch, pos, head_index, d_head]
      const attnOut = linear(z, p(`${L}.attn.W_O`).reshape([H * dh, dm]), p(`${L}.attn.b_O`)).reshape([B, P, dm]);
      resid = resid.add(attnOut);
      if (cfg.attn_only) continue;
      const pre = linear(ln(resid, `${L}.ln2`), p(`${L}.mlp.W_in`), p(`${L}.mlp.b_in`));
      const post = cfg.act_fn === 'relu' ? tf.relu(pre)
        : cfg.act_fn === 'gelu' ? pre.mul(0.5).mul(tf.erf(pre.div(Math.SQRT2)).add(1))
          : pre.mul(0.5).mul(tf.tanh(pre.add(pre.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI))).add(1));
      resid = resid.add(linear(post, p(`${L}.mlp.W_out`), p(`${L}.mlp.b_out`)).reshape([B, P, dm]));
    }
    const logits = linear(ln(resid, 'ln_final'), p('unembed.W_U'), p('unembed.b_U')); // [batch*pos, d_vocab_out]
    return tf.logSoftmax(logits).mul(tgt).sum().neg().div(valid.reduce<number>((a, b) => a + b, 0)) as tf.Scalar;
  };
}

test('whole-model gradients match @tensorflow/tfjs autodiff on every coordinate', async () => {
  await tf.setBackend('cpu');
  const report: string[] = [];
  for (const [label, c] of ARCHS) {
    const cfg = makeConfig(c);
    const built = buildLossGraph(cfg);
    const d = data(cfg, 3);
    const { loss, grads } = await runOrt(built, d);
    const names = [...d.params.keys()];
    const f = tfjsLoss(cfg, names, d);
    const inputs = names.map((n) => tf.tensor(d.params.get(n)!.data, d.params.get(n)!.dims as number[]));
    const { value, grads: tg } = tf.valueAndGrads(f)(inputs);
    const tfLoss = (await value.data())[0]!;
    assert.ok(Math.abs(tfLoss - loss) < 1e-5, `${label}: loss onnxruntime ${loss} vs tfjs ${tfLoss}`);
    let worst = 0;
    for (let i = 0; i < names.length; i++) {
      const want = await tg[i]!.data();
      const got = grads.get(names[i]!)!;
      for (let j = 0; j < want.length; j++) {
        const err = Math.abs(got[j]! - want[j]!);
        worst = Math.max(worst, err);
        assert.ok(err <= 1e-5 + 1e-3 * Math.abs(want[j]!), `${label}: d loss / d ${names[i]}[${j}]: onnxruntime ${got[j]} vs tfjs ${want[j]}`);
      }
    }
    tf.dispose([value, ...tg, ...inputs]);
    report.push(`${label}: max |onnxruntime - tfjs| = ${worst.toExponential(2)} over all parameters`);
  }
  console.log(report.join('\n'));
});
