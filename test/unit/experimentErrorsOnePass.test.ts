/**
 * Every error of an experiment file in one pass: schema problems of some analyses do not hide
 * the other analyses' problems, nor the model's (multi-token answers, missing layers, misspelt
 * hooks), in `mechlens run` and in the editor's check (the worker's experimentCheck).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { parseExperiment, hasErrors } from '../../src/engine/experiments/parse.js';

const FILE = `{
  "title": "Several mistakes",
  "model": "builtin:default",
  "prompts": [{ "prompt": "abc", "corrupted": "abd", "answer": "ab", "wrong": "x" }],
  "analyses": [
    { "kind": "logit_diff", "bogus": 1 },
    { "kind": "ablation", "hooks": ["blocks.0.attn.hook_patern"] },
    { "kind": "patch", "hooks": ["blocks.9.hook_resid_pre"] },
    { "kind": "patch", "hook": "resid_pre", "layers": [9] }
  ]
}
`;

test('mechlens run reports the schema, file and model errors of a file together, in file order, and runs nothing', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-onepass-'));
  const file = path.join(dir, 'bad.experiment.json');
  fs.writeFileSync(file, FILE);
  const r = await runCli(['run', file, '--out', path.join(dir, 'out')]);
  assert.notEqual(r.code, 0);
  const lines = r.err.split('\n').filter((l) => l.includes(': error: '));
  const where = lines.map((l) => /:(\d+):(\d+): error: /.exec(l)!.slice(1, 3).join(':'));
  assert.deepEqual(where, ['4:64', '6:29', '8:5', '8:24', '9:56', '7:37'].sort((a, b) => {
    const [la, ca] = a.split(':').map(Number);
    const [lb, cb] = b.split(':').map(Number);
    return la! - lb! || ca! - cb!;
  }), r.err);
  assert.match(r.err, /the answer "ab" must be a single token/);
  assert.match(r.err, /unknown property "bogus"/);
  assert.match(r.err, /unknown hook "blocks\.0\.attn\.hook_patern": did you mean blocks\.0\.attn\.hook_pattern\?/);
  assert.match(r.err, /layer 9 does not exist/);
  assert.match(r.err, /6 errors in the experiment; nothing was run/);
  assert.equal(fs.existsSync(path.join(dir, 'out')), false, 'no run folder');
  // Each problem once.
  assert.equal(new Set(lines).size, lines.length);
});

test('the parse keeps the sound analyses (original indices) for the model checks, and never a file whose prompts are broken', () => {
  const r = parseExperiment(FILE, '/w/bad.experiment.json');
  assert.ok(hasErrors(r.diagnostics));
  assert.deepEqual(r.experiment?.analyses.map((a) => a.index), [1, 3], 'analyses 0 and 2 have schema problems and are left out');
  const brokenPrompts = FILE.replace('"prompt": "abc"', '"promt": "abc"');
  assert.equal(parseExperiment(brokenPrompts, '/w/bad.experiment.json').experiment, undefined);
});
