/**
 * The engine's one tensor type: a flat row-major typed array plus its dims and, where known,
 * the names of its axes in TransformerLens order (e.g. ['batch', 'pos', 'head_index', 'd_head']).
 * It is plain data so it can cross a worker boundary or be written to safetensors unchanged.
 */
export type DType = 'float32' | 'int32' | 'int64';

export interface DataOf {
  float32: Float32Array;
  int32: Int32Array;
  int64: BigInt64Array;
}

export interface Tensor<D extends DType = 'float32'> {
  readonly dtype: D;
  readonly dims: readonly number[];
  readonly data: DataOf[D];
  /** Axis names, same length as dims, when the producer knows them. */
  readonly axes?: readonly string[];
}

export type F32 = Tensor<'float32'>;

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function f32(dims: readonly number[], data?: Float32Array | number[], axes?: readonly string[]): F32 {
  const n = numel(dims);
  const arr = data === undefined ? new Float32Array(n) : data instanceof Float32Array ? data : Float32Array.from(data);
  if (arr.length !== n) {
    throw new Error(`tensor data has ${arr.length} elements but dims [${dims.join(', ')}] need ${n}`);
  }
  if (axes !== undefined && axes.length !== dims.length) {
    throw new Error(`axes [${axes.join(', ')}] do not match dims [${dims.join(', ')}]`);
  }
  return axes === undefined ? { dtype: 'float32', dims: [...dims], data: arr } : { dtype: 'float32', dims: [...dims], data: arr, axes: [...axes] };
}

/** Row-major strides of dims. */
export function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i]!;
  }
  return s;
}

/** Throws a message naming the tensor and both shapes when dims differ. */
export function assertDims(name: string, t: { dims: readonly number[] }, expected: readonly (number | null)[]): void {
  const ok = t.dims.length === expected.length && expected.every((e, i) => e === null || e === t.dims[i]);
  if (!ok) {
    const want = expected.map((e) => (e === null ? '*' : String(e))).join(', ');
    throw new Error(`${name}: expected shape [${want}], got [${t.dims.join(', ')}]`);
  }
}

/** Element at a multi-index (bounds are the caller's responsibility; used in tests and small analyses). */
export function at(t: F32, ...idx: number[]): number {
  const s = strides(t.dims);
  let o = 0;
  for (let i = 0; i < idx.length; i++) o += idx[i]! * s[i]!;
  return t.data[o]!;
}

/** Max |a - b| over all elements; shapes must match. */
export function maxAbsDiff(a: F32, b: F32): number {
  if (a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) {
    throw new Error(`shape mismatch: [${a.dims.join(', ')}] vs [${b.dims.join(', ')}]`);
  }
  let m = 0;
  for (let i = 0; i < a.data.length; i++) {
    const x = a.data[i]!;
    const y = b.data[i]!;
    if (x === y) continue; // also equal infinities (masked attention scores are -inf)
    const d = Math.abs(x - y);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
