/** Components on their own: Heatmap (hover, click, keys, graceful without canvas), tables, charts, tokens. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PAPER_THEME } from '../../../src/webview/colors.js';
import { MOCK_BAR_PROPS, barChart, barDomain } from '../../../src/webview/components/barChart.js';
import { Heatmap, MOCK_HEATMAP_PROPS } from '../../../src/webview/components/heatmap.js';
import { LineChart, MOCK_LINE_PROPS, lineLayout } from '../../../src/webview/components/lineChart.js';
import { MOCK_LOSS_PROPS, lossChart } from '../../../src/webview/components/lossChart.js';
import { quoteToken, tokenChip } from '../../../src/webview/components/tokens.js';
import { MOCK_TOPK_PROPS, topKTable } from '../../../src/webview/components/topk.js';
import { mockNeuronPatching } from '../../../src/webview/mocks.js';
import { button, checkbox, dropdown, progressRing } from '../../../src/webview/ui/controls.js';
import { fakeHost, makeDom, texts } from './jsdomEnv.js';

function mountHeatmap(props = MOCK_HEATMAP_PROPS) {
  const dom = makeDom();
  const doc = dom.window.document;
  const host = fakeHost();
  const clicks: [number, number][] = [];
  const hm = new Heatmap({ doc, theme: PAPER_THEME, host }, { ...props, width: 600, onCellClick: (r, c) => clicks.push([r, c]) });
  doc.body.appendChild(hm.el);
  return { dom, doc, hm, host, clicks, win: dom.window };
}

test('Heatmap lays out without a canvas (jsdom) and sizes the canvas element', () => {
  const { hm } = mountHeatmap();
  const L = hm.layout;
  assert.ok(L);
  assert.equal(L.nRows, 4);
  assert.equal(L.nCols, 4);
  assert.equal(hm.canvas.style.width, `${L.width}px`);
  assert.match(hm.canvas.getAttribute('aria-label') ?? '', /4 layer × 4 head, logit diff/);
  assert.equal(hm.el.querySelector('.ml-heatmap-title')?.textContent, 'Logit difference from each head');
});

test('Heatmap hover shows row, column and the value to 4 significant digits', () => {
  const { hm, win } = mountHeatmap();
  const L = hm.layout;
  assert.ok(L);
  const x = L.plot.x + 3.5 * L.cellW;
  const y = L.plot.y + 2.5 * L.cellH;
  hm.canvas.dispatchEvent(new win.MouseEvent('mousemove', { clientX: x, clientY: y }));
  const tip = hm.el.querySelector<HTMLElement>('.ml-tooltip');
  assert.ok(tip && !tip.hidden);
  assert.equal(tip.textContent, 'layer L2head H3logit diff 1.740');
  const cursor = hm.el.querySelector<HTMLElement>('.ml-heatmap-cursor');
  assert.equal(cursor?.hidden, false);
  assert.equal(cursor?.style.left, `${L.plot.x + 3 * L.cellW}px`);
  hm.canvas.dispatchEvent(new win.MouseEvent('mouseleave'));
  assert.equal(tip.hidden, true);
});

test('Heatmap click and keyboard select cells', () => {
  const { hm, win, clicks } = mountHeatmap();
  const L = hm.layout;
  assert.ok(L);
  hm.canvas.dispatchEvent(new win.MouseEvent('click', { clientX: L.plot.x + 1.5 * L.cellW, clientY: L.plot.y + 0.5 * L.cellH }));
  assert.deepEqual(clicks, [[0, 1]]);
  const key = (k: string) => hm.canvas.dispatchEvent(new win.KeyboardEvent('keydown', { key: k }));
  key('ArrowRight'); // first key focuses (0, 0)
  key('ArrowDown');
  key('ArrowRight');
  key('Enter');
  assert.deepEqual(clicks[1], [1, 1]);
  assert.match(hm.el.querySelector('.ml-tooltip')?.textContent ?? '', /logit diff −0\.4000/);
});

test('Heatmap hover on binned 3072 columns names the strongest neuron under the pixel', () => {
  const data = mockNeuronPatching(12, 3072);
  const { hm } = mountHeatmap({ data });
  const L = hm.layout;
  assert.ok(L);
  assert.ok(L.cellW < 1);
  const lines = hm.hoverLines({ row: 8, col: 1234, value: 0.31, rows: [8, 9], cols: [1230, 1236] });
  assert.deepEqual(lines.slice(0, 3), [
    ['layer', '8'],
    ['neuron', '1234'],
    ['normalised logit diff', '0.3100'],
  ]);
  assert.match(String(lines[3]), /largest \|value\| of 1×6 cells/);
});

test('Heatmap hover prints probabilities as percentages when asked (attention)', () => {
  const { hm } = mountHeatmap({ ...MOCK_HEATMAP_PROPS, valueFormat: 'percent' });
  const lines = hm.hoverLines({ row: 2, col: 3, value: 0.0099, rows: [2, 3], cols: [3, 4] });
  assert.deepEqual(lines[2], ['logit diff', '0.99%']);
});

test('Heatmap SVG export matches the data; PNG needs a canvas', () => {
  const { hm } = mountHeatmap();
  const svg = hm.toSvg();
  assert.match(svg, /<title>Logit difference from each head<\/title>/);
  assert.throws(() => hm.toPngBase64(), /no canvas/);
});

test('Heatmap without a host has no toolbar and draws its title on the canvas', () => {
  const dom = makeDom();
  const hm = new Heatmap({ doc: dom.window.document, theme: PAPER_THEME }, { ...MOCK_HEATMAP_PROPS, width: 500 });
  assert.equal(hm.el.querySelector('.ml-toolbar'), null);
  assert.equal(hm.layout?.title?.text, 'Logit difference from each head');
});

test('top-k table: rank, token chip, logit with 2 decimals, probability bar', () => {
  const doc = makeDom().window.document;
  const t = topKTable(doc, MOCK_TOPK_PROPS);
  const rows = t.querySelectorAll('tbody tr');
  assert.equal(rows.length, 4);
  assert.deepEqual(texts(rows[0] as Element, 'td'), ['0', '·Mary', '18.31', '68.1%']);
  assert.ok(rows[0]?.classList.contains('ml-highlight'));
  assert.equal(rows[0]?.querySelector<HTMLElement>('.ml-probbar-fill')?.style.width, '68.12%');
  const compact = topKTable(doc, { ...MOCK_TOPK_PROPS, compact: true });
  assert.equal(compact.querySelectorAll('th').length, 3);
});

test('bar chart: zero line, sign classes, formatted values, ticks', () => {
  const doc = makeDom().window.document;
  const el = barChart(doc, MOCK_BAR_PROPS);
  const bars = [...el.querySelectorAll<HTMLElement>('.ml-bar')];
  assert.equal(bars.length, 6);
  assert.ok(bars[1]?.classList.contains('ml-bar-neg'));
  assert.ok(bars[4]?.classList.contains('ml-bar-pos'));
  assert.deepEqual(texts(el, '.ml-bar-value'), ['+0.120', '−0.0300', '+0.400', '−0.250', '+1.80', '+0.0500']);
  assert.deepEqual(texts(el, '.ml-emph .ml-bar-label'), ['0_attn_out', '0_mlp_out', '1_attn_out']);
  const [lo, hi] = barDomain(MOCK_BAR_PROPS.values);
  assert.ok(lo < -0.25 && hi > 1.8);
  const zero = el.querySelector<HTMLElement>('.ml-bar-zero');
  assert.equal(zero?.style.left, `${((0 - lo) / (hi - lo)) * 100}%`);
  assert.ok(texts(el, '.ml-bar-tick').includes('0'));
});

test('line chart: points, ticks, nearest-category hover', () => {
  const dom = makeDom();
  const doc = dom.window.document;
  const chart = new LineChart(doc, { ...MOCK_LINE_PROPS, width: 500 });
  doc.body.appendChild(chart.el);
  assert.equal(chart.el.querySelectorAll('circle.ml-point').length, 5);
  const L = lineLayout({ ...MOCK_LINE_PROPS }, 500);
  assert.ok(L.yTicks.includes(0) && L.ylo <= -0.01 && L.yhi >= 2.78);
  assert.equal(chart.indexAt(L.plot.x + L.xStep * 2.2), 2);
  assert.equal(chart.indexAt(L.plot.x - L.xStep), null);
  assert.ok(texts(chart.el, '.ml-axis-title').includes('logit diff'));
});

test('loss chart and token chips', () => {
  const doc = makeDom().window.document;
  const el = lossChart(doc, PAPER_THEME, MOCK_LOSS_PROPS);
  assert.equal(el.querySelectorAll('.ml-col').length, 4);
  assert.deepEqual(texts(el, '.ml-col-value'), ['6.1', '9.8', '2.3', '5.2']);
  const chip = tokenChip(doc, '\n', { index: 3, showIndex: true });
  assert.equal(chip.textContent, '⏎3');
  assert.ok(chip.classList.contains('ml-token-ws'));
  assert.equal(quoteToken(' Mary'), "' Mary'");
  assert.equal(quoteToken('\n'), "'\\n'");
  assert.equal(quoteToken("it's"), "'it\\'s'");
});

test('controls fall back to native elements without the toolkit and report changes', () => {
  const dom = makeDom();
  const doc = dom.window.document;
  let clicked = 0;
  const b = button(doc, { label: 'Go', onClick: () => clicked++ });
  b.dispatchEvent(new dom.window.MouseEvent('click'));
  assert.equal(b.tagName, 'BUTTON');
  assert.equal(clicked, 1);
  let checked: boolean | null = null;
  const c = checkbox(doc, { label: 'Values', checked: false, onChange: (v) => (checked = v) });
  const input = c.querySelector('input');
  assert.ok(input);
  input.checked = true;
  input.dispatchEvent(new dom.window.Event('change'));
  assert.equal(checked, true);
  let picked = '';
  const d = dropdown(doc, { options: [{ value: 'a', label: 'A' }, { value: 'b', label: 'B' }], value: 'b', onChange: (v) => (picked = v) });
  assert.equal((d as HTMLSelectElement).value, 'b');
  (d as HTMLSelectElement).value = 'a';
  d.dispatchEvent(new dom.window.Event('change'));
  assert.equal(picked, 'a');
  assert.equal(progressRing(doc).getAttribute('role'), 'progressbar');
});
