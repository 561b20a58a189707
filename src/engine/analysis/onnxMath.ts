/**
 * Large dense products for weight-space analyses (full circuits, composition scores) on the
 * same onnxruntime sessions the model uses: GPT-2's W_U W_E alone is 768 x 50257 x 768 multiply-
 * adds, seconds in onnxruntime's GEMM and minutes in a JavaScript loop. Small graphs are compiled
 * once per runtime and cached.
 */
import { GraphBuilder } from '../graph/builder.js';
import { OnnxDType } from '../graph/onnxProto.js';
import { ortF32, type CompiledSession, type OnnxRuntime, type OrtTensor } from '../backends/onnx/runtime.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { getParam, type Params } from '../model/params.js';
import { tiedUnembed } from '../model/unembed.js';

const compiled = new WeakMap<OnnxRuntime, Map<string, Promise<CompiledSession>>>();

/** A cached session for `key`, built by `build` on first use. */
export function cachedSession(rt: OnnxRuntime, key: string, build: () => GraphBuilder): Promise<CompiledSession> {
  let per = compiled.get(rt);
  if (!per) compiled.set(rt, (per = new Map()));
  let s = per.get(key);
  if (!s) {
    s = rt.compile(build().build());
    per.set(key, s);
  }
  return s;
}

export async function runSession(rt: OnnxRuntime, s: CompiledSession, feeds: Record<string, F32>, fetch: string[]): Promise<Record<string, F32>> {
  const f: Record<string, OrtTensor> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = ortF32(v);
  return rt.run(s, f, fetch);
}

/** a [..., m, k] @ b [..., k, n] with numpy broadcasting of the leading dims (ONNX MatMul), float32. */
export async function matmul(rt: OnnxRuntime, a: F32, b: F32): Promise<F32> {
  if (a.dims.length < 2 || b.dims.length < 2) throw new Error('matmul: both operands need at least 2 dims');
  if (a.dims[a.dims.length - 1] !== b.dims[b.dims.length - 2]) throw new Error(`matmul: [${a.dims.join(', ')}] @ [${b.dims.join(', ')}] do not chain`);
  const key = `matmul/${a.dims.length}/${b.dims.length}`;
  const s = await cachedSession(rt, key, () => {
    const g = new GraphBuilder('matmul');
    const A = g.input('a', OnnxDType.FLOAT, a.dims.map((_, i) => `a${i}`));
    const B = g.input('b', OnnxDType.FLOAT, b.dims.map((_, i) => `b${i}`));
    g.op('MatMul', [A, B], undefined, 'y');
    g.output('y', OnnxDType.FLOAT, Array.from({ length: Math.max(a.dims.length, b.dims.length) }, (_, i) => `y${i}`));
    return g;
  });
  const out = await runSession(rt, s, { a, b }, ['y']);
  return f32(out['y']!.dims, out['y']!.data);
}

/** op(a) @ op(b) for 2-D a, b, op transposing where asked (ONNX Gemm reads a transposed operand in blocks: no transposed copy). */
export async function gemm(rt: OnnxRuntime, a: F32, b: F32, transA: boolean, transB: boolean): Promise<F32> {
  if (a.dims.length !== 2 || b.dims.length !== 2) throw new Error('gemm: both operands must be 2-D');
  const k = transA ? a.dims[0] : a.dims[1];
  if (k !== (transB ? b.dims[1] : b.dims[0])) throw new Error(`gemm: [${a.dims.join(', ')}]${transA ? 'ᵀ' : ''} @ [${b.dims.join(', ')}]${transB ? 'ᵀ' : ''} do not chain`);
  const s = await cachedSession(rt, `gemm/${Number(transA)}${Number(transB)}`, () => {
    const g = new GraphBuilder('gemm');
    const A = g.input('a', OnnxDType.FLOAT, ['a0', 'a1']);
    const B = g.input('b', OnnxDType.FLOAT, ['b0', 'b1']);
    g.op('Gemm', [A, B], { transA: transA ? 1 : 0, transB: transB ? 1 : 0 }, 'y');
    g.output('y', OnnxDType.FLOAT, ['y0', 'y1']);
    return g;
  });
  const out = await runSession(rt, s, { a, b }, ['y']);
  return f32(out['y']!.dims, out['y']!.data);
}

/**
 * X [n, d_model] @ W_U [d_model, d_vocab_out] -> [n, d_vocab_out]. A tied W_U (model/unembed.ts)
 * is never built: (X·scale) W_Eᵀ + (X P) Q.
 */
export async function timesUnembedMatrix(rt: OnnxRuntime, params: ReadonlyMap<string, F32>, X: F32): Promise<F32> {
  const t = tiedUnembed(params);
  if (!t) return matmul(rt, X, getParam(params as Params, 'unembed.W_U'));
  if (X.dims.length !== 2 || X.dims[1] !== t.d) throw new Error(`X @ W_U needs X [n, ${t.d}], got [${X.dims.join(', ')}]`);
  const n = X.dims[0]!;
  const xs = new Float32Array(X.data.length);
  for (let i = 0; i < n; i++) for (let d = 0; d < t.d; d++) xs[i * t.d + d] = X.data[i * t.d + d]! * (t.scale ? t.scale[d]! : 1);
  const y = await gemm(rt, f32([n, t.d], xs), t.W_E, false, true); // [n, d_vocab_out]
  if (t.K > 0) addRankOne(y.data, X.data, n, t.d, t.P.data, t.Q.data, t.K, t.V);
  return y;
}

/** y [n, V] += (x [n, d] P [d, K]) Q [K, V], in float64 per entry. */
function addRankOne(y: Float32Array, x: Float32Array, n: number, D: number, P: Float32Array, Q: Float32Array, K: number, V: number): void {
  const xp = new Float64Array(K);
  for (let i = 0; i < n; i++) {
    xp.fill(0);
    for (let d = 0; d < D; d++) for (let k = 0; k < K; k++) xp[k]! += x[i * D + d]! * P[d * K + k]!;
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += xp[k]! * Q[k * V + v]!;
      y[i * V + v] = y[i * V + v]! + s;
    }
  }
}

/**
 * W_U [d_model, d_vocab_out] @ W_E [d_vocab, d_model] -> [d_model, d_model] (d_vocab_out ==
 * d_vocab). Tied: diag(scale) W_Eᵀ W_E + P (Q W_E), with W_Eᵀ W_E one Gemm (transA).
 */
export async function unembedTimesEmbed(rt: OnnxRuntime, params: ReadonlyMap<string, F32>): Promise<F32> {
  const WE = getParam(params as Params, 'embed.W_E');
  const t = tiedUnembed(params);
  if (!t) return matmul(rt, getParam(params as Params, 'unembed.W_U'), WE);
  const D = t.d;
  const g = await gemm(rt, WE, WE, true, false); // [d_model, d_model]
  const out = g.data;
  if (t.scale) for (let a = 0; a < D; a++) for (let b = 0; b < D; b++) out[a * D + b] = out[a * D + b]! * t.scale[a]!;
  if (t.K > 0) {
    const QE = await matmul(rt, t.Q, WE); // [K, d_model]
    for (let a = 0; a < D; a++) {
      for (let b = 0; b < D; b++) {
        let s = 0;
        for (let k = 0; k < t.K; k++) s += t.P.data[a * t.K + k]! * QE.data[k * D + b]!;
        out[a * D + b] = out[a * D + b]! + s;
      }
    }
  }
  return g;
}
