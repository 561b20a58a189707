/**
 * The workspace the real-VS-Code runs open is a copy of samples/: runs and edits never land in the
 * source tree, npm start keeps a user's edits between starts, and the copy's experiment files
 * still find their JSON schema.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeRunDirs, prepareWorkspace, REPO_ROOT, SAMPLES_DIR } from '../../scripts/vscode/common.js';

test('a copy of samples/, with $schema pointing at the repository, and kept edits with keepExisting', () => {
  const dirs = makeRunDirs('mechlens-ws-test-');
  const ws = prepareWorkspace(dirs);
  assert.notEqual(path.resolve(ws), path.resolve(SAMPLES_DIR));
  const names = fs.readdirSync(SAMPLES_DIR).filter((f) => !f.startsWith('.mechlens'));
  for (const f of names) assert.ok(fs.existsSync(path.join(ws, f)), f);
  const tour = fs.readFileSync(path.join(ws, 'toy-tour.experiment.json'), 'utf8');
  const schema = (JSON.parse(tour) as { $schema: string }).$schema;
  assert.equal(schema, `${pathToFileURL(path.join(REPO_ROOT, 'schemas')).href}/experiment.schema.json`);
  assert.equal(tour.split('\n').length, fs.readFileSync(path.join(SAMPLES_DIR, 'toy-tour.experiment.json'), 'utf8').split('\n').length);
  // A user's edit survives the next npm start; a file they deleted comes back.
  fs.writeFileSync(path.join(ws, 'basics.prompts'), 'my own prompt\n');
  fs.rmSync(path.join(ws, 'ioi.prompts'));
  prepareWorkspace(dirs, { keepExisting: true });
  assert.equal(fs.readFileSync(path.join(ws, 'basics.prompts'), 'utf8'), 'my own prompt\n');
  assert.ok(fs.existsSync(path.join(ws, 'ioi.prompts')));
  fs.rmSync(dirs.root, { recursive: true, force: true });
});
