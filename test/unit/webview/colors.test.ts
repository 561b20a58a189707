/** The diverging colour scale and theme reading. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DARK_PALETTE, LIGHT_PALETTE, colorAt, isDarkTheme, luminance, lutIndex, makeLut, neutral, parseColor, readTheme, scaleT, textOn, valueColor, type RGB } from '../../../src/webview/colors.js';
import { makeDom } from './jsdomEnv.js';

const isRedder = (c: RGB) => c[0] > c[2];
const isBluer = (c: RGB) => c[2] > c[0];

test('0 maps to the neutral colour in both palettes, whatever zmax', () => {
  for (const p of [LIGHT_PALETTE, DARK_PALETTE]) {
    for (const zmax of [0.01, 1, 1234]) assert.deepEqual(valueColor(0, zmax, p), neutral(p));
    assert.deepEqual(valueColor(0, 1, p, 'sequential'), neutral(p));
  }
  assert.deepEqual(neutral(LIGHT_PALETTE), [247, 247, 247]);
});

test('sign picks the hue: positive red, negative blue (RdBu reversed)', () => {
  for (const p of [LIGHT_PALETTE, DARK_PALETTE]) {
    for (const v of [0.1, 0.5, 1]) {
      assert.ok(isRedder(valueColor(v, 1, p)), `${p.name} ${v} should be red: ${valueColor(v, 1, p).join(',')}`);
      assert.ok(isBluer(valueColor(-v, 1, p)), `${p.name} ${-v} should be blue: ${valueColor(-v, 1, p).join(',')}`);
    }
  }
  // The light palette's ends are ColorBrewer RdBu's ends.
  assert.deepEqual(valueColor(1, 1, LIGHT_PALETTE), [103, 0, 31]);
  assert.deepEqual(valueColor(-1, 1, LIGHT_PALETTE), [5, 48, 97]);
});

test('values beyond ±zmax clamp to the end colours; zmax sets the scale', () => {
  assert.deepEqual(valueColor(5, 1, LIGHT_PALETTE), valueColor(1, 1, LIGHT_PALETTE));
  assert.deepEqual(valueColor(-5, 1, LIGHT_PALETTE), valueColor(-1, 1, LIGHT_PALETTE));
  assert.equal(scaleT(2, 4), 0.5);
  assert.equal(scaleT(-8, 4), -1);
  assert.deepEqual(valueColor(0.5, 1, LIGHT_PALETTE), valueColor(2, 4, LIGHT_PALETTE));
  // Sequential: negatives clamp to neutral (attention probabilities are never negative).
  assert.equal(scaleT(-0.3, 1, 'sequential'), 0);
  assert.equal(scaleT(0.3, 1, 'sequential'), 0.3);
});

test('degenerate inputs: zmax 0 / NaN zmax -> neutral; NaN value -> missing colour', () => {
  assert.equal(scaleT(3, 0), 0);
  assert.equal(scaleT(3, NaN), 0);
  assert.deepEqual(valueColor(NaN, 1, LIGHT_PALETTE), LIGHT_PALETTE.missing);
  assert.deepEqual(colorAt(LIGHT_PALETTE, NaN), LIGHT_PALETTE.missing);
});

test('magnitude is monotone: |v| further from 0 moves further from neutral', () => {
  const dist = (a: RGB, b: RGB) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
  for (const p of [LIGHT_PALETTE, DARK_PALETTE]) {
    let last = 0;
    for (let v = 0.1; v <= 1.0001; v += 0.1) {
      const d = dist(valueColor(v, 1, p), neutral(p));
      assert.ok(d > last, `${p.name}: not monotone at ${v.toFixed(1)}`);
      last = d;
    }
  }
});

test('LUT agrees with colorAt at the ends and the middle', () => {
  const lut = makeLut(LIGHT_PALETTE, 1023);
  for (const t of [-1, 0, 1]) {
    const i = lutIndex(lut, t) * 4;
    assert.deepEqual([lut.rgba[i], lut.rgba[i + 1], lut.rgba[i + 2]], [...colorAt(LIGHT_PALETTE, t)]);
  }
});

test('text colour contrasts with the cell', () => {
  assert.equal(textOn([5, 48, 97]), '#f5f5f5');
  assert.equal(textOn([247, 247, 247]), '#111111');
  assert.ok(luminance([255, 255, 255]) > 0.99);
});

test('parseColor handles hex and rgb()', () => {
  assert.deepEqual(parseColor('#1f1f1f'), [31, 31, 31]);
  assert.deepEqual(parseColor('#fff'), [255, 255, 255]);
  assert.deepEqual(parseColor('rgba(10, 20, 30, 0.5)'), [10, 20, 30]);
  assert.equal(parseColor('red'), null);
});

test('readTheme follows the body class and CSS variables', () => {
  const dark = makeDom('vscode-dark');
  const doc = dark.window.document;
  doc.documentElement.style.setProperty('--vscode-editor-foreground', '#cccccc');
  const t = readTheme(doc);
  assert.equal(t.dark, true);
  assert.equal(t.palette.name, 'dark');
  assert.ok(t.fg.length > 0);
  const light = readTheme(makeDom('vscode-light').window.document);
  assert.equal(light.dark, false);
  assert.equal(light.palette.name, 'light');
  // No class: decide from the background's luminance.
  const none = makeDom('');
  assert.equal(isDarkTheme(none.window.document, '#1e1e1e'), true);
  assert.equal(isDarkTheme(none.window.document, '#ffffff'), false);
});
