/**
 * Basic analyses on logits and activation caches, with TransformerLens's definitions:
 * loss (lm_cross_entropy_loss), logit difference, direct logit attribution per head and per
 * layer, the logit lens, the normalised patching metric, and test_prompt-style top-k / rank.
 *
 * The DLA and logit-lens definitions are TransformerLens 3's (checked against its own outputs in
 * test/fixtures/<oracle fixture>/expected.json, fields head_dla, layer_dla, logit_lens, for all
 * three processing modes):
 *   - only the last position (pos_slice -1) of every prompt is used;
 *   - DLA: each component is centred and divided by the *cached* final LayerNorm scale
 *     (ln_final.hook_scale at that position), i.e. apply_ln_to_stack with layer = n_layers; no
 *     LN weight / bias and no b_U are added;
 *   - the logit lens re-normalises each accumulated stream with its own statistics and applies
 *     ln_final (accumulated_resid(apply_ln=True) at the last layer, TransformerLens 3);
 *   - the direction is W_U[:, correct] - W_U[:, wrong] of the params the cache came with (in
 *     'none' that is the raw W_U, without ln_final.w folded in);
 *   - the attribution is averaged over the batch (prompts).
 */
import { f32, type F32, type Tensor } from '../tensor/tensor.js';
import { answerResidualDirections, splitAnswers, type ActivationCache } from '../cache/activationCache.js';

/** A [batch, pos] grid of token ids, as nested arrays or an int32 tensor. */
export type TokenGrid = readonly (readonly number[])[] | Tensor<'int32'>;
/** [batch, 2]: [correct, wrong] token ids per prompt. */
export type AnswerPairs = readonly (readonly number[])[];

function gridOf(tokens: TokenGrid): { ids: ArrayLike<number>; batch: number; pos: number } {
  if (Array.isArray(tokens)) {
    const rows = tokens as readonly (readonly number[])[];
    const pos = rows[0]?.length ?? 0;
    const ids: number[] = [];
    rows.forEach((r, i) => {
      if (!Array.isArray(r) || r.length !== pos) throw new Error(`tokens[${i}] must be an array of ${pos} token ids`);
      ids.push(...r);
    });
    return { ids, batch: rows.length, pos };
  }
  const t = tokens as Tensor<'int32'>;
  if (t.dims.length !== 2) throw new Error(`tokens must be [batch, pos], got [${t.dims.join(', ')}]`);
  return { ids: t.data, batch: t.dims[0]!, pos: t.dims[1]! };
}

function checkLogits(logits: F32, fn: string): { batch: number; pos: number; V: number } {
  if (logits.dims.length !== 3) throw new Error(`${fn}: logits must be [batch, pos, d_vocab], got [${logits.dims.join(', ')}]`);
  return { batch: logits.dims[0]!, pos: logits.dims[1]!, V: logits.dims[2]! };
}

/** log(sum(exp(row))) of logits[o .. o + V), stable. */
function logSumExp(x: Float32Array, o: number, V: number): number {
  let m = -Infinity;
  for (let i = 0; i < V; i++) if (x[o + i]! > m) m = x[o + i]!;
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(x[o + i]! - m);
  return m + Math.log(s);
}

/**
 * TransformerLens's lm_cross_entropy_loss: position t predicts token t + 1, so the loss at
 * (b, t) is -log_softmax(logits[b, t])[tokens[b, t + 1]] for t in 0..pos-2.
 *   logits [batch, pos, d_vocab], tokens [batch, pos]
 * Returns the mean over all batch x (pos - 1) predictions, or with per_token the
 * per-prediction losses [batch, pos - 1].
 */
export function loss(logits: F32, tokens: TokenGrid, opts?: { per_token?: false }): number;
export function loss(logits: F32, tokens: TokenGrid, opts: { per_token: true }): F32;
export function loss(logits: F32, tokens: TokenGrid, opts: { per_token?: boolean } = {}): number | F32 {
  const { batch, pos, V } = checkLogits(logits, 'loss');
  const g = gridOf(tokens);
  if (g.batch !== batch || g.pos !== pos) {
    throw new Error(`loss: tokens [${g.batch}, ${g.pos}] do not match logits [${batch}, ${pos}, ${V}]`);
  }
  if (pos < 2) throw new Error('loss: needs at least 2 positions (position t predicts token t + 1)');
  const per = new Float32Array(batch * (pos - 1));
  let total = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < pos - 1; t++) {
      const next = g.ids[b * pos + t + 1]!;
      if (!Number.isInteger(next) || next < 0 || next >= V) throw new Error(`loss: token ${next} at [${b}, ${t + 1}] is not in 0..${V - 1}`);
      const o = (b * pos + t) * V;
      const l = logSumExp(logits.data, o, V) - logits.data[o + next]!;
      per[b * (pos - 1) + t] = l;
      total += l;
    }
  }
  if (opts.per_token) return f32([batch, pos - 1], per, ['batch', 'pos']);
  return total / (batch * (pos - 1));
}

function resolvePos(pos: number, n: number, fn: string): number {
  if (!Number.isInteger(pos)) throw new Error(`${fn}: pos must be an integer, got ${pos}`);
  const p = pos < 0 ? pos + n : pos;
  if (p < 0 || p >= n) throw new Error(`${fn}: pos ${pos} is out of range for ${n} positions`);
  return p;
}

/**
 * Per-prompt logit difference at position `pos` (default -1, the last):
 * logits[b, pos, correct_b] - logits[b, pos, wrong_b].   logits [batch, pos, d_vocab],
 * answers [batch, 2] -> [batch].
 */
export function logitDiffs(logits: F32, answers: AnswerPairs, pos = -1): number[] {
  const { batch, pos: P, V } = checkLogits(logits, 'logitDiff');
  if (answers.length !== batch) throw new Error(`logitDiff: ${answers.length} answer pairs for a batch of ${batch}`);
  const p = resolvePos(pos, P, 'logitDiff');
  const { correct, wrong } = splitAnswers(answers);
  return correct.map((c, b) => {
    const w = wrong[b]!;
    for (const t of [c, w]) if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`logitDiff: answer token ${t} is not in 0..${V - 1}`);
    const o = (b * P + p) * V;
    return logits.data[o + c]! - logits.data[o + w]!;
  });
}

/** Mean over the batch of logitDiffs: the usual IOI-style metric. */
export function logitDiff(logits: F32, answers: AnswerPairs, pos = -1): number {
  const d = logitDiffs(logits, answers, pos);
  return d.reduce((a, b) => a + b, 0) / d.length;
}

/** Mean over axis 1 of a [component, batch] tensor -> one number per component. */
function meanOverBatch(t: F32): number[] {
  // A cache without a batch axis gives [component]: one prompt, nothing to average.
  if (t.dims.length === 1) return Array.from(t.data);
  if (t.dims.length !== 2) throw new Error(`expected [component, batch], got [${t.dims.join(', ')}]`);
  const C = t.dims[0]!;
  const B = t.dims[1]!;
  const out: number[] = [];
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let b = 0; b < B; b++) s += t.data[c * B + b]!;
    out.push(s / B);
  }
  return out;
}

function checkAnswers(cache: ActivationCache, answers: AnswerPairs, fn: string): { correct: number[]; wrong: number[] } {
  const pairs = splitAnswers(answers);
  const embed = cache.has('hook_embed') ? cache.get('hook_embed') : cache.get('blocks.0.hook_resid_pre');
  const batch = cache.hasBatchDim ? embed.dims[0]! : 1;
  if (cache.hasBatchDim && pairs.correct.length !== batch) throw new Error(`${fn}: ${pairs.correct.length} answer pairs for a batch of ${batch}`);
  return pairs;
}

/**
 * Direct logit attribution of every head to the logit difference, [n_layers][n_heads]:
 *   head_dla[l][h] = mean_b ((r - mean(r)) / ln_final.hook_scale[b, -1]) . (W_U[:, correct_b] - W_U[:, wrong_b])
 * with r = blocks.l.attn.hook_result[b, -1, h] (or z @ W_O). That is
 * cache.logitAttrs(cache.stackHeadResults(-1, {pos_slice: -1}).stack, correct, wrong, {pos_slice: -1})
 * averaged over the batch. b_O is not a head's (it is in the 'bias' of getFullResidDecomposition).
 */
export function headDla(cache: ActivationCache, answers: AnswerPairs): number[][] {
  const { correct, wrong } = checkAnswers(cache, answers, 'headDla');
  const { stack } = cache.stackHeadResults(-1, { pos_slice: -1 });
  const per = meanOverBatch(cache.logitAttrs(stack, correct, wrong, { pos_slice: -1 }));
  const H = cache.cfg.n_heads;
  return Array.from({ length: cache.cfg.n_layers }, (_, l) => per.slice(l * H, (l + 1) * H));
}

/**
 * Labels of layerDla's components: TransformerLens decompose_resid labels
 * ['embed', 'pos_embed', '0_attn_out', '0_mlp_out', ..., '{n-1}_attn_out', '{n-1}_mlp_out']
 * (2 + 2 n_layers = 6 for the 2-layer fixture; no mlp_out for attention-only models).
 */
export function layerDlaLabels(cache: ActivationCache): string[] {
  return cache.decomposeResid(-1, { pos_slice: -1 }).labels;
}

/**
 * Direct logit attribution of each residual-stream component to the logit difference, one
 * number per layerDlaLabels entry:
 *   layer_dla[c] = mean_b ((x_c - mean(x_c)) / ln_final.hook_scale[b, -1]) . (W_U[:, correct_b] - W_U[:, wrong_b])
 * with x_c = hook_embed, hook_pos_embed, blocks.l.hook_attn_out, blocks.l.hook_mlp_out at
 * [b, -1] (cache.decomposeResid(-1, {pos_slice: -1}) through logitAttrs). The attn/mlp outputs
 * include their biases, so the values sum to the mean logit difference minus the b_U term
 * (exactly so in a folded model).
 */
export function layerDla(cache: ActivationCache, answers: AnswerPairs): number[] {
  const { correct, wrong } = checkAnswers(cache, answers, 'layerDla');
  const { stack } = cache.decomposeResid(-1, { pos_slice: -1 });
  return meanOverBatch(cache.logitAttrs(stack, correct, wrong, { pos_slice: -1 }));
}

/**
 * Logit lens on the logit difference, as TransformerLens 3's HookedTransformer computes it: for
 * every accumulated residual stream (cache.accumulatedResid(-1, {incl_mid, pos_slice: -1});
 * labels '0_pre', '0_mid', '1_pre', '1_mid', ..., 'final_post'; no '_mid' labels for an
 * attention-only model), ln_final applied with each stream's *own* statistics (its
 * accumulated_resid(apply_ln=True) at the last layer recomputes them; ln_final's w and b are
 * applied when the model has them) and dotted with W_U[:, correct] - W_U[:, wrong], averaged over
 * the batch:
 *   values[i] = mean_b ln_final(x_i[b, -1]) . (W_U[:, correct_b] - W_U[:, wrong_b])
 * The 'final_post' value is the logit difference minus (b_U[correct] - b_U[wrong]).
 */
export function logitLens(cache: ActivationCache, answers: AnswerPairs): { labels: string[]; values: number[] } {
  checkAnswers(cache, answers, 'logitLens');
  // An attention-only model has no resid_mid (its blocks are resid_pre + attn_out), nor does one
  // whose attention and MLP run in parallel (GPT-NeoX, GPT-J).
  const { stack, labels } = cache.accumulatedResid(-1, { incl_mid: !cache.cfg.attn_only && !cache.cfg.parallel_attn_mlp, pos_slice: -1, apply_ln: true, recompute_ln: true });
  return { labels, values: meanOverBatch(projectRows(stack, answerResidualDirections(cache.params, answers))) };
}

/**
 * stack [component, batch, d_model] (or [component, d_model] without a batch axis) dotted row by
 * row with directions [batch, d_model] -> [component, batch] (or [component]).
 */
export function projectRows(stack: F32, dirs: F32): F32 {
  const d = stack.dims[stack.dims.length - 1]!;
  const C = stack.dims[0]!;
  const B = stack.data.length / (C * d);
  if (dirs.dims[dirs.dims.length - 1] !== d || dirs.data.length !== B * d) {
    throw new Error(`projectRows: directions [${dirs.dims.join(', ')}] do not match the stack's rows [${stack.dims.join(', ')}]`);
  }
  const out = new Float32Array(C * B);
  for (let c = 0; c < C; c++) {
    for (let b = 0; b < B; b++) {
      let s = 0;
      const o = (c * B + b) * d;
      for (let i = 0; i < d; i++) s += stack.data[o + i]! * dirs.data[b * d + i]!;
      out[c * B + b] = s;
    }
  }
  return f32(stack.dims.length === 2 ? [C] : [C, B], out);
}

/**
 * Activation-patching metric normalised so the clean run scores 1 and the corrupted run 0:
 * (patched - corrupted) / (clean - corrupted). Throws when clean equals corrupted (the metric
 * is undefined: the corruption changed nothing to recover).
 */
export function normalizedPatchingMetric(patched: number, clean: number, corrupted: number): number {
  const span = clean - corrupted;
  if (span === 0 || !Number.isFinite(span)) {
    throw new Error(`normalizedPatchingMetric: clean (${clean}) and corrupted (${corrupted}) metrics must differ and be finite`);
  }
  return (patched - corrupted) / span;
}

/** One row of logits [d_vocab], as a view (no copy) into logits [batch, pos, d_vocab]; pos may be negative. */
export function logitsAt(logits: F32, batch: number, pos: number): F32 {
  const { batch: B, pos: P, V } = checkLogits(logits, 'logitsAt');
  if (!Number.isInteger(batch) || batch < 0 || batch >= B) throw new Error(`logitsAt: batch ${batch} is out of range for ${B}`);
  const p = resolvePos(pos, P, 'logitsAt');
  const o = (batch * P + p) * V;
  return f32([V], logits.data.subarray(o, o + V), ['d_vocab']);
}

export interface TopToken {
  token: number;
  logit: number;
  /** softmax over the whole vocabulary. */
  prob: number;
}

function vocabRow(logits: F32 | Float32Array | readonly number[], fn: string): ArrayLike<number> {
  if (logits instanceof Float32Array || Array.isArray(logits)) return logits as ArrayLike<number>;
  const t = logits as F32;
  if (t.dims.length !== 1) throw new Error(`${fn}: logits must be [d_vocab] (use logitsAt to pick a position), got [${t.dims.join(', ')}]`);
  return t.data;
}

/**
 * test_prompt-style top k of one position's logits [d_vocab]: the k largest logits, highest
 * first (ties: lower token id first), with softmax probabilities over the full vocabulary.
 * O(d_vocab * k) with a small sorted buffer, no sort of the whole vocabulary.
 */
export function topK(logits: F32 | Float32Array | readonly number[], k: number): TopToken[] {
  const x = vocabRow(logits, 'topK');
  const V = x.length;
  if (!Number.isInteger(k) || k < 0) throw new Error(`topK: k must be a non-negative integer, got ${k}`);
  const kk = Math.min(k, V);
  const ids: number[] = [];
  for (let i = 0; i < V; i++) {
    const v = x[i]!;
    if (ids.length === kk && (kk === 0 || !(v > x[ids[kk - 1]!]!))) continue;
    // Insert after every entry >= v, so earlier (lower) ids win ties.
    let j = ids.length;
    while (j > 0 && x[ids[j - 1]!]! < v) j--;
    ids.splice(j, 0, i);
    if (ids.length > kk) ids.pop();
  }
  let m = -Infinity;
  for (let i = 0; i < V; i++) if (x[i]! > m) m = x[i]!;
  let z = 0;
  for (let i = 0; i < V; i++) z += Math.exp(x[i]! - m);
  return ids.map((t) => ({ token: t, logit: x[t]!, prob: Math.exp(x[t]! - m) / z }));
}

/** 0-based rank of `token` among logits [d_vocab]: how many logits are strictly larger (test_prompt's "Rank"). */
export function rankOf(logits: F32 | Float32Array | readonly number[], token: number): number {
  const x = vocabRow(logits, 'rankOf');
  if (!Number.isInteger(token) || token < 0 || token >= x.length) throw new Error(`rankOf: token ${token} is not in 0..${x.length - 1}`);
  const v = x[token]!;
  let r = 0;
  for (let i = 0; i < x.length; i++) if (x[i]! > v) r++;
  return r;
}
