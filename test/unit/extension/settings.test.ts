import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { loadParams, readSettings, resolveModelSpec, settingsKey } from '../../../src/extension/settings.js';

const ws = path.resolve('/ws/project');
const home = path.resolve('/home/me');

test('model specs: builtin and Hugging Face ids as they are; paths resolved', () => {
  assert.equal(resolveModelSpec('builtin:default', ws, home), 'builtin:default');
  assert.equal(resolveModelSpec('  ', ws, home), 'builtin:default');
  assert.equal(resolveModelSpec('gpt2', ws, home), 'gpt2');
  assert.equal(resolveModelSpec('EleutherAI/pythia-70m', ws, home), 'EleutherAI/pythia-70m');
  assert.equal(resolveModelSpec('./models/tiny', ws, home), path.join(ws, 'models/tiny'));
  assert.equal(resolveModelSpec('../shared/m', ws, home), path.join(ws, '../shared/m'));
  assert.equal(resolveModelSpec('${workspaceFolder}/m', ws, home), path.join(ws, 'm'));
  assert.equal(resolveModelSpec('~/models/m', ws, home), path.join(home, 'models/m'));
  assert.equal(resolveModelSpec('/abs/m', ws, home), '/abs/m');
  // A bare name is a folder when the workspace has one by that name, else a hub id.
  assert.equal(resolveModelSpec('local-model', ws, home, (p) => p === path.join(ws, 'local-model')), path.join(ws, 'local-model'));
  assert.equal(resolveModelSpec('./m', undefined, home), './m');
});

test('readSettings validates enums and defaults; the key ignores allowDownload', () => {
  const values: Record<string, unknown> = { model: 'gpt2', processing: 'bogus', device: 'cuda', allowDownload: false };
  const s = readSettings(<T>(k: string) => values[k] as T | undefined, ws, home);
  assert.deepEqual(s, { model: 'gpt2', resolvedModel: 'gpt2', processing: 'default', device: 'cuda', allowDownload: false });
  assert.deepEqual(loadParams(s), { model: 'gpt2', processing: 'default', device: 'cuda', allowDownload: false });
  const d = readSettings(() => undefined, undefined, home);
  assert.equal(d.model, 'builtin:default');
  assert.equal(d.allowDownload, true);
  assert.equal(settingsKey(s), settingsKey({ ...s, allowDownload: true }));
  assert.notEqual(settingsKey(s), settingsKey({ ...s, processing: 'none' }));
});
