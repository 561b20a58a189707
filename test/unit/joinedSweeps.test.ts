/**
 * Joined sweep waves (sweep.ts runJoined): cells of several layers that change the same first
 * position share one batch per block from the block they enter. On 4-layer models of several
 * families, every joined sweep must give the numbers of one naive forward per cell, whatever the
 * wave size, and cancel between blocks with the cells finished so far.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { makeConfig, type HookedTransformerConfig } from '../../src/engine/model/config.js';
import { logitDiffMetric, naivePatchCell, normalizedMetric, runPatchSweep, SweepAbortedError, sweepLayout, type PatchSweepSpec } from '../../src/engine/analysis/patching.js';
import type { Metric } from '../../src/engine/analysis/metrics.js';
import { GPT2_LIKE, LLAMA_LIKE, scaledRandomModel, SMALL_SHAPE } from '../helpers/smallFamilies.js';

const families: Record<string, HookedTransformerConfig> = {
  gpt2: GPT2_LIKE,
  llama: LLAMA_LIKE,
  neox: makeConfig({ ...SMALL_SHAPE, model_name: 'neox-like', normalization_type: 'LN', parallel_attn_mlp: true, positional_embedding_type: 'rotary', rotary_dim: 4, original_architecture: 'GPTNeoXForCausalLM' }),
};

const model = (cfg: HookedTransformerConfig): HookedTransformer => scaledRandomModel(cfg, 'default', 5);

// 3 prompts x 7 tokens; the corrupted prompts differ from position 2 on (a shared prefix of 2),
// and equal the clean ones again at positions 4 and 6.
const clean = [[1, 5, 9, 14, 3, 7, 2], [2, 8, 11, 4, 6, 12, 30], [1, 13, 21, 17, 30, 9, 44]];
const corrupted = [[1, 5, 19, 24, 3, 8, 2], [2, 8, 31, 40, 6, 2, 30], [1, 13, 41, 7, 30, 19, 44]];
const answers: [number, number][] = [[3, 4], [10, 20], [7, 8]];

const sweeps: PatchSweepSpec[] = [
  { kind: 'layer_pos', hook: 'resid_pre' },
  { kind: 'layer_pos', hook: 'resid_mid' },
  { kind: 'layer_pos', hook: 'attn_out' },
  { kind: 'layer_pos', hook: 'mlp_out' },
  { kind: 'layer_pos', hook: 'resid_post' },
  { kind: 'head', activation: 'z', by: 'pos' },
  { kind: 'head', activation: 'v', by: 'pos' },
  { kind: 'head', activation: 'pattern', by: 'pos' },
];

async function worstAgainstNaive(m: HookedTransformer, sweep: PatchSweepSpec, metric: Metric, maxBatchRows?: number): Promise<string | null> {
  const cleanCache = (await m.runWithCache(clean)).cache;
  const r = await runPatchSweep(m, clean, corrupted, metric, sweep, { maxBatchRows });
  let worst = 0;
  let where = '';
  for (const cell of sweepLayout(m.cfg, clean[0]!.length, sweep).cells) {
    const naive = await naivePatchCell(m, cleanCache, corrupted, metric, cell);
    const d = Math.abs(naive - r.values[cell.index]!);
    if (!(d <= worst)) [worst, where] = [d, `${cell.hook} ${JSON.stringify(cell.select)}: naive ${naive}, joined ${r.values[cell.index]}`];
  }
  return worst <= 1e-5 ? null : `${JSON.stringify(sweep)} (maxBatchRows ${maxBatchRows ?? 'default'}): worst |joined - naive| = ${worst} at ${where}`;
}

for (const [family, cfg] of Object.entries(families)) {
  test(`joined layer x position and by-position head sweeps equal the naive loop (${family})`, async () => {
    const m = model(cfg);
    try {
      const ld = logitDiffMetric(answers);
      const metric = normalizedMetric(ld, ld(await m.forward(clean)), ld(await m.forward(corrupted)));
      const failures: string[] = [];
      for (const s of sweeps) {
        if (cfg.parallel_attn_mlp && s.kind === 'layer_pos' && s.hook === 'resid_mid') continue; // parallel blocks have no resid_mid
        // One wave per position, and waves of two cells (a cell's rows join a batch mid-way).
        for (const rows of [undefined, 6]) {
          const f = await worstAgainstNaive(m, s, metric, rows);
          if (f) failures.push(f);
        }
      }
      assert.deepEqual(failures, []);
    } finally {
      await m.dispose();
    }
  });
}

test('a joined sweep reports progress wave by wave and a cancel keeps the finished cells', async () => {
  const m = model(families['gpt2']!);
  try {
    const metric = logitDiffMetric(answers);
    const full = await runPatchSweep(m, clean, corrupted, metric, { kind: 'layer_pos', hook: 'resid_pre' });
    const ac = new AbortController();
    const seen: number[] = [];
    const err = await runPatchSweep(m, clean, corrupted, metric, { kind: 'layer_pos', hook: 'resid_pre' }, {
      maxBatchRows: 6,
      signal: ac.signal,
      onProgress: (done) => {
        seen.push(done);
        if (seen.length === 2) ac.abort();
      },
    }).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof SweepAbortedError, `expected SweepAbortedError, got ${String(err)}`);
    const partial = (err as SweepAbortedError<{ values: Float64Array }>).partial.values;
    assert.deepEqual(seen, [2, 4], 'two waves of two cells each, then the cancel');
    // Finished cells (the four run, and those that are the corrupted run itself: nothing
    // changes there) hold the full sweep's values; the others are NaN.
    const unchanged = [...full.values.keys()].filter((i) => full.values[i] === full.values[0]).length;
    const done = [...partial.keys()].filter((i) => !Number.isNaN(partial[i]!));
    assert.equal(done.length, unchanged + 4);
    for (const i of done) assert.equal(partial[i], full.values[i]);
  } finally {
    await m.dispose();
  }
});
