/**
 * Patching metrics: functions of a run's logits [batch, pos, d_vocab_out] to one number, as
 * TransformerLens's patching functions take them (patching_metric). A metric that only reads
 * the last position's logits of a few tokens says so in `lastPosition`; batched sweeps then ask
 * the model for exactly those logits (lastPositionOnly + vocab) instead of unembedding every
 * position of every patched row (for GPT-2 small that unembedding costs as much as the blocks).
 */
import { f32, type F32 } from '../tensor/tensor.js';

/** How a metric reads the last position: the token ids it needs and its value from their logits. */
export interface LastPositionReader {
  /** Token ids whose last-position logits the metric reads, or null for the whole vocabulary (softmax). */
  readonly vocab: readonly number[] | null;
  /** last [batch, K]: logits of `vocab` (in that order; K = d_vocab_out when vocab is null) -> the metric. */
  score(last: F32): number;
}

export type Metric = ((logits: F32) => number) & { lastPosition?: LastPositionReader; label?: string };

function withReader(fn: (logits: F32) => number, reader: LastPositionReader, label: string): Metric {
  const m = fn as Metric;
  m.lastPosition = reader;
  m.label = label;
  return m;
}

/** logits [batch, pos, V] -> the last position's rows [batch, V] (a copy). */
export function lastPositionRows(logits: F32): F32 {
  const [B, P, V] = logits.dims as [number, number, number];
  const out = new Float32Array(B * V);
  for (let b = 0; b < B; b++) out.set(logits.data.subarray((b * P + P - 1) * V, (b * P + P) * V), b * V);
  return f32([B, V], out, ['batch', 'd_vocab']);
}

function checkPairs(answers: readonly (readonly number[])[]): void {
  answers.forEach((a, i) => {
    if (a.length !== 2 || !a.every((t) => Number.isInteger(t) && t >= 0)) throw new Error(`answers[${i}] must be [correct, wrong] token ids, got ${JSON.stringify(a)}`);
  });
}

/**
 * Mean over prompts of logit[correct] - logit[wrong] at the last position (the seeds'
 * logits_to_ave_logit_diff). answers [batch, 2].
 */
export function logitDiffMetric(answers: readonly (readonly [number, number])[]): Metric {
  checkPairs(answers);
  const vocab = [...new Set(answers.flat())];
  const col = new Map(vocab.map((t, k) => [t, k]));
  const score = (last: F32, ids: ReadonlyMap<number, number> | null) => {
    const [B, K] = last.dims as [number, number];
    if (B !== answers.length) throw new Error(`answers: got ${answers.length} pairs for a batch of ${B}`);
    let s = 0;
    for (let b = 0; b < B; b++) {
      const [c, w] = answers[b]!;
      const kc = ids ? ids.get(c)! : c;
      const kw = ids ? ids.get(w)! : w;
      s += last.data[b * K + kc]! - last.data[b * K + kw]!;
    }
    return s / B;
  };
  return withReader((logits) => score(lastPositionRows(logits), null), { vocab, score: (last) => score(last, col) }, 'logit difference');
}

/**
 * Why (patched - corrupted) / (clean - corrupted) is undefined for these two metric values, or
 * null when it is defined. The one rule every caller uses (experiments, `mechlens analyze`, the
 * panels): equal (to float32 precision) or non-finite clean and corrupted metrics leave nothing to
 * normalise by, and callers then show the raw metric, labelled raw, with this reason.
 */
export function normalizationUndefined(clean: number, corrupted: number): string | null {
  if (!Number.isFinite(clean) || !Number.isFinite(corrupted)) return `the clean (${clean}) or corrupted (${corrupted}) metric is not finite`;
  if (Math.abs(clean - corrupted) <= 1e-6 * Math.max(1, Math.abs(clean), Math.abs(corrupted))) {
    return `the clean and corrupted metrics are equal (${clean.toPrecision(6)}), so (patched − corrupted) / (clean − corrupted) would divide by zero`;
  }
  return null;
}

/** (patched - corrupted) / (clean - corrupted): 1 = clean behaviour restored, 0 = no effect. */
export function normalizedMetric(metric: Metric, clean: number, corrupted: number): Metric {
  const why = normalizationUndefined(clean, corrupted);
  if (why) throw new Error(`the normalised metric is undefined: ${why}`);
  const denom = clean - corrupted;
  const norm = (x: number) => (x - corrupted) / denom;
  const fn = (logits: F32) => norm(metric(logits));
  const r = metric.lastPosition;
  if (!r) return fn;
  return withReader(fn, { vocab: r.vocab, score: (last) => norm(r.score(last)) }, `normalised ${metric.label ?? 'metric'}`);
}

/** Mean over prompts of the softmax probability (or log-probability) of `answers[b]` at the last position. */
export function answerProbMetric(answers: readonly number[], opts: { log?: boolean } = {}): Metric {
  const score = (last: F32) => {
    const [B, V] = last.dims as [number, number];
    if (B !== answers.length) throw new Error(`answers: got ${answers.length} tokens for a batch of ${B}`);
    let s = 0;
    for (let b = 0; b < B; b++) {
      const row = last.data.subarray(b * V, (b + 1) * V);
      let m = -Infinity;
      for (const x of row) if (x > m) m = x;
      let z = 0;
      for (const x of row) z += Math.exp(x - m);
      const lp = row[answers[b]!]! - m - Math.log(z);
      s += opts.log ? lp : Math.exp(lp);
    }
    return s / B;
  };
  return withReader((logits) => score(lastPositionRows(logits)), { vocab: null, score }, opts.log ? 'answer log-probability' : 'answer probability');
}
