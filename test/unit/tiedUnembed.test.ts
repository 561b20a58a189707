/**
 * Tied embeddings (model/unembed.ts): a checkpoint whose W_U is its embedding transposed is loaded
 * with one copy of that matrix, and W_U is kept as factors of the processed W_E. Checked here on
 * the tied oracle fixtures (GPT-2 and BLOOM / OPT / GPT-Neo: LayerNorm, centred; Qwen 2: RMS,
 * folded but not centred; Gemma 1/2/3: RMS with a scaled embedding, Gemma 2 with a final-logit
 * softcap, hence no center_unembed), in every processing mode TransformerLens computed:
 *  - the tied path is the one taken (no W_U-sized tensor beside W_E);
 *  - the W_U the factors stand for is TransformerLens's processed W_U at 1e-4, and the untied
 *    path's (the same checkpoint with W_U a tensor of its own, processed as before) at 1e-5;
 *  - logits, logit-lens directions, X @ W_U and W_U @ W_E agree with the untied path;
 * test/unit/oracle.test.ts runs every other comparison (hooks, DLA, patching) on the same
 * fixtures, hence through the tied path too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectedTensor, oracleFixture, oracleFixtureNames } from '../helpers/oracle.js';
import { loadModelFolder } from '../../src/engine/model/load.js';
import { applyProcessing, processWeights } from '../../src/engine/weights/process.js';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { isTiedUnembed, tiedUnembed, timesUnembed, unembedColumns, unembedMatrix, untieUnembed } from '../../src/engine/model/unembed.js';
import { timesUnembedMatrix, unembedTimesEmbed } from '../../src/engine/analysis/onnxMath.js';
import { tokensToResidualDirections } from '../../src/engine/cache/activationCache.js';
import { f32, type F32 } from '../../src/engine/tensor/tensor.js';

/** max |a - b| and where. */
function worst(a: ArrayLike<number>, b: ArrayLike<number>): { d: number; i: number } {
  assert.equal(a.length, b.length, 'lengths');
  let d = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const x = Math.abs(a[i]! - b[i]!);
    if (!(x <= d)) { d = x; at = i; }
  }
  return { d, i: at };
}

function close(what: string, got: F32 | Float64Array, want: F32, atol: number): void {
  const g = got instanceof Float64Array ? got : got.data;
  const { d, i } = worst(g, want.data);
  assert.ok(d <= atol, `${what}: worst difference ${d.toExponential(2)} at flat index ${i} (got ${g[i]}, want ${want.data[i]}), tolerance ${atol}`);
}

const TIED = oracleFixtureNames().filter((n) => {
  const fx = oracleFixture(n);
  return loadModelFolder(fx.dir).cfg.tie_word_embeddings;
});

test('the tied oracle fixtures include a LayerNorm (GPT-2), an RMS (Qwen 2) and a Gemma model', () => {
  assert.ok(TIED.includes('gpt2-tied-gelu-new'), TIED.join(', '));
  assert.ok(TIED.includes('qkv-bias-gqa-tied'), TIED.join(', '));
  assert.ok(TIED.includes('postnorm-softcap-local'), TIED.join(', '));
});

for (const name of TIED) {
  const fx = oracleFixture(name);
  test(`tied ${name}: loaded with one copy of the embedding`, () => {
    const loaded = loadModelFolder(fx.dir);
    assert.ok(isTiedUnembed(loaded.params), 'the tied path');
    assert.equal(loaded.params.has('unembed.W_U'), false);
    const WE = loaded.params.get('embed.W_E')!;
    for (const [k, t] of loaded.params) if (k !== 'embed.W_E') assert.ok(t.data.length < WE.data.length, `${k} is as large as W_E`);
    // As loaded, W_U = W_Eᵀ exactly (Gemma: W_Eᵀ / sqrt(d_model), undoing its scaled embedding).
    const t = tiedUnembed(loaded.params)!;
    assert.equal(t.K, 0);
    if (fx.expected.family.startsWith('gemma')) assert.ok(t.scale!.every((x) => x === Math.fround(1 / Math.fround(Math.sqrt(loaded.cfg.d_model)))));
    else assert.equal(t.scale, null);
  });
  for (const mode of fx.modes) {
    test(`tied ${name} (${mode}): W_U, logits and the readers of W_U match TransformerLens and the untied path`, async () => {
      const loaded = loadModelFolder(fx.dir);
      const tied = applyProcessing(loaded.cfg, loaded.params, mode);
      const dense = applyProcessing(loaded.cfg, untieUnembed(loaded.params), mode);
      assert.ok(isTiedUnembed(tied.params));
      assert.equal(isTiedUnembed(dense.params), false);
      const WU = unembedMatrix(tied.params);
      close('W_U vs TransformerLens', WU, expectedTensor(fx, mode, 'params/unembed.W_U'), 1e-4);
      close('W_U vs the untied path', WU, dense.params.get('unembed.W_U')!, 1e-5);
      close('b_U vs the untied path', tied.params.get('unembed.b_U')!, dense.params.get('unembed.b_U')!, 1e-5);
      close('W_E vs the untied path', tied.params.get('embed.W_E')!, dense.params.get('embed.W_E')!, 0);

      const cfg = tied.cfg;
      const V = cfg.d_vocab_out, D = cfg.d_model;
      const ids = [0, 3, V - 1, 7];
      close('unembedColumns', unembedColumns(tied.params, ids), unembedColumns(dense.params, ids), 1e-5);
      close('residual directions', tokensToResidualDirections(tied.params, [1, 2], [V - 1, 0]), tokensToResidualDirections(dense.params, [1, 2], [V - 1, 0]), 1e-5);
      const X = f32([2, D], Float32Array.from({ length: 2 * D }, (_, i) => Math.sin(i + 1)));
      close('X @ W_U (CPU)', timesUnembed(tied.params, X), f32([2, V], Float32Array.from(timesUnembed(dense.params, X))), 1e-4);

      const md = new HookedTransformer(dense.cfg, dense.params, mode, fx.dir, { device: 'cpu', threads: 1 });
      // Every way a tied model's logits are computed: the unembed session with W_E as an input
      // (before packing), the pre-packed one (a small model's: the W_U the factors stand for,
      // built for onnxruntime to pack), and a large model's one-session chain (W_E a shared
      // input of embed and unembed).
      const variants = {
        quick: { deferUnembedPacking: true },
        packed: { deferUnembedPacking: false },
        large: { memory: { largeModelBytes: 0 } },
      };
      try {
        const tokens = fx.spec.tokens;
        const want = await md.forward(tokens);
        const vocab = [V - 1, 2, 5];
        for (const [which, o] of Object.entries(variants)) {
          const mt = new HookedTransformer(cfg, tied.params, mode, fx.dir, { device: 'cpu', threads: 1, ...o });
          try {
            if (which === 'quick') {
              close('X @ W_U (onnxruntime)', await timesUnembedMatrix(mt.runtime, tied.params, X), await timesUnembedMatrix(md.runtime, dense.params, X), 1e-4);
              // Entries reach a few hundred (Gemma's scaled embedding): float32 sums, relative tolerance.
              const UEd = await unembedTimesEmbed(md.runtime, dense.params);
              close('W_U @ W_E', await unembedTimesEmbed(mt.runtime, tied.params), UEd, 1e-6 * Math.max(1, ...Array.from(UEd.data, Math.abs)));
            }
            const got = await mt.forward(tokens);
            close(`${which}: logits vs TransformerLens`, got, expectedTensor(fx, mode, 'logits'), 1e-4);
            close(`${which}: logits vs the untied path`, got, want, 1e-4);
            // The other graph variants: the last position only, and a few vocabulary columns.
            close(`${which}: last-position logits`, await mt.forward(tokens, { lastPositionOnly: true }), await md.forward(tokens, { lastPositionOnly: true }), 1e-4);
            close(`${which}: vocab logits`, await mt.forward(tokens, { vocab }), await md.forward(tokens, { vocab }), 1e-4);
          } finally {
            await mt.dispose();
          }
        }
      } finally {
        await md.dispose();
      }
    });
  }
}

test('tied W_U equals the untied path under every combination of fold_ln, center_writing_weights and center_unembed', () => {
  for (const name of ['gpt2-tied-gelu-new', 'qkv-bias-gqa-tied', 'rms1p-scaled-embed']) {
    const loaded = loadModelFolder(oracleFixture(name).dir);
    for (let bits = 0; bits < 8; bits++) {
      const opts = { fold_ln: (bits & 1) !== 0, center_writing_weights: (bits & 2) !== 0, center_unembed: (bits & 4) !== 0, fold_value_biases: true };
      const tied = processWeights(loaded.cfg, loaded.params, opts);
      const dense = processWeights(loaded.cfg, untieUnembed(loaded.params), opts);
      const what = `${name} ${JSON.stringify(opts)}`;
      assert.ok(isTiedUnembed(tied.params), what);
      close(`${what}: W_U`, unembedMatrix(tied.params), dense.params.get('unembed.W_U')!, 1e-5);
      close(`${what}: b_U`, tied.params.get('unembed.b_U')!, dense.params.get('unembed.b_U')!, 1e-5);
      close(`${what}: W_E`, tied.params.get('embed.W_E')!, dense.params.get('embed.W_E')!, 0);
      assert.deepEqual(tied.notes, dense.notes, `${what}: notes`);
    }
  }
});
