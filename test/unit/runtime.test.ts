import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { DeviceUnavailableError, cudaAvailable, resolveDevice } from '../../src/engine/backends/onnx/runtime.js';
import { LoadedEngine } from '../../src/engine/engine.js';
import { FIXTURE_MODEL_DIR } from '../helpers/fixture.js';

test('device resolution: cpu always works, auto falls back to cpu, cuda without its provider is a clear error', async () => {
  assert.equal(resolveDevice('cpu'), 'cpu');
  if (cudaAvailable()) {
    assert.equal(resolveDevice('auto'), 'cuda');
    return;
  }
  assert.equal(resolveDevice('auto'), 'cpu');
  assert.throws(() => resolveDevice('cuda'), (e: unknown) => e instanceof DeviceUnavailableError && /--onnxruntime-node-install=cuda12/.test(e.message));
  // Through the engine: a clear rejection, and the process is fine afterwards.
  await assert.rejects(LoadedEngine.load(FIXTURE_MODEL_DIR, { device: 'cuda' }), /CUDA provider/);
  const e = await LoadedEngine.load(FIXTURE_MODEL_DIR, { device: 'auto' });
  assert.equal(e.info().device, 'cpu');
  await e.dispose();
});
