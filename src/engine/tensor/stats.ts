/**
 * Pearson correlation of two equally long series; NaN when fewer than two pairs or either side
 * is constant (the correlation is undefined).
 */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  if (n < 2) return NaN;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i]! - ma) * (b[i]! - mb);
    saa += (a[i]! - ma) ** 2;
    sbb += (b[i]! - mb) ** 2;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : NaN;
}

/**
 * True when no value is NaN or ±Infinity: v * 0 is 0 for a finite v and NaN otherwise, so the
 * sums stay 0 exactly when all are finite (four sums: independent additions pipeline).
 */
export function allFinite(d: Float32Array): boolean {
  let a = 0, b = 0, c = 0, e = 0;
  const n = d.length - (d.length % 4);
  for (let i = 0; i < n; i += 4) {
    a += d[i]! * 0;
    b += d[i + 1]! * 0;
    c += d[i + 2]! * 0;
    e += d[i + 3]! * 0;
  }
  for (let i = n; i < d.length; i++) a += d[i]! * 0;
  return a + b + c + e === 0;
}

/** NaN and ±Infinity counts of a tensor's values. */
export function countNonFinite(data: ArrayLike<number>): { nan: number; inf: number } {
  let nan = 0;
  let inf = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v !== v) nan++;
    else if (v === Infinity || v === -Infinity) inf++;
  }
  return { nan, inf };
}

/**
 * One warning naming every tensor with non-finite values (as loaded, before processing spreads
 * them into other tensors), or null. A single NaN weight makes every result NaN: users must be
 * told at load time, not find `null` in their results.
 */
export function nonFiniteWarning(tensors: Iterable<[string, { data: ArrayLike<number> }]>): string | null {
  const bad: string[] = [];
  for (const [name, t] of tensors) {
    // Every tensor of a model is scanned as it loads: the quick test first (~4x faster).
    if (t.data instanceof Float32Array && allFinite(t.data)) continue;
    const c = countNonFinite(t.data);
    if (c.nan || c.inf) bad.push(`${name} (${[c.nan ? `${c.nan} NaN` : '', c.inf ? `${c.inf} ±Inf` : ''].filter(Boolean).join(', ')})`);
  }
  if (!bad.length) return null;
  return `the model's weights hold non-finite values in ${bad.length} tensor${bad.length === 1 ? '' : 's'}: ${bad.slice(0, 8).join('; ')}${bad.length > 8 ? `; and ${bad.length - 8} more` : ''}. Results computed from them will be NaN: check the checkpoint.`;
}
