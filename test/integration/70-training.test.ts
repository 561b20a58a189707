/// <reference types="mocha" />
/**
 * Training in a real VS Code: a tiny "kind": "train" file written into the workspace gets the
 * Train · Analyse lenses; "MechLens: Train" trains it in the training worker and the panel's
 * state follows the steps; Stop ends it mid-run with a checkpoint; Resume continues from that
 * step to the end; the checkpoint loads as a model in the engine; Analyse runs the file's
 * analyses; both end as runs under .mechlens/runs/. A NaN loss and an unwritable checkpoint
 * folder fail with messages that say so (and where). The samples' train files parse cleanly.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { EngineRequests } from '../../src/protocol/engine';
import type { ExperimentState, TrainingState } from '../../src/protocol/webview';
import type { RunRecord } from '../../src/protocol/runs';
import type { TrainingSnapshot } from '../../src/extension/training';
import { MessageSpy, api, closeAllEditors, loadedModel, note, waitFor, workspaceRoot } from './helpers';

const MAX_STEPS = 600;

function tinyTrainFile(extra: Record<string, unknown> = {}, training: Record<string, unknown> = {}): string {
  return JSON.stringify({
    kind: 'train',
    title: 'Integration: previous token, tiny',
    model: { n_layers: 2, d_model: 32, d_head: 32, n_heads: 1, d_mlp: 64, d_vocab: 20, n_ctx: 12, act_fn: 'relu', normalization_type: 'LN', zero_pos_embed: true },
    task: { kind: 'previous_token' },
    training: { batch_size: 64, max_steps: MAX_STEPS, lr: 3e-3, warmup_steps: 20, max_grad_norm: 1, weight_decay: 0.1, save_every: 100, ...training },
    seed: 1,
    analyses: [
      { kind: 'loss', sequences: 200 },
      { kind: 'attention_patterns', sequences: 200 },
      { kind: 'logit_contributions' },
      { kind: 'fold_ln' },
      { kind: 'qk_circuit', layers: [0], weights: 'raw' },
      { kind: 'ov_circuit', layers: [0], into: 'mlp_in', mlp_layer: 0, weights: 'raw' },
      { kind: 'mlp_activations', layers: [0], sequences: 200 },
      { kind: 'ablation', sequences: 200 },
    ],
    ...extra,
  }, null, 2) + '\n';
}

const snapshot = async (): Promise<TrainingSnapshot> => (await vscode.commands.executeCommand<TrainingSnapshot>('mechlens.training.snapshot'))!;

async function trainingState(file: string): Promise<TrainingState | undefined> {
  return (await snapshot()).training.find((t) => t.file === file)?.state;
}

function runsOf(dir: string, kind: string): RunRecord[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).map((id) => path.join(dir, id, 'run.json')).filter((f) => fs.existsSync(f)).map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as RunRecord).filter((r) => r.kind === kind);
}

describe('Training', function () {
  this.timeout(240_000);
  let folder: string;
  let file: string;
  let uri: vscode.Uri;
  let stoppedAt = 0;
  let checkpoint = '';

  before(async () => {
    await api();
    await closeAllEditors();
    folder = path.join(workspaceRoot().fsPath, 'training-it');
    fs.mkdirSync(folder, { recursive: true });
    file = path.join(folder, 'tiny.experiment.json');
    fs.writeFileSync(file, tinyTrainFile());
    uri = vscode.Uri.file(file);
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri));
  });
  after(closeAllEditors);

  it('diagnostics: a mistake is marked at its line and column; the samples\' train files have none', async () => {
    const bad = path.join(folder, 'bad.experiment.json');
    fs.writeFileSync(bad, tinyTrainFile().replace('"d_mlp": 64,', '"d_mlp": 64, "n_embd": 32,'));
    const badUri = vscode.Uri.file(bad);
    await vscode.workspace.openTextDocument(badUri);
    const d = await waitFor(() => vscode.languages.getDiagnostics(badUri).find((x) => x.source === 'MechLens'), 10_000, 'a diagnostic on bad.experiment.json');
    const text = fs.readFileSync(bad, 'utf8');
    const line = text.split('\n').findIndex((l) => l.includes('"n_embd"'));
    assert.match(d.message, /unknown property "n_embd"/);
    assert.equal(d.range.start.line, line);
    assert.equal(d.range.start.character, text.split('\n')[line]!.indexOf('"n_embd"'));
    assert.equal(d.severity, vscode.DiagnosticSeverity.Error);
    for (const name of ['no-position.experiment.json', 'induction.experiment.json', 'training-it/tiny.experiment.json']) {
      const u = vscode.Uri.file(path.join(workspaceRoot().fsPath, name));
      await vscode.workspace.openTextDocument(u);
    }
    // The bad file's diagnostic shows the check ran on open; give the others the same moment.
    await new Promise((r) => setTimeout(r, 500));
    for (const name of ['no-position.experiment.json', 'induction.experiment.json', 'training-it/tiny.experiment.json']) {
      const u = vscode.Uri.file(path.join(workspaceRoot().fsPath, name));
      assert.deepEqual(vscode.languages.getDiagnostics(u).filter((x) => x.source === 'MechLens').map((x) => x.message), [], name);
    }
  });

  it('the lenses of a train file are Train · Analyse, at its "kind"', async () => {
    const lenses = await waitFor(async () => {
      const l = ((await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri, 10)) ?? []).filter((x) => x.command?.command.startsWith('mechlens.'));
      return l.length >= 2 ? l : undefined;
    }, 20_000, 'training lenses');
    assert.deepEqual(lenses.map((l) => l.command!.title), ['Train', 'Analyse']);
    assert.equal(lenses[0]!.range.start.line, 1, 'on the "kind" line');
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const l of lenses) assert.ok(registered.has(l.command!.command), l.command!.command);
  });

  it('Train: progress reaches the panel state step by step; Stop ends it mid-run with a checkpoint', async () => {
    const arg = { uri: uri.toString(), fresh: true, threads: 1 };
    const done = vscode.commands.executeCommand<TrainingState>('mechlens.train', arg);
    const mid = await waitFor(async () => {
      const s = await trainingState(file);
      return s && s.status === 'running' && s.step >= 20 ? s : undefined;
    }, 60_000, 'the panel state to pass step 20', 25);
    note(`running: step ${mid.step}, loss ${mid.last?.loss.toFixed(3)}, ${Math.round(mid.tokensPerSec ?? 0)} tokens/s`);
    assert.equal(mid.curve.step.length, mid.step, 'one curve point per step so far');
    assert.deepEqual(mid.curve.step.slice(0, 3), [1, 2, 3]);
    assert.ok(mid.last && Number.isFinite(mid.last.loss) && mid.last.lr > 0 && mid.last.gradNorm > 0);
    assert.ok((mid.tokensPerSec ?? 0) > 0 && (mid.stepsPerSec ?? 0) > 0 && mid.etaSec !== null);
    assert.equal(mid.posLoss?.values.length, 12);
    assert.deepEqual(mid.actions, { stop: true, resume: false, analyse: false });
    const running = ((await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri, 10)) ?? []).map((l) => l.command?.title ?? '');
    assert.ok(running.includes('Stop'), `lenses while training: ${JSON.stringify(running)}`);

    await vscode.commands.executeCommand('mechlens.stopTraining', { uri: uri.toString() });
    const final = await done;
    assert.ok(final, 'the command returns the final state');
    assert.equal(final.status, 'stopped');
    assert.ok(final.step >= 20 && final.step < MAX_STEPS, `stopped mid-run at ${final.step}`);
    stoppedAt = final.step;
    checkpoint = final.checkpoint!;
    assert.equal(path.basename(checkpoint), `step-${String(stoppedAt).padStart(6, '0')}`);
    assert.equal(path.dirname(checkpoint), path.join(workspaceRoot().fsPath, '.mechlens', 'train', 'tiny'), 'default checkpoint folder');
    assert.ok(fs.existsSync(path.join(checkpoint, 'model.safetensors')) && fs.existsSync(path.join(checkpoint, 'optimizer.safetensors')));
    const shown = (await trainingState(file))!;
    assert.equal(shown.status, 'stopped');
    assert.equal(shown.step, stoppedAt);
    assert.deepEqual(shown.actions, { stop: false, resume: true, analyse: true });
    const titles = ((await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri, 10)) ?? []).map((l) => l.command?.title);
    assert.deepEqual(titles, ['Train', 'Resume', 'Analyse']);
    const a = await api();
    const saved = await waitFor(() => runsOf(a.runsDir!, 'training').find((r) => r.state.kind === 'training' && r.state.step === stoppedAt), 10_000, 'the stopped run saved');
    assert.equal(saved.state.kind === 'training' && saved.state.status, 'stopped');
    // The Runs view re-opens it as it was, without buttons (a record, not a live run).
    await vscode.commands.executeCommand('mechlens.openRun', saved.id);
    const reopened = await waitFor(() => a.panels.find((p) => p.runId === saved.id), 10_000, 'the re-opened training run');
    assert.equal(reopened.kind, 'training');
    assert.ok(reopened.state.kind === 'training' && reopened.state.step === stoppedAt && !reopened.state.actions.resume);
    note(`stopped at step ${stoppedAt}; checkpoint ${vscode.workspace.asRelativePath(checkpoint)}`);
  });

  it('Resume continues from the stopped step to max_steps', async () => {
    assert.ok(stoppedAt > 0, 'previous test stopped a run');
    const final = await vscode.commands.executeCommand<TrainingState>('mechlens.resumeTraining', { uri: uri.toString(), threads: 1 });
    assert.ok(final);
    assert.equal(final.status, 'completed');
    assert.equal(final.startStep, stoppedAt, 'the session started at the checkpoint');
    assert.equal(final.step, MAX_STEPS);
    assert.deepEqual(final.curve.step, Array.from({ length: MAX_STEPS }, (_, i) => i + 1), 'one continuous curve, no step repeated or missing');
    const first = final.curve.loss[0]!;
    const lastLoss = final.curve.loss[MAX_STEPS - 1]!;
    note(`resumed ${stoppedAt} -> ${final.step}; loss ${first.toFixed(3)} -> ${lastLoss.toFixed(4)}`);
    assert.ok(lastLoss < first / 4, `the model learns: ${first} -> ${lastLoss}`);
    checkpoint = final.checkpoint!;
    assert.equal(path.basename(checkpoint), `step-${String(MAX_STEPS).padStart(6, '0')}`);
  });

  it('the checkpoint loads as a model in the engine and predicts the previous token', async () => {
    const a = await api();
    await loadedModel(90_000);
    try {
      const info = await a.engine.request(EngineRequests.loadModel, { model: checkpoint, processing: 'none', device: 'cpu' });
      assert.equal(info.cfg.n_layers, 2);
      assert.equal(info.cfg.d_vocab, 20);
      const tokens = [[0, 5, 9, 3, 17, 11, 2, 8, 14, 6, 1, 19]];
      const r = await a.engine.request(EngineRequests.runWithCache, { tokens, names: [] });
      const V = 20;
      let right = 0;
      for (let p = 1; p < 12; p++) {
        const row = Array.from(r.logits!.data.subarray(p * V, (p + 1) * V));
        if (row.indexOf(Math.max(...row)) === tokens[0]![p - 1]) right++;
      }
      note(`the trained checkpoint predicts the previous token at ${right} of 11 positions`);
      assert.ok(right >= 9, `${right} of 11`);
    } finally {
      // Give the other suites their model back.
      await vscode.commands.executeCommand('mechlens.restartEngine');
    }
  });

  it('Analyse runs the file\'s analyses on the checkpoint and saves them as a run', async () => {
    const st = await vscode.commands.executeCommand<ExperimentState>('mechlens.analyseTraining', { uri: uri.toString() });
    assert.ok(st, 'the command returns the analysis state');
    assert.equal(st.kind, 'experiment');
    assert.deepEqual(st.sections.map((s) => s.kind), ['loss', 'attention_patterns', 'logit_contributions', 'fold_ln', 'qk_circuit', 'ov_circuit', 'mlp_activations', 'ablation']);
    const panel = (await snapshot()).analyses.find((x) => x.file === file);
    assert.equal(panel?.state.kind, 'experiment');
    const a = await api();
    const rec = await waitFor(() => runsOf(a.runsDir!, 'training-analysis').find((r) => (r.inputs['checkpoint'] as string) === checkpoint), 10_000, 'the analysis run saved');
    assert.equal(rec.state.kind, 'experiment');
  });

  it('a NaN loss and an unwritable checkpoint folder fail with messages that say so', async () => {
    const spy = new MessageSpy();
    try {
      const nanFile = path.join(folder, 'nan.experiment.json');
      fs.writeFileSync(nanFile, tinyTrainFile({}, { lr: 1e30, max_grad_norm: null, warmup_steps: 0, weight_decay: 0 }));
      const nan = await vscode.commands.executeCommand<TrainingState>('mechlens.train', { uri: vscode.Uri.file(nanFile).toString(), fresh: true, threads: 1 });
      assert.equal(nan?.status, 'failed');
      assert.match(nan!.message ?? '', /the (loss|gradient norm) is (NaN|-?Infinity)/);
      assert.match(nan!.message ?? '', /The last good step \(\d+\) was saved/);

      const blocker = path.join(folder, 'not-a-folder');
      fs.writeFileSync(blocker, 'a file where the checkpoint folder should go');
      const roFile = path.join(folder, 'ro.experiment.json');
      fs.writeFileSync(roFile, tinyTrainFile({ checkpoints: 'not-a-folder/ckpt' }));
      const ro = await vscode.commands.executeCommand<TrainingState>('mechlens.train', { uri: vscode.Uri.file(roFile).toString(), fresh: true, threads: 1 });
      assert.equal(ro?.status, 'failed');
      assert.ok((ro!.message ?? '').includes(`${path.join(blocker, 'ckpt')} is not writable`), ro!.message);
      await waitFor(() => spy.messages.some((m) => m.level === 'error' && m.text.includes(path.join(blocker, 'ckpt'))) || undefined, 5000, `an error notification naming the folder; got ${spy.text()}`);
    } finally {
      spy.stop();
    }
  });
});
