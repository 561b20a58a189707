/**
 * Training tasks: each fills a batch of token ids [batch, pos] and the target id that each
 * position's logits should predict [batch, pos] (IGNORE where that position has no loss).
 *
 *  - previous_token (the no-positional-embedding experiment): tokens uniform in [1, d_vocab) with BOS 0 at position 0; the
 *    logits at position p predict token p-1 (the original notebook's logits[:, 1:] vs tokens[:, :-1]).
 *  - induction: BOS 0, then a random sequence repeated twice; next-token prediction, optionally
 *    scored only on the repeated half (where induction heads are the only way to do well).
 *  - text: next-token prediction on random windows of a tokenized text file (GPT-2 BPE or
 *    one-token-per-character), with the tokenizer's BOS in front when it has one.
 *
 * All randomness comes from the Rng passed in, so a run is a function of its seed.
 */
import * as fs from 'node:fs';
import { createCharTokenizer, createGpt2Tokenizer, type Tokenizer } from '../model/tokenizer.js';
import type { Rng } from './rng.js';

/** Target id meaning "no loss at this position" (torch's ignore_index default). */
export const IGNORE = -100;

export type TaskSpec =
  | { kind: 'previous_token'; bos_token_id?: number }
  | { kind: 'induction'; bos_token_id?: number; loss_on?: 'all' | 'repeated' }
  | { kind: 'text'; file: string; tokenizer: 'gpt2' | 'char' };

export interface Batch {
  /** [batch, pos] token ids */
  tokens: Int32Array;
  /** [batch, pos] target ids, IGNORE where no loss */
  targets: Int32Array;
}

export interface Task {
  readonly spec: TaskSpec;
  /** Vocabulary the model must have (from the tokenizer for text tasks), or null if any. */
  readonly vocabSize: number | null;
  /** The tokenizer, for text tasks (its vocabulary goes into the checkpoint). */
  readonly tokenizer: Tokenizer | null;
  /** Characters of a char-level vocabulary (checkpointed as vocab.json {"chars": ...}). */
  readonly chars: string | null;
  fill(rng: Rng, batch: number, pos: number, dVocab: number, out: Batch): void;
}

function prevToken(spec: Extract<TaskSpec, { kind: 'previous_token' }>): Task {
  const bos = spec.bos_token_id ?? 0;
  return {
    spec, vocabSize: null, tokenizer: null, chars: null,
    fill(rng, B, P, V, out) {
      const { tokens, targets } = out;
      for (let b = 0; b < B; b++) {
        const row = b * P;
        // torch.randint(1, d_vocab, ...) then x[:, 0] = BOS: ids 1..V-1, position 0 is BOS.
        tokens[row] = bos;
        for (let p = 1; p < P; p++) tokens[row + p] = rng.int(1, V);
        targets[row] = IGNORE;
        for (let p = 1; p < P; p++) targets[row + p] = tokens[row + p - 1]!;
      }
    },
  };
}

function induction(spec: Extract<TaskSpec, { kind: 'induction' }>): Task {
  const bos = spec.bos_token_id ?? 0;
  const lossOn = spec.loss_on ?? 'all';
  return {
    spec, vocabSize: null, tokenizer: null, chars: null,
    fill(rng, B, P, V, out) {
      const { tokens, targets } = out;
      const L = Math.floor((P - 1) / 2);
      if (L < 1) throw new Error(`the induction task needs n_ctx >= 3, got ${P}`);
      for (let b = 0; b < B; b++) {
        const row = b * P;
        tokens[row] = bos;
        for (let i = 0; i < L; i++) {
          const t = rng.int(1, V);
          tokens[row + 1 + i] = t;
          tokens[row + 1 + L + i] = t;
        }
        // An odd leftover position gets a fresh random token.
        for (let p = 1 + 2 * L; p < P; p++) tokens[row + p] = rng.int(1, V);
        for (let p = 0; p < P; p++) {
          // Next-token targets; 'repeated' scores only predictions of the second copy's tokens 2..L
          // (the first repeated token cannot be predicted from context).
          const scored = p < P - 1 && (lossOn === 'all' || (p >= L + 1 && p < 2 * L));
          targets[row + p] = scored ? tokens[row + p + 1]! : IGNORE;
        }
      }
    },
  };
}

function text(spec: Extract<TaskSpec, { kind: 'text' }>): Task {
  let content: string;
  try {
    content = fs.readFileSync(spec.file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the training text ${spec.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let tok: Tokenizer;
  let chars: string | null = null;
  if (spec.tokenizer === 'char') {
    chars = [...new Set(Array.from(content))].sort().join('');
    tok = createCharTokenizer({ chars }, spec.file);
  } else {
    tok = createGpt2Tokenizer();
  }
  const ids = Int32Array.from(tok.encode(content));
  const bos = tok.bosTokenId;
  return {
    spec, vocabSize: tok.vocabSize, tokenizer: tok, chars,
    fill(rng, B, P, V, out) {
      if (tok.vocabSize !== V) throw new Error(`the ${spec.tokenizer} tokenizer has ${tok.vocabSize} tokens but the model's d_vocab is ${V}`);
      const body = bos === null ? P : P - 1; // tokens taken from the text per row
      // One extra token past the window is the last position's target.
      if (ids.length < body + 1) throw new Error(`${spec.file} has ${ids.length} tokens; it needs at least ${body + 1} for n_ctx = ${P}`);
      const { tokens, targets } = out;
      for (let b = 0; b < B; b++) {
        const row = b * P;
        const start = rng.int(0, ids.length - body);
        let p = 0;
        if (bos !== null) tokens[row + p++] = bos;
        for (let i = 0; i < body; i++) tokens[row + p++] = ids[start + i]!;
        for (let q = 0; q < P - 1; q++) targets[row + q] = tokens[row + q + 1]!;
        targets[row + P - 1] = start + body < ids.length ? ids[start + body]! : IGNORE;
      }
    },
  };
}

export function makeTask(spec: TaskSpec): Task {
  switch (spec.kind) {
    case 'previous_token': return prevToken(spec);
    case 'induction': return induction(spec);
    case 'text': return text(spec);
  }
}
