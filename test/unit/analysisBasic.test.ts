/**
 * analysis/basic.ts against TransformerLens's expected.json of the GPT-2 oracle fixture, for every processing mode:
 * loss, logit_diff, head_dla, layer_dla and logit_lens within 1e-4; plus the patching metric,
 * top-k and rank helpers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { makeConfig } from '../../src/engine/model/config.js';
import { configFromHfGpt2 } from '../../src/engine/arch/gpt2.js';
import { PROCESSING_MODES, type Params, type Processing } from '../../src/engine/model/params.js';
import { f32, type F32 } from '../../src/engine/tensor/tensor.js';
import { ActivationCache } from '../../src/engine/cache/activationCache.js';
import {
  headDla,
  layerDla,
  layerDlaLabels,
  logitDiff,
  logitDiffs,
  logitLens,
  logitsAt,
  loss,
  normalizedPatchingMetric,
  rankOf,
  topK,
} from '../../src/engine/analysis/basic.js';

const DIR = path.join(__dirname, '..', 'fixtures', 'gpt2-tied-gelu-new');
const ALL = readSafetensors(path.join(DIR, 'expected.safetensors'));
const SPEC = JSON.parse(fs.readFileSync(path.join(DIR, 'spec.json'), 'utf8')) as { tokens: number[][]; answers: number[][] };
const HF = JSON.parse(fs.readFileSync(path.join(DIR, 'config.json'), 'utf8')) as Record<string, unknown>;

interface ExpectedMode {
  loss: number;
  logit_diff: number;
  head_dla: number[][];
  layer_dla: number[];
  logit_lens: { labels: string[]; values: number[] };
}
const EXPECTED = (JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8')) as { processing: Record<Processing, ExpectedMode> }).processing;
const ATOL = 1e-4;

function prefixed(prefix: string): Map<string, F32> {
  const m = new Map<string, F32>();
  for (const [k, v] of ALL) if (k.startsWith(prefix)) m.set(k.slice(prefix.length), v);
  return m;
}

const B = SPEC.tokens.length;
const P = SPEC.tokens[0]!.length;
const V = Number(HF['vocab_size']);

/** TransformerLens's cache and params of a mode ('default+refactor' stores only the params refactoring changed). */
function cacheOf(mode: Processing): ActivationCache {
  const hooks = prefixed(`${mode}/`);
  for (const k of [...hooks.keys()]) if (k === 'logits' || /^(params|dla|lens|patching|loss)\//.test(k) || k.startsWith('unembed.')) hooks.delete(k);
  const params: Params = mode === 'default+refactor' ? new Map([...prefixed('default/params/'), ...prefixed('default+refactor/params/')]) : prefixed(`${mode}/params/`);
  const base = configFromHfGpt2(HF, 'gpt2-tied-gelu-new');
  const cfg = mode === 'none' ? base : makeConfig({ ...base, normalization_type: 'LNPre' });
  return new ActivationCache(hooks, cfg, params);
}

function logitsOf(mode: Processing): F32 {
  return ALL.get(`${mode}/logits`)!;
}

/** Asserts |a - b| <= ATOL elementwise and reports the largest difference on failure. */
function assertNear(actual: number | readonly number[] | readonly (readonly number[])[], expected: typeof actual, what: string): void {
  const flat = (x: typeof actual): number[] => (typeof x === 'number' ? [x] : (x as readonly (number | readonly number[])[]).flatMap((v) => (typeof v === 'number' ? [v] : [...v])));
  const a = flat(actual);
  const e = flat(expected);
  assert.equal(a.length, e.length, `${what}: ${a.length} values, expected ${e.length}`);
  let m = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - e[i]!);
    if (!(d <= m)) {
      m = d;
      at = i;
    }
  }
  assert.ok(m <= ATOL, `${what}: max |difference| ${m.toExponential(3)} at flat index ${at} (got ${a[at]}, expected ${e[at]})`);
}

for (const mode of PROCESSING_MODES) {
  const ex = EXPECTED[mode];

  test(`[${mode}] loss and logit_diff match expected.json`, () => {
    assertNear(loss(logitsOf(mode), SPEC.tokens), ex.loss, 'loss');
    assertNear(logitDiff(logitsOf(mode), SPEC.answers), ex.logit_diff, 'logit_diff');
  });

  test(`[${mode}] head_dla matches expected.json`, () => {
    const got = headDla(cacheOf(mode), SPEC.answers);
    assert.equal(got.length, 2);
    assert.ok(got.every((r) => r.length === 4));
    assertNear(got, ex.head_dla, 'head_dla');
  });

  test(`[${mode}] layer_dla matches expected.json`, () => {
    const cache = cacheOf(mode);
    assert.deepEqual(layerDlaLabels(cache), ['embed', 'pos_embed', '0_attn_out', '0_mlp_out', '1_attn_out', '1_mlp_out']);
    assertNear(layerDla(cache, SPEC.answers), ex.layer_dla, 'layer_dla');
  });

  test(`[${mode}] logit_lens matches expected.json`, () => {
    const got = logitLens(cacheOf(mode), SPEC.answers);
    assert.deepEqual(got.labels, ex.logit_lens.labels);
    assertNear(got.values, ex.logit_lens.values, 'logit_lens');
  });

  // Folded modes only: the logit lens applies ln_final with its w and b (TransformerLens 3), DLA
  // divides by the cached scale alone, so in 'none' they differ by ln_final's affine.
  if (mode !== 'none') test(`[${mode}] DLA is additive: layer_dla sums to the final logit-lens value`, () => {
    const cache = cacheOf(mode);
    const total = layerDla(cache, SPEC.answers).reduce((a, b) => a + b, 0);
    assertNear(total, logitLens(cache, SPEC.answers).values.at(-1)!, 'sum of layer_dla vs final_post lens');
  });
}

test('default: the final logit-lens value is the logit difference minus the b_U difference', () => {
  const bU = prefixed('default/params/').get('unembed.b_U')!.data;
  const bDiff = SPEC.answers.reduce((s, [c, w]) => s + bU[c!]! - bU[w!]!, 0) / SPEC.answers.length;
  const lens = logitLens(cacheOf('default'), SPEC.answers).values.at(-1)!;
  assertNear(lens, logitDiff(logitsOf('default'), SPEC.answers) - bDiff, 'final_post lens');
});

test('loss per_token and logitDiffs', () => {
  const logits = logitsOf('none');
  const per = loss(logits, SPEC.tokens, { per_token: true });
  assert.deepEqual(per.dims, [B, P - 1]);
  const mean = per.data.reduce((a, b) => a + b, 0) / per.data.length;
  assertNear(mean, EXPECTED.none.loss, 'mean of per-token loss');
  // Brute force one entry: -log softmax(logits[1, 2])[tokens[1][3]].
  const row = logitsAt(logits, 1, 2).data;
  const z = row.reduce((s, v) => s + Math.exp(v), 0);
  assertNear(per.data[1 * (P - 1) + 2]!, Math.log(z) - row[SPEC.tokens[1]![3]!]!, 'per-token loss [1, 2]');
  const diffs = logitDiffs(logits, SPEC.answers);
  assert.equal(diffs.length, B);
  const at0 = logitDiffs(logits, SPEC.answers, 0);
  const r = logitsAt(logits, B - 1, 0).data;
  assertNear(at0[B - 1]!, r[SPEC.answers[B - 1]![0]!]! - r[SPEC.answers[B - 1]![1]!]!, 'logit diff at pos 0');
  assert.throws(() => loss(logits, [[1, 2]]), /do not match logits/);
  assert.throws(() => logitDiff(logits, SPEC.answers.slice(1)), new RegExp(`${B - 1} answer pairs for a batch of ${B}`));
  assert.throws(() => logitDiff(logits, SPEC.answers, P), /out of range/);
  assert.throws(() => headDla(cacheOf('none'), SPEC.answers.slice(0, 1)), new RegExp(`1 answer pairs for a batch of ${B}`));
});

test('normalizedPatchingMetric', () => {
  assert.equal(normalizedPatchingMetric(2, 2, -1), 1);
  assert.equal(normalizedPatchingMetric(-1, 2, -1), 0);
  assert.equal(normalizedPatchingMetric(0.5, 2, -1), 0.5);
  assert.throws(() => normalizedPatchingMetric(1, 3, 3), /must differ/);
});

test('topK and rankOf', () => {
  const row = logitsAt(logitsOf('default'), 0, -1);
  assert.deepEqual(row.dims, [V]);
  const top = topK(row, 5);
  const order = Array.from(row.data.keys()).sort((a, b) => row.data[b]! - row.data[a]! || a - b);
  assert.deepEqual(top.map((t) => t.token), order.slice(0, 5));
  const z = row.data.reduce((s, v) => s + Math.exp(v), 0);
  for (const t of top) assertNear(t.prob, Math.exp(t.logit) / z, `prob of ${t.token}`);
  assert.equal(rankOf(row, order[0]!), 0);
  assert.equal(rankOf(row, order[17]!), 17);
  assert.equal(topK(row, V + 50).length, V);
  assert.deepEqual(topK([1, 3, 3, 2], 3).map((t) => t.token), [1, 2, 3]);
  assert.equal(rankOf(new Float32Array([1, 3, 3, 2]), 2), 0);
  assert.throws(() => topK(logitsOf('default'), 3), /\[d_vocab\]/);
  assert.throws(() => rankOf(row, V), new RegExp(`not in 0\\.\\.${V - 1}`));
  assert.equal(topK(f32([3], [0, 0, 0]), 0).length, 0);
});
