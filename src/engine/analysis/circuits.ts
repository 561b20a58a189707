/**
 * QK and OV circuits of attention heads (A Mathematical Framework for Transformer Circuits), with
 * TransformerLens's conventions: row vectors, so a residual x maps to x W.
 *
 *   QK circuit  W_Q W_Kᵀ            [d_model, d_model]   (query side rows, key side columns)
 *   OV circuit  W_V W_O             [d_model, d_model]
 *   full QK     W_E W_Q W_Kᵀ W_Eᵀ   [d_vocab, d_vocab]   (query token, key token)
 *   full OV     W_E W_V W_O W_U     [d_vocab, d_vocab_out] (source token, output logit)
 *   positional QK  W_pos W_Q W_Kᵀ W_posᵀ [pos, pos]
 *   OV into an MLP  W_V W_O W_in    [d_model, d_mlp]
 *   OV into the unembedding  W_V W_O W_U  [d_model, d_vocab_out]
 *
 * These are low-rank (rank <= d_head) and, for a real vocabulary, too large to form (GPT-2's full
 * OV is 50257 x 50257), so they are FactoredMatrix objects A B as in TransformerLens: norms,
 * eigenvalues and SVDs come from the factors, and only requested rows / columns are formed.
 * Weights are the loaded model's (after its weight processing), as model.W_E etc. are in TL.
 */
import type { HookedTransformer } from '../model/hookedTransformer.js';
import type { HookedTransformerConfig } from '../model/config.js';
import { getParam, headParam, type Params } from '../model/params.js';
import { factoredSvd, mat, matmul as matmul64, transpose, type Mat, type Svd } from '../weights/linalg.js';
import { GraphBuilder } from '../graph/builder.js';
import { OnnxDType } from '../graph/onnxProto.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { eigenvalues, type Eigenvalues } from './eig.js';
import { cachedSession, matmul, runSession, timesUnembedMatrix, unembedTimesEmbed } from './onnxMath.js';
import type { ChunkOptions } from './heads.js';

/** A B without forming it: A [ldim, mdim], B [mdim, rdim] (float64). */
export class FactoredMatrix {
  constructor(readonly A: Mat, readonly B: Mat) {
    if (A.cols !== B.rows) throw new Error(`FactoredMatrix: A [${A.rows}, ${A.cols}] and B [${B.rows}, ${B.cols}] do not chain`);
  }

  get ldim(): number {
    return this.A.rows;
  }
  get mdim(): number {
    return this.A.cols;
  }
  get rdim(): number {
    return this.B.cols;
  }

  /** (A B)ᵀ = Bᵀ Aᵀ */
  get T(): FactoredMatrix {
    return new FactoredMatrix(transpose(this.B), transpose(this.A));
  }

  /** Frobenius norm of A B: sqrt(sum((AᵀA) ∘ (B Bᵀ))), O((ldim + rdim) mdim^2). */
  norm(): number {
    return Math.sqrt(Math.max(0, frobDot(gram(this.A, 'cols'), gram(this.B, 'rows'))));
  }

  /**
   * The (at most mdim) eigenvalues of A B that can be nonzero: those of B A [mdim, mdim]
   * (A B v = k v implies B A (B v) = k (B v)). Needs a square product (ldim == rdim).
   */
  eigenvalues(): Eigenvalues {
    if (this.ldim !== this.rdim) throw new Error(`eigenvalues need a square matrix, got [${this.ldim}, ${this.rdim}]`);
    return eigenvalues(matmul64(this.B, this.A).data, this.mdim);
  }

  /** Thin SVD of A B with mdim components (TL FactoredMatrix.svd). */
  svd(): Svd {
    return factoredSvd(this.A, this.B);
  }

  /** Rows `rows` (default all) and columns `cols` (default all) of A B, formed: [rows, cols]. */
  materialize(rows?: readonly number[], cols?: readonly number[]): Mat {
    const r = rows ?? range(this.ldim);
    const c = cols ?? range(this.rdim);
    if (r.length * c.length > 64e6) throw new Error(`materialize: ${r.length} x ${c.length} entries is too many to form; pick rows and columns`);
    const m = this.mdim;
    const out = mat(r.length, c.length);
    for (let i = 0; i < r.length; i++) {
      const ri = r[i]!;
      if (!(ri >= 0 && ri < this.ldim)) throw new Error(`materialize: row ${ri} is out of range [0, ${this.ldim})`);
      for (let j = 0; j < c.length; j++) {
        const cj = c[j]!;
        if (!(cj >= 0 && cj < this.rdim)) throw new Error(`materialize: column ${cj} is out of range [0, ${this.rdim})`);
        let s = 0;
        for (let k = 0; k < m; k++) s += this.A.data[ri * m + k]! * this.B.data[k * this.rdim + cj]!;
        out.data[i * c.length + j] = s;
      }
    }
    return out;
  }
}

/** AᵀA [cols, cols] ('cols') or B Bᵀ [rows, rows] ('rows'). */
function gram(a: Mat, which: 'cols' | 'rows'): Mat {
  return which === 'cols' ? matmul64(transpose(a), a) : matmul64(a, transpose(a));
}

function frobDot(a: Mat, b: Mat): number {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += a.data[i]! * b.data[i]!;
  return s;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function to64(t: F32, rows: number, cols: number): Mat {
  return mat(rows, cols, Float64Array.from(t.data));
}

/** Head h's slice of W_Q/W_K/W_V [head_index, d_model, d_head] as [d_model, d_head], or of W_O as [d_head, d_model]. */
export function headWeight(params: Params, cfg: HookedTransformerConfig, layer: number, head: number, which: 'Q' | 'K' | 'V' | 'O'): Mat {
  if (!Number.isInteger(layer) || layer < 0 || layer >= cfg.n_layers) throw new Error(`layer ${layer} is out of range: the model has layers 0..${cfg.n_layers - 1}`);
  if (!Number.isInteger(head) || head < 0 || head >= cfg.n_heads) throw new Error(`head ${head} is out of range: layers have heads 0..${cfg.n_heads - 1}`);
  const W = headParam(params, cfg, layer, `W_${which}`);
  const n = cfg.d_model * cfg.d_head;
  const slice = W.data.subarray(head * n, (head + 1) * n);
  return which === 'O' ? mat(cfg.d_head, cfg.d_model, Float64Array.from(slice)) : mat(cfg.d_model, cfg.d_head, Float64Array.from(slice));
}

/** W_Q W_Kᵀ [d_model, d_model]. */
export function qkCircuit(model: HookedTransformer, layer: number, head: number): FactoredMatrix {
  const { params, cfg } = model;
  return new FactoredMatrix(headWeight(params, cfg, layer, head, 'Q'), transpose(headWeight(params, cfg, layer, head, 'K')));
}

/** W_V W_O [d_model, d_model]. */
export function ovCircuit(model: HookedTransformer, layer: number, head: number): FactoredMatrix {
  const { params, cfg } = model;
  return new FactoredMatrix(headWeight(params, cfg, layer, head, 'V'), headWeight(params, cfg, layer, head, 'O'));
}

/** x [n, d_model] (float32 param rows) @ w [d_model, k] via onnxruntime, as float64 [n, k]. */
async function rowsTimes(model: HookedTransformer, x: F32, w: Mat): Promise<Mat> {
  const r = await matmul(model.runtime, x, f32([w.rows, w.cols], Float32Array.from(w.data)));
  return to64(r, r.dims[0]!, r.dims[1]!);
}

/** W_E W_Q W_Kᵀ W_Eᵀ [d_vocab, d_vocab] (query token rows, key token columns). */
export async function fullQkCircuit(model: HookedTransformer, layer: number, head: number): Promise<FactoredMatrix> {
  const WE = getParam(model.params, 'embed.W_E');
  const qk = qkCircuit(model, layer, head);
  const left = await rowsTimes(model, WE, qk.A); // W_E W_Q [d_vocab, d_head]
  const rightT = await rowsTimes(model, WE, transpose(qk.B)); // W_E W_K [d_vocab, d_head]
  return new FactoredMatrix(left, transpose(rightT));
}

/** W_pos[:n] W_Q W_Kᵀ W_pos[:n]ᵀ [n, n] (query position rows, key position columns). */
export async function positionalQkCircuit(model: HookedTransformer, layer: number, head: number, n = Math.min(model.cfg.n_ctx, 128)): Promise<FactoredMatrix> {
  if (model.cfg.positional_embedding_type !== 'standard') throw new Error('this model has no positional embeddings (W_pos)');
  const Wpos = getParam(model.params, 'pos_embed.W_pos');
  const d = model.cfg.d_model;
  const P = f32([n, d], Wpos.data.subarray(0, n * d));
  const qk = qkCircuit(model, layer, head);
  return new FactoredMatrix(await rowsTimes(model, P, qk.A), transpose(await rowsTimes(model, P, transpose(qk.B))));
}

/** W_E W_V W_O W_U [d_vocab, d_vocab_out] (source token rows, output logit columns). */
export async function fullOvCircuit(model: HookedTransformer, layer: number, head: number): Promise<FactoredMatrix> {
  const ov = ovCircuit(model, layer, head);
  const left = await rowsTimes(model, getParam(model.params, 'embed.W_E'), ov.A); // [d_vocab, d_head]
  const right = await timesUnembedMatrix(model.runtime, model.params, f32([ov.B.rows, ov.B.cols], Float32Array.from(ov.B.data))); // [d_head, d_vocab_out]
  return new FactoredMatrix(left, to64(right, right.dims[0]!, right.dims[1]!));
}

/** W_V W_O W_in[mlpLayer] [d_model, d_mlp]: how the head's output is read by a later MLP's neurons. */
export function ovIntoMlp(model: HookedTransformer, layer: number, head: number, mlpLayer: number): FactoredMatrix {
  if (model.cfg.d_mlp === null) throw new Error('an attention-only model has no MLP to read the head');
  const ov = ovCircuit(model, layer, head);
  const Win = getParam(model.params, `blocks.${mlpLayer}.mlp.W_in`);
  return new FactoredMatrix(ov.A, matmul64(ov.B, to64(Win, model.cfg.d_model, model.cfg.d_mlp)));
}

/** W_V W_O W_U [d_model, d_vocab_out]: which logits the head's output raises for a residual direction it reads. */
export async function ovIntoUnembed(model: HookedTransformer, layer: number, head: number): Promise<FactoredMatrix> {
  const ov = ovCircuit(model, layer, head);
  const right = await timesUnembedMatrix(model.runtime, model.params, f32([ov.B.rows, ov.B.cols], Float32Array.from(ov.B.data))); // [d_head, d_vocab_out]
  return new FactoredMatrix(ov.A, to64(right, right.dims[0]!, right.dims[1]!));
}

/** Norm of every column of a factored matrix: ‖(A B)[:, j]‖ = sqrt(B[:, j]ᵀ AᵀA B[:, j]). */
export function columnNorms(m: FactoredMatrix): Float64Array {
  const G = gram(m.A, 'cols');
  const k = m.mdim;
  const out = new Float64Array(m.rdim);
  const col = new Float64Array(k);
  for (let j = 0; j < m.rdim; j++) {
    for (let i = 0; i < k; i++) col[i] = m.B.data[i * m.rdim + j]!;
    let s = 0;
    for (let a = 0; a < k; a++) {
      let t = 0;
      for (let b = 0; b < k; b++) t += G.data[a * k + b]! * col[b]!;
      s += col[a]! * t;
    }
    out[j] = Math.sqrt(Math.max(0, s));
  }
  return out;
}

/**
 * The Mathematical Framework's copying score of eigenvalues λ: Σ Re λ / Σ |λ| (1: the circuit
 * maps tokens to themselves, -1: away from themselves).
 */
export function copyingScore(e: Eigenvalues): number {
  let s = 0;
  let a = 0;
  for (let i = 0; i < e.re.length; i++) {
    s += e.re[i]!;
    a += Math.hypot(e.re[i]!, e.im[i]!);
  }
  return a === 0 ? 0 : s / a;
}

/**
 * Copying score of every head's full OV circuit W_E W_V W_O W_U, [n_layers][n_heads]. The
 * eigenvalues come from W_O (W_U W_E) W_V [d_head, d_head]; W_U W_E [d_model, d_model] is formed
 * once. Needs d_vocab_out == d_vocab (the full OV circuit must be square).
 */
export async function ovCopyingScores(model: HookedTransformer, opts: ChunkOptions = {}): Promise<number[][]> {
  const { cfg, params } = model;
  if (cfg.d_vocab_out !== cfg.d_vocab) throw new Error('copying scores need d_vocab_out == d_vocab');
  const d = cfg.d_model;
  const dh = cfg.d_head;
  const HH = cfg.n_layers * cfg.n_heads;
  const UE = await unembedTimesEmbed(model.runtime, params); // [d_model, d_model]
  const WO = new Float32Array(HH * dh * d);
  const WV = new Float32Array(HH * d * dh);
  for (let l = 0; l < cfg.n_layers; l++) {
    WO.set(getParam(params, `blocks.${l}.attn.W_O`).data, l * cfg.n_heads * dh * d);
    WV.set(headParam(params, cfg, l, 'W_V').data, l * cfg.n_heads * d * dh);
  }
  const left = await matmul(model.runtime, f32([HH, dh, d], WO), UE); // [HH, d_head, d_model]
  const core = await matmul(model.runtime, left, f32([HH, d, dh], WV)); // [HH, d_head, d_head]
  opts.signal?.throwIfAborted();
  const out: number[][] = [];
  for (let l = 0; l < cfg.n_layers; l++) {
    // One layer's eigenvalue problems between checks of the signal.
    opts.signal?.throwIfAborted();
    out.push(Array.from({ length: cfg.n_heads }, (_, h) => {
      const i = l * cfg.n_heads + h;
      return copyingScore(eigenvalues(core.data.subarray(i * dh * dh, (i + 1) * dh * dh), dh));
    }));
    opts.onProgress?.(l + 1, cfg.n_layers);
  }
  return out;
}

export type CompositionMode = 'Q' | 'K' | 'V';

/**
 * TransformerLens's all_composition_scores(mode): for every pair of heads (l1, h1) -> (l2, h2),
 *   ‖L R‖_F / (‖L‖_F ‖R‖_F)   with L = OV(l1, h1) = W_V W_O and
 *   R = QK(l2, h2) (Q-composition), QK(l2, h2)ᵀ (K-composition) or OV(l2, h2) (V-composition),
 * zero unless l1 < l2. Returns [n_layers, n_heads, n_layers, n_heads] (axes l1 h1 l2 h2).
 *
 * Computed from the factors: L = A_L B_L, R = A_R B_R, ‖L R‖² = Σ (G_AL M) ∘ (M G_BR) with
 * M = B_L A_R [d_head, d_head], G_AL = A_Lᵀ A_L and G_BR = B_R B_Rᵀ, so no d_model x d_model
 * product is ever formed; the B_L A_R products for all right heads run as one GEMM per left head.
 */
export async function compositionScores(model: HookedTransformer, mode: CompositionMode, opts: ChunkOptions = {}): Promise<F32> {
  const { cfg, params } = model;
  const L = cfg.n_layers, H = cfg.n_heads, d = cfg.d_model, dh = cfg.d_head;
  const out = f32([L, H, L, H], undefined, ['layer', 'head', 'layer', 'head']);
  const w = (l: number, h: number, which: 'Q' | 'K' | 'V' | 'O') => headWeight(params, cfg, l, h, which);
  // Right factors per head: A_R [d_model, d_head] and B_R [d_head, d_model].
  const right = (l: number, h: number): { A: Mat; B: Mat } =>
    mode === 'Q' ? { A: w(l, h, 'Q'), B: transpose(w(l, h, 'K')) } : mode === 'K' ? { A: w(l, h, 'K'), B: transpose(w(l, h, 'Q')) } : { A: w(l, h, 'V'), B: w(l, h, 'O') };
  const rights = Array.from({ length: L * H }, (_, i) => right(Math.floor(i / H), i % H));
  const rightNorm = rights.map((r) => new FactoredMatrix(r.A, r.B).norm());
  const GBR = rights.map((r) => gram(r.B, 'rows'));
  const session = await cachedSession(model.runtime, 'composition', () => compositionGraph());
  for (let l1 = 0; l1 < L - 1; l1++) {
    // Right heads in later layers, in order: N = (L - l1 - 1) * H.
    const first = (l1 + 1) * H;
    const N = L * H - first;
    const AR = new Float32Array(d * N * dh); // [d_model, N * d_head]
    const GB = new Float32Array(N * dh * dh); // [N, d_head, d_head]
    for (let j = 0; j < N; j++) {
      const r = rights[first + j]!;
      for (let i = 0; i < d; i++) for (let c = 0; c < dh; c++) AR[i * N * dh + j * dh + c] = r.A.data[i * dh + c]!;
      GB.set(Float32Array.from(GBR[first + j]!.data), j * dh * dh);
    }
    for (let h1 = 0; h1 < H; h1++) {
      opts.signal?.throwIfAborted();
      const AL = w(l1, h1, 'V');
      const BL = w(l1, h1, 'O');
      const leftNorm = new FactoredMatrix(AL, BL).norm();
      const res = await runSession(model.runtime, session, {
        BL: f32([dh, d], Float32Array.from(BL.data)),
        GA: f32([dh, dh], Float32Array.from(gram(AL, 'cols').data)),
        AR: f32([d, N * dh], AR),
        GB: f32([N, dh, dh], GB),
      }, ['num2']);
      const num2 = res['num2']!.data;
      for (let j = 0; j < N; j++) {
        const i2 = first + j;
        out.data[((l1 * H + h1) * L * H) + i2] = Math.sqrt(Math.max(0, num2[j]!)) / (leftNorm * rightNorm[i2]!);
      }
      opts.onProgress?.(l1 * H + h1 + 1, (L - 1) * H);
    }
  }
  return out;
}

/** num2 [N] = Σ_ij (GA M_n)_ij (M_n GB_n)_ij with M_n = (BL @ AR)[:, n*dh:(n+1)*dh]. */
function compositionGraph(): GraphBuilder {
  const g = new GraphBuilder('composition');
  const BL = g.input('BL', OnnxDType.FLOAT, ['dh', 'd']);
  const GA = g.input('GA', OnnxDType.FLOAT, ['dh', 'dh']);
  const AR = g.input('AR', OnnxDType.FLOAT, ['d', 'Ndh']);
  const GB = g.input('GB', OnnxDType.FLOAT, ['N', 'dh', 'dh']);
  const M = g.op('MatMul', [BL, AR]); // [dh, N*dh]
  const shapeN = g.op('Slice', [g.op('Shape', [GB]), g.constI64([0]), g.constI64([1])]);
  const shapeDh = g.op('Slice', [g.op('Shape', [GB]), g.constI64([1]), g.constI64([2])]);
  const M3 = g.op('Transpose', [g.op('Reshape', [M, g.op('Concat', [shapeDh, shapeN, shapeDh], { axis: 0 })])], { perm: [1, 0, 2] }); // [N, dh, dh]
  const X = g.op('MatMul', [GA, M3]);
  const Y = g.op('MatMul', [M3, GB]);
  g.op('ReduceSum', [g.op('Mul', [X, Y]), g.constI64([1, 2])], { keepdims: 0 }, 'num2');
  g.output('num2', OnnxDType.FLOAT, ['N']);
  return g;
}
