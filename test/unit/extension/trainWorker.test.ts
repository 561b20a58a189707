/**
 * The engine worker's training requests, through a real worker thread (the TypeScript sources
 * under tsx): progress per step, Stop = cancel (answered with status 'stopped' and a loadable
 * checkpoint), Resume continuing the same step count, a NaN loss and an unwritable checkpoint
 * folder failing with messages that say what happened and where, and the analyses of a checkpoint.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient } from '../../../src/engine/worker/client.js';
import { EngineRequests, type TrainAnalysisSpec, type TrainConfigPayload, type TrainingProgress } from '../../../src/protocol/engine.js';
import { RemoteError } from '../../../src/protocol/ipc.js';
import { loadModelFolder } from '../../../src/engine/model/load.js';

const entry = path.join(__dirname, '..', '..', '..', 'src', 'engine', 'worker', 'engineWorker.ts');
const client = () => new EngineClient({ workerPath: path.join(__dirname, '..', '..', 'helpers', 'tsWorker.cjs'), workerData: { entry } });
const tmp = (name: string) => fs.mkdtempSync(path.join(os.tmpdir(), `mechlens-train-${name}-`));

function tiny(over: Partial<TrainConfigPayload> = {}): TrainConfigPayload {
  return {
    model: { n_layers: 2, d_model: 16, n_heads: 1, d_head: 16, d_mlp: 32, d_vocab: 12, n_ctx: 8, act_fn: 'relu', normalization_type: 'LN', bos_token_id: 0, model_name: 'tiny' },
    task: { kind: 'previous_token' },
    zero_pos_embed: true,
    max_steps: 40,
    batch_size: 16,
    lr: 3e-3,
    betas: [0.9, 0.95],
    eps: 1e-8,
    weight_decay: 0.1,
    decay_params: 'all',
    max_grad_norm: 1,
    warmup_steps: 5,
    seed: 3,
    save_every: null,
    keep_checkpoints: 3,
    ...over,
  };
}

test('train: a progress notification per step; Stop (cancel) checkpoints; Resume continues the same step count', async () => {
  const c = client();
  const saveDir = tmp('stop');
  try {
    const seen: TrainingProgress[] = [];
    const ac = new AbortController();
    const first = await c.requestWithProgress(EngineRequests.trainStart, { config: tiny({ max_steps: 400 }), saveDir, resume: false, threads: 1 }, (p) => {
      if (!p.training) return;
      seen.push(p.training);
      if (p.training.kind === 'step' && p.training.step === 12) ac.abort();
    }, ac.signal);
    assert.equal(seen[0]!.kind, 'started');
    const steps = seen.filter((p): p is Extract<TrainingProgress, { kind: 'step' }> => p.kind === 'step');
    assert.deepEqual(steps.map((s) => s.step), Array.from({ length: steps.length }, (_, i) => i + 1), 'one notification per step, in order');
    assert.equal(steps[0]!.posLoss.length, 8);
    assert.equal(steps[0]!.posLoss[0], 0, 'BOS predicts nothing');
    assert.equal(first.status, 'stopped');
    // The worker stops at its next step boundary after the cancel arrives (notifications and the
    // cancel cross the thread boundary while it keeps training).
    assert.ok(first.step >= 12 && first.step < 400, `stopped mid-run, at ${first.step}`);
    assert.equal(first.checkpoint, path.join(saveDir, `step-${String(first.step).padStart(6, '0')}`));
    assert.equal(first.losses.length, first.step);
    // The checkpoint is a model folder.
    const m = loadModelFolder(first.checkpoint!);
    assert.equal(m.cfg.n_layers, 2);
    assert.ok(m.params.get('pos_embed.W_pos')!.data.every((x) => x === 0));

    const resumed: TrainingProgress[] = [];
    const second = await c.requestWithProgress(EngineRequests.trainStart, { config: tiny({ max_steps: 400 }), saveDir, resume: true, threads: 1 }, (p) => p.training && resumed.push(p.training));
    const started = resumed[0]!;
    assert.ok(started.kind === 'started');
    assert.equal(started.step, first.step);
    assert.equal(started.resumedFrom, first.checkpoint);
    assert.deepEqual(started.losses, first.losses, 'the history comes back with the checkpoint');
    const s2 = resumed.filter((p) => p.kind === 'step');
    assert.equal(s2[0]!.kind === 'step' && s2[0]!.step, first.step + 1);
    assert.equal(second.status, 'completed');
    assert.equal(second.step, 400);
    assert.equal(second.losses.length, 400);
    assert.equal(fs.readFileSync(path.join(saveDir, 'latest'), 'utf8').trim(), 'step-000400');

    // A resume whose file changed the maths says the checkpoint's settings are kept.
    const notes: string[] = [];
    await c.requestWithProgress(EngineRequests.trainStart, { config: tiny({ max_steps: 402, lr: 1e-3 }), saveDir, resume: true, threads: 1 }, (p) => p.training?.kind === 'started' && notes.push(...p.training.notes));
    assert.match(notes.join(' '), /keeps the checkpoint's \(lr: file 0.001, checkpoint 0.003\)/);

    // Training from scratch replaces the earlier run's checkpoints.
    const again = await c.request(EngineRequests.trainStart, { config: tiny({ max_steps: 3 }), saveDir, resume: false, threads: 1 });
    assert.equal(again.step, 3);
    assert.deepEqual(fs.readdirSync(saveDir).filter((n) => n.startsWith('step-')), ['step-000003']);
  } finally {
    await c.dispose();
    fs.rmSync(saveDir, { recursive: true, force: true });
  }
});

test('train: a NaN loss stops with the reason and keeps the last good step loadable; an unwritable folder is named', async () => {
  const c = client();
  const saveDir = tmp('nan');
  try {
    await assert.rejects(
      c.request(EngineRequests.trainStart, { config: tiny({ lr: 1e30, max_grad_norm: null, warmup_steps: 0, weight_decay: 0 }), saveDir, resume: false, threads: 1 }),
      (e: unknown) => {
        assert.ok(e instanceof RemoteError);
        assert.match(e.message, /training stopped at step \d+: the (loss|gradient norm) is (NaN|Infinity|-Infinity)/);
        assert.match(e.message, /The last good step \(\d+\) was saved to .*step-0000\d\d/);
        return true;
      },
    );
    const latest = fs.readFileSync(path.join(saveDir, 'latest'), 'utf8').trim();
    assert.ok(fs.existsSync(path.join(saveDir, latest, 'model.safetensors')));

    const file = path.join(saveDir, 'a-file');
    fs.writeFileSync(file, 'not a folder');
    const bad = path.join(file, 'checkpoints');
    await assert.rejects(c.request(EngineRequests.trainStart, { config: tiny(), saveDir: bad, resume: false, threads: 1 }), (e: unknown) => {
      assert.ok(e instanceof RemoteError);
      assert.ok(e.message.includes(`the checkpoint folder ${bad} is not writable: ENOTDIR`), e.message);
      return true;
    });
    // The worker keeps serving after both failures.
    assert.equal((await c.request(EngineRequests.trainStart, { config: tiny({ max_steps: 2 }), saveDir: path.join(saveDir, 'ok'), resume: false, threads: 1 })).status, 'completed');
  } finally {
    await c.dispose();
    fs.rmSync(saveDir, { recursive: true, force: true });
  }
});

test('analyse: every analysis kind on a trained checkpoint, with the shapes the panel expects', async () => {
  const c = client();
  const saveDir = tmp('analyse');
  try {
    const cfg = tiny({ max_steps: 60 });
    await c.request(EngineRequests.trainStart, { config: cfg, saveDir, resume: false, threads: 1 });
    const analyses: TrainAnalysisSpec[] = [
      { kind: 'loss', sequences: 300 },
      { kind: 'attention_patterns', sequences: 300 },
      { kind: 'logit_contributions', sequence: 1 },
      { kind: 'fold_ln', sequences: 20 },
      { kind: 'qk_circuit', weights: 'raw' },
      { kind: 'ov_circuit', layers: [1], into: 'mlp_in', mlp_layer: 0 },
      { kind: 'ov_circuit', layers: [0], into: 'unembed', tokens: 5 },
      { kind: 'mlp_activations', layers: [0], sequences: 300 },
      { kind: 'ablation', sequences: 300 },
    ];
    const fractions: number[] = [];
    const r = await c.requestWithProgress(EngineRequests.trainAnalyse, { checkpoint: saveDir, task: cfg.task, analyses, seed: 9, threads: 1 }, (p) => p.fraction !== undefined && fractions.push(p.fraction));
    assert.equal(r.step, 60);
    assert.equal(r.checkpoint, path.join(saveDir, 'step-000060'));
    assert.equal(fractions[fractions.length - 1], 1);
    const by = <K extends string>(k: K) => r.results.filter((x) => x.kind === k);
    const loss = by('loss')[0]!;
    assert.ok(loss.kind === 'loss' && loss.loss > 0 && loss.loss < Math.log(12), `loss ${loss.kind === 'loss' ? loss.loss : ''}`);
    assert.equal(loss.kind === 'loss' && loss.posLoss.length, 8);
    const attn = by('attention_patterns')[0]!;
    assert.ok(attn.kind === 'attention_patterns');
    assert.equal(attn.patterns.length, 2);
    for (const row of attn.patterns[1]!) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-4, 'rows are probability distributions');
    assert.equal(attn.patterns[0]![0]![1], 0, 'causal');
    const lc = by('logit_contributions')[0]!;
    assert.ok(lc.kind === 'logit_contributions');
    assert.deepEqual(lc.components, ['embed', '0_attn_out', '0_mlp_out', '1_attn_out', '1_mlp_out'], 'W_pos is zero: no pos_embed component');
    assert.deepEqual(lc.positions, [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(lc.targets, lc.tokens.slice(0, 7), 'previous_token: the target of position p is token p-1');
    const fold = by('fold_ln')[0]!;
    assert.ok(fold.kind === 'fold_ln' && fold.maxLogProbDiff < 1e-3 && fold.normalization === 'LN → LNPre' && fold.wPosNorm === 0);
    const qk = by('qk_circuit');
    assert.equal(qk.length, 2, 'one per layer and head');
    assert.ok(qk[0]!.kind === 'qk_circuit' && qk[0]!.values.length === 12 && qk[0]!.values[0]!.length === 12);
    const [ovMlp, ovU] = by('ov_circuit');
    assert.ok(ovMlp!.kind === 'ov_circuit' && ovMlp!.into === 'mlp_in' && ovMlp!.values.length === 12 && ovMlp!.values[0]!.length === 32);
    assert.ok(ovU!.kind === 'ov_circuit' && ovU!.into === 'unembed' && ovU!.values.length === 5 && ovU!.values[0]!.length === 5);
    const mlp = by('mlp_activations')[0]!;
    assert.ok(mlp.kind === 'mlp_activations' && mlp.firingRate > 0 && mlp.firingRate < 1);
    assert.ok(mlp.firing.flat().every((v) => v >= 0 && v <= 1));
    assert.equal(mlp.example.length, 8);
    const abl = by('ablation')[0]!;
    assert.ok(abl.kind === 'ablation');
    assert.equal(abl.hooks[0], 'hook_embed');
    assert.ok(!abl.hooks.includes('hook_pos_embed') && !abl.hooks.some((h) => h.endsWith('hook_result')));
    assert.equal(abl.losses.length, abl.hooks.length);
    assert.ok(abl.losses[0]! > abl.baseline + 0.5, `ablating hook_embed removes the tokens: ${abl.losses[0]} vs ${abl.baseline}`);
  } finally {
    await c.dispose();
    fs.rmSync(saveDir, { recursive: true, force: true });
  }
});
