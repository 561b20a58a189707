/// <reference types="mocha" />
/**
 * The Attention lens end to end inside VS Code: running the lens's command opens a webview panel
 * titled 'MechLens: Attention — <prompt>' whose state holds n_layers × n_heads patterns
 * [query_pos][key_pos]; every row is a probability distribution over earlier positions, and the
 * numbers are exactly the engine's own runWithCache (blocks.L.attn.hook_pattern), asked for
 * separately here.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { EngineRequests, type ModelInfo } from '../../src/protocol/engine';
import type { AttentionState } from '../../src/protocol/webview';
import { parsePromptsFile } from '../../src/engine/prompts/promptsFile';
import { api, closeAllEditors, describePanels, loadedModel, maxAbsDiff, note, samplePromptFiles, waitFor, waitForPanel, webviewTabs } from './helpers';

describe('Attention panel', function () {
  this.timeout(120_000);
  let info: ModelInfo;
  let doc: vscode.TextDocument;
  let prompt: string;
  let state: AttentionState;
  let title: string;

  before(async () => {
    info = await loadedModel(90_000);
    await closeAllEditors();
    const uri = (await samplePromptFiles())[0]!;
    doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc);
  });
  after(closeAllEditors);

  it('opens from the Attention CodeLens of the first prompt', async () => {
    const a = await api();
    const lenses = (await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', doc.uri, 100)) ?? [];
    const lens = lenses.find((l) => l.command?.title === 'Attention');
    assert.ok(lens?.command, `no Attention lens in ${doc.uri.fsPath}`);
    const entry = parsePromptsFile(doc.getText()).prompts.find((e) => e.line === lens.range.start.line);
    assert.ok(entry, `the Attention lens sits on line ${lens.range.start.line + 1}, which holds no prompt`);
    prompt = entry.prompt.text;

    const t0 = Date.now();
    await vscode.commands.executeCommand(lens.command.command, ...(lens.command.arguments ?? []));
    const panel = await waitForPanel(a, (p) => p.title.startsWith('MechLens: Attention — ') && p.kind !== 'loading', 'an Attention panel with a result');
    note(`panel "${panel.title}" ready in ${Date.now() - t0} ms`);
    assert.equal(panel.kind, 'attention', `the panel shows ${panel.kind}: ${describePanels(a)}`);
    state = panel.state as AttentionState;
    title = panel.title;
    assert.ok(prompt.startsWith(title.slice('MechLens: Attention — '.length).replace(/…$/, '')), `title "${title}" should show the prompt "${prompt}"`);
    assert.deepEqual(state.prompts, [prompt]);
  });

  it('is a webview tab the workbench shows', async () => {
    assert.ok(state, 'no attention state (previous test failed)');
    // The tab model reaches the extension host asynchronously from the workbench.
    const tab = await waitFor(() => webviewTabs().find((t) => t.label === title), 10_000, `a webview tab labelled "${title}"; tabs: ${JSON.stringify(vscode.window.tabGroups.all.flatMap((g) => g.tabs.map((t) => t.label)))}`);
    assert.match((tab.input as vscode.TabInputWebview).viewType, /mechlens/);
  });

  it('has n_layers × n_heads patterns over the prompt tokens, rows summing to 1', async () => {
    assert.ok(state, 'no attention state (previous test failed)');
    const a = await api();
    const { cfg } = info;
    assert.equal(state.nLayers, cfg.n_layers);
    assert.equal(state.nHeads, cfg.n_heads);
    assert.equal(state.patterns.length, cfg.n_layers, 'patterns[layer]');
    const tok = await a.engine.request(EngineRequests.tokenize, { texts: [prompt], prependBos: true });
    assert.deepEqual(state.strTokens, tok.strTokens[0], 'strTokens must be the tokenizer\'s pieces of the prompt (with BOS)');
    const P = state.strTokens.length;
    let worstRow = 0;
    let worstCausal = 0;
    state.patterns.forEach((layer, l) => {
      assert.equal(layer.length, cfg.n_heads, `patterns[${l}] has ${layer.length} heads`);
      layer.forEach((head, h) => {
        assert.equal(head.length, P, `patterns[${l}][${h}] has ${head.length} query rows, want ${P}`);
        head.forEach((row, q) => {
          assert.equal(row.length, P, `patterns[${l}][${h}][${q}] has ${row.length} keys`);
          worstRow = Math.max(worstRow, Math.abs(row.reduce((s, v) => s + v, 0) - 1));
          for (let k = q + 1; k < P; k++) worstCausal = Math.max(worstCausal, Math.abs(row[k]!));
          assert.ok(row.every((v) => v >= 0 && v <= 1 + 1e-6), `patterns[${l}][${h}][${q}] has values outside [0, 1]`);
        });
      });
    });
    note(`${cfg.n_layers}×${cfg.n_heads} patterns of ${P}×${P}; max |row sum − 1| = ${worstRow.toExponential(2)}, max attention to the future = ${worstCausal.toExponential(2)}`);
    assert.ok(worstRow < 1e-5, `a row sums to 1 ± ${worstRow}`);
    assert.ok(worstCausal < 1e-7, `a query attends to a later key (${worstCausal}): the causal mask is missing`);
  });

  it("equals the engine's own runWithCache numbers", async () => {
    assert.ok(state, 'no attention state (previous test failed)');
    const a = await api();
    const tok = await a.engine.request(EngineRequests.tokenize, { texts: [prompt], prependBos: true });
    const names = Array.from({ length: info.cfg.n_layers }, (_, l) => `blocks.${l}.attn.hook_pattern`);
    const r = await a.engine.request(EngineRequests.runWithCache, { tokens: tok.tokens, names });
    let worst = 0;
    for (let l = 0; l < info.cfg.n_layers; l++) {
      const t = r.cache[names[l]!];
      assert.ok(t, `runWithCache returned no ${names[l]}`);
      const P = state.strTokens.length;
      assert.deepEqual(t.dims, [1, info.cfg.n_heads, P, P], `${names[l]} dims [batch, head_index, query_pos, key_pos]`);
      const panelFlat = state.patterns[l]!.flat(2);
      worst = Math.max(worst, maxAbsDiff(panelFlat, t.data));
    }
    note(`max |panel − runWithCache| over all layers and heads = ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-6, `the panel's patterns differ from runWithCache by up to ${worst}`);
  });

  it('saves the result as a run under runsDir', async () => {
    assert.ok(state, 'no attention state (previous test failed)');
    const a = await api();
    assert.ok(a.runsDir, 'runsDir is undefined although a workspace is open');
    const runs = await (async () => {
      for (let i = 0; i < 50; i++) {
        const found = fs.existsSync(a.runsDir!) ? fs.readdirSync(a.runsDir!).filter((d) => fs.existsSync(path.join(a.runsDir!, d, 'run.json'))) : [];
        if (found.length) return found;
        await new Promise((r) => setTimeout(r, 100));
      }
      return [];
    })();
    const kinds = runs.map((d) => (JSON.parse(fs.readFileSync(path.join(a.runsDir!, d, 'run.json'), 'utf8')) as { kind?: string }).kind);
    assert.ok(kinds.includes('attention'), `no attention run saved in ${a.runsDir}: ${JSON.stringify(runs)}`);
  });
});
