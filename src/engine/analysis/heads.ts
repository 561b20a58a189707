/**
 * Attention-head analyses with TransformerLens's definitions:
 *  - attention patterns per head, averaged over a batch of equal-length prompts;
 *  - head_detector.py: detection patterns for previous-token, duplicate-token and induction
 *    heads and the 'mul' / 'abs' similarity scores (exclude_bos, exclude_current_token);
 *  - the induction demo (Main_Demo): random tokens repeated twice, the mean attention on the
 *    "induction stripe" (query i to key i - (seq_len - 1)), and the loss by position.
 */
import type { HookedTransformer, Tokens } from '../model/hookedTransformer.js';
import type { HookName } from '../hooks/hooks.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { mulberry32 } from '../tensor/mulberry32.js';

/** Sequences scored per run by detectHeads and repeatedTokenHeadScores: bounds the patterns held and how long a cancel waits. */
export const HEAD_SCORE_BATCH = 16;

/** Cancellation (checked between runs: the AbortSignal's reason is thrown) and progress (rows done, rows in all). */
export interface ChunkOptions {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Attention patterns blocks.L.attn.hook_pattern of every layer, averaged over the prompts:
 * [n_layers, n_heads, query_pos, key_pos]. Prompts must have the same token length.
 */
export async function attentionPatterns(model: HookedTransformer, tokens: Tokens, opts: ChunkOptions = {}): Promise<F32> {
  const cfg = model.cfg;
  const [B, P] = model.checkTokens(tokens);
  const names = Array.from({ length: cfg.n_layers }, (_, l) => `blocks.${l}.attn.hook_pattern` as HookName);
  const H = cfg.n_heads;
  const per = H * P * P;
  const out = f32([cfg.n_layers, H, P, P], undefined, ['layer', 'head', 'query_pos', 'key_pos']);
  // Prompts run HEAD_SCORE_BATCH at a time (the same sum over prompts in order), checking the signal between runs.
  for (let b0 = 0; b0 < B; b0 += HEAD_SCORE_BATCH) {
    opts.signal?.throwIfAborted();
    const rows = tokens.slice(b0, b0 + HEAD_SCORE_BATCH);
    const r = await model.run(rows, { names, noLogits: true });
    names.forEach((n, l) => {
      const t = r.cache.get(n)!.data; // [batch, head, query_pos, key_pos]
      for (let b = 0; b < rows.length; b++) for (let i = 0; i < per; i++) out.data[l * per + i]! += t[b * per + i]! / B;
    });
    opts.onProgress?.(Math.min(B, b0 + HEAD_SCORE_BATCH), B);
  }
  return out;
}

export type HeadKind = 'previous_token_head' | 'duplicate_token_head' | 'induction_head';
export const HEAD_KINDS: readonly HeadKind[] = ['previous_token_head', 'duplicate_token_head', 'induction_head'];

/**
 * TL's detection pattern for `kind` on one sequence, [pos, pos] (query rows, key columns),
 * lower-triangular 0/1:
 *  previous_token_head:  1 at (i, i-1);
 *  duplicate_token_head: 1 at (i, j), j < i, where tokens[j] == tokens[i];
 *  induction_head:       the duplicate pattern shifted one key to the right (j+1 for a
 *                        duplicate at j), first column 0.
 */
export function detectionPattern(kind: HeadKind, tokens: readonly number[]): Float64Array {
  const n = tokens.length;
  const out = new Float64Array(n * n);
  const dup = (i: number, j: number) => j < i && tokens[i] === tokens[j];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let v = false;
      if (kind === 'previous_token_head') v = j === i - 1;
      else if (kind === 'duplicate_token_head') v = dup(i, j);
      else v = j >= 1 && dup(i, j - 1);
      if (v) out[i * n + j] = 1;
    }
  }
  return out;
}

export interface SimilarityOptions {
  /** Ignore attention to position 0 (BOS). */
  excludeBos?: boolean;
  /** Ignore attention to the query's own position. */
  excludeCurrentToken?: boolean;
  /** 'mul' (default): share of attention on the detection pattern; 'abs': 1 - mean |pattern - detection| x n, rounded to 3 decimals. */
  errorMeasure?: 'mul' | 'abs';
}

/** TL compute_head_attention_similarity_score for one head's pattern [pos, pos]. */
export function headSimilarityScore(pattern: ArrayLike<number>, detection: ArrayLike<number>, n: number, opts: SimilarityOptions = {}): number {
  const keep = (i: number, j: number) => !(opts.excludeBos && j === 0) && !(opts.excludeCurrentToken && i === j);
  if ((opts.errorMeasure ?? 'mul') === 'mul') {
    let num = 0;
    let den = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (!keep(i, j)) continue;
        const a = pattern[i * n + j]!;
        num += a * detection[i * n + j]!;
        den += a;
      }
    }
    return num / den;
  }
  let sum = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const diff = Math.abs(pattern[i * n + j]! - detection[i * n + j]!);
      if (j > i && diff !== 0) throw new Error('the attention pattern and the detection pattern must be lower-triangular');
      if (keep(i, j)) sum += diff;
    }
  }
  // TL: 1 - round(mean(|diff|) * size, 3) with mean over size^2 entries.
  return 1 - Math.round((sum / (n * n)) * n * 1000) / 1000;
}

/**
 * TL detect_head on a batch of sequences (each row scored with its own detection pattern; the
 * scores averaged over rows, as TL does for a list of strings): [n_layers][n_heads].
 * `heads` restricts the scored heads (others are -1, as in TL).
 */
export async function detectHeads(
  model: HookedTransformer, tokens: Tokens, kind: HeadKind | ((row: readonly number[]) => Float64Array), opts: SimilarityOptions & ChunkOptions & { heads?: readonly { layer: number; head: number }[] } = {},
): Promise<number[][]> {
  const cfg = model.cfg;
  const H = cfg.n_heads;
  const [B, P] = model.checkTokens(tokens);
  if (P < 2) throw new Error('detectHeads: sequences need at least 2 tokens');
  const names = Array.from({ length: cfg.n_layers }, (_, l) => `blocks.${l}.attn.hook_pattern` as HookName);
  const want = opts.heads ? new Set(opts.heads.map((h) => `${h.layer}.${h.head}`)) : null;
  const sums = names.map(() => new Float64Array(H));
  // Rows run HEAD_SCORE_BATCH at a time: the patterns of a chunk are all that is held, and the
  // signal is checked between chunks. Sums run over rows in order, as one batch would.
  for (let b0 = 0; b0 < B; b0 += HEAD_SCORE_BATCH) {
    opts.signal?.throwIfAborted();
    const rows = tokens.slice(b0, b0 + HEAD_SCORE_BATCH);
    const r = await model.run(rows, { names, noLogits: true });
    const dets = rows.map((row) => (typeof kind === 'function' ? kind(row) : detectionPattern(kind, row)));
    names.forEach((n, l) => {
      const t = r.cache.get(n)!.data;
      for (let h = 0; h < H; h++) {
        if (want && !want.has(`${l}.${h}`)) continue;
        for (let b = 0; b < rows.length; b++) sums[l]![h]! += headSimilarityScore(t.subarray(((b * H + h) * P) * P, ((b * H + h + 1) * P) * P), dets[b]!, P, opts);
      }
    });
    opts.onProgress?.(Math.min(B, b0 + HEAD_SCORE_BATCH), B);
  }
  return names.map((_, l) => Array.from({ length: H }, (_, h) => (want && !want.has(`${l}.${h}`) ? -1 : sums[l]![h]! / B)));
}

/** Deterministic uniform integers in [lo, hi) (mulberry32), for reproducible random tokens. */
export function randomInts(n: number, lo: number, hi: number, seed: number): number[] {
  const u = mulberry32(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(lo + Math.floor(u() * (hi - lo)));
  return out;
}

export interface RepeatedTokensOptions {
  /** Length of the random half (Main_Demo: 50). */
  seqLen?: number;
  /** Sequences (Main_Demo: 10). */
  batch?: number;
  /** Token ids are drawn uniformly from [lo, hi) (Main_Demo: 1000..10000 for GPT-2); default the whole vocabulary minus BOS. */
  tokenRange?: [number, number];
  /** Prepend BOS (ARENA's generate_repeated_tokens does; Main_Demo does not). */
  prependBos?: boolean;
  seed?: number;
}

/** [batch, (bos) + 2 seq_len]: random tokens followed by the same tokens again. */
export function repeatedRandomTokens(model: HookedTransformer, opts: RepeatedTokensOptions = {}): number[][] {
  const cfg = model.cfg;
  const seqLen = opts.seqLen ?? 50;
  const batch = opts.batch ?? 10;
  const bos = opts.prependBos ? cfg.bos_token_id ?? 0 : null;
  const [lo, hi] = opts.tokenRange ?? (cfg.d_vocab > 10000 ? [1000, 10000] : [bos === 0 || cfg.bos_token_id === 0 ? 1 : 0, cfg.d_vocab]);
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && 0 <= lo && lo < hi && hi <= cfg.d_vocab)) throw new Error(`tokenRange [${lo}, ${hi}) must lie in [0, ${cfg.d_vocab}]`);
  const len = 2 * seqLen + (bos === null ? 0 : 1);
  if (seqLen < 2 || len > cfg.n_ctx) throw new Error(`repeated tokens need 2 <= 2 x seqLen (+1 BOS) <= n_ctx = ${cfg.n_ctx}; got seqLen ${seqLen}`);
  const flat = randomInts(batch * seqLen, lo, hi, opts.seed ?? 0);
  return Array.from({ length: batch }, (_, b) => {
    const half = flat.slice(b * seqLen, (b + 1) * seqLen);
    return bos === null ? [...half, ...half] : [bos, ...half, ...half];
  });
}

export interface HeadScores {
  /** The repeated random tokens scored, [batch, pos]. */
  tokens: number[][];
  seqLen: number;
  /** Main_Demo's induction score: mean over batch and stripe of pattern.diagonal(offset = 1 - seq_len). [layer][head] */
  inductionStripe: number[][];
  /** head_detector scores on the same tokens, [layer][head] per kind. */
  detector: Record<HeadKind, number[][]>;
  /** Mean loss at each position predicting the next token ([2 seq_len (+1) - 1]); low in the second half when induction works. */
  lossByPosition: number[];
}

/**
 * Previous-token, duplicate-token and induction scores of every head on repeated random tokens,
 * as Main_Demo's induction section and head_detector do.
 */
export async function repeatedTokenHeadScores(model: HookedTransformer, opts: RepeatedTokensOptions & SimilarityOptions & ChunkOptions = {}): Promise<HeadScores> {
  const cfg = model.cfg;
  const tokens = repeatedRandomTokens(model, opts);
  const seqLen = opts.seqLen ?? 50;
  const [B, P] = [tokens.length, tokens[0]!.length];
  const names = Array.from({ length: cfg.n_layers }, (_, l) => `blocks.${l}.attn.hook_pattern` as HookName);
  const H = cfg.n_heads;
  const off = seqLen - 1; // key = query - (seq_len - 1)
  // Sums over the sequences, accumulated chunk by chunk in sequence order (the same sums one
  // batch gives): [layer][head], per detector kind, and the loss at each position.
  const stripe = names.map(() => new Float64Array(H));
  const det = Object.fromEntries(HEAD_KINDS.map((k) => [k, names.map(() => new Float64Array(H))])) as Record<HeadKind, Float64Array[]>;
  const lossSum = new Float64Array(P - 1);
  for (let b0 = 0; b0 < B; b0 += HEAD_SCORE_BATCH) {
    opts.signal?.throwIfAborted();
    const rows = tokens.slice(b0, b0 + HEAD_SCORE_BATCH);
    const n = rows.length;
    const r = await model.run(rows, { names });
    names.forEach((name, l) => {
      const t = r.cache.get(name)!.data; // [batch, head, query_pos, key_pos]
      for (let h = 0; h < H; h++) {
        for (let b = 0; b < n; b++) for (let q = off; q < P; q++) stripe[l]![h]! += t[((b * H + h) * P + q) * P + q - off]!;
      }
      for (const kind of HEAD_KINDS) {
        const dets = rows.map((row) => detectionPattern(kind, row));
        for (let h = 0; h < H; h++) {
          for (let b = 0; b < n; b++) det[kind][l]![h]! += headSimilarityScore(t.subarray((b * H + h) * P * P, (b * H + h + 1) * P * P), dets[b]!, P, opts);
        }
      }
    });
    const logits = r.logits!;
    const V = logits.dims[2]!;
    for (let p = 0; p < P - 1; p++) {
      for (let b = 0; b < n; b++) {
        const row = logits.data.subarray((b * P + p) * V, (b * P + p + 1) * V);
        let m = -Infinity;
        for (const x of row) if (x > m) m = x;
        let z = 0;
        for (const x of row) z += Math.exp(x - m);
        lossSum[p]! += m + Math.log(z) - row[rows[b]![p + 1]!]!;
      }
    }
    opts.onProgress?.(Math.min(B, b0 + HEAD_SCORE_BATCH), B);
  }
  const cnt = B * (P - off);
  const inductionStripe = stripe.map((v) => Array.from(v, (x) => x / cnt));
  const detector = Object.fromEntries(HEAD_KINDS.map((k) => [k, det[k].map((v) => Array.from(v, (x) => x / B))])) as Record<HeadKind, number[][]>;
  const lossByPosition = Array.from(lossSum, (x) => x / B);
  return { tokens, seqLen, inductionStripe, detector, lossByPosition };
}
