import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { fixtureConfig, fixtureParams, spec } from '../helpers/fixture.js';
import { makeConfig } from '../../src/engine/model/config.js';
import type { HookName } from '../../src/engine/hooks/hooks.js';

function model(mode: 'none' | 'default'): HookedTransformer {
  const base = fixtureConfig();
  const cfg = mode === 'none' ? base : makeConfig({ ...base, normalization_type: 'LNPre' });
  return new HookedTransformer(cfg, fixtureParams(mode), mode, 'fixture', { device: 'cpu', threads: 1 });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

for (const mode of ['none', 'default'] as const) {
  test(`lastPositionOnly / vocab / startAtResidMid give the full forward's numbers (${mode})`, async () => {
    const m = model(mode);
    try {
      const full = await m.run(spec.tokens, { names: ['blocks.1.hook_resid_mid', 'blocks.1.hook_resid_pre'] as HookName[] });
      const [B, P, V] = full.logits!.dims as [number, number, number];
      const lastRows = new Float32Array(B * V);
      for (let b = 0; b < B; b++) lastRows.set(full.logits!.data.subarray((b * P + P - 1) * V, (b * P + P) * V), b * V);
      // Last position, all of the vocabulary.
      const lp = await m.forward(spec.tokens, { lastPositionOnly: true });
      assert.deepEqual(lp.dims, [B, 1, V]);
      assert.ok(maxDiff(lp.data, lastRows) < 1e-5, 'lastPositionOnly');
      // A vocabulary subset, every position.
      const ids = [5, 44, 41, 0];
      const vs = await m.forward(spec.tokens, { vocab: ids });
      assert.deepEqual(vs.dims, [B, P, ids.length]);
      const want = new Float32Array(B * P * ids.length);
      for (let r = 0; r < B * P; r++) ids.forEach((t, k) => (want[r * ids.length + k] = full.logits!.data[r * V + t]!));
      assert.ok(maxDiff(vs.data, want) < 1e-5, 'vocab');
      // From resid_mid of layer 1, last position, subset.
      const mid = full.cache.get('blocks.1.hook_resid_mid')!;
      const fm = (await m.run(null, { residual: mid, startAtLayer: 1, startAtResidMid: true, lastPositionOnly: true, vocab: ids })).logits!;
      assert.deepEqual(fm.dims, [B, 1, ids.length]);
      const want2 = new Float32Array(B * ids.length);
      for (let b = 0; b < B; b++) ids.forEach((t, k) => (want2[b * ids.length + k] = lastRows[b * V + t]!));
      assert.ok(maxDiff(fm.data, want2) < 1e-5, 'fromMid');
      // From resid_pre of the last layer, lastPos block.
      const fp = (await m.run(null, { residual: full.cache.get('blocks.1.hook_resid_pre')!, startAtLayer: 1, lastPositionOnly: true })).logits!;
      assert.ok(maxDiff(fp.data, lastRows) < 1e-5, 'lastPos block');
    } finally {
      await m.dispose();
    }
  });
}

test('a prefix run (keys and values of the first positions given) equals the full forward', async () => {
  const m = model('default');
  try {
    const names = ['blocks.0.hook_resid_pre', 'blocks.1.hook_resid_pre', 'blocks.1.hook_resid_mid', 'blocks.0.attn.hook_k', 'blocks.0.attn.hook_v', 'blocks.1.attn.hook_k', 'blocks.1.attn.hook_v'] as HookName[];
    const full = await m.run(spec.tokens, { names });
    const [B, P, V] = full.logits!.dims as [number, number, number];
    const Pp = 3;
    const slicePos = (t: { dims: readonly number[]; data: Float32Array }, from: number, to: number) => {
      const inner = t.dims.slice(2).reduce((a, b) => a * b, 1);
      const out = new Float32Array(B * (to - from) * inner);
      for (let b = 0; b < B; b++) out.set(t.data.subarray((b * P + from) * inner, (b * P + to) * inner), b * (to - from) * inner);
      return { dtype: 'float32' as const, dims: [B, to - from, ...t.dims.slice(2)], data: out };
    };
    const get = (n: string) => full.cache.get(n as HookName)!;
    const prefix = {
      keys: [slicePos(get('blocks.0.attn.hook_k'), 0, Pp), slicePos(get('blocks.1.attn.hook_k'), 0, Pp)],
      values: [slicePos(get('blocks.0.attn.hook_v'), 0, Pp), slicePos(get('blocks.1.attn.hook_v'), 0, Pp)],
    };
    for (const [start, hook, mid] of [[0, 'blocks.0.hook_resid_pre', false], [1, 'blocks.1.hook_resid_pre', false], [1, 'blocks.1.hook_resid_mid', true]] as const) {
      const r = await m.run(null, { residual: slicePos(get(hook), Pp, P), startAtLayer: start, startAtResidMid: mid, prefix });
      assert.deepEqual(r.logits!.dims, [B, P - Pp, V]);
      const want = slicePos(full.logits!, Pp, P);
      assert.ok(maxDiff(r.logits!.data, want.data) < 1e-5, `start ${start} ${hook}`);
      const last = await m.run(null, { residual: slicePos(get(hook), Pp, P), startAtLayer: start, startAtResidMid: mid, prefix, lastPositionOnly: true, vocab: [3, 44] });
      for (let b = 0; b < B; b++) for (const [k, t] of [3, 44].entries()) assert.ok(Math.abs(last.logits!.data[b * 2 + k]! - full.logits!.data[(b * P + P - 1) * V + t]!) < 1e-5);
    }
    await assert.rejects(m.run(null, { residual: slicePos(get('blocks.1.hook_resid_pre'), Pp, P), startAtLayer: 1, prefix, names: ['blocks.1.hook_resid_post'] }), /cannot return hooks/);
  } finally {
    await m.dispose();
  }
});

test('releaseVariants keeps the plain forward sessions and frees the rest', async () => {
  const m = model('none');
  try {
    const plain = await m.forward(spec.tokens);
    await m.run(spec.tokens, { interventions: [{ kind: 'zero', hook: 'blocks.1.attn.hook_z' }], lastPositionOnly: true });
    const before = m.sessionCount();
    const dropped = await m.releaseVariants();
    assert.ok(dropped >= 2, `dropped ${dropped}`);
    assert.equal(m.sessionCount(), before - dropped);
    // Kept: the one-session plain forward, the unembed session, and the plain embed and block 0
    // that the intervened run chained; dropped: block 1 with the intervention and the
    // last-position final.
    assert.equal(m.sessionCount(), 4);
    assert.ok(maxDiff((await m.forward(spec.tokens)).data, plain.data) === 0);
  } finally {
    await m.dispose();
  }
});

test('a variant dropped while a run uses it is released after that run', async () => {
  const m = model('none');
  try {
    // Runs and releases interleaved: no run may find its session released under it.
    const runs: Promise<unknown>[] = [];
    for (let i = 0; i < 12; i++) {
      runs.push(m.run(spec.tokens, { interventions: [{ kind: 'scale', hook: `blocks.${i % 2}.hook_resid_pre`, factor: 1 + i }] }));
      await new Promise((r) => setImmediate(r));
      runs.push(m.releaseVariants());
    }
    await Promise.all(runs);
    await m.releaseVariants();
    // At most the plain variants of embed, both blocks and final, and the unembed session.
    assert.ok(m.sessionCount() <= 5, `${m.sessionCount()} sessions`);
  } finally {
    await m.dispose();
  }
});
