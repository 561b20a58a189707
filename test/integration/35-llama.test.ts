/// <reference types="mocha" />
/**
 * A Llama-family model in the real VS Code: `mechlens.model` set to a tiny Llama checkpoint
 * (grouped-query attention, RMSNorm, rotary, gated MLP: the oracle fixture rms-gqa-gated) loads
 * through the architecture registry; the model info and hook list are Llama's (hook_rot_q,
 * mlp.hook_pre_linear, keys with n_key_value_heads heads), and the Attention lens opens a panel
 * with n_layers × n_heads query-head patterns whose rows are distributions over earlier tokens.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AttentionState } from '../../src/protocol/webview';
import { api, closeAllEditors, mechlensExtension, note, waitFor, waitForPanel } from './helpers';

describe('Llama-family model', function () {
  this.timeout(120_000);
  // samples/.vscode/settings.json sets mechlens.model: the change that takes effect is a workspace one.
  const target = vscode.ConfigurationTarget.Workspace;
  let original: string | undefined;
  // A prompt short enough for the fixture's n_ctx of 32 (its tiny tokenizer splits words finely).
  const promptsFile = () => path.join(vscode.workspace.workspaceFolders![0]!.uri.fsPath, 'tiny-llama-check.prompts');

  before(() => {
    original = vscode.workspace.getConfiguration('mechlens').inspect<string>('model')?.workspaceValue;
  });
  after(async () => {
    await closeAllEditors();
    await vscode.workspace.getConfiguration('mechlens').update('model', original, target);
    fs.rmSync(promptsFile(), { force: true });
  });

  it('loads from its folder with Llama\'s config and hooks', async () => {
    const a = await api();
    const folder = path.join(mechlensExtension().extensionUri.fsPath, 'test', 'fixtures', 'rms-gqa-gated');
    await vscode.workspace.getConfiguration('mechlens').update('model', folder, target);
    const info = await a.engine.ensureModel();
    note(`loaded ${info.cfg.model_name}: ${info.cfg.original_architecture}, ${info.hooks.length} hooks`);
    assert.equal(info.cfg.original_architecture, 'LlamaForCausalLM');
    assert.equal(info.cfg.normalization_type, 'RMS');
    assert.equal(info.cfg.positional_embedding_type, 'rotary');
    assert.equal(info.cfg.n_key_value_heads, 2);
    const names = info.hooks.map((h) => h.name);
    for (const h of ['blocks.0.attn.hook_rot_q', 'blocks.0.attn.hook_rot_k', 'blocks.1.mlp.hook_pre_linear', 'blocks.0.ln1.hook_scale']) assert.ok(names.includes(h), `hook ${h} listed`);
    assert.ok(!names.includes('hook_pos_embed'), 'no learned positions');
    assert.equal(info.hooks.find((h) => h.name === 'blocks.0.attn.hook_k')?.heads, 2, 'keys have n_key_value_heads heads');
  });

  it('opens the Attention panel with one pattern per query head', async () => {
    const a = await api();
    fs.writeFileSync(promptsFile(), 'When Mary and John\n');
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(promptsFile()));
    await vscode.window.showTextDocument(doc);
    // Lenses appear once the provider has seen the new file.
    const lens = await waitFor(async () => ((await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', doc.uri, 100)) ?? []).find((l) => l.command?.title === 'Attention'), 30_000, `an Attention lens in ${doc.uri.fsPath}`);
    assert.ok(lens.command);
    await vscode.commands.executeCommand(lens.command.command, ...(lens.command.arguments ?? []));
    const panel = await waitForPanel(a, (p) => p.title.startsWith('MechLens: Attention — ') && p.kind !== 'loading', 'an Attention panel with a result');
    assert.equal(panel.kind, 'attention', `the panel shows ${panel.kind}`);
    const state = panel.state as AttentionState;
    assert.equal(state.nLayers, 2);
    assert.equal(state.nHeads, 4);
    let worst = 0;
    for (const layer of state.patterns) for (const head of layer) head.forEach((row, q) => {
      worst = Math.max(worst, Math.abs(row.reduce((s, v) => s + v, 0) - 1));
      for (let k = q + 1; k < row.length; k++) assert.equal(row[k], 0, 'no attention to later tokens');
    });
    assert.ok(worst < 1e-4, `every row sums to 1 (worst ${worst})`);
  });
});
