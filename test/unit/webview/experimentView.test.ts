/** The experiment results view in jsdom: every block kind, checks met / not met, references, NaN-as-null from run.json, exports. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExperimentState, HeatmapData } from '../../../src/protocol/webview.js';
import { renderState } from '../../../src/webview/views/index.js';
import { cleanHeatmap, sharedZmax } from '../../../src/webview/views/experiment.js';
import { flush, makeCtx, makeDom, texts } from './jsdomEnv.js';
import type { UiState } from '../../../src/webview/context.js';

const tokens = ['<|bos|>', 'When', ' Mary', ' and', ' John'];
const posLabels = tokens.map((t, i) => `${t}_${i}`);

function sweep(title: string, f: (l: number, p: number) => number | null): HeatmapData {
  return { title, rowAxis: 'layer', colAxis: 'position', rowLabels: ['0', '1', '2'], colLabels: posLabels, values: [0, 1, 2].map((l) => posLabels.map((_, p) => f(l, p) as number)), valueLabel: 'normalised logit diff' };
}

const MOCK_EXPERIMENT: ExperimentState = {
  kind: 'experiment',
  title: 'IOI in a toy model',
  model: 'toy',
  description: 'Which positions carry the indirect object.',
  metric: 'logit_diff, patching normalised: (patched − corrupted) / (clean − corrupted)',
  file: '/w/ioi.experiment.json',
  run: { id: '2026-01-01T00-00-00-000Z-experiment-abcd', dir: '/w/.mechlens/runs/x', createdAt: '2026-01-01T00:00:00.000Z', elapsedMs: 1234.5678, cancelled: false },
  sections: [
    {
      index: 0, kind: 'logit_diff', group: null, title: 'Logit difference', elapsedMs: 12.3456789,
      checks: [
        { what: 'average clean logit difference', expected: 2.1055, actual: 2.10551234, tolerance: 0.0001, ok: true },
        { what: 'clean logit difference of prompt 1', expected: 1.6924, actual: null, tolerance: 0.0001, ok: false },
      ],
      blocks: [
        { type: 'stats', items: [{ label: 'clean', value: 2.105512345, format: 'signed' }, { label: 'corrupted', value: -2.1055123, format: 'signed' }] },
        { type: 'table', title: 'Per prompt', columns: ['#', 'clean prompt', 'clean'], rows: [[0, 'When Mary and John', 1.754212345], [1, 'When John and Mary', null]] },
      ],
    },
    {
      index: 1, kind: 'patch', group: null, title: 'Activation patching: blocks.L.hook_resid_pre', elapsedMs: 50,
      blocks: [{ type: 'compare', exact: sweep('resid_pre patching', (l, p) => (p === 2 ? 1 - l / 2 : l === 2 && p === 4 ? 0.9 : 0)), estimate: sweep('resid_pre attribution', (l, p) => (p === 2 ? 1.2 - l / 2 : 0)), correlation: 0.97012345, maxAbsDiff: 0.2000001 }],
      notes: ['No attribution patching: not for resid_mid.'],
    },
    {
      index: 2, kind: 'patch_heads', group: 'pairs', title: 'Patching heads (partial)', elapsedMs: 20, partial: true,
      // null: a cell the cancelled run never computed (NaN after run.json).
      blocks: [{ type: 'heatmap', data: { title: 'z patching', rowAxis: 'layer', colAxis: 'head', rowLabels: ['0', '1'], colLabels: ['0', '1'], values: [[0.5, null as unknown as number], [-0.25, 0.125]], valueLabel: 'normalised logit diff' } }],
    },
    { index: 3, kind: 'layer_dla', group: null, title: 'DLA per layer', elapsedMs: 3, blocks: [{ type: 'bars', title: 'DLA per layer', labels: ['embed', 'pos_embed', '0_attn_out', '0_mlp_out'], values: [0.1, -0.05, 1.5, null], valueLabel: 'logit diff contribution' }] },
    { index: 4, kind: 'logit_lens', group: null, title: 'Logit lens', elapsedMs: 3, blocks: [{ type: 'line', title: 'Logit lens', labels: ['0_pre', '0_mid', 'final_post'], values: [0, 0.8, 2.1], xAxis: 'accumulated residual stream', yAxis: 'logit diff', reference: { value: 2.1, label: 'final' } }] },
    {
      index: 5, kind: 'test_prompt', group: null, title: 'Top predictions', elapsedMs: 3,
      blocks: [{ type: 'topk', title: '"When Mary and John"', strTokens: tokens, entries: [{ token: 5, str: ' Mary', logit: 17.0123, prob: 0.2357 }, { token: 6, str: ' the', logit: 15.2, prob: 0.05 }], answer: { token: 5, str: ' Mary', rank: 0, logit: 17.0123, prob: 0.2357 } }],
    },
    { index: 6, kind: 'neuron_activations', group: null, title: 'L0N7', elapsedMs: 3, blocks: [{ type: 'tokens', title: 'L0N7: When Mary and John', tokens, values: [0, 0.5, 1.9648123, -0.0916, null], valueLabel: 'activation' }] },
    { index: 7, kind: 'composition', group: null, title: 'Composition', elapsedMs: 3, blocks: [{ type: 'ref', title: 'K-composition', rowAxis: 'earlier head', colAxis: 'later head', valueLabel: 'composition score', rows: 144, cols: 144, file: 'results.json', path: 'results[7].blocks[0].data', summary: { min: -0.01, max: 0.31234567, top: [{ row: 'L5H5', col: 'L6H9', value: 0.31234567 }] } }] },
    { index: 8, kind: 'attention', group: null, title: 'Attention', elapsedMs: 3, blocks: [{ type: 'heatmap', data: { title: 'L1H2 attention', rowAxis: 'query position', colAxis: 'key position', rowLabels: ['a_0', 'b_1'], colLabels: ['a_0', 'b_1'], values: [[1, 0], [0.25, 0.75]], valueLabel: 'attention' }, scale: 'sequential', square: true, valueFormat: 'percent' }] },
  ],
};

function render(st: ExperimentState, ui: UiState = {}) {
  const dom = makeDom();
  const doc = dom.window.document;
  const ctx = makeCtx(doc);
  for (const [k, v] of Object.entries(ui)) ctx.ui.set(k as keyof UiState, v as never);
  const el = renderState(st, ctx);
  doc.getElementById('app')?.appendChild(el);
  return { dom, doc, ctx, el, win: dom.window };
}

function assertNoRawFloats(el: HTMLElement): void {
  const walker = el.ownerDocument.createTreeWalker(el, 4);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const m = /\d\.\d{6,}/.exec(n.textContent ?? '');
    assert.equal(m, null, `raw float on screen: ${m?.[0] ?? ''}`);
  }
}

test('header, summary, a table of contents and one section per analysis', () => {
  const { el } = render(MOCK_EXPERIMENT);
  assert.ok(el.classList.contains('ml-experiment'));
  assert.equal(el.querySelector('h1')?.textContent, 'IOI in a toy model');
  assert.ok(texts(el, '.ml-badge').includes('toy'));
  assert.ok(texts(el, '.ml-badge').includes('1 of 2 expectations met'));
  assert.match(el.querySelector('.ml-exp-metric')?.textContent ?? '', /^Metric: logit_diff, patching normalised: \(patched − corrupted\) \/ \(clean − corrupted\)\. Patching: 1 = the clean behaviour is restored/);
  const sections = el.querySelectorAll<HTMLElement>('section.ml-exp-section');
  assert.equal(sections.length, 9);
  assert.deepEqual([...sections].map((s) => s.dataset.kind), ['logit_diff', 'patch', 'patch_heads', 'layer_dla', 'logit_lens', 'test_prompt', 'neuron_activations', 'composition', 'attention']);
  const links = [...el.querySelectorAll<HTMLAnchorElement>('.ml-exp-toc a')];
  assert.equal(links.length, 9);
  assert.equal(links[1]?.getAttribute('href'), `#${sections[1]!.id}`);
  assert.match(sections[2]!.querySelector('.ml-note')?.textContent ?? '', /patch_heads · group pairs/);
  assert.match(sections[2]!.textContent ?? '', /Cancelled part-way/);
  assertNoRawFloats(el);
});

test('expect checks show as met / not met with expected and actual', () => {
  const { el } = render(MOCK_EXPERIMENT);
  const rows = el.querySelectorAll('.ml-exp-checks tbody tr');
  assert.equal(rows.length, 2);
  assert.deepEqual(texts(rows[0]!, 'td'), ['✓ met', 'average clean logit difference', '2.1055', '2.1055', '± 1.0e-4']);
  assert.deepEqual(texts(rows[1]!, 'td').slice(0, 4), ['✗ not met', 'clean logit difference of prompt 1', '1.6924', 'n/a']);
  assert.ok(rows[1]!.querySelector('td')!.classList.contains('ml-bad'));
  assert.equal(el.querySelector('.ml-exp-checks h3')?.textContent, 'Expectations: 1 of 2 met');
  assert.deepEqual(texts(el.querySelectorAll('.ml-exp-table')[0]!, 'tbody tr:nth-child(2) td'), ['1', 'When John and Mary', 'n/a']);
});

test('exact sweep beside its attribution estimate: each over its own colour range unless "Same colour range" is ticked', () => {
  const { el } = render(MOCK_EXPERIMENT);
  const cmp = el.querySelector('.ml-exp-compare')!;
  const ranges = () => [...cmp.querySelectorAll<HTMLCanvasElement>('canvas')].map((c) => [Number(c.dataset['zmin']), Number(c.dataset['zmax'])]);
  // The exact map's maximum (1) is its darkest red, not a pale shade of the estimate's 1.2.
  assert.deepEqual(ranges(), [[-1, 1], [-1.2, 1.2]]);
  const box = cmp.querySelector<HTMLInputElement>('.ml-scale-toggle input[type="checkbox"]')!;
  box.checked = true;
  box.dispatchEvent(new box.ownerDocument.defaultView!.Event('change'));
  assert.deepEqual(ranges(), [[-1.2, 1.2], [-1.2, 1.2]]);
  // The choice is kept per figure (vscode.setState), so a re-render keeps it.
  const again = render(MOCK_EXPERIMENT, { sharedScale: { 'resid_pre patching': true } }).el.querySelector('.ml-exp-compare')!;
  assert.deepEqual([...again.querySelectorAll<HTMLCanvasElement>('canvas')].map((c) => Number(c.dataset['zmax'])), [1.2, 1.2]);
});

test('exact sweep beside its attribution estimate: r and the largest difference', () => {
  const { el, win } = render(MOCK_EXPERIMENT);
  const cmp = el.querySelector('.ml-exp-compare')!;
  assert.deepEqual(texts(cmp, '.ml-stat-value'), ['0.970', '0.200']);
  assert.deepEqual(texts(cmp, '.ml-heatmap-title'), ['resid_pre patching', 'resid_pre attribution']);
  assert.equal(el.querySelector('.ml-exp-note')?.textContent, 'No attribution patching: not for resid_mid.');
  // Keyboard navigation shows a cell's hover: layer 0 at ' Mary'_2 is exactly 1.
  const canvas = cmp.querySelector<HTMLCanvasElement>('[data-role="exact"] canvas')!;
  assert.match(canvas.getAttribute('aria-label') ?? '', /3 layer × 5 position, normalised logit diff/);
  const key = (k: string) => canvas.dispatchEvent(new win.KeyboardEvent('keydown', { key: k }));
  key('ArrowRight');
  key('ArrowRight');
  key('ArrowRight');
  const tip = cmp.querySelector<HTMLElement>('[data-role="exact"] .ml-tooltip')!;
  assert.equal(tip.hidden, false);
  assert.equal(tip.textContent, 'layer 0position ·Mary_2normalised logit diff 1.000');
  assert.equal(sharedZmax(cleanHeatmap((MOCK_EXPERIMENT.sections[1]!.blocks[0] as { exact: HeatmapData }).exact), cleanHeatmap((MOCK_EXPERIMENT.sections[1]!.blocks[0] as { estimate: HeatmapData }).estimate)), 1.2);
});

test('missing values (null from run.json) stay missing, never 0', () => {
  const d = cleanHeatmap((MOCK_EXPERIMENT.sections[2]!.blocks[0] as { data: HeatmapData }).data);
  assert.ok(Number.isNaN(d.values[0]![1]));
  assert.throws(() => cleanHeatmap({ ...d, colLabels: ['0'] }), /1 labels|2×1 labels/);
  const { el, win } = render(MOCK_EXPERIMENT);
  const canvas = el.querySelectorAll<HTMLElement>('section.ml-exp-section')[2]!.querySelector('canvas')!;
  const key = (k: string) => canvas.dispatchEvent(new win.KeyboardEvent('keydown', { key: k }));
  key('ArrowRight');
  key('ArrowRight');
  assert.match(el.querySelectorAll<HTMLElement>('section.ml-exp-section')[2]!.querySelector('.ml-tooltip')?.textContent ?? '', /normalised logit diff n\/a$/);
});

test('bars, logit lens, top-k, coloured tokens, attention and a referenced matrix', () => {
  const { el } = render(MOCK_EXPERIMENT);
  const bars = el.querySelector('.ml-exp-bars')!;
  assert.deepEqual(texts(bars, '.ml-bar-label'), ['embed', 'pos_embed', '0_attn_out', '0_mlp_out']);
  assert.equal(texts(bars, '.ml-bar-value')[2], '+1.50');
  assert.equal(bars.querySelector('h3'), null, 'a chart titled like its section gets no second heading');
  assert.equal(el.querySelector('.ml-exp-table h3')?.textContent, 'Per prompt');
  assert.ok(el.querySelector('.ml-exp-line svg, .ml-exp-line .ml-linechart-figure'));
  const topk = el.querySelector('.ml-exp-topk')!;
  assert.equal(topk.querySelectorAll('.ml-topk tbody tr').length, 2);
  assert.ok(topk.querySelector('.ml-topk tbody tr')!.classList.contains('ml-highlight'));
  assert.ok(texts(topk, '.ml-stat-value').includes('23.6%'));
  const tok = el.querySelector('.ml-exp-tokens')!;
  const chips = tok.querySelectorAll<HTMLElement>('.ml-tokens .ml-token');
  assert.equal(chips.length, 5);
  assert.notEqual(chips[2]!.style.backgroundColor, '', 'the largest activation is coloured');
  assert.equal(chips[4]!.style.backgroundColor, '', 'a missing activation is not');
  assert.match(chips[2]!.title, /position 2 {2}' Mary' {2}activation 1\.965/);
  assert.match(tok.querySelector('.ml-note')?.textContent ?? '', /largest activation 1\.965 on/);
  const ref = el.querySelector('.ml-exp-ref')!;
  assert.match(ref.textContent ?? '', /144 earlier head × 144 later head values of composition score: too many to draw here.*results\.json at results\[7\]\.blocks\[0\]\.data/);
  assert.deepEqual(texts(ref, '.ml-toplist li'), ['earlier head L5H5, later head L6H9 +0.3123']);
  const att = el.querySelectorAll<HTMLElement>('section.ml-exp-section')[8]!;
  assert.match(att.querySelector('canvas')?.getAttribute('aria-label') ?? '', /2 query position × 2 key position, attention/);
});

test('heatmaps export SVG / CSV / JSON through the shared toolbar', async () => {
  const { el, ctx, win } = render(MOCK_EXPERIMENT);
  const toolbar = el.querySelector('.ml-exp-compare [data-role="exact"] .ml-heatmap-toolbar')!;
  const btn = (label: string) => [...toolbar.querySelectorAll<HTMLElement>('button, vscode-button')].find((b) => b.textContent === label)!;
  btn('SVG').dispatchEvent(new win.MouseEvent('click'));
  btn('CSV').dispatchEvent(new win.MouseEvent('click'));
  btn('JSON').dispatchEvent(new win.MouseEvent('click'));
  await flush();
  assert.equal(ctx.host.saved.length, 1);
  assert.equal(ctx.host.saved[0]!.format, 'svg');
  assert.equal(ctx.host.saved[0]!.suggestedName, 'resid-pre-patching.svg');
  assert.match(ctx.host.saved[0]!.content, /<svg[\s\S]*resid_pre patching/);
  // The exported figure's title says what it is of: the experiment and the model.
  assert.match(ctx.host.saved[0]!.content, /resid_pre patching — IOI in a toy model · toy/);
  assert.match(ctx.host.copied[0]!, /" Mary_2"/);
  assert.deepEqual((JSON.parse(ctx.host.copied[1]!) as { values: number[][] }).values[0], [0, 0, 1, 0, 0]);
});
