/**
 * Where a run will be written is checked before anything is computed: a bad --out used to fail
 * only after every analysis ran, losing the results.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { prepareRunDir } from '../../src/engine/experiments/store.js';
import { RUNS_DIR } from '../../src/protocol/runs.js';

/** An experiment whose model does not exist: an error about the output proves it came first. */
function experiment(): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-dest-'));
  const file = path.join(dir, 'x.experiment.json');
  fs.writeFileSync(file, JSON.stringify({ model: './no-such-model', prompts: [{ prompt: 'ab', corrupted: 'ac', answer: 'd', wrong: 'e' }], analyses: [{ kind: 'logit_diff' }] }));
  return { dir, file };
}

const run = runCli;

test('an --out that is a file fails before the model loads', async () => {
  const { dir, file } = experiment();
  const out = path.join(dir, 'results.txt');
  fs.writeFileSync(out, 'keep me');
  const r = await run(['run', file, '--out', out]);
  assert.equal(r.code, 1);
  assert.match(r.err, /is a file, not a folder/);
  assert.doesNotMatch(r.err, /cannot be loaded/);
  assert.equal(fs.readFileSync(out, 'utf8'), 'keep me');
});

test('a non-empty --out fails before the model loads and is left as it was', async () => {
  const { dir, file } = experiment();
  const out = path.join(dir, 'old-run');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'run.json'), '{}');
  const r = await run(['run', file, '--out', out]);
  assert.match(r.err, /is not empty/);
  assert.doesNotMatch(r.err, /cannot be loaded/);
  assert.deepEqual(fs.readdirSync(out), ['run.json']);
});

test('an --out below a file (cannot be created) fails before the model loads', async () => {
  const { dir, file } = experiment();
  fs.writeFileSync(path.join(dir, 'plain'), '');
  const r = await run(['run', file, '--out', path.join(dir, 'plain', 'run')]);
  assert.match(r.err, /cannot write the run to .*plain\/run: a part of the path is a file, not a folder/);
  assert.doesNotMatch(r.err, /cannot be loaded/);
});

test('a run that fails later leaves no empty run folder behind', async () => {
  const { dir, file } = experiment();
  const out = path.join(dir, 'fresh');
  const r = await run(['run', file, '--out', out]);
  assert.match(r.err, /cannot be loaded/);
  assert.equal(fs.existsSync(out), false);
});

test('runs started at once get distinct folders', () => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-ws-'));
  const now = new Date('2026-01-01T00:00:00Z');
  const dests = Array.from({ length: 20 }, () => prepareRunDir({ workspace: ws, now }));
  assert.equal(new Set(dests.map((d) => d.dir)).size, 20);
  assert.equal(fs.readdirSync(path.join(ws, RUNS_DIR)).length, 20);
  for (const d of dests) d.abandon();
  assert.equal(fs.readdirSync(path.join(ws, RUNS_DIR)).length, 0);
});
