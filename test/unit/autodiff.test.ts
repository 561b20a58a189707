/**
 * Reverse-mode autodiff (src/engine/graph/autodiff.ts), op by op: each case builds a small graph
 * y = op(inputs), takes L = sum(y * r) for a random r, lets autodiff append dL/dinputs, runs it in
 * onnxruntime (float32) and compares with central finite differences of a float64 reference
 * forward (src/engine/training/reference.ts). Tolerance: |ad - fd| <= 2e-4 + 2e-3 |fd| unless a
 * case says otherwise (float32 products of ~10 terms carry ~1e-6 relative error; the rest is margin).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/engine/graph/builder.js';
import { addGradients, inferShapes, type Dim } from '../../src/engine/graph/autodiff.js';
import { OnnxDType } from '../../src/engine/graph/onnxProto.js';
import { OnnxRuntime, ortF32, ortI64 } from '../../src/engine/backends/onnx/runtime.js';
import { evaluate, finiteDifferences, ref, type RefTensor } from '../../src/engine/training/reference.js';
import { Rng } from '../../src/engine/training/rng.js';
import { buildBlockGraph, RESID_IN, RESID_OUT } from '../../src/engine/graph/segments.js';
import { fixtureConfig, fixtureParams } from '../helpers/fixture.js';
import type * as ort from 'onnxruntime-node';

interface InputSpec {
  name: string;
  /** Concrete dims fed at run time. */
  dims: number[];
  /** Declared dims (symbolic names allowed); default = dims. */
  declared?: Dim[];
  int?: number[];
  /** Draw values in [0.5, 2] (for sqrt, log, division). */
  positive?: boolean;
}

interface Case {
  name: string;
  inputs: InputSpec[];
  build: (g: GraphBuilder, v: Record<string, string>) => string;
  /** Inputs to differentiate (default: every float input). */
  wrt?: string[];
  atol?: number;
  rtol?: number;
}

const runtime = new OnnxRuntime({ device: 'cpu', threads: 1 });
const numel = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);

async function check(c: Case): Promise<number> {
  const rng = new Rng(c.name.length * 7919 + 17);
  const g = new GraphBuilder(c.name);
  const v: Record<string, string> = {};
  const feeds: Record<string, RefTensor> = {};
  for (const i of c.inputs) {
    v[i.name] = g.input(i.name, i.int ? OnnxDType.INT64 : OnnxDType.FLOAT, i.declared ?? i.dims);
    const data = i.int ?? Array.from({ length: numel(i.dims) }, () => Math.fround(i.positive ? 0.5 + 1.5 * rng.uniform() : rng.normal()));
    feeds[i.name] = ref(i.dims, data, i.int ? 'int' : 'float');
  }
  const y = c.build(g, v);
  // r has y's (possibly symbolic) declared shape; its values come from y's concrete shape.
  const yDeclared = inferShapes(g).shape(y);
  const r = g.input('r', OnnxDType.FLOAT, yDeclared);
  const yRef = evaluate(g.build(), feeds, [y])[y]!;
  feeds['r'] = ref(yRef.dims, Array.from({ length: yRef.data.length }, () => Math.fround(rng.normal())));
  const loss = g.op('ReduceSum', [g.op('Mul', [y, r])], { keepdims: 0 }, 'loss');
  const wrt = c.wrt ?? c.inputs.filter((i) => !i.int).map((i) => i.name);
  const grads = addGradients(g, loss, wrt);
  g.output('loss', OnnxDType.FLOAT, []);
  for (const w of wrt) g.output(grads.get(w)!, OnnxDType.FLOAT, c.inputs.find((i) => i.name === w)!.dims);
  const graph = g.build();
  const s = await runtime.compile(graph);
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(feeds)) {
      ortFeeds[k] = t.dtype === 'int' ? ortI64(BigInt64Array.from(t.data, (x) => BigInt(x)), t.dims) : ortF32({ dims: t.dims, data: Float32Array.from(t.data) });
    }
    const out = await runtime.run(s, ortFeeds, ['loss', ...wrt.map((w) => grads.get(w)!)]);
    const lossRef = evaluate(graph, feeds, ['loss'])['loss']!.data[0]!;
    assert.ok(Math.abs(out['loss']!.data[0]! - lossRef) <= 1e-4 * (1 + Math.abs(lossRef)), `${c.name}: forward loss ${out['loss']!.data[0]} vs reference ${lossRef}`);
    const atol = c.atol ?? 2e-4, rtol = c.rtol ?? 2e-3;
    let worst = 0; // max |autodiff - fd| over every coordinate of every input
    for (const w of wrt) {
      const ad = out[grads.get(w)!]!;
      assert.deepEqual(ad.dims, feeds[w]!.dims, `${c.name}: d/d${w} has shape [${ad.dims.join(', ')}], expected [${feeds[w]!.dims.join(', ')}]`);
      const idx = Array.from({ length: feeds[w]!.data.length }, (_, i) => i);
      const fd = finiteDifferences(graph, feeds, 'loss', w, idx);
      idx.forEach((i) => {
        const err = Math.abs(ad.data[i]! - fd[i]!);
        worst = Math.max(worst, err);
        assert.ok(err <= atol + rtol * Math.abs(fd[i]!), `${c.name}: d/d${w}[${i}] autodiff ${ad.data[i]} vs finite difference ${fd[i]} (|diff| ${err.toExponential(2)})`);
      });
    }
    return worst;
  } finally {
    await s.session.release();
  }
}

const mask23 = [true, false, false, true, true, false];
const f = (name: string, dims: number[], extra: Partial<InputSpec> = {}): InputSpec => ({ name, dims, ...extra });

const CASES: Case[] = [
  { name: 'MatMul 3d x 2d', inputs: [f('a', [2, 3, 4]), f('b', [4, 5])], build: (g, v) => g.op('MatMul', [v['a']!, v['b']!]) },
  { name: 'MatMul batch broadcast both sides', inputs: [f('a', [2, 1, 3, 4]), f('b', [3, 4, 2])], build: (g, v) => g.op('MatMul', [v['a']!, v['b']!]) },
  { name: 'MatMul 2d x 3d', inputs: [f('a', [3, 4]), f('b', [2, 4, 5])], build: (g, v) => g.op('MatMul', [v['a']!, v['b']!]) },
  ...[[0, 0], [0, 1], [1, 0], [1, 1]].map(([ta, tb]) => ({
    name: `FusedMatMul transA=${ta} transB=${tb} alpha=0.5`,
    inputs: [f('a', ta ? [2, 4, 3] : [2, 3, 4]), f('b', tb ? [5, 4] : [4, 5])],
    build: (g: GraphBuilder, v: Record<string, string>) => g.op('FusedMatMul', [v['a']!, v['b']!], { transA: ta!, transB: tb!, alpha: 0.5 }, undefined, 'com.microsoft'),
  })),
  { name: 'Add broadcast [2,3,4]+[4]', inputs: [f('a', [2, 3, 4]), f('b', [4])], build: (g, v) => g.op('Add', [v['a']!, v['b']!]) },
  { name: 'Sub broadcast [2,3,4]-[3,1]', inputs: [f('a', [2, 3, 4]), f('b', [3, 1])], build: (g, v) => g.op('Sub', [v['a']!, v['b']!]) },
  { name: 'Mul broadcast [2,1,4]*[1,3,1]', inputs: [f('a', [2, 1, 4]), f('b', [1, 3, 1])], build: (g, v) => g.op('Mul', [v['a']!, v['b']!]) },
  { name: 'Mul x*x', inputs: [f('a', [3, 4])], build: (g, v) => g.op('Mul', [v['a']!, v['a']!]) },
  { name: 'Div broadcast [2,3]/[] ', inputs: [f('a', [2, 3]), f('b', [], { positive: true })], build: (g, v) => g.op('Div', [v['a']!, v['b']!]) },
  { name: 'Div [2,3]/[2,3]', inputs: [f('a', [2, 3]), f('b', [2, 3], { positive: true })], build: (g, v) => g.op('Div', [v['a']!, v['b']!]) },
  { name: 'Sum of three with broadcast', inputs: [f('a', [2, 3]), f('b', [3]), f('c', [2, 1])], build: (g, v) => g.op('Sum', [v['a']!, v['b']!, v['c']!]) },
  { name: 'Pow x^3', inputs: [f('a', [2, 3])], build: (g, v) => g.op('Pow', [v['a']!, g.constF([3])]) },
  { name: 'ReduceMean axes [-1] keepdims', inputs: [f('a', [2, 3, 4])], build: (g, v) => g.op('ReduceMean', [v['a']!], { axes: [-1], keepdims: 1 }) },
  { name: 'ReduceMean all axes keepdims=0', inputs: [f('a', [2, 3])], build: (g, v) => g.op('ReduceMean', [v['a']!], { keepdims: 0 }) },
  { name: 'ReduceSum axes [0,2] keepdims=0', inputs: [f('a', [2, 3, 4])], build: (g, v) => g.op('ReduceSum', [v['a']!, g.constI64([0, 2])], { keepdims: 0 }) },
  { name: 'ReduceSumSquare', inputs: [f('a', [2, 3])], build: (g, v) => g.op('ReduceSumSquare', [v['a']!], { axes: [1], keepdims: 1 }) },
  { name: 'Sqrt', inputs: [f('a', [2, 3], { positive: true })], build: (g, v) => g.op('Sqrt', [v['a']!]) },
  { name: 'Exp', inputs: [f('a', [2, 3])], build: (g, v) => g.op('Exp', [v['a']!]) },
  { name: 'Log', inputs: [f('a', [2, 3], { positive: true })], build: (g, v) => g.op('Log', [v['a']!]) },
  { name: 'Tanh', inputs: [f('a', [2, 3])], build: (g, v) => g.op('Tanh', [v['a']!]) },
  { name: 'Erf', inputs: [f('a', [2, 3])], build: (g, v) => g.op('Erf', [v['a']!]) },
  { name: 'Sigmoid', inputs: [f('a', [2, 3])], build: (g, v) => g.op('Sigmoid', [v['a']!]) },
  { name: 'Neg, Reciprocal', inputs: [f('a', [2, 3], { positive: true })], build: (g, v) => g.op('Reciprocal', [g.op('Neg', [v['a']!])]) },
  // Relu's kink: inputs from normal(0, 1) are at least ~1e-3 from 0 with overwhelming odds at h = 1e-5.
  { name: 'Relu', inputs: [f('a', [3, 4])], build: (g, v) => g.op('Relu', [v['a']!]) },
  { name: 'Gelu (erf, com.microsoft)', inputs: [f('a', [3, 4])], build: (g, v) => g.op('Gelu', [v['a']!], undefined, undefined, 'com.microsoft') },
  { name: 'FastGelu (tanh, com.microsoft)', inputs: [f('a', [3, 4])], build: (g, v) => g.op('FastGelu', [v['a']!], undefined, undefined, 'com.microsoft') },
  { name: 'FastGelu with bias', inputs: [f('a', [3, 4]), f('b', [4])], build: (g, v) => g.op('FastGelu', [v['a']!, v['b']!], undefined, undefined, 'com.microsoft') },
  { name: 'Softmax axis -1', inputs: [f('a', [2, 3, 4])], build: (g, v) => g.op('Softmax', [v['a']!], { axis: -1 }) },
  { name: 'Softmax axis 1', inputs: [f('a', [2, 3, 4])], build: (g, v) => g.op('Softmax', [v['a']!], { axis: 1 }) },
  { name: 'LogSoftmax', inputs: [f('a', [3, 5])], build: (g, v) => g.op('LogSoftmax', [v['a']!], { axis: -1 }) },
  { name: 'Where with causal-style mask and -inf', inputs: [f('a', [2, 3])], build: (g, v) => g.op('Softmax', [g.op('Where', [g.constBool(mask23, [2, 3]), v['a']!, g.constF([-Infinity])])], { axis: -1 }) },
  { name: 'Where both branches broadcast', inputs: [f('a', [2, 3]), f('b', [3])], build: (g, v) => g.op('Where', [g.constBool(mask23, [2, 3]), v['a']!, v['b']!]) },
  { name: 'Gather embedding with repeated ids', inputs: [f('w', [5, 4]), f('ids', [2, 3], { int: [0, 3, 3, 1, 0, 4] })], build: (g, v) => g.op('Gather', [v['w']!, v['ids']!], { axis: 0 }) },
  { name: 'GatherElements', inputs: [f('a', [3, 4]), f('ids', [3, 2], { int: [0, 3, 1, 1, 2, 0] })], build: (g, v) => g.op('GatherElements', [v['a']!, v['ids']!], { axis: 1 }) },
  { name: 'Reshape + Transpose', inputs: [f('a', [2, 3, 4])], build: (g, v) => g.op('Transpose', [g.op('Reshape', [v['a']!, g.constI64([0, 3, 2, 2])])], { perm: [0, 2, 3, 1] }) },
  { name: 'Split (one output unused) + Concat', inputs: [f('a', [2, 6])], build: (g, v) => { const [p, , r] = g.opN('Split', [v['a']!, g.constI64([2, 1, 3])], 3, { axis: 1 }); return g.op('Concat', [r!, p!, p!], { axis: 1 }); } },
  { name: 'Concat with a constant', inputs: [f('a', [2, 2]), f('b', [2, 1])], build: (g, v) => g.op('Concat', [v['a']!, g.constF([1, 2], [2, 1]), v['b']!], { axis: 1 }) },
  { name: 'Slice static (negative start, axes)', inputs: [f('a', [4, 5])], build: (g, v) => g.op('Slice', [v['a']!, g.constI64([1, -3]), g.constI64([3, 5]), g.constI64([0, 1])]) },
  { name: 'Expand', inputs: [f('a', [3, 1])], build: (g, v) => g.op('Expand', [v['a']!, g.constI64([2, 3, 4])]) },
  { name: 'Identity, Cast, Unsqueeze, Squeeze, Flatten', inputs: [f('a', [2, 3])], build: (g, v) => g.op('Flatten', [g.op('Squeeze', [g.op('Unsqueeze', [g.op('Cast', [g.op('Identity', [v['a']!])], { to: OnnxDType.FLOAT }), g.constI64([0])]), g.constI64([0])])], { axis: 1 }) },
  { name: 'LayerNormalization with scale and bias', inputs: [f('x', [2, 3, 5]), f('w', [5]), f('b', [5])], build: (g, v) => { g.nodes.push({ op: 'LayerNormalization', inputs: [v['x']!, v['w']!, v['b']!], outputs: ['ln_y'], attrs: { axis: { kind: 'int', v: -1 }, epsilon: { kind: 'float', v: 1e-5 } } }); return 'ln_y'; } },
  { name: 'LayerNormalization, no bias (LNPre-style)', inputs: [f('x', [3, 4])], build: (g, v) => { g.nodes.push({ op: 'LayerNormalization', inputs: [v['x']!, g.constF([1, 1, 1, 1], [4])], outputs: ['ln_y', 'ln_m', 'ln_i'], attrs: { epsilon: { kind: 'float', v: 1e-5 } } }); return 'ln_y'; } },
  { name: 'TransformerLens LayerNorm as element-wise ops', inputs: [f('x', [2, 5])], build: (g, v) => {
    const xc = g.op('Sub', [v['x']!, g.op('ReduceMean', [v['x']!], { axes: [-1], keepdims: 1 })]);
    const scale = g.op('Sqrt', [g.op('Add', [g.op('ReduceMean', [g.op('Mul', [xc, xc])], { axes: [-1], keepdims: 1 }), g.constF([1e-5])])]);
    return g.op('Div', [xc, scale]);
  } },
  ...(['mean', 'sum', 'none'] as const).map((reduction) => ({
    name: `SoftmaxCrossEntropyLoss reduction=${reduction} with ignore_index`,
    inputs: [f('x', [4, 5]), f('t', [4], { int: [2, -100, 0, 4] })],
    build: (g: GraphBuilder, v: Record<string, string>) => { g.nodes.push({ op: 'SoftmaxCrossEntropyLoss', inputs: [v['x']!, v['t']!], outputs: ['sce'], attrs: { reduction: { kind: 'string', v: reduction }, ignore_index: { kind: 'int', v: -100 } } }); return 'sce'; },
  })),
  { name: 'SoftmaxCrossEntropyLoss log_prob output', inputs: [f('x', [3, 4]), f('t', [3], { int: [1, 0, 3] })], build: (g, v) => { g.nodes.push({ op: 'SoftmaxCrossEntropyLoss', inputs: [v['x']!, v['t']!], outputs: ['sce', 'sce_lp'] }); return g.op('Add', [g.op('ReduceSum', [g.op('Mul', ['sce_lp', 'sce_lp'])], { keepdims: 0 }), 'sce']); } },
  { name: 'cross-entropy as LogSoftmax + GatherElements', inputs: [f('x', [3, 4]), f('t', [3, 1], { int: [1, 3, 0] })], build: (g, v) => g.op('Neg', [g.op('GatherElements', [g.op('LogSoftmax', [v['x']!], { axis: -1 }), v['t']!], { axis: 1 })]) },
  {
    name: 'symbolic batch/pos: Reshape 0s, ReduceMean over pos, dynamic Slice end, Expand to Shape',
    inputs: [f('x', [2, 3, 4], { declared: ['batch', 'pos', 4] }), f('w', [5, 4])],
    build: (g, v) => {
      const pos = g.op('Slice', [g.op('Shape', [v['x']!]), g.constI64([1]), g.constI64([2])]);
      const wpos = g.op('Slice', [v['w']!, g.constI64([0]), pos, g.constI64([0])]); // [pos, 4]
      const h = g.op('Add', [v['x']!, g.op('Expand', [wpos, g.op('Shape', [v['x']!])])]);
      const r4 = g.op('Reshape', [h, g.constI64([0, 0, 2, 2])]);
      return g.op('ReduceMean', [g.op('Mul', [r4, r4])], { axes: [1], keepdims: 0 });
    },
  },
  {
    name: 'symbolic Concat (dynamic sizes) and Split sizes from a constant',
    inputs: [f('a', [2, 3], { declared: ['n', 3] }), f('b', [1, 3], { declared: ['m', 3] })],
    build: (g, v) => g.op('Tanh', [g.op('Concat', [v['a']!, v['b']!], { axis: 0 })]),
  },
];

test('autodiff matches float64 finite differences, op by op', async () => {
  const worst: string[] = [];
  for (const c of CASES) worst.push(`${c.name}: max |autodiff - fd| = ${(await check(c)).toExponential(1)}`);
  // Printed for the record.
  console.log(worst.join('\n'));
});

test('a value the output does not depend on gets a zero gradient; non-scalar outputs need a seed', () => {
  const g = new GraphBuilder('z');
  const a = g.input('a', OnnxDType.FLOAT, [2]);
  const b = g.input('b', OnnxDType.FLOAT, [3]);
  const y = g.op('ReduceSum', [a], { keepdims: 0 });
  const grads = addGradients(g, y, [a, b]);
  assert.equal(g.nodes.find((n) => n.outputs.includes(grads.get(b)!))?.op, 'ConstantOfShape');
  assert.throws(() => addGradients(g, a, [a]), /give a seed/);
});

test('an op without a rule is named in the error', () => {
  const g = new GraphBuilder('u');
  const a = g.input('a', OnnxDType.FLOAT, [2, 2]);
  const y = g.op('ReduceSum', [g.op('Max', [a, g.constF([0])])], { keepdims: 0 });
  assert.throws(() => addGradients(g, y, [a]), /no gradient rule for Max/);
});

test('autodiff over a HookedTransformer segment graph (gpt2.ts block, element-wise LayerNorm, weight inputs) matches finite differences', async () => {
  const cfg = fixtureConfig();
  const params = fixtureParams('none');
  const seg = buildBlockGraph(cfg, params, 1, { outputs: [], useAttnResult: false, slots: [] });
  const g = GraphBuilder.from(seg);
  const [B, P, d] = [2, 4, cfg.d_model];
  const r = g.input('r', OnnxDType.FLOAT, ['batch', 'pos', d]);
  const loss = g.op('ReduceSum', [g.op('Mul', [RESID_OUT, r])], { keepdims: 0 }, 'loss');
  const W = 'blocks.1.mlp.W_in';
  assert.ok(seg.weightInputs.has(W), `${W} is a weight input of the segment`);
  const grads = addGradients(g, loss, [RESID_IN, W]);
  g.output(grads.get(RESID_IN)!, OnnxDType.FLOAT, ['batch', 'pos', d]);
  g.output(grads.get(W)!, OnnxDType.FLOAT, [d, 128]);
  const graph = g.build();
  const rng = new Rng(4);
  const feeds: Record<string, RefTensor> = {
    [RESID_IN]: ref([B, P, d], Array.from({ length: B * P * d }, () => Math.fround(rng.normal()))),
    r: ref([B, P, d], Array.from({ length: B * P * d }, () => Math.fround(rng.normal()))),
  };
  for (const [k, t] of seg.weightInputs) feeds[k] = ref(t.dims, t.data);
  const s = await runtime.compile(graph);
  try {
    const out = await runtime.run(s, { [RESID_IN]: ortF32({ dims: [B, P, d], data: Float32Array.from(feeds[RESID_IN]!.data) }), r: ortF32({ dims: [B, P, d], data: Float32Array.from(feeds['r']!.data) }) }, [grads.get(RESID_IN)!, grads.get(W)!]);
    for (const [w, idx] of [[RESID_IN, Array.from({ length: B * P * d }, (_, i) => i)], [W, Array.from({ length: 24 }, () => rng.int(0, 32 * 128))]] as const) {
      const fd = finiteDifferences(graph, feeds, 'loss', w, idx);
      const ad = out[grads.get(w)!]!.data;
      idx.forEach((i, k) => assert.ok(Math.abs(ad[i]! - fd[k]!) <= 2e-4 + 2e-3 * Math.abs(fd[k]!), `d/d${w}[${i}]: autodiff ${ad[i]} vs finite difference ${fd[k]}`));
    }
  } finally {
    await s.session.release();
  }
});
