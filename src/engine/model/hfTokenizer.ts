/**
 * Tokenizers read from a Hugging Face `tokenizer.json` (every family that ships one: GPT-NeoX /
 * Pythia, Llama 2 / Phi-3 style SentencePiece BPE with byte fallback, Phi-2, OLMo, ...), run by
 * `@huggingface/tokenizers`, with TransformerLens's BOS rules and Python-`tokenizers`-style
 * character offsets.
 *
 * What comes from the library: normalisation, pre-tokenisation, the BPE/Unigram/WordPiece model,
 * added-token splitting, post-processing and decoding. What is ours, because the library does not
 * expose it: (1) TransformerLens's `to_tokens` BOS logic, (2) token offsets into the original
 * text, which the library does not report; they are rebuilt from the tokens' bytes and the
 * alignment of the normaliser/pre-tokeniser's output to the input (the rules of the Rust
 * `tokenizers` crate for the components those families use; see `offsetsOf`).
 *
 * Pure TypeScript: no `vscode`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { TokenizerError, type Tokenizer } from './tokenizerBase.js';

/**
 * Architectures whose TransformerLens config sets `default_prepend_bos: False`
 * (transformer_lens/loading_from_pretrained.py): to_tokens adds no BOS unless asked to.
 */
export const NO_DEFAULT_BOS_ARCHITECTURES: ReadonlySet<string> = new Set([
  'GPTNeoXForCausalLM', 'BloomForCausalLM', 'QWenLMHeadModel', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'PhiForCausalLM',
]);
/** HookedTransformer.set_tokenizer keeps these families' tokenizers as they are (no add_bos_token=True). */
const KEEP_TOKENIZER_ARCHITECTURES: ReadonlySet<string> = new Set(['OlmoForCausalLM', 'OlmoeForCausalLM', 'Olmo2ForCausalLM']);

/** [start, end) in code points of the input text, as Python `tokenizers` reports offsets. */
export type Offset = [number, number];

export interface HfTokenizer extends Tokenizer {
  kind: 'hf';
  /** TransformerLens's cfg.tokenizer_prepends_bos for this tokenizer. */
  tokenizerPrependsBos: boolean;
  /** The file it was read from (for messages). */
  file: string;
  /**
   * Ids, token strings and offsets of `text` without special tokens, as the transformers
   * tokenizer TransformerLens uses gives them (`tokenizer(text, add_special_tokens=False,
   * return_offsets_mapping=True)`); offsets are [start, end) in code points of `text`.
   */
  encodeWithOffsets(text: string): HfEncoding;
  /** The tokenizer.json exactly as written (Python `tokenizers.Tokenizer.from_file`). */
  raw: {
    encodeWithOffsets(text: string): HfEncoding;
    /** With the file's own post-processor (`encode(text)`, add_special_tokens=True). */
    encodeWithSpecial(text: string): number[];
  };
}

export interface HfEncoding {
  ids: number[];
  tokens: string[];
  offsets: Offset[];
}

/** Qwen2Tokenizer's split regex (transformers/models/qwen2/tokenization_qwen2.py): digits one at a time. */
const QWEN2_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

/**
 * A folder with vocab.json + merges.txt and no tokenizer.json (Qwen2's): the tokenizer.json that
 * transformers' tokenizer class builds from them, named by tokenizer_config.json's tokenizer_class.
 * Added tokens come from the config's added_tokens_decoder and added_tokens.json.
 */
export function tokenizerJsonFromVocabMerges(folder: string, config: Json): Json {
  const vocabPath = path.join(folder, 'vocab.json');
  const mergesPath = path.join(folder, 'merges.txt');
  if (!fs.existsSync(vocabPath) || !fs.existsSync(mergesPath)) {
    throw new TokenizerError(`${folder} has no tokenizer.json and no vocab.json + merges.txt; MechLens reads a Hugging Face tokenizer.json (SentencePiece .model and tiktoken files are not supported)`);
  }
  const cls = String(config.tokenizer_class ?? '').replace(/Fast$/, '');
  const addPrefix = config.add_prefix_space === true;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  let pipeline: Json;
  if (cls === 'Qwen2Tokenizer') {
    pipeline = {
      normalizer: { type: 'NFC' },
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: QWEN2_SPLIT }, behavior: 'Isolated', invert: false },
          { type: 'ByteLevel', add_prefix_space: addPrefix, trim_offsets: true, use_regex: false },
        ],
      },
      decoder: byteLevel,
      post_processor: null,
    };
  } else if (cls === 'GPT2Tokenizer') {
    pipeline = {
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: addPrefix, trim_offsets: true, use_regex: true },
      decoder: byteLevel,
      post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    };
  } else {
    throw new TokenizerError(
      `${folder} has vocab.json + merges.txt but no tokenizer.json, and its tokenizer_class ${JSON.stringify(config.tokenizer_class ?? null)} is not one MechLens can rebuild (Qwen2Tokenizer, GPT2Tokenizer); add the model's tokenizer.json`,
    );
  }
  const vocab = readJsonFile(vocabPath);
  const merges = fs.readFileSync(mergesPath, 'utf8').replace(/\r\n/g, '\n').split('\n').filter((l) => l !== '' && !l.startsWith('#version'));
  const added = new Map<number, Json>();
  const dec = config.added_tokens_decoder;
  if (typeof dec === 'object' && dec !== null) {
    for (const [id, t] of Object.entries(dec as Record<string, Json>)) {
      added.set(Number(id), { id: Number(id), content: t.content, single_word: t.single_word === true, lstrip: t.lstrip === true, rstrip: t.rstrip === true, normalized: t.normalized === true, special: t.special === true });
    }
  }
  const addedPath = path.join(folder, 'added_tokens.json');
  if (fs.existsSync(addedPath)) {
    for (const [content, id] of Object.entries(readJsonFile(addedPath))) {
      if (typeof id === 'number' && !added.has(id)) added.set(id, { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    }
  }
  return {
    version: '1.0',
    added_tokens: [...added.values()].sort((a, b) => Number(a.id) - Number(b.id)),
    ...pipeline,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
}

/**
 * transformers 5 builds some tokenizer classes' pipelines in code rather than taking them from
 * tokenizer.json (vocabulary, merges and added tokens do come from the file). TransformerLens
 * tokenizes through those classes, so MechLens does the same rewrite for the classes of the
 * families it loads; other classes (PreTrainedTokenizerFast, TokenizersBackend, ...) use the file
 * as written.
 */
function asClassBuildsIt(tj: Json, config: Json): Json {
  const cls = String(config.tokenizer_class ?? '').replace(/Fast$/, '');
  // transformers' own post-processor: BOS/EOS around the text as add_bos_token/add_eos_token say.
  const template = (): Json => {
    const single: Json[] = [];
    const special: Json = {};
    const add = (key: string) => {
      const text = tokenText(config[key]);
      const id = text === null ? undefined : ((tj.added_tokens as Json[] | undefined) ?? []).find((a) => a.content === text)?.id;
      if (text === null || typeof id !== 'number') return;
      single.push({ SpecialToken: { id: text, type_id: 0 } });
      special[text] = { id: text, ids: [id], tokens: [text] };
    };
    if (config.add_bos_token === true) add('bos_token');
    single.push({ Sequence: { id: 'A', type_id: 0 } });
    if (config.add_eos_token === true) add('eos_token');
    return { type: 'TemplateProcessing', single, pair: single, special_tokens: special };
  };
  const addPrefix = typeof config.add_prefix_space === 'boolean' ? config.add_prefix_space : null;
  const byteLevelDecoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  switch (cls) {
    case 'LlamaTokenizer': {
      const ap = addPrefix ?? true;
      const scheme = ap ? (config.legacy === true ? 'always' : 'first') : 'never';
      const decoders: Json[] = [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
      ];
      if (ap) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });
      return {
        ...tj,
        normalizer: null,
        pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: scheme, split: false },
        decoder: { type: 'Sequence', decoders },
        post_processor: template(),
      };
    }
    case 'GPT2Tokenizer':
      return {
        ...tj,
        normalizer: null,
        pre_tokenizer: { type: 'ByteLevel', add_prefix_space: addPrefix ?? false, trim_offsets: true, use_regex: true },
        decoder: byteLevelDecoder,
        post_processor: template(),
      };
    case 'GPTNeoXTokenizer':
      return {
        ...tj,
        normalizer: { type: 'NFC' },
        pre_tokenizer: { type: 'ByteLevel', add_prefix_space: addPrefix ?? false, trim_offsets: config.trim_offsets !== false, use_regex: true },
        decoder: byteLevelDecoder,
        post_processor: template(),
      };
    case 'CodeGenTokenizer':
      return {
        ...tj,
        normalizer: null,
        pre_tokenizer: { type: 'ByteLevel', add_prefix_space: addPrefix ?? false, trim_offsets: true, use_regex: true },
        decoder: byteLevelDecoder,
        post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      };
    default:
      return tj;
  }
}

type Json = Record<string, unknown>;

function readJsonFile(file: string): Json {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TokenizerError(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Json;
  } catch (e) {
    throw new TokenizerError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** A special token as tokenizer_config.json / special_tokens_map.json write it: a string or an AddedToken object. */
function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/** The component types @huggingface/tokenizers 0.2 implements (its create_* factories). */
const SUPPORTED = {
  model: ['BPE', 'WordPiece', 'Unigram'],
  normalizer: ['NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase', 'Strip', 'StripAccents', 'Replace', 'Prepend', 'Sequence', 'BertNormalizer', 'Precompiled'],
  pre_tokenizer: ['ByteLevel', 'Whitespace', 'WhitespaceSplit', 'Metaspace', 'Split', 'Punctuation', 'Digits', 'BertPreTokenizer', 'Replace', 'FixedLength', 'Sequence'],
  post_processor: ['ByteLevel', 'TemplateProcessing', 'RobertaProcessing', 'BertProcessing', 'Sequence'],
  decoder: ['ByteLevel', 'WordPiece', 'Metaspace', 'BPEDecoder', 'CTC', 'Replace', 'Fuse', 'Strip', 'ByteFallback', 'Sequence'],
} as const;

/** Names the first component of tokenizer.json the library has no implementation for, or null. */
function unsupportedPart(tj: Json): string | null {
  const check = (where: keyof typeof SUPPORTED, v: unknown, at: string): string | null => {
    if (v === null || v === undefined) return null;
    const t = (v as { type?: unknown }).type;
    if (where !== 'model' || t !== undefined) {
      if (!(SUPPORTED[where] as readonly string[]).includes(String(t))) return `${at}.type ${JSON.stringify(t)} (supported: ${SUPPORTED[where].join(', ')})`;
    }
    // The library's README: these Split behaviours are not reproduced, and would give other tokens silently.
    const behavior = (v as Json).behavior;
    if (where === 'pre_tokenizer' && t === 'Split' && ['MergedWithPrevious', 'MergedWithNext', 'Contiguous'].includes(String(behavior))) {
      return `${at} (a Split with behavior ${JSON.stringify(behavior)})`;
    }
    for (const key of ['normalizers', 'pretokenizers', 'processors', 'decoders']) {
      const list = (v as Json)[key];
      if (Array.isArray(list)) {
        for (const [i, x] of list.entries()) {
          const r = check(where, x, `${at}.${key}[${i}]`);
          if (r) return r;
        }
      }
    }
    return null;
  };
  return check('model', tj.model, 'model') ?? check('normalizer', tj.normalizer, 'normalizer') ?? check('pre_tokenizer', tj.pre_tokenizer, 'pre_tokenizer')
    ?? check('post_processor', tj.post_processor, 'post_processor') ?? check('decoder', tj.decoder, 'decoder');
}

export interface HfTokenizerOptions {
  /** config.json's architectures[0]: picks TransformerLens's default_prepend_bos and BOS handling. */
  architecture?: string;
}

/**
 * Reads `folder/tokenizer.json` (+ tokenizer_config.json, special_tokens_map.json) into a
 * tokenizer with TransformerLens semantics. Throws a TokenizerError naming the file and the
 * part the library cannot run.
 */
export function loadHfTokenizer(folder: string, opts: HfTokenizerOptions = {}): HfTokenizer {
  const cfgPath = path.join(folder, 'tokenizer_config.json');
  const mapPath = path.join(folder, 'special_tokens_map.json');
  const config: Json = fs.existsSync(cfgPath) ? readJsonFile(cfgPath) : {};
  let file = path.join(folder, 'tokenizer.json');
  let tj: Json;
  if (fs.existsSync(file)) tj = readJsonFile(file);
  else {
    tj = tokenizerJsonFromVocabMerges(folder, config);
    file = path.join(folder, 'vocab.json');
  }
  if (typeof tj.model !== 'object' || tj.model === null) throw new TokenizerError(`${file}: no "model" object; this is not a Hugging Face tokenizer.json`);
  const bad = unsupportedPart(tj);
  if (bad) throw new TokenizerError(`${file}: @huggingface/tokenizers cannot run ${bad}; MechLens cannot tokenize for this model`);
  const smap: Json = fs.existsSync(mapPath) ? readJsonFile(mapPath) : {};
  // tokenizer_config.json wins over special_tokens_map.json, as in transformers.
  const special = (k: string): string | null => tokenText(config[k]) ?? tokenText(smap[k]);

  const build = (json: Json): HfLibTokenizer => {
    try {
      // The library reads clean_up_tokenization_spaces etc. from the config; decoding below asks
      // for TransformerLens's settings explicitly.
      return new HfLibTokenizer(json, { ...config, added_tokens_decoder: undefined });
    } catch (e) {
      throw new TokenizerError(`${file}: @huggingface/tokenizers cannot load it: ${(e as Error).message}`);
    }
  };
  // What TransformerLens tokenizes with: transformers' tokenizer class rebuilds parts of the
  // pipeline (asClassBuildsIt); the file as written is kept for the raw encodings.
  const tlJson = asClassBuildsIt(tj, config);
  const rawLib = build(tj);
  const lib = tlJson === tj ? rawLib : build(tlJson);
  const idOf = (t: string | null): number | null => (t === null ? null : (lib.token_to_id(t) ?? null));
  const arch = opts.architecture ?? '';
  let bosText = special('bos_token');
  const eosText = special('eos_token');
  const padText = special('pad_token');
  const addEos = config.add_eos_token === true;

  // HookedTransformer.set_tokenizer: except for OLMo, TransformerLens reloads the tokenizer with
  // add_bos_token=True (transformers then prepends BOS in post-processing), so it "prepends BOS"
  // whenever it has one; OLMo's tokenizer is used as saved.
  const keep = KEEP_TOKENIZER_ARCHITECTURES.has(arch) || bosText === null;
  const encSpecial = (text: string): number[] => lib.encode(text, { add_special_tokens: true }).ids;
  const encPlain = (text: string): number[] => lib.encode(text, { add_special_tokens: false }).ids;
  const tokenizerPrependsBos = keep ? encSpecial('').length > 0 : true;
  // set_tokenizer then makes a missing BOS (and pad) the EOS.
  bosText ??= eosText;
  const bosId = idOf(bosText);
  const eosId = idOf(eosText);
  const padId = idOf(padText) ?? eosId;
  const defaultPrependBos = !NO_DEFAULT_BOS_ARCHITECTURES.has(arch);

  let maxId = -1;
  for (const id of lib.get_vocab(true).values()) if (id > maxId) maxId = id;
  const vocabSize = maxId + 1;

  const decode = (ids: number[]): string => {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize || lib.id_to_token(id) === undefined) {
        throw new TokenizerError(`token id ${String(id)} is not in the vocabulary of ${file} (ids 0..${vocabSize - 1})`);
      }
    }
    // The library refuses an empty list; Python decodes it to ''.
    return ids.length === 0 ? '' : lib.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  };

  const offsetsFor = makeOffsets(tlJson, file);
  const rawOffsetsFor = tlJson === tj ? offsetsFor : makeOffsets(tj, file);

  const tok: HfTokenizer = {
    kind: 'hf',
    file,
    vocabSize,
    bosTokenId: bosId,
    eosTokenId: eosId,
    padTokenId: padId,
    defaultPrependBos,
    tokenizerPrependsBos,
    encode: encPlain,
    decode,
    idToString: (id) => decode([id]),
    toModelTokens: (text, prependBos) => {
      if (!keep) {
        // The add_bos_token=True tokenizer: BOS + text (+ EOS when the config asks for it);
        // prepend_bos=False removes the first token (get_tokens_with_bos_removed).
        const ids = encPlain(text);
        if (addEos && eosId !== null) ids.push(eosId);
        return prependBos && bosId !== null ? [bosId, ...ids] : ids;
      }
      // The saved tokenizer: TransformerLens prepends BOS as text when it does not add it itself.
      if (prependBos && !tokenizerPrependsBos) return bosText === null ? encSpecial(text) : encSpecial(bosText + text);
      const ids = encSpecial(text);
      return !prependBos && tokenizerPrependsBos && bosId !== null ? ids.slice(1) : ids;
    },
    encodeWithOffsets: (text) => {
      const enc = lib.encode(text, { add_special_tokens: false });
      return { ids: enc.ids, tokens: enc.tokens, offsets: offsetsFor(text, enc.tokens, enc.ids) };
    },
    raw: {
      encodeWithOffsets: (text) => {
        const enc = rawLib.encode(text, { add_special_tokens: false });
        return { ids: enc.ids, tokens: enc.tokens, offsets: rawOffsetsFor(text, enc.tokens, enc.ids) };
      },
      encodeWithSpecial: (text) => rawLib.encode(text, { add_special_tokens: true }).ids,
    },
  };
  return tok;
}

// ---------------------------------------------------------------------------------------------
// Offsets

/** One normalised character and the original UTF-8 byte range [start, end) it comes from. */
interface AChar {
  c: string;
  s: number;
  e: number;
}

/** GPT-2's byte <-> printable character table, inverted: printable char -> byte. */
const BYTE_OF_CHAR: ReadonlyMap<string, number> = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  return new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]!), b]));
})();

const utf8 = new TextEncoder();

class OffsetsUnsupported extends Error {}

/** Unicode normal forms, aligned as the Rust crate aligns them (a composed char maps to its first source char). */
function normalForm(chars: AChar[], form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD'): AChar[] {
  const out: AChar[] = [];
  let i = 0;
  while (i < chars.length) {
    // A chunk: one character and the combining marks after it.
    let j = i + 1;
    while (j < chars.length && /^\p{M}$/u.test(chars[j]!.c)) j++;
    const chunk = chars.slice(i, j);
    const outCps = Array.from(chunk.map((c) => c.c).join('').normalize(form));
    if (outCps.length === chunk.length) {
      outCps.forEach((c, k) => out.push({ c, s: chunk[k]!.s, e: chunk[k]!.e }));
    } else if (outCps.length < chunk.length) {
      const removed = chunk.length - outCps.length;
      outCps.forEach((c, k) => {
        const src = chunk[k === 0 ? 0 : k + removed]!;
        out.push({ c, s: src.s, e: src.e });
      });
    } else {
      const pieces = chunk.map((c) => Array.from(c.c.normalize(form)));
      if (pieces.flat().join('') === outCps.join('')) pieces.forEach((p, k) => p.forEach((c) => out.push({ c, s: chunk[k]!.s, e: chunk[k]!.e })));
      else outCps.forEach((c) => out.push({ c, s: chunk[0]!.s, e: chunk[chunk.length - 1]!.e }));
    }
    i = j;
  }
  return out;
}

function replaceAll(chars: AChar[], pattern: string, content: string): AChar[] {
  const pat = Array.from(pattern);
  const rep = Array.from(content);
  if (pat.length === 0) return chars;
  const out: AChar[] = [];
  for (let i = 0; i < chars.length; ) {
    if (pat.every((p, k) => chars[i + k]?.c === p)) {
      const s = chars[i]!.s;
      const e = chars[i + pat.length - 1]!.e;
      for (const c of rep) out.push({ c, s, e });
      i += pat.length;
    } else out.push(chars[i++]!);
  }
  return out;
}

function applyNormalizer(n: Json | null | undefined, chars: AChar[]): AChar[] {
  if (!n) return chars;
  switch (n.type) {
    case 'Sequence':
      return ((n.normalizers as Json[] | undefined) ?? []).reduce((acc, x) => applyNormalizer(x, acc), chars);
    case 'NFC': case 'NFD': case 'NFKC': case 'NFKD':
      return normalForm(chars, n.type);
    case 'Prepend': {
      if (chars.length === 0) return chars;
      const first = chars[0]!;
      return [...Array.from(String(n.prepend)).map((c) => ({ c, s: first.s, e: first.e })), ...chars];
    }
    case 'Replace': {
      const p = n.pattern as { String?: string } | undefined;
      if (typeof p?.String !== 'string') throw new OffsetsUnsupported('a Replace normaliser with a regex pattern');
      return replaceAll(chars, p.String, String(n.content));
    }
    case 'Lowercase':
      return chars.flatMap((ch) => Array.from(ch.c.toLowerCase()).map((c) => ({ c, s: ch.s, e: ch.e })));
    default:
      throw new OffsetsUnsupported(`the ${String(n.type)} normaliser`);
  }
}

/** The character changes a pre-tokeniser makes (splitting does not change the text). */
function applyPreTokenizer(p: Json | null | undefined, chars: AChar[], firstSection: boolean): AChar[] {
  if (!p) return chars;
  switch (p.type) {
    case 'Sequence':
      return ((p.pretokenizers as Json[] | undefined) ?? []).reduce((acc, x) => applyPreTokenizer(x, acc, firstSection), chars);
    case 'ByteLevel':
      if (p.add_prefix_space === true && chars.length > 0 && chars[0]!.c !== ' ') return [{ c: ' ', s: chars[0]!.s, e: chars[0]!.e }, ...chars];
      return chars;
    case 'Metaspace': {
      const rep = String(p.replacement ?? '▁');
      let out = replaceAll(chars, ' ', rep);
      const scheme = p.prepend_scheme ?? (p.add_prefix_space === false ? 'never' : 'always');
      if (out.length > 0 && out[0]!.c !== rep && (scheme === 'always' || (scheme === 'first' && firstSection))) {
        out = [{ c: rep, s: out[0]!.s, e: out[0]!.e }, ...out];
      }
      return out;
    }
    case 'Split': case 'Digits': case 'Punctuation':
      return chars;
    default:
      throw new OffsetsUnsupported(`the ${String(p.type)} pre-tokeniser`);
  }
}

function hasType(x: unknown, type: string): boolean {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as Json;
  if (o.type === type) return true;
  return ['pretokenizers', 'processors', 'normalizers'].some((k) => Array.isArray(o[k]) && (o[k] as unknown[]).some((y) => hasType(y, type)));
}

function findType(x: unknown, type: string): Json | null {
  if (typeof x !== 'object' || x === null) return null;
  const o = x as Json;
  if (o.type === type) return o;
  for (const k of ['pretokenizers', 'processors']) {
    if (Array.isArray(o[k])) for (const y of o[k] as unknown[]) { const f = findType(y, type); if (f) return f; }
  }
  return null;
}

/**
 * Offsets as Python `tokenizers` reports them: each token covers the original characters its
 * bytes came from (a byte-fallback or byte-level piece of a character covers the whole
 * character); a ByteLevel post-processor with trim_offsets drops leading/trailing spaces.
 */
function makeOffsets(tj: Json, file: string): (text: string, tokens: string[], ids: number[]) => Offset[] {
  const model = tj.model as Json;
  const byteLevel = hasType(tj.pre_tokenizer, 'ByteLevel');
  const byteFallback = model.byte_fallback === true;
  const unk = typeof model.unk_token === 'string' ? model.unk_token : null;
  const postBL = findType(tj.post_processor, 'ByteLevel');
  const trim = postBL !== null && postBL.trim_offsets !== false;
  const addPrefix = postBL?.add_prefix_space === true;
  const added = new Map<number, { content: string; normalized: boolean; lstrip: boolean; rstrip: boolean }>();
  for (const a of (tj.added_tokens as Json[] | undefined) ?? []) {
    added.set(Number(a.id), { content: String(a.content), normalized: a.normalized === true && tj.normalizer != null, lstrip: a.lstrip === true, rstrip: a.rstrip === true });
  }
  const isWs = (c: string | undefined) => c !== undefined && /^\s$/u.test(c);

  return (text, tokens, ids) => {
    // Original code points with their UTF-8 byte ranges.
    const orig: AChar[] = [];
    let b = 0;
    for (const c of text) {
      const n = utf8.encode(c).length;
      orig.push({ c, s: b, e: b + n });
      b += n;
    }
    const totalBytes = b;
    const byteOffsets: Offset[] = [];
    try {
      let cursor = 0; // index into orig
      let t = 0;
      let firstSection = true;
      while (t < ids.length) {
        const a = added.get(ids[t]!);
        if (a && !a.normalized) {
          const cps = Array.from(a.content);
          let k = cursor;
          while (k < orig.length && !cps.every((c, m) => orig[k + m]?.c === c)) k++;
          if (k >= orig.length) throw new OffsetsUnsupported(`added token ${JSON.stringify(a.content)} not found in the text`);
          // lstrip/rstrip tokens take the whitespace beside them.
          let from = k;
          if (a.lstrip) while (from > cursor && isWs(orig[from - 1]?.c)) from--;
          let to = k + cps.length;
          if (a.rstrip) while (to < orig.length && isWs(orig[to]?.c)) to++;
          byteOffsets.push([orig[from]!.s, orig[to - 1]!.e]);
          cursor = to;
          t++;
          firstSection = false;
          continue;
        }
        // A section: the text up to the next un-normalised added token among the tokens.
        let u = t;
        while (u < ids.length && !(added.get(ids[u]!) && !added.get(ids[u]!)!.normalized)) u++;
        let end = orig.length;
        if (u < ids.length) {
          const cps = Array.from(added.get(ids[u]!)!.content);
          let k = cursor;
          while (k < orig.length && !cps.every((c, m) => orig[k + m]?.c === c)) k++;
          if (added.get(ids[u]!)!.lstrip) while (k > cursor && isWs(orig[k - 1]?.c)) k--;
          end = k;
        }
        const norm = applyPreTokenizer(tj.pre_tokenizer as Json, applyNormalizer(tj.normalizer as Json, orig.slice(cursor, end)), firstSection);
        const units: { byte: number; s: number; e: number }[] = [];
        for (const ch of norm) for (const by of utf8.encode(ch.c)) units.push({ byte: by, s: ch.s, e: ch.e });
        let p = 0;
        for (let q = t; q < u; q++) {
          const tokStr = tokens[q]!;
          const ad = added.get(ids[q]!);
          let bytes: number[];
          if (ad) bytes = [...utf8.encode(ad.content)];
          else if (byteFallback && /^<0x[0-9A-F]{2}>$/.test(tokStr)) bytes = [parseInt(tokStr.slice(3, 5), 16)];
          else if (byteLevel) bytes = Array.from(tokStr).map((c) => BYTE_OF_CHAR.get(c) ?? -1);
          else if (unk !== null && tokStr === unk) {
            // An unknown character: all of its bytes.
            const n = p < units.length ? units.filter((x) => x.s === units[p]!.s).length : 0;
            bytes = units.slice(p, p + n).map((x) => x.byte);
          } else bytes = [...utf8.encode(tokStr)];
          const span = units.slice(p, p + bytes.length);
          if (span.length !== bytes.length || span.some((x, k) => x.byte !== bytes[k])) {
            throw new OffsetsUnsupported(`token ${q} (${JSON.stringify(tokStr)}) does not match the normalised text`);
          }
          byteOffsets.push([Math.min(...span.map((x) => x.s)), Math.max(...span.map((x) => x.e))]);
          p += bytes.length;
        }
        cursor = end;
        t = u;
        firstSection = false;
      }
    } catch (e) {
      if (e instanceof OffsetsUnsupported) throw new TokenizerError(`${file}: cannot compute token offsets: ${e.message}`);
      throw e;
    }
    if (trim) {
      tokens.forEach((tokStr, i) => {
        const o = byteOffsets[i]!;
        const isSpace = (c: string) => c === 'Ġ' || /^\s$/u.test(c);
        const cps = Array.from(tokStr);
        let lead = 0;
        while (lead < cps.length && isSpace(cps[lead]!)) lead++;
        let trail = 0;
        while (trail < cps.length && isSpace(cps[cps.length - 1 - trail]!)) trail++;
        if (lead > 0) {
          if ((i === 0 || o[0] === 0) && addPrefix && lead === 1) lead = 0;
          o[0] = Math.min(o[0] + lead, o[1]);
        }
        if (trail > 0 && o[1] >= trail) o[1] = Math.max(o[1] - trail, o[0]);
      });
    }
    // Byte offsets -> code point offsets, as the Python binding converts them.
    const charOfByte = new Int32Array(totalBytes + 1);
    orig.forEach((ch, i) => charOfByte.fill(i, ch.s, ch.e));
    charOfByte[totalBytes] = orig.length;
    return byteOffsets.map(([s, e]) => {
      const cs = charOfByte[s]!;
      return [cs, e > s ? charOfByte[e - 1]! + 1 : cs];
    });
  };
}
