/** Heatmap layout, label thinning, pixel -> cell lookup and rasterising (no DOM needed). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LIGHT_PALETTE, makeLut, valueColor } from '../../../src/webview/colors.js';
import { type LayoutInput, annotationDecimals, binRange, computeLayout, estimateMeasure, hitTest, planColumnLabels, planRowLabels, rasterize, representative, resolveZmax } from '../../../src/webview/components/heatmapCore.js';
import { mockNeuronPatching } from '../../../src/webview/mocks.js';

function input(nRows: number, nCols: number, over: Partial<LayoutInput> = {}): LayoutInput {
  return {
    nRows,
    nCols,
    rowLabels: Array.from({ length: nRows }, (_, i) => String(i)),
    colLabels: Array.from({ length: nCols }, (_, i) => String(i)),
    rowAxis: 'layer',
    colAxis: 'head',
    valueLabel: 'logit diff',
    title: 't',
    width: 800,
    fontSize: 12,
    measure: estimateMeasure(12),
    scale: 'diverging',
    zmax: 1,
    square: false,
    maxCell: 44,
    maxPlotHeight: 560,
    minRowHeight: 14,
    ...over,
  };
}

test('resolveZmax: explicit zmax wins, else max |value|, 1 for all-zero', () => {
  assert.equal(resolveZmax({ values: [[0.2, -3]], zmax: 0.5 }), 0.5);
  assert.equal(resolveZmax({ values: [[0.2, -3, NaN]] }), 3);
  assert.equal(resolveZmax({ values: [[0, 0]] }), 1);
  assert.equal(resolveZmax({ values: [[1]], zmax: 0 }), 1);
});

test('layout: 12×12 cells stop growing at maxCell; everything inside the figure', () => {
  const L = computeLayout(input(12, 12, { width: 1200 }));
  assert.equal(L.cellW, 44);
  assert.equal(L.plot.w, 44 * 12);
  assert.ok(L.plot.x > 0 && L.plot.x + L.plot.w < L.colorbar.x, 'colour bar right of the plot');
  assert.ok(L.colorbar.x + L.colorbar.w < L.width && L.valueLabelPos.x < L.width);
  assert.ok(L.plot.y + L.plot.h < L.colAxisTitle.y && L.colAxisTitle.y < L.height);
  assert.deepEqual(L.colPlan, { rotate: 0, step: 1 });
  assert.equal(L.rowStep, 1);
  assert.deepEqual(
    L.ticks.map((t) => t.label),
    ['−1.0', '−0.5', '0', '0.5', '1.0'],
  );
  // Ticks run top (zmax) to bottom (−zmax).
  assert.ok((L.ticks[0]?.y ?? 0) > (L.ticks[4]?.y ?? 0));
});

test('layout: 3072 neuron columns fit the width, labels thinned to round numbers', () => {
  const L = computeLayout(input(12, 3072, { colAxis: 'neuron' }));
  assert.ok(L.width <= 800, `figure ${L.width}px wider than 800`);
  assert.ok(L.cellW < 1, 'cells are sub-pixel (binned)');
  assert.equal(L.colPlan.rotate, 0, 'short numeric labels stay horizontal');
  assert.ok([100, 200, 500, 1000].includes(L.colPlan.step), `step ${L.colPlan.step}`);
  // No two shown labels overlap: spacing ≥ the widest label.
  assert.ok(L.colPlan.step * L.cellW >= estimateMeasure(12)('3072'));
  assert.equal(L.cellH, 14);
});

test('layout: long token labels rotate 45° and the plot makes room on the left', () => {
  const toks = ['<|endoftext|>_0', 'When_1', '·Mary_2', '·and_3', '·John_4', '·went_5', '·to_6', '·the_7', '·store_8', ',_9', '·John_10', '·gave_11', '·a_12', '·drink_13', '·to_14'];
  const L = computeLayout(input(12, 15, { colLabels: toks, width: 700 }));
  assert.equal(L.colPlan.rotate, 45);
  assert.equal(L.colPlan.step, 1);
  const reach = estimateMeasure(12)('<|endoftext|>_0') * 0.71;
  assert.ok(L.plot.x + L.cellW / 2 >= reach - 1, 'the first diagonal label stays inside the figure');
  // Very narrow: labels thin instead of overlapping.
  const N = computeLayout(input(12, 15, { colLabels: toks, width: 240 }));
  assert.ok(N.colPlan.step > 1, `step ${N.colPlan.step}`);
});

test('planColumnLabels / planRowLabels', () => {
  assert.deepEqual(planColumnLabels(20, 44, 16), { rotate: 0, step: 1 });
  assert.deepEqual(planColumnLabels(80, 30, 16), { rotate: 45, step: 1 });
  assert.deepEqual(planColumnLabels(80, 5, 16), { rotate: 45, step: 5 });
  assert.deepEqual(planColumnLabels(24, 1, 16), { rotate: 0, step: 50 });
  assert.equal(planRowLabels(14, 12), 1);
  assert.equal(planRowLabels(3, 12), 5);
});

test('square layouts keep cells square and cap the height', () => {
  const L = computeLayout(input(15, 15, { square: true, maxCell: 36, width: 900 }));
  assert.equal(L.cellW, L.cellH);
  const big = computeLayout(input(400, 400, { square: true, width: 2000 }));
  assert.ok(big.plot.h <= 560 + 1e-9 && Math.abs(big.cellW - big.cellH) < 1e-9);
});

test('hitTest maps pixels to cells; outside the plot is null', () => {
  const values = [
    [1, 2, 3],
    [4, 5, 6],
  ];
  const L = computeLayout(input(2, 3));
  const at = (r: number, c: number) => hitTest(L, values, L.plot.x + (c + 0.5) * L.cellW, L.plot.y + (r + 0.5) * L.cellH);
  assert.deepEqual(at(0, 0), { row: 0, col: 0, value: 1, rows: [0, 1], cols: [0, 1] });
  assert.equal(at(1, 2)?.value, 6);
  // Cell edges: the last pixel of a cell still belongs to it.
  assert.equal(hitTest(L, values, L.plot.x + L.cellW - 0.01, L.plot.y + 1)?.col, 0);
  assert.equal(hitTest(L, values, L.plot.x + L.cellW, L.plot.y + 1)?.col, 1);
  assert.equal(hitTest(L, values, L.plot.x - 1, L.plot.y + 1), null);
  assert.equal(hitTest(L, values, L.plot.x + 1, L.plot.y + L.plot.h), null);
});

test('hitTest on sub-pixel cells reports the largest |value| under the pixel', () => {
  const d = mockNeuronPatching(12, 3072);
  const L = computeLayout(input(12, 3072));
  // Neuron 1234 in layer 8 is a spike of 0.31: find the pixel column that covers it.
  const px = Math.floor((1234 * L.plot.w) / 3072);
  const hit = hitTest(L, d.values, L.plot.x + px + 0.5, L.plot.y + (8 + 0.5) * L.cellH);
  assert.ok(hit);
  assert.equal(hit.row, 8);
  assert.equal(hit.col, 1234);
  assert.equal(hit.value, 0.31);
  assert.ok(hit.cols[1] - hit.cols[0] > 1 && hit.cols[0] <= 1234 && 1234 < hit.cols[1]);
});

test('binRange partitions n cells over bins without gaps or overlaps', () => {
  for (const [bins, n] of [
    [7, 3072],
    [1000, 3072],
    [5, 5],
    [3, 10],
  ] as const) {
    let next = 0;
    for (let b = 0; b < bins; b++) {
      const [s, e] = binRange(b, bins, n);
      assert.equal(s, next);
      assert.ok(e > s);
      next = e;
    }
    assert.equal(next, n);
  }
  assert.deepEqual(representative([[1, -7, 3]], 0, 1, 0, 3), { row: 0, col: 1, value: -7 });
});

test('rasterize: one pixel per cell with the scale colours; binning keeps spikes', () => {
  const lut = makeLut(LIGHT_PALETTE);
  const px = rasterize([[0, 1, -1, NaN]], 1, 4, 4, 1, lut, 1, 'diverging');
  const rgb = (i: number) => [px[i * 4], px[i * 4 + 1], px[i * 4 + 2]];
  assert.deepEqual(rgb(0), [...valueColor(0, 1, LIGHT_PALETTE)]);
  assert.deepEqual(rgb(1), [...valueColor(1, 1, LIGHT_PALETTE)]);
  assert.deepEqual(rgb(2), [...valueColor(-1, 1, LIGHT_PALETTE)]);
  assert.deepEqual(rgb(3), [...LIGHT_PALETTE.missing]);
  assert.equal(px[3], 255);
  // 1 row of 1000 zeros with one spike, squeezed into 10 pixels: the spike's bin is red.
  const row = new Array<number>(1000).fill(0);
  row[537] = 1;
  const small = rasterize([row], 1, 1000, 10, 1, lut, 1, 'diverging');
  assert.deepEqual([small[20], small[21], small[22]], [...valueColor(1, 1, LIGHT_PALETTE)]);
  assert.deepEqual([small[0], small[1], small[2]], [...valueColor(0, 1, LIGHT_PALETTE)]);
});

test('rasterize is fast on 3072×12 (one pass)', () => {
  const d = mockNeuronPatching(12, 3072);
  const lut = makeLut(LIGHT_PALETTE);
  const t0 = performance.now();
  rasterize(d.values, 12, 3072, 3072, 12, lut, 0.31, 'diverging');
  rasterize(d.values, 12, 3072, 700, 12, lut, 0.31, 'diverging');
  const ms = performance.now() - t0;
  assert.ok(ms < 200, `rasterize took ${ms.toFixed(1)} ms`);
});

test('in-cell values use decimals from zmax', () => {
  assert.equal(annotationDecimals(1.62), 2);
  assert.equal(annotationDecimals(0.05), 3);
  assert.equal(annotationDecimals(12), 1);
  assert.equal(annotationDecimals(250), 0);
  assert.equal(annotationDecimals(0), 2);
});

test('readable cells: a 2 × 57 strip keeps cells ≥ 12 px wide (the figure grows and scrolls), rows tall enough for the rotated axis title', () => {
  const narrow = computeLayout(input(2, 57, { width: 500, minCell: 12, rowAxis: 'sender layer' }));
  assert.ok(narrow.cellW >= 12, `cells ${narrow.cellW} px wide`);
  assert.ok(narrow.width > 500, 'wider than the panel: its box scrolls');
  assert.ok(narrow.plot.h >= estimateMeasure(12)('sender layer'), `plot ${narrow.plot.h} px tall holds the rotated "sender layer"`);
  // Without the minimum (exports) the same strip fits the width.
  assert.ok(computeLayout(input(2, 57, { width: 500, rowAxis: 'sender layer' })).width <= 500);
  // 3072 neurons bin into the width instead of scrolling for metres.
  const neurons = computeLayout(input(12, 3072, { width: 800, minCell: 12 }));
  assert.ok(neurons.width <= 800 && neurons.cellW < 1);
});
