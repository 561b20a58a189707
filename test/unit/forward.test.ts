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
      const { logits, cache } = await m.runWithCache(spec.tokens);
      assertClose(logits!, expectedHook(mode, 'logits'), ATOL, `${mode} logits`);
      const names = hookNamesIn(mode).filter((n) => n !== 'logits');
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
