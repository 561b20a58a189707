import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { EngineClient } from '../../src/engine/worker/client.js';
import { EngineRequests } from '../../src/protocol/engine.js';
import { FIXTURE_MODEL_DIR, expectedHook, expectedJson, spec } from '../helpers/fixture.js';
import { RemoteError } from '../../src/protocol/ipc.js';

const entry = path.join(__dirname, '..', '..', 'src', 'engine', 'worker', 'engineWorker.ts');
const client = () => new EngineClient({ workerPath: path.join(__dirname, '..', 'helpers', 'tsWorker.cjs'), workerData: { entry } });

test('the worker loads a model, answers typed requests and returns hooks by name', async () => {
  const c = client();
  try {
    const progress: string[] = [];
    const info = await c.requestWithProgress(EngineRequests.loadModel, { model: FIXTURE_MODEL_DIR, processing: 'default', device: 'cpu' }, (p) => progress.push(p.message));
    assert.equal(info.cfg.n_layers, 2);
    assert.equal(info.processing, 'default');
    assert.ok(info.hooks.some((h) => h.name === 'blocks.1.attn.hook_pattern' && h.axes.join() === 'batch,head_index,query_pos,key_pos'));
    assert.ok(progress.includes('compiling the model'));
    const r = await c.request(EngineRequests.runWithCache, { tokens: spec.tokens, names: ['blocks.0.attn.hook_pattern'] });
    const pat = r.cache['blocks.0.attn.hook_pattern']!;
    assert.deepEqual(pat.dims, [spec.tokens.length, 4, spec.tokens[0]!.length, spec.tokens[0]!.length]);
    const ref = expectedHook('default', 'blocks.0.attn.hook_pattern');
    let d = 0;
    pat.data.forEach((v, i) => (d = Math.max(d, Math.abs(v - ref.data[i]!))));
    assert.ok(d < 1e-4, `pattern max diff ${d}`);
    const a = await c.request(EngineRequests.analyze, { tokens: spec.tokens, corrupted_tokens: spec.corrupted_tokens, answers: spec.answers });
    assert.ok(Math.abs(a.logit_diff - (expectedJson.processing.default as { logit_diff: number }).logit_diff) < 1e-4);
  } finally {
    await c.dispose();
  }
});

test('errors come back as replies; the worker keeps serving', async () => {
  const c = client();
  try {
    await assert.rejects(c.request(EngineRequests.runWithCache, { tokens: [[1]], names: [] }), /no model is loaded/);
    await c.request(EngineRequests.loadModel, { model: FIXTURE_MODEL_DIR, device: 'cpu' });
    await assert.rejects(c.request(EngineRequests.runWithCache, { tokens: [[1, 999]], names: [] }), /out of range/);
    await assert.rejects(c.request(EngineRequests.runWithCache, { tokens: [[1]], names: ['blocks.9.hook_resid_pre'] }), /2 layers/);
    await assert.rejects(c.request(EngineRequests.loadModel, { model: path.join(FIXTURE_MODEL_DIR, 'nope') }), /does not exist/);
    // The earlier model is still loaded after a failed load.
    const r = await c.request(EngineRequests.runWithCache, { tokens: [[0, 1, 2]], names: [] });
    assert.deepEqual(r.logits!.dims, [1, 3, 320]);
  } finally {
    await c.dispose();
  }
});

test('cancellation crosses the wire and pending requests reject when the worker dies', async () => {
  const c = client();
  try {
    const ac = new AbortController();
    const t0 = Date.now();
    const p = c.request(EngineRequests.sleep, { ms: 10_000 }, ac.signal);
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(p, (e: unknown) => e instanceof RemoteError && e.code === 'cancelled');
    assert.ok(Date.now() - t0 < 5000);
    const pending = c.request(EngineRequests.sleep, { ms: 10_000 });
    const checked = assert.rejects(pending, /shut down/);
    await c.dispose();
    await checked;
    assert.equal(c.alive, false);
  } finally {
    await c.dispose();
  }
});

test('a crashing worker rejects what was pending and reports its exit', async () => {
  const c = client();
  try {
    let reason = '';
    const exited = new Promise<void>((resolve) => c.onDidExit((r) => { reason = r; resolve(); }));
    const pending = c.request(EngineRequests.sleep, { ms: 10_000 });
    const checked = assert.rejects(pending, /crashed: deliberate crash/);
    void c.request(EngineRequests.crash, {}).catch(() => undefined);
    await checked;
    await exited;
    assert.match(reason, /crashed/);
    assert.equal(c.alive, false);
    await assert.rejects(c.request(EngineRequests.modelInfo, {}), /closed|crashed/);
  } finally {
    await c.dispose();
  }
});

test('the engine runs in a process of its own: killing it (as the OOM killer would) rejects what was pending, with the reason', async () => {
  const c = client();
  try {
    await c.request(EngineRequests.modelInfo, {}).catch(() => undefined);
    assert.ok(c.pid && c.pid !== process.pid, 'a separate process');
    let reason = '';
    const exited = new Promise<void>((resolve) => c.onDidExit((r) => { reason = r; resolve(); }));
    const pending = c.request(EngineRequests.sleep, { ms: 10_000 });
    process.kill(c.pid!, 'SIGKILL');
    await assert.rejects(pending, /killed \(SIGKILL: out of memory, or killed by the system or a user\)/);
    await exited;
    assert.match(reason, /SIGKILL/);
    assert.equal(c.alive, false);
  } finally {
    await c.dispose();
  }
});
