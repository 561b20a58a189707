import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { alignedReference, assertClose, expectedHook, fixtureConfig, fixtureParams, hookNamesIn, spec } from '../helpers/fixture.js';
import { applyProcessing } from '../../src/engine/weights/process.js';
import { PROCESSING_MODES } from '../../src/engine/model/params.js';

const ATOL = 1e-4;

for (const mode of PROCESSING_MODES) {
  test(`every hook and the logits match the fixture (${mode})`, async () => {
    // Process the fixture's unprocessed params ourselves: this also checks weight processing
    // end to end (for 'default+refactor' the fixture stores no params at all).
    const { cfg, params } = applyProcessing(fixtureConfig(), fixtureParams('none'), mode);
    const m = new HookedTransformer(cfg, params, mode, 'fixture', { device: 'cpu', threads: 1 });
    const signs = new Map<string, Int8Array>();
    try {
      const names = hookNamesIn(mode).filter((n) => n !== 'logits');
      // By name: the fixture has every hook, hook_result too, which runWithCache's 'all' leaves
      // out as TransformerLens's run_with_cache does by default.
      const { logits, cache } = await m.runWithCache(spec.tokens, { names: names as never[] });
      assertClose(logits!, expectedHook(mode, 'logits'), ATOL, `${mode} logits`);
      assert.ok(names.length > 30);
      let worst = 0;
      for (const n of names) {
        const got = cache.get(n as never);
        assert.ok(got, `cache lacks ${n}`);
        worst = Math.max(worst, assertClose(got, alignedReference(mode, n, got, signs), ATOL, `${mode} ${n}`));
      }
      assert.ok(worst <= ATOL);
    } finally {
      await m.dispose();
    }
  });
}

test('weight processing leaves log-probs unchanged', async () => {
  const logProbs = async (mode: (typeof PROCESSING_MODES)[number]) => {
    const { cfg, params } = applyProcessing(fixtureConfig(), fixtureParams('none'), mode);
    const m = new HookedTransformer(cfg, params, mode, 'fixture', { device: 'cpu', threads: 1 });
    try {
      const l = await m.forward(spec.tokens);
      const V = l.dims[2]!;
      const out = new Float64Array(l.data.length);
      for (let r = 0; r < l.data.length / V; r++) {
        let mx = -Infinity, s = 0;
        for (let v = 0; v < V; v++) mx = Math.max(mx, l.data[r * V + v]!);
        for (let v = 0; v < V; v++) s += Math.exp(l.data[r * V + v]! - mx);
        for (let v = 0; v < V; v++) out[r * V + v] = l.data[r * V + v]! - mx - Math.log(s);
      }
      return out;
    } finally {
      await m.dispose();
    }
  };
  const ref = await logProbs('none');
  for (const mode of ['default', 'default+refactor'] as const) {
    const lp = await logProbs(mode);
    let d = 0;
    lp.forEach((v, i) => (d = Math.max(d, Math.abs(v - ref[i]!))));
    assert.ok(d < 1e-4, `${mode}: max |log-prob diff| ${d}`);
  }
});

test('the one-session chain (runs without interventions) equals the per-segment chain', async () => {
  const { cfg, params } = applyProcessing(fixtureConfig(), fixtureParams('none'), 'default');
  const m = new HookedTransformer(cfg, params, 'default', 'fixture', { device: 'cpu', threads: 1 });
  try {
    const fused = await m.runWithCache(spec.tokens);
    // A scale-by-1 intervention changes nothing but sends the run through per-segment sessions.
    const chained = await m.runWithCache(spec.tokens, { interventions: [{ hook: 'hook_embed', kind: 'scale', factor: 1 }] });
    assert.equal(fused.cache.size, chained.cache.size);
    let worst = assertClose(fused.logits!, chained.logits!, 1e-5, 'logits');
    for (const [n, t] of fused.cache) worst = Math.max(worst, assertClose(t, chained.cache.get(n)!, 1e-5, n));
    assert.ok(worst <= 1e-5, `max difference ${worst}`);
    // Partial hook sets, lastPositionOnly and vocab also take the one-session path.
    const last = await m.forward(spec.tokens, { lastPositionOnly: true, vocab: [3, 5] });
    const P = spec.tokens[0]!.length, V = cfg.d_vocab_out;
    assert.deepEqual(last.dims, [spec.tokens.length, 1, 2]);
    spec.tokens.forEach((_, b) => [3, 5].forEach((id, k) => {
      assert.ok(Math.abs(last.data[b * 2 + k]! - fused.logits!.data[(b * P + P - 1) * V + id]!) < 1e-4);
    }));
    const some = await m.runWithCache(spec.tokens, { names: ['blocks.1.attn.hook_pattern'] });
    assert.deepEqual([...some.cache.keys()], ['blocks.1.attn.hook_pattern']);
    assertClose(some.cache.get('blocks.1.attn.hook_pattern')!, fused.cache.get('blocks.1.attn.hook_pattern')!, 1e-6, 'pattern');
  } finally {
    await m.dispose();
  }
});

test('a large model (W_U shared as an input, no arena, every-hook runs segment by segment) matches the fixture as the small-model path does', async () => {
  const mode = 'default';
  const { cfg, params } = applyProcessing(fixtureConfig(), fixtureParams('none'), mode);
  // Thresholds of 0: the fixture is treated as a model too large for a pre-packed W_U copy, and
  // every run with hook outputs exceeds the one-session output limit.
  const m = new HookedTransformer(cfg, params, mode, 'fixture', { device: 'cpu', threads: 1, memory: { largeModelBytes: 0, fusedMaxOutputBytes: 0 } });
  const signs = new Map<string, Int8Array>();
  try {
    const logits = await m.forward(spec.tokens);
    assertClose(logits, expectedHook(mode, 'logits'), ATOL, 'large-model forward logits');
    // The plain forward is one session (W_U an input of the chain): no separate unembed session.
    assert.equal(m.sessionCount(), 1);
    const names = hookNamesIn(mode).filter((n) => n !== 'logits');
    const r = await m.runWithCache(spec.tokens, { names: names as never[] });
    assertClose(r.logits!, expectedHook(mode, 'logits'), ATOL, 'large-model run_with_cache logits');
    for (const n of names) assertClose(r.cache.get(n as never)!, alignedReference(mode, n, r.cache.get(n as never)!, signs), ATOL, `large-model ${n}`);
    // Segment by segment: embed, each block and final each got a session of their own.
    assert.equal(m.sessionCount(), 1 + cfg.n_layers + 2);
    await m.warmUp();
    assert.equal(m.sessionCount(), 1 + cfg.n_layers + 2, 'warmUp compiles no unembed session (the plain chain exists already)');
    assert.equal(m.unembedPacked, false, 'a large model never packs W_U');
  } finally {
    await m.dispose();
  }
});
