/**
 * Direct logit attribution adds up: the components plus the unembedding bias (and, un-folded,
 * the final norm's weight and bias) equal the logit difference, in every processing mode. On the
 * default model the panel used to show a sum of −0.1897 against a logit difference of −0.1106.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { LoadedEngine } from '../../src/engine/engine.js';
import { PROCESSING_MODES } from '../../src/engine/model/params.js';

const GPT2 = path.join(__dirname, '..', 'fixtures', 'gpt2-untied');
const CASES: { model: string; prompt: string; answer: string; wrong: string }[] = [
  { model: 'builtin:default', prompt: 'the cat sat on the m', answer: 'a', wrong: 'o' },
  { model: GPT2, prompt: 'When Mary and John', answer: 'it', wrong: 'L' },
];

for (const c of CASES) {
  for (const mode of PROCESSING_MODES) {
    test(`${path.basename(c.model)} (${mode}): components + unembedding bias${mode === 'none' ? ' + final norm' : ''} = the logit difference to 1e-5`, async () => {
      const eng = await LoadedEngine.load(c.model, { processing: mode });
      try {
        const r = await eng.attribution(c.prompt, { answer: c.answer, wrong: c.wrong });
        const sum = r.layerDla.reduce((a, b) => a + b, 0);
        const folded = eng.model.cfg.normalization_type !== 'LN' && eng.model.cfg.normalization_type !== 'RMS';
        if (folded) {
          assert.equal(r.lnFinalTerm, null);
          // A real check: nothing is made to fit here.
          assert.ok(Math.abs(sum + r.unembedBias - r.total) < 1e-5, `sum ${sum} + b_U ${r.unembedBias} = ${sum + r.unembedBias}, logit diff ${r.total}`);
        } else {
          assert.equal(typeof r.lnFinalTerm, 'number');
          assert.ok(Math.abs(sum + r.unembedBias + r.lnFinalTerm! - r.total) < 1e-5);
        }
        const bU = eng.model.params.get('unembed.b_U')?.data;
        const ids = [r.answer.token, r.wrong!.token];
        assert.equal(r.unembedBias, bU ? bU[ids[0]!]! - bU[ids[1]!]! : 0);
      } finally {
        await eng.dispose();
      }
    });
  }
}
