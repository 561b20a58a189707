/**
 * Bounded input: the oversized experiment files that used to exhaust memory or run for minutes
 * (a 50 MB prompts array, 1e8 noise samples, 1e6 hooks, 10,000 analyses, JSON nested 100,000
 * deep, …) are each a located error, given at once and without large allocations.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseExperiment, EXPERIMENT_LIMITS, type FileReader } from '../../src/engine/experiments/parse.js';
import { LineIndex } from '../../src/engine/experiments/json.js';
import { ESTIMATE_OVERHEAD, budgetDiagnostics, describeEstimate, estimateExperiment } from '../../src/engine/experiments/estimate.js';
import type { HookedTransformerConfig } from '../../src/engine/model/config.js';
import { main } from '../../src/engine/cli.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

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
  ['a 50 MB prompts array', () => base({ prompts: Array.from({ length: 400_000 }, (_, i) => ({ prompt: `prompt number ${i} with some words in it`, corrupted: `prompt number ${i} with other words in it` })) }), /has \d+ (characters|bytes); the limit is 4194304( characters)?: put long prompt lists in a \.prompts file/],
  ['20,000 prompts', () => base({ prompts: Array.from({ length: 20_000 }, () => ({ prompt: 'a b' })) }), /20000 prompts; a group may have at most 4096/, '"prompts"'],
  ['causal_trace with samples 1e8', () => base({ analyses: [{ kind: 'causal_trace', subject: [0, 1], samples: 100_000_000 }] }), /100000000 noisy samples; at most 1000/, '"samples"'],
  ['head_scores with a batch of 1e7', () => base({ analyses: [{ kind: 'head_scores', batch: 10_000_000 }] }), /a batch of 10000000 random sequences; at most 1024/, '"batch"'],
  ['an ablation over 5,000 hooks', () => base({ analyses: [{ kind: 'ablation', hooks: Array.from({ length: 5000 }, (_, i) => `blocks.${i}.hook_resid_pre`) }] }), /5000 hooks; at most 4096/, '"hooks"'],
  ['an ablation over 1,000,000 hooks', () => base({ analyses: [{ kind: 'ablation', hooks: Array.from({ length: 1_000_000 }, (_, i) => `blocks.${i}.hook_resid_pre`) }] }), /has \d+ (characters|bytes); the limit is 4194304/],
  ['10,000 analyses', () => base({ analyses: Array.from({ length: 10_000 }, () => ({ kind: 'logit_diff' })) }), /10000 analyses; an experiment may have at most 256/, '"analyses"'],
  ['a 2 MB description', () => base({ description: 'x'.repeat(2_000_000) }), /a string longer than 1000000 characters/, '"description"'],
  ['a 50 MB description', () => base({ description: 'x'.repeat(50_000_000) }), /has \d+ (characters|bytes); the limit is 4194304/],
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

// ---------------------------------------------------------------------------------------------
// The same table through `mechlens run` (as a user or a careless script meets it), plus the rows
// that need the model: every row is a located error within 2 s and under 500 MB more memory, or
// a run that prints its estimate first and stays within its budget.

const ROW_MS = 2000;
const ROW_BYTES = 500 * 1024 * 1024;

/** Memory growth of the process during fn: the new high-water mark if fn set one, else the RSS after. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; grew: number }> {
  const rss0 = process.memoryUsage().rss;
  const max0 = process.resourceUsage().maxRSS * 1024;
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  const max1 = process.resourceUsage().maxRSS * 1024;
  return { value, ms, grew: (max1 > max0 ? max1 : process.memoryUsage().rss) - rss0 };
}

/**
 * `mechlens run` in-process (cli.ts main), capturing stderr only: the test runner reports
 * through this process's stdout, which must keep flowing (test/helpers/cli.ts captures both).
 */
async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const err: string[] = [];
  let out = '';
  const writeErr = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    const code = await main(args, { out: (t) => void (out += t) });
    return { code, out, err: err.join('') };
  } finally {
    process.stderr.write = writeErr;
  }
}

function workspace(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-limits-'));
}

/** `mechlens run` of `text`; the error line for the file (file:line:col: error: ...) and its 1-based line. */
async function cliRow(text: string, extra: string[] = []): Promise<{ code: number; err: string; ms: number; grew: number; file: string }> {
  const ws = workspace();
  const file = path.join(ws, 'row.experiment.json');
  fs.writeFileSync(file, text);
  const r = await measured(() => runCli(['run', file, '--out', path.join(ws, 'run'), ...extra]));
  return { code: r.value.code, err: r.value.err, ms: r.ms, grew: r.grew, file };
}

function errorLines(err: string): { line: number; col: number; message: string }[] {
  return [...err.matchAll(/row\.experiment\.json:(\d+):(\d+): error: (.*)/g)].map((m) => ({ line: Number(m[1]), col: Number(m[2]), message: m[3]! }));
}

for (const [what, make, re, at] of rows) {
  test(`mechlens run, ${what}: a located error within 2 s`, async () => {
    const text = make();
    const r = await cliRow(text);
    assert.equal(r.code, 1, r.err.slice(0, 500));
    const es = errorLines(r.err);
    assert.equal(es.length, 1, r.err.slice(0, 500));
    assert.match(es[0]!.message, re);
    if (at) assert.equal(es[0]!.line, new LineIndex(text).position(text.indexOf(at)).line + 1);
    assert.ok(r.ms < ROW_MS, `${r.ms.toFixed(0)} ms`);
    assert.ok(r.grew < ROW_BYTES, `grew ${(r.grew / 2 ** 20).toFixed(0)} MB`);
    assert.ok(!fs.existsSync(path.join(path.dirname(r.file), 'run')), 'nothing is written');
  });
}

const MODEL_ROWS: [string, () => string, string[], RegExp, string][] = [
  ['causal_trace with 100,000 samples', () => base({ analyses: [{ kind: 'causal_trace', subject: [1, 2], samples: 100_000 }] }), [], /100000 noisy samples; at most 1000/, '"samples"'],
  ['neuron_activations of /dev/zero', () => base({ analyses: [{ kind: 'neuron_activations', layer: 0, neuron: 0, file: '/dev/zero' }] }), [], /"\/dev\/zero" is an absolute path: an experiment may name only files inside its folder/, '"file"'],
  ['top-level __proto__ and constructor keys', () => base({}).replace(/^\{/, '{"__proto__": {"polluted": 1}, "constructor": {"x": 1}, '), [], /unknown property "(__proto__|constructor)"/, '"__proto__"'],
  ['an ablation listing more hooks than the model has', () => base({ analyses: [{ kind: 'ablation', hooks: Array.from({ length: 200 }, () => 'blocks.0.hook_resid_pre') }] }), [], /200 hooks listed, but builtin:toy has \d+ hook points/, '"hooks"'],
  ['causal_trace with 1000 samples over a 120 MB budget', () => base({ analyses: [{ kind: 'logit_diff' }, { kind: 'causal_trace', subject: [1, 2], samples: 1000 }] }), ['--memory-budget', '120'], /analysis 2 \(causal_trace\) needs about [\d.]+ MB of memory \(\d+ forward passes\), over the budget of 120 MB \(--memory-budget\): use fewer "samples" or a shorter prompt/, '"kind": "causal_trace"'],
  ['head_scores with a batch of 1024 over a 10 MB budget', () => base({ analyses: [{ kind: 'head_scores', batch: 1024 }] }), ['--memory-budget', '10'], /analysis 1 \(head_scores\) needs about [\d.]+ MB .*over the budget of 10\.0 MB .*a smaller "batch" or "seqLen"/, '"kind": "head_scores"'],
];

for (const [what, make, extra, re, at] of MODEL_ROWS) {
  test(`mechlens run, ${what}: a located error within 2 s`, async () => {
    const text = make().replace(/"kind":"/g, '"kind": "');
    const r = await cliRow(text, extra);
    assert.equal(r.code, 1, r.err.slice(0, 800));
    const es = errorLines(r.err);
    assert.ok(es.length >= 1, r.err.slice(0, 800));
    assert.match(es[0]!.message, re);
    assert.equal(es[0]!.line, new LineIndex(text).position(text.indexOf(at)).line + 1);
    assert.ok(r.ms < ROW_MS, `${r.ms.toFixed(0)} ms`);
    assert.ok(r.grew < ROW_BYTES, `grew ${(r.grew / 2 ** 20).toFixed(0)} MB`);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined, 'Object.prototype is untouched');
  });
}

const RUN_ROWS: [string, () => string][] = [
  ['4096 prompts (the most a group may have)', () => base({ prompts: Array.from({ length: 4096 }, (_, i) => ({ prompt: `ab${'cd'[i % 2]}`, answer: 'd', wrong: 'e' })) })],
  ['head_scores with a batch of 1024 (the most it may have)', () => base({ analyses: [{ kind: 'head_scores', batch: 1024, seqLen: 20 }] })],
];

for (const [what, make] of RUN_ROWS) {
  test(`mechlens run, ${what}: runs with its estimate shown first and within its budget`, { timeout: 120_000 }, async () => {
    const budgetMB = 300;
    const r = await cliRow(make(), ['--memory-budget', String(budgetMB)]);
    assert.equal(r.code, 0, r.err.slice(0, 800));
    const lines = r.err.split('\n');
    assert.match(lines[0]!, /^estimate: at most ~[\d.]+ [KM]B at once, \d+ forward passes in all \(budget 300 MB\)$/);
    assert.match(lines[1]!, /^ {2}analysis 1 \((logit_diff|head_scores)\): ~[\d.]+ [KM]B, \d+ forward pass/);
    assert.ok(lines.findIndex((l) => l.startsWith('estimate:')) < lines.findIndex((l) => l.startsWith('[1/1]')), 'the estimate comes before the first analysis');
    assert.ok(r.grew < budgetMB * 2 ** 20, `grew ${(r.grew / 2 ** 20).toFixed(0)} MB, over the ${budgetMB} MB budget`);
  });
}

test('estimates grow with what an analysis asks for, and the budget check names the analysis', () => {
  const cfg = { n_layers: 12, d_model: 768, n_heads: 12, d_head: 64, d_mlp: 3072, d_vocab: 50257, d_vocab_out: 50257, n_ctx: 1024, attn_only: false, model_name: 'gpt2' } as unknown as HookedTransformerConfig;
  const parsed = parseExperiment(base({ analyses: [{ kind: 'causal_trace', subject: [1, 2], samples: 10 }, { kind: 'causal_trace', subject: [1, 2], samples: 1000 }, { kind: 'head_scores', batch: 10 }, { kind: 'head_scores', batch: 1000 }] }), '/virtual/e.experiment.json', none);
  const x = parsed.experiment!;
  const tokens = [{ clean: [[1, 2, 3, 4, 5, 6, 7, 8]], corrupted: null, answers: null, strTokens: [] }];
  const est = estimateExperiment(x, cfg, tokens);
  const [ct10, ct1000, hs10, hs1000] = est.analyses;
  assert.ok(ct1000!.bytes > 10 * ct10!.bytes, `${ct1000!.bytes} vs ${ct10!.bytes}`);
  assert.ok(ct1000!.forwards > ct10!.forwards);
  assert.ok(hs1000!.forwards >= 50 * hs10!.forwards / 2, 'head scores: work grows with the batch');
  // A budget just above every other analysis: only the 1000-sample trace is over it.
  const budget = Math.max(ct10!.bytes, hs10!.bytes, hs1000!.bytes) * ESTIMATE_OVERHEAD + 1;
  assert.ok(ct1000!.bytes * ESTIMATE_OVERHEAD > budget);
  const ds = budgetDiagnostics(x, est, budget, 'a test budget');
  assert.deepEqual(ds.map((d) => d.message.slice(0, 28)), ['analysis 2 (causal_trace) ne']);
  assert.match(ds[0]!.message, /needs about [\d.]+ GB of memory \(\d+ forward passes\), over the budget of [\d.]+ [MG]B \(a test budget\): use fewer "samples"/);
  assert.ok(describeEstimate(x, est, budget)[0]!.startsWith('estimate: at most ~'));
});
