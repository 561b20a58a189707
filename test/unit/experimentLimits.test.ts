/**
 * Bounded input: the oversized experiment files that used to exhaust memory or run for minutes
 * (a 50 MB prompts array, 1e8 noise samples, 1e6 hooks, 10,000 analyses, JSON nested 100,000
 * deep, …) are each a located error, given at once and without large allocations.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseExperiment, EXPERIMENT_LIMITS, type FileReader } from '../../src/engine/experiments/parse.js';
import { LineIndex } from '../../src/engine/experiments/json.js';

const none: FileReader = { read: () => null };
const base = (extra: Record<string, unknown>) => JSON.stringify({ model: 'builtin:toy', prompts: [{ prompt: 'ab', corrupted: 'ac', answer: 'd', wrong: 'e' }], analyses: [{ kind: 'logit_diff' }], ...extra });

function oneError(text: string): { message: string; code: string; line: number; character: number; ms: number } {
  const t0 = performance.now();
  const ds = parseExperiment(text, '/virtual/big.experiment.json', none).diagnostics.filter((d) => d.severity === 'error');
  const ms = performance.now() - t0;
  assert.equal(ds.length, 1, JSON.stringify(ds.map((d) => d.message.slice(0, 200))));
  return { message: ds[0]!.message, code: ds[0]!.code, line: ds[0]!.range.start.line, character: ds[0]!.range.start.character, ms };
}

const rows: [string, () => string, RegExp, string?][] = [
  ['a 50 MB prompts array', () => base({ prompts: Array.from({ length: 400_000 }, (_, i) => ({ prompt: `prompt number ${i} with some words in it`, corrupted: `prompt number ${i} with other words in it` })) }), /characters; the limit is 4194304: put long prompt lists in a \.prompts file/],
  ['20,000 prompts', () => base({ prompts: Array.from({ length: 20_000 }, () => ({ prompt: 'a b' })) }), /20000 prompts; a group may have at most 4096/, '"prompts"'],
  ['causal_trace with samples 1e8', () => base({ analyses: [{ kind: 'causal_trace', subject: [0, 1], samples: 100_000_000 }] }), /100000000 noisy samples; at most 1000/, '"samples"'],
  ['head_scores with a batch of 1e7', () => base({ analyses: [{ kind: 'head_scores', batch: 10_000_000 }] }), /a batch of 10000000 random sequences; at most 1024/, '"batch"'],
  ['an ablation over 5,000 hooks', () => base({ analyses: [{ kind: 'ablation', hooks: Array.from({ length: 5000 }, (_, i) => `blocks.${i}.hook_resid_pre`) }] }), /5000 hooks; at most 4096/, '"hooks"'],
  ['10,000 analyses', () => base({ analyses: Array.from({ length: 10_000 }, () => ({ kind: 'logit_diff' })) }), /10000 analyses; an experiment may have at most 256/, '"analyses"'],
  ['a 2 MB description', () => base({ description: 'x'.repeat(2_000_000) }), /a string longer than 1000000 characters/, '"description"'],
  ['a 50 MB description', () => base({ description: 'x'.repeat(50_000_000) }), /characters; the limit is 4194304/],
  ['JSON nested 100,000 deep', () => '['.repeat(100_000) + ']'.repeat(100_000), /nested deeper than 64 levels/],
];

for (const [what, make, re, at] of rows) {
  test(`${what}: a located error at once`, () => {
    const text = make();
    const rss0 = process.memoryUsage().rss;
    const e = oneError(text);
    assert.match(e.message, re);
    assert.ok(e.ms < 2000, `${e.ms.toFixed(0)} ms`);
    assert.ok(process.memoryUsage().rss - rss0 < 500 * 1024 * 1024, 'under 500 MB more');
    if (at) {
      const want = new LineIndex(text).position(text.indexOf(at));
      assert.equal(e.line, want.line);
      // The error points at the key's value (or the key itself for the whole array).
      assert.ok(e.character >= want.character && e.character <= want.character + at.length + 2, `column ${e.character} near ${want.character}`);
    }
  });
}

test('the limits are what the docs say', () => {
  assert.deepEqual({ ...EXPERIMENT_LIMITS }, { fileChars: 4194304, analyses: 256, groups: 64, promptsPerGroup: 4096, hooks: 4096, samples: 1000, batch: 1024 });
});
