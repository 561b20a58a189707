/**
 * A float64 reference interpreter for the ONNX ops the differentiable graphs use, in plain JS.
 * It exists to check gradients: central finite differences of a float64 forward pass have
 * errors around 1e-9, far below the float32 noise of the onnxruntime gradients they validate,
 * and they share no code with autodiff's derivative rules. It follows ONNX semantics (and
 * com.microsoft's for FastGelu / Gelu / FusedMatMul), is slow, and is meant for small graphs.
 */
import { OnnxDType, type AttrValue, type OnnxGraph, type OnnxNode, type OnnxTensor } from '../graph/onnxProto.js';

/** A float64 tensor; integer and boolean values are stored as exact doubles, tagged by dtype. */
export interface RefTensor {
  dtype: 'float' | 'int' | 'bool';
  dims: number[];
  data: Float64Array;
}

export const ref = (dims: readonly number[], data: ArrayLike<number>, dtype: RefTensor['dtype'] = 'float'): RefTensor => ({ dtype, dims: [...dims], data: Float64Array.from(data) });

const numel = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);
const stridesOf = (d: readonly number[]) => {
  const s = new Array<number>(d.length);
  let acc = 1;
  for (let i = d.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= d[i]!;
  }
  return s;
};

function fromInitializer(t: OnnxTensor): RefTensor {
  const n = numel(t.dims);
  const b = t.raw.slice().buffer;
  switch (t.dtype) {
    case OnnxDType.FLOAT: return ref(t.dims, new Float32Array(b, 0, n), 'float');
    case OnnxDType.INT64: return ref(t.dims, Array.from(new BigInt64Array(b, 0, n), Number), 'int');
    case OnnxDType.INT32: return ref(t.dims, new Int32Array(b, 0, n), 'int');
    case OnnxDType.BOOL: return ref(t.dims, new Uint8Array(b, 0, n), 'bool');
  }
}

function a(n: OnnxNode, k: string): AttrValue | undefined {
  return n.attrs?.[k];
}
const aInt = (n: OnnxNode, k: string, d: number) => {
  const v = a(n, k);
  return v && v.kind === 'int' ? v.v : d;
};
const aFloat = (n: OnnxNode, k: string, d: number) => {
  const v = a(n, k);
  return v && (v.kind === 'float' || v.kind === 'int') ? v.v : d;
};
const aInts = (n: OnnxNode, k: string) => {
  const v = a(n, k);
  return v && v.kind === 'ints' ? [...v.v] : undefined;
};
const aStr = (n: OnnxNode, k: string, d: string) => {
  const v = a(n, k);
  return v && v.kind === 'string' ? v.v : d;
};
const norm = (ax: number, r: number) => (ax < 0 ? ax + r : ax);

function broadcastShape(shapes: number[][]): number[] {
  const r = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - r + i] ?? 1;
      if (v !== 1) {
        if (d !== 1 && d !== v) throw new Error(`reference: cannot broadcast [${shapes.map((x) => x.join(',')).join('] [')}]`);
        d = v;
      }
    }
    out.push(d);
  }
  return out;
}

/** Element-wise op over broadcast inputs. */
function mapN(ins: RefTensor[], f: (...x: number[]) => number, dtype: RefTensor['dtype']): RefTensor {
  const dims = broadcastShape(ins.map((t) => t.dims));
  const n = numel(dims);
  const r = dims.length;
  const outStr = stridesOf(dims);
  const inStr = ins.map((t) => {
    const s = stridesOf(t.dims);
    return dims.map((d, i) => {
      const j = i - (r - t.dims.length);
      return j < 0 || t.dims[j] === 1 ? 0 : s[j]!;
    });
  });
  const out = new Float64Array(n);
  const args = new Array<number>(ins.length);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < ins.length; k++) {
      let off = 0, rem = i;
      for (let ax = 0; ax < r; ax++) {
        const c = Math.floor(rem / outStr[ax]!);
        rem -= c * outStr[ax]!;
        off += c * inStr[k]![ax]!;
      }
      args[k] = ins[k]!.data[off]!;
    }
    out[i] = f(...args);
  }
  return { dtype, dims, data: out };
}

function transpose(t: RefTensor, perm: number[]): RefTensor {
  const dims = perm.map((p) => t.dims[p]!);
  const inS = stridesOf(t.dims), outS = stridesOf(dims);
  const out = new Float64Array(t.data.length);
  for (let i = 0; i < out.length; i++) {
    let rem = i, off = 0;
    for (let ax = 0; ax < dims.length; ax++) {
      const c = Math.floor(rem / outS[ax]!);
      rem -= c * outS[ax]!;
      off += c * inS[perm[ax]!]!;
    }
    out[i] = t.data[off]!;
  }
  return { dtype: t.dtype, dims, data: out };
}

function swapLast(t: RefTensor): RefTensor {
  const r = t.dims.length;
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return transpose(t, perm);
}

function matmul(A: RefTensor, B: RefTensor, alpha = 1): RefTensor {
  const ra = A.dims.length, rb = B.dims.length;
  const [m, k] = [A.dims[ra - 2]!, A.dims[ra - 1]!];
  const [k2, n] = [B.dims[rb - 2]!, B.dims[rb - 1]!];
  if (k !== k2) throw new Error(`reference: MatMul inner dims ${k} vs ${k2}`);
  const batch = broadcastShape([A.dims.slice(0, -2), B.dims.slice(0, -2)]);
  const nb = numel(batch);
  const out = new Float64Array(nb * m * n);
  const bS = stridesOf(batch);
  const idx = (t: RefTensor, bi: number) => {
    const tb = t.dims.slice(0, -2);
    const s = stridesOf(tb);
    let off = 0, rem = bi;
    for (let ax = 0; ax < batch.length; ax++) {
      const c = Math.floor(rem / bS[ax]!);
      rem -= c * bS[ax]!;
      const j = ax - (batch.length - tb.length);
      if (j >= 0 && tb[j] !== 1) off += c * s[j]!;
    }
    return off;
  };
  for (let bi = 0; bi < nb; bi++) {
    const ao = idx(A, bi) * m * k, bo = idx(B, bi) * k * n, oo = bi * m * n;
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += A.data[ao + i * k + p]! * B.data[bo + p * n + j]!;
      out[oo + i * n + j] = alpha * s;
    }
  }
  return { dtype: 'float', dims: [...batch, m, n], data: out };
}

/** Reduces over axes (sorted, normalized) with f(acc, x), initial value, and a finaliser. */
function reduce(t: RefTensor, axes: number[], keep: boolean, init: number, f: (acc: number, x: number) => number, fin: (acc: number, count: number) => number = (x) => x): RefTensor {
  const r = t.dims.length;
  const outDimsKeep = t.dims.map((d, i) => (axes.includes(i) ? 1 : d));
  const oS = stridesOf(outDimsKeep), iS = stridesOf(t.dims);
  const acc = new Float64Array(numel(outDimsKeep)).fill(init);
  for (let i = 0; i < t.data.length; i++) {
    let rem = i, off = 0;
    for (let ax = 0; ax < r; ax++) {
      const c = Math.floor(rem / iS[ax]!);
      rem -= c * iS[ax]!;
      if (!axes.includes(ax)) off += c * oS[ax]!;
    }
    acc[off] = f(acc[off]!, t.data[i]!);
  }
  const count = numel(axes.map((ax) => t.dims[ax]!));
  for (let i = 0; i < acc.length; i++) acc[i] = fin(acc[i]!, count);
  return { dtype: t.dtype, dims: keep ? outDimsKeep : t.dims.filter((_, i) => !axes.includes(i)), data: acc };
}

/** Applies f to each 1-D lane along `axis`. */
function lanes(t: RefTensor, axis: number, f: (lane: Float64Array) => Float64Array): RefTensor {
  const ax = norm(axis, t.dims.length);
  const perm = Array.from({ length: t.dims.length }, (_, i) => i).filter((i) => i !== ax).concat([ax]);
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  const tt = transpose(t, perm);
  const L = t.dims[ax]!;
  const out = new Float64Array(tt.data.length);
  for (let o = 0; o < out.length; o += L) out.set(f(tt.data.subarray(o, o + L)), o);
  return transpose({ dtype: 'float', dims: tt.dims, data: out }, inv);
}

/** erf in float64 (Taylor series below 3, continued fraction for erfc above). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = x, sum = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) (Lentz).
  let f = ax, C = ax, D = 0;
  for (let n = 1; n < 300; n++) {
    const an = n / 2;
    D = ax + an * D;
    D = D === 0 ? 1e-300 : 1 / D;
    C = ax + an / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x > 0 ? 1 - erfc : erfc - 1;
}

const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
const geluErf = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

function runNode(n: OnnxNode, I: (RefTensor | undefined)[]): RefTensor[] {
  const x = I[0]!;
  const ints = (t: RefTensor | undefined) => (t ? Array.from(t.data) : undefined);
  const un = (f: (v: number) => number) => [mapN([x], f, 'float')];
  switch (n.op) {
    case 'Identity': case 'Dropout': return [x];
    case 'Relu': return un((v) => Math.max(v, 0));
    case 'Tanh': return un(Math.tanh);
    case 'Erf': return un(erf);
    case 'Sqrt': return un(Math.sqrt);
    case 'Exp': return un(Math.exp);
    case 'Log': return un(Math.log);
    case 'Neg': return un((v) => -v);
    case 'Abs': return un(Math.abs);
    case 'Sign': return un(Math.sign);
    case 'Sigmoid': return un((v) => 1 / (1 + Math.exp(-v)));
    case 'Sin': return un(Math.sin);
    case 'Cos': return un(Math.cos);
    case 'Reciprocal': return un((v) => 1 / v);
    case 'Gelu': return aStr(n, 'approximate', 'none') === 'tanh' ? un(geluTanh) : un(geluErf);
    case 'FastGelu': return [mapN(I[1] ? [x, I[1]] : [x], (v, b = 0) => geluTanh(v + b), 'float')];
    case 'Not': return [mapN([x], (v) => (v ? 0 : 1), 'bool')];
    case 'Cast': {
      const to = aInt(n, 'to', OnnxDType.FLOAT);
      const dt: RefTensor['dtype'] = to === OnnxDType.FLOAT ? 'float' : to === OnnxDType.BOOL ? 'bool' : 'int';
      // float -> float stays float64 here: the reference must not round to float32.
      return [mapN([x], (v) => (dt === 'bool' ? (v ? 1 : 0) : dt === 'int' ? Math.trunc(v) : v), dt)];
    }
    case 'Add': return [mapN([x, I[1]!], (p, q) => p + q, x.dtype)];
    case 'Sub': return [mapN([x, I[1]!], (p, q) => p - q, x.dtype)];
    case 'Mul': return [mapN([x, I[1]!], (p, q) => p * q, x.dtype)];
    case 'Div': return [mapN([x, I[1]!], (p, q) => (x.dtype === 'int' ? Math.trunc(p / q) : p / q), x.dtype)];
    case 'Pow': return [mapN([x, I[1]!], Math.pow, 'float')];
    case 'Max': return [mapN(I as RefTensor[], Math.max, x.dtype)];
    case 'Min': return [mapN(I as RefTensor[], Math.min, x.dtype)];
    case 'Sum': return [mapN(I as RefTensor[], (...v) => v.reduce((s, q) => s + q, 0), x.dtype)];
    case 'Equal': return [mapN([x, I[1]!], (p, q) => (p === q ? 1 : 0), 'bool')];
    case 'Greater': return [mapN([x, I[1]!], (p, q) => (p > q ? 1 : 0), 'bool')];
    case 'Less': return [mapN([x, I[1]!], (p, q) => (p < q ? 1 : 0), 'bool')];
    case 'LessOrEqual': return [mapN([x, I[1]!], (p, q) => (p <= q ? 1 : 0), 'bool')];
    case 'GreaterOrEqual': return [mapN([x, I[1]!], (p, q) => (p >= q ? 1 : 0), 'bool')];
    case 'And': return [mapN([x, I[1]!], (p, q) => (p && q ? 1 : 0), 'bool')];
    case 'Range': {
      // start, limit, delta scalars -> [ceil((limit - start) / delta)] (positions for rotary and masks).
      const [a, lim, dl] = [x.data[0]!, I[1]!.data[0]!, I[2]!.data[0]!];
      const len = Math.max(0, Math.ceil((lim - a) / dl));
      return [{ dtype: x.dtype, dims: [len], data: Float64Array.from({ length: len }, (_, i) => a + i * dl) }];
    }
    case 'Where': return [mapN([x, I[1]!, I[2]!], (c, p, q) => (c ? p : q), I[1]!.dtype)];
    case 'MatMul': return [matmul(x, I[1]!)];
    case 'FusedMatMul': {
      const A = aInt(n, 'transA', 0) ? swapLast(x) : x;
      const B = aInt(n, 'transB', 0) ? swapLast(I[1]!) : I[1]!;
      return [matmul(A, B, aFloat(n, 'alpha', 1))];
    }
    case 'ReduceSum': case 'ReduceMean': case 'ReduceSumSquare': case 'ReduceProd': case 'ReduceMax': {
      const r = x.dims.length;
      let axes = I[1] ? ints(I[1]) : aInts(n, 'axes');
      if (!axes || axes.length === 0) axes = aInt(n, 'noop_with_empty_axes', 0) ? [] : Array.from({ length: r }, (_, i) => i);
      const ax = axes.map((v) => norm(v, r)).sort((p, q) => p - q);
      const keep = aInt(n, 'keepdims', 1) === 1;
      switch (n.op) {
        case 'ReduceSum': return [reduce(x, ax, keep, 0, (s, v) => s + v)];
        case 'ReduceMean': return [reduce(x, ax, keep, 0, (s, v) => s + v, (s, c) => s / c)];
        case 'ReduceSumSquare': return [reduce(x, ax, keep, 0, (s, v) => s + v * v)];
        case 'ReduceProd': return [reduce(x, ax, keep, 1, (s, v) => s * v)];
        default: return [reduce(x, ax, keep, -Infinity, Math.max)];
      }
    }
    case 'Softmax': case 'LogSoftmax': {
      const log = n.op === 'LogSoftmax';
      return [lanes(x, aInt(n, 'axis', -1), (l) => {
        const mx = Math.max(...l);
        let s = 0;
        for (const v of l) s += Math.exp(v - mx);
        return Float64Array.from(l, (v) => (log ? v - mx - Math.log(s) : Math.exp(v - mx) / s));
      })];
    }
    case 'Shape': return [ref([x.dims.length], x.dims, 'int')];
    case 'ConstantOfShape': {
      const dims = ints(x)!;
      return [{ dtype: 'float', dims, data: new Float64Array(numel(dims)) }];
    }
    case 'Gather': {
      const idx = I[1]!;
      const axis = norm(aInt(n, 'axis', 0), x.dims.length);
      const outer = numel(x.dims.slice(0, axis)), inner = numel(x.dims.slice(axis + 1)), D = x.dims[axis]!;
      const dims = [...x.dims.slice(0, axis), ...idx.dims, ...x.dims.slice(axis + 1)];
      const out = new Float64Array(numel(dims));
      let o = 0;
      for (let p = 0; p < outer; p++) for (const iv of idx.data) {
        const j = iv < 0 ? iv + D : iv;
        for (let q = 0; q < inner; q++) out[o++] = x.data[(p * D + j) * inner + q]!;
      }
      return [{ dtype: x.dtype, dims, data: out }];
    }
    case 'GatherElements': case 'ScatterElements': {
      const idx = I[1]!;
      const axis = norm(aInt(n, 'axis', 0), x.dims.length);
      const iS = stridesOf(idx.dims), xS = stridesOf(x.dims);
      const scatter = n.op === 'ScatterElements';
      const out = scatter ? Float64Array.from(x.data) : new Float64Array(idx.data.length);
      const add = aStr(n, 'reduction', 'none') === 'add';
      for (let i = 0; i < idx.data.length; i++) {
        let rem = i, off = 0;
        for (let ax = 0; ax < idx.dims.length; ax++) {
          const c = Math.floor(rem / iS[ax]!);
          rem -= c * iS[ax]!;
          const cc = ax === axis ? norm(idx.data[i]!, x.dims[axis]!) : c;
          off += cc * xS[ax]!;
        }
        if (scatter) out[off] = add ? out[off]! + I[2]!.data[i]! : I[2]!.data[i]!;
        else out[i] = x.data[off]!;
      }
      return [{ dtype: x.dtype, dims: scatter ? x.dims : idx.dims, data: out }];
    }
    case 'TopK': {
      // Largest (or smallest) k along `axis`, sorted; ties go to the lower index (as onnxruntime).
      const axis = norm(aInt(n, 'axis', -1), x.dims.length);
      const k = I[1]!.data[0]!;
      const sign = aInt(n, 'largest', 1) === 1 ? 1 : -1;
      const outer = numel(x.dims.slice(0, axis)), inner = numel(x.dims.slice(axis + 1)), D = x.dims[axis]!;
      const dims = [...x.dims];
      dims[axis] = k;
      const vals = new Float64Array(numel(dims)), idxs = new Float64Array(numel(dims));
      for (let p = 0; p < outer; p++) for (let q = 0; q < inner; q++) {
        const order = Array.from({ length: D }, (_, j) => j).sort((a, b) => sign * (x.data[(p * D + b) * inner + q]! - x.data[(p * D + a) * inner + q]!) || a - b);
        for (let j = 0; j < k; j++) {
          vals[(p * k + j) * inner + q] = x.data[(p * D + order[j]!) * inner + q]!;
          idxs[(p * k + j) * inner + q] = order[j]!;
        }
      }
      return [{ dtype: x.dtype, dims, data: vals }, { dtype: 'int', dims, data: idxs }];
    }
    case 'NonZero': {
      // [rank, count]: coordinates of the non-zero entries in row-major order.
      const S = stridesOf(x.dims);
      const hits: number[] = [];
      x.data.forEach((v, i) => { if (v !== 0) hits.push(i); });
      const out = new Float64Array(x.dims.length * hits.length);
      hits.forEach((i, c) => {
        let rem = i;
        for (let ax = 0; ax < x.dims.length; ax++) {
          out[ax * hits.length + c] = Math.floor(rem / S[ax]!);
          rem -= Math.floor(rem / S[ax]!) * S[ax]!;
        }
      });
      return [{ dtype: 'int', dims: [x.dims.length, hits.length], data: out }];
    }
    case 'CumSum': {
      const axis = norm(I[1]!.data[0]!, x.dims.length);
      if (aInt(n, 'exclusive', 0) || aInt(n, 'reverse', 0)) throw new Error('reference: CumSum with exclusive or reverse is not implemented');
      const outer = numel(x.dims.slice(0, axis)), inner = numel(x.dims.slice(axis + 1)), D = x.dims[axis]!;
      const out = Float64Array.from(x.data);
      for (let p = 0; p < outer; p++) for (let q = 0; q < inner; q++) for (let j = 1; j < D; j++) out[(p * D + j) * inner + q]! += out[(p * D + j - 1) * inner + q]!;
      return [{ dtype: x.dtype, dims: x.dims, data: out }];
    }
    case 'Clip': {
      const lo = I[1] ? I[1].data[0]! : -Infinity, hi = I[2] ? I[2].data[0]! : Infinity;
      return [mapN([x], (v) => Math.min(Math.max(v, lo), hi), x.dtype)];
    }
    case 'GatherND': {
      const idx = I[1]!;
      const k = idx.dims[idx.dims.length - 1]!;
      const xS = stridesOf(x.dims);
      const slice = numel(x.dims.slice(k));
      const nIdx = idx.data.length / k;
      const out = new Float64Array(nIdx * slice);
      for (let i = 0; i < nIdx; i++) {
        let off = 0;
        for (let j = 0; j < k; j++) off += norm(idx.data[i * k + j]!, x.dims[j]!) * xS[j]!;
        for (let q = 0; q < slice; q++) out[i * slice + q] = x.data[off + q]!;
      }
      return [{ dtype: x.dtype, dims: [...idx.dims.slice(0, -1), ...x.dims.slice(k)], data: out }];
    }
    case 'ScatterND': {
      const idx = I[1]!, upd = I[2]!;
      const k = idx.dims[idx.dims.length - 1]!;
      const out = Float64Array.from(x.data);
      const xS = stridesOf(x.dims);
      const slice = numel(x.dims.slice(k));
      const add = aStr(n, 'reduction', 'none') === 'add';
      const nIdx = idx.data.length / k;
      for (let i = 0; i < nIdx; i++) {
        let off = 0;
        for (let j = 0; j < k; j++) off += norm(idx.data[i * k + j]!, x.dims[j]!) * xS[j]!;
        for (let q = 0; q < slice; q++) out[off + q] = (add ? out[off + q]! : 0) + upd.data[i * slice + q]!;
      }
      return [{ dtype: x.dtype, dims: x.dims, data: out }];
    }
    case 'Reshape': {
      const shape = ints(I[1])!;
      const dims = shape.map((v, i) => (v === 0 ? x.dims[i]! : v));
      const neg = dims.indexOf(-1);
      if (neg >= 0) dims[neg] = x.data.length / numel(dims.filter((_, i) => i !== neg));
      return [{ ...x, dims }];
    }
    case 'Flatten': {
      const axis = norm(aInt(n, 'axis', 1), x.dims.length);
      return [{ ...x, dims: [numel(x.dims.slice(0, axis)), numel(x.dims.slice(axis))] }];
    }
    case 'Unsqueeze': {
      const axes = ints(I[1]) ?? aInts(n, 'axes')!;
      const r = x.dims.length + axes.length;
      const ax = axes.map((v) => norm(v, r));
      const dims: number[] = [];
      let j = 0;
      for (let i = 0; i < r; i++) dims.push(ax.includes(i) ? 1 : x.dims[j++]!);
      return [{ ...x, dims }];
    }
    case 'Squeeze': {
      const axes = (ints(I[1]) ?? aInts(n, 'axes'))?.map((v) => norm(v, x.dims.length));
      return [{ ...x, dims: x.dims.filter((d, i) => (axes ? !axes.includes(i) : d !== 1)) }];
    }
    case 'Transpose': return [transpose(x, aInts(n, 'perm') ?? x.dims.map((_, i) => x.dims.length - 1 - i))];
    case 'Split': {
      const axis = norm(aInt(n, 'axis', 0), x.dims.length);
      const sizes = ints(I[1]) ?? aInts(n, 'split') ?? new Array<number>(n.outputs.length).fill(x.dims[axis]! / n.outputs.length);
      let start = 0;
      return sizes.map((s) => {
        const part = slice(x, [start], [start + s], [axis]);
        start += s;
        return part;
      });
    }
    case 'Concat': {
      const axis = norm(aInt(n, 'axis', 0), x.dims.length);
      const parts = I as RefTensor[];
      const dims = [...x.dims];
      dims[axis] = parts.reduce((s, p) => s + p.dims[axis]!, 0);
      const outer = numel(dims.slice(0, axis)), inner = numel(dims.slice(axis + 1));
      const out = new Float64Array(numel(dims));
      let o = 0;
      for (let p = 0; p < outer; p++) for (const t of parts) {
        const len = t.dims[axis]! * inner;
        out.set(t.data.subarray(p * len, (p + 1) * len), o);
        o += len;
      }
      return [{ dtype: x.dtype, dims, data: out }];
    }
    case 'Slice': {
      const starts = ints(I[1])!, ends = ints(I[2])!;
      const axes = ints(I[3]) ?? starts.map((_, i) => i);
      if (I[4] && ints(I[4])!.some((s) => s !== 1)) throw new Error('reference: Slice steps other than 1');
      return [slice(x, starts, ends, axes.map((v) => norm(v, x.dims.length)))];
    }
    case 'Expand': {
      const shape = ints(I[1])!;
      return [mapN([x, { dtype: x.dtype, dims: shape, data: new Float64Array(numel(shape)) }], (p) => p, x.dtype)];
    }
    case 'Pad': {
      const pads = ints(I[1])!;
      const r = x.dims.length;
      const cv = I[2] ? I[2].data[0]! : 0;
      const dims = x.dims.map((d, i) => d + pads[i]! + pads[i + r]!);
      const out = new Float64Array(numel(dims)).fill(cv);
      const oS = stridesOf(dims), iS = stridesOf(x.dims);
      for (let i = 0; i < x.data.length; i++) {
        let rem = i, off = 0;
        for (let ax = 0; ax < r; ax++) {
          const c = Math.floor(rem / iS[ax]!);
          rem -= c * iS[ax]!;
          off += (c + pads[ax]!) * oS[ax]!;
        }
        out[off] = x.data[i]!;
      }
      return [{ dtype: x.dtype, dims, data: out }];
    }
    case 'OneHot': {
      const depth = I[1]!.data[0]!;
      const vals = I[2]!;
      const axis = norm(aInt(n, 'axis', -1), x.dims.length + 1);
      const dims = [...x.dims];
      dims.splice(axis, 0, depth);
      const outer = numel(x.dims.slice(0, axis)), inner = numel(x.dims.slice(axis));
      const out = new Float64Array(numel(dims)).fill(vals.data[0]!);
      for (let p = 0; p < outer; p++) for (let q = 0; q < inner; q++) {
        const id = norm(x.data[p * inner + q]!, depth);
        if (id >= 0 && id < depth) out[(p * depth + id) * inner + q] = vals.data[1]!;
      }
      return [{ dtype: vals.dtype, dims, data: out }];
    }
    case 'LayerNormalization': {
      const axis = norm(aInt(n, 'axis', -1), x.dims.length);
      const eps = aFloat(n, 'epsilon', 1e-5);
      const L = numel(x.dims.slice(axis));
      const rows = x.data.length / L;
      const y = new Float64Array(x.data.length), mean = new Float64Array(rows), inv = new Float64Array(rows);
      const S = I[1]!, B = I[2];
      for (let r = 0; r < rows; r++) {
        const lane = x.data.subarray(r * L, (r + 1) * L);
        const mu = lane.reduce((s, v) => s + v, 0) / L;
        const vr = lane.reduce((s, v) => s + (v - mu) ** 2, 0) / L;
        const is = 1 / Math.sqrt(vr + eps);
        mean[r] = mu;
        inv[r] = is;
        for (let j = 0; j < L; j++) y[r * L + j] = (lane[j]! - mu) * is * S.data[j]! + (B ? B.data[j]! : 0);
      }
      const stat = x.dims.map((d, i) => (i >= axis ? 1 : d));
      return [{ dtype: 'float', dims: x.dims, data: y }, { dtype: 'float', dims: stat, data: mean }, { dtype: 'float', dims: stat, data: inv }];
    }
    case 'SoftmaxCrossEntropyLoss': {
      const labels = I[1]!;
      const [N, C] = x.dims as [number, number];
      const ign = a(n, 'ignore_index');
      const ignore = ign && ign.kind === 'int' ? ign.v : null;
      const lp = new Float64Array(N * C);
      const loss = new Float64Array(N);
      let count = 0;
      for (let i = 0; i < N; i++) {
        const row = x.data.subarray(i * C, (i + 1) * C);
        const mx = Math.max(...row);
        let s = 0;
        for (const v of row) s += Math.exp(v - mx);
        for (let j = 0; j < C; j++) lp[i * C + j] = row[j]! - mx - Math.log(s);
        const t = labels.data[i]!;
        if (ignore !== null && t === ignore) continue;
        loss[i] = -lp[i * C + t]!;
        count++;
      }
      const red = aStr(n, 'reduction', 'mean');
      const total = loss.reduce((p, q) => p + q, 0);
      const out: RefTensor = red === 'none' ? { dtype: 'float', dims: [N], data: loss } : ref([], [red === 'sum' ? total : total / count]);
      return [out, { dtype: 'float', dims: [N, C], data: lp }];
    }
    default:
      throw new Error(`reference: op ${n.op} is not implemented`);
  }
}

function slice(x: RefTensor, starts: number[], ends: number[], axes: number[]): RefTensor {
  const lo = x.dims.map(() => 0), hi = [...x.dims];
  axes.forEach((ax, i) => {
    const d = x.dims[ax]!;
    const c = (v: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    lo[ax] = c(starts[i]!);
    hi[ax] = Math.max(lo[ax]!, c(ends[i]!));
  });
  const dims = x.dims.map((_, i) => hi[i]! - lo[i]!);
  const out = new Float64Array(numel(dims));
  const oS = stridesOf(dims), iS = stridesOf(x.dims);
  for (let i = 0; i < out.length; i++) {
    let rem = i, off = 0;
    for (let ax = 0; ax < dims.length; ax++) {
      const c = Math.floor(rem / oS[ax]!);
      rem -= c * oS[ax]!;
      off += (c + lo[ax]!) * iS[ax]!;
    }
    out[i] = x.data[off]!;
  }
  return { dtype: x.dtype, dims, data: out };
}

/**
 * Evaluates the nodes of `g` needed for `outputs` in float64. Graph inputs come from `feeds`
 * (float values are used as given, in float64); initializers are read from the graph.
 */
export function evaluate(g: OnnxGraph, feeds: Record<string, RefTensor>, outputs: readonly string[]): Record<string, RefTensor> {
  const producer = new Map<string, OnnxNode>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const vals = new Map<string, RefTensor>(Object.entries(feeds));
  const get = (v: string): RefTensor => {
    const hit = vals.get(v);
    if (hit) return hit;
    const init = inits.get(v);
    if (init) {
      const t = fromInitializer(init);
      vals.set(v, t);
      return t;
    }
    const n = producer.get(v);
    if (!n) throw new Error(`reference: value ${v} is neither fed, an initializer nor produced by a node`);
    // Iterative would be faster; graphs here are small and the recursion depth is the graph depth.
    const res = runNode(n, n.inputs.map((i) => (i ? get(i) : undefined)));
    n.outputs.forEach((o, k) => o && res[k] && vals.set(o, res[k]));
    return vals.get(v)!;
  };
  return Object.fromEntries(outputs.map((o) => [o, get(o)]));
}

/**
 * Central finite differences d(sum(loss))/d(feed[wrt][i]) for the listed flat indices, in float64.
 * `h` is the step (default 1e-5; the float64 forward makes truncation and rounding both ~1e-9).
 */
export function finiteDifferences(g: OnnxGraph, feeds: Record<string, RefTensor>, loss: string, wrt: string, indices: readonly number[], h = 1e-5): number[] {
  const base = feeds[wrt];
  if (!base) throw new Error(`finiteDifferences: ${wrt} is not among the feeds`);
  const total = (t: RefTensor) => t.data.reduce((s, v) => s + v, 0);
  return indices.map((i) => {
    const plus = Float64Array.from(base.data), minus = Float64Array.from(base.data);
    plus[i] = plus[i]! + h;
    minus[i] = minus[i]! - h;
    const lp = total(evaluate(g, { ...feeds, [wrt]: { ...base, data: plus } }, [loss])[loss]!);
    const lm = total(evaluate(g, { ...feeds, [wrt]: { ...base, data: minus } }, [loss])[loss]!);
    return (lp - lm) / (2 * h);
  });
}
