import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { entriesInLines, entryAtLine, formatPromptEntry, parsePromptLine, parsePromptsFile } from '../../../src/engine/prompts/promptsFile.js';

const one = (line: string) => parsePromptLine(line, 0);

test('a bare prompt is the trimmed line, with its span', () => {
  const r = one('  When John and Mary went to the shops  ');
  assert.deepEqual(r.problems, []);
  assert.equal(r.entry?.prompt.text, 'When John and Mary went to the shops');
  assert.deepEqual(r.entry?.prompt.span, { line: 0, start: 2, end: 38 });
  assert.equal(r.entry?.prompt.quoted, false);
  assert.equal(r.entry?.answer, undefined);
});

test('answer and wrong answer: quoted, spaces kept, spans cover the quotes', () => {
  const src = 'When John and Mary went to the shops, John gave the bag to -> " Mary" | " John"';
  const e = one(src).entry!;
  assert.equal(e.prompt.text, 'When John and Mary went to the shops, John gave the bag to');
  assert.equal(e.answer?.text, ' Mary');
  assert.equal(e.wrong?.text, ' John');
  assert.equal(src.slice(e.answer!.span.start, e.answer!.span.end), '" Mary"');
  assert.equal(src.slice(e.wrong!.span.start, e.wrong!.span.end), '" John"');
  assert.equal(e.span.end, src.length);
});

test('clean => corrupted -> answers', () => {
  const e = one('A B C => A C B -> " x" | " y"').entry!;
  assert.equal(e.prompt.text, 'A B C');
  assert.equal(e.corrupted?.text, 'A C B');
  assert.equal(e.answer?.text, ' x');
  assert.equal(e.wrong?.text, ' y');
});

test('quoted prompts keep trailing spaces, escapes, and -> / => as text', () => {
  const e = one('"a -> b => c " => "x\\ny\\t\\"q\\"" -> "z"').entry!;
  assert.equal(e.prompt.text, 'a -> b => c ');
  assert.equal(e.prompt.quoted, true);
  assert.equal(e.corrupted?.text, 'x\ny\t"q"');
  assert.equal(e.answer?.text, 'z');
});

test('comments and blank lines hold no entry; # inside a bare prompt is text; trailing comment after answers', () => {
  assert.deepEqual(one('   # a comment -> " x"'), { problems: [] });
  assert.deepEqual(one(''), { problems: [] });
  assert.deepEqual(one(' \t '), { problems: [] });
  assert.equal(one('Issue #5 is fixed').entry?.prompt.text, 'Issue #5 is fixed');
  const e = one('Hello -> " world" # the usual');
  assert.deepEqual(e.problems, []);
  assert.equal(e.entry?.answer?.text, ' world');
});

test('errors: each with a code, a span on the culprit and no entry', () => {
  const cases: [string, string, string][] = [
    ['-> " Mary"', 'empty-prompt', '->'],
    ['""', 'empty-prompt', '""'],
    ['A => -> " x"', 'empty-corrupted', '=>'],
    ['"abc', 'unterminated-string', '"abc'],
    ['abc -> " x', 'unterminated-string', '" x'],
    ['"a\\qb"', 'bad-escape', '"a\\qb"'],
    ['abc ->', 'missing-answer', '->'],
    ['abc -> " x" |', 'missing-answer', '|'],
    ['abc -> # no answer', 'missing-answer', '->'],
    ['abc -> ""', 'empty-answer', '""'],
    ['abc -> " x" | " y" | " z"', 'too-many-answers', '| " z"'],
    ['a => b => c', 'repeated-separator', '=>'],
    ['"abc" def', 'unexpected-text', 'def'],
    ['abc -> " x" def', 'unexpected-text', 'def'],
  ];
  for (const [src, code, culprit] of cases) {
    const r = one(src);
    assert.equal(r.entry, undefined, `${src}: no entry`);
    assert.equal(r.problems.length, 1, `${src}: ${JSON.stringify(r.problems)}`);
    const p = r.problems[0]!;
    assert.equal(p.code, code, `${src}: ${p.message}`);
    assert.equal(p.severity, 'error');
    assert.equal(src.slice(p.span.start, p.span.end), culprit, `${src}: span ${JSON.stringify(p.span)}`);
    assert.ok(p.message.length > 20, 'messages explain');
  }
});

test('an unquoted answer offers the quoted form with a leading space', () => {
  const src = 'When John and Mary went to the shops, John gave the bag to -> Mary | John';
  const r = one(src);
  assert.equal(r.problems[0]?.code, 'unquoted-answer');
  const fix = r.problems[0]!.fix!;
  assert.equal(src.slice(fix.span.start, fix.span.end), 'Mary');
  assert.equal(fix.newText, '" Mary"');
  const fixed = src.slice(0, fix.span.start) + fix.newText + src.slice(fix.span.end);
  const again = one(fixed);
  assert.equal(again.problems[0]?.code, 'unquoted-answer', 'then the wrong answer is flagged');
  assert.equal(again.problems[0]?.fix?.newText, '" John"');
});

test('the same answer twice is a warning; the entry is kept', () => {
  const r = one('abc -> " x" | " x"');
  assert.equal(r.entry?.answer?.text, ' x');
  assert.equal(r.problems[0]?.code, 'same-answers');
  assert.equal(r.problems[0]?.severity, 'warning');
});

test('a file: lines of every kind, CRLF and a BOM; entries and problems carry their lines', () => {
  const text = '\uFEFF# header\r\nfirst\r\n\r\nsecond -> " a"\rbad -> a\nthird => fourth';
  const p = parsePromptsFile(text);
  assert.deepEqual(p.prompts.map((e) => [e.line, e.prompt.text]), [[1, 'first'], [3, 'second'], [5, 'third']]);
  assert.deepEqual(p.problems.map((x) => [x.span.line, x.code]), [[4, 'unquoted-answer']]);
  assert.equal(entryAtLine(p, 3)?.answer?.text, ' a');
  assert.equal(entryAtLine(p, 4), undefined);
  assert.deepEqual(entriesInLines(p, 2, 5).map((e) => e.line), [3, 5]);
});

test('columns are UTF-16 units, as VS Code counts them', () => {
  const src = '😀 é -> " x"';
  const e = one(src).entry!;
  assert.equal(e.prompt.text, '😀 é');
  assert.equal(src.slice(e.answer!.span.start, e.answer!.span.end), '" x"');
});

test('formatPromptEntry writes what parses back to the same texts', () => {
  const cases = [
    { prompt: 'plain text' },
    { prompt: 'trailing ', answer: ' x' },
    { prompt: 'has -> arrow', corrupted: 'has => arrow', answer: 'a"b', wrong: '\\' },
    { prompt: '#hash first', answer: '\n' },
    { prompt: '"quoted"', corrupted: 'c' },
  ];
  for (const c of cases) {
    const e = one(formatPromptEntry(c)).entry!;
    assert.deepEqual({ prompt: e.prompt.text, corrupted: e.corrupted?.text, answer: e.answer?.text, wrong: e.wrong?.text }, { corrupted: undefined, answer: undefined, wrong: undefined, ...c });
  }
});

test('the sample files parse without problems', () => {
  const dir = path.join(__dirname, '..', '..', '..', 'samples');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.prompts'));
  assert.ok(files.includes('ioi.prompts') && files.includes('basics.prompts'));
  for (const f of files) {
    const p = parsePromptsFile(fs.readFileSync(path.join(dir, f), 'utf8'));
    assert.deepEqual(p.problems, [], f);
    assert.ok(p.prompts.length >= 5, `${f} has ${p.prompts.length} prompts`);
  }
  const ioi = parsePromptsFile(fs.readFileSync(path.join(dir, 'ioi.prompts'), 'utf8'));
  assert.equal(ioi.prompts.length, 8);
  for (const e of ioi.prompts) {
    assert.ok(e.corrupted && e.answer && e.wrong);
    // The corrupted prompt swaps the subject, so the answers swap too.
    assert.ok(e.prompt.text.includes(`,${e.wrong.text} gave`), e.prompt.text);
    assert.ok(e.corrupted.text.includes(`,${e.answer.text} gave`), e.corrupted.text);
  }
});
