/// <reference types="mocha" />
/**
 * "MechLens: Inspect Prompt" on what the user selected: in an ordinary text file the selected
 * text is the prompt; in a .prompts file the selected line's entry is. The panel's state must be
 * the engine's test_prompt of exactly that prompt.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { EngineRequests } from '../../src/protocol/engine';
import type { InspectState } from '../../src/protocol/webview';
import { parsePromptsFile } from '../../src/engine/prompts/promptsFile';
import { api, closeAllEditors, commandByTitle, describePanels, loadedModel, note, samplePromptFiles, waitForPanel } from './helpers';

async function inspectAndWait(expectedPrompt: string): Promise<InspectState> {
  const a = await api();
  const cmd = commandByTitle(/Inspect Prompt/).command;
  await vscode.commands.executeCommand(cmd);
  const p = await waitForPanel(a, (x) => x.title.startsWith('MechLens: Inspect — ') && x.kind !== 'loading' && (x.kind !== 'inspect' || (x.state as InspectState).prompt === expectedPrompt), `an Inspect panel for ${JSON.stringify(expectedPrompt)}`);
  assert.equal(p.kind, 'inspect', `the panel shows ${p.kind}: ${describePanels(a)}`);
  return p.state as InspectState;
}

describe('Inspect Prompt on a selection', function () {
  this.timeout(120_000);
  before(async () => {
    await loadedModel(90_000);
    await closeAllEditors();
  });
  afterEach(closeAllEditors);

  it('inspects exactly the selected text of a plain text file', async () => {
    const text = 'The quick brown fox jumps over the lazy dog.\nSecond line.';
    const doc = await vscode.workspace.openTextDocument({ language: 'plaintext', content: text });
    const editor = await vscode.window.showTextDocument(doc);
    const start = text.indexOf('quick');
    const end = text.indexOf(' over');
    editor.selection = new vscode.Selection(doc.positionAt(start), doc.positionAt(end));
    const selected = doc.getText(editor.selection);
    assert.equal(selected, 'quick brown fox jumps');

    const state = await inspectAndWait(selected);
    const a = await api();
    const k = state.result.topK.length;
    const ref = await a.engine.request(EngineRequests.testPrompt, { prompt: selected, prependBos: true, k });
    assert.deepEqual(state.result.strTokens, ref.strTokens, 'tokens of the selection');
    assert.deepEqual(state.result.topK.map((t) => t.token), ref.topK.map((t) => t.token), 'top-k tokens');
    const dl = Math.max(...state.result.topK.map((t, i) => Math.abs(t.logit - ref.topK[i]!.logit)));
    assert.ok(dl <= 1e-5, `top-k logits differ from test_prompt by ${dl}`);
    const ps = state.result.topK.reduce((s, t) => s + t.prob, 0);
    assert.ok(ps > 0 && ps <= 1 + 1e-5, `top-k probabilities sum to ${ps}`);
    assert.equal(state.result.perTokenLoss.length, ref.strTokens.length - 1, 'one loss per predicted position');
    note(`selection ${JSON.stringify(selected)}: ${ref.strTokens.length} tokens, top-1 ${JSON.stringify(state.result.topK[0]?.str)} p=${state.result.topK[0]?.prob.toFixed(3)}`);
  });

  it('inspects the prompt on the selected line of a .prompts file', async () => {
    const uri = (await samplePromptFiles())[0]!;
    const doc = await vscode.workspace.openTextDocument(uri);
    const editor = await vscode.window.showTextDocument(doc);
    const entries = parsePromptsFile(doc.getText()).prompts;
    const entry = entries[1] ?? entries[0];
    assert.ok(entry, `${uri.fsPath} holds no prompt`);
    const line = doc.lineAt(entry.line);
    // Select part of the line, as a user dragging over the prompt would.
    editor.selection = new vscode.Selection(line.range.start.translate(0, line.firstNonWhitespaceCharacterIndex), line.range.start.translate(0, Math.max(line.firstNonWhitespaceCharacterIndex + 1, Math.floor(line.text.length / 2))));
    const state = await inspectAndWait(entry.prompt.text);
    assert.equal(state.prompt, entry.prompt.text);
    if (entry.answer) {
      // A one-token answer is ranked in the panel; a longer one is dropped with a warning.
      const a = await api();
      const m = await a.engine.request(EngineRequests.measureTokens, { texts: [entry.answer.text], prependBos: false });
      if (m.items[0]?.count === 1) {
        assert.ok(state.result.answer, `the line has the one-token answer ${JSON.stringify(entry.answer.text)} but the panel shows none`);
        assert.equal(state.result.answer.str, entry.answer.text);
      } else {
        note(`answer ${JSON.stringify(entry.answer.text)} is ${m.items[0]?.count} tokens for this model: not ranked`);
      }
    }
  });
});
