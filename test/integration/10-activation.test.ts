/// <reference types="mocha" />
/**
 * Activation and wiring: what package.json promises (language, commands, menus, views, settings)
 * is what the running extension registers, and the default model loads offline.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { EngineRequests } from '../../src/protocol/engine';
import { api, commandByTitle, loadedModel, mechlensExtension, note } from './helpers';

interface Contributes {
  commands?: { command: string; title: string; category?: string }[];
  languages?: { id: string; extensions?: string[] }[];
  menus?: Record<string, { command: string; when?: string }[]>;
  viewsContainers?: Record<string, { id: string; title: string }[]>;
  views?: Record<string, { id: string; name: string; type?: string }[]>;
  configuration?: { properties?: Record<string, { default?: unknown }> } | { properties?: Record<string, { default?: unknown }> }[];
}

const contributes = (): Contributes => (mechlensExtension().packageJSON as { contributes?: Contributes }).contributes ?? {};

describe('activation and contributions', function () {
  this.timeout(120_000);

  it('declares the mechlens-prompts language for *.prompts', () => {
    const lang = contributes().languages?.find((l) => l.id === 'mechlens-prompts');
    assert.ok(lang, `no language mechlens-prompts in contributes.languages: ${JSON.stringify(contributes().languages)}`);
    assert.ok(lang.extensions?.includes('.prompts'), `mechlens-prompts must claim .prompts, claims ${JSON.stringify(lang.extensions)}`);
  });

  it('offers "MechLens: Inspect Prompt" in the editor context menu', () => {
    const inspect = commandByTitle(/Inspect Prompt/);
    const menu = contributes().menus?.['editor/context'] ?? [];
    assert.ok(menu.some((m) => m.command === inspect.command), `editor/context menu lacks ${inspect.command}: ${JSON.stringify(menu)}`);
  });

  it('contributes the MechLens activity-bar container with Model, Hook points, Runs and Predictions', () => {
    const containers = contributes().viewsContainers?.activitybar ?? [];
    const c = containers.find((x) => x.title === 'MechLens');
    assert.ok(c, `no activity-bar container titled MechLens: ${JSON.stringify(containers)}`);
    const views = contributes().views?.[c.id] ?? [];
    const names = views.map((v) => v.name);
    for (const n of ['Model', 'Hook points', 'Runs', 'Predictions']) assert.ok(names.some((x) => x.toLowerCase() === n.toLowerCase()), `view "${n}" missing from container ${c.id}: ${JSON.stringify(names)}`);
    const pred = views.find((v) => v.name.toLowerCase() === 'predictions');
    assert.equal(pred?.type, 'webview', 'Predictions must be a webview view');
  });

  it('defaults mechlens.model to builtin:default', () => {
    assert.equal(vscode.workspace.getConfiguration('mechlens').inspect<string>('model')?.defaultValue, 'builtin:default');
  });

  it('activates and returns the test API', async () => {
    const a = await api();
    assert.ok(mechlensExtension().isActive);
    note(`runsDir: ${a.runsDir}`);
  });

  it('registers every contributed command', async () => {
    await api();
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = (contributes().commands ?? []).map((c) => c.command).filter((c) => !registered.has(c));
    assert.deepEqual(missing, [], `contributed but not registered: ${missing.join(', ')}`);
    assert.ok((contributes().commands ?? []).length > 0, 'package.json contributes no commands');
  });

  it('loads the default model offline and reports it through the engine', async () => {
    const t0 = Date.now();
    const info = await loadedModel(90_000);
    note(`model ${info.cfg.model_name}: ${info.cfg.n_layers} layers × ${info.cfg.n_heads} heads, n_ctx ${info.cfg.n_ctx}, tokenizer ${info.tokenizer}, ${info.device}, loaded in ${Date.now() - t0} ms`);
    assert.ok(info.cfg.n_layers > 0 && info.cfg.n_heads > 0, `implausible config ${JSON.stringify(info.cfg)}`);
    assert.ok(info.hooks.some((h) => h.name === 'blocks.0.attn.hook_pattern'), 'hook list lacks blocks.0.attn.hook_pattern');
    const a = await api();
    assert.equal(a.engine.state.kind, 'ready');
    const again = await a.engine.request(EngineRequests.modelInfo, {});
    assert.equal(again?.cfg.model_name, info.cfg.model_name);
  });

  it('opens the MechLens side bar container', async () => {
    const containers = contributes().viewsContainers?.activitybar ?? [];
    const c = containers.find((x) => x.title === 'MechLens');
    assert.ok(c);
    await vscode.commands.executeCommand(`workbench.view.extension.${c.id}`);
    const a = await api();
    assert.equal(a.predictions.kind, 'topk');
  });
});
