/**
 * SAEs that MechLens trained (the sample SAE samples/saes/blocks.1.hook_resid_post, TopK, and the
 * standard SAE test/fixtures/saes-trained/standard-resid-post-0), against SAELens: the oracle
 * (oracle/gen_trained_saes.py) loads each folder with SAELens's SAE.load_from_disk and encodes
 * builtin:default's activations with it; MechLens loads the same folder, splices it into
 * builtin:default and must give the same activations, features and reconstruction at 1e-4.
 */
import { test } from 'node:test';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FIXTURES_ROOT, assertChecks, compareTensors, type Check } from '../helpers/oracle.js';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { loadSaeFolder } from '../../src/engine/sae/sae.js';
import { featureActivations } from '../../src/engine/analysis/sae.js';
import { LoadedEngine } from '../../src/engine/engine.js';
import type { OutputName } from '../../src/engine/hooks/hooks.js';

const ATOL = 1e-4;
const DIR = path.join(FIXTURES_ROOT, 'saes-trained');
const ROOT = path.join(__dirname, '..', '..');

interface Expected {
  saes: Record<string, { folder: string; hook: string; architecture: string; d_sae: number; weights_sha256: string }>;
}

test('SAEs trained by MechLens load in SAELens and give its feature activations (spliced into builtin:default)', async () => {
  const exp = JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8')) as Expected;
  const want = readSafetensors(path.join(DIR, 'expected.safetensors'));
  const tokensT = want.get('tokens')!;
  const [B, P] = tokensT.dims as [number, number];
  const tokens = Array.from({ length: B }, (_, b) => Array.from(tokensT.data.subarray(b * P, (b + 1) * P)));
  const eng = await LoadedEngine.load('builtin:default', { device: 'cpu', threads: 2 });
  const checks: Check[] = [];
  try {
    if (Object.keys(exp.saes).length < 2) throw new Error('expected a TopK and a standard SAE in the fixture');
    for (const [key, e] of Object.entries(exp.saes)) {
      const folder = path.join(ROOT, e.folder);
      const sha = crypto.createHash('sha256').update(fs.readFileSync(path.join(folder, 'sae_weights.safetensors'))).digest('hex');
      if (sha !== e.weights_sha256) throw new Error(`${e.folder} is not the SAE the oracle encoded with (retrained?): regenerate with python oracle/regenerate.py --only trained_saes`);
      const sae = loadSaeFolder(folder);
      if (sae.cfg.architecture !== e.architecture) throw new Error(`${key}: MechLens reads architecture ${sae.cfg.architecture}, SAELens ${e.architecture}`);
      const r = await eng.model.run(tokens, { names: [e.hook as OutputName], noLogits: true });
      checks.push(compareTensors(`${key} ${e.hook} (the model's activations)`, r.cache.get(e.hook as OutputName), want.get(`${key}/${e.hook}`)!, ATOL));
      const fa = await featureActivations(eng.model, tokens, sae);
      checks.push(compareTensors(`${key} feature activations`, fa.acts, want.get(`${key}/feature_acts`)!, ATOL));
      checks.push(compareTensors(`${key} reconstruction`, fa.output, want.get(`${key}/recons`)!, ATOL));
    }
  } finally {
    await eng.model.dispose();
  }
  assertChecks('MechLens-trained SAEs against SAELens', checks);
  console.log(checks.map((c) => `${c.what}: worst ${c.worst.toExponential(2)}`).join('\n'));
});
