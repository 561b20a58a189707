import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RunStore } from '../../../src/extension/runStore.js';
import type { RunRecord } from '../../../src/protocol/runs.js';

const record = (id: string, createdAt: string): RunRecord => ({
  id,
  kind: 'attention',
  title: `MechLens: Attention — ${id}`,
  createdAt,
  model: { spec: 'builtin:toy', name: 'builtin:toy', processing: 'default' },
  engineVersion: '0.1.0',
  inputs: { prompts: ['hello'] },
  state: { kind: 'error', title: 't', message: 'm' },
});

test('runs are saved as <dir>/<id>/run.json, listed newest first, read back, deleted', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-runs-'));
  try {
    const store = new RunStore(path.join(dir, '.mechlens', 'runs'));
    assert.deepEqual(await store.list(), [], 'a missing folder is no runs');
    const a = record('a', '2026-01-01T00:00:00.000Z');
    const b = record('b', '2026-02-01T00:00:00.000Z');
    const file = await store.save(a);
    assert.equal(file, path.join(dir, '.mechlens', 'runs', 'a', 'run.json'));
    await store.save(b);
    // Broken neighbours: one not JSON, one not a run, one without run.json (ignored).
    fs.mkdirSync(path.join(store.dir, 'junk'));
    fs.writeFileSync(path.join(store.dir, 'junk', 'run.json'), '{');
    fs.mkdirSync(path.join(store.dir, 'other'));
    fs.writeFileSync(path.join(store.dir, 'other', 'run.json'), '{"id": 1}');
    fs.mkdirSync(path.join(store.dir, 'empty'));
    const list = await store.list();
    assert.deepEqual(list.slice(0, 2).map((r) => r.id), ['b', 'a']);
    assert.deepEqual(list.slice(2).map((r) => [r.id, r.record === undefined, typeof r.problem]).sort(), [['junk', true, 'string'], ['other', true, 'string']]);
    assert.deepEqual(await store.read('a'), a);
    await assert.rejects(store.read('other'), /not a MechLens run: "id" must be a string/);
    assert.throws(() => store.fileOf('../escape'), /invalid run id/);
    await store.delete('a');
    assert.deepEqual((await store.list()).filter((r) => r.record).map((r) => r.id), ['b']);
    assert.deepEqual(fs.readdirSync(path.join(store.dir, 'b')), ['run.json'], 'no temp files left behind');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
