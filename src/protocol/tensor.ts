/**
 * Tensors as they cross the wire (worker <-> host <-> webview): dims, axis names in
 * TransformerLens order, and a flat row-major Float32Array (structured-clone friendly; in JSON
 * it is encoded as a plain number array by `toJsonTensor`).
 */
export interface TensorPayload {
  dims: number[];
  axes?: string[];
  data: Float32Array;
}

export interface JsonTensor {
  dims: number[];
  axes?: string[];
  data: number[];
}

export function toJsonTensor(t: TensorPayload): JsonTensor {
  const out: JsonTensor = { dims: [...t.dims], data: Array.from(t.data) };
  if (t.axes) out.axes = [...t.axes];
  return out;
}

export function fromJsonTensor(t: JsonTensor): TensorPayload {
  const out: TensorPayload = { dims: [...t.dims], data: Float32Array.from(t.data) };
  if (t.axes) out.axes = [...t.axes];
  return out;
}
