/**
 * Loading SAELens-format SAEs (both cfg.json layouts), the errors for bad files and for SAEs that
 * do not fit the model, and editing features through the spliced SAE's hooks.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FIXTURES_ROOT, engineModel, oracleFixture } from '../helpers/oracle.js';
import { readSafetensors, writeSafetensors } from '../../src/engine/model/safetensors.js';
import { checkSaeForModel, loadSaeFolder } from '../../src/engine/sae/sae.js';
import { maxAbsDiff, type F32 } from '../../src/engine/tensor/tensor.js';
import type { OutputName, SaeHookName } from '../../src/engine/hooks/hooks.js';

const GPT2 = path.join(FIXTURES_ROOT, 'saes', 'gpt2-tied-gelu-new');
const RMS = path.join(FIXTURES_ROOT, 'saes', 'rms-gqa-gated');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-sae-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;

/** A copy of a fixture SAE folder with its cfg.json and / or weights edited. */
function variant(src: string, edit: { cfg?: (c: Record<string, unknown>) => void; weights?: (w: Map<string, F32>) => void }): string {
  const dir = path.join(tmpRoot, `v${n++}`);
  fs.mkdirSync(dir);
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'cfg.json'), 'utf8')) as Record<string, unknown>;
  edit.cfg?.(cfg);
  fs.writeFileSync(path.join(dir, 'cfg.json'), JSON.stringify(cfg));
  const w = readSafetensors(path.join(src, 'sae_weights.safetensors'));
  edit.weights?.(w);
  writeSafetensors(path.join(dir, 'sae_weights.safetensors'), w);
  return dir;
}

test('SAELens 6 cfg.json: architecture, sizes, hooks from metadata, options', () => {
  const s = loadSaeFolder(path.join(GPT2, 'topk-resid-pre-1'));
  assert.equal(s.cfg.layout, 'sae_lens_6');
  assert.equal(s.cfg.architecture, 'topk');
  assert.equal(s.cfg.k, 6);
  assert.deepEqual([s.cfg.d_in, s.cfg.d_sae, s.cfg.d_out], [32, 48, 32]);
  assert.equal(s.cfg.hook_name, 'blocks.1.hook_resid_pre');
  assert.deepEqual(s.weights.W_enc.dims, [32, 48]);
  const t = loadSaeFolder(path.join(GPT2, 'transcoder-mlp-0'));
  assert.equal(t.cfg.hook_name_out, 'blocks.0.hook_mlp_out');
  assert.equal(t.cfg.apply_b_dec_to_input, false);
  const j = loadSaeFolder(path.join(RMS, 'jumprelu-mlp-post-0'));
  assert.deepEqual(j.sparsity?.dims, [48]);
  assert.deepEqual(j.weights.threshold?.dims, [48]);
  assert.notEqual(s.id, loadSaeFolder(path.join(GPT2, 'topk-resid-pre-1')).id, 'each load has its own id');
});

test('older cfg.json layouts: hook_point, activation_fn_kwargs.k, boolean normalize_activations', () => {
  const a = loadSaeFolder(path.join(GPT2, 'legacy-standard-resid-pre-0'));
  assert.equal(a.cfg.layout, 'pre_6');
  assert.equal(a.cfg.architecture, 'standard');
  assert.equal(a.cfg.hook_name, 'blocks.0.hook_resid_pre');
  assert.equal(a.cfg.normalize_activations, 'none');
  const b = loadSaeFolder(path.join(RMS, 'legacy-topk-resid-post-0'));
  assert.equal(b.cfg.architecture, 'topk');
  assert.equal(b.cfg.k, 4);
  // log_threshold (older JumpReLU files) is exponentiated, as SAELens does.
  const src = path.join(GPT2, 'jumprelu-mlp-out-1');
  const dir = variant(src, { weights: (w) => {
    const t = w.get('threshold')!;
    w.delete('threshold');
    w.set('log_threshold', { ...t, data: t.data.map((v) => Math.log(Math.max(v, 1e-3))) });
  } });
  const got = loadSaeFolder(dir).weights.threshold!.data;
  const want = loadSaeFolder(src).weights.threshold!.data;
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i]! - Math.max(want[i]!, 1e-3)) < 1e-6);
});

test('bad files: unknown architecture, missing and mis-shaped tensors, missing hook, release folder', () => {
  const src = path.join(GPT2, 'standard-resid-post-0');
  assert.throws(() => loadSaeFolder(variant(src, { cfg: (c) => (c['architecture'] = 'matryoshka') })), /unknown SAE architecture "matryoshka"; supported: standard, jumprelu, topk, gated/);
  assert.throws(() => loadSaeFolder(variant(src, { cfg: (c) => (c['architecture'] = 'skip_transcoder') })), /skip transcoders are not supported/);
  assert.throws(() => loadSaeFolder(variant(src, { weights: (w) => w.delete('b_enc') })), /b_enc: missing \(expected shape \[48\]\)/);
  assert.throws(() => loadSaeFolder(variant(src, { cfg: (c) => (c['architecture'] = 'jumprelu') })), /threshold: missing/);
  assert.throws(() => loadSaeFolder(variant(src, { cfg: (c) => (c['d_sae'] = 64) })), /W_enc: expected shape \[32, 64\] .* got \[32, 48\]/);
  assert.throws(() => loadSaeFolder(variant(src, { weights: (w) => w.set('W_skip', w.get('b_dec')!) })), /unexpected tensor\(s\) W_skip/);
  assert.throws(() => loadSaeFolder(variant(src, { cfg: (c) => delete (c['metadata'] as Record<string, unknown>)['hook_name'] })), /no hook name/);
  assert.throws(() => loadSaeFolder(variant(src, { cfg: (c) => (c['normalize_activations'] = 'whiten') })), /normalize_activations "whiten"/);
  assert.throws(() => loadSaeFolder(GPT2), /release folder with one SAE per sub-folder: gated-attn-out-0/);
  assert.throws(() => loadSaeFolder(path.join(tmpRoot, 'nowhere')), /does not exist/);
});

test('an SAE that does not fit the model: wrong d_in for its hook, unknown hook, transcoder across blocks', () => {
  const fx = oracleFixture('gpt2-tied-gelu-new');
  const ht = engineModel(fx, 'default');
  const src = path.join(GPT2, 'standard-resid-post-0');
  const wrongHook = loadSaeFolder(variant(src, { cfg: (c) => ((c['metadata'] as Record<string, unknown>)['hook_name'] = 'blocks.0.mlp.hook_post') }));
  assert.throws(() => checkSaeForModel(wrongHook, ht.cfg), /d_in = 32, but blocks\.0\.mlp\.hook_post of this model has width 128/);
  const noHook = loadSaeFolder(variant(src, { cfg: (c) => ((c['metadata'] as Record<string, unknown>)['hook_name'] = 'blocks.7.hook_resid_post') }));
  assert.throws(() => checkSaeForModel(noHook, ht.cfg), /input hook blocks\.7\.hook_resid_post is not a hook of this model: .*2 layers/);
  const across = loadSaeFolder(variant(path.join(GPT2, 'transcoder-mlp-0'), { cfg: (c) => ((c['metadata'] as Record<string, unknown>)['hook_name_out'] = 'blocks.1.hook_mlp_out') }));
  assert.throws(() => checkSaeForModel(across, ht.cfg), /input and output hooks must be in one block/);
  // HookedSAETransformer's mlp.hook_in is the MLP's input, ln2.hook_normalized.
  const hookIn = loadSaeFolder(variant(path.join(GPT2, 'transcoder-mlp-0'), { cfg: (c) => ((c['metadata'] as Record<string, unknown>)['hook_name'] = 'blocks.0.mlp.hook_in') }));
  assert.equal(checkSaeForModel(hookIn, ht.cfg).hookIn, 'blocks.0.ln2.hook_normalized');
  return ht.dispose();
});

test('run errors: SAE hooks without the SAE, two SAEs at one hook, the error hook without the error term', async () => {
  const fx = oracleFixture('gpt2-tied-gelu-new');
  const ht = engineModel(fx, 'default');
  const tokens = fx.spec.tokens;
  const sae = loadSaeFolder(path.join(GPT2, 'standard-resid-post-0'));
  try {
    await assert.rejects(ht.run(tokens, { names: ['blocks.0.hook_resid_post.hook_sae_acts_post' as OutputName] }), /exists only while an SAE is spliced at blocks\.0\.hook_resid_post/);
    await assert.rejects(ht.run(tokens, { saes: [{ sae }, { sae: loadSaeFolder(path.join(GPT2, 'standard-resid-post-0')) }] }), /two SAEs replace blocks\.0\.hook_resid_post/);
    await assert.rejects(ht.run(tokens, { saes: [{ sae }], names: ['blocks.0.hook_resid_post.hook_sae_error' as OutputName] }), /only when the SAE .* useErrorTerm/);
    await assert.rejects(ht.run(tokens, { saes: [{ sae }], stopAtLayer: 0 }), /outside the layers this run computes/);
  } finally {
    await ht.dispose();
  }
});

test('with the error term the logits are the model\'s; editing a feature moves the output by its decoder row', async () => {
  const fx = oracleFixture('gpt2-tied-gelu-new');
  const ht = engineModel(fx, 'default');
  const tokens = fx.spec.tokens;
  const sae = loadSaeFolder(path.join(GPT2, 'standard-resid-post-0'));
  const H = 'blocks.0.hook_resid_post';
  const acts = `${H}.hook_sae_acts_post` as OutputName;
  const output = `${H}.hook_sae_output` as OutputName;
  try {
    const plain = await ht.forward(tokens);
    const base = await ht.run(tokens, { saes: [{ sae, useErrorTerm: true }], names: [acts, output, H] });
    assert.ok(maxAbsDiff(base.logits!, plain) < 1e-4, `error term: logits differ from the model's by ${maxAbsDiff(base.logits!, plain)}`);
    assert.ok(maxAbsDiff(base.cache.get(output)!, base.cache.get(H)!) < 1e-4, 'error term: the SAE output is the activation');
    // The most active feature at [0, 3], zero-ablated there (an intervention on the SAE's hook).
    const a = base.cache.get(acts)!;
    const D = sae.cfg.d_sae;
    const row = a.data.subarray(3 * D, 4 * D);
    const f = row.indexOf(Math.max(...row));
    assert.ok(row[f]! > 0);
    const abl = await ht.run(tokens, {
      saes: [{ sae, useErrorTerm: true }], names: [acts, output],
      interventions: [{ kind: 'zero', hook: acts as SaeHookName, index: { batch: [0], pos: [3], d_sae: [f] } }],
    });
    assert.equal(abl.cache.get(acts)!.data[3 * D + f], 0);
    // output' - output = -acts[f] · W_dec[f] at [0, 3], nothing elsewhere (the error term is the clean one).
    const d = sae.cfg.d_in;
    const o0 = base.cache.get(output)!.data;
    const o1 = abl.cache.get(output)!.data;
    let worst = 0;
    for (let p = 0; p < o0.length / d; p++) for (let j = 0; j < d; j++) {
      const want = p === 3 ? -row[f]! * sae.weights.W_dec.data[f * d + j]! : 0;
      worst = Math.max(worst, Math.abs(o1[p * d + j]! - o0[p * d + j]! - want));
    }
    assert.ok(worst < 1e-4, `ablation moved the output by other than the feature's decoder row: worst ${worst}`);
    const logits = await ht.runWithHooks(tokens, [], { saes: [{ sae, useErrorTerm: true }] });
    assert.ok(maxAbsDiff(logits, plain) < 1e-4);
  } finally {
    await ht.dispose();
  }
});

test('featureStats streams a corpus: densities, maxima and top contexts equal a brute-force pass; histograms; logit effect', async () => {
  const { featureStats, histogram, featureLogitEffect } = await import('../../src/engine/analysis/saeFeatures.js');
  const { featureActivations } = await import('../../src/engine/analysis/sae.js');
  const fx = oracleFixture('gpt2-tied-gelu-new');
  const ht = engineModel(fx, 'default');
  const sae = loadSaeFolder(path.join(GPT2, 'topk-resid-pre-1'));
  // Rows of two lengths (batched separately) from the fixture's prompts.
  const rows = [...fx.spec.tokens, ...fx.spec.corrupted_tokens, fx.spec.tokens[0]!.slice(0, 7)];
  try {
    let calls = 0;
    const st = await featureStats(ht, sae, rows, { topK: 3, batch: 2, keepValues: [0, 5], onProgress: () => calls++ });
    assert.equal(st.tokens, rows.reduce((a, r) => a + r.length, 0));
    assert.ok(calls >= 3);
    const D = sae.cfg.d_sae;
    const all: { f: number; row: number; pos: number; act: number }[] = [];
    for (const [i, r] of rows.entries()) {
      const { acts } = await featureActivations(ht, [r], sae);
      for (let p = 0; p < r.length; p++) for (let f = 0; f < D; f++) {
        const v = acts.data[p * D + f]!;
        if (v > 0) all.push({ f, row: i, pos: p, act: v });
      }
    }
    for (let f = 0; f < D; f++) {
      const mine = all.filter((x) => x.f === f).sort((a, b) => b.act - a.act || a.row - b.row || a.pos - b.pos);
      assert.ok(Math.abs(st.density[f]! - mine.length / st.tokens) < 1e-12, `density of ${f}`);
      // Equal prefixes (clean and corrupted prompts) tie up to float noise: compare activations,
      // and check each context's activation is the brute-force one at that row and position.
      const got = st.top[f]!;
      assert.equal(got.length, Math.min(3, mine.length));
      got.forEach((c, j) => {
        assert.ok(Math.abs(c.act - mine[j]!.act) < 1e-5, `top ${j} of feature ${f}: ${c.act} vs ${mine[j]!.act}`);
        const at = mine.find((m) => m.row === c.row && m.pos === c.pos);
        assert.ok(at && Math.abs(at.act - c.act) < 1e-5, `feature ${f}: context (${c.row}, ${c.pos})`);
      });
      if (mine.length) assert.ok(Math.abs(st.maxAct[f]! - mine[0]!.act) < 1e-5);
    }
    assert.equal(st.values.get(5)!.length, all.filter((x) => x.f === 5).length);
    const h = histogram(st.values.get(5)!, 8);
    assert.equal(h.counts.reduce((a, b) => a + b, 0), st.values.get(5)!.length);
    const eff = featureLogitEffect(ht, sae, 3, 4);
    assert.equal(eff.top.length, 4);
    assert.ok(eff.top[0]!.value >= eff.top[3]!.value && eff.bottom[0]!.value <= eff.bottom[3]!.value);
    await assert.rejects(featureStats(ht, sae, rows, { keepValues: [D] }), /feature 48 does not exist/);
  } finally {
    await ht.dispose();
  }
});

test('attachSae splices into every run (runs that stop before it leave it out) until detachSaes', async () => {
  const fx = oracleFixture('gpt2-tied-gelu-new');
  const ht = engineModel(fx, 'default');
  const tokens = fx.spec.tokens;
  const sae = loadSaeFolder(path.join(GPT2, 'jumprelu-mlp-out-1'));
  try {
    const plain = await ht.forward(tokens);
    const spliced = await ht.forward(tokens, { saes: [{ sae }] });
    assert.ok(maxAbsDiff(plain, spliced) > 1e-3);
    ht.attachSae({ sae });
    assert.equal(maxAbsDiff(await ht.forward(tokens), spliced), 0);
    const r = await ht.runWithCache(tokens, { stopAtLayer: 1 });
    assert.ok(![...r.cache.keys()].some((k) => k.includes('hook_sae')), 'a run stopping before layer 1 has no SAE hooks');
    const all = await ht.runWithCache(tokens);
    assert.ok(all.cache.has('blocks.1.hook_mlp_out.hook_sae_acts_post' as OutputName));
    ht.detachSaes();
    assert.equal(maxAbsDiff(await ht.forward(tokens), plain), 0);
  } finally {
    await ht.dispose();
  }
});

test('feature DLA: features + bias + error add up to the direct logit attribution of the hook they replace', async () => {
  const { featureDla } = await import('../../src/engine/analysis/sae.js');
  const { ActivationCache } = await import('../../src/engine/cache/activationCache.js');
  const { layerDla, layerDlaLabels } = await import('../../src/engine/analysis/basic.js');
  for (const [model, mode, name, components] of [
    ['gpt2-tied-gelu-new', 'default', 'jumprelu-mlp-out-1', ['1_mlp_out']],
    ['rms-gqa-gated', 'none', 'standard-resid-pre-1-constant-norm', ['embed', '0_attn_out', '0_mlp_out']],
  ] as const) {
    const fx = oracleFixture(model);
    const ht = engineModel(fx, mode);
    try {
      const sae = loadSaeFolder(path.join(FIXTURES_ROOT, 'saes', model, name));
      const answers = fx.spec.answers;
      const r = await featureDla(ht, fx.spec.tokens, sae, answers);
      assert.ok(r.features.length > 0);
      const cache = new ActivationCache((await ht.runWithCache(fx.spec.tokens)).cache, ht.cfg, ht.params);
      const labels = layerDlaLabels(cache);
      const dla = layerDla(cache, answers);
      const want = components.reduce((a, c) => a + dla[labels.indexOf(c)]!, 0);
      assert.ok(components.every((c) => labels.includes(c)), labels.join(', '));
      assert.ok(Math.abs(r.total - want) < 1e-4, `${model} ${name}: features + bias + error ${r.total} vs the hook's DLA ${want}`);
      assert.ok(Math.abs(r.values[0]!) >= Math.abs(r.values[r.values.length - 1]!));
    } finally {
      await ht.dispose();
    }
  }
});
