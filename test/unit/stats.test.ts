import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { pearson } from '../../src/engine/tensor/stats.js';

test('pearson: perfect, anti- and partial correlation; NaN where undefined', () => {
  assert.ok(Math.abs(pearson([1, 2, 3], [2, 4, 6]) - 1) < 1e-12);
  assert.ok(Math.abs(pearson([1, 2, 3], [3, 2, 1]) + 1) < 1e-12);
  // x = [1, 2, 3, 4], y = [1, 3, 2, 4]: cov 1.25, var 1.25 each -> 0.8
  assert.ok(Math.abs(pearson([1, 2, 3, 4], [1, 3, 2, 4]) - 0.8) < 1e-12);
  assert.ok(Number.isNaN(pearson([1], [2])));
  assert.ok(Number.isNaN(pearson([1, 1, 1], [1, 2, 3])));
});
