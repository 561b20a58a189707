/**
 * MechLens's tokenizer.json tokenizers against the Python `tokenizers` library and
 * TransformerLens's to_tokens / to_str_tokens (fixtures from oracle/gen_tokenizers.py): ids,
 * offsets (code points), ids with the tokenizer's own special tokens, to_tokens with and
 * without BOS, per-token strings and decode, for a corpus of awkward strings.
 *
 * Real tokenizer files are read from ../shared/tokenizers (relative to the repository root) at
 * test time and checked against the sha256 the fixture was made from. If ../shared is missing
 * the test fails, unless MECHLENS_SKIP_SHARED=1 says to skip those cases.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadHfTokenizer, type HfTokenizer } from '../../src/engine/model/hfTokenizer.js';
import { oracleFixture, oracleFixtureNames } from '../helpers/oracle.js';
import { createGpt2Tokenizer, loadTokenizerForModel, toTokens, toStrTokens, type Tokenizer } from '../../src/engine/model/tokenizer.js';

const REPO = path.resolve(__dirname, '..', '..');
const FIXTURES = path.join(REPO, 'test', 'fixtures', 'tokenizers');
const SHARED = path.resolve(REPO, '..', 'shared', 'tokenizers');
const SKIP_SHARED = process.env.MECHLENS_SKIP_SHARED === '1';

interface Case {
  text: string;
  ids: number[];
  tokens: string[];
  offsets: [number, number][];
  ids_with_special: number[];
  hf_ids: number[];
  hf_offsets: [number, number][];
  to_tokens_bos: number[];
  to_tokens_no_bos: number[];
  str_tokens_bos: string[];
  decode: string;
}
interface Fixture {
  name: string;
  source:
    | { kind: 'trained'; style: string; folder: string }
    | { kind: 'shared'; file: string; sha256: string; tokenizer_config: Record<string, unknown> | null }
    | { kind: 'hf_folder'; folder: string; sha256: Record<string, string> }
    | { kind: 'vocab_merges'; folder: string; sha256: Record<string, string>; tokenizer_config: Record<string, unknown>; skeleton: Record<string, unknown> };
  architecture: string;
  tokenizer_prepends_bos: boolean;
  bos_token_id: number | null;
  cases: Case[];
}

const fixtures: Fixture[] = fs
  .readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(fs.readFileSync(path.join(FIXTURES, f), 'utf8')) as Fixture);

/** A temporary model folder linking the shared tokenizer.json, with the config the oracle used. */
function sharedFolder(fx: Extract<Fixture['source'], { kind: 'shared' }>): string {
  const src = path.join(SHARED, fx.file);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-tokoracle-'));
  fs.symlinkSync(src, path.join(dir, 'tokenizer.json'));
  if (fx.tokenizer_config) fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(fx.tokenizer_config));
  else {
    for (const side of ['tokenizer_config.json', 'special_tokens_map.json']) {
      const p = path.join(path.dirname(src), side);
      if (fs.existsSync(p)) fs.symlinkSync(p, path.join(dir, side));
    }
  }
  return dir;
}

/**
 * vocab.json + merges.txt (GPT-2, Qwen2) as a tokenizer.json: the oracle's skeleton (the pipeline
 * transformers' tokenizer class builds) around the shared files, in a temporary folder.
 */
function vocabMergesFolder(fx: Extract<Fixture['source'], { kind: 'vocab_merges' }>): string {
  const src = path.join(SHARED, fx.folder);
  const tj = structuredClone(fx.skeleton) as { model: Record<string, unknown> };
  tj.model.vocab = JSON.parse(fs.readFileSync(path.join(src, 'vocab.json'), 'utf8')) as unknown;
  tj.model.merges = fs.readFileSync(path.join(src, 'merges.txt'), 'utf8').replace(/\r\n/g, '\n').split('\n').filter((l) => l !== '' && !l.startsWith('#version'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-tokoracle-'));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tj));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(fx.tokenizer_config));
  return dir;
}

const show = (x: unknown) => JSON.stringify(x);

/** to_tokens / to_str_tokens / decode checks shared by tokenizer.json and js-tiktoken. */
function tlChecks(tok: Tokenizer, c: Case, check: (what: string, got: unknown, want: unknown) => void): void {
  check('encode', tok.encode(c.text), c.hf_ids);
  check('to_tokens(prepend_bos=True)', toTokens(tok, c.text, { prependBos: true }).tokens[0], c.to_tokens_bos);
  check('to_tokens(prepend_bos=False)', toTokens(tok, c.text, { prependBos: false }).tokens[0], c.to_tokens_no_bos);
  check('to_str_tokens', toStrTokens(tok, c.text, { prependBos: true }), c.str_tokens_bos);
  check('decode', tok.decode(c.ids), c.decode);
}

test('the oracle fixtures cover both trained styles and the shared tokenizer.json files', () => {
  const names = fixtures.map((f) => f.name);
  for (const n of ['gpt2-vocab-merges', 'qwen2-vocab-merges', 'qwen2.5-vocab-merges', 'trained-byte_level', 'trained-sentencepiece', 'gpt-neox-pythia', 'phi3', 'phi2', 'olmo1', 'olmo2-dolma2']) assert.ok(names.includes(n), `missing fixture ${n}`);
});

for (const fx of fixtures) {
  test(`tokenizer oracle: ${fx.name}`, (t) => {
    let folder: string;
    let cleanup = false;
    if (fx.source.kind === 'trained') folder = path.join(FIXTURES, fx.source.folder);
    else {
      const files = fx.source.kind === 'shared' ? { [fx.source.file]: fx.source.sha256 } : Object.fromEntries(Object.entries(fx.source.sha256).map(([f, h]) => [path.join((fx.source as { folder: string }).folder, f), h]));
      for (const [file, want] of Object.entries(files)) {
        const src = path.join(SHARED, file);
        if (!fs.existsSync(src)) {
          if (SKIP_SHARED) {
            t.skip(`${src} is absent (MECHLENS_SKIP_SHARED=1)`);
            return;
          }
          assert.fail(`${src} is absent: the real tokenizer files live in ../shared/tokenizers beside the repository; set MECHLENS_SKIP_SHARED=1 to skip them`);
        }
        const sha = crypto.createHash('sha256').update(fs.readFileSync(src)).digest('hex');
        assert.equal(sha, want, `${src} is not the file the fixture was made from; rerun python oracle/gen_tokenizers.py`);
      }
      if (fx.source.kind === 'hf_folder') folder = path.join(SHARED, fx.source.folder);
      else {
        folder = fx.source.kind === 'shared' ? sharedFolder(fx.source) : vocabMergesFolder(fx.source);
        cleanup = true;
      }
    }
    try {
      const tok: HfTokenizer = loadHfTokenizer(folder, { architecture: fx.architecture });
      assert.equal(tok.tokenizerPrependsBos, fx.tokenizer_prepends_bos, 'tokenizer_prepends_bos');
      assert.equal(tok.bosTokenId, fx.bos_token_id, 'bos_token_id');
      const failures: string[] = [];
      for (const c of fx.cases) {
        const where = `${fx.name} ${show(c.text)}`;
        const check = (what: string, got: unknown, want: unknown) => {
          try {
            assert.deepEqual(got, want);
          } catch {
            failures.push(`${where} ${what}: got ${show(got)}, want ${show(want)}`);
          }
        };
        for (const [what, f, ids, offsets] of [
          ['tokenizers', () => tok.raw.encodeWithOffsets(c.text), c.ids, c.offsets],
          ['transformers', () => tok.encodeWithOffsets(c.text), c.hf_ids, c.hf_offsets],
        ] as const) {
          try {
            const enc = f();
            check(`${what} ids`, enc.ids, ids);
            check(`${what} offsets`, enc.offsets, offsets);
          } catch (e) {
            failures.push(`${where} ${what} offsets: ${(e as Error).message}`);
          }
        }
        check('tokenizers ids with special tokens', tok.raw.encodeWithSpecial(c.text), c.ids_with_special);
        tlChecks(tok, c, check);
        // GPT-2 folders without tokenizer.json keep js-tiktoken: it must give the same results.
        if (fx.name === 'gpt2-vocab-merges') tlChecks(createGpt2Tokenizer(), c, (what, got, want) => check(`js-tiktoken ${what}`, got, want));
      }
      assert.equal(failures.length, 0, `${failures.length} mismatches with the Python tokenizers/TransformerLens oracle:\n${failures.slice(0, 40).join('\n')}`);
    } finally {
      if (cleanup) fs.rmSync(folder, { recursive: true, force: true });
    }
  });
}

test('loadTokenizerForModel: a tokenizer.json that is not GPT-2s goes to @huggingface/tokenizers with the family default', () => {
  const folder = path.join(FIXTURES, 'trained-byte_level');
  const neox = loadTokenizerForModel(folder, { d_vocab: 384, original_architecture: 'GPTNeoXForCausalLM' });
  assert.equal(neox.kind, 'hf');
  // TransformerLens's GPT-NeoX config has default_prepend_bos False: no BOS unless asked.
  assert.deepEqual(toTokens(neox, 'Hello').tokens[0], neox.encode('Hello'));
  assert.deepEqual(toTokens(neox, 'Hello', { prependBos: true }).tokens[0], [319, ...neox.encode('Hello')]);
  const gpt2Style = loadTokenizerForModel(folder, { d_vocab: 320, original_architecture: 'GPT2LMHeadModel' });
  assert.deepEqual(toTokens(gpt2Style, 'Hello').tokens[0], [319, ...gpt2Style.encode('Hello')]);
  assert.throws(() => loadTokenizerForModel(folder, { d_vocab: 300 }), /has ids up to 319 but the model's d_vocab is 300/);
});

test('an unsupported tokenizer.json names the file and the part', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-tokbad-'));
  try {
    // A folder with only a SentencePiece/tiktoken tokenizer.model is refused, not guessed.
    fs.writeFileSync(path.join(dir, 'tokenizer.model'), 'not read');
    assert.throws(() => loadTokenizerForModel(dir, { d_vocab: 32000 }), /tokenizer\.model: MechLens cannot read tokenizer\.model files .*put the model's Hugging Face tokenizer\.json/);
    fs.rmSync(path.join(dir, 'tokenizer.model'));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordLevel', vocab: { a: 0 }, unk_token: 'a' }, added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null }));
    assert.throws(() => loadHfTokenizer(dir), (e: Error) => e.message.includes(path.join(dir, 'tokenizer.json')) && /model\.type "WordLevel" \(supported: BPE, WordPiece, Unigram\)/.test(e.message));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, added_tokens: [], normalizer: { type: 'Sequence', normalizers: [{ type: 'Nmt' }] }, pre_tokenizer: null, post_processor: null, decoder: null }));
    assert.throws(() => loadHfTokenizer(dir), /normalizer\.normalizers\[0\]\.type "Nmt"/);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, added_tokens: [], normalizer: null, pre_tokenizer: { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false }, post_processor: null, decoder: null }));
    assert.throws(() => loadHfTokenizer(dir), /pre_tokenizer \(a Split with behavior "MergedWithPrevious"\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loadTokenizerForModel: a Qwen2 folder with vocab.json + merges.txt (no tokenizer.json) is rebuilt as its class builds it', (t) => {
  const qwen = path.join(SHARED, 'qwen2');
  if (!fs.existsSync(path.join(qwen, 'vocab.json'))) {
    if (SKIP_SHARED) return t.skip(`${qwen} is absent (MECHLENS_SKIP_SHARED=1)`);
    assert.fail(`${qwen} is absent: set MECHLENS_SKIP_SHARED=1 to skip the shared tokenizer files`);
  }
  const tok = loadTokenizerForModel(qwen, { d_vocab: 151936, original_architecture: 'Qwen2ForCausalLM' });
  assert.equal(tok.kind, 'hf');
  // Qwen2 splits digits one by one, and TransformerLens's Qwen2 default is no BOS.
  assert.deepEqual(toStrTokens(tok, 'x 123'), ['x', ' ', '1', '2', '3']);
});

// The model oracle fixtures (oracle/gen_models.py) carry TransformerLens's to_tokens and
// to_str_tokens with their tokenizer files: the tokenizer alone must reproduce them for every
// family, including those whose forward pass MechLens does not run yet.
for (const name of oracleFixtureNames()) {
  const fx = oracleFixture(name);
  test(`tokenizer of oracle fixture ${name} (${fx.expected.family}): to_tokens and to_str_tokens equal TransformerLens's`, () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(fx.dir, 'config.json'), 'utf8')) as { vocab_size: number; architectures?: string[] };
    const tok = loadTokenizerForModel(fx.dir, { d_vocab: cfg.vocab_size, original_architecture: cfg.architectures?.[0] });
    for (const c of fx.expected.to_tokens) {
      assert.deepEqual(toTokens(tok, c.text, { prependBos: c.prepend_bos }).tokens[0], c.tokens, `to_tokens(${show(c.text)}, prepend_bos=${c.prepend_bos})`);
      assert.deepEqual(toStrTokens(tok, c.text, { prependBos: c.prepend_bos }), c.str_tokens, `to_str_tokens(${show(c.text)}, prepend_bos=${c.prepend_bos})`);
    }
    // And with no prependBos, the family's default_prepend_bos, as TransformerLens's cfg has it.
    const dflt = (fx.expected.tl_cfg as { default_prepend_bos?: boolean }).default_prepend_bos;
    const c0 = fx.expected.to_tokens.find((c) => c.prepend_bos === dflt);
    if (c0) assert.deepEqual(toTokens(tok, c0.text).tokens[0], c0.tokens, `to_tokens(${show(c0.text)}) with the family default (default_prepend_bos=${dflt})`);
  });
}
