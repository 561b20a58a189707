/** The results panel state of saved runs: size limits (references into results.json), the report's expansion, old runs, and a real run's state. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExperimentBlock, ExperimentState, HeatmapData } from '../../src/protocol/webview.js';
import type { RunRecord } from '../../src/protocol/runs.js';
import { checkTotals, expandRefs, experimentStateOf, firstHeatmap, heatmapSummary, limitState } from '../../src/protocol/experimentsState.js';
import { checkWithModel, parseExperiment } from '../../src/engine/experiments/parse.js';
import { runExperiment } from '../../src/engine/experiments/run.js';
import { saveRun } from '../../src/engine/experiments/store.js';
import { LoadedEngine } from '../../src/engine/engine.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-exp-state-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function hm(title: string, rows: number, cols: number, f: (r: number, c: number) => number | null = (r, c) => r - c): HeatmapData {
  return {
    title, rowAxis: 'layer', colAxis: 'position', valueLabel: 'normalised logit diff',
    rowLabels: Array.from({ length: rows }, (_, i) => String(i)), colLabels: Array.from({ length: cols }, (_, i) => `t_${i}`),
    values: Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, c) => f(r, c) as number)),
  };
}

function state(blocks: ExperimentBlock[][]): ExperimentState {
  return {
    kind: 'experiment', title: 'T', model: 'm', description: '', metric: 'logit_diff',
    sections: blocks.map((b, i) => ({ index: i, kind: 'patch', group: null, title: `S${i}`, elapsedMs: 1, blocks: b, ...(i === 0 ? { checks: [{ what: 'a', expected: 1, actual: 1, tolerance: 0.1, ok: true }, { what: 'b', expected: 1, actual: null, tolerance: 0.1, ok: false }] } : {}) })),
  };
}

test('heatmaps beyond the limits become references into results.json, with a summary', () => {
  const small = hm('small', 2, 3);
  const big = hm('big', 10, 10, (r, c) => (r === 4 && c === 7 ? -50 : r === 9 && c === 9 ? null : r + c / 100));
  const st = state([[{ type: 'heatmap', data: small }, { type: 'stats', items: [] }], [{ type: 'heatmap', data: big }, { type: 'compare', exact: small, estimate: small, correlation: 1, maxAbsDiff: 0 }]]);
  assert.equal(limitState(st), st, 'nothing over the default limits: the same object');
  const lim = limitState(st, { maxHeatmapCells: 50 });
  assert.notEqual(lim, st);
  assert.equal(lim.sections[0], st.sections[0], 'untouched sections are shared');
  const ref = lim.sections[1]!.blocks[0]!;
  assert.equal(ref.type, 'ref');
  if (ref.type !== 'ref') return;
  assert.equal(ref.path, 'results[1].blocks[0].data');
  assert.equal(ref.file, 'results.json');
  assert.deepEqual([ref.rows, ref.cols, ref.rowAxis, ref.colAxis], [10, 10, 'layer', 'position']);
  assert.equal(ref.summary.min, -50);
  assert.equal(ref.summary.max, 9.08);
  assert.deepEqual(ref.summary.top[0], { row: '4', col: 't_7', value: -50 });
  assert.equal(ref.summary.top.length, 5);
  assert.equal(lim.sections[1]!.blocks[1]!.type, 'compare');
  // A budget for the whole state: the first heatmaps fit, later ones are referenced.
  const budget = limitState(st, { cellBudget: 10 });
  assert.deepEqual(budget.sections.map((s) => s.blocks.map((b) => b.type)), [['heatmap', 'stats'], ['ref', 'ref']]);
  assert.equal((budget.sections[1]!.blocks[1] as { path: string }).path, 'results[1].blocks[1].exact');
  // The report puts them back from results.json.
  const results = { results: st.sections.map((s) => ({ blocks: s.blocks })) };
  assert.deepEqual(expandRefs(budget, results), st);
  assert.equal(expandRefs(budget, null), budget);
  assert.deepEqual(checkTotals(st), { met: 1, total: 2 });
  assert.deepEqual(heatmapSummary(hm('e', 1, 1, () => null)), { min: null, max: null, top: [] });
});

test('run records: experiment states pass (limited), old heatmap runs become one section, other panels are not experiments', () => {
  const base = { id: 'r1', title: 'T', createdAt: '2026-01-01T00:00:00.000Z', model: { spec: 'builtin:toy', name: 'toy', processing: 'default' }, engineVersion: '0.1.0' } as const;
  const st = state([[{ type: 'heatmap', data: hm('a', 2, 2) }]]);
  const rec: RunRecord = { ...base, kind: 'experiment', inputs: { prompts: ['x'], experiment: '/w/a.experiment.json' }, state: st };
  assert.equal(experimentStateOf(rec, '/w/.mechlens/runs/r1'), st);
  const legacy: RunRecord = { ...base, kind: 'experiment', inputs: { prompts: ['x'], experiment: '/w/a.experiment.json', metric: 'logit_diff', cancelled: true }, state: { kind: 'heatmap', model: 'toy', heatmaps: [hm('a', 2, 2), hm('b', 1, 2)], description: 'd' } };
  const l = experimentStateOf(legacy, '/w/.mechlens/runs/r1')!;
  assert.equal(l.kind, 'experiment');
  assert.equal(l.file, '/w/a.experiment.json');
  assert.equal(l.run?.cancelled, true);
  assert.deepEqual(l.sections[0]!.blocks.map((b) => b.type === 'heatmap' && b.data.title), ['a', 'b']);
  assert.equal(experimentStateOf({ ...base, kind: 'attention', inputs: { prompts: [] }, state: { kind: 'error', title: 't', message: 'm' } }, '/x'), null);
});

test('a real run of samples/toy-patching.experiment.json: patching as layer × tok_i heatmaps beside attribution patching', async () => {
  const file = path.join(__dirname, '..', '..', 'samples', 'toy-patching.experiment.json');
  const text = fs.readFileSync(file, 'utf8').replace('"builtin:default"', '"builtin:toy"');
  const parsed = parseExperiment(text, file);
  assert.ok(parsed.experiment, parsed.diagnostics.map((d) => d.message).join('; '));
  const x = parsed.experiment;
  const eng = await LoadedEngine.load('builtin:toy', { device: 'cpu' });
  try {
    const checked = checkWithModel(x, eng.model.cfg, eng.tokenizer);
    assert.deepEqual(checked.diagnostics, []);
    const res = await runExperiment(x, eng.model, eng.tokenizer, checked.tokens);
    const saved = saveRun(x, res, { workspace: tmp, modelName: eng.model.cfg.model_name });
    const rec = JSON.parse(fs.readFileSync(path.join(saved.dir, 'run.json'), 'utf8')) as RunRecord;
    const st = experimentStateOf(rec, saved.dir)!;
    assert.equal(st.kind, 'experiment');
    assert.equal(st.file, file);
    const patch = st.sections.find((s) => s.kind === 'patch')!;
    const cmp = patch.blocks.find((b) => b.type === 'compare');
    assert.ok(cmp && cmp.type === 'compare', `patch blocks: ${patch.blocks.map((b) => b.type).join(', ')}`);
    // The pair replaces the exact map (it is not drawn twice).
    assert.equal(patch.blocks.filter((b) => b.type === 'heatmap').length, 0);
    const tokens = checked.tokens[0]!.strTokens;
    assert.deepEqual(cmp.exact.colLabels, tokens.map((t, i) => `${t}_${i}`));
    assert.deepEqual(cmp.exact.rowLabels, ['0', '1']);
    assert.deepEqual(cmp.estimate.colLabels, cmp.exact.colLabels);
    assert.ok(cmp.correlation !== null && cmp.correlation > -1 && cmp.correlation <= 1);
    const exactFlat = (res.results.find((r) => r.kind === 'patch')!.data['values'] as number[]);
    assert.deepEqual(cmp.exact.values.flat(), exactFlat);
    assert.equal(firstHeatmap(st, 'patch'), cmp.exact);
    const heads = st.sections.find((s) => s.kind === 'patch_heads')!.blocks[0]!;
    assert.equal(heads.type, 'compare');
    if (heads.type === 'compare') {
      assert.deepEqual([heads.exact.rowAxis, heads.exact.colAxis], ['layer', 'head']);
      // z patching is linear in z up to the attention's softmax: the estimate tracks it closely.
      assert.ok((heads.correlation ?? 0) > 0.9, `z correlation ${heads.correlation}`);
    }
  } finally {
    await eng.dispose();
  }
});
