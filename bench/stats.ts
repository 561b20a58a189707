/** The small statistics every bench group shares: median, rounding, interleaved timing. */

/** The median (mean of the middle two for an even count; NaN for none). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

export const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Medians of fns run in turn, `reps` rounds after two warm-up rounds: alternating the sides of a
 * ratio lets the host's drift hit both.
 */
export async function timeInterleaved(fns: (() => Promise<unknown>)[], reps: number): Promise<number[]> {
  const ts = fns.map(() => [] as number[]);
  for (let i = 0; i < reps + 2; i++) {
    for (const [k, fn] of fns.entries()) {
      const t0 = performance.now();
      await fn();
      if (i >= 2) ts[k]!.push(performance.now() - t0);
    }
  }
  return ts.map(median);
}
