/**
 * Small dense float64 linear algebra for weight processing: matrix products and a thin SVD.
 *
 * Weight processing needs, per attention head, the SVD of the factored matrices W_Q W_Kᵀ (with
 * the biases as an extra input row) and W_V W_O, as TransformerLens's FactoredMatrix.svd gives
 * it. The factors are tall and thin ([d_model(+1), d_head]), so accuracy matters more than
 * speed, but GPT-2 has 144 heads: everything is float64; tall matrices are first reduced by a
 * Householder QR; the small square core is diagonalised by one-sided (Hestenes) Jacobi, which is
 * simple and accurate (small singular values to high relative accuracy). Internally matrices are
 * arrays of columns so every inner loop runs over contiguous memory.
 *
 * Singular vectors are only defined up to a sign per (u_j, v_j) pair (and, for repeated singular
 * values, up to a rotation within their subspace). Every SVD returned here is put in one
 * canonical form: the largest-magnitude entry of each u_j is positive (the first such entry on
 * an exact tie). LAPACK (so torch and numpy) leaves the sign to its algorithm's path, and no
 * simple rule reproduces it, so results agree with theirs up to those signs.
 */

/** Row-major float64 matrix. */
export interface Mat {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

export function mat(rows: number, cols: number, data?: Float64Array | ArrayLike<number>): Mat {
  const n = rows * cols;
  const d = data === undefined ? new Float64Array(n) : data instanceof Float64Array ? data : Float64Array.from(data);
  if (d.length !== n) throw new Error(`matrix data has ${d.length} elements but ${rows}x${cols} needs ${n}`);
  return { rows, cols, data: d };
}

export function identity(n: number): Mat {
  const m = mat(n, n);
  for (let i = 0; i < n; i++) m.data[i * n + i] = 1;
  return m;
}

export function transpose(a: Mat): Mat {
  const out = mat(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out.data[j * a.rows + i] = a.data[i * a.cols + j]!;
  return out;
}

export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new Error(`matmul: [${a.rows}x${a.cols}] @ [${b.rows}x${b.cols}] do not chain`);
  const out = mat(a.rows, b.cols);
  const n = b.cols;
  for (let i = 0; i < a.rows; i++) {
    const oRow = i * n;
    for (let k = 0; k < a.cols; k++) {
      const aik = a.data[i * a.cols + k]!;
      if (aik === 0) continue;
      const bRow = k * n;
      for (let j = 0; j < n; j++) out.data[oRow + j]! += aik * b.data[bRow + j]!;
    }
  }
  return out;
}

/** a @ diag(s): scales column j of a by s[j]. */
export function scaleCols(a: Mat, s: ArrayLike<number>): Mat {
  if (s.length !== a.cols) throw new Error(`scaleCols: ${s.length} scales for ${a.cols} columns`);
  const out = mat(a.rows, a.cols);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out.data[i * a.cols + j] = a.data[i * a.cols + j]! * s[j]!;
  return out;
}

/** Max |a - b| over all entries (shapes must match). */
export function maxAbsDiffMat(a: Mat, b: Mat): number {
  if (a.rows !== b.rows || a.cols !== b.cols) throw new Error(`shape mismatch: ${a.rows}x${a.cols} vs ${b.rows}x${b.cols}`);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i]! - b.data[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/**
 * Thin SVD: A [m, n] = U [m, k] diag(S) Vᵀ with V [n, k]. U and V have orthonormal columns (also
 * where A is rank-deficient: the columns for zero singular values complete an orthonormal
 * basis), S [k] is descending and non-negative, signs are canonical (see the file comment).
 */
export interface Svd {
  U: Mat;
  S: Float64Array;
  V: Mat;
}

/** Thin SVD of a [m, n], k = min(m, n). */
export function svd(a: Mat): Svd {
  const tall = a.rows >= a.cols;
  // svd(Aᵀ) = V S Uᵀ: always work on the tall orientation, then swap the factors back.
  const cols = tall ? toCols(a) : toCols(transpose(a));
  const p = tall ? a.rows : a.cols;
  const { q, r } = thinQr(cols, p);
  const core = jacobiSvd(r, r.length);
  const U = fromCols(mulCols(q, core.U, p), p);
  const V = fromCols(core.V, r.length);
  return canonicalizeSigns(tall ? { U, S: core.S, V } : { U: V, S: core.S, V: U });
}

/**
 * SVD of the product A [m, r] @ B [r, n] without forming it (TransformerLens's FactoredMatrix):
 * with A = Qa Ra and Bᵀ = Qb Rb (thin QRs), A B = Qa (Ra Rbᵀ) Qbᵀ, so the SVD of the r x r core
 * Ra Rbᵀ = Uc S Vcᵀ gives A B = (Qa Uc) S (Qb Vc)ᵀ. Returns r components (the product has rank
 * at most r). Needs r <= min(m, n), true for attention heads (d_head <= d_model); otherwise it
 * takes the SVD of the formed product.
 */
export function factoredSvd(a: Mat, b: Mat): Svd {
  if (a.cols !== b.rows) throw new Error(`factoredSvd: [${a.rows}x${a.cols}] @ [${b.rows}x${b.cols}] do not chain`);
  const r = a.cols;
  if (r > a.rows || r > b.cols) return svd(matmul(a, b));
  const qa = thinQr(toCols(a), a.rows);
  const qb = thinQr(toCols(transpose(b)), b.cols);
  // core [r, r] = Ra Rbᵀ, as columns: core[:, j] = Ra Rbᵀ[:, j] = sum_k Ra[:, k] Rb[j, k].
  const core = mulCols(qa.r, transposeCols(qb.r, r), r);
  const c = jacobiSvd(core, r);
  return canonicalizeSigns({
    U: fromCols(mulCols(qa.q, c.U, a.rows), a.rows),
    S: c.S,
    V: fromCols(mulCols(qb.q, c.V, b.cols), b.cols),
  });
}

/**
 * Flips each (u_j, v_j) pair so that the largest-|.| entry of u_j is positive (the first on an
 * exact tie). Any consistent rule would do; this one depends only on the matrix (where its
 * singular values are distinct), not on how its SVD was computed. Changes the Svd in place.
 */
export function canonicalizeSigns(s: Svd): Svd {
  const { U, V } = s;
  const k = s.S.length;
  for (let j = 0; j < k; j++) {
    let best = 0;
    let bestAbs = -1;
    for (let i = 0; i < U.rows; i++) {
      const x = Math.abs(U.data[i * U.cols + j]!);
      if (x > bestAbs) {
        bestAbs = x;
        best = i;
      }
    }
    if (U.data[best * U.cols + j]! < 0) {
      for (let i = 0; i < U.rows; i++) U.data[i * U.cols + j] = -U.data[i * U.cols + j]!;
      for (let i = 0; i < V.rows; i++) V.data[i * V.cols + j] = -V.data[i * V.cols + j]!;
    }
  }
  return s;
}

// ---- column-major internals: a matrix [p, n] is n Float64Arrays of length p ----

type Cols = Float64Array[];

function toCols(a: Mat): Cols {
  const out: Cols = [];
  for (let j = 0; j < a.cols; j++) {
    const c = new Float64Array(a.rows);
    for (let i = 0; i < a.rows; i++) c[i] = a.data[i * a.cols + j]!;
    out.push(c);
  }
  return out;
}

function fromCols(c: Cols, rows: number): Mat {
  const n = c.length;
  const out = mat(rows, n);
  for (let j = 0; j < n; j++) {
    const col = c[j]!;
    for (let i = 0; i < rows; i++) out.data[i * n + j] = col[i]!;
  }
  return out;
}

function transposeCols(c: Cols, rows: number): Cols {
  const out: Cols = [];
  for (let i = 0; i < rows; i++) {
    const col = new Float64Array(c.length);
    for (let j = 0; j < c.length; j++) col[j] = c[j]![i]!;
    out.push(col);
  }
  return out;
}

/** A [p, k] @ B [k, n] -> [p, n], all as columns: out[:, j] = sum_k A[:, k] B[k, j]. */
function mulCols(a: Cols, b: Cols, p: number): Cols {
  return b.map((bj) => {
    const out = new Float64Array(p);
    for (let k = 0; k < a.length; k++) {
      const s = bj[k]!;
      if (s !== 0) axpy(s, a[k]!, out);
    }
    return out;
  });
}

/**
 * sum_{i >= from} a[i] b[i]. Four independent partial sums: a single running sum is bound by
 * the latency of each add, and these loops are where the SVD spends its time.
 */
function dot(a: Float64Array, b: Float64Array, from = 0): number {
  const n = a.length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = from;
  for (; i + 3 < n; i += 4) {
    s0 += a[i]! * b[i]!;
    s1 += a[i + 1]! * b[i + 1]!;
    s2 += a[i + 2]! * b[i + 2]!;
    s3 += a[i + 3]! * b[i + 3]!;
  }
  for (; i < n; i++) s0 += a[i]! * b[i]!;
  return s0 + s1 + (s2 + s3);
}

/** y[i] += s x[i] for i >= from. */
function axpy(s: number, x: Float64Array, y: Float64Array, from = 0): void {
  const n = y.length;
  let i = from;
  for (; i + 3 < n; i += 4) {
    y[i] = y[i]! + s * x[i]!;
    y[i + 1] = y[i + 1]! + s * x[i + 1]!;
    y[i + 2] = y[i + 2]! + s * x[i + 2]!;
    y[i + 3] = y[i + 3]! + s * x[i + 3]!;
  }
  for (; i < n; i++) y[i] = y[i]! + s * x[i]!;
}

/**
 * Thin Householder QR of a tall A [p, n] (p >= n, as columns): Q [p, n] with orthonormal
 * columns and upper-triangular R [n, n] (as columns), A = Q R. A's columns are overwritten.
 */
function thinQr(a: Cols, p: number): { q: Cols; r: Cols } {
  const n = a.length;
  const vs: Float64Array[] = [];
  const betas: number[] = [];
  for (let j = 0; j < n; j++) {
    const x = a[j]!;
    const norm = Math.sqrt(dot(x, x, j));
    const v = new Float64Array(p); // zero above row j
    let beta = 0;
    if (norm > 0) {
      // Reflect x[j:] onto -sign(x_j) |x| e_j, so v_j = x_j + sign(x_j) |x| never cancels.
      const alpha = x[j]! >= 0 ? -norm : norm;
      for (let i = j; i < p; i++) v[i] = x[i]!;
      v[j] = x[j]! - alpha;
      const vv = dot(v, v, j);
      beta = vv === 0 ? 0 : 2 / vv;
      for (let c = j; c < n; c++) {
        const col = a[c]!;
        const s = beta * dot(v, col, j);
        if (s !== 0) axpy(-s, v, col, j);
      }
    }
    vs.push(v);
    betas.push(beta);
  }
  const r: Cols = a.map((col, c) => {
    const out = new Float64Array(n);
    for (let i = 0; i <= c; i++) out[i] = col[i]!;
    return out;
  });
  // Q = H_0 ... H_{n-1} [I_n; 0]: apply the reflectors, last first, to the first n columns of I.
  const q: Cols = [];
  for (let c = 0; c < n; c++) {
    const col = new Float64Array(p);
    col[c] = 1;
    q.push(col);
  }
  for (let j = n - 1; j >= 0; j--) {
    const beta = betas[j]!;
    if (beta === 0) continue;
    const v = vs[j]!;
    for (let c = j; c < n; c++) {
      const col = q[c]!;
      const s = beta * dot(v, col, j);
      if (s !== 0) axpy(-s, v, col, j);
    }
  }
  return { q, r };
}

const MAX_SWEEPS = 80;

/**
 * One-sided Jacobi SVD of a square A [n, n] (as columns; overwritten): rotates pairs of columns
 * of W = A, and of V (from I), until every pair is orthogonal to working precision; then
 * W = U diag(S) and A = U S Vᵀ. Returns U, V [n, n] as columns and S descending.
 */
function jacobiSvd(W: Cols, n: number): { U: Cols; S: Float64Array; V: Cols } {
  const V: Cols = [];
  for (let j = 0; j < n; j++) {
    const v = new Float64Array(n);
    v[j] = 1;
    V.push(v);
  }
  // A pair counts as orthogonal once |cos angle| <= tol; the dot products' rounding is about
  // n * eps relative, so a tighter tolerance could keep rotating noise forever.
  const tol = Number.EPSILON * Math.max(n, 4);
  const norm2 = new Float64Array(n);
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    // Squared norms are updated through each rotation below; recomputing them once per sweep
    // keeps that update's rounding from accumulating.
    for (let j = 0; j < n; j++) norm2[j] = dot(W[j]!, W[j]!);
    let rotated = false;
    for (let i = 0; i < n - 1; i++) {
      const wi = W[i]!;
      for (let j = i + 1; j < n; j++) {
        const wj = W[j]!;
        const alpha = norm2[i]!;
        const beta = norm2[j]!;
        const gamma = dot(wi, wj);
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        // [wi wj] <- [wi wj] [[c, s], [-s, c]] zeroes their inner product; t is the smaller root
        // of t^2 + 2 zeta t - 1 = 0, so the angle is at most pi/4 (the stable choice).
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotate(wi, wj, c, s);
        rotate(V[i]!, V[j]!, c, s);
        norm2[i] = alpha - t * gamma;
        norm2[j] = beta + t * gamma;
      }
    }
    if (!rotated) break;
  }
  const norms = W.map((w) => Math.sqrt(dot(w, w)));
  const order = norms.map((_, j) => j).sort((x, y) => norms[y]! - norms[x]! || x - y);
  const sMax = norms[order[0]!] ?? 0;
  // Columns below this are rounding noise: their direction means nothing, so U gets a vector
  // completing its orthonormal basis there instead (the singular value, ~0, is kept).
  const noise = sMax * Number.EPSILON * n * 8;
  const S = new Float64Array(n);
  const U: Cols = [];
  const Vs: Cols = [];
  for (let jj = 0; jj < n; jj++) {
    const j = order[jj]!;
    const nj = norms[j]!;
    S[jj] = nj;
    U.push(nj > noise && nj > 0 ? W[j]!.map((x) => x / nj) : completeBasis(U, n));
    Vs.push(V[j]!);
  }
  return { U, S, V: Vs };
}

/** [x y] <- [x y] [[c, s], [-s, c]]. */
function rotate(x: Float64Array, y: Float64Array, c: number, s: number): void {
  const n = x.length;
  let k = 0;
  for (; k + 1 < n; k += 2) {
    const a0 = x[k]!;
    const b0 = y[k]!;
    const a1 = x[k + 1]!;
    const b1 = y[k + 1]!;
    x[k] = c * a0 - s * b0;
    y[k] = s * a0 + c * b0;
    x[k + 1] = c * a1 - s * b1;
    y[k + 1] = s * a1 + c * b1;
  }
  for (; k < n; k++) {
    const a = x[k]!;
    const b = y[k]!;
    x[k] = c * a - s * b;
    y[k] = s * a + c * b;
  }
}

/** A unit vector orthogonal to `basis` (orthonormal vectors of length p), from the standard basis. */
function completeBasis(basis: Cols, p: number): Float64Array {
  let best: Float64Array | null = null;
  let bestNorm = -1;
  for (let e = 0; e < p; e++) {
    const v = new Float64Array(p);
    v[e] = 1;
    // Two Gram-Schmidt passes: one leaves O(eps) components along the basis, the second removes them.
    for (let pass = 0; pass < 2; pass++) {
      for (const b of basis) {
        const d = dot(v, b);
        for (let i = 0; i < p; i++) v[i]! -= d * b[i]!;
      }
    }
    const nrm = Math.sqrt(dot(v, v));
    if (nrm > bestNorm) {
      bestNorm = nrm;
      best = v;
    }
    // Some e_i keeps at least 1/sqrt(p) of its length; one keeping half is well conditioned.
    if (nrm > 0.5) break;
  }
  if (best === null || !(bestNorm > 0)) throw new Error('completeBasis: the basis already spans the space');
  const inv = 1 / bestNorm;
  return best.map((x) => x * inv);
}
