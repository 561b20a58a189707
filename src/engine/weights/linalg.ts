/**
 * Small dense float64 linear algebra for weight processing: matrix products and a thin SVD.
 *
 * Weight processing needs the SVD of each head's factored matrices (W_Q W_Kᵀ with the biases as
 * an extra input row, and W_V W_O), exactly as TransformerLens's FactoredMatrix.svd computes it.
 * The matrices are small (at most d_model+1 by d_head per factor), so accuracy matters more than
 * speed: everything here is float64, and the SVD is a one-sided (Hestenes) Jacobi iteration,
 * which computes small singular values to high relative accuracy, preceded by a Householder QR
 * when the matrix is tall so that Jacobi works on a square d_head x d_head factor.
 *
 * Singular vectors are only defined up to a sign per (u_j, v_j) pair. Every SVD returned here is
 * put in one canonical form: the largest-magnitude entry of each u_j is positive (the first such
 * entry on an exact tie). LAPACK (and so torch / numpy) leave the sign to their algorithm's path;
 * no simple rule reproduces theirs, so results here agree with theirs up to those signs.
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
 * Thin SVD: a [m, n] = U [m, k] diag(S) [k] Vᵀ with V [n, k], k = min(m, n), S descending and
 * non-negative, U and V with orthonormal columns (also where a is rank-deficient: the columns for
 * zero singular values complete an orthonormal basis), signs canonical (see the file comment).
 */
export interface Svd {
  U: Mat;
  S: Float64Array;
  V: Mat;
}

export function svd(a: Mat): Svd {
  if (a.rows < a.cols) {
    // svd(aᵀ) = V S Uᵀ: work on the tall orientation, then swap the factors back.
    const t = svdTall(transpose(a));
    return canonicalizeSigns({ U: t.V, S: t.S, V: t.U });
  }
  return canonicalizeSigns(svdTall(a));
}

/**
 * SVD of the product a [m, r] @ b [r, n] without forming it, as TransformerLens's
 * FactoredMatrix.svd does: with a = Ua Sa Vaᵀ and b = Ub Sb Vbᵀ, the r x r middle
 * diag(Sa) Vaᵀ Ub diag(Sb) = Um Sm Vmᵀ gives a b = (Ua Um) Sm (Vb Vm)ᵀ. Returns r components
 * (the product has rank <= r). Needs r <= min(m, n), which holds for attention heads
 * (d_head <= d_model); otherwise falls back to the SVD of the formed product.
 */
export function factoredSvd(a: Mat, b: Mat): Svd {
  if (a.cols !== b.rows) throw new Error(`factoredSvd: [${a.rows}x${a.cols}] @ [${b.rows}x${b.cols}] do not chain`);
  const r = a.cols;
  if (r > a.rows || r > b.cols) return svd(matmul(a, b));
  const sa = svd(a); // Ua [m, r], Va [r, r]
  const sb = svd(b); // Ub [r, r], Vb [n, r]
  // middle [r, r] = diag(Sa) Vaᵀ Ub diag(Sb); diag(Sa) Vaᵀ is (Va diag(Sa))ᵀ.
  const middle = matmul(transpose(scaleCols(sa.V, sa.S)), scaleCols(sb.U, sb.S));
  const sm = svd(middle);
  return canonicalizeSigns({ U: matmul(sa.U, sm.U), S: sm.S, V: matmul(sb.V, sm.V) });
}

/**
 * Flips each (u_j, v_j) pair so that the largest-|.| entry of u_j is positive (the first on an
 * exact tie). Any consistent rule would do; this one is independent of how the SVD was computed,
 * so the same matrix always gets the same factors.
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

const MAX_SWEEPS = 80;

/** Thin SVD of a tall (rows >= cols) matrix; signs not yet canonical. */
function svdTall(a: Mat): Svd {
  const m = a.rows;
  const n = a.cols;
  if (n === 0) return { U: mat(m, 0), S: new Float64Array(0), V: mat(0, 0) };
  // Jacobi's cost per sweep is n^2/2 column pairs times the column length; a QR first
  // (a = Q R, R [n, n]) makes that length n instead of m, and U = Q U_R afterwards.
  const useQr = m > n;
  const { q, r } = useQr ? householderQr(a) : { q: null, r: a };
  const jac = jacobi(r);
  const U = q === null ? jac.U : matmul(q, jac.U);
  return { U, S: jac.S, V: jac.V };
}

/**
 * One-sided Jacobi on a square-or-tall a [p, n]: rotates pairs of columns of W = a (and of V,
 * starting from I) until every pair is orthogonal to working precision; then W = U diag(S), and
 * a = W Vᵀ. Columns are held separately (column-major) so each rotation touches two arrays.
 */
function jacobi(a: Mat): Svd {
  const p = a.rows;
  const n = a.cols;
  const W: Float64Array[] = [];
  const Vc: Float64Array[] = [];
  for (let j = 0; j < n; j++) {
    const w = new Float64Array(p);
    for (let i = 0; i < p; i++) w[i] = a.data[i * n + j]!;
    W.push(w);
    const v = new Float64Array(n);
    v[j] = 1;
    Vc.push(v);
  }
  // A pair counts as orthogonal once |cos angle| <= tol; rounding in the dot products is about
  // p * eps relative, so a tighter tolerance could keep rotating noise forever.
  const tol = Number.EPSILON * Math.max(p, 4);
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let rotated = false;
    for (let i = 0; i < n - 1; i++) {
      const wi = W[i]!;
      for (let j = i + 1; j < n; j++) {
        const wj = W[j]!;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let k = 0; k < p; k++) {
          const x = wi[k]!;
          const y = wj[k]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        // Rotation [wi wj] <- [wi wj] [[c, s], [-s, c]] zeroing their inner product; t is the
        // smaller root of t^2 + 2 zeta t - 1 = 0, so the angle is at most pi/4 (stable).
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let k = 0; k < p; k++) {
          const x = wi[k]!;
          const y = wj[k]!;
          wi[k] = c * x - s * y;
          wj[k] = s * x + c * y;
        }
        const vi = Vc[i]!;
        const vj = Vc[j]!;
        for (let k = 0; k < n; k++) {
          const x = vi[k]!;
          const y = vj[k]!;
          vi[k] = c * x - s * y;
          vj[k] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = W.map((w) => Math.sqrt(dot(w, w)));
  const order = norms.map((_, j) => j).sort((x, y) => norms[y]! - norms[x]! || x - y);
  const k = Math.min(p, n);
  const S = new Float64Array(k);
  const U = mat(p, k);
  const V = mat(n, k);
  const sMax = norms[order[0]!] ?? 0;
  // Below this a column is rounding noise: its direction is meaningless, so it is replaced by a
  // vector completing the orthonormal basis (its singular value is kept; it is ~0 anyway).
  const noise = sMax * Number.EPSILON * Math.max(p, n) * 8;
  const uCols: Float64Array[] = [];
  for (let jj = 0; jj < k; jj++) {
    const j = order[jj]!;
    S[jj] = norms[j]!;
    let u: Float64Array | null = null;
    if (norms[j]! > noise && norms[j]! > 0) {
      u = W[j]!.map((x) => x / norms[j]!);
    }
    u ??= completeBasis(uCols, p);
    uCols.push(u);
    for (let i = 0; i < p; i++) U.data[i * k + jj] = u[i]!;
    const v = Vc[j]!;
    for (let i = 0; i < n; i++) V.data[i * k + jj] = v[i]!;
  }
  return { U, S, V };
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** A unit vector orthogonal to `basis` (orthonormal vectors of length p), from the standard basis. */
function completeBasis(basis: readonly Float64Array[], p: number): Float64Array {
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
    // Any e_i keeping half its length is well conditioned; stop searching.
    if (nrm > 0.5) break;
  }
  if (best === null || bestNorm === 0) throw new Error('completeBasis: basis already spans the space');
  return best.map((x) => x / bestNorm);
}

/**
 * Thin Householder QR of a tall a [m, n] (m >= n): returns Q [m, n] with orthonormal columns and
 * R [n, n] upper triangular, a = Q R.
 */
function householderQr(a: Mat): { q: Mat; r: Mat } {
  const m = a.rows;
  const n = a.cols;
  const A = Float64Array.from(a.data); // row-major working copy, becomes R in its top n rows
  const vs: Float64Array[] = [];
  const betas: number[] = [];
  for (let j = 0; j < n; j++) {
    let norm2 = 0;
    for (let i = j; i < m; i++) norm2 += A[i * n + j]! * A[i * n + j]!;
    const norm = Math.sqrt(norm2);
    const v = new Float64Array(m - j);
    if (norm === 0) {
      vs.push(v);
      betas.push(0);
      continue;
    }
    const x0 = A[j * n + j]!;
    // Reflect onto -sign(x0) |x| e1 so v0 = x0 + sign(x0) |x| never cancels.
    const alpha = x0 >= 0 ? -norm : norm;
    v[0] = x0 - alpha;
    for (let i = j + 1; i < m; i++) v[i - j] = A[i * n + j]!;
    const vNorm2 = dot(v, v);
    const beta = vNorm2 === 0 ? 0 : 2 / vNorm2;
    // A[j:, j:] -= beta v (vᵀ A[j:, j:])
    for (let c = j; c < n; c++) {
      let s = 0;
      for (let i = j; i < m; i++) s += v[i - j]! * A[i * n + c]!;
      s *= beta;
      if (s === 0) continue;
      for (let i = j; i < m; i++) A[i * n + c]! -= s * v[i - j]!;
    }
    vs.push(v);
    betas.push(beta);
  }
  const r = mat(n, n);
  for (let i = 0; i < n; i++) for (let c = i; c < n; c++) r.data[i * n + c] = A[i * n + c]!;
  // Q = H_0 H_1 ... H_{n-1} applied to the first n columns of I, last reflector first.
  const q = mat(m, n);
  for (let i = 0; i < n; i++) q.data[i * n + i] = 1;
  for (let j = n - 1; j >= 0; j--) {
    const v = vs[j]!;
    const beta = betas[j]!;
    if (beta === 0) continue;
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let i = j; i < m; i++) s += v[i - j]! * q.data[i * n + c]!;
      s *= beta;
      if (s === 0) continue;
      for (let i = j; i < m; i++) q.data[i * n + c]! -= s * v[i - j]!;
    }
  }
  return { q, r };
}
