/**
 * Eigenvalues of a small general (non-symmetric) real matrix, for FactoredMatrix.eigenvalues:
 * the copying score of an OV circuit needs all eigenvalues of a d_head x d_head matrix, real and
 * complex. The method is the textbook one: Householder reduction to upper Hessenberg form, then
 * implicit double-shift (Francis) QR iterations with deflation, reading eigenvalues off the 1x1
 * and 2x2 diagonal blocks. Float64 throughout; O(n^3), fine for n <= a few hundred.
 */

export interface Eigenvalues {
  /** Real parts, in the order they deflated (no particular order). */
  re: Float64Array;
  /** Imaginary parts (complex eigenvalues come in conjugate pairs). */
  im: Float64Array;
}

/** Eigenvalues of the n x n row-major matrix `a` (not modified). */
export function eigenvalues(a: ArrayLike<number>, n: number): Eigenvalues {
  if (a.length !== n * n) throw new Error(`eigenvalues: ${a.length} entries for a ${n}x${n} matrix`);
  const h = Float64Array.from(a);
  hessenberg(h, n);
  return hessenbergEigenvalues(h, n);
}

/** In place: Householder similarity transforms to upper Hessenberg form (entries below the subdiagonal become 0). */
function hessenberg(h: Float64Array, n: number): void {
  const v = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    // Reflector zeroing h[k+2.., k]: v = x + sign(x0)|x| e0 over rows k+1..n-1.
    let alpha = 0;
    for (let i = k + 1; i < n; i++) alpha += h[i * n + k]! ** 2;
    alpha = Math.sqrt(alpha);
    if (alpha === 0) continue;
    const x0 = h[(k + 1) * n + k]!;
    if (x0 > 0) alpha = -alpha;
    for (let i = k + 1; i < n; i++) v[i] = h[i * n + k]!;
    v[k + 1] = x0 - alpha;
    let vv = 0;
    for (let i = k + 1; i < n; i++) vv += v[i]! ** 2;
    if (vv === 0) continue;
    // H <- (I - 2 v vᵀ / vᵀv) H (I - 2 v vᵀ / vᵀv)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = k + 1; i < n; i++) s += v[i]! * h[i * n + j]!;
      s = (2 * s) / vv;
      for (let i = k + 1; i < n; i++) h[i * n + j]! -= s * v[i]!;
    }
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = k + 1; j < n; j++) s += h[i * n + j]! * v[j]!;
      s = (2 * s) / vv;
      for (let j = k + 1; j < n; j++) h[i * n + j]! -= s * v[j]!;
    }
    for (let i = k + 2; i < n; i++) h[i * n + k] = 0;
  }
}

/** Eigenvalues of a 2x2 block [[a, b], [c, d]]. */
function eig2(a: number, b: number, c: number, d: number): [number, number, number, number] {
  const tr = (a + d) / 2;
  const disc = ((a - d) / 2) ** 2 + b * c;
  if (disc >= 0) {
    const s = Math.sqrt(disc);
    // Avoid cancellation: the larger-magnitude root first, the other from the determinant.
    const l1 = tr + (tr >= 0 ? s : -s);
    const det = a * d - b * c;
    const l2 = l1 !== 0 ? det / l1 : tr - (tr >= 0 ? s : -s);
    return [l1, 0, l2, 0];
  }
  const s = Math.sqrt(-disc);
  return [tr, s, tr, -s];
}

function hessenbergEigenvalues(h: Float64Array, n: number): Eigenvalues {
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  const H = (i: number, j: number) => h[i * n + j]!;
  let norm = 0;
  for (let i = 0; i < n * n; i++) norm = Math.max(norm, Math.abs(h[i]!));
  let hi = n - 1;
  let iter = 0;
  while (hi >= 0) {
    // Find the start of the unreduced block ending at hi (a negligible subdiagonal splits it).
    let lo = hi;
    while (lo > 0) {
      const s = Math.abs(H(lo - 1, lo - 1)) + Math.abs(H(lo, lo));
      if (Math.abs(H(lo, lo - 1)) <= Number.EPSILON * (s === 0 ? norm : s)) {
        h[lo * n + lo - 1] = 0;
        break;
      }
      lo--;
    }
    if (lo === hi) {
      re[hi] = H(hi, hi);
      im[hi] = 0;
      hi--;
      iter = 0;
      continue;
    }
    if (lo === hi - 1) {
      const [r1, i1, r2, i2] = eig2(H(hi - 1, hi - 1), H(hi - 1, hi), H(hi, hi - 1), H(hi, hi));
      re[hi - 1] = r1; im[hi - 1] = i1; re[hi] = r2; im[hi] = i2;
      hi -= 2;
      iter = 0;
      continue;
    }
    if (++iter > 60 * n) throw new Error('eigenvalues: QR iterations did not converge');
    // Double shift from the trailing 2x2 block (its trace s and determinant t); an exceptional
    // shift every 10 stalled iterations breaks cycles.
    let s: number, t: number;
    if (iter % 10 === 0) {
      const w = Math.abs(H(hi, hi - 1)) + Math.abs(H(hi - 1, hi - 2));
      s = 1.5 * w;
      t = w * w;
    } else {
      s = H(hi - 1, hi - 1) + H(hi, hi);
      t = H(hi - 1, hi - 1) * H(hi, hi) - H(hi - 1, hi) * H(hi, hi - 1);
    }
    // First column of (H - s1 I)(H - s2 I) = H^2 - s H + t I, restricted to the block.
    let x = H(lo, lo) * H(lo, lo) + H(lo, lo + 1) * H(lo + 1, lo) - s * H(lo, lo) + t;
    let y = H(lo + 1, lo) * (H(lo, lo) + H(lo + 1, lo + 1) - s);
    let z = H(lo + 1, lo) * H(lo + 2, lo + 1);
    for (let k = lo - 1; k <= hi - 3; k++) {
      // Reflector P on rows/cols k+1..k+3 mapping (x, y, z) to a multiple of e1.
      const r = k + 1;
      reflect3(h, n, r, x, y, z, lo, hi);
      x = H(r + 1, r);
      y = H(r + 2, r);
      if (r < hi - 2) z = H(r + 3, r);
    }
    // Last step: a 2-element reflector on rows/cols hi-1, hi.
    reflect2(h, n, hi - 1, x, y, lo, hi);
  }
  return { re, im };
}

/** Applies P = I - 2 v vᵀ/(vᵀv), v from (x, y, z), to rows r..r+2 and columns r..r+2 of the active block [lo, hi]. */
function reflect3(h: Float64Array, n: number, r: number, x: number, y: number, z: number, lo: number, hi: number): void {
  const alpha = Math.hypot(x, y, z);
  if (alpha === 0) return;
  const a = x > 0 ? -alpha : alpha;
  const v0 = x - a, v1 = y, v2 = z;
  const vv = v0 * v0 + v1 * v1 + v2 * v2;
  if (vv === 0) return;
  const f = 2 / vv;
  // Rows r..r+2, columns max(lo, r-1)..hi.
  for (let j = Math.max(lo, r - 1); j <= hi; j++) {
    const s = f * (v0 * h[r * n + j]! + v1 * h[(r + 1) * n + j]! + v2 * h[(r + 2) * n + j]!);
    h[r * n + j]! -= s * v0;
    h[(r + 1) * n + j]! -= s * v1;
    h[(r + 2) * n + j]! -= s * v2;
  }
  // Columns r..r+2, rows lo..min(r+3, hi).
  for (let i = lo; i <= Math.min(r + 3, hi); i++) {
    const s = f * (h[i * n + r]! * v0 + h[i * n + r + 1]! * v1 + h[i * n + r + 2]! * v2);
    h[i * n + r]! -= s * v0;
    h[i * n + r + 1]! -= s * v1;
    h[i * n + r + 2]! -= s * v2;
  }
  if (r > lo) {
    // The bulge column below the subdiagonal is now zero by construction.
    h[(r + 1) * n + r - 1] = 0;
    h[(r + 2) * n + r - 1] = 0;
  }
}

function reflect2(h: Float64Array, n: number, r: number, x: number, y: number, lo: number, hi: number): void {
  const alpha = Math.hypot(x, y);
  if (alpha === 0) return;
  const a = x > 0 ? -alpha : alpha;
  const v0 = x - a, v1 = y;
  const vv = v0 * v0 + v1 * v1;
  if (vv === 0) return;
  const f = 2 / vv;
  for (let j = Math.max(lo, r - 1); j <= hi; j++) {
    const s = f * (v0 * h[r * n + j]! + v1 * h[(r + 1) * n + j]!);
    h[r * n + j]! -= s * v0;
    h[(r + 1) * n + j]! -= s * v1;
  }
  for (let i = lo; i <= hi; i++) {
    const s = f * (h[i * n + r]! * v0 + h[i * n + r + 1]! * v1);
    h[i * n + r]! -= s * v0;
    h[i * n + r + 1]! -= s * v1;
  }
  if (r > lo) h[(r + 1) * n + r - 1] = 0;
}
