import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { predictionPromptAt, promptsFromSelection } from '../../../src/extension/promptTarget.js';

const at = (line: number, character: number) => ({ start: { line, character }, end: { line, character } });
const sel = (l0: number, c0: number, l1: number, c1: number) => ({ start: { line: l0, character: c0 }, end: { line: l1, character: c1 } });
const prompts = { languageId: 'mechlens-prompts', text: '# c\nfirst -> " a" | " b"\nsecond => other\nbad -> a\n\nthird' };

test('.prompts: the entry on the cursor line, with answers and corrupted prompt', () => {
  assert.deepEqual(promptsFromSelection(prompts, at(1, 3)), { ok: true, prompts: [{ prompt: 'first', answer: ' a', wrong: ' b', line: 1 }] });
  assert.deepEqual(promptsFromSelection(prompts, at(2, 0)), { ok: true, prompts: [{ prompt: 'second', corrupted: 'other', line: 2 }] });
});

test('.prompts: a multi-line selection gives every entry in it; a selection ending at column 0 excludes that line', () => {
  const r = promptsFromSelection(prompts, sel(0, 0, 5, 2));
  assert.ok(r.ok);
  assert.deepEqual(r.prompts.map((p) => p.prompt), ['first', 'second', 'third']);
  const r2 = promptsFromSelection(prompts, sel(1, 0, 2, 0));
  assert.ok(r2.ok);
  assert.deepEqual(r2.prompts.map((p) => p.prompt), ['first']);
});

test('.prompts: comments, blank lines and broken lines explain themselves', () => {
  const c = promptsFromSelection(prompts, at(0, 1));
  assert.ok(!c.ok && /no prompt on this line/.test(c.message));
  const b = promptsFromSelection(prompts, at(3, 1));
  assert.ok(!b.ok && /^line 4: the answer must be quoted/.test(b.message), !b.ok ? b.message : '');
});

test('other files: the selection as one prompt, else the trimmed line; empty is an error', () => {
  const doc = { languageId: 'python', text: '    x = "hello"\n\nline two\nline three' };
  assert.deepEqual(promptsFromSelection(doc, at(0, 2)), { ok: true, prompts: [{ prompt: 'x = "hello"', line: 0 }] });
  assert.deepEqual(promptsFromSelection(doc, sel(2, 5, 3, 4)), { ok: true, prompts: [{ prompt: 'two\nline', line: 2 }] });
  const e = promptsFromSelection(doc, at(1, 0));
  assert.ok(!e.ok && /the prompt is empty/.test(e.message));
  const w = promptsFromSelection({ languageId: 'plaintext', text: 'a   b' }, sel(0, 1, 0, 4));
  assert.ok(!w.ok && /only whitespace/.test(w.message));
});

test('predictions: the entry in .prompts files; elsewhere the line up to the cursor', () => {
  assert.deepEqual(predictionPromptAt(prompts, at(1, 0)), { prompt: 'first', answer: ' a' });
  assert.equal(predictionPromptAt(prompts, at(0, 0)), null);
  const doc = { languageId: 'markdown', text: '  The cat sat on the mat' };
  assert.deepEqual(predictionPromptAt(doc, at(0, 14)), { prompt: 'The cat sat ' });
  assert.equal(predictionPromptAt(doc, at(0, 2)), null);
  assert.deepEqual(predictionPromptAt(doc, sel(0, 6, 0, 9)), { prompt: 'cat' });
});
