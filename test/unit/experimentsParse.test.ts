import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkWithModel, findSubject, parseExperiment, type Diagnostic, type FileReader } from '../../src/engine/experiments/parse.js';
import { experimentSchema } from '../../src/engine/experiments/schema.js';
import { parseJsonWithPositions, LineIndex } from '../../src/engine/experiments/json.js';
import { createGpt2Tokenizer, createIdsTokenizer } from '../../src/engine/model/tokenizer.js';
import { makeConfig } from '../../src/engine/model/config.js';
import { gpt2SmallConfig } from '../../bench/randomModel.js';

const ROOT = path.join(__dirname, '..', '..');
const SCHEMA_FILE = path.join(ROOT, 'schemas', 'experiment.schema.json');
const DIR = '/virtual/exp';

/** In-memory files for the parser. */
function reader(files: Record<string, string>): FileReader {
  return { read: (f) => files[f] ?? null };
}

/** 0-based line and column of the n-th occurrence of `needle` in `text`. */
function at(text: string, needle: string, nth = 0): { line: number; character: number } {
  let i = -1;
  for (let k = 0; k <= nth; k++) {
    i = text.indexOf(needle, i + 1);
    assert.ok(i >= 0, `${needle} not in text`);
  }
  return new LineIndex(text).position(i);
}

function only(ds: Diagnostic[], code?: string): Diagnostic {
  const errs = ds.filter((d) => d.severity === 'error' && (code === undefined || d.code === code));
  assert.equal(errs.length, 1, `expected one error${code ? ` ${code}` : ''}, got ${JSON.stringify(ds.map((d) => `${d.range.start.line}:${d.range.start.character} ${d.code} ${d.message}`))}`);
  return errs[0]!;
}

const base = (analyses: string, prompts = `[
    { "prompt": "0 1 2 3", "corrupted": "0 1 4 3", "answer": "5", "wrong": "6" },
    { "prompt": "0 7 2 3", "corrupted": "0 7 4 3", "answer": "6", "wrong": "5" }
  ]`) => `{
  "model": "builtin:toy",
  "prompts": ${prompts},
  "analyses": [
${analyses}
  ]
}
`;

test('schemas/experiment.schema.json is the schema object written out (UPDATE_SCHEMA=1 rewrites it)', () => {
  const want = JSON.stringify(experimentSchema, null, 2) + '\n';
  if (process.env['UPDATE_SCHEMA']) fs.writeFileSync(SCHEMA_FILE, want);
  assert.equal(fs.readFileSync(SCHEMA_FILE, 'utf8'), want, 'run UPDATE_SCHEMA=1 node --import tsx --test test/unit/experimentsParse.test.ts');
  const s = JSON.parse(want) as { $schema: string; properties: Record<string, { description?: string }> };
  assert.equal(s.$schema, 'http://json-schema.org/draft-07/schema#');
  for (const [k, v] of Object.entries(s.properties)) assert.ok(v.description, `property ${k} has a description`);
});

test('JSON syntax errors point at the offending character', () => {
  const text = '{\n  "model": "gpt2",\n  "analyses": [ { "kind": "logit_diff" }, ]\n}\n';
  const d = only(parseExperiment(text, `${DIR}/a.experiment.json`, reader({})).diagnostics, 'json-syntax');
  assert.deepEqual(d.range.start, at(text, ']'));
  assert.match(d.message, /trailing comma/);
  assert.equal(d.file, path.resolve(`${DIR}/a.experiment.json`));
  const text2 = '{ "model": "gpt2",\n  "analyses": [] \n';
  assert.match(only(parseExperiment(text2, 'b.experiment.json', reader({})).diagnostics).message, /expected ',' or '}'|end of the file/);
  // Positions count UTF-16 units (as VS Code does).
  assert.deepEqual(new LineIndex('é😀x\r\ny').position(4), { line: 0, character: 4 });
  assert.deepEqual(new LineIndex('é😀x\r\ny').position(6), { line: 1, character: 0 });
  assert.equal(parseJsonWithPositions('"\\u00e9"').type, 'string');
});

test('schema problems are reported at the value, key or object they concern', () => {
  const text = base(`    { "kind": "patch", "hook": "resid_pro" },
    { "kind": "patch_heads", "activation": "z", "bogus": 1 },
    { "kind": "attention", "heads": ["L7H11", "7.11"] },
    { "kind": "no_such_analysis" },
    { "kind": "neuron_dla" },
    { "kind": "patch_neurons", "layer": -1 }`);
  const ds = parseExperiment(text, `${DIR}/s.experiment.json`, reader({})).diagnostics;
  const find = (re: RegExp) => {
    const d = ds.find((x) => re.test(x.message));
    assert.ok(d, `no diagnostic matching ${re}: ${JSON.stringify(ds.map((x) => x.message))}`);
    return d;
  };
  assert.deepEqual(find(/"resid_pro" is not allowed/).range.start, at(text, '"resid_pro"'));
  assert.deepEqual(find(/unknown property "bogus"/).range.start, at(text, '"bogus"'));
  assert.deepEqual(find(/"7\.11" is not a head/).range.start, at(text, '"7.11"'));
  assert.deepEqual(find(/unknown kind "no_such_analysis"/).range.start, at(text, '"no_such_analysis"'));
  assert.deepEqual(find(/missing required property "layer"/).range.start, at(text, '{ "kind": "neuron_dla" }'));
  assert.deepEqual(find(/-1 is below the minimum 0/).range.start, at(text, '-1'));
  assert.equal(ds.length, 6);
  const missing = parseExperiment('{ "analyses": [{ "kind": "logit_diff" }] }', 'm.experiment.json', reader({})).diagnostics;
  assert.match(only(missing).message, /missing required property "model"/);
});

test('prompts: needs of the analyses, .prompts files, sections and line ranges', () => {
  const promptsFile = `${DIR}/p.prompts`;
  const ptext = [
    '## good',
    '0 1 2 3 => 0 1 4 3 -> "5" | "6"',
    '0 7 2 3 => 0 7 4 3 -> "6" | "5"',
    '## broken',
    '0 1 2 3 -> 5',
    '## plain',
    '0 1 2 3',
  ].join('\n');
  const files = { [promptsFile]: ptext };
  const src = (p: string, analyses = '    { "kind": "patch", "hook": "resid_pre" }') => base(analyses, p);
  // A section: fine.
  const ok = parseExperiment(src('{ "file": "p.prompts", "section": "good" }'), `${DIR}/x.experiment.json`, reader(files));
  assert.deepEqual(ok.diagnostics, []);
  assert.equal(ok.experiment!.groups[0]!.prompts.length, 2);
  assert.equal(ok.experiment!.groups[0]!.prompts[1]!.answer, '6');
  assert.deepEqual(ok.experiment!.groups[0]!.prompts[1]!.at.answer, { file: promptsFile, range: { start: { line: 2, character: 22 }, end: { line: 2, character: 25 } } });
  // Lines 1..3 (1-based) = the same two entries.
  assert.equal(parseExperiment(src('{ "file": "p.prompts", "lines": [1, 3] }'), `${DIR}/x.experiment.json`, reader(files)).experiment!.groups[0]!.prompts.length, 2);
  // A problem of the .prompts file is reported there, at its line.
  const broken = only(parseExperiment(src('{ "file": "p.prompts", "section": "broken" }'), `${DIR}/x.experiment.json`, reader(files)).diagnostics, 'prompts-unquoted-answer');
  assert.equal(broken.file, promptsFile);
  assert.equal(broken.range.start.line, 4);
  // Patching needs corrupted prompts: the error is at the analysis's kind.
  const t = src('{ "file": "p.prompts", "section": "plain" }');
  const plain = parseExperiment(t, `${DIR}/x.experiment.json`, reader(files)).diagnostics;
  const d = plain.find((x) => x.code === 'needs-corrupted')!;
  assert.deepEqual(d.range.start, at(t, '"patch"'));
  assert.ok(plain.some((x) => x.code === 'needs-answers'));
  // A missing file, a missing section.
  const nf = src('{ "file": "nope.prompts" }');
  assert.deepEqual(only(parseExperiment(nf, `${DIR}/x.experiment.json`, reader(files)).diagnostics, 'prompts-file').range.start, at(nf, '"nope.prompts"'));
  assert.match(only(parseExperiment(src('{ "file": "p.prompts", "section": "other" }'), `${DIR}/x.experiment.json`, reader(files)).diagnostics, 'prompts-section').message, /sections are "good", "broken", "plain"/);
  // prompts and groups together.
  const both = '{ "model": "x", "prompts": [{ "prompt": "a" }], "groups": [{ "name": "g", "prompts": [{ "prompt": "a" }] }], "analyses": [{ "kind": "logit_lens" }] }';
  assert.ok(parseExperiment(both, 'y.experiment.json', reader({})).diagnostics.some((x) => /either "prompts" or "groups"/.test(x.message)));
});

test('model checks: single-token answers, token lengths, layers, heads, hooks, subjects', () => {
  const cfg = makeConfig({ n_layers: 2, d_model: 8, n_heads: 2, d_vocab: 50, n_ctx: 16, d_mlp: 32 });
  const tok = createIdsTokenizer(50, { bosTokenId: 0 });
  const text = base(
    `    { "kind": "patch_neurons", "layer": 2 },
    { "kind": "attention", "heads": ["L1H1", "L1H2"] },
    { "kind": "ablation", "hooks": ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_pro"] },
    { "kind": "causal_trace", "subject": "9 9" },
    { "kind": "patch_neurons", "layer": 1, "neurons": [31, 32] }`,
    `[
    { "prompt": "1 2 3", "corrupted": "1 2 3 4", "answer": "5 6", "wrong": "6" },
    { "prompt": "1 2", "corrupted": "1 3", "answer": "6", "wrong": "5" }
  ]`,
  );
  const p = parseExperiment(text, `${DIR}/m.experiment.json`, reader({}));
  assert.deepEqual(p.diagnostics, []);
  const { diagnostics: ds } = checkWithModel(p.experiment!, cfg, tok);
  const byCode = (c: string) => ds.filter((d) => d.code === c);
  assert.deepEqual(byCode('multi-token-answer').map((d) => d.range.start), [at(text, '"5 6"')]);
  assert.match(byCode('multi-token-answer')[0]!.message, /must be a single token.*\["5", "6"\]/);
  const lm = byCode('length-mismatch');
  assert.deepEqual(lm.map((d) => d.range.start), [at(text, '"1 2 3 4"'), at(text, '"1 2"', 0)]);
  const ranges = byCode('range').map((d) => d.range.start);
  assert.deepEqual(ranges, [at(text, '2 }'), at(text, '"L1H2"'), at(text, '32]')]);
  assert.deepEqual(byCode('unknown-hook').map((d) => d.range.start), [at(text, '"blocks.0.hook_resid_pro"')]);
  assert.equal(ds.length, 7, JSON.stringify(ds.map((d) => d.message)));
  // With prompts that tokenize, a subject that is not in the prompt.
  const t2 = base('    { "kind": "causal_trace", "subject": "9 9" },\n    { "kind": "causal_trace", "subject": "2 3" }');
  const c2 = checkWithModel(parseExperiment(t2, `${DIR}/m.experiment.json`, reader({})).experiment!, cfg, tok);
  assert.deepEqual(c2.diagnostics.map((d) => [d.code, d.range.start]), [['subject', at(t2, '"9 9"')]]);
  assert.deepEqual(c2.tokens[0]!.clean, [[0, 0, 1, 2, 3], [0, 0, 7, 2, 3]]);
});

test('causal-trace subjects are found as runs of whole tokens (ROME find_token_range)', () => {
  const tok = createGpt2Tokenizer();
  const row = [50256, ...tok.encode('When John and Mary went to the shops')];
  const r = findSubject(tok, row, 'John and Mary');
  assert.deepEqual(r, [2, 5]);
  assert.equal(findSubject(tok, row, 'Bob'), null);
});

test('the samples parse, and on GPT-2 tokenize to the seed notebooks\' tokens', () => {
  const cfg = gpt2SmallConfig();
  const tok = createGpt2Tokenizer();
  for (const f of ['contractions-re-they', 'contractions-groups', 'ioi-study', 'toy-tour']) {
    const file = path.join(ROOT, 'samples', `${f}.experiment.json`);
    const p = parseExperiment(fs.readFileSync(file, 'utf8'), file);
    assert.deepEqual(p.diagnostics, [], `${f}: ${JSON.stringify(p.diagnostics)}`);
    if (f === 'toy-tour') continue;
    const c = checkWithModel(p.experiment!, cfg, tok);
    assert.deepEqual(c.diagnostics, [], `${f}: ${JSON.stringify(c.diagnostics)}`);
    for (const g of c.tokens) assert.equal(g.clean.length, 8);
    if (f === 'contractions-re-they') {
      // The contraction-circuit study: tokens and answer_tokens as printed in the notebook.
      assert.deepEqual(c.tokens[0]!.clean, [
        [50256, 1135, 821, 5742, 674, 1545, 618, 484],
        [50256, 1135, 389, 5742, 674, 1545, 618, 484],
        [50256, 2990, 821, 6600, 8073, 1978, 981, 484],
        [50256, 2990, 389, 6600, 8073, 1978, 981, 484],
        [50256, 1135, 821, 5059, 18529, 593, 290, 484],
        [50256, 1135, 389, 5059, 18529, 593, 290, 484],
        [50256, 2990, 821, 11029, 1165, 2582, 290, 484],
        [50256, 2990, 389, 11029, 1165, 2582, 290, 484],
      ]);
      assert.deepEqual(c.tokens[0]!.answers, [[821, 389], [389, 821], [821, 389], [389, 821], [821, 389], [389, 821], [821, 389], [389, 821]]);
      assert.deepEqual(c.tokens[0]!.corrupted![0], [50256, 1135, 389, 5742, 674, 1545, 618, 484]);
    }
    if (f === 'ioi-study') assert.equal(c.tokens[0]!.clean[0]!.length, 15);
    if (f === 'contractions-groups') assert.equal(c.tokens.length, 7);
  }
});

test('a folder model path is resolved against the experiment file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-exp-'));
  try {
    fs.mkdirSync(path.join(dir, 'm'));
    const p = parseExperiment('{ "model": "./m", "prompts": [{ "prompt": "a" }], "analyses": [{ "kind": "attention", "heads": ["L0H0"] }] }', path.join(dir, 'e.experiment.json'));
    assert.equal(p.experiment!.model.spec, path.join(dir, 'm'));
    assert.equal(parseExperiment('{ "model": "gpt2", "prompts": [{ "prompt": "a" }], "analyses": [{ "kind": "logit_lens", "title": "x" }] }', path.join(dir, 'e.experiment.json')).diagnostics.length, 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
