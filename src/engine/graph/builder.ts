/**
 * A small builder for ONNX graphs whose values carry TransformerLens hook names. Values are
 * referred to by name; `op` appends a node and returns its (fresh or chosen) output name.
 */
import type { F32 } from '../tensor/tensor.js';
import { OnnxDType, type AttrValue, type OnnxGraph, type OnnxNode, type OnnxTensor, type OnnxValueInfo } from './onnxProto.js';

export type Attrs = Record<string, number | readonly number[] | string | { floats: readonly number[] }>;

function toAttr(v: Attrs[string]): AttrValue {
  if (typeof v === 'number') return Number.isInteger(v) ? { kind: 'int', v } : { kind: 'float', v };
  if (typeof v === 'string') return { kind: 'string', v };
  if (Array.isArray(v)) return { kind: 'ints', v: v as readonly number[] };
  return { kind: 'floats', v: (v as { floats: readonly number[] }).floats };
}

export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  readonly inputs: OnnxValueInfo[] = [];
  readonly outputs: OnnxValueInfo[] = [];
  private counter = 0;
  private readonly constCache = new Map<string, string>();
  private readonly names = new Set<string>();
  private readonly domains = new Set<string>();

  constructor(readonly name: string, readonly opset = 17) {}

  fresh(hint: string): string {
    let n: string;
    do n = `${hint}#${this.counter++}`; while (this.names.has(n));
    this.names.add(n);
    return n;
  }

  input(name: string, dtype: OnnxDType, dims: readonly (number | string)[]): string {
    this.names.add(name);
    this.inputs.push({ name, dtype, dims });
    return name;
  }

  output(name: string, dtype: OnnxDType, dims: readonly (number | string)[]): void {
    this.outputs.push({ name, dtype, dims });
  }

  /**
   * Weights fed as graph inputs at run time, by input name. onnxruntime-node wraps the caller's
   * Float32Array without copying, so the engine's one copy of the weights serves every session.
   */
  readonly weightInputs = new Map<string, F32>();

  /**
   * A float32 parameter. As an initializer (`asInput` false) onnxruntime copies it into the
   * session and may pre-pack it for its GEMM kernels (faster, but a second copy per session);
   * as an input it is shared with the caller (see weightInputs).
   */
  weight(name: string, t: F32, dims?: readonly number[], asInput = false): string {
    this.names.add(name);
    const d = dims ?? t.dims;
    if (asInput) {
      this.inputs.push({ name, dtype: OnnxDType.FLOAT, dims: d });
      this.weightInputs.set(name, dims ? { ...t, dims: [...dims] } : t);
    } else {
      this.initializers.push({ name, dtype: OnnxDType.FLOAT, dims: d, raw: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
    }
    return name;
  }

  /** Scalar / small constants, deduplicated. */
  constF(values: readonly number[], dims: readonly number[] = []): string {
    const key = `f:${dims.join(',')}:${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh('const');
    const arr = Float32Array.from(values);
    this.initializers.push({ name, dtype: OnnxDType.FLOAT, dims, raw: new Uint8Array(arr.buffer) });
    this.constCache.set(key, name);
    return name;
  }

  constI64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `i:${dims.join(',')}:${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh('const');
    const arr = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push({ name, dtype: OnnxDType.INT64, dims, raw: new Uint8Array(arr.buffer) });
    this.constCache.set(key, name);
    return name;
  }

  constBool(values: readonly boolean[], dims: readonly number[]): string {
    const name = this.fresh('mask');
    this.initializers.push({ name, dtype: OnnxDType.BOOL, dims, raw: Uint8Array.from(values.map((b) => (b ? 1 : 0))) });
    return name;
  }

  op(op: string, inputs: readonly string[], attrs?: Attrs, out?: string, domain?: string): string {
    const o = out ?? this.fresh(op);
    this.names.add(o);
    const node: OnnxNode = { op, inputs, outputs: [o] };
    if (attrs) node.attrs = Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, toAttr(v)]));
    if (domain) {
      node.domain = domain;
      this.domains.add(domain);
    }
    this.nodes.push(node);
    return o;
  }

  /** A node with several outputs (Split). */
  opN(op: string, inputs: readonly string[], nOut: number, attrs?: Attrs): string[] {
    const outs = Array.from({ length: nOut }, () => this.fresh(op));
    const node: OnnxNode = { op, inputs, outputs: outs };
    if (attrs) node.attrs = Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, toAttr(v)]));
    this.nodes.push(node);
    return outs;
  }

  /**
   * Gives a value a chosen name, so hooks keep exact TransformerLens names. A fresh internal
   * value that nothing reads yet is renamed in place; otherwise an Identity node is added. The
   * rename matters for speed: onnxruntime cannot drop an Identity whose output is a graph output,
   * so with every hook requested each alias would cost a full copy of the activation.
   */
  alias(value: string, name: string): string {
    const producer = value.includes('#') ? this.nodes.find((n) => n.outputs.includes(value)) : undefined;
    const consumed = producer !== undefined && this.nodes.some((n) => n.inputs.includes(value));
    if (producer && !consumed) {
      (producer.outputs as string[])[producer.outputs.indexOf(value)] = name;
      this.names.add(name);
      return name;
    }
    return this.op('Identity', [value], undefined, name);
  }

  /**
   * A builder that continues an already built graph (e.g. to append gradient nodes to a segment
   * graph from gpt2.ts): its values, nodes, inputs, outputs and weight inputs are taken over, and
   * fresh names never collide with them.
   */
  static from(graph: OnnxGraph & { weightInputs?: Map<string, F32> }): GraphBuilder {
    const g = new GraphBuilder(graph.name, graph.opset);
    g.nodes.push(...graph.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] })));
    g.initializers.push(...graph.initializers);
    g.inputs.push(...graph.inputs);
    g.outputs.push(...graph.outputs);
    for (const [k, v] of graph.weightInputs ?? []) g.weightInputs.set(k, v);
    for (const d of Object.keys(graph.extraOpsets ?? {})) g.domains.add(d);
    for (const v of [...graph.inputs.map((i) => i.name), ...graph.initializers.map((t) => t.name), ...graph.nodes.flatMap((n) => n.outputs)]) g.names.add(v);
    return g;
  }

  build(): OnnxGraph & { weightInputs: Map<string, F32> } {
    const extraOpsets = Object.fromEntries([...this.domains].map((d) => [d, 1]));
    return { name: this.name, nodes: this.nodes, initializers: this.initializers, inputs: this.inputs, outputs: this.outputs, opset: this.opset, extraOpsets, weightInputs: this.weightInputs };
  }
}
