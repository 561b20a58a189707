/**
 * Tokenizers with TransformerLens semantics (HookedTransformer.to_tokens / to_str_tokens /
 * to_single_token / to_single_str_token), for the three kinds of model MechLens loads:
 *
 *  - 'gpt2-bpe': GPT-2's byte-level BPE. The ranks are js-tiktoken's `gpt2` table (the same
 *    table as r50k_base), which is byte-identical to OpenAI's/Hugging Face's GPT-2 tokenizer for
 *    ordinary text ("Hello world" -> [15496, 995]). BOS = EOS = PAD = 50256 ('<|endoftext|>'),
 *    because GPT-2 has no other special token and TransformerLens pads GPT-2 with EOS.
 *  - 'char': one token per character, from a `vocab.json` of the form {"chars": "..."}; the id
 *    of a character is its index (in code points) in `chars`.
 *  - 'ids': for toy models whose tokens are plain integers (no text vocabulary at all).
 *
 * Pure TypeScript: no `vscode`, usable from the CLI, tests and the extension alike.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tiktoken } from 'js-tiktoken/lite';
// The ranks module is ~0.5 MB of base64 text and costs a few ms to import; building the encoder
// from it costs ~200 ms, which is why that step is deferred to the first GPT-2 call.
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';

export { TokenizerError, type Tokenizer, type TokenizerKind } from './tokenizerBase.js';
import { TokenizerError, type Tokenizer } from './tokenizerBase.js';
import { loadHfTokenizer } from './hfTokenizer.js';

export const GPT2_VOCAB_SIZE = 50257;
export const GPT2_EOT_ID = 50256;
export const GPT2_EOT = '<|endoftext|>';

function checkId(tok: Pick<Tokenizer, 'kind' | 'vocabSize'>, id: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= tok.vocabSize) {
    throw new TokenizerError(
      `token id ${String(id)} is out of range for this ${tok.kind} tokenizer (valid ids are 0..${tok.vocabSize - 1})`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// GPT-2 BPE

/** Shared by every GPT-2 tokenizer instance: the rank maps are ~50k entries and immutable. */
let gpt2Encoder: Tiktoken | null = null;

function getGpt2Encoder(): Tiktoken {
  gpt2Encoder ??= new Tiktoken(gpt2Ranks);
  return gpt2Encoder;
}

/** True once the GPT-2 rank tables have been built (lets callers report or pre-warm the cost). */
export function isGpt2Loaded(): boolean {
  return gpt2Encoder !== null;
}

/**
 * GPT-2's tokenizer. Creating it is free; the ~200 ms of building the rank tables happens on the
 * first encode/decode (call `encode('')` to warm it up in the background).
 */
export function createGpt2Tokenizer(): Tokenizer {
  const tok: Tokenizer = {
    kind: 'gpt2-bpe',
    vocabSize: GPT2_VOCAB_SIZE,
    bosTokenId: GPT2_EOT_ID,
    eosTokenId: GPT2_EOT_ID,
    padTokenId: GPT2_EOT_ID,
    // 'all': '<|endoftext|>' written in a prompt becomes token 50256, as Hugging Face's GPT-2
    // tokenizer (and therefore TransformerLens, which prepends BOS as that very text) does.
    encode: (text) => getGpt2Encoder().encode(text, 'all'),
    decode: (ids) => {
      // js-tiktoken silently drops unknown ids; an out-of-range id is a bug worth surfacing.
      for (const id of ids) checkId(tok, id);
      return getGpt2Encoder().decode(ids);
    },
    // A token that is only part of a multi-byte character decodes to U+FFFD, exactly like
    // HF's per-token decode (errors='replace') that TransformerLens's to_str_tokens shows.
    idToString: (id) => tok.decode([id]),
  };
  return tok;
}

// ---------------------------------------------------------------------------------------------
// Character vocabulary

/** The `vocab.json` of a character-level model. */
export interface CharVocab {
  /** The vocabulary: token id = index (in code points) of the character in this string. */
  chars: string;
  /** Optional BOS id: either a character's index, or chars.length for an extra BOS token. */
  bos_token_id?: number | null;
  /** Text of the extra BOS token (only when bos_token_id === chars.length); default '<|bos|>'. */
  bos_token?: string;
}

export function isCharVocab(v: unknown): v is CharVocab {
  return typeof v === 'object' && v !== null && typeof (v as { chars?: unknown }).chars === 'string';
}

/** Shows a vocabulary string in an error with its newlines/tabs visible and its length bounded. */
function showChars(chars: string): string {
  const shown = JSON.stringify(chars);
  return shown.length > 300 ? `${shown.slice(0, 300)}…" (truncated)` : shown;
}

function codePointLabel(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Character tokenizer. `source` names where the vocabulary came from, for error messages.
 * Characters are code points (not UTF-16 units), like Python's str indexing that wrote `chars`.
 */
export function createCharTokenizer(vocab: CharVocab | string, source = 'vocab.json'): Tokenizer {
  const v: CharVocab = typeof vocab === 'string' ? { chars: vocab } : vocab;
  const chars = Array.from(v.chars);
  if (chars.length === 0) throw new TokenizerError(`${source}: "chars" is empty; a character vocabulary needs at least one character`);
  const idOf = new Map<string, number>();
  chars.forEach((ch, i) => {
    const prev = idOf.get(ch);
    if (prev !== undefined) {
      // Two ids for one character would make encode ambiguous.
      throw new TokenizerError(`${source}: character ${JSON.stringify(ch)} (${codePointLabel(ch)}) appears twice in "chars", at ${prev} and ${i}`);
    }
    idOf.set(ch, i);
  });

  const bos = v.bos_token_id ?? null;
  if (bos !== null && (!Number.isInteger(bos) || bos < 0 || bos > chars.length)) {
    throw new TokenizerError(
      `${source}: bos_token_id must be an integer from 0 to ${chars.length} (a character's index, or ${chars.length} for an extra BOS token), got ${JSON.stringify(bos)}`,
    );
  }
  // A BOS beyond the characters is an extra token with a text of its own; encode recognises that
  // text the way GPT-2 recognises '<|endoftext|>', so decode and encode round-trip.
  const extraBos = bos !== null && bos === chars.length;
  const bosText = extraBos ? (v.bos_token ?? '<|bos|>') : null;
  const bosCps = bosText === null ? [] : Array.from(bosText);
  const vocabSize = extraBos ? chars.length + 1 : chars.length;

  const tok: Tokenizer = {
    kind: 'char',
    vocabSize,
    bosTokenId: bos,
    eosTokenId: null,
    padTokenId: bos,
    encode: (text) => {
      const ids: number[] = [];
      const unknown: string[] = [];
      const cps = Array.from(text);
      for (let i = 0; i < cps.length; i++) {
        if (bos !== null && bosCps.length > 0 && bosCps.every((c, k) => cps[i + k] === c)) {
          ids.push(bos);
          i += bosCps.length - 1;
          continue;
        }
        const ch = cps[i] as string;
        const id = idOf.get(ch);
        if (id === undefined) unknown.push(`${JSON.stringify(ch)} (${codePointLabel(ch)}) at position ${i}`);
        else ids.push(id);
      }
      if (unknown.length > 0) {
        const first = unknown[0] as string;
        const more = unknown.length > 1 ? `; also unknown: ${unknown.slice(1, 11).join(', ')}${unknown.length > 11 ? `, and ${unknown.length - 11} more` : ''}` : '';
        throw new TokenizerError(
          `cannot tokenize: character ${first} is not in this model's vocabulary${more}. ` +
            `Positions count characters from 0. The model's vocabulary is the "chars" string of ${source} ` +
            `(${chars.length} characters): ${showChars(v.chars)}`,
        );
      }
      return ids;
    },
    decode: (ids) => ids.map((id) => tok.idToString(id)).join(''),
    idToString: (id) => {
      checkId(tok, id);
      return id < chars.length ? (chars[id] as string) : (bosText as string);
    },
  };
  return tok;
}

// ---------------------------------------------------------------------------------------------
// Integer ids

/**
 * Tokenizer for toy models whose inputs are integers: text is whitespace/comma-separated ids
 * ("0 7 40" or "7, 40"), and each token shows as its number.
 */
export function createIdsTokenizer(vocabSize: number, opts: { bosTokenId?: number | null } = {}): Tokenizer {
  if (!Number.isInteger(vocabSize) || vocabSize <= 0) throw new TokenizerError(`an ids tokenizer needs a positive integer vocabulary size, got ${vocabSize}`);
  const bos = opts.bosTokenId ?? null;
  if (bos !== null && (!Number.isInteger(bos) || bos < 0 || bos >= vocabSize)) {
    throw new TokenizerError(`bos token id ${bos} is out of range for a vocabulary of ${vocabSize} ids`);
  }
  const tok: Tokenizer = {
    kind: 'ids',
    vocabSize,
    bosTokenId: bos,
    eosTokenId: null,
    padTokenId: bos,
    encode: (text) => {
      const trimmed = text.trim();
      if (trimmed === '') return [];
      return trimmed.split(/[\s,]+/).map((word, i) => {
        const n = /^\d+$/.test(word) ? Number(word) : NaN;
        if (!Number.isSafeInteger(n) || n >= vocabSize) {
          throw new TokenizerError(
            `cannot tokenize: token ${i} (${JSON.stringify(word)}) is not a token id; this model's inputs are whitespace- or comma-separated integers from 0 to ${vocabSize - 1}`,
          );
        }
        return n;
      });
    },
    // Space-separated so that encode(decode(ids)) gives the ids back.
    decode: (ids) => ids.map((id) => tok.idToString(id)).join(' '),
    idToString: (id) => {
      checkId(tok, id);
      return String(id);
    },
  };
  return tok;
}

// ---------------------------------------------------------------------------------------------
// Choosing a tokenizer for a model folder

function readJson(file: string): unknown {
  const text = fs.readFileSync(file, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new TokenizerError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Spot checks that tell GPT-2's vocabulary from another byte-level BPE ('Ġ' is a space). */
const GPT2_SPOT_CHECKS: ReadonlyArray<readonly [string, number]> = [
  ['!', 0],
  ['Hello', 15496],
  ['Ġworld', 995],
  ['ĠMary', 5335],
  [GPT2_EOT, GPT2_EOT_ID],
];

/**
 * Confirms that a Hugging Face tokenizer folder holds GPT-2's BPE, the only BPE we implement.
 * Using GPT-2's ranks for another BPE vocabulary would silently feed the model wrong ids.
 */
function checkGpt2Folder(folder: string): void {
  const tjPath = path.join(folder, 'tokenizer.json');
  let vocab: Record<string, unknown>;
  let size: number;
  let file: string;
  if (fs.existsSync(tjPath)) {
    file = tjPath;
    const tj = readJson(tjPath) as { model?: { type?: unknown; vocab?: unknown }; added_tokens?: unknown };
    if (tj.model?.type !== 'BPE' || typeof tj.model.vocab !== 'object' || tj.model.vocab === null) {
      throw new TokenizerError(`${tjPath}: unsupported tokenizer (model type ${JSON.stringify(tj.model?.type)}); MechLens reads GPT-2's BPE, a {"chars": ...} vocab.json, or integer ids`);
    }
    vocab = tj.model.vocab as Record<string, unknown>;
    const ids = Object.values(vocab).filter((x): x is number => typeof x === 'number');
    if (Array.isArray(tj.added_tokens)) {
      for (const t of tj.added_tokens as { id?: unknown }[]) if (typeof t.id === 'number') ids.push(t.id);
    }
    size = ids.reduce((m, x) => Math.max(m, x + 1), 0);
  } else {
    file = path.join(folder, 'vocab.json');
    const vj = readJson(file);
    if (typeof vj !== 'object' || vj === null || Array.isArray(vj)) {
      throw new TokenizerError(`${file}: expected {"chars": "..."} or a token -> id map`);
    }
    vocab = vj as Record<string, unknown>;
    size = Object.values(vocab).reduce<number>((m, x) => (typeof x === 'number' ? Math.max(m, x + 1) : m), 0);
  }
  const wrong = GPT2_SPOT_CHECKS.filter(([t, id]) => vocab[t] !== id);
  if (wrong.length > 0 || size !== GPT2_VOCAB_SIZE) {
    throw new TokenizerError(
      `${file}: this BPE vocabulary (${size} tokens) is not GPT-2's ` +
        `(${wrong.length > 0 ? `e.g. ${JSON.stringify(wrong[0]?.[0])} is not id ${wrong[0]?.[1]}` : `GPT-2 has ${GPT2_VOCAB_SIZE} tokens`}); ` +
        `MechLens implements GPT-2's BPE only, plus {"chars": ...} vocabularies and integer ids`,
    );
  }
}

/** A vocab.json + merges.txt folder whose tokenizer_config.json names a class we rebuild (Qwen2Tokenizer). */
function isRebuildableVocabMerges(folder: string): boolean {
  const cfgPath = path.join(folder, 'tokenizer_config.json');
  if (!fs.existsSync(cfgPath)) return false;
  const cls = (readJson(cfgPath) as { tokenizer_class?: unknown }).tokenizer_class;
  return cls === 'Qwen2Tokenizer' || cls === 'Qwen2TokenizerFast';
}

/** True when a tokenizer.json holds GPT-2's vocabulary (then js-tiktoken runs it, as before). */
function isGpt2TokenizerJson(file: string): boolean {
  const tj = readJson(file) as { model?: { type?: unknown; vocab?: unknown }; added_tokens?: unknown };
  if (tj.model?.type !== 'BPE' || typeof tj.model.vocab !== 'object' || tj.model.vocab === null) return false;
  const vocab = tj.model.vocab as Record<string, unknown>;
  const ids = Object.values(vocab).filter((x): x is number => typeof x === 'number');
  if (Array.isArray(tj.added_tokens)) for (const t of tj.added_tokens as { id?: unknown }[]) if (typeof t.id === 'number') ids.push(t.id);
  const size = ids.reduce((m, x) => Math.max(m, x + 1), 0);
  return size === GPT2_VOCAB_SIZE && GPT2_SPOT_CHECKS.every(([t, id]) => t === GPT2_EOT || vocab[t] === id);
}

/**
 * Picks the tokenizer for a model folder:
 *  1. `vocab.json` with a "chars" string -> character tokenizer (BOS only from vocab.json's
 *     bos_token_id: HF configs carry GPT-2's default bos_token_id 50256 even for tiny vocabularies);
 *  2. a `tokenizer.json` that is not GPT-2's -> @huggingface/tokenizers with TransformerLens's BOS
 *     rules for cfg.architecture (hfTokenizer.ts);
 *  3. a GPT-2 style folder (`tokenizer.json`, or `vocab.json` + `merges.txt`), checked to be GPT-2's
 *     vocabulary, or no tokenizer files and d_vocab = 50257 -> GPT-2 BPE;
 *  4. otherwise integer ids 0..d_vocab-1, with BOS = cfg.bos_token_id when that is a valid id
 *     (ignored otherwise, for the same HF-default reason).
 * Throws when the tokenizer's size differs from d_vocab: such a tokenizer belongs to another model.
 */
export function loadTokenizerForModel(
  folder: string,
  cfg: { d_vocab: number; bos_token_id?: number | null; architecture?: string; original_architecture?: string },
): Tokenizer {
  if (!Number.isInteger(cfg.d_vocab) || cfg.d_vocab <= 0) {
    throw new TokenizerError(`d_vocab must be a positive integer, got ${JSON.stringify(cfg.d_vocab)}`);
  }
  const vocabPath = path.join(folder, 'vocab.json');
  const hasVocab = fs.existsSync(vocabPath);
  const vocabJson = hasVocab ? readJson(vocabPath) : undefined;

  let tok: Tokenizer;
  let source: string;
  if (isCharVocab(vocabJson)) {
    tok = createCharTokenizer(vocabJson, vocabPath);
    source = vocabPath;
  } else if (fs.existsSync(path.join(folder, 'tokenizer.json')) && !isGpt2TokenizerJson(path.join(folder, 'tokenizer.json'))) {
    // Any other tokenizer.json (Pythia, Llama, Phi, OLMo, ...): @huggingface/tokenizers runs it.
    // A model's embedding is often padded beyond the tokenizer (Pythia 50304 vs 50277 tokens).
    const hf = loadHfTokenizer(folder, { architecture: cfg.architecture ?? cfg.original_architecture });
    if (hf.vocabSize > cfg.d_vocab) {
      throw new TokenizerError(
        `tokenizer/model mismatch: ${hf.file} has ids up to ${hf.vocabSize - 1} but the model's d_vocab is ${cfg.d_vocab}; the tokenizer files in ${folder} do not belong to these weights`,
      );
    }
    return hf;
  } else if (!fs.existsSync(path.join(folder, 'tokenizer.json')) && hasVocab && fs.existsSync(path.join(folder, 'merges.txt')) && isRebuildableVocabMerges(folder)) {
    // vocab.json + merges.txt of another BPE (Qwen2): the tokenizer.json its class would build.
    const hf = loadHfTokenizer(folder, { architecture: cfg.architecture ?? cfg.original_architecture });
    if (hf.vocabSize > cfg.d_vocab) {
      throw new TokenizerError(
        `tokenizer/model mismatch: ${hf.file} has ids up to ${hf.vocabSize - 1} but the model's d_vocab is ${cfg.d_vocab}; the tokenizer files in ${folder} do not belong to these weights`,
      );
    }
    return hf;
  } else if (fs.existsSync(path.join(folder, 'tokenizer.json')) || hasVocab) {
    // GPT-2's own vocabulary (in tokenizer.json or vocab.json + merges.txt) keeps js-tiktoken,
    // which gives the same ids (checked against the tokenizers library in tokenizerOracle.test.ts)
    // and is faster.
    // merges.txt is not read: the merges are implied by GPT-2's ranks once the vocabulary is
    // confirmed to be GPT-2's, so a vocab.json without merges.txt is accepted too.
    checkGpt2Folder(folder);
    tok = createGpt2Tokenizer();
    source = `the GPT-2 tokenizer files in ${folder}`;
  } else if (fs.existsSync(path.join(folder, 'tokenizer.model'))) {
    // Llama/Mistral ship a SentencePiece protobuf, Llama 3 a tiktoken rank file, under this name;
    // guessing ids for them would feed the model garbage.
    throw new TokenizerError(
      `${path.join(folder, 'tokenizer.model')}: MechLens cannot read tokenizer.model files (SentencePiece protobufs or tiktoken rank files); ` +
        `put the model's Hugging Face tokenizer.json (and tokenizer_config.json) in ${folder}`,
    );
  } else if (cfg.d_vocab === GPT2_VOCAB_SIZE) {
    return createGpt2Tokenizer();
  } else {
    const b = cfg.bos_token_id;
    const bos = typeof b === 'number' && Number.isInteger(b) && b >= 0 && b < cfg.d_vocab ? b : null;
    return createIdsTokenizer(cfg.d_vocab, { bosTokenId: bos });
  }
  if (tok.vocabSize !== cfg.d_vocab) {
    throw new TokenizerError(
      `tokenizer/model mismatch: ${source} defines ${tok.vocabSize} tokens (${tok.kind}) but the model's d_vocab is ${cfg.d_vocab}; ` +
        `the tokenizer files in ${folder} do not belong to these weights`,
    );
  }
  return tok;
}

// ---------------------------------------------------------------------------------------------
// TransformerLens-style free functions

export interface ToTokensOptions {
  /**
   * Prepend BOS (default: the tokenizer's defaultPrependBos, else true, as TransformerLens). Tokenizers without a BOS (character models
   * whose vocab.json has no bos_token_id, ids models without bos_token_id) prepend nothing,
   * even when this is explicitly true.
   */
  prependBos?: boolean;
  /** Where padding goes in a batch of unequal lengths (default 'right'). */
  paddingSide?: 'left' | 'right';
  /** With nCtx: cut longer inputs to nCtx tokens, keeping the start (default true); false throws. */
  truncate?: boolean;
  /** The model's context length; no length limit when absent. */
  nCtx?: number;
}

export interface TokenBatch {
  /** [batch, pos] token ids, padded with the pad id to the longest input. */
  tokens: number[][];
  /** [batch, pos] 1 for a real token (BOS included), 0 for padding. */
  attentionMask: number[][];
  /** [batch] number of real tokens per row, BOS included, after truncation. */
  lengths: number[];
}

/**
 * TransformerLens's `to_tokens`: one string or a batch of strings -> [batch, pos] ids.
 * Padding uses the tokenizer's pad id (50256 for GPT-2, as TransformerLens pads with EOS), or
 * 0 when it has none: padded positions are masked out, so their id only has to be valid.
 * The mask comes from the true lengths, not from comparing ids with the pad id, so a real
 * '<|endoftext|>' at the end of a prompt is never mistaken for padding.
 */
export function toTokens(tok: Tokenizer, input: string | string[], opts: ToTokensOptions = {}): TokenBatch {
  const { paddingSide = 'right', truncate = true, nCtx } = opts;
  const prependBos = opts.prependBos ?? tok.defaultPrependBos ?? true;
  const texts = typeof input === 'string' ? [input] : input;
  if (texts.length === 0) throw new TokenizerError('toTokens needs at least one string');
  if (nCtx !== undefined && (!Number.isInteger(nCtx) || nCtx <= 0)) throw new TokenizerError(`nCtx must be a positive integer, got ${nCtx}`);

  const rows = texts.map((text, b) => {
    let ids: number[];
    if (tok.toModelTokens) ids = tok.toModelTokens(text, prependBos);
    else {
      ids = tok.encode(text);
      if (prependBos && tok.bosTokenId !== null) ids.unshift(tok.bosTokenId);
    }
    if (nCtx !== undefined && ids.length > nCtx) {
      if (!truncate) {
        throw new TokenizerError(
          `input ${b} is ${ids.length} tokens${prependBos && tok.bosTokenId !== null ? ' (BOS included)' : ''}, longer than the model's context of ${nCtx} tokens; shorten it or pass truncate: true`,
        );
      }
      // Like HF's truncation (truncation_side 'right'): keep the beginning, BOS included.
      ids = ids.slice(0, nCtx);
    }
    return ids;
  });

  const lengths = rows.map((r) => r.length);
  const maxLen = Math.max(...lengths);
  const pad = tok.padTokenId ?? 0;
  const tokens: number[][] = [];
  const attentionMask: number[][] = [];
  for (const row of rows) {
    const nPad = maxLen - row.length;
    const padIds = new Array<number>(nPad).fill(pad);
    const ones = new Array<number>(row.length).fill(1);
    const zeros = new Array<number>(nPad).fill(0);
    if (paddingSide === 'left') {
      tokens.push([...padIds, ...row]);
      attentionMask.push([...zeros, ...ones]);
    } else {
      tokens.push([...row, ...padIds]);
      attentionMask.push([...ones, ...zeros]);
    }
  }
  return { tokens, attentionMask, lengths };
}

/** Each id's text, in order: ids [pos] -> strings [pos]. */
export function tokensToStrings(tok: Tokenizer, ids: number[]): string[] {
  return ids.map((id) => tok.idToString(id));
}

/**
 * TransformerLens's `to_str_tokens`: a string is tokenized (BOS prepended by default, no
 * truncation) and each token shown as text, e.g. GPT-2 'Hello world' ->
 * ['<|endoftext|>', 'Hello', ' world']. Ids are shown as they are: prependBos does not apply.
 */
export function toStrTokens(tok: Tokenizer, input: string | number[], opts: { prependBos?: boolean } = {}): string[] {
  if (typeof input !== 'string') return tokensToStrings(tok, input);
  const { tokens } = toTokens(tok, input, { prependBos: opts.prependBos, truncate: false });
  return tokensToStrings(tok, tokens[0] ?? []);
}

/**
 * TransformerLens's `to_single_token`: the id of a string that must be exactly one token
 * (no BOS). Answer tokens for logit differences usually carry their leading space (' Mary').
 */
export function toSingleToken(tok: Tokenizer, s: string): number {
  const ids = tok.encode(s);
  if (ids.length !== 1) {
    const list = ids.length === 0 ? 'none' : ids.map((id) => `${JSON.stringify(tok.idToString(id))} = ${id}`).join(', ');
    throw new TokenizerError(`${JSON.stringify(s)} is ${ids.length} tokens (${list}), expected exactly one`);
  }
  return ids[0] as number;
}

/** TransformerLens's `to_single_str_token`: the text of one token id. */
export function toSingleStrToken(tok: Tokenizer, id: number): string {
  return tok.idToString(id);
}
