import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { attentionState, attributionState, inspectState, isResultState, meanAttentionPatterns, modelLabel, panelTitle, runRecord, sameLengthPrompts, shortText, topKState } from '../../../src/extension/states.js';
import type { AttributionResult, ModelInfo, TestPromptResult } from '../../../src/protocol/engine.js';
import { isRunRecord, newRunId, runRecordProblem } from '../../../src/protocol/runs.js';

test('panel titles are stable: kind, then the (shortened) first prompt', () => {
  assert.equal(panelTitle('attention', ['When John and Mary went to the shops']), 'MechLens: Attention — When John and Mary went to the shops');
  assert.equal(panelTitle('inspect', ['a\n  b']), 'MechLens: Inspect — a b');
  assert.equal(panelTitle('attribution', ['x', 'y', 'z']), 'MechLens: Logit lens & DLA — x (+2)');
  const long = panelTitle('inspect', ['w'.repeat(100)]);
  assert.ok(long.endsWith('…') && long.length < 80, long);
  assert.equal(shortText('  a   b  '), 'a b');
});

test('meanAttentionPatterns: [batch, head, q, k] per layer -> patterns[layer][head][q][k], the batch mean', () => {
  // 2 layers, 2 heads, 2 prompts, 3 positions; value = b + 10 h + 100 l + q/10 + k/100 (means: b -> 0.5).
  const B = 2, H = 2, P = 3;
  const cache: Record<string, { dims: number[]; data: Float32Array }> = {};
  for (let l = 0; l < 2; l++) {
    const data = new Float32Array(B * H * P * P);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let q = 0; q < P; q++) for (let k = 0; k < P; k++) data[((b * H + h) * P + q) * P + k] = b + 10 * h + 100 * l + q / 10 + k / 100;
    cache[`blocks.${l}.attn.hook_pattern`] = { dims: [B, H, P, P], data };
  }
  const { patterns, batch, pos } = meanAttentionPatterns(cache, 2, 2);
  assert.equal(batch, 2);
  assert.equal(pos, 3);
  assert.equal(patterns.length, 2);
  assert.equal(patterns[1]![1]!.length, 3);
  for (let l = 0; l < 2; l++) for (let h = 0; h < 2; h++) for (let q = 0; q < 3; q++) for (let k = 0; k < 3; k++) {
    const want = 0.5 + 10 * h + 100 * l + q / 10 + k / 100;
    assert.ok(Math.abs(patterns[l]![h]![q]![k]! - want) < 1e-4, `[${l}][${h}][${q}][${k}] ${patterns[l]![h]![q]![k]} vs ${want}`);
  }
  // A sharp head's tiny weights keep their magnitude (6 significant digits, not 6 decimals).
  const tiny = meanAttentionPatterns({ 'blocks.0.attn.hook_pattern': { dims: [1, 1, 2, 2], data: Float32Array.from([1, 0, 1.0088e-7, 0.9999999]) } }, 1, 1);
  assert.ok(Math.abs(tiny.patterns[0]![0]![1]![0]! - 1.0088e-7) < 1e-12, `${tiny.patterns[0]![0]![1]![0]}`);
  const s = attentionState('m', ['p1', 'p2'], ['<bos>', 'a', 'b'], cache, 2, 2);
  assert.equal(s.kind, 'attention');
  assert.equal(s.meanOver, 2);
  assert.equal(s.nLayers, 2);
  assert.throws(() => attentionState('m', ['p'], ['a', 'b'], cache, 2, 2), /3 positions but the prompt has 2 tokens/);
  assert.throws(() => meanAttentionPatterns(cache, 3, 2), /no blocks\.2\.attn\.hook_pattern/);
  assert.throws(() => meanAttentionPatterns(cache, 2, 4), /expected \[batch, 4, pos, pos\]/);
});

test('sameLengthPrompts keeps the prompts as long as the first', () => {
  assert.deepEqual(sameLengthPrompts(['a', 'b', 'c'], [[1, 2], [3], [4, 5]]), { kept: [0, 2], skipped: [1] });
});

const info = { spec: 'builtin:toy', cfg: { model_name: 'toy' }, processing: 'default' } as unknown as ModelInfo;
const topk: TestPromptResult = { tokens: [1, 2], strTokens: ['a', 'b'], topK: [{ token: 3, str: 'c', logit: 1, prob: 0.5 }], perTokenLoss: [0.1] };

test('inspect, attribution and top-k states carry what the webview needs', () => {
  const i = inspectState('toy', 'ab', topk, { token: 4, str: 'd', logit: -1 });
  assert.deepEqual(i.wrong, { token: 4, str: 'd', logit: -1 });
  const r: AttributionResult = {
    tokens: [1], strTokens: ['a'], answer: { token: 3, str: ' x', logit: 2, prob: 0.3, rank: 0, predicted: false },
    wrong: { token: 4, str: ' y', logit: 1, prob: 0.1, rank: 2 }, layerLabels: ['embed'], layerDla: [1], headDla: [[0.5]], logitLens: { labels: ['final_post'], values: [1] }, total: 1, unembedBias: 0.25, lnFinalTerm: null,
  };
  const a = attributionState('toy', 'a', r);
  assert.deepEqual(a.target, { answer: ' x', wrong: ' y' });
  assert.equal(a.total, 1);
  assert.equal(a.unembedBias, 0.25);
  assert.deepEqual(topKState(null, null, null, 'no model'), { kind: 'topk', model: null, prompt: null, result: null, message: 'no model' });
  assert.equal(modelLabel(info), 'toy');
  assert.equal(modelLabel({ ...info, processing: 'none' }), 'toy (none)');
  assert.ok(isResultState(i) && !isResultState({ kind: 'loading', title: '', message: '' }));
});

test('run records: sortable ids, complete fields, validation', () => {
  const id = newRunId('attention', new Date('2026-01-02T03:04:05.678Z'), () => 0.5);
  assert.equal(id, '2026-01-02T03-04-05-678Z-attention-8000');
  assert.match(newRunId('my kind/x'), /-my_kind_x-[0-9a-f]{4}$/);
  const rec = runRecord({ id, kind: 'inspect', title: 'MechLens: Inspect — ab', createdAt: new Date('2026-01-02T03:04:05.678Z'), info, engineVersion: '0.1.0', inputs: { prompts: ['ab'] }, state: inspectState('toy', 'ab', topk) });
  assert.equal(rec.createdAt, '2026-01-02T03:04:05.678Z');
  assert.deepEqual(rec.model, { spec: 'builtin:toy', name: 'toy', processing: 'default' });
  assert.ok(isRunRecord(JSON.parse(JSON.stringify(rec))));
  assert.match(runRecordProblem({ ...rec, createdAt: 'yesterday' }) ?? '', /createdAt/);
  assert.match(runRecordProblem({ ...rec, inputs: {} }) ?? '', /prompts/);
  assert.match(runRecordProblem([]) ?? '', /object/);
});
