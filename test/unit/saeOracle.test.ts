/**
 * SAEs and transcoders against SAELens itself (test/fixtures/saes, written by oracle/gen_saes.py
 * with SAELens's HookedSAETransformer): every SAE folder is loaded as a user loads one, spliced
 * into the fixture model (compiled into its ONNX graph), and its hooks and the logits, with and
 * without the error term, must match SAELens at 1e-4; the worst difference is printed.
 */
import { test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FIXTURES_ROOT, assertChecks, compareTensors, engineModel, formatChecks, oracleFixture, type Check } from '../helpers/oracle.js';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { loadSaeFolder, type Sae } from '../../src/engine/sae/sae.js';
import type { OutputName } from '../../src/engine/hooks/hooks.js';
import type { Processing } from '../../src/engine/model/params.js';
import { featureAblation, featureMeans, steeringIntervention } from '../../src/engine/analysis/sae.js';
import { f32 } from '../../src/engine/tensor/tensor.js';

const ATOL = 1e-4;
const SAE_ROOT = path.join(FIXTURES_ROOT, 'saes');

interface SaeExpected {
  model: string;
  processing: Processing;
  tokens: number[][];
  saes: Record<string, { architecture: string; hook_name: string; hook_name_out: string; with_error_cache_keys: string[]; without_error_cache_keys: string[] }>;
  multi: { saes: string[]; cache_keys: string[] };
  edits: { sae: string; hook: string; features: number[]; steer: { feature: number; alpha: number; positions: number[] } };
}

const models = fs.existsSync(SAE_ROOT) ? fs.readdirSync(SAE_ROOT).filter((n) => fs.existsSync(path.join(SAE_ROOT, n, 'expected.json'))).sort() : [];

test('the SAE oracle fixtures exist (oracle/gen_saes.py)', () => {
  if (models.length < 2) throw new Error(`expected SAE fixtures for two models in ${SAE_ROOT}, found ${models.join(', ') || 'none'}`);
});

for (const model of models) {
  const dir = path.join(SAE_ROOT, model);
  const exp = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as SaeExpected;
  const want = readSafetensors(path.join(dir, 'expected.safetensors'));

  test(`${model}: every SAE architecture and transcoder matches SAELens (features, reconstruction, error, output, logits)`, async () => {
    const fx = oracleFixture(model);
    const ht = engineModel(fx, exp.processing);
    const checks: Check[] = [];
    const archs = new Set<string>();
    try {
      for (const [name, e] of Object.entries(exp.saes)) {
        const sae = loadSaeFolder(path.join(dir, name));
        archs.add(sae.cfg.architecture);
        for (const useErrorTerm of [true, false]) {
          const tag = useErrorTerm ? 'with_error' : 'without_error';
          const keys = useErrorTerm ? e.with_error_cache_keys : e.without_error_cache_keys;
          const r = await ht.run(exp.tokens, { saes: [{ sae, useErrorTerm }], names: [...keys as OutputName[], 'logits'] });
          for (const k of keys) {
            const t = want.get(`${name}/${tag}/${k}`);
            if (t) checks.push(compareTensors(`${name} ${tag} ${k}`, r.cache.get(k as OutputName), t, ATOL));
          }
          checks.push(compareTensors(`${name} ${tag} logits`, r.logits, want.get(`${name}/${tag}/logits`)!, ATOL));
          // SAELens's cache holds exactly these SAE hooks; so does MechLens's 'all'.
          const all = await ht.runWithCache(exp.tokens, { saes: [{ sae, useErrorTerm }] });
          const got = [...all.cache.keys()].filter((k) => k.includes('.hook_sae_')).sort();
          if (JSON.stringify(got) !== JSON.stringify([...keys].sort())) throw new Error(`${name} ${tag}: 'all' SAE hooks ${got.join(', ')} differ from SAELens's ${keys.join(', ')}`);
        }
      }
      // Two spliced at once.
      const saes: Sae[] = exp.multi.saes.map((n) => loadSaeFolder(path.join(dir, n)));
      const r = await ht.run(exp.tokens, { saes: saes.map((sae) => ({ sae })), names: [...exp.multi.cache_keys as OutputName[]] });
      for (const k of exp.multi.cache_keys) {
        const t = want.get(`multi/without_error/${k}`);
        if (t) checks.push(compareTensors(`multi ${k}`, r.cache.get(k as OutputName), t, ATOL));
      }
      checks.push(compareTensors('multi logits', r.logits, want.get('multi/without_error/logits')!, ATOL));
    } finally {
      await ht.dispose();
    }
    console.log(formatChecks(`${model} SAEs vs SAELens`, checks));
    assertChecks(`${model} SAEs vs SAELens`, checks);
    if (archs.size < 4) throw new Error(`${model}: expected at least four architectures among the fixtures, got ${[...archs].join(', ')}`);
  });
}

for (const model of models) {
  const dir = path.join(SAE_ROOT, model);
  const exp = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as SaeExpected;
  const want = readSafetensors(path.join(dir, 'expected.safetensors'));

  test(`${model}: feature ablation (zero, mean) and steering match SAELens / TransformerLens`, async () => {
    const ht = engineModel(oracleFixture(model), exp.processing);
    const sae = loadSaeFolder(path.join(dir, exp.edits.sae));
    const checks: Check[] = [];
    try {
      const means = await featureMeans(ht, exp.tokens, sae);
      checks.push(compareTensors('feature means', f32([means.length], means), want.get('edits/feature_means')!, ATOL));
      for (const kind of ['zero', 'mean'] as const) {
        const opts = await featureAblation(ht, exp.tokens, sae, { features: exp.edits.features, kind });
        checks.push(compareTensors(`${kind}-ablated features ${exp.edits.features.join(', ')}: logits`, await ht.forward(exp.tokens, opts), want.get(`edits/${kind}/logits`)!, ATOL));
      }
      const st = exp.edits.steer;
      const iv = steeringIntervention(ht, sae, { feature: st.feature, alpha: st.alpha, positions: st.positions });
      checks.push(compareTensors(`steering ${st.alpha} x feature ${st.feature} at ${st.positions.join(', ')}: logits`, await ht.runWithHooks(exp.tokens, [iv]), want.get('edits/steer/logits')!, ATOL));
    } finally {
      await ht.dispose();
    }
    console.log(formatChecks(`${model} feature edits vs SAELens`, checks));
    assertChecks(`${model} feature edits vs SAELens`, checks);
  });
}
