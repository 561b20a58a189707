import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { assertClose, expectedHook, fixtureConfig, fixtureParams, hookNamesIn, spec } from '../helpers/fixture.js';
import { makeConfig } from '../../src/engine/model/config.js';
import { f32, type F32 } from '../../src/engine/tensor/tensor.js';

const ATOL = 1e-4;

/**
 * The fixture stores ln*.hook_normalized of an un-folded LayerNorm *before* its affine w, b
 * (x_centred / scale). TransformerLens's LayerNorm.forward hooks the value *after* them
 * (`self.hook_normalized(x * self.w + self.b)`), and MechLens follows TransformerLens; so for
 * mode 'none' the reference here is the fixture's value times w plus b. (For LNPre, i.e. the
 * folded modes, there is no affine and the fixture is used as is.) See docs/DESIGN.md.
 */
function referenceHook(mode: 'none' | 'default', n: string): F32 {
  const e = expectedHook(mode, n);
  const m = /^(blocks\.\d+\.ln[12]|ln_final)\.hook_normalized$/.exec(n);
  if (mode !== 'none' || !m) return e;
  const p = fixtureParams('none');
  const w = p.get(`${m[1]}.w`)!.data, b = p.get(`${m[1]}.b`)!.data;
  const out = new Float32Array(e.data.length);
  for (let i = 0; i < out.length; i++) out[i] = e.data[i]! * w[i % w.length]! + b[i % b.length]!;
  return f32(e.dims, out);
}

for (const mode of ['none', 'default'] as const) {
  test(`every hook and the logits match the fixture (${mode})`, async () => {
    const base = fixtureConfig();
    const cfg = mode === 'none' ? base : makeConfig({ ...base, normalization_type: 'LNPre' });
    const m = new HookedTransformer(cfg, fixtureParams(mode), mode, 'fixture', { device: 'cpu', threads: 1 });
    try {
      const { logits, cache } = await m.runWithCache(spec.tokens);
      assertClose(logits!, expectedHook(mode, 'logits'), ATOL, `${mode} logits`);
      const names = hookNamesIn(mode).filter((n) => n !== 'logits');
      assert.ok(names.length > 30);
      let worst = 0;
      for (const n of names) {
        const got = cache.get(n as never);
        assert.ok(got, `cache lacks ${n}`);
        worst = Math.max(worst, assertClose(got, referenceHook(mode, n), ATOL, `${mode} ${n}`));
      }
      assert.ok(worst <= ATOL);
    } finally {
      await m.dispose();
    }
  });
}
