/// <reference types="mocha" />
/**
 * Bad input never leaves the user guessing and never breaks the extension: an empty prompt, a
 * prompt longer than the model's context (n_ctx) and a model setting naming a folder that does
 * not exist each produce a clear message (a notification and/or the panel's error state) that
 * names the problem; afterwards the same session still computes attention.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ErrorState } from '../../src/protocol/webview';
import { MessageSpy, api, closeAllEditors, commandByTitle, describePanels, loadedModel, note, samplePromptFiles, waitFor, waitForPanel, workspaceRoot } from './helpers';

const inspectCmd = (): string => commandByTitle(/Inspect Prompt/).command;

async function openText(content: string): Promise<vscode.TextEditor> {
  const doc = await vscode.workspace.openTextDocument({ language: 'plaintext', content });
  return vscode.window.showTextDocument(doc);
}

describe('bad input', function () {
  this.timeout(120_000);
  let spy: MessageSpy;
  before(async () => {
    await loadedModel(90_000);
    await closeAllEditors();
  });
  beforeEach(() => {
    spy = new MessageSpy();
  });
  afterEach(async () => {
    spy.stop();
    await closeAllEditors();
  });

  it('empty prompt: says the prompt is empty and opens no panel', async () => {
    const a = await api();
    const editor = await openText('\n\nsome text on line three\n');
    editor.selection = new vscode.Selection(0, 0, 0, 0); // cursor on an empty line, nothing selected
    await vscode.commands.executeCommand(inspectCmd());
    await waitFor(() => spy.messages.length > 0 || undefined, 5000, 'a message about the empty prompt');
    note(`message: ${spy.text()}`);
    assert.ok(spy.messages.some((m) => (m.level === 'warning' || m.level === 'error') && /empty/i.test(m.text)), `expected a warning that the prompt is empty, got: ${spy.text()}`);
    assert.equal(a.panels.length, 0, `no panel should open for an empty prompt: ${describePanels(a)}`);

    // Whitespace-only selection: the same, not a run on "   ".
    spy.messages.length = 0;
    const ed2 = await openText('     \n');
    ed2.selection = new vscode.Selection(0, 0, 0, 5);
    await vscode.commands.executeCommand(inspectCmd());
    await waitFor(() => spy.messages.length > 0 || undefined, 5000, 'a message about the blank selection');
    assert.ok(spy.messages.some((m) => /empty/i.test(m.text)), `whitespace-only selection: ${spy.text()}`);
    assert.equal(a.panels.length, 0, `no panel for a blank selection: ${describePanels(a)}`);
  });

  it('prompt longer than n_ctx: the panel and a notification name the context limit', async () => {
    const a = await api();
    const info = await loadedModel();
    const nCtx = info.cfg.n_ctx;
    // ' the' is one BPE token and four characters: more than n_ctx tokens for either tokenizer.
    const long = `Once upon a time${' the'.repeat(nCtx + 8)}`;
    const editor = await openText(long);
    editor.selection = new vscode.Selection(0, 0, 0, long.length);
    await vscode.commands.executeCommand(inspectCmd());
    const p = await waitForPanel(a, (x) => x.title.startsWith('MechLens: Inspect — ') && x.kind !== 'loading', 'the Inspect panel of the long prompt');
    assert.equal(p.kind, 'error', `a prompt of more than n_ctx=${nCtx} tokens must end in the error state, got ${p.kind}`);
    const msg = (p.state as ErrorState).message;
    note(`panel error: ${msg}`);
    assert.match(msg, new RegExp(`n_ctx|context`, 'i'), `the error should name the context limit: ${msg}`);
    assert.match(msg, new RegExp(String(nCtx)), `the error should say the limit (${nCtx}): ${msg}`);
    await waitFor(() => spy.messages.some((m) => m.level === 'error') || undefined, 5000, `an error notification; got ${spy.text()}`);
  });

  describe('missing model folder in settings', () => {
    // samples/.vscode/settings.json sets mechlens.model, so the user's change that takes effect is
    // a workspace one (the workspace is a throwaway copy of samples/).
    const target = vscode.ConfigurationTarget.Workspace;
    let original: string | undefined;
    let missing: string;
    before(() => {
      missing = path.join(workspaceRoot().fsPath, 'no-such-model-folder');
      original = vscode.workspace.getConfiguration('mechlens').inspect<string>('model')?.workspaceValue;
    });
    after(async () => {
      await vscode.workspace.getConfiguration('mechlens').update('model', original, target);
    });

    it('reports that the folder cannot be loaded, naming it', async () => {
      const a = await api();
      const t0 = Date.now();
      await vscode.workspace.getConfiguration('mechlens').update('model', missing, target);
      assert.equal(vscode.workspace.getConfiguration('mechlens').get<string>('model'), missing, 'the setting change did not take effect');
      const uri = (await samplePromptFiles())[0]!;
      const doc = await vscode.workspace.openTextDocument(uri);
      const lenses = (await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', doc.uri, 100)) ?? [];
      const lens = lenses.find((l) => l.command?.title === 'Inspect');
      assert.ok(lens?.command, 'no Inspect lens');
      await vscode.commands.executeCommand(lens.command.command, ...(lens.command.arguments ?? []));
      const p = await waitForPanel(a, (x) => x.title.startsWith('MechLens: Inspect — ') && x.kind !== 'loading', 'the Inspect panel with the missing model', 60_000);
      note(`after ${Date.now() - t0} ms: panel ${p.kind}: ${(p.state as ErrorState).message ?? ''}; engine state ${a.engine.state.kind}`);
      note(`messages: ${spy.text()}`);
      assert.equal(p.kind, 'error', `with model = ${missing} the panel must show an error, got ${p.kind}`);
      const msg = (p.state as ErrorState).message;
      assert.ok(msg.includes('no-such-model-folder'), `the error should name the folder: ${msg}`);
      assert.match(msg, /not (found|exist)|does not exist|no such|missing|cannot find|could not/i, `the error should say the folder is missing: ${msg}`);
      await waitFor(() => spy.messages.some((m) => m.level === 'error' && m.text.includes('no-such-model-folder')) || undefined, 10_000, `an error notification naming the folder; got ${spy.text()}`);
      assert.equal(a.engine.crashes, 0, 'a bad model setting must not crash the engine worker');
    });

    it('still works after the setting is put back', async () => {
      const a = await api();
      await vscode.workspace.getConfiguration('mechlens').update('model', original, target);
      const info = await a.engine.ensureModel();
      assert.equal(info.spec, 'builtin:default');
      const uri = (await samplePromptFiles())[0]!;
      const doc = await vscode.workspace.openTextDocument(uri);
      const lenses = (await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', doc.uri, 100)) ?? [];
      const lens = lenses.find((l) => l.command?.title === 'Attention');
      assert.ok(lens?.command, 'no Attention lens');
      await vscode.commands.executeCommand(lens.command.command, ...(lens.command.arguments ?? []));
      const p = await waitForPanel(a, (x) => x.title.startsWith('MechLens: Attention — ') && x.kind !== 'loading', 'an Attention panel after recovery');
      assert.equal(p.kind, 'attention', `after recovery the panel shows ${p.kind}: ${describePanels(a)}`);
      assert.equal(a.engine.state.kind, 'ready');
    });
  });
});
