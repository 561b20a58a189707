import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parsePromptsFile } from '../../../src/engine/prompts/promptsFile.js';
import { textsToMeasure, tokenProblems, type TokenMeasure } from '../../../src/engine/prompts/tokenChecks.js';

/** A character "tokenizer": one token per character, BOS counted for prompts. */
const chars = (texts: string[], bos: boolean): Map<string, TokenMeasure> =>
  new Map(texts.map((t) => [t, t.includes('~') ? { count: 0, strTokens: [], error: 'character "~" is not in the vocabulary' } : { count: [...t].length + (bos ? 1 : 0), strTokens: [...t] }]));

test('textsToMeasure lists each prompt and answer once', () => {
  const p = parsePromptsFile('a -> " x" | " y"\na => b -> " x"\nc');
  assert.deepEqual(textsToMeasure(p.prompts), { prompts: ['a', 'b', 'c'], answers: [' x', ' y'] });
});

test('multi-token answers are warnings with the tokens and a first-token fix; single ones pass', () => {
  const src = 'When Mary -> " Mary" | "J"';
  const p = parsePromptsFile(src);
  const { prompts, answers } = textsToMeasure(p.prompts);
  const probs = tokenProblems(p.prompts, chars(prompts, true), chars(answers, false), { name: 'builtin:toy', n_ctx: 256 });
  assert.equal(probs.length, 1);
  const w = probs[0]!;
  assert.equal(w.code, 'answer-not-one-token');
  assert.equal(w.severity, 'warning');
  assert.equal(src.slice(w.span.start, w.span.end), '" Mary"');
  assert.match(w.message, /is 5 tokens for builtin:toy \(" ", "M", "a", "r", "y"\)/);
  assert.equal(w.fix?.newText, '" "');
});

test('prompts longer than n_ctx are errors; clean/corrupted length mismatch is a warning; untokenizable text is an error', () => {
  const src = 'abcdefgh\nabc => abcd -> "x"\nok~ -> "~"';
  const p = parsePromptsFile(src);
  const { prompts, answers } = textsToMeasure(p.prompts);
  const probs = tokenProblems(p.prompts, chars(prompts, true), chars(answers, false), { name: 'm', n_ctx: 8 });
  assert.deepEqual(probs.map((x) => [x.span.line, x.code, x.severity]), [
    [0, 'prompt-too-long', 'error'],
    [1, 'length-mismatch', 'warning'],
    [2, 'cannot-tokenize', 'error'],
    [2, 'cannot-tokenize', 'error'],
  ]);
  assert.match(probs[0]!.message, /9 tokens for m, longer than its context of 8 tokens/);
});

test('texts edited since they were measured are skipped', () => {
  const p = parsePromptsFile('abc -> " xy"');
  assert.deepEqual(tokenProblems(p.prompts, new Map(), new Map(), { name: 'm', n_ctx: 4 }), []);
});
