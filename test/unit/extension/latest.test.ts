import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Debouncer, LatestOnly, isCancellation } from '../../../src/extension/latest.js';
import { RemoteError } from '../../../src/protocol/ipc.js';

test('LatestOnly aborts the request it supersedes', () => {
  const l = new LatestOnly();
  const a = l.next();
  const b = l.next();
  assert.ok(a.aborted && !b.aborted);
  assert.ok(!l.isLatest(a) && l.isLatest(b));
  l.cancel();
  assert.ok(b.aborted && !l.isLatest(b));
});

test('Debouncer coalesces a burst into one call after the quiet period', async () => {
  let calls = 0;
  const d = new Debouncer(30, () => calls++);
  for (let i = 0; i < 5; i++) {
    d.trigger();
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(calls, 0);
  assert.ok(d.pending);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(calls, 1);
  d.trigger();
  d.dispose();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(calls, 1, 'dispose drops the pending call');
});

test('isCancellation recognises the engine\'s and our cancellations only', () => {
  assert.ok(isCancellation(new RemoteError('cancelled', 'cancelled')));
  assert.ok(isCancellation(Object.assign(new Error('cancelled'), { code: 'cancelled' })));
  assert.ok(!isCancellation(new RemoteError('the MechLens engine exited with code 1', 'disposed')));
  assert.ok(!isCancellation('cancelled'));
});
