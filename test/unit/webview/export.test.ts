/** CSV / JSON / SVG exports of a heatmap. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HeatmapData } from '../../../src/protocol/webview.js';
import { csvField, heatmapToCsv, heatmapToJson, heatmapToSvg, xmlEscape } from '../../../src/webview/export.js';
import { mockNeuronPatching } from '../../../src/webview/mocks.js';
import { makeDom } from './jsdomEnv.js';

const D: HeatmapData = {
  title: 'Patching <resid_pre> & "stuff"',
  rowAxis: 'layer',
  colAxis: 'position',
  rowLabels: ['0', '1'],
  colLabels: ['When_0', ' Mary_1', 'a,b', 'say "hi"'],
  values: [
    [0.1234567890123, -2, 0, NaN],
    [1e-9, 3, -0.5, 0.25],
  ],
  valueLabel: 'logit diff',
};

test('csvField quotes commas, quotes, newlines and edge spaces', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField(' Mary'), '" Mary"');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('x\ny'), '"x\ny"');
});

test('CSV: header of axes and column labels, full precision rows', () => {
  const csv = heatmapToCsv(D);
  const lines = csv.trimEnd().split('\n');
  assert.equal(lines.length, 3);
  assert.equal(lines[0], 'layer/position,When_0," Mary_1","a,b","say ""hi"""');
  assert.equal(lines[1], '0,0.1234567890123,-2,0,NaN');
  assert.equal(lines[2], '1,1e-9,3,-0.5,0.25');
});

test('JSON round-trips the HeatmapData (NaN -> null)', () => {
  const j = JSON.parse(heatmapToJson(D)) as HeatmapData;
  assert.equal(j.title, D.title);
  assert.deepEqual(j.colLabels, D.colLabels);
  assert.deepEqual(j.values[1], D.values[1]);
  assert.equal(j.values[0]?.[0], 0.1234567890123);
  assert.equal(j.values[0]?.[3], null);
  assert.equal(j.zmax, undefined);
  assert.equal((JSON.parse(heatmapToJson({ ...D, zmax: 2 })) as HeatmapData).zmax, 2);
});

function parseSvg(svg: string): Document {
  const dom = makeDom();
  const doc = new dom.window.DOMParser().parseFromString(svg, 'image/svg+xml');
  assert.equal(doc.getElementsByTagName('parsererror').length, 0, 'SVG is well-formed XML');
  return doc;
}

test('SVG: a well-formed document with one rect per cell, labels, axis titles and a colour bar', () => {
  const svg = heatmapToSvg(D);
  assert.ok(svg.startsWith('<?xml'));
  const doc = parseSvg(svg);
  const root = doc.documentElement;
  assert.equal(root.tagName, 'svg');
  assert.ok(Number(root.getAttribute('width')) > 100);
  assert.equal(doc.querySelectorAll('g.cells rect').length, 8);
  const texts = [...doc.querySelectorAll('text')].map((t) => t.textContent);
  for (const s of ['Patching <resid_pre> & "stuff"', 'layer', 'position', 'logit diff', ' Mary_1', 'When_0', '0', '1']) assert.ok(texts.includes(s), `missing text ${JSON.stringify(s)}`);
  // Colour bar: gradient stops from red (top, +zmax) to blue (bottom).
  const stops = [...doc.querySelectorAll('linearGradient stop')];
  assert.equal(stops.length, 11);
  assert.equal(stops[0]?.getAttribute('stop-color'), 'rgb(103, 0, 31)');
  assert.equal(stops[10]?.getAttribute('stop-color'), 'rgb(5, 48, 97)');
  assert.ok(doc.querySelector('rect.colorbar'));
  // Tick labels use the typographic minus.
  assert.ok(texts.includes('−2') || texts.includes('−3'), texts.join('|'));
  // Cells carry their exact value for inspection in an SVG editor.
  assert.ok(svg.includes('<title>0,0: 0.1234567890123</title>'));
});

test('SVG of 3072×12 stays bounded (binned to plot pixels)', () => {
  const svg = heatmapToSvg(mockNeuronPatching(12, 3072), { width: 900 });
  const doc = parseSvg(svg);
  const n = doc.querySelectorAll('g.cells rect').length;
  assert.ok(n < 12 * 1000, `${n} rects`);
  assert.ok(svg.length < 2_000_000, `${svg.length} chars`);
});

test('xmlEscape', () => {
  assert.equal(xmlEscape(`<a href="x">&'`), '&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
});
