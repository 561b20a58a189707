/**
 * The one file that knows onnxruntime-node: session creation with the execution provider the
 * user asked for, and tensor conversion. Everything above it deals in engine Tensors.
 */
import * as ort from 'onnxruntime-node';
import { encodeModel, type OnnxGraph } from '../../graph/onnxProto.js';
import type { F32 } from '../../tensor/tensor.js';

export type Device = 'auto' | 'cpu' | 'cuda';
export type ResolvedDevice = 'cpu' | 'cuda';
/** onnxruntime's tensor type, for code that hands feeds to this module (only backends/ imports onnxruntime). */
export type OrtTensor = ort.Tensor;

export interface RuntimeOptions {
  device?: Device;
  /** Intra-op threads; default: ORT's choice (all cores). */
  threads?: number;
}

export class DeviceUnavailableError extends Error {}

/** True when onnxruntime-node was installed with its CUDA provider (`--onnxruntime-node-install=cuda12`). */
export function cudaAvailable(): boolean {
  try {
    return ort.listSupportedBackends().some((b) => b.name === 'cuda' && b.bundled !== false);
  } catch {
    return false;
  }
}

export function resolveDevice(device: Device = 'auto'): ResolvedDevice {
  if (device === 'cpu') return 'cpu';
  const has = cudaAvailable();
  if (device === 'cuda' && !has) {
    throw new DeviceUnavailableError(
      'device "cuda" was requested but onnxruntime-node has no CUDA provider installed. Reinstall with ' +
        '`npm ci --onnxruntime-node-install=cuda12` on a machine with CUDA 12 and cuDNN 9, or set the device to "cpu" or "auto".',
    );
  }
  return device === 'cuda' || has ? 'cuda' : 'cpu';
}

export interface CompiledSession {
  readonly session: ort.InferenceSession;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Bytes of the serialised model (initializers included), for memory accounting. */
  readonly modelBytes: number;
  /** Weight inputs, wrapped once (zero-copy views of the engine's arrays) and fed on every run. */
  readonly weightFeeds: Record<string, ort.Tensor>;
}

export class OnnxRuntime {
  readonly device: ResolvedDevice;
  private readonly threads: number | undefined;

  constructor(opts: RuntimeOptions = {}) {
    this.device = resolveDevice(opts.device);
    this.threads = opts.threads;
  }

  async compile(graph: OnnxGraph & { weightInputs?: Map<string, F32> }, opts: { arena?: boolean } = {}): Promise<CompiledSession> {
    const { graph: slim, externalData } = externalizeInitializers(graph);
    const bytes = encodeModel(slim);
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: this.device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
      graphOptimizationLevel: 'all',
      // Many sessions exist at once (one per block and variant): idle spinning threads would
      // steal the cores from the one that runs.
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
      logSeverityLevel: 3,
      // A memory arena keeps a session's peak allocation for good but lets runs reuse their
      // buffers: worth it for the few sessions that return many hooks (every-hook run of GPT-2
      // small at 8x8: 1.20x the plain forward with it, 1.28-1.34x without, measured), not for
      // the dozens of per-segment variants a sweep compiles.
      enableCpuMemArena: opts.arena ?? false,
    };
    if (externalData.length > 0) options.externalData = externalData;

    if (this.threads !== undefined) options.intraOpNumThreads = this.threads;
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, options);
    } catch (e) {
      throw new Error(`onnxruntime could not compile graph ${graph.name}: ${(e as Error).message}`);
    }
    const weightFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of graph.weightInputs ?? []) weightFeeds[name] = ortF32(t);
    return { session, inputNames: session.inputNames, outputNames: session.outputNames, modelBytes: bytes.byteLength, weightFeeds };
  }

  async run(s: CompiledSession, feeds: Record<string, ort.Tensor>, fetch: readonly string[]): Promise<Record<string, F32>> {
    const all = { ...s.weightFeeds, ...feeds };
    const missing = s.inputNames.filter((n) => !(n in all));
    if (missing.length) throw new Error(`internal: graph inputs not fed: ${missing.join(', ')}`);
    const res = await s.session.run(all, fetch as string[]);
    const out: Record<string, F32> = {};
    for (const name of fetch) {
      const t = res[name];
      if (!t) throw new Error(`internal: onnxruntime returned no ${name}`);
      out[name] = { dtype: 'float32', dims: [...t.dims], data: t.data as Float32Array };
    }
    return out;
  }
}

/** Initializers at least this large are handed to onnxruntime as in-memory external data. */
const EXTERNAL_MIN_BYTES = 1 << 20;

/**
 * The graph with its large initializers moved out of the model bytes: each becomes external data
 * (a named in-memory "file" given to onnxruntime with the session options, a view of the
 * engine's own array), so encoding does not copy it into the protobuf, nor onnxruntime parse it
 * back out (GPT-2 small's pre-packed W_U: 154 MB, ~0.5 s of its cold start, measured).
 * onnxruntime copies the data while it compiles (test/unit/coldStart.test.ts checks it), so the
 * array may be a temporary.
 */
function externalizeInitializers<G extends OnnxGraph>(graph: G): { graph: G; externalData: { path: string; data: Uint8Array }[] } {
  const externalData: { path: string; data: Uint8Array }[] = [];
  const initializers = graph.initializers.map((t) => {
    if (t.external || t.raw.byteLength < EXTERNAL_MIN_BYTES) return t;
    const location = `initializer_${externalData.length}.bin`;
    externalData.push({ path: location, data: t.raw });
    return { ...t, raw: new Uint8Array(0), external: { location, offset: 0, length: t.raw.byteLength } };
  });
  return { graph: externalData.length ? { ...graph, initializers } : graph, externalData };
}

export function ortF32(t: { dims: readonly number[]; data: Float32Array }): ort.Tensor {
  return new ort.Tensor('float32', t.data, t.dims as number[]);
}

export function ortI64(data: BigInt64Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', data, dims as number[]);
}
