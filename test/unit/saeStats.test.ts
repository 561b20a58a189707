/**
 * Feature statistics (buildSaeActsGraph, featureStats), for every architecture of the fixture
 * SAEs: the encoder graph's activations against the splice's, and featureStats against a plain
 * streaming pass (per-feature arrays of context objects) over the same activations (exactly) and
 * over the splice's (to float32 rounding).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { FIXTURES_ROOT, engineModel, oracleFixture } from '../helpers/oracle.js';
import { checkSaeForModel, loadSaeFolder, type Sae } from '../../src/engine/sae/sae.js';
import { saeSlot } from '../../src/engine/sae/graph.js';
import { buildSaeActsGraph, STATS_ACTS, STATS_X } from '../../src/engine/sae/statsGraph.js';
import { featureStats, saeInputRunner, type FeatureContext } from '../../src/engine/analysis/saeFeatures.js';
import { ortF32 } from '../../src/engine/backends/onnx/runtime.js';
import { maxAbsDiff } from '../../src/engine/tensor/tensor.js';
import type { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import type { OutputName } from '../../src/engine/hooks/hooks.js';

const GPT2 = path.join(FIXTURES_ROOT, 'saes', 'gpt2-tied-gelu-new');
const FOLDERS = ['topk-resid-pre-1', 'standard-resid-post-0', 'jumprelu-mlp-out-1', 'gated-attn-out-0', 'standard-mlp-post-1-layer-norm', 'transcoder-mlp-0', 'legacy-standard-resid-pre-0'];

function corpus(): { fx: ReturnType<typeof oracleFixture>; rows: number[][] } {
  const fx = oracleFixture('gpt2-tied-gelu-new');
  // Rows of two lengths (batched apart), repeated prompts (exact ties across rows).
  const rows = [...fx.spec.tokens, ...fx.spec.corrupted_tokens, ...fx.spec.tokens, fx.spec.tokens[0]!.slice(0, 5), fx.spec.tokens[1]!.slice(0, 5)].map((r) => [...r]);
  return { fx, rows };
}

/** Runs `fn` on the fixture's GPT-2 model (default processing) and the corpus rows, then disposes the model. */
async function withFixtureModel(fn: (ht: HookedTransformer, rows: number[][]) => Promise<void>): Promise<void> {
  const { fx, rows } = corpus();
  const ht = engineModel(fx, 'default');
  try {
    await fn(ht, rows);
  } finally {
    await ht.dispose();
  }
}

/** The SAE's activations [batch, pos, d_sae] as the splice computes them (the old path). */
async function splicedActs(ht: HookedTransformer, sae: Sae, rows: number[][]): Promise<Float32Array> {
  const { hookOut } = checkSaeForModel(sae, ht.cfg);
  const name = `${hookOut}.hook_sae_acts_post` as OutputName;
  const r = await ht.run(rows, { saes: [{ sae, useErrorTerm: true }], names: [name], noLogits: true });
  return r.cache.get(name)!.data;
}

test('the input runner stops at the hook and returns the hook\'s own value', async () => {
  await withFixtureModel(async (ht, rows) => {
    for (const hook of ['blocks.1.hook_resid_pre', 'blocks.0.hook_resid_pre', 'blocks.1.hook_mlp_out', 'blocks.0.ln2.hook_normalized', 'hook_embed', 'ln_final.hook_normalized'] as const) {
      const got = await saeInputRunner(ht, hook)(rows.slice(0, 2));
      const want = (await ht.run(rows.slice(0, 2), { names: [hook] })).cache.get(hook)!;
      assert.deepEqual(got.dims, want.dims, hook);
      assert.ok(maxAbsDiff(got, want) < 1e-6, `${hook}: worst difference ${maxAbsDiff(got, want)}`);
    }
  });
});

test('the encoder graph gives the splice\'s activations, flattened over positions', async () => {
  await withFixtureModel(async (ht, rows) => {
    for (const folder of FOLDERS) {
      const sae = loadSaeFolder(path.join(GPT2, folder));
      const { hookIn, hookOut } = checkSaeForModel(sae, ht.cfg);
      const D = sae.cfg.d_sae;
      const batch = rows.slice(0, 4);
      const [B, P] = [batch.length, batch[0]!.length];
      const s = await ht.runtime.compile(buildSaeActsGraph(saeSlot(sae, hookIn, hookOut, false), sae));
      const x = await saeInputRunner(ht, hookIn)(batch);
      const out = await ht.runtime.run(s, { [STATS_X]: ortF32({ dims: [B * P, sae.cfg.d_in], data: x.data }) }, [STATS_ACTS]);
      await s.session.release();
      assert.deepEqual(out[STATS_ACTS]!.dims, [B * P, D], `${folder}: [n, d_sae]`);
      const acts = out[STATS_ACTS]!.data;
      const spliced = await splicedActs(ht, sae, batch);
      let worst = 0, at = -1;
      for (let i = 0; i < acts.length; i++) {
        assert.ok(acts[i]! >= 0, `${folder}: negative activation ${acts[i]} at ${i}`);
        const d = Math.abs(acts[i]! - spliced[i]!);
        if (d > worst) [worst, at] = [d, i];
      }
      assert.ok(worst < 1e-5, `${folder}: activations differ from the splice's by ${worst} at position ${Math.floor(at / D)}, feature ${at % D}`);
    }
  });
});

/** The encoder graph's activations [n, d_sae] for a batch of rows (what featureStats walks). */
async function graphActs(ht: HookedTransformer, sae: Sae, rows: number[][]): Promise<Float32Array> {
  const { hookIn, hookOut } = checkSaeForModel(sae, ht.cfg);
  const s = await ht.runtime.compile(buildSaeActsGraph(saeSlot(sae, hookIn, hookOut, false), sae));
  try {
    const x = await saeInputRunner(ht, hookIn)(rows);
    return (await ht.runtime.run(s, { [STATS_X]: ortF32({ dims: [x.dims[0]! * x.dims[1]!, sae.cfg.d_in], data: x.data }) }, [STATS_ACTS]))[STATS_ACTS]!.data;
  } finally {
    await s.session.release();
  }
}

/**
 * A plain pass: every activation of each batch (from `source`), walked in JavaScript with
 * per-feature arrays of context objects, a full list replacing its first smallest context.
 */
async function plainStats(ht: HookedTransformer, sae: Sae, rows: number[][], K: number, batch: number, keepF: readonly number[], source: (ht: HookedTransformer, sae: Sae, rows: number[][]) => Promise<Float32Array>) {
  const D = sae.cfg.d_sae;
  const count = new Float64Array(D);
  const sum = new Float64Array(D);
  const maxAct = new Float32Array(D);
  const top: FeatureContext[][] = Array.from({ length: D }, () => []);
  const keep = new Map<number, number[]>(keepF.map((f) => [f, []]));
  const byLen = new Map<number, number[]>();
  rows.forEach((r, i) => byLen.set(r.length, [...(byLen.get(r.length) ?? []), i]));
  let tokens = 0;
  for (const [P, idx] of byLen) {
    for (let s = 0; s < idx.length; s += batch) {
      const ids = idx.slice(s, s + batch);
      const a = await source(ht, sae, ids.map((i) => rows[i]!));
      for (let b = 0; b < ids.length; b++) {
        for (let p = 0; p < P; p++) {
          for (let f = 0; f < D; f++) {
            const v = a[(b * P + p) * D + f]!;
            if (v <= 0) continue;
            count[f]!++;
            sum[f]! += v;
            maxAct[f] = Math.max(maxAct[f]!, v);
            keep.get(f)?.push(v);
            const t = top[f]!;
            const floor = t.length < K ? -Infinity : Math.min(...t.map((c) => c.act));
            if (t.length < K) t.push({ row: ids[b]!, pos: p, act: v });
            else if (v > floor) t[t.findIndex((c) => c.act === floor)] = { row: ids[b]!, pos: p, act: v };
          }
        }
      }
      tokens += ids.length * P;
    }
  }
  for (const t of top) t.sort((x, y) => y.act - x.act || x.row - y.row || x.pos - y.pos);
  return { tokens, count, sum, maxAct, top, keep };
}

test('featureStats equals a plain pass over the same activations exactly: densities, sums, maxima, top contexts with their ties, kept values', async () => {
  await withFixtureModel(async (ht, rows) => {
    for (const folder of FOLDERS) {
      const sae = loadSaeFolder(path.join(GPT2, folder));
      const D = sae.cfg.d_sae;
      const keepF = [2, 7];
      const ref = await plainStats(ht, sae, rows, 3, 2, keepF, graphActs);
      // One encoder run per batch, and runs of 3 positions (crossing rows).
      for (const positionsPerRun of [undefined, 3]) {
        const progress: number[] = [];
        const st = await featureStats(ht, sae, rows, { topK: 3, batch: 2, keepValues: keepF, positionsPerRun, onProgress: (d) => progress.push(d) });
        assert.equal(st.tokens, ref.tokens);
        assert.deepEqual(progress, [...progress].sort((a, b) => a - b));
        assert.equal(progress[progress.length - 1], ref.tokens);
        for (let f = 0; f < D; f++) {
          const where = `${folder}, ${positionsPerRun ?? 'all'} positions per run, feature ${f}`;
          assert.equal(st.density[f], ref.count[f]! / ref.tokens, `${where}: density`);
          assert.equal(st.maxAct[f], ref.maxAct[f], `${where}: max`);
          // The same float64 sums in the same order.
          assert.equal(st.meanActive[f], ref.count[f]! > 0 ? ref.sum[f]! / ref.count[f]! : 0, `${where}: mean`);
          assert.deepEqual(st.top[f], ref.top[f], `${where}: contexts`);
        }
        for (const f of keepF) assert.deepEqual([...st.values.get(f)!], ref.keep.get(f), `${folder}: kept values of ${f}`);
      }
    }
  });
});

test('featureStats equals the plain pass over the splice\'s activations: densities exactly, maxima, means and contexts to float32 rounding', async () => {
  await withFixtureModel(async (ht, rows) => {
    for (const folder of FOLDERS) {
      const sae = loadSaeFolder(path.join(GPT2, folder));
      const D = sae.cfg.d_sae;
      const keepF = [2, 7];
      const st = await featureStats(ht, sae, rows, { topK: 3, batch: 2, keepValues: keepF });
      const ref = await plainStats(ht, sae, rows, 3, 2, keepF, splicedActs);
      assert.equal(st.tokens, ref.tokens);
      for (let f = 0; f < D; f++) {
        const where = `${folder}, feature ${f}`;
        assert.equal(st.density[f], ref.count[f]! / ref.tokens, `${where}: density`);
        // Activations from the encoder graph and from the splice agree to float32 rounding of
        // their matrix products; where they are bitwise equal (the usual case) so is everything.
        assert.ok(Math.abs(st.maxAct[f]! - ref.maxAct[f]!) <= 1e-5, `${where}: max ${st.maxAct[f]} vs ${ref.maxAct[f]}`);
        const mean = ref.count[f]! > 0 ? ref.sum[f]! / ref.count[f]! : 0;
        assert.ok(Math.abs(st.meanActive[f]! - mean) <= 1e-5 * Math.max(1, mean), `${where}: mean ${st.meanActive[f]} vs ${mean}`);
        assert.equal(st.top[f]!.length, ref.top[f]!.length, `${where}: number of contexts`);
        st.top[f]!.forEach((c, j) => {
          const r = ref.top[f]![j]!;
          assert.ok(Math.abs(c.act - r.act) <= 1e-5, `${where}: context ${j} ${JSON.stringify(c)} vs ${JSON.stringify(r)}`);
          // Ties (repeated prompts) may order within float noise; the context must be a real one.
          if (Math.abs(c.act - r.act) === 0) assert.deepEqual(c, r, `${where}: context ${j}`);
        });
      }
      for (const f of keepF) assert.equal(st.values.get(f)!.length, ref.keep.get(f)!.length, `${folder}: kept values of ${f}`);
    }
  });
});

test('featureStats: bad options and cancellation', async () => {
  await withFixtureModel(async (ht, rows) => {
    const sae = loadSaeFolder(path.join(GPT2, 'topk-resid-pre-1'));
    await assert.rejects(featureStats(ht, sae, rows, { keepValues: [48] }), /feature 48 does not exist: the SAE has features 0\.\.47/);
    await assert.rejects(featureStats(ht, sae, rows, { topK: 0 }), /topK must be a positive integer/);
    await assert.rejects(featureStats(ht, sae, rows, { positionsPerRun: 0.5 }), /positionsPerRun must be a positive integer, got 0\.5/);
    const ac = new AbortController();
    await assert.rejects(featureStats(ht, sae, rows, { batch: 1, signal: ac.signal, onProgress: () => ac.abort() }), /abort/i);
  });
});
