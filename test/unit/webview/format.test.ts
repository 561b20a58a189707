/** Number and label formatting: nothing on screen shows raw floats; tokens show their whitespace. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MINUS,
  displayLabel,
  formatFixed,
  formatPercent,
  formatRelative,
  formatSig,
  formatSigned,
  formatTick,
  niceIntStep,
  niceTicks,
  positionLabels,
  slug,
  tokenPieces,
  truncateLabel,
  visibleToken,
} from '../../../src/webview/format.js';

test('formatSig: fixed significant digits, exponent for tiny/huge, typographic minus', () => {
  assert.equal(formatSig(0.1234567891234567), '0.123');
  assert.equal(formatSig(0.5), '0.500');
  assert.equal(formatSig(-1.23456, 4), `${MINUS}1.235`);
  assert.equal(formatSig(1.234e-5), '1.23e-5');
  assert.equal(formatSig(12345.6), '12346');
  assert.equal(formatSig(2.5e7), '2.50e7');
  assert.equal(formatSig(0), '0');
  assert.equal(formatSig(NaN), 'n/a');
  assert.equal(formatSig(-Infinity), `${MINUS}∞`);
  // Never more than a handful of characters for any double.
  for (const x of [Math.PI, -Math.E * 1e-9, 1 / 3, 2 / 3e12]) assert.ok(formatSig(x).length <= 9, formatSig(x));
});

test('formatFixed / formatSigned', () => {
  assert.equal(formatFixed(18.3121), '18.31');
  assert.equal(formatFixed(-0.001), '0.00'); // no '−0.00'
  assert.equal(formatFixed(-2.5, 1), `${MINUS}2.5`);
  assert.equal(formatSigned(3.36), '+3.36');
  assert.equal(formatSigned(-0.0123), `${MINUS}0.0123`);
  assert.equal(formatSigned(0), '0');
});

test('formatPercent: probabilities as percentages at sensible precision', () => {
  assert.equal(formatPercent(0.68119), '68.1%');
  assert.equal(formatPercent(0.041823), '4.18%');
  assert.equal(formatPercent(0.0025), '0.25%');
  assert.equal(formatPercent(0.00012), '0.012%');
  assert.equal(formatPercent(3.2e-7), '3.2e-5%');
  assert.equal(formatPercent(1), '100.0%');
  assert.equal(formatPercent(0), '0%');
  assert.equal(formatPercent(NaN), 'n/a');
});

test('niceTicks: round values covering the range, about the target count', () => {
  assert.deepEqual(niceTicks(-1, 1, 5), [-1, -0.5, 0, 0.5, 1]);
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(-1.276, 2.836, 5), [-1, 0, 1, 2]);
  assert.deepEqual(niceTicks(0, 3072, 5), [0, 1000, 2000, 3000]);
  const t = niceTicks(-0.0123, 0.0123, 5);
  assert.ok(t.includes(0) && t.length >= 3 && t.length <= 7, t.join(','));
  assert.deepEqual(niceTicks(2, 2), [2]);
});

test('formatTick uses the decimals the step needs', () => {
  assert.equal(formatTick(0.5, 0.5), '0.5');
  assert.equal(formatTick(0.25, 0.25), '0.25');
  assert.equal(formatTick(-1, 0.5), `${MINUS}1.0`);
  assert.equal(formatTick(2000, 1000), '2000');
  assert.equal(formatTick(1e-12, 0.2), '0');
});

test('niceIntStep thins labels to 1, 2, 5, 10, 20, ...', () => {
  assert.deepEqual([0.3, 1, 1.2, 3, 6, 11, 104].map(niceIntStep), [1, 1, 2, 5, 10, 20, 200]);
});

test('tokens: spaces and newlines visible, pieces split for dimming', () => {
  assert.equal(visibleToken(' Mary'), '·Mary');
  assert.equal(visibleToken('\n\n'), '⏎⏎');
  assert.equal(visibleToken('\t'), '⇥');
  assert.equal(visibleToken(''), '∅');
  assert.equal(visibleToken('\u0001'), '␁');
  assert.deepEqual(tokenPieces(' Mary'), [
    { text: '·', ws: true },
    { text: 'Mary', ws: false },
  ]);
  assert.deepEqual(tokenPieces('a\nb'), [
    { text: 'a', ws: false },
    { text: '⏎', ws: true },
    { text: 'b', ws: false },
  ]);
});

test('positionLabels add _i only when a token repeats', () => {
  assert.deepEqual(positionLabels(['When', ' Mary', ' and']), ['When', '·Mary', '·and']);
  assert.deepEqual(positionLabels(['A', ' John', ' John']), ['A_0', '·John_1', '·John_2']);
});

test('displayLabel marks only leading/trailing spaces; truncate and slug', () => {
  assert.equal(displayLabel(' Mary_2'), '·Mary_2');
  assert.equal(displayLabel('L0 H3'), 'L0 H3');
  assert.equal(displayLabel('x '), 'x·');
  assert.equal(displayLabel('a\nb'), 'a⏎b');
  assert.equal(truncateLabel('abcdefghijklmnopqrstuvwxyz', 10), 'abcdefghi…');
  assert.equal(truncateLabel('short', 10), 'short');
  assert.equal(slug('Patching each head’s output (hook_z)'), 'patching-each-head-s-output-hook-z');
  assert.equal(slug('***'), 'mechlens');
});

test('formatRelative: float noise around 0 reads as 0, relative to the figure\'s scale', () => {
  assert.equal(formatRelative(1.273e-6, 0.917), '0');
  assert.equal(formatRelative(-3e-7, 0.5), '0');
  assert.equal(formatRelative(0.0123, 0.917), formatSig(0.0123, 4));
  assert.equal(formatRelative(1.273e-6, 2e-6), formatSig(1.273e-6, 4), 'on a tiny scale it is a real value');
  assert.equal(formatRelative(NaN, 1), 'n/a');
});
