/// <reference types="mocha" />
/**
 * SAE training in a real VS Code: a small "kind": "train_sae" file written into the workspace
 * gets the Train SAE lens; a mistake is marked at its text and the samples' SAE files have none;
 * "MechLens: Train SAE" trains in its own worker and the training panel's state carries the SAE
 * metrics per snapshot; Stop ends it mid-run with the SAE at that step saved in SAELens's format
 * and measured on held-out tokens; the run is saved; the saved SAE loads in the engine.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { EngineRequests } from '../../src/protocol/engine';
import type { TrainingState } from '../../src/protocol/webview';
import type { RunRecord } from '../../src/protocol/runs';
import { api, closeAllEditors, loadedModel, note, waitFor, workspaceRoot } from './helpers';

const STEPS = 3000;

function saeFile(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    kind: 'train_sae',
    title: 'Integration: a small TopK SAE',
    model: 'builtin:default',
    hook: 'blocks.0.hook_resid_post',
    sae: { architecture: 'topk', d_sae: 128, k: 8 },
    training: { steps: STEPS, batch_size: 256, lr: 0.002, dead_feature_window: 50, log_every: 10 },
    corpus: 'corpus.txt',
    context_size: 64,
    corpus_tokens: 20000,
    eval_tokens: 1024,
    seed: 3,
    output: 'sae-out',
    ...extra,
  }, null, 2) + '\n';
}

type SaeSnap = { file: string; panelOpen: boolean; state: TrainingState }[];
const saeState = async (file: string): Promise<TrainingState | undefined> => ((await vscode.commands.executeCommand<SaeSnap>('mechlens.saeTraining.snapshot')) ?? []).find((x) => x.file === file)?.state;

describe('SAE training', function () {
  this.timeout(240_000);
  let folder: string;
  let file: string;
  let uri: vscode.Uri;
  let output = '';

  before(async () => {
    await api();
    await closeAllEditors();
    folder = path.join(workspaceRoot().fsPath, 'sae-train-it');
    fs.mkdirSync(folder, { recursive: true });
    const text = 'Call me Ishmael. Some years ago--never mind how long precisely--having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world.\n';
    fs.writeFileSync(path.join(folder, 'corpus.txt'), text.repeat(120));
    file = path.join(folder, 'small.experiment.json');
    fs.writeFileSync(file, saeFile());
    uri = vscode.Uri.file(file);
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri));
  });
  after(closeAllEditors);

  it('diagnostics: a mistake is marked at its text; the samples\' SAE files have none', async () => {
    const bad = path.join(folder, 'bad.experiment.json');
    fs.writeFileSync(bad, saeFile({ sae: { architecture: 'topk', d_sae: 128, k: 500 } }));
    const badUri = vscode.Uri.file(bad);
    await vscode.workspace.openTextDocument(badUri);
    const d = await waitFor(() => vscode.languages.getDiagnostics(badUri).find((x) => x.source === 'MechLens'), 20_000, 'a diagnostic on bad.experiment.json');
    assert.match(d.message, /k = 500 is larger than d_sae = 128/);
    const text = fs.readFileSync(bad, 'utf8');
    assert.equal(d.range.start.line, text.split('\n').findIndex((l) => l.includes('"k": 500')));
    for (const name of ['sae-train.experiment.json', 'sae-features.experiment.json']) await vscode.workspace.openTextDocument(vscode.Uri.file(path.join(workspaceRoot().fsPath, name)));
    await new Promise((r) => setTimeout(r, 1500));
    for (const name of ['sae-train.experiment.json', 'sae-features.experiment.json', 'sae-train-it/small.experiment.json']) {
      const u = vscode.Uri.file(path.join(workspaceRoot().fsPath, name));
      assert.deepEqual(vscode.languages.getDiagnostics(u).filter((x) => x.source === 'MechLens' && x.severity === vscode.DiagnosticSeverity.Error).map((x) => x.message), [], name);
    }
  });

  it('the lens of a train_sae file is Train SAE, at its "kind" (no Run lenses)', async () => {
    const lenses = await waitFor(async () => {
      const l = ((await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri, 10)) ?? []).filter((x) => x.command?.command.startsWith('mechlens.'));
      return l.length >= 1 ? l : undefined;
    }, 20_000, 'SAE training lenses');
    assert.deepEqual(lenses.map((l) => l.command!.title), ['Train SAE']);
    assert.equal(lenses[0]!.range.start.line, 1, 'on the "kind" line');
  });

  it('Train SAE: metrics reach the panel per snapshot; Stop saves the SAE at that step, measured on held-out tokens', async () => {
    const done = vscode.commands.executeCommand<TrainingState>('mechlens.trainSae', { uri: uri.toString(), fresh: true, threads: 1 });
    const mid = await waitFor(async () => {
      const s = await saeState(file);
      return s && s.status === 'running' && s.step >= 30 ? s : undefined;
    }, 120_000, 'the SAE panel state to pass step 30', 50);
    const m = mid.sae!;
    note(`running: step ${mid.step}, MSE ${m.mse.at(-1)?.toFixed(2)}, L0 ${m.l0.at(-1)}, EV ${m.explainedVariance.at(-1)?.toFixed(3)}, dead ${m.deadFeatures.at(-1)}`);
    assert.equal(m.d_in, 128);
    assert.equal(m.d_sae, 128);
    assert.deepEqual(m.steps.slice(0, 3), [10, 20, 30]);
    assert.equal(m.l0.at(-1), 8);
    assert.ok(m.explainedVariance.at(-1)! > m.explainedVariance[0]!, 'explained variance rises');
    assert.deepEqual(mid.actions, { stop: true, resume: false, analyse: false });
    const running = ((await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri, 10)) ?? []).map((l) => l.command?.title ?? '');
    assert.ok(running.includes('Stop'), `lenses while training: ${JSON.stringify(running)}`);

    await vscode.commands.executeCommand('mechlens.stopSaeTraining', { uri: uri.toString() });
    const final = await done;
    assert.ok(final, 'the command returns the final state');
    assert.equal(final.status, 'stopped');
    assert.ok(final.step >= 30 && final.step < STEPS, `stopped mid-run at ${final.step}`);
    output = final.checkpoint!;
    assert.equal(output, path.join(folder, 'sae-out'));
    for (const f of ['cfg.json', 'sae_weights.safetensors', 'sparsity.safetensors']) assert.ok(fs.existsSync(path.join(output, f)), f);
    const cfg = JSON.parse(fs.readFileSync(path.join(output, 'cfg.json'), 'utf8')) as { architecture: string; k: number; metadata: { hook_name: string; training: { training_steps: number } } };
    assert.equal(cfg.architecture, 'topk');
    assert.equal(cfg.metadata.hook_name, 'blocks.0.hook_resid_post');
    assert.equal(cfg.metadata.training.training_steps, final.step);
    assert.equal(final.sae?.evaluation?.tokens, 1024);
    assert.match(final.message ?? '', /Stopped at step \d+ of 3000; the SAE at that step was saved/);
    const a = await api();
    const saved = await waitFor(() => {
      const dir = a.runsDir!;
      if (!fs.existsSync(dir)) return undefined;
      return fs.readdirSync(dir).map((id) => path.join(dir, id, 'run.json')).filter((f) => fs.existsSync(f)).map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as RunRecord).find((r) => r.title.startsWith('MechLens: Train SAE'));
    }, 10_000, 'the SAE training run saved');
    assert.equal(saved.kind, 'training');
    note(`stopped at step ${final.step}; held-out EV ${final.sae?.evaluation?.explainedVariance.toFixed(3)}, L0 ${final.sae?.evaluation?.l0}`);
  });

  it('the saved SAE loads for builtin:default in the engine', async () => {
    assert.ok(output, 'previous test saved an SAE');
    const a = await api();
    await loadedModel(90_000);
    const info = await a.engine.request(EngineRequests.saeLoad, { sae: output });
    assert.equal(info.d_sae, 128);
    assert.equal(info.architecture, 'topk');
  });
});
