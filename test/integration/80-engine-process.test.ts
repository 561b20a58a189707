/// <reference types="mocha" />
/**
 * The engine runs in a process of its own: killing it during an experiment (as the out-of-memory
 * killer would) ends that run with a clear outcome, the window stays responsive, the engine is
 * restarted with the model, and the next Inspect works.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ExperimentRunOutcome } from '../../src/extension/experiments';
import type { InspectState } from '../../src/protocol/webview';
import { api, closeAllEditors, commandByTitle, loadedModel, note, waitFor, waitForPanel, workspaceRoot } from './helpers';

describe('engine process', function () {
  this.timeout(180_000);
  const file = () => path.join(workspaceRoot().fsPath, 'long-engine-kill.experiment.json');
  after(async () => {
    await closeAllEditors();
    fs.rmSync(file(), { force: true });
  });

  it('is a separate process; killing it mid-experiment leaves VS Code usable and the next Inspect works', async () => {
    const a = await api();
    await loadedModel(90_000);
    const pid = await waitFor(() => a.engine.pid, 30_000, 'the engine process id');
    assert.notEqual(pid, process.pid, 'the engine is not the extension host');
    const crashes = a.engine.crashes;
    // Long enough to be killed while it runs: causal tracing with many noisy samples.
    fs.writeFileSync(file(), JSON.stringify({ model: 'builtin:default', prompts: [{ prompt: 'Call me Ishmael. Some years ago, never mind how long precisely, having little money', corrupted: 'Call me Queequg. Some years ago, never mind how long precisely, having little money', answer: ' ', wrong: 'e' }], analyses: [{ kind: 'causal_trace', subject: [0, 12], samples: 400 }] }));
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(file()));
    await vscode.window.showTextDocument(doc);
    const t0 = Date.now();
    const run = Promise.resolve(vscode.commands.executeCommand<ExperimentRunOutcome>('mechlens.runExperiment', { uri: doc.uri.toString() }));
    await new Promise((r) => setTimeout(r, 1500));
    process.kill(pid, 'SIGKILL');
    const outcome = await Promise.race([run, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 60_000))]);
    if (outcome === 'hung') assert.fail('the experiment command did not settle within 60 s of the engine being killed');
    note(`experiment after the kill: ${JSON.stringify(outcome).slice(0, 200)} (${Date.now() - t0} ms)`);
    assert.ok(outcome && !outcome.runId, 'the killed run produced no complete run');
    // The run that was going on says why it failed (also shown in a notification titled with it).
    assert.equal(outcome.ran, false);
    assert.match(outcome.message ?? '', /MechLens engine process was killed \(SIGKILL/, JSON.stringify(outcome).slice(0, 300));
    await waitFor(() => a.engine.crashes === crashes + 1, 30_000, 'the host to count the death');
    // The window answers commands meanwhile, and the engine comes back with a new process.
    await vscode.commands.executeCommand('workbench.action.files.newUntitledFile');
    const newPid = await waitFor(() => (a.engine.pid !== undefined && a.engine.pid !== pid ? a.engine.pid : undefined), 60_000, 'a restarted engine process');
    note(`engine process ${pid} killed; restarted as ${newPid}`);
    await loadedModel(90_000);
    // The next Inspect works.
    const text = 'Call me Ishmael.';
    const tdoc = await vscode.workspace.openTextDocument({ language: 'plaintext', content: text });
    const editor = await vscode.window.showTextDocument(tdoc);
    editor.selection = new vscode.Selection(tdoc.positionAt(0), tdoc.positionAt(text.length));
    await vscode.commands.executeCommand(commandByTitle(/Inspect Prompt/).command);
    const p = await waitForPanel(a, (x) => x.title.startsWith('MechLens: Inspect — ') && x.kind === 'inspect' && (x.state as InspectState).prompt === text, 'an Inspect panel after the restart');
    assert.ok((p.state as InspectState).result.topK.length > 0);
  });
});
