/**
 * Reverse-mode automatic differentiation over GraphBuilder graphs.
 *
 * onnxruntime-node ships no training API, so gradients are written as ordinary ONNX nodes and
 * appended to the same graph: one session then computes the forward values and the gradients
 * (and, for training, the optimizer update) in a single run. `addGradients(g, y, wrt)` walks the
 * graph backwards from `y`, applies each op's derivative rule and returns, for every value in
 * `wrt`, the name of a new value holding dy/dwrt (same shape as that value).
 *
 * Broadcasting needs shapes: a bias [d_model] added to [batch, pos, d_model] gets its gradient
 * summed over batch and pos. `inferShapes` propagates shapes through the forward graph with
 * symbolic dims (strings such as 'batch', 'pos', 'batch*pos'), so one graph serves any batch
 * size; it also tracks the values of small integer tensors (Shape -> Slice -> Concat chains that
 * feed Reshape), as onnxruntime's own symbolic shape inference does.
 *
 * Limits (each raises an error naming the node when met on a differentiated path): MatMul
 * operands of rank >= 2, Gather along axis 0, Slice with step 1, SoftmaxCrossEntropyLoss on
 * [N, C] scores without per-class weights, no gradient through LayerNormalization's Mean /
 * InvStdDev outputs. Unknown symbolic dims are assumed not to be broadcast size-1 dims.
 */
import type { GraphBuilder } from './builder.js';
import { OnnxDType, type AttrValue, type OnnxNode, type OnnxTensor } from './onnxProto.js';

// ---------------------------------------------------------------------------------------------
// Symbolic dims

/** A dimension: a number, or a symbolic product such as 'batch', 'batch*pos', '2*pos', '?7'. */
export type Dim = number | string;

let unknownCounter = 0;
/** A fresh dimension about which nothing is known (e.g. a Slice with a dynamic start). */
function unknownDim(): string {
  return `?${unknownCounter++}`;
}

function factorsOf(d: Dim): { coef: number; syms: string[] } {
  if (typeof d === 'number') return { coef: d, syms: [] };
  let coef = 1;
  const syms: string[] = [];
  for (const f of d.split('*')) {
    if (/^\d+$/.test(f)) coef *= Number(f);
    else syms.push(f);
  }
  return { coef, syms };
}

function makeDim(coef: number, syms: string[]): Dim {
  if (syms.length === 0) return coef;
  const s = [...syms].sort().join('*');
  return coef === 1 ? s : `${coef}*${s}`;
}

export function mulDim(a: Dim, b: Dim): Dim {
  const x = factorsOf(a), y = factorsOf(b);
  if (x.coef === 0 || y.coef === 0) return 0;
  return makeDim(x.coef * y.coef, [...x.syms, ...y.syms]);
}

/** a / b when it is exact in symbolic terms, else null. */
export function divDim(a: Dim, b: Dim): Dim | null {
  const x = factorsOf(a), y = factorsOf(b);
  if (y.coef === 0 || x.coef % y.coef !== 0) return null;
  const rest = [...x.syms];
  for (const s of y.syms) {
    const i = rest.indexOf(s);
    if (i < 0) return null;
    rest.splice(i, 1);
  }
  return makeDim(x.coef / y.coef, rest);
}

const prodDims = (ds: readonly Dim[]): Dim => ds.reduce<Dim>((a, b) => mulDim(a, b), 1);
const allNumeric = (ds: readonly Dim[]): ds is readonly number[] => ds.every((d) => typeof d === 'number');
const fmtDims = (ds: readonly Dim[] | undefined): string => (ds ? `[${ds.join(', ')}]` : '[unknown]');

/** Broadcast of two shapes (numpy rules). Symbolic vs symbolic picks the first; 1 yields to the other. */
export function broadcastDims(a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const r = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    if (x === 1) out.push(y);
    else if (y === 1) out.push(x);
    else if (typeof x === 'number' && typeof y === 'number' && x !== y) throw new Error(`cannot broadcast ${fmtDims(a)} with ${fmtDims(b)}`);
    else out.push(typeof x === 'number' ? x : y === x || typeof y !== 'number' ? x : y);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Shape inference

/** Shapes, dtypes and (for small integer tensors) values of a graph's values. */
export class ShapeTable {
  readonly dims = new Map<string, Dim[]>();
  readonly dtypes = new Map<string, OnnxDType>();
  /** Element values of small int32/int64 tensors where known: the stuff Reshape shapes are made of. */
  readonly ints = new Map<string, Dim[]>();
  /** Element values of small float initializers (scalars such as a Pow exponent). */
  readonly floats = new Map<string, number[]>();

  shape(v: string): Dim[] {
    const d = this.dims.get(v);
    if (!d) throw new Error(`autodiff: the shape of ${v} is unknown`);
    return d;
  }
}

function attr(n: OnnxNode, name: string): AttrValue | undefined {
  return n.attrs?.[name];
}
function attrInt(n: OnnxNode, name: string, dflt: number): number {
  const a = attr(n, name);
  return a && a.kind === 'int' ? a.v : dflt;
}
function attrFloat(n: OnnxNode, name: string, dflt: number): number {
  const a = attr(n, name);
  return a && (a.kind === 'float' || a.kind === 'int') ? a.v : dflt;
}
function attrInts(n: OnnxNode, name: string): number[] | undefined {
  const a = attr(n, name);
  return a && a.kind === 'ints' ? [...a.v] : undefined;
}
function attrString(n: OnnxNode, name: string, dflt: string): string {
  const a = attr(n, name);
  return a && a.kind === 'string' ? a.v : dflt;
}

function readInitializer(t: OnnxTensor, st: ShapeTable): void {
  st.dims.set(t.name, [...t.dims]);
  st.dtypes.set(t.name, t.dtype);
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (n > 64) return;
  // Copy: raw may be an unaligned view of a larger buffer.
  const bytes = t.raw.slice();
  if (t.dtype === OnnxDType.INT64) st.ints.set(t.name, Array.from(new BigInt64Array(bytes.buffer, 0, n), (x) => Number(x)));
  else if (t.dtype === OnnxDType.INT32) st.ints.set(t.name, Array.from(new Int32Array(bytes.buffer, 0, n)));
  else if (t.dtype === OnnxDType.FLOAT) st.floats.set(t.name, Array.from(new Float32Array(bytes.buffer, 0, n)));
}

const normAxis = (a: number, rank: number): number => (a < 0 ? a + rank : a);

/** The reduction axes of a Reduce* node (attribute before opset 18, input for ReduceSum from 13). */
function reduceAxes(n: OnnxNode, st: ShapeTable, rank: number): number[] {
  let axes: Dim[] | undefined = attrInts(n, 'axes');
  const axesInput = n.inputs[1];
  if (axesInput) {
    axes = st.ints.get(axesInput);
    if (!axes) throw new Error(`autodiff: ${n.op} node producing ${n.outputs[0]} has axes that are not constant`);
  }
  if (!axes || axes.length === 0) {
    return attrInt(n, 'noop_with_empty_axes', 0) ? [] : Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((a) => normAxis(a as number, rank)).sort((x, y) => x - y);
}

/** Output length of a Slice along one axis. */
function sliceLen(dim: Dim, start: Dim, end: Dim, step: Dim): Dim {
  if (typeof dim === 'number' && typeof start === 'number' && typeof end === 'number' && typeof step === 'number') {
    const clamp = (x: number, lo: number, hi: number) => Math.min(Math.max(x, lo), hi);
    if (step > 0) {
      const s = clamp(start < 0 ? start + dim : start, 0, dim);
      const e = clamp(end < 0 ? end + dim : end, 0, dim);
      return Math.max(0, Math.ceil((e - s) / step));
    }
    const s = clamp(start < 0 ? start + dim : start, -1, dim - 1);
    const e = clamp(end < 0 ? end + dim : end, -1, dim - 1);
    return Math.max(0, Math.ceil((e - s) / step));
  }
  if (step === 1 && start === 0) {
    if (typeof end === 'number' && end >= 2 ** 31 - 1) return dim;
    if (typeof end === 'string') return end; // assumes end <= dim, as in x[:pos]
    if (typeof end === 'number' && typeof dim === 'string' && end >= 0) return end; // assumes end <= dim
  }
  return unknownDim();
}

function elementwiseInts(op: string, a: Dim[], b: Dim[]): Dim[] | undefined {
  const r = Math.max(a.length, b.length);
  if (a.length !== r && a.length !== 1) return undefined;
  if (b.length !== r && b.length !== 1) return undefined;
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const x = a.length === 1 ? a[0]! : a[i]!;
    const y = b.length === 1 ? b[0]! : b[i]!;
    if (typeof x === 'number' && typeof y === 'number') {
      out.push(op === 'Add' ? x + y : op === 'Sub' ? x - y : op === 'Mul' ? x * y : Math.trunc(x / y));
    } else if (op === 'Mul') {
      out.push(mulDim(x, y));
    } else if (op === 'Div') {
      out.push(divDim(x, y) ?? unknownDim());
    } else if ((op === 'Add' || op === 'Sub') && (y === 0 || x === 0)) {
      out.push(y === 0 ? x : op === 'Add' ? y : unknownDim());
    } else {
      out.push(unknownDim());
    }
  }
  return out;
}

const FLOAT_UNARY = new Set(['Identity', 'Relu', 'Tanh', 'Sin', 'Cos', 'Erf', 'Sqrt', 'Exp', 'Log', 'Neg', 'Abs', 'Sigmoid', 'Reciprocal', 'Softmax', 'LogSoftmax', 'Gelu', 'FastGelu', 'Sign', 'Floor', 'Ceil', 'Round', 'Dropout']);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean']);
const COMPARE = new Set(['Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'And', 'Or', 'Xor']);
const REDUCE = new Set(['ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceSumSquare', 'ReduceL2', 'ReduceLogSumExp']);

function inferNode(n: OnnxNode, st: ShapeTable): void {
  const ins = n.inputs;
  const out = n.outputs[0]!;
  const d = (i: number): Dim[] | undefined => (ins[i] ? st.dims.get(ins[i]!) : undefined);
  const t = (i: number): OnnxDType | undefined => (ins[i] ? st.dtypes.get(ins[i]!) : undefined);
  const ints = (i: number): Dim[] | undefined => (ins[i] ? st.ints.get(ins[i]!) : undefined);
  const set = (name: string | undefined, dims: Dim[] | undefined, dtype: OnnxDType | undefined, vals?: Dim[]): void => {
    if (!name) return;
    if (dims) st.dims.set(name, dims);
    if (dtype !== undefined) st.dtypes.set(name, dtype);
    if (vals) st.ints.set(name, vals);
  };
  const op = n.op;

  if (FLOAT_UNARY.has(op)) {
    set(out, d(0), t(0), op === 'Identity' ? ints(0) : undefined);
    return;
  }
  if (op === 'Not') return set(out, d(0), OnnxDType.BOOL);
  if (op === 'Cast') return set(out, d(0), attrInt(n, 'to', OnnxDType.FLOAT) as OnnxDType, ints(0));
  if (BROADCAST.has(op) || COMPARE.has(op) || op === 'Where') {
    const shapes = ins.map((_, i) => d(i));
    if (shapes.some((s) => !s)) return set(out, undefined, COMPARE.has(op) ? OnnxDType.BOOL : t(op === 'Where' ? 1 : 0));
    const dims = shapes.reduce<Dim[]>((a, b) => broadcastDims(a, b!), []);
    const dtype = COMPARE.has(op) ? OnnxDType.BOOL : t(op === 'Where' ? 1 : 0);
    const a = ints(0), b = ints(1);
    const vals = a && b && ['Add', 'Sub', 'Mul', 'Div'].includes(op) ? elementwiseInts(op, a, b) : undefined;
    return set(out, dims, dtype, vals);
  }
  if (op === 'MatMul' || op === 'FusedMatMul') {
    const a = d(0), b = d(1);
    if (!a || !b) return set(out, undefined, t(0));
    if (a.length < 2 || b.length < 2) throw new Error(`autodiff: ${op} ${out} has a rank-1 operand; reshape it to rank 2`);
    let A = a, B = b;
    if (attrInt(n, 'transA', 0)) A = [...a.slice(0, -2), a[a.length - 1]!, a[a.length - 2]!];
    if (attrInt(n, 'transB', 0)) B = [...b.slice(0, -2), b[b.length - 1]!, b[b.length - 2]!];
    const batch = broadcastDims(A.slice(0, -2), B.slice(0, -2));
    return set(out, [...batch, A[A.length - 2]!, B[B.length - 1]!], t(0));
  }
  if (op === 'Gemm') {
    const a = d(0), b = d(1);
    if (!a || !b) return set(out, undefined, t(0));
    const M = attrInt(n, 'transA', 0) ? a[1]! : a[0]!;
    const N = attrInt(n, 'transB', 0) ? b[0]! : b[1]!;
    return set(out, [M, N], t(0));
  }
  if (REDUCE.has(op)) {
    const x = d(0);
    if (!x) return set(out, undefined, t(0));
    const axes = reduceAxes(n, st, x.length);
    const keep = attrInt(n, 'keepdims', 1);
    const dims: Dim[] = [];
    x.forEach((v, i) => {
      if (!axes.includes(i)) dims.push(v);
      else if (keep) dims.push(1);
    });
    const xv = ints(0);
    const vals = op === 'ReduceProd' && xv && x.length === 1 ? [prodDims(xv)] : undefined;
    return set(out, dims, t(0), vals);
  }
  switch (op) {
    case 'Shape': {
      const x = d(0);
      if (!x) return set(out, undefined, OnnxDType.INT64);
      const s = normAxis(attrInt(n, 'start', 0), x.length);
      const e = attr(n, 'end') ? normAxis(attrInt(n, 'end', x.length), x.length) : x.length;
      const vals = x.slice(s, e);
      return set(out, [vals.length], OnnxDType.INT64, vals);
    }
    case 'ConstantOfShape': {
      const v = ints(0);
      const a = attr(n, 'value');
      return set(out, v ? [...v] : undefined, a && a.kind === 'tensor' ? a.v.dtype : OnnxDType.FLOAT);
    }
    case 'Gather': {
      const x = d(0), idx = d(1);
      if (!x || !idx) return set(out, undefined, t(0));
      const axis = normAxis(attrInt(n, 'axis', 0), x.length);
      const xv = ints(0), iv = ints(1);
      let vals: Dim[] | undefined;
      if (xv && iv && x.length === 1) vals = iv.map((i) => (typeof i === 'number' ? xv[normAxis(i, xv.length)] ?? unknownDim() : unknownDim()));
      return set(out, [...x.slice(0, axis), ...idx, ...x.slice(axis + 1)], t(0), vals);
    }
    case 'GatherElements':
      return set(out, d(1), t(0));
    case 'ScatterND':
    case 'ScatterElements':
      return set(out, d(0), t(0));
    case 'Reshape': {
      const x = d(0), shape = ints(1);
      if (!x || !shape) return set(out, undefined, t(0));
      const allowZero = attrInt(n, 'allowzero', 0);
      const dims: Dim[] = shape.map((v, i) => (v === 0 && !allowZero ? x[i]! : v));
      const neg = dims.findIndex((v) => v === -1);
      if (neg >= 0) {
        const known = prodDims(dims.filter((_, i) => i !== neg));
        dims[neg] = divDim(prodDims(x), known) ?? unknownDim();
      }
      return set(out, dims, t(0), ints(0));
    }
    case 'Flatten': {
      const x = d(0);
      if (!x) return set(out, undefined, t(0));
      const axis = normAxis(attrInt(n, 'axis', 1), x.length);
      return set(out, [prodDims(x.slice(0, axis)), prodDims(x.slice(axis))], t(0));
    }
    case 'Unsqueeze': {
      const x = d(0), axes = ints(1) ?? attrInts(n, 'axes');
      if (!x || !axes) return set(out, undefined, t(0));
      const r = x.length + axes.length;
      const ax = axes.map((a) => normAxis(a as number, r));
      const dims: Dim[] = [];
      let j = 0;
      for (let i = 0; i < r; i++) dims.push(ax.includes(i) ? 1 : x[j++]!);
      return set(out, dims, t(0), ints(0));
    }
    case 'Squeeze': {
      const x = d(0);
      if (!x) return set(out, undefined, t(0));
      const axes = (ints(1) ?? attrInts(n, 'axes'))?.map((a) => normAxis(a as number, x.length));
      const dims = x.filter((v, i) => (axes ? !axes.includes(i) : v !== 1));
      return set(out, dims, t(0), ints(0));
    }
    case 'Transpose': {
      const x = d(0);
      if (!x) return set(out, undefined, t(0));
      const perm = attrInts(n, 'perm') ?? x.map((_, i) => x.length - 1 - i);
      return set(out, perm.map((p) => x[p]!), t(0));
    }
    case 'Split': {
      const x = d(0);
      if (!x) return;
      const axis = normAxis(attrInt(n, 'axis', 0), x.length);
      let sizes: Dim[] | undefined = ins[1] ? ints(1) : attrInts(n, 'split');
      if (!sizes) {
        const k = n.outputs.length;
        const each = divDim(x[axis]!, k) ?? unknownDim();
        sizes = new Array<Dim>(k).fill(each);
      }
      n.outputs.forEach((o, i) => set(o, x.map((v, j) => (j === axis ? sizes![i]! : v)), t(0)));
      return;
    }
    case 'Concat': {
      const shapes = ins.map((_, i) => d(i));
      if (shapes.some((s) => !s)) return set(out, undefined, t(0));
      const first = shapes[0]!;
      const axis = normAxis(attrInt(n, 'axis', 0), first.length);
      const dims = [...first];
      dims[axis] = shapes.reduce<Dim>((acc, s) => {
        const a = acc, b = s![axis]!;
        return typeof a === 'number' && typeof b === 'number' ? a + b : unknownDim();
      }, 0);
      const vs = ins.map((_, i) => ints(i));
      const vals = vs.every((v) => v) && first.length === 1 ? vs.flatMap((v) => v!) : undefined;
      if (vals) dims[0] = vals.length;
      return set(out, dims, t(0), vals);
    }
    case 'Slice': {
      const x = d(0), starts = ints(1), ends = ints(2);
      if (!x || !starts || !ends) return set(out, x ? x.map(() => unknownDim()) : undefined, t(0));
      const axes = (ints(3) ?? starts.map((_, i) => i)).map((a) => normAxis(a as number, x.length));
      const steps = ints(4) ?? starts.map(() => 1);
      const dims = [...x];
      axes.forEach((a, i) => (dims[a] = sliceLen(x[a]!, starts[i]!, ends[i]!, steps[i]!)));
      const xv = ints(0);
      let vals: Dim[] | undefined;
      if (xv && x.length === 1 && typeof starts[0] === 'number' && typeof ends[0] === 'number' && steps[0] === 1) {
        const len = xv.length;
        const s = Math.min(Math.max(starts[0] < 0 ? starts[0] + len : starts[0], 0), len);
        const e = Math.min(Math.max(ends[0] < 0 ? ends[0] + len : ends[0], 0), len);
        vals = xv.slice(s, e);
      }
      return set(out, dims, t(0), vals);
    }
    case 'Expand': {
      const x = d(0), shape = ints(1);
      if (!x || !shape) return set(out, undefined, t(0));
      return set(out, broadcastDims(x, shape), t(0));
    }
    case 'Pad': {
      const x = d(0), pads = ints(1);
      if (!x) return set(out, undefined, t(0));
      if (!pads) return set(out, x.map(() => unknownDim()), t(0));
      const r = x.length;
      return set(out, x.map((v, i) => {
        const a = pads[i]!, b = pads[i + r]!;
        return typeof v === 'number' && typeof a === 'number' && typeof b === 'number' ? v + a + b : a === 0 && b === 0 ? v : unknownDim();
      }), t(0));
    }
    case 'OneHot': {
      const x = d(0), depth = ints(1);
      const vt = t(2);
      if (!x) return set(out, undefined, vt);
      const r = x.length + 1;
      const axis = normAxis(attrInt(n, 'axis', -1), r);
      const dims = [...x];
      dims.splice(axis, 0, depth?.[0] ?? unknownDim());
      return set(out, dims, vt);
    }
    case 'LayerNormalization': {
      const x = d(0);
      set(out, x, t(0));
      if (!x) return;
      const axis = normAxis(attrInt(n, 'axis', -1), x.length);
      const stat = x.map((v, i) => (i >= axis ? 1 : v));
      set(n.outputs[1], stat, OnnxDType.FLOAT);
      set(n.outputs[2], stat, OnnxDType.FLOAT);
      return;
    }
    case 'SoftmaxCrossEntropyLoss': {
      const x = d(0), lab = d(1);
      const red = attrString(n, 'reduction', 'mean');
      set(out, red === 'none' ? lab : [], t(0));
      set(n.outputs[1], x, t(0));
      return;
    }
    case 'TopK': {
      // values (the input's dtype) and int64 indices, [..., k, ...] along `axis`.
      const x = d(0), k = ints(1);
      const dims = x ? [...x] : undefined;
      if (dims && k && k.length === 1) dims[normAxis(attrInt(n, 'axis', -1), dims.length)] = k[0]!;
      set(out, dims, t(0));
      return set(n.outputs[1], dims, OnnxDType.INT64);
    }
    case 'NonZero': {
      // int64 [rank, count]: the count depends on the data.
      const x = d(0);
      return set(out, x ? [x.length, unknownDim()] : undefined, OnnxDType.INT64);
    }
    case 'Clip':
    case 'CumSum':
      return set(out, d(0), t(0));
    case 'GatherND': {
      const x = d(0), idx = d(1);
      if (!x || !idx) return set(out, undefined, t(0));
      const k = idx[idx.length - 1];
      return set(out, typeof k === 'number' ? [...idx.slice(0, -1), ...x.slice(k)] : undefined, t(0));
    }
    case 'Range': {
      // Known start / limit / delta (the rotary and mask positions of a fixed-shape graph) give the length.
      const [a, l, dl] = [ints(0), ints(1), ints(2)];
      const num = (v: readonly Dim[] | undefined) => (v && v.length === 1 && typeof v[0] === 'number' ? v[0] : null);
      const [a0, l0, d0] = [num(a), num(l), num(dl)];
      const len = a0 !== null && l0 !== null && d0 !== null && d0 !== 0 ? Math.max(0, Math.ceil((l0 - a0) / d0)) : unknownDim();
      return set(out, [len], t(0), typeof len === 'number' && len <= 4096 ? Array.from({ length: len }, (_, i) => a0! + i * d0!) : undefined);
    }
    default:
      // Unknown op: its outputs get no shape; differentiating through it will say so.
      return;
  }
}

/** Shapes of every value of the graph as built so far (inputs, initializers, node outputs). */
export function inferShapes(g: GraphBuilder): ShapeTable {
  const st = new ShapeTable();
  for (const i of g.inputs) {
    st.dims.set(i.name, [...i.dims]);
    st.dtypes.set(i.name, i.dtype);
  }
  for (const t of g.initializers) readInitializer(t, st);
  for (const n of g.nodes) inferNode(n, st);
  return st;
}

// ---------------------------------------------------------------------------------------------
// Gradient rules

/** Ops whose outputs never carry a gradient (integer/boolean results, or piecewise-constant). */
const NON_DIFFERENTIABLE = new Set([
  'Shape', 'Size', 'Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'Not', 'And', 'Or', 'Xor',
  'ArgMax', 'ArgMin', 'OneHot', 'ConstantOfShape', 'Range', 'NonZero', 'Floor', 'Ceil', 'Round', 'Sign',
]);

export interface GradientOptions {
  /**
   * A value holding dL/dy with y's shape (a vector-Jacobian product); default: y must be a
   * scalar and the seed is 1.
   */
  seed?: string;
  /**
   * Values treated as constants (torch's `.detach()`): no gradient flows through them into
   * what they were computed from, e.g. the SAE trainer's residual target of the TopK auxiliary loss.
   */
  detach?: readonly string[];
}

/** Emits gradient nodes into a GraphBuilder; one instance per addGradients call. */
class GradEmitter {
  constructor(readonly g: GraphBuilder, readonly st: ShapeTable) {}

  dims(v: string): Dim[] {
    return this.st.shape(v);
  }

  c(x: number): string {
    return this.g.constF([x]);
  }

  op(op: string, inputs: readonly string[], attrs?: Parameters<GraphBuilder['op']>[2], domain?: string): string {
    return this.g.op(op, inputs, attrs, undefined, domain);
  }

  private readonly onesCache = new Map<number, string>();
  /** A [1, n] row of ones (shared by every bias gradient over the same number of rows). */
  ones(n: number): string {
    let v = this.onesCache.get(n);
    if (!v) {
      v = this.g.weight(this.g.fresh('ones'), { dtype: 'float32', dims: [1, n], data: new Float32Array(n).fill(1) });
      this.onesCache.set(n, v);
    }
    return v;
  }

  /** The runtime shape of forward value v as an int64 [rank] tensor (a constant when fully known). */
  shapeOf(v: string): string {
    const d = this.dims(v);
    return allNumeric(d) ? this.g.constI64(d) : this.g.op('Shape', [v]);
  }

  zerosLike(v: string): string {
    return this.g.op('ConstantOfShape', [this.shapeOf(v)]);
  }

  reshapeLike(x: string, like: string): string {
    return this.g.op('Reshape', [x, this.shapeOf(like)]);
  }

  /**
   * Sums a gradient of shape `from` down to the shape of `target` (which was broadcast to
   * `from` in the forward pass): leading extra axes and size-1 axes are summed out.
   */
  sumTo(grad: string, from: readonly Dim[], target: string): string {
    const to = this.dims(target);
    const r = from.length - to.length;
    if (r < 0) throw new Error(`autodiff: cannot reduce a gradient of shape ${fmtDims(from)} to ${target}'s ${fmtDims(to)}`);
    const axes: number[] = [];
    for (let i = 0; i < from.length; i++) {
      if (i < r) axes.push(i);
      else if (to[i - r] === 1 && from[i] !== 1) axes.push(i);
    }
    if (axes.length === 0) return grad;
    const rows = prodDims(from.slice(0, r));
    const cols = prodDims(to);
    if (axes.length === r && typeof rows === 'number' && typeof cols === 'number' && rows > 1) {
      // Summing leading axes (a bias gradient): ones[1, rows] @ grad[rows, cols] is one GEMV,
      // several times faster in onnxruntime than ReduceSum over axis 0 of a tall matrix.
      const g2 = this.g.op('Reshape', [grad, this.g.constI64([rows, cols])]);
      const s = this.g.op('MatMul', [this.ones(rows), g2]);
      return this.reshapeLike(s, target);
    }
    let out = this.g.op('ReduceSum', [grad, this.g.constI64(axes)], { keepdims: 1 });
    if (r > 0) out = this.reshapeLike(out, target);
    return out;
  }
}

type Rule = (e: GradEmitter, n: OnnxNode, gOut: readonly (string | null)[], active: (i: number) => boolean, nodeIndex: number) => (string | null)[];

function unaryRule(f: (e: GradEmitter, g: string, x: string, y: string, n: OnnxNode) => string): Rule {
  return (e, n, gOut, active) => (active(0) ? [f(e, gOut[0]!, n.inputs[0]!, n.outputs[0]!, n)] : [null]);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_TANH_C = 0.044715;

/** dy/dx of gelu_new (tanh form): 0.5(1+t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3c x^2), t = tanh(sqrt(2/pi)(x + c x^3)). */
function geluTanhDeriv(e: GradEmitter, x: string): string {
  const x2 = e.op('Mul', [x, x]);
  const inner = e.op('Add', [e.op('Mul', [x2, e.c(GELU_TANH_C)]), e.c(1)]);
  const t = e.op('Tanh', [e.op('Mul', [e.op('Mul', [x, e.c(SQRT_2_OVER_PI)]), inner])]);
  const dInner = e.op('Add', [e.op('Mul', [x2, e.c(3 * GELU_TANH_C * SQRT_2_OVER_PI)]), e.c(SQRT_2_OVER_PI)]);
  const sech2 = e.op('Sub', [e.c(1), e.op('Mul', [t, t])]);
  const second = e.op('Mul', [e.op('Mul', [e.op('Mul', [x, e.c(0.5)]), sech2]), dInner]);
  return e.op('Add', [e.op('Add', [e.op('Mul', [t, e.c(0.5)]), e.c(0.5)]), second]);
}

/** dy/dx of gelu (erf form): Phi(x) + x phi(x). */
function geluErfDeriv(e: GradEmitter, x: string): string {
  const cdf = e.op('Add', [e.op('Mul', [e.op('Erf', [e.op('Mul', [x, e.c(Math.SQRT1_2)])]), e.c(0.5)]), e.c(0.5)]);
  const pdf = e.op('Mul', [e.op('Exp', [e.op('Mul', [e.op('Mul', [x, x]), e.c(-0.5)])]), e.c(1 / Math.sqrt(2 * Math.PI))]);
  return e.op('Add', [cdf, e.op('Mul', [x, pdf])]);
}

function matmulGrads(e: GradEmitter, n: OnnxNode, g: string, active: (i: number) => boolean): (string | null)[] {
  const [A, B] = [n.inputs[0]!, n.inputs[1]!];
  const Y = n.outputs[0]!;
  const a = e.dims(A), b = e.dims(B), y = e.dims(Y);
  const ta = attrInt(n, 'transA', 0), tb = attrInt(n, 'transB', 0);
  const alpha = attrFloat(n, 'alpha', 1);
  if (attrInt(n, 'transBatchA', 0) || attrInt(n, 'transBatchB', 0)) throw new Error(`autodiff: ${n.op} ${Y} with transBatchA/B is not supported`);
  const batch = y.slice(0, -2);
  const fm = (p: string, q: string, tA: number, tB: number): string => {
    const attrs: Record<string, number> = {};
    if (tA) attrs['transA'] = 1;
    if (tB) attrs['transB'] = 1;
    if (alpha !== 1) attrs['alpha'] = alpha;
    return Object.keys(attrs).length ? e.op('FusedMatMul', [p, q], attrs, 'com.microsoft') : e.op('MatMul', [p, q]);
  };
  const out: (string | null)[] = [null, null];
  const [m, k] = ta ? [a[a.length - 1]!, a[a.length - 2]!] : [a[a.length - 2]!, a[a.length - 1]!];
  const nn = tb ? b[b.length - 2]! : b[b.length - 1]!;
  if (active(0)) {
    // dA' = g B'^T, with A' = A or A^T: four cases written without materialised transposes.
    const t = !ta ? (tb ? fm(g, B, 0, 0) : fm(g, B, 0, 1)) : tb ? fm(B, g, 1, 1) : fm(B, g, 0, 1);
    out[0] = e.sumTo(t, [...batch, ...(ta ? [k, m] : [m, k])], A);
  }
  if (active(1)) {
    if (b.length === 2 && a.length > 2 && !ta && typeof k === 'number' && typeof nn === 'number') {
      // B [k, n] is shared by every batch row: flatten A [..., m, k] -> [rows, k] and g -> [rows, n]
      // so dB is one GEMM instead of a batched product followed by a sum.
      const a2 = e.op('Reshape', [A, e.g.constI64([-1, k])]);
      const g2 = e.op('Reshape', [g, e.g.constI64([-1, nn])]);
      out[1] = tb ? fm(g2, a2, 1, 0) : fm(a2, g2, 1, 0);
    } else {
      const t = !tb ? (ta ? fm(A, g, 0, 0) : fm(A, g, 1, 0)) : ta ? fm(g, A, 1, 1) : fm(g, A, 1, 0);
      out[1] = e.sumTo(t, [...batch, ...(tb ? [nn, k] : [k, nn])], B);
    }
  }
  return out;
}

function reduceGrad(e: GradEmitter, n: OnnxNode, g: string, mean: boolean): string {
  const x = n.inputs[0]!;
  const xd = e.dims(x);
  const axes = reduceAxes(n, e.st, xd.length);
  let gk = g;
  if (!attrInt(n, 'keepdims', 1) && axes.length > 0) gk = e.op('Unsqueeze', [g, e.g.constI64(axes)]);
  if (mean) {
    const count = prodDims(axes.map((a) => xd[a]!));
    if (typeof count === 'number') {
      gk = e.op('Mul', [gk, e.c(1 / count)]);
    } else {
      const cnt = e.op('Cast', [e.op('ReduceProd', [e.op('Gather', [e.op('Shape', [x]), e.g.constI64(axes)], { axis: 0 })], { keepdims: 0 })], { to: OnnxDType.FLOAT });
      gk = e.op('Div', [gk, cnt]);
    }
  }
  return e.op('Expand', [gk, e.shapeOf(x)]);
}

const RULES: Record<string, Rule> = {
  Identity: unaryRule((_e, g) => g),
  Dropout: unaryRule((_e, g) => g),
  Cast: unaryRule((_e, g) => g),
  Neg: unaryRule((e, g) => e.op('Neg', [g])),
  // g * (x > 0): a Mul by the cast mask runs ~1.5x faster in onnxruntime than Where(x > 0, g, 0).
  Relu: unaryRule((e, g, x) => e.op('Mul', [g, e.op('Cast', [e.op('Greater', [x, e.c(0)])], { to: OnnxDType.FLOAT })])),
  Abs: unaryRule((e, g, x) => e.op('Mul', [g, e.op('Sign', [x])])),
  Sqrt: unaryRule((e, g, _x, y) => e.op('Div', [e.op('Mul', [g, e.c(0.5)]), y])),
  Exp: unaryRule((e, g, _x, y) => e.op('Mul', [g, y])),
  Log: unaryRule((e, g, x) => e.op('Div', [g, x])),
  Reciprocal: unaryRule((e, g, _x, y) => e.op('Neg', [e.op('Mul', [g, e.op('Mul', [y, y])])])),
  Tanh: unaryRule((e, g, _x, y) => e.op('Mul', [g, e.op('Sub', [e.c(1), e.op('Mul', [y, y])])])),
  Sigmoid: unaryRule((e, g, _x, y) => e.op('Mul', [g, e.op('Mul', [y, e.op('Sub', [e.c(1), y])])])),
  Erf: unaryRule((e, g, x) => e.op('Mul', [g, e.op('Mul', [e.op('Exp', [e.op('Neg', [e.op('Mul', [x, x])])]), e.c(2 / Math.sqrt(Math.PI))])])),
  Gelu: (e, n, gOut, active) => {
    if (attrString(n, 'approximate', 'none') === 'tanh') return [active(0) ? e.op('Mul', [gOut[0]!, geluTanhDeriv(e, n.inputs[0]!)]) : null];
    return [active(0) ? e.op('Mul', [gOut[0]!, geluErfDeriv(e, n.inputs[0]!)]) : null];
  },
  FastGelu: (e, n, gOut, active) => {
    // com.microsoft FastGelu(x, bias?) = gelu_new(x + bias).
    const x = n.inputs[0]!;
    const bias = n.inputs[1];
    const xb = bias ? e.op('Add', [x, bias]) : x;
    const gx = e.op('Mul', [gOut[0]!, geluTanhDeriv(e, xb)]);
    const out: (string | null)[] = [active(0) ? e.sumTo(gx, e.dims(n.outputs[0]!), x) : null];
    if (bias) out.push(active(1) ? e.sumTo(gx, e.dims(n.outputs[0]!), bias) : null);
    return out;
  },
  Softmax: (e, n, gOut, active) => {
    if (!active(0)) return [null];
    const y = n.outputs[0]!, g = gOut[0]!;
    const axis = attrInt(n, 'axis', -1);
    const s = e.op('ReduceSum', [e.op('Mul', [g, y]), e.g.constI64([axis])], { keepdims: 1 });
    return [e.op('Mul', [y, e.op('Sub', [g, s])])];
  },
  LogSoftmax: (e, n, gOut, active) => {
    if (!active(0)) return [null];
    const y = n.outputs[0]!, g = gOut[0]!;
    const axis = attrInt(n, 'axis', -1);
    const s = e.op('ReduceSum', [g, e.g.constI64([axis])], { keepdims: 1 });
    return [e.op('Sub', [g, e.op('Mul', [e.op('Exp', [y]), s])])];
  },
  Add: (e, n, gOut, active) => {
    const y = e.dims(n.outputs[0]!);
    return n.inputs.map((x, i) => (active(i) ? e.sumTo(gOut[0]!, y, x) : null));
  },
  Sum: (e, n, gOut, active) => {
    const y = e.dims(n.outputs[0]!);
    return n.inputs.map((x, i) => (active(i) ? e.sumTo(gOut[0]!, y, x) : null));
  },
  Sub: (e, n, gOut, active) => {
    const y = e.dims(n.outputs[0]!);
    const [a, b] = n.inputs as [string, string];
    return [active(0) ? e.sumTo(gOut[0]!, y, a) : null, active(1) ? e.sumTo(e.op('Neg', [gOut[0]!]), y, b) : null];
  },
  Mul: (e, n, gOut, active) => {
    const y = e.dims(n.outputs[0]!);
    const [a, b] = n.inputs as [string, string];
    const g = gOut[0]!;
    if (a === b) return [active(0) ? e.op('Mul', [e.op('Mul', [g, a]), e.c(2)]) : null, null];
    return [active(0) ? e.sumTo(e.op('Mul', [g, b]), y, a) : null, active(1) ? e.sumTo(e.op('Mul', [g, a]), y, b) : null];
  },
  Div: (e, n, gOut, active) => {
    const yd = e.dims(n.outputs[0]!);
    const [a, b] = n.inputs as [string, string];
    const g = gOut[0]!;
    const gb = e.op('Div', [g, b]);
    // d(a/b)/db = -a/b^2 = -(y/b): reuses the forward output instead of squaring b.
    return [active(0) ? e.sumTo(gb, yd, a) : null, active(1) ? e.sumTo(e.op('Neg', [e.op('Mul', [gb, n.outputs[0]!])]), yd, b) : null];
  },
  Pow: (e, n, gOut, active) => {
    if (active(1)) throw new Error(`autodiff: Pow ${n.outputs[0]} with a differentiated exponent is not supported`);
    if (!active(0)) return [null, null];
    const p = e.st.floats.get(n.inputs[1]!);
    if (!p || p.length !== 1) throw new Error(`autodiff: Pow ${n.outputs[0]} needs a constant scalar exponent`);
    const k = p[0]!;
    const x = n.inputs[0]!;
    const dx = k === 2 ? e.op('Mul', [x, e.c(2)]) : e.op('Mul', [e.op('Pow', [x, e.c(k - 1)]), e.c(k)]);
    return [e.sumTo(e.op('Mul', [gOut[0]!, dx]), e.dims(n.outputs[0]!), x), null];
  },
  Where: (e, n, gOut, active) => {
    const y = e.dims(n.outputs[0]!);
    const [c, a, b] = n.inputs as [string, string, string];
    const g = gOut[0]!;
    const zero = e.c(0);
    return [null, active(1) ? e.sumTo(e.op('Where', [c, g, zero]), y, a) : null, active(2) ? e.sumTo(e.op('Where', [c, zero, g]), y, b) : null];
  },
  Expand: (e, n, gOut, active) => [active(0) ? e.sumTo(gOut[0]!, e.dims(n.outputs[0]!), n.inputs[0]!) : null, null],
  MatMul: (e, n, gOut, active) => matmulGrads(e, n, gOut[0]!, active),
  FusedMatMul: (e, n, gOut, active) => matmulGrads(e, n, gOut[0]!, active),
  ReduceSum: (e, n, gOut, active) => [active(0) ? reduceGrad(e, n, gOut[0]!, false) : null, null],
  ReduceMean: (e, n, gOut, active) => [active(0) ? reduceGrad(e, n, gOut[0]!, true) : null, null],
  ReduceSumSquare: (e, n, gOut, active) => {
    if (!active(0)) return [null, null];
    const x = n.inputs[0]!;
    return [e.op('Mul', [reduceGrad(e, n, e.op('Mul', [gOut[0]!, e.c(2)]), false), x]), null];
  },
  Reshape: (e, n, gOut, active) => [active(0) ? e.reshapeLike(gOut[0]!, n.inputs[0]!) : null, null],
  Flatten: (e, n, gOut, active) => [active(0) ? e.reshapeLike(gOut[0]!, n.inputs[0]!) : null],
  Squeeze: (e, n, gOut, active) => [active(0) ? e.reshapeLike(gOut[0]!, n.inputs[0]!) : null, null],
  Unsqueeze: (e, n, gOut, active) => [active(0) ? e.reshapeLike(gOut[0]!, n.inputs[0]!) : null, null],
  Transpose: (e, n, gOut, active) => {
    if (!active(0)) return [null];
    const r = e.dims(n.inputs[0]!).length;
    const perm = attrInts(n, 'perm') ?? Array.from({ length: r }, (_, i) => r - 1 - i);
    const inv = new Array<number>(r);
    perm.forEach((p, i) => (inv[p] = i));
    return [e.op('Transpose', [gOut[0]!], { perm: inv })];
  },
  Split: (e, n, gOut, active) => {
    if (!active(0)) return n.inputs.map(() => null);
    const axis = attrInt(n, 'axis', 0);
    const parts = n.outputs.map((o, i) => gOut[i] ?? e.zerosLike(o));
    return [e.op('Concat', parts, { axis }), ...n.inputs.slice(1).map(() => null)];
  },
  Concat: (e, n, gOut, active) => {
    const g = gOut[0]!;
    const r = e.dims(n.outputs[0]!).length;
    const axis = normAxis(attrInt(n, 'axis', 0), r);
    const sizes = n.inputs.map((x) => e.dims(x)[axis]!);
    if (allNumeric(sizes)) {
      const parts = e.g.opN('Split', [g, e.g.constI64(sizes)], sizes.length, { axis });
      return parts.map((p, i) => (active(i) ? p : null));
    }
    // Dynamic sizes: slice [offset, offset + size) for each input, offsets from the runtime shapes.
    let offset = e.g.constI64([0]);
    return n.inputs.map((x, i) => {
      const size = e.op('Gather', [e.op('Shape', [x]), e.g.constI64([axis])], { axis: 0 });
      const end = e.op('Add', [offset, size]);
      const part = active(i) ? e.op('Slice', [g, offset, end, e.g.constI64([axis])]) : null;
      offset = end;
      return part;
    });
  },
  Slice: (e, n, gOut, active) => {
    if (!active(0)) return n.inputs.map(() => null);
    const x = n.inputs[0]!, y = n.outputs[0]!;
    const xd = e.dims(x);
    const starts = e.st.ints.get(n.inputs[1]!);
    const axesIn = n.inputs[3] ? e.st.ints.get(n.inputs[3]) : undefined;
    const steps = n.inputs[4] ? e.st.ints.get(n.inputs[4]) : undefined;
    if (!starts || (n.inputs[3] && !axesIn) || (steps && steps.some((s) => s !== 1))) {
      throw new Error(`autodiff: Slice ${y} needs constant starts/axes and step 1 to be differentiated`);
    }
    const axes = (axesIn ?? starts.map((_, i) => i)).map((a) => normAxis(a as number, xd.length));
    const begins = new Array<number>(xd.length).fill(0);
    axes.forEach((a, i) => {
      let s = starts[i]!;
      const dim = xd[a]!;
      if (typeof s !== 'number') throw new Error(`autodiff: Slice ${y} has a symbolic start`);
      if (s < 0) {
        if (typeof dim !== 'number') throw new Error(`autodiff: Slice ${y} has a negative start on a symbolic axis`);
        s += dim;
      }
      begins[a] = typeof dim === 'number' ? Math.min(Math.max(s, 0), dim) : Math.max(s, 0);
    });
    const yd = e.dims(y);
    let pads: string;
    if (allNumeric(xd) && allNumeric(yd)) {
      pads = e.g.constI64([...begins, ...xd.map((v, i) => (v as number) - (yd[i] as number) - begins[i]!)]);
    } else {
      // Pads after each axis = dim(x) - dim(y) - begin, from the runtime shapes.
      const after = e.op('Sub', [e.op('Sub', [e.op('Shape', [x]), e.op('Shape', [y])]), e.g.constI64(begins)]);
      pads = e.op('Concat', [e.g.constI64(begins), after], { axis: 0 });
    }
    return [e.op('Pad', [gOut[0]!, pads]), ...n.inputs.slice(1).map(() => null)];
  },
  Gather: (e, n, gOut, active) => {
    if (!active(0)) return [null, null];
    const data = n.inputs[0]!, idx = n.inputs[1]!;
    const axis = normAxis(attrInt(n, 'axis', 0), e.dims(data).length);
    if (axis !== 0) throw new Error(`autodiff: Gather ${n.outputs[0]} along axis ${axis} is not supported (only axis 0, as in embeddings)`);
    // The embedding gradient: scatter-add each row of g into the gathered row (repeated ids add up).
    const idx64 = e.st.dtypes.get(idx) === OnnxDType.INT64 ? idx : e.op('Cast', [idx], { to: OnnxDType.INT64 });
    const ind = e.op('Unsqueeze', [idx64, e.g.constI64([-1])]);
    return [e.op('ScatterND', [e.zerosLike(data), ind, gOut[0]!], { reduction: 'add' }), null];
  },
  // Values of a top-k go back to the positions they were taken from (indices are distinct).
  TopK: (e, n, gOut, active) => {
    if (!active(0) || !gOut[0]) return [null, null];
    const axis = attrInt(n, 'axis', -1);
    return [e.op('ScatterElements', [e.zerosLike(n.inputs[0]!), n.outputs[1]!, gOut[0]], { axis, reduction: 'add' }), null];
  },
  // The data's gradient passes where nothing overwrote it (reduction add: everywhere); each update
  // row's gradient is the output gradient at the row it went to.
  ScatterND: (e, n, gOut, active) => {
    const g = gOut[0]!, idx = n.inputs[1]!, upd = n.inputs[2]!;
    const add = attrString(n, 'reduction', 'none') === 'add';
    if (!add && attrString(n, 'reduction', 'none') !== 'none') throw new Error(`autodiff: ScatterND ${n.outputs[0]} with reduction ${attrString(n, 'reduction', 'none')} has no gradient rule (add or none only)`);
    const gData = active(0) ? (add ? g : e.op('ScatterND', [g, idx, e.zerosLike(upd)])) : null;
    return [gData, null, active(2) ? e.op('GatherND', [g, idx]) : null];
  },
  Clip: (e, n, gOut, active) => {
    if (!active(0)) return n.inputs.map(() => null);
    const x = n.inputs[0]!, lo = n.inputs[1], hi = n.inputs[2];
    // Passes where lo <= x <= hi (torch.clamp's gradient), zero where clamped.
    let keep: string | null = null;
    if (lo) keep = e.op('GreaterOrEqual', [x, lo]);
    if (hi) {
      const le = e.op('LessOrEqual', [x, hi]);
      keep = keep ? e.op('And', [keep, le]) : le;
    }
    const gx = keep ? e.op('Mul', [gOut[0]!, e.op('Cast', [keep], { to: OnnxDType.FLOAT })]) : gOut[0]!;
    return [gx, ...n.inputs.slice(1).map(() => null)];
  },
  GatherElements: (e, n, gOut, active) => {
    if (!active(0)) return [null, null];
    const data = n.inputs[0]!, idx = n.inputs[1]!;
    const axis = attrInt(n, 'axis', 0);
    return [e.op('ScatterElements', [e.zerosLike(data), idx, gOut[0]!], { axis, reduction: 'add' }), null];
  },
  LayerNormalization: (e, n, gOut, active, nodeIndex) => {
    if (gOut[1] || gOut[2]) throw new Error(`autodiff: LayerNormalization ${n.outputs[0]}: gradients through its Mean/InvStdDev outputs are not supported`);
    const [X, S, Bias] = n.inputs as [string, string, string | undefined];
    const xd = e.dims(X);
    const axis = normAxis(attrInt(n, 'axis', -1), xd.length);
    const axes = Array.from({ length: xd.length - axis }, (_, i) => axis + i);
    // The backward pass needs the saved statistics: add the optional outputs when the forward
    // node does not already produce them (same node, so nothing is recomputed).
    let mean = n.outputs[1], inv = n.outputs[2];
    if (!mean || !inv) {
      mean = mean || e.g.fresh('ln_mean');
      inv = inv || e.g.fresh('ln_invstd');
      e.g.nodes[nodeIndex] = { ...n, outputs: [n.outputs[0]!, mean, inv] };
    }
    const g = gOut[0]!;
    const xhat = e.op('Mul', [e.op('Sub', [X, mean]), inv]);
    const out: (string | null)[] = [null, null, null];
    if (active(0)) {
      // dX = inv * (gs - mean(gs) - xhat * mean(gs * xhat)), gs = g * scale.
      const gs = e.op('Mul', [g, S]);
      const m1 = e.op('ReduceMean', [gs], { axes, keepdims: 1 });
      const m2 = e.op('ReduceMean', [e.op('Mul', [gs, xhat])], { axes, keepdims: 1 });
      out[0] = e.op('Mul', [e.op('Sub', [e.op('Sub', [gs, m1]), e.op('Mul', [xhat, m2])]), inv]);
    }
    if (active(1)) out[1] = e.sumTo(e.op('Mul', [g, xhat]), xd, S);
    if (Bias && active(2)) out[2] = e.sumTo(g, xd, Bias);
    return out.slice(0, n.inputs.length);
  },
  SoftmaxCrossEntropyLoss: (e, n, gOut, active, nodeIndex) => {
    if (!active(0)) return n.inputs.map(() => null);
    if (n.inputs[2]) throw new Error(`autodiff: SoftmaxCrossEntropyLoss ${n.outputs[0]} with class weights is not supported`);
    const [scores, labels] = n.inputs as [string, string];
    const sd = e.dims(scores);
    if (sd.length !== 2) throw new Error(`autodiff: SoftmaxCrossEntropyLoss ${n.outputs[0]} needs [N, C] scores (reshape [batch, pos, vocab] to [batch*pos, vocab])`);
    let logProb = n.outputs[1];
    if (!logProb) {
      logProb = e.g.fresh('sce_log_prob');
      e.g.nodes[nodeIndex] = { ...n, outputs: [n.outputs[0]!, logProb] };
    }
    const reduction = attrString(n, 'reduction', 'mean');
    const ign = attr(n, 'ignore_index');
    const probs = e.op('Exp', [logProb]); // softmax(scores) [N, C]
    let grad: string | null = null;
    if (gOut[0]) {
      const lab64 = e.st.dtypes.get(labels) === OnnxDType.INT64 ? labels : e.op('Cast', [labels], { to: OnnxDType.INT64 });
      let valid: string | null = null;
      let safe = lab64;
      if (ign && ign.kind === 'int') {
        const isValid = e.op('Not', [e.op('Equal', [lab64, e.g.constI64([ign.v], [])])]);
        valid = e.op('Cast', [isValid], { to: OnnxDType.FLOAT });
        safe = e.op('Where', [isValid, lab64, e.g.constI64([0], [])]);
      }
      // softmax - onehot(label): subtract 1 at each row's label (a scatter, not a dense one-hot).
      const idx = e.op('Unsqueeze', [safe, e.g.constI64([1])]);
      const minusOnes = e.op('Expand', [e.c(-1), e.op('Shape', [idx])]);
      const diff = e.op('ScatterElements', [probs, idx, minusOnes], { axis: 1, reduction: 'add' });
      // Per-row weight: dL/dloss_row, zero on ignored rows.
      let w: string;
      if (reduction === 'none') {
        w = valid ? e.op('Mul', [gOut[0], valid]) : gOut[0];
      } else if (reduction === 'sum') {
        w = valid ? e.op('Mul', [valid, gOut[0]]) : e.op('Expand', [gOut[0], e.op('Shape', [labels])]);
      } else {
        const count = valid
          ? e.op('ReduceSum', [valid, e.g.constI64([0])], { keepdims: 0 })
          : typeof sd[0] === 'number' ? e.c(sd[0]) : e.op('Cast', [e.op('Gather', [e.op('Shape', [scores]), e.g.constI64([0], [])], { axis: 0 })], { to: OnnxDType.FLOAT });
        const scale = e.op('Div', [gOut[0], count]);
        w = valid ? e.op('Mul', [valid, scale]) : e.op('Expand', [scale, e.op('Shape', [labels])]);
      }
      grad = e.op('Mul', [diff, e.op('Unsqueeze', [w, e.g.constI64([1])])]);
    }
    if (gOut[1]) {
      const s = e.op('ReduceSum', [gOut[1], e.g.constI64([1])], { keepdims: 1 });
      const lp = e.op('Sub', [gOut[1], e.op('Mul', [probs, s])]);
      grad = grad ? e.op('Add', [grad, lp]) : lp;
    }
    return [grad, ...n.inputs.slice(1).map(() => null)];
  },
};

/** Ops addGradients can differentiate through. */
export const DIFFERENTIABLE_OPS: readonly string[] = Object.keys(RULES);

/**
 * Appends the gradient of `y` with respect to each of `wrt` (graph inputs, initializers or any
 * intermediate value, e.g. a hook) to the graph, and returns wrt name -> gradient value name.
 * A value that y does not depend on gets a zero gradient of its shape.
 */
export function addGradients(g: GraphBuilder, y: string, wrt: readonly string[], opts: GradientOptions = {}): Map<string, string> {
  const st = inferShapes(g);
  const yd = st.dims.get(y);
  if (!yd) throw new Error(`autodiff: ${y} is not a value of graph ${g.name}`);
  for (const w of wrt) if (!st.dims.has(w)) throw new Error(`autodiff: ${w} is not a value of graph ${g.name} (or its shape is unknown)`);
  const isFloat = (v: string) => st.dtypes.get(v) === OnnxDType.FLOAT;
  const nForward = g.nodes.length;
  const nodes = g.nodes.slice(0, nForward);

  // Values that depend on some wrt through differentiable ops.
  const active = new Set(wrt.filter(isFloat));
  const detached = new Set(opts.detach ?? []);
  for (const n of nodes) {
    if (NON_DIFFERENTIABLE.has(n.op)) continue;
    if (n.inputs.some((i) => active.has(i))) for (const o of n.outputs) if (o && isFloat(o) && !detached.has(o)) active.add(o);
  }
  if (!active.has(y)) {
    // y does not depend on any wrt: every gradient is zero.
    const e = new GradEmitter(g, st);
    return new Map(wrt.map((w) => [w, e.zerosLike(w)]));
  }
  // Values that y depends on (restricts the backward pass to nodes between wrt and y).
  const needed = new Set([y]);
  for (let i = nForward - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (n.outputs.some((o) => needed.has(o))) for (const inp of n.inputs) if (inp && active.has(inp)) needed.add(inp);
  }

  const e = new GradEmitter(g, st);
  const contrib = new Map<string, string[]>();
  const push = (v: string, gv: string) => {
    const l = contrib.get(v);
    if (l) l.push(gv);
    else contrib.set(v, [gv]);
  };
  const total = (v: string): string | null => {
    const l = contrib.get(v);
    if (!l || l.length === 0) return null;
    if (l.length === 1) return l[0]!;
    const s = g.op('Sum', l);
    contrib.set(v, [s]);
    return s;
  };

  let seed = opts.seed;
  if (!seed) {
    if (yd.length !== 0 && !yd.every((d) => d === 1)) throw new Error(`autodiff: ${y} has shape ${fmtDims(yd)}; give a seed (dL/d${y}) for a non-scalar output`);
    seed = g.constF([1], yd as number[]);
  }
  push(y, seed);

  for (let i = nForward - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!n.outputs.some((o) => needed.has(o) && contrib.has(o))) continue;
    if (NON_DIFFERENTIABLE.has(n.op)) continue;
    const gOut = n.outputs.map((o) => (needed.has(o) ? total(o) : null));
    const isActive = (k: number) => {
      const v = n.inputs[k];
      return !!v && active.has(v) && needed.has(v);
    };
    if (!n.inputs.some((_, k) => isActive(k))) continue;
    const rule = RULES[n.domain && n.domain !== 'com.microsoft' ? '' : n.op];
    if (!rule) {
      throw new Error(`autodiff: no gradient rule for ${n.op} (node producing ${n.outputs[0]}); supported: ${DIFFERENTIABLE_OPS.join(', ')}`);
    }
    const gIn = rule(e, n, gOut, isActive, i);
    gIn.forEach((gv, k) => {
      if (gv && isActive(k)) push(n.inputs[k]!, gv);
    });
  }

  const result = new Map<string, string>();
  for (const w of wrt) result.set(w, total(w) ?? e.zerosLike(w));
  return result;
}
