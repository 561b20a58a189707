import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import {
  createCharTokenizer,
  createGpt2Tokenizer,
  createIdsTokenizer,
  isGpt2Loaded,
  loadTokenizerForModel,
  toSingleStrToken,
  toSingleToken,
  toStrTokens,
  toTokens,
  tokensToStrings,
  TokenizerError,
} from '../../src/engine/model/tokenizer.js';

const SLM_DIR = path.resolve(__dirname, '..', '..', '..', 'shared', 'models', 'slm4096');
const TINY_GPT2_DIR = path.join(__dirname, '..', 'fixtures', 'tiny-gpt2');

const gpt2 = createGpt2Tokenizer();

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-tok-'));
}

/**
 * GPT-2's HF vocab (token string -> id) rebuilt from the tiktoken ranks, so that the folder
 * detection can be tested on a real-shaped tokenizer.json without shipping one. HF stores
 * tokens through GPT-2's byte -> printable-character table ('Ġ' for a space).
 */
function gpt2HfVocab(): Record<string, number> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const byteToChar = new Map<number, string>();
  for (const b of printable) byteToChar.set(b, String.fromCharCode(b));
  let extra = 0;
  for (let b = 0; b < 256; b++) if (!byteToChar.has(b)) byteToChar.set(b, String.fromCharCode(256 + extra++));

  const vocab: Record<string, number> = {};
  for (const line of gpt2Ranks.bpe_ranks.split('\n')) {
    if (line === '') continue;
    const [, offsetStr, ...tokens] = line.split(' ');
    const offset = Number(offsetStr);
    tokens.forEach((b64, i) => {
      const text = Array.from(Buffer.from(b64, 'base64'), (b) => byteToChar.get(b) ?? '').join('');
      vocab[text] = offset + i;
    });
  }
  vocab['<|endoftext|>'] = 50256;
  return vocab;
}

// First, before any other test builds the shared GPT-2 tables, so this measures the real cost.
test('GPT-2: first encode builds the rank tables lazily; "Hello world" -> [15496, 995]', (t) => {
  assert.equal(isGpt2Loaded(), false, 'creating the tokenizer must not build the tables');
  const t0 = performance.now();
  const ids = gpt2.encode('Hello world');
  const first = performance.now() - t0;
  const t1 = performance.now();
  gpt2.encode('Hello world');
  const second = performance.now() - t1;
  assert.deepEqual(ids, [15496, 995]);
  assert.equal(isGpt2Loaded(), true);
  t.diagnostic(`GPT-2 tokenizer: first encode ${first.toFixed(1)} ms (builds tables), second ${second.toFixed(2)} ms`);
  assert.equal(gpt2.vocabSize, 50257);
  assert.equal(gpt2.bosTokenId, 50256);
  assert.equal(gpt2.eosTokenId, 50256);
  assert.equal(gpt2.padTokenId, 50256);
});

test('GPT-2: to_tokens / to_str_tokens prepend BOS like TransformerLens', () => {
  assert.deepEqual(toTokens(gpt2, 'Hello world').tokens, [[50256, 15496, 995]]);
  assert.deepEqual(toStrTokens(gpt2, 'Hello world'), ['<|endoftext|>', 'Hello', ' world']);
  assert.deepEqual(toStrTokens(gpt2, 'Hello world', { prependBos: false }), ['Hello', ' world']);
  assert.deepEqual(toTokens(gpt2, 'Hello world', { prependBos: false }).tokens, [[15496, 995]]);
  // ids are shown as given: no BOS is added to an id list.
  assert.deepEqual(toStrTokens(gpt2, [15496, 995]), ['Hello', ' world']);
  assert.deepEqual(tokensToStrings(gpt2, [50256, 995]), ['<|endoftext|>', ' world']);
});

test('GPT-2: "<|endoftext|>" written in a prompt is the special token', () => {
  assert.deepEqual(gpt2.encode('<|endoftext|>'), [50256]);
  assert.deepEqual(gpt2.encode('Hello<|endoftext|> world'), [15496, 50256, 995]);
  assert.deepEqual(toTokens(gpt2, '<|endoftext|>Hello').tokens, [[50256, 50256, 15496]]);
});

test('GPT-2: round trip of unicode, newlines and leading spaces', () => {
  const texts = [
    '  two leading spaces\n\nand a blank line\n',
    'Ünïcödé — naïve café, 日本語のテキスト, Ελληνικά, emoji 🎉👩‍💻',
    '\ttabs\tand   runs   of spaces   ',
    ' ',
    '',
    "It's John's and Mary's; they'll've done it.",
  ];
  for (const text of texts) {
    const ids = gpt2.encode(text);
    assert.equal(gpt2.decode(ids), text, `decode(encode(${JSON.stringify(text)}))`);
    for (const id of ids) assert.ok(Number.isInteger(id) && id >= 0 && id < 50257);
  }
  // Emoji are several tokens, each part of one UTF-8 character: shown as U+FFFD per token, as HF does.
  const parts = tokensToStrings(gpt2, gpt2.encode('🎉'));
  assert.ok(parts.length > 1 && parts.every((p) => p.includes('\uFFFD')), JSON.stringify(parts));
  assert.equal(gpt2.decode(gpt2.encode('🎉')), '🎉');
});

test('GPT-2: single tokens " Mary" and " John"', () => {
  assert.equal(toSingleToken(gpt2, ' Mary'), 5335);
  assert.equal(toSingleToken(gpt2, ' John'), 1757);
  assert.equal(toSingleStrToken(gpt2, 5335), ' Mary');
  assert.equal(toSingleStrToken(gpt2, 1757), ' John');
});

test('GPT-2: toSingleToken on several tokens names them all', () => {
  assert.throws(
    () => toSingleToken(gpt2, ' Mary and'),
    (e: unknown) => {
      assert.ok(e instanceof TokenizerError);
      assert.match(e.message, /^" Mary and" is 2 tokens \(/);
      assert.match(e.message, /" Mary" = 5335/);
      assert.match(e.message, /" and" = 290/);
      assert.match(e.message, /expected exactly one$/);
      return true;
    },
  );
  assert.throws(() => toSingleToken(gpt2, ''), /"" is 0 tokens \(none\), expected exactly one/);
});

test('GPT-2: out-of-range ids are an error, not silently dropped', () => {
  assert.throws(() => gpt2.decode([15496, 50257]), /token id 50257 is out of range.*0\.\.50256/);
  assert.throws(() => toSingleStrToken(gpt2, -1), /out of range/);
  assert.throws(() => gpt2.idToString(1.5), /out of range/);
});

test('toTokens: batch padding on the right and on the left, with attention masks', () => {
  const right = toTokens(gpt2, ['Hello world', 'Hello']);
  assert.deepEqual(right.tokens, [
    [50256, 15496, 995],
    [50256, 15496, 50256],
  ]);
  assert.deepEqual(right.attentionMask, [
    [1, 1, 1],
    [1, 1, 0],
  ]);
  assert.deepEqual(right.lengths, [3, 2]);

  const left = toTokens(gpt2, ['Hello world', 'Hello'], { paddingSide: 'left' });
  assert.deepEqual(left.tokens, [
    [50256, 15496, 995],
    [50256, 50256, 15496],
  ]);
  assert.deepEqual(left.attentionMask, [
    [1, 1, 1],
    [0, 1, 1],
  ]);
  assert.deepEqual(left.lengths, [3, 2]);

  // A real trailing '<|endoftext|>' equals the pad id but is not padding.
  const eot = toTokens(gpt2, ['Hello<|endoftext|>', 'Hello world now']);
  assert.deepEqual(eot.attentionMask, [
    [1, 1, 1, 0],
    [1, 1, 1, 1],
  ]);
  assert.throws(() => toTokens(gpt2, []), /at least one string/);
});

test('toTokens: truncation to nCtx keeps the start; truncate: false throws', () => {
  const r = toTokens(gpt2, ['Hello world', 'Hello'], { nCtx: 2 });
  assert.deepEqual(r.tokens, [
    [50256, 15496],
    [50256, 15496],
  ]);
  assert.deepEqual(r.attentionMask, [
    [1, 1],
    [1, 1],
  ]);
  assert.deepEqual(r.lengths, [2, 2]);
  assert.deepEqual(toTokens(gpt2, 'Hello world', { nCtx: 3, truncate: false }).tokens, [[50256, 15496, 995]]);
  assert.throws(
    () => toTokens(gpt2, 'Hello world', { nCtx: 2, truncate: false }),
    /input 0 is 3 tokens \(BOS included\), longer than the model's context of 2 tokens/,
  );
  assert.throws(() => toTokens(gpt2, 'Hello', { nCtx: 0 }), /nCtx must be a positive integer/);
});

test('char tokenizer: slm4096 vocab.json', (t) => {
  if (!fs.existsSync(path.join(SLM_DIR, 'vocab.json'))) {
    t.skip(`${SLM_DIR} is absent; the slm4096 character model lives in the shared folder only`);
    return;
  }
  const chars = (JSON.parse(fs.readFileSync(path.join(SLM_DIR, 'vocab.json'), 'utf8')) as { chars: string }).chars;
  const hf = JSON.parse(fs.readFileSync(path.join(SLM_DIR, 'config.json'), 'utf8')) as { vocab_size: number };
  const tok = loadTokenizerForModel(SLM_DIR, { d_vocab: hf.vocab_size });
  assert.equal(tok.kind, 'char');
  assert.equal(tok.vocabSize, chars.length);
  assert.equal(tok.bosTokenId, null);

  const text = 'The cat sat.\nA dog ran, 2026?';
  const ids = tok.encode(text);
  assert.deepEqual(ids, Array.from(text, (c) => chars.indexOf(c)));
  assert.equal(tok.decode(ids), text);
  // No BOS in this vocabulary: prependBos (default true) prepends nothing.
  assert.deepEqual(toStrTokens(tok, 'Hi there'), ['H', 'i', ' ', 't', 'h', 'e', 'r', 'e']);
  assert.deepEqual(toTokens(tok, 'Hi', { prependBos: true }).tokens, [[chars.indexOf('H'), chars.indexOf('i')]]);
  assert.equal(toSingleToken(tok, 'q'), chars.indexOf('q'));
  assert.throws(() => toSingleToken(tok, 'qu'), /"qu" is 2 tokens \("q" = \d+, "u" = \d+\), expected exactly one/);

  // Pad id falls back to 0 when there is no BOS/pad; the mask marks it.
  const batch = toTokens(tok, ['ab', 'a']);
  assert.deepEqual(batch.tokens[1], [chars.indexOf('a'), 0]);
  assert.deepEqual(batch.attentionMask, [
    [1, 1],
    [1, 0],
  ]);

  assert.throws(() => loadTokenizerForModel(SLM_DIR, { d_vocab: 50257 }), /defines 54 tokens \(char\) but the model's d_vocab is 50257/);
});

test('char tokenizer: inline chars string, and an extra BOS token', () => {
  const tok = createCharTokenizer('abc \n');
  assert.deepEqual(tok.encode('ab c\n'), [0, 1, 3, 2, 4]);
  assert.equal(tok.decode([2, 1, 0]), 'cba');
  assert.equal(tok.idToString(4), '\n');
  assert.equal(tok.vocabSize, 5);

  const withBos = createCharTokenizer({ chars: 'ab', bos_token_id: 2 });
  assert.equal(withBos.vocabSize, 3);
  assert.equal(withBos.bosTokenId, 2);
  assert.deepEqual(toTokens(withBos, 'ab').tokens, [[2, 0, 1]]);
  assert.deepEqual(toStrTokens(withBos, 'ba'), ['<|bos|>', 'b', 'a']);
  assert.equal(withBos.decode([2, 0]), '<|bos|>a');
  assert.deepEqual(withBos.encode('<|bos|>a'), [2, 0]);
  assert.deepEqual(toTokens(withBos, ['ab', 'b'], { paddingSide: 'left' }).tokens, [
    [2, 0, 1],
    [2, 2, 1],
  ]);

  // Code points, not UTF-16 units: an astral character is one token.
  const astral = createCharTokenizer('x🎉');
  assert.deepEqual(astral.encode('🎉x'), [1, 0]);

  assert.throws(() => createCharTokenizer('aba'), /"a" \(U\+0061\) appears twice/);
  assert.throws(() => createCharTokenizer(''), /"chars" is empty/);
  assert.throws(() => createCharTokenizer({ chars: 'ab', bos_token_id: 5 }), /bos_token_id must be an integer from 0 to 2/);
});

test('char tokenizer: an unknown character names itself, its position and the vocabulary', () => {
  const tok = createCharTokenizer('abc ');
  assert.throws(
    () => tok.encode('ab z'),
    (e: unknown) => {
      assert.ok(e instanceof TokenizerError);
      assert.match(e.message, /character "z" \(U\+007A\) at position 3 is not in this model's vocabulary/);
      assert.match(e.message, /vocabulary is the "chars" string of vocab\.json \(4 characters\): "abc "/);
      return true;
    },
  );
  assert.throws(() => tok.encode('aZbé'), /"Z" \(U\+005A\) at position 1.*also unknown: "é" \(U\+00E9\) at position 3/);
});

test('ids tokenizer: whitespace/comma-separated integers', () => {
  const tok = createIdsTokenizer(50, { bosTokenId: 0 });
  assert.equal(tok.kind, 'ids');
  assert.deepEqual(tok.encode('7 40, 25\n29'), [7, 40, 25, 29]);
  assert.deepEqual(tok.encode('  '), []);
  assert.deepEqual(toTokens(tok, '7 40 25').tokens, [[0, 7, 40, 25]]);
  assert.deepEqual(toStrTokens(tok, '7 40'), ['0', '7', '40']);
  assert.equal(tok.decode([7, 40]), '7 40');
  assert.deepEqual(tok.encode(tok.decode([3, 49, 0])), [3, 49, 0]);
  assert.equal(toSingleToken(tok, '12'), 12);
  assert.throws(() => toSingleToken(tok, '1 2'), /"1 2" is 2 tokens \("1" = 1, "2" = 2\), expected exactly one/);
  assert.throws(() => tok.encode('7 x'), /token 1 \("x"\) is not a token id.*integers from 0 to 49/);
  assert.throws(() => tok.encode('50'), /token 0 \("50"\) is not a token id/);
  assert.throws(() => tok.encode('-1'), /is not a token id/);
  assert.throws(() => tok.idToString(50), /out of range/);

  const noBos = createIdsTokenizer(10);
  assert.deepEqual(toTokens(noBos, '1 2').tokens, [[1, 2]]);
});

test('loadTokenizerForModel: tiny-gpt2 fixture (no tokenizer files, d_vocab 50) -> ids', () => {
  const tok = loadTokenizerForModel(TINY_GPT2_DIR, { d_vocab: 50, bos_token_id: 0 });
  assert.equal(tok.kind, 'ids');
  assert.equal(tok.vocabSize, 50);
  assert.equal(tok.bosTokenId, 0);
  assert.deepEqual(toTokens(tok, '7 40 25 29 30 35 2').tokens, [[0, 7, 40, 25, 29, 30, 35, 2]]);
  // HF's default GPT-2 bos_token_id (50256) is meaningless for a 50-token vocabulary.
  assert.equal(loadTokenizerForModel(TINY_GPT2_DIR, { d_vocab: 50, bos_token_id: 50256 }).bosTokenId, null);
});

test('loadTokenizerForModel: GPT-2 folders, d_vocab 50257, and mismatches', () => {
  const empty = tmpDir();
  const vocab = gpt2HfVocab();
  assert.equal(Object.keys(vocab).length, 50257);
  try {
    assert.equal(loadTokenizerForModel(empty, { d_vocab: 50257 }).kind, 'gpt2-bpe');
    assert.equal(loadTokenizerForModel(empty, { d_vocab: 1000 }).kind, 'ids');

    const hfJson = tmpDir();
    fs.writeFileSync(
      path.join(hfJson, 'tokenizer.json'),
      JSON.stringify({ model: { type: 'BPE', vocab, merges: [] }, added_tokens: [{ id: 50256, content: '<|endoftext|>' }] }),
    );
    const tok = loadTokenizerForModel(hfJson, { d_vocab: 50257 });
    assert.equal(tok.kind, 'gpt2-bpe');
    assert.deepEqual(tok.encode('Hello world'), [15496, 995]);
    assert.throws(
      () => loadTokenizerForModel(hfJson, { d_vocab: 50304 }),
      /defines 50257 tokens \(gpt2-bpe\) but the model's d_vocab is 50304/,
    );

    const vocabMerges = tmpDir();
    fs.writeFileSync(path.join(vocabMerges, 'vocab.json'), JSON.stringify(vocab));
    fs.writeFileSync(path.join(vocabMerges, 'merges.txt'), '#version: 0.2\nĠ t\n');
    assert.equal(loadTokenizerForModel(vocabMerges, { d_vocab: 50257 }).kind, 'gpt2-bpe');

    // Another BPE vocabulary must not be silently tokenized with GPT-2's ranks.
    const otherBpe = tmpDir();
    fs.writeFileSync(path.join(otherBpe, 'vocab.json'), JSON.stringify({ '!': 0, Hello: 1, 'Ġworld': 2 }));
    fs.writeFileSync(path.join(otherBpe, 'merges.txt'), '#version: 0.2\n');
    assert.throws(() => loadTokenizerForModel(otherBpe, { d_vocab: 3 }), /is not GPT-2's.*"Hello" is not id 15496/);

    const charDir = tmpDir();
    fs.writeFileSync(path.join(charDir, 'vocab.json'), JSON.stringify({ chars: 'ab ', bos_token_id: 3 }));
    const ct = loadTokenizerForModel(charDir, { d_vocab: 4, bos_token_id: 50256 });
    assert.equal(ct.kind, 'char');
    assert.equal(ct.bosTokenId, 3);
    assert.throws(() => loadTokenizerForModel(charDir, { d_vocab: 3 }), /defines 4 tokens \(char\) but the model's d_vocab is 3/);

    const badJson = tmpDir();
    fs.writeFileSync(path.join(badJson, 'vocab.json'), '{"chars": ');
    assert.throws(() => loadTokenizerForModel(badJson, { d_vocab: 3 }), /vocab\.json is not valid JSON/);
    for (const d of [hfJson, vocabMerges, otherBpe, charDir, badJson]) fs.rmSync(d, { recursive: true, force: true });
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
});
