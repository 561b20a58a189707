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
