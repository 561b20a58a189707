/**
 * A minimal protobuf writer for the subset of onnx.proto that MechLens emits (ModelProto,
 * GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto). Writing the handful of
 * messages ourselves keeps the engine free of a protobuf runtime and lets large initializers be
 * copied straight from their Float32Array into the model bytes.
 * Field numbers are those of onnx/onnx.proto (IR version 8).
 */

const utf8 = new TextEncoder();

/** Growable byte sink with protobuf primitives. */
class Writer {
  private buf: Uint8Array;
  len = 0;

  /**
   * `capacity`: the initial buffer. Nested messages start small: a graph has thousands of them
   * (nodes, attributes, value infos), and a 64 KiB buffer each made encoding GPT-2 small's fused
   * forward take 50-240 ms of a cold start instead of a few.
   */
  constructor(capacity = 1 << 16) {
    this.buf = new Uint8Array(capacity);
  }

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + extra) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }

  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (x >= 0x80n) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
  }

  /** Fast path for small non-negative ints (field tags, lengths). */
  uvarint(v: number): void {
    if (v < 0 || !Number.isSafeInteger(v)) return this.varint(v);
    this.ensure(10);
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }

  tag(field: number, wire: 0 | 1 | 2 | 5): void {
    this.uvarint(field * 8 + wire);
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.uvarint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  string(field: number, s: string): void {
    this.bytes(field, utf8.encode(s));
  }

  int(field: number, v: number | bigint): void {
    this.tag(field, 0);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.tag(field, 5);
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, v, true);
    this.len += 4;
  }

  message(field: number, write: (w: Writer) => void): void {
    const inner = new Writer(256);
    write(inner);
    this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

export const enum OnnxDType {
  FLOAT = 1,
  INT32 = 6,
  INT64 = 7,
  BOOL = 9,
}

export interface OnnxTensor {
  name: string;
  dtype: OnnxDType;
  dims: readonly number[];
  /** Little-endian raw bytes of the elements (empty when `external` is set). */
  raw: Uint8Array;
  /**
   * Data kept outside the model bytes: onnxruntime reads it from a named in-memory "file"
   * supplied at session creation (SessionOptions.externalData), so the weights are not copied
   * into the serialised model.
   */
  external?: { location: string; offset: number; length: number };
}

export type AttrValue =
  | { kind: 'int'; v: number }
  | { kind: 'float'; v: number }
  | { kind: 'ints'; v: readonly number[] }
  | { kind: 'floats'; v: readonly number[] }
  | { kind: 'string'; v: string }
  | { kind: 'tensor'; v: OnnxTensor };

export interface OnnxNode {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

export interface OnnxValueInfo {
  name: string;
  dtype: OnnxDType;
  /** A number is a fixed dim; a string is a symbolic dim (e.g. 'batch'). */
  dims: readonly (number | string)[];
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  initializers: readonly OnnxTensor[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  opset: number;
  /** Extra opset imports, e.g. { 'com.microsoft': 1 } for contrib ops. */
  extraOpsets?: Record<string, number>;
}

function writeTensor(w: Writer, t: OnnxTensor): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dtype);
  w.string(8, t.name);
  if (t.external) {
    const kv = (k: string, v: string) => w.message(13, (e) => { e.string(1, k); e.string(2, v); });
    kv('location', t.external.location);
    kv('offset', String(t.external.offset));
    kv('length', String(t.external.length));
    w.int(14, 1); // data_location = EXTERNAL
  } else {
    w.bytes(9, t.raw);
  }
}

function writeValueInfo(w: Writer, v: OnnxValueInfo): void {
  w.string(1, v.name);
  w.message(2, (tp) =>
    tp.message(1, (tt) => {
      tt.int(1, v.dtype);
      tt.message(2, (sh) => {
        for (const d of v.dims) {
          // '' is an unknown dim (neither value nor name): a size no symbolic name describes.
          sh.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : d === '' ? undefined : dim.string(2, d)));
        }
      });
    }),
  );
}

const ATTR_TYPE = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7 } as const;

function writeAttr(w: Writer, name: string, a: AttrValue): void {
  w.string(1, name);
  w.int(20, ATTR_TYPE[a.kind]);
  switch (a.kind) {
    case 'float': w.float(2, a.v); break;
    case 'int': w.int(3, a.v); break;
    case 'string': w.string(4, a.v); break;
    case 'tensor': w.message(5, (tw) => writeTensor(tw, a.v)); break;
    case 'floats': for (const f of a.v) w.float(7, f); break;
    case 'ints': for (const i of a.v) w.int(8, i); break;
  }
}

/** Serialises a graph as an ONNX ModelProto (IR version 8). */
export function encodeModel(g: OnnxGraph): Uint8Array {
  const w = new Writer();
  w.int(1, 8); // ir_version
  w.string(2, 'mechlens');
  w.message(8, (o) => { o.string(1, ''); o.int(2, g.opset); });
  for (const [domain, version] of Object.entries(g.extraOpsets ?? {})) {
    w.message(8, (o) => { o.string(1, domain); o.int(2, version); });
  }
  w.message(7, (gw) => {
    for (const n of g.nodes) {
      gw.message(1, (nw) => {
        for (const i of n.inputs) nw.string(1, i);
        for (const o of n.outputs) nw.string(2, o);
        if (n.name) nw.string(3, n.name);
        nw.string(4, n.op);
        for (const [k, a] of Object.entries(n.attrs ?? {})) nw.message(5, (aw) => writeAttr(aw, k, a));
        if (n.domain) nw.string(7, n.domain);
      });
    }
    gw.string(2, g.name);
    for (const t of g.initializers) gw.message(5, (tw) => writeTensor(tw, t));
    for (const v of g.inputs) gw.message(11, (vw) => writeValueInfo(vw, v));
    for (const v of g.outputs) gw.message(12, (vw) => writeValueInfo(vw, v));
  });
  return w.finish();
}
