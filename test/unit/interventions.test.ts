import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer, buildMask } from '../../src/engine/model/hookedTransformer.js';
import { f32, type F32 } from '../../src/engine/tensor/tensor.js';
import { fixtureConfig, fixtureParams, spec } from '../helpers/tinyModel.js';
import type { HookName } from '../../src/engine/hooks/hooks.js';

const model = () => new HookedTransformer(fixtureConfig(), fixtureParams('none'), 'none', 'fixture', { device: 'cpu', threads: 1 });

/** Calls fn(flatIndex, multiIndex) for every element of dims. */
function each(dims: readonly number[], fn: (i: number, idx: number[]) => void): void {
  const idx = dims.map(() => 0);
  const n = dims.reduce((a, b) => a * b, 1);
  for (let i = 0; i < n; i++) {
    fn(i, idx);
    for (let a = dims.length - 1; a >= 0; a--) {
      if (++idx[a]! < dims[a]!) break;
      idx[a] = 0;
    }
  }
}

test('zero ablation of one head of hook_z zeroes exactly that head and changes the logits', async () => {
  const m = model();
  try {
    const hook = 'blocks.0.attn.hook_z' as HookName;
    const base = await m.runWithCache(spec.tokens, { names: [hook] });
    const r = await m.run(spec.tokens, { names: [hook], interventions: [{ kind: 'zero', hook, index: { head_index: [1] } }] });
    const z = r.cache.get(hook)!, z0 = base.cache.get(hook)!;
    each(z.dims, (i, [, , h]) => assert.equal(z.data[i], h === 1 ? 0 : z0.data[i]));
    assert.ok(r.logits!.data.some((v, i) => Math.abs(v - base.logits!.data[i]!) > 1e-4));
  } finally {
    await m.dispose();
  }
});

test('mean ablation over the batch, add and scale follow their definitions at the indexed entries', async () => {
  const m = model();
  try {
    const hook = 'blocks.1.hook_resid_pre' as HookName;
    const base = (await m.runWithCache(spec.tokens, { names: [hook] })).cache.get(hook)!;
    const [B, P, D] = base.dims as [number, number, number];
    // Mean over batch at positions 2 and -1 (= P-1).
    const rm = (await m.run(spec.tokens, { names: [hook], interventions: [{ kind: 'mean', over: 'batch', hook, index: { pos: [2, -1] } }] })).cache.get(hook)!;
    each(rm.dims, (i, [, p, d]) => {
      let mean = 0;
      for (let b = 0; b < B; b++) mean += base.data[(b * P + p!) * D + d!]!;
      mean /= B;
      const want = p === 2 || p === P - 1 ? mean : base.data[i]!;
      assert.ok(Math.abs(rm.data[i]! - want) < 1e-5, `mean at ${i}`);
    });
    const vec = f32([D], Array.from({ length: D }, (_, i) => i / D));
    const ra = (await m.run(spec.tokens, { names: [hook], interventions: [{ kind: 'add', hook, vector: vec, index: { batch: [0] } }] })).cache.get(hook)!;
    each(ra.dims, (i, [b, , d]) => assert.ok(Math.abs(ra.data[i]! - (base.data[i]! + (b === 0 ? vec.data[d!]! : 0))) < 1e-5));
    const rs = (await m.run(spec.tokens, { names: [hook], interventions: [{ kind: 'scale', hook, factor: 3, index: { pos: [1] } }] })).cache.get(hook)!;
    each(rs.dims, (i, [, p]) => assert.ok(Math.abs(rs.data[i]! - base.data[i]! * (p === 1 ? 3 : 1)) < 1e-5));
  } finally {
    await m.dispose();
  }
});

test('interventions on several hooks and layers compose; sessions are reused for the same structure', async () => {
  const m = model();
  try {
    const clean = await m.runWithCache(spec.tokens, { names: ['blocks.0.attn.hook_pattern', 'blocks.1.mlp.hook_post'] });
    const pat = clean.cache.get('blocks.0.attn.hook_pattern')!;
    const run = (pos: number) => m.run(spec.corrupted_tokens, {
      names: ['blocks.1.mlp.hook_post'],
      interventions: [
        { kind: 'patch', hook: 'blocks.0.attn.hook_pattern', source: pat, index: { head_index: [0, 2] } },
        { kind: 'patch', hook: 'blocks.1.mlp.hook_post', source: clean.cache.get('blocks.1.mlp.hook_post')!, index: { pos: [pos], d_mlp: [5, 6] } },
      ],
    });
    await run(3);
    const n = m.sessionCount();
    const r = await run(4);
    assert.equal(m.sessionCount(), n, 'same structure -> no new session');
    const post = r.cache.get('blocks.1.mlp.hook_post')!, cpost = clean.cache.get('blocks.1.mlp.hook_post')!;
    each(post.dims, (i, [, p, k]) => {
      if (p === 4 && (k === 5 || k === 6)) assert.equal(post.data[i], cpost.data[i]);
    });
  } finally {
    await m.dispose();
  }
});

test('bad interventions and inputs give clear errors', async () => {
  const m = model();
  try {
    await assert.rejects(m.run(spec.tokens, { interventions: [{ kind: 'zero', hook: 'blocks.7.attn.hook_z' as HookName }] }), /2 layers/);
    await assert.rejects(m.run(spec.tokens, { interventions: [{ kind: 'zero', hook: 'blocks.0.attn.hook_z', index: { head_index: [9] } }] }), /head_index index 9 is out of range/);
    await assert.rejects(m.run(spec.tokens, { interventions: [{ kind: 'zero', hook: 'blocks.0.attn.hook_z', index: { d_mlp: [0] } }] }), /not an axis of this hook/);
    await assert.rejects(m.run(spec.tokens, { interventions: [{ kind: 'patch', hook: 'blocks.0.hook_resid_pre', source: f32([1, 2, 3]) }] }), /patch source must have shape \[4, 8, 32\]/);
    await assert.rejects(m.run(spec.tokens, { names: ['blocks.0.q' as HookName] }), /unknown hook/);
    await assert.rejects(m.forward([[0, 1], [2]]), /sequence 1 has 1 tokens/);
    await assert.rejects(m.forward([[0, 50]]), /out of range/);
    await assert.rejects(m.forward([Array.from({ length: 17 }, () => 1)]), /n_ctx = 16/);
    await assert.rejects(m.forward([]), /empty/);
  } finally {
    await m.dispose();
  }
});

test('start/stop at a layer reproduce the full forward', async () => {
  const m = model();
  try {
    const full = await m.runWithCache(spec.tokens, { names: ['blocks.1.hook_resid_pre'] });
    const mid = await m.run(spec.tokens, { stopAtLayer: 1 });
    assert.equal(mid.logits, undefined);
    const r1 = full.cache.get('blocks.1.hook_resid_pre')!;
    assert.deepEqual(Array.from(mid.residual!.data), Array.from(r1.data));
    const rest = await m.run(null, { startAtLayer: 1, residual: mid.residual! });
    let d = 0;
    rest.logits!.data.forEach((v, i) => (d = Math.max(d, Math.abs(v - full.logits!.data[i]!))));
    assert.ok(d < 1e-5, `max diff ${d}`);
  } finally {
    await m.dispose();
  }
});

test('buildMask selects the cartesian product of indices, negative positions from the end', () => {
  const cfg = fixtureConfig();
  const mk: F32 = buildMask('blocks.0.attn.hook_pattern', { head_index: [1], query_pos: [-1] }, cfg, 2, 4);
  assert.deepEqual(mk.dims, [1, 4, 4, 1]);
  assert.deepEqual(Array.from(mk.data), [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
});
