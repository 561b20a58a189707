/**
 * The engine host's recovery, with a real engine worker (TypeScript sources) and a stand-in for
 * the `vscode` notifications: the worker dies -> pending requests reject, the user is told, the
 * worker restarts once by itself and the model comes back; a second death soon after waits for
 * "Restart". Settings changes reload; a failed load keeps the previous model usable.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as mock from './vscodeMock.js';
mock.install();
import type { EngineHost as EngineHostT, EngineHostState } from '../../../src/extension/engineHost.js';
import type { EngineSettings } from '../../../src/extension/settings.js';
import { EngineRequests } from '../../../src/protocol/engine.js';

// Loaded after install() so its `import 'vscode'` gets the stand-in.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { EngineHost } = require('../../../src/extension/engineHost.js') as { EngineHost: typeof EngineHostT };

const root = path.join(__dirname, '..', '..', '..');
const noop = () => undefined;
const log = { info: noop, warn: noop, error: noop, show: noop } as unknown as import('vscode').LogOutputChannel;

function makeHost(settings: () => EngineSettings): EngineHostT {
  return new EngineHost({
    workerPath: path.join(root, 'test', 'helpers', 'tsWorker.cjs'),
    workerData: { entry: path.join(root, 'src', 'engine', 'worker', 'engineWorker.ts') },
    settings,
    log,
  });
}

const toy: EngineSettings = { model: 'builtin:toy', resolvedModel: 'builtin:toy', processing: 'default', device: 'cpu', allowDownload: false };

async function until(host: EngineHostT, kind: EngineHostState['kind'], ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (host.state.kind !== kind) {
    if (Date.now() - t0 > ms) throw new Error(`state stayed ${JSON.stringify(host.state)}, wanted ${kind}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('worker death: pending requests reject, one automatic restart with the model, then "Restart"', { timeout: 120_000 }, async () => {
  const host = makeHost(() => toy);
  try {
    const states: string[] = [];
    host.onDidChangeState((s) => states.push(s.kind));
    const info = await host.ensureModel({ interactive: true });
    assert.equal(info.cfg.model_name, 'builtin:toy');
    assert.deepEqual(states, ['loading', 'ready']);

    const pending = host.request(EngineRequests.sleep, { ms: 60_000 });
    await assert.rejects(host.request(EngineRequests.crash, {}), /engine crashed: deliberate crash/);
    await assert.rejects(pending, /engine crashed/);
    assert.equal(host.crashes, 1);
    assert.match(mock.shown.at(-1)?.text ?? '', /The MechLens engine stopped \(.*deliberate crash.*\)\. It was restarted and builtin:toy is loading again/);
    await until(host, 'ready');
    const r = await host.request(EngineRequests.testPrompt, { prompt: 'Hello', k: 3 });
    assert.equal(r.topK.length, 3, 'the restarted worker serves the reloaded model');

    // A second death soon after: no automatic restart; the user is offered "Restart".
    await assert.rejects(host.request(EngineRequests.crash, {}));
    assert.equal(host.state.kind, 'stopped');
    const last = mock.shown.at(-1)!;
    assert.equal(last.level, 'error');
    assert.ok(last.items.includes('Restart'), JSON.stringify(last));
    await assert.rejects(host.ensureModel({ interactive: false }), /Restart Engine/);
    await host.restart();
    assert.equal(host.state.kind, 'ready');
  } finally {
    host.dispose();
  }
});

test('settings: a failed load is an error state; putting the setting back is ready again without reloading', { timeout: 60_000 }, async () => {
  let s = toy;
  const host = makeHost(() => s);
  try {
    await host.ensureModel({ interactive: true });
    s = { ...toy, model: '/no/such/model', resolvedModel: '/no/such/model' };
    await assert.rejects(host.onSettingsChanged()!, (e: Error) => e.name === 'ModelLoadError' && /does not exist/.test(e.message));
    assert.equal(host.state.kind, 'error');
    // Live views do not retry a failed load; commands do.
    await assert.rejects(host.ensureModel({ interactive: false }), /does not exist/);
    s = toy;
    assert.equal(host.onSettingsChanged(), undefined, 'the worker still holds builtin:toy');
    assert.equal(host.state.kind, 'ready');
    const r = await host.run(EngineRequests.testPrompt, { prompt: 'ab', k: 1 }, undefined, { interactive: false });
    assert.equal(r.topK.length, 1);
  } finally {
    host.dispose();
  }
});

test('a settings change before any use stays lazy', () => {
  let s = toy;
  const host = makeHost(() => s);
  try {
    s = { ...toy, model: 'gpt2', resolvedModel: 'gpt2' };
    assert.equal(host.onSettingsChanged(), undefined);
    assert.deepEqual(host.state, { kind: 'idle', spec: 'gpt2' });
  } finally {
    host.dispose();
  }
});
